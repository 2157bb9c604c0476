//! Errors of the control plane, and their conversion into the engine's [`PrimitiveError`]
//! (area `route`), which is how runbooks see them.

use godwit_engine::{ErrorKind, PrimitiveError};
use serde::{Deserialize, Serialize};

/// What a control-plane operation can fail with.
///
/// Serde-able so the management API ([`crate::api`]) can carry the exact variant to
/// [`crate::remote::RemotePlane`], which rebuilds it: a remote NACK is the same `Nacked`, with the
/// same kind and retryability once converted by [`XdsError::into_primitive`].
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum XdsError {
    #[error("route {route}: {message}")]
    Invalid { route: String, message: String },

    #[error("route {0} is not published")]
    NotFound(String),

    #[error("route {route} has no journaled version {version}")]
    NoSuchVersion { route: String, version: u64 },

    /// A node rejected the config. The previous version was republished (as `rolled_back_to`).
    #[error(
        "node {node} NACKed version {version} of {type_name}: {detail}; republished the previous \
         config as version {rolled_back_to}"
    )]
    Nacked {
        node: String,
        version: u64,
        type_name: String,
        detail: String,
        rolled_back_to: u64,
    },

    /// Not every connected node ACKed before the deadline. `behind`: connected nodes that had
    /// not ACKed; `absent`: expected nodes that were not connected (reported, not the cause).
    #[error(
        "version {version} not ACKed within {waited_ms} ms by {} connected node(s): {}{}",
        behind.len(),
        behind.join(", "),
        absent_note(absent)
    )]
    AckTimeout {
        version: u64,
        waited_ms: u64,
        behind: Vec<String>,
        #[serde(default)]
        absent: Vec<String>,
    },

    #[error("control plane state {path}: {message}")]
    State { path: String, message: String },

    #[error("xDS server: {0}")]
    Server(String),

    /// The management API refused the request itself (wrong `Host`, missing `Content-Type`, no
    /// such path): `status` is the HTTP status it answered with, `hint` what the caller should
    /// change. Nothing is wrong with the server.
    #[error("management API refused the request ({status}): {message}")]
    Refused {
        status: u16,
        message: String,
        hint: String,
    },

    #[error("Envoy admin {addr}: {message}")]
    Admin { addr: String, message: String },

    /// The management API of a control plane in another process could not be reached (or did
    /// not answer in time): [`crate::remote::RemotePlane`] only.
    #[error(
        "the godwit control plane at {addr} is not reachable ({message}); start it with \
         `godwit dal serve --api {addr}` (or the lab supervisor that hosts it)"
    )]
    Unreachable { addr: String, message: String },
}

fn absent_note(absent: &[String]) -> String {
    if absent.is_empty() {
        String::new()
    } else {
        format!("; expected but absent: {}", absent.join(", "))
    }
}

impl XdsError {
    /// The primitive error a runbook sees for operation `op` (e.g. `switch`).
    pub fn into_primitive(self, op: &str) -> PrimitiveError {
        let (kind, hint) = self.kind_and_hint();
        let retryable = self.retryable();
        PrimitiveError::new("route", op, kind, self.to_string(), hint).with_retryable(retryable)
    }

    /// Whether retrying the same operation can succeed: a lagging node may catch up, an admin
    /// port or a restarting control plane may answer again. Every operation is idempotent.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            XdsError::AckTimeout { .. } | XdsError::Admin { .. } | XdsError::Unreachable { .. }
        )
    }

    /// What to do about it (the `hint` of the primitive error and of the API's error body).
    pub fn hint(&self) -> String {
        self.kind_and_hint().1
    }

    /// The variant's name as the API's error body carries it (`nacked`, `ack_timeout`, ...).
    pub fn kind_name(&self) -> &'static str {
        match self {
            XdsError::Invalid { .. } => "invalid",
            XdsError::NotFound(_) => "not_found",
            XdsError::NoSuchVersion { .. } => "no_such_version",
            XdsError::Nacked { .. } => "nacked",
            XdsError::AckTimeout { .. } => "ack_timeout",
            XdsError::State { .. } => "state",
            XdsError::Server(_) => "server",
            XdsError::Refused { .. } => "refused",
            XdsError::Admin { .. } => "admin",
            XdsError::Unreachable { .. } => "unreachable",
        }
    }

    fn kind_and_hint(&self) -> (ErrorKind, String) {
        match self {
            XdsError::Invalid { .. } => (ErrorKind::Invalid, "fix the route spec".to_string()),
            XdsError::NotFound(_) => (
                ErrorKind::NotFound,
                "publish the route first (route::publish)".to_string(),
            ),
            XdsError::NoSuchVersion { .. } => (
                ErrorKind::NotFound,
                "route::describe lists the journaled versions".to_string(),
            ),
            XdsError::Nacked { .. } => (
                ErrorKind::Conflict,
                "Envoy refused the config; read the detail, fix the spec, publish again"
                    .to_string(),
            ),
            XdsError::AckTimeout { .. } => (
                ErrorKind::Timeout,
                "check the nodes' xDS connection and their logs (control_plane.connected_state, \
                 cluster.godwit_xds.ssl.*) and retry; the operation is idempotent"
                    .to_string(),
            ),
            XdsError::State { .. } => (
                ErrorKind::Internal,
                "check the state directory's permissions and free space".to_string(),
            ),
            XdsError::Server(_) => (
                ErrorKind::Internal,
                "check the xDS listen address and certificates".to_string(),
            ),
            XdsError::Refused { hint, .. } => (ErrorKind::Invalid, hint.clone()),
            XdsError::Admin { .. } => (
                ErrorKind::Throttled,
                "is the node's admin port reachable on loopback?".to_string(),
            ),
            XdsError::Unreachable { addr, .. } => (
                ErrorKind::Throttled,
                format!(
                    "start the control plane (`godwit dal serve --api {addr}`) or fix the address; \
                     its state is persisted, so retrying after a restart is safe"
                ),
            ),
        }
    }
}

impl From<XdsError> for PrimitiveError {
    /// Without an operation name; prefer [`XdsError::into_primitive`].
    fn from(e: XdsError) -> Self {
        e.into_primitive("control_plane")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nack_becomes_a_conflict_with_envoy_detail() {
        let e = XdsError::Nacked {
            node: "envoy-1".into(),
            version: 3,
            type_name: "Cluster".into(),
            detail: "Invalid duration".into(),
            rolled_back_to: 4,
        };
        let p = e.into_primitive("switch");
        assert_eq!(p.area, "route");
        assert_eq!(p.op, "switch");
        assert_eq!(p.kind, ErrorKind::Conflict);
        assert!(!p.retryable);
        assert!(p.message.contains("Invalid duration"), "{}", p.message);
        let t = XdsError::AckTimeout {
            version: 2,
            waited_ms: 100,
            behind: vec!["a".into()],
            absent: vec!["c".into()],
        }
        .into_primitive("hold");
        assert!(
            t.message
                .ends_with("by 1 connected node(s): a; expected but absent: c"),
            "{}",
            t.message
        );
        assert!(t.retryable);
        assert_eq!(t.kind, ErrorKind::Timeout);
    }
}
