//! torch.save files of every container (zip, legacy, tar) into raw tensors.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    spat_pickle::fuzzing::torch_checkpoint(data);
});
