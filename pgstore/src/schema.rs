//! godwit's tables, in schema `godwit`, and their versioned migrations.
//!
//! Every connect applies the migrations this binary knows and the store lacks, in order, each
//! in the transaction that records it in `godwit.schema_migrations`, under an advisory lock so
//! workers starting together do not race. A store whose schema is newer than this binary knows
//! is refused: an older godwit would write rows a newer one reads differently.
//!
//! Migrations are append-only: a released one is never edited, a change is a new one.

use godwit_engine::journal::JournalError;

use crate::conn::Db;

/// `(version, name, SQL)`, in order. See docs/store.md for what each table holds.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "runs, journal, transcript, requests, clusters, queue, workers",
        r#"
CREATE TABLE godwit.runs (
    run_id        text PRIMARY KEY,
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- The chain's position: the next record's seq and the last record's hash (the genesis
    -- hash while empty). An append must name both, so records removed from the end or written
    -- past a concurrent append are caught.
    next_seq      bigint NOT NULL DEFAULT 0,
    head          text NOT NULL,
    began         boolean NOT NULL DEFAULT false,
    finished      boolean NOT NULL DEFAULT false,
    cluster       text,
    -- The lease: who drives the run until when (the database's clock), and the fencing token,
    -- raised on every acquisition; every append must present the current one.
    fencing_token bigint NOT NULL DEFAULT 0,
    lease_holder  text,
    lease_expires timestamptz
);
CREATE TABLE godwit.journal (
    run_id     text NOT NULL REFERENCES godwit.runs ON DELETE CASCADE,
    seq        bigint NOT NULL,
    -- The record exactly as the file store writes it (seq, prev, hash, entry): the hash covers
    -- the entry's bytes, so it is kept as text, never re-serialised through jsonb.
    line       text NOT NULL,
    written_by text NOT NULL,
    token      bigint NOT NULL,
    at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE godwit.transcript (
    id     bigserial PRIMARY KEY,
    run_id text NOT NULL REFERENCES godwit.runs ON DELETE CASCADE,
    -- The journal sequence number the line carries (truncation check, as for files).
    seq    bigint,
    line   text NOT NULL
);
CREATE INDEX transcript_run ON godwit.transcript (run_id, id);
CREATE TABLE godwit.requests (
    id     bigserial PRIMARY KEY,
    run_id text NOT NULL REFERENCES godwit.runs ON DELETE CASCADE,
    body   text NOT NULL,
    at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX requests_run ON godwit.requests (run_id, id);
CREATE TABLE godwit.clusters (
    cluster    text PRIMARY KEY,
    run_id     text NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE godwit.workers (
    worker_id    text PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    lease_ms     bigint NOT NULL,
    draining     boolean NOT NULL DEFAULT false
);
CREATE TABLE godwit.queue (
    run_id      text PRIMARY KEY,
    cluster     text NOT NULL,
    -- What a worker needs to build the run's world and start it (crate::queue::Job).
    job         jsonb NOT NULL,
    -- queued | running | done | held
    state       text NOT NULL DEFAULT 'queued',
    taken_by    text,
    -- Raised on every take: a worker settles a run only under the take it made.
    attempts    integer NOT NULL DEFAULT 0,
    enqueued_at timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    note        text
);
CREATE INDEX queue_state ON godwit.queue (state, enqueued_at);
"#,
    ),
    (
        2,
        "world_files: a run's world state follows it between machines",
        r#"
CREATE TABLE godwit.world_files (
    run_id  text NOT NULL REFERENCES godwit.runs ON DELETE CASCADE,
    -- The file's name beside the world's state (`<run>.json`, `<run>.now`, ...).
    name    text NOT NULL,
    content bytea NOT NULL,
    -- Written in the append's statement, under this fencing token.
    token   bigint NOT NULL,
    PRIMARY KEY (run_id, name)
);
"#,
    ),
    (
        3,
        "fleets, waves, wave_members; queue.outcome",
        r#"
-- How a queued run ended (succeeded, rolled-back, ...): a fleet's wave counts failures from it.
ALTER TABLE godwit.queue ADD COLUMN outcome text;
CREATE TABLE godwit.fleets (
    fleet      text PRIMARY KEY,
    origin     text NOT NULL,
    -- running | paused | stopped | aborted | done
    state      text NOT NULL DEFAULT 'running',
    note       text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE godwit.waves (
    fleet         text NOT NULL REFERENCES godwit.fleets ON DELETE CASCADE,
    wave          text NOT NULL,
    ord           integer NOT NULL,
    canaries      integer NOT NULL,
    max_in_flight integer NOT NULL CHECK (max_in_flight >= 1),
    max_failures  integer NOT NULL,
    approve_after_canaries boolean NOT NULL,
    -- pending | canaries | awaiting-approval | running | stopped | done
    state         text NOT NULL DEFAULT 'pending',
    -- Failures an operator's `fleet resume` acknowledged: the wave stops again only past
    -- max_failures new ones.
    acknowledged  integer NOT NULL DEFAULT 0,
    approved_by   text,
    note          text,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (fleet, wave),
    UNIQUE (fleet, ord)
);
CREATE TABLE godwit.wave_members (
    fleet      text NOT NULL,
    wave       text NOT NULL,
    cluster    text NOT NULL,
    ord        integer NOT NULL,
    canary     boolean NOT NULL,
    -- The job to queue (crate::queue::Job without its run id, given when queued).
    job        jsonb NOT NULL,
    run_id     text,
    -- pending | queued | succeeded | rolled-back | held | aborted | skipped
    state      text NOT NULL DEFAULT 'pending',
    note       text,
    queued_at  timestamptz,
    ended_at   timestamptz,
    PRIMARY KEY (fleet, cluster),
    FOREIGN KEY (fleet, wave) REFERENCES godwit.waves ON DELETE CASCADE
);
CREATE INDEX wave_members_wave ON godwit.wave_members (fleet, wave, ord);
CREATE INDEX wave_members_run ON godwit.wave_members (run_id);
"#,
    ),
    (
        4,
        "audit",
        r#"
-- Every action taken through `godwit serve`, with who took it (docs/serve.md): refused ones
-- too, so an attempt by someone without the right is on record.
CREATE TABLE godwit.audit (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    identity text NOT NULL,
    -- How the identity was established: `token`, `proxy`.
    via      text NOT NULL,
    action   text NOT NULL,
    target   text NOT NULL,
    detail   jsonb NOT NULL DEFAULT '{}',
    -- `done`, or `refused: why`, or `failed: why`.
    outcome  text NOT NULL
);
CREATE INDEX audit_target ON godwit.audit (target, at);
"#,
    ),
    (
        5,
        "notifications",
        r#"
-- The notification outbox (pgstore/src/notify.rs): one row per notification and target,
-- inserted by runs and fleet advances, delivered by workers with retries.
CREATE TABLE godwit.notifications (
    id            bigserial PRIMARY KEY,
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- phase | gate-closed | approval | rollback | cutover-start | cutover-end | finished
    kind          text NOT NULL,
    run_id        text,
    cluster       text,
    fleet         text,
    -- {kind: webhook | sns, address, ...}
    target        jsonb NOT NULL,
    body          jsonb NOT NULL,
    attempts      integer NOT NULL DEFAULT 0,
    next_at       timestamptz NOT NULL DEFAULT now(),
    claimed_by    text,
    claimed_until timestamptz,
    delivered_at  timestamptz,
    failed_at     timestamptz,
    last_error    text
);
CREATE INDEX notifications_due ON godwit.notifications (next_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
-- A fleet's own targets, for what its advances have to say (a wave waiting for approval).
ALTER TABLE godwit.fleets ADD COLUMN notify jsonb NOT NULL DEFAULT '[]';
"#,
    ),
];

/// The newest schema version this binary knows.
pub fn known_version() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// Bring the store's schema up to [`known_version`]; returns the versions applied now.
pub(crate) fn migrate(db: &mut Db) -> Result<Vec<i32>, JournalError> {
    db.transaction(|db| {
        // One migrator at a time across every process; held to the end of this transaction.
        db.batch(
            "SELECT pg_advisory_xact_lock(7236481902);
             CREATE SCHEMA IF NOT EXISTS godwit;
             CREATE TABLE IF NOT EXISTS godwit.schema_migrations (
                 version    integer PRIMARY KEY,
                 name       text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             );",
        )?;
        let rows = db.query(
            "SELECT coalesce(max(version), 0) FROM godwit.schema_migrations",
            vec![],
        )?;
        let have: i32 = rows[0].get(0);
        if have > known_version() {
            return Err(JournalError::Io(format!(
                "the PostgreSQL store at {} has schema version {have}, newer than this godwit \
                 knows ({}): a newer godwit migrated it; upgrade this godwit binary before \
                 using that store",
                db.place(),
                known_version()
            )));
        }
        let mut applied = Vec::new();
        for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > have) {
            db.batch(sql)?;
            db.query(
                "INSERT INTO godwit.schema_migrations (version, name) VALUES ($1, $2)",
                vec![Box::new(*version), Box::new(name.to_string())],
            )?;
            applied.push(*version);
        }
        Ok(applied)
    })
}
