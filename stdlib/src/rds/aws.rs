//! [`Rds`] over `aws-sdk-rds`: every mutation describes first and treats "already exists" /
//! "already in that state" as success returning the current state (docs/aws.md lists the API
//! each primitive calls).

use std::collections::BTreeMap;

use aws_sdk_rds::types as t;
use godwit_engine::{ErrorKind, PrimitiveError};

use super::*;
use crate::aws::{AwsApi, arn_id};

const A: &str = "rds";

/// Tag that records the step token of the last reboot godwit asked for (see `reboot_instance`).
pub const REBOOT_TAG: &str = "godwit:reboot-token";

/// Tag that records when godwit created a parameter group (epoch seconds): the API reports no
/// creation time, and AWS asks not to use a new cluster group for about five minutes.
pub const CREATED_TAG: &str = "godwit:created-at";

fn created_tag(cx: &Call<'_>) -> t::Tag {
    t::Tag::builder()
        .key(CREATED_TAG)
        .value(cx.now_ms().div_euclid(1000).to_string())
        .build()
}

fn instance_of(i: &t::DbInstance) -> DbInstance {
    let s = |o: Option<&str>| o.unwrap_or_default().to_string();
    DbInstance {
        id: s(i.db_instance_identifier()),
        arn: s(i.db_instance_arn()),
        engine: s(i.engine()),
        engine_version: s(i.engine_version()),
        instance_class: s(i.db_instance_class()),
        status: s(i.db_instance_status()),
        cluster_id: i.db_cluster_identifier().map(str::to_string),
        security_groups: i
            .vpc_security_groups()
            .iter()
            .filter_map(|g| g.vpc_security_group_id().map(str::to_string))
            .collect(),
        parameter_group: i
            .db_parameter_groups()
            .first()
            .and_then(|g| g.db_parameter_group_name())
            .unwrap_or_default()
            .to_string(),
        storage_encrypted: i.storage_encrypted().unwrap_or(false),
        kms_key_id: i.kms_key_id().map(str::to_string),
        allocated_storage_gb: i.allocated_storage().unwrap_or(0).max(0) as u64,
        backup_retention_days: i.backup_retention_period().unwrap_or(0).max(0) as u32,
        endpoint: s(i.endpoint().and_then(|e| e.address())),
        port: i
            .endpoint()
            .and_then(|e| e.port())
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or_else(default_port),
        vpc_id: s(i.db_subnet_group().and_then(|g| g.vpc_id())),
        // RDS lists identifiers here (ARNs for cross-region replicas): keep identifiers.
        replica_clusters: i
            .read_replica_db_cluster_identifiers()
            .iter()
            .map(|c| arn_id(c))
            .collect(),
        // Cross-Region replicas are listed by ARN: keep them whole, they are what blocks.
        read_replicas: i.read_replica_db_instance_identifiers().to_vec(),
        iam_auth: i.iam_database_authentication_enabled().unwrap_or(false),
        auto_minor_version_upgrade: i.auto_minor_version_upgrade().unwrap_or(false),
        pending_modifications: pending_of(i.pending_modified_values()),
        parameter_apply_status: i
            .db_parameter_groups()
            .first()
            .and_then(|g| g.parameter_apply_status())
            .unwrap_or("in-sync")
            .to_string(),
        security_groups_pending: i
            .vpc_security_groups()
            .iter()
            .filter(|g| g.status().is_some_and(|st| st != "active"))
            .filter_map(|g| g.vpc_security_group_id().map(str::to_string))
            .collect(),
    }
}

/// The fields of `PendingModifiedValues` that are set, named as the API names them.
fn pending_of(p: Option<&t::PendingModifiedValues>) -> Vec<String> {
    let Some(p) = p else {
        return Vec::new();
    };
    let mut v = Vec::new();
    let mut set = |name: &str, present: bool| {
        if present {
            v.push(name.to_string());
        }
    };
    set("DBInstanceClass", p.db_instance_class().is_some());
    set("AllocatedStorage", p.allocated_storage().is_some());
    set("MasterUserPassword", p.master_user_password().is_some());
    set("Port", p.port().is_some());
    set(
        "BackupRetentionPeriod",
        p.backup_retention_period().is_some(),
    );
    set("MultiAZ", p.multi_az().is_some());
    set("EngineVersion", p.engine_version().is_some());
    set("Iops", p.iops().is_some());
    set("StorageType", p.storage_type().is_some());
    set(
        "CACertificateIdentifier",
        p.ca_certificate_identifier().is_some(),
    );
    set("DBSubnetGroupName", p.db_subnet_group_name().is_some());
    set(
        "IAMDatabaseAuthenticationEnabled",
        p.iam_database_authentication_enabled().is_some(),
    );
    set("StorageThroughput", p.storage_throughput().is_some());
    v
}

fn cluster_of(c: &t::DbCluster, vpc_id: String) -> DbCluster {
    let s = |o: Option<&str>| o.unwrap_or_default().to_string();
    DbCluster {
        id: s(c.db_cluster_identifier()),
        arn: s(c.db_cluster_arn()),
        engine: s(c.engine()),
        engine_version: s(c.engine_version()),
        status: s(c.status()),
        replication_source_identifier: c
            .replication_source_identifier()
            .filter(|r| !r.is_empty())
            .map(str::to_string),
        members: c
            .db_cluster_members()
            .iter()
            .filter_map(|m| m.db_instance_identifier().map(str::to_string))
            .collect(),
        writer: c
            .db_cluster_members()
            .iter()
            .find(|m| m.is_cluster_writer() == Some(true))
            .and_then(|m| m.db_instance_identifier().map(str::to_string)),
        parameter_group: s(c.db_cluster_parameter_group()),
        storage_encrypted: c.storage_encrypted().unwrap_or(false),
        kms_key_id: c.kms_key_id().map(str::to_string),
        endpoint: s(c.endpoint()),
        reader_endpoint: s(c.reader_endpoint()),
        port: c
            .port()
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or_else(default_port),
        security_groups: c
            .vpc_security_groups()
            .iter()
            .filter_map(|g| g.vpc_security_group_id().map(str::to_string))
            .collect(),
        vpc_id,
        iam_auth: c.iam_database_authentication_enabled().unwrap_or(false),
    }
}

fn snapshot_of(s: &t::DbSnapshot) -> Snapshot {
    let st = |o: Option<&str>| o.unwrap_or_default().to_string();
    Snapshot {
        id: st(s.db_snapshot_identifier()),
        source_id: st(s.db_instance_identifier()),
        status: st(s.status()),
        engine_version: st(s.engine_version()),
        storage_encrypted: s.encrypted().unwrap_or(false),
        kms_key_id: s.kms_key_id().map(str::to_string),
        data_gb: f64::from(s.allocated_storage().unwrap_or(0)),
    }
}

/// A parameter of an engine's defaults: where it may be set and how it applies.
#[derive(Debug, Clone)]
struct DefaultParam {
    modifiable: bool,
    /// `static` (applies at the next reboot) or `dynamic`.
    apply_type: String,
}

impl AwsApi {
    fn find_instance(
        &self,
        cx: &Call<'_>,
        op: &str,
        id: &str,
    ) -> Result<Option<DbInstance>, PrimitiveError> {
        let out = self.api(cx, A, op, "rds.DescribeDBInstances", || {
            self.aws
                .rds
                .describe_db_instances()
                .db_instance_identifier(id)
                .send()
        });
        match out {
            Ok(o) => Ok(o.db_instances().first().map(instance_of)),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn get_instance(
        &self,
        cx: &Call<'_>,
        op: &str,
        id: &str,
    ) -> Result<DbInstance, PrimitiveError> {
        self.find_instance(cx, op, id)?
            .ok_or_else(|| instance_not_found(op, id))
    }

    fn find_cluster(
        &self,
        cx: &Call<'_>,
        op: &str,
        id: &str,
    ) -> Result<Option<DbCluster>, PrimitiveError> {
        let out = self.api(cx, A, op, "rds.DescribeDBClusters", || {
            self.aws
                .rds
                .describe_db_clusters()
                .db_cluster_identifier(id)
                .send()
        });
        let raw = match out {
            Ok(o) => match o.db_clusters().first() {
                Some(c) => c.clone(),
                None => return Ok(None),
            },
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        // DBCluster names its subnet group, not the VPC; the group knows the VPC.
        let vpc = match raw.db_subnet_group().filter(|g| !g.is_empty()) {
            None => String::new(),
            Some(group) => {
                let out = self.api(cx, A, op, "rds.DescribeDBSubnetGroups", || {
                    self.aws
                        .rds
                        .describe_db_subnet_groups()
                        .db_subnet_group_name(group)
                        .send()
                });
                match out {
                    Ok(o) => o
                        .db_subnet_groups()
                        .first()
                        .and_then(|g| g.vpc_id())
                        .unwrap_or_default()
                        .to_string(),
                    Err(e) if e.kind == ErrorKind::NotFound => String::new(),
                    Err(e) => return Err(e),
                }
            }
        };
        Ok(Some(cluster_of(&raw, vpc)))
    }

    fn get_cluster(&self, cx: &Call<'_>, op: &str, id: &str) -> Result<DbCluster, PrimitiveError> {
        self.find_cluster(cx, op, id)?
            .ok_or_else(|| cluster_not_found(op, id))
    }

    fn find_snapshot(
        &self,
        cx: &Call<'_>,
        op: &str,
        id: &str,
    ) -> Result<Option<Snapshot>, PrimitiveError> {
        let out = self.api(cx, A, op, "rds.DescribeDBSnapshots", || {
            self.aws
                .rds
                .describe_db_snapshots()
                .db_snapshot_identifier(id)
                .send()
        });
        match out {
            Ok(o) => Ok(o.db_snapshots().first().map(snapshot_of)),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The engine defaults of a parameter group family: instance-level and cluster-level.
    fn engine_defaults(
        &self,
        cx: &Call<'_>,
        op: &str,
        family: &str,
        cluster: bool,
    ) -> Result<Vec<t::Parameter>, PrimitiveError> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = if cluster {
                self.api(
                    cx,
                    A,
                    op,
                    "rds.DescribeEngineDefaultClusterParameters",
                    || {
                        self.aws
                            .rds
                            .describe_engine_default_cluster_parameters()
                            .db_parameter_group_family(family)
                            .set_marker(marker.clone())
                            .send()
                    },
                )?
                .engine_defaults
            } else {
                self.api(cx, A, op, "rds.DescribeEngineDefaultParameters", || {
                    self.aws
                        .rds
                        .describe_engine_default_parameters()
                        .db_parameter_group_family(family)
                        .set_marker(marker.clone())
                        .send()
                })?
                .engine_defaults
            };
            let Some(d) = page else { break };
            out.extend(d.parameters().iter().cloned());
            marker = d.marker().filter(|m| !m.is_empty()).map(str::to_string);
            if marker.is_none() {
                break;
            }
        }
        Ok(out)
    }

    fn defaults_map(
        &self,
        cx: &Call<'_>,
        op: &str,
        family: &str,
        cluster: bool,
    ) -> Result<BTreeMap<String, DefaultParam>, PrimitiveError> {
        Ok(self
            .engine_defaults(cx, op, family, cluster)?
            .into_iter()
            .filter_map(|p| {
                Some((
                    p.parameter_name()?.to_string(),
                    DefaultParam {
                        modifiable: p.is_modifiable().unwrap_or(true),
                        apply_type: p.apply_type().unwrap_or("static").to_string(),
                    },
                ))
            })
            .collect())
    }

    /// Extensions a family offers: the `rds.extensions` parameter of its engine defaults
    /// (what `SHOW rds.extensions` prints on a running instance).
    fn supported_extensions(
        &self,
        cx: &Call<'_>,
        op: &str,
        family: &str,
    ) -> Result<Vec<String>, PrimitiveError> {
        for cluster in [false, true] {
            let params = self.engine_defaults(cx, op, family, cluster)?;
            if let Some(p) = params
                .iter()
                .find(|p| p.parameter_name() == Some("rds.extensions"))
            {
                let list = p
                    .parameter_value()
                    .filter(|v| !v.is_empty())
                    .or(p.allowed_values())
                    .unwrap_or_default();
                let mut exts: Vec<String> = list
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                exts.sort();
                return Ok(exts);
            }
        }
        Ok(Vec::new())
    }

    /// Parameters of a DB parameter group, or of a DB cluster parameter group of that name.
    fn group_parameters(
        &self,
        cx: &Call<'_>,
        op: &str,
        group: &str,
    ) -> Result<Option<Vec<t::Parameter>>, PrimitiveError> {
        match self.parameters_of(cx, op, group, false)? {
            Some(p) => Ok(Some(p)),
            None => self.parameters_of(cx, op, group, true),
        }
    }

    /// Every parameter of the DB (`cluster` false) or DB cluster parameter group `group`, every
    /// page; `None` when there is no such group of that kind.
    fn parameters_of(
        &self,
        cx: &Call<'_>,
        op: &str,
        group: &str,
        cluster: bool,
    ) -> Result<Option<Vec<t::Parameter>>, PrimitiveError> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = if cluster {
                self.api(cx, A, op, "rds.DescribeDBClusterParameters", || {
                    self.aws
                        .rds
                        .describe_db_cluster_parameters()
                        .db_cluster_parameter_group_name(group)
                        .set_marker(marker.clone())
                        .send()
                })
                .map(|o| (o.parameters().to_vec(), o.marker().map(str::to_string)))
            } else {
                self.api(cx, A, op, "rds.DescribeDBParameters", || {
                    self.aws
                        .rds
                        .describe_db_parameters()
                        .db_parameter_group_name(group)
                        .set_marker(marker.clone())
                        .send()
                })
                .map(|o| (o.parameters().to_vec(), o.marker().map(str::to_string)))
            };
            match page {
                Ok((params, next)) => {
                    out.extend(params);
                    marker = next.filter(|m| !m.is_empty());
                    if marker.is_none() {
                        return Ok(Some(out));
                    }
                }
                Err(e) if e.kind == ErrorKind::NotFound && out.is_empty() => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    /// The parameter group `name` of a kind (`cluster`) as it exists: its family and its
    /// user-set parameters; `None` when there is none of that kind (DB and DB cluster
    /// parameter groups have separate names on AWS).
    fn existing_group(
        &self,
        cx: &Call<'_>,
        op: &str,
        name: &str,
        cluster: bool,
    ) -> Result<Option<ExistingGroup>, PrimitiveError> {
        let family = if cluster {
            match self.api(cx, A, op, "rds.DescribeDBClusterParameterGroups", || {
                self.aws
                    .rds
                    .describe_db_cluster_parameter_groups()
                    .db_cluster_parameter_group_name(name)
                    .send()
            }) {
                Ok(o) => o
                    .db_cluster_parameter_groups()
                    .first()
                    .and_then(|g| g.db_parameter_group_family())
                    .map(str::to_string),
                Err(e) if e.kind == ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            }
        } else {
            match self.api(cx, A, op, "rds.DescribeDBParameterGroups", || {
                self.aws
                    .rds
                    .describe_db_parameter_groups()
                    .db_parameter_group_name(name)
                    .send()
            }) {
                Ok(o) => o
                    .db_parameter_groups()
                    .first()
                    .and_then(|g| g.db_parameter_group_family())
                    .map(str::to_string),
                Err(e) if e.kind == ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            }
        };
        let Some(family) = family else {
            return Ok(None);
        };
        let parameters = self
            .parameters_of(cx, op, name, cluster)?
            .unwrap_or_default()
            .iter()
            .filter(|p| p.source() == Some("user"))
            .filter_map(|p| {
                Some((
                    p.parameter_name()?.to_string(),
                    p.parameter_value()?.to_string(),
                ))
            })
            .collect();
        Ok(Some(ExistingGroup {
            family,
            cluster,
            parameters,
        }))
    }

    /// Carry out one group's share (see [`plan_parameter_groups`]): create it if missing, then
    /// set the parameters it lacks, at most 20 per call (the API's limit).
    fn apply_group(
        &self,
        cx: &Call<'_>,
        op: &str,
        family: &str,
        work: GroupWork<'_>,
        defaults: &BTreeMap<String, DefaultParam>,
    ) -> Result<(), PrimitiveError> {
        let (name, cluster) = (work.name, work.cluster);
        if work.create {
            let description = format!("godwit: {family} parameters for {name}");
            let created = if cluster {
                self.api(cx, A, op, "rds.CreateDBClusterParameterGroup", || {
                    self.aws
                        .rds
                        .create_db_cluster_parameter_group()
                        .db_cluster_parameter_group_name(name)
                        .db_parameter_group_family(family)
                        .description(&description)
                        .tags(created_tag(cx))
                        .send()
                })
                .map(|_| ())
            } else {
                self.api(cx, A, op, "rds.CreateDBParameterGroup", || {
                    self.aws
                        .rds
                        .create_db_parameter_group()
                        .db_parameter_group_name(name)
                        .db_parameter_group_family(family)
                        .description(&description)
                        .tags(created_tag(cx))
                        .send()
                })
                .map(|_| ())
            };
            match created {
                Ok(()) => {}
                // Created by a concurrent or earlier attempt whose answer was lost: setting
                // the same values again below is a no-op on AWS.
                Err(e) if e.kind == ErrorKind::Conflict => {}
                Err(e) => return Err(e),
            }
        }
        let set: Vec<(String, String)> = work.set.into_iter().collect();
        for chunk in set.chunks(20) {
            let list: Vec<t::Parameter> = chunk
                .iter()
                .map(|(k, v)| {
                    let dynamic = defaults.get(k).is_some_and(|d| d.apply_type == "dynamic");
                    t::Parameter::builder()
                        .parameter_name(k)
                        .parameter_value(v)
                        // Groups are created before the cluster, so "at the next reboot" is
                        // "at creation" for static parameters.
                        .apply_method(if dynamic {
                            t::ApplyMethod::Immediate
                        } else {
                            t::ApplyMethod::PendingReboot
                        })
                        .build()
                })
                .collect();
            if cluster {
                self.api(cx, A, op, "rds.ModifyDBClusterParameterGroup", || {
                    self.aws
                        .rds
                        .modify_db_cluster_parameter_group()
                        .db_cluster_parameter_group_name(name)
                        .set_parameters(Some(list.clone()))
                        .send()
                })?;
            } else {
                self.api(cx, A, op, "rds.ModifyDBParameterGroup", || {
                    self.aws
                        .rds
                        .modify_db_parameter_group()
                        .db_parameter_group_name(name)
                        .set_parameters(Some(list.clone()))
                        .send()
                })?;
            }
        }
        Ok(())
    }

    /// The value of tag `key` on resource `arn`.
    fn tag(
        &self,
        cx: &Call<'_>,
        op: &str,
        arn: &str,
        key: &str,
    ) -> Result<Option<String>, PrimitiveError> {
        let out = self.api(cx, A, op, "rds.ListTagsForResource", || {
            self.aws
                .rds
                .list_tags_for_resource()
                .resource_name(arn)
                .send()
        })?;
        Ok(out
            .tag_list()
            .iter()
            .find(|t| t.key() == Some(key))
            .and_then(|t| t.value().map(str::to_string)))
    }

    /// RDS events of an instance or cluster, oldest first: the 14 days RDS keeps
    /// (`DescribeEvents` `Duration` 20160 minutes), every page.
    pub fn rds_events(
        &self,
        cx: &Call<'_>,
        op: &str,
        id: &str,
        cluster: bool,
    ) -> Result<Vec<RdsEvent>, PrimitiveError> {
        let mut events = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let m = marker.clone();
            let out = self.api(cx, A, op, "rds.DescribeEvents", || {
                self.aws
                    .rds
                    .describe_events()
                    .source_identifier(id)
                    .source_type(if cluster {
                        t::SourceType::DbCluster
                    } else {
                        t::SourceType::DbInstance
                    })
                    .duration(14 * 24 * 60)
                    .set_marker(m.clone())
                    .send()
            })?;
            events.extend(out.events().iter().map(|e| RdsEvent {
                at: e.date().map(|d| d.secs()).unwrap_or_default(),
                source_id: e.source_identifier().unwrap_or(id).to_string(),
                source_type: if cluster { "db-cluster" } else { "db-instance" }.into(),
                message: e.message().unwrap_or_default().to_string(),
            }));
            marker = out.marker().map(str::to_string);
            if marker.is_none() {
                break;
            }
        }
        Ok(sort_events(events))
    }

    /// `Invalid` unless Aurora PostgreSQL offers `version` (`DescribeDBEngineVersions`, every
    /// page), naming the versions it offers, as the simulator does (moto accepts any version).
    fn check_aurora_version(
        &self,
        cx: &Call<'_>,
        op: &str,
        version: &str,
    ) -> Result<(), PrimitiveError> {
        let mut versions: Vec<String> = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = self.api(cx, A, op, "rds.DescribeDBEngineVersions", || {
                self.aws
                    .rds
                    .describe_db_engine_versions()
                    .engine("aurora-postgresql")
                    .set_marker(marker.clone())
                    .send()
            })?;
            versions.extend(
                out.db_engine_versions()
                    .iter()
                    .filter_map(|v| v.engine_version().map(str::to_string)),
            );
            marker = out.marker().filter(|m| !m.is_empty()).map(str::to_string);
            if marker.is_none() {
                break;
            }
        }
        if versions.iter().any(|v| v == version) {
            return Ok(());
        }
        versions.sort_by_key(|v| major_minor(v));
        versions.dedup();
        Err(PrimitiveError::invalid(
            A,
            op,
            format!("Aurora PostgreSQL has no version {version} (InvalidParameterCombination)"),
            format!(
                "pick one of {} (rds::list_engine_versions(\"aurora-postgresql\"))",
                versions.join(", ")
            ),
        ))
    }

    /// The cluster parameter group `name` exists and is of the family Aurora `version` needs
    /// (`aurora-postgresql16` for 16.x), as the simulator checks: before creating, so the error
    /// names the group and the fix in every world (moto accepts any group name).
    fn check_cluster_group_family(
        &self,
        cx: &Call<'_>,
        op: &str,
        name: &str,
        version: &str,
    ) -> Result<(), PrimitiveError> {
        let missing = || {
            PrimitiveError::new(
                A,
                op,
                ErrorKind::NotFound,
                format!(
                    "cluster parameter group {name} not found (DBClusterParameterGroupNotFound)"
                ),
                "create it first with rds::create_parameter_groups",
            )
        };
        let family = match self.api(cx, A, op, "rds.DescribeDBClusterParameterGroups", || {
            self.aws
                .rds
                .describe_db_cluster_parameter_groups()
                .db_cluster_parameter_group_name(name)
                .send()
        }) {
            Ok(o) => o
                .db_cluster_parameter_groups()
                .first()
                .and_then(|g| g.db_parameter_group_family())
                .map(str::to_string)
                .ok_or_else(missing)?,
            Err(e) if e.kind == ErrorKind::NotFound => return Err(missing()),
            Err(e) => return Err(e),
        };
        let wanted =
            parameter_group_family("aurora-postgresql", major_minor(version).map_or(0, |v| v.0));
        if family == wanted {
            return Ok(());
        }
        Err(PrimitiveError::invalid(
            A,
            op,
            format!(
                "cluster parameter group {name} is of family {family}, Aurora {version} needs {wanted}"
            ),
            format!("create the groups with family {wanted}"),
        ))
    }
}

impl Rds for AwsApi {
    fn describe_instance(&self, cx: &Call<'_>, id: &str) -> Result<DbInstance, PrimitiveError> {
        self.get_instance(cx, "describe_instance", id)
    }

    fn describe_cluster(&self, cx: &Call<'_>, id: &str) -> Result<DbCluster, PrimitiveError> {
        self.get_cluster(cx, "describe_cluster", id)
    }

    fn list_engine_versions(
        &self,
        cx: &Call<'_>,
        engine: &str,
    ) -> Result<Vec<EngineVersion>, PrimitiveError> {
        const OP: &str = "list_engine_versions";
        check_engine(OP, engine)?;
        let mut raw = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = self.api(cx, A, OP, "rds.DescribeDBEngineVersions", || {
                self.aws
                    .rds
                    .describe_db_engine_versions()
                    .engine(engine)
                    .set_marker(marker.clone())
                    .send()
            })?;
            raw.extend(out.db_engine_versions().iter().cloned());
            marker = out.marker().filter(|m| !m.is_empty()).map(str::to_string);
            if marker.is_none() {
                break;
            }
        }
        let mut extensions: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut out = Vec::new();
        for v in raw {
            let (Some(version), Some(family)) = (v.engine_version(), v.db_parameter_group_family())
            else {
                continue;
            };
            let Some((major, minor)) = major_minor(version) else {
                continue;
            };
            if !extensions.contains_key(family) {
                let exts = self.supported_extensions(cx, OP, family)?;
                extensions.insert(family.to_string(), exts);
            }
            out.push(EngineVersion {
                engine: engine.into(),
                version: version.into(),
                major,
                minor,
                parameter_group_family: family.into(),
                supported_extensions: extensions[family].clone(),
            });
        }
        Ok(sort_versions(out))
    }

    fn describe_parameters(
        &self,
        cx: &Call<'_>,
        group: &str,
    ) -> Result<Vec<Parameter>, PrimitiveError> {
        const OP: &str = "describe_parameters";
        let params = self
            .group_parameters(cx, OP, group)?
            .ok_or_else(|| parameter_group_not_found(OP, group))?;
        let mut out: Vec<Parameter> = params
            .iter()
            .filter_map(|p| {
                Some(Parameter {
                    name: p.parameter_name()?.to_string(),
                    value: p.parameter_value()?.to_string(),
                    source: match p.source() {
                        Some("user") => "user".into(),
                        _ => "engine-default".into(),
                    },
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn create_parameter_groups(
        &self,
        cx: &Call<'_>,
        req: &CreateParameterGroups,
    ) -> Result<ParameterGroupsCreated, PrimitiveError> {
        const OP: &str = "create_parameter_groups";
        check_aurora_family(OP, &req.family)?;
        // Where a parameter may be set is decided by the family's engine defaults: cluster
        // parameters in the cluster group, instance parameters in the instance group; one
        // neither lists (or lists as not modifiable) is not carried over, and is reported.
        let cluster_rules = self.describe_parameter_rules(cx, &req.family, true)?;
        let instance_rules = self.describe_parameter_rules(cx, &req.family, false)?;
        check_parameter_values(OP, req, |k| {
            cluster_rules
                .iter()
                .chain(instance_rules.iter())
                .find(|r| r.name == k)
                .cloned()
        })?;
        let cluster_defaults = self.defaults_map(cx, OP, &req.family, true)?;
        let instance_defaults = self.defaults_map(cx, OP, &req.family, false)?;
        let placed = place_parameters(req, |k| {
            match (cluster_defaults.get(k), instance_defaults.get(k)) {
                (Some(d), _) if d.modifiable => Accepts::Cluster,
                (_, Some(d)) if d.modifiable => Accepts::Instance,
                _ => Accepts::Neither,
            }
        });
        let work = plan_parameter_groups(OP, req, &placed, |name, cluster| {
            self.existing_group(cx, OP, name, cluster)
        })?;
        for w in work {
            let defaults = if w.cluster {
                &cluster_defaults
            } else {
                &instance_defaults
            };
            self.apply_group(cx, OP, &req.family, w, defaults)?;
        }
        Ok(placed.created(req))
    }

    fn create_replica_cluster(
        &self,
        cx: &Call<'_>,
        req: &CreateReplicaCluster,
    ) -> Result<DbCluster, PrimitiveError> {
        const OP: &str = "create_replica_cluster";
        let src = self.get_instance(cx, OP, &req.source_id)?;
        let existing = self.find_cluster(cx, OP, &req.cluster_id)?;
        if let Some(c) = existing_replica(OP, &src, existing)? {
            return Ok(c); // a re-run of the same step
        }
        check_replica_source(OP, req, &src)?;
        let subnet_group = self
            .api(cx, A, OP, "rds.DescribeDBInstances", || {
                self.aws
                    .rds
                    .describe_db_instances()
                    .db_instance_identifier(&src.id)
                    .send()
            })?
            .db_instances()
            .first()
            .and_then(|i| i.db_subnet_group())
            .and_then(|g| g.db_subnet_group_name())
            .map(str::to_string);
        let groups = req
            .security_groups
            .clone()
            .unwrap_or_else(|| src.security_groups.clone());
        let kms = if src.storage_encrypted {
            req.kms_key_id.clone().or(src.kms_key_id.clone())
        } else {
            None
        };
        let created = self.api(cx, A, OP, "rds.CreateDBCluster", || {
            self.aws
                .rds
                .create_db_cluster()
                .db_cluster_identifier(&req.cluster_id)
                .engine("aurora-postgresql")
                .engine_version(&req.engine_version)
                .replication_source_identifier(&src.arn)
                .set_db_cluster_parameter_group_name(req.parameter_group.clone())
                .set_vpc_security_group_ids(Some(groups.clone()))
                // The replica lives in the source's VPC and subnets.
                .set_db_subnet_group_name(subnet_group.clone())
                .storage_encrypted(src.storage_encrypted)
                .set_kms_key_id(kms.clone())
                // Off by default on CreateDBCluster: without it godwit cannot log in.
                .enable_iam_database_authentication(req.iam_auth)
                // The source's port (CreateDBCluster would default to 5432), as the simulator
                // and the lab create it.
                .port(i32::from(src.port))
                .send()
        });
        match created {
            Ok(_) => {}
            Err(e) if e.kind == ErrorKind::Conflict && !e.retryable => {
                // Created by an earlier attempt whose answer was lost: the same cluster is fine.
                let existing = self.find_cluster(cx, OP, &req.cluster_id)?;
                return existing_replica(OP, &src, existing)?.ok_or(e);
            }
            Err(e) => return Err(e),
        }
        self.get_cluster(cx, OP, &req.cluster_id)
    }

    fn create_cluster_instance(
        &self,
        cx: &Call<'_>,
        req: &CreateClusterInstance,
    ) -> Result<DbInstance, PrimitiveError> {
        const OP: &str = "create_cluster_instance";
        self.get_cluster(cx, OP, &req.cluster_id)?;
        let existing = self.find_instance(cx, OP, &req.instance_id)?;
        if let Some(i) = existing_member(OP, req, existing)? {
            return Ok(i);
        }
        let created = self.api(cx, A, OP, "rds.CreateDBInstance", || {
            self.aws
                .rds
                .create_db_instance()
                .db_instance_identifier(&req.instance_id)
                .db_cluster_identifier(&req.cluster_id)
                .engine("aurora-postgresql")
                .db_instance_class(&req.instance_class)
                .set_db_parameter_group_name(req.parameter_group.clone())
                .send()
        });
        match created {
            Ok(o) => {
                if let Some(i) = o.db_instance() {
                    return Ok(instance_of(i));
                }
            }
            Err(e) if e.kind == ErrorKind::Conflict && !e.retryable => {}
            Err(e) => return Err(e),
        }
        // Created by an earlier attempt whose answer was lost, or by someone else.
        let existing = self.find_instance(cx, OP, &req.instance_id)?;
        existing_member(OP, req, existing)?.ok_or_else(|| instance_not_found(OP, &req.instance_id))
    }

    fn set_security_groups(
        &self,
        cx: &Call<'_>,
        id: &str,
        groups: &[String],
    ) -> Result<DbInstance, PrimitiveError> {
        const OP: &str = "set_security_groups";
        let inst = self.get_instance(cx, OP, id)?;
        if !security_groups_change(OP, &inst, groups)? {
            return Ok(inst);
        }
        // No ApplyImmediately: a security-group change is applied asynchronously as soon as
        // possible whatever the flag says, and `ApplyImmediately=true` would also apply every
        // pending modification now (API_ModifyDBInstance; aws-semantics row 6). The change is
        // in force once the group's membership reads `active` (`security_groups_pending`).
        let out = self.api(cx, A, OP, "rds.ModifyDBInstance", || {
            self.aws
                .rds
                .modify_db_instance()
                .db_instance_identifier(id)
                .set_vpc_security_group_ids(Some(groups.to_vec()))
                .send()
        })?;
        match out.db_instance() {
            Some(i) => Ok(instance_of(i)),
            None => self.get_instance(cx, OP, id),
        }
    }

    fn reboot_instance(
        &self,
        cx: &Call<'_>,
        id: &str,
        token: &str,
    ) -> Result<DbInstance, PrimitiveError> {
        const OP: &str = "reboot_instance";
        let inst = self.get_instance(cx, OP, id)?;
        // RebootDBInstance has no client token. The step's token is tagged on the instance
        // *after* the reboot was accepted: a re-run that finds it does not reboot again. A crash
        // between the reboot and the tag reboots twice on re-run — chosen over the other order,
        // which could skip the reboot the fence depends on.
        let seen = self.tag(cx, OP, &inst.arn, REBOOT_TAG)?.as_deref() == Some(token);
        match reboot(OP, &inst, seen)? {
            Reboot::Done => return Ok(inst),
            Reboot::Record => {}
            Reboot::Reboot => {
                self.api(cx, A, OP, "rds.RebootDBInstance", || {
                    self.aws
                        .rds
                        .reboot_db_instance()
                        .db_instance_identifier(id)
                        .send()
                })?;
            }
        }
        self.api(cx, A, OP, "rds.AddTagsToResource", || {
            self.aws
                .rds
                .add_tags_to_resource()
                .resource_name(&inst.arn)
                .tags(t::Tag::builder().key(REBOOT_TAG).value(token).build())
                .send()
        })?;
        self.get_instance(cx, OP, id)
    }

    fn promote_cluster(&self, cx: &Call<'_>, id: &str) -> Result<DbCluster, PrimitiveError> {
        const OP: &str = "promote_cluster";
        let c = self.get_cluster(cx, OP, id)?;
        if promotion(OP, &c)? == Promotion::Nothing {
            return Ok(c);
        }
        match self.api(cx, A, OP, "rds.PromoteReadReplicaDBCluster", || {
            self.aws
                .rds
                .promote_read_replica_db_cluster()
                .db_cluster_identifier(id)
                .send()
        }) {
            Ok(_) => {}
            // A promotion already under way: RDS refuses a second one, and for a while after
            // the first request the cluster still reads `available` with its source. A
            // re-run of the step lands exactly there, so the refusal is taken as "requested";
            // wait_until_cluster_promoted decides (and times out if nothing happens).
            Err(e) if e.kind == ErrorKind::Conflict && e.retryable => {
                let now = self.get_cluster(cx, OP, id)?;
                if now.replication_source_identifier.is_none()
                    || now.status == "promoting"
                    || now.status == "available"
                {
                    return Ok(now);
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        }
        self.get_cluster(cx, OP, id)
    }

    fn delete_instance(&self, cx: &Call<'_>, id: &str) -> Result<DbInstance, PrimitiveError> {
        const OP: &str = "delete_instance";
        let inst = self.get_instance(cx, OP, id)?;
        if deleting_instance(OP, &inst)? {
            return Ok(inst);
        }
        // No final snapshot here: the finalize runbook takes one explicitly before deleting a
        // source, and an Aurora member has none of its own (the cluster holds the data).
        let out = self.api(cx, A, OP, "rds.DeleteDBInstance", || {
            let mut r = self.aws.rds.delete_db_instance().db_instance_identifier(id);
            if inst.cluster_id.is_none() {
                r = r.skip_final_snapshot(true);
            }
            r.send()
        })?;
        match out.db_instance() {
            Some(i) => Ok(instance_of(i)),
            None => self.get_instance(cx, OP, id),
        }
    }

    fn delete_cluster(&self, cx: &Call<'_>, id: &str) -> Result<DbCluster, PrimitiveError> {
        const OP: &str = "delete_cluster";
        let c = self.get_cluster(cx, OP, id)?;
        let mut live = Vec::new();
        for m in &c.members {
            if let Some(i) = self.find_instance(cx, OP, m)?
                && i.status != "deleting"
            {
                live.push(m.clone());
            }
        }
        if deleting_cluster(OP, &c, &live)? {
            return Ok(c);
        }
        let out = self.api(cx, A, OP, "rds.DeleteDBCluster", || {
            self.aws
                .rds
                .delete_db_cluster()
                .db_cluster_identifier(id)
                .skip_final_snapshot(true)
                .send()
        });
        match out {
            Ok(_) => {}
            Err(e) if e.kind == ErrorKind::NotFound => {
                // Deleted between the describe and the delete: report it as deleting.
                return Ok(DbCluster {
                    status: "deleting".into(),
                    ..c
                });
            }
            Err(e) => return Err(e),
        }
        match self.find_cluster(cx, OP, id)? {
            Some(now) => Ok(now),
            None => Ok(DbCluster {
                status: "deleting".into(),
                ..c
            }),
        }
    }

    fn create_snapshot(
        &self,
        cx: &Call<'_>,
        instance_id: &str,
        snapshot_id: &str,
    ) -> Result<Snapshot, PrimitiveError> {
        const OP: &str = "create_snapshot";
        let existing = self.find_snapshot(cx, OP, snapshot_id)?;
        if let Some(s) = existing_snapshot(OP, instance_id, existing)? {
            return Ok(s);
        }
        self.get_instance(cx, OP, instance_id)?;
        let out = self.api(cx, A, OP, "rds.CreateDBSnapshot", || {
            self.aws
                .rds
                .create_db_snapshot()
                .db_instance_identifier(instance_id)
                .db_snapshot_identifier(snapshot_id)
                .send()
        })?;
        match out.db_snapshot() {
            Some(s) => Ok(snapshot_of(s)),
            None => self.describe_snapshot(cx, snapshot_id),
        }
    }

    fn describe_snapshot(&self, cx: &Call<'_>, id: &str) -> Result<Snapshot, PrimitiveError> {
        self.find_snapshot(cx, "describe_snapshot", id)?
            .ok_or_else(|| snapshot_not_found("describe_snapshot", id))
    }

    fn restore_cluster_from_snapshot(
        &self,
        cx: &Call<'_>,
        req: &RestoreCluster,
    ) -> Result<DbCluster, PrimitiveError> {
        const OP: &str = "restore_cluster_from_snapshot";
        if let Some(c) = self.find_cluster(cx, OP, &req.cluster_id)? {
            return Ok(c);
        }
        let raw = self
            .api(cx, A, OP, "rds.DescribeDBSnapshots", || {
                self.aws
                    .rds
                    .describe_db_snapshots()
                    .db_snapshot_identifier(&req.snapshot_id)
                    .send()
            })?
            .db_snapshots()
            .first()
            .cloned()
            .ok_or_else(|| snapshot_not_found(OP, &req.snapshot_id))?;
        check_restorable(OP, &snapshot_of(&raw))?;
        // An Aurora cluster restores from an RDS instance snapshot by the snapshot's ARN.
        let arn = raw
            .db_snapshot_arn()
            .unwrap_or(&req.snapshot_id)
            .to_string();
        self.api(cx, A, OP, "rds.RestoreDBClusterFromSnapshot", || {
            self.aws
                .rds
                .restore_db_cluster_from_snapshot()
                .db_cluster_identifier(&req.cluster_id)
                .snapshot_identifier(&arn)
                .engine("aurora-postgresql")
                .engine_version(&req.engine_version)
                .set_db_cluster_parameter_group_name(req.parameter_group.clone())
                .enable_iam_database_authentication(req.iam_auth)
                .send()
        })?;
        self.get_cluster(cx, OP, &req.cluster_id)
    }

    fn create_cluster(
        &self,
        cx: &Call<'_>,
        req: &CreateCluster,
    ) -> Result<DbCluster, PrimitiveError> {
        const OP: &str = "create_cluster";
        // The instance the cluster replaces, described raw once: its subnet group (the VPC the
        // cluster lands in) is not part of `DbInstance`.
        let raw = self
            .api(cx, A, OP, "rds.DescribeDBInstances", || {
                self.aws
                    .rds
                    .describe_db_instances()
                    .db_instance_identifier(&req.like)
                    .send()
            })
            .map_err(|e| {
                if e.kind == ErrorKind::NotFound {
                    instance_not_found(OP, &req.like)
                } else {
                    e
                }
            })?
            .db_instances()
            .first()
            .cloned()
            .ok_or_else(|| instance_not_found(OP, &req.like))?;
        let like = instance_of(&raw);
        let existing = self.find_cluster(cx, OP, &req.cluster_id)?;
        if let Some(c) = existing_standalone(OP, req, existing)? {
            return Ok(c); // a re-run of the same step
        }
        check_logical_version(OP, req, &like)?;
        self.check_aurora_version(cx, OP, &req.engine_version)?;
        if let Some(name) = &req.parameter_group {
            self.check_cluster_group_family(cx, OP, name, &req.engine_version)?;
        }
        let subnet_group = raw
            .db_subnet_group()
            .and_then(|g| g.db_subnet_group_name())
            .map(str::to_string);
        let groups = req
            .security_groups
            .clone()
            .unwrap_or_else(|| like.security_groups.clone());
        let encrypted = req.storage_encrypted.unwrap_or(like.storage_encrypted);
        // Without a key AWS encrypts a new cluster with the account's default key
        // (API_CreateDBCluster, KmsKeyId): the instance's key keeps the data under the key its
        // owner chose.
        let kms = if encrypted {
            req.kms_key_id.clone().or(like.kms_key_id.clone())
        } else {
            None
        };
        // The database godwit opens on both sides (`db_name`): "A database named postgres is
        // always created. If this parameter is specified, an additional database with this name
        // is created" (API_CreateDBCluster, DatabaseName); the schema copy and the subscription
        // go into it.
        let database = self
            .aws
            .settings
            .db_name
            .clone()
            .filter(|d| d != "postgres");
        let created = self.api(cx, A, OP, "rds.CreateDBCluster", || {
            self.aws
                .rds
                .create_db_cluster()
                .db_cluster_identifier(&req.cluster_id)
                .engine("aurora-postgresql")
                .engine_version(&req.engine_version)
                // RDS generates the master password and keeps it in Secrets Manager: no
                // password is ever sent, stored or journaled by godwit (AWS refuses
                // MasterUserPassword together with ManageMasterUserPassword anyway).
                .master_username(&req.master_username)
                .manage_master_user_password(true)
                .set_db_cluster_parameter_group_name(req.parameter_group.clone())
                // The instance's VPC (its DB subnet group), groups and port: whoever reaches
                // the instance reaches the cluster that replaces it.
                .set_db_subnet_group_name(subnet_group.clone())
                .set_vpc_security_group_ids(Some(groups.clone()))
                .port(i32::from(like.port))
                .storage_encrypted(encrypted)
                .set_kms_key_id(kms.clone())
                .set_database_name(database.clone())
                // Off by default on CreateDBCluster: without it godwit cannot log in.
                .enable_iam_database_authentication(req.iam_auth)
                .send()
        });
        match created {
            // The answer is the cluster as created (`creating`); it is in the instance's VPC,
            // since it was created in the instance's subnet group.
            Ok(o) => match o.db_cluster() {
                Some(c) => Ok(cluster_of(c, like.vpc_id.clone())),
                None => self.get_cluster(cx, OP, &req.cluster_id),
            },
            Err(e) if e.kind == ErrorKind::Conflict && !e.retryable => {
                // DBClusterAlreadyExistsFault: created by an earlier attempt whose answer was
                // lost (the same cluster is fine), or by someone else (a Conflict).
                let existing = self.find_cluster(cx, OP, &req.cluster_id)?;
                existing_standalone(OP, req, existing)?.ok_or(e)
            }
            Err(e) => Err(e),
        }
    }

    fn clone_cluster(
        &self,
        cx: &Call<'_>,
        req: &CloneCluster,
    ) -> Result<DbCluster, PrimitiveError> {
        const OP: &str = "clone_cluster";
        if let Some(c) = self.find_cluster(cx, OP, &req.cluster_id)? {
            return Ok(c); // a re-run of the same step
        }
        let src = self.get_cluster(cx, OP, &req.source_cluster)?;
        check_clonable(OP, &src)?;
        // The clone would get the VPC's default security group and subnet group otherwise
        // ("the new DB cluster is created with the default DB security group",
        // RestoreDBClusterToPointInTime): the source cluster's, so whoever reaches it reaches
        // the clone.
        let subnet_group = self
            .api(cx, A, OP, "rds.DescribeDBClusters", || {
                self.aws
                    .rds
                    .describe_db_clusters()
                    .db_cluster_identifier(&src.id)
                    .send()
            })?
            .db_clusters()
            .first()
            .and_then(|c| c.db_subnet_group())
            .map(str::to_string);
        let created = self.api(cx, A, OP, "rds.RestoreDBClusterToPointInTime", || {
            self.aws
                .rds
                .restore_db_cluster_to_point_in_time()
                .db_cluster_identifier(&req.cluster_id)
                .source_db_cluster_identifier(&src.id)
                .restore_type("copy-on-write")
                .use_latest_restorable_time(true)
                .set_vpc_security_group_ids(Some(src.security_groups.clone()))
                .set_db_subnet_group_name(subnet_group.clone())
                .db_cluster_parameter_group_name(&src.parameter_group)
                .enable_iam_database_authentication(req.iam_auth)
                .send()
        });
        match created {
            Ok(_) => {}
            Err(e) if e.kind == ErrorKind::Conflict && !e.retryable => {
                // Created by an earlier attempt whose answer was lost.
                return self.find_cluster(cx, OP, &req.cluster_id)?.ok_or(e);
            }
            Err(e) => return Err(e),
        }
        self.get_cluster(cx, OP, &req.cluster_id)
    }

    fn describe_parameter_group(
        &self,
        cx: &Call<'_>,
        group: &str,
    ) -> Result<ParameterGroup, PrimitiveError> {
        const OP: &str = "describe_parameter_group";
        // A name is either kind: the cluster kind first, then the instance kind.
        let (family, arn, cluster) =
            match self.api(cx, A, OP, "rds.DescribeDBClusterParameterGroups", || {
                self.aws
                    .rds
                    .describe_db_cluster_parameter_groups()
                    .db_cluster_parameter_group_name(group)
                    .send()
            }) {
                Ok(o) => match o.db_cluster_parameter_groups().first() {
                    Some(g) => (
                        g.db_parameter_group_family()
                            .unwrap_or_default()
                            .to_string(),
                        g.db_cluster_parameter_group_arn()
                            .unwrap_or_default()
                            .to_string(),
                        true,
                    ),
                    None => return Err(parameter_group_not_found(OP, group)),
                },
                Err(e) if e.kind == ErrorKind::NotFound => {
                    let o = self
                        .api(cx, A, OP, "rds.DescribeDBParameterGroups", || {
                            self.aws
                                .rds
                                .describe_db_parameter_groups()
                                .db_parameter_group_name(group)
                                .send()
                        })
                        .map_err(|e| {
                            if e.kind == ErrorKind::NotFound {
                                parameter_group_not_found(OP, group)
                            } else {
                                e
                            }
                        })?;
                    match o.db_parameter_groups().first() {
                        Some(g) => (
                            g.db_parameter_group_family()
                                .unwrap_or_default()
                                .to_string(),
                            g.db_parameter_group_arn().unwrap_or_default().to_string(),
                            false,
                        ),
                        None => return Err(parameter_group_not_found(OP, group)),
                    }
                }
                Err(e) => return Err(e),
            };
        // Groups godwit did not create have no creation time: long ago, as far as settling goes.
        let created_at = if arn.is_empty() {
            0
        } else {
            self.tag(cx, OP, &arn, CREATED_TAG)?
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok(ParameterGroup {
            name: group.to_string(),
            family,
            cluster,
            created_at,
        })
    }

    fn describe_parameter_rules(
        &self,
        cx: &Call<'_>,
        family: &str,
        cluster: bool,
    ) -> Result<Vec<ParameterRule>, PrimitiveError> {
        let mut v: Vec<ParameterRule> = self
            .engine_defaults(cx, "describe_parameter_rules", family, cluster)?
            .iter()
            .filter_map(|p| {
                Some(ParameterRule {
                    name: p.parameter_name()?.to_string(),
                    default: p.parameter_value().map(str::to_string),
                    allowed_values: p.allowed_values().map(str::to_string),
                    modifiable: p.is_modifiable().unwrap_or(true),
                })
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }

    fn list_orderable_instance_classes(
        &self,
        cx: &Call<'_>,
        engine: &str,
        version: &str,
    ) -> Result<Vec<String>, PrimitiveError> {
        const OP: &str = "list_orderable_instance_classes";
        check_engine(OP, engine)?;
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let m = marker.clone();
            let page = self.api(cx, A, OP, "rds.DescribeOrderableDBInstanceOptions", || {
                self.aws
                    .rds
                    .describe_orderable_db_instance_options()
                    .engine(engine)
                    .engine_version(version)
                    .set_marker(m.clone())
                    .send()
            })?;
            out.extend(
                page.orderable_db_instance_options()
                    .iter()
                    .filter_map(|o| o.db_instance_class().map(str::to_string)),
            );
            marker = page.marker().map(str::to_string);
            if marker.is_none() {
                break;
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn describe_events(
        &self,
        cx: &Call<'_>,
        id: &str,
        cluster: bool,
    ) -> Result<Vec<RdsEvent>, PrimitiveError> {
        self.rds_events(cx, "describe_events", id, cluster)
    }

    fn list_instances(
        &self,
        cx: &Call<'_>,
        engine: &str,
        marker: Option<&str>,
        max_records: u32,
    ) -> Result<InstancePage, PrimitiveError> {
        // DescribeDBInstances filters by `db-cluster-id`, `db-instance-id`, `dbi-resource-id`,
        // `domain` and `engine` only — never by tag — and pages with Marker/MaxRecords (20..100)
        // (https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DescribeDBInstances.html):
        // the engine is filtered here, the tags by the caller from each instance's `TagList`.
        let out = self.api(cx, A, "list_instances", "rds.DescribeDBInstances", || {
            self.aws
                .rds
                .describe_db_instances()
                .filters(t::Filter::builder().name("engine").values(engine).build())
                .set_marker(marker.map(str::to_string))
                .max_records(max_records as i32)
                .send()
        })?;
        let s = |o: Option<&str>| o.unwrap_or_default().to_string();
        Ok(InstancePage {
            instances: out
                .db_instances()
                .iter()
                .map(|i| InstanceSummary {
                    id: s(i.db_instance_identifier()),
                    engine: s(i.engine()),
                    engine_version: s(i.engine_version()),
                    instance_class: s(i.db_instance_class()),
                    allocated_storage_gb: i.allocated_storage().unwrap_or(0).max(0) as u64,
                    status: s(i.db_instance_status()),
                    tags: i
                        .tag_list()
                        .iter()
                        .filter_map(|t| Some((t.key()?.to_string(), s(t.value()))))
                        .collect(),
                })
                .collect(),
            marker: out.marker().filter(|m| !m.is_empty()).map(str::to_string),
        })
    }
}
