#![no_main]
//! See `partlog_fuzz::decode_batch`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| partlog_fuzz::decode_batch::run(data));
