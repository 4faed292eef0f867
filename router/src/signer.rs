//! Signing keys, loaded from where secrets belong — never from the config file itself.
//!
//! A key reference in the config is one of:
//! * `env:VAR` — the hex private key is in environment variable `VAR`;
//! * `dev:N` — the N-th well-known development key of anvil/hardhat's test mnemonic. These keys are
//!   public knowledge; they are accepted only on the local chain ids 31337 (anvil, hardhat) and 1337
//!   (geth `--dev`; a second local chain beside the first, `keel devnet --chains 2`);
//! * `keystore:PATH` — an encrypted Web3 Secret Storage (v3) JSON keystore, as geth, `cast wallet
//!   new`/`import` and alloy write it, whose password is in environment variable
//!   [`DEFAULT_KEYSTORE_PASSWORD_ENV`] (`KEEL_KEYSTORE_PASSWORD`);
//!   `keystore:PATH?password_env=VAR` reads the password from `VAR` instead (one variable per key
//!   when keys have different passwords).
//!
//! A keystore is decrypted with alloy's keystore support (scrypt or PBKDF2, AES-128-CTR, MAC
//! checked) straight into the libsecp256k1 signer. Loading errors name the file and the variable,
//! never the password or the key. `Debug` of a [`KeySource`] or [`Signer`] shows the reference or
//! the address, never a key or a password. The key's text and bytes and the keystore password are
//! wiped (`zeroize`) as soon as the signer is built; only the signer holds the key afterwards.
//!
//! A signer may carry a pool of precomputed nonces ([`Signer::with_presign`], see
//! [`crate::presign`]): [`Signer::sign_hash`] and [`Signer::sign_message`] then take one nonce from
//! it (well under a microsecond) and fall back to libsecp256k1 signing, counted, when it is empty.
//! Signing takes `&mut self` because the pool has one consumer; a clone never shares the pool.

use std::fmt;
use std::path::{Path, PathBuf};

use alloy::primitives::{Address, B256, Signature, eip191_hash_message};
use alloy::signers::SignerSync;
use alloy::signers::local::LocalSigner;
use alloy::signers::local::Secp256k1Credential;
use zeroize::{Zeroize, Zeroizing};

use crate::presign::{PresignConfig, PresignError, PresignPool, PresignStats};

/// The libsecp256k1-backed local signer (2.5× faster than k256 here).
pub type FastSigner = LocalSigner<Secp256k1Credential>;

/// The chain id on which `dev:N` keys are accepted (anvil's default).
pub const DEV_CHAIN_ID: u64 = 31337;
/// Every local chain id on which `dev:N` keys are accepted: anvil's and hardhat's 31337, and geth
/// `--dev`'s 1337 (the second chain of a two-chain devnet). No public network uses either.
pub const DEV_CHAIN_IDS: [u64; 2] = [DEV_CHAIN_ID, 1337];

/// The environment variable holding a keystore's password when the reference names none.
pub const DEFAULT_KEYSTORE_PASSWORD_ENV: &str = "KEEL_KEYSTORE_PASSWORD";

/// The suffix of a `keystore:` reference that names the password's environment variable.
const PASSWORD_ENV_SUFFIX: &str = "?password_env=";

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
    /// The reference is not `env:VAR`, `dev:N` or `keystore:PATH[?password_env=VAR]`.
    #[error("key reference must be `env:VAR`, `dev:N` or `keystore:PATH[?password_env=VAR]`, got `{0}`")]
    BadReference(String),
    /// The environment variable is not set.
    #[error("environment variable `{0}` is not set")]
    MissingEnv(String),
    /// The value is not a 32-byte hex private key.
    #[error("the key in `{0}` is not a valid 32-byte hex private key")]
    Malformed(String),
    /// A `dev:` key was asked for on a chain other than the local one.
    #[error("`dev:` keys are public and only allowed on the local chain ids {DEV_CHAIN_IDS:?}, not {0}")]
    DevKeyOnPublicChain(u64),
    /// The environment variable that should hold a keystore's password is not set.
    #[error("keystore {path}: password environment variable `{var}` is not set")]
    KeystorePasswordMissing {
        /// The keystore file.
        path: PathBuf,
        /// The variable.
        var: String,
    },
    /// The keystore file cannot be read (missing, unreadable).
    #[error("keystore {path}: cannot read the file: {reason}")]
    KeystoreUnreadable {
        /// The keystore file.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// The file is not a Web3 Secret Storage v3 keystore Keel can decrypt (bad JSON, unsupported
    /// cipher or KDF, bad parameters, or a key that is not a valid secp256k1 scalar).
    #[error("keystore {path}: not a valid encrypted JSON keystore ({reason})")]
    KeystoreMalformed {
        /// The keystore file.
        path: PathBuf,
        /// What is wrong (from the parser; never secret material).
        reason: String,
    },
    /// The password does not decrypt the keystore (its MAC does not match).
    #[error("keystore {path}: wrong password (from `{var}`)")]
    KeystoreWrongPassword {
        /// The keystore file.
        path: PathBuf,
        /// The variable the password came from.
        var: String,
    },
}

impl KeyError {
    /// True when the same reference may load later without a config change (an environment
    /// variable or a file that may appear, a password that may be corrected).
    pub fn is_recoverable(&self) -> bool {
        matches!(
            self,
            KeyError::MissingEnv(_)
                | KeyError::KeystorePasswordMissing { .. }
                | KeyError::KeystoreUnreadable { .. }
                | KeyError::KeystoreWrongPassword { .. }
        )
    }
}

/// Where a key comes from, as written in the config.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum KeySource {
    /// Hex key in an environment variable.
    Env(String),
    /// A public development key.
    Dev(usize),
    /// An encrypted JSON keystore file and the environment variable holding its password.
    Keystore {
        /// The keystore file.
        path: PathBuf,
        /// The environment variable holding the password.
        password_env: String,
    },
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
        if let Some(rest) = s.strip_prefix("keystore:") {
            let (path, var) = match rest.rsplit_once(PASSWORD_ENV_SUFFIX) {
                Some((path, var)) => (path, var),
                None => (rest, DEFAULT_KEYSTORE_PASSWORD_ENV),
            };
            if !path.is_empty() && is_env_name(var) {
                return Ok(KeySource::Keystore { path: PathBuf::from(path), password_env: var.to_string() });
            }
            // A keystore path is not a secret: say what is wrong with the reference as written.
            return Err(KeyError::BadReference(s));
        }
        // Never echo what might be a pasted secret.
        let shown = if s.len() > 12 { format!("{}…", s.chars().take(6).collect::<String>()) } else { s };
        Err(KeyError::BadReference(shown))
    }
}

/// An environment variable name as shells accept it: `[A-Za-z_][A-Za-z0-9_]*`.
fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Env(v) => write!(f, "env:{v}"),
            KeySource::Dev(i) => write!(f, "dev:{i}"),
            KeySource::Keystore { path, password_env } => {
                write!(f, "keystore:{}{PASSWORD_ENV_SUFFIX}{password_env}", path.display())
            }
        }
    }
}

/// Decrypts the keystore at `path` with the password in environment variable `var`, straight into
/// the libsecp256k1 signer. The password lives only for the call and is wiped when it ends.
fn decrypt_keystore(path: &Path, var: &str) -> Result<Signer, KeyError> {
    use alloy::signers::local::LocalSignerError;
    use eth_keystore::KeystoreError;

    let password = std::env::var(var)
        .map(Zeroizing::new)
        .map_err(|_| KeyError::KeystorePasswordMissing { path: path.to_path_buf(), var: var.to_string() })?;
    // Check the file first: eth-keystore reports a missing file and a bad one alike as strings.
    if let Err(e) = std::fs::metadata(path) {
        return Err(KeyError::KeystoreUnreadable { path: path.to_path_buf(), reason: e.to_string() });
    }
    let malformed = |reason: String| KeyError::KeystoreMalformed { path: path.to_path_buf(), reason };
    match FastSigner::decrypt_keystore(path, password.as_bytes()) {
        Ok(inner) => Ok(Signer::from_inner(inner)),
        Err(LocalSignerError::EthKeystoreError(e)) => Err(match e {
            KeystoreError::MacMismatch => {
                KeyError::KeystoreWrongPassword { path: path.to_path_buf(), var: var.to_string() }
            }
            KeystoreError::StdIo(reason) => KeyError::KeystoreUnreadable { path: path.to_path_buf(), reason },
            KeystoreError::SerdeJson(reason) => malformed(reason),
            KeystoreError::ScryptInvalidParams(_) | KeystoreError::ScryptInvalidOuputLen(_) => {
                malformed("invalid scrypt parameters".into())
            }
            KeystoreError::AesInvalidKeyNonceLength(_) => malformed("invalid AES key or IV length".into()),
            // Variants of optional features (geth-compat), should another crate enable them.
            #[allow(unreachable_patterns)]
            _ => malformed("unsupported keystore".into()),
        }),
        // The decrypted bytes are not a valid secp256k1 secret key (never print them).
        Err(_) => Err(malformed("the decrypted key is not a valid secp256k1 private key".into())),
    }
}

impl KeySource {
    /// Loads the key for use on `chain_id`.
    pub fn load(&self, chain_id: u64) -> Result<Signer, KeyError> {
        // The key's text is wiped when this call ends, whatever its outcome.
        let (hex, origin): (Zeroizing<String>, String) = match self {
            KeySource::Keystore { path, password_env } => return decrypt_keystore(path, password_env),
            KeySource::Env(var) => {
                let v = std::env::var(var).map_err(|_| KeyError::MissingEnv(var.clone()))?;
                (Zeroizing::new(v), var.clone())
            }
            KeySource::Dev(i) => {
                if !DEV_CHAIN_IDS.contains(&chain_id) {
                    return Err(KeyError::DevKeyOnPublicChain(chain_id));
                }
                (Zeroizing::new(DEV_KEYS[*i].to_string()), format!("dev:{i}"))
            }
        };
        let trimmed = hex.trim();
        let trimmed = trimmed.strip_prefix("0x").unwrap_or(trimmed);
        let mut bytes: B256 = trimmed.parse().map_err(|_| KeyError::Malformed(origin.clone()))?;
        let inner = FastSigner::from_bytes(&bytes);
        bytes.0.zeroize();
        Ok(Signer::from_inner(inner.map_err(|_| KeyError::Malformed(origin))?))
    }
}

/// A loaded signing key, optionally with a pool of precomputed nonces. Its `Debug` prints only the
/// address (and whether a pool is attached).
pub struct Signer {
    inner: FastSigner,
    /// The precomputed-nonce fast path, when started ([`Signer::with_presign`]).
    presign: Option<PresignPool>,
    /// The address in EIP-55 checksum form, computed once (it heads every `X-Flashbots-Signature`).
    address_text: AddressText,
}

/// `0x` and 40 checksummed hex digits.
#[derive(Clone, Copy)]
struct AddressText([u8; 42]);

impl AddressText {
    fn of(address: Address) -> Self {
        let mut buf = [0u8; 42];
        let _ = address.to_checksum_raw(&mut buf, None);
        AddressText(buf)
    }
}

impl Clone for Signer {
    /// The same key, without a pool: nonces are single-use, so a pool is never copied or shared. The
    /// clone signs on the plain libsecp256k1 path until it is given a pool of its own.
    fn clone(&self) -> Self {
        Signer { inner: self.inner.clone(), presign: None, address_text: self.address_text }
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.presign {
            None => write!(f, "Signer({}, key redacted)", self.inner.address()),
            Some(p) => write!(
                f,
                "Signer({}, key redacted, presign pool of {})",
                self.inner.address(),
                p.stats().capacity
            ),
        }
    }
}

impl Signer {
    /// A signer of `inner`'s key, without a pool.
    fn from_inner(inner: FastSigner) -> Signer {
        let address_text = AddressText::of(inner.address());
        Signer { inner, presign: None, address_text }
    }

    /// The account address.
    pub fn address(&self) -> Address {
        self.inner.address()
    }

    /// The address in EIP-55 checksum form (`0x…`, as `Display` writes it), computed once.
    pub fn address_checksummed(&self) -> &str {
        std::str::from_utf8(&self.address_text.0).unwrap_or_default()
    }

    /// Starts a pool of precomputed nonces for this key (a background thread fills it; see
    /// [`crate::presign`]). From then on [`Signer::sign_hash`] and [`Signer::sign_message`] sign with
    /// a pooled nonce when one is ready, and on the plain path otherwise. Replaces a pool already
    /// attached (its unused nonces are wiped).
    ///
    /// # Errors
    ///
    /// [`PresignError::InvalidCapacity`] for a capacity outside the accepted range,
    /// [`PresignError::Spawn`] if the thread cannot start. The signer is consumed either way; load
    /// it again (or clone it first) to keep a plain signer on error.
    pub fn with_presign(mut self, cfg: PresignConfig) -> Result<Signer, PresignError> {
        // Wiped on return; `PresignPool::new` wipes the copy it is given.
        let secret = Zeroizing::new(self.inner.credential().inner().secret_bytes());
        self.presign = Some(PresignPool::new(*secret, cfg)?);
        Ok(self)
    }

    /// Starts a pool of `capacity` precomputed nonces when `capacity > 0` (the `[router]
    /// presign_pool` setting, validated at load); keeps the plain signer, and logs why, if the pool
    /// cannot start (signing stays correct, at the plain path's speed: [`Signer::presign_stats`] is
    /// `None`).
    pub fn with_presign_pool(self, capacity: usize) -> Signer {
        if capacity == 0 {
            return self;
        }
        let plain = self.clone();
        match self.with_presign(PresignConfig { capacity }) {
            Ok(signer) => signer,
            Err(error) => {
                tracing::error!(address = %plain.address(), %error, "presign pool not started; signing without it");
                plain
            }
        }
    }

    /// Counters of the presign pool (signatures served from it, fallbacks, depth, producer state),
    /// or `None` without a pool.
    pub fn presign_stats(&self) -> Option<PresignStats> {
        self.presign.as_ref().map(PresignPool::stats)
    }

    /// Signs a 32-byte hash (a transaction's signature hash): with a precomputed nonce when a pool
    /// is attached and not empty, otherwise with libsecp256k1 (RFC 6979). Either way the signature is
    /// low-s with the y parity as Ethereum expects, and recovers to [`Signer::address`].
    pub fn sign_hash(&mut self, hash: &B256) -> Result<Signature, alloy::signers::Error> {
        if let Some(pool) = &mut self.presign
            && let Some(sig) = pool.try_sign_prehash(hash)
        {
            return Ok(sig);
        }
        self.inner.sign_hash_sync(hash)
    }

    /// EIP-191 `personal_sign` of a message (the hash is signed as [`Signer::sign_hash`] does).
    pub fn sign_message(&mut self, msg: &[u8]) -> Result<Signature, alloy::signers::Error> {
        self.sign_hash(&eip191_hash_message(msg))
    }

    /// The underlying alloy signer (for providers that sign their own transactions, e.g. set-up
    /// tools). It never uses the presign pool.
    pub fn alloy_signer(&self) -> &FastSigner {
        &self.inner
    }

    /// A signer for the N-th public development key (tests, the demo and local devnets only).
    pub fn dev(i: usize) -> Result<Signer, KeyError> {
        KeySource::Dev(i).load(DEV_CHAIN_ID)
    }

    /// The `i`-th derived development key: keccak256(`"keel-derived-dev-key"` ‖ i as 8 big-endian
    /// bytes). Public and deterministic, like [`Signer::dev`], for books of any size on local
    /// chains (the soak, the many-portfolio tests, devnets); never a key for real funds.
    pub fn derived_dev(i: u64) -> Result<Signer, KeyError> {
        let mut seed = Vec::with_capacity(28);
        seed.extend_from_slice(b"keel-derived-dev-key");
        seed.extend_from_slice(&i.to_be_bytes());
        let mut bytes = alloy::primitives::keccak256(&seed);
        let inner = FastSigner::from_bytes(&bytes);
        bytes.0.zeroize();
        Ok(Signer::from_inner(inner.map_err(|_| KeyError::Malformed(format!("derived dev key {i}")))?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_dev_keys_are_deterministic_and_distinct() {
        let a = Signer::derived_dev(0).unwrap().address();
        assert_eq!(a, Signer::derived_dev(0).unwrap().address());
        let all: std::collections::HashSet<Address> =
            (0..100).map(|i| Signer::derived_dev(i).unwrap().address()).collect();
        assert_eq!(all.len(), 100);
        assert_ne!(a, Signer::dev(0).unwrap().address());
    }

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
        assert_eq!(KeySource::Dev(0).load(10).unwrap_err(), KeyError::DevKeyOnPublicChain(10));
        assert!(KeySource::Dev(0).load(1337).is_ok() && KeySource::Dev(0).load(31337).is_ok());
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

    /// A v3 keystore of `DEV_KEYS[key]` encrypted with `password`, written as `dir/name`
    /// (alloy's default scrypt cost: n = 2^13, a few tens of milliseconds).
    fn write_keystore(dir: &Path, name: &str, key: usize, password: &str) -> PathBuf {
        let pk: B256 = DEV_KEYS[key].parse().unwrap();
        let mut rng = alloy::signers::k256::elliptic_curve::rand_core::OsRng;
        FastSigner::encrypt_keystore(dir, &mut rng, pk, password, Some(name)).unwrap();
        dir.join(name)
    }

    #[test]
    fn keystore_references_parse_with_default_or_named_password_variable() {
        let k = KeySource::try_from("keystore:/etc/keel/a.json".to_string()).unwrap();
        assert_eq!(
            k,
            KeySource::Keystore {
                path: "/etc/keel/a.json".into(),
                password_env: DEFAULT_KEYSTORE_PASSWORD_ENV.into()
            }
        );
        let k = KeySource::try_from("keystore:keys/b.json?password_env=ACCT_B_PASS".to_string()).unwrap();
        assert_eq!(k, KeySource::Keystore { path: "keys/b.json".into(), password_env: "ACCT_B_PASS".into() });
        assert_eq!(format!("{k:?}"), "keystore:keys/b.json?password_env=ACCT_B_PASS");
        for bad in [
            "keystore:",
            "keystore:?password_env=X",
            "keystore:a.json?password_env=",
            "keystore:a?password_env=1X",
        ] {
            assert!(matches!(KeySource::try_from(bad.to_string()), Err(KeyError::BadReference(_))), "{bad}");
        }
    }

    #[test]
    fn keystore_key_loads_into_the_fast_signer_and_errors_are_typed() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_keystore(dir.path(), "acct.json", 4, "correct horse");
        let (good, bad) = ("KEEL_TEST_KS_PASS_GOOD", "KEEL_TEST_KS_PASS_BAD");
        // SAFETY: variable names used by this test only, set before anything reads them.
        unsafe {
            std::env::set_var(good, "correct horse");
            std::env::set_var(bad, "battery staple");
        }
        let src = KeySource::try_from(format!("keystore:{}?password_env={good}", path.display())).unwrap();
        let s = src.load(1).unwrap();
        assert_eq!(s.address(), Signer::dev(4).unwrap().address());
        // It signs like the same key loaded any other way.
        let h = B256::repeat_byte(7);
        let mut s = s;
        assert_eq!(s.sign_hash(&h).unwrap(), Signer::dev(4).unwrap().sign_hash(&h).unwrap());
        let shown = format!("{src:?} {s:?} {s:#?}");
        assert!(!shown.contains(DEV_KEYS[4]) && !shown.contains("correct horse"), "{shown}");
        assert!(shown.contains("redacted"));

        let with =
            |var: &str, p: &Path| KeySource::Keystore { path: p.to_path_buf(), password_env: var.into() };
        let e = with(bad, &path).load(1).unwrap_err();
        assert_eq!(e, KeyError::KeystoreWrongPassword { path: path.clone(), var: bad.into() });
        assert!(!e.to_string().contains("battery") && e.is_recoverable(), "{e}");
        let e = with("KEEL_SURELY_UNSET_PASS", &path).load(1).unwrap_err();
        assert!(
            matches!(e, KeyError::KeystorePasswordMissing { ref var, .. } if var == "KEEL_SURELY_UNSET_PASS")
        );
        let missing = dir.path().join("nope.json");
        let e = with(good, &missing).load(1).unwrap_err();
        assert!(matches!(e, KeyError::KeystoreUnreadable { ref path, .. } if *path == missing), "{e}");
        let junk = dir.path().join("junk.json");
        std::fs::write(&junk, b"{\"version\": 3, \"crypto\": 1}").unwrap();
        let e = with(good, &junk).load(1).unwrap_err();
        assert!(matches!(e, KeyError::KeystoreMalformed { .. }), "{e}");
        assert!(!e.is_recoverable());
    }

    #[test]
    fn missing_env_is_named() {
        let e = KeySource::Env("KEEL_SURELY_UNSET_VAR".into()).load(1).unwrap_err();
        assert_eq!(e, KeyError::MissingEnv("KEEL_SURELY_UNSET_VAR".into()));
    }

    /// Dev key `i` with a pool whose precompute thread panics after making `made` nonces.
    fn signer_whose_producer_dies_after(i: usize, made: u64) -> Signer {
        use crate::presign::ProducerStatus;
        use crate::presign::test_support::{pool_whose_producer_panics_after, wait_until};
        let secret: B256 = DEV_KEYS[i].parse().unwrap();
        let pool = pool_whose_producer_panics_after(secret.0, 64, made);
        wait_until("the producer panicked", || pool.stats().producer == ProducerStatus::Panicked);
        Signer { presign: Some(pool), ..Signer::dev(i).unwrap() }
    }

    #[test]
    fn a_dead_precompute_thread_leaves_signing_correct_and_counts_fallbacks() {
        use alloy::signers::k256::ecdsa::{RecoveryId, Signature as K256Signature, VerifyingKey};
        let mut s = signer_whose_producer_dies_after(5, 5);
        let plain = Signer::dev(5).unwrap();
        let pk = alloy::signers::local::Secp256k1Credential::public_key(plain.alloy_signer().credential());
        let mut seen_r = std::collections::HashSet::new();
        for i in 0..200u32 {
            let hash = alloy::primitives::keccak256(i.to_be_bytes());
            let sig = s.sign_hash(&hash).unwrap();
            // libsecp256k1 verifies (it refuses high s) and recovers the key; alloy recovers the address.
            let msg = secp256k1::Message::from_digest(hash.0);
            let compact = &sig.as_bytes()[..64];
            let plain_sig = secp256k1::ecdsa::Signature::from_compact(compact).unwrap();
            secp256k1::SECP256K1.verify_ecdsa(&msg, &plain_sig, &pk).unwrap();
            let recid = secp256k1::ecdsa::RecoveryId::try_from(i32::from(sig.v())).unwrap();
            let rec = secp256k1::ecdsa::RecoverableSignature::from_compact(compact, recid).unwrap();
            assert_eq!(secp256k1::SECP256K1.recover_ecdsa(&msg, &rec).unwrap(), pk);
            assert_eq!(sig.recover_address_from_prehash(&hash).unwrap(), s.address());
            let k = K256Signature::from_slice(compact).unwrap();
            let v = VerifyingKey::recover_from_prehash(
                hash.as_slice(),
                &k,
                RecoveryId::from_byte(sig.v() as u8).unwrap(),
            );
            assert_eq!(alloy::primitives::Address::from_public_key(&v.unwrap()), s.address());
            assert!(seen_r.insert(sig.r()), "r repeated at {i}");
        }
        let stats = s.presign_stats().unwrap();
        assert_eq!((stats.signed_precomputed, stats.fallbacks, stats.pool_depth), (5, 195, 0), "{stats:?}");
    }

    #[test]
    fn a_fallback_signature_is_the_plain_signers_own() {
        let mut pooled = signer_whose_producer_dies_after(6, 1);
        let mut plain = Signer::dev(6).unwrap();
        let first = B256::repeat_byte(1);
        // The one pooled nonce is random: a valid signature, but not RFC 6979's.
        let from_pool = pooled.sign_hash(&first).unwrap();
        assert_eq!(from_pool.recover_address_from_prehash(&first).unwrap(), plain.address());
        assert_ne!(from_pool, plain.sign_hash(&first).unwrap());
        for i in 0..20u8 {
            let h = B256::repeat_byte(i);
            assert_eq!(pooled.sign_hash(&h).unwrap(), plain.sign_hash(&h).unwrap());
            let msg = [i; 40];
            assert_eq!(pooled.sign_message(&msg).unwrap(), plain.sign_message(&msg).unwrap());
            assert_eq!(
                plain.sign_message(&msg).unwrap(),
                plain.alloy_signer().sign_message_sync(&msg).unwrap()
            );
        }
        assert_eq!(pooled.presign_stats().unwrap().fallbacks, 40);
    }

    #[test]
    fn a_clone_never_shares_the_pool_and_debug_stays_redacted() {
        use crate::presign::{PresignConfig, PresignError};
        let pooled = Signer::dev(7).unwrap().with_presign(PresignConfig { capacity: 8 }).unwrap();
        let clone = pooled.clone();
        assert_eq!(clone.address(), pooled.address());
        assert!(clone.presign_stats().is_none());
        assert_eq!(pooled.presign_stats().unwrap().capacity, 8);
        let shown = format!("{pooled:?} {clone:?}");
        assert!(
            !shown.contains(DEV_KEYS[7]) && shown.contains("redacted") && shown.contains("presign"),
            "{shown}"
        );
        assert!(Signer::dev(7).unwrap().with_presign_pool(0).presign_stats().is_none());
        assert_eq!(Signer::dev(7).unwrap().with_presign_pool(4).presign_stats().unwrap().capacity, 4);
        // A pool that cannot start leaves a working plain signer (the config check refuses this
        // capacity before it gets here).
        let mut plain = Signer::dev(7).unwrap().with_presign_pool(crate::presign::MAX_CAPACITY + 1);
        assert!(plain.presign_stats().is_none());
        let h = B256::repeat_byte(9);
        assert_eq!(plain.sign_hash(&h).unwrap().recover_address_from_prehash(&h).unwrap(), plain.address());
        let err = Signer::dev(7).unwrap().with_presign(PresignConfig { capacity: 0 }).unwrap_err();
        assert!(matches!(err, PresignError::InvalidCapacity { capacity: 0, .. }), "{err}");
    }
}
