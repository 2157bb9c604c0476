//! The rds contract's rules, on their own (the same rules against every world:
//! `tests/tests/contract.rs`).

use std::collections::BTreeMap;

use godwit_engine::ErrorKind;
use proptest::prelude::*;

use super::*;

fn params(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn group(family: &str, cluster: bool, kv: &[(&str, &str)]) -> ExistingGroup {
    ExistingGroup {
        family: family.into(),
        cluster,
        parameters: params(kv),
    }
}

const FAM: &str = "aurora-postgresql15";

#[test]
fn a_missing_group_is_created_and_the_same_group_again_needs_nothing() {
    let want = params(&[("work_mem", "8192")]);
    let plan = plan_parameter_group("op", "g", false, FAM, &want, None).unwrap();
    assert_eq!(plan, GroupPlan::Create);
    let same = group(FAM, false, &[("work_mem", "8192")]);
    let plan = plan_parameter_group("op", "g", false, FAM, &want, Some(&same)).unwrap();
    assert_eq!(plan, GroupPlan::Set(BTreeMap::new()));
}

#[test]
fn a_group_created_before_a_crash_gets_its_parameters_on_the_rerun() {
    let want = params(&[("work_mem", "8192"), ("random_page_cost", "1.1")]);
    let empty = group(FAM, false, &[]);
    let plan = plan_parameter_group("op", "g", false, FAM, &want, Some(&empty)).unwrap();
    assert_eq!(plan, GroupPlan::Set(want.clone()));
    let half = group(FAM, false, &[("work_mem", "8192")]);
    let plan = plan_parameter_group("op", "g", false, FAM, &want, Some(&half)).unwrap();
    assert_eq!(plan, GroupPlan::Set(params(&[("random_page_cost", "1.1")])));
}

#[test]
fn another_family_kind_or_setting_is_a_conflict_that_names_group_parameters_and_fix() {
    let want = params(&[("work_mem", "8192")]);
    let e = plan_parameter_group(
        "create_parameter_groups",
        "orders-pg15",
        false,
        FAM,
        &want,
        Some(&group("postgres15", false, &[("work_mem", "8192")])),
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert!(
        e.message
            .contains("orders-pg15 exists with family postgres15, not aurora-postgresql15"),
        "{e:?}"
    );
    assert!(e.hint.contains("choose other group names"), "{e:?}");

    let e = plan_parameter_group("op", "g", true, FAM, &want, Some(&group(FAM, false, &[])))
        .unwrap_err();
    assert!(
        e.message
            .contains("exists as a DB parameter group, not a DB cluster parameter group"),
        "{e:?}"
    );

    let other = group(
        FAM,
        false,
        &[("work_mem", "4096"), ("max_connections", "9")],
    );
    let e = plan_parameter_group("op", "g", false, FAM, &want, Some(&other)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert!(e.message.contains("work_mem = 4096 (wanted 8192)"), "{e:?}");
    assert!(
        e.message.contains("max_connections = 9 (not requested)"),
        "{e:?}"
    );
}

#[test]
fn parameters_land_in_exactly_one_group_and_the_rest_is_reported() {
    let req = CreateParameterGroups {
        cluster_group: "c".into(),
        instance_group: "i".into(),
        family: FAM.into(),
        parameters: params(&[
            ("work_mem", "1"),
            ("max_wal_size", "2"),
            ("timezone", "UTC"),
        ]),
        cluster_parameters: params(&[("rds.logical_replication", "1"), ("random_page_cost", "3")]),
    };
    let p = place_parameters(&req, |k| match k {
        "timezone" | "rds.logical_replication" => Accepts::Cluster,
        "work_mem" | "random_page_cost" => Accepts::Instance,
        _ => Accepts::Neither,
    });
    assert_eq!(
        p.cluster,
        params(&[("rds.logical_replication", "1"), ("timezone", "UTC")])
    );
    assert_eq!(p.instance, params(&[("work_mem", "1")]));
    assert_eq!(
        p.applied,
        ["rds.logical_replication", "timezone", "work_mem"]
    );
    assert_eq!(
        p.unsupported,
        ["max_wal_size", "random_page_cost"],
        "a cluster parameter the engine takes per instance only is not carried over"
    );
    let out = p.created(&req);
    assert_eq!(
        (out.cluster_group.as_str(), out.instance_group.as_str()),
        ("c", "i")
    );
}

#[test]
fn both_groups_are_planned_before_either_is_touched() {
    let req = CreateParameterGroups {
        cluster_group: "c".into(),
        instance_group: "i".into(),
        family: FAM.into(),
        parameters: params(&[("work_mem", "1")]),
        cluster_parameters: params(&[("rds.logical_replication", "1")]),
    };
    let placed = place_parameters(&req, |k| {
        if k.starts_with("rds.") {
            Accepts::Cluster
        } else {
            Accepts::Instance
        }
    });
    let [c, i] = plan_parameter_groups("op", &req, &placed, |_, _| Ok(None)).unwrap();
    assert_eq!((c.name, c.cluster, c.create), ("c", true, true));
    assert_eq!(c.set, params(&[("rds.logical_replication", "1")]));
    assert_eq!((i.name, i.cluster, i.create), ("i", false, true));
    assert_eq!(i.set, params(&[("work_mem", "1")]));
    // The instance group belongs to someone else: no work at all, not the cluster group's.
    let e = plan_parameter_groups("op", &req, &placed, |name, cluster| {
        Ok((name == "i").then(|| group(FAM, cluster, &[("work_mem", "2")])))
    })
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert!(e.message.contains("parameter group i"), "{e:?}");
}

fn cluster(status: &str, source: Option<&str>) -> DbCluster {
    DbCluster {
        id: "orders-aurora".into(),
        arn: "arn:aws:rds:r:1:cluster:orders-aurora".into(),
        engine: "aurora-postgresql".into(),
        engine_version: "15.4".into(),
        status: status.into(),
        replication_source_identifier: source.map(str::to_string),
        members: vec![],
        writer: None,
        parameter_group: "default.aurora-postgresql15".into(),
        storage_encrypted: false,
        kms_key_id: None,
        endpoint: String::new(),
        reader_endpoint: String::new(),
        port: 5432,
        security_groups: vec![],
        vpc_id: "vpc-1".into(),
        iam_auth: true,
    }
}

fn instance(status: &str) -> DbInstance {
    DbInstance {
        id: "orders-db".into(),
        arn: "arn:aws:rds:r:1:db:orders-db".into(),
        engine: "postgres".into(),
        engine_version: "15.4".into(),
        instance_class: "db.r6g.large".into(),
        status: status.into(),
        cluster_id: None,
        security_groups: vec!["sg-a".into(), "sg-b".into()],
        parameter_group: "orders-pg15".into(),
        storage_encrypted: false,
        kms_key_id: None,
        allocated_storage_gb: 100,
        backup_retention_days: 7,
        endpoint: String::new(),
        port: 5432,
        vpc_id: "vpc-1".into(),
        replica_clusters: vec![],
        read_replicas: vec![],
        iam_auth: true,
        auto_minor_version_upgrade: false,
        pending_modifications: vec![],
        parameter_apply_status: "in-sync".into(),
        security_groups_pending: vec![],
    }
}

#[test]
fn promotion_of_a_promoted_or_promoting_cluster_is_nothing_and_only_available_replicas_promote() {
    let src = Some("arn:aws:rds:r:1:db:orders-db");
    assert_eq!(
        promotion("op", &cluster("available", None)).unwrap(),
        Promotion::Nothing
    );
    assert_eq!(
        promotion("op", &cluster("promoting", src)).unwrap(),
        Promotion::Nothing
    );
    assert_eq!(
        promotion("op", &cluster("available", src)).unwrap(),
        Promotion::Request
    );
    let e = promotion("op", &cluster("creating", src)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert!(promoted(&cluster("available", None)));
    assert!(
        !promoted(&cluster("available", src)),
        "status alone is not enough"
    );
    assert!(!promoted(&cluster("promoting", None)));
}

#[test]
fn a_reboot_happens_once_per_token_and_waits_for_an_available_instance() {
    assert_eq!(
        reboot("op", &instance("available"), true).unwrap(),
        Reboot::Done
    );
    assert_eq!(
        reboot("op", &instance("available"), false).unwrap(),
        Reboot::Reboot
    );
    assert_eq!(
        reboot("op", &instance("rebooting"), false).unwrap(),
        Reboot::Record
    );
    let e = reboot("op", &instance("modifying"), false).unwrap_err();
    assert_eq!((e.kind, e.retryable), (ErrorKind::Conflict, true));
}

#[test]
fn security_groups_compare_as_sets_and_none_is_invalid() {
    let i = instance("available");
    let same = ["sg-b".to_string(), "sg-a".to_string()];
    assert!(!security_groups_change("op", &i, &same).unwrap());
    assert!(security_groups_change("op", &i, &["sg-q".into()]).unwrap());
    assert_eq!(
        security_groups_change("op", &i, &[]).unwrap_err().kind,
        ErrorKind::Invalid
    );
    let busy = instance("modifying");
    assert_eq!(
        security_groups_change("op", &busy, &["sg-q".into()])
            .unwrap_err()
            .kind,
        ErrorKind::Conflict
    );
}

#[test]
fn creates_return_the_same_resource_and_refuse_someone_elses() {
    let src = instance("available");
    let mine = cluster("available", Some(&src.arn));
    assert_eq!(
        existing_replica("op", &src, Some(mine.clone())).unwrap(),
        Some(mine)
    );
    let by_id = cluster("available", Some("orders-db"));
    assert!(existing_replica("op", &src, Some(by_id)).unwrap().is_some());
    let theirs = cluster("available", Some("arn:aws:rds:r:1:db:other-db"));
    let e = existing_replica("op", &src, Some(theirs)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert!(
        e.message.contains("does not replicate from orders-db"),
        "{e:?}"
    );
    assert_eq!(existing_replica("op", &src, None).unwrap(), None);

    let req = CreateClusterInstance {
        instance_id: "orders-aurora-1".into(),
        cluster_id: "orders-aurora".into(),
        instance_class: "db.r6g.large".into(),
        parameter_group: None,
    };
    let mut member = instance("available");
    member.cluster_id = Some("orders-aurora".into());
    assert!(existing_member("op", &req, Some(member)).unwrap().is_some());
    let e = existing_member("op", &req, Some(instance("available"))).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
}

#[test]
fn a_replica_needs_backups_no_other_replica_and_a_compatible_version() {
    let req = |v: &str| CreateReplicaCluster {
        cluster_id: "orders-aurora".into(),
        source_id: "orders-db".into(),
        engine_version: v.into(),
        parameter_group: None,
        security_groups: None,
        kms_key_id: None,
        iam_auth: true,
    };
    let src = instance("available");
    check_replica_source("op", &req("15.4"), &src).unwrap();
    check_replica_source("op", &req("15.6"), &src).unwrap();
    for bad in ["15.3", "16.1", "x"] {
        let e = check_replica_source("op", &req(bad), &src).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Invalid, "{bad}");
    }
    let mut other = src.clone();
    other.replica_clusters = vec!["orders-other".into()];
    let e = check_replica_source("op", &req("15.4"), &other).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
    let mut again = src.clone();
    again.replica_clusters = vec!["orders-aurora".into()];
    check_replica_source("op", &req("15.4"), &again).unwrap();
    let mut nobackup = src;
    nobackup.backup_retention_days = 0;
    assert_eq!(
        check_replica_source("op", &req("15.4"), &nobackup)
            .unwrap_err()
            .kind,
        ErrorKind::Invalid
    );
}

#[test]
fn deletes_refuse_a_replication_source_and_a_cluster_with_instances() {
    let mut src = instance("available");
    assert!(!deleting_instance("op", &src).unwrap());
    src.replica_clusters = vec!["orders-aurora".into()];
    let e = deleting_instance("op", &src).unwrap_err();
    assert!(
        e.message.contains("replication source of orders-aurora"),
        "{e:?}"
    );
    assert!(deleting_instance("op", &instance("deleting")).unwrap());
    let c = cluster("available", None);
    assert!(!deleting_cluster("op", &c, &[]).unwrap());
    let e = deleting_cluster("op", &c, &["orders-aurora-1".into()]).unwrap_err();
    assert!(
        e.message.contains("still has instances: orders-aurora-1"),
        "{e:?}"
    );
    assert!(deleting_cluster("op", &cluster("deleting", None), &["x".into()]).unwrap());
}

#[test]
fn unknown_ids_are_not_found_and_unknown_engines_invalid() {
    for e in [
        instance_not_found("op", "x"),
        cluster_not_found("op", "x"),
        snapshot_not_found("op", "x"),
        parameter_group_not_found("op", "x"),
    ] {
        assert_eq!((e.area.as_str(), e.kind), ("rds", ErrorKind::NotFound));
    }
    assert_eq!(
        check_engine("op", "mysql").unwrap_err().kind,
        ErrorKind::Invalid
    );
    check_engine("op", "postgres").unwrap();
    assert_eq!(parameter_group_family("postgres", 15), "postgres15");
    assert_eq!(
        parameter_group_family("aurora-postgresql", 16),
        "aurora-postgresql16"
    );
    assert_eq!(major_minor("15.4"), Some((15, 4)));
    assert_eq!(major_minor("16"), Some((16, 0)));
    assert_eq!(major_minor("x"), None);
}

proptest! {
    /// Whatever part of the request a crashed run left in the group, the re-run's plan
    /// completes it, and planning again afterwards finds nothing to do.
    #[test]
    fn a_rerun_converges_from_any_partial_group(
        want in proptest::collection::btree_map("[a-e]", "[0-3]", 0..5),
        keep in proptest::collection::vec(any::<bool>(), 5),
    ) {
        let partial: BTreeMap<String, String> = want
            .iter()
            .zip(keep.iter().cycle())
            .filter(|(_, k)| **k)
            .map(|((k, v), _)| (k.clone(), v.clone()))
            .collect();
        let existing = ExistingGroup { family: FAM.into(), cluster: true, parameters: partial.clone() };
        let GroupPlan::Set(set) = plan_parameter_group("op", "g", true, FAM, &want, Some(&existing)).unwrap() else {
            panic!("an existing group is never created again");
        };
        let mut after = partial;
        after.extend(set);
        prop_assert_eq!(&after, &want);
        let done = ExistingGroup { family: FAM.into(), cluster: true, parameters: after };
        prop_assert_eq!(
            plan_parameter_group("op", "g", true, FAM, &want, Some(&done)).unwrap(),
            GroupPlan::Set(BTreeMap::new())
        );
    }

    /// A group with any user-set parameter the request does not set the same way conflicts.
    #[test]
    fn any_foreign_setting_conflicts(
        want in proptest::collection::btree_map("[a-e]", "[0-3]", 0..5),
        extra in "[a-h]",
        value in "[4-9]",
    ) {
        let mut existing = want.clone();
        existing.insert(extra.clone(), value);
        let e = ExistingGroup { family: FAM.into(), cluster: false, parameters: existing };
        let err = plan_parameter_group("op", "g", false, FAM, &want, Some(&e)).unwrap_err();
        prop_assert_eq!(err.kind, ErrorKind::Conflict);
        prop_assert!(err.message.contains(&extra));
    }
}

fn summary(id: &str) -> InstanceSummary {
    InstanceSummary {
        id: id.into(),
        engine: LISTED_ENGINE.into(),
        engine_version: "15.4".into(),
        instance_class: "db.r6g.large".into(),
        allocated_storage_gb: 100,
        status: "available".into(),
        tags: BTreeMap::new(),
    }
}

#[test]
fn max_records_is_refused_outside_aws_range_as_aws_refuses_it() {
    assert_eq!(check_max_records("list_instances", 20).unwrap(), 20);
    assert_eq!(check_max_records("list_instances", 100).unwrap(), 100);
    for bad in [0, 19, 101, -1] {
        let e = check_max_records("list_instances", bad).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Invalid);
        assert!(e.message.contains("InvalidParameterValue"), "{e:?}");
        assert!(e.hint.contains("20 to 100"), "{e:?}");
    }
}

#[test]
fn a_tag_filter_needs_a_key_for_a_value_and_a_non_empty_key() {
    let f = |k: Option<&str>, v: Option<&str>| {
        TagFilter::new("list_instances", k.map(String::from), v.map(String::from))
    };
    assert!(
        f(None, Some("payments"))
            .unwrap_err()
            .message
            .contains("without a tag")
    );
    assert!(
        f(Some(" "), None)
            .unwrap_err()
            .message
            .contains("the tag is empty")
    );
    assert!(f(Some(&"k".repeat(129)), None).is_err());
    let tags = params(&[("godwit:fleet", "payments"), ("team", "")]);
    assert!(f(None, None).unwrap().matches(&tags));
    assert!(f(Some("godwit:fleet"), None).unwrap().matches(&tags));
    assert!(
        f(Some("team"), None).unwrap().matches(&tags),
        "an empty value is a value"
    );
    assert!(
        f(Some("godwit:fleet"), Some("payments"))
            .unwrap()
            .matches(&tags)
    );
    assert!(
        !f(Some("godwit:fleet"), Some("Payments"))
            .unwrap()
            .matches(&tags),
        "case matters"
    );
    assert!(!f(Some("owner"), None).unwrap().matches(&tags));
}

proptest! {
    /// Paging a world's instances in pages of any size AWS accepts serves each instance once,
    /// in id order, no page larger than asked, and the last page without a marker.
    #[test]
    fn pages_serve_every_instance_once(n in 0usize..260, size in MAX_RECORDS_MIN..=MAX_RECORDS_MAX) {
        let items: Vec<InstanceSummary> =
            (0..n).rev().map(|i| summary(&format!("db-{i:04}"))).collect();
        let mut seen = Vec::new();
        let mut marker: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = page_after(items.clone(), marker.as_deref(), size);
            prop_assert!(page.instances.len() <= size as usize);
            pages += 1;
            seen.extend(page.instances.into_iter().map(|i| i.id));
            marker = page.marker;
            if marker.is_none() {
                break;
            }
        }
        let want: Vec<String> = (0..n).map(|i| format!("db-{i:04}")).collect();
        prop_assert_eq!(seen, want);
        prop_assert_eq!(pages, n.div_ceil(size as usize).max(1));
    }
}
