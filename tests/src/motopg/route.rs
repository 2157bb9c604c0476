//! `route` in the aws world over the harness: the aws world's own router
//! (`route::remote::RemoteRouter` on the control plane of `envoy_control_plane`), with one
//! difference in naming addresses back.
//!
//! The aws world names an address in a route by the first label of an RDS endpoint name
//! (`orders-db.c9akciq32.eu-west-1.rds.amazonaws.com` → `orders-db`). The harness's endpoints are
//! loopback addresses (no name can resolve to loopback without changing `/etc/hosts`), which
//! that rule names by themselves (`127.1.2.3:5432`): a route would then never say it serves
//! `orders-db`. [`HarnessEndpoints`] names them from the harness's doors instead; where a
//! database's address comes from is the aws world's own rule
//! (`godwit_stdlib::aws::world::endpoint_addr`).

use std::sync::Arc;

use godwit_engine::{Call, PrimitiveError};
use godwit_stdlib::aws::Aws;
use godwit_stdlib::aws::iam::IamConnector;
use godwit_stdlib::aws::world::AwsParts;
use godwit_stdlib::rds::Rds;
use godwit_stdlib::route::remote::{Endpoints, RemoteRouter};
use godwit_stdlib::world::World;
use godwit_xds::model::Addr;
use godwit_xds::remote::RemotePlane;

use super::{Harness, MotoPg};

pub struct HarnessEndpoints {
    rds: Arc<dyn Rds>,
    harness: Arc<Harness>,
}

impl Endpoints for HarnessEndpoints {
    fn addr_of(&self, cx: &Call<'_>, op: &str, db: &str) -> Result<Addr, PrimitiveError> {
        godwit_stdlib::aws::world::endpoint_addr(self.rds.as_ref(), cx, op, db)
    }

    fn db_of(&self, addr: &Addr) -> String {
        self.harness
            .name_of(&addr.host, addr.port)
            .unwrap_or_else(|| addr.to_string())
    }
}

impl MotoPg {
    /// The aws world on `aws` (settings from [`MotoPg::settings`]) as `World::aws` builds it —
    /// IAM connector, SDK areas, `route` through `envoy_control_plane` — with the harness's
    /// addresses named back ([`HarnessEndpoints`]).
    pub fn world(&self, aws: Arc<Aws>) -> World {
        let plain = World::aws(aws.clone()).unwrap_or_else(|e| panic!("{e}"));
        let rds = plain.areas.as_ref().expect("areas").rds.clone();
        let route = aws.settings.envoy_control_plane.as_deref().map(|api| {
            Arc::new(RemoteRouter {
                plane: RemotePlane::new(api.parse().expect("envoy_control_plane HOST:PORT")),
                endpoints: Arc::new(HarnessEndpoints {
                    rds,
                    harness: self.harness.clone(),
                }),
            }) as Arc<dyn godwit_stdlib::route::Router>
        });
        World::aws_with(
            aws.clone(),
            AwsParts {
                connector: Arc::new(IamConnector::new(aws)),
                route,
            },
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }
}
