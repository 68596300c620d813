//! A 256-bit unsigned integer, just enough for targets and chain work.
//!
//! Arithmetic wraps modulo 2^256 like SV Node's `arith_uint256` (src/arith_uint256.h), because the
//! difficulty formulas rely on it: the cw-144 DAA computes `(2^256 - work) / work` as `(-work) / work`.
//! The compact ("nBits") encoding follows `SetCompact`/`GetCompact` exactly, including the sign bit
//! and the overflow flag, since a header's nBits is compared bit for bit with the required value.
//!
//! Invariants: limbs are little-endian (`0[0]` is the least significant 64 bits); nothing here
//! panics except division by zero, which callers rule out (a target plus one, a non-zero work).

use std::cmp::Ordering;
use std::fmt;
use std::ops::{Add, AddAssign, Not, Shl, Shr, Sub, SubAssign};

/// A 256-bit unsigned integer, wrapping on overflow.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct U256(pub [u64; 4]);

/// The result of decoding a compact target: the value and SV Node's two error flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compact {
    pub value: U256,
    /// The sign bit (0x00800000) was set with a non-zero mantissa.
    pub negative: bool,
    /// The value does not fit in 256 bits.
    pub overflow: bool,
}

impl U256 {
    pub const ZERO: U256 = U256([0; 4]);
    pub const ONE: U256 = U256([1, 0, 0, 0]);
    pub const MAX: U256 = U256([u64::MAX; 4]);

    pub const fn from_u64(v: u64) -> U256 {
        U256([v, 0, 0, 0])
    }

    /// Reads a little-endian number, the byte order of a block hash in memory and on the wire.
    pub fn from_le_bytes(b: &[u8; 32]) -> U256 {
        let limb = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i * 8..i * 8 + 8]);
            u64::from_le_bytes(w)
        };
        U256([limb(0), limb(1), limb(2), limb(3)])
    }

    pub fn to_le_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, limb) in self.0.iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&limb.to_le_bytes());
        }
        out
    }

    /// Parses 64 hex digits, most significant first (how chain work is printed by RPC and stored
    /// in `ChainParams::minimum_chain_work`). `None` if the string is not exactly that.
    pub fn from_be_hex(s: &str) -> Option<U256> {
        let mut b = [0u8; 32];
        hex::decode_to_slice(s, &mut b).ok()?;
        b.reverse();
        Some(U256::from_le_bytes(&b))
    }

    pub fn is_zero(&self) -> bool {
        self.0 == [0; 4]
    }

    /// The low 64 bits.
    pub fn low_u64(&self) -> u64 {
        self.0[0]
    }

    /// Number of significant bits (0 for zero).
    pub fn bits(&self) -> u32 {
        for i in (0..4).rev() {
            if self.0[i] != 0 {
                return 64 * i as u32 + 64 - self.0[i].leading_zeros();
            }
        }
        0
    }

    pub fn overflowing_add(self, rhs: U256) -> (U256, bool) {
        let mut out = [0u64; 4];
        let mut carry = false;
        for (i, o) in out.iter_mut().enumerate() {
            let (s1, c1) = self.0[i].overflowing_add(rhs.0[i]);
            let (s2, c2) = s1.overflowing_add(carry as u64);
            *o = s2;
            carry = c1 || c2;
        }
        (U256(out), carry)
    }

    pub fn overflowing_sub(self, rhs: U256) -> (U256, bool) {
        let mut out = [0u64; 4];
        let mut borrow = false;
        for (i, o) in out.iter_mut().enumerate() {
            let (d1, b1) = self.0[i].overflowing_sub(rhs.0[i]);
            let (d2, b2) = d1.overflowing_sub(borrow as u64);
            *o = d2;
            borrow = b1 || b2;
        }
        (U256(out), borrow)
    }

    /// `self + rhs`, or `None` past 2^256 - 1.
    pub fn checked_add(self, rhs: U256) -> Option<U256> {
        match self.overflowing_add(rhs) {
            (v, false) => Some(v),
            (_, true) => None,
        }
    }

    /// `self + rhs`, stopping at 2^256 - 1 (chain work can never get there honestly).
    pub fn saturating_add(self, rhs: U256) -> U256 {
        self.checked_add(rhs).unwrap_or(U256::MAX)
    }

    /// Two's complement negation modulo 2^256 (`-x` in `arith_uint256`).
    pub fn wrapping_neg(self) -> U256 {
        (!self).overflowing_add(U256::ONE).0
    }

    /// `self * rhs` modulo 2^256.
    pub fn wrapping_mul_u64(self, rhs: u64) -> U256 {
        let mut out = [0u64; 4];
        let mut carry: u128 = 0;
        for (i, o) in out.iter_mut().enumerate() {
            let p = self.0[i] as u128 * rhs as u128 + carry;
            *o = p as u64;
            carry = p >> 64;
        }
        U256(out)
    }

    /// `self * rhs` modulo 2^256.
    pub fn wrapping_mul(self, rhs: U256) -> U256 {
        let mut out = [0u64; 4];
        for i in 0..4 {
            let mut carry: u128 = 0;
            for j in 0..4 - i {
                let p = self.0[i] as u128 * rhs.0[j] as u128 + out[i + j] as u128 + carry;
                out[i + j] = p as u64;
                carry = p >> 64;
            }
        }
        U256(out)
    }

    /// Quotient and remainder. Panics if `d` is zero (callers divide by `target + 1` or a non-zero
    /// work only).
    pub fn div_rem(self, d: U256) -> (U256, U256) {
        assert!(!d.is_zero(), "U256 division by zero");
        let (nb, db) = (self.bits(), d.bits());
        if nb < db {
            return (U256::ZERO, self);
        }
        // A divisor of one limb: schoolbook division in u128, much faster than bit by bit.
        if db <= 64 {
            let (q, r) = self.div_rem_u64(d.0[0]);
            return (q, U256::from_u64(r));
        }
        let mut shift = nb - db;
        let mut r = self;
        let mut q = U256::ZERO;
        let mut dd = d << shift;
        loop {
            if r >= dd {
                r = r.overflowing_sub(dd).0;
                q.0[(shift / 64) as usize] |= 1 << (shift % 64);
            }
            if shift == 0 {
                break;
            }
            dd = dd >> 1;
            shift -= 1;
        }
        (q, r)
    }

    /// Quotient and remainder by a non-zero `u64`.
    pub fn div_rem_u64(self, d: u64) -> (U256, u64) {
        assert!(d != 0, "U256 division by zero");
        let mut q = [0u64; 4];
        let mut rem: u128 = 0;
        for i in (0..4).rev() {
            let cur = (rem << 64) | self.0[i] as u128;
            q[i] = (cur / d as u128) as u64;
            rem = cur % d as u128;
        }
        (U256(q), rem as u64)
    }

    /// Decodes a compact target (`arith_uint256::SetCompact`): a base-256 exponent in the top byte,
    /// a 23-bit mantissa and a sign bit.
    pub fn from_compact(bits: u32) -> Compact {
        let size = bits >> 24;
        let mut word = bits & 0x007f_ffff;
        let value = if size <= 3 {
            word >>= 8 * (3 - size);
            U256::from_u64(word as u64)
        } else {
            U256::from_u64(word as u64) << (8 * (size - 3))
        };
        let negative = word != 0 && bits & 0x0080_0000 != 0;
        let overflow = word != 0 && (size > 34 || (word > 0xff && size > 33) || (word > 0xffff && size > 32));
        Compact { value, negative, overflow }
    }

    /// Encodes as a compact target (`arith_uint256::GetCompact`, never negative).
    pub fn to_compact(&self) -> u32 {
        let mut size = self.bits().div_ceil(8);
        let mut compact = if size <= 3 {
            (self.low_u64() << (8 * (3 - size))) as u32
        } else {
            (*self >> (8 * (size - 3))).low_u64() as u32
        };
        // The mantissa's top bit is the sign: move one byte into the exponent instead.
        if compact & 0x0080_0000 != 0 {
            compact >>= 8;
            size += 1;
        }
        compact | (size << 24)
    }
}

impl Ord for U256 {
    fn cmp(&self, other: &Self) -> Ordering {
        for i in (0..4).rev() {
            match self.0[i].cmp(&other.0[i]) {
                Ordering::Equal => continue,
                unequal => return unequal,
            }
        }
        Ordering::Equal
    }
}

impl PartialOrd for U256 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Add for U256 {
    type Output = U256;
    /// Wrapping, as `arith_uint256`.
    fn add(self, rhs: U256) -> U256 {
        self.overflowing_add(rhs).0
    }
}

impl AddAssign for U256 {
    fn add_assign(&mut self, rhs: U256) {
        *self = *self + rhs;
    }
}

impl Sub for U256 {
    type Output = U256;
    /// Wrapping, as `arith_uint256`.
    fn sub(self, rhs: U256) -> U256 {
        self.overflowing_sub(rhs).0
    }
}

impl SubAssign for U256 {
    fn sub_assign(&mut self, rhs: U256) {
        *self = *self - rhs;
    }
}

impl Not for U256 {
    type Output = U256;
    fn not(self) -> U256 {
        U256([!self.0[0], !self.0[1], !self.0[2], !self.0[3]])
    }
}

impl Shl<u32> for U256 {
    type Output = U256;
    /// Bits shifted past the top are lost; a shift of 256 or more gives zero.
    fn shl(self, shift: u32) -> U256 {
        if shift >= 256 {
            return U256::ZERO;
        }
        let (limbs, bits) = ((shift / 64) as usize, shift % 64);
        let mut out = [0u64; 4];
        for (i, o) in out.iter_mut().enumerate().skip(limbs) {
            *o = self.0[i - limbs] << bits;
            if bits > 0 && i > limbs {
                *o |= self.0[i - limbs - 1] >> (64 - bits);
            }
        }
        U256(out)
    }
}

impl Shr<u32> for U256 {
    type Output = U256;
    /// A shift of 256 or more gives zero.
    fn shr(self, shift: u32) -> U256 {
        if shift >= 256 {
            return U256::ZERO;
        }
        let (limbs, bits) = ((shift / 64) as usize, shift % 64);
        let mut out = [0u64; 4];
        for (i, o) in out.iter_mut().enumerate().take(4 - limbs) {
            *o = self.0[i + limbs] >> bits;
            if bits > 0 && i + limbs + 1 < 4 {
                *o |= self.0[i + limbs + 1] << (64 - bits);
            }
        }
        U256(out)
    }
}

impl fmt::Display for U256 {
    /// 64 hex digits, most significant first, as RPC prints chain work.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}{:016x}{:016x}{:016x}", self.0[3], self.0[2], self.0[1], self.0[0])
    }
}

impl fmt::Debug for U256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "U256(0x{self})")
    }
}

impl From<u64> for U256 {
    fn from(v: u64) -> U256 {
        U256::from_u64(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn u(v: u128) -> U256 {
        U256([v as u64, (v >> 64) as u64, 0, 0])
    }

    fn as_u128(v: U256) -> u128 {
        assert_eq!(v.0[2..], [0, 0]);
        v.0[0] as u128 | (v.0[1] as u128) << 64
    }

    #[test]
    fn compact_round_trips_known_targets() {
        // The genesis target: 0x00000000ffff0000…0000.
        let t = U256::from_compact(0x1d00ffff);
        assert!(!t.negative && !t.overflow);
        assert_eq!(t.value.to_string(), format!("00000000ffff{}", "0".repeat(52)));
        assert_eq!(t.value.to_compact(), 0x1d00ffff);
        // Regtest: 0x7fffff << 232.
        let r = U256::from_compact(0x207fffff).value;
        assert_eq!(r, U256::from_u64(0x7fffff) << 232);
        assert_eq!(r.to_compact(), 0x207fffff);
    }

    #[test]
    fn compact_edge_cases_match_arith_uint256() {
        // Values from Core's arith_uint256_tests.cpp (SetCompact/GetCompact).
        let cases: [(u32, u128, bool, bool, u32); 9] = [
            (0x00000000, 0, false, false, 0),
            (0x00123456, 0, false, false, 0),
            (0x01003456, 0, false, false, 0),
            (0x01123456, 0x12, false, false, 0x01120000),
            (0x01fedcba, 0x7e, true, false, 0x017e0000),
            (0x02123456, 0x1234, false, false, 0x02123400),
            (0x03123456, 0x123456, false, false, 0x03123456),
            (0x04123456, 0x12345600, false, false, 0x04123456),
            (0x05009234, 0x92340000, false, false, 0x05009234),
        ];
        for (bits, value, negative, overflow, back) in cases {
            let c = U256::from_compact(bits);
            assert_eq!((as_u128(c.value), c.negative, c.overflow), (value, negative, overflow), "{bits:08x}");
            assert_eq!(c.value.to_compact(), back, "{bits:08x}");
        }
        assert!(U256::from_compact(0xff123456).overflow);
        let big = U256::from_compact(0x20123456).value;
        assert_eq!(big, U256::from_u64(0x123456) << 232);
        assert_eq!(big.to_compact(), 0x20123456);
    }

    #[test]
    fn negation_and_division() {
        assert_eq!(U256::ONE.wrapping_neg(), U256::MAX);
        assert_eq!(U256::ZERO.wrapping_neg(), U256::ZERO);
        // (2^256 - 2^255) / 2^255 = 1
        let half = U256::ONE << 255;
        assert_eq!(half.wrapping_neg().div_rem(half), (U256::ONE, U256::ZERO));
        let (q, r) = U256::MAX.div_rem(U256::from_u64(1) << 128);
        assert_eq!(q, U256([u64::MAX, u64::MAX, 0, 0]));
        assert_eq!(r, U256([u64::MAX, u64::MAX, 0, 0]));
    }

    proptest! {
        #[test]
        fn arithmetic_matches_u128(a in any::<u64>(), b in any::<u64>(), c in 1u64..) {
            let (x, y) = (a as u128 * 7 + 3, b as u128 | 1);
            prop_assert_eq!(as_u128(u(x) + u(y)), x + y);
            prop_assert_eq!(as_u128(u(x * 2) - u(x)), x);
            let m = b >> 4;
            prop_assert_eq!(as_u128(u(x).wrapping_mul_u64(m)), x * m as u128);
            prop_assert_eq!(as_u128(u(x).wrapping_mul(u(m as u128))), x * m as u128);
            let (q, r) = u(x).div_rem(u(y));
            prop_assert_eq!((as_u128(q), as_u128(r)), (x / y, x % y));
            let (q, r) = u(x).div_rem_u64(c);
            prop_assert_eq!((as_u128(q), r as u128), (x / c as u128, x % c as u128));
            prop_assert_eq!(u(x).cmp(&u(y)), x.cmp(&y));
        }

        #[test]
        fn division_reconstructs(n in any::<[u64; 4]>(), d in any::<[u64; 4]>()) {
            let (n, d) = (U256(n), U256(d));
            prop_assume!(!d.is_zero());
            let (q, r) = n.div_rem(d);
            prop_assert!(r < d);
            prop_assert_eq!(q.wrapping_mul(d) + r, n);
        }

        #[test]
        fn shifts_invert(v in any::<[u64; 4]>(), s in 0u32..256) {
            let v = U256(v) >> s;
            prop_assert_eq!((v << s) >> s, v);
            prop_assert!(v.bits() <= 256 - s);
        }

        #[test]
        fn compact_of_a_compact_value_is_stable(size in 0u32..33, mantissa in 0u32..0x80_0000) {
            let c = U256::from_compact(size << 24 | mantissa);
            prop_assume!(!c.negative && !c.overflow);
            prop_assert_eq!(U256::from_compact(c.value.to_compact()).value, c.value);
        }
    }
}
