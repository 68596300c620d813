//! The script text format of SV Node's test vectors (`ParseScript` in `core_read.cpp`): decimal
//! numbers pushed as script numbers, `0x..` raw bytes copied verbatim, `'text'` pushed as data,
//! and opcode names with or without `OP_`. Test and tooling support; not consensus code.

use thiserror::Error;

use super::num::encode_i64;
use super::opcodes::{from_name, OP_0, OP_1, OP_1NEGATE, OP_PUSHDATA1, OP_PUSHDATA2, OP_PUSHDATA4};

/// Errors of the text parser.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AsmError {
    #[error("cannot parse script token {token:?}")]
    BadToken { token: String },
}

/// Chronicle (SV Node 1.2) opcode names, on bytes that were NOP4–NOP8 before.
const CHRONICLE_NAMES: [(&str, u8); 5] =
    [("SUBSTR", 0xb3), ("LEFT", 0xb4), ("RIGHT", 0xb5), ("LSHIFTNUM", 0xb6), ("RSHIFTNUM", 0xb7)];

/// Appends the shortest push of `data` (as `CScript() << data`).
pub fn push_data(out: &mut Vec<u8>, data: &[u8]) {
    match data.len() {
        n if n < OP_PUSHDATA1 as usize => out.push(n as u8),
        n if n <= 0xff => out.extend_from_slice(&[OP_PUSHDATA1, n as u8]),
        n if n <= 0xffff => {
            out.push(OP_PUSHDATA2);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        n => {
            out.push(OP_PUSHDATA4);
            out.extend_from_slice(&(n as u32).to_le_bytes());
        }
    }
    out.extend_from_slice(data);
}

/// Appends a number as `CScript() << int64` does: small values as opcodes.
pub fn push_int(out: &mut Vec<u8>, n: i64) {
    match n {
        0 => out.push(OP_0),
        -1 => out.push(OP_1NEGATE),
        1..=16 => out.push(OP_1 + (n as u8) - 1),
        _ => push_data(out, &encode_i64(n)),
    }
}

/// Parses the script text format into script bytes.
pub fn parse(text: &str) -> Result<Vec<u8>, AsmError> {
    let mut out = Vec::new();
    for token in text.split_whitespace() {
        let bad = || AsmError::BadToken { token: token.to_string() };
        let digits = token.strip_prefix('-').unwrap_or(token);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            push_int(&mut out, token.parse::<i64>().map_err(|_| bad())?);
        } else if let Some(hex) = token.strip_prefix("0x") {
            if hex.is_empty() {
                return Err(bad());
            }
            out.extend(hex::decode(hex).map_err(|_| bad())?);
        } else if token.len() >= 2 && token.starts_with('\'') && token.ends_with('\'') {
            push_data(&mut out, &token.as_bytes()[1..token.len() - 1]);
        } else if let Some(op) = from_name(token) {
            out.push(op);
        } else {
            let bare = token.strip_prefix("OP_").unwrap_or(token);
            let (_, op) = CHRONICLE_NAMES.iter().find(|(n, _)| *n == bare).ok_or_else(bad)?;
            out.push(*op);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_vector_format() {
        assert_eq!(parse("").unwrap(), Vec::<u8>::new());
        assert_eq!(parse("  1  2 ").unwrap(), vec![0x51, 0x52]);
        assert_eq!(parse("0 -1 17 -2").unwrap(), vec![0x00, 0x4f, 0x01, 0x11, 0x01, 0x82]);
        assert_eq!(parse("0x02 0x0100 DUP OP_DROP").unwrap(), vec![0x02, 0x01, 0x00, 0x76, 0x75]);
        assert_eq!(parse("'ab' ''").unwrap(), vec![0x02, b'a', b'b', 0x00]);
        assert!(parse("0x0").is_err());
        assert!(parse("FOO").is_err());
    }
}
