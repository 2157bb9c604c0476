//! Area `cw`: CloudWatch metric series, the raw material of every lag gate.
//!
//! | file      | what                                          |
//! |-----------|-----------------------------------------------|
//! | `mod.rs`  | the [`Cw`] trait and [`MetricQuery`]          |
//! | `rhai.rs` | the Rhai module `cw`                          |
//! | `sim.rs`  | [`Cw`] over the simulator's datapoints        |
//!
//! Series come back as `[#{ t, v }]` with `t` the START of the period in epoch seconds (INT),
//! oldest first, gaps preserved: a missing datapoint is absent, never 0 (see `docs/lag.md`).

#[cfg(feature = "aws")]
pub mod aws;
pub mod rhai;
pub mod sim;

use std::collections::BTreeMap;

use godwit_engine::Call;
use godwit_engine::PrimitiveError;
use serde::{Deserialize, Serialize};

pub use crate::lag::Point;

/// One `GetMetricData`-style query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricQuery {
    pub namespace: String,
    pub name: String,
    pub dimensions: BTreeMap<String, String>,
    /// `Maximum`, `Minimum`, `Average`, `Sum` or `SampleCount`.
    pub statistic: String,
    /// Seconds, a multiple of 60.
    pub period: i64,
    /// Epoch seconds, inclusive.
    pub since: i64,
    /// Epoch seconds, exclusive.
    pub until: i64,
}

pub trait Cw: Send + Sync {
    fn metric_series(&self, cx: &Call<'_>, q: &MetricQuery) -> Result<Vec<Point>, PrimitiveError>;
}

pub const STATISTICS: &[&str] = &["Maximum", "Minimum", "Average", "Sum", "SampleCount"];
