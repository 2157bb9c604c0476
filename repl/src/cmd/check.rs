//! `godwit check`: parse a runbook and its modules in a world, lint them, run nothing.

use godwit_engine::exit;
use godwit_engine::runbook::short_hash;
use serde_json::json;

use crate::config::find_runbook;
use crate::context::Context;
use crate::session::{Failure, Output, invalid, runner};

/// Parse a runbook (and its modules) without running it, and lint it: unknown functions, step
/// and gate names that are not journal keys, world calls outside steps. Prints its identity and
/// hash; exit 10 when a lint found something, 2 when it does not parse.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  godwit check rds-to-aurora
  godwit check my-variant.rhai --world sim -o json")]
pub struct CheckArgs {
    /// A runbook file, or the name of one in ./runbooks.
    pub runbook: String,
    /// The world whose primitives the runbook is checked against [default: sim].
    #[arg(long)]
    pub world: Option<String>,
}

impl CheckArgs {
    pub fn execute(self, ctx: &Context) -> Result<i32, Failure> {
        let worlds = &ctx.worlds;
        let path = find_runbook(&self.runbook)?;
        let world = worlds
            .build(self.world.as_deref().unwrap_or(&worlds.default), None)
            .map_err(invalid)?;
        let store = crate::state::Store::File(godwit_engine::journal::file::FileStore::new(
            std::env::temp_dir().join("godwit-check-unused"),
        ));
        let (runner, _rt) = runner(&store, world, &Output::quiet())?;
        let (rb, lints) =
            godwit_engine::run::lint_runbook(&runner, &path, godwit_stdlib::PURE_AREAS)?;
        let code = if lints.is_empty() {
            exit::OK
        } else {
            exit::CHECK_FAILED
        };
        if ctx.json() {
            crate::out::json(&json!({
                "runbook": rb.info.name,
                "version": rb.info.version,
                "hash": rb.info.hash,
                "modules": rb.info.modules,
                "problems": lints,
            }));
            return Ok(code);
        }
        crate::out::line(format!(
            "{} {} ({})",
            rb.info.name, rb.info.version, rb.info.hash
        ));
        for m in &rb.info.modules {
            crate::out::line(format!(
                "  import \"{}\" → {} ({})",
                m.import,
                m.path,
                short_hash(&m.hash)
            ));
        }
        for l in &lints {
            crate::out::error(&l.render());
        }
        if !lints.is_empty() {
            crate::out::note(format!(
                "{} problem(s): the run would fail where shown, possibly after earlier steps changed the world",
                lints.len()
            ));
        }
        Ok(code)
    }
}
