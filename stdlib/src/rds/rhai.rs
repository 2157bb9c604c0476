//! Rhai module `rds`: thin argument conversion over the world's [`Rds`] backend, the
//! `wait_until_*` pollers, and the doc comments that are the reference. Every function touches
//! the world, so every one is volatile and goes through [`Host::call`](godwit_engine::Host::call).

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use ::rhai::plugin::*;
use ::rhai::{Array, Dynamic, Map, Module, NativeCallContext};
use godwit_engine::{Call, ErrorKind, PrimitiveError};
use serde_json::json;

use super::*;
use crate::prim::{Opts, RhaiResult, call, invalid, shared, strings, wait_until};

const A: &str = "rds";

/// Install `rds::…` into `engine`. The module is built once per process: its functions
/// capture nothing (they find the world's backend through the engine, see [`call`]).
pub fn register(engine: &mut Engine) {
    static MODULE: LazyLock<Arc<Module>> =
        LazyLock::new(|| shared(A, exported_module!(rds_module)));
    engine.register_static_module(A, MODULE.clone());
}

/// Distinguishes interactive reboots (see `reboot_instance`).
static INTERACTIVE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn terminal(
    cx: &Call<'_>,
    rds: &dyn Rds,
    op: &str,
    what: &str,
    id: &str,
    status: &str,
) -> PrimitiveError {
    // The state alone does not say why; the last events usually do. Best effort: a failure to
    // read them must not hide the terminal state itself.
    let events = rds
        .describe_events(cx, id, what == "cluster")
        .unwrap_or_default();
    let last: Vec<String> = events
        .iter()
        .rev()
        .take(5)
        .rev()
        .map(|e| {
            format!(
                "{} {}",
                godwit_engine::clock::format_timestamp(e.at * 1000),
                e.message
            )
        })
        .collect();
    let events = if last.is_empty() {
        String::new()
    } else {
        format!("; last RDS events: {}", last.join(" | "))
    };
    PrimitiveError::new(
        A,
        op,
        ErrorKind::Conflict,
        format!("{what} {id} is in terminal state {status}{events}"),
        "it will not recover on its own: read the RDS events for the cause, delete it and \
         start over (abort rolls back what the run created)",
    )
    .with_retryable(false)
}

#[export_module]
mod rds_module {
    use super::*;

    /// Describe an RDS DB instance (the source, or an Aurora cluster member).
    ///
    /// # Parameters
    /// * `id` — the DB instance identifier.
    ///
    /// # Returns
    /// `#{ id, arn, engine, engine_version, instance_class, status, cluster_id, security_groups,
    /// parameter_group, storage_encrypted, kms_key_id, allocated_storage_gb, backup_retention_days,
    /// endpoint, vpc_id, replica_clusters }`.
    ///
    /// # Errors
    /// `NotFound` when no such instance exists; `Throttled` (retryable) when AWS throttles.
    ///
    /// # Example
    /// ```rhai
    /// let src = rds::describe_instance("orders-db");
    /// if src.status != "available" || src.engine != "postgres" { throw src; }
    /// if src.backup_retention_days == 0 { throw "a replica source needs backups"; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn describe_instance(ctx: NativeCallContext, id: &str) -> RhaiResult<Map> {
        call(
            &ctx,
            A,
            "describe_instance",
            &json!({ "id": id }),
            |cx, w| w.rds.describe_instance(cx, id),
        )
    }

    /// Describe an Aurora DB cluster.
    ///
    /// # Parameters
    /// * `id` — the DB cluster identifier.
    ///
    /// # Returns
    /// `#{ id, arn, engine, engine_version, status, replication_source_identifier, members, writer,
    /// parameter_group, storage_encrypted, kms_key_id, endpoint, reader_endpoint, security_groups,
    /// vpc_id }`; `replication_source_identifier` is `()` once the cluster is promoted.
    ///
    /// # Errors
    /// `NotFound` when no such cluster exists; `Throttled` when AWS throttles.
    ///
    /// # Example
    /// ```rhai
    /// try {
    ///     rds::describe_cluster("orders-aurora");
    ///     throw "no replica exists yet in this scenario";
    /// } catch (e) {
    ///     if e.kind != "NotFound" { throw e; }
    /// }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn describe_cluster(ctx: NativeCallContext, id: &str) -> RhaiResult<Map> {
        call(
            &ctx,
            A,
            "describe_cluster",
            &json!({ "id": id }),
            |cx, w| w.rds.describe_cluster(cx, id),
        )
    }

    /// List the versions of an engine, oldest first, with the extensions each supports.
    ///
    /// # Parameters
    /// * `engine` — `"aurora-postgresql"` or `"postgres"`.
    ///
    /// # Returns
    /// Array of `#{ engine, version, major, minor, parameter_group_family, supported_extensions }`.
    ///
    /// # Errors
    /// `Invalid` for an unknown engine; `Throttled` when AWS throttles.
    ///
    /// # Example
    /// ```rhai
    /// let src = rds::describe_instance("orders-db");
    /// let major = src.engine_version.split(".")[0];
    /// let same_major = rds::list_engine_versions("aurora-postgresql")
    ///     .filter(|v| v.major.to_string() == major);
    /// if same_major.is_empty() { throw "no Aurora version for the source's major"; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn list_engine_versions(ctx: NativeCallContext, engine: &str) -> RhaiResult<Array> {
        call(
            &ctx,
            A,
            "list_engine_versions",
            &json!({ "engine": engine }),
            |cx, w| w.rds.list_engine_versions(cx, engine),
        )
    }

    /// The parameters set in a DB or DB cluster parameter group, sorted by name.
    ///
    /// # Parameters
    /// * `group` — the parameter group name.
    ///
    /// # Returns
    /// Array of `#{ name, value, source }`.
    ///
    /// # Errors
    /// `NotFound` when the group does not exist.
    ///
    /// # Example
    /// ```rhai
    /// let src = rds::describe_instance("orders-db");
    /// let params = rds::describe_parameters(src.parameter_group);
    /// if !params.some(|p| p.name == "max_connections") { throw params; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn describe_parameters(ctx: NativeCallContext, group: &str) -> RhaiResult<Array> {
        call(
            &ctx,
            A,
            "describe_parameters",
            &json!({ "group": group }),
            |cx, w| w.rds.describe_parameters(cx, group),
        )
    }

    /// A DB or DB cluster parameter group itself: its family, its kind and when it was created
    /// (AWS asks not to use a new cluster parameter group for about five minutes).
    ///
    /// # Parameters
    /// * `group` — the parameter group name.
    ///
    /// # Returns
    /// `#{ name, family, cluster, created_at }` (`created_at`: epoch seconds).
    ///
    /// # Errors
    /// `NotFound` when the group does not exist.
    ///
    /// # Example
    /// ```rhai
    /// let g = rds::describe_parameter_group(rds::describe_instance("orders-db").parameter_group);
    /// assert_eq(g.family, "postgres15");
    /// assert(!g.cluster, "an instance's group");
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn describe_parameter_group(ctx: NativeCallContext, group: &str) -> RhaiResult<Map> {
        call(
            &ctx,
            A,
            "describe_parameter_group",
            &json!({ "group": group }),
            |cx, w| w.rds.describe_parameter_group(cx, group),
        )
    }

    /// What a parameter group family accepts, per parameter (the engine defaults'
    /// `AllowedValues`): `create_parameter_groups` refuses a value outside them before it
    /// changes anything.
    ///
    /// # Parameters
    /// * `family` — e.g. `"aurora-postgresql15"`.
    /// * `cluster` — `true` for the cluster-level parameters, `false` for the instance-level.
    ///
    /// # Returns
    /// Array of `#{ name, default, allowed_values, modifiable }`, sorted by name.
    ///
    /// # Errors
    /// `Throttled` when AWS throttles.
    ///
    /// # Example
    /// ```rhai
    /// let rules = rds::describe_parameter_rules("aurora-postgresql15", true);
    /// let logical = rules.filter(|r| r.name == "rds.logical_replication");
    /// assert_eq(logical[0].allowed_values, "0,1");
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn describe_parameter_rules(
        ctx: NativeCallContext,
        family: &str,
        cluster: bool,
    ) -> RhaiResult<Array> {
        call(
            &ctx,
            A,
            "describe_parameter_rules",
            &json!({ "family": family, "cluster": cluster }),
            |cx, w| w.rds.describe_parameter_rules(cx, family, cluster),
        )
    }

    /// The instance classes an engine version can run on (`DescribeOrderableDBInstanceOptions`),
    /// sorted. Aurora PostgreSQL has no `db.m*` classes: a source's class is not always one.
    ///
    /// # Parameters
    /// * `engine` — `"aurora-postgresql"` or `"postgres"`.
    /// * `version` — e.g. `"15.4"`.
    ///
    /// # Returns
    /// Array of class names, e.g. `["db.r6g.large", …]`.
    ///
    /// # Errors
    /// `Invalid` for an unknown engine; `Throttled` when AWS throttles.
    ///
    /// # Example
    /// ```rhai
    /// let classes = rds::list_orderable_instance_classes("aurora-postgresql", "15.4");
    /// assert(classes.contains("db.r6g.xlarge"), "memory-optimised classes");
    /// assert(!classes.some(|c| c.starts_with("db.m")), "no db.m* on Aurora PostgreSQL");
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn list_orderable_instance_classes(
        ctx: NativeCallContext,
        engine: &str,
        version: &str,
    ) -> RhaiResult<Array> {
        call(
            &ctx,
            A,
            "list_orderable_instance_classes",
            &json!({ "engine": engine, "version": version }),
            |cx, w| w.rds.list_orderable_instance_classes(cx, engine, version),
        )
    }

    /// Create the Aurora cluster and instance parameter groups from a mapping of the source's
    /// parameters (before the cluster, so no reboot is needed later). Parameters Aurora does not
    /// accept are left out and listed, never silently dropped. Idempotent: groups that exist with
    /// the same settings are accepted.
    ///
    /// # Parameters
    /// * `request` — `#{ cluster_group, instance_group, family, parameters, cluster_parameters }`;
    ///   `parameters` and `cluster_parameters` map names to values (cluster-only settings such as
    ///   `rds.logical_replication` go in `cluster_parameters`).
    ///
    /// # Returns
    /// `#{ cluster_group, instance_group, applied, unsupported }` (sorted names).
    ///
    /// # Errors
    /// `Invalid` for a missing or mistyped key or a non-Aurora family; `Conflict` when a group of
    /// that name exists with other settings.
    ///
    /// # Example
    /// ```rhai
    /// let params = #{};
    /// for p in rds::describe_parameters("orders-pg15") { params[p.name] = p.value; }
    /// let r = rds::create_parameter_groups(#{
    ///     cluster_group: "orders-aurora-cluster", instance_group: "orders-aurora-instance",
    ///     family: "aurora-postgresql15", parameters: params,
    ///     cluster_parameters: #{ "rds.logical_replication": "1" },
    /// });
    /// if !r.applied.contains("rds.logical_replication") { throw r; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn create_parameter_groups(ctx: NativeCallContext, request: Map) -> RhaiResult<Map> {
        const OP: &str = "create_parameter_groups";
        let o = Opts::new(
            A,
            OP,
            request,
            &[
                "cluster_group",
                "instance_group",
                "family",
                "parameters",
                "cluster_parameters",
            ],
        )
        .map_err(|e| invalid(&ctx, e))?;
        let need = |k: &str| -> RhaiResult<String> {
            o.string(k).map_err(|e| invalid(&ctx, e))?.ok_or_else(|| {
                invalid(
                    &ctx,
                    PrimitiveError::invalid(
                        A,
                        OP,
                        format!("request.{k} is missing"),
                        "pass cluster_group, instance_group and family",
                    ),
                )
            })
        };
        let req = CreateParameterGroups {
            cluster_group: need("cluster_group")?,
            instance_group: need("instance_group")?,
            family: need("family")?,
            parameters: o
                .string_map("parameters")
                .map_err(|e| invalid(&ctx, e))?
                .unwrap_or_default(),
            cluster_parameters: o
                .string_map("cluster_parameters")
                .map_err(|e| invalid(&ctx, e))?
                .unwrap_or_default(),
        };
        call(&ctx, A, OP, &req, |cx, w| {
            w.rds.create_parameter_groups(cx, &req)
        })
    }

    /// Create an Aurora PostgreSQL cluster replicating from an RDS instance
    /// (`CreateDBCluster` with `ReplicationSourceIdentifier` = the source's ARN). The cluster needs
    /// an instance (`create_cluster_instance`) before it replicates. Idempotent for the same source.
    ///
    /// # Parameters
    /// * `cluster_id` — the new cluster's identifier.
    /// * `source_id` — the RDS instance to replicate from.
    /// * `options` — `#{ engine_version (required), parameter_group, security_groups, kms_key_id,
    ///   iam_auth }` (`iam_auth`: `EnableIAMDatabaseAuthentication`, off when absent — as AWS;
    ///   godwit cannot log in to a cluster without it).
    ///
    /// # Returns
    /// The cluster, as `describe_cluster` (status `creating`).
    ///
    /// # Errors
    /// `Invalid` when the version is not the source's major with an equal or higher minor, or the
    /// source has backups disabled; `Conflict` when the id is taken or the source already has an
    /// Aurora replica; `NotFound` for a missing source or parameter group.
    ///
    /// # Example
    /// ```rhai
    /// let c = rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4" });
    /// if c.status != "creating" || c.replication_source_identifier == () { throw c; }
    /// // Running the same step again returns the same cluster.
    /// let again = rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4" });
    /// if again.arn != c.arn { throw again; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn create_replica_cluster(
        ctx: NativeCallContext,
        cluster_id: &str,
        source_id: &str,
        options: Map,
    ) -> RhaiResult<Map> {
        const OP: &str = "create_replica_cluster";
        let o = Opts::new(
            A,
            OP,
            options,
            &[
                "engine_version",
                "parameter_group",
                "security_groups",
                "kms_key_id",
                "iam_auth",
            ],
        )
        .map_err(|e| invalid(&ctx, e))?;
        let req = CreateReplicaCluster {
            cluster_id: cluster_id.into(),
            source_id: source_id.into(),
            engine_version: o
                .string("engine_version")
                .map_err(|e| invalid(&ctx, e))?
                .ok_or_else(|| {
                    invalid(
                        &ctx,
                        PrimitiveError::invalid(
                            A,
                            OP,
                            "options.engine_version is missing",
                            "pick one from rds::list_engine_versions(\"aurora-postgresql\")",
                        ),
                    )
                })?,
            parameter_group: o.string("parameter_group").map_err(|e| invalid(&ctx, e))?,
            security_groups: o.strings("security_groups").map_err(|e| invalid(&ctx, e))?,
            kms_key_id: o.string("kms_key_id").map_err(|e| invalid(&ctx, e))?,
            iam_auth: o
                .bool("iam_auth")
                .map_err(|e| invalid(&ctx, e))?
                .unwrap_or(false),
        };
        call(&ctx, A, OP, &req, |cx, w| {
            w.rds.create_replica_cluster(cx, &req)
        })
    }

    /// Create a standalone Aurora PostgreSQL cluster (`CreateDBCluster` without a replication
    /// source): the logical path's target, empty and writable once available, in the network of
    /// the RDS instance it will replace (its VPC's DB subnet group, its security groups, its
    /// port). Its master password is generated and kept by RDS in Secrets Manager
    /// (`ManageMasterUserPassword`): godwit never sees a password. Add its writer with
    /// `create_cluster_instance` once it is available. Idempotent for the same version.
    ///
    /// # Parameters
    /// * `cluster_id` — the new cluster's identifier.
    /// * `like` — the RDS instance it replaces (where it is created, its defaults).
    /// * `options` — `#{ engine_version (required: the instance's major or a newer one),
    ///   parameter_group, security_groups, storage_encrypted, kms_key_id, iam_auth }`
    ///   (`storage_encrypted`: default the instance's; `iam_auth`: off when absent, as AWS —
    ///   godwit cannot sign in without it).
    ///
    /// # Returns
    /// The cluster, as `describe_cluster` (status `creating`, no replication source).
    ///
    /// # Errors
    /// `Invalid` for a version Aurora lacks or of an older major than the instance's, or a
    /// parameter group of another family; `Conflict` when the id is taken by another cluster (or
    /// its group has not rested, retryable); `NotFound` for a missing instance or parameter group.
    ///
    /// # Example
    /// ```rhai
    /// let c = rds::create_cluster("orders-aurora", "orders-db", #{ engine_version: "16.2", iam_auth: true });
    /// assert(c.status == "creating" && c.replication_source_identifier == (), "standalone");
    /// assert(c.engine_version == "16.2", "a newer major");
    /// // Its writer only once the cluster is available (AWS refuses sooner).
    /// while rds::describe_cluster("orders-aurora").status != "available" { sleep("1m"); }
    /// rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.xlarge" });
    /// let again = rds::create_cluster("orders-aurora", "orders-db", #{ engine_version: "16.2", iam_auth: true });
    /// assert(again.arn == c.arn, "a re-run returns the same cluster");
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn create_cluster(
        ctx: NativeCallContext,
        cluster_id: &str,
        like: &str,
        options: Map,
    ) -> RhaiResult<Map> {
        const OP: &str = "create_cluster";
        let o = Opts::new(
            A,
            OP,
            options,
            &[
                "engine_version",
                "parameter_group",
                "security_groups",
                "storage_encrypted",
                "kms_key_id",
                "iam_auth",
            ],
        )
        .map_err(|e| invalid(&ctx, e))?;
        let req = CreateCluster {
            cluster_id: cluster_id.into(),
            like: like.into(),
            engine_version: o
                .string("engine_version")
                .map_err(|e| invalid(&ctx, e))?
                .ok_or_else(|| {
                    invalid(
                        &ctx,
                        PrimitiveError::invalid(
                            A,
                            OP,
                            "options.engine_version is missing",
                            "pick one from rds::list_engine_versions(\"aurora-postgresql\")",
                        ),
                    )
                })?,
            parameter_group: o.string("parameter_group").map_err(|e| invalid(&ctx, e))?,
            security_groups: o.strings("security_groups").map_err(|e| invalid(&ctx, e))?,
            storage_encrypted: o.bool("storage_encrypted").map_err(|e| invalid(&ctx, e))?,
            kms_key_id: o.string("kms_key_id").map_err(|e| invalid(&ctx, e))?,
            iam_auth: o
                .bool("iam_auth")
                .map_err(|e| invalid(&ctx, e))?
                .unwrap_or(false),
            master_username: MASTER_USERNAME.into(),
        };
        call(&ctx, A, OP, &req, |cx, w| w.rds.create_cluster(cx, &req))
    }

    /// Create a DB instance in an Aurora cluster (the replica's first instance becomes its writer
    /// after promotion). Idempotent for the same cluster.
    ///
    /// # Parameters
    /// * `instance_id` — the new instance's identifier.
    /// * `cluster_id` — the cluster it joins.
    /// * `options` — `#{ instance_class (required), parameter_group }`.
    ///
    /// # Returns
    /// The instance, as `describe_instance` (status `creating`).
    ///
    /// # Errors
    /// `NotFound` for a missing cluster; `Conflict` when the id is taken by another cluster's
    /// instance; `Invalid` for a missing instance class.
    ///
    /// # Example
    /// ```rhai
    /// rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4", iam_auth: true });
    /// let i = rds::create_cluster_instance("orders-aurora-1", "orders-aurora",
    ///                                      #{ instance_class: "db.r6g.xlarge" });
    /// if i.cluster_id != "orders-aurora" { throw i; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn create_cluster_instance(
        ctx: NativeCallContext,
        instance_id: &str,
        cluster_id: &str,
        options: Map,
    ) -> RhaiResult<Map> {
        const OP: &str = "create_cluster_instance";
        let o = Opts::new(A, OP, options, &["instance_class", "parameter_group"])
            .map_err(|e| invalid(&ctx, e))?;
        let req = CreateClusterInstance {
            instance_id: instance_id.into(),
            cluster_id: cluster_id.into(),
            instance_class: o
                .string("instance_class")
                .map_err(|e| invalid(&ctx, e))?
                .ok_or_else(|| {
                    invalid(
                        &ctx,
                        PrimitiveError::invalid(
                            A,
                            OP,
                            "options.instance_class is missing",
                            "use the source's class: describe_instance(src).instance_class",
                        ),
                    )
                })?,
            parameter_group: o.string("parameter_group").map_err(|e| invalid(&ctx, e))?,
        };
        call(&ctx, A, OP, &req, |cx, w| {
            w.rds.create_cluster_instance(cx, &req)
        })
    }

    /// Replace an instance's VPC security groups (`ModifyDBInstance`, applied immediately).
    /// Security groups are stateful: existing sessions survive; only new connections are refused.
    /// Reboot the instance to end existing sessions. Idempotent.
    ///
    /// # Parameters
    /// * `id` — the DB instance identifier.
    /// * `groups` — array of security group ids.
    ///
    /// # Returns
    /// The instance (status `modifying` for a short while).
    ///
    /// # Errors
    /// `Conflict` when the instance is not `available`; `Invalid` for an empty list.
    ///
    /// # Example
    /// ```rhai
    /// let q = ec2::ensure_quarantine_group("vpc-0sim", "godwit-quarantine");
    /// let i = rds::set_security_groups("orders-db", [q.id]);
    /// if i.security_groups != [q.id] { throw i; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn set_security_groups(ctx: NativeCallContext, id: &str, groups: Array) -> RhaiResult<Map> {
        const OP: &str = "set_security_groups";
        let list = strings(&Dynamic::from_array(groups)).ok_or_else(|| {
            invalid(
                &ctx,
                PrimitiveError::invalid(
                    A,
                    OP,
                    "groups must be an array of strings",
                    "pass security group ids, e.g. [\"sg-0abc\"]",
                ),
            )
        })?;
        call(
            &ctx,
            A,
            OP,
            &json!({ "id": id, "groups": list }),
            |cx, w| w.rds.set_security_groups(cx, id, &list),
        )
    }

    /// Reboot an instance (`RebootDBInstance`): every session ends. Carries the step's idempotency
    /// token, so re-running the step after a crash does not reboot twice.
    ///
    /// # Parameters
    /// * `id` — the DB instance identifier.
    ///
    /// # Returns
    /// The instance (status `rebooting`).
    ///
    /// # Errors
    /// `Conflict` (retryable) when the instance is not `available`.
    ///
    /// # Example
    /// ```rhai
    /// let i = rds::reboot_instance("orders-db");
    /// if i.status != "rebooting" { throw i; }
    /// let again = rds::wait_until_instance_available("orders-db", #{ timeout: "10m" });
    /// if again.status != "available" { throw again; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn reboot_instance(ctx: NativeCallContext, id: &str) -> RhaiResult<Map> {
        call(&ctx, A, "reboot_instance", &json!({ "id": id }), |cx, w| {
            // Inside a step the token is stable across re-runs; in the REPL every call is
            // deliberate, so each gets its own.
            let mut token = cx.token();
            if token.ends_with("/interactive") {
                let n = INTERACTIVE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                token = format!("{token}/{n}");
            }
            w.rds.reboot_instance(cx, id, &token)
        })
    }

    /// Promote an Aurora replica cluster to a standalone writable cluster
    /// (`PromoteReadReplicaDBCluster`). Returns at once; wait with `wait_until_cluster_promoted`.
    /// Idempotent: promoting a promoted or promoting cluster returns it.
    ///
    /// # Parameters
    /// * `id` — the replica cluster identifier.
    ///
    /// # Returns
    /// The cluster as it reads right after the request (often still `available` with its
    /// `replication_source_identifier`: status alone does not show the promotion yet).
    ///
    /// # Errors
    /// `NotFound`; `Conflict` when the cluster is not `available`.
    ///
    /// # Example
    /// ```rhai
    /// rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4", iam_auth: true });
    /// rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.xlarge" });
    /// rds::wait_until_cluster_available("orders-aurora", #{ timeout: "6h" });
    /// // The fence first: no application write may reach the source after the promotion.
    /// pg::block_logins("orders-db", ["orders_app"]);
    /// pg::terminate_backends("orders-db", pg::application_backends("orders-db").map(|b| b.pid));
    /// pg::wait_until_no_application_backends("orders-db", #{});
    /// let fence = pg::current_lsn("orders-db").lsn_bytes;
    /// // The replica's position, read on the source (Aurora has no pg_last_wal_replay_lsn).
    /// let behind = || { let c = pg::replication_connections("orders-db"); c.is_empty() || c.some(|s| s.replay_lsn_bytes < fence) };
    /// while behind.call() { sleep("5s"); }
    /// rds::promote_cluster("orders-aurora");
    /// let c = rds::wait_until_cluster_promoted("orders-aurora", #{ timeout: "30m" });
    /// if c.replication_source_identifier != () { throw c; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn promote_cluster(ctx: NativeCallContext, id: &str) -> RhaiResult<Map> {
        call(&ctx, A, "promote_cluster", &json!({ "id": id }), |cx, w| {
            w.rds.promote_cluster(cx, id)
        })
    }

    /// Delete a DB instance (for undo: the replica's instance). Never the migration source.
    /// Idempotent while the delete is under way.
    ///
    /// # Parameters
    /// * `id` — the DB instance identifier.
    ///
    /// # Returns
    /// The instance (status `deleting`).
    ///
    /// # Errors
    /// `NotFound` when it does not exist (already deleted); `Invalid` for the migration source.
    ///
    /// # Example
    /// ```rhai
    /// rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4", iam_auth: true });
    /// rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.xlarge" });
    /// let i = rds::delete_instance("orders-aurora-1");
    /// if i.status != "deleting" { throw i; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn delete_instance(ctx: NativeCallContext, id: &str) -> RhaiResult<Map> {
        call(&ctx, A, "delete_instance", &json!({ "id": id }), |cx, w| {
            w.rds.delete_instance(cx, id)
        })
    }

    /// Delete an Aurora cluster whose instances are deleted or being deleted (for undo).
    ///
    /// # Parameters
    /// * `id` — the DB cluster identifier.
    ///
    /// # Returns
    /// The cluster (status `deleting`).
    ///
    /// # Errors
    /// `NotFound`; `Conflict` while it still has instances that are not being deleted.
    ///
    /// # Example
    /// ```rhai
    /// rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4", iam_auth: true });
    /// rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.xlarge" });
    /// rds::delete_instance("orders-aurora-1");
    /// let c = rds::delete_cluster("orders-aurora");
    /// assert_eq(c.status, "deleting");
    /// let gone = rds::wait_until_cluster_deleted("orders-aurora", #{ timeout: "2h" });
    /// assert(gone.deleted, "the cluster is gone");
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn delete_cluster(ctx: NativeCallContext, id: &str) -> RhaiResult<Map> {
        call(&ctx, A, "delete_cluster", &json!({ "id": id }), |cx, w| {
            w.rds.delete_cluster(cx, id)
        })
    }

    /// Take a manual DB snapshot of an instance (`CreateDBSnapshot`). Idempotent for the same
    /// instance.
    ///
    /// # Parameters
    /// * `instance_id` — the DB instance identifier.
    /// * `snapshot_id` — the snapshot's identifier.
    ///
    /// # Returns
    /// `#{ id, source_id, status, engine_version, storage_encrypted, kms_key_id, data_gb }`
    /// (status `creating`).
    ///
    /// # Errors
    /// `NotFound` for a missing instance; `Conflict` when the id names another instance's snapshot.
    ///
    /// # Example
    /// ```rhai
    /// let s = rds::create_snapshot("orders-db", "orders-final");
    /// let done = rds::wait_until_snapshot_available(s.id, #{ timeout: "2h" });
    /// if done.status != "available" { throw done; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn create_snapshot(
        ctx: NativeCallContext,
        instance_id: &str,
        snapshot_id: &str,
    ) -> RhaiResult<Map> {
        call(
            &ctx,
            A,
            "create_snapshot",
            &json!({ "instance_id": instance_id, "snapshot_id": snapshot_id }),
            |cx, w| w.rds.create_snapshot(cx, instance_id, snapshot_id),
        )
    }

    /// Describe a DB snapshot.
    ///
    /// # Parameters
    /// * `id` — the snapshot identifier.
    ///
    /// # Returns
    /// As `create_snapshot`.
    ///
    /// # Errors
    /// `NotFound` when no such snapshot exists.
    ///
    /// # Example
    /// ```rhai
    /// rds::create_snapshot("orders-db", "orders-final");
    /// if rds::describe_snapshot("orders-final").source_id != "orders-db" { throw "wrong source"; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn describe_snapshot(ctx: NativeCallContext, id: &str) -> RhaiResult<Map> {
        call(
            &ctx,
            A,
            "describe_snapshot",
            &json!({ "id": id }),
            |cx, w| w.rds.describe_snapshot(cx, id),
        )
    }

    /// RDS events of an instance or a cluster, oldest first (`DescribeEvents`; RDS keeps 14 days).
    /// Events are how RDS says *why* a state changed, and the credential-less evidence that a reboot
    /// or a promotion completed.
    ///
    /// # Parameters
    /// * `id` — the DB instance or DB cluster identifier.
    /// * `options` — `#{ cluster: true }` for a cluster's events (default: an instance's);
    ///   `since: <epoch seconds>` keeps only events at or after that time.
    ///
    /// # Returns
    /// Array of `#{ at, source_id, source_type, message }` (`at`: epoch seconds; `source_type`:
    /// `db-instance` or `db-cluster`).
    ///
    /// # Errors
    /// `Invalid` for an unknown option; `Throttled` when AWS throttles.
    ///
    /// # Example
    /// ```rhai
    /// let t0 = now();
    /// rds::reboot_instance("orders-db");
    /// rds::wait_until_instance_available("orders-db", #{ timeout: "10m" });
    /// let events = rds::describe_events("orders-db", #{ since: t0 });
    /// if !events.some(|e| e.message == "DB instance restarted") { throw events; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn describe_events(ctx: NativeCallContext, id: &str, options: Map) -> RhaiResult<Array> {
        const OP: &str = "describe_events";
        let o = Opts::new(A, OP, options, &["cluster", "since"]).map_err(|e| invalid(&ctx, e))?;
        let cluster = o
            .bool("cluster")
            .map_err(|e| invalid(&ctx, e))?
            .unwrap_or(false);
        let since = o.int("since", 0).map_err(|e| invalid(&ctx, e))?;
        call(
            &ctx,
            A,
            OP,
            &json!({ "id": id, "cluster": cluster, "since": since }),
            |cx, w| {
                let mut events = w.rds.describe_events(cx, id, cluster)?;
                if let Some(t) = since {
                    events.retain(|e| e.at >= t);
                }
                Ok(events)
            },
        )
    }

    /// The account's RDS for PostgreSQL instances with their tags, sorted by id: the inventory a
    /// fleet is discovered from (`DescribeDBInstances`, every page). Only engine `postgres` is
    /// listed — what godwit migrates; Aurora cluster members and other engines never are. AWS
    /// filters no tags server-side, so every instance is read and the tags are matched here.
    ///
    /// # Parameters
    /// * `options` — `#{}` for every instance; `tag: "godwit:fleet"` keeps instances carrying
    ///   that tag, `value: "payments"` (with `tag`) only those whose tag has that value;
    ///   `page_size` is `MaxRecords`, 20 to 100 (default 100), as AWS accepts.
    ///
    /// # Returns
    /// Array of `#{ id, engine, engine_version, instance_class, allocated_storage_gb, status, tags }`
    /// (`tags`: a map of key to value).
    ///
    /// # Errors
    /// `Invalid` for an unknown option, an empty tag, a value without a tag, or a page size
    /// outside 20..100; `Throttled` (retryable) when AWS throttles.
    ///
    /// # Example
    /// ```rhai
    /// let all = rds::list_instances(#{});
    /// assert(all.len() == 1 && all[0].id == "orders-db", "the scenario's one source");
    /// let fleet = rds::list_instances(#{ tag: "godwit:fleet", value: "nope", page_size: 20 });
    /// assert(fleet.is_empty(), "the source carries no such tag");
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn list_instances(ctx: NativeCallContext, options: Map) -> RhaiResult<Array> {
        const OP: &str = "list_instances";
        let o = Opts::new(A, OP, options, &["tag", "value", "page_size"])
            .map_err(|e| invalid(&ctx, e))?;
        let tag = o.string("tag").map_err(|e| invalid(&ctx, e))?;
        let value = o.string("value").map_err(|e| invalid(&ctx, e))?;
        let filter = TagFilter::new(OP, tag, value).map_err(|e| invalid(&ctx, e))?;
        let page_size = match o.int("page_size", i64::MIN).map_err(|e| invalid(&ctx, e))? {
            Some(n) => check_max_records(OP, n).map_err(|e| invalid(&ctx, e))?,
            None => MAX_RECORDS_MAX,
        };
        call(
            &ctx,
            A,
            OP,
            &json!({ "tag": filter.key, "value": filter.value, "page_size": page_size }),
            |cx, w| list_every_page(cx, w.rds.as_ref(), OP, &filter, page_size),
        )
    }

    /// Restore an Aurora cluster from an RDS snapshot (the `snapshot` runbook variant). Idempotent.
    ///
    /// # Parameters
    /// * `cluster_id` — the new cluster's identifier.
    /// * `snapshot_id` — an `available` snapshot.
    /// * `options` — `#{ engine_version (required), parameter_group, iam_auth }`.
    ///
    /// # Returns
    /// The cluster (status `creating`).
    ///
    /// # Errors
    /// `NotFound` for a missing snapshot; `Conflict` (retryable) while the snapshot is not
    /// `available`.
    ///
    /// # Example
    /// ```rhai
    /// rds::create_snapshot("orders-db", "orders-freeze");
    /// rds::wait_until_snapshot_available("orders-freeze", #{ timeout: "2h" });
    /// let c = rds::restore_cluster_from_snapshot("orders-restored", "orders-freeze",
    ///                                            #{ engine_version: "15.4" });
    /// if c.replication_source_identifier != () { throw c; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn restore_cluster_from_snapshot(
        ctx: NativeCallContext,
        cluster_id: &str,
        snapshot_id: &str,
        options: Map,
    ) -> RhaiResult<Map> {
        const OP: &str = "restore_cluster_from_snapshot";
        let o = Opts::new(
            A,
            OP,
            options,
            &["engine_version", "parameter_group", "iam_auth"],
        )
        .map_err(|e| invalid(&ctx, e))?;
        let req = RestoreCluster {
            iam_auth: o
                .bool("iam_auth")
                .map_err(|e| invalid(&ctx, e))?
                .unwrap_or(false),
            cluster_id: cluster_id.into(),
            snapshot_id: snapshot_id.into(),
            engine_version: o
                .string("engine_version")
                .map_err(|e| invalid(&ctx, e))?
                .ok_or_else(|| {
                    invalid(
                        &ctx,
                        PrimitiveError::invalid(
                            A,
                            OP,
                            "options.engine_version is missing",
                            "pick one from rds::list_engine_versions(\"aurora-postgresql\")",
                        ),
                    )
                })?,
            parameter_group: o.string("parameter_group").map_err(|e| invalid(&ctx, e))?,
        };
        call(&ctx, A, OP, &req, |cx, w| {
            w.rds.restore_cluster_from_snapshot(cx, &req)
        })
    }

    /// A copy-on-write clone of an Aurora cluster (Aurora's `copy-on-write` restore type, from
    /// the latest restorable time): a writable cluster for the owning team to try the
    /// application against, sharing the source's pages until either side changes them. In the
    /// source cluster's security groups, subnet group and cluster parameter group; create its
    /// instance once it is `available` (as AWS requires of a restored cluster). Idempotent: an
    /// existing cluster of that id is returned. Delete it with `rds::delete_instance` and
    /// `rds::delete_cluster`.
    ///
    /// # Parameters
    /// * `cluster_id` — the clone's identifier.
    /// * `source_cluster` — an `available` Aurora cluster with at least one instance (the
    ///   replica, before or after its promotion).
    /// * `options` — `#{ iam_auth }` (`true`: sign in with IAM, no passwords; default `false`).
    ///
    /// # Returns
    /// The clone (status `creating`, no replication source).
    ///
    /// # Errors
    /// `NotFound` for a missing source; `Invalid` for a source that is not Aurora; `Conflict`
    /// for a source without an instance (not retryable) or not `available` (retryable).
    ///
    /// # Example
    /// ```rhai
    /// rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4", iam_auth: true });
    /// rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.xlarge" });
    /// rds::wait_until_cluster_available("orders-aurora", #{ timeout: "6h" });
    /// rds::wait_until_instance_available("orders-aurora-1", #{ timeout: "2h" });
    /// let c = rds::clone_cluster("orders-aurora-clone", "orders-aurora", #{ iam_auth: true });
    /// assert(c.replication_source_identifier == (), "a clone is writable, not a replica");
    /// // Its instance only once the clone is available (AWS refuses sooner).
    /// while rds::describe_cluster("orders-aurora-clone").status != "available" { sleep("1m"); }
    /// rds::create_cluster_instance("orders-aurora-clone-1", "orders-aurora-clone", #{ instance_class: "db.r6g.large" });
    /// let cl = rds::wait_until_cluster_available("orders-aurora-clone", #{ timeout: "1h" });
    /// assert(cl.members == ["orders-aurora-clone-1"], "the clone's instance");
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn clone_cluster(
        ctx: NativeCallContext,
        cluster_id: &str,
        source_cluster: &str,
        options: Map,
    ) -> RhaiResult<Map> {
        const OP: &str = "clone_cluster";
        let o = Opts::new(A, OP, options, &["iam_auth"]).map_err(|e| invalid(&ctx, e))?;
        let req = CloneCluster {
            cluster_id: cluster_id.into(),
            source_cluster: source_cluster.into(),
            iam_auth: o
                .bool("iam_auth")
                .map_err(|e| invalid(&ctx, e))?
                .unwrap_or(false),
        };
        call(&ctx, A, OP, &req, |cx, w| w.rds.clone_cluster(cx, &req))
    }

    /// Poll an instance through the run's clock until it is `available`.
    ///
    /// # Parameters
    /// * `id` — the DB instance identifier.
    /// * `options` — `#{ timeout, every, min_every }`: durations (`"6h"`, `"30s"`) or seconds; with `min_every` the first poll waits that long and each next one twice as long, up to `every`; defaults `timeout: "1h"`, `every: "30s"`.
    ///
    /// # Returns
    /// The final observation (as `describe_instance`).
    ///
    /// # Errors
    /// `Timeout` when the deadline passes (the message has the last status); `Conflict` on a terminal
    /// state (`failed`, `incompatible-parameters`, `storage-full`, ...); `NotFound`.
    ///
    /// # Example
    /// ```rhai
    /// rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4", iam_auth: true });
    /// rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.xlarge" });
    /// let i = rds::wait_until_instance_available("orders-aurora-1", #{ timeout: "8h", every: "1m" });
    /// if i.status != "available" { throw i; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn wait_until_instance_available(
        ctx: NativeCallContext,
        id: &str,
        options: Map,
    ) -> RhaiResult<Map> {
        const OP: &str = "wait_until_instance_available";
        wait_until(
            &ctx,
            A,
            OP,
            id,
            options,
            (Duration::from_secs(3600), Duration::from_secs(30)),
            &format!("instance {id} available"),
            |cx, w| {
                let i = w.rds.describe_instance(cx, id)?;
                if TERMINAL_INSTANCE_STATES.contains(&i.status.as_str()) {
                    return Err(terminal(cx, w.rds.as_ref(), OP, "instance", id, &i.status));
                }
                Ok((i.status == "available").then_some(i))
            },
        )
    }

    /// Poll an instance until its security groups are in force: it is `available` and RDS reports
    /// every group membership `active`. A security-group change is applied asynchronously, so a
    /// quarantine protects nothing until this returns.
    ///
    /// # Parameters
    /// * `id` — the DB instance identifier.
    /// * `options` — `#{ timeout, every, min_every }`, as `wait_until_instance_available`;
    ///   defaults `timeout: "1h"`, `every: "30s"`.
    ///
    /// # Returns
    /// The final observation (as `describe_instance`), `security_groups_pending` empty.
    ///
    /// # Errors
    /// `Conflict` on a terminal state; `Timeout`; `NotFound`.
    ///
    /// # Example
    /// ```rhai
    /// let q = ec2::ensure_quarantine_group("vpc-0sim", "godwit-quarantine");
    /// rds::set_security_groups("orders-db", [q.id]);
    /// let i = rds::wait_until_security_groups_active("orders-db", #{ timeout: "20m" });
    /// assert_eq(i.security_groups, [q.id]);
    /// assert(i.security_groups_pending.is_empty(), "in force");
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn wait_until_security_groups_active(
        ctx: NativeCallContext,
        id: &str,
        options: Map,
    ) -> RhaiResult<Map> {
        const OP: &str = "wait_until_security_groups_active";
        wait_until(
            &ctx,
            A,
            OP,
            id,
            options,
            (Duration::from_secs(3600), Duration::from_secs(30)),
            &format!("security groups of instance {id} active"),
            |cx, w| {
                let i = w.rds.describe_instance(cx, id)?;
                if TERMINAL_INSTANCE_STATES.contains(&i.status.as_str()) {
                    return Err(terminal(cx, w.rds.as_ref(), OP, "instance", id, &i.status));
                }
                Ok((i.status == "available" && i.security_groups_pending.is_empty()).then_some(i))
            },
        )
    }

    /// The states RDS never leaves on its own (waiting is pointless): a runbook's gates abort on
    /// these and on nothing else — `maintenance`, `upgrading`, `backing-up`, `modifying`,
    /// `configuring-…` are transient.
    ///
    /// # Parameters
    /// None.
    ///
    /// # Returns
    /// `#{ instance: [...], cluster: [...] }`.
    ///
    /// # Errors
    /// None: the lists are AWS's, fixed in godwit.
    ///
    /// # Example
    /// ```rhai
    /// let t = rds::terminal_states();
    /// assert(t.cluster.contains("migration-failed"), "a replica that failed to build");
    /// assert(!t.instance.contains("maintenance"), "maintenance passes");
    /// ```
    #[rhai_fn(volatile)]
    pub fn terminal_states() -> Map {
        let list = |v: &[&str]| -> Dynamic {
            v.iter()
                .map(|s| Dynamic::from(s.to_string()))
                .collect::<Array>()
                .into()
        };
        let mut m = Map::new();
        m.insert("instance".into(), list(TERMINAL_INSTANCE_STATES));
        m.insert("cluster".into(), list(TERMINAL_CLUSTER_STATES));
        m
    }

    /// The Aurora PostgreSQL class for an RDS one: the same when `orderable` lists it, else the
    /// memory-optimised class of the same generation and size (`db.m6g.2xlarge` →
    /// `db.r6g.2xlarge`), else `db.r6g` of that size; `()` when none is orderable (Aurora
    /// PostgreSQL orders no `db.m*` class).
    ///
    /// # Parameters
    /// * `class` — the source's instance class.
    /// * `orderable` — what `list_orderable_instance_classes` returned for the target version.
    ///
    /// # Returns
    /// The class name, or `()` when no class of that size is orderable.
    ///
    /// # Errors
    /// None: a class that does not parse has no equivalent and gives `()`.
    ///
    /// # Example
    /// ```rhai
    /// let orderable = rds::list_orderable_instance_classes("aurora-postgresql", "15.4");
    /// assert_eq(rds::aurora_class_for("db.m6g.2xlarge", orderable), "db.r6g.2xlarge");
    /// assert_eq(rds::aurora_class_for("db.r6g.xlarge", orderable), "db.r6g.xlarge");
    /// assert_eq(rds::aurora_class_for("db.m1.tiny", orderable), ());
    /// ```
    #[rhai_fn(volatile)]
    pub fn aurora_class_for(class: &str, orderable: Array) -> Dynamic {
        let orderable: Vec<String> = orderable.into_iter().map(|c| c.to_string()).collect();
        crate::rds::aurora_class_for(class, &orderable).map_or(Dynamic::UNIT, Dynamic::from)
    }

    /// Poll a cluster until it is `available` with at least one `available` instance. For a new
    /// replica pass a size-aware timeout (AWS: several hours per TB), never a 30-minute default.
    ///
    /// # Parameters
    /// * `id` — the DB cluster identifier.
    /// * `options` — `#{ timeout, every, min_every }`: durations (`"6h"`, `"30s"`) or seconds; with `min_every` the first poll waits that long and each next one twice as long, up to `every`; defaults `timeout: "24h"`, `every: "1m"`.
    ///
    /// # Returns
    /// The final observation (as `describe_cluster`).
    ///
    /// # Errors
    /// `Conflict` on a terminal state (`migration-failed`, `failed`, `incompatible-parameters`,
    /// `inaccessible-encryption-credentials`): waiting will not help; `Timeout`; `NotFound`.
    ///
    /// # Example
    /// ```rhai
    /// rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4", iam_auth: true });
    /// rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.xlarge" });
    /// let c = rds::wait_until_cluster_available("orders-aurora", #{ timeout: "8h" });
    /// if c.status != "available" || c.replication_source_identifier == () { throw c; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn wait_until_cluster_available(
        ctx: NativeCallContext,
        id: &str,
        options: Map,
    ) -> RhaiResult<Map> {
        const OP: &str = "wait_until_cluster_available";
        wait_until(
            &ctx,
            A,
            OP,
            id,
            options,
            (Duration::from_secs(86_400), Duration::from_secs(60)),
            &format!("cluster {id} available"),
            |cx, w| {
                let c = w.rds.describe_cluster(cx, id)?;
                if TERMINAL_CLUSTER_STATES.contains(&c.status.as_str()) {
                    return Err(terminal(cx, w.rds.as_ref(), OP, "cluster", id, &c.status));
                }
                if c.status != "available" {
                    return Ok(None);
                }
                for m in &c.members {
                    if w.rds.describe_instance(cx, m)?.status == "available" {
                        return Ok(Some(c));
                    }
                }
                Ok(None)
            },
        )
    }

    /// Poll until a promotion completed: `replication_source_identifier` gone **and** status
    /// `available`. Status alone can read `available` before it reads `promoting`.
    ///
    /// # Parameters
    /// * `id` — the DB cluster identifier.
    /// * `options` — `#{ timeout, every, min_every }`: durations (`"6h"`, `"30s"`) or seconds; with `min_every` the first poll waits that long and each next one twice as long, up to `every`; defaults `timeout: "30m"`, `every: "15s"`.
    ///
    /// # Returns
    /// The final observation (as `describe_cluster`).
    ///
    /// # Errors
    /// `Timeout` when the promotion does not finish in time (a hung promotion); `Conflict` on a
    /// terminal state; `NotFound`.
    ///
    /// # Example
    /// ```rhai
    /// rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4", iam_auth: true });
    /// rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.xlarge" });
    /// rds::wait_until_cluster_available("orders-aurora", #{ timeout: "8h" });
    /// pg::block_logins("orders-db", ["orders_app"]);
    /// pg::terminate_backends("orders-db", pg::application_backends("orders-db").map(|b| b.pid));
    /// pg::wait_until_no_application_backends("orders-db", #{});
    /// let fence = pg::current_lsn("orders-db").lsn_bytes;
    /// // The replica's position, read on the source (Aurora has no pg_last_wal_replay_lsn).
    /// let behind = || { let c = pg::replication_connections("orders-db"); c.is_empty() || c.some(|s| s.replay_lsn_bytes < fence) };
    /// while behind.call() { sleep("5s"); }
    /// rds::promote_cluster("orders-aurora");
    /// let c = rds::wait_until_cluster_promoted("orders-aurora", #{});
    /// if c.status != "available" { throw c; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn wait_until_cluster_promoted(
        ctx: NativeCallContext,
        id: &str,
        options: Map,
    ) -> RhaiResult<Map> {
        const OP: &str = "wait_until_cluster_promoted";
        wait_until(
            &ctx,
            A,
            OP,
            id,
            options,
            (Duration::from_secs(1800), Duration::from_secs(15)),
            &format!("cluster {id} promoted"),
            |cx, w| {
                let c = w.rds.describe_cluster(cx, id)?;
                if TERMINAL_CLUSTER_STATES.contains(&c.status.as_str()) {
                    return Err(terminal(cx, w.rds.as_ref(), OP, "cluster", id, &c.status));
                }
                Ok(
                    (c.status == "available" && c.replication_source_identifier.is_none())
                        .then_some(c),
                )
            },
        )
    }

    /// Poll a snapshot until it is `available`.
    ///
    /// # Parameters
    /// * `id` — the snapshot identifier.
    /// * `options` — `#{ timeout, every, min_every }`: durations (`"6h"`, `"30s"`) or seconds; with `min_every` the first poll waits that long and each next one twice as long, up to `every`; defaults `timeout: "6h"`, `every: "1m"`.
    ///
    /// # Returns
    /// The final observation (as `describe_snapshot`).
    ///
    /// # Errors
    /// `Timeout`; `NotFound`.
    ///
    /// # Example
    /// ```rhai
    /// rds::create_snapshot("orders-db", "orders-final");
    /// let s = rds::wait_until_snapshot_available("orders-final", #{ timeout: "3h" });
    /// if s.status != "available" { throw s; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn wait_until_snapshot_available(
        ctx: NativeCallContext,
        id: &str,
        options: Map,
    ) -> RhaiResult<Map> {
        const OP: &str = "wait_until_snapshot_available";
        wait_until(
            &ctx,
            A,
            OP,
            id,
            options,
            (Duration::from_secs(6 * 3600), Duration::from_secs(60)),
            &format!("snapshot {id} available"),
            |cx, w| {
                let s = w.rds.describe_snapshot(cx, id)?;
                Ok((s.status == "available").then_some(s))
            },
        )
    }

    /// Poll until a cluster no longer exists (undo of a replica).
    ///
    /// # Parameters
    /// * `id` — the DB cluster identifier.
    /// * `options` — `#{ timeout, every, min_every }`: durations (`"6h"`, `"30s"`) or seconds; with `min_every` the first poll waits that long and each next one twice as long, up to `every`; defaults `timeout: "1h"`, `every: "1m"`.
    ///
    /// # Returns
    /// `#{ id, deleted: true }`.
    ///
    /// # Errors
    /// `Timeout`.
    ///
    /// # Example
    /// ```rhai
    /// rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4", iam_auth: true });
    /// rds::delete_cluster("orders-aurora");
    /// let r = rds::wait_until_cluster_deleted("orders-aurora", #{ timeout: "1h" });
    /// if !r.deleted { throw r; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn wait_until_cluster_deleted(
        ctx: NativeCallContext,
        id: &str,
        options: Map,
    ) -> RhaiResult<Map> {
        const OP: &str = "wait_until_cluster_deleted";
        wait_until(
            &ctx,
            A,
            OP,
            id,
            options,
            (Duration::from_secs(3600), Duration::from_secs(60)),
            &format!("cluster {id} deleted"),
            |cx, w| match w.rds.describe_cluster(cx, id) {
                Err(e) if e.kind == ErrorKind::NotFound => {
                    Ok(Some(json!({ "id": id, "deleted": true })))
                }
                Err(e) => Err(e),
                Ok(_) => Ok(None),
            },
        )
    }
}
