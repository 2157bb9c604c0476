//! The `route` and `cdc` areas over a lab: a real Envoy driven through the supervisor's
//! control plane (its management API), and CDC consumers that are real `pg_recvlogical`
//! processes on real logical slots.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use godwit_engine::{Call, PrimitiveError};
use godwit_stdlib::cdc::{self, Cdc, ConsumerInfo, CreatedSlot, SlotPosition};
use godwit_stdlib::route::remote::{Endpoints, RemoteRouter};
use godwit_stdlib::route::{EndpointConnections, Route, RouteStats, Router};
use godwit_xds::model::Addr;
use godwit_xds::remote::RemotePlane;

use crate::LabError;
use crate::areas::{LabCtx, lab_error};
use crate::pgproc;
use crate::state::{Consumer, LabState};

/// Where the lab's databases listen: every server on loopback, a cluster's writer counting as
/// its cluster.
pub struct LabEndpoints {
    pub ctx: Arc<LabCtx>,
}

impl Endpoints for LabEndpoints {
    fn addr_of(&self, _cx: &Call<'_>, op: &str, db: &str) -> Result<Addr, PrimitiveError> {
        let st = self.ctx.state("route", op)?;
        let inst = st
            .serving(db)
            .ok_or_else(|| godwit_stdlib::route::target_not_found(op, db))?;
        Ok(Addr::new("127.0.0.1", inst.port))
    }

    fn db_of(&self, addr: &Addr) -> String {
        let Ok(st) = LabState::load(&self.ctx.dir) else {
            return addr.to_string();
        };
        st.instances
            .values()
            .find(|i| i.port == addr.port)
            .map(|i| i.cluster.clone().unwrap_or_else(|| i.id.clone()))
            .unwrap_or_else(|| addr.to_string())
    }
}

/// The lab's `route`: the supervisor's control plane through its management API.
pub fn router(ctx: &Arc<LabCtx>) -> Result<RemoteRouter, PrimitiveError> {
    let st = ctx.state("route", "connect")?;
    Ok(RemoteRouter {
        plane: RemotePlane::new(SocketAddr::from(([127, 0, 0, 1], st.route.api_port)))
            .with_timeout(Duration::from_secs(60)),
        endpoints: Arc::new(LabEndpoints { ctx: ctx.clone() }),
    })
}

/// The lab's `route`, resolved at each call: the control plane's address comes from
/// `lab.json`, which a world may be built before (or without).
pub struct LabRouter {
    pub ctx: Arc<LabCtx>,
}

impl Router for LabRouter {
    fn describe_route(&self, cx: &Call<'_>, name: &str) -> Result<Route, PrimitiveError> {
        router(&self.ctx)?.describe_route(cx, name)
    }

    fn switch_route(
        &self,
        cx: &Call<'_>,
        name: &str,
        target: &str,
        hold: bool,
        drain: bool,
    ) -> Result<Route, PrimitiveError> {
        router(&self.ctx)?.switch_route(cx, name, target, hold, drain)
    }

    fn active_connections(
        &self,
        cx: &Call<'_>,
        name: &str,
    ) -> Result<Vec<EndpointConnections>, PrimitiveError> {
        router(&self.ctx)?.active_connections(cx, name)
    }

    fn route_stats(&self, cx: &Call<'_>, name: &str) -> Result<RouteStats, PrimitiveError> {
        router(&self.ctx)?.route_stats(cx, name)
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
            let known: Vec<&str> = st.cdc.keys().map(String::as_str).collect();
            cdc::consumer_not_found(op, name, &known)
        })?;
        Ok((st, c))
    }

    /// `slot` on `db` as the database sees it.
    fn slot(
        &self,
        cx: &Call<'_>,
        op: &str,
        db: &str,
        slot: &str,
    ) -> Result<cdc::hooks::SlotState, PrimitiveError> {
        cdc::hooks::slot_state(cx, &self.ctx.pool, op, db, slot)
    }

    /// The consumer in the state the lab runs it in (its `pg_recvlogical` may not have
    /// reached the slot yet), at its slot's position.
    fn info(&self, cx: &Call<'_>, op: &str, c: &Consumer) -> Result<ConsumerInfo, PrimitiveError> {
        let s = self.slot(cx, op, &c.db, &c.slot)?;
        Ok(s.info(&c.name, &c.slot, &c.db, &c.state))
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
    // Over the Unix socket: a logical replication connection matches pg_hba's database
    // lines, which the security groups govern, and a CDC consumer must survive the quarantine.
    cmd.arg("-h")
        .arg(&inst.spec.socket_dir)
        .args(["-p", &inst.port.to_string(), "-U", "postgres"])
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
    fn list_consumers(&self, cx: &Call<'_>) -> Result<Vec<ConsumerInfo>, PrimitiveError> {
        let st = self.ctx.state(C, "list_consumers")?;
        let all = st
            .cdc
            .values()
            .map(|c| self.info(cx, "list_consumers", c))
            .collect::<Result<_, _>>()?;
        Ok(cdc::sort_consumers(all))
    }

    fn pause_consumer(&self, cx: &Call<'_>, name: &str) -> Result<ConsumerInfo, PrimitiveError> {
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
        pgproc::crash_point("pause_consumer:stopped");
        let c = self.ctx.update(C, OP, |st| {
            let c = st
                .cdc
                .get_mut(name)
                .ok_or_else(|| LabError::State(format!("consumer {name} vanished")))?;
            c.pid = None;
            c.state = "paused".into();
            Ok(c.clone())
        })?;
        self.info(cx, OP, &c)
    }

    fn resume_consumer(
        &self,
        cx: &Call<'_>,
        name: &str,
        db: &str,
        slot: &str,
        position: Option<u64>,
    ) -> Result<ConsumerInfo, PrimitiveError> {
        const OP: &str = "resume_consumer";
        let (st, mut c) = self.consumer(OP, name)?;
        // The slot must be there before a consumer is started on it.
        self.slot(cx, OP, db, slot)?;
        if let Some(p) = position {
            cdc::hooks::advance_slot(cx, &self.ctx.pool, OP, db, slot, p)?;
        }
        if c.state == "running" && c.db == db && c.slot == slot && c.pid.is_some_and(pgproc::alive)
        {
            return self.info(cx, OP, &c); // a re-run: it reads there already
        }
        c.slot = slot.to_string();
        c.db = db.to_string();
        // A consumer still running elsewhere, or one a killed process started and never
        // recorded (its output file names it): stopped, and its slot released, first.
        let output = c.output.to_string_lossy().into_owned();
        for p in pgproc::lab_processes(&st.dir) {
            if p.name == "pg_recvlogical" && p.cmdline.split(' ').any(|a| a == output) {
                pgproc::stop_pid(
                    p.pid,
                    nix::sys::signal::Signal::SIGINT,
                    Duration::from_secs(10),
                );
            }
        }
        for _ in 0..250 {
            if !self.slot(cx, OP, db, slot)?.active {
                break;
            }
            cx.sleep(Duration::from_millis(20))?;
        }
        let pid = start_consumer(&st, &c, db).map_err(|e| lab_error(C, OP, e))?;
        pgproc::crash_point("resume_consumer:spawned");
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
        self.info(cx, OP, &c)
    }

    fn record_positions(&self, cx: &Call<'_>) -> Result<Vec<SlotPosition>, PrimitiveError> {
        const OP: &str = "record_positions";
        let st = self.ctx.state(C, OP)?;
        // By name: lab.json keeps consumers in a sorted map.
        st.cdc
            .values()
            .map(|c| {
                Ok(self
                    .slot(cx, OP, &c.db, &c.slot)?
                    .position(&c.name, &c.slot))
            })
            .collect()
    }

    fn create_equivalent_slots(
        &self,
        cx: &Call<'_>,
        db: &str,
        slots: &[String],
    ) -> Result<Vec<CreatedSlot>, PrimitiveError> {
        let st = self.ctx.state(C, "create_equivalent_slots")?;
        let created = cdc::hooks::create_slots(cx, &self.ctx.pool, db, slots, |slot| {
            let c = st.cdc.values().find(|c| c.slot == slot)?;
            Some(c.plugin.clone())
        })?;
        // The slots exist on the target and the step has not recorded them: a resume must find
        // them there (tests/tests/lab_crash.rs).
        pgproc::crash_point("create_equivalent_slots:created");
        Ok(created)
    }
}
