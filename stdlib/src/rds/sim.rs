//! [`Rds`] over the simulator: check-then-act mutations, transitions scheduled on the model's
//! virtual timeline with the scenario's AWS durations.

use godwit_engine::PrimitiveError;

use super::*;
use crate::prim::not_found;
use crate::sim::scenario::{FaultKind, version};
use crate::sim::{Change, ParamGroup, Sim, SimState};

const A: &str = "rds";

fn instance<'a>(st: &'a SimState, op: &str, id: &str) -> Result<&'a DbInstance, PrimitiveError> {
    st.rds
        .instances
        .get(id)
        .ok_or_else(|| instance_not_found(op, id))
}

fn cluster<'a>(st: &'a SimState, op: &str, id: &str) -> Result<&'a DbCluster, PrimitiveError> {
    st.rds
        .clusters
        .get(id)
        .ok_or_else(|| cluster_not_found(op, id))
}

fn family(engine: &str, v: &str) -> String {
    parameter_group_family(engine, version(v).map_or(0, |v| v.0))
}

impl Rds for Sim {
    fn describe_instance(&self, cx: &Call<'_>, id: &str) -> Result<DbInstance, PrimitiveError> {
        let st = self.api(cx, A, "describe_instance")?;
        instance(&st, "describe_instance", id).cloned()
    }

    fn describe_cluster(&self, cx: &Call<'_>, id: &str) -> Result<DbCluster, PrimitiveError> {
        let st = self.api(cx, A, "describe_cluster")?;
        cluster(&st, "describe_cluster", id).cloned()
    }

    fn list_engine_versions(
        &self,
        cx: &Call<'_>,
        engine: &str,
    ) -> Result<Vec<EngineVersion>, PrimitiveError> {
        let st = self.api(cx, A, "list_engine_versions")?;
        let mut supported = st.sc.aws.supported_extensions.clone();
        for f in st
            .faults
            .iter()
            .filter(|f| f.kind == FaultKind::ExtensionUnsupported)
        {
            supported.retain(|e| Some(e) != f.target.as_ref());
        }
        check_engine("list_engine_versions", engine)?;
        let versions: Vec<String> = if engine == "postgres" {
            vec![st.sc.source.engine_version.clone()]
        } else {
            st.sc.aws.aurora_versions.clone()
        };
        let out: Vec<EngineVersion> = versions
            .iter()
            .filter_map(|v| {
                let (major, minor) = version(v)?;
                Some(EngineVersion {
                    engine: engine.into(),
                    version: v.clone(),
                    major,
                    minor,
                    parameter_group_family: family(engine, v),
                    supported_extensions: if engine == "postgres" {
                        st.sc.source.extensions.clone()
                    } else {
                        supported.clone()
                    },
                })
            })
            .collect();
        Ok(sort_versions(out))
    }

    fn describe_parameters(
        &self,
        cx: &Call<'_>,
        group: &str,
    ) -> Result<Vec<Parameter>, PrimitiveError> {
        let st = self.api(cx, A, "describe_parameters")?;
        let g = st
            .rds
            .param_groups
            .get(group)
            .ok_or_else(|| parameter_group_not_found("describe_parameters", group))?;
        Ok(g.parameters
            .iter()
            .map(|(k, v)| Parameter {
                name: k.clone(),
                value: v.clone(),
                source: "user".into(),
            })
            .collect())
    }

    fn create_parameter_groups(
        &self,
        cx: &Call<'_>,
        req: &CreateParameterGroups,
    ) -> Result<ParameterGroupsCreated, PrimitiveError> {
        const OP: &str = "create_parameter_groups";
        let mut st = self.api(cx, A, OP)?;
        check_aurora_family(OP, &req.family)?;
        let mut unsupported_names = st.sc.aws.unsupported_parameters.clone();
        for f in st
            .faults
            .iter()
            .filter(|f| f.kind == FaultKind::ParameterUnsupported)
        {
            unsupported_names.extend(f.target.clone());
        }
        // The model knows no parameter levels: what the request names a cluster parameter is
        // one.
        let placed = place_parameters(req, |k| {
            if unsupported_names.iter().any(|u| u == k) {
                Accepts::Neither
            } else if req.cluster_parameters.contains_key(k) {
                Accepts::Cluster
            } else {
                Accepts::Instance
            }
        });
        let rules: Vec<ParameterRule> = simulated_rules(&req.family, true)
            .into_iter()
            .chain(simulated_rules(&req.family, false))
            .collect();
        check_parameter_values(OP, req, |k| rules.iter().find(|r| r.name == k).cloned())?;
        let now = st.now;
        let work = plan_parameter_groups(OP, req, &placed, |name, _| {
            Ok(st.rds.param_groups.get(name).map(|g| ExistingGroup {
                family: g.family.clone(),
                cluster: g.cluster,
                parameters: g.parameters.clone(),
            }))
        })?;
        for w in work {
            let g = st
                .rds
                .param_groups
                .entry(w.name.to_string())
                .or_insert_with(|| ParamGroup {
                    name: w.name.to_string(),
                    family: req.family.clone(),
                    cluster: w.cluster,
                    parameters: BTreeMap::new(),
                    created_at: now,
                });
            g.parameters.extend(w.set);
        }
        st.note(format!(
            "parameter groups {} / {} created",
            req.cluster_group, req.instance_group
        ));
        Ok(placed.created(req))
    }

    fn create_replica_cluster(
        &self,
        cx: &Call<'_>,
        req: &CreateReplicaCluster,
    ) -> Result<DbCluster, PrimitiveError> {
        const OP: &str = "create_replica_cluster";
        let mut st = self.api(cx, A, OP)?;
        let src = instance(&st, OP, &req.source_id)?.clone();
        let existing = st.rds.clusters.get(&req.cluster_id).cloned();
        if let Some(c) = existing_replica(OP, &src, existing)? {
            return Ok(c); // a re-run of the same step
        }
        check_replica_source(OP, req, &src)?;
        if !st.sc.aws.aurora_versions.contains(&req.engine_version) {
            return Err(incompatible_version(OP, req, &src));
        }
        let kms = if src.storage_encrypted {
            req.kms_key_id.clone().or(src.kms_key_id.clone())
        } else {
            None
        };
        if let Some(pg) = req
            .parameter_group
            .as_ref()
            .filter(|pg| !st.rds.param_groups.get(*pg).is_some_and(|g| g.cluster))
        {
            return Err(not_found(
                A,
                OP,
                format!("cluster parameter group {pg} not found"),
                "create it first with rds::create_parameter_groups",
            ));
        }
        if let Some(g) = req
            .parameter_group
            .as_ref()
            .and_then(|g| st.rds.param_groups.get(g))
        {
            check_group_settled(
                OP,
                &g.name,
                g.created_at.div_euclid(1000),
                st.now.div_euclid(1000),
                crate::sim::scenario::dur_ms(&st.sc.aws.parameter_group_settle) / 1000,
            )?;
        }
        let now = st.now;
        let id = req.cluster_id.clone();
        let region = st.sc.aws.region.clone();
        let c = DbCluster {
            id: id.clone(),
            arn: st.arn("cluster", &id),
            engine: "aurora-postgresql".into(),
            engine_version: req.engine_version.clone(),
            status: "creating".into(),
            replication_source_identifier: Some(src.arn.clone()),
            members: Vec::new(),
            writer: None,
            parameter_group: req
                .parameter_group
                .clone()
                .unwrap_or_else(|| format!("default.{}", family("aurora", &req.engine_version))),
            storage_encrypted: src.storage_encrypted,
            kms_key_id: kms,
            endpoint: format!("{id}.cluster-sim.{region}.rds.amazonaws.com"),
            reader_endpoint: format!("{id}.cluster-ro-sim.{region}.rds.amazonaws.com"),
            port: src.port,
            security_groups: req
                .security_groups
                .clone()
                .unwrap_or_else(|| src.security_groups.clone()),
            vpc_id: src.vpc_id.clone(),
            iam_auth: req.iam_auth,
        };
        st.rds.clusters.insert(id.clone(), c.clone());
        if let Some(s) = st.rds.instances.get_mut(&req.source_id) {
            s.replica_clusters.push(id.clone());
        }
        // Creating the replica (snapshot + restore + catch-up setup) scales with data size.
        let took = st.tm.create_replica_base
            + (st.tm.create_replica_per_100gb as f64 * st.sc.source.data_gb / 100.0) as i64;
        // Terminal states (faults) are decided when the creation completes.
        let status = "available".to_string();
        st.rds.schedule(
            now + took,
            Change::ClusterStatus {
                id: id.clone(),
                status,
            },
        );
        st.start_stream(&id);
        st.note(format!(
            "replica cluster {id} creating from {} (about {})",
            src.id,
            godwit_engine::duration::format_duration(std::time::Duration::from_millis(
                took.max(0) as u64
            ))
        ));
        Ok(c)
    }

    fn create_cluster(
        &self,
        cx: &Call<'_>,
        req: &CreateCluster,
    ) -> Result<DbCluster, PrimitiveError> {
        const OP: &str = "create_cluster";
        let mut st = self.api(cx, A, OP)?;
        let like = instance(&st, OP, &req.like)?.clone();
        let existing = st.rds.clusters.get(&req.cluster_id).cloned();
        if let Some(c) = existing_standalone(OP, req, existing)? {
            return Ok(c); // a re-run of the same step
        }
        check_logical_version(OP, req, &like)?;
        if !st.sc.aws.aurora_versions.contains(&req.engine_version) {
            return Err(PrimitiveError::invalid(
                A,
                OP,
                format!(
                    "Aurora PostgreSQL has no version {} (InvalidParameterCombination)",
                    req.engine_version
                ),
                format!(
                    "pick one of {} (rds::list_engine_versions(\"aurora-postgresql\"))",
                    st.sc.aws.aurora_versions.join(", ")
                ),
            ));
        }
        let wanted_family = family("aurora", &req.engine_version);
        if let Some(name) = &req.parameter_group {
            let Some(g) = st.rds.param_groups.get(name).filter(|g| g.cluster) else {
                return Err(not_found(
                    A,
                    OP,
                    format!("cluster parameter group {name} not found"),
                    "create it first with rds::create_parameter_groups",
                ));
            };
            // "The DB cluster parameter group family must match the DB engine version"
            // (CreateDBCluster, InvalidParameterCombination).
            if g.family != wanted_family {
                return Err(PrimitiveError::invalid(
                    A,
                    OP,
                    format!(
                        "cluster parameter group {name} is of family {}, Aurora {} needs {wanted_family}",
                        g.family, req.engine_version
                    ),
                    format!("create the groups with family {wanted_family}"),
                ));
            }
            check_group_settled(
                OP,
                &g.name,
                g.created_at.div_euclid(1000),
                st.now.div_euclid(1000),
                crate::sim::scenario::dur_ms(&st.sc.aws.parameter_group_settle) / 1000,
            )?;
        }
        let encrypted = req.storage_encrypted.unwrap_or(like.storage_encrypted);
        let kms = encrypted.then(|| {
            req.kms_key_id
                .clone()
                .or_else(|| like.kms_key_id.clone())
                .unwrap_or_else(|| "alias/aws/rds".into())
        });
        let id = req.cluster_id.clone();
        let region = st.sc.aws.region.clone();
        let c = DbCluster {
            id: id.clone(),
            arn: st.arn("cluster", &id),
            engine: "aurora-postgresql".into(),
            engine_version: req.engine_version.clone(),
            status: "creating".into(),
            replication_source_identifier: None,
            members: Vec::new(),
            writer: None,
            parameter_group: req
                .parameter_group
                .clone()
                .unwrap_or_else(|| format!("default.{wanted_family}")),
            storage_encrypted: encrypted,
            kms_key_id: kms,
            endpoint: format!("{id}.cluster-sim.{region}.rds.amazonaws.com"),
            reader_endpoint: format!("{id}.cluster-ro-sim.{region}.rds.amazonaws.com"),
            port: like.port,
            security_groups: req
                .security_groups
                .clone()
                .unwrap_or_else(|| like.security_groups.clone()),
            vpc_id: like.vpc_id.clone(),
            iam_auth: req.iam_auth,
        };
        st.rds.clusters.insert(id.clone(), c.clone());
        st.create_empty_database(&id);
        st.note(format!(
            "cluster {id} created empty (Aurora PostgreSQL {}, master {} with its password in Secrets Manager)",
            req.engine_version, req.master_username
        ));
        let at = st.now + crate::sim::scenario::dur_ms(&st.sc.aws.create_cluster);
        st.rds.schedule(
            at,
            Change::ClusterStatus {
                id,
                status: "available".into(),
            },
        );
        Ok(c)
    }

    fn create_cluster_instance(
        &self,
        cx: &Call<'_>,
        req: &CreateClusterInstance,
    ) -> Result<DbInstance, PrimitiveError> {
        const OP: &str = "create_cluster_instance";
        let mut st = self.api(cx, A, OP)?;
        let c = cluster(&st, OP, &req.cluster_id)?.clone();
        let existing = st.rds.instances.get(&req.instance_id).cloned();
        if let Some(i) = existing_member(OP, req, existing)? {
            return Ok(i);
        }
        check_aurora_class(OP, &req.instance_class, &c.engine_version)?;
        // A restored or cloned cluster (no replication source) takes instances only once it is
        // available: "You can create DB instances only after the RestoreDBClusterFromSnapshot /
        // RestoreDBClusterToPointInTime operation has completed and the DB cluster is
        // available" (RDS API reference). A replica's instance may be created at once.
        if c.replication_source_identifier.is_none() && c.status == "creating" {
            return Err(PrimitiveError::new(
                A,
                OP,
                ErrorKind::Conflict,
                format!(
                    "cluster {} is still being restored: its instances can be created only once it is available (InvalidDBClusterStateFault)",
                    c.id
                ),
                "wait until the cluster reads available (describe_cluster), then create the instance",
            )
            .with_retryable(true));
        }
        let region = st.sc.aws.region.clone();
        let i = DbInstance {
            id: req.instance_id.clone(),
            arn: st.arn("db", &req.instance_id),
            engine: "aurora-postgresql".into(),
            engine_version: c.engine_version.clone(),
            instance_class: req.instance_class.clone(),
            status: "creating".into(),
            cluster_id: Some(c.id.clone()),
            security_groups: c.security_groups.clone(),
            parameter_group: req
                .parameter_group
                .clone()
                .unwrap_or_else(|| format!("default.{}", family("aurora", &c.engine_version))),
            storage_encrypted: c.storage_encrypted,
            kms_key_id: c.kms_key_id.clone(),
            allocated_storage_gb: 1,
            backup_retention_days: 1,
            endpoint: format!("{}.sim.{region}.rds.amazonaws.com", req.instance_id),
            port: c.port,
            vpc_id: c.vpc_id.clone(),
            replica_clusters: Vec::new(),
            read_replicas: Vec::new(),
            iam_auth: false,
            auto_minor_version_upgrade: false,
            pending_modifications: Vec::new(),
            parameter_apply_status: "in-sync".into(),
            security_groups_pending: Vec::new(),
        };
        st.rds.instances.insert(i.id.clone(), i.clone());
        if let Some(cm) = st.rds.clusters.get_mut(&c.id) {
            cm.members.push(i.id.clone());
            if cm.writer.is_none() {
                cm.writer = Some(i.id.clone());
            }
        }
        // A replica whose hot-standby parameters are lower than its source's stops recovery:
        // RDS reports the instance incompatible-parameters once it would have started.
        let shortfalls = if c.replication_source_identifier.is_some() {
            hot_standby_shortfalls(
                |p| source_live_setting(&st, p),
                |p| member_setting(&st, &c, &i.parameter_group, &i.instance_class, p),
            )
        } else {
            Vec::new()
        };
        // The instance is ready a fixed time after both it was requested and its cluster is.
        let cluster_ready = st.rds.pending_for_cluster(&c.id).unwrap_or(st.now);
        let at = cluster_ready.max(st.now) + st.tm.create_instance;
        let status = if shortfalls.is_empty() {
            "available"
        } else {
            "incompatible-parameters"
        };
        if !shortfalls.is_empty() {
            st.note(format!(
                "{} will be incompatible-parameters: hot-standby parameters below the source's ({})",
                i.id,
                shortfalls.join(", ")
            ));
        }
        st.rds.schedule(
            at,
            Change::InstanceStatus {
                id: i.id.clone(),
                status: status.into(),
            },
        );
        Ok(i)
    }

    fn set_security_groups(
        &self,
        cx: &Call<'_>,
        id: &str,
        groups: &[String],
    ) -> Result<DbInstance, PrimitiveError> {
        const OP: &str = "set_security_groups";
        let mut st = self.api(cx, A, OP)?;
        let inst = instance(&st, OP, id)?.clone();
        if !security_groups_change(OP, &inst, groups)? {
            return Ok(inst);
        }
        // RDS applies the change asynchronously: the new groups read `adding` (pending) and
        // the old ones keep filtering new connections until the change is active; existing
        // sessions are not affected either way (security groups are stateful).
        let now = st.now;
        let modify = st.tm.modify;
        st.groups_in_force
            .entry(id.to_string())
            .or_insert_with(|| inst.security_groups.clone());
        if let Some(i) = st.rds.instances.get_mut(id) {
            i.security_groups_pending = groups
                .iter()
                .filter(|g| !inst.security_groups.contains(g))
                .cloned()
                .collect();
            i.security_groups = groups.to_vec();
            i.status = "modifying".into();
        }
        st.rds
            .schedule(now + modify, Change::SecurityGroupsActive { id: id.into() });
        st.rds.schedule(
            now + modify,
            Change::InstanceStatus {
                id: id.into(),
                status: "available".into(),
            },
        );
        st.note(format!(
            "security groups of {id} set to {}",
            groups.join(",")
        ));
        Ok(instance(&st, OP, id)?.clone())
    }

    fn reboot_instance(
        &self,
        cx: &Call<'_>,
        id: &str,
        token: &str,
    ) -> Result<DbInstance, PrimitiveError> {
        const OP: &str = "reboot_instance";
        let mut st = self.api(cx, A, OP)?;
        let inst = instance(&st, OP, id)?.clone();
        match reboot(OP, &inst, st.rds.reboot_tokens.contains(token))? {
            Reboot::Done => return Ok(inst),
            Reboot::Record => {
                st.rds.reboot_tokens.insert(token.to_string());
                return Ok(inst);
            }
            Reboot::Reboot => {}
        }
        st.rds.reboot_tokens.insert(token.to_string());
        if let Some(i) = st.rds.instances.get_mut(id) {
            i.status = "rebooting".into();
        }
        st.drop_sessions(id);
        let (now, at) = (st.now, st.now + st.tm.reboot);
        st.rds.event(now, id, false, "DB instance shutdown");
        if id == st.sc.source.id {
            // A clean shutdown ends with a checkpoint: every commit before it precedes it.
            st.checkpoint = (now, st.lsn, true);
        }
        st.rds.schedule(at, Change::RebootDone { id: id.into() });
        st.note(format!("{id} rebooting"));
        Ok(instance(&st, OP, id)?.clone())
    }

    fn promote_cluster(&self, cx: &Call<'_>, id: &str) -> Result<DbCluster, PrimitiveError> {
        const OP: &str = "promote_cluster";
        let mut st = self.api(cx, A, OP)?;
        let c = cluster(&st, OP, id)?.clone();
        // Requested, not visible yet (RDS reads `available` a while): nothing to do either.
        if promotion(OP, &c)? == Promotion::Nothing || st.rds.promote_requested(id) {
            return Ok(c);
        }
        let now = st.now;
        st.fence_at.get_or_insert(now);
        let at = st.now + st.tm.promote_status_lag;
        st.rds
            .schedule(at, Change::PromoteVisible { id: id.into() });
        st.note(format!("promotion of {id} requested"));
        Ok(c)
    }

    fn delete_instance(&self, cx: &Call<'_>, id: &str) -> Result<DbInstance, PrimitiveError> {
        const OP: &str = "delete_instance";
        let mut st = self.api(cx, A, OP)?;
        let inst = instance(&st, OP, id)?.clone();
        if deleting_instance(OP, &inst)? {
            return Ok(inst);
        }
        if let Some(i) = st.rds.instances.get_mut(id) {
            i.status = "deleting".into();
        }
        let at = st.now + st.tm.delete;
        st.rds
            .schedule(at, Change::DeleteInstance { id: id.into() });
        Ok(instance(&st, OP, id)?.clone())
    }

    fn delete_cluster(&self, cx: &Call<'_>, id: &str) -> Result<DbCluster, PrimitiveError> {
        const OP: &str = "delete_cluster";
        let mut st = self.api(cx, A, OP)?;
        let c = cluster(&st, OP, id)?.clone();
        let live: Vec<String> = c
            .members
            .iter()
            .filter(|m| {
                st.rds
                    .instances
                    .get(*m)
                    .is_some_and(|i| i.status != "deleting")
            })
            .cloned()
            .collect();
        if deleting_cluster(OP, &c, &live)? {
            return Ok(c);
        }
        if let Some(cm) = st.rds.clusters.get_mut(id) {
            cm.status = "deleting".into();
        }
        // A cluster still being created stops being created; the delete lands after its
        // members' deletes.
        let at = st.rds.cancel_cluster_creation(id, &c.members).max(st.now) + st.tm.delete;
        st.rds.schedule(at, Change::DeleteCluster { id: id.into() });
        Ok(cluster(&st, OP, id)?.clone())
    }

    fn create_snapshot(
        &self,
        cx: &Call<'_>,
        instance_id: &str,
        snapshot_id: &str,
    ) -> Result<Snapshot, PrimitiveError> {
        const OP: &str = "create_snapshot";
        let mut st = self.api(cx, A, OP)?;
        let inst = instance(&st, OP, instance_id)?.clone();
        let existing = st.rds.snapshots.get(snapshot_id).cloned();
        if let Some(s) = existing_snapshot(OP, instance_id, existing)? {
            return Ok(s);
        }
        let data_gb = st.sc.source.data_gb;
        let snap = Snapshot {
            id: snapshot_id.into(),
            source_id: instance_id.into(),
            status: "creating".into(),
            engine_version: inst.engine_version.clone(),
            storage_encrypted: inst.storage_encrypted,
            kms_key_id: inst.kms_key_id.clone(),
            data_gb,
        };
        st.rds.snapshots.insert(snapshot_id.into(), snap.clone());
        let at = st.now + (st.tm.snapshot_per_100gb as f64 * data_gb / 100.0).max(60_000.0) as i64;
        st.rds.schedule(
            at,
            Change::SnapshotDone {
                id: snapshot_id.into(),
            },
        );
        Ok(snap)
    }

    fn describe_snapshot(&self, cx: &Call<'_>, id: &str) -> Result<Snapshot, PrimitiveError> {
        let st = self.api(cx, A, "describe_snapshot")?;
        st.rds
            .snapshots
            .get(id)
            .cloned()
            .ok_or_else(|| snapshot_not_found("describe_snapshot", id))
    }

    fn restore_cluster_from_snapshot(
        &self,
        cx: &Call<'_>,
        req: &RestoreCluster,
    ) -> Result<DbCluster, PrimitiveError> {
        const OP: &str = "restore_cluster_from_snapshot";
        let mut st = self.api(cx, A, OP)?;
        let Some(snap) = st.rds.snapshots.get(&req.snapshot_id).cloned() else {
            return Err(snapshot_not_found(OP, &req.snapshot_id));
        };
        if let Some(c) = st.rds.clusters.get(&req.cluster_id) {
            return Ok(c.clone());
        }
        check_restorable(OP, &snap)?;
        if let Some(g) = req
            .parameter_group
            .as_ref()
            .and_then(|g| st.rds.param_groups.get(g))
        {
            check_group_settled(
                OP,
                &g.name,
                g.created_at.div_euclid(1000),
                st.now.div_euclid(1000),
                crate::sim::scenario::dur_ms(&st.sc.aws.parameter_group_settle) / 1000,
            )?;
        }
        let id = req.cluster_id.clone();
        let region = st.sc.aws.region.clone();
        let src_sg = st.sc.source.security_groups.clone();
        let vpc = st.sc.source.vpc_id.clone();
        let c = DbCluster {
            id: id.clone(),
            arn: st.arn("cluster", &id),
            engine: "aurora-postgresql".into(),
            engine_version: req.engine_version.clone(),
            status: "creating".into(),
            replication_source_identifier: None,
            members: Vec::new(),
            writer: None,
            parameter_group: req
                .parameter_group
                .clone()
                .unwrap_or_else(|| format!("default.{}", family("aurora", &req.engine_version))),
            storage_encrypted: snap.storage_encrypted,
            kms_key_id: snap.kms_key_id.clone(),
            endpoint: format!("{id}.cluster-sim.{region}.rds.amazonaws.com"),
            reader_endpoint: format!("{id}.cluster-ro-sim.{region}.rds.amazonaws.com"),
            port: default_port(),
            security_groups: src_sg,
            vpc_id: vpc,
            iam_auth: req.iam_auth,
        };
        st.rds.clusters.insert(id.clone(), c.clone());
        let at =
            st.now + (st.tm.restore_per_100gb as f64 * snap.data_gb / 100.0).max(300_000.0) as i64;
        st.rds.schedule(
            at,
            Change::ClusterStatus {
                id,
                status: "available".into(),
            },
        );
        Ok(c)
    }

    fn clone_cluster(
        &self,
        cx: &Call<'_>,
        req: &CloneCluster,
    ) -> Result<DbCluster, PrimitiveError> {
        const OP: &str = "clone_cluster";
        let mut st = self.api(cx, A, OP)?;
        if let Some(c) = st.rds.clusters.get(&req.cluster_id) {
            return Ok(c.clone());
        }
        let Some(src) = st.rds.clusters.get(&req.source_cluster).cloned() else {
            return Err(cluster_not_found(OP, &req.source_cluster));
        };
        check_clonable(OP, &src)?;
        let id = req.cluster_id.clone();
        let region = st.sc.aws.region.clone();
        // Not a replica: the clone is writable from the start, in the source cluster's groups,
        // parameter group and encryption (a copy-on-write volume keeps its key) — unless the
        // scenario assumes AWS keeps a replica's source on its clone, as moto does.
        let replication_source_identifier = if st.sc.aws.clone_keeps_replication_source {
            src.replication_source_identifier.clone()
        } else {
            None
        };
        let c = DbCluster {
            id: id.clone(),
            arn: st.arn("cluster", &id),
            status: "creating".into(),
            replication_source_identifier,
            members: Vec::new(),
            writer: None,
            endpoint: format!("{id}.cluster-sim.{region}.rds.amazonaws.com"),
            reader_endpoint: format!("{id}.cluster-ro-sim.{region}.rds.amazonaws.com"),
            iam_auth: req.iam_auth,
            ..src
        };
        st.rds.clusters.insert(id.clone(), c.clone());
        st.note(format!(
            "cluster {id} cloned from {} (copy-on-write)",
            req.source_cluster
        ));
        let at = st.now + crate::sim::scenario::dur_ms(&st.sc.aws.clone);
        st.rds.schedule(
            at,
            Change::ClusterStatus {
                id,
                status: "available".into(),
            },
        );
        Ok(c)
    }

    fn describe_parameter_group(
        &self,
        cx: &Call<'_>,
        group: &str,
    ) -> Result<ParameterGroup, PrimitiveError> {
        const OP: &str = "describe_parameter_group";
        let st = self.api(cx, A, OP)?;
        let g = st
            .rds
            .param_groups
            .get(group)
            .ok_or_else(|| parameter_group_not_found(OP, group))?;
        Ok(ParameterGroup {
            name: g.name.clone(),
            family: g.family.clone(),
            cluster: g.cluster,
            created_at: g.created_at.div_euclid(1000),
        })
    }

    fn describe_parameter_rules(
        &self,
        cx: &Call<'_>,
        family: &str,
        cluster: bool,
    ) -> Result<Vec<ParameterRule>, PrimitiveError> {
        let _st = self.api(cx, A, "describe_parameter_rules")?;
        Ok(simulated_rules(family, cluster))
    }

    fn list_orderable_instance_classes(
        &self,
        cx: &Call<'_>,
        engine: &str,
        _version: &str,
    ) -> Result<Vec<String>, PrimitiveError> {
        const OP: &str = "list_orderable_instance_classes";
        let _st = self.api(cx, A, OP)?;
        check_engine(OP, engine)?;
        Ok(if engine == "aurora-postgresql" {
            aurora_postgresql_classes()
        } else {
            let mut v: Vec<String> = [
                "db.m5", "db.m6g", "db.m6i", "db.r5", "db.r6g", "db.r6i", "db.t3", "db.t4g",
            ]
            .iter()
            .flat_map(|f| ["large", "xlarge", "2xlarge", "4xlarge"].map(|z| format!("{f}.{z}")))
            .collect();
            v.sort();
            v
        })
    }

    fn describe_events(
        &self,
        cx: &Call<'_>,
        id: &str,
        cluster: bool,
    ) -> Result<Vec<RdsEvent>, PrimitiveError> {
        let st = self.api(cx, A, "describe_events")?;
        let kind = if cluster { "db-cluster" } else { "db-instance" };
        Ok(sort_events(
            st.rds
                .events
                .iter()
                .filter(|e| e.source_id == id && e.source_type == kind)
                .cloned()
                .collect(),
        ))
    }

    fn list_instances(
        &self,
        cx: &Call<'_>,
        engine: &str,
        marker: Option<&str>,
        max_records: u32,
    ) -> Result<InstancePage, PrimitiveError> {
        let st = self.api(cx, A, "list_instances")?;
        // The world's instances (the source and what runs created) with the source's tags, and
        // the account's other instances (inventory only); paged as AWS pages.
        let modelled = st.rds.instances.values().map(|i| InstanceSummary {
            id: i.id.clone(),
            engine: i.engine.clone(),
            engine_version: i.engine_version.clone(),
            instance_class: i.instance_class.clone(),
            allocated_storage_gb: i.allocated_storage_gb,
            status: i.status.clone(),
            tags: if i.id == st.sc.source.id {
                st.sc.source.tags.clone()
            } else {
                BTreeMap::new()
            },
        });
        let account = st.sc.account.iter().map(|a| InstanceSummary {
            id: a.id.clone(),
            engine: a.engine.clone(),
            engine_version: a.engine_version.clone(),
            instance_class: a.instance_class.clone(),
            allocated_storage_gb: a.allocated_storage_gb,
            status: a.status.clone(),
            tags: a.tags.clone(),
        });
        Ok(page_after(
            modelled
                .chain(account)
                .filter(|i| i.engine == engine)
                .collect(),
            marker,
            max_records,
        ))
    }
}

/// RDS for PostgreSQL's defaults of the hot-standby parameters (its `postgres15` family).
fn rds_postgres_default(name: &str) -> Option<&'static str> {
    Some(match name {
        "max_connections" => "LEAST({DBInstanceClassMemory/9531392},5000)",
        "max_worker_processes" => "8",
        "max_prepared_transactions" => "0",
        "max_locks_per_transaction" => "64",
        "max_wal_senders" => "10",
        _ => return None,
    })
}

/// The source's live value of a numeric parameter: its group's, else RDS's default for its class.
pub(crate) fn source_live_setting(st: &SimState, name: &str) -> Option<i64> {
    let src = &st.sc.source;
    match src.parameters.get(name) {
        Some(v) => v.trim().parse().ok(),
        None => evaluate_default(rds_postgres_default(name)?, &src.instance_class),
    }
}

/// The value an instance of class `class` in cluster `c` with instance group `instance_group`
/// runs with: the instance group's, else the cluster group's, else the family default.
fn member_setting(
    st: &SimState,
    c: &DbCluster,
    instance_group: &str,
    class: &str,
    name: &str,
) -> Option<i64> {
    for (group, cluster) in [(instance_group, false), (c.parameter_group.as_str(), true)] {
        if let Some(v) = st
            .rds
            .param_groups
            .get(group)
            .and_then(|g| g.parameters.get(name))
        {
            return v.trim().parse().ok();
        }
        let rules = simulated_rules(&family("aurora", &c.engine_version), cluster);
        if let Some(d) = rules
            .iter()
            .find(|r| r.name == name)
            .and_then(|r| r.default.clone())
        {
            return evaluate_default(&d, class);
        }
    }
    None
}

/// The simulator's rules of an Aurora PostgreSQL family: a few parameters with the
/// `AllowedValues` RDS publishes for them (enough to refuse a value Aurora would refuse).
fn simulated_rules(_family: &str, cluster: bool) -> Vec<ParameterRule> {
    let rule = |name: &str, default: Option<&str>, allowed: Option<&str>| ParameterRule {
        name: name.into(),
        default: default.map(String::from),
        allowed_values: allowed.map(String::from),
        modifiable: true,
    };
    let mut v = if cluster {
        vec![
            rule("rds.logical_replication", Some("0"), Some("0,1")),
            rule("timezone", Some("UTC"), None),
            rule("max_wal_senders", Some("10"), Some("5-20")),
        ]
    } else {
        vec![
            rule(
                "max_connections",
                Some("{DBInstanceClassMemory/9531392}"),
                Some("6-262143"),
            ),
            rule("work_mem", Some("4096"), Some("64-2147483647")),
            rule("random_page_cost", None, Some("0-2147483647")),
            rule(
                "shared_preload_libraries",
                Some("pg_stat_statements"),
                Some(
                    "auto_explain,orafce,pg_bigm,pg_cron,pg_hint_plan,pg_prewarm,pg_similarity,pg_stat_statements,pg_tle,pg_transport,pgaudit,pglogical",
                ),
            ),
            rule("max_worker_processes", Some("8"), Some("0-262143")),
            rule(
                "max_locks_per_transaction",
                Some("64"),
                Some("10-2147483647"),
            ),
            rule("max_prepared_transactions", Some("0"), Some("0-262143")),
        ]
    };
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}
