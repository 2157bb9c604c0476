//! The plumbing every command that runs a runbook shares: the async runtime, the `Runner` with
//! its Ctrl-C handler and sinks, driving a run on a blocking thread, the world's audit and the
//! outcome printed at the end. Commands return [`Failure`] (exit code and message); only the
//! entry point (`main_with`) prints it.

use std::sync::Arc;

use godwit_engine::exit;
use godwit_engine::journal::file::FileStore;
use godwit_engine::{EngineError, RunReport, RunStatus, Runner};

use crate::render::HumanSink;
use crate::worlds::Worlds;

/// A command failure: exit code and message.
pub struct Failure(pub i32, pub String);

impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Self {
        Failure(e.exit_code(), e.to_string())
    }
}

/// Invalid input (exit 2): nothing was changed.
pub(crate) fn invalid(msg: impl Into<String>) -> Failure {
    Failure(exit::INVALID_INPUT, msg.into())
}

/// How a run reports: the flags `run` and `resume` share.
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

impl Output {
    /// No human transcript, default limits: for a runner that only parses or evaluates.
    pub fn quiet() -> Output {
        Output {
            json: true,
            verbose: false,
            max_operations: None,
        }
    }
}

/// The multi-threaded runtime a command's async work runs on.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            Failure(
                exit::INTERNAL,
                format!("cannot start the async runtime: {e}"),
            )
        })
}

/// A runner of `world` journaling into `store`, on a fresh runtime: Ctrl-C cancels it (the run
/// stays resumable), the human transcript is printed unless `out.json`.
pub(crate) fn runner(
    store: &FileStore,
    world: godwit_stdlib::world::World,
    out: &Output,
) -> Result<(Runner, tokio::runtime::Runtime), Failure> {
    let rt = runtime()?;
    let mut runner = world.runner(Arc::new(store.clone()), rt.handle().clone());
    let c = runner.cancel.clone();
    // Ctrl-C and SIGTERM (a supervisor stopping godwit, `kill`) both stop the run at its next
    // safe point, resumable, nothing rolled back: an interrupt is never an abort.
    rt.spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).ok();
        let which = tokio::select! {
            r = tokio::signal::ctrl_c() => r.ok().map(|_| "interrupt"),
            Some(_) = async { match term.as_mut() { Some(t) => t.recv().await, None => None } } => Some("terminated"),
        };
        if let Some(which) = which {
            eprintln!("\n{which}: stopping at the next safe point (the run stays resumable)…");
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

/// Print how a run ended (one JSON object with `--json`, else what to do next) and return its
/// exit code.
pub(crate) fn finish(report: &RunReport, out: &Output) -> i32 {
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

/// An engine with every area of the reference world registered (for docs and completion).
pub fn reference_engine(worlds: &Worlds) -> Result<rhai::Engine, Failure> {
    let world = worlds.build(&worlds.reference, None).map_err(invalid)?;
    let store = FileStore::new(std::env::temp_dir().join("godwit-reference-unused"));
    let (runner, _rt) = runner(&store, world, &Output::quiet())?;
    Ok(godwit_engine::run::reference_engine(&runner))
}
