//! The `rds` contract: describe/NotFound shapes, idempotent creates, the parameter-group rule
//! (`rds::plan_parameter_group`), reboot idempotency by token, events as evidence, promotion
//! completion (`rds::promoted`), delete rules.

use std::collections::BTreeMap;

use godwit_engine::ErrorKind;
use godwit_stdlib::rds::{
    self, CreateClusterInstance, CreateParameterGroups, CreateReplicaCluster, DbCluster,
    DbInstance, EngineVersion, RdsEvent,
};

use super::{Fixture, MISSING, err, ok, sorted_by};

const A: &str = "rds";
/// The story's parameter groups.
pub const CLUSTER_GROUP: &str = "contract-aurora-cluster";
pub const INSTANCE_GROUP: &str = "contract-aurora-instance";

pub fn instance(f: &Fixture, id: &str) -> DbInstance {
    let i = ok(
        f,
        &format!("describe_instance({id})"),
        f.areas
            .rds
            .describe_instance(&f.cx(A, "describe_instance"), id),
    );
    f.saw(&i.status);
    i
}

pub fn cluster(f: &Fixture, id: &str) -> DbCluster {
    let c = ok(
        f,
        &format!("describe_cluster({id})"),
        f.areas
            .rds
            .describe_cluster(&f.cx(A, "describe_cluster"), id),
    );
    f.saw(&c.status);
    c
}

pub fn events(f: &Fixture, id: &str, cluster: bool) -> Vec<RdsEvent> {
    let e = ok(
        f,
        &format!("describe_events({id})"),
        f.areas
            .rds
            .describe_events(&f.cx(A, "describe_events"), id, cluster),
    );
    assert!(
        sorted_by(&e, |e| e.at),
        "[{}] events are oldest first: {e:?}",
        f.name
    );
    e
}

pub fn wait_instance_available(f: &Fixture, id: &str) -> DbInstance {
    f.wait(&format!("instance {id} available"), || {
        Some(instance(f, id)).filter(|i| i.status == "available")
    })
}

/// The Aurora version the story replicates into: the source's major, the lowest minor at
/// least the source's.
pub fn target_version(f: &Fixture) -> EngineVersion {
    let src = instance(f, &f.source);
    let (major, minor) = rds::major_minor(&src.engine_version).expect("a source version");
    let versions = ok(
        f,
        "list_engine_versions",
        f.areas
            .rds
            .list_engine_versions(&f.cx(A, "list_engine_versions"), "aurora-postgresql"),
    );
    versions
        .into_iter()
        .find(|v| v.major == major && v.minor >= minor)
        .unwrap_or_else(|| panic!("[{}] no Aurora version for {major}.{minor}", f.name))
}

/// Listing the account (fleet discovery): the source is listed as its describe shows it, with
/// its tags; Aurora members (the story's writer exists by now) never are; sorted by id, each
/// once, the same whatever page size AWS accepts; a tag no instance carries keeps none.
pub fn listing(f: &Fixture) {
    let list = |page: u32, filter: &rds::TagFilter| {
        ok(
            f,
            &format!("list_instances(page_size {page})"),
            rds::list_every_page(
                &f.cx(A, "list_instances"),
                f.areas.rds.as_ref(),
                "list_instances",
                filter,
                page,
            ),
        )
    };
    let all = list(rds::MAX_RECORDS_MAX, &rds::TagFilter::default());
    let src = instance(f, &f.source);
    let listed = all
        .iter()
        .find(|i| i.id == f.source)
        .unwrap_or_else(|| panic!("[{}] the source is not listed: {all:?}", f.name));
    assert_eq!(
        (
            listed.engine.as_str(),
            listed.engine_version.as_str(),
            listed.instance_class.as_str(),
            listed.allocated_storage_gb,
            listed.status.as_str()
        ),
        (
            src.engine.as_str(),
            src.engine_version.as_str(),
            src.instance_class.as_str(),
            src.allocated_storage_gb,
            src.status.as_str()
        ),
        "[{}] listed as described",
        f.name
    );
    assert!(
        all.iter()
            .all(|i| i.engine == rds::LISTED_ENGINE && i.id != f.writer),
        "[{}] PostgreSQL instances only, never an Aurora member: {all:?}",
        f.name
    );
    assert!(
        all.windows(2).all(|w| w[0].id < w[1].id),
        "[{}] sorted by id, each once: {all:?}",
        f.name
    );
    assert_eq!(
        list(rds::MAX_RECORDS_MIN, &rds::TagFilter::default()),
        all,
        "[{}] the smallest page size lists the same",
        f.name
    );
    let none = rds::TagFilter::new("t", Some("godwit:contract-no-such-tag".into()), None).unwrap();
    assert_eq!(list(rds::MAX_RECORDS_MAX, &none), [], "[{}]", f.name);
}

/// Describing: what exists is described, an unknown id is `NotFound` (area rds), engine
/// versions are sorted, an unknown engine is `Invalid`, parameters are sorted by name.
pub fn reads(f: &Fixture) {
    let src = instance(f, &f.source);
    assert_eq!(
        (src.id.as_str(), src.engine.as_str(), src.status.as_str()),
        (f.source.as_str(), "postgres", "available"),
        "[{}] {src:?}",
        f.name
    );
    assert_eq!(src.vpc_id, f.vpc, "[{}]", f.name);
    assert!(
        src.arn.ends_with(&format!(":db:{}", f.source)),
        "[{}] {}",
        f.name,
        src.arn
    );
    let rules = [
        (
            "an unknown instance is NotFound",
            f.areas
                .rds
                .describe_instance(&f.cx(A, "describe_instance"), MISSING)
                .map(|_| ()),
        ),
        (
            "an unknown cluster is NotFound",
            f.areas
                .rds
                .describe_cluster(&f.cx(A, "describe_cluster"), MISSING)
                .map(|_| ()),
        ),
        (
            "an unknown parameter group is NotFound",
            f.areas
                .rds
                .describe_parameters(&f.cx(A, "describe_parameters"), MISSING)
                .map(|_| ()),
        ),
        (
            "promoting an unknown cluster is NotFound",
            f.areas
                .rds
                .promote_cluster(&f.cx(A, "promote_cluster"), MISSING)
                .map(|_| ()),
        ),
        (
            "deleting an unknown instance is NotFound",
            f.areas
                .rds
                .delete_instance(&f.cx(A, "delete_instance"), MISSING)
                .map(|_| ()),
        ),
        (
            "deleting an unknown cluster is NotFound",
            f.areas
                .rds
                .delete_cluster(&f.cx(A, "delete_cluster"), MISSING)
                .map(|_| ()),
        ),
    ];
    for (rule, r) in rules {
        err(f, rule, ErrorKind::NotFound, A, r);
    }
    err(
        f,
        "an unknown engine is Invalid (rds::check_engine)",
        ErrorKind::Invalid,
        A,
        f.areas
            .rds
            .list_engine_versions(&f.cx(A, "list_engine_versions"), "mysql"),
    );
    let versions = ok(
        f,
        "list_engine_versions",
        f.areas
            .rds
            .list_engine_versions(&f.cx(A, "list_engine_versions"), "aurora-postgresql"),
    );
    assert!(!versions.is_empty(), "[{}] no Aurora versions", f.name);
    assert!(
        sorted_by(&versions, |v| (v.major, v.minor)),
        "[{}] versions oldest first: {versions:?}",
        f.name
    );
    for v in &versions {
        assert_eq!(
            v.parameter_group_family,
            rds::parameter_group_family("aurora-postgresql", v.major),
            "[{}]",
            f.name
        );
    }
    target_version(f);
    let params = ok(
        f,
        "describe_parameters(source group)",
        f.areas
            .rds
            .describe_parameters(&f.cx(A, "describe_parameters"), &src.parameter_group),
    );
    assert!(
        sorted_by(&params, |p| p.name.clone()),
        "[{}] parameters sorted by name",
        f.name
    );
}

fn request(family: &str, work_mem: Option<&str>, logical: bool) -> CreateParameterGroups {
    let kv = |k: &str, v: Option<&str>| -> BTreeMap<String, String> {
        v.map(|v| (k.to_string(), v.to_string()))
            .into_iter()
            .collect()
    };
    CreateParameterGroups {
        cluster_group: CLUSTER_GROUP.into(),
        instance_group: INSTANCE_GROUP.into(),
        family: family.into(),
        parameters: kv("work_mem", work_mem),
        cluster_parameters: kv("rds.logical_replication", logical.then_some("1")),
    }
}

/// The user-set parameters of `group`.
fn user_parameters(f: &Fixture, group: &str) -> BTreeMap<String, String> {
    ok(
        f,
        &format!("describe_parameters({group})"),
        f.areas
            .rds
            .describe_parameters(&f.cx(A, "describe_parameters"), group),
    )
    .into_iter()
    .filter(|p| p.source == "user")
    .map(|p| (p.name, p.value))
    .collect()
}

/// `rds::plan_parameter_group` in every world: a group left without its parameters (a crash
/// between creating it and setting them) converges on the re-run; the same request again
/// changes nothing; another family, or a user-set parameter the request sets differently or
/// not at all, is a `Conflict` naming the group and the parameter, and changes nothing.
pub fn parameter_groups(f: &Fixture) {
    let family = target_version(f).parameter_group_family;
    let create = |req: &CreateParameterGroups| {
        f.areas
            .rds
            .create_parameter_groups(&f.cx(A, "create_parameter_groups"), req)
    };
    // What a crash right after creating the groups leaves: both groups, no parameters.
    ok(
        f,
        "create empty groups",
        create(&request(&family, None, false)),
    );
    assert!(user_parameters(f, CLUSTER_GROUP).is_empty(), "[{}]", f.name);
    let full = request(&family, Some("8192"), true);
    let first = ok(f, "the re-run with every parameter", create(&full));
    assert_eq!(
        (first.applied.clone(), first.unsupported.clone()),
        (
            vec![
                "rds.logical_replication".to_string(),
                "work_mem".to_string()
            ],
            vec![]
        ),
        "[{}] each parameter in one group: {first:?}",
        f.name
    );
    let one = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
    let (cluster_want, instance_want) =
        (one("rds.logical_replication", "1"), one("work_mem", "8192"));
    assert_eq!(
        user_parameters(f, CLUSTER_GROUP),
        cluster_want,
        "[{}] the cluster group holds the cluster parameter only",
        f.name
    );
    assert_eq!(
        user_parameters(f, INSTANCE_GROUP),
        instance_want,
        "[{}] the instance group holds the instance parameter only",
        f.name
    );
    let again = ok(f, "the same request again", create(&full));
    assert_eq!(again, first, "[{}] same request, same answer", f.name);

    let e = err(
        f,
        "a user-set parameter set differently conflicts (rds::plan_parameter_group)",
        ErrorKind::Conflict,
        A,
        create(&request(&family, Some("4096"), true)),
    );
    assert!(
        e.message.contains(INSTANCE_GROUP) && e.message.contains("work_mem = 8192 (wanted 4096)"),
        "[{}] names the group and the parameter: {e:?}",
        f.name
    );
    assert!(
        e.hint.contains("choose other group names"),
        "[{}] {e:?}",
        f.name
    );
    let e = err(
        f,
        "a user-set parameter the request does not set conflicts",
        ErrorKind::Conflict,
        A,
        create(&request(&family, None, true)),
    );
    assert!(
        e.message.contains("work_mem = 8192 (not requested)"),
        "[{}] {e:?}",
        f.name
    );
    let other = rds::parameter_group_family("aurora-postgresql", target_version(f).major + 1);
    let e = err(
        f,
        "another family conflicts",
        ErrorKind::Conflict,
        A,
        create(&request(&other, Some("8192"), true)),
    );
    assert!(
        e.message.contains(&format!("exists with family {family}")),
        "[{}] {e:?}",
        f.name
    );
    err(
        f,
        "a family that is not Aurora PostgreSQL is Invalid",
        ErrorKind::Invalid,
        A,
        create(&request("postgres15", Some("8192"), true)),
    );
    assert_eq!(
        (
            user_parameters(f, CLUSTER_GROUP),
            user_parameters(f, INSTANCE_GROUP)
        ),
        (cluster_want, instance_want),
        "[{}] a refused request changes nothing",
        f.name
    );
}

fn replica_request(f: &Fixture, id: &str, version: &str) -> CreateReplicaCluster {
    CreateReplicaCluster {
        cluster_id: id.into(),
        source_id: f.source.clone(),
        engine_version: version.into(),
        parameter_group: Some(CLUSTER_GROUP.into()),
        security_groups: None,
        kms_key_id: None,
        iam_auth: true,
    }
}

/// Creating the replica and its writer: the same request again returns the same resource and
/// creates nothing; a second replica of the source, an incompatible version, an instance id
/// taken outside the cluster are refused; creation ends `available`.
pub fn replica(f: &Fixture) {
    let src = instance(f, &f.source);
    let version = target_version(f).version;
    let create = |req: &CreateReplicaCluster| {
        f.areas
            .rds
            .create_replica_cluster(&f.cx(A, "create_replica_cluster"), req)
    };
    if !f.group_settle.is_zero() {
        let e = err(
            f,
            "a cluster parameter group younger than the settle time is refused (rds::check_group_settled)",
            ErrorKind::Conflict,
            A,
            create(&replica_request(f, &f.target, &version)),
        );
        assert!(e.message.contains(CLUSTER_GROUP), "[{}] {e:?}", f.name);
        f.cx("contract", "settle")
            .sleep(f.group_settle)
            .unwrap_or_else(|e| panic!("[{}] waiting for the group to settle: {e}", f.name));
    }
    err(
        f,
        "an Aurora version of another major is Invalid (rds::check_replica_source)",
        ErrorKind::Invalid,
        A,
        create(&replica_request(f, &f.target, "99.0")),
    );
    let c = ok(
        f,
        "create_replica_cluster",
        create(&replica_request(f, &f.target, &version)),
    );
    assert_eq!(
        c.replication_source_identifier.as_deref(),
        Some(src.arn.as_str()),
        "[{}] the replica names its source's ARN",
        f.name
    );
    assert_eq!(c.engine, "aurora-postgresql", "[{}]", f.name);
    let again = ok(
        f,
        "create_replica_cluster again",
        create(&replica_request(f, &f.target, &version)),
    );
    assert_eq!(again.arn, c.arn, "[{}]", f.name);
    assert_eq!(
        instance(f, &f.source).replica_clusters,
        vec![f.target.clone()],
        "[{}] one replica, not two",
        f.name
    );
    err(
        f,
        "a second Aurora replica of one source conflicts (rds::check_replica_source)",
        ErrorKind::Conflict,
        A,
        create(&replica_request(f, "contract-other", &version)),
    );

    let member = |id: &str, cluster: &str| CreateClusterInstance {
        instance_id: id.into(),
        cluster_id: cluster.into(),
        instance_class: "db.r6g.large".into(),
        parameter_group: None,
    };
    let add = |req: &CreateClusterInstance| {
        f.areas
            .rds
            .create_cluster_instance(&f.cx(A, "create_cluster_instance"), req)
    };
    let w = ok(
        f,
        "create_cluster_instance",
        add(&member(&f.writer, &f.target)),
    );
    assert_eq!(
        w.cluster_id.as_deref(),
        Some(f.target.as_str()),
        "[{}]",
        f.name
    );
    let again = ok(
        f,
        "create_cluster_instance again",
        add(&member(&f.writer, &f.target)),
    );
    assert_eq!(again.arn, w.arn, "[{}]", f.name);
    err(
        f,
        "an instance id taken outside the cluster conflicts (rds::existing_member)",
        ErrorKind::Conflict,
        A,
        add(&member(&f.source, &f.target)),
    );
    err(
        f,
        "a member of an unknown cluster is NotFound",
        ErrorKind::NotFound,
        A,
        add(&member("contract-orphan", MISSING)),
    );
    let c = f.wait("the replica cluster available", || {
        Some(cluster(f, &f.target)).filter(|c| c.status == "available")
    });
    assert!(
        c.members.contains(&f.writer),
        "[{}] {:?}",
        f.name,
        c.members
    );
    assert!(
        c.replication_source_identifier.is_some(),
        "[{}] still a replica",
        f.name
    );
    wait_instance_available(f, &f.writer);
    events(f, &f.target, true);
}

/// The fence's RDS half: security groups compare as sets and change once, none is `Invalid`;
/// a reboot happens once per token, and `describe_events` shows it (`DB instance shutdown`,
/// then `DB instance restarted`) in every world; the replication source cannot be deleted.
pub fn fence(f: &Fixture) {
    let src = instance(f, &f.source);
    let q = ok(
        f,
        "ensure_quarantine_group",
        f.areas.ec2.ensure_quarantine_group(
            &f.cx("ec2", "ensure_quarantine_group"),
            &f.vpc,
            super::ec2::QUARANTINE,
            &super::ec2::admit(f),
        ),
    );
    let set = |groups: &[String]| {
        f.areas
            .rds
            .set_security_groups(&f.cx(A, "set_security_groups"), &f.source, groups)
    };
    let i = ok(f, "set_security_groups", set(std::slice::from_ref(&q.id)));
    assert_eq!(i.security_groups, vec![q.id.clone()], "[{}]", f.name);
    wait_instance_available(f, &f.source);
    let again = ok(f, "the same groups again", set(std::slice::from_ref(&q.id)));
    assert_eq!(again.security_groups, vec![q.id.clone()], "[{}]", f.name);
    assert_eq!(
        again.status, "available",
        "[{}] no change, no modify",
        f.name
    );
    err(
        f,
        "no security group is Invalid (rds::security_groups_change)",
        ErrorKind::Invalid,
        A,
        set(&[]),
    );

    let reboots = |f: &Fixture| -> (usize, usize) {
        let e = events(f, &f.source, false);
        let count = |m: &str| e.iter().filter(|e| e.message == m).count();
        (
            count("DB instance shutdown"),
            count("DB instance restarted"),
        )
    };
    let before = reboots(f);
    let reboot = |token: &str| {
        f.areas
            .rds
            .reboot_instance(&f.cx(A, "reboot_instance"), &f.source, token)
    };
    ok(f, "reboot_instance", reboot("contract/reboot-source"));
    wait_instance_available(f, &f.source);
    let after = reboots(f);
    assert_eq!(
        after,
        (before.0 + 1, before.1 + 1),
        "[{}] one reboot: one shutdown and one restart event",
        f.name
    );
    let e = events(f, &f.source, false);
    let last = |m: &str| e.iter().rposition(|e| e.message == m);
    assert!(
        last("DB instance shutdown") < last("DB instance restarted"),
        "[{}] shutdown before restart: {e:?}",
        f.name
    );
    let same = ok(
        f,
        "reboot_instance with the same token",
        reboot("contract/reboot-source"),
    );
    assert_eq!(same.status, "available", "[{}] not rebooting again", f.name);
    assert_eq!(
        reboots(f),
        after,
        "[{}] a re-run of the step (same token) does not reboot again",
        f.name
    );
    ok(
        f,
        "reboot_instance with another token",
        reboot("contract/reboot-again"),
    );
    wait_instance_available(f, &f.source);
    assert_eq!(
        reboots(f),
        (after.0 + 1, after.1 + 1),
        "[{}] another step (token) reboots",
        f.name
    );

    err(
        f,
        "the replication source cannot be deleted (rds::deleting_instance)",
        ErrorKind::Conflict,
        A,
        f.areas
            .rds
            .delete_instance(&f.cx(A, "delete_instance"), &f.source),
    );
    // Back to the application's groups: the story goes on with an open source.
    ok(f, "restore the groups", set(&src.security_groups));
    wait_instance_available(f, &f.source);
}

/// Snapshots where the world models them: an unknown one is `NotFound`; the same snapshot id
/// again returns it.
pub fn snapshots(f: &Fixture) {
    if !f.snapshots {
        // A world without snapshots says so (Invalid); every world has them today.
        err(
            f,
            "a world without snapshots says so",
            ErrorKind::Invalid,
            A,
            f.areas
                .rds
                .describe_snapshot(&f.cx(A, "describe_snapshot"), MISSING),
        );
        return;
    }
    err(
        f,
        "an unknown snapshot is NotFound",
        ErrorKind::NotFound,
        A,
        f.areas
            .rds
            .describe_snapshot(&f.cx(A, "describe_snapshot"), MISSING),
    );
    let take = || {
        f.areas
            .rds
            .create_snapshot(&f.cx(A, "create_snapshot"), &f.source, "contract-snap")
    };
    let s = ok(f, "create_snapshot", take());
    assert_eq!(s.source_id, f.source, "[{}]", f.name);
    let again = ok(f, "create_snapshot again", take());
    assert_eq!(again.id, s.id, "[{}]", f.name);
    err(
        f,
        "a snapshot id of another instance conflicts (rds::existing_snapshot)",
        ErrorKind::Conflict,
        A,
        f.areas
            .rds
            .create_snapshot(&f.cx(A, "create_snapshot"), &f.writer, "contract-snap"),
    );
}

/// Promotion: requested once, complete when `replication_source_identifier` is gone **and**
/// the status is `available` (`rds::promoted`), recorded as an RDS event; promoting a promoted
/// cluster returns it.
pub fn promotion(f: &Fixture) {
    let promote = || {
        f.areas
            .rds
            .promote_cluster(&f.cx(A, "promote_cluster"), &f.target)
    };
    ok(f, "promote_cluster", promote());
    ok(
        f,
        "promote_cluster again while promoting (a re-run)",
        promote(),
    );
    let c = f.wait("the promotion complete", || {
        Some(cluster(f, &f.target)).filter(rds::promoted)
    });
    assert_eq!(c.replication_source_identifier, None, "[{}]", f.name);
    let again = ok(f, "promote_cluster on a promoted cluster", promote());
    assert!(rds::promoted(&again), "[{}] {again:?}", f.name);
    let e = events(f, &f.target, true);
    assert!(
        e.iter().any(|e| e.message
            == "Promoted read replica cluster to a stand-alone database cluster"),
        "[{}] the promotion is an RDS event: {e:?}",
        f.name
    );
    assert!(
        !instance(f, &f.source).replica_clusters.contains(&f.target),
        "[{}] the source no longer lists its promoted replica",
        f.name
    );
}

/// Deletes: a cluster with instances is refused; an instance reads `deleting`, then is gone
/// (`NotFound`); the cluster likewise; deleting what is gone is `NotFound`.
pub fn deletes(f: &Fixture) {
    let rds = &f.areas.rds;
    err(
        f,
        "a cluster with instances cannot be deleted (rds::deleting_cluster)",
        ErrorKind::Conflict,
        A,
        rds.delete_cluster(&f.cx(A, "delete_cluster"), &f.target),
    );
    let i = ok(
        f,
        "delete_instance",
        rds.delete_instance(&f.cx(A, "delete_instance"), &f.writer),
    );
    assert_eq!(i.status, "deleting", "[{}]", f.name);
    f.wait("the writer gone", || {
        match rds.describe_instance(&f.cx(A, "describe_instance"), &f.writer) {
            Err(e) if e.kind == ErrorKind::NotFound => Some(()),
            Ok(i) => {
                f.saw(&i.status);
                None
            }
            Err(e) => panic!("[{}] describe a deleting instance: {e}", f.name),
        }
    });
    err(
        f,
        "deleting a deleted instance is NotFound",
        ErrorKind::NotFound,
        A,
        rds.delete_instance(&f.cx(A, "delete_instance"), &f.writer),
    );
    let c = ok(
        f,
        "delete_cluster",
        rds.delete_cluster(&f.cx(A, "delete_cluster"), &f.target),
    );
    assert_eq!(c.status, "deleting", "[{}]", f.name);
    f.wait("the cluster gone", || {
        match rds.describe_cluster(&f.cx(A, "describe_cluster"), &f.target) {
            Err(e) if e.kind == ErrorKind::NotFound => Some(()),
            Ok(c) => {
                f.saw(&c.status);
                None
            }
            Err(e) => panic!("[{}] describe a deleting cluster: {e}", f.name),
        }
    });
    err(
        f,
        "deleting a deleted cluster is NotFound",
        ErrorKind::NotFound,
        A,
        rds.delete_cluster(&f.cx(A, "delete_cluster"), &f.target),
    );
}
