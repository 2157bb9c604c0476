//! Runners over the toy world, and in-process crash injection.
//!
//! A crash is modelled by a sink that panics on the N-th matching transcript event. Sinks run
//! after the journal append the event reports is durable, so "panic on the 3rd step-completed"
//! is "the process died right after step 3 was journaled"; "panic on the 3rd toy::apply call"
//! is "died inside a step, after its side effect, before its result was journaled". Nothing of
//! ours runs after the panic except destructors (the journal lock is released, as the OS would).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};

use godwit_engine::journal::memory::MemoryStore;
use godwit_engine::transcript::{Collector, Event, Line, Sink};
use godwit_engine::{
    Cancel, Clock, EngineError, JournalStore, Limits, RunReport, Runner, StartRequest, VirtualClock,
};

use crate::toy::{self, ToyWorld};

pub const CRASH: &str = "godwit-tests: injected crash";

/// Panics on the `nth` (1-based) event matching `pred`.
pub struct CrashSink {
    pred: Box<dyn Fn(&Event) -> bool + Send + Sync>,
    nth: usize,
    seen: AtomicUsize,
}

impl CrashSink {
    pub fn new(nth: usize, pred: impl Fn(&Event) -> bool + Send + Sync + 'static) -> Arc<Self> {
        quiet_injected_panics();
        Arc::new(CrashSink {
            pred: Box::new(pred),
            nth,
            seen: AtomicUsize::new(0),
        })
    }
}

impl Sink for CrashSink {
    fn line(&self, line: &Line) {
        if (self.pred)(&line.event) && self.seen.fetch_add(1, Ordering::SeqCst) + 1 == self.nth {
            panic!("{CRASH}");
        }
    }
}

fn quiet_injected_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied())
                .unwrap_or("");
            if !msg.contains(CRASH) {
                default(info);
            }
        }));
    });
}

/// Everything one test needs: a temp dir with runbooks, a toy world, a store, a runtime.
pub struct Bench {
    pub dir: tempfile::TempDir,
    pub world: ToyWorld,
    pub store: MemoryStore,
    pub clock: Arc<VirtualClock>,
    pub rt: tokio::runtime::Runtime,
    pub limits: Limits,
}

/// Start of virtual time in tests: 2026-01-01T00:00:00Z.
pub const T0: i64 = 1_767_225_600_000;

impl Default for Bench {
    fn default() -> Self {
        Self::new()
    }
}

impl Bench {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let world = ToyWorld::new(dir.path().join("world"));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        Bench {
            dir,
            world,
            store: MemoryStore::new(),
            clock: Arc::new(VirtualClock::new(T0)),
            rt,
            limits: Limits::default(),
        }
    }

    /// Write a runbook (or module, with a path like `lib/x.rhai`) into the temp dir.
    pub fn write(&self, name: &str, source: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, source).unwrap();
        p
    }

    /// A runner over this bench's store, with extra sinks; returns it with a collector.
    pub fn runner_with(
        &self,
        store: Arc<dyn JournalStore>,
        sinks: Vec<Arc<dyn Sink>>,
    ) -> (Runner, Collector) {
        let collector = Collector::new();
        let mut all: Vec<Arc<dyn Sink>> = vec![Arc::new(collector.clone())];
        all.extend(sinks);
        let cancel = Cancel::new();
        let world = self.world.clone();
        let c = cancel.clone();
        let runner = Runner {
            store,
            clock: self.clock.clone() as Arc<dyn Clock>,
            handle: self.rt.handle().clone(),
            limits: self.limits.clone(),
            cancel,
            sinks: all,
            plugins: vec![Arc::new(
                move |e: &mut rhai::Engine, h: &godwit_engine::Host| {
                    toy::register(e, h, &world, &c)
                },
            )],
            world: "toy".into(),
        };
        (runner, collector)
    }

    pub fn runner(&self, sinks: Vec<Arc<dyn Sink>>) -> (Runner, Collector) {
        self.runner_with(Arc::new(self.store.clone()), sinks)
    }

    /// Start `runbook` as run `run_id` on cluster `c1`.
    pub fn start(
        &self,
        runner: &Runner,
        runbook: &std::path::Path,
        run_id: &str,
    ) -> Result<RunReport, EngineError> {
        runner.start(StartRequest {
            runbook: runbook.to_path_buf(),
            cluster: "c1".into(),
            params: serde_json::Map::new(),
            run_id: Some(run_id.into()),
        })
    }
}

/// Run `f`, turning an injected crash into `None`.
pub fn until_crash<T>(f: impl FnOnce() -> T) -> Option<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(v) => Some(v),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_default();
            assert!(msg.contains(CRASH), "unexpected panic: {msg}");
            None
        }
    }
}

/// The temporary directory (TMPDIR) of the commands `cli_in` runs in `dir`: what a command
/// leaves there is a leak a user's `/tmp` would collect.
pub fn tmp_in(dir: &std::path::Path) -> PathBuf {
    let t = dir.join("tmp");
    std::fs::create_dir_all(&t).expect("create the command's TMPDIR");
    t
}

/// Run the CLI binary `bin` (a test's `env!("CARGO_BIN_EXE_godwit-toy")`) in `dir`, with its
/// state directory, toy world and TMPDIR there: (exit code, stdout, stderr).
pub fn cli_in(bin: &str, dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let o = std::process::Command::new(bin)
        .args(args)
        .current_dir(dir)
        .env("GODWIT_STATE_DIR", dir.join("state"))
        .env("TMPDIR", tmp_in(dir))
        .env("GODWIT_TOY_WORLD", dir.join("world"))
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

/// A child process a test started, stopped when dropped (a failed assertion included): SIGTERM,
/// then SIGKILL if it has not exited in 15 s (a worker's stop sends what is due first).
pub struct Stopping(pub std::process::Child);

impl Stopping {
    /// SIGTERM and wait up to `within` for the exit; `None`: still running.
    pub fn stop(&mut self, within: std::time::Duration) -> Option<std::process::ExitStatus> {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let until = std::time::Instant::now() + within;
        let (_tx, rx) = std::sync::mpsc::channel::<()>();
        while std::time::Instant::now() < until {
            if let Ok(Some(status)) = self.0.try_wait() {
                return Some(status);
            }
            let _ = rx.recv_timeout(std::time::Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Stopping {
    fn drop(&mut self) {
        if self.stop(std::time::Duration::from_secs(15)).is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Wait until a run's transcript under `state` (`<state>/runs/*/transcript.jsonl`, written by
/// another process) has a line containing every one of `pats`; false after `timeout`.
pub fn wait_transcript(
    state: &std::path::Path,
    pats: &[&str],
    timeout: std::time::Duration,
) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        for run in std::fs::read_dir(state.join("runs"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let text =
                std::fs::read_to_string(run.path().join("transcript.jsonl")).unwrap_or_default();
            if text.lines().any(|l| pats.iter().all(|p| l.contains(p))) {
                return true;
            }
        }
        pause(std::time::Duration::from_millis(2));
    }
    false
}

/// Watching another process's files happens in real time.
#[allow(clippy::disallowed_methods)]
pub fn pause(d: std::time::Duration) {
    std::thread::sleep(d);
}
