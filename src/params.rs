//! Network parameters for main, test, stn and regtest.
//!
//! Its own layer, just above `wire`: script flags, transaction validation and the chain all read
//! activation heights, so the table depends on nothing but `wire` and nothing points back up.
//! (`crate::chain::params` names the same module.)
//!
//! Values are SV Node's (svnode-protocol.md §2; src/chainparams.cpp), each network in one table.
//! The genesis block is rebuilt from its fields and checked by hashing in the tests, so a typo in a
//! constant cannot go unnoticed.

use crate::wire::{Block, BlockHeader, Decodable, Hash256, Transaction};
use std::fmt;
use std::str::FromStr;

/// Which BSV network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Network {
    Main,
    Test,
    Stn,
    Regtest,
}

impl Network {
    pub const ALL: [Network; 4] = [Network::Main, Network::Test, Network::Stn, Network::Regtest];

    /// SV Node's network id (`strNetworkID`), as RPC's `getblockchaininfo.chain` shows it.
    pub const fn name(self) -> &'static str {
        match self {
            Network::Main => "main",
            Network::Test => "test",
            Network::Stn => "stn",
            Network::Regtest => "regtest",
        }
    }

    /// The subfolder of the data directory, as SV Node lays it out (none for main).
    pub const fn data_subdir(self) -> Option<&'static str> {
        match self {
            Network::Main => None,
            Network::Test => Some("testnet3"),
            Network::Stn => Some("stn"),
            Network::Regtest => Some("regtest"),
        }
    }

    pub fn params(self) -> &'static ChainParams {
        match self {
            Network::Main => &MAIN,
            Network::Test => &TEST,
            Network::Stn => &STN,
            Network::Regtest => &REGTEST,
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown network name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown network {0:?} (expected main, test, stn or regtest)")]
pub struct UnknownNetwork(pub String);

impl FromStr for Network {
    type Err = UnknownNetwork;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "main" | "mainnet" => Ok(Network::Main),
            "test" | "testnet" | "testnet3" => Ok(Network::Test),
            "stn" => Ok(Network::Stn),
            "regtest" => Ok(Network::Regtest),
            other => Err(UnknownNetwork(other.to_string())),
        }
    }
}

/// Heights at which consensus rules activate. A rule "at height H" applies to block H and later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activations {
    pub p2sh: u32,
    pub bip34: u32,
    pub bip65: u32,
    pub bip66: u32,
    pub csv: u32,
    /// The August 2017 fork: SIGHASH_FORKID and STRICTENC become mandatory.
    pub uahf: u32,
    /// The November 2017 difficulty adjustment (cw-144), with LOW_S and NULLFAIL.
    pub daa: u32,
    /// First block with the Genesis rules (unbounded script numbers, no sigop limits, no P2SH).
    pub genesis: u32,
    /// First block with the Chronicle rules (SV Node 1.2's `chronicleHeight`; v1.0.13 has none).
    /// Chronicle is an era after Genesis: a height below `genesis` is pre-Genesis whatever this is.
    pub chronicle: u32,
    /// Blocks on either side of `chronicle` in which a transaction that fails only because of the
    /// era is refused without a score (SV Node's `-maxchroniclegracefulperiod`, default
    /// [`DEFAULT_CHRONICLE_GRACE_PERIOD`]): peers a few blocks behind or ahead are not banned.
    pub chronicle_grace: u32,
}

/// SV Node's `DEFAULT_CHRONICLE_GRACEFUL_ACTIVATION_PERIOD` (src/policy/policy.h:133): half a day.
pub const DEFAULT_CHRONICLE_GRACE_PERIOD: u32 = 72;
/// SV Node's `MAX_CHRONICLE_GRACEFUL_ACTIVATION_PERIOD` (src/policy/policy.h:144): about 50 days.
pub const MAX_CHRONICLE_GRACE_PERIOD: u32 = 7200;

/// The consensus eras, in order (SV Node's `ProtocolEra`, src/protocol_era.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProtocolEra {
    PreGenesis,
    PostGenesis,
    PostChronicle,
}

impl ProtocolEra {
    /// The era's name as logs and the README use it.
    pub const fn name(self) -> &'static str {
        match self {
            ProtocolEra::PreGenesis => "pre-Genesis",
            ProtocolEra::PostGenesis => "Genesis",
            ProtocolEra::PostChronicle => "Chronicle",
        }
    }
}

impl Activations {
    /// The era of a block at `height` (SV Node's `GetProtocolEra`, src/protocol_era.cpp: Genesis
    /// first, so a Chronicle height below Genesis takes effect at Genesis).
    pub const fn era(&self, height: u32) -> ProtocolEra {
        if height < self.genesis {
            ProtocolEra::PreGenesis
        } else if height < self.chronicle {
            ProtocolEra::PostGenesis
        } else {
            ProtocolEra::PostChronicle
        }
    }

    /// True if a transaction for the block at `spend_height` is inside the Chronicle grace window,
    /// the open interval (chronicle − grace, chronicle + grace) (SV Node's `InProtocolGracePeriod`).
    pub const fn in_chronicle_grace(&self, spend_height: u32) -> bool {
        let h = spend_height as i64;
        let (a, g) = (self.chronicle as i64, self.chronicle_grace as i64);
        a - g < h && h < a + g
    }
}

/// Everything that differs between networks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainParams {
    pub network: Network,
    /// Message-start bytes, in wire order.
    pub magic: [u8; 4],
    pub default_port: u16,
    pub rpc_port: u16,
    pub genesis_hash: &'static str,
    pub genesis_time: u32,
    pub genesis_bits: u32,
    pub genesis_nonce: u32,
    /// Highest allowed target, in compact form.
    pub pow_limit_bits: u32,
    /// Testnet's rule: a block more than 20 minutes after its parent may use the minimum difficulty.
    pub allow_min_difficulty_blocks: bool,
    /// Regtest: every block has its parent's nBits.
    pub no_retargeting: bool,
    pub target_spacing_secs: u32,
    pub target_timespan_secs: u32,
    pub halving_interval: u32,
    pub activations: Activations,
    /// Blocks a coinbase output must wait before it can be spent (`COINBASE_MATURITY`).
    pub coinbase_maturity: u32,
    /// Known (height, block hash) pairs; a header chain that contradicts one is rejected.
    pub checkpoints: &'static [(u32, &'static str)],
    /// Least cumulative work of a chain we consider synced, as 64 hex digits.
    pub minimum_chain_work: &'static str,
    /// Base58check version byte of P2PKH addresses.
    pub pubkey_address_prefix: u8,
    /// Base58check version byte of P2SH addresses.
    pub script_address_prefix: u8,
    /// Base58check version byte of WIF private keys.
    pub secret_key_prefix: u8,
}

/// The coinbase of every network's genesis block (204 bytes, txid 4a5e1e4b…afdeda33b).
const GENESIS_COINBASE_HEX: &str = "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff4d04ffff001d0104455468652054696d65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e206272696e6b206f66207365636f6e64206261696c6f757420666f722062616e6b73ffffffff0100f2052a01000000434104678afdb0fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c384df7ba0b8d578a4c702b6bf11d5fac00000000";

/// The operator's overrides of a network's era heights (SV Node's `-genesisactivationheight`,
/// `-chronicleactivationheight`, `-maxchroniclegracefulperiod`; allowed on every network, as
/// there).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EraOverrides {
    pub genesis: Option<u32>,
    pub chronicle: Option<u32>,
    pub chronicle_grace: Option<u32>,
}

impl EraOverrides {
    pub const fn is_empty(&self) -> bool {
        self.genesis.is_none() && self.chronicle.is_none() && self.chronicle_grace.is_none()
    }
}

impl ChainParams {
    /// These parameters with the operator's era heights.
    pub fn with_overrides(&self, o: &EraOverrides) -> ChainParams {
        let mut p = self.clone();
        p.activations.genesis = o.genesis.unwrap_or(p.activations.genesis);
        p.activations.chronicle = o.chronicle.unwrap_or(p.activations.chronicle);
        p.activations.chronicle_grace = o.chronicle_grace.unwrap_or(p.activations.chronicle_grace);
        p
    }

    /// The parameters a node runs with: the network's own, or with overrides, which then live for
    /// the rest of the process (the chain state and every validator hold `&'static` parameters;
    /// one small leak per node start, never per block or transaction).
    pub fn for_node(network: Network, o: &EraOverrides) -> &'static ChainParams {
        if o.is_empty() {
            network.params()
        } else {
            Box::leak(Box::new(network.params().with_overrides(o)))
        }
    }

    /// The genesis block, built from its fields.
    pub fn genesis_block(&self) -> Block {
        let raw = hex::decode(GENESIS_COINBASE_HEX).expect("the genesis coinbase constant is valid hex");
        let coinbase = Transaction::from_slice(&raw).expect("the genesis coinbase constant is a valid transaction");
        let header = BlockHeader {
            version: 1,
            prev_block: Hash256::ZERO,
            merkle_root: coinbase.txid(),
            time: self.genesis_time,
            bits: self.genesis_bits,
            nonce: self.genesis_nonce,
        };
        Block::new(header, vec![coinbase])
    }

    pub fn genesis_hash(&self) -> Hash256 {
        self.genesis_hash.parse().expect("genesis hash constants are valid")
    }

    /// Block subsidy at `height` in satoshis: 50 BSV halved every `halving_interval` blocks.
    pub fn subsidy(&self, height: u32) -> i64 {
        let halvings = height / self.halving_interval;
        if halvings >= 64 {
            return 0;
        }
        (50 * COIN) >> halvings
    }
}

/// Satoshis per coin.
pub const COIN: i64 = 100_000_000;

/// Coinbase maturity on every network (src/consensus/consensus.h:75).
const COINBASE_MATURITY: u32 = 100;
/// Ten minutes between blocks, retarget over two weeks: unchanged since Bitcoin 0.1.
const SPACING: u32 = 600;
const TIMESPAN: u32 = 14 * 24 * 60 * 60;
/// A height no chain reaches: rules "never active" on a network.
const NEVER: u32 = 100_000_000;

pub static MAIN: ChainParams = ChainParams {
    network: Network::Main,
    magic: [0xe3, 0xe1, 0xf3, 0xe8],
    default_port: 8333,
    rpc_port: 8332,
    genesis_hash: "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
    genesis_time: 1_231_006_505,
    genesis_bits: 0x1d00ffff,
    genesis_nonce: 2_083_236_893,
    pow_limit_bits: 0x1d00ffff,
    allow_min_difficulty_blocks: false,
    no_retargeting: false,
    target_spacing_secs: SPACING,
    target_timespan_secs: TIMESPAN,
    halving_interval: 210_000,
    activations: Activations {
        p2sh: 173_805,
        bip34: 227_931,
        bip65: 388_381,
        bip66: 363_725,
        csv: 419_328,
        uahf: 478_558,
        daa: 504_031,
        genesis: 620_538,
        chronicle: 943_816,
        chronicle_grace: DEFAULT_CHRONICLE_GRACE_PERIOD,
    },
    coinbase_maturity: COINBASE_MATURITY,
    checkpoints: &[
        (11111, "0000000069e244f73d78e8fd29ba2fd2ed618bd6fa2ee92559f542fdb26e7c1d"),
        (33333, "000000002dd5588a74784eaa7ab0507a18ad16a236e7b1ce69f00d7ddfb5d0a6"),
        (74000, "0000000000573993a3c9e41ce34471c079dcf5f52a0e824a81e7f953b8661a20"),
        (105000, "00000000000291ce28027faea320c8d2b054b2e0fe44a773f3eefb151d6bdc97"),
        (134444, "00000000000005b12ffd4cd315cd34ffd4a594f430ac814c91184a0d42d2b0fe"),
        (168000, "000000000000099e61ea72015e79632f216fe6cb33d7899acb35b75c8303b763"),
        (193000, "000000000000059f452a5f7340de6682a977387c17010ff6e6c3bd83ca8b1317"),
        (210000, "000000000000048b95347e83192f69cf0366076336c639f9b7228e9ba171342e"),
        (216116, "00000000000001b4f4b433e81ee46494af945cf96014816a4e2370f11b23df4e"),
        (225430, "00000000000001c108384350f74090433e7fcf79a606b8e797f065b130575932"),
        (250000, "000000000000003887df1f29024b06fc2200b55f8af8f35453d7be294df2d214"),
        (279000, "0000000000000001ae8c72a0b0c301f67e3afca10e819efa9041e458e9bd7e40"),
        (295000, "00000000000000004d9b4ef50f0f9d686fd69db2e03af35a100370c64632a983"),
        (478558, "0000000000000000011865af4122fe3b144e2cbeea86142e8ff2fb4107352d43"),
        (504031, "0000000000000000011ebf65b60d0a3de80b8175be709d653b4c1a1beeb6ab9c"),
        (530359, "0000000000000000011ada8bd08f46074f44a8f155396f43e38acf9501c49103"),
    ],
    minimum_chain_work: "000000000000000000000000000000000000000000a0f3064330647e2f6c4828",
    pubkey_address_prefix: 0,
    script_address_prefix: 5,
    secret_key_prefix: 128,
};

pub static TEST: ChainParams = ChainParams {
    network: Network::Test,
    magic: [0xf4, 0xe5, 0xf3, 0xf4],
    default_port: 18333,
    rpc_port: 18332,
    genesis_hash: "000000000933ea01ad0ee984209779baaec3ced90fa3f408719526f8d77f4943",
    genesis_time: 1_296_688_602,
    genesis_bits: 0x1d00ffff,
    genesis_nonce: 414_098_458,
    pow_limit_bits: 0x1d00ffff,
    allow_min_difficulty_blocks: true,
    no_retargeting: false,
    target_spacing_secs: SPACING,
    target_timespan_secs: TIMESPAN,
    halving_interval: 210_000,
    activations: Activations {
        p2sh: 519,
        bip34: 21_111,
        bip65: 581_885,
        bip66: 330_776,
        csv: 770_112,
        uahf: 1_155_875,
        daa: 1_188_697,
        genesis: 1_344_302,
        chronicle: 1_713_168,
        chronicle_grace: DEFAULT_CHRONICLE_GRACE_PERIOD,
    },
    coinbase_maturity: COINBASE_MATURITY,
    checkpoints: &[
        (546, "000000002a936ca763904c3c35fce2f3556c559c0214345d31b1bcebf76acb70"),
        (1155875, "00000000f17c850672894b9a75b63a1e72830bbd5f4c8889b5c1a80e7faef138"),
        (1188697, "0000000000170ed0918077bde7b4d36cc4c91be69fa09211f748240dabe047fb"),
    ],
    minimum_chain_work: "00000000000000000000000000000000000000000000002a650f6ff7649485da",
    pubkey_address_prefix: 111,
    script_address_prefix: 196,
    secret_key_prefix: 239,
};

/// The scaling test network. It has been reset several times; only its genesis is pinned here.
pub static STN: ChainParams = ChainParams {
    network: Network::Stn,
    magic: [0xfb, 0xce, 0xc4, 0xf9],
    default_port: 9333,
    rpc_port: 9332,
    genesis_hash: "000000000933ea01ad0ee984209779baaec3ced90fa3f408719526f8d77f4943",
    genesis_time: 1_296_688_602,
    genesis_bits: 0x1d00ffff,
    genesis_nonce: 414_098_458,
    pow_limit_bits: 0x1d00ffff,
    allow_min_difficulty_blocks: false,
    no_retargeting: false,
    target_spacing_secs: SPACING,
    target_timespan_secs: TIMESPAN,
    halving_interval: 210_000,
    // SV Node leaves BIP65/66/CSV unassigned (zero) on STN: active from the start.
    activations: Activations {
        p2sh: 1,
        bip34: NEVER,
        bip65: 0,
        bip66: 0,
        csv: 0,
        uahf: 15,
        daa: 2200,
        genesis: 100,
        chronicle: 250,
        chronicle_grace: DEFAULT_CHRONICLE_GRACE_PERIOD,
    },
    coinbase_maturity: COINBASE_MATURITY,
    checkpoints: &[(0, "000000000933ea01ad0ee984209779baaec3ced90fa3f408719526f8d77f4943")],
    minimum_chain_work: "0000000000000000000000000000000000000000000000000000000000000000",
    pubkey_address_prefix: 111,
    script_address_prefix: 196,
    secret_key_prefix: 239,
};

pub static REGTEST: ChainParams = ChainParams {
    network: Network::Regtest,
    magic: [0xda, 0xb5, 0xbf, 0xfa],
    default_port: 18444,
    rpc_port: 18332,
    genesis_hash: "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206",
    genesis_time: 1_296_688_602,
    genesis_bits: 0x207fffff,
    genesis_nonce: 2,
    pow_limit_bits: 0x207fffff,
    allow_min_difficulty_blocks: true,
    no_retargeting: true,
    target_spacing_secs: SPACING,
    target_timespan_secs: TIMESPAN,
    halving_interval: 150,
    activations: Activations {
        p2sh: 1,
        bip34: NEVER,
        bip65: 1351,
        bip66: 1251,
        csv: 576,
        uahf: 0,
        daa: 0,
        genesis: 10_000,
        chronicle: 15_000,
        chronicle_grace: DEFAULT_CHRONICLE_GRACE_PERIOD,
    },
    coinbase_maturity: COINBASE_MATURITY,
    checkpoints: &[(0, "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206")],
    minimum_chain_work: "0000000000000000000000000000000000000000000000000000000000000000",
    pubkey_address_prefix: 111,
    script_address_prefix: 196,
    secret_key_prefix: 239,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Encodable;

    #[test]
    fn every_genesis_block_hashes_to_its_constant() {
        for net in Network::ALL {
            let p = net.params();
            let genesis = p.genesis_block();
            assert_eq!(genesis.hash(), p.genesis_hash(), "{net}");
            assert_eq!(genesis.hash(), genesis.header.hash());
            assert_eq!(
                genesis.header.merkle_root.to_string(),
                "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"
            );
            assert_eq!(genesis.transactions[0].size(), 204);
        }
    }

    #[test]
    fn regtest_genesis_header_bytes_match_sv_node() {
        let header = REGTEST.genesis_block().header.to_bytes();
        assert_eq!(
            hex::encode(header),
            "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4adae5494dffff7f2002000000"
        );
    }

    #[test]
    fn checkpoints_parse_and_are_ascending() {
        for net in Network::ALL {
            let cps = net.params().checkpoints;
            for w in cps.windows(2) {
                assert!(w[0].0 < w[1].0, "{net}");
            }
            for (_, h) in cps {
                assert!(h.parse::<Hash256>().is_ok());
            }
            assert_eq!(net.params().minimum_chain_work.len(), 64);
        }
        assert_eq!(REGTEST.checkpoints[0].1, REGTEST.genesis_hash);
    }

    #[test]
    fn subsidy_halves_on_schedule() {
        assert_eq!(REGTEST.subsidy(0), 50 * COIN);
        assert_eq!(REGTEST.subsidy(149), 50 * COIN);
        assert_eq!(REGTEST.subsidy(150), 25 * COIN);
        assert_eq!(MAIN.subsidy(210_000 * 64), 0);
    }

    /// The era heights of SV Node v1.2.2's src/chainparams.cpp (`CHRONICLE_ACTIVATION_MAIN` 943816,
    /// `_STN` 250, `_TESTNET` 1713168, `_REGTEST` 15000, lines 23-26; Genesis from the same file).
    #[test]
    fn era_heights_are_svnode_1_2_2s() {
        let heights = |n: Network| (n.params().activations.genesis, n.params().activations.chronicle);
        assert_eq!(heights(Network::Main), (620_538, 943_816));
        assert_eq!(heights(Network::Test), (1_344_302, 1_713_168));
        assert_eq!(heights(Network::Stn), (100, 250));
        assert_eq!(heights(Network::Regtest), (10_000, 15_000));
        for n in Network::ALL {
            assert_eq!(n.params().activations.chronicle_grace, 72, "{n}");
        }
    }

    #[test]
    fn eras_and_the_grace_window() {
        let a = MAIN.activations;
        assert_eq!(a.era(620_537), ProtocolEra::PreGenesis);
        assert_eq!(a.era(620_538), ProtocolEra::PostGenesis);
        assert_eq!(a.era(943_815), ProtocolEra::PostGenesis);
        assert_eq!(a.era(943_816), ProtocolEra::PostChronicle);
        // The window is open at both ends: 72 blocks either side, exclusive.
        assert!(!a.in_chronicle_grace(943_816 - 72));
        assert!(a.in_chronicle_grace(943_816 - 71));
        assert!(a.in_chronicle_grace(943_816 + 71));
        assert!(!a.in_chronicle_grace(943_816 + 72));
        // A Chronicle height below Genesis takes effect at Genesis, as SV Node's GetProtocolEra.
        let o = EraOverrides { genesis: Some(200), chronicle: Some(100), chronicle_grace: Some(0) };
        let p = REGTEST.with_overrides(&o);
        assert_eq!(p.activations.era(150), ProtocolEra::PreGenesis);
        assert_eq!(p.activations.era(200), ProtocolEra::PostChronicle);
        assert!(!p.activations.in_chronicle_grace(100), "no window with a grace period of 0");
        assert!(std::ptr::eq(ChainParams::for_node(Network::Regtest, &EraOverrides::default()), &REGTEST));
    }

    #[test]
    fn network_names_round_trip() {
        for net in Network::ALL {
            assert_eq!(net.name().parse::<Network>().unwrap(), net);
        }
        assert!("bch".parse::<Network>().is_err());
    }
}
