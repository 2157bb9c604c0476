//! Area `pg`: what the migration needs to know from and do to PostgreSQL itself — extensions,
//! settings, unlogged tables, replication slots and LSNs, application backends and the fence
//! (block logins, terminate, prove nobody is left), sequences.
//!
//! | file      | what                                  |
//! |-----------|---------------------------------------|
//! | `mod.rs`  | the [`Pg`] trait and its row types    |
//! | `rhai.rs` | the Rhai module `pg`                  |
//! | `sim.rs`  | [`Pg`] over the simulator             |
//! | `live.rs` | [`Pg`] over real servers (lab, aws)   |
//!
//! `db` is always an RDS instance id or an Aurora cluster id (its writer). LSNs are returned
//! both as text (`16/B374D848`) and as a byte position (`*_bytes`, INT) for arithmetic; the one
//! text form and its parsing are [`format_lsn`] and [`parse_lsn`], for every world and area.
//!
//! Every world answers the same way: lists in the order the trait documents; an unknown `db`
//! is `NotFound`; `current_lsn` on a replica and `replay_lsn` on a primary are `Conflict`.

pub mod live;
pub mod rhai;
pub mod schema_copy;
pub mod sim;

use godwit_engine::Call;
use godwit_engine::{ErrorKind, PrimitiveError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Extension {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Setting {
    pub name: String,
    pub setting: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotInfo {
    pub slot_name: String,
    /// `logical` or `physical`.
    pub slot_type: String,
    pub plugin: Option<String>,
    pub database: Option<String>,
    pub active: bool,
    pub restart_lsn: String,
    pub confirmed_flush_lsn: Option<String>,
    /// `reserved` (within max_wal_size), `extended` (beyond it, kept for the slot).
    pub wal_status: String,
    /// WAL held back: logical from `confirmed_flush_lsn`, physical from `restart_lsn`.
    pub lag_bytes: i64,
    /// Epoch seconds since when nobody reads the slot, `()` while active.
    pub inactive_since: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lsn {
    pub lsn: String,
    pub lsn_bytes: i64,
}

impl Lsn {
    /// The LSN at byte position `bytes`, in both forms.
    pub fn at(bytes: u64) -> Lsn {
        Lsn {
            lsn: format_lsn(bytes),
            lsn_bytes: bytes as i64,
        }
    }
}

/// An LSN's text as PostgreSQL prints it (`%X/%X`): `16/B374D848`, `0/1A2B3C`.
pub fn format_lsn(bytes: u64) -> String {
    format!("{:X}/{:X}", bytes >> 32, bytes & 0xFFFF_FFFF)
}

/// The byte position of an LSN's text (`16/B374D848`, any case, leading zeros allowed);
/// `None` unless it is two hex numbers around a `/`, the second of at most 32 bits.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.trim().split_once('/')?;
    let hex = |s: &str| {
        (!s.is_empty() && s.len() <= 8 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u64::from_str_radix(s, 16).ok())
            .flatten()
    };
    Some((hex(hi)? << 32) | hex(lo)?)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backend {
    pub pid: i64,
    pub role: String,
    /// `active`, `idle`, `idle in transaction`.
    pub state: String,
    /// Epoch seconds.
    pub backend_start: i64,
    pub xact_start: Option<i64>,
    /// `pg_terminate_backend` was called and the backend has not exited yet.
    pub terminating: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sequence {
    pub name: String,
    pub last_value: i64,
}

/// A table's content as a hash (the simulator's stand-in for a per-table checksum).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableHash {
    pub table: String,
    pub rows: i64,
    pub hash: String,
}

/// A table's size as the server's statistics estimate it (`pg_stat_user_tables.n_live_tup`,
/// `pg_table_size`): cheap to read on any size of database, unlike a count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableStats {
    pub table: String,
    /// Estimated live rows.
    pub rows: i64,
    /// On-disk size, TOAST included, indexes not.
    pub bytes: i64,
}

/// Whether, and how, this world's godwit reaches a database: the evidence ladder starts here
/// (with access, decisions use exact SQL facts; without, AWS APIs and CloudWatch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Access {
    pub available: bool,
    /// How godwit logs in (`IAM user godwit over TLS`), or why it cannot.
    pub how: String,
    /// godwit's own security group: a quarantine must admit it on the database port, or godwit
    /// cannot reach the fenced source (`()` without access).
    pub security_group: Option<String>,
}

/// One walsender on a primary as the primary reports it (`pg_stat_replication` with the slot
/// it uses from `pg_replication_slots`): a streaming replica, seen from its source. Positions
/// are byte LSNs in the source's own WAL, so they compare with the source's LSNs — which a
/// replica's own functions do not offer on Aurora.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicationConnection {
    pub pid: i64,
    pub application_name: String,
    pub client_addr: Option<String>,
    /// `streaming`, `catchup`, `startup`, `backup`, `stopping`.
    pub state: String,
    pub slot_name: Option<String>,
    pub sent_lsn_bytes: Option<i64>,
    pub write_lsn_bytes: Option<i64>,
    pub flush_lsn_bytes: Option<i64>,
    /// What the replica has replayed (it reports it; `()` until it has).
    pub replay_lsn_bytes: Option<i64>,
    pub replay_lsn: Option<String>,
}

/// The last checkpoint of a server (`pg_control_checkpoint()`). After a clean restart it is the
/// shutdown checkpoint (`shutdown`: redo = checkpoint): every commit made before the restart
/// precedes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub checkpoint_lsn: String,
    pub checkpoint_lsn_bytes: i64,
    pub redo_lsn_bytes: i64,
    /// Epoch seconds.
    pub time: i64,
    pub shutdown: bool,
}

/// A logical replication subscription as its subscriber reports it (`pg_subscription` with
/// `pg_stat_subscription` and, from PostgreSQL 15, `pg_stat_subscription_stats`). Positions are
/// byte LSNs in the **publisher's** WAL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub name: String,
    pub publications: Vec<String>,
    /// The publisher's slot it streams from (`()` once detached for a drop).
    pub slot_name: Option<String>,
    pub enabled: bool,
    /// The apply worker's pid; `()` while it does not run (disabled, or restarting after an
    /// error: PostgreSQL retries every `wal_retrieve_retry_interval`).
    pub worker_pid: Option<i64>,
    /// Last publisher position received (`()` before the first message).
    pub received_lsn_bytes: Option<i64>,
    /// Last position reported back to the publisher as applied and flushed.
    pub latest_end_lsn_bytes: Option<i64>,
    /// Errors of its workers since the subscription was created — the apply worker's and the
    /// table syncs' of an initial copy (`apply_error_count + sync_error_count`): a conflict, a
    /// missing table or column after a DDL on the publisher (a broken connection keeps it at 0).
    pub apply_errors: i64,
}

/// What [`Pg::copy_schema`] did: the logical path's target made ready for the copy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaCopy {
    pub from: String,
    pub to: String,
    /// The source's login roles created on the target, for IAM sign-in (`rds_iam` on AWS):
    /// no password is read or set.
    pub roles: Vec<String>,
    /// The tables the target now has, sorted.
    pub tables: Vec<String>,
    /// Sequences created (each at its start: a schema-only copy holds no sequence values).
    pub sequences: i64,
    /// How it was copied (the tools and the sign-in), for the journal.
    pub how: String,
}

/// One table of a subscription (`pg_subscription_rel`) and its initial copy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionTable {
    pub table: String,
    /// `init`, `copying`, `copied`, `syncing` or `ready` (`srsubstate` i, d, f, s, r): only a
    /// `ready` table is streamed by the subscription's apply worker alone.
    pub state: String,
    /// Bytes its copy read so far (`pg_stat_progress_copy.bytes_processed` while it copies,
    /// PostgreSQL 14+); `()` when the server does not say.
    pub copied_bytes: Option<i64>,
    /// Why its copy fails, when the world knows (the simulator; a server reports failed table
    /// syncs only as a count, [`Subscription::apply_errors`]).
    pub error: Option<String>,
}

/// The state names of `pg_subscription_rel.srsubstate`.
pub fn subscription_table_state(code: &str) -> &'static str {
    match code {
        "i" => "init",
        "d" => "copying",
        "f" => "copied",
        "s" => "syncing",
        "r" => "ready",
        _ => "unknown",
    }
}

/// What [`Pg::subscribe`] creates: a subscription on the subscriber that streams publication
/// `publication` of `from` through `from`'s existing logical slot `slot`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscribeTo {
    /// The publisher: an RDS instance id or an Aurora cluster id (its writer).
    pub from: String,
    pub publication: String,
    pub slot: String,
    /// Copy the published tables first (`false`: the subscriber already holds the same data,
    /// and streaming starts at the slot's position).
    pub copy_data: bool,
}

/// A table logical replication cannot carry updates and deletes of: no primary key and no
/// replica identity (`REPLICA IDENTITY DEFAULT` without a key, or `NOTHING`). Published, such
/// a table refuses its own `UPDATE`s and `DELETE`s on the publisher.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnreplicableTable {
    pub table: String,
    /// `no primary key` or `replica identity nothing`.
    pub why: String,
}

/// Large objects in one database (`pg_largeobject_metadata`): logical replication does not
/// carry them (PostgreSQL's "Restrictions" of logical replication), so the logical path must
/// refuse or move them first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LargeObjects {
    pub database: String,
    pub count: i64,
}

/// A table's shape: what logical replication needs to be the same on both sides (it carries
/// rows, not DDL: a column added on one side only breaks it or loses data).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableDefinition {
    /// `schema.name` (`database:schema.name` outside the application database).
    pub table: String,
    /// Its columns in order, `name type` joined by `, ` (`id bigint, note text`).
    pub columns: String,
}

pub trait Pg: Send + Sync {
    /// Whether godwit can reach `db` with SQL in this world, how, and from which security group.
    fn access(&self, cx: &Call<'_>, db: &str) -> Result<Access, PrimitiveError>;
    /// The walsenders of a primary with their positions and slots, sorted by pid.
    fn replication_connections(
        &self,
        cx: &Call<'_>,
        db: &str,
    ) -> Result<Vec<ReplicationConnection>, PrimitiveError>;
    /// The server's last checkpoint (`pg_control_checkpoint()`).
    fn last_checkpoint(&self, cx: &Call<'_>, db: &str) -> Result<Checkpoint, PrimitiveError>;
    /// Per-table content hashes, sorted by table: equal hashes mean equal contents.
    fn table_hashes(&self, cx: &Call<'_>, db: &str) -> Result<Vec<TableHash>, PrimitiveError>;
    /// Sorted by name.
    fn installed_extensions(
        &self,
        cx: &Call<'_>,
        db: &str,
    ) -> Result<Vec<Extension>, PrimitiveError>;
    /// `names` empty: every setting godwit looks at. Sorted by name.
    fn settings(
        &self,
        cx: &Call<'_>,
        db: &str,
        names: &[String],
    ) -> Result<Vec<Setting>, PrimitiveError>;
    /// Every user table with its estimated rows and size, sorted by table.
    fn table_stats(&self, cx: &Call<'_>, db: &str) -> Result<Vec<TableStats>, PrimitiveError>;
    /// Sorted.
    fn unlogged_tables(&self, cx: &Call<'_>, db: &str) -> Result<Vec<String>, PrimitiveError>;
    /// Sorted by slot name.
    fn replication_slots(&self, cx: &Call<'_>, db: &str) -> Result<Vec<SlotInfo>, PrimitiveError>;
    /// `pg_current_wal_lsn()` on a primary; `Conflict` on a replica (in recovery).
    fn current_lsn(&self, cx: &Call<'_>, db: &str) -> Result<Lsn, PrimitiveError>;
    /// A position past every commit acknowledged so far, asynchronous ones included (an
    /// acknowledged commit with `synchronous_commit = off` may not be written yet, so
    /// `pg_current_wal_lsn()` can lie before it): godwit commits a transaction of its own
    /// holding an empty logical message (`godwit`/`settled`) and waits for its flush, which
    /// writes the WAL in order up to it, then reads the write position. No wait for the WAL
    /// writer; `Conflict` on a replica.
    fn settled_lsn(&self, cx: &Call<'_>, db: &str) -> Result<Lsn, PrimitiveError>;
    /// Every role that can log in, but godwit's own login and the platform's (`rdsadmin`, …):
    /// what a database fence blocks. Sorted.
    fn login_roles(&self, cx: &Call<'_>, db: &str) -> Result<Vec<String>, PrimitiveError>;
    /// The roles of [`Pg::login_roles`] that are not members of `rds_iam` (directly or through
    /// other roles; all of them where the server has no such role): they sign in with a
    /// password, which a logical copy does not carry. Sorted.
    fn roles_without_iam(&self, cx: &Call<'_>, db: &str) -> Result<Vec<String>, PrimitiveError>;
    /// `pg_last_wal_replay_lsn()` on a replica; `Conflict` on a primary. Aurora refuses the
    /// `pg_last_wal_*` family (`FeatureNotSupported`, [`aurora_refuses`]): ask the source
    /// ([`Pg::replication_connections`]) where an Aurora replica stands.
    fn replay_lsn(&self, cx: &Call<'_>, db: &str) -> Result<Lsn, PrimitiveError>;
    /// Backends of application roles (not rdsadmin, not replication), by pid.
    fn application_backends(&self, cx: &Call<'_>, db: &str)
    -> Result<Vec<Backend>, PrimitiveError>;
    /// `ALTER ROLE .. NOLOGIN` (or `CONNECTION LIMIT 0`): new logins fail; returns every role
    /// now blocked (by this call or an earlier one), sorted. `NotFound` for an unknown role.
    fn block_logins(
        &self,
        cx: &Call<'_>,
        db: &str,
        roles: &[String],
    ) -> Result<Vec<String>, PrimitiveError>;
    /// Logins allowed again; returns the roles still blocked, sorted.
    fn unblock_logins(
        &self,
        cx: &Call<'_>,
        db: &str,
        roles: &[String],
    ) -> Result<Vec<String>, PrimitiveError>;
    /// `pg_terminate_backend(pid)` for each; returns the pids signalled. Returns before the
    /// backends exit: poll `application_backends` until empty.
    fn terminate_backends(
        &self,
        cx: &Call<'_>,
        db: &str,
        pids: &[i64],
    ) -> Result<Vec<i64>, PrimitiveError>;
    /// Sorted by name.
    fn sequences(&self, cx: &Call<'_>, db: &str) -> Result<Vec<Sequence>, PrimitiveError>;
    /// Set each of `to`'s sequences (names as [`Pg::sequences`] reports them) to at least its
    /// `last_value` (`setval(.., greatest(own, given), true)`: the next value is past it; a
    /// sequence already further is left alone). Returns every sequence after, sorted; a name
    /// the database lacks is `NotFound`, before anything is set.
    fn advance_sequences(
        &self,
        cx: &Call<'_>,
        db: &str,
        to: &[Sequence],
    ) -> Result<Vec<Sequence>, PrimitiveError>;
    /// Every user table with its columns, sorted by table: compared across two databases, the
    /// schema difference logical replication cannot carry.
    fn table_definitions(
        &self,
        cx: &Call<'_>,
        db: &str,
    ) -> Result<Vec<TableDefinition>, PrimitiveError>;
    /// The databases holding large objects, with how many; sorted by database, none when
    /// there are none.
    fn large_objects(&self, cx: &Call<'_>, db: &str) -> Result<Vec<LargeObjects>, PrimitiveError>;
    /// User tables logical replication cannot carry updates of, sorted by table.
    fn unreplicable_tables(
        &self,
        cx: &Call<'_>,
        db: &str,
    ) -> Result<Vec<UnreplicableTable>, PrimitiveError>;
    /// `CREATE PUBLICATION name FOR ALL TABLES` in `db`'s application database; idempotent.
    /// Returns the tables it publishes, sorted.
    fn create_publication(
        &self,
        cx: &Call<'_>,
        db: &str,
        name: &str,
    ) -> Result<Vec<String>, PrimitiveError>;
    /// Drop publication `name`; whether it existed.
    fn drop_publication(&self, cx: &Call<'_>, db: &str, name: &str)
    -> Result<bool, PrimitiveError>;
    /// A logical slot `name` with output plugin `pgoutput` in the application database, and
    /// the position streaming from it starts at (its `confirmed_flush_lsn`); idempotent (an
    /// existing slot answers its position). `Conflict` on a replica; on Aurora without
    /// `rds.logical_replication=1` in force (the simulator and AWS refuse it alike).
    fn create_logical_slot(
        &self,
        cx: &Call<'_>,
        db: &str,
        name: &str,
    ) -> Result<Lsn, PrimitiveError>;
    /// Drop replication slot `name`; whether it existed. `Conflict` while a reader uses it.
    fn drop_replication_slot(
        &self,
        cx: &Call<'_>,
        db: &str,
        name: &str,
    ) -> Result<bool, PrimitiveError>;
    /// `CREATE SUBSCRIPTION name` on `db` (the subscriber) streaming `to.publication` of
    /// `to.from` through its existing slot `to.slot`, connecting the way this world connects
    /// a server to another (the lab: loopback; aws: godwit's IAM login, a token refreshed with
    /// [`Pg::refresh_subscription`]). Idempotent: an existing subscription of that name is
    /// returned. The subscriber must reach the publisher on its port.
    fn subscribe(
        &self,
        cx: &Call<'_>,
        db: &str,
        name: &str,
        to: &SubscribeTo,
    ) -> Result<Subscription, PrimitiveError>;
    /// Renew the credentials subscription `name` connects with (`ALTER SUBSCRIPTION ..
    /// CONNECTION`) to its publisher `from`: an IAM token admits new connections for 15
    /// minutes, and an apply worker that reconnects after that needs a fresh one. Returns the
    /// subscription; `NotFound` without one.
    fn refresh_subscription(
        &self,
        cx: &Call<'_>,
        db: &str,
        name: &str,
        from: &str,
    ) -> Result<Subscription, PrimitiveError>;
    /// `ALTER SUBSCRIPTION name SET (synchronous_commit = mode)` on `db`: how its apply worker
    /// commits what it applies ([`COMMIT_MODES`]). PostgreSQL's default for a subscription is
    /// `off`: the worker's commits wait for no flush, and it reports a change applied (the
    /// publisher's slot confirms it) only once its WAL writer flushed it — a few hundred ms
    /// later. Returns the setting before and after; `NotFound` without the subscription,
    /// `Invalid` for another mode (nothing is changed then).
    fn set_subscription_commit(
        &self,
        cx: &Call<'_>,
        db: &str,
        name: &str,
        mode: &str,
    ) -> Result<SubscriptionCommit, PrimitiveError>;
    /// Copy the roles and the schema of `from`'s application database into `to`, a cluster
    /// created empty: the source's login roles first (for IAM sign-in: no passwords), then
    /// every schema object but the data (`pg_dump --schema-only` of `to`'s major, restored
    /// into `to`). On a new Aurora cluster godwit's role does not exist yet; the master user's
    /// sign-in (Secrets Manager) is not implemented in the aws world, which refuses and says
    /// so. Idempotent: a target that already has the
    /// same tables is left as it is; one with other tables is refused (`Conflict`).
    fn copy_schema(
        &self,
        cx: &Call<'_>,
        from: &str,
        to: &str,
    ) -> Result<SchemaCopy, PrimitiveError>;
    /// The tables of subscription `name` on `db` and their initial copy, sorted by table;
    /// `NotFound` without the subscription.
    fn subscription_tables(
        &self,
        cx: &Call<'_>,
        db: &str,
        name: &str,
    ) -> Result<Vec<SubscriptionTable>, PrimitiveError>;
    /// The subscriptions of `db`'s application database, sorted by name.
    fn subscriptions(&self, cx: &Call<'_>, db: &str) -> Result<Vec<Subscription>, PrimitiveError>;
    /// Stop and drop subscription `name`, leaving the publisher's slot (drop it there with
    /// [`Pg::drop_replication_slot`]: a drop never waits on an unreachable publisher). Whether
    /// it existed.
    fn drop_subscription(
        &self,
        cx: &Call<'_>,
        db: &str,
        name: &str,
    ) -> Result<bool, PrimitiveError>;
    /// [`Pg::drop_subscription`], then the slots its table syncs left on `publisher`. A
    /// subscription dropped detached from its slot drops them itself only when the subscriber
    /// still reaches the publisher (on AWS its connection string's IAM token lasts 15
    /// minutes); otherwise they stay and hold the publisher's WAL ("it (and any related table
    /// synchronization slots) should then be dropped manually; otherwise it/they will continue
    /// to reserve WAL and might eventually cause the disk to fill up", DROP SUBSCRIPTION).
    /// godwit drops them from its own connection. The publisher's main slot stays the
    /// caller's to drop. Worlds without table-sync slots (the simulator) drop the subscription
    /// only.
    fn drop_subscription_from(
        &self,
        cx: &Call<'_>,
        db: &str,
        name: &str,
        publisher: &str,
    ) -> Result<SubscriptionDropped, PrimitiveError>;
}

/// What [`Pg::drop_subscription_from`] did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionDropped {
    /// Whether the subscription existed.
    pub dropped: bool,
    /// Table-sync slots dropped on the publisher (`pg_<subid>_sync_<relid>_<sysid>`).
    pub sync_slots_dropped: Vec<String>,
}

/// The values of a subscription's `synchronous_commit` (PostgreSQL's `synchronous_commit`
/// setting, which the apply worker takes).
pub const COMMIT_MODES: &[&str] = &["off", "local", "remote_write", "remote_apply", "on"];

/// `Invalid` unless `mode` is one of [`COMMIT_MODES`]: checked before anything is changed.
pub fn check_commit_mode(op: &str, mode: &str) -> Result<(), PrimitiveError> {
    if COMMIT_MODES.contains(&mode) {
        return Ok(());
    }
    Err(PrimitiveError::new(
        "pg",
        op,
        ErrorKind::Invalid,
        format!("synchronous_commit {mode:?} is not a commit mode"),
        format!("pass one of {}", COMMIT_MODES.join(", ")),
    )
    .with_retryable(false))
}

/// What [`Pg::set_subscription_commit`] changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionCommit {
    pub name: String,
    pub before: String,
    pub after: String,
}

/// What Aurora answers godwit's WAL position functions (`pg_last_wal_replay_lsn()` always;
/// `pg_current_wal_lsn()` and the other WAL control functions without logical replication):
/// `FeatureNotSupported` / `ObjectNotInPrerequisiteState` (public reports: pghero#168,
/// distribute_reads#46, DataDog integrations-core#20356). Not retryable: asking again does not
/// change Aurora.
pub fn aurora_refuses(op: &str, db: &str, function: &str) -> PrimitiveError {
    PrimitiveError::new(
        "pg",
        op,
        ErrorKind::Invalid,
        format!(
            "{db}: {function} is not supported on Aurora PostgreSQL (0A000 feature_not_supported)"
        ),
        "read the replica's position on the source (pg::replication_connections), where both LSNs \
         live in one WAL",
    )
    .with_retryable(false)
}

/// The walsender feeding `slot` (a replica's physical slot), if it is connected.
pub fn walsender_of<'a>(
    conns: &'a [ReplicationConnection],
    slot: &str,
) -> Option<&'a ReplicationConnection> {
    conns.iter().find(|c| c.slot_name.as_deref() == Some(slot))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn lsns_read_and_print_as_postgresql_does() {
        assert_eq!(format_lsn(0x16_B374_D848), "16/B374D848");
        assert_eq!(format_lsn(0x1A_2B3C), "0/1A2B3C", "no zero padding: %X/%X");
        assert_eq!(format_lsn(0), "0/0");
        assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(parse_lsn("0/0001a2b3"), Some(0x1_A2B3));
        for bad in ["", "16", "16/", "/1", "x/1", "1/123456789", "1/-1", "1/ 2"] {
            assert_eq!(parse_lsn(bad), None, "{bad:?}");
        }
        assert_eq!(Lsn::at(0x1_0000_0000).lsn, "1/0");
    }

    proptest! {
        #[test]
        fn an_lsn_survives_its_text(bytes in any::<u64>()) {
            prop_assert_eq!(parse_lsn(&format_lsn(bytes)), Some(bytes));
        }
    }
}
