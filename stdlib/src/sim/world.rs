//! The simulated world: a [`VirtualClock`] that steps the model on every advance, and every
//! area backed by one shared [`Sim`].

use std::path::Path;
use std::sync::Arc;

use godwit_engine::VirtualClock;

use super::Sim;
use super::scenario::{Scenario, ScenarioError};
use crate::world::{Areas, World};

/// The scenario of `--world sim`.
pub const DEFAULT_SCENARIO: &str = "busy-source";

/// Names of the scenarios shipped in the binary (`godwit demo`, `--world sim:NAME`).
pub fn builtin_scenarios() -> Vec<&'static str> {
    super::scenario::builtin_names()
}

impl World {
    /// The simulated world of `scenario`: a [`VirtualClock`] starting at the scenario's start
    /// time that steps the model on every advance, and every area backed by one shared
    /// [`Sim`]. Named `sim:<scenario name>`.
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
    if sim.persist.path.is_some() {
        // Its time is in the world's files (`.now`): a resume behind its journal is refused.
        clock.mark_kept();
    }
    sim.attach(&clock);
    let backend = Arc::new(sim.clone());
    let mut world = World::new(
        name,
        clock,
        Areas {
            rds: backend.clone(),
            ec2: backend.clone(),
            cw: backend.clone(),
            pg: backend.clone(),
            route: backend.clone(),
            cdc: backend.clone(),
            validate: backend.clone(),
            schema: backend,
        },
    );
    let audited = sim.clone();
    world.audit = Some(Arc::new(move || {
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
    }));
    world
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
        assert!(
            e.contains("built-ins: audit-divergence, audit-lagging-replica, aws-throttling"),
            "{e}"
        );
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
