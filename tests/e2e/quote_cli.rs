//! `keel quote` as an operator runs it: JSON from a file or stdin, JSON on stdout; bad input exits 2
//! with one line on stderr naming the field.

use std::io::Write;
use std::process::{Command, Stdio};

const A: &str = "0x1000000000000000000000000000000000000001";
const B: &str = "0x2000000000000000000000000000000000000002";

fn request() -> serde_json::Value {
    serde_json::json!({
        "pools": [
            {"id": "v2-a", "kind": "uniswap_v2", "token0": A, "token1": B,
             "reserve0": "5000000000000000000", "reserve1": "10000000000000000000", "fee_bps": 30, "gas": 90000}
        ],
        "sell": A, "buy": B, "amount_in": "1000000000000000000"
    })
}

fn quote_stdin(input: &[u8]) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
        .arg("quote")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn quotes_uniswaps_own_number_from_stdin_and_file() {
    let out = quote_stdin(request().to_string().as_bytes());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // getAmountOut(1e18, 5e18, 10e18) from Uniswap's own V2 tests.
    assert_eq!(r["amount_out"], "1662497915624478906");
    assert_eq!(r["legs"][0]["pool"], "v2-a");
    assert_eq!(r["legs"][0]["reserve0_after"], "6000000000000000000");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("req.json");
    std::fs::write(&file, request().to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_keel")).arg("quote").arg(&file).output().unwrap();
    assert!(out.status.success());
    let r2: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r, r2);
}

#[test]
fn bad_input_exits_2_with_one_line_naming_the_field() {
    let mut both = request();
    both["amount_out"] = serde_json::json!("5");
    let mut bad_int = request();
    bad_int["amount_in"] = serde_json::json!("12x");
    for (input, field) in
        [(both.to_string(), "amount"), (bad_int.to_string(), "amount_in"), ("{not json".to_string(), "")]
    {
        let out = quote_stdin(input.as_bytes());
        assert_eq!(out.status.code(), Some(2), "{input}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "one line expected: {err}");
        assert!(err.contains(field), "{err}");
        assert!(out.stdout.is_empty());
    }
}
