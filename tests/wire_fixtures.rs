//! Exact byte vectors from real data: a regtest chain mined by SV Node v1.0.13, its mempool, and a
//! mainnet block. Every object decodes, re-encodes byte-identical, and hashes link up.

use bsv_relay::chain::Network;
use bsv_relay::wire::{Block, Decodable, Encodable, Hash256, Transaction};

const BLOCKS_HEX: &str = include_str!("data/fixtures/blocks.hex");
const MEMPOOL_HEX: &str = include_str!("data/fixtures/mempool.hex");
const BLOCK_413567: &[u8] = include_bytes!("data/fixtures/block413567.raw");

fn regtest_blocks() -> Vec<(Vec<u8>, Block)> {
    BLOCKS_HEX
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let raw = hex::decode(line.trim()).expect("fixture lines are hex");
            let block = Block::from_slice(&raw).expect("every fixture block decodes");
            (raw, block)
        })
        .collect()
}

#[test]
fn regtest_chain_decodes_round_trips_and_links() {
    let blocks = regtest_blocks();
    assert_eq!(blocks.len(), 116, "heights 0..=115");
    let mut prev = Hash256::ZERO;
    let mut txs = 0;
    for (height, (raw, block)) in blocks.iter().enumerate() {
        assert_eq!(&block.to_bytes(), raw, "height {height} re-encodes byte-identical");
        assert_eq!(block.size(), raw.len());
        assert_eq!(block.header.prev_block, prev, "height {height} links to its parent");
        assert_eq!(block.hash(), block.header.hash());
        let (root, mutated) = block.merkle_root();
        assert_eq!(root, block.header.merkle_root, "height {height} merkle root");
        assert!(!mutated);
        assert!(block.transactions[0].is_coinbase());
        for tx in &block.transactions {
            assert_eq!(tx.txid(), Hash256::sha256d(tx.raw()));
        }
        txs += block.transactions.len();
        prev = block.hash();
    }
    assert_eq!(blocks[0].1.hash(), Network::Regtest.params().genesis_hash());
    assert_eq!(blocks[0].1, Network::Regtest.params().genesis_block());
    assert_eq!(blocks[0].1.hash().to_string(), "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206");
    assert_eq!(blocks[115].1.hash().to_string(), "6fcd42cf7ce6566a33774b0bbf260da553942347318ccf2f896392cc98b2d792");
    assert_eq!(blocks[114].1.transactions.len(), 31, "coinbase + 30 wallet payments");
    assert_eq!(blocks[115].1.transactions.len(), 21, "coinbase + 20 wallet payments");
    assert_eq!(txs, 116 + 30 + 20);
}

#[test]
fn regtest_mempool_transactions_decode_and_round_trip() {
    let mut count = 0;
    for line in MEMPOOL_HEX.lines().filter(|l| !l.trim().is_empty()) {
        let raw = hex::decode(line.trim()).unwrap();
        let tx = Transaction::from_slice(&raw).expect("mempool fixture decodes");
        assert_eq!(tx.to_bytes(), raw);
        assert_eq!(tx.txid(), Hash256::sha256d(&raw));
        assert!(!tx.is_coinbase());
        assert!(!tx.inputs.is_empty() && !tx.outputs.is_empty());
        count += 1;
    }
    assert_eq!(count, 10);
}

#[test]
fn mainnet_block_413567_decodes_round_trips_and_matches_its_merkle_root() {
    let block = Block::from_slice(BLOCK_413567).expect("mainnet block decodes");
    assert_eq!(block.size(), 999_887);
    assert_eq!(block.to_bytes(), BLOCK_413567);
    let (root, mutated) = block.merkle_root();
    assert_eq!(root, block.header.merkle_root);
    assert!(!mutated);
    assert!(block.transactions.len() > 1000);
    assert!(block.transactions[0].is_coinbase());
    assert!(block.transactions[1..].iter().all(|tx| !tx.is_coinbase()));
    // Mainnet proof of work: the hash has at least 8 leading zero bytes when shown reversed.
    assert!(block.hash().to_string().starts_with("0000000000000000"), "{}", block.hash());
}

#[test]
fn a_mutated_duplicate_transaction_block_keeps_the_root_but_is_flagged() {
    // CVE-2012-2459: append a copy of the last transaction to a block with an odd count.
    let (_, block) = regtest_blocks().swap_remove(115);
    assert_eq!(block.transactions.len() % 2, 1);
    let mut txs = block.transactions.clone();
    txs.push(txs.last().unwrap().clone());
    let forged = Block::new(block.header, txs);
    let (root, mutated) = forged.merkle_root();
    assert_eq!(root, block.header.merkle_root);
    assert_eq!(forged.hash(), block.hash());
    assert!(mutated);
}

#[test]
fn a_decoded_block_is_held_in_memory_once() {
    // Every transaction, and every script in it, is a slice of the block's own buffer: decoding
    // allocates only the small vectors of inputs and outputs, never a second copy of the bytes.
    let buffer = bytes::Bytes::from_static(BLOCK_413567);
    let range = buffer.as_ptr() as usize..buffer.as_ptr() as usize + buffer.len();
    let block = Block::from_bytes(&buffer).unwrap();
    let inside = |p: *const u8| range.contains(&(p as usize));
    for tx in &block.transactions {
        assert!(inside(tx.raw().as_ptr()));
        for input in tx.inputs.iter().filter(|i| !i.script_sig.is_empty()) {
            assert!(inside(input.script_sig.as_ptr()));
        }
        for output in tx.outputs.iter().filter(|o| !o.script_pubkey.is_empty()) {
            assert!(inside(output.script_pubkey.as_ptr()));
        }
    }
}
