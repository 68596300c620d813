//! BIP324's key schedule and packet ciphers: the shared secret from the two ElligatorSwift keys,
//! HKDF-SHA256 into the session id, four keys and two garbage terminators, and the forward-secure
//! ciphers that encrypt each packet's length (FSChaCha20) and contents (FSChaCha20Poly1305), both
//! rekeyed every 224 packets.
//!
//! The ChaCha20 and ChaCha20-Poly1305 primitives come from crates; the rekeying wrappers and the
//! packet layout are written here, in a few lines each (see the module doc of `peer::v2` for why).
//! Two implementations of the same AEAD (RFC 8439) are used by size, because each is fast where
//! the other is slow (`cargo bench --bench transport`): RustCrypto's `chacha20poly1305` (SIMD,
//! chosen at run time) for large packets, where it is 5x faster, and the `chacha20-poly1305`
//! crate under rust-bitcoin's `bip324` (portable) for small ones, where RustCrypto's vectorised
//! Poly1305 spends over a microsecond setting up per message. They give identical bytes (tested).

use chacha20::cipher::{KeyIvInit, StreamCipher};
use chacha20::ChaCha20;
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce, Tag};

/// Packets with fewer bytes than this (header and contents) use the portable AEAD.
const SMALL_PACKET: usize = 1024;
use secp256k1::ellswift::{ElligatorSwift, ElligatorSwiftParty};
use secp256k1::SecretKey;

/// Bytes of the encrypted length in front of every packet.
pub const LENGTH_LEN: usize = 3;
/// Bytes of the header inside the encrypted part (bit 7: ignore this packet, a decoy).
pub const HEADER_LEN: usize = 1;
/// Bytes of the Poly1305 tag after the contents.
pub const TAG_LEN: usize = 16;
/// Everything a packet adds to its contents.
pub const PACKET_OVERHEAD: usize = LENGTH_LEN + HEADER_LEN + TAG_LEN;
/// The header bit that marks a packet to be ignored (a decoy).
pub const IGNORE_BIT: u8 = 0x80;
/// The most contents a packet can carry: what a 3-byte length can say.
pub const MAX_CONTENTS: usize = (1 << 24) - 1;
/// Bytes of a garbage terminator.
pub const TERMINATOR_LEN: usize = 16;
/// Packets (or lengths) encrypted under one key before it is replaced (BIP324's REKEY_INTERVAL).
const REKEY_INTERVAL: u64 = 224;

/// Everything HKDF derives from the ECDH secret for one connection.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKeys {
    pub session_id: [u8; 32],
    pub initiator_l: [u8; 32],
    pub initiator_p: [u8; 32],
    pub responder_l: [u8; 32],
    pub responder_p: [u8; 32],
    pub initiator_terminator: [u8; TERMINATOR_LEN],
    pub responder_terminator: [u8; TERMINATOR_LEN],
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys never reach a log line.
        f.debug_struct("SessionKeys").field("session_id", &hex::encode(self.session_id)).finish_non_exhaustive()
    }
}

impl SessionKeys {
    /// HKDF-SHA256 with salt `bitcoin_v2_shared_secret` + the network's magic (BIP324 §Keys).
    pub fn derive(shared_secret: &[u8; 32], magic: [u8; 4]) -> SessionKeys {
        let mut salt = b"bitcoin_v2_shared_secret".to_vec();
        salt.extend_from_slice(&magic);
        let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(&salt), shared_secret);
        let expand = |info: &str| {
            let mut out = [0u8; 32];
            hk.expand(info.as_bytes(), &mut out).expect("32 bytes is a valid HKDF-SHA256 length");
            out
        };
        let terminators = expand("garbage_terminators");
        let mut initiator_terminator = [0u8; TERMINATOR_LEN];
        let mut responder_terminator = [0u8; TERMINATOR_LEN];
        initiator_terminator.copy_from_slice(&terminators[..TERMINATOR_LEN]);
        responder_terminator.copy_from_slice(&terminators[TERMINATOR_LEN..]);
        SessionKeys {
            session_id: expand("session_id"),
            initiator_l: expand("initiator_L"),
            initiator_p: expand("initiator_P"),
            responder_l: expand("responder_L"),
            responder_p: expand("responder_P"),
            initiator_terminator,
            responder_terminator,
        }
    }

    /// The terminator this side sends after its garbage, and the one it looks for.
    pub fn terminators(&self, initiator: bool) -> ([u8; TERMINATOR_LEN], [u8; TERMINATOR_LEN]) {
        if initiator {
            (self.initiator_terminator, self.responder_terminator)
        } else {
            (self.responder_terminator, self.initiator_terminator)
        }
    }

    /// The ciphers for what this side sends and what it receives.
    pub fn ciphers(&self, initiator: bool) -> (PacketSealer, PacketOpener) {
        let (send, recv) = if initiator {
            ((self.initiator_l, self.initiator_p), (self.responder_l, self.responder_p))
        } else {
            ((self.responder_l, self.responder_p), (self.initiator_l, self.initiator_p))
        };
        (
            PacketSealer { length: FsChaCha20::new(send.0), packet: FsChaCha20Poly1305::new(send.1) },
            PacketOpener { length: FsChaCha20::new(recv.0), packet: FsChaCha20Poly1305::new(recv.1) },
        )
    }
}

/// The BIP324 shared secret: x-only ECDH of our secret with their key, hashed with both encodings
/// in initiator-first order under the tag `bip324_ellswift_xonly_ecdh`.
pub fn shared_secret(ours: &[u8; 64], theirs: &[u8; 64], secret: &SecretKey, initiator: bool) -> [u8; 32] {
    let (a, b, party) = if initiator {
        (ElligatorSwift::from_array(*ours), ElligatorSwift::from_array(*theirs), ElligatorSwiftParty::A)
    } else {
        (ElligatorSwift::from_array(*theirs), ElligatorSwift::from_array(*ours), ElligatorSwiftParty::B)
    };
    // secp256k1 hashes with its own BIP324 tag (`bip324_ellswift_xonly_ecdh`); it takes no data.
    ElligatorSwift::shared_secret(a, b, *secret, party, None).to_secret_bytes()
}

/// The authentication tag did not match: the packet was altered, or the keys differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("packet authentication failed")]
pub struct AuthError;

/// FSChaCha20Poly1305: ChaCha20-Poly1305 with a nonce of (packet number within the key, rekey
/// count), the key replaced every 224 packets by an encryption of zeros under a special nonce.
struct FsChaCha20Poly1305 {
    key: [u8; 32],
    aead: ChaCha20Poly1305,
    counter: u64,
}

impl FsChaCha20Poly1305 {
    fn new(key: [u8; 32]) -> Self {
        FsChaCha20Poly1305 { key, aead: ChaCha20Poly1305::new(&key.into()), counter: 0 }
    }

    /// The portable AEAD under the current key and nonce.
    fn small(&self) -> chacha20_poly1305::ChaCha20Poly1305 {
        let nonce: [u8; 12] = self.nonce().into();
        chacha20_poly1305::ChaCha20Poly1305::new(
            chacha20_poly1305::Key::new(self.key),
            chacha20_poly1305::Nonce::new(nonce),
        )
    }

    fn nonce(&self) -> Nonce {
        let mut nonce = [0u8; 12];
        nonce[..4].copy_from_slice(&((self.counter % REKEY_INTERVAL) as u32).to_le_bytes());
        nonce[4..].copy_from_slice(&(self.counter / REKEY_INTERVAL).to_le_bytes());
        nonce.into()
    }

    fn advance(&mut self) {
        if (self.counter + 1) % REKEY_INTERVAL == 0 {
            let mut nonce = [0xffu8; 12];
            nonce[4..].copy_from_slice(&(self.counter / REKEY_INTERVAL).to_le_bytes());
            let mut key = [0u8; 32];
            let rekey = chacha20_poly1305::Nonce::new(nonce);
            chacha20_poly1305::ChaCha20Poly1305::new(chacha20_poly1305::Key::new(self.key), rekey)
                .encrypt(&mut key, None);
            self.key = key;
            self.aead = ChaCha20Poly1305::new(&key.into());
        }
        self.counter += 1;
    }

    fn encrypt(&mut self, aad: &[u8], text: &mut [u8]) -> [u8; TAG_LEN] {
        let tag = if text.len() < SMALL_PACKET {
            self.small().encrypt(text, Some(aad))
        } else {
            self.aead
                .encrypt_in_place_detached(&self.nonce(), aad, text)
                .expect("a packet is far within the AEAD's 256 GB limit")
                .into()
        };
        self.advance();
        tag
    }

    fn decrypt(&mut self, aad: &[u8], text: &mut [u8], tag: [u8; TAG_LEN]) -> Result<(), AuthError> {
        if text.len() < SMALL_PACKET {
            self.small().decrypt(text, tag, Some(aad)).map_err(|_| AuthError)?;
        } else {
            self.aead
                .decrypt_in_place_detached(&self.nonce(), aad, text, Tag::from_slice(&tag))
                .map_err(|_| AuthError)?;
        }
        self.advance();
        Ok(())
    }
}

/// FSChaCha20: one ChaCha20 keystream per key for the 3-byte lengths, the key replaced after 224
/// lengths by the next 32 bytes of that stream. A key's whole stream (224 lengths and the next
/// key: 704 bytes) is generated at once, so a length costs an XOR, not a cipher setup.
struct FsChaCha20 {
    /// The current key's keystream.
    keystream: [u8; KEYSTREAM_LEN],
    /// Lengths encrypted so far.
    chunks: u64,
}

/// Keystream bytes one length key yields: 224 lengths, then the next key.
const KEYSTREAM_LEN: usize = REKEY_INTERVAL as usize * LENGTH_LEN + 32;

impl FsChaCha20 {
    fn new(key: [u8; 32]) -> Self {
        FsChaCha20 { keystream: Self::keystream(key, 0), chunks: 0 }
    }

    /// The keystream for a key: nonce (0, rekey count), from block 0.
    fn keystream(key: [u8; 32], rekeys: u64) -> [u8; KEYSTREAM_LEN] {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&rekeys.to_le_bytes());
        let mut stream = [0u8; KEYSTREAM_LEN];
        ChaCha20::new(&key.into(), &nonce.into()).apply_keystream(&mut stream);
        stream
    }

    fn crypt(&mut self, chunk: &mut [u8; LENGTH_LEN]) {
        let at = (self.chunks % REKEY_INTERVAL) as usize * LENGTH_LEN;
        for (b, k) in chunk.iter_mut().zip(&self.keystream[at..at + LENGTH_LEN]) {
            *b ^= k;
        }
        self.chunks += 1;
        if self.chunks % REKEY_INTERVAL == 0 {
            let key: [u8; 32] = self.keystream[KEYSTREAM_LEN - 32..].try_into().expect("32 bytes");
            self.keystream = Self::keystream(key, self.chunks / REKEY_INTERVAL);
        }
    }
}

/// Encrypts the packets one side sends.
pub struct PacketSealer {
    length: FsChaCha20,
    packet: FsChaCha20Poly1305,
}

impl PacketSealer {
    /// Appends one packet carrying `contents` (at most [`MAX_CONTENTS`] bytes) to `out`.
    pub fn seal(&mut self, header: u8, contents: &[u8], aad: &[u8], out: &mut Vec<u8>) {
        assert!(contents.len() <= MAX_CONTENTS, "a packet's contents fit a 3-byte length");
        let start = out.len();
        let len = (contents.len() as u32).to_le_bytes();
        let mut length = [len[0], len[1], len[2]];
        self.length.crypt(&mut length);
        out.reserve(PACKET_OVERHEAD + contents.len());
        out.extend_from_slice(&length);
        out.push(header);
        out.extend_from_slice(contents);
        let tag = self.packet.encrypt(aad, &mut out[start + LENGTH_LEN..]);
        out.extend_from_slice(&tag);
    }
}

/// Decrypts the packets the other side sends.
pub struct PacketOpener {
    length: FsChaCha20,
    packet: FsChaCha20Poly1305,
}

impl PacketOpener {
    /// Decrypts the next packet's length field: how many content bytes follow the header. Not yet
    /// authenticated, so the caller bounds it before reserving anything.
    pub fn open_length(&mut self, mut length: [u8; LENGTH_LEN]) -> usize {
        self.length.crypt(&mut length);
        u32::from_le_bytes([length[0], length[1], length[2], 0]) as usize
    }

    /// Authenticates and decrypts, in place, a packet's header, contents and tag (everything
    /// after the length); on success `sealed[0]` is the header and `sealed[1..len - 16]` the
    /// contents.
    pub fn open(&mut self, sealed: &mut [u8], aad: &[u8]) -> Result<(), AuthError> {
        if sealed.len() < HEADER_LEN + TAG_LEN {
            return Err(AuthError);
        }
        let (text, tag) = sealed.split_at_mut(sealed.len() - TAG_LEN);
        let tag: [u8; TAG_LEN] = (&*tag).try_into().expect("split at the tag");
        self.packet.decrypt(aad, text, tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (PacketSealer, PacketOpener) {
        let keys = SessionKeys::derive(&[7; 32], [0xda, 0xb5, 0xbf, 0xfa]);
        let (sealer, _) = keys.ciphers(true);
        let (_, opener) = keys.ciphers(false);
        (sealer, opener)
    }

    #[test]
    fn packets_round_trip_across_rekeys() {
        let (mut sealer, mut opener) = pair();
        for i in 0..1000usize {
            let contents: Vec<u8> = (0..i % 300).map(|b| b as u8).collect();
            let aad = if i == 0 { &b"garbage"[..] } else { &[][..] };
            let mut out = Vec::new();
            sealer.seal(if i % 7 == 0 { IGNORE_BIT } else { 0 }, &contents, aad, &mut out);
            let len = opener.open_length([out[0], out[1], out[2]]);
            assert_eq!(len, contents.len());
            let sealed = &mut out[LENGTH_LEN..];
            opener.open(sealed, aad).expect("authentic");
            assert_eq!(sealed[0], if i % 7 == 0 { IGNORE_BIT } else { 0 });
            assert_eq!(&sealed[1..1 + len], &contents[..]);
        }
    }

    #[test]
    fn both_aead_implementations_give_the_same_bytes_around_the_threshold() {
        for len in [0, 1, 63, 64, SMALL_PACKET - 2, SMALL_PACKET - 1, SMALL_PACKET, SMALL_PACKET + 1, 5000] {
            let text: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let fs = FsChaCha20Poly1305::new([9; 32]);
            let (mut a, mut b) = (text.clone(), text.clone());
            let tag_small = fs.small().encrypt(&mut a, Some(b"aad"));
            let tag_simd: [u8; TAG_LEN] =
                fs.aead.encrypt_in_place_detached(&fs.nonce(), b"aad", &mut b).expect("encrypts").into();
            assert_eq!((a, tag_small), (b, tag_simd), "length {len}");
        }
    }

    #[test]
    fn a_flipped_byte_or_wrong_aad_fails_authentication() {
        for flip in [LENGTH_LEN, LENGTH_LEN + 1, LENGTH_LEN + 5, LENGTH_LEN + 20] {
            let (mut sealer, mut opener) = pair();
            let mut out = Vec::new();
            sealer.seal(0, b"hello world", b"", &mut out);
            out[flip] ^= 1;
            let _ = opener.open_length([out[0], out[1], out[2]]);
            assert_eq!(opener.open(&mut out[LENGTH_LEN..], b""), Err(AuthError), "flip at {flip}");
        }
        let (mut sealer, mut opener) = pair();
        let mut out = Vec::new();
        sealer.seal(0, b"hello", b"garbage", &mut out);
        let _ = opener.open_length([out[0], out[1], out[2]]);
        assert_eq!(opener.open(&mut out[LENGTH_LEN..], b"other"), Err(AuthError));
    }
}
