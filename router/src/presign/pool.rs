//! The pool's consuming end: owns the key scalar, takes one precomputed nonce per signature, and
//! owns the precompute thread's handle.
//!
//! Hot path ([`PresignPool::try_sign_prehash`]): one ring pop, two scalar multiplications and an
//! addition mod n, a conditional negation, one ring push, a look at the depth; no allocation, lock
//! or syscall, except one futex wake of the producer when the pool is down to half (and only if it
//! was parked).

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{Ordering, fence},
    },
    thread::{self, JoinHandle},
};

use alloy::primitives::{Address, B256, Signature};
use k256::{Scalar, ecdsa::SigningKey};
use zeroize::Zeroize;

use super::{
    config::PresignConfig,
    error::{PresignError, Result},
    nonce::hash_to_scalar,
    producer::{self, ProducerStatus, Shared},
};

/// The secret key d. k256's `SigningKey` wipes its scalar on drop; this wrapper keeps it out of
/// `Debug`.
struct SecretKey(SigningKey);

impl SecretKey {
    #[inline]
    fn scalar(&self) -> &Scalar {
        self.0.as_nonzero_scalar().as_ref()
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// Counters and pool state of a [`PresignPool`], read with [`PresignPool::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PresignStats {
    /// Signatures made with a precomputed nonce.
    pub signed_precomputed: u64,
    /// Signatures the pool could not serve (empty pool, or the producer is gone): the caller signed
    /// them on its normal path.
    pub fallbacks: u64,
    /// Precomputed nonces ready now.
    pub pool_depth: usize,
    /// Pool capacity from the config.
    pub capacity: usize,
    /// State of the precompute thread.
    pub producer: ProducerStatus,
}

/// One key's pool of precomputed ECDSA nonces and the thread that fills it.
///
/// Signing takes `&mut self`: the pool has exactly one consumer, the thread that owns it (move it
/// there; it is `Send`). It is deliberately not `Clone`. Dropping it stops and joins the precompute
/// thread and wipes every unused nonce.
pub struct PresignPool {
    key: SecretKey,
    address: Address,
    shared: Arc<Shared>,
    producer: Option<JoinHandle<()>>,
    capacity: usize,
    signed_precomputed: u64,
    fallbacks: u64,
}

impl PresignPool {
    /// Builds a pool for `secret` (a big-endian scalar in [1, n)) and starts the precompute thread.
    ///
    /// `secret` is wiped before this returns, on every path. The caller's own copy (arrays are `Copy`)
    /// is the caller's to wipe: pass it out of a `Zeroizing` buffer.
    ///
    /// # Errors
    ///
    /// [`PresignError::InvalidSecretKey`] for 0 or a value ≥ n, [`PresignError::InvalidCapacity`] for a
    /// capacity outside `MIN_CAPACITY..=MAX_CAPACITY`, [`PresignError::Spawn`] if the thread cannot start.
    pub fn new(mut secret: [u8; 32], cfg: PresignConfig) -> Result<Self> {
        let key = SigningKey::from_slice(&secret);
        secret.zeroize();
        let key = SecretKey(key.map_err(|_| PresignError::InvalidSecretKey)?);
        cfg.validate()?;
        Self::start(key, cfg, Shared::new(cfg.capacity))
    }

    fn start(key: SecretKey, cfg: PresignConfig, shared: Shared) -> Result<Self> {
        let address = Address::from_private_key(&key.0);
        let shared = Arc::new(shared);
        let for_thread = Arc::clone(&shared);
        let producer = thread::Builder::new()
            .name("keel-presign".into())
            .spawn(move || producer::run(&for_thread))
            .map_err(PresignError::Spawn)?;
        Ok(Self {
            key,
            address,
            shared,
            producer: Some(producer),
            capacity: cfg.capacity,
            signed_precomputed: 0,
            fallbacks: 0,
        })
    }

    /// The Ethereum address of the key.
    pub fn address(&self) -> Address {
        self.address
    }

    /// Signs a 32-byte prehash (e.g. an EIP-1559 signing hash) with a precomputed nonce: low s, y
    /// parity as Ethereum expects.
    ///
    /// `None` when the pool is empty (a burst longer than the pool, or the precompute thread is gone):
    /// counted in [`PresignStats::fallbacks`], and the caller signs on its normal path. Each nonce is
    /// taken out of the pool, used for this one signature and wiped, whether it signed or not.
    #[must_use = "a signature spends a precomputed nonce"]
    pub fn try_sign_prehash(&mut self, hash: &B256) -> Option<Signature> {
        let z = hash_to_scalar(&hash.0);
        while let Some(cell) = self.shared.ready.pop() {
            let sig = cell.sign(self.key.scalar(), &z);
            // The entry is spent whether or not it signed (s = 0 is possible in theory only).
            self.shared.recycle(cell);
            self.note_taken();
            if let Some(sig) = sig {
                self.signed_precomputed += 1;
                return Some(sig);
            }
        }
        self.fallbacks += 1;
        self.wake_producer();
        None
    }

    /// Counters and pool state. Cheap: two atomic loads for the depth, one for the status.
    pub fn stats(&self) -> PresignStats {
        PresignStats {
            signed_precomputed: self.signed_precomputed,
            fallbacks: self.fallbacks,
            pool_depth: self.shared.ready.len(),
            capacity: self.capacity,
            producer: self.shared.status(),
        }
    }

    /// Wakes the producer once the pool is down to its low watermark.
    #[inline]
    fn note_taken(&self) {
        if self.shared.ready.len() <= self.shared.low_watermark {
            self.wake_producer();
        }
    }

    /// Unparks the producer if it sleeps. See `producer::park_while_above_low_watermark`.
    fn wake_producer(&self) {
        fence(Ordering::SeqCst);
        if self.shared.idle.load(Ordering::Relaxed)
            && self.shared.idle.swap(false, Ordering::AcqRel)
            && let Some(producer) = &self.producer
        {
            producer.thread().unpark();
        }
    }
}

impl fmt::Debug for PresignPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresignPool")
            .field("address", &self.address)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl Drop for PresignPool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(producer) = self.producer.take() {
            producer.thread().unpark();
            // A panicked producer has already recorded `Panicked`; nothing more to report here.
            let _ = producer.join();
        }
        // The producer has exited: wipe the remaining entries now rather than whenever the last `Arc`
        // goes (it is ours, but be explicit about when secrets die).
        while let Some(cell) = self.shared.ready.pop() {
            drop(cell);
        }
    }
}

/// Test-only constructors and helpers shared with the signer's tests.
#[cfg(test)]
pub(crate) mod test_support {
    use std::time::{Duration, Instant};

    use super::*;

    /// A pool whose precompute thread panics after pushing `panic_after` entries.
    pub(crate) fn pool_whose_producer_panics_after(
        secret: [u8; 32],
        capacity: usize,
        panic_after: u64,
    ) -> PresignPool {
        let key = SecretKey(SigningKey::from_slice(&secret).unwrap());
        let mut shared = Shared::new(capacity);
        shared.hooks.panic_after = Some(panic_after);
        PresignPool::start(key, PresignConfig { capacity }, shared).unwrap()
    }

    /// Polls `cond` every millisecond for up to a minute; panics naming `what` on timeout.
    pub(crate) fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            thread::sleep(Duration::from_millis(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        collections::HashSet,
        time::{Duration, Instant},
    };

    use alloy::primitives::U256;
    use k256::{
        FieldBytes,
        ecdsa::hazmat::SignPrimitive,
        elliptic_curve::{PrimeField, scalar::IsHigh},
    };
    use rand::{Rng, SeedableRng, rngs::StdRng};
    use secp256k1::{
        Message, SECP256K1,
        ecdsa::{self, RecoverableSignature, RecoveryId},
    };

    use super::test_support::{pool_whose_producer_panics_after, wait_until};
    use super::*;
    use crate::presign::nonce::Presig;
    use crate::presign::producer::PARK_BACKSTOP;
    use crate::presign::{DEFAULT_CAPACITY, MAX_CAPACITY, MIN_CAPACITY};

    /// secp256k1 group order n.
    const N_HEX: &str = "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141";

    fn half_order() -> U256 {
        U256::from_str_radix(N_HEX, 16).unwrap() >> 1
    }

    /// A seeded RNG whose seed is printed, so a failure can be replayed.
    fn test_rng() -> StdRng {
        let seed: u64 = rand::random();
        eprintln!("rng seed: {seed}");
        StdRng::seed_from_u64(seed)
    }

    fn random_secret(rng: &mut StdRng) -> [u8; 32] {
        loop {
            let bytes: [u8; 32] = rng.random();
            if SigningKey::from_slice(&bytes).is_ok() {
                return bytes;
            }
        }
    }

    fn random_scalar(rng: &mut StdRng) -> Scalar {
        loop {
            let bytes: [u8; 32] = rng.random();
            if let Some(s) = Option::<Scalar>::from(Scalar::from_repr(bytes.into()))
                && !bool::from(s.is_zero())
            {
                return s;
            }
        }
    }

    fn libsecp_public_key(secret: &[u8; 32]) -> secp256k1::PublicKey {
        let sk = secp256k1::SecretKey::from_byte_array(secret).unwrap();
        secp256k1::PublicKey::from_secret_key_global(&sk)
    }

    fn address_of(pk: &secp256k1::PublicKey) -> Address {
        Address::from_raw_public_key(&pk.serialize_uncompressed()[1..])
    }

    /// Verifies with libsecp256k1 (which rejects high s) and recovers the address with it.
    fn assert_valid(sig: &Signature, hash: &B256, pk: &secp256k1::PublicKey, address: Address) {
        let bytes = sig.as_bytes();
        let compact: &[u8] = &bytes[..64];
        let msg = Message::from_digest(hash.0);
        let plain = ecdsa::Signature::from_compact(compact).unwrap();
        SECP256K1.verify_ecdsa(&msg, &plain, pk).unwrap_or_else(|e| panic!("verify {sig:?}: {e}"));
        let recid = RecoveryId::try_from(i32::from(sig.v())).unwrap();
        let recoverable = RecoverableSignature::from_compact(compact, recid).unwrap();
        let recovered = SECP256K1.recover_ecdsa(&msg, &recoverable).unwrap();
        assert_eq!(address_of(&recovered), address, "recovered address for {sig:?}");
    }

    /// Signatures made by [`many_signatures_verify_recover_and_never_repeat_r`] unless
    /// `KEEL_PRESIGN_SIGNATURES` says otherwise. A million take 80-100 s in a debug build on 2
    /// cores (one k·G per nonce on the precompute thread, a libsecp256k1 verify and recover per
    /// signature on the test thread): `KEEL_PRESIGN_SIGNATURES=1000000 cargo test -p keel-router
    /// --lib many_signatures -- --nocapture`.
    const DEFAULT_SIGNATURES: usize = 100_000;

    /// Signs random hashes, every one with a precomputed nonce (waiting for the producer when the
    /// pool is empty); each must verify and recover to the key's address with libsecp256k1, and no
    /// r may repeat.
    #[test]
    fn many_signatures_verify_recover_and_never_repeat_r() {
        let n = std::env::var("KEEL_PRESIGN_SIGNATURES").map_or(DEFAULT_SIGNATURES, |v| {
            v.parse().unwrap_or_else(|_| panic!("KEEL_PRESIGN_SIGNATURES={v} is not a count"))
        });
        let mut rng = test_rng();
        let secret = random_secret(&mut rng);
        let pk = libsecp_public_key(&secret);
        let capacity = 1024;
        let mut pool = PresignPool::new(secret, PresignConfig { capacity }).unwrap();
        assert_eq!(pool.address(), address_of(&pk));
        wait_until("the pool is full", || pool.stats().pool_depth == capacity);

        let mut seen_r = HashSet::with_capacity(n);
        let started = Instant::now();
        for i in 0..n {
            // Only this thread takes from the pool: a nonce seen here is still there to take.
            while pool.stats().pool_depth == 0 {
                thread::sleep(Duration::from_micros(50));
            }
            let hash = B256::from(rng.random::<[u8; 32]>());
            let sig = pool.try_sign_prehash(&hash).expect("the pool held a nonce");
            assert_valid(&sig, &hash, &pk, pool.address());
            assert!(seen_r.insert(sig.r()), "r repeated at signature {i}: {sig:?}");
        }
        let stats = pool.stats();
        eprintln!("{n} signatures in {:?}: {stats:?}", started.elapsed());
        assert_eq!((stats.signed_precomputed, stats.fallbacks), (n as u64, 0));
        assert_eq!(seen_r.len(), n);
        assert_eq!(stats.producer, ProducerStatus::Running);
    }

    #[test]
    fn a_dead_precompute_thread_leaves_the_made_entries_usable_then_counts_every_fallback() {
        let mut rng = test_rng();
        let secret = random_secret(&mut rng);
        let pk = libsecp_public_key(&secret);
        let mut pool = pool_whose_producer_panics_after(secret, 64, 5);
        wait_until("the producer panicked", || pool.stats().producer == ProducerStatus::Panicked);
        assert_eq!(pool.stats().pool_depth, 5, "entries made before the panic stay usable");
        let mut seen_r = HashSet::new();
        for i in 0..20 {
            let hash = B256::from(rng.random::<[u8; 32]>());
            match pool.try_sign_prehash(&hash) {
                Some(sig) => {
                    assert!(i < 5, "only the five entries made before the panic can sign");
                    assert_valid(&sig, &hash, &pk, pool.address());
                    assert!(seen_r.insert(sig.r()));
                }
                None => assert!(i >= 5, "signature {i} fell back while entries were left"),
            }
        }
        let stats = pool.stats();
        assert_eq!((stats.signed_precomputed, stats.fallbacks, stats.pool_depth), (5, 15, 0));
        assert_eq!(stats.producer, ProducerStatus::Panicked);
        // Dropping joins the dead thread without panicking.
        drop(pool);
    }

    #[test]
    fn pool_signatures_are_always_low_s_and_recover_with_alloy() {
        let mut rng = test_rng();
        let half = half_order();
        let secret = random_secret(&mut rng);
        let expected = Address::from_private_key(&SigningKey::from_slice(&secret).unwrap());
        let capacity = 256;
        let mut pool = PresignPool::new(secret, PresignConfig { capacity }).unwrap();
        assert_eq!(pool.address(), expected);
        wait_until("the pool is full", || pool.stats().pool_depth == capacity);
        for _ in 0..capacity {
            let hash = B256::from(rng.random::<[u8; 32]>());
            let sig = pool.try_sign_prehash(&hash).expect("a full pool serves `capacity` signatures");
            assert!(sig.s() <= half, "high s: {sig:?}");
            assert_eq!(sig.recover_address_from_prehash(&hash).unwrap(), expected);
        }
        assert_eq!(pool.stats().signed_precomputed, capacity as u64);
    }

    #[test]
    fn a_precomputed_signature_equals_k256_signing_with_the_same_nonce() {
        let mut rng = test_rng();
        let (mut high, mut low) = (0, 0);
        for _ in 0..300 {
            let d = random_scalar(&mut rng);
            let k = random_scalar(&mut rng);
            let z_bytes: [u8; 32] = rng.random();
            let mut cell = Presig::blank();
            if cell.fill_from_k(&k).is_err() {
                continue;
            }
            let ours = cell.sign(&d, &hash_to_scalar(&z_bytes)).unwrap();
            let (sig, recid) = d.try_sign_prehashed(k, &FieldBytes::from(z_bytes)).unwrap();
            let expected = Signature::from_signature_and_parity(sig, recid.unwrap().is_y_odd());
            assert_eq!(ours, expected);
            // Count both branches of the low-s normalisation.
            let k_inv = Option::<Scalar>::from(k.invert()).unwrap();
            let r = Scalar::from_repr(ours.r().to_be_bytes::<32>().into()).unwrap();
            let raw_s = k_inv * (hash_to_scalar(&z_bytes) + r * d);
            if bool::from(raw_s.is_high()) { high += 1 } else { low += 1 }
        }
        assert!(high > 0 && low > 0, "both s branches exercised: high {high}, low {low}");
    }

    #[test]
    fn an_empty_pool_returns_none_and_counts_a_fallback() {
        let mut rng = test_rng();
        let capacity = 4;
        let mut pool = PresignPool::new(random_secret(&mut rng), PresignConfig { capacity }).unwrap();
        wait_until("the pool is full", || pool.stats().pool_depth == capacity);
        // Taking from the pool is far faster than k·G: 64 back-to-back takes drain it.
        let served =
            (0..64).filter(|_| pool.try_sign_prehash(&B256::repeat_byte(3)).is_some()).count() as u64;
        let stats = pool.stats();
        assert!(stats.fallbacks > 0, "{stats:?}");
        assert!(served >= capacity as u64, "{stats:?}");
        assert_eq!((stats.signed_precomputed, stats.signed_precomputed + stats.fallbacks), (served, 64));
    }

    #[test]
    fn the_pool_refills_to_capacity_after_being_drained() {
        let mut rng = test_rng();
        let capacity = 8;
        let mut pool = PresignPool::new(random_secret(&mut rng), PresignConfig { capacity }).unwrap();
        for round in 0..3 {
            wait_until("the pool is full", || pool.stats().pool_depth == capacity);
            thread::sleep(Duration::from_millis(20));
            assert_eq!(pool.stats().pool_depth, capacity, "never above capacity (round {round})");
            for _ in 0..capacity {
                assert!(pool.try_sign_prehash(&B256::from(rng.random::<[u8; 32]>())).is_some());
            }
        }
        let stats = pool.stats();
        assert_eq!((stats.signed_precomputed, stats.fallbacks), (3 * capacity as u64, 0));
        assert_eq!(stats.producer, ProducerStatus::Running);
    }

    #[test]
    fn the_producer_sleeps_until_the_pool_is_down_to_half_then_refills_it() {
        let mut rng = test_rng();
        let capacity = 8;
        let mut pool = PresignPool::new(random_secret(&mut rng), PresignConfig { capacity }).unwrap();
        wait_until("the pool is full", || pool.stats().pool_depth == capacity);
        for _ in 0..3 {
            assert!(pool.try_sign_prehash(&B256::from(rng.random::<[u8; 32]>())).is_some());
        }
        // Well past the producer's backstop: it looked, saw 5 > 4 ready, and slept again.
        thread::sleep(PARK_BACKSTOP * 5);
        assert_eq!(pool.stats().pool_depth, 5, "no refill above the low watermark");
        assert!(pool.try_sign_prehash(&B256::from(rng.random::<[u8; 32]>())).is_some());
        wait_until("the pool is refilled", || pool.stats().pool_depth == capacity);
        assert_eq!(pool.stats().signed_precomputed, 4);
    }

    #[test]
    fn a_used_entry_is_wiped_before_its_cell_is_reused() {
        let mut rng = test_rng();
        let shared = Shared::new(2);
        let mut cell = Presig::blank();
        cell.fill_from_k(&random_scalar(&mut rng)).unwrap();
        assert!(!cell.is_blank());
        shared.recycle(cell);
        let reused = shared.spare.pop().unwrap();
        assert!(reused.is_blank());
    }

    #[test]
    fn a_wiped_entry_refuses_to_sign() {
        let mut rng = test_rng();
        let mut cell = Presig::blank();
        cell.fill_from_k(&random_scalar(&mut rng)).unwrap();
        let (d, z) = (random_scalar(&mut rng), random_scalar(&mut rng));
        assert!(cell.sign(&d, &z).is_some());
        cell.zeroize();
        assert!(cell.sign(&d, &z).is_none());
        assert!(Presig::blank().sign(&d, &z).is_none());
    }

    #[test]
    fn dropping_the_pool_stops_and_joins_the_precompute_thread() {
        let mut rng = test_rng();
        let pool = PresignPool::new(random_secret(&mut rng), PresignConfig { capacity: 1 << 16 }).unwrap();
        wait_until("the producer made something", || pool.stats().pool_depth > 0);
        let shared = Arc::downgrade(&pool.shared);
        let started = Instant::now();
        drop(pool);
        // `drop` joined the thread, which released its handle on the shared state.
        assert!(shared.upgrade().is_none(), "the producer thread still holds the pool");
        assert!(started.elapsed() < Duration::from_secs(1), "stop took {:?}", started.elapsed());
    }

    #[test]
    fn the_pool_can_move_to_the_hot_thread() {
        fn assert_send<T: Send + 'static>() {}
        assert_send::<PresignPool>();
    }

    #[test]
    fn debug_shows_the_address_and_never_the_secret() {
        let mut rng = test_rng();
        let secret = random_secret(&mut rng);
        let pool = PresignPool::new(secret, PresignConfig::default()).unwrap();
        let shown = format!("{pool:?} {:?} {:?}", pool.key, pool.stats());
        assert!(shown.contains(&format!("{:?}", pool.address())), "{shown}");
        let hex_secret = alloy::primitives::hex::encode(secret);
        assert!(!shown.to_lowercase().contains(&hex_secret), "{shown}");
        assert!(!shown.contains(&format!("{:?}", &secret[..])), "{shown}");
    }

    #[test]
    fn config_capacity_outside_one_to_two_pow_twenty_is_rejected_naming_the_field() {
        for capacity in [0, MAX_CAPACITY + 1] {
            let err = PresignConfig { capacity }.validate().unwrap_err();
            assert!(matches!(err, PresignError::InvalidCapacity { .. }));
            assert!(err.to_string().contains("`capacity`"), "{err}");
            assert!(!err.is_recoverable());
            let err = PresignPool::new([7; 32], PresignConfig { capacity }).unwrap_err();
            assert!(matches!(err, PresignError::InvalidCapacity { .. }));
        }
        for capacity in [MIN_CAPACITY, DEFAULT_CAPACITY, MAX_CAPACITY] {
            PresignConfig { capacity }.validate().unwrap();
        }
        assert_eq!(PresignConfig::default().capacity, 1024);
    }

    #[test]
    fn zero_and_out_of_range_secret_keys_are_rejected() {
        let n: [u8; 32] = U256::from_str_radix(N_HEX, 16).unwrap().to_be_bytes();
        for secret in [[0; 32], n, [0xff; 32]] {
            let err = PresignPool::new(secret, PresignConfig::default()).unwrap_err();
            assert!(matches!(err, PresignError::InvalidSecretKey), "{err}");
        }
    }
}
