//! The header tree and the difficulty rules on hand-made chains, with a fake clock: every header rule
//! rejected at its boundary and accepted just inside it, the difficulty algorithms against their
//! formulas (computed here independently), reorganisations, the regtest fixture chain, and the
//! headers-first sync helpers.

use bsv_relay::chain::headers::{BlockRef, HeaderError, HeaderTree, MAX_HEADERS};
use bsv_relay::chain::params::{ChainParams, MAIN, REGTEST, TEST};
use bsv_relay::chain::pow::{self, block_work, check_proof_of_work, next_work_required, HeaderInfo};
use bsv_relay::chain::presync::{HeadersSync, SyncError, SyncProgress};
use bsv_relay::chain::U256;
use bsv_relay::wire::{BlockHash, BlockHeader, Hash256};

const REGTEST_BITS: u32 = 0x207fffff;
/// A fake "now", well after the regtest genesis (2011-02-02).
const NOW: u32 = 1_700_000_000;

/// Finds a nonce that makes `h` meet (or, with `valid = false`, miss) its own target.
fn mine(mut h: BlockHeader, params: &ChainParams, valid: bool) -> BlockHeader {
    while check_proof_of_work(&h.hash(), h.bits, params) != valid {
        h.nonce += 1;
    }
    h
}

fn child(prev: &BlockHeader, time: u32) -> BlockHeader {
    child_with(prev, time, prev.bits, 4)
}

fn child_with(prev: &BlockHeader, time: u32, bits: u32, version: i32) -> BlockHeader {
    let h = BlockHeader {
        version,
        prev_block: prev.hash(),
        // Distinct merkle roots keep sibling headers distinct.
        merkle_root: Hash256([time as u8 ^ (time >> 8) as u8; 32]),
        time,
        bits,
        nonce: 0,
    };
    mine(h, &REGTEST, true)
}

fn regtest() -> HeaderTree {
    HeaderTree::new(REGTEST.clone())
}

/// Extends the chain at `from` by `n` headers, 600 s apart (plus `salt` to make a distinct branch).
fn extend(tree: &mut HeaderTree, from: BlockHeader, n: usize, salt: u32) -> Vec<BlockHeader> {
    let mut out = Vec::new();
    let mut prev = from;
    for _ in 0..n {
        let h = child(&prev, prev.time + 600 + salt);
        tree.accept_header(&h, NOW).expect("a valid regtest header");
        out.push(h);
        prev = h;
    }
    out
}

fn genesis(tree: &HeaderTree) -> BlockHeader {
    tree.genesis().header
}

#[test]
fn mined_regtest_headers_are_accepted_and_high_hash_is_rejected() {
    let mut tree = regtest();
    let g = genesis(&tree);
    let h1 = child(&g, g.time + 600);
    let a = tree.accept_header(&h1, NOW).unwrap();
    assert!(a.is_new);
    assert_eq!((a.height, a.hash), (1, h1.hash()));
    assert!(a.tip_change.unwrap().is_extension());
    assert!(!tree.accept_header(&h1, NOW).unwrap().is_new, "a known header is accepted again");

    let bad = mine(BlockHeader { nonce: 0, ..child(&h1, h1.time + 600) }, &REGTEST, false);
    let err = tree.accept_header(&bad, NOW).unwrap_err();
    assert!(matches!(err, HeaderError::HighHash { .. }), "{err}");
    assert_eq!((err.reject_reason(), err.misbehavior()), ("high-hash", Some(50)));
    assert_eq!(tree.len(), 2, "nothing stored");
}

#[test]
fn proof_of_work_boundary_is_hash_equal_to_target() {
    // Mainnet difficulty 1: a hash equal to the target passes, one more fails.
    let target = U256::from_compact(0x1d00ffff).value;
    let at = Hash256(target.to_le_bytes());
    let above = Hash256((target + U256::ONE).to_le_bytes());
    assert!(check_proof_of_work(&at, 0x1d00ffff, &MAIN));
    assert!(!check_proof_of_work(&above, 0x1d00ffff, &MAIN));
    // Regtest, where real headers are mined in these tests.
    let target = U256::from_compact(REGTEST_BITS).value;
    assert!(check_proof_of_work(&Hash256(target.to_le_bytes()), REGTEST_BITS, &REGTEST));
    assert!(!check_proof_of_work(&Hash256((target + U256::ONE).to_le_bytes()), REGTEST_BITS, &REGTEST));
}

#[test]
fn timestamp_must_exceed_median_time_past() {
    let mut tree = regtest();
    let g = genesis(&tree);
    let chain = extend(&mut tree, g, 12, 0);
    let tip = *chain.last().unwrap();
    let mtp = tree.median_time_past(tree.best_index());
    // The median of the last 11 of 600-s spaced blocks is the 6th from the tip.
    assert_eq!(mtp, chain[chain.len() - 6].time);

    let at_mtp = child(&tip, mtp);
    let err = tree.accept_header(&at_mtp, NOW).unwrap_err();
    assert!(matches!(err, HeaderError::TimeTooOld { median_time_past, .. } if median_time_past == mtp));
    assert_eq!((err.reject_reason(), err.misbehavior()), ("time-too-old", None));

    let after = child(&tip, mtp + 1);
    assert_eq!(tree.accept_header(&after, NOW).unwrap().height, 13);
}

#[test]
fn timestamp_may_be_two_hours_ahead_of_adjusted_time_and_no_more() {
    let mut tree = regtest();
    let g = genesis(&tree);
    let now = g.time + 10_000;
    let too_new = child(&g, now + 7201);
    let err = tree.accept_header(&too_new, now).unwrap_err();
    assert!(matches!(err, HeaderError::TimeTooNew { .. }), "{err}");
    assert_eq!(err.reject_reason(), "time-too-new");
    assert_eq!(err.misbehavior(), None, "a clock difference is not punished");

    let edge = child(&g, now + 7200);
    tree.accept_header(&edge, now).unwrap();
    // The same header is fine once the clock has moved on.
    let mut later = regtest();
    later.accept_header(&too_new, now + 1).unwrap();
}

#[test]
fn regtest_nbits_must_equal_the_previous() {
    let mut tree = regtest();
    let g = genesis(&tree);
    // A harder target than required still fails: regtest does not retarget.
    let harder = child_with(&g, g.time + 600, 0x207ffffe, 1);
    let err = tree.accept_header(&harder, NOW).unwrap_err();
    assert_eq!(
        err,
        HeaderError::BadDiffBits { hash: harder.hash(), height: 1, bits: 0x207ffffe, expected: REGTEST_BITS }
    );
    assert_eq!((err.reject_reason(), err.misbehavior()), ("bad-diffbits", Some(100)));
    tree.accept_header(&child_with(&g, g.time + 600, REGTEST_BITS, 1), NOW).unwrap();
}

#[test]
fn unknown_parent_is_prev_blk_not_found() {
    let mut tree = regtest();
    let g = genesis(&tree);
    let h1 = child(&g, g.time + 600);
    let h2 = child(&h1, h1.time + 600);
    let err = tree.accept_header(&h2, NOW).unwrap_err();
    assert_eq!(err, HeaderError::PrevNotFound { hash: h2.hash(), prev: h1.hash() });
    assert_eq!((err.reject_reason(), err.misbehavior()), ("prev-blk-not-found", Some(10)));
}

#[test]
fn block_version_rules_follow_height() {
    // Regtest: version ≥ 3 from height 1251 (BIP66), ≥ 4 from 1351 (BIP65); BIP34 never.
    let mut tree = regtest();
    let g = genesis(&tree);
    let mut prev = g;
    for h in 1..1251 {
        prev = child_with(&prev, g.time + 600 * h, REGTEST_BITS, 1);
        tree.accept_header(&prev, NOW).unwrap();
    }
    let v2 = child_with(&prev, prev.time + 600, REGTEST_BITS, 2);
    let err = tree.accept_header(&v2, NOW).unwrap_err();
    assert!(matches!(err, HeaderError::BadVersion { height: 1251, version: 2, .. }), "{err}");
    assert_eq!((err.reject_reason(), err.reject_code(), err.misbehavior()), ("bad-version", 0x11, None));
    for h in 1251..1351 {
        prev = child_with(&prev, g.time + 600 * h, REGTEST_BITS, 3);
        tree.accept_header(&prev, NOW).unwrap();
    }
    let v3 = child_with(&prev, prev.time + 600, REGTEST_BITS, 3);
    assert!(matches!(tree.accept_header(&v3, NOW), Err(HeaderError::BadVersion { height: 1351, .. })));
    let v4 = child_with(&prev, prev.time + 600, REGTEST_BITS, 4);
    assert_eq!(tree.accept_header(&v4, NOW).unwrap().height, 1351);
}

#[test]
fn checkpoints_pin_their_height_and_forbid_forks_below() {
    // A regtest chain whose height-3 header is pinned.
    let mut scratch = regtest();
    let g = genesis(&scratch);
    let main = extend(&mut scratch, g, 4, 0);
    let pinned: &'static str = Box::leak(main[2].hash().to_string().into_boxed_str());
    let cps: &'static [(u32, &'static str)] =
        Box::leak(vec![(0, REGTEST.genesis_hash), (3, pinned)].into_boxed_slice());
    let mut tree = HeaderTree::new(ChainParams { checkpoints: cps, ..REGTEST.clone() });
    tree.accept_headers(&main[..2], NOW).unwrap();

    let other3 = child(&main[1], main[1].time + 601);
    let err = tree.accept_header(&other3, NOW).unwrap_err();
    assert!(matches!(err, HeaderError::CheckpointMismatch { height: 3, .. }), "{err}");
    assert_eq!((err.reject_reason(), err.reject_code(), err.misbehavior()), ("checkpoint mismatch", 0x43, Some(100)));

    tree.accept_headers(&main[2..], NOW).unwrap();
    // Below the checkpoint we now hold, no new branch may start.
    let fork2 = child(&main[0], main[0].time + 601);
    let err = tree.accept_header(&fork2, NOW).unwrap_err();
    assert!(matches!(err, HeaderError::ForkBeforeCheckpoint { height: 2, checkpoint_height: 3, .. }), "{err}");
    assert_eq!(err.misbehavior(), Some(100));
    // At or above it, forks are fine.
    let fork4 = child(&main[2], main[2].time + 601);
    tree.accept_header(&fork4, NOW).unwrap();
}

#[test]
fn reorganises_to_the_most_work_back_and_forth() {
    let mut tree = regtest();
    let g = genesis(&tree);
    let a = extend(&mut tree, g, 3, 0); // a[0..3] = heights 1..3
    assert_eq!(tree.best_hash(), a[2].hash());

    // b forks after a[0]: heights 2, 3 (equal work to a: first seen stays), then 4 (more work).
    let b2 = child(&a[0], a[0].time + 601);
    let b3 = child(&b2, b2.time + 600);
    assert!(tree.accept_header(&b2, NOW).unwrap().tip_change.is_none());
    assert!(tree.accept_header(&b3, NOW).unwrap().tip_change.is_none(), "equal work: first seen wins");
    let b4 = child(&b3, b3.time + 600);
    let change = tree.accept_header(&b4, NOW).unwrap().tip_change.expect("more work");
    assert!(!change.is_extension());
    assert_eq!((change.fork.height, change.fork.hash), (1, a[0].hash()));
    assert_eq!((change.old_tip.height, change.old_tip.hash), (3, a[2].hash()));
    assert_eq!((change.new_tip.height, change.new_tip.hash), (4, b4.hash()));
    let best: Vec<_> = (0..=4).map(|h| tree.best_at_height(h).unwrap().hash).collect();
    assert_eq!(best, [g.hash(), a[0].hash(), b2.hash(), b3.hash(), b4.hash()]);

    // a catches up (no switch at equal work) and overtakes: back to a, same fork point.
    let a4 = child(&a[2], a[2].time + 600);
    assert!(tree.accept_header(&a4, NOW).unwrap().tip_change.is_none());
    let a5 = child(&a4, a4.time + 600);
    let change = tree.accept_header(&a5, NOW).unwrap().tip_change.unwrap();
    assert_eq!((change.fork.height, change.old_tip.hash, change.new_tip.hash), (1, b4.hash(), a5.hash()));
    assert_eq!(tree.best_at_height(2).unwrap().hash, a[1].hash());
    assert_eq!(tree.best_chain().len(), 6);
    let b_tip = tree.index_of(&b4.hash()).unwrap();
    assert_eq!(tree.ancestor(b_tip, 2), tree.index_of(&b2.hash()));
    assert_eq!(tree.ancestor(b_tip, 1), tree.index_of(&a[0].hash()));
    assert_eq!(tree.fork_point(b_tip, tree.best_index()), tree.index_of(&a[0].hash()).unwrap());
    tree.check_invariants().unwrap();

    // The block layer finds a[1] invalid: best falls back to the b branch.
    let change = tree.mark_invalid(&a[1].hash()).unwrap().unwrap();
    assert_eq!((change.fork.height, change.new_tip.hash), (1, b4.hash()));
    let err = tree.accept_header(&child(&a5, a5.time + 600), NOW).unwrap_err();
    assert_eq!((err.reject_reason(), err.misbehavior()), ("bad-prevblk", Some(100)));
    assert_eq!(tree.accept_header(&a5, NOW).unwrap_err().reject_reason(), "duplicate");
    tree.check_invariants().unwrap();
}

#[test]
fn batch_rules_too_many_and_non_continuous() {
    let mut tree = regtest();
    let g = genesis(&tree);
    let mut scratch = regtest();
    let chain = extend(&mut scratch, g, 5, 0);

    let too_many = vec![chain[0]; MAX_HEADERS + 1];
    let err = tree.accept_headers(&too_many, NOW).unwrap_err();
    assert_eq!(err, HeaderError::TooManyHeaders { count: 2001, max: 2000 });
    assert_eq!((err.reject_reason(), err.misbehavior()), ("too-many-headers", Some(20)));

    let gap = [chain[0], chain[2]];
    let err = tree.accept_headers(&gap, NOW).unwrap_err();
    assert!(matches!(err, HeaderError::NonContinuous { position: 1, .. }));
    assert_eq!(err.misbehavior(), Some(20));
    assert_eq!(tree.len(), 1, "refused whole");

    // An invalid header mid-message: what came before is kept.
    let mut msg = chain[..3].to_vec();
    msg.push(mine(BlockHeader { nonce: 0, ..chain[3] }, &REGTEST, false));
    let out = tree.accept_headers(&msg, NOW).unwrap();
    assert_eq!((out.accepted, out.new), (3, 3));
    assert_eq!(out.last.unwrap().hash, chain[2].hash());
    assert_eq!(out.error.unwrap().reject_reason(), "high-hash");
    let change = out.tip_change.unwrap();
    assert_eq!((change.fork.height, change.new_tip.height), (0, 3));
}

#[test]
fn minimum_chain_work_keeps_cheap_chains_out() {
    // Regtest blocks are worth 2 each (genesis too): a minimum of 22 is reached at height 10.
    let mut scratch = regtest();
    let g = genesis(&scratch);
    let main = extend(&mut scratch, g, 12, 0);
    let fork = {
        let mut s = regtest();
        extend(&mut s, g, 2, 7)
    };
    let minimum = U256::from_u64(22);

    // A message proving less than the minimum is refused whole; so is a single header below it.
    let mut tree = regtest().with_minimum_chain_work(minimum);
    let err = tree.accept_headers(&main[..9], NOW).unwrap_err();
    assert_eq!(err, HeaderError::LowWork { hash: main[8].hash(), height: 9, chain_work: U256::from_u64(20), minimum });
    assert_eq!((err.reject_reason(), err.misbehavior()), ("low-work-headers", None));
    assert!(matches!(tree.accept_header(&main[0], NOW), Err(HeaderError::LowWork { height: 1, .. })));
    assert_eq!(tree.len(), 1);

    // Only headers meeting their targets count: a last header missing it proves nothing.
    let mut cheat = main[..10].to_vec();
    cheat[9] = mine(BlockHeader { nonce: 0, ..cheat[9] }, &REGTEST, false);
    assert!(matches!(tree.accept_headers(&cheat, NOW), Err(HeaderError::LowWork { .. })));
    assert_eq!(tree.len(), 1);

    // A message reaching the minimum is stored whole, its first headers included.
    let out = tree.accept_headers(&main[..10], NOW).unwrap();
    assert_eq!((out.new, tree.best_height()), (10, 10));
    // A fork below the minimum is refused; one near the tip has the work and is stored.
    assert!(matches!(tree.accept_headers(&fork, NOW), Err(HeaderError::LowWork { .. })));
    assert!(matches!(tree.accept_header(&fork[0], NOW), Err(HeaderError::LowWork { .. })));
    let near = child(&main[8], main[8].time + 601);
    assert_eq!(tree.accept_header(&near, NOW).unwrap().height, 10);
    tree.check_invariants().unwrap();
}

/// A peer's own regtest chain of `n` headers (`salt` makes distinct chains).
fn peer_chain(n: usize, salt: u32) -> (HeaderTree, Vec<BlockHeader>) {
    let mut peer = regtest();
    let g = genesis(&peer);
    let chain = extend(&mut peer, g, n, salt);
    (peer, chain)
}

/// Runs a two-pass sync against `peer` (answering our `getheaders` from its tree) until it ends.
fn run_sync(
    tree: &mut HeaderTree,
    peers: &mut dyn FnMut(bool) -> HeaderTree,
) -> Result<(SyncProgress, usize), SyncError> {
    let (mut sync, mut locator) = HeadersSync::new(tree, tree.best_index());
    let mut redownloading = false;
    let mut messages = 0;
    loop {
        let peer = peers(redownloading);
        let msg = peer.headers_after(&locator, &Hash256::ZERO, MAX_HEADERS);
        messages += 1;
        match sync.process(tree, &msg, NOW)? {
            SyncProgress::Continue { locator: l } => {
                if !redownloading {
                    assert_eq!(tree.len(), 1, "nothing stored during presync");
                }
                locator = l;
            }
            SyncProgress::Redownload { locator: l } => {
                assert_eq!(tree.len(), 1, "nothing stored during presync");
                redownloading = true;
                locator = l;
            }
            done @ SyncProgress::Done { .. } => return Ok((done, messages)),
        }
    }
}

#[test]
fn presync_validates_a_low_work_chain_then_stores_it_on_redownload() {
    let (peer, chain) = peer_chain(5000, 0);
    // Reached at height 4499 (2 × 4500), in the third message.
    let mut tree = regtest().with_minimum_chain_work(U256::from_u64(9000));
    assert!(matches!(tree.accept_headers(&chain[..2000], NOW), Err(HeaderError::LowWork { .. })));
    let (done, messages) = run_sync(&mut tree, &mut |_| peer.clone()).unwrap();
    assert_eq!(messages, 6, "three to presync, three to store");
    assert_eq!(done, SyncProgress::Done { last: BlockRef { height: 5000, hash: chain[4999].hash() } });
    assert_eq!(tree.best_hash(), chain[4999].hash());
    tree.check_invariants().unwrap();
    // From here on, ordinary messages extend the chain.
    let next = child(&chain[4999], chain[4999].time + 600);
    tree.accept_headers(&[next], NOW).unwrap();
}

#[test]
fn presync_refuses_a_chain_that_changes_between_passes() {
    let (honest, _) = peer_chain(5000, 0);
    let (other, _) = peer_chain(5000, 3);
    let mut tree = regtest().with_minimum_chain_work(U256::from_u64(9000));
    // The peer shows one chain, then serves another when asked again.
    let err =
        run_sync(&mut tree, &mut |redownload| if redownload { other.clone() } else { honest.clone() }).unwrap_err();
    assert!(matches!(err, SyncError::Mismatch { height: 2000, .. }), "{err}");
    assert_eq!((err.reject_reason(), err.misbehavior()), ("headers-sync-mismatch", None));
    assert_eq!(tree.len(), 1, "nothing of either chain stored");
}

#[test]
fn presync_ends_when_the_peer_chain_has_too_little_work() {
    let (peer, _) = peer_chain(3000, 0);
    let mut tree = regtest().with_minimum_chain_work(U256::from_u64(9000));
    let err = run_sync(&mut tree, &mut |_| peer.clone()).unwrap_err();
    assert!(matches!(err, SyncError::ChainTooLittleWork { height: 3000, .. }), "{err}");
    assert_eq!(err.misbehavior(), None);
    assert_eq!(tree.len(), 1);
}

#[test]
fn presync_applies_the_header_rules() {
    let (_, chain) = peer_chain(30, 0);
    let mut tree = regtest().with_minimum_chain_work(U256::from_u64(9000));
    let (mut sync, _) = HeadersSync::new(&tree, 0);
    let mut msg = chain.clone();
    msg[20] = mine(BlockHeader { nonce: 0, ..msg[20] }, &REGTEST, false);
    let err = sync.process(&mut tree, &msg, NOW).unwrap_err();
    assert_eq!((err.reject_reason(), err.misbehavior()), ("high-hash", Some(50)));
    let (mut sync, _) = HeadersSync::new(&tree, 0);
    let too_new = sync.process(&mut tree, &chain[..5], chain[4].time - 7201).unwrap_err();
    assert_eq!((too_new.reject_reason(), too_new.misbehavior()), ("time-too-new", None));
    let (mut sync, _) = HeadersSync::new(&tree, 0);
    let bits = [child_with(&genesis(&tree), genesis(&tree).time + 600, 0x207ffffe, 4)];
    assert_eq!(sync.process(&mut tree, &bits, NOW).unwrap_err().reject_reason(), "bad-diffbits");
    assert_eq!(tree.len(), 1);
}

#[test]
fn fixture_chain_imports_as_headers() {
    let text = include_str!("data/fixtures/blocks.hex");
    let headers: Vec<BlockHeader> = text
        .lines()
        .map(|l| {
            let b: [u8; 80] = hex::decode(&l[..160]).unwrap().try_into().unwrap();
            BlockHeader::from_array(&b)
        })
        .collect();
    assert_eq!(headers.len(), 116);
    let mut tree = regtest();
    assert_eq!(headers[0].hash(), tree.genesis().hash);
    let now = headers.last().unwrap().time;
    let out = tree.accept_headers(&headers, now).unwrap();
    assert_eq!((out.accepted, out.new, out.error), (116, 115, None));
    let tip: BlockHash = "6fcd42cf7ce6566a33774b0bbf260da553942347318ccf2f896392cc98b2d792".parse().unwrap();
    assert_eq!(tree.best_hash(), tip);
    assert_eq!(tree.best_height(), 115);
    // Work per block 2^256 / (target + 1), computed here as floor((2^256 - 1) / (target + 1)) plus
    // the carry when the remainder reaches target: 2 for 0x207fffff, so 0xe8 at height 115.
    let mut total = U256::ZERO;
    for h in &headers {
        let t1 = U256::from_compact(h.bits).value + U256::ONE;
        let (q, r) = U256::MAX.div_rem(t1);
        total += if r + U256::ONE == t1 { q + U256::ONE } else { q };
    }
    assert_eq!(total, U256::from_u64(0xe8));
    assert_eq!(tree.best_tip().chain_work, total);
    tree.check_invariants().unwrap();
}

#[test]
fn locator_is_tip_ten_steps_then_doubling_then_genesis() {
    let mut tree = regtest();
    let g = genesis(&tree);
    let chain = extend(&mut tree, g, 100, 0);
    let heights: Vec<u32> = tree.locator().iter().map(|h| tree.get(h).unwrap().height).collect();
    let mut expected: Vec<u32> = (90..=100).rev().collect();
    expected.extend([89, 87, 83, 75, 59, 27, 0]);
    assert_eq!(heights, expected);
    assert_eq!(tree.locator()[0], chain[99].hash());
    assert_eq!(*tree.locator().last().unwrap(), g.hash());
    // Short chains: every block.
    let mut short = regtest();
    extend(&mut short, g, 3, 0);
    assert_eq!(short.locator().len(), 4);
    assert_eq!(regtest().locator(), vec![g.hash()]);
}

#[test]
fn getheaders_answers_the_requested_range() {
    let mut tree = regtest();
    let g = genesis(&tree);
    let chain = extend(&mut tree, g, 30, 0);
    let hash = |h: usize| chain[h - 1].hash();
    let heights = |hs: Vec<BlockHeader>| {
        hs.iter()
            .map(|h| chain.iter().position(|c| c == h).expect("a main-chain header") as u32 + 1)
            .collect::<Vec<u32>>()
    };
    let none = Hash256::ZERO;

    assert_eq!(heights(tree.headers_after(&[hash(10), g.hash()], &none, 2000)), (11..=30).collect::<Vec<_>>());
    assert_eq!(heights(tree.headers_after(&[hash(10)], &hash(15), 2000)), (11..=15).collect::<Vec<_>>());
    assert_eq!(heights(tree.headers_after(&[hash(10)], &none, 3)), [11, 12, 13]);
    // The newest locator entry on our chain wins.
    assert_eq!(heights(tree.headers_after(&[hash(20), hash(10)], &none, 2000)).first(), Some(&21));
    // Unknown locator hashes: start after genesis.
    assert_eq!(heights(tree.headers_after(&[Hash256([7; 32])], &none, 2000)), (1..=30).collect::<Vec<_>>());
    // Our tip: nothing to send.
    assert!(tree.headers_after(&[hash(30)], &none, 2000).is_empty());
    // Null locator: the stop header alone, or nothing.
    assert_eq!(heights(tree.headers_after(&[], &hash(7), 2000)), [7]);
    assert!(tree.headers_after(&[], &Hash256([7; 32]), 2000).is_empty());
    // A locator on a side branch: start after where it leaves our chain.
    let side = child(&chain[4], chain[4].time + 601);
    tree.accept_header(&side, NOW).unwrap();
    assert_eq!(heights(tree.headers_after(&[side.hash(), hash(5)], &none, 2000)).first(), Some(&6));
    // A peer ahead of us on our chain: nothing to send.
    let ahead = child(&chain[29], chain[29].time + 600);
    tree.accept_header(&ahead, NOW).unwrap();
    assert_eq!(tree.best_height(), 31);

    // getblocks: at most 500, stop excluded.
    assert_eq!(tree.block_hashes_after(&[hash(10)], &hash(15)), (11..15).map(hash).collect::<Vec<_>>());
    assert_eq!(tree.block_hashes_after(&[], &none).len(), 31);
}

#[test]
fn getheaders_and_getblocks_are_capped() {
    let mut tree = regtest();
    let g = genesis(&tree);
    extend(&mut tree, g, 2100, 0);
    let none = Hash256::ZERO;
    let hs = tree.headers_after(&[g.hash()], &none, usize::MAX);
    assert_eq!(hs.len(), 2000);
    assert_eq!(hs[0].prev_block, g.hash());
    assert_eq!(tree.block_hashes_after(&[g.hash()], &none).len(), 500);
}

// ---- Difficulty algorithms on synthetic chains (no mining). ----

/// A chain of `n` blocks with the given bits and times, chain work accumulated from the bits.
fn synthetic(times: &[u32], bits: &[u32]) -> Vec<HeaderInfo> {
    let mut work = U256::ZERO;
    times
        .iter()
        .zip(bits)
        .map(|(&time, &bits)| {
            work += block_work(bits);
            HeaderInfo { time, bits, chain_work: work }
        })
        .collect()
}

/// Mainnet with the DAA from `daa` on.
fn main_with_daa(daa: u32) -> ChainParams {
    let mut p = MAIN.clone();
    p.activations.daa = daa;
    p
}

/// floor((2^256 - w) / w), computed as floor(2^256 / w) - 1 without 2^256 itself.
fn neg_div(w: U256) -> U256 {
    let (q, r) = U256::MAX.div_rem(w);
    let floor_2_256 = if r + U256::ONE == w { q + U256::ONE } else { q };
    floor_2_256 - U256::ONE
}

fn median_of_three(blocks: [&HeaderInfo; 3]) -> &HeaderInfo {
    let mut sorted = blocks;
    sorted.sort_by_key(|b| b.time);
    sorted[1]
}

/// The cw-144 formula of svnode-protocol.md §2.5, written out from scratch.
fn daa_expected(chain: &[HeaderInfo], params: &ChainParams) -> u32 {
    let p = chain.len() - 1;
    let last = median_of_three([&chain[p - 2], &chain[p - 1], &chain[p]]);
    let f = p - 144;
    let first = median_of_three([&chain[f - 2], &chain[f - 1], &chain[f]]);
    let work = (last.chain_work - first.chain_work).wrapping_mul_u64(600);
    let timespan = (last.time as i64 - first.time as i64).clamp(72 * 600, 288 * 600) as u64;
    let work = work.div_rem(U256::from_u64(timespan)).0;
    let target = neg_div(work).min(U256::from_compact(params.pow_limit_bits).value);
    target.to_compact()
}

#[test]
fn daa_matches_the_cw144_formula() {
    let params = main_with_daa(2016);
    let n = 2016 + 147 + 20;
    // Bits drift and block times vary (some out of order) so medians and work both matter.
    let bits: Vec<u32> = (0..n).map(|i| 0x1b04_0000 + (i as u32 * 7919) % 0x0003_0000).collect();
    let mut t = 1_600_000_000u32;
    let times: Vec<u32> = (0..n)
        .map(|i| {
            t += 300 + (i as u32 * 104_729) % 900;
            if i % 17 == 0 {
                t - 2000
            } else {
                t
            }
        })
        .collect();
    let chain = synthetic(&times, &bits);
    for tip in [2016, 2017, 2100, n - 1] {
        let view = &chain[..=tip];
        let got = next_work_required(view, view[tip].time + 600, &params);
        assert_eq!(got, daa_expected(view, &params), "tip {tip}");
    }
    // Timespan clamps: very fast blocks (clamped to 72 × 600) and very slow (288 × 600).
    for spacing in [10u32, 6000] {
        let times: Vec<u32> = (0..2200).map(|i| 1_600_000_000 + i * spacing).collect();
        let chain = synthetic(&times, &vec![0x1b04_0000; 2200]);
        let got = next_work_required(&chain[..], chain[2199].time + 600, &params);
        assert_eq!(got, daa_expected(&chain, &params), "spacing {spacing}");
        let target = U256::from_compact(got).value;
        let before = U256::from_compact(0x1b04_0000).value;
        // 144 blocks' work over 72 (288) blocks of time: the target roughly halves (quadruples, capped by clamp).
        if spacing == 10 {
            assert!(target < before);
        } else {
            assert!(target > before);
        }
    }
    // Ten-minute blocks at constant bits keep them (to compact rounding).
    let times: Vec<u32> = (0..2200).map(|i| 1_600_000_000 + i * 600).collect();
    let chain = synthetic(&times, &vec![0x1b04_0000; 2200]);
    let got = next_work_required(&chain[..], chain[2199].time + 600, &params);
    let ratio = U256::from_compact(got).value.div_rem(U256::from_compact(0x1b04_0000).value >> 20).0;
    assert!((ratio.low_u64() as i64 - (1 << 20)).abs() < 16, "{got:08x}");
}

#[test]
fn daa_is_enforced_by_the_tree_on_a_mineable_network() {
    // Regtest's easy targets, but retargeting with the DAA (from height 0): blocks 1 s apart make
    // the DAA raise the difficulty once 2016 blocks exist, and the tree must require exactly that.
    let params = ChainParams { no_retargeting: false, allow_min_difficulty_blocks: false, ..REGTEST.clone() };
    let mut tree = HeaderTree::new(params.clone());
    let g = genesis(&tree);
    let mut prev = g;
    for _ in 0..2100 {
        let time = prev.time + 1;
        let bits = tree.next_work_required(tree.best_index(), time);
        let h = mine(
            BlockHeader { version: 4, prev_block: prev.hash(), merkle_root: Hash256::ZERO, time, bits, nonce: 0 },
            &params,
            true,
        );
        tree.accept_header(&h, NOW).unwrap();
        prev = h;
    }
    let infos: Vec<HeaderInfo> = tree
        .best_chain()
        .iter()
        .map(|&i| {
            let e = tree.entry(i as usize);
            HeaderInfo { time: e.header.time, bits: e.header.bits, chain_work: e.chain_work }
        })
        .collect();
    let expected = daa_expected(&infos, &params);
    assert_ne!(expected, REGTEST_BITS, "the DAA moved");
    assert_eq!(tree.next_work_required(tree.best_index(), prev.time + 1), expected);
    let wrong = mine(
        BlockHeader {
            version: 4,
            prev_block: prev.hash(),
            merkle_root: Hash256::ZERO,
            time: prev.time + 1,
            bits: REGTEST_BITS,
            nonce: 0,
        },
        &params,
        true,
    );
    let err = tree.accept_header(&wrong, NOW).unwrap_err();
    assert!(matches!(err, HeaderError::BadDiffBits { expected: e, .. } if e == expected), "{err}");

    // A side branch from height 2050 (shorter than the best chain): its DAA looks at its own blocks.
    let mut prev = tree.best_at_height(2050).unwrap().header;
    for _ in 0..40 {
        let time = prev.time + 3;
        let parent = tree.index_of(&prev.hash()).unwrap();
        let bits = tree.next_work_required(parent, time);
        let h = mine(
            BlockHeader { version: 4, prev_block: prev.hash(), merkle_root: Hash256([1; 32]), time, bits, nonce: 0 },
            &params,
            true,
        );
        assert!(tree.accept_header(&h, NOW).unwrap().tip_change.is_none());
        prev = h;
    }
    let side_tip = tree.index_of(&prev.hash()).unwrap();
    let side: Vec<HeaderInfo> = (0..=2090)
        .map(|h| {
            let e = tree.entry(tree.ancestor(side_tip, h).unwrap());
            HeaderInfo { time: e.header.time, bits: e.header.bits, chain_work: e.chain_work }
        })
        .collect();
    assert_eq!(tree.next_work_required(side_tip, prev.time + 3), daa_expected(&side, &params));
    assert_ne!(daa_expected(&side, &params), expected, "the branches differ");
    tree.check_invariants().unwrap();
}

#[test]
fn testnet_twenty_minute_rule_under_the_daa() {
    let mut params = TEST.clone();
    params.activations.daa = 2016;
    let times: Vec<u32> = (0..2200).map(|i| 1_600_000_000 + i * 600).collect();
    let chain = synthetic(&times, &vec![0x1c00_8000; 2200]);
    let prev_time = chain[2199].time;
    assert_eq!(next_work_required(&chain[..], prev_time + 1201, &params), 0x1d00ffff);
    assert_eq!(next_work_required(&chain[..], prev_time + 1200, &params), daa_expected(&chain, &params));
}

#[test]
fn legacy_retarget_scales_by_timespan_within_a_quarter_and_four_times() {
    let params = &MAIN;
    let bits = 0x1c0f_fff0;
    let target = U256::from_compact(bits).value;
    let two_weeks = 14 * 24 * 3600u32;
    let check = |span: u32, expected: U256| {
        // Heights 0..=2015: the block at 2016 retargets over the times of blocks 0 and 2015.
        let mut times: Vec<u32> = (0..2016).map(|i| 1_300_000_000 + i * (span / 2015)).collect();
        times[2015] = 1_300_000_000 + span;
        let chain = synthetic(&times, &vec![bits; 2016]);
        assert_eq!(next_work_required(&chain[..], times[2015] + 600, params), expected.to_compact(), "span {span}");
    };
    check(two_weeks, target);
    check(two_weeks / 2, target >> 1);
    check(two_weeks / 4, target >> 2);
    check(two_weeks / 8, target >> 2); // clamped to ¼ of the timespan
    check(two_weeks * 2, target << 1);
    check(two_weeks * 4, target << 2);
    check(two_weeks * 10, target << 2); // clamped to 4×
                                        // Never above the proof-of-work limit.
    let easy = synthetic(&(0..2016).map(|i| 1_300_000_000 + i * 6000).collect::<Vec<_>>(), &vec![0x1d00ffff; 2016]);
    assert_eq!(next_work_required(&easy[..], easy[2015].time + 600, params), 0x1d00ffff);
    // Between retargets (and before the EDA triggers) the bits stay.
    let mid = synthetic(&(0..100).map(|i| 1_300_000_000 + i * 600).collect::<Vec<_>>(), &vec![bits; 100]);
    assert_eq!(next_work_required(&mid[..], mid[99].time + 600, params), bits);
}

#[test]
fn eda_eases_the_target_when_six_blocks_took_twelve_hours() {
    let params = &MAIN;
    let bits = 0x1c0f_fff0;
    let target = U256::from_compact(bits).value;
    // Evenly spaced blocks: MTP(prev) - MTP(prev - 6) = 6 × spacing; 7200 s gives exactly 12 h.
    let run = |spacing: u32| {
        let chain = synthetic(&(0..50).map(|i| 1_300_000_000 + i * spacing).collect::<Vec<_>>(), &[bits; 50]);
        next_work_required(&chain[..], chain[49].time + 600, params)
    };
    assert_eq!(run(7200), (target + (target >> 2)).to_compact());
    assert_eq!(run(7199), bits);
    // Capped at the limit, and a chain already at the limit stays there.
    let near = U256::from_compact(0x1d00ffff).value - U256::ONE;
    let chain = synthetic(&(0..50).map(|i| 1_300_000_000 + i * 7200).collect::<Vec<_>>(), &[near.to_compact(); 50]);
    assert_eq!(next_work_required(&chain[..], chain[49].time, params), 0x1d00ffff);
}

#[test]
fn testnet_minimum_difficulty_after_twenty_minutes_legacy() {
    let params = &TEST;
    let bits = 0x1c0f_fff0;
    let limit = 0x1d00ffff;
    let mut all_bits = vec![bits; 30];
    // Blocks 25..29 were mined under the exception.
    for b in &mut all_bits[25..] {
        *b = limit;
    }
    let chain = synthetic(&(0..30).map(|i| 1_300_000_000 + i * 600).collect::<Vec<_>>(), &all_bits);
    let prev = chain[29].time;
    assert_eq!(next_work_required(&chain[..], prev + 1201, params), limit, "more than 20 minutes");
    assert_eq!(next_work_required(&chain[..], prev + 1200, params), bits, "the last real difficulty");
    // The walk back stops at a retarget boundary.
    assert_eq!(pow::legacy_work_required(&chain[..25], chain[24].time + 600, params), bits);
}

#[test]
fn real_mainnet_header_meets_its_target_and_a_tweak_does_not() {
    let raw = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/fixtures/block413567.raw")).unwrap();
    let header = BlockHeader::from_array(raw[..80].try_into().unwrap());
    assert!(check_proof_of_work(&header.hash(), header.bits, &MAIN));
    assert!(block_work(header.bits) > block_work(0x1d00ffff));
    let tweaked = BlockHeader { nonce: header.nonce ^ 1, ..header };
    assert!(!check_proof_of_work(&tweaked.hash(), tweaked.bits, &MAIN), "a 2^-60 chance of a false failure");
}

// ---- Published vectors: Bitcoin Core's pow_tests (mainnet retargets) and the cw-144 DAA's
// reference test (Bitcoin ABC's cash_difficulty_test, carried by SV Node's ancestors). ----

#[test]
fn legacy_retarget_matches_core_mainnet_vectors() {
    let info = |time, bits| HeaderInfo { time, bits, chain_work: U256::ZERO };
    // (first block time of the period, last block time, last bits, expected)
    let cases = [
        (1_261_130_161, 1_262_152_739, 0x1d00ffff, 0x1d00d86a), // blocks 30240..32255, no clamp
        (1_231_006_505, 1_233_061_996, 0x1d00ffff, 0x1d00ffff), // blocks 0..2015, capped at the limit
        (1_279_008_237, 1_279_297_671, 0x1c05a3f4, 0x1c0168fd), // blocks 66528..68543, ¼ clamp
        (1_263_163_443, 1_269_211_443, 0x1c387f6f, 0x1d00e1fd), // block 46367, 4× clamp
    ];
    for (first, last, bits, expected) in cases {
        assert_eq!(pow::retarget(info(last, bits), first, &MAIN), expected, "{bits:08x}");
    }
}

/// Appends a block `interval` seconds after the last, with `bits`, accumulating chain work.
fn push(chain: &mut Vec<HeaderInfo>, interval: i64, bits: u32) {
    let prev = *chain.last().unwrap();
    let time = (prev.time as i64 + interval) as u32;
    chain.push(HeaderInfo { time, bits, chain_work: prev.chain_work + block_work(bits) });
}

fn chain_from(bits: u32) -> Vec<HeaderInfo> {
    vec![HeaderInfo { time: 1_269_211_443, bits, chain_work: block_work(bits) }]
}

#[test]
fn eda_matches_the_reference_sequence() {
    let limit = U256::from_compact(MAIN.pow_limit_bits).value;
    let mut pow_target = limit >> 1;
    let initial = pow_target.to_compact();
    let mut chain = chain_from(initial);
    for _ in 1..100 {
        push(&mut chain, 600, initial);
    }
    // Two-hour blocks: for ten blocks the MTP difference stays under 12 h.
    for _ in 100..110 {
        push(&mut chain, 7200, initial);
        assert_eq!(pow::legacy_work_required(&chain[..], 0, &MAIN), initial);
    }
    // Then each block eases the target by a quarter…
    let mut bits = initial;
    for _ in 110..113 {
        push(&mut chain, 7200, bits);
        pow_target = U256::from_compact(pow_target.to_compact()).value;
        pow_target += pow_target >> 2;
        bits = pow::legacy_work_required(&chain[..], 0, &MAIN);
        assert_eq!(bits, pow_target.to_compact());
    }
    // …until the limit, where it stays.
    push(&mut chain, 7200, bits);
    assert_eq!(pow::legacy_work_required(&chain[..], 0, &MAIN), MAIN.pow_limit_bits);
    push(&mut chain, 7200, MAIN.pow_limit_bits);
    assert_eq!(pow::legacy_work_required(&chain[..], 0, &MAIN), MAIN.pow_limit_bits);
}

#[test]
fn cw144_matches_the_reference_sequence() {
    let params = &MAIN;
    let daa = |chain: &Vec<HeaderInfo>| pow::cash_work_required(&chain[..], 0, params);
    // The reference's powLimit is SV Node's full 0x00000000ffff…ff, not its compact form: a
    // sixteenth of it is 0x1c0fffff.
    let full_pow_limit = (U256::ONE << 224) - U256::ONE;
    let initial = (full_pow_limit >> 4).to_compact();
    assert_eq!(initial, 0x1c0fffff);
    let mut chain = chain_from(initial);
    for _ in 1..2050 {
        push(&mut chain, 600, initial);
    }
    let mut bits = daa(&chain);
    // Ten-minute blocks keep the difficulty.
    for _ in 0..10 {
        push(&mut chain, 600, bits);
        assert_eq!(daa(&chain), bits);
    }
    // A block far in the future, then one back in line: the median of three skips it.
    push(&mut chain, 6000, bits);
    assert_eq!(daa(&chain), bits);
    push(&mut chain, 2 * 600 - 6000, bits);
    assert_eq!(daa(&chain), bits);
    for _ in 0..20 {
        push(&mut chain, 600, bits);
        assert_eq!(daa(&chain), bits);
    }
    // Slightly faster blocks: the first has no effect, then the target falls slowly.
    push(&mut chain, 550, bits);
    assert_eq!(daa(&chain), bits);
    for _ in 0..10 {
        push(&mut chain, 550, bits);
        let next = daa(&chain);
        let (cur_t, next_t) = (U256::from_compact(bits).value, U256::from_compact(next).value);
        assert!(next_t < cur_t && cur_t - next_t < cur_t >> 10);
        bits = next;
    }
    assert_eq!(bits, 0x1c0fe7b1);
    // Much faster blocks: faster increase.
    for _ in 0..20 {
        push(&mut chain, 10, bits);
        bits = daa(&chain);
    }
    assert_eq!(bits, 0x1c0db19f);
    // Much slower blocks: the first has no effect on the median… then the target rises.
    push(&mut chain, 6000, bits);
    bits = daa(&chain);
    assert_eq!(bits, 0x1c0d9222);
    for _ in 0..93 {
        push(&mut chain, 6000, bits);
        bits = daa(&chain);
    }
    assert_eq!(bits, 0x1c2f13b9);
    // The bounded window makes the next one harder again.
    push(&mut chain, 6000, bits);
    bits = daa(&chain);
    assert_eq!(bits, 0x1c2ee9bf);
    for _ in 0..192 {
        push(&mut chain, 6000, bits);
        bits = daa(&chain);
    }
    assert_eq!(bits, 0x1d00ffff);
    for _ in 0..5 {
        push(&mut chain, 6000, bits);
        assert_eq!(daa(&chain), params.pow_limit_bits);
    }
}
