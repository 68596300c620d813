//! SV Node's own script and transaction vectors (`src/test/data/` of bitcoin-sv v1.0.13 and
//! v1.2.2, copied into `tests/data/vectors/`), run the way SV Node's unit tests run them.
//!
//! Both versions must pass in full, with one known difference: v1.2.2 defines a hash type with
//! the SIGHASH_CHRONICLE bit (0x20) in every era and refuses it before Chronicle as
//! ILLEGAL_CHRONICLE, where v1.0.13 calls it SIG_HASHTYPE; v1.2.2 rewrote the two v1.0.13 rows
//! that used 0x21, and they are checked here to give v1.2.2's answer.
//!
//! The era flags are the node's own: a row's UTXO era (UTXO_AFTER_GENESIS, UTXO_AFTER_CHRONICLE)
//! is turned into the first mainnet height of that era and the flags come from `utxo_flags` of
//! the network parameters; the sighash vectors' "regular" digest is computed with the flags
//! `flags_for_height` gives a mainnet block at the Chronicle height (v1.2.2) or just below it
//! (v1.0.13). A mistake in the parameters or the flag selection fails here.

use bytes::Bytes;
use serde_json::Value;

use bsv_relay::params::Network;
use bsv_relay::script::asm;
use bsv_relay::script::sighash::{signature_hash, signature_hash_original, SigHashCache};
use bsv_relay::script::{
    flags_for_height, utxo_flags, verify_script, ActivationHeights, ScriptFlags, SigHashCache as Cache,
    TxSignatureChecker,
};
use bsv_relay::validation::check_transaction;
use bsv_relay::wire::{Decodable, Hash256, OutPoint, Reader, Transaction, TxFields, TxIn, TxOut};

const V1_0_13: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/vectors/svnode-1.0.13/");
const V1_2_2: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/vectors/svnode-1.2.2/");

fn load(dir: &str, file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(format!("{dir}{file}")).expect("vector file present");
    match serde_json::from_str(&text).expect("vector file is JSON") {
        Value::Array(rows) => rows,
        _ => panic!("{file}: top level is not an array"),
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("expected a string, got {v}"))
}

/// SV Node's `BuildCreditingTransaction` + `BuildSpendingTransaction`.
fn spending_tx(script_sig: &[u8], script_pubkey: &[u8], amount: i64, version: i32) -> Transaction {
    let credit = Transaction::from_fields(TxFields {
        version: 1,
        inputs: vec![TxIn { prev_out: OutPoint::NULL, script_sig: Bytes::from_static(&[0, 0]), sequence: u32::MAX }],
        outputs: vec![TxOut { value: amount, script_pubkey: Bytes::copy_from_slice(script_pubkey) }],
        lock_time: 0,
    });
    Transaction::from_fields(TxFields {
        version,
        inputs: vec![TxIn {
            prev_out: OutPoint { txid: credit.txid(), vout: 0 },
            script_sig: Bytes::copy_from_slice(script_sig),
            sequence: u32::MAX,
        }],
        outputs: vec![TxOut { value: amount, script_pubkey: Bytes::new() }],
        lock_time: 0,
    })
}

/// Outcome of one script_tests.json file: (passed, total, failure descriptions).
fn run_script_tests(dir: &str, has_version: bool) -> (usize, usize, Vec<String>) {
    let (mut passed, mut total, mut failures) = (0, 0, Vec::new());
    for row in load(dir, "script_tests.json") {
        let row = row.as_array().expect("rows are arrays");
        if row.len() <= 1 {
            continue;
        }
        let mut pos = 0;
        let mut amount = 0i64;
        if let Some(a) = row[0].as_array() {
            let coins = a.last().and_then(Value::as_f64).expect("amount is a number");
            amount = (coins * 1e8).round() as i64;
            pos = 1;
        }
        let mut version = 1;
        if has_version {
            version = s(&row[pos]).parse().expect("txn version");
            pos += 1;
        }
        total += 1;
        let (sig_text, pk_text, flag_text, expected) =
            (s(&row[pos]), s(&row[pos + 1]), s(&row[pos + 2]), s(&row[pos + 3]));
        let outcome = (|| -> Result<&'static str, String> {
            let script_sig = asm::parse(sig_text).map_err(|e| e.to_string())?;
            let script_pubkey = asm::parse(pk_text).map_err(|e| e.to_string())?;
            let mut flags = with_node_utxo_era(ScriptFlags::parse(flag_text).map_err(|e| e.to_string())?);
            if flags.contains(ScriptFlags::CLEANSTACK) {
                flags |= ScriptFlags::P2SH;
            }
            let tx = spending_tx(&script_sig, &script_pubkey, amount, version);
            let cache = SigHashCache::new();
            let checker = TxSignatureChecker::new(&tx, 0, amount, &cache);
            Ok(match verify_script(&script_sig, &script_pubkey, flags, &checker) {
                Ok(()) => "OK",
                Err(e) => e.name(),
            })
        })();
        match outcome {
            Ok(got) if got == expected => passed += 1,
            Ok(got) => failures.push(format!("got {got}, expected {expected}: {}", Value::Array(row.clone()))),
            Err(e) => failures.push(format!("{e}: {}", Value::Array(row.clone()))),
        }
    }
    (passed, total, failures)
}

/// Mainnet's heights, from the node's parameters.
fn main_heights() -> ActivationHeights {
    ActivationHeights::from(&Network::Main.params().activations)
}

/// `flags` with its UTXO-era flags replaced by what the node selects for a coin created at the
/// first mainnet height of the era the row names.
fn with_node_utxo_era(flags: ScriptFlags) -> ScriptFlags {
    let h = main_heights();
    let coin_height = if flags.contains(ScriptFlags::UTXO_AFTER_CHRONICLE) {
        h.chronicle
    } else if flags.contains(ScriptFlags::UTXO_AFTER_GENESIS) {
        h.genesis
    } else {
        h.genesis - 1
    };
    flags.without(ScriptFlags::UTXO_AFTER_GENESIS | ScriptFlags::UTXO_AFTER_CHRONICLE) | utxo_flags(coin_height, &h)
}

/// The two v1.0.13 rows whose answer v1.2.2 changed (a 0x21 hash type under STRICTENC).
const CHANGED_IN_1_2: [&str; 2] =
    ["P2PKH with invalid sighashtype and STRICTENC", "P2SH(P2PK) with invalid sighashtype and STRICTENC"];

fn report(file: &str, passed: usize, total: usize, failures: &[String]) {
    println!("{file}: {passed}/{total} passed");
    eprintln!("{file}: {passed}/{total} passed");
    for f in failures.iter().take(40) {
        eprintln!("  FAIL {f}");
    }
}

#[test]
fn svnode_1_0_13_script_tests() {
    let (passed, total, failures) = run_script_tests(V1_0_13, false);
    report("svnode-1.0.13/script_tests.json", passed, total, &failures);
    assert_eq!(total, 1439, "every test row is run");
    let (changed, other): (Vec<_>, Vec<_>) =
        failures.iter().partition(|f| CHANGED_IN_1_2.iter().any(|name| f.contains(name)));
    assert!(other.is_empty(), "{} script tests failed: {other:#?}", other.len());
    assert_eq!(changed.len(), 2, "{changed:?}");
    assert!(changed.iter().all(|f| f.starts_with("got ILLEGAL_CHRONICLE, expected SIG_HASHTYPE")), "{changed:?}");
}

#[test]
fn svnode_1_2_2_script_tests() {
    let (passed, total, failures) = run_script_tests(V1_2_2, true);
    report("svnode-1.2.2/script_tests.json", passed, total, &failures);
    assert_eq!(total, 1483, "every test row is run");
    assert!(failures.is_empty(), "{} script tests failed", failures.len());
}

/// One tx_valid/tx_invalid row: prevouts with scripts and amounts, the transaction, flag sets.
struct TxCase {
    prevouts: Vec<(OutPoint, Vec<u8>, i64)>,
    tx: Transaction,
    flag_sets: Vec<ScriptFlags>,
    text: String,
}

fn tx_cases(file: &str) -> Vec<TxCase> {
    load(V1_0_13, file)
        .into_iter()
        .filter(|row| row.as_array().and_then(|r| r.first()).is_some_and(Value::is_array))
        .map(|row| {
            let text = row.to_string();
            let row = row.as_array().expect("row is an array");
            let prevouts = row[0]
                .as_array()
                .expect("prevouts")
                .iter()
                .map(|p| {
                    let p = p.as_array().expect("prevout is an array");
                    let txid: Hash256 = s(&p[0]).parse().expect("prevout hash");
                    let vout = p[1].as_i64().expect("prevout index") as u32;
                    let script = asm::parse(s(&p[2])).expect("prevout script parses");
                    let amount = p.get(3).and_then(Value::as_i64).unwrap_or(0);
                    (OutPoint { txid, vout }, script, amount)
                })
                .collect();
            // SV Node's harness reads one transaction from the stream and ignores trailing bytes.
            let raw = Bytes::from(hex::decode(s(&row[1])).expect("tx hex"));
            let tx = Transaction::consensus_decode(&mut Reader::new(&raw)).expect("tx decodes");
            let flag_sets = match &row[2] {
                Value::Array(sets) => sets.iter().map(|f| ScriptFlags::parse(s(f)).expect("flags")).collect(),
                f => vec![ScriptFlags::parse(s(f)).expect("flags")],
            };
            TxCase { prevouts, tx, flag_sets, text }
        })
        .collect()
}

/// SV Node's tx_valid/tx_invalid harness: context-free checks, then every input's script.
fn tx_result(case: &TxCase, flags: ScriptFlags) -> Result<(), String> {
    check_transaction(&case.tx).map_err(|e| e.reject_reason().to_string())?;
    let cache = Cache::new();
    for (i, input) in case.tx.inputs.iter().enumerate() {
        let (_, script_pubkey, amount) = case
            .prevouts
            .iter()
            .find(|(op, _, _)| *op == input.prev_out)
            .ok_or_else(|| format!("bad test: input {i} has no prevout"))?;
        let checker = TxSignatureChecker::new(&case.tx, i, *amount, &cache);
        verify_script(&input.script_sig, script_pubkey, flags, &checker)
            .map_err(|e| format!("input {i}: {}", e.name()))?;
    }
    Ok(())
}

#[test]
fn svnode_1_0_13_tx_valid() {
    let cases = tx_cases("tx_valid.json");
    let (mut passed, mut total, mut failures) = (0, 0, Vec::new());
    for case in &cases {
        for &flags in &case.flag_sets {
            total += 1;
            match tx_result(case, flags) {
                Ok(()) => passed += 1,
                Err(e) => failures.push(format!("{e} with {flags:?}: {}", case.text)),
            }
        }
    }
    report("svnode-1.0.13/tx_valid.json", passed, total, &failures);
    assert_eq!(cases.len(), 93);
    assert!(failures.is_empty());
}

#[test]
fn svnode_1_0_13_tx_invalid() {
    let cases = tx_cases("tx_invalid.json");
    let (mut passed, mut total, mut failures) = (0, 0, Vec::new());
    for case in &cases {
        for &flags in &case.flag_sets {
            total += 1;
            match tx_result(case, flags) {
                Err(e) if !e.starts_with("bad test") => passed += 1,
                Err(e) => failures.push(format!("{e}: {}", case.text)),
                Ok(()) => failures.push(format!("accepted with {flags:?}: {}", case.text)),
            }
        }
    }
    report("svnode-1.0.13/tx_invalid.json", passed, total, &failures);
    assert_eq!(cases.len(), 68);
    assert!(failures.is_empty());
}

/// The "regular" column is `SignatureHash` with FORKID enabled: v1.0.13 uses the FORKID digest
/// whenever 0x40 is set; v1.2.2 (Chronicle enabled) only when 0x40 is set without 0x20
/// (svnode-protocol.md §7). The library's own selection is what is tested.
fn run_sighash(dir: &str, chronicle: bool) -> (usize, usize, Vec<String>) {
    let h = main_heights();
    let flags = flags_for_height(if chronicle { h.chronicle } else { h.chronicle - 1 }, &h);
    assert!(flags.contains(ScriptFlags::SIGHASH_FORKID));
    assert_eq!(flags.contains(ScriptFlags::CHRONICLE), chronicle);
    let rows = load(dir, "sighash.json");
    let header = s(&rows[0].as_array().expect("header row")[0]);
    assert!(header.contains("signature_hash (regular)") && header.contains("signature_hash(no forkid)"), "{header}");
    let (mut passed, mut total, mut failures) = (0, 0, Vec::new());
    for row in rows.iter().skip(1) {
        let row = row.as_array().expect("row");
        let tx = Transaction::from_slice(&hex::decode(s(&row[0])).expect("hex")).expect("tx decodes");
        let script = hex::decode(s(&row[1])).expect("script hex");
        let input = row[2].as_u64().expect("input index") as usize;
        let hash_type = row[3].as_i64().expect("hash type") as i32 as u32;
        let regular: Hash256 = s(&row[4]).parse().expect("digest");
        let original: Hash256 = s(&row[5]).parse().expect("digest");

        let cache = SigHashCache::new();
        let got_regular = signature_hash(&tx, input, &script, 0, hash_type, flags, &cache);
        let got_original = signature_hash_original(&tx, input, &script, hash_type);
        for (what, got, want) in [("regular", got_regular, regular), ("no forkid", got_original, original)] {
            total += 1;
            if Hash256(got) == want {
                passed += 1;
            } else {
                failures.push(format!("{what}: got {}, want {want}: row {}", Hash256(got), Value::Array(row.clone())));
            }
        }
    }
    (passed, total, failures)
}

#[test]
fn svnode_1_0_13_sighash() {
    let (passed, total, failures) = run_sighash(V1_0_13, false);
    report("svnode-1.0.13/sighash.json (both digests)", passed, total, &failures);
    assert_eq!(total, 2000, "1,000 rows, two digests each");
    assert!(failures.is_empty());
}

#[test]
fn svnode_1_2_2_sighash() {
    let (passed, total, failures) = run_sighash(V1_2_2, true);
    report("svnode-1.2.2/sighash.json (both digests)", passed, total, &failures);
    assert_eq!(total, 2000, "1,000 rows, two digests each");
    assert!(failures.is_empty());
}
