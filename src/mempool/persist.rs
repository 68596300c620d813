//! The mempool across clean restarts: `mempool.dat` in the network data folder, written at
//! shutdown and read at start-up (SV Node's `-persistmempool`, on by default).
//!
//! The file is ours, not SV Node's: a magic, a version, the entries parents first (each with its
//! arrival time, its ancestor count and its raw bytes) and a sha256d of everything before it, so a
//! damaged or truncated file is refused as a whole with a clear error instead of half loaded. It is
//! written to a temporary name and renamed, so a crash while saving leaves the previous file.
//! Loaded transactions are validated again like any other ([`super::accept::TxPipeline::restore`]);
//! the file is a list of candidates, never trusted.

use std::path::{Path, PathBuf};

use thiserror::Error;

use super::pool::Mempool;
use crate::wire::encode::{compact_size_len, write_var_bytes, Reader};
use crate::wire::{Decodable, Hash256, Transaction};

/// The file's name in the network data folder.
pub const FILE: &str = "mempool.dat";
const MAGIC: &[u8; 8] = b"BSVRMEMP";
const VERSION: u32 = 1;
/// Smallest encoded entry: time (8) + ancestors (4) + length (1) + the smallest transaction (10).
const MIN_ENTRY_LEN: usize = 23;

#[derive(Debug, Error)]
pub enum PersistError {
    #[error("cannot read or write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a bsv-relay mempool file")]
    NotMempoolFile { path: PathBuf },
    #[error("{path} has format version {version}; this build reads version {VERSION}")]
    Version { path: PathBuf, version: u32 },
    #[error("{path} is damaged: {detail}")]
    Damaged { path: PathBuf, detail: String },
}

/// One saved entry.
#[derive(Debug, Clone)]
pub struct Saved {
    pub tx: Transaction,
    /// Unix seconds when it first entered the pool.
    pub time: u64,
    /// Its ancestor count when saved: a parent's is always smaller than its child's, so loading in
    /// increasing order, one count at a time, puts parents in before their children.
    pub ancestors: u32,
}

/// Writes the pool to `path` (through `path`.new and a rename); returns how many were saved.
pub fn save(pool: &Mempool, path: &Path) -> Result<usize, PersistError> {
    let mut entries: Vec<_> = pool.entries().into_iter().map(|e| (e.ancestors(), e)).collect();
    entries.sort_by_key(|(ancestors, e)| (*ancestors, e.time));
    let body: usize = entries.iter().map(|(_, e)| 12 + compact_size_len(e.size() as u64) + e.size()).sum();
    let mut out = Vec::with_capacity(8 + 4 + 8 + body + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    for (ancestors, e) in &entries {
        out.extend_from_slice(&e.time.to_le_bytes());
        out.extend_from_slice(&ancestors.to_le_bytes());
        write_var_bytes(&mut out, e.raw());
    }
    let digest = Hash256::sha256d(&out);
    out.extend_from_slice(&digest.0);
    let io = |source| PersistError::Io { path: path.to_owned(), source };
    let tmp = path.with_extension("dat.new");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&out).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(entries.len())
}

/// Reads a saved pool; an absent file is an empty pool.
pub fn load(path: &Path) -> Result<Vec<Saved>, PersistError> {
    let data = match std::fs::read(path) {
        Ok(d) => bytes::Bytes::from(d),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(PersistError::Io { path: path.to_owned(), source }),
    };
    let damaged = |detail: String| PersistError::Damaged { path: path.to_owned(), detail };
    if data.len() < 8 || &data[..8] != MAGIC {
        return Err(PersistError::NotMempoolFile { path: path.to_owned() });
    }
    if data.len() < 8 + 4 + 8 + 32 {
        return Err(damaged(format!("only {} bytes", data.len())));
    }
    let version = u32::from_le_bytes(data[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(PersistError::Version { path: path.to_owned(), version });
    }
    let (content, digest) = data.split_at(data.len() - 32);
    if Hash256::sha256d(content).0[..] != *digest {
        return Err(damaged("checksum mismatch (truncated or altered)".into()));
    }
    let content = data.slice(12..data.len() - 32);
    let mut r = Reader::new(&content);
    let decode = |e: crate::wire::DecodeError| damaged(e.to_string());
    let count = r.read_u64_le("entry count").map_err(decode)?;
    if count > (content.len() / MIN_ENTRY_LEN) as u64 {
        return Err(damaged(format!("claims {count} entries in {} bytes", content.len())));
    }
    let mut saved = Vec::with_capacity(count as usize);
    for i in 0..count {
        let time = r.read_u64_le("entry time").map_err(decode)?;
        let ancestors = r.read_u32_le("entry ancestors").map_err(decode)?;
        let raw = r.read_var_bytes("entry transaction", content.len() as u64).map_err(decode)?;
        let tx = Transaction::from_bytes(&raw).map_err(|e| damaged(format!("entry {i}: {e}")))?;
        saved.push(Saved { tx, time, ancestors });
    }
    r.finish("mempool file").map_err(decode)?;
    Ok(saved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{OutPoint, TxFields, TxIn, TxOut};
    use bytes::Bytes;
    use std::sync::Arc;

    fn spend(prev: OutPoint, tag: u8) -> Arc<Transaction> {
        Arc::new(Transaction::from_fields(TxFields {
            version: 1,
            inputs: vec![TxIn { prev_out: prev, script_sig: Bytes::from(vec![tag]), sequence: 0 }],
            outputs: vec![TxOut { value: 1000, script_pubkey: Bytes::from_static(&[0x51]) }],
            lock_time: 0,
        }))
    }

    fn pool_with_a_chain() -> (Mempool, Vec<Arc<Transaction>>) {
        let pool = Mempool::new(Default::default());
        let a = spend(OutPoint { txid: Hash256([1; 32]), vout: 0 }, 1);
        let b = spend(OutPoint { txid: a.txid(), vout: 0 }, 2);
        let c = spend(OutPoint { txid: b.txid(), vout: 0 }, 3);
        let d = spend(OutPoint { txid: Hash256([2; 32]), vout: 0 }, 4);
        // Inserted children-last, but with times that would put children first if sorted by time.
        for (tx, time) in [(&a, 30), (&b, 20), (&c, 10), (&d, 5)] {
            pool.insert(tx.clone(), 100, time).expect("insert");
        }
        (pool, vec![a, b, c, d])
    }

    #[test]
    fn saves_and_loads_parents_first_with_times() {
        let dir = std::env::temp_dir().join(format!("bsv-relay-persist-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(FILE);
        assert!(load(&path).unwrap().is_empty(), "no file is an empty pool");
        let (pool, txs) = pool_with_a_chain();
        assert_eq!(save(&pool, &path).unwrap(), 4);
        let saved = load(&path).unwrap();
        assert_eq!(saved.len(), 4);
        let pos = |t: &Arc<Transaction>| saved.iter().position(|s| s.tx.txid() == t.txid()).unwrap();
        assert!(pos(&txs[0]) < pos(&txs[1]) && pos(&txs[1]) < pos(&txs[2]), "parents first");
        assert_eq!(saved[pos(&txs[2])].time, 10);
        assert_eq!(saved[pos(&txs[2])].ancestors, 2);
        assert!(!path.with_extension("dat.new").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn damaged_files_are_refused_with_a_reason() {
        let dir = std::env::temp_dir().join(format!("bsv-relay-persist-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(FILE);
        let (pool, _) = pool_with_a_chain();
        save(&pool, &path).unwrap();
        let good = std::fs::read(&path).unwrap();

        let mut flipped = good.clone();
        flipped[40] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        assert!(matches!(load(&path), Err(PersistError::Damaged { .. })));

        for cut in [good.len() - 1, good.len() / 2, 30, 12] {
            std::fs::write(&path, &good[..cut]).unwrap();
            let err = load(&path).expect_err("a truncated file");
            assert!(matches!(err, PersistError::Damaged { .. }), "cut at {cut}: {err}");
        }

        std::fs::write(&path, b"not a mempool at all, just text").unwrap();
        assert!(matches!(load(&path), Err(PersistError::NotMempoolFile { .. })));

        let mut newer = good.clone();
        newer[8] = 9;
        std::fs::write(&path, &newer).unwrap();
        let err = load(&path).expect_err("another version");
        assert!(err.to_string().contains("version 9"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
