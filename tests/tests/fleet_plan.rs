//! Issue 20, `godwit fleet plan`: the command driven as a separate process, as a platform team
//! would. The generated 400-cluster simulated fleet is planned once (shared by the tests below)
//! and checked against what the generator planted: every broken cluster is blocked by the check
//! that refuses its problem, with that check's fix, and no healthy cluster is blocked. Bad fleet
//! files are refused before anything runs, each problem named with its place and its fix.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use godwit_stdlib::sim::fleet::{
    Flaw, GENERATED_FLEET_SEED, GENERATED_FLEET_SIZE, generated_fleet,
};
use serde_json::Value;

const TOY: &str = env!("CARGO_BIN_EXE_godwit-toy");

fn runbooks_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks")
}

/// Run the CLI in `dir` (no ./runbooks there: the embedded standard runbook is used unless a
/// fleet file names a path).
fn godwit(dir: &Path, args: &[&str]) -> (i32, String, String) {
    godwit_tests::harness::cli_in(TOY, dir, args)
}

/// The generated fleet's plan, made once: (exit code, `-o json` verdicts, the Markdown report).
fn generated_plan() -> &'static (i32, Vec<Value>, String) {
    static PLAN: OnceLock<(i32, Vec<Value>, String)> = OnceLock::new();
    PLAN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let report = dir.path().join("plan.md");
        let (code, stdout, stderr) = godwit(
            dir.path(),
            &[
                "fleet",
                "plan",
                "--world",
                "sim",
                "-o",
                "json",
                "--report",
                report.to_str().unwrap(),
            ],
        );
        let verdicts: Vec<Value> = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("not one JSON array ({e}): {stdout}\n{stderr}"));
        let md = std::fs::read_to_string(&report).unwrap();
        // The probe and prediction runbooks are written to a temporary directory once per
        // process; it must be gone when the command is (it once stayed, one per plan).
        let left: Vec<_> = std::fs::read_dir(godwit_tests::harness::tmp_in(dir.path()))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "fleet plan left {left:?} in its TMPDIR");
        (code, verdicts, md)
    })
}

fn verdict<'a>(verdicts: &'a [Value], cluster: &str) -> &'a Value {
    verdicts
        .iter()
        .find(|v| v["cluster"] == cluster)
        .unwrap_or_else(|| panic!("no verdict for {cluster}"))
}

#[test]
fn the_generated_fleet_plan_names_every_blocked_cluster_with_its_fix() {
    let (code, verdicts, _) = generated_plan();
    assert_eq!(*code, 10, "not every cluster is ready: exit 10");
    let fleet = generated_fleet(GENERATED_FLEET_SIZE, GENERATED_FLEET_SEED);
    assert_eq!(verdicts.len(), fleet.len());
    for m in &fleet {
        let id = &m.scenario.source.id;
        let v = verdict(verdicts, id);
        let blocked_by: Vec<&str> = v["blocked_by"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["check"].as_str().unwrap())
            .collect();
        match m.flaw {
            Some(flaw) => {
                assert_eq!(v["readiness"], "blocked", "{id} ({flaw:?}): {v}");
                assert!(
                    blocked_by.contains(&flaw.check()),
                    "{id} ({flaw:?}) is blocked by {blocked_by:?}, not {}",
                    flaw.check()
                );
                let f = v["blocked_by"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|f| f["check"] == flaw.check())
                    .unwrap();
                assert!(
                    f["fix"].as_str().unwrap().len() > 20,
                    "{id}: the finding has no fix: {f}"
                );
            }
            None => assert!(
                v["readiness"] != "blocked" && v["readiness"] != "error",
                "{id} has nothing planted but is {}: {blocked_by:?} {}",
                v["readiness"],
                v["problem"]
            ),
        }
    }
    // Blocked first: the table's order is the JSON's.
    let first_ready = verdicts
        .iter()
        .position(|v| v["readiness"] == "ready")
        .unwrap();
    assert!(
        verdicts[..first_ready]
            .iter()
            .take(Flaw::ALL.len())
            .all(|v| v["readiness"] == "blocked"),
        "blocked clusters are listed first"
    );
    assert!(
        verdicts[first_ready..]
            .iter()
            .all(|v| v["readiness"] == "ready"),
        "ready clusters come last"
    );
    let ready = verdicts
        .iter()
        .filter(|v| v["readiness"] == "ready")
        .count();
    assert!(ready > 350, "{ready} ready of 400");
}

#[test]
fn each_cluster_is_one_json_object_with_its_predicted_figures_and_assumptions() {
    let (_, verdicts, _) = generated_plan();
    for v in verdicts {
        let id = v["cluster"].as_str().unwrap();
        for key in [
            "owner",
            "readiness",
            "runbook",
            "wave",
            "blocked_by",
            "predicted",
            "plan",
        ] {
            assert!(v.get(key).is_some(), "{id}: no {key}: {v}");
        }
        let p = &v["predicted"];
        assert!(p["total_ms"].as_i64().unwrap() > 0, "{id}: {p}");
        if v["readiness"] == "ready" {
            let build = p["replica_build_ms"].as_i64().unwrap();
            let validated = p["validation_end_ms"].as_i64().unwrap();
            let blackout = p["write_blackout_ms"].as_i64().unwrap();
            let total = p["total_ms"].as_i64().unwrap();
            assert!(
                build > 0 && validated > build && total > validated && blackout > 0,
                "{id}: {p}"
            );
            // The default 24 h validation window is in every ready cluster's figures.
            assert!(validated - build >= 86_400_000, "{id}: {p}");
            // Issue 24: what the predicted run proved before the flip — with database access
            // the audit compared rows and the query check ran; credential-less, neither can
            // (preflight's `cdc-without-database-access` check is there only then). Shadow
            // reads are opt-in (no read route here).
            let a = &p["assurance"];
            let credential_less = v["plan"]["preflight"]["checks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["name"] == "cdc-without-database-access");
            if credential_less {
                assert!(
                    a["audit"].is_null() && a["query_check"].is_null(),
                    "{id}: {a}"
                );
            } else {
                assert!(
                    a["audit"]
                        .as_str()
                        .is_some_and(|s| s.contains("rows compared")),
                    "{id}: {a}"
                );
                assert!(
                    a["query_check"]
                        .as_str()
                        .is_some_and(|s| s.contains("run on both sides")),
                    "{id}: {a}"
                );
            }
            assert!(a["shadow_reads"].is_null(), "{id}: {a}");
            // Issue 25: the logical path's eligibility, never a guess without SQL.
            let l = &p["logical"];
            assert!(
                ["eligible", "after-reboot", "not-eligible"]
                    .contains(&l["verdict"].as_str().unwrap()),
                "{id}: {l}"
            );
            if credential_less {
                assert_eq!(
                    l["blockers"][0]["check"], "logical-database-access",
                    "{id}: {l}"
                );
            }
        }
        let measured: Vec<&str> = p["measured"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap())
            .collect();
        assert!(
            measured
                .iter()
                .any(|m| m.starts_with("WAL ") && m.contains("peak at")),
            "{id}: the WAL rate and its peak come from CloudWatch: {measured:?}"
        );
        assert!(
            !p["assumptions"].as_array().unwrap().is_empty(),
            "{id}: the assumptions are stated"
        );
    }
    // The generated fleet has clusters of every logical verdict, and each kind of blocker.
    let logical: Vec<&Value> = verdicts
        .iter()
        .filter_map(|v| v["predicted"].get("logical"))
        .collect();
    for verdict in ["eligible", "after-reboot", "not-eligible"] {
        assert!(
            logical.iter().any(|l| l["verdict"] == verdict),
            "no {verdict} cluster"
        );
    }
    for check in [
        "logical-replica-identity",
        "logical-large-objects",
        "logical-database-access",
        "logical-decoding",
    ] {
        assert!(
            logical.iter().any(|l| l["blockers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|b| b["check"] == check)),
            "no cluster blocked by {check}"
        );
    }
    // The calibration follows each cluster: a 16 TB cluster's replica takes longer to build
    // than a 20 GB one's.
    let fleet = generated_fleet(GENERATED_FLEET_SIZE, GENERATED_FLEET_SEED);
    let build = |pick: &dyn Fn(u64, u64) -> bool| {
        let m = fleet
            .iter()
            .filter(|m| m.flaw.is_none())
            .reduce(|a, b| {
                if pick(
                    a.scenario.source.allocated_storage_gb,
                    b.scenario.source.allocated_storage_gb,
                ) {
                    a
                } else {
                    b
                }
            })
            .unwrap();
        verdict(verdicts, &m.scenario.source.id)["predicted"]["replica_build_ms"]
            .as_i64()
            .unwrap()
    };
    let (small, large) = (build(&|a, b| a < b), build(&|a, b| a > b));
    assert!(
        large > 4 * small,
        "replica build: {small} ms for the smallest, {large} ms for the largest"
    );
}

#[test]
fn the_report_lists_what_to_fix_by_check_and_every_cluster() {
    let (_, verdicts, md) = generated_plan();
    assert!(md.starts_with("# Fleet plan: generated"), "{md}");
    assert!(md.contains("## What to fix"), "{md}");
    for flaw in Flaw::ALL {
        assert!(
            md.contains(&format!("### `{}` — ", flaw.check())),
            "no section for {}",
            flaw.check()
        );
    }
    for v in verdicts {
        let id = v["cluster"].as_str().unwrap();
        assert!(
            md.contains(&format!("| {id} |")),
            "{id} is not in the report"
        );
    }
    assert!(md.contains("## How the prediction was made"), "{md}");
    assert!(md.contains("| write blackout |"), "{md}");
    // The logical path: the verdicts counted, each blocker's fix once with its clusters.
    assert!(
        md.contains("## The logical path")
            && md.contains("| eligible |")
            && md.contains("### `logical-replica-identity` — ")
            && md.contains("Fix: give each a primary key"),
        "{md}"
    );
    // Every planned cluster's assurance before the flip, with the audit's own summary.
    assert!(
        md.contains("## Assurance before the flip")
            && md.contains("| cluster | audit | query check | shadow reads |"),
        "{md}"
    );
    let ready = verdicts
        .iter()
        .find(|v| v["readiness"] == "ready")
        .expect("a ready cluster");
    let audit = ready["predicted"]["assurance"]["audit"].as_str().unwrap();
    assert!(
        md.contains(&format!(
            "| {} | {audit} |",
            ready["cluster"].as_str().unwrap()
        )),
        "{md}"
    );
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A fleet file refused: exit 2, nothing planned (no output on stdout), and each of `wanted`
/// in the message.
fn refused(text: &str, wanted: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "fleet.toml", text);
    let (code, stdout, stderr) = godwit(
        dir.path(),
        &[
            "fleet",
            "plan",
            "--fleet",
            f.to_str().unwrap(),
            "--world",
            "sim",
        ],
    );
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    assert!(stdout.is_empty(), "nothing was planned: {stdout}");
    for w in wanted {
        assert!(stderr.contains(w), "{w:?} not in: {stderr}");
    }
    stderr
}

#[test]
fn a_fleet_file_with_an_unknown_key_is_refused_naming_it() {
    refused(
        "[[clusters]]\nid = \"orders-db\"\nowner = \"orders\"\n\n[[clusters]]\nid = \"ledger-db\"\nownr = \"payments\"\n",
        &[
            "fleet.toml",
            "clusters[1]",
            "unknown field `ownr`",
            "docs/fleet.md",
        ],
    );
    refused(
        "clustres = []\n",
        &["unknown field `clustres`", "expected one of"],
    );
}

#[test]
fn a_cluster_in_a_world_this_godwit_does_not_have_is_refused() {
    refused(
        "[[clusters]]\nid = \"orders-db\"\nowner = \"orders\"\nworld = \"lba:/tmp/lab\"\n",
        &[
            "clusters[0].world (cluster orders-db)",
            "unknown world 'lba'",
            "godwit worlds",
        ],
    );
}

#[test]
fn a_duplicate_cluster_is_refused() {
    refused(
        "[[clusters]]\nid = \"orders-db\"\nowner = \"orders\"\n\n[[clusters]]\nid = \"orders-db\"\nowner = \"payments\"\n",
        &[
            "clusters[1].id",
            "\"orders-db\" is also clusters[0]",
            "merge",
        ],
    );
}

#[test]
fn a_cluster_in_two_waves_is_refused() {
    let e = refused(
        r#"
[groups.payments]
owner = "payments"

[[clusters]]
id = "ledger-db"
group = "payments"

[[clusters]]
id = "orders-db"
owner = "orders"

[[waves]]
name = "canary"
clusters = ["ledger-db"]

[[waves]]
name = "wave-1"
groups = ["payments"]
clusters = ["orders-db"]
"#,
        &[
            "waves[1] (wave-1)",
            "cluster \"ledger-db\" is already in waves[0] (canary)",
            "remove it from one of them",
        ],
    );
    assert!(!e.contains("orders-db\" is already"), "{e}");
}

#[test]
fn an_unknown_runbook_is_refused_with_a_suggestion() {
    refused(
        "[[clusters]]\nid = \"orders-db\"\nowner = \"orders\"\nrunbook = \"rds-to-auroa\"\n",
        &[
            "clusters[0].runbook (cluster orders-db)",
            "runbook \"rds-to-auroa\" not found",
            "did you mean rds-to-aurora?",
        ],
    );
}

#[test]
fn a_parameter_the_runbook_does_not_declare_is_refused() {
    let runbook = runbooks_dir().join("rds-to-aurora.rhai");
    refused(
        &format!(
            r#"
runbook = "{}"
[params]
validation_windw = "12h"

[[clusters]]
id = "orders-db"
owner = "orders"
params = {{ fence_method = "sideways" }}
"#,
            runbook.display()
        ),
        &[
            "clusters[0] (orders-db)",
            "validation_windw",
            "validation_window",
            "fence_method",
            "sideways",
        ],
    );
}

#[test]
fn unknown_groups_and_clusters_without_an_owner_are_refused_all_at_once() {
    refused(
        r#"
[groups.payments]
owner = "payments"

[[clusters]]
id = "ledger-db"
group = "paymnts"

[[clusters]]
id = "orders-db"

[[waves]]
name = "canary"
clusters = ["order-db"]
"#,
        &[
            "3 problems",
            "clusters[0].group: \"paymnts\" is not a group",
            "did you mean \"payments\"",
            "clusters[1] (orders-db): no owner",
            "waves[0].clusters: \"order-db\" is not a cluster of this fleet",
        ],
    );
}

#[test]
fn a_fleet_file_is_planned_in_its_world_with_a_table_sorted_by_readiness() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "fleet.toml",
        r#"
name = "two-teams"
[groups.orders]
owner = "orders"

[[clusters]]
id = "orders-db"
group = "orders"

[[clusters]]
id = "carts-db"
group = "orders"
params = { encrypt_target = false }
"#,
    );
    let (code, stdout, stderr) = godwit(
        dir.path(),
        &[
            "fleet",
            "plan",
            "--fleet",
            f.to_str().unwrap(),
            "--world",
            "sim:idle-source",
        ],
    );
    // The idle source is encrypted: asking for an unencrypted target is the encryption check's
    // finding, and it comes first.
    assert_eq!(code, 10, "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    let header = lines.iter().position(|l| l.starts_with("STATUS")).unwrap();
    assert!(
        lines[header + 1].starts_with("blocked") && lines[header + 1].contains("carts-db"),
        "{stdout}"
    );
    assert!(
        lines[header + 1].contains("encryption:") && lines[header + 1].contains("fix:"),
        "{stdout}"
    );
    assert!(
        lines[header + 2].starts_with("ready") && lines[header + 2].contains("orders-db"),
        "{stdout}"
    );
    assert!(stdout.contains("1 blocked · 1 ready"), "{stdout}");
}

/// Issue 24, instance sizing: a target class too small for what the source used at its peak
/// makes the cluster at risk, with the reason in the table and the report, and the JSON carries
/// the verdict; the source's own class fits; a class many times too large is called oversized.
#[test]
fn a_target_class_too_small_for_the_sources_peak_is_at_risk_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "fleet.toml",
        r#"
name = "sizes"
[groups.orders]
owner = "orders"

[[clusters]]
id = "orders-db"
group = "orders"

[[clusters]]
id = "small-db"
group = "orders"
params = { target_instance_class = "db.t4g.medium" }

[[clusters]]
id = "large-db"
group = "orders"
params = { target_instance_class = "db.r6g.8xlarge" }
"#,
    );
    let report = dir.path().join("plan.md");
    let (code, stdout, stderr) = godwit(
        dir.path(),
        &[
            "fleet",
            "plan",
            "--fleet",
            f.to_str().unwrap(),
            "--world",
            "sim:busy-source",
            "--report",
            report.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 10, "{stdout}\n{stderr}");
    let line = |id: &str| {
        stdout
            .lines()
            .find(|l| l.contains(id))
            .unwrap_or_else(|| panic!("no line for {id}: {stdout}"))
    };
    assert!(
        line("small-db").starts_with("at-risk")
            && line("small-db").contains("db.t4g.medium undersized")
            && line("small-db").contains("sizing:")
            && line("small-db").contains("spill to storage reads"),
        "{stdout}"
    );
    assert!(
        line("orders-db").starts_with("ready") && line("orders-db").contains("db.r6g.xlarge fits"),
        "{stdout}"
    );
    assert!(
        line("large-db").starts_with("ready")
            && line("large-db").contains("db.r6g.8xlarge oversized"),
        "{stdout}"
    );
    let md = std::fs::read_to_string(&report).unwrap();
    assert!(md.contains("## Instance sizing"), "{md}");
    assert!(
        md.contains("| small-db | db.t4g.medium | undersized | - |")
            && md.contains("| large-db | db.r6g.8xlarge | oversized | db.r6g.large |"),
        "{md}"
    );

    let (_, json, _) = godwit(
        dir.path(),
        &[
            "fleet",
            "plan",
            "--fleet",
            f.to_str().unwrap(),
            "--world",
            "sim:busy-source",
            "-o",
            "json",
        ],
    );
    let verdicts: Vec<Value> = serde_json::from_str(&json).unwrap();
    let small = verdict(&verdicts, "small-db");
    assert_eq!(small["predicted"]["sizing"], "undersized", "{small}");
    let sizing = &small["plan"]["sizing"];
    assert_eq!(sizing["source_class"], "db.r6g.xlarge", "{sizing}");
    assert!(
        sizing["source_peak_cpu_percent"]
            .as_f64()
            .is_some_and(|p| p > 0.0 && p <= 100.0)
            && sizing["source_min_freeable_bytes"].as_f64().is_some(),
        "the simulator's CloudWatch has both figures: {sizing}"
    );
}

#[test]
fn a_world_that_cannot_be_built_is_one_error_before_anything_is_planned() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "fleet.toml",
        "[[clusters]]\nid = \"orders-db\"\nowner = \"orders\"\n",
    );
    let (code, stdout, stderr) = godwit(
        dir.path(),
        &[
            "fleet",
            "plan",
            "--fleet",
            f.to_str().unwrap(),
            "--world",
            "sim:no-such-scenario",
        ],
    );
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("--world sim:no-such-scenario") && stderr.contains("nothing was planned"),
        "{stderr}"
    );
    // Without a fleet file only the simulator has a fleet.
    let (code, _, stderr) = godwit(dir.path(), &["fleet", "plan", "--world", "lab"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("give --fleet FILE"), "{stderr}");
}

/// Discovery in the simulated account (`--world sim`): the generated fleet's members are found
/// by their tag, each owned by its `team` tag and planned in its own world; the account's other
/// instances (untagged, another fleet's, a MySQL) are not.
#[test]
fn the_fleet_is_discovered_by_tag_in_the_simulated_account() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = godwit(
        dir.path(),
        &[
            "fleet",
            "plan",
            "--world",
            "sim",
            "--generated",
            "6",
            "--discover",
            "godwit:fleet=generated",
            "--owner-tag",
            "team",
            "-o",
            "json",
        ],
    );
    assert!(code == 0 || code == 10, "{stdout}\n{stderr}");
    let verdicts: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    let mut got: Vec<(String, String)> = verdicts
        .iter()
        .map(|v| {
            (
                v["cluster"].as_str().unwrap().to_string(),
                v["owner"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    let mut want: Vec<(String, String)> = generated_fleet(6, GENERATED_FLEET_SEED)
        .into_iter()
        .map(|m| (m.scenario.source.id, m.owner))
        .collect();
    want.sort();
    assert_eq!(got, want);
    // Each planned in its own world: a calibrated prediction, not the default scenario's.
    assert!(
        verdicts.iter().all(|v| v["readiness"] != "error"),
        "{stdout}"
    );
}

/// `[discover]` in a fleet file: discovered clusters join the listed ones, a listed cluster
/// wins over its discovered self, and waves may name discovered clusters.
#[test]
fn a_fleet_file_discovers_clusters_and_its_listed_clusters_win() {
    let ids: Vec<String> = generated_fleet(4, GENERATED_FLEET_SEED)
        .into_iter()
        .map(|m| m.scenario.source.id)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "fleet.toml",
        &format!(
            r#"
[discover]
tag = "godwit:fleet"
value = "generated"
owner_tag = "team"

[[clusters]]
id = "{}"
owner = "platform-dba"

[[waves]]
name = "canary"
clusters = ["{}"]
"#,
            ids[0], ids[1]
        ),
    );
    let (code, stdout, stderr) = godwit(
        dir.path(),
        &[
            "fleet",
            "plan",
            "--fleet",
            f.to_str().unwrap(),
            "--world",
            "sim",
            "--generated",
            "4",
            "-o",
            "json",
        ],
    );
    assert!(code == 0 || code == 10, "{stdout}\n{stderr}");
    let verdicts: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(verdicts.len(), 4, "{stdout}");
    assert_eq!(verdict(&verdicts, &ids[0])["owner"], "platform-dba");
    assert_eq!(verdict(&verdicts, &ids[1])["wave"], "canary");
    assert_ne!(verdict(&verdicts, &ids[1])["owner"], "platform-dba");
}

/// Bad discovery input is refused before anything is planned, naming the place and the fix.
#[test]
fn bad_discovery_input_is_refused_naming_the_place_and_the_fix() {
    refused(
        "[discover]\ntag = \"godwit:fleet\"\ntagg = \"x\"\n",
        &["discover", "unknown field `tagg`", "docs/fleet.md"],
    );
    refused(
        "[discover]\ntag = \"\"\n",
        &["[discover]", "the tag is empty", "name a tag key"],
    );
    refused(
        "[discover]\ntag = \"godwit:fleet\"\nvalue = \"generated\"\ngroup = \"ledger\"\n",
        &[
            "[discover]",
            "group \"ledger\" is not a group under [groups]",
        ],
    );
    // No match: which tag, how many instances were seen, which values exist. The generated
    // account of 400: 400 members, scratch-db and warehouse-db (the MySQL is not listed).
    let e = refused(
        "[discover]\ntag = \"godwit:fleet\"\nvalue = \"paymnets\"\nowner_tag = \"team\"\n",
        &[
            "no RDS for PostgreSQL instance carries tag godwit:fleet=paymnets",
            "402 instances seen in world sim",
            "godwit:fleet=data-platform, godwit:fleet=generated",
            "add-tags-to-resource",
        ],
    );
    assert!(!e.contains("legacy-mysql"), "{e}");
    // An instance without the owner tag, and no default owner.
    let e = refused(
        "[discover]\ntag = \"godwit:fleet\"\nvalue = \"data-platform\"\nowner_tag = \"owner\"\n",
        &[
            "instance warehouse-db (tag godwit:fleet=data-platform) has no tag owner",
            "owner = \"TEAM\"",
        ],
    );
    assert!(e.contains("1 problem"), "{e}");
    // --owner-tag alone means nothing.
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = godwit(
        dir.path(),
        &["fleet", "plan", "--world", "sim", "--owner-tag", "team"],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--owner-tag applies to discovery"),
        "{stderr}"
    );
}

#[test]
fn notification_targets_with_a_typo_are_refused_each_named() {
    refused(
        "[[clusters]]\nid = \"orders-db\"\nowner = \"orders\"\n\n\
         [[notify]]\nwebhook = \"hooks.example.com/x\"\n\n\
         [[notify]]\nwebhook = \"https://hooks.example.com/x\"\nevents = [\"cutover-ends\"]\nowners = [\"ordres\"]\n\n\
         [[notify]]\nsns = \"arn:aws:sns:eu-west-1:123456789012:migrations\"\nwebhook = \"https://x\"\n\n\
         [[notify]]\nwebhok = \"https://x\"\n",
        &["notify[3]", "unknown field `webhok`"],
    );
    refused(
        "[[clusters]]\nid = \"orders-db\"\nowner = \"orders\"\n\n\
         [[notify]]\nwebhook = \"hooks.example.com/x\"\n\n\
         [[notify]]\nwebhook = \"https://hooks.example.com/x\"\nevents = [\"cutover-ends\"]\nowners = [\"ordres\"]\n\n\
         [[notify]]\nsns = \"arn:aws:sns:eu-west-1:123456789012:migrations\"\nwebhook = \"https://x\"\n",
        &[
            "notify[0].webhook: \"hooks.example.com/x\" is not an http(s) URL",
            "notify[1].events: \"cutover-ends\" is not a kind of notification (did you mean \"cutover-end\"?",
            "notify[1].owners: no cluster of this fleet has owner \"ordres\"; did you mean \"orders\"?",
            "notify[2]: set exactly one of webhook",
        ],
    );
}

/// Issue 24 in `godwit plan`: what the predicted run proves before the flip — the audit, the
/// query check and shadow reads, each with the run's own summary — and each named as not run
/// when switched off.
#[test]
fn godwit_plan_says_what_the_run_proves_before_the_flip() {
    let dir = tempfile::tempdir().unwrap();
    let rb = runbooks_dir().join("rds-to-aurora.rhai");
    let plan = |sets: &[&str]| {
        let mut args = vec![
            "plan",
            rb.to_str().unwrap(),
            "--cluster",
            "orders-db",
            "--world",
            "sim:shadow-reads",
        ];
        for s in sets {
            args.extend(["--set", s]);
        }
        let (code, stdout, stderr) = godwit(dir.path(), &args);
        assert_eq!(code, 0, "{sets:?}: {stdout}\n{stderr}");
        let at = stdout
            .find("before the flip (simulated):")
            .unwrap_or_else(|| panic!("{sets:?}: {stdout}"));
        stdout[at..].to_string()
    };
    let all = plan(&["read_route=auto"]);
    assert!(
        all.contains("✓ audit        audit equal")
            && all.contains("rows compared")
            && all.contains("✓ query check  3 statements run on both sides: 0 fail on the target")
            && all.contains("✓ shadow reads")
            && all.contains("reader connections through orders-db-read to orders-db-aurora"),
        "{all}"
    );
    // Issue 25: the logical path's line: idle-source has logical decoding off, a reboot away.
    let (_, whole, _) = godwit(
        dir.path(),
        &[
            "plan",
            rb.to_str().unwrap(),
            "--cluster",
            "orders-db",
            "--world",
            "sim:idle-source",
        ],
    );
    assert!(
        whole.contains(
            "logical path: eligible after a reboot: logical decoding is off on the source"
        ),
        "{whole}"
    );
    let none = plan(&["audit_rows=0", "query_check=off"]);
    assert!(
        none.contains("- audit        not run")
            && none.contains("- query check  not run")
            && none.contains("- shadow reads off (read_route)"),
        "{none}"
    );
}
