//! Loading a runbook: parse it and every module it imports, pin their content hash, read its
//! declared name and version.
//!
//! A runbook declares itself in its leading `//!` comment lines:
//!
//! ```text
//! //! name: rds-to-aurora
//! //! version: 1.2.0
//! ```
//!
//! Imports are resolved at load time (`compile_into_self_contained`), relative to the runbook's
//! directory, so the hash covers exactly the code that will run and a run never picks up a
//! module edited halfway through.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rhai::module_resolvers::FileModuleResolver;
use rhai::{AST, Engine, EvalAltResult, Module, ModuleResolver, Position, Scope, Shared};
use sha2::{Digest, Sha256};

use crate::error::EngineError;
use crate::journal::{ModuleInfo, RunbookInfo};
use crate::report::from_rhai;

/// A parsed runbook ready to run.
#[derive(Debug, Clone)]
pub struct Runbook {
    pub info: RunbookInfo,
    pub ast: AST,
    pub path: PathBuf,
}

/// Wraps the file resolver to record (and hash) every module file it loads.
struct HashingResolver {
    inner: FileModuleResolver,
    seen: Arc<Mutex<Vec<ModuleInfo>>>,
}

impl ModuleResolver for HashingResolver {
    fn resolve(
        &self,
        engine: &Engine,
        source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        let file = self.inner.get_file_path(path, source.map(Path::new));
        if let Ok(bytes) = std::fs::read(&file) {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if !seen.iter().any(|m| m.import == path) {
                seen.push(ModuleInfo {
                    import: path.to_string(),
                    path: file.display().to_string(),
                    hash: format!("sha256:{}", hex::encode(Sha256::digest(&bytes))),
                });
            }
        }
        self.inner.resolve(engine, source, path, pos)
    }
}

/// Parse `path` with `engine` (which must already have every primitive registered, because
/// importing a module evaluates it).
pub fn load(engine: &mut Engine, path: &Path) -> Result<Runbook, EngineError> {
    let source = std::fs::read_to_string(path).map_err(|e| {
        EngineError::Invalid(format!("cannot read runbook {}: {e}", path.display()))
    })?;
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = abs
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut inner = FileModuleResolver::new_with_path(&dir);
    inner.enable_cache(false);
    engine.set_module_resolver(HashingResolver {
        inner,
        seen: seen.clone(),
    });

    let mut ast = engine
        .compile_into_self_contained(&Scope::new(), &source)
        .map_err(|e| parse_error(&e, path))?;
    ast.set_source(abs.display().to_string());
    let mut modules = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    modules.sort_by(|a, b| a.import.cmp(&b.import));

    let mut h = Sha256::new();
    h.update(b"godwit-runbook-v1\n");
    h.update(source.as_bytes());
    for m in &modules {
        h.update(format!("\n{}={}", m.import, m.hash).as_bytes());
    }
    let (name, version) = declared_identity(&source, path);
    Ok(Runbook {
        info: RunbookInfo {
            name,
            version,
            path: abs.display().to_string(),
            hash: format!("sha256:{}", hex::encode(h.finalize())),
            modules,
        },
        ast,
        path: path.to_path_buf(),
    })
}

fn parse_error(err: &EvalAltResult, path: &Path) -> EngineError {
    let mut report = from_rhai(err, path);
    report.message = format!("runbook does not parse: {}", report.message);
    EngineError::Parse(report.with_hint("fix the syntax at the place shown; nothing was started"))
}

/// Name and version from the leading `//! name:` / `//! version:` lines; the file stem and
/// `unversioned` otherwise.
fn declared_identity(source: &str, path: &Path) -> (String, String) {
    let mut name = None;
    let mut version = None;
    for line in source
        .lines()
        .take_while(|l| l.starts_with("//!") || l.trim().is_empty())
    {
        let body = line.trim_start_matches("//!").trim();
        if let Some(v) = body.strip_prefix("name:") {
            name = Some(v.trim().to_string());
        } else if let Some(v) = body.strip_prefix("version:") {
            version = Some(v.trim().to_string());
        }
    }
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    (
        name.or(stem).unwrap_or_else(|| "runbook".into()),
        version.unwrap_or_else(|| "unversioned".into()),
    )
}

/// Short form of a content hash for display: `sha256:0123456789ab`.
pub fn short_hash(hash: &str) -> &str {
    &hash[..hash.len().min("sha256:".len() + 12)]
}
