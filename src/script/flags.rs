//! Script verification flags with SV Node's names (`src/script/script_flags.h`), and the
//! per-block selection of them by height (`src/verify_script_flags.cpp`, svnode-protocol.md §2.3).
//!
//! Invariants: a flag only ever makes verification stricter or selects an era's rules; the bit
//! values are ours (they never leave this process), the names are SV Node's so vector files and
//! operator-facing messages read the same.

use std::fmt;
use std::ops::{BitAnd, BitOr, BitOrAssign};

use thiserror::Error;

/// A set of script verification flags.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ScriptFlags(u32);

impl ScriptFlags {
    pub const NONE: Self = Self(0);
    /// Evaluate BIP16 pay-to-script-hash redeem scripts (pre-Genesis UTXOs only).
    pub const P2SH: Self = Self(1 << 0);
    /// Strict signature and public key encodings; defined hash types.
    pub const STRICTENC: Self = Self(1 << 1);
    /// BIP66 strict DER signatures.
    pub const DERSIG: Self = Self(1 << 2);
    /// Signatures must have S ≤ n/2.
    pub const LOW_S: Self = Self(1 << 3);
    /// The extra CHECKMULTISIG argument must be empty.
    pub const NULLDUMMY: Self = Self(1 << 4);
    /// scriptSig may contain only pushes.
    pub const SIGPUSHONLY: Self = Self(1 << 5);
    /// Pushes and script numbers must use their shortest encoding.
    pub const MINIMALDATA: Self = Self(1 << 6);
    /// Fail on NOP1, NOP4–NOP10 (and NOP2/NOP3 when they act as NOPs).
    pub const DISCOURAGE_UPGRADABLE_NOPS: Self = Self(1 << 7);
    /// Exactly one stack element must remain.
    pub const CLEANSTACK: Self = Self(1 << 8);
    /// BIP65 OP_CHECKLOCKTIMEVERIFY (pre-Genesis UTXOs only).
    pub const CHECKLOCKTIMEVERIFY: Self = Self(1 << 9);
    /// BIP112 OP_CHECKSEQUENCEVERIFY (pre-Genesis UTXOs only).
    pub const CHECKSEQUENCEVERIFY: Self = Self(1 << 10);
    /// OP_IF/OP_NOTIF arguments must be empty or exactly `0x01`.
    pub const MINIMALIF: Self = Self(1 << 13);
    /// A failed signature check must have had an empty signature.
    pub const NULLFAIL: Self = Self(1 << 14);
    /// Only compressed public keys.
    pub const COMPRESSED_PUBKEYTYPE: Self = Self(1 << 15);
    /// SIGHASH_FORKID is enabled (UAHF); with STRICTENC it is required.
    pub const SIGHASH_FORKID: Self = Self(1 << 16);
    /// The spending transaction is in a post-Genesis block.
    pub const GENESIS: Self = Self(1 << 18);
    /// The UTXO being spent was created after Genesis: selects post-Genesis script rules.
    pub const UTXO_AFTER_GENESIS: Self = Self(1 << 19);
    /// The spending transaction is in a post-Chronicle block (SV Node ≥ 1.2.0).
    pub const CHRONICLE: Self = Self(1 << 20);
    /// The UTXO was created after Chronicle: selects the Chronicle opcodes and number size.
    pub const UTXO_AFTER_CHRONICLE: Self = Self(1 << 21);

    /// Flags every block's transactions must satisfy after UAHF and DAA (SV Node's
    /// `MANDATORY_SCRIPT_VERIFY_FLAGS`, `src/script/standard.h`).
    pub const MANDATORY: Self =
        Self(Self::P2SH.0 | Self::STRICTENC.0 | Self::SIGHASH_FORKID.0 | Self::LOW_S.0 | Self::NULLFAIL.0);
    /// Mempool policy flags (SV Node's `STANDARD_SCRIPT_VERIFY_FLAGS`, `src/policy/policy.h`).
    pub const STANDARD: Self = Self(
        Self::MANDATORY.0
            | Self::DERSIG.0
            | Self::MINIMALDATA.0
            | Self::NULLDUMMY.0
            | Self::DISCOURAGE_UPGRADABLE_NOPS.0
            | Self::CLEANSTACK.0
            | Self::CHECKLOCKTIMEVERIFY.0
            | Self::CHECKSEQUENCEVERIFY.0,
    );

    /// Rules Chronicle stops enforcing for transactions with version > 1 (svnode-protocol.md §7.3).
    pub const MALLEABILITY_RULES: Self = Self(
        Self::LOW_S.0
            | Self::NULLFAIL.0
            | Self::NULLDUMMY.0
            | Self::MINIMALDATA.0
            | Self::MINIMALIF.0
            | Self::CLEANSTACK.0
            | Self::SIGPUSHONLY.0,
    );

    /// Every name SV Node's `ParseScriptFlags` accepts, with its flag.
    pub const NAMES: [(&'static str, ScriptFlags); 20] = [
        ("NONE", Self::NONE),
        ("P2SH", Self::P2SH),
        ("STRICTENC", Self::STRICTENC),
        ("DERSIG", Self::DERSIG),
        ("LOW_S", Self::LOW_S),
        ("NULLDUMMY", Self::NULLDUMMY),
        ("SIGPUSHONLY", Self::SIGPUSHONLY),
        ("MINIMALDATA", Self::MINIMALDATA),
        ("DISCOURAGE_UPGRADABLE_NOPS", Self::DISCOURAGE_UPGRADABLE_NOPS),
        ("CLEANSTACK", Self::CLEANSTACK),
        ("CHECKLOCKTIMEVERIFY", Self::CHECKLOCKTIMEVERIFY),
        ("CHECKSEQUENCEVERIFY", Self::CHECKSEQUENCEVERIFY),
        ("MINIMALIF", Self::MINIMALIF),
        ("NULLFAIL", Self::NULLFAIL),
        ("COMPRESSED_PUBKEYTYPE", Self::COMPRESSED_PUBKEYTYPE),
        ("SIGHASH_FORKID", Self::SIGHASH_FORKID),
        ("GENESIS", Self::GENESIS),
        ("UTXO_AFTER_GENESIS", Self::UTXO_AFTER_GENESIS),
        ("CHRONICLE", Self::CHRONICLE),
        ("UTXO_AFTER_CHRONICLE", Self::UTXO_AFTER_CHRONICLE),
    ];

    pub const fn bits(self) -> u32 {
        self.0
    }

    pub const fn from_bits(bits: u32) -> Self {
        Self(bits)
    }

    /// True if every flag in `other` is set.
    #[inline]
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    pub const fn without(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    /// Parses SV Node's comma-separated flag list (`"P2SH,STRICTENC"`; `""` and `"NONE"` are empty).
    pub fn parse(list: &str) -> Result<Self, FlagsError> {
        let mut flags = Self::NONE;
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let (_, flag) = Self::NAMES
                .iter()
                .find(|(n, _)| *n == name)
                .ok_or_else(|| FlagsError::UnknownFlag { name: name.to_string() })?;
            flags |= *flag;
        }
        Ok(flags)
    }
}

impl BitOr for ScriptFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl BitOrAssign for ScriptFlags {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for ScriptFlags {
    type Output = Self;
    fn bitand(self, rhs: Self) -> Self {
        Self(self.0 & rhs.0)
    }
}

impl fmt::Debug for ScriptFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> =
            Self::NAMES.iter().filter(|(_, fl)| fl.0 != 0 && self.contains(*fl)).map(|(n, _)| *n).collect();
        write!(f, "ScriptFlags({})", names.join(","))
    }
}

/// Errors of this module.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FlagsError {
    #[error("unknown script verification flag {name:?}")]
    UnknownFlag { name: String },
}

/// The heights at which the script-relevant upgrades activate on one network. Each is "the first
/// height with the new rules" except where noted; `chain::params` maps network parameters onto it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivationHeights {
    /// BIP16 P2SH: enforced for blocks whose parent is at or above this height.
    pub p2sh: i32,
    /// BIP66 strict DER.
    pub bip66: i32,
    /// BIP65 CHECKLOCKTIMEVERIFY.
    pub bip65: i32,
    /// BIP68/112/113 CHECKSEQUENCEVERIFY.
    pub csv: i32,
    /// UAHF (SIGHASH_FORKID + STRICTENC): SV Node compares the *parent's* height with this value.
    pub uahf: i32,
    /// DAA fork (LOW_S + NULLFAIL): SV Node compares the *parent's* height with this value.
    pub daa: i32,
    /// Genesis: the first height with post-Genesis rules.
    pub genesis: i32,
    /// Chronicle: the first height with its rules, once Genesis is active too (an era after it).
    pub chronicle: i32,
}

impl From<&crate::params::Activations> for ActivationHeights {
    /// A network's heights (heights past `i32::MAX` never come).
    fn from(a: &crate::params::Activations) -> Self {
        let h = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        ActivationHeights {
            p2sh: h(a.p2sh),
            bip66: h(a.bip66),
            bip65: h(a.bip65),
            csv: h(a.csv),
            uahf: h(a.uahf),
            daa: h(a.daa),
            genesis: h(a.genesis),
            chronicle: h(a.chronicle),
        }
    }
}

/// Flags for verifying transactions in a block at `height` (SV Node's `GetBlockScriptFlags`,
/// which is given the parent, at `height - 1`). Per-input era flags come from [`utxo_flags`].
pub fn flags_for_height(height: i32, heights: &ActivationHeights) -> ScriptFlags {
    let prev = height.saturating_sub(1);
    let mut flags = ScriptFlags::NONE;
    if prev >= heights.p2sh {
        flags |= ScriptFlags::P2SH;
    }
    if height >= heights.bip66 {
        flags |= ScriptFlags::DERSIG;
    }
    if height >= heights.bip65 {
        flags |= ScriptFlags::CHECKLOCKTIMEVERIFY;
    }
    if height >= heights.csv {
        flags |= ScriptFlags::CHECKSEQUENCEVERIFY;
    }
    if prev >= heights.uahf {
        flags |= ScriptFlags::STRICTENC | ScriptFlags::SIGHASH_FORKID;
    }
    if prev >= heights.daa {
        flags |= ScriptFlags::LOW_S | ScriptFlags::NULLFAIL;
    }
    if height >= heights.genesis {
        flags |= ScriptFlags::GENESIS | ScriptFlags::SIGPUSHONLY;
        // SV Node 1.2's SCRIPT_CHRONICLE, which is also a mandatory flag from then on.
        if height >= heights.chronicle {
            flags |= ScriptFlags::CHRONICLE;
        }
    }
    flags
}

/// The per-input flags for a UTXO created in a block at `utxo_height` (a mempool parent counts as
/// the next block's height; SV Node's `InputScriptVerifyFlags`): post-Genesis UTXOs are evaluated
/// with post-Genesis rules, post-Chronicle ones also with Chronicle's opcodes and number size.
pub fn utxo_flags(utxo_height: i32, heights: &ActivationHeights) -> ScriptFlags {
    if utxo_height < heights.genesis {
        ScriptFlags::NONE
    } else if utxo_height < heights.chronicle {
        ScriptFlags::UTXO_AFTER_GENESIS
    } else {
        ScriptFlags::UTXO_AFTER_GENESIS | ScriptFlags::UTXO_AFTER_CHRONICLE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vector_flag_strings() {
        assert_eq!(ScriptFlags::parse("").unwrap(), ScriptFlags::NONE);
        assert_eq!(ScriptFlags::parse("NONE").unwrap(), ScriptFlags::NONE);
        assert_eq!(ScriptFlags::parse("P2SH,STRICTENC").unwrap(), ScriptFlags::P2SH | ScriptFlags::STRICTENC);
        assert!(matches!(ScriptFlags::parse("P2SH,BOGUS"), Err(FlagsError::UnknownFlag { .. })));
    }

    #[test]
    fn regtest_heights() {
        let h = ActivationHeights {
            p2sh: 1,
            bip66: 1251,
            bip65: 1351,
            csv: 576,
            uahf: 0,
            daa: 0,
            genesis: 10_000,
            chronicle: 15_000,
        };
        let f = flags_for_height(1, &h);
        assert!(f.contains(ScriptFlags::SIGHASH_FORKID | ScriptFlags::STRICTENC | ScriptFlags::LOW_S));
        assert!(!f.contains(ScriptFlags::P2SH));
        assert!(flags_for_height(2, &h).contains(ScriptFlags::P2SH));
        assert!(!flags_for_height(1250, &h).contains(ScriptFlags::DERSIG));
        assert!(flags_for_height(1251, &h).contains(ScriptFlags::DERSIG));
        assert!(!flags_for_height(9_999, &h).contains(ScriptFlags::GENESIS));
        assert!(flags_for_height(10_000, &h).contains(ScriptFlags::GENESIS | ScriptFlags::SIGPUSHONLY));
        assert_eq!(utxo_flags(10_000, &h), ScriptFlags::UTXO_AFTER_GENESIS);
        assert!(!flags_for_height(14_999, &h).contains(ScriptFlags::CHRONICLE));
        assert!(flags_for_height(15_000, &h).contains(ScriptFlags::CHRONICLE | ScriptFlags::GENESIS));
        assert_eq!(utxo_flags(14_999, &h), ScriptFlags::UTXO_AFTER_GENESIS);
        assert_eq!(utxo_flags(15_000, &h), ScriptFlags::UTXO_AFTER_GENESIS | ScriptFlags::UTXO_AFTER_CHRONICLE);
        // Chronicle is an era after Genesis: a lower Chronicle height waits for Genesis.
        let early = ActivationHeights { chronicle: 5, ..h };
        assert!(!flags_for_height(9_999, &early).contains(ScriptFlags::CHRONICLE));
        assert_eq!(utxo_flags(9_999, &early), ScriptFlags::NONE);
    }
}
