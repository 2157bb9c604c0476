//! The `aws` world: `rds`, `ec2` and `cw` on the AWS SDK, `pg` over TLS with IAM auth tokens
//! ([`IamConnector`]), on the system clock.
//!
//! `route` drives the Envoy fleet through `godwit dal serve`'s management API
//! (`envoy_control_plane`), naming RDS endpoints as route targets. `cdc` runs the operator's
//! pause/resume commands for declared consumers (`cdc::hooks`), reads positions from the
//! slots and creates the target's slots over IAM; undeclared, it fails clearly (`cdc = "none"`
//! declares a source without consumers) — see docs/aws.md.

use std::path::Path;
use std::sync::Arc;

use godwit_engine::{Call, ErrorKind, PrimitiveError, SystemClock};

use super::iam::IamConnector;
use super::{Aws, AwsApi, AwsSettings};
use crate::cdc::hooks::HookCdc;
use crate::cdc::{Cdc, ConsumerInfo, CreatedSlot, SlotPosition};
use crate::pg::live::{Connector, LivePg, OwnedRuntime, Pool};
use crate::rds::Rds;
use crate::route::remote::{Endpoints, RemoteRouter};
use crate::route::{Router, Unavailable};
use crate::world::{Areas, World};
use godwit_xds::model::Addr;
use godwit_xds::remote::RemotePlane;

pub use crate::world::settings_file;

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

/// The parts of the aws world that tests swap (they keep the SDK areas and script or record
/// the database side): how databases are reached, and who answers `route`.
pub struct AwsParts {
    pub connector: Arc<dyn Connector>,
    pub route: Option<Arc<dyn Router>>,
}

impl World {
    /// The aws world over `aws`: `rds`/`ec2`/`cw` on the SDK, `pg` and `validate` with IAM
    /// auth (or, without `db_user`, `validate` that says database access is not configured),
    /// `route` through the configured control plane, `cdc` over the declared consumers. Named
    /// `aws`.
    pub fn aws(aws: Arc<Aws>) -> Result<World, String> {
        let connector: Arc<dyn Connector> = Arc::new(IamConnector::new(aws.clone()));
        World::aws_with(
            aws,
            AwsParts {
                connector,
                route: None,
            },
        )
    }

    /// [`World::aws`] with `parts` swapped in (tests).
    pub fn aws_with(aws: Arc<Aws>, parts: AwsParts) -> Result<World, String> {
        let rt = OwnedRuntime::new("godwit-aws-pg")?;
        let pool = Arc::new(Pool::new(parts.connector, rt.handle()));
        let api = Arc::new(AwsApi { aws: aws.clone() });
        let validate: Arc<dyn crate::validate::Validate> = if aws.settings.db_user.is_none() {
            // Without IAM database access the exact validation is skipped (the runbook asks
            // validate::available), rather than failing at its first connection.
            Arc::new(crate::validate::NoAccess {
                why: "no db_user in the [aws] table: IAM database access is not configured (docs/aws.md)".into(),
            })
        } else {
            Arc::new(crate::validate::live::LiveValidate::new(pool.clone()))
        };
        let route = match parts.route {
            Some(r) => r,
            None => router(&aws, &api),
        };
        let cdc: Arc<dyn Cdc> = match &aws.settings.cdc_consumers {
            Some(consumers) if !consumers.is_empty() => Arc::new(HookCdc {
                consumers: consumers.clone(),
                pool: pool.clone(),
            }),
            consumers => Arc::new(NoCdc {
                declared_none: aws.settings.cdc.as_deref() == Some("none")
                    || consumers.as_ref().is_some_and(|c| c.is_empty()),
            }),
        };
        let mut world = World::new(
            "aws",
            Arc::new(SystemClock),
            Areas {
                rds: api.clone(),
                ec2: api.clone(),
                cw: api,
                pg: Arc::new(LivePg::new(pool)),
                route,
                cdc,
                validate,
                schema: Arc::new(crate::schema::hooks::HookSchema::new(
                    aws.settings.schema_freeze.clone(),
                    "no [aws.schema_freeze] table: the team's schema migrations are not frozen during the rollback window; a DDL on Aurora then stops a rollback (detected) until both sides agree again",
                )),
            },
        );
        world.keep.push(rt);
        Ok(world)
    }

    /// The aws world the CLI builds for `--world aws`: settings saved for the run (see
    /// [`settings_file`]) or none, then the SDK's own chains (environment, profile).
    pub fn aws_from_state(state_file: Option<&Path>) -> Result<World, String> {
        let settings = saved_settings(state_file)?.unwrap_or_default();
        World::aws(Arc::new(Aws::connect(settings, None)?))
    }
}

/// `route` in the aws world: the control plane of `envoy_control_plane`, naming RDS endpoints
/// as targets; without one, a backend that says how to configure it.
fn router(aws: &Arc<Aws>, api: &Arc<AwsApi>) -> Arc<dyn Router> {
    let unavailable = |msg: String, hint: &str| -> Arc<dyn Router> {
        Arc::new(Unavailable(PrimitiveError::new(
            "route",
            "connect",
            ErrorKind::Invalid,
            msg,
            hint,
        )))
    };
    match aws.settings.envoy_control_plane.as_deref() {
        Some(cp) => match super::settings::control_plane_addr(cp) {
            Ok(addr) => Arc::new(RemoteRouter {
                plane: RemotePlane::new(addr),
                endpoints: Arc::new(AwsEndpoints { api: api.clone() }),
            }),
            Err(e) => unavailable(
                e,
                "fix envoy_control_plane in the [aws] table (docs/aws.md)",
            ),
        },
        None => unavailable(
            "the aws world has no route backend: no envoy_control_plane is configured".into(),
            "set envoy_control_plane = \"HOST:PORT\" (godwit dal serve --api) in the [aws] table; docs/aws.md",
        ),
    }
}

/// Where RDS databases listen: the instance endpoint, or a cluster's writer endpoint, on the
/// port RDS describes (`Endpoint.Port`, `DBCluster.Port`; never assumed). RDS endpoint names start with the identifier
/// (`orders-db.c9akciq32.eu-west-1.rds.amazonaws.com`, `orders-aurora.cluster-c9akciq32…`), which
/// is how an address in a route is named back.
struct AwsEndpoints {
    api: Arc<AwsApi>,
}

/// Where `db` listens as RDS describes it: a cluster's writer endpoint or an instance's
/// endpoint, on its own port (`DBCluster.Port`, `Endpoint.Port`; never assumed to be 5432).
/// `Conflict` while it has no endpoint yet.
pub fn endpoint_addr(
    rds: &dyn Rds,
    cx: &Call<'_>,
    op: &str,
    db: &str,
) -> Result<Addr, PrimitiveError> {
    let not_found = |e: PrimitiveError| match e.kind {
        ErrorKind::NotFound => crate::route::target_not_found(op, db),
        _ => e,
    };
    let (endpoint, port) = match rds.describe_cluster(cx, db) {
        Ok(c) => (c.endpoint, c.port),
        Err(e) if e.kind == ErrorKind::NotFound => {
            let i = rds.describe_instance(cx, db).map_err(not_found)?;
            (i.endpoint, i.port)
        }
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
    Ok(Addr::new(endpoint, port))
}

impl Endpoints for AwsEndpoints {
    fn addr_of(&self, cx: &Call<'_>, op: &str, db: &str) -> Result<Addr, PrimitiveError> {
        endpoint_addr(self.api.as_ref(), cx, op, db)
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
    fn list_consumers(&self, _cx: &Call<'_>) -> Result<Vec<ConsumerInfo>, PrimitiveError> {
        if self.declared_none {
            return Ok(Vec::new());
        }
        Err(no_cdc("list_consumers"))
    }
    fn pause_consumer(&self, _cx: &Call<'_>, _name: &str) -> Result<ConsumerInfo, PrimitiveError> {
        Err(no_cdc("pause_consumer"))
    }
    fn resume_consumer(
        &self,
        _cx: &Call<'_>,
        _name: &str,
        _db: &str,
        _slot: &str,
        _position: Option<u64>,
    ) -> Result<ConsumerInfo, PrimitiveError> {
        Err(no_cdc("resume_consumer"))
    }
    fn record_positions(&self, _cx: &Call<'_>) -> Result<Vec<SlotPosition>, PrimitiveError> {
        if self.declared_none {
            return Ok(Vec::new());
        }
        Err(no_cdc("record_positions"))
    }
    fn create_equivalent_slots(
        &self,
        _cx: &Call<'_>,
        _db: &str,
        _slots: &[String],
    ) -> Result<Vec<CreatedSlot>, PrimitiveError> {
        Err(no_cdc("create_equivalent_slots"))
    }
}
