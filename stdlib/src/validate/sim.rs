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
            (
                t.name.clone(),
                Copy {
                    rows: (t.rows + written) as i64,
                    diverged,
                },
            )
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
        // Sequences advance with the writes a side holds (one value per 4 KiB written).
        let written = |db: &str| {
            st.content_version(db).map_or(0, |(applied, local)| {
                (applied + local) / st.sc.workload.bytes_per_row
            }) as i64
        };
        let (ws, wt) = (written(source), written(target));
        let sequences = st
            .sc
            .source
            .sequences
            .iter()
            .map(|s| SequenceCheck {
                name: s.name.clone(),
                source: Some(s.last_value + ws),
                target: Some(s.last_value + wt),
                ok: wt >= ws,
            })
            .collect();
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
        let mut st = self.api(cx, A, "sample")?;
        godwit_login(&mut st, A, "sample", source)?;
        godwit_login(&mut st, A, "sample", target)?;
        let a = copies(&st, "sample", source)?;
        let b = copies(&st, "sample", target)?;
        unknown_tables("sample", source, &opts.tables, &a)?;
        let seed = st.sc.seed;
        let positions = positions(&st, target);
        let lagging = positions.lag_bytes.unwrap_or(0) > 0;
        let mut tables: Vec<SampleTable> = a
            .iter()
            .zip(b.iter())
            .filter(|((n, _), _)| opts.tables.is_empty() || opts.tables.contains(n))
            .map(|((n, x), (_, y))| {
                // Bernoulli sampling, capped at max_rows: key k is in the sample when its hash
                // falls under the effective fraction. Only the keys that can differ are looked
                // at (the model knows them); the count is the expected sample size.
                let f = fraction.min(opts.max_rows as f64 / x.rows.max(1) as f64);
                let picked = |k: i64| {
                    let h = fnv(&[n.as_bytes(), &seed.to_le_bytes(), &k.to_le_bytes(), b"s"]);
                    (h as f64 / u64::MAX as f64) < f
                };
                let mut t = SampleTable {
                    table: n.clone(),
                    method: "sampled".into(),
                    sampled: (x.rows as f64 * f).round() as i64,
                    ..SampleTable::default()
                };
                let missing: Vec<String> = (y.rows + 1..=x.rows)
                    .filter(|k| picked(*k))
                    .map(|k| k.to_string())
                    .collect();
                // Rows a lagging replica has not replayed are unsettled, as the live audit
                // has them once its wait for the replay runs out; with the replica caught up
                // a missing row is proven missing.
                if lagging {
                    t.unsettled += missing.len() as i64;
                } else {
                    t.truncated |= push_capped(&mut t.missing_on_target, missing, opts.max_keys);
                }
                let different: Vec<String> = y
                    .diverged
                    .iter()
                    .filter(|k| **k <= x.rows && picked(**k))
                    .map(|k| k.to_string())
                    .collect();
                t.truncated |= push_capped(&mut t.different, different, opts.max_keys);
                t
            })
            .collect();
        tables.sort_by(|a, b| a.table.cmp(&b.table));
        Ok(SampleReport {
            positions,
            tables,
            ..SampleReport::new(source, target, fraction)
        }
        .finish())
    }
}
