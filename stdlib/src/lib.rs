//! godwit's primitives, one folder per area, and the worlds they act on.
//!
//! | area    | what it does                                                        | worlds |
//! |---------|---------------------------------------------------------------------|--------|
//! | `lag`   | pure analysis of replication-lag metric series: the cutover signal | any    |
//! | `rds`   | instances, Aurora clusters, parameter groups, snapshots, events, waits | sim, lab, aws |
//! | `ec2`   | security groups and the quarantine group                            | sim, lab, aws |
//! | `cw`    | CloudWatch metric series `[#{ t, v }]`, gaps preserved              | sim, lab, aws |
//! | `pg`    | extensions, settings, slots, LSNs, backends and the fence           | sim, lab, aws |
//! | `route` | Envoy routes: switch, hold/drain, per-node ACK, connections         | sim, lab, aws |
//! | `cdc`   | CDC consumers: pause/resume, positions, equivalent slots            | sim, lab, aws |
//! | `validate` | exact table comparison at the fence (segment hashes), sampled audit | sim, lab, aws |
//! | `schema` | the team's schema migrations frozen during the rollback window (declared hooks) | sim, lab, aws |
//!
//! `lag` rules and thresholds are explained in `docs/lag.md`; the simulator in `docs/sim.md`.
//!
//! Each area folder holds `mod.rs` (the trait, its serde types, and the contract's rules every
//! world applies: what conflicts, what is terminal, how an LSN parses), `rhai.rs` (the thin Rhai
//! module: argument conversion and the doc comments that become the reference), and one file per
//! kind of backend (`sim.rs`; `aws.rs`; `live.rs`/`remote.rs`/`hooks.rs` shared by the lab and
//! aws worlds; the lab's own in the `godwit-lab` crate). [`register_all`] installs the pure
//! areas; a [`world::World`]'s [`world::Areas`] installs the world-touching ones
//! (`Areas::register`, the one registration).
//!
//! How a simulated run flows:
//!
//! ```text
//!  World::sim(scenario) ─► VirtualClock ──on_advance──► sim::SimState::advance_to (events)
//!        │                      ▲                              ▲
//!        ▼ Areas                │ Call::sleep (waits, gates)   │ lock per call
//!  rds/ec2/cw/pg/route/cdc ─► Host::call(|cx| …) ─► impl Area for sim::Sim ─► Sim::api(cx, …)
//!                                              (step faults by cx.unit(), throttling, invariants)
//! ```
//!
//! | module  | what lives there                                                        |
//! |---------|-------------------------------------------------------------------------|
//! | [`sim`] | the model: scenario TOML, WAL/slots/replica, RDS transitions, metrics; `sim/world.rs` the sim world |
//! | [`prim`]| a world call through the host with the areas, strict option maps, polls |
//! | [`world`]| [`world::World`] and [`world::Areas`]: what every world is made of     |
//! | [`rollback_window`] | what `godwit rollback RUN` reads from a finished cutover's journal |
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
pub mod rollback_window;
pub mod route;
pub mod schema;
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
