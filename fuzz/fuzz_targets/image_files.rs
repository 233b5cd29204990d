//! The CIFAR-10, CIFAR-100 and STL-10 binary readers.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    spat_data::fuzzing::image_files(data);
});
