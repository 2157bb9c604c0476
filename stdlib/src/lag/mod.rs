//! Replication-lag analysis (in progress).
pub mod rhai;
