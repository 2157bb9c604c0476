//! Area `validate`: prove the target holds exactly the source's data — at the fence (source
//! fenced, replica caught up) with [`Validate::compare`], and as a sampled audit while the
//! replica still replays with [`Validate::sample`]. The algorithm, the hash and its collision
//! odds, the no-primary-key fallback and the float/NULL semantics are in `docs/validate.md`.
//!
//! | file      | what                                                                   |
//! |-----------|------------------------------------------------------------------------|
//! | `mod.rs`  | the [`Validate`] trait, its report types, the pure pieces of the diff  |
//! | `rhai.rs` | the Rhai module `validate`                                             |
//! | `sim.rs`  | [`Validate`] over the simulator (seeded `data-divergence` faults)      |
//! | `live.rs` | [`Validate`] over real servers (lab, aws), through `pg::live`          |
//!
//! Worlds without database access install [`NoAccess`]: `validate::available` says why, and
//! the standard runbook skips the step instead of failing.

pub mod decoding;
pub mod live;
pub mod passes;
pub mod queries;
pub use queries::{QueryCheck, QueryCheckOptions, QueryReport};
pub mod rhai;
pub mod sim;

use std::collections::HashMap;

use godwit_engine::Call;
use godwit_engine::{ErrorKind, PrimitiveError};
use serde::{Deserialize, Serialize};

const A: &str = "validate";

/// Whether this world can read both databases' contents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Availability {
    pub available: bool,
    /// How (`"simulated content hashes"`, `"database connections"`) or why not.
    pub how: String,
}

/// What `compare` looks at and how hard it works.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareOptions {
    /// Tables to compare (`schema.table`, `database:schema.table` outside the connector's
    /// database); empty: every user table.
    pub tables: Vec<String>,
    /// Tables compared at the same time (each holds one connection per side).
    pub concurrency: usize,
    /// A mismatching segment of at most this many rows is fetched key by key; a larger one is
    /// bisected first.
    pub leaf_rows: i64,
    /// Keys reported per table and kind (missing / extra / different); more set `truncated`.
    pub max_keys: usize,
    /// Settings compared (reported, never fatal: Aurora legitimately differs); empty: the
    /// defaults in [`DEFAULT_SETTINGS`].
    pub settings: Vec<String>,
    /// `value` (default): segments hash each column with its type's own hash function
    /// (`hash_record_extended`), so values equal under the type's `=` hash equal (`1.0` and
    /// `1.00` numeric are equal; `0.3` and `0.1 + 0.2` float are not); ~1x a `COPY` scan.
    /// `text`: segments hash the row's text form, so any representation difference counts;
    /// ~2.4x a `COPY` scan. Differing rows are always told apart by their text form.
    pub mode: String,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            tables: Vec::new(),
            concurrency: 2,
            leaf_rows: 1000,
            max_keys: 100,
            settings: Vec::new(),
            mode: "value".into(),
        }
    }
}

/// Settings that change what stored data means or how it sorts and prints.
pub const DEFAULT_SETTINGS: &[&str] = &[
    "server_encoding",
    "lc_collate",
    "lc_ctype",
    "server_version_num",
    "standard_conforming_strings",
    "TimeZone",
    "default_text_search_config",
];

/// Where the two sides stood when they were read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Positions {
    /// The source's WAL position (`pg_current_wal_lsn()`), when it is a primary.
    pub source_lsn: Option<String>,
    /// How far the target (a replica) has replayed, as the source reports it
    /// (`pg_stat_replication.replay_lsn`; Aurora refuses `pg_last_wal_replay_lsn()`).
    pub target_replay_lsn: Option<String>,
    /// `source_lsn - target_replay_lsn` in bytes (both known); > 0: the replica had not
    /// replayed everything the source had written when it was read.
    pub lag_bytes: Option<i64>,
}

/// One table's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableReport {
    pub table: String,
    /// `segments` (integer primary key: key ranges, bisected), `hashed-key` (other primary
    /// keys: buckets by key hash), `no-primary-key` (buckets by row hash: rows are compared as
    /// a multiset), `missing-on-target` / `missing-on-source`, `unlogged` (not in WAL: a
    /// physical copy has it empty; not validated).
    pub method: String,
    /// How rows were hashed: `value` (each column's type hash) or `text` (the row's text
    /// form; the `text` mode, or a table with a column type that has no hash function).
    pub hash: String,
    /// Primary-key columns (empty without one).
    pub key: Vec<String>,
    pub equal: bool,
    pub source_rows: i64,
    pub target_rows: i64,
    /// Segments (or buckets) compared in the first pass, and how many differed.
    pub segments: i64,
    pub mismatched_segments: i64,
    /// Keys (their text form; for a table without primary key the row itself) present on the
    /// source only, on the target only, or on both with different contents. In key order.
    pub missing_on_target: Vec<String>,
    pub extra_on_target: Vec<String>,
    pub different: Vec<String>,
    /// More differences than `max_keys` exist; the lists are a prefix.
    pub truncated: bool,
    /// The fence pass only (docs/validate.md, "Two passes"): how this table is proven —
    /// unchanged since its equal pre-pass, its changed keys compared, or rescanned (and why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proven: Option<String>,
}

impl TableReport {
    pub fn new(table: &str, method: &str, key: Vec<String>) -> Self {
        TableReport {
            table: table.to_string(),
            method: method.to_string(),
            hash: "value".into(),
            key,
            equal: true,
            source_rows: 0,
            target_rows: 0,
            segments: 0,
            mismatched_segments: 0,
            missing_on_target: Vec::new(),
            extra_on_target: Vec::new(),
            different: Vec::new(),
            truncated: false,
            proven: None,
        }
    }

    fn differences(&self) -> usize {
        self.missing_on_target.len() + self.extra_on_target.len() + self.different.len()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequenceCheck {
    pub name: String,
    pub source: Option<i64>,
    pub target: Option<i64>,
    /// The target will not hand out a value the source already did: `target >= source`. A
    /// physical replica is usually *ahead* (PostgreSQL WAL-logs sequences 32 values ahead).
    pub ok: bool,
}

/// A name whose value differs (`None`: absent on that side).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValueDiff {
    pub name: String,
    pub source: Option<String>,
    pub target: Option<String>,
}

/// The result of `compare`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Every table equal, every sequence ok, the same extension versions.
    pub equal: bool,
    pub source: String,
    pub target: String,
    pub positions: Positions,
    pub tables: Vec<TableReport>,
    pub sequences: Vec<SequenceCheck>,
    /// Extensions whose installed version differs (or that exist on one side only).
    pub extensions: Vec<ValueDiff>,
    /// Settings that differ; informative, not part of `equal`.
    pub settings: Vec<ValueDiff>,
    /// The fence pass only: what it compared, and how long it took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence_pass: Option<FencePassStats>,
    /// One line for the transcript.
    pub summary: String,
}

/// What a fence pass did (docs/validate.md, "Two passes"): its cost is these numbers, not the
/// database's size.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FencePassStats {
    /// Per database, how changes since the pre-pass were known (`logical-decoding`,
    /// `counters`) — or why not (then its tables were rescanned).
    pub tracking: Vec<String>,
    /// Tables proven unchanged since their equal pre-pass.
    pub unchanged_tables: i64,
    /// Keys compared one by one (changed since the pre-pass, or left by it).
    pub changed_keys: i64,
    /// Tables compared whole, and the rows that took.
    pub rescanned_tables: Vec<String>,
    pub rescanned_rows: i64,
    /// WAL decoded since the pre-pass (bytes; logical decoding only).
    pub decoded_bytes: i64,
    pub elapsed_ms: i64,
}

impl Report {
    /// A report of `source` against `target` with nothing in it yet: a world fills in the
    /// parts, then [`Report::finish`].
    pub fn new(source: &str, target: &str) -> Report {
        Report {
            equal: false,
            source: source.into(),
            target: target.into(),
            positions: Positions::default(),
            tables: Vec::new(),
            sequences: Vec::new(),
            extensions: Vec::new(),
            settings: Vec::new(),
            fence_pass: None,
            summary: String::new(),
        }
    }

    /// Fill `equal` and `summary` from the parts.
    pub fn finish(mut self) -> Self {
        let bad: Vec<&TableReport> = self.tables.iter().filter(|t| !t.equal).collect();
        let bad_seq: Vec<&SequenceCheck> = self.sequences.iter().filter(|s| !s.ok).collect();
        self.equal = bad.is_empty() && bad_seq.is_empty() && self.extensions.is_empty();
        let rows: i64 = self.tables.iter().map(|t| t.source_rows).sum();
        let what = match &self.fence_pass {
            None => format!("{rows} rows"),
            Some(f) => format!(
                "fence pass: {} unchanged since the pre-pass, {} changed keys compared, {} rescanned ({} rows), {} ms",
                f.unchanged_tables,
                f.changed_keys,
                f.rescanned_tables.len(),
                f.rescanned_rows,
                f.elapsed_ms
            ),
        };
        self.summary = if self.equal {
            format!(
                "{} tables equal ({what}), {} sequences ok, extensions equal{}",
                self.tables.len(),
                self.sequences.len(),
                if self.settings.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; settings differ: {}",
                        self.settings
                            .iter()
                            .map(|s| s.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            )
        } else {
            let mut parts: Vec<String> = bad
                .iter()
                .map(|t| {
                    let mut kinds =
                        difference_kinds(&t.missing_on_target, &t.extra_on_target, &t.different);
                    if kinds.is_empty() {
                        kinds.push(t.method.clone());
                    }
                    format!(
                        "{}: {}{}",
                        t.table,
                        kinds.join(", "),
                        if t.truncated { " (truncated)" } else { "" }
                    )
                })
                .collect();
            parts.extend(bad_seq.iter().map(|s| {
                format!(
                    "sequence {} behind: {:?} < {:?}",
                    s.name, s.target, s.source
                )
            }));
            parts.extend(
                self.extensions
                    .iter()
                    .map(|e| format!("extension {}: {:?} vs {:?}", e.name, e.source, e.target)),
            );
            format!("DIFFERENT — {}", parts.join("; "))
        };
        self
    }
}

/// `missing on target [..]`, `extra on target [..]`, `different [..]`: the kinds a table has.
fn difference_kinds(missing: &[String], extra: &[String], different: &[String]) -> Vec<String> {
    [
        ("missing on target", missing),
        ("extra on target", extra),
        ("different", different),
    ]
    .into_iter()
    .filter(|(_, keys)| !keys.is_empty())
    .map(|(what, keys)| format!("{what} {}", preview(keys)))
    .collect()
}

fn preview(keys: &[String]) -> String {
    let shown: Vec<&str> = keys.iter().take(5).map(String::as_str).collect();
    if keys.len() > 5 {
        format!("[{}, ... {} in all]", shown.join(", "), keys.len())
    } else {
        format!("[{}]", shown.join(", "))
    }
}

/// What `sample` looks at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleOptions {
    pub tables: Vec<String>,
    /// Rows sampled per table at most.
    pub max_rows: i64,
    pub max_keys: usize,
}

impl Default for SampleOptions {
    fn default() -> Self {
        SampleOptions {
            tables: Vec::new(),
            max_rows: 10_000,
            max_keys: 100,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SampleTable {
    pub table: String,
    /// `sampled`, or `no-primary-key` (not sampled: no key to look rows up by).
    pub method: String,
    pub sampled: i64,
    /// Proven: the source's row did not change while the target, replayed past it, held
    /// another (or none).
    pub missing_on_target: Vec<String>,
    pub different: Vec<String>,
    /// Rows that changed on the source during the audit, or that a lagging target had not
    /// replayed yet: nothing proven either way (sample again, or leave them to the fence).
    #[serde(default)]
    pub unsettled: i64,
    pub truncated: bool,
    /// The source's row estimate (`pg_class.reltuples`; 0: unknown or empty).
    #[serde(default)]
    pub estimated_rows: i64,
    /// Every row of the table was sampled (read whole).
    #[serde(default)]
    pub whole: bool,
}

/// The result of `sample`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleReport {
    /// No sampled row missing or different.
    pub equal: bool,
    pub source: String,
    pub target: String,
    pub fraction: f64,
    pub sampled: i64,
    pub mismatches: i64,
    /// Source LSN right after the source rows were read; the target's replay LSN right before
    /// its rows were read.
    pub positions: Positions,
    /// Some rows were unsettled (see [`SampleTable::unsettled`]): the sample proves less than
    /// its size. Differences reported are proven either way.
    pub may_be_lag: bool,
    /// Rows unsettled in all tables.
    #[serde(default)]
    pub unsettled: i64,
    pub tables: Vec<SampleTable>,
    /// Source rows the call read (the sample and its re-reads) and the time it took.
    #[serde(default)]
    pub source_rows_read: i64,
    #[serde(default)]
    pub elapsed_ms: i64,
    pub summary: String,
}

impl SampleReport {
    /// A sample of `source` against `target` at `fraction` with nothing in it yet: a world
    /// fills in the parts, then [`SampleReport::finish`].
    pub fn new(source: &str, target: &str, fraction: f64) -> SampleReport {
        SampleReport {
            equal: true,
            source: source.into(),
            target: target.into(),
            fraction,
            sampled: 0,
            mismatches: 0,
            positions: Positions::default(),
            may_be_lag: false,
            unsettled: 0,
            tables: Vec::new(),
            source_rows_read: 0,
            elapsed_ms: 0,
            summary: String::new(),
        }
    }

    pub fn finish(mut self) -> Self {
        self.sampled = self.tables.iter().map(|t| t.sampled).sum();
        self.mismatches = self
            .tables
            .iter()
            .map(|t| (t.missing_on_target.len() + t.different.len()) as i64)
            .sum();
        self.equal = self.mismatches == 0;
        self.unsettled = self.tables.iter().map(|t| t.unsettled).sum();
        self.may_be_lag = self.unsettled > 0;
        let lag = self.positions.lag_bytes.unwrap_or(0);
        self.summary = if self.equal {
            format!(
                "{} sampled rows in {} tables equal{} (replica {lag} bytes behind)",
                self.sampled - self.unsettled,
                self.tables.len(),
                if self.unsettled > 0 {
                    format!(
                        ", {} unsettled (changing on the source, or not yet replayed)",
                        self.unsettled
                    )
                } else {
                    String::new()
                }
            )
        } else {
            let parts: Vec<String> = self
                .tables
                .iter()
                .filter(|t| !t.missing_on_target.is_empty() || !t.different.is_empty())
                .map(|t| {
                    format!(
                        "{}: missing on target {}, different {}",
                        t.table,
                        preview(&t.missing_on_target),
                        preview(&t.different)
                    )
                })
                .collect();
            format!(
                "{} of {} sampled rows differ{} — {}",
                self.mismatches,
                self.sampled,
                if self.may_be_lag {
                    format!(
                        " ({} more unsettled: changing on the source, or not yet replayed)",
                        self.unsettled
                    )
                } else {
                    String::new()
                },
                parts.join("; ")
            )
        };
        self
    }
}

/// What one round of the continuous audit (`audit`) reads, and how hard it may load the
/// source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditOptions {
    /// `schema.table` names (`database:schema.table` outside the first database); empty: all.
    pub tables: Vec<String>,
    /// Rows sampled in one round, in all tables: shared in proportion to their size, each
    /// table at least `min(its rows, 100)` so a small table is audited whole.
    pub rows: i64,
    /// The source rows the round reads per second on average (the sample and its re-read):
    /// the reads are bursts, after which the round waits until the average is under it. 0:
    /// no waiting.
    pub rows_per_second: i64,
    pub max_keys: usize,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            tables: Vec::new(),
            rows: 20_000,
            rows_per_second: 1_000,
            max_keys: 100,
        }
    }
}

/// A table's share of an audit round: its estimated rows and the rows to sample.
pub fn audit_shares(estimates: &[i64], rows: i64) -> Vec<i64> {
    let total: i64 = estimates.iter().map(|e| (*e).max(0)).sum();
    let floor = if estimates.is_empty() {
        0
    } else {
        (rows / estimates.len() as i64).clamp(1, 100)
    };
    estimates
        .iter()
        .map(|e| {
            let e = (*e).max(0);
            let share = if total > 0 {
                (rows as f64 * e as f64 / total as f64).ceil() as i64
            } else {
                0
            };
            // A table of unknown size (never analysed: 0) still gets its floor.
            share.max(if e == 0 { floor } else { e.min(floor) })
        })
        .collect()
}

/// One table in the audit's accumulated evidence.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditTable {
    pub table: String,
    /// `sampled`, `no-primary-key` (not audited), or how the last round read it.
    pub method: String,
    /// The source's row estimate at the last round (`pg_class.reltuples`; 0: unknown).
    pub estimated_rows: i64,
    /// Rows proven equal or different, all rounds.
    pub compared: i64,
    pub unsettled: i64,
    /// The expected share of the table's rows sampled at least once: `1 - Π(1 - fᵢ)` over the
    /// rounds, `fᵢ` the share round `i` sampled (1: every row, or a table read whole).
    pub coverage: f64,
    pub missing_on_target: Vec<String>,
    pub different: Vec<String>,
    pub truncated: bool,
}

/// The continuous audit's accumulated evidence (`validate::audit`): every round so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditReport {
    /// No round found a row missing or different.
    pub equal: bool,
    pub source: String,
    pub target: String,
    pub rounds: i64,
    /// Rows proven equal or different in all rounds.
    pub compared: i64,
    /// Rows changing on the source, or not yet replayed, when read: nothing proven.
    pub unsettled: i64,
    pub mismatches: i64,
    /// Source rows read by all rounds (the sample and its re-reads), and the time the rounds
    /// took: the audit's load on the source, measured.
    pub source_rows_read: i64,
    pub elapsed_ms: i64,
    pub rows_per_second: f64,
    pub budget_rows_per_second: i64,
    /// The last round's positions.
    pub positions: Positions,
    pub tables: Vec<AuditTable>,
    /// The last round's summary.
    pub last: String,
    pub summary: String,
}

impl AuditReport {
    /// `prior` (none before the first round) with `round`, sampled under `opts`, added.
    pub fn absorb(prior: Option<AuditReport>, round: &SampleReport, opts: &AuditOptions) -> Self {
        let mut a = prior.unwrap_or_else(|| AuditReport {
            source: round.source.clone(),
            target: round.target.clone(),
            ..AuditReport::default()
        });
        a.rounds += 1;
        a.source_rows_read += round.source_rows_read;
        a.elapsed_ms += round.elapsed_ms;
        a.budget_rows_per_second = opts.rows_per_second;
        a.positions = round.positions.clone();
        for r in &round.tables {
            let i = match a.tables.iter().position(|t| t.table == r.table) {
                Some(i) => i,
                None => {
                    a.tables.push(AuditTable {
                        table: r.table.clone(),
                        ..AuditTable::default()
                    });
                    a.tables.len() - 1
                }
            };
            let t = &mut a.tables[i];
            t.method = r.method.clone();
            t.estimated_rows = r.estimated_rows;
            let settled = r.sampled - r.unsettled;
            t.compared += settled;
            t.unsettled += r.unsettled;
            // A page sample's share of the table: its settled rows over the larger of the
            // estimate and what it saw (a stale, low estimate must not make a sample whole).
            // A read of the first rows of a table of unknown size covers nothing provably.
            let share = if r.whole {
                1.0
            } else if r.estimated_rows > 0 {
                (settled.max(0) as f64 / r.estimated_rows.max(r.sampled) as f64).min(1.0)
            } else {
                0.0
            };
            t.coverage = 1.0 - (1.0 - t.coverage) * (1.0 - share);
            for k in &r.missing_on_target {
                if !t.missing_on_target.contains(k) {
                    t.truncated |=
                        push_capped(&mut t.missing_on_target, vec![k.clone()], opts.max_keys);
                }
            }
            for k in &r.different {
                if !t.different.contains(k) {
                    t.truncated |= push_capped(&mut t.different, vec![k.clone()], opts.max_keys);
                }
            }
            t.truncated |= r.truncated;
        }
        a.tables.sort_by(|x, y| x.table.cmp(&y.table));
        a.compared = a.tables.iter().map(|t| t.compared).sum();
        a.unsettled = a.tables.iter().map(|t| t.unsettled).sum();
        a.mismatches = a
            .tables
            .iter()
            .map(|t| (t.missing_on_target.len() + t.different.len()) as i64)
            .sum();
        a.equal = a.mismatches == 0;
        a.rows_per_second = a.source_rows_read as f64 * 1000.0 / a.elapsed_ms.max(1) as f64;
        a.last = round.summary.clone();
        let audited: Vec<&AuditTable> = a
            .tables
            .iter()
            .filter(|t| t.method != "no-primary-key")
            .collect();
        let least = audited
            .iter()
            .min_by(|x, y| x.coverage.total_cmp(&y.coverage))
            .map(|t| format!("; least covered {} {:.2} %", t.table, t.coverage * 100.0))
            .unwrap_or_default();
        let unkeyed = a.tables.len() - audited.len();
        let head = format!(
            "{} rounds: {} rows compared in {} tables{least}{}, {} unsettled; source read {} rows at {:.0} rows/s (cap {})",
            a.rounds,
            a.compared,
            audited.len(),
            if unkeyed > 0 {
                format!(" ({unkeyed} without primary key not audited)")
            } else {
                String::new()
            },
            a.unsettled,
            a.source_rows_read,
            a.rows_per_second,
            if a.budget_rows_per_second > 0 {
                format!("{} rows/s", a.budget_rows_per_second)
            } else {
                "none".into()
            },
        );
        a.summary = if a.equal {
            format!("audit equal — {head}")
        } else {
            let bad: Vec<String> = a
                .tables
                .iter()
                .filter(|t| !t.missing_on_target.is_empty() || !t.different.is_empty())
                .map(|t| {
                    format!(
                        "{}: {}",
                        t.table,
                        difference_kinds(&t.missing_on_target, &[], &t.different).join(", ")
                    )
                })
                .collect();
            format!("audit DIFFERENT — {}; {head}", bad.join("; "))
        };
        a
    }
}

/// What the pre-fence pass reads, and how hard it may load the source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrepassOptions {
    /// As [`CompareOptions::tables`]; empty: every user table.
    pub tables: Vec<String>,
    /// As [`CompareOptions::leaf_rows`].
    pub leaf_rows: i64,
    /// As [`CompareOptions::max_keys`].
    pub max_keys: usize,
    /// As [`CompareOptions::mode`].
    pub mode: String,
    /// The read budget on the source: rows per second over the pass (each table is read at the
    /// server's speed, then the pass waits until it is back under the budget); 0: unlimited.
    pub rows_per_second: i64,
    /// Rounds that re-read the rows changed during the pass (each a source read, the replica
    /// past it, and the changes in between), so fewer are left to the fence pass.
    pub settle_rounds: i64,
    /// Keys of one table left to the fence pass at most; past it the fence pass rescans the
    /// table.
    pub max_pending: usize,
}

impl Default for PrepassOptions {
    fn default() -> Self {
        let c = CompareOptions::default();
        PrepassOptions {
            tables: c.tables,
            leaf_rows: c.leaf_rows,
            max_keys: c.max_keys,
            mode: c.mode,
            rows_per_second: 500_000,
            settle_rounds: 3,
            max_pending: 100_000,
        }
    }
}

/// How a database's changes since the pre-pass are known.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tracking {
    pub database: String,
    /// `logical-decoding` (a `test_decoding` slot on the source: the keys that changed) or
    /// `counters` (`pg_stat_user_tables`: which tables changed).
    pub how: String,
    /// The slot, and the position the pass consumed its changes to.
    pub slot: Option<String>,
    pub confirmed_lsn: Option<String>,
    /// Why this kind (e.g. `wal_level=replica`).
    pub why: String,
    /// What makes the counters comparable at the fence (`track_counts`, the statistics'
    /// reset time, the server's start): another value there, and counters prove nothing.
    #[serde(default)]
    pub epoch: Option<String>,
}

/// One table after the pre-pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrepassTable {
    pub table: String,
    /// As [`TableReport::method`].
    pub method: String,
    pub hash: String,
    pub key: Vec<String>,
    /// No proven difference.
    pub equal: bool,
    /// Rows on the source when read.
    pub rows: i64,
    pub segments: i64,
    /// Segments that differed between the two reads, and how many of them only by rows that
    /// changed in between (not differences: those rows are left to the fence pass).
    pub mismatched_segments: i64,
    pub explained_segments: i64,
    /// Proven differences (the row did not change on the source between the reads, twice).
    pub missing_on_target: Vec<String>,
    pub extra_on_target: Vec<String>,
    pub different: Vec<String>,
    pub truncated: bool,
    /// Key values (text, in key column order) of rows changed during the pass and not proven
    /// since: the fence pass compares them.
    pub pending: Vec<Vec<String>>,
    /// Why the fence pass must compare the whole table; `None`: it compares what changed.
    pub rescan: Option<String>,
    /// `pg_stat_user_tables` `n_tup_ins, n_tup_upd, n_tup_del` before the table was read.
    pub counters: Vec<i64>,
    /// The table's storage and definition (`relfilenode`, the `pg_class` row's version, its
    /// columns): a TRUNCATE, a rewrite or an ALTER changes it, and the fence pass rescans.
    pub shape: String,
}

/// The result of `prepass`: the evidence the fence pass builds on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrepassReport {
    /// No proven difference in any table.
    pub equal: bool,
    pub source: String,
    pub target: String,
    pub tracking: Vec<Tracking>,
    pub tables: Vec<PrepassTable>,
    /// Rows read on the source (segments, leaves and settle rounds), the time the pass took,
    /// and the rate that makes (against the budget).
    pub rows_read: i64,
    pub elapsed_ms: i64,
    pub rows_per_second: f64,
    pub budget_rows_per_second: i64,
    pub settle_rounds: i64,
    /// Keys left to the fence pass, all tables.
    pub pending_keys: i64,
    /// The `tables` option (empty: every table, and the fence pass also rescans tables
    /// created since) and the `mode`, which the fence pass keeps.
    #[serde(default)]
    pub only: Vec<String>,
    #[serde(default = "value_mode")]
    pub mode: String,
    pub summary: String,
}

fn value_mode() -> String {
    "value".into()
}

impl PrepassReport {
    /// A pre-pass of `source` against `target` with nothing in it yet.
    pub fn empty(source: &str, target: &str) -> PrepassReport {
        PrepassReport {
            equal: true,
            source: source.into(),
            target: target.into(),
            tracking: Vec::new(),
            tables: Vec::new(),
            rows_read: 0,
            elapsed_ms: 0,
            rows_per_second: 0.0,
            budget_rows_per_second: 0,
            settle_rounds: 0,
            pending_keys: 0,
            only: Vec::new(),
            mode: value_mode(),
            summary: String::new(),
        }
    }

    pub fn finish(mut self) -> Self {
        self.equal = self.tables.iter().all(|t| t.equal);
        self.pending_keys = self.tables.iter().map(|t| t.pending.len() as i64).sum();
        let rescan: Vec<&str> = self
            .tables
            .iter()
            .filter(|t| t.rescan.is_some())
            .map(|t| t.table.as_str())
            .collect();
        let how: Vec<String> = self
            .tracking
            .iter()
            .map(|t| format!("{} by {}", t.database, t.how))
            .collect();
        let head = format!(
            "{} tables, {} rows read in {} ms ({:.0} rows/s, budget {}); changes tracked: {}; {} keys left to the fence pass{}",
            self.tables.len(),
            self.rows_read,
            self.elapsed_ms,
            self.rows_per_second,
            if self.budget_rows_per_second > 0 {
                format!("{} rows/s", self.budget_rows_per_second)
            } else {
                "none".into()
            },
            how.join(", "),
            self.pending_keys,
            if rescan.is_empty() {
                String::new()
            } else {
                format!("; rescanned at the fence: {}", rescan.join(", "))
            }
        );
        self.summary = if self.equal {
            format!("equal — {head}")
        } else {
            let bad: Vec<String> = self
                .tables
                .iter()
                .filter(|t| !t.equal)
                .map(|t| {
                    let mut kinds =
                        difference_kinds(&t.missing_on_target, &t.extra_on_target, &t.different);
                    if kinds.is_empty() {
                        kinds.push(t.method.clone());
                    }
                    format!("{}: {}", t.table, kinds.join(", "))
                })
                .collect();
            format!("DIFFERENT — {}; {head}", bad.join("; "))
        };
        self
    }
}

/// A table named in the options that the source does not have.
pub fn unknown_table(op: &str, source: &str, table: &str, hint: String) -> PrimitiveError {
    PrimitiveError::invalid(A, op, format!("{source} has no table {table:?}"), hint)
}

pub trait Validate: Send + Sync {
    /// Can this world read `db`'s contents?
    fn available(&self, cx: &Call<'_>, db: &str) -> Result<Availability, PrimitiveError>;
    fn compare(
        &self,
        cx: &Call<'_>,
        source: &str,
        target: &str,
        opts: &CompareOptions,
    ) -> Result<Report, PrimitiveError>;
    fn sample(
        &self,
        cx: &Call<'_>,
        source: &str,
        target: &str,
        fraction: f64,
        opts: &SampleOptions,
    ) -> Result<SampleReport, PrimitiveError>;
    /// One round of the continuous audit (docs/validate.md, "The audit"): a sample like
    /// `sample`'s, sized by `opts.rows` instead of a fraction, read a page sample at a time,
    /// and paced under `opts.rows_per_second`.
    fn audit(
        &self,
        cx: &Call<'_>,
        source: &str,
        target: &str,
        opts: &AuditOptions,
    ) -> Result<SampleReport, PrimitiveError>;
    /// The query check (docs/validate.md, "The query check"): the source's heaviest
    /// read-only statements (`pg_stat_statements`) run on both sides in read-only
    /// transactions; errors on the target and latency ratios.
    fn queries(
        &self,
        cx: &Call<'_>,
        source: &str,
        target: &str,
        opts: &QueryCheckOptions,
    ) -> Result<QueryReport, PrimitiveError>;
    /// The pre-fence pass (docs/validate.md, "Two passes"): every table compared while
    /// replication runs, and change tracking started for the fence pass.
    fn prepass(
        &self,
        cx: &Call<'_>,
        source: &str,
        target: &str,
        opts: &PrepassOptions,
    ) -> Result<PrepassReport, PrimitiveError>;
    /// The fence pass: what may differ since `pre`, compared with both sides static; ends
    /// the change tracking.
    fn fence_pass(
        &self,
        cx: &Call<'_>,
        source: &str,
        target: &str,
        pre: &PrepassReport,
    ) -> Result<Report, PrimitiveError>;
    /// End the change tracking `pre` started (drop its slots); `true` if there was any.
    fn end_prepass(
        &self,
        cx: &Call<'_>,
        source: &str,
        pre: &PrepassReport,
    ) -> Result<bool, PrimitiveError>;
    /// Drop every change-tracking slot of the two-pass validation on `source`
    /// (`godwit_validate_*`, any database), whatever pass made it: the undo that also covers a
    /// pre-pass cut before it returned. The names dropped.
    fn end_tracking(&self, cx: &Call<'_>, source: &str) -> Result<Vec<String>, PrimitiveError>;
}

/// The prefix of the two-pass validation's slots (`godwit_validate_<database oid>`).
pub const TRACKING_SLOT_PREFIX: &str = "godwit_validate_";

/// A world without database access (e.g. aws without IAM database auth configured):
/// `available` says why; `compare` and `sample` fail `Conflict`.
pub struct NoAccess {
    pub why: String,
}

impl NoAccess {
    fn refuse(&self, op: &str) -> PrimitiveError {
        PrimitiveError::new(
            A,
            op,
            ErrorKind::Conflict,
            format!("no database access in this world: {}", self.why),
            "guard with validate::available(db).available, or configure database access",
        )
    }
}

impl Validate for NoAccess {
    fn available(&self, _cx: &Call<'_>, _db: &str) -> Result<Availability, PrimitiveError> {
        Ok(Availability {
            available: false,
            how: self.why.clone(),
        })
    }
    fn compare(
        &self,
        _cx: &Call<'_>,
        _: &str,
        _: &str,
        _: &CompareOptions,
    ) -> Result<Report, PrimitiveError> {
        Err(self.refuse("compare"))
    }
    fn sample(
        &self,
        _cx: &Call<'_>,
        _: &str,
        _: &str,
        _: f64,
        _: &SampleOptions,
    ) -> Result<SampleReport, PrimitiveError> {
        Err(self.refuse("sample"))
    }
    fn audit(
        &self,
        _cx: &Call<'_>,
        _: &str,
        _: &str,
        _: &AuditOptions,
    ) -> Result<SampleReport, PrimitiveError> {
        Err(self.refuse("audit"))
    }
    fn queries(
        &self,
        _cx: &Call<'_>,
        _: &str,
        _: &str,
        _: &QueryCheckOptions,
    ) -> Result<QueryReport, PrimitiveError> {
        Err(self.refuse("queries"))
    }
    fn prepass(
        &self,
        _cx: &Call<'_>,
        _: &str,
        _: &str,
        _: &PrepassOptions,
    ) -> Result<PrepassReport, PrimitiveError> {
        Err(self.refuse("prepass"))
    }
    fn fence_pass(
        &self,
        _cx: &Call<'_>,
        _: &str,
        _: &str,
        _: &PrepassReport,
    ) -> Result<Report, PrimitiveError> {
        Err(self.refuse("fence_pass"))
    }
    fn end_prepass(
        &self,
        _cx: &Call<'_>,
        _: &str,
        _: &PrepassReport,
    ) -> Result<bool, PrimitiveError> {
        Err(self.refuse("end_prepass"))
    }
    fn end_tracking(&self, _cx: &Call<'_>, _: &str) -> Result<Vec<String>, PrimitiveError> {
        Err(self.refuse("end_tracking"))
    }
}

/// One row of a leaf: its key (text form), a hash of its contents, and how many times it
/// occurs (1 with a primary key; a table without one is a multiset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafRow {
    pub key: String,
    pub hash: String,
    pub count: i64,
}

/// Keys differing between two leaves: `(missing on target, extra on target, different)`,
/// each in the order the rows came (key order). A key with a higher count on one side is
/// listed once per surplus occurrence.
pub fn diff_leaf(
    source: &[LeafRow],
    target: &[LeafRow],
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let on_target: HashMap<&str, (&str, i64)> = target
        .iter()
        .map(|r| (r.key.as_str(), (r.hash.as_str(), r.count)))
        .collect();
    let on_source: HashMap<&str, (&str, i64)> = source
        .iter()
        .map(|r| (r.key.as_str(), (r.hash.as_str(), r.count)))
        .collect();
    let (mut missing, mut extra, mut different) = (Vec::new(), Vec::new(), Vec::new());
    for r in source {
        match on_target.get(r.key.as_str()) {
            None => missing.extend(std::iter::repeat_n(r.key.clone(), r.count.max(0) as usize)),
            Some((h, _)) if *h != r.hash => different.push(r.key.clone()),
            Some((_, n)) if *n < r.count => {
                missing.extend(std::iter::repeat_n(r.key.clone(), (r.count - n) as usize))
            }
            Some(_) => {}
        }
    }
    for r in target {
        match on_source.get(r.key.as_str()) {
            None => extra.extend(std::iter::repeat_n(r.key.clone(), r.count.max(0) as usize)),
            Some((h, n)) if *h == r.hash && *n < r.count => {
                extra.extend(std::iter::repeat_n(r.key.clone(), (r.count - n) as usize))
            }
            Some(_) => {}
        }
    }
    (missing, extra, different)
}

/// `[lo, hi)` cut into at most `n` contiguous segments of equal width (the last may be
/// shorter): `(width, segments)`. `hi > lo`, `n >= 1`.
pub fn split(lo: i64, hi: i64, n: i64) -> (i64, Vec<(i64, i64)>) {
    let span = (hi as i128 - lo as i128).max(1);
    let n = (n.max(1) as i128).min(span);
    let width = ((span + n - 1) / n) as i64;
    let mut out = Vec::new();
    let mut a = lo as i128;
    while a < hi as i128 {
        let b = (a + width as i128).min(hi as i128);
        out.push((a as i64, b as i64));
        a = b;
    }
    (width, out)
}

/// Append `keys` to `into` up to `max` in all; whether some did not fit.
pub fn push_capped(into: &mut Vec<String>, keys: Vec<String>, max: usize) -> bool {
    let room = max.saturating_sub(into.len());
    let over = keys.len() > room;
    into.extend(keys.into_iter().take(room));
    over
}

/// Add a leaf's differences to `t`, capped at `max` keys per kind.
pub fn record_leaf(t: &mut TableReport, source: &[LeafRow], target: &[LeafRow], max: usize) {
    let (m, e, d) = diff_leaf(source, target);
    let mut over = push_capped(&mut t.missing_on_target, m, max);
    over |= push_capped(&mut t.extra_on_target, e, max);
    over |= push_capped(&mut t.different, d, max);
    t.truncated |= over;
    if t.differences() > 0 {
        t.equal = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn row(key: &str, hash: &str) -> LeafRow {
        LeafRow {
            key: key.into(),
            hash: hash.into(),
            count: 1,
        }
    }

    #[test]
    fn an_audit_round_is_shared_by_size_with_small_tables_whole() {
        // 20,000 rows over a 1,000,000-row table, a 50-row one and one never analysed (0).
        let shares = audit_shares(&[1_000_000, 50, 0], 20_000);
        // By size (rounded up); the 50-row table whole (the floor of 100, capped by its size);
        // the one of unknown size its floor.
        assert_eq!(shares, vec![20_000, 50, 100]);
        // Few rows per round: the floor shrinks with them, never below 1.
        assert_eq!(audit_shares(&[10, 10, 10], 2), vec![1, 1, 1]);
        assert!(audit_shares(&[], 100).is_empty());
    }

    fn round(tables: Vec<SampleTable>, read: i64, ms: i64) -> SampleReport {
        SampleReport {
            tables,
            source_rows_read: read,
            elapsed_ms: ms,
            ..SampleReport::new("src", "dst", 0.0)
        }
        .finish()
    }

    #[test]
    fn the_audit_accumulates_rounds_coverage_and_proven_keys() {
        let opts = AuditOptions::default();
        let big = |sampled, unsettled, different: Vec<&str>| SampleTable {
            table: "public.orders".into(),
            method: "sampled pages".into(),
            sampled,
            unsettled,
            estimated_rows: 1000,
            different: different.into_iter().map(String::from).collect(),
            ..SampleTable::default()
        };
        let small = SampleTable {
            table: "public.kinds".into(),
            method: "sampled whole".into(),
            sampled: 7,
            estimated_rows: 7,
            whole: true,
            ..SampleTable::default()
        };
        let a = AuditReport::absorb(
            None,
            &round(vec![big(100, 0, vec![]), small.clone()], 214, 107),
            &opts,
        );
        assert!(a.equal && a.rounds == 1 && a.compared == 107, "{a:?}");
        let orders = |a: &AuditReport| {
            a.tables
                .iter()
                .find(|t| t.table == "public.orders")
                .cloned()
                .unwrap()
        };
        assert!((orders(&a).coverage - 0.1).abs() < 1e-9, "{a:?}");
        // Unsettled rows prove nothing: only the 100 settled of round 2 count for coverage.
        let a = AuditReport::absorb(
            Some(a),
            &round(vec![big(150, 50, vec![]), small.clone()], 314, 157),
            &opts,
        );
        assert!(
            (orders(&a).coverage - (1.0 - 0.9 * 0.9)).abs() < 1e-9,
            "{a:?}"
        );
        assert_eq!((a.compared, a.unsettled, a.rounds), (214, 50, 2));
        let kinds = a.tables.iter().find(|t| t.table == "public.kinds").unwrap();
        assert_eq!(kinds.coverage, 1.0);
        // The measured rate is over all rounds: 528 rows in 264 ms.
        assert!(
            (a.rows_per_second - 2000.0).abs() < 1e-6,
            "{}",
            a.rows_per_second
        );
        // A key proven in a round stays, once, and makes the audit different.
        let a = AuditReport::absorb(
            Some(a),
            &round(vec![big(100, 0, vec!["17"])], 200, 100),
            &opts,
        );
        let a = AuditReport::absorb(
            Some(a),
            &round(vec![big(100, 0, vec!["17"])], 200, 100),
            &opts,
        );
        assert!(!a.equal && a.mismatches == 1, "{a:?}");
        assert!(
            a.summary
                .starts_with("audit DIFFERENT — public.orders: different [17]"),
            "{}",
            a.summary
        );
        assert!(a.summary.contains("4 rounds"), "{}", a.summary);
    }

    #[test]
    fn a_leaf_diff_names_missing_extra_and_different_keys_in_key_order() {
        let src = [row("1", "a"), row("2", "b"), row("3", "c"), row("5", "e")];
        let dst = [row("1", "a"), row("3", "X"), row("4", "d"), row("5", "e")];
        let (m, e, d) = diff_leaf(&src, &dst);
        assert_eq!(m, ["2"]);
        assert_eq!(e, ["4"]);
        assert_eq!(d, ["3"]);
    }

    #[test]
    fn a_multiset_leaf_counts_duplicates() {
        let src = [LeafRow {
            key: "(1,x)".into(),
            hash: String::new(),
            count: 3,
        }];
        let dst = [LeafRow {
            key: "(1,x)".into(),
            hash: String::new(),
            count: 1,
        }];
        let (m, e, d) = diff_leaf(&src, &dst);
        assert_eq!((m.len(), e.len(), d.len()), (2, 0, 0));
        let (m, e, _) = diff_leaf(&dst, &src);
        assert_eq!((m.len(), e.len()), (0, 2));
    }

    #[test]
    fn a_report_summary_names_the_keys() {
        let mut t = TableReport::new("public.orders", "segments", vec!["id".into()]);
        record_leaf(&mut t, &[row("7", "a")], &[row("7", "b")], 10);
        let r = Report {
            equal: true,
            source: "s".into(),
            target: "t".into(),
            positions: Positions::default(),
            fence_pass: None,
            tables: vec![t],
            sequences: vec![],
            extensions: vec![],
            settings: vec![],
            summary: String::new(),
        }
        .finish();
        assert!(!r.equal);
        assert_eq!(r.summary, "DIFFERENT — public.orders: different [7]");
    }

    proptest! {
        #[test]
        fn split_covers_the_range_exactly(lo in -1_000_000i64..1_000_000, len in 1i64..5_000_000, n in 1i64..5000) {
            let hi = lo + len;
            let (w, segs) = split(lo, hi, n);
            prop_assert!(w >= 1);
            prop_assert!(segs.len() as i64 <= n);
            prop_assert_eq!(segs[0].0, lo);
            prop_assert_eq!(segs.last().unwrap().1, hi);
            for pair in segs.windows(2) {
                prop_assert_eq!(pair[0].1, pair[1].0);
            }
            // Segment i is exactly the keys k with (k - lo) / w == i: what the SQL groups by.
            for (i, (a, b)) in segs.iter().enumerate() {
                prop_assert_eq!((a - lo) / w, i as i64);
                prop_assert_eq!((b - 1 - lo) / w, i as i64);
            }
        }

        #[test]
        fn a_leaf_diff_is_empty_exactly_for_equal_leaves(
            src in proptest::collection::btree_map(0u16..200, 0u8..4, 0..60),
            dst in proptest::collection::btree_map(0u16..200, 0u8..4, 0..60),
        ) {
            let rows = |m: &std::collections::BTreeMap<u16, u8>| -> Vec<LeafRow> {
                m.iter().map(|(k, h)| row(&k.to_string(), &h.to_string())).collect()
            };
            let (m, e, d) = diff_leaf(&rows(&src), &rows(&dst));
            prop_assert_eq!(m.is_empty() && e.is_empty() && d.is_empty(), src == dst);
            prop_assert_eq!(m.len(), src.keys().filter(|k| !dst.contains_key(k)).count());
            prop_assert_eq!(e.len(), dst.keys().filter(|k| !src.contains_key(k)).count());
        }
    }
}
