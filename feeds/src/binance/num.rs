//! Number parsing (hot path): ASCII decimal strings to `f64`, JSON integers to `u64`.
//!
//! Digits are read eight at a time: one 8-byte load ([`load8`]), the count of leading digits
//! ([`leading_digits`]), and their value by three multiply-and-shift steps ([`digits_value`]) in
//! place of eight multiply-adds. A Binance decimal such as `"3199.00000000"` costs two such steps.
//!
//! Decimals take Clinger's fast path: when the digits, read as one integer mantissa, are at most
//! 2^53 (after dropping trailing zeros of the fraction, which does not change the value), the mantissa
//! is exact in an `f64`, so is `10^k` for `k <= 22`, and one IEEE division of two exact values is
//! correctly rounded. The result is therefore bit-identical to `str::parse::<f64>`. Anything longer,
//! or with an exponent, is validated here and handed to `str::parse::<f64>`.

use crate::binance::word::{leading_digits, load8};

/// Exact powers of ten representable in an `f64`.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18,
    1e19, 1e20, 1e21, 1e22,
];

/// `10^n` for the digit counts of one word (`n <= 8`).
const POW10_U64: [u64; 9] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000];

/// Largest mantissa that is exact in an `f64`.
const MAX_EXACT: u64 = 1 << 53;

/// Most digits a `u64` mantissa holds without overflow (`10^19 - 1 < 2^64`).
const MAX_DIGITS: usize = 19;

/// Value of the eight digits (0 to 9, one per byte) of `d`; the first byte is the most significant.
#[inline(always)]
const fn eight_digits(d: u64) -> u64 {
    // Pairs of bytes to 2-digit numbers in 16-bit lanes (10·a + b ≤ 99), then pairs of lanes to
    // 4-digit numbers in 32-bit lanes, then to the 8-digit number. No step carries across lanes.
    let d = (d.wrapping_mul(10) + (d >> 8)) & 0x00FF_00FF_00FF_00FF;
    let d = (d.wrapping_mul(100) + (d >> 16)) & 0x0000_FFFF_0000_FFFF;
    (d.wrapping_mul(10_000) + (d >> 32)) & 0xFFFF_FFFF
}

/// Value of the first `n` bytes of `w` (`n <= 8`), which must be ASCII digits; the first byte is the
/// most significant digit. Bytes from `n` on are ignored.
#[inline(always)]
const fn digits_value(w: u64, n: usize) -> u64 {
    const ASCII_ZEROS: u64 = 0x3030_3030_3030_3030;
    // Digits to 0..=9. A byte below `'0'` past the digits borrows from the bytes above it only, and
    // those are shifted out below.
    let d = w.wrapping_sub(ASCII_ZEROS);
    // Move the `n` digits to the top bytes: the bottom fills with zeros, i.e. leading zero digits.
    // `n == 0` shifts by 64, which `checked_shl` refuses: no digit, value 0 (so does `n > 8`, which
    // callers never pass).
    let d = match d.checked_shl(8u32.wrapping_sub(n as u32).wrapping_mul(8)) {
        Some(d) => d,
        None => 0,
    };
    eight_digits(d)
}

/// The decimal string `[0-9]+(\.[0-9]+)?"` that starts at `b[i]`, closing quote included, with at
/// most 8 digits on each side of the dot and 15 in all: its nearest `f64` and the index of the
/// quote. `None` for anything else (a sign, an exponent, longer parts); [`decimal_at`] takes those.
///
/// This is every decimal Binance sends in a `bookTicker` (`"0.35210000"`, `"3199.00000000"`,
/// `"7.6110"`, `"297"`): one 8-byte word for the integer part up to the dot, one for the fraction
/// up to the quote. At most 15 digits are below `10^15 < 2^53`, so the mantissa is exact and the one
/// division is correctly rounded: bit-identical to `str::parse`.
#[inline(always)]
pub(crate) fn quoted_decimal(b: &[u8], i: usize) -> Option<(f64, usize)> {
    let w = load8(b, i);
    let int_len = leading_digits(w);
    let int = digits_value(w, int_len);
    if int_len == 0 {
        return None;
    }
    match b.get(i + int_len) {
        // At most 8 digits: exact as an `i64` (which converts in one instruction) and an `f64`.
        Some(b'"') => Some((int as i64 as f64, i + int_len)),
        Some(b'.') => {
            let frac_start = i + int_len + 1;
            let w = load8(b, frac_start);
            let frac_len = leading_digits(w);
            let end = frac_start + frac_len;
            if frac_len == 0 || int_len + frac_len > 15 || b.get(end) != Some(&b'"') {
                return None;
            }
            let mant = int * POW10_U64[frac_len] + digits_value(w, frac_len);
            Some((mant as i64 as f64 / POW10[frac_len], end))
        }
        _ => None,
    }
}

/// Reads the run of digits at `b[i..]` into `mant` (while the total stays within [`MAX_DIGITS`])
/// and `digits` (always); returns the index after the run.
#[inline(always)]
fn digit_run(b: &[u8], mut i: usize, mant: &mut u64, digits: &mut usize) -> usize {
    loop {
        let w = load8(b, i);
        let n = leading_digits(w);
        if *digits + n <= MAX_DIGITS {
            *mant = *mant * POW10_U64[n] + digits_value(w, n);
        }
        *digits += n;
        i += n;
        if n < 8 {
            return i;
        }
    }
}

/// The correctly rounded `mant / 10^frac`, when Clinger's fast path applies.
#[inline(always)]
fn exact_quotient(mut mant: u64, mut frac: usize) -> Option<f64> {
    if mant > MAX_EXACT {
        // `1.23000000` is `123 / 10^2`: trailing zeros of the fraction are not significant.
        while frac > 0 && mant.is_multiple_of(10) {
            mant /= 10;
            frac -= 1;
        }
        if mant > MAX_EXACT {
            return None;
        }
    }
    Some(mant as f64 / *POW10.get(frac)?)
}

/// The decimal `-?[0-9]+(\.[0-9]+)?` that starts at `b[i]`: its value (nearest `f64`) and the index
/// of the byte after it, which the caller checks (this does not look at it).
///
/// `None` when the bytes at `i` do not start such a decimal, or it overflows to infinity.
#[inline(always)]
pub(crate) fn decimal_at(b: &[u8], i: usize) -> Option<(f64, usize)> {
    let start = i;
    let neg = b.get(i) == Some(&b'-');
    let int_start = i + usize::from(neg);
    let mut mant = 0;
    let mut digits = 0;
    let mut i = digit_run(b, int_start, &mut mant, &mut digits);
    if i == int_start {
        return None;
    }
    let mut frac = 0;
    if b.get(i) == Some(&b'.') {
        let frac_start = i + 1;
        i = digit_run(b, frac_start, &mut mant, &mut digits);
        frac = i - frac_start;
        if frac == 0 {
            return None;
        }
    }
    let fast = if digits <= MAX_DIGITS { exact_quotient(mant, frac) } else { None };
    match fast {
        Some(v) => Some((if neg { -v } else { v }, i)),
        None => Some((slow(b.get(start..i)?)?, i)),
    }
}

/// The JSON integer `0|[1-9][0-9]*` of at most 19 digits that starts at `b[i]`: its value and the
/// index of the byte after it, which the caller checks.
///
/// `None` for no digit, a leading zero, or more than 19 digits (which [`parse_u64`] handles).
#[inline(always)]
pub(crate) fn u64_at(b: &[u8], i: usize) -> Option<(u64, usize)> {
    let w = load8(b, i);
    let n = leading_digits(w);
    if n == 0 || (n > 1 && w as u8 == b'0') {
        return None;
    }
    let mut v = digits_value(w, n);
    let mut i = i + n;
    if n == 8 {
        let w = load8(b, i);
        let n = leading_digits(w);
        v = v * POW10_U64[n] + digits_value(w, n);
        i += n;
        if n == 8 {
            let w = load8(b, i);
            let n = leading_digits(w);
            if n > MAX_DIGITS - 16 {
                return None;
            }
            v = v * POW10_U64[n] + digits_value(w, n);
            i += n;
        }
    }
    Some((v, i))
}

/// Parses a decimal such as `"0.35130000"`, `"297"`, `"-1.5"` or `"1.2e-5"` to the nearest `f64`.
///
/// Grammar: `-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?`. Returns `None` for anything else (empty input,
/// `inf`, `NaN`, a leading `+`, a lone dot) and for values that overflow to infinity. Never panics and
/// never allocates.
#[inline]
pub fn parse_decimal(s: &[u8]) -> Option<f64> {
    match decimal_at(s, 0) {
        Some((v, end)) if end == s.len() => Some(v),
        _ => with_exponent(s),
    }
}

/// [`parse_decimal`] for what is not a plain decimal: validated against the full grammar (with an
/// exponent), then parsed by the standard library.
#[cold]
fn with_exponent(s: &[u8]) -> Option<f64> {
    let digits = |mut i: usize| {
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let mut i = usize::from(s.first() == Some(&b'-'));
    let int_start = i;
    i = digits(i);
    if i == int_start {
        return None;
    }
    if s.get(i) == Some(&b'.') {
        let frac_start = i + 1;
        i = digits(frac_start);
        if i == frac_start {
            return None;
        }
    }
    if !matches!(s.get(i), Some(b'e' | b'E')) {
        return None;
    }
    i += 1;
    if matches!(s.get(i), Some(b'+' | b'-')) {
        i += 1;
    }
    let exp_start = i;
    i = digits(i);
    if i == exp_start || i != s.len() {
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

/// Parses a non-negative JSON integer (`[0-9]+`, leading zeros allowed) that fits in a `u64`.
#[inline]
pub fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    if s.len() <= MAX_DIGITS {
        // At most 19 digits cannot overflow a u64. Whole words, then the rest (`load8` reads no
        // further than `s`).
        let mut v: u64 = 0;
        let mut i = 0;
        while i < s.len() {
            let n = (s.len() - i).min(8);
            let w = load8(s, i);
            if leading_digits(w) < n {
                return None;
            }
            v = v * POW10_U64[n] + digits_value(w, n);
            i += n;
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
            "9007199254740992",
            "90071992547409930.000",
            "123456789.00000000",
            "12345678912.34567800",
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
        assert_eq!(parse_u64(b"000000000000000000001"), Some(1));
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"-1"), None);
        assert_eq!(parse_u64(b"1.0"), None);
        assert_eq!(parse_u64(b"12345678a"), None);
        assert_eq!(parse_u64(b"1234567\0"), None);
    }

    #[test]
    fn eight_digits_at_a_time() {
        for s in ["", "0", "7", "42", "12345678", "00000001", "99999999", "10000000", "3199"] {
            let w = load8(s.as_bytes(), 0);
            let want: u64 = if s.is_empty() { 0 } else { s.parse().unwrap_or_default() };
            assert_eq!(digits_value(w, s.len()), want, "{s}");
        }
        // Bytes past `n` are ignored, whatever they are.
        assert_eq!(digits_value(u64::from_le_bytes(*b"123\"\0\xff/:"), 3), 123);
        assert_eq!(digits_value(u64::from_le_bytes(*b"0\x00\x00\x00\x00\x00\x00\x00"), 1), 0);
    }

    #[test]
    fn integers_at_a_position() {
        let f = br#"{"u":600859600576,"T":0,"E":01,"x":1234567890123456789,"y":12345678901234567890}"#;
        assert_eq!(u64_at(f, 5), Some((600_859_600_576, 17)));
        assert_eq!(u64_at(f, 22), Some((0, 23)));
        assert_eq!(u64_at(f, 28), None);
        assert_eq!(u64_at(f, 35), Some((1_234_567_890_123_456_789, 54)));
        assert_eq!(u64_at(f, 59), None);
        assert_eq!(u64_at(f, 0), None);
        assert_eq!(u64_at(b"12", 0), Some((12, 2)));
        assert_eq!(u64_at(b"1234567812345678", 0), Some((1_234_567_812_345_678, 16)));
    }

    #[test]
    fn decimals_at_a_position() {
        let f = br#""b":"0.35210000","B":"3199.00000000","x":"1.","y":"-2.5e3""#;
        assert_eq!(decimal_at(f, 5), Some((0.3521, 15)));
        assert_eq!(decimal_at(f, 22), Some((3199.0, 35)));
        assert_eq!(decimal_at(f, 42), None);
        assert_eq!(decimal_at(f, 51), Some((-2.5, 55)));
        assert_eq!(decimal_at(b"", 0), None);
        assert_eq!(decimal_at(b"-", 0), None);
    }

    fn quoted(s: &str) -> Option<f64> {
        let framed = format!("\"{s}\"}}");
        quoted_decimal(framed.as_bytes(), 1).map(|(v, end)| {
            assert_eq!(end, s.len() + 1);
            v
        })
    }

    #[test]
    fn quoted_decimals() {
        for s in [
            "0.35210000",
            "672.00000000",
            "3199.00000000",
            "61234.56000000",
            "7.6110",
            "2",
            "297",
            "0",
            "0.0",
        ] {
            assert_eq!(quoted(s).map(f64::to_bits), std_parse(s).map(f64::to_bits), "{s}");
        }
        for s in ["00012.5", "12345678", "1234567.12345678", "9999999.99999999"] {
            assert_eq!(quoted(s).map(f64::to_bits), std_parse(s).map(f64::to_bits), "{s}");
        }
        for s in ["12345678.12345678", "123456789", "1.123456789", "123456789.1"] {
            assert_eq!(quoted(s), None, "{s}: longer than the fast form");
        }
        for s in ["", ".", "1.", ".5", "-1", "1.2.3", "1e5", "1..2", "+1", "1 ", "1\\", "1.5e"] {
            assert_eq!(quoted(s), None, "{s:?}");
        }
        // Truncated.
        assert_eq!(quoted_decimal(b"\"1.5", 1), None);
        assert_eq!(quoted_decimal(b"\"15", 1), None);
        assert_eq!(quoted_decimal(b"", 0), None);
    }

    proptest! {
        #[test]
        fn quoted_decimal_matches_parse_decimal(s in "[0-9.]{0,18}", tail in "[0-9.\"}e-]{0,4}") {
            let want = parse_decimal(s.as_bytes()).map(f64::to_bits);
            let framed = format!("{s}\"{tail}");
            let got = quoted_decimal(framed.as_bytes(), 0);
            // `None` is allowed (the caller falls back); an answer must be parse_decimal's.
            if let Some((v, end)) = got {
                prop_assert_eq!((Some(v.to_bits()), end), (want, s.len()), "{:?}", s);
            }
            // The Binance forms are always answered.
            let parts: Vec<&str> = s.split('.').collect();
            if want.is_some() && parts.iter().all(|p| p.len() <= 8) && s.len() - (parts.len() - 1) <= 15 {
                prop_assert!(got.is_some(), "{:?}", s);
            }
        }

        #[test]
        fn decimal_matches_std(int in "[0-9]{1,20}", frac in proptest::option::of("[0-9]{1,25}"), neg: bool) {
            let mut s = String::new();
            if neg { s.push('-'); }
            s.push_str(&int);
            if let Some(f) = frac { s.push('.'); s.push_str(&f); }
            prop_assert_eq!(parse_decimal(s.as_bytes()).map(f64::to_bits), std_parse(&s).map(f64::to_bits));
        }

        #[test]
        fn decimal_with_trailing_zeros_matches_std(
            int in "[1-9][0-9]{0,11}", frac in "[0-9]{0,8}", zeros in 0usize..12,
        ) {
            let s = format!("{int}.{frac}{}", "0".repeat(zeros.max(usize::from(frac.is_empty()))));
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
            for i in 0..=b.len() + 1 {
                let _ = decimal_at(&b, i);
                let _ = u64_at(&b, i);
            }
        }

        #[test]
        fn u64_matches_std(v: u64) {
            prop_assert_eq!(parse_u64(v.to_string().as_bytes()), Some(v));
            let s = format!("{v},");
            let want = (v.to_string().len() <= 19).then_some((v, s.len() - 1));
            prop_assert_eq!(u64_at(s.as_bytes(), 0), want);
        }

        #[test]
        fn digits_value_matches_std(v in 0u64..100_000_000, tail: [u8; 8]) {
            let s = v.to_string();
            let mut w = tail;
            w[..s.len()].copy_from_slice(s.as_bytes());
            prop_assert_eq!(digits_value(u64::from_le_bytes(w), s.len()), v);
        }
    }
}
