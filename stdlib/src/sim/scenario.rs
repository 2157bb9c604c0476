//! Scenarios: what the simulated world looks like and what goes wrong in it, as TOML.
//!
//! Parsing is strict: an unknown key, a wrong type or an impossible value is rejected with the
//! file, the key path and what was expected. Serde's `deny_unknown_fields` catches the first two
//! (the `toml` crate's message quotes the line); [`Scenario::validate`] checks ranges and the
//! cross-references serde cannot see (a fault naming a slot that does not exist).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use godwit_engine::clock::Millis;
use godwit_engine::duration::parse_duration;
use serde::{Deserialize, Serialize};

pub use crate::cw::recording::PastEnd;
use crate::cw::recording::Recording;

/// 64 MiB, the RDS WAL segment size.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Built-in scenarios shipped in the binary (`godwit demo`, `--world sim:NAME`). The same files
/// live in `tests/scenarios/`, where the snapshot tests read them.
pub const BUILTINS: &[(&str, &str)] = &[
    (
        "audit-divergence",
        include_str!("../../../tests/scenarios/audit-divergence.toml"),
    ),
    (
        "audit-lagging-replica",
        include_str!("../../../tests/scenarios/audit-lagging-replica.toml"),
    ),
    (
        "aws-throttling",
        include_str!("../../../tests/scenarios/aws-throttling.toml"),
    ),
    (
        "busy-source",
        include_str!("../../../tests/scenarios/busy-source.toml"),
    ),
    (
        "cloudwatch-gap",
        include_str!("../../../tests/scenarios/cloudwatch-gap.toml"),
    ),
    (
        "credential-less-busy",
        include_str!("../../../tests/scenarios/credential-less-busy.toml"),
    ),
    (
        "credential-less-cdc",
        include_str!("../../../tests/scenarios/credential-less-cdc.toml"),
    ),
    (
        "credential-less-gap-across-fence",
        include_str!("../../../tests/scenarios/credential-less-gap-across-fence.toml"),
    ),
    (
        "credential-less-idle",
        include_str!("../../../tests/scenarios/credential-less-idle.toml"),
    ),
    (
        "credential-less-late-datapoint",
        include_str!("../../../tests/scenarios/credential-less-late-datapoint.toml"),
    ),
    (
        "credential-less-stale-slot",
        include_str!("../../../tests/scenarios/credential-less-stale-slot.toml"),
    ),
    (
        "data-divergence",
        include_str!("../../../tests/scenarios/data-divergence.toml"),
    ),
    (
        "encryption-mismatch",
        include_str!("../../../tests/scenarios/encryption-mismatch.toml"),
    ),
    (
        "engine-crash",
        include_str!("../../../tests/scenarios/engine-crash.toml"),
    ),
    (
        "envoy-nack",
        include_str!("../../../tests/scenarios/envoy-nack.toml"),
    ),
    (
        "envoy-node-disconnect",
        include_str!("../../../tests/scenarios/envoy-node-disconnect.toml"),
    ),
    (
        "idle-source",
        include_str!("../../../tests/scenarios/idle-source.toml"),
    ),
    (
        "logical-ddl-during-copy",
        include_str!("../../../tests/scenarios/logical-ddl-during-copy.toml"),
    ),
    (
        "logical-no-primary-key",
        include_str!("../../../tests/scenarios/logical-no-primary-key.toml"),
    ),
    (
        "logical-ready",
        include_str!("../../../tests/scenarios/logical-ready.toml"),
    ),
    (
        "long-transaction-at-fence",
        include_str!("../../../tests/scenarios/long-transaction-at-fence.toml"),
    ),
    (
        "preflight-failures",
        include_str!("../../../tests/scenarios/preflight-failures.toml"),
    ),
    (
        "promote-failure",
        include_str!("../../../tests/scenarios/promote-failure.toml"),
    ),
    (
        "promote-hang",
        include_str!("../../../tests/scenarios/promote-hang.toml"),
    ),
    (
        "query-error-on-target",
        include_str!("../../../tests/scenarios/query-error-on-target.toml"),
    ),
    (
        "recorded-incident",
        include_str!("../../../tests/scenarios/recorded-incident.toml"),
    ),
    (
        "replica-slow-at-peak",
        include_str!("../../../tests/scenarios/replica-slow-at-peak.toml"),
    ),
    (
        "replica-stall",
        include_str!("../../../tests/scenarios/replica-stall.toml"),
    ),
    (
        "reverse-broken",
        include_str!("../../../tests/scenarios/reverse-broken.toml"),
    ),
    (
        "reverse-lag",
        include_str!("../../../tests/scenarios/reverse-lag.toml"),
    ),
    (
        "shadow-reads",
        include_str!("../../../tests/scenarios/shadow-reads.toml"),
    ),
    (
        "shadow-reads-failure",
        include_str!("../../../tests/scenarios/shadow-reads-failure.toml"),
    ),
    (
        "stale-logical-slot",
        include_str!("../../../tests/scenarios/stale-logical-slot.toml"),
    ),
    (
        "stale-slot-at-preflight",
        include_str!("../../../tests/scenarios/stale-slot-at-preflight.toml"),
    ),
    (
        "target-ddl",
        include_str!("../../../tests/scenarios/target-ddl.toml"),
    ),
    (
        "terminal-cluster-state",
        include_str!("../../../tests/scenarios/terminal-cluster-state.toml"),
    ),
];

/// Recorded-series files the built-in scenarios replay (`[workload] recorded`), by the path
/// they give (relative to `tests/scenarios/`).
pub const BUILTIN_SERIES: &[(&str, &str)] = &[(
    "series/recorded-incident.json",
    include_str!("../../../tests/scenarios/series/recorded-incident.json"),
)];

/// A scenario that failed to load: which file, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("scenario {file}: {message}")]
pub struct ScenarioError {
    pub file: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Seeds every random choice (workload jitter, ACK latencies); same seed ⇒ same run.
    #[serde(default = "one")]
    pub seed: u64,
    /// Virtual time at which the world starts (default 2026-01-01T00:00:00Z).
    #[serde(default)]
    pub start: Option<toml::value::Datetime>,
    pub source: Source,
    #[serde(default)]
    pub workload: Workload,
    #[serde(default)]
    pub wal: Wal,
    #[serde(default)]
    pub replica: Replica,
    /// The logical path's initial copy (a subscription on a cluster created empty).
    #[serde(default)]
    pub logical: LogicalCopy,
    #[serde(default)]
    pub aws: Aws,
    #[serde(default)]
    pub cloudwatch: CloudWatch,
    #[serde(default)]
    pub slots: Vec<SlotCfg>,
    #[serde(default)]
    pub envoy: Envoy,
    #[serde(default)]
    pub cdc: Cdc,
    #[serde(default)]
    pub godwit: Godwit,
    #[serde(default)]
    pub faults: Vec<Fault>,
    /// The account's other DB instances (inventory only, see [`AccountInstance`]).
    #[serde(default)]
    pub account: Vec<AccountInstance>,
}

/// godwit itself as the world sees it: whether it has database access, and the security group
/// its connections come from (a quarantine must admit it, or godwit is locked out too).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Godwit {
    /// Database access (IAM): `false` is a credential-less world — every `pg::`/`validate::`
    /// call is refused, decisions come from AWS APIs and CloudWatch.
    pub db_access: bool,
    pub security_group: String,
    /// An exact comparison (`validate::compare`) costs this much time whatever the size
    /// (connections, the catalogue, the positions) ...
    pub compare_base: String,
    /// ... plus the rows of the larger side at this rate: it reads every row of both sides,
    /// in parallel. The simulator charges it on its modelled tables' rows; a run waits for it,
    /// inside the write blackout at the fence.
    pub compare_rows_per_second: f64,
}

impl Default for Godwit {
    fn default() -> Self {
        Godwit {
            db_access: true,
            security_group: "sg-0godwit".into(),
            // The lab's figures on a 2-core machine (docs/fleet.md, "The platform's own timings"):
            // 32,000 rows in 120-130 ms, 440,000 in 400-460 ms.
            compare_base: "100ms".into(),
            compare_rows_per_second: 1_250_000.0,
        }
    }
}

fn one() -> u64 {
    1
}

/// The RDS for PostgreSQL instance being migrated.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Source {
    pub id: String,
    pub engine_version: String,
    pub instance_class: String,
    pub allocated_storage_gb: u64,
    pub data_gb: f64,
    pub backup_retention_days: u32,
    pub encrypted: bool,
    pub kms_key_id: Option<String>,
    pub vpc_id: String,
    pub security_groups: Vec<String>,
    pub parameter_group: String,
    pub parameters: BTreeMap<String, String>,
    pub extensions: Vec<String>,
    pub unlogged_tables: Vec<String>,
    pub app_roles: Vec<String>,
    /// Roles of `app_roles` that sign in with a password (not members of `rds_iam`): a logical
    /// copy creates them without one (`pg::roles_without_iam`). Default: none.
    pub password_roles: Vec<String>,
    /// Application sessions open while the source is reachable.
    pub sessions: u32,
    pub tables: Vec<TableCfg>,
    /// Tables under `tables` without a primary key (and replica identity `DEFAULT`): logical
    /// replication cannot carry their updates and deletes (`pg::unreplicable_tables`).
    pub no_primary_key: Vec<String>,
    /// Large objects in the source's database (`pg::large_objects`): logical replication does
    /// not carry them.
    pub large_objects: i64,
    pub sequences: Vec<SequenceCfg>,
    pub port: u16,
    /// IAM database authentication enabled (`IAMDatabaseAuthenticationEnabled`).
    pub iam_auth: bool,
    pub auto_minor_version_upgrade: bool,
    /// `PendingModifiedValues` fields set on the source (e.g. `DBInstanceClass`).
    pub pending_modifications: Vec<String>,
    /// `in-sync`, `pending-reboot`, `applying`.
    pub parameter_apply_status: String,
    /// Read replicas of the source (ARNs for cross-Region ones).
    pub read_replicas: Vec<String>,
    /// Connections `DatabaseConnections` shows that are not the application's and survive the
    /// fence. AWS leaves its own connections out of the metric (rds-metrics.html), so 0; an
    /// account whose metric shows RDS-internal ones (undocumented, e.g. the Aurora replica's
    /// replication) is modelled with 1 or more: the credential-less fence must then be told
    /// (`fence_connection_allowance`), never pass on its own.
    pub internal_connections: u32,
    /// How long a terminated backend takes to exit (`pg_terminate_backend` returns before it
    /// is gone): its transaction's rollback, its connection's teardown.
    pub backend_exit: String,
    /// The instance's tags (`TagList`), e.g. `{ "godwit:fleet" = "payments", team = "orders" }`:
    /// what `rds::list_instances` and fleet discovery read.
    pub tags: BTreeMap<String, String>,
    /// `CPUUtilization` (percent) with no application writes and at the workload's peak write
    /// rate; in between it follows the write rate (`TransactionLogsGeneration`).
    pub cpu_percent_idle: f64,
    pub cpu_percent_at_peak: f64,
    /// `FreeableMemory` as a percentage of the class's memory, idle and at the peak (the
    /// sessions' and the cache's memory grow with the load).
    pub freeable_memory_percent_idle: f64,
    pub freeable_memory_percent_at_peak: f64,
}

impl Default for Source {
    fn default() -> Self {
        Source {
            id: "orders-db".into(),
            engine_version: "15.4".into(),
            instance_class: "db.r6g.xlarge".into(),
            allocated_storage_gb: 500,
            data_gb: 120.0,
            backup_retention_days: 7,
            encrypted: true,
            kms_key_id: Some("arn:aws:kms:us-east-1:111122223333:key/sim-key".into()),
            vpc_id: "vpc-0sim".into(),
            security_groups: vec!["sg-0app".into()],
            parameter_group: "orders-pg15".into(),
            parameters: BTreeMap::from([
                ("max_connections".into(), "500".into()),
                (
                    "shared_preload_libraries".into(),
                    "pg_stat_statements".into(),
                ),
                ("work_mem".into(), "16384".into()),
            ]),
            extensions: vec!["plpgsql".into(), "pg_stat_statements".into()],
            unlogged_tables: Vec::new(),
            app_roles: vec!["orders_app".into()],
            password_roles: Vec::new(),
            sessions: 20,
            tables: vec![
                TableCfg {
                    name: "public.orders".into(),
                    rows: 1_000_000,
                },
                TableCfg {
                    name: "public.customers".into(),
                    rows: 50_000,
                },
            ],
            no_primary_key: Vec::new(),
            large_objects: 0,
            sequences: vec![SequenceCfg {
                name: "public.orders_id_seq".into(),
                last_value: 1_000_000,
            }],
            port: 5432,
            iam_auth: true,
            auto_minor_version_upgrade: false,
            pending_modifications: Vec::new(),
            parameter_apply_status: "in-sync".into(),
            read_replicas: Vec::new(),
            internal_connections: 0,
            backend_exit: "200ms".into(),
            tags: BTreeMap::new(),
            cpu_percent_idle: 5.0,
            cpu_percent_at_peak: 40.0,
            freeable_memory_percent_idle: 60.0,
            freeable_memory_percent_at_peak: 45.0,
        }
    }
}

/// Another DB instance of the simulated account (`[[account]]`): inventory only. It is listed by
/// `rds::list_instances` — with its engine, so a MySQL or an Aurora member is listed and left out
/// as on AWS — and nothing else in this world knows it: `describe_instance`, `pg::`, `cw::` model
/// only the source and what the run creates. To plan or migrate it, give it its own world (as the
/// generated fleet does: one scenario per cluster).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountInstance {
    pub id: String,
    #[serde(default = "postgres")]
    pub engine: String,
    #[serde(default = "default_engine_version")]
    pub engine_version: String,
    #[serde(default = "default_instance_class")]
    pub instance_class: String,
    #[serde(default = "default_allocated_storage_gb")]
    pub allocated_storage_gb: u64,
    #[serde(default = "available")]
    pub status: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

fn default_engine_version() -> String {
    Source::default().engine_version
}
fn default_instance_class() -> String {
    Source::default().instance_class
}
fn default_allocated_storage_gb() -> u64 {
    Source::default().allocated_storage_gb
}
fn available() -> String {
    "available".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableCfg {
    pub name: String,
    pub rows: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SequenceCfg {
    pub name: String,
    pub last_value: i64,
}

/// Application write load: a base rate plus a diurnal peak (a raised cosine around
/// `peak_hour_utc`), with multiplicative jitter drawn once per minute — or a recorded series
/// replayed instead (`recorded`, docs/sim.md "Replaying recorded series").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Workload {
    pub base_write_bytes_per_second: f64,
    pub peak_write_bytes_per_second: f64,
    pub peak_hour_utc: f64,
    /// Relative jitter, 0..1 (0.1 = ±10 %).
    pub jitter: f64,
    /// A recorded-series file (`godwit cw export`), relative to the scenario file: the source's
    /// WAL follows its `TransactionLogsGeneration`, its application sessions its
    /// `DatabaseConnections`, its free storage starts at its `FreeStorageSpace` — instead of
    /// the curve above (base, peak and jitter are then unused).
    pub recorded: Option<String>,
    /// Where in the recording the scenario starts: a duration after its first datapoint.
    pub offset: String,
    /// Past the recording's last datapoint: `loop` (from its first again) or `hold` (its last
    /// value).
    pub past_end: PastEnd,
    /// `recorded`'s contents, read when the scenario is loaded; not a TOML key.
    #[serde(skip)]
    pub recording: Option<Arc<Recording>>,
    /// Application WAL per row it adds to the first (hot) table and per sequence value it
    /// takes: the tables grow with the writes, and the exact comparison with them.
    pub bytes_per_row: u64,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            base_write_bytes_per_second: 0.0,
            peak_write_bytes_per_second: 0.0,
            peak_hour_utc: 14.0,
            jitter: 0.0,
            recorded: None,
            offset: "0s".into(),
            past_end: PastEnd::Loop,
            recording: None,
            bytes_per_row: 4096,
        }
    }
}

/// The WAL mechanics that make the idle sawtooth.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Wal {
    pub segment_bytes: u64,
    /// `archive_timeout`: a segment switch is forced this often if anything was written.
    pub archive_timeout: String,
    /// RDS writes a heartbeat this often, so an idle source always has something to switch.
    pub heartbeat_interval: String,
    pub heartbeat_bytes: u64,
}

impl Default for Wal {
    fn default() -> Self {
        Wal {
            segment_bytes: SEGMENT_BYTES,
            archive_timeout: "5m".into(),
            heartbeat_interval: "5m".into(),
            heartbeat_bytes: 8192,
        }
    }
}

/// How fast the Aurora replica receives and replays the source's WAL.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Replica {
    pub replay_bytes_per_second: f64,
    /// How often the replica reports its position to the source's slot.
    pub status_interval: String,
}

impl Default for Replica {
    fn default() -> Self {
        Replica {
            replay_bytes_per_second: 32.0 * 1024.0 * 1024.0,
            status_interval: "10s".into(),
        }
    }
}

/// How fast a subscription's initial copy reads the source's tables into a cluster created
/// empty (the logical path, `sim/inbound.rs`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogicalCopy {
    /// Table bytes copied per second, all table syncs together. Assumed; the lab's copy
    /// benchmark measures it on real servers (docs/logical.md).
    pub copy_bytes_per_second: f64,
}

impl Default for LogicalCopy {
    fn default() -> Self {
        LogicalCopy {
            copy_bytes_per_second: 40.0 * 1024.0 * 1024.0,
        }
    }
}

/// AWS control-plane timings and catalogue.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Aws {
    pub region: String,
    pub account: String,
    pub create_replica_base: String,
    /// Added per 100 GB of source data (AWS: several hours per TB).
    pub create_replica_per_100gb: String,
    pub create_instance: String,
    pub promote: String,
    /// How long a promoted cluster still reads `available` before `promoting`.
    pub promote_status_lag: String,
    /// How long a new cluster parameter group rests before a cluster may use it (AWS: "wait
    /// at least 5 minutes", `rds::PARAMETER_GROUP_SETTLE_SECONDS`); sooner is refused.
    pub parameter_group_settle: String,
    pub reboot: String,
    pub modify: String,
    pub delete: String,
    pub snapshot_per_100gb: String,
    pub restore_per_100gb: String,
    /// A new, empty Aurora cluster (`rds::create_cluster`: the logical path's target) becoming
    /// `available`, before its writer instance (`create_instance`). Assumed: AWS publishes no
    /// figure.
    pub create_cluster: String,
    /// A copy-on-write clone of an Aurora cluster becoming `available` (its volume is shared,
    /// so it does not grow with the data). Assumed: AWS calls cloning fast, with no figure.
    pub clone: String,
    /// A clone of a replica cluster keeps its `ReplicationSourceIdentifier` (not writable).
    /// AWS does not document either way (docs/aws.md, "The owner's clone"); moto keeps it. Off
    /// by default: the simulator's clone is writable, as the lab's copy of a standby is.
    pub clone_keeps_replication_source: bool,
    /// An EC2 security-group rule added (`ec2::allow_connection`: the reverse path's network
    /// rules). Assumed: AWS publishes no latency for `AuthorizeSecurityGroup*`.
    pub security_group_rule: String,
    /// A logical replication slot created on a writable database (`pg::create_logical_slot`:
    /// PostgreSQL waits for a consistent point). Assumed.
    pub logical_slot: String,
    /// `CREATE SUBSCRIPTION` on the source (`pg::subscribe`: it connects to the publisher over
    /// TLS and signs in). Assumed.
    pub subscribe: String,
    pub aurora_versions: Vec<String>,
    pub supported_extensions: Vec<String>,
    pub unsupported_parameters: Vec<String>,
}

impl Default for Aws {
    fn default() -> Self {
        Aws {
            region: "us-east-1".into(),
            account: "111122223333".into(),
            create_replica_base: "20m".into(),
            create_replica_per_100gb: "25m".into(),
            create_instance: "10m".into(),
            promote: "4m".into(),
            promote_status_lag: "30s".into(),
            parameter_group_settle: "5m".into(),
            reboot: "1m".into(),
            modify: "30s".into(),
            delete: "5m".into(),
            snapshot_per_100gb: "10m".into(),
            restore_per_100gb: "20m".into(),
            // Inside the write blackout (the reverse path is set up between the promotion and
            // the route switch): never free, or the plan predicts a shorter blackout than AWS
            // gives.
            create_cluster: "15m".into(),
            clone: "10m".into(),
            clone_keeps_replication_source: false,
            security_group_rule: "500ms".into(),
            logical_slot: "200ms".into(),
            subscribe: "300ms".into(),
            aurora_versions: ["14.9", "15.4", "15.5", "15.6", "16.1", "16.2"]
                .map(String::from)
                .to_vec(),
            supported_extensions: [
                "plpgsql",
                "pg_stat_statements",
                "pgcrypto",
                "postgis",
                "pg_trgm",
                "hstore",
                "uuid-ossp",
                "citext",
                "btree_gin",
                "btree_gist",
                "pglogical",
                "pg_partman",
            ]
            .map(String::from)
            .to_vec(),
            unsupported_parameters: ["rds.custom_dns_resolution", "wal_compression"]
                .map(String::from)
                .to_vec(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CloudWatch {
    /// A datapoint for the minute [t, t+60) becomes visible at t + 60 + delay.
    pub delay: String,
    /// How much of the source's CloudWatch history exists before `start` (at least 2h, what a
    /// preflight's one-hour look-back needs). A fleet plan calibrates its prediction from the
    /// last day's `TransactionLogsGeneration`, so the generated fleet's clusters have 25h.
    pub history: String,
}

impl Default for CloudWatch {
    fn default() -> Self {
        CloudWatch {
            delay: "0s".into(),
            history: "2h".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlotType {
    Logical,
    Physical,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotCfg {
    pub name: String,
    #[serde(rename = "type")]
    pub slot_type: SlotType,
    #[serde(default = "pgoutput")]
    pub plugin: String,
    #[serde(default = "yes")]
    pub active: bool,
    #[serde(default = "postgres")]
    pub database: String,
}

fn pgoutput() -> String {
    "pgoutput".into()
}
fn yes() -> bool {
    true
}
fn postgres() -> String {
    "postgres".into()
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Envoy {
    /// Default: one node `envoy-1` with 200 ms ACK latency.
    pub nodes: Vec<EnvoyNode>,
    /// Default: one route named after the source, pointing at its endpoint.
    pub routes: Vec<RouteCfg>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvoyNode {
    pub id: String,
    #[serde(default = "ack")]
    pub ack_latency: String,
}

fn ack() -> String {
    "200ms".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteCfg {
    pub name: String,
    /// An RDS instance or Aurora cluster id; the route serves its (writer) endpoint.
    pub target: String,
    /// New client connections per second through the route (its Envoy statistics,
    /// `route::route_stats`): readers that connect, query and leave. 0: none modelled.
    #[serde(default)]
    pub connections_per_second: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cdc {
    pub consumers: Vec<ConsumerCfg>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerCfg {
    pub name: String,
    /// The logical slot it reads.
    pub slot: String,
}

/// Something that goes wrong, at a virtual time (`at`, from the start) or when the runbook
/// enters a named step (`step`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    pub kind: FaultKind,
    #[serde(default)]
    pub at: Option<String>,
    #[serde(default)]
    pub step: Option<String>,
    /// How long the fault lasts (gaps, stalls, throttling); default: for ever.
    #[serde(default, rename = "for")]
    pub lasts: Option<String>,
    /// What it applies to: a slot, an Envoy node, an extension, a parameter, a table, a state.
    #[serde(default)]
    pub target: Option<String>,
    /// A factor (replica slow at peak: replay rate multiplier) or a delay in seconds.
    #[serde(default)]
    pub value: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    StaleLogicalSlot,
    ReplicaStall,
    ReplicaSlowAtPeak,
    PromoteHang,
    PromoteFailure,
    TerminalClusterState,
    CloudwatchGap,
    CloudwatchDelay,
    AwsThrottling,
    EnvoyNack,
    EnvoyNodeDisconnect,
    LongRunningTransaction,
    ExtensionUnsupported,
    ParameterUnsupported,
    UnloggedTable,
    EncryptionMismatch,
    EngineCrash,
    /// The target's copy of one row differs from the source's (target: a table under
    /// `source.tables`, value: the row's key): what `validate::compare` must find.
    DataDivergence,
    /// The source's subscription to a promoted cluster (the rollback's reverse stream) applies
    /// at `value` bytes of the cluster's WAL per second instead of far above the write rate.
    ReverseLag,
    /// The reverse subscription's apply worker fails on every change: it restarts every 5 s,
    /// each restart one more apply error, and applies nothing.
    ReverseBroken,
    /// A DDL on the promoted cluster (target: its id; default every writable cluster): a
    /// column added to the hot table, which logical replication does not carry; the reverse
    /// subscription fails from the first change after it.
    TargetDdl,
    /// A DDL on the source: a column added to the hot table (the team's migration, which
    /// waits while the source's migrations are frozen; `value = 1`: a manual ALTER that does
    /// not). A physical replica replays it; logical replication does not carry it: a logical
    /// target's copy or stream of that table fails.
    SourceDdl,
    /// The endpoint of an Aurora cluster or RDS instance (target: its id) refuses new
    /// connections: a route pointing at it counts each as a failed connect.
    EndpointRefuses,
    /// The source's statements reading one table (target: a table under `source.tables`) fail
    /// on the target, as a call of a function the target lacks would: what the query check
    /// (`validate::queries`) must find.
    TargetQueryError,
}

impl Scenario {
    /// Parse and validate TOML; `file` names the source in messages. A recorded series
    /// (`[workload] recorded`) is read relative to the current directory.
    pub fn from_toml(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
        Scenario::from_toml_in(file, text, None)
    }

    /// [`Scenario::from_toml`], reading a recorded series relative to `dir` (the scenario
    /// file's directory).
    pub fn from_toml_in(
        file: &str,
        text: &str,
        dir: Option<&Path>,
    ) -> Result<Scenario, ScenarioError> {
        let err = |message: String| ScenarioError {
            file: file.to_string(),
            message,
        };
        let mut s: Scenario = toml::from_str(text).map_err(|e| {
            let path = e.span().and_then(|sp| key_path_at(text, sp.start));
            match path {
                Some(p) => err(format!("at `{p}`: {e}")),
                None => err(e.to_string()),
            }
        })?;
        if let Some(rel) = s.workload.recorded.clone() {
            let builtin = file.starts_with("built-in ");
            let recording = match BUILTIN_SERIES.iter().find(|(p, _)| builtin && *p == rel) {
                Some((p, text)) => Recording::parse(&format!("built-in {p}"), text),
                None => Recording::load(&dir.map_or_else(|| rel.clone().into(), |d| d.join(&rel))),
            }
            .map_err(|e| err(format!("workload.recorded: {e}")))?;
            s.workload.recording = Some(Arc::new(recording));
        }
        s.validate().map_err(err)?;
        Ok(s)
    }

    /// A built-in scenario by name, a generated fleet's cluster (`generated:SEED:ID`,
    /// `super::fleet::generated_member`), or a TOML file by path (anything with a `/` or ending
    /// in `.toml`).
    pub fn load(name_or_path: &str) -> Result<Scenario, ScenarioError> {
        if let Some(generated) = super::fleet::load_generated(name_or_path) {
            return generated.map_err(|message| ScenarioError {
                file: name_or_path.to_string(),
                message,
            });
        }
        if name_or_path.ends_with(".toml") || name_or_path.contains('/') {
            let text =
                std::fs::read_to_string(Path::new(name_or_path)).map_err(|e| ScenarioError {
                    file: name_or_path.to_string(),
                    message: format!("cannot read: {e}"),
                })?;
            return Scenario::from_toml_in(
                name_or_path,
                &text,
                Some(Path::new(name_or_path).parent().unwrap_or(Path::new("."))),
            );
        }
        match BUILTINS.iter().find(|(n, _)| *n == name_or_path) {
            Some((n, text)) => Scenario::from_toml(&format!("built-in {n}"), text),
            None => Err(ScenarioError {
                file: name_or_path.to_string(),
                message: format!(
                    "no built-in scenario of that name; built-ins: {}; or give a path to a \
                     .toml file",
                    builtin_names().join(", ")
                ),
            }),
        }
    }

    /// Start of virtual time, epoch milliseconds.
    pub fn start_ms(&self) -> Millis {
        self.start
            .as_ref()
            .and_then(datetime_ms)
            .unwrap_or(DEFAULT_START_MS)
    }

    /// Range and cross-reference checks serde cannot express. Messages name the key path.
    pub fn validate(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        let mut need = |ok: bool, msg: String| {
            if !ok {
                problems.push(msg);
            }
        };
        need(
            !self.name.is_empty(),
            "name: expected a non-empty name".into(),
        );
        if let Some(dt) = &self.start {
            need(
                datetime_ms(dt).is_some(),
                format!(
                    "start: {dt} is not a full date-time with offset, e.g. 2026-01-01T00:00:00Z"
                ),
            );
        }
        let s = &self.source;
        need(
            valid_id(&s.id),
            format!(
                "source.id: {:?} is not an RDS identifier (1-63 letters, digits, '-')",
                s.id
            ),
        );
        need(
            version(&s.engine_version).is_some(),
            format!(
                "source.engine_version: {:?} is not MAJOR.MINOR",
                s.engine_version
            ),
        );
        need(
            s.allocated_storage_gb >= 20,
            format!(
                "source.allocated_storage_gb: {} < 20 (RDS minimum)",
                s.allocated_storage_gb
            ),
        );
        need(
            // data in GB, the allocation in GiB (RDS's unit).
            s.data_gb >= 0.0 && s.data_gb <= s.allocated_storage_gb as f64 * 1.073_741_824,
            format!(
                "source.data_gb: {} must be between 0 and allocated_storage_gb ({} GiB)",
                s.data_gb, s.allocated_storage_gb
            ),
        );
        need(
            !s.security_groups.is_empty(),
            "source.security_groups: expected at least one group".into(),
        );
        for (i, r) in s.password_roles.iter().enumerate() {
            need(
                s.app_roles.contains(r),
                format!(
                    "source.password_roles[{i}]: {r:?} is not one of source.app_roles \
                     ({:?})",
                    s.app_roles
                ),
            );
        }
        for (i, t) in s.no_primary_key.iter().enumerate() {
            need(
                s.tables.iter().any(|x| x.name == *t) && !s.no_primary_key[..i].contains(t),
                format!(
                    "source.no_primary_key[{i}]: {t:?} is not a table under source.tables (or is \
                     named twice)"
                ),
            );
        }
        let w = &self.workload;
        for (key, v) in [
            ("base_write_bytes_per_second", w.base_write_bytes_per_second),
            ("peak_write_bytes_per_second", w.peak_write_bytes_per_second),
        ] {
            need(
                v.is_finite() && v >= 0.0,
                format!("workload.{key}: {v} must be a number >= 0"),
            );
        }
        need(
            w.peak_write_bytes_per_second == 0.0
                || w.peak_write_bytes_per_second >= w.base_write_bytes_per_second,
            "workload.peak_write_bytes_per_second: must be >= base_write_bytes_per_second (or 0 \
             for no peak)"
                .into(),
        );
        need(
            (0.0..24.0).contains(&w.peak_hour_utc),
            format!(
                "workload.peak_hour_utc: {} must be in 0..24",
                w.peak_hour_utc
            ),
        );
        need(
            (0.0..1.0).contains(&w.jitter),
            format!("workload.jitter: {} must be in 0..1", w.jitter),
        );
        match (&w.recorded, &w.recording) {
            (_, Some(r)) => need(
                r.source_metric("TransactionLogsGeneration")
                    .is_some_and(|m| !m.points.is_empty()),
                format!(
                    "workload.recorded: {} has no TransactionLogsGeneration datapoints of {} \
                     (what the replay writes); export a window in which the source published \
                     them",
                    w.recorded.as_deref().unwrap_or("the recording"),
                    r.cluster
                ),
            ),
            (Some(p), None) => need(
                false,
                format!("workload.recorded: {p} was not read (load the scenario from its file)"),
            ),
            (None, None) => {}
        }
        need(
            self.wal.segment_bytes >= 1 << 20 && self.wal.segment_bytes.is_power_of_two(),
            format!(
                "wal.segment_bytes: {} must be a power of two >= 1 MiB",
                self.wal.segment_bytes
            ),
        );
        need(
            self.replica.replay_bytes_per_second > 0.0,
            "replica.replay_bytes_per_second: must be > 0".into(),
        );
        need(
            self.logical.copy_bytes_per_second.is_finite() && self.logical.copy_bytes_per_second > 0.0,
            "logical.copy_bytes_per_second: must be > 0 (bytes of table data the initial copy reads per second)".into(),
        );
        need(
            self.workload.bytes_per_row > 0,
            "workload.bytes_per_row: must be > 0".into(),
        );
        need(
            self.godwit.compare_rows_per_second > 0.0,
            "godwit.compare_rows_per_second: must be > 0".into(),
        );
        let durations: Vec<(&str, &str)> = vec![
            ("wal.archive_timeout", &self.wal.archive_timeout),
            ("wal.heartbeat_interval", &self.wal.heartbeat_interval),
            ("replica.status_interval", &self.replica.status_interval),
            ("aws.create_replica_base", &self.aws.create_replica_base),
            (
                "aws.create_replica_per_100gb",
                &self.aws.create_replica_per_100gb,
            ),
            ("aws.create_instance", &self.aws.create_instance),
            ("aws.promote", &self.aws.promote),
            (
                "aws.parameter_group_settle",
                &self.aws.parameter_group_settle,
            ),
            ("aws.reboot", &self.aws.reboot),
            ("aws.modify", &self.aws.modify),
            ("aws.delete", &self.aws.delete),
            ("aws.snapshot_per_100gb", &self.aws.snapshot_per_100gb),
            ("aws.restore_per_100gb", &self.aws.restore_per_100gb),
            ("aws.clone", &self.aws.clone),
            ("aws.create_cluster", &self.aws.create_cluster),
            ("aws.security_group_rule", &self.aws.security_group_rule),
            ("aws.logical_slot", &self.aws.logical_slot),
            ("aws.subscribe", &self.aws.subscribe),
            ("cloudwatch.delay", &self.cloudwatch.delay),
            ("cloudwatch.history", &self.cloudwatch.history),
            ("workload.offset", &self.workload.offset),
            ("godwit.compare_base", &self.godwit.compare_base),
            ("source.backend_exit", &self.source.backend_exit),
        ];
        for (key, text) in durations {
            if let Err(e) = parse_duration(text) {
                need(false, format!("{key}: {e}"));
            }
        }
        for (key, v) in [
            ("source.cpu_percent_idle", self.source.cpu_percent_idle),
            (
                "source.cpu_percent_at_peak",
                self.source.cpu_percent_at_peak,
            ),
            (
                "source.freeable_memory_percent_idle",
                self.source.freeable_memory_percent_idle,
            ),
            (
                "source.freeable_memory_percent_at_peak",
                self.source.freeable_memory_percent_at_peak,
            ),
        ] {
            need(
                (0.0..=100.0).contains(&v),
                format!("{key}: {v} is not a percentage (0 to 100)"),
            );
        }
        for (key, text) in [
            ("wal.archive_timeout", &self.wal.archive_timeout),
            ("wal.heartbeat_interval", &self.wal.heartbeat_interval),
            ("replica.status_interval", &self.replica.status_interval),
        ] {
            if let Ok(d) = parse_duration(text) {
                need(
                    d >= Duration::from_secs(1),
                    format!("{key}: {text} must be at least 1s"),
                );
            }
        }
        if let Ok(d) = parse_duration(&self.cloudwatch.history) {
            need(
                (Duration::from_secs(7200)..=Duration::from_secs(15 * 86_400)).contains(&d),
                format!(
                    "cloudwatch.history: {} must be between 2h and 15d (CloudWatch keeps \
                     one-minute data 15 days)",
                    self.cloudwatch.history
                ),
            );
        }
        for (i, slot) in self.slots.iter().enumerate() {
            need(
                self.slots[..i].iter().all(|o| o.name != slot.name),
                format!("slots[{i}].name: {:?} is defined twice", slot.name),
            );
        }
        for (i, node) in self.envoy.nodes.iter().enumerate() {
            if let Err(e) = parse_duration(&node.ack_latency) {
                need(false, format!("envoy.nodes[{i}].ack_latency: {e}"));
            }
        }
        for (i, c) in self.cdc.consumers.iter().enumerate() {
            need(
                self.slots
                    .iter()
                    .any(|s| s.name == c.slot && s.slot_type == SlotType::Logical),
                format!(
                    "cdc.consumers[{i}].slot: {:?} is not a logical slot under [[slots]]",
                    c.slot
                ),
            );
        }
        for (i, f) in self.faults.iter().enumerate() {
            let at = format!("faults[{i}]");
            match (&f.at, &f.step) {
                (Some(a), None) => {
                    if let Err(e) = parse_duration(a) {
                        need(false, format!("{at}.at: {e}"));
                    }
                }
                (None, Some(s)) => need(!s.is_empty(), format!("{at}.step: expected a step name")),
                _ => need(
                    false,
                    format!(
                        "{at}: expected exactly one of `at` (a duration from the start) or `step` (a \
                     step name)"
                    ),
                ),
            }
            if let Some(Err(e)) = f.lasts.as_deref().map(parse_duration) {
                need(false, format!("{at}.for: {e}"));
            }
            let target = f.target.as_deref();
            match f.kind {
                FaultKind::StaleLogicalSlot => need(
                    self.slots.iter().any(|s| {
                        Some(s.name.as_str()) == target && s.slot_type == SlotType::Logical
                    }),
                    format!(
                        "{at}.target: stale-logical-slot needs the name of a logical slot under [[slots]]"
                    ),
                ),
                FaultKind::TerminalClusterState => need(
                    target.is_some_and(|t| crate::rds::TERMINAL_CLUSTER_STATES.contains(&t)),
                    format!(
                        "{at}.target: terminal-cluster-state needs one of {}",
                        crate::rds::TERMINAL_CLUSTER_STATES.join(", ")
                    ),
                ),
                FaultKind::ReplicaSlowAtPeak => need(
                    f.value.is_some_and(|v| v > 0.0 && v < 1.0),
                    format!(
                        "{at}.value: replica-slow-at-peak needs a replay-rate factor in (0, 1)"
                    ),
                ),
                FaultKind::CloudwatchDelay => need(
                    f.value.is_some_and(|v| v >= 0.0),
                    format!("{at}.value: cloudwatch-delay needs the extra delay in seconds (>= 0)"),
                ),
                FaultKind::EnvoyNack | FaultKind::EnvoyNodeDisconnect => need(
                    target.is_none_or(|t| self.envoy_nodes().iter().any(|n| n.id == t)),
                    format!(
                        "{at}.target: {:?} is not an Envoy node",
                        target.unwrap_or("")
                    ),
                ),
                FaultKind::DataDivergence => need(
                    target.is_some_and(|t| self.source.tables.iter().any(|x| x.name == t))
                        && f.value.is_some_and(|v| v >= 1.0 && v.fract() == 0.0),
                    format!(
                        "{at}: data-divergence needs target = a table under source.tables and value = a row key (integer >= 1)"
                    ),
                ),
                FaultKind::EndpointRefuses => need(
                    target.is_some_and(valid_id),
                    format!(
                        "{at}.target: endpoint-refuses needs the RDS instance or Aurora cluster id whose endpoint refuses connections"
                    ),
                ),
                FaultKind::TargetQueryError => need(
                    target.is_some_and(|t| self.source.tables.iter().any(|x| x.name == t)),
                    format!(
                        "{at}.target: target-query-error needs a table under source.tables (its statements fail on the target)"
                    ),
                ),
                FaultKind::ReverseLag => need(
                    f.value.is_some_and(|v| v.is_finite() && v > 0.0),
                    format!(
                        "{at}.value: reverse-lag needs the apply rate in bytes per second of the \
                         cluster's WAL (> 0)"
                    ),
                ),
                FaultKind::TargetDdl => {
                    need(
                        target.is_none_or(valid_id),
                        format!(
                            "{at}.target: {:?} is not an Aurora cluster identifier (1-63 \
                             letters, digits, '-'); leave it out for every writable cluster",
                            target.unwrap_or("")
                        ),
                    );
                    need(
                        f.lasts.is_none(),
                        format!(
                            "{at}.for: target-ddl is permanent (a DDL is not undone); drop `for`"
                        ),
                    );
                    need(
                        f.value.is_none_or(|v| v == 0.0 || v == 1.0),
                        format!(
                            "{at}.value: target-ddl takes 1 (a manual ALTER the schema freeze \
                             does not stop) or 0 / nothing (a migration of the team's tool, which \
                             waits while frozen)"
                        ),
                    );
                }
                FaultKind::SourceDdl => {
                    need(
                        target.is_none(),
                        format!(
                            "{at}.target: source-ddl alters the source's hot table; drop `target`"
                        ),
                    );
                    need(
                        f.lasts.is_none(),
                        format!(
                            "{at}.for: source-ddl is permanent (a DDL is not undone); drop `for`"
                        ),
                    );
                    need(
                        f.value.is_none_or(|v| v == 0.0 || v == 1.0),
                        format!(
                            "{at}.value: source-ddl takes 1 (a manual ALTER the schema freeze does \
                             not stop) or 0 / nothing (a migration of the team's tool, which waits \
                             while frozen)"
                        ),
                    );
                }
                FaultKind::ExtensionUnsupported
                | FaultKind::ParameterUnsupported
                | FaultKind::UnloggedTable => need(
                    target.is_some(),
                    format!(
                        "{at}.target: {:?} needs a target (extension, parameter or table name)",
                        f.kind
                    ),
                ),
                _ => {}
            }
        }
        let mut ids = BTreeSet::from([self.source.id.as_str()]);
        for (i, a) in self.account.iter().enumerate() {
            need(
                valid_id(&a.id),
                format!(
                    "account[{i}].id: {:?} is not an RDS identifier (1-63 letters, digits, '-')",
                    a.id
                ),
            );
            need(
                ids.insert(a.id.as_str()),
                format!(
                    "account[{i}].id: {:?} is already an instance of the account (the source or \
                     an earlier [[account]]); ids are unique in an account",
                    a.id
                ),
            );
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// The Envoy nodes, with the default single node when none are configured.
    pub fn envoy_nodes(&self) -> Vec<EnvoyNode> {
        if self.envoy.nodes.is_empty() {
            vec![EnvoyNode {
                id: "envoy-1".into(),
                ack_latency: ack(),
            }]
        } else {
            self.envoy.nodes.clone()
        }
    }
}

/// The key path (`faults[1].kind`, `source.sessions`) of the key on the line holding byte
/// `offset`, from the table headers above it: the toml crate reports a line, operators think
/// in key paths.
fn key_path_at(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_string())
        .filter(|k| !k.is_empty() && !k.starts_with('['));
    let mut header: Option<String> = None;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for l in before[..line_start].lines() {
        let l = l.trim();
        if let Some(name) = l
            .strip_prefix("[[")
            .and_then(|r| r.split_once("]]"))
            .map(|(n, _)| n.trim())
        {
            let n = counts.entry(name.to_string()).or_insert(0);
            header = Some(format!("{name}[{n}]"));
            *n += 1;
        } else if let Some(name) = l
            .strip_prefix('[')
            .and_then(|r| r.split_once(']'))
            .map(|(n, _)| n.trim())
        {
            header = Some(name.to_string());
        }
    }
    match (header, key) {
        (Some(h), Some(k)) => Some(format!("{h}.{k}")),
        (None, Some(k)) => Some(k),
        (Some(h), None) => Some(h),
        (None, None) => None,
    }
}

/// Names of the built-in scenarios.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTINS.iter().map(|(n, _)| *n).collect()
}

/// 2026-01-01T00:00:00Z.
pub const DEFAULT_START_MS: Millis = 1_767_225_600_000;

/// Parse a duration the scenario already validated.
pub fn dur_ms(text: &str) -> Millis {
    parse_duration(text).map_or(0, |d| d.as_millis() as Millis)
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 63
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && id.starts_with(|c: char| c.is_ascii_alphabetic())
}

/// `15.4` → (15, 4).
pub fn version(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn datetime_ms(dt: &toml::value::Datetime) -> Option<Millis> {
    let date = dt.date?;
    let time = dt.time?;
    let offset_min = match dt.offset? {
        toml::value::Offset::Z => 0,
        toml::value::Offset::Custom { minutes } => i64::from(minutes),
    };
    let days = days_from_civil(i64::from(date.year), date.month.into(), date.day.into());
    let secs = days * 86_400
        + i64::from(time.hour) * 3600
        + i64::from(time.minute) * 60
        + i64::from(time.second.unwrap_or(0))
        - offset_min * 60;
    Some(secs * 1000)
}

/// Howard Hinnant's days-from-civil.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
