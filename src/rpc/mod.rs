//! The JSON-RPC server: HTTP/1.1 POST with Basic authentication, compatible with SV Node's `bitcoin-cli`.
//!
//! Transport (operators-and-robustness.md §1.3): keep-alive connections; a request head capped at
//! [`MAX_HEAD_BYTES`] and a body capped at [`MAX_BODY_BYTES`] (413 beyond, before reading it); at most
//! `-rpcworkqueue` requests served at once (503 with a JSON error beyond, never queued without bound); idle
//! connections closed after `-rpcservertimeout`. Clients outside loopback and `-rpcallowip` get 403.
//! Credentials are `-rpcuser`/`-rpcpassword` or, without a password, the cookie file; they are compared
//! in constant time and a failure is answered after [`AUTH_FAILURE_DELAY`].
//!
//! Envelope: requests may carry no `jsonrpc` field or any version; replies always carry `result`,
//! `error` and `id`. A single request gets 200, or 400/404/500 by error code (SV `httprpc.cpp`), always
//! with a JSON body because bitcoin-cli reads it; a batch always gets 200.
//!
//! Methods live one file per group ([`network`], [`control`]); each group has a `register(&mut Router)`.
//! Handlers reach the node through [`RpcContext`] and never block: they read snapshots or send commands.

pub mod blockchain;
pub mod blocks;
pub mod control;
use crate::http;
pub mod mempool;
pub mod mining;
pub mod network;
pub mod params;
pub mod txjson;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use thiserror::Error;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::logging::RateLimiter;
use crate::metrics::{Metrics, RpcResult};
use crate::peer::{BanError, BanList, PeerRegistry, RegistryError, Subnet};
use crate::shutdown::{Shutdown, ShutdownTrigger};

pub use params::Params;

/// Largest request body: SV Node's HTTP server allows 32 MB (`MAX_SIZE`), enough for a large
/// `sendrawtransaction` hex string; anything beyond is refused before it is read.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Largest request head; bitcoin-cli sends about 200 bytes, 8 KiB leaves room for proxies' headers.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;

/// Delay before answering a failed login, as SV Node (`httprpc.cpp`): slows password guessing.
pub const AUTH_FAILURE_DELAY: Duration = Duration::from_millis(250);

/// Open RPC connections at once; beyond this, accepting waits. Four per work-queue slot keeps idle
/// keep-alive clients from starving active ones while bounding file descriptors.
const CONNECTIONS_PER_WORK_SLOT: usize = 4;

/// The `id` of the `{"...": sats}` marker object that [`to_json_string`] prints as a fixed-point amount.
const AMOUNT_KEY: &str = "\u{0}amount_satoshis";

/// Satoshis per coin, for printing amounts.
const COIN: i64 = 100_000_000;

/// JSON-RPC errors with SV Node's codes (SV `rpc/protocol.h`).
#[derive(Debug, Error)]
pub enum RpcError {
    #[error("Parse error")]
    Parse,
    #[error("{reason}")]
    InvalidRequest { reason: &'static str },
    #[error("Method not found")]
    MethodNotFound,
    /// Wrong number of parameters: answered with the method's help text, as SV Node does.
    #[error("usage")]
    Usage,
    #[error("Expected type {expected}, got {got}")]
    Type { expected: &'static str, got: &'static str },
    #[error("{message}")]
    InvalidParameter { message: String },
    #[error("Error: Invalid IP/Subnet")]
    InvalidSubnet,
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Ban(#[from] BanError),
    #[error("{message}")]
    Misc { message: String },
    /// SV Node's `RPC_INVALID_ADDRESS_OR_KEY` (-5), e.g. "Block not found".
    #[error("{message}")]
    NotFound { message: String },
    #[error("Work queue depth exceeded")]
    WorkQueueFull,
    #[error("Request body of {length} bytes exceeds the limit of {max}")]
    TooLarge { length: usize, max: usize },
    #[error("Internal error: {message}")]
    Internal { message: String },
    /// An error with SV Node's code for it (-22 decode, -25 missing inputs, -26 rejected, -27 in chain…).
    #[error("{message}")]
    Coded { code: i32, message: String },
}

impl RpcError {
    /// The JSON-RPC error code.
    pub fn code(&self) -> i32 {
        match self {
            Self::Parse => -32700,
            Self::InvalidRequest { .. } => -32600,
            Self::MethodNotFound => -32601,
            Self::Usage | Self::Misc { .. } => -1,
            Self::Type { .. } => -3,
            Self::InvalidParameter { .. } => -8,
            Self::InvalidSubnet => -30,
            Self::NotFound { .. } => -5,
            Self::Registry(e) => match e {
                RegistryError::AlreadyAdded { .. } => -23,
                RegistryError::NotAdded { .. } => -24,
                RegistryError::NotConnected => -29,
                RegistryError::ConnectQueueFull => -1,
            },
            Self::Ban(e) => match e {
                BanError::AlreadyBanned { .. } => -23,
                BanError::NotBanned { .. } => -30,
                _ => -1,
            },
            Self::WorkQueueFull | Self::TooLarge { .. } | Self::Internal { .. } => -32603,
            Self::Coded { code, .. } => *code,
        }
    }

    /// HTTP status for a single (non-batch) request failing with this error (SV `httprpc.cpp`).
    fn http_status(&self) -> u16 {
        match self.code() {
            -32600 => 400,
            -32601 => 404,
            _ => 500,
        }
    }
}

/// A BSV amount for a result: printed with 8 decimals like SV Node (`0.00000250`), not as a float.
pub fn amount(satoshis: i64) -> Value {
    let mut m = Map::new();
    m.insert(AMOUNT_KEY.to_owned(), Value::from(satoshis));
    Value::Object(m)
}

/// Serialises `v` compactly, printing [`amount`] markers as fixed-point numbers.
pub fn to_json_string(v: &Value) -> String {
    let mut out = String::new();
    write_json(v, &mut out);
    out
}

fn write_json(v: &Value, out: &mut String) {
    match v {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            if let (1, Some(sats)) = (map.len(), map.get(AMOUNT_KEY).and_then(Value::as_i64)) {
                let sign = if sats < 0 { "-" } else { "" };
                let abs = sats.unsigned_abs();
                let coin = COIN.unsigned_abs();
                out.push_str(&format!("{sign}{}.{:08}", abs / coin, abs % coin));
                return;
            }
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_json(item, out);
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// What handlers can reach. Other modules add their handles here (mempool, chain) as they arrive.
pub struct RpcContext {
    pub config: Arc<Config>,
    pub chain: Arc<crate::chain::ChainState>,
    pub mempool: Arc<crate::mempool::Mempool>,
    pub txs: Arc<crate::mempool::accept::TxPipeline>,
    pub blocks: crate::relay::block_processor::BlockProcessor,
    pub peers: Arc<PeerRegistry>,
    pub bans: Arc<BanList>,
    pub metrics: Arc<Metrics>,
    /// The header tree the relay keeps (read-only here).
    pub headers: crate::relay::SharedHeaders,
    pub started: Instant,
    pub shutdown: ShutdownTrigger,
    /// Our own addresses (`getnetworkinfo.localaddresses`).
    pub local: Arc<crate::peer::local::LocalAddresses>,
}

/// The future a handler returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Value, RpcError>> + Send>>;
type Handler = Arc<dyn Fn(Arc<RpcContext>, Params) -> HandlerFuture + Send + Sync>;

/// One registered method.
pub struct Method {
    pub category: &'static str,
    /// Full help text; its first line is the usage line `help` lists.
    pub help: &'static str,
    handler: Handler,
}

/// Method table. `help` is built in: it needs the table itself.
#[derive(Default)]
pub struct Router {
    methods: BTreeMap<&'static str, Method>,
}

impl Router {
    /// Every method group of the node.
    pub fn standard() -> Self {
        let mut r = Self::default();
        network::register(&mut r);
        blockchain::register(&mut r);
        blocks::register(&mut r);
        mining::register(&mut r);
        mempool::register(&mut r);
        control::register(&mut r);
        r
    }

    /// Registers an async method.
    pub fn register_async<F, Fut>(&mut self, name: &'static str, category: &'static str, help: &'static str, f: F)
    where
        F: Fn(Arc<RpcContext>, Params) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, RpcError>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |ctx, params| Box::pin(f(ctx, params)));
        self.methods.insert(name, Method { category, help, handler });
    }

    /// Registers a method that answers at once from the context.
    pub fn register(
        &mut self,
        name: &'static str,
        category: &'static str,
        help: &'static str,
        f: fn(&RpcContext, &Params) -> Result<Value, RpcError>,
    ) {
        self.register_async(name, category, help, move |ctx, params| {
            let r = f(&ctx, &params);
            std::future::ready(r)
        });
    }

    /// Registers a method that may wait for a chain change to finish (it reads the mempool through
    /// [`crate::mempool::accept::TxPipeline::settled`]): it runs on a blocking thread.
    pub fn register_blocking(
        &mut self,
        name: &'static str,
        category: &'static str,
        help: &'static str,
        f: fn(&RpcContext, &Params) -> Result<Value, RpcError>,
    ) {
        self.register_async(name, category, help, move |ctx, params| async move {
            tokio::task::spawn_blocking(move || f(&ctx, &params))
                .await
                .unwrap_or_else(|e| Err(RpcError::Misc { message: format!("internal error: {e}") }))
        });
    }

    /// The registered name, as a `'static` label for metrics.
    fn label(&self, name: &str) -> &'static str {
        self.methods.get_key_value(name).map_or("unknown", |(k, _)| k)
    }

    /// `help` with no argument: usage lines grouped by category, like SV Node.
    pub fn help_text(&self, command: Option<&str>) -> String {
        if let Some(cmd) = command {
            return match self.methods.get(cmd) {
                Some(m) => m.help.trim_end().to_owned(),
                None => format!("help: unknown command: {cmd}"),
            };
        }
        let mut by_cat: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for m in self.methods.values() {
            by_cat.entry(m.category).or_default().push(m.help.lines().next().unwrap_or(""));
        }
        by_cat.iter().map(|(cat, lines)| format!("== {cat} ==\n{}", lines.join("\n"))).collect::<Vec<_>>().join("\n\n")
    }

    async fn call(&self, ctx: &Arc<RpcContext>, method: &str, params: Params) -> Result<Value, RpcError> {
        let m = self.methods.get(method).ok_or(RpcError::MethodNotFound)?;
        let result = if method == "help" {
            match params.len() {
                0 => Ok(Value::String(self.help_text(None))),
                1 => params.str(0).map(|c| Value::String(self.help_text(Some(c)))),
                _ => Err(RpcError::Usage),
            }
        } else {
            (m.handler)(ctx.clone(), params).await
        };
        result.map_err(|e| match e {
            RpcError::Usage => RpcError::Misc { message: m.help.trim_end().to_owned() },
            e => e,
        })
    }
}

/// Accepted credentials.
#[derive(Clone)]
pub struct Credentials {
    /// `user:password` as Basic auth carries it.
    expected: Vec<u8>,
}

impl Credentials {
    pub fn new(user: &str, password: &str) -> Self {
        Self { expected: format!("{user}:{password}").into_bytes() }
    }

    /// Checks an `Authorization` header value in constant time with respect to the secret.
    fn check(&self, header: Option<&str>) -> bool {
        let Some(b64) = header.and_then(|h| h.strip_prefix("Basic ")) else { return false };
        let Some(given) = base64_decode(b64.trim()) else { return false };
        constant_time_eq(&given, &self.expected)
    }
}

/// Compares without an early exit, so timing reveals at most the length.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (i, x) in b.iter().enumerate() {
        diff |= x ^ a.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let s = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= val(*c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        match chunk.len() {
            4 => out.extend_from_slice(&bytes[1..4]),
            3 => out.extend_from_slice(&bytes[1..3]),
            2 => out.push(bytes[1]),
            _ => return None,
        }
    }
    Some(out)
}

/// The cookie file: `__cookie__:<64 hex>` (SV `rpc/protocol.cpp`), removed when dropped.
pub struct Cookie {
    path: PathBuf,
    pub credentials: Credentials,
}

/// User name bitcoin-cli sends with a cookie.
const COOKIE_USER: &str = "__cookie__";

impl Cookie {
    /// Writes a fresh random cookie to `path`, readable only by the owner.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let secret = hex::encode(rand::random::<[u8; 32]>());
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(format!("{COOKIE_USER}:{secret}").as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(Self { path: path.to_owned(), credentials: Credentials::new(COOKIE_USER, &secret) })
    }
}

impl Drop for Cookie {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            warn!(path = %self.path.display(), error = %e, "cannot remove the RPC cookie file");
        }
    }
}

/// Server settings taken from the config.
pub struct ServerSettings {
    pub credentials: Credentials,
    pub allow: Vec<Subnet>,
    pub work_queue: usize,
    pub idle_timeout: Duration,
    pub max_body: usize,
}

/// Everything a connection task needs.
pub struct Server {
    ctx: Arc<RpcContext>,
    router: Router,
    settings: ServerSettings,
    work: Semaphore,
    auth_log: RateLimiter,
}

impl Server {
    pub fn new(ctx: Arc<RpcContext>, router: Router, settings: ServerSettings) -> Arc<Self> {
        let work = Semaphore::new(settings.work_queue);
        Arc::new(Self { ctx, router, settings, work, auth_log: RateLimiter::per_minute(10) })
    }

    fn allowed(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        ip.is_loopback() || self.settings.allow.iter().any(|s| s.contains(ip))
    }

    /// Accepts connections on `listener` until shutdown.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, mut shutdown: Shutdown) {
        let conns = Arc::new(Semaphore::new(self.settings.work_queue.saturating_mul(CONNECTIONS_PER_WORK_SLOT)));
        loop {
            let permit = tokio::select! {
                p = conns.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
                _ = shutdown.wait() => return,
            };
            let (stream, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => { debug!(error = %e, "rpc accept failed"); continue; }
                },
                _ = shutdown.wait() => return,
            };
            let server = self.clone();
            let conn_shutdown = shutdown.clone();
            tokio::spawn(async move {
                let _permit = permit;
                if let Err(e) = server.connection(stream, peer, conn_shutdown).await {
                    debug!(%peer, error = %e, "rpc connection ended");
                }
            });
        }
    }

    async fn connection(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        mut shutdown: Shutdown,
    ) -> Result<(), http::HttpError> {
        let mut stream = BufReader::new(stream);
        if !self.allowed(peer.ip()) {
            if self.auth_log.allow(Instant::now()) {
                warn!(%peer, "rejected RPC connection from a disallowed address");
            }
            let body = b"Forbidden";
            return http::write_response(stream.get_mut(), 403, "text/plain", &[], body, false).await;
        }
        loop {
            let head = tokio::select! {
                h = tokio::time::timeout(self.settings.idle_timeout, http::read_head(&mut stream, MAX_HEAD_BYTES)) => {
                    match h {
                        Err(_) => return Ok(()),
                        Ok(Ok(None)) => return Ok(()),
                        Ok(Ok(Some(h))) => h,
                        Ok(Err(e)) => {
                            let msg = e.to_string();
                            let status = if matches!(e, http::HttpError::HeadTooLarge { .. }) { 413 } else { 400 };
                            let _ = http::write_response(stream.get_mut(), status, "text/plain", &[], msg.as_bytes(), false).await;
                            return Err(e);
                        }
                    }
                }
                _ = shutdown.wait() => return Ok(()),
            };
            let keep_alive = head.keep_alive;
            let (status, ctype, extra, body): (u16, &str, Vec<(&str, &str)>, Vec<u8>) = if head.method != "POST" {
                (405, "text/plain", vec![], b"JSONRPC server handles only POST requests".to_vec())
            } else if !self.settings.credentials.check(head.header("authorization")) {
                if self.auth_log.allow(Instant::now()) {
                    warn!(%peer, "RPC request with wrong credentials");
                }
                tokio::time::sleep(AUTH_FAILURE_DELAY).await;
                (401, "text/plain", vec![("WWW-Authenticate", "Basic realm=\"jsonrpc\"")], Vec::new())
            } else {
                debug!(%peer, length = head.content_length, "reading RPC request body");
                match http::read_body(&mut stream, &head, self.settings.max_body).await {
                    Ok(body) => {
                        let (status, reply) = self.handle_body(&body).await;
                        (status, "application/json", vec![], reply.into_bytes())
                    }
                    Err(http::HttpError::BodyTooLarge { length, max }) => {
                        let reply = error_reply(&RpcError::TooLarge { length, max }, Value::Null);
                        let body = to_json_string(&reply).into_bytes();
                        // The unread body would be taken for the next request: close after replying.
                        return http::write_response(stream.get_mut(), 413, "application/json", &[], &body, false)
                            .await;
                    }
                    Err(e) => return Err(e),
                }
            };
            let keep = keep_alive && !shutdown.is_triggered();
            http::write_response(stream.get_mut(), status, ctype, &extra, &body, keep).await?;
            if !keep {
                let _ = stream.get_mut().shutdown().await;
                return Ok(());
            }
        }
    }

    /// Handles one HTTP body (a request or a batch); returns the HTTP status and the JSON reply.
    pub async fn handle_body(&self, body: &[u8]) -> (u16, String) {
        let Ok(_permit) = self.work.try_acquire() else {
            let reply = error_reply(&RpcError::WorkQueueFull, Value::Null);
            return (503, to_json_string(&reply));
        };
        let metrics = &self.ctx.metrics;
        metrics.rpc_active_requests.inc();
        let out = match serde_json::from_slice::<Value>(body) {
            Err(_) => (500, error_reply(&RpcError::Parse, Value::Null)),
            Ok(Value::Array(batch)) => {
                let mut replies = Vec::with_capacity(batch.len());
                for req in batch {
                    replies.push(self.handle_request(req).await.1);
                }
                (200, Value::Array(replies))
            }
            Ok(req @ Value::Object(_)) => self.handle_request(req).await,
            Ok(_) => (500, error_reply(&RpcError::Parse, Value::Null)),
        };
        metrics.rpc_active_requests.dec();
        (out.0, to_json_string(&out.1))
    }

    async fn handle_request(&self, req: Value) -> (u16, Value) {
        let Value::Object(mut obj) = req else {
            let e = RpcError::InvalidRequest { reason: "Invalid Request object" };
            return (e.http_status(), error_reply(&e, Value::Null));
        };
        let id = obj.remove("id").unwrap_or(Value::Null);
        let method = match obj.remove("method") {
            Some(Value::String(m)) => m,
            None => {
                let e = RpcError::InvalidRequest { reason: "Missing method" };
                return (e.http_status(), error_reply(&e, id));
            }
            Some(_) => {
                let e = RpcError::InvalidRequest { reason: "Method must be a string" };
                return (e.http_status(), error_reply(&e, id));
            }
        };
        let params = match obj.remove("params") {
            None | Some(Value::Null) => Params::default(),
            Some(Value::Array(a)) => Params::new(a),
            Some(_) => {
                let e = RpcError::InvalidRequest { reason: "Params must be an array" };
                return (e.http_status(), error_reply(&e, id));
            }
        };
        let label = self.router.label(&method);
        let started = Instant::now();
        let result = self.router.call(&self.ctx, &method, params).await;
        let outcome = if result.is_ok() { RpcResult::Ok } else { RpcResult::Error };
        self.ctx.metrics.record_rpc(label, outcome, started.elapsed());
        match result {
            Ok(v) => (200, json!({"result": v, "error": null, "id": id})),
            Err(e) => {
                debug!(method = label, code = e.code(), error = %e, "rpc error");
                (e.http_status(), error_reply(&e, id))
            }
        }
    }
}

fn error_reply(e: &RpcError, id: Value) -> Value {
    json!({"result": null, "error": {"code": e.code(), "message": e.to_string()}, "id": id})
}

/// Binds every `-rpcbind` address; any failure is fatal at start-up (SV Node exits too).
pub async fn bind(addrs: &[SocketAddr]) -> Result<Vec<TcpListener>, (SocketAddr, std::io::Error)> {
    let mut out = Vec::new();
    for a in addrs {
        let l = TcpListener::bind(a).await.map_err(|e| (*a, e))?;
        info!(addr = %a, "RPC server listening");
        out.push(l);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::bans::DEFAULT_BANTIME;

    fn context() -> (Arc<RpcContext>, Shutdown) {
        let config = Config::load(&["-regtest", "-datadir=/"], None).expect("config");
        let (shutdown, _complete) = crate::shutdown::channel();
        let params = crate::chain::Network::Regtest.params();
        let opts = crate::chain::ChainOptions::new();
        let chain = Arc::new(crate::chain::ChainState::in_memory(params, opts));
        let metrics = Arc::new(Metrics::new("regtest", "test").expect("metrics"));
        let mempool = Arc::new(crate::mempool::Mempool::new(Default::default()));
        let sig_cache = Arc::new(crate::script::SigCache::new(1024));
        let (outcomes, _) = tokio::sync::mpsc::channel(16);
        let txs = crate::mempool::accept::TxPipeline::start(
            chain.clone(),
            mempool.clone(),
            sig_cache.clone(),
            outcomes,
            metrics.clone(),
            crate::mempool::accept::PipelineConfig { workers: 1, ..Default::default() },
        );
        let (events, _) = tokio::sync::mpsc::channel(16);
        let blocks = crate::relay::block_processor::BlockProcessor::start(
            chain.clone(),
            sig_cache,
            None,
            events,
            metrics.clone(),
        );
        let ctx = RpcContext {
            config: Arc::new(config),
            chain: chain.clone(),
            mempool,
            txs,
            blocks,
            peers: Arc::new(PeerRegistry::new()),
            bans: Arc::new(BanList::in_memory(DEFAULT_BANTIME)),
            metrics,
            headers: chain.headers().clone(),
            started: Instant::now(),
            shutdown: shutdown.trigger_handle(),
            local: Arc::new(crate::peer::local::LocalAddresses::new(
                18444,
                crate::peer::local::RoutePolicy::TestNetwork,
                &[],
            )),
        };
        (Arc::new(ctx), shutdown)
    }

    fn server(work_queue: usize, router: Router) -> Arc<Server> {
        let settings = ServerSettings {
            credentials: Credentials::new("u", "p"),
            allow: vec![],
            work_queue,
            idle_timeout: Duration::from_secs(30),
            max_body: 1024,
        };
        Server::new(context().0, router, settings)
    }

    #[test]
    fn only_loopback_and_rpcallowip_may_connect() {
        let mut s = server(1, Router::standard());
        Arc::get_mut(&mut s).expect("sole owner").settings.allow = vec!["10.0.0.0/8".parse().expect("subnet")];
        let ip = |t: &str| t.parse::<IpAddr>().expect("ip");
        assert!(s.allowed(ip("127.0.0.1")) && s.allowed(ip("::1")));
        assert!(s.allowed(ip("10.1.2.3")) && s.allowed(ip("::ffff:10.0.0.1")));
        assert!(!s.allowed(ip("192.168.1.1")) && !s.allowed(ip("2001:db8::1")));
    }

    #[test]
    fn amounts_print_with_eight_decimals() {
        let v = json!({"relayfee": amount(250), "neg": amount(-150_000_000), "n": [amount(0), 1.5]});
        assert_eq!(to_json_string(&v), r#"{"n":[0.00000000,1.5],"neg":-1.50000000,"relayfee":0.00000250}"#);
    }

    #[test]
    fn basic_auth_in_constant_time() {
        let c = Credentials::new("user", "pa:ss");
        assert!(c.check(Some("Basic dXNlcjpwYTpzcw==")));
        assert!(!c.check(Some("Basic dXNlcjpwYTpzeA==")));
        assert!(!c.check(Some("Basic dXNlcjpwYTpz")));
        assert!(!c.check(Some("Bearer x")));
        assert!(!c.check(None));
        assert_eq!(base64_decode("YQ"), Some(b"a".to_vec()));
        assert_eq!(base64_decode("YWI="), Some(b"ab".to_vec()));
        assert_eq!(base64_decode("Y"), None);
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abcd", b"abc"));
        assert!(!constant_time_eq(b"ab", b"abc"));
    }

    #[tokio::test]
    async fn envelope_status_codes_and_batches() {
        let s = server(4, Router::standard());
        let (st, body) = s.handle_body(br#"{"method":"uptime","params":[],"id":7}"#).await;
        let v: Value = serde_json::from_str(&body).expect("json");
        assert_eq!((st, v["id"].clone(), v["error"].clone()), (200, json!(7), Value::Null));
        let (st, body) = s.handle_body(br#"{"jsonrpc":"2.0","method":"nope","id":"x"}"#).await;
        assert_eq!(st, 404);
        assert_eq!(body, r#"{"error":{"code":-32601,"message":"Method not found"},"id":"x","result":null}"#);
        assert_eq!(s.handle_body(b"not json").await.0, 500);
        assert_eq!(s.handle_body(br#"{"method":5,"id":1}"#).await.0, 400);
        assert_eq!(s.handle_body(br#"{"method":"uptime","params":{},"id":1}"#).await.0, 400);
        let (st, body) = s.handle_body(br#"[{"method":"uptime","id":1},{"method":"nope","id":2},5]"#).await;
        let v: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(st, 200);
        assert_eq!(v[0]["error"], Value::Null);
        assert_eq!(v[1]["error"]["code"], json!(-32601));
        assert_eq!(v[2]["error"]["code"], json!(-32600));
        let (st, body) = s.handle_body(br#"{"method":"setban","params":["1.2.3.4"],"id":1}"#).await;
        assert_eq!(st, 500);
        assert!(body.contains("\"code\":-1") && body.contains("setban \\\"subnet\\\""), "{body}");
    }

    /// A block being connected holds the mempool still; a reader that arrives meanwhile (and may
    /// already see the block as the tip) answers only afterwards, without the mined transaction.
    #[test]
    fn mempool_readers_wait_for_a_chain_change_in_progress() {
        use crate::mempool::MempoolSync;
        use crate::wire::{OutPoint, Transaction, TxFields, TxIn, TxOut};
        let (ctx, _shutdown) = context();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("rt");
        let prev_out = OutPoint { txid: crate::wire::Hash256::sha256d(b"coin"), vout: 0 };
        let tx = Transaction::from_fields(TxFields {
            version: 1,
            inputs: vec![TxIn { prev_out, script_sig: vec![0x51].into(), sequence: u32::MAX }],
            outputs: vec![TxOut { value: 1000, script_pubkey: vec![0x51].into() }],
            lock_time: 0,
        });
        ctx.mempool.insert(Arc::new(tx.clone()), 100, 1).expect("insert");
        let router = Arc::new(Router::standard());
        let (done, answers) = std::sync::mpsc::channel();
        let mut early = None;
        ctx.txs.exclusive(&mut || {
            for method in ["getrawmempool", "getmempoolinfo"] {
                let (ctx, router, done) = (ctx.clone(), router.clone(), done.clone());
                rt.spawn(async move {
                    let _ = done.send((method, router.call(&ctx, method, Params::new(vec![])).await));
                });
            }
            // A reader ignoring the chain change would answer here, with the transaction in it.
            early = answers.recv_timeout(Duration::from_millis(300)).ok();
            ctx.mempool.remove_for_block(std::slice::from_ref(&tx), 2);
        });
        let mut got: Vec<_> = early.into_iter().collect();
        while got.len() < 2 {
            got.push(answers.recv_timeout(Duration::from_secs(10)).expect("an answer"));
        }
        for (method, answer) in got {
            let v = answer.expect("reader ok");
            match method {
                "getrawmempool" => assert_eq!(v, json!([]), "{method}"),
                _ => assert_eq!(v["size"], json!(0), "{method}: {v}"),
            }
        }
    }

    #[tokio::test]
    async fn work_queue_overflow_is_an_error_not_a_wait() {
        let gate = Arc::new(tokio::sync::Notify::new());
        let mut router = Router::standard();
        let g = gate.clone();
        router.register_async("block", "Test", "block\n", move |_, _| {
            let g = g.clone();
            async move {
                g.notified().await;
                Ok(Value::Null)
            }
        });
        let s = server(1, router);
        let s2 = s.clone();
        let blocked = tokio::spawn(async move { s2.handle_body(br#"{"method":"block","id":1}"#).await });
        let deadline = Instant::now() + Duration::from_secs(10);
        while s.work.available_permits() != 0 {
            assert!(Instant::now() < deadline, "blocked request never started");
            tokio::task::yield_now().await;
        }
        let (st, body) = s.handle_body(br#"{"method":"uptime","id":2}"#).await;
        assert_eq!(st, 503);
        assert!(body.contains("Work queue depth exceeded"));
        gate.notify_one();
        assert_eq!(blocked.await.expect("task").0, 200);
        assert_eq!(s.handle_body(br#"{"method":"uptime","id":3}"#).await.0, 200);
    }
}
