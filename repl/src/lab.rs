//! `godwit lab up|down|status`, the `lab` world (`--world lab[:DIR]`) and `godwit demo --world
//! lab`. A lab lives in `<tmp>/godwit-lab-<uid>` unless `--dir` (or `lab:DIR`) names another.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Subcommand;
use godwit_engine::exit;
use godwit_engine::journal::file::FileStore;
use godwit_engine::transcript::Collector;
use godwit_lab::cutover::{self, Cutover};
use godwit_lab::{LabOptions, Supervisor};

use crate::render::HumanSink;
use crate::session::{Failure, runtime};
use crate::worlds::WorldDef;

#[derive(Subcommand, Debug)]
pub enum LabCommand {
    /// Start a lab and keep it running until Ctrl-C (or `godwit lab down`): a PostgreSQL source
    /// with an application role, database and data, a real Envoy in front of it driven by an
    /// xDS control plane, a one-second metric sampler and a CDC consumer. Then, in another
    /// terminal: `godwit run rds-to-aurora --cluster orders-db --world lab --set …`.
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
    },
    /// Stop a lab: its supervisor, every server, Envoy and consumer, by pid; remove its files.
    Down {
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// What a lab runs: servers (primary/standby), Envoy, consumers, ports.
    Status {
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

/// `<tmp>/godwit-lab-<uid>`: a lab is throwaway, and its servers run as another OS user when
/// godwit runs as root, which could not enter a state directory under root's home (0700).
/// `state_dir` is unused on purpose: every process of one user finds the same lab.
pub fn default_dir(_state_dir: &Path) -> PathBuf {
    std::env::temp_dir().join(format!("godwit-lab-{}", godwit_lab::pgproc::current_uid()))
}

/// The `lab` world of this state directory.
pub fn world_def(state_dir: &Path) -> WorldDef {
    let default = default_dir(state_dir);
    WorldDef {
        name: "lab".into(),
        about: format!(
            "real PostgreSQL servers and a real Envoy on this machine (`godwit lab up` first); lab:DIR for a lab elsewhere; default {}",
            default.display()
        ),
        make: Arc::new(move |arg, _state| {
            let dir = if arg.is_empty() {
                default.clone()
            } else {
                PathBuf::from(arg)
            };
            let mut w =
                godwit_lab::supervisor::world_standalone(&dir).map_err(|e| e.to_string())?;
            w.name = if arg.is_empty() {
                "lab".into()
            } else {
                format!("lab:{arg}")
            };
            Ok(w)
        }),
    }
}

fn lab_failure(e: godwit_lab::LabError) -> Failure {
    let code = match e {
        godwit_lab::LabError::Prerequisite(_) | godwit_lab::LabError::State(_) => {
            exit::INVALID_INPUT
        }
        _ => exit::INTERNAL,
    };
    Failure(code, e.to_string())
}

pub fn command(cmd: LabCommand, state_dir: &Path) -> Result<i32, Failure> {
    match cmd {
        LabCommand::Up {
            dir,
            source,
            rows,
            no_cdc,
        } => {
            godwit_engine::run::validate_cluster(&source)?;
            let dir = dir.unwrap_or_else(|| default_dir(state_dir));
            let rt = runtime()?;
            rt.block_on(async {
                // Before anything is up: `godwit lab down` may signal as soon as lab.json exists.
                let stop = stop_signals()?;
                let mut opts = LabOptions::new(&dir);
                opts.source = source.clone();
                opts.seed_rows = rows;
                opts.cdc = !no_cdc;
                eprintln!("starting a lab in {} …", dir.display());
                let sup = Supervisor::up(opts).await.map_err(lab_failure)?;
                print_status(&sup.dir, false)?;
                let world = if dir == default_dir(state_dir) {
                    "lab".to_string()
                } else {
                    format!("lab:{}", sup.dir.display())
                };
                println!(
                    "\nclients: psql 'host=127.0.0.1 port={} user=app dbname=app'\nmigrate: godwit run rds-to-aurora --cluster {source} --world {world} --set validation_window=10s --set metric_period=1 --set health_every=2s\nstop:    Ctrl-C here, or godwit lab down{}",
                    sup.state.route.listen_port,
                    if dir == default_dir(state_dir) {
                        String::new()
                    } else {
                        format!(" --dir {}", dir.display())
                    }
                );
                wait_for_stop(stop).await;
                eprintln!("stopping the lab …");
                sup.down().await;
                Ok(exit::OK)
            })
        }
        LabCommand::Down { dir } => {
            let dir = dir.unwrap_or_else(|| default_dir(state_dir));
            let msg = godwit_lab::supervisor::down_dir(&dir).map_err(lab_failure)?;
            println!("{msg}");
            Ok(exit::OK)
        }
        LabCommand::Status { dir, json } => {
            let dir = dir.unwrap_or_else(|| default_dir(state_dir));
            print_status(&dir, json)?;
            Ok(exit::OK)
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

async fn wait_for_stop((mut int, mut term): StopSignals) {
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

fn print_status(dir: &Path, json: bool) -> Result<(), Failure> {
    let s = godwit_lab::supervisor::status(dir).map_err(lab_failure)?;
    if json {
        println!("{}", serde_json::to_string(&s).unwrap_or_default());
        return Ok(());
    }
    let up = |b: bool| if b { "running" } else { "NOT RUNNING" };
    println!("lab {}", s.dir.display());
    println!(
        "  supervisor pid {} {}",
        s.supervisor.pid.unwrap_or(0),
        up(s.supervisor.running)
    );
    println!(
        "  clients connect to {} (Envoy pid {} {}); control plane API {}",
        s.listen,
        s.envoy.pid.unwrap_or(0),
        up(s.envoy.running),
        s.control_plane_api
    );
    for srv in &s.servers {
        println!(
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
        );
    }
    for c in &s.consumers {
        println!(
            "  CDC consumer {:<14} pid {:<7} {}",
            c.name,
            c.pid.unwrap_or(0),
            up(c.running)
        );
    }
    Ok(())
}

/// `godwit demo --world lab`: a throwaway lab, the standard runbook under a write load through
/// Envoy, the usual summary plus what the clients measured.
pub fn demo(verbose: bool) -> Result<i32, Failure> {
    let tmp = tempfile::Builder::new()
        .prefix("godwit-demo-")
        .tempdir_in("/tmp")
        .map_err(|e| Failure(exit::INTERNAL, format!("demo: {e}")))?;
    let runbook = crate::demo::write_standard_runbook(tmp.path())?;
    println!(
        "godwit demo · runbook rds-to-aurora · world lab: real PostgreSQL servers and a real Envoy on this machine, 4 clients writing through Envoy the whole time"
    );
    println!(
        "(starting the lab: a source server with 10,000 orders, Envoy, the control plane, a CDC consumer …)\n"
    );
    let rt = runtime()?;
    let code = rt.block_on(async {
        let sup = Supervisor::up(LabOptions::new(tmp.path().join("lab")))
            .await
            .map_err(lab_failure)?;
        let store = Arc::new(FileStore::new(tmp.path().join("state/runs")));
        let collector = Collector::new();
        let started = std::time::Instant::now();
        let result = cutover::run(
            &sup,
            Cutover {
                runbook,
                params: cutover::lab_params(),
                store,
                clients: 4,
                pace: Duration::from_millis(5),
                warmup: Duration::from_millis(500),
                sinks: vec![
                    Arc::new(HumanSink::new(verbose)),
                    Arc::new(collector.clone()),
                ],
            },
        )
        .await;
        let wall = started.elapsed();
        sup.down().await;
        let out = result.map_err(lab_failure)?;
        let report = out
            .report
            .as_ref()
            .ok_or_else(|| Failure(exit::INTERNAL, "no run report".into()))?;
        println!(
            "\n{}",
            crate::demo::summary(&collector.lines(), &report.status, wall, "wall-clock time")
        );
        println!("{}", measured(&out));
        Ok::<_, Failure>(report.status.exit_code())
    })?;
    Ok(code)
}

/// The figures the clients measured, as the demo prints them.
pub fn measured(out: &cutover::Outcome) -> String {
    let w = &out.workload;
    let mut lines = vec![format!(
        "── measured by {} clients writing through Envoy ──",
        w.clients
    )];
    lines.push(format!(
        "  write blackout {:.0} ms (longest gap between acknowledged commits)",
        w.blackout_ms
    ));
    lines.push(format!(
        "  failed client attempts {} ({} connection errors){}",
        w.failed_attempts,
        w.connect_errors,
        if w.errors.is_empty() {
            String::new()
        } else {
            format!(
                ": {}",
                w.errors
                    .iter()
                    .map(|(k, v)| format!("{v}× {k}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        }
    ));
    lines.push(format!(
        "  lost commits {} of {} acknowledged{}",
        w.lost.map_or("unchecked".to_string(), |l| l.to_string()),
        w.acked,
        w.acked_after_switch
            .map(|n| format!("; {n} acknowledged after the switch, found on the target"))
            .unwrap_or_default()
    ));
    if !out.phases.is_empty() {
        lines.push(format!(
            "  blackout parts: {}",
            out.phases
                .iter()
                .map(|(n, ms)| format!("{n} {ms} ms"))
                .collect::<Vec<_>>()
                .join(" · ")
        ));
    }
    lines.join("\n")
}
