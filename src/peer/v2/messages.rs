//! Messages in v2 packets: the message type (one byte for BIP324's common messages, a zero byte and
//! the 12-byte name for the rest) followed by the payload; and BSV's large messages over several
//! packets (see the module doc of `peer::v2`).

use super::cipher::{PacketSealer, MAX_CONTENTS};
use crate::wire::frame::{EXTMSG, EXT_HEADER_LEN, HEADER_LEN};
use crate::wire::{Command, Limits};
use bytes::Bytes;

/// One-byte message ids: id `i + 1` is `SHORT_IDS[i]`. 1–28 are BIP324's own; 29–37 are those
/// later BIPs assign (`message_type_ids.md` of the BIP324 vectors). SV Node speaks none of the
/// filter, utreexo or feature messages, but their ids are decoded all the same (to commands this
/// node does not know, which it ignores).
pub const SHORT_IDS: [&str; 37] = [
    "addr",
    "block",
    "blocktxn",
    "cmpctblock",
    "feefilter",
    "filteradd",
    "filterclear",
    "filterload",
    "getblocks",
    "getblocktxn",
    "getdata",
    "getheaders",
    "headers",
    "inv",
    "mempool",
    "merkleblock",
    "notfound",
    "ping",
    "pong",
    "sendcmpct",
    "tx",
    "getcfilters",
    "cfilter",
    "getcfheaders",
    "cfheaders",
    "getcfcheckpt",
    "cfcheckpt",
    "addrv2",
    "uproof",
    "getuproof",
    "uttls",
    "getuttls",
    "usummary",
    "utreexotx",
    "uroot",
    "geturoot",
    "feature",
];

/// The one-byte id of `command`, if it has one.
pub fn short_id(command: &str) -> Option<u8> {
    SHORT_IDS.iter().position(|c| *c == command).map(|i| i as u8 + 1)
}

/// Bytes of the 12-byte message type form: a zero byte and the name.
const LONG_TYPE_LEN: usize = 13;
/// Bytes after the `extmsg` type in a large message's first packet: command and 64-bit length.
const EXT_FIELDS_LEN: usize = 12 + 8;

/// Why a packet's contents are not a message. Each ends the connection (the stream is
/// authenticated, so these are the peer's own doing, not damage on the path).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("empty packet contents")]
    Empty,
    #[error("message type truncated")]
    TruncatedType,
    #[error("extmsg header truncated")]
    TruncatedExtHeader,
    #[error("{command} of {len} bytes is over its limit of {max}")]
    Oversized { command: String, len: u64, max: u64 },
    #[error("{extra} bytes past the announced length of a large {command}")]
    Overrun { command: String, extra: usize },
}

/// One message read from packets. An unknown message type (a one-byte id we do not know, or a
/// name that is not a valid command) is `None` and ignored, as BIP324 asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub command: Option<Command>,
    pub payload: Bytes,
}

/// The command and payload of a v1 frame as the send queue holds it (basic or `extmsg` header).
pub fn split_v1_frame(frame: &[u8]) -> (&[u8; 12], &[u8]) {
    let command: &[u8; 12] = frame[4..16].try_into().expect("a frame has a 24-byte header");
    if command.starts_with(EXTMSG.as_bytes()) && command[EXTMSG.len()..].iter().all(|b| *b == 0) {
        (frame[24..36].try_into().expect("extended header"), &frame[EXT_HEADER_LEN..])
    } else {
        (command, &frame[HEADER_LEN..])
    }
}

/// Encrypts one message (`command` as its 12 wire bytes) as one packet, or as a large message over
/// several, appending them to `out`.
pub fn seal_message(sealer: &mut PacketSealer, command: &[u8; 12], payload: &[u8], out: &mut Vec<u8>) {
    let name_len = command.iter().position(|b| *b == 0).unwrap_or(12);
    let id = std::str::from_utf8(&command[..name_len]).ok().and_then(short_id);
    let type_len = if id.is_some() { 1 } else { LONG_TYPE_LEN };
    if type_len + payload.len() <= MAX_CONTENTS {
        let mut contents = Vec::with_capacity(type_len + payload.len());
        match id {
            Some(id) => contents.push(id),
            None => {
                contents.push(0);
                contents.extend_from_slice(command);
            }
        }
        contents.extend_from_slice(payload);
        sealer.seal(0, &contents, &[], out);
        return;
    }
    let first = MAX_CONTENTS - LONG_TYPE_LEN - EXT_FIELDS_LEN;
    let mut contents = Vec::with_capacity(MAX_CONTENTS);
    contents.push(0);
    contents.extend_from_slice(&Command::new(EXTMSG).expect("valid").to_wire());
    contents.extend_from_slice(command);
    contents.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    contents.extend_from_slice(&payload[..first]);
    sealer.seal(0, &contents, &[], out);
    for part in payload[first..].chunks(MAX_CONTENTS) {
        sealer.seal(0, part, &[], out);
    }
}

/// What comes before the payload in a message's packet contents: its type (a one-byte id, or a
/// zero and the 12-byte name), and for a message too large for one packet the `extmsg` type, the
/// real command and the 64-bit length. The contents of a message's packets are this followed by
/// the payload, cut every [`MAX_CONTENTS`] bytes (what [`seal_message`] produces).
pub fn message_prefix(command: &[u8; 12], payload_len: usize) -> Vec<u8> {
    let name_len = command.iter().position(|b| *b == 0).unwrap_or(12);
    let id = std::str::from_utf8(&command[..name_len]).ok().and_then(short_id);
    let type_len = if id.is_some() { 1 } else { LONG_TYPE_LEN };
    let mut prefix = Vec::with_capacity(LONG_TYPE_LEN + EXT_FIELDS_LEN);
    if type_len + payload_len <= MAX_CONTENTS {
        match id {
            Some(id) => prefix.push(id),
            None => {
                prefix.push(0);
                prefix.extend_from_slice(command);
            }
        }
    } else {
        prefix.push(0);
        prefix.extend_from_slice(&Command::new(EXTMSG).expect("valid").to_wire());
        prefix.extend_from_slice(command);
        prefix.extend_from_slice(&(payload_len as u64).to_le_bytes());
    }
    prefix
}

/// A large message being received.
struct Partial {
    command: Option<Command>,
    shown: String,
    len: usize,
    payload: Vec<u8>,
}

/// Turns the contents of genuine packets back into messages.
#[derive(Default)]
pub struct Assembler {
    partial: Option<Partial>,
}

impl Assembler {
    /// Whether a large message is part-way in.
    pub fn in_progress(&self) -> bool {
        self.partial.is_some()
    }

    /// Takes one genuine packet's contents (`contents` is the whole decrypted packet buffer, the
    /// contents starting at `start`): a message, `None` while a large one is incomplete, or why
    /// the peer's stream is broken.
    pub fn take(&mut self, contents: Bytes, limits: &Limits) -> Result<Option<Received>, MessageError> {
        if let Some(p) = &mut self.partial {
            let room = p.len - p.payload.len();
            if contents.len() > room {
                return Err(MessageError::Overrun { command: p.shown.clone(), extra: contents.len() - room });
            }
            // Grow by doubling, never past the announced (and limit-checked) length, and only as
            // authenticated bytes arrive.
            let need = p.payload.len() + contents.len();
            if need > p.payload.capacity() {
                let target = need.max(p.payload.capacity() * 2).min(p.len);
                p.payload.reserve_exact(target - p.payload.len());
            }
            p.payload.extend_from_slice(&contents);
            if p.payload.len() < p.len {
                return Ok(None);
            }
            let p = self.partial.take().expect("checked above");
            return Ok(Some(Received { command: p.command, payload: Bytes::from(p.payload) }));
        }
        let first = *contents.first().ok_or(MessageError::Empty)?;
        if first != 0 {
            let command = SHORT_IDS.get(usize::from(first) - 1).and_then(|c| Command::new(c));
            return whole(command, contents.slice(1..), limits);
        }
        if contents.len() < LONG_TYPE_LEN {
            return Err(MessageError::TruncatedType);
        }
        let wire: [u8; 12] = contents[1..LONG_TYPE_LEN].try_into().expect("12 bytes");
        let command = Command::from_wire(wire).ok();
        if command.as_ref().is_none_or(|c| c.as_str() != EXTMSG) {
            return whole(command, contents.slice(LONG_TYPE_LEN..), limits);
        }
        let body = &contents[LONG_TYPE_LEN..];
        if body.len() < EXT_FIELDS_LEN {
            return Err(MessageError::TruncatedExtHeader);
        }
        let real: [u8; 12] = body[..12].try_into().expect("12 bytes");
        let len = u64::from_le_bytes(body[12..20].try_into().expect("8 bytes"));
        let command = Command::from_wire(real).ok();
        let shown = String::from_utf8_lossy(&real).trim_end_matches('\0').to_string();
        let max = limits.max_payload(command.as_ref().map_or("", Command::as_str));
        if len > max || usize::try_from(len).is_err() {
            return Err(MessageError::Oversized { command: shown, len, max });
        }
        self.partial = Some(Partial { command, shown, len: len as usize, payload: Vec::new() });
        self.take(contents.slice(LONG_TYPE_LEN + EXT_FIELDS_LEN..), limits)
    }
}

/// A message in one packet, held to its command's limit as on v1.
fn whole(command: Option<Command>, payload: Bytes, limits: &Limits) -> Result<Option<Received>, MessageError> {
    if let Some(c) = &command {
        let max = limits.max_payload(c.as_str());
        if payload.len() as u64 > max {
            return Err(MessageError::Oversized { command: c.to_string(), len: payload.len() as u64, max });
        }
    }
    Ok(Some(Received { command, payload }))
}

#[cfg(test)]
mod tests {
    use super::super::cipher::{SessionKeys, LENGTH_LEN, TAG_LEN};
    use super::*;

    fn unseal(bytes: &[u8]) -> Vec<Bytes> {
        let keys = SessionKeys::derive(&[3; 32], [1, 2, 3, 4]);
        let (_, mut opener) = keys.ciphers(false);
        let mut out = Vec::new();
        let mut rest = bytes.to_vec();
        while !rest.is_empty() {
            let len = opener.open_length([rest[0], rest[1], rest[2]]);
            let mut sealed = rest[LENGTH_LEN..LENGTH_LEN + 1 + len + TAG_LEN].to_vec();
            opener.open(&mut sealed, &[]).expect("authentic");
            out.push(Bytes::copy_from_slice(&sealed[1..1 + len]));
            rest.drain(..LENGTH_LEN + 1 + len + TAG_LEN);
        }
        out
    }

    fn seal(command: &str, payload: &[u8]) -> Vec<u8> {
        let keys = SessionKeys::derive(&[3; 32], [1, 2, 3, 4]);
        let (mut sealer, _) = keys.ciphers(true);
        let mut out = Vec::new();
        seal_message(&mut sealer, &Command::new(command).expect("valid").to_wire(), payload, &mut out);
        out
    }

    #[test]
    fn common_messages_take_one_byte_and_others_thirteen() {
        for (command, type_len) in [("tx", 1), ("inv", 1), ("version", 13), ("protoconf", 13), ("getaddr", 13)] {
            let packets = unseal(&seal(command, b"payload"));
            assert_eq!(packets.len(), 1);
            assert_eq!(packets[0].len(), type_len + 7, "{command}");
            let got = Assembler::default().take(packets[0].clone(), &Limits::default()).expect("ok").expect("whole");
            assert_eq!(got.command.expect("known").as_str(), command);
            assert_eq!(&got.payload[..], b"payload");
        }
        assert_eq!(short_id("tx"), Some(21));
        assert_eq!(short_id("addrv2"), Some(28));
        assert_eq!(short_id("version"), None);
    }

    #[test]
    fn the_ids_later_bips_assign_are_those_of_the_vectors_table() {
        let table = include_str!("../../../tests/data/vectors/bip324/message_type_ids.md");
        let rows: Vec<(u8, &str)> = table
            .lines()
            .filter_map(|l| {
                let mut cells = l.split('|').map(str::trim);
                Some((cells.next()?.parse().ok()?, cells.next()?))
            })
            .collect();
        assert_eq!(rows.len(), 9, "{table}");
        for (id, name) in rows {
            assert_eq!(short_id(name), Some(id), "{name}");
        }
    }

    #[test]
    fn a_message_over_one_packet_travels_as_extmsg_and_comes_back_whole() {
        let payload: Vec<u8> = (0..MAX_CONTENTS * 2 + 12345).map(|i| (i % 251) as u8).collect();
        let packets = unseal(&seal("block", &payload));
        assert_eq!(packets.len(), 3);
        assert!(packets[0].starts_with(b"\0extmsg\0\0\0\0\0\0block\0\0\0\0\0\0\0"));
        let mut a = Assembler::default();
        let limits = Limits { max_block_size: payload.len() as u64, ..Limits::default() };
        assert_eq!(a.take(packets[0].clone(), &limits), Ok(None));
        assert!(a.in_progress());
        assert_eq!(a.take(packets[1].clone(), &limits), Ok(None));
        let got = a.take(packets[2].clone(), &limits).expect("ok").expect("whole");
        assert_eq!(got.command.expect("known").as_str(), "block");
        assert!(got.payload == payload);
        assert!(!a.in_progress());
    }

    #[test]
    fn a_large_message_over_its_limit_or_overrunning_its_length_is_refused() {
        let mut first = b"\0extmsg\0\0\0\0\0\0block\0\0\0\0\0\0\0".to_vec();
        first.extend_from_slice(&1000u64.to_le_bytes());
        first.extend_from_slice(&[0; 10]);
        let small = Limits { max_block_size: 999, ..Limits::default() };
        assert!(matches!(
            Assembler::default().take(Bytes::from(first.clone()), &small),
            Err(MessageError::Oversized { len: 1000, max: 999, .. })
        ));
        let limits = Limits { max_block_size: 1000, ..Limits::default() };
        let mut a = Assembler::default();
        assert_eq!(a.take(Bytes::from(first), &limits), Ok(None));
        assert_eq!(
            a.take(Bytes::from(vec![0; 991]), &limits),
            Err(MessageError::Overrun { command: "block".into(), extra: 1 })
        );
        assert_eq!(Assembler::default().take(Bytes::new(), &limits), Err(MessageError::Empty));
        assert_eq!(Assembler::default().take(Bytes::from_static(b"\0tx"), &limits), Err(MessageError::TruncatedType));
        let unknown = Assembler::default().take(Bytes::from_static(b"\xc8abc"), &limits).expect("ok").expect("whole");
        assert_eq!(unknown.command, None);
    }

    #[test]
    fn v1_frames_split_into_command_and_payload() {
        let frame = crate::wire::frame::frame_bytes([1, 2, 3, 4], Command::new("ping").expect("valid"), b"12345678", 0);
        let (command, payload) = split_v1_frame(&frame);
        assert_eq!(command, &Command::new("ping").expect("valid").to_wire());
        assert_eq!(payload, b"12345678");
    }
}
