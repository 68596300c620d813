//! Script hot path: verifying a 1-input P2PKH FORKID transaction against one raw secp256k1
//! verification of the same signature (pubkey parse + lax DER parse + verify, what any
//! verification of a wire signature must do). Target (issue 5): the full script verification
//! costs at most 1.2x the raw verification.

use bitcoin_hashes::{hash160, Hash};
use bsv_relay::script::sighash::signature_hash_forkid;
use bsv_relay::script::{verify_script, ScriptFlags, SigHashCache, TxSignatureChecker};
use bsv_relay::wire::*;
use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use secp256k1::ecdsa::Signature;
use secp256k1::{Message, PublicKey, SecretKey, SECP256K1};

const AMOUNT: i64 = 5_000_000;

/// A signed 1-input 1-output P2PKH FORKID spend, its scriptPubKey, the digest and the key.
fn signed_p2pkh() -> (Transaction, Vec<u8>, [u8; 32], PublicKey) {
    let secret = SecretKey::from_slice(&[0x42; 32]).expect("valid secret key");
    let pubkey = PublicKey::from_secret_key(SECP256K1, &secret);
    let mut script_pubkey = vec![0x76, 0xa9, 20];
    script_pubkey.extend_from_slice(&hash160::Hash::hash(&pubkey.serialize()).to_byte_array());
    script_pubkey.extend_from_slice(&[0x88, 0xac]);
    let mut fields = TxFields {
        version: 1,
        inputs: vec![TxIn {
            prev_out: OutPoint { txid: Hash256([5; 32]), vout: 0 },
            script_sig: Bytes::new(),
            sequence: u32::MAX,
        }],
        outputs: vec![TxOut { value: AMOUNT - 1_000, script_pubkey: Bytes::from(script_pubkey.clone()) }],
        lock_time: 0,
    };
    let hash_type = 0x41u32;
    let digest = signature_hash_forkid(&fields, 0, &script_pubkey, AMOUNT, hash_type, &SigHashCache::new());
    let sig = SECP256K1.sign_ecdsa(&Message::from_digest(digest), &secret);
    let mut sig_bytes = sig.serialize_der().to_vec();
    sig_bytes.push(hash_type as u8);
    let mut script_sig = vec![sig_bytes.len() as u8];
    script_sig.extend_from_slice(&sig_bytes);
    script_sig.push(33);
    script_sig.extend_from_slice(&pubkey.serialize());
    fields.inputs[0].script_sig = Bytes::from(script_sig);
    (Transaction::from_fields(fields), script_pubkey, digest, pubkey)
}

fn benches(c: &mut Criterion) {
    let (tx, script_pubkey, digest, pubkey) = signed_p2pkh();
    let flags = ScriptFlags::STANDARD | ScriptFlags::GENESIS | ScriptFlags::UTXO_AFTER_GENESIS;
    let script_sig = tx.inputs[0].script_sig.clone();
    {
        let cache = SigHashCache::new();
        let checker = TxSignatureChecker::new(&tx, 0, AMOUNT, &cache);
        verify_script(&script_sig, &script_pubkey, flags, &checker).expect("the benchmark transaction verifies");
    }

    let sig_der = script_sig[1..script_sig[0] as usize].to_vec();
    let pubkey_bytes = pubkey.serialize();
    c.bench_function("secp256k1_verify_raw", |b| {
        b.iter(|| {
            let pk = PublicKey::from_slice(black_box(&pubkey_bytes)).expect("valid key");
            let mut sig = Signature::from_der_lax(black_box(&sig_der)).expect("valid signature");
            sig.normalize_s();
            SECP256K1.verify_ecdsa(&Message::from_digest(black_box(digest)), &sig, &pk).expect("verifies")
        })
    });

    c.bench_function("verify_p2pkh_forkid_1_input", |b| {
        b.iter(|| {
            // A fresh cache per transaction, as the validator will have.
            let cache = SigHashCache::new();
            let checker = TxSignatureChecker::new(black_box(&tx), 0, AMOUNT, &cache);
            verify_script(black_box(&script_sig), black_box(&script_pubkey), flags, &checker)
        })
    });
}

criterion_group!(script_benches, benches);
criterion_main!(script_benches);
