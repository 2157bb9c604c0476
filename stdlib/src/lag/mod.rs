//! Replication-lag analysis: pure functions over metric series that decide when an Aurora
//! replica has everything, and say why with the numbers.
//!
//! | file          | what                                                                  |
//! |---------------|-----------------------------------------------------------------------|
//! | `mod.rs`      | the data types: [`Point`], [`Slot`], [`Options`], [`Assessment`]      |
//! | `series.rs`   | cleaning a series (sort, dedup, drop -1) and window/gap/run questions  |
//! | `stats.rs`    | nearest-rank percentile, median, Theil–Sen slope                       |
//! | `classify.rs` | one window → caught-up / idle-oscillation / lagging / growing / ...   |
//! | `fence.rs`    | the sync gate: the 0↔64 MB rule after the fence                       |
//! | `sessions.rs`| the credential-less fence: no session after the reboot (`DatabaseConnections`) |
//! | `slots.rs`    | naming the stale slot and what to do about it                         |
//! | `peak.rs`     | "keeps up at peak" validation and the final catch-up estimate         |
//! | `headroom.rs` | time until `FreeStorageSpace` runs out                                 |
//! | `fmt.rs`      | bytes, UTC times and durations for `why` lines                         |
//! | `rhai.rs`     | the Rhai module `lag` (argument conversion and the reference docs)     |
//!
//! Every analysis returns an [`Assessment`] `{ verdict, pass, why, evidence }`, the shape gates
//! consume. The rules and thresholds are explained for operators in `docs/lag.md`.

mod classify;
mod fence;
pub mod fmt;
mod headroom;
mod peak;
pub mod rhai;
mod series;
mod sessions;
mod slots;
pub mod stats;

pub use classify::classify;
pub use fence::caught_up_after_fence;
pub use headroom::wal_headroom;
pub use peak::keeps_up_at_peak;
pub use series::Series;
pub use sessions::sessions_ended_after_fence;
pub use slots::stale_slots;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One datapoint: `t` is the START of its period in epoch seconds (CloudWatch convention; for
/// lab samples, the sampling instant), `v` the value (bytes or seconds, by metric).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub t: i64,
    pub v: f64,
}

/// Earliest epoch seconds the Rhai functions accept (0001-01-01T00:00:00Z). With the latest,
/// this bounds every timestamp to ±2.6e11, so sums and differences of a few of them (a fence plus
/// an allowance, an age) stay far inside `i64`: out-of-range input is `Invalid`, never an
/// overflow panic (debug) or a silently wrapped time (release).
pub const MIN_EPOCH_SECONDS: i64 = -62_135_596_800;

/// Latest epoch seconds the Rhai functions accept (9999-12-31T23:59:59Z).
pub const MAX_EPOCH_SECONDS: i64 = 253_402_300_799;

/// Longest duration option (seconds) the Rhai functions accept: the span of the epoch range.
pub const MAX_DURATION_SECONDS: i64 = MAX_EPOCH_SECONDS - MIN_EPOCH_SECONDS;

/// 64 MiB: the WAL segment size on RDS for PostgreSQL (stock PostgreSQL uses 16 MiB).
pub const RDS_SEGMENT_BYTES: f64 = 64.0 * 1024.0 * 1024.0;

/// What an analysis concluded. Each function documents which verdicts it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Slot lag 0 (after the fence, for the sync gate) and replica lag ≈ 0.
    CaughtUp,
    /// Idle source: slot lag saw-tooths between 0 and one segment; nothing is missing.
    IdleOscillation,
    /// Behind, but not growing.
    Lagging,
    /// Slot lag trending up by more than a segment over the window, replica lag not ≈ 0.
    Growing,
    /// Slot lag far above a segment, or growing, while the replica's own lag is ≈ 0.
    StaleSlot,
    /// No slot is stale (only from [`stale_slots`]).
    NoStaleSlot,
    /// Not enough data, or a series stopped arriving.
    NoData,
    /// Sync gate: no 0 datapoint after the fence yet, data still arriving.
    Waiting,
    /// Peak validation passed.
    KeepsUp,
    /// Peak validation failed on replica lag, slot trend or slot bound.
    FallingBehind,
    /// Peak validation: the window does not contain the known peak write rate.
    WindowMissesPeak,
    /// Storage lasts at least the required time.
    HeadroomOk,
    /// Storage runs out sooner than the required time.
    HeadroomLow,
    /// Credential-less fence: no connection after the reboot.
    SessionsEnded,
    /// Credential-less fence: connections after the reboot.
    SessionsLeft,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::CaughtUp => "caught-up",
            Verdict::IdleOscillation => "idle-oscillation",
            Verdict::Lagging => "lagging",
            Verdict::Growing => "growing",
            Verdict::StaleSlot => "stale-slot",
            Verdict::NoStaleSlot => "no-stale-slot",
            Verdict::NoData => "no-data",
            Verdict::Waiting => "waiting",
            Verdict::KeepsUp => "keeps-up",
            Verdict::FallingBehind => "falling-behind",
            Verdict::WindowMissesPeak => "window-misses-peak",
            Verdict::HeadroomOk => "headroom-ok",
            Verdict::HeadroomLow => "headroom-low",
            Verdict::SessionsEnded => "sessions-ended",
            Verdict::SessionsLeft => "sessions-left",
        }
    }
}

/// The raw numbers behind a verdict: a flat map of numbers and strings. Non-finite numbers are
/// left out (JSON has no `inf`), and the `why` line says "never" instead.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Evidence(pub serde_json::Map<String, Value>);

impl Evidence {
    pub fn num(&mut self, key: &str, v: f64) -> &mut Self {
        if let Some(n) = serde_json::Number::from_f64(v) {
            self.0.insert(key.to_string(), Value::Number(n));
        }
        self
    }
    pub fn int(&mut self, key: &str, v: i64) -> &mut Self {
        self.0.insert(key.to_string(), Value::from(v));
        self
    }
    pub fn text(&mut self, key: &str, v: impl Into<String>) -> &mut Self {
        self.0.insert(key.to_string(), Value::String(v.into()));
        self
    }
    pub fn get_f64(&self, key: &str) -> Option<f64> {
        self.0.get(key).and_then(Value::as_f64)
    }
    pub fn get_i64(&self, key: &str) -> Option<i64> {
        self.0.get(key).and_then(Value::as_i64)
    }
}

/// `{ verdict, pass, why, evidence }`: what a gate check returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    pub verdict: Verdict,
    /// Whether a gate built on this check may open; each function documents its meaning.
    pub pass: bool,
    /// One line for the transcript, starting with the verdict: `stale-slot: ...`.
    pub why: String,
    pub evidence: Evidence,
}

impl Assessment {
    fn new(verdict: Verdict, pass: bool, detail: impl AsRef<str>, evidence: Evidence) -> Self {
        let mut evidence = evidence;
        evidence.text("verdict", verdict.as_str());
        Assessment {
            verdict,
            pass,
            why: format!("{}: {}", verdict.as_str(), detail.as_ref()),
            evidence,
        }
    }
}

/// A replication slot as listed from `pg_replication_slots` (lag measured from
/// `confirmed_flush_lsn` for logical slots, `restart_lsn` for physical ones).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slot {
    pub slot_name: String,
    pub slot_type: SlotType,
    pub active: bool,
    pub lag_bytes: f64,
    pub inactive_since: Option<Since>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlotType {
    Logical,
    Physical,
}

/// When a slot became inactive: epoch seconds, or the text the source reported (PostgreSQL 17's
/// `inactive_since` is a timestamptz).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Since {
    Epoch(i64),
    Text(String),
}

impl Since {
    pub fn display(&self) -> String {
        match self {
            Since::Epoch(t) => fmt::fmt_utc(*t),
            Since::Text(s) => s.clone(),
        }
    }
}

/// Thresholds and context shared by the analyses. Slot-lag thresholds are multiples of
/// `segment_bytes`, so the same rules hold for 16 MiB stock PostgreSQL and 64 MiB RDS.
/// Defaults are in [`Options::default`] and `docs/lag.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Options {
    /// WAL segment size: the height of one idle sawtooth tooth.
    pub segment_bytes: f64,
    /// Slot lag up to this many segments can be one idle tooth (a switch plus heartbeat bytes).
    pub idle_ceiling_segments: f64,
    /// Slot lag above this many segments, sustained, while the replica is at ≈ 0 s: stale slot.
    pub stale_slot_segments: f64,
    /// Replica lag at or below this counts as ≈ 0.
    pub replica_lag_tolerance_seconds: f64,
    /// How long a condition must hold before it is called stale (guards against one spike).
    pub sustain_seconds: i64,
    /// Metric period: 60 for CloudWatch, 1 for lab sampling. Used for gap detection.
    pub period_seconds: i64,
    /// A series whose newest datapoint is older than this (relative to `now`) stopped arriving.
    pub stale_after_seconds: i64,
    /// Sync gate: a datapoint counts only if `t >= fence + clock_skew_seconds`.
    pub clock_skew_seconds: i64,
    /// Reference time; default: the newest datapoint of the given series.
    pub now: Option<i64>,
    /// Analyse only `[now - window_seconds, now]`; default: the whole series.
    pub window_seconds: Option<i64>,
    /// Fewer datapoints than this in the window: `no-data`.
    pub min_datapoints: usize,
    /// Peak validation bound on replica lag p99.
    pub max_replica_lag_p99_seconds: f64,
    /// Known peak WAL generation rate (bytes/s); when set, the window must reach
    /// `peak_coverage` of it.
    pub peak_bytes_per_second: Option<f64>,
    pub peak_coverage: f64,
    /// WAL headroom: storage must last at least this long.
    pub min_headroom_seconds: f64,
    /// Credential-less fence: `DatabaseConnections` after the reboot may show this many.
    pub connection_allowance: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            segment_bytes: RDS_SEGMENT_BYTES,
            idle_ceiling_segments: 1.25,
            stale_slot_segments: 4.0,
            replica_lag_tolerance_seconds: 1.0,
            sustain_seconds: 600,
            period_seconds: 60,
            stale_after_seconds: 300,
            clock_skew_seconds: 5,
            now: None,
            window_seconds: None,
            min_datapoints: 5,
            max_replica_lag_p99_seconds: 10.0,
            peak_bytes_per_second: None,
            peak_coverage: 0.9,
            min_headroom_seconds: 6.0 * 3600.0,
            connection_allowance: 0.0,
        }
    }
}

impl Options {
    fn ceiling(&self) -> f64 {
        self.segment_bytes * self.idle_ceiling_segments
    }
    fn far(&self) -> f64 {
        self.segment_bytes * self.stale_slot_segments
    }
    /// `now` if given, else the newest datapoint of any series, else `fallback`.
    fn now_or(&self, series: &[&Series], fallback: i64) -> i64 {
        self.now.unwrap_or_else(|| {
            series
                .iter()
                .filter_map(|s| s.last().map(|p| p.t))
                .max()
                .map_or(fallback, |t| t.max(fallback))
        })
    }
    /// The analysis window of `s` ending at `now`.
    fn window(&self, s: &Series, now: i64) -> Series {
        match self.window_seconds {
            Some(w) => s.since(now.saturating_sub(w)),
            None => s.clone(),
        }
    }
}

/// Option keys per function: an unknown key is an error listing these.
pub mod keys {
    const SHARED: [&str; 10] = [
        "segment_bytes",
        "idle_ceiling_segments",
        "stale_slot_segments",
        "replica_lag_tolerance_seconds",
        "sustain_seconds",
        "period_seconds",
        "stale_after_seconds",
        "now",
        "window_seconds",
        "min_datapoints",
    ];
    const fn with<const N: usize, const M: usize>(extra: [&'static str; M]) -> [&'static str; N] {
        let mut out = [""; N];
        let mut i = 0;
        while i < SHARED.len() {
            out[i] = SHARED[i];
            i += 1;
        }
        let mut j = 0;
        while j < M {
            out[SHARED.len() + j] = extra[j];
            j += 1;
        }
        out
    }
    pub const CLASSIFY: [&str; 10] = SHARED;
    pub const FENCE: [&str; 11] = with(["clock_skew_seconds"]);
    pub const PEAK: [&str; 13] = with([
        "max_replica_lag_p99_seconds",
        "peak_bytes_per_second",
        "peak_coverage",
    ]);
    pub const HEADROOM: [&str; 11] = with(["min_headroom_seconds"]);
    pub const SESSIONS: [&str; 12] = with(["clock_skew_seconds", "connection_allowance"]);
    pub const STALE_SLOTS: [&str; 3] = [
        "segment_bytes",
        "idle_ceiling_segments",
        "stale_slot_segments",
    ];
}

#[cfg(test)]
mod tests;
