//! The audit log of `godwit serve`'s actions (migration 4, `godwit.audit`): appended in its own
//! statement, read newest first.

use godwit_engine::journal::JournalError;
use serde::Serialize;
use serde_json::Value;

use crate::store::PgStore;

/// One audited action.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    /// Epoch milliseconds (the store's clock); 0 when writing.
    pub at_ms: i64,
    pub identity: String,
    pub via: String,
    pub action: String,
    pub target: String,
    pub detail: Value,
    pub outcome: String,
}

impl PgStore {
    /// Record `e` (its `at_ms` is ignored: the store's clock stamps it).
    pub fn audit(&self, e: &AuditEntry) -> Result<(), JournalError> {
        let e = e.clone();
        self.inner.conn.call(move |db| {
            db.query(
                "INSERT INTO godwit.audit (identity, via, action, target, detail, outcome) \
                 VALUES ($1, $2, $3, $4, $5::text::jsonb, $6)",
                vec![
                    Box::new(e.identity),
                    Box::new(e.via),
                    Box::new(e.action),
                    Box::new(e.target),
                    Box::new(e.detail.to_string()),
                    Box::new(e.outcome),
                ],
            )?;
            Ok(())
        })
    }

    /// The last `limit` entries, newest first; only those about `target` when given.
    pub fn audit_log(
        &self,
        target: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, JournalError> {
        let target = target.map(str::to_string);
        self.inner.conn.call(move |db| {
            let rows = db.query(
                "SELECT (extract(epoch FROM at) * 1000)::bigint, identity, via, action, target, \
                 detail::text, outcome FROM godwit.audit WHERE $1::text IS NULL OR target = $1 \
                 ORDER BY id DESC LIMIT $2",
                vec![Box::new(target), Box::new(limit)],
            )?;
            Ok(rows
                .iter()
                .map(|r| AuditEntry {
                    at_ms: r.get(0),
                    identity: r.get(1),
                    via: r.get(2),
                    action: r.get(3),
                    target: r.get(4),
                    detail: serde_json::from_str(r.get::<_, &str>(5)).unwrap_or(Value::Null),
                    outcome: r.get(6),
                })
                .collect())
        })
    }
}
