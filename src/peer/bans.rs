//! The ban list: banned IPs and subnets with their expiry, persisted to `<netdir>/banlist.json`.
//!
//! Owns the set of bans; does not disconnect anyone (the connection layer asks [`BanList::is_banned`] on
//! accept and the RPC layer disconnects matching peers). Time is always passed in as unix seconds so tests
//! drive a fake clock. Every change is written to disk at once, atomically (write a temporary file, then
//! rename), so a crash never leaves a half-written list. Expired entries are dropped lazily.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::subnet::Subnet;

/// Default ban duration: SV Node's and Core's `DEFAULT_MISBEHAVING_BANTIME`, 24 hours.
pub const DEFAULT_BANTIME: Duration = Duration::from_secs(24 * 60 * 60);

/// File format version written into `banlist.json`, so a later format change can be detected.
const FILE_VERSION: u32 = 1;

#[derive(Debug, Error)]
pub enum BanError {
    /// SV Node: -23 "Error: IP/Subnet already banned".
    #[error("Error: IP/Subnet already banned")]
    AlreadyBanned { subnet: Subnet },
    /// SV Node: -30 "Error: Unban failed. Requested address/subnet was not previously banned."
    #[error("Error: Unban failed. Requested address/subnet was not previously banned.")]
    NotBanned { subnet: Subnet },
    #[error("cannot write ban list {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot read ban list {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("ban list {path} is corrupt: {source}")]
    Corrupt { path: PathBuf, source: serde_json::Error },
}

/// Why an entry is on the list; `listbanned` shows SV Node's wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BanReason {
    Manual,
    Misbehaving,
}

impl BanReason {
    /// The `ban_reason` string SV Node's `listbanned` prints.
    pub const fn description(self) -> &'static str {
        match self {
            Self::Manual => "manually added",
            Self::Misbehaving => "node misbehaving",
        }
    }
}

/// One ban; times are unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanEntry {
    pub created: u64,
    pub until: u64,
    pub reason: BanReason,
}

/// How long a new ban lasts, as `setban`'s `bantime` and `absolute` parameters express it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BanDuration {
    /// The configured `-bantime`.
    Default,
    /// This long from now.
    For(Duration),
    /// Until this unix time.
    Until(u64),
}

#[derive(Serialize, Deserialize)]
struct BanFile {
    version: u32,
    bans: Vec<BanFileEntry>,
}

#[derive(Serialize, Deserialize)]
struct BanFileEntry {
    subnet: Subnet,
    #[serde(flatten)]
    entry: BanEntry,
}

/// The set of banned subnets, safe to share between tasks.
#[derive(Debug)]
pub struct BanList {
    entries: Mutex<BTreeMap<Subnet, BanEntry>>,
    path: Option<PathBuf>,
    default_bantime: Duration,
}

impl BanList {
    /// An empty list that is never written to disk (tests, or a node without a data directory).
    pub fn in_memory(default_bantime: Duration) -> Self {
        Self { entries: Mutex::new(BTreeMap::new()), path: None, default_bantime }
    }

    /// Loads `path` (a missing file is an empty list), dropping entries that expired before `now`.
    pub fn open(path: &Path, default_bantime: Duration, now: u64) -> Result<Self, BanError> {
        let mut entries = BTreeMap::new();
        match fs::read(path) {
            Ok(bytes) => {
                let file: BanFile = serde_json::from_slice(&bytes)
                    .map_err(|source| BanError::Corrupt { path: path.to_owned(), source })?;
                for e in file.bans {
                    if e.entry.until > now {
                        entries.insert(e.subnet, e.entry);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(BanError::Read { path: path.to_owned(), source }),
        }
        Ok(Self { entries: Mutex::new(entries), path: Some(path.to_owned()), default_bantime })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Subnet, BanEntry>> {
        // A panic while holding the lock cannot leave the map inconsistent (every update is one insert or
        // remove), so a poisoned lock is still usable.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bans `subnet`. Fails if a ban on exactly this subnet is still in force.
    pub fn ban(
        &self,
        subnet: Subnet,
        duration: BanDuration,
        reason: BanReason,
        now: u64,
    ) -> Result<BanEntry, BanError> {
        let until = match duration {
            BanDuration::Default => now.saturating_add(self.default_bantime.as_secs()),
            BanDuration::For(d) => now.saturating_add(d.as_secs()),
            BanDuration::Until(t) => t,
        };
        let entry = BanEntry { created: now, until, reason };
        let mut map = self.lock();
        if map.get(&subnet).is_some_and(|e| e.until > now) {
            return Err(BanError::AlreadyBanned { subnet });
        }
        map.insert(subnet, entry);
        self.persist(&map)?;
        Ok(entry)
    }

    /// Lifts the ban on exactly `subnet`.
    pub fn unban(&self, subnet: Subnet, now: u64) -> Result<(), BanError> {
        let mut map = self.lock();
        match map.remove(&subnet) {
            Some(e) if e.until > now => self.persist(&map),
            _ => Err(BanError::NotBanned { subnet }),
        }
    }

    /// Whether any unexpired ban covers `ip`.
    pub fn is_banned(&self, ip: IpAddr, now: u64) -> bool {
        self.lock().iter().any(|(s, e)| e.until > now && s.contains(ip))
    }

    /// The bans in force at `now`, in subnet order; expired entries are removed (and the file rewritten).
    pub fn list(&self, now: u64) -> Result<Vec<(Subnet, BanEntry)>, BanError> {
        let mut map = self.lock();
        let before = map.len();
        map.retain(|_, e| e.until > now);
        if map.len() != before {
            self.persist(&map)?;
        }
        Ok(map.iter().map(|(s, e)| (*s, *e)).collect())
    }

    /// Number of entries, expired or not (for the `banned_entries` gauge).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Removes every ban.
    pub fn clear(&self) -> Result<(), BanError> {
        let mut map = self.lock();
        map.clear();
        self.persist(&map)
    }

    /// Writes the list to disk now (also done after every change; the node calls it on shutdown).
    pub fn flush(&self) -> Result<(), BanError> {
        let map = self.lock();
        self.persist(&map)
    }

    fn persist(&self, map: &BTreeMap<Subnet, BanEntry>) -> Result<(), BanError> {
        let Some(path) = &self.path else { return Ok(()) };
        let file = BanFile {
            version: FILE_VERSION,
            bans: map.iter().map(|(s, e)| BanFileEntry { subnet: *s, entry: *e }).collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file).expect("a BanFile always serialises");
        let tmp = path.with_extension("json.new");
        let err = |source| BanError::Write { path: path.clone(), source };
        let mut f = fs::File::create(&tmp).map_err(err)?;
        f.write_all(&bytes).map_err(err)?;
        f.sync_all().map_err(err)?;
        fs::rename(&tmp, path).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000;

    fn net(s: &str) -> Subnet {
        s.parse().expect("test subnet")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test ip")
    }

    #[test]
    fn ban_expires_with_the_clock() {
        let bans = BanList::in_memory(Duration::from_secs(100));
        bans.ban(net("1.2.3.4"), BanDuration::Default, BanReason::Manual, T0).expect("ban");
        assert!(bans.is_banned(ip("1.2.3.4"), T0 + 99));
        assert!(!bans.is_banned(ip("1.2.3.5"), T0 + 99));
        assert!(!bans.is_banned(ip("1.2.3.4"), T0 + 100));
        assert_eq!(bans.list(T0 + 100).expect("list"), vec![]);
        assert_eq!(bans.len(), 0);
    }

    #[test]
    fn duplicate_ban_and_missing_unban_fail_like_sv_node() {
        let bans = BanList::in_memory(DEFAULT_BANTIME);
        bans.ban(net("1.2.3.4"), BanDuration::For(Duration::from_secs(10)), BanReason::Manual, T0).expect("ban");
        assert!(matches!(
            bans.ban(net("1.2.3.4/32"), BanDuration::Default, BanReason::Manual, T0 + 1),
            Err(BanError::AlreadyBanned { .. })
        ));
        // Once expired, the same subnet can be banned again.
        bans.ban(net("1.2.3.4"), BanDuration::Default, BanReason::Manual, T0 + 10).expect("reban");
        assert!(matches!(bans.unban(net("9.9.9.9"), T0), Err(BanError::NotBanned { .. })));
        bans.unban(net("1.2.3.4"), T0 + 11).expect("unban");
        assert!(!bans.is_banned(ip("1.2.3.4"), T0 + 11));
    }

    #[test]
    fn subnets_and_absolute_times() {
        let bans = BanList::in_memory(DEFAULT_BANTIME);
        bans.ban(net("10.0.0.0/8"), BanDuration::Until(T0 + 5), BanReason::Misbehaving, T0).expect("ban");
        assert!(bans.is_banned(ip("10.200.3.4"), T0 + 4));
        assert!(bans.is_banned(ip("::ffff:10.0.0.1"), T0 + 4));
        assert!(!bans.is_banned(ip("11.0.0.1"), T0 + 4));
        assert!(!bans.is_banned(ip("10.200.3.4"), T0 + 5));
        let list = bans.list(T0).expect("list");
        assert_eq!(list[0].0.to_string(), "10.0.0.0/8");
        assert_eq!(list[0].1, BanEntry { created: T0, until: T0 + 5, reason: BanReason::Misbehaving });
    }

    #[test]
    fn persistence_round_trip() {
        let dir = std::env::temp_dir().join(format!("bsv-relay-bans-{}", rand::random::<u64>()));
        fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("banlist.json");
        {
            let bans = BanList::open(&path, DEFAULT_BANTIME, T0).expect("open empty");
            bans.ban(net("1.2.3.4"), BanDuration::Default, BanReason::Manual, T0).expect("ban");
            bans.ban(net("2001:db8::/32"), BanDuration::Until(T0 + 50), BanReason::Misbehaving, T0).expect("ban");
            bans.ban(net("5.5.5.5"), BanDuration::Until(T0 + 1), BanReason::Manual, T0).expect("ban");
        }
        assert!(!dir.join("banlist.json.new").exists());
        let reopened = BanList::open(&path, DEFAULT_BANTIME, T0 + 2).expect("reopen");
        let list = reopened.list(T0 + 2).expect("list");
        let names: Vec<String> = list.iter().map(|(s, _)| s.to_string()).collect();
        assert_eq!(names, vec!["1.2.3.4/32", "2001:db8::/32"]);
        assert_eq!(list[0].1.until, T0 + DEFAULT_BANTIME.as_secs());
        reopened.clear().expect("clear");
        assert_eq!(BanList::open(&path, DEFAULT_BANTIME, T0).expect("open").len(), 0);
        fs::write(&path, b"{not json").expect("write");
        assert!(matches!(BanList::open(&path, DEFAULT_BANTIME, T0), Err(BanError::Corrupt { .. })));
        fs::remove_dir_all(&dir).expect("cleanup");
    }
}
