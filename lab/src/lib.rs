//! The lab world: the standard runbook against real PostgreSQL server processes and a real
//! Envoy on one machine, under a live write load, measuring what clients saw.
//!
//! | module     | what                                                                    |
//! |------------|-------------------------------------------------------------------------|
//! | `pgproc`   | throwaway PostgreSQL clusters: binaries, server user, start/stop by pid |

pub mod pgproc;

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
