//! Instance sizing (docs/fleet.md, "Instance sizing"): the Aurora writer's class against what
//! the source used at its daily peak, read by the calibration probe — `CPUUtilization` (the
//! highest five-minute average of the day) and `FreeableMemory` (its lowest).
//!
//! - **CPU**: the source's busy vCPUs at the peak (`CPUUtilization` × its vCPUs) must fit in
//!   80 % of the target's: above, the writer will not keep up at the peak after the cutover
//!   (and a replica that replays on a saturated instance falls behind before it).
//! - **Memory**: what the source used at its lowest free memory (its class's memory minus
//!   `FreeableMemory`) — its buffers, connections and the cache it relied on — must fit in the
//!   target's memory, or the working set spills to storage reads.
//! - **Oversized**: a class of the same family at most a quarter of the size also fits both
//!   with the same margins: say so, with that class.
//!
//! Classes come from `rds::class_vcpus` / `rds::class_memory_bytes` (AWS's hardware table); a
//! class they do not know, or a figure the probe could not read, is `unknown` with the reason —
//! never a guess.

use godwit_stdlib::rds::{
    aurora_class_for, aurora_postgresql_classes, class_memory_bytes, class_vcpus,
};
use serde::Serialize;
use serde_json::{Map, Value};

/// The share of the target's vCPUs the source's peak may use.
pub const CPU_HEADROOM: f64 = 0.8;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sizing {
    /// `fits`, `undersized`, `oversized` or `unknown`.
    pub verdict: String,
    pub why: String,
    pub source_class: String,
    pub target_class: Option<String>,
    /// The highest five-minute average of `CPUUtilization` over the day, percent.
    pub source_peak_cpu_percent: Option<f64>,
    /// The lowest `FreeableMemory` over the day, bytes.
    pub source_min_freeable_bytes: Option<f64>,
    /// The smallest class of the target's family that fits, when it is not the target's.
    pub suggested_class: Option<String>,
}

fn gib(bytes: f64) -> String {
    format!("{:.1} GiB", bytes / (1u64 << 30) as f64)
}

/// The extreme of a probe series (`[{t, v}]`): `max` or min.
fn extreme(series: &Value, max: bool) -> Option<f64> {
    let vs = series.as_array()?.iter().filter_map(|p| p["v"].as_f64());
    if max {
        vs.reduce(f64::max)
    } else {
        vs.reduce(f64::min)
    }
}

/// What fits: busy vCPUs within 80 % of the class's and the used memory within its memory.
fn fits(class: &str, busy_vcpus: f64, used_memory: f64) -> Option<bool> {
    let vcpus = f64::from(class_vcpus(class)?);
    let memory = class_memory_bytes(class)? as f64;
    Some(busy_vcpus <= CPU_HEADROOM * vcpus && used_memory <= memory)
}

/// The smallest Aurora class of `target`'s family (`db.r6g`) that fits.
fn smallest_fitting(target: &str, busy_vcpus: f64, used_memory: f64) -> Option<String> {
    let family = target.rsplit_once('.')?.0;
    let mut same: Vec<String> = aurora_postgresql_classes()
        .into_iter()
        .filter(|c| c.rsplit_once('.').is_some_and(|(f, _)| f == family))
        .collect();
    same.sort_by_key(|c| {
        (
            class_vcpus(c).unwrap_or(u32::MAX),
            class_memory_bytes(c).unwrap_or(u64::MAX),
        )
    });
    same.into_iter()
        .find(|c| fits(c, busy_vcpus, used_memory) == Some(true))
}

/// Judge the target class for the probe's figures (`probe`: the probe step's result) and the
/// run's parameters (`target_instance_class`, else the class the runbook would choose).
pub fn judge(probe: &Value, params: &Map<String, Value>) -> Sizing {
    let source_class = probe["source"]["instance_class"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let target_class = params
        .get("target_instance_class")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| aurora_class_for(&source_class, &aurora_postgresql_classes()));
    let peak = extreme(&probe["cpu"], true);
    let freeable = extreme(&probe["freeable_memory"], false);
    let mut s = Sizing {
        verdict: "unknown".into(),
        why: String::new(),
        source_class: source_class.clone(),
        target_class: target_class.clone(),
        source_peak_cpu_percent: peak,
        source_min_freeable_bytes: freeable,
        suggested_class: None,
    };
    let Some(target) = target_class else {
        s.why = format!("no Aurora class for {source_class:?}: set target_instance_class");
        return s;
    };
    let (Some(src_vcpus), Some(src_memory)) = (
        class_vcpus(&source_class),
        class_memory_bytes(&source_class),
    ) else {
        s.why = format!(
            "the source's class {source_class:?} is not in the hardware table: sizing not judged"
        );
        return s;
    };
    let (Some(t_vcpus), Some(t_memory)) = (class_vcpus(&target), class_memory_bytes(&target))
    else {
        s.why = format!(
            "the target's class {target:?} is not in the hardware table: sizing not judged"
        );
        return s;
    };
    let (Some(peak), Some(freeable)) = (peak, freeable) else {
        let missing: Vec<&str> = [
            ("CPUUtilization", peak.is_none()),
            ("FreeableMemory", freeable.is_none()),
        ]
        .into_iter()
        .filter_map(|(n, m)| m.then_some(n))
        .collect();
        s.why = format!(
            "no {} datapoint in the last day: sizing not judged",
            missing.join(" or ")
        );
        return s;
    };
    // Over how much history: a new instance (or the simulator's two hours) has no day yet.
    let span = |series: &Value| -> String {
        let ts: Vec<i64> = series
            .as_array()
            .map(|a| a.iter().filter_map(|p| p["t"].as_i64()).collect())
            .unwrap_or_default();
        let (n, first, last) = (ts.len(), ts.iter().min(), ts.iter().max());
        match (first, last) {
            (Some(a), Some(b)) => format!(
                "{n} datapoints over {}",
                godwit_stdlib::lag::fmt::fmt_duration((b - a) as f64)
            ),
            _ => "no datapoints".into(),
        }
    };
    let busy = peak / 100.0 * f64::from(src_vcpus);
    let used = (src_memory as f64 - freeable).max(0.0);
    let load = format!(
        "the source ({source_class}, {src_vcpus} vCPU, {}) peaks at {peak:.0} % CPU ({busy:.1} vCPU busy; {}) and uses {} (its lowest FreeableMemory {})",
        gib(src_memory as f64),
        span(&probe["cpu"]),
        gib(used),
        gib(freeable)
    );
    let target_says = format!("{target} ({t_vcpus} vCPU, {})", gib(t_memory as f64));
    if busy > CPU_HEADROOM * f64::from(t_vcpus) {
        s.verdict = "undersized".into();
        s.suggested_class = smallest_fitting(&target, busy, used);
        s.why = format!(
            "{target_says} is too small: {load}, more than {:.0} % of its vCPUs — the writer will not keep up at the peak{}",
            CPU_HEADROOM * 100.0,
            s.suggested_class
                .as_ref()
                .map(|c| format!("; {c} fits"))
                .unwrap_or_default()
        );
    } else if used > t_memory as f64 {
        s.verdict = "undersized".into();
        s.suggested_class = smallest_fitting(&target, busy, used);
        s.why = format!(
            "{target_says} is too small: {load}, more memory than it has — its working set will spill to storage reads{}",
            s.suggested_class
                .as_ref()
                .map(|c| format!("; {c} fits"))
                .unwrap_or_default()
        );
    } else {
        let smaller = smallest_fitting(&target, busy, used);
        match smaller.as_deref().and_then(|c| Some((c, class_vcpus(c)?))) {
            Some((c, v)) if v * 4 <= t_vcpus => {
                s.verdict = "oversized".into();
                s.why = format!(
                    "{target_says} is oversized: {load}; {c} ({v} vCPU) would fit with the same margins"
                );
                s.suggested_class = Some(c.to_string());
            }
            _ => {
                s.verdict = "fits".into();
                s.why = format!("{target_says} fits: {load}");
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn probe(class: &str, cpu: &[f64], freeable_gib: &[f64]) -> Value {
        json!({
            "source": { "instance_class": class },
            "cpu": cpu.iter().enumerate().map(|(i, v)| json!({"t": i, "v": v})).collect::<Vec<_>>(),
            "freeable_memory": freeable_gib.iter().enumerate()
                .map(|(i, v)| json!({"t": i, "v": v * (1u64 << 30) as f64})).collect::<Vec<_>>(),
        })
    }

    fn with_target(class: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("target_instance_class".into(), class.into());
        m
    }

    #[test]
    fn the_source_class_on_aurora_fits_a_source_that_is_half_busy() {
        // db.r6g.2xlarge: 8 vCPU, 64 GiB; 50 % at peak = 4 vCPU; 40 GiB used.
        let s = judge(
            &probe("db.r6g.2xlarge", &[20.0, 50.0, 35.0], &[30.0, 24.0]),
            &Map::new(),
        );
        assert_eq!(s.verdict, "fits", "{}", s.why);
        assert_eq!(s.target_class.as_deref(), Some("db.r6g.2xlarge"));
        assert!(
            s.why
                .contains("50 % CPU (4.0 vCPU busy; 3 datapoints over 2 s)")
                && s.why.contains("40.0 GiB"),
            "{}",
            s.why
        );
    }

    #[test]
    fn a_smaller_target_that_the_peak_would_saturate_is_undersized_with_the_class_that_fits() {
        // 8 vCPU at 70 % = 5.6 busy; db.r6g.xlarge has 4 (80 %: 3.2).
        let s = judge(
            &probe("db.m6g.2xlarge", &[70.0], &[20.0]),
            &with_target("db.r6g.xlarge"),
        );
        assert_eq!(s.verdict, "undersized", "{}", s.why);
        assert!(s.why.contains("will not keep up at the peak"), "{}", s.why);
        assert_eq!(s.suggested_class.as_deref(), Some("db.r6g.2xlarge"));
        // Memory: 64 GiB source with 4 GiB free uses 60 GiB; db.r6g.xlarge has 32.
        let s = judge(
            &probe("db.r6g.2xlarge", &[10.0], &[4.0]),
            &with_target("db.r6g.xlarge"),
        );
        assert_eq!(s.verdict, "undersized", "{}", s.why);
        assert!(s.why.contains("spill to storage reads"), "{}", s.why);
    }

    #[test]
    fn a_target_four_times_what_fits_is_oversized() {
        // 16 vCPU at 5 % = 0.8 busy, 10 GiB used: db.r6g.large (2 vCPU, 16 GiB) fits.
        let s = judge(&probe("db.r6g.4xlarge", &[5.0], &[118.0]), &Map::new());
        assert_eq!(s.verdict, "oversized", "{}", s.why);
        assert_eq!(s.suggested_class.as_deref(), Some("db.r6g.large"));
    }

    #[test]
    fn a_figure_the_probe_could_not_read_is_not_judged() {
        let s = judge(&probe("db.r6g.large", &[], &[8.0]), &Map::new());
        assert_eq!(s.verdict, "unknown");
        assert!(s.why.contains("no CPUUtilization datapoint"), "{}", s.why);
        let s = judge(
            &probe("db.z9.large", &[10.0], &[8.0]),
            &with_target("db.r6g.large"),
        );
        assert_eq!(s.verdict, "unknown");
        assert!(s.why.contains("not in the hardware table"), "{}", s.why);
    }
}
