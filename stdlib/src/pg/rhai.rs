//! Rhai module `pg`.

use std::sync::Arc;
use std::time::Duration;

use ::rhai::{Array, Dynamic, Engine, Map, Module, NativeCallContext};
use godwit_engine::{Host, PrimitiveError};
use serde_json::json;

use super::*;
use crate::prim::{RhaiResult, call, poll, strings, volatile_fn, wait_opts};

const A: &str = "pg";

pub fn register(engine: &mut Engine, host: &Host, pg: Arc<dyn Pg>) {
    engine.register_static_module(A, module(host, pg).into());
}

/// A `fn(db) -> T` primitive: the common shape of the read-only ones.
macro_rules! read_fn {
    ($m:expr, $host:expr, $pg:expr, $name:literal, $ret:literal, $doc:expr, $method:ident) => {{
        let (p, h) = ($pg.clone(), $host.clone());
        volatile_fn!(
            $m,
            $name,
            &["db: &str", $ret],
            $doc,
            move |ctx: NativeCallContext, db: &str| -> RhaiResult<Dynamic> {
                call(&ctx, &h, A, $name, &json!({ "db": db }), |cx| p.$method(cx, db))
            }
        );
    }};
}

fn string_list(
    ctx: &NativeCallContext,
    op: &str,
    what: &str,
    arr: Array,
) -> RhaiResult<Vec<String>> {
    strings(&Dynamic::from_array(arr)).ok_or_else(|| {
        PrimitiveError::invalid(
            A,
            op,
            format!("{what} must be an array of strings"),
            "e.g. [\"orders_app\"]",
        )
        .into_rhai_at(ctx.call_position())
    })
}

#[allow(clippy::too_many_lines)] // one registration per primitive, each with its reference doc
pub fn module(host: &Host, pg: Arc<dyn Pg>) -> Module {
    let mut m = Module::new();
    read_fn!(
        &mut m,
        host,
        pg,
        "installed_extensions",
        "Array",
        r#"
The extensions installed in the database (`pg_extension`), sorted by name.

# Parameters
* `db` — an RDS instance id or an Aurora cluster id.

# Returns
Array of `#{ name, version }`.

# Errors
`NotFound` for an unknown endpoint; `Timeout` (retryable) while it is rebooting.

# Example
```rhai
let installed = pg::installed_extensions("orders-db");
let v = rds::list_engine_versions("aurora-postgresql").filter(|v| v.version == "15.4")[0];
let missing = installed.filter(|e| !v.supported_extensions.contains(e.name));
if !missing.is_empty() { throw missing; }
```
"#,
        installed_extensions
    );

    let (p, h) = (pg.clone(), host.clone());
    volatile_fn!(
        &mut m,
        "settings",
        &["db: &str", "names: Array", "Array"],
        r#"
Server settings (`pg_settings`), sorted by name.

# Parameters
* `db` — an RDS instance id or an Aurora cluster id.
* `names` — the settings wanted; `[]` for all godwit looks at (`wal_segment_size`,
  `archive_timeout`, `wal_level`, `rds.logical_replication`, `server_version`, and the
  parameter group's).

# Returns
Array of `#{ name, setting }` (`setting` as text, like `pg_settings`).

# Errors
`NotFound`; `Invalid` when `names` is not an array of strings.

# Example
```rhai
let s = pg::settings("orders-db", ["wal_segment_size", "archive_timeout"]);
if s[0].name != "archive_timeout" || s[1].setting != "67108864" { throw s; }
```
"#,
        move |ctx: NativeCallContext, db: &str, names: Array| -> RhaiResult<Dynamic> {
            let names = string_list(&ctx, "settings", "names", names)?;
            call(
                &ctx,
                &h,
                A,
                "settings",
                &json!({ "db": db, "names": names }),
                |cx| p.settings(cx, db, &names),
            )
        }
    );

    read_fn!(
        &mut m,
        host,
        pg,
        "unlogged_tables",
        "Array",
        r#"
Unlogged tables (`relpersistence = 'u'`): they are not in WAL, so a physical replica has them
empty — they would silently vanish at cutover.

# Parameters
* `db` — an RDS instance id or an Aurora cluster id.

# Returns
Array of qualified table names, sorted.

# Errors
`NotFound`.

# Example
```rhai
let t = pg::unlogged_tables("orders-db");
if !t.is_empty() { throw `make these tables logged first: ${t}`; }
```
"#,
        unlogged_tables
    );

    read_fn!(
        &mut m,
        host,
        pg,
        "replication_slots",
        "Array",
        r#"
Replication slots with the WAL each holds back, measured per type: a logical slot from its
`confirmed_flush_lsn`, a physical slot from its `restart_lsn`.

# Parameters
* `db` — an RDS instance id or an Aurora cluster id.

# Returns
Array of `#{ slot_name, slot_type, plugin, database, active, restart_lsn,
confirmed_flush_lsn, wal_status, lag_bytes, inactive_since }` (`inactive_since` epoch seconds
or `()`); the shape `lag::stale_slots` takes.

# Errors
`NotFound`.

# Example
```rhai
let slots = pg::replication_slots("orders-db");
let cdc = slots.filter(|s| s.slot_type == "logical");
if cdc.len() != 1 || !cdc[0].active || cdc[0].plugin != "pgoutput" { throw slots; }
```
"#,
        replication_slots
    );

    read_fn!(
        &mut m,
        host,
        pg,
        "current_lsn",
        "Map",
        r#"
The current WAL write position of a primary (`pg_current_wal_lsn()`).

# Parameters
* `db` — the source instance, or a promoted Aurora cluster.

# Returns
`#{ lsn, lsn_bytes }`: text (`16/B374D848`) and byte position (INT) for arithmetic.

# Errors
`Conflict` on a replica (use `replay_lsn`); `NotFound`.

# Example
```rhai
let a = pg::current_lsn("orders-db");
sleep("1m");
let b = pg::current_lsn("orders-db");
if b.lsn_bytes <= a.lsn_bytes { throw "a busy source writes WAL"; }
```
"#,
        current_lsn
    );

    read_fn!(
        &mut m,
        host,
        pg,
        "replay_lsn",
        "Map",
        r#"
How far the Aurora replica has replayed the source's WAL (`pg_last_wal_replay_lsn()`).

# Parameters
* `db` — the Aurora replica cluster id.

# Returns
`#{ lsn, lsn_bytes }`.

# Errors
`Conflict` when the cluster is not replicating (not created yet, or promoted).

# Example
```rhai
rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4" });
rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.xlarge" });
rds::wait_until_cluster_available("orders-aurora", #{ timeout: "12h" });
sleep("10m");
let behind = pg::current_lsn("orders-db").lsn_bytes - pg::replay_lsn("orders-aurora").lsn_bytes;
if behind < 0 { throw behind; }
```
"#,
        replay_lsn
    );

    read_fn!(
        &mut m,
        host,
        pg,
        "application_backends",
        "Array",
        r#"
Backends of application roles, by pid — the ones the fence must end. A terminated backend
stays listed (with `terminating: true`) until it has exited.

# Parameters
* `db` — an RDS instance id or an Aurora cluster id.

# Returns
Array of `#{ pid, role, state, backend_start, xact_start, terminating }` (times in epoch
seconds).

# Errors
`NotFound`; `Timeout` (retryable) while the instance is rebooting.

# Example
```rhai
let b = pg::application_backends("orders-db");
if b.len() != 40 || b[0].role != "orders_app" { throw b.len(); }
```
"#,
        application_backends
    );

    let (p, h) = (pg.clone(), host.clone());
    volatile_fn!(
        &mut m,
        "block_logins",
        &["db: &str", "roles: Array", "Array"],
        r#"
Block new logins of application roles (the first move of the fence). Existing sessions are
not affected. Idempotent.

# Parameters
* `db` — the source instance.
* `roles` — application role names.

# Returns
All roles now blocked, sorted.

# Errors
`NotFound` for an unknown role or endpoint.

# Example
```rhai
let blocked = pg::block_logins("orders-db", ["orders_app"]);
if blocked != ["orders_app"] { throw blocked; }
pg::unblock_logins("orders-db", ["orders_app"]);
```
"#,
        move |ctx: NativeCallContext, db: &str, roles: Array| -> RhaiResult<Dynamic> {
            let roles = string_list(&ctx, "block_logins", "roles", roles)?;
            call(
                &ctx,
                &h,
                A,
                "block_logins",
                &json!({ "db": db, "roles": roles }),
                |cx| p.block_logins(cx, db, &roles),
            )
        }
    );

    let (p, h) = (pg.clone(), host.clone());
    volatile_fn!(
        &mut m,
        "unblock_logins",
        &["db: &str", "roles: Array", "Array"],
        r#"
Allow logins of roles again (the undo of `block_logins`). Idempotent.

# Parameters
* `db` — the source instance.
* `roles` — role names.

# Returns
The roles still blocked, sorted.

# Errors
`NotFound` for an unknown endpoint.

# Example
```rhai
pg::block_logins("orders-db", ["orders_app"]);
if pg::unblock_logins("orders-db", ["orders_app"]) != [] { throw "still blocked"; }
```
"#,
        move |ctx: NativeCallContext, db: &str, roles: Array| -> RhaiResult<Dynamic> {
            let roles = string_list(&ctx, "unblock_logins", "roles", roles)?;
            call(
                &ctx,
                &h,
                A,
                "unblock_logins",
                &json!({ "db": db, "roles": roles }),
                |cx| p.unblock_logins(cx, db, &roles),
            )
        }
    );

    let (p, h) = (pg.clone(), host.clone());
    volatile_fn!(
        &mut m,
        "terminate_backends",
        &["db: &str", "pids: Array", "Array"],
        r#"
`pg_terminate_backend` each pid. Returns **before** the backends exit, and a backend can still
commit until it has: poll with `wait_until_no_application_backends` before trusting the fence.

# Parameters
* `db` — the source instance.
* `pids` — backend pids (from `application_backends`).

# Returns
The pids signalled.

# Errors
`NotFound`; `Invalid` when `pids` is not an array of integers.

# Example
```rhai
pg::block_logins("orders-db", ["orders_app"]);
let pids = pg::application_backends("orders-db").map(|b| b.pid);
let done = pg::terminate_backends("orders-db", pids);
if done.len() != pids.len() { throw done; }
let left = pg::wait_until_no_application_backends("orders-db", #{ timeout: "1m", every: "1s" });
if left.remaining != 0 { throw left; }
```
"#,
        move |ctx: NativeCallContext, db: &str, pids: Array| -> RhaiResult<Dynamic> {
            let list: Option<Vec<i64>> = pids.iter().map(|p| p.as_int().ok()).collect();
            let pids = list.ok_or_else(|| {
                PrimitiveError::invalid(
                    A,
                    "terminate_backends",
                    "pids must be an array of integers",
                    "pass application_backends(db).map(|b| b.pid)",
                )
                .into_rhai_at(ctx.call_position())
            })?;
            call(
                &ctx,
                &h,
                A,
                "terminate_backends",
                &json!({ "db": db, "pids": pids }),
                |cx| p.terminate_backends(cx, db, &pids),
            )
        }
    );

    let (p, h) = (pg.clone(), host.clone());
    volatile_fn!(
        &mut m,
        "wait_until_no_application_backends",
        &["db: &str", "options: Map", "Map"],
        r#"
Poll until no application backend remains — the proof the fence needs (terminate returns
before backends exit; a backend in a long transaction can take much longer).

# Parameters
* `db` — the source instance.
* `options` — `#{ timeout, every, min_every }`; defaults `timeout: "5m"`, `every: "1s"`; `min_every` ramps the polls (first after it, doubling up to `every`).

# Returns
`#{ db, remaining: 0 }`.

# Errors
`Timeout` naming how many backends are left and the oldest transaction.

# Example
```rhai
pg::block_logins("orders-db", ["orders_app"]);
pg::terminate_backends("orders-db", pg::application_backends("orders-db").map(|b| b.pid));
let r = pg::wait_until_no_application_backends("orders-db", #{});
if r.remaining != 0 { throw r; }
```
"#,
        move |ctx: NativeCallContext, db: &str, options: Map| -> RhaiResult<Dynamic> {
            const OP: &str = "wait_until_no_application_backends";
            let (timeout, every) = wait_opts(
                A,
                OP,
                options,
                Duration::from_secs(300),
                Duration::from_secs(1),
            )
            .map_err(|e| e.into_rhai_at(ctx.call_position()))?;
            call(&ctx, &h, A, OP, &json!({ "db": db }), |cx| {
                let mut last = 0usize;
                poll(
                    cx,
                    timeout,
                    every,
                    &format!("no application backend on {db}"),
                    |cx| {
                        let left = p.application_backends(cx, db)?;
                        last = left.len();
                        Ok(left.is_empty().then(|| json!({ "db": db, "remaining": 0 })))
                    },
                )
                .map_err(|mut e| {
                    e.message = format!("{} ({last} backends left)", e.message);
                    e
                })
            })
        }
    );

    read_fn!(
        &mut m,
        host,
        pg,
        "table_hashes",
        "Array",
        r#"
Per-table content hashes, for the exact validation at the fence: equal hashes on the source
and its replica (at the same LSN) mean equal contents. A replica that has not replayed
everything, or an unlogged table (not in WAL), shows a different hash.

# Parameters
* `db` — the source instance, its Aurora replica, or the promoted cluster.

# Returns
Array of `#{ table, rows, hash }`, sorted by table.

# Errors
`NotFound` for an endpoint that holds no copy of the source's tables.

# Example
```rhai
rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4" });
rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.xlarge" });
rds::wait_until_cluster_available("orders-aurora", #{ timeout: "12h" });
if pg::table_hashes("orders-db") == pg::table_hashes("orders-aurora") { throw "replica behind"; }
pg::block_logins("orders-db", ["orders_app"]);
pg::terminate_backends("orders-db", pg::application_backends("orders-db").map(|b| b.pid));
pg::wait_until_no_application_backends("orders-db", #{});
let fence = pg::current_lsn("orders-db").lsn_bytes;
while pg::replay_lsn("orders-aurora").lsn_bytes < fence { sleep("5s"); }
let src = pg::table_hashes("orders-db");
let dst = pg::table_hashes("orders-aurora");
if src != dst { throw `mismatch: ${src} vs ${dst}`; }
```
"#,
        table_hashes
    );

    read_fn!(
        &mut m,
        host,
        pg,
        "sequences",
        "Array",
        r#"
Sequences with their last value (for the `logical` variant's sequence sync at cutover).

# Parameters
* `db` — an RDS instance id or an Aurora cluster id.

# Returns
Array of `#{ name, last_value }`.

# Errors
`NotFound`.

# Example
```rhai
let a = pg::sequences("orders-db");
sleep("1m");
let b = pg::sequences("orders-db");
if b[0].last_value <= a[0].last_value { throw "writes advance sequences"; }
```
"#,
        sequences
    );
    m
}
