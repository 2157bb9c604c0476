//! Pretty-printing REPL results: maps as aligned tables, metric series as a sparkline with
//! min/max/last, arrays of similar maps as tables, everything else as JSON.

use rhai::{Array, Dynamic, Map};
use serde_json::Value;

const SPARKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

fn json(v: &Dynamic) -> Value {
    serde_json::to_value(v).unwrap_or_else(|_| Value::String(v.to_string()))
}

fn scalar(v: &Dynamic) -> String {
    if v.is_string() {
        return v.to_string();
    }
    if v.is_unit() {
        return "()".into();
    }
    json(v).to_string()
}

/// `[#{ t, v }, ...]` with numeric `t` and `v` (gaps allowed: `v` may be `()`).
fn as_series(a: &Array) -> Option<Vec<(i64, Option<f64>)>> {
    if a.len() < 2 {
        return None;
    }
    a.iter()
        .map(|p| {
            let m = p.read_lock::<Map>()?;
            if m.len() != 2 {
                return None;
            }
            let t = m.get("t")?.as_int().ok()?;
            let v = m.get("v")?;
            let v = if v.is_unit() {
                None
            } else {
                Some(
                    v.as_int()
                        .map(|i| i as f64)
                        .or_else(|_| v.as_float())
                        .ok()?,
                )
            };
            Some((t, v))
        })
        .collect()
}

pub fn sparkline(points: &[(i64, Option<f64>)]) -> String {
    let vals: Vec<f64> = points.iter().filter_map(|p| p.1).collect();
    let (min, max) = vals
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(*v), hi.max(*v))
        });
    // At most 60 columns: each column shows the maximum of its bucket (spikes stay visible).
    let width = points.len().min(60);
    let mut line = String::new();
    for col in 0..width {
        let lo = col * points.len() / width;
        let hi = ((col + 1) * points.len() / width).max(lo + 1);
        let bucket: Vec<f64> = points[lo..hi].iter().filter_map(|p| p.1).collect();
        line.push(
            match bucket
                .iter()
                .cloned()
                .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
            {
                None => ' ',
                Some(v) if max > min => SPARKS[(((v - min) / (max - min)) * 7.0).round() as usize],
                Some(_) => SPARKS[0],
            },
        );
    }
    let gaps = points.len() - vals.len();
    let last = points.iter().rev().find_map(|p| p.1);
    let t0 = godwit_engine::clock::format_timestamp(points[0].0 * 1000);
    let t1 = godwit_engine::clock::format_timestamp(points[points.len() - 1].0 * 1000);
    format!(
        "{line}\n{} points{} · min {} · max {} · last {} · {t0} → {t1}",
        points.len(),
        if gaps > 0 {
            format!(" ({gaps} gaps)")
        } else {
            String::new()
        },
        num(min),
        num(max),
        last.map_or("()".into(), num)
    )
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.3}")
    }
}

fn table(rows: &[Map]) -> Option<String> {
    let keys: Vec<String> = rows.first()?.keys().map(|k| k.to_string()).collect();
    if keys.is_empty()
        || keys.len() > 8
        || rows
            .iter()
            .any(|r| r.len() != keys.len() || keys.iter().any(|k| !r.contains_key(k.as_str())))
    {
        return None;
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| keys.iter().map(|k| scalar(&r[k.as_str()])).collect())
        .collect();
    let widths: Vec<usize> = (0..keys.len())
        .map(|i| {
            cells
                .iter()
                .map(|c| c[i].chars().count())
                .chain([keys[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let fmt_row = |vals: Vec<&str>| {
        vals.iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![fmt_row(keys.iter().map(String::as_str).collect())];
    out.extend(
        cells
            .iter()
            .map(|c| fmt_row(c.iter().map(String::as_str).collect())),
    );
    Some(out.join("\n"))
}

/// Render a result for the terminal. `()` renders as nothing.
pub fn pretty(v: &Dynamic) -> String {
    if v.is_unit() {
        return String::new();
    }
    if let Some(a) = v.read_lock::<Array>() {
        if let Some(points) = as_series(&a) {
            return sparkline(&points);
        }
        let maps: Option<Vec<Map>> = a
            .iter()
            .map(|x| x.read_lock::<Map>().map(|m| m.clone()))
            .collect();
        if let Some(t) = maps.filter(|m| !m.is_empty()).and_then(|m| table(&m)) {
            return t;
        }
        return serde_json::to_string_pretty(&json(v)).unwrap_or_default();
    }
    if let Some(m) = v.read_lock::<Map>() {
        if m.is_empty() {
            return "#{}".into();
        }
        let width = m.keys().map(|k| k.len()).max().unwrap_or(0);
        return m
            .iter()
            .map(|(k, val)| {
                let text = match val.read_lock::<Array>().and_then(|a| as_series(&a)) {
                    Some(points) => sparkline(&points).replace('\n', &format!("\n{:width$}  ", "")),
                    None => scalar(val),
                };
                format!("{k:<width$}  {text}")
            })
            .collect::<Vec<_>>()
            .join("\n");
    }
    scalar(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(vals: &[Option<i64>]) -> Dynamic {
        let a: Array = vals
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let mut m = Map::new();
                m.insert("t".into(), Dynamic::from(1_767_225_600 + i as i64 * 60));
                m.insert("v".into(), v.map_or(Dynamic::UNIT, Dynamic::from));
                Dynamic::from_map(m)
            })
            .collect();
        Dynamic::from_array(a)
    }

    #[test]
    fn series_render_as_sparkline_with_gaps_and_stats() {
        let out = pretty(&series(&[Some(0), Some(64), None, Some(32), Some(0)]));
        let mut lines = out.lines();
        assert_eq!(lines.next().unwrap(), "▁█ ▅▁");
        assert_eq!(
            lines.next().unwrap(),
            "5 points (1 gaps) · min 0 · max 64 · last 0 · 2026-01-01T00:00:00Z → 2026-01-01T00:04:00Z"
        );
    }

    #[test]
    fn maps_align_and_arrays_of_maps_tabulate() {
        let mut m = Map::new();
        m.insert("verdict".into(), "idle-oscillation".into());
        m.insert("pass".into(), true.into());
        assert_eq!(
            pretty(&Dynamic::from_map(m.clone())),
            "pass     true\nverdict  idle-oscillation"
        );
        let rows = Dynamic::from_array(vec![Dynamic::from_map(m.clone()), Dynamic::from_map(m)]);
        assert_eq!(
            pretty(&rows),
            "pass  verdict\ntrue  idle-oscillation\ntrue  idle-oscillation"
        );
        assert_eq!(pretty(&Dynamic::UNIT), "");
        assert_eq!(pretty(&Dynamic::from("text")), "text");
    }
}
