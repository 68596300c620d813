//! Logging: `tracing` set up from `-debug=<category>` and `-printtoconsole`, and a rate limiter for log
//! lines a remote party can trigger at will.
//!
//! Levels: `info` and above always; `debug` for the modules of each category named by `-debug` (all of
//! this crate for `-debug=1`). `RUST_LOG`, when set, replaces the computed filter. Output goes to stderr
//! with `-printtoconsole`, otherwise to `<netdir>/debug.log` (SV Node's file name).

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use thiserror::Error;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Error)]
pub enum LoggingError {
    #[error("cannot open log file {path}: {source}")]
    Open { path: std::path::PathBuf, source: std::io::Error },
    #[error("invalid log filter {filter:?}: {reason}")]
    Filter { filter: String, reason: String },
    #[error("a global logger is already installed")]
    AlreadyInstalled,
}

/// The crate modules each `-debug` category turns to debug level.
fn category_targets(category: &str) -> &'static [&'static str] {
    match category {
        "net" => &["bsv_relay::peer", "bsv_relay::wire", "bsv_relay::relay"],
        "rpc" | "http" => &["bsv_relay::rpc"],
        "mempool" => &["bsv_relay::mempool"],
        "validation" | "bench" => &["bsv_relay::chain", "bsv_relay::script"],
        "metrics" => &["bsv_relay::metrics"],
        "all" => &["bsv_relay"],
        _ => &[],
    }
}

/// The `EnvFilter` directives for the given categories.
pub fn filter_directives(categories: &[String]) -> String {
    let mut parts = vec!["info".to_owned()];
    for c in categories {
        for t in category_targets(c) {
            parts.push(format!("{t}=debug"));
        }
    }
    parts.join(",")
}

/// Installs the global subscriber. Called once, by `main`.
pub fn init(categories: &[String], printtoconsole: bool, log_file: &Path) -> Result<(), LoggingError> {
    let directives = std::env::var("RUST_LOG").unwrap_or_else(|_| filter_directives(categories));
    let filter = EnvFilter::try_new(&directives)
        .map_err(|e| LoggingError::Filter { filter: directives.clone(), reason: e.to_string() })?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = if printtoconsole {
        builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).with_writer(std::io::stderr).try_init()
    } else {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_file)
            .map_err(|source| LoggingError::Open { path: log_file.to_owned(), source })?;
        builder.with_ansi(false).with_writer(Mutex::new(file)).try_init()
    };
    result.map_err(|_| LoggingError::AlreadyInstalled)
}

/// Allows at most `max` events per `window`; the caller passes `now`, so tests use a fake clock.
///
/// Use it for log lines a peer or client can trigger repeatedly:
/// `if limiter.allow(Instant::now()) { warn!(...) }`.
#[derive(Debug)]
pub struct RateLimiter {
    window: Duration,
    max: u32,
    state: Mutex<WindowState>,
}

#[derive(Debug)]
struct WindowState {
    start: Option<Instant>,
    count: u32,
    suppressed: u64,
}

impl RateLimiter {
    pub fn new(max: u32, window: Duration) -> Self {
        Self { window, max, state: Mutex::new(WindowState { start: None, count: 0, suppressed: 0 }) }
    }

    /// `max` events per minute.
    pub fn per_minute(max: u32) -> Self {
        Self::new(max, Duration::from_secs(60))
    }

    /// Whether an event at `now` may be logged.
    pub fn allow(&self, now: Instant) -> bool {
        self.check(now).is_some()
    }

    /// Like [`allow`](Self::allow), also returning how many events were suppressed since the last one
    /// allowed, so the caller can mention them.
    pub fn check(&self, now: Instant) -> Option<u64> {
        // The state is two counters; a panic elsewhere cannot leave them unusable.
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.start.is_none_or(|start| now.saturating_duration_since(start) >= self.window) {
            s.start = Some(now);
            s.count = 0;
        }
        if s.count < self.max {
            s.count += 1;
            Some(std::mem::take(&mut s.suppressed))
        } else {
            s.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_with_a_fake_clock() {
        let l = RateLimiter::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(l.check(t0), Some(0));
        assert_eq!(l.check(t0 + Duration::from_secs(1)), Some(0));
        assert_eq!(l.check(t0 + Duration::from_secs(2)), None);
        assert_eq!(l.check(t0 + Duration::from_secs(9)), None);
        assert_eq!(l.check(t0 + Duration::from_secs(10)), Some(2));
        assert!(l.allow(t0 + Duration::from_secs(11)));
        assert!(!l.allow(t0 + Duration::from_secs(12)));
    }

    #[test]
    fn debug_categories_map_to_modules() {
        assert_eq!(filter_directives(&[]), "info");
        let d = filter_directives(&["net".into(), "rpc".into()]);
        assert!(d.contains("bsv_relay::peer=debug") && d.contains("bsv_relay::rpc=debug"));
        assert_eq!(filter_directives(&["all".into()]), "info,bsv_relay=debug");
        assert!(EnvFilter::try_new(filter_directives(&["net".into()])).is_ok());
    }
}
