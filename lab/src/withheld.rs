//! A lab that withholds database access from the runbook (`db_access = false`,
//! `godwit lab up --no-db-access`): the `pg` and `validate` areas of a credential-less world.
//!
//! As in the aws world without `db_user` and the simulator's `db_access = false`:
//! `pg::access` answers `available: false` and says why, `validate::available` likewise, and
//! every other call is refused — `Invalid`, not retryable (asking again does not grant access)
//! — before any connection is opened: these areas hold no pool at all. What RDS does in the
//! database itself goes on (the sampler's CloudWatch series, the heartbeat, the areas' SQL as
//! `rdsadmin`: [`crate::areas::RdsConnector`]).

use godwit_engine::{Call, ErrorKind, PrimitiveError};
use godwit_stdlib::pg::{
    Access, Backend, Checkpoint, Extension, Lsn, Pg, ReplicationConnection, Sequence, Setting,
    SlotInfo, SubscribeTo, Subscription, TableDefinition, TableHash, TableStats, UnreplicableTable,
};
use godwit_stdlib::validate::{
    AuditOptions, Availability, CompareOptions, PrepassOptions, PrepassReport, QueryCheckOptions,
    QueryReport, Report, SampleOptions, SampleReport, Validate,
};

/// Why the runbook has no SQL in this lab, as `pg::access` and `validate::available` say it.
pub const WHY: &str = "this lab withholds database access from the runbook (db_access = false: \
     credential-less); its CloudWatch series and RDS's own work go on";

/// The `pg` and `validate` areas of a lab without database access.
pub struct Withheld;

/// The refusal of `area::op` on `db`.
pub fn refusal(area: &str, op: &str, db: &str) -> PrimitiveError {
    PrimitiveError::new(
        area,
        op,
        ErrorKind::Invalid,
        format!(
            "{area}::{op} on {db} needs database access, and this world has none: the lab \
             withholds it from the runbook (db_access = false, credential-less); no connection \
             was opened"
        ),
        "decide from AWS APIs and CloudWatch (the runbook's credential-less evidence), or start \
         the lab with database access (`godwit lab up` without --no-db-access)",
    )
    .with_retryable(false)
}

const P: &str = "pg";
const V: &str = "validate";

impl Pg for Withheld {
    fn access(&self, _cx: &Call<'_>, _db: &str) -> Result<Access, PrimitiveError> {
        Ok(Access {
            available: false,
            how: WHY.into(),
            security_group: None,
        })
    }

    fn replication_connections(
        &self,
        _cx: &Call<'_>,
        db: &str,
    ) -> Result<Vec<ReplicationConnection>, PrimitiveError> {
        Err(refusal(P, "replication_connections", db))
    }

    fn last_checkpoint(&self, _cx: &Call<'_>, db: &str) -> Result<Checkpoint, PrimitiveError> {
        Err(refusal(P, "last_checkpoint", db))
    }

    fn table_hashes(&self, _cx: &Call<'_>, db: &str) -> Result<Vec<TableHash>, PrimitiveError> {
        Err(refusal(P, "table_hashes", db))
    }

    fn installed_extensions(
        &self,
        _cx: &Call<'_>,
        db: &str,
    ) -> Result<Vec<Extension>, PrimitiveError> {
        Err(refusal(P, "installed_extensions", db))
    }

    fn settings(
        &self,
        _cx: &Call<'_>,
        db: &str,
        _names: &[String],
    ) -> Result<Vec<Setting>, PrimitiveError> {
        Err(refusal(P, "settings", db))
    }

    fn table_stats(&self, _cx: &Call<'_>, db: &str) -> Result<Vec<TableStats>, PrimitiveError> {
        Err(refusal(P, "table_stats", db))
    }

    fn large_objects(
        &self,
        _cx: &Call<'_>,
        db: &str,
    ) -> Result<Vec<godwit_stdlib::pg::LargeObjects>, PrimitiveError> {
        Err(refusal(P, "large_objects", db))
    }

    fn unlogged_tables(&self, _cx: &Call<'_>, db: &str) -> Result<Vec<String>, PrimitiveError> {
        Err(refusal(P, "unlogged_tables", db))
    }

    fn replication_slots(&self, _cx: &Call<'_>, db: &str) -> Result<Vec<SlotInfo>, PrimitiveError> {
        Err(refusal(P, "replication_slots", db))
    }

    fn current_lsn(&self, _cx: &Call<'_>, db: &str) -> Result<Lsn, PrimitiveError> {
        Err(refusal(P, "current_lsn", db))
    }

    fn replay_lsn(&self, _cx: &Call<'_>, db: &str) -> Result<Lsn, PrimitiveError> {
        Err(refusal(P, "replay_lsn", db))
    }

    fn application_backends(
        &self,
        _cx: &Call<'_>,
        db: &str,
    ) -> Result<Vec<Backend>, PrimitiveError> {
        Err(refusal(P, "application_backends", db))
    }

    fn block_logins(
        &self,
        _cx: &Call<'_>,
        db: &str,
        _roles: &[String],
    ) -> Result<Vec<String>, PrimitiveError> {
        Err(refusal(P, "block_logins", db))
    }

    fn unblock_logins(
        &self,
        _cx: &Call<'_>,
        db: &str,
        _roles: &[String],
    ) -> Result<Vec<String>, PrimitiveError> {
        Err(refusal(P, "unblock_logins", db))
    }

    fn terminate_backends(
        &self,
        _cx: &Call<'_>,
        db: &str,
        _pids: &[i64],
    ) -> Result<Vec<i64>, PrimitiveError> {
        Err(refusal(P, "terminate_backends", db))
    }

    fn sequences(&self, _cx: &Call<'_>, db: &str) -> Result<Vec<Sequence>, PrimitiveError> {
        Err(refusal(P, "sequences", db))
    }

    fn advance_sequences(
        &self,
        _cx: &Call<'_>,
        db: &str,
        _to: &[Sequence],
    ) -> Result<Vec<Sequence>, PrimitiveError> {
        Err(refusal(P, "advance_sequences", db))
    }

    fn settled_lsn(&self, _cx: &Call<'_>, db: &str) -> Result<Lsn, PrimitiveError> {
        Err(refusal(P, "settled_lsn", db))
    }

    fn login_roles(&self, _cx: &Call<'_>, db: &str) -> Result<Vec<String>, PrimitiveError> {
        Err(refusal(P, "login_roles", db))
    }

    fn roles_without_iam(&self, _cx: &Call<'_>, db: &str) -> Result<Vec<String>, PrimitiveError> {
        Err(refusal(P, "roles_without_iam", db))
    }

    fn table_definitions(
        &self,
        _cx: &Call<'_>,
        db: &str,
    ) -> Result<Vec<TableDefinition>, PrimitiveError> {
        Err(refusal(P, "table_definitions", db))
    }

    fn unreplicable_tables(
        &self,
        _cx: &Call<'_>,
        db: &str,
    ) -> Result<Vec<UnreplicableTable>, PrimitiveError> {
        Err(refusal(P, "unreplicable_tables", db))
    }

    fn create_publication(
        &self,
        _cx: &Call<'_>,
        db: &str,
        _name: &str,
    ) -> Result<Vec<String>, PrimitiveError> {
        Err(refusal(P, "create_publication", db))
    }

    fn drop_publication(
        &self,
        _cx: &Call<'_>,
        db: &str,
        _name: &str,
    ) -> Result<bool, PrimitiveError> {
        Err(refusal(P, "drop_publication", db))
    }

    fn create_logical_slot(
        &self,
        _cx: &Call<'_>,
        db: &str,
        _name: &str,
    ) -> Result<Lsn, PrimitiveError> {
        Err(refusal(P, "create_logical_slot", db))
    }

    fn drop_replication_slot(
        &self,
        _cx: &Call<'_>,
        db: &str,
        _name: &str,
    ) -> Result<bool, PrimitiveError> {
        Err(refusal(P, "drop_replication_slot", db))
    }

    fn subscribe(
        &self,
        _cx: &Call<'_>,
        db: &str,
        _name: &str,
        _to: &SubscribeTo,
    ) -> Result<Subscription, PrimitiveError> {
        Err(refusal(P, "subscribe", db))
    }

    fn refresh_subscription(
        &self,
        _cx: &Call<'_>,
        db: &str,
        _name: &str,
        _from: &str,
    ) -> Result<Subscription, PrimitiveError> {
        Err(refusal(P, "refresh_subscription", db))
    }

    fn subscriptions(&self, _cx: &Call<'_>, db: &str) -> Result<Vec<Subscription>, PrimitiveError> {
        Err(refusal(P, "subscriptions", db))
    }

    fn copy_schema(
        &self,
        _cx: &Call<'_>,
        from: &str,
        _to: &str,
    ) -> Result<godwit_stdlib::pg::SchemaCopy, PrimitiveError> {
        Err(refusal(P, "copy_schema", from))
    }

    fn subscription_tables(
        &self,
        _cx: &Call<'_>,
        db: &str,
        _name: &str,
    ) -> Result<Vec<godwit_stdlib::pg::SubscriptionTable>, PrimitiveError> {
        Err(refusal(P, "subscription_tables", db))
    }

    fn drop_subscription(
        &self,
        _cx: &Call<'_>,
        db: &str,
        _name: &str,
    ) -> Result<bool, PrimitiveError> {
        Err(refusal(P, "drop_subscription", db))
    }

    fn set_subscription_commit(
        &self,
        _cx: &Call<'_>,
        db: &str,
        _name: &str,
        _mode: &str,
    ) -> Result<godwit_stdlib::pg::SubscriptionCommit, PrimitiveError> {
        Err(refusal(P, "set_subscription_commit", db))
    }

    fn drop_subscription_from(
        &self,
        _cx: &Call<'_>,
        db: &str,
        _name: &str,
        _publisher: &str,
    ) -> Result<godwit_stdlib::pg::SubscriptionDropped, PrimitiveError> {
        Err(refusal(P, "drop_subscription_from", db))
    }
}

impl Validate for Withheld {
    /// Not refused: the question is whether the world can read contents, and the answer is no
    /// (as `validate::NoAccess` answers in the aws world without `db_user`).
    fn available(&self, _cx: &Call<'_>, _db: &str) -> Result<Availability, PrimitiveError> {
        Ok(Availability {
            available: false,
            how: WHY.into(),
        })
    }

    fn compare(
        &self,
        _cx: &Call<'_>,
        source: &str,
        _target: &str,
        _opts: &CompareOptions,
    ) -> Result<Report, PrimitiveError> {
        Err(refusal(V, "compare", source))
    }

    fn sample(
        &self,
        _cx: &Call<'_>,
        source: &str,
        _target: &str,
        _fraction: f64,
        _opts: &SampleOptions,
    ) -> Result<SampleReport, PrimitiveError> {
        Err(refusal(V, "sample", source))
    }

    fn audit(
        &self,
        _cx: &Call<'_>,
        source: &str,
        _target: &str,
        _opts: &AuditOptions,
    ) -> Result<SampleReport, PrimitiveError> {
        Err(refusal(V, "audit", source))
    }

    fn queries(
        &self,
        _cx: &Call<'_>,
        source: &str,
        _target: &str,
        _opts: &QueryCheckOptions,
    ) -> Result<QueryReport, PrimitiveError> {
        Err(refusal(V, "queries", source))
    }

    fn prepass(
        &self,
        _cx: &Call<'_>,
        source: &str,
        _target: &str,
        _opts: &PrepassOptions,
    ) -> Result<PrepassReport, PrimitiveError> {
        Err(refusal(V, "prepass", source))
    }

    fn fence_pass(
        &self,
        _cx: &Call<'_>,
        source: &str,
        _target: &str,
        _pre: &PrepassReport,
    ) -> Result<Report, PrimitiveError> {
        Err(refusal(V, "fence_pass", source))
    }

    fn end_prepass(
        &self,
        _cx: &Call<'_>,
        source: &str,
        _pre: &PrepassReport,
    ) -> Result<bool, PrimitiveError> {
        Err(refusal(V, "end_prepass", source))
    }

    fn end_tracking(&self, _cx: &Call<'_>, source: &str) -> Result<Vec<String>, PrimitiveError> {
        Err(refusal(V, "end_tracking", source))
    }
}
