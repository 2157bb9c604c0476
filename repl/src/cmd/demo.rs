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
  godwit demo --credential-less             no database access: every gate decides from AWS APIs and CloudWatch
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
    /// Without database access (issue 17): preflight reads AWS APIs and CloudWatch only, the
    /// fence and the sync gate decide from CloudWatch, and the demo accepts what cannot be
    /// verified without SQL (`--set unverified=accept`). Default scenario:
    /// credential-less-busy.
    #[arg(long)]
    pub credential_less: bool,
    /// Also show every primitive call.
    #[arg(short, long)]
    pub verbose: bool,
}

impl DemoArgs {
    pub fn execute(self, ctx: &Context) -> Result<i32, Failure> {
        match (self.world.as_str(), self.list, self.scenario) {
            (_, true, _) => crate::demo::list(ctx.json()),
            ("sim", _, scenario) => crate::demo::run(
                scenario.as_deref(),
                self.credential_less,
                self.verbose,
                ctx.json(),
            ),
            ("lab", _, None) if self.credential_less => Err(invalid(
                "godwit demo --credential-less runs in the simulator; on a lab, run the standard runbook with the lab's database access withheld (docs/lab.md)",
            )),
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
