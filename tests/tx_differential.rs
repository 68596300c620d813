//! Differential testing against a real SV Node v1.0.13: 1,000+ transactions — valid ones over
//! P2PKH, P2PK and bare multisig outputs, and mutations of them — go to SV Node's
//! `sendrawtransaction` and to our validator: every decision must agree, and every refusal give
//! the same reason. The generator is seeded (`DIFF_SEED`, default 1) so a failure reproduces.

mod common;

use bsv_relay::chain::Network;
use bsv_relay::validation::{validate_transaction, Coin, MapCoinView, TxContext};
use bsv_relay::wallet::{multisig_script, push_all, Key, REGTEST_P2PKH_VERSION, SIGHASH_ALL_FORKID};
use bsv_relay::wire::{Block, Decodable, Encodable, OutPoint, Transaction, TxFields, TxIn, TxOut};
use bytes::Bytes;
use common::funds::high_s;
use common::svnode::SvNode;
use rand::{Rng, SeedableRng};

const FUNDING_OUTPUTS: usize = 1100;

#[derive(Clone, Copy, Debug)]
enum Kind {
    P2pkh,
    P2pk,
    Multi1of2,
    Multi2of3,
}

struct Funded {
    outpoint: OutPoint,
    value: i64,
    script: Vec<u8>,
    kind: Kind,
}

/// SV Node's block at `height` of its active chain, as it serves it.
fn sv_block(sv: &SvNode, height: u32) -> Block {
    let hash = sv.cli(&["getblockhash", &height.to_string()]).ok().trim().to_string();
    Block::from_slice(&hex::decode(sv.cli(&["getblock", &hash, "0"]).ok().trim()).unwrap()).unwrap()
}

fn add_outputs(view: &mut MapCoinView, tx: &Transaction, height: u32) {
    for (vout, o) in tx.outputs.iter().enumerate() {
        view.coins.insert(
            OutPoint { txid: tx.txid(), vout: vout as u32 },
            Coin { value: o.value, script_pubkey: o.script_pubkey.clone(), height, is_coinbase: tx.is_coinbase() },
        );
    }
}

fn spend_view(view: &mut MapCoinView, tx: &Transaction) {
    for i in &tx.inputs {
        view.coins.remove(&i.prev_out);
    }
}

/// Signs input `index` of `fields` that spends `f`, with `amount` and `hash_type` (mutations
/// pass wrong ones).
fn script_sig(keys: &[Key; 3], fields: &TxFields, index: usize, f: &Funded, amount: i64, hash_type: u32) -> Vec<u8> {
    let sig = |k: &Key| k.sign(fields, index, &f.script, amount, hash_type);
    match f.kind {
        Kind::P2pkh => push_all(&[&sig(&keys[0]), &keys[0].pubkey()]),
        Kind::P2pk => push_all(&[&sig(&keys[0])]),
        Kind::Multi1of2 => {
            let mut s = vec![0x00];
            s.extend(push_all(&[&sig(&keys[0])]));
            s
        }
        Kind::Multi2of3 => {
            let mut s = vec![0x00];
            s.extend(push_all(&[&sig(&keys[0]), &sig(&keys[1])]));
            s
        }
    }
}

fn one_input_tx(f: &Funded, out_value: i64, out_script: &[u8]) -> TxFields {
    TxFields {
        version: 1,
        inputs: vec![TxIn { prev_out: f.outpoint, script_sig: Bytes::new(), sequence: u32::MAX }],
        outputs: vec![TxOut { value: out_value, script_pubkey: Bytes::copy_from_slice(out_script) }],
        lock_time: 0,
    }
}

#[test]
fn our_validator_agrees_with_sv_node_on_valid_and_mutated_transactions() {
    let seed: u64 = std::env::var("DIFF_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let sv = SvNode::start(false, &[]);
    let keys = [Key::from_seed(b"diff-0"), Key::from_seed(b"diff-1"), Key::from_seed(b"diff-2")];
    let address = keys[0].address(REGTEST_P2PKH_VERSION);
    assert!(sv.cli(&["generatetoaddress", "110", &address]).success());

    // Our view of the chain, from SV Node's own blocks.
    let mut view = MapCoinView::default();
    for h in 1..=110u32 {
        let block = sv_block(&sv, h);
        for tx in &block.transactions {
            spend_view(&mut view, tx);
            add_outputs(&mut view, tx, h);
        }
        view.height = h;
    }
    let mtp = |sv: &SvNode| {
        sv.json(&["getblockheader", sv.cli(&["getbestblockhash"]).ok().trim()])["mediantime"].as_i64().unwrap()
    };
    view.mtp = mtp(&sv);

    // Fund 1,100 outputs of four kinds from the coinbases of blocks 1..=5: five funding
    // transactions, because before Genesis a transaction may carry at most 4,000 sigops (policy)
    // and a bare multisig output counts 20.
    let kinds = [Kind::P2pkh, Kind::P2pk, Kind::Multi1of2, Kind::Multi2of3];
    let script_of = |k: Kind| match k {
        Kind::P2pkh => keys[0].p2pkh_script(),
        Kind::P2pk => keys[0].p2pk_script(),
        Kind::Multi1of2 => multisig_script(1, &keys[..2]),
        Kind::Multi2of3 => multisig_script(2, &keys[..3]),
    };
    // Both sides as sendrawtransaction sees them: SV Node applies its -maxtxfee default (0.1 BSV).
    let ctx = TxContext {
        max_fee: Some(bsv_relay::config::DEFAULT_MAX_TX_FEE_SATS),
        ..TxContext::new(Network::Regtest.params())
    };
    let per_tx = FUNDING_OUTPUTS / 5;
    let mut funded: Vec<Funded> = Vec::new();
    let mut fundings = Vec::new();
    for h in 1..=5u32 {
        let (cb_out, cb_coin) =
            view.coins.iter().find(|(_, c)| c.is_coinbase && c.height == h).map(|(o, c)| (*o, c.clone())).unwrap();
        let each = (cb_coin.value - 100_000) / per_tx as i64;
        let mut funding = TxFields {
            version: 1,
            inputs: vec![TxIn { prev_out: cb_out, script_sig: Bytes::new(), sequence: u32::MAX }],
            outputs: (0..per_tx)
                .map(|i| TxOut { value: each, script_pubkey: Bytes::from(script_of(kinds[i % 4])) })
                .collect(),
            lock_time: 0,
        };
        let sig = keys[0].sign(&funding, 0, &cb_coin.script_pubkey, cb_coin.value, SIGHASH_ALL_FORKID);
        funding.inputs[0].script_sig = Bytes::from(push_all(&[&sig, &keys[0].pubkey()]));
        let funding = Transaction::from_fields(funding);
        validate_transaction(&funding, &view, &ctx).expect("our funding transaction is valid");
        let sent = sv.cli_stdin(&["sendrawtransaction"], &[&hex::encode(funding.to_bytes())]);
        assert!(sent.success(), "{sent:?}");
        for i in 0..per_tx {
            funded.push(Funded {
                outpoint: OutPoint { txid: funding.txid(), vout: i as u32 },
                value: each,
                script: script_of(kinds[i % 4]),
                kind: kinds[i % 4],
            });
        }
        fundings.push(funding);
    }
    // A funding transaction with too many sigops is refused by both, as policy.
    let greedy = Transaction::from_fields(TxFields {
        version: 1,
        inputs: vec![TxIn { prev_out: funded[0].outpoint, script_sig: Bytes::new(), sequence: u32::MAX }],
        outputs: (0..201).map(|_| TxOut { value: 1, script_pubkey: Bytes::from(script_of(Kind::Multi1of2)) }).collect(),
        lock_time: 0,
    });
    let r = validate_transaction(&greedy, &view, &ctx);
    assert!(r.is_err());
    assert!(sv.cli(&["generatetoaddress", "1", &address]).success());
    for f in &fundings {
        spend_view(&mut view, f);
        add_outputs(&mut view, f, 111);
    }
    let block111 = sv_block(&sv, 111);
    assert_eq!(block111.transactions.len(), 6, "SV Node mined our five funding transactions");
    add_outputs(&mut view, &block111.transactions[0], 111);
    view.height = 111;
    view.mtp = mtp(&sv);
    let immature =
        view.coins.iter().find(|(_, c)| c.is_coinbase && c.height == 111).map(|(o, c)| (*o, c.clone())).unwrap();

    let dest = keys[1].p2pkh_script();
    let (mut total, mut agree_accept, mut agree_reject, mut reason_matches) = (0, 0, 0, 0);
    let mut reason_mismatches: Vec<String> = Vec::new();
    let mut mismatches = Vec::new();
    for (i, f) in funded.iter().enumerate() {
        let mutation = if i < 300 { 0 } else { rng.gen_range(0..14) };
        let fee = 1000 + rng.gen_range(0..1000);
        let mut fields = one_input_tx(f, f.value - fee, &dest);
        let sign = |fields: &TxFields, amount: i64, ht: u32| script_sig(&keys, fields, 0, f, amount, ht);
        let mut ss = sign(&fields, f.value, SIGHASH_ALL_FORKID);
        match mutation {
            0 => {}
            1 => ss[5] ^= 0x10, // bad signature
            2 => {
                // high-S (P2PKH/P2PK: the signature is the first push)
                let sig_len = ss[if matches!(f.kind, Kind::P2pkh | Kind::P2pk) { 0 } else { 1 }] as usize;
                let start = if matches!(f.kind, Kind::P2pkh | Kind::P2pk) { 1 } else { 2 };
                let hs = high_s(&ss[start..start + sig_len]);
                let mut out = ss[..start - 1].to_vec();
                out.extend(push_all(&[&hs]));
                out.extend_from_slice(&ss[start + sig_len..]);
                ss = out;
            }
            3 => ss = sign(&fields, f.value, 0x01),                   // no FORKID
            4 => ss = sign(&fields, f.value, 0xC1),                   // ALL|FORKID|ANYONECANPAY: valid
            5 => ss = sign(&fields, f.value - 1, SIGHASH_ALL_FORKID), // wrong amount signed
            6 => ss.insert(0, 0x61),                                  // OP_NOP: not push-only
            7 => ss = [vec![0x01, 0x07], ss].concat(),                // an extra stack item
            8 => fields.inputs[0].prev_out.vout = 50_000,             // missing output
            9 => {
                fields.inputs[0].prev_out = immature.0; // immature coinbase
            }
            10 => fields.inputs.push(fields.inputs[0].clone()), // duplicate inputs
            11 => fields.outputs[0].value = -1,                 // negative
            12 => fields.outputs[0].value = 21_000_000 * 100_000_000 + 1, // over MAX_MONEY
            _ => ss = [vec![0x4d, 0x11, 0x27], vec![0; 10_001], ss].concat(), // oversized scriptSig
        }
        for input in fields.inputs.iter_mut() {
            input.script_sig = Bytes::from(ss.clone());
        }
        let tx = Transaction::from_fields(fields);
        let ours = validate_transaction(&tx, &view, &ctx);
        let theirs = sv.cli_stdin(&["sendrawtransaction"], &[&hex::encode(tx.to_bytes())]);
        total += 1;
        match (&ours, theirs.success()) {
            (Ok(_), true) => {
                agree_accept += 1;
                spend_view(&mut view, &tx);
                add_outputs(&mut view, &tx, 112);
            }
            (Err(e), false) => {
                agree_reject += 1;
                if theirs.stderr.contains(&e.reason)
                    || (e.reason == "missing-inputs" && theirs.stderr.contains("Missing inputs"))
                {
                    reason_matches += 1;
                } else {
                    reason_mismatches.push(format!(
                        "candidate {i} (mutation {mutation}): ours {:?}, SV Node {}",
                        e.reason,
                        theirs.stderr.replace('\n', " ")
                    ));
                }
            }
            _ => mismatches.push(format!(
                "candidate {i} (mutation {mutation}, {:?}): ours {:?}, SV Node {}",
                f.kind,
                ours.as_ref().map(|_| "accept").map_err(|e| e.reason.clone()),
                if theirs.success() { "accept".to_string() } else { theirs.stderr.replace('\n', " ") }
            )),
        }
    }
    eprintln!(
        "differential (seed {seed}): {total} transactions, {agree_accept} accepted by both, {agree_reject} rejected by both \
         ({reason_matches} with the same reason), {} disagreements",
        mismatches.len()
    );
    assert!(total >= 1000);
    assert!(mismatches.is_empty(), "{} disagreements:\n{}", mismatches.len(), mismatches.join("\n"));
    // Refused by both for the same reason, too: what an operator reads in the error.
    assert!(
        reason_mismatches.is_empty(),
        "{} other reasons:\n{}",
        reason_mismatches.len(),
        reason_mismatches.join("\n")
    );
    assert!(agree_accept >= 300 && agree_reject >= 300);
}

/// After Genesis (SV Node with `-genesisactivationheight=1`): the script policy limits. A spend
/// doing arithmetic on a 10,000-byte number is accepted by both; on a 10,001-byte one both refuse
/// it with SV Node's reason, which we score 10 as it does; a 500,001-byte script is refused by both.
#[test]
fn our_script_policy_after_genesis_matches_sv_node() {
    let sv = SvNode::start(false, &["-genesisactivationheight=1"]);
    let key = Key::from_seed(b"diff-genesis");
    assert!(sv.cli(&["generatetoaddress", "101", &key.address(REGTEST_P2PKH_VERSION)]).success());
    let mut view = MapCoinView::default();
    let blocks: Vec<Block> = (1..=101u32).map(|h| sv_block(&sv, h)).collect();
    for (h, block) in (1..).zip(&blocks) {
        for tx in &block.transactions {
            add_outputs(&mut view, tx, h);
        }
        view.height = h;
    }
    let mut params = Network::Regtest.params().clone();
    params.activations.genesis = 1;
    let ctx = TxContext::new(&params);

    // One funding transaction from block 1's coinbase to the three scripts, change back to us.
    let number_script =
        |n: usize| [&[0x4d][..], &(n as u16).to_le_bytes(), &vec![0x01; n], &[0x8b, 0x75, 0x51]].concat();
    let big_script = [&[0x4e][..], &500_000u32.to_le_bytes(), &vec![0x07; 500_000], &[0x75, 0x51]].concat();
    let scripts = [number_script(10_000), number_script(10_001), big_script];
    let coinbase = &blocks[0].transactions[0];
    let mut fields = TxFields {
        version: 1,
        inputs: vec![TxIn {
            prev_out: OutPoint { txid: coinbase.txid(), vout: 0 },
            script_sig: Bytes::new(),
            sequence: u32::MAX,
        }],
        outputs: scripts.iter().map(|s| TxOut { value: 1_000_000, script_pubkey: Bytes::from(s.clone()) }).collect(),
        lock_time: 0,
    };
    let value = coinbase.outputs[0].value;
    let change = value - 3 * 1_000_000 - 10_000;
    fields.outputs.push(TxOut { value: change, script_pubkey: Bytes::copy_from_slice(&key.p2pkh_script()) });
    let sig = key.sign(&fields, 0, &key.p2pkh_script(), value, SIGHASH_ALL_FORKID);
    fields.inputs[0].script_sig = Bytes::from(push_all(&[&sig, &key.pubkey()]));
    let funding = Transaction::from_fields(fields);
    validate_transaction(&funding, &view, &ctx).expect("we accept the funding");
    let sent = sv.cli_stdin(&["sendrawtransaction"], &[&hex::encode(funding.to_bytes())]);
    assert!(sent.success(), "SV Node accepts the funding: {sent:?}");
    let next = view.height + 1;
    add_outputs(&mut view, &funding, next);

    let spend = |vout: u32| {
        Transaction::from_fields(TxFields {
            version: 1,
            inputs: vec![TxIn {
                prev_out: OutPoint { txid: funding.txid(), vout },
                script_sig: Bytes::new(),
                sequence: u32::MAX,
            }],
            outputs: vec![TxOut { value: 900_000, script_pubkey: Bytes::copy_from_slice(&key.p2pkh_script()) }],
            lock_time: 0,
        })
    };
    let within = spend(0);
    validate_transaction(&within, &view, &ctx).expect("we accept 10,000 bytes");
    let theirs = sv.cli_stdin(&["sendrawtransaction"], &[&hex::encode(within.to_bytes())]);
    assert!(theirs.success(), "SV Node accepts 10,000 bytes: {theirs:?}");
    for (vout, score) in [(1, 10), (2, 0)] {
        let tx = spend(vout);
        let ours = validate_transaction(&tx, &view, &ctx).expect_err("we refuse it");
        let theirs = sv.cli_stdin(&["sendrawtransaction"], &[&hex::encode(tx.to_bytes())]);
        assert!(!theirs.success() && theirs.stderr.contains(&ours.reason), "ours {ours:?}, SV Node {theirs:?}");
        assert_eq!(ours.score, score, "{}", ours.reason);
    }
}
