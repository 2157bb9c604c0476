//! Area `ec2`: VPC security groups, for the quarantine that fences the source.
//!
//! | file      | what                                     |
//! |-----------|------------------------------------------|
//! | `mod.rs`  | the [`Ec2`] trait and [`SecurityGroup`]  |
//! | `rhai.rs` | the Rhai module `ec2`                    |
//! | `sim.rs`  | [`Ec2`] over the simulator               |
//! | `aws.rs`  | [`Ec2`] over `aws-sdk-ec2` (feature `aws`) |
//!
//! The rules every world applies are the pure functions below the trait: what makes an existing
//! group a usable quarantine ([`check_quarantine_group`]), what an unknown VPC is
//! ([`vpc_not_found`]).

#[cfg(feature = "aws")]
pub mod aws;
pub mod rhai;
pub mod sim;

use godwit_engine::Call;
use godwit_engine::{ErrorKind, PrimitiveError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    pub vpc_id: String,
    /// Ingress rules as `proto/port from source`, e.g. `tcp/5432 from 10.0.0.0/8`.
    pub ingress: Vec<String>,
    pub egress: Vec<String>,
}

/// Whom a quarantine group admits: nobody (a deny-all group), or the groups listed on one
/// port — godwit's own security group on the database port, so godwit can still reach a fenced
/// source (a group with no inbound rule admits no new connection, godwit's included: VPC user
/// guide, "Security group rules").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Admit {
    pub groups: Vec<String>,
    pub port: u16,
}

impl Admit {
    /// The ingress rules this admits, as [`SecurityGroup::ingress`] words them, sorted.
    pub fn rules(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .groups
            .iter()
            .map(|g| format!("tcp/{} from {g}", self.port))
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

pub trait Ec2: Send + Sync {
    /// Security groups of a VPC, sorted by id.
    fn describe_security_groups(
        &self,
        cx: &Call<'_>,
        vpc_id: &str,
    ) -> Result<Vec<SecurityGroup>, PrimitiveError>;
    /// The quarantine group named `name` in `vpc_id`, created if missing: no egress, and no
    /// ingress but the rules of `admit` (none: deny-all). The same group (same id) on every
    /// call; a rule of `admit` it lacks is added (a crash between creating it and adding the
    /// rule converges). A group of that name with any other rule is not a quarantine
    /// (`Conflict`, see [`check_quarantine_group`]); an unknown VPC is `NotFound`.
    fn ensure_quarantine_group(
        &self,
        cx: &Call<'_>,
        vpc_id: &str,
        name: &str,
        admit: &Admit,
    ) -> Result<SecurityGroup, PrimitiveError>;
}

/// An existing group named like the quarantine is usable only when it sends nothing and admits
/// nothing beyond `admit`: a group of that name with other rules is someone else's
/// (`Conflict`), never changed. Returns the rules of `admit` it still lacks.
pub fn check_quarantine_group(
    op: &str,
    g: &SecurityGroup,
    admit: &Admit,
) -> Result<Vec<String>, PrimitiveError> {
    let wanted = admit.rules();
    let foreign: Vec<&String> = g.ingress.iter().filter(|r| !wanted.contains(r)).collect();
    if foreign.is_empty() && g.egress.is_empty() {
        return Ok(wanted
            .into_iter()
            .filter(|r| !g.ingress.contains(r))
            .collect());
    }
    Err(PrimitiveError::new(
        "ec2",
        op,
        ErrorKind::Conflict,
        format!(
            "group {} ({}) in {} has rules a quarantine must not have: {}",
            g.name,
            g.id,
            g.vpc_id,
            foreign
                .iter()
                .map(|r| r.as_str())
                .chain(g.egress.iter().map(|r| r.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        "use another name (quarantine_group), or remove its rules",
    ))
}

/// Does an ingress rule (`tcp/5432 from sg-0abc`, `tcp/5432 from 10.0.0.0/8`) let a client in
/// on `port`, given the client's security groups and whether it is inside the VPC's address
/// range? A CIDR rule admits every client in the VPC; a group rule only members of that group.
pub fn rule_admits(rule: &str, port: u16, client_groups: &[String], in_vpc: bool) -> bool {
    let Some((proto_port, from)) = rule.split_once(" from ") else {
        return false;
    };
    let port_ok = match proto_port.split_once('/') {
        Some(("tcp", p)) => p == port.to_string() || p == "all",
        Some(("all", _)) => true,
        _ => proto_port == "all",
    };
    let from = from.trim();
    port_ok
        && if from.starts_with("sg-") {
            client_groups.iter().any(|g| g == from)
        } else {
            in_vpc
        }
}

/// A VPC id the world has no VPC for (`InvalidVpcID.NotFound`).
pub fn vpc_not_found(op: &str, vpc_id: &str) -> PrimitiveError {
    PrimitiveError::new(
        "ec2",
        op,
        ErrorKind::NotFound,
        format!("VPC {vpc_id} not found (InvalidVpcID.NotFound)"),
        "pass the source's VPC (rds::describe_instance(id).vpc_id)",
    )
}

/// Security groups as the trait returns them: sorted by id.
pub fn sort_groups(mut groups: Vec<SecurityGroup>) -> Vec<SecurityGroup> {
    groups.sort_by(|a, b| a.id.cmp(&b.id));
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(ingress: &[&str], egress: &[&str]) -> SecurityGroup {
        SecurityGroup {
            id: "sg-1".into(),
            name: "godwit-quarantine".into(),
            vpc_id: "vpc-1".into(),
            ingress: ingress.iter().map(|s| s.to_string()).collect(),
            egress: egress.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_quarantine_admits_nothing_but_what_it_is_asked_to() {
        let none = Admit::default();
        assert!(
            check_quarantine_group("op", &g(&[], &[]), &none)
                .unwrap()
                .is_empty()
        );
        let godwit = Admit {
            groups: vec!["sg-godwit".into()],
            port: 5432,
        };
        assert_eq!(
            check_quarantine_group("op", &g(&[], &[]), &godwit).unwrap(),
            ["tcp/5432 from sg-godwit"],
            "a rule it lacks is added (a crash between create and authorize converges)"
        );
        assert!(
            check_quarantine_group("op", &g(&["tcp/5432 from sg-godwit"], &[]), &godwit)
                .unwrap()
                .is_empty()
        );
        for bad in [
            g(&["tcp/5432 from 10.0.0.0/8"], &[]),
            g(&[], &["all from 0.0.0.0/0"]),
            g(&["tcp/5432 from sg-godwit"], &[]),
        ] {
            let e = check_quarantine_group("op", &bad, &none).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Conflict);
            assert!(e.message.contains("must not have"), "{e:?}");
        }
        assert_eq!(vpc_not_found("op", "vpc-x").kind, ErrorKind::NotFound);
    }

    #[test]
    fn a_group_rule_admits_its_members_a_cidr_rule_the_vpc() {
        let godwit = ["sg-godwit".to_string()];
        assert!(rule_admits("tcp/5432 from sg-godwit", 5432, &godwit, true));
        assert!(!rule_admits("tcp/5432 from sg-godwit", 5432, &[], true));
        assert!(!rule_admits("tcp/5433 from sg-godwit", 5432, &godwit, true));
        assert!(rule_admits("tcp/5432 from 10.0.0.0/8", 5432, &[], true));
        assert!(!rule_admits(
            "tcp/5432 from 10.0.0.0/8",
            5432,
            &godwit,
            false
        ));
    }
}
