#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| custodian_fuzz_checks::check_filter(data));
