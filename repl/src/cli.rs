//! The `godwit` command line: argument parsing and the commands.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use godwit_engine::exit;
use godwit_engine::journal::file::FileStore;
use godwit_engine::plan::{FlowOutcome, Plan, Status, UndoState};
use godwit_engine::runbook::short_hash;
use godwit_engine::{EngineError, JournalStore, RunReport, RunStatus, Runner, StartRequest};
use serde_json::{Value, json};

use crate::render::{HumanSink, compact};
use crate::state::{resolve_run, state_dir, store};
use crate::worlds::Worlds;
use godwit_stdlib::aws::world::settings_file;

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

#[derive(clap::Args, Debug, Clone)]
pub struct Output {
    /// Print the outcome as one JSON object on stdout instead of the human transcript.
    #[arg(long)]
    pub json: bool,
    /// Also show every primitive call with its arguments and result.
    #[arg(short, long)]
    pub verbose: bool,
    /// Resource limit: Rhai operations per run (an endless loop ends with this limit's name).
    /// At least 1: Rhai would read 0 as "no limit".
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_operations: Option<u64>,
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

/// A command failure: exit code and message.
pub struct Failure(pub i32, pub String);

impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Self {
        Failure(e.exit_code(), e.to_string())
    }
}

fn invalid(msg: impl Into<String>) -> Failure {
    Failure(exit::INVALID_INPUT, msg.into())
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
            let out = Output {
                json: true,
                verbose: false,
                max_operations: None,
            };
            let (runner, _rt) = runner(&store, world, &out)?;
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
            let out = Output {
                json: true,
                verbose: false,
                max_operations: None,
            };
            let (mut runner, rt) = runner(&store, world, &out)?;
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

/// An engine with every area of the reference world registered (for docs and completion).
pub fn reference_engine(worlds: &Worlds) -> Result<rhai::Engine, Failure> {
    let world = worlds.build(&worlds.reference, None).map_err(invalid)?;
    let out = Output {
        json: true,
        verbose: false,
        max_operations: None,
    };
    let store = FileStore::new(std::env::temp_dir().join("godwit-reference-unused"));
    let (runner, _rt) = runner(&store, world, &out)?;
    Ok(godwit_engine::run::reference_engine(&runner))
}

/// Where a stateful world (the simulator) keeps a run's world: beside the runs, not in the run
/// directory, which only the journal store creates.
fn world_state_file(state_dir: &std::path::Path, run_id: &str) -> PathBuf {
    state_dir.join("worlds").join(format!("{run_id}.json"))
}

/// A path that exists, else `runbooks/NAME.rhai` under the current directory.
fn find_runbook(arg: &str) -> Result<PathBuf, Failure> {
    let p = PathBuf::from(arg);
    if p.is_file() {
        return Ok(p);
    }
    let named = PathBuf::from("runbooks").join(format!("{arg}.rhai"));
    if named.is_file() {
        return Ok(named);
    }
    let available: Vec<String> = std::fs::read_dir("runbooks")
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .filter_map(|n| n.strip_suffix(".rhai").map(String::from))
                .collect()
        })
        .unwrap_or_default();
    Err(invalid(format!(
        "runbook '{arg}' not found: not a file, and no runbooks/{arg}.rhai here{}",
        if available.is_empty() {
            String::new()
        } else {
            format!(" (available: {})", available.join(", "))
        }
    )))
}

fn write_settings(state: &std::path::Path, v: &Value) -> Result<(), Failure> {
    let path = settings_file(state);
    std::fs::write(&path, v.to_string()).map_err(|e| {
        Failure(
            exit::INTERNAL,
            format!("cannot write {}: {e}", path.display()),
        )
    })
}

/// The settings of world `world` for `cluster` from a config file: the `[<world>]` table,
/// overridden key by key by `[clusters.<cluster>.<world>]`. Checked here, so a wrong key is an
/// error naming it before anything runs. `None` when the file has neither table.
fn world_settings(
    file: &std::path::Path,
    cluster: &str,
    world: &str,
) -> Result<Option<Value>, Failure> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| invalid(format!("cannot read config {}: {e}", file.display())))?;
    let doc: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| invalid(format!("config {}: {e}", file.display())))?;
    let top = doc.get(world).cloned();
    let mine = doc
        .get("clusters")
        .and_then(|c| c.get(cluster))
        .and_then(|c| c.get(world))
        .cloned();
    if top.is_none() && mine.is_none() {
        return Ok(None);
    }
    let json = |v: Option<toml::Value>| -> Result<Value, Failure> {
        serde_json::to_value(v.unwrap_or(toml::Value::Table(toml::Table::new())))
            .map_err(|e| invalid(format!("config {}: {e}", file.display())))
    };
    let (top, mine) = (json(top)?, json(mine)?);
    match world {
        "aws" => {
            use godwit_stdlib::aws::AwsSettings;
            let origin = |t: &str| format!("config {} [{t}]", file.display());
            let top = AwsSettings::from_json(top, &origin("aws")).map_err(invalid)?;
            let mine = AwsSettings::from_json(mine, &origin(&format!("clusters.{cluster}.aws")))
                .map_err(invalid)?;
            let merged = top.overridden_by(mine);
            serde_json::to_value(merged)
                .map(Some)
                .map_err(|e| Failure(exit::INTERNAL, e.to_string()))
        }
        other => Err(invalid(format!(
            "config {}: world '{other}' takes no [{other}] settings",
            file.display()
        ))),
    }
}

/// Parameters for `cluster` from a TOML file: top-level values, overridden by
/// `[clusters.<cluster>]`. Tables named after a world (`[aws]`, `[clusters.<id>.aws]`) are
/// that world's settings (see [`world_settings`]), not parameters. Errors name the file and the
/// key.
fn load_config(
    file: &std::path::Path,
    cluster: &str,
    worlds: &[String],
) -> Result<serde_json::Map<String, Value>, Failure> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| invalid(format!("cannot read config {}: {e}", file.display())))?;
    let doc: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| invalid(format!("config {}: {e}", file.display())))?;
    let to_json = |key: &str, v: &toml::Value| -> Result<Value, Failure> {
        serde_json::to_value(v)
            .map_err(|e| invalid(format!("config {}: {key}: {e}", file.display())))
    };
    let mut out = serde_json::Map::new();
    let mut per_cluster = None;
    for (k, v) in &doc {
        if k == "clusters" {
            let toml::Value::Table(t) = v else {
                return Err(invalid(format!(
                    "config {}: `clusters` must be a table of [clusters.<id>] tables",
                    file.display()
                )));
            };
            per_cluster = t.get(cluster).cloned();
            for (id, c) in t {
                if !c.is_table() {
                    return Err(invalid(format!(
                        "config {}: clusters.{id} must be a table of parameters",
                        file.display()
                    )));
                }
            }
        } else if worlds.contains(k) && v.is_table() {
            // World settings, read by world_settings.
        } else {
            if v.is_table() {
                return Err(invalid(format!(
                    "config {}: `{k}` is a table; parameters are plain values, per-cluster ones go under [clusters.<id>]",
                    file.display()
                )));
            }
            out.insert(k.clone(), to_json(k, v)?);
        }
    }
    if let Some(toml::Value::Table(t)) = per_cluster {
        for (k, v) in &t {
            if worlds.contains(k) && v.is_table() {
                continue; // world settings, read by world_settings
            }
            out.insert(k.clone(), to_json(&format!("clusters.{cluster}.{k}"), v)?);
        }
    }
    Ok(out)
}

fn parse_sets(sets: &[String]) -> Result<serde_json::Map<String, Value>, Failure> {
    let mut out = serde_json::Map::new();
    for s in sets {
        let (k, v) = s.split_once('=').ok_or_else(|| {
            invalid(format!(
                "--set {s:?}: expected KEY=VALUE, e.g. --set max_replica_lag=5"
            ))
        })?;
        let k = k.trim();
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(invalid(format!(
                "--set {s:?}: key must be letters, digits and '_'"
            )));
        }
        let value =
            serde_json::from_str::<Value>(v).unwrap_or_else(|_| Value::String(v.to_string()));
        out.insert(k.to_string(), value);
    }
    Ok(out)
}

pub(crate) fn runner(
    store: &FileStore,
    world: godwit_stdlib::world::World,
    out: &Output,
) -> Result<(Runner, tokio::runtime::Runtime), Failure> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            Failure(
                exit::INTERNAL,
                format!("cannot start the async runtime: {e}"),
            )
        })?;
    let mut runner = world.runner(Arc::new(store.clone()), rt.handle().clone());
    let c = runner.cancel.clone();
    rt.spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\ninterrupt: stopping at the next safe point (the run stays resumable)…");
            c.cancel();
        }
    });
    if !out.json {
        runner
            .sinks
            .insert(0, Arc::new(HumanSink::new(out.verbose)));
    }
    if let Some(n) = out.max_operations {
        runner.limits.max_operations = n;
    }
    Ok((runner, rt))
}

/// Run the engine on a blocking thread (primitives block on the runtime through the Host).
pub(crate) fn drive(
    rt: &tokio::runtime::Runtime,
    f: impl FnOnce() -> Result<RunReport, EngineError> + Send + 'static,
) -> Result<RunReport, Failure> {
    let handle = rt.spawn_blocking(f);
    match rt.block_on(handle) {
        Ok(r) => r.map_err(Failure::from),
        Err(e) => Err(Failure(
            exit::INTERNAL,
            format!("the run thread failed: {e}"),
        )),
    }
}

/// The world's own verdict after a run (the simulator's invariants): any finding overrides the
/// run's exit code, because the runbook is then unsafe in that world whatever its outcome.
pub(crate) fn audited(code: i32, audit: Option<&(dyn Fn() -> Vec<String> + Send + Sync)>) -> i32 {
    let findings = audit.map(|a| a()).unwrap_or_default();
    if findings.is_empty() {
        return code;
    }
    for f in &findings {
        eprintln!("error: {f}");
    }
    eprintln!("the runbook is unsafe in this world: fix it before running it anywhere real");
    exit::INVARIANT_VIOLATED
}

fn finish(report: &RunReport, out: &Output) -> i32 {
    if out.json {
        println!("{}", serde_json::to_string(report).unwrap_or_default());
        return report.status.exit_code();
    }
    match &report.status {
        RunStatus::Succeeded { .. } => {}
        RunStatus::RolledBack {
            report: Some(r), ..
        } => eprintln!("\nerror: {}", r.render()),
        RunStatus::RolledBack { reason, .. } => eprintln!("\nrolled back: {reason}"),
        RunStatus::RollbackFailed { step, error, .. } => eprintln!(
            "\nerror: rollback stopped: the undo of '{step}' failed: {error}\nfix the cause, then `godwit resume {}` retries it",
            report.run_id
        ),
        RunStatus::Interrupted => eprintln!(
            "\ninterrupted; continue with `godwit resume {}`",
            report.run_id
        ),
    }
    report.status.exit_code()
}

fn status_of(store: &FileStore, id: &str, plan: &Plan) -> String {
    match (plan.status(), store.holder(id)) {
        (Status::InProgress | Status::RollingBack, Some(holder)) => format!("running ({holder})"),
        (Status::InProgress, None) => "stopped".into(),
        (s, _) => s.as_str().into(),
    }
}

pub(crate) fn runs(store: &FileStore, json: bool) -> Result<i32, Failure> {
    let ids = store.list().map_err(EngineError::from)?;
    let mut rows = Vec::new();
    for id in ids {
        let row = match store.read(&id) {
            Ok(loaded) => {
                let plan = Plan::from_records(&loaded.records);
                let s = plan.started.clone();
                json!({
                    "run_id": id,
                    "runbook": s.as_ref().map(|s| format!("{} {}", s.runbook.name, s.runbook.version)),
                    "cluster": s.as_ref().map(|s| s.cluster.clone()),
                    "world": s.as_ref().map(|s| s.world.clone()),
                    "status": status_of(store, &id, &plan),
                    "where": plan.whereabouts(),
                })
            }
            Err(e) => json!({ "run_id": id, "status": "damaged", "where": e.to_string() }),
        };
        rows.push(row);
    }
    if json {
        println!("{}", Value::Array(rows));
        return Ok(exit::OK);
    }
    if rows.is_empty() {
        println!("no runs in {}", store.root().display());
        return Ok(exit::OK);
    }
    println!(
        "{:<38} {:<22} {:<14} {:<14} {:<16} WHERE",
        "RUN", "RUNBOOK", "CLUSTER", "WORLD", "STATUS"
    );
    for r in rows {
        let s = |k: &str| r[k].as_str().unwrap_or("-").to_string();
        println!(
            "{:<38} {:<22} {:<14} {:<14} {:<16} {}",
            s("run_id"),
            s("runbook"),
            s("cluster"),
            s("world"),
            s("status"),
            s("where")
        );
    }
    Ok(exit::OK)
}

fn show(store: &FileStore, arg: &str, json: bool) -> Result<i32, Failure> {
    let id = resolve_run(store, arg).map_err(invalid)?;
    let loaded = store.read(&id).map_err(EngineError::from)?;
    let plan = Plan::from_records(&loaded.records);
    let status = status_of(store, &id, &plan);
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
