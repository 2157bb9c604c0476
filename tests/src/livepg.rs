//! Real PostgreSQL servers (from `godwit_lab::pgproc::Scratch`) behind a
//! `pg::live::Connector` that knows them by name, for tests and benches of the live areas.

use std::collections::HashMap;
use std::sync::Arc;

use godwit_engine::{ErrorKind, PrimitiveError};
use godwit_lab::pgproc::{Scratch, Server};
use godwit_stdlib::pg::live::{BoxFuture, Connector, Pool, Target};
use godwit_stdlib::validate::live::LiveValidate;

/// Database ids (`orders-db`, ...) mapped to local servers, reached as `postgres` over
/// loopback without TLS.
pub struct Ports(pub HashMap<String, u16>);

impl Ports {
    /// The servers by database id.
    pub fn of(servers: &[(&str, &Server)]) -> Ports {
        Ports(
            servers
                .iter()
                .map(|(n, s)| (n.to_string(), s.port))
                .collect(),
        )
    }
}

impl Connector for Ports {
    fn access(&self, _db: &str) -> godwit_stdlib::pg::Access {
        godwit_stdlib::pg::Access {
            available: true,
            how: "superuser postgres over loopback (test servers)".into(),
            security_group: None,
        }
    }

    fn target<'a>(&'a self, db: &'a str) -> BoxFuture<'a, Result<Target, PrimitiveError>> {
        Box::pin(async move {
            let port = *self.0.get(db).ok_or_else(|| {
                PrimitiveError::new(
                    "pg",
                    "connect",
                    ErrorKind::NotFound,
                    format!("no server named {db}"),
                    "name one of the test's servers",
                )
            })?;
            let mut config = tokio_postgres::Config::new();
            config
                .host("127.0.0.1")
                .port(port)
                .user("postgres")
                .dbname("postgres");
            Ok(Target {
                config,
                tls: None,
                aurora: false,
                bind: None,
            })
        })
    }
}

/// A place for the test's servers; a missing PostgreSQL fails the test with the install
/// command (never a skip).
pub fn scratch() -> Scratch {
    Scratch::new().unwrap_or_else(|e| {
        panic!("PostgreSQL is needed for this test (apt-get install postgresql): {e}")
    })
}

/// The runtime the tests' pools and clients run on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A [`LiveValidate`] over `servers` (name, server), its pool on `handle`.
pub fn live_validate(servers: &[(&str, &Server)], handle: tokio::runtime::Handle) -> LiveValidate {
    let ports = Ports(
        servers
            .iter()
            .map(|(n, s)| (n.to_string(), s.port))
            .collect(),
    );
    LiveValidate::new(Arc::new(Pool::new(Arc::new(ports), handle)))
}

/// Run `sql` (several statements) on `server`'s `postgres` database.
pub async fn exec(server: &Server, sql: &str) {
    let (client, conn) = tokio_postgres::connect(
        &server.conninfo("postgres", "postgres"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap_or_else(|e| panic!("connect to port {}: {e}", server.port));
    let task = tokio::spawn(conn);
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    drop(client);
    let _ = task.await;
}

/// The first column of the first row of `sql`, as text.
pub async fn one(server: &Server, sql: &str) -> Option<String> {
    let (client, conn) = tokio_postgres::connect(
        &server.conninfo("postgres", "postgres"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap_or_else(|e| panic!("connect to port {}: {e}", server.port));
    let task = tokio::spawn(conn);
    let row = client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    let v = row.get(0);
    drop(client);
    let _ = task.await;
    v
}

/// The simulator's areas (scenario `busy-source`) with `pg` and `validate` over real servers
/// (`servers`: database id → server), on the system clock: runbooks and probes whose SQL runs
/// on real PostgreSQL while the rest of the world is simulated.
pub fn sql_world(
    servers: &[(&str, &Server)],
    handle: tokio::runtime::Handle,
) -> godwit_stdlib::world::World {
    sql_world_on(Arc::new(Ports::of(servers)), handle)
}

/// [`sql_world`] reaching its servers through `connector` (another login, a master user).
pub fn sql_world_on(
    connector: Arc<dyn Connector>,
    handle: tokio::runtime::Handle,
) -> godwit_stdlib::world::World {
    let pool = Arc::new(Pool::new(connector, handle));
    let mut areas = godwit_stdlib::world::World::sim(
        godwit_stdlib::sim::scenario::Scenario::load("busy-source").expect("a built-in scenario"),
    )
    .areas
    .expect("the sim world has areas");
    areas.pg = Arc::new(godwit_stdlib::pg::live::LivePg::new(pool.clone()));
    areas.validate = Arc::new(LiveValidate::new(pool));
    godwit_stdlib::world::World::new("sql", Arc::new(godwit_engine::SystemClock), areas)
}

/// Run the runbook text `script` for `orders-db` in `world` on a memory store: its report
/// and transcript.
pub fn run_script(
    world: &godwit_stdlib::world::World,
    rt: &tokio::runtime::Runtime,
    script: &str,
    params: serde_json::Map<String, serde_json::Value>,
) -> (
    godwit_engine::RunReport,
    Vec<godwit_engine::transcript::Line>,
) {
    let dir = tempfile::tempdir().unwrap();
    let book = dir.path().join("script.rhai");
    std::fs::write(&book, script).unwrap();
    let collector = godwit_engine::transcript::Collector::new();
    let mut runner = world.runner(
        Arc::new(godwit_engine::journal::memory::MemoryStore::new()),
        rt.handle().clone(),
    );
    runner.sinks.push(Arc::new(collector.clone()));
    let report = runner
        .start(godwit_engine::StartRequest {
            runbook: book,
            cluster: "orders-db".into(),
            params,
            run_id: Some("script".into()),
        })
        .unwrap();
    (report, collector.lines())
}
