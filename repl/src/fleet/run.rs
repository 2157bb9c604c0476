//! `godwit fleet run`'s side of the fleet: a resolved [`Fleet`] as waves of jobs for the shared
//! store ([`fleet_def`]), and the words `fleet run`, `fleet status` and workers print about it.
//! The wave rules themselves — canaries, runs in flight, failures, stops — are the store's
//! (`godwit_pgstore::fleet`), so that every worker applies the same ones.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use godwit_pgstore::{FleetDef, FleetEvent, FleetStatus, Job, WaveDef};
use serde_json::Value;

use super::{Fleet, FleetCluster};

/// The wave a fleet without `[[waves]]` runs as: every cluster, one at a time, stopping at
/// the first failure — the careful default; a fleet file says otherwise.
pub const DEFAULT_WAVE: &str = "all";

/// The runbook name a worker resolves to the standard runbook embedded in its own binary when
/// its working directory has none (config::find_runbook, then the embedded copy).
pub const STANDARD: &str = "rds-to-aurora";

/// `fleet` as the store's fleet: its waves in order, each member's job (its runbook, world,
/// parameters, world settings). `world` is `--world`, for clusters without their own world.
/// Also returns the clusters in no wave (they are not run).
pub fn fleet_def(
    fleet: &Fleet,
    name: &str,
    world: &str,
    settings: Option<&Value>,
) -> (FleetDef, Vec<String>) {
    let job = |c: &FleetCluster| Job {
        run_id: String::new(),
        cluster: c.id.clone(),
        runbook: runbook_for_job(fleet, c),
        world: c.world.clone().unwrap_or_else(|| world.to_string()),
        params: c.params.clone(),
        settings: if c.world.is_some() {
            None
        } else {
            settings.cloned()
        },
        notify: crate::notify::targets_for(&fleet.notify, Some(&c.owner)),
        owner: Some(c.owner.clone()),
        fleet: Some(name.to_string()),
    };
    let by_id = |id: &str| fleet.clusters.iter().find(|c| c.id == id);
    let waves: Vec<WaveDef> = if fleet.waves.is_empty() {
        vec![WaveDef {
            name: DEFAULT_WAVE.into(),
            canaries: 0,
            max_in_flight: 1,
            max_failures: 0,
            approve_after_canaries: false,
            members: fleet.clusters.iter().map(job).collect(),
        }]
    } else {
        fleet
            .waves
            .iter()
            .map(|w| WaveDef {
                name: w.name.clone(),
                canaries: w.canaries,
                max_in_flight: w.max_in_flight,
                max_failures: w.max_failures,
                approve_after_canaries: w.approve_after_canaries,
                members: w
                    .clusters
                    .iter()
                    .filter_map(|id| by_id(id))
                    .map(job)
                    .collect(),
            })
            .collect()
    };
    let in_waves: BTreeSet<&str> = waves
        .iter()
        .flat_map(|w| w.members.iter().map(|j| j.cluster.as_str()))
        .collect();
    let left_out = fleet
        .clusters
        .iter()
        .filter(|c| !in_waves.contains(c.id.as_str()))
        .map(|c| c.id.clone())
        .collect();
    (
        FleetDef {
            name: name.to_string(),
            origin: fleet.origin.clone(),
            waves,
            // The fleet's own SNS targets publish with the fleet's aws settings (region,
            // profile, endpoint), as its runs' do with theirs.
            notify: crate::notify::targets_for(&fleet.notify, None)
                .into_iter()
                .map(|mut t| {
                    if t.kind == "sns" {
                        t.aws = settings.map(crate::notify::sns_settings);
                    }
                    t
                })
                .collect(),
        },
        left_out,
    )
}

/// The runbook as a worker will resolve it: the standard runbook by name when the fleet took
/// it from this binary (its temporary copy would not exist on the worker), else the file.
pub(crate) fn runbook_for_job(fleet: &Fleet, c: &FleetCluster) -> String {
    let embedded = fleet
        ._embedded
        .as_ref()
        .is_some_and(|d| c.runbook_path.starts_with(d.path()));
    if embedded {
        STANDARD.to_string()
    } else {
        c.runbook_path.display().to_string()
    }
}

/// One line for an event of an advance or an action.
pub fn event_line(e: &FleetEvent) -> String {
    let whom = match (&e.wave, &e.cluster) {
        (Some(w), Some(c)) => format!("{w} · {c}"),
        (Some(w), None) => format!("wave {w}"),
        _ => String::new(),
    };
    let what = match e.what.as_str() {
        "queued" => "queued".to_string(),
        "canaries" => "started: canaries first".to_string(),
        "running" => "running".to_string(),
        "awaiting-approval" => "waits for an approval: `godwit fleet approve WAVE`".to_string(),
        "stopped" => "STOPPED".to_string(),
        "done" => "done".to_string(),
        other => other.replace('-', " "),
    };
    let detail = e
        .detail
        .as_ref()
        .map(|d| format!(" — {d}"))
        .unwrap_or_default();
    if whom.is_empty() {
        format!("fleet {}: {what}{detail}", e.fleet)
    } else {
        format!("fleet {} · {whom}: {what}{detail}", e.fleet)
    }
}

/// What changed between two looks at a fleet, as events: a fleet that workers advance is
/// followed by what its rows say, not by the follower's own advances.
pub fn changes(before: &FleetStatus, now: &FleetStatus) -> Vec<FleetEvent> {
    let mut out = Vec::new();
    let ev = |wave: Option<&str>, cluster: Option<&str>, what: &str, detail: Option<String>| {
        FleetEvent {
            fleet: now.fleet.clone(),
            wave: wave.map(str::to_string),
            cluster: cluster.map(str::to_string),
            what: what.to_string(),
            detail,
        }
    };
    for w in &now.waves {
        let old = before.waves.iter().find(|o| o.wave == w.wave);
        for m in &w.members {
            let was = old.and_then(|o| o.members.iter().find(|x| x.cluster == m.cluster));
            if was.is_some_and(|x| x.state == m.state) || m.state == "pending" {
                continue;
            }
            let detail = match m.state.as_str() {
                "queued" => m.run_id.clone(),
                _ => m.note.clone(),
            };
            out.push(ev(Some(&w.wave), Some(&m.cluster), &m.state, detail));
        }
        if old.is_none_or(|o| o.state != w.state) && w.state != "pending" {
            let detail = match w.state.as_str() {
                "canaries" => Some(format!("{} canaries first", w.canaries)),
                "done" => Some(counts_line(w)),
                _ => w.note.clone(),
            };
            out.push(ev(Some(&w.wave), None, &w.state, detail));
        }
    }
    if before.state != now.state {
        out.push(ev(
            None,
            None,
            &format!("fleet-{}", now.state),
            now.note.clone(),
        ));
    }
    out
}

/// The counts of a wave in a fixed order, for people: `3 succeeded · 1 rolled-back · 2 in flight`.
fn counts_line(w: &godwit_pgstore::fleet::WaveStatus) -> String {
    let order = [
        ("succeeded", "succeeded"),
        ("queued", "in flight"),
        ("pending", "pending"),
        ("rolled-back", "rolled back"),
        ("held", "held"),
        ("aborted", "aborted"),
        ("skipped", "skipped"),
    ];
    order
        .iter()
        .filter_map(|(k, word)| {
            w.counts
                .get(*k)
                .filter(|n| **n > 0)
                .map(|n| format!("{n} {word}"))
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

/// `fleet status` for people: the fleet, each wave with its policy and counts, and the members
/// that need attention (failed, held) with why.
pub fn status_text(st: &FleetStatus) -> String {
    let mut out = format!(
        "fleet {} · {} · {}{}\n",
        st.fleet,
        st.state,
        st.origin,
        st.note
            .as_ref()
            .map(|n| format!("\n  {n}"))
            .unwrap_or_default()
    );
    let mut table = comfy_table::Table::new();
    table.load_style(comfy_table::presets::NOTHING);
    table.set_header(["wave", "state", "clusters", "policy", "progress"]);
    for w in &st.waves {
        let total: i64 = w.counts.values().sum();
        table.add_row([
            w.wave.clone(),
            w.state.clone(),
            total.to_string(),
            format!(
                "{} canar{}, {} at once, stop past {} failure{}{}",
                w.canaries,
                if w.canaries == 1 { "y" } else { "ies" },
                w.max_in_flight,
                w.max_failures,
                if w.max_failures == 1 { "" } else { "s" },
                if w.approve_after_canaries {
                    ", approval after the canaries"
                } else {
                    ""
                }
            ),
            counts_line(w),
        ]);
    }
    let _ = writeln!(out, "{table}");
    for w in &st.waves {
        if let Some(n) = &w.note {
            let _ = writeln!(out, "  {}: {n}", w.wave);
        }
        for m in w
            .members
            .iter()
            .filter(|m| godwit_pgstore::fleet::FAILED.contains(&m.state.as_str()))
        {
            let _ = writeln!(
                out,
                "  {} · {} {}{}{}",
                w.wave,
                m.cluster,
                m.state,
                m.run_id
                    .as_ref()
                    .map(|r| format!(" (run {r})"))
                    .unwrap_or_default(),
                m.note
                    .as_ref()
                    .map(|n| format!(": {}", n.chars().take(200).collect::<String>()))
                    .unwrap_or_default()
            );
        }
    }
    out
}

/// Whether following a fleet can end: it finished, stopped, or waits for a person.
pub fn needs_nobody_else(st: &FleetStatus) -> Option<&'static str> {
    match st.state.as_str() {
        "done" => Some("done"),
        "aborted" if st.waves.iter().all(|w| !w.counts.contains_key("queued")) => Some("aborted"),
        "stopped" => Some("stopped"),
        "paused" => Some("paused"),
        _ if st.waves.iter().any(|w| w.state == "awaiting-approval") => Some("awaiting-approval"),
        _ => None,
    }
}
