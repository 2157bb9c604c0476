//! `godwit worlds`: the worlds this binary can run in.

use godwit_engine::exit;

use crate::session::Failure;
use crate::worlds::Worlds;

/// List the worlds this godwit can run in.
#[derive(clap::Args, Debug)]
pub struct WorldsArgs {}

impl WorldsArgs {
    pub fn execute(self, worlds: &Worlds) -> Result<i32, Failure> {
        println!("{}", worlds.describe());
        Ok(exit::OK)
    }
}
