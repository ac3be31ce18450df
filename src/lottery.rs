//! Lottery maths: how long a miner should expect to wait for a block, and its chance of
//! finding one in a given time.
//!
//! Each hash is an independent draw that wins with probability 1 / (difficulty × 2^32), so
//! blocks found by a miner at h hashes per second form a Poisson process with rate
//! λ = h / (difficulty × 2^32). Hence the expected wait is 1 / λ and the chance of at least
//! one block within t seconds is 1 − exp(−λ·t). For a NerdMiner λ·t is around 10⁻¹⁴ a day,
//! where `1.0 - (-x).exp()` loses most of its digits, so the formulas use `exp_m1` / `ln_1p`.

use serde::Serialize;

/// 2^32: difficulty 1 means one winning hash in 2^32 on average.
pub const HASHES_PER_DIFFICULTY: f64 = 4_294_967_296.0;

/// Seconds in a day.
pub const SECS_PER_DAY: f64 = 86_400.0;

/// Seconds in a year of 365.25 days (the Julian year astronomers use; leap years included).
pub const SECS_PER_YEAR: f64 = 365.25 * SECS_PER_DAY;

/// The lottery figures the dashboard shows for one miner or the whole herd.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Odds {
    /// The hashrate these odds are for (H/s).
    pub hashrate_hs: f64,
    /// Expected (mean) waiting time for a block, in years.
    pub expected_years_to_block: f64,
    /// Chance of at least one block within the next 24 hours (0..1).
    pub chance_per_day: f64,
    /// Chance of at least one block within the next year (0..1).
    pub chance_per_year: f64,
}

/// Block rate λ in blocks per second, or `None` when an input makes no sense (zero,
/// negative, not finite), so callers show "unknown" rather than a made-up number.
fn rate(difficulty: f64, hashrate_hs: f64) -> Option<f64> {
    let valid = |v: f64| v.is_finite() && v > 0.0;
    if !valid(difficulty) || !valid(hashrate_hs) {
        return None;
    }
    let lambda = hashrate_hs / (difficulty * HASHES_PER_DIFFICULTY);
    valid(lambda).then_some(lambda)
}

/// Expected seconds to a block: difficulty × 2^32 / hashrate.
pub fn expected_secs_to_block(difficulty: f64, hashrate_hs: f64) -> Option<f64> {
    rate(difficulty, hashrate_hs).map(|lambda| 1.0 / lambda)
}

/// Chance of at least one block within `secs` seconds: 1 − exp(−h·t / (difficulty × 2^32)).
pub fn chance_within(difficulty: f64, hashrate_hs: f64, secs: f64) -> Option<f64> {
    if !(secs.is_finite() && secs >= 0.0) {
        return None;
    }
    rate(difficulty, hashrate_hs).map(|lambda| -(-lambda * secs).exp_m1())
}

/// Seconds until the chance of a block reaches `p` (0 ≤ p < 1): −ln(1 − p) / λ. With
/// p = 0.5 this is the median wait, about 69 % of the mean.
pub fn secs_until_chance(difficulty: f64, hashrate_hs: f64, p: f64) -> Option<f64> {
    if !(0.0..1.0).contains(&p) {
        return None;
    }
    rate(difficulty, hashrate_hs).map(|lambda| -(-p).ln_1p() / lambda)
}

/// All dashboard figures at once; `None` without a usable difficulty or hashrate.
pub fn odds(difficulty: f64, hashrate_hs: f64) -> Option<Odds> {
    Some(Odds {
        hashrate_hs,
        expected_years_to_block: expected_secs_to_block(difficulty, hashrate_hs)? / SECS_PER_YEAR,
        chance_per_day: chance_within(difficulty, hashrate_hs, SECS_PER_DAY)?,
        chance_per_year: chance_within(difficulty, hashrate_hs, SECS_PER_YEAR)?,
    })
}

/// The best share difficulty to expect after `hashes` hashes: H / 2^32. A hash reaches
/// difficulty x with probability 1 / (x · 2^32), so after H hashes the chance that the best is at
/// least H / 2^32 is 1 − e^−1 ≈ 63 %: the scale of the best share, not a guarantee.
pub fn expected_best(hashes: f64) -> Option<f64> {
    (hashes.is_finite() && hashes > 0.0).then(|| hashes / HASHES_PER_DIFFICULTY)
}

/// Luck: the actual best share ÷ the expected best after `hashes` hashes. 1 is par, above 1
/// lucky; `None` without hashes or without a best share.
pub fn luck(best: f64, hashes: f64) -> Option<f64> {
    if !(best.is_finite() && best > 0.0) {
        return None;
    }
    expected_best(hashes).map(|e| best / e)
}

/// "Coin flips away": log2(network difficulty ÷ best share), the number of heads in a row
/// still needed on top of the best share to win a block. 0 when the best share met the
/// network difficulty (a block).
pub fn coin_flips(network_difficulty: f64, best: f64) -> Option<f64> {
    let valid = |v: f64| v.is_finite() && v > 0.0;
    (valid(network_difficulty) && valid(best)).then(|| (network_difficulty / best).log2().max(0.0))
}

/// Where the best share sits on a log scale from difficulty 1 to the network difficulty,
/// 0..1: the fill of the "distance to a block" bar.
pub fn progress_to_block(network_difficulty: f64, best: f64) -> Option<f64> {
    let valid = |v: f64| v.is_finite() && v > 0.0;
    if !valid(network_difficulty) || !valid(best) || network_difficulty <= 1.0 {
        return None;
    }
    Some((best.max(1.0).log2() / network_difficulty.log2()).clamp(0.0, 1.0))
}

/// Histogram bucket of a share difficulty: floor(log2(d)), so bucket b holds
/// 2^b ≤ d < 2^(b+1). Clamped to −64..=255 (beyond any real share); `None` for nonsense.
pub fn histogram_bucket(difficulty: f64) -> Option<i32> {
    (difficulty.is_finite() && difficulty > 0.0)
        .then(|| (difficulty.log2().floor() as i32).clamp(-64, 255))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Relative difference, for comparing against hand-computed values.
    fn rel(a: f64, b: f64) -> f64 {
        ((a - b) / b).abs()
    }

    #[test]
    fn difficulty_one_at_2_pow_32_hashes_a_second_expects_a_block_a_second() {
        assert_eq!(
            expected_secs_to_block(1.0, HASHES_PER_DIFFICULTY),
            Some(1.0)
        );
        // 1 − e^−1
        let p = chance_within(1.0, HASHES_PER_DIFFICULTY, 1.0).unwrap();
        assert!(rel(p, 0.632_120_558_828_557_7) < 1e-15, "{p}");
    }

    #[test]
    fn one_hash_a_second_at_difficulty_one_waits_136_years() {
        // 2^32 s / 31 557 600 s a year
        let o = odds(1.0, 1.0).unwrap();
        assert!(rel(o.expected_years_to_block, 136.099_300_834_030_46) < 1e-12);
        // 1 − exp(−31 557 600 / 2^32)
        assert!(
            rel(o.chance_per_year, 0.007_320_648_872_135_732) < 1e-9,
            "{o:?}"
        );
    }

    #[test]
    fn a_nerdminer_at_todays_difficulty() {
        // difficulty 152 271 405 447 205.1 (the fixture), 50 KH/s:
        // D × 2^32 = 6.540007065117021e23 hashes; / 5e4 = 1.308001413023404e19 s
        // = 4.144806363675958e11 years; chance a day = 86 400 × 5e4 / (D × 2^32)
        // = 6.605497451282496e-15 (1 − e^−x ≈ x − x²/2 at this size).
        let d = 152_271_405_447_205.1;
        let o = odds(d, 50_000.0).unwrap();
        assert!(rel(o.expected_years_to_block, 4.144_806_363_675_958e11) < 1e-12);
        assert!(
            rel(o.chance_per_day, 6.605_497_451_282_496e-15) < 1e-12,
            "{o:?}"
        );
        assert!(
            rel(o.chance_per_year, 2.412_657_944_078_021e-12) < 1e-9,
            "{o:?}"
        );
        // The naive 1 − exp(−x) is off by almost 1 % here; exp_m1 is not.
        let naive = 1.0 - (-(SECS_PER_DAY * 50_000.0) / (d * HASHES_PER_DIFFICULTY)).exp();
        assert!(rel(naive, o.chance_per_day) > 1e-3);
    }

    #[test]
    fn median_wait_is_ln2_of_the_mean() {
        let mean = expected_secs_to_block(2.0, 1000.0).unwrap();
        let median = secs_until_chance(2.0, 1000.0, 0.5).unwrap();
        assert!(rel(median, mean * std::f64::consts::LN_2) < 1e-15);
        // and it is the inverse of chance_within
        let p = chance_within(2.0, 1000.0, median).unwrap();
        assert!(rel(p, 0.5) < 1e-15);
        assert_eq!(secs_until_chance(2.0, 1000.0, 0.0), Some(0.0));
        assert_eq!(secs_until_chance(2.0, 1000.0, 1.0), None);
    }

    #[test]
    fn nonsense_inputs_give_none_not_numbers() {
        for (d, h) in [
            (0.0, 1.0),
            (-1.0, 1.0),
            (1.0, 0.0),
            (1.0, -5.0),
            (f64::NAN, 1.0),
            (1.0, f64::INFINITY),
        ] {
            assert_eq!(odds(d, h), None, "d={d} h={h}");
            assert_eq!(expected_secs_to_block(d, h), None);
        }
        assert_eq!(chance_within(1.0, 1.0, -1.0), None);
        assert_eq!(chance_within(1.0, 1.0, 0.0), Some(0.0));
    }

    #[test]
    fn expected_best_and_luck_by_hand() {
        // 2^32 hashes: best share about difficulty 1.
        assert_eq!(expected_best(HASHES_PER_DIFFICULTY), Some(1.0));
        // A NerdMiner at 50 KH/s for a day: 4.32e9 hashes -> 1.0058283805847168.
        let e = expected_best(50_000.0 * SECS_PER_DAY).unwrap();
        assert!(rel(e, 1.005_828_380_584_716_8) < 1e-15, "{e}");
        // Best share 0.5 after 2^33 hashes (expected 2): luck 0.25.
        assert_eq!(luck(0.5, 2.0 * HASHES_PER_DIFFICULTY), Some(0.25));
        // 100 miners at 300 KH/s for 30 days = 7.776e13 hashes, expected 18 104.9108...
        let h = 100.0 * 300_000.0 * 30.0 * SECS_PER_DAY;
        let e = expected_best(h).unwrap();
        assert!(rel(e, 18_104.910_850_524_902) < 1e-12, "{e}");
        // a best of 1.23M there is 67.94x par
        assert!(rel(luck(1.23e6, h).unwrap(), 1.23e6 / 18_104.910_850_524_902) < 1e-12);
        for (b, h) in [
            (1.0, 0.0),
            (0.0, 1e9),
            (-1.0, 1e9),
            (f64::NAN, 1e9),
            (1.0, f64::NAN),
        ] {
            assert_eq!(luck(b, h), None, "b={b} h={h}");
        }
    }

    #[test]
    fn coin_flips_by_hand() {
        // 2^40 network vs best 2^10: 30 flips.
        assert_eq!(coin_flips(2f64.powi(40), 1024.0), Some(30.0));
        // Today's fixture difficulty and a 1.23M best: log2(152271405447205.1 / 1.23e6)
        // = 26.883 411 49...
        let f = coin_flips(152_271_405_447_205.1, 1.23e6).unwrap();
        assert!((f - 26.883_411_491_776_69).abs() < 1e-9, "{f}");
        // A block: no flips left, never negative.
        assert_eq!(coin_flips(1e12, 2e12), Some(0.0));
        assert_eq!(coin_flips(0.0, 1.0), None);
        assert_eq!(coin_flips(1e12, 0.0), None);
        // The bar: 2^10 of 2^40 is a quarter of the way on a log scale.
        assert_eq!(progress_to_block(2f64.powi(40), 1024.0), Some(0.25));
        assert_eq!(progress_to_block(2f64.powi(40), 0.01), Some(0.0));
        assert_eq!(progress_to_block(2f64.powi(40), 2f64.powi(41)), Some(1.0));
        assert_eq!(progress_to_block(1.0, 1.0), None);
    }

    #[test]
    fn histogram_buckets_are_powers_of_two() {
        assert_eq!(histogram_bucket(1.0), Some(0));
        assert_eq!(histogram_bucket(1.999), Some(0));
        assert_eq!(histogram_bucket(2.0), Some(1));
        assert_eq!(histogram_bucket(0.0333), Some(-5)); // 2^-5 = 0.03125
        assert_eq!(histogram_bucket(1.23e6), Some(20)); // 2^20 = 1 048 576
        assert_eq!(histogram_bucket(1e-300), Some(-64));
        assert_eq!(histogram_bucket(0.0), None);
        assert_eq!(histogram_bucket(f64::INFINITY), None);
    }
}
