//! Faults from the scenario: when they fire (a virtual time, or the first world call inside a
//! named step) and what firing does.

use godwit_engine::clock::Millis;
use serde::{Deserialize, Serialize};

use super::SimState;
use super::scenario::FaultKind;
use super::transitions::Change;

/// A fault from the scenario and whether it has fired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultState {
    pub kind: FaultKind,
    pub at: Option<Millis>,
    pub step: Option<String>,
    pub lasts: Option<Millis>,
    pub target: Option<String>,
    pub value: Option<f64>,
    /// When it fired (`None`: not yet).
    pub fired_at: Option<Millis>,
}

impl FaultState {
    /// Fired and not yet over.
    pub fn active(&self, now: Millis) -> bool {
        match self.fired_at {
            Some(t) => now >= t && self.lasts.is_none_or(|l| now < t + l),
            None => false,
        }
    }
}

impl SimState {
    pub fn fire_time_faults(&mut self) {
        let now = self.now;
        let due: Vec<usize> = (0..self.faults.len())
            .filter(|&i| {
                let f = &self.faults[i];
                f.fired_at.is_none() && f.at.is_some_and(|a| a <= now)
            })
            .collect();
        for i in due {
            self.fire(i);
        }
    }

    /// Fire the faults bound to `step` (called when a primitive runs inside that step).
    pub fn enter_step(&mut self, step: &str) {
        let due: Vec<usize> = (0..self.faults.len())
            .filter(|&i| {
                let f = &self.faults[i];
                f.fired_at.is_none() && f.step.as_deref() == Some(step)
            })
            .collect();
        for i in due {
            self.fire(i);
        }
    }

    /// `ALTER TABLE <hot table> ADD COLUMN note text` on cluster `c` now.
    pub(crate) fn apply_target_ddl(&mut self, c: &str) {
        let at = self.db_lsn(c);
        self.logical.ddl_at.entry(c.to_string()).or_insert(at);
        let table = self
            .sc
            .source
            .tables
            .first()
            .map_or_else(String::new, |t| t.name.clone());
        self.note(format!(
            "ALTER TABLE {table} ADD COLUMN {} on {c}",
            super::logical::DDL_COLUMN
        ));
    }

    pub(super) fn fire(&mut self, i: usize) {
        // A fault may change sessions (a long transaction, a crash).
        self.summary.fresh = false;
        self.faults[i].fired_at = Some(self.now);
        let f = self.faults[i].clone();
        let name = serde_json::to_value(f.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        match &f.target {
            Some(t) => self.note(format!("fault {name} ({t}) fired")),
            None => self.note(format!("fault {name} fired")),
        }
        match f.kind {
            FaultKind::StaleLogicalSlot => {
                let now = self.now;
                if let Some(s) = self
                    .slots
                    .iter_mut()
                    .find(|s| Some(&s.name) == f.target.as_ref())
                {
                    s.active = false;
                    s.inactive_since = Some(now);
                }
            }
            FaultKind::LongRunningTransaction => {
                let src = self.sc.source.id.clone();
                let now = self.now;
                if let Some(s) = self
                    .sessions
                    .iter_mut()
                    .find(|s| s.db == src && s.application)
                {
                    s.state = "idle in transaction".into();
                    s.xact_start = Some(now);
                }
            }
            FaultKind::EnvoyNodeDisconnect => {
                self.fire_net_fault(f.kind, f.target.as_deref());
            }
            FaultKind::TargetDdl => {
                // `ALTER TABLE .. ADD COLUMN` on a promoted cluster (a replica is read-only):
                // logical replication does not carry it, and the source lacks the column.
                let clusters: Vec<String> = self
                    .rds
                    .clusters
                    .keys()
                    .filter(|c| f.target.as_ref().is_none_or(|t| t == *c) && self.writable(c))
                    .cloned()
                    .collect();
                if clusters.is_empty() {
                    self.note("target-ddl: no writable cluster to alter; nothing changed");
                }
                for c in clusters {
                    // The team's migration tool waits while its migrations are frozen; a manual
                    // ALTER (`value = 1`) does not.
                    if self.logical.frozen.contains(&c) && f.value != Some(1.0) {
                        self.logical.ddl_waiting.insert(c.clone());
                        self.note(format!(
                            "target-ddl on {c}: schema migrations are frozen; it waits for the unfreeze"
                        ));
                        continue;
                    }
                    self.apply_target_ddl(&c);
                }
            }
            FaultKind::SourceDdl => {
                let src = self.sc.source.id.clone();
                if self.logical.frozen.contains(&src) && f.value != Some(1.0) {
                    self.logical.ddl_waiting.insert(src.clone());
                    self.note(format!(
                        "source-ddl on {src}: schema migrations are frozen; it waits for the unfreeze"
                    ));
                } else {
                    self.apply_target_ddl(&src);
                }
            }
            FaultKind::EngineCrash => {
                let src = self.sc.source.id.clone();
                self.drop_sessions(&src);
                if let Some(inst) = self.rds.instances.get_mut(&src) {
                    inst.status = "rebooting".into();
                }
                let at = self.now + self.tm.reboot;
                self.rds.schedule(at, Change::RebootDone { id: src });
            }
            _ => {}
        }
    }

    /// The fault of `kind` active now, if any.
    pub fn fault(&self, kind: FaultKind) -> Option<&FaultState> {
        self.faults
            .iter()
            .find(|f| f.kind == kind && f.active(self.now))
    }
}
