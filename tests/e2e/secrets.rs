//! No signer key in a full run's output: `keel demo` with its reputation key and one portfolio key
//! read from environment variables and the other portfolio key from an encrypted keystore file,
//! logging at debug level; its stdout, stderr and every file it writes are searched for the keys
//! (with or without `0x`, any case, and any 16-hex-digit piece of them) and the keystore password,
//! and so is the `Debug` of the key types.
//!
//! One test in this binary: it sets an environment variable for the in-process `Debug` check, so no
//! other test thread may run meanwhile.

use std::path::Path;
use std::process::Command;

use keel_router::signer::{FastSigner, KeySource, Signer};

/// The public anvil/hardhat development keys 1 and 9 (so the demo's funded accounts stay the same).
const DEV_KEY_1: &str = "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
const DEV_KEY_9: &str = "2a871d0798f97d79848a013d4936a73bf4ae0c57e9fdf8ef04f6b8c25a4d1ff6";
/// The public development key 2 (the demo's second account), loaded from an encrypted keystore.
const DEV_KEY_2: &str = "5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";
/// The keystore's password: it must not show up anywhere either.
const KEYSTORE_PASSWORD: &str = "keel-secrets-test-passphrase";
/// Shortest piece of a key that counts as a leak (64 bits: no accidental match in a log of hashes).
const PIECE: usize = 16;

/// Panics if `text` contains any `PIECE`-digit piece of `key`, case-insensitively.
fn assert_no_key(what: &str, text: &str, key: &str) {
    let text = text.to_ascii_lowercase();
    for start in 0..=key.len() - PIECE {
        let piece = &key[start..start + PIECE];
        if let Some(at) = text.find(piece) {
            let context = &text[at.saturating_sub(60)..(at + PIECE + 60).min(text.len())];
            panic!("{what} leaks key digits {start}..{}: …{context}…", start + PIECE);
        }
    }
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read out dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn a_full_run_and_debug_output_never_show_a_signer_key() {
    // Debug of the key types, in process.
    let var = "KEEL_TEST_SECRETS_DEBUG_KEY";
    // SAFETY: the only test of this binary; no other thread reads the environment meanwhile.
    unsafe { std::env::set_var(var, format!("0x{}", DEV_KEY_1.to_ascii_uppercase())) };
    let source = KeySource::try_from(format!("env:{var}")).expect("env reference");
    let loaded = source.load(1).expect("key from env");
    assert_eq!(loaded.address(), Signer::dev(1).expect("dev key").address());
    let dev = Signer::dev(9).expect("dev key");
    let shown = format!(
        "{source:?} {source:#?} {loaded:?} {loaded:#?} {dev:?} {dev:#?} {:?} {:?}",
        KeySource::Dev(9),
        KeySource::try_from(DEV_KEY_9.to_string()).map(|_| ()),
    );
    assert!(shown.contains(&format!("{}", loaded.address())), "Debug shows the address: {shown}");
    for key in [DEV_KEY_1, DEV_KEY_9] {
        assert_no_key("Debug of KeySource/Signer", &shown, key);
    }

    // An encrypted keystore of dev key 2, and its password in the environment.
    let dir = tempfile::tempdir().expect("tempdir");
    let pk: alloy::primitives::B256 = DEV_KEY_2.parse().expect("hex key");
    let mut rng = alloy::signers::k256::elliptic_curve::rand_core::OsRng;
    FastSigner::encrypt_keystore(dir.path(), &mut rng, pk, KEYSTORE_PASSWORD, Some("acct2.json"))
        .expect("write keystore");
    let keystore = dir.path().join("acct2.json");
    let pass_var = "KEEL_TEST_SECRETS_KS_PASS";
    // SAFETY: as above.
    unsafe { std::env::set_var(pass_var, KEYSTORE_PASSWORD) };
    let ks_ref = format!("keystore:{}?password_env={pass_var}", keystore.display());
    let ks_source = KeySource::try_from(ks_ref.clone()).expect("keystore reference");
    let ks_loaded = ks_source.load(1).expect("key from keystore");
    assert_eq!(ks_loaded.address(), Signer::dev(2).expect("dev key").address());
    let shown = format!("{ks_source:?} {ks_source:#?} {ks_loaded:?} {ks_loaded:#?}");
    assert_no_key("Debug of a keystore KeySource/Signer", &shown, DEV_KEY_2);
    assert!(!shown.contains(KEYSTORE_PASSWORD), "Debug shows the password: {shown}");

    // A full demo run with keys from the environment and the keystore, logging at debug level.
    let demo = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/demo.toml"))
        .expect("configs/demo.toml");
    let edited =
        demo.replacen(r#"reputation_key = "dev:9""#, r#"reputation_key = "env:KEEL_TEST_REP""#, 1).replacen(
            r#"accounts = ["dev:1", "dev:2","#,
            &format!(r#"accounts = ["env:KEEL_TEST_ACCT1", "{ks_ref}","#),
            1,
        );
    assert!(
        edited.contains("env:KEEL_TEST_REP")
            && edited.contains("env:KEEL_TEST_ACCT1")
            && edited.contains("keystore:"),
        "configs/demo.toml changed shape: update this test"
    );
    let config = dir.path().join("demo-env-keys.toml");
    std::fs::write(&config, edited).expect("write config");
    let out_dir = dir.path().join("out");
    let out = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["demo", "--duration", "6", "--quiet", "--log", "debug", "--out"])
        .arg(&out_dir)
        .arg("--config")
        .arg(&config)
        .env("KEEL_TEST_ACCT1", format!("0x{DEV_KEY_1}"))
        .env("KEEL_TEST_REP", format!("0x{DEV_KEY_9}"))
        .env(pass_var, KEYSTORE_PASSWORD)
        .env_remove("KEEL_LOG")
        .env_remove("RUST_LOG")
        .output()
        .expect("run keel demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The run must have got far enough to use the keys: a report, and bundles signed and sent.
    let report_path = out_dir.join("report.json");
    let report = std::fs::read_to_string(&report_path).unwrap_or_else(|e| {
        panic!("no report.json ({e}); status {}; stderr tail: {}", out.status, tail(&stderr))
    });
    let v: serde_json::Value = serde_json::from_str(&report).expect("report.json is JSON");
    assert!(
        out.status.success() || stderr.contains("no bundle landed"),
        "keel demo failed: {}; stderr tail: {}",
        out.status,
        tail(&stderr)
    );
    assert!(v["bundles_submitted"].as_u64().unwrap_or(0) >= 1, "nothing was signed: {report}");
    assert!(stderr.contains("DEBUG"), "debug logging was on");

    let mut searched =
        vec![("stdout".to_string(), stdout.into_owned()), ("stderr".to_string(), stderr.into_owned())];
    for file in files_under(&out_dir) {
        let bytes = std::fs::read(&file).expect("read output file");
        searched.push((file.display().to_string(), String::from_utf8_lossy(&bytes).into_owned()));
    }
    assert!(
        searched.len() >= 3,
        "report files written: {:?}",
        searched.iter().map(|s| &s.0).collect::<Vec<_>>()
    );
    for (what, text) in &searched {
        for key in [DEV_KEY_1, DEV_KEY_2, DEV_KEY_9] {
            assert_no_key(what, text, key);
        }
        assert!(!text.contains(KEYSTORE_PASSWORD), "{what} shows the keystore password");
    }
}

fn tail(s: &str) -> &str {
    let start = s.len().saturating_sub(2_000);
    let start = (start..s.len()).find(|&i| s.is_char_boundary(i)).unwrap_or(s.len());
    &s[start..]
}
