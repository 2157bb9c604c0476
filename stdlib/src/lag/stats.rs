//! Robust statistics over datapoints: nearest-rank percentiles and the Theil–Sen slope.
//!
//! Lag series are spiky (one slow checkpoint, one forced segment switch), so the trend and the
//! "typical" value must not be decided by a single datapoint: a median of pairwise slopes
//! tolerates up to ~29% outliers, first-vs-last tolerates none.

use super::Point;

/// Nearest-rank percentile (`p` in 0..=100) of the values: always a value that was actually
/// observed, so evidence never reports a lag no datapoint had. `None` for no values.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v: Vec<f64> = values.to_vec();
    v.sort_by(f64::total_cmp);
    let p = p.clamp(0.0, 100.0);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

/// Median with the usual mean-of-the-middle-two for even counts.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v: Vec<f64> = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Above this many datapoints the slope is computed on an evenly spaced subsample: pairs grow
/// quadratically (a day of 1 s lab samples would be 3.7e9 pairs). At 1 500 points (~1.1 M
/// slopes per call) the validation gate over a 24 h window was ~50 % of the wall time of a whole
/// simulated migration (perf); 240 points (one per 6 min over a day) keep the median of slopes
/// robust at 1/36 of the work.
const THEIL_SEN_MAX_POINTS: usize = 240;

/// Theil–Sen slope in value units per second: the median of the slopes of all pairs of
/// datapoints with distinct timestamps. `None` with fewer than two distinct timestamps.
pub fn theil_sen_per_second(points: &[Point]) -> Option<f64> {
    let sample: Vec<Point> = if points.len() > THEIL_SEN_MAX_POINTS {
        let step = points.len() as f64 / THEIL_SEN_MAX_POINTS as f64;
        (0..THEIL_SEN_MAX_POINTS)
            .map(|i| points[(i as f64 * step) as usize])
            .collect()
    } else {
        points.to_vec()
    };
    let mut slopes = Vec::with_capacity(sample.len() * sample.len().saturating_sub(1) / 2);
    for (i, a) in sample.iter().enumerate() {
        for b in &sample[i + 1..] {
            if a.t != b.t {
                // i128: the difference of two i64 timestamps does not fit in i64.
                slopes.push((b.v - a.v) / (i128::from(b.t) - i128::from(a.t)) as f64);
            }
        }
    }
    if slopes.is_empty() {
        return None;
    }
    let n = slopes.len();
    let (_, mid, _) = slopes.select_nth_unstable_by(n / 2, f64::total_cmp);
    let upper = *mid;
    if n % 2 == 1 {
        Some(upper)
    } else {
        let lower = slopes[..n / 2]
            .iter()
            .copied()
            .max_by(f64::total_cmp)
            .unwrap_or(upper);
        Some((lower + upper) / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pts(vals: &[f64]) -> Vec<Point> {
        vals.iter()
            .enumerate()
            .map(|(i, &v)| Point {
                t: i as i64 * 60,
                v,
            })
            .collect()
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 99.0), None);
        // Ten points: p99 is the maximum, a real datapoint.
        assert_eq!(
            percentile(&[1., 2., 3., 4., 5., 6., 7., 8., 9., 30.], 99.0),
            Some(30.0)
        );
    }

    #[test]
    fn median_even_and_odd() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn theil_sen_ignores_a_single_spike() {
        let mut v: Vec<f64> = (0..20).map(|i| f64::from(i) * 60.0).collect();
        v[10] = 1e12;
        let slope = theil_sen_per_second(&pts(&v)).unwrap();
        assert!((slope - 1.0).abs() < 1e-9, "slope {slope}");
    }

    #[test]
    fn theil_sen_of_flat_sawtooth_is_zero() {
        let seg = 64.0 * 1024.0 * 1024.0;
        let v: Vec<f64> = (0..60)
            .map(|i| if i % 5 == 4 { seg } else { 0.0 })
            .collect();
        assert_eq!(theil_sen_per_second(&pts(&v)), Some(0.0));
    }

    #[test]
    fn theil_sen_needs_two_timestamps() {
        assert_eq!(theil_sen_per_second(&[]), None);
        assert_eq!(
            theil_sen_per_second(&[Point { t: 5, v: 1.0 }, Point { t: 5, v: 2.0 }]),
            None
        );
    }

    #[test]
    fn theil_sen_subsamples_long_series() {
        let p: Vec<Point> = (0..5000)
            .map(|i| Point {
                t: i,
                v: 3.0 * i as f64,
            })
            .collect();
        assert_eq!(theil_sen_per_second(&p), Some(3.0));
    }

    proptest! {
        #[test]
        fn theil_sen_recovers_a_line(a in -1e6f64..1e6, b in -1e3f64..1e3, n in 2usize..80) {
            let p: Vec<Point> = (0..n).map(|i| Point { t: i as i64 * 60, v: a + b * (i as f64 * 60.0) }).collect();
            let s = theil_sen_per_second(&p).unwrap();
            prop_assert!((s - b).abs() <= 1e-6 * (1.0 + b.abs()), "{} vs {}", s, b);
        }

        #[test]
        fn percentile_is_an_observed_value(v in proptest::collection::vec(-1e9f64..1e9, 1..50), p in 0f64..=100.0) {
            let q = percentile(&v, p).unwrap();
            prop_assert!(v.contains(&q));
        }
    }
}
