//! `godwit report RUN`: the run page written from a run's journal and transcript, for a run
//! that succeeded and one that rolled back after its validation at the fence found a difference.

use std::path::Path;

const TOY: &str = env!("CARGO_BIN_EXE_godwit-toy");

fn godwit(dir: &Path, args: &[&str]) -> (i32, String, String) {
    godwit_tests::harness::cli_in(TOY, dir, args)
}

fn runbook() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../runbooks/rds-to-aurora.rhai")
        .display()
        .to_string()
}

/// The lines of the SVG that are exactly `text` (plotters writes a text's content on its own
/// line).
fn texts(svg: &str, text: &str) -> usize {
    svg.lines().filter(|l| l.trim() == text).count()
}

#[test]
fn a_succeeded_run_has_its_timeline_blackout_chart_and_verified_journal() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = godwit(
        dir.path(),
        &[
            "run",
            &runbook(),
            "--cluster",
            "orders-db",
            "--world",
            "sim",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = godwit(
        dir.path(),
        &["report", "last", "--out", "page.html", "--svg", "lag.svg"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("written to page.html, its lag chart to lag.svg"),
        "{out}"
    );
    let page = std::fs::read_to_string(dir.path().join("page.html")).unwrap();
    let svg = std::fs::read_to_string(dir.path().join("lag.svg")).unwrap();
    // Self-contained: nothing to fetch.
    assert!(
        !page.contains("src=\"http") && !page.contains("href=\"http"),
        "no external resource"
    );
    assert!(page.contains("<svg"), "the chart is inline");
    for phase in [
        "preflight",
        "validation under production traffic",
        "promotion",
        "route switch",
    ] {
        assert!(
            page.contains(&format!("<td>{phase}</td>")),
            "phase {phase} on the timeline"
        );
    }
    // The demo's blackout: 6 min 1 s, sessions terminated → every Envoy node on Aurora.
    assert!(
        page.contains("application sessions terminated"),
        "the blackout's start"
    );
    assert!(page.contains("every Envoy node on Aurora"));
    assert!(page.contains("hash chain verified"));
    assert!(
        page.contains("cloudwatch-keeps-up"),
        "the validate gate's evidence kind"
    );
    assert!(
        page.contains("rolled back</th><td id=\"rolled-back\">nothing"),
        "nothing rolled back"
    );
    // The chart: the three series the gates read, the fence, the promotion and the switch.
    for title in [
        "slot lag (OldestReplicationSlotLag)",
        "replica lag (RDSToAuroraPostgreSQLReplicaLag)",
        "WAL generation (TransactionLogsGeneration)",
    ] {
        assert!(svg.contains(title), "{title}");
    }
    for marker in ["fence", "promotion", "route switch"] {
        assert_eq!(texts(&svg, marker), 3, "{marker} on every panel");
    }
    assert!(
        texts(&svg, "orders-db-aurora") >= 1,
        "the replica's own series is named"
    );

    // `-o json` says what was written; `--out -` writes the page to stdout.
    let (code, out, _) = godwit(dir.path(), &["report", "last", "--out", "-"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("<!DOCTYPE html>"), "{}", &out[..40]);
}

#[test]
fn a_rolled_back_run_says_why_and_what_was_undone() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, _) = godwit(
        dir.path(),
        &[
            "run",
            &runbook(),
            "--cluster",
            "orders-db",
            "--world",
            "sim:data-divergence",
            // The comparison at the fence, so the run rolls back a fence and a hold (the
            // default pre-fence pass finds the row before either).
            "--set",
            "fence_validation=full",
            // The audit would find the row in the validation window, before the fence.
            "--set",
            "audit_rows=0",
        ],
    );
    assert_ne!(code, 0);
    let (code, out, err) = godwit(dir.path(), &["report", "last", "-o", "json"]);
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let file = dir.path().join(v["report"].as_str().unwrap());
    let page = std::fs::read_to_string(file).unwrap();
    assert!(page.contains("badge bad\">rolled back"), "the outcome");
    assert!(
        page.contains("validation at the fence: DIFFERENT"),
        "why it aborted"
    );
    for undone in [
        "fence — undone",
        "hold — undone",
        "create-replica-cluster — undone",
    ] {
        assert!(page.contains(undone), "{undone}");
    }
    assert!(
        page.contains("the rollback reopened the source"),
        "the blackout ended by the undo"
    );
}

#[test]
fn bad_input_changes_nothing_and_names_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = godwit(dir.path(), &["report", "no-such-run"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no-such-run"), "{err}");
    godwit(
        dir.path(),
        &[
            "run",
            &runbook(),
            "--cluster",
            "orders-db",
            "--world",
            "sim",
        ],
    );
    let (code, _, err) = godwit(
        dir.path(),
        &["report", "last", "--out", "/nonexistent/dir/x.html"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("cannot write /nonexistent/dir/x.html") && err.contains("--out"),
        "{err}"
    );
}
