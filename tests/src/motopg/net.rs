//! The "VPC" in front of the harness's databases: each database's security groups and IAM
//! setting as moto holds them, the groups' ingress rules, and which security groups a client
//! address belongs to. The front ([`super::front`]) asks it whether a new connection is
//! admitted — as a VPC security group decides, statefully: a rule change never cuts a
//! connection already established (AWS: "Security group connection tracking").

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use serde::Deserialize;

/// One ingress rule, as the launcher forwards it (moto's `SecurityGroupRule`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Rule {
    /// `tcp`, `udp`, `icmp` or `-1` (all).
    pub protocol: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// `A.B.C.D/N`.
    pub cidr: Option<String>,
    /// Another security group whose members are admitted.
    pub group: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Group {
    pub id: String,
    pub ingress: Vec<Rule>,
}

/// A database's access settings: an instance's own, a cluster's for the cluster and its
/// members (Aurora keeps security groups and IAM auth at the cluster).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Access {
    pub groups: Vec<String>,
    /// IAM database authentication enabled.
    pub iam: bool,
}

#[derive(Debug, Default)]
pub struct Net {
    /// By instance or cluster id.
    pub access: BTreeMap<String, Access>,
    pub rules: BTreeMap<String, Vec<Rule>>,
    /// Client address → the security groups its network interface is in.
    pub members: BTreeMap<IpAddr, BTreeSet<String>>,
}

fn in_cidr(ip: IpAddr, cidr: &str) -> bool {
    let IpAddr::V4(ip) = ip else { return false };
    let Some((net, bits)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(bits)) = (net.parse::<Ipv4Addr>(), bits.parse::<u32>()) else {
        return false;
    };
    if bits > 32 {
        return false;
    }
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    u32::from(ip) & mask == u32::from(net) & mask
}

impl Net {
    /// Record `groups` (with their rules) as `db`'s, and its IAM setting.
    pub fn set_access(&mut self, db: &str, groups: &[Group], iam: bool) {
        for g in groups {
            self.rules.insert(g.id.clone(), g.ingress.clone());
        }
        self.access.insert(
            db.to_string(),
            Access {
                groups: groups.iter().map(|g| g.id.clone()).collect(),
                iam,
            },
        );
    }

    /// Whether a new TCP connection from `client` to `db`'s port `port` passes one of `db`'s
    /// security groups: a rule for TCP (or all traffic) covering the port, from a CIDR holding
    /// the client's address or a group the client is a member of. None: nothing passes.
    pub fn admits(&self, db: &str, client: IpAddr, port: u16) -> Result<(), String> {
        let Some(access) = self.access.get(db) else {
            return Err(format!("{db} has no security groups"));
        };
        let member_of = self.members.get(&client);
        for g in &access.groups {
            for r in self.rules.get(g).into_iter().flatten() {
                let proto = r.protocol.as_deref().unwrap_or("-1");
                let port_ok = proto == "-1"
                    || (proto == "tcp"
                        && r.from.unwrap_or(0) <= i64::from(port)
                        && i64::from(port) <= r.to.unwrap_or(65_535));
                if !port_ok {
                    continue;
                }
                if r.cidr.as_deref().is_some_and(|c| in_cidr(client, c)) {
                    return Ok(());
                }
                if r.group
                    .as_ref()
                    .is_some_and(|sg| member_of.is_some_and(|m| m.contains(sg)))
                {
                    return Ok(());
                }
            }
        }
        Err(format!(
            "no ingress rule of {db}'s security groups {:?} admits {client} on port {port}",
            access.groups
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(cidr: Option<&str>, group: Option<&str>) -> Rule {
        Rule {
            protocol: Some("tcp".into()),
            from: Some(5432),
            to: Some(5432),
            cidr: cidr.map(Into::into),
            group: group.map(Into::into),
        }
    }

    #[test]
    fn a_group_admits_by_cidr_or_membership_on_its_port_only() {
        let mut net = Net::default();
        let app = Group {
            id: "sg-app".into(),
            ingress: vec![rule(Some("127.0.0.0/8"), None)],
        };
        let quarantine = Group {
            id: "sg-q".into(),
            ingress: vec![rule(None, Some("sg-godwit"))],
        };
        let (godwit, other) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
        net.set_access("db", std::slice::from_ref(&app), true);
        assert!(net.admits("db", other, 5432).is_ok());
        assert!(net.admits("db", other, 5433).is_err(), "another port");
        assert!(net.admits("db", "10.0.0.1".parse().unwrap(), 5432).is_err());
        net.set_access(
            "db",
            &[Group {
                id: "sg-none".into(),
                ingress: vec![],
            }],
            true,
        );
        assert!(net.admits("db", godwit, 5432).is_err(), "deny-all");
        net.set_access("db", &[quarantine], true);
        assert!(net.admits("db", godwit, 5432).is_err(), "not a member yet");
        net.members
            .entry(godwit)
            .or_default()
            .insert("sg-godwit".into());
        assert!(net.admits("db", godwit, 5432).is_ok());
        assert!(net.admits("db", other, 5432).is_err());
        assert!(net.admits("unknown", godwit, 5432).is_err());
    }
}
