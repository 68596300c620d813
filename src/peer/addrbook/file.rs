//! `peers.json`: the book's file. Version 2 holds the bucket key, the entries (each says which
//! table it is in) and inbound peers' reputations. Version 1 files (no key, no tables) are read
//! and migrated: entries that ever connected go to the tried table, the rest to the new table.
//!
//! Tables are not stored: slots are recomputed from the key on load, and an entry whose slot is
//! taken (only possible in a hand-edited or damaged file) is dropped, never trusted.

use super::buckets::BucketKey;
use super::{AddrBookError, AddrEntry, Book};
use crate::peer::reputation::Score;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

const VERSION: u32 = 2;

#[derive(Serialize, Deserialize)]
struct BookFile {
    version: u32,
    #[serde(default)]
    key: Option<BucketKey>,
    entries: Vec<(SocketAddr, AddrEntry)>,
    #[serde(default)]
    inbound: Vec<(IpAddr, Score)>,
}

pub(super) fn decode(path: &Path, bytes: &[u8], capacity: usize) -> Result<Book, AddrBookError> {
    let file: BookFile =
        serde_json::from_slice(bytes).map_err(|source| AddrBookError::Corrupt { path: path.to_owned(), source })?;
    if file.version == 0 || file.version > VERSION {
        return Err(AddrBookError::Version { path: path.to_owned(), version: file.version });
    }
    let mut book = Book::empty(file.key.unwrap_or_else(BucketKey::random));
    let now = crate::peer::connection::unix_now();
    for (addr, mut e) in file.entries.into_iter().take(capacity) {
        if file.version == 1 {
            e.tried = e.last_success != 0;
        }
        if e.tried {
            let slot = book.tried_slot(&addr);
            if !book.tried_slots.contains_key(&slot) && !book.entries.contains_key(&addr) {
                book.tried_slots.insert(slot, addr);
                book.entries.insert(addr, e);
                continue;
            }
        }
        if !book.entries.contains_key(&addr) {
            book.place_new(addr, e, now);
        }
    }
    book.inbound = file.inbound.into_iter().take(super::MAX_INBOUND_SCORES).collect();
    Ok(book)
}

pub(super) fn encode(book: &Book) -> Vec<u8> {
    let mut entries: Vec<(SocketAddr, AddrEntry)> = book.entries.iter().map(|(a, e)| (*a, e.clone())).collect();
    entries.sort_by_key(|(a, _)| *a);
    let inbound = book.inbound.iter().map(|(ip, s)| (*ip, *s)).collect();
    serde_json::to_vec(&BookFile { version: VERSION, key: Some(book.key), entries, inbound })
        .expect("the book serializes")
}
