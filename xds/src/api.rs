//! The management API: [`ControlPlane`]'s operations as JSON over HTTP/1.1, so processes other
//! than the one hosting the control plane (a `godwit run` in the lab world, a runbook against
//! `godwit dal serve`) drive routes through [`crate::remote::RemotePlane`].
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `GET /v1/routes` | — | `["orders", …]` |
//! | `GET /v1/routes/{route}` | — | [`RouteView`](crate::RouteView) |
//! | `PUT /v1/routes/{route}` | [`RouteSpec`] | [`PublishReport`](crate::PublishReport) |
//! | `POST /v1/routes/{route}/hold` | — | `PublishReport` |
//! | `POST /v1/routes/{route}/switch` | [`Addr`] | `PublishReport` |
//! | `POST /v1/routes/{route}/cleanup` | — | `PublishReport` |
//! | `POST /v1/routes/{route}/rollback` | `{"version": N}` | `PublishReport` |
//! | `GET /v1/nodes` | — | `[NodeView]` |
//! | `GET /v1/status` | — | `[NodeStatus]` (reads every node's Envoy admin) |
//! | `GET /v1/version` | — | `{"version": N}` |
//!
//! Publishing operations answer once the ACK wait is over. They run in their own task: a client
//! that disconnects (a `godwit run` SIGKILLed mid-cutover) must not cancel the wait half-way,
//! because the wait is also what republishes the previous config after a NACK.
//!
//! Errors answer with [`ErrorBody`]: `kind` (the [`XdsError`] variant), `message`, `hint`,
//! `retryable`, and `error`, the variant itself, from which the client rebuilds the same
//! `XdsError` (a NACK stays a NACK with Envoy's detail, a timeout stays retryable). Statuses:
//! 400 invalid (a malformed body names the field: `request body field \`endpoints[0].health\``),
//! 404 unknown route / version, 409 NACK, 504 ACK timeout, 502 Envoy admin, 500 state and
//! server; and `refused` (the request itself, with a hint about the request): 403 non-loopback
//! `Host`, 415 a mutation without `Content-Type: application/json`, 404 an unknown path.
//!
//! There is no authentication: the API listens on loopback only ([`check_listen`] refuses
//! anything else at start), like Envoy's admin port. Two checks keep a local *browser* from
//! being used against it: the `Host` header must name a loopback address (DNS rebinding), and
//! a mutation must be `application/json` (a cross-origin page cannot send that without a CORS
//! preflight, which this API never answers).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::XdsError;
use crate::model::{Addr, RouteSpec};
use crate::plane::{ControlPlane, PublishReport};

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// [`XdsError::kind_name`]: `invalid`, `not_found`, `no_such_version`, `nacked`,
    /// `ack_timeout`, `state`, `server`, `admin`.
    pub kind: String,
    pub message: String,
    pub hint: String,
    pub retryable: bool,
    /// The error itself, for clients that rebuild it ([`crate::remote::RemotePlane`]).
    pub error: XdsError,
}

impl From<&XdsError> for ErrorBody {
    fn from(e: &XdsError) -> Self {
        ErrorBody {
            kind: e.kind_name().to_string(),
            message: e.to_string(),
            hint: e.hint(),
            retryable: e.retryable(),
            error: e.clone(),
        }
    }
}

/// `{"version": N}`: the body of `rollback` and the answer of `GET /v1/version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionBody {
    pub version: u64,
}

/// The HTTP status an error answers with.
pub fn status_of(e: &XdsError) -> StatusCode {
    match e {
        XdsError::Invalid { .. } => StatusCode::BAD_REQUEST,
        XdsError::NotFound(_) | XdsError::NoSuchVersion { .. } => StatusCode::NOT_FOUND,
        XdsError::Nacked { .. } => StatusCode::CONFLICT,
        XdsError::AckTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        XdsError::Admin { .. } | XdsError::Unreachable { .. } => StatusCode::BAD_GATEWAY,
        XdsError::State { .. } | XdsError::Server(_) => StatusCode::INTERNAL_SERVER_ERROR,
        XdsError::Refused { status, .. } => {
            StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST)
        }
    }
}

/// Refuse a non-loopback listen address: the API has no authentication.
pub fn check_listen(addr: SocketAddr) -> Result<(), XdsError> {
    if addr.ip().is_loopback() {
        return Ok(());
    }
    Err(XdsError::Server(format!(
        "management API on {addr}: it has no authentication, so it only listens on loopback \
         (127.0.0.1 or [::1]); run the migration on the control plane's host, or reach the \
         loopback port through an SSH tunnel"
    )))
}

/// Bind `listen` and serve the API for `plane` until `stop` turns true.
pub(crate) async fn start(
    plane: Arc<ControlPlane>,
    listen: SocketAddr,
    mut stop: watch::Receiver<bool>,
) -> Result<(SocketAddr, JoinHandle<()>), XdsError> {
    check_listen(listen)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| XdsError::Server(format!("management API: bind {listen}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| XdsError::Server(e.to_string()))?;
    let app = router(plane);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
    });
    Ok((addr, task))
}

fn router(plane: Arc<ControlPlane>) -> Router {
    Router::new()
        .route("/v1/routes", get(list_routes))
        .route("/v1/routes/{route}", get(describe).put(publish))
        .route("/v1/routes/{route}/hold", post(hold))
        .route("/v1/routes/{route}/switch", post(switch))
        .route("/v1/routes/{route}/cleanup", post(cleanup))
        .route("/v1/routes/{route}/rollback", post(rollback))
        .route("/v1/nodes", get(nodes))
        .route("/v1/status", get(status))
        .route("/v1/version", get(version))
        .fallback(unknown_path)
        .layer(middleware::from_fn(guard))
        .with_state(plane)
}

type Plane = State<Arc<ControlPlane>>;

fn ok<T: Serialize>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => error(&XdsError::Server(format!("serialising the answer: {e}"))),
    }
}

fn error(e: &XdsError) -> Response {
    let body = serde_json::to_vec(&ErrorBody::from(e)).unwrap_or_default();
    (
        status_of(e),
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

fn reply<T: Serialize>(r: Result<T, XdsError>) -> Response {
    match r {
        Ok(v) => ok(&v),
        Err(e) => error(&e),
    }
}

/// Parse a request body, naming the offending field (`endpoints[0].health`) when it is wrong.
fn parse<T: DeserializeOwned>(route: &str, body: &[u8]) -> Result<T, XdsError> {
    let invalid = |message: String| XdsError::Invalid {
        route: route.to_string(),
        message,
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            invalid(format!("request body: {inner}"))
        } else {
            invalid(format!("request body field `{path}`: {inner}"))
        }
    })?;
    de.end()
        .map_err(|e| invalid(format!("request body: {e}")))?;
    Ok(value)
}

/// Run a publishing operation to its end even if the client goes away (module docs).
async fn detached(
    op: impl Future<Output = Result<PublishReport, XdsError>> + Send + 'static,
) -> Response {
    reply(
        tokio::spawn(op)
            .await
            .unwrap_or_else(|e| Err(XdsError::Server(format!("operation failed: {e}")))),
    )
}

async fn list_routes(State(cp): Plane) -> Response {
    ok(&cp.routes())
}

async fn describe(State(cp): Plane, Path(route): Path<String>) -> Response {
    reply(cp.describe(&route))
}

async fn publish(State(cp): Plane, Path(route): Path<String>, body: Bytes) -> Response {
    let spec: RouteSpec = match parse(&route, &body) {
        Ok(s) => s,
        Err(e) => return error(&e),
    };
    detached(async move { cp.publish(&route, spec).await }).await
}

async fn hold(State(cp): Plane, Path(route): Path<String>) -> Response {
    detached(async move { cp.hold(&route).await }).await
}

async fn switch(State(cp): Plane, Path(route): Path<String>, body: Bytes) -> Response {
    let target: Addr = match parse(&route, &body) {
        Ok(a) => a,
        Err(e) => return error(&e),
    };
    detached(async move { cp.switch(&route, target).await }).await
}

async fn cleanup(State(cp): Plane, Path(route): Path<String>) -> Response {
    detached(async move { cp.cleanup(&route).await }).await
}

async fn rollback(State(cp): Plane, Path(route): Path<String>, body: Bytes) -> Response {
    let VersionBody { version } = match parse(&route, &body) {
        Ok(v) => v,
        Err(e) => return error(&e),
    };
    detached(async move { cp.rollback_to(&route, version).await }).await
}

async fn nodes(State(cp): Plane) -> Response {
    ok(&cp.nodes())
}

async fn status(State(cp): Plane) -> Response {
    ok(&cp.status().await)
}

async fn version(State(cp): Plane) -> Response {
    ok(&VersionBody {
        version: cp.version(),
    })
}

async fn unknown_path(method: Method, uri: axum::http::Uri) -> Response {
    error(&XdsError::Refused {
        status: StatusCode::NOT_FOUND.as_u16(),
        message: format!("the management API has no {method} {}", uri.path()),
        hint: "the paths are listed in the godwit_xds::api docs (GET /v1/status, POST \
               /v1/routes/{route}/switch, ...)"
            .into(),
    })
}

/// The browser defences of the module docs.
async fn guard(req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !is_loopback_host(host) {
        // A browser page on another origin reaching the port through DNS rebinding sends its
        // own host name here.
        return error(&XdsError::Refused {
            status: StatusCode::FORBIDDEN.as_u16(),
            message: format!(
                "Host {host:?} is not a loopback address; the management API only answers \
                 requests addressed to 127.0.0.1, [::1] or localhost"
            ),
            hint: "address the API as http://127.0.0.1:PORT (through an SSH tunnel from \
                   another machine)"
                .into(),
        });
    }
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    if req.method() != Method::GET && !json {
        return error(&XdsError::Refused {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE.as_u16(),
            message: format!(
                "{} {} needs Content-Type: application/json",
                req.method(),
                req.uri().path()
            ),
            hint: "send the body as JSON with the header Content-Type: application/json".into(),
        });
    }
    next.run(req).await
}

/// `127.0.0.1:18001`, `[::1]:18001`, `localhost:18001` (port optional).
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_only() {
        for h in [
            "127.0.0.1:18001",
            "127.0.0.1",
            "[::1]:18001",
            "localhost:1",
            "LOCALHOST",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "",
            "10.0.0.1:18001",
            "evil.example:18001",
            "[2001:db8::1]:1",
            "localhost.evil",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
        assert!(check_listen("127.0.0.1:0".parse().unwrap()).is_ok());
        assert!(check_listen("[::1]:0".parse().unwrap()).is_ok());
        let e = check_listen("0.0.0.0:18001".parse().unwrap()).unwrap_err();
        assert!(e.to_string().contains("loopback"), "{e}");
    }

    #[test]
    fn a_malformed_body_names_the_field() {
        let body = br#"{"listen":{"host":"127.0.0.1","port":5432},
            "endpoints":[{"addr":{"host":"10.0.0.1","port":5432},"role":"source","health":"sick"}]}"#;
        let e = parse::<RouteSpec>("orders", body).unwrap_err();
        let XdsError::Invalid { route, message } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(route, "orders");
        assert!(message.contains("`endpoints[0].health`"), "{message}");
        let e = parse::<RouteSpec>("orders", br#"{"endpoints":[]}"#).unwrap_err();
        assert!(e.to_string().contains("missing field `listen`"), "{e}");
        let e = parse::<VersionBody>("orders", br#"{"version":1} x"#).unwrap_err();
        assert!(e.to_string().contains("trailing"), "{e}");
    }

    #[test]
    fn every_error_round_trips_through_the_body_with_its_status() {
        let errors = [
            XdsError::Invalid {
                route: "r".into(),
                message: "m".into(),
            },
            XdsError::NotFound("r".into()),
            XdsError::NoSuchVersion {
                route: "r".into(),
                version: 3,
            },
            XdsError::Nacked {
                node: "n".into(),
                version: 2,
                type_name: "Listener".into(),
                detail: "bad".into(),
                rolled_back_to: 3,
            },
            XdsError::AckTimeout {
                version: 2,
                waited_ms: 10,
                behind: vec!["n".into()],
                absent: vec!["m".into()],
            },
            XdsError::State {
                path: "p".into(),
                message: "m".into(),
            },
            XdsError::Server("s".into()),
            XdsError::Admin {
                addr: "a".into(),
                message: "m".into(),
            },
            XdsError::Refused {
                status: 415,
                message: "m".into(),
                hint: "h".into(),
            },
        ];
        let mut statuses = Vec::new();
        for e in errors {
            let body: ErrorBody =
                serde_json::from_slice(&serde_json::to_vec(&ErrorBody::from(&e)).unwrap()).unwrap();
            assert_eq!(body.error, e);
            assert_eq!(body.kind, e.kind_name());
            assert_eq!(body.retryable, e.clone().into_primitive("op").retryable);
            statuses.push(status_of(&e).as_u16());
        }
        assert_eq!(statuses, [400, 404, 404, 409, 504, 500, 500, 502, 415]);
    }
}
