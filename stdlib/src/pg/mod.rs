//! Area `pg`: what the migration needs to know from and do to PostgreSQL itself — extensions,
//! settings, unlogged tables, replication slots and LSNs, application backends and the fence
//! (block logins, terminate, prove nobody is left), sequences.
//!
//! | file      | what                                  |
//! |-----------|---------------------------------------|
//! | `mod.rs`  | the [`Pg`] trait and its row types    |
//! | `rhai.rs` | the Rhai module `pg`                  |
//! | `sim.rs`  | [`Pg`] over the simulator             |
//! | `live.rs` | [`Pg`] over real servers (lab, aws)   |
//!
//! `db` is always an RDS instance id or an Aurora cluster id (its writer). LSNs are returned
//! both as text (`16/B374D848`) and as a byte position (`*_bytes`, INT) for arithmetic.

pub mod live;
pub mod rhai;
pub mod sim;

use godwit_engine::Call;
use godwit_engine::PrimitiveError;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Extension {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Setting {
    pub name: String,
    pub setting: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotInfo {
    pub slot_name: String,
    /// `logical` or `physical`.
    pub slot_type: String,
    pub plugin: Option<String>,
    pub database: Option<String>,
    pub active: bool,
    pub restart_lsn: String,
    pub confirmed_flush_lsn: Option<String>,
    /// `reserved` (within max_wal_size), `extended` (beyond it, kept for the slot).
    pub wal_status: String,
    /// WAL held back: logical from `confirmed_flush_lsn`, physical from `restart_lsn`.
    pub lag_bytes: i64,
    /// Epoch seconds since when nobody reads the slot, `()` while active.
    pub inactive_since: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lsn {
    pub lsn: String,
    pub lsn_bytes: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backend {
    pub pid: i64,
    pub role: String,
    /// `active`, `idle`, `idle in transaction`.
    pub state: String,
    /// Epoch seconds.
    pub backend_start: i64,
    pub xact_start: Option<i64>,
    /// `pg_terminate_backend` was called and the backend has not exited yet.
    pub terminating: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sequence {
    pub name: String,
    pub last_value: i64,
}

/// A table's content as a hash (the simulator's stand-in for a per-table checksum).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableHash {
    pub table: String,
    pub rows: i64,
    pub hash: String,
}

pub trait Pg: Send + Sync {
    /// Per-table content hashes, sorted by table: equal hashes mean equal contents.
    fn table_hashes(&self, cx: &Call<'_>, db: &str) -> Result<Vec<TableHash>, PrimitiveError>;
    fn installed_extensions(
        &self,
        cx: &Call<'_>,
        db: &str,
    ) -> Result<Vec<Extension>, PrimitiveError>;
    /// `names` empty: every setting godwit looks at.
    fn settings(
        &self,
        cx: &Call<'_>,
        db: &str,
        names: &[String],
    ) -> Result<Vec<Setting>, PrimitiveError>;
    fn unlogged_tables(&self, cx: &Call<'_>, db: &str) -> Result<Vec<String>, PrimitiveError>;
    fn replication_slots(&self, cx: &Call<'_>, db: &str) -> Result<Vec<SlotInfo>, PrimitiveError>;
    /// `pg_current_wal_lsn()` on a primary.
    fn current_lsn(&self, cx: &Call<'_>, db: &str) -> Result<Lsn, PrimitiveError>;
    /// `pg_last_wal_replay_lsn()` on a replica.
    fn replay_lsn(&self, cx: &Call<'_>, db: &str) -> Result<Lsn, PrimitiveError>;
    /// Backends of application roles (not rdsadmin, not replication), by pid.
    fn application_backends(&self, cx: &Call<'_>, db: &str)
    -> Result<Vec<Backend>, PrimitiveError>;
    /// `ALTER ROLE .. NOLOGIN` (or `CONNECTION LIMIT 0`): new logins fail; returns the roles
    /// now blocked.
    fn block_logins(
        &self,
        cx: &Call<'_>,
        db: &str,
        roles: &[String],
    ) -> Result<Vec<String>, PrimitiveError>;
    fn unblock_logins(
        &self,
        cx: &Call<'_>,
        db: &str,
        roles: &[String],
    ) -> Result<Vec<String>, PrimitiveError>;
    /// `pg_terminate_backend(pid)` for each; returns the pids signalled. Returns before the
    /// backends exit: poll `application_backends` until empty.
    fn terminate_backends(
        &self,
        cx: &Call<'_>,
        db: &str,
        pids: &[i64],
    ) -> Result<Vec<i64>, PrimitiveError>;
    fn sequences(&self, cx: &Call<'_>, db: &str) -> Result<Vec<Sequence>, PrimitiveError>;
}
