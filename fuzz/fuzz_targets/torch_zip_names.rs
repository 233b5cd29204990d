//! torch.save's zip layout under random archive names (their length decides where every record
//! and the ZIP64 end records fall): each must read back as the tensors written.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    spat_pickle::fuzzing::torch_zip_names(data);
});
