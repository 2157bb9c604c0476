//! The lab world: the standard runbook against real PostgreSQL server processes and a real
//! Envoy on one machine, under a live write load, measuring what clients saw.
//!
//! | module       | what                                                                    |
//! |--------------|-------------------------------------------------------------------------|
//! | `pgproc`     | throwaway PostgreSQL clusters: binaries, server user, start/stop by pid |
//! | `state`      | `lab.json`: servers, RDS-shaped objects, snapshots, ports, consumers   |
//! | `supervisor` | `lab up/down/status`: source, control plane + Envoy, sampler; the world |
//! | `areas`      | rds and ec2 over servers, `pg_hba`, `pg_basebackup` (replicas, snapshots) |
//! | `withheld`   | `pg` and `validate` of a lab without database access (credential-less)  |
//! | `ops`        | instance operations recorded before they act, completed after a crash   |
//! | `route_cdc`  | route through the control plane's API; CDC with `pg_recvlogical`        |
//! | `metrics`    | the lab's CloudWatch: one-second samples, aggregated per period; RDS's heartbeat |
//! | `workload`   | clients writing through Envoy: blackout, failures, lost commits         |
//! | `cutover`    | one measured cutover: workload + runbook + what clients saw             |
//! | `faults`     | faults a test plants: a replica's copy whose rows differ from the source |

pub mod areas;
pub mod cutover;
pub mod faults;
pub mod metrics;
pub mod ops;
pub mod pgproc;
pub mod route_cdc;
pub mod state;
pub mod supervisor;
pub mod withheld;
pub mod workload;

pub use state::LabState;
pub use supervisor::{LabOptions, Supervisor};

/// What can go wrong setting up or driving a lab.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LabError {
    /// Something the lab needs is not installed or not configured; the message says how to
    /// get it.
    #[error("{0}")]
    Prerequisite(String),
    #[error("{0}")]
    Io(String),
    /// A server or tool failed; the message quotes its output.
    #[error("{0}")]
    Process(String),
    /// The lab's state file or directory is not what this godwit expects.
    #[error("{0}")]
    State(String),
}
