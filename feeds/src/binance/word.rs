//! Eight bytes at a time (SWAR): the word loads and byte classes the scanner and the number parser
//! share. Words are little-endian, so the first byte of the frame is the lowest byte of the word and
//! "first byte with property P" is `trailing_zeros / 8` of a mask with bit 7 set in each such byte.

/// `0x01` in every byte.
pub(crate) const LO: u64 = 0x0101_0101_0101_0101;
/// `0x80` in every byte.
pub(crate) const HI: u64 = 0x8080_8080_8080_8080;

/// The 8 bytes of `b` from `i`, little-endian, zero past the end of `b`.
///
/// The zero bytes are neither digits nor string bytes, so callers that stop at the first byte of
/// another class stop at the end of `b` at the latest.
#[inline(always)]
pub(crate) fn load8(b: &[u8], i: usize) -> u64 {
    if let Some(w) = b.get(i..).and_then(<[u8]>::first_chunk::<8>) {
        return u64::from_le_bytes(*w);
    }
    // Near the end: the last 8 bytes, shifted down so that `b[i]` is the lowest byte. Here
    // `i + 8 > len`, so the shift is 8 to 64 bits (64, for `i == len`, gives 0).
    match b.len().checked_sub(8).and_then(|s| b.get(s..)).and_then(<[u8]>::first_chunk::<8>) {
        Some(w) if i <= b.len() => {
            let shift = 8 * (i + 8 - b.len());
            u64::from_le_bytes(*w).checked_shr(shift as u32).unwrap_or(0)
        }
        _ => u64::from_le_bytes(padded(b, i)),
    }
}

/// The bytes of a short `b` from `i`, zero-padded to `N`.
#[cold]
#[inline(never)]
fn padded<const N: usize>(b: &[u8], i: usize) -> [u8; N] {
    let mut w = [0u8; N];
    let rest = b.get(i..).unwrap_or_default();
    for (dst, src) in w.iter_mut().zip(rest) {
        *dst = *src;
    }
    w
}

/// Bit 7 set in each byte of `w` that is `"`, `\\` or a control character (below 0x20).
///
/// Exact for the lowest such byte; bytes above it may be false positives, so only
/// `trailing_zeros` of the result is meaningful.
#[inline(always)]
pub(crate) const fn special_bytes(w: u64) -> u64 {
    const fn zero_byte(x: u64) -> u64 {
        x.wrapping_sub(LO) & !x & HI
    }
    let quote = zero_byte(w ^ (LO * b'"' as u64));
    let backslash = zero_byte(w ^ (LO * b'\\' as u64));
    let control = w.wrapping_sub(LO * 0x20) & !w & HI;
    quote | backslash | control
}

/// Bit 7 set in each byte of `w` that is not an ASCII digit. Exact for the lowest such byte;
/// bytes above it may be false positives, so only `trailing_zeros` of the result is meaningful.
#[inline(always)]
pub(crate) const fn non_digits(w: u64) -> u64 {
    // Below the first non-digit, every byte is 0x30..=0x39: `b - 0x30` is 0..=9 and `b + 0x46` is
    // 0x76..=0x7f, so neither sets bit 7 nor carries into the next byte. At the first non-digit,
    // `b - 0x30` sets bit 7 for `b < 0x30` and `b >= 0xb0`, `b + 0x46` for `0x3a <= b < 0xba`.
    (w.wrapping_add(LO * 0x46) | w.wrapping_sub(LO * 0x30)) & HI
}

/// Number of leading ASCII digits in `w` (0 to 8).
#[inline(always)]
pub(crate) const fn leading_digits(w: u64) -> usize {
    (non_digits(w).trailing_zeros() / 8) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_byte_scan() {
        for (i, special) in [b'"', b'\\', 0x00, 0x1f].into_iter().enumerate() {
            for pos in 0..8 {
                let mut w = *b"abcdefgh";
                w[pos] = special;
                let m = special_bytes(u64::from_le_bytes(w));
                assert_eq!(m.trailing_zeros() / 8, pos as u32, "case {i} at {pos}");
            }
        }
        for w in [*b"abcdefgh", *b"01234567", *b"  !#~\x7f\xff\x80", *b"USDT@boo"] {
            assert_eq!(special_bytes(u64::from_le_bytes(w)), 0, "{}", w.escape_ascii());
        }
    }

    #[test]
    fn every_byte_value_is_classified() {
        for b in 0..=255u8 {
            for pos in 0..8 {
                let mut w = *b"55555555";
                w[pos] = b;
                let w = u64::from_le_bytes(w);
                let want = if b.is_ascii_digit() { 8 } else { pos };
                assert_eq!(leading_digits(w), want, "byte {b:#04x} at {pos}");
                let special = b == b'"' || b == b'\\' || b < 0x20;
                assert_eq!(special_bytes(w) != 0, special, "byte {b:#04x} at {pos}");
            }
        }
        // Every digit/non-digit pattern of a word with hostile bytes.
        for pattern in 0..=255u32 {
            let mut w = [0u8; 8];
            for (k, byte) in w.iter_mut().enumerate() {
                *byte = if pattern >> k & 1 == 1 { b'0' + k as u8 } else { [b'/', b':', 0xff, 0xb9][k % 4] };
            }
            let want = w.iter().take_while(|b| b.is_ascii_digit()).count();
            assert_eq!(leading_digits(u64::from_le_bytes(w)), want, "{}", w.escape_ascii());
        }
    }

    #[test]
    fn loads_are_zero_past_the_end() {
        let b = b"0123456789abcdefghijklmnopqrstuvwxyz";
        for len in 0..=b.len() {
            let b = &b[..len];
            for i in 0..len + 3 {
                let mut want = [0u8; 8];
                for (k, w) in want.iter_mut().enumerate() {
                    *w = b.get(i + k).copied().unwrap_or(0);
                }
                assert_eq!(load8(b, i), u64::from_le_bytes(want), "len {len} at {i}");
            }
            assert_eq!(load8(b, usize::MAX), 0);
        }
    }
}
