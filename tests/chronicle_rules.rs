//! Chronicle's rules as the node applies them, around a regtest activation height set the way an
//! operator sets it (`-genesisactivationheight=10 -chronicleactivationheight=130`): three
//! transactions that only Chronicle makes valid — an original-digest signature with the CHRONICLE
//! bit, a restored opcode, a high-S signature in a version-2 transaction (a removed malleability
//! rule) — are refused before the height with SV Node 1.2.2's reasons and scores, accepted after
//! it, by the mempool and by block validation alike; inside the grace window the refusals are
//! SV Node's unscored `flexible-`/`chronicle-` ones; standardness follows the era.

mod common;

use bsv_relay::params::{ChainParams, EraOverrides, Network};
use bsv_relay::validation::{
    validate_transaction, Coin, InputVerifier, MapCoinView, RejectKind, ScriptVerifier, TxContext, TxReject,
};
use bsv_relay::wallet::{push_all, Key, SIGHASH_ALL_FORKID};
use bsv_relay::wire::{Hash256, OutPoint, Transaction, TxFields, TxIn, TxOut};
use bytes::Bytes;
use common::funds::high_s;

const GENESIS: u32 = 10;
const CHRONICLE: u32 = 130;
/// ALL | FORKID | CHRONICLE: Chronicle's original-digest signature ("OTDA").
const SIGHASH_ALL_FORKID_CHRONICLE: u32 = 0x61;
/// `OP_2MUL OP_4 OP_EQUAL`, spent by `OP_2`: OP_2MUL is one of Chronicle's restored opcodes.
const RESTORED_OPCODE_SCRIPT: [u8; 3] = [0x8d, 0x54, 0x87];
const OP_2: u8 = 0x52;
const OP_NOP: u8 = 0x61;

fn params(grace: u32) -> ChainParams {
    Network::Regtest.params().with_overrides(&EraOverrides {
        genesis: Some(GENESIS),
        chronicle: Some(CHRONICLE),
        chronicle_grace: Some(grace),
    })
}

fn key() -> Key {
    Key::from_seed(b"chronicle rules")
}

fn outpoint(n: u8) -> OutPoint {
    OutPoint { txid: Hash256([n; 32]), vout: 0 }
}

/// A view whose tip is `tip` (the transaction is for block `tip + 1`), holding one coin of
/// `script` created at `coin_height`.
fn view(tip: u32, coin_height: u32, script: &[u8]) -> MapCoinView {
    let mut v = MapCoinView { height: tip, mtp: 1_600_000_000, ..Default::default() };
    let coin =
        Coin { value: 10_000, script_pubkey: Bytes::copy_from_slice(script), height: coin_height, is_coinbase: false };
    v.coins.insert(outpoint(1), coin);
    v
}

fn spend_fields(version: i32) -> TxFields {
    TxFields {
        version,
        inputs: vec![TxIn { prev_out: outpoint(1), script_sig: Bytes::new(), sequence: u32::MAX }],
        outputs: vec![TxOut { value: 9_000, script_pubkey: Bytes::from(key().p2pkh_script()) }],
        lock_time: 0,
    }
}

fn signed(mut fields: TxFields, sig: impl FnOnce(&TxFields) -> Vec<u8>) -> Transaction {
    let s = sig(&fields);
    fields.inputs[0].script_sig = Bytes::from(push_all(&[&s, &key().pubkey()]));
    Transaction::from_fields(fields)
}

/// The three transactions, each with the coin script it spends.
fn chronicle_only() -> [(&'static str, Transaction, Vec<u8>); 3] {
    let k = key();
    let p2pkh = k.p2pkh_script();
    let otda = signed(spend_fields(1), |f| k.sign_original(f, 0, &p2pkh, SIGHASH_ALL_FORKID_CHRONICLE));
    let mut restored = spend_fields(1);
    restored.inputs[0].script_sig = Bytes::from_static(&[OP_2]);
    let high_s_v2 = signed(spend_fields(2), |f| high_s(&k.sign(f, 0, &p2pkh, 10_000, SIGHASH_ALL_FORKID)));
    [
        ("otda", otda, p2pkh.clone()),
        ("restored opcode", Transaction::from_fields(restored), RESTORED_OPCODE_SCRIPT.to_vec()),
        ("high-S version 2", high_s_v2, p2pkh),
    ]
}

/// SV Node 1.2.2's refusal of each of [`chronicle_only`] before Chronicle, outside the window.
const REFUSED_BEFORE: [&str; 3] = [
    "mandatory-script-verify-flag-failed (Illegal use of SIGHASH_CHRONICLE)",
    "mandatory-script-verify-flag-failed (Attempted to use a disabled opcode)",
    "mandatory-script-verify-flag-failed (Non-canonical signature: S value is unnecessarily high)",
];

fn validate(p: &ChainParams, tx: &Transaction, v: &MapCoinView) -> Result<(), TxReject> {
    validate_transaction(tx, v, &TxContext::new(p)).map(|_| ())
}

#[test]
fn refused_before_chronicle_and_accepted_from_it() {
    let p = params(0);
    for ((what, tx, script), reason) in chronicle_only().iter().zip(REFUSED_BEFORE) {
        // For block CHRONICLE - 1, the coin a few blocks older.
        let err = validate(&p, tx, &view(CHRONICLE - 2, CHRONICLE - 5, script)).unwrap_err();
        assert_eq!((err.reason.as_str(), err.score, err.kind), (reason, 100, RejectKind::Consensus), "{what}");
        // For block CHRONICLE, the coin created at CHRONICLE (restored opcodes are the UTXO's era).
        assert_eq!(validate(&p, tx, &view(CHRONICLE - 1, CHRONICLE, script)), Ok(()), "{what}");
    }
}

#[test]
fn the_utxo_era_decides_the_opcodes_and_version_1_keeps_the_malleability_rules() {
    let p = params(0);
    let [_, (_, restored, script), _] = chronicle_only();
    // A restored opcode in a coin created before Chronicle stays disabled after it.
    let err = validate(&p, &restored, &view(CHRONICLE + 10, CHRONICLE - 5, &script)).unwrap_err();
    assert_eq!(err.reason, REFUSED_BEFORE[1]);
    // High-S is relaxed only for versions above 1.
    let k = key();
    let v1 = signed(spend_fields(1), |f| high_s(&k.sign(f, 0, &k.p2pkh_script(), 10_000, SIGHASH_ALL_FORKID)));
    let err = validate(&p, &v1, &view(CHRONICLE + 10, CHRONICLE, &k.p2pkh_script())).unwrap_err();
    assert_eq!((err.reason.as_str(), err.score), (REFUSED_BEFORE[2], 100));
}

#[test]
fn inside_the_grace_window_era_failures_are_not_scored() {
    let p = params(5);
    let expected = [
        // TxnValidation's second look with the other era's flags (CHRONICLE on) passes.
        "flexible-mandatory-script-verify-flag-failed (Illegal use of SIGHASH_CHRONICLE)",
        // CheckInputs' second look with the coin's other era passes.
        "chronicle-script-verify-flag-failed (Attempted to use a disabled opcode)",
        "flexible-mandatory-script-verify-flag-failed (Non-canonical signature: S value is unnecessarily high)",
    ];
    for ((what, tx, script), reason) in chronicle_only().iter().zip(expected) {
        let err = validate(&p, tx, &view(CHRONICLE - 2, CHRONICLE - 5, script)).unwrap_err();
        assert_eq!((err.reason.as_str(), err.score, err.kind), (reason, 0, RejectKind::Policy), "{what}");
    }
    // Just outside the window (grace 5: heights 126..=134 are in it), the full score again.
    let [(_, otda, script), ..] = chronicle_only();
    let err = validate(&p, &otda, &view(CHRONICLE - 6, CHRONICLE - 10, &script)).unwrap_err();
    assert_eq!((err.reason.as_str(), err.score), (REFUSED_BEFORE[0], 100));
    // A failure in both eras is not excused: a bad signature in the window.
    let k = key();
    let bad = signed(spend_fields(1), |f| k.sign(f, 0, &k.p2pkh_script(), 9_999, SIGHASH_ALL_FORKID));
    let err = validate(&p, &bad, &view(CHRONICLE - 1, CHRONICLE - 5, &k.p2pkh_script())).unwrap_err();
    assert_eq!(err.score, 100, "{}", err.reason);
    assert!(err.reason.starts_with("mandatory-script-verify-flag-failed"), "{}", err.reason);
}

#[test]
fn blocks_carry_them_only_from_chronicle() {
    let p = params(0);
    let verifier = ScriptVerifier { ctx: TxContext::new(&p) };
    for (what, tx, script) in chronicle_only() {
        let coin =
            |height| Coin { value: 10_000, script_pubkey: Bytes::from(script.clone()), height, is_coinbase: false };
        assert!(verifier.verify(&tx, 0, &coin(CHRONICLE - 5), CHRONICLE - 1).is_err(), "{what}");
        assert_eq!(verifier.verify(&tx, 0, &coin(CHRONICLE), CHRONICLE), Ok(()), "{what}");
    }
}

#[test]
fn standardness_follows_the_era() {
    let p = params(0);
    let k = key();
    let mut ctx = TxContext::new(&p);
    ctx.require_standard = true;
    let check = |tx: &Transaction, tip: u32| validate_transaction(tx, &view(tip, GENESIS + 1, &k.p2pkh_script()), &ctx);
    // Version 3: non-standard before Chronicle (policy, no score), standard after.
    let v3 = signed(spend_fields(3), |f| k.sign(f, 0, &k.p2pkh_script(), 10_000, SIGHASH_ALL_FORKID));
    let err = check(&v3, CHRONICLE - 2).unwrap_err();
    assert_eq!((err.reason.as_str(), err.score, err.kind), ("version", 0, RejectKind::Policy));
    assert!(check(&v3, CHRONICLE - 1).is_ok());
    // A scriptSig that is not push-only: non-standard before; a version-2 one is valid after.
    let mut fields = spend_fields(2);
    let sig = k.sign(&fields, 0, &k.p2pkh_script(), 10_000, SIGHASH_ALL_FORKID);
    fields.inputs[0].script_sig = Bytes::from([vec![OP_NOP], push_all(&[&sig, &k.pubkey()])].concat());
    let not_push_only = Transaction::from_fields(fields);
    let err = check(&not_push_only, CHRONICLE - 2).unwrap_err();
    assert_eq!((err.reason.as_str(), err.score), ("scriptsig-not-pushonly", 0));
    assert!(check(&not_push_only, CHRONICLE - 1).is_ok());
}
