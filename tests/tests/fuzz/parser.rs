//! Target `parser`: generated runbooks through load, run and replay.
//!
//! Input: a runbook. Generated ones are structured (steps with options and undos, gates, loops,
//! try/catch, throw/abort, imports constant, computed and missing, eval of generated text, deep
//! literals, hostile numbers, `lag::` calls, sleeps); mutated ones are corpus entries with bytes
//! cut, copied or inserted, to reach the parser's error paths. Each runs to its end with small
//! limits on the engine's built-ins and the pure `lag` area. Asserts: no panic (and no abort — the
//! harness keeps the input in flight on disk); a load error and a rollback report name a place
//! in the runbook; for generated runbooks, resuming from any prefix of the journal (a crash after
//! any record) ends as the live run did, with the same result.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use godwit_engine::journal::memory::MemoryStore;
use godwit_engine::journal::{Entry, JournalStore};
use godwit_engine::{
    Cancel, Clock, EngineError, Host, Limits, RunReport, RunStatus, Runner, StartRequest,
    VirtualClock,
};
use rhai::Engine;

use crate::Checker;
use crate::rng::{Rng, rhai_float, rhai_int, rhai_string};

/// Marks a structured (generated, deterministic) runbook: only those are replay-checked; a
/// mutated one may change captured variables inside closures, which a replay cannot repeat.
const STRUCTURED: &str = "//! fuzz: structured\n";

pub fn checker() -> Box<dyn Checker> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("lib")).unwrap();
    std::fs::write(
        dir.path().join("lib/ok.rhai"),
        "fn f(x) { x + 1 }\nfn g() { [1, #{ a: 2.5 }] }\nconst K = 7;\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("lib/bad.rhai"), "fn f( { 1 }\n").unwrap();
    std::fs::write(
        dir.path().join("lib/computed.rhai"),
        "fn f() { let p = \"lib/\" + \"ok\"; import p as m; m::f(1) }\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("lib/nested.rhai"),
        "import \"lib/ok\" as ok;\nfn h() { ok::f(41) }\n",
    )
    .unwrap();
    Box::new(ParserChecker {
        rt: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap(),
        path: dir.path().join("rb.rhai"),
        _dir: dir,
        rng: Rng::new(11),
        seen: [0; 5],
    })
}

struct ParserChecker {
    rt: tokio::runtime::Runtime,
    path: PathBuf,
    _dir: tempfile::TempDir,
    /// Picks the crash point of the replay check.
    rng: Rng,
    /// Outcomes seen: load errors, succeeded, rolled back, rollback failed, replays compared.
    seen: [u64; 5],
}

/// Errors that Rhai itself raises without a position, with nothing around them that has one,
/// so godwit has no place to report: a closure capturing the very value a method call is
/// changing (`a.push(|x| a)`) is refused as a data race at `Position::NONE`; and Rhai counts some
/// internal operations (a property read on a map) at `Position::NONE`, so a limit that trips on
/// one of those has no place — a limit stops the script wherever it happens to be anyway.
const RHAI_WITHOUT_POSITION: &[&str] = &["Data race detected", "operations limit", "busy limit"];

fn limits() -> Limits {
    Limits {
        // Operations, not time, end runaway inputs here: a replay must end the way the live
        // run did, and the busy limit depends on the machine's speed.
        max_operations: 20_000,
        max_busy: Some(Duration::from_secs(30)),
        max_call_levels: 16,
        max_expr_depth: 64,
        max_string_size: 4096,
        max_array_size: 2000,
        max_map_size: 2000,
    }
}

fn lag_plugin(engine: &mut Engine, _host: &Host) {
    godwit_stdlib::lag::rhai::register(engine);
}

impl ParserChecker {
    /// A runner on `store` whose virtual clock starts at `start_ms`.
    fn runner(&self, store: &MemoryStore, start_ms: i64) -> Runner {
        Runner {
            store: Arc::new(store.clone()) as Arc<dyn JournalStore>,
            clock: Arc::new(VirtualClock::new(start_ms)) as Arc<dyn Clock>,
            handle: self.rt.handle().clone(),
            limits: limits(),
            cancel: Cancel::new(),
            sinks: vec![],
            plugins: vec![Arc::new(lag_plugin)],
            world: "fuzz".into(),
        }
    }
}

/// Where every fuzzed run's virtual clock starts (2026-01-01T00:00:00Z).
const START_MS: i64 = 1_767_225_600_000;

/// The outcome in a form two runs can be compared by: kind, and the result or the reason with
/// numbers masked (a gate's poll count depends on where the virtual clock was restarted).
fn summary(r: &RunReport) -> String {
    let mask = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_ascii_digit() { '#' } else { c })
            .collect()
    };
    match &r.status {
        RunStatus::Succeeded { result } => format!("succeeded {result}"),
        RunStatus::RolledBack { reason, .. } => format!("rolled-back {}", mask(reason)),
        RunStatus::RollbackFailed { step, error, .. } => {
            format!("rollback-failed {step} {}", mask(error))
        }
        RunStatus::Interrupted => "interrupted".into(),
    }
}

impl Checker for ParserChecker {
    fn summary(&self) -> String {
        let [parse, ok, rolled, failed, replays] = self.seen;
        format!(
            "{parse} refused at load, {ok} succeeded, {rolled} rolled back, {failed} rollback \
             failed; {replays} resumed from a journal prefix and compared"
        )
    }

    fn generate(&mut self, rng: &mut Rng, corpus: &[String]) -> String {
        if !corpus.is_empty() && rng.one_in(6) {
            let base = rng.pick(corpus).clone();
            return mutate(rng, base.as_bytes());
        }
        let mut g = Gen {
            rng,
            vars: 0,
            names: 0,
            fns: 0,
        };
        let mut out = String::from(STRUCTURED);
        let n = 1 + g.rng.below(8);
        for _ in 0..n {
            out.push_str(&g.stmt(0, true));
            out.push('\n');
        }
        if g.rng.one_in(2) {
            out.push_str(&g.expr(0));
            out.push('\n');
        }
        if g.rng.one_in(12) {
            // A mutated structured runbook: parse errors at generated places.
            return mutate(g.rng, out.as_bytes());
        }
        out
    }

    fn check(&mut self, input: &str) -> Result<(), String> {
        std::fs::write(&self.path, input).map_err(|e| e.to_string())?;
        let store = MemoryStore::new();
        let out = self.runner(&store, START_MS).start(StartRequest {
            runbook: self.path.clone(),
            cluster: "c1".into(),
            params: Default::default(),
            run_id: Some("f".into()),
        });
        let report = match out {
            Err(EngineError::Parse(r)) => {
                self.seen[0] += 1;
                return match r.location {
                    Some(_) => Ok(()),
                    None => Err(format!("load error without a place: {}", r.render())),
                };
            }
            Err(e) => return Err(format!("the run could not run: {e}")),
            Ok(r) => r,
        };
        self.seen[match report.status {
            RunStatus::Succeeded { .. } => 1,
            RunStatus::RolledBack { .. } => 2,
            _ => 3,
        }] += 1;
        if let RunStatus::RolledBack {
            report: Some(r), ..
        } = &report.status
            && r.location.is_none()
            && !RHAI_WITHOUT_POSITION.iter().any(|m| r.message.contains(m))
        {
            return Err(format!("rollback report without a place: {}", r.render()));
        }
        if matches!(report.status, RunStatus::Interrupted) {
            return Err("interrupted without a cancel".into());
        }
        if !input.starts_with(STRUCTURED) {
            return Ok(());
        }
        // Crash after record k (not the last: that is run-finished), resume, compare.
        let entries = store.entries("f");
        if entries.len() < 3 {
            return Ok(());
        }
        let k = 1 + self.rng.below(entries.len() - 2);
        if matches!(entries[k - 1], Entry::RunFinished { .. }) {
            return Ok(());
        }
        let cut = store.prefix("f", k);
        // A resume happens after the crash, never before it: its clock starts where the last
        // kept record was written (a step that slept before the cut had moved the live clock
        // on, and a step re-run after the cut reads `now()` from there, as the live run did).
        let at = serde_json::to_value(&entries[k - 1])
            .ok()
            .and_then(|v| v["at"].as_i64())
            .unwrap_or(START_MS);
        let resumed = self
            .runner(&cut, at)
            .resume("f", false)
            .map_err(|e| format!("resume after record {k} failed: {e}"))?;
        self.seen[4] += 1;
        let (live, again) = (summary(&report), summary(&resumed));
        if live != again {
            return Err(format!(
                "resumed after record {k} of {} it ended otherwise:\n  live:    {live}\n  resumed: {again}",
                entries.len()
            ));
        }
        Ok(())
    }
}

/// Cut, copy or insert bytes (at char boundaries, so the file stays text).
fn mutate(rng: &mut Rng, src: &[u8]) -> String {
    let mut out = String::from_utf8_lossy(src).into_owned();
    for _ in 0..1 + rng.below(3) {
        let b: Vec<usize> = (0..=out.len())
            .filter(|&i| out.is_char_boundary(i))
            .collect();
        let i = *rng.pick(&b);
        let j = *rng.pick(&b);
        let (lo, hi) = (i.min(j), i.max(j));
        out = match rng.below(4) {
            0 => format!("{}{}", &out[..lo], &out[hi..]),
            1 => format!("{}{}{}", &out[..hi], &out[lo..hi], &out[hi..]),
            2 => {
                let tok = *rng.pick(&[
                    "(", ")", "{", "}", "[", "]", "#{", "\"", "'", "`", "${", ";", ",", "import ",
                    "fn ", "||", "|x|", "=", "==", ".", "::", "eval(", "step(", "\n", "1e308",
                    "0x", "//", "/*", "\\",
                ]);
                format!("{}{tok}{}", &out[..lo], &out[lo..])
            }
            _ => {
                let n = 50 + rng.below(300);
                format!("{}{}{}", &out[..lo], "(".repeat(n), &out[lo..])
            }
        };
    }
    out
}

/// The structured generator: each call returns Rhai source.
struct Gen<'a> {
    rng: &'a mut Rng,
    vars: usize,
    names: usize,
    fns: usize,
}

impl Gen<'_> {
    fn var(&mut self) -> String {
        if self.vars == 0 || self.rng.one_in(4) {
            "PARAMS".into()
        } else {
            format!("v{}", self.rng.below(self.vars))
        }
    }

    fn name(&mut self, prefix: &str) -> String {
        self.names += 1;
        if self.rng.one_in(40) {
            return rhai_string(&self.rng.string()); // not kebab-case: an error
        }
        format!("\"{prefix}-{}\"", self.names)
    }

    fn duration(&mut self) -> String {
        match self.rng.below(6) {
            0 => rhai_int(self.rng.int()),
            1 => rhai_float(self.rng.float()),
            2 => rhai_string(&self.rng.string()),
            _ => format!(
                "\"{}{}\"",
                self.rng.below(100),
                self.rng.pick(&["s", "m", "ms", "h"])
            ),
        }
    }

    fn literal(&mut self) -> String {
        match self.rng.below(9) {
            0 => rhai_int(self.rng.int()),
            1 => rhai_float(self.rng.float()),
            2 => rhai_string(&self.rng.string()),
            3 => "()".into(),
            4 => "true".into(),
            5 => {
                let max = if self.rng.one_in(12) { 80 } else { 8 };
                let n = 1 + self.rng.below(max);
                format!("{}1{}", "[".repeat(n), "]".repeat(n))
            }
            6 => {
                let max = if self.rng.one_in(12) { 80 } else { 8 };
                let n = 1 + self.rng.below(max);
                format!("{}1{}", "#{ a: ".repeat(n), " }".repeat(n))
            }
            7 => format!("'{}'", self.rng.pick(&["a", "é", "\\n", "🦀"])),
            _ => (self.rng.below(100)).to_string(),
        }
    }

    /// A condition (Rhai refuses a constant that is not a boolean there).
    fn cond(&mut self, depth: usize) -> String {
        match self.rng.below(3) {
            0 => format!("({} == {})", self.expr(depth + 1), self.expr(depth + 1)),
            1 => (*self.rng.pick(&["true", "false"])).to_string(),
            _ => format!("({} < {})", self.var(), self.literal()),
        }
    }

    /// An expression without assignments to outer variables.
    fn expr(&mut self, depth: usize) -> String {
        if depth > 3 {
            return self.literal();
        }
        let d = depth + 1;
        match self.rng.below(22) {
            0..=4 => self.literal(),
            5 | 6 => self.var(),
            7 => format!(
                "({} {} {})",
                self.expr(d),
                self.rng.pick(&[
                    "+", "-", "*", "/", "%", "**", "<<", ">>", "&", "|", "^", "==", "!=", "<", ">",
                    "&&", "||", "in"
                ]),
                self.expr(d)
            ),
            8 => format!("{}{}", self.rng.pick(&["-", "!"]), self.expr(d)),
            9 => format!("[{}, {}]", self.expr(d), self.expr(d)),
            10 => format!("#{{ a: {}, \"b c\": {} }}", self.expr(d), self.expr(d)),
            11 => format!("{}[{}]", self.var(), self.expr(d)),
            12 => format!("{}.a", self.var()),
            13 => format!(
                "{}({})",
                self.rng.pick(&[
                    "len",
                    "to_string",
                    "type_of",
                    "time_str",
                    "seconds",
                    "parse_int",
                    "to_int",
                    "to_float",
                    "abs",
                    "sqrt"
                ]),
                self.expr(d)
            ),
            14 => format!(
                "if {} {{ {} }} else {{ {} }}",
                self.expr(d),
                self.expr(d),
                self.expr(d)
            ),
            15 => {
                // eval of generated text (which may import, throw or fail to parse)
                let inner = if self.rng.one_in(3) {
                    self.stmt(3, false)
                } else {
                    self.expr(d)
                };
                format!("eval({})", rhai_string(&inner))
            }
            16 => {
                let args = (0..self.rng.below(4))
                    .map(|_| self.expr(d))
                    .collect::<Vec<_>>()
                    .join(", ");
                match self.rng.below(3) {
                    0 => format!("ok::f({args})"),
                    1 if self.fns > 0 => format!("f{}({args})", self.rng.below(self.fns)),
                    _ => format!("lag::fmt_duration({})", self.expr(d)),
                }
            }
            17 => {
                let pts = (0..self.rng.below(6))
                    .map(|i| {
                        format!(
                            "#{{ t: {}, v: {} }}",
                            if self.rng.one_in(3) {
                                rhai_int(self.rng.int())
                            } else {
                                (1_700_000_000 + 60 * i).to_string()
                            },
                            self.expr(d)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let f = rhai_int(self.rng.int());
                match self.rng.below(3) {
                    0 => format!("lag::caught_up_after_fence([{pts}], [{pts}], {f}, #{{}})"),
                    1 => format!("lag::classify([{pts}], [{pts}], #{{ now: {f} }})"),
                    _ => format!("lag::percentile([{pts}], {})", self.expr(d)),
                }
            }
            18 => format!("|x| x + {}", self.expr(d)),
            19 => format!(
                "`{}${{{}}}`",
                self.rng.pick(&["a", "", "x y"]),
                self.expr(d)
            ),
            20 => format!(
                "{}.{}()",
                self.var(),
                self.rng
                    .pick(&["len", "keys", "values", "is_empty", "to_json"])
            ),
            _ => format!("Fn(\"f{}\")", self.rng.below(3)),
        }
    }

    /// A statement; `top`: steps and gates are allowed (not inside steps, gates or functions).
    fn stmt(&mut self, depth: usize, top: bool) -> String {
        let d = depth + 1;
        let k = if top {
            self.rng.below(22)
        } else {
            self.rng.below(9)
        };
        match k {
            0..=2 => {
                let e = self.expr(0);
                self.vars += 1;
                format!("let v{} = {e};", self.vars - 1)
            }
            3 => format!("print({});", self.expr(0)),
            4 => format!("throw {};", self.expr(0)),
            5 if depth < 3 => format!(
                "for i in 0..{} {{ {} }}",
                self.rng.pick(&["0", "3", "10", "1000000"]),
                self.stmt(d, false)
            ),
            6 if depth < 3 => format!(
                "try {{ {} }} catch (e) {{ {} }}",
                self.stmt(d, false),
                self.stmt(d, false)
            ),
            7 => format!("let t = {};", self.expr(0)),
            8 => format!("if {} {{ {} }}", self.cond(0), self.stmt(d, false)),
            // top level only below
            9..=11 => {
                let name = self.name("s");
                let body = self.expr(0);
                let opts = if self.rng.one_in(2) {
                    format!(
                        "#{{ undo: |r| {}, retry: #{{ attempts: {}, backoff: {} }}, timeout: {} }}, ",
                        self.expr(1),
                        rhai_int(self.rng.int().rem_euclid(5)),
                        self.duration(),
                        self.duration()
                    )
                } else {
                    String::new()
                };
                let sleep = if self.rng.one_in(4) {
                    format!("sleep({}); ", self.duration())
                } else {
                    String::new()
                };
                self.vars += 1;
                format!(
                    "let v{} = step({name}, {opts}|| {{ {sleep}{body} }});",
                    self.vars - 1
                )
            }
            12 => {
                let name = self.name("g");
                format!(
                    "gate({name}, #{{ every: {}, hold: {}, timeout: {} }}, || #{{ pass: {}, why: {} }});",
                    self.duration(),
                    self.rng.pick(&["1", "2", "0", "100000"]),
                    self.duration(),
                    self.expr(1),
                    self.expr(1)
                )
            }
            13 => {
                let path = if self.rng.one_in(4) {
                    *self.rng.pick(&[
                        "\"lib/missing\"",
                        "\"lib/bad\"",
                        "\"lib/computed\"",
                        "\"../../etc/passwd\"",
                        "(\"lib/\" + \"ok\")",
                    ])
                } else {
                    *self.rng.pick(&["\"lib/ok\"", "\"lib/nested\""])
                };
                format!("import {path} as ok;")
            }
            14 => format!("abort({});", self.expr(0)),
            15 => {
                self.fns += 1;
                format!("fn f{}(a, b) {{ {} a }}", self.fns - 1, self.stmt(d, false))
            }
            16 => format!("phase({});", self.expr(0)),
            17 => "let n = now();".to_string(),
            18 => format!("step({}, || now());", self.name("n")),
            19 => format!("let w = {};", self.literal()),
            20 => format!("{}.push({});", self.var(), self.expr(0)),
            _ => format!(
                "loop {{ {} }}",
                self.rng.pick(&["", "break;", "let x = 1;"])
            ),
        }
    }
}
