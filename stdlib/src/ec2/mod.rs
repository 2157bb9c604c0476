//! Area `ec2`: VPC security groups, for the quarantine that fences the source.
//!
//! | file      | what                                     |
//! |-----------|------------------------------------------|
//! | `mod.rs`  | the [`Ec2`] trait and [`SecurityGroup`]  |
//! | `rhai.rs` | the Rhai module `ec2`                    |
//! | `sim.rs`  | [`Ec2`] over the simulator               |

#[cfg(feature = "aws")]
pub mod aws;
pub mod rhai;
pub mod sim;

use godwit_engine::Call;
use godwit_engine::PrimitiveError;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    pub vpc_id: String,
    /// Ingress rules as `proto/port from source`, e.g. `tcp/5432 from 10.0.0.0/8`.
    pub ingress: Vec<String>,
    pub egress: Vec<String>,
}

pub trait Ec2: Send + Sync {
    /// Security groups of a VPC, sorted by id.
    fn describe_security_groups(
        &self,
        cx: &Call<'_>,
        vpc_id: &str,
    ) -> Result<Vec<SecurityGroup>, PrimitiveError>;
    /// The deny-all group named `name` in `vpc_id` (no ingress, no egress), created if missing.
    fn ensure_quarantine_group(
        &self,
        cx: &Call<'_>,
        vpc_id: &str,
        name: &str,
    ) -> Result<SecurityGroup, PrimitiveError>;
}
