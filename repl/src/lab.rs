//! The `lab` world (`--world lab[:DIR]`) and `godwit demo --world lab`; the `godwit lab`
//! command is `cmd/lab.rs`. A lab lives in `<tmp>/godwit-lab-<uid>` unless `--dir` (or `lab:DIR`)
//! names another.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use godwit_engine::exit;
use godwit_engine::journal::file::FileStore;
use godwit_engine::transcript::Collector;
use godwit_lab::cutover::{self, Cutover};
use godwit_lab::{LabOptions, Supervisor};

use crate::render::HumanSink;
use crate::session::{Failure, runtime};
use crate::worlds::WorldDef;

/// `<tmp>/godwit-lab-<uid>`: a lab is throwaway, and its servers run as another OS user when
/// godwit runs as root, which could not enter a state directory under root's home (0700). Not
/// under the state directory on purpose: every process of one user finds the same lab.
pub fn default_dir() -> PathBuf {
    std::env::temp_dir().join(format!("godwit-lab-{}", godwit_lab::pgproc::current_uid()))
}

/// The `lab` world.
pub fn world_def() -> WorldDef {
    let default = default_dir();
    WorldDef {
        name: "lab".into(),
        about: format!(
            "real PostgreSQL servers and a real Envoy on this machine (`godwit lab up` first); lab:DIR for a lab elsewhere; default {}",
            default.display()
        ),
        make: Arc::new(move |arg, _state| {
            let dir = if arg.is_empty() {
                default.clone()
            } else {
                PathBuf::from(arg)
            };
            let mut w =
                godwit_lab::supervisor::world_standalone(&dir).map_err(|e| e.to_string())?;
            w.name = if arg.is_empty() {
                "lab".into()
            } else {
                format!("lab:{arg}")
            };
            Ok(w)
        }),
    }
}

/// A lab error as a command failure: missing prerequisites or a bad lab directory are the
/// operator's to fix (exit 2), anything else is internal.
pub(crate) fn lab_failure(e: godwit_lab::LabError) -> Failure {
    let code = match e {
        godwit_lab::LabError::Prerequisite(_) | godwit_lab::LabError::State(_) => {
            exit::INVALID_INPUT
        }
        _ => exit::INTERNAL,
    };
    Failure(code, e.to_string())
}

/// `godwit demo --world lab`: a throwaway lab, the standard runbook under a write load through
/// Envoy, the usual summary plus what the clients measured.
pub fn demo(verbose: bool) -> Result<i32, Failure> {
    // The system's temporary directory ($TMPDIR), where a server running as another OS user can
    // enter (see default_dir).
    let tmp = tempfile::Builder::new()
        .prefix("godwit-demo-")
        .tempdir_in(std::env::temp_dir())
        .map_err(|e| Failure(exit::INTERNAL, format!("demo: {e}")))?;
    let runbook = crate::demo::write_standard_runbook(tmp.path())?;
    crate::out::line(
        "godwit demo · runbook rds-to-aurora · world lab: real PostgreSQL servers and a real Envoy on this machine, 4 clients writing through Envoy the whole time",
    );
    crate::out::line(
        "(starting the lab: a source server with 10,000 orders, Envoy, the control plane, a CDC consumer …)\n",
    );
    let rt = runtime()?;
    let code = rt.block_on(async {
        let sup = Supervisor::up(LabOptions::new(tmp.path().join("lab")))
            .await
            .map_err(lab_failure)?;
        let store = Arc::new(FileStore::new(tmp.path().join("state/runs")));
        let collector = Collector::new();
        let started = std::time::Instant::now();
        let result = cutover::run(
            &sup,
            Cutover {
                runbook,
                params: cutover::lab_params(),
                store,
                clients: 4,
                pace: Duration::from_millis(5),
                warmup: Duration::from_millis(500),
                workload: godwit_lab::workload::Kind::Insert,
                sinks: vec![
                    Arc::new(HumanSink::new(verbose)),
                    Arc::new(collector.clone()),
                ],
            },
        )
        .await;
        let wall = started.elapsed();
        sup.down().await;
        let out = result.map_err(lab_failure)?;
        let report = out
            .report
            .as_ref()
            .ok_or_else(|| Failure(exit::INTERNAL, "no run report".into()))?;
        crate::out::line(format!(
            "\n{}",
            crate::demo::summary(&collector.lines(), &report.status, wall, "wall-clock time")
        ));
        crate::out::line(measured(&out));
        Ok::<_, Failure>(report.status.exit_code())
    })?;
    Ok(code)
}

/// The figures the clients measured, as the demo prints them.
pub fn measured(out: &cutover::Outcome) -> String {
    measured_report(&out.workload, &out.phases)
}

/// [`measured`] from a workload's report and the blackout's parts (none: not printed); also
/// what `godwit lab up --workload` prints at `lab down`.
pub fn measured_report(w: &godwit_lab::workload::Report, phases: &[(String, i64)]) -> String {
    let mut lines = vec![format!(
        "── measured by {} clients writing through Envoy ──",
        w.clients
    )];
    lines.push(format!(
        "  write blackout {:.0} ms (longest gap between acknowledged commits)",
        w.blackout_ms
    ));
    lines.push(format!(
        "  failed client attempts {} ({} connection errors){}",
        w.failed_attempts,
        w.connect_errors,
        if w.errors.is_empty() {
            String::new()
        } else {
            format!(
                ": {}",
                w.errors
                    .iter()
                    .map(|(k, v)| format!("{v}× {k}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        }
    ));
    lines.push(format!(
        "  lost commits {} of {} acknowledged{}",
        w.lost.map_or("unchecked".to_string(), |l| l.to_string()),
        w.acked,
        w.acked_after_switch
            .map(|n| format!("; {n} acknowledged after the switch, found on the target"))
            .unwrap_or_default()
    ));
    if !phases.is_empty() {
        lines.push(format!(
            "  blackout parts: {}",
            phases
                .iter()
                .map(|(n, ms)| format!("{n} {ms} ms"))
                .collect::<Vec<_>>()
                .join(" · ")
        ));
    }
    lines.join("\n")
}
