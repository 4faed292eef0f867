//! ECDSA secp256k1 signing with precomputed nonces: the fast path of [`Signer`](crate::signer::Signer).
//!
//! An ECDSA signature is s = k⁻¹(z + r·d) mod n, with r the x-coordinate of R = k·G. The costly part,
//! k·G and k⁻¹ (tens of µs), does not depend on the message, so a background thread computes it ahead of
//! time and the hot thread only does two scalar multiplications and an addition (about a microsecond).
//!
//! # Data flow
//!
//! ```text
//!  precompute thread                         hot thread (owns the Signer and its PresignPool)
//!  OS CSPRNG -> k -> (k⁻¹, r, parity) --ready ring--> pop -> s = k⁻¹(z + r·d) -> low-s -> Signature
//!        ^                                             |
//!        +------------- wiped cell <--spare ring-------+  (wipe in place, then recycle)
//! ```
//!
//! Both rings are bounded (`PresignConfig::capacity`); the producer refills to capacity, then parks
//! until the pool is down to half (so a burst that leaves half the pool never has k·G competing with
//! the hot thread for a core). An empty pool, or a producer that died (panic, RNG failure), makes
//! [`PresignPool::try_sign_prehash`] return `None` and count it in [`PresignStats::fallbacks`]; the
//! [`Signer`](crate::signer::Signer) then signs on its normal libsecp256k1 (RFC 6979) path: signing
//! stays correct, only slower.
//!
//! The router turns it on per key with `[router] presign_pool = N` (default
//! [`crate::config::DEFAULT_PRESIGN_POOL`], 0 = off): the executor starts one pool for each account
//! key and one for the reputation key, so both the transactions and the `X-Flashbots-Signature` use
//! it.
//!
//! # Threat model
//!
//! The asset is the secret key d. With ECDSA, the nonce k is as secret as d:
//! - **Nonce reuse reveals the key.** Two signatures with the same k (same r) on different hashes give
//!   k = (z₁ − z₂)/(s₁ − s₂) and then d = (s·k − z)/r.
//! - **Nonce bias reveals the key.** Even a few biased or known bits of k across many signatures let a
//!   lattice attack (hidden number problem) recover d.
//! - **A leaked k (or k⁻¹) reveals the key** from a single signature.
//!
//! What prevents each here:
//! - *Uniform k*: each k is 32 fresh bytes from the OS CSPRNG (`getrandom`, the `getrandom(2)`
//!   syscall on Linux; no user-space RNG state). Values that are 0 or ≥ n are **rejected and redrawn**,
//!   never reduced mod n, so k is uniform on [1, n). A k whose R.x ≥ n (probability about 2⁻¹²⁸) is
//!   also redrawn, because an Ethereum signature (y parity only) cannot carry that recovery bit; the
//!   resulting distance from uniform is about 2⁻¹²⁸.
//! - *No reuse*: an entry is a `Box` moved through lock-free rings whose pop hands each element out
//!   exactly once; the entry type has no `Clone`/`Copy`; the signer takes `&mut self`, so there is one
//!   consumer by construction. After signing, the consumer wipes the entry in place (zeroize) before
//!   the cell is recycled, and a wiped entry (k⁻¹ = 0, r = 0) refuses to sign, so even a logic error
//!   that handed a cell out twice could not produce a second signature with the same k.
//! - *Fallback*: libsecp256k1's RFC 6979 derives k from (d, z) with HMAC-SHA256, so it needs no
//!   randomness at all and is independent of the pool; a collision with a pool nonce has probability
//!   about 2⁻²⁵⁶.
//! - *Secrets at rest*: with a pool, d is held twice: in the libsecp256k1 signer (for the fallback,
//!   exactly as without a pool) and in k256's `SigningKey` (for the pool, wiped on drop); neither
//!   appears in `Debug` (which prints the address only). The `[u8; 32]` passed to [`PresignPool::new`] is wiped; pool
//!   entries are wiped after use and on drop; k itself is wiped as soon as k⁻¹ and R exist.
//! - *No sharing*: a [`Signer`](crate::signer::Signer)'s clone never copies or shares its pool (it
//!   signs on the plain path until given a pool of its own), so two owners can never draw from, or
//!   hold copies of, the same nonces.
//! - *Timing*: scalar arithmetic (k256) is constant-time, including the k⁻¹ inversion and the low-s
//!   selection; the only variable-time steps look at public data (r, R.x).
//!
//! **Fork safety.** A `fork()` copies the pool into the child: parent and child would then sign
//! different messages with the same nonces, which reveals d. The producer thread does not survive a
//! fork, but the entries already in the pool do. Do not fork a process that holds a
//! [`PresignPool`] and sign in both; create signers after forking (Rust code can only fork through
//! `unsafe` FFI, and `std::process::Command` execs, which is safe). Not enforced: a per-signature
//! `getpid()` check would be a syscall on the hot path; `MADV_WIPEONFORK` on the pool memory would be
//! the robust fix.
//!
//! **Not covered**: an attacker who can read this process's memory (d is there anyway), swap or core
//! dumps (lock and disable them at the deployment level), copies of scalars left in registers or stack
//! temporaries by the arithmetic (as with k256 and libsecp256k1 signing), the caller's own copy of the
//! secret bytes, a broken or virtualised-and-cloned OS RNG (a VM snapshot restored twice replays the
//! pool exactly as a fork does), fault attacks, and cache or power side channels below the level of
//! constant-time arithmetic. Binaries built with `panic = "abort"` lose the "producer panic falls back"
//! property (the process aborts instead).
//!
//! # Costs
//!
//! Each entry is about 110 bytes (a boxed 72-byte cell plus two 16-byte ring slots). The producer
//! spends one getrandom call, one k·G, one field inversion and one scalar inversion per entry (about
//! 42 µs on one core here in a release build, about 90 µs in a debug one) and parks, with a 10 ms
//! backstop, while more than half the pool is ready. Signing from the pool costs about 0.12-0.14 µs
//! (README, Performance); a fallback costs what libsecp256k1 signing costs (27-36 µs here).

mod config;
mod error;
mod nonce;
mod pool;
mod producer;

pub use config::{DEFAULT_CAPACITY, MAX_CAPACITY, MIN_CAPACITY, PresignConfig};
pub use error::{PresignError, Result};
#[cfg(test)]
pub(crate) use pool::test_support;
pub use pool::{PresignPool, PresignStats};
pub use producer::ProducerStatus;
