//! The model-name grammar (`--model`: `wrn-34-20`, `dm-wrn-70-16-swish`, `rb:NAME`, ...).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    spat_spec::fuzzing::model_name(data);
});
