//! The simulated world: AWS + PostgreSQL + Envoy as one deterministic model.
//!
//! | file             | what                                                                |
//! |------------------|---------------------------------------------------------------------|
//! | `mod.rs`         | [`Sim`] (the shared handle), [`SimState`], the stepping loop, WAL    |
//! | `access.rs`      | sessions, security groups, blocked roles: who connects and writes;  |
//! |                  | the summary of sessions each step reads (`SessionSummary`)          |
//! | `transitions.rs` | scheduled AWS changes (create, promote, reboot, delete) and streams |
//! | `net.rs`         | Envoy routes and nodes (ACK/NACK), CDC consumers                    |
//! | `faults.rs`      | faults: firing at a time or a step, and their effects               |
//! | `observe.rs`     | CloudWatch sampling, storage, invariants                            |
//! | `metrics.rs`     | CloudWatch storage: per-minute aggregates, statistics, delay, gaps  |
//! | `scenario.rs`    | scenario TOML: types, strict parsing, validation, built-ins         |
//! | `fleet.rs`       | a generated fleet: many clusters, one scenario each, seeded spread   |
//! | `logical.rs`     | publications, pgoutput slots, subscriptions (the reverse stream of a |
//! |                  | rollback) and their apply worker; table definitions; sequences      |
//! | `inbound.rs`     | the logical path: clusters created empty, their subscription to the  |
//! |                  | source (initial copy per table, then the stream), the takeover      |
//! | `rng.rs`         | the seeded PRNG                                                     |
//!
//! The behaviour is described for operators in `docs/sim.md`.
//!
//! Time only moves when the run's [`VirtualClock`] advances (a `sleep`, a gate's poll
//! interval, a `wait_until_*`): [`Sim::attach`] installs an `on_advance` hook that steps the
//! model to the new time. Stepping is by events — WAL segment switch, heartbeat, replica status
//! report, CloudWatch minute, scheduled AWS transitions, faults — on a 10 s grid, with
//! continuous processes (workload WAL, replica replay) integrated exactly within grid cells,
//! never by real time. Discrete work happens only at grid points and events, so how time was
//! chunked does not matter. Same scenario + same seed + same calls at the same times ⇒ the
//! same world, bit for bit.
//!
//! What happens in one step `now → to` (see [`SimState::advance_to`]):
//! 1. the workload writes `rate(now) · dt` bytes on every writable database with application
//!    sessions (WAL on the source); the Aurora replica replays at most `replay_rate · dt`;
//! 2. events due at `to` fire in a fixed order: scheduled AWS transitions, faults, heartbeat,
//!    forced segment switch, replica status report (slots advance), CloudWatch minute close;
//! 3. at grid points and events only: sessions connect according to security groups, blocked
//!    roles, reboots and routes; metric values are sampled into the current minute; storage
//!    and invariants are checked.

pub(crate) mod access;
mod faults;
pub mod fleet;
pub mod inbound;
pub mod logical;
pub mod metrics;
pub mod net;
mod observe;
pub mod replay;
pub mod rng;
pub mod scenario;
mod transitions;
pub mod world;

pub use access::Session;
pub use faults::FaultState;
pub use observe::Violation;
pub use transitions::{Change, ParamGroup, RdsModel};

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use godwit_engine::clock::Millis;
use godwit_engine::{Call, PrimitiveError, VirtualClock};
use serde::{Deserialize, Serialize};

use crate::ec2::SecurityGroup;
use crate::rds::DbInstance;
use metrics::Metrics;
use rng::Rng;
use scenario::{FaultKind, Scenario, SlotType, dur_ms};

/// The model's grid: rates are constant within a cell, and discrete work (sampling,
/// connecting sessions) happens only at cell boundaries and events.
const GRID_MS: Millis = 10_000;

fn cell_start(t: Millis) -> Millis {
    t.div_euclid(GRID_MS) * GRID_MS
}

/// A handle on one simulated world, shared by every area's sim implementation and the clock.
#[derive(Clone)]
pub struct Sim {
    inner: Arc<Mutex<SimState>>,
    persist: Arc<Persist>,
}

/// Where a persistent world writes its snapshot, and the last write error.
#[derive(Default)]
struct Persist {
    path: Option<PathBuf>,
    error: Mutex<Option<String>>,
}

/// The state as one API call holds it. A call that changed the world (took it mutably, or
/// fired a fault) writes the snapshot of a persistent world when it ends, so a resumed run
/// in another process finds what this one did (at-least-once, like the steps themselves).
pub struct Api<'a> {
    guard: MutexGuard<'a, SimState>,
    persist: &'a Persist,
    dirty: bool,
}

impl std::ops::Deref for Api<'_> {
    type Target = SimState;
    fn deref(&self) -> &SimState {
        &self.guard
    }
}

impl std::ops::DerefMut for Api<'_> {
    fn deref_mut(&mut self) -> &mut SimState {
        self.dirty = true;
        &mut self.guard
    }
}

impl Drop for Api<'_> {
    fn drop(&mut self) {
        if self.dirty
            && let Some(path) = &self.persist.path
            && let Err(e) = write_snapshot(path, &self.guard)
        {
            *self.persist.error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
        }
    }
}

/// The file recording how far simulated time got (`sim.json` → `sim.now`).
fn clock_file(path: &Path) -> PathBuf {
    path.with_extension("now")
}

fn write_snapshot(path: &Path, st: &SimState) -> Result<(), String> {
    let json = serde_json::to_vec(st).map_err(|e| e.to_string())?;
    // Write-then-rename: a crash mid-write leaves the previous snapshot intact.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, json)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            format!(
                "cannot write the simulated world to {}: {e}",
                path.display()
            )
        })
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim").finish_non_exhaustive()
    }
}

impl Sim {
    pub fn new(scenario: Scenario) -> Sim {
        Sim {
            inner: Arc::new(Mutex::new(SimState::new(scenario))),
            persist: Arc::default(),
        }
    }

    /// A world kept in `path`: restored from it when it exists (it must be of the same
    /// scenario and seed), else started fresh; every call that changes the world rewrites it.
    /// This is what lets another process resume a simulated run.
    pub fn persistent(scenario: Scenario, path: &Path) -> Result<Sim, String> {
        let state = if path.exists() {
            let bytes = std::fs::read(path)
                .map_err(|e| format!("cannot read the simulated world {}: {e}", path.display()))?;
            let st: SimState = serde_json::from_slice(&bytes)
                .map_err(|e| format!("the simulated world {} is damaged: {e}", path.display()))?;
            if st.sc.name != scenario.name || st.sc.seed != scenario.seed {
                return Err(format!(
                    "{} holds scenario {} (seed {}), not {} (seed {}); resume with the world \
                     the run started in",
                    path.display(),
                    st.sc.name,
                    st.sc.seed,
                    scenario.name,
                    scenario.seed
                ));
            }
            let mut st = st;
            let reached = std::fs::read_to_string(clock_file(path))
                .ok()
                .and_then(|t| t.trim().parse::<Millis>().ok());
            if let Some(t) = reached.filter(|t| *t > st.now) {
                st.advance_to(t);
            }
            st
        } else {
            let st = SimState::new(scenario);
            write_snapshot(path, &st)?;
            st
        };
        Ok(Sim {
            inner: Arc::new(Mutex::new(state)),
            persist: Arc::new(Persist {
                path: Some(path.to_path_buf()),
                error: Mutex::new(None),
            }),
        })
    }

    /// The state, as an API call `area::op` sees it: faults bound to the current step fire
    /// first, and an active AWS throttling fault refuses AWS calls.
    pub fn api(&self, cx: &Call<'_>, area: &str, op: &str) -> Result<Api<'_>, PrimitiveError> {
        let step = cx.unit();
        let mut st = Api {
            guard: self.lock(),
            persist: &self.persist,
            dirty: false,
        };
        if let Some(e) = self
            .persist
            .error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Err(PrimitiveError::new(
                area,
                op,
                godwit_engine::ErrorKind::Internal,
                e,
                "free disk space or fix permissions, then resume the run",
            ));
        }
        let fired = st.faults.iter().filter(|f| f.fired_at.is_some()).count();
        st.guard.fire_time_faults();
        if let Some(step) = step {
            st.guard.enter_step(&step);
        }
        st.dirty = st.faults.iter().filter(|f| f.fired_at.is_some()).count() != fired;
        // A broken invariant fails the run at its next world call, with the report.
        if let Some(v) = st.violations.first() {
            return Err(PrimitiveError::new(
                area,
                op,
                godwit_engine::ErrorKind::Internal,
                format!(
                    "simulation invariant `{}` violated at {}: {}",
                    v.invariant,
                    godwit_engine::clock::format_timestamp(v.at),
                    v.detail
                ),
                "the runbook let the world reach an unsafe state; fix the runbook (fence before \
                 promoting, promote before routing) — the run cannot continue",
            )
            .with_retryable(false));
        }
        if matches!(area, "rds" | "ec2" | "cw") && st.fault(FaultKind::AwsThrottling).is_some() {
            return Err(PrimitiveError::new(
                area,
                op,
                godwit_engine::ErrorKind::Throttled,
                format!("{area}::{op}: Rate exceeded (ThrottlingException)"),
                "AWS is throttling this account; retry with backoff (steps retry Throttled \
                 errors when given retry options)",
            ));
        }
        Ok(st)
    }

    /// Step the model whenever `clock` advances. The hook only locks the state: primitives
    /// never hold the lock while sleeping, so this cannot deadlock.
    pub fn attach(&self, clock: &VirtualClock) {
        let inner = self.inner.clone();
        let persist = self.persist.clone();
        clock.on_advance(move |_from, to| {
            inner
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .advance_to(to);
            // Time passing is part of what a run did (a wait completed): a persistent world
            // records how far it got, cheaply, and replays the model up to it on restore.
            if let Some(path) = &persist.path
                && let Err(e) = std::fs::write(clock_file(path), to.to_string())
            {
                *persist.error.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!(
                    "cannot record the simulated time next to {}: {e}",
                    path.display()
                ));
            }
        });
    }

    pub fn lock(&self) -> MutexGuard<'_, SimState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Scenario durations in milliseconds, parsed once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Timings {
    pub archive_timeout: Millis,
    pub heartbeat: Millis,
    pub status: Millis,
    pub create_replica_base: Millis,
    pub create_replica_per_100gb: Millis,
    pub create_instance: Millis,
    pub promote: Millis,
    pub promote_status_lag: Millis,
    pub reboot: Millis,
    pub modify: Millis,
    pub delete: Millis,
    pub snapshot_per_100gb: Millis,
    pub restore_per_100gb: Millis,
    pub cw_delay: Millis,
}

impl Timings {
    fn new(sc: &Scenario) -> Self {
        Timings {
            archive_timeout: dur_ms(&sc.wal.archive_timeout),
            heartbeat: dur_ms(&sc.wal.heartbeat_interval),
            status: dur_ms(&sc.replica.status_interval),
            create_replica_base: dur_ms(&sc.aws.create_replica_base),
            create_replica_per_100gb: dur_ms(&sc.aws.create_replica_per_100gb),
            create_instance: dur_ms(&sc.aws.create_instance),
            promote: dur_ms(&sc.aws.promote),
            promote_status_lag: dur_ms(&sc.aws.promote_status_lag),
            reboot: dur_ms(&sc.aws.reboot),
            modify: dur_ms(&sc.aws.modify),
            delete: dur_ms(&sc.aws.delete),
            snapshot_per_100gb: dur_ms(&sc.aws.snapshot_per_100gb),
            restore_per_100gb: dur_ms(&sc.aws.restore_per_100gb),
            cw_delay: dur_ms(&sc.cloudwatch.delay),
        }
    }
}

/// A replication slot on the source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slot {
    pub name: String,
    pub slot_type: SlotType,
    pub plugin: String,
    pub database: String,
    /// A consumer is connected and reporting.
    pub active: bool,
    pub restart_lsn: u64,
    pub confirmed_flush_lsn: u64,
    pub inactive_since: Option<Millis>,
    /// What the consumer has received (reported at the next status interval).
    received: u64,
    /// The Aurora replica cluster this physical slot feeds, if any.
    pub replica_cluster: Option<String>,
}

impl Slot {
    /// Bytes of WAL this slot holds back: logical from `confirmed_flush_lsn`, physical from
    /// `restart_lsn`.
    pub fn lag_bytes(&self, current: u64) -> u64 {
        let pos = match self.slot_type {
            SlotType::Logical => self.confirmed_flush_lsn,
            SlotType::Physical => self.restart_lsn,
        };
        current.saturating_sub(pos)
    }
}

/// The Aurora replica's replication stream from the source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stream {
    pub cluster_id: String,
    pub replayed: u64,
    /// Streaming (cluster available with an available instance), not just created.
    pub flowing: bool,
}

/// The whole simulated world (serialisable: a snapshot restores it exactly).
#[derive(Serialize, Deserialize)]
pub struct SimState {
    pub sc: Scenario,
    pub now: Millis,
    pub rng: Rng,
    pub tm: Timings,
    pub seg: u64,
    /// The source's current WAL insert position (bytes).
    pub lsn: u64,
    /// The LSN after the newest acknowledged application commit on the source.
    pub last_app_commit_lsn: u64,
    /// Bytes written by applications on each database (all time).
    pub app_bytes: BTreeMap<String, u64>,
    next_switch: Millis,
    next_heartbeat: Millis,
    next_status: Millis,
    next_minute: Millis,
    jitter: f64,
    minute_gen_bytes: u64,
    /// (time, lsn, application bytes written on the source so far) after each step: replica
    /// lag in seconds, and what table contents the replica has at its replay position.
    history: VecDeque<(Millis, u64, u64)>,
    pub slots: Vec<Slot>,
    pub stream: Option<Stream>,
    pub sessions: Vec<Session>,
    next_pid: i64,
    pub blocked_roles: BTreeSet<String>,
    pub groups: BTreeMap<String, SecurityGroup>,
    /// Databases godwit holds an established connection to: it survives a security-group
    /// change (groups are stateful) and ends with the server's sessions (a reboot).
    #[serde(default)]
    pub godwit_conns: BTreeSet<String>,
    /// The security groups still filtering an instance's new connections while a change to
    /// them is applied: RDS applies it asynchronously (`ModifyDBInstance`), describing the new
    /// groups `adding` until they are `active`. The simulator keeps the old ones in force
    /// until then — a runbook that relies on a quarantine before it is active fails here.
    #[serde(default)]
    pub groups_in_force: BTreeMap<String, Vec<String>>,
    /// The source's last checkpoint (time, LSN, a shutdown checkpoint?). Only the shutdown
    /// checkpoint of a reboot is modelled: what the fence reads right after one.
    #[serde(default)]
    pub checkpoint: (Millis, u64, bool),
    /// Logical slots created on Aurora clusters (cluster id, slot).
    pub target_slots: Vec<(String, crate::pg::SlotInfo)>,
    /// Where each promoted cluster's timeline starts (the replayed LSN at promotion).
    pub promoted_at_lsn: BTreeMap<String, u64>,
    /// Source application bytes a promoted cluster had replayed when it was promoted.
    pub promoted_app_bytes: BTreeMap<String, u64>,
    /// Publications, subscriptions and what they carried, sequences set (`logical.rs`).
    #[serde(default)]
    pub logical: logical::Logical,
    pub metrics: Metrics,
    pub routes: BTreeMap<String, net::RouteState>,
    pub nodes: Vec<net::NodeState>,
    pub consumers: Vec<net::Consumer>,
    pub rds: RdsModel,
    pub faults: Vec<FaultState>,
    pub violations: Vec<Violation>,
    /// Model events, in order (what happened when): for transcripts and determinism checks.
    pub log: Vec<(Millis, String)>,
    /// When a promotion of a replica of the source was requested: writes to the source after
    /// this are lost writes.
    pub fence_at: Option<Millis>,
    /// Sum of model steps taken (for the benchmark).
    pub steps: u64,
    /// The recorded series the workload replays (`[workload] recorded`), if any.
    #[serde(default)]
    pub replay: Option<replay::Replay>,
    /// What the stepping loop reads of `sessions`, kept between steps (derived, never saved).
    #[serde(skip)]
    summary: access::SessionSummary,
    /// Where the source's five metrics are in the open CloudWatch minutes
    /// ([`metrics::Metrics::sample_at`]); forgotten at every advance, when the source's id could
    /// have changed.
    #[serde(skip)]
    sites: [Option<usize>; 5],
}

impl SimState {
    pub fn new(sc: Scenario) -> SimState {
        let now = sc.start_ms();
        let tm = Timings::new(&sc);
        let replay = replay::Replay::of(&sc);
        let seg = sc.wal.segment_bytes;
        // The source has been running a while (far from LSN 0), and a segment switch just
        // happened.
        let lsn = 0x16_0000_0000u64;
        let slots = sc
            .slots
            .iter()
            .map(|c| Slot {
                name: c.name.clone(),
                slot_type: c.slot_type,
                plugin: c.plugin.clone(),
                database: c.database.clone(),
                active: c.active,
                restart_lsn: lsn,
                confirmed_flush_lsn: lsn,
                inactive_since: (!c.active).then_some(now),
                received: lsn,
                replica_cluster: None,
            })
            .collect();
        let faults = sc
            .faults
            .iter()
            .map(|f| FaultState {
                kind: f.kind,
                at: f.at.as_deref().map(|a| now + dur_ms(a)),
                step: f.step.clone(),
                lasts: f.lasts.as_deref().map(dur_ms),
                target: f.target.clone(),
                value: f.value,
                fired_at: None,
            })
            .collect();
        let mut st = SimState {
            rng: Rng::new(sc.seed),
            now,
            seg,
            lsn,
            last_app_commit_lsn: lsn,
            app_bytes: BTreeMap::new(),
            next_switch: now + tm.archive_timeout,
            next_heartbeat: now + tm.heartbeat,
            next_status: now + tm.status,
            next_minute: (now / 60_000 + 1) * 60_000,
            jitter: 1.0,
            minute_gen_bytes: 0,
            history: VecDeque::new(),
            slots,
            stream: None,
            sessions: Vec::new(),
            next_pid: 1000,
            blocked_roles: BTreeSet::new(),
            groups: BTreeMap::new(),
            godwit_conns: BTreeSet::new(),
            groups_in_force: BTreeMap::new(),
            checkpoint: (now, lsn, false),
            target_slots: Vec::new(),
            promoted_at_lsn: BTreeMap::new(),
            promoted_app_bytes: BTreeMap::new(),
            logical: logical::Logical::default(),
            metrics: Metrics::default(),
            routes: BTreeMap::new(),
            nodes: Vec::new(),
            consumers: Vec::new(),
            rds: RdsModel::default(),
            faults,
            violations: Vec::new(),
            log: Vec::new(),
            fence_at: None,
            steps: 0,
            replay,
            summary: access::SessionSummary::default(),
            sites: [None; 5],
            tm,
            sc,
        };
        st.start_replay();
        st.seed_resources();
        st.seed_net();
        st.connect_sessions();
        st.backfill_history();
        st
    }

    fn seed_resources(&mut self) {
        let s = self.sc.source.clone();
        for (i, g) in s.security_groups.iter().enumerate() {
            self.groups.insert(
                g.clone(),
                SecurityGroup {
                    id: g.clone(),
                    name: format!("{}-app-{i}", s.id),
                    vpc_id: s.vpc_id.clone(),
                    ingress: vec!["tcp/5432 from 10.0.0.0/8".into()],
                    egress: vec!["all to 0.0.0.0/0".into()],
                },
            );
        }
        let arn = self.arn("db", &s.id);
        let endpoint = format!("{}.sim.{}.rds.amazonaws.com", s.id, self.sc.aws.region);
        self.rds.instances.insert(
            s.id.clone(),
            DbInstance {
                id: s.id.clone(),
                arn,
                engine: "postgres".into(),
                engine_version: s.engine_version.clone(),
                instance_class: s.instance_class.clone(),
                status: "available".into(),
                cluster_id: None,
                security_groups: s.security_groups.clone(),
                parameter_group: s.parameter_group.clone(),
                storage_encrypted: s.encrypted,
                kms_key_id: if s.encrypted {
                    s.kms_key_id.clone()
                } else {
                    None
                },
                allocated_storage_gb: s.allocated_storage_gb,
                backup_retention_days: s.backup_retention_days,
                endpoint,
                port: s.port,
                vpc_id: s.vpc_id.clone(),
                replica_clusters: Vec::new(),
                read_replicas: s.read_replicas.clone(),
                iam_auth: s.iam_auth,
                auto_minor_version_upgrade: s.auto_minor_version_upgrade,
                pending_modifications: s.pending_modifications.clone(),
                parameter_apply_status: s.parameter_apply_status.clone(),
                security_groups_pending: Vec::new(),
            },
        );
        let family = format!(
            "postgres{}",
            scenario::version(&s.engine_version).map_or(0, |v| v.0)
        );
        self.rds.param_groups.insert(
            s.parameter_group.clone(),
            ParamGroup {
                name: s.parameter_group.clone(),
                family,
                cluster: false,
                parameters: s.parameters.clone(),
                created_at: 0,
            },
        );
    }

    pub fn arn(&self, kind: &str, id: &str) -> String {
        format!(
            "arn:aws:rds:{}:{}:{kind}:{id}",
            self.sc.aws.region, self.sc.aws.account
        )
    }

    pub fn note(&mut self, what: impl Into<String>) {
        self.log.push((self.now, what.into()));
    }

    // ---- stepping ------------------------------------------------------------------------

    /// Move the world forward to `to` (never backwards).
    pub fn advance_to(&mut self, to: Millis) {
        // API calls since the last advance may have changed the sessions (or anything).
        self.summary.fresh = false;
        self.sites = [None; 5];
        while self.now < to {
            let mut next = cell_start(self.now)
                .saturating_add(GRID_MS)
                .min(to)
                .min(self.next_switch)
                .min(self.next_heartbeat)
                .min(self.next_status)
                .min(self.next_minute);
            if let Some(t) = self.rds.next_due() {
                next = next.min(t.max(self.now + 1));
            }
            for f in &self.faults {
                if let (Some(at), None) = (f.at, f.fired_at) {
                    next = next.min(at.max(self.now + 1));
                }
            }
            self.refresh_sessions();
            // The earliest exit is the earliest of the `max(exit, now + 1)`.
            if let Some(t) = self.summary.first_exit {
                next = next.min(t.max(self.now + 1));
            }
            self.step(next);
        }
    }

    fn step(&mut self, to: Millis) {
        self.steps += 1;
        self.integrate(to);
        self.now = to;
        // Discrete work happens only at grid points and events, never at an arbitrary time a
        // run happened to poll at: the world does not depend on how its time was chunked.
        let mut eventful = to % GRID_MS == 0;
        for change in self.rds.take_due(to) {
            self.apply(change);
            eventful = true;
        }
        let fired = self.faults.iter().filter(|f| f.fired_at.is_some()).count();
        self.fire_time_faults();
        eventful |= self.faults.iter().filter(|f| f.fired_at.is_some()).count() != fired;
        self.refresh_sessions();
        eventful |= self.summary.first_exit.is_some_and(|t| t <= to);
        if to >= self.next_heartbeat {
            self.next_heartbeat += self.tm.heartbeat;
            if self.source_up() {
                self.write_wal(self.sc.wal.heartbeat_bytes);
            }
        }
        if to >= self.next_switch {
            self.next_switch += self.tm.archive_timeout;
            // archive_timeout switches only if something was written since the last switch.
            if !self.lsn.is_multiple_of(self.seg) && self.source_up() {
                let pad = self.seg - self.lsn % self.seg;
                self.lsn += pad;
            }
        }
        if to >= self.next_status {
            self.next_status += self.tm.status;
            self.report_status();
        }
        if to >= self.next_minute {
            self.close_minute();
            self.next_minute += 60_000;
        }
        self.end_sessions();
        if !eventful {
            return;
        }
        self.step_consumers();
        self.step_subscriptions();
        self.step_inbound();
        self.connect_sessions();
        let app = self.source_app_bytes();
        self.history.push_back((self.now, self.lsn, app));
        self.trim_history();
        self.sample();
        self.check_storage();
        self.check_invariants();
    }

    /// Continuous processes from `now` to `to` (within one grid cell): workload writes, replica
    /// replay, consumers receiving. Rates are constant over a cell and the bytes of a span are
    /// differences of the cell's running integral, so splitting a cell into several steps
    /// writes exactly the same bytes.
    fn integrate(&mut self, to: Millis) {
        let cell = cell_start(self.now);
        let within = |rate: f64, t: Millis| (rate * (t - cell) as f64 / 1000.0).floor() as u64;
        let from = self.now;
        let span = |rate: f64| within(rate, to).saturating_sub(within(rate, from));
        let rate = self.write_rate(cell);
        // Distinct databases with live application sessions (usually one).
        self.refresh_sessions();
        let now = self.now;
        // Taken for the loop below (which changes no session) and put back after it.
        let app_dbs = std::mem::take(&mut self.summary.app_dbs);
        let mut writers: Vec<&String> = Vec::new();
        for (db, forever, last_exit) in &app_dbs {
            if (*forever || *last_exit > now) && self.writable(db) {
                writers.push(db);
            }
        }
        writers.sort();
        if writers.len() > 1 {
            self.violate(
                "single-writer",
                format!(
                    "two writable endpoints received application traffic: {}",
                    writers
                        .iter()
                        .map(|w| w.as_str())
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
            );
        }
        let bytes = span(rate);
        for db in &writers {
            if bytes == 0 {
                continue;
            }
            if self.logical.created.contains_key(db.as_str()) {
                self.take_over(db);
            }
            match self.app_bytes.get_mut(db.as_str()) {
                Some(written) => *written += bytes,
                None => {
                    self.app_bytes.insert((*db).clone(), bytes);
                }
            }
            if **db == self.sc.source.id {
                if let Some(f) = self.fence_at {
                    self.check_write_after_fence(db, bytes, f);
                }
                self.write_wal(bytes);
                self.last_app_commit_lsn = self.lsn;
            }
        }
        drop(writers);
        self.summary.app_dbs = app_dbs;
        // A subscription applying a promoted cluster's writes on the source writes its WAL.
        self.integrate_subscriptions(&span);
        // A cluster created empty copies and streams from the source (inbound.rs).
        self.integrate_inbound(&span);
        // Consumers that keep up receive everything written before this instant's events (a
        // subscription on a created cluster receives what it applied: `step_inbound`).
        let lsn = self.lsn;
        let inbound = self.inbound_slots();
        for slot in &mut self.slots {
            if slot.active && slot.replica_cluster.is_none() && !inbound.contains(&slot.name) {
                slot.received = lsn;
            }
        }
        let replay_rate = self.replay_rate(cell);
        let can = span(replay_rate);
        if let Some(stream) = &mut self.stream {
            if stream.flowing && replay_rate > 0.0 {
                stream.replayed = (stream.replayed + can).min(lsn);
            }
            for slot in &mut self.slots {
                if slot.replica_cluster.as_deref() == Some(stream.cluster_id.as_str()) {
                    slot.received = stream.replayed;
                }
            }
        }
    }

    /// Application writes reached the source after a promotion was requested: lost to the
    /// cluster that took over — unless the source took back every write of every promoted
    /// cluster through a subscription (a rollback), and then its sequences must not hand out
    /// values the cluster already did.
    fn check_write_after_fence(&mut self, db: &str, bytes: u64, fence: Millis) {
        match self.rollback() {
            logical::Rollback::None => self.violate(
                "no-write-after-fence",
                format!(
                    "{bytes} bytes of application writes reached source {db} {} s after the \
                     fence",
                    (self.now - fence) / 1000
                ),
            ),
            logical::Rollback::Incomplete { cluster, missing } => self.violate(
                "no-acknowledged-write-lost",
                format!(
                    "application writes reached source {db} again while {missing} bytes that \
                     {cluster} acknowledged are not on it (the subscription had not applied \
                     them, or they were written before its slot existed)"
                ),
            ),
            logical::Rollback::Complete => {
                if let Some(behind) = self.sequence_behind() {
                    self.violate(
                        "no-sequence-reuse",
                        format!(
                            "application writes reached source {db} after the rollback with a \
                             sequence behind: {behind} — new rows reuse keys already handed \
                             out (pg::advance_sequences before routing back)"
                        ),
                    );
                }
            }
        }
    }

    fn write_wal(&mut self, bytes: u64) {
        self.lsn += bytes;
        self.minute_gen_bytes += bytes;
    }

    /// Application write rate (bytes/s) at `t`: the recording's when one is replayed, else
    /// base + diurnal raised-cosine peak, jittered.
    pub fn write_rate(&self, t: Millis) -> f64 {
        if let Some(r) = &self.replay {
            return r.write_rate(t);
        }
        let w = &self.sc.workload;
        let hour = (t.rem_euclid(86_400_000)) as f64 / 3_600_000.0;
        let phase = (hour - w.peak_hour_utc) / 24.0 * std::f64::consts::TAU;
        let shape = ((1.0 + phase.cos()) / 2.0).powi(3);
        let peak = w
            .peak_write_bytes_per_second
            .max(w.base_write_bytes_per_second);
        (w.base_write_bytes_per_second + (peak - w.base_write_bytes_per_second) * shape)
            * self.jitter
    }

    /// The replica's replay rate over the cell starting at `cell` (faults as of now).
    fn replay_rate(&self, cell: Millis) -> f64 {
        let mut rate = self.sc.replica.replay_bytes_per_second;
        for f in &self.faults {
            if !f.active(self.now) {
                continue;
            }
            match f.kind {
                FaultKind::ReplicaStall => rate = 0.0,
                FaultKind::ReplicaSlowAtPeak => {
                    // Slow only while the workload is above its midpoint: the peak.
                    let w = &self.sc.workload;
                    let mid = match &self.replay {
                        Some(r) => (r.wal_low + r.wal_high) / 2.0 - r.heartbeat_rate,
                        None => {
                            (w.base_write_bytes_per_second + w.peak_write_bytes_per_second) / 2.0
                        }
                    };
                    if self.write_rate(cell) > mid {
                        rate *= f.value.unwrap_or(1.0);
                    }
                }
                _ => {}
            }
        }
        rate
    }

    /// Consumers report their position: slots advance (stale slots do not).
    fn report_status(&mut self) {
        for slot in &mut self.slots {
            if slot.active {
                slot.restart_lsn = slot.received;
                slot.confirmed_flush_lsn = slot.received;
            }
        }
    }

    fn trim_history(&mut self) {
        // What a replica or a created cluster's subscription has not applied yet is still
        // needed to know which writes they hold.
        let keep_from = self
            .logical
            .inbound
            .iter()
            .map(|s| s.start.min(s.applied))
            .chain(self.stream.as_ref().map(|s| s.replayed))
            .min()
            .unwrap_or(self.lsn);
        while self.history.len() > 1 && self.history[1].1 <= keep_from {
            self.history.pop_front();
        }
    }

    /// Seconds since the source wrote the oldest byte the replica has not replayed.
    pub fn replica_lag_seconds(&self) -> Option<f64> {
        let stream = self.stream.as_ref().filter(|s| s.flowing)?;
        if stream.replayed >= self.lsn {
            return Some(0.0);
        }
        let first = self
            .history
            .iter()
            .find(|(_, lsn, _)| *lsn > stream.replayed)
            .map_or(self.now, |(t, _, _)| *t);
        // The entry is the end of the step in which the byte was written: half a step earlier
        // on average; rounding down keeps "caught up" at exactly 0.
        Some(((self.now - first) as f64 / 1000.0).max(0.0))
    }

    /// Application bytes ever written on the source.
    pub fn source_app_bytes(&self) -> u64 {
        self.app_bytes.get(&self.sc.source.id).copied().unwrap_or(0)
    }

    /// Application bytes contained in the source's WAL up to `lsn` (what a replica replayed
    /// to `lsn` has applied); exact at step boundaries, conservative inside a step.
    pub fn app_bytes_at(&self, lsn: u64) -> u64 {
        self.history
            .iter()
            .rev()
            .find(|(_, l, _)| *l <= lsn)
            .map_or(0, |(_, _, a)| *a)
    }

    /// The table contents `db` holds, as application bytes applied from the source's history
    /// (plus, for a promoted cluster, its own writes; for the source, what it applied of a
    /// promoted cluster's through a subscription — equal to the cluster's pair once it took
    /// back every write): `None` for an unknown endpoint.
    pub fn content_version(&self, db: &str) -> Option<(u64, u64)> {
        if db == self.sc.source.id {
            // The source's own writes, and a promoted cluster's it applied (a rollback).
            return Some((self.source_app_bytes(), self.reverse_applied_bytes()));
        }
        if let Some(s) = self.stream.as_ref().filter(|s| s.cluster_id == db) {
            return Some((self.app_bytes_at(s.replayed), 0));
        }
        if let Some(held) = self.inbound_app_bytes(db) {
            return Some((held, self.app_bytes.get(db).copied().unwrap_or(0)));
        }
        let base = *self.promoted_app_bytes.get(db)?;
        Some((base, self.app_bytes.get(db).copied().unwrap_or(0)))
    }
}

/// FNV-1a over `parts` in order: the model's stable hash (ids derived from names, simulated
/// table contents), the same on every platform and run.
pub fn fnv(parts: &[&[u8]]) -> u64 {
    parts
        .iter()
        .flat_map(|p| p.iter())
        .fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
        })
}

#[cfg(test)]
mod tests;
