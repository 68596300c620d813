//! Anchors: the last outbound block-relay peers, saved at shutdown and dialled first at start
//! (Core's `anchors.dat`). An attacker who fills our address book while we are down still finds
//! our first outbound slots taken by peers we already knew worked.
//!
//! The file is read once and deleted, as Core does: if the anchors turn out to be bad, a crash
//! loop must not dial them forever. A damaged file is a typed error; the node goes on without.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Anchors kept: Core's `MAX_BLOCK_RELAY_ONLY_ANCHORS`.
pub const MAX_ANCHORS: usize = 2;

#[derive(Debug, Error)]
pub enum AnchorsError {
    #[error("cannot read anchors {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write anchors {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("anchors file {path} is corrupt: {source}")]
    Corrupt { path: PathBuf, source: serde_json::Error },
}

#[derive(Serialize, Deserialize)]
struct AnchorsFile {
    version: u32,
    anchors: Vec<SocketAddr>,
}

/// Reads the anchors and deletes the file; no file means no anchors.
pub fn take(path: &Path) -> Result<Vec<SocketAddr>, AnchorsError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(AnchorsError::Read { path: path.to_owned(), source }),
    };
    let _ = std::fs::remove_file(path);
    let file: AnchorsFile =
        serde_json::from_slice(&bytes).map_err(|source| AnchorsError::Corrupt { path: path.to_owned(), source })?;
    Ok(file.anchors.into_iter().take(MAX_ANCHORS).collect())
}

/// Writes up to [`MAX_ANCHORS`] addresses, atomically.
pub fn save(path: &Path, anchors: &[SocketAddr]) -> Result<(), AnchorsError> {
    let anchors = anchors.iter().take(MAX_ANCHORS).copied().collect();
    let bytes = serde_json::to_vec(&AnchorsFile { version: 1, anchors }).expect("anchors serialize");
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|source| AnchorsError::Write { path: path.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_are_read_once_and_a_damaged_file_is_an_error() {
        let dir = std::env::temp_dir().join(format!("bsv-relay-anchors-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("anchors.json");
        assert!(take(&path).unwrap().is_empty());
        let a: Vec<SocketAddr> = vec!["198.51.100.1:8333".parse().unwrap(), "[2001:db8::1]:8333".parse().unwrap()];
        save(&path, &[a[0], a[1], "192.0.2.1:1".parse().unwrap()]).unwrap();
        assert_eq!(take(&path).unwrap(), a);
        assert!(take(&path).unwrap().is_empty(), "deleted after reading");
        std::fs::write(&path, b"{\"version\":1,\"anchors\":[\"nope\"]}").unwrap();
        assert!(matches!(take(&path), Err(AnchorsError::Corrupt { .. })));
        assert!(!path.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
