//! The attack-spec grammar (`spat eval --attacks`, `pgd20@eps/10`, `pgd-ls:0.3`, ...).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    spat_spec::fuzzing::attack_spec(data);
});
