//! Worlds: what a runbook's primitives act on. The same runbook runs unchanged in each.
//!
//! A [`World`] is a clock plus the plugins that install the primitive areas for that world.
//! The CLI picks one by name (`--world pure|sim[:SCENARIO]|lab|aws`) and a resumed run must
//! use the world it started in (the journal records its name).

use std::path::Path;
use std::sync::Arc;

use godwit_engine::transcript::Sink;
use godwit_engine::{Clock, Host, Plugin, SystemClock, VirtualClock};

use crate::sim::Sim;
use crate::sim::scenario::{Scenario, ScenarioError};

/// A clock and the primitive areas bound to one world.
#[derive(Clone)]
pub struct World {
    /// Recorded in the journal, e.g. `pure`, `sim:idle-source`.
    pub name: String,
    pub clock: Arc<dyn Clock>,
    pub plugins: Vec<Arc<dyn Plugin>>,
    /// Observers of the run's transcript (e.g. the simulator firing a fault when a named step
    /// starts). Added to the runner's sinks.
    pub sinks: Vec<Arc<dyn Sink>>,
    /// After a run: what the world found wrong that the run itself may not have seen (the
    /// simulator's invariant violations surface at the next world call, so one caused by a
    /// run's last call would otherwise go unreported). Empty means nothing.
    pub audit: Option<Arc<dyn Fn() -> Vec<String> + Send + Sync>>,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The areas that do not touch the world (analysis helpers), available in every world.
pub fn pure_plugins() -> Vec<Arc<dyn Plugin>> {
    vec![Arc::new(|engine: &mut rhai::Engine, _host: &Host| {
        crate::register_all(engine);
    })]
}

impl World {
    /// A runner for this world: its clock, plugins and observers, default limits, a fresh
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
            plugins: self.plugins.clone(),
            world: self.name.clone(),
        }
    }

    /// No world at all: the engine built-ins (`step`, `gate`, `now`, `sleep`, ...) and the pure
    /// areas, on the system clock. Useful for runbook logic and for trying the engine.
    pub fn pure() -> World {
        World {
            name: "pure".into(),
            clock: Arc::new(SystemClock),
            plugins: pure_plugins(),
            sinks: Vec::new(),
            audit: None,
        }
    }
}

impl World {
    /// The simulated world of `scenario`: a [`VirtualClock`] starting at the scenario's start
    /// time that steps the model on every advance, the pure areas, and every world-touching
    /// area backed by one shared [`Sim`]. Named `sim:<scenario name>`.
    pub fn sim(scenario: Scenario) -> World {
        sim_world(scenario).0
    }

    /// [`World::sim`] of a built-in scenario by name, or of a TOML file by path.
    pub fn sim_named(name_or_path: &str) -> Result<World, ScenarioError> {
        Ok(World::sim(Scenario::load(name_or_path)?))
    }

    /// The world named by `--world`: `pure`, `sim` (the [`DEFAULT_SCENARIO`]), or
    /// `sim:<built-in name or path to .toml>`. The message of an error says what is accepted.
    pub fn from_spec(spec: &str) -> Result<World, String> {
        World::from_spec_at(spec, None)
    }

    /// [`World::from_spec`]; with `state_file`, a simulated world is kept there so another
    /// process can resume the run in it (see [`sim_world_persistent`]). Other worlds ignore it.
    pub fn from_spec_at(spec: &str, state_file: Option<&Path>) -> Result<World, String> {
        let scenario = match spec {
            "pure" => return Ok(World::pure()),
            "sim" => DEFAULT_SCENARIO,
            _ => spec.strip_prefix("sim:").ok_or_else(|| {
                format!(
                    "unknown world {spec:?}: use pure, sim, or sim:SCENARIO (built-ins: {})",
                    builtin_scenarios().join(", ")
                )
            })?,
        };
        let scenario = Scenario::load(scenario).map_err(|e| e.to_string())?;
        match state_file {
            Some(path) => sim_world_persistent(scenario, path).map(|(w, _)| w),
            None => Ok(World::sim(scenario)),
        }
    }
}

/// [`World::sim`], plus the handle on the model (for invariant reports, tests and benches).
pub fn sim_world(scenario: Scenario) -> (World, Sim) {
    let sim = Sim::new(scenario);
    (world_of(&sim), sim)
}

/// A simulated world kept in `state_file` (e.g. `<run dir>/sim.json`): restored when the file
/// exists, so `godwit resume` in another process continues in the world the run left; every
/// world-changing primitive call rewrites it, and every clock advance records the simulated
/// time reached (`sim.now` beside it); the clock resumes there. Errors: an unreadable or
/// damaged file, or one of another scenario or seed.
pub fn sim_world_persistent(scenario: Scenario, state_file: &Path) -> Result<(World, Sim), String> {
    let sim = Sim::persistent(scenario, state_file)?;
    Ok((world_of(&sim), sim))
}

fn world_of(sim: &Sim) -> World {
    let (now, name) = {
        let st = sim.lock();
        (st.now, format!("sim:{}", st.sc.name))
    };
    let clock = Arc::new(VirtualClock::new(now));
    sim.attach(&clock);
    let mut plugins = pure_plugins();
    plugins.push(Arc::new(sim_plugin(sim.clone())));
    let audited = sim.clone();
    World {
        name,
        clock,
        plugins,
        sinks: Vec::new(),
        audit: Some(Arc::new(move || {
            audited
                .lock()
                .violations
                .iter()
                .map(|v| {
                    format!(
                        "simulation invariant `{}` violated at {}: {}",
                        v.invariant,
                        godwit_engine::clock::format_timestamp(v.at),
                        v.detail
                    )
                })
                .collect()
        })),
    }
}

/// Installs every world-touching area over `sim`.
fn sim_plugin(sim: Sim) -> impl Fn(&mut rhai::Engine, &Host) + Send + Sync {
    move |engine: &mut rhai::Engine, host: &Host| {
        crate::rds::rhai::register(engine, host, Arc::new(sim.clone()));
        crate::cw::rhai::register(engine, host, Arc::new(sim.clone()));
        crate::ec2::rhai::register(engine, host, Arc::new(sim.clone()));
        crate::pg::rhai::register(engine, host, Arc::new(sim.clone()));
        crate::route::rhai::register(engine, host, Arc::new(sim.clone()));
        crate::cdc::rhai::register(engine, host, Arc::new(sim.clone()));
        crate::validate::rhai::register(engine, host, Arc::new(sim.clone()));
    }
}

/// The scenario of `--world sim`.
pub const DEFAULT_SCENARIO: &str = "busy-source";

/// Names of the scenarios shipped in the binary (`godwit demo`, `--world sim:NAME`).
pub fn builtin_scenarios() -> Vec<&'static str> {
    crate::sim::scenario::builtin_names()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worlds_by_spec() {
        assert_eq!(World::from_spec("pure").unwrap().name, "pure");
        assert_eq!(World::from_spec("sim").unwrap().name, "sim:busy-source");
        let w = World::from_spec("sim:idle-source").unwrap();
        assert_eq!(w.name, "sim:idle-source");
        assert!(w.clock.is_virtual());
        assert_eq!(w.clock.now_ms(), crate::sim::scenario::DEFAULT_START_MS);
        let e = World::from_spec("sim:nope").unwrap_err();
        assert!(e.contains("built-ins: aws-throttling"), "{e}");
        assert!(
            World::from_spec("aws")
                .unwrap_err()
                .contains("sim:SCENARIO")
        );
    }

    #[test]
    fn a_persistent_world_starts_where_the_last_process_left_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sim.json");
        let w = World::from_spec_at("sim:idle-source", Some(&file)).unwrap();
        assert!(file.exists());
        let t0 = w.clock.now_ms();
        w.clock.sleep(
            std::time::Duration::from_secs(3600),
            &godwit_engine::Cancel::new(),
        );
        let again = World::from_spec_at("sim:idle-source", Some(&file)).unwrap();
        assert_eq!(again.clock.now_ms(), t0 + 3_600_000);
        let other = World::from_spec_at("sim:busy-source", Some(&file)).unwrap_err();
        assert!(other.contains("idle-source"), "{other}");
    }
}
