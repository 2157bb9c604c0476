//! The `godwit` command line: argument parsing and the commands.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use godwit_engine::exit;
use godwit_engine::journal::file::FileStore;
use godwit_engine::plan::{FlowOutcome, Plan, UndoState};
use godwit_engine::runbook::short_hash;
use godwit_engine::{EngineError, JournalStore, StartRequest};
use godwit_stdlib::aws::world::settings_file;
use serde_json::{Value, json};

use crate::config::{find_runbook, load_config, parse_sets, world_settings, write_settings};
use crate::render::{compact, runs_table};
use crate::session::{Failure, Output, audited, drive, finish, invalid, reference_engine, runner};
use crate::state::{list_runs, resolve_run, run_status, state_dir, store, world_state_file};
use crate::worlds::Worlds;

const EXIT_CODES: &str = "Exit codes: 0 succeeded · 1 internal error · 2 invalid input (nothing changed) · \
3 aborted and rolled back · 4 rollback stopped at a failed undo (resume retries) · 5 journal damaged · \
6 run locked by another process · 7 interrupted (resume continues) · 8 refused (runbook changed, replay \
diverged, already finished) · 9 simulated world's invariants violated";

#[derive(Parser, Debug)]
#[command(name = "godwit", version, about = "Durable, resumable RDS → Aurora PostgreSQL migration runbooks", after_help = EXIT_CODES)]
pub struct Cli {
    /// Where runs are kept [default: $GODWIT_STATE_DIR, else $XDG_STATE_HOME/godwit, else ~/.local/state/godwit]
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start a run of RUNBOOK for one cluster and drive it to the end.
    Run {
        /// A runbook file, or the name of one in ./runbooks (e.g. rds-to-aurora).
        runbook: String,
        /// The cluster (source RDS instance id) this run migrates.
        #[arg(long)]
        cluster: String,
        /// World to run in: NAME or NAME:ARG (see `godwit worlds`).
        #[arg(long)]
        world: Option<String>,
        /// Runbook parameter (repeatable); VALUE is JSON if it parses (numbers, true), else a string.
        /// Wins over --config.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// TOML file of runbook parameters: top-level keys for every cluster, a
        /// `[clusters.<id>]` table per cluster overriding them.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        #[command(flatten)]
        out: Output,
    },
    /// Continue a run from its journal after a crash, an interrupt or a failed undo.
    Resume {
        /// Run id (or a unique prefix, or `last`).
        run: String,
        /// Resume even though the runbook changed since the run started; the journal is then
        /// replayed step by step against the new runbook and any divergence stops the run.
        #[arg(long)]
        force_runbook_change: bool,
        #[command(flatten)]
        out: Output,
    },
    /// List runs, newest first.
    Runs {
        #[arg(long)]
        json: bool,
    },
    /// Show one run: runbook, parameters, steps with their results, where it stands.
    Show {
        run: String,
        #[arg(long)]
        json: bool,
    },
    /// Check a run's journal: hash chain, truncation, torn last line.
    Verify { run: String },
    /// Parse a runbook (and its modules) without running it; print its identity and hash.
    Check {
        runbook: String,
        #[arg(long)]
        world: Option<String>,
    },
    /// Interactive console with every primitive loaded (read-only until :allow-mutations).
    /// Reads stdin when it is not a terminal: `echo 'lag::p99(s)' | godwit repl`.
    Repl {
        #[arg(long)]
        world: Option<String>,
        /// Load a run's step results into `run` and say where it stopped.
        #[arg(long, value_name = "RUN")]
        attach: Option<String>,
    },
    /// The standard runbook against a built-in simulated scenario, with a summary (no AWS needed);
    /// `--world lab` runs it on real PostgreSQL servers and a real Envoy under a write load.
    Demo {
        /// Built-in scenario [default: busy-source].
        #[arg(long)]
        scenario: Option<String>,
        /// `sim` (default) or `lab`.
        #[arg(long, default_value = "sim")]
        world: String,
        /// List the built-in scenarios.
        #[arg(long)]
        list: bool,
        /// Also show every primitive call.
        #[arg(short, long)]
        verbose: bool,
    },
    /// The Envoy data access layer: godwit's xDS control plane as a long-lived service.
    Dal {
        #[command(subcommand)]
        command: DalCommand,
    },
    /// A lab on this machine: real PostgreSQL servers and a real Envoy (the `lab` world).
    Lab {
        #[command(subcommand)]
        command: crate::lab::LabCommand,
    },
    /// List the worlds this godwit can run in.
    Worlds,
    /// Regenerate the primitive reference (docs/primitives) from the functions' doc comments.
    Docs {
        #[arg(long, default_value = "docs/primitives")]
        out: PathBuf,
        /// Only report whether the files are current (exit 1 if not).
        #[arg(long)]
        check: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum DalCommand {
    /// Serve ADS (gRPC) to the Envoy fleet until Ctrl-C; routes and versions persist in the
    /// state file, so a restart serves the same versions (docs/envoy.md).
    Serve {
        /// gRPC listen address for the Envoy nodes.
        #[arg(long, default_value = "127.0.0.1:18000")]
        listen: std::net::SocketAddr,
        /// Management API (JSON over HTTP) through which `godwit run` and other processes drive
        /// routes. Unauthenticated, so loopback only: a non-loopback address is refused.
        #[arg(long, default_value = godwit_xds::remote::DEFAULT_API_ADDR)]
        api: std::net::SocketAddr,
        /// Where routes, versions and history are kept [default: <state dir>/dal/state.json].
        #[arg(long)]
        state_file: Option<PathBuf>,
        /// How long a publish waits for every connected node to ACK.
        #[arg(long, default_value = "30s")]
        ack_timeout: String,
        /// mTLS on the xDS port: server certificate, key and the CA of the nodes' certificates
        /// (all three, or none).
        #[arg(long, requires_all = ["tls_key", "tls_client_ca"])]
        tls_cert: Option<PathBuf>,
        #[arg(long, requires_all = ["tls_cert", "tls_client_ca"])]
        tls_key: Option<PathBuf>,
        #[arg(long, requires_all = ["tls_cert", "tls_key"])]
        tls_client_ca: Option<PathBuf>,
    },
}

/// Entry point of the binary; returns the process exit code. `worlds` lets test binaries add
/// worlds (toy primitives) to the real CLI.
pub fn main_with(worlds: Worlds, args: impl IntoIterator<Item = std::ffi::OsString>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit::INVALID_INPUT
            } else {
                exit::OK
            };
        }
    };
    match dispatch(cli, &worlds) {
        Ok(code) => code,
        Err(Failure(code, msg)) => {
            eprintln!("error: {msg}");
            code
        }
    }
}

fn dispatch(cli: Cli, worlds: &Worlds) -> Result<i32, Failure> {
    let dir = state_dir(cli.state_dir.clone()).map_err(invalid)?;
    let store = store(&dir);
    // The lab world lives in this state directory unless `lab:DIR` says otherwise.
    let mut worlds = worlds.clone();
    if worlds.get("lab").is_none() {
        worlds.add(crate::lab::world_def(&dir));
    }
    let worlds = &worlds;
    match cli.command {
        Command::Run {
            runbook,
            cluster,
            world,
            set,
            config,
            out,
        } => {
            let path = find_runbook(&runbook)?;
            let spec = world.as_deref().unwrap_or(&worlds.default).to_string();
            let world_name = spec.split(':').next().unwrap_or_default().to_string();
            let mut params = match &config {
                Some(file) => load_config(file, &cluster, &worlds.names())?,
                None => serde_json::Map::new(),
            };
            params.extend(parse_sets(&set)?);
            // World settings (`[aws]`, `[clusters.<id>.aws]`) reach the world factory through
            // a file beside the world's state file, so `resume` rebuilds the same world.
            let settings = match &config {
                Some(file) => world_settings(file, &cluster, &world_name)?,
                None => None,
            };
            let probe_dir = tempfile::tempdir()
                .map_err(|e| Failure(exit::INTERNAL, format!("cannot create a temp dir: {e}")))?;
            let probe_state = probe_dir.path().join("probe.json");
            if let Some(v) = &settings {
                write_settings(&probe_state, v)?;
            }
            // Validate everything before anything is written: bad input changes nothing.
            let probe = worlds
                .build(&spec, settings.is_some().then_some(probe_state.as_path()))
                .map_err(invalid)?;
            godwit_engine::run::validate_cluster(&cluster)?;
            {
                let (checker, _rt) = runner(&store, probe.clone(), &out)?;
                godwit_engine::run::check_runbook(&checker, &path)?;
            }
            let run_id = godwit_engine::run::new_run_id(probe.clock.now_ms(), &cluster);
            let state = world_state_file(&dir, &run_id);
            if let Some(parent) = state.parent() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    Failure(
                        exit::INTERNAL,
                        format!("cannot create {}: {e}", parent.display()),
                    )
                })?;
            }
            if let Some(v) = &settings {
                write_settings(&state, v)?;
            }
            let world = worlds.build(&spec, Some(&state)).map_err(invalid)?;
            let audit = world.audit.clone();
            let (runner, rt) = runner(&store, world, &out)?;
            let req = StartRequest {
                runbook: path,
                cluster,
                params,
                run_id: Some(run_id),
            };
            let report = drive(&rt, move || runner.start(req)).inspect_err(|_| {
                let _ = std::fs::remove_file(&state);
                let _ = std::fs::remove_file(settings_file(&state));
            })?;
            Ok(audited(finish(&report, &out), audit.as_deref()))
        }
        Command::Resume {
            run,
            force_runbook_change,
            out,
        } => {
            let id = resolve_run(&store, &run).map_err(invalid)?;
            let plan = Plan::from_records(&store.read(&id).map_err(EngineError::from)?.records);
            let world_name = plan
                .started
                .as_ref()
                .map(|s| s.world.clone())
                .unwrap_or_default();
            let world = worlds
                .build(&world_name, Some(&world_state_file(&dir, &id)))
                .map_err(|e| invalid(format!("run {id} needs world '{world_name}': {e}")))?;
            let audit = world.audit.clone();
            let (runner, rt) = runner(&store, world, &out)?;
            let report = drive(&rt, move || runner.resume(&id, force_runbook_change))?;
            Ok(audited(finish(&report, &out), audit.as_deref()))
        }
        Command::Runs { json } => runs(&store, json),
        Command::Show { run, json } => show(&store, &run, json),
        Command::Verify { run } => verify(&store, &run),
        Command::Check { runbook, world } => {
            let path = find_runbook(&runbook)?;
            let world = worlds
                .build(world.as_deref().unwrap_or(&worlds.default), None)
                .map_err(invalid)?;
            let (runner, _rt) = runner(&store, world, &Output::quiet())?;
            let rb = godwit_engine::run::check_runbook(&runner, &path)?;
            println!("{} {} ({})", rb.info.name, rb.info.version, rb.info.hash);
            for m in &rb.info.modules {
                println!(
                    "  import \"{}\" → {} ({})",
                    m.import,
                    m.path,
                    short_hash(&m.hash)
                );
            }
            Ok(exit::OK)
        }
        Command::Repl { world, attach } => {
            let world = worlds
                .build(world.as_deref().unwrap_or(&worlds.default), None)
                .map_err(invalid)?;
            let audit = Arc::new(crate::repl::AuditLog {
                path: dir.join("repl-audit.log"),
                world: world.name.clone(),
            });
            let (mut runner, rt) = runner(&store, world, &Output::quiet())?;
            runner.sinks.push(audit.clone());
            let repl = crate::repl::Repl::new(&runner, store.clone(), audit);
            let history = dir.join("repl-history");
            // The session blocks on the runtime through the Host: keep it off the runtime's threads.
            let code =
                std::thread::scope(|s| s.spawn(|| crate::repl::run(repl, history, attach)).join());
            drop(rt);
            code.map_err(|_| Failure(exit::INTERNAL, "the REPL thread panicked".into()))
        }
        Command::Demo {
            scenario,
            world,
            list,
            verbose,
        } => match (world.as_str(), list, scenario) {
            (_, true, _) => crate::demo::list(),
            ("sim", _, scenario) => crate::demo::run(scenario.as_deref(), verbose),
            ("lab", _, None) => crate::lab::demo(verbose),
            ("lab", _, Some(_)) => Err(invalid(
                "--scenario picks a simulated scenario; the lab has none (drop --scenario, or use --world sim)",
            )),
            (other, _, _) => Err(invalid(format!(
                "godwit demo --world {other}: the demo runs in `sim` (default) or `lab`"
            ))),
        },
        Command::Lab { command } => crate::lab::command(command, &dir),
        Command::Dal {
            command:
                DalCommand::Serve {
                    listen,
                    api,
                    state_file,
                    ack_timeout,
                    tls_cert,
                    tls_key,
                    tls_client_ca,
                },
        } => {
            let mut config = godwit_xds::Config::new(listen);
            godwit_xds::api::check_listen(api).map_err(|e| invalid(format!("--api: {e}")))?;
            config.api = Some(api);
            config.state_path = Some(state_file.unwrap_or_else(|| dir.join("dal/state.json")));
            config.ack_timeout = godwit_engine::duration::parse_duration(&ack_timeout)
                .map_err(|e| invalid(format!("--ack-timeout: {e}")))?;
            if let (Some(cert), Some(key), Some(client_ca)) = (tls_cert, tls_key, tls_client_ca) {
                config.tls = Some(godwit_xds::tls::TlsFiles {
                    cert,
                    key,
                    client_ca,
                });
            }
            if let Some(parent) = config.state_path.as_ref().and_then(|p| p.parent()) {
                std::fs::create_dir_all(parent).map_err(|e| {
                    Failure(
                        exit::INTERNAL,
                        format!("cannot create {}: {e}", parent.display()),
                    )
                })?;
            }
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| {
                    Failure(
                        exit::INTERNAL,
                        format!("cannot start the async runtime: {e}"),
                    )
                })?;
            rt.block_on(godwit_xds::serve(config))
                .map_err(|e| Failure(exit::INTERNAL, e.to_string()))?;
            Ok(exit::OK)
        }
        Command::Worlds => {
            println!("{}", worlds.describe());
            Ok(exit::OK)
        }
        Command::Docs { out, check } => {
            let files = crate::docs::generate(&reference_engine(worlds)?);
            if check {
                let drift = crate::docs::drift(&out, &files);
                if drift.is_empty() {
                    println!("{} is current ({} files)", out.display(), files.len());
                    return Ok(exit::OK);
                }
                return Err(Failure(
                    exit::INTERNAL,
                    format!(
                        "{} is out of date: {}; run `godwit docs`",
                        out.display(),
                        drift.join(", ")
                    ),
                ));
            }
            crate::docs::write(&out, &files).map_err(|e| {
                Failure(
                    exit::INTERNAL,
                    format!("cannot write {}: {e}", out.display()),
                )
            })?;
            println!("wrote {} files to {}", files.len(), out.display());
            Ok(exit::OK)
        }
    }
}

fn runs(store: &FileStore, json: bool) -> Result<i32, Failure> {
    let rows = list_runs(store)?;
    if json {
        println!("{}", Value::Array(rows));
        return Ok(exit::OK);
    }
    println!("{}", runs_table(&rows, store.root()));
    Ok(exit::OK)
}

fn show(store: &FileStore, arg: &str, json: bool) -> Result<i32, Failure> {
    let id = resolve_run(store, arg).map_err(invalid)?;
    let loaded = store.read(&id).map_err(EngineError::from)?;
    let plan = Plan::from_records(&loaded.records);
    let status = run_status(store, &id, &plan);
    if json {
        let mut v = serde_json::to_value(&plan).unwrap_or(Value::Null);
        v["run_id"] = json!(id);
        v["status"] = json!(status);
        v["where"] = json!(plan.whereabouts());
        println!("{v}");
        return Ok(exit::OK);
    }
    let Some(s) = &plan.started else {
        return Err(invalid(format!("run {id} has no run-started record")));
    };
    println!("run      {id}");
    println!(
        "runbook  {} {} ({}) {}",
        s.runbook.name,
        s.runbook.version,
        short_hash(&s.runbook.hash),
        s.runbook.path
    );
    for m in &s.runbook.modules {
        println!("         import \"{}\" ({})", m.import, short_hash(&m.hash));
    }
    println!("cluster  {}   world {}", s.cluster, s.world);
    println!("params   {}", compact(&s.params, 100));
    println!(
        "started  {}   last activity {}   resumed {} time(s)",
        godwit_engine::clock::format_timestamp(s.at),
        godwit_engine::clock::format_timestamp(plan.last_at),
        plan.resumes
    );
    println!("status   {status} — {}", plan.whereabouts());
    println!();
    for item in &plan.flow {
        let line = match &item.outcome {
            FlowOutcome::Completed { result, .. } => {
                format!("  ✓ {:<34} {}", item.label(), compact(result, 80))
            }
            FlowOutcome::Failed { error, .. } => format!(
                "  ✗ {:<34} {}",
                item.label(),
                compact(&error["message"], 80)
            ),
            FlowOutcome::Incomplete { .. } => {
                format!("  … {:<34} started, not completed", item.label())
            }
        };
        println!("{line}");
    }
    if let Some(reason) = &plan.abort {
        println!("\n  rollback: {reason}");
        for step in &plan.undo_order {
            let st = match plan.undo.get(step) {
                Some(UndoState::Completed) => "undone".to_string(),
                Some(UndoState::Started) => "undo started, not completed".to_string(),
                Some(UndoState::Failed { message }) => format!("undo failed: {message}"),
                None => "pending".into(),
            };
            println!("  ↩ {step:<34} {st}");
        }
    }
    if let Some((_, detail)) = &plan.finished {
        println!("\n  result: {}", compact(detail, 200));
    }
    Ok(exit::OK)
}

fn verify(store: &FileStore, arg: &str) -> Result<i32, Failure> {
    let id = resolve_run(store, arg).map_err(invalid)?;
    let loaded = store.read(&id).map_err(EngineError::from)?;
    let last = loaded.records.last();
    println!(
        "run {id}: journal intact — {} records, hash chain verified{}",
        loaded.records.len(),
        last.map(|r| format!(", head {}", &r.hash[..16]))
            .unwrap_or_default()
    );
    if let Some(n) = loaded.torn_tail {
        println!(
            "note: the last line ({n} bytes) is torn — a crash interrupted its write; it will be dropped on resume"
        );
    }
    Ok(exit::OK)
}
