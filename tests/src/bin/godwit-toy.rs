//! The real `godwit` CLI plus a `toy` world, for process-level tests.
//!
//! * `--world toy`: toy primitives (see `godwit_tests::toy`) over the directory in
//!   `GODWIT_TOY_WORLD`, on a virtual clock that starts at the wall-clock time (so gates do not
//!   wait for real, and time still moves forward across processes).
//! * `--world sim...`: the real simulator, with the same crash injection.
//! * `GODWIT_TOY_SLOW_START=MS`: building the toy world takes MS milliseconds (start-up).
//! * `GODWIT_TOY_CRASH=EVENT:N`: the process exits with code 86 — no cleanup, like a crash — on
//!   the N-th transcript event named EVENT (`step-completed`, `primitive`, `undo-completed`,
//!   ..., or `any`). Events are emitted after the journal append they report is durable.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use godwit::worlds::{WorldDef, Worlds};
use godwit_engine::transcript::{Line, Sink};
use godwit_engine::{Cancel, Clock, SystemClock, VirtualClock};
use godwit_stdlib::world::World;
use godwit_tests::toy::{self, ToyWorld};

pub const CRASH_EXIT: i32 = 86;

struct ExitSink {
    event: String,
    nth: usize,
    seen: AtomicUsize,
}

impl Sink for ExitSink {
    fn line(&self, line: &Line) {
        let name = serde_json::to_value(&line.event)
            .ok()
            .and_then(|v| v["event"].as_str().map(String::from))
            .unwrap_or_default();
        if (self.event == "any" || self.event == name)
            && self.seen.fetch_add(1, Ordering::SeqCst) + 1 == self.nth
        {
            std::process::exit(CRASH_EXIT);
        }
    }
}

fn toy_world(_arg: &str, _state: Option<&std::path::Path>) -> Result<World, String> {
    // A start-up that takes a while, so a test can interrupt it (the CLI traps signals before
    // it builds the world).
    if let Some(ms) = std::env::var("GODWIT_TOY_SLOW_START")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        // A test hook in a test binary: there is no run yet, hence no run clock.
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    let dir = std::env::var("GODWIT_TOY_WORLD")
        .map_err(|_| "set GODWIT_TOY_WORLD to the toy world directory".to_string())?;
    let world = ToyWorld::new(dir);
    let clock = Arc::new(VirtualClock::new(SystemClock.now_ms()));
    // `toy::interrupt` cancels through its own token; the CLI's Ctrl-C token is separate.
    let cancel = Cancel::new();
    let mut w = World::pure();
    w.name = "toy".into();
    w.clock = clock;
    w.plugins.push(Arc::new(
        move |e: &mut rhai::Engine, h: &godwit_engine::Host| toy::register(e, h, &world, &cancel),
    ));
    w.sinks = crash_sinks()?;
    Ok(w)
}

/// The crash injection of `GODWIT_TOY_CRASH`, if set.
fn crash_sinks() -> Result<Vec<Arc<dyn Sink>>, String> {
    let mut sinks: Vec<Arc<dyn Sink>> = Vec::new();
    if let Ok(spec) = std::env::var("GODWIT_TOY_CRASH") {
        let (event, n) = spec.split_once(':').ok_or("GODWIT_TOY_CRASH is EVENT:N")?;
        let nth = n
            .parse()
            .map_err(|_| "GODWIT_TOY_CRASH: N must be a number")?;
        sinks.push(Arc::new(ExitSink {
            event: event.into(),
            nth,
            seen: AtomicUsize::new(0),
        }));
    }
    Ok(sinks)
}

fn main() {
    let mut worlds = Worlds::default();
    worlds.add(WorldDef {
        name: "toy".into(),
        about: "toy primitives for tests".into(),
        make: Arc::new(toy_world),
    });
    // The real simulator, plus the same crash injection (process exit after a durable event).
    let sim = worlds.get("sim").expect("the sim world is built in");
    let make = sim.make.clone();
    worlds.add(WorldDef {
        make: Arc::new(move |arg, state| {
            let mut w = make(arg, state)?;
            w.sinks.extend(crash_sinks()?);
            Ok(w)
        }),
        ..sim
    });
    std::process::exit(godwit::cli::main_with(worlds, std::env::args_os()));
}
