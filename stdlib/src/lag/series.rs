//! Cleaning a series before any rule looks at it, and the small questions every rule asks of
//! it (what is in the window, is it still arriving, where are the gaps).

use serde::{Deserialize, Serialize};

use super::Point;

/// A series sorted by time with one datapoint per timestamp, plus what cleaning removed (so a
/// verdict can say it).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Series {
    pub points: Vec<Point>,
    /// Negative or non-finite values dropped. CloudWatch reports replica lag as -1 while
    /// replication is not running; that is "no measurement", never "0 s behind".
    pub dropped: usize,
    /// Datapoints that shared a timestamp with another one.
    pub duplicates: usize,
}

impl Series {
    /// Sort (CloudWatch returns newest first by default, and late datapoints arrive out of
    /// order) and keep the larger value for a repeated timestamp: with the `Maximum`
    /// statistic a datapoint revised by late samples only ever goes up, and the larger value is
    /// the safe one for a "caught up?" question.
    pub fn new(raw: &[Point]) -> Series {
        let mut dropped = 0;
        let mut points: Vec<Point> = raw
            .iter()
            .copied()
            .filter(|p| {
                let ok = p.v.is_finite() && p.v >= 0.0;
                dropped += usize::from(!ok);
                ok
            })
            .collect();
        points.sort_by(|a, b| a.t.cmp(&b.t).then(a.v.total_cmp(&b.v)));
        let before = points.len();
        // After sorting the largest value of a timestamp is last; dedup keeps the first, so
        // walk backwards.
        points.reverse();
        points.dedup_by_key(|p| p.t);
        points.reverse();
        let duplicates = before - points.len();
        Series {
            points,
            dropped,
            duplicates,
        }
    }

    pub fn last(&self) -> Option<Point> {
        self.points.last().copied()
    }

    pub fn values(&self) -> Vec<f64> {
        self.points.iter().map(|p| p.v).collect()
    }

    /// The datapoints with `from <= t`.
    pub fn since(&self, from: i64) -> Series {
        Series {
            points: self
                .points
                .iter()
                .copied()
                .filter(|p| p.t >= from)
                .collect(),
            dropped: self.dropped,
            duplicates: self.duplicates,
        }
    }

    /// Seconds spanned from first to last datapoint.
    pub fn span_seconds(&self) -> i64 {
        match (self.points.first(), self.points.last()) {
            (Some(a), Some(b)) => b.t.saturating_sub(a.t),
            _ => 0,
        }
    }

    /// Missing periods between datapoints: `(count of gaps, largest gap in seconds)`. A gap is
    /// a step longer than 1.5 periods, so jitter in lab sampling is not a gap.
    pub fn gaps(&self, period_seconds: i64) -> (usize, i64) {
        let limit = period_seconds.max(1) as f64 * 1.5;
        let mut count = 0;
        let mut largest = 0;
        for w in self.points.windows(2) {
            let dt = w[1].t.saturating_sub(w[0].t);
            if dt as f64 > limit {
                count += 1;
                largest = largest.max(dt);
            }
        }
        (count, largest)
    }

    /// The trailing run of datapoints strictly above `threshold`: how long it has lasted
    /// (first to last datapoint of the run, seconds) and how many datapoints it holds. Gaps do
    /// not break a run: a missing datapoint is no evidence either way.
    pub fn trailing_run_above(&self, threshold: f64) -> (i64, usize) {
        let Some(last) = self.last() else {
            return (0, 0);
        };
        let mut start = last.t;
        let mut n = 0;
        for p in self.points.iter().rev() {
            if p.v > threshold {
                start = p.t;
                n += 1;
            } else {
                break;
            }
        }
        if n == 0 {
            (0, 0)
        } else {
            (last.t.saturating_sub(start), n)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(t: i64, v: f64) -> Point {
        Point { t, v }
    }

    #[test]
    fn sorts_dedups_with_max_and_drops_negatives() {
        let s = Series::new(&[
            p(120, 0.0),
            p(60, 5.0),
            p(120, 9.0),
            p(180, -1.0),
            p(0, 1.0),
        ]);
        assert_eq!(s.points, vec![p(0, 1.0), p(60, 5.0), p(120, 9.0)]);
        assert_eq!(s.dropped, 1);
        assert_eq!(s.duplicates, 1);
    }

    #[test]
    fn gaps_and_runs() {
        let s = Series::new(&[p(0, 1.0), p(60, 5.0), p(300, 9.0), p(360, 9.0), p(420, 9.0)]);
        assert_eq!(s.gaps(60), (1, 240));
        assert_eq!(s.trailing_run_above(4.0), (360, 4));
        assert_eq!(s.trailing_run_above(9.0), (0, 0));
        assert_eq!(s.since(300).points.len(), 3);
        assert_eq!(s.span_seconds(), 420);
    }
}
