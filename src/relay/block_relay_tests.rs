use super::*;

fn supporting(relay: &mut BlockRelay, id: u64) -> PeerId {
    let id = PeerId(id);
    relay.add_peer(id, false);
    relay.on_sendcmpct(id, &SendCmpct { announce: false, version: 1 });
    id
}

fn announce(msg: &Message) -> bool {
    match msg {
        Message::SendCmpct(s) => s.announce,
        other => panic!("not a sendcmpct: {other:?}"),
    }
}

#[test]
fn bsv_relay_peers_are_asked_for_high_bandwidth_at_once_others_for_low() {
    let mut r = BlockRelay::new();
    assert!(announce(&r.add_peer(PeerId(1), true)));
    assert!(!announce(&r.add_peer(PeerId(2), false)));
}

#[test]
fn the_last_three_peers_to_deliver_a_tip_first_are_high_bandwidth() {
    let mut r = BlockRelay::new();
    let peers: Vec<PeerId> = (1..=4).map(|i| supporting(&mut r, i)).collect();
    for p in &peers[..3] {
        let out = r.delivered_first(*p);
        assert_eq!(out.len(), 1);
        assert!(out[0].0 == *p && announce(&out[0].1));
    }
    assert!(r.delivered_first(peers[1]).is_empty(), "already high-bandwidth: nothing to send");
    // The fourth pushes out the one that delivered least recently: peer 1.
    let out = r.delivered_first(peers[3]);
    assert_eq!(out.len(), 2);
    assert!(out[0].0 == peers[3] && announce(&out[0].1));
    assert!(out[1].0 == peers[0] && !announce(&out[1].1));
    assert!(!r.peer(peers[0]).unwrap().asked_hb);
}

#[test]
fn a_peer_without_compact_blocks_or_that_sent_an_invalid_one_is_not_selected() {
    let mut r = BlockRelay::new();
    r.add_peer(PeerId(1), false);
    assert!(r.delivered_first(PeerId(1)).is_empty(), "no sendcmpct from it");
    let p = supporting(&mut r, 2);
    r.delivered_first(p);
    let off = r.sent_invalid(p).expect("it was high-bandwidth");
    assert!(!announce(&off));
    assert!(r.delivered_first(p).is_empty(), "never again");
}

#[test]
fn only_version_one_counts_and_announce_follows_the_last_sendcmpct() {
    let mut r = BlockRelay::new();
    r.add_peer(PeerId(1), false);
    r.on_sendcmpct(PeerId(1), &SendCmpct { announce: true, version: 2 });
    assert!(!r.announces_compact(PeerId(1)));
    r.on_sendcmpct(PeerId(1), &SendCmpct { announce: true, version: 1 });
    assert!(r.announces_compact(PeerId(1)));
    r.on_sendcmpct(PeerId(1), &SendCmpct { announce: false, version: 1 });
    assert!(!r.announces_compact(PeerId(1)));
}

#[test]
fn header_times_are_bounded() {
    let mut r = BlockRelay::new();
    for i in 0..(MAX_TIMED_BLOCKS as u32 + 10) {
        r.saw_header(crate::wire::Hash256::sha256d(&i.to_le_bytes()));
    }
    assert_eq!(r.header_seen.len(), MAX_TIMED_BLOCKS);
    assert!(r.since_header(&crate::wire::Hash256::sha256d(&0u32.to_le_bytes())).is_none());
}
