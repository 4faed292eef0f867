//! Signing a transaction hash with a precomputed nonce (Keel's `Signer` with a presign pool) against
//! libsecp256k1 (Keel's plain `Signer`) and k256 (alloy's `PrivateKeySigner`), in the same run; and
//! building a full one-leg bundle: `sign_call` (one ECDSA signature) plus `build_send_bundle` (JSON
//! body and the `X-Flashbots-Signature`, a second ECDSA signature), plain and presigned.
//!
//! The presigned rows time only signatures served from the pool: before each timed batch (at most
//! half a pool) they wait, untimed, until the pools hold enough nonces for it, and the run asserts
//! that no fallback happened. The pools hover around half full, so the precompute threads refill
//! them (one k·G per nonce) while batches are timed: on 2 shared cores they compete with the timed
//! thread, two of them in the full one-leg row (one per key). Criterion sizes a row from the *timed*
//! duration, and every timed iteration spends a nonce, so those rows have short warm-up and
//! measurement times. The one-leg row is also split into its two halves, each with one presigned
//! signature and one refilling thread.
//!
//! `cargo bench -p keel-bench --bench sign`
// Test and bench targets see every dependency of their crate; only the library is checked.
#![allow(unused_crate_dependencies)]
// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use keel_router::bundle::{BundleOptions, build_send_bundle};
use keel_router::presign::PresignConfig;
use keel_router::signer::Signer;
use keel_router::tx::{CallRequest, Fees, sign_call};

const DEV1: &str = "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

/// Pool size of the presigned rows.
const POOL: usize = 1 << 13;

/// Sleeps (untimed) until every signer's pool holds at least `depth` nonces.
fn wait_for_depth(signers: &[&Signer], depth: usize) {
    while signers.iter().any(|s| s.presign_stats().is_none_or(|st| st.pool_depth < depth)) {
        thread::sleep(Duration::from_millis(1));
    }
}

/// Dev key `i` with a full pool of `pool` nonces.
fn presigned(i: usize, pool: usize) -> Signer {
    let s = Signer::dev(i).expect("dev key").with_presign(PresignConfig { capacity: pool }).expect("pool");
    let started = Instant::now();
    wait_for_depth(&[&s], pool);
    let fill = started.elapsed();
    println!(
        "presign pool of dev:{i}: {pool} nonces in {fill:.2?} ({:.1} µs each on the precompute thread)",
        fill.as_secs_f64() * 1e6 / pool as f64
    );
    s
}

/// Runs `iters` iterations of `f` in batches the pools can serve, timing only `f`.
fn timed_from_pools<const N: usize>(
    iters: u64,
    signers: &mut [Signer; N],
    mut f: impl FnMut(&mut [Signer; N]),
) -> Duration {
    let capacity = signers.iter().map(|s| s.presign_stats().expect("pool").capacity).min().unwrap_or(2);
    // The producer refills once the pool is down to half: a batch of at most half always comes.
    let most = (capacity / 2).max(1) as u64;
    let mut timed = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let batch = left.min(most);
        wait_for_depth(&signers.iter().collect::<Vec<_>>(), batch as usize);
        let started = Instant::now();
        for _ in 0..batch {
            f(signers);
        }
        timed += started.elapsed();
        left -= batch;
    }
    timed
}

/// Asserts that the row was served from the pools only.
fn assert_no_fallback(signers: &[Signer], row: &str) {
    for s in signers {
        let st = s.presign_stats().expect("pool");
        println!("{row}: {} {st:?}", s.address());
        assert_eq!(st.fallbacks, 0, "{row} must never time a fallback");
    }
}

fn bench(c: &mut Criterion) {
    let mut keel = Signer::dev(1).expect("dev key");
    let k256: PrivateKeySigner = DEV1.parse().expect("valid key");
    assert_eq!(keel.address(), k256.address());
    let hash: B256 = keccak256(b"keel");

    let mut g = c.benchmark_group("sign_hash");
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("keel_libsecp256k1", |b| b.iter(|| keel.sign_hash(black_box(&hash)).expect("sign")));
    g.bench_function("baseline_k256_private_key_signer", |b| {
        b.iter(|| k256.sign_hash_sync(black_box(&hash)).expect("sign"))
    });
    let mut pooled = [presigned(1, POOL)];
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(30)
        .warm_up_time(Duration::from_millis(20))
        .measurement_time(Duration::from_millis(60));
    g.bench_function("keel_presigned", |b| {
        b.iter_custom(|iters| {
            timed_from_pools(iters, &mut pooled, |[s]| {
                black_box(s.sign_hash(black_box(&hash)).expect("sign"));
            })
        })
    });
    assert_no_fallback(&pooled, "sign_hash/keel_presigned");
    g.finish();

    // A V2 swapExactTokensForTokens-sized call: 4-byte selector + 8 words + a two-token path.
    let mut reputation = Signer::dev(9).expect("dev key");
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
            let tx = sign_call(&mut keel, 31_337, 7, black_box(&call), fees).expect("tx");
            build_send_bundle(std::slice::from_ref(&tx), 100, &opts, &mut reputation, 1).expect("bundle")
        })
    });
    drop(pooled);
    let mut pooled = [presigned(2, POOL), presigned(9, POOL)];
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(30)
        .warm_up_time(Duration::from_millis(50))
        .measurement_time(Duration::from_millis(300));
    g.bench_function("presigned_sign_call_plus_build_send_bundle", |b| {
        b.iter_custom(|iters| {
            timed_from_pools(iters, &mut pooled, |[account, auth]| {
                let tx = sign_call(account, 31_337, 7, black_box(&call), fees).expect("tx");
                black_box(build_send_bundle(std::slice::from_ref(&tx), 100, &opts, auth, 1).expect("bundle"));
            })
        })
    });
    assert_no_fallback(&pooled, "one_leg_bundle/presigned");
    let taken = pooled.each_ref().map(|s| s.presign_stats().expect("pool").signed_precomputed);
    assert_eq!(taken[0], taken[1], "each bundle spends one nonce of each key");

    // The two halves, each with one presigned signature.
    let tx = sign_call(&mut keel, 31_337, 7, &call, fees).expect("tx");
    let [account, auth] = pooled;
    let mut account = [account];
    g.bench_function("presigned_sign_call", |b| {
        b.iter_custom(|iters| {
            timed_from_pools(iters, &mut account, |[s]| {
                black_box(sign_call(s, 31_337, 7, black_box(&call), fees).expect("tx"));
            })
        })
    });
    assert_no_fallback(&account, "one_leg_bundle/presigned_sign_call");
    let mut auth = [auth];
    g.bench_function("presigned_build_send_bundle", |b| {
        b.iter_custom(|iters| {
            timed_from_pools(iters, &mut auth, |[s]| {
                black_box(build_send_bundle(std::slice::from_ref(&tx), 100, &opts, s, 1).expect("bundle"));
            })
        })
    });
    assert_no_fallback(&auth, "one_leg_bundle/presigned_build_send_bundle");

    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
