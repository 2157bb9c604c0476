//! Human rendering of transcript events, with colour where it can be seen (anstream: a
//! terminal, no `NO_COLOR`), and a live progress line (indicatif, on stderr, hidden when stderr
//! is not a terminal) while anything waits: a step (its `wait_until_*` polls, its retries), a
//! gate (its reasons), an approval — with the time elapsed.

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use anstyle::Style;
use godwit_engine::clock::format_timestamp;
use godwit_engine::duration::format_duration;
use godwit_engine::runbook::short_hash;
use godwit_engine::transcript::{Event, Line, Progress, Sink, Waiting};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use crate::out::{BAD, DIM, OK, UNDO, WARN};

/// Prints transcript lines for people on stdout, and a spinner with the elapsed time and what
/// is awaited on stderr while a step or gate runs (never on a pipe or in CI logs, where only
/// changes of a gate's reasons are printed, as lines).
pub struct HumanSink {
    /// The progress line of the step or gate running now.
    bar: Mutex<Option<ProgressBar>>,
    /// Show primitive calls (`-v`).
    verbose: bool,
}

impl HumanSink {
    pub fn new(verbose: bool) -> Self {
        HumanSink {
            bar: Mutex::new(None),
            verbose,
        }
    }

    fn bar(&self) -> std::sync::MutexGuard<'_, Option<ProgressBar>> {
        self.bar.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Print a line above the progress line (which indicatif redraws below it).
    fn print(&self, text: &str) {
        let bar = self.bar();
        let write = || {
            let mut out = anstream::stdout().lock();
            // Losing the transcript on a closed pipe must not stop a migration.
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        };
        match bar.as_ref() {
            Some(b) => b.suspend(write),
            None => write(),
        }
    }

    /// A step or gate began: a fresh spinner, its clock at 0.
    fn start(&self, what: String) {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("  {spinner:.cyan} {elapsed:>4} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(what);
        bar.enable_steady_tick(Duration::from_millis(120));
        if let Some(old) = self.bar().replace(bar) {
            old.finish_and_clear();
        }
    }

    fn message(&self, what: String) {
        if let Some(b) = self.bar().as_ref() {
            b.set_message(what);
        }
    }

    fn stop(&self) {
        if let Some(b) = self.bar().take() {
            b.finish_and_clear();
        }
    }
}

fn dur(ms: i64) -> String {
    format_duration(Duration::from_millis(ms.max(0) as u64))
}

/// The colour of an event's line, if any.
fn style_of(event: &Event) -> Option<Style> {
    Some(match event {
        Event::StepCompleted { .. } | Event::GatePassed { .. } => OK,
        Event::StepFailed { .. } | Event::GateTimedOut { .. } | Event::UndoFailed { .. } => BAD,
        Event::AbortStarted { .. } | Event::Warning { .. } | Event::RunStopped { .. } => WARN,
        Event::UndoCompleted { .. } | Event::UndoSkipped { .. } => UNDO,
        Event::GatePoll { .. } | Event::StepReplayed { .. } | Event::GateReplayed { .. } => DIM,
        Event::RunFinished { outcome, .. } => match outcome {
            godwit_engine::journal::Outcome::Succeeded => OK,
            godwit_engine::journal::Outcome::RolledBack => WARN,
        },
        _ => return None,
    })
}

/// A value in one line, cut to `max` characters.
pub fn compact(v: &Value, max: usize) -> String {
    let s = match v {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "()".into(),
        other => other.to_string(),
    };
    if s.chars().count() > max {
        format!("{}…", s.chars().take(max).collect::<String>())
    } else {
        s
    }
}

/// One human line for an event, or `None` for events not worth a line.
pub fn describe(line: &Line, verbose: bool) -> Option<String> {
    Some(match &line.event {
        Event::RunStarted {
            run_id,
            runbook,
            version,
            hash,
            cluster,
            world,
        } => format!(
            "run {run_id} · runbook {runbook} {version} ({}) · cluster {cluster} · world {world} · {}",
            short_hash(hash),
            format_timestamp(line.at)
        ),
        Event::RunResumed {
            run_id,
            records,
            torn_tail,
            forced_runbook_change,
        } => {
            let mut s = format!("resume {run_id} · {records} journal records");
            if let Some(n) = torn_tail {
                s.push_str(&format!(
                    " · dropped a torn last line ({n} bytes) left by a crash mid-write"
                ));
            }
            if let Some(h) = forced_runbook_change {
                s.push_str(&format!(" · FORCED onto changed runbook {}", short_hash(h)));
            }
            s
        }
        Event::StepStarted { .. } => return None,
        Event::StepCompleted { name, result, ms } => {
            format!(
                "  ✓ step {name:<28} {:>7}  {}",
                format_duration(Duration::from_millis(*ms)),
                compact(result, 70)
            )
        }
        Event::StepReplayed { name } => format!("  ↺ step {name} (from journal)"),
        Event::StepRerun { name } => {
            format!("  ↻ step {name} started before a crash and never completed: running it again")
        }
        Event::StepRetrying {
            name,
            attempt,
            delay,
            error,
        } => {
            format!("  ⟳ step {name} attempt {attempt} failed ({error}); retrying in {delay}")
        }
        Event::StepFailed { name, error } => format!("  ✗ step {name} failed: {error}"),
        Event::GateStarted {
            name,
            every,
            hold,
            timeout,
        } => {
            format!("  ◇ gate {name} (every {every}, hold {hold}, timeout {timeout})")
        }
        Event::GatePoll {
            name,
            poll,
            passing,
            checks,
            streak,
            why,
        } => {
            let state = if passing == checks {
                format!("passing {streak} in a row")
            } else {
                format!("closed, {passing}/{checks} checks pass")
            };
            format!("    … gate {name} poll {poll}: {state}: {}", why.join("; "))
        }
        Event::GatePassed {
            name,
            polls,
            waited,
            evidence,
        } => {
            let on = if evidence.is_empty() {
                String::new()
            } else {
                format!(" · evidence: {}", evidence.join(", "))
            };
            format!("  ✓ gate {name} passed after {polls} polls ({waited}){on}")
        }
        Event::GateReplayed { name } => format!("  ↺ gate {name} (from journal)"),
        Event::GateTimedOut { name, polls, why } => {
            format!(
                "  ✗ gate {name} failed after {polls} polls: {}",
                why.join("; ")
            )
        }
        Event::Primitive {
            area,
            op,
            args,
            ok,
            result,
            ms,
        } => {
            if !verbose {
                return None;
            }
            format!(
                "      {} {area}::{op}({}) → {} ({ms} ms)",
                if *ok { "·" } else { "!" },
                compact(args, 60),
                compact(result, 60)
            )
        }
        Event::Phase { name, replaying } => {
            if *replaying {
                return None;
            }
            format!("── {name} ──")
        }
        Event::Print { message, replaying } => {
            if *replaying {
                return None; // printed by the process that ran those steps
            }
            format!("    | {message}")
        }
        Event::Warning { message } => format!("  ! {message}"),
        Event::AbortStarted { reason } => format!("  ■ aborting: {reason}; rolling back"),
        Event::UndoStarted { .. } => return None,
        Event::UndoCompleted { step } => format!("  ↩ undid {step}"),
        Event::UndoSkipped { step } => format!("  ↩ {step} was already undone"),
        Event::UndoFailed { step, error } => format!("  ✗ undo of {step} failed: {error}"),
        Event::RunFinished { outcome, detail } => format!(
            "■ {} · {}",
            serde_json::to_value(outcome)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            compact(detail, 100)
        ),
        Event::RunStopped { reason } => format!("■ stopped: {reason}"),
    })
}

impl Sink for HumanSink {
    fn line(&self, line: &Line) {
        match &line.event {
            Event::StepStarted { name } => self.start(format!("step {name}")),
            Event::GateStarted { name, .. } => self.start(format!("gate {name}")),
            Event::StepRerun { name } => self.start(format!("step {name} (again)")),
            Event::StepCompleted { .. }
            | Event::StepFailed { .. }
            | Event::GatePassed { .. }
            | Event::GateTimedOut { .. }
            | Event::AbortStarted { .. }
            | Event::RunFinished { .. }
            | Event::RunStopped { .. } => self.stop(),
            _ => {}
        }
        if let Some(text) = describe(line, self.verbose) {
            match style_of(&line.event) {
                Some(style) => self.print(&crate::out::styled(style, text)),
                None => self.print(&text),
            }
        }
    }

    fn progress(&self, p: &Progress) {
        self.message(format!(
            "gate {} · poll {} · {} of {} · {}",
            p.gate,
            p.poll,
            dur(p.waited_ms),
            dur(p.timeout_ms),
            p.why.join("; ")
        ));
    }

    fn waiting(&self, w: &Waiting) {
        let unit = w
            .unit
            .as_deref()
            .map(|u| format!("step {u} · "))
            .unwrap_or_default();
        // Once per wait, as a line: on a pipe (CI logs) it is all there is, and on a narrow
        // terminal the progress line below cuts `what` short.
        if w.polls == 1 {
            self.print(&crate::out::styled(
                DIM,
                format!(
                    "  … {unit}{} waits for {} (up to {})",
                    w.call,
                    w.what,
                    dur(w.timeout_ms)
                ),
            ));
        }
        // The numbers first: a terminal narrower than the line cuts its end.
        self.message(format!(
            "{unit}{} · waited {} of {} (poll {}) · {}",
            w.call,
            dur(w.waited_ms),
            dur(w.timeout_ms),
            w.polls,
            w.what
        ));
    }
}

/// The `godwit runs` table of [`crate::state::list_runs`] rows (`no runs in <root>` when there
/// are none): columns fit the terminal, a long WHERE wraps inside its column instead of pushing
/// the next row's columns out of line.
pub fn runs_table(rows: &[Value], root: &std::path::Path) -> String {
    if rows.is_empty() {
        return format!("no runs in {}", root.display());
    }
    let mut table = comfy_table::Table::new();
    table
        .load_style(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
        .set_header([
            "RUN", "RUNBOOK", "CLUSTER", "WORLD", "STARTED", "STATUS", "WHERE",
        ]);
    for r in rows {
        let s = |k: &str| r[k].as_str().unwrap_or("-").to_string();
        let status = match r["driven_by"].as_str() {
            Some(holder) => format!("{} ({holder})", s("status")),
            None => s("status"),
        };
        table.add_row([
            s("run_id"),
            s("runbook"),
            s("cluster"),
            s("world"),
            s("started"),
            status,
            s("where"),
        ]);
    }
    for c in table.column_iter_mut() {
        c.set_padding((0, 2));
    }
    table.trim_fmt()
}
