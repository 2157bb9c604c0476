//! `godwit lab up|down|status`: start a lab of [`godwit_lab`] and keep it until a signal, stop
//! one by its pids, or show what one runs. The `lab` world itself is in [`crate::lab`].

use std::path::{Path, PathBuf};

use clap::Subcommand;
use godwit_engine::exit;
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
  godwit lab up --dir /tmp/lab2 --rows 1000000 --no-cdc")]
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
    #[command(after_help = "Examples:
  godwit lab down
  godwit lab down --dir /tmp/lab2")]
    Down {
        /// Where the lab lives [default: $TMPDIR/godwit-lab-<uid>].
        #[arg(long)]
        dir: Option<PathBuf>,
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
                    crate::out::note(format!("starting a lab in {} …", dir.display()));
                    let sup = Supervisor::up(opts).await.map_err(lab_failure)?;
                    print_status(&sup.dir, json)?;
                    let world = if dir == default_dir() {
                        "lab".to_string()
                    } else {
                        format!("lab:{}", sup.dir.display())
                    };
                    let say = |t: String| if json { crate::out::note(t) } else { crate::out::line(t) };
                    say(format!(
                        "\nclients: psql 'host=127.0.0.1 port={} user=app dbname=app'\nmigrate: godwit run rds-to-aurora --cluster {source} --world {world} --set validation_window=10s --set metric_period=1 --set health_every=2s\nstop:    Ctrl-C here, or godwit lab down{}",
                        sup.state.route.listen_port,
                        if dir == default_dir() {
                            String::new()
                        } else {
                            format!(" --dir {}", dir.display())
                        }
                    ));
                    wait_for_stop(stop).await;
                    crate::out::note("stopping the lab …");
                    sup.down().await;
                    Ok(exit::OK)
                })
            }
            LabCommand::Down { dir } => {
                let dir = dir.unwrap_or_else(default_dir);
                let msg = godwit_lab::supervisor::down_dir(&dir).map_err(lab_failure)?;
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

async fn wait_for_stop((mut int, mut term): StopSignals) {
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
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
    Ok(())
}
