//! The persistent chain state on the regtest chain mined by SV Node v1.0.13 (`tests/data/fixtures`,
//! heights 0..=115) and on hand-mined forks: every block's scripts checked, restart without
//! re-download, reorganisations both ways, invalidate/reconsider, invalid blocks, the
//! CVE-2012-2459 mutation, and a `kill -9` in the middle of connecting blocks.

use std::path::Path;
use std::sync::Arc;

use bsv_relay::chain::params::REGTEST;
use bsv_relay::chain::{
    connect_block, BlockError, ChainError, ChainOptions, ChainState, NoScriptCheck, TipStatus, UtxoSet,
};
use bsv_relay::validation::{ScriptVerifier, TxContext};
use bsv_relay::wire::{merkle_root, Block, BlockHeader, Decodable, Transaction, TxFields};

mod common;
use common::{blocks, TempDir};

const BLOCKS_HEX: &str = include_str!("data/fixtures/blocks.hex");
const MEMPOOL_HEX: &str = include_str!("data/fixtures/mempool.hex");
const TIP: u32 = 115;

fn fixture_blocks() -> Vec<Arc<Block>> {
    BLOCKS_HEX
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Arc::new(Block::from_slice(&hex::decode(l.trim()).expect("hex")).expect("fixture block")))
        .collect()
}

fn mempool() -> Vec<Transaction> {
    MEMPOOL_HEX
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Transaction::from_slice(&hex::decode(l.trim()).expect("hex")).expect("fixture tx"))
        .collect()
}

fn opts() -> ChainOptions {
    ChainOptions::new()
}

fn verifier() -> ScriptVerifier<'static> {
    ScriptVerifier { ctx: TxContext::new(&REGTEST) }
}

/// A regtest block on `prev` at `height`, paying `subsidy` to OP_TRUE, with `txs` after the
/// coinbase; `tag` makes the coinbase (and so the block) unique.
fn mine(prev: &BlockHeader, height: u32, txs: Vec<Transaction>, tag: u8) -> Block {
    mine_wide(prev, height, txs, tag, 1)
}

/// [`mine`] with the subsidy split over `outputs` coinbase outputs.
fn mine_wide(prev: &BlockHeader, height: u32, txs: Vec<Transaction>, tag: u8, outputs: i64) -> Block {
    let values = vec![REGTEST.subsidy(height) / outputs; outputs as usize];
    let mut transactions = vec![blocks::coinbase(height, Some(tag), &values)];
    transactions.extend(txs);
    blocks::solved_block(prev, prev.time + 1, transactions)
}

/// `n` blocks on `prev` (at `prev_height`).
fn mine_chain(prev: &BlockHeader, prev_height: u32, n: u32, tag: u8) -> Vec<Arc<Block>> {
    let mut out: Vec<Arc<Block>> = Vec::new();
    let mut last = *prev;
    for i in 1..=n {
        let b = mine(&last, prev_height + i, Vec::new(), tag);
        last = b.header;
        out.push(Arc::new(b));
    }
    out
}

fn load_fixture(state: &ChainState, blocks: &[Arc<Block>]) {
    for (h, b) in blocks.iter().enumerate().skip(1) {
        let update = state.accept_block(b.clone(), &verifier()).unwrap_or_else(|e| panic!("block {h}: {e}"));
        assert!(update.invalid.is_empty(), "block {h}: {:?}", update.invalid);
        assert_eq!(update.new_tip, Some((h as u32, b.hash())));
    }
}

/// The stats of a fresh set with `blocks` connected in order (no persistence involved).
fn recount(blocks: &[Arc<Block>]) -> bsv_relay::chain::UtxoStats {
    let set = UtxoSet::new(&REGTEST);
    for (h, b) in blocks.iter().enumerate().skip(1) {
        connect_block(&set, b, h as u32, &REGTEST, u64::MAX, &NoScriptCheck).expect("recount connects");
    }
    set.stats()
}

fn open(dir: &Path) -> ChainState {
    ChainState::open(dir, &REGTEST, opts()).expect("chain state opens")
}

/// A coins cache far smaller than the fixture's set (about 250 coins take ~60 kB cached): it is
/// flushed and evicted every few blocks, and most coins are read back from disk.
const SMALL_CACHE: usize = 12 * 1024;

fn open_small(dir: &Path) -> ChainState {
    let opts = ChainOptions { coins_cache_bytes: SMALL_CACHE, ..opts() };
    ChainState::open(dir, &REGTEST, opts).expect("chain state opens")
}

/// The time-based flush: with the cache far from full, a node connecting blocks writes them
/// only once the flush interval has passed since the last flush — at the default ten minutes
/// never during this test, with the interval at zero after every block, each leaving nothing to
/// write.
#[test]
fn the_coins_cache_is_flushed_when_the_interval_has_passed_although_it_has_room() {
    let blocks = fixture_blocks();
    let dir = TempDir::new();
    let state = open(&dir.0);
    load_fixture(&state, &blocks[..=5]);
    let cache = state.coins_cache_stats();
    assert_eq!(cache.flushes, 0, "room left and ten minutes not passed: {cache:?}");
    assert!(cache.dirty > 0, "the connected blocks wait in the cache: {cache:?}");
    drop(state);

    let every_block = ChainOptions { flush_interval: std::time::Duration::ZERO, ..opts() };
    let state = ChainState::open(&dir.0, &REGTEST, every_block).expect("chain state opens");
    let before = state.coins_cache_stats().flushes;
    for (h, b) in blocks.iter().enumerate().skip(6) {
        let update = state.accept_block(b.clone(), &verifier()).unwrap_or_else(|e| panic!("block {h}: {e}"));
        assert_eq!(update.new_tip, Some((h as u32, b.hash())));
        let cache = state.coins_cache_stats();
        assert_eq!(cache.flushes, before + (h as u64 - 5), "one flush per block connected: {cache:?}");
        assert_eq!(cache.dirty, 0, "block {h} written: {cache:?}");
        assert!(cache.bytes <= cache.limit, "{cache:?}");
    }
    assert_eq!(state.utxo().stats(), recount(&blocks));
}

#[test]
fn the_fixture_chain_is_validated_stored_and_reloaded_without_its_blocks() {
    let blocks = fixture_blocks();
    let dir = TempDir::new();
    let expected = recount(&blocks);
    {
        let state = open(&dir.0);
        load_fixture(&state, &blocks);
        assert_eq!(state.tip(), (TIP, blocks[TIP as usize].hash()));
        assert_eq!(state.utxo().stats(), expected);
        // A second copy of a block is a duplicate, not an error.
        assert!(state.accept_block(blocks[50].clone(), &verifier()).expect("duplicate").duplicate);
    }
    let state = open(&dir.0);
    assert_eq!(state.tip(), (TIP, blocks[TIP as usize].hash()));
    assert_eq!(state.utxo().stats(), expected);
    assert!(state.activate(&verifier()).expect("activate").connected.is_empty());
    for (h, b) in blocks.iter().enumerate() {
        assert!(state.has_block(&b.hash()) || h == 0);
        assert_eq!(state.active_hash_at(h as u32), Some(b.hash()));
        assert_eq!(state.active_height_of(&b.hash()), Some(h as u32));
        let raw = state.block_bytes(&b.hash()).expect("stored");
        assert_eq!(hex::encode(&raw), BLOCKS_HEX.lines().nth(h).expect("line").trim());
    }
    // The fixture's mempool transactions spend coins of the reloaded set.
    let view = state.utxo();
    for tx in mempool() {
        for input in &tx.inputs {
            let in_chain = bsv_relay::validation::CoinView::coin(view, &input.prev_out).is_some();
            let in_mempool = mempool().iter().any(|p| p.txid() == input.prev_out.txid);
            assert!(in_chain || in_mempool, "mempool tx {} spends an unknown coin", tx.txid());
        }
    }
}

#[test]
fn blocks_arriving_out_of_order_connect_once_the_gap_is_filled() {
    let blocks = fixture_blocks();
    let state = ChainState::in_memory(&REGTEST, opts());
    let headers: Vec<BlockHeader> = blocks[1..=20].iter().map(|b| b.header).collect();
    state.headers().write().expect("tree").accept_headers(&headers, u32::MAX / 2).expect("headers");
    assert_eq!(state.blocks_to_download(100, 1024).len(), 20);
    for h in (2..=20).rev() {
        let update = state.accept_block(blocks[h].clone(), &verifier()).expect("stored");
        assert!(update.connected.is_empty(), "block {h} cannot connect before block 1");
    }
    assert_eq!(state.blocks_to_download(100, 1024), vec![(blocks[1].hash(), 1)]);
    let update = state.accept_block(blocks[1].clone(), &verifier()).expect("connects");
    assert_eq!(update.connected.len(), 20);
    assert_eq!(state.tip(), (20, blocks[20].hash()));
    assert!(state.blocks_to_download(100, 1024).is_empty());
}

#[test]
fn a_header_seen_first_without_its_block_does_not_keep_a_rival_block_out() {
    let blocks = fixture_blocks();
    let state = ChainState::in_memory(&REGTEST, opts());
    load_fixture(&state, &blocks[..=10]);
    let tip = blocks[10].header;
    // Two blocks at height 11, equal work: the header of `withheld` arrives first (the best header
    // by arrival) and its block does not; `delivered` comes whole.
    let withheld = Arc::new(mine(&tip, 11, Vec::new(), 0xa1));
    let delivered = Arc::new(mine(&tip, 11, Vec::new(), 0xa2));
    state.headers().write().expect("tree").accept_headers(&[withheld.header], u32::MAX / 2).expect("header");
    assert_eq!(state.headers().read().expect("tree").best_hash(), withheld.hash());
    let update = state.accept_block(delivered.clone(), &verifier()).expect("stored");
    assert_eq!(update.new_tip, Some((11, delivered.hash())), "the block we hold becomes the tip");
    // The withheld block arriving later does not move the tip: equal work, first connected wins.
    let update = state.accept_block(withheld.clone(), &verifier()).expect("stored");
    assert!(update.connected.is_empty());
    assert_eq!(state.tip(), (11, delivered.hash()));
    // A child of the withheld block has more work and wins as usual.
    let child = Arc::new(mine(&withheld.header, 12, Vec::new(), 0xa3));
    let update = state.accept_block(child.clone(), &verifier()).expect("reorganises");
    assert_eq!(update.new_tip, Some((12, child.hash())));
    assert_eq!(state.active_hash_at(11), Some(withheld.hash()));
}

#[test]
fn a_fork_with_more_work_reorganises_and_back() {
    let blocks = fixture_blocks();
    let dir = TempDir::new();
    let state = open(&dir.0);
    load_fixture(&state, &blocks);
    // Seven blocks on 110 outweigh the five fixture blocks above it.
    let fork = mine_chain(&blocks[110].header, 110, 7, 1);
    for b in &fork[..5] {
        let update = state.accept_block(b.clone(), &verifier()).expect("fork block");
        assert!(update.connected.is_empty(), "equal or less work: no reorganisation");
    }
    let update = state.accept_block(fork[5].clone(), &verifier()).expect("fork block");
    assert_eq!(update.disconnected.len(), 5);
    assert_eq!(update.connected.len(), 6);
    let update = state.accept_block(fork[6].clone(), &verifier()).expect("fork block");
    assert_eq!(update.new_tip, Some((117, fork[6].hash())));
    let mut forked: Vec<Arc<Block>> = blocks[..=110].to_vec();
    forked.extend(fork.iter().cloned());
    assert_eq!(state.utxo().stats(), recount(&forked));

    // The original chain grows to 118 and wins again.
    let back = mine_chain(&blocks[115].header, 115, 3, 2);
    for b in &back {
        state.accept_block(b.clone(), &verifier()).expect("original chain block");
    }
    assert_eq!(state.tip(), (118, back[2].hash()));
    let mut original = blocks.clone();
    original.extend(back.iter().cloned());
    assert_eq!(state.utxo().stats(), recount(&original));
    let tips = state.chain_tips();
    assert_eq!(tips[0].status, TipStatus::Active);
    let fork_tip = tips.iter().find(|t| t.hash == fork[6].hash()).expect("fork tip listed");
    assert_eq!((fork_tip.status, fork_tip.branch_len), (TipStatus::ValidFork, 7));
    drop(state);
    let state = open(&dir.0);
    assert_eq!(state.tip(), (118, back[2].hash()));
    assert_eq!(state.utxo().stats(), recount(&original));
}

#[test]
fn invalidate_and_reconsider_move_the_active_chain() {
    let blocks = fixture_blocks();
    let state = ChainState::in_memory(&REGTEST, opts());
    load_fixture(&state, &blocks);
    let update = state.invalidate_block(&blocks[100].hash(), &verifier()).expect("invalidate");
    assert_eq!(update.disconnected.len(), 16);
    assert_eq!(state.tip(), (99, blocks[99].hash()));
    assert_eq!(state.utxo().stats(), recount(&blocks[..=99]));
    let tips = state.chain_tips();
    assert!(tips.iter().any(|t| t.hash == blocks[115].hash() && t.status == TipStatus::Invalid));
    assert!(matches!(
        state.accept_block(blocks[100].clone(), &verifier()),
        Err(ChainError::KnownInvalid(_)) | Err(ChainError::Header(_))
    ));
    let update = state.reconsider_block(&blocks[100].hash(), &verifier()).expect("reconsider");
    assert_eq!(update.connected.len(), 16);
    assert_eq!(state.tip(), (TIP, blocks[TIP as usize].hash()));
    assert!(matches!(state.invalidate_block(&REGTEST.genesis_hash(), &verifier()), Err(ChainError::Genesis)));
}

#[test]
fn an_invalid_block_is_marked_with_its_descendants_and_the_tip_stays() {
    let blocks = fixture_blocks();
    let dir = TempDir::new();
    let state = open(&dir.0);
    load_fixture(&state, &blocks);
    // The coinbase claims one satoshi more than the subsidy: only connection can tell.
    let mut greedy = mine(&blocks[115].header, 116, Vec::new(), 3);
    let mut cb: TxFields = (*greedy.transactions[0]).clone();
    cb.outputs[0].value += 1;
    greedy = rebuild(&greedy.header, vec![Transaction::from_fields(cb)]);
    let update = state.accept_block(Arc::new(greedy.clone()), &verifier()).expect("stored, then refused");
    assert!(matches!(update.invalid[..], [(h, BlockError::CoinbaseAmount { .. })] if h == greedy.hash()));
    assert_eq!(state.tip(), (TIP, blocks[TIP as usize].hash()));
    let child = mine(&greedy.header, 117, Vec::new(), 3);
    assert!(state.accept_block(Arc::new(child), &verifier()).is_err(), "a child of an invalid block is refused");
    drop(state);
    // The invalid mark survives a restart.
    let state = open(&dir.0);
    assert!(matches!(state.accept_block(Arc::new(greedy), &verifier()), Err(ChainError::KnownInvalid(_))));
}

/// `block` with its transactions replaced and the proof of work solved again.
fn rebuild(prev_header: &BlockHeader, txs: Vec<Transaction>) -> Block {
    let (root, _) = merkle_root(txs.iter().map(Transaction::txid).collect());
    let mut header = BlockHeader { merkle_root: root, nonce: 0, ..*prev_header };
    bsv_relay::mining::solve(&REGTEST, &mut header);
    Block::new(header, txs)
}

#[test]
fn a_cve_2012_2459_mutation_does_not_poison_the_genuine_block() {
    let blocks = fixture_blocks();
    let state = ChainState::in_memory(&REGTEST, opts());
    load_fixture(&state, &blocks);
    // Coinbase + the first two fixture mempool transactions: three leaves, so repeating the last
    // one keeps the merkle root and the block hash.
    let txs: Vec<Transaction> = mempool().into_iter().take(2).collect();
    let genuine = mine(&blocks[115].header, 116, txs, 4);
    assert_eq!(genuine.transactions.len(), 3);
    let mut dup = genuine.transactions.clone();
    dup.push(dup[2].clone());
    let mutated = Block::new(genuine.header, dup);
    assert_eq!(mutated.hash(), genuine.hash());
    let err = state.accept_block(Arc::new(mutated), &verifier()).expect_err("mutated block refused");
    assert!(matches!(err, ChainError::Block(BlockError::DuplicateTransactions)), "{err}");
    assert!(!state.has_block(&genuine.hash()));
    let update = state.accept_block(Arc::new(genuine.clone()), &verifier()).expect("genuine block");
    assert_eq!(update.new_tip, Some((116, genuine.hash())));
}

#[test]
fn reindex_chainstate_rebuilds_the_set_from_the_stored_blocks() {
    let blocks = fixture_blocks();
    let dir = TempDir::new();
    let expected = recount(&blocks);
    {
        let state = open_small(&dir.0);
        load_fixture(&state, &blocks);
    }
    let reindex = ChainOptions { coins_cache_bytes: SMALL_CACHE, reindex_chainstate: true, ..opts() };
    let state = ChainState::open(&dir.0, &REGTEST, reindex).expect("opens for a reindex");
    assert_eq!(state.tip().0, 0, "the coins are forgotten, the blocks are not");
    assert_eq!(state.utxo().stats().txouts, 0);
    let update = state.activate(&verifier()).expect("every stored block connects again");
    assert_eq!(update.connected.len(), TIP as usize);
    assert_eq!(state.tip(), (TIP, blocks[TIP as usize].hash()));
    assert_eq!(state.utxo().stats(), expected);
    let stored = state.utxo_counts().expect("counts");
    assert_eq!((stored.txouts, stored.total_amount), (expected.txouts, expected.total_amount));
    drop(state);
    // Without the option, the rebuilt set is simply loaded.
    let state = open_small(&dir.0);
    assert_eq!(state.tip(), (TIP, blocks[TIP as usize].hash()));
    assert_eq!(state.utxo().stats(), expected);
}

/// Environment variable that turns the test binary into the child `kill -9` interrupts.
const CRASH_CHILD_DIR: &str = "BSV_RELAY_CRASH_CHILD_DIR";

/// The child: connects the fixture chain and then coinbase-only blocks of 20 outputs forever (so
/// the small cache is flushed every few blocks), printing each height.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CRASH_CHILD_DIR) else { return };
    let state = open_small(Path::new(&dir));
    // Blocks stored above the last flush are connected again first (the startup replay).
    state.activate(&NoScriptCheck).expect("replay");
    let blocks = fixture_blocks();
    let (mut height, _) = state.tip();
    let mut prev = state.tip_header();
    if height == 0 {
        load_fixture(&state, &blocks);
        height = TIP;
        prev = blocks[TIP as usize].header;
    }
    loop {
        let b = mine_wide(&prev, height + 1, Vec::new(), 5, 20);
        state.accept_block(Arc::new(b.clone()), &NoScriptCheck).expect("child connects");
        height += 1;
        prev = b.header;
        println!("connected {height}");
    }
}

#[test]
fn a_kill_9_while_connecting_leaves_a_consistent_chain() {
    use std::io::{BufRead, BufReader};
    let dir = TempDir::new();
    for round in 0..3 {
        let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CRASH_CHILD_DIR, &dir.0)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("child starts");
        let stdout = child.stdout.take().expect("piped");
        let mut lines = BufReader::new(stdout).lines();
        // Let it get well into the hand-mined blocks, then kill it mid-stream.
        let target = 130 + round * 40;
        let mut last = 0;
        for line in lines.by_ref() {
            let line = line.expect("child output");
            if let Some(h) = line.strip_prefix("connected ") {
                last = h.parse::<u32>().expect("height");
                if last >= target {
                    break;
                }
            }
        }
        assert!(last >= target, "the child stopped early");
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");

        let state = open_small(&dir.0);
        let (height, _) = state.tip();
        eprintln!("round {round}: killed after {last}, reopened at {height}");
        assert!(height >= 100, "round {round}: the cache was flushed many times, tip {height}");
        let (_, limit) = state.utxo().cache_usage();
        assert!(state.utxo().whole_set_bytes() > limit as u64, "the set is bigger than the cache");
        // Whatever the tip, the stored UTXO set is exactly the set of the chain up to it.
        let chain: Vec<Arc<Block>> = (0..=height)
            .map(|h| {
                let hash = state.active_hash_at(h).expect("active");
                Arc::new(state.block(&hash).expect("stored block"))
            })
            .collect();
        let expected = recount(&chain);
        assert_eq!(state.utxo().stats(), expected, "round {round} at height {height}");
        // The coins on disk themselves, counted one by one, are that set too.
        let stored = state.utxo_counts().expect("the stored set counts");
        assert_eq!(
            (stored.txouts, stored.total_amount, stored.bogosize),
            (expected.txouts, expected.total_amount, expected.bogosize),
            "round {round}"
        );
        // The replay connects every block the child stored durably above the flushed tip.
        state.activate(&NoScriptCheck).expect("replay");
        let (replayed, _) = state.tip();
        assert!(replayed >= height);
        let chain: Vec<Arc<Block>> = (0..=replayed)
            .map(|h| Arc::new(state.block(&state.active_hash_at(h).expect("active")).expect("stored")))
            .collect();
        assert_eq!(state.utxo().stats(), recount(&chain), "round {round} after the replay to {replayed}");
    }
}
