//! The BIP324 v2 transport: every byte after the two 64-byte keys is encrypted and authenticated,
//! so an observer cannot read which transactions a node relays or originates, and a byte changed
//! on the path ends the connection instead of being believed.
//!
//! # The parts
//!
//! - [`cipher`]: the key schedule (ElligatorSwift ECDH, HKDF-SHA256 with salt
//!   `bitcoin_v2_shared_secret` + the network's magic) and the packet ciphers (FSChaCha20 for the
//!   3-byte length, FSChaCha20Poly1305 for header + contents, both rekeyed every 224 packets).
//! - [`messages`]: message types in packets (BIP324's one-byte ids, 12-byte names for the rest)
//!   and BSV's large messages (below).
//! - [`handshake`]: key exchange, garbage and its terminator, decoys, the version packet, with
//!   the bounds a hostile peer meets.
//! - [`stream`]: the packet reader and writer a running connection uses.
//!
//! # Why not the `bip324` crate's session
//!
//! No cipher is written here: ChaCha20 and ChaCha20-Poly1305 come from RustCrypto's `chacha20` and
//! `chacha20poly1305` (SIMD) and, for small packets, from `chacha20-poly1305`, the crate
//! rust-bitcoin's `bip324` is built on. The rekeying wrappers, the key schedule and the packet
//! layout (about 150 lines) are ours, because `bip324` 0.11 keeps them private: its
//! `CipherSession` can only come out of its own handshake, which draws the ElligatorSwift encoding
//! from its random source, so BIP324's official vectors (fixed keys *and* encodings) cannot be
//! reproduced through it and its intermediates (the four keys, the terminators) cannot be checked
//! at all; its `decrypt_to_vec` refuses packets over 4 MB; and its portable ChaCha20 moves 106
//! MiB/s through encrypt + decrypt, where BSV's blocks need the SIMD one (580 MiB/s measured,
//! `cargo bench --bench transport`). Written here, every intermediate of every vector row is
//! checked against the code the node runs (`tests/bip324_vectors.rs`).
//!
//! # BSV's large messages
//!
//! A packet's length field has 3 bytes: at most 16,777,215 bytes of contents. BSV blocks are far
//! larger (SV Node sends up to 4 GB, and `extmsg` on v1 beyond 4 GiB). A v2 message whose type
//! and payload do not fit one packet is sent as SV Node's extended message is on v1: the first
//! packet carries the type `extmsg` (12-byte form), then the real command (12 bytes, NUL-padded)
//! and the payload's length (8 bytes, little-endian), then the first part of the payload; the
//! packets that follow carry nothing but payload bytes until the announced length is complete.
//! Decoy packets may come between them and are ignored. The receiver checks the announced length
//! against that command's limit (the same limits as v1) when the first packet arrives, before it
//! reserves anything, and grows its buffer only with bytes that have arrived and authenticated; a
//! packet that would overrun the announced length, or a message in progress that stalls past the
//! message deadline, ends the connection. This is part of the transport on BSV networks (their
//! HKDF salt already makes it a BSV-only transport), so it needs no negotiation: both ends of
//! every v2 connection on a BSV network are bsv-relay today, and a future implementation has this
//! text to follow.

pub mod cipher;
pub mod handshake;
pub mod messages;
pub mod stream;

/// Service bit a node sets to say it accepts v2 connections (BIP324's NODE_P2P_V2).
pub const NODE_P2P_V2: u64 = 1 << 11;
