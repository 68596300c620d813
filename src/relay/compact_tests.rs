use super::*;
use crate::wire::tx::{OutPoint, TxFields, TxIn, TxOut};
use crate::wire::{Decodable, Encodable};
use proptest::prelude::*;

const BLOCK_413567: &[u8] = include_bytes!("../../tests/data/fixtures/block413567.raw");
const REGTEST_BLOCKS_HEX: &str = include_str!("../../tests/data/fixtures/blocks.hex");

/// Large enough for any block here; the relay passes `-excessiveblocksize`.
const MAX_BLOCK_SIZE: u64 = 1_000_000_000;

fn mainnet() -> Block {
    Block::from_slice(BLOCK_413567).expect("fixture decodes")
}

fn regtest_blocks() -> Vec<Block> {
    REGTEST_BLOCKS_HEX
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Block::from_slice(&hex::decode(l.trim()).unwrap()).unwrap())
        .collect()
}

/// Every transaction of `block` but the coinbase and those at `leave_out`.
fn candidates(block: &Block, leave_out: &[usize]) -> Vec<Arc<Transaction>> {
    block
        .transactions
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(i, _)| !leave_out.contains(i))
        .map(|(_, tx)| Arc::new(tx.clone()))
        .collect()
}

fn round_trip<T: Encodable + Decodable>(msg: &T) -> T {
    T::from_slice(&msg.to_bytes()).expect("our own encoding decodes")
}

/// A 60-byte transaction differing from its siblings only in `lock_time`.
fn tiny_tx(lock_time: u32) -> Transaction {
    Transaction::from_fields(TxFields {
        version: 1,
        inputs: vec![TxIn {
            prev_out: OutPoint { txid: Hash256([1; 32]), vout: 0 },
            script_sig: Default::default(),
            sequence: u32::MAX,
        }],
        outputs: vec![TxOut { value: 1, script_pubkey: Default::default() }],
        lock_time,
    })
}

#[test]
fn siphash_matches_the_reference_vectors() {
    // The 64 vectors of the SipHash paper (Aumasson & Bernstein, appendix A / vectors.h): key
    // 00 01 .. 0f, message 00 01 .. (i-1) for i = 0..63, output as 8 little-endian bytes.
    const VECTORS: [&str; 64] = [
        "310e0edd47db6f72",
        "fd67dc93c539f874",
        "5a4fa9d909806c0d",
        "2d7efbd796666785",
        "b7877127e09427cf",
        "8da699cd64557618",
        "cee3fe586e46c9cb",
        "37d1018bf50002ab",
        "6224939a79f5f593",
        "b0e4a90bdf82009e",
        "f3b9dd94c5bb5d7a",
        "a7ad6b22462fb3f4",
        "fbe50e86bc8f1e75",
        "903d84c02756ea14",
        "eef27a8e90ca23f7",
        "e545be4961ca29a1",
        "db9bc2577fcc2a3f",
        "9447be2cf5e99a69",
        "9cd38d96f0b3c14b",
        "bd6179a71dc96dbb",
        "98eea21af25cd6be",
        "c7673b2eb0cbf2d0",
        "883ea3e395675393",
        "c8ce5ccd8c030ca8",
        "94af49f6c650adb8",
        "eab8858ade92e1bc",
        "f315bb5bb835d817",
        "adcf6b0763612e2f",
        "a5c91da7acaa4dde",
        "716595876650a2a6",
        "28ef495c53a387ad",
        "42c341d8fa92d832",
        "ce7cf2722f512771",
        "e37859f94623f3a7",
        "381205bb1ab0e012",
        "ae97a10fd434e015",
        "b4a31508beff4d31",
        "81396229f0907902",
        "4d0cf49ee5d4dcca",
        "5c73336a76d8bf9a",
        "d0a704536ba93e0e",
        "925958fcd6420cad",
        "a915c29bc8067318",
        "952b79f3bc0aa6d4",
        "f21df2e41d4535f9",
        "87577519048f53a9",
        "10a56cf5dfcd9adb",
        "eb75095ccd986cd0",
        "51a9cb9ecba312e6",
        "96afadfc2ce666c7",
        "72fe52975a4364ee",
        "5a1645b276d592a1",
        "b274cb8ebf87870a",
        "6f9bb4203de7b381",
        "eaecb2a30b22a87f",
        "9924a43cc1315724",
        "bd838d3aafbf8db7",
        "0b1a2a3265d51aea",
        "135079a3231ce660",
        "932b2846e4d70666",
        "e1915f5cb1eca46c",
        "f325965ca16d629f",
        "575ff28e60381be5",
        "724506eb4c328a95",
    ];
    let (k0, k1) = (0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908);
    let message: Vec<u8> = (0..64).collect();
    for (len, expected) in VECTORS.iter().enumerate() {
        let got = siphash24(k0, k1, &message[..len]).to_le_bytes();
        assert_eq!(hex::encode(got), *expected, "vector {len}");
    }
}

#[test]
fn short_id_matches_an_independent_implementation() {
    // rust-bitcoin's `test_compact_block_vector`, produced by Elements: a header, nonce
    // 18053200567810711460, and the one short id of the block's second transaction. That vector is
    // BIP152 version 2 (the id hashes the wtxid, sha256d of the witness serialization below);
    // version 1 hashes the txid with the same keys and truncation, so the vector checks both.
    let header = hex::decode(
        "000000206c750a364035aefd5f81508a08769975116d9195312ee4520dceac39e1fdc62c4dc67473b8e354358c1e61\
         0afeaff7410858bd45df43e2940f8a62bd3d5e3ac943c2975cffff7f2000000000",
    )
    .unwrap();
    let header = BlockHeader::from_array(&header.try_into().unwrap());
    let witness_tx = hex::decode(
        "020000000001021fc20ba2bd745507b8e00679e3b362558f9457db374ca28ffa5243f4c23a4d5f0000000017160014\
         7c9dea14ffbcaec4b575e03f05ceb7a81cd3fcbffdffffff915d689be87b43337f42e26033df59807b768223368f189a\
         023d0242d837768900000000171600147c9dea14ffbcaec4b575e03f05ceb7a81cd3fcbffdffffff0200cdf505000000\
         0017a9146803c72d9154a6a20f404bed6d3dcee07986235a8700e1f5050000000017a9144e6a4c7cb5b5562904843bdf\
         816342f4db9f5797870247304402205e9bf6e70eb0e4b495bf483fd8e6e02da64900f290ef8aaa64bb32600d973c4502\
         20670896f5d0e5f33473e5f399ab680cc1d25c2d2afd15abd722f04978f28be887012103e4e4d9312b2261af508b367d\
         8ba9be4f01b61d6d6e78bec499845b4f410bcf2702473044022045ac80596a6ac9c8c572f94708709adaf10667722112\
         2e08daf8b9741a04f66a022003ccd52a3b78f8fd08058fc04fc0cffa5f4c196c84eae9e37e2a85babe731b5701210\
         3e4e4d9312b2261af508b367d8ba9be4f01b61d6d6e78bec499845b4f410bcf276a000000",
    )
    .unwrap();
    let keys = ShortIdKeys::new(&header, 18_053_200_567_810_711_460);
    let id = keys.short_id(&Hash256::sha256d(&witness_tx));
    assert_eq!(hex::encode(id), "0a6979e97145");
    assert_eq!(short_id_value(&id), 0x4571_e979_690a);
    assert_eq!(keys.short_id_u64(&Hash256::sha256d(&witness_tx)), 0x4571_e979_690a);
}

#[test]
fn compact_block_prefills_the_coinbase_and_round_trips_on_the_wire() {
    let block = mainnet();
    let n = block.transactions.len();
    assert!(n > 1500, "{n}");
    let compact = compact_block(&block, 0x0123_4567_89ab_cdef).unwrap();
    assert_eq!(compact.header, block.header);
    assert_eq!(compact.nonce, 0x0123_4567_89ab_cdef);
    assert_eq!(compact.prefilled.len(), 1);
    assert_eq!(compact.prefilled[0].index_delta, 0);
    assert_eq!(compact.prefilled[0].tx, block.transactions[0]);
    let keys = ShortIdKeys::new(&block.header, compact.nonce);
    let expected: Vec<ShortId> = block.transactions[1..].iter().map(|tx| keys.short_id(&tx.txid())).collect();
    assert_eq!(compact.short_ids, expected);
    // 80 + 8 + 3 + 6 per short id + 1 + 1 + the coinbase: a 1 MB block in about 10 kB.
    let bytes = compact.to_bytes();
    assert_eq!(bytes.len(), 80 + 8 + 3 + 6 * (n - 1) + 1 + 1 + block.transactions[0].size());
    assert_eq!(round_trip(&compact), compact);
    // Another nonce, other short ids.
    assert_ne!(compact_block(&block, 1).unwrap().short_ids, compact.short_ids);
}

#[test]
fn prefilled_indexes_are_differentially_encoded() {
    let block = mainnet();
    let n = block.transactions.len();
    let compact = compact_block_with_prefilled(&block, 7, &[5, 2, 2, n - 1, 0]).unwrap();
    let deltas: Vec<u64> = compact.prefilled.iter().map(|p| p.index_delta).collect();
    assert_eq!(deltas, vec![0, 1, 2, (n - 1 - 5 - 1) as u64]);
    assert_eq!(compact.short_ids.len(), n - 4);
    assert_eq!(compact.prefilled[2].tx, block.transactions[5]);
    // With no candidates, exactly the transactions not prefilled are requested.
    let partial = PartialBlock::new(compact, &Vec::new(), MAX_BLOCK_SIZE).unwrap();
    let missing = partial.missing_indexes();
    let expected: Vec<u32> = (1..n as u32 - 1).filter(|&i| i != 2 && i != 5).collect();
    assert_eq!(missing, expected);
    let request = partial.request().unwrap();
    let served = block_txn(&block, &round_trip(&request)).unwrap();
    assert_eq!(partial.fill(round_trip(&served)).unwrap(), block);

    assert_eq!(
        compact_block_with_prefilled(&block, 7, &[n]),
        Err(CompactError::PrefillOutOfRange { index: n, count: n })
    );
}

#[test]
fn a_block_without_transactions_cannot_be_compacted() {
    let block = Block::new(mainnet().header, Vec::new());
    assert_eq!(compact_block(&block, 0), Err(CompactError::EmptyBlock));
}

#[test]
fn mainnet_block_is_rebuilt_from_candidates_holding_every_transaction() {
    let block = mainnet();
    let compact = round_trip(&compact_block(&block, 42).unwrap());
    // The mempool holds half, the relay cache the rest and some of the same again; unrelated
    // transactions from another chain are mixed in.
    let all = candidates(&block, &[]);
    let (first, second) = all.split_at(all.len() / 2);
    let mut mempool = first.to_vec();
    mempool.extend(regtest_blocks()[114].transactions.iter().skip(1).map(|tx| Arc::new(tx.clone())));
    let relayed: HashMap<TxId, Arc<Transaction>> =
        second.iter().chain(&first[..100]).map(|tx| (tx.txid(), Arc::clone(tx))).collect();
    let partial = PartialBlock::new(compact, &(&mempool, &relayed), MAX_BLOCK_SIZE).unwrap();
    let n = block.transactions.len();
    assert_eq!(partial.tx_count(), n);
    assert_eq!(partial.hash(), block.hash());
    assert_eq!(partial.stats(), FillStats { prefilled: 1, found: n - 1, collisions: 0, missing: 0 });
    assert!(partial.is_complete());
    assert_eq!(partial.request(), None);
    let rebuilt = partial.complete().unwrap();
    assert_eq!(check_merkle_root(&rebuilt), Ok(()));
    assert_eq!(rebuilt, block);
    assert_eq!(rebuilt.to_bytes(), BLOCK_413567);
}

#[test]
fn mainnet_block_missing_a_few_is_completed_by_blocktxn() {
    let block = mainnet();
    let n = block.transactions.len();
    let leave_out = [1, 2, 3, 700, 701, 1200, n - 1];
    let compact = round_trip(&compact_block(&block, u64::MAX).unwrap());
    let partial = PartialBlock::new(compact, &candidates(&block, &leave_out), MAX_BLOCK_SIZE).unwrap();
    assert_eq!(partial.stats(), FillStats { prefilled: 1, found: n - 1 - 7, collisions: 0, missing: 7 });
    assert_eq!(partial.missing_indexes(), leave_out.iter().map(|&i| i as u32).collect::<Vec<_>>());

    let request = round_trip(&partial.request().unwrap());
    assert_eq!(request.block_hash, block.hash());
    assert_eq!(request.index_deltas, vec![1, 0, 0, 696, 0, 498, (n - 1 - 1200 - 1) as u64]);
    let decoded: Vec<u32> = decode_indexes(&request.index_deltas).collect::<Result<_, _>>().unwrap();
    assert_eq!(decoded, partial.missing_indexes());

    let served = round_trip(&block_txn(&block, &request).unwrap());
    assert_eq!(served.transactions.len(), 7);
    assert_eq!(served.transactions[3], block.transactions[700]);
    let rebuilt = partial.fill(served).unwrap();
    assert_eq!(check_merkle_root(&rebuilt), Ok(()));
    assert_eq!(rebuilt, block);
}

#[test]
fn every_regtest_block_round_trips_with_every_other_transaction_known() {
    for (height, block) in regtest_blocks().iter().enumerate() {
        let n = block.transactions.len();
        let leave_out: Vec<usize> = (1..n).step_by(2).collect();
        let compact = compact_block(block, height as u64).unwrap();
        let partial = PartialBlock::new(compact, &candidates(block, &leave_out), MAX_BLOCK_SIZE).unwrap();
        assert_eq!(partial.stats().missing, leave_out.len(), "height {height}");
        let rebuilt = match partial.request() {
            None => partial.complete().unwrap(),
            Some(request) => partial.fill(block_txn(block, &request).unwrap()).unwrap(),
        };
        assert_eq!(&rebuilt, block, "height {height}");
        assert_eq!(check_merkle_root(&rebuilt), Ok(()));
    }
}

#[test]
fn equal_short_ids_in_a_compact_block_fall_back_to_the_full_block() {
    let block = mainnet();
    let mut compact = compact_block(&block, 3).unwrap();
    compact.short_ids[900] = compact.short_ids[10];
    let err = PartialBlock::new(compact, &candidates(&block, &[]), MAX_BLOCK_SIZE).unwrap_err();
    let keys = ShortIdKeys::new(&block.header, 3);
    assert_eq!(err, CompactError::DuplicateShortIds { short_id: keys.short_id_u64(&block.transactions[11].txid()) });
    assert_eq!(err.remedy(), Remedy::RequestFullBlock);
    assert_eq!(err.misbehavior(), None);

    // A block that holds one transaction twice collides with itself the same way.
    let mut txs = block.transactions[..3].to_vec();
    txs.push(txs[1].clone());
    let twice = Block::new(block.header, txs);
    let err = PartialBlock::new(compact_block(&twice, 0).unwrap(), &Vec::new(), MAX_BLOCK_SIZE).unwrap_err();
    assert!(matches!(err, CompactError::DuplicateShortIds { .. }), "{err:?}");
}

#[test]
fn two_candidates_with_one_short_id_leave_the_slot_to_be_requested() {
    // Found by a birthday search over 2^25 lock times: with block 413567's header and nonce 0,
    // these two transactions share the 48-bit short id 7c3e13520f43.
    let (a, b) = (tiny_tx(5_777_328), tiny_tx(23_689_520));
    let header = mainnet().header;
    let keys = ShortIdKeys::new(&header, 0);
    assert_ne!(a.txid(), b.txid());
    assert_eq!(keys.short_id_u64(&a.txid()), 0x7c3e_1352_0f43);
    assert_eq!(keys.short_id(&a.txid()), keys.short_id(&b.txid()));

    let coinbase = mainnet().transactions[0].clone();
    let other = tiny_tx(1);
    let compact = CompactBlock {
        header,
        nonce: 0,
        short_ids: vec![keys.short_id(&a.txid()), keys.short_id(&other.txid())],
        prefilled: vec![PrefilledTx { index_delta: 0, tx: coinbase.clone() }],
    };
    // `b` comes before `other`: the search stops as soon as every slot is filled.
    let pool = vec![Arc::new(a.clone()), Arc::new(b), Arc::new(other.clone()), Arc::new(a.clone())];
    let partial = PartialBlock::new(compact.clone(), &pool, MAX_BLOCK_SIZE).unwrap();
    assert_eq!(partial.stats(), FillStats { prefilled: 1, found: 1, collisions: 1, missing: 1 });
    assert_eq!(partial.missing_indexes(), vec![1]);
    let request = partial.request().unwrap();
    assert_eq!(request.index_deltas, vec![1]);
    let block = partial.fill(BlockTxn { block_hash: header.hash(), transactions: vec![a.clone()] }).unwrap();
    assert_eq!(block.transactions, vec![coinbase, a.clone(), other.clone()]);

    // The same transaction offered twice (mempool and relay cache) is no collision.
    let pool = vec![Arc::new(a.clone()), Arc::new(a), Arc::new(other)];
    let partial = PartialBlock::new(compact, &pool, MAX_BLOCK_SIZE).unwrap();
    assert_eq!(partial.stats(), FillStats { prefilled: 1, found: 2, collisions: 0, missing: 0 });
}

#[test]
fn blocktxn_with_the_wrong_number_of_transactions_is_an_offence() {
    let block = mainnet();
    let compact = compact_block(&block, 9).unwrap();
    let partial = PartialBlock::new(compact, &candidates(&block, &[4, 8]), MAX_BLOCK_SIZE).unwrap();
    let hash = block.hash();
    for count in [0, 1, 3] {
        let transactions = block.transactions[1..=count].to_vec();
        let err = partial.clone().fill(BlockTxn { block_hash: hash, transactions }).unwrap_err();
        assert_eq!(err, CompactError::WrongTxnCount { expected: 2, got: count });
        assert_eq!(err.remedy(), Remedy::Punish("invalid-cmpctblk-txns"));
    }
    let wrong = BlockTxn { block_hash: Hash256([9; 32]), transactions: Vec::new() };
    let err = partial.clone().fill(wrong).unwrap_err();
    assert_eq!(err, CompactError::WrongBlock { expected: hash, got: Hash256([9; 32]) });
    assert_eq!(err.remedy(), Remedy::Ignore);
    assert_eq!(partial.clone().complete(), Err(CompactError::WrongTxnCount { expected: 2, got: 0 }));
}

#[test]
fn a_tampered_transaction_gives_a_merkle_mismatch_not_an_offence() {
    let block = mainnet();
    let compact = compact_block(&block, 11).unwrap();
    let partial = PartialBlock::new(compact, &candidates(&block, &[321]), MAX_BLOCK_SIZE).unwrap();
    let mut fields = block.transactions[321].clone().into_fields();
    fields.lock_time ^= 1;
    let tampered = Transaction::from_fields(fields);
    let rebuilt = partial.fill(BlockTxn { block_hash: block.hash(), transactions: vec![tampered] }).unwrap();
    let err = check_merkle_root(&rebuilt).unwrap_err();
    assert!(matches!(err, CompactError::MerkleMismatch { expected, .. } if expected == block.header.merkle_root));
    assert_eq!(err.remedy(), Remedy::RequestFullBlock);
    assert_eq!(err.misbehavior(), None);

    // The CVE-2012-2459 shape: the last of an odd number of transactions repeated keeps the
    // root, and is refused all the same.
    let block = &regtest_blocks()[114];
    let mut txs = block.transactions.clone();
    assert_eq!(txs.len() % 2, 1);
    txs.push(txs.last().unwrap().clone());
    let mutated = Block::new(block.header, txs);
    assert_eq!(check_merkle_root(&mutated), Err(CompactError::MerkleMutated));
    assert_eq!(CompactError::MerkleMutated.remedy(), Remedy::RequestFullBlock);
}

#[test]
fn getblocktxn_past_the_end_of_the_block_is_the_out_of_bound_offence() {
    let block = mainnet();
    let n = block.transactions.len();
    let hash = block.hash();
    let ask = |deltas: Vec<u64>| block_txn(&block, &GetBlockTxn { block_hash: hash, index_deltas: deltas });

    let last = ask(vec![(n - 1) as u64]).unwrap();
    assert_eq!(last.transactions, vec![block.transactions[n - 1].clone()]);
    assert_eq!(ask(Vec::new()).unwrap().transactions, Vec::new());

    let err = ask(vec![0, (n - 1) as u64]).unwrap_err();
    assert_eq!(err, CompactError::IndexOutOfRange { index: n as u32, count: n });
    assert_eq!(err.remedy(), Remedy::Punish("out-of-bound-tx-index"));
    assert_eq!(err.misbehavior(), Some(Misbehavior::OutOfBoundTxIndex));
    assert_eq!(err.misbehavior().unwrap().score(), 100);

    // More indexes than transactions: the first past the end is reported, nothing is allocated
    // beyond the block's size.
    let err = ask(vec![0; n + 5]).unwrap_err();
    assert_eq!(err, CompactError::IndexOutOfRange { index: n as u32, count: n });

    // Indexes past 32 bits cannot be decoded at all (SV Node's deserializer throws).
    assert_eq!(ask(vec![u64::from(u32::MAX) + 1]), Err(CompactError::IndexOverflow { position: 0 }));
    assert_eq!(ask(vec![u64::MAX]), Err(CompactError::IndexOverflow { position: 0 }));
    assert_eq!(ask(vec![0, u64::from(u32::MAX)]).unwrap_err(), CompactError::IndexOverflow { position: 1 });
    assert_eq!(CompactError::IndexOverflow { position: 1 }.remedy(), Remedy::Ignore);

    let err = block_txn(&block, &GetBlockTxn { block_hash: Hash256::ZERO, index_deltas: vec![0] }).unwrap_err();
    assert_eq!(err, CompactError::WrongBlock { expected: hash, got: Hash256::ZERO });
}

#[test]
fn differential_index_encoding() {
    // (absolute, encoded) pairs, as in BIP152's examples and rust-bitcoin's tests.
    let cases: [(&[u32], &[u64]); 5] = [
        (&[0, 6, 8, 19], &[0, 5, 1, 10]),
        (&[0], &[0]),
        (&[0, 1, 2, 3, 4], &[0, 0, 0, 0, 0]),
        (&[1, 3, 5], &[1, 1, 1]),
        (&[0, 1, 258], &[0, 0, 256]),
    ];
    for (absolute, encoded) in cases {
        assert_eq!(encode_indexes(absolute).unwrap(), encoded);
        assert_eq!(decode_indexes(encoded).collect::<Result<Vec<_>, _>>().unwrap(), absolute);
    }
    assert_eq!(encode_indexes(&[u32::MAX]).unwrap(), vec![u64::from(u32::MAX)]);
    assert_eq!(decode_indexes(&[u64::from(u32::MAX)]).collect::<Result<Vec<_>, _>>(), Ok(vec![u32::MAX]));
    assert_eq!(encode_indexes(&[3, 3]), Err(CompactError::IndexesNotIncreasing { position: 1, index: 3 }));
    assert_eq!(encode_indexes(&[3, 1]), Err(CompactError::IndexesNotIncreasing { position: 1, index: 1 }));
    // After u32::MAX nothing can follow; decoding stops at the first failure.
    let deltas = [u64::from(u32::MAX), 0, 0];
    let mut it = decode_indexes(&deltas);
    assert_eq!(it.next(), Some(Ok(u32::MAX)));
    assert_eq!(it.next(), Some(Err(CompactError::IndexOverflow { position: 1 })));
    assert_eq!(it.next(), None);
}

#[test]
fn malformed_compact_blocks_are_offences() {
    let block = &regtest_blocks()[114];
    let good = compact_block(block, 5).unwrap();
    let s = good.short_ids.len() as u64;
    let invalid = |compact: CompactBlock, max_block_size: u64| {
        let err = PartialBlock::new(compact, &Vec::new(), max_block_size).unwrap_err();
        assert_eq!(err.remedy(), Remedy::Punish("invalid-cmpctblk"), "{err:?}");
        err
    };

    let mut c = good.clone();
    c.header.bits = 0;
    assert_eq!(invalid(c, MAX_BLOCK_SIZE), CompactError::NullHeader);

    let mut c = good.clone();
    c.short_ids.clear();
    c.prefilled.clear();
    assert_eq!(invalid(c, MAX_BLOCK_SIZE), CompactError::NoTransactions);

    // 31 transactions need a size limit of at least 310 bytes.
    assert_eq!(invalid(good.clone(), 309), CompactError::TooManyTransactions { count: 31, max: 30 });
    assert!(PartialBlock::new(good.clone(), &Vec::new(), 310).is_ok());

    let mut c = good.clone();
    c.prefilled.push(PrefilledTx {
        index_delta: 0,
        tx: Transaction::from_fields(TxFields { version: 1, inputs: vec![], outputs: vec![], lock_time: 0 }),
    });
    assert_eq!(invalid(c, MAX_BLOCK_SIZE), CompactError::NullPrefilledTx { position: 1 });

    let extra = |delta: u64| PrefilledTx { index_delta: delta, tx: block.transactions[3].clone() };
    for delta in [u64::from(u32::MAX), u64::MAX] {
        let mut c = good.clone();
        c.prefilled.push(extra(delta));
        assert_eq!(invalid(c, MAX_BLOCK_SIZE), CompactError::PrefilledIndexOverflow { position: 1 });
    }
    // The second prefilled transaction may sit at most at index s + 1 (the last slot).
    let mut c = good.clone();
    c.prefilled.push(extra(s + 1));
    assert_eq!(
        invalid(c, MAX_BLOCK_SIZE),
        CompactError::PrefilledIndexOutOfRange { position: 1, index: s + 2, count: s + 2 }
    );
    let mut c = good.clone();
    c.prefilled.push(extra(s));
    assert_eq!(PartialBlock::new(c, &Vec::new(), MAX_BLOCK_SIZE).unwrap().missing_indexes().len() as u64, s);
    // A prefilled transaction before gaps that short ids cannot fill.
    let mut c = good.clone();
    c.short_ids.truncate(2);
    c.prefilled[0].index_delta = 3;
    assert_eq!(invalid(c, MAX_BLOCK_SIZE), CompactError::PrefilledIndexOutOfRange { position: 0, index: 3, count: 3 });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever a peer puts in a compact block, reconstruction returns, and what it accepts has
    /// one slot per announced transaction.
    #[test]
    fn partial_block_never_panics(
        ids in proptest::collection::vec(any::<[u8; 6]>(), 0..40),
        deltas in proptest::collection::vec(prop_oneof![0u64..4, any::<u64>()], 0..6),
        max_block_size in prop_oneof![Just(MAX_BLOCK_SIZE), 0u64..500],
    ) {
        let block = &regtest_blocks()[115];
        let prefilled = deltas
            .iter()
            .map(|&index_delta| PrefilledTx { index_delta, tx: block.transactions[1].clone() })
            .collect();
        let compact = CompactBlock { header: block.header, nonce: 1, short_ids: ids.clone(), prefilled };
        if let Ok(partial) = PartialBlock::new(compact, &candidates(block, &[]), max_block_size) {
            prop_assert_eq!(partial.tx_count(), ids.len() + deltas.len());
            let missing = partial.missing_indexes();
            if let Some(request) = partial.request() {
                let decoded: Vec<u32> = decode_indexes(&request.index_deltas).collect::<Result<_, _>>().unwrap();
                prop_assert_eq!(decoded, missing);
            }
        }
    }

    /// Whatever a peer asks of a block, serving returns.
    #[test]
    fn block_txn_never_panics(deltas in proptest::collection::vec(prop_oneof![0u64..8, any::<u64>()], 0..40)) {
        let block = &regtest_blocks()[114];
        let request = GetBlockTxn { block_hash: block.hash(), index_deltas: deltas.clone() };
        if let Ok(served) = block_txn(block, &request) {
            prop_assert_eq!(served.transactions.len(), deltas.len());
        }
    }
}
