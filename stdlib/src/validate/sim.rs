//! [`Validate`] over the simulator. A table's rows are keys `1..=rows` whose contents are a
//! hash of (table, seed, key); the source's writes append rows to its first (hot) table (one
//! row per 4 KiB, as in `pg::table_hashes`), and a replica holds the rows it has replayed.
//! A `data-divergence` fault (target: a table, value: a key) gives the target a different
//! version of that row. Segments are hashed and bisected exactly as the live world does,
//! over the modelled rows, so a seeded difference is found the same way.

use std::collections::BTreeSet;

use godwit_engine::PrimitiveError;

use super::*;
use crate::pg::format_lsn;
use crate::prim::not_found;
use crate::sim::access::godwit_login;
use crate::sim::scenario::FaultKind;
use crate::sim::{Sim, SimState, fnv};

const MAX_SEGMENTS: i64 = 4096;
const FANOUT: i64 = 16;

/// One side's copy of one table, as the model sees it.
struct Copy {
    rows: i64,
    /// Keys whose contents differ from the source's (seeded divergence).
    diverged: BTreeSet<i64>,
}

impl Copy {
    fn row_hash(&self, table: &str, seed: u64, key: i64) -> u64 {
        let version: u8 = u8::from(self.diverged.contains(&key));
        fnv(&[
            table.as_bytes(),
            &seed.to_le_bytes(),
            &key.to_le_bytes(),
            &[version],
        ])
    }

    /// `(count, hash)` of keys in `[a, b)`: the count exactly, the hash as the sum of row
    /// hashes — computed from the range and the diverged keys in it, like a server would by
    /// scanning (the model does not store rows).
    fn summary(&self, table: &str, seed: u64, a: i64, b: i64) -> (i64, u64) {
        let (lo, hi) = (a.max(1), b.min(self.rows + 1));
        if hi <= lo {
            return (0, 0);
        }
        let base = fnv(&[
            table.as_bytes(),
            &seed.to_le_bytes(),
            &lo.to_le_bytes(),
            &hi.to_le_bytes(),
        ]);
        let h = self
            .diverged
            .range(lo..hi)
            .fold(base, |h, k| h.wrapping_add(self.row_hash(table, seed, *k)));
        (hi - lo, h)
    }

    fn leaf(&self, table: &str, seed: u64, a: i64, b: i64) -> Vec<LeafRow> {
        (a.max(1)..b.min(self.rows + 1))
            .map(|k| LeafRow {
                key: k.to_string(),
                hash: format!("{:016x}", self.row_hash(table, seed, k)),
                count: 1,
            })
            .collect()
    }
}

fn copies(st: &SimState, op: &str, db: &str) -> Result<Vec<(String, Copy)>, PrimitiveError> {
    let Some((applied, local)) = st.content_version(db) else {
        return Err(not_found(
            A,
            op,
            format!("{db} holds no copy of the source's tables"),
            "compare the source with its Aurora replica (after create_replica_cluster)",
        ));
    };
    let source = db == st.source_id();
    Ok(st
        .sc
        .source
        .tables
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let written = if i == 0 {
                (applied + local) / st.sc.workload.bytes_per_row
            } else {
                0
            };
            let diverged = if source {
                BTreeSet::new()
            } else {
                st.faults
                    .iter()
                    .filter(|f| {
                        f.kind == FaultKind::DataDivergence
                            && f.fired_at.is_some()
                            && f.target.as_deref() == Some(t.name.as_str())
                    })
                    .filter_map(|f| f.value.map(|v| v as i64))
                    .collect()
            };
            // A cluster created empty holds a table's rows only as far as its copy got.
            let rows = match st.copied_share(db, &t.name) {
                Some(share) => ((t.rows + written) as f64 * share).floor() as i64,
                None => (t.rows + written) as i64,
            };
            (t.name.clone(), Copy { rows, diverged })
        })
        .collect())
}

fn positions(st: &SimState, target: &str) -> Positions {
    let source_lsn = st.lsn;
    let replay = st
        .stream
        .as_ref()
        .filter(|s| s.cluster_id == target)
        .map(|s| s.replayed);
    Positions {
        source_lsn: Some(format_lsn(source_lsn)),
        target_replay_lsn: replay.map(format_lsn),
        lag_bytes: replay.map(|r| source_lsn as i64 - r as i64),
    }
}

fn unknown_tables(
    op: &str,
    source: &str,
    wanted: &[String],
    have: &[(String, Copy)],
) -> Result<(), PrimitiveError> {
    match wanted.iter().find(|w| !have.iter().any(|(n, _)| n == *w)) {
        Some(w) => Err(unknown_table(
            op,
            source,
            w,
            format!(
                "tables: {}",
                have.iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
        None => Ok(()),
    }
}

/// Each side's sequences as the world has them (`SimState::sequence_values`: a replica's
/// follow the writes it replayed; a logical target's only its own writes and
/// `pg::advance_sequences`): a target behind the source would hand out keys again.
fn sequences(st: &SimState, source: &str, target: &str) -> Vec<SequenceCheck> {
    let on_target = st.sequence_values(target);
    st.sequence_values(source)
        .into_iter()
        .map(|s| {
            let t = on_target
                .iter()
                .find(|t| t.name == s.name)
                .map(|t| t.last_value);
            SequenceCheck {
                ok: t.is_some_and(|t| t >= s.last_value),
                name: s.name,
                source: Some(s.last_value),
                target: t,
            }
        })
        .collect()
}

fn compare_table(name: &str, seed: u64, a: &Copy, b: &Copy, opts: &CompareOptions) -> TableReport {
    let mut rep = TableReport::new(name, "segments", vec!["id".into()]);
    rep.source_rows = a.rows;
    rep.target_rows = b.rows;
    let hi = a.rows.max(b.rows) + 1;
    if hi <= 1 {
        return rep;
    }
    let leaf_rows = opts.leaf_rows.max(1);
    let n = ((hi - 1) / leaf_rows + 1).clamp(1, MAX_SEGMENTS);
    let (_, segs) = split(1, hi, n);
    rep.segments = segs.len() as i64;
    let mut queue: Vec<(i64, i64)> = Vec::new();
    for (sa, sb) in segs {
        if a.summary(name, seed, sa, sb) != b.summary(name, seed, sa, sb) {
            rep.mismatched_segments += 1;
            queue.push((sa, sb));
        }
    }
    queue.reverse();
    while let Some((sa, sb)) = queue.pop() {
        if rep.truncated {
            break;
        }
        let rows = a
            .summary(name, seed, sa, sb)
            .0
            .max(b.summary(name, seed, sa, sb).0);
        if rows <= leaf_rows || sb - sa <= FANOUT {
            record_leaf(
                &mut rep,
                &a.leaf(name, seed, sa, sb),
                &b.leaf(name, seed, sa, sb),
                opts.max_keys,
            );
            continue;
        }
        let (_, subs) = split(sa, sb, FANOUT);
        for (ca, cb) in subs.into_iter().rev() {
            if a.summary(name, seed, ca, cb) != b.summary(name, seed, ca, cb) {
                queue.push((ca, cb));
            }
        }
    }
    if rep.mismatched_segments > 0 {
        rep.equal = false;
    }
    rep
}

impl Sim {
    /// `sample`'s model: key `k` of table `n` is in the sample when its hash (with `round`)
    /// falls under `share(n, rows)`. Only the keys that can differ are looked at (the model
    /// knows them); the count is the expected sample size. Also returns the comparison rate.
    #[allow(clippy::too_many_arguments)]
    fn sample_model(
        &self,
        cx: &Call<'_>,
        op: &str,
        (source, target): (&str, &str),
        wanted: &[String],
        max_keys: usize,
        round: u64,
        share: impl Fn(&str, i64) -> f64,
    ) -> Result<(SampleReport, f64), PrimitiveError> {
        let mut st = self.api(cx, A, op)?;
        godwit_login(&mut st, A, op, source)?;
        godwit_login(&mut st, A, op, target)?;
        let a = copies(&st, op, source)?;
        let b = copies(&st, op, target)?;
        unknown_tables(op, source, wanted, &a)?;
        let seed = st.sc.seed;
        let positions = positions(&st, target);
        // A streaming replica's missing rows are ones it has not replayed yet: the model's
        // rows follow the application's bytes, not the LSN, so "replayed past the sample"
        // cannot be told from them, and the live audit calls such rows unsettled. A copy that
        // no longer follows the source (promoted) is static: a missing row is missing.
        let streaming = st.stream.as_ref().is_some_and(|s| s.cluster_id == target);
        let lagging = streaming || positions.lag_bytes.unwrap_or(0) > 0;
        let mut tables: Vec<SampleTable> = a
            .iter()
            .zip(b.iter())
            .filter(|((n, _), _)| wanted.is_empty() || wanted.contains(n))
            .map(|((n, x), (_, y))| {
                let f = share(n, x.rows);
                let picked = |k: i64| {
                    // `sample` (round 0) hashes as it always has: same seed, same sample.
                    let h = if round == 0 {
                        fnv(&[n.as_bytes(), &seed.to_le_bytes(), &k.to_le_bytes(), b"s"])
                    } else {
                        fnv(&[
                            n.as_bytes(),
                            &seed.to_le_bytes(),
                            &k.to_le_bytes(),
                            &round.to_le_bytes(),
                            b"s",
                        ])
                    };
                    (h as f64 / u64::MAX as f64) < f
                };
                let mut t = SampleTable {
                    table: n.clone(),
                    method: if op == "audit" && f >= 1.0 {
                        "sampled whole"
                    } else {
                        "sampled"
                    }
                    .into(),
                    sampled: (x.rows as f64 * f).round() as i64,
                    estimated_rows: x.rows,
                    whole: f >= 1.0,
                    ..SampleTable::default()
                };
                // Rows a lagging replica has not replayed are unsettled, as the live audit
                // has them once its wait for the replay runs out (their expected number: a
                // stalled replica can be millions of rows behind); on a static copy a missing
                // row is proven missing.
                if lagging {
                    t.unsettled += ((x.rows - y.rows).max(0) as f64 * f).round() as i64;
                } else {
                    let missing: Vec<String> = (y.rows + 1..=x.rows)
                        .filter(|k| picked(*k))
                        .map(|k| k.to_string())
                        .collect();
                    t.truncated |= push_capped(&mut t.missing_on_target, missing, max_keys);
                }
                let different: Vec<String> = y
                    .diverged
                    .iter()
                    .filter(|k| **k <= x.rows && picked(**k))
                    .map(|k| k.to_string())
                    .collect();
                t.truncated |= push_capped(&mut t.different, different, max_keys);
                t
            })
            .collect();
        tables.sort_by(|a, b| a.table.cmp(&b.table));
        let rate = st.sc.godwit.compare_rows_per_second;
        let report = SampleReport {
            positions,
            tables,
            ..SampleReport::new(source, target, 0.0)
        }
        .finish();
        Ok((report, rate))
    }
}

impl Validate for Sim {
    fn available(&self, cx: &Call<'_>, db: &str) -> Result<Availability, PrimitiveError> {
        let st = self.api(cx, A, "available")?;
        if !st.rds.instances.contains_key(db) && !st.rds.clusters.contains_key(db) {
            return Err(not_found(
                A,
                "available",
                format!("no database endpoint {db}"),
                "pass an RDS instance id or an Aurora cluster id",
            ));
        }
        // As LiveValidate: configured is the question (no connection is made).
        Ok(if st.sc.godwit.db_access {
            Availability {
                available: true,
                how: "simulated content hashes".into(),
            }
        } else {
            Availability {
                available: false,
                how: "no database access in this world (credential-less)".into(),
            }
        })
    }

    fn compare(
        &self,
        cx: &Call<'_>,
        source: &str,
        target: &str,
        opts: &CompareOptions,
    ) -> Result<Report, PrimitiveError> {
        let mut st = self.api(cx, A, "compare")?;
        // Both sides are read with SQL: godwit must be let in, as pg:: is.
        godwit_login(&mut st, A, "compare", source)?;
        godwit_login(&mut st, A, "compare", target)?;
        let a = copies(&st, "compare", source)?;
        let b = copies(&st, "compare", target)?;
        unknown_tables("compare", source, &opts.tables, &a)?;
        let seed = st.sc.seed;
        let mut tables: Vec<TableReport> = a
            .iter()
            .zip(b.iter())
            .filter(|((n, _), _)| opts.tables.is_empty() || opts.tables.contains(n))
            .map(|((n, x), (_, y))| compare_table(n, seed, x, y, opts))
            .collect();
        tables.sort_by(|a, b| a.table.cmp(&b.table));
        let sequences = sequences(&st, source, target);
        let report = Report {
            positions: positions(&st, target),
            tables,
            sequences,
            ..Report::new(source, target)
        }
        .finish();
        // Reading every row takes time, and a run waits for it (at the fence: inside the write
        // blackout). Never free: a world kinder than a real comparison would hide the cost
        // that grows with the database.
        let rows = report
            .tables
            .iter()
            .map(|t| t.source_rows.max(t.target_rows))
            .sum::<i64>()
            .max(0) as f64;
        let g = &st.sc.godwit;
        let cost = crate::sim::scenario::dur_ms(&g.compare_base)
            + (rows / g.compare_rows_per_second * 1000.0).round() as i64;
        drop(st);
        cx.sleep(std::time::Duration::from_millis(cost.max(0) as u64))?;
        Ok(report)
    }

    fn sample(
        &self,
        cx: &Call<'_>,
        source: &str,
        target: &str,
        fraction: f64,
        opts: &SampleOptions,
    ) -> Result<SampleReport, PrimitiveError> {
        let share = |_: &str, rows: i64| fraction.min(opts.max_rows as f64 / rows.max(1) as f64);
        let (report, _) = self.sample_model(
            cx,
            "sample",
            (source, target),
            &opts.tables,
            opts.max_keys,
            0,
            share,
        )?;
        Ok(SampleReport { fraction, ..report })
    }

    /// A round of the audit over the model: each table's share of `opts.rows`
    /// ([`audit_shares`]), picked afresh each round (the virtual time is in the pick's hash),
    /// read twice on the source, and charged at `opts.rows_per_second` (the pacing), or at the
    /// comparison rate when uncapped.
    fn audit(
        &self,
        cx: &Call<'_>,
        source: &str,
        target: &str,
        opts: &AuditOptions,
    ) -> Result<SampleReport, PrimitiveError> {
        let sizes: Vec<(String, i64)> = {
            let st = self.api(cx, A, "audit")?;
            copies(&st, "audit", source)?
                .into_iter()
                .filter(|(n, _)| opts.tables.is_empty() || opts.tables.contains(n))
                .map(|(n, c)| (n, c.rows))
                .collect()
        };
        let estimates: Vec<i64> = sizes.iter().map(|(_, r)| *r).collect();
        let shares: Vec<(String, i64)> = sizes
            .iter()
            .map(|(n, _)| n.clone())
            .zip(audit_shares(&estimates, opts.rows.max(1)))
            .collect();
        let f = |table: &str, rows: i64| {
            let want = shares.iter().find(|(n, _)| n == table).map_or(0, |s| s.1);
            (want as f64 / rows.max(1) as f64).min(1.0)
        };
        let round = cx.now_ms() as u64;
        let (mut report, rate) = self.sample_model(
            cx,
            "audit",
            (source, target),
            &opts.tables,
            opts.max_keys,
            round,
            f,
        )?;
        // Round A reads the sample, round B its keys again.
        let read = 2 * report.sampled;
        let per_second = if opts.rows_per_second > 0 {
            (opts.rows_per_second as f64).min(rate)
        } else {
            rate
        };
        let cost = (read as f64 / per_second * 1000.0).round() as i64;
        cx.sleep(std::time::Duration::from_millis(cost.max(0) as u64))?;
        report.source_rows_read = read;
        report.elapsed_ms = cost;
        Ok(report.finish())
    }
    /// The query check over the model: the source's statements are a point read by key of
    /// each table (`SELECT * FROM t WHERE id = $1`, calls in proportion to its rows, 0.3 ms)
    /// and a range count of the hot one (`... WHERE id > $1`, 40 ms per million rows); the
    /// target runs them as fast (Aurora's replica of the same data), and a `target-query-error`
    /// fault makes the statements reading its table fail there. Without `pg_stat_statements`
    /// among the source's extensions nothing is checked. Charged at the statements' times.
    fn queries(
        &self,
        cx: &Call<'_>,
        source: &str,
        target: &str,
        opts: &QueryCheckOptions,
    ) -> Result<QueryReport, PrimitiveError> {
        const OP: &str = "queries";
        let report = {
            let mut st = self.api(cx, A, OP)?;
            godwit_login(&mut st, A, OP, source)?;
            godwit_login(&mut st, A, OP, target)?;
            let tables = copies(&st, OP, source)?;
            copies(&st, OP, target)?;
            if !st
                .sc
                .source
                .extensions
                .iter()
                .any(|e| e == "pg_stat_statements")
            {
                QueryReport::unavailable(
                    source,
                    target,
                    "pg_stat_statements is not installed in the source's first database: CREATE EXTENSION pg_stat_statements".into(),
                )
            } else {
                let failing: Vec<String> = st
                    .faults
                    .iter()
                    .filter(|f| f.kind == FaultKind::TargetQueryError && f.fired_at.is_some())
                    .filter_map(|f| f.target.clone())
                    .collect();
                let mut statements: Vec<(String, String, i64, f64)> = tables
                    .iter()
                    .map(|(n, c)| {
                        (
                            n.clone(),
                            format!("SELECT * FROM {n} WHERE id = $1"),
                            c.rows / 10,
                            0.3,
                        )
                    })
                    .collect();
                if let Some((n, c)) = tables.first() {
                    let ms = 40.0 * c.rows as f64 / 1e6;
                    statements.push((
                        n.clone(),
                        format!("SELECT count(*) FROM {n} WHERE id > $1"),
                        1_000,
                        ms,
                    ));
                }
                // The heaviest by total time first, as pg_stat_statements is read.
                statements.sort_by(|a, b| (b.2 as f64 * b.3).total_cmp(&(a.2 as f64 * a.3)));
                let mut spent = 0.0;
                let checks = statements
                    .into_iter()
                    .take(opts.top)
                    .enumerate()
                    .map(|(i, (table, query, calls, ms))| {
                        let mut c = QueryCheck {
                            queryid: format!("{}", fnv(&[query.as_bytes()]) as i64),
                            database: "postgres".into(),
                            query,
                            calls,
                            stats_mean_ms: ms,
                            parameters: vec![format!(
                                "$1 = {} (a sampled {table}.id)",
                                1 + i as i64 * 7919
                            )],
                            ..QueryCheck::default()
                        };
                        if spent >= opts.budget_ms as f64 {
                            c.verdict = "skipped".into();
                            c.why = format!("the check's budget ({} ms) ran out", opts.budget_ms);
                            return c;
                        }
                        c.source_ms = Some(ms);
                        spent += ms * (opts.runs as f64 + 1.0);
                        if failing.contains(&table) {
                            c.verdict = "error-on-target".into();
                            c.why = "function public.legacy_score(bigint) does not exist".into();
                        } else {
                            c.target_ms = Some(ms);
                            c.ratio = Some(1.0);
                            c.verdict = "ok".into();
                            c.why = format!("{ms:.2} ms on the target, {ms:.2} ms on the source");
                            spent += ms * (opts.runs as f64 + 1.0);
                        }
                        c
                    })
                    .collect();
                QueryReport {
                    available: true,
                    source: source.into(),
                    target: target.into(),
                    max_ratio: opts.max_ratio,
                    elapsed_ms: spent.round() as i64,
                    statements: checks,
                    ..QueryReport::default()
                }
            }
        };
        cx.sleep(std::time::Duration::from_millis(
            report.elapsed_ms.max(0) as u64
        ))?;
        Ok(report.finish())
    }

    /// The two passes over the model (docs/validate.md, "Simulator"): the pre-pass reads every
    /// row (at `compare_rows_per_second`, or the budget if lower), with the replica replayed past
    /// the read; the source's writes during it are the changed rows (appends to the hot table),
    /// settled in rounds that each leave the rows written meanwhile. Change tracking is logical
    /// decoding when the source has logical replication on, else counters (the hot table then
    /// counts as changed and the fence pass rescans it).
    fn prepass(
        &self,
        cx: &Call<'_>,
        source: &str,
        target: &str,
        opts: &PrepassOptions,
    ) -> Result<PrepassReport, PrimitiveError> {
        const OP: &str = "prepass";
        let (before, logical, rate, base) = {
            let mut st = self.api(cx, A, OP)?;
            godwit_login(&mut st, A, OP, source)?;
            godwit_login(&mut st, A, OP, target)?;
            let a = copies(&st, OP, source)?;
            copies(&st, OP, target)?;
            unknown_tables(OP, source, &opts.tables, &a)?;
            let g = &st.sc.godwit;
            let budget = if opts.rows_per_second > 0 {
                opts.rows_per_second as f64
            } else {
                f64::INFINITY
            };
            (
                a.iter()
                    .map(|(n, c)| (n.clone(), c.rows))
                    .collect::<Vec<_>>(),
                st.logical_replication_on(source),
                g.compare_rows_per_second.min(budget),
                crate::sim::scenario::dur_ms(&g.compare_base),
            )
        };
        let wanted = |n: &str| opts.tables.is_empty() || opts.tables.iter().any(|t| t == n);
        let rows: i64 = before
            .iter()
            .filter(|(n, _)| wanted(n))
            .map(|(_, r)| *r)
            .sum();
        let mut spent = base + (rows as f64 / rate * 1000.0).round() as i64;
        cx.sleep(std::time::Duration::from_millis(spent.max(0) as u64))?;
        let mut read = rows;
        // Settle rounds: the rows written since the last read, read again on both sides.
        let mut rounds = 0;
        let mut from: Vec<i64> = before.iter().map(|(_, r)| *r).collect();
        let rows_now = |st: &SimState| -> Result<Vec<i64>, PrimitiveError> {
            Ok(copies(st, OP, source)?
                .iter()
                .map(|(_, c)| c.rows)
                .collect())
        };
        if logical {
            for _ in 0..opts.settle_rounds.max(0) {
                let now = rows_now(&*self.api(cx, A, OP)?)?;
                let changed: i64 = now.iter().zip(&from).map(|(n, f)| n - f).sum();
                if changed == 0 {
                    break;
                }
                rounds += 1;
                let cost = base + (changed as f64 / rate * 1000.0).round() as i64;
                cx.sleep(std::time::Duration::from_millis(cost.max(0) as u64))?;
                spent += cost;
                read += changed;
                from = now;
            }
        }
        let mut st = self.api(cx, A, OP)?;
        // The slot holds the source's WAL from here to the fence pass, as on RDS (it counts in
        // OldestReplicationSlotLag): made at the position the pass consumed to.
        if logical {
            st.remove_slot(source, SIM_SLOT);
            st.add_logical_slot(source, SIM_SLOT);
            if let Some(slot) = st.slots.iter_mut().find(|s| s.name == SIM_SLOT) {
                slot.plugin = "test_decoding".into();
            }
        }
        let (a, b) = (copies(&st, OP, source)?, copies(&st, OP, target)?);
        let seed = st.sc.seed;
        let copts = CompareOptions {
            leaf_rows: opts.leaf_rows,
            max_keys: opts.max_keys,
            ..CompareOptions::default()
        };
        let mut tables = Vec::new();
        for (((n, x), (_, y)), ((_, first), last)) in a.iter().zip(&b).zip(before.iter().zip(&from))
        {
            if !wanted(n) {
                continue;
            }
            // The replica is read once it replayed past the source's read: its rows as the
            // source had them then, with whatever diverged.
            let at_read = Copy {
                rows: *first,
                diverged: BTreeSet::new(),
            };
            let replica = Copy {
                rows: *first,
                diverged: y.diverged.clone(),
            };
            let c = compare_table(n, seed, &at_read, &replica, &copts);
            let pending: Vec<Vec<String>> =
                (last + 1..=x.rows).map(|k| vec![k.to_string()]).collect();
            let moved = x.rows != *first;
            let rescan = if !logical && moved {
                Some(format!(
                    "changed while the pre-pass read it (pg_stat_user_tables inserts {first} → {})",
                    x.rows
                ))
            } else if pending.len() > opts.max_pending {
                Some(format!(
                    "{} keys changed during the pre-pass (more than max_pending {})",
                    pending.len(),
                    opts.max_pending
                ))
            } else {
                None
            };
            tables.push(PrepassTable {
                table: n.clone(),
                method: c.method,
                hash: "value".into(),
                key: c.key,
                equal: c.equal,
                rows: *first,
                segments: c.segments,
                mismatched_segments: c.mismatched_segments,
                explained_segments: 0,
                missing_on_target: c.missing_on_target,
                extra_on_target: c.extra_on_target,
                different: c.different,
                truncated: c.truncated,
                pending: if rescan.is_some() || !logical {
                    Vec::new()
                } else {
                    pending
                },
                rescan,
                counters: vec![x.rows, 0, 0],
                shape: "sim".into(),
            });
        }
        tables.sort_by(|a, b| a.table.cmp(&b.table));
        let version = st.content_version(source).map_or(0, |(a, l)| a + l);
        Ok(PrepassReport {
            equal: true,
            source: source.into(),
            target: target.into(),
            tracking: vec![Tracking {
                database: "postgres".into(),
                how: if logical { "logical-decoding" } else { "counters" }.into(),
                slot: logical.then(|| SIM_SLOT.to_string()),
                confirmed_lsn: logical.then(|| format_lsn(version)),
                why: if logical {
                    "rds.logical_replication=1: a test_decoding slot decodes the key of every changed row".into()
                } else {
                    "rds.logical_replication=0 (wal_level=replica): pg_stat_user_tables tells which tables changed".into()
                },
                epoch: Some("track_counts=on".into()),
            }],
            tables,
            rows_read: read,
            elapsed_ms: spent,
            rows_per_second: read as f64 / (spent.max(1) as f64 / 1000.0),
            budget_rows_per_second: opts.rows_per_second,
            settle_rounds: rounds,
            pending_keys: 0,
            only: opts.tables.clone(),
            mode: opts.mode.clone(),
            summary: String::new(),
        }
        .finish())
    }

    /// The fence pass over the model: the keys the pre-pass left and the rows written since
    /// (logical decoding), or the tables whose row count moved (counters), compared; the
    /// rest proven by the pre-pass. A divergence in a row that did not change since is not
    /// seen — as in the live worlds (docs/validate.md).
    fn fence_pass(
        &self,
        cx: &Call<'_>,
        source: &str,
        target: &str,
        pre: &PrepassReport,
    ) -> Result<Report, PrimitiveError> {
        const OP: &str = "fence_pass";
        let mut st = self.api(cx, A, OP)?;
        godwit_login(&mut st, A, OP, source)?;
        godwit_login(&mut st, A, OP, target)?;
        let a = copies(&st, OP, source)?;
        let b = copies(&st, OP, target)?;
        let seed = st.sc.seed;
        let logical = pre.tracking.iter().any(|t| t.how == "logical-decoding");
        // Without its slot the pass cannot know what changed: everything is compared whole.
        let lost = pre
            .tracking
            .iter()
            .filter_map(|t| t.slot.as_deref())
            .find(|s| !st.has_slot(source, s))
            .map(|s| format!("the pre-pass's slot {s} is gone"));
        let mut stats = FencePassStats {
            tracking: pre
                .tracking
                .iter()
                .map(|t| format!("{}: {}", t.database, t.how))
                .collect(),
            ..FencePassStats::default()
        };
        let mut tables = Vec::new();
        let mut compared = 0i64;
        for ((n, x), (_, y)) in a.iter().zip(&b) {
            if !pre.only.is_empty() && !pre.only.contains(n) {
                continue;
            }
            let p = pre.tables.iter().find(|t| &t.table == n);
            let why = match p {
                _ if lost.is_some() => lost.clone(),
                None => Some("not in the pre-pass (created since?)".to_string()),
                Some(p) if !p.equal => Some("differed at the pre-pass".into()),
                Some(p) if p.rescan.is_some() => p.rescan.clone(),
                Some(p) if !logical && p.counters.first() != Some(&x.rows) => Some(format!(
                    "modified since the pre-pass (pg_stat_user_tables inserts {:?} → {})",
                    p.counters.first(),
                    x.rows
                )),
                _ => None,
            };
            if let Some(why) = why {
                let mut r = compare_table(n, seed, x, y, &CompareOptions::default());
                r.proven = Some(format!("rescanned: {why}"));
                stats.rescanned_tables.push(n.clone());
                stats.rescanned_rows += x.rows.max(y.rows);
                compared += x.rows.max(y.rows);
                tables.push(r);
                continue;
            }
            let p = p.expect("checked above");
            let since = p.counters.first().copied().unwrap_or(x.rows);
            let mut keys: BTreeSet<i64> = p
                .pending
                .iter()
                .filter_map(|k| k.first().and_then(|v| v.parse().ok()))
                .collect();
            keys.extend(since + 1..=x.rows.max(y.rows));
            let mut r = TableReport::new(
                n,
                if keys.is_empty() {
                    "unchanged"
                } else {
                    "changed-keys"
                },
                vec!["id".into()],
            );
            r.source_rows = x.rows;
            r.target_rows = y.rows;
            if keys.is_empty() {
                stats.unchanged_tables += 1;
                r.proven = Some(format!(
                    "unchanged since its equal pre-pass ({})",
                    if logical {
                        "logical decoding: no change"
                    } else {
                        "pg_stat_user_tables counters did not move"
                    }
                ));
            } else {
                stats.changed_keys += keys.len() as i64;
                compared += keys.len() as i64;
                for k in &keys {
                    let key = vec![k.to_string()];
                    let (on_a, on_b) = (*k <= x.rows, *k <= y.rows);
                    let list = match (on_a, on_b) {
                        (true, false) => &mut r.missing_on_target,
                        (false, true) => &mut r.extra_on_target,
                        (true, true) if y.diverged.contains(k) != x.diverged.contains(k) => {
                            &mut r.different
                        }
                        _ => continue,
                    };
                    r.truncated |= push_capped(list, key, 100);
                    r.equal = false;
                }
                r.segments = keys.len() as i64;
                r.proven = Some(format!(
                    "{} keys changed since its equal pre-pass (or left by it) compared",
                    keys.len()
                ));
            }
            tables.push(r);
        }
        tables.sort_by(|a, b| a.table.cmp(&b.table));
        let positions = positions(&st, target);
        let seqs = sequences(&st, source, target);
        for t in &pre.tracking {
            if let Some(slot) = &t.slot {
                st.remove_slot(source, slot);
            }
        }
        let g = &st.sc.godwit;
        let cost = crate::sim::scenario::dur_ms(&g.compare_base)
            + (compared as f64 / g.compare_rows_per_second * 1000.0).round() as i64;
        drop(st);
        cx.sleep(std::time::Duration::from_millis(cost.max(0) as u64))?;
        stats.elapsed_ms = cost;
        Ok(Report {
            positions,
            tables,
            sequences: seqs,
            fence_pass: Some(stats),
            ..Report::new(source, target)
        }
        .finish())
    }

    fn end_prepass(
        &self,
        cx: &Call<'_>,
        source: &str,
        pre: &PrepassReport,
    ) -> Result<bool, PrimitiveError> {
        let mut st = self.api(cx, A, "end_prepass")?;
        let mut any = false;
        for t in &pre.tracking {
            if let Some(slot) = &t.slot {
                any |= st.remove_slot(source, slot);
            }
        }
        Ok(any)
    }

    fn end_tracking(&self, cx: &Call<'_>, source: &str) -> Result<Vec<String>, PrimitiveError> {
        let mut st = self.api(cx, A, "end_tracking")?;
        let names: Vec<String> = st
            .slots
            .iter()
            .filter(|s| s.name.starts_with(TRACKING_SLOT_PREFIX))
            .map(|s| s.name.clone())
            .collect();
        for n in &names {
            st.remove_slot(source, n);
        }
        Ok(names)
    }
}

/// The simulated source's tracking slot (its application database's oid is 5).
const SIM_SLOT: &str = "godwit_validate_5";
