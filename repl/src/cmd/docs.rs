//! `godwit docs`: write the primitive reference of [`crate::docs`], or check it is current.

use std::path::PathBuf;

use godwit_engine::exit;

use crate::session::{Failure, reference_engine};
use crate::worlds::Worlds;

/// Regenerate the primitive reference (docs/primitives) from the functions' doc comments.
#[derive(clap::Args, Debug)]
pub struct DocsArgs {
    #[arg(long, default_value = "docs/primitives")]
    pub out: PathBuf,
    /// Only report whether the files are current (exit 1 if not).
    #[arg(long)]
    pub check: bool,
}

impl DocsArgs {
    pub fn execute(self, worlds: &Worlds) -> Result<i32, Failure> {
        let out = &self.out;
        let files = crate::docs::generate(&reference_engine(worlds)?);
        if self.check {
            let drift = crate::docs::drift(out, &files);
            if drift.is_empty() {
                println!("{} is current ({} files)", out.display(), files.len());
                return Ok(exit::OK);
            }
            return Err(Failure(
                exit::INTERNAL,
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
        println!("wrote {} files to {}", files.len(), out.display());
        Ok(exit::OK)
    }
}
