//! CloudWatch in the simulator: instantaneous values sampled at every model step are folded
//! into one-minute aggregates (max, min, sum, count), so any statistic over any period that is a
//! multiple of 60 s can be answered. A minute that falls in a gap fault is never stored: missing
//! data stays missing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cw::{Aggregate, Point, periods};

/// Metric identity: (metric name, dimension name, dimension value). Namespace is `AWS/RDS`.
pub type Key = (String, String, String);

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Minute {
    /// Start of the minute, epoch seconds.
    pub t: i64,
    pub max: f64,
    pub min: f64,
    pub sum: f64,
    pub count: u32,
}

impl Minute {
    fn add(&mut self, v: f64) {
        self.max = self.max.max(v);
        self.min = self.min.min(v);
        self.sum += v;
        self.count += 1;
    }
}

pub use crate::cw::Statistic;

/// The metric names the simulator publishes, with their dimension.
pub const PUBLISHED: &[(&str, &str)] = &[
    ("OldestReplicationSlotLag", "DBInstanceIdentifier"),
    ("TransactionLogsDiskUsage", "DBInstanceIdentifier"),
    ("TransactionLogsGeneration", "DBInstanceIdentifier"),
    ("ReplicationSlotDiskUsage", "DBInstanceIdentifier"),
    ("FreeStorageSpace", "DBInstanceIdentifier"),
    ("DatabaseConnections", "DBInstanceIdentifier"),
    ("RDSToAuroraPostgreSQLReplicaLag", "DBClusterIdentifier"),
    ("ReplicaLag", "DBInstanceIdentifier"),
    ("CPUUtilization", "DBInstanceIdentifier"),
    ("FreeableMemory", "DBInstanceIdentifier"),
];

/// Metrics the simulator derives from the source's `TransactionLogsGeneration` when asked,
/// rather than samples: the instance's load follows its writes (`cw::sim`).
pub const DERIVED_FROM_WAL: &[&str] = &["CPUUtilization", "FreeableMemory"];

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Metrics {
    /// The minute being sampled, per metric: a handful of entries, searched linearly so a
    /// sample allocates nothing (this runs on every model step). A metric's entry stays when
    /// its minute closes, empty (`count` 0), so the next minute reuses its key; empty entries
    /// are neither stored nor saved.
    #[serde(serialize_with = "sampled")]
    open: Vec<(Key, Minute)>,
    #[serde(with = "entries")]
    closed: BTreeMap<Key, Vec<Minute>>,
    /// Where the next sample's search starts: a step samples the metrics in the same order
    /// every time, so this is usually the entry it wants.
    #[serde(skip)]
    next: usize,
}

/// The open minutes that hold samples (what a snapshot saves).
fn sampled<S: serde::Serializer>(open: &[(Key, Minute)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(open.iter().filter(|(_, m)| m.count > 0))
}

/// JSON object keys must be strings: store the map as a list of entries.
mod entries {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{Key, Minute};

    pub fn serialize<S: Serializer>(
        m: &BTreeMap<Key, Vec<Minute>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        m.iter().collect::<Vec<_>>().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<Key, Vec<Minute>>, D::Error> {
        Ok(Vec::<(Key, Vec<Minute>)>::deserialize(d)?
            .into_iter()
            .collect())
    }
}

impl Metrics {
    /// Record an instantaneous value of `(metric, dimension, id)` into the minute starting
    /// at `minute_t` (epoch s).
    pub fn sample(&mut self, key: (&str, &str, &str), minute_t: i64, v: f64) {
        self.sample_at(&mut None, key, minute_t, v);
    }

    /// [`Self::sample`] from a call site whose key stays the same: `site` remembers where the
    /// key's entry is (an entry never moves: entries are only ever appended), so the next call
    /// compares no strings. The caller forgets `site` whenever its key may have changed.
    pub(super) fn sample_at(
        &mut self,
        site: &mut Option<usize>,
        key: (&str, &str, &str),
        minute_t: i64,
        v: f64,
    ) {
        let (metric, dim, id) = key;
        let n = self.open.len();
        let found = site.filter(|i| *i < n).or_else(|| {
            (0..n).map(|i| (self.next + i) % n).find(|&i| {
                let k = &self.open[i].0;
                k.0 == metric && k.2 == id && k.1 == dim
            })
        });
        self.next = found.map_or(0, |i| i + 1);
        *site = Some(found.unwrap_or(n));
        let m = match found {
            Some(i) => {
                let m = &mut self.open[i].1;
                if m.count == 0 {
                    *m = Minute {
                        t: minute_t,
                        max: f64::MIN,
                        min: f64::MAX,
                        sum: 0.0,
                        count: 0,
                    };
                }
                m
            }
            None => {
                self.open.push((
                    (metric.to_string(), dim.to_string(), id.to_string()),
                    Minute {
                        t: minute_t,
                        max: f64::MIN,
                        min: f64::MAX,
                        sum: 0.0,
                        count: 0,
                    },
                ));
                let last = self.open.len() - 1;
                &mut self.open[last].1
            }
        };
        m.add(v);
    }

    /// Close the open minute of every metric; `keep` false drops it (a gap).
    pub fn close_minute(&mut self, keep: bool) {
        for (k, m) in &mut self.open {
            if keep && m.count > 0 {
                match self.closed.get_mut(k) {
                    Some(minutes) => minutes.push(*m),
                    None => {
                        self.closed.insert(k.clone(), vec![*m]);
                    }
                }
            }
            m.count = 0;
        }
    }

    /// Datapoints `(t, value)` with `since <= t < until`, aggregated to `period_s`, visible at
    /// `visible_until` (minutes whose end + delay is later are not published yet).
    pub fn query(
        &self,
        key: &Key,
        stat: Statistic,
        period_s: i64,
        since: i64,
        until: i64,
        visible_until: i64,
    ) -> Vec<Point> {
        let Some(minutes) = self.closed.get(key) else {
            return Vec::new();
        };
        let published = minutes.iter().filter(|m| m.t + 60 <= visible_until);
        periods(
            published.map(|m| {
                let a = Aggregate {
                    max: m.max,
                    min: m.min,
                    sum: m.sum,
                    count: m.count,
                };
                (m.t, a)
            }),
            stat,
            period_s,
            since,
            until,
        )
    }

    /// Every stored minute (for determinism checks).
    pub fn all(&self) -> &BTreeMap<Key, Vec<Minute>> {
        &self.closed
    }
}
