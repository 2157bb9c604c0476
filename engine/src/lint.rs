//! `godwit check`'s lints: mistakes a runbook would otherwise show only at run time, found by
//! walking the parsed runbook and every module it imports.
//!
//! * **unknown functions**: a call to a function that is neither registered (built-ins, the
//!   world's areas, Rhai's standard library), nor defined in the file, nor in the module its
//!   namespace names — `rds::describe_instnace(…)` failed at run time, after earlier steps had
//!   changed the world. Overloads of registered functions are not told apart (the name is
//!   checked, not the arity).
//! * **script functions called with the wrong number of arguments**: a function of the file or
//!   of an imported module called with a count none of its definitions takes — a team variant
//!   calling a library function whose parameters changed (`quiesce::quarantine(id, group)`
//!   after it gained `admit`) failed at run time with "Function not found".
//! * **step and gate names** written as literals that are not journal keys (kebab-case).
//! * **a module's call to its own function that another file of the runbook also defines**
//!   (same name, as many parameters): Rhai can resolve it to the other file's — lib/reverse's
//!   `name()` reached lib/logical's, and the reverse path took the forward path's name.
//! * **a value ending a catch block**: Rhai discards a catch block's value (a `try … catch`
//!   that catches is worth `()`), so `try { check() } catch (e) { false }` returns `()` when
//!   it catches — the standard runbook's route-switch undo then failed with "Data type
//!   incorrect: () (expecting bool)" instead of refusing with its reason.
//! * **world calls outside steps**: a world-touching call (an area that is not pure, `now()`,
//!   `sleep()`) in the runbook's top-level statements, outside any closure — strict mode refuses
//!   it at run time, again after earlier steps ran. Calls inside functions are not flagged:
//!   whether they run inside a step depends on where they are called from.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use rhai::{AST, ASTNode, Engine, Expr, Stmt};

use crate::error::EngineError;
use crate::report::Report;
use crate::run::ctx::{STEP_NAME_HINT, step_name_problem};
use crate::runbook::Runbook;

/// Functions Rhai handles as keywords rather than registered functions.
const KEYWORDS: &[&str] = &[
    "print",
    "debug",
    "type_of",
    "eval",
    "Fn",
    "call",
    "curry",
    "is_def_var",
    "is_def_fn",
    "is_shared",
];

/// Engine built-ins that touch the world (strict mode: only inside steps, gates and undos).
const CORE_WORLD: &[&str] = &["now", "sleep", "wait_until_approved"];

/// What the lints know about the engine the runbook runs on.
pub struct LintContext {
    /// Names of registered functions without a namespace (built-ins, Rhai's packages).
    global: HashSet<String>,
    /// `namespace::name` of the functions of registered modules (the areas).
    qualified: HashSet<String>,
    /// Namespaces of registered modules.
    namespaces: HashSet<String>,
    /// Namespaces of areas that never touch the world (e.g. `lag`).
    pure: HashSet<String>,
}

impl LintContext {
    /// The functions `engine` knows; `pure_areas` are the namespaces whose calls may stand
    /// outside steps.
    pub fn of(engine: &Engine, pure_areas: &[&str]) -> LintContext {
        let mut cx = LintContext {
            global: KEYWORDS.iter().map(|s| s.to_string()).collect(),
            qualified: HashSet::new(),
            namespaces: HashSet::new(),
            pure: pure_areas.iter().map(|s| s.to_string()).collect(),
        };
        for sig in engine.gen_fn_signatures(true) {
            let name = sig.split('(').next().unwrap_or_default().trim();
            match name.rsplit_once("::") {
                Some((ns, _)) => {
                    cx.namespaces.insert(ns.to_string());
                    cx.qualified.insert(name.to_string());
                }
                None => {
                    cx.global.insert(name.to_string());
                }
            }
        }
        cx
    }
}

/// One file of the runbook, parsed on its own.
struct File {
    path: PathBuf,
    ast: AST,
    /// Script functions it defines.
    fns: HashSet<String>,
    /// Each script function's definitions: their parameter names.
    params: BTreeMap<String, Vec<Vec<String>>>,
}

/// Every lint finding of `rb` (already loaded: it parses and its imports resolve), as reports
/// quoting the line.
pub fn lint(engine: &Engine, cx: &LintContext, rb: &Runbook) -> Result<Vec<Report>, EngineError> {
    let dir = std::fs::canonicalize(&rb.path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    let mut files = vec![parse(engine, &rb.path)?];
    // Module files by their import path (relative to the runbook's folder, no extension).
    let mut modules: BTreeMap<String, usize> = BTreeMap::new();
    for m in &rb.info.modules {
        let path = PathBuf::from(&m.path);
        let path = if path.is_absolute() {
            path
        } else {
            dir.join(path)
        };
        modules.insert(m.import.clone(), files.len());
        files.push(parse(engine, &path)?);
    }
    let mut out = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let imports = imports_of(&file.ast);
        let mut mine = Vec::new();
        let mut found = |report: Report| mine.push(report);
        file.ast.walk(&mut |path: &[ASTNode]| {
            let call = match path.last() {
                // A call as an expression, or as a statement of its own.
                Some(ASTNode::Expr(Expr::FnCall(call, pos)))
                | Some(ASTNode::Stmt(Stmt::FnCall(call, pos))) => Some((call, pos)),
                _ => None,
            };
            match (call, path.last()) {
                (Some((call, pos)), _) if !call.is_operator_call() => {
                    let name = call.name.as_str();
                    if call.namespace.is_empty() {
                        if !cx.global.contains(name) && !file.fns.contains(name) {
                            found(unknown(&file.path, *pos, name, &cx.global, &file.fns));
                        }
                        if !cx.global.contains(name)
                            && let Some(r) =
                                wrong_arity(file, &file.path, *pos, name, name, call.args.len())
                        {
                            found(r);
                        }
                        if i > 0
                            && let Some(other) = defined_elsewhere(&files, i, name, call.args.len())
                        {
                            found(
                                Report::new(format!(
                                    "{name} is defined in this module and, with as many \
                                     parameters, in {}: Rhai can resolve this call to the other \
                                     one (lib/reverse.rhai's name() once reached \
                                     lib/logical.rhai's, and the reverse path took the forward \
                                     path's name)",
                                    shown_path(&other.path)
                                ))
                                .at(&file.path, *pos)
                                .with_hint("give one of the two functions another name"),
                            );
                        }
                        if matches!(name, "step" | "gate")
                            && let Some(Expr::StringConstant(s, spos)) = call.args.first()
                            && let Some(why) = step_name_problem(name, s)
                        {
                            found(
                                Report::new(why)
                                    .at(&file.path, *spos)
                                    .with_hint(STEP_NAME_HINT),
                            );
                        }
                    } else {
                        let ns = call.namespace.root();
                        if let Some(&m) = imports.get(ns).and_then(|m| modules.get(m))
                            && let Some(r) = wrong_arity(
                                &files[m],
                                &file.path,
                                *pos,
                                name,
                                &format!("{ns}::{name}"),
                                call.args.len(),
                            )
                        {
                            found(r);
                        }
                        let known = match imports.get(ns).and_then(|m| modules.get(m)) {
                            Some(&m) => files[m].fns.contains(name),
                            None if cx.namespaces.contains(ns) => {
                                cx.qualified.contains(&format!("{ns}::{name}"))
                            }
                            None => false,
                        };
                        if !known {
                            let names = match imports.get(ns).and_then(|m| modules.get(m)) {
                                Some(&m) => files[m].fns.clone(),
                                None => cx
                                    .qualified
                                    .iter()
                                    .filter_map(|q| q.strip_prefix(&format!("{ns}::")))
                                    .map(String::from)
                                    .collect(),
                            };
                            found(unknown_in(&file.path, *pos, ns, name, &names));
                        }
                    }
                }
                (_, Some(ASTNode::Stmt(Stmt::TryCatch(flow, _)))) => {
                    if let Some(Stmt::Expr(value)) = flow.branch.statements().last()
                        && is_plain_value(value)
                    {
                        found(
                            Report::new(
                                "this value ends a catch block, and Rhai discards it: a try \
                                 … catch that catches is worth () — the code after it sees \
                                 () where this value was meant",
                            )
                            .at(&file.path, value.position())
                            .with_hint(
                                "assign it inside the block (`found = false;`, with `let \
                                 found = …;` before the try) or `return` it",
                            ),
                        );
                    }
                }
                (_, Some(ASTNode::Expr(Expr::MethodCall(call, pos)))) => {
                    let name = call.name.as_str();
                    let script_anywhere = files.iter().any(|f| f.fns.contains(name));
                    if !cx.global.contains(name) && !script_anywhere {
                        found(unknown(&file.path, *pos, name, &cx.global, &file.fns));
                    }
                }
                _ => {}
            }
            true
        });
        out.append(&mut mine);
        if i == 0 {
            // Only the runbook's own top-level statements: closures and functions are separate.
            let mut trail = Vec::new();
            for stmt in file.ast.statements() {
                stmt.walk(&mut trail, &mut |path: &[ASTNode]| {
                    if let Some(ASTNode::Expr(Expr::FnCall(call, pos)))
                    | Some(ASTNode::Stmt(Stmt::FnCall(call, pos))) = path.last()
                        && touches_world(
                            cx,
                            (!call.namespace.is_empty()).then(|| call.namespace.root()),
                            call.name.as_str(),
                            &imports,
                        )
                    {
                        let what = if call.namespace.is_empty() {
                            call.name.to_string()
                        } else {
                            format!("{}::{}", call.namespace.root(), call.name)
                        };
                        out.push(
                            Report::new(format!(
                                "{what} touches the world and may only run inside a step, a \
                                 gate or an undo; here it would stop the run when reached"
                            ))
                            .at(&file.path, *pos)
                            .with_hint(format!(
                                "wrap it so its result is journaled: step(\"my-step\", || \
                                 {what}(...))"
                            )),
                        );
                    }
                    true
                });
            }
        }
    }
    out.sort_by(|a, b| {
        let key = |r: &Report| {
            r.location
                .as_ref()
                .map(|l| (l.file.clone(), l.line, l.column))
        };
        key(a).cmp(&key(b))
    });
    out.dedup();
    Ok(out)
}

/// An expression that only makes a value (a constant, a literal, a variable): as a statement
/// its value is all it does.
fn is_plain_value(e: &Expr) -> bool {
    matches!(
        e,
        Expr::DynamicConstant(..)
            | Expr::BoolConstant(..)
            | Expr::IntegerConstant(..)
            | Expr::FloatConstant(..)
            | Expr::CharConstant(..)
            | Expr::StringConstant(..)
            | Expr::InterpolatedString(..)
            | Expr::Array(..)
            | Expr::Map(..)
            | Expr::Unit(..)
            | Expr::Variable(..)
    )
}

fn touches_world(
    cx: &LintContext,
    ns: Option<&str>,
    name: &str,
    imports: &BTreeMap<String, String>,
) -> bool {
    match ns {
        None => CORE_WORLD.contains(&name),
        // A module of the runbook's own: its functions may or may not reach the world.
        Some(ns) if imports.contains_key(ns) => false,
        Some(ns) => cx.namespaces.contains(ns) && !cx.pure.contains(ns),
    }
}

fn parse(engine: &Engine, path: &Path) -> Result<File, EngineError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| EngineError::Invalid(format!("cannot read {}: {e}", path.display())))?;
    let ast = engine
        .compile(&text)
        .map_err(|e| EngineError::Parse(crate::report::from_rhai(&e.into(), path)))?;
    let fns = ast.iter_functions().map(|f| f.name.to_string()).collect();
    let mut params: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    for f in ast.iter_functions() {
        params
            .entry(f.name.to_string())
            .or_default()
            .push(f.params.iter().map(|p| p.to_string()).collect());
    }
    Ok(File {
        path: path.to_path_buf(),
        ast,
        fns,
        params,
    })
}

/// `alias → import path` of a file's constant imports.
fn imports_of(ast: &AST) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Stmt(Stmt::Import(x, _))) = path.last()
            && let Expr::StringConstant(p, _) = &x.0
        {
            out.insert(x.1.name.to_string(), p.to_string());
        }
        true
    });
    out
}

/// A report when `defined_in` defines script function `name` but none of its definitions takes
/// `given` arguments (Rhai would say "Function not found" when the call is reached).
/// Another file of the runbook (`files[i]` excepted) defining `name` with `argc` parameters,
/// when `files[i]` defines it too.
fn defined_elsewhere<'a>(files: &'a [File], i: usize, name: &str, argc: usize) -> Option<&'a File> {
    let takes = |f: &File| {
        f.params
            .get(name)
            .is_some_and(|defs| defs.iter().any(|p| p.len() == argc))
    };
    if !takes(&files[i]) {
        return None;
    }
    files
        .iter()
        .enumerate()
        .find(|(j, f)| *j != i && takes(f))
        .map(|(_, f)| f)
}

/// `path` relative to the working directory when it is under it.
fn shown_path(path: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|d| path.strip_prefix(d).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}

fn wrong_arity(
    defined_in: &File,
    file: &Path,
    pos: rhai::Position,
    name: &str,
    shown: &str,
    given: usize,
) -> Option<Report> {
    let defs = defined_in.params.get(name)?;
    if defs.iter().any(|p| p.len() == given) {
        return None;
    }
    let takes: Vec<String> = defs
        .iter()
        .map(|p| format!("{shown}({})", p.join(", ")))
        .collect();
    Some(
        Report::new(format!(
            "{shown} is called with {given} argument{} but is defined as {}",
            if given == 1 { "" } else { "s" },
            takes.join(" or ")
        ))
        .at(file, pos)
        .with_hint(format!(
            "pass the arguments its definition in {} takes",
            shown_path(&defined_in.path)
        )),
    )
}

fn unknown(
    file: &Path,
    pos: rhai::Position,
    name: &str,
    global: &HashSet<String>,
    local: &HashSet<String>,
) -> Report {
    let names: Vec<&str> = global
        .iter()
        .chain(local.iter())
        .map(String::as_str)
        .collect();
    let hint = match crate::params::suggest(name, &names) {
        Some(s) => format!("did you mean {s}?"),
        None => "define it, import the module that has it, or check the spelling".into(),
    };
    Report::new(format!("unknown function {name}"))
        .at(file, pos)
        .with_hint(hint)
}

fn unknown_in(
    file: &Path,
    pos: rhai::Position,
    ns: &str,
    name: &str,
    names: &HashSet<String>,
) -> Report {
    let list: Vec<&str> = names.iter().map(String::as_str).collect();
    let hint = match crate::params::suggest(name, &list) {
        Some(s) => format!("did you mean {ns}::{s}?"),
        None if list.is_empty() => format!(
            "there is no module {ns}: import it (import \"lib/{ns}\" as {ns};) or use an area \
             of this world (`godwit docs` lists them)"
        ),
        None => format!("{ns} has no function {name}; see its reference"),
    };
    Report::new(format!("unknown function {ns}::{name}"))
        .at(file, pos)
        .with_hint(hint)
}
