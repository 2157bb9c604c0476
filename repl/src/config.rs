//! What the operator gives a run besides the world: the RUNBOOK argument, runbook parameters
//! from `--config FILE` (TOML) and `--set KEY=VALUE`, and the aws world's settings from the same
//! file (`[aws]`, `[clusters.<id>.aws]`) and from `--profile/--region/--endpoint-url`, which reach
//! the world factory through a file beside the world's state file. Every error is invalid input
//! (exit 2) naming the file and the key.
//!
//! The file is parsed into [`ConfigFile`] with serde: the world settings into the world's own
//! strict struct (`AwsSettings`, `deny_unknown_fields`), the rest into runbook parameters, which
//! the runbook's schema then checks by name, type and range (`engine/src/params.rs`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use godwit_engine::exit;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::session::{Failure, invalid};

/// A `--config` file: top-level runbook parameters for every cluster, `[clusters.<id>]` per
/// cluster, `[aws]` (and `[clusters.<id>.aws]`) for the aws world.
#[derive(Debug, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    clusters: BTreeMap<String, ClusterSection>,
    #[serde(default)]
    aws: Option<Map<String, Value>>,
    /// Everything else: runbook parameters (checked against the runbook's schema).
    #[serde(flatten)]
    params: Map<String, Value>,
}

/// `[clusters.<id>]`: this cluster's parameters, over the top-level ones; `[clusters.<id>.aws]`.
#[derive(Debug, Deserialize)]
struct ClusterSection {
    #[serde(default)]
    aws: Option<Map<String, Value>>,
    #[serde(flatten)]
    params: Map<String, Value>,
}

impl ConfigFile {
    fn load(file: &Path) -> Result<ConfigFile, Failure> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| invalid(format!("cannot read config {}: {e}", file.display())))?;
        let de = toml::Deserializer::parse(&text)
            .map_err(|e| invalid(format!("config {}: {e}", file.display())))?;
        // The path of the value that did not fit, e.g. `clusters.orders-db`.
        let config: ConfigFile = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            invalid(format!(
                "config {}: {}: {}",
                file.display(),
                if path == "." {
                    "(top level)".into()
                } else {
                    path
                },
                e.into_inner()
            ))
        })?;
        let plain = |at: &str, params: &Map<String, Value>| -> Result<(), Failure> {
            match params.iter().find(|(_, v)| v.is_object()) {
                Some((k, _)) => Err(invalid(format!(
                    "config {}: `{at}{k}` is a table; parameters are plain values, per-cluster ones go under [clusters.<id>]",
                    file.display()
                ))),
                None => Ok(()),
            }
        };
        plain("", &config.params)?;
        for (id, c) in &config.clusters {
            plain(&format!("clusters.{id}."), &c.params)?;
        }
        Ok(config)
    }
}

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
            let mut names: Vec<String> = rd
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .filter_map(|n| n.strip_suffix(".rhai").map(String::from))
                .collect();
            names.sort();
            names
        })
        .unwrap_or_default();
    let names: Vec<&str> = available.iter().map(String::as_str).collect();
    let hint = godwit_engine::params::suggest(arg, &names)
        .map(|n| format!("; did you mean {n}?"))
        .unwrap_or_default();
    Err(invalid(format!(
        "runbook '{arg}' not found: not a file, and no runbooks/{arg}.rhai here{hint}{}",
        if available.is_empty() {
            String::new()
        } else {
            format!(" (available: {})", available.join(", "))
        }
    )))
}

/// Write a world's settings beside its state file `state`, where its factory reads them.
pub(crate) fn write_settings(state: &Path, v: &Value) -> Result<(), Failure> {
    let path = godwit_stdlib::world::settings_file(state);
    std::fs::write(&path, v.to_string()).map_err(|e| {
        Failure(
            exit::INTERNAL,
            format!("cannot write {}: {e}", path.display()),
        )
    })
}

/// `--profile`, `--region`, `--endpoint-url`: the aws world's connection, over the `[aws]`
/// tables of `--config` (like the AWS CLI's flags; the SDK's own environment variables and
/// `~/.aws/config` still apply underneath).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct AwsFlags {
    /// AWS named profile (aws world).
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// AWS region, e.g. eu-west-1 (aws world).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Endpoint URL for every AWS service: an emulator, a VPC interface endpoint (aws world).
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
}

impl AwsFlags {
    fn given(&self) -> Map<String, Value> {
        let mut m = Map::new();
        for (k, v) in [
            ("profile", &self.profile),
            ("region", &self.region),
            ("endpoint_url", &self.endpoint_url),
        ] {
            if let Some(v) = v {
                m.insert(k.into(), Value::String(v.clone()));
            }
        }
        m
    }
}

/// The settings of world `world` for `cluster`: the config file's `[<world>]` table, overridden
/// key by key by `[clusters.<cluster>.<world>]`, then by the flags. Checked here, so a wrong key
/// is an error naming it before anything runs. `None` when nothing was given.
pub(crate) fn world_settings(
    file: Option<&Path>,
    cluster: &str,
    world: &str,
    flags: &AwsFlags,
) -> Result<Option<Value>, Failure> {
    let given = flags.given();
    if world != "aws" && !given.is_empty() {
        return Err(invalid(format!(
            "--{} applies to the aws world, and this run is in world '{world}'",
            given
                .keys()
                .next()
                .map(|k| k.replace('_', "-"))
                .unwrap_or_default()
        )));
    }
    let (top, mine) = match file {
        Some(file) => {
            let config = ConfigFile::load(file)?;
            let mine = config.clusters.get(cluster).and_then(|c| c.aws.clone());
            (config.aws, mine)
        }
        None => (None, None),
    };
    if world != "aws" || (top.is_none() && mine.is_none() && given.is_empty()) {
        return Ok(None);
    }
    let file = file.map(|f| f.display().to_string()).unwrap_or_default();
    aws_settings(&file, cluster, top, mine, given).map(Some)
}

#[cfg(feature = "aws")]
fn aws_settings(
    file: &str,
    cluster: &str,
    top: Option<Map<String, Value>>,
    mine: Option<Map<String, Value>>,
    flags: Map<String, Value>,
) -> Result<Value, Failure> {
    use godwit_stdlib::aws::AwsSettings;
    let parse = |v: Option<Map<String, Value>>, origin: String| {
        AwsSettings::from_json(Value::Object(v.unwrap_or_default()), &origin).map_err(invalid)
    };
    let top = parse(top, format!("config {file} [aws]"))?;
    let mine = parse(mine, format!("config {file} [clusters.{cluster}.aws]"))?;
    let flags = parse(Some(flags), "--profile/--region/--endpoint-url".into())?;
    serde_json::to_value(top.overridden_by(mine).overridden_by(flags))
        .map_err(|e| Failure(exit::INTERNAL, e.to_string()))
}

#[cfg(not(feature = "aws"))]
fn aws_settings(
    _file: &str,
    _cluster: &str,
    _top: Option<Map<String, Value>>,
    _mine: Option<Map<String, Value>>,
    _flags: Map<String, Value>,
) -> Result<Value, Failure> {
    Err(invalid(format!(
        "this godwit was built without the aws world: {}",
        crate::worlds::WITH_AWS
    )))
}

/// Parameters for `cluster` from a config file: top-level values, overridden by
/// `[clusters.<cluster>]`; world settings (`[aws]`, `[clusters.<id>.aws]`) are not parameters.
pub(crate) fn load_config(file: &Path, cluster: &str) -> Result<Map<String, Value>, Failure> {
    let config = ConfigFile::load(file)?;
    let mut out = config.params;
    if let Some(c) = config.clusters.get(cluster) {
        out.extend(c.params.clone());
    }
    Ok(out)
}

/// `--set KEY=VALUE` flags as parameters: VALUE is JSON when it parses, else a string.
pub(crate) fn parse_sets(sets: &[String]) -> Result<Map<String, Value>, Failure> {
    let mut out = Map::new();
    for s in sets {
        let (k, v) = s.split_once('=').ok_or_else(|| {
            invalid(format!(
                "--set {s:?}: expected KEY=VALUE, e.g. --set max_replica_lag_p99=5"
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `--profile/--region/--endpoint-url` win over the config file's `[aws]` tables, key by key.
    #[cfg(feature = "aws")]
    #[test]
    fn aws_flags_override_the_config_files_aws_tables() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("fleet.toml");
        std::fs::write(
            &file,
            "[aws]\nregion = \"eu-west-1\"\nprofile = \"ops\"\n[clusters.orders-db.aws]\nregion = \"us-east-2\"\n",
        )
        .unwrap();
        let flags = AwsFlags {
            region: Some("eu-central-1".into()),
            ..AwsFlags::default()
        };
        let v = world_settings(Some(&file), "orders-db", "aws", &flags)
            .unwrap()
            .unwrap();
        assert_eq!(v["region"], "eu-central-1");
        assert_eq!(v["profile"], "ops");
        let Err(Failure(code, msg)) = world_settings(None, "orders-db", "sim", &flags) else {
            panic!("--region with another world")
        };
        assert_eq!(code, exit::INVALID_INPUT);
        assert!(msg.contains("--region applies to the aws world"), "{msg}");
    }

    /// Config errors name the file and the key path (serde structs).
    #[test]
    fn a_config_error_names_the_file_and_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "[clusters.orders-db]\nwindow = { a = 1 }\n").unwrap();
        let Err(Failure(code, msg)) = load_config(&file, "orders-db") else {
            panic!("a table as a parameter")
        };
        assert_eq!(code, exit::INVALID_INPUT);
        assert!(
            msg.contains("bad.toml") && msg.contains("clusters.orders-db.window"),
            "{msg}"
        );
        std::fs::write(&file, "clusters = 3\n").unwrap();
        let Err(Failure(_, msg)) = load_config(&file, "orders-db") else {
            panic!("clusters must be a table")
        };
        assert!(msg.contains("clusters"), "{msg}");
    }
}
