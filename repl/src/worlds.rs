//! The worlds this `godwit` binary can run in, chosen by `--world NAME[:ARG]`.

use std::path::Path;
use std::sync::Arc;

use godwit_stdlib::world::World;

/// The scenario of `--world sim` without `:SCENARIO`.
pub const DEFAULT_SCENARIO: &str = "busy-source";

/// Builds a world from the part after `NAME:` (empty when absent). The path, when given, is
/// where a stateful world (the simulator) keeps its state so `resume` in another process
/// continues in the same world; stateless worlds ignore it.
pub type WorldFactory = Arc<dyn Fn(&str, Option<&Path>) -> Result<World, String> + Send + Sync>;

/// A named world with a one-line description for `--help` and errors.
#[derive(Clone)]
pub struct WorldDef {
    pub name: String,
    pub about: String,
    pub make: WorldFactory,
}

/// The worlds built into this binary, plus any a test binary adds.
#[derive(Clone)]
pub struct Worlds {
    defs: Vec<WorldDef>,
    /// World used by `run` when `--world` is not given.
    pub default: String,
    /// World whose areas the generated reference documents (the one with the most areas).
    pub reference: String,
}

impl Default for Worlds {
    fn default() -> Self {
        Worlds {
            defs: vec![WorldDef {
                name: "pure".into(),
                about: "no world: engine built-ins (step, gate, now, sleep) and pure areas (lag) on the system clock".into(),
                make: Arc::new(|arg, _state| {
                    if arg.is_empty() {
                        Ok(World::pure())
                    } else {
                        Err(format!("world 'pure' takes no argument (got 'pure:{arg}')"))
                    }
                }),
            },
            WorldDef {
                name: "sim".into(),
                about: format!(
                    "the deterministic simulator (virtual clock); sim:SCENARIO picks a built-in ({}) or a TOML file; default {DEFAULT_SCENARIO}",
                    godwit_stdlib::sim::world::builtin_scenarios().join(", ")
                ),
                make: Arc::new(|arg, state| {
                    let spec = if arg.is_empty() { "sim".to_string() } else { format!("sim:{arg}") };
                    World::from_spec_at(&spec, state)
                }),
            },
            WorldDef {
                name: "aws".into(),
                about: "AWS: rds, ec2, cw through the SDK, pg and validate with IAM tokens over TLS, route via godwit dal serve --api, declared CDC consumers; settings from the [aws] tables of --config, else AWS_REGION / AWS_PROFILE / AWS_ENDPOINT_URL (docs/aws.md)".into(),
                make: Arc::new(|arg, state| {
                    if !arg.is_empty() {
                        return Err(format!("world 'aws' takes no argument (got 'aws:{arg}'); settings go in the [aws] table of --config"));
                    }
                    World::aws_from_state(state)
                }),
            }],
            default: "sim".into(),
            reference: "sim".into(),
        }
    }
}

impl Worlds {
    pub fn add(&mut self, def: WorldDef) {
        self.defs.retain(|d| d.name != def.name);
        self.defs.push(def);
    }

    /// The definition of world `name`, e.g. to wrap its factory.
    pub fn get(&self, name: &str) -> Option<WorldDef> {
        self.defs.iter().find(|d| d.name == name).cloned()
    }

    pub fn names(&self) -> Vec<String> {
        self.defs.iter().map(|d| d.name.clone()).collect()
    }

    pub fn describe(&self) -> String {
        self.defs
            .iter()
            .map(|d| format!("  {:<6} {}", d.name, d.about))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `sim:idle-source` → the sim world with scenario `idle-source`; `state` as in
    /// [`WorldFactory`].
    pub fn build(&self, spec: &str, state: Option<&Path>) -> Result<World, String> {
        let (name, arg) = spec.split_once(':').unwrap_or((spec, ""));
        let def = self.defs.iter().find(|d| d.name == name).ok_or_else(|| {
            format!(
                "unknown world '{name}'; this godwit has:\n{}\n(the lab world arrives with its issue)",
                self.describe()
            )
        })?;
        let mut world = (def.make)(arg, state)?;
        if world.name.is_empty() {
            world.name = spec.to_string();
        }
        Ok(world)
    }
}
