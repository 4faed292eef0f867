//! Signing a transaction hash with libsecp256k1 (Keel's `Signer`) against k256 (alloy's
//! `PrivateKeySigner`), and building a full one-leg bundle: `sign_call` (one ECDSA signature) plus
//! `build_send_bundle` (JSON body and the `X-Flashbots-Signature`, a second ECDSA signature).
//!
//! `cargo bench -p keel-bench --bench sign`
// Test and bench targets see every dependency of their crate; only the library is checked.
#![allow(unused_crate_dependencies)]
// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use criterion::{Criterion, criterion_group, criterion_main};
use keel_router::bundle::{BundleOptions, build_send_bundle};
use keel_router::signer::Signer;
use keel_router::tx::{CallRequest, Fees, sign_call};

const DEV1: &str = "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

fn bench(c: &mut Criterion) {
    let keel = Signer::dev(1).expect("dev key");
    let k256: PrivateKeySigner = DEV1.parse().expect("valid key");
    assert_eq!(keel.address(), k256.address());
    let hash: B256 = keccak256(b"keel");

    let mut g = c.benchmark_group("sign_hash");
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("keel_libsecp256k1", |b| b.iter(|| keel.sign_hash(black_box(&hash)).expect("sign")));
    g.bench_function("baseline_k256_private_key_signer", |b| {
        b.iter(|| k256.sign_hash_sync(black_box(&hash)).expect("sign"))
    });
    g.finish();

    // A V2 swapExactTokensForTokens-sized call: 4-byte selector + 8 words + a two-token path.
    let reputation = Signer::dev(9).expect("dev key");
    let call = CallRequest {
        to: Address::repeat_byte(0x7a),
        input: Bytes::from(vec![0x38; 4 + 32 * 9]),
        gas_limit: 150_000,
        value: U256::ZERO,
    };
    let fees = Fees::from_base_fee(1_000_000_000, 2, 1_000_000_000);
    let opts = BundleOptions::default();
    let mut g = c.benchmark_group("one_leg_bundle");
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("sign_call_plus_build_send_bundle", |b| {
        b.iter(|| {
            let tx = sign_call(&keel, 31_337, 7, black_box(&call), fees).expect("tx");
            build_send_bundle(std::slice::from_ref(&tx), 100, &opts, &reputation, 1).expect("bundle")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
