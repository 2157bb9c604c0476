//! Target `journal`: values through the journaling boundary and a real journal line.
//!
//! Input: a Rhai expression (evaluated without limits) giving the value a step returns. The
//! value is encoded with the run's limits; an independent oracle says whether it should have been
//! refused. An accepted value is sealed into a hash-chained `step-completed` line, read back as a
//! resumed run would, and decoded: it must equal, bit for bit and type for type, what the live
//! run continued with. Damaged copies of the line must be refused without a panic.

use godwit_engine::journal::{Entry, open_line, seal};
use godwit_engine::run::value::{MAX_DEPTH, ValueLimits, decode, encode};
use rhai::{Array, Dynamic, Engine, ImmutableString, Map};

use crate::Checker;
use crate::rng::{Rng, rhai_float, rhai_int, rhai_string};

pub fn checker() -> Box<dyn Checker> {
    let mut engine = Engine::new();
    engine.set_max_expr_depths(0, 0);
    Box::new(JournalChecker {
        engine,
        limits: ValueLimits {
            max_array: 40,
            max_map: 40,
            max_string: 64,
            ..ValueLimits::default()
        },
        rng: Rng::new(7),
        seen: [0; 2],
    })
}

struct JournalChecker {
    engine: Engine,
    limits: ValueLimits,
    /// For damaging lines deterministically per input.
    rng: Rng,
    /// Values refused, values journaled and replayed.
    seen: [u64; 2],
}

/// A value as Rhai source: nested containers, hostile scalars, sometimes deep or large.
fn gen_value(rng: &mut Rng, depth: usize) -> String {
    if depth < 3 && rng.one_in(25) {
        // A chain around the depth limit.
        let n = MAX_DEPTH - 3 + rng.below(8);
        let leaf = if rng.one_in(2) { "1" } else { "[]" };
        return format!("{}{leaf}{}", "[".repeat(n), "]".repeat(n));
    }
    let container = depth < 6 && rng.one_in(3);
    if container {
        let big = rng.one_in(15);
        let n = if big {
            35 + rng.below(10)
        } else {
            rng.below(5)
        };
        if rng.one_in(2) {
            let items: Vec<String> = (0..n).map(|_| gen_value(rng, depth + 1)).collect();
            format!("[{}]", items.join(", "))
        } else {
            let items: Vec<String> = (0..n)
                .map(|i| {
                    let key = if rng.one_in(3) {
                        rhai_string(&format!("{}{i}", rng.string()))
                    } else {
                        format!("k{i}")
                    };
                    format!("{key}: {}", gen_value(rng, depth + 1))
                })
                .collect();
            format!("#{{{}}}", items.join(", "))
        }
    } else {
        match rng.below(7) {
            0 => "()".into(),
            1 => (if rng.one_in(2) { "true" } else { "false" }).into(),
            2 => rhai_int(rng.int()),
            3 | 4 => rhai_float(rng.float()),
            5 => {
                let s: String = if rng.one_in(20) {
                    "x".repeat(60 + rng.below(10))
                } else {
                    rng.string()
                };
                rhai_string(&s)
            }
            _ => {
                let c = *rng.pick(&['a', '\'', '\\', 'é', '🦀', '\n', '"']);
                match c {
                    '\'' => "'\\''".into(),
                    '\\' => "'\\\\'".into(),
                    '\n' => "'\\n'".into(),
                    c => format!("'{c}'"),
                }
            }
        }
    }
}

/// Why `v` cannot be journaled under `l`, independently of the encoder; `None`: it can.
fn oracle(v: &Dynamic, l: &ValueLimits, depth: usize, nodes: &mut usize) -> Option<String> {
    *nodes += 1;
    if *nodes > l.max_nodes {
        return Some("too many values".into());
    }
    if let Ok(f) = v.as_float() {
        return (!f.is_finite()).then(|| "non-finite".into());
    }
    if let Some(s) = v.read_lock::<ImmutableString>() {
        return (s.len() > l.max_string).then(|| "long string".into());
    }
    if let Some(a) = v.read_lock::<Array>() {
        if depth >= l.max_depth {
            return Some("deep".into());
        }
        if a.len() > l.max_array {
            return Some("long array".into());
        }
        return a.iter().find_map(|x| oracle(x, l, depth + 1, nodes));
    }
    if let Some(m) = v.read_lock::<Map>() {
        if depth >= l.max_depth {
            return Some("deep".into());
        }
        if m.len() > l.max_map {
            return Some("big map".into());
        }
        return m.values().find_map(|x| oracle(x, l, depth + 1, nodes));
    }
    let plain = v.is_unit() || v.is_bool() || v.is_int() || v.is_char();
    (!plain).then(|| format!("a {}", v.type_name()))
}

/// What a live run continues with: chars become one-character strings, nothing else changes.
fn expected(v: &Dynamic) -> Dynamic {
    if let Ok(c) = v.as_char() {
        return Dynamic::from(c.to_string());
    }
    if let Some(a) = v.read_lock::<Array>() {
        return Dynamic::from_array(a.iter().map(expected).collect());
    }
    if let Some(m) = v.read_lock::<Map>() {
        return Dynamic::from_map(m.iter().map(|(k, x)| (k.clone(), expected(x))).collect());
    }
    v.clone()
}

/// Same type and same value; floats by their bits.
fn same(a: &Dynamic, b: &Dynamic) -> bool {
    if a.type_name() != b.type_name() {
        return false;
    }
    if let (Ok(x), Ok(y)) = (a.as_float(), b.as_float()) {
        return x.to_bits() == y.to_bits();
    }
    if let (Some(x), Some(y)) = (a.read_lock::<Array>(), b.read_lock::<Array>()) {
        return x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| same(p, q));
    }
    if let (Some(x), Some(y)) = (a.read_lock::<Map>(), b.read_lock::<Map>()) {
        return x.len() == y.len()
            && x.iter()
                .all(|(k, p)| y.get(k.as_str()).is_some_and(|q| same(p, q)));
    }
    a.to_string() == b.to_string()
}

impl Checker for JournalChecker {
    fn summary(&self) -> String {
        format!(
            "{} refused, {} journaled and replayed bit for bit",
            self.seen[0], self.seen[1]
        )
    }

    fn generate(&mut self, rng: &mut Rng, corpus: &[String]) -> String {
        if !corpus.is_empty() && rng.one_in(4) {
            // Wrap a corpus value: deeper and in company.
            let base = rng.pick(corpus).trim().trim_end_matches(';').to_string();
            return format!("#{{ a: [{base}], b: {} }}", gen_value(rng, 2));
        }
        gen_value(rng, 0)
    }

    fn check(&mut self, input: &str) -> Result<(), String> {
        let v = match self.engine.eval::<Dynamic>(input) {
            Ok(v) => v,
            Err(_) => return Ok(()), // not a value (a mutated corpus entry): nothing to journal
        };
        let mut nodes = 0;
        let should_refuse = oracle(&v, &self.limits, 0, &mut nodes);
        let json = match (encode(&v, "result", &self.limits), should_refuse) {
            (Err(e), Some(_)) => {
                self.seen[0] += 1;
                let msg = e.to_string();
                if !msg.starts_with("result") || e.problem.is_empty() {
                    return Err(format!("refusal without a place: {msg}"));
                }
                return Ok(());
            }
            (Err(e), None) => return Err(format!("refused a journalable value: {e}")),
            (Ok(_), Some(why)) => return Err(format!("accepted a value that is {why}")),
            (Ok(json), None) => json,
        };
        // The live run continues with decode(encode(v)).
        let live = decode(&json).map_err(|e| format!("cannot decode what was encoded: {e}"))?;
        if !same(&live, &expected(&v)) {
            return Err(format!("live value changed: {v:?} became {live:?}"));
        }
        // A resumed run reads the sealed line back.
        let entry = Entry::StepCompleted {
            name: "s".into(),
            result: json,
            at: 0,
        };
        let prev = godwit_engine::journal::genesis_hash("fuzz");
        let (_, line) = seal(0, &prev, &entry).map_err(|e| format!("seal: {e}"))?;
        let rec = open_line(&line, 0, &prev).map_err(|e| format!("own line refused: {e}"))?;
        let Entry::StepCompleted { result, .. } = rec.entry.clone() else {
            return Err("the line read back is another entry".into());
        };
        let replayed = decode(&result).map_err(|e| format!("replay cannot decode: {e}"))?;
        self.seen[1] += 1;
        if !same(&replayed, &live) {
            return Err(format!(
                "replay differs from the live run: {live:?} vs {replayed:?}\n  line: {line}"
            ));
        }
        // Damaged copies: refused or read, never a panic; a changed entry never verifies.
        for _ in 0..4 {
            let mut bytes = line.clone().into_bytes();
            let i = self.rng.below(bytes.len());
            match self.rng.below(3) {
                0 => bytes.truncate(i),
                1 => bytes[i] = *self.rng.pick(b"[]{}\"\\0 e-9,:"),
                _ => {
                    let n = 200 + self.rng.below(6000);
                    let deep = format!("{}{}", "[".repeat(n), "]".repeat(n));
                    bytes.splice(i..i, deep.into_bytes());
                }
            }
            let damaged = String::from_utf8_lossy(&bytes).into_owned();
            if let Ok(r) = open_line(&damaged, 0, &prev)
                && damaged != line
                && serde_json::to_string(&r.entry).ok() != serde_json::to_string(&rec.entry).ok()
            {
                return Err(format!(
                    "a damaged line verified as another entry: {damaged}"
                ));
            }
        }
        Ok(())
    }
}
