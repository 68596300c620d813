#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| bsv_relay::fuzzing::frame_decode(std::hint::black_box(data)));
