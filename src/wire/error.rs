//! The one error type of the wire layer.
//!
//! Every variant says what was wrong with the bytes a peer sent, in terms a test can match and a
//! metric can count (`DecodeError::reason` is a closed set of label values).

use thiserror::Error;

/// Why a frame or a message payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The input ended before the value was complete.
    #[error("truncated: needed {needed} more bytes while reading {what}")]
    Truncated { what: &'static str, needed: u64 },
    /// A CompactSize was not written in its shortest form (SV Node: "non-canonical ReadCompactSize()").
    #[error("non-minimal CompactSize encoding of {value}")]
    NonMinimalCompactSize { value: u64 },
    /// A CompactSize larger than SV Node's `MAX_SIZE` (0xFFFFFFFF).
    #[error("CompactSize {value} exceeds the maximum of {max}")]
    CompactSizeTooLarge { value: u64, max: u64 },
    /// A vector claimed more items than the limit for it, or than the remaining bytes can hold.
    #[error("too many {what}: {count} (maximum {max})")]
    TooMany { what: &'static str, count: u64, max: u64 },
    /// A string or byte field was longer than its limit.
    #[error("{what} is {len} bytes long (maximum {max})")]
    TooLong { what: &'static str, len: u64, max: u64 },
    /// Bytes were left over after a message that must fill its payload exactly.
    #[error("{extra} unexpected trailing bytes after {what}")]
    TrailingBytes { what: &'static str, extra: usize },
    /// The frame did not start with this network's magic.
    #[error("bad magic {got:02x?} (expected {expected:02x?})")]
    BadMagic { got: [u8; 4], expected: [u8; 4] },
    /// The command field held non-printable bytes or data after its NUL padding.
    #[error("invalid command bytes {bytes:02x?}")]
    InvalidCommand { bytes: [u8; 12] },
    /// The payload's sha256d did not start with the header's checksum.
    #[error("bad checksum for {command}: header says {expected:08x}, payload hashes to {actual:08x}")]
    BadChecksum { command: String, expected: u32, actual: u32 },
    /// The header announced a payload larger than this command may carry.
    #[error("{command} payload of {len} bytes exceeds the limit of {max}")]
    Oversized { command: String, len: u64, max: u64 },
    /// A field held a value the protocol does not allow (an unknown inv type, a zero field count…).
    #[error("invalid {what}: {detail}")]
    InvalidValue { what: &'static str, detail: String },
}

impl DecodeError {
    /// A short, fixed label for metrics (`bsv_decode_errors_total{reason}`).
    pub const fn reason(&self) -> &'static str {
        match self {
            Self::Truncated { .. } => "truncated",
            Self::NonMinimalCompactSize { .. } => "non_minimal_compact_size",
            Self::CompactSizeTooLarge { .. } => "compact_size_too_large",
            Self::TooMany { .. } => "too_many_items",
            Self::TooLong { .. } => "too_long",
            Self::TrailingBytes { .. } => "trailing_bytes",
            Self::BadMagic { .. } => "bad_magic",
            Self::InvalidCommand { .. } => "invalid_command",
            Self::BadChecksum { .. } => "bad_checksum",
            Self::Oversized { .. } => "oversized",
            Self::InvalidValue { .. } => "invalid_value",
        }
    }

    /// All values `reason` can return, for metric pre-registration and tests.
    pub const REASONS: [&'static str; 11] = [
        "truncated",
        "non_minimal_compact_size",
        "compact_size_too_large",
        "too_many_items",
        "too_long",
        "trailing_bytes",
        "bad_magic",
        "invalid_command",
        "bad_checksum",
        "oversized",
        "invalid_value",
    ];
}
