//! [`Schema`] over operator-declared commands (the aws world's `[aws.schema_freeze]`, the
//! lab's freeze file): run with `sh -c` and `GODWIT_SCHEMA_DB` (the instance or cluster id),
//! `GODWIT_SCHEMA_REASON` on freeze, bounded by their timeout, the step's deadline and Ctrl-C
//! (`prim::command`). A command that exits non-zero fails the call with its output.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use godwit_engine::{Call, PrimitiveError};
use serde::{Deserialize, Serialize};

use super::{Freezing, Schema, no_hooks};

const A: &str = "schema";

/// The two commands, as the operator declares them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreezeHooks {
    /// Stops the team's schema migrations (e.g. pauses the Flyway job); returns once none runs.
    pub freeze: String,
    /// Lets them run again.
    pub unfreeze: String,
    /// How long a command may run (default `"5m"`).
    pub timeout: Option<String>,
}

pub struct HookSchema {
    /// `None`: no hooks declared; `why` says so.
    pub hooks: Option<FreezeHooks>,
    pub why: String,
    /// What this process froze (a resumed run asks again; the commands are idempotent).
    frozen: Mutex<BTreeSet<String>>,
}

impl HookSchema {
    pub fn new(hooks: Option<FreezeHooks>, why: impl Into<String>) -> HookSchema {
        HookSchema {
            hooks,
            why: why.into(),
            frozen: Mutex::new(BTreeSet::new()),
        }
    }

    fn how(&self) -> String {
        match &self.hooks {
            Some(h) => format!("freeze: `{}`; unfreeze: `{}`", h.freeze, h.unfreeze),
            None => self.why.clone(),
        }
    }

    fn run(
        &self,
        cx: &Call<'_>,
        op: &str,
        db: &str,
        freeze: bool,
        reason: &str,
    ) -> Result<Freezing, PrimitiveError> {
        let Some(h) = &self.hooks else {
            return Err(no_hooks(op, db, &self.why));
        };
        let mut env = vec![("GODWIT_SCHEMA_DB", db.to_string())];
        if freeze {
            env.push(("GODWIT_SCHEMA_REASON", reason.to_string()));
        }
        let output = crate::prim::command::run(
            cx,
            &crate::prim::command::Hook {
                area: A,
                op,
                what: format!("schema {op} of {db}"),
                command: if freeze { &h.freeze } else { &h.unfreeze },
                env,
                timeout: h.timeout.as_deref(),
                default_timeout: Duration::from_secs(300),
                fix: "fix the command (it runs with sh -c and GODWIT_SCHEMA_DB, GODWIT_SCHEMA_REASON); the step retries",
            },
        )?;
        let mut frozen = self.frozen.lock().unwrap();
        if freeze {
            frozen.insert(db.to_string());
        } else {
            frozen.remove(db);
        }
        Ok(Freezing {
            db: db.to_string(),
            declared: true,
            frozen: freeze,
            how: self.how(),
            output,
        })
    }
}

impl Schema for HookSchema {
    fn freeze_status(&self, _cx: &Call<'_>, db: &str) -> Result<Freezing, PrimitiveError> {
        Ok(Freezing {
            db: db.to_string(),
            declared: self.hooks.is_some(),
            frozen: self.frozen.lock().unwrap().contains(db),
            how: self.how(),
            output: String::new(),
        })
    }

    fn freeze(&self, cx: &Call<'_>, db: &str, reason: &str) -> Result<Freezing, PrimitiveError> {
        self.run(cx, "freeze", db, true, reason)
    }

    fn unfreeze(&self, cx: &Call<'_>, db: &str) -> Result<Freezing, PrimitiveError> {
        self.run(cx, "unfreeze", db, false, "")
    }
}
