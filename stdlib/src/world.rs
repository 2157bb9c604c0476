//! Worlds: what a runbook's primitives act on. The same runbook runs unchanged in each.
//!
//! A [`World`] is a clock plus the plugins that install the primitive areas for that world.
//! The CLI picks one by name (`--world pure|sim[:SCENARIO]|lab|aws`) and a resumed run must
//! use the world it started in (the journal records its name).

use std::sync::Arc;

use godwit_engine::{Clock, Plugin, SystemClock};

/// A clock and the primitive areas bound to one world.
#[derive(Clone)]
pub struct World {
    /// Recorded in the journal, e.g. `pure`, `sim:idle-source`.
    pub name: String,
    pub clock: Arc<dyn Clock>,
    pub plugins: Vec<Arc<dyn Plugin>>,
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
    vec![Arc::new(
        |engine: &mut rhai::Engine, _host: &godwit_engine::Host| {
            crate::register_all(engine);
        },
    )]
}

impl World {
    /// No world at all: the engine built-ins (`step`, `gate`, `now`, `sleep`, ...) and the pure
    /// areas, on the system clock. Useful for runbook logic and for trying the engine.
    pub fn pure() -> World {
        World {
            name: "pure".into(),
            clock: Arc::new(SystemClock),
            plugins: pure_plugins(),
        }
    }
}
