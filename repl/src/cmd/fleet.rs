//! `godwit fleet plan`: the whole fleet's preflight and predicted migration, read-only.

use std::path::PathBuf;
use std::time::Instant;

use godwit_engine::exit;

use crate::config::{AwsFlags, world_settings};
use crate::context::Context;
use crate::fleet::Fleet;
use crate::fleet::plan::{FleetPlanRequest, Readiness, plan_fleet};
use crate::fleet::report::{ReportContext, counts, markdown, table};
use crate::fleet::run;
use crate::out::{BAD, OK, WARN, styled};
use crate::session::{Failure, invalid};
use crate::state::Store;
use godwit_engine::EngineError;
use godwit_pgstore::{FleetAction, PgStore, Registered};

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
    Run(FleetRunArgs),
    Status(FleetStatusArgs),
    Pause(FleetActionArgs),
    Resume(FleetActionArgs),
    Abort(FleetAbortArgs),
    Approve(FleetApproveArgs),
}

/// Which fleet a fleet command works on, and in which world: the same flags for `fleet plan`
/// and `fleet run`.
#[derive(clap::Args, Debug)]
pub struct FleetSourceArgs {
    /// The fleet file (TOML, docs/fleet.md). Without it (and without --discover), `--world
    /// sim` takes the simulator's generated fleet.
    #[arg(long, value_name = "FILE")]
    pub fleet: Option<PathBuf>,
    /// Discover the fleet in the world: the account's RDS for PostgreSQL instances carrying tag
    /// TAG (with VALUE, when given), over the fleet file's [discover] (docs/fleet.md).
    #[arg(long, value_name = "TAG[=VALUE]")]
    pub discover: Option<String>,
    /// With --discover: each discovered instance's owner is its tag TAG.
    #[arg(long, value_name = "TAG")]
    pub owner_tag: Option<String>,
    /// World of the clusters: NAME or NAME:ARG [default: sim].
    #[arg(long)]
    pub world: Option<String>,
    /// The generated fleet's size (without --fleet, in the simulator).
    #[arg(long, value_name = "N", default_value_t = godwit_stdlib::sim::fleet::GENERATED_FLEET_SIZE as u32,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub generated: u32,
    #[command(flatten)]
    pub aws: AwsFlags,
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
  godwit fleet plan --world sim --generated 40 -o json
  godwit fleet plan --world aws --discover godwit:fleet=payments --owner-tag team")]
pub struct FleetPlanArgs {
    #[command(flatten)]
    pub source: FleetSourceArgs,
    /// Also write a report people can read (Markdown) to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// At most N clusters planned at once [default: the cores in the simulator, 8 elsewhere].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub jobs: Option<u32>,
    /// A directory of recorded series (`godwit cw export`), `<cluster>.json` each: those
    /// clusters' predictions replay them instead of a fitted curve.
    #[arg(long, value_name = "DIR")]
    pub series: Option<PathBuf>,
}

impl FleetArgs {
    pub fn execute(self, ctx: &Context) -> Result<i32, Failure> {
        match self.command {
            FleetCommand::Plan(args) => args.execute(ctx),
            FleetCommand::Run(args) => args.execute(ctx),
            FleetCommand::Status(args) => args.execute(ctx),
            FleetCommand::Pause(args) => args.execute(ctx, FleetAction::Pause),
            FleetCommand::Resume(args) => args.execute(ctx, FleetAction::Resume),
            FleetCommand::Abort(args) => args.execute(ctx),
            FleetCommand::Approve(args) => args.execute(ctx),
        }
    }
}

impl FleetPlanArgs {
    pub fn execute(self, ctx: &Context) -> Result<i32, Failure> {
        let (spec, fleet, settings) = load_fleet(ctx, &self.source, "planned")?;
        let world_name = spec.split(':').next().unwrap_or_default().to_string();
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

/// The fleet of `--fleet FILE`, or the simulator's generated one, with the world's settings;
/// a world that cannot be built at all (not in this build, bad settings) is one error before
/// anything happens, not the same error on every cluster's line. `verb`: what would have been
/// done, for that error (`planned`, `queued`).
pub(crate) fn load_fleet(
    ctx: &Context,
    from: &FleetSourceArgs,
    verb: &str,
) -> Result<(String, Fleet, Option<serde_json::Value>), Failure> {
    let spec = from
        .world
        .clone()
        .unwrap_or_else(|| ctx.worlds.default.clone());
    let aws = &from.aws;
    let world_name = spec.split(':').next().unwrap_or_default().to_string();
    ctx.worlds.check_name(&world_name).map_err(invalid)?;
    let fleet: Fleet = crate::fleet::discover::load(
        &crate::fleet::discover::FleetSource {
            file: from.fleet.as_deref(),
            discover: from.discover.as_deref(),
            owner_tag: from.owner_tag.as_deref(),
            world: &spec,
            aws,
            generated: from.generated as usize,
        },
        &ctx.worlds,
    )?;
    let settings = world_settings(None, "", &world_name, aws)?;
    if fleet
        .clusters
        .iter()
        .any(|c| c.scenario.is_none() && c.world.is_none())
    {
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
            .map_err(|e| invalid(format!("--world {spec}: {e}; nothing was {verb}")))?;
    }
    Ok((spec, fleet, settings))
}

/// The shared store, or an error saying fleets need one.
fn pg_store(ctx: &Context, what: &str) -> Result<PgStore, Failure> {
    match ctx.store()? {
        Store::Pg(pg) => Ok(pg),
        Store::File(_) => Err(invalid(format!(
            "{what} needs the shared store: pass --store postgres://USER@HOST:PORT/DB (or set \
             GODWIT_STORE, or store.url in the settings file); a fleet's waves and runs live \
             there, and `godwit worker` processes drive them (docs/fleet.md)"
        ))),
    }
}

/// The fleet an action names, or the only one in the store.
fn fleet_name(pg: &PgStore, given: Option<&str>) -> Result<String, Failure> {
    if let Some(name) = given {
        return Ok(name.to_string());
    }
    let fleets = pg.fleets().map_err(EngineError::from)?;
    match fleets.as_slice() {
        [] => Err(invalid(format!(
            "no fleet in {}; `godwit fleet run` registers one",
            pg.place()
        ))),
        [(name, _)] => Ok(name.clone()),
        many => {
            let unfinished: Vec<&(String, String)> = many
                .iter()
                .filter(|(_, s)| !matches!(s.as_str(), "done" | "aborted"))
                .collect();
            match unfinished.as_slice() {
                [(name, _)] => Ok(name.clone()),
                _ => Err(invalid(format!(
                    "{} fleets in {}; name one with --name: {}",
                    many.len(),
                    pg.place(),
                    many.iter()
                        .map(|(n, s)| format!("{n} ({s})"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
            }
        }
    }
}

/// Queue a fleet's migrations in waves, for `godwit worker` processes to drive: canaries
/// first, then the rest with at most `max_in_flight` at once, the wave stopping past
/// `max_failures` failures (docs/fleet.md, "Waves"). The fleet is kept in the shared store and
/// advanced by every worker, so this command may stop (Ctrl-C, `--detach`) without stopping the
/// fleet. Every cluster's run is an ordinary durable run (`godwit show RUN`). Run again, the
/// same fleet is followed, not registered twice. Exit 0 when the fleet is done with every run
/// succeeded (or waits for an approval); 10 when a run failed or the fleet stopped.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  godwit fleet run --world sim --store postgres://godwit@store/godwit      the generated fleet
  godwit fleet run --fleet fleet.toml --world aws --region eu-west-1 --detach
  godwit fleet run --world sim --generated 40 --set validation_window=1h --name rehearsal

Then: godwit worker (on any number of machines) · godwit fleet status · godwit fleet approve WAVE
· godwit fleet pause | resume | abort")]
pub struct FleetRunArgs {
    #[command(flatten)]
    pub source: FleetSourceArgs,
    /// The fleet's name in the store [default: the fleet file's `name`, else its file name;
    /// `generated` for the generated fleet].
    #[arg(long)]
    pub name: Option<String>,
    /// A runbook parameter for every cluster, over the fleet file's (repeatable): KEY=VALUE,
    /// VALUE is JSON when it parses. Checked against each cluster's runbook before anything
    /// is queued.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Register the fleet and return; workers drive it (`godwit fleet status` follows it).
    #[arg(long)]
    pub detach: bool,
    /// How often to look at the fleet while following it.
    #[arg(long, default_value = "1s", value_parser = godwit_engine::duration::parse_duration)]
    pub poll: std::time::Duration,
}

impl FleetRunArgs {
    pub fn execute(self, ctx: &Context) -> Result<i32, Failure> {
        // Everything is checked before the store is touched: the fleet, the overrides, the world.
        let overrides = crate::config::parse_sets(&self.set)?;
        let (spec, mut fleet, settings) = load_fleet(ctx, &self.source, "queued")?;
        fleet.override_params(&ctx.worlds, &overrides)?;
        let name = self.name.clone().unwrap_or_else(|| fleet.name.clone());
        if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
            return Err(invalid(format!(
                "--name {name:?}: a fleet's name is 1 to 100 printable characters"
            )));
        }
        let (def, left_out) = run::fleet_def(&fleet, &name, &spec, settings.as_ref());
        let pg = pg_store(ctx, "godwit fleet run")?;
        let members: usize = def.waves.iter().map(|w| w.members.len()).sum();
        match pg.register_fleet(&def).map_err(EngineError::from)? {
            Registered::New => crate::out::line(format!(
                "fleet {name} · {} · {members} clusters in {} wave{} registered in {}{}",
                fleet.origin,
                def.waves.len(),
                if def.waves.len() == 1 { "" } else { "s" },
                pg.place(),
                if left_out.is_empty() {
                    String::new()
                } else {
                    format!(
                        "\n  {} clusters are in no wave and are not run: {}",
                        left_out.len(),
                        left_out.join(", ")
                    )
                }
            )),
            Registered::Existing { state } => crate::out::line(format!(
                "fleet {name} is already in {} ({state}); following it",
                pg.place()
            )),
            Registered::Differs(why) => {
                return Err(invalid(format!(
                    "{why}; nothing was queued. Give this one another --name, or abort that one \
                     first (`godwit fleet abort --name {name}`)"
                )));
            }
        }
        if self.detach {
            crate::out::note(format!(
                "workers drive it: `godwit worker --store {}` on any machine; follow with \
                 `godwit fleet status --name {name}`",
                pg.place()
            ));
            return Ok(exit::OK);
        }
        follow(ctx, &pg, &name, self.poll)
    }
}

/// Follow fleet `name` until it finishes, stops or waits for a person, advancing it on every
/// look (as workers do); Ctrl-C stops following, not the fleet.
fn follow(
    ctx: &Context,
    pg: &PgStore,
    name: &str,
    poll: std::time::Duration,
) -> Result<i32, Failure> {
    let driving = crate::session::Driving::start()?;
    let mut workers_seen = None;
    // What the fleet looked like when following began: only what changes after is printed.
    let mut before: Option<godwit_pgstore::FleetStatus> =
        pg.fleet_status(name).map_err(EngineError::from)?;
    loop {
        // Any process may advance a fleet; following one advances it too (a fleet whose
        // workers are all busy still starts its next wave), and prints what the rows say
        // changed, whoever changed it.
        pg.advance_fleets().map_err(EngineError::from)?;
        let Some(st) = pg.fleet_status(name).map_err(EngineError::from)? else {
            return Err(invalid(format!(
                "fleet {name} is no longer in {}",
                pg.place()
            )));
        };
        if let Some(prev) = &before {
            for e in run::changes(prev, &st) {
                if ctx.json() {
                    crate::out::line(serde_json::to_string(&e).unwrap_or_default());
                } else {
                    crate::out::line(run::event_line(&e));
                }
            }
        }
        before = Some(st.clone());
        if let Some(why) = run::needs_nobody_else(&st) {
            if ctx.json() {
                crate::out::json(&st);
            } else {
                crate::out::line(format!("\n{}", run::status_text(&st)));
                match why {
                    "awaiting-approval" => crate::out::note(
                        "a wave waits for an approval after its canaries: `godwit fleet approve \
                         WAVE` goes on, `godwit fleet abort` stops",
                    ),
                    "stopped" => crate::out::note(
                        "the fleet stopped: `godwit fleet resume` goes on (the failures so far \
                         acknowledged), `godwit fleet abort` rolls back what is in flight",
                    ),
                    _ => {}
                }
            }
            let failed = st.waves.iter().any(|w| {
                godwit_pgstore::fleet::FAILED
                    .iter()
                    .any(|f| w.counts.get(*f).is_some_and(|n| *n > 0))
            });
            return Ok(match why {
                "awaiting-approval" | "paused" | "done" if !failed => exit::OK,
                _ => exit::CHECK_FAILED,
            });
        }
        let workers = pg.live_workers().map_err(EngineError::from)?;
        if workers_seen != Some(workers) {
            if workers == 0 {
                crate::out::note(format!(
                    "no live worker on {}: start `godwit worker --store {}` (on any machine) to \
                     drive the fleet's runs",
                    pg.place(),
                    pg.place()
                ));
            }
            workers_seen = Some(workers);
        }
        if driving.rt.block_on(async {
            tokio::select! {
                _ = tokio::time::sleep(poll) => false,
                _ = driving.cancel.cancelled() => true,
            }
        }) {
            crate::out::note(format!(
                "stopped following; the fleet goes on in the store (`godwit fleet status --name \
                 {name}`)"
            ));
            return Ok(exit::OK);
        }
    }
}

/// Show a fleet of the shared store: its state, each wave's policy and progress, and the runs
/// that failed or are held, with why. `-o json`: the whole fleet with every member.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  godwit fleet status
  godwit fleet status --name payments --watch
  godwit fleet status -o json | jq '.waves[].members[] | select(.state == \"held\")'")]
pub struct FleetStatusArgs {
    /// The fleet [default: the only (unfinished) fleet in the store].
    #[arg(long)]
    pub name: Option<String>,
    /// Keep following (and advancing) it until it finishes, stops or waits for a person.
    #[arg(long)]
    pub watch: bool,
}

impl FleetStatusArgs {
    pub fn execute(self, ctx: &Context) -> Result<i32, Failure> {
        let pg = pg_store(ctx, "godwit fleet status")?;
        let name = fleet_name(&pg, self.name.as_deref())?;
        if self.watch {
            return follow(ctx, &pg, &name, std::time::Duration::from_secs(1));
        }
        let Some(st) = pg.fleet_status(&name).map_err(EngineError::from)? else {
            return Err(invalid(format!(
                "no fleet {name:?} in {}; `godwit fleet run` registers one",
                pg.place()
            )));
        };
        if ctx.json() {
            crate::out::json(&st);
        } else {
            crate::out::line(run::status_text(&st));
        }
        Ok(exit::OK)
    }
}

/// Pause a fleet (queue nothing new; runs in flight go on to their own end) or resume it
/// (after a pause, or after a wave stopped on failures: those failures are acknowledged and the
/// wave goes on).
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  godwit fleet pause
  godwit fleet resume --name payments        after a pause, or a wave stopped on failures")]
pub struct FleetActionArgs {
    /// The fleet [default: the only (unfinished) fleet in the store].
    #[arg(long)]
    pub name: Option<String>,
}

impl FleetActionArgs {
    pub fn execute(self, ctx: &Context, action: FleetAction) -> Result<i32, Failure> {
        act(ctx, self.name.as_deref(), &action)
    }
}

/// Abort a fleet: members not started are skipped, queued runs no worker began are withdrawn,
/// and every run in flight is asked to roll back (as `godwit abort RUN`: at its next safe point;
/// after promotion a run's rollback stops at the undos that would fork the data).
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  godwit fleet abort --reason \"the change window closed\"
  godwit fleet abort --name payments --reason \"canary regression\"")]
pub struct FleetAbortArgs {
    /// The fleet [default: the only (unfinished) fleet in the store].
    #[arg(long)]
    pub name: Option<String>,
    /// Why, recorded with who asked in the fleet and in every run's abort request.
    #[arg(long, default_value = "no reason given")]
    pub reason: String,
}

impl FleetAbortArgs {
    pub fn execute(self, ctx: &Context) -> Result<i32, Failure> {
        act(
            ctx,
            self.name.as_deref(),
            &FleetAction::Abort {
                reason: self.reason,
            },
        )
    }
}

fn act(ctx: &Context, name: Option<&str>, action: &FleetAction) -> Result<i32, Failure> {
    let pg = pg_store(ctx, "a fleet action")?;
    let name = fleet_name(&pg, name)?;
    let events = pg
        .fleet_action(&name, action, &godwit_engine::journal::Request::operator())
        .map_err(|e| invalid(e.to_string()))?;
    for e in &events {
        if ctx.json() {
            crate::out::line(serde_json::to_string(e).unwrap_or_default());
        } else {
            crate::out::line(run::event_line(e));
        }
    }
    Ok(exit::OK)
}

/// Approve a wave that waits after its canaries (`approve_after_canaries`): the rest of it is
/// queued at the next advance.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  godwit fleet approve canary
  godwit fleet approve wave-1 --name payments")]
pub struct FleetApproveArgs {
    /// The wave.
    pub wave: String,
    /// The fleet [default: the only (unfinished) fleet in the store].
    #[arg(long)]
    pub name: Option<String>,
}

impl FleetApproveArgs {
    pub fn execute(self, ctx: &Context) -> Result<i32, Failure> {
        let pg = pg_store(ctx, "godwit fleet approve")?;
        let name = fleet_name(&pg, self.name.as_deref())?;
        let by = godwit_engine::journal::Request::operator();
        pg.approve_wave(&name, &self.wave, &by)
            .map_err(|e| invalid(e.to_string()))?;
        crate::out::line(format!(
            "wave {} of fleet {name} approved by {by}; its other clusters are queued at the next \
             advance (any worker's poll)",
            self.wave
        ));
        Ok(exit::OK)
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
