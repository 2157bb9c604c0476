//! [`RemotePlane`]: the client of the management API ([`crate::api`]), with [`ControlPlane`]'s
//! operations under the same names; and [`Plane`], either one, for callers (the `route` area)
//! that must not care which process hosts the control plane.
//!
//! The client speaks HTTP/1.1 through hyper's connection API (`hyper::client::conn::http1`),
//! one connection per call. hyper is already compiled for tonic, so this costs no new crate,
//! and unlike the hand-rolled reader in `admin.rs` (fine for Envoy's admin port) it frames
//! bodies correctly whatever the server does (length, chunked, early close). Calls are rare
//! (a handful per cutover step) and loopback connects cost ~0.1 ms, so there is no pool to
//! keep healthy across a control-plane restart.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::{ErrorBody, VersionBody};
use crate::error::XdsError;
use crate::model::{Addr, RouteSpec};
use crate::plane::{ControlPlane, NodeStatus, NodeView, PublishReport, RouteView};

/// The default listen address of the management API (`godwit dal serve --api`).
pub const DEFAULT_API_ADDR: &str = "127.0.0.1:18001";

/// A control plane in another process, reached through its management API.
#[derive(Debug, Clone)]
pub struct RemotePlane {
    addr: SocketAddr,
    connect_timeout: Duration,
    timeout: Duration,
}

impl RemotePlane {
    /// The API at `addr` (`ControlPlane::api_addr`, or `godwit dal serve --api ADDR`). Nothing
    /// is contacted until the first call.
    pub fn new(addr: SocketAddr) -> Self {
        RemotePlane {
            addr,
            // Loopback answers a connect at once (or refuses it); 5 s only matters on a
            // wedged host, where failing with "not reachable" beats hanging.
            connect_timeout: Duration::from_secs(5),
            // A publish answers after its ACK wait, and after a NACK after a second wait for
            // the republished config: 2 x `dal serve`'s default 30 s ack timeout, plus margin.
            timeout: Duration::from_secs(90),
        }
    }

    /// How long one call may take in all, ACK wait included (default 90 s). Set it above twice
    /// the server's `Config::ack_timeout`, or a slow publish surfaces as `Unreachable`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Set route `route` to `spec` and wait until every connected node ACKed it.
    pub async fn publish(&self, route: &str, spec: RouteSpec) -> Result<PublishReport, XdsError> {
        self.call(Method::PUT, &route_path(route, ""), Some(&spec))
            .await
    }

    /// The route as served, with its journaled versions.
    pub async fn describe(&self, route: &str) -> Result<RouteView, XdsError> {
        self.call(Method::GET, &route_path(route, ""), None::<&()>)
            .await
    }

    /// Every published route name.
    pub async fn routes(&self) -> Result<Vec<String>, XdsError> {
        self.call(Method::GET, "/v1/routes", None::<&()>).await
    }

    /// Hold new connections: `[parking, source DRAINING]`.
    pub async fn hold(&self, route: &str) -> Result<PublishReport, XdsError> {
        self.call(Method::POST, &route_path(route, "/hold"), None::<&()>)
            .await
    }

    /// Switch (or release a hold) onto `target`: `[target, source DRAINING]`.
    pub async fn switch(&self, route: &str, target: Addr) -> Result<PublishReport, XdsError> {
        self.call(Method::POST, &route_path(route, "/switch"), Some(&target))
            .await
    }

    /// Drop the drained endpoints: `[target]`.
    pub async fn cleanup(&self, route: &str) -> Result<PublishReport, XdsError> {
        self.call(Method::POST, &route_path(route, "/cleanup"), None::<&()>)
            .await
    }

    /// Republish the spec route `route` had at global `version`, as a new (higher) version.
    pub async fn rollback_to(&self, route: &str, version: u64) -> Result<PublishReport, XdsError> {
        let body = VersionBody { version };
        self.call(Method::POST, &route_path(route, "/rollback"), Some(&body))
            .await
    }

    /// xDS-level view of every node that ever connected.
    pub async fn nodes(&self) -> Result<Vec<NodeView>, XdsError> {
        self.call(Method::GET, "/v1/nodes", None::<&()>).await
    }

    /// Per node: the xDS view and what Envoy does with every route (through its admin API).
    pub async fn status(&self) -> Result<Vec<NodeStatus>, XdsError> {
        self.call(Method::GET, "/v1/status", None::<&()>).await
    }

    /// The current global version (0 before the first publish).
    pub async fn version(&self) -> Result<u64, XdsError> {
        let v: VersionBody = self.call(Method::GET, "/v1/version", None::<&()>).await?;
        Ok(v.version)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, XdsError> {
        let addr = self.addr.to_string();
        let unreachable = |message: String| XdsError::Unreachable {
            addr: addr.clone(),
            message,
        };
        let stream = tokio::time::timeout(
            self.connect_timeout,
            tokio::net::TcpStream::connect(self.addr),
        )
        .await
        .map_err(|_| {
            unreachable(format!(
                "connect timed out after {:?}",
                self.connect_timeout
            ))
        })?
        .map_err(|e| unreachable(format!("connect: {e}")))?;
        let _ = stream.set_nodelay(true);
        let body = match body {
            Some(b) => serde_json::to_vec(b)
                .map_err(|e| XdsError::Server(format!("serialising the request: {e}")))?,
            None => Vec::new(),
        };
        let request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(header::HOST, &addr)
            // Mutations must say JSON (api.rs: the browser defence); GETs may as well.
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONNECTION, "close")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| XdsError::Server(format!("building {method} {path}: {e}")))?;
        let exchange = async {
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            let driver = tokio::spawn(conn);
            let response = sender.send_request(request).await;
            let result = match response {
                Ok(r) => {
                    let status = r.status();
                    r.into_body()
                        .collect()
                        .await
                        .map(|b| (status, b.to_bytes()))
                }
                Err(e) => Err(e),
            };
            driver.abort();
            result
        };
        let (status, bytes) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| {
                unreachable(format!(
                    "{method} {path} not answered within {:?}",
                    self.timeout
                ))
            })?
            .map_err(|e| unreachable(format!("{method} {path}: {e}")))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                XdsError::Server(format!(
                    "control plane API at {addr}: unexpected answer to {method} {path}: {e}"
                ))
            });
        }
        // The server's own error, rebuilt as the same variant; anything else (a proxy, another
        // program on the port) is reported as it came.
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(e) => Err(e.error),
            Err(_) => Err(XdsError::Server(format!(
                "control plane API at {addr}: {method} {path}: HTTP {status}: {}",
                String::from_utf8_lossy(&bytes)
                    .chars()
                    .take(300)
                    .collect::<String>()
            ))),
        }
    }
}

/// `/v1/routes/{route}{suffix}`, the name escaped so that any name reaches the server (which
/// then refuses or does not find it exactly like `ControlPlane` does).
fn route_path(route: &str, suffix: &str) -> String {
    format!("/v1/routes/{}{suffix}", crate::admin::url_escape(route))
}

/// A control plane in this process or in another one: what the `route` area holds.
#[derive(Debug, Clone)]
pub enum Plane {
    Local(Arc<ControlPlane>),
    Remote(RemotePlane),
}

impl From<Arc<ControlPlane>> for Plane {
    fn from(cp: Arc<ControlPlane>) -> Self {
        Plane::Local(cp)
    }
}

impl From<RemotePlane> for Plane {
    fn from(r: RemotePlane) -> Self {
        Plane::Remote(r)
    }
}

impl Plane {
    pub async fn publish(&self, route: &str, spec: RouteSpec) -> Result<PublishReport, XdsError> {
        match self {
            Plane::Local(cp) => cp.publish(route, spec).await,
            Plane::Remote(r) => r.publish(route, spec).await,
        }
    }

    pub async fn describe(&self, route: &str) -> Result<RouteView, XdsError> {
        match self {
            Plane::Local(cp) => cp.describe(route),
            Plane::Remote(r) => r.describe(route).await,
        }
    }

    pub async fn routes(&self) -> Result<Vec<String>, XdsError> {
        match self {
            Plane::Local(cp) => Ok(cp.routes()),
            Plane::Remote(r) => r.routes().await,
        }
    }

    pub async fn hold(&self, route: &str) -> Result<PublishReport, XdsError> {
        match self {
            Plane::Local(cp) => cp.hold(route).await,
            Plane::Remote(r) => r.hold(route).await,
        }
    }

    pub async fn switch(&self, route: &str, target: Addr) -> Result<PublishReport, XdsError> {
        match self {
            Plane::Local(cp) => cp.switch(route, target).await,
            Plane::Remote(r) => r.switch(route, target).await,
        }
    }

    pub async fn cleanup(&self, route: &str) -> Result<PublishReport, XdsError> {
        match self {
            Plane::Local(cp) => cp.cleanup(route).await,
            Plane::Remote(r) => r.cleanup(route).await,
        }
    }

    pub async fn rollback_to(&self, route: &str, version: u64) -> Result<PublishReport, XdsError> {
        match self {
            Plane::Local(cp) => cp.rollback_to(route, version).await,
            Plane::Remote(r) => r.rollback_to(route, version).await,
        }
    }

    pub async fn nodes(&self) -> Result<Vec<NodeView>, XdsError> {
        match self {
            Plane::Local(cp) => Ok(cp.nodes()),
            Plane::Remote(r) => r.nodes().await,
        }
    }

    pub async fn status(&self) -> Result<Vec<NodeStatus>, XdsError> {
        match self {
            Plane::Local(cp) => Ok(cp.status().await),
            Plane::Remote(r) => r.status().await,
        }
    }

    pub async fn version(&self) -> Result<u64, XdsError> {
        match self {
            Plane::Local(cp) => Ok(cp.version()),
            Plane::Remote(r) => r.version().await,
        }
    }
}
