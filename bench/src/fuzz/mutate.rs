//! Mutations of a seed input: bit flips, byte edits, truncation, deletion, insertion, duplication,
//! splices with another seed, and substitution of numbers by edge values — decimal and hex text
//! (lengths, chunk sizes, prices) or 32-byte ABI words (amounts, offsets, lengths).

use super::rng::Rng;

/// Edge values substituted for a number written as text (decimal or hex): zero, one, the ends of
/// 32-, 63- and 64-bit integers, one past them, and forms a lax parser might accept.
pub const TEXT_EDGES: &[&str] = &[
    "0",
    "1",
    "-1",
    "-0",
    "00000000000000000000000000000001",
    "7fffffff",
    "80000000",
    "ffffffff",
    "100000000",
    "7fffffffffffffff",
    "8000000000000000",
    "fffffffffffffffe",
    "ffffffffffffffff",
    "10000000000000000",
    "ffffffffffffffffffff",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "340282366920938463463374607431768211455",
    "1048576",
    "1048577",
    "1e308",
    "1e309",
    "-1e309",
    "4.9e-324",
    "NaN",
    "inf",
    "0.000000000000000000000000000001",
    "99999999999999999999999999999999999999999999.9",
    ".",
    "",
    " 5",
    "+5",
    "0x10",
];

/// Edge 32-byte words substituted into ABI-encoded data (big-endian).
fn word_edge(rng: &mut Rng) -> [u8; 32] {
    let mut w = [0u8; 32];
    match rng.below(12) {
        0 => {}
        1 => w[31] = 1,
        2 => w = [0xff; 32],
        3 => w[0] = 0x80,
        4 => {
            w[0] = 0x7f;
            w[1..].fill(0xff);
        }
        5 => w[24..].fill(0xff),                                           // u64::MAX
        6 => w[18..].fill(0xff),                                           // 2^112 − 1 (a V2 reserve's limit)
        7 => w[12..].fill(0xff),                                           // 2^160 − 1 (an address's)
        8 => w[16..].fill(0xff),                                           // u128::MAX
        9 => w[31] = [0x20, 0x40, 0x60, 0x80, 0xa0][rng.below(5)],         // an ABI offset
        10 => w[28..].copy_from_slice(&rng.next_u64().to_be_bytes()[4..]), // a 32-bit length
        _ => {
            // small negative two's complement (int24 ticks, int256 amounts)
            w = [0xff; 32];
            w[31] = rng.next_u64() as u8;
        }
    }
    w
}

/// Interesting single bytes for text formats.
const BYTES: &[u8] = b"\0\xff\x7f\x80\"\\{}[]:,\r\n -.0123456789abcdefEe;";

/// How to mutate one kind of input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Text (HTTP, JSON): number edges are decimal/hex strings.
    Text,
    /// ABI words after a header of `header` bytes: number edges are 32-byte words.
    Abi {
        /// Bytes before the first word.
        header: usize,
    },
}

/// Replaces `buf` with a mutation of `seed` (1 to 6 stacked edits), at most `max_len` bytes.
pub fn mutate(
    buf: &mut Vec<u8>,
    seed: &[u8],
    corpus: &[Vec<u8>],
    shape: Shape,
    rng: &mut Rng,
    max_len: usize,
) {
    buf.clear();
    buf.extend_from_slice(seed);
    let edits = 1 + rng.below(6);
    for _ in 0..edits {
        edit(buf, corpus, shape, rng);
    }
    buf.truncate(max_len);
}

fn edit(buf: &mut Vec<u8>, corpus: &[Vec<u8>], shape: Shape, rng: &mut Rng) {
    let len = buf.len();
    match rng.below(11) {
        0 if len > 0 => {
            let i = rng.below(len);
            buf[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            buf[i] = if rng.one_in(2) { *rng.pick(BYTES) } else { rng.next_u64() as u8 };
        }
        2 => buf.truncate(rng.below(len + 1)),
        3 if len > 0 => {
            let a = rng.below(len);
            let b = (a + 1 + rng.below(16.min(len - a))).min(len);
            buf.drain(a..b);
        }
        4 => {
            let at = rng.below(len + 1);
            let n = 1 + rng.below(8);
            let bytes: Vec<u8> = (0..n).map(|_| *rng.pick(BYTES)).collect();
            buf.splice(at..at, bytes);
        }
        5 if len > 0 => {
            // duplicate a range in place (repeated keys, chunks, headers)
            let a = rng.below(len);
            let b = (a + 1 + rng.below(64.min(len - a))).min(len);
            let piece = buf[a..b].to_vec();
            buf.splice(b..b, piece);
        }
        6 if !corpus.is_empty() => {
            // splice: our prefix, another seed's suffix
            let other = rng.pick(corpus);
            let cut = rng.below(len + 1);
            let from = rng.below(other.len() + 1);
            buf.truncate(cut);
            buf.extend_from_slice(&other[from..]);
        }
        7 | 8 => match shape {
            Shape::Text => substitute_text_number(buf, rng),
            Shape::Abi { header } => substitute_word(buf, header, rng),
        },
        9 if len > 1 => {
            // copy a range over another position
            let a = rng.below(len);
            let b = (a + 1 + rng.below(32.min(len - a))).min(len);
            let piece = buf[a..b].to_vec();
            let at = rng.below(len);
            let end = (at + piece.len()).min(len);
            buf[at..end].copy_from_slice(&piece[..end - at]);
        }
        _ => match shape {
            // the header of a structured input (lengths, block numbers, selectors) deserves its own flips
            Shape::Abi { header } if header >= 9 && len >= header && rng.one_in(2) => {
                // an edge 64-bit little-endian field (block numbers, log indices) at some offset
                let v = [0, 1, u64::MAX, u64::MAX - 1, 1 << 63, u64::from(u32::MAX)][rng.below(6)];
                let at = rng.below(header - 7);
                buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
            }
            Shape::Abi { header } if header > 0 && len >= header => {
                let i = rng.below(header);
                buf[i] =
                    if rng.one_in(3) { [0, 0xff, 0x7f, 0x80][rng.below(4)] } else { rng.next_u64() as u8 };
            }
            _ => {
                if len > 0 {
                    let i = rng.below(len);
                    buf[i] = buf[i].wrapping_add(1 + rng.below(3) as u8);
                }
            }
        },
    }
}

/// Replaces one run of number-like bytes (hex digits, `.`, `-`, `+`, `e`) with an edge value.
fn substitute_text_number(buf: &mut Vec<u8>, rng: &mut Rng) {
    let is_num = |b: u8| b.is_ascii_hexdigit() || b == b'.' || b == b'-' || b == b'+';
    let len = buf.len();
    if len == 0 {
        buf.extend_from_slice(rng.pick(TEXT_EDGES).as_bytes());
        return;
    }
    let start = rng.below(len);
    let Some(a) = (start..len).chain(0..start).find(|&i| buf[i].is_ascii_digit()) else {
        let at = rng.below(len + 1);
        buf.splice(at..at, rng.pick(TEXT_EDGES).bytes());
        return;
    };
    let mut lo = a;
    while lo > 0 && is_num(buf[lo - 1]) {
        lo -= 1;
    }
    let mut hi = a;
    while hi < len && is_num(buf[hi]) {
        hi += 1;
    }
    buf.splice(lo..hi, rng.pick(TEXT_EDGES).bytes());
}

/// Overwrites one 32-byte word (aligned after `header`, or anywhere one time in four) with an edge.
fn substitute_word(buf: &mut [u8], header: usize, rng: &mut Rng) {
    if buf.len() < header + 32 {
        return;
    }
    let at = if rng.one_in(4) {
        rng.below(buf.len() - 31)
    } else {
        header + 32 * rng.below((buf.len() - header) / 32)
    };
    let w = word_edge(rng);
    buf[at..at + 32].copy_from_slice(&w);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_size_is_replaced_by_an_edge_value_sometimes() {
        let seed = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n".to_vec();
        let mut rng = Rng::new(3);
        let mut buf = Vec::new();
        let mut saw_max = false;
        for _ in 0..200_000 {
            mutate(&mut buf, &seed, &[], Shape::Text, &mut rng, 1 << 16);
            saw_max |= buf.windows(18).any(|w| w == b"\nffffffffffffffff\r");
        }
        assert!(saw_max, "the fuzzer never wrote a chunk size of u64::MAX");
    }

    #[test]
    fn mutations_stay_within_the_length_cap() {
        let mut rng = Rng::new(9);
        let mut buf = Vec::new();
        let corpus = vec![vec![7u8; 300]];
        for _ in 0..10_000 {
            mutate(&mut buf, &[1u8; 200], &corpus, Shape::Abi { header: 4 }, &mut rng, 256);
            assert!(buf.len() <= 256);
        }
    }
}
