//! # godwit-engine — durable execution of Rhai runbooks
//!
//! Nothing in here knows about AWS or PostgreSQL; primitive areas plug in through [`Plugin`] and
//! reach the world only through the [`Host`].
//!
//! How a run flows:
//!
//! ```text
//!  Runner::start / resume ──► runbook::load (parse + pin content hash of runbook and modules)
//!        │                         │
//!        ▼                         ▼
//!  JournalStore (file: <state>/runs/<id>/journal.jsonl, hash-chained, fsync, flock)
//!        │ Plan::from_records (what completed, what was in flight, was rollback underway?)
//!        ▼
//!  Rhai Engine (one per run, on the caller's blocking thread; limits; Simple optimisation)
//!    step(name, opts, || ...)  ─ replay from journal, or run + journal the result
//!    gate(name, opts, || ...)  ─ poll through the Clock until checks pass `hold` times
//!    abort(reason)             ─ run registered undos in reverse, each journaled
//!        │ primitives call Host::call → a Call (unit, token, deadline, cancel, block_on)
//!        ▼
//!  Transcript events ─► transcript.jsonl, CLI rendering, test collectors
//! ```
//!
//! | module | what lives there |
//! |---|---|
//! | [`run`] | [`Runner`] (start, resume, abort; the cluster lock), run ids, limits, the built-in `step`/`gate`/`abort`/`now`/`sleep`, `wait_until_approved`; [`run::value`], the journaling boundary (script value ⇄ JSON, with depth, size and finiteness checks) |
//! | [`journal`] | entries, the hash chain, [`journal::file::FileStore`], [`journal::memory::MemoryStore`] |
//! | [`plan`] | reading a journal back: replay sequence and run status |
//! | [`host`] | [`Host`], the primitives' door to clock, tokio and transcript; `host/abridged.rs` records each call's arguments and result abridged as they serialize |
//! | [`clock`] | [`Clock`] (system, virtual), [`Cancel`] |
//! | [`transcript`] | events and sinks |
//! | [`error`], [`report`], [`exit`] | the error pipeline, operator reports, exit codes |
//! | [`runbook`] | loading and hashing runbooks |
//! | [`lint`] | `godwit check`'s lints: unknown functions, step names, world calls outside steps |
//! | [`params`] | a runbook's parameter schema: checked before a run exists, defaults filled in, docs table |
//! | [`session`] | interactive sessions (the REPL): no journal, read-only by default |
//! | [`duration`] | `"30s"`-style durations |

pub mod clock;
pub mod duration;
pub mod error;
pub mod exit;
pub mod host;
pub mod journal;
pub mod lint;
pub mod params;
pub mod plan;
pub mod report;
pub mod run;
pub mod runbook;
pub mod session;
pub mod transcript;

pub use clock::{Cancel, Clock, SystemClock, VirtualClock};
pub use error::{EngineError, ErrorKind, PrimitiveError};
pub use host::{Call, Host, Installed, to_rhai};
pub use journal::JournalStore;
pub use run::{Limits, Plugin, ResumeRequest, RunReport, RunStatus, Runner, StartRequest};
