//! The worlds this `godwit` binary can run in, chosen by `--world NAME[:ARG]`.

use std::path::Path;
use std::sync::Arc;

use godwit_stdlib::sim::world::DEFAULT_SCENARIO;
use godwit_stdlib::world::World;
use serde_json::{Value, json};

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
            aws_world()],
            default: "sim".into(),
            reference: "sim".into(),
        }
    }
}

/// How to get a godwit with the aws world (the `aws` feature links the AWS SDK).
pub const WITH_AWS: &str = "cargo install --path repl --features aws";

/// The aws world over the AWS SDK (this binary was built with the `aws` feature).
#[cfg(feature = "aws")]
fn aws_world() -> WorldDef {
    WorldDef {
        name: "aws".into(),
        about: "AWS: rds, ec2, cw through the SDK, pg and validate with IAM tokens over TLS, route via godwit dal serve --api, declared CDC consumers; settings from --profile/--region/--endpoint-url, the [aws] tables of --config, else AWS_REGION / AWS_PROFILE / AWS_ENDPOINT_URL (docs/aws.md)".into(),
        make: Arc::new(|arg, state| {
            if !arg.is_empty() {
                return Err(format!("world 'aws' takes no argument (got 'aws:{arg}'); settings go in the [aws] table of --config"));
            }
            World::aws_from_state(state)
        }),
    }
}

/// Without the `aws` feature the aws world is listed, and asking for it says how to get it.
#[cfg(not(feature = "aws"))]
fn aws_world() -> WorldDef {
    WorldDef {
        name: "aws".into(),
        about: format!(
            "not in this build (built without the `aws` feature, the AWS SDK): {WITH_AWS}"
        ),
        make: Arc::new(|_arg, _state| {
            Err(format!(
                "this godwit was built without the aws world: the `aws` feature links the AWS SDK \
                 and is off by default so that `cargo run -p godwit -- demo` builds quickly; \
                 install with it: {WITH_AWS} (or cargo run -p godwit --features aws -- …)"
            ))
        }),
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

    /// `godwit worlds -o json`: `[{ name, about }]`.
    pub fn list(&self) -> Value {
        Value::Array(
            self.defs
                .iter()
                .map(|d| json!({ "name": d.name, "about": d.about }))
                .collect(),
        )
    }

    /// Is `name` (the part of `--world` before `:`) a world of this binary? The error lists
    /// them, with the closest as a suggestion.
    pub fn check_name(&self, name: &str) -> Result<(), String> {
        if self.defs.iter().any(|d| d.name == name) {
            return Ok(());
        }
        let names: Vec<&str> = self.defs.iter().map(|d| d.name.as_str()).collect();
        let hint = godwit_engine::params::suggest(name, &names)
            .map(|n| format!("did you mean '{n}'? "))
            .unwrap_or_default();
        Err(format!(
            "unknown world '{name}'; {hint}this godwit has (`godwit worlds`):\n{}",
            self.describe()
        ))
    }

    /// `sim:idle-source` → the sim world with scenario `idle-source`; `state` as in
    /// [`WorldFactory`].
    pub fn build(&self, spec: &str, state: Option<&Path>) -> Result<World, String> {
        let (name, arg) = spec.split_once(':').unwrap_or((spec, ""));
        self.check_name(name)?;
        let def = self
            .defs
            .iter()
            .find(|d| d.name == name)
            .ok_or_else(|| format!("unknown world '{name}'"))?;
        let mut world = (def.make)(arg, state)?;
        if world.name.is_empty() {
            world.name = spec.to_string();
        }
        Ok(world)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 18: a binary built without the `aws` feature (the default, so that the first
    /// `cargo run -- demo` skips the SDK) lists the aws world and says how to get it.
    #[cfg(not(feature = "aws"))]
    #[test]
    fn the_aws_world_says_how_to_get_it_when_not_built_in() {
        let worlds = Worlds::default();
        assert!(worlds.describe().contains("aws    not in this build"));
        let err = worlds.build("aws", None).unwrap_err();
        assert!(
            err.contains("built without the aws world") && err.contains(WITH_AWS),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_world_suggests_the_closest() {
        let err = Worlds::default().check_name("simm").unwrap_err();
        assert!(err.contains("did you mean 'sim'?"), "{err}");
        assert!(!err.contains("arrives with its issue"), "{err}");
    }
}
