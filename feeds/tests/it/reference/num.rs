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
