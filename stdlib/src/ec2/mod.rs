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
//! group a usable quarantine ([`check_quarantine_group`]), whom a rule lets in or out
//! ([`rule_admits`], [`egress_admits`]), whether one database server reaches another through
//! both sides' groups ([`check_connection`]), what an unknown VPC or group is
//! ([`vpc_not_found`], [`group_not_found`]).
//!
//! Rules are strings: ingress `proto/port from source` (`tcp/5432 from 10.0.0.0/8`,
//! `tcp/5432 from sg-0abc`), egress `proto/port to destination` (`tcp/5432 to sg-0abc`,
//! `all to 0.0.0.0/0`).

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
    /// Egress rules as `proto/port to destination`, e.g. `tcp/5432 to sg-0abc`,
    /// `all to 0.0.0.0/0` (EC2's default for a new group).
    pub egress: Vec<String>,
}

/// Both groups after [`Ec2::allow_connection`]: `from` with its egress rule, `to` with its
/// ingress rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    pub from: SecurityGroup,
    pub to: SecurityGroup,
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
    /// Let members of `from_group` open TCP connections to members of `to_group` on `port`:
    /// an egress rule on `from_group` ([`egress_rule`]) and an ingress rule on `to_group`
    /// ([`ingress_rule`]), each added only when missing (a duplicate is already done). Security
    /// groups are stateful, so the replies need no rule. Returns both groups; an unknown group
    /// is `NotFound` ([`group_not_found`]). The reverse path's need: a fenced source (the
    /// quarantine group, no egress) subscribing to Aurora.
    fn allow_connection(
        &self,
        cx: &Call<'_>,
        from_group: &str,
        to_group: &str,
        port: u16,
    ) -> Result<Connection, PrimitiveError>;
}

/// The egress rule [`Ec2::allow_connection`] adds to `from_group`: `tcp/5432 to sg-…`.
pub fn egress_rule(port: u16, to_group: &str) -> String {
    format!("tcp/{port} to {to_group}")
}

/// The ingress rule [`Ec2::allow_connection`] adds to `to_group`: `tcp/5432 from sg-…`.
pub fn ingress_rule(port: u16, from_group: &str) -> String {
    format!("tcp/{port} from {from_group}")
}

/// `tcp/N to sg-…`: an egress rule of the kind [`Ec2::allow_connection`] adds (one port, one
/// group) — the only egress a quarantine may carry, godwit's own reverse path to Aurora.
fn is_group_egress(rule: &str) -> bool {
    rule.split_once(" to ").is_some_and(|(proto_port, to)| {
        to.starts_with("sg-")
            && proto_port
                .strip_prefix("tcp/")
                .is_some_and(|p| p.parse::<u16>().is_ok())
    })
}

/// An existing group named like the quarantine is usable only when it admits nothing beyond
/// `admit` and sends nothing but to security groups on one TCP port each (`tcp/5432 to sg-…`,
/// what [`Ec2::allow_connection`] adds for the reverse path to Aurora, so a resumed or later
/// run re-ensures the same group): a group of that name with other rules is someone else's
/// (`Conflict`), never changed. Returns the rules of `admit` it still lacks.
pub fn check_quarantine_group(
    op: &str,
    g: &SecurityGroup,
    admit: &Admit,
) -> Result<Vec<String>, PrimitiveError> {
    let wanted = admit.rules();
    let foreign: Vec<&String> = g
        .ingress
        .iter()
        .filter(|r| !wanted.contains(r))
        .chain(g.egress.iter().filter(|r| !is_group_egress(r)))
        .collect();
    if foreign.is_empty() {
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

/// Does an egress rule (`tcp/5432 to sg-0abc`, `all to 0.0.0.0/0`) let a connection out to
/// `port` of a server with `dest_groups`? A group rule reaches members of that group; a CIDR
/// rule `0.0.0.0/0` everyone, another CIDR the servers of the VPC when `dest_in_vpc`.
pub fn egress_admits(rule: &str, port: u16, dest_groups: &[String], dest_in_vpc: bool) -> bool {
    let Some((proto_port, to)) = rule.split_once(" to ") else {
        return false;
    };
    let port_ok = match proto_port.split_once('/') {
        Some(("tcp", p)) => p == port.to_string() || p == "all",
        Some(("all", _)) => true,
        _ => proto_port == "all",
    };
    let to = to.trim();
    port_ok
        && if to.starts_with("sg-") {
            dest_groups.iter().any(|g| g == to)
        } else {
            to == "0.0.0.0/0" || to == "::/0" || dest_in_vpc
        }
}

/// One side of a connection between database servers: the server's id and the security groups
/// in force on it (as the world has them; an id it has no group for is left out).
#[derive(Debug, Clone, Copy)]
pub struct Side<'a> {
    pub db: &'a str,
    pub groups: &'a [SecurityGroup],
}

/// Does `from` (a subscriber) reach `to` (a publisher) on `port`? Security groups filter both
/// ways: some group of `from` must let the connection out (an egress rule to one of `to`'s
/// groups on `port`, or to an address range), and some group of `to` must let it in (an
/// ingress rule from one of `from`'s groups, or from the VPC's range) — VPC user guide,
/// "Security group rules"; for logical replication, "allow inbound access by adding the
/// security group associated with the subscriber's VPC to the publisher's security group"
/// (Aurora user guide, "Example: Using logical replication with Aurora PostgreSQL DB
/// clusters"). Otherwise the packets are dropped and the connection times out: `Timeout`,
/// naming both sides' groups and the fix ([`Ec2::allow_connection`]); not retryable (waiting
/// opens nothing).
pub fn check_connection(
    area: &str,
    op: &str,
    from: Side<'_>,
    to: Side<'_>,
    port: u16,
) -> Result<(), PrimitiveError> {
    let ids = |s: Side<'_>| s.groups.iter().map(|g| g.id.clone()).collect::<Vec<_>>();
    let (from_ids, to_ids) = (ids(from), ids(to));
    let same_vpc = from
        .groups
        .iter()
        .any(|f| to.groups.iter().any(|t| t.vpc_id == f.vpc_id));
    let out = from
        .groups
        .iter()
        .flat_map(|g| &g.egress)
        .any(|r| egress_admits(r, port, &to_ids, same_vpc));
    let inn = to
        .groups
        .iter()
        .flat_map(|g| &g.ingress)
        .any(|r| rule_admits(r, port, &from_ids, same_vpc));
    if out && inn {
        return Ok(());
    }
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    let mut why = Vec::new();
    if !out {
        why.push(format!(
            "no egress rule of {}'s groups ({}) lets tcp/{port} out to {}'s groups ({})",
            from.db,
            list(&from_ids),
            to.db,
            list(&to_ids)
        ));
    }
    if !inn {
        why.push(format!(
            "no ingress rule of {}'s groups ({}) admits {}'s groups ({}) on tcp/{port}",
            to.db,
            list(&to_ids),
            from.db,
            list(&from_ids)
        ));
    }
    let pair = |v: &[String]| v.first().cloned().unwrap_or_else(|| "sg-…".into());
    Err(PrimitiveError::new(
        area,
        op,
        ErrorKind::Timeout,
        format!(
            "{} cannot reach {} on port {port}: {}; on AWS the packets are dropped and the \
             connection times out",
            from.db,
            to.db,
            why.join("; ")
        ),
        format!(
            "open the path: ec2::allow_connection(\"{}\", \"{}\", {port})",
            pair(&from_ids),
            pair(&to_ids)
        ),
    )
    .with_retryable(false))
}

/// A security group id the world has none of (`InvalidGroup.NotFound`).
pub fn group_not_found(op: &str, group_id: &str) -> PrimitiveError {
    PrimitiveError::new(
        "ec2",
        op,
        ErrorKind::NotFound,
        format!("security group {group_id} not found (InvalidGroup.NotFound)"),
        "pass a group id (sg-…) from ec2::describe_security_groups or rds::describe_*",
    )
}

/// Add `rule` to `rules` unless there (sorted, once): what a world's
/// [`Ec2::allow_connection`] does to each side.
pub fn add_rule(rules: &mut Vec<String>, rule: String) -> bool {
    if rules.contains(&rule) {
        return false;
    }
    rules.push(rule);
    rules.sort();
    true
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
            g(&[], &["all to 0.0.0.0/0"]),
            g(&[], &["tcp/5432 to 10.0.0.0/8"]),
            g(&[], &["all to sg-aurora"]),
            g(&[], &["tcp/5432-5433 to sg-aurora"]),
            g(&["tcp/5432 from sg-godwit"], &[]),
        ] {
            let e = check_quarantine_group("op", &bad, &none).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Conflict);
            assert!(e.message.contains("must not have"), "{e:?}");
        }
        assert_eq!(vpc_not_found("op", "vpc-x").kind, ErrorKind::NotFound);
    }

    #[test]
    fn a_quarantine_may_carry_the_reverse_paths_egress_to_a_group() {
        let godwit = Admit {
            groups: vec!["sg-godwit".into()],
            port: 5432,
        };
        let reverse = [egress_rule(5432, "sg-aurora")];
        assert_eq!(reverse, ["tcp/5432 to sg-aurora"]);
        let q = g(&["tcp/5432 from sg-godwit"], &["tcp/5432 to sg-aurora"]);
        assert!(
            check_quarantine_group("op", &q, &godwit)
                .unwrap()
                .is_empty(),
            "a resumed run re-ensures the quarantine its reverse path opened"
        );
        assert_eq!(
            check_quarantine_group("op", &g(&[], &["tcp/5432 to sg-aurora"]), &godwit).unwrap(),
            ["tcp/5432 from sg-godwit"]
        );
        let e = check_quarantine_group("op", &q, &Admit::default()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Conflict);
        assert!(
            e.message.contains("tcp/5432 from sg-godwit") && !e.message.contains("to sg-aurora"),
            "only the foreign rules are named: {e:?}"
        );
    }

    #[test]
    fn an_egress_rule_lets_out_to_its_group_or_range() {
        let aurora = ["sg-aurora".to_string()];
        assert!(egress_admits("tcp/5432 to sg-aurora", 5432, &aurora, true));
        assert!(!egress_admits("tcp/5432 to sg-aurora", 5433, &aurora, true));
        assert!(!egress_admits("tcp/5432 to sg-other", 5432, &aurora, true));
        assert!(egress_admits("all to 0.0.0.0/0", 5432, &[], false));
        assert!(egress_admits("tcp/5432 to 10.0.0.0/8", 5432, &[], true));
        assert!(!egress_admits("tcp/5432 to 10.0.0.0/8", 5432, &[], false));
        assert!(
            !egress_admits("tcp/5432 from sg-aurora", 5432, &aurora, true),
            "an ingress rule lets nothing out"
        );
    }

    fn group(id: &str, ingress: &[&str], egress: &[&str]) -> SecurityGroup {
        SecurityGroup {
            id: id.into(),
            name: id.into(),
            vpc_id: "vpc-1".into(),
            ingress: ingress.iter().map(|s| s.to_string()).collect(),
            egress: egress.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_connection_needs_egress_out_and_ingress_in() {
        let side = |db, groups| Side { db, groups };
        let aurora = [group("sg-aurora", &["tcp/5432 from 10.0.0.0/8"], &[])];
        let app = [group(
            "sg-app",
            &["tcp/5432 from 10.0.0.0/8"],
            &["all to 0.0.0.0/0"],
        )];
        check_connection(
            "pg",
            "subscribe",
            side("orders-db", &app),
            side("orders-aurora", &aurora),
            5432,
        )
        .expect("the application's group sends anywhere; Aurora admits the VPC");

        let q = [group("sg-q", &["tcp/5432 from sg-godwit"], &[])];
        let e = check_connection(
            "pg",
            "subscribe",
            side("orders-db", &q),
            side("orders-aurora", &aurora),
            5432,
        )
        .unwrap_err();
        assert_eq!((e.kind, e.retryable), (ErrorKind::Timeout, false));
        assert!(
            e.message
                .contains("no egress rule of orders-db's groups (sg-q)")
                && e.message.contains("orders-aurora's groups (sg-aurora)")
                && !e.message.contains("no ingress"),
            "{e:?}"
        );
        assert_eq!(
            e.hint,
            r#"open the path: ec2::allow_connection("sg-q", "sg-aurora", 5432)"#
        );

        // What ec2::allow_connection adds on each side.
        let mut q_open = q[0].clone();
        add_rule(&mut q_open.egress, egress_rule(5432, "sg-aurora"));
        let closed = [group("sg-aurora", &[], &[])];
        let e = check_connection(
            "pg",
            "subscribe",
            side("orders-db", std::slice::from_ref(&q_open)),
            side("orders-aurora", &closed),
            5432,
        )
        .unwrap_err();
        assert!(
            e.message
                .contains("no ingress rule of orders-aurora's groups (sg-aurora) admits")
                && !e.message.contains("no egress"),
            "{e:?}"
        );
        let mut open = closed[0].clone();
        assert!(add_rule(&mut open.ingress, ingress_rule(5432, "sg-q")));
        assert!(!add_rule(&mut open.ingress, ingress_rule(5432, "sg-q")));
        check_connection(
            "pg",
            "subscribe",
            side("orders-db", std::slice::from_ref(&q_open)),
            side("orders-aurora", std::slice::from_ref(&open)),
            5432,
        )
        .expect("both rules: the path is open");
        assert!(
            check_connection(
                "pg",
                "subscribe",
                side("orders-db", std::slice::from_ref(&q_open)),
                side("orders-aurora", std::slice::from_ref(&open)),
                5433,
            )
            .is_err(),
            "on its port only"
        );
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
