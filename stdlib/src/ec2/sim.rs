//! [`Ec2`] over the simulator.

use godwit_engine::PrimitiveError;

use super::*;
use crate::sim::{Sim, fnv};

impl Ec2 for Sim {
    fn describe_security_groups(
        &self,
        cx: &Call<'_>,
        vpc_id: &str,
    ) -> Result<Vec<SecurityGroup>, PrimitiveError> {
        let st = self.api(cx, "ec2", "describe_security_groups")?;
        Ok(sort_groups(
            st.groups
                .values()
                .filter(|g| g.vpc_id == vpc_id)
                .cloned()
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
        let mut st = self.api(cx, "ec2", OP)?;
        // The model's VPCs: the source's, and any a group lives in.
        if st.sc.source.vpc_id != vpc_id && !st.groups.values().any(|g| g.vpc_id == vpc_id) {
            return Err(vpc_not_found(OP, vpc_id));
        }
        if let Some(id) = st
            .groups
            .values()
            .find(|g| g.vpc_id == vpc_id && g.name == name)
            .map(|g| g.id.clone())
        {
            let missing = check_quarantine_group(OP, &st.groups[&id], admit)?;
            let g = st.groups.get_mut(&id).expect("found above");
            g.ingress.extend(missing);
            g.ingress.sort();
            return Ok(g.clone());
        }
        // Ids derive from the name so they are stable across runs of the same scenario.
        let id = format!(
            "sg-0q{:08x}",
            fnv(&[format!("{vpc_id}/{name}").as_bytes()]) as u32
        );
        let g = SecurityGroup {
            id: id.clone(),
            name: name.into(),
            vpc_id: vpc_id.into(),
            ingress: admit.rules(),
            egress: Vec::new(),
        };
        st.groups.insert(id, g.clone());
        st.note(format!("quarantine group {} created in {vpc_id}", g.id));
        Ok(g)
    }

    fn allow_connection(
        &self,
        cx: &Call<'_>,
        from_group: &str,
        to_group: &str,
        port: u16,
    ) -> Result<Connection, PrimitiveError> {
        const OP: &str = "allow_connection";
        let mut st = self.api(cx, "ec2", OP)?;
        for g in [from_group, to_group] {
            if !st.groups.contains_key(g) {
                return Err(group_not_found(OP, g));
            }
        }
        let from = st.groups.get_mut(from_group).expect("checked above");
        let out = add_rule(&mut from.egress, egress_rule(port, to_group));
        let to = st.groups.get_mut(to_group).expect("checked above");
        let inn = add_rule(&mut to.ingress, ingress_rule(port, from_group));
        if out || inn {
            st.note(format!(
                "security groups: {from_group} may connect to {to_group} on tcp/{port}"
            ));
        }
        let made = Connection {
            from: st.groups[from_group].clone(),
            to: st.groups[to_group].clone(),
        };
        // One API call per rule added, each taking its time (the run waits for it).
        let cost = crate::sim::scenario::dur_ms(&st.sc.aws.security_group_rule)
            * (i64::from(out) + i64::from(inn));
        drop(st);
        cx.sleep(std::time::Duration::from_millis(cost.max(0) as u64))?;
        Ok(made)
    }
}
