//! Rhai module `lag`: argument conversion with errors that name the bad element, and the doc
//! comments that are the reference (exported through Rhai's `metadata` feature; every ```rhai
//! example runs, and must assert its result, in `tests/tests/docs.rs`).
//!
//! These are pure functions over arrays, so scripts may call them anywhere, inside or outside a
//! step; none is `volatile`.

use godwit_engine::PrimitiveError;
use rhai::plugin::*;
use rhai::{Array, Dynamic, EvalAltResult, FLOAT, INT, Map, NativeCallContext};

use super::{
    Assessment, MAX_DURATION_SECONDS, MAX_EPOCH_SECONDS, MIN_EPOCH_SECONDS, Options, Point, Since,
    Slot, SlotType,
};

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// Install the module as static module `lag` (scripts call `lag::classify(...)`).
pub fn register(engine: &mut Engine) {
    engine.register_static_module("lag", exported_module!(lag_module).into());
}

const DATAPOINT_SHAPE: &str = "each datapoint is #{ t: <epoch seconds>, v: <number> }";

/// Rhai does not give errors of module functions a position; put the call's on them, so a
/// report quotes the runbook line.
fn at<T>(ctx: &NativeCallContext, r: RhaiResult<T>) -> RhaiResult<T> {
    r.map_err(|mut e| {
        if e.position().is_none() {
            e.set_position(ctx.call_position());
        }
        e
    })
}

fn invalid(op: &str, message: String, hint: impl Into<String>) -> Box<EvalAltResult> {
    PrimitiveError::invalid("lag", op, message, hint).into_rhai()
}

/// A value's kind the way a script author would say it.
fn kind(d: &Dynamic) -> String {
    if d.is_int() {
        format!("an integer ({d})")
    } else if d.is_float() {
        format!("a float ({d})")
    } else if d.is_string() {
        format!("a string ({d:?})")
    } else if d.is_bool() {
        format!("a bool ({d})")
    } else if d.is_unit() {
        "()".to_string()
    } else if d.is_map() {
        "a map".to_string()
    } else if d.is_array() {
        "an array".to_string()
    } else {
        format!("a {}", d.type_name())
    }
}

/// Epoch seconds within [`MIN_EPOCH_SECONDS`]..=[`MAX_EPOCH_SECONDS`], or `Invalid` naming `what`.
fn epoch(op: &str, what: &str, t: INT) -> RhaiResult<INT> {
    epoch_of(op, || what.to_string(), t)
}

/// [`epoch`] naming the value only when it is refused (a datapoint's path is built per
/// datapoint otherwise, thousands per gate poll).
fn epoch_of(op: &str, what: impl FnOnce() -> String, t: INT) -> RhaiResult<INT> {
    if (MIN_EPOCH_SECONDS..=MAX_EPOCH_SECONDS).contains(&t) {
        return Ok(t);
    }
    let what = what();
    Err(invalid(
        op,
        format!(
            "{what} is {t}; expected epoch seconds from {MIN_EPOCH_SECONDS} (year 1) to \
             {MAX_EPOCH_SECONDS} (year 9999)"
        ),
        "timestamps are whole epoch seconds, e.g. now() or a datapoint's t; a value in \
         milliseconds is 1000 times too large",
    ))
}

fn number(d: &Dynamic) -> Option<f64> {
    if let Ok(i) = d.as_int() {
        Some(i as f64)
    } else {
        d.as_float().ok()
    }
}

fn series(op: &str, arg: &str, arr: &Array) -> RhaiResult<Vec<Point>> {
    arr.iter()
        .enumerate()
        .map(|(i, item)| {
            let Some(map) = item.read_lock::<Map>() else {
                return Err(invalid(
                    op,
                    format!("{arg}[{i}] is {}; {DATAPOINT_SHAPE}", kind(item)),
                    "build datapoints as #{ t: t, v: v }",
                ));
            };
            let field = |name: &str| {
                map.get(name).cloned().ok_or_else(|| {
                    invalid(
                        op,
                        format!("{arg}[{i}].{name} is missing; {DATAPOINT_SHAPE}"),
                        format!("add `{name}` to every datapoint"),
                    )
                })
            };
            let t = field("t")?;
            let t = t.as_int().map_err(|_| {
                invalid(
                    op,
                    format!("{arg}[{i}].t is {}; {DATAPOINT_SHAPE}", kind(&t)),
                    "t is the start of the datapoint's period in whole epoch seconds: use \
                     to_int() on a float",
                )
            })?;
            let t = epoch_of(op, || format!("{arg}[{i}].t"), t)?;
            let v = field("v")?;
            let value = number(&v).filter(|x| x.is_finite()).ok_or_else(|| {
                invalid(
                    op,
                    format!("{arg}[{i}].v is {}; {DATAPOINT_SHAPE}", kind(&v)),
                    "v is the metric value (bytes or seconds) as an integer or float; leave a \
                     missing datapoint out instead of filling it",
                )
            })?;
            Ok(Point { t, v: value })
        })
        .collect()
}

fn slots(op: &str, arr: &Array) -> RhaiResult<Vec<Slot>> {
    const SHAPE: &str = "each slot is #{ slot_name, slot_type: \"logical\"|\"physical\", active, \
                         lag_bytes, inactive_since }";
    arr.iter()
        .enumerate()
        .map(|(i, item)| {
            let Some(map) = item.read_lock::<Map>() else {
                return Err(invalid(
                    op,
                    format!("slots[{i}] is {}; {SHAPE}", kind(item)),
                    "pass the slot list as an array of maps",
                ));
            };
            let bad = |name: &str, got: &Dynamic, want: &str| {
                invalid(
                    op,
                    format!("slots[{i}].{name} is {}; {want}", kind(got)),
                    SHAPE.to_string(),
                )
            };
            let get = |name: &str| map.get(name).cloned().unwrap_or(Dynamic::UNIT);
            let name = get("slot_name");
            let slot_name = name
                .clone()
                .into_string()
                .map_err(|_| bad("slot_name", &name, "expected a string"))?;
            let ty = get("slot_type");
            let slot_type = match ty.clone().into_string().as_deref() {
                Ok("logical") => SlotType::Logical,
                Ok("physical") => SlotType::Physical,
                _ => {
                    return Err(bad(
                        "slot_type",
                        &ty,
                        "expected \"logical\" or \"physical\"",
                    ));
                }
            };
            let act = get("active");
            let active = act
                .as_bool()
                .map_err(|_| bad("active", &act, "expected true or false"))?;
            let lag = get("lag_bytes");
            let lag_bytes = number(&lag)
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| bad("lag_bytes", &lag, "expected a number of bytes >= 0"))?;
            let since = get("inactive_since");
            let inactive_since = if since.is_unit() {
                None
            } else if let Ok(t) = since.as_int() {
                Some(Since::Epoch(t))
            } else if let Ok(s) = since.clone().into_string() {
                Some(Since::Text(s))
            } else {
                return Err(bad(
                    "inactive_since",
                    &since,
                    "expected epoch seconds, a timestamp string, or ()",
                ));
            };
            Ok(Slot {
                slot_name,
                slot_type,
                active,
                lag_bytes,
                inactive_since,
            })
        })
        .collect()
}

/// Read an options map against the keys `op` accepts; defaults come from [`Options::default`].
fn options(op: &str, map: &Map, allowed: &[&str]) -> RhaiResult<Options> {
    let mut o = Options::default();
    for (key, value) in map {
        let key = key.as_str();
        if !allowed.contains(&key) {
            return Err(invalid(
                op,
                format!("options.{key} is not an option of lag::{op}"),
                format!("allowed keys: {}", allowed.join(", ")),
            ));
        }
        if value.is_unit() {
            continue; // `()` asks for the default
        }
        let positive = |min_exclusive: f64| {
            number(value)
                .filter(|x| x.is_finite() && *x > min_exclusive)
                .ok_or_else(|| {
                    invalid(
                        op,
                        format!(
                            "options.{key} is {}; expected a number > {min_exclusive}",
                            kind(value)
                        ),
                        "see docs/lag.md for the meaning and default of each option",
                    )
                })
        };
        // Seconds: at most MAX_DURATION_SECONDS, so adding one to a timestamp cannot overflow.
        let whole = |min: i64| {
            value
                .as_int()
                .ok()
                .filter(|x| (min..=MAX_DURATION_SECONDS).contains(x))
                .ok_or_else(|| {
                    invalid(
                        op,
                        format!(
                            "options.{key} is {}; expected an integer from {min} to \
                             {MAX_DURATION_SECONDS}",
                            kind(value)
                        ),
                        "see docs/lag.md for the meaning and default of each option",
                    )
                })
        };
        match key {
            "segment_bytes" => o.segment_bytes = positive(0.0)?,
            "idle_ceiling_segments" => o.idle_ceiling_segments = positive(0.0)?,
            "stale_slot_segments" => o.stale_slot_segments = positive(0.0)?,
            "replica_lag_tolerance_seconds" => o.replica_lag_tolerance_seconds = positive(-1.0)?,
            "sustain_seconds" => o.sustain_seconds = whole(0)?,
            "period_seconds" => o.period_seconds = whole(1)?,
            "stale_after_seconds" => o.stale_after_seconds = whole(0)?,
            "clock_skew_seconds" => o.clock_skew_seconds = whole(0)?,
            "now" => {
                let t = value.as_int().map_err(|_| {
                    invalid(
                        op,
                        format!("options.now is {}; expected epoch seconds", kind(value)),
                        "see docs/lag.md for the meaning and default of each option",
                    )
                })?;
                o.now = Some(epoch(op, "options.now", t)?);
            }
            "window_seconds" => o.window_seconds = Some(whole(1)?),
            "min_datapoints" => o.min_datapoints = whole(1)? as usize,
            "max_replica_lag_p99_seconds" => o.max_replica_lag_p99_seconds = positive(0.0)?,
            "peak_bytes_per_second" => o.peak_bytes_per_second = Some(positive(0.0)?),
            "peak_coverage" => {
                o.peak_coverage = positive(0.0)?.min(1.0);
            }
            "min_headroom_seconds" => o.min_headroom_seconds = positive(-1.0)?,
            "connection_allowance" => o.connection_allowance = positive(-1.0)?,
            other => unreachable!("option {other} is allowed but not read"),
        }
    }
    Ok(o)
}

fn to_map(op: &str, a: &Assessment) -> RhaiResult<Map> {
    rhai::serde::to_dynamic(a)?
        .try_cast::<Map>()
        .ok_or_else(|| {
            PrimitiveError::new(
                "lag",
                op,
                godwit_engine::ErrorKind::Internal,
                "assessment did not serialise to a map",
                "report this as a godwit bug",
            )
            .into_rhai()
        })
}

#[export_module]
mod lag_module {
    use super::*;

    /// The credential-less fence proof: passes only when at least one `DatabaseConnections`
    /// datapoint **stamped at or after `fence_time + clock_skew_seconds`** exists and every
    /// such datapoint is at most `connection_allowance` (0). AWS leaves Amazon RDS's own
    /// connections out of the metric, so after the quarantine and the reboot a 0 means no
    /// session reached the source (docs/aws.md). Missing datapoints never count as 0; a series
    /// silent for `stale_after_seconds` is `no-data`.
    ///
    /// # Parameters
    /// * `connections_series` — `DatabaseConnections` datapoints `#{ t, v }` (`Maximum`).
    /// * `fence_time` — epoch seconds at which the reboot completed.
    /// * `options` — map; keys (defaults): `clock_skew_seconds` (5), `connection_allowance`
    ///   (0), `stale_after_seconds` (300), `now` (newest datapoint), `period_seconds` (60), and
    ///   the other shared keys of `caught_up_after_fence`.
    ///
    /// # Returns
    /// `#{ verdict, pass, why, evidence }`; verdict is `sessions-ended` (the only pass),
    /// `sessions-left`, `waiting` or `no-data`. Evidence includes `counts_from_t`,
    /// `datapoints_after_fence`, `connections_max_after_fence`, `connections_last_t`.
    ///
    /// # Errors
    /// `Invalid` when a datapoint is not `#{ t: INT, v: number }` or an option is not accepted.
    ///
    /// # Example
    /// ```rhai
    /// let reboot = 1700000000;
    /// let conns = [#{ t: reboot - 60, v: 42 }, #{ t: reboot, v: 3 }, #{ t: reboot + 60, v: 0 }];
    /// // The period that starts at the reboot lies inside the 5 s clock-skew allowance.
    /// let r = lag::sessions_ended_after_fence(conns, reboot, #{});
    /// if !r.pass || r.evidence.datapoints_after_fence != 1 { throw r.why; }
    /// let early = lag::sessions_ended_after_fence(conns.extract(0, 2), reboot, #{});
    /// if early.pass || early.verdict != "waiting" { throw early.why; }
    /// ```
    #[rhai_fn(return_raw)]
    pub fn sessions_ended_after_fence(
        ctx: NativeCallContext,
        connections_series: Array,
        fence_time: INT,
        options: Map,
    ) -> RhaiResult<Map> {
        at(
            &ctx,
            (|| {
                const OP: &str = "sessions_ended_after_fence";
                let fence_time = epoch(OP, "fence_time", fence_time)?;
                let conns = series(OP, "connections_series", &connections_series)?;
                let o = super::options(OP, &options, &super::super::keys::SESSIONS)?;
                to_map(
                    OP,
                    &super::super::sessions_ended_after_fence(&conns, fence_time, &o),
                )
            })(),
        )
    }

    /// The sync gate after the fence (the 0↔64 MB rule): passes only on an
    /// `OldestReplicationSlotLag` datapoint **equal to 0 stamped at or after
    /// `fence_time + clock_skew_seconds`**, with the newest replica lag since then ≈ 0.
    ///
    /// A datapoint's `t` is the start of its period, so a 60 s datapoint stamped before the
    /// fence also covers time before it and never counts. Missing datapoints never count as 0;
    /// a series silent for `stale_after_seconds` is `no-data`. Slot lag far above a segment for
    /// `sustain_seconds` after the fence while replica lag is ≈ 0 is `stale-slot`: waiting will
    /// not help.
    ///
    /// # Parameters
    /// * `slot_lag_series` — `OldestReplicationSlotLag` datapoints `#{ t, v }` (bytes).
    /// * `replica_lag_series` — `RDSToAuroraPostgreSQLReplicaLag` datapoints (seconds).
    /// * `fence_time` — epoch seconds at which the fence (quarantine + reboot) completed.
    /// * `options` — map; keys (defaults): `clock_skew_seconds` (5),
    ///   `replica_lag_tolerance_seconds` (1.0), `stale_after_seconds` (300), `now` (newest
    ///   datapoint), `segment_bytes` (64 MiB), `idle_ceiling_segments` (1.25),
    ///   `stale_slot_segments` (4), `sustain_seconds` (600), `period_seconds` (60),
    ///   `window_seconds`, `min_datapoints` (5).
    ///
    /// # Returns
    /// `#{ verdict, pass, why, evidence }`; verdict is `caught-up` (the only pass), `waiting`,
    /// `stale-slot` or `no-data`. Evidence includes `first_zero_after_fence_t`,
    /// `counts_from_t`, `replica_lag_seconds`, `ignored_zero_t`.
    ///
    /// # Errors
    /// `Invalid` when a datapoint is not `#{ t: INT, v: number }` (the message names the
    /// element) or an option key or value is not accepted.
    ///
    /// # Example
    /// ```rhai
    /// let fence = 1700000000;
    /// let slot = [];
    /// let replica = [];
    /// // Idle sawtooth up to the fence, then a segment, then the first 0.
    /// for i in -10..3 {
    ///     let t = fence - 10 + i * 60;
    ///     slot.push(#{ t: t, v: if i == 1 { 67108864 } else { 0 } });
    ///     replica.push(#{ t: t, v: 0 });
    /// }
    /// let r = lag::caught_up_after_fence(slot, replica, fence, #{});
    /// if !r.pass { throw r.why; }
    /// if r.evidence.first_zero_after_fence_t != fence + 110 { throw r.why; }
    /// // The 0 stamped 10 s before the fence alone would not have passed:
    /// let early = lag::caught_up_after_fence(slot.extract(0, 10), replica, fence, #{});
    /// if early.pass { throw "a pre-fence 0 passed"; }
    /// ```
    #[rhai_fn(return_raw)]
    pub fn caught_up_after_fence(
        ctx: NativeCallContext,
        slot_lag_series: Array,
        replica_lag_series: Array,
        fence_time: INT,
        options: Map,
    ) -> RhaiResult<Map> {
        at(
            &ctx,
            (|| {
                const OP: &str = "caught_up_after_fence";
                let fence_time = epoch(OP, "fence_time", fence_time)?;
                let slot = series(OP, "slot_lag_series", &slot_lag_series)?;
                let replica = series(OP, "replica_lag_series", &replica_lag_series)?;
                let o = super::options(OP, &options, &super::super::keys::FENCE)?;
                to_map(
                    OP,
                    &super::super::caught_up_after_fence(&slot, &replica, fence_time, None, &o),
                )
            })(),
        )
    }

    /// [`caught_up_after_fence`] with the source's replication slots, so a `stale-slot`
    /// verdict names the slot holding WAL back and what to do about it.
    ///
    /// # Parameters
    /// * `slot_lag_series`, `replica_lag_series`, `fence_time`, `options` — as for
    ///   `caught_up_after_fence`.
    /// * `slots` — array of `#{ slot_name, slot_type: "logical"|"physical", active,
    ///   lag_bytes, inactive_since }`.
    ///
    /// # Returns
    /// As `caught_up_after_fence`; for `stale-slot`, evidence adds `stale_slot`.
    ///
    /// # Errors
    /// `Invalid` for a malformed datapoint or slot, or an unknown option key.
    ///
    /// # Example
    /// ```rhai
    /// let fence = 1700000000;
    /// let slot = []; let replica = [];
    /// for i in -5..16 {
    ///     let t = fence - 10 + i * 60;
    ///     slot.push(#{ t: t, v: 3328599654 });   // 3.1 GiB, flat since before the fence
    ///     replica.push(#{ t: t, v: 0 });
    /// }
    /// let slots = [#{ slot_name: "debezium_orders", slot_type: "logical", active: false,
    ///                 lag_bytes: 3328599654, inactive_since: fence - 3600 }];
    /// let r = lag::caught_up_after_fence(slot, replica, fence, slots, #{});
    /// if r.verdict != "stale-slot" || r.evidence.stale_slot != "debezium_orders" { throw r.why; }
    /// ```
    #[rhai_fn(name = "caught_up_after_fence", return_raw)]
    pub fn caught_up_after_fence_with_slots(
        ctx: NativeCallContext,
        slot_lag_series: Array,
        replica_lag_series: Array,
        fence_time: INT,
        slots: Array,
        options: Map,
    ) -> RhaiResult<Map> {
        at(
            &ctx,
            (|| {
                const OP: &str = "caught_up_after_fence";
                let fence_time = epoch(OP, "fence_time", fence_time)?;
                let slot = series(OP, "slot_lag_series", &slot_lag_series)?;
                let replica = series(OP, "replica_lag_series", &replica_lag_series)?;
                let list = super::slots(OP, &slots)?;
                let o = super::options(OP, &options, &super::super::keys::FENCE)?;
                to_map(
                    OP,
                    &super::super::caught_up_after_fence(
                        &slot,
                        &replica,
                        fence_time,
                        Some(&list),
                        &o,
                    ),
                )
            })(),
        )
    }

    /// Classify a window of slot lag and replica lag as `caught-up`, `idle-oscillation`,
    /// `lagging`, `growing`, `stale-slot` or `no-data`, with the numbers that led there.
    ///
    /// On an idle source slot lag saw-tooths between 0 and one WAL segment (64 MiB on RDS,
    /// 16 MiB on stock PostgreSQL): that is `idle-oscillation`, not lag. Slot lag far above a
    /// segment (or growing past one) for `sustain_seconds` while replica lag is ≈ 0 is
    /// `stale-slot`. The trend is a Theil–Sen slope, so one spike does not decide.
    ///
    /// # Parameters
    /// * `slot_lag_series` — `OldestReplicationSlotLag` datapoints `#{ t, v }` (bytes).
    /// * `replica_lag_series` — `RDSToAuroraPostgreSQLReplicaLag` datapoints (seconds).
    /// * `options` — map; keys (defaults): `segment_bytes` (67108864),
    ///   `idle_ceiling_segments` (1.25), `stale_slot_segments` (4),
    ///   `replica_lag_tolerance_seconds` (1.0), `sustain_seconds` (600), `period_seconds` (60),
    ///   `stale_after_seconds` (300), `now` (newest datapoint), `window_seconds` (whole
    ///   series), `min_datapoints` (5).
    ///
    /// # Returns
    /// `#{ verdict, pass, why, evidence }`; `pass` is true for `caught-up` and
    /// `idle-oscillation`. Evidence: `slot_last_bytes`, `slot_max_bytes`,
    /// `slot_trend_bytes_per_min`, `slot_zero_datapoints`, `slot_gaps`,
    /// `replica_last_seconds`, ...
    ///
    /// # Errors
    /// `Invalid` for a malformed datapoint or an unknown option key.
    ///
    /// # Example
    /// ```rhai
    /// let slot = [];
    /// let replica = [];
    /// for i in 0..30 {
    ///     let t = 1700000000 + i * 60;
    ///     // A 16 MiB tooth every five minutes: stock PostgreSQL, idle.
    ///     slot.push(#{ t: t, v: if i % 5 == 4 { 16777216 } else { 0 } });
    ///     replica.push(#{ t: t, v: 0.0 });
    /// }
    /// let r = lag::classify(slot, replica, #{ segment_bytes: 16777216 });
    /// if r.verdict != "idle-oscillation" { throw r.why; }
    /// ```
    #[rhai_fn(return_raw)]
    pub fn classify(
        ctx: NativeCallContext,
        slot_lag_series: Array,
        replica_lag_series: Array,
        options: Map,
    ) -> RhaiResult<Map> {
        at(
            &ctx,
            (|| {
                const OP: &str = "classify";
                let slot = series(OP, "slot_lag_series", &slot_lag_series)?;
                let replica = series(OP, "replica_lag_series", &replica_lag_series)?;
                let o = super::options(OP, &options, &super::super::keys::CLASSIFY)?;
                to_map(OP, &super::super::classify(&slot, &replica, None, &o))
            })(),
        )
    }

    /// [`classify`] with the source's replication slots, so a `stale-slot` verdict names the
    /// slot holding WAL back and says what to do (drop it, or resume its consumer).
    ///
    /// # Parameters
    /// * `slot_lag_series`, `replica_lag_series`, `options` — as for `classify`.
    /// * `slots` — array of `#{ slot_name, slot_type: "logical"|"physical", active,
    ///   lag_bytes, inactive_since }` (`inactive_since`: epoch seconds, a string, or `()`;
    ///   other keys are ignored).
    ///
    /// # Returns
    /// As `classify`; for `stale-slot`, evidence adds `stale_slot` and `stale_slot_lag_bytes`.
    ///
    /// # Errors
    /// `Invalid` for a malformed datapoint or slot (the message names the element and field),
    /// or an unknown option key.
    ///
    /// # Example
    /// ```rhai
    /// let slot = [];
    /// let replica = [];
    /// for i in 0..41 {
    ///     let t = 1700000000 + i * 60;
    ///     slot.push(#{ t: t, v: 2791728742 + (i / 5) * 67108864 });
    ///     replica.push(#{ t: t, v: 0 });
    /// }
    /// let slots = [
    ///     #{ slot_name: "aurora", slot_type: "physical", active: true, lag_bytes: 0 },
    ///     #{ slot_name: "debezium_orders", slot_type: "logical", active: false,
    ///        lag_bytes: 3328599654, inactive_since: 1699999440 },
    /// ];
    /// let r = lag::classify(slot, replica, slots, #{});
    /// if r.verdict != "stale-slot" || r.evidence.stale_slot != "debezium_orders" { throw r.why; }
    /// print(r.why);
    /// ```
    #[rhai_fn(name = "classify", return_raw)]
    pub fn classify_with_slots(
        ctx: NativeCallContext,
        slot_lag_series: Array,
        replica_lag_series: Array,
        slots: Array,
        options: Map,
    ) -> RhaiResult<Map> {
        at(
            &ctx,
            (|| {
                const OP: &str = "classify";
                let slot = series(OP, "slot_lag_series", &slot_lag_series)?;
                let replica = series(OP, "replica_lag_series", &replica_lag_series)?;
                let list = super::slots(OP, &slots)?;
                let o = super::options(OP, &options, &super::super::keys::CLASSIFY)?;
                to_map(
                    OP,
                    &super::super::classify(&slot, &replica, Some(&list), &o),
                )
            })(),
        )
    }

    /// Preflight slot inventory: flags every inactive slot and every slot lagging more than
    /// `stale_slot_segments` segments, each with what to do.
    ///
    /// # Parameters
    /// * `slots` — array of `#{ slot_name, slot_type, active, lag_bytes, inactive_since }`.
    /// * `options` — map; keys (defaults): `segment_bytes` (64 MiB), `stale_slot_segments` (4),
    ///   `idle_ceiling_segments` (1.25).
    ///
    /// # Returns
    /// `#{ verdict: "stale-slot"|"no-stale-slot", pass, why, evidence }`; evidence has
    /// `slots`, `stale`, `stale_slot_names`, `max_lag_bytes`, `max_lag_slot`.
    ///
    /// # Errors
    /// `Invalid` for a malformed slot map or an unknown option key.
    ///
    /// # Example
    /// ```rhai
    /// let slots = [
    ///     #{ slot_name: "aurora", slot_type: "physical", active: true, lag_bytes: 4096 },
    ///     #{ slot_name: "cdc_old", slot_type: "logical", active: false, lag_bytes: 1024,
    ///        inactive_since: "2024-05-01 12:04:00+00" },
    /// ];
    /// let r = lag::stale_slots(slots, #{});
    /// if r.pass || r.evidence.stale_slot_names != "cdc_old" { throw r.why; }
    /// ```
    #[rhai_fn(return_raw)]
    pub fn stale_slots(ctx: NativeCallContext, slots: Array, options: Map) -> RhaiResult<Map> {
        at(
            &ctx,
            (|| {
                const OP: &str = "stale_slots";
                let list = super::slots(OP, &slots)?;
                let o = super::options(OP, &options, &super::super::keys::STALE_SLOTS)?;
                to_map(OP, &super::super::stale_slots(&list, &o))
            })(),
        )
    }

    /// Validate under production traffic over a window that contains the source's peak:
    /// replica lag p99 under a bound, slot lag bounded with no upward trend (Theil–Sen), WAL
    /// generation vs the replica's receive rate, and an estimate of the final catch-up after
    /// the fence.
    ///
    /// p99 is nearest-rank: over fewer than 100 datapoints it is the maximum, so use a window
    /// of at least two hours at 60 s if a single spike should not decide.
    ///
    /// # Parameters
    /// * `slot_lag_series` — `OldestReplicationSlotLag` (bytes).
    /// * `replica_lag_series` — `RDSToAuroraPostgreSQLReplicaLag` (seconds).
    /// * `wal_generation_series` — `TransactionLogsGeneration` (bytes/s).
    /// * `options` — map; keys (defaults): `max_replica_lag_p99_seconds` (10),
    ///   `peak_bytes_per_second` (unset: not checked), `peak_coverage` (0.9), and the
    ///   `classify` keys.
    ///
    /// # Returns
    /// `#{ verdict, pass, why, evidence }`; verdict `keeps-up` (pass), `falling-behind`,
    /// `stale-slot`, `window-misses-peak` or `no-data`. Evidence: `replica_lag_p99_seconds`,
    /// `slot_trend_bytes_per_min`, `wal_generation_mean_bytes_per_second`,
    /// `replica_receive_bytes_per_second`, `catch_up_estimate_seconds`, ...
    ///
    /// # Errors
    /// `Invalid` for a malformed datapoint or an unknown option key.
    ///
    /// # Example
    /// ```rhai
    /// let slot = []; let replica = []; let wal = [];
    /// for i in 0..60 {
    ///     let t = 1700000000 + i * 60;
    ///     slot.push(#{ t: t, v: (i % 3) * 8388608 });
    ///     replica.push(#{ t: t, v: 0.5 });
    ///     wal.push(#{ t: t, v: 20971520 + (i % 10) * 1048576 });
    /// }
    /// let r = lag::keeps_up_at_peak(slot, replica, wal, #{ max_replica_lag_p99_seconds: 5 });
    /// if !r.pass { throw r.why; }
    /// if r.evidence.catch_up_estimate_seconds > 60 { throw r.why; }
    /// ```
    #[rhai_fn(return_raw)]
    pub fn keeps_up_at_peak(
        ctx: NativeCallContext,
        slot_lag_series: Array,
        replica_lag_series: Array,
        wal_generation_series: Array,
        options: Map,
    ) -> RhaiResult<Map> {
        at(
            &ctx,
            (|| {
                const OP: &str = "keeps_up_at_peak";
                let slot = series(OP, "slot_lag_series", &slot_lag_series)?;
                let replica = series(OP, "replica_lag_series", &replica_lag_series)?;
                let wal = series(OP, "wal_generation_series", &wal_generation_series)?;
                let o = super::options(OP, &options, &super::super::keys::PEAK)?;
                to_map(
                    OP,
                    &super::super::keeps_up_at_peak(&slot, &replica, &wal, &o),
                )
            })(),
        )
    }

    /// Time until `FreeStorageSpace` runs out at the current consumption: the larger of the
    /// slot lag's growth and the free space's decline (Theil–Sen slopes).
    ///
    /// # Parameters
    /// * `free_storage_series` — `FreeStorageSpace` datapoints (bytes).
    /// * `slot_lag_series` — `OldestReplicationSlotLag` datapoints (bytes).
    /// * `options` — map; keys (defaults): `min_headroom_seconds` (21600), `now`,
    ///   `window_seconds`, `min_datapoints` (5), `stale_after_seconds` (300), and the other
    ///   `classify` keys (accepted for uniformity, unused).
    ///
    /// # Returns
    /// `#{ verdict: "headroom-ok"|"headroom-low"|"no-data", pass, why, evidence }`; evidence:
    /// `free_storage_bytes`, `slot_growth_bytes_per_min`, `free_storage_decline_bytes_per_min`,
    /// `seconds_until_full` and `full_at_t` (absent when nothing is shrinking).
    ///
    /// # Errors
    /// `Invalid` for a malformed datapoint or an unknown option key.
    ///
    /// # Example
    /// ```rhai
    /// let free = []; let slot = [];
    /// for i in 0..30 {
    ///     let t = 1700000000 + i * 60;
    ///     free.push(#{ t: t, v: 10737418240 });     // 10 GiB
    ///     slot.push(#{ t: t, v: i * 67108864 });    // +64 MiB per minute
    /// }
    /// let r = lag::wal_headroom(free, slot, #{});
    /// if r.verdict != "headroom-low" || r.evidence.seconds_until_full != 9600.0 { throw r.why; }
    /// ```
    #[rhai_fn(return_raw)]
    pub fn wal_headroom(
        ctx: NativeCallContext,
        free_storage_series: Array,
        slot_lag_series: Array,
        options: Map,
    ) -> RhaiResult<Map> {
        at(
            &ctx,
            (|| {
                const OP: &str = "wal_headroom";
                let free = series(OP, "free_storage_series", &free_storage_series)?;
                let slot = series(OP, "slot_lag_series", &slot_lag_series)?;
                let o = super::options(OP, &options, &super::super::keys::HEADROOM)?;
                to_map(OP, &super::super::wal_headroom(&free, &slot, &o))
            })(),
        )
    }

    /// Nearest-rank percentile of a series' values: always a value some datapoint had.
    ///
    /// # Parameters
    /// * `series` — datapoints `#{ t, v }`.
    /// * `p` — percentile, 0 to 100 (INT or FLOAT).
    ///
    /// # Returns
    /// FLOAT.
    ///
    /// # Errors
    /// `Invalid` for an empty series, a malformed datapoint, or `p` outside 0..=100.
    ///
    /// # Example
    /// ```rhai
    /// let s = [];
    /// for i in 1..=100 { s.push(#{ t: i * 60, v: i }); }
    /// if lag::percentile(s, 50) != 50.0 { throw "p50"; }
    /// if lag::percentile(s, 99.5) != 100.0 { throw "p99.5"; }
    /// ```
    #[rhai_fn(return_raw)]
    pub fn percentile(ctx: NativeCallContext, series: Array, p: Dynamic) -> RhaiResult<FLOAT> {
        at(
            &ctx,
            (|| {
                const OP: &str = "percentile";
                let pts = super::series(OP, "series", &series)?;
                let p = number(&p)
                    .filter(|x| (0.0..=100.0).contains(x))
                    .ok_or_else(|| {
                        invalid(
                            OP,
                            format!("p is {}; expected a number from 0 to 100", kind(&p)),
                            "pass e.g. 99 for p99",
                        )
                    })?;
                percentile_of(OP, &pts, p)
            })(),
        )
    }

    /// The 99th percentile (nearest rank) of a series' values; over fewer than 100 datapoints
    /// that is the maximum.
    ///
    /// # Parameters
    /// * `series` — datapoints `#{ t, v }`.
    ///
    /// # Returns
    /// FLOAT.
    ///
    /// # Errors
    /// `Invalid` for an empty series or a malformed datapoint.
    ///
    /// # Example
    /// ```rhai
    /// let s = [#{ t: 0, v: 1 }, #{ t: 60, v: 0.5 }, #{ t: 120, v: 7 }];
    /// if lag::p99(s) != 7.0 { throw "p99"; }
    /// ```
    #[rhai_fn(return_raw)]
    pub fn p99(ctx: NativeCallContext, series: Array) -> RhaiResult<FLOAT> {
        at(
            &ctx,
            (|| {
                let pts = super::series("p99", "series", &series)?;
                percentile_of("p99", &pts, 99.0)
            })(),
        )
    }

    /// Robust trend of a series in its unit per minute (bytes/min for slot lag): the
    /// Theil–Sen slope, the median of all pairwise slopes, so a single spike does not move it.
    ///
    /// # Parameters
    /// * `series` — datapoints `#{ t, v }` with at least two distinct timestamps.
    ///
    /// # Returns
    /// FLOAT, value units per minute.
    ///
    /// # Errors
    /// `Invalid` for fewer than two distinct timestamps or a malformed datapoint.
    ///
    /// # Example
    /// ```rhai
    /// let s = [];
    /// for i in 0..20 { s.push(#{ t: i * 60, v: i * 1048576 }); }
    /// s[7].v = 99999999999;  // one spike
    /// if lag::trend_per_min(s) != 1048576.0 { throw "trend"; }
    /// ```
    #[rhai_fn(return_raw)]
    pub fn trend_per_min(ctx: NativeCallContext, series: Array) -> RhaiResult<FLOAT> {
        at(
            &ctx,
            (|| {
                const OP: &str = "trend_per_min";
                let pts = super::series(OP, "series", &series)?;
                super::super::stats::theil_sen_per_second(&pts)
                    .map(|s| s * 60.0)
                    .ok_or_else(|| {
                        invalid(
                            OP,
                            format!(
                                "series has {} datapoint(s) and fewer than two distinct timestamps",
                                pts.len()
                            ),
                            "a trend needs datapoints at two or more times",
                        )
                    })
            })(),
        )
    }

    /// Format a byte count in binary units: `"64.0 MiB"`, `"3.1 GiB"`, `"512 B"`.
    ///
    /// # Parameters
    /// * `n` — bytes (INT).
    ///
    /// # Returns
    /// String.
    ///
    /// # Errors
    /// None.
    ///
    /// # Example
    /// ```rhai
    /// if lag::fmt_bytes(67108864) != "64.0 MiB" { throw "fmt"; }
    /// ```
    pub fn fmt_bytes(n: INT) -> String {
        super::super::fmt::fmt_bytes(n as f64)
    }

    /// Format a byte count given as a float (e.g. a CloudWatch value) in binary units.
    ///
    /// # Parameters
    /// * `n` — bytes (FLOAT).
    ///
    /// # Returns
    /// String.
    ///
    /// # Errors
    /// None.
    ///
    /// # Example
    /// ```rhai
    /// if lag::fmt_bytes(1536.0) != "1.5 KiB" { throw "fmt"; }
    /// ```
    #[rhai_fn(name = "fmt_bytes")]
    pub fn fmt_bytes_float(n: FLOAT) -> String {
        super::super::fmt::fmt_bytes(n)
    }

    /// Format a duration for operators: `"45 s"`, `"40 min"`, `"3 h 12 min"`, `"2 d 4 h"`.
    ///
    /// # Parameters
    /// * `seconds` — INT.
    ///
    /// # Returns
    /// String.
    ///
    /// # Errors
    /// None.
    ///
    /// # Example
    /// ```rhai
    /// if lag::fmt_duration(2400) != "40 min" { throw "fmt"; }
    /// ```
    pub fn fmt_duration(seconds: INT) -> String {
        super::super::fmt::fmt_duration(seconds as f64)
    }

    /// Format a duration given as a float number of seconds.
    ///
    /// # Parameters
    /// * `seconds` — FLOAT.
    ///
    /// # Returns
    /// String.
    ///
    /// # Errors
    /// None.
    ///
    /// # Example
    /// ```rhai
    /// if lag::fmt_duration(11520.0) != "3 h 12 min" { throw "fmt"; }
    /// ```
    #[rhai_fn(name = "fmt_duration")]
    pub fn fmt_duration_float(seconds: FLOAT) -> String {
        super::super::fmt::fmt_duration(seconds)
    }

    /// Format epoch seconds as a UTC clock time `"HH:MM:SS"`, the form `why` lines use.
    ///
    /// # Parameters
    /// * `t` — epoch seconds (INT).
    ///
    /// # Returns
    /// String.
    ///
    /// # Errors
    /// None.
    ///
    /// # Example
    /// ```rhai
    /// if lag::fmt_utc(1700000000) != "22:13:20" { throw "fmt"; }
    /// ```
    pub fn fmt_utc(t: INT) -> String {
        super::super::fmt::fmt_utc(t)
    }
}

fn percentile_of(op: &str, pts: &[Point], p: f64) -> RhaiResult<FLOAT> {
    let values: Vec<f64> = pts.iter().map(|x| x.v).collect();
    super::stats::percentile(&values, p).ok_or_else(|| {
        invalid(
            op,
            "series is empty; a percentile needs at least one datapoint".to_string(),
            "check that the metric query returned data before summarising it",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        let mut e = Engine::new();
        register(&mut e);
        e
    }

    // The examples in this module's doc comments run in `tests/tests/docs.rs` (with every other
    // module's), which also checks each function documents Parameters, Returns, Errors and an
    // Example.

    fn error_map(e: &Engine, script: &str) -> Map {
        match *e.eval::<Dynamic>(script).unwrap_err() {
            EvalAltResult::ErrorRuntime(v, _) => v.cast::<Map>(),
            other => panic!("not a primitive error: {other}"),
        }
    }

    fn message(m: &Map) -> String {
        m["message"].clone().into_string().unwrap()
    }

    #[test]
    fn bad_datapoints_are_named() {
        let e = engine();
        let m = error_map(
            &e,
            r#"lag::classify([#{t: 0, v: 1}, #{t: 60, v: 2}, #{t: 120, v: 3}, #{t: 180, v: "4"}], [], #{})"#,
        );
        assert_eq!(m["kind"].clone().into_string().unwrap(), "Invalid");
        assert_eq!(m["op"].clone().into_string().unwrap(), "classify");
        assert_eq!(
            message(&m),
            "slot_lag_series[3].v is a string (\"4\"); each datapoint is #{ t: <epoch seconds>, v: <number> }"
        );
        let m = error_map(&e, "lag::p99([#{t: 1.5, v: 1}])");
        assert!(
            message(&m).starts_with("series[0].t is a float (1.5)"),
            "{}",
            message(&m)
        );
        let m = error_map(&e, "lag::p99([#{time: 1, v: 1}])");
        assert!(
            message(&m).starts_with("series[0].t is missing"),
            "{}",
            message(&m)
        );
        let m = error_map(&e, "lag::wal_headroom([1], [], #{})");
        assert!(
            message(&m).starts_with("free_storage_series[0] is an integer (1)"),
            "{}",
            message(&m)
        );
        let m = error_map(&e, "lag::p99([])");
        assert!(message(&m).contains("series is empty"), "{}", message(&m));
        let m = error_map(&e, "lag::trend_per_min([#{t: 1, v: 1}])");
        assert!(
            message(&m).contains("fewer than two distinct timestamps"),
            "{}",
            message(&m)
        );
    }

    #[test]
    fn bad_options_and_slots_are_named() {
        let e = engine();
        let m = error_map(&e, "lag::classify([], [], #{ segment_size: 16 })");
        assert_eq!(
            message(&m),
            "options.segment_size is not an option of lag::classify"
        );
        let hint = m["hint"].clone().into_string().unwrap();
        assert!(hint.starts_with("allowed keys: segment_bytes, "), "{hint}");
        // A key valid elsewhere is still refused where it means nothing.
        let m = error_map(&e, "lag::classify([], [], #{ clock_skew_seconds: 5 })");
        assert!(
            message(&m).contains("clock_skew_seconds"),
            "{}",
            message(&m)
        );
        let m = error_map(&e, r#"lag::classify([], [], #{ segment_bytes: "64MB" })"#);
        assert_eq!(
            message(&m),
            "options.segment_bytes is a string (\"64MB\"); expected a number > 0"
        );
        let m = error_map(&e, "lag::caught_up_after_fence([], [], 0, #{ now: 1.5 })");
        assert!(
            message(&m).starts_with("options.now is a float"),
            "{}",
            message(&m)
        );
        let m = error_map(
            &e,
            r#"lag::stale_slots([#{ slot_name: "x", slot_type: "logcal", active: true, lag_bytes: 0 }], #{})"#,
        );
        assert!(
            message(&m).starts_with(
                "slots[0].slot_type is a string (\"logcal\"); expected \"logical\" or \"physical\""
            ),
            "{}",
            message(&m)
        );
        let m = error_map(
            &e,
            r#"lag::stale_slots([#{ slot_name: "x", slot_type: "logical", lag_bytes: 0 }], #{})"#,
        );
        assert!(
            message(&m).starts_with("slots[0].active is ()"),
            "{}",
            message(&m)
        );
        let m = error_map(&e, "lag::percentile([#{t: 0, v: 1}], 101)");
        assert!(
            message(&m).starts_with("p is an integer (101)"),
            "{}",
            message(&m)
        );
    }

    #[test]
    fn errors_carry_the_line_of_the_call() {
        // Rhai gives errors of module functions no position of its own.
        let err = engine()
            .eval::<Dynamic>("let x = 1;\n\nlag::p99([])")
            .unwrap_err();
        assert_eq!(err.position().line(), Some(3), "{err}");
    }

    #[test]
    fn out_of_range_times_are_invalid_not_overflows() {
        let e = engine();
        let max = i64::MAX;
        let m = error_map(
            &e,
            &format!("lag::caught_up_after_fence([], [], {max}, #{{}})"),
        );
        assert_eq!(m["kind"].clone().into_string().unwrap(), "Invalid");
        assert!(
            message(&m).starts_with(&format!("fence_time is {max}; expected epoch seconds")),
            "{}",
            message(&m)
        );
        let m = error_map(
            &e,
            &format!("lag::classify([#{{ t: {}, v: 1 }}], [], #{{}})", i64::MIN),
        );
        assert!(
            message(&m).starts_with("slot_lag_series[0].t is -9223372036854775808"),
            "{}",
            message(&m)
        );
        let m = error_map(
            &e,
            &format!("lag::caught_up_after_fence([], [], 0, #{{ clock_skew_seconds: {max} }})"),
        );
        assert!(
            message(&m).starts_with("options.clock_skew_seconds is an integer"),
            "{}",
            message(&m)
        );
        let m = error_map(&e, &format!("lag::wal_headroom([], [], #{{ now: {max} }})"));
        assert!(message(&m).starts_with("options.now is"), "{}", message(&m));
        // Formatting takes any number.
        let s: String = e.eval(&format!("lag::fmt_duration({max})")).unwrap();
        assert_eq!(s, "106751991167300 d 16 h");
    }

    #[test]
    fn results_are_plain_maps_for_gates() {
        let e = engine();
        let r: Map = e
            .eval(
                r#"
                let slot = []; let replica = [];
                for i in 0..10 { slot.push(#{ t: i * 60, v: 0 }); replica.push(#{ t: i * 60, v: 0 }); }
                lag::caught_up_after_fence(slot, replica, 200, #{ now: 600 })
                "#,
            )
            .unwrap();
        assert!(r["pass"].as_bool().unwrap());
        assert!(
            r["why"]
                .clone()
                .into_string()
                .unwrap()
                .starts_with("caught-up: ")
        );
        assert_eq!(r["verdict"].clone().into_string().unwrap(), "caught-up");
        let ev = r["evidence"].clone().cast::<Map>();
        assert_eq!(ev["first_zero_after_fence_t"].as_int().unwrap(), 240);
        assert_eq!(ev["replica_lag_seconds"].as_float().unwrap(), 0.0);
        // `()` for an option means its default.
        let r: Map = e.eval("lag::classify([], [], #{ now: () })").unwrap();
        assert_eq!(r["verdict"].clone().into_string().unwrap(), "no-data");
    }
}
