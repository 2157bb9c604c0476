//! Journal append latency, PostgreSQL store vs file store, in one run on one machine:
//! `cargo bench -p godwit-pgstore --bench append`. Both are durable before they return: the
//! file store `fdatasync`s, the PostgreSQL server runs with `fsync=on` and
//! `synchronous_commit=on` (the lab's servers turn fsync off; this one must not). The goal of
//! issue 20 is a PostgreSQL append within 3x the file store's.

use std::time::{Duration, Instant};

use godwit_engine::journal::file::FileStore;
use godwit_engine::journal::{Entry, JournalStore, JournalWriter};
use godwit_lab::pgproc::Scratch;
use godwit_pgstore::{Options, PgStore};

const N: usize = 2000;

fn entry(i: usize) -> Entry {
    Entry::StepCompleted {
        name: format!("step-{i}"),
        result: serde_json::json!({"replica": "orders-aurora", "lag_bytes": i, "ok": true}),
        at: 1_795_326_006_000 + i as i64,
    }
}

fn measure(w: &mut dyn JournalWriter) -> Vec<Duration> {
    let mut out = Vec::with_capacity(N);
    for i in 0..N {
        let t = Instant::now();
        w.append(&entry(i)).expect("append");
        out.push(t.elapsed());
    }
    out.sort();
    out
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn report(name: &str, d: &[Duration]) -> (Duration, Duration) {
    let (p50, p99) = (pct(d, 0.50), pct(d, 0.99));
    println!(
        "{name:<12} appends {N}: p50 {:>7.3} ms  p99 {:>7.3} ms  max {:>7.3} ms",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        d[d.len() - 1].as_secs_f64() * 1e3
    );
    (p50, p99)
}

fn main() {
    let scratch = Scratch::new().expect("PostgreSQL server binaries");
    let server = scratch
        .primary("bench", &[("fsync", "on"), ("synchronous_commit", "on")])
        .expect("start a server");
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", server.port);
    let pg = PgStore::connect(&url, Options::default()).expect("connect");
    let dir = tempfile::tempdir().expect("temp dir");
    let files = FileStore::new(dir.path().join("runs"));

    // Alternate twice so neither store gets the quieter half of the machine's time.
    let mut file_all = Vec::new();
    let mut pg_all = Vec::new();
    for round in 0..2 {
        let mut fw = files.create(&format!("file-{round}")).expect("create");
        file_all.extend(measure(fw.as_mut()));
        let mut pw = pg.create(&format!("pg-{round}")).expect("create");
        pg_all.extend(measure(pw.as_mut()));
    }
    file_all.sort();
    pg_all.sort();
    println!(
        "journal append latency, same run (PostgreSQL {} fsync=on, loopback TCP):",
        scratch.bin.version
    );
    let (f50, f99) = report("file store", &file_all);
    let (p50, p99) = report("postgres", &pg_all);
    println!(
        "ratio postgres/file: p50 {:.2}x  p99 {:.2}x  (goal ≤ 3x)",
        p50.as_secs_f64() / f50.as_secs_f64(),
        p99.as_secs_f64() / f99.as_secs_f64()
    );
    drop(pg);
    scratch.stop(&server);
}
