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
