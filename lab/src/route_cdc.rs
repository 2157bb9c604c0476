//! The `route` and `cdc` areas over a lab: a real Envoy driven through the supervisor's
//! control plane (its management API), and CDC consumers that are real `pg_recvlogical`
//! processes on real logical slots.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use godwit_engine::{ErrorKind, PrimitiveError};
use godwit_stdlib::cdc::{Cdc, ConsumerInfo, CreatedSlot, SlotPosition};
use godwit_stdlib::pg::live::block_on;
use godwit_stdlib::route::{EndpointConnections, NodeAck, Route, Router};
use godwit_xds::model::{Addr, Health, Role};
use godwit_xds::remote::RemotePlane;

use crate::LabError;
use crate::areas::{LabCtx, lab_error};
use crate::pgproc;
use crate::state::{Consumer, LabState};

const A: &str = "route";

pub struct LabRouter {
    pub ctx: Arc<LabCtx>,
}

impl LabRouter {
    fn plane(&self, st: &LabState) -> RemotePlane {
        RemotePlane::new(SocketAddr::from(([127, 0, 0, 1], st.route.api_port)))
            .with_timeout(Duration::from_secs(60))
    }

    /// The db (instance or cluster id) listening on `addr`: a cluster's writer counts as its
    /// cluster.
    fn db_of(st: &LabState, addr: &Addr) -> String {
        for i in st.instances.values() {
            if addr.port == i.port {
                return i.cluster.clone().unwrap_or_else(|| i.id.clone());
            }
        }
        addr.to_string()
    }

    fn addr_of(st: &LabState, op: &str, db: &str) -> Result<Addr, PrimitiveError> {
        let inst = st.serving(db).ok_or_else(|| {
            PrimitiveError::new(
                A,
                op,
                ErrorKind::NotFound,
                format!("target {db} is neither an instance nor a cluster of the lab"),
                "route to the source instance id or the Aurora cluster id",
            )
        })?;
        Ok(Addr::new("127.0.0.1", inst.port))
    }

    fn view(&self, name: &str, op: &str) -> Result<Route, PrimitiveError> {
        let st = self.ctx.state(A, op)?;
        let plane = self.plane(&st);
        let (view, nodes, held) = block_on(self.ctx.pool.handle(), async {
            let view = plane.describe(name).await?;
            let nodes = plane.nodes().await?;
            let status = plane.status().await.unwrap_or_default();
            Ok::<_, godwit_xds::error::XdsError>((view, nodes, status))
        })
        .map_err(|e| e.into_primitive(op))?;
        let eps = &view.spec.endpoints;
        let hold = eps
            .iter()
            .any(|e| e.role == Role::Parking && e.health == Health::Healthy);
        let target_ep = eps
            .iter()
            .find(|e| e.role != Role::Parking && e.health == Health::Healthy)
            .or_else(|| eps.iter().find(|e| e.role != Role::Parking));
        let target = target_ep
            .map(|e| Self::db_of(&st, &e.addr))
            .unwrap_or_default();
        let draining = eps
            .iter()
            .filter(|e| e.role != Role::Parking && e.health == Health::Draining)
            .map(|e| Self::db_of(&st, &e.addr))
            .filter(|d| *d != target)
            .collect();
        let nodes: Vec<NodeAck> = nodes
            .iter()
            .map(|n| NodeAck {
                node: n.node.clone(),
                status: if !n.connected {
                    "disconnected"
                } else if !n.nacks.is_empty() && !n.current {
                    "nack"
                } else if n.current {
                    "ack"
                } else {
                    "pending"
                }
                .into(),
            })
            .collect();
        let all_acked = nodes
            .iter()
            .all(|n| n.status == "ack" || n.status == "disconnected")
            && nodes.iter().any(|n| n.status == "ack");
        // Parked connections: Envoy's refused upstream attempts while a hold is on are the
        // only trace a waiting client leaves; report clients Envoy holds without an upstream.
        let held_connections = if hold {
            held.iter()
                .flat_map(|n| n.routes.iter())
                .filter(|r| r.route == name)
                .map(|r| {
                    r.endpoints
                        .iter()
                        .filter(|e| e.address.ends_with(":1"))
                        .map(|e| e.cx_active as i64)
                        .sum::<i64>()
                })
                .sum()
        } else {
            0
        };
        Ok(Route {
            name: name.to_string(),
            version: view.version as i64,
            endpoint: target_ep.map(|e| e.addr.to_string()).unwrap_or_default(),
            target,
            hold,
            draining,
            nodes,
            all_acked,
            held_connections,
        })
    }
}

impl Router for LabRouter {
    fn describe_route(&self, name: &str) -> Result<Route, PrimitiveError> {
        self.view(name, "describe_route")
    }

    fn switch_route(
        &self,
        name: &str,
        target: &str,
        hold: bool,
        drain: bool,
    ) -> Result<Route, PrimitiveError> {
        const OP: &str = "switch_route";
        let cur = self.view(name, OP)?;
        let want_draining = if drain {
            let mut d = cur.draining.clone();
            if cur.target != target {
                d.push(cur.target.clone());
            }
            d.retain(|x| x != target);
            d
        } else {
            Vec::new()
        };
        if cur.target == target && cur.hold == hold && cur.draining == want_draining {
            return Ok(cur);
        }
        let st = self.ctx.state(A, OP)?;
        let addr = Self::addr_of(&st, OP, target)?;
        let plane = self.plane(&st);
        block_on(self.ctx.pool.handle(), async {
            if cur.target != target || (!hold && cur.hold) {
                plane.switch(name, addr).await?;
            }
            if hold {
                plane.hold(name).await?;
            } else if !drain {
                plane.cleanup(name).await?;
            }
            Ok::<_, godwit_xds::error::XdsError>(())
        })
        .map_err(|e| e.into_primitive(OP))?;
        self.view(name, OP)
    }

    fn active_connections(&self, name: &str) -> Result<Vec<EndpointConnections>, PrimitiveError> {
        const OP: &str = "active_connections";
        let st = self.ctx.state(A, OP)?;
        let plane = self.plane(&st);
        let status =
            block_on(self.ctx.pool.handle(), plane.status()).map_err(|e| e.into_primitive(OP))?;
        let mut by_addr: BTreeMap<String, i64> = BTreeMap::new();
        for node in &status {
            for r in node.routes.iter().filter(|r| r.route == name) {
                for e in &r.endpoints {
                    *by_addr.entry(e.address.clone()).or_default() += e.cx_active as i64;
                }
            }
        }
        let mut out = Vec::new();
        for (address, connections) in by_addr {
            let Some((host, port)) = address.rsplit_once(':') else {
                continue;
            };
            let Ok(port) = port.parse::<u16>() else {
                continue;
            };
            if port == 1 {
                continue; // the parking address
            }
            let target = Self::db_of(&st, &Addr::new(host, port));
            out.push(EndpointConnections {
                target,
                endpoint: address,
                connections,
            });
        }
        Ok(out)
    }
}

const C: &str = "cdc";

pub struct LabCdc {
    pub ctx: Arc<LabCtx>,
}

impl LabCdc {
    fn consumer(&self, op: &str, name: &str) -> Result<(LabState, Consumer), PrimitiveError> {
        let st = self.ctx.state(C, op)?;
        let c = st.cdc.get(name).cloned().ok_or_else(|| {
            PrimitiveError::new(
                C,
                op,
                ErrorKind::NotFound,
                format!("the lab has no CDC consumer {name:?}"),
                "cdc::list_consumers() names them",
            )
        })?;
        Ok((st, c))
    }

    /// `(confirmed_flush_lsn, bytes, restart_lsn)` of `slot` on `db`.
    fn slot_position(
        &self,
        op: &str,
        db: &str,
        slot: &str,
    ) -> Result<(String, i64, String), PrimitiveError> {
        let rows = self.ctx.sql(
            db,
            op,
            &format!(
                "SELECT coalesce(confirmed_flush_lsn::text, '0/0') || ' ' || \
                 coalesce(pg_wal_lsn_diff(confirmed_flush_lsn, '0/0')::bigint, 0) || ' ' || \
                 coalesce(restart_lsn::text, '0/0') FROM pg_replication_slots WHERE slot_name = '{}'",
                slot.replace('\'', "''")
            ),
        )?;
        let row = rows.first().ok_or_else(|| {
            PrimitiveError::new(
                C,
                op,
                ErrorKind::NotFound,
                format!("{db} has no replication slot {slot:?}"),
                "cdc::create_equivalent_slots creates it on a new database",
            )
        })?;
        let mut p = row.split(' ');
        let lsn = p.next().unwrap_or("0/0").to_string();
        let bytes = p.next().and_then(|b| b.parse().ok()).unwrap_or(0);
        let restart = p.next().unwrap_or("0/0").to_string();
        Ok((lsn, bytes, restart))
    }

    fn info(&self, op: &str, c: &Consumer) -> Result<ConsumerInfo, PrimitiveError> {
        let (position, position_bytes, _) = self.slot_position(op, &c.db, &c.slot)?;
        Ok(ConsumerInfo {
            name: c.name.clone(),
            slot: c.slot.clone(),
            db: c.db.clone(),
            state: c.state.clone(),
            position,
            position_bytes,
        })
    }
}

/// Start `pg_recvlogical` for consumer `c` on `db`'s server; returns its pid.
pub fn start_consumer(st: &LabState, c: &Consumer, db: &str) -> Result<u32, LabError> {
    let inst = st
        .serving(db)
        .ok_or_else(|| LabError::State(format!("the lab has no instance or cluster {db:?}")))?;
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(st.dir.join(format!("{}.cdc.log", c.name)))
        .map_err(|e| LabError::Io(e.to_string()))?;
    let mut cmd = pgproc::pg_command(&st.bin.tool("pg_recvlogical"), st.user.as_ref(), &st.dir);
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &inst.port.to_string(),
        "-U",
        "postgres",
    ])
    .args(["-d", &st.app_db, "-S", &c.slot, "--start", "--no-loop"])
    .arg("-f")
    .arg(&c.output)
    // Report the position every second and fsync the output as often: the slot's
    // confirmed_flush_lsn is the consumer's position.
    .args(["-F", "1", "-s", "1"])
    .stdout(out.try_clone().map_err(|e| LabError::Io(e.to_string()))?)
    .stderr(out);
    let child = cmd
        .spawn()
        .map_err(|e| LabError::Io(format!("start pg_recvlogical: {e}")))?;
    Ok(child.id())
}

impl Cdc for LabCdc {
    fn list_consumers(&self) -> Result<Vec<ConsumerInfo>, PrimitiveError> {
        let st = self.ctx.state(C, "list_consumers")?;
        st.cdc
            .values()
            .map(|c| self.info("list_consumers", c))
            .collect()
    }

    fn pause_consumer(&self, name: &str) -> Result<ConsumerInfo, PrimitiveError> {
        const OP: &str = "pause_consumer";
        let (_, c) = self.consumer(OP, name)?;
        if let Some(pid) = c.pid {
            // SIGINT: pg_recvlogical sends its final position and exits.
            pgproc::stop_pid(
                pid,
                nix::sys::signal::Signal::SIGINT,
                Duration::from_secs(10),
            );
        }
        let c = self.ctx.update(C, OP, |st| {
            let c = st
                .cdc
                .get_mut(name)
                .ok_or_else(|| LabError::State(format!("consumer {name} vanished")))?;
            c.pid = None;
            c.state = "paused".into();
            Ok(c.clone())
        })?;
        self.info(OP, &c)
    }

    fn resume_consumer(
        &self,
        name: &str,
        db: &str,
        slot: &str,
        position: Option<u64>,
    ) -> Result<ConsumerInfo, PrimitiveError> {
        const OP: &str = "resume_consumer";
        let (st, mut c) = self.consumer(OP, name)?;
        if c.state == "running" && c.db == db && c.pid.is_some_and(pgproc::alive) {
            return self.info(OP, &c);
        }
        if let Some(p) = position {
            let lsn = format!("{:X}/{:X}", p >> 32, p & 0xFFFF_FFFF);
            self.ctx.sql(
                db,
                OP,
                &format!(
                    "SELECT pg_replication_slot_advance('{}', '{lsn}') FROM pg_replication_slots \
                     WHERE slot_name = '{}' AND coalesce(confirmed_flush_lsn, '0/0') < '{lsn}'",
                    slot.replace('\'', "''"),
                    slot.replace('\'', "''")
                ),
            )?;
        }
        c.slot = slot.to_string();
        c.db = db.to_string();
        let pid = start_consumer(&st, &c, db).map_err(|e| lab_error(C, OP, e))?;
        let c = self.ctx.update(C, OP, |st| {
            let entry = st
                .cdc
                .get_mut(name)
                .ok_or_else(|| LabError::State(format!("consumer {name} vanished")))?;
            entry.db = db.to_string();
            entry.slot = slot.to_string();
            entry.pid = Some(pid);
            entry.state = "running".into();
            Ok(entry.clone())
        })?;
        self.info(OP, &c)
    }

    fn record_positions(&self) -> Result<Vec<SlotPosition>, PrimitiveError> {
        const OP: &str = "record_positions";
        let st = self.ctx.state(C, OP)?;
        st.cdc
            .values()
            .map(|c| {
                let (lsn, bytes, restart) = self.slot_position(OP, &c.db, &c.slot)?;
                Ok(SlotPosition {
                    consumer: c.name.clone(),
                    slot: c.slot.clone(),
                    confirmed_flush_lsn: lsn,
                    confirmed_flush_bytes: bytes,
                    restart_lsn: restart,
                })
            })
            .collect()
    }

    fn create_equivalent_slots(
        &self,
        db: &str,
        slots: &[String],
    ) -> Result<Vec<CreatedSlot>, PrimitiveError> {
        const OP: &str = "create_equivalent_slots";
        let st = self.ctx.state(C, OP)?;
        let mut out = Vec::new();
        for slot in slots {
            let plugin = st
                .cdc
                .values()
                .find(|c| &c.slot == slot)
                .map(|c| c.plugin.clone())
                .unwrap_or_else(|| "pgoutput".into());
            let esc = slot.replace('\'', "''");
            let existing = self.ctx.sql(
                db,
                OP,
                &format!(
                    "SELECT coalesce(confirmed_flush_lsn::text, '') FROM pg_replication_slots WHERE slot_name = '{esc}'"
                ),
            )?;
            let point = match existing.first() {
                Some(lsn) => lsn.clone(),
                None => {
                    // Logical slots live in one database: the application's.
                    let rows = block_on(self.ctx.pool.handle(), async {
                        let c = self.ctx.pool.client(db, None, OP).await?;
                        c.query_one(
                            "SELECT lsn::text FROM pg_create_logical_replication_slot($1, $2)",
                            &[slot, &plugin],
                        )
                        .await
                        .map_err(|e| godwit_stdlib::pg::live::sql_error(OP, db, e))
                    })?;
                    rows.get(0)
                }
            };
            out.push(CreatedSlot {
                db: db.to_string(),
                slot_name: slot.clone(),
                plugin,
                consistent_point: point,
            });
        }
        Ok(out)
    }
}
