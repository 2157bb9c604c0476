//! Rhai module `ec2`: thin argument conversion over the world's [`Ec2`](super::Ec2) backend, and the doc
//! comments that are the reference.

use std::sync::{Arc, LazyLock};

use ::rhai::plugin::*;
use ::rhai::{Array, Map, Module, NativeCallContext};
use serde_json::json;

use godwit_engine::PrimitiveError;

use super::Admit;
use crate::prim::{Opts, RhaiResult, call, shared};

const A: &str = "ec2";

/// Install `ec2::…` into `engine`. The module is built once per process: its functions capture
/// nothing (they find the world's backend through the engine, see [`call`]).
pub fn register(engine: &mut Engine) {
    static MODULE: LazyLock<Arc<Module>> =
        LazyLock::new(|| shared(A, exported_module!(ec2_module)));
    engine.register_static_module(A, MODULE.clone());
}

#[export_module]
mod ec2_module {
    use super::*;

    /// The security groups of a VPC, sorted by id.
    ///
    /// # Parameters
    /// * `vpc_id` — the VPC (`describe_instance(id).vpc_id`).
    ///
    /// # Returns
    /// Array of `#{ id, name, vpc_id, ingress, egress }`; rules read `tcp/5432 from 10.0.0.0/8`.
    ///
    /// # Errors
    /// `Throttled` when AWS throttles.
    ///
    /// # Example
    /// ```rhai
    /// let src = rds::describe_instance("orders-db");
    /// let groups = ec2::describe_security_groups(src.vpc_id);
    /// let mine = groups.filter(|g| src.security_groups.contains(g.id));
    /// if mine.is_empty() || mine[0].ingress.is_empty() { throw groups; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn describe_security_groups(ctx: NativeCallContext, vpc_id: &str) -> RhaiResult<Array> {
        call(
            &ctx,
            A,
            "describe_security_groups",
            &json!({ "vpc_id": vpc_id }),
            |cx, w| w.ec2.describe_security_groups(cx, vpc_id),
        )
    }

    /// The deny-all quarantine group `name` in a VPC (no ingress, no egress), created if missing.
    /// Putting an instance in it alone ends nothing (security groups are stateful); the reboot does.
    ///
    /// # Parameters
    /// * `vpc_id` — the source's VPC.
    /// * `name` — the group name, e.g. `"godwit-quarantine"`.
    ///
    /// # Returns
    /// `#{ id, name, vpc_id, ingress: [], egress: [] }`.
    ///
    /// # Errors
    /// `Conflict` when a group of that name exists with rules.
    ///
    /// # Example
    /// ```rhai
    /// let q = ec2::ensure_quarantine_group("vpc-0sim", "godwit-quarantine");
    /// let again = ec2::ensure_quarantine_group("vpc-0sim", "godwit-quarantine");
    /// if q.id != again.id || !q.ingress.is_empty() { throw q; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn ensure_quarantine_group(
        ctx: NativeCallContext,
        vpc_id: &str,
        name: &str,
    ) -> RhaiResult<Map> {
        call(
            &ctx,
            A,
            "ensure_quarantine_group",
            &json!({ "vpc_id": vpc_id, "name": name }),
            |cx, w| {
                w.ec2
                    .ensure_quarantine_group(cx, vpc_id, name, &Admit::default())
            },
        )
    }

    /// The quarantine group `name` in a VPC that admits only the listed security groups on one
    /// port — godwit's own on the database port, so godwit can still reach the fenced source
    /// (a group with no inbound rule admits no new connection, godwit's included). No egress.
    /// Created if missing; a rule it lacks is added.
    ///
    /// # Parameters
    /// * `vpc_id` — the source's VPC.
    /// * `name` — the group name, e.g. `"godwit-quarantine"`.
    /// * `options` — `#{ admit: ["sg-…"], port: 5432 }` (`port`: the instance's, never assumed).
    ///
    /// # Returns
    /// `#{ id, name, vpc_id, ingress, egress: [] }`, `ingress` like `["tcp/5432 from sg-0godwit"]`.
    ///
    /// # Errors
    /// `Conflict` when a group of that name has any other rule; `Invalid` for a bad option.
    ///
    /// # Example
    /// ```rhai
    /// let me = pg::access("orders-db");
    /// let q = ec2::ensure_quarantine_group("vpc-0sim", "godwit-quarantine",
    ///     #{ admit: [me.security_group], port: 5432 });
    /// assert_eq(q.ingress, [`tcp/5432 from ${me.security_group}`]);
    /// ```
    #[rhai_fn(volatile, return_raw, name = "ensure_quarantine_group")]
    pub fn ensure_quarantine_group_admitting(
        ctx: NativeCallContext,
        vpc_id: &str,
        name: &str,
        options: Map,
    ) -> RhaiResult<Map> {
        const OP: &str = "ensure_quarantine_group";
        let bad = |e: PrimitiveError| e.into_rhai_at(ctx.call_position());
        let o = Opts::new(A, OP, options, &["admit", "port"]).map_err(bad)?;
        let admit = Admit {
            groups: o.strings("admit").map_err(bad)?.unwrap_or_default(),
            port: o
                .int("port", 1)
                .map_err(bad)?
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or_else(crate::rds::default_port),
        };
        call(
            &ctx,
            A,
            OP,
            &json!({ "vpc_id": vpc_id, "name": name, "admit": admit.groups, "port": admit.port }),
            |cx, w| w.ec2.ensure_quarantine_group(cx, vpc_id, name, &admit),
        )
    }

    /// Let members of one security group open TCP connections to members of another on one
    /// port: an egress rule on `from_group` (`tcp/5432 to sg-…`) and an ingress rule on
    /// `to_group` (`tcp/5432 from sg-…`), each added only when missing. Security groups are
    /// stateful: the replies need no rule. The reverse path's need: the fenced source sits in
    /// the quarantine group, which has no egress, and subscribes to Aurora, whose groups must
    /// admit it (Aurora user guide, "Example: Using logical replication with Aurora PostgreSQL
    /// DB clusters").
    ///
    /// # Parameters
    /// * `from_group` — the connecting side's group, e.g. the quarantine group's id.
    /// * `to_group` — the listening side's group, e.g. `describe_cluster(id).security_groups[0]`.
    /// * `port` — the listening side's port (`describe_cluster(id).port`, never assumed).
    ///
    /// # Returns
    /// `#{ from, to }`: both groups as `describe_security_groups` shows them, `from.egress`
    /// holding `tcp/<port> to <to_group>` and `to.ingress` holding `tcp/<port> from <from_group>`.
    ///
    /// # Errors
    /// `NotFound` for an unknown group; `Invalid` for a port outside 1-65535.
    ///
    /// # Example
    /// ```rhai
    /// let src = rds::describe_instance("orders-db");
    /// let q = ec2::ensure_quarantine_group(src.vpc_id, "godwit-quarantine");
    /// let app = src.security_groups[0];
    /// let c = ec2::allow_connection(q.id, app, 5432);
    /// assert_eq(c.from.egress, [`tcp/5432 to ${app}`]);
    /// if !c.to.ingress.contains(`tcp/5432 from ${q.id}`) { throw c; }
    /// assert_eq(ec2::allow_connection(q.id, app, 5432), c);
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn allow_connection(
        ctx: NativeCallContext,
        from_group: &str,
        to_group: &str,
        port: i64,
    ) -> RhaiResult<Map> {
        const OP: &str = "allow_connection";
        let port = u16::try_from(port).ok().filter(|p| *p > 0).ok_or_else(|| {
            PrimitiveError::invalid(
                A,
                OP,
                format!("port {port} is not a TCP port"),
                "pass the listening side's port (rds::describe_cluster(id).port)",
            )
            .into_rhai_at(ctx.call_position())
        })?;
        call(
            &ctx,
            A,
            OP,
            &json!({ "from_group": from_group, "to_group": to_group, "port": port }),
            |cx, w| w.ec2.allow_connection(cx, from_group, to_group, port),
        )
    }
}
