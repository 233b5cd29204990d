//! The pickle interpreter under both policies, and RST's pseudo-labelled reader on top of it.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    spat_pickle::fuzzing::pickle(data);
    spat_data::fuzzing::pseudo_labeled(data);
});
