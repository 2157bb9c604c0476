//! `godwit lab up|down|status`: start a lab of [`godwit_lab`] and keep it until a signal, stop
//! one by its pids, or show what one runs. The `lab` world itself is in [`crate::lab`].

use std::path::{Path, PathBuf};

use clap::Subcommand;
use godwit_engine::exit;
use std::time::Duration;

use godwit_lab::cutover;
use godwit_lab::{LabOptions, Supervisor};

use crate::context::Context;
use crate::lab::{default_dir, lab_failure};
use crate::session::{Failure, runtime};

/// A lab on this machine: real PostgreSQL servers and a real Envoy (the `lab` world).
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  godwit lab up                  keep it running; Ctrl-C or `godwit lab down` stops it
  godwit lab status
  godwit demo --world lab        a throwaway lab for one cutover")]
pub struct LabArgs {
    #[command(subcommand)]
    pub command: LabCommand,
}

#[derive(Subcommand, Debug)]
pub enum LabCommand {
    /// Start a lab and keep it running until Ctrl-C (or `godwit lab down`): a PostgreSQL source
    /// with an application role, database and data, a real Envoy in front of it driven by an
    /// xDS control plane, a one-second metric sampler and a CDC consumer. Then, in another
    /// terminal: `godwit run rds-to-aurora --cluster orders-db --world lab --set …`.
    #[command(after_help = "Examples:
  godwit lab up                          then, in another terminal:
  godwit run rds-to-aurora --cluster orders-db --world lab --set metric_period=1
  godwit lab up --dir /tmp/lab2 --rows 1000000 --no-cdc
  godwit lab up --no-db-access --no-cdc  credential-less: the runbook decides from CloudWatch")]
    Up {
        /// Where the lab lives [default: $TMPDIR/godwit-lab-<uid>].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The source's instance id (and route name).
        #[arg(long, default_value = "orders-db")]
        source: String,
        /// Rows seeded into the `orders` table.
        #[arg(long, default_value_t = 10_000)]
        rows: i64,
        /// No CDC consumer.
        #[arg(long)]
        no_cdc: bool,
        /// Withhold database access from runs on this lab (credential-less, like the aws world
        /// without `db_user`): `pg::access` says so and every other `pg::`/`validate::` call
        /// is refused without a connection; the CloudWatch series go on.
        #[arg(long)]
        no_db_access: bool,
        /// Start N clients writing through Envoy until the lab stops (`lab status` shows what
        /// they see; at `lab down` this prints the write blackout, failed attempts and lost
        /// commits, as the demo does).
        #[arg(long, value_name = "N", default_value_t = 0)]
        workload: usize,
        /// What the workload's clients commit: `insert` (append-only rows) or `tpcb` (TPC-B
        /// transactions updating an account, teller and branch).
        #[arg(long, default_value = "insert", value_parser = parse_kind)]
        workload_kind: godwit_lab::workload::Kind,
        /// Tag the source KEY=VALUE (repeatable), e.g. `--tag godwit:fleet=lab --tag team=orders`
        /// for fleet discovery (`godwit fleet plan --world lab --discover godwit:fleet=lab`).
        #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
        tags: Vec<(String, String)>,
    },
    /// Stop a lab: its supervisor, every server, Envoy and consumer — recorded or not —, then
    /// remove its data and keep its logs in the lab directory (`--purge`: remove everything).
    #[command(after_help = "Examples:
  godwit lab down
  godwit lab down --dir /tmp/lab2
  godwit lab down --purge")]
    Down {
        /// Where the lab lives [default: $TMPDIR/godwit-lab-<uid>].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Remove the logs too (the whole lab directory).
        #[arg(long)]
        purge: bool,
    },
    /// What a lab runs: servers (primary/standby), Envoy, consumers, ports.
    #[command(after_help = "Examples:
  godwit lab status
  godwit lab status -o json | jq .servers")]
    Status {
        /// Where the lab lives [default: $TMPDIR/godwit-lab-<uid>].
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

impl LabArgs {
    pub fn execute(self, ctx: &Context) -> Result<i32, Failure> {
        let json = ctx.json();
        match self.command {
            LabCommand::Up {
                dir,
                source,
                rows,
                no_cdc,
                no_db_access,
                workload,
                workload_kind,
                tags,
            } => {
                godwit_engine::run::validate_cluster(&source)?;
                let dir = dir.unwrap_or_else(default_dir);
                let rt = runtime()?;
                rt.block_on(async {
                    // Before anything is up: `godwit lab down` may signal as soon as lab.json exists.
                    let stop = stop_signals()?;
                    let mut opts = LabOptions::new(&dir);
                    opts.source = source.clone();
                    opts.seed_rows = rows;
                    opts.cdc = !no_cdc;
                    opts.db_access = !no_db_access;
                    opts.tags = tags.into_iter().collect();
                    crate::out::note(format!("starting a lab in {} …", dir.display()));
                    let mut sup = Supervisor::up(opts).await.map_err(lab_failure)?;
                    sup.keep_logs();
                    print_status(&sup.dir, json)?;
                    let world = if dir == default_dir() {
                        "lab".to_string()
                    } else {
                        format!("lab:{}", sup.dir.display())
                    };
                    let say = |t: String| if json { crate::out::note(t) } else { crate::out::line(t) };
                    say(format!(
                        "\nclients: psql 'host=127.0.0.1 port={} user=app dbname=app'\nmigrate: godwit run rds-to-aurora --cluster {source} --world {world} --set validation_window=10s --set metric_period=1 --set health_every=2s --set parameter_group_settle=0s\nstop:    Ctrl-C here, or godwit lab down{}",
                        sup.state.route.listen_port,
                        if dir == default_dir() {
                            String::new()
                        } else {
                            format!(" --dir {}", dir.display())
                        }
                    ));
                    let load = (workload > 0).then(|| {
                        say(format!(
                            "workload: {workload} {} clients writing through Envoy (`godwit lab status` shows what they see; the figures at `lab down`)",
                            workload_kind.name()
                        ));
                        godwit_lab::workload::Workload::start(
                            sup.state.route.listen_port,
                            &sup.state.app_role,
                            &sup.state.app_db,
                            workload,
                            Duration::from_millis(5),
                            workload_kind,
                            sup.state.seed_rows,
                        )
                    });
                    wait_for_stop(stop, load.as_ref(), &sup.dir).await;
                    crate::out::note("stopping the lab …");
                    if let Some(load) = load {
                        let logs = load.stop().await;
                        match cutover::measure(&sup.dir, workload_kind, &logs, true).await {
                            Ok(w) => say(crate::lab::measured_report(&w, &[])),
                            Err(e) => crate::out::note(format!("the workload's figures: {e}")),
                        }
                    }
                    let dir = sup.dir.clone();
                    sup.down().await;
                    crate::out::note(format!(
                        "logs kept in {} (`godwit lab down --purge` removes them)",
                        dir.display()
                    ));
                    Ok(exit::OK)
                })
            }
            LabCommand::Down { dir, purge } => {
                let dir = dir.unwrap_or_else(default_dir);
                let msg = godwit_lab::supervisor::down_dir(&dir, purge).map_err(lab_failure)?;
                if json {
                    crate::out::json(&serde_json::json!({ "down": dir, "message": msg }));
                } else {
                    crate::out::line(msg);
                }
                Ok(exit::OK)
            }
            LabCommand::Status { dir } => {
                let dir = dir.unwrap_or_else(default_dir);
                print_status(&dir, json)?;
                Ok(exit::OK)
            }
        }
    }
}

type StopSignals = (tokio::signal::unix::Signal, tokio::signal::unix::Signal);

/// SIGINT and SIGTERM handlers, registered at once (a `ctrl_c()` future registers only when
/// first polled).
fn stop_signals() -> Result<StopSignals, Failure> {
    use tokio::signal::unix::{SignalKind, signal};
    let err = |e: std::io::Error| Failure(exit::INTERNAL, format!("cannot handle signals: {e}"));
    Ok((
        signal(SignalKind::interrupt()).map_err(err)?,
        signal(SignalKind::terminate()).map_err(err)?,
    ))
}

/// Until SIGINT or SIGTERM; meanwhile the workload's figures so far go to `workload.json`
/// every second (what `lab status` shows).
async fn wait_for_stop(
    (mut int, mut term): StopSignals,
    load: Option<&godwit_lab::workload::Workload>,
    dir: &Path,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = int.recv() => return,
            _ = term.recv() => return,
            _ = tick.tick() => {
                if let Some(load) = load {
                    let _ = cutover::measure(dir, load.kind(), &load.logs(), false).await;
                }
            }
        }
    }
}

fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not KEY=VALUE (e.g. godwit:fleet=lab)")),
    }
}

fn parse_kind(s: &str) -> Result<godwit_lab::workload::Kind, String> {
    godwit_lab::workload::Kind::parse(s)
}

fn print_status(dir: &Path, json: bool) -> Result<(), Failure> {
    let s = godwit_lab::supervisor::status(dir).map_err(lab_failure)?;
    if json {
        crate::out::json(&s);
        return Ok(());
    }
    let up = |b: bool| if b { "running" } else { "NOT RUNNING" };
    crate::out::line(format!("lab {}", s.dir.display()));
    crate::out::line(format!(
        "  supervisor pid {} {}",
        s.supervisor.pid.unwrap_or(0),
        up(s.supervisor.running)
    ));
    crate::out::line(format!(
        "  clients connect to {} (Envoy pid {} {}); control plane API {}",
        s.listen,
        s.envoy.pid.unwrap_or(0),
        up(s.envoy.running),
        s.control_plane_api
    ));
    for srv in &s.servers {
        crate::out::line(format!(
            "  {:<24} {:<8} port {:<5} pid {:<7} {}{}",
            srv.id,
            srv.role,
            srv.port,
            srv.pid.unwrap_or(0),
            srv.status,
            srv.cluster
                .as_ref()
                .map(|c| format!(" (cluster {c})"))
                .unwrap_or_default()
        ));
    }
    for c in &s.consumers {
        crate::out::line(format!(
            "  CDC consumer {:<14} pid {:<7} {}",
            c.name,
            c.pid.unwrap_or(0),
            up(c.running)
        ));
    }
    for p in &s.unrecorded {
        println!(
            "  UNRECORDED {} pid {} in {} (`godwit lab down` stops it)",
            p.name,
            p.pid,
            p.cwd.display()
        );
    }
    if let Some(w) = s
        .workload
        .clone()
        .and_then(|w| serde_json::from_value::<godwit_lab::workload::Report>(w).ok())
    {
        println!("{}", crate::lab::measured_report(&w, &[]));
    }
    Ok(())
}
