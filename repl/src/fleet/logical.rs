//! The logical path's eligibility (issue 25; docs/fleet.md, "The logical path"): whether
//! native logical replication can carry the source, from what the calibration probe read —
//! the tables without a key or replica identity (their updates and deletes cannot be
//! replicated), large objects and unlogged tables (not replicated at all), and whether the
//! source has logical decoding on (`rds.logical_replication`, a static parameter: on only
//! after a reboot). Each blocker comes with its fix; what the path will do about the rest
//! (sequences) is a note.
//!
//! Without database access none of this can be read — and a logical migration needs SQL on
//! both sides anyway (publication, subscription, sequences) — so it is a blocker too, never a
//! guess.

use serde::Serialize;
use serde_json::Value;

use super::plan::Finding;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogicalEligibility {
    /// `eligible`; `after-reboot` (logical decoding is the only blocker: a parameter and a
    /// reboot in a maintenance window away); or `not-eligible`.
    pub verdict: String,
    /// What stands in the way, each with its fix (empty when eligible).
    pub blockers: Vec<Finding>,
    /// What the logical path will handle on its own (sequences), for the owner to know.
    pub notes: Vec<String>,
}

impl LogicalEligibility {
    pub fn eligible(&self) -> bool {
        self.verdict == "eligible"
    }

    /// One line: `eligible (2 sequences set at the cutover)`, or the first blocker and how many
    /// more.
    pub fn summary(&self) -> String {
        match self.blockers.as_slice() {
            [] if self.notes.is_empty() => "eligible".into(),
            [] => format!("eligible ({})", self.notes.join("; ")),
            [only] if self.verdict == "after-reboot" => {
                format!("eligible after a reboot: {} — fix: {}", only.why, only.fix)
            }
            [first, rest @ ..] => {
                let more = if rest.is_empty() {
                    String::new()
                } else {
                    format!(" (+{} more)", rest.len())
                };
                format!(
                    "not eligible: {}: {} — fix: {}{more}",
                    first.check, first.why, first.fix
                )
            }
        }
    }
}

fn names(v: &Value, key: &str) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| {
                    if key.is_empty() {
                        x.as_str().map(str::to_string)
                    } else {
                        x[key].as_str().map(str::to_string)
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// At most five names, then how many more.
fn listed(names: &[String]) -> String {
    let shown: Vec<&str> = names.iter().take(5).map(String::as_str).collect();
    if names.len() > 5 {
        format!("{} and {} more", shown.join(", "), names.len() - 5)
    } else {
        shown.join(", ")
    }
}

/// Judge the logical path from the probe step's result (`probe.logical`).
pub fn judge(probe: &Value) -> LogicalEligibility {
    let l = &probe["logical"];
    let mut blockers = Vec::new();
    let mut notes = Vec::new();
    let mut block = |check: &str, why: String, fix: &str| {
        blockers.push(Finding {
            check: check.into(),
            why,
            fix: fix.into(),
        })
    };
    if let Some(err) = l["error"].as_str() {
        block(
            "logical-facts",
            format!("reading the source's tables failed: {err}"),
            "fix what the error names (godwit's role needs to read the catalogs), then plan again",
        );
    } else if l["readable"].as_bool() != Some(true) {
        block(
            "logical-database-access",
            "no database access: the tables' keys and large objects cannot be read, and the logical path runs on SQL (publication, subscription, sequences)".into(),
            "grant godwit database access (db_user in the [aws] table) to the source and the target",
        );
    } else {
        let unreplicable = names(&l["unreplicable"], "table");
        if !unreplicable.is_empty() {
            block(
                "logical-replica-identity",
                format!(
                    "{} table(s) without a primary key or replica identity: {} (their updates and deletes cannot be replicated)",
                    unreplicable.len(),
                    listed(&unreplicable)
                ),
                "give each a primary key, or ALTER TABLE … REPLICA IDENTITY FULL (or USING INDEX on a unique, non-null index)",
            );
        }
        let lo: Vec<String> = l["large_objects"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| {
                        format!(
                            "{} in {}",
                            x["count"].as_i64().unwrap_or(0),
                            x["database"].as_str().unwrap_or("?")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !lo.is_empty() {
            block(
                "logical-large-objects",
                format!(
                    "large objects ({}): logical replication does not carry them",
                    lo.join(", ")
                ),
                "move them into bytea columns before the migration, or use the physical path",
            );
        }
        let unlogged = names(&l["unlogged"], "");
        if !unlogged.is_empty() {
            block(
                "logical-unlogged-tables",
                format!(
                    "unlogged table(s) {}: not replicated, their rows would stay behind",
                    listed(&unlogged)
                ),
                "ALTER TABLE … SET LOGGED, or drop them if they only cache",
            );
        }
        let password = names(&l["password_roles"], "");
        if !password.is_empty() {
            block(
                "logical-iam-sign-in",
                format!(
                    "login role(s) {} sign in with a password: the logical copy creates them on Aurora without one (for IAM), so their clients would be refused after the switch",
                    listed(&password)
                ),
                "move their clients to IAM authentication (GRANT rds_iam TO the role), or use the physical path, whose replica keeps the passwords",
            );
        }
        if let Some(n) = l["sequences"].as_u64().filter(|n| *n > 0) {
            notes.push(format!(
                "{n} sequence(s) set past the source's values at the cutover"
            ));
        }
    }
    // The server's wal_level is the truth; the parameter group says what it will be after the
    // next reboot (rds.logical_replication is static).
    let parameter_on = l["parameter_on"].as_bool() == Some(true);
    let set_and_reboot = "set rds.logical_replication=1 in the source's parameter group and reboot it in a maintenance window (a static parameter)";
    match l["wal_level"].as_str() {
        Some("logical") => {}
        Some(level) if parameter_on => block(
            "logical-decoding-pending",
            format!(
                "rds.logical_replication=1 is set but not in force (wal_level {level}): it takes effect at the source's next reboot"
            ),
            "reboot the source in a maintenance window before the migration",
        ),
        None if parameter_on => {}
        level => block(
            "logical-decoding",
            format!(
                "logical decoding is off on the source (wal_level {}, rds.logical_replication not 1 in its parameter group)",
                level.unwrap_or("unknown")
            ),
            set_and_reboot,
        ),
    }
    let verdict = match blockers.as_slice() {
        [] => "eligible",
        [only]
            if matches!(
                only.check.as_str(),
                "logical-decoding" | "logical-decoding-pending"
            ) =>
        {
            "after-reboot"
        }
        _ => "not-eligible",
    };
    LogicalEligibility {
        verdict: verdict.into(),
        blockers,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn probe(logical: Value) -> Value {
        json!({ "logical": logical })
    }

    #[test]
    fn a_source_with_keys_and_logical_decoding_is_eligible_with_its_sequences_noted() {
        let e = judge(&probe(json!({
            "readable": true, "wal_level": "logical", "parameter_on": true,
            "unreplicable": [], "large_objects": [], "unlogged": [], "sequences": 2,
        })));
        assert!(e.eligible(), "{e:?}");
        assert_eq!(
            e.summary(),
            "eligible (2 sequence(s) set past the source's values at the cutover)"
        );
    }

    #[test]
    fn each_blocker_is_named_with_its_fix() {
        let e = judge(&probe(json!({
            "readable": true, "wal_level": "replica", "parameter_on": false,
            "unreplicable": [{ "table": "public.events", "why": "no primary key" }],
            "large_objects": [{ "database": "app", "count": 3 }],
            "unlogged": ["public.cache"], "sequences": 0, "password_roles": ["legacy_app"],
        })));
        let checks: Vec<&str> = e.blockers.iter().map(|b| b.check.as_str()).collect();
        assert_eq!(
            checks,
            [
                "logical-replica-identity",
                "logical-large-objects",
                "logical-unlogged-tables",
                "logical-iam-sign-in",
                "logical-decoding"
            ]
        );
        assert!(e.blockers[0].why.contains("public.events"), "{e:?}");
        assert!(e.blockers[3].why.contains("legacy_app"), "{e:?}");
        assert!(e.blockers[3].fix.contains("rds_iam"), "{e:?}");
        assert!(e.blockers[0].fix.contains("REPLICA IDENTITY FULL"), "{e:?}");
        assert!(e.blockers[1].why.contains("3 in app"), "{e:?}");
        assert!(
            e.summary()
                .starts_with("not eligible: logical-replica-identity:")
                && e.summary().ends_with("(+4 more)"),
            "{}",
            e.summary()
        );
    }

    #[test]
    fn without_database_access_it_is_not_eligible_never_guessed() {
        let e = judge(&probe(json!({ "readable": false, "parameter_on": true })));
        assert!(!e.eligible());
        assert_eq!(e.blockers[0].check, "logical-database-access");
        assert_eq!(e.blockers.len(), 1, "{e:?}");
    }

    #[test]
    fn a_parameter_set_but_not_in_force_needs_the_reboot() {
        let e = judge(&probe(json!({
            "readable": true, "wal_level": "replica", "parameter_on": true,
            "unreplicable": [], "large_objects": [], "unlogged": [], "sequences": 0,
        })));
        assert_eq!(e.verdict, "after-reboot");
        assert_eq!(e.blockers[0].check, "logical-decoding-pending");
        assert!(e.blockers[0].why.contains("next reboot"), "{e:?}");
        assert!(
            e.summary().starts_with("eligible after a reboot: "),
            "{}",
            e.summary()
        );
        assert!(e.blockers[0].fix.starts_with("reboot the source"), "{e:?}");
    }
}
