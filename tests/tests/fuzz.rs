//! Fuzz/property harness (issue 19): generated hostile input at godwit's boundaries, for a bounded
//! time, inside the ordinary `cargo test` (so CI runs it).
//!
//! | target    | input (corpus file)                         | asserts                                   |
//! |-----------|---------------------------------------------|-------------------------------------------|
//! | `parser`  | a runbook (`*.rhai`)                        | no panic; load errors and rollback reports carry a position; a replay from any journal prefix ends like the live run |
//! | `journal` | a Rhai expression giving a value (`*.rhai`) | encode refuses exactly what the oracle says; every journaled value replays bit for bit through a sealed journal line; damaged lines are errors, not panics |
//! | `lag`     | a `lag::` call (`*.rhai`)                   | no panic; errors are `Invalid` primitive errors; assessments are journalable; a fence pass rests on a zero after fence + allowance |
//!
//! The targets run concurrently, one thread each, for `GODWIT_FUZZ_SECONDS` (default 60) each.
//! Each first replays its corpus (`tests/fuzz-corpus/<target>/`: seeds, and regressions this
//! harness saved), then generates inputs (fresh, or mutations of corpus entries) from a seed
//! printed at the start (`GODWIT_FUZZ_SEED` repeats a session). A finding is saved to
//! `tests/fuzz-corpus/<target>/regressions/` and fails the test; the input in flight is kept in
//! `target/fuzz-inflight-<target>.rhai`, so even a process abort leaves it behind.

#[path = "fuzz/journal.rs"]
mod journal;
#[path = "fuzz/lag.rs"]
mod lag;
#[path = "fuzz/parser.rs"]
mod parser;
#[path = "fuzz/rng.rs"]
mod rng;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rng::Rng;

/// One fuzz target: how to check an input, and how to make one.
pub struct Target {
    pub name: &'static str,
    /// A fresh checker (state such as a tokio runtime or a temp dir lives inside).
    pub checker: fn() -> Box<dyn Checker>,
}

pub trait Checker {
    /// A new input, fresh or derived from `corpus`.
    fn generate(&mut self, rng: &mut Rng, corpus: &[String]) -> String;
    /// `Err(why)` is a finding.
    fn check(&mut self, input: &str) -> Result<(), String>;
    /// What the inputs did, for the log (so a generator that stopped reaching a path shows).
    fn summary(&self) -> String {
        String::new()
    }
}

const TARGETS: &[Target] = &[
    Target {
        name: "parser",
        checker: parser::checker,
    },
    Target {
        name: "journal",
        checker: journal::checker,
    },
    Target {
        name: "lag",
        checker: lag::checker,
    },
];

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz-corpus")
        .join(target)
}

/// Every `*.rhai` file under the target's corpus folder (seeds and regressions), by name.
fn load_corpus(target: &str) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    let mut dirs = vec![corpus_dir(target)];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rhai") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
        .into_iter()
        .filter_map(|p| std::fs::read_to_string(&p).ok().map(|s| (p, s)))
        .collect()
}

fn save_finding(target: &str, input: &str) -> PathBuf {
    let dir = corpus_dir(target).join("regressions");
    let _ = std::fs::create_dir_all(&dir);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in input.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let path = dir.join(format!("{h:016x}.rhai"));
    let _ = std::fs::write(&path, input);
    path
}

fn inflight_path(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target")
        .join(format!("fuzz-inflight-{target}.rhai"))
}

/// Check `input`, turning a panic into a finding.
fn check_one(checker: &mut Box<dyn Checker>, target: &str, input: &str) -> Result<(), String> {
    let _ = std::fs::write(inflight_path(target), input);
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| checker.check(input))) {
        Ok(r) => r,
        Err(p) => Err(format!(
            "panicked: {}",
            p.downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| p.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)")
        )),
    }
}

struct Outcome {
    name: &'static str,
    inputs: u64,
    corpus: usize,
    elapsed: Duration,
    finding: Option<String>,
    summary: String,
}

fn run_target(t: &Target, budget: Duration, seed: u64) -> Outcome {
    let started = Instant::now();
    let mut checker = (t.checker)();
    let corpus = load_corpus(t.name);
    let mut out = Outcome {
        name: t.name,
        inputs: 0,
        corpus: corpus.len(),
        elapsed: Duration::ZERO,
        finding: None,
        summary: String::new(),
    };
    for (path, input) in &corpus {
        out.inputs += 1;
        if let Err(why) = check_one(&mut checker, t.name, input) {
            out.finding = Some(format!("corpus file {}: {why}", path.display()));
            out.elapsed = started.elapsed();
            out.summary = checker.summary();
            return out;
        }
    }
    let texts: Vec<String> = corpus.into_iter().map(|(_, s)| s).collect();
    let mut rng = Rng::new(seed ^ fnv(t.name));
    while started.elapsed() < budget {
        let input = checker.generate(&mut rng, &texts);
        out.inputs += 1;
        if let Err(why) = check_one(&mut checker, t.name, &input) {
            let path = save_finding(t.name, &input);
            out.finding = Some(format!("{why}\n  input saved to {}", path.display()));
            break;
        }
    }
    let _ = std::fs::remove_file(inflight_path(t.name));
    out.elapsed = started.elapsed();
    out.summary = checker.summary();
    out
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[test]
fn fuzz_targets_run_for_their_time_budget_without_a_finding() {
    // CI runs the full minute per target; GODWIT_FUZZ_SECONDS shortens it locally.
    let budget = Duration::from_secs(
        std::env::var("GODWIT_FUZZ_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    let seed = std::env::var("GODWIT_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("fuzz: seed {seed} (GODWIT_FUZZ_SEED={seed} repeats it), {budget:?} per target");
    let handles: Vec<_> = TARGETS
        .iter()
        .map(|t| {
            std::thread::Builder::new()
                .name(format!("fuzz-{}", t.name))
                // Generated values and the Rhai parser recurse; the runs themselves get their
                // own big stack from the engine.
                .stack_size(64 << 20)
                .spawn(move || run_target(t, budget, seed))
                .unwrap()
        })
        .collect();
    let mut findings = Vec::new();
    for h in handles {
        let o = h.join().expect("a fuzz target thread died");
        eprintln!(
            "fuzz {:<8} {:>7} inputs ({} from the corpus) in {:.1} s{}{}",
            o.name,
            o.inputs,
            o.corpus,
            o.elapsed.as_secs_f64(),
            if o.summary.is_empty() {
                String::new()
            } else {
                format!(": {}", o.summary)
            },
            if o.finding.is_some() {
                " — FINDING"
            } else {
                ""
            }
        );
        if let Some(f) = o.finding {
            findings.push(format!("[{}] {f}", o.name));
        }
    }
    assert!(
        findings.is_empty(),
        "fuzz findings:\n{}",
        findings.join("\n")
    );
}
