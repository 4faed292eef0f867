//! Signing keys, loaded from where secrets belong — never from the config file itself.
//!
//! A key reference in the config is one of:
//! * `env:VAR` — the hex private key is in environment variable `VAR`;
//! * `dev:N` — the N-th well-known development key of anvil/hardhat's test mnemonic. These keys are
//!   public knowledge; they are accepted only on the local chain id 31337.
//!
//! `Debug` of a [`KeySource`] or [`Signer`] shows the address, never the key.

use std::fmt;

use alloy::primitives::{Address, B256};
use alloy::signers::SignerSync;
use alloy::signers::local::LocalSigner;
use alloy::signers::local::Secp256k1Credential;

/// The libsecp256k1-backed local signer (2.5× faster than k256 here).
pub type FastSigner = LocalSigner<Secp256k1Credential>;

/// The chain id on which `dev:N` keys are accepted.
pub const DEV_CHAIN_ID: u64 = 31337;

/// Private keys of the first ten accounts of the public test mnemonic
/// ("test test test test test test test test test test test junk"), as anvil and hardhat use them.
const DEV_KEYS: [&str; 10] = [
    "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "dbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "2a871d0798f97d79848a013d4936a73bf4ae0c57e9fdf8ef04f6b8c25a4d1ff6",
];

/// Why a key could not be loaded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// The reference is not `env:VAR` or `dev:N`.
    #[error("key reference must be `env:VAR` or `dev:N`, got `{0}`")]
    BadReference(String),
    /// The environment variable is not set.
    #[error("environment variable `{0}` is not set")]
    MissingEnv(String),
    /// The value is not a 32-byte hex private key.
    #[error("the key in `{0}` is not a valid 32-byte hex private key")]
    Malformed(String),
    /// A `dev:` key was asked for on a chain other than the local one.
    #[error("`dev:` keys are public and only allowed on chain id {DEV_CHAIN_ID}, not {0}")]
    DevKeyOnPublicChain(u64),
}

/// Where a key comes from, as written in the config.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum KeySource {
    /// Hex key in an environment variable.
    Env(String),
    /// A public development key.
    Dev(usize),
}

impl TryFrom<String> for KeySource {
    type Error = KeyError;
    fn try_from(s: String) -> Result<Self, KeyError> {
        if let Some(var) = s.strip_prefix("env:")
            && !var.is_empty()
        {
            return Ok(KeySource::Env(var.to_string()));
        }
        if let Some(n) = s.strip_prefix("dev:")
            && let Ok(i) = n.parse::<usize>()
            && i < DEV_KEYS.len()
        {
            return Ok(KeySource::Dev(i));
        }
        // Never echo what might be a pasted secret.
        let shown = if s.len() > 12 { format!("{}…", s.chars().take(6).collect::<String>()) } else { s };
        Err(KeyError::BadReference(shown))
    }
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Env(v) => write!(f, "env:{v}"),
            KeySource::Dev(i) => write!(f, "dev:{i}"),
        }
    }
}

impl KeySource {
    /// Loads the key for use on `chain_id`.
    pub fn load(&self, chain_id: u64) -> Result<Signer, KeyError> {
        let (hex, origin) = match self {
            KeySource::Env(var) => {
                let v = std::env::var(var).map_err(|_| KeyError::MissingEnv(var.clone()))?;
                (v, var.clone())
            }
            KeySource::Dev(i) => {
                if chain_id != DEV_CHAIN_ID {
                    return Err(KeyError::DevKeyOnPublicChain(chain_id));
                }
                (DEV_KEYS[*i].to_string(), format!("dev:{i}"))
            }
        };
        let trimmed = hex.trim();
        let trimmed = trimmed.strip_prefix("0x").unwrap_or(trimmed);
        let bytes: B256 = trimmed.parse().map_err(|_| KeyError::Malformed(origin.clone()))?;
        let inner = FastSigner::from_bytes(&bytes).map_err(|_| KeyError::Malformed(origin))?;
        Ok(Signer { inner })
    }
}

/// A loaded signing key. Its `Debug` prints only the address.
#[derive(Clone)]
pub struct Signer {
    inner: FastSigner,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signer({}, key redacted)", self.inner.address())
    }
}

impl Signer {
    /// The account address.
    pub fn address(&self) -> Address {
        self.inner.address()
    }

    /// Signs a 32-byte hash (a transaction's signature hash).
    pub fn sign_hash(&self, hash: &B256) -> Result<alloy::primitives::Signature, alloy::signers::Error> {
        self.inner.sign_hash_sync(hash)
    }

    /// EIP-191 `personal_sign` of a message.
    pub fn sign_message(&self, msg: &[u8]) -> Result<alloy::primitives::Signature, alloy::signers::Error> {
        self.inner.sign_message_sync(msg)
    }

    /// The underlying alloy signer (for providers that sign their own transactions, e.g. set-up tools).
    pub fn alloy_signer(&self) -> &FastSigner {
        &self.inner
    }

    /// A signer for the N-th public development key (tests, the demo and local devnets only).
    pub fn dev(i: usize) -> Result<Signer, KeyError> {
        KeySource::Dev(i).load(DEV_CHAIN_ID)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_key_zero_is_the_well_known_account() {
        let s = Signer::dev(0).unwrap();
        assert_eq!(s.address(), "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266".parse::<Address>().unwrap());
        assert_eq!(
            Signer::dev(1).unwrap().address().to_string(),
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
        );
    }

    #[test]
    fn dev_keys_refused_off_the_local_chain() {
        assert_eq!(KeySource::Dev(0).load(1).unwrap_err(), KeyError::DevKeyOnPublicChain(1));
    }

    #[test]
    fn env_key_loads_and_debug_redacts() {
        let var = "KEEL_TEST_SIGNER_KEY_REDACT";
        // SAFETY: test-local variable name, set before any thread of this test reads it.
        unsafe { std::env::set_var(var, format!("0x{}", DEV_KEYS[2])) };
        let src = KeySource::try_from(format!("env:{var}")).unwrap();
        let s = src.load(1).unwrap();
        let shown = format!("{s:?} {src:?}");
        assert!(!shown.contains(DEV_KEYS[2]), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn a_raw_key_in_the_config_is_refused_without_echoing_it() {
        let err = KeySource::try_from(DEV_KEYS[3].to_string()).unwrap_err();
        assert!(!err.to_string().contains(DEV_KEYS[3]));
        assert!(matches!(KeySource::try_from("env:".to_string()), Err(KeyError::BadReference(_))));
        assert!(matches!(KeySource::try_from("dev:99".to_string()), Err(KeyError::BadReference(_))));
    }

    #[test]
    fn missing_env_is_named() {
        let e = KeySource::Env("KEEL_SURELY_UNSET_VAR".into()).load(1).unwrap_err();
        assert_eq!(e, KeyError::MissingEnv("KEEL_SURELY_UNSET_VAR".into()));
    }
}
