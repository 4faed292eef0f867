//! `TickMath.sol`: `sqrt(1.0001^tick)·2⁹⁶` and its inverse, bit for bit (same magic constants, same
//! rounding), with 128-bit limb arithmetic instead of 256-bit words where the values allow it.

use alloy_primitives::{I256, U256, uint};

use super::{Result, V3Error};

/// Lowest tick usable in `getSqrtRatioAtTick` (log base 1.0001 of 2⁻¹²⁸).
pub const MIN_TICK: i32 = -887_272;
/// Highest tick usable in `getSqrtRatioAtTick`.
pub const MAX_TICK: i32 = -MIN_TICK;
/// `getSqrtRatioAtTick(MIN_TICK)`.
pub const MIN_SQRT_RATIO: U256 = uint!(4295128739_U256);
/// `getSqrtRatioAtTick(MAX_TICK)`.
pub const MAX_SQRT_RATIO: U256 = uint!(1461446703485210103287273052203988822378723970342_U256);

/// `1/sqrt(1.0001)^(2^i)` as Q128.128 for bits 1..=19 of |tick| (bit 0 is the seed).
const RATIO_FACTORS: [u128; 19] = [
    0xfff97272373d413259a46990580e213a,
    0xfff2e50f5f656932ef12357cf3c7fdcc,
    0xffe5caca7e10e4e61c3624eaa0941cd0,
    0xffcb9843d60f6159c9db58835c926644,
    0xff973b41fa98c081472e6896dfb254c0,
    0xff2ea16466c96a3843ec78b326b52861,
    0xfe5dee046a99a2a811c461f1969c3053,
    0xfcbe86c7900a88aedcffc83b479aa3a4,
    0xf987a7253ac413176f2b074cf7815e54,
    0xf3392b0822b70005940c7a398e4b70f3,
    0xe7159475a2c29b7443b29c7fa6e889d9,
    0xd097f3bdfd2022b8845ad8f792aa5825,
    0xa9f746462d870fdf8a65dc1f90e061e5,
    0x70d869a156d2a1b890bb3df62baf32f7,
    0x31be135f97d08fd981231505542fcfa6,
    0x9aa508b5b7a84e1c677de54f3e99bc9,
    0x5d6af8dedb81196699c329225ee604,
    0x2216e584f5fa1ea926041bedfe98,
    0x48a170391f7dc42444e8fa2,
];
const RATIO_SEED_ODD: u128 = 0xfffcb933bd6fad37aa2d162d1a594001;

/// Full 256-bit product of two `u128`s as `(high, low)`.
#[inline(always)]
pub(crate) fn mul_wide(a: u128, b: u128) -> (u128, u128) {
    const M: u128 = u64::MAX as u128;
    let (a1, a0) = (a >> 64, a & M);
    let (b1, b0) = (b >> 64, b & M);
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    let mid = (p00 >> 64) + (p01 & M) + (p10 & M);
    let lo = (p00 & M) | (mid << 64);
    let hi = p11 + (p01 >> 64) + (p10 >> 64) + (mid >> 64);
    (hi, lo)
}

/// `sqrt(1.0001^tick) · 2⁹⁶` rounded up from Q128.128, exactly as `TickMath.getSqrtRatioAtTick`.
pub fn get_sqrt_ratio_at_tick(tick: i32) -> Result<U256> {
    let abs_tick = tick.unsigned_abs();
    if abs_tick > MAX_TICK as u32 {
        return Err(V3Error::TickOutOfRange(tick));
    }
    // `ratio` is a Q128.128 value ≤ 1; `None` stands for exactly 1 (2^128, one bit too wide for u128).
    // (2^128 · c) >> 128 = c, so the first factor applied to 1 is just the factor.
    let mut ratio: Option<u128> = (abs_tick & 1 != 0).then_some(RATIO_SEED_ODD);
    for (i, &factor) in RATIO_FACTORS.iter().enumerate() {
        if abs_tick & (2 << i) != 0 {
            ratio = Some(match ratio {
                None => factor,
                Some(r) => mul_wide(r, factor).0,
            });
        }
    }
    let mut ratio = match ratio {
        None => U256::from_limbs([0, 0, 1, 0]),
        Some(r) => U256::from(r),
    };
    if tick > 0 {
        // ratio > 0: the smallest product of factors is far above zero.
        ratio = U256::MAX / ratio;
    }
    // Q128.128 → Q64.96, rounding up so getTickAtSqrtRatio of the result is consistent.
    let round = (ratio.as_limbs()[0] & 0xffff_ffff != 0) as u64;
    Ok((ratio >> 32) + U256::from(round))
}

/// Greatest tick whose sqrt ratio is ≤ `sqrt_price_x96`, exactly as `TickMath.getTickAtSqrtRatio`
/// (including its quirk `getTickAtSqrtRatio(MAX_SQRT_RATIO - 1) = MAX_TICK - 1`).
pub fn get_tick_at_sqrt_ratio(sqrt_price_x96: U256) -> Result<i32> {
    if sqrt_price_x96 < MIN_SQRT_RATIO || sqrt_price_x96 >= MAX_SQRT_RATIO {
        return Err(V3Error::SqrtPriceOutOfRange(sqrt_price_x96));
    }
    let ratio: U256 = sqrt_price_x96 << 32usize; // < 2^192, > 0
    let msb = ratio.bit_len() - 1;
    let r = if msb >= 128 { ratio >> (msb - 127) } else { ratio << (127 - msb) };
    // r ∈ [2^127, 2^128): fits u128.
    let mut r: u128 = r.to::<u128>();
    let mut log_2: i128 = ((msb as i128) - 128) << 64;
    for shift in (50..=63).rev() {
        let (hi, lo) = mul_wide(r, r);
        // (r·r) >> 127 < 2^129; f = bit 128 of it = top bit of hi.
        let f = hi >> 127;
        log_2 |= (f as i128) << shift;
        r = if f == 1 { hi } else { (hi << 1) | (lo >> 127) };
    }
    // |log_2| < 2^72 and the factor < 2^78: the product fits easily in 256 bits.
    let log_2 = I256::try_from(log_2).map_err(|_| V3Error::SqrtPriceOutOfRange(sqrt_price_x96))?;
    let log_sqrt10001 = log_2.wrapping_mul(I256::from_raw(uint!(255738958999603826347141_U256)));
    let tick_low =
        (log_sqrt10001 - I256::from_raw(uint!(3402992956809132418596140100660247210_U256))).asr(128);
    let tick_hi =
        (log_sqrt10001 + I256::from_raw(uint!(291339464771989622907027621153398088495_U256))).asr(128);
    let tick_low = i32::try_from(tick_low).map_err(|_| V3Error::SqrtPriceOutOfRange(sqrt_price_x96))?;
    let tick_hi = i32::try_from(tick_hi).map_err(|_| V3Error::SqrtPriceOutOfRange(sqrt_price_x96))?;
    if tick_low == tick_hi {
        Ok(tick_low)
    } else if get_sqrt_ratio_at_tick(tick_hi)? <= sqrt_price_x96 {
        Ok(tick_hi)
    } else {
        Ok(tick_low)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v3::pool::test_utils::encode_price_sqrt;

    fn u(s: &str) -> U256 {
        U256::from_str_radix(s, 10).unwrap()
    }

    #[test]
    fn sqrt_ratio_bounds() {
        // TickMath.spec.ts #getSqrtRatioAtTick
        assert_eq!(get_sqrt_ratio_at_tick(MIN_TICK - 1), Err(V3Error::TickOutOfRange(MIN_TICK - 1)));
        assert_eq!(get_sqrt_ratio_at_tick(MAX_TICK + 1), Err(V3Error::TickOutOfRange(MAX_TICK + 1)));
        assert_eq!(get_sqrt_ratio_at_tick(MIN_TICK).unwrap(), u("4295128739"));
        assert_eq!(get_sqrt_ratio_at_tick(MIN_TICK + 1).unwrap(), u("4295343490"));
        assert_eq!(
            get_sqrt_ratio_at_tick(MAX_TICK - 1).unwrap(),
            u("1461373636630004318706518188784493106690254656249")
        );
        assert_eq!(
            get_sqrt_ratio_at_tick(MAX_TICK).unwrap(),
            u("1461446703485210103287273052203988822378723970342")
        );
        assert_eq!(get_sqrt_ratio_at_tick(MIN_TICK).unwrap(), MIN_SQRT_RATIO);
        assert_eq!(get_sqrt_ratio_at_tick(MAX_TICK).unwrap(), MAX_SQRT_RATIO);
        assert_eq!(get_sqrt_ratio_at_tick(0).unwrap(), U256::from(1u8) << 96);
    }

    #[test]
    fn sqrt_ratio_matches_snapshot() {
        // test/__snapshots__/TickMath.spec.ts.snap "#getSqrtRatioAtTick tick N result"
        let cases: [(i32, &str); 28] = [
            (-50, "79030349367926598376800521322"),
            (-100, "78833030112140176575862854579"),
            (-250, "78244023372248365697264290337"),
            (-500, "77272108795590369356373805297"),
            (-1000, "75364347830767020784054125655"),
            (-2500, "69919044979842180277688105136"),
            (-3000, "68192822843687888778582228483"),
            (-4000, "64867181785621769311890333195"),
            (-5000, "61703726247759831737814779831"),
            (-50000, "6504256538020985011912221507"),
            (-150000, "43836292794701720435367485"),
            (-250000, "295440463448801648376846"),
            (-500000, "1101692437043807371"),
            (-738203, "7409801140451"),
            (50, "79426470787362580746886972461"),
            (100, "79625275426524748796330556128"),
            (250, "80224679980005306637834519095"),
            (500, "81233731461783161732293370115"),
            (1000, "83290069058676223003182343270"),
            (2500, "89776708723587163891445672585"),
            (3000, "92049301871182272007977902845"),
            (4000, "96768528593268422080558758223"),
            (5000, "101729702841318637793976746270"),
            (50000, "965075977353221155028623082916"),
            (150000, "143194173941309278083010301478497"),
            (250000, "21246587762933397357449903968194344"),
            (500000, "5697689776495288729098254600827762987878"),
            (738203, "847134979253254120489401328389043031315994541"),
        ];
        for (tick, expected) in cases {
            assert_eq!(get_sqrt_ratio_at_tick(tick).unwrap(), u(expected), "tick {tick}");
        }
    }

    #[test]
    fn tick_at_sqrt_ratio_bounds() {
        assert!(matches!(
            get_tick_at_sqrt_ratio(MIN_SQRT_RATIO - U256::from(1u8)),
            Err(V3Error::SqrtPriceOutOfRange(_))
        ));
        assert!(matches!(get_tick_at_sqrt_ratio(MAX_SQRT_RATIO), Err(V3Error::SqrtPriceOutOfRange(_))));
        assert_eq!(get_tick_at_sqrt_ratio(MIN_SQRT_RATIO).unwrap(), MIN_TICK);
        assert_eq!(get_tick_at_sqrt_ratio(u("4295343490")).unwrap(), MIN_TICK + 1);
        assert_eq!(
            get_tick_at_sqrt_ratio(u("1461373636630004318706518188784493106690254656249")).unwrap(),
            MAX_TICK - 1
        );
        assert_eq!(get_tick_at_sqrt_ratio(MAX_SQRT_RATIO - U256::from(1u8)).unwrap(), 887_271);
    }

    #[test]
    fn tick_at_sqrt_ratio_matches_snapshot() {
        // "#getTickAtSqrtRatio ratio R result" from the snapshot; the ratios are encodePriceSqrt values.
        let cases: [(&str, i32); 13] = [
            ("4295128739", -887272),
            ("79228162514264337593543", -276325),
            ("79228162514264337593543950", -138163),
            ("9903520314283042199192993792", -41591),
            ("28011385487393069959365969113", -20796),
            ("56022770974786139918731938227", -6932),
            ("79228162514264337593543950336", 0),
            ("112045541949572279837463876454", 6931),
            ("224091083899144559674927752909", 20795),
            ("633825300114114700748351602688", 41590),
            ("79228162514264337593543950336000", 138162),
            ("79228162514264337593543950336000000", 276324),
            ("1461446703485210103287273052203988822378723970341", 887271),
        ];
        for (ratio, expected) in cases {
            let ratio = u(ratio);
            let tick = get_tick_at_sqrt_ratio(ratio).unwrap();
            assert_eq!(tick, expected, "ratio {ratio}");
            // ratio is between the tick and tick+1
            assert!(get_sqrt_ratio_at_tick(tick).unwrap() <= ratio);
            assert!(get_sqrt_ratio_at_tick(tick + 1).unwrap() > ratio);
        }
        // The snapshot ratios are the spec's encodePriceSqrt inputs: check the test helper against them.
        assert_eq!(encode_price_sqrt(U256::from(1u8), U256::from(64u8)), u("9903520314283042199192993792"));
        assert_eq!(encode_price_sqrt(U256::from(1u8), U256::from(8u8)), u("28011385487393069959365969113"));
        assert_eq!(encode_price_sqrt(U256::from(2u8), U256::from(1u8)), u("112045541949572279837463876454"));
        assert_eq!(
            encode_price_sqrt(U256::from(10u64.pow(12)), U256::from(1u8)),
            u("79228162514264337593543950336000000")
        );
    }

    #[test]
    fn round_trip_tick_to_ratio_to_tick() {
        // Every tick's ratio maps back to the tick, and one wei less maps to the tick below.
        for tick in [-887_271, -500_000, -1, 0, 1, 72_641, -221_819, 500_000, MAX_TICK - 1] {
            let sqrt = get_sqrt_ratio_at_tick(tick).unwrap();
            assert_eq!(get_tick_at_sqrt_ratio(sqrt).unwrap(), tick);
            assert_eq!(get_tick_at_sqrt_ratio(sqrt - U256::from(1u8)).unwrap(), tick - 1);
        }
        assert_eq!(get_tick_at_sqrt_ratio(MIN_SQRT_RATIO).unwrap(), MIN_TICK);
    }
}
