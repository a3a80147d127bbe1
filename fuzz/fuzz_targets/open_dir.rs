#![no_main]
//! See `partlog_fuzz::open_dir`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| partlog_fuzz::open_dir::run(data));
