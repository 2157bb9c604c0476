//! The work queue: runs to start or continue, taken by `godwit worker` processes with
//! `FOR UPDATE SKIP LOCKED` (the model of Oban and graphile-worker), and the workers' own
//! heartbeats, which say when a worker's runs may be taken by another.
//!
//! A queue row is `queued` (waiting for a worker), `running` (taken by `taken_by`, under take
//! number `attempts`), `done` (the run finished: succeeded or rolled back) or `held` (it
//! stopped where an operator must decide: a failed undo, a changed runbook, a damaged journal,
//! a world that is gone). A `running` row is taken again when its worker's heartbeat is older
//! than that worker's lease, or when the run's own lease lapsed (a worker paused past its lease
//! heartbeats again when it wakes, but can never renew the run's lease); any row only while the
//! run's own lease is free or expired (a run an operator resumes by hand is left alone). The run's fencing token, not the queue, is what
//! keeps an old worker from writing (crate::store).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use godwit_engine::journal::JournalError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::conn::{Conn, Db, Tick, p};
use crate::store::PgStore;

/// What a worker needs to build a run's world and start it: everything `godwit run` would
/// have taken from its command line, resolved.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub run_id: String,
    pub cluster: String,
    /// The runbook as `godwit run` takes it: a file path, or a name in `./runbooks`, resolved
    /// in the worker's working directory. The journal pins its content hash, so a worker with
    /// another version of the runbook is refused on resume (the row is then `held`).
    pub runbook: String,
    /// The world spec, `NAME[:ARG]` (`sim:busy-source`).
    pub world: String,
    /// Runbook parameters (`--set`, `--config`), checked by the worker when it starts the run.
    #[serde(default)]
    pub params: serde_json::Map<String, Value>,
    /// The world's settings (`[aws]` of the config, `--region`, ...), written beside the
    /// world's state before the world is built.
    #[serde(default)]
    pub settings: Option<Value>,
    /// Where its notifications go (the fleet file's `[[notify]]` targets for its owner).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<crate::notify::Target>,
    /// The cluster's owning team and fleet, for the notifications' bodies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<String>,
}

/// A job a worker took: the job, the take's number (it settles under it) and whether the run
/// already began (resume it) or not (start it).
#[derive(Debug, Clone)]
pub struct Taken {
    pub job: Job,
    pub attempt: i32,
    pub began: bool,
}

/// Where a queue row goes when its worker is done with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// The run finished (succeeded or rolled back).
    Done,
    /// It stopped where an operator must decide.
    Held,
    /// Give it back (the worker is draining, or was interrupted): another worker takes it.
    Requeue,
}

impl Settle {
    fn state(self) -> &'static str {
        match self {
            Settle::Done => "done",
            Settle::Held => "held",
            Settle::Requeue => "queued",
        }
    }
}

/// What [`PgStore::requeue_held`] and [`PgStore::abort_unstarted`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requeue {
    Done,
    /// Not in a state it applies to (queued or running for a resume; begun for an abort).
    NotHeld,
    /// The run is a member of this fleet (`fleet/wave`): decided through the fleet.
    FleetMember(String),
}

/// The fleet and wave `run_id` is a member of.
fn fleet_of(db: &mut Db, run_id: &str) -> Result<Option<String>, JournalError> {
    Ok(db
        .query(
            "SELECT fleet || '/' || wave FROM godwit.wave_members WHERE run_id = $1",
            vec![p(run_id.to_string())],
        )?
        .first()
        .map(|r| r.get(0)))
}

/// One row of the queue, for `godwit worker status` and tests.
#[derive(Debug, Clone, Serialize)]
pub struct QueueRow {
    pub run_id: String,
    pub cluster: String,
    pub state: String,
    pub taken_by: Option<String>,
    pub attempts: i32,
    pub note: Option<String>,
}

/// The take. Liveness is checked in correlated subqueries, not joins: when a concurrent take
/// commits first, PostgreSQL re-checks the locked row's new version (EvalPlanQual) but reuses
/// the joined rows it read before, so a join would still see "no worker" and take the row a
/// second time (seen in `two_workers_take_every_job_once…`); a subquery is re-run against the
/// new `taken_by`.
const TAKE: &str = "WITH cand AS (
    SELECT q.run_id FROM godwit.queue q
     WHERE (q.state = 'queued'
            OR (q.state = 'running'
                AND (NOT EXISTS (
                         SELECT 1 FROM godwit.workers w
                          WHERE w.worker_id = q.taken_by
                            AND w.heartbeat_at + w.lease_ms * interval '1 millisecond' > now())
                     -- Its worker heartbeats again (it was paused past its lease and woke up),
                     -- but the run's lease lapsed meanwhile and can never be renewed by it:
                     -- the run is nobody's until taken. Only a lease that lapsed under this
                     -- take (it ran past the take): right after a take the run still has the
                     -- previous holder's expired lease until the taker opens it, and that
                     -- must not make the row takeable again.
                     OR EXISTS (
                         SELECT 1 FROM godwit.runs r
                          WHERE r.run_id = q.run_id AND r.lease_holder IS NOT NULL
                            AND r.lease_expires <= now()
                            AND r.lease_expires > q.updated_at))))
       -- Never a run someone holds (an operator's `godwit resume`, a worker still letting go):
       -- opening it would only fail and hand the row back, over and over.
       AND NOT EXISTS (
           SELECT 1 FROM godwit.runs r
            WHERE r.run_id = q.run_id
              AND r.lease_holder IS NOT NULL AND r.lease_expires > now())
     ORDER BY q.enqueued_at, q.run_id
     LIMIT 1
       FOR UPDATE OF q SKIP LOCKED
)
UPDATE godwit.queue q
   SET state = 'running', taken_by = $1, attempts = q.attempts + 1, updated_at = now(), note = NULL
  FROM cand
 WHERE q.run_id = cand.run_id
RETURNING q.job::text, q.attempts,
          coalesce((SELECT r.began FROM godwit.runs r WHERE r.run_id = q.run_id), false)";

impl PgStore {
    /// Queue a run for a worker to start. Refused if the run id is already queued.
    pub fn enqueue(&self, job: &Job) -> Result<(), JournalError> {
        let body = serde_json::to_string(job).map_err(|e| JournalError::Io(e.to_string()))?;
        let (id, cluster) = (job.run_id.clone(), job.cluster.clone());
        let inserted = self.inner.conn.call(move |db| {
            db.query(
                "INSERT INTO godwit.queue (run_id, cluster, job) VALUES ($1, $2, $3::text::jsonb)
                 ON CONFLICT (run_id) DO NOTHING RETURNING 1",
                vec![p(id), p(cluster), p(body)],
            )
        })?;
        if inserted.is_empty() {
            return Err(JournalError::Exists {
                run_id: job.run_id.clone(),
            });
        }
        Ok(())
    }

    /// Take the oldest job no live worker holds, for `worker`; `None` when there is none.
    /// Concurrent takers skip each other's rows instead of waiting (`SKIP LOCKED`).
    pub fn take(&self, worker: &str) -> Result<Option<Taken>, JournalError> {
        let w = worker.to_string();
        let row = self.inner.conn.call(move |db| {
            Ok(db.query(TAKE, vec![p(w)])?.first().map(|r| {
                (
                    r.get::<_, String>(0),
                    r.get::<_, i32>(1),
                    r.get::<_, bool>(2),
                )
            }))
        })?;
        let Some((body, attempt, began)) = row else {
            return Ok(None);
        };
        let job: Job = serde_json::from_str(&body).map_err(|e| {
            JournalError::Io(format!(
                "a queued job in {} is not one this godwit reads ({e}): {body}",
                self.place()
            ))
        })?;
        Ok(Some(Taken {
            job,
            attempt,
            began,
        }))
    }

    /// Settle a taken job with how the run ended (`outcome`: `succeeded`, `rolled-back`, …;
    /// a fleet's wave counts its failures from it); `false` when the take is no longer
    /// `worker`'s (another worker took the run over meanwhile), in which case nothing is changed.
    pub fn settle(
        &self,
        run_id: &str,
        worker: &str,
        attempt: i32,
        to: Settle,
        outcome: Option<&str>,
        note: Option<String>,
    ) -> Result<bool, JournalError> {
        let (id, w, state) = (run_id.to_string(), worker.to_string(), to.state());
        let outcome = outcome.map(str::to_string);
        let rows = self.inner.conn.call(move |db| {
            db.query(
                "UPDATE godwit.queue
                    SET state = $4, note = $5, updated_at = now(), outcome = $6,
                        taken_by = CASE WHEN $4 = 'queued' THEN NULL ELSE taken_by END
                  WHERE run_id = $1 AND taken_by = $2 AND attempts = $3 AND state = 'running'
              RETURNING 1",
                vec![
                    p(id),
                    p(w),
                    p(attempt),
                    p(state.to_string()),
                    p(note),
                    p(outcome),
                ],
            )
        })?;
        Ok(!rows.is_empty())
    }

    /// Every queue row, oldest first.
    pub fn queue_rows(&self) -> Result<Vec<QueueRow>, JournalError> {
        self.inner.conn.call(|db| {
            Ok(db
                .query(
                    "SELECT run_id, cluster, state, taken_by, attempts, note FROM godwit.queue
                      ORDER BY enqueued_at, run_id",
                    vec![],
                )?
                .iter()
                .map(|r| QueueRow {
                    run_id: r.get(0),
                    cluster: r.get(1),
                    state: r.get(2),
                    taken_by: r.get(3),
                    attempts: r.get(4),
                    note: r.get(5),
                })
                .collect())
        })
    }

    /// Put a `held` run back in the queue (a person decided: resume it, or abort it — a worker
    /// then resumes it and meets the abort request). A fleet's member is not: its wave counted
    /// it as a failure and `fleet resume` acknowledged it (docs/fleet.md), so it is decided
    /// through the fleet.
    pub fn requeue_held(&self, run_id: &str, note: &str) -> Result<Requeue, JournalError> {
        self.unless_fleet_member(
            run_id,
            note,
            "UPDATE godwit.queue SET state = 'queued', taken_by = NULL, note = $2,
                    updated_at = now()
              WHERE run_id = $1 AND state = 'held' RETURNING run_id",
        )
    }

    /// Abort a run that never began (queued, or held before its start): nothing to roll back,
    /// so its row is done with outcome `aborted`. `NotHeld`: a worker has it now, or it began,
    /// or it is done; a fleet's member is aborted through its fleet (as for [`Self::requeue_held`]).
    pub fn abort_unstarted(&self, run_id: &str, note: &str) -> Result<Requeue, JournalError> {
        self.unless_fleet_member(
            run_id,
            note,
            "UPDATE godwit.queue q SET state = 'done', outcome = 'aborted', note = $2,
                    taken_by = NULL, updated_at = now()
              WHERE q.run_id = $1 AND q.state IN ('queued', 'held')
                AND NOT EXISTS (SELECT 1 FROM godwit.runs r
                                 WHERE r.run_id = q.run_id AND r.began)
          RETURNING q.run_id",
        )
    }

    /// A person's change to run `run_id`'s queue row (`update`: `$1` the run, `$2` the note,
    /// returning a row when it applied), in one transaction with the check that the run is no
    /// fleet's member.
    fn unless_fleet_member(
        &self,
        run_id: &str,
        note: &str,
        update: &'static str,
    ) -> Result<Requeue, JournalError> {
        let (run_id, note) = (run_id.to_string(), note.to_string());
        self.inner.conn.call(move |db| {
            db.transaction(|db| {
                if let Some(f) = fleet_of(db, &run_id)? {
                    return Ok(Requeue::FleetMember(f));
                }
                let moved = db.query(update, vec![p(run_id), p(note)])?;
                Ok(if moved.is_empty() {
                    Requeue::NotHeld
                } else {
                    Requeue::Done
                })
            })
        })
    }

    /// How many jobs are waiting or being worked on, plus the fleets that will queue more on
    /// their own (running, no wave waiting for an approval).
    pub fn open_jobs(&self) -> Result<i64, JournalError> {
        self.inner.conn.call(|db| {
            Ok(db.query(
                "SELECT (SELECT count(*) FROM godwit.queue WHERE state IN ('queued', 'running'))
                      + (SELECT count(*) FROM godwit.fleets f
                          WHERE f.state = 'running'
                            AND NOT EXISTS (SELECT 1 FROM godwit.waves w
                                             WHERE w.fleet = f.fleet
                                               AND w.state = 'awaiting-approval'))",
                vec![],
            )?[0]
                .get(0))
        })
    }

    /// How many workers heartbeat within their lease.
    pub fn live_workers(&self) -> Result<i64, JournalError> {
        self.inner.conn.call(|db| {
            Ok(db.query(
                "SELECT count(*) FROM godwit.workers
                  WHERE heartbeat_at + lease_ms * interval '1 millisecond' > now()",
                vec![],
            )?[0]
                .get(0))
        })
    }

    /// Announce worker `worker_id`; its heartbeat runs until the returned guard is dropped.
    pub fn register_worker(&self, worker_id: &str) -> Result<WorkerLease, JournalError> {
        let lease = self.options().lease;
        let lease_ms = lease.as_millis() as i64;
        let (id, paused) = (worker_id.to_string(), Arc::new(AtomicBool::new(false)));
        let tick: Tick = {
            let (id, paused) = (id.clone(), paused.clone());
            Box::new(move |db: &mut Db| {
                if !paused.load(Ordering::SeqCst) {
                    let _ = db.query(
                        "UPDATE godwit.workers SET heartbeat_at = now() WHERE worker_id = $1",
                        vec![p(id.clone())],
                    );
                }
            })
        };
        let conn = Conn::open(
            self.inner.target.clone(),
            "godwit-worker",
            Some((lease / 3, tick)),
        )?;
        let w = id.clone();
        conn.call(move |db| {
            db.query(
                "INSERT INTO godwit.workers (worker_id, lease_ms) VALUES ($1, $2)
                 ON CONFLICT (worker_id) DO UPDATE SET heartbeat_at = now(), lease_ms = $2",
                vec![p(w), p(lease_ms)],
            )
            .map(drop)
        })?;
        Ok(WorkerLease {
            conn,
            worker_id: id,
            paused,
        })
    }
}

/// A registered worker's heartbeat; dropping it removes the worker (its runs, released by
/// their writers, are taken at once).
pub struct WorkerLease {
    conn: Conn,
    worker_id: String,
    paused: Arc<AtomicBool>,
}

impl std::fmt::Debug for WorkerLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerLease")
            .field("worker_id", &self.worker_id)
            .finish_non_exhaustive()
    }
}

impl WorkerLease {
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// Stop renewing (tests: a worker that looks dead).
    pub fn pause_heartbeat(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
    }
}

impl Drop for WorkerLease {
    fn drop(&mut self) {
        let id = self.worker_id.clone();
        let _ = self.conn.call(move |db| {
            db.query(
                "DELETE FROM godwit.workers WHERE worker_id = $1",
                vec![p(id)],
            )
            .map(drop)
        });
    }
}
