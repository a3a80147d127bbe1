#![no_main]
//! See `partlog_fuzz::ops`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| partlog_fuzz::ops::run(data));
