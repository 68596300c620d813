//! The UTXO set's on-disk table: what the coins cache ([`super::coins_cache`]) reads on a miss and
//! writes back when it flushes.
//!
//! What it guarantees: a flush writes every changed coin, the tip the coins belong to and the
//! set's statistics in one durable redb transaction, so the stored coins, tip and statistics
//! always describe the same block, whatever moment a `kill -9` strikes. Reads open their own
//! snapshot (a redb read transaction), so they never see half a flush and never block it.
//!
//! What it must not do: cache or decide. The cache above it owns which coins are in memory;
//! the chain state owns when to flush.

use std::sync::Arc;

use bytes::Bytes;
use redb::{Database, Durability, ReadableDatabase, ReadableTable};

use super::store::{StoreError, COINS, META, TIP_KEY};
use super::utxo::{UtxoStats, BOGO_BYTES_PER_COIN};
use crate::validation::Coin;
use crate::wire::encode::write_compact_size;
use crate::wire::{BlockHash, Hash256, OutPoint, Reader, TxId};

/// Key of the set's statistics in the meta table: txouts (8) | total amount (8) | bogosize (8), LE.
const STATS_KEY: &str = "utxo_stats";

pub(super) fn coin_key(outpoint: &OutPoint) -> [u8; 36] {
    let mut key = [0u8; 36];
    key[..32].copy_from_slice(&outpoint.txid.0);
    key[32..].copy_from_slice(&outpoint.vout.to_le_bytes());
    key
}

fn outpoint_of(key: &[u8; 36]) -> OutPoint {
    let txid = Hash256(key[..32].try_into().expect("32 bytes"));
    OutPoint { txid, vout: u32::from_le_bytes(key[32..].try_into().expect("4 bytes")) }
}

pub(super) fn encode_coin(coin: &Coin) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + 8 + coin.script_pubkey.len());
    write_compact_size(&mut out, (u64::from(coin.height) << 1) | u64::from(coin.is_coinbase));
    out.extend_from_slice(&coin.value.to_le_bytes());
    out.extend_from_slice(&coin.script_pubkey);
    out
}

pub(super) fn decode_coin(bytes: &[u8]) -> Result<Coin, StoreError> {
    let corrupt = |e: crate::wire::DecodeError| StoreError::Corrupt(format!("coin record: {e}"));
    let buf = Bytes::copy_from_slice(bytes);
    let mut r = Reader::new(&buf);
    let code = r.read_compact_size("coin code").map_err(corrupt)?;
    let value = r.read_i64_le("coin value").map_err(corrupt)?;
    let script_pubkey = r.read_slice(r.remaining(), "coin script").map_err(corrupt)?;
    let height = u32::try_from(code >> 1).map_err(|_| StoreError::Corrupt(format!("coin height {}", code >> 1)))?;
    Ok(Coin { value, script_pubkey, height, is_coinbase: code & 1 == 1 })
}

/// The coin table of the chain database, shared with [`super::store::BlockStore`].
#[derive(Clone)]
pub struct CoinsDb {
    db: Arc<Database>,
}

impl std::fmt::Debug for CoinsDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CoinsDb")
    }
}

/// What a scan of the stored coins counts (`gettxoutsetinfo`, recounts in tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoredCounts {
    pub txouts: u64,
    pub total_amount: i64,
    pub bogosize: u64,
    /// Distinct transactions with at least one unspent output.
    pub transactions: u64,
}

impl CoinsDb {
    pub(super) fn new(db: Arc<Database>) -> CoinsDb {
        CoinsDb { db }
    }

    /// The stored coins at `outpoints`, in order, read from one snapshot.
    pub fn coins(&self, outpoints: &[OutPoint]) -> Result<Vec<Option<Coin>>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(COINS)?;
        outpoints.iter().map(|op| table.get(&coin_key(op))?.map(|v| decode_coin(v.value())).transpose()).collect()
    }

    /// The stored unspent outputs of each of `txids` (normally none: only a transaction that
    /// repeats an earlier txid has any), for the BIP30 check.
    pub fn outputs_of(&self, txids: &[TxId]) -> Result<Vec<(OutPoint, Coin)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(COINS)?;
        let mut out = Vec::new();
        for txid in txids {
            let from = coin_key(&OutPoint { txid: *txid, vout: 0 });
            let to = coin_key(&OutPoint { txid: *txid, vout: u32::MAX });
            for row in table.range::<&[u8; 36]>(&from..=&to)? {
                let (k, v) = row?;
                out.push((outpoint_of(k.value()), decode_coin(v.value())?));
            }
        }
        Ok(out)
    }

    /// Writes `changes` (`None` = spent), the tip and the statistics in one durable transaction.
    pub fn write_flush<'a>(
        &self,
        changes: impl IntoIterator<Item = (&'a OutPoint, Option<&'a Coin>)>,
        tip: &BlockHash,
        stats: &UtxoStats,
    ) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        {
            let mut coins = txn.open_table(COINS)?;
            for (outpoint, coin) in changes {
                let key = coin_key(outpoint);
                match coin {
                    Some(coin) => drop(coins.insert(&key, &encode_coin(coin)[..])?),
                    None => drop(coins.remove(&key)?),
                }
            }
            let mut meta = txn.open_table(META)?;
            meta.insert(TIP_KEY, &tip.0[..])?;
            meta.insert(STATS_KEY, &encode_stats(stats)[..])?;
        }
        txn.commit()?;
        Ok(())
    }

    /// The statistics stored with the last flush: txouts, total amount, bogosize. `None` for a
    /// database written before they were stored.
    pub fn stored_stats(&self) -> Result<Option<(u64, i64, u64)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(META)?;
        let Some(v) = table.get(STATS_KEY)? else { return Ok(None) };
        let b: [u8; 24] = v.value().try_into().map_err(|_| StoreError::Corrupt("utxo statistics record".into()))?;
        let word = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        Ok(Some((word(0), word(1) as i64, word(2))))
    }

    /// Calls `f` with every stored coin, in key order (txid, then vout), from one snapshot,
    /// without holding more than one coin in memory.
    pub fn for_each(&self, mut f: impl FnMut(OutPoint, Coin)) -> Result<(), StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(COINS)?;
        for row in table.iter()? {
            let (k, v) = row?;
            f(outpoint_of(k.value()), decode_coin(v.value())?);
        }
        Ok(())
    }

    /// Counts the stored set by reading every coin: the recount `gettxoutsetinfo` reports and
    /// tests compare the kept statistics with.
    pub fn count(&self) -> Result<StoredCounts, StoreError> {
        let mut counts = StoredCounts::default();
        let mut last_txid = None;
        self.for_each(|outpoint, coin| {
            counts.txouts += 1;
            counts.total_amount = counts.total_amount.wrapping_add(coin.value);
            counts.bogosize += BOGO_BYTES_PER_COIN + coin.script_pubkey.len() as u64;
            if last_txid != Some(outpoint.txid) {
                counts.transactions += 1;
                last_txid = Some(outpoint.txid);
            }
        })?;
        Ok(counts)
    }

    /// Forgets every coin, the tip and the statistics (`-reindex-chainstate`), in one transaction.
    pub fn clear(&self) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        txn.delete_table(COINS).map_err(|e| StoreError::Db(e.to_string()))?;
        txn.open_table(COINS)?;
        {
            let mut meta = txn.open_table(META)?;
            meta.remove(TIP_KEY)?;
            meta.remove(STATS_KEY)?;
        }
        txn.commit()?;
        Ok(())
    }
}

fn encode_stats(stats: &UtxoStats) -> [u8; 24] {
    let mut out = [0u8; 24];
    out[..8].copy_from_slice(&stats.txouts.to_le_bytes());
    out[8..16].copy_from_slice(&stats.total_amount.to_le_bytes());
    out[16..].copy_from_slice(&stats.bogosize.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coins_round_trip_through_their_encoding() {
        for coin in [
            Coin { value: 0, script_pubkey: Bytes::new(), height: 0, is_coinbase: false },
            Coin {
                value: 5_000_000_000,
                script_pubkey: Bytes::from_static(&[0x76, 0xa9]),
                height: 300,
                is_coinbase: true,
            },
            Coin { value: 1, script_pubkey: Bytes::from(vec![7u8; 300]), height: 1 << 30, is_coinbase: false },
        ] {
            assert_eq!(decode_coin(&encode_coin(&coin)).expect("decodes"), coin);
        }
        assert!(decode_coin(&[0x01, 0x02]).is_err(), "truncated value");
    }
}
