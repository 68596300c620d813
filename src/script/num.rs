//! Script numbers: little-endian sign-magnitude integers with a per-era length limit (SV Node's
//! `CScriptNum`, which after Genesis is backed by a big integer).
//!
//! Invariants: a value that fits in an `i64` is always held as `Small`, so the common case never
//! touches the heap; decoding enforces the caller's byte limit *before* converting, so no operand
//! can be longer than the era allows (4 bytes pre-Genesis, 750,000 bytes post-Genesis by consensus).

use std::cmp::Ordering;

use num_bigint::{BigInt, Sign};
use num_traits::{Signed, ToPrimitive};

use super::error::ScriptError;

/// Operand length limit before Genesis (SV Node `MAX_SCRIPT_NUM_LENGTH_BEFORE_GENESIS`).
pub const MAX_SCRIPT_NUM_LENGTH_BEFORE_GENESIS: usize = 4;
/// Consensus operand length limit after Genesis (SV Node `MAX_SCRIPT_NUM_LENGTH_AFTER_GENESIS`,
/// `src/consensus/consensus.h`).
pub const MAX_SCRIPT_NUM_LENGTH_AFTER_GENESIS: usize = 750_000;
/// Consensus operand length limit for post-Chronicle UTXOs (svnode-protocol.md §2.4: 32 MB).
pub const MAX_SCRIPT_NUM_LENGTH_AFTER_CHRONICLE: usize = 32_000_000;
/// Lock-time operands may be 5 bytes: enough for every `u32` lock time (BIP65/BIP112).
pub const LOCKTIME_NUM_LENGTH: usize = 5;

/// A script number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptNum {
    Small(i64),
    Big(BigInt),
}

impl ScriptNum {
    pub const ZERO: ScriptNum = ScriptNum::Small(0);

    /// Decodes `bytes`, enforcing `max_len` and, with `require_minimal`, the shortest encoding.
    pub fn decode(bytes: &[u8], require_minimal: bool, max_len: usize) -> Result<Self, ScriptError> {
        if bytes.len() > max_len {
            return Err(ScriptError::ScriptNumOverflow);
        }
        if require_minimal && !is_minimally_encoded(bytes) {
            return Err(ScriptError::ScriptNumMinEncode);
        }
        let Some((&last, _)) = bytes.split_last() else {
            return Ok(Self::ZERO);
        };
        let negative = last & 0x80 != 0;
        if bytes.len() <= 8 {
            let mut mag: u64 = 0;
            for (i, &b) in bytes.iter().enumerate() {
                let b = if i == bytes.len() - 1 { b & 0x7f } else { b };
                mag |= u64::from(b) << (8 * i);
            }
            // An 8-byte magnitude has at most 63 bits once the sign bit is cleared.
            let v = mag as i64;
            return Ok(Self::Small(if negative { -v } else { v }));
        }
        let mut mag = bytes.to_vec();
        if let Some(l) = mag.last_mut() {
            *l &= 0x7f;
        }
        let n = BigInt::from_bytes_le(if negative { Sign::Minus } else { Sign::Plus }, &mag);
        Ok(Self::from_big(n))
    }

    fn from_big(n: BigInt) -> Self {
        match n.to_i64() {
            Some(v) => Self::Small(v),
            None => Self::Big(n),
        }
    }

    fn to_big(&self) -> BigInt {
        match self {
            Self::Small(v) => BigInt::from(*v),
            Self::Big(b) => b.clone(),
        }
    }

    /// The shortest encoding of the value.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Small(v) => encode_i64(*v),
            Self::Big(b) => {
                let (sign, mut mag) = b.to_bytes_le();
                if sign == Sign::NoSign {
                    return Vec::new();
                }
                let negative = sign == Sign::Minus;
                match mag.last() {
                    Some(&l) if l & 0x80 != 0 => mag.push(if negative { 0x80 } else { 0 }),
                    Some(_) if negative => {
                        if let Some(l) = mag.last_mut() {
                            *l |= 0x80;
                        }
                    }
                    _ => {}
                }
                mag
            }
        }
    }

    pub fn is_zero(&self) -> bool {
        matches!(self, Self::Small(0))
    }

    pub fn is_negative(&self) -> bool {
        match self {
            Self::Small(v) => *v < 0,
            Self::Big(b) => b.is_negative(),
        }
    }

    /// The value clamped into `i64` (callers use it as a count or index and range-check it).
    pub fn to_i64_saturating(&self) -> i64 {
        match self {
            Self::Small(v) => *v,
            Self::Big(b) if b.is_negative() => i64::MIN,
            Self::Big(_) => i64::MAX,
        }
    }

    /// SV Node's `CScriptNum::getint`: the value clamped into `i32`.
    pub fn to_i32_saturating(&self) -> i32 {
        self.to_i64_saturating().clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
    }

    pub fn add(&self, o: &Self) -> Self {
        match (self, o) {
            (Self::Small(a), Self::Small(b)) => match a.checked_add(*b) {
                Some(v) => Self::Small(v),
                None => Self::from_big(BigInt::from(*a) + *b),
            },
            _ => Self::from_big(self.to_big() + o.to_big()),
        }
    }

    pub fn sub(&self, o: &Self) -> Self {
        match (self, o) {
            (Self::Small(a), Self::Small(b)) => match a.checked_sub(*b) {
                Some(v) => Self::Small(v),
                None => Self::from_big(BigInt::from(*a) - *b),
            },
            _ => Self::from_big(self.to_big() - o.to_big()),
        }
    }

    pub fn mul(&self, o: &Self) -> Self {
        match (self, o) {
            (Self::Small(a), Self::Small(b)) => match a.checked_mul(*b) {
                Some(v) => Self::Small(v),
                None => Self::from_big(BigInt::from(*a) * *b),
            },
            _ => Self::from_big(self.to_big() * o.to_big()),
        }
    }

    /// Quotient truncated towards zero (C++ `/`); `None` when dividing by zero.
    pub fn div(&self, o: &Self) -> Option<Self> {
        if o.is_zero() {
            return None;
        }
        Some(match (self, o) {
            (Self::Small(a), Self::Small(b)) => match a.checked_div(*b) {
                Some(v) => Self::Small(v),
                None => Self::from_big(BigInt::from(*a) / *b),
            },
            _ => Self::from_big(self.to_big() / o.to_big()),
        })
    }

    /// Remainder with the dividend's sign (C++ `%`); `None` when dividing by zero.
    pub fn rem(&self, o: &Self) -> Option<Self> {
        if o.is_zero() {
            return None;
        }
        Some(match (self, o) {
            (Self::Small(a), Self::Small(b)) => Self::Small(a.checked_rem(*b).unwrap_or(0)),
            _ => Self::from_big(self.to_big() % o.to_big()),
        })
    }

    /// Shifts the magnitude by `bits` (left multiplies, right divides truncating towards zero),
    /// keeping the sign. Callers bound `bits` for left shifts (the result grows by `bits / 8` bytes).
    pub fn shift(&self, bits: u64, left: bool) -> Self {
        if self.is_zero() {
            return Self::ZERO;
        }
        let sign = if self.is_negative() { Sign::Minus } else { Sign::Plus };
        let mag = self.to_big().magnitude().clone();
        let shifted = if left {
            mag << bits
        } else if bits >= mag.bits() {
            return Self::ZERO;
        } else {
            mag >> bits
        };
        Self::from_big(BigInt::from_biguint(sign, shifted))
    }

    pub fn neg(&self) -> Self {
        match self {
            Self::Small(v) => match v.checked_neg() {
                Some(n) => Self::Small(n),
                None => Self::from_big(-BigInt::from(*v)),
            },
            Self::Big(b) => Self::from_big(-b),
        }
    }

    pub fn abs(&self) -> Self {
        if self.is_negative() {
            self.neg()
        } else {
            self.clone()
        }
    }
}

impl From<i64> for ScriptNum {
    fn from(v: i64) -> Self {
        Self::Small(v)
    }
}

impl PartialOrd for ScriptNum {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ScriptNum {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Self::Small(a), Self::Small(b)) => a.cmp(b),
            _ => self.to_big().cmp(&other.to_big()),
        }
    }
}

/// The shortest encoding of an `i64` (SV Node `CScriptNum::serialize`).
pub fn encode_i64(v: i64) -> Vec<u8> {
    if v == 0 {
        return Vec::new();
    }
    let negative = v < 0;
    let mut mag = v.unsigned_abs();
    let mut out = Vec::with_capacity(9);
    while mag > 0 {
        out.push((mag & 0xff) as u8);
        mag >>= 8;
    }
    let last = out.len() - 1;
    if out[last] & 0x80 != 0 {
        out.push(if negative { 0x80 } else { 0 });
    } else if negative {
        out[last] |= 0x80;
    }
    out
}

/// True if `bytes` is the shortest encoding of its value (no needless trailing zero byte).
pub fn is_minimally_encoded(bytes: &[u8]) -> bool {
    match bytes {
        [] => true,
        [.., last] if last & 0x7f != 0 => true,
        [_] => false,
        [.., prev, _] => prev & 0x80 != 0,
    }
}

/// Re-encodes `bytes` minimally, keeping the value (SV Node's `MinimallyEncode`, used by BIN2NUM
/// and NUM2BIN, which accept any length).
pub fn minimally_encode(mut bytes: Vec<u8>) -> Vec<u8> {
    let Some(&last) = bytes.last() else {
        return bytes;
    };
    if last & 0x7f != 0 {
        return bytes;
    }
    if bytes.len() == 1 {
        bytes.clear();
        return bytes;
    }
    if bytes[bytes.len() - 2] & 0x80 != 0 {
        return bytes;
    }
    let sign = last & 0x80;
    // Drop zero bytes from the end; the sign goes on the last non-zero byte, or on an extra byte
    // when that byte's top bit is taken.
    let mut i = bytes.len() - 1;
    while i > 0 {
        if bytes[i - 1] != 0 {
            if bytes[i - 1] & 0x80 != 0 {
                bytes[i] = sign;
                bytes.truncate(i + 1);
            } else {
                bytes[i - 1] |= sign;
                bytes.truncate(i);
            }
            return bytes;
        }
        i -= 1;
    }
    bytes.clear();
    bytes
}

/// SV Node's `CastToBool`: any non-zero byte, except a lone sign bit in the last byte (-0).
#[inline]
pub fn cast_to_bool(bytes: &[u8]) -> bool {
    for (i, &b) in bytes.iter().enumerate() {
        if b != 0 {
            return !(i == bytes.len() - 1 && b == 0x80);
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_small_and_big() {
        for v in [0i64, 1, -1, 127, 128, -128, 255, 256, i64::MAX, i64::MIN + 1, -0x7fff_ffff] {
            let enc = encode_i64(v);
            assert!(is_minimally_encoded(&enc));
            assert_eq!(ScriptNum::decode(&enc, true, 9).unwrap(), ScriptNum::Small(v), "{v}");
        }
        let big = ScriptNum::Small(i64::MAX).add(&ScriptNum::Small(1));
        assert!(matches!(big, ScriptNum::Big(_)));
        let enc = big.encode();
        assert_eq!(enc, vec![0, 0, 0, 0, 0, 0, 0, 0x80, 0]);
        assert_eq!(ScriptNum::decode(&enc, true, 9).unwrap(), big);
        assert_eq!(big.sub(&ScriptNum::Small(1)), ScriptNum::Small(i64::MAX));
        assert_eq!(ScriptNum::Small(i64::MIN).neg().neg(), ScriptNum::Small(i64::MIN));
    }

    #[test]
    fn limits_and_minimality() {
        assert_eq!(ScriptNum::decode(&[1, 2, 3, 4, 5], false, 4), Err(ScriptError::ScriptNumOverflow));
        assert_eq!(ScriptNum::decode(&[1, 0], true, 4), Err(ScriptError::ScriptNumMinEncode));
        assert_eq!(ScriptNum::decode(&[0x80], true, 4), Err(ScriptError::ScriptNumMinEncode));
        assert_eq!(ScriptNum::decode(&[0x80], false, 4).unwrap(), ScriptNum::ZERO);
        assert_eq!(ScriptNum::decode(&[0xff, 0x80], true, 4).unwrap(), ScriptNum::Small(-255));
    }

    #[test]
    fn minimally_encode_keeps_value() {
        assert_eq!(minimally_encode(vec![0x01, 0x00, 0x00]), vec![0x01]);
        assert_eq!(minimally_encode(vec![0x01, 0x00, 0x80]), vec![0x81]);
        assert_eq!(minimally_encode(vec![0x80, 0x00, 0x80]), vec![0x80, 0x80]);
        assert_eq!(minimally_encode(vec![0x00, 0x00, 0x80]), Vec::<u8>::new());
        assert_eq!(minimally_encode(vec![0x80]), Vec::<u8>::new());
    }

    #[test]
    fn division_truncates_like_cpp() {
        let d = |a: i64, b: i64| ScriptNum::Small(a).div(&ScriptNum::Small(b)).unwrap();
        let r = |a: i64, b: i64| ScriptNum::Small(a).rem(&ScriptNum::Small(b)).unwrap();
        assert_eq!(d(-7, 2), ScriptNum::Small(-3));
        assert_eq!(r(-7, 2), ScriptNum::Small(-1));
        assert_eq!(r(7, -2), ScriptNum::Small(1));
        assert!(ScriptNum::Small(1).div(&ScriptNum::ZERO).is_none());
    }
}
