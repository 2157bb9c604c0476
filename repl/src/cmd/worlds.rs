//! `godwit worlds`: the worlds this binary can run in.

use godwit_engine::exit;

use crate::context::Context;
use crate::session::Failure;

/// List the worlds this godwit can run in (and those it was built without).
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  godwit worlds
  godwit worlds -o json | jq -r '.[].name'")]
pub struct WorldsArgs {}

impl WorldsArgs {
    pub fn execute(self, ctx: &Context) -> Result<i32, Failure> {
        if ctx.json() {
            crate::out::json(&ctx.worlds.list());
        } else {
            crate::out::line(ctx.worlds.describe());
        }
        Ok(exit::OK)
    }
}
