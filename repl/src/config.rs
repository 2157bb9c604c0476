//! What the operator gives a run besides the world: the RUNBOOK argument, runbook parameters
//! from `--config FILE` (TOML) and `--set KEY=VALUE`, and a world's settings from the same
//! file (`[aws]`, `[clusters.<id>.aws]`), which reach the world factory through a file beside
//! the world's state file. Every error is invalid input (exit 2) naming the file and the key.

use std::path::PathBuf;

use godwit_engine::exit;
use godwit_stdlib::aws::world::settings_file;
use serde_json::Value;

use crate::session::{Failure, invalid};

/// A path that exists, else `runbooks/NAME.rhai` under the current directory.
pub(crate) fn find_runbook(arg: &str) -> Result<PathBuf, Failure> {
    let p = PathBuf::from(arg);
    if p.is_file() {
        return Ok(p);
    }
    let named = PathBuf::from("runbooks").join(format!("{arg}.rhai"));
    if named.is_file() {
        return Ok(named);
    }
    let available: Vec<String> = std::fs::read_dir("runbooks")
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .filter_map(|n| n.strip_suffix(".rhai").map(String::from))
                .collect()
        })
        .unwrap_or_default();
    Err(invalid(format!(
        "runbook '{arg}' not found: not a file, and no runbooks/{arg}.rhai here{}",
        if available.is_empty() {
            String::new()
        } else {
            format!(" (available: {})", available.join(", "))
        }
    )))
}

/// Write a world's settings beside its state file `state`, where its factory reads them.
pub(crate) fn write_settings(state: &std::path::Path, v: &Value) -> Result<(), Failure> {
    let path = settings_file(state);
    std::fs::write(&path, v.to_string()).map_err(|e| {
        Failure(
            exit::INTERNAL,
            format!("cannot write {}: {e}", path.display()),
        )
    })
}

/// The settings of world `world` for `cluster` from a config file: the `[<world>]` table,
/// overridden key by key by `[clusters.<cluster>.<world>]`. Checked here, so a wrong key is an
/// error naming it before anything runs. `None` when the file has neither table.
pub(crate) fn world_settings(
    file: &std::path::Path,
    cluster: &str,
    world: &str,
) -> Result<Option<Value>, Failure> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| invalid(format!("cannot read config {}: {e}", file.display())))?;
    let doc: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| invalid(format!("config {}: {e}", file.display())))?;
    let top = doc.get(world).cloned();
    let mine = doc
        .get("clusters")
        .and_then(|c| c.get(cluster))
        .and_then(|c| c.get(world))
        .cloned();
    if top.is_none() && mine.is_none() {
        return Ok(None);
    }
    let json = |v: Option<toml::Value>| -> Result<Value, Failure> {
        serde_json::to_value(v.unwrap_or(toml::Value::Table(toml::Table::new())))
            .map_err(|e| invalid(format!("config {}: {e}", file.display())))
    };
    let (top, mine) = (json(top)?, json(mine)?);
    match world {
        "aws" => {
            use godwit_stdlib::aws::AwsSettings;
            let origin = |t: &str| format!("config {} [{t}]", file.display());
            let top = AwsSettings::from_json(top, &origin("aws")).map_err(invalid)?;
            let mine = AwsSettings::from_json(mine, &origin(&format!("clusters.{cluster}.aws")))
                .map_err(invalid)?;
            let merged = top.overridden_by(mine);
            serde_json::to_value(merged)
                .map(Some)
                .map_err(|e| Failure(exit::INTERNAL, e.to_string()))
        }
        other => Err(invalid(format!(
            "config {}: world '{other}' takes no [{other}] settings",
            file.display()
        ))),
    }
}

/// Parameters for `cluster` from a TOML file: top-level values, overridden by
/// `[clusters.<cluster>]`. Tables named after a world (`[aws]`, `[clusters.<id>.aws]`) are
/// that world's settings (see [`world_settings`]), not parameters. Errors name the file and the
/// key.
pub(crate) fn load_config(
    file: &std::path::Path,
    cluster: &str,
    worlds: &[String],
) -> Result<serde_json::Map<String, Value>, Failure> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| invalid(format!("cannot read config {}: {e}", file.display())))?;
    let doc: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| invalid(format!("config {}: {e}", file.display())))?;
    let to_json = |key: &str, v: &toml::Value| -> Result<Value, Failure> {
        serde_json::to_value(v)
            .map_err(|e| invalid(format!("config {}: {key}: {e}", file.display())))
    };
    let mut out = serde_json::Map::new();
    let mut per_cluster = None;
    for (k, v) in &doc {
        if k == "clusters" {
            let toml::Value::Table(t) = v else {
                return Err(invalid(format!(
                    "config {}: `clusters` must be a table of [clusters.<id>] tables",
                    file.display()
                )));
            };
            per_cluster = t.get(cluster).cloned();
            for (id, c) in t {
                if !c.is_table() {
                    return Err(invalid(format!(
                        "config {}: clusters.{id} must be a table of parameters",
                        file.display()
                    )));
                }
            }
        } else if worlds.contains(k) && v.is_table() {
            // World settings, read by world_settings.
        } else {
            if v.is_table() {
                return Err(invalid(format!(
                    "config {}: `{k}` is a table; parameters are plain values, per-cluster ones go under [clusters.<id>]",
                    file.display()
                )));
            }
            out.insert(k.clone(), to_json(k, v)?);
        }
    }
    if let Some(toml::Value::Table(t)) = per_cluster {
        for (k, v) in &t {
            if worlds.contains(k) && v.is_table() {
                continue; // world settings, read by world_settings
            }
            out.insert(k.clone(), to_json(&format!("clusters.{cluster}.{k}"), v)?);
        }
    }
    Ok(out)
}

/// `--set KEY=VALUE` flags as parameters: VALUE is JSON when it parses, else a string.
pub(crate) fn parse_sets(sets: &[String]) -> Result<serde_json::Map<String, Value>, Failure> {
    let mut out = serde_json::Map::new();
    for s in sets {
        let (k, v) = s.split_once('=').ok_or_else(|| {
            invalid(format!(
                "--set {s:?}: expected KEY=VALUE, e.g. --set max_replica_lag=5"
            ))
        })?;
        let k = k.trim();
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(invalid(format!(
                "--set {s:?}: key must be letters, digits and '_'"
            )));
        }
        let value =
            serde_json::from_str::<Value>(v).unwrap_or_else(|_| Value::String(v.to_string()));
        out.insert(k.to_string(), value);
    }
    Ok(out)
}
