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
//! module edited halfway through. For that to hold, every import path must be known at load
//! time:
//!
//! * an `import` whose path is not a string constant (`let p = "lib/" + name; import p as m;`)
//!   is refused at load time with its position, in the runbook and in every module;
//! * after loading, the engine's module resolver is *sealed*: an import evaluated at run time
//!   (inside `eval`, or in a function body) gets the very module pinned at load time, and a path
//!   that was not pinned is an error. Nothing outside the pinned hash can run in a durable run.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rhai::module_resolvers::FileModuleResolver;
use rhai::{
    AST, ASTNode, Engine, EvalAltResult, Expr, Module, ModuleResolver, Position, Scope, Shared,
    Stmt,
};
use sha2::{Digest, Sha256};

use crate::error::{EngineError, PrimitiveError};
use crate::journal::{ModuleInfo, RunbookInfo};
use crate::report::{Report, from_rhai};

/// A parsed runbook ready to run.
#[derive(Debug, Clone)]
pub struct Runbook {
    pub info: RunbookInfo,
    pub ast: AST,
    pub path: PathBuf,
}

/// The modules a load resolved: identity for the hash, and the module itself for the sealed
/// resolver.
#[derive(Default)]
struct Pinned {
    modules: Vec<(ModuleInfo, Shared<Module>)>,
    /// A godwit refusal inside a module (a computed import path): reported as is, not as the
    /// generic Rhai error the resolver has to return.
    refused: Option<EngineError>,
}

/// Wraps the file resolver to record (and hash) every module file it loads, and to refuse
/// computed import paths inside modules.
struct HashingResolver {
    inner: FileModuleResolver,
    pinned: Arc<Mutex<Pinned>>,
}

impl ModuleResolver for HashingResolver {
    fn resolve(
        &self,
        engine: &Engine,
        source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        let lock = || self.pinned.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, m)) = lock().modules.iter().find(|(i, _)| i.import == path) {
            return Ok(m.clone());
        }
        let file = self.inner.get_file_path(path, source.map(Path::new));
        let bytes = std::fs::read(&file).ok();
        if let Some(text) = bytes.as_deref().map(String::from_utf8_lossy)
            && let Ok(ast) = engine.compile(&*text)
            && let Err(refused) = check_imports(&ast, &file, &self.inner)
        {
            lock().refused.get_or_insert(refused);
            return Err(EvalAltResult::ErrorModuleNotFound(path.into(), pos).into());
        }
        let module = self.inner.resolve(engine, source, path, pos)?;
        if let Some(bytes) = bytes {
            lock().modules.push((
                ModuleInfo {
                    import: path.to_string(),
                    path: file.display().to_string(),
                    hash: format!("sha256:{}", hex::encode(Sha256::digest(&bytes))),
                },
                module.clone(),
            ));
        }
        Ok(module)
    }

    /// Lets `compile_into_self_contained` see the imports inside modules (function bodies
    /// included), so they are resolved, pinned and embedded at load time too.
    fn resolve_ast(
        &self,
        engine: &Engine,
        source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Option<Result<AST, Box<EvalAltResult>>> {
        self.inner.resolve_ast(engine, source, path, pos)
    }
}

/// The resolver of a loaded runbook's engine: the modules pinned at load time, nothing else.
struct SealedResolver {
    modules: Vec<(String, Shared<Module>)>,
}

impl ModuleResolver for SealedResolver {
    fn resolve(
        &self,
        _engine: &Engine,
        _source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        match self.modules.iter().find(|(p, _)| p == path) {
            Some((_, m)) => Ok(m.clone()),
            None => Err(PrimitiveError::invalid(
                "engine",
                "import",
                format!(
                    "import \"{path}\" at run time: the module was not loaded with the runbook, \
                     so it is not part of the runbook's pinned hash and cannot run in a durable \
                     run"
                ),
                "import modules with a constant path at the top of the runbook or module \
                 (import \"lib/checks\" as c;), not inside eval() or with a computed path",
            )
            .into_rhai_at(pos)),
        }
    }
}

/// Refuse imports whose path is not a string constant, and constant paths naming no file, at
/// their position in `file`.
fn check_imports(ast: &AST, file: &Path, resolver: &FileModuleResolver) -> Result<(), EngineError> {
    let mut found = None;
    ast.walk(&mut |path: &[ASTNode]| {
        let Some(ASTNode::Stmt(Stmt::Import(x, pos))) = path.last() else {
            return true;
        };
        found = match &x.0 {
            Expr::StringConstant(s, _) => {
                let target = resolver.get_file_path(s, None);
                (!target.is_file()).then(|| {
                    Report::new(format!(
                        "module \"{s}\" not found: there is no file {}",
                        target.display()
                    ))
                    .at(file, *pos)
                    .with_hint(format!(
                        "import paths are relative to the runbook's folder ({}) and leave out \
                         the .rhai extension; nothing was started",
                        resolver
                            .base_path()
                            .map_or_else(|| ".".into(), |p| p.display().to_string())
                    ))
                })
            }
            _ => Some(
                Report::new(
                    "import path is computed at run time, so the module could not be pinned \
                     with the runbook's hash",
                )
                .at(file, *pos)
                .with_hint(
                    "import with a constant string: import \"lib/checks\" as c; (a runbook \
                     that chooses between modules imports each and picks at run time); nothing \
                     was started",
                ),
            ),
        };
        found.is_none()
    });
    match found {
        None => Ok(()),
        Some(report) => Err(EngineError::Parse(report)),
    }
}

/// Parse `path` with `engine` (which must already have every primitive registered, because
/// importing a module evaluates it). Afterwards the engine's resolver is sealed: it serves only
/// the modules pinned here.
pub fn load(engine: &mut Engine, path: &Path) -> Result<Runbook, EngineError> {
    let source = std::fs::read_to_string(path).map_err(|e| {
        EngineError::Invalid(format!("cannot read runbook {}: {e}", path.display()))
    })?;
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if let Some((rb, sealed)) = reuse::get(&abs, &source, engine) {
        engine.set_module_resolver(SealedResolver { modules: sealed });
        return Ok(rb);
    }
    let dir = abs
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let pinned = Arc::new(Mutex::new(Pinned::default()));
    let mut inner = FileModuleResolver::new_with_path(&dir);
    inner.enable_cache(false);
    let first = engine
        .compile(&source)
        .map_err(|e| parse_error(&e.into(), path))?;
    check_imports(&first, path, &inner)?;
    engine.set_module_resolver(HashingResolver {
        inner,
        pinned: pinned.clone(),
    });

    let compiled = engine.compile_into_self_contained(&Scope::new(), &source);
    let pinned = std::mem::take(&mut *pinned.lock().unwrap_or_else(|e| e.into_inner()));
    if let Some(refused) = pinned.refused {
        return Err(refused);
    }
    let mut ast = compiled.map_err(|e| parse_error(&e, path))?;
    ast.set_source(abs.display().to_string());
    let sealed: Vec<(String, Shared<Module>)> = pinned
        .modules
        .iter()
        .map(|(i, m)| (i.import.clone(), m.clone()))
        .collect();
    engine.set_module_resolver(SealedResolver {
        modules: sealed.clone(),
    });
    let mut modules: Vec<ModuleInfo> = pinned.modules.into_iter().map(|(i, _)| i).collect();
    modules.sort_by(|a, b| a.import.cmp(&b.import));

    let mut h = Sha256::new();
    h.update(b"godwit-runbook-v1\n");
    h.update(source.as_bytes());
    for m in &modules {
        h.update(format!("\n{}={}", m.import, m.hash).as_bytes());
    }
    let (name, version) = declared_identity(&source, path);
    let rb = Runbook {
        info: RunbookInfo {
            name,
            version,
            path: abs.display().to_string(),
            hash: format!("sha256:{}", hex::encode(h.finalize())),
            modules,
        },
        ast,
        path: path.to_path_buf(),
    };
    reuse::put(&abs, source, engine, &rb, sealed);
    Ok(rb)
}

/// Reusing loads within one process, for a process that starts many short runs of the same
/// runbooks (`godwit fleet plan`: three runs per cluster, hundreds of clusters). Parsing the
/// standard runbook and its modules was about half of a fleet plan's time (perf, release build:
/// Rhai's tokenizer, parser, optimiser and string interner), and every run parsed it twice.
///
/// Off unless [`reuse_loads`] turned it on. A load is reused only when the runbook's text is the
/// same, every pinned module file still hashes as pinned, and the engine optimises the same way:
/// then the parse would give the same AST and the same pinned hash. Failed loads are never kept.
pub mod reuse {
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Mutex, OnceLock};

    use rhai::{Engine, Module, Shared};
    use sha2::{Digest, Sha256};

    use super::Runbook;

    static ON: AtomicBool = AtomicBool::new(false);

    /// The modules a sealed resolver serves: import path, module.
    pub(super) type Sealed = Vec<(String, Shared<Module>)>;

    struct Kept {
        source: String,
        optimization: String,
        runbook: Runbook,
        sealed: Sealed,
    }

    fn kept() -> &'static Mutex<HashMap<PathBuf, Kept>> {
        static KEPT: OnceLock<Mutex<HashMap<PathBuf, Kept>>> = OnceLock::new();
        KEPT.get_or_init(Default::default)
    }

    /// Reuse loads from now on in this process (see the module docs).
    pub fn reuse_loads() {
        ON.store(true, Ordering::Relaxed);
    }

    pub(super) fn get(abs: &Path, source: &str, engine: &Engine) -> Option<(Runbook, Sealed)> {
        if !ON.load(Ordering::Relaxed) {
            return None;
        }
        let kept = kept().lock().unwrap_or_else(|e| e.into_inner());
        let k = kept.get(abs)?;
        let unchanged = k.source == source
            && k.optimization == format!("{:?}", engine.optimization_level())
            && k.runbook.info.modules.iter().all(|m| {
                std::fs::read(&m.path).is_ok_and(|bytes| {
                    format!("sha256:{}", hex::encode(Sha256::digest(&bytes))) == m.hash
                })
            });
        unchanged.then(|| (k.runbook.clone(), k.sealed.clone()))
    }

    pub(super) fn put(
        abs: &Path,
        source: String,
        engine: &Engine,
        runbook: &Runbook,
        sealed: Sealed,
    ) {
        if !ON.load(Ordering::Relaxed) {
            return;
        }
        kept().lock().unwrap_or_else(|e| e.into_inner()).insert(
            abs.to_path_buf(),
            Kept {
                source,
                optimization: format!("{:?}", engine.optimization_level()),
                runbook: runbook.clone(),
                sealed,
            },
        );
    }
}

fn parse_error(err: &EvalAltResult, path: &Path) -> EngineError {
    let mut report = from_rhai(err, path);
    report.message = format!("runbook does not parse: {}", report.message);
    let hint = match (&report.hint, &report.location) {
        (Some(h), _) => format!("{h}; nothing was started"),
        (None, Some(_)) => "fix the syntax at the place shown; nothing was started".into(),
        (None, None) => "nothing was started".into(),
    };
    EngineError::Parse(report.with_hint(hint))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A reused load gives what a fresh parse gives, and a module edited since is parsed again.
    #[test]
    fn a_reused_load_follows_its_modules() {
        reuse::reuse_loads();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("lib")).unwrap();
        let rb = dir.path().join("rb.rhai");
        std::fs::write(&rb, "import \"lib/m\" as m;\nm::f()\n").unwrap();
        std::fs::write(dir.path().join("lib/m.rhai"), "fn f() { 1 }\n").unwrap();
        let first = load(&mut Engine::new(), &rb).unwrap();
        let mut engine = Engine::new();
        let again = load(&mut engine, &rb).unwrap();
        assert_eq!(again.info.hash, first.info.hash);
        assert_eq!(engine.eval_ast::<i64>(&again.ast).unwrap(), 1);

        std::fs::write(dir.path().join("lib/m.rhai"), "fn f() { 2 }\n").unwrap();
        let mut engine = Engine::new();
        let edited = load(&mut engine, &rb).unwrap();
        assert_ne!(edited.info.hash, first.info.hash);
        assert_eq!(engine.eval_ast::<i64>(&edited.ast).unwrap(), 2);
    }
}
