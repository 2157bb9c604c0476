//! # godwit-tests — cross-crate tests
//!
//! * [`toy`]: toy primitives whose world lives in a directory (survives a crashed process).
//! * [`moto`]: the moto server (through `tests/support/moto_launcher.py`) as a child process.
//! * [`harness`]: build runners over the toy world; crash injection by panicking sinks
//!   (in-process) or the `godwit-toy` binary (real process exits).
//!
//! Test binaries (`tests/tests/*.rs`): `resume` (durability: crash everywhere, undo, gates,
//! non-determinism, tampering), `cli` (the `godwit` command end to end), `moto` (the aws
//! world against moto).

pub mod harness;
pub mod moto;
pub mod toy;
