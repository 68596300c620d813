//! Undo data: the coins a block spent, stored with it so it can be disconnected again, in SV
//! Node's coin encoding.

use crate::validation::check_tx::MAX_MONEY;
use crate::validation::Coin;
use crate::wire::encode::write_compact_size;
use crate::wire::{Decodable, DecodeError, Encodable, Reader};

/// Smallest encoded undo coin: height code (1) + value (8) + script length (1).
const MIN_UNDO_COIN_LEN: usize = 10;

/// The coins a block spent, in block order (transaction by transaction, input by input, coinbase
/// excluded): exactly what is needed to disconnect it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockUndo {
    pub spent: Vec<Coin>,
}

impl Encodable for BlockUndo {
    /// Count, then per coin: CompactSize(height * 2 + is_coinbase) (SV Node's coin code), value as
    /// 8-byte little-endian, script as var bytes.
    fn consensus_encode(&self, out: &mut Vec<u8>) {
        write_compact_size(out, self.spent.len() as u64);
        for coin in &self.spent {
            write_compact_size(out, (u64::from(coin.height) << 1) | u64::from(coin.is_coinbase));
            out.extend_from_slice(&coin.value.to_le_bytes());
            crate::wire::encode::write_var_bytes(out, &coin.script_pubkey);
        }
    }
}

impl Decodable for BlockUndo {
    fn consensus_decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let count = r.read_count("undo coins", u64::MAX, MIN_UNDO_COIN_LEN)?;
        let mut spent = Vec::with_capacity(count);
        for _ in 0..count {
            let code = r.read_compact_size("undo coin code")?;
            let height = u32::try_from(code >> 1).map_err(|_| DecodeError::InvalidValue {
                what: "undo coin height",
                detail: format!("{}", code >> 1),
            })?;
            let value = r.read_i64_le("undo coin value")?;
            if !(0..=MAX_MONEY).contains(&value) {
                return Err(DecodeError::InvalidValue { what: "undo coin value", detail: value.to_string() });
            }
            let script_pubkey = r.read_var_bytes("undo coin script", crate::wire::encode::MAX_SIZE)?;
            spent.push(Coin { value, script_pubkey, height, is_coinbase: code & 1 == 1 });
        }
        Ok(BlockUndo { spent })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn undo_encoding_is_exact_and_round_trips() {
        let undo = BlockUndo {
            spent: vec![
                Coin { value: 5, script_pubkey: Bytes::from_static(&[0xac]), height: 3, is_coinbase: true },
                Coin { value: MAX_MONEY, script_pubkey: Bytes::new(), height: 0, is_coinbase: false },
            ],
        };
        let bytes = undo.to_bytes();
        assert_eq!(hex::encode(&bytes), "0207050000000000000001ac000040075af075070000");
        assert_eq!(BlockUndo::from_slice(&bytes).unwrap(), undo);
        for cut in 0..bytes.len() {
            assert!(BlockUndo::from_slice(&bytes[..cut]).is_err());
        }
        let mut bad = bytes.clone();
        bad[bytes.len() - 2] = 0xff; // value above MAX_MONEY
        assert!(BlockUndo::from_slice(&bad).is_err());
    }

    fn coin_strategy() -> impl proptest::strategy::Strategy<Value = Coin> {
        use proptest::prelude::*;
        (0..=MAX_MONEY, proptest::collection::vec(any::<u8>(), 0..300), 0..=u32::MAX >> 1, any::<bool>()).prop_map(
            |(value, script, height, is_coinbase)| Coin {
                value,
                script_pubkey: Bytes::from(script),
                height,
                is_coinbase,
            },
        )
    }

    proptest::proptest! {
        #[test]
        fn undo_round_trips(spent in proptest::collection::vec(coin_strategy(), 0..20)) {
            let undo = BlockUndo { spent };
            let bytes = undo.to_bytes();
            proptest::prop_assert_eq!(BlockUndo::from_slice(&bytes).unwrap(), undo);
        }

        #[test]
        fn undo_decoding_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = BlockUndo::from_slice(&bytes);
        }
    }
}
