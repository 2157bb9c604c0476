//! The `aws` world: `rds`, `ec2` and `cw` on the AWS SDK, `pg` over TLS with IAM auth tokens
//! ([`IamConnector`]), on the system clock.
//!
//! `route` drives the Envoy fleet through `godwit dal serve`'s management API
//! (`envoy_control_plane`), naming RDS endpoints as route targets. `cdc` runs the operator's
//! pause/resume commands for declared consumers (`cdc::hooks`), reads positions from the
//! slots and creates the target's slots over IAM; undeclared, it fails clearly (`cdc = "none"`
//! declares a source without consumers) — see docs/aws.md.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use godwit_engine::{ErrorKind, Host, Plugin, PrimitiveError, SystemClock};

use super::iam::IamConnector;
use super::{Aws, AwsApi, AwsSettings};
use crate::cdc::hooks::HookCdc;
use crate::cdc::{Cdc, ConsumerInfo, CreatedSlot, SlotPosition};
use crate::pg::live::{Connector, LivePg, Pool};
use crate::rds::Rds;
use crate::route::remote::{Endpoints, RemoteRouter};
use crate::route::{Router, Unavailable};
use crate::world::{World, pure_plugins};
use godwit_xds::model::Addr;
use godwit_xds::remote::RemotePlane;

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

/// `pg` over [`LivePg`](crate::pg::live::LivePg) and `validate` over
/// [`LiveValidate`](crate::validate::live::LiveValidate), with the [`IamConnector`]: connections live
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
        crate::pg::rhai::register(engine, host, Arc::new(LivePg::new(pool.clone())));
        crate::validate::rhai::register(
            engine,
            host,
            Arc::new(crate::validate::live::LiveValidate::new(pool)),
        );
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
    /// auth, `route` through the configured control plane, and `cdc` that fails clearly (no
    /// backend yet). Named `aws`.
    pub fn aws(aws: Arc<Aws>) -> World {
        let mut plugins = pure_plugins();
        plugins.push(sdk_plugin(aws.clone()));
        plugins.push(pg_plugin(aws.clone()));
        if aws.settings.db_user.is_none() {
            // Without IAM database access the exact validation is skipped (the runbook asks
            // validate::available), rather than failing at its first connection.
            plugins.push(Arc::new(|engine: &mut rhai::Engine, host: &Host| {
                crate::validate::rhai::register(
                    engine,
                    host,
                    Arc::new(crate::validate::NoAccess {
                        why: "no db_user in the [aws] table: IAM database access is not configured (docs/aws.md)".into(),
                    }),
                );
            }));
        }
        let route_rt = Arc::new(OwnedRuntime(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("godwit-aws-route")
                .enable_all()
                .build()
                .ok(),
        ));
        let route_aws = aws.clone();
        plugins.push(Arc::new(move |engine: &mut rhai::Engine, host: &Host| {
            let router: Arc<dyn Router> = match (
                route_aws.settings.envoy_control_plane.as_deref(),
                route_rt.0.as_ref(),
            ) {
                (Some(cp), Some(rt)) => match super::settings::control_plane_addr(cp) {
                    Ok(addr) => Arc::new(RemoteRouter {
                        plane: RemotePlane::new(addr),
                        endpoints: Arc::new(AwsEndpoints {
                            api: AwsApi {
                                aws: route_aws.clone(),
                                host: host.clone(),
                            },
                        }),
                        handle: rt.handle().clone(),
                    }),
                    Err(e) => Arc::new(Unavailable(PrimitiveError::new(
                        "route",
                        "connect",
                        ErrorKind::Invalid,
                        e,
                        "fix envoy_control_plane in the [aws] table (docs/aws.md)",
                    ))),
                },
                _ => Arc::new(Unavailable(PrimitiveError::new(
                    "route",
                    "connect",
                    ErrorKind::Invalid,
                    "the aws world has no route backend: no envoy_control_plane is configured",
                    "set envoy_control_plane = \"HOST:PORT\" (godwit dal serve --api) in the [aws] table; docs/aws.md",
                ))),
            };
            crate::route::rhai::register(engine, host, router);
            let cdc: Arc<dyn Cdc> = match (&route_aws.settings.cdc_consumers, route_rt.0.as_ref()) {
                (Some(consumers), Some(rt)) if !consumers.is_empty() => Arc::new(HookCdc {
                    consumers: consumers.clone(),
                    pool: Arc::new(Pool::new(
                        Arc::new(IamConnector::new(route_aws.clone())),
                        rt.handle().clone(),
                    )),
                }),
                (consumers, _) => Arc::new(NoCdc {
                    declared_none: route_aws.settings.cdc.as_deref() == Some("none")
                        || consumers.as_ref().is_some_and(|c| c.is_empty()),
                }),
            };
            crate::cdc::rhai::register(engine, host, cdc);
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

/// Where RDS databases listen: the instance endpoint, or a cluster's writer endpoint, on the
/// PostgreSQL port. RDS endpoint names start with the identifier
/// (`orders-db.c9akciq32.eu-west-1.rds.amazonaws.com`, `orders-aurora.cluster-c9akciq32…`), which
/// is how an address in a route is named back.
struct AwsEndpoints {
    api: AwsApi,
}

/// RDS for PostgreSQL and Aurora PostgreSQL listen on 5432 unless created otherwise.
const PG_PORT: u16 = 5432;

impl Endpoints for AwsEndpoints {
    fn addr_of(&self, op: &str, db: &str) -> Result<Addr, PrimitiveError> {
        let endpoint = match self.api.describe_cluster(db) {
            Ok(c) => c.endpoint,
            Err(e) if e.kind == ErrorKind::NotFound => self.api.describe_instance(db)?.endpoint,
            Err(e) => return Err(e),
        };
        if endpoint.is_empty() {
            return Err(PrimitiveError::new(
                "route",
                op,
                ErrorKind::Conflict,
                format!("{db} has no endpoint yet"),
                "wait until it is available (rds::wait_until_*_available)",
            ));
        }
        Ok(Addr::new(endpoint, PG_PORT))
    }

    fn db_of(&self, addr: &Addr) -> String {
        if addr.is_ip() {
            return addr.to_string();
        }
        addr.host
            .split('.')
            .next()
            .unwrap_or(&addr.host)
            .to_string()
    }
}

/// `cdc` in the aws world: consumer hooks are not implemented. An empty consumer list would be
/// a claim ("nothing to pause") godwit cannot back, so every call fails — unless the settings
/// declare `cdc = "none"`, the operator's statement that the source has no consumers.
struct NoCdc {
    declared_none: bool,
}

fn no_cdc(op: &str) -> PrimitiveError {
    PrimitiveError::new(
        "cdc",
        op,
        ErrorKind::Invalid,
        "the aws world has no CDC backend: consumer pause/resume hooks are not implemented yet",
        "set cdc = \"none\" in the [aws] table if the source has no CDC consumers; otherwise pause \
         and resume them by hand around the cutover (docs/aws.md)",
    )
    .with_retryable(false)
}

impl Cdc for NoCdc {
    fn list_consumers(&self) -> Result<Vec<ConsumerInfo>, PrimitiveError> {
        if self.declared_none {
            return Ok(Vec::new());
        }
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
        if self.declared_none {
            return Ok(Vec::new());
        }
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
