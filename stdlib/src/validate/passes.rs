//! The two-pass validation over real servers (docs/validate.md, "Two passes"): a pre-fence
//! pass while replication runs, whose cost grows with the data and stays outside the write
//! blackout, and a fence pass whose cost grows only with what changed since.
//!
//! **Change tracking.** With `wal_level=logical` the pre-pass creates a logical slot with
//! PostgreSQL's `test_decoding` plugin on each source database *before* it reads anything:
//! every transaction that commits after the slot's consistent point is decoded, with the key
//! of every row it touched ([`super::decoding`]). Otherwise (`wal_level=replica`, the RDS
//! default) only `pg_stat_user_tables` tells which tables changed, not which rows.
//!
//! **Pre-pass, per table.** The source's segments (`count`, `sum` of row hashes) in one
//! snapshot `S` and the WAL position `L_S` after it; the replica's, in a snapshot taken once
//! it replayed past `L_S`; then the source's position `L_R`, and the changes decoded up to it.
//! A row that no transaction changed after the slot's point has one content from before `S`
//! to after the replica's snapshot: the two reads must agree on it. So a segment that differs
//! only by rows that changed (their hashes, read in the same two snapshots, subtracted on both
//! sides) is explained, not a difference; a residual difference is a *suspect*, confirmed by
//! a settle round (a fresh read of both sides with no change to the row in between) before it
//! is reported. The changed rows themselves are left to the fence pass, after settle rounds
//! that prove those that stopped changing.
//!
//! **Fence pass.** The source is fenced: every change since the pre-pass is in the slot (it
//! decodes from where the pre-pass consumed to); the keys left by the pre-pass and those
//! changed since are compared on both sides, the tables with no change are proven by their
//! equal pre-pass. A TRUNCATE, a DDL (the table's `shape`), a table without primary key that
//! changed, a table the pre-pass did not see or could not settle, and every table of a
//! database whose slot is gone or moved are compared whole.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use godwit_engine::{ErrorKind, PrimitiveError};
use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

use super::decoding::{self, Change};
use super::live::*;
use super::*;
use crate::pg::format_lsn;
use crate::pg::live::Pool;

const PRE: &str = "prepass";
const FENCE: &str = "fence_pass";
/// The decoding plugin: in PostgreSQL's contrib and on RDS, no publication needed.
const PLUGIN: &str = "test_decoding";
/// How long creating the slot may wait for the transactions running then to end.
const SLOT_CREATE_LIMIT: Duration = Duration::from_secs(60);
/// How long the replica may take to replay a read's position before the table is left to
/// the fence pass (the call's budget bounds it too).
const REPLAY_WAIT: Duration = Duration::from_secs(30);

/// The slot of database `oid`'s tracking (one per database: decoding is per database).
fn slot_name(oid: u32) -> String {
    format!("{TRACKING_SLOT_PREFIX}{oid}")
}

/// What changed on one database since the slot's point, per table (`schema.name`).
#[derive(Default)]
struct Changes {
    keys: HashMap<String, HashSet<Vec<String>>>,
    /// Tables whose changes could not be told by key, and why.
    untracked: HashMap<String, String>,
    /// A line the parser could not read: anything may have changed.
    unreadable: Option<String>,
}

impl Changes {
    fn merge(&mut self, other: Changes) {
        for (t, k) in other.keys {
            self.keys.entry(t).or_default().extend(k);
        }
        for (t, why) in other.untracked {
            self.untracked.entry(t).or_insert(why);
        }
        if self.unreadable.is_none() {
            self.unreadable = other.unreadable;
        }
    }

    fn of(&self, table: &str) -> Option<&HashSet<Vec<String>>> {
        self.keys.get(table)
    }
}

fn fail(op: &str, db: &str, kind: ErrorKind, msg: String, hint: &str) -> PrimitiveError {
    PrimitiveError::new(A, op, kind, format!("{db}: {msg}"), hint)
}

/// The decoding connection's text output, pinned like the comparison's, so a decoded key
/// reads back (`::type`) to the stored value.
const DECODE_OUTPUT: &str = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; \
     SET IntervalStyle = 'postgres'; SET extra_float_digits = 1; SET bytea_output = 'hex'";

/// Start tracking on the connected database: the slot, or why counters instead.
async fn start_tracking(
    ctl: &Client,
    source: &str,
    dbname: &str,
) -> Result<Tracking, PrimitiveError> {
    let level: String = ctl
        .query_one("SELECT current_setting('wal_level')", &[])
        .await
        .map_err(|e| err(PRE, source, e))?
        .get(0);
    let counters = |why: String| Tracking {
        database: dbname.to_string(),
        how: "counters".into(),
        slot: None,
        confirmed_lsn: None,
        why,
        epoch: None,
    };
    if level != "logical" {
        return Ok(counters(format!(
            "wal_level={level}: which rows changed needs logical decoding (RDS: \
             rds.logical_replication=1, a static parameter); pg_stat_user_tables tells which tables"
        )));
    }
    let oid: u32 = ctl
        .query_one(
            "SELECT oid FROM pg_database WHERE datname = current_database()",
            &[],
        )
        .await
        .map_err(|e| err(PRE, source, e))?
        .get(0);
    let slot = slot_name(oid);
    // A slot an earlier pre-pass of this database left is replaced: its changes are that
    // pass's, and this pass proves everything again.
    drop_slot(ctl, &slot, PRE, source).await?;
    // Creating a logical slot waits for every transaction holding an xid (any database) to
    // end: bounded here, and what it waited for named.
    let prior: String = ctl
        .query_one("SHOW statement_timeout", &[])
        .await
        .map_err(|e| err(PRE, source, e))?
        .get(0);
    ctl.batch_execute(&format!(
        "SET statement_timeout = {}",
        SLOT_CREATE_LIMIT.as_millis()
    ))
    .await
    .map_err(|e| err(PRE, source, e))?;
    let made = ctl
        .query_one(
            "SELECT lsn::text FROM pg_create_logical_replication_slot($1, $2)",
            &[&slot, &PLUGIN],
        )
        .await;
    ctl.batch_execute(&format!(
        "SET statement_timeout = '{}'",
        prior.replace('\'', "")
    ))
    .await
    .map_err(|e| err(PRE, source, e))?;
    match made {
        Ok(r) => Ok(Tracking {
            database: dbname.to_string(),
            how: "logical-decoding".into(),
            slot: Some(slot),
            confirmed_lsn: Some(r.get(0)),
            why: format!("wal_level=logical: a {PLUGIN} slot decodes the key of every changed row"),
            epoch: None,
        }),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::QUERY_CANCELED) => {
            let blockers: Vec<String> = ctl
                .query(
                    "SELECT 'pid ' || pid || ' (' || coalesce(usename::text, '?') || ', ' || coalesce(state, '?') \
                       || ', transaction since ' || coalesce(xact_start::text, '?') || ')' \
                     FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid() \
                     UNION ALL SELECT 'prepared transaction ' || gid || ' (since ' || prepared::text || ')' FROM pg_prepared_xacts",
                    &[],
                )
                .await
                .map_err(|e| err(PRE, source, e))?
                .iter()
                .map(|r| r.get(0))
                .collect();
            Err(fail(
                PRE,
                source,
                ErrorKind::Timeout,
                format!(
                    "creating the validation's slot {slot} waited {} s for transactions to end: {}",
                    SLOT_CREATE_LIMIT.as_secs(),
                    if blockers.is_empty() {
                        "none is left now".to_string()
                    } else {
                        blockers.join(", ")
                    }
                ),
                "let these transactions end (a forgotten prepared transaction: COMMIT PREPARED or ROLLBACK PREPARED it), then run the pre-pass again",
            ))
        }
        // No REPLICATION right (RDS: the rds_replication role), no plugin, no free slot:
        // the pass still proves, by counters.
        Err(e) => Ok(counters(format!(
            "logical decoding refused ({}): pg_stat_user_tables tells which tables changed",
            e.as_db_error()
                .map_or(e.to_string(), |d| d.message().to_string())
        ))),
    }
}

/// Drop slot `slot` if it exists, waiting (≤ 10 s) while a session still decodes from it.
async fn drop_slot(c: &Client, slot: &str, op: &str, db: &str) -> Result<bool, PrimitiveError> {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let row = c
            .query_opt(
                "SELECT active FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .map_err(|e| err(op, db, e))?;
        match row.map(|r| r.get::<_, bool>(0)) {
            None => return Ok(false),
            Some(false) => {
                c.execute("SELECT pg_drop_replication_slot($1)", &[&slot])
                    .await
                    .map_err(|e| err(op, db, e))?;
                return Ok(true);
            }
            Some(true) if Instant::now() >= until => {
                return Err(fail(
                    op,
                    db,
                    ErrorKind::Conflict,
                    format!("replication slot {slot} is in use by another session"),
                    "another validation pass of this database is running; wait for it, or end it (pg_terminate_backend of the slot's active_pid)",
                ));
            }
            Some(true) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Decode slot `slot` up to `upto` (None: everything written), consuming or only peeking.
async fn decode(
    ctl: &Client,
    slot: &str,
    upto: Option<i64>,
    consume: bool,
    keys: &HashMap<String, Vec<String>>,
    (op, db): (&str, &str),
) -> Result<Changes, PrimitiveError> {
    let f = if consume {
        "pg_logical_slot_get_changes"
    } else {
        "pg_logical_slot_peek_changes"
    };
    let upto = upto.map(|b| format_lsn(b.max(0) as u64));
    let rows = ctl
        .query(
            &format!(
                "SELECT data FROM {f}($1, $2::text::pg_lsn, NULL, 'skip-empty-xacts', '1', 'include-xids', '0')"
            ),
            &[&slot, &upto],
        )
        .await
        .map_err(|e| err(op, db, e))?;
    let mut out = Changes::default();
    for r in rows {
        let line: String = r.get(0);
        if decoding::is_bookkeeping(&line) {
            continue;
        }
        match decoding::parse(&line) {
            Some(Change::Truncate { tables }) => {
                for t in tables {
                    out.untracked
                        .entry(t)
                        .or_insert_with(|| "truncated since the pre-pass began".into());
                }
            }
            Some(Change::Row { table, tuples, .. }) => {
                let Some(key) = keys.get(&table) else {
                    // A table the pass does not compare (or created since): the fence pass
                    // rescans what it did not see anyway.
                    continue;
                };
                if key.is_empty() {
                    out.untracked.entry(table).or_insert_with(|| {
                        "changed, and without a primary key its rows cannot be told by key".into()
                    });
                    continue;
                }
                let found: Vec<Option<Vec<String>>> =
                    tuples.iter().map(|t| decoding::key_of(t, key)).collect();
                if found.is_empty() || found.iter().any(Option::is_none) {
                    out.untracked.entry(table).or_insert_with(|| {
                        "a change decoded without its key (REPLICA IDENTITY NOTHING, or a TOASTed key)".into()
                    });
                    continue;
                }
                out.keys
                    .entry(table)
                    .or_default()
                    .extend(found.into_iter().flatten());
            }
            None => {
                out.unreadable
                    .get_or_insert_with(|| line.chars().take(200).collect());
            }
        }
    }
    Ok(out)
}

/// Per table (`schema.name`): `n_tup_ins, n_tup_upd, n_tup_del` and its shape.
async fn shapes(c: &Client, op: &str, db: &str) -> Result<HashMap<String, Shape>, PrimitiveError> {
    // The shape: storage, the catalog row's version, the columns, the primary key's columns
    // (a key replaced without a rewrite changes none of the others) and the replica identity.
    let rows = c
        .query(
            "SELECT n.nspname::text || '.' || c.relname::text, \
               coalesce(s.n_tup_ins, 0)::bigint, coalesce(s.n_tup_upd, 0)::bigint, coalesce(s.n_tup_del, 0)::bigint, \
               c.relfilenode::text || '/' || c.xmin::text || '/' || coalesce((SELECT string_agg(a.attname || ':' || a.atttypid || ':' || a.atttypmod, ',' ORDER BY a.attnum) \
                  FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '') \
                 || '/key:' || coalesce((SELECT i.indkey::text FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary), '') \
                 || '/identity:' || c.relreplident::text, \
               c.relreplident::text \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid \
             WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
               AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'",
            &[],
        )
        .await
        .map_err(|e| err(op, db, e))?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get::<_, String>(0),
                Shape {
                    counters: vec![r.get(1), r.get(2), r.get(3)],
                    shape: r.get(4),
                    identity: r.get(5),
                },
            )
        })
        .collect())
}

/// One table's counters, shape and replica identity (`d` default, `f` full, `n` nothing,
/// `i` an index).
struct Shape {
    counters: Vec<i64>,
    shape: String,
    identity: String,
}

/// What makes counters comparable: they count (`track_counts`), and were not reset nor lost
/// with a restart since (PostgreSQL 15 discards them at crash recovery; a clean restart keeps
/// them, but a restart is not told apart here).
async fn stats_epoch(c: &Client, op: &str, db: &str) -> Result<String, PrimitiveError> {
    c.query_one(
        "SELECT 'track_counts=' || current_setting('track_counts') || ', stats_reset=' \
           || coalesce((SELECT stats_reset::text FROM pg_stat_database WHERE datname = current_database()), 'never') \
           || ', started=' || pg_postmaster_start_time()::text",
        &[],
    )
    .await
    .map(|r| r.get(0))
    .map_err(|e| err(op, db, e))
}

/// The changes of tables with more than `max` changed keys are not kept key by key: those
/// tables are compared whole at the fence (memory stays bounded by `max` per table).
fn cap(changes: &mut Changes, max: usize) {
    let over: Vec<String> = changes
        .keys
        .iter()
        .filter(|(_, k)| k.len() > max)
        .map(|(t, _)| t.clone())
        .collect();
    for t in over {
        let n = changes.keys.remove(&t).map_or(0, |k| k.len());
        changes.untracked.entry(t).or_insert_with(|| {
            format!(
                "more than max_pending ({max}) keys changed since the pre-pass began ({n} seen)"
            )
        });
    }
}

/// The key decoding reads per table (`schema.name`). Only a primary key under the default
/// replica identity (or FULL) is printed for every change, the old key of a key-changing
/// UPDATE included; any other table's changes cannot be told by key (an empty key).
fn tracked_keys<'a>(
    tables: impl Iterator<Item = (&'a String, &'a TableInfo)>,
    shapes: &HashMap<String, Shape>,
) -> HashMap<String, Vec<String>> {
    tables
        .map(|(name, t)| {
            let identity = shapes.get(name).map(|s| s.identity.as_str());
            let key = if matches!(identity, Some("d" | "f")) {
                t.key.clone()
            } else {
                Vec::new()
            };
            (name.clone(), key)
        })
        .collect()
}

/// One database's three connections of a pass: `ctl` on the source for positions and
/// decoding (its text output pinned), `src` and `dst` for the two sides' snapshots.
async fn connections(
    pool: &Pool,
    (source, target): (&str, &str),
    dbname: &str,
    op: &str,
    st: Duration,
) -> Result<(Arc<Client>, Arc<Client>, Arc<Client>), PrimitiveError> {
    let ctl = open(pool, source, dbname, op, st).await?;
    ctl.batch_execute(DECODE_OUTPUT)
        .await
        .map_err(|e| err(op, source, e))?;
    let src = open(pool, source, dbname, op, st).await?;
    let dst = open(pool, target, dbname, op, st).await?;
    Ok((ctl, src, dst))
}

/// How a table is cut into segments: the SQL expression of a row's segment.
struct Cut {
    seg: String,
    method: &'static str,
    segments: i64,
}

fn sum_of(v: &Option<String>) -> i128 {
    v.as_deref().and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Rows of `keys` on one side: `index (1-based) -> (segment, row hash)`.
async fn lookup(
    c: &Client,
    t: &TableInfo,
    cut: &str,
    hash: &str,
    keys: &[Vec<String>],
    (op, db): (&str, &str),
) -> Result<HashMap<i64, (i64, String)>, PrimitiveError> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    if let Some(k) = keys.iter().find(|k| k.len() != t.key.len()) {
        return Err(PrimitiveError::new(
            A,
            op,
            ErrorKind::Invalid,
            format!(
                "{db}: key {k:?} does not fit {}'s primary key {:?}",
                t.sql_name(),
                t.key
            ),
            "the table's key changed since the pre-pass: run the pre-pass again",
        ));
    }
    let cols: Vec<Vec<String>> = (0..t.key.len())
        .map(|i| keys.iter().map(|k| k[i].clone()).collect())
        .collect();
    let names: Vec<String> = (0..t.key.len()).map(|i| format!("c{i}")).collect();
    let params: Vec<String> = (1..=t.key.len()).map(|i| format!("${i}::text[]")).collect();
    let on: Vec<String> = t
        .key
        .iter()
        .zip(&t.key_types)
        .zip(&names)
        .map(|((k, ty), c)| format!("_gw.{} = u.{c}::{ty}", quote_ident(k)))
        .collect();
    let sql = format!(
        "SELECT u.i, ({cut})::bigint, ({hash})::text FROM unnest({}) WITH ORDINALITY AS u({}, i) \
         JOIN {} _gw ON {}",
        params.join(", "),
        names.join(", "),
        t.sql_name(),
        on.join(" AND ")
    );
    let args: Vec<&(dyn ToSql + Sync)> = cols.iter().map(|c| c as &(dyn ToSql + Sync)).collect();
    let rows = c.query(&sql, &args).await.map_err(|e| err(op, db, e))?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get::<_, i64>(0),
                (r.get::<_, i64>(1), r.get::<_, String>(2)),
            )
        })
        .collect())
}

/// `keys` (decoded values, in key column order) as `col::text` prints them.
async fn canonical(
    c: &Client,
    t: &TableInfo,
    keys: &[Vec<String>],
    (op, db): (&str, &str),
) -> Result<HashSet<Vec<String>>, PrimitiveError> {
    if keys.is_empty() {
        return Ok(HashSet::new());
    }
    let n = t.key.len();
    let cols: Vec<Vec<String>> = (0..n)
        .map(|i| keys.iter().map(|k| k[i].clone()).collect())
        .collect();
    let names: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
    let params: Vec<String> = (1..=n).map(|i| format!("${i}::text[]")).collect();
    let casts: Vec<String> = names
        .iter()
        .zip(&t.key_types)
        .map(|(c, ty)| format!("u.{c}::{ty}::text"))
        .collect();
    let sql = format!(
        "SELECT ARRAY[{}] FROM unnest({}) AS u({})",
        casts.join(", "),
        params.join(", "),
        names.join(", ")
    );
    let args: Vec<&(dyn ToSql + Sync)> = cols.iter().map(|c| c as &(dyn ToSql + Sync)).collect();
    let rows = c.query(&sql, &args).await.map_err(|e| err(op, db, e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The rows of segments `segs` on one side: key values -> row hash.
async fn leaves(
    c: &Client,
    t: &TableInfo,
    cut: &str,
    hash: &str,
    segs: &[i64],
    (op, db): (&str, &str),
) -> Result<HashMap<Vec<String>, String>, PrimitiveError> {
    let key = t
        .key
        .iter()
        .map(|k| format!("{}::text", quote_ident(k)))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT ARRAY[{key}], ({hash})::text FROM {} _gw WHERE ({cut})::bigint = ANY($1)",
        t.sql_name()
    );
    let rows = c
        .query(&sql, &[&segs.to_vec()])
        .await
        .map_err(|e| err(op, db, e))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

fn show_key(k: &[String]) -> String {
    if k.len() == 1 {
        k[0].clone()
    } else {
        format!("({})", k.join(","))
    }
}

/// A key left to a later read: `suspect` when the last read found it different with no change
/// in between (a second such read proves the difference).
#[derive(Clone, Copy, PartialEq)]
enum Left {
    Changed,
    Suspect,
}

/// One database's tables during the pre-pass.
struct Job {
    name: String,
    info: TableInfo,
    rep: PrepassTable,
    left: HashMap<Vec<String>, Left>,
}

impl LiveValidate {
    /// The pre-pass; a failed one drops the slots it created (its step never completed, so
    /// no undo would), else they would hold the source's WAL.
    pub(super) async fn prepass_async(
        &self,
        source: &str,
        target: &str,
        opts: &PrepassOptions,
        st: Duration,
    ) -> Result<PrepassReport, PrimitiveError> {
        let mut created: Vec<Tracking> = Vec::new();
        let out = self
            .prepass_inner(source, target, opts, st, &mut created)
            .await;
        if out.is_err() {
            let partial = PrepassReport {
                tracking: created,
                ..PrepassReport::empty(source, target)
            };
            let _ = self.end_async(source, &partial, st).await;
        }
        out
    }

    async fn prepass_inner(
        &self,
        source: &str,
        target: &str,
        opts: &PrepassOptions,
        st: Duration,
        created: &mut Vec<Tracking>,
    ) -> Result<PrepassReport, PrimitiveError> {
        let started = Instant::now();
        let pool = &self.pool;
        let databases = pool.databases(source, PRE, st).await.map_err(|mut e| {
            e.area = A.into();
            e
        })?;
        let mut report = PrepassReport {
            budget_rows_per_second: opts.rows_per_second,
            only: opts.tables.clone(),
            mode: opts.mode.clone(),
            ..PrepassReport::empty(source, target)
        };
        let wanted: BTreeSet<&str> = opts.tables.iter().map(String::as_str).collect();
        let mut seen = BTreeSet::new();
        let copts = CompareOptions {
            tables: opts.tables.clone(),
            leaf_rows: opts.leaf_rows,
            max_keys: opts.max_keys,
            mode: opts.mode.clone(),
            ..CompareOptions::default()
        };
        let replay_wait = (st / 2).min(REPLAY_WAIT);
        // Keep under the read budget: after each read, wait until the rows read so far are
        // within `rows_per_second` of the time spent.
        let pace = |rows: i64| {
            let budget = opts.rows_per_second;
            async move {
                if budget > 0 {
                    let due = Duration::from_secs_f64(rows as f64 / budget as f64);
                    let spent = started.elapsed();
                    if due > spent {
                        tokio::time::sleep(due - spent).await;
                    }
                }
            }
        };
        for (i, dbname) in databases.iter().enumerate() {
            let prefix = if i == 0 {
                String::new()
            } else {
                format!("{dbname}:")
            };
            let (ctl, src, dst) = connections(pool, (source, target), dbname, PRE, st).await?;
            let pair = Pair {
                src: src.clone(),
                dst: dst.clone(),
                source: source.into(),
                target: target.into(),
                hash: probe_hash(&src, &dst).await,
                opts: copts.clone(),
            };
            let (ta, tb) = (
                list_tables(&src, PRE, source).await?,
                list_tables(&dst, PRE, target).await?,
            );
            let mut jobs: Vec<Job> = Vec::new();
            for name in ta.keys().chain(tb.keys()).collect::<BTreeSet<_>>() {
                let display = format!("{prefix}{name}");
                if !wanted.is_empty() && !wanted.contains(display.as_str()) {
                    continue;
                }
                seen.insert(display.clone());
                let mut info = match (ta.get(name), tb.get(name)) {
                    (Some(x), _) => x.clone(),
                    (None, Some(y)) => y.clone(),
                    (None, None) => continue,
                };
                let mut rep = PrepassTable {
                    table: display.clone(),
                    method: String::new(),
                    hash: "value".into(),
                    key: info.key.clone(),
                    equal: true,
                    rows: 0,
                    segments: 0,
                    mismatched_segments: 0,
                    explained_segments: 0,
                    missing_on_target: Vec::new(),
                    extra_on_target: Vec::new(),
                    different: Vec::new(),
                    truncated: false,
                    pending: Vec::new(),
                    rescan: None,
                    counters: Vec::new(),
                    shape: String::new(),
                };
                match (ta.get(name), tb.get(name)) {
                    (Some(_), None) | (None, Some(_)) => {
                        // Both sides are listed at once, with replication running: a table
                        // created or dropped a moment ago is on one side only. The fence pass
                        // compares it (or reports it missing) with both sides static.
                        rep.method = if ta.contains_key(name) {
                            "missing-on-target"
                        } else {
                            "missing-on-source"
                        }
                        .into();
                        rep.rescan = Some(format!(
                            "{} when the pre-pass listed the tables",
                            rep.method.replace('-', " ")
                        ));
                    }
                    (Some(x), Some(_)) if x.unlogged => {
                        rep.method = "unlogged".into();
                        rep.equal = false;
                    }
                    (Some(x), Some(y)) => {
                        info.reltuples = x.reltuples.max(y.reltuples);
                        if x.key != y.key || x.key_types != y.key_types {
                            info.key.clear();
                            info.key_types.clear();
                            rep.key.clear();
                        }
                    }
                    (None, None) => {}
                }
                jobs.push(Job {
                    name: name.clone(),
                    info,
                    rep,
                    left: HashMap::new(),
                });
            }
            let shapes_before = shapes(&ctl, PRE, source).await?;
            let keys = tracked_keys(
                jobs.iter()
                    .filter(|j| j.rep.method.is_empty())
                    .map(|j| (&j.name, &j.info)),
                &shapes_before,
            );
            // Whether the source feeds a physical replica now: then a read of the replica waits
            // for its walsender (one that is away or has not reported is not "replayed").
            let followed: bool = ctl
                .query_one(
                    "SELECT count(*) > 0 FROM pg_stat_replication r WHERE r.pid NOT IN \
                       (SELECT active_pid FROM pg_replication_slots WHERE slot_type = 'logical' AND active_pid IS NOT NULL)",
                    &[],
                )
                .await
                .map_err(|e| err(PRE, source, e))?
                .get(0);
            // Tracking starts before the first read: every change after its point is decoded.
            let mut tracking = start_tracking(&ctl, source, dbname).await?;
            created.push(tracking.clone());
            tracking.epoch = Some(stats_epoch(&ctl, PRE, source).await?);
            let slot = tracking.slot.clone();
            let mut changes = Changes::default();
            for job in jobs.iter_mut().filter(|j| j.rep.method.is_empty()) {
                if let Some(sh) = shapes_before.get(&job.name) {
                    job.rep.counters = sh.counters.clone();
                    job.rep.shape = sh.shape.clone();
                }
                let read = self
                    .prepass_table(
                        &pair,
                        &ctl,
                        job,
                        slot.as_deref(),
                        &keys,
                        &mut changes,
                        (replay_wait, followed),
                    )
                    .await;
                let _ = pair.both_batch("ROLLBACK").await;
                report.rows_read += read?;
                cap(&mut changes, opts.max_pending);
                pace(report.rows_read).await;
            }
            // Every key changed since the slot's point is unproven: left to settle rounds, then
            // to the fence pass.
            if let Some(slot) = &slot {
                for job in &mut jobs {
                    if let Some(ks) = changes.of(&job.name) {
                        for k in ks {
                            job.left.entry(k.clone()).or_insert(Left::Changed);
                        }
                    }
                }
                for round in 0..opts.settle_rounds.max(0) {
                    if jobs.iter().all(|j| j.left.is_empty()) {
                        break;
                    }
                    report.settle_rounds = report.settle_rounds.max(round + 1);
                    let (read, now) = self
                        .settle(
                            &pair,
                            &ctl,
                            &mut jobs,
                            slot,
                            &keys,
                            (replay_wait, followed),
                            opts.max_keys,
                        )
                        .await?;
                    changes.merge(now);
                    cap(&mut changes, opts.max_pending);
                    report.rows_read += read;
                    pace(report.rows_read).await;
                }
            }
            for (t, why) in &changes.untracked {
                if let Some(job) = jobs.iter_mut().find(|j| &j.name == t) {
                    job.rep.rescan.get_or_insert_with(|| why.clone());
                }
            }
            if let Some(line) = &changes.unreadable {
                for job in &mut jobs {
                    job.rep.rescan.get_or_insert_with(|| {
                        format!("a decoded change could not be read ({line:?}): every table of the database is rescanned")
                    });
                }
            }
            if let Some(slot) = &slot {
                tracking.confirmed_lsn = ctl
                    .query_one(
                        "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
                        &[slot],
                    )
                    .await
                    .map_err(|e| err(PRE, source, e))?
                    .get(0);
            }
            for mut job in jobs {
                let mut pending: Vec<Vec<String>> = job.left.into_keys().collect();
                pending.sort();
                if pending.len() > opts.max_pending {
                    job.rep.rescan.get_or_insert_with(|| {
                        format!(
                            "{} keys changed during the pre-pass (more than max_pending {})",
                            pending.len(),
                            opts.max_pending
                        )
                    });
                    pending.clear();
                }
                if job.rep.rescan.is_some() {
                    pending.clear();
                }
                job.rep.pending = pending;
                report.tables.push(job.rep);
            }
            report.tracking.push(tracking);
        }
        if let Some(unknown) = opts.tables.iter().find(|t| !seen.contains(*t)) {
            return Err(unknown_table(
                PRE,
                source,
                unknown,
                "name tables as schema.table (database:schema.table outside the connection's database)".into(),
            ));
        }
        report.tables.sort_by(|a, b| a.table.cmp(&b.table));
        report.elapsed_ms = started.elapsed().as_millis() as i64;
        report.rows_per_second =
            report.rows_read as f64 / started.elapsed().as_secs_f64().max(1e-3);
        Ok(report.finish())
    }

    /// One table's two reads (see the module comment); returns the source rows read. Leaves
    /// both snapshots open on error (the caller rolls back).
    #[allow(clippy::too_many_arguments)]
    async fn prepass_table(
        &self,
        pair: &Pair,
        ctl: &Client,
        job: &mut Job,
        slot: Option<&str>,
        keys: &HashMap<String, Vec<String>>,
        changes: &mut Changes,
        (replay_wait, followed): (Duration, bool),
    ) -> Result<i64, PrimitiveError> {
        let (source, target) = (pair.source.as_str(), pair.target.as_str());
        let t = job.info.clone();
        begin_snapshot(&pair.src, PRE, source).await?;
        let by_value = pair.opts.mode != "text" && hashable_on(&pair.src, &t, source).await?;
        job.rep.hash = if by_value { "value" } else { "text" }.into();
        let hash = row_hash(pair.hash, by_value);
        let cut = self.cut(pair, &t).await?;
        job.rep.method = cut.method.into();
        job.rep.segments = cut.segments;
        let summary = format!(
            "SELECT ({})::bigint, count(*)::bigint, sum({hash})::text FROM {} _gw GROUP BY 1",
            cut.seg,
            t.sql_name()
        );
        let read = |rows: Vec<tokio_postgres::Row>| -> Segs {
            rows.iter()
                .map(|r| (r.get::<_, i64>(0), (r.get::<_, i64>(1), r.get(2))))
                .collect()
        };
        // The source in its snapshot, then the position every commit it sees is before.
        let a = read(
            pair.src
                .query(&summary, &[])
                .await
                .map_err(|e| err(PRE, source, e))?,
        );
        let l_s = wal_position(&pair.src, PRE, source).await?;
        job.rep.rows = a.values().map(|v| v.0).sum();
        if !replayed(ctl, l_s, replay_wait, followed, PRE, source).await? {
            job.rep.rescan = Some(format!(
                "the replica had not replayed the source's read position within {} s",
                replay_wait.as_secs()
            ));
            return Ok(job.rep.rows);
        }
        // The replica's snapshot starts at its first query, after it replayed `L_S`.
        begin_snapshot(&pair.dst, PRE, target).await?;
        let b = read(
            pair.dst
                .query(&summary, &[])
                .await
                .map_err(|e| err(PRE, target, e))?,
        );
        // The replica's snapshot holds at most what the source had flushed by now, and
        // decoding reads up to the flush position.
        let l_r = flush_position(ctl, PRE, source).await?;
        if let Some(slot) = slot {
            changes.merge(decode(ctl, slot, Some(l_r), true, keys, (PRE, source)).await?);
        }
        let mut bad: Vec<i64> = a
            .keys()
            .chain(b.keys())
            .copied()
            .collect::<BTreeSet<i64>>()
            .into_iter()
            .filter(|s| a.get(s) != b.get(s))
            .collect();
        job.rep.mismatched_segments = bad.len() as i64;
        if bad.is_empty() {
            return Ok(job.rep.rows);
        }
        let untracked = changes.untracked.get(&job.name).cloned();
        let Some(_) = slot.filter(|_| !t.key.is_empty() && untracked.is_none()) else {
            // No keys to explain the difference by. With decoding, proven when no transaction
            // changed the table since the slot's point. By counters never: PostgreSQL 15
            // flushes a session's counters up to 10 s (60 s when busy) after its commit, so
            // counters that did not move do not prove nobody wrote between the two reads.
            let moved = match (slot, &untracked) {
                (Some(_), Some(why)) => Some(why.clone()),
                (Some(_), None) if changes.of(&job.name).is_some_and(|k| !k.is_empty()) => {
                    Some("changed while the pre-pass read it".into())
                }
                (Some(_), None) => None,
                (None, _) => Some(
                    "without logical decoding the rows that changed between the two reads cannot be told from differences".into(),
                ),
            };
            if let Some(why) = moved {
                job.rep.rescan = Some(format!("{} segments unsettled: {why}", bad.len()));
                return Ok(job.rep.rows);
            }
            self.differences(pair, job, &cut.seg, &hash, &bad, None)
                .await?;
            return Ok(job.rep.rows);
        };
        // Subtract, on both sides, the rows that changed: what is left must agree.
        let changed: Vec<Vec<String>> = changes
            .of(&job.name)
            .map(|k| k.iter().cloned().collect())
            .unwrap_or_default();
        let (x, y) = (
            lookup(&pair.src, &t, &cut.seg, &hash, &changed, (PRE, source)).await?,
            lookup(&pair.dst, &t, &cut.seg, &hash, &changed, (PRE, target)).await?,
        );
        let adjust = |segs: &Segs, found: &HashMap<i64, (i64, String)>| {
            let mut out: HashMap<i64, (i64, i128)> = segs
                .iter()
                .map(|(s, (n, sum))| (*s, (*n, sum_of(sum))))
                .collect();
            for (seg, h) in found.values() {
                let e = out.entry(*seg).or_insert((0, 0));
                e.0 -= 1;
                e.1 -= h.parse::<i128>().unwrap_or(0);
            }
            out
        };
        let (ax, by) = (adjust(&a, &x), adjust(&b, &y));
        let zero = (0, 0);
        bad.retain(|s| ax.get(s).unwrap_or(&zero) != by.get(s).unwrap_or(&zero));
        job.rep.explained_segments = job.rep.mismatched_segments - bad.len() as i64;
        if !bad.is_empty() {
            // In the form the leaves print keys (`col::text`), not decoding's (the type's
            // output: `bpchar` keeps its padding there, `inet` drops its `/32`).
            let changed = canonical(&pair.src, &t, &changed, (PRE, source)).await?;
            self.differences(pair, job, &cut.seg, &hash, &bad, Some(&changed))
                .await?;
        }
        Ok(job.rep.rows + x.len() as i64)
    }

    /// The rows of segments `bad` on both sides (in the open snapshots), but those in
    /// `changed`. With change tracking (`changed` is `Some`) a row that differs is a suspect
    /// for the settle rounds; without (the table did not change while it was read) a
    /// difference is proven.
    async fn differences(
        &self,
        pair: &Pair,
        job: &mut Job,
        cut: &str,
        hash: &str,
        bad: &[i64],
        changed: Option<&HashSet<Vec<String>>>,
    ) -> Result<(), PrimitiveError> {
        let t = &job.info;
        let max = pair.opts.max_keys;
        if t.key.is_empty() {
            // Rows without a key: the multiset of row texts, as `compare` reports them.
            let q = format!(
                "SELECT {ROW}, count(*)::bigint FROM {} _gw WHERE ({cut})::bigint = ANY($1) GROUP BY 1",
                t.sql_name()
            );
            let segs = bad.to_vec();
            let args: [&(dyn ToSql + Sync); 1] = [&segs];
            let (a, b) = tokio::join!(pair.src.query(&q, &args), pair.dst.query(&q, &args));
            let m = |rows: Vec<tokio_postgres::Row>| -> BTreeMap<String, i64> {
                rows.iter().map(|r| (r.get(0), r.get(1))).collect()
            };
            let (a, b) = (
                m(a.map_err(|e| err(PRE, &pair.source, e))?),
                m(b.map_err(|e| err(PRE, &pair.target, e))?),
            );
            let rep = &mut job.rep;
            for (x, y, list) in [
                (&a, &b, &mut rep.missing_on_target),
                (&b, &a, &mut rep.extra_on_target),
            ] {
                for (row, n) in x {
                    for _ in 0..(n - y.get(row).copied().unwrap_or(0)).max(0) {
                        rep.truncated |= push_capped(list, vec![row.clone()], max);
                    }
                }
            }
            rep.equal = false;
            return Ok(());
        }
        let (a, b) = (
            leaves(&pair.src, t, cut, hash, bad, (PRE, &pair.source)).await?,
            leaves(&pair.dst, t, cut, hash, bad, (PRE, &pair.target)).await?,
        );
        let keys: BTreeSet<&Vec<String>> = a
            .keys()
            .chain(b.keys())
            .filter(|k| !changed.is_some_and(|c| c.contains(*k)) && a.get(*k) != b.get(*k))
            .collect();
        for k in keys {
            if changed.is_some() {
                job.left.insert(k.clone(), Left::Suspect);
                continue;
            }
            let rep = &mut job.rep;
            rep.equal = false;
            let list = match (a.contains_key(k), b.contains_key(k)) {
                (true, false) => &mut rep.missing_on_target,
                (false, true) => &mut rep.extra_on_target,
                _ => &mut rep.different,
            };
            rep.truncated |= push_capped(list, vec![show_key(k)], max);
        }
        Ok(())
    }

    /// How table `t` is cut into segments in the source's snapshot (as `compare` does).
    async fn cut(&self, pair: &Pair, t: &TableInfo) -> Result<Cut, PrimitiveError> {
        let leaf_rows = pair.opts.leaf_rows.max(1);
        let integer = t.key.len() == 1
            && matches!(t.key_types[0].as_str(), "smallint" | "integer" | "bigint");
        if integer {
            let k = quote_ident(&t.key[0]);
            let r = pair
                .src
                .query_one(
                    &format!(
                        "SELECT min({k})::bigint, max({k})::bigint FROM {}",
                        t.sql_name()
                    ),
                    &[],
                )
                .await
                .map_err(|e| err(PRE, &pair.source, e))?;
            let (lo, hi): (Option<i64>, Option<i64>) = (r.get(0), r.get(1));
            let (lo, hi) = (lo.unwrap_or(0), hi.unwrap_or(0));
            if let Some(end) = hi.checked_add(1).filter(|h| h.checked_sub(lo).is_some()) {
                let span = end as i128 - lo as i128;
                let n = (span / leaf_rows as i128 + 1).clamp(1, MAX_SEGMENTS as i128) as i64;
                let (width, segs) = split(lo, end, n);
                // Rows outside the source's range (only the replica has them) fall into the
                // first segment or past the last: still compared.
                return Ok(Cut {
                    seg: format!("({k}::bigint - ({lo})) / {width}"),
                    method: "segments",
                    segments: segs.len() as i64,
                });
            }
        }
        let keyed = !t.key.is_empty();
        let key_text = if keyed { key_text(t) } else { ROW.to_string() };
        let n = (t.reltuples / leaf_rows + 1).clamp(MIN_BUCKETS, MAX_SEGMENTS);
        Ok(Cut {
            seg: format!("((({}) % {n}) + {n}) % {n}", pair.hash.of(&key_text, 7)),
            method: if keyed {
                "hashed-key"
            } else {
                "no-primary-key"
            },
            segments: n,
        })
    }

    /// A settle round over the keys left (see the module comment): returns the source rows
    /// read and the changes decoded during the round.
    #[allow(clippy::too_many_arguments)]
    async fn settle(
        &self,
        pair: &Pair,
        ctl: &Client,
        jobs: &mut [Job],
        slot: &str,
        keys: &HashMap<String, Vec<String>>,
        (replay_wait, followed): (Duration, bool),
        max_keys: usize,
    ) -> Result<(i64, Changes), PrimitiveError> {
        let (source, target) = (pair.source.as_str(), pair.target.as_str());
        // Tables already left whole to the fence pass (or on one side only) are not read.
        let lists: Vec<Vec<Vec<String>>> = jobs
            .iter()
            .map(|j| {
                if j.rep.rescan.is_some() {
                    Vec::new()
                } else {
                    j.left.keys().cloned().collect()
                }
            })
            .collect();
        // One side's rows of every list in one snapshot (and, `with_position`, the WAL
        // position every commit it sees is before); the snapshot ends either way.
        async fn read_side(
            c: &Client,
            jobs: &[Job],
            lists: &[Vec<Vec<String>>],
            hash: HashFn,
            with_position: bool,
            db: &str,
        ) -> Result<(Vec<HashMap<i64, (i64, String)>>, Option<i64>), PrimitiveError> {
            begin_snapshot(c, PRE, db).await?;
            let read = async {
                let mut out = Vec::new();
                for (j, list) in jobs.iter().zip(lists) {
                    let h = row_hash(hash, j.rep.hash == "value");
                    out.push(lookup(c, &j.info, "0", &h, list, (PRE, db)).await?);
                }
                let at = match with_position {
                    true => Some(wal_position(c, PRE, db).await?),
                    false => None,
                };
                Ok::<_, PrimitiveError>((out, at))
            }
            .await;
            let _ = c.batch_execute("ROLLBACK").await;
            read
        }
        let (on_source, l_s) = read_side(&pair.src, jobs, &lists, pair.hash, true, source).await?;
        let l_s = l_s.unwrap_or(0);
        let reached = replayed(ctl, l_s, replay_wait, followed, PRE, source).await?;
        let (on_target, _) = read_side(&pair.dst, jobs, &lists, pair.hash, false, target).await?;
        // Read after the replica's snapshot: it holds at most what the source flushed.
        let l_r = flush_position(ctl, PRE, source).await;
        let now = decode(ctl, slot, Some(l_r?), true, keys, (PRE, source)).await?;
        let mut read = 0;
        for (((j, list), a), b) in jobs.iter_mut().zip(&lists).zip(on_source).zip(on_target) {
            read += list.len() as i64;
            let changed = now.of(&j.name);
            // A suspect's key is in `col::text` form, decoded keys in the type's output form.
            let canon = match changed {
                Some(c) if !list.is_empty() && !c.is_empty() => {
                    let c: Vec<Vec<String>> = c.iter().cloned().collect();
                    canonical(&pair.src, &j.info, &c, (PRE, source)).await?
                }
                _ => HashSet::new(),
            };
            for (i, k) in list.iter().enumerate() {
                let i = i as i64 + 1;
                if changed.is_some_and(|c| c.contains(k)) || canon.contains(k) || !reached {
                    j.left.insert(k.clone(), Left::Changed);
                    continue;
                }
                let (x, y) = (a.get(&i).map(|v| &v.1), b.get(&i).map(|v| &v.1));
                if x == y {
                    j.left.remove(k);
                } else if j.left.get(k) == Some(&Left::Suspect) {
                    // Different twice, with no change to the row in between: proven.
                    j.left.remove(k);
                    j.rep.equal = false;
                    let list = match (x, y) {
                        (Some(_), None) => &mut j.rep.missing_on_target,
                        (None, Some(_)) => &mut j.rep.extra_on_target,
                        _ => &mut j.rep.different,
                    };
                    j.rep.truncated |= push_capped(list, vec![show_key(k)], max_keys);
                } else {
                    j.left.insert(k.clone(), Left::Suspect);
                }
            }
            if let Some(c) = changed {
                for k in c {
                    j.left.entry(k.clone()).or_insert(Left::Changed);
                }
            }
        }
        Ok((read, now))
    }

    pub(super) async fn fence_pass_async(
        &self,
        source: &str,
        target: &str,
        pre: &PrepassReport,
        st: Duration,
    ) -> Result<Report, PrimitiveError> {
        let started = Instant::now();
        let pool = &self.pool;
        let databases = pool.databases(source, FENCE, st).await.map_err(|mut e| {
            e.area = A.into();
            e
        })?;
        let mut stats = FencePassStats::default();
        let mut rescan: Vec<(String, String)> = Vec::new();
        let mut tables: Vec<TableReport> = Vec::new();
        let before: HashMap<&str, &PrepassTable> =
            pre.tables.iter().map(|t| (t.table.as_str(), t)).collect();
        let mode = pre.mode.as_str();
        for (i, dbname) in databases.iter().enumerate() {
            let prefix = if i == 0 {
                String::new()
            } else {
                format!("{dbname}:")
            };
            let (ctl, src, dst) = connections(pool, (source, target), dbname, FENCE, st).await?;
            let (ta, tb) = (
                list_tables(&src, FENCE, source).await?,
                list_tables(&dst, FENCE, target).await?,
            );
            let now = shapes(&ctl, FENCE, source).await?;
            let tracking = pre.tracking.iter().find(|t| &t.database == dbname);
            let keys = tracked_keys(ta.iter(), &now);
            // What changed since the pre-pass, or why it cannot be told.
            let mut lost: Option<String> = None;
            let mut changes = Changes::default();
            match tracking {
                None => lost = Some("the database was not in the pre-pass".into()),
                Some(t) if t.how == "logical-decoding" => {
                    let slot = t.slot.clone().unwrap_or_default();
                    let row = ctl
                        .query_opt(
                            "SELECT confirmed_flush_lsn::text, pg_wal_lsn_diff(pg_current_wal_insert_lsn(), confirmed_flush_lsn)::bigint, \
                               restart_lsn IS NULL OR wal_status = 'lost' \
                             FROM pg_replication_slots WHERE slot_name = $1",
                            &[&slot],
                        )
                        .await
                        .map_err(|e| err(FENCE, source, e))?;
                    match row {
                        None => lost = Some(format!("the pre-pass's slot {slot} is gone")),
                        Some(r) if r.get::<_, Option<bool>>(2) == Some(true) => {
                            lost = Some(format!(
                                "the pre-pass's slot {slot} lost the WAL it held (max_slot_wal_keep_size)"
                            ))
                        }
                        Some(r) if r.get::<_, Option<String>>(0) != t.confirmed_lsn => {
                            lost = Some(format!(
                                "the pre-pass's slot {slot} moved from {:?} to {:?} (someone consumed its changes)",
                                t.confirmed_lsn,
                                r.get::<_, Option<String>>(0)
                            ))
                        }
                        Some(r) => {
                            stats.decoded_bytes += r.get::<_, Option<i64>>(1).unwrap_or(0);
                            match decode(&ctl, &slot, None, false, &keys, (FENCE, source)).await {
                                Ok(c) => {
                                    changes = c;
                                    stats.tracking.push(format!("{dbname}: logical decoding"));
                                }
                                Err(e) => {
                                    lost = Some(format!(
                                        "the changes since the pre-pass could not be decoded ({})",
                                        e.message
                                    ))
                                }
                            }
                        }
                    }
                    if let Some(why) = &lost {
                        stats.tracking.push(format!("{dbname}: {why}"));
                    }
                }
                Some(t) => {
                    let epoch = Some(stats_epoch(&ctl, FENCE, source).await?);
                    if epoch != t.epoch {
                        lost = Some(format!(
                            "the statistics counters are not comparable with the pre-pass's ({} then, {} now)",
                            t.epoch.as_deref().unwrap_or("unknown"),
                            epoch.as_deref().unwrap_or("unknown")
                        ));
                    } else if epoch
                        .as_deref()
                        .is_some_and(|e| e.starts_with("track_counts=off"))
                    {
                        lost = Some("track_counts is off: the counters do not count".into());
                    }
                    stats.tracking.push(format!(
                        "{dbname}: counters{}",
                        lost.as_deref()
                            .map(|w| format!(" — {w}"))
                            .unwrap_or_default()
                    ));
                }
            }
            if let Some(line) = &changes.unreadable {
                lost = Some(format!("a decoded change could not be read ({line:?})"));
            }
            let counting = tracking.is_some_and(|t| t.how == "counters");
            let mut by_key: Vec<(String, TableInfo, Vec<Vec<String>>)> = Vec::new();
            for name in ta.keys().chain(tb.keys()).collect::<BTreeSet<_>>() {
                let display = format!("{prefix}{name}");
                // A pre-pass of some tables: the fence pass proves those.
                if !pre.only.is_empty() && !pre.only.contains(&display) {
                    continue;
                }
                let p = before.get(display.as_str());
                let why: Option<String> = match (p, ta.get(name), tb.get(name)) {
                    (_, None, _) | (_, _, None) => Some("on one side only".into()),
                    (None, _, _) => Some("not in the pre-pass (created since?)".into()),
                    (Some(p), Some(_), Some(_)) if !p.equal => Some("differed at the pre-pass".into()),
                    (Some(p), Some(_), Some(_)) if p.rescan.is_some() => p.rescan.clone(),
                    (Some(p), Some(x), Some(_)) if p.key != x.key => Some(format!(
                        "its primary key changed since the pre-pass ({:?} → {:?})",
                        p.key, x.key
                    )),
                    (Some(p), Some(_), Some(_))
                        if now.get(name).map(|x| &x.shape) != Some(&p.shape) =>
                    {
                        Some("its storage or definition changed since the pre-pass (TRUNCATE, ALTER, a rewrite)".into())
                    }
                    _ if lost.is_some() => lost.clone(),
                    (Some(p), Some(_), Some(_)) if counting => now
                        .get(name)
                        .map(|sh| &sh.counters)
                        .filter(|c| **c != p.counters)
                        .map(|c| {
                            format!(
                                "modified since the pre-pass (pg_stat_user_tables ins/upd/del {:?} → {:?})",
                                p.counters, c
                            )
                        }),
                    _ => changes.untracked.get(name.as_str()).cloned(),
                };
                if let Some(why) = why {
                    rescan.push((display, why));
                    continue;
                }
                let p = p.expect("checked above");
                let mut ks: BTreeSet<Vec<String>> = p.pending.iter().cloned().collect();
                if let Some(c) = changes.of(name) {
                    ks.extend(c.iter().cloned());
                }
                if ks.is_empty() {
                    stats.unchanged_tables += 1;
                    let mut r = TableReport::new(&display, "unchanged", p.key.clone());
                    r.hash = p.hash.clone();
                    r.source_rows = p.rows;
                    r.target_rows = p.rows;
                    r.proven = Some(if counting {
                        "unchanged since its equal pre-pass (pg_stat_user_tables counters did not move)".into()
                    } else {
                        "unchanged since its equal pre-pass (logical decoding: no change)".into()
                    });
                    tables.push(r);
                } else {
                    by_key.push((display, ta[name].clone(), ks.into_iter().collect()));
                }
            }
            if !by_key.is_empty() {
                let pair = Pair {
                    src: src.clone(),
                    dst: dst.clone(),
                    source: source.into(),
                    target: target.into(),
                    hash: probe_hash(&src, &dst).await,
                    opts: CompareOptions::default(),
                };
                pair.both_batch(&format!(
                    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; {PIN_OUTPUT}"
                ))
                .await?;
                let out = self
                    .by_keys(&pair, &by_key, mode, &before, &mut stats)
                    .await;
                let _ = pair.both_batch("ROLLBACK").await;
                tables.extend(out?);
            }
        }
        let copts = CompareOptions {
            tables: rescan.iter().map(|(t, _)| t.clone()).collect(),
            mode: mode.to_string(),
            ..CompareOptions::default()
        };
        let mut report = self.compare_async(source, target, &copts, true, st).await?;
        for t in &mut report.tables {
            if let Some((_, why)) = rescan.iter().find(|(n, _)| *n == t.table) {
                t.proven = Some(format!("rescanned: {why}"));
                stats.rescanned_tables.push(t.table.clone());
                stats.rescanned_rows += t.source_rows.max(t.target_rows);
            }
        }
        report.tables.extend(tables);
        report.tables.sort_by(|a, b| a.table.cmp(&b.table));
        // The tracking ends once the whole pass has its answer (a retry of a pass that failed
        // half-way still finds the slots). A slot that cannot be dropped now is reported, not
        // a failure: the comparison stands, and the pre-pass step's undo drops it.
        if let Err(e) = self.end_async(source, pre, st).await {
            stats.tracking.push(format!(
                "the tracking slots were not dropped: {}",
                e.message
            ));
        }
        stats.elapsed_ms = started.elapsed().as_millis() as i64;
        report.fence_pass = Some(stats);
        Ok(report.finish())
    }

    /// Tables' changed keys compared on both sides (both static: the source is fenced).
    async fn by_keys(
        &self,
        pair: &Pair,
        jobs: &[(String, TableInfo, Vec<Vec<String>>)],
        mode: &str,
        before: &HashMap<&str, &PrepassTable>,
        stats: &mut FencePassStats,
    ) -> Result<Vec<TableReport>, PrimitiveError> {
        let mut out = Vec::new();
        for (display, t, ks) in jobs {
            let by_value = mode != "text" && pair.hashable(t).await?;
            let h = row_hash(pair.hash, by_value);
            // Both sides at once: the lookups are random reads, cold after the pre-pass.
            let (a, b) = tokio::join!(
                lookup(&pair.src, t, "0", &h, ks, (FENCE, &pair.source)),
                lookup(&pair.dst, t, "0", &h, ks, (FENCE, &pair.target)),
            );
            let (a, b) = (a?, b?);
            stats.changed_keys += ks.len() as i64;
            let mut r = TableReport::new(display, "changed-keys", t.key.clone());
            r.hash = if by_value { "value" } else { "text" }.into();
            let rows = before.get(display.as_str()).map_or(0, |p| p.rows);
            r.source_rows = rows;
            r.target_rows = rows;
            r.segments = ks.len() as i64;
            for (i, k) in ks.iter().enumerate() {
                let i = i as i64 + 1;
                let (x, y) = (a.get(&i).map(|v| &v.1), b.get(&i).map(|v| &v.1));
                if x == y {
                    continue;
                }
                r.equal = false;
                let list = match (x, y) {
                    (Some(_), None) => &mut r.missing_on_target,
                    (None, Some(_)) => &mut r.extra_on_target,
                    _ => &mut r.different,
                };
                r.truncated |= push_capped(list, vec![show_key(k)], 100);
            }
            r.mismatched_segments = r.differences() as i64;
            r.proven = Some(format!(
                "{} keys changed since its equal pre-pass (or left by it) compared",
                ks.len()
            ));
            out.push(r);
        }
        Ok(out)
    }

    /// Drop the slots `pre` created (if they still exist).
    pub(super) async fn end_async(
        &self,
        source: &str,
        pre: &PrepassReport,
        st: Duration,
    ) -> Result<bool, PrimitiveError> {
        let mut any = false;
        for t in &pre.tracking {
            if let Some(slot) = &t.slot {
                let c = open(&self.pool, source, &t.database, "end_prepass", st).await?;
                any |= drop_slot(&c, slot, "end_prepass", source).await?;
            }
        }
        Ok(any)
    }
}

impl LiveValidate {
    /// Every `godwit_validate_*` slot of every database of `source`, dropped.
    pub(super) async fn end_tracking_async(
        &self,
        source: &str,
        st: Duration,
    ) -> Result<Vec<String>, PrimitiveError> {
        const OP: &str = "end_tracking";
        let databases = self.pool.databases(source, OP, st).await.map_err(|mut e| {
            e.area = A.into();
            e
        })?;
        let mut dropped = Vec::new();
        for dbname in &databases {
            let c = open(&self.pool, source, dbname, OP, st).await?;
            let names: Vec<String> = c
                .query(
                    "SELECT slot_name::text FROM pg_replication_slots \
                     WHERE database = current_database() AND starts_with(slot_name::text, $1) ORDER BY 1",
                    &[&TRACKING_SLOT_PREFIX],
                )
                .await
                .map_err(|e| err(OP, source, e))?
                .iter()
                .map(|r| r.get(0))
                .collect();
            for name in names {
                if drop_slot(&c, &name, OP, source).await? {
                    dropped.push(name);
                }
            }
        }
        Ok(dropped)
    }
}

/// Whether every column of `t` has a hash function (probed under a savepoint, in the open
/// snapshot of `c`).
async fn hashable_on(c: &Client, t: &TableInfo, db: &str) -> Result<bool, PrimitiveError> {
    c.batch_execute("SAVEPOINT godwit_probe")
        .await
        .map_err(|e| err(PRE, db, e))?;
    let probe = format!(
        "SELECT hash_record_extended(_gw, 0) FROM {} _gw LIMIT 1",
        t.sql_name()
    );
    let ok = c.query(&probe, &[]).await.is_ok();
    c.batch_execute(if ok {
        "RELEASE SAVEPOINT godwit_probe"
    } else {
        "ROLLBACK TO SAVEPOINT godwit_probe"
    })
    .await
    .map_err(|e| err(PRE, db, e))?;
    Ok(ok)
}
