//! Replays every committed fuzz seed through its harness, so the corpora are exercised by
//! `cargo test` even where cargo-fuzz is not installed.

use std::fs;
use std::path::Path;

fn replay(target: &str, harness: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut count = 0;
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_file() && !path.file_name().unwrap().to_string_lossy().starts_with('.') {
            harness(&fs::read(&path).unwrap());
            count += 1;
        }
    }
    eprintln!("{target}: replayed {count} seeds");
    count
}

#[test]
fn frame_decode_seeds() {
    assert!(replay("frame_decode", bsv_relay::fuzzing::frame_decode) >= 10);
}

#[test]
fn tx_decode_seeds() {
    assert!(replay("tx_decode", bsv_relay::fuzzing::tx_decode) >= 5);
}

#[test]
fn block_decode_seeds() {
    assert!(replay("block_decode", bsv_relay::fuzzing::block_decode) >= 3);
}

#[test]
fn header_chain_seeds() {
    assert!(replay("header_chain", bsv_relay::fuzzing::header_chain) >= 5);
}

#[test]
fn script_eval_seeds() {
    assert!(replay("script_eval", bsv_relay::fuzzing::script_eval) >= 4);
}

#[test]
fn tx_validate_seeds() {
    assert!(replay("tx_validate", bsv_relay::fuzzing::tx_validate) >= 4);
}

#[test]
fn v2_packets_seeds() {
    assert!(replay("v2_packets", bsv_relay::fuzzing::v2_packets) >= 10);
}
