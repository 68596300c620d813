//! The UTXO set and block connection against a real regtest chain mined by SV Node v1.0.13
//! (`blocks.hex`, heights 0..=115) and its mempool (`mempool.hex`). Expected values are recomputed
//! here naively from the fixture, independently of the code under test.

use std::collections::HashMap;

use bsv_relay::chain::params::REGTEST;
use bsv_relay::chain::{connect_block, disconnect_block, BlockError, BlockUndo, NoScriptCheck, UtxoSet, UtxoStats};
use bsv_relay::validation::{check_transaction, CoinView};
use bsv_relay::wire::{
    merkle_root, Block, Decodable, Encodable, Hash256, OutPoint, Transaction, TxFields, TxIn, TxOut,
};
use bytes::Bytes;

// The tests live in `chain` so that `cargo test --lib chain:: --test chain_utxo` runs them too.
mod chain {
    use super::*;

    const BLOCKS_HEX: &str = include_str!("data/fixtures/blocks.hex");
    const MEMPOOL_HEX: &str = include_str!("data/fixtures/mempool.hex");
    /// The fixture's tip height.
    const TIP: u32 = 115;
    /// `-excessiveblocksize=0` means unlimited in SV Node (svnode-protocol.md §2.4).
    const UNLIMITED: u64 = u64::MAX;

    fn blocks() -> Vec<Block> {
        let blocks: Vec<Block> = BLOCKS_HEX
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| Block::from_slice(&hex::decode(l.trim()).expect("hex")).expect("fixture block decodes"))
            .collect();
        assert_eq!(blocks.len(), TIP as usize + 1);
        blocks
    }

    fn mempool() -> Vec<Transaction> {
        MEMPOOL_HEX
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| Transaction::from_slice(&hex::decode(l.trim()).expect("hex")).expect("fixture tx decodes"))
            .collect()
    }

    fn connect(utxo: &UtxoSet, block: &Block, height: u32) -> Result<BlockUndo, BlockError> {
        connect_block(utxo, block, height, &REGTEST, UNLIMITED, &NoScriptCheck)
    }

    /// A set with blocks 1..=`to` connected, and their undo data (index = height).
    fn chain_to(blocks: &[Block], to: u32) -> (UtxoSet, Vec<BlockUndo>) {
        let utxo = UtxoSet::new(&REGTEST);
        let mut undos = vec![BlockUndo::default()];
        for h in 1..=to {
            undos.push(connect(&utxo, &blocks[h as usize], h).unwrap_or_else(|e| panic!("block {h}: {e}")));
        }
        (utxo, undos)
    }

    /// Naive replay: every output created (pre-Genesis, OP_RETURN outputs are unspendable and never
    /// stored) minus every output spent.
    fn naive_utxos(blocks: &[Block], to: u32) -> HashMap<OutPoint, (i64, usize)> {
        let mut set = HashMap::new();
        for block in &blocks[1..=to as usize] {
            for tx in &block.transactions {
                if !tx.is_coinbase() {
                    for input in &tx.inputs {
                        assert!(set.remove(&input.prev_out).is_some(), "fixture spends an unknown output");
                    }
                }
                for (vout, out) in tx.outputs.iter().enumerate() {
                    if out.script_pubkey.first() != Some(&0x6a) {
                        set.insert(
                            OutPoint { txid: tx.txid(), vout: vout as u32 },
                            (out.value, out.script_pubkey.len()),
                        );
                    }
                }
            }
        }
        set
    }

    #[test]
    fn connects_all_fixture_blocks_with_exact_contents_and_stats() {
        let blocks = blocks();
        let (utxo, undos) = chain_to(&blocks, TIP);
        let expected = naive_utxos(&blocks, TIP);
        let total: i64 = expected.values().map(|(value, _)| value).sum();
        // Core's and SV Node's bogosize: 50 bytes per coin plus its script.
        let bogosize: u64 = expected.values().map(|(_, script_len)| 50 + *script_len as u64).sum();
        let tip = blocks[TIP as usize].hash();
        let txouts = expected.len() as u64;
        assert_eq!(utxo.stats(), UtxoStats { height: TIP, best_block: tip, txouts, total_amount: total, bogosize });
        let actual: HashMap<OutPoint, (i64, usize)> =
            utxo.snapshot().into_iter().map(|(op, c)| (op, (c.value, c.script_pubkey.len()))).collect();
        assert_eq!(actual, expected);
        assert_eq!(utxo.best_height(), TIP);
        let mut last_11: Vec<u32> = blocks[105..].iter().map(|b| b.header.time).collect();
        last_11.sort_unstable();
        assert_eq!(utxo.median_time_past(), i64::from(last_11[5]));

        // The genesis coinbase is unspendable and never in the set, as in SV Node.
        let genesis_cb = OutPoint { txid: blocks[0].transactions[0].txid(), vout: 0 };
        assert!(utxo.coin(&genesis_cb).is_none());
        // Coins carry their origin.
        let cb115 = utxo.coin(&OutPoint { txid: blocks[115].transactions[0].txid(), vout: 0 }).expect("tip coinbase");
        assert!(cb115.is_coinbase);
        assert_eq!(cb115.height, 115);
        let spends: usize = blocks[101..].iter().flat_map(|b| &b.transactions[1..]).map(|tx| tx.inputs.len()).sum();
        assert!(spends > 0, "the fixture spends coins");
        assert_eq!(undos.iter().map(|u| u.spent.len()).sum::<usize>(), spends);
        // Each block's coinbase pays exactly subsidy plus fees on this chain; the whole money supply
        // is therefore the subsidies of heights 1..=115 minus what nobody can spend.
        let subsidies: i64 = (1..=TIP).map(|h| REGTEST.subsidy(h)).sum();
        assert!(total <= subsidies);
    }

    #[test]
    fn mempool_transactions_find_their_inputs() {
        let blocks = blocks();
        let (utxo, _) = chain_to(&blocks, TIP);
        let txs = mempool();
        assert_eq!(txs.len(), 10);
        let mut unconfirmed: HashMap<OutPoint, i64> = HashMap::new();
        let mut spent = std::collections::HashSet::new();
        for (i, tx) in txs.iter().enumerate() {
            check_transaction(tx).unwrap_or_else(|e| panic!("mempool tx {i}: {e}"));
            let mut value_in = 0;
            for input in &tx.inputs {
                assert!(spent.insert(input.prev_out), "mempool tx {i} double-spends");
                value_in += match utxo.coin(&input.prev_out) {
                    Some(coin) => coin.value,
                    None => *unconfirmed.get(&input.prev_out).unwrap_or_else(|| panic!("mempool tx {i} input missing")),
                };
            }
            let value_out: i64 = tx.outputs.iter().map(|o| o.value).sum();
            assert!(value_in >= value_out, "mempool tx {i}: {value_in} < {value_out}");
            for (vout, out) in tx.outputs.iter().enumerate() {
                unconfirmed.insert(OutPoint { txid: tx.txid(), vout: vout as u32 }, out.value);
            }
        }
        // The fixture's README says its transactions also spend each other; in fact all 20 inputs
        // spend confirmed coins, which the lookup above handles either way.
        assert_eq!(spent.len(), 20);
    }

    #[test]
    fn disconnecting_to_99_and_reconnecting_gives_the_identical_set() {
        let blocks = blocks();
        let (utxo, undos) = chain_to(&blocks, 99);
        let (at_99, stats_99) = (utxo.snapshot(), utxo.stats());
        let mut undos = undos;
        for h in 100..=TIP {
            undos.push(connect(&utxo, &blocks[h as usize], h).unwrap());
        }
        let (at_tip, stats_tip) = (utxo.snapshot(), utxo.stats());
        for h in (100..=TIP).rev() {
            disconnect_block(&utxo, &blocks[h as usize], &undos[h as usize]).unwrap();
            assert_eq!(utxo.best_height(), h - 1);
        }
        assert_eq!(utxo.snapshot(), at_99);
        assert_eq!(utxo.stats(), stats_99);
        for h in 100..=TIP {
            let undo = connect(&utxo, &blocks[h as usize], h).unwrap();
            assert_eq!(undo, undos[h as usize], "height {h} spends the same coins again");
        }
        assert_eq!(utxo.snapshot(), at_tip);
        assert_eq!(utxo.stats(), stats_tip);
    }

    #[test]
    fn cve_2012_2459_mutation_is_rejected_as_possibly_corrupted() {
        let blocks = blocks();
        let (utxo, _) = chain_to(&blocks, TIP - 1);
        let before = (utxo.snapshot(), utxo.stats());
        let genuine = &blocks[TIP as usize];
        assert_eq!(genuine.transactions.len() % 2, 1, "duplicating the last of an odd count keeps the root");
        let mut txs = genuine.transactions.clone();
        txs.push(txs.last().expect("block has transactions").clone());
        let mutated = Block::new(genuine.header, txs);
        assert_eq!(mutated.hash(), genuine.hash());
        assert_eq!(mutated.merkle_root().0, genuine.header.merkle_root);

        let err = connect(&utxo, &mutated, TIP).unwrap_err();
        assert_eq!(err.reject_reason(), "bad-txns-duplicate");
        assert!(err.may_be_corrupted(), "the block hash must not be marked invalid");
        assert_eq!(err.misbehavior(), Some(100));
        assert_eq!((utxo.snapshot(), utxo.stats()), before);

        connect(&utxo, genuine, TIP).expect("the genuine block is still accepted");
        assert_eq!(utxo.best_height(), TIP);
    }

    fn coinbase(tag: u8, value: i64) -> Transaction {
        Transaction::from_fields(TxFields {
            version: 1,
            inputs: vec![TxIn {
                prev_out: OutPoint::NULL,
                script_sig: Bytes::from(vec![0x01, tag]),
                sequence: u32::MAX,
            }],
            outputs: vec![TxOut { value, script_pubkey: Bytes::from_static(&[0x51]) }],
            lock_time: 0,
        })
    }

    fn spend(prev: OutPoint, value: i64) -> Transaction {
        Transaction::from_fields(TxFields {
            version: 1,
            inputs: vec![TxIn { prev_out: prev, script_sig: Bytes::new(), sequence: u32::MAX }],
            outputs: vec![TxOut { value, script_pubkey: Bytes::from_static(&[0x51]) }],
            lock_time: 0,
        })
    }

    /// A block on top of `parent` with a correct merkle root.
    fn child(parent: &Block, txs: Vec<Transaction>) -> Block {
        let mut header = parent.header;
        header.prev_block = parent.hash();
        header.merkle_root = merkle_root(txs.iter().map(Transaction::txid).collect()).0;
        Block::new(header, txs)
    }

    #[test]
    fn invalid_blocks_are_rejected_with_sv_reasons_and_leave_the_set_unchanged() {
        let blocks = blocks();
        let (utxo, _) = chain_to(&blocks, TIP);
        let tip = &blocks[TIP as usize];
        let height = TIP + 1;
        let subsidy = REGTEST.subsidy(height);
        // A mature, unspent coinbase output (height <= 16) and the immature one of the tip.
        let mature = utxo
            .snapshot()
            .into_iter()
            .find(|(_, c)| c.is_coinbase && c.height + REGTEST.coinbase_maturity <= height)
            .expect("the fixture leaves a mature coinbase unspent");
        let (mature_op, mature_value) = (mature.0, mature.1.value);
        let immature_op = OutPoint { txid: tip.transactions[0].txid(), vout: 0 };
        let missing = OutPoint { txid: Hash256([0x42; 32]), vout: 0 };
        let parent = spend(mature_op, mature_value - 1000);
        let child_tx = spend(OutPoint { txid: parent.txid(), vout: 0 }, mature_value - 2000);

        let cases: Vec<(&str, Vec<Transaction>)> = vec![
            ("bad-txns-inputs-missingorspent", vec![coinbase(1, subsidy), spend(missing, 1)]),
            ("bad-txns-premature-spend-of-coinbase", vec![coinbase(2, subsidy), spend(immature_op, 1)]),
            ("bad-cb-amount", vec![coinbase(3, subsidy + 1)]),
            ("bad-cb-amount", vec![coinbase(4, subsidy + 1001), parent.clone()]),
            ("bad-cb-missing", vec![parent.clone()]),
            ("bad-tx-coinbase", vec![coinbase(5, subsidy), coinbase(6, 0)]),
            ("bad-txns-inputs-missingorspent", vec![coinbase(8, subsidy), child_tx.clone(), parent.clone()]),
            ("bad-txns-in-belowout", vec![coinbase(9, subsidy), spend(mature_op, mature_value + 1)]),
            ("bad-txns-vout-negative", vec![coinbase(10, subsidy), spend(mature_op, -1)]),
            // Two transactions of one block spending the same coin.
            ("bad-txns-inputs-missingorspent", vec![coinbase(13, subsidy), parent.clone(), spend(mature_op, 5)]),
        ];
        let before = (utxo.snapshot(), utxo.stats(), utxo.best_height());
        for (reason, txs) in cases {
            let err = connect(&utxo, &child(tip, txs), height).unwrap_err();
            assert_eq!(err.reject_reason(), reason, "{err}");
            assert_eq!(err.misbehavior(), Some(100), "{reason}");
            assert!(!err.may_be_corrupted(), "{reason}");
            assert_eq!((utxo.snapshot(), utxo.stats(), utxo.best_height()), before, "{reason} changed the set");
        }
        let genuine = &blocks[TIP as usize];
        let (before_tip, _) = chain_to(&blocks, TIP - 1);
        let too_big = connect_block(&before_tip, genuine, TIP, &REGTEST, genuine.size() as u64 - 1, &NoScriptCheck);
        assert_eq!(too_big.unwrap_err().reject_reason(), "bad-blk-length");
        assert_eq!(before_tip.best_height(), TIP - 1);
        let mut short_sig = coinbase(11, subsidy).into_fields();
        short_sig.inputs[0].script_sig = Bytes::from_static(&[0x01]);
        let err = connect(&utxo, &child(tip, vec![Transaction::from_fields(short_sig)]), height).unwrap_err();
        assert_eq!(err.reject_reason(), "bad-cb-length");

        // Parent before child, coinbase claiming subsidy plus both fees: valid.
        let good = child(tip, vec![coinbase(12, subsidy + 2000), parent, child_tx]);
        let undo = connect(&utxo, &good, height).expect("valid block");
        assert_eq!(undo.spent.len(), 2);
        assert_eq!(utxo.stats().txouts, before.1.txouts + 1);
        assert_eq!(utxo.stats().total_amount, before.1.total_amount + subsidy);
        assert!(utxo.coin(&mature_op).is_none());
        disconnect_block(&utxo, &good, &undo).unwrap();
        assert_eq!((utxo.snapshot(), utxo.stats(), utxo.best_height()), before);
    }

    #[test]
    fn block_undo_round_trips_through_its_encoding() {
        let blocks = blocks();
        let (_, undos) = chain_to(&blocks, TIP);
        let mut nonempty = 0;
        for (h, undo) in undos.iter().enumerate() {
            let bytes = undo.to_bytes();
            assert_eq!(BlockUndo::from_slice(&bytes).unwrap(), *undo, "height {h}");
            if !undo.spent.is_empty() {
                nonempty += 1;
                for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
                    assert!(BlockUndo::from_slice(&bytes[..cut]).is_err(), "height {h} truncated at {cut}");
                }
            }
        }
        assert!(nonempty >= 2);
    }

    #[test]
    fn readers_see_whole_blocks_while_the_writer_connects() {
        let blocks = blocks();
        let (reference, _) = chain_to(&blocks, 0);
        let mut expected = vec![reference.stats()];
        for h in 1..=TIP {
            connect(&reference, &blocks[h as usize], h).unwrap();
            expected.push(reference.stats());
        }
        let utxo = UtxoSet::new(&REGTEST);
        let done = std::sync::atomic::AtomicBool::new(false);
        // The writer starts once both readers run, so their reads overlap its commits.
        let started = std::sync::Barrier::new(3);
        std::thread::scope(|s| {
            let readers: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        started.wait();
                        let mut seen = 0u64;
                        loop {
                            let stats = utxo.stats();
                            assert_eq!(stats, expected[stats.height as usize], "a reader saw half a block");
                            seen += 1;
                            if done.load(std::sync::atomic::Ordering::Relaxed) {
                                return seen;
                            }
                        }
                    })
                })
                .collect();
            started.wait();
            let mut undos = vec![BlockUndo::default()];
            for h in 1..=TIP {
                undos.push(connect(&utxo, &blocks[h as usize], h).unwrap());
            }
            for h in (100..=TIP).rev() {
                disconnect_block(&utxo, &blocks[h as usize], &undos[h as usize]).unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            for r in readers {
                assert!(r.join().expect("reader panicked") > 0);
            }
        });
        assert_eq!(utxo.stats(), expected[99]);
    }
}
