#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| bsv_relay::fuzzing::script_eval(std::hint::black_box(data)));
