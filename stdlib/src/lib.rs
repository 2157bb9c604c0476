//! godwit's primitives, one folder per area, and the worlds they act on.
//!
//! | area    | what it does                                                        | worlds |
//! |---------|---------------------------------------------------------------------|--------|
//! | `lag`   | pure analysis of replication-lag metric series: the cutover signal | any    |
//! | `rds`   | instances, Aurora clusters, parameter groups, snapshots, waits      | sim, aws |
//! | `ec2`   | security groups and the deny-all quarantine group                   | sim, aws |
//! | `cw`    | CloudWatch metric series `[#{ t, v }]`, gaps preserved              | sim, aws |
//! | `pg`    | extensions, settings, slots, LSNs, backends and the fence           | sim    |
//! | `route` | Envoy routes: switch, hold/drain, per-node ACK, connections         | sim    |
//! | `cdc`   | CDC consumers: pause/resume, positions, equivalent slots            | sim    |
//! | `validate` | exact table comparison at the fence (segment hashes), sampled audit | sim, live |
//!
//! `lag` rules and thresholds are explained in `docs/lag.md`; the simulator in `docs/sim.md`.
//!
//! Each area folder holds `mod.rs` (the trait or the pure logic and its serde types), `rhai.rs`
//! (the thin Rhai module: argument conversion and the doc comments that become the reference),
//! and one file per world where the area touches the world (`sim.rs` today). [`register_all`]
//! installs the pure areas; world-touching areas are installed by a [`world::World`]'s plugins.
//!
//! How a simulated run flows:
//!
//! ```text
//!  World::sim(scenario) ─► VirtualClock ──on_advance──► sim::SimState::advance_to (events)
//!        │                      ▲                              ▲
//!        ▼ plugins              │ Host::sleep (waits, gates)   │ lock per call
//!  rds/ec2/cw/pg/route/cdc ─► Host::call ─► impl Area for sim::Sim ─► Sim::api (step faults,
//!                                                              throttling, invariant reports)
//! ```
//!
//! | module  | what lives there                                                        |
//! |---------|-------------------------------------------------------------------------|
//! | [`sim`] | the model: scenario TOML, WAL/slots/replica, RDS transitions, metrics   |
//! | [`prim`]| shared plumbing: documented volatile registration, strict option maps   |
//! | [`world`]| [`world::World`]: `pure`, `sim` (name, clock, plugins) for the CLI     |
//! | `aws`   | (feature `aws`) SDK clients, retries, error mapping, the `aws` world; docs/aws.md |

#[cfg(feature = "aws")]
pub mod aws;
pub mod cdc;
pub mod cw;
pub mod ec2;
pub mod lag;
pub mod pg;
pub mod prim;
pub mod rds;
pub mod route;
pub mod sim;
pub mod validate;

/// The areas [`register_all`] installs: pure analysis that never touches the world, so their
/// calls may stand outside steps (`godwit check` flags other areas' calls there).
pub const PURE_AREAS: &[&str] = &["lag"];

/// Install every area's Rhai module (as `lag::...`, ...) into `engine`.
pub fn register_all(engine: &mut rhai::Engine) {
    lag::rhai::register(engine);
}

pub mod world;
