use super::*;
use rand::SeedableRng;

fn ta(ip: &str, port: u16, time: u32, services: u64) -> TimedAddress {
    TimedAddress { time, addr: NetAddress::new(SocketAddr::new(ip.parse().unwrap(), port), services) }
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const NOW: u64 = 1_800_000_000;
const KEY: BucketKey = BucketKey(7, 11);

#[test]
fn keeps_only_network_nodes_and_refreshes_duplicates() {
    let book = AddrBook::in_memory(100);
    let src: IpAddr = "10.0.0.1".parse().unwrap();
    let added = book.add(
        &[
            ta("1.2.3.4", 8333, 100, 1),
            ta("1.2.3.5", 8333, 100, 0x20),
            ta("::1", 0, 5, 1),
            ta("1.2.3.4", 8333, 200, 0x21),
        ],
        src,
        NOW,
    );
    assert_eq!(added, 1);
    assert_eq!(book.len(), 1);
    let s = book.sample(10);
    assert_eq!(s[0].time, 200);
    assert_eq!(s[0].addr.services, 0x21);
}

#[test]
fn one_source_fills_at_most_a_tenth_of_the_book() {
    let book = AddrBook::in_memory(100);
    let spam: Vec<_> = (0..1000).map(|i| ta(&format!("66.{}.{}.1", i / 256, i % 256), 8333, 1, 1)).collect();
    assert_eq!(book.add(&spam, "66.6.6.6".parse().unwrap(), NOW), 10);
    assert_eq!(book.add(&[ta("8.8.8.8", 8333, 1, 1)], "9.9.9.9".parse().unwrap(), NOW), 1);
}

/// The eclipse attack on the book: thousands of sources in two /16s send tens of thousands of
/// addresses. They reach only the buckets their source groups map to, and the honest addresses
/// already in the book stay.
#[test]
fn a_flood_from_few_groups_fills_few_buckets_and_keeps_honest_entries() {
    let book = AddrBook::with_key(DEFAULT_CAPACITY, KEY);
    let honest: Vec<TimedAddress> =
        (0..200).map(|i| ta(&format!("{}.{}.1.1", 11 + i % 80, i), 8333, NOW as u32 - 3600, 1)).collect();
    for (i, h) in honest.iter().enumerate() {
        book.add(std::slice::from_ref(h), format!("{}.9.0.1", 100 + i % 100).parse().unwrap(), NOW);
    }
    let kept_before = book.len();
    for s in 0..2000u32 {
        let source: IpAddr = format!("203.{}.{}.{}", s % 2, s / 256 % 256, s % 256).parse().unwrap();
        let spam: Vec<_> =
            (0..30u32).map(|i| ta(&format!("198.{}.{}.{}", (s + i) % 50, i, s % 256), 8333, NOW as u32, 1)).collect();
        book.add(&spam, source, NOW);
    }
    let (new, _) = book.table_sizes();
    let attacker_max = 2 * buckets::NEW_BUCKETS_PER_SOURCE_GROUP as usize * BUCKET_SIZE;
    assert!(new - kept_before <= attacker_max, "{} attacker entries > {attacker_max}", new - kept_before);
    let honest_left = honest.iter().filter(|h| book.lock().entries.contains_key(&h.addr.socket_addr())).count();
    assert_eq!(honest_left, kept_before, "no honest entry was pushed out");
}

#[test]
fn connecting_moves_an_address_to_tried_and_a_collision_waits_for_a_test() {
    let book = AddrBook::with_key(DEFAULT_CAPACITY, KEY);
    let a = sa("198.51.100.1:8333");
    book.add(&[ta("198.51.100.1", 8333, 1, 1)], "203.0.113.1".parse().unwrap(), NOW);
    assert!(!book.is_tried(a));
    book.connected(a, 1, NOW);
    assert!(book.is_tried(a));
    // Find another address of the same /16 that maps to the same tried slot.
    let slot = book.lock().tried_slot(&a);
    let b = (0..200_000u32)
        .map(|i| {
            SocketAddr::new(format!("198.51.{}.{}", i / 256 % 256, i % 256).parse().unwrap(), 8333 + (i >> 16) as u16)
        })
        .find(|x| *x != a && book.lock().tried_slot(x) == slot)
        .expect("a colliding address");
    book.add(&[TimedAddress { time: 1, addr: NetAddress::new(b, 1) }], "203.0.113.1".parse().unwrap(), NOW);
    book.connected(b, 1, NOW + 5 * 3600);
    assert!(!book.is_tried(b), "held slot: a collision, not an eviction");
    assert_eq!(book.collisions(), 1);
    // The holder is tested (a feeler dials it) and answers: it keeps its slot.
    let later = NOW + 5 * 3600 + 10;
    assert_eq!(book.collision_to_test(later), Some(a));
    book.attempted(a, later);
    book.connected(a, 1, later + 1);
    book.resolve_collisions(later + 2);
    assert!(book.is_tried(a) && !book.is_tried(b));
    assert_eq!(book.collisions(), 0);
    // Later the newcomer connects again; this time the holder's test fails: it gives way.
    let t = later + 5 * 3600;
    book.connected(b, 1, t);
    assert_eq!(book.collision_to_test(t), Some(a));
    book.attempted(a, t + 1);
    book.resolve_collisions(t + 30);
    assert!(!book.is_tried(b), "still within the test window");
    book.resolve_collisions(t + 1 + 61);
    assert!(book.is_tried(b) && !book.is_tried(a));
    assert!(book.lock().entries.contains_key(&a), "the old holder went back to the new table");
}

#[test]
fn an_untested_collision_is_decided_for_the_newcomer_after_the_timeout() {
    let book = AddrBook::with_key(DEFAULT_CAPACITY, KEY);
    let a = sa("198.51.100.1:8333");
    book.connected(a, 1, NOW);
    let slot = book.lock().tried_slot(&a);
    let b = (0..200_000u32)
        .map(|i| {
            SocketAddr::new(format!("198.51.{}.{}", i / 256 % 256, i % 256).parse().unwrap(), 9000 + (i >> 16) as u16)
        })
        .find(|x| book.lock().tried_slot(x) == slot && *x != a)
        .expect("a colliding address");
    let t = NOW + 5 * 3600;
    book.connected(b, 1, t);
    book.resolve_collisions(t + COLLISION_TIMEOUT_SECS - 1);
    assert!(!book.is_tried(b));
    book.resolve_collisions(t + COLLISION_TIMEOUT_SECS);
    assert!(book.is_tried(b));
}

#[test]
fn selection_respects_the_skip_list_and_prefers_reputation() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let book = AddrBook::with_key(100, KEY);
    book.add(&[ta("1.1.1.1", 8333, 10, 1), ta("2.2.2.2", 8333, 20, 1)], "10.0.0.1".parse().unwrap(), NOW);
    assert_eq!(book.select_with(&mut rng, NOW, false, |a| a.port() == 8333), None);
    assert_eq!(book.select_with(&mut rng, NOW, false, |a| a.ip().to_string() == "1.1.1.1"), Some(sa("2.2.2.2:8333")));
    // A peer at 1.1.1.1 withheld what it announced: the other is picked every time.
    for _ in 0..5 {
        book.record_event(sa("1.1.1.1:8333"), Event::Withheld, NOW);
    }
    for _ in 0..50 {
        assert_eq!(book.select_with(&mut rng, NOW, false, |_| false), Some(sa("2.2.2.2:8333")));
    }
    // Recently tried addresses are rarely picked when another is available.
    book.record_event(sa("1.1.1.1:8333"), Event::BlockFirst, NOW + 24 * 3600 * 10);
    book.attempted(sa("2.2.2.2:8333"), NOW + 24 * 3600 * 10);
    assert_eq!(book.select_with(&mut rng, NOW + 24 * 3600 * 10 + 1, false, |_| false), Some(sa("1.1.1.1:8333")));
}

#[test]
fn both_tables_are_drawn_from_and_feelers_use_the_new_table() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let book = AddrBook::with_key(100, KEY);
    book.add(&[ta("1.1.1.1", 8333, 10, 1), ta("2.2.2.2", 8333, 20, 1)], "10.0.0.1".parse().unwrap(), NOW);
    book.connected(sa("2.2.2.2:8333"), 1, NOW);
    let tried =
        (0..200).filter(|_| book.select_with(&mut rng, NOW, false, |_| false) == Some(sa("2.2.2.2:8333"))).count();
    assert!((60..140).contains(&tried), "about half from tried: {tried}");
    for _ in 0..20 {
        assert_eq!(book.select_with(&mut rng, NOW, true, |_| false), Some(sa("1.1.1.1:8333")));
    }
}

#[test]
fn future_timestamps_are_clamped() {
    let book = AddrBook::in_memory(10);
    book.add(&[ta("1.1.1.1", 8333, u32::MAX, 1)], "10.0.0.1".parse().unwrap(), NOW);
    assert_eq!(u64::from(book.sample(1)[0].time), NOW);
}

#[test]
fn inbound_reputation_is_kept_per_ip_and_bounded() {
    let book = AddrBook::in_memory(10);
    let mut s = Score::default();
    s.record(Event::Withheld, NOW);
    book.store_reputation(sa("9.9.9.9:5555"), true, s, NOW);
    assert_eq!(book.reputation(sa("9.9.9.9:6666"), true), s, "another port of the same IP");
    assert_eq!(book.reputation(sa("9.9.9.9:6666"), false), Score::default());
    for i in 0..(MAX_INBOUND_SCORES as u32 + 10) {
        book.store_reputation(SocketAddr::new(IpAddr::V4(i.into()), 1), true, s, NOW);
    }
    assert!(book.lock().inbound.len() <= MAX_INBOUND_SCORES);
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bsv-relay-addrbook-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_book_survives_a_save_and_reload_with_tables_key_and_reputation() {
    let dir = temp_dir();
    let path = dir.join("peers.json");
    let book = AddrBook::open(&path, 100).unwrap();
    book.add(&[ta("1.1.1.1", 8333, 10, 1), ta("::2", 18444, 20, 1)], "10.0.0.1".parse().unwrap(), NOW);
    book.connected(sa("1.1.1.1:8333"), 1, NOW);
    book.record_event(sa("1.1.1.1:8333"), Event::BlockFirst, NOW);
    book.fell_back_to_v1(sa("[::2]:18444"), NOW);
    book.save().unwrap();
    let again = AddrBook::open(&path, 100).unwrap();
    assert_eq!(again.sample(10), book.sample(10));
    assert!(again.is_tried(sa("1.1.1.1:8333")));
    assert!(again.v1_only(sa("[::2]:18444")));
    assert_eq!(again.reputation(sa("1.1.1.1:8333"), false), book.reputation(sa("1.1.1.1:8333"), false));
    assert_eq!(again.lock().key, book.lock().key);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_damaged_file_is_a_typed_error_and_the_node_can_start_empty() {
    let dir = temp_dir();
    let path = dir.join("peers.json");
    for bad in [&b"not json"[..], b"{\"version\":9,\"entries\":[]}", b"{\"version\":2,\"entries\":[[\"x\",1]]}", b""] {
        std::fs::write(&path, bad).unwrap();
        let err = AddrBook::open(&path, 100).unwrap_err();
        assert!(matches!(err, AddrBookError::Corrupt { .. } | AddrBookError::Version { .. }), "{err}");
        let (book, err) = AddrBook::open_or_empty(&path, 100);
        assert!(err.is_some() && book.is_empty());
        book.add(&[ta("1.1.1.1", 8333, 10, 1)], "10.0.0.1".parse().unwrap(), NOW);
        book.save().unwrap();
        assert_eq!(AddrBook::open(&path, 100).unwrap().len(), 1, "saved over the damaged file");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_version_1_file_is_migrated() {
    let dir = temp_dir();
    let path = dir.join("peers.json");
    let v1 = r#"{"version":1,"entries":[
        ["1.1.1.1:8333",{"services":1,"last_seen":5,"source":"10.0.0.1","attempts":0,"last_success":5,"useful":3}],
        ["2.2.2.2:8333",{"services":1025,"last_seen":6,"source":"10.0.0.1","attempts":1,"last_success":0,"v1_only":true}]]}"#;
    std::fs::write(&path, v1).unwrap();
    let book = AddrBook::open(&path, 100).unwrap();
    assert_eq!(book.len(), 2);
    assert!(book.is_tried(sa("1.1.1.1:8333")) && !book.is_tried(sa("2.2.2.2:8333")));
    assert!(book.v1_only(sa("2.2.2.2:8333")));
    std::fs::remove_dir_all(&dir).unwrap();
}
