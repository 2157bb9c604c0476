//! `godwit show`: one run as its journal tells it.

use godwit_engine::clock::format_timestamp;
use godwit_engine::plan::{FlowOutcome, Plan, UndoState};
use godwit_engine::runbook::short_hash;
use godwit_engine::{EngineError, JournalStore, exit};
use serde_json::{Value, json};

use crate::context::Context;
use crate::out::line as say;
use crate::render::compact;
use crate::session::{Failure, invalid};
use crate::state::{resolve_run, run_status, status_text};

/// Show one run: runbook, parameters, steps with their results, where it stands.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  godwit show last
  godwit show 01JD3X -o json | jq .params")]
pub struct ShowArgs {
    /// Run id (or a unique prefix, or `last`).
    pub run: String,
}

impl ShowArgs {
    pub fn execute(self, ctx: &Context) -> Result<i32, Failure> {
        let store = ctx.store()?;
        let store = &store;
        let id = resolve_run(store, &self.run).map_err(invalid)?;
        let loaded = store.read(&id).map_err(EngineError::from)?;
        let plan = Plan::from_records(&loaded.records);
        let status = status_text(store, &id, &plan);
        if ctx.json() {
            let (word, holder) = run_status(store, &id, &plan);
            let mut v = serde_json::to_value(&plan).unwrap_or(Value::Null);
            v["run_id"] = json!(id);
            v["status"] = json!(word);
            v["driven_by"] = json!(holder);
            v["params"] = plan.params();
            v["where"] = json!(plan.whereabouts());
            crate::out::json(&v);
            return Ok(exit::OK);
        }
        let Some(s) = &plan.started else {
            return Err(invalid(format!("run {id} has no run-started record")));
        };
        say(format!("run      {id}"));
        say(format!(
            "runbook  {} {} ({}) {}",
            s.runbook.name,
            s.runbook.version,
            short_hash(&s.runbook.hash),
            s.runbook.path
        ));
        for m in &s.runbook.modules {
            say(format!(
                "         import \"{}\" ({})",
                m.import,
                short_hash(&m.hash)
            ));
        }
        say(format!("cluster  {}   world {}", s.cluster, s.world));
        say(format!("params   {}", compact(&plan.params(), 100)));
        say(format!(
            "started  {}   last activity {}   resumed {} time(s)",
            format_timestamp(s.at),
            format_timestamp(plan.last_at),
            plan.resumes
        ));
        say(format!("status   {status} — {}", plan.whereabouts()));
        say("");
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
            say(line);
        }
        if let Some(reason) = &plan.abort {
            say(format!("\n  rollback: {reason}"));
            for step in &plan.undo_order {
                let st = match plan.undo.get(step) {
                    Some(UndoState::Completed) => "undone".to_string(),
                    Some(UndoState::Started) => "undo started, not completed".to_string(),
                    Some(UndoState::Failed { message }) => format!("undo failed: {message}"),
                    None => "pending".into(),
                };
                say(format!("  ↩ {step:<34} {st}"));
            }
        }
        if let Some((_, detail)) = &plan.finished {
            say(format!("\n  result: {}", compact(detail, 200)));
        }
        Ok(exit::OK)
    }
}
