//! Consensus serialization: the `Encodable`/`Decodable` traits, CompactSize and a bounds-checked reader.
//!
//! Invariants the rest of the codec relies on:
//! - every read checks the remaining length first, so truncated input is an error, never a panic;
//! - a vector's count is checked against both its own limit and what the remaining bytes could hold
//!   (`count * min_item_len <= remaining`) before anything is allocated, so no length a peer writes
//!   can make us reserve memory it did not send;
//! - CompactSize must be minimal and at most `MAX_SIZE`, as SV Node requires.
//!
//! The reader works over `bytes::Bytes` so that scripts and raw transactions decoded from a frame are
//! slices of the frame's buffer: a block of size S is held in memory once, not twice.

use super::error::DecodeError;
use bytes::Bytes;

/// Largest CompactSize value SV Node accepts (`MAX_SIZE`, src/serialize.h:34). Core's is 0x02000000.
pub const MAX_SIZE: u64 = 0xFFFF_FFFF;

/// A value with a consensus byte encoding.
pub trait Encodable {
    /// Appends the value's consensus encoding to `out`.
    fn consensus_encode(&self, out: &mut Vec<u8>);

    /// The encoding as a fresh vector.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.consensus_encode(&mut out);
        out
    }
}

/// A value decodable from its consensus encoding.
pub trait Decodable: Sized {
    /// Reads one value from `r`, leaving `r` just past it.
    fn consensus_decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// Decodes a value that must fill `bytes` exactly.
    fn from_bytes(bytes: &Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let value = Self::consensus_decode(&mut r)?;
        r.finish(std::any::type_name::<Self>())?;
        Ok(value)
    }

    /// Like `from_bytes`, copying a borrowed slice first (tests, RPC input).
    fn from_slice(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::from_bytes(&Bytes::copy_from_slice(bytes))
    }
}

/// A cursor over a shared byte buffer that never reads past its end.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a Bytes,
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a Bytes) -> Self {
        Reader { data, pos: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// Offset of the next byte to read.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The underlying buffer (for hashing a decoded object's exact bytes).
    pub fn buffer(&self) -> &'a Bytes {
        self.data
    }

    /// Errors unless every byte has been read.
    pub fn finish(&self, what: &'static str) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(DecodeError::TrailingBytes { what, extra }),
        }
    }

    fn need(&self, n: usize, what: &'static str) -> Result<(), DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated { what, needed: (n - self.remaining()) as u64 });
        }
        Ok(())
    }

    /// Borrows the next `n` bytes.
    pub fn read_bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        self.need(n, what)?;
        let data: &'a Bytes = self.data;
        let out = &data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// The next `n` bytes as a zero-copy slice of the buffer.
    pub fn read_slice(&mut self, n: usize, what: &'static str) -> Result<Bytes, DecodeError> {
        self.need(n, what)?;
        let out = self.data.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(out)
    }

    pub fn read_array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let bytes = self.read_bytes(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub fn read_u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.read_array::<1>(what)?[0])
    }

    /// A boolean byte: zero is false, anything else true (as SV Node's `ser_readdata8` + cast).
    pub fn read_bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        Ok(self.read_u8(what)? != 0)
    }

    pub fn read_u16_le(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.read_array(what)?))
    }

    pub fn read_u16_be(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.read_array(what)?))
    }

    pub fn read_u32_le(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.read_array(what)?))
    }

    pub fn read_i32_le(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        Ok(i32::from_le_bytes(self.read_array(what)?))
    }

    pub fn read_u64_le(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.read_array(what)?))
    }

    pub fn read_i64_le(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.read_array(what)?))
    }

    /// A minimal CompactSize no larger than `MAX_SIZE`.
    pub fn read_compact_size(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let first = self.read_u8(what)?;
        let (value, min) = match first {
            0..=0xFC => return Ok(u64::from(first)),
            0xFD => (u64::from(self.read_u16_le(what)?), 0xFD),
            0xFE => (u64::from(self.read_u32_le(what)?), 0x1_0000),
            0xFF => (self.read_u64_le(what)?, 0x1_0000_0000),
        };
        if value < min {
            return Err(DecodeError::NonMinimalCompactSize { value });
        }
        if value > MAX_SIZE {
            return Err(DecodeError::CompactSizeTooLarge { value, max: MAX_SIZE });
        }
        Ok(value)
    }

    /// A vector's item count, checked against `max` and against the remaining bytes, given that
    /// each item takes at least `min_item_len` bytes. Only after this may the caller allocate.
    pub fn read_count(&mut self, what: &'static str, max: u64, min_item_len: usize) -> Result<usize, DecodeError> {
        let count = self.read_compact_size(what)?;
        if count > max {
            return Err(DecodeError::TooMany { what, count, max });
        }
        let fits = (self.remaining() / min_item_len.max(1)) as u64;
        if count > fits {
            return Err(DecodeError::Truncated { what, needed: (count - fits).saturating_mul(min_item_len as u64) });
        }
        Ok(count as usize)
    }

    /// CompactSize-prefixed bytes of at most `max` bytes, as a slice of the buffer.
    pub fn read_var_bytes(&mut self, what: &'static str, max: u64) -> Result<Bytes, DecodeError> {
        let len = self.read_compact_size(what)?;
        if len > max {
            return Err(DecodeError::TooLong { what, len, max });
        }
        self.read_slice(len as usize, what)
    }

    /// A CompactSize-prefixed string of at most `max` bytes. Strings are only shown (user agents,
    /// reject reasons), so bytes that are not valid UTF-8 become `?` one for one: the string never
    /// grows past the limit it was checked against, and re-encoding it stays within that limit.
    pub fn read_var_str(&mut self, what: &'static str, max: u64) -> Result<String, DecodeError> {
        let len = self.read_compact_size(what)?;
        if len > max {
            return Err(DecodeError::TooLong { what, len, max });
        }
        let bytes = self.read_bytes(len as usize, what)?;
        Ok(match std::str::from_utf8(bytes) {
            Ok(s) => s.to_owned(),
            Err(_) => bytes.iter().map(|&b| if b.is_ascii() { b as char } else { '?' }).collect(),
        })
    }
}

/// Appends a minimal CompactSize.
pub fn write_compact_size(out: &mut Vec<u8>, n: u64) {
    match n {
        0..=0xFC => out.push(n as u8),
        0xFD..=0xFFFF => {
            out.push(0xFD);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        0x1_0000..=0xFFFF_FFFF => {
            out.push(0xFE);
            out.extend_from_slice(&(n as u32).to_le_bytes());
        }
        _ => {
            out.push(0xFF);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
}

/// Length of the CompactSize encoding of `n`.
pub const fn compact_size_len(n: u64) -> usize {
    match n {
        0..=0xFC => 1,
        0xFD..=0xFFFF => 3,
        0x1_0000..=0xFFFF_FFFF => 5,
        _ => 9,
    }
}

/// Appends CompactSize-prefixed bytes.
pub fn write_var_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_compact_size(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Encodes a vector as a count followed by its items.
pub fn write_vec<T: Encodable>(out: &mut Vec<u8>, items: &[T]) {
    write_compact_size(out, items.len() as u64);
    for item in items {
        item.consensus_encode(out);
    }
}

/// Decodes a counted vector whose items take at least `min_item_len` bytes, at most `max` of them.
pub fn read_vec<T: Decodable>(
    r: &mut Reader<'_>,
    what: &'static str,
    max: u64,
    min_item_len: usize,
) -> Result<Vec<T>, DecodeError> {
    let count = r.read_count(what, max, min_item_len)?;
    let mut items = Vec::with_capacity(count);
    for _ in 0..count {
        items.push(T::consensus_decode(r)?);
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_cs(bytes: &[u8]) -> Result<u64, DecodeError> {
        let b = Bytes::copy_from_slice(bytes);
        Reader::new(&b).read_compact_size("test")
    }

    #[test]
    fn compact_size_round_trips_at_every_boundary() {
        for n in [0, 0xFC, 0xFD, 0xFFFF, 0x1_0000, 0xFFFF_FFFF] {
            let mut out = Vec::new();
            write_compact_size(&mut out, n);
            assert_eq!(out.len(), compact_size_len(n));
            assert_eq!(decode_cs(&out), Ok(n));
        }
    }

    #[test]
    fn non_minimal_compact_size_is_rejected() {
        assert_eq!(decode_cs(&[0xFD, 0xFC, 0x00]), Err(DecodeError::NonMinimalCompactSize { value: 0xFC }));
        assert_eq!(decode_cs(&[0xFE, 0xFF, 0xFF, 0, 0]), Err(DecodeError::NonMinimalCompactSize { value: 0xFFFF }));
        assert!(matches!(
            decode_cs(&[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0]),
            Err(DecodeError::NonMinimalCompactSize { .. })
        ));
        assert!(matches!(decode_cs(&[0xFD, 0xFD, 0x00]), Ok(0xFD)));
    }

    #[test]
    fn compact_size_above_max_size_is_rejected() {
        assert!(matches!(decode_cs(&[0xFF, 0, 0, 0, 0, 1, 0, 0, 0]), Err(DecodeError::CompactSizeTooLarge { .. })));
    }

    #[test]
    fn count_larger_than_remaining_bytes_is_refused_before_allocating() {
        // Claims 0xFFFFFFFF items of at least 36 bytes with 2 bytes behind it.
        let b = Bytes::from_static(&[0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2]);
        let err = Reader::new(&b).read_count("inv", u64::MAX, 36).unwrap_err();
        assert!(matches!(err, DecodeError::Truncated { what: "inv", .. }));
    }

    #[test]
    fn invalid_utf8_strings_keep_their_length() {
        let b = Bytes::from_static(&[3, b'a', 0xff, 0xfe]);
        let s = Reader::new(&b).read_var_str("ua", 3).unwrap();
        assert_eq!(s, "a??");
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn count_limit_is_inclusive() {
        let b = Bytes::from_static(&[3, 0, 0, 0]);
        assert_eq!(Reader::new(&b).read_count("x", 3, 1), Ok(3));
        assert!(matches!(Reader::new(&b).read_count("x", 2, 1), Err(DecodeError::TooMany { count: 3, max: 2, .. })));
    }
}
