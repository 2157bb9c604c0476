//! # godwit-tests — cross-crate tests
//!
//! * [`contract`]: one assertion body per area, and the sim, lab and aws-on-moto worlds they
//!   run on (test binary `contract`).
//! * [`toy`]: toy primitives whose world lives in a directory (survives a crashed process).
//! * [`moto`]: the moto server (through `tests/support/moto_launcher.py`) as a child process.
//! * [`harness`]: build runners over the toy world; crash injection by panicking sinks
//!   (in-process) or the `godwit-toy` binary (real process exits).
//! * [`fixtures`]: journals of earlier runbook shapes (`--bin write-old-journals` writes them).
//! * [`livepg`]: a `pg::live::Connector` over `godwit_lab::pgproc` servers by name, and SQL
//!   helpers (the `validate` test binary and bench).
//!
//! Test binaries (`tests/tests/*.rs`): `resume` (durability: crash everywhere, undo, gates,
//! non-determinism, tampering), `contract` (every area's contract on every world), `cli` (the
//! `godwit` command end to end), `validate` (the `validate` area on real PostgreSQL and on the
//! simulator), `moto` (the aws world against moto), `lab` (the lab world: real PostgreSQL +
//! Envoy under load), `fuzz` (generated hostile runbooks, journal values and `lag` inputs for a
//! bounded time; corpus in `tests/fuzz-corpus/`); benches `fleet`, `validate`.

pub mod contract;
pub mod fixtures;
pub mod harness;
pub mod livepg;
pub mod moto;
pub mod toy;
