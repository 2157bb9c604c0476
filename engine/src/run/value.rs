//! The journaling boundary: script values (Rhai [`Dynamic`]) become journal values (JSON) here,
//! and journal values become script values again.
//!
//! Everything a run journals — step and gate results, thrown errors, undo results, the final
//! value — and everything it replays crosses this boundary, so this is where godwit refuses what
//! it cannot record exactly:
//!
//! * **Only plain data**: unit, booleans, integers, finite floats, strings, characters, arrays and
//!   maps. Function pointers, timestamps, blobs and custom types have no JSON form.
//! * **No `inf` or `NaN`**: JSON has no spelling for them (`serde_json` writes `null`), so the
//!   script would see `()` after a replay. A step that returns one fails instead.
//! * **Bounded depth** ([`MAX_DEPTH`]): converting is recursive here and in Rhai and
//!   `serde_json`; a value nested thousands deep overflowed the stack and aborted the process
//!   (issue 19). Deeper than any primitive result needs, and far below `serde_json`'s parse
//!   limit of 128, so every value godwit writes can be read back.
//! * **Bounded size**: arrays, maps and strings within the run's Rhai limits, and the whole value
//!   within [`MAX_NODES`] values and [`MAX_BYTES`] of text. Rhai checks its own size limits only
//!   at some points (a map grown by `m[key] = v` is never measured), so the journal checks them
//!   again, exactly, on everything it keeps.
//!
//! Decoding is bounded the same way; `serde_json` already refuses to parse a journal line nested
//! deeper than 128, so a damaged journal is reported, not a crash.

use rhai::{Array, Dynamic, Engine, ImmutableString, Map};
use serde_json::Value;

/// Deepest nesting of arrays and maps in a journaled value. Primitive results are 3–5 deep; a
/// journal line adds 2 levels around a result, and `serde_json` parses at most 128.
pub const MAX_DEPTH: usize = 64;

/// Most values (scalars, arrays, maps) in one journaled value: a day of 1 s datapoints as
/// `#{ t, v }` maps is ~260 000.
pub const MAX_NODES: usize = 2_000_000;

/// Most text (string bytes and map keys) in one journaled value: every resume reads every journal
/// line, and one line is one `write` plus `fdatasync`.
pub const MAX_BYTES: usize = 64 << 20;

/// Deepest JSON a journal value may have when decoded: `serde_json`'s own recursion limit, so
/// anything that parsed decodes.
const MAX_DECODE_DEPTH: usize = 128;

/// Why a value cannot cross the journaling boundary: where in the value, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    /// `result`, `result.series[3].v`, ...
    pub path: String,
    pub problem: String,
}

impl std::fmt::Display for ValueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.path, self.problem)
    }
}

impl std::error::Error for ValueError {}

/// Size limits of one value. [`ValueLimits::of`] takes the per-container limits from the run's
/// engine, so the journal enforces exactly what the runbook was told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueLimits {
    pub max_depth: usize,
    /// Longest array (0: no limit of its own).
    pub max_array: usize,
    /// Most entries in one map (0: no limit of its own).
    pub max_map: usize,
    /// Longest string in bytes (0: no limit of its own).
    pub max_string: usize,
    pub max_nodes: usize,
    pub max_bytes: usize,
}

impl Default for ValueLimits {
    fn default() -> Self {
        let l = super::Limits::default();
        ValueLimits {
            max_depth: MAX_DEPTH,
            max_array: l.max_array_size,
            max_map: l.max_map_size,
            max_string: l.max_string_size,
            max_nodes: MAX_NODES,
            max_bytes: MAX_BYTES,
        }
    }
}

impl ValueLimits {
    /// The limits of the run whose engine this is.
    pub fn of(engine: &Engine) -> Self {
        ValueLimits {
            max_array: engine.max_array_size(),
            max_map: engine.max_map_size(),
            max_string: engine.max_string_size(),
            ..ValueLimits::default()
        }
    }
}

/// Counters shared by one conversion.
struct Budget<'a> {
    limits: &'a ValueLimits,
    nodes: usize,
    bytes: usize,
}

/// A failure inside a value; each parent adds its segment on the way out (innermost first).
struct Fail {
    segments: Vec<String>,
    problem: String,
}

fn fail(problem: String) -> Fail {
    Fail {
        segments: Vec::new(),
        problem,
    }
}

fn within<T>(r: Result<T, Fail>, segment: impl FnOnce() -> String) -> Result<T, Fail> {
    r.map_err(|mut e| {
        e.segments.push(segment());
        e
    })
}

impl Fail {
    /// The path from `root`, with the middle of a long one left out: a value nested 65 deep
    /// would otherwise print 65 segments.
    fn at(self, root: &str) -> ValueError {
        const KEEP: usize = 4;
        let segs: Vec<String> = self.segments.into_iter().rev().collect();
        let mut path = root.to_string();
        if segs.len() > 3 * KEEP {
            path.push_str(&segs[..KEEP].concat());
            path.push_str(&format!("…({} more)…", segs.len() - 2 * KEEP));
            path.push_str(&segs[segs.len() - KEEP..].concat());
        } else {
            path.push_str(&segs.concat());
        }
        ValueError {
            path,
            problem: self.problem,
        }
    }
}

fn key_segment(k: &str) -> String {
    let plain = !k.is_empty()
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !k.starts_with(|c: char| c.is_ascii_digit());
    if plain {
        format!(".{k}")
    } else {
        format!("[{k:?}]")
    }
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Convert a script value to its journal form, refusing (never altering) what JSON cannot hold
/// exactly. `what` names the value in the error: `result`, `error`, ...
pub fn encode(v: &Dynamic, what: &str, limits: &ValueLimits) -> Result<Value, ValueError> {
    let mut budget = Budget {
        limits,
        nodes: 0,
        bytes: 0,
    };
    encode_node(v, 0, &mut budget).map_err(|e| e.at(what))
}

fn encode_node(v: &Dynamic, depth: usize, b: &mut Budget<'_>) -> Result<Value, Fail> {
    let l = b.limits;
    b.nodes += 1;
    if b.nodes > l.max_nodes {
        return Err(fail(format!(
            "is past the {} values one journaled value may hold",
            l.max_nodes
        )));
    }
    if v.is_shared() {
        // A variable captured by a closure; its current value is what is journaled.
        return match v.read_lock::<Dynamic>() {
            Some(inner) if !inner.is_shared() => encode_node(&inner, depth, b),
            _ => Err(fail("is a shared value that cannot be read".into())),
        };
    }
    if v.is_unit() {
        return Ok(Value::Null);
    }
    if let Ok(x) = v.as_bool() {
        return Ok(Value::Bool(x));
    }
    if let Ok(n) = v.as_int() {
        return Ok(Value::from(n));
    }
    if let Ok(f) = v.as_float() {
        return serde_json::Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| {
                fail(format!(
                    "is {f}, which JSON cannot hold, so it cannot be journaled exactly: check the \
                     computation (an overflow or 0.0/0.0?), or return it as a string"
                ))
            });
    }
    if let Ok(c) = v.as_char() {
        b.bytes += c.len_utf8();
        return Ok(Value::String(c.to_string()));
    }
    if let Some(s) = v.read_lock::<ImmutableString>() {
        if l.max_string > 0 && s.len() > l.max_string {
            return Err(fail(format!(
                "is a string of {} bytes; the string size limit is {}",
                s.len(),
                l.max_string
            )));
        }
        b.bytes += s.len();
        if b.bytes > l.max_bytes {
            return Err(fail(format!(
                "is past the {} bytes of text one journaled value may hold",
                l.max_bytes
            )));
        }
        return Ok(Value::String(s.to_string()));
    }
    let container = v.is_array() || v.is_map();
    if container && depth >= l.max_depth {
        // Checked before descending: the recursion here stays as deep as the limit.
        return Err(fail(format!(
            "is nested {} levels deep; journaled values nest at most {} arrays or maps",
            depth + 1,
            l.max_depth
        )));
    }
    if let Some(a) = v.read_lock::<Array>() {
        if l.max_array > 0 && a.len() > l.max_array {
            return Err(fail(format!(
                "is an array of {}; the array size limit is {}",
                count(a.len(), "item", "items"),
                l.max_array
            )));
        }
        let mut out = Vec::with_capacity(a.len());
        for (i, x) in a.iter().enumerate() {
            out.push(within(encode_node(x, depth + 1, b), || format!("[{i}]"))?);
        }
        return Ok(Value::Array(out));
    }
    if let Some(m) = v.read_lock::<Map>() {
        if l.max_map > 0 && m.len() > l.max_map {
            return Err(fail(format!(
                "is a map of {}; the map size limit is {} (Rhai does not check maps grown by \
                 `m[key] = v`, the journal does)",
                count(m.len(), "entry", "entries"),
                l.max_map
            )));
        }
        let mut out = serde_json::Map::new();
        for (k, x) in m.iter() {
            b.bytes += k.len();
            let value = within(encode_node(x, depth + 1, b), || key_segment(k))?;
            out.insert(k.to_string(), value);
        }
        return Ok(Value::Object(out));
    }
    Err(fail(format!(
        "is a {}; journaled values must be plain data (maps, arrays, strings, numbers, \
         booleans, ())",
        v.type_name()
    )))
}

/// Convert a journal value back into a script value. Every value [`encode`] produced decodes to
/// what the live run saw; so does anything `serde_json` parsed.
pub fn decode(v: &Value) -> Result<Dynamic, ValueError> {
    decode_node(v, 0).map_err(|e| e.at(""))
}

fn decode_node(v: &Value, depth: usize) -> Result<Dynamic, Fail> {
    if depth > MAX_DECODE_DEPTH {
        return Err(fail(format!(
            "is nested deeper than {MAX_DECODE_DEPTH} levels"
        )));
    }
    Ok(match v {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Dynamic::from_int(i)
            } else if n.is_f64() {
                Dynamic::from_float(n.as_f64().unwrap_or(f64::NAN))
            } else {
                // A u64 above i64::MAX (only a hand-written parameter can be one): a float
                // would silently change it.
                return Err(fail(format!(
                    "is {n}, which does not fit in a 64-bit integer"
                )));
            }
        }
        Value::String(s) => Dynamic::from(s.clone()),
        Value::Array(a) => {
            let mut out = Array::with_capacity(a.len());
            for (i, x) in a.iter().enumerate() {
                out.push(within(decode_node(x, depth + 1), || format!("[{i}]"))?);
            }
            Dynamic::from_array(out)
        }
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, x) in m {
                let value = within(decode_node(x, depth + 1), || key_segment(k))?;
                out.insert(k.as_str().into(), value);
            }
            Dynamic::from_map(out)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(script: &str) -> Dynamic {
        let mut e = Engine::new();
        e.set_max_expr_depths(0, 0);
        e.eval::<Dynamic>(script).unwrap()
    }

    fn enc(v: &Dynamic) -> Result<Value, String> {
        encode(v, "result", &ValueLimits::default()).map_err(|e| e.to_string())
    }

    #[test]
    fn plain_data_round_trips() {
        let v = eval(r#"#{ a: [1, 2.5, "x", 'c', true, ()], "odd key": #{ n: -0.0 } }"#);
        let json = enc(&v).unwrap();
        let line = serde_json::to_string(&json).unwrap();
        let back = decode(&serde_json::from_str(&line).unwrap()).unwrap();
        assert_eq!(back.to_string(), decode(&json).unwrap().to_string());
        assert_eq!(
            json["a"][3], "c",
            "a char is journaled as a one-character string"
        );
    }

    #[test]
    fn non_finite_floats_are_refused_with_their_place() {
        let err = enc(&eval("#{ lag: [1.0, 1e308 * 10.0] }")).unwrap_err();
        assert!(
            err.starts_with("result.lag[1] is inf, which JSON cannot hold"),
            "{err}"
        );
        let err = enc(&eval("0.0 / 0.0")).unwrap_err();
        assert!(err.starts_with("result is NaN"), "{err}");
    }

    #[test]
    fn depth_is_bounded_without_recursing_past_the_limit() {
        // Deep enough to overflow an unbounded recursive conversion on a 2 MiB test thread.
        let mut v = Dynamic::from_array(vec![]);
        for _ in 0..100_000 {
            v = Dynamic::from_array(vec![v]);
        }
        let err = enc(&v).unwrap_err();
        assert!(
            err.ends_with(
                "is nested 65 levels deep; journaled values nest at most 64 arrays or maps"
            ),
            "{err}"
        );
        assert!(
            err.starts_with("result[0][0][0][0]…(56 more)…[0][0][0][0] is"),
            "{err}"
        );
        // Dropping it is recursive in Rhai; unwrap it level by level instead.
        while let Some(mut a) = std::mem::replace(&mut v, Dynamic::UNIT).try_cast::<Array>() {
            v = a.pop().unwrap_or(Dynamic::UNIT);
        }
        let mut exactly = Dynamic::UNIT;
        for _ in 0..MAX_DEPTH {
            exactly = Dynamic::from_array(vec![exactly]);
        }
        enc(&exactly).unwrap();
    }

    #[test]
    fn sizes_are_the_runs_limits() {
        let limits = ValueLimits {
            max_map: 3,
            max_array: 2,
            max_string: 4,
            ..ValueLimits::default()
        };
        let e = |s: &str| encode(&eval(s), "result", &limits).map_err(|e| e.to_string());
        let m = e("#{ m: #{ a: 1, b: 2, c: 3, d: 4 } }").unwrap_err();
        assert!(m.starts_with("result.m is a map of 4 entries; the map size limit is 3"));
        assert!(
            e("[[1, 2, 3]]")
                .unwrap_err()
                .starts_with("result[0] is an array of 3 items; the array size limit is 2")
        );
        assert!(
            e(r#"#{ "a b": "12345" }"#)
                .unwrap_err()
                .starts_with(r#"result["a b"] is a string of 5 bytes; the string size limit is 4"#)
        );
        e("#{ a: [1, 2], s: \"1234\" }").unwrap();
    }

    #[test]
    fn function_pointers_are_not_plain_data() {
        let err = enc(&eval("#{ f: || 1 }")).unwrap_err();
        assert!(
            err.starts_with("result.f is a Fn; journaled values must be plain data"),
            "{err}"
        );
    }

    #[test]
    fn decode_refuses_integers_beyond_i64_instead_of_rounding() {
        let v: Value = serde_json::from_str("{\"big\": 18446744073709551615}").unwrap();
        let err = decode(&v).unwrap_err().to_string();
        assert_eq!(
            err,
            ".big is 18446744073709551615, which does not fit in a 64-bit integer"
        );
    }
}
