//! `godwit abort`: roll a run back on purpose — the deliberate opposite of Ctrl-C.

use godwit_engine::journal::{JournalError, Request};
use godwit_engine::plan::Plan;
use godwit_engine::{Clock, EngineError, JournalStore, ResumeRequest, SystemClock, exit};
use serde_json::json;

use crate::context::Context;
use crate::session::{Driving, Failure, Output, audited, drive, finish, invalid};
use crate::state::{resolve_run, world_state_file};

/// Roll a run back: run the undos of its completed steps in reverse, journaled (exit 3 when
/// every undo ran). A run another process drives is asked to (it rolls back at its next safe
/// point: before its next step, between gate polls, while it waits for an approval); a stopped
/// run is rolled back here. A step that was in progress when the run stopped runs to its end
/// first, so that its undo is registered.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  godwit abort last --reason \"the window closed\"
  godwit abort 01JD3X                    declines a run waiting for `godwit approve`

Ctrl-C stops a run and keeps it resumable; abort rolls it back. After promotion the rollback stops
at undos that would fork the data unless the run was resumed with --set accept_fork=true.")]
pub struct AbortArgs {
    /// Run id (or a unique prefix, or `last`).
    pub run: String,
    /// Why, recorded in the journal with who asked.
    #[arg(long, default_value = "no reason given")]
    pub reason: String,
    #[command(flatten)]
    pub out: Output,
}

impl AbortArgs {
    pub fn execute(self, ctx: &Context) -> Result<i32, Failure> {
        let out = self.out.clone().with_format(ctx);
        let store = ctx.store()?;
        let state_dir = ctx.state_dir()?;
        let id = resolve_run(&store, &self.run).map_err(invalid)?;
        let plan = Plan::from_records(&store.read(&id).map_err(EngineError::from)?.records);
        let Some(started) = plan.started.as_ref() else {
            return Err(invalid(format!(
                "run {id} has no run-started record: it never began, so there is nothing to roll back"
            )));
        };
        if plan.finished.is_some() {
            return Err(EngineError::AlreadyFinished {
                run_id: id,
                status: plan.status().as_str().into(),
                nothing_to: "abort",
            }
            .into());
        }
        if let Some(holder) = store.holder(&id) {
            return self.ask(ctx, &store, &id, &holder);
        }
        let world_name = started.world.clone();
        let state = world_state_file(&state_dir, &id);
        // Held until the drive ends: never the store's files fetched over a world another
        // process on this machine still drives.
        let _world = crate::state::claim_world(&id, &world_name, &state).map_err(invalid)?;
        crate::state::fetch_world(&store, &id, &state).map_err(invalid)?;
        crate::state::follow_world(&store, &id, &state);
        let world = ctx
            .worlds
            .build(&world_name, Some(&state))
            .map_err(|e| invalid(format!("run {id} needs world '{world_name}': {e}")))?;
        let audit = world.audit.clone();
        let driving = Driving::start()?;
        let runner = driving.runner(&store, world, &out);
        let req = ResumeRequest {
            run_id: id.clone(),
            abort: Some(self.reason.clone()),
            ..ResumeRequest::default()
        };
        match drive(&driving.rt, move || runner.resume_with(req)) {
            Ok(report) => Ok(audited(finish(&report, &out), audit.as_deref())),
            // Another process took the run over meanwhile: the request is recorded for it.
            Err(Failure(code, _)) if code == exit::LOCKED && store.holder(&id).is_some() => {
                let holder = store.holder(&id).unwrap_or_default();
                self.told(ctx, &id, &holder);
                Ok(exit::OK)
            }
            Err(f) => Err(f),
        }
    }

    /// Another process drives the run: record the request for it.
    fn ask(
        &self,
        ctx: &Context,
        store: &crate::state::Store,
        id: &str,
        holder: &str,
    ) -> Result<i32, Failure> {
        store
            .request(
                id,
                &Request::Abort {
                    reason: self.reason.clone(),
                    by: Request::operator(),
                    at: SystemClock.now_ms(),
                },
            )
            .map_err(|e: JournalError| Failure::from(EngineError::from(e)))?;
        self.told(ctx, id, holder);
        Ok(exit::OK)
    }

    fn told(&self, ctx: &Context, id: &str, holder: &str) {
        if ctx.json() {
            crate::out::json(&json!({ "run_id": id, "abort": "requested", "driven_by": holder }));
        } else {
            crate::out::line(format!(
                "abort of run {id} requested; the process driving it ({holder}) rolls back at its next safe point (before its next step, between gate polls, or while it waits for an approval); follow with `godwit show {id}`"
            ));
        }
    }
}
