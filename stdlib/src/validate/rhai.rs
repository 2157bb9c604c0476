//! Rhai module `validate`: exact and sampled comparison of a source and its copy, and the doc
//! comments that are the reference.

use std::sync::{Arc, LazyLock};

use ::rhai::plugin::*;
use ::rhai::{Array, Map, Module, NativeCallContext};
use godwit_engine::PrimitiveError;
use serde_json::json;

use super::*;
use crate::prim::{Opts, RhaiResult, call, shared};

const A: &str = "validate";

/// Install `validate::…` into `engine`. The module is built once per process: its functions
/// capture nothing (they find the world's backend through the engine, see [`call`]).
pub fn register(engine: &mut Engine) {
    static MODULE: LazyLock<Arc<Module>> =
        LazyLock::new(|| shared(A, exported_module!(validate_module)));
    engine.register_static_module(A, MODULE.clone());
}

fn compare_options(map: Map) -> Result<CompareOptions, PrimitiveError> {
    let o = Opts::new(
        A,
        "compare",
        map,
        &[
            "tables",
            "concurrency",
            "leaf_rows",
            "max_keys",
            "settings",
            "mode",
        ],
    )?;
    let d = CompareOptions::default();
    Ok(CompareOptions {
        tables: o.strings("tables")?.unwrap_or(d.tables),
        concurrency: o
            .int("concurrency", 1)?
            .map_or(d.concurrency, |n| n as usize),
        leaf_rows: o.int("leaf_rows", 1)?.unwrap_or(d.leaf_rows),
        max_keys: o.int("max_keys", 1)?.map_or(d.max_keys, |n| n as usize),
        settings: o.strings("settings")?.unwrap_or(d.settings),
        mode: match o.string("mode")?.as_deref() {
            None => d.mode,
            Some(m @ ("value" | "text")) => m.to_string(),
            Some(other) => {
                return Err(PrimitiveError::invalid(
                    A,
                    "compare",
                    format!("options.mode {other:?} is not a mode"),
                    "mode: \"value\" (each type's equality, fast) or \"text\" (exact text form)",
                ));
            }
        },
    })
}

fn sample_options(map: Map) -> Result<SampleOptions, PrimitiveError> {
    let o = Opts::new(A, "sample", map, &["tables", "max_rows", "max_keys"])?;
    let d = SampleOptions::default();
    Ok(SampleOptions {
        tables: o.strings("tables")?.unwrap_or(d.tables),
        max_rows: o.int("max_rows", 1)?.unwrap_or(d.max_rows),
        max_keys: o.int("max_keys", 1)?.map_or(d.max_keys, |n| n as usize),
    })
}

fn audit_options(map: Map) -> Result<AuditOptions, PrimitiveError> {
    let o = Opts::new(
        A,
        "audit",
        map,
        &["tables", "rows", "rows_per_second", "max_keys"],
    )?;
    let d = AuditOptions::default();
    Ok(AuditOptions {
        tables: o.strings("tables")?.unwrap_or(d.tables),
        rows: o.int("rows", 1)?.unwrap_or(d.rows),
        rows_per_second: o.int("rows_per_second", 0)?.unwrap_or(d.rows_per_second),
        max_keys: o.int("max_keys", 1)?.map_or(d.max_keys, |n| n as usize),
    })
}

fn query_options(map: Map) -> Result<QueryCheckOptions, PrimitiveError> {
    let o = Opts::new(
        A,
        "queries",
        map,
        &["top", "statement_timeout", "budget", "runs", "max_ratio"],
    )?;
    let d = QueryCheckOptions::default();
    let ms = |key: &str, default: i64| -> Result<i64, PrimitiveError> {
        Ok(o.duration(key)?
            .map_or(default, |v| v.as_millis().min(i64::MAX as u128) as i64))
    };
    let max_ratio = o.float("max_ratio")?.unwrap_or(d.max_ratio);
    if !(max_ratio.is_finite() && max_ratio >= 1.0) {
        return Err(PrimitiveError::invalid(
            A,
            "queries",
            format!("options.max_ratio {max_ratio} is not a ratio >= 1"),
            "e.g. max_ratio: 2.0 flags a statement twice as slow on the target",
        ));
    }
    Ok(QueryCheckOptions {
        top: o.int("top", 1)?.map_or(d.top, |n| n as usize),
        statement_timeout_ms: ms("statement_timeout", d.statement_timeout_ms)?,
        budget_ms: ms("budget", d.budget_ms)?,
        runs: o.int("runs", 1)?.map_or(d.runs, |n| n as usize),
        max_ratio,
    })
}

/// The audit's evidence so far back from Rhai: `()` before the first round.
fn audit_of(prior: Dynamic) -> Result<Option<AuditReport>, PrimitiveError> {
    if prior.is_unit() {
        return Ok(None);
    }
    let bad = |e: String| {
        PrimitiveError::invalid(
            A,
            "audit",
            format!("prior is not an audit report: {e}"),
            "pass () for the first round, then what the previous round returned",
        )
    };
    let v: serde_json::Value =
        ::rhai::serde::from_dynamic(&prior).map_err(|e| bad(e.to_string()))?;
    serde_json::from_value(v)
        .map(Some)
        .map_err(|e| bad(e.to_string()))
}

fn prepass_options(map: Map) -> Result<PrepassOptions, PrimitiveError> {
    let o = Opts::new(
        A,
        "prepass",
        map,
        &[
            "tables",
            "leaf_rows",
            "max_keys",
            "mode",
            "rows_per_second",
            "settle_rounds",
            "max_pending",
        ],
    )?;
    let d = PrepassOptions::default();
    let mode = match o.string("mode")?.as_deref() {
        None => d.mode,
        Some(m @ ("value" | "text")) => m.to_string(),
        Some(other) => {
            return Err(PrimitiveError::invalid(
                A,
                "prepass",
                format!("options.mode {other:?} is not a mode"),
                "mode: \"value\" (each type's equality, fast) or \"text\" (exact text form)",
            ));
        }
    };
    Ok(PrepassOptions {
        tables: o.strings("tables")?.unwrap_or(d.tables),
        leaf_rows: o.int("leaf_rows", 1)?.unwrap_or(d.leaf_rows),
        max_keys: o.int("max_keys", 1)?.map_or(d.max_keys, |n| n as usize),
        mode,
        rows_per_second: o.int("rows_per_second", 0)?.unwrap_or(d.rows_per_second),
        settle_rounds: o.int("settle_rounds", 0)?.unwrap_or(d.settle_rounds),
        max_pending: o
            .int("max_pending", 0)?
            .map_or(d.max_pending, |n| n as usize),
    })
}

/// A pre-pass's report back from Rhai (a step's journaled result): through JSON, where an
/// integral float and an int are the same number.
fn prepass_of(op: &str, pre: Map) -> Result<PrepassReport, PrimitiveError> {
    let bad = |e: String| {
        PrimitiveError::invalid(
            A,
            op,
            format!("pre is not a pre-pass report: {e}"),
            "pass the result of validate::prepass (the step that ran it returns it)",
        )
    };
    let v: serde_json::Value =
        ::rhai::serde::from_dynamic(&Dynamic::from_map(pre)).map_err(|e| bad(e.to_string()))?;
    serde_json::from_value(v).map_err(|e| bad(e.to_string()))
}

fn fraction_of(f: f64) -> Result<f64, PrimitiveError> {
    if f > 0.0 && f <= 1.0 {
        Ok(f)
    } else {
        Err(PrimitiveError::invalid(
            A,
            "sample",
            format!("fraction {f} is not in (0, 1]"),
            "e.g. 0.001 samples about one row in a thousand",
        ))
    }
}

fn sample_call(
    ctx: &NativeCallContext,
    source: &str,
    target: &str,
    fraction: f64,
    options: Map,
) -> RhaiResult<Map> {
    let pos = ctx.call_position();
    let fraction = fraction_of(fraction).map_err(|e| e.into_rhai_at(pos))?;
    let opts = sample_options(options).map_err(|e| e.into_rhai_at(pos))?;
    call(
        ctx,
        A,
        "sample",
        &json!({ "source": source, "target": target, "fraction": fraction, "options": opts }),
        |cx, w| w.validate.sample(cx, source, target, fraction, &opts),
    )
}

#[export_module]
mod validate_module {
    use super::*;

    /// Whether this world can read the contents of `db`'s tables: the guard of the exact validation
    /// step (the simulator always can; the lab can; the aws world can when IAM database
    /// authentication is configured). Does not prove the database is reachable: `compare` fails
    /// then, it does not skip.
    ///
    /// # Parameters
    /// * `db` — an RDS instance id or an Aurora cluster id.
    ///
    /// # Returns
    /// `#{ available, how }`: `how` says how (`"simulated content hashes"`, `"database
    /// connections"`) or why not.
    ///
    /// # Errors
    /// `NotFound` for an unknown endpoint (simulator).
    ///
    /// # Example
    /// ```rhai
    /// let a = validate::available("orders-db");
    /// if !a.available { throw a.how; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn available(ctx: NativeCallContext, db: &str) -> RhaiResult<Map> {
        call(&ctx, A, "available", &json!({ "db": db }), |cx, w| {
            w.validate.available(cx, db)
        })
    }

    /// Exact validation: prove `target` holds the same rows as `source`. Run it at the fence (source
    /// fenced, replica replayed past the fence LSN), where both sides are static. Per table the key
    /// range is cut into segments; both servers compute each segment's row count and an
    /// order-independent hash of its rows while scanning (one pass per side, in parallel); only
    /// mismatching segments are bisected, down to `leaf_rows` rows, whose keys are then compared.
    /// Tables without a primary key are compared as multisets of rows (`no-primary-key`). Sequences
    /// (the target must not be behind), extension versions and data-relevant settings are compared
    /// too; settings are reported, never fatal. By default (`mode: "value"`) rows are hashed column by
    /// column with each type's own hash: NULL and `''`, and `0.3` and `0.1 + 0.2` (float), are
    /// different rows, `1.0` and `1.00` (numeric) are not; `mode: "text"` hashes the rows' text form
    /// and tells those apart too, at ~2.4x the cost. See `docs/validate.md`.
    ///
    /// # Parameters
    /// * `source` — the source instance.
    /// * `target` — its Aurora replica (or the promoted cluster).
    /// * `options` — `#{ tables, concurrency, leaf_rows, max_keys, settings, mode }`: tables to
    ///   compare (`schema.table`; default all), tables compared at once (2), rows of a segment
    ///   fetched key by key (1000), keys reported per table and kind (100), settings compared
    ///   (default: `server_encoding`, `lc_collate`, `lc_ctype`, `server_version_num`,
    ///   `standard_conforming_strings`, `TimeZone`, `default_text_search_config`), `"value"`
    ///   (default) or `"text"`.
    ///
    /// # Returns
    /// `#{ equal, source, target, positions: #{ source_lsn, target_replay_lsn, lag_bytes }, tables:
    /// [#{ table, method, hash, key, equal, source_rows, target_rows, segments, mismatched_segments,
    /// missing_on_target, extra_on_target, different, truncated }], sequences: [#{ name, source,
    /// target, ok }], extensions: [#{ name, source, target }], settings: [...], summary }`; keys in
    /// their text form (a composite key as `(a,b)`), in key order.
    ///
    /// # Errors
    /// `Invalid` for an unknown option or table; `NotFound` for an endpoint that holds no copy of the
    /// source's tables; `Conflict` in a world without database access (see `available`); `Internal`
    /// (retryable) when a connection breaks.
    ///
    /// # Example
    /// ```rhai
    /// rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4", iam_auth: true });
    /// rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.xlarge" });
    /// rds::wait_until_cluster_available("orders-aurora", #{ timeout: "12h" });
    /// pg::block_logins("orders-db", ["orders_app"]);
    /// pg::terminate_backends("orders-db", pg::application_backends("orders-db").map(|b| b.pid));
    /// pg::wait_until_no_application_backends("orders-db", #{});
    /// let fence = pg::current_lsn("orders-db").lsn_bytes;
    /// // The replica's position, read on the source (Aurora has no pg_last_wal_replay_lsn).
    /// let behind = || { let c = pg::replication_connections("orders-db"); c.is_empty() || c.some(|s| s.replay_lsn_bytes < fence) };
    /// while behind.call() { sleep("5s"); }
    /// let r = validate::compare("orders-db", "orders-aurora", #{});
    /// if !r.equal { throw r.summary; }
    /// if r.tables.len() != 2 || r.tables[0].segments == 0 { throw r; }
    /// let one = validate::compare("orders-db", "orders-aurora", #{ tables: ["public.customers"], leaf_rows: 100 });
    /// if one.tables[0].table != "public.customers" { throw one; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn compare(
        ctx: NativeCallContext,
        source: &str,
        target: &str,
        options: Map,
    ) -> RhaiResult<Map> {
        let opts = compare_options(options).map_err(|e| e.into_rhai_at(ctx.call_position()))?;
        call(
            &ctx,
            A,
            "compare",
            &json!({ "source": source, "target": target, "options": opts }),
            |cx, w| w.validate.compare(cx, source, target, &opts),
        )
    }

    /// `validate::sample(source, target, fraction, #{})`: a sampled audit with the default options.
    ///
    /// # Parameters
    /// * `source`, `target`, `fraction` — as for `sample(source, target, fraction, options)`.
    ///
    /// # Returns
    /// As `sample(source, target, fraction, options)`.
    ///
    /// # Errors
    /// As `sample(source, target, fraction, options)`.
    ///
    /// # Example
    /// ```rhai
    /// rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4", iam_auth: true });
    /// rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.xlarge" });
    /// rds::wait_until_cluster_available("orders-aurora", #{ timeout: "12h" });
    /// let s = validate::sample("orders-db", "orders-aurora", 0.001);
    /// print(`${s.summary}; replica ${s.positions.lag_bytes} bytes behind`);
    /// assert(s.sampled > 0, s.summary);
    /// assert(s.equal, `divergence: ${s.summary}`);
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn sample(
        ctx: NativeCallContext,
        source: &str,
        target: &str,
        fraction: f64,
    ) -> RhaiResult<Map> {
        sample_call(&ctx, source, target, fraction, Map::new())
    }

    /// A sampled audit for the replication phase, correct under concurrent change: a random sample
    /// of the source's rows (`TABLESAMPLE BERNOULLI`, at most `max_rows` per table, one snapshot)
    /// is looked up by primary key on the target once the target has replayed past the sample's
    /// WAL position, then on the source again. A row whose target copy differs while the source's
    /// did not change in between (same content and `xmin`) is a **proven** difference, once a
    /// second round over the suspects agrees; a row that changed meanwhile, or that a lagging
    /// target had not replayed within the wait (half the call's budget, at most 30 s), is
    /// `unsettled` — counted, never reported as a difference (`may_be_lag` is then true).
    /// docs/validate.md has the argument. Tables without a primary key are listed as
    /// `no-primary-key` and not sampled.
    ///
    /// # Parameters
    /// * `source` — the source instance.
    /// * `target` — its Aurora replica (or any copy of it).
    /// * `fraction` — share of rows to sample, in `(0, 1]`.
    /// * `options` — optional `#{ tables, max_rows, max_keys }`: tables to sample (default all),
    ///   rows per table at most (10000), keys reported per table and kind (100).
    ///
    /// # Returns
    /// `#{ equal, source, target, fraction, sampled, mismatches, unsettled, may_be_lag, positions:
    /// #{ source_lsn, target_replay_lsn, lag_bytes }, tables: [#{ table, method, sampled,
    /// missing_on_target, different, unsettled, truncated }], summary }`: `equal` is no proven
    /// difference; `missing_on_target` and `different` hold only proven ones.
    ///
    /// # Errors
    /// `Invalid` for a fraction outside `(0, 1]`, an unknown option or table; `NotFound` for an
    /// endpoint that holds no copy of the source's tables; `Conflict` in a world without database
    /// access (see `available`).
    ///
    /// # Example
    /// ```rhai
    /// rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4", iam_auth: true });
    /// rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.xlarge" });
    /// rds::wait_until_cluster_available("orders-aurora", #{ timeout: "12h" });
    /// sleep("10m");
    /// let s = validate::sample("orders-db", "orders-aurora", 0.01);
    /// if s.sampled == 0 { throw s; }
    /// if !s.equal { throw `divergence: ${s.summary}`; }
    /// let one = validate::sample("orders-db", "orders-aurora", 0.5, #{ tables: ["public.customers"] });
    /// if one.tables.len() != 1 || !one.equal { throw one; }
    /// ```
    #[rhai_fn(name = "sample", volatile, return_raw)]
    pub fn sample_with_options(
        ctx: NativeCallContext,
        source: &str,
        target: &str,
        fraction: f64,
        options: Map,
    ) -> RhaiResult<Map> {
        sample_call(&ctx, source, target, fraction, options)
    }

    /// One round of the continuous audit while replication runs (docs/validate.md, "The
    /// audit"), added to the evidence of the rounds before (`prior`). Each round samples
    /// `rows` rows in all — shared among the tables by size, a small table read whole — with
    /// `TABLESAMPLE SYSTEM`, so the source reads only the sampled pages; compares them like
    /// `sample` (the target read once it replayed past the sample's position, the source
    /// re-read: only **proven** differences count, a changing or not yet replayed row is
    /// `unsettled`); and holds its source reads to `rows_per_second` on average. The evidence
    /// accumulates: rows compared, differences with their keys, each table's coverage (the
    /// expected share of its rows sampled at least once), and the source rows read per second
    /// measured over the rounds.
    ///
    /// # Parameters
    /// * `source` — the source instance.
    /// * `target` — its Aurora replica.
    /// * `prior` — `()` for the first round, then the previous round's result.
    /// * `options` — `#{ tables, rows, rows_per_second, max_keys }`: tables (default all),
    ///   rows per round (20000), the source reads per second on average (1000; 0: no waiting), keys reported per
    ///   table and kind (100).
    ///
    /// # Returns
    /// `#{ equal, source, target, rounds, compared, unsettled, mismatches, source_rows_read,
    /// elapsed_ms, rows_per_second, budget_rows_per_second, positions, tables: [#{ table,
    /// method, estimated_rows, compared, unsettled, coverage, missing_on_target, different,
    /// truncated }], last, summary }` — `equal`: no round proved a difference.
    ///
    /// # Errors
    /// `Invalid` for an unknown option or table, or a `prior` that is not an audit's result;
    /// `NotFound` for an endpoint that holds no copy of the source's tables; `Conflict` in a
    /// world without database access (see `available`).
    ///
    /// # Example
    /// ```rhai
    /// rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4", iam_auth: true });
    /// rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.xlarge" });
    /// rds::wait_until_cluster_available("orders-aurora", #{ timeout: "12h" });
    /// let a = validate::audit("orders-db", "orders-aurora", (), #{ rows: 5000 });
    /// a = validate::audit("orders-db", "orders-aurora", a, #{ rows: 5000 });
    /// print(a.summary);
    /// assert(a.rounds == 2 && a.compared > 0, a.summary);
    /// assert(a.equal, `divergence: ${a.summary}`);
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn audit(
        ctx: NativeCallContext,
        source: &str,
        target: &str,
        prior: Dynamic,
        options: Map,
    ) -> RhaiResult<Map> {
        let pos = ctx.call_position();
        let opts = audit_options(options).map_err(|e| e.into_rhai_at(pos))?;
        let prior = audit_of(prior).map_err(|e| e.into_rhai_at(pos))?;
        let rounds = prior.as_ref().map_or(0, |p| p.rounds);
        call(
            &ctx,
            A,
            "audit",
            &json!({ "source": source, "target": target, "rounds_before": rounds, "options": opts }),
            |cx, w| {
                let round = w.validate.audit(cx, source, target, &opts)?;
                Ok(AuditReport::absorb(prior.clone(), &round, &opts))
            },
        )
    }

    /// The query check (docs/validate.md, "The query check"): the source's heaviest read-only
    /// statements by total time (`pg_stat_statements`: `SELECT`/`WITH` that lock and write
    /// nothing; godwit's own and catalog queries left out) run on both sides — each parameter
    /// given a value sampled from the column it is compared with (`LIMIT $n`: 10), the same on
    /// both — as `EXPLAIN (ANALYZE)` in a read-only transaction under `statement_timeout`, once
    /// untimed and `runs` times timed. A statement that runs on the source and fails on the
    /// target is `error-on-target` (incompatible); one whose median server-side time on the
    /// target exceeds `max_ratio` times the source's is a `regression`; one that fails on the
    /// source too (not a plain read after all) or past the budget is `skipped`. Without
    /// `pg_stat_statements` nothing is checked and `available` is false, with the fix.
    ///
    /// # Parameters
    /// * `source` — the source instance.
    /// * `target` — its Aurora replica.
    /// * `options` — `#{ top, statement_timeout, budget, runs, max_ratio }`: statements at most
    ///   (10), each run's timeout (`"5s"`), the whole check's (`"1m"`), timed runs per side (3),
    ///   the regression threshold (2.0).
    ///
    /// # Returns
    /// `#{ compatible, available, why, source, target, checked, errors, regressions, skipped,
    /// max_ratio, elapsed_ms, statements: [#{ queryid, database, query, calls, stats_mean_ms,
    /// parameters, source_ms, target_ms, ratio, verdict, why }], summary }` — `compatible`: no
    /// statement failed on the target only.
    ///
    /// # Errors
    /// `Invalid` for an unknown option or a `max_ratio` below 1; `Conflict` in a world without
    /// database access (see `available`).
    ///
    /// # Example
    /// ```rhai
    /// rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4", iam_auth: true });
    /// rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.xlarge" });
    /// rds::wait_until_cluster_available("orders-aurora", #{ timeout: "12h" });
    /// let q = validate::queries("orders-db", "orders-aurora", #{ top: 5, max_ratio: 3.0 });
    /// print(q.summary);
    /// assert(q.available && q.checked > 0, q.summary);
    /// assert(q.compatible, `statements fail on Aurora: ${q.summary}`);
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn queries(
        ctx: NativeCallContext,
        source: &str,
        target: &str,
        options: Map,
    ) -> RhaiResult<Map> {
        let opts = query_options(options).map_err(|e| e.into_rhai_at(ctx.call_position()))?;
        call(
            &ctx,
            A,
            "queries",
            &json!({ "source": source, "target": target, "options": opts }),
            |cx, w| w.validate.queries(cx, source, target, &opts),
        )
    }

    /// The pre-fence pass of the two-pass validation (docs/validate.md, "Two passes"): every
    /// table compared while replication runs, correctly under concurrent change, and the
    /// tracking of what changes next started, so that `fence_pass` at the fence compares only
    /// that. On a source with `wal_level=logical` it creates a logical slot
    /// (`godwit_validate_<database oid>`, plugin `test_decoding`) per database and learns the
    /// key of every row that changes; otherwise `pg_stat_user_tables` tells which tables
    /// changed. A table's segments are read on the source, then on the replica once it replayed
    /// past the source's read; segments that differ only by rows that changed in between are
    /// explained, a row that differs without a change is reported only after a settle round
    /// (a fresh read of both sides) agrees. The rows that changed are left to the fence pass.
    /// Its reads on the source are paced to `rows_per_second`. End what it started with
    /// `end_prepass` if no fence pass follows (an undo).
    ///
    /// # Parameters
    /// * `source` — the source instance (a primary).
    /// * `target` — its Aurora replica.
    /// * `options` — `#{ tables, leaf_rows, max_keys, mode, rows_per_second, settle_rounds,
    ///   max_pending }`: as `compare` for the first four; the read budget on the source
    ///   (500000 rows/s; 0: none), settle rounds (3), keys of a table left to the fence pass
    ///   at most (100000; more: the fence pass rescans that table).
    ///
    /// # Returns
    /// `#{ equal, source, target, tracking: [#{ database, how, slot, confirmed_lsn, why }],
    /// tables: [#{ table, method, hash, key, equal, rows, segments, mismatched_segments,
    /// explained_segments, missing_on_target, extra_on_target, different, truncated, pending,
    /// rescan, counters, shape }], rows_read, elapsed_ms, rows_per_second,
    /// budget_rows_per_second, settle_rounds, pending_keys, only, mode, summary }` — `equal`:
    /// no proven difference; `rescan`: why the fence pass must compare that table whole.
    ///
    /// # Errors
    /// `Invalid` for an unknown option or table; `Conflict` when another pass holds the slot, or
    /// in a world without database access (see `available`).
    ///
    /// # Example
    /// ```rhai
    /// rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4", iam_auth: true });
    /// rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.xlarge" });
    /// rds::wait_until_cluster_available("orders-aurora", #{ timeout: "12h" });
    /// let pre = validate::prepass("orders-db", "orders-aurora", #{});
    /// if !pre.equal { throw pre.summary; }
    /// print(pre.summary);
    /// validate::end_prepass("orders-db", pre);
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn prepass(
        ctx: NativeCallContext,
        source: &str,
        target: &str,
        options: Map,
    ) -> RhaiResult<Map> {
        let opts = prepass_options(options).map_err(|e| e.into_rhai_at(ctx.call_position()))?;
        call(
            &ctx,
            A,
            "prepass",
            &json!({ "source": source, "target": target, "options": opts }),
            |cx, w| w.validate.prepass(cx, source, target, &opts),
        )
    }

    /// The fence pass of the two-pass validation, with the source fenced and the replica
    /// caught up: compares what may differ since the pre-pass `pre` and nothing else — the keys
    /// it left and those changed since (decoded from its slot), or with counters the tables
    /// whose counters moved; a table unchanged since its equal pre-pass is proven by it. Tables
    /// the pre-pass could not settle, changed without a key, truncated or altered since, created
    /// since, and every table of a database whose slot is gone or was consumed by someone else
    /// are compared whole. Drops the pre-pass's slots. Its cost is the changes, not the data.
    ///
    /// # Parameters
    /// * `source`, `target` — as for `prepass`.
    /// * `pre` — the pre-pass's report.
    ///
    /// # Returns
    /// As `compare`, each table with `proven` (how: `unchanged since its equal pre-pass ...`,
    /// `N keys changed since ... compared`, `rescanned: <why>`), and `fence_pass: #{ tracking,
    /// unchanged_tables, changed_keys, rescanned_tables, rescanned_rows, decoded_bytes,
    /// elapsed_ms }`.
    ///
    /// # Errors
    /// `Invalid` when `pre` is not a pre-pass report; as `compare` otherwise.
    ///
    /// # Example
    /// ```rhai
    /// rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4", iam_auth: true });
    /// rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.xlarge" });
    /// rds::wait_until_cluster_available("orders-aurora", #{ timeout: "12h" });
    /// let pre = validate::prepass("orders-db", "orders-aurora", #{});
    /// // The fence: no application session left, the replica past the source's last write.
    /// pg::block_logins("orders-db", ["orders_app"]);
    /// pg::terminate_backends("orders-db", pg::application_backends("orders-db").map(|b| b.pid));
    /// pg::wait_until_no_application_backends("orders-db", #{});
    /// let fence = pg::current_lsn("orders-db").lsn_bytes;
    /// let behind = || { let c = pg::replication_connections("orders-db"); c.is_empty() || c.some(|s| s.replay_lsn_bytes < fence) };
    /// while behind.call() { sleep("5s"); }
    /// let r = validate::fence_pass("orders-db", "orders-aurora", pre);
    /// if !r.equal { throw r.summary; }
    /// // The busy source wrote between the passes: those rows, and only those, were compared.
    /// if r.fence_pass.changed_keys == 0 { throw `nothing compared by key: ${r.fence_pass}`; }
    /// print(r.summary);
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn fence_pass(
        ctx: NativeCallContext,
        source: &str,
        target: &str,
        pre: Map,
    ) -> RhaiResult<Map> {
        let pre = prepass_of("fence_pass", pre).map_err(|e| e.into_rhai_at(ctx.call_position()))?;
        call(
            &ctx,
            A,
            "fence_pass",
            &json!({ "source": source, "target": target, "pre": pre.summary }),
            |cx, w| w.validate.fence_pass(cx, source, target, &pre),
        )
    }

    /// End the change tracking a pre-pass started (its slots on the source hold WAL until
    /// dropped): the undo of the step that ran `prepass`. Idempotent.
    ///
    /// # Parameters
    /// * `source` — the source instance.
    /// * `pre` — the pre-pass's report.
    ///
    /// # Returns
    /// `true` if there was anything to end.
    ///
    /// # Errors
    /// `Invalid` when `pre` is not a pre-pass report; `Conflict` when a session still decodes
    /// from the slot after 10 s.
    ///
    /// # Example
    /// ```rhai
    /// rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4", iam_auth: true });
    /// rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.xlarge" });
    /// rds::wait_until_cluster_available("orders-aurora", #{ timeout: "12h" });
    /// let pre = validate::prepass("orders-db", "orders-aurora", #{});
    /// let ended = validate::end_prepass("orders-db", pre);
    /// if pre.tracking[0].slot != () && !ended { throw "the slot was not dropped"; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn end_prepass(ctx: NativeCallContext, source: &str, pre: Map) -> RhaiResult<bool> {
        let pre =
            prepass_of("end_prepass", pre).map_err(|e| e.into_rhai_at(ctx.call_position()))?;
        call(
            &ctx,
            A,
            "end_prepass",
            &json!({ "source": source, "pre": pre.summary }),
            |cx, w| w.validate.end_prepass(cx, source, &pre),
        )
    }

    /// Drop every change-tracking slot of the two-pass validation on `source`
    /// (`godwit_validate_*`, in every database), whichever pass made it: the undo of the step
    /// before the pre-pass, so that a pre-pass cut off before it returned (Ctrl-C, a timeout, a
    /// lost connection) leaves no slot holding the source's WAL. Idempotent.
    ///
    /// # Parameters
    /// * `source` — the source instance.
    ///
    /// # Returns
    /// The names of the slots dropped (empty when there were none).
    ///
    /// # Errors
    /// `Conflict` when a session still decodes from one after 10 s; `Conflict` in a world
    /// without database access (see `available`).
    ///
    /// # Example
    /// ```rhai
    /// rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4", iam_auth: true });
    /// rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.xlarge" });
    /// rds::wait_until_cluster_available("orders-aurora", #{ timeout: "12h" });
    /// let pre = validate::prepass("orders-db", "orders-aurora", #{});
    /// let dropped = validate::end_tracking("orders-db");
    /// if dropped != pre.tracking.filter(|t| t.slot != ()).map(|t| t.slot) { throw dropped; }
    /// if validate::end_tracking("orders-db") != [] { throw "not idempotent"; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn end_tracking(ctx: NativeCallContext, source: &str) -> RhaiResult<Array> {
        call(
            &ctx,
            A,
            "end_tracking",
            &json!({ "source": source }),
            |cx, w| w.validate.end_tracking(cx, source),
        )
    }
}
