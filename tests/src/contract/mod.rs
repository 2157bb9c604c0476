//! One contract, many worlds (STYLE.md 7b): each area's assertions, written once against the
//! area's trait, run on every world that can run them — the simulator, a lab (real PostgreSQL
//! and Envoy) and the aws world on moto. The rules they check live in the areas' `mod.rs`
//! (`rds::plan_parameter_group`, `rds::promotion`, `pg::parse_lsn`, `route::plan_switch`, ...);
//! an assertion that fails in one world names the rule that world broke.
//!
//! | module      | what                                                                 |
//! |-------------|----------------------------------------------------------------------|
//! | `mod.rs`    | [`Fixture`]: one world as the suite sees it; calling and waiting      |
//! | `worlds.rs` | the three fixtures: sim (a scenario of its own), lab, aws on moto    |
//! | `story.rs`  | the order the areas' contracts run in on one world                    |
//! | `rds.rs` … `validate.rs` | one generic assertion body per area                      |
//!
//! The bodies run as one story per world (a replica is created, fenced, promoted and deleted
//! once), so a lab or a moto is started once per world, not once per area.

pub mod cdc;
pub mod cw;
pub mod ec2;
pub mod pg;
pub mod rds;
pub mod route;
pub mod story;
pub mod validate;
pub mod worlds;

use std::any::Any;
use std::fmt::Debug;
use std::sync::Mutex;
use std::time::Duration;

use godwit_engine::{Call, ErrorKind, Host, PrimitiveError};
use godwit_stdlib::cw::MetricQuery;
use godwit_stdlib::world::Areas;

/// One world as the contract suite sees it: its areas, a host to call them through, and what
/// the world holds for the story (the source instance, its VPC, the CDC consumer, ...).
pub struct Fixture {
    /// `sim`, `lab` or `aws`.
    pub name: &'static str,
    pub areas: Areas,
    /// Calls go through `host.context(area, op)`; waits sleep through its clock (virtual in
    /// the simulator).
    pub host: Host,
    /// The RDS instance the story migrates (also the route's name).
    pub source: String,
    pub vpc: String,
    /// The Aurora cluster the story creates, and its writer instance.
    pub target: String,
    pub writer: String,
    /// How often to poll, and how long to wait at most, in the world's time.
    pub poll: Duration,
    pub patience: Duration,
    /// PostgreSQL behind the world: `pg`, `validate` and `cdc` run only where there is.
    pub databases: bool,
    /// The application's role and one of its tables (`schema.table`).
    pub app_role: String,
    pub table: String,
    /// A CDC consumer and its logical slot on the source.
    pub consumer: Option<(String, String)>,
    /// Whether the world has a route (control plane + Envoy) named after the source.
    pub route: bool,
    /// Whether the world models snapshots.
    pub snapshots: bool,
    /// A metric query with data in the world (after the story ran).
    pub metric: Box<dyn Fn() -> MetricQuery + Send + Sync>,
    /// A query over a window where the world has data around a stretch without any, and that
    /// stretch `[from, to)` in epoch seconds.
    pub gap: Option<(MetricQuery, (i64, i64))>,
    /// What must stay alive while the fixture is used (runtime, lab, moto, Envoy, ...),
    /// dropped in order.
    pub keep: Vec<Box<dyn Any>>,
    /// Every instance and cluster status the story saw, for the terminal-state check.
    pub seen: Mutex<Vec<String>>,
}

impl Fixture {
    /// The call context of `area::op`, as a backend sees a call outside a step.
    pub fn cx<'h>(&'h self, area: &'h str, op: &'h str) -> Call<'h> {
        self.host.context(area, op)
    }

    /// Wait through the world's clock until `f` has an answer, polling every
    /// [`Fixture::poll`], at most [`Fixture::patience`].
    pub fn wait<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = self.host.now_ms() + self.patience.as_millis() as i64;
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(
                self.host.now_ms() < deadline,
                "[{}] {what}: not within {:?}",
                self.name,
                self.patience
            );
            self.cx("contract", "wait")
                .sleep(self.poll)
                .unwrap_or_else(|e| panic!("[{}] waiting for {what}: {e}", self.name));
        }
    }

    /// Remember a status the world reported.
    pub fn saw(&self, status: &str) {
        self.seen.lock().unwrap().push(status.to_string());
    }
}

/// `r`'s value, or a panic naming the world and the call.
#[track_caller]
pub fn ok<T>(f: &Fixture, what: &str, r: Result<T, PrimitiveError>) -> T {
    r.unwrap_or_else(|e| panic!("[{}] {what}: {e} (hint: {})", f.name, e.hint))
}

/// `r`'s error, which must be of `kind` and area `area`, or a panic naming the rule broken.
#[track_caller]
pub fn err<T: Debug>(
    f: &Fixture,
    rule: &str,
    kind: ErrorKind,
    area: &str,
    r: Result<T, PrimitiveError>,
) -> PrimitiveError {
    match r {
        Ok(v) => panic!("[{}] {rule}: expected {kind}, got {v:?}", f.name),
        Err(e) => {
            assert_eq!(
                (e.kind, e.area.as_str()),
                (kind, area),
                "[{}] {rule}: {e:?}",
                f.name
            );
            e
        }
    }
}

/// Whether `v` is sorted by `key` (ties allowed).
pub fn sorted_by<T, K: Ord>(v: &[T], key: impl Fn(&T) -> K) -> bool {
    v.windows(2).all(|w| key(&w[0]) <= key(&w[1]))
}

/// An id no world has.
pub const MISSING: &str = "contract-missing";
