//! # godwit-pgstore — the shared store in PostgreSQL
//!
//! The same [`JournalStore`](godwit_engine::JournalStore) as the file store, kept in tables of
//! schema `godwit` so that many `godwit worker` processes on many machines can drive runs and
//! take over each other's (docs/store.md).
//!
//! * `conn`: one connection per thread of its own (the trait is synchronous and is called
//!   from inside tokio runtimes; see there why), with statement timeouts and a periodic tick.
//! * [`schema`]: the tables and their versioned migrations (`godwit.schema_migrations`),
//!   applied at connect.
//! * [`store`]: [`PgStore`] (runs, journal records with the file store's hash chain and
//!   verification, transcripts, operator requests, cluster claims) and [`PgWriter`], which
//!   holds a run's **lease** (heartbeats from its connection thread) and appends under its
//!   **fencing token**, checked in the append's own statement.
//! * [`queue`]: the work queue (`FOR UPDATE SKIP LOCKED`) and the workers' heartbeats.
//! * [`audit`]: the log of `godwit serve`'s actions with who took them.
//! * [`notify`]: the notification outbox — rows inserted by runs and fleet advances, delivered
//!   by workers (claimed `FOR UPDATE SKIP LOCKED`, retried with backoff).
//! * [`fleet`]: fleets and their waves (canaries, runs in flight, failures), advanced by any
//!   process that calls [`PgStore::advance_fleets`] (every worker does).
//!
//! Data flows one way: a caller's thread sends a closure to a connection thread and waits for
//! its answer; nothing here calls back into the engine.

pub mod audit;
mod conn;
pub mod fleet;
pub mod notify;
pub mod queue;
pub mod schema;
pub mod store;

pub use audit::AuditEntry;
pub use fleet::{FleetAction, FleetDef, FleetEvent, FleetStatus, Registered, WaveDef};
pub use notify::{Delivery, NotificationRow, Outgoing, Pending, Target as NotifyTarget};
pub use queue::{Job, QueueRow, Requeue, Settle, Taken, WorkerLease};
pub use store::{LatestRun, Options, PgStore, PgWriter, holder_id};

/// Whether `s` names a PostgreSQL store (`postgres://…` or `postgresql://…`).
pub fn is_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}
