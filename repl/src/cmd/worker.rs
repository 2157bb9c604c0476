//! `godwit worker`: take runs from the shared PostgreSQL store's queue and drive them — queued
//! runs, and runs whose worker died (its heartbeat and the run's lease expired). Each run is an
//! ordinary durable run, started or resumed through the same `Runner` as `godwit run` and
//! `godwit resume`; the store's lease and fencing token keep two workers from ever writing one
//! journal (docs/store.md).

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use godwit_engine::duration::parse_duration;
use godwit_engine::journal::JournalError;
use godwit_engine::{
    EngineError, JournalStore, ResumeRequest, RunReport, RunStatus, StartRequest, exit,
};
use godwit_pgstore::{PgStore, Settle, Taken};
use serde_json::json;

use crate::config::{find_runbook, write_settings};
use crate::context::Context;
use crate::session::{Driving, Failure, Output, invalid};
use crate::state::{Store, world_state_file};

/// What became of a take ([`WorkerArgs::launch`]).
enum Launch {
    /// Its run is driven on a blocking thread.
    Started,
    /// It could not start: its queue row is held with the reason.
    Held,
    /// Its world is in use here by a job that has not ended: back in the queue.
    Deferred,
}

/// Drive runs from the shared PostgreSQL store's queue, on this machine, until stopped.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  godwit worker --store postgres://godwit@store.internal:5432/godwit
  godwit worker --store postgres://godwit@store.internal/godwit --jobs 8 --lease 30s
  godwit run rds-to-aurora --cluster orders-db --world sim --store postgres://… --enqueue
  godwit worker --status --store postgres://…
  godwit worker --notifications --store postgres://…

Runs are queued with `godwit run … --enqueue`. Workers resolve the runbook path and build the
world on their own machine (the journal pins the runbook's hash; a simulated world's state is kept
under --state-dir, so workers that share simulated runs share a state directory).

SIGTERM or Ctrl-C drains the worker: it takes nothing more, its runs stop at their next safe point
(nothing rolled back) and go back to the queue for another worker. A worker that dies or is paused
is noticed when its heartbeat is older than its lease; its runs are taken over then, and if it
wakes up it is refused at its next journal append.")]
pub struct WorkerArgs {
    /// Runs driven at once by this worker.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: u32,
    /// This worker's lease, for its runs and itself: how long after its last heartbeat another
    /// worker may take its runs over. Heartbeats come every third of it. [default: the
    /// settings file's store.lease, else 30s]
    #[arg(long, value_parser = parse_duration)]
    pub lease: Option<Duration>,
    /// How often an idle worker looks for work.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub poll: Duration,
    /// Exit once nothing in the queue is waiting or running (batch jobs, tests).
    #[arg(long)]
    pub exit_when_done: bool,
    /// Print the queue and exit.
    #[arg(long)]
    pub status: bool,
    /// Print the last 50 notifications (target, state, attempts, last error) and exit.
    #[arg(long, conflicts_with = "status")]
    pub notifications: bool,
    #[command(flatten)]
    pub out: Output,
}

/// A run this worker drove, as it ended.
struct Finished {
    taken: Taken,
    result: Result<RunReport, EngineError>,
    findings: Vec<String>,
}

impl WorkerArgs {
    pub fn execute(self, ctx: &Context) -> Result<i32, Failure> {
        let Store::Pg(store) = ctx.store_with(self.lease)? else {
            return Err(invalid(
                "godwit worker needs a shared store: pass --store postgres://USER@HOST:PORT/DB \
                 (or set GODWIT_STORE, or store.url in the settings file); workers share runs through \
                 PostgreSQL",
            ));
        };
        if self.status {
            return self.print_status(ctx, &store);
        }
        if self.notifications {
            return print_notifications(ctx, &store);
        }
        let state_dir = ctx.state_dir()?;
        let driving = Driving::start()?;
        let me = godwit_pgstore::holder_id();
        let heartbeat = store.register_worker(&me).map_err(EngineError::from)?;
        // Notifications: runs hand theirs to the outbox thread; this worker delivers any
        // worker's due ones (crate::notify).
        let outbox = crate::notify::Outbox::start(store.clone());
        let deliverer = crate::notify::Deliverer::start(store.clone(), me.clone(), self.poll);
        crate::out::note(format!(
            "worker {me} on {}: up to {} runs at once, lease {:?}",
            store.place(),
            self.jobs,
            store.options().lease
        ));
        let (tx, rx) = mpsc::channel::<Finished>();
        let mut in_flight = 0u32;
        loop {
            let draining = driving.cancel.is_cancelled();
            if !draining {
                self.advance_fleets(ctx, &store);
            }
            while !draining && in_flight < self.jobs {
                match store.take(&me) {
                    Ok(Some(taken)) => {
                        match self
                            .launch(ctx, &driving, &store, &state_dir, taken, &tx, &me, &outbox)
                        {
                            Launch::Started => in_flight += 1,
                            Launch::Held => {}
                            // Back in the queue: taking again now would take it again.
                            Launch::Deferred => break,
                        }
                    }
                    Ok(None) => break,
                    // The store hiccuped: look again at the next poll.
                    Err(e) => {
                        crate::out::error(&e.to_string());
                        break;
                    }
                }
            }
            if in_flight == 0
                && (draining || (self.exit_when_done && store.open_jobs().unwrap_or(1) == 0))
            {
                break;
            }
            if let Ok(done) = rx.recv_timeout(self.poll) {
                in_flight -= 1;
                self.settle(ctx, &store, &me, done, &outbox);
            }
        }
        // The last runs' news: into the store, then out (each within a bound; what is left
        // waits for another worker).
        outbox.finish(Duration::from_secs(5));
        deliverer.finish(Duration::from_secs(10));
        drop(heartbeat);
        crate::out::note(format!("worker {me} stopped"));
        Ok(exit::OK)
    }

    /// Build the taken run's world and drive it on a blocking thread, holding the run's world
    /// files ([`crate::state::lock_world`]) until the drive ends.
    #[allow(clippy::too_many_arguments)]
    fn launch(
        &self,
        ctx: &Context,
        driving: &Driving,
        store: &PgStore,
        state_dir: &Path,
        taken: Taken,
        tx: &mpsc::Sender<Finished>,
        me: &str,
        outbox: &crate::notify::Outbox,
    ) -> Launch {
        let job = &taken.job;
        let lock = match crate::state::lock_world_of(
            &job.world,
            &world_state_file(state_dir, &job.run_id),
        ) {
            Ok(Some(lock)) => lock,
            Ok(None) => {
                // A job of this run still drives its world here: its lease lapsed while it
                // ran (this process was paused past it, or starved), so it is refused at its
                // next append and ends. Until then its world is not this take's to fetch over
                // or drive: back to the queue, for any worker.
                let note = "its world is still in use here by a job of this run whose lease \
                            lapsed; taken again once that job ends";
                let _ = store.settle(
                    &job.run_id,
                    me,
                    taken.attempt,
                    Settle::Requeue,
                    None,
                    Some(note.into()),
                );
                self.say(
                    ctx,
                    json!({"run_id": job.run_id, "event": "deferred", "note": note}),
                    format!("{}: deferred: {note}", job.run_id),
                );
                return Launch::Deferred;
            }
            Err(why) => return self.refuse(ctx, store, &taken, me, outbox, why),
        };
        let verb = if taken.began { "resume" } else { "start" };
        self.say(
            ctx,
            json!({"run_id": job.run_id, "event": verb, "attempt": taken.attempt, "cluster": job.cluster}),
            format!(
                "{} {} (cluster {}, world {}, take {})",
                verb, job.run_id, job.cluster, job.world, taken.attempt
            ),
        );
        let prepared = self.prepare(ctx, driving, store, state_dir, &taken, outbox);
        let (runner, audit, runbook) = match prepared {
            Ok(p) => p,
            Err(why) => return self.refuse(ctx, store, &taken, me, outbox, why),
        };
        let tx = tx.clone();
        driving.rt.spawn_blocking(move || {
            let job = &taken.job;
            let result = if taken.began {
                runner.resume_with(ResumeRequest {
                    run_id: job.run_id.clone(),
                    ..ResumeRequest::default()
                })
            } else {
                runner.start(StartRequest {
                    runbook,
                    cluster: job.cluster.clone(),
                    params: job.params.clone(),
                    run_id: Some(job.run_id.clone()),
                })
            };
            let findings = audit.map(|a| a()).unwrap_or_default();
            // The world is let go before the news: a take of this run that the news lets the
            // loop launch finds it free.
            drop(runner);
            drop(lock);
            let _ = tx.send(Finished {
                taken,
                result,
                findings,
            });
        });
        Launch::Started
    }

    /// A take that cannot start: its queue row held with the reason, its owner told.
    fn refuse(
        &self,
        ctx: &Context,
        store: &PgStore,
        taken: &Taken,
        me: &str,
        outbox: &crate::notify::Outbox,
        why: String,
    ) -> Launch {
        let job = &taken.job;
        let _ = store.settle(
            &job.run_id,
            me,
            taken.attempt,
            Settle::Held,
            Some("refused"),
            Some(why.clone()),
        );
        crate::notify::held(job, outbox, &why);
        self.say(
            ctx,
            json!({"run_id": job.run_id, "event": "held", "note": why}),
            format!("{}: held: {why}", job.run_id),
        );
        Launch::Held
    }

    /// The runner of a taken run: its world built at the run's state path (settings written
    /// first), its runbook found.
    #[allow(clippy::type_complexity)]
    fn prepare(
        &self,
        ctx: &Context,
        driving: &Driving,
        store: &PgStore,
        state_dir: &Path,
        taken: &Taken,
        outbox: &crate::notify::Outbox,
    ) -> Result<
        (
            godwit_engine::Runner,
            Option<std::sync::Arc<dyn Fn() -> Vec<String> + Send + Sync>>,
            PathBuf,
        ),
        String,
    > {
        let job = &taken.job;
        let runbook = match find_runbook(&job.runbook) {
            Ok(path) => path,
            // A fleet's cluster on the standard runbook this binary embeds: written once under
            // the state directory (the journal pins its hash, so workers of another godwit
            // version are refused on resume, as for any runbook).
            Err(_) if job.runbook == crate::fleet::run::STANDARD => {
                let dir = state_dir.join("standard-runbook");
                if !dir.is_dir() {
                    // Written aside and renamed: workers sharing a state directory never read
                    // a half-written copy (a rename onto an existing directory fails; the
                    // other's copy is the same).
                    let aside = state_dir.join(format!("standard-runbook.{}", std::process::id()));
                    crate::demo::write_standard_runbook(&aside).map_err(|f| f.1)?;
                    if std::fs::rename(&aside, &dir).is_err() {
                        let _ = std::fs::remove_dir_all(&aside);
                    }
                }
                dir.join("runbooks/rds-to-aurora.rhai")
            }
            Err(f) => return Err(f.1),
        };
        let state = world_state_file(state_dir, &job.run_id);
        if let Some(parent) = state.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        if !taken.began {
            // A start that never began (its worker died before run-started): start afresh,
            // from a fresh world.
            store.discard(&job.run_id).map_err(|e| e.to_string())?;
            crate::state::forget_world(&state);
            if let Some(parent) = state.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
        }
        let shared = Store::Pg(store.clone());
        if taken.began {
            crate::state::fetch_world(&shared, &job.run_id, &state)?;
        }
        // On a resume too: a worker taking over on another machine has never seen the run.
        if let Some(v) = &job.settings {
            write_settings(&state, v).map_err(|f| f.1)?;
        }
        crate::state::follow_world(&shared, &job.run_id, &state);
        let world = ctx
            .worlds
            .build(&job.world, Some(&state))
            .map_err(|e| format!("run {} needs world '{}': {e}", job.run_id, job.world))?;
        let audit = world.audit.clone();
        let out = Output {
            json: true,
            verbose: false,
            max_operations: self.out.max_operations,
        };
        let mut runner = driving.runner(&shared, world, &out);
        if !job.notify.is_empty() {
            // A resumed run's earlier lines: what it told already, when its blackout began.
            let earlier: Vec<godwit_engine::transcript::Line> = if taken.began {
                store
                    .transcript_lines(&job.run_id)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect()
            } else {
                Vec::new()
            };
            if let Some(n) = crate::notify::RunNotifier::for_job(job, outbox, &earlier) {
                runner.sinks.push(std::sync::Arc::new(n));
            }
        }
        Ok((runner, audit, runbook))
    }

    /// Put a finished run's queue row where it belongs; only under this worker's take.
    fn settle(
        &self,
        ctx: &Context,
        store: &PgStore,
        me: &str,
        done: Finished,
        outbox: &crate::notify::Outbox,
    ) {
        let run_id = &done.taken.job.run_id;
        let (to, word, note) = match &done.result {
            Ok(report) => match &report.status {
                RunStatus::Succeeded { .. } => (Settle::Done, "succeeded", None),
                RunStatus::RolledBack { reason, .. } => {
                    (Settle::Done, "rolled-back", Some(reason.clone()))
                }
                RunStatus::RollbackFailed { step, error, .. } => (
                    Settle::Held,
                    "rollback-failed",
                    Some(format!(
                        "the undo of '{step}' failed: {error}; fix the cause, then `godwit \
                         resume {run_id}`"
                    )),
                ),
                RunStatus::Interrupted => (Settle::Requeue, "interrupted", None),
            },
            // Another process drives the run (a worker that took it over after this one lost
            // its lease, or an operator's `godwit resume`): not this worker's to settle.
            Err(EngineError::Journal(JournalError::Locked { holder, .. })) => (
                Settle::Requeue,
                "locked",
                Some(format!("driven by {holder}")),
            ),
            // Created meanwhile by a worker that had lost this take (it was paused between its
            // take and creating the run, and woke up): it drives the run under the run's own
            // lease. Back to the queue, taken again once that lease is free — to be resumed,
            // or found finished.
            Err(EngineError::Journal(JournalError::Exists { .. })) => (
                Settle::Requeue,
                "created-elsewhere",
                Some("created by a worker that had lost this take; it drives the run".into()),
            ),
            // Finished meanwhile (another worker's last take completed it, and lost its lease
            // before settling): the reason a rolled-back run gives is in its journal.
            Err(EngineError::AlreadyFinished { status, .. }) => {
                let reason = JournalStore::read(store, run_id).ok().and_then(|l| {
                    l.records.iter().rev().find_map(|r| match &r.entry {
                        godwit_engine::journal::Entry::RunFinished { detail, .. } => {
                            detail.as_str().map(str::to_string)
                        }
                        _ => None,
                    })
                });
                (
                    Settle::Done,
                    "already-finished",
                    Some(reason.unwrap_or_else(|| status.clone())),
                )
            }
            Err(e) => (Settle::Held, "refused", Some(e.to_string())),
        };
        let (to, note) = if done.findings.is_empty() {
            (to, note)
        } else {
            (Settle::Held, Some(done.findings.join("; ")))
        };
        // How the run ended, for its fleet's wave (if any): a run found finished already
        // ended as its status says.
        let outcome = match (&done.result, word) {
            (Err(EngineError::AlreadyFinished { status, .. }), _) => Some(status.as_str()),
            (_, "interrupted" | "locked" | "created-elsewhere") => None,
            (_, w) => Some(w),
        };
        let settled = match store.settle(run_id, me, done.taken.attempt, to, outcome, note.clone())
        {
            Ok(s) => s,
            Err(e) => {
                crate::out::error(&e.to_string());
                false
            }
        };
        if settled && to == Settle::Held {
            let why = note.clone().unwrap_or_else(|| word.to_string());
            crate::notify::held(&done.taken.job, outbox, &why);
        }
        let state = match (settled, to) {
            (false, _) => "not ours any more",
            (true, Settle::Done) => "done",
            (true, Settle::Held) => "held",
            (true, Settle::Requeue) => "queued",
        };
        self.say(
            ctx,
            json!({"run_id": run_id, "event": "finished", "status": word, "queue": state, "note": note}),
            format!(
                "{run_id}: {word} → {state}{}",
                note.map(|n| format!(" ({n})")).unwrap_or_default()
            ),
        );
    }

    /// Move the store's fleets on (docs/fleet.md, "Waves"): any worker may, an advance holds
    /// the fleet's row so two never queue the same member. A failure is reported and retried at
    /// the next poll.
    fn advance_fleets(&self, ctx: &Context, store: &PgStore) {
        match store.advance_fleets() {
            Ok(events) => {
                for e in events {
                    self.say(
                        ctx,
                        json!({"event": "fleet", "fleet": e.fleet, "wave": e.wave,
                               "cluster": e.cluster, "what": e.what, "detail": e.detail}),
                        crate::fleet::run::event_line(&e),
                    );
                }
            }
            Err(e) => crate::out::error(&format!("advancing the fleets: {e}")),
        }
    }

    /// One line per event: JSON lines with `-o json`, else words (stderr stays for errors).
    fn say(&self, ctx: &Context, v: serde_json::Value, text: String) {
        if ctx.json() {
            crate::out::line(v.to_string());
        } else {
            crate::out::line(text);
        }
    }

    fn print_status(&self, ctx: &Context, store: &PgStore) -> Result<i32, Failure> {
        let rows = store.queue_rows().map_err(EngineError::from)?;
        if ctx.json() {
            crate::out::json(&rows);
            return Ok(exit::OK);
        }
        if rows.is_empty() {
            crate::out::line(format!("the queue in {} is empty", store.place()));
        }
        for r in rows {
            crate::out::line(format!(
                "{:<40} {:<8} take {:<3} {}{}",
                r.run_id,
                r.state,
                r.attempts,
                r.taken_by.unwrap_or_default(),
                r.note.map(|n| format!("  {n}")).unwrap_or_default()
            ));
        }
        Ok(exit::OK)
    }
}

/// `worker --notifications`: what was sent where, and what is still being retried and why.
fn print_notifications(ctx: &Context, store: &PgStore) -> Result<i32, Failure> {
    let rows = store.notifications(50).map_err(EngineError::from)?;
    if ctx.json() {
        crate::out::json(&rows);
        return Ok(exit::OK);
    }
    if rows.is_empty() {
        crate::out::line(format!("no notifications in {}", store.place()));
    }
    let mut table = comfy_table::Table::new();
    table
        .load_style(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
        .set_header([
            "id",
            "kind",
            "cluster",
            "target",
            "state",
            "tries",
            "last error",
        ]);
    for r in rows {
        table.add_row([
            r.id.to_string(),
            r.kind,
            r.cluster.unwrap_or_else(|| "(fleet)".into()),
            r.target,
            r.state,
            r.attempts.to_string(),
            r.last_error.unwrap_or_default(),
        ]);
    }
    crate::out::line(table.to_string());
    Ok(exit::OK)
}
