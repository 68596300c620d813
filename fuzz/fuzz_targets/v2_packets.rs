#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| bsv_relay::fuzzing::v2_packets(std::hint::black_box(data)));
