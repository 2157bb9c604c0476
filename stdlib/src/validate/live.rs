//! [`Validate`] over real PostgreSQL servers (lab and aws worlds), reached through the world's
//! [`Connector`] (see `pg::live`). Every hash is computed by the servers while they scan;
//! godwit receives per-segment `(count, sum)` pairs and, for the few segments that differ,
//! the keys and row digests of at most `leaf_rows` rows at a time.
//!
//! Per table, on both sides at once, inside one `REPEATABLE READ READ ONLY` transaction per
//! side (one snapshot for all passes over that table) with the text output of every type
//! pinned (`SET LOCAL TimeZone, DateStyle, IntervalStyle, extra_float_digits, bytea_output`),
//! so the same stored value always renders to the same text:
//!
//! 1. integer primary key: `min`/`max` of the key (index), then one scan `GROUP BY
//!    (key - lo) / width` computing `count(*)` and `sum(hashtextextended(row::text, 0))`;
//!    a mismatching segment is split in 16 (a range scan each) until it holds at most
//!    `leaf_rows` rows, then both sides' `(key, md5(row::text))` are fetched and diffed;
//! 2. any other primary key: the same first pass over buckets `hash(key::text) mod N`, then
//!    the rows of mismatching buckets (64 buckets per scan);
//! 3. no primary key: buckets by the hash of the whole row, and the rows of a mismatching
//!    bucket compared as a multiset (a changed row is one missing plus one extra).
//!
//! Tables run `concurrency` at a time, each worker holding one connection per side.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use godwit_engine::{Call, ErrorKind, PrimitiveError};
use tokio_postgres::Client;

use super::queries::{median_ms, parameter_columns, read_only, substitute, tables_of};
use super::*;
use crate::pg::live::{Pool, sql_error};

/// First-pass segments (or buckets) per table at most; a bigger table's mismatching segments
/// are bisected instead. 4096 groups keep the aggregate in memory on both servers.
pub(super) const MAX_SEGMENTS: i64 = 4096;
/// Hashed-key buckets at least, so a never-analysed table (`reltuples` unknown) still has
/// small buckets.
pub(super) const MIN_BUCKETS: i64 = 256;
/// A bisection step splits a segment in this many.
const FANOUT: i64 = 16;
/// Buckets fetched per scan for hashed keys.
const BUCKETS_PER_FETCH: usize = 64;
/// How long a comparison may run when its step does not say less. A comparison reads every
/// table (about one sequential scan of each side); the step that runs it inside the write
/// blackout should carry its own `timeout`.
pub(super) const VALIDATE_CALL_LIMIT: Duration = Duration::from_secs(24 * 3600);
/// How long finding where a database is may take (a lookup: lab.json, or an RDS describe).
const CONNECT_LOOKUP_LIMIT: Duration = Duration::from_secs(30);
/// Rendered rows of a table without primary key are cut to this many characters.
const MAX_ROW_TEXT: usize = 200;

/// Same text for the same stored value on both sides, whatever the role's defaults are; and
/// hash aggregation: the planner cannot know `(key - lo) / width` has few groups, so it sorts
/// the whole table instead (measured on 1 M rows: 0.9 s sorted vs 0.42 s hashed).
pub(super) const PIN_OUTPUT: &str = "SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'; \
     SET LOCAL IntervalStyle = 'postgres'; SET LOCAL extra_float_digits = 1; \
     SET LOCAL bytea_output = 'hex'; SET LOCAL lc_monetary = 'C'; SET LOCAL enable_sort = off";

/// [`Validate`] over real servers.
pub struct LiveValidate {
    pub(super) pool: Arc<Pool>,
}

impl LiveValidate {
    pub fn new(pool: Arc<Pool>) -> Self {
        LiveValidate { pool }
    }
}

pub(super) fn err(op: &str, db: &str, e: tokio_postgres::Error) -> PrimitiveError {
    let mut e = sql_error(op, db, e);
    e.area = A.into();
    e
}

pub(super) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// A new connection to database `dbname` of `db` (not the pool's shared one: a worker's
/// transaction must not interleave with other primitives' statements), whose statements time
/// out after `budget`.
pub(super) async fn open(
    pool: &Pool,
    db: &str,
    dbname: &str,
    op: &str,
    budget: Duration,
) -> Result<Arc<Client>, PrimitiveError> {
    pool.connect(db, Some(dbname), op, budget)
        .await
        .map_err(|mut e| {
            e.area = A.into();
            e
        })
}

/// One table as one side's catalog describes it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct TableInfo {
    pub(super) schema: String,
    pub(super) name: String,
    pub(super) unlogged: bool,
    pub(super) reltuples: i64,
    pub(super) key: Vec<String>,
    pub(super) key_types: Vec<String>,
}

impl TableInfo {
    pub(super) fn sql_name(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }
}

pub(super) async fn list_tables(
    c: &Client,
    op: &str,
    db: &str,
) -> Result<BTreeMap<String, TableInfo>, PrimitiveError> {
    let rows = c
        .query(
            "SELECT n.nspname::text, c.relname::text, c.relpersistence = 'u', \
               greatest(c.reltuples, 0)::bigint, \
               coalesce(array_agg(a.attname::text ORDER BY k.ord) FILTER (WHERE a.attname IS NOT NULL), '{}'), \
               coalesce(array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY k.ord) FILTER (WHERE a.attname IS NOT NULL), '{}') \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary \
             LEFT JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) ON true \
             LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum \
             WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
               AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' \
             GROUP BY 1, 2, 3, 4 ORDER BY 1, 2",
            &[],
        )
        .await
        .map_err(|e| err(op, db, e))?;
    Ok(rows
        .iter()
        .map(|r| {
            let t = TableInfo {
                schema: r.get(0),
                name: r.get(1),
                unlogged: r.get(2),
                reltuples: r.get(3),
                key: r.get(4),
                key_types: r.get(5),
            };
            (format!("{}.{}", t.schema, t.name), t)
        })
        .collect())
}

/// How rows are hashed: `hashtextextended` (64-bit, fast) when both servers compute the same
/// value for it, else the first 64 bits of `md5` (portable, ~2x slower).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum HashFn {
    Native,
    Md5,
}

impl HashFn {
    /// A BIGINT hash of the text expression `text`.
    pub(super) fn of(self, text: &str, seed: i64) -> String {
        match self {
            HashFn::Native => format!("hashtextextended({text}, {seed})"),
            HashFn::Md5 if seed == 0 => {
                format!("('x' || substr(md5({text}), 1, 16))::bit(64)::bigint")
            }
            HashFn::Md5 => format!("('x' || substr(md5({text}), 17, 16))::bit(64)::bigint"),
        }
    }
}

pub(super) const ROW: &str = "row(_gw.*)::text";

pub(super) async fn probe_hash(src: &Client, dst: &Client) -> HashFn {
    let q = "SELECT hashtextextended('godwit validate probe', 0)";
    let (a, b) = tokio::join!(src.query_one(q, &[]), dst.query_one(q, &[]));
    match (a, b) {
        (Ok(a), Ok(b)) if a.get::<_, i64>(0) == b.get::<_, i64>(0) => HashFn::Native,
        // Another architecture's hash (or no such function): md5 is the same everywhere.
        _ => HashFn::Md5,
    }
}

/// The BIGINT hash of a row `_gw` in segment sums.
pub(super) fn row_hash(hash: HashFn, by_value: bool) -> String {
    if by_value {
        "hash_record_extended(_gw, 0)".into()
    } else {
        hash.of(ROW, 0)
    }
}

/// A row's digest in a leaf, the same equality as [`row_hash`]: the type hashes (64 bits) by
/// value, the row text's md5 by text.
fn leaf_hash(by_value: bool) -> String {
    if by_value {
        "hash_record_extended(_gw, 0)::text".into()
    } else {
        format!("md5({ROW})")
    }
}

/// The two connections of one worker, and what it needs to know.
pub(super) struct Pair {
    pub(super) src: Arc<Client>,
    pub(super) dst: Arc<Client>,
    pub(super) source: String,
    pub(super) target: String,
    pub(super) hash: HashFn,
    pub(super) opts: CompareOptions,
}

pub(super) type Segs = HashMap<i64, (i64, Option<String>)>;

impl Pair {
    async fn both(
        &self,
        sql: &str,
    ) -> Result<(Vec<tokio_postgres::Row>, Vec<tokio_postgres::Row>), PrimitiveError> {
        let (a, b) = tokio::join!(self.src.query(sql, &[]), self.dst.query(sql, &[]));
        Ok((
            a.map_err(|e| err("compare", &self.source, e))?,
            b.map_err(|e| err("compare", &self.target, e))?,
        ))
    }

    pub(super) async fn both_batch(&self, sql: &str) -> Result<(), PrimitiveError> {
        let (a, b) = tokio::join!(self.src.batch_execute(sql), self.dst.batch_execute(sql));
        a.map_err(|e| err("compare", &self.source, e))?;
        b.map_err(|e| err("compare", &self.target, e))?;
        Ok(())
    }

    /// `(segment, count, sum)` per side.
    async fn segments(&self, sql: &str) -> Result<(Segs, Segs), PrimitiveError> {
        let (a, b) = self.both(sql).await?;
        let read = |rows: Vec<tokio_postgres::Row>| -> Segs {
            rows.iter()
                .map(|r| (r.get::<_, i64>(0), (r.get::<_, i64>(1), r.get(2))))
                .collect()
        };
        Ok((read(a), read(b)))
    }

    async fn leaf(
        &self,
        sql: &str,
        args: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<(Vec<LeafRow>, Vec<LeafRow>), PrimitiveError> {
        let (a, b) = tokio::join!(self.src.query(sql, args), self.dst.query(sql, args));
        let read = |rows: Vec<tokio_postgres::Row>| -> Vec<LeafRow> {
            rows.iter()
                .map(|r| LeafRow {
                    key: r.get(0),
                    hash: r.get(1),
                    count: r.get(2),
                })
                .collect()
        };
        Ok((
            read(a.map_err(|e| err("compare", &self.source, e))?),
            read(b.map_err(|e| err("compare", &self.target, e))?),
        ))
    }

    pub(super) async fn table(
        &self,
        display: &str,
        t: &TableInfo,
    ) -> Result<TableReport, PrimitiveError> {
        self.both_batch(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; {PIN_OUTPUT}"
        ))
        .await?;
        let out = self.table_in_tx(display, t).await;
        // A failed statement leaves the transaction aborted; ROLLBACK ends it either way.
        let _ = self.both_batch("ROLLBACK").await;
        out
    }

    /// Whether every column of `t` has a hash function on both sides (`hash_record_extended`
    /// fails at the first row otherwise, e.g. for `json` or `point`).
    pub(super) async fn hashable(&self, t: &TableInfo) -> Result<bool, PrimitiveError> {
        self.both_batch("SAVEPOINT godwit_probe").await?;
        let probe = format!(
            "SELECT hash_record_extended(_gw, 0) FROM {} _gw LIMIT 1",
            t.sql_name()
        );
        let (a, b) = tokio::join!(self.src.query(&probe, &[]), self.dst.query(&probe, &[]));
        if a.is_ok() && b.is_ok() {
            self.both_batch("RELEASE SAVEPOINT godwit_probe").await?;
            Ok(true)
        } else {
            self.both_batch("ROLLBACK TO SAVEPOINT godwit_probe")
                .await?;
            Ok(false)
        }
    }

    async fn table_in_tx(
        &self,
        display: &str,
        t: &TableInfo,
    ) -> Result<TableReport, PrimitiveError> {
        let by_value = self.opts.mode != "text" && self.hashable(t).await?;
        let mut rep = self.table_by(display, t, by_value).await?;
        rep.hash = if by_value { "value" } else { "text" }.into();
        Ok(rep)
    }

    async fn table_by(
        &self,
        display: &str,
        t: &TableInfo,
        by_value: bool,
    ) -> Result<TableReport, PrimitiveError> {
        let integer = t.key.len() == 1
            && matches!(t.key_types[0].as_str(), "smallint" | "integer" | "bigint");
        if integer {
            let k = quote_ident(&t.key[0]);
            let (a, b) = self
                .both(&format!(
                    "SELECT min({k})::bigint, max({k})::bigint FROM {}",
                    t.sql_name()
                ))
                .await?;
            let bounds = |rows: &[tokio_postgres::Row]| -> Option<(i64, i64)> {
                let r = rows.first()?;
                Some((r.get::<_, Option<i64>>(0)?, r.get::<_, Option<i64>>(1)?))
            };
            let (lo, hi) = match (bounds(&a), bounds(&b)) {
                (None, None) => {
                    return Ok(TableReport::new(display, "segments", t.key.clone()));
                }
                (Some(x), None) | (None, Some(x)) => (x.0, x.1),
                (Some(x), Some(y)) => (x.0.min(y.0), x.1.max(y.1)),
            };
            // Keys spanning more than i64 (e.g. i64::MIN..i64::MAX) cannot be offset in SQL
            // without overflow: hash them instead.
            if let Some(hi) = hi.checked_add(1).filter(|h| h.checked_sub(lo).is_some()) {
                return self.by_ranges(display, t, lo, hi, by_value).await;
            }
        }
        self.by_buckets(display, t, by_value).await
    }

    fn range_summary(
        &self,
        t: &TableInfo,
        by_value: bool,
        base: i64,
        width: i64,
        range: Option<(i64, i64)>,
    ) -> String {
        let k = quote_ident(&t.key[0]);
        let filter = match range {
            Some((a, b)) => format!("WHERE {k} >= {a} AND {k} < {b}"),
            None => String::new(),
        };
        format!(
            "SELECT (({k}::bigint - ({base})) / {width})::bigint, count(*)::bigint, sum({})::text \
             FROM {} _gw {filter} GROUP BY 1",
            row_hash(self.hash, by_value),
            t.sql_name()
        )
    }

    async fn by_ranges(
        &self,
        display: &str,
        t: &TableInfo,
        lo: i64,
        hi: i64,
        by_value: bool,
    ) -> Result<TableReport, PrimitiveError> {
        let mut rep = TableReport::new(display, "segments", t.key.clone());
        let leaf_rows = self.opts.leaf_rows.max(1);
        let span = hi as i128 - lo as i128;
        let n = (span / leaf_rows as i128 + 1).clamp(1, MAX_SEGMENTS as i128) as i64;
        let (width, segs) = split(lo, hi, n);
        let (a, b) = self
            .segments(&self.range_summary(t, by_value, lo, width, None))
            .await?;
        rep.segments = segs.len() as i64;
        rep.source_rows = a.values().map(|v| v.0).sum();
        rep.target_rows = b.values().map(|v| v.0).sum();
        // Depth first, children in key order: the keys come out in key order.
        let mut stack: Vec<(i64, i64, i64)> = Vec::new();
        for (i, (sa, sb)) in segs.iter().enumerate() {
            let (x, y) = (a.get(&(i as i64)), b.get(&(i as i64)));
            if x != y {
                rep.mismatched_segments += 1;
                let rows = x.map_or(0, |v| v.0).max(y.map_or(0, |v| v.0));
                stack.push((*sa, *sb, rows));
            }
        }
        stack.reverse();
        let k = quote_ident(&t.key[0]);
        while let Some((sa, sb, rows)) = stack.pop() {
            if rep.truncated {
                break;
            }
            if rows <= leaf_rows || sb - sa <= FANOUT {
                let (x, y) = self
                    .leaf(
                        &format!(
                            "SELECT {k}::text, {}, 1::bigint FROM {} _gw \
                             WHERE {k} >= {sa} AND {k} < {sb} ORDER BY {k}",
                            leaf_hash(by_value),
                            t.sql_name()
                        ),
                        &[],
                    )
                    .await?;
                record_leaf(&mut rep, &x, &y, self.opts.max_keys);
                continue;
            }
            let (w, subs) = split(sa, sb, FANOUT);
            let (x, y) = self
                .segments(&self.range_summary(t, by_value, sa, w, Some((sa, sb))))
                .await?;
            for (i, (ca, cb)) in subs.iter().enumerate().rev() {
                let (p, q) = (x.get(&(i as i64)), y.get(&(i as i64)));
                if p != q {
                    let rows = p.map_or(0, |v| v.0).max(q.map_or(0, |v| v.0));
                    stack.push((*ca, *cb, rows));
                }
            }
        }
        if rep.mismatched_segments > 0 {
            // Segments differ even if no key did (a hash collision cannot hide a difference,
            // but a digest difference with equal keys is reported as `different`).
            rep.equal = false;
        }
        Ok(rep)
    }

    async fn by_buckets(
        &self,
        display: &str,
        t: &TableInfo,
        by_value: bool,
    ) -> Result<TableReport, PrimitiveError> {
        let keyed = !t.key.is_empty();
        let key_text = match t.key.len() {
            0 => ROW.to_string(),
            1 => format!("{}::text", quote_ident(&t.key[0])),
            _ => format!(
                "row({})::text",
                t.key
                    .iter()
                    .map(|k| quote_ident(k))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let method = if keyed {
            "hashed-key"
        } else {
            "no-primary-key"
        };
        let mut rep = TableReport::new(display, method, t.key.clone());
        let n = (t.reltuples / self.opts.leaf_rows.max(1) + 1).clamp(MIN_BUCKETS, MAX_SEGMENTS);
        let bucket = format!("((({}) % {n}) + {n}) % {n}", self.hash.of(&key_text, 7));
        let (a, b) = self
            .segments(&format!(
                "SELECT {bucket}, count(*)::bigint, sum({})::text FROM {} _gw GROUP BY 1",
                row_hash(self.hash, by_value),
                t.sql_name()
            ))
            .await?;
        rep.segments = n;
        rep.source_rows = a.values().map(|v| v.0).sum();
        rep.target_rows = b.values().map(|v| v.0).sum();
        let bad: Vec<i64> = a
            .keys()
            .chain(b.keys())
            .copied()
            .collect::<BTreeSet<i64>>()
            .into_iter()
            .filter(|i| a.get(i) != b.get(i))
            .collect();
        rep.mismatched_segments = bad.len() as i64;
        let order = if keyed {
            t.key
                .iter()
                .map(|k| quote_ident(k))
                .collect::<Vec<_>>()
                .join(", ")
        } else {
            "1".to_string()
        };
        let sql = if keyed {
            format!(
                "SELECT {key_text}, {}, 1::bigint FROM {} _gw WHERE {bucket} = ANY($1) ORDER BY {order}",
                leaf_hash(by_value),
                t.sql_name()
            )
        } else {
            format!(
                "SELECT {ROW}, '', count(*)::bigint FROM {} _gw WHERE {bucket} = ANY($1) GROUP BY 1 ORDER BY 1",
                t.sql_name()
            )
        };
        for chunk in bad.chunks(BUCKETS_PER_FETCH) {
            if rep.truncated {
                break;
            }
            let ids: Vec<i64> = chunk.to_vec();
            let (x, y) = self.leaf(&sql, &[&ids]).await?;
            record_leaf(&mut rep, &x, &y, self.opts.max_keys);
        }
        if !keyed {
            for k in rep
                .missing_on_target
                .iter_mut()
                .chain(rep.extra_on_target.iter_mut())
            {
                if k.chars().count() > MAX_ROW_TEXT {
                    *k = format!("{}...", k.chars().take(MAX_ROW_TEXT).collect::<String>());
                }
            }
        }
        if rep.mismatched_segments > 0 {
            rep.equal = false;
        }
        Ok(rep)
    }
}

/// The positions of both sides now, both read on the source, in its own WAL: its position if
/// it is a primary, and how far its physical walsenders' replica has replayed
/// (`pg_stat_replication.replay_lsn`, the least of them; logical walsenders — CDC consumers —
/// excluded). The target itself is never asked: Aurora refuses `pg_last_wal_replay_lsn()`.
pub(super) async fn positions(
    src: &Client,
    op: &str,
    s: &str,
) -> Result<Positions, PrimitiveError> {
    let a = src
        .query_one(
            "SELECT CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END, \
             CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint END, \
             (SELECT min(r.replay_lsn)::text FROM pg_stat_replication r WHERE r.pid NOT IN \
               (SELECT active_pid FROM pg_replication_slots WHERE slot_type = 'logical' AND active_pid IS NOT NULL)), \
             (SELECT pg_wal_lsn_diff(min(r.replay_lsn), '0/0')::bigint FROM pg_stat_replication r WHERE r.pid NOT IN \
               (SELECT active_pid FROM pg_replication_slots WHERE slot_type = 'logical' AND active_pid IS NOT NULL))",
            &[],
        )
        .await
        .map_err(|e| err(op, s, e))?;
    let (sb, tb): (Option<i64>, Option<i64>) = (a.get(1), a.get(3));
    Ok(Positions {
        source_lsn: a.get(0),
        target_replay_lsn: a.get(2),
        lag_bytes: match (sb, tb) {
            (Some(x), Some(y)) => Some(x - y),
            _ => None,
        },
    })
}

/// `name -> value` of a two-column query on one side, per database prefix.
async fn named_values(
    c: &Client,
    sql: &str,
    prefix: &str,
    op: &str,
    db: &str,
) -> Result<BTreeMap<String, Option<String>>, PrimitiveError> {
    Ok(c.query(sql, &[])
        .await
        .map_err(|e| err(op, db, e))?
        .iter()
        .map(|r| (format!("{prefix}{}", r.get::<_, String>(0)), r.get(1)))
        .collect())
}

fn diffs(
    a: &BTreeMap<String, Option<String>>,
    b: &BTreeMap<String, Option<String>>,
) -> Vec<ValueDiff> {
    a.keys()
        .chain(b.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| ValueDiff {
            name: k.clone(),
            source: a.get(k).cloned().flatten(),
            target: b.get(k).cloned().flatten(),
        })
        .collect()
}

impl LiveValidate {
    /// `listed_only`: compare only `opts.tables`, none when it is empty (the fence pass's
    /// rescans; sequences, extensions and settings are compared either way).
    pub(super) async fn compare_async(
        &self,
        source: &str,
        target: &str,
        opts: &CompareOptions,
        listed_only: bool,
        st: Duration,
    ) -> Result<Report, PrimitiveError> {
        const OP: &str = "compare";
        let pool = &self.pool;
        let databases = pool.databases(source, OP, st).await.map_err(|mut e| {
            e.area = A.into();
            e
        })?;
        let mut report = Report::new(source, target);
        let (mut ext_a, mut ext_b) = (BTreeMap::new(), BTreeMap::new());
        let (mut seq_a, mut seq_b) = (BTreeMap::new(), BTreeMap::new());
        let wanted: BTreeSet<&str> = opts.tables.iter().map(String::as_str).collect();
        let mut seen = BTreeSet::new();
        for (i, dbname) in databases.iter().enumerate() {
            let prefix = if i == 0 {
                String::new()
            } else {
                format!("{dbname}:")
            };
            let src = open(pool, source, dbname, OP, st).await?;
            let dst = open(pool, target, dbname, OP, st).await?;
            if i == 0 {
                report.positions = positions(&src, OP, source).await?;
                let names: Vec<String> = if opts.settings.is_empty() {
                    DEFAULT_SETTINGS.iter().map(|s| s.to_string()).collect()
                } else {
                    opts.settings.clone()
                };
                let q = "SELECT name, setting FROM pg_settings WHERE name = ANY($1)";
                let args: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&names];
                let (a, b) = tokio::join!(src.query(q, &args), dst.query(q, &args));
                let read = |rows: Vec<tokio_postgres::Row>| -> BTreeMap<String, Option<String>> {
                    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
                };
                report.settings = diffs(
                    &read(a.map_err(|e| err(OP, source, e))?),
                    &read(b.map_err(|e| err(OP, target, e))?),
                );
            }
            let q = "SELECT extname::text, extversion FROM pg_extension";
            ext_a.extend(named_values(&src, q, &prefix, OP, source).await?);
            ext_b.extend(named_values(&dst, q, &prefix, OP, target).await?);
            let q = "SELECT schemaname || '.' || sequencename, last_value::text FROM pg_sequences";
            seq_a.extend(named_values(&src, q, &prefix, OP, source).await?);
            seq_b.extend(named_values(&dst, q, &prefix, OP, target).await?);

            let hash = probe_hash(&src, &dst).await;
            let (ta, tb) = (
                list_tables(&src, OP, source).await?,
                list_tables(&dst, OP, target).await?,
            );
            let mut jobs = VecDeque::new();
            for name in ta.keys().chain(tb.keys()).collect::<BTreeSet<_>>() {
                let display = format!("{prefix}{name}");
                if (listed_only || !wanted.is_empty()) && !wanted.contains(display.as_str()) {
                    continue;
                }
                seen.insert(display.clone());
                match (ta.get(name), tb.get(name)) {
                    (Some(x), None) | (None, Some(x)) => {
                        let method = if ta.contains_key(name) {
                            "missing-on-target"
                        } else {
                            "missing-on-source"
                        };
                        let mut r = TableReport::new(&display, method, x.key.clone());
                        r.equal = false;
                        report.tables.push(r);
                    }
                    (Some(x), Some(_)) if x.unlogged => {
                        let mut r = TableReport::new(&display, "unlogged", x.key.clone());
                        r.equal = false;
                        report.tables.push(r);
                    }
                    (Some(x), Some(y)) => {
                        let mut t = x.clone();
                        t.reltuples = x.reltuples.max(y.reltuples);
                        if x.key != y.key || x.key_types != y.key_types {
                            // Different primary keys: compare as rows, without trusting either.
                            t.key.clear();
                            t.key_types.clear();
                        }
                        jobs.push_back((display, t));
                    }
                    (None, None) => {}
                }
            }
            drop((src, dst));
            let jobs = Arc::new(Mutex::new(jobs));
            let workers = opts
                .concurrency
                .max(1)
                .min(jobs.lock().unwrap().len().max(1));
            let mut set = tokio::task::JoinSet::new();
            for _ in 0..workers {
                let jobs = jobs.clone();
                let pool = pool.clone();
                let (source, target, dbname, opts) = (
                    source.to_string(),
                    target.to_string(),
                    dbname.clone(),
                    opts.clone(),
                );
                set.spawn(async move {
                    let mut done = Vec::new();
                    if jobs.lock().unwrap().is_empty() {
                        return Ok(done);
                    }
                    let pair = Pair {
                        src: open(&pool, &source, &dbname, OP, st).await?,
                        dst: open(&pool, &target, &dbname, OP, st).await?,
                        source,
                        target,
                        hash,
                        opts,
                    };
                    loop {
                        let Some((display, t)) = jobs.lock().unwrap().pop_front() else {
                            break;
                        };
                        done.push(pair.table(&display, &t).await?);
                    }
                    Ok::<_, PrimitiveError>(done)
                });
            }
            while let Some(r) = set.join_next().await {
                let r = r.map_err(|e| {
                    PrimitiveError::new(
                        A,
                        OP,
                        ErrorKind::Internal,
                        format!("a table worker failed: {e}"),
                        "this is a bug in godwit",
                    )
                })?;
                report.tables.extend(r?);
            }
        }
        if let Some(unknown) = opts.tables.iter().find(|t| !seen.contains(*t)) {
            return Err(unknown_table(
                OP,
                source,
                unknown,
                "name tables as schema.table (database:schema.table outside the connection's \
                 database)"
                    .into(),
            ));
        }
        report.tables.sort_by(|a, b| a.table.cmp(&b.table));
        report.extensions = diffs(&ext_a, &ext_b);
        let num =
            |v: Option<&Option<String>>| v.cloned().flatten().and_then(|s| s.parse::<i64>().ok());
        report.sequences = seq_a
            .keys()
            .chain(seq_b.keys())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|name| {
                let (s, t) = (num(seq_a.get(name)), num(seq_b.get(name)));
                SequenceCheck {
                    name: name.clone(),
                    source: s,
                    target: t,
                    ok: seq_b.contains_key(name) && t.unwrap_or(i64::MIN) >= s.unwrap_or(i64::MIN),
                }
            })
            .collect();
        Ok(report.finish())
    }

    /// The audit (docs/validate.md, "`sample` during replication"): per database, round A
    /// samples the source in one snapshot and reads the WAL position `L` every sampled row is at
    /// or before; the target is read once it has replayed past `L`; round B reads the same keys
    /// on the source again. A row whose target copy differs from A while the source's did not
    /// change from A to B (same content, same `xmin`: the same tuple version) is a proven
    /// difference — the target was read at a position between A's and B's — once a second
    /// round over the suspects agrees; one that changed in between is `unsettled`, not a
    /// difference.
    async fn sample_async(
        &self,
        source: &str,
        target: &str,
        fraction: f64,
        opts: &SampleOptions,
        st: Duration,
    ) -> Result<SampleReport, PrimitiveError> {
        let how = How::Fraction(fraction, opts.max_rows.max(1));
        let report = SampleReport::new(source, target, fraction);
        self.sample_rounds(report, &opts.tables, opts.max_keys, how, st)
            .await
    }

    /// One round of the audit: `sample`'s rounds over a page sample sized by `opts.rows`,
    /// paced under `opts.rows_per_second`.
    async fn audit_async(
        &self,
        source: &str,
        target: &str,
        opts: &AuditOptions,
        st: Duration,
    ) -> Result<SampleReport, PrimitiveError> {
        let how = How::Rows(opts.rows.max(1), opts.rows_per_second);
        let report = SampleReport::new(source, target, 0.0);
        self.sample_rounds(report, &opts.tables, opts.max_keys, how, st)
            .await
    }

    async fn sample_rounds(
        &self,
        mut report: SampleReport,
        tables: &[String],
        max_keys: usize,
        how: How,
        st: Duration,
    ) -> Result<SampleReport, PrimitiveError> {
        let op = how.op();
        let (source, target) = (report.source.clone(), report.target.clone());
        let (source, target) = (source.as_str(), target.as_str());
        let started = std::time::Instant::now();
        let pool = &self.pool;
        let databases = pool.databases(source, op, st).await.map_err(|mut e| {
            e.area = A.into();
            e
        })?;
        let wanted: BTreeSet<&str> = tables.iter().map(String::as_str).collect();
        let mut seen: BTreeSet<String> = BTreeSet::new();
        // How long the target may take to replay a round's position (the call's budget
        // bounds it too): past it, what differs is unsettled (lag), never proven.
        let replay_wait = (st / 2).min(Duration::from_secs(30));
        // Every database's tables first: an audit round's rows are shared by size over all.
        let mut listed = Vec::new();
        for (i, dbname) in databases.iter().enumerate() {
            let prefix = if i == 0 {
                String::new()
            } else {
                format!("{dbname}:")
            };
            // Listing only: the rounds open their connections one database at a time.
            let src = open(pool, source, dbname, op, st).await?;
            let mut keep = Vec::new();
            for (name, t) in list_tables(&src, op, source).await? {
                let display = format!("{prefix}{name}");
                if !wanted.is_empty() && !wanted.contains(display.as_str()) {
                    continue;
                }
                seen.insert(display.clone());
                if t.unlogged {
                    continue; // not replicated: nothing to audit
                }
                if t.key.is_empty() {
                    report.tables.push(SampleTable {
                        table: display,
                        method: "no-primary-key".into(),
                        estimated_rows: t.reltuples,
                        ..SampleTable::default()
                    });
                    continue;
                }
                keep.push((display, t));
            }
            drop(src);
            listed.push((dbname.clone(), keep));
        }
        if let Some(unknown) = tables.iter().find(|t| !seen.contains(*t)) {
            return Err(unknown_table(
                op,
                source,
                unknown,
                "name tables as schema.table (database:schema.table outside the connection's database)".into(),
            ));
        }
        let estimates: Vec<i64> = listed
            .iter()
            .flat_map(|(_, keep)| keep.iter().map(|(_, t)| t.reltuples))
            .collect();
        let mut shares = match how {
            How::Rows(rows, _) => audit_shares(&estimates, rows),
            How::Fraction(..) => Vec::new(),
        }
        .into_iter();
        // Stay under the read budget: after a database's rounds, wait until the rows read so
        // far are within `rows_per_second` of the time spent.
        let mut read = 0i64;
        let pace = |read: i64| {
            let budget = how.budget();
            async move {
                if budget > 0 {
                    let due = Duration::from_secs_f64(read as f64 / budget as f64);
                    let spent = started.elapsed();
                    if due > spent {
                        tokio::time::sleep(due - spent).await;
                    }
                }
            }
        };
        for (dbname, keep) in listed {
            let src = open(pool, source, &dbname, op, st).await?;
            let dst = open(pool, target, &dbname, op, st).await?;
            // Round A: the sample, in one snapshot.
            begin_snapshot(&src, op, source).await?;
            let mut picked: Vec<Picked> = Vec::new();
            let mut whole = Vec::new();
            for (display, t) in keep {
                let (sql, limit) = how.round_a(&t, shares.next());
                let rows = src.query(&sql, &[]).await.map_err(|e| err(op, source, e))?;
                let rows: Vec<(String, Version)> = rows
                    .iter()
                    .map(|r| (r.get(0), Version(r.get(1), r.get(2))))
                    .collect();
                read += rows.len() as i64;
                whole.push(limit.is_some_and(|l| (rows.len() as i64) < l));
                picked.push((display, t, rows));
            }
            let lsn = wal_position(&src, op, source).await?;
            let _ = src.batch_execute("ROLLBACK").await;
            let mut suspects: Vec<(usize, Vec<String>)> = Vec::new();
            let mut tables = Vec::new();
            let reached =
                replayed(&src, lsn, replay_wait, how.needs_walsender(), op, source).await?;
            let sides = read_round(&src, &dst, &picked, None, (source, target), op).await?;
            read += picked.iter().map(|p| p.2.len() as i64).sum::<i64>();
            // Paced after the rounds, not between them: the longer from A to B, the more
            // sampled rows change in between and prove nothing (unsettled). The cap holds on
            // average over the call; a round's reads are one burst.
            pace(read).await;
            for (n, (((display, info, rows), (on_target, again)), whole)) in
                picked.iter().zip(sides).zip(whole).enumerate()
            {
                let mut t = SampleTable {
                    table: display.clone(),
                    method: how.method(info, whole),
                    sampled: rows.len() as i64,
                    estimated_rows: info.reltuples,
                    whole,
                    ..SampleTable::default()
                };
                let mut suspect = Vec::new();
                for (k, a) in rows {
                    match classify(a, on_target.get(k), again.get(k), reached) {
                        Seen::Equal => {}
                        Seen::Unsettled => t.unsettled += 1,
                        Seen::Differs => suspect.push(k.clone()),
                    }
                }
                if !suspect.is_empty() {
                    suspects.push((n, suspect));
                }
                tables.push(t);
            }
            // The suspects once more, from a fresh snapshot: a commit can show on the replica
            // a moment before a source snapshot sees it, so one round alone proves nothing.
            if !suspects.is_empty() {
                begin_snapshot(&src, op, source).await?;
                let mut again_a = Vec::new();
                for (n, keys) in &suspects {
                    let (_, t, _) = &picked[*n];
                    again_a.push(by_keys(&src, t, keys, op, source).await?);
                    read += keys.len() as i64;
                }
                let lsn = wal_position(&src, op, source).await?;
                let _ = src.batch_execute("ROLLBACK").await;
                let reached =
                    replayed(&src, lsn, replay_wait, how.needs_walsender(), op, source).await?;
                let sides =
                    read_round(&src, &dst, &picked, Some(&suspects), (source, target), op).await?;
                read += suspects.iter().map(|(_, k)| k.len() as i64).sum::<i64>();
                pace(read).await;
                for (((n, keys), a2), (on_target, b2)) in suspects.iter().zip(again_a).zip(sides) {
                    let t = &mut tables[*n];
                    for k in keys {
                        let Some(a) = a2.get(k) else {
                            t.unsettled += 1; // deleted meanwhile
                            continue;
                        };
                        match (
                            classify(a, on_target.get(k), b2.get(k), reached),
                            on_target.get(k),
                        ) {
                            (Seen::Differs, None) => {
                                t.truncated |=
                                    push_capped(&mut t.missing_on_target, vec![k.clone()], max_keys)
                            }
                            (Seen::Differs, Some(_)) => {
                                t.truncated |=
                                    push_capped(&mut t.different, vec![k.clone()], max_keys)
                            }
                            (Seen::Unsettled, _) => t.unsettled += 1,
                            (Seen::Equal, _) => {}
                        }
                    }
                }
            }
            report.tables.extend(tables);
        }
        if let Some(src0) = databases.first() {
            let src = open(pool, source, src0, op, st).await?;
            report.positions = positions(&src, op, source).await?;
        }
        report.tables.sort_by(|a, b| a.table.cmp(&b.table));
        report.source_rows_read = read;
        report.elapsed_ms = started.elapsed().as_millis() as i64;
        Ok(report.finish())
    }
}

/// How a sample picks its rows: `Fraction(f, max_rows)` — `sample`'s row-level Bernoulli
/// sample (every page read); `Rows(rows, rows_per_second)` — the audit's page sample of a
/// table's share of `rows` (only the sampled pages read), paced.
#[derive(Debug, Clone, Copy)]
enum How {
    Fraction(f64, i64),
    Rows(i64, i64),
}

impl How {
    fn op(self) -> &'static str {
        match self {
            How::Fraction(..) => "sample",
            How::Rows(..) => "audit",
        }
    }

    /// Whether a target's replay counts only once its walsender on the source reports it.
    /// The audit runs against a streaming replica: without a walsender (reconnecting after a
    /// restart, a network blip) nothing says it replayed, so what differs stays unsettled
    /// rather than proven. `sample` also reads static copies (no walsender: read at once).
    fn needs_walsender(self) -> bool {
        matches!(self, How::Rows(..))
    }

    fn budget(self) -> i64 {
        match self {
            How::Fraction(..) => 0,
            How::Rows(_, rps) => rps,
        }
    }

    /// Round A's query for `t` (key text, `md5(row::text)`, `xmin`) given its `share` of an
    /// audit round, and the LIMIT of a plain read (not a page sample): fewer rows than it
    /// means the table was read whole.
    fn round_a(self, t: &TableInfo, share: Option<i64>) -> (String, Option<i64>) {
        let cols = format!("{}, md5({ROW}), _gw.xmin::text", key_text(t));
        match self {
            How::Fraction(fraction, max_rows) => {
                let percent = (fraction * 100.0).clamp(0.0, 100.0);
                let sql = format!(
                    "SELECT {cols} FROM {} _gw TABLESAMPLE BERNOULLI ({percent}) LIMIT {max_rows}",
                    t.sql_name()
                );
                (sql, None)
            }
            How::Rows(..) => {
                let want = share.unwrap_or(1).max(1);
                // SYSTEM reads only the sampled pages: the load follows the sample's size, not
                // the table's (BERNOULLI reads every page). Its percent is of pages, so of rows
                // on average; a table of unknown size (never analysed) or no bigger than its
                // share is read from the start up to the share.
                if t.reltuples > want {
                    let percent = (want as f64 * 100.0 / t.reltuples as f64).clamp(0.0001, 100.0);
                    let sql = format!(
                        "SELECT {cols} FROM {} _gw TABLESAMPLE SYSTEM ({percent:.4}) LIMIT {want}",
                        t.sql_name()
                    );
                    (sql, None)
                } else {
                    let sql = format!("SELECT {cols} FROM {} _gw LIMIT {want}", t.sql_name());
                    (sql, Some(want))
                }
            }
        }
    }

    fn method(self, t: &TableInfo, whole: bool) -> String {
        match self {
            How::Fraction(..) => "sampled".into(),
            How::Rows(..) if whole => "sampled whole".into(),
            How::Rows(..) if t.reltuples > 0 => "sampled pages".into(),
            How::Rows(..) => "first rows (size unknown: never analysed)".into(),
        }
    }
}

/// A row's version on one side: `md5(row::text)` and its `xmin`. On a physical replica the
/// same tuple version has the same `xmin` (the heap is replayed byte for byte); an update
/// makes a new version with a new one, so an equal pair read twice on the source is a row
/// that did not change in between (not even there and back).
#[derive(Debug, Clone, PartialEq)]
struct Version(String, String);

/// A sampled table of round A: its display name, its catalog entry and its rows' versions.
type Picked = (String, TableInfo, Vec<(String, Version)>);

/// Per table of a round: the target's versions, then the source's again.
type Sides = Vec<(HashMap<String, Version>, HashMap<String, Version>)>;

/// A sampled row's verdict in one round.
enum Seen {
    Equal,
    /// It changed on the source between the rounds, or the target had not replayed far
    /// enough: nothing proven either way.
    Unsettled,
    Differs,
}

/// `a`: the source's version in round A; `target`: the target's (read after it replayed
/// past A's position, if `reached`); `b`: the source's in round B, read after the target.
fn classify(a: &Version, target: Option<&Version>, b: Option<&Version>, reached: bool) -> Seen {
    if target.is_some_and(|t| t.0 == a.0) {
        return Seen::Equal;
    }
    if reached && b == Some(a) {
        Seen::Differs
    } else {
        Seen::Unsettled
    }
}

/// `BEGIN` a read-only snapshot with the output pinned.
pub(super) async fn begin_snapshot(c: &Client, op: &str, db: &str) -> Result<(), PrimitiveError> {
    c.batch_execute(&format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; {PIN_OUTPUT}"
    ))
    .await
    .map_err(|e| err(op, db, e))
}

/// The source's WAL insert position (bytes): read inside a snapshot after its queries, every
/// commit the snapshot sees is at or before it — asynchronous commits included, which the
/// write position (`pg_current_wal_lsn()`) can precede until the WAL writer catches up.
pub(super) async fn wal_position(c: &Client, op: &str, db: &str) -> Result<i64, PrimitiveError> {
    c.query_one(
        "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint",
        &[],
    )
    .await
    .map(|r| r.get(0))
    .map_err(|e| err(op, db, e))
}

/// The source's WAL flush position (bytes): a physical replica has at most this, and logical
/// decoding reads up to it.
pub(super) async fn flush_position(c: &Client, op: &str, db: &str) -> Result<i64, PrimitiveError> {
    c.query_one(
        "SELECT pg_wal_lsn_diff(pg_current_wal_flush_lsn(), '0/0')::bigint",
        &[],
    )
    .await
    .map(|r| r.get(0))
    .map_err(|e| err(op, db, e))
}

/// Wait (at most `limit`) until the source reports its physical replica replayed `lsn`
/// (`pg_stat_replication`, the least of its physical walsenders; one that has not reported a
/// position yet — it just reconnected — is not there). Without any physical walsender:
/// `true` for a copy that does not follow the source (`require_walsender` false), else the
/// replica is away and the wait goes on.
pub(super) async fn replayed(
    src: &Client,
    lsn: i64,
    limit: Duration,
    require_walsender: bool,
    op: &str,
    db: &str,
) -> Result<bool, PrimitiveError> {
    let until = tokio::time::Instant::now() + limit;
    loop {
        let row = src
            .query_one(
                "SELECT count(*)::bigint, count(r.replay_lsn)::bigint,                    pg_wal_lsn_diff(min(r.replay_lsn), '0/0')::bigint FROM pg_stat_replication r                  WHERE r.pid NOT IN (SELECT active_pid FROM pg_replication_slots                                       WHERE slot_type = 'logical' AND active_pid IS NOT NULL)",
                &[],
            )
            .await
            .map_err(|e| err(op, db, e))?;
        let (senders, reporting, replay): (i64, i64, Option<i64>) =
            (row.get(0), row.get(1), row.get(2));
        let reached = match (senders, replay) {
            (0, _) => !require_walsender,
            (n, Some(r)) => reporting == n && r >= lsn,
            (_, None) => false,
        };
        if reached {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= until {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One round's reads after the source's: for each sampled table (or only the suspects'
/// keys), the target's versions, then the source's again in a new snapshot.
async fn read_round(
    src: &Client,
    dst: &Client,
    picked: &[Picked],
    only: Option<&[(usize, Vec<String>)]>,
    (source, target): (&str, &str),
    op: &str,
) -> Result<Sides, PrimitiveError> {
    let todo: Vec<(&TableInfo, Vec<String>)> = match only {
        Some(s) => s
            .iter()
            .map(|(n, keys)| (&picked[*n].1, keys.clone()))
            .collect(),
        None => picked
            .iter()
            .map(|(_, t, rows)| (t, rows.iter().map(|r| r.0.clone()).collect()))
            .collect(),
    };
    begin_snapshot(dst, op, target).await?;
    let mut on_target = Vec::new();
    for (t, keys) in &todo {
        match by_keys(dst, t, keys, op, target).await {
            Ok(m) => on_target.push(m),
            Err(e) => {
                let _ = dst.batch_execute("ROLLBACK").await;
                return Err(e);
            }
        }
    }
    let _ = dst.batch_execute("ROLLBACK").await;
    begin_snapshot(src, op, source).await?;
    let mut again = Vec::new();
    for (t, keys) in &todo {
        match by_keys(src, t, keys, op, source).await {
            Ok(m) => again.push(m),
            Err(e) => {
                let _ = src.batch_execute("ROLLBACK").await;
                return Err(e);
            }
        }
    }
    let _ = src.batch_execute("ROLLBACK").await;
    Ok(on_target.into_iter().zip(again).collect())
}

/// The versions of `keys` of table `t` on one side (through the key index).
async fn by_keys(
    c: &Client,
    t: &TableInfo,
    keys: &[String],
    op: &str,
    db: &str,
) -> Result<HashMap<String, Version>, PrimitiveError> {
    let filter = if t.key.len() == 1 {
        format!(
            "{} = ANY($1::text[]::{}[])",
            quote_ident(&t.key[0]),
            t.key_types[0]
        )
    } else {
        format!("{} = ANY($1::text[])", key_text(t))
    };
    let rows = c
        .query(
            &format!(
                "SELECT {}, md5({ROW}), _gw.xmin::text FROM {} _gw WHERE {filter}",
                key_text(t),
                t.sql_name()
            ),
            &[&keys],
        )
        .await
        .map_err(|e| err(op, db, e))?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), Version(r.get(1), r.get(2))))
        .collect())
}

pub(super) fn key_text(t: &TableInfo) -> String {
    if t.key.len() == 1 {
        format!("{}::text", quote_ident(&t.key[0]))
    } else {
        format!(
            "row({})::text",
            t.key
                .iter()
                .map(|k| quote_ident(k))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

impl Validate for LiveValidate {
    fn available(&self, cx: &Call<'_>, db: &str) -> Result<Availability, PrimitiveError> {
        // Configured is the question, not reachable: a connection failure at the fence must
        // fail the validation step, never skip it. A world without database access says so
        // (credential-less: the runbook skips, with the recorded acceptance). Where `db` is,
        // is asked of the connector (no connection): an id the world has no database for is
        // `NotFound` in every world.
        let access = self.pool.connector().access(db);
        if !access.available {
            return Ok(Availability {
                available: false,
                how: access.how,
            });
        }
        self.pool
            .run(
                cx,
                db,
                CONNECT_LOOKUP_LIMIT,
                self.pool.connector().target(db),
            )
            .map_err(|mut e| {
                e.area = A.into();
                e.op = "available".into();
                e
            })?;
        Ok(Availability {
            available: true,
            how: "database connections".into(),
        })
    }

    fn compare(
        &self,
        cx: &Call<'_>,
        source: &str,
        target: &str,
        opts: &CompareOptions,
    ) -> Result<Report, PrimitiveError> {
        let st = cx.budget(VALIDATE_CALL_LIMIT);
        self.pool.run(
            cx,
            source,
            VALIDATE_CALL_LIMIT,
            self.compare_async(source, target, opts, false, st),
        )
    }

    fn sample(
        &self,
        cx: &Call<'_>,
        source: &str,
        target: &str,
        fraction: f64,
        opts: &SampleOptions,
    ) -> Result<SampleReport, PrimitiveError> {
        let st = cx.budget(VALIDATE_CALL_LIMIT);
        self.pool.run(
            cx,
            source,
            VALIDATE_CALL_LIMIT,
            self.sample_async(source, target, fraction, opts, st),
        )
    }

    fn audit(
        &self,
        cx: &Call<'_>,
        source: &str,
        target: &str,
        opts: &AuditOptions,
    ) -> Result<SampleReport, PrimitiveError> {
        let st = cx.budget(VALIDATE_CALL_LIMIT);
        self.pool.run(
            cx,
            source,
            VALIDATE_CALL_LIMIT,
            self.audit_async(source, target, opts, st),
        )
    }

    fn queries(
        &self,
        cx: &Call<'_>,
        source: &str,
        target: &str,
        opts: &QueryCheckOptions,
    ) -> Result<QueryReport, PrimitiveError> {
        let st = cx.budget(VALIDATE_CALL_LIMIT);
        self.pool.run(
            cx,
            source,
            VALIDATE_CALL_LIMIT,
            self.queries_async(source, target, opts, st),
        )
    }

    fn prepass(
        &self,
        cx: &Call<'_>,
        source: &str,
        target: &str,
        opts: &PrepassOptions,
    ) -> Result<PrepassReport, PrimitiveError> {
        let st = cx.budget(VALIDATE_CALL_LIMIT);
        self.pool.run(
            cx,
            source,
            VALIDATE_CALL_LIMIT,
            self.prepass_async(source, target, opts, st),
        )
    }

    fn fence_pass(
        &self,
        cx: &Call<'_>,
        source: &str,
        target: &str,
        pre: &PrepassReport,
    ) -> Result<Report, PrimitiveError> {
        let st = cx.budget(VALIDATE_CALL_LIMIT);
        self.pool.run(
            cx,
            source,
            VALIDATE_CALL_LIMIT,
            self.fence_pass_async(source, target, pre, st),
        )
    }

    fn end_prepass(
        &self,
        cx: &Call<'_>,
        source: &str,
        pre: &PrepassReport,
    ) -> Result<bool, PrimitiveError> {
        let st = cx.budget(CONNECT_LOOKUP_LIMIT);
        self.pool.run(
            cx,
            source,
            CONNECT_LOOKUP_LIMIT,
            self.end_async(source, pre, st),
        )
    }

    fn end_tracking(&self, cx: &Call<'_>, source: &str) -> Result<Vec<String>, PrimitiveError> {
        let st = cx.budget(CONNECT_LOOKUP_LIMIT);
        self.pool.run(
            cx,
            source,
            CONNECT_LOOKUP_LIMIT,
            self.end_tracking_async(source, st),
        )
    }
}

/// The query check (docs/validate.md, "The query check").
impl LiveValidate {
    async fn queries_async(
        &self,
        source: &str,
        target: &str,
        opts: &QueryCheckOptions,
        st: Duration,
    ) -> Result<QueryReport, PrimitiveError> {
        const OP: &str = "queries";
        let started = std::time::Instant::now();
        let pool = &self.pool;
        let databases = pool.databases(source, OP, st).await.map_err(|mut e| {
            e.area = A.into();
            e
        })?;
        let Some(first) = databases.first() else {
            return Ok(QueryReport::unavailable(
                source,
                target,
                "the source has no database".into(),
            )
            .finish());
        };
        let stats = open(pool, source, first, OP, st).await?;
        // pg_stat_statements before 1.8 (PostgreSQL 12 and older) has total_time/mean_time.
        let version: i32 = stats
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .await
            .map(|r| r.get(0))
            .unwrap_or(130000);
        let (total, mean) = if version >= 130000 {
            ("total_exec_time", "mean_exec_time")
        } else {
            ("total_time", "mean_time")
        };
        // Candidates: more than `top`, as some turn out not to be plain reads or godwit's own.
        let rows = match stats
            .query(
                &format!(
                    "SELECT s.queryid::text, d.datname::text, s.query, s.calls, s.{mean} \
                     FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid \
                     JOIN pg_roles r ON r.oid = s.userid \
                     WHERE NOT r.rolsuper AND r.rolname <> current_user \
                       AND s.query ~* '^\\s*(select|with)\\M' \
                       AND s.query !~* '(pg_catalog|pg_stat|information_schema|pg_replication|pg_current_wal|pg_last_wal|pg_logical|godwit|txid_current|pg_is_in_recovery|pg_settings)' \
                     ORDER BY s.{total} DESC LIMIT $1"
                ),
                &[&((opts.top * 4).max(1) as i64)],
            )
            .await
        {
            Ok(r) => r,
            Err(e) => {
                let why = match e.as_db_error() {
                    Some(db) if db.code() == &tokio_postgres::error::SqlState::UNDEFINED_TABLE => {
                        "pg_stat_statements is not installed in the source's first database: CREATE EXTENSION pg_stat_statements (RDS preloads its library; PostgreSQL needs shared_preload_libraries = 'pg_stat_statements')".to_string()
                    }
                    Some(db) => format!("pg_stat_statements cannot be read: {}", db.message()),
                    None => crate::pg::live::error_text(&e),
                };
                return Ok(QueryReport::unavailable(source, target, why).finish());
            }
        };
        let mut report = QueryReport {
            available: true,
            source: source.into(),
            target: target.into(),
            max_ratio: opts.max_ratio,
            ..QueryReport::default()
        };
        let budget = Duration::from_millis(opts.budget_ms.max(0) as u64);
        let mut conns: HashMap<String, (Arc<Client>, Arc<Client>)> = HashMap::new();
        for r in rows {
            if report.statements.len() >= opts.top {
                break;
            }
            let query: String = r.get(2);
            if !read_only(&query) {
                continue;
            }
            let database: String = r.get(1);
            let mut check = QueryCheck {
                queryid: r.get(0),
                database: database.clone(),
                query: query.chars().take(300).collect(),
                calls: r.get(3),
                stats_mean_ms: r.get(4),
                ..QueryCheck::default()
            };
            if started.elapsed() >= budget {
                check.verdict = "skipped".into();
                check.why = format!("the check's budget ({} ms) ran out", opts.budget_ms);
                report.statements.push(check);
                continue;
            }
            if !databases.contains(&database) {
                check.verdict = "skipped".into();
                check.why = format!("database {database} is not one godwit connects to");
                report.statements.push(check);
                continue;
            }
            if !conns.contains_key(&database) {
                let src = open(pool, source, &database, OP, st).await?;
                let dst = open(pool, target, &database, OP, st).await?;
                conns.insert(database.clone(), (src, dst));
            }
            let (src, dst) = conns[&database].clone();
            check_statement(&src, &dst, &query, opts, &mut check).await;
            report.statements.push(check);
        }
        report.elapsed_ms = started.elapsed().as_millis() as i64;
        Ok(report.finish())
    }
}

/// Run `query` on both sides (`opts.runs` timed runs after one untimed) and judge it into
/// `check`. Parameters are sampled on the source; each side runs `EXPLAIN (ANALYZE)` of the
/// prepared statement in a read-only transaction under `statement_timeout`.
async fn check_statement(
    src: &Client,
    dst: &Client,
    query: &str,
    opts: &QueryCheckOptions,
    check: &mut QueryCheck,
) {
    let timeout = format!(
        "SET statement_timeout = {}; SET idle_in_transaction_session_timeout = {}",
        opts.statement_timeout_ms.max(1),
        opts.statement_timeout_ms.max(1) * 4
    );
    let _ = src.batch_execute(&timeout).await;
    let _ = dst.batch_execute(&timeout).await;
    // Parameter types from the source's prepared form; values sampled from the columns they
    // are compared with.
    let params = match src.prepare(query).await {
        Ok(stmt) => stmt.params().to_vec(),
        Err(e) => {
            check.verdict = "skipped".into();
            check.why = format!(
                "does not prepare on the source: {}",
                crate::pg::live::error_text(&e)
            );
            return;
        }
    };
    let (columns, clauses) = parameter_columns(query);
    let tables = tables_of(query);
    let mut values = Vec::new();
    for (i, ty) in params.iter().enumerate() {
        let n = i + 1;
        let (value, how) = if let Some((_, clause)) = clauses.iter().find(|(p, _)| *p == n) {
            let v = if *clause == "LIMIT" { "10" } else { "0" };
            (Some(v.to_string()), clause.to_string())
        } else if let Some((_, col)) = columns.iter().find(|(p, _)| *p == n) {
            match sample_value(src, &tables, col).await {
                Some((v, t)) => (Some(v), format!("a sampled {t}.{col}")),
                None => (None, format!("no value of {col} found in {tables:?}")),
            }
        } else {
            (None, "compared with no column".to_string())
        };
        let shown = value.clone().unwrap_or_else(|| "NULL".into());
        check.parameters.push(format!("${n} = {shown} ({how})"));
        values.push(match value {
            Some(v) => format!("{}::{}", crate::pg::live::sql_literal(&v), ty.name()),
            None => format!("NULL::{}", ty.name()),
        });
    }
    let Some(bound) = substitute(query, &values) else {
        check.verdict = "skipped".into();
        check.why = "its parameters could not be bound (a `$n` beyond the statement's own)".into();
        return;
    };
    let explain = format!("EXPLAIN (ANALYZE) {bound}");
    let source = time_runs(src, &explain, opts.runs).await;
    let source_ms = match source {
        Ok(ms) => ms,
        Err(e) => {
            check.verdict = "skipped".into();
            check.why = format!(
                "fails on the source in a read-only transaction: {}",
                e.message
            );
            return;
        }
    };
    check.source_ms = Some(source_ms);
    match time_runs(dst, &explain, opts.runs).await {
        // Only an error that says the target lacks something is an incompatibility; a
        // timeout is slowness, a recovery conflict or a broken connection is the moment's.
        Err(e) if e.incompatible() => {
            check.verdict = "error-on-target".into();
            check.why = e.message;
        }
        Err(e) if e.code.as_deref() == Some("57014") => {
            check.verdict = "regression".into();
            check.why = format!(
                "timed out on the target after {} ms ({source_ms:.2} ms on the source): {}",
                opts.statement_timeout_ms, e.message
            );
        }
        Err(e) => {
            check.verdict = "skipped".into();
            check.why = format!(
                "failed on the target for a reason of the moment, not of compatibility (SQLSTATE {}): {}",
                e.code.as_deref().unwrap_or("none"),
                e.message
            );
        }
        Ok(target_ms) => {
            check.target_ms = Some(target_ms);
            // Sub-millisecond statements: a floor keeps noise from making ratios.
            let ratio = target_ms.max(0.05) / source_ms.max(0.05);
            check.ratio = Some(ratio);
            if ratio > opts.max_ratio {
                check.verdict = "regression".into();
                check.why = format!(
                    "{target_ms:.2} ms on the target, {source_ms:.2} ms on the source ({ratio:.2}x > {}x)",
                    opts.max_ratio
                );
            } else {
                check.verdict = "ok".into();
                check.why =
                    format!("{target_ms:.2} ms on the target, {source_ms:.2} ms on the source");
            }
        }
    }
}

/// A value of `col` from the first of `tables` that has it: a random one (a page sample), else
/// the first.
async fn sample_value(c: &Client, tables: &[String], col: &str) -> Option<(String, String)> {
    for t in tables {
        let from = t.split('.').map(quote_ident).collect::<Vec<_>>().join(".");
        for sql in [
            format!(
                "SELECT {c}::text FROM {from} TABLESAMPLE SYSTEM (1) WHERE {c} IS NOT NULL LIMIT 1",
                c = quote_ident(col)
            ),
            format!(
                "SELECT {c}::text FROM {from} WHERE {c} IS NOT NULL LIMIT 1",
                c = quote_ident(col)
            ),
        ] {
            if let Ok(Some(row)) = c.query_opt(&sql, &[]).await {
                return Some((row.get(0), t.clone()));
            }
        }
    }
    None
}

/// Why a run failed: its SQLSTATE (none: the connection broke) and text.
struct RunError {
    code: Option<String>,
    message: String,
}

impl RunError {
    fn of(e: &tokio_postgres::Error) -> RunError {
        RunError {
            code: e.code().map(|c| c.code().to_string()),
            message: crate::pg::live::error_text(e),
        }
    }

    /// An error that says the target lacks something the statement needs: an undefined
    /// function, table, column, type, operator or object (class 42: syntax or access rule),
    /// or a feature it does not support (0A000), or a missing library (58P01).
    fn incompatible(&self) -> bool {
        self.code
            .as_deref()
            .is_some_and(|c| c.starts_with("42") || c == "0A000" || c == "58P01")
    }
}

/// The median server-side time (ms, planning plus execution) of `runs` timed runs of
/// `explain` (`EXPLAIN (ANALYZE)`, after one untimed), each in a read-only transaction rolled
/// back, through the extended protocol (one statement, nothing can follow it); the first
/// error otherwise. Session advisory locks a statement took are released after each run.
async fn time_runs(c: &Client, explain: &str, runs: usize) -> Result<f64, RunError> {
    let mut times = Vec::new();
    for i in 0..=runs.max(1) {
        c.batch_execute("BEGIN READ ONLY")
            .await
            .map_err(|e| RunError::of(&e))?;
        let out = c.query(explain, &[]).await;
        let _ = c.batch_execute("ROLLBACK").await;
        let rows = out.map_err(|e| RunError::of(&e))?;
        let lines: Vec<String> = rows.iter().filter_map(|r| r.try_get(0).ok()).collect();
        let ms = |label: &str| {
            lines.iter().find_map(|l| {
                l.trim()
                    .strip_prefix(label)
                    .and_then(|r| r.trim().strip_suffix("ms"))
                    .and_then(|v| v.trim().parse::<f64>().ok())
            })
        };
        let total = ms("Planning Time:").unwrap_or(0.0) + ms("Execution Time:").unwrap_or(0.0);
        if i > 0 {
            times.push(total);
        }
    }
    let _ = c.batch_execute("SELECT pg_advisory_unlock_all()").await;
    median_ms(times).ok_or_else(|| RunError {
        code: None,
        message: "no run".into(),
    })
}
