//! `cargo bench -p godwit-tests --bench logical_copy --profile dev`: the logical path's initial
//! copy against `pg_dump | pg_restore` of the same data in the same run (issue 25's acceptance:
//! a printed ratio, goal <= 1.5x the dump's time).
//!
//! One PostgreSQL 15 source (the lab's Debian binaries) grows through the sizes of
//! `GODWIT_BENCH_COPY_MB` (MiB of table data, heap + TOAST, indexes not counted; default
//! `100,400,1000`): a wide `customers` table (text and jsonb, ~0.5 kB rows), a narrow `events`
//! table (many ~50-byte rows) and `orders` with a secondary index and a foreign key to
//! `customers`, all with primary keys, ~40/30/30 % of the bytes. At each size, into fresh
//! empty targets of the newer major (`GODWIT_PG_NEWER_BIN`, PostgreSQL 16; with
//! `GODWIT_BENCH_COPY_SAME_MAJOR=1` a second 15):
//!
//! - **logical**: godwit's own primitives through a runbook — `pg::copy_schema` (timed apart),
//!   `pg::create_publication` and `pg::create_logical_slot`, then timed from `pg::subscribe`
//!   (`copy_data: true`) until `pg::subscription_tables` says every table is `ready` (polled
//!   every 200 ms). The target holds the schema's indexes and constraints while it copies
//!   (`pg::copy_schema` restores them first; streaming needs at least the primary keys);
//! - **dump**: the target major's `pg_dump -Fc` of the source piped into its `pg_restore`
//!   (schema, data, then indexes and constraints), end to end, and `pg_dump -Fc` to a file
//!   followed by `pg_restore -j 2` of it; the ratio is against the faster of the two.
//!
//! Every target must then hold the source's row counts, table by table (a copy that copies
//! nothing fails the bench). `GODWIT_BENCH_COPY_TUNED` adds labelled rows per size: the
//! logical copy into a target started with other settings, or with its secondary indexes built
//! after the copy ([`variants`]), to show what they change; godwit's primitives stay as they
//! are.
//!
//! Servers run with the lab's settings (`fsync=off`, `wal_level=logical`, PostgreSQL's
//! defaults otherwise: 2 table-sync workers per subscription, 4 logical replication workers);
//! every one is stopped by pid and its directory deleted when its `Scratch` is dropped.

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::Instant;

use godwit_engine::RunStatus;
use godwit_engine::transcript::Event;
use godwit_lab::pgproc::{PgBin, Server};
use godwit_stdlib::world::World;
use godwit_tests::livepg::{exec, one, run_script, runtime, scratch, sql_world};

/// Shares of the table data by table; `orders` references `customers`.
const TABLES: &[(&str, f64)] = &[("customers", 0.4), ("events", 0.3), ("orders", 0.3)];

const SCHEMA: &str = "
CREATE TABLE customers (id bigint PRIMARY KEY, email text NOT NULL, name text NOT NULL,
    country char(2) NOT NULL, created_at timestamptz NOT NULL, profile jsonb NOT NULL, notes text);
CREATE TABLE events (id bigint PRIMARY KEY, at timestamptz NOT NULL, kind smallint NOT NULL,
    value int NOT NULL);
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers(id),
    amount numeric(12,2) NOT NULL, status text NOT NULL, placed_at timestamptz NOT NULL, sku text NOT NULL);
CREATE INDEX orders_customer_id ON orders (customer_id);
";

/// The labelled variant `GODWIT_BENCH_COPY_TUNED=1`: one table-sync worker per table (3, above
/// PostgreSQL's default 2; within the default 4 logical replication workers, one of them the
/// apply worker).
const TUNED: &str = "max_sync_workers_per_subscription=3";

/// A labelled variant of the logical copy, to show what a setting changes (godwit's primitives
/// stay as they are).
struct Variant {
    label: String,
    /// Settings the target starts with.
    settings: Vec<(String, String)>,
    /// An experiment, not a setting: the target's secondary indexes (those no constraint owns)
    /// dropped after the schema copy and built again once every table is ready, the build
    /// inside the timed copy — what `pg_restore` does.
    defer_indexes: bool,
}

impl Variant {
    fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .settings
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if self.defer_indexes {
            parts.push("secondary indexes built after the copy (schema experiment)".into());
        }
        parts.join(", ")
    }
}

/// The variants of `GODWIT_BENCH_COPY_TUNED`: `;`-separated sets of `,`-separated `name=value`
/// target settings, `1` (for [`TUNED`]) and the word `defer_indexes`, e.g.
/// `1;defer_indexes;max_wal_size=8GB,defer_indexes`. Unset: none.
fn variants() -> Vec<Variant> {
    let Ok(spec) = std::env::var("GODWIT_BENCH_COPY_TUNED") else {
        return Vec::new();
    };
    spec.split(';')
        .filter(|set| !set.trim().is_empty())
        .enumerate()
        .map(|(i, set)| {
            let set: Vec<&str> = set
                .split(',')
                .map(|item| if item.trim() == "1" { TUNED } else { item })
                .collect();
            let set = set.join(",");
            let mut v = Variant {
                label: format!("variant-{}", i + 1),
                settings: Vec::new(),
                defer_indexes: false,
            };
            for item in set.split(',').map(str::trim) {
                match item.split_once('=') {
                    Some((k, val)) => v.settings.push((k.trim().into(), val.trim().into())),
                    None if item == "defer_indexes" => v.defer_indexes = true,
                    None => panic!(
                        "GODWIT_BENCH_COPY_TUNED: {item:?} is neither name=value nor defer_indexes"
                    ),
                }
            }
            v
        })
        .collect()
}

/// Rows `lo..=hi` of `table`; `customers` holds ids `1..=customers` (the orders' references).
fn insert(table: &str, lo: i64, hi: i64, customers: i64) -> String {
    match table {
        "customers" => format!(
            "INSERT INTO customers SELECT g, 'user' || g || '@example.com', \
             'Customer ' || substr(md5(g::text), 1, 12), (ARRAY['US','DE','FR','JP','BR','IN','GB'])[1 + g % 7], \
             timestamptz '2020-01-01' + g * interval '17 s', \
             jsonb_build_object('tier', g % 4, 'newsletter', g % 3 = 0, \
                'address', jsonb_build_object('street', md5(g::text || 's'), 'city', 'City ' || g % 997, \
                    'zip', lpad((g % 99999)::text, 5, '0')), \
                'tags', jsonb_build_array('t' || g % 11, 't' || g % 13, md5(g::text || 't'))), \
             repeat(md5(g::text || 'n'), 1 + (g % 6)::int) \
             FROM generate_series({lo}::bigint, {hi}) g"
        ),
        "events" => format!(
            "INSERT INTO events SELECT g, timestamptz '2024-01-01' + g * interval '10 ms', \
             (g % 32)::smallint, (g * 7919 % 100000)::int FROM generate_series({lo}::bigint, {hi}) g"
        ),
        // The references are consistent by construction: the foreign key's per-row check is
        // skipped while generating (session_replication_role), pg_restore validates it.
        "orders" => format!(
            "SET session_replication_role = replica; \
             INSERT INTO orders SELECT g, 1 + (g * 7919) % {customers}, ((g * 37) % 100000) / 100.0, \
             (ARRAY['new','paid','shipped','delivered','returned'])[1 + g % 5], \
             timestamptz '2022-01-01' + g * interval '3 s', 'SKU-' || lpad((g % 50000)::text, 6, '0') \
             FROM generate_series({lo}::bigint, {hi}) g"
        ),
        other => unreachable!("{other}"),
    }
}

/// First guess of a row's bytes (heap), before the table says.
fn guess_row_bytes(table: &str) -> f64 {
    match table {
        "customers" => 520.0,
        "events" => 52.0,
        _ => 90.0,
    }
}

fn int(rt: &tokio::runtime::Runtime, s: &Server, sql: &str) -> i64 {
    rt.block_on(one(s, sql))
        .unwrap_or_else(|| panic!("{sql}: NULL"))
        .parse()
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn table_bytes(rt: &tokio::runtime::Runtime, s: &Server, table: &str) -> i64 {
    int(rt, s, &format!("SELECT pg_table_size('{table}')::text"))
}

fn rows(rt: &tokio::runtime::Runtime, s: &Server, table: &str) -> i64 {
    int(rt, s, &format!("SELECT count(*)::text FROM {table}"))
}

/// Grow `table` on `source` to about `bytes` of table data (two rounds: the second corrects
/// the first guess of a row's size by what the table measures).
fn grow(rt: &tokio::runtime::Runtime, source: &Server, table: &str, bytes: f64, customers: i64) {
    for _ in 0..2 {
        let (have, n) = (
            table_bytes(rt, source, table) as f64,
            rows(rt, source, table),
        );
        if have >= bytes * 0.98 {
            return;
        }
        let per_row = if n > 1000 {
            have / n as f64
        } else {
            guess_row_bytes(table)
        };
        let add = ((bytes - have) / per_row).ceil() as i64 + 1;
        let max = int(
            rt,
            source,
            &format!("SELECT coalesce(max(id), 0)::text FROM {table}"),
        );
        rt.block_on(exec(source, &insert(table, max + 1, max + add, customers)));
    }
}

/// Run `script` in `world`; its result, or a panic with the failed steps.
fn run(world: &World, rt: &tokio::runtime::Runtime, script: &str) -> serde_json::Value {
    let (report, lines) = run_script(world, rt, script, Default::default());
    match report.status {
        RunStatus::Succeeded { result, .. } => result,
        other => panic!(
            "{other:?}\n{:#?}",
            lines
                .into_iter()
                .filter(|l| matches!(l.event, Event::StepFailed { .. } | Event::Print { .. }))
                .collect::<Vec<_>>()
        ),
    }
}

/// Busy and total jiffies of all CPUs (`/proc/stat`): how busy the whole machine was during a
/// phase, other people's processes included.
fn machine_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().sum();
    // idle + iowait
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// `utime, stime, cutime, cstime` and the parent pid of `pid` (`/proc/<pid>/stat`, in clock
/// ticks: USER_HZ, 100 a second on Linux).
fn proc_ticks(pid: &str) -> Option<(u32, [u64; 4])> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": fields counted after the last ')'; utime is field 14.
    let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let f = |i: usize| rest.get(i - 3).and_then(|v| v.parse::<u64>().ok());
    Some((f(4)? as u32, [f(14)?, f(15)?, f(16)?, f(17)?]))
}

/// CPU seconds used so far by the servers `pids` (each postmaster with its reaped children —
/// backends, walsenders and table-sync workers that exited — and its live children) and by this
/// process with its reaped children (the runbook polling; pg_dump, pg_restore and its workers,
/// the schema copy's tools).
/// A contended machine stretches wall times; the work done is what this counts.
fn our_cpu_seconds(pids: &[u32]) -> f64 {
    let mut ticks = proc_ticks("self").map_or(0, |(_, t)| t.iter().sum());
    for &pid in pids {
        ticks += proc_ticks(&pid.to_string()).map_or(0, |(_, t)| t.iter().sum());
    }
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Some((ppid, t)) = proc_ticks(&name)
            && pids.contains(&ppid)
        {
            ticks += t[0] + t[1];
        }
    }
    ticks as f64 / 100.0
}

/// A phase: its wall time, the CPU seconds our servers and tools spent in it, and how busy the
/// machine was (% of all cores, everyone's processes).
struct Timed {
    secs: f64,
    cpu_s: f64,
    machine: f64,
}

/// Time `f`, counting the CPU of the servers `pids` (see [`our_cpu_seconds`]).
fn timed<T>(pids: &[u32], f: impl FnOnce() -> T) -> (T, Timed) {
    let (b0, t0) = machine_jiffies();
    let c0 = our_cpu_seconds(pids);
    let t = Instant::now();
    let out = f();
    let secs = t.elapsed().as_secs_f64();
    let c1 = our_cpu_seconds(pids);
    let (b1, t1) = machine_jiffies();
    (
        out,
        Timed {
            secs,
            cpu_s: c1 - c0,
            machine: 100.0 * (b1 - b0) as f64 / (t1 - t0).max(1) as f64,
        },
    )
}

/// When each table's sync worker started and finished, in seconds after the subscription's
/// apply worker started, from the target's log (`log_from`: where the log stood before): shows
/// how many tables copied at once.
fn sync_timeline(log: &std::path::Path, log_from: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    // "2026-01-01 10:00:00.123 UTC [42] LOG:  logical replication table synchronization
    // worker for subscription "s", table "t" has started"
    let secs = |line: &str| -> Option<f64> {
        let hms = line.split_whitespace().nth(1)?;
        let mut p = hms.split(':');
        let (h, m, s): (f64, f64, f64) = (
            p.next()?.parse().ok()?,
            p.next()?.parse().ok()?,
            p.next()?.parse().ok()?,
        );
        Some(h * 3600.0 + m * 60.0 + s)
    };
    let lines: Vec<&str> = text.get(log_from..).unwrap_or("").lines().collect();
    let Some(t0) = lines
        .iter()
        .find(|l| l.contains("logical replication apply worker") && l.contains("has started"))
        .and_then(|l| secs(l))
    else {
        return "no apply worker start in the target's log".into();
    };
    let at = |l: &str| secs(l).map(|t| (t - t0).rem_euclid(86400.0));
    TABLES
        .iter()
        .map(|(table, _)| {
            let find = |what: &str| {
                lines
                    .iter()
                    .find(|l| {
                        l.contains("table synchronization worker")
                            && l.contains(&format!("table \"{table}\""))
                            && l.contains(what)
                    })
                    .and_then(|l| at(l))
            };
            match (find("has started"), find("has finished")) {
                (Some(a), Some(b)) => format!("{table} {a:.1}–{b:.1} s"),
                _ => format!("{table} ?"),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What one logical copy measured.
struct Logical {
    schema: Timed,
    copy: Timed,
    /// The target's rows by table, in [`TABLES`]' order.
    rows: Vec<i64>,
    /// [`sync_timeline`].
    timeline: String,
}

/// The logical initial copy from `source` into a fresh target of `bin`, as `variant` says
/// (`None`: the lab's settings, godwit's primitives alone).
fn logical(
    rt: &tokio::runtime::Runtime,
    source: &Server,
    bin: &PgBin,
    variant: Option<&Variant>,
    timeout_s: u64,
) -> Logical {
    let extra = variant.map_or(&[][..], |v| &v.settings[..]);
    let mut place = scratch();
    place.bin = bin.clone();
    let extra: Vec<(&str, &str)> = extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let target = place.primary("logical", &extra).unwrap();
    let pids = [source.pid, target.pid];
    let world = sql_world(
        &[("orders-db", source), ("orders-aurora", &target)],
        rt.handle().clone(),
    );
    let (copied, schema) = timed(&pids, || {
        run(
            &world,
            rt,
            r#"step("schema", || pg::copy_schema("orders-db", "orders-aurora"))"#,
        )
    });
    assert_eq!(
        copied["tables"],
        serde_json::json!(["public.customers", "public.events", "public.orders"]),
        "{copied}"
    );
    run(
        &world,
        rt,
        r#"
step("publish", || pg::create_publication("orders-db", "godwit_logical"));
step("slot", || pg::create_logical_slot("orders-db", "godwit_logical"));
"#,
    );
    let deferred = if variant.is_some_and(|v| v.defer_indexes) {
        let secondary = "FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' \
             AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)";
        let create = rt
            .block_on(one(
                &target,
                &format!("SELECT string_agg(pg_get_indexdef(i.indexrelid), '; ') {secondary}"),
            ))
            .expect("the schema has a secondary index");
        let drop = rt
            .block_on(one(
                &target,
                &format!(
                    "SELECT string_agg(format('DROP INDEX %s', i.indexrelid::regclass), '; ') {secondary}"
                ),
            ))
            .unwrap();
        rt.block_on(exec(&target, &drop));
        Some(create)
    } else {
        None
    };
    let log_from = std::fs::metadata(&target.spec.log).map_or(0, |m| m.len() as usize);
    let (tables, copy) = timed(&pids, || {
        let tables = run(
            &world,
            rt,
            &format!(
                r#"
step("subscribe", || pg::subscribe("orders-aurora", "godwit_logical",
    #{{ from: "orders-db", publication: "godwit_logical", slot: "godwit_logical", copy_data: true }}));
// One attempt: a copy that fails or stalls fails the bench instead of being timed again.
step("copied", #{{ timeout: "{timeout_s}s", retry: #{{ attempts: 1 }} }}, || {{
    let t = pg::subscription_tables("orders-aurora", "godwit_logical");
    while t.len() == 0 || !t.all(|x| x.state == "ready") {{
        sleep(0.2);
        t = pg::subscription_tables("orders-aurora", "godwit_logical");
    }}
    t
}})
"#
            ),
        );
        if let Some(create) = &deferred {
            rt.block_on(exec(&target, create));
        }
        tables
    });
    assert_eq!(
        tables.as_array().map(Vec::len),
        Some(TABLES.len()),
        "{tables}"
    );
    let counts = TABLES.iter().map(|(t, _)| rows(rt, &target, t)).collect();
    let indexes = "SELECT count(*)::text FROM pg_indexes WHERE schemaname = 'public'";
    assert_eq!(
        rt.block_on(one(&target, indexes)),
        rt.block_on(one(source, indexes)),
        "the target has the source's indexes"
    );
    let timeline = sync_timeline(&target.spec.log, log_from);
    // The subscription's slot goes with it (DROP SUBSCRIPTION drops it on the source), and the
    // publication after it: the next size starts from nothing.
    rt.block_on(exec(&target, "DROP SUBSCRIPTION godwit_logical"));
    rt.block_on(exec(source, "DROP PUBLICATION godwit_logical"));
    assert_eq!(
        rt.block_on(one(
            source,
            "SELECT count(*)::text FROM pg_replication_slots"
        ))
        .as_deref(),
        Some("0"),
        "no slot left on the source"
    );
    drop(place);
    Logical {
        schema,
        copy,
        rows: counts,
        timeline,
    }
}

/// Run `cmd` (a client tool of the target's major, as this process's user), failing with its
/// output.
fn tool(mut cmd: Command, what: &str) {
    let out = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn client(bin: &PgBin, name: &str, server: &Server) -> Command {
    let mut c = Command::new(bin.tool(name));
    c.env_clear()
        .stdin(Stdio::null())
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-p"])
        .arg(server.port.to_string());
    c
}

/// How the dump is restored.
#[derive(Clone, Copy)]
enum Dump {
    /// `pg_dump -Fc | pg_restore`: one stream, dump and restore overlapping.
    Pipe,
    /// `pg_dump -Fc -f file`, then `pg_restore -j 2 file` (parallel restore needs a file).
    FileJobs2,
}

/// `pg_dump -Fc` of `source` restored into a fresh target of `bin`, timed end to end; the
/// target's row counts by table.
fn dump_restore(
    rt: &tokio::runtime::Runtime,
    source: &Server,
    bin: &PgBin,
    how: Dump,
) -> (Timed, Vec<i64>) {
    let mut place = scratch();
    place.bin = bin.clone();
    let target = place.primary("restore", &[]).unwrap();
    let file = place.path().join("source.dump");
    let ((), t) = timed(&[source.pid, target.pid], || match how {
        Dump::Pipe => {
            let mut dump = client(bin, "pg_dump", source);
            let mut dumper = dump
                .arg("-Fc")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("pg_dump");
            let mut restore = client(bin, "pg_restore", &target);
            restore
                .arg("--exit-on-error")
                .stdin(dumper.stdout.take().unwrap());
            tool(restore, "pg_dump -Fc | pg_restore");
            let status = dumper.wait().unwrap();
            let mut err = String::new();
            let _ = dumper.stderr.take().unwrap().read_to_string(&mut err);
            assert!(status.success(), "pg_dump: {status}: {err}");
        }
        Dump::FileJobs2 => {
            let mut dump = client(bin, "pg_dump", source);
            dump.arg("-Fc").arg("-f").arg(&file);
            tool(dump, "pg_dump -Fc -f");
            let mut restore = client(bin, "pg_restore", &target);
            restore.args(["--exit-on-error", "-j", "2"]).arg(&file);
            tool(restore, "pg_restore -j 2");
        }
    });
    let counts = TABLES.iter().map(|(tb, _)| rows(rt, &target, tb)).collect();
    drop(place);
    (t, counts)
}

fn mb(bytes: i64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    let wall = Instant::now();
    let sizes: Vec<f64> = std::env::var("GODWIT_BENCH_COPY_MB")
        .unwrap_or_else(|_| "100,400,1000".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .unwrap_or_else(|e| panic!("GODWIT_BENCH_COPY_MB: {s:?}: {e}"))
        })
        .collect();
    assert!(
        sizes.windows(2).all(|w| w[0] < w[1]),
        "GODWIT_BENCH_COPY_MB must grow: the source grows from one size to the next"
    );
    let variants = variants();
    let rt = runtime();
    let old = scratch();
    let target_bin = if std::env::var("GODWIT_BENCH_COPY_SAME_MAJOR").is_ok_and(|v| v == "1") {
        old.bin.clone()
    } else {
        PgBin::newer_major(&old.bin).unwrap_or_else(|e| {
            panic!(
                "{e} (or GODWIT_BENCH_COPY_SAME_MAJOR=1 for a second {})",
                old.bin.major
            )
        })
    };
    let source = old.primary("source", &[]).unwrap();
    rt.block_on(exec(&source, SCHEMA));
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "logical copy bench: source PostgreSQL {} → targets {}; {cores} cores; load average at start {}",
        old.bin.version,
        target_bin.version,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );

    let mut lines = Vec::new();
    for size in sizes {
        let bytes = size * 1024.0 * 1024.0;
        let (_, generated) = timed(&[source.pid], || {
            grow(&rt, &source, "customers", bytes * TABLES[0].1, 0);
            let customers = rows(&rt, &source, "customers");
            // events and orders side by side: two cores.
            std::thread::scope(|s| {
                s.spawn(|| {
                    grow(
                        &runtime(),
                        &source,
                        "events",
                        bytes * TABLES[1].1,
                        customers,
                    )
                });
                grow(&rt, &source, "orders", bytes * TABLES[2].1, customers);
            });
            // Hint bits and visibility set: neither copy writes the source while reading it.
            rt.block_on(exec(&source, "VACUUM (ANALYZE) customers, events, orders"));
            rt.block_on(exec(&source, "CHECKPOINT"));
        });
        let source_rows: Vec<i64> = TABLES.iter().map(|(t, _)| rows(&rt, &source, t)).collect();
        let data: i64 = TABLES
            .iter()
            .map(|(t, _)| table_bytes(&rt, &source, t))
            .sum();
        let total = int(
            &rt,
            &source,
            "SELECT sum(pg_total_relation_size(c))::text FROM unnest(ARRAY['customers','events','orders']::regclass[]) c",
        );
        let data_mb = mb(data);
        println!(
            "\n{data_mb:.0} MiB of table data ({:.0} MiB with indexes), rows {}: generated in {:.1} s",
            mb(total),
            TABLES
                .iter()
                .zip(&source_rows)
                .map(|((t, _), n)| format!("{t} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            generated.secs
        );
        let phase = |what: &str, t: &Timed| {
            println!(
                "  {what}: {:.1} s, {:.1} MiB/s, {:.1} CPU s of its servers and tools; machine busy {:.0} %",
                t.secs,
                data_mb / t.secs,
                t.cpu_s,
                t.machine
            );
        };
        // A generous bound: 2 MiB/s would already fail the goal many times over.
        let timeout_s = 120 + (data_mb / 2.0) as u64;
        let l = logical(&rt, &source, &target_bin, None, timeout_s);
        assert_eq!(l.rows, source_rows, "logical copy: target rows by table");
        println!(
            "  logical: pg::copy_schema {:.2} s ({:.1} CPU s), not in the copy's time",
            l.schema.secs, l.schema.cpu_s
        );
        phase("logical: pg::subscribe → all tables ready", &l.copy);
        println!("    table syncs: {}", l.timeline);
        let (pipe, counts) = dump_restore(&rt, &source, &target_bin, Dump::Pipe);
        assert_eq!(
            counts, source_rows,
            "pg_dump | pg_restore: target rows by table"
        );
        phase("pg_dump -Fc | pg_restore", &pipe);
        let (file, counts) = dump_restore(&rt, &source, &target_bin, Dump::FileJobs2);
        assert_eq!(counts, source_rows, "pg_restore -j 2: target rows by table");
        phase("pg_dump -Fc -f; pg_restore -j 2", &file);
        let best = pipe.secs.min(file.secs);
        let ratio = l.copy.secs / best;
        lines.push(format!(
            "{data_mb:>8.0} | {:>8.2} | {:>9.1} | {:>5.1} | {:>5.1} | {:>12.1} | {:>5.1} | {:>5.1} | {:>15.1} | {:>5.1} | {:>5.1} | {ratio:>5.2}{}",
            l.schema.secs,
            l.copy.secs,
            data_mb / l.copy.secs,
            l.copy.cpu_s,
            pipe.secs,
            data_mb / pipe.secs,
            pipe.cpu_s,
            file.secs,
            data_mb / file.secs,
            file.cpu_s,
            if ratio <= 1.5 { "" } else { "  OVER the 1.5 goal" }
        ));
        for v in &variants {
            let r = logical(&rt, &source, &target_bin, Some(v), timeout_s);
            assert_eq!(r.rows, source_rows, "{}: target rows by table", v.label);
            phase(
                &format!("logical, {}: pg::subscribe → all tables ready", v.label),
                &r.copy,
            );
            println!("    table syncs: {}", r.timeline);
            let ratio = r.copy.secs / best;
            lines.push(format!(
                "{data_mb:>8.0} | {:>8.2} | {:>9.1} | {:>5.1} | {:>5.1} | {:>12} | {:>5} | {:>5} | {:>15} | {:>5} | {:>5} | {ratio:>5.2}  ← {}",
                r.schema.secs,
                r.copy.secs,
                data_mb / r.copy.secs,
                r.copy.cpu_s,
                "as above",
                "",
                "",
                "",
                "",
                "",
                v.label
            ));
        }
    }
    println!(
        "\n== logical initial copy vs pg_dump -Fc | pg_restore: PostgreSQL {} → {}, {cores} cores ==",
        old.bin.version, target_bin.version
    );
    println!(
        "data MiB | schema s | logical s | MiB/s | CPU s | dump|rest. s | MiB/s | CPU s | dump; rest.-j2 s | MiB/s | CPU s | logical / faster dump (goal <= 1.5)"
    );
    for l in &lines {
        println!("{l}");
    }
    for v in &variants {
        println!(
            "{}: the logical copy into a target with {} (the lab's settings otherwise)",
            v.label,
            v.describe()
        );
    }
    println!(
        "data MiB: heap + TOAST of the source's tables, indexes not counted. logical s: pg::subscribe until every table is ready, the schema copied before (schema s). dump s: end to end (schema, data, indexes, constraints), the target major's tools. CPU s: CPU seconds of the source and target servers and the tools in the phase (the machine is shared: wall times stretch with others' load, this does not)."
    );
    println!(
        "bench wall time {:.0} s; load average at the end {}",
        wall.elapsed().as_secs_f64(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
}
