//! Notifications (migration 5, `godwit.notifications`): an **outbox** in the store. Whoever
//! sees something worth telling people — a worker's run (a phase, a gate closed too long, an
//! approval wanted, a rollback, the cutover's start and end), an advance of a fleet (a wave
//! waiting for approval, the fleet done) — inserts one row per target; every worker delivers
//! due rows, claimed with `FOR UPDATE SKIP LOCKED` so two workers never send the same row at
//! once, and retries with backoff until delivered or out of attempts.
//!
//! Delivery is at least once (a worker killed between sending and recording sends again after
//! the claim expires): the body carries the row's `id` for receivers to drop duplicates. It
//! never blocks a run: runs only insert (off their thread, see `repl/src/notify`), and a target
//! that is down costs nothing but its own retries.

use std::time::Duration;

use godwit_engine::journal::JournalError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::conn::{Db, p};
use crate::store::PgStore;

/// Where notifications go, as a fleet file's `[[notify]]` entry resolved for one cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// `webhook` (an HTTP(S) POST of the JSON body) or `sns` (a Publish to a topic).
    pub kind: String,
    /// The URL, or the topic's ARN.
    pub address: String,
    /// The kinds of notification it wants (empty: every kind, see [`KINDS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// A gate closed longer than this is reported (default: half its timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_closed_after_ms: Option<i64>,
    /// For `sns`: the aws world's settings of the run (region, profile, endpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<Value>,
}

/// Every kind of notification, as `events` names them.
pub const KINDS: &[&str] = &[
    "phase",
    "gate-closed",
    "approval",
    "rollback",
    "cutover-start",
    "cutover-end",
    "finished",
    "stopped",
];

impl Target {
    /// Whether this target wants notifications of `kind`.
    pub fn wants(&self, kind: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|e| e == kind)
    }
}

/// A notification to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub target: Target,
    /// What the receiver gets (the `id` is added at delivery).
    pub body: Value,
}

/// A row a deliverer claimed.
#[derive(Debug, Clone)]
pub struct Pending {
    pub id: i64,
    pub attempts: i32,
    pub target: Target,
    pub body: Value,
}

/// How one delivery attempt went.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    Delivered,
    /// Try again after the delay.
    Retry {
        error: String,
        after: Duration,
    },
    /// Never again (out of attempts, or a target that refuses the request as such).
    Failed {
        error: String,
    },
}

/// One notification as the store has it, for `worker --status`, the API and tests.
#[derive(Debug, Clone, Serialize)]
pub struct NotificationRow {
    pub id: i64,
    pub kind: String,
    pub target: String,
    pub run_id: Option<String>,
    pub cluster: Option<String>,
    /// `pending`, `delivered`, `failed`.
    pub state: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub body: Value,
}

pub(crate) fn insert(db: &mut Db, items: &[Outgoing]) -> Result<(), JournalError> {
    for o in items {
        let s = |k: &str| o.body.get(k).and_then(Value::as_str).map(str::to_string);
        db.query(
            // A body without its time gets the store's (a fleet's advance has no clock of its own).
            "INSERT INTO godwit.notifications (kind, run_id, cluster, fleet, target, body) \
             SELECT $1, $2, $3, $4, $5::text::jsonb, CASE WHEN b->'at' = 'null'::jsonb \
               THEN jsonb_set(b, '{at}', to_jsonb(to_char(now() AT TIME ZONE 'UTC', \
                    'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'))) ELSE b END \
             FROM (SELECT $6::text::jsonb AS b) AS body",
            vec![
                p(s("kind").unwrap_or_default()),
                Box::new(s("run_id")),
                Box::new(s("cluster")),
                Box::new(s("fleet")),
                p(serde_json::to_string(&o.target).unwrap_or_default()),
                p(o.body.to_string()),
            ],
        )?;
    }
    Ok(())
}

/// `kind address` for people: a webhook's path and query often carry its secret (chat
/// services put the token there), so only the scheme and host are shown.
pub fn redacted(target: &str) -> String {
    match target.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?']).next().unwrap_or_default();
            let more = if rest.len() > host.len() { "/…" } else { "" };
            format!("{scheme}://{host}{more}")
        }
        None => target.to_string(),
    }
}

impl PgStore {
    /// Queue `items` for delivery.
    pub fn notify(&self, items: Vec<Outgoing>) -> Result<(), JournalError> {
        if items.is_empty() {
            return Ok(());
        }
        self.inner
            .conn
            .call(move |db| db.transaction(|db| insert(db, &items)))
    }

    /// Claim up to `limit` due notifications to targets of `kinds` for `holder` for `lease`
    /// (another deliverer takes them over after it), oldest first. A row this godwit cannot
    /// read (written by a newer one?) is marked failed, not claimed forever.
    pub fn claim_notifications(
        &self,
        holder: &str,
        limit: i64,
        lease: Duration,
        kinds: &[&str],
    ) -> Result<Vec<Pending>, JournalError> {
        let holder = holder.to_string();
        let lease_ms = lease.as_millis() as i64;
        let kinds: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
        self.inner.conn.call(move |db| {
            let rows = db.query(
                "UPDATE godwit.notifications SET claimed_by = $1,
                        claimed_until = now() + $3::bigint * interval '1 millisecond'
                  WHERE id IN (SELECT id FROM godwit.notifications
                                WHERE delivered_at IS NULL AND failed_at IS NULL
                                  AND next_at <= now()
                                  AND (claimed_until IS NULL OR claimed_until < now())
                                  AND target->>'kind' = ANY($4)
                                ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
              RETURNING id, attempts, target::text, body::text",
                vec![p(holder), p(limit), p(lease_ms), p(kinds)],
            )?;
            let mut out = Vec::new();
            for r in &rows {
                let id: i64 = r.get(0);
                let target = serde_json::from_str(r.get::<_, &str>(2));
                let body = serde_json::from_str(r.get::<_, &str>(3));
                match (target, body) {
                    (Ok(target), Ok(body)) => out.push(Pending {
                        id,
                        attempts: r.get(1),
                        target,
                        body,
                    }),
                    (t, b) => {
                        let why = t.err().or(b.err()).map(|e| e.to_string()).unwrap_or_default();
                        db.query(
                            "UPDATE godwit.notifications SET failed_at = now(), claimed_until = NULL,
                                    last_error = $2 WHERE id = $1",
                            vec![p(id), p(format!("unreadable by this godwit: {why}"))],
                        )?;
                    }
                }
            }
            out.sort_by_key(|n| n.id);
            Ok(out)
        })
    }

    /// Record how delivering notification `id` went — only while `holder` still holds its
    /// claim (a deliverer that overran its claim does not undo its successor's).
    pub fn settle_notification(
        &self,
        id: i64,
        holder: &str,
        how: Delivery,
    ) -> Result<(), JournalError> {
        let holder = holder.to_string();
        self.inner.conn.call(move |db| {
            match how {
                Delivery::Delivered => db.query(
                    "UPDATE godwit.notifications SET delivered_at = now(), attempts = attempts + 1,
                            claimed_until = NULL WHERE id = $1 AND claimed_by = $2",
                    vec![p(id), p(holder)],
                )?,
                Delivery::Retry { error, after } => db.query(
                    "UPDATE godwit.notifications SET attempts = attempts + 1, last_error = $3,
                            next_at = now() + $4::bigint * interval '1 millisecond',
                            claimed_until = NULL
                      WHERE id = $1 AND claimed_by = $2",
                    vec![p(id), p(holder), p(error), p(after.as_millis() as i64)],
                )?,
                Delivery::Failed { error } => db.query(
                    "UPDATE godwit.notifications SET attempts = attempts + 1, last_error = $3,
                            failed_at = now(), claimed_until = NULL
                      WHERE id = $1 AND claimed_by = $2",
                    vec![p(id), p(holder), p(error)],
                )?,
            };
            Ok(())
        })
    }

    /// Give claimed notification `id` back unsent (no attempt counted).
    pub fn release_notification(&self, id: i64, holder: &str) -> Result<(), JournalError> {
        let holder = holder.to_string();
        self.inner.conn.call(move |db| {
            db.query(
                "UPDATE godwit.notifications SET claimed_until = NULL
                  WHERE id = $1 AND claimed_by = $2",
                vec![p(id), p(holder)],
            )?;
            Ok(())
        })
    }

    /// The last `limit` notifications, newest first.
    pub fn notifications(&self, limit: i64) -> Result<Vec<NotificationRow>, JournalError> {
        self.inner.conn.call(move |db| {
            let rows = db.query(
                "SELECT id, kind, target->>'kind' || ' ' || (target->>'address'), run_id, cluster,
                        CASE WHEN delivered_at IS NOT NULL THEN 'delivered'
                             WHEN failed_at IS NOT NULL THEN 'failed' ELSE 'pending' END,
                        attempts, last_error, body::text
                   FROM godwit.notifications ORDER BY id DESC LIMIT $1",
                vec![p(limit)],
            )?;
            Ok(rows
                .iter()
                .map(|r| NotificationRow {
                    id: r.get(0),
                    kind: r.get(1),
                    target: redacted(r.get::<_, &str>(2)),
                    run_id: r.get(3),
                    cluster: r.get(4),
                    state: r.get(5),
                    attempts: r.get(6),
                    last_error: r.get(7),
                    body: serde_json::from_str(r.get::<_, &str>(8)).unwrap_or(Value::Null),
                })
                .collect())
        })
    }
}
