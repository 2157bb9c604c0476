//! The plumbing every command that runs a runbook shares: the async runtime, the `Runner` with
//! its Ctrl-C/SIGTERM handler and sinks, driving a run on a blocking thread, the world's audit
//! and the outcome printed at the end. Commands return [`Failure`] (exit code and message); only
//! the entry point (`main_with`) prints it.

use std::sync::Arc;

use godwit_engine::exit;
use godwit_engine::journal::file::FileStore;

use crate::state::Store;
use godwit_engine::{EngineError, RunReport, RunStatus, Runner};

use crate::render::HumanSink;
use crate::worlds::Worlds;

/// A command failure: exit code and message.
#[derive(Debug)]
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

/// How a run reports: the flags `run` and `resume` share (`-o json` prints the outcome as one
/// JSON object on stdout instead of the human transcript).
#[derive(clap::Args, Debug, Clone)]
pub struct Output {
    /// No human transcript (`-o json`, or a command that only parses or evaluates).
    #[arg(skip)]
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

    /// These flags under the command line's output format.
    pub fn with_format(mut self, ctx: &crate::context::Context) -> Output {
        self.json = ctx.json();
        self
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

/// The runtime of a command that drives a run (`run`, `resume`, `abort`), with SIGINT and
/// SIGTERM trapped from its first moment: an interrupt while the world is built or the runbook
/// loads is an interrupt too (exit 7, nothing created), never a killed process or a runbook
/// that "does not parse".
pub(crate) struct Driving {
    pub rt: tokio::runtime::Runtime,
    pub cancel: godwit_engine::Cancel,
}

impl Driving {
    /// Start the runtime and trap the signals. Ctrl-C and SIGTERM (a supervisor stopping
    /// godwit, `kill`) both stop the run at its next safe point, resumable, nothing rolled
    /// back: an interrupt is never an abort.
    pub fn start() -> Result<Driving, Failure> {
        use tokio::signal::unix::{SignalKind, signal};
        let rt = runtime()?;
        let cancel = godwit_engine::Cancel::new();
        let err =
            |e: std::io::Error| Failure(exit::INTERNAL, format!("cannot handle signals: {e}"));
        // `signal()` registers at once (a `ctrl_c()` future only when first polled).
        let (mut int, mut term) = {
            let _in = rt.enter();
            (
                signal(SignalKind::interrupt()).map_err(err)?,
                signal(SignalKind::terminate()).map_err(err)?,
            )
        };
        let c = cancel.clone();
        rt.spawn(async move {
            let which = tokio::select! {
                _ = int.recv() => "interrupt",
                _ = term.recv() => "terminated",
            };
            crate::out::note(format!(
                "\n{which}: stopping at the next safe point (the run stays resumable)…"
            ));
            c.cancel();
        });
        Ok(Driving { rt, cancel })
    }

    /// Exit 7 when an interrupt came before the run existed.
    pub fn check(&self) -> Result<(), Failure> {
        if self.cancel.is_cancelled() {
            return Err(Failure(
                exit::INTERRUPTED,
                "interrupted before the run started; nothing was created".into(),
            ));
        }
        Ok(())
    }

    /// A runner of `world` journaling into `store` on this runtime, cancelled by the trapped
    /// signals; the human transcript is printed unless `out.json`.
    pub fn runner(
        &self,
        store: &Store,
        world: godwit_stdlib::world::World,
        out: &Output,
    ) -> Runner {
        let mut runner = world.runner(store.journal(), self.rt.handle().clone());
        runner.cancel = self.cancel.clone();
        configure(&mut runner, out);
        runner
    }
}

/// A runner of `world` journaling into `store`, on a fresh runtime, for commands that only
/// parse or evaluate (no signal trap: Ctrl-C ends the process); the human transcript is printed
/// unless `out.json`.
pub(crate) fn runner(
    store: &Store,
    world: godwit_stdlib::world::World,
    out: &Output,
) -> Result<(Runner, tokio::runtime::Runtime), Failure> {
    let rt = runtime()?;
    let mut runner = world.runner(store.journal(), rt.handle().clone());
    configure(&mut runner, out);
    Ok((runner, rt))
}

fn configure(runner: &mut Runner, out: &Output) {
    if !out.json {
        runner
            .sinks
            .insert(0, Arc::new(HumanSink::new(out.verbose)));
    }
    if let Some(n) = out.max_operations {
        runner.limits.max_operations = n;
    }
}

/// Run the engine on a blocking thread (primitives block on the runtime through the Host).
pub(crate) fn drive<T: Send + 'static>(
    rt: &tokio::runtime::Runtime,
    f: impl FnOnce() -> Result<T, EngineError> + Send + 'static,
) -> Result<T, Failure> {
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
        crate::out::error(f);
    }
    crate::out::note("the runbook is unsafe in this world: fix it before running it anywhere real");
    exit::INVARIANT_VIOLATED
}

/// Print how a run ended (one JSON object with `--json`, else what to do next) and return its
/// exit code.
pub(crate) fn finish(report: &RunReport, out: &Output) -> i32 {
    if out.json {
        crate::out::json(report);
        return report.status.exit_code();
    }
    match &report.status {
        RunStatus::Succeeded { .. } => {}
        RunStatus::RolledBack {
            report: Some(r), ..
        } => {
            crate::out::note("");
            crate::out::error(&r.render());
        }
        RunStatus::RolledBack { reason, .. } => {
            crate::out::note(format!("\nrolled back: {reason}"))
        }
        RunStatus::RollbackFailed { step, error, .. } => {
            crate::out::note("");
            crate::out::error(&format!(
                "rollback stopped: the undo of '{step}' failed: {error}\nfix the cause, then `godwit resume {}` retries it",
                report.run_id
            ));
        }
        RunStatus::Interrupted => crate::out::note(format!(
            "\ninterrupted; continue with `godwit resume {}`",
            report.run_id
        )),
    }
    report.status.exit_code()
}

/// An engine with every area of the reference world registered (for docs and completion).
pub fn reference_engine(worlds: &Worlds) -> Result<rhai::Engine, Failure> {
    let world = worlds.build(&worlds.reference, None).map_err(invalid)?;
    let store = Store::File(FileStore::new(
        std::env::temp_dir().join("godwit-reference-unused"),
    ));
    let (runner, _rt) = runner(&store, world, &Output::quiet())?;
    Ok(godwit_engine::run::reference_engine(&runner))
}

/// Start `req` (its `run_id` set) in world `world_name`, continuing from a copy of run
/// `from`'s simulated world state (the earlier run's own stays as it ended): the follow-up
/// runs of a migration, `godwit rollback` and `godwit clone`. The copy is forgotten again when
/// the run never got a journal (a refused start).
pub(crate) fn start_on_a_copy_of(
    ctx: &crate::context::Context,
    driving: &Driving,
    store: &Store,
    out: &Output,
    from: &str,
    world_name: &str,
    req: godwit_engine::StartRequest,
) -> Result<i32, Failure> {
    let run_id = req.run_id.clone().unwrap_or_default();
    let state = crate::state::copy_world(store, &ctx.state_dir()?, from, &run_id)?;
    let forget_world = || crate::state::forget_world(&state);
    crate::state::follow_world(store, &run_id, &state);
    let world = ctx.worlds.build(world_name, Some(&state)).map_err(|e| {
        forget_world();
        invalid(format!("run {from} needs world '{world_name}': {e}"))
    })?;
    let audit = world.audit.clone();
    driving.check().inspect_err(|_| forget_world())?;
    let runner = driving.runner(store, world, out);
    let report = drive(&driving.rt, move || runner.start(req)).inspect_err(|_| {
        if godwit_engine::JournalStore::read(store, &run_id).is_err() {
            forget_world();
        }
    })?;
    Ok(audited(finish(&report, out), audit.as_deref()))
}
