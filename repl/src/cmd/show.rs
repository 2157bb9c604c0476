//! `godwit show`: one run as its journal tells it.

use godwit_engine::clock::format_timestamp;
use godwit_engine::journal::file::FileStore;
use godwit_engine::plan::{FlowOutcome, Plan, UndoState};
use godwit_engine::runbook::short_hash;
use godwit_engine::{EngineError, JournalStore, exit};
use serde_json::{Value, json};

use crate::render::compact;
use crate::session::{Failure, invalid};
use crate::state::{resolve_run, run_status};

/// Show one run: runbook, parameters, steps with their results, where it stands.
#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    pub run: String,
    #[arg(long)]
    pub json: bool,
}

impl ShowArgs {
    pub fn execute(self, store: &FileStore) -> Result<i32, Failure> {
        let id = resolve_run(store, &self.run).map_err(invalid)?;
        let loaded = store.read(&id).map_err(EngineError::from)?;
        let plan = Plan::from_records(&loaded.records);
        let status = run_status(store, &id, &plan);
        if self.json {
            let mut v = serde_json::to_value(&plan).unwrap_or(Value::Null);
            v["run_id"] = json!(id);
            v["status"] = json!(status);
            v["where"] = json!(plan.whereabouts());
            println!("{v}");
            return Ok(exit::OK);
        }
        let Some(s) = &plan.started else {
            return Err(invalid(format!("run {id} has no run-started record")));
        };
        println!("run      {id}");
        println!(
            "runbook  {} {} ({}) {}",
            s.runbook.name,
            s.runbook.version,
            short_hash(&s.runbook.hash),
            s.runbook.path
        );
        for m in &s.runbook.modules {
            println!("         import \"{}\" ({})", m.import, short_hash(&m.hash));
        }
        println!("cluster  {}   world {}", s.cluster, s.world);
        println!("params   {}", compact(&s.params, 100));
        println!(
            "started  {}   last activity {}   resumed {} time(s)",
            format_timestamp(s.at),
            format_timestamp(plan.last_at),
            plan.resumes
        );
        println!("status   {status} — {}", plan.whereabouts());
        println!();
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
            println!("{line}");
        }
        if let Some(reason) = &plan.abort {
            println!("\n  rollback: {reason}");
            for step in &plan.undo_order {
                let st = match plan.undo.get(step) {
                    Some(UndoState::Completed) => "undone".to_string(),
                    Some(UndoState::Started) => "undo started, not completed".to_string(),
                    Some(UndoState::Failed { message }) => format!("undo failed: {message}"),
                    None => "pending".into(),
                };
                println!("  ↩ {step:<34} {st}");
            }
        }
        if let Some((_, detail)) = &plan.finished {
            println!("\n  result: {}", compact(detail, 200));
        }
        Ok(exit::OK)
    }
}
