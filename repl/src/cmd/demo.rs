//! `godwit demo`: pick the demo ([`crate::demo`] in the simulator, [`crate::lab::demo`] on a
//! throwaway lab) or list the scenarios.

use crate::context::Context;
use crate::session::{Failure, invalid};

/// The standard runbook against a built-in simulated scenario, with a summary (no AWS needed);
/// `--world lab` runs it on real PostgreSQL servers and a real Envoy under a write load.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  godwit demo
  godwit demo --scenario promote-hang        a rollback after the fence
  godwit demo --list
  godwit demo --world lab                    real PostgreSQL + Envoy (needs PostgreSQL and Envoy installed)")]
pub struct DemoArgs {
    /// Built-in scenario [default: busy-source].
    #[arg(long)]
    pub scenario: Option<String>,
    /// `sim` (default) or `lab`.
    #[arg(long, default_value = "sim")]
    pub world: String,
    /// List the built-in scenarios.
    #[arg(long)]
    pub list: bool,
    /// Also show every primitive call.
    #[arg(short, long)]
    pub verbose: bool,
}

impl DemoArgs {
    pub fn execute(self, ctx: &Context) -> Result<i32, Failure> {
        match (self.world.as_str(), self.list, self.scenario) {
            (_, true, _) => crate::demo::list(ctx.json()),
            ("sim", _, scenario) => crate::demo::run(scenario.as_deref(), self.verbose, ctx.json()),
            ("lab", _, None) => crate::lab::demo(self.verbose),
            ("lab", _, Some(_)) => Err(invalid(
                "--scenario picks a simulated scenario; the lab has none (drop --scenario, or use --world sim)",
            )),
            (other, _, _) => Err(invalid(format!(
                "godwit demo --world {other}: the demo runs in `sim` (default) or `lab`"
            ))),
        }
    }
}
