//! Offences a peer can commit, and what each one costs: the one table of scores.
//!
//! Scores are SV Node's (svnode-protocol.md §3.2–3.3) wherever it has one. SV Node's scores never
//! decay; a peer whose total reaches `-banscore` (100) is disconnected and banned for `-bantime`.
//! Policy failures (non-standard, fee, conflict, orphan, already known) are not offences and have
//! no variant here: an honest peer can relay what our policy refuses.

use std::fmt;

/// An offence, named by what the peer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Misbehavior {
    /// A message other than `version` before `version` ("missing-version").
    MissingVersion,
    /// A message other than `verack`/`authch` after `version` but before `verack` ("missing-verack").
    MissingVerack,
    /// A second `version` ("multiple-version").
    DuplicateVersion,
    /// A second `sendheaders` ("Invalid SendHeaders activity").
    DuplicateSendHeaders,
    /// A CompactSize above `MAX_SIZE` ("Over-long size message protection").
    OversizedCompactSize,
    /// An `addr` with more than 1000 entries ("oversized-addr").
    OversizedAddr,
    /// More inventory items than our protoconf allows.
    OversizedInv,
    /// A `headers` with more than 2000 entries ("too-many-headers").
    TooManyHeaders,
    /// Every tenth unconnecting announcement ("too-many-unconnected-headers").
    UnconnectingHeaders,
    /// Headers that do not form a chain ("disconnected-header").
    NonContinuousHeaders,
    /// A header whose hash is above its target ("high-hash").
    HeaderHighHash,
    /// A header whose nBits is not what the chain requires ("bad-diffbits").
    HeaderBadDiffBits,
    /// A header whose parent we do not know, where it should be known ("prev-blk-not-found").
    HeaderPrevNotFound,
    /// A header building on a block known to be invalid ("bad-prevblk").
    HeaderBadPrev,
    /// A header chain contradicting a checkpoint.
    HeaderCheckpoint,
    /// A block that fails consensus validation.
    InvalidBlock,
    /// A transaction failing a consensus rule SV Node scores 10 (empty inputs or outputs, null
    /// prevout, script-number overflow).
    InvalidTxMinor,
    /// A transaction failing any other consensus rule (bad signature, duplicate inputs, overspend…).
    InvalidTx,
    /// A `getblocktxn` index past the block's end ("out-of-bound-tx-index").
    OutOfBoundTxIndex,
    /// A malformed `cmpctblock`: no transactions, a null or misplaced prefilled transaction, more
    /// transactions than a block can hold ("invalid-cmpctblk").
    InvalidCompactBlock,
    /// A `blocktxn` that does not fill the block it answers: not the number of transactions asked
    /// for ("invalid-cmpctblk-txns").
    InvalidBlockTxn,
    /// A user agent matching SV Node's banned patterns ("abc", "cash", "bch"): SV Node bans at once.
    BannedUserAgent,
    /// Over 100 bad checksums, each within 500 ms of the last ("Invalid Checksum activity").
    BadChecksumFlood,
    /// v2: no garbage terminator within 4095 bytes, or a key that is the start of a v1 message.
    V2NoTerminator,
    /// v2: a packet that fails authentication, or whose contents are not a message.
    V2BadPacket,
    /// v2: a packet length or a large message's length over the limit.
    V2Oversized,
    /// v2: the handshake did not finish within `-p2phandshaketimeout`.
    V2HandshakeTimeout,
}

impl Misbehavior {
    /// Every offence, for metric label pre-registration and tests.
    pub const ALL: [Misbehavior; 27] = [
        Self::MissingVersion,
        Self::MissingVerack,
        Self::DuplicateVersion,
        Self::DuplicateSendHeaders,
        Self::OversizedCompactSize,
        Self::OversizedAddr,
        Self::OversizedInv,
        Self::TooManyHeaders,
        Self::UnconnectingHeaders,
        Self::NonContinuousHeaders,
        Self::HeaderHighHash,
        Self::HeaderBadDiffBits,
        Self::HeaderPrevNotFound,
        Self::HeaderBadPrev,
        Self::HeaderCheckpoint,
        Self::InvalidBlock,
        Self::InvalidTxMinor,
        Self::InvalidTx,
        Self::OutOfBoundTxIndex,
        Self::InvalidCompactBlock,
        Self::InvalidBlockTxn,
        Self::BannedUserAgent,
        Self::BadChecksumFlood,
        Self::V2NoTerminator,
        Self::V2BadPacket,
        Self::V2Oversized,
        Self::V2HandshakeTimeout,
    ];

    /// Score added per offence; SV Node's values (svnode-protocol.md §3.2–3.3).
    pub const fn score(self) -> u32 {
        match self {
            Self::MissingVersion => 1,
            Self::MissingVerack => 1,
            Self::DuplicateVersion => 1,
            Self::DuplicateSendHeaders => 1,
            Self::OversizedCompactSize => 1,
            Self::OversizedAddr => 20,
            // SV Node has no item limit beyond the payload size; the adversarial table's target is 20.
            Self::OversizedInv => 20,
            Self::TooManyHeaders => 20,
            Self::UnconnectingHeaders => 20,
            Self::NonContinuousHeaders => 20,
            Self::HeaderHighHash => 50,
            Self::HeaderBadDiffBits => 100,
            Self::HeaderPrevNotFound => 10,
            Self::HeaderBadPrev => 100,
            Self::HeaderCheckpoint => 100,
            Self::InvalidBlock => 100,
            Self::InvalidTxMinor => 10,
            Self::InvalidTx => 100,
            Self::OutOfBoundTxIndex => 100,
            Self::InvalidCompactBlock => 100,
            Self::InvalidBlockTxn => 100,
            Self::BannedUserAgent => 100,
            Self::BadChecksumFlood => 1,
            // SV Node has no v2. Each of these ends the connection; none bans by itself, because
            // anyone on the path can cause them for an honest peer (flip a byte, drop packets)
            // and a ban would let a path attacker cut a node off from its honest peers. They
            // count like SV Node's framing offences of similar weight.
            Self::V2NoTerminator => 20,
            Self::V2BadPacket => 20,
            Self::V2Oversized => 20,
            Self::V2HandshakeTimeout => 1,
        }
    }

    /// A fixed label for metrics and logs (`bsv_misbehavior_total{reason}`).
    pub const fn label(self) -> &'static str {
        match self {
            Self::MissingVersion => "missing_version",
            Self::MissingVerack => "missing_verack",
            Self::DuplicateVersion => "duplicate_version",
            Self::DuplicateSendHeaders => "duplicate_sendheaders",
            Self::OversizedCompactSize => "oversized_compact_size",
            Self::OversizedAddr => "oversized_addr",
            Self::OversizedInv => "oversized_inv",
            Self::TooManyHeaders => "too_many_headers",
            Self::UnconnectingHeaders => "unconnecting_headers",
            Self::NonContinuousHeaders => "non_continuous_headers",
            Self::HeaderHighHash => "header_high_hash",
            Self::HeaderBadDiffBits => "header_bad_diffbits",
            Self::HeaderPrevNotFound => "header_prev_not_found",
            Self::HeaderBadPrev => "header_bad_prev",
            Self::HeaderCheckpoint => "header_checkpoint",
            Self::InvalidBlock => "invalid_block",
            Self::InvalidTxMinor => "invalid_tx_minor",
            Self::InvalidTx => "invalid_tx",
            Self::OutOfBoundTxIndex => "out_of_bound_tx_index",
            Self::InvalidCompactBlock => "invalid_cmpctblock",
            Self::InvalidBlockTxn => "invalid_blocktxn",
            Self::BannedUserAgent => "banned_user_agent",
            Self::BadChecksumFlood => "bad_checksum_flood",
            Self::V2NoTerminator => "v2_no_terminator",
            Self::V2BadPacket => "v2_bad_packet",
            Self::V2Oversized => "v2_oversized",
            Self::V2HandshakeTimeout => "v2_handshake_timeout",
        }
    }
}

impl fmt::Display for Misbehavior {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (+{})", self.label(), self.score())
    }
}

/// A peer's accumulated score. It never decays, as in SV Node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BanScore {
    total: u32,
}

impl BanScore {
    /// Adds an offence; returns true when the total has just reached `threshold`.
    pub fn add(&mut self, offence: Misbehavior, threshold: u32) -> bool {
        let before = self.total;
        self.total = self.total.saturating_add(offence.score());
        before < threshold && self.total >= threshold
    }

    pub fn total(&self) -> u32 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_are_sv_nodes() {
        assert_eq!(Misbehavior::OversizedAddr.score(), 20);
        assert_eq!(Misbehavior::TooManyHeaders.score(), 20);
        assert_eq!(Misbehavior::NonContinuousHeaders.score(), 20);
        assert_eq!(Misbehavior::HeaderHighHash.score(), 50);
        assert_eq!(Misbehavior::InvalidBlock.score(), 100);
        assert_eq!(Misbehavior::InvalidTx.score(), 100);
        assert_eq!(Misbehavior::MissingVersion.score(), 1);
    }

    #[test]
    fn labels_are_unique() {
        let mut labels: Vec<_> = Misbehavior::ALL.iter().map(|m| m.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), Misbehavior::ALL.len());
    }

    #[test]
    fn reaching_the_threshold_is_reported_once() {
        let mut s = BanScore::default();
        assert!(!s.add(Misbehavior::HeaderHighHash, 100));
        assert!(s.add(Misbehavior::HeaderHighHash, 100));
        assert!(!s.add(Misbehavior::HeaderHighHash, 100), "already over: not reported again");
        assert_eq!(s.total(), 150);
    }
}
