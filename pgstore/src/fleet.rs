//! Fleets and their waves: which clusters migrate together, how carefully, and how far each wave
//! got — kept in the store so that no single process has to stay up for a fleet to progress.
//!
//! `godwit fleet run` registers a fleet ([`PgStore::register_fleet`]): its waves in order, each
//! wave's members with the job that migrates them. From then on **any** process that calls
//! [`PgStore::advance_fleets`] moves the fleets on — every `godwit worker` does, once per poll,
//! and so does the `fleet run`/`fleet status --watch` that follows one. An advance is one
//! transaction per fleet holding that fleet's row (`FOR UPDATE SKIP LOCKED`: a fleet another
//! process is advancing is skipped, not waited for), so two advances never both queue a wave's
//! next cluster, and a process that dies mid-advance leaves nothing half done.
//!
//! The rules (docs/fleet.md, "Waves"):
//! - waves run one after the other, in the fleet's order; a wave starts when the one before is
//!   `done`;
//! - a wave's canaries go first (at most `max_in_flight` at once); **any** failed canary stops
//!   the wave; when they all succeeded the wave waits for `fleet approve` if
//!   `approve_after_canaries`, else goes on at once;
//! - then the rest, at most `max_in_flight` queued or running at once; the wave stops when its
//!   failures (a run rolled back, or held for an operator) exceed `max_failures`;
//! - a stopped wave stops the fleet: nothing new is queued; runs in flight go on to their own end
//!   (each one's gates decide for it; a fleet never interrupts a run between its fence and its
//!   promotion). `fleet resume` acknowledges the failures seen so far and goes on; `fleet
//!   abort` skips what has not started and asks every run in flight to roll back.
//!
//! Every member's run is an ordinary queued run ([`crate::queue`]): same journal, same lease.

use std::collections::BTreeMap;

use godwit_engine::journal::{JournalError, Request};
use serde::Serialize;
use tokio_postgres::Row;

use crate::conn::{Db, p};
use crate::queue::Job;
use crate::store::PgStore;

/// A fleet to register: its waves in order.
#[derive(Debug, Clone)]
pub struct FleetDef {
    pub name: String,
    /// Where it came from (`fleet.toml`, `generated (400 …)`), for people.
    pub origin: String,
    pub waves: Vec<WaveDef>,
    /// Where the fleet's own news goes (a wave waiting for approval, the fleet done).
    pub notify: Vec<crate::notify::Target>,
}

/// One wave: its policy and its members, each with the job that migrates it (`run_id` empty:
/// a run id is given when the member is queued).
#[derive(Debug, Clone)]
pub struct WaveDef {
    pub name: String,
    pub canaries: u32,
    pub max_in_flight: u32,
    pub max_failures: u32,
    pub approve_after_canaries: bool,
    /// In order; the first `canaries` are the canaries.
    pub members: Vec<Job>,
}

/// What [`PgStore::register_fleet`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registered {
    /// The fleet is new: registered, state `running`.
    New,
    /// A fleet of that name with the same waves and members is already there (in `state`):
    /// nothing was changed.
    Existing { state: String },
    /// A fleet of that name with other waves or members is there: nothing was changed; why.
    Differs(String),
}

/// An operator's action on a whole fleet.
#[derive(Debug, Clone)]
pub enum FleetAction {
    /// Queue nothing new; runs in flight go on.
    Pause,
    /// Go on after a pause or a stop (a stop's failures are acknowledged).
    Resume,
    /// Skip every member not started; ask every run in flight to roll back.
    Abort { reason: String },
}

impl FleetAction {
    fn word(&self) -> &'static str {
        match self {
            FleetAction::Pause => "pause",
            FleetAction::Resume => "resume",
            FleetAction::Abort { .. } => "abort",
        }
    }
}

/// Something an advance or an action changed, for the lines `fleet run` and workers print.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FleetEvent {
    pub fleet: String,
    pub wave: Option<String>,
    pub cluster: Option<String>,
    /// `queued`, `succeeded`, `rolled-back`, `held`, `aborted`, `canaries`, `running`,
    /// `awaiting-approval`, `stopped`, `done`, `fleet-done`, `fleet-stopped`.
    pub what: String,
    pub detail: Option<String>,
}

/// A fleet as the store has it (`fleet status`).
#[derive(Debug, Clone, Serialize)]
pub struct FleetStatus {
    pub fleet: String,
    pub origin: String,
    pub state: String,
    pub note: Option<String>,
    pub waves: Vec<WaveStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WaveStatus {
    pub wave: String,
    pub state: String,
    pub canaries: i32,
    pub max_in_flight: i32,
    pub max_failures: i32,
    pub approve_after_canaries: bool,
    pub acknowledged: i32,
    pub approved_by: Option<String>,
    pub note: Option<String>,
    /// Members by state.
    pub counts: BTreeMap<String, i64>,
    pub members: Vec<MemberStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemberStatus {
    pub cluster: String,
    pub canary: bool,
    pub state: String,
    pub run_id: Option<String>,
    pub note: Option<String>,
    /// When it was queued and when its run ended (epoch ms, the store's clock).
    pub queued_at_ms: Option<i64>,
    pub ended_at_ms: Option<i64>,
}

/// Member states that count as a wave's failures.
pub const FAILED: &[&str] = &["rolled-back", "held"];

fn event(fleet: &str, wave: Option<&str>, what: &str, detail: Option<String>) -> FleetEvent {
    FleetEvent {
        fleet: fleet.to_string(),
        wave: wave.map(str::to_string),
        cluster: None,
        what: what.to_string(),
        detail,
    }
}

/// A wave's row, as an advance reads it.
struct WaveRow {
    name: String,
    state: String,
    canaries: i32,
    max_in_flight: i32,
    max_failures: i32,
    approve: bool,
    acknowledged: i32,
}

/// A wave's members counted: (state, canary) → n.
#[derive(Default)]
struct Counts(BTreeMap<(String, bool), i64>);

impl Counts {
    fn n(&self, state: &str, canary: Option<bool>) -> i64 {
        self.0
            .iter()
            .filter(|((s, c), _)| s == state && canary.is_none_or(|want| *c == want))
            .map(|(_, n)| n)
            .sum()
    }
    fn failed(&self, canary: Option<bool>) -> i64 {
        FAILED.iter().map(|s| self.n(s, canary)).sum()
    }
}

impl PgStore {
    /// Register `def` (state `running`); idempotent for the same fleet, refused (nothing
    /// changed) for another fleet of the same name. Members are queued by advances, not here.
    pub fn register_fleet(&self, def: &FleetDef) -> Result<Registered, JournalError> {
        let def = def.clone();
        self.inner.conn.call(move |db| {
            db.transaction(|db| {
                let existing = db.query(
                    "SELECT state FROM godwit.fleets WHERE fleet = $1 FOR UPDATE",
                    vec![p(def.name.clone())],
                )?;
                let wanted: Vec<(String, String)> = def
                    .waves
                    .iter()
                    .flat_map(|w| w.members.iter().map(|m| (w.name.clone(), m.cluster.clone())))
                    .collect();
                if let Some(row) = existing.first() {
                    let state: String = row.get(0);
                    let have: Vec<(String, String)> = db
                        .query(
                            "SELECT m.wave, m.cluster FROM godwit.wave_members m
                               JOIN godwit.waves w USING (fleet, wave)
                              WHERE m.fleet = $1 ORDER BY w.ord, m.ord",
                            vec![p(def.name.clone())],
                        )?
                        .iter()
                        .map(|r| (r.get(0), r.get(1)))
                        .collect();
                    if have == wanted {
                        return Ok(Registered::Existing { state });
                    }
                    let first = have
                        .iter()
                        .zip(&wanted)
                        .position(|(a, b)| a != b)
                        .unwrap_or(have.len().min(wanted.len()));
                    return Ok(Registered::Differs(format!(
                        "fleet {:?} is already in the store ({state}) with {} members in other \
                         waves or another order (first difference at member {}: the store has \
                         {}, this fleet {})",
                        def.name,
                        have.len(),
                        first + 1,
                        have.get(first)
                            .map_or("nothing".into(), |(w, c)| format!("{c} in {w}")),
                        wanted
                            .get(first)
                            .map_or("nothing".into(), |(w, c)| format!("{c} in {w}")),
                    )));
                }
                db.query(
                    "INSERT INTO godwit.fleets (fleet, origin, notify) VALUES ($1, $2, $3::text::jsonb)",
                    vec![
                        p(def.name.clone()),
                        p(def.origin.clone()),
                        p(serde_json::to_string(&def.notify).unwrap_or_else(|_| "[]".into())),
                    ],
                )?;
                for (ord, w) in def.waves.iter().enumerate() {
                    db.query(
                        "INSERT INTO godwit.waves (fleet, wave, ord, canaries, max_in_flight,
                                                   max_failures, approve_after_canaries)
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                        vec![
                            p(def.name.clone()),
                            p(w.name.clone()),
                            p(ord as i32),
                            p(w.canaries as i32),
                            p(w.max_in_flight.max(1) as i32),
                            p(w.max_failures as i32),
                            p(w.approve_after_canaries),
                        ],
                    )?;
                    for (i, job) in w.members.iter().enumerate() {
                        let body = serde_json::to_string(job)
                            .map_err(|e| JournalError::Io(e.to_string()))?;
                        db.query(
                            "INSERT INTO godwit.wave_members (fleet, wave, cluster, ord, canary, job)
                             VALUES ($1, $2, $3, $4, $5, $6::text::jsonb)",
                            vec![
                                p(def.name.clone()),
                                p(w.name.clone()),
                                p(job.cluster.clone()),
                                p(i as i32),
                                p((i as u32) < w.canaries),
                                p(body),
                            ],
                        )?;
                    }
                }
                Ok(Registered::New)
            })
        })
    }

    /// Move every fleet that is not finished one step on (see the module docs): record the
    /// members whose runs ended, start, stop or finish waves, queue the next members. A fleet
    /// another process is advancing right now is skipped. Returns what changed.
    pub fn advance_fleets(&self) -> Result<Vec<FleetEvent>, JournalError> {
        let names: Vec<String> = self.inner.conn.call(|db| {
            Ok(db
                .query(
                    // Stopped and aborted fleets only while runs of theirs are in flight
                    // (their ends are still to be recorded).
                    "SELECT fleet FROM godwit.fleets f
                      WHERE state IN ('running', 'paused')
                         OR (state IN ('stopped', 'aborted')
                             AND EXISTS (SELECT 1 FROM godwit.wave_members m
                                          WHERE m.fleet = f.fleet AND m.state = 'queued'))
                      ORDER BY created_at, fleet",
                    vec![],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect())
        })?;
        let mut events = Vec::new();
        for name in names {
            let more = self.inner.conn.call(move |db| {
                db.transaction(|db| {
                    let events = advance_one(db, &name)?;
                    notify_fleet_events(db, &name, &events)?;
                    Ok(events)
                })
            })?;
            events.extend(more);
        }
        Ok(events)
    }

    /// The names and states of the fleets in the store, oldest first.
    pub fn fleets(&self) -> Result<Vec<(String, String)>, JournalError> {
        self.inner.conn.call(|db| {
            Ok(db
                .query(
                    "SELECT fleet, state FROM godwit.fleets ORDER BY created_at, fleet",
                    vec![],
                )?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect())
        })
    }

    /// Fleet `name` with its waves and members; `None` when there is no such fleet.
    pub fn fleet_status(&self, name: &str) -> Result<Option<FleetStatus>, JournalError> {
        let name = name.to_string();
        self.inner.conn.call(move |db| {
            db.transaction(|db| {
                db.batch("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
                let Some(f) = db
                    .query(
                        "SELECT fleet, origin, state, note FROM godwit.fleets WHERE fleet = $1",
                        vec![p(name.clone())],
                    )?
                    .into_iter()
                    .next()
                else {
                    return Ok(None);
                };
                let members = db.query(
                    "SELECT wave, cluster, canary, state, run_id, note,
                            (extract(epoch FROM queued_at) * 1000)::bigint,
                            (extract(epoch FROM ended_at) * 1000)::bigint
                       FROM godwit.wave_members WHERE fleet = $1 ORDER BY wave, ord",
                    vec![p(name.clone())],
                )?;
                let mut by_wave: BTreeMap<String, Vec<MemberStatus>> = BTreeMap::new();
                for r in &members {
                    by_wave.entry(r.get(0)).or_default().push(MemberStatus {
                        cluster: r.get(1),
                        canary: r.get(2),
                        state: r.get(3),
                        run_id: r.get(4),
                        note: r.get(5),
                        queued_at_ms: r.get(6),
                        ended_at_ms: r.get(7),
                    });
                }
                let waves = db
                    .query(
                        "SELECT wave, state, canaries, max_in_flight, max_failures,
                                approve_after_canaries, acknowledged, approved_by, note
                           FROM godwit.waves WHERE fleet = $1 ORDER BY ord",
                        vec![p(name.clone())],
                    )?
                    .iter()
                    .map(|r| {
                        let wave: String = r.get(0);
                        let members = by_wave.remove(&wave).unwrap_or_default();
                        let mut counts = BTreeMap::new();
                        for m in &members {
                            *counts.entry(m.state.clone()).or_insert(0) += 1;
                        }
                        WaveStatus {
                            wave,
                            state: r.get(1),
                            canaries: r.get(2),
                            max_in_flight: r.get(3),
                            max_failures: r.get(4),
                            approve_after_canaries: r.get(5),
                            acknowledged: r.get(6),
                            approved_by: r.get(7),
                            note: r.get(8),
                            counts,
                            members,
                        }
                    })
                    .collect();
                Ok(Some(FleetStatus {
                    fleet: f.get(0),
                    origin: f.get(1),
                    state: f.get(2),
                    note: f.get(3),
                    waves,
                }))
            })
        })
    }

    /// Pause, resume or abort fleet `name` on behalf of `by`. Refused (an `Io` error saying
    /// why, nothing changed) when the fleet's state does not allow it.
    pub fn fleet_action(
        &self,
        name: &str,
        action: &FleetAction,
        by: &str,
    ) -> Result<Vec<FleetEvent>, JournalError> {
        let (name, action, by) = (name.to_string(), action.clone(), by.to_string());
        self.inner.conn.call(move |db| {
            db.transaction(|db| {
                let state: String = db
                    .query(
                        "SELECT state FROM godwit.fleets WHERE fleet = $1 FOR UPDATE",
                        vec![p(name.clone())],
                    )?
                    .first()
                    .map(|r| r.get(0))
                    .ok_or_else(|| no_fleet(&name))?;
                let allowed = match action {
                    FleetAction::Pause => state == "running",
                    FleetAction::Resume => state == "paused" || state == "stopped",
                    FleetAction::Abort { .. } => !matches!(state.as_str(), "aborted" | "done"),
                };
                if !allowed {
                    return Err(JournalError::Io(format!(
                        "fleet {name:?} is {state}: nothing to {}{}",
                        action.word(),
                        match (&action, state.as_str()) {
                            (FleetAction::Pause, "paused") => " (it is paused already)",
                            (FleetAction::Resume, "running") => " (it is running)",
                            (_, "done" | "aborted") => " (it has finished)",
                            _ => "",
                        }
                    )));
                }
                let mut events = Vec::new();
                match &action {
                    FleetAction::Pause => {
                        db.query(
                            "UPDATE godwit.fleets SET state = 'paused', note = $2,
                                    updated_at = now() WHERE fleet = $1",
                            vec![p(name.clone()), p(format!("paused by {by}"))],
                        )?;
                        events.push(event(&name, None, "fleet-paused", Some(by.clone())));
                    }
                    FleetAction::Resume => {
                        // A stopped wave goes on; the failures that stopped it are acknowledged.
                        for r in db.query(
                            "UPDATE godwit.waves w
                                SET state = 'running', note = $2, updated_at = now(),
                                    acknowledged = (SELECT count(*) FROM godwit.wave_members m
                                                     WHERE m.fleet = w.fleet AND m.wave = w.wave
                                                       AND m.state IN ('rolled-back', 'held'))
                              WHERE fleet = $1 AND state = 'stopped' RETURNING wave",
                            vec![p(name.clone()), p(format!("resumed by {by}"))],
                        )? {
                            events.push(event(
                                &name,
                                Some(r.get::<_, String>(0).as_str()),
                                "running",
                                Some(format!("resumed by {by}; its failures so far acknowledged")),
                            ));
                        }
                        db.query(
                            "UPDATE godwit.fleets SET state = 'running', note = $2,
                                    updated_at = now() WHERE fleet = $1",
                            vec![p(name.clone()), p(format!("resumed by {by}"))],
                        )?;
                        events.push(event(&name, None, "fleet-resumed", Some(by.clone())));
                    }
                    FleetAction::Abort { reason } => {
                        events.extend(abort(db, &name, reason, &by)?);
                    }
                }
                notify_fleet_events(db, &name, &events)?;
                Ok(events)
            })
        })
    }

    /// Approve wave `wave` of fleet `name`, waiting after its canaries, on behalf of `by`.
    pub fn approve_wave(&self, name: &str, wave: &str, by: &str) -> Result<(), JournalError> {
        let (name, wave, by) = (name.to_string(), wave.to_string(), by.to_string());
        self.inner.conn.call(move |db| {
            db.transaction(|db| {
                let rows = db.query(
                    "SELECT state FROM godwit.waves WHERE fleet = $1 AND wave = $2 FOR UPDATE",
                    vec![p(name.clone()), p(wave.clone())],
                )?;
                let Some(state) = rows.first().map(|r| r.get::<_, String>(0)) else {
                    let waves: Vec<String> = db
                        .query(
                            "SELECT wave FROM godwit.waves WHERE fleet = $1 ORDER BY ord",
                            vec![p(name.clone())],
                        )?
                        .iter()
                        .map(|r| r.get(0))
                        .collect();
                    if waves.is_empty() {
                        return Err(no_fleet(&name));
                    }
                    return Err(JournalError::Io(format!(
                        "fleet {name:?} has no wave {wave:?}; its waves: {}",
                        waves.join(", ")
                    )));
                };
                if state != "awaiting-approval" {
                    return Err(JournalError::Io(format!(
                        "wave {wave:?} of fleet {name:?} is {state}, not waiting for an approval \
                         (a wave waits after its canaries when approve_after_canaries is set)"
                    )));
                }
                db.query(
                    "UPDATE godwit.waves SET state = 'running', approved_by = $3, updated_at = now(),
                            note = 'approved by ' || $3
                      WHERE fleet = $1 AND wave = $2",
                    vec![p(name.clone()), p(wave.clone()), p(by.clone())],
                )?;
                Ok(())
            })
        })
    }
}

fn no_fleet(name: &str) -> JournalError {
    JournalError::Io(format!(
        "no fleet {name:?} in the store; `godwit fleet status` lists the fleets, `godwit fleet \
         run` registers one"
    ))
}

/// Record members whose runs ended, from their queue rows.
fn settle_members(db: &mut Db, fleet: &str) -> Result<Vec<FleetEvent>, JournalError> {
    let rows = db.query(
        "UPDATE godwit.wave_members m
            SET state = CASE WHEN q.state = 'held' THEN 'held'
                             WHEN q.outcome IN ('succeeded', 'aborted') THEN q.outcome
                             ELSE 'rolled-back' END,
                note = q.note, ended_at = now()
           FROM godwit.queue q
          WHERE m.fleet = $1 AND m.state = 'queued' AND q.run_id = m.run_id
            AND q.state IN ('done', 'held')
      RETURNING m.wave, m.cluster, m.state, m.note",
        vec![p(fleet.to_string())],
    )?;
    Ok(rows
        .iter()
        .map(|r| FleetEvent {
            fleet: fleet.to_string(),
            wave: Some(r.get(0)),
            cluster: Some(r.get(1)),
            what: r.get(2),
            detail: r.get(3),
        })
        .collect())
}

/// Queue the fleet's own notifications for `events` in the transaction that made them (exactly
/// once per event): a wave waiting for approval (`approval`), a wave stopped past its failures
/// or the fleet aborted (`stopped`), the fleet done (`finished`).
fn notify_fleet_events(
    db: &mut Db,
    fleet: &str,
    events: &[FleetEvent],
) -> Result<(), JournalError> {
    let kind_of = |e: &FleetEvent| match (e.what.as_str(), &e.cluster) {
        ("awaiting-approval", None) => Some("approval"),
        ("stopped" | "fleet-stopped" | "fleet-aborted", None) => Some("stopped"),
        ("fleet-done", None) => Some("finished"),
        _ => None,
    };
    let told: Vec<(&FleetEvent, &str)> = events
        .iter()
        .filter_map(|e| kind_of(e).map(|k| (e, k)))
        .collect();
    if told.is_empty() {
        return Ok(());
    }
    let targets: Vec<crate::notify::Target> = db
        .query(
            "SELECT notify::text FROM godwit.fleets WHERE fleet = $1",
            vec![p(fleet.to_string())],
        )?
        .first()
        .and_then(|r| serde_json::from_str(r.get::<_, &str>(0)).ok())
        .unwrap_or_default();
    let mut out = Vec::new();
    for (e, kind) in told {
        let wave = e.wave.as_deref().unwrap_or_default();
        let summary = match e.what.as_str() {
            "awaiting-approval" => format!(
                "fleet {fleet}: wave {wave} waits for approval: `godwit fleet approve {wave} --name {fleet}`"
            ),
            "fleet-done" => format!("fleet {fleet}: every wave done"),
            "fleet-aborted" => format!(
                "fleet {fleet}: aborted{}",
                e.detail
                    .as_deref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            ),
            _ => format!(
                "fleet {fleet}: wave {wave} stopped{}; after a look, `godwit fleet resume \
                 --name {fleet}` goes on, `godwit fleet abort --name {fleet}` ends it",
                e.detail
                    .as_deref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            ),
        };
        let body = serde_json::json!({
            "kind": kind,
            "at": serde_json::Value::Null,
            "fleet": fleet,
            "wave": e.wave,
            "summary": summary,
            "detail": { "event": e.what, "detail": e.detail },
        });
        out.extend(
            targets
                .iter()
                .filter(|t| t.wants(kind))
                .map(|t| crate::notify::Outgoing {
                    target: t.clone(),
                    body: body.clone(),
                }),
        );
    }
    crate::notify::insert(db, &out)
}

/// One fleet's advance, inside its transaction.
fn advance_one(db: &mut Db, fleet: &str) -> Result<Vec<FleetEvent>, JournalError> {
    let Some(state) = db
        .query(
            "SELECT state FROM godwit.fleets WHERE fleet = $1 FOR UPDATE SKIP LOCKED",
            vec![p(fleet.to_string())],
        )?
        .first()
        .map(|r| r.get::<_, String>(0))
    else {
        return Ok(Vec::new());
    };
    let mut events = settle_members(db, fleet)?;
    if !matches!(state.as_str(), "running" | "paused") {
        return Ok(events);
    }
    let queue_more = state == "running";
    // Each pass handles the current wave; a wave that finishes hands over to the next at once.
    for _ in 0..1000 {
        let Some(w) = db
            .query(
                "SELECT wave, state, canaries, max_in_flight, max_failures,
                        approve_after_canaries, acknowledged
                   FROM godwit.waves WHERE fleet = $1 AND state <> 'done' ORDER BY ord LIMIT 1",
                vec![p(fleet.to_string())],
            )?
            .first()
            .map(wave_row)
        else {
            db.query(
                "UPDATE godwit.fleets SET state = 'done', updated_at = now(),
                        note = 'every wave done' WHERE fleet = $1",
                vec![p(fleet.to_string())],
            )?;
            events.push(event(fleet, None, "fleet-done", None));
            break;
        };
        let counts = counts(db, fleet, &w.name)?;
        let in_flight = counts.n("queued", None);
        let wave = Some(w.name.as_str());
        match w.state.as_str() {
            "stopped" => {
                stop_fleet(db, fleet, &w.name)?;
                events.push(event(fleet, wave, "fleet-stopped", None));
                break;
            }
            "awaiting-approval" => break,
            "pending" => {
                let next = if w.canaries > 0 {
                    "canaries"
                } else {
                    "running"
                };
                set_wave(db, fleet, &w.name, next, None)?;
                events.push(event(
                    fleet,
                    wave,
                    next,
                    (w.canaries > 0).then(|| format!("{} canaries first", w.canaries)),
                ));
            }
            "canaries" => {
                let failed = counts.failed(Some(true)) - i64::from(w.acknowledged);
                if failed > 0 {
                    let why = format!(
                        "{failed} canar{} failed: {}",
                        if failed == 1 { "y" } else { "ies" },
                        failed_list(db, fleet, &w.name)?
                    );
                    set_wave(db, fleet, &w.name, "stopped", Some(why.clone()))?;
                    stop_fleet(db, fleet, &w.name)?;
                    events.push(event(fleet, wave, "stopped", Some(why)));
                    break;
                }
                let pending = counts.n("pending", Some(true));
                if pending == 0 && in_flight == 0 {
                    let next = if w.approve {
                        "awaiting-approval"
                    } else {
                        "running"
                    };
                    set_wave(db, fleet, &w.name, next, None)?;
                    events.push(event(fleet, wave, next, Some("canaries succeeded".into())));
                    continue;
                }
                if queue_more {
                    let room = (i64::from(w.max_in_flight) - in_flight).min(pending);
                    events.extend(queue_members(db, fleet, &w.name, room, true)?);
                }
                break;
            }
            "running" => {
                let failures = counts.failed(None) - i64::from(w.acknowledged);
                if failures > i64::from(w.max_failures) {
                    let why = format!(
                        "{failures} failures, more than max_failures = {}: {}",
                        w.max_failures,
                        failed_list(db, fleet, &w.name)?
                    );
                    set_wave(db, fleet, &w.name, "stopped", Some(why.clone()))?;
                    stop_fleet(db, fleet, &w.name)?;
                    events.push(event(fleet, wave, "stopped", Some(why)));
                    break;
                }
                let pending = counts.n("pending", None);
                if pending == 0 && in_flight == 0 {
                    set_wave(db, fleet, &w.name, "done", None)?;
                    events.push(event(
                        fleet,
                        wave,
                        "done",
                        Some(format!(
                            "{} succeeded, {} failed",
                            counts.n("succeeded", None),
                            counts.failed(None)
                        )),
                    ));
                    continue;
                }
                if queue_more {
                    let room = (i64::from(w.max_in_flight) - in_flight).min(pending);
                    events.extend(queue_members(db, fleet, &w.name, room, false)?);
                }
                break;
            }
            other => {
                return Err(JournalError::Io(format!(
                    "wave {:?} of fleet {fleet:?} is in state {other:?}, which this godwit does \
                     not know; upgrade it",
                    w.name
                )));
            }
        }
    }
    Ok(events)
}

fn wave_row(r: &Row) -> WaveRow {
    WaveRow {
        name: r.get(0),
        state: r.get(1),
        canaries: r.get(2),
        max_in_flight: r.get(3),
        max_failures: r.get(4),
        approve: r.get(5),
        acknowledged: r.get(6),
    }
}

fn counts(db: &mut Db, fleet: &str, wave: &str) -> Result<Counts, JournalError> {
    let mut c = Counts::default();
    for r in db.query(
        "SELECT state, canary, count(*) FROM godwit.wave_members
          WHERE fleet = $1 AND wave = $2 GROUP BY state, canary",
        vec![p(fleet.to_string()), p(wave.to_string())],
    )? {
        c.0.insert((r.get(0), r.get(1)), r.get(2));
    }
    Ok(c)
}

fn set_wave(
    db: &mut Db,
    fleet: &str,
    wave: &str,
    state: &str,
    note: Option<String>,
) -> Result<(), JournalError> {
    db.query(
        "UPDATE godwit.waves SET state = $3, note = coalesce($4, note), updated_at = now()
          WHERE fleet = $1 AND wave = $2",
        vec![
            p(fleet.to_string()),
            p(wave.to_string()),
            p(state.to_string()),
            p(note),
        ],
    )
    .map(drop)
}

fn stop_fleet(db: &mut Db, fleet: &str, wave: &str) -> Result<(), JournalError> {
    db.query(
        "UPDATE godwit.fleets SET state = 'stopped', updated_at = now(),
                note = 'wave ' || $2 || ' stopped; `godwit fleet resume` goes on, `godwit fleet abort` rolls back'
          WHERE fleet = $1",
        vec![p(fleet.to_string()), p(wave.to_string())],
    )
    .map(drop)
}

/// The failed members of a wave, for a stop's reason: `a (rolled-back: …), b (held)`, at most 5.
fn failed_list(db: &mut Db, fleet: &str, wave: &str) -> Result<String, JournalError> {
    let rows = db.query(
        "SELECT cluster, state, note FROM godwit.wave_members
          WHERE fleet = $1 AND wave = $2 AND state IN ('rolled-back', 'held')
          ORDER BY ended_at DESC NULLS LAST, ord",
        vec![p(fleet.to_string()), p(wave.to_string())],
    )?;
    let mut parts: Vec<String> = rows
        .iter()
        .take(5)
        .map(|r| {
            let note: Option<String> = r.get(2);
            let note: String = note.unwrap_or_default().chars().take(120).collect();
            format!(
                "{} ({}{})",
                r.get::<_, String>(0),
                r.get::<_, String>(1),
                if note.is_empty() {
                    String::new()
                } else {
                    format!(": {note}")
                }
            )
        })
        .collect();
    if rows.len() > 5 {
        parts.push(format!("and {} more", rows.len() - 5));
    }
    Ok(parts.join(", "))
}

/// Queue up to `n` pending members of a wave (canaries only, or any), in order.
fn queue_members(
    db: &mut Db,
    fleet: &str,
    wave: &str,
    n: i64,
    canaries_only: bool,
) -> Result<Vec<FleetEvent>, JournalError> {
    if n <= 0 {
        return Ok(Vec::new());
    }
    let rows = db.query(
        "SELECT cluster, job::text FROM godwit.wave_members
          WHERE fleet = $1 AND wave = $2 AND state = 'pending' AND (canary OR NOT $3)
          ORDER BY ord LIMIT $4",
        vec![
            p(fleet.to_string()),
            p(wave.to_string()),
            p(canaries_only),
            p(n),
        ],
    )?;
    let mut events = Vec::new();
    for r in rows {
        let cluster: String = r.get(0);
        let body: String = r.get(1);
        let mut job: Job = serde_json::from_str(&body).map_err(|e| {
            JournalError::Io(format!(
                "the job of {cluster} in fleet {fleet:?} is not one this godwit reads ({e})"
            ))
        })?;
        job.run_id = godwit_engine::run::new_run_id(&cluster);
        let body = serde_json::to_string(&job).map_err(|e| JournalError::Io(e.to_string()))?;
        db.query(
            "INSERT INTO godwit.queue (run_id, cluster, job) VALUES ($1, $2, $3::text::jsonb)",
            vec![p(job.run_id.clone()), p(cluster.clone()), p(body)],
        )?;
        db.query(
            "UPDATE godwit.wave_members SET state = 'queued', run_id = $3, queued_at = now()
              WHERE fleet = $1 AND cluster = $2",
            vec![
                p(fleet.to_string()),
                p(cluster.clone()),
                p(job.run_id.clone()),
            ],
        )?;
        events.push(FleetEvent {
            fleet: fleet.to_string(),
            wave: Some(wave.to_string()),
            cluster: Some(cluster),
            what: "queued".into(),
            detail: Some(job.run_id),
        });
    }
    Ok(events)
}

/// `fleet abort`, inside the fleet's transaction: members not started are skipped, queued runs
/// no worker began are withdrawn, and every run in flight gets an abort request (it rolls back
/// at its next safe point, as `godwit abort` asks).
fn abort(
    db: &mut Db,
    fleet: &str,
    reason: &str,
    by: &str,
) -> Result<Vec<FleetEvent>, JournalError> {
    let mut events = Vec::new();
    let why = format!("fleet aborted by {by}: {reason}");
    db.query(
        "UPDATE godwit.fleets SET state = 'aborted', note = $2, updated_at = now()
          WHERE fleet = $1",
        vec![p(fleet.to_string()), p(why.clone())],
    )?;
    db.query(
        "UPDATE godwit.waves SET state = 'stopped', note = $2, updated_at = now()
          WHERE fleet = $1 AND state <> 'done'",
        vec![p(fleet.to_string()), p(why.clone())],
    )?;
    let skipped = db.query(
        "UPDATE godwit.wave_members SET state = 'skipped', note = $2, ended_at = now()
          WHERE fleet = $1 AND state = 'pending' RETURNING 1",
        vec![p(fleet.to_string()), p(why.clone())],
    )?;
    // A queued run no worker has begun: withdrawn (a take that commits first wins, and the
    // run is then in flight below).
    db.query(
        "UPDATE godwit.queue q SET state = 'done', outcome = 'aborted', note = $2,
                updated_at = now()
           FROM godwit.wave_members m
          WHERE m.fleet = $1 AND m.state = 'queued' AND q.run_id = m.run_id
            AND q.state = 'queued'
            AND NOT EXISTS (SELECT 1 FROM godwit.runs r WHERE r.run_id = q.run_id AND r.began)",
        vec![p(fleet.to_string()), p(why.clone())],
    )?;
    let body = serde_json::to_string(&Request::Abort {
        reason: why.clone(),
        by: by.to_string(),
        at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
    })
    .map_err(|e| JournalError::Io(e.to_string()))?;
    let asked = db.query(
        "INSERT INTO godwit.requests (run_id, body)
         SELECT r.run_id, $2 FROM godwit.wave_members m JOIN godwit.runs r ON r.run_id = m.run_id
          WHERE m.fleet = $1 AND m.state = 'queued' AND NOT r.finished
         RETURNING run_id",
        vec![p(fleet.to_string()), p(body)],
    )?;
    events.push(event(
        fleet,
        None,
        "fleet-aborted",
        Some(format!(
            "{} not started skipped; {} runs in flight asked to roll back; {why}",
            skipped.len(),
            asked.len()
        )),
    ));
    events.extend(settle_members(db, fleet)?);
    Ok(events)
}
