//! [`Router`] over the simulator.

use godwit_engine::PrimitiveError;

use super::*;
use crate::sim::net::Answer;
use crate::sim::{Sim, SimState};

const A: &str = "route";

fn endpoint(st: &SimState, db: &str) -> String {
    st.rds
        .instances
        .get(db)
        .map(|i| i.endpoint.clone())
        .or_else(|| st.rds.clusters.get(db).map(|c| c.endpoint.clone()))
        .unwrap_or_default()
}

fn view(st: &SimState, op: &str, name: &str) -> Result<Route, PrimitiveError> {
    let r = st
        .routes
        .get(name)
        .ok_or_else(|| route_not_found(op, name))?;
    let v = r.current();
    // The scenario's nodes are the route's expected set: a disconnected one is absent.
    let nodes: Vec<NodeAck> = st
        .nodes
        .iter()
        .map(|n| NodeAck {
            node: n.id.clone(),
            status: if !n.connected {
                "absent"
            } else {
                match st.answer(n, name, v.version) {
                    Some(Answer::Ack) => "ack",
                    Some(Answer::Nack) => "nack",
                    None => "behind",
                }
            }
            .into(),
            unexpected: false,
        })
        .collect();
    Ok(Route {
        name: name.into(),
        version: v.version as i64,
        target: v.target.clone(),
        endpoint: endpoint(st, &v.target),
        hold: v.hold,
        draining: v.draining.clone(),
        all_acked: all_acked(&nodes),
        nodes,
        held_connections: held(st, name),
    })
}

/// Clients that want a connection but are parked by their node's version.
fn held(st: &SimState, name: &str) -> i64 {
    if st.app_route().as_deref() != Some(name) {
        return 0;
    }
    st.clients_per_node()
        .into_iter()
        .filter(|(_, _, target)| target.is_none())
        .map(|(wanted, open, _)| i64::from(wanted.saturating_sub(open)))
        .sum()
}

impl Router for Sim {
    fn describe_route(&self, cx: &Call<'_>, name: &str) -> Result<Route, PrimitiveError> {
        let st = self.api(cx, A, "describe_route")?;
        view(&st, "describe_route", name)
    }

    fn switch_route(
        &self,
        cx: &Call<'_>,
        name: &str,
        target: &str,
        hold: bool,
        drain: bool,
    ) -> Result<Route, PrimitiveError> {
        const OP: &str = "switch_route";
        let mut st = self.api(cx, A, OP)?;
        let cur = view(&st, OP, name)?;
        if !st.rds.instances.contains_key(target) && !st.rds.clusters.contains_key(target) {
            return Err(target_not_found(OP, target));
        }
        let Some(draining) = plan_switch(&cur, target, hold, drain) else {
            return Ok(cur);
        };
        st.publish(name, target.into(), hold, draining);
        view(&st, OP, name)
    }

    fn active_connections(
        &self,
        cx: &Call<'_>,
        name: &str,
    ) -> Result<Vec<EndpointConnections>, PrimitiveError> {
        let st = self.api(cx, A, "active_connections")?;
        let r = view(&st, "active_connections", name)?;
        let mut dbs = vec![r.target.clone()];
        dbs.extend(r.draining.iter().cloned());
        for s in &st.sessions {
            if s.application && !dbs.contains(&s.db) {
                dbs.push(s.db.clone());
            }
        }
        Ok(sort_connections(
            dbs.into_iter()
                .map(|db| EndpointConnections {
                    endpoint: endpoint(&st, &db),
                    connections: st
                        .sessions
                        .iter()
                        .filter(|s| s.application && s.db == db)
                        .count() as i64,
                    target: db,
                })
                .collect(),
        ))
    }
}
