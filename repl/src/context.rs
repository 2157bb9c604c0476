//! What every command gets from the command line besides its own arguments: the worlds of this
//! binary, the output format (`-o text|json`), and the state directory — resolved only when the
//! command needs it, so `godwit worlds`, `godwit demo --list` or `godwit completions` work on a
//! machine with no home directory.

use std::path::PathBuf;

use crate::session::{Failure, invalid};
use crate::state::{Store, pg_store, state_dir, store};
use crate::worlds::Worlds;

/// How a command prints its result (`-o`, `--json`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    /// For people: tables, colour on terminals (NO_COLOR turns it off), progress while waiting.
    #[default]
    Text,
    /// One JSON value on stdout (an object, or an array for lists); messages stay on stderr.
    Json,
}

/// The command line's shared part, handed to every command.
pub struct Context {
    state_flag: Option<PathBuf>,
    /// `--store` / `GODWIT_STORE`: a PostgreSQL URL, or none for the file store.
    store_flag: Option<String>,
    pub worlds: Worlds,
    pub format: Format,
}

impl Context {
    pub fn new(state_flag: Option<PathBuf>, worlds: Worlds, format: Format) -> Context {
        Context::with_store(state_flag, None, worlds, format)
    }

    /// [`Context::new`] with `--store`.
    pub fn with_store(
        state_flag: Option<PathBuf>,
        store_flag: Option<String>,
        worlds: Worlds,
        format: Format,
    ) -> Context {
        let mut worlds = worlds;
        // Every binary has the lab world; a test binary may bring its own.
        if worlds.get("lab").is_none() {
            worlds.add(crate::lab::world_def());
        }
        Context {
            state_flag,
            store_flag: store_flag.filter(|s| !s.is_empty()),
            worlds,
            format,
        }
    }

    /// `-o json` / `--json`.
    pub fn json(&self) -> bool {
        self.format == Format::Json
    }

    /// The state directory (`--state-dir`, `GODWIT_STATE_DIR`, XDG); an error when none can
    /// be found (exit 2).
    pub fn state_dir(&self) -> Result<PathBuf, Failure> {
        state_dir(self.state_flag.clone()).map_err(invalid)
    }

    /// The run store: the PostgreSQL store `--store` (or `GODWIT_STORE`, or the settings
    /// file's `store.url`) names — connected now: an unreachable one is exit 2 before anything
    /// runs — else the files under the state directory.
    pub fn store(&self) -> Result<Store, Failure> {
        self.store_with(None)
    }

    /// [`Context::store`] with a lease of the caller's (a worker's `--lease`) over the
    /// settings file's.
    pub fn store_with(&self, lease: Option<std::time::Duration>) -> Result<Store, Failure> {
        let (settings, _) = crate::settings::load().map_err(invalid)?;
        let mut options = settings.store.options();
        if let Some(lease) = lease {
            options.lease = lease;
        }
        match self.store_flag.as_ref().or(settings.store.url.as_ref()) {
            Some(url) => Ok(Store::Pg(pg_store(url, options).map_err(invalid)?)),
            None => Ok(Store::File(store(&self.state_dir()?))),
        }
    }
}
