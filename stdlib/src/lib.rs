//! godwit's primitives, one folder per area.
//!
//! | area  | what it does                                                        | worlds |
//! |-------|---------------------------------------------------------------------|--------|
//! | `lag` | pure analysis of replication-lag metric series: the cutover signal | any    |
//!
//! `lag` rules and thresholds are explained in `docs/lag.md`.
//!
//! Each area folder holds `mod.rs` (the trait or the pure logic and its serde types), `rhai.rs`
//! (the thin Rhai module: argument conversion and the doc comments that become the reference),
//! and one file per world where the area touches the world. [`register_all`] installs every
//! area's Rhai module into an engine.

pub mod cdc;
pub mod cw;
pub mod ec2;
pub mod lag;
pub mod pg;
pub mod prim;
pub mod rds;
pub mod route;
pub mod sim;

/// Install every area's Rhai module (as `lag::...`, ...) into `engine`.
pub fn register_all(engine: &mut rhai::Engine) {
    lag::rhai::register(engine);
}

pub mod world;
