//! Options and the config file, under SV Node's names.
//!
//! Sources, lowest priority first: built-in defaults (per network), the config file (`bitcoin.conf` in the
//! data directory, or `-conf=`), the command line. Options are written `-name=value` or `--name=value`;
//! a bare `-name` means `name=1` and `-noname` means `name=0`, as in SV Node. The config file is SV Node's
//! flat `key=value` format with `#` comments; Core-style `[regtest]`/`[test]`/`[stn]`/`[main]` sections are
//! accepted too and apply only to that network.
//!
//! Repeatable options (`bind`, `connect`, `addnode`, `whitelist`, `rpcbind`, `rpcallowip`, `debug`) collect
//! every value from both sources; for every other option the command line replaces the file, and within
//! one source the last value wins. An unknown key is a warning; an invalid value is a [`ConfigError`] that
//! names the key and the value. Nothing here touches the network or writes to disk.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

pub use crate::chain::Network;
use crate::params::{EraOverrides, MAX_CHRONICLE_GRACE_PERIOD};
use crate::peer::Subnet;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("unexpected argument {arg:?}: options are written -name=value or --name=value")]
    UnexpectedArgument { arg: String },
    #[error("invalid value {value:?} for -{key}: {reason}")]
    InvalidValue { key: String, value: String, reason: &'static str },
    #[error("cannot read config file {path}: {source}")]
    ReadFile { path: PathBuf, source: std::io::Error },
    #[error("config file {path}, line {line}: expected key=value, found {text:?}")]
    FileSyntax { path: PathBuf, line: usize, text: String },
    #[error("only one of -regtest, -testnet and -stn may be set")]
    ConflictingNetworks,
    #[error("specified data directory {path:?} does not exist")]
    MissingDatadir { path: PathBuf },
    #[error("-rpcpassword is set but -rpcuser is not")]
    PasswordWithoutUser,
}

/// Something worth telling the operator that does not stop the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigWarning {
    UnknownOption { key: String, source: Source },
    UnknownDebugCategory { category: String },
    IgnoredInFile { key: String },
}

/// Where an option came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    CommandLine,
    File,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownOption { key, source: Source::CommandLine } => {
                write!(f, "ignoring unknown option -{key} on the command line")
            }
            Self::UnknownOption { key, source: Source::File } => {
                write!(f, "ignoring unknown key {key:?} in the config file")
            }
            Self::UnknownDebugCategory { category } => {
                write!(f, "unsupported logging category -debug={category}")
            }
            Self::IgnoredInFile { key } => write!(f, "-{key} is only read from the command line"),
        }
    }
}

/// Logging categories accepted by `-debug=` (SV Node's names for the parts we have).
pub const DEBUG_CATEGORIES: &[&str] = &["net", "rpc", "http", "mempool", "validation", "bench", "metrics"];

/// SV Node's `DEFAULT_MAX_PEER_CONNECTIONS`.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 125;
/// SV Node's `-maxsendbuffer` default, in kB (src/net/net.h:145).
pub const DEFAULT_MAX_SEND_BUFFER_KB: u64 = 500_000;
/// SV Node's `-maxoutboundconnections` default (src/net/net.h:96).
pub const DEFAULT_MAX_OUTBOUND: u32 = 8;
/// SV Node's `DEFAULT_BANSCORE_THRESHOLD`.
pub const DEFAULT_BANSCORE: u32 = 100;
/// SV Node's `DEFAULT_MISBEHAVING_BANTIME`: 24 hours.
pub const DEFAULT_BANTIME: Duration = crate::peer::bans::DEFAULT_BANTIME;
/// SV Node's `DEFAULT_P2P_HANDSHAKE_TIMEOUT_INTERVAL`: 60 s for version/verack.
pub const DEFAULT_P2P_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);
/// SV Node's `DEFAULT_P2P_TIMEOUT_INTERVAL`: 20 minutes of silence ends a connection.
pub const DEFAULT_P2P_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// SV Node (post-Genesis) has no block size limit by default: `INT64_MAX`.
pub const DEFAULT_EXCESSIVE_BLOCK_SIZE: u64 = i64::MAX as u64;
/// SV Node's `-mempoolexpiry` default: two weeks, in hours.
pub const DEFAULT_MEMPOOL_EXPIRY_HOURS: u64 = 336;

/// Our `-txnpropagationfreq` default. SV Node waits 250 ms plus a 150 ms trickle; a relay whose job
/// is latency sends every 50 ms, which still batches thousands of transactions per `inv` under load.
pub const DEFAULT_TXN_PROPAGATION_FREQ: Duration = Duration::from_millis(50);

/// SV Node's `DEFAULT_TRANSACTION_MAXFEE`: `sendrawtransaction` refuses fees above 0.1 BSV.
pub const DEFAULT_MAX_TX_FEE_SATS: i64 = 10_000_000;

/// SV Node's `DEFAULT_MAX_MEMPOOL_SIZE`, in megabytes (the unit of `-maxmempool`).
pub const DEFAULT_MAX_MEMPOOL_MB: u64 = 1000;
/// SV Node's `DEFAULT_HTTP_WORKQUEUE`: RPC requests served at once before answering "work queue full".
pub const DEFAULT_RPC_WORK_QUEUE: usize = 16;
/// SV Node's `DEFAULT_HTTP_SERVER_TIMEOUT`: an idle RPC connection is closed after 30 s.
pub const DEFAULT_RPC_SERVER_TIMEOUT: Duration = Duration::from_secs(30);

/// `-dbcache` in bytes: a whole number of MiB (SV Node shifts by 20), at least SV Node's minimum.
/// SV Node clamps a value out of range silently; a typo here should not go unnoticed.
fn dbcache_bytes(value: Option<&str>) -> Result<usize, ConfigError> {
    use crate::chain::state::{DEFAULT_DBCACHE_MB, MIN_DBCACHE_MB};
    let Some(v) = value else { return Ok((DEFAULT_DBCACHE_MB << 20) as usize) };
    let mb = v.trim().parse::<u64>().map_err(|_| invalid("dbcache", v, "expected a size in MiB, like 450"))?;
    if mb < MIN_DBCACHE_MB {
        return Err(invalid("dbcache", v, "below the minimum of 4 MiB"));
    }
    mb.checked_shl(20)
        .filter(|b| b >> 20 == mb)
        .and_then(|b| usize::try_from(b).ok())
        .ok_or_else(|| invalid("dbcache", v, "larger than this machine can address"))
}

/// Options that collect every value instead of keeping the last one.
const REPEATABLE: &[&str] =
    &["bind", "connect", "addnode", "whitelist", "rpcbind", "rpcallowip", "debug", "externalip", "onlynet"];

/// Every option we know, SV Node's names first, then our own.
const KNOWN: &[&str] = &[
    "regtest",
    "testnet",
    "stn",
    "datadir",
    "conf",
    "port",
    "bind",
    "listen",
    "externalip",
    "discover",
    "onlynet",
    "natpmp",
    "v2transport",
    "connect",
    "addnode",
    "maxconnections",
    "maxconnectionsfromaddr",
    "maxoutboundconnections",
    "whitelist",
    "banscore",
    "bantime",
    "p2phandshaketimeout",
    "p2ptimeout",
    "excessiveblocksize",
    "maxsendbuffer",
    "maxmempool",
    "mempoolexpiry",
    "maxtxfee",
    "maxorphantxsize",
    "limitancestorcount",
    "maxnonstdtxvalidationduration",
    "persistmempool",
    "txnpropagationfreq",
    "txnvalidationqueuesmaxmemory",
    "minimumchainwork",
    "dbcache",
    "reindex-chainstate",
    "genesisactivationheight",
    "chronicleactivationheight",
    "maxchroniclegracefulperiod",
    "server",
    "rpcport",
    "rpcbind",
    "rpcallowip",
    "rpcuser",
    "rpcpassword",
    "rpcworkqueue",
    "rpcservertimeout",
    "debug",
    "printtoconsole",
    // Ours.
    "metricsbind",
    "peerreputation",
];

/// Every option name the node accepts (without the leading dash).
pub fn known_options() -> &'static [&'static str] {
    KNOWN
}

/// Options that only make sense on the command line (they decide which file is read).
const CLI_ONLY: &[&str] = &["datadir", "conf"];

/// Key → values, in the order given.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RawOptions {
    values: BTreeMap<String, Vec<String>>,
}

impl RawOptions {
    fn push(&mut self, key: String, value: String) {
        self.values.entry(key).or_default().push(value);
    }

    /// The effective single value: the last one given.
    pub fn last(&self, key: &str) -> Option<&str> {
        self.values.get(key).and_then(|v| v.last()).map(String::as_str)
    }

    /// Every value given for a repeatable option.
    pub fn all(&self, key: &str) -> &[String] {
        self.values.get(key).map_or(&[], Vec::as_slice)
    }

    /// Layers `file` under `self` (the command line): repeatable keys collect, others keep `self`'s value.
    fn merged_with_file(mut self, file: RawOptions) -> RawOptions {
        for (key, vals) in file.values {
            if REPEATABLE.contains(&key.as_str()) {
                self.values.entry(key).or_default().extend(vals);
            } else {
                self.values.entry(key).or_insert(vals);
            }
        }
        self
    }
}

/// `nofoo=1` means `foo=0` (and `nofoo=0` means `foo=1`), only for options we know as `foo`.
fn denegate(key: &str, value: &str) -> (String, String) {
    if let Some(rest) = key.strip_prefix("no") {
        if KNOWN.contains(&rest) {
            let v = if matches!(value, "" | "1" | "true") { "0" } else { "1" };
            return (rest.to_owned(), v.to_owned());
        }
    }
    (key.to_owned(), value.to_owned())
}

/// Parses the command line (without the program name).
pub fn parse_args<S: AsRef<str>>(args: &[S]) -> Result<RawOptions, ConfigError> {
    let mut raw = RawOptions::default();
    for arg in args {
        let arg = arg.as_ref();
        let body = arg
            .strip_prefix("--")
            .or_else(|| arg.strip_prefix('-'))
            .filter(|b| !b.is_empty())
            .ok_or_else(|| ConfigError::UnexpectedArgument { arg: arg.to_owned() })?;
        let (key, value) = body.split_once('=').unwrap_or((body, "1"));
        let (key, value) = denegate(&key.to_ascii_lowercase(), value);
        raw.push(key, value);
    }
    Ok(raw)
}

/// One `key=value` line of a config file with the section it sits in.
struct FileEntry {
    section: Option<String>,
    key: String,
    value: String,
}

fn parse_file_text(path: &Path, text: &str) -> Result<Vec<FileEntry>, ConfigError> {
    let mut section = None;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.trim().to_owned());
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(ConfigError::FileSyntax { path: path.to_owned(), line: i + 1, text: line.to_owned() });
        };
        let (key, value) = denegate(&key.trim().to_ascii_lowercase(), value.trim());
        out.push(FileEntry { section: section.clone(), key, value });
    }
    Ok(out)
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value {
        "" | "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(invalid(key, value, "expected 0 or 1")),
    }
}

/// An amount in BSV with up to 8 decimals ("0.1", "2", "0.00000500"), in satoshis, within the
/// money range.
fn parse_amount(v: &str) -> Option<i64> {
    const SATS_PER_COIN: i64 = 100_000_000;
    let (whole, frac) = v.split_once('.').unwrap_or((v, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() && frac.is_empty() || !digits(whole) || !digits(frac) || frac.len() > 8 || whole.len() > 8 {
        return None;
    }
    let whole: i64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let frac: i64 = if frac.is_empty() { 0 } else { format!("{frac:0<8}").parse().ok()? };
    let sats = whole.checked_mul(SATS_PER_COIN)?.checked_add(frac)?;
    (sats <= crate::validation::check_tx::MAX_MONEY).then_some(sats)
}

fn invalid(key: &str, value: &str, reason: &'static str) -> ConfigError {
    ConfigError::InvalidValue { key: key.to_owned(), value: value.to_owned(), reason }
}

fn network_of(raw_cli: &RawOptions, file_top: &RawOptions) -> Result<Network, ConfigError> {
    let mut chosen = Vec::new();
    for (key, net) in [("regtest", Network::Regtest), ("testnet", Network::Test), ("stn", Network::Stn)] {
        let v = raw_cli.last(key).or_else(|| file_top.last(key));
        if let Some(v) = v {
            if parse_bool(key, v)? {
                chosen.push(net);
            }
        }
    }
    match chosen.as_slice() {
        [] => Ok(Network::Main),
        [one] => Ok(*one),
        _ => Err(ConfigError::ConflictingNetworks),
    }
}

/// The validated configuration the node runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub network: Network,
    /// `-datadir`, without the network subfolder.
    pub datadir: PathBuf,
    /// The config file that was read, if one existed.
    pub conf_file: Option<PathBuf>,
    pub port: u16,
    pub binds: Vec<SocketAddr>,
    pub listen: bool,
    /// `-externalip`: addresses of ours the operator names (the port is always `-port`).
    pub externalip: Vec<IpAddr>,
    /// `-discover`: take the interfaces' routable addresses as ours.
    pub discover: bool,
    /// `-onlynet`: the networks automatic outbound connections go to; empty means all.
    pub onlynet: Vec<crate::peer::local::Family>,
    /// `-natpmp`: map the P2P port on the default gateways (PCP, NAT-PMP); off by default, and
    /// only when listening.
    pub natpmp: bool,
    /// `-v2transport` (Core's name): accept v2 (BIP324) connections, advertise NODE_P2P_V2 and
    /// use v2 with peers that advertise it; on by default.
    pub v2transport: bool,
    /// `-peerreputation` (ours, a debugging switch): reputation orders requests, outbound choice
    /// and eviction, and withholders are passed over. Off, peers are treated alike (to measure
    /// what reputation buys; see the README's network simulation).
    pub peerreputation: bool,
    pub connect: Vec<String>,
    pub addnode: Vec<String>,
    pub maxconnections: u32,
    /// `-maxconnectionsfromaddr`: connections from one IP; 0 = no cap (SV Node's default).
    pub maxconnectionsfromaddr: u32,
    /// `-maxoutboundconnections`: outbound peers chosen from the address book.
    pub maxoutboundconnections: u32,
    pub whitelist: Vec<Subnet>,
    pub banscore: u32,
    pub bantime: Duration,
    pub p2phandshaketimeout: Duration,
    pub p2ptimeout: Duration,
    pub excessiveblocksize: u64,
    /// `-maxsendbuffer` in bytes (given in kB, as SV Node): the most we queue for one peer before
    /// disconnecting it as not reading.
    pub maxsendbuffer_bytes: u64,
    /// `-maxmempool` converted to bytes.
    pub maxmempool_bytes: u64,
    /// `-dbcache` (MiB, as SV Node) in bytes: the coins cache and the database's page cache.
    pub dbcache_bytes: usize,
    /// `-reindex-chainstate`: rebuild the UTXO set from the stored blocks at start.
    pub reindex_chainstate: bool,
    /// `-maxtxfee` in satoshis: the highest fee `sendrawtransaction` accepts (0: no limit).
    pub maxtxfee_sats: i64,
    /// `-maxorphantxsize` (MB) in bytes: the most the orphan pool holds.
    pub maxorphantxsize_bytes: u64,
    /// `-genesisactivationheight`, `-chronicleactivationheight`, `-maxchroniclegracefulperiod`:
    /// the operator's era heights (SV Node's options, on every network as there).
    pub eras: EraOverrides,
    /// `-limitancestorcount`: the longest chain of unconfirmed ancestors a mempool transaction may have.
    pub limitancestorcount: u32,
    /// `-maxnonstdtxvalidationduration` (ms): the script time budget of a loose transaction.
    pub maxnonstdtxvalidationduration: Duration,
    /// `-mempoolexpiry` (hours) as a duration.
    pub mempoolexpiry: Duration,
    /// `-persistmempool`: save the mempool at shutdown and load it at start-up (default on).
    pub persistmempool: bool,
    /// `-txnpropagationfreq`: how often queued transaction announcements are sent.
    pub txnpropagationfreq: Duration,
    /// `-txnvalidationqueuesmaxmemory` (MB) in bytes: transactions waiting for validation.
    pub txnvalidationqueuesmaxmemory_bytes: u64,
    /// `-minimumchainwork` (hex); `None` keeps the network's default.
    pub minimumchainwork: Option<crate::chain::U256>,
    pub server: bool,
    pub rpcport: u16,
    pub rpcbind: Vec<SocketAddr>,
    pub rpcallowip: Vec<Subnet>,
    pub rpcuser: Option<String>,
    pub rpcpassword: Option<String>,
    pub rpcworkqueue: usize,
    pub rpcservertimeout: Duration,
    /// `-debug` categories; `all` when `-debug=1` or `-debug=all`.
    pub debug: Vec<String>,
    pub printtoconsole: bool,
    pub metricsbind: Option<SocketAddr>,
    pub warnings: Vec<ConfigWarning>,
}

impl Config {
    /// The network's folder inside the data directory: where the cookie, lock file and ban list live.
    pub fn netdir(&self) -> PathBuf {
        match self.network.data_subdir() {
            Some(sub) => self.datadir.join(sub),
            None => self.datadir.clone(),
        }
    }

    /// Parses the command line, reads the config file and validates everything. `home` is `$HOME`, used
    /// for the default data directory `$HOME/.bsv-relay`.
    pub fn load<S: AsRef<str>>(args: &[S], home: Option<&Path>) -> Result<Config, ConfigError> {
        let cli = parse_args(args)?;
        let datadir = match cli.last("datadir") {
            Some(d) => {
                let d = PathBuf::from(d);
                if !d.is_dir() {
                    return Err(ConfigError::MissingDatadir { path: d });
                }
                d
            }
            None => home.map_or_else(|| PathBuf::from(".bsv-relay"), |h| h.join(".bsv-relay")),
        };
        let (conf_path, explicit) = match cli.last("conf") {
            Some(c) if Path::new(c).is_absolute() => (PathBuf::from(c), true),
            Some(c) => (datadir.join(c), true),
            None => (datadir.join("bitcoin.conf"), false),
        };
        let (entries, conf_file) = match std::fs::read_to_string(&conf_path) {
            Ok(text) => (parse_file_text(&conf_path, &text)?, Some(conf_path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => (Vec::new(), None),
            Err(source) => return Err(ConfigError::ReadFile { path: conf_path, source }),
        };
        let mut top = RawOptions::default();
        for e in entries.iter().filter(|e| e.section.is_none()) {
            top.push(e.key.clone(), e.value.clone());
        }
        let network = network_of(&cli, &top)?;
        let mut warnings = Vec::new();
        let mut file = RawOptions::default();
        for e in entries {
            if e.section.as_deref().is_some_and(|s| s != network.name()) {
                continue;
            }
            if CLI_ONLY.contains(&e.key.as_str()) {
                warnings.push(ConfigWarning::IgnoredInFile { key: e.key });
                continue;
            }
            if !KNOWN.contains(&e.key.as_str()) {
                warnings.push(ConfigWarning::UnknownOption { key: e.key.clone(), source: Source::File });
            }
            file.push(e.key, e.value);
        }
        for key in cli.values.keys() {
            if !KNOWN.contains(&key.as_str()) {
                warnings.push(ConfigWarning::UnknownOption { key: key.clone(), source: Source::CommandLine });
            }
        }
        let raw = cli.merged_with_file(file);
        Self::validate(&raw, network, datadir, conf_file, warnings)
    }

    fn validate(
        raw: &RawOptions,
        network: Network,
        datadir: PathBuf,
        conf_file: Option<PathBuf>,
        mut warnings: Vec<ConfigWarning>,
    ) -> Result<Config, ConfigError> {
        let bool_opt = |key: &str, default: bool| -> Result<bool, ConfigError> {
            raw.last(key).map_or(Ok(default), |v| parse_bool(key, v))
        };
        let port_opt = |key: &str, default: u16| -> Result<u16, ConfigError> {
            match raw.last(key) {
                None => Ok(default),
                Some(v) => match v.parse::<u16>() {
                    Ok(p) if p > 0 => Ok(p),
                    _ => Err(invalid(key, v, "expected a port number 1-65535")),
                },
            }
        };
        let u64_opt = |key: &str, default: u64| -> Result<u64, ConfigError> {
            raw.last(key)
                .map_or(Ok(default), |v| v.parse().map_err(|_| invalid(key, v, "expected a non-negative integer")))
        };
        let secs_opt = |key: &str, default: Duration| -> Result<Duration, ConfigError> {
            match raw.last(key) {
                None => Ok(default),
                Some(v) => match v.parse::<u64>() {
                    Ok(s) if s > 0 => Ok(Duration::from_secs(s)),
                    _ => Err(invalid(key, v, "expected a positive number of seconds")),
                },
            }
        };
        let u32_opt = |key: &str, default: u32| -> Result<u32, ConfigError> {
            raw.last(key)
                .map_or(Ok(default), |v| v.parse().map_err(|_| invalid(key, v, "expected a non-negative integer")))
        };
        let subnets = |key: &str| -> Result<Vec<Subnet>, ConfigError> {
            raw.all(key)
                .iter()
                .map(|v| {
                    // `-whitelist=perm@net`: permissions are Core's; we accept and ignore them.
                    let net = v.rsplit_once('@').map_or(v.as_str(), |(_, n)| n);
                    net.parse().map_err(|_| invalid(key, v, "expected an IP address or subnet"))
                })
                .collect()
        };
        let string_opt = |key: &str| -> Option<String> { raw.last(key).map(str::to_owned) };
        // SV Node: "activation height cannot be configured with a zero or negative value".
        let activation_height = |key: &str| -> Result<Option<u32>, ConfigError> {
            raw.last(key)
                .map(|v| match v.parse::<u32>() {
                    Ok(h) if (1..=i32::MAX as u32).contains(&h) => Ok(h),
                    _ => Err(invalid(key, v, "expected a positive block height")),
                })
                .transpose()
        };

        let port = port_opt("port", network.params().default_port)?;
        let rpcport = port_opt("rpcport", network.params().rpc_port)?;
        let binds = raw
            .all("bind")
            .iter()
            .map(|v| parse_endpoint(v, port).ok_or_else(|| invalid("bind", v, "expected IP or IP:port")))
            .collect::<Result<Vec<_>, _>>()?;
        let mut rpcbind = raw
            .all("rpcbind")
            .iter()
            .map(|v| parse_endpoint(v, rpcport).ok_or_else(|| invalid("rpcbind", v, "expected IP or IP:port")))
            .collect::<Result<Vec<_>, _>>()?;
        if rpcbind.is_empty() {
            // Loopback only unless told otherwise, as SV Node.
            rpcbind.push(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), rpcport));
        }
        let peers_list = |key: &str| -> Result<Vec<String>, ConfigError> {
            raw.all(key)
                .iter()
                .map(|v| {
                    if v.is_empty() || v.chars().any(char::is_whitespace) {
                        Err(invalid(key, v, "expected host or host:port"))
                    } else {
                        Ok(v.clone())
                    }
                })
                .collect()
        };
        let connect = peers_list("connect")?;
        let metricsbind = match raw.last("metricsbind") {
            None | Some("") => None,
            Some(v) => match v.parse::<u16>() {
                // A bare port means loopback: metrics are not for the whole network by default.
                Ok(p) if p > 0 => Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), p)),
                _ => Some(
                    parse_endpoint(v, 0)
                        .filter(|a| a.port() != 0)
                        .ok_or_else(|| invalid("metricsbind", v, "expected ADDR:PORT or PORT"))?,
                ),
            },
        };
        let maxmempool_mb = u64_opt("maxmempool", DEFAULT_MAX_MEMPOOL_MB)?;
        let maxmempool_bytes = maxmempool_mb
            .checked_mul(1_000_000)
            .ok_or_else(|| invalid("maxmempool", raw.last("maxmempool").unwrap_or(""), "too large"))?;
        let maxtxfee_sats = match raw.last("maxtxfee") {
            None => DEFAULT_MAX_TX_FEE_SATS,
            Some(v) => parse_amount(v).ok_or_else(|| invalid("maxtxfee", v, "expected an amount in BSV, like 0.1"))?,
        };
        let maxnonstdtxvalidationduration = match raw.last("maxnonstdtxvalidationduration") {
            None => crate::validation::tx::MAX_TX_VALIDATION_TIME,
            Some(v) => match v.parse::<u64>() {
                Ok(ms) if ms > 0 => Duration::from_millis(ms),
                _ => {
                    return Err(invalid(
                        "maxnonstdtxvalidationduration",
                        v,
                        "expected a positive number of milliseconds",
                    ))
                }
            },
        };
        let minimumchainwork = match raw.last("minimumchainwork") {
            None | Some("") => None,
            Some(v) => {
                let digits = v.trim_start_matches("0x");
                let padded = format!("{digits:0>64}");
                Some(
                    crate::chain::U256::from_be_hex(&padded)
                        .filter(|_| digits.len() <= 64)
                        .ok_or_else(|| invalid("minimumchainwork", v, "expected up to 64 hex digits"))?,
                )
            }
        };
        let txnpropagationfreq = match raw.last("txnpropagationfreq") {
            None => DEFAULT_TXN_PROPAGATION_FREQ,
            Some(v) => match v.parse::<u64>() {
                Ok(ms) if ms > 0 => Duration::from_millis(ms),
                _ => return Err(invalid("txnpropagationfreq", v, "expected a positive number of milliseconds")),
            },
        };
        let rpcworkqueue = match raw.last("rpcworkqueue") {
            None => DEFAULT_RPC_WORK_QUEUE,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => return Err(invalid("rpcworkqueue", v, "expected a positive integer")),
            },
        };
        let mut debug = Vec::new();
        for v in raw.all("debug") {
            for cat in v.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                match cat {
                    "1" | "all" => debug.push("all".to_owned()),
                    "0" | "none" => debug.clear(),
                    c if DEBUG_CATEGORIES.contains(&c) => debug.push(c.to_owned()),
                    c => warnings.push(ConfigWarning::UnknownDebugCategory { category: c.to_owned() }),
                }
            }
        }
        let rpcuser = string_opt("rpcuser");
        let rpcpassword = string_opt("rpcpassword").filter(|p| !p.is_empty());
        if rpcpassword.is_some() && rpcuser.is_none() {
            return Err(ConfigError::PasswordWithoutUser);
        }
        let listen = listen_by_interaction(
            raw.last("listen").map(|v| parse_bool("listen", v)).transpose()?,
            !binds.is_empty(),
            !connect.is_empty(),
        );
        let externalip = raw
            .all("externalip")
            .iter()
            .map(|v| {
                parse_endpoint(v, port)
                    .map(|a| a.ip())
                    .ok_or_else(|| invalid("externalip", v, "expected an IP address"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let onlynet = raw
            .all("onlynet")
            .iter()
            .map(|v| crate::peer::local::Family::parse(v).ok_or_else(|| invalid("onlynet", v, "expected ipv4 or ipv6")))
            .collect::<Result<Vec<_>, _>>()?;
        let discover = discover_by_interaction(
            raw.last("discover").map(|v| parse_bool("discover", v)).transpose()?,
            listen,
            !externalip.is_empty(),
        );
        Ok(Config {
            network,
            datadir,
            conf_file,
            port,
            listen,
            externalip,
            discover,
            onlynet,
            natpmp: bool_opt("natpmp", false)? && listen,
            v2transport: bool_opt("v2transport", true)?,
            peerreputation: bool_opt("peerreputation", true)?,
            binds,
            connect,
            addnode: peers_list("addnode")?,
            maxconnections: u32_opt("maxconnections", DEFAULT_MAX_CONNECTIONS)?,
            maxconnectionsfromaddr: u32_opt("maxconnectionsfromaddr", 0)?,
            maxoutboundconnections: u32_opt("maxoutboundconnections", DEFAULT_MAX_OUTBOUND)?,
            whitelist: subnets("whitelist")?,
            banscore: u32_opt("banscore", DEFAULT_BANSCORE)?,
            bantime: secs_opt("bantime", DEFAULT_BANTIME)?,
            p2phandshaketimeout: secs_opt("p2phandshaketimeout", DEFAULT_P2P_HANDSHAKE_TIMEOUT)?,
            p2ptimeout: secs_opt("p2ptimeout", DEFAULT_P2P_TIMEOUT)?,
            excessiveblocksize: u64_opt("excessiveblocksize", DEFAULT_EXCESSIVE_BLOCK_SIZE)?,
            maxsendbuffer_bytes: u64_opt("maxsendbuffer", DEFAULT_MAX_SEND_BUFFER_KB)?.saturating_mul(1000),
            maxmempool_bytes,
            dbcache_bytes: dbcache_bytes(raw.last("dbcache"))?,
            reindex_chainstate: bool_opt("reindex-chainstate", false)?,
            maxtxfee_sats,
            maxorphantxsize_bytes: u64_opt("maxorphantxsize", crate::mempool::orphans::DEFAULT_MAX_ORPHAN_MB)?
                .saturating_mul(1_000_000),
            eras: EraOverrides {
                genesis: activation_height("genesisactivationheight")?,
                chronicle: activation_height("chronicleactivationheight")?,
                chronicle_grace: raw
                    .last("maxchroniclegracefulperiod")
                    .map(|v| match v.parse::<u32>() {
                        Ok(n) if n <= MAX_CHRONICLE_GRACE_PERIOD => Ok(n),
                        _ => Err(invalid(
                            "maxchroniclegracefulperiod",
                            v,
                            "expected a number of blocks from 0 to 7200 (SV Node's limit)",
                        )),
                    })
                    .transpose()?,
            },
            limitancestorcount: u32_opt("limitancestorcount", crate::mempool::pool::DEFAULT_MAX_ANCESTORS)?,
            maxnonstdtxvalidationduration,
            mempoolexpiry: Duration::from_secs(
                u64_opt("mempoolexpiry", DEFAULT_MEMPOOL_EXPIRY_HOURS)?.saturating_mul(3600),
            ),
            persistmempool: bool_opt("persistmempool", true)?,
            txnpropagationfreq,
            txnvalidationqueuesmaxmemory_bytes: u64_opt(
                "txnvalidationqueuesmaxmemory",
                crate::mempool::accept::DEFAULT_MAX_QUEUE_MB,
            )?
            .saturating_mul(1 << 20),
            minimumchainwork,
            server: bool_opt("server", true)?,
            rpcport,
            rpcbind,
            rpcallowip: subnets("rpcallowip")?,
            rpcuser,
            rpcpassword,
            rpcworkqueue,
            rpcservertimeout: secs_opt("rpcservertimeout", DEFAULT_RPC_SERVER_TIMEOUT)?,
            debug,
            printtoconsole: bool_opt("printtoconsole", false)?,
            metricsbind,
            warnings,
        })
    }
}

/// Whether to accept inbound connections, by SV Node's `InitParameterInteraction` (src/init.cpp):
/// an explicit `-listen` wins; otherwise `-bind` soft-sets it on first ("when specifying an
/// explicit binding address, you want to listen on it even when -connect is specified"), and only
/// then does `-connect` soft-set it off (a node told whom to dial is not a public listener).
/// SV Node's `-whitebind` and `-proxy` take part there too; we have neither option.
pub fn listen_by_interaction(explicit: Option<bool>, bind: bool, connect: bool) -> bool {
    explicit.unwrap_or(bind || !connect)
}

/// Whether to take the interfaces' addresses as ours, by the same interaction: an explicit
/// `-discover` wins; otherwise on when listening and no `-externalip` names our addresses
/// (`-listen=0` and `-externalip` soft-set it off).
pub fn discover_by_interaction(explicit: Option<bool>, listen: bool, externalip: bool) -> bool {
    explicit.unwrap_or(listen && !externalip)
}

/// `1.2.3.4`, `1.2.3.4:5`, `::1`, `[::1]:5`, `localhost[:5]`; `default_port` when no port is given.
fn parse_endpoint(s: &str, default_port: u16) -> Option<SocketAddr> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Some(a);
    }
    if let Ok(ip) = s.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, default_port));
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (s, default_port),
    };
    (host == "localhost").then_some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDir(PathBuf);
    impl TempDir {
        fn new() -> Self {
            let p = std::env::temp_dir().join(format!("bsv-relay-config-{}", rand::random::<u64>()));
            std::fs::create_dir_all(&p).expect("temp dir");
            Self(p)
        }
        fn arg(&self) -> String {
            format!("-datadir={}", self.0.display())
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn load(dir: &TempDir, conf: &str, args: &[&str]) -> Result<Config, ConfigError> {
        std::fs::write(dir.0.join("bitcoin.conf"), conf).expect("write conf");
        let mut all = vec![dir.arg()];
        all.extend(args.iter().map(|s| s.to_string()));
        Config::load(&all, None)
    }

    #[test]
    fn defaults_follow_the_network() {
        let dir = TempDir::new();
        let c = load(&dir, "", &["-regtest"]).expect("config");
        assert_eq!((c.network, c.port, c.rpcport), (Network::Regtest, 18444, 18332));
        assert_eq!(c.netdir(), dir.0.join("regtest"));
        assert_eq!(c.rpcbind, vec!["127.0.0.1:18332".parse().expect("addr")]);
        assert_eq!(c.bantime, DEFAULT_BANTIME);
        assert_eq!(c.maxtxfee_sats, 10_000_000, "0.1 BSV");
        assert_eq!(c.maxorphantxsize_bytes, 100_000_000);
        assert_eq!(c.limitancestorcount, 10_000);
        assert_eq!(c.maxnonstdtxvalidationduration, Duration::from_secs(1));
        let c = load(&dir, "", &["-maxnonstdtxvalidationduration=250"]).expect("config");
        assert_eq!(c.maxnonstdtxvalidationduration, Duration::from_millis(250));
        assert!(matches!(load(&dir, "", &["-maxnonstdtxvalidationduration=0"]), Err(ConfigError::InvalidValue { .. })));
        assert_eq!(load(&dir, "", &["-limitancestorcount=25"]).expect("config").limitancestorcount, 25);
        assert_eq!(c.eras, EraOverrides::default());
        let c = load(
            &dir,
            "",
            &["-genesisactivationheight=10", "-chronicleactivationheight=120", "-maxchroniclegracefulperiod=0"],
        )
        .expect("config");
        assert_eq!(c.eras, EraOverrides { genesis: Some(10), chronicle: Some(120), chronicle_grace: Some(0) });
        for bad in ["-chronicleactivationheight=0", "-genesisactivationheight=-5", "-maxchroniclegracefulperiod=7201"] {
            assert!(matches!(load(&dir, "", &[bad]), Err(ConfigError::InvalidValue { .. })), "{bad}");
        }
        assert_eq!(load(&dir, "", &["-maxorphantxsize=5"]).expect("config").maxorphantxsize_bytes, 5_000_000);
        for (given, sats) in
            [("0.00000500", 500), ("2", 200_000_000), ("1.5", 150_000_000), ("0", 0), (".25", 25_000_000)]
        {
            let c = load(&dir, "", &["-regtest", &format!("-maxtxfee={given}")]).expect(given);
            assert_eq!(c.maxtxfee_sats, sats, "{given}");
        }
        let c = load(&dir, "", &["--stn"]).expect("config");
        assert_eq!((c.network, c.port, c.rpcport), (Network::Stn, 9333, 9332));
        let c = load(&dir, "", &[]).expect("config");
        assert_eq!((c.network, c.port, c.rpcport, c.netdir()), (Network::Main, 8333, 8332, dir.0.clone()));
        assert!(matches!(load(&dir, "", &["-regtest", "-testnet"]), Err(ConfigError::ConflictingNetworks)));
    }

    #[test]
    fn listen_follows_svnode_parameter_interaction() {
        // (args, listening?) — SV Node's InitParameterInteraction: -bind soft-sets -listen=1
        // before -connect soft-sets it to 0; an explicit -listen always wins.
        let table: &[(&[&str], bool)] = &[
            (&[], true),
            (&["-connect=127.0.0.1:1"], false),
            (&["-bind=127.0.0.1:8333"], true),
            (&["-bind=127.0.0.1:8333", "-connect=127.0.0.1:1"], true),
            (&["-connect=127.0.0.1:1", "-bind=127.0.0.1:8333"], true),
            (&["-bind=127.0.0.1:8333", "-connect=127.0.0.1:1", "-listen=0"], false),
            (&["-bind=127.0.0.1:8333", "-nolisten"], false),
            (&["-connect=127.0.0.1:1", "-listen=1"], true),
            (&["-listen=0"], false),
        ];
        for (args, listening) in table {
            let dir = TempDir::new();
            let c = load(&dir, "", args).expect("config");
            assert_eq!(c.listen, *listening, "{args:?}");
        }
        // The same interaction when the options come from the file.
        let dir = TempDir::new();
        let c = load(&dir, "bind=127.0.0.1:8333\nconnect=127.0.0.1:1\n", &[]).expect("config");
        assert!(c.listen);
    }

    #[test]
    fn own_address_options_follow_the_same_interaction() {
        use crate::peer::local::Family;
        // (args, discover?) — -listen=0 and -externalip soft-set -discover=0; explicit wins.
        let table: &[(&[&str], bool)] = &[
            (&[], true),
            (&["-listen=0"], false),
            (&["-connect=127.0.0.1:1"], false),
            (&["-connect=127.0.0.1:1", "-bind=127.0.0.1:1"], true),
            (&["-externalip=8.8.8.8"], false),
            (&["-externalip=8.8.8.8", "-discover=1"], true),
            (&["-discover=0"], false),
            (&["-listen=0", "-discover"], true),
        ];
        for (args, discover) in table {
            let dir = TempDir::new();
            assert_eq!(load(&dir, "", args).expect("config").discover, *discover, "{args:?}");
        }
        let dir = TempDir::new();
        let c = load(&dir, "externalip=[2001:db8::5]:8333\nonlynet=ipv6\n", &["-externalip=8.8.8.8", "-onlynet=IPv4"])
            .expect("config");
        assert_eq!(c.externalip, ["8.8.8.8".parse::<IpAddr>().unwrap(), "2001:db8::5".parse().unwrap()]);
        assert_eq!(c.onlynet, [Family::Ipv4, Family::Ipv6]);
        for (arg, key) in [
            ("-onlynet=onion", "-onlynet"),
            ("-externalip=example.com", "-externalip"),
            ("-discover=maybe", "-discover"),
        ] {
            let err = load(&dir, "", &[arg]).expect_err(arg).to_string();
            assert!(err.contains(key), "{arg}: {err}");
        }
    }

    #[test]
    fn file_comments_repeats_and_negation() {
        let dir = TempDir::new();
        let conf = "# a comment\nregtest=1\naddnode=1.1.1.1:1 # trailing\n\naddnode=2.2.2.2:2\nnolisten=1\n\
                    whitelist=10.0.0.0/8\nport=1000\nport=1001\n";
        let c = load(&dir, conf, &["-addnode=3.3.3.3:3"]).expect("config");
        assert_eq!(c.network, Network::Regtest);
        assert_eq!(c.addnode, vec!["3.3.3.3:3", "1.1.1.1:1", "2.2.2.2:2"]);
        assert!(!c.listen);
        assert_eq!(c.port, 1001);
        assert_eq!(c.whitelist[0].to_string(), "10.0.0.0/8");
        let c = load(&dir, "listen=0\n", &["-nolisten=0"]).expect("config");
        assert!(c.listen);
    }

    #[test]
    fn command_line_overrides_file_and_sections_apply_per_network() {
        let dir = TempDir::new();
        let conf = "rpcport=1111\nrpcuser=file\n[regtest]\nport=2222\n[main]\nport=3333\n";
        let c = load(&dir, conf, &["--regtest", "--rpcport=4444", "-rpcpassword=pw"]).expect("config");
        assert_eq!((c.rpcport, c.port), (4444, 2222));
        assert_eq!((c.rpcuser.as_deref(), c.rpcpassword.as_deref()), (Some("file"), Some("pw")));
        let c = load(&dir, conf, &[]).expect("config");
        assert_eq!((c.rpcport, c.port), (1111, 3333));
    }

    #[test]
    fn invalid_values_name_key_and_value() {
        let dir = TempDir::new();
        let err = load(&dir, "", &["-port=abc"]).expect_err("invalid");
        assert!(matches!(&err, ConfigError::InvalidValue { key, value, .. } if key == "port" && value == "abc"));
        assert!(err.to_string().contains("\"abc\"") && err.to_string().contains("-port"));
        let err = load(&dir, "whitelist=300.1.1.1\n", &[]).expect_err("invalid");
        assert!(
            matches!(&err, ConfigError::InvalidValue { key, value, .. } if key == "whitelist" && value == "300.1.1.1")
        );
        assert!(matches!(load(&dir, "listen=maybe\n", &[]), Err(ConfigError::InvalidValue { .. })));
        assert!(matches!(load(&dir, "bantime=0\n", &[]), Err(ConfigError::InvalidValue { .. })));
        for bad in ["-maxtxfee=abc", "-maxtxfee=0.123456789", "-maxtxfee=-1", "-maxtxfee=.", "-maxtxfee=21000001"] {
            let err = load(&dir, "", &[bad]).expect_err(bad);
            assert!(matches!(&err, ConfigError::InvalidValue { key, .. } if key == "maxtxfee"), "{bad}: {err}");
        }
        assert!(matches!(load(&dir, "justakey\n", &[]), Err(ConfigError::FileSyntax { line: 1, .. })));
        assert!(matches!(load(&dir, "", &["regtest"]), Err(ConfigError::UnexpectedArgument { .. })));
        assert!(matches!(load(&dir, "", &["-rpcpassword=x"]), Err(ConfigError::PasswordWithoutUser)));
        assert!(matches!(
            Config::load(&["-datadir=/nonexistent/bsv-relay-test"], None),
            Err(ConfigError::MissingDatadir { .. })
        ));
    }

    #[test]
    fn dbcache_is_in_mib_with_svnode_default_and_minimum() {
        let dir = TempDir::new();
        let c = load(&dir, "", &[]).expect("config");
        assert_eq!((c.dbcache_bytes, c.reindex_chainstate), (450 << 20, false));
        let c = load(&dir, "dbcache=64\n", &["-reindex-chainstate"]).expect("config");
        assert_eq!((c.dbcache_bytes, c.reindex_chainstate), (64 << 20, true));
        for bad in ["-dbcache=3", "-dbcache=lots", "-dbcache=-5", "-dbcache=99999999999999999"] {
            let err = load(&dir, "", &[bad]).expect_err(bad);
            assert!(matches!(&err, ConfigError::InvalidValue { key, .. } if key == "dbcache"), "{bad}: {err}");
        }
    }

    #[test]
    fn unknown_keys_warn() {
        let dir = TempDir::new();
        let c = load(&dir, "frobnicate=1\ndatadir=/x\n", &["-wibble=2", "-debug=net,bogus"]).expect("config");
        assert_eq!(
            c.warnings,
            vec![
                ConfigWarning::UnknownOption { key: "frobnicate".into(), source: Source::File },
                ConfigWarning::IgnoredInFile { key: "datadir".into() },
                ConfigWarning::UnknownOption { key: "wibble".into(), source: Source::CommandLine },
                ConfigWarning::UnknownDebugCategory { category: "bogus".into() },
            ]
        );
        assert_eq!(c.debug, vec!["net"]);
    }

    #[test]
    fn single_and_double_dash_and_explicit_conf() {
        let dir = TempDir::new();
        std::fs::write(dir.0.join("other.conf"), "rpcport=5555\n").expect("write");
        let c = load(&dir, "rpcport=1\n", &["-conf=other.conf", "-regtest", "--metricsbind=9100"]).expect("config");
        assert_eq!(c.rpcport, 5555);
        assert_eq!(c.metricsbind, Some("127.0.0.1:9100".parse().expect("addr")));
        let c =
            load(&dir, "", &["--metricsbind=0.0.0.0:9200", "-rpcbind=127.0.0.1:7000", "-rpcbind=::1"]).expect("config");
        assert_eq!(c.metricsbind, Some("0.0.0.0:9200".parse().expect("addr")));
        assert_eq!(c.rpcbind.len(), 2);
        assert_eq!(c.rpcbind[1], "[::1]:8332".parse().expect("addr"));
        assert!(matches!(load(&dir, "", &["-conf=missing.conf"]), Err(ConfigError::ReadFile { .. })));
        assert!(matches!(load(&dir, "", &["-metricsbind=1.2.3.4"]), Err(ConfigError::InvalidValue { .. })));
    }
}
