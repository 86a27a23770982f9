#![no_main]
#![forbid(unsafe_code)]
// Target body: mlstls_fuzz_targets::record (shared with the stable replay test).

libfuzzer_sys::fuzz_target!(|data: &[u8]| mlstls_fuzz_targets::record::run(data));
