//! `cargo bench -p godwit-tests --bench serve`: the server time of `godwit serve`'s fleet view
//! with the generated 400 clusters, each with a finished run in a real PostgreSQL store (issue
//! 21's goal: ≤ 300 ms). Prints the page (`GET /`) and the API (`GET /api/v1/clusters`) times
//! over 30 requests each, measured by the client on loopback (so server time plus a loopback
//! round trip). Needs the PostgreSQL server binaries like the tests.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use godwit_engine::StartRequest;
use godwit_lab::pgproc::Scratch;
use godwit_pgstore::{Options, PgStore};
use godwit_stdlib::sim::fleet::{GENERATED_FLEET_SEED, generated_fleet};
use godwit_stdlib::world::World;

const TOKEN: &str = "bench-token-0123456789abcdef";

fn main() {
    let scratch = Scratch::new().expect("PostgreSQL server binaries (lab/src/pgproc.rs)");
    let server = scratch.primary("store", &[]).expect("start a server");
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", server.port);
    let dir = tempfile::tempdir().unwrap();
    let clusters: Vec<String> = generated_fleet(400, GENERATED_FLEET_SEED)
        .into_iter()
        .map(|m| m.scenario.source.id)
        .collect();

    // A finished run per cluster (a three-step runbook in the pure world: the listing reads
    // the store, not the world).
    let runbook = dir.path().join("tiny.rhai");
    std::fs::write(
        &runbook,
        "//! name: tiny\n//! version: 1.0.0\nstep(\"a\", || 1);\nstep(\"b\", || 2);\nstep(\"c\", || 3);\n",
    )
    .unwrap();
    let store = Arc::new(PgStore::connect(&url, Options::default()).unwrap());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let t0 = Instant::now();
    for c in &clusters {
        let runner = World::pure().runner(store.clone(), rt.handle().clone());
        runner
            .start(StartRequest {
                runbook: runbook.clone(),
                cluster: c.clone(),
                params: Default::default(),
                run_id: None,
            })
            .unwrap();
    }
    println!(
        "{} runs written in {:.1} s",
        clusters.len(),
        t0.elapsed().as_secs_f64()
    );

    let auth = dir.path().join("auth.toml");
    std::fs::write(
        &auth,
        format!(
            "admins = [\"platform\"]\n[[tokens]]\nsha256 = \"{}\"\nuser = \"bench\"\nteams = [\"platform\"]\n",
            godwit::serve::auth::token_hash(TOKEN)
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_godwit-toy"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--world",
            "sim",
            "--auth",
        ])
        .arg(&auth)
        .env("GODWIT_STORE", &url)
        .env("GODWIT_STATE_DIR", dir.path().join("state"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .split("listening on ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in: {line}"))
        .to_string();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    for path in ["/", "/api/v1/clusters"] {
        let mut ms: Vec<f64> = Vec::new();
        let mut size = 0;
        for i in 0..31 {
            let t = Instant::now();
            let body = agent
                .get(format!("{base}{path}"))
                .header("Authorization", format!("Bearer {TOKEN}"))
                .call()
                .unwrap()
                .into_body()
                .read_to_string()
                .unwrap();
            if i > 0 {
                ms.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            size = body.len();
            assert!(body.contains(&clusters[399]), "every cluster is listed");
        }
        ms.sort_by(f64::total_cmp);
        println!(
            "GET {path:<18} 400 clusters, {size} bytes: p50 {:.1} ms · p90 {:.1} ms · max {:.1} ms (30 requests after one warm-up; goal ≤ 300 ms)",
            ms[14], ms[26], ms[29]
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}
