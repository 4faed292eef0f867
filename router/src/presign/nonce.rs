//! One precomputed nonce (k⁻¹, r and the recovery bit of R = k·G), how it is drawn, and how it
//! finishes a signature.
//!
//! Invariants:
//! - A [`Presig`] is never `Clone` or `Copy`: it lives in one heap cell (`Box`) that moves from the
//!   producer to the consumer, so the secret k⁻¹ has one copy in memory at a time.
//! - A blank (wiped) entry has k⁻¹ = 0 and r = 0, and [`Presig::sign`] refuses it; a wiped entry can
//!   never sign, even if a bug handed it out twice.
//! - k itself is not kept: only k⁻¹ is needed to sign, and k is wiped as soon as R and k⁻¹ exist.

use alloy::primitives::{Signature, U256};
use k256::{
    FieldBytes, ProjectivePoint, Scalar,
    elliptic_curve::{
        PrimeField,
        ops::{MulByGenerator, Reduce},
        point::AffineCoordinates,
        scalar::IsHigh,
        subtle::ConditionallySelectable,
    },
};
use zeroize::{Zeroize, Zeroizing};

/// A precomputed ECDSA nonce for one signature. Not `Clone`: see the module invariants.
pub(crate) struct Presig {
    /// k⁻¹ mod n (secret: with one signature it reveals d).
    k_inv: Scalar,
    /// r = R.x mod n (public once the signature is published).
    r: Scalar,
    /// Parity of R.y: bit 0 of the recovery id before low-s normalisation.
    y_odd: bool,
}

/// Why a drawn k was not turned into an entry. Each happens with probability below 2⁻¹²⁷.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejected {
    /// The 32 random bytes were zero or not below n.
    OutOfRange,
    /// r = R.x mod n is zero.
    RZero,
    /// R.x ≥ n: the recovery id would need bit 1, which an Ethereum signature (y parity only) cannot
    /// carry, so the signature would not recover to our address.
    XReduced,
}

impl Presig {
    /// A wiped entry, ready to be filled.
    pub(crate) fn blank() -> Box<Self> {
        Box::new(Self { k_inv: Scalar::ZERO, r: Scalar::ZERO, y_odd: false })
    }

    /// Draws k uniformly in [1, n) from the OS CSPRNG (rejection sampling: out-of-range draws are
    /// discarded, never reduced, so k has no bias) and fills this entry. Returns how many draws were
    /// rejected on the way.
    pub(crate) fn fill_from_os_rng(&mut self) -> Result<u32, getrandom::Error> {
        let mut rejected = 0u32;
        loop {
            let mut bytes = Zeroizing::new([0u8; 32]);
            getrandom::fill(bytes.as_mut())?;
            // `from_repr` is `None` for values ≥ n (checked in constant time).
            let k = Option::<Scalar>::from(Scalar::from_repr(FieldBytes::from(*bytes))).map(Zeroizing::new);
            let outcome = match k {
                Some(k) => self.fill_from_k(&k),
                None => Err(Rejected::OutOfRange),
            };
            match outcome {
                Ok(()) => return Ok(rejected),
                Err(_) => rejected = rejected.saturating_add(1),
            }
        }
    }

    /// Fills this entry from a given nonce k. The caller wipes k.
    pub(crate) fn fill_from_k(&mut self, k: &Scalar) -> Result<(), Rejected> {
        if bool::from(k.is_zero()) {
            return Err(Rejected::OutOfRange);
        }
        let big_r = ProjectivePoint::mul_by_generator(k).to_affine();
        let x = big_r.x();
        let r = <Scalar as Reduce<k256::U256>>::reduce_bytes(&x);
        if bool::from(r.is_zero()) {
            return Err(Rejected::RZero);
        }
        // R.x is public data once r is published: a variable-time comparison is fine here.
        if r.to_repr() != x {
            return Err(Rejected::XReduced);
        }
        // k ≠ 0, so the inverse exists; `invert` is a constant-time addition chain.
        let Some(k_inv) = Option::<Scalar>::from(k.invert()) else {
            return Err(Rejected::OutOfRange);
        };
        self.k_inv = k_inv;
        self.r = r;
        self.y_odd = bool::from(big_r.y_is_odd());
        Ok(())
    }

    /// s = k⁻¹(z + r·d) mod n, normalised to low s (s > n/2 → n − s, which flips the y parity of the
    /// recovery id). `None` for a blank entry or s = 0; the caller wipes the entry either way.
    #[inline]
    pub(crate) fn sign(&self, d: &Scalar, z: &Scalar) -> Option<Signature> {
        let s = self.k_inv * (z + self.r * d);
        let refuse = self.k_inv.is_zero() | self.r.is_zero() | s.is_zero();
        if bool::from(refuse) {
            return None;
        }
        let high = s.is_high();
        let s = Scalar::conditional_select(&s, &-s, high);
        let y_parity = self.y_odd ^ bool::from(high);
        let r: [u8; 32] = self.r.to_bytes().into();
        let s: [u8; 32] = s.to_bytes().into();
        Some(Signature::new(U256::from_be_bytes(r), U256::from_be_bytes(s), y_parity))
    }

    /// Whether this entry is wiped (k⁻¹ = 0 and r = 0).
    #[cfg(test)]
    pub(crate) fn is_blank(&self) -> bool {
        bool::from(self.k_inv.is_zero() & self.r.is_zero()) && !self.y_odd
    }
}

/// The message hash as a scalar: z = hash mod n (the hash is exactly the field size, so bits2field is
/// the identity).
#[inline]
pub(crate) fn hash_to_scalar(hash: &[u8; 32]) -> Scalar {
    <Scalar as Reduce<k256::U256>>::reduce_bytes(&FieldBytes::from(*hash))
}

impl Zeroize for Presig {
    fn zeroize(&mut self) {
        self.k_inv.zeroize();
        self.r.zeroize();
        // A volatile write through `bool::zeroize` keeps this store from being elided.
        self.y_odd.zeroize();
    }
}

impl Drop for Presig {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl zeroize::ZeroizeOnDrop for Presig {}

impl std::fmt::Debug for Presig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Presig(<redacted>)")
    }
}
