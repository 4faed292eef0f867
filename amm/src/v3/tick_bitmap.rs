//! `TickBitmap.sol`: the packed initialized-tick bitmap and `nextInitializedTickWithinOneWord`.
//!
//! [`TickBitmap`] is the contract's data structure (`int16 → uint256` words of compressed ticks). The
//! pool's swap loop uses a sorted tick array with the same word-bounded search semantics
//! ([`word_bounds`] gives the bounds), and a property test checks the two agree.

use std::collections::BTreeMap;

use alloy_primitives::U256;

use super::{Result, V3Error};

/// `tick / tickSpacing` rounded towards negative infinity (the contract's `compressed`).
#[inline(always)]
pub fn compress(tick: i32, tick_spacing: i32) -> i32 {
    tick.div_euclid(tick_spacing)
}

/// `(wordPos, bitPos)` of a compressed tick: `compressed >> 8` (arithmetic) and `compressed mod 256`.
#[inline(always)]
pub fn position(compressed: i32) -> (i16, u8) {
    ((compressed >> 8) as i16, (compressed & 0xff) as u8)
}

/// The search window of `nextInitializedTickWithinOneWord` in *compressed* ticks: for `lte` the
/// window is `[word start, compressed]` (searched downwards), otherwise `[compressed + 1, word end]`
/// of the word holding `compressed + 1` (searched upwards). Returns `(from, to)` inclusive, with
/// `to` the value returned (times spacing) when nothing in the window is initialized.
#[inline(always)]
pub fn word_bounds(tick: i32, tick_spacing: i32, lte: bool) -> (i32, i32) {
    let compressed = compress(tick, tick_spacing);
    if lte {
        (compressed, compressed - (compressed & 0xff))
    } else {
        let next = compressed + 1;
        (next, next + (255 - (next & 0xff)))
    }
}

/// The contract's bitmap: word position → 256 flags of compressed ticks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickBitmap {
    words: BTreeMap<i16, U256>,
}

impl TickBitmap {
    /// Empty bitmap.
    pub fn new() -> Self {
        Self::default()
    }

    /// `flipTick`: toggles a tick's initialized flag; the tick must be a multiple of the spacing.
    pub fn flip_tick(&mut self, tick: i32, tick_spacing: i32) -> Result<()> {
        if tick_spacing <= 0 {
            return Err(V3Error::BadTickSpacing(tick_spacing));
        }
        if tick % tick_spacing != 0 {
            return Err(V3Error::TickNotSpaced { tick, spacing: tick_spacing });
        }
        let (word, bit) = position(tick / tick_spacing);
        let entry = self.words.entry(word).or_default();
        *entry ^= U256::from(1u8) << bit;
        if entry.is_zero() {
            self.words.remove(&word);
        }
        Ok(())
    }

    /// Whether a (spaced) tick is flagged.
    pub fn is_initialized(&self, tick: i32, tick_spacing: i32) -> bool {
        if tick_spacing <= 0 || tick % tick_spacing != 0 {
            return false;
        }
        let (word, bit) = position(tick / tick_spacing);
        self.words.get(&word).is_some_and(|w| w.bit(bit as usize))
    }

    /// `nextInitializedTickWithinOneWord`: the next initialized tick at or left of `tick` (`lte`) or
    /// strictly right of it, looking only within one 256-tick word; when none is found, the word's
    /// edge with `initialized = false`. `tick_spacing` must be positive.
    pub fn next_initialized_tick_within_one_word(
        &self,
        tick: i32,
        tick_spacing: i32,
        lte: bool,
    ) -> (i32, bool) {
        let compressed = compress(tick, tick_spacing);
        if lte {
            let (word, bit) = position(compressed);
            // all the 1s at or to the right of the current bit
            let mask = (U256::from(1u8) << bit) - U256::from(1u8) + (U256::from(1u8) << bit);
            let masked = self.words.get(&word).copied().unwrap_or_default() & mask;
            if masked.is_zero() {
                ((compressed - bit as i32) * tick_spacing, false)
            } else {
                let msb = masked.bit_len() as i32 - 1;
                ((compressed - (bit as i32 - msb)) * tick_spacing, true)
            }
        } else {
            let (word, bit) = position(compressed + 1);
            // all the 1s at or to the left of the bit
            let mask = !((U256::from(1u8) << bit) - U256::from(1u8));
            let masked = self.words.get(&word).copied().unwrap_or_default() & mask;
            if masked.is_zero() {
                ((compressed + 1 + (255 - bit as i32)) * tick_spacing, false)
            } else {
                let lsb = masked.trailing_zeros() as i32;
                ((compressed + 1 + (lsb - bit as i32)) * tick_spacing, true)
            }
        }
    }
}

/// Free-function form of [`TickBitmap::next_initialized_tick_within_one_word`].
pub fn next_initialized_tick_within_one_word(
    bitmap: &TickBitmap,
    tick: i32,
    tick_spacing: i32,
    lte: bool,
) -> (i32, bool) {
    bitmap.next_initialized_tick_within_one_word(tick, tick_spacing, lte)
}

#[cfg(test)]
mod tests {
    use super::*;

    // v3-core test/TickBitmap.spec.ts (tick spacing 1).
    fn setup() -> TickBitmap {
        let mut b = TickBitmap::new();
        for t in [70, 78, 84, 139, 240, 535] {
            b.flip_tick(t, 1).unwrap();
        }
        b
    }

    #[test]
    fn flip_tick() {
        let mut b = TickBitmap::new();
        assert!(!b.is_initialized(1, 1));
        b.flip_tick(1, 1).unwrap();
        assert!(b.is_initialized(1, 1));
        b.flip_tick(1, 1).unwrap();
        assert!(!b.is_initialized(1, 1));
        b.flip_tick(2, 1).unwrap();
        assert!(!b.is_initialized(1, 1));
        b.flip_tick(1 + 256, 1).unwrap();
        assert!(b.is_initialized(257, 1));
        assert!(!b.is_initialized(1, 1));

        let mut b = TickBitmap::new();
        b.flip_tick(-230, 1).unwrap();
        assert!(b.is_initialized(-230, 1));
        for t in [-231, -229, -230 + 256, -230 - 256] {
            assert!(!b.is_initialized(t, 1));
        }
        b.flip_tick(-230, 1).unwrap();
        for t in [-230, -231, -229, -230 + 256, -230 - 256] {
            assert!(!b.is_initialized(t, 1));
        }

        let mut b = TickBitmap::new();
        for t in [-230, -259, -229, 500, -259, -229, -259] {
            b.flip_tick(t, 1).unwrap();
        }
        assert!(b.is_initialized(-259, 1));
        assert!(!b.is_initialized(-229, 1));

        assert_eq!(b.flip_tick(61, 60), Err(V3Error::TickNotSpaced { tick: 61, spacing: 60 }));
    }

    #[test]
    fn next_initialized_lte_false() {
        let mut b = setup();
        assert_eq!(b.next_initialized_tick_within_one_word(78, 1, false), (84, true));
        assert_eq!(b.next_initialized_tick_within_one_word(77, 1, false), (78, true));
        assert_eq!(b.next_initialized_tick_within_one_word(255, 1, false), (511, false));
        assert_eq!(b.next_initialized_tick_within_one_word(508, 1, false), (511, false));
        assert_eq!(b.next_initialized_tick_within_one_word(383, 1, false), (511, false));
        b.flip_tick(340, 1).unwrap();
        assert_eq!(b.next_initialized_tick_within_one_word(328, 1, false), (340, true));
    }

    #[test]
    fn next_initialized_lte_true() {
        let mut b = setup();
        assert_eq!(b.next_initialized_tick_within_one_word(78, 1, true), (78, true));
        assert_eq!(b.next_initialized_tick_within_one_word(79, 1, true), (78, true));
        assert_eq!(b.next_initialized_tick_within_one_word(258, 1, true), (256, false));
        assert_eq!(b.next_initialized_tick_within_one_word(256, 1, true), (256, false));
        assert_eq!(b.next_initialized_tick_within_one_word(72, 1, true), (70, true));
        assert_eq!(b.next_initialized_tick_within_one_word(-1, 1, true), (-256, false));
        assert_eq!(b.next_initialized_tick_within_one_word(1023, 1, true), (768, false));
        assert_eq!(b.next_initialized_tick_within_one_word(900, 1, true), (768, false));
        b.flip_tick(329, 1).unwrap();
        assert_eq!(b.next_initialized_tick_within_one_word(456, 1, true), (329, true));
    }

    #[test]
    fn negative_ticks_round_towards_negative_infinity() {
        let mut b = TickBitmap::new();
        b.flip_tick(-60, 60).unwrap();
        // tick -1 with spacing 60 compresses to -1, i.e. tick -60.
        assert_eq!(b.next_initialized_tick_within_one_word(-1, 60, true), (-60, true));
        assert_eq!(word_bounds(-1, 60, true), (-1, -256));
        assert_eq!(word_bounds(-1, 60, false), (0, 255));
        assert_eq!(word_bounds(-61, 60, false), (-1, -1));
    }
}
