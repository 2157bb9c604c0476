//! [`Ec2`] over `aws-sdk-ec2`: security groups of a VPC, the deny-all quarantine group, and
//! the group-to-group rules of a connection (`allow_connection`).

use aws_sdk_ec2::types as t;
use godwit_engine::{ErrorKind, PrimitiveError};

use super::*;
use crate::aws::AwsApi;

const A: &str = "ec2";

/// Tag on quarantine groups godwit created: only those may have their default egress rule
/// revoked by a re-run (a group of that name made by someone else is never changed).
pub const QUARANTINE_TAG: &str = "godwit:quarantine";

/// `tcp/5432 from 10.0.0.0/8` for every source of every permission (`word` = `from`: ingress),
/// `tcp/5432 to sg-0abc` for every destination (`word` = `to`: egress).
fn rules(perms: &[t::IpPermission], word: &str) -> Vec<String> {
    let mut out = Vec::new();
    for p in perms {
        let proto = match p.ip_protocol().unwrap_or("-1") {
            "-1" => "all".to_string(),
            other => other.to_string(),
        };
        let ports = match (p.from_port(), p.to_port()) {
            (Some(f), Some(t)) if f == t && f >= 0 => format!("/{f}"),
            (Some(f), Some(t)) if f >= 0 => format!("/{f}-{t}"),
            _ => String::new(),
        };
        let sources = p
            .ip_ranges()
            .iter()
            .filter_map(|r| r.cidr_ip().map(str::to_string))
            .chain(
                p.ipv6_ranges()
                    .iter()
                    .filter_map(|r| r.cidr_ipv6().map(str::to_string)),
            )
            .chain(
                p.user_id_group_pairs()
                    .iter()
                    .filter_map(|g| g.group_id().map(str::to_string)),
            )
            .chain(
                p.prefix_list_ids()
                    .iter()
                    .filter_map(|l| l.prefix_list_id().map(str::to_string)),
            );
        for s in sources {
            out.push(format!("{proto}{ports} {word} {s}"));
        }
    }
    out.sort();
    out
}

fn group_of(g: &t::SecurityGroup) -> SecurityGroup {
    SecurityGroup {
        id: g.group_id().unwrap_or_default().into(),
        name: g.group_name().unwrap_or_default().into(),
        vpc_id: g.vpc_id().unwrap_or_default().into(),
        ingress: rules(g.ip_permissions(), "from"),
        egress: rules(g.ip_permissions_egress(), "to"),
    }
}

/// The allow-all egress rule EC2 gives every new VPC security group.
fn is_default_egress(p: &t::IpPermission) -> bool {
    p.ip_protocol() == Some("-1")
        && p.user_id_group_pairs().is_empty()
        && p.prefix_list_ids().is_empty()
        && p.ip_ranges()
            .iter()
            .all(|r| r.cidr_ip() == Some("0.0.0.0/0"))
        && p.ipv6_ranges()
            .iter()
            .all(|r| r.cidr_ipv6() == Some("::/0"))
}

impl AwsApi {
    fn groups(
        &self,
        cx: &Call<'_>,
        op: &str,
        filters: Vec<t::Filter>,
    ) -> Result<Vec<t::SecurityGroup>, PrimitiveError> {
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = self.api(cx, A, op, "ec2.DescribeSecurityGroups", || {
                self.aws
                    .ec2
                    .describe_security_groups()
                    .set_filters(Some(filters.clone()))
                    .set_next_token(next.clone())
                    .send()
            })?;
            out.extend(page.security_groups().iter().cloned());
            next = page
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_string);
            if next.is_none() {
                return Ok(out);
            }
        }
    }

    /// Security group `id`, or `NotFound` ([`group_not_found`]). By filter, not `GroupIds`,
    /// so an unknown id is an empty answer rather than an error to decode.
    fn group_by_id(
        &self,
        cx: &Call<'_>,
        op: &str,
        id: &str,
    ) -> Result<SecurityGroup, PrimitiveError> {
        let filter = t::Filter::builder().name("group-id").values(id).build();
        self.groups(cx, op, vec![filter])?
            .first()
            .map(group_of)
            .ok_or_else(|| group_not_found(op, id))
    }

    fn quarantine_named(
        &self,
        cx: &Call<'_>,
        op: &str,
        vpc_id: &str,
        name: &str,
    ) -> Result<Option<t::SecurityGroup>, PrimitiveError> {
        let filter = |k: &str, v: &str| t::Filter::builder().name(k).values(v).build();
        Ok(self
            .groups(
                cx,
                op,
                vec![filter("vpc-id", vpc_id), filter("group-name", name)],
            )?
            .into_iter()
            .next())
    }

    /// Revoke the default allow-all egress of a group godwit created.
    fn revoke_default_egress(
        &self,
        cx: &Call<'_>,
        op: &str,
        g: &t::SecurityGroup,
    ) -> Result<(), PrimitiveError> {
        let default: Vec<t::IpPermission> = g
            .ip_permissions_egress()
            .iter()
            .filter(|p| is_default_egress(p))
            .cloned()
            .collect();
        if default.is_empty() {
            return Ok(());
        }
        let id = g.group_id().unwrap_or_default();
        match self.api(cx, A, op, "ec2.RevokeSecurityGroupEgress", || {
            self.aws
                .ec2
                .revoke_security_group_egress()
                .group_id(id)
                .set_ip_permissions(Some(default.clone()))
                .send()
        }) {
            Ok(_) => Ok(()),
            // Already revoked by an earlier attempt.
            Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Ec2 for AwsApi {
    fn describe_security_groups(
        &self,
        cx: &Call<'_>,
        vpc_id: &str,
    ) -> Result<Vec<SecurityGroup>, PrimitiveError> {
        let filter = t::Filter::builder().name("vpc-id").values(vpc_id).build();
        Ok(sort_groups(
            self.groups(cx, "describe_security_groups", vec![filter])?
                .iter()
                .map(group_of)
                .collect(),
        ))
    }

    fn ensure_quarantine_group(
        &self,
        cx: &Call<'_>,
        vpc_id: &str,
        name: &str,
        admit: &Admit,
    ) -> Result<SecurityGroup, PrimitiveError> {
        const OP: &str = "ensure_quarantine_group";
        if let Some(g) = self.quarantine_named(cx, OP, vpc_id, name)? {
            let ours = g.tags().iter().any(|t| t.key() == Some(QUARANTINE_TAG));
            // A crash between CreateSecurityGroup and the egress revoke leaves our group with
            // EC2's default egress rule: finish the job. Anything else with rules is not ours
            // to change.
            let only_default_egress = g.ip_permissions().is_empty()
                && g.ip_permissions_egress().iter().all(is_default_egress);
            if ours && only_default_egress {
                self.revoke_default_egress(cx, OP, &g)?;
            }
            let again = self.quarantine_named(cx, OP, vpc_id, name)?.unwrap_or(g);
            let missing = check_quarantine_group(OP, &group_of(&again), admit)?;
            return self.admit(cx, OP, vpc_id, name, &again, admit, &missing);
        }
        let created = self.api(cx, A, OP, "ec2.CreateSecurityGroup", || {
            self.aws
                .ec2
                .create_security_group()
                .group_name(name)
                .description("godwit quarantine: deny all (no ingress, no egress)")
                .vpc_id(vpc_id)
                .tag_specifications(
                    t::TagSpecification::builder()
                        .resource_type(t::ResourceType::SecurityGroup)
                        .tags(t::Tag::builder().key(QUARANTINE_TAG).value("true").build())
                        .build(),
                )
                .send()
        });
        match created {
            Ok(_) => {}
            // InvalidGroup.Duplicate: made by a concurrent attempt; finish it below.
            Err(e) if e.kind == ErrorKind::Conflict => {}
            Err(e) => return Err(e),
        }
        let g = self
            .quarantine_named(cx, OP, vpc_id, name)?
            .ok_or_else(|| {
                PrimitiveError::new(
                    A,
                    OP,
                    ErrorKind::Internal,
                    format!("group {name} was created in {vpc_id} but is not listed"),
                    "EC2 is eventually consistent: the step is retried",
                )
                .with_retryable(true)
            })?;
        self.revoke_default_egress(cx, OP, &g)?;
        let g = self.quarantine_named(cx, OP, vpc_id, name)?.unwrap_or(g);
        let missing = check_quarantine_group(OP, &group_of(&g), admit)?;
        self.admit(cx, OP, vpc_id, name, &g, admit, &missing)
    }

    fn allow_connection(
        &self,
        cx: &Call<'_>,
        from_group: &str,
        to_group: &str,
        port: u16,
    ) -> Result<Connection, PrimitiveError> {
        const OP: &str = "allow_connection";
        let from = self.group_by_id(cx, OP, from_group)?;
        let to = self.group_by_id(cx, OP, to_group)?;
        // One port, one group: exactly what the connection needs (VPC user guide, "Security
        // group rules": a rule may name a security group as its source or destination).
        let perm = |group: &str| {
            t::IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(i32::from(port))
                .to_port(i32::from(port))
                .user_id_group_pairs(t::UserIdGroupPair::builder().group_id(group).build())
                .build()
        };
        if !from.egress.contains(&egress_rule(port, to_group)) {
            let p = perm(to_group);
            let done = self.api(cx, A, OP, "ec2.AuthorizeSecurityGroupEgress", || {
                self.aws
                    .ec2
                    .authorize_security_group_egress()
                    .group_id(from_group)
                    .ip_permissions(p.clone())
                    .send()
            });
            already_there(done)?;
        }
        if !to.ingress.contains(&ingress_rule(port, from_group)) {
            let p = perm(from_group);
            let done = self.api(cx, A, OP, "ec2.AuthorizeSecurityGroupIngress", || {
                self.aws
                    .ec2
                    .authorize_security_group_ingress()
                    .group_id(to_group)
                    .ip_permissions(p.clone())
                    .send()
            });
            already_there(done)?;
        }
        Ok(Connection {
            from: self.group_by_id(cx, OP, from_group)?,
            to: self.group_by_id(cx, OP, to_group)?,
        })
    }
}

/// An authorize call's outcome: `InvalidPermission.Duplicate` (a `Conflict` that is not
/// retryable, unlike a wrong state: `aws::classify`) is a rule an earlier attempt, or someone
/// else, already added.
fn already_there<T>(r: Result<T, PrimitiveError>) -> Result<(), PrimitiveError> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.kind == ErrorKind::Conflict && !e.retryable => Ok(()),
        Err(e) => Err(e),
    }
}

impl AwsApi {
    /// Authorize the ingress rules `missing` (from `admit`'s groups) on quarantine group `g`;
    /// the group as EC2 lists it afterwards.
    #[allow(clippy::too_many_arguments)] // each is one fact of the call
    fn admit(
        &self,
        cx: &Call<'_>,
        op: &str,
        vpc_id: &str,
        name: &str,
        g: &t::SecurityGroup,
        admit: &Admit,
        missing: &[String],
    ) -> Result<SecurityGroup, PrimitiveError> {
        if missing.is_empty() {
            return Ok(group_of(g));
        }
        let group_id = g.group_id().unwrap_or_default().to_string();
        let pairs: Vec<t::UserIdGroupPair> = admit
            .groups
            .iter()
            .filter(|sg| missing.iter().any(|r| r.ends_with(&format!(" from {sg}"))))
            .map(|sg| t::UserIdGroupPair::builder().group_id(sg).build())
            .collect();
        let perm = t::IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(i32::from(admit.port))
            .to_port(i32::from(admit.port))
            .set_user_id_group_pairs(Some(pairs))
            .build();
        match self.api(cx, A, op, "ec2.AuthorizeSecurityGroupIngress", || {
            self.aws
                .ec2
                .authorize_security_group_ingress()
                .group_id(&group_id)
                .ip_permissions(perm.clone())
                .send()
        }) {
            Ok(_) => {}
            // InvalidPermission.Duplicate: an earlier attempt added it.
            Err(e) if e.kind == ErrorKind::Conflict => {}
            Err(e) => return Err(e),
        }
        let again = self.quarantine_named(cx, op, vpc_id, name)?;
        Ok(group_of(again.as_ref().unwrap_or(g)))
    }
}
