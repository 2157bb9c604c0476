//! What a rollback after promotion needs from a finished cutover, read from its journal: the
//! records of the standard runbook's rollback window (runbooks/lib/reverse.rhai) — whether the
//! reverse replication started, the source's own security groups the fence recorded, the
//! application roles — as the `rollback` runbook's parameters. Used by `godwit rollback RUN`
//! and the lab's round trip (cutover, then rollback).

use godwit_engine::plan::{FlowOutcome, Plan, Status};
use serde_json::Value;

/// The steps whose results record the reverse path (lib/reverse.rhai).
const PATH_STEP: &str = "create-reverse-path";
const SUBSCRIBE_STEP: &str = "subscribe-source-to-target";

/// What the rollback run starts from, read from the forward run's journal.
#[derive(Debug, PartialEq)]
pub struct Window {
    pub cluster: String,
    pub world: String,
    pub runbook: std::path::PathBuf,
    pub params: serde_json::Map<String, Value>,
}

/// The rollback window of the run journaled in `plan`, or why there is none — said so the
/// operator knows what to do instead.
pub fn window(id: &str, plan: &Plan) -> Result<Window, String> {
    let Some(started) = plan.started.as_ref() else {
        return Err(format!(
            "run {id} never began: there is nothing to roll back"
        ));
    };
    match plan.status() {
        Status::Succeeded => {}
        Status::InProgress | Status::RollingBack => {
            return Err(format!(
                "run {id} has not finished: `godwit abort {id}` rolls it back (after promotion, \
                 the undo of its reverse replication is this same zero-loss rollback)"
            ));
        }
        Status::RolledBack => {
            return Err(format!(
                "run {id} was already rolled back: its clients are on {}",
                started.cluster
            ));
        }
    }
    let completed = |step: &str| {
        plan.flow.iter().find_map(|f| match &f.outcome {
            FlowOutcome::Completed { result, .. } if f.name == step => Some(result),
            _ => None,
        })
    };
    let (Some(reverse), Some(subscribed)) = (completed(PATH_STEP), completed(SUBSCRIBE_STEP))
    else {
        // Preflight says why when it decided against the window (`auto`: a table without a key).
        if let Some(why) = completed("preflight")
            .and_then(|p| p.get("reverse"))
            .filter(|r| r.get("on") == Some(&Value::Bool(false)))
            .and_then(|r| r.get("why"))
            .and_then(Value::as_str)
        {
            return Err(format!(
                "run {id} has no rollback window: its preflight decided against one ({why}); \
                 routing back would lose Aurora's writes"
            ));
        }
        return Err(format!(
            "run {id} has no rollback window: it ran without reverse replication \
             (reverse_replication=off, no database access, or a journal from before it existed); \
             routing back would lose Aurora's writes"
        ));
    };
    if let Some(why) = [reverse, subscribed]
        .iter()
        .find_map(|r| r.get("failed").and_then(Value::as_str))
    {
        return Err(format!(
            "run {id} has no rollback window: its reverse replication could not start ({why})"
        ));
    }
    let list = |key: &str| -> String {
        reverse
            .get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default()
    };
    let groups = list("source_groups");
    if groups.is_empty() {
        return Err(format!(
            "run {id}'s reverse step recorded no security groups of the source: pass them with \
             `godwit run rollback --cluster {} --set source_security_groups=sg-…`",
            started.cluster
        ));
    }
    let mut params = serde_json::Map::new();
    if let Some(t) = started.params.get("target_cluster") {
        params.insert("target_cluster".into(), t.clone());
    }
    params.insert("source_security_groups".into(), groups.into());
    let carried = list("carried_tables");
    if !carried.is_empty() {
        params.insert("carried_tables".into(), carried.into());
    }
    let roles = list("source_roles");
    if !roles.is_empty() {
        params.insert("source_roles".into(), roles.into());
    }
    // Shadow reads: the readers' route went to Aurora with the cluster (step `shadow-reads`
    // names it); it comes back too.
    if let Some(v) = completed("shadow-reads")
        .and_then(|r| r.get("route"))
        .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
    {
        params.insert("read_route".into(), v.clone());
    }
    for key in ["health_every"] {
        if let Some(v) = started.params.get(key) {
            params.insert(key.into(), v.clone());
        }
    }
    if let Some(v) = started.params.get("rollback_apply_timeout") {
        params.insert("apply_timeout".into(), v.clone());
    }
    let runbook = std::path::Path::new(&started.runbook.path)
        .parent()
        .map(|d| d.join("rollback.rhai"))
        .unwrap_or_else(|| "rollback.rhai".into());
    Ok(Window {
        cluster: started.cluster.clone(),
        world: started.world.clone(),
        runbook,
        params,
    })
}
