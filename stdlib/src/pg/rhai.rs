//! Rhai module `pg`: what godwit reads and does inside PostgreSQL, and the doc comments that
//! are the reference.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use ::rhai::plugin::*;
use ::rhai::{Array, Dynamic, Map, Module, NativeCallContext};
use godwit_engine::PrimitiveError;
use serde_json::json;

use crate::prim::{RhaiResult, call, poll, shared, strings, wait_opts};

const A: &str = "pg";

/// Install `pg::…` into `engine`. The module is built once per process: its functions
/// capture nothing (they find the world's backend through the engine, see [`call`]).
pub fn register(engine: &mut Engine) {
    static MODULE: LazyLock<Arc<Module>> = LazyLock::new(|| shared(A, exported_module!(pg_module)));
    engine.register_static_module(A, MODULE.clone());
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

#[export_module]
mod pg_module {
    use super::*;

    /// The extensions installed in the database (`pg_extension`), sorted by name.
    ///
    /// # Parameters
    /// * `db` — an RDS instance id or an Aurora cluster id.
    ///
    /// # Returns
    /// Array of `#{ name, version }`.
    ///
    /// # Errors
    /// `NotFound` for an unknown endpoint; `Timeout` (retryable) while it is rebooting.
    ///
    /// # Example
    /// ```rhai
    /// let installed = pg::installed_extensions("orders-db");
    /// let v = rds::list_engine_versions("aurora-postgresql").filter(|v| v.version == "15.4")[0];
    /// let missing = installed.filter(|e| !v.supported_extensions.contains(e.name));
    /// if !missing.is_empty() { throw missing; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn installed_extensions(ctx: NativeCallContext, db: &str) -> RhaiResult<Array> {
        call(
            &ctx,
            A,
            "installed_extensions",
            &json!({ "db": db }),
            |cx, w| w.pg.installed_extensions(cx, db),
        )
    }

    /// Server settings (`pg_settings`), sorted by name.
    ///
    /// # Parameters
    /// * `db` — an RDS instance id or an Aurora cluster id.
    /// * `names` — the settings wanted; `[]` for all godwit looks at (`wal_segment_size`,
    ///   `archive_timeout`, `wal_level`, `rds.logical_replication`, `server_version`, and the
    ///   parameter group's).
    ///
    /// # Returns
    /// Array of `#{ name, setting }` (`setting` as text, like `pg_settings`).
    ///
    /// # Errors
    /// `NotFound`; `Invalid` when `names` is not an array of strings.
    ///
    /// # Example
    /// ```rhai
    /// let s = pg::settings("orders-db", ["wal_segment_size", "archive_timeout"]);
    /// if s[0].name != "archive_timeout" || s[1].setting != "67108864" { throw s; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn settings(ctx: NativeCallContext, db: &str, names: Array) -> RhaiResult<Array> {
        let names = string_list(&ctx, "settings", "names", names)?;
        call(
            &ctx,
            A,
            "settings",
            &json!({ "db": db, "names": names }),
            |cx, w| w.pg.settings(cx, db, &names),
        )
    }

    /// Unlogged tables (`relpersistence = 'u'`): they are not in WAL, so a physical replica has them
    /// empty — they would silently vanish at cutover.
    ///
    /// # Parameters
    /// * `db` — an RDS instance id or an Aurora cluster id.
    ///
    /// # Returns
    /// Array of qualified table names, sorted.
    ///
    /// # Errors
    /// `NotFound`.
    ///
    /// # Example
    /// ```rhai
    /// let t = pg::unlogged_tables("orders-db");
    /// if !t.is_empty() { throw `make these tables logged first: ${t}`; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn unlogged_tables(ctx: NativeCallContext, db: &str) -> RhaiResult<Array> {
        call(&ctx, A, "unlogged_tables", &json!({ "db": db }), |cx, w| {
            w.pg.unlogged_tables(cx, db)
        })
    }

    /// Every user table with its size as the server's statistics estimate it: cheap on any
    /// size of database (no table is read). The plan's calibration probe reads it: the exact
    /// comparison at the fence reads every row, so its duration follows the rows.
    ///
    /// # Parameters
    /// * `db` — an RDS instance id or an Aurora cluster id.
    ///
    /// # Returns
    /// Array of `#{ table, rows, bytes }` (`rows` estimated live rows from
    /// `pg_stat_user_tables`, `bytes` the table's size with TOAST, without indexes), sorted by
    /// table; tables of another database than the first are prefixed with `dbname:`.
    ///
    /// # Errors
    /// `NotFound`.
    ///
    /// # Example
    /// ```rhai
    /// let t = pg::table_stats("orders-db");
    /// let rows = t.reduce(|sum, t| sum + t.rows, 0);
    /// assert(t.len() > 0 && rows > 0, `tables with rows: ${t}`);
    /// assert(t.all(|x| x.bytes >= 0 && x.table != ""), "every table named, with its size");
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn table_stats(ctx: NativeCallContext, db: &str) -> RhaiResult<Array> {
        call(&ctx, A, "table_stats", &json!({ "db": db }), |cx, w| {
            w.pg.table_stats(cx, db)
        })
    }

    /// Replication slots with the WAL each holds back, measured per type: a logical slot from its
    /// `confirmed_flush_lsn`, a physical slot from its `restart_lsn`.
    ///
    /// # Parameters
    /// * `db` — an RDS instance id or an Aurora cluster id.
    ///
    /// # Returns
    /// Array of `#{ slot_name, slot_type, plugin, database, active, restart_lsn,
    /// confirmed_flush_lsn, wal_status, lag_bytes, inactive_since }` (`inactive_since` epoch seconds
    /// or `()`); the shape `lag::stale_slots` takes.
    ///
    /// # Errors
    /// `NotFound`.
    ///
    /// # Example
    /// ```rhai
    /// let slots = pg::replication_slots("orders-db");
    /// let cdc = slots.filter(|s| s.slot_type == "logical");
    /// if cdc.len() != 1 || !cdc[0].active || cdc[0].plugin != "pgoutput" { throw slots; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn replication_slots(ctx: NativeCallContext, db: &str) -> RhaiResult<Array> {
        call(
            &ctx,
            A,
            "replication_slots",
            &json!({ "db": db }),
            |cx, w| w.pg.replication_slots(cx, db),
        )
    }

    /// The current WAL write position of a primary (`pg_current_wal_lsn()`).
    ///
    /// # Parameters
    /// * `db` — the source instance, or a promoted Aurora cluster.
    ///
    /// # Returns
    /// `#{ lsn, lsn_bytes }`: text (`16/B374D848`) and byte position (INT) for arithmetic.
    ///
    /// # Errors
    /// `Conflict` on a replica (use `replay_lsn`); `NotFound`.
    ///
    /// # Example
    /// ```rhai
    /// let a = pg::current_lsn("orders-db");
    /// sleep("1m");
    /// let b = pg::current_lsn("orders-db");
    /// if b.lsn_bytes <= a.lsn_bytes { throw "a busy source writes WAL"; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn current_lsn(ctx: NativeCallContext, db: &str) -> RhaiResult<Map> {
        call(&ctx, A, "current_lsn", &json!({ "db": db }), |cx, w| {
            w.pg.current_lsn(cx, db)
        })
    }

    /// Whether godwit can reach a database with SQL in this world, how it logs in, and the
    /// security group its connections come from — what a quarantine must admit on the database
    /// port. Without access, decisions come from AWS APIs and CloudWatch.
    ///
    /// # Parameters
    /// * `db` — an RDS instance id or an Aurora cluster id.
    ///
    /// # Returns
    /// `#{ available, how, security_group }` (`security_group` is `()` without access).
    ///
    /// # Errors
    /// `NotFound` for an unknown database.
    ///
    /// # Example
    /// ```rhai
    /// let a = pg::access("orders-db");
    /// assert(a.available, a.how);
    /// assert_eq(a.security_group, "sg-0godwit");
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn access(ctx: NativeCallContext, db: &str) -> RhaiResult<Map> {
        call(&ctx, A, "access", &json!({ "db": db }), |cx, w| {
            w.pg.access(cx, db)
        })
    }

    /// The walsenders of a primary, as it reports them (`pg_stat_replication` with each one's
    /// slot): where a streaming replica — an Aurora replica included — stands, in the
    /// primary's own WAL, so the positions compare with `pg::current_lsn` of the primary.
    /// Empty while no replica is connected (a reboot ends the stream until it reconnects).
    ///
    /// # Parameters
    /// * `db` — the primary (the source instance).
    ///
    /// # Returns
    /// Array of `#{ pid, application_name, client_addr, state, slot_name, sent_lsn_bytes,
    /// write_lsn_bytes, flush_lsn_bytes, replay_lsn_bytes, replay_lsn }`, sorted by pid.
    ///
    /// # Errors
    /// `NotFound` for an unknown database; `Timeout` (retryable) when it cannot be reached.
    ///
    /// # Example
    /// ```rhai
    /// rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4", iam_auth: true });
    /// rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.xlarge" });
    /// rds::wait_until_cluster_available("orders-aurora", #{ timeout: "12h" });
    /// sleep("10m");
    /// let senders = pg::replication_connections("orders-db");
    /// assert_eq(senders.len(), 1);
    /// let behind = pg::current_lsn("orders-db").lsn_bytes - senders[0].replay_lsn_bytes;
    /// assert(behind >= 0, `replayed past the source? ${behind}`);
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn replication_connections(ctx: NativeCallContext, db: &str) -> RhaiResult<Array> {
        call(
            &ctx,
            A,
            "replication_connections",
            &json!({ "db": db }),
            |cx, w| w.pg.replication_connections(cx, db),
        )
    }

    /// The server's last checkpoint (`pg_control_checkpoint()`). Right after a clean restart it
    /// is the shutdown checkpoint (`shutdown: true`): every commit made before the restart
    /// precedes `checkpoint_lsn_bytes` — the fence point of a reboot.
    ///
    /// # Parameters
    /// * `db` — an RDS instance id (Aurora refuses the WAL control functions).
    ///
    /// # Returns
    /// `#{ checkpoint_lsn, checkpoint_lsn_bytes, redo_lsn_bytes, time, shutdown }`.
    ///
    /// # Errors
    /// `Invalid` on Aurora; `Timeout` (retryable) when the server cannot be reached.
    ///
    /// # Example
    /// ```rhai
    /// let before = pg::current_lsn("orders-db").lsn_bytes;
    /// rds::reboot_instance("orders-db");
    /// rds::wait_until_instance_available("orders-db", #{ timeout: "20m" });
    /// let c = pg::last_checkpoint("orders-db");
    /// assert(c.shutdown, "the reboot's shutdown checkpoint");
    /// assert(c.checkpoint_lsn_bytes >= before, "after every earlier commit");
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn last_checkpoint(ctx: NativeCallContext, db: &str) -> RhaiResult<Map> {
        call(&ctx, A, "last_checkpoint", &json!({ "db": db }), |cx, w| {
            w.pg.last_checkpoint(cx, db)
        })
    }

    /// How far a streaming replica has replayed (`pg_last_wal_replay_lsn()`), asked of the
    /// replica itself. Aurora refuses it (`FeatureNotSupported`): for an Aurora replica read
    /// its position on the source with `pg::replication_connections`.
    ///
    /// # Parameters
    /// * `db` — a replica's id.
    ///
    /// # Returns
    /// `#{ lsn, lsn_bytes }`.
    ///
    /// # Errors
    /// `Invalid` on Aurora (not supported there); `Conflict` when `db` is not a replica.
    ///
    /// # Example
    /// ```rhai
    /// rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4", iam_auth: true });
    /// rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.xlarge" });
    /// rds::wait_until_cluster_available("orders-aurora", #{ timeout: "12h" });
    /// let e = #{};
    /// try { pg::replay_lsn("orders-aurora"); } catch (err) { e = err; }
    /// assert_eq(e.kind, "Invalid");
    /// assert(e.message.contains("not supported on Aurora"), e.message);
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn replay_lsn(ctx: NativeCallContext, db: &str) -> RhaiResult<Map> {
        call(&ctx, A, "replay_lsn", &json!({ "db": db }), |cx, w| {
            w.pg.replay_lsn(cx, db)
        })
    }

    /// Backends of application roles, by pid — the ones the fence must end. A terminated backend
    /// stays listed (with `terminating: true`) until it has exited.
    ///
    /// # Parameters
    /// * `db` — an RDS instance id or an Aurora cluster id.
    ///
    /// # Returns
    /// Array of `#{ pid, role, state, backend_start, xact_start, terminating }` (times in epoch
    /// seconds).
    ///
    /// # Errors
    /// `NotFound`; `Timeout` (retryable) while the instance is rebooting.
    ///
    /// # Example
    /// ```rhai
    /// let b = pg::application_backends("orders-db");
    /// if b.len() != 40 || b[0].role != "orders_app" { throw b.len(); }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn application_backends(ctx: NativeCallContext, db: &str) -> RhaiResult<Array> {
        call(
            &ctx,
            A,
            "application_backends",
            &json!({ "db": db }),
            |cx, w| w.pg.application_backends(cx, db),
        )
    }

    /// Block new logins of application roles (the first move of the fence). Existing sessions are
    /// not affected. Idempotent.
    ///
    /// # Parameters
    /// * `db` — the source instance.
    /// * `roles` — application role names.
    ///
    /// # Returns
    /// All roles now blocked, sorted.
    ///
    /// # Errors
    /// `NotFound` for an unknown role or endpoint.
    ///
    /// # Example
    /// ```rhai
    /// let blocked = pg::block_logins("orders-db", ["orders_app"]);
    /// if blocked != ["orders_app"] { throw blocked; }
    /// pg::unblock_logins("orders-db", ["orders_app"]);
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn block_logins(ctx: NativeCallContext, db: &str, roles: Array) -> RhaiResult<Array> {
        let roles = string_list(&ctx, "block_logins", "roles", roles)?;
        call(
            &ctx,
            A,
            "block_logins",
            &json!({ "db": db, "roles": roles }),
            |cx, w| w.pg.block_logins(cx, db, &roles),
        )
    }

    /// Allow logins of roles again (the undo of `block_logins`). Idempotent.
    ///
    /// # Parameters
    /// * `db` — the source instance.
    /// * `roles` — role names.
    ///
    /// # Returns
    /// The roles still blocked, sorted.
    ///
    /// # Errors
    /// `NotFound` for an unknown endpoint.
    ///
    /// # Example
    /// ```rhai
    /// pg::block_logins("orders-db", ["orders_app"]);
    /// if pg::unblock_logins("orders-db", ["orders_app"]) != [] { throw "still blocked"; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn unblock_logins(ctx: NativeCallContext, db: &str, roles: Array) -> RhaiResult<Array> {
        let roles = string_list(&ctx, "unblock_logins", "roles", roles)?;
        call(
            &ctx,
            A,
            "unblock_logins",
            &json!({ "db": db, "roles": roles }),
            |cx, w| w.pg.unblock_logins(cx, db, &roles),
        )
    }

    /// `pg_terminate_backend` each pid. Returns **before** the backends exit, and a backend can still
    /// commit until it has: poll with `wait_until_no_application_backends` before trusting the fence.
    ///
    /// # Parameters
    /// * `db` — the source instance.
    /// * `pids` — backend pids (from `application_backends`).
    ///
    /// # Returns
    /// The pids signalled.
    ///
    /// # Errors
    /// `NotFound`; `Invalid` when `pids` is not an array of integers.
    ///
    /// # Example
    /// ```rhai
    /// pg::block_logins("orders-db", ["orders_app"]);
    /// let pids = pg::application_backends("orders-db").map(|b| b.pid);
    /// let done = pg::terminate_backends("orders-db", pids);
    /// if done.len() != pids.len() { throw done; }
    /// let left = pg::wait_until_no_application_backends("orders-db", #{ timeout: "1m", every: "1s" });
    /// if left.remaining != 0 { throw left; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn terminate_backends(ctx: NativeCallContext, db: &str, pids: Array) -> RhaiResult<Array> {
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
            A,
            "terminate_backends",
            &json!({ "db": db, "pids": pids }),
            |cx, w| w.pg.terminate_backends(cx, db, &pids),
        )
    }

    /// Poll until no application backend remains — the proof the fence needs (terminate returns
    /// before backends exit; a backend in a long transaction can take much longer).
    ///
    /// # Parameters
    /// * `db` — the source instance.
    /// * `options` — `#{ timeout, every, min_every }`; defaults `timeout: "5m"`, `every: "1s"`; `min_every` ramps the polls (first after it, doubling up to `every`).
    ///
    /// # Returns
    /// `#{ db, remaining: 0 }`.
    ///
    /// # Errors
    /// `Timeout` naming how many backends are left and the oldest transaction.
    ///
    /// # Example
    /// ```rhai
    /// pg::block_logins("orders-db", ["orders_app"]);
    /// pg::terminate_backends("orders-db", pg::application_backends("orders-db").map(|b| b.pid));
    /// let r = pg::wait_until_no_application_backends("orders-db", #{});
    /// if r.remaining != 0 { throw r; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn wait_until_no_application_backends(
        ctx: NativeCallContext,
        db: &str,
        options: Map,
    ) -> RhaiResult<Map> {
        const OP: &str = "wait_until_no_application_backends";
        let (timeout, every) = wait_opts(
            A,
            OP,
            options,
            Duration::from_secs(300),
            Duration::from_secs(1),
        )
        .map_err(|e| e.into_rhai_at(ctx.call_position()))?;
        call(&ctx, A, OP, &json!({ "db": db }), |cx, w| {
            let mut last = 0usize;
            poll(
                cx,
                timeout,
                every,
                &format!("no application backend on {db}"),
                |cx| {
                    let left = w.pg.application_backends(cx, db)?;
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

    /// Per-table content hashes, for the exact validation at the fence: equal hashes on the source
    /// and its replica (at the same LSN) mean equal contents. A replica that has not replayed
    /// everything, or an unlogged table (not in WAL), shows a different hash.
    ///
    /// # Parameters
    /// * `db` — the source instance, its Aurora replica, or the promoted cluster.
    ///
    /// # Returns
    /// Array of `#{ table, rows, hash }`, sorted by table.
    ///
    /// # Errors
    /// `NotFound` for an endpoint that holds no copy of the source's tables.
    ///
    /// # Example
    /// ```rhai
    /// rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4", iam_auth: true });
    /// rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.xlarge" });
    /// rds::wait_until_cluster_available("orders-aurora", #{ timeout: "12h" });
    /// if pg::table_hashes("orders-db") == pg::table_hashes("orders-aurora") { throw "replica behind"; }
    /// pg::block_logins("orders-db", ["orders_app"]);
    /// pg::terminate_backends("orders-db", pg::application_backends("orders-db").map(|b| b.pid));
    /// pg::wait_until_no_application_backends("orders-db", #{});
    /// let fence = pg::current_lsn("orders-db").lsn_bytes;
    /// // The replica's position, read on the source (Aurora has no pg_last_wal_replay_lsn).
    /// let behind = || { let c = pg::replication_connections("orders-db"); c.is_empty() || c.some(|s| s.replay_lsn_bytes < fence) };
    /// while behind.call() { sleep("5s"); }
    /// let src = pg::table_hashes("orders-db");
    /// let dst = pg::table_hashes("orders-aurora");
    /// if src != dst { throw `mismatch: ${src} vs ${dst}`; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn table_hashes(ctx: NativeCallContext, db: &str) -> RhaiResult<Array> {
        call(&ctx, A, "table_hashes", &json!({ "db": db }), |cx, w| {
            w.pg.table_hashes(cx, db)
        })
    }

    /// Sequences with their last value (for the `logical` variant's sequence sync at cutover).
    ///
    /// # Parameters
    /// * `db` — an RDS instance id or an Aurora cluster id.
    ///
    /// # Returns
    /// Array of `#{ name, last_value }`.
    ///
    /// # Errors
    /// `NotFound`.
    ///
    /// # Example
    /// ```rhai
    /// let a = pg::sequences("orders-db");
    /// sleep("1m");
    /// let b = pg::sequences("orders-db");
    /// if b[0].last_value <= a[0].last_value { throw "writes advance sequences"; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn sequences(ctx: NativeCallContext, db: &str) -> RhaiResult<Array> {
        call(&ctx, A, "sequences", &json!({ "db": db }), |cx, w| {
            w.pg.sequences(cx, db)
        })
    }

    /// A position past every commit acknowledged so far — asynchronous commits
    /// (`synchronous_commit = off`) included, which `current_lsn` (the WAL write position) can
    /// lie before. godwit commits a transaction of its own holding an empty logical message
    /// (prefix `godwit`, content `settled`; subscribers and CDC skip it), waiting for its flush
    /// (`synchronous_commit = local` for it alone): the WAL is written in order, so every
    /// earlier commit is written with it, without waiting for the WAL writer (up to
    /// `wal_writer_delay`). After a fence, what a subscriber or replica must reach before the
    /// other side takes over; the message is part of what it replays.
    ///
    /// # Parameters
    /// * `db` — a primary: an RDS instance id or a promoted Aurora cluster id.
    ///
    /// # Returns
    /// `#{ lsn, lsn_bytes }`.
    ///
    /// # Errors
    /// `Conflict` on a replica.
    ///
    /// # Example
    /// ```rhai
    /// let s = pg::settled_lsn("orders-db");
    /// if s.lsn_bytes < pg::current_lsn("orders-db").lsn_bytes - 1000000000 { throw s; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn settled_lsn(ctx: NativeCallContext, db: &str) -> RhaiResult<Map> {
        call(&ctx, A, "settled_lsn", &json!({ "db": db }), |cx, w| {
            w.pg.settled_lsn(cx, db)
        })
    }

    /// Every role that can log in, but godwit's own login and the platform's (`rdsadmin`, …):
    /// what a database fence blocks so that no client but godwit writes.
    ///
    /// # Parameters
    /// * `db` — an RDS instance id or an Aurora cluster id.
    ///
    /// # Returns
    /// Role names, sorted.
    ///
    /// # Errors
    /// `NotFound` for an unknown endpoint.
    ///
    /// # Example
    /// ```rhai
    /// let roles = pg::login_roles("orders-db");
    /// if !roles.contains("orders_app") { throw roles; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn login_roles(ctx: NativeCallContext, db: &str) -> RhaiResult<Array> {
        call(&ctx, A, "login_roles", &json!({ "db": db }), |cx, w| {
            w.pg.login_roles(cx, db)
        })
    }

    /// The login roles (as `login_roles`) that sign in with a password: not members of
    /// `rds_iam`, directly or through other roles. A logical copy (`copy_schema`) creates them
    /// on the target without one, for IAM, so their clients could not sign in after the
    /// cutover; the logical path's preflight refuses them.
    ///
    /// # Parameters
    /// * `db` — an RDS instance id or an Aurora cluster id.
    ///
    /// # Returns
    /// Role names, sorted; every login role where the server has no `rds_iam` role.
    ///
    /// # Errors
    /// `NotFound` for an unknown endpoint.
    ///
    /// # Example
    /// ```rhai
    /// let pw = pg::roles_without_iam("orders-db");
    /// if !pw.is_empty() { throw `these roles sign in with a password: ${pw}`; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn roles_without_iam(ctx: NativeCallContext, db: &str) -> RhaiResult<Array> {
        call(
            &ctx,
            A,
            "roles_without_iam",
            &json!({ "db": db }),
            |cx, w| w.pg.roles_without_iam(cx, db),
        )
    }

    /// Set sequences to at least the given values — the sequences of a database that took
    /// writes elsewhere (logical replication does not carry sequences): afterwards the next
    /// value of each is past the value given. A sequence already further is left alone.
    ///
    /// # Parameters
    /// * `db` — an RDS instance id or an Aurora cluster id.
    /// * `to` — array of `#{ name, last_value }`, as `pg::sequences` returns them (of the other database).
    ///
    /// # Returns
    /// Every sequence of `db` after, `#{ name, last_value }`, sorted by name.
    ///
    /// # Errors
    /// `NotFound` for a sequence `db` lacks (nothing is set then); `Invalid` for a malformed `to`.
    ///
    /// # Example
    /// ```rhai
    /// let now = pg::sequences("orders-db");
    /// let ahead = now.map(|s| #{ name: s.name, last_value: s.last_value + 1000 });
    /// let after = pg::advance_sequences("orders-db", ahead);
    /// if after[0].last_value != now[0].last_value + 1000 { throw after; }
    /// // Never lowered.
    /// if pg::advance_sequences("orders-db", now)[0].last_value != after[0].last_value { throw "lowered"; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn advance_sequences(ctx: NativeCallContext, db: &str, to: Array) -> RhaiResult<Array> {
        const OP: &str = "advance_sequences";
        let list: Option<Vec<super::super::Sequence>> = to
            .iter()
            .map(|v| {
                let m = v.read_lock::<Map>()?;
                Some(super::super::Sequence {
                    name: m.get("name")?.clone().into_string().ok()?,
                    last_value: m.get("last_value")?.as_int().ok()?,
                })
            })
            .collect();
        let to = list.ok_or_else(|| {
            PrimitiveError::invalid(
                A,
                OP,
                "to must be an array of #{ name, last_value }",
                "pass pg::sequences(other_db)",
            )
            .into_rhai_at(ctx.call_position())
        })?;
        call(&ctx, A, OP, &json!({ "db": db, "to": to }), |cx, w| {
            w.pg.advance_sequences(cx, db, &to)
        })
    }

    /// Every user table with its columns in order: two databases whose lists differ have a
    /// schema difference logical replication cannot carry (it replicates rows, not DDL).
    ///
    /// # Parameters
    /// * `db` — an RDS instance id or an Aurora cluster id.
    ///
    /// # Returns
    /// Array of `#{ table, columns }` (`columns`: `name type` joined by `, `), sorted by table.
    ///
    /// # Errors
    /// `NotFound` for an unknown endpoint.
    ///
    /// # Example
    /// ```rhai
    /// let t = pg::table_definitions("orders-db");
    /// if t.is_empty() || !t[0].columns.contains(" ") { throw t; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn table_definitions(ctx: NativeCallContext, db: &str) -> RhaiResult<Array> {
        call(
            &ctx,
            A,
            "table_definitions",
            &json!({ "db": db }),
            |cx, w| w.pg.table_definitions(cx, db),
        )
    }

    /// User tables whose updates and deletes logical replication cannot carry: no primary key
    /// and no replica identity. Published, such a table refuses its own `UPDATE` and `DELETE`
    /// on the publisher — the fix is a primary key, or `ALTER TABLE .. REPLICA IDENTITY FULL`
    /// (or `USING INDEX` on a unique, non-null index).
    ///
    /// # Parameters
    /// * `db` — an RDS instance id or an Aurora cluster id.
    ///
    /// # Returns
    /// Array of `#{ table, why }`, sorted by table (`why`: `no primary key` or `replica identity nothing`).
    ///
    /// # Errors
    /// `NotFound` for an unknown endpoint.
    ///
    /// # Example
    /// ```rhai
    /// let bad = pg::unreplicable_tables("orders-db");
    /// if bad != [] { throw bad; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn unreplicable_tables(ctx: NativeCallContext, db: &str) -> RhaiResult<Array> {
        call(
            &ctx,
            A,
            "unreplicable_tables",
            &json!({ "db": db }),
            |cx, w| w.pg.unreplicable_tables(cx, db),
        )
    }

    /// Large objects (`pg_largeobject_metadata`), per database: logical replication does not
    /// carry them ("Restrictions" of logical replication in PostgreSQL's documentation), so a
    /// logical migration must move them first (to `bytea` columns) or copy them at the cutover.
    ///
    /// # Parameters
    /// * `db` — an RDS instance id or an Aurora cluster id.
    ///
    /// # Returns
    /// Array of `#{ database, count }` for the databases holding any, sorted by database;
    /// `[]` when none does.
    ///
    /// # Errors
    /// `NotFound` for an unknown endpoint.
    ///
    /// # Example
    /// ```rhai
    /// let lo = pg::large_objects("orders-db");
    /// assert(lo == [], "the simulated source has no large objects");
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn large_objects(ctx: NativeCallContext, db: &str) -> RhaiResult<Array> {
        call(&ctx, A, "large_objects", &json!({ "db": db }), |cx, w| {
            w.pg.large_objects(cx, db)
        })
    }

    /// `CREATE PUBLICATION name FOR ALL TABLES` in the application database. Idempotent.
    ///
    /// # Parameters
    /// * `db` — the publisher: an RDS instance id or an Aurora cluster id.
    /// * `name` — the publication's name.
    ///
    /// # Returns
    /// The tables it publishes (`schema.name`), sorted.
    ///
    /// # Errors
    /// `NotFound` for an unknown endpoint; `Conflict` on a replica (read-only).
    ///
    /// # Example
    /// ```rhai
    /// let tables = pg::create_publication("orders-db", "godwit_reverse");
    /// if tables.is_empty() || pg::create_publication("orders-db", "godwit_reverse") != tables { throw tables; }
    /// if !pg::drop_publication("orders-db", "godwit_reverse") { throw "not dropped"; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn create_publication(ctx: NativeCallContext, db: &str, name: &str) -> RhaiResult<Array> {
        call(
            &ctx,
            A,
            "create_publication",
            &json!({ "db": db, "name": name }),
            |cx, w| w.pg.create_publication(cx, db, name),
        )
    }

    /// Drop a publication.
    ///
    /// # Parameters
    /// * `db` — the publisher.
    /// * `name` — the publication's name.
    ///
    /// # Returns
    /// Whether it existed.
    ///
    /// # Errors
    /// `NotFound` for an unknown endpoint.
    ///
    /// # Example
    /// ```rhai
    /// if pg::drop_publication("orders-db", "nothing_here") { throw "dropped what did not exist"; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn drop_publication(ctx: NativeCallContext, db: &str, name: &str) -> RhaiResult<bool> {
        call(
            &ctx,
            A,
            "drop_publication",
            &json!({ "db": db, "name": name }),
            |cx, w| w.pg.drop_publication(cx, db, name),
        )
    }

    /// A logical replication slot with output plugin `pgoutput` in the application database:
    /// the publisher keeps every change from its position on for a subscription. Idempotent.
    ///
    /// # Parameters
    /// * `db` — the publisher (a primary: the source, or a promoted Aurora cluster).
    /// * `name` — the slot's name.
    ///
    /// # Returns
    /// `#{ lsn, lsn_bytes }`: where streaming from it starts (`confirmed_flush_lsn`).
    ///
    /// # Errors
    /// `Conflict` on a replica, on an Aurora cluster without `rds.logical_replication=1` in
    /// force, or when a slot of that name is not a pgoutput one; `NotFound`.
    ///
    /// # Example
    /// ```rhai
    /// rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4", iam_auth: true });
    /// rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.xlarge" });
    /// rds::wait_until_cluster_available("orders-aurora", #{ timeout: "12h" });
    /// try { pg::create_logical_slot("orders-aurora", "godwit_reverse"); throw "a replica is read-only"; }
    /// catch (e) { if e.kind != "Conflict" { throw e; } }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn create_logical_slot(ctx: NativeCallContext, db: &str, name: &str) -> RhaiResult<Map> {
        call(
            &ctx,
            A,
            "create_logical_slot",
            &json!({ "db": db, "name": name }),
            |cx, w| w.pg.create_logical_slot(cx, db, name),
        )
    }

    /// Drop a replication slot (after its subscription was dropped: the publisher otherwise
    /// keeps WAL for it forever).
    ///
    /// # Parameters
    /// * `db` — the publisher.
    /// * `name` — the slot's name.
    ///
    /// # Returns
    /// Whether it existed.
    ///
    /// # Errors
    /// `Conflict` (retryable) while a reader still uses it after 10 s; `NotFound` for an unknown endpoint.
    ///
    /// # Example
    /// ```rhai
    /// if pg::drop_replication_slot("orders-db", "no_such_slot") { throw "dropped what did not exist"; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn drop_replication_slot(ctx: NativeCallContext, db: &str, name: &str) -> RhaiResult<bool> {
        call(
            &ctx,
            A,
            "drop_replication_slot",
            &json!({ "db": db, "name": name }),
            |cx, w| w.pg.drop_replication_slot(cx, db, name),
        )
    }

    /// `CREATE SUBSCRIPTION` on `db` streaming a publication of another database through its
    /// existing slot. The subscriber connects with the world's credentials for the publisher
    /// (aws: godwit's IAM login with a token that admits new connections for 15 minutes —
    /// renew it with `pg::refresh_subscription`); the connection string never reaches the journal.
    /// Idempotent: an existing subscription of that name is returned.
    ///
    /// # Parameters
    /// * `db` — the subscriber.
    /// * `name` — the subscription's name.
    /// * `to` — `#{ from, publication, slot, copy_data }`: the publisher, its publication and slot; `copy_data` (default `false`): copy the tables first instead of starting at the slot's position.
    ///
    /// # Returns
    /// `#{ name, publications, slot_name, enabled, worker_pid, received_lsn_bytes, latest_end_lsn_bytes, apply_errors }`.
    ///
    /// # Errors
    /// `NotFound` when the publication or slot is missing on `from`; `Internal` when the
    /// subscriber cannot reach the publisher (security groups both ways) or lacks the rights.
    ///
    /// # Example
    /// ```rhai
    /// try { pg::subscribe("orders-db", "s", #{ from: "orders-aurora", publication: "p", slot: "s" }); throw "no publisher"; }
    /// catch (e) { if e.kind != "NotFound" { throw e; } }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn subscribe(ctx: NativeCallContext, db: &str, name: &str, to: Map) -> RhaiResult<Map> {
        const OP: &str = "subscribe";
        let to = (|| {
            let o =
                crate::prim::Opts::new(A, OP, to, &["from", "publication", "slot", "copy_data"])?;
            let need = |k: &str| {
                o.string(k)?.ok_or_else(|| {
                    PrimitiveError::invalid(
                        A,
                        OP,
                        format!("to.{k} is missing"),
                        "pass #{ from, publication, slot }",
                    )
                })
            };
            Ok::<_, PrimitiveError>(super::super::SubscribeTo {
                from: need("from")?,
                publication: need("publication")?,
                slot: need("slot")?,
                copy_data: o.bool("copy_data")?.unwrap_or(false),
            })
        })()
        .map_err(|e| e.into_rhai_at(ctx.call_position()))?;
        call(
            &ctx,
            A,
            OP,
            &json!({ "db": db, "name": name, "to": to }),
            |cx, w| w.pg.subscribe(cx, db, name, &to),
        )
    }

    /// Renew the credentials a subscription connects to its publisher with (`ALTER SUBSCRIPTION
    /// .. CONNECTION`): its apply worker reconnects with them. An IAM token admits new
    /// connections for 15 minutes: a rollback window longer than that renews it every few minutes.
    ///
    /// # Parameters
    /// * `db` — the subscriber.
    /// * `name` — the subscription.
    /// * `from` — its publisher.
    ///
    /// # Returns
    /// The subscription, as `pg::subscriptions` lists it.
    ///
    /// # Errors
    /// `NotFound` without such a subscription.
    ///
    /// # Example
    /// ```rhai
    /// try { pg::refresh_subscription("orders-db", "none", "orders-aurora"); throw "found"; }
    /// catch (e) { if e.kind != "NotFound" { throw e; } }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn refresh_subscription(
        ctx: NativeCallContext,
        db: &str,
        name: &str,
        from: &str,
    ) -> RhaiResult<Map> {
        call(
            &ctx,
            A,
            "refresh_subscription",
            &json!({ "db": db, "name": name, "from": from }),
            |cx, w| w.pg.refresh_subscription(cx, db, name, from),
        )
    }

    /// Copy the roles and the schema of the source's application database into a cluster
    /// `rds::create_cluster` made (the logical path): the source's login roles for IAM sign-in
    /// (no password read or set), then every schema object but the data (`pg_dump
    /// --schema-only` of the target's major, restored into the target). It signs in to the target
    /// as the world signs in (the lab: its superuser); on a new Aurora cluster godwit's own role
    /// does not exist yet, and the master user's sign-in (its password kept by RDS in Secrets
    /// Manager) is not implemented in the aws world: it refuses, saying so. Idempotent.
    ///
    /// # Parameters
    /// * `from` — the source.
    /// * `to` — the empty target.
    ///
    /// # Returns
    /// `#{ from, to, roles, tables, sequences, how }` (`tables`: the target's tables now).
    ///
    /// # Errors
    /// `Conflict` when the target already has different tables, or does not take connections
    /// yet; `NotFound` for an unknown endpoint.
    ///
    /// # Example
    /// ```rhai
    /// rds::create_cluster("orders-aurora", "orders-db", #{ engine_version: "16.2", iam_auth: true });
    /// while rds::describe_cluster("orders-aurora").status != "available" { sleep("1m"); }
    /// rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.xlarge" });
    /// rds::wait_until_instance_available("orders-aurora-1", #{ timeout: "1h" });
    /// let copied = pg::copy_schema("orders-db", "orders-aurora");
    /// assert(copied.tables == pg::table_definitions("orders-db").map(|t| t.table), "the same tables");
    /// assert(pg::table_definitions("orders-aurora") == pg::table_definitions("orders-db"), "the same definitions");
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn copy_schema(ctx: NativeCallContext, from: &str, to: &str) -> RhaiResult<Map> {
        call(
            &ctx,
            A,
            "copy_schema",
            &json!({ "from": from, "to": to }),
            |cx, w| w.pg.copy_schema(cx, from, to),
        )
    }

    /// The tables of a subscription and their initial copy (`pg_subscription_rel`, with
    /// `pg_stat_progress_copy` while a table copies): the logical path's copy-progress gate
    /// reads it.
    ///
    /// # Parameters
    /// * `db` — the subscriber.
    /// * `name` — the subscription.
    ///
    /// # Returns
    /// `[#{ table, state, copied_bytes, error }]` sorted by table: `state` one of `init`,
    /// `copying`, `copied`, `syncing`, `ready`; `copied_bytes` while it copies (`()` when the
    /// server does not say); `error` why its copy fails, where the world knows.
    ///
    /// # Errors
    /// `NotFound` without the subscription (or the database).
    ///
    /// # Example
    /// ```rhai
    /// rds::create_cluster("orders-aurora", "orders-db", #{ engine_version: "16.2", iam_auth: true });
    /// while rds::describe_cluster("orders-aurora").status != "available" { sleep("1m"); }
    /// rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.xlarge" });
    /// rds::wait_until_instance_available("orders-aurora-1", #{ timeout: "1h" });
    /// pg::copy_schema("orders-db", "orders-aurora");
    /// pg::create_publication("orders-db", "godwit_logical");
    /// pg::create_logical_slot("orders-db", "godwit_logical");
    /// pg::subscribe("orders-aurora", "godwit_logical",
    ///     #{ from: "orders-db", publication: "godwit_logical", slot: "godwit_logical", copy_data: true });
    /// sleep("10s");
    /// let tables = pg::subscription_tables("orders-aurora", "godwit_logical");
    /// assert(tables.len() > 0 && tables.all(|t| t.state != "ready"), "copying");
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn subscription_tables(ctx: NativeCallContext, db: &str, name: &str) -> RhaiResult<Array> {
        call(
            &ctx,
            A,
            "subscription_tables",
            &json!({ "db": db, "name": name }),
            |cx, w| w.pg.subscription_tables(cx, db, name),
        )
    }

    /// Set how subscription `name`'s apply worker commits what it applies (`ALTER SUBSCRIPTION
    /// .. SET (synchronous_commit = mode)`). A subscription's default is `off`: its commits
    /// wait for no flush, so the publisher's slot confirms a change only after the
    /// subscriber's WAL writer flushed it, a few hundred ms later (measured in the lab). The
    /// logical path turns it `on` inside the write blackout, when the publisher is fenced and
    /// only the last changes are left to apply.
    ///
    /// # Parameters
    /// * `db` — the subscriber.
    /// * `name` — its subscription.
    /// * `mode` — `off`, `local`, `remote_write`, `remote_apply` or `on`.
    ///
    /// # Returns
    /// `#{ name, before, after }`: the setting before and now.
    ///
    /// # Errors
    /// `NotFound` without the subscription; `Invalid` for another mode (nothing changes).
    ///
    /// # Example
    /// ```rhai
    /// try { pg::set_subscription_commit("orders-db", "none", "on"); throw "found"; }
    /// catch (e) { if e.kind != "NotFound" { throw e; } }
    /// try { pg::set_subscription_commit("orders-db", "none", "sync"); throw "accepted"; }
    /// catch (e) { if e.kind != "Invalid" { throw e; } }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn set_subscription_commit(
        ctx: NativeCallContext,
        db: &str,
        name: &str,
        mode: &str,
    ) -> RhaiResult<Map> {
        call(
            &ctx,
            A,
            "set_subscription_commit",
            &json!({ "db": db, "name": name, "mode": mode }),
            |cx, w| w.pg.set_subscription_commit(cx, db, name, mode),
        )
    }

    /// The subscriptions of the application database with their apply worker's progress.
    ///
    /// # Parameters
    /// * `db` — the subscriber.
    ///
    /// # Returns
    /// Array of `#{ name, publications, slot_name, enabled, worker_pid, received_lsn_bytes, latest_end_lsn_bytes, apply_errors }`, sorted by name; positions in the publisher's WAL.
    ///
    /// # Errors
    /// `NotFound` for an unknown endpoint.
    ///
    /// # Example
    /// ```rhai
    /// if pg::subscriptions("orders-db") != [] { throw "a fresh source subscribes to nothing"; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn subscriptions(ctx: NativeCallContext, db: &str) -> RhaiResult<Array> {
        call(&ctx, A, "subscriptions", &json!({ "db": db }), |cx, w| {
            w.pg.subscriptions(cx, db)
        })
    }

    /// Stop and drop a subscription, leaving the publisher's slot (drop it there with
    /// `pg::drop_replication_slot`: the drop never waits on an unreachable publisher).
    ///
    /// # Parameters
    /// * `db` — the subscriber.
    /// * `name` — the subscription.
    ///
    /// # Returns
    /// Whether it existed.
    ///
    /// # Errors
    /// `NotFound` for an unknown endpoint.
    ///
    /// # Example
    /// ```rhai
    /// if pg::drop_subscription("orders-db", "none") { throw "dropped what did not exist"; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn drop_subscription(ctx: NativeCallContext, db: &str, name: &str) -> RhaiResult<bool> {
        call(
            &ctx,
            A,
            "drop_subscription",
            &json!({ "db": db, "name": name }),
            |cx, w| w.pg.drop_subscription(cx, db, name),
        )
    }

    /// Stop and drop a subscription, then the slots its table syncs left on the publisher
    /// (a subscription dropped during its initial copy leaves one per table being copied when
    /// the subscriber cannot reach the publisher, and they hold the publisher's WAL until
    /// dropped). The publisher's main slot is left, as by `drop_subscription`: drop it with
    /// `pg::drop_replication_slot`.
    ///
    /// # Parameters
    /// * `db` — the subscriber.
    /// * `name` — the subscription.
    /// * `publisher` — the publisher's instance or cluster id.
    ///
    /// # Returns
    /// `#{ dropped, sync_slots_dropped }`: whether the subscription existed, and the table-sync
    /// slots dropped on the publisher.
    ///
    /// # Errors
    /// `NotFound` for an unknown endpoint; `Conflict` when a table-sync slot is still read
    /// after 10 s (retryable).
    ///
    /// # Example
    /// ```rhai
    /// let d = pg::drop_subscription_from("orders-db", "none", "orders-db");
    /// if d.dropped || d.sync_slots_dropped != [] { throw d; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn drop_subscription_from(
        ctx: NativeCallContext,
        db: &str,
        name: &str,
        publisher: &str,
    ) -> RhaiResult<Map> {
        call(
            &ctx,
            A,
            "drop_subscription_from",
            &json!({ "db": db, "name": name, "publisher": publisher }),
            |cx, w| w.pg.drop_subscription_from(cx, db, name, publisher),
        )
    }

    /// Poll until the subscriber reading `slot` on the publisher has applied and flushed
    /// everything up to `lsn_bytes` (the slot's `confirmed_flush_lsn`: the subscriber reports
    /// a position only once its own commit of it is on disk).
    ///
    /// # Parameters
    /// * `db` — the publisher.
    /// * `slot` — the subscription's slot there.
    /// * `lsn_bytes` — the position to reach (e.g. the publisher's `pg::current_lsn` once fenced).
    /// * `options` — `#{ timeout, every, min_every }`; defaults `timeout: "5m"`, `every: "1s"`.
    ///
    /// # Returns
    /// `#{ slot, confirmed_flush_bytes, behind_bytes: 0 }`.
    ///
    /// # Errors
    /// `NotFound` without the slot; `Timeout` saying how far behind it still is.
    ///
    /// # Example
    /// ```rhai
    /// try { pg::wait_until_slot_confirmed("orders-db", "no_such_slot", 0, #{ timeout: "1s" }); throw "found"; }
    /// catch (e) { if e.kind != "NotFound" { throw e; } }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn wait_until_slot_confirmed(
        ctx: NativeCallContext,
        db: &str,
        slot: &str,
        lsn_bytes: i64,
        options: Map,
    ) -> RhaiResult<Map> {
        const OP: &str = "wait_until_slot_confirmed";
        let (timeout, every) = wait_opts(
            A,
            OP,
            options,
            Duration::from_secs(300),
            Duration::from_secs(1),
        )
        .map_err(|e| e.into_rhai_at(ctx.call_position()))?;
        call(
            &ctx,
            A,
            OP,
            &json!({ "db": db, "slot": slot, "lsn_bytes": lsn_bytes }),
            |cx, w| {
                let mut behind = None;
                poll(
                    cx,
                    timeout,
                    every,
                    &format!(
                        "slot {slot} on {db} confirmed past {}",
                        super::super::format_lsn(lsn_bytes.max(0) as u64)
                    ),
                    |cx| {
                        let slots = w.pg.replication_slots(cx, db)?;
                        let Some(s) = slots.iter().find(|s| s.slot_name == slot) else {
                            return Err(crate::prim::not_found(
                                A,
                                OP,
                                format!("{db} has no replication slot {slot}"),
                                "the reverse path was not set up, or was already dropped",
                            ));
                        };
                        let at = s
                            .confirmed_flush_lsn
                            .as_deref()
                            .and_then(super::super::parse_lsn)
                            .map_or(0, |b| b as i64);
                        behind = Some(lsn_bytes - at);
                        Ok((at >= lsn_bytes).then(|| {
                            json!({ "slot": slot, "confirmed_flush_bytes": at, "behind_bytes": 0 })
                        }))
                    },
                )
                .map_err(|mut e| {
                    if let Some(b) = behind {
                        e.message = format!("{} ({b} bytes still to apply)", e.message);
                    }
                    e
                })
            },
        )
    }
}
