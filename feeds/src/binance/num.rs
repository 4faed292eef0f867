//! Number parsing for the decoder (hot path): ASCII decimal strings to `f64` and JSON integers to `u64`.
//!
//! Decimals take Clinger's fast path: an integer mantissa of at most 15 significant digits is exact in
//! an `f64`, so is `10^k` for `k <= 22`, and one IEEE division of two exact values is correctly rounded.
//! The result is therefore bit-identical to `str::parse::<f64>`. Anything longer, or with an exponent,
//! is validated here and handed to `str::parse::<f64>`.

/// Exact powers of ten representable in an `f64`.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18,
    1e19, 1e20, 1e21, 1e22,
];

/// Most significant digits for which the mantissa is exact (`10^15 < 2^53`).
const MAX_FAST_DIGITS: u32 = 15;

/// Parses a decimal such as `"0.35130000"`, `"297"`, `"-1.5"` or `"1.2e-5"` to the nearest `f64`.
///
/// Grammar: `-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?`. Returns `None` for anything else (empty input,
/// `inf`, `NaN`, a leading `+`, a lone dot) and for values that overflow to infinity. Never panics and
/// never allocates.
#[inline]
pub fn parse_decimal(s: &[u8]) -> Option<f64> {
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    let mut mant: u64 = 0;
    let mut sig: u32 = 0;
    let mut frac: u32 = 0;
    let mut int_digits: u32 = 0;
    let mut i = 0;
    // Integer part.
    while let Some(&c) = digits.get(i) {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        if mant != 0 || d != 0 {
            sig += 1;
        }
        mant = mant.wrapping_mul(10).wrapping_add(u64::from(d));
        int_digits += 1;
        i += 1;
    }
    if int_digits == 0 {
        return None;
    }
    // Fraction.
    if digits.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while let Some(&c) = digits.get(i) {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            if mant != 0 || d != 0 {
                sig += 1;
            }
            mant = mant.wrapping_mul(10).wrapping_add(u64::from(d));
            i += 1;
        }
        if i == start {
            return None;
        }
        frac = (i - start).min(u32::MAX as usize) as u32;
    }
    if i == digits.len() {
        if sig <= MAX_FAST_DIGITS && (frac as usize) < POW10.len() {
            let v = mant as f64 / POW10[frac as usize];
            return Some(if neg { -v } else { v });
        }
        return slow(s);
    }
    // Exponent.
    match digits.get(i) {
        Some(b'e' | b'E') => {}
        _ => return None,
    }
    i += 1;
    if matches!(digits.get(i), Some(b'+' | b'-')) {
        i += 1;
    }
    let start = i;
    while digits.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    if i == start || i != digits.len() {
        return None;
    }
    slow(s)
}

/// The general path for input already validated against the decimal grammar.
#[cold]
fn slow(s: &[u8]) -> Option<f64> {
    let v: f64 = std::str::from_utf8(s).ok()?.parse().ok()?;
    v.is_finite().then_some(v)
}

/// Parses a non-negative JSON integer (`[0-9]+`) that fits in a `u64`.
#[inline]
pub fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    if s.len() <= 19 {
        // At most 19 digits cannot overflow a u64.
        let mut v: u64 = 0;
        for &c in s {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            v = v * 10 + u64::from(d);
        }
        return Some(v);
    }
    let mut v: u64 = 0;
    for &c in s {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d))?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn std_parse(s: &str) -> Option<f64> {
        s.parse::<f64>().ok().filter(|v| v.is_finite())
    }

    #[test]
    fn typical_binance_decimals() {
        for s in [
            "0.35130000",
            "6195.00000000",
            "7.6110",
            "2",
            "0.01737",
            "297.32000000",
            "0.00000000",
            "61234.56000000",
            "0.1",
            "-0.1",
            "123456789012345",
            "1234567890123456789",
            "0.12345678901234567890",
            "1e-7",
            "1.5E+3",
            "-0",
            "00012.5",
            "9007199254740993",
            "179769313486231570000000000000000000000000000000000000000000000000000000000000000000",
        ] {
            assert_eq!(parse_decimal(s.as_bytes()).map(f64::to_bits), std_parse(s).map(f64::to_bits), "{s}");
        }
    }

    #[test]
    fn rejects_non_decimals() {
        for s in
            ["", "-", ".", "1.", ".5", "+1", "inf", "NaN", "1e", "1e+", "1.2.3", "1 ", " 1", "0x10", "1e400"]
        {
            assert_eq!(parse_decimal(s.as_bytes()), None, "{s:?}");
        }
    }

    #[test]
    fn integers() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"600859600576"), Some(600_859_600_576));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b"99999999999999999999"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"-1"), None);
        assert_eq!(parse_u64(b"1.0"), None);
    }

    proptest! {
        #[test]
        fn decimal_matches_std(int in "[0-9]{1,20}", frac in proptest::option::of("[0-9]{1,25}"), neg: bool) {
            let mut s = String::new();
            if neg { s.push('-'); }
            s.push_str(&int);
            if let Some(f) = frac { s.push('.'); s.push_str(&f); }
            prop_assert_eq!(parse_decimal(s.as_bytes()).map(f64::to_bits), std_parse(&s).map(f64::to_bits));
        }

        #[test]
        fn decimal_from_f64_roundtrip(v in 0.0f64..1e12, places in 0usize..12) {
            let s = format!("{v:.places$}");
            prop_assert_eq!(parse_decimal(s.as_bytes()).map(f64::to_bits), std_parse(&s).map(f64::to_bits));
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = parse_decimal(&b);
            let _ = parse_u64(&b);
        }

        #[test]
        fn u64_matches_std(v: u64) {
            prop_assert_eq!(parse_u64(v.to_string().as_bytes()), Some(v));
        }
    }
}
