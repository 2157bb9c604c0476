//! The `aws` world: `rds`, `ec2` and `cw` on the AWS SDK, `pg` over TLS with IAM auth tokens
//! ([`IamConnector`]), on the system clock.
//!
//! `route` and `cdc` have no AWS backend yet, and say so: godwit's data access layer control
//! plane (`godwit dal serve`, crate `godwit-xds`) serves Envoy over ADS but exposes no API a
//! runbook in another process could publish through, and CDC consumer hooks are not
//! implemented. Their primitives fail with kind `Invalid` (not retryable) naming what is
//! missing, instead of pretending — see docs/aws.md.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use godwit_engine::{ErrorKind, Host, Plugin, PrimitiveError, SystemClock};

use super::iam::IamConnector;
use super::{Aws, AwsApi, AwsSettings};
use crate::cdc::{Cdc, ConsumerInfo, CreatedSlot, SlotPosition};
use crate::pg::live::{Connector, LivePg, Pool};
use crate::route::{EndpointConnections, Route, Router};
use crate::world::{World, pure_plugins};

/// Where the CLI keeps a run's world settings beside the world state file it hands the world
/// factory (`<state>/worlds/RUN.json` → `<state>/worlds/RUN.settings.json`), so `resume` in
/// another process rebuilds the same world.
pub fn settings_file(state_file: &Path) -> PathBuf {
    state_file.with_extension("settings.json")
}

/// Settings saved for a run by the CLI (see [`settings_file`]), or `None` when there are none.
pub fn saved_settings(state_file: Option<&Path>) -> Result<Option<AwsSettings>, String> {
    let Some(path) = state_file.map(settings_file).filter(|p| p.exists()) else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{} is damaged: {e}", path.display()))?;
    AwsSettings::from_json(value, &path.display().to_string()).map(Some)
}

/// The installer of the AWS-backed areas (`rds`, `ec2`, `cw`) over `aws`: one [`AwsApi`] per
/// run, holding the run's [`Host`]. Tests combine it with their own `pg`/`route`/`cdc`.
pub fn sdk_plugin(aws: Arc<Aws>) -> Arc<dyn Plugin> {
    Arc::new(move |engine: &mut rhai::Engine, host: &Host| {
        let api = Arc::new(AwsApi {
            aws: aws.clone(),
            host: host.clone(),
        });
        crate::rds::rhai::register(engine, host, api.clone());
        crate::ec2::rhai::register(engine, host, api.clone());
        crate::cw::rhai::register(engine, host, api);
    })
}

/// `pg` over [`LivePg`](crate::pg::live::LivePg) with the [`IamConnector`]: connections live
/// on a small runtime the plugin owns (they outlive single primitive calls), dropped with the
/// world.
pub fn pg_plugin(aws: Arc<Aws>) -> Arc<dyn Plugin> {
    pg_plugin_with(Arc::new(IamConnector::new(aws)))
}

/// `pg` over `connector` (tests wrap the [`IamConnector`]).
pub fn pg_plugin_with(connector: Arc<dyn Connector>) -> Arc<dyn Plugin> {
    let rt = Arc::new(OwnedRuntime(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("godwit-aws-pg")
            .enable_all()
            .build()
            .ok(),
    ));
    Arc::new(move |engine: &mut rhai::Engine, host: &Host| {
        let pool = match rt.0.as_ref() {
            Some(rt) => Arc::new(Pool::new(connector.clone(), rt.handle().clone())),
            None => return, // no runtime: pg stays unregistered; calls say "unknown module"
        };
        crate::pg::rhai::register(engine, host, Arc::new(LivePg::new(pool)));
    })
}

/// A runtime dropped off any runtime thread (dropping one inside another panics).
struct OwnedRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl World {
    /// The aws world over `aws`: the pure areas, `rds`/`ec2`/`cw` on the SDK, `pg` with IAM
    /// auth, and `route` / `cdc` that fail clearly (no backend yet). Named `aws`.
    pub fn aws(aws: Arc<Aws>) -> World {
        let mut plugins = pure_plugins();
        plugins.push(sdk_plugin(aws.clone()));
        plugins.push(pg_plugin(aws.clone()));
        let control_plane = aws.settings.envoy_control_plane.clone();
        plugins.push(Arc::new(move |engine: &mut rhai::Engine, host: &Host| {
            crate::route::rhai::register(
                engine,
                host,
                Arc::new(NoRouter {
                    control_plane: control_plane.clone(),
                }),
            );
            crate::cdc::rhai::register(engine, host, Arc::new(NoCdc));
        }));
        World {
            name: "aws".into(),
            clock: Arc::new(SystemClock),
            plugins,
            sinks: Vec::new(),
            audit: None,
        }
    }

    /// The aws world the CLI builds for `--world aws`: settings saved for the run (see
    /// [`settings_file`]) or none, then the SDK's own chains (environment, profile).
    pub fn aws_from_state(state_file: Option<&Path>) -> Result<World, String> {
        let settings = saved_settings(state_file)?.unwrap_or_default();
        Ok(World::aws(Arc::new(Aws::connect(settings, None)?)))
    }
}

/// `route` in the aws world: no remote control-plane client exists yet.
struct NoRouter {
    control_plane: Option<String>,
}

impl NoRouter {
    fn missing(&self, op: &str) -> PrimitiveError {
        PrimitiveError::new(
            "route",
            op,
            ErrorKind::Invalid,
            match &self.control_plane {
                Some(a) => format!(
                    "the aws world cannot reach the Envoy control plane at {a}: godwit dal serve \
                     has no publish API for a runbook in another process yet"
                ),
                None => "the aws world has no route backend: no envoy_control_plane is \
                         configured, and godwit dal serve has no publish API for a runbook in \
                         another process yet"
                    .to_string(),
            },
            "route the cutover by hand, or run the routing steps in the lab world; docs/aws.md \
             (route and cdc in the aws world)",
        )
        .with_retryable(false)
    }
}

impl Router for NoRouter {
    fn describe_route(&self, _name: &str) -> Result<Route, PrimitiveError> {
        Err(self.missing("describe_route"))
    }
    fn switch_route(
        &self,
        _name: &str,
        _target: &str,
        _hold: bool,
        _drain: bool,
    ) -> Result<Route, PrimitiveError> {
        Err(self.missing("switch_route"))
    }
    fn active_connections(&self, _name: &str) -> Result<Vec<EndpointConnections>, PrimitiveError> {
        Err(self.missing("active_connections"))
    }
}

/// `cdc` in the aws world: consumer hooks are not implemented; an empty consumer list would
/// be a claim ("nothing to pause") godwit cannot back, so every call fails.
struct NoCdc;

fn no_cdc(op: &str) -> PrimitiveError {
    PrimitiveError::new(
        "cdc",
        op,
        ErrorKind::Invalid,
        "the aws world has no CDC backend: consumer pause/resume hooks are not implemented yet",
        "pause and resume CDC consumers by hand around the cutover; docs/aws.md (route and cdc \
         in the aws world)",
    )
    .with_retryable(false)
}

impl Cdc for NoCdc {
    fn list_consumers(&self) -> Result<Vec<ConsumerInfo>, PrimitiveError> {
        Err(no_cdc("list_consumers"))
    }
    fn pause_consumer(&self, _name: &str) -> Result<ConsumerInfo, PrimitiveError> {
        Err(no_cdc("pause_consumer"))
    }
    fn resume_consumer(
        &self,
        _name: &str,
        _db: &str,
        _slot: &str,
        _position: Option<u64>,
    ) -> Result<ConsumerInfo, PrimitiveError> {
        Err(no_cdc("resume_consumer"))
    }
    fn record_positions(&self) -> Result<Vec<SlotPosition>, PrimitiveError> {
        Err(no_cdc("record_positions"))
    }
    fn create_equivalent_slots(
        &self,
        _db: &str,
        _slots: &[String],
    ) -> Result<Vec<CreatedSlot>, PrimitiveError> {
        Err(no_cdc("create_equivalent_slots"))
    }
}
