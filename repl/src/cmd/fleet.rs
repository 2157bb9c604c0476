//! `godwit fleet plan`: the whole fleet's preflight and predicted migration, read-only.

use std::path::PathBuf;
use std::time::Instant;

use godwit_engine::exit;

use crate::config::{AwsFlags, world_settings};
use crate::context::Context;
use crate::fleet::Fleet;
use crate::fleet::plan::{FleetPlanRequest, Readiness, plan_fleet};
use crate::fleet::report::{ReportContext, counts, markdown, table};
use crate::out::{BAD, OK, WARN, styled};
use crate::session::{Failure, invalid};

/// Work on a fleet of clusters: the inventory of a fleet file (docs/fleet.md), or the
/// simulator's generated fleet.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  godwit fleet plan --world sim                      the built-in generated fleet of 400
  godwit fleet plan --fleet fleet.toml --world aws --region eu-west-1 --report plan.md
  godwit fleet plan --world sim -o json | jq '.[] | select(.readiness == \"blocked\")'")]
pub struct FleetArgs {
    #[command(subcommand)]
    pub command: FleetCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum FleetCommand {
    Plan(FleetPlanArgs),
}

/// Plan every cluster of the fleet without changing anything (like `terraform plan`): each
/// cluster's preflight in its own world with the failing checks' fixes, and its migration
/// predicted in the simulator calibrated from its own figures — replica build, end of
/// validation, write blackout, total — with the assumptions stated. Sorted by readiness, blocked
/// first. Exit 0 when every cluster is ready, 10 when any is not.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  godwit fleet plan --world sim
  godwit fleet plan --fleet fleet.toml --world aws --report fleet-plan.md
  godwit fleet plan --world sim --generated 40 -o json")]
pub struct FleetPlanArgs {
    /// The fleet file (TOML, docs/fleet.md). Without it, `--world sim` plans the simulator's
    /// generated fleet.
    #[arg(long, value_name = "FILE")]
    pub fleet: Option<PathBuf>,
    /// World of the clusters: NAME or NAME:ARG [default: sim].
    #[arg(long)]
    pub world: Option<String>,
    /// Also write a report people can read (Markdown) to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// At most N clusters planned at once [default: the cores in the simulator, 8 elsewhere].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub jobs: Option<u32>,
    /// The generated fleet's size (without --fleet, in the simulator).
    #[arg(long, value_name = "N", default_value_t = godwit_stdlib::sim::fleet::GENERATED_FLEET_SIZE as u32,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub generated: u32,
    /// A directory of recorded series (`godwit cw export`), `<cluster>.json` each: those
    /// clusters' predictions replay them instead of a fitted curve.
    #[arg(long, value_name = "DIR")]
    pub series: Option<PathBuf>,
    #[command(flatten)]
    pub aws: AwsFlags,
}

impl FleetArgs {
    pub fn execute(self, ctx: &Context) -> Result<i32, Failure> {
        match self.command {
            FleetCommand::Plan(args) => args.execute(ctx),
        }
    }
}

impl FleetPlanArgs {
    pub fn execute(self, ctx: &Context) -> Result<i32, Failure> {
        let spec = self
            .world
            .clone()
            .unwrap_or_else(|| ctx.worlds.default.clone());
        let world_name = spec.split(':').next().unwrap_or_default().to_string();
        ctx.worlds.check_name(&world_name).map_err(invalid)?;
        let fleet: Fleet = match &self.fleet {
            Some(file) => crate::fleet::file::load(file, &ctx.worlds)?,
            None if spec == "sim" => {
                crate::fleet::generated::load(self.generated as usize, &ctx.worlds)?
            }
            None => {
                return Err(invalid(format!(
                    "no fleet: give --fleet FILE (docs/fleet.md); only --world sim has a \
                     built-in fleet (the generated one), and this is --world {spec}"
                )));
            }
        };
        let settings = world_settings(None, "", &world_name, &self.aws)?;
        // A world that cannot be built at all (not in this build, bad settings) is one error
        // before anything is planned, not the same error on every cluster's line.
        if fleet.clusters.iter().any(|c| c.scenario.is_none()) {
            let scratch = tempfile::tempdir().map_err(|e| {
                Failure(
                    exit::INTERNAL,
                    format!("cannot make a temporary directory: {e}"),
                )
            })?;
            let state = scratch.path().join("world.json");
            if let Some(v) = &settings {
                crate::config::write_settings(&state, v)?;
            }
            ctx.worlds
                .build(&spec, Some(&state))
                .map_err(|e| invalid(format!("--world {spec}: {e}; nothing was planned")))?;
        }
        // Three runs per cluster of the same few runbooks: parse each once, not 6 times per
        // cluster (engine/src/runbook.rs, `reuse`).
        godwit_engine::runbook::reuse::reuse_loads();
        let jobs = self.jobs.map_or_else(
            || {
                let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
                if world_name == "sim" { cores } else { 8 }
            },
            |j| j as usize,
        );
        let started = Instant::now();
        let bar = (!ctx.json()).then(|| progress_bar(fleet.clusters.len()));
        let verdicts = plan_fleet(
            &ctx.worlds,
            &FleetPlanRequest {
                fleet: &fleet,
                world: spec.clone(),
                jobs,
                settings,
                series: self.series.clone(),
            },
            |done, _total, v| {
                if let Some(b) = &bar {
                    b.set_position(done as u64);
                    if v.readiness != Readiness::Ready {
                        b.set_message(format!("{} {}", v.cluster, v.readiness.word()));
                    }
                }
            },
        )?;
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        let took_ms = started.elapsed().as_millis() as i64;
        if let Some(path) = &self.report {
            let text = markdown(
                &ReportContext {
                    fleet: &fleet,
                    world: &spec,
                    took_ms,
                    at: godwit_engine::clock::format_timestamp(
                        godwit_engine::clock::Clock::now_ms(&godwit_engine::clock::SystemClock),
                    ),
                },
                &verdicts,
            );
            std::fs::write(path, text).map_err(|e| {
                Failure(
                    exit::INTERNAL,
                    format!("cannot write the report {}: {e}", path.display()),
                )
            })?;
        }
        let all_ready = verdicts.iter().all(|v| v.readiness == Readiness::Ready);
        if ctx.json() {
            crate::out::json(&verdicts);
        } else {
            crate::out::line(format!(
                "fleet plan · {} · {} clusters · world {spec} (read-only: nothing was changed or \
                 recorded)\n",
                fleet.origin,
                verdicts.len()
            ));
            crate::out::line(table(&verdicts));
            let summary: Vec<String> = counts(&verdicts)
                .into_iter()
                .map(|(r, n)| {
                    let style = match r {
                        Readiness::Ready => OK,
                        Readiness::AtRisk => WARN,
                        Readiness::Blocked | Readiness::Error => BAD,
                    };
                    styled(style, format!("{n} {}", r.word()))
                })
                .collect();
            crate::out::line(format!(
                "\n{} · planned in {:.1} s with {jobs} at a time{}",
                summary.join(" · "),
                took_ms as f64 / 1000.0,
                self.report
                    .as_ref()
                    .map(|p| format!(" · report {}", p.display()))
                    .unwrap_or_default()
            ));
            crate::out::note(
                "predictions are simulated from each cluster's own figures; `-o json` lists what \
                 each one measured and assumed (docs/fleet.md)",
            );
        }
        Ok(if all_ready {
            exit::OK
        } else {
            exit::CHECK_FAILED
        })
    }
}

/// The wait's progress on stderr (hidden when stderr is not a terminal).
fn progress_bar(total: usize) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total as u64),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "  planning {pos}/{len} clusters {wide_bar} {elapsed} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}
