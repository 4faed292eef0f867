//! Matches `keel_amm::curve` to the wei against vectors generated with curvesim 0.5.0.
//!
//! The vectors (`oracle/curve_vectors.txt`, ~0.7 MB, committed) come from `oracle/curve_gen_vectors.py`, which
//! documents the format and how curvesim is configured per flavour. To regenerate them, or to run
//! a larger set:
//!
//! ```text
//! python3 -m venv .venv && .venv/bin/pip install curvesim==0.5.0
//! .venv/bin/python oracle/curve_gen_vectors.py                       # rewrites oracle/curve_vectors.txt
//! .venv/bin/python oracle/curve_gen_vectors.py --states 20000 --seed 7 --out /tmp/big.txt
//! KEEL_CURVE_VECTORS=/tmp/big.txt cargo test --test it oracle -- --nocapture
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;

use alloy_primitives::U256;
use keel_amm::curve::{AmpRamp, CurveError, Flavour, StableSwapPool, Step};

/// Trade vectors from pure curvesim (`cs`) that must match per flavour in the committed file.
const MIN_PER_FLAVOUR: usize = 3000;

/// One `P` line.
#[derive(Debug)]
struct State {
    flavour: Flavour,
    /// `cs`: pure curvesim; `ext`: curvesim subclass with A_PRECISION (mid-ramp factory states).
    src: String,
    decimals: Vec<u8>,
    balances: Vec<U256>,
    ramp: AmpRamp,
    timestamp: u64,
    fee: u64,
    admin_fee: u64,
    a_t: U256,
    /// `None`: get_D does not converge in 255 iterations.
    d: Option<U256>,
}

/// What a `T` line expects.
#[derive(Debug)]
enum Expect {
    Revert,
    NoConvergence,
    Swap { dy_view: U256, dy: U256, new_bal_j: U256 },
}

fn num(s: &str) -> U256 {
    U256::from_str_radix(s, 10).unwrap_or_else(|e| panic!("bad integer {s:?}: {e}"))
}

fn small<T: std::str::FromStr>(s: &str) -> T {
    s.parse().unwrap_or_else(|_| panic!("bad integer {s:?}"))
}

fn parse_state(f: &[&str]) -> State {
    let flavour = match f[1] {
        "3pool" => Flavour::ThreePool,
        "factory" => Flavour::FactoryPlain,
        other => panic!("unknown flavour {other}"),
    };
    let n: usize = small(f[3]);
    let rest = &f[4..];
    assert_eq!(rest.len(), 2 * n + 9, "P line length");
    let decimals = rest[..n].iter().map(|s| small(s)).collect();
    let balances = rest[n..2 * n].iter().map(|s| num(s)).collect();
    let t = &rest[2 * n..];
    State {
        flavour,
        src: f[2].to_string(),
        decimals,
        balances,
        ramp: AmpRamp {
            initial_a: num(t[0]),
            future_a: num(t[1]),
            initial_a_time: small(t[2]),
            future_a_time: small(t[3]),
        },
        timestamp: small(t[4]),
        fee: small(t[5]),
        admin_fee: small(t[6]),
        a_t: num(t[7]),
        d: (t[8] != "N").then(|| num(t[8])),
    }
}

fn parse_trade(f: &[&str]) -> (usize, usize, U256, Expect) {
    let (i, j, dx) = (small(f[1]), small(f[2]), num(f[3]));
    let expect = match f[4] {
        "R" => Expect::Revert,
        "N" => Expect::NoConvergence,
        _ => Expect::Swap { dy_view: num(f[4]), dy: num(f[5]), new_bal_j: num(f[6]) },
    };
    (i, j, dx, expect)
}

/// Checks one trade; `Err` describes the mismatch.
fn check_trade(
    pool: &StableSwapPool,
    st: &State,
    i: usize,
    j: usize,
    dx: U256,
    expect: &Expect,
) -> Result<(), String> {
    let t = st.timestamp;
    let view = pool.get_dy(i, j, dx, t);
    let exch = pool.exchange(i, j, dx, t);
    // The quoter (D solved once) must give the same answers wherever D exists.
    if let Ok(q) = pool.quoter(t)
        && (q.get_dy(i, j, dx) != view || q.exchange(i, j, dx) != exch)
    {
        return Err(format!("quoter disagrees: {:?} / {:?}", q.get_dy(i, j, dx), q.exchange(i, j, dx)));
    }
    match expect {
        Expect::Revert => match (view, exch) {
            (Err(CurveError::Underflow(Step::Dy)), Err(CurveError::Underflow(Step::Dy))) => Ok(()),
            other => Err(format!("expected a dy underflow revert, got {other:?}")),
        },
        Expect::NoConvergence => match (view, exch) {
            (Err(CurveError::NoConvergence(_)), Err(CurveError::NoConvergence(_))) => Ok(()),
            other => Err(format!("expected no convergence, got {other:?}")),
        },
        Expect::Swap { dy_view, dy, new_bal_j } => {
            let view = view.map_err(|e| format!("get_dy failed: {e:?}"))?;
            let out = exch.map_err(|e| format!("exchange failed: {e:?}"))?;
            let mut want = [U256::ZERO; 3];
            want[..st.balances.len()].copy_from_slice(&st.balances);
            want[i] += dx;
            want[j] = *new_bal_j;
            if view != *dy_view || out.dy != *dy || out.balances != want {
                return Err(format!(
                    "get_dy {view} (want {dy_view}), exchange dy {} (want {dy}), balances {:?} (want {want:?})",
                    out.dy, out.balances
                ));
            }
            Ok(())
        }
    }
}

#[test]
fn matches_curvesim_to_the_wei_on_every_vector() {
    let env = std::env::var("KEEL_CURVE_VECTORS").ok();
    let path = env
        .clone()
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/oracle/curve_vectors.txt").into());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {path}: {e}. Regenerate with `.venv/bin/pip install curvesim==0.5.0 && \
             .venv/bin/python oracle/curve_gen_vectors.py` (see tests/it/oracle.rs)"
        )
    });

    // (flavour, src, outcome) -> count
    let mut matched: BTreeMap<(String, String, &'static str), usize> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut pool: Option<(State, Result<StableSwapPool, CurveError>)> = None;
    for (line_no, line) in text.lines().enumerate().map(|(k, l)| (k + 1, l)) {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.first() {
            None | Some(&"#") => {}
            Some(&"P") => {
                let st = parse_state(&f);
                let p = StableSwapPool::with_decimals(
                    st.flavour,
                    &st.balances,
                    &st.decimals,
                    st.ramp,
                    st.fee,
                    st.admin_fee,
                );
                if let Ok(p) = &p {
                    let a = p.amp(st.timestamp);
                    let d = p.d(st.timestamp);
                    let d_ok = match st.d {
                        Some(want) => d == Ok(want),
                        None => d == Err(CurveError::NoConvergence(keel_amm::curve::Solver::D)),
                    };
                    if a != Ok(st.a_t) || !d_ok {
                        failures.push(format!(
                            "line {line_no}: A {a:?} (want {}), D {d:?} (want {:?})",
                            st.a_t, st.d
                        ));
                    } else {
                        let key = (format!("{:?}", st.flavour), st.src.clone(), "D");
                        *matched.entry(key).or_default() += 1;
                    }
                }
                pool = Some((st, p));
            }
            Some(&"T") => {
                let Some((st, p)) = &pool else { panic!("line {line_no}: trade before any pool") };
                let (i, j, dx, expect) = parse_trade(&f);
                let result = match p {
                    Ok(p) => check_trade(p, st, i, j, dx, &expect),
                    Err(e) => Err(format!("pool rejected: {e:?}")),
                };
                match result {
                    Ok(()) => {
                        let outcome = match expect {
                            Expect::Revert => "revert",
                            Expect::NoConvergence => "no-convergence",
                            Expect::Swap { .. } => "swap",
                        };
                        let key = (format!("{:?}", st.flavour), st.src.clone(), outcome);
                        *matched.entry(key).or_default() += 1;
                    }
                    Err(why) => failures.push(format!("line {line_no}: {line}\n    {why}")),
                }
            }
            Some(other) => panic!("line {line_no}: unknown record {other}"),
        }
    }

    let mut report = String::new();
    let mut per_flavour: BTreeMap<String, usize> = BTreeMap::new();
    for ((flavour, src, outcome), count) in &matched {
        let _ = writeln!(report, "  {flavour:<12} {src:<3} {outcome:<15} {count:>6} matched");
        if *outcome != "D" && src == "cs" {
            *per_flavour.entry(flavour.clone()).or_default() += count;
        }
    }
    println!("curvesim oracle vectors ({path}):\n{report}");
    assert!(
        failures.is_empty(),
        "{} mismatches (first 20):\n{}",
        failures.len(),
        failures.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
    if env.is_none() {
        for flavour in ["ThreePool", "FactoryPlain"] {
            let n = per_flavour.get(flavour).copied().unwrap_or(0);
            assert!(n >= MIN_PER_FLAVOUR, "{flavour}: only {n} trade vectors, want >= {MIN_PER_FLAVOUR}");
        }
    }
}
