//! `godwit docs`: write the primitive reference of [`crate::docs`], or check it is current.

use std::path::PathBuf;

use godwit_engine::exit;
use serde_json::json;

use crate::context::Context;
use crate::session::{Failure, reference_engine};

/// Regenerate the primitive reference (docs/primitives) from the functions' doc comments.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  godwit docs                    rewrite docs/primitives after changing a function's /// comment
  godwit docs --check            CI: exit 10 when docs/primitives is out of date")]
pub struct DocsArgs {
    #[arg(long, default_value = "docs/primitives")]
    pub out: PathBuf,
    /// Only report whether the files are current: exit 10 (a check found problems) if not.
    #[arg(long)]
    pub check: bool,
}

impl DocsArgs {
    pub fn execute(self, ctx: &Context) -> Result<i32, Failure> {
        let out = &self.out;
        let files = crate::docs::generate(&reference_engine(&ctx.worlds)?);
        if self.check {
            let drift = crate::docs::drift(out, &files);
            if ctx.json() {
                crate::out::json(&json!({
                    "out": out, "files": files.len(), "current": drift.is_empty(), "drift": drift,
                }));
                return Ok(if drift.is_empty() {
                    exit::OK
                } else {
                    exit::CHECK_FAILED
                });
            }
            if drift.is_empty() {
                crate::out::line(format!(
                    "{} is current ({} files)",
                    out.display(),
                    files.len()
                ));
                return Ok(exit::OK);
            }
            return Err(Failure(
                exit::CHECK_FAILED,
                format!(
                    "{} is out of date: {}; run `godwit docs`",
                    out.display(),
                    drift.join(", ")
                ),
            ));
        }
        crate::docs::write(out, &files).map_err(|e| {
            Failure(
                exit::INTERNAL,
                format!("cannot write {}: {e}", out.display()),
            )
        })?;
        if ctx.json() {
            crate::out::json(&json!({ "out": out, "files": files.len(), "written": true }));
        } else {
            crate::out::line(format!("wrote {} files to {}", files.len(), out.display()));
        }
        Ok(exit::OK)
    }
}
