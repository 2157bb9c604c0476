//! Target `lag`: the `lag::` functions with hostile numbers.
//!
//! Input: one `lag::` call with literal arguments — datapoints whose `t` and `v` are extreme
//! integers, non-finite or huge floats, strings or missing; options of every key with values of
//! every type. Asserts: no panic (an overflow in a debug build is one); an error is an `Invalid`
//! primitive error of area `lag` (or Rhai's own "no such function" for arguments of the wrong
//! type); an assessment map is journalable (no `inf`/`NaN` in its evidence). The same series
//! also go to the Rust functions directly, without the Rhai boundary's range checks, where a
//! sync-gate pass must rest on a zero stamped at or after fence + allowance.

use godwit_engine::PrimitiveError;
use godwit_engine::run::value::{ValueLimits, encode};
use godwit_stdlib::lag::{self, Options, Point};
use rhai::{Dynamic, Engine, EvalAltResult, Map};

use crate::Checker;
use crate::rng::{Rng, rhai_float, rhai_int, rhai_string};

pub fn checker() -> Box<dyn Checker> {
    let mut engine = Engine::new();
    lag::rhai::register(&mut engine);
    engine.set_max_operations(1_000_000);
    Box::new(LagChecker {
        engine,
        seen: [0; 2],
    })
}

struct LagChecker {
    engine: Engine,
    /// Calls that answered, calls refused as Invalid (or not matching a signature).
    seen: [u64; 2],
}

const OPTION_KEYS: &[&str] = &[
    "segment_bytes",
    "idle_ceiling_segments",
    "stale_slot_segments",
    "replica_lag_tolerance_seconds",
    "sustain_seconds",
    "period_seconds",
    "stale_after_seconds",
    "clock_skew_seconds",
    "now",
    "window_seconds",
    "min_datapoints",
    "max_replica_lag_p99_seconds",
    "peak_bytes_per_second",
    "peak_coverage",
    "min_headroom_seconds",
    "bogus",
];

fn number(rng: &mut Rng) -> String {
    match rng.below(6) {
        0 => rhai_float(rng.float()),
        1 => rhai_string("12"),
        2 => "()".into(),
        _ => rhai_int(rng.int()),
    }
}

/// A time: mostly near a common base so rules actually run, sometimes anything.
fn time(rng: &mut Rng, base: i64) -> String {
    if rng.one_in(6) {
        number(rng)
    } else {
        rhai_int(base.wrapping_add(rng.below(7200) as i64 - 3600))
    }
}

fn series(rng: &mut Rng, base: i64) -> String {
    let n = if rng.one_in(10) {
        rng.below(400)
    } else {
        rng.below(30)
    };
    // One series in eight is wild: any point may be malformed or at any time.
    let wild = rng.one_in(8);
    let pts: Vec<String> = (0..n)
        .enumerate()
        .map(|(i, _)| {
            let v = match rng.below(6) {
                0 if wild => number(rng),
                0 => rhai_float(rng.float().abs()),
                1 => "0".into(),
                2 => "67108864".into(),
                _ => (rng.below(1 << 30)).to_string(),
            };
            let t = if wild {
                time(rng, base)
            } else {
                rhai_int(base.wrapping_add(60 * i as i64 - 600))
            };
            match rng.below(if wild { 10 } else { 1000 }) {
                0 => format!("#{{ v: {v} }}"),
                1 => v,
                _ => format!("#{{ t: {t}, v: {v} }}"),
            }
        })
        .collect();
    format!("[{}]", pts.join(", "))
}

fn options(rng: &mut Rng, base: i64) -> String {
    let n = rng.below(3);
    let kv: Vec<String> = (0..n)
        .map(|_| {
            // Mostly keys every analysis shares, with sane values; sometimes anything.
            let k = if rng.one_in(4) {
                *rng.pick(OPTION_KEYS)
            } else {
                *rng.pick(&OPTION_KEYS[..10])
            };
            let v = match k {
                "now" => time(rng, base),
                _ if !rng.one_in(5) => (1 + rng.below(4000)).to_string(),
                _ => number(rng),
            };
            format!("{k}: {v}")
        })
        .collect();
    format!("#{{ {} }}", kv.join(", "))
}

fn slots(rng: &mut Rng) -> String {
    let n = rng.below(4);
    let items: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "#{{ slot_name: \"s{i}\", slot_type: {}, active: {}, lag_bytes: {}, inactive_since: {} }}",
                rng.pick(&["\"logical\"", "\"physical\"", "1"]),
                rng.pick(&["true", "false", "()"]),
                number(rng),
                number(rng)
            )
        })
        .collect();
    format!("[{}]", items.join(", "))
}

impl Checker for LagChecker {
    fn summary(&self) -> String {
        format!("{} answered, {} refused", self.seen[0], self.seen[1])
    }

    fn generate(&mut self, rng: &mut Rng, corpus: &[String]) -> String {
        if !corpus.is_empty() && rng.one_in(5) {
            return rng.pick(corpus).clone();
        }
        let base = if rng.one_in(8) {
            rng.int()
        } else {
            1_700_000_000
        };
        let (s, r, w) = (series(rng, base), series(rng, base), series(rng, base));
        let (o, f) = (options(rng, base), time(rng, base));
        match rng.below(12) {
            0 | 1 => format!("lag::caught_up_after_fence({s}, {r}, {f}, {o})"),
            2 => format!(
                "lag::caught_up_after_fence({s}, {r}, {f}, {}, {o})",
                slots(rng)
            ),
            3 | 4 => format!("lag::classify({s}, {r}, {o})"),
            5 => format!("lag::stale_slots({}, {o})", slots(rng)),
            6 => format!("lag::keeps_up_at_peak({s}, {r}, {w}, {o})"),
            7 => format!("lag::wal_headroom({s}, {r}, {o})"),
            8 => format!("lag::percentile({s}, {})", number(rng)),
            9 => format!("lag::trend_per_min({s})"),
            10 => format!("lag::p99({s})"),
            _ => format!(
                "[lag::fmt_bytes({}), lag::fmt_duration({}), lag::fmt_utc({})]",
                number(rng),
                number(rng),
                rhai_int(rng.int())
            ),
        }
    }

    fn check(&mut self, input: &str) -> Result<(), String> {
        let out = self.engine.eval::<Dynamic>(input);
        if out.is_err() {
            self.seen[1] += 1;
        }
        match out {
            Ok(v) => {
                self.seen[0] += 1;
                if v.is_map() {
                    encode(&v, "result", &ValueLimits::default())
                        .map_err(|e| format!("an assessment that cannot be journaled: {e}"))?;
                }
            }
            Err(e) => match e.unwrap_inner() {
                EvalAltResult::ErrorRuntime(value, _) => {
                    match PrimitiveError::from_dynamic(value) {
                        Some(p)
                            if p.area == "lag" && p.kind == godwit_engine::ErrorKind::Invalid => {}
                        _ => return Err(format!("not an Invalid lag error: {e}")),
                    }
                }
                EvalAltResult::ErrorFunctionNotFound(..)
                | EvalAltResult::ErrorParsing(..)
                | EvalAltResult::ErrorTooManyOperations(..) => {}
                _ => return Err(format!("unexpected error: {e}")),
            },
        }
        direct(input, &self.engine)
    }
}

/// The same data straight into the Rust functions (no range checks at a Rhai boundary).
fn direct(input: &str, engine: &Engine) -> Result<(), String> {
    let Some(args) = input
        .strip_prefix("lag::caught_up_after_fence(")
        .and_then(|s| s.strip_suffix(')'))
    else {
        return Ok(());
    };
    // Evaluate the arguments as an array to get them back as values.
    let Ok(vals) = engine.eval::<rhai::Array>(&format!("[{args}]")) else {
        return Ok(());
    };
    let points = |d: &Dynamic| -> Vec<Point> {
        d.clone()
            .try_cast::<rhai::Array>()
            .unwrap_or_default()
            .iter()
            .filter_map(|p| {
                let m = p.read_lock::<Map>()?;
                let t = m.get("t")?.as_int().ok()?;
                let v = m.get("v")?;
                let v = v
                    .as_float()
                    .or_else(|_| v.as_int().map(|i| i as f64))
                    .ok()?;
                Some(Point { t, v })
            })
            .collect()
    };
    let (Some(s), Some(r), Some(f)) = (vals.first(), vals.get(1), vals.get(2)) else {
        return Ok(());
    };
    let fence = f.as_int().unwrap_or(i64::MAX);
    let (slot, replica) = (points(s), points(r));
    for skew in [0, 5, i64::MAX, i64::MIN] {
        let o = Options {
            clock_skew_seconds: skew,
            now: slot.last().map(|p| p.t),
            window_seconds: Some(i64::MAX),
            ..Options::default()
        };
        let a = lag::caught_up_after_fence(&slot, &replica, fence, None, &o);
        if a.pass {
            let at = a
                .evidence
                .get_i64("first_zero_after_fence_t")
                .ok_or("a pass without first_zero_after_fence_t")?;
            if i128::from(at) < i128::from(fence) + i128::from(skew) {
                return Err(format!(
                    "passed on a zero at {at}, before fence {fence} + allowance {skew}: {}",
                    a.why
                ));
            }
        }
        let _ = lag::classify(&slot, &replica, None, &o);
        let _ = lag::wal_headroom(&slot, &replica, &o);
        let _ = lag::keeps_up_at_peak(&slot, &replica, &slot, &o);
    }
    Ok(())
}
