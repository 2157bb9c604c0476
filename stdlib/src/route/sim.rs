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

    /// Envoy's counters as the model has them: the route's `connections_per_second` (scenario)
    /// over each version's time, each a failed connect while its target refuses
    /// (`endpoint-refuses`) or is held, else an established one; `cx_active` is the
    /// application's sessions on the route's target for the application route.
    fn route_stats(&self, cx: &Call<'_>, name: &str) -> Result<RouteStats, PrimitiveError> {
        const OP: &str = "route_stats";
        let st = self.api(cx, A, OP)?;
        let r = view(&st, OP, name)?;
        let rate = st
            .sc
            .envoy
            .routes
            .iter()
            .find(|c| c.name == name)
            .map_or(0.0, |c| c.connections_per_second);
        let versions = &st.routes[name].versions;
        let (mut ok_ms, mut failed_ms) = (0i64, 0i64);
        for (i, v) in versions.iter().enumerate() {
            let from = v.published_at;
            let to = versions.get(i + 1).map_or(st.now, |n| n.published_at);
            if to <= from {
                continue;
            }
            if v.hold {
                failed_ms += to - from;
                continue;
            }
            // Time within [from, to) while a refusal of this version's target is active.
            let refused: i64 = st
                .faults
                .iter()
                .filter(|f| {
                    f.kind == crate::sim::scenario::FaultKind::EndpointRefuses
                        && f.target.as_deref() == Some(v.target.as_str())
                })
                .filter_map(|f| {
                    let start = f.fired_at?;
                    let end = f.lasts.map_or(st.now, |l| start + l).min(st.now);
                    Some((end.min(to) - start.max(from)).max(0))
                })
                .sum();
            failed_ms += refused;
            ok_ms += to - from - refused;
        }
        let count = |ms: i64| (rate * ms as f64 / 1000.0).floor() as i64;
        let active = if st.app_route().as_deref() == Some(name) {
            st.sessions
                .iter()
                .filter(|s| s.application && s.db == r.target)
                .count() as i64
        } else {
            0
        };
        Ok(RouteStats {
            route: name.into(),
            target: r.target.clone(),
            nodes: st.nodes.iter().filter(|n| n.connected).count() as i64,
            cx_total: count(ok_ms),
            cx_active: active,
            connect_fail: count(failed_ms),
            at_ms: st.now,
            ..RouteStats::default()
        })
    }
}
