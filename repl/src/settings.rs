//! Machine settings: what a machine's godwit commands share and nobody wants to type every
//! time — today the shared store. A TOML file, `$GODWIT_SETTINGS`, else
//! `$XDG_CONFIG_HOME/godwit/settings.toml`, else `~/.config/godwit/settings.toml`; absent is
//! fine (nothing set). Read only when a command needs what it holds, so a broken file never
//! stops `godwit worlds` or `--help`, and parsed strictly: an unknown key or a bad value is an
//! error naming the file, the key and the fix (exit 2), before anything runs.
//!
//! ```toml
//! [store]
//! url = "postgres://godwit@store.internal:5432/godwit"   # like --store / GODWIT_STORE
//! lease = "30s"              # a worker's lease (godwit worker --lease wins)
//! statement_timeout = "10s"  # the longest one store statement may take
//! ```
//!
//! Precedence, most specific first: the flag, its environment variable, this file, the
//! default. Three keys over clap's flag-then-environment do not need a layering crate; the
//! `toml` crate (already in the tree) parses with serde's `deny_unknown_fields`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub store: StoreSettings,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// The shared store's URL (`--store`).
    pub url: Option<String>,
    /// Workers' lease.
    pub lease: Option<String>,
    /// The longest one store statement may take.
    pub statement_timeout: Option<String>,
}

/// Where the settings file is looked for (it need not exist).
pub fn path() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("GODWIT_SETTINGS")
        .or_else(|| env("XDG_CONFIG_HOME").map(|d| d.join("godwit/settings.toml")))
        .or_else(|| env("HOME").map(|h| h.join(".config/godwit/settings.toml")))
}

/// The settings at [`path`]; default when there is no file. `GODWIT_SETTINGS` naming a file
/// that does not exist is an error (a typo there must not silently mean "no store").
pub fn load() -> Result<(Settings, Option<PathBuf>), String> {
    let Some(path) = path() else {
        return Ok((Settings::default(), None));
    };
    let explicit = std::env::var_os("GODWIT_SETTINGS").is_some_and(|v| !v.is_empty());
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&path, &text).map(|s| (s, Some(path))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
            Ok((Settings::default(), None))
        }
        Err(e) => Err(format!(
            "settings file {} (GODWIT_SETTINGS): cannot read it: {e}",
            path.display()
        )),
    }
}

/// Parse and check a settings file's text.
pub fn parse(path: &Path, text: &str) -> Result<Settings, String> {
    let s: Settings = toml::from_str(text).map_err(|e| {
        format!(
            "settings file {}: {}",
            path.display(),
            e.to_string().trim_end()
        )
    })?;
    for (key, v) in [
        ("store.lease", &s.store.lease),
        ("store.statement_timeout", &s.store.statement_timeout),
    ] {
        if let Some(v) = v {
            godwit_engine::duration::parse_duration(v).map_err(|e| {
                format!(
                    "settings file {}: {key} = {v:?}: {e}; write a duration such as \"30s\"",
                    path.display()
                )
            })?;
        }
    }
    if let Some(url) = &s.store.url
        && !godwit_pgstore::is_url(url)
    {
        return Err(format!(
            "settings file {}: store.url must be a postgres:// URL (the file store needs no \
             setting); remove it to keep runs in files",
            path.display()
        ));
    }
    Ok(s)
}

impl StoreSettings {
    fn duration(v: &Option<String>) -> Option<Duration> {
        v.as_deref()
            .and_then(|v| godwit_engine::duration::parse_duration(v).ok())
    }

    /// The store's options: these settings over the defaults.
    pub fn options(&self) -> godwit_pgstore::Options {
        let d = godwit_pgstore::Options::default();
        godwit_pgstore::Options {
            lease: Self::duration(&self.lease).unwrap_or(d.lease),
            op_timeout: Self::duration(&self.statement_timeout).unwrap_or(d.op_timeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_settings_file_is_parsed_strictly_naming_the_file_and_key() {
        let p = Path::new("/etc/godwit/settings.toml");
        let s = parse(
            p,
            "[store]\nurl = \"postgres://g@h/db\"\nlease = \"45s\"\nstatement_timeout = \"5s\"\n",
        )
        .unwrap();
        assert_eq!(s.store.url.as_deref(), Some("postgres://g@h/db"));
        assert_eq!(s.store.options().lease, Duration::from_secs(45));
        assert_eq!(s.store.options().op_timeout, Duration::from_secs(5));
        assert_eq!(
            parse(p, "").unwrap().store.options().lease,
            Duration::from_secs(30)
        );
        let err = parse(p, "[store]\nurll = \"x\"\n").unwrap_err();
        assert!(
            err.contains("/etc/godwit/settings.toml")
                && err.contains("urll")
                && err.contains("url"),
            "{err}"
        );
        let err = parse(p, "[stor]\n").unwrap_err();
        assert!(err.contains("stor"), "{err}");
        let err = parse(p, "[store]\nlease = \"soon\"\n").unwrap_err();
        assert!(err.contains("store.lease = \"soon\""), "{err}");
        let err = parse(p, "[store]\nurl = \"/var/lib/godwit\"\n").unwrap_err();
        assert!(err.contains("postgres://"), "{err}");
    }
}
