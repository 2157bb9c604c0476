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

pub trait Ec2: Send + Sync {
    /// Security groups of a VPC, sorted by id.
    fn describe_security_groups(
        &self,
        cx: &Call<'_>,
        vpc_id: &str,
    ) -> Result<Vec<SecurityGroup>, PrimitiveError>;
    /// The deny-all group named `name` in `vpc_id` (no ingress, no egress), created if missing:
    /// the same group (same id) on every call. A group of that name with rules is not a
    /// quarantine (`Conflict`, see [`check_quarantine_group`]); an unknown VPC is `NotFound`.
    fn ensure_quarantine_group(
        &self,
        cx: &Call<'_>,
        vpc_id: &str,
        name: &str,
    ) -> Result<SecurityGroup, PrimitiveError>;
}

/// An existing group named like the quarantine is usable only when it admits nothing and sends
/// nothing: a group of that name with rules is someone else's (`Conflict`), never changed.
pub fn check_quarantine_group(op: &str, g: &SecurityGroup) -> Result<(), PrimitiveError> {
    if g.ingress.is_empty() && g.egress.is_empty() {
        return Ok(());
    }
    Err(PrimitiveError::new(
        "ec2",
        op,
        ErrorKind::Conflict,
        format!(
            "group {} ({}) in {} has rules; it is not deny-all",
            g.name, g.id, g.vpc_id
        ),
        "use another name (quarantine_group), or remove its rules",
    ))
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
    fn only_a_group_without_rules_is_a_quarantine() {
        check_quarantine_group("op", &g(&[], &[])).unwrap();
        for bad in [
            g(&["tcp/5432 from 10.0.0.0/8"], &[]),
            g(&[], &["all from 0.0.0.0/0"]),
        ] {
            let e = check_quarantine_group("op", &bad).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Conflict);
            assert!(e.message.contains("not deny-all"), "{e:?}");
        }
        assert_eq!(vpc_not_found("op", "vpc-x").kind, ErrorKind::NotFound);
    }
}
