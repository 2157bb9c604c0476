//! Worlds: what a runbook's primitives act on. The same runbook runs unchanged in each.
//!
//! A [`World`] is a clock plus [`Areas`]: one backend per world-touching area. Every world has
//! every area (the compiler names a missing one), and [`Areas::register`] is the one place
//! that installs them as Rhai modules. Worlds are built by their own modules: the simulator's
//! in `sim/world.rs`, the aws world in `aws/world.rs`, the lab in the `godwit-lab` crate; the
//! CLI picks one by name (`--world pure|sim[:SCENARIO]|lab|aws`), and a resumed run must use
//! the world it started in (the journal records its name).

use std::any::Any;
use std::sync::Arc;

use godwit_engine::transcript::Sink;
use godwit_engine::{Clock, Host, Plugin, SystemClock};

use crate::cdc::Cdc;
use crate::cw::Cw;
use crate::ec2::Ec2;
use crate::pg::Pg;
use crate::rds::Rds;
use crate::route::Router;
use crate::schema::Schema;
use crate::validate::Validate;

/// Where the CLI keeps a run's world settings beside the world state file it hands the world
/// factory (`<state>/worlds/RUN.json` → `<state>/worlds/RUN.settings.json`), so `resume` in
/// another process rebuilds the same world. Here, not in the aws world, because the CLI
/// manages the files of every world, built with the aws world or without.
pub fn settings_file(state_file: &std::path::Path) -> std::path::PathBuf {
    state_file.with_extension("settings.json")
}

/// One backend per world-touching area: what a world is made of.
#[derive(Clone)]
pub struct Areas {
    pub rds: Arc<dyn Rds>,
    pub ec2: Arc<dyn Ec2>,
    pub cw: Arc<dyn Cw>,
    pub pg: Arc<dyn Pg>,
    pub route: Arc<dyn Router>,
    pub cdc: Arc<dyn Cdc>,
    pub validate: Arc<dyn Validate>,
    pub schema: Arc<dyn Schema>,
}

impl Areas {
    /// Install every world-touching area's Rhai module (`rds::…`, `pg::…`, …) and these
    /// backends, which the modules' functions find through the engine ([`crate::prim::call`]):
    /// the one registration.
    pub fn register(&self, engine: &mut rhai::Engine, host: &Host) {
        host.install(engine, Arc::new(self.clone()));
        crate::rds::rhai::register(engine);
        crate::ec2::rhai::register(engine);
        crate::cw::rhai::register(engine);
        crate::pg::rhai::register(engine);
        crate::route::rhai::register(engine);
        crate::cdc::rhai::register(engine);
        crate::validate::rhai::register(engine);
        crate::schema::rhai::register(engine);
    }
}

/// A clock and the areas bound to one world.
#[derive(Clone)]
pub struct World {
    /// Recorded in the journal, e.g. `pure`, `sim:idle-source`, `lab`, `aws`.
    pub name: String,
    pub clock: Arc<dyn Clock>,
    /// `None`: the pure world, with the engine built-ins and the pure areas only.
    pub areas: Option<Areas>,
    /// More functions beside the areas (test worlds' toy primitives).
    pub plugins: Vec<Arc<dyn Plugin>>,
    /// Observers of the run's transcript (e.g. the simulator firing a fault when a named step
    /// starts). Added to the runner's sinks.
    pub sinks: Vec<Arc<dyn Sink>>,
    /// After a run: what the world found wrong that the run itself may not have seen (the
    /// simulator's invariant violations surface at the next world call, so one caused by a
    /// run's last call would otherwise go unreported). Empty means nothing.
    pub audit: Option<Arc<dyn Fn() -> Vec<String> + Send + Sync>>,
    /// What the world's backends need alive while it is in use (e.g. the runtime their
    /// database connections live on); dropped with the last clone of the world.
    pub keep: Vec<Arc<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl World {
    /// A world of `areas` on `clock`, named `name`.
    pub fn new(name: impl Into<String>, clock: Arc<dyn Clock>, areas: Areas) -> World {
        World {
            name: name.into(),
            clock,
            areas: Some(areas),
            plugins: Vec::new(),
            sinks: Vec::new(),
            audit: None,
            keep: Vec::new(),
        }
    }

    /// No world at all: the engine built-ins (`step`, `gate`, `now`, `sleep`, ...) and the pure
    /// areas, on the system clock. Useful for runbook logic and for trying the engine.
    pub fn pure() -> World {
        World {
            name: "pure".into(),
            clock: Arc::new(SystemClock),
            areas: None,
            plugins: Vec::new(),
            sinks: Vec::new(),
            audit: None,
            keep: Vec::new(),
        }
    }

    /// The installer of everything this world offers: the pure areas, the world's areas and
    /// any extra plugins.
    pub fn plugins(&self) -> Vec<Arc<dyn Plugin>> {
        let areas = self.areas.clone();
        // The runner may outlive this value: what the backends need alive goes with them.
        let keep = self.keep.clone();
        let mut out: Vec<Arc<dyn Plugin>> =
            vec![Arc::new(move |engine: &mut rhai::Engine, host: &Host| {
                let _ = &keep;
                crate::register_all(engine);
                if let Some(a) = &areas {
                    a.register(engine, host);
                }
            })];
        out.extend(self.plugins.iter().cloned());
        out
    }

    /// A runner for this world: its clock, areas and observers, default limits, a fresh
    /// cancellation token; add sinks or change limits on the result.
    pub fn runner(
        &self,
        store: Arc<dyn godwit_engine::JournalStore>,
        handle: tokio::runtime::Handle,
    ) -> godwit_engine::Runner {
        godwit_engine::Runner {
            store,
            clock: self.clock.clone(),
            handle,
            limits: godwit_engine::Limits::default(),
            cancel: godwit_engine::Cancel::new(),
            sinks: self.sinks.clone(),
            plugins: self.plugins(),
            world: self.name.clone(),
        }
    }
}
