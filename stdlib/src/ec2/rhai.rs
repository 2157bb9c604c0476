//! Rhai module `ec2`.

use std::sync::Arc;

use ::rhai::{Dynamic, Engine, Module, NativeCallContext};
use godwit_engine::Host;
use serde_json::json;

use super::*;
use crate::prim::{RhaiResult, call, volatile_fn};

const A: &str = "ec2";

pub fn register(engine: &mut Engine, host: &Host, ec2: Arc<dyn Ec2>) {
    engine.register_static_module(A, module(host, ec2).into());
}

pub fn module(host: &Host, ec2: Arc<dyn Ec2>) -> Module {
    let mut m = Module::new();
    let (e, h) = (ec2.clone(), host.clone());
    volatile_fn!(
        &mut m,
        "describe_security_groups",
        &["vpc_id: &str", "Array"],
        r#"
The security groups of a VPC, sorted by id.

# Parameters
* `vpc_id` — the VPC (`describe_instance(id).vpc_id`).

# Returns
Array of `#{ id, name, vpc_id, ingress, egress }`; rules read `tcp/5432 from 10.0.0.0/8`.

# Errors
`Throttled` when AWS throttles.

# Example
```rhai
let src = rds::describe_instance("orders-db");
let groups = ec2::describe_security_groups(src.vpc_id);
let mine = groups.filter(|g| src.security_groups.contains(g.id));
if mine.is_empty() || mine[0].ingress.is_empty() { throw groups; }
```
"#,
        move |ctx: NativeCallContext, vpc_id: &str| -> RhaiResult<Dynamic> {
            call(
                &ctx,
                &h,
                A,
                "describe_security_groups",
                &json!({ "vpc_id": vpc_id }),
                |cx| e.describe_security_groups(cx, vpc_id),
            )
        },
    );
    let h = host.clone();
    volatile_fn!(
        &mut m,
        "ensure_quarantine_group",
        &["vpc_id: &str", "name: &str", "Map"],
        r#"
The deny-all quarantine group `name` in a VPC (no ingress, no egress), created if missing.
Putting an instance in it alone ends nothing (security groups are stateful); the reboot does.

# Parameters
* `vpc_id` — the source's VPC.
* `name` — the group name, e.g. `"godwit-quarantine"`.

# Returns
`#{ id, name, vpc_id, ingress: [], egress: [] }`.

# Errors
`Conflict` when a group of that name exists with rules.

# Example
```rhai
let q = ec2::ensure_quarantine_group("vpc-0sim", "godwit-quarantine");
let again = ec2::ensure_quarantine_group("vpc-0sim", "godwit-quarantine");
if q.id != again.id || !q.ingress.is_empty() { throw q; }
```
"#,
        move |ctx: NativeCallContext, vpc_id: &str, name: &str| -> RhaiResult<Dynamic> {
            call(
                &ctx,
                &h,
                A,
                "ensure_quarantine_group",
                &json!({ "vpc_id": vpc_id, "name": name }),
                |cx| ec2.ensure_quarantine_group(cx, vpc_id, name),
            )
        },
    );
    m
}
