//! `godwit repl`: the on-call engineer's console. The very primitives runbooks use, on the same
//! engine, without a journal; read-only until `:allow-mutations`.

pub mod helper;
pub mod pretty;

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use godwit_engine::clock::format_timestamp;
use godwit_engine::plan::{FlowKind, FlowOutcome, Plan};
use godwit_engine::run::from_json;
use godwit_engine::session::{Session, SessionError};
use godwit_engine::transcript::{Event, Line, Sink};
use godwit_engine::{JournalStore, Runner};
use rhai::{Dynamic, Map};
use serde_json::Value;

use helper::{FnInfo, META_COMMANDS, ReplHelper, closest};

/// Appends mutating primitive calls and mutation approvals to `<state>/repl-audit.log`.
pub struct AuditLog {
    pub path: PathBuf,
    pub world: String,
}

impl AuditLog {
    pub fn record(&self, what: &str) {
        let who = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".into());
        let now = godwit_engine::SystemClock;
        let line = format!(
            "{} user={who} pid={} world={} {what}\n",
            format_timestamp(godwit_engine::Clock::now_ms(&now)),
            std::process::id(),
            self.world
        );
        let _ = std::fs::create_dir_all(self.path.parent().unwrap_or(Path::new(".")));
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
        {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

impl Sink for AuditLog {
    fn line(&self, line: &Line) {
        if let Event::Primitive {
            area, op, args, ok, ..
        } = &line.event
            && godwit_engine::run::is_mutating(op)
        {
            self.record(&format!("call {area}::{op}({args}) ok={ok}"));
        }
    }
}

/// Everything a REPL needs.
pub struct Repl {
    session: Session,
    store: crate::state::Store,
    fns: Vec<FnInfo>,
    vars: Arc<Mutex<Vec<String>>>,
    audit: Arc<AuditLog>,
    world: String,
    virtual_clock: bool,
    failures: usize,
}

impl Repl {
    pub fn new(runner: &Runner, store: crate::state::Store, audit: Arc<AuditLog>) -> Repl {
        let session = Session::new(runner);
        let fns = helper::index(session.engine());
        Repl {
            session,
            store,
            fns,
            vars: Arc::new(Mutex::new(Vec::new())),
            audit,
            world: runner.world.clone(),
            virtual_clock: runner.clock.is_virtual(),
            failures: 0,
        }
    }

    fn refresh_vars(&mut self) {
        let names: Vec<String> = self
            .session
            .scope_mut()
            .iter()
            .map(|(n, _, _)| n.to_string())
            .collect();
        *self.vars.lock().unwrap_or_else(|e| e.into_inner()) = names;
    }

    fn out(&self, text: &str) {
        if !text.is_empty() {
            crate::out::line(text);
        }
    }

    fn fail(&mut self, text: &str) {
        self.failures += 1;
        crate::out::error(text);
    }

    /// Evaluate one complete input (code or a meta-command). `confirm` reads a yes/no answer.
    pub fn handle(&mut self, input: &str, confirm: &mut dyn FnMut(&str) -> Option<String>) -> bool {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return true;
        }
        if let Some(cmd) = trimmed.strip_prefix(':') {
            return self.meta(cmd, confirm);
        }
        match self.session.eval(input, "<repl>") {
            Ok(v) => self.out(&pretty::pretty(&v)),
            Err(SessionError::Incomplete) => {
                self.fail("the input is incomplete (an open block, string or call)")
            }
            Err(SessionError::Failed(report)) => {
                let mut text = report.render_with(Some(input));
                if let Some(name) = report
                    .message
                    .strip_prefix("Function not found: ")
                    .map(|r| r.split([' ', '(']).next().unwrap_or(""))
                {
                    let near = closest(name, self.fns.iter().map(|f| f.name.as_str()));
                    if !near.is_empty() {
                        text.push_str(&format!("\ndid you mean: {}?", near.join(", ")));
                    } else {
                        text.push_str("\n:modules lists what exists");
                    }
                }
                self.fail(&text);
            }
        }
        self.refresh_vars();
        true
    }

    /// Returns false to quit.
    fn meta(&mut self, cmd: &str, confirm: &mut dyn FnMut(&str) -> Option<String>) -> bool {
        let (name, arg) = cmd
            .split_once(char::is_whitespace)
            .map_or((cmd, ""), |(a, b)| (a, b.trim()));
        match name {
            "quit" | "q" | "exit" => return false,
            "help" | "h" => {
                let lines: Vec<String> = META_COMMANDS
                    .iter()
                    .map(|(c, d)| format!("  {c:<18} {d}"))
                    .collect();
                self.out(&format!(
                    "Rhai with every primitive module loaded; variables persist; an open block continues on the next line.\n{}",
                    lines.join("\n")
                ));
            }
            "doc" => self.doc(arg),
            "modules" => {
                let mut by_module: std::collections::BTreeMap<String, Vec<String>> =
                    Default::default();
                for f in &self.fns {
                    let (m, n) = f.name.split_once("::").unwrap_or(("core", f.name.as_str()));
                    let list = by_module.entry(m.to_string()).or_default();
                    if !list.iter().any(|x| x == n) {
                        list.push(n.to_string());
                    }
                }
                let text: Vec<String> = by_module
                    .iter()
                    .map(|(m, fs)| format!("{m:<8} {}", fs.join(", ")))
                    .collect();
                self.out(&text.join("\n"));
            }
            "runs" => match crate::state::list_runs(&self.store) {
                Ok(rows) => self.out(&crate::render::runs_table(&rows, &self.store.place())),
                Err(e) => self.fail(&e.to_string()),
            },
            "journal" => self.journal(arg),
            "attach" => self.attach(arg),
            "world" => self.out(&format!(
                "world {} · {} clock · {}",
                self.world,
                if self.virtual_clock {
                    "virtual"
                } else {
                    "system"
                },
                if self.session.read_only() {
                    "read-only (:allow-mutations to change)"
                } else {
                    "MUTATIONS ALLOWED"
                }
            )),
            "allow-mutations" => {
                if !self.session.read_only() {
                    self.out("mutations are already allowed");
                } else {
                    let answer = confirm(&format!(
                        "allow primitives that change world '{}'? this is recorded in the audit log [yes/no] ",
                        self.world
                    ));
                    if answer.as_deref().map(str::trim) == Some("yes") {
                        self.session.set_read_only(false);
                        self.audit.record("mutations allowed");
                        self.out("mutating primitives enabled for this session (recorded)");
                    } else {
                        self.audit.record("mutations declined");
                        self.out("still read-only");
                    }
                }
            }
            other => {
                let near = closest(&format!(":{other}"), META_COMMANDS.iter().map(|(c, _)| *c));
                self.fail(&format!(
                    "unknown command :{other}{}; :help lists them",
                    if near.is_empty() {
                        String::new()
                    } else {
                        format!(" (did you mean {}?)", near.join(", "))
                    }
                ));
            }
        }
        true
    }

    fn doc(&mut self, arg: &str) {
        if arg.is_empty() {
            return self.fail(":doc needs a function name, e.g. :doc lag::classify");
        }
        let hits: Vec<&FnInfo> = self
            .fns
            .iter()
            .filter(|f| f.name == arg || f.name.rsplit("::").next() == Some(arg))
            .collect();
        if hits.is_empty() {
            let near = closest(arg, self.fns.iter().map(|f| f.name.as_str()));
            return self.fail(&format!(
                "no function {arg}{}",
                if near.is_empty() {
                    "; :modules lists them".into()
                } else {
                    format!("; did you mean {}?", near.join(", "))
                }
            ));
        }
        let text: Vec<String> = hits
            .iter()
            .map(|f| format!("{}\n\n{}", f.signature, f.doc))
            .collect();
        self.out(&text.join("\n\n────\n\n"));
    }

    fn resolve(&mut self, arg: &str) -> Option<String> {
        let arg = if arg.is_empty() { "last" } else { arg };
        match crate::state::resolve_run(&self.store, arg) {
            Ok(id) => Some(id),
            Err(e) => {
                self.fail(&e);
                None
            }
        }
    }

    fn journal(&mut self, arg: &str) {
        let Some(id) = self.resolve(arg) else { return };
        match self.store.read(&id) {
            Ok(loaded) => {
                let lines: Vec<String> = loaded
                    .records
                    .iter()
                    .map(|r| {
                        let v = serde_json::to_value(&r.entry).unwrap_or(Value::Null);
                        let kind = v["type"].as_str().unwrap_or("?").to_string();
                        let what = v["name"].as_str().or(v["step"].as_str()).unwrap_or("");
                        let at = v["at"].as_i64().map(format_timestamp).unwrap_or_default();
                        let detail = ["result", "error", "reason", "detail"]
                            .iter()
                            .find_map(|k| v.get(*k))
                            .map(|x| crate::render::compact(x, 70))
                            .unwrap_or_default();
                        format!("{:>4}  {at}  {kind:<15} {what:<26} {detail}", r.seq)
                    })
                    .collect();
                self.out(&lines.join("\n"));
            }
            Err(e) => self.fail(&e.to_string()),
        }
    }

    fn attach(&mut self, arg: &str) {
        let Some(id) = self.resolve(arg) else { return };
        let loaded = match self.store.read(&id) {
            Ok(l) => l,
            Err(e) => return self.fail(&e.to_string()),
        };
        let plan = Plan::from_records(&loaded.records);
        let Some(started) = plan.started.clone() else {
            return self.fail(&format!("run {id} never started"));
        };
        let mut steps = Map::new();
        let mut failed = Map::new();
        for item in &plan.flow {
            match &item.outcome {
                FlowOutcome::Completed { result, .. } => {
                    steps.insert(item.name.as_str().into(), from_json(result));
                }
                FlowOutcome::Failed { error, .. } => {
                    failed.insert(item.name.as_str().into(), from_json(error));
                }
                FlowOutcome::Incomplete { .. } => {}
            }
        }
        let mut run = Map::new();
        run.insert("id".into(), id.clone().into());
        run.insert("runbook".into(), started.runbook.name.clone().into());
        run.insert("version".into(), started.runbook.version.clone().into());
        run.insert("cluster".into(), started.cluster.clone().into());
        run.insert("world".into(), started.world.clone().into());
        run.insert("params".into(), from_json(&started.params));
        let status = plan.status_word(self.store.holder(&id).is_some());
        run.insert("status".into(), status.into());
        run.insert("where".into(), plan.whereabouts().into());
        run.insert("steps".into(), Dynamic::from_map(steps));
        run.insert("failed".into(), Dynamic::from_map(failed));
        run.insert(
            "abort".into(),
            plan.abort.clone().map_or(Dynamic::UNIT, Dynamic::from),
        );
        let scope = self.session.scope_mut();
        let _ = scope.remove::<Dynamic>("run");
        scope.push_constant("run", Dynamic::from_map(run));
        let mut text = format!(
            "attached {id}: {} {} on {} (world {}) — {}: {}",
            started.runbook.name,
            started.runbook.version,
            started.cluster,
            started.world,
            status,
            plan.whereabouts()
        );
        // The console's primitives act on its own world: say so when it is not the run's.
        if self.world != started.world {
            text.push_str(&format!(
                "\nnote: this console is on world '{}', the run ran in '{}': primitives here do not see the run's world",
                self.world, started.world
            ));
        }
        if let Some(item) = plan.flow.last().filter(|i| {
            i.kind == FlowKind::Gate && matches!(i.outcome, FlowOutcome::Incomplete { .. })
        }) {
            match last_gate_poll(&self.store.transcript_lines(&id), &item.name) {
                Some((poll, why, at)) => text.push_str(&format!(
                    "\ngate '{}' is closed (poll {poll} at {}): {}",
                    item.name,
                    format_timestamp(at),
                    if why.is_empty() {
                        "no reason recorded".to_string()
                    } else {
                        why.join("; ")
                    }
                )),
                None => text.push_str(&format!("\ngate '{}' had not polled yet", item.name)),
            }
        }
        text.push_str(
            "\nstep results are in `run.steps` (read-only), e.g. run.steps[\"create-replica\"]",
        );
        self.refresh_vars();
        self.out(&text);
    }
}

/// The last recorded poll of gate `gate`: (poll, reasons, time).
fn last_gate_poll(lines: &[String], gate: &str) -> Option<(u64, Vec<String>, i64)> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Line>(l).ok())
        .filter_map(|l| match l.event {
            Event::GatePoll {
                name, poll, why, ..
            } if name == gate => Some((poll, why, l.at)),
            _ => None,
        })
        .next_back()
}

/// Run the REPL on a terminal (rustyline) or on piped stdin. Returns the exit code.
pub fn run(mut repl: Repl, history: PathBuf, attach: Option<String>) -> i32 {
    if let Some(run) = attach {
        repl.attach(&run);
    }
    if std::io::stdin().is_terminal() {
        interactive(repl, history)
    } else {
        piped(repl)
    }
}

fn interactive(mut repl: Repl, history: PathBuf) -> i32 {
    use rustyline::error::ReadlineError;
    let config = rustyline::Config::builder()
        .auto_add_history(false)
        .completion_type(rustyline::CompletionType::List)
        .build();
    let mut rl =
        match rustyline::Editor::<ReplHelper, rustyline::history::FileHistory>::with_config(config)
        {
            Ok(rl) => rl,
            Err(e) => {
                eprintln!("error: cannot start the line editor: {e}");
                return godwit_engine::exit::INTERNAL;
            }
        };
    rl.set_helper(Some(ReplHelper::new(repl.fns.clone(), repl.vars.clone())));
    let _ = rl.load_history(&history);
    println!(
        "godwit repl · world {} · read-only · :help for commands, Ctrl-D to leave",
        repl.world
    );
    let prompt = format!("godwit[{}]> ", repl.world);
    loop {
        match rl.readline(&prompt) {
            Ok(line) => {
                let _ = rl.add_history_entry(line.as_str());
                let mut answer: Option<String> = None;
                let wants_confirm = line.trim() == ":allow-mutations";
                if wants_confirm && repl.session.read_only() {
                    answer = rl.readline("allow primitives that change the world? recorded in the audit log [yes/no] ").ok();
                }
                let mut confirm = |_: &str| answer.take();
                if !repl.handle(&line, &mut confirm) {
                    break;
                }
            }
            Err(ReadlineError::Interrupted) => {
                println!("(Ctrl-C: line discarded; :quit or Ctrl-D to leave)")
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("error: {e}");
                break;
            }
        }
    }
    if let Some(dir) = history.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = rl.save_history(&history);
    godwit_engine::exit::OK
}

fn piped(mut repl: Repl) -> i32 {
    let parser = rhai::Engine::new_raw();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut buf = String::new();
    while let Some(Ok(line)) = lines.next() {
        if buf.is_empty() && line.trim_start().starts_with(':') {
            let mut next = || lines.next().and_then(Result::ok);
            let mut confirm = |q: &str| {
                eprint!("{q}");
                next()
            };
            if !repl.handle(&line, &mut confirm) {
                break;
            }
            continue;
        }
        buf.push_str(&line);
        buf.push('\n');
        if godwit_engine::session::needs_more_input(&parser, &buf) {
            continue;
        }
        let input = std::mem::take(&mut buf);
        repl.handle(&input, &mut |_| None);
    }
    if !buf.trim().is_empty() {
        repl.handle(&buf, &mut |_| None);
    }
    if repl.failures > 0 {
        godwit_engine::exit::INTERNAL
    } else {
        godwit_engine::exit::OK
    }
}
