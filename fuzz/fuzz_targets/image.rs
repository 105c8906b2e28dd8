#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| headstart_fuzz::image(data));
