//! Human rendering of transcript events (and a live progress line for long gate waits).

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use godwit_engine::clock::format_timestamp;
use godwit_engine::duration::format_duration;
use godwit_engine::runbook::short_hash;
use godwit_engine::transcript::{Event, Line, Progress, Sink};
use serde_json::Value;

/// Prints transcript lines for people. On a terminal, a single progress line is redrawn while a
/// gate waits; elsewhere (CI logs, pipes) only changes of a gate's reasons are printed.
pub struct HumanSink {
    tty: bool,
    progress_shown: Mutex<bool>,
    /// Show primitive calls (`-v`).
    verbose: bool,
}

impl HumanSink {
    pub fn new(verbose: bool) -> Self {
        HumanSink {
            tty: std::io::stdout().is_terminal(),
            progress_shown: Mutex::new(false),
            verbose,
        }
    }

    fn print(&self, text: &str) {
        let mut shown = self
            .progress_shown
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut out = std::io::stdout().lock();
        if *shown {
            let _ = write!(out, "\r\x1b[2K");
            *shown = false;
        }
        let _ = writeln!(out, "{text}");
    }
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
                format_duration(std::time::Duration::from_millis(*ms)),
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
        } => {
            format!("  ✓ gate {name} passed after {polls} polls ({waited})")
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
        if let Some(text) = describe(line, self.verbose) {
            self.print(&text);
        }
    }

    fn progress(&self, p: &Progress) {
        if !self.tty {
            return;
        }
        let waited = format_duration(std::time::Duration::from_millis(p.waited_ms.max(0) as u64));
        let timeout = format_duration(std::time::Duration::from_millis(p.timeout_ms.max(0) as u64));
        let text = format!(
            "    … gate {} · {waited} of {timeout} · poll {} · {}",
            p.gate,
            p.poll,
            p.why.join("; ")
        );
        let width = 120;
        let text: String = text.chars().take(width).collect();
        let mut shown = self
            .progress_shown
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "\r\x1b[2K{text}");
        let _ = out.flush();
        *shown = true;
    }
}

/// The `godwit runs` table of [`crate::state::list_runs`] rows (`no runs in <root>` when there
/// are none).
pub fn runs_table(rows: &[Value], root: &std::path::Path) -> String {
    if rows.is_empty() {
        return format!("no runs in {}", root.display());
    }
    let mut lines = vec![format!(
        "{:<38} {:<22} {:<14} {:<14} {:<16} WHERE",
        "RUN", "RUNBOOK", "CLUSTER", "WORLD", "STATUS"
    )];
    for r in rows {
        let s = |k: &str| r[k].as_str().unwrap_or("-").to_string();
        lines.push(format!(
            "{:<38} {:<22} {:<14} {:<14} {:<16} {}",
            s("run_id"),
            s("runbook"),
            s("cluster"),
            s("world"),
            s("status"),
            s("where")
        ));
    }
    lines.join("\n")
}
