//! Every ```rhai example in the reference of a world-touching area runs green against the
//! simulator, inside a step (as a runbook would call it), each in a fresh world.

use std::sync::{Arc, Mutex};

use godwit_engine::journal::memory::MemoryStore;
use godwit_engine::{Cancel, Limits, RunStatus, Runner, StartRequest};
use godwit_stdlib::sim::scenario::Scenario;
use godwit_stdlib::world::World;

const AREAS: &[&str] = &["rds", "cw", "ec2", "pg", "route", "cdc"];
/// The scenario examples run against.
const SCENARIO: &str = "busy-source";

fn runner(
    world: &World,
    extra: Vec<Arc<dyn godwit_engine::Plugin>>,
    rt: &tokio::runtime::Runtime,
) -> Runner {
    let mut plugins = world.plugins.clone();
    plugins.extend(extra);
    Runner {
        store: Arc::new(MemoryStore::new()),
        clock: world.clock.clone(),
        handle: rt.handle().clone(),
        limits: Limits::default(),
        cancel: Cancel::new(),
        sinks: vec![],
        plugins,
        world: world.name.clone(),
    }
}

fn run(
    world: &World,
    source: &str,
    rt: &tokio::runtime::Runtime,
    extra: Vec<Arc<dyn godwit_engine::Plugin>>,
) -> RunStatus {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("example.rhai");
    std::fs::write(&path, source).unwrap();
    let r = runner(world, extra, rt);
    r.start(StartRequest {
        runbook: path,
        cluster: "orders-db".into(),
        params: serde_json::Map::new(),
        run_id: Some("doc".into()),
    })
    .unwrap()
    .status
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// `(area, function, example)` for every example, read from the Rhai metadata of an engine
/// built exactly as a run builds it.
fn examples() -> Vec<(String, String, String)> {
    let rt = rt();
    let world = World::sim(Scenario::load(SCENARIO).unwrap());
    let seen = Arc::new(Mutex::new(String::new()));
    let s = seen.clone();
    let spy = move |e: &mut rhai::Engine, _h: &godwit_engine::Host| {
        *s.lock().unwrap() = e.gen_fn_metadata_to_json(false).unwrap();
    };
    let status = run(&world, "1", &rt, vec![Arc::new(spy)]);
    assert!(matches!(status, RunStatus::Succeeded { .. }), "{status:?}");
    let json: serde_json::Value = serde_json::from_str(&seen.lock().unwrap()).unwrap();
    let mut out = Vec::new();
    for area in AREAS {
        let Some(functions) = json["modules"][area]["functions"].as_array() else {
            continue;
        };
        for f in functions {
            let name = f["name"].as_str().unwrap().to_string();
            let text: Vec<String> = f["docComments"]
                .as_array()
                .map(|c| {
                    c.iter()
                        .filter_map(|l| l.as_str())
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default()
                .lines()
                .map(|l| {
                    l.trim_start()
                        .trim_start_matches("///")
                        .trim_start_matches(' ')
                        .to_string()
                })
                .collect();
            for section in ["# Parameters", "# Returns", "# Errors", "# Example"] {
                assert!(
                    text.iter().any(|l| l == section),
                    "{area}::{name} docs lack `{section}`"
                );
            }
            let mut block: Option<Vec<String>> = None;
            for line in text {
                match (&mut block, line.trim()) {
                    (None, "```rhai") => block = Some(Vec::new()),
                    (Some(b), "```") => {
                        out.push((area.to_string(), name.clone(), b.join("\n")));
                        block = None;
                    }
                    (Some(b), _) => b.push(line),
                    (None, _) => {}
                }
            }
        }
    }
    out
}

#[test]
fn every_doc_example_runs_against_the_simulator() {
    let examples = examples();
    let count = |a: &str| examples.iter().filter(|e| e.0 == a).count();
    // One example per script-visible function: the test cannot pass by finding none.
    for (area, n) in [
        ("rds", 20),
        ("cw", 1),
        ("ec2", 2),
        ("pg", 13),
        ("route", 5),
        ("cdc", 5),
    ] {
        assert_eq!(count(area), n, "{area} examples");
    }
    let rt = rt();
    for (area, name, code) in &examples {
        // Rhai's own `sleep(INT)` (thread sleep, real seconds) wins over the engine's
        // `sleep(Dynamic)` for a number: examples must pass a duration string.
        assert!(
            !code.contains("sleep(0") && !(1..10).any(|d| code.contains(&format!("sleep({d}"))),
            "{area}::{name}: use sleep(\"1m\"), not sleep(<number>)"
        );
        let world = World::sim(Scenario::load(SCENARIO).unwrap());
        let source = format!("step(\"example\", || {{\n{code}\n()\n}});\n");
        match run(&world, &source, &rt, vec![]) {
            RunStatus::Succeeded { .. } => {}
            other => panic!("example of {area}::{name} failed: {other:?}\n{code}"),
        }
    }
}
