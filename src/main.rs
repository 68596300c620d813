//! The `bsv-relay` binary: parses options, sets up logging and runs the node.
//!
//! Exit status: 0 after a clean shutdown; 1 for an invalid option or config file (reported before any
//! port is opened) and for any start-up failure (data directory locked, port in use).

use std::path::PathBuf;
use std::process::ExitCode;

use bsv_relay::config::{Config, DEBUG_CATEGORIES};
use bsv_relay::{logging, node};

fn usage() -> String {
    format!(
        "bsv-relay {}\n\nUsage: bsv-relay [options]\n\nOptions take SV Node's names, as -name=value or --name=value, \
         and may also be set in <datadir>/bitcoin.conf:\n  \
         -regtest | -testnet | -stn, -datadir=<dir>, -conf=<file>, -port=<n>, -bind=<addr>, -listen,\n  \
         -externalip=<ip>, -discover, -onlynet=<ipv4|ipv6>, -natpmp, -v2transport (BIP324 encryption, on by default),\n  \
         -connect=<ip:port>, -addnode=<ip:port>, -maxconnections=<n>, -maxconnectionsfromaddr=<n>,\n  -maxoutboundconnections=<n>, -whitelist=<ip|cidr>, -banscore=<n>,\n  \
         -bantime=<s>, -p2phandshaketimeout=<s>, -p2ptimeout=<s>, -excessiveblocksize=<bytes>, -maxsendbuffer=<kB>,\n  \
         -minimumchainwork=<hex>, -genesisactivationheight=<n>, -chronicleactivationheight=<n>,\n  \
         -maxchroniclegracefulperiod=<n>, -maxmempool=<MB>, -mempoolexpiry=<hours>, -persistmempool, -maxtxfee=<BSV>,\n  \
         -maxorphantxsize=<MB>, -limitancestorcount=<n>, -maxnonstdtxvalidationduration=<ms>,\n  \
         -txnpropagationfreq=<ms>, -txnvalidationqueuesmaxmemory=<MB>,\n  \
         -dbcache=<MiB> (UTXO cache, default 450), -reindex-chainstate,\n  \
         -server, -rpcport=<n>, -rpcbind=<addr>, -rpcallowip=<ip|cidr>, -rpcuser=<u>, -rpcpassword=<p>,\n  \
         -rpcworkqueue=<n>, -rpcservertimeout=<s>, -debug=<{}>, -printtoconsole,\n  \
         -metricsbind=<addr:port|port>, -peerreputation=0 (debugging: treat all peers alike)\n",
        env!("CARGO_PKG_VERSION"),
        DEBUG_CATEGORIES.join("|")
    )
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("txgen") {
        return ExitCode::from(u8::try_from(bsv_relay::txgen::run(&args[1..])).unwrap_or(1));
    }
    if args.iter().any(|a| matches!(a.as_str(), "-version" | "--version")) {
        println!("bsv-relay version {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|a| matches!(a.as_str(), "-help" | "--help" | "-h" | "-?")) {
        print!("{}", usage());
        return ExitCode::SUCCESS;
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let config = match Config::load(&args, home.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(1);
        }
    };
    let netdir = config.netdir();
    if let Err(e) = std::fs::create_dir_all(&netdir) {
        eprintln!("Error: cannot create data directory {}: {e}", netdir.display());
        return ExitCode::from(1);
    }
    if let Err(e) = logging::init(&config.debug, config.printtoconsole, &netdir.join("debug.log")) {
        eprintln!("Error: {e}");
        return ExitCode::from(1);
    }
    for w in &config.warnings {
        tracing::warn!("{w}");
        if !config.printtoconsole {
            eprintln!("Warning: {w}");
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(node::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("Error: {e}");
            ExitCode::from(1)
        }
    }
}
