//! [`Schema`] over the simulator: the team's migration tool is modelled — frozen, a
//! `target-ddl` fault waits until the unfreeze and is applied then.

use godwit_engine::{Call, PrimitiveError};

use super::{Freezing, Schema};
use crate::prim::not_found;
use crate::sim::Sim;

const A: &str = "schema";
const HOW: &str = "the simulated team's migration tool (a target-ddl fault waits while frozen)";

fn status(db: &str, frozen: bool) -> Freezing {
    Freezing {
        db: db.to_string(),
        declared: true,
        frozen,
        how: HOW.into(),
        output: String::new(),
    }
}

fn known(st: &crate::sim::SimState, op: &str, db: &str) -> Result<(), PrimitiveError> {
    if st.rds.instances.contains_key(db) || st.rds.clusters.contains_key(db) {
        return Ok(());
    }
    Err(not_found(
        A,
        op,
        format!("no database endpoint {db}"),
        "pass an RDS instance id or an Aurora cluster id",
    ))
}

impl Schema for Sim {
    fn freeze_status(&self, cx: &Call<'_>, db: &str) -> Result<Freezing, PrimitiveError> {
        let st = self.api(cx, A, "freeze_status")?;
        known(&st, "freeze_status", db)?;
        Ok(status(db, st.logical.frozen.contains(db)))
    }

    fn freeze(&self, cx: &Call<'_>, db: &str, reason: &str) -> Result<Freezing, PrimitiveError> {
        let mut st = self.api(cx, A, "freeze")?;
        known(&st, "freeze", db)?;
        if st.logical.frozen.insert(db.to_string()) {
            st.note(format!("schema migrations of {db} frozen: {reason}"));
        }
        Ok(status(db, true))
    }

    fn unfreeze(&self, cx: &Call<'_>, db: &str) -> Result<Freezing, PrimitiveError> {
        let mut st = self.api(cx, A, "unfreeze")?;
        known(&st, "unfreeze", db)?;
        if st.logical.frozen.remove(db) {
            st.note(format!("schema migrations of {db} unfrozen"));
        }
        // The migration that waited runs now.
        if st.logical.ddl_waiting.remove(db) {
            st.apply_target_ddl(db);
        }
        Ok(status(db, false))
    }
}
