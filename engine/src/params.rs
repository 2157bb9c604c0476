//! Runbook parameters: one schema per runbook, checked before a run exists.
//!
//! A runbook declares its parameters in Rhai, as a top-level function of the cluster id that
//! returns a map `name → spec`, and optionally a pure check across them:
//!
//! ```rhai
//! fn parameters(cluster) {
//!     #{
//!         target_cluster: #{ type: "cluster-id", default_value: cluster + "-aurora",
//!             doc: "the Aurora cluster to create" },
//!         validation_window: #{ type: "duration", default_value: "24h", min: "1s",
//!             doc: "must contain the source's daily peak" },
//!         fence_validation: #{ type: "enum", values: ["full", "off"], default_value: "full",
//!             doc: "exact compare at the fence, or none" },
//!         create_timeout: #{ type: "duration", computed: "1 h + 4 h per TB of storage",
//!             doc: "how long the replica may take" },
//!         accept_fork: #{ type: "bool", default_value: false, on_resume: true,
//!             doc: "after promotion, may a rollback route back?" },
//!     }
//! }
//!
//! fn check_parameters(cluster, params) {
//!     if params.target_cluster == cluster { ["target_cluster: ... the source itself; ..."] } else { [] }
//! }
//! ```
//!
//! Spec keys: `type` (`string`, `int`, `float`, `bool`, `duration`, `enum` with `values`,
//! `cluster-id`: an RDS identifier), `doc`, and optionally `default_value` (filled in when the
//! key is not given; `default` is a reserved word in Rhai), `computed` (text: the runbook computes the default at run time, e.g.
//! from preflight; the key is then absent from `PARAMS` unless given), `min`/`max` (numbers, or
//! durations for `duration`) and `on_resume` (the key may be changed on `resume --set`).
//!
//! [`prepare`] runs in `Runner::start` before the run is created: it calls `parameters(CLUSTER)`
//! and `check_parameters(CLUSTER, params)` with the runbook's imports but none of its top-level
//! statements (strict mode keeps the world out of reach: nothing is touched, nothing journaled),
//! refuses unknown keys (with a did-you-mean), wrong types, bad durations and enumerations and
//! the runbook's cross-field problems — all of them at once, each naming the parameter, what was
//! given and the fix — and returns the parameters with the defaults filled in, which the run
//! journals in `run-started` and sees as `PARAMS`. A runbook without `fn parameters` takes any
//! parameters as given.
//!
//! [`markdown`] renders a schema as the table the docs carry (a test compares them).

use std::collections::BTreeMap;
use std::time::Duration;

use rhai::{AST, CallFnOptions, Dynamic, Engine, Module, Scope, Stmt};
use serde_json::{Map, Value};

use crate::duration::{format_duration, parse_duration};
use crate::error::EngineError;
use crate::report::from_rhai;
use crate::run::to_json;
use crate::runbook::Runbook;

/// The function a runbook declares its schema with (argument: the cluster id).
pub const SCHEMA_FN: &str = "parameters";
/// The optional cross-field check (arguments: the cluster id, the filled-in parameters).
pub const CHECK_FN: &str = "check_parameters";
/// The cluster id [`markdown`]'s caller passes for documentation: defaults derived from the
/// cluster then read `<cluster>-aurora`.
pub const DOC_CLUSTER: &str = "<cluster>";

/// The type of a parameter, with its bounds.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    String,
    Int {
        min: Option<i64>,
        max: Option<i64>,
    },
    Float {
        min: Option<f64>,
        max: Option<f64>,
    },
    Bool,
    Duration {
        min: Option<Duration>,
        max: Option<Duration>,
    },
    Enum(Vec<String>),
    /// An RDS DB cluster or instance identifier (see [`rds_identifier_problem`]).
    ClusterId,
}

/// One declared parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: String,
    pub kind: Kind,
    pub doc: String,
    /// Filled in when the key is not given.
    pub default: Option<Value>,
    /// How the runbook computes the default at run time (documentation only).
    pub computed: Option<String>,
    /// May be changed when the run is resumed (`resume --set`).
    pub on_resume: bool,
}

/// A runbook's parameters, by name.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Schema {
    pub params: BTreeMap<String, Param>,
}

impl Schema {
    pub fn get(&self, name: &str) -> Option<&Param> {
        self.params.get(name)
    }
}

/// Parameters refused, or a schema that cannot be used.
#[derive(Debug)]
enum Refusal {
    /// The runbook's own schema or check is broken: a runbook bug, reported as such.
    Runbook(EngineError),
    /// Operator input that does not fit the schema: one line per problem.
    Problems(Vec<String>),
}

/// Check `given` against the schema of `rb` for `cluster` and fill in the defaults; called by
/// `Runner::start` before the run is created. Without `fn parameters` the parameters pass as
/// given. Errors are [`EngineError::Invalid`] (exit 2), listing every problem.
pub fn prepare(
    engine: &Engine,
    rb: &Runbook,
    cluster: &str,
    given: &Map<String, Value>,
) -> Result<Map<String, Value>, EngineError> {
    check(engine, rb, cluster, given).map_err(|r| match r {
        Refusal::Runbook(e) => e,
        Refusal::Problems(p) => EngineError::Invalid(format!(
            "invalid parameters for runbook {}; nothing was started:\n{}",
            rb.info.name,
            bullets(&p)
        )),
    })
}

/// [`prepare`] for `Runner::resume`: the journaled parameters against the runbook as it is now.
/// They passed at start, so this only fills in defaults a journal written before the runbook
/// declared them lacks — or, after a forced runbook change, refuses parameters the changed
/// runbook no longer accepts (before anything is appended).
pub fn prepare_resume(
    engine: &Engine,
    rb: &Runbook,
    run_id: &str,
    cluster: &str,
    journaled: &Map<String, Value>,
) -> Result<Map<String, Value>, EngineError> {
    check(engine, rb, cluster, journaled).map_err(|r| match r {
        Refusal::Runbook(e) => e,
        Refusal::Problems(p) => EngineError::Invalid(format!(
            "run {run_id}: its journaled parameters do not fit runbook {} as it is now; nothing \
             was resumed:\n{}\nrestore the runbook the run started with",
            rb.info.name,
            bullets(&p)
        )),
    })
}

/// Apply `resume --set` values to the journaled parameters: only keys the schema marks
/// `on_resume` may change, and each must fit its type. Returns the parameters to resume with.
pub fn override_on_resume(
    schema: &Schema,
    journaled: &Map<String, Value>,
    set: &Map<String, Value>,
) -> Result<Map<String, Value>, EngineError> {
    let mut out = journaled.clone();
    let mut problems = Vec::new();
    for (key, value) in set {
        match schema.get(key) {
            None => problems.push(unknown(schema, key)),
            Some(p) if !p.on_resume => {
                let changeable: Vec<&str> = schema
                    .params
                    .values()
                    .filter(|p| p.on_resume)
                    .map(|p| p.name.as_str())
                    .collect();
                problems.push(format!(
                    "{key}: fixed when the run started (journaled as {}); a resume may change only \
                     {}",
                    journaled.get(key).unwrap_or(&Value::Null),
                    if changeable.is_empty() {
                        "nothing".to_string()
                    } else {
                        changeable.join(", ")
                    }
                ));
            }
            Some(p) => match p.problem(value) {
                Some(why) => problems.push(given_problem(p, value, &why)),
                None => {
                    out.insert(key.clone(), value.clone());
                }
            },
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(EngineError::Invalid(format!(
            "invalid parameters for the resume; nothing was resumed:\n{}",
            bullets(&problems)
        )))
    }
}

/// The schema `rb` declares for `cluster` (`None`: it declares none). For documentation call it
/// with [`DOC_CLUSTER`].
pub fn schema(engine: &Engine, rb: &Runbook, cluster: &str) -> Result<Option<Schema>, EngineError> {
    let head = head(&rb.ast);
    schema_of(engine, rb, &head, cluster).map_err(|r| match r {
        Refusal::Runbook(e) => e,
        Refusal::Problems(p) => EngineError::Invalid(bullets(&p)),
    })
}

/// [`schema`] of the runbook at `path`, loaded with the functions `runner` registers (for the
/// docs and tools; nothing runs but the schema function).
pub fn load_schema(
    runner: &crate::run::Runner,
    path: &std::path::Path,
    cluster: &str,
) -> Result<Option<Schema>, EngineError> {
    let mut engine = crate::run::reference_engine(runner);
    let rb = crate::runbook::load(&mut engine, path)?;
    schema(&engine, &rb, cluster)
}

fn bullets(problems: &[String]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The runbook's top-level imports and its functions, without its other statements: enough to
/// call the schema functions (which may use imported modules) without running the runbook.
fn head(ast: &AST) -> AST {
    let imports: Vec<Stmt> = ast
        .statements()
        .iter()
        .filter(|s| matches!(s, Stmt::Import(..)))
        .cloned()
        .collect();
    let mut head = AST::new(imports, Module::new()).merge(&ast.clone_functions_only());
    if let Some(source) = ast.source() {
        head.set_source(source);
    }
    head
}

fn declares(ast: &AST, name: &str) -> Option<usize> {
    ast.iter_functions()
        .find(|f| f.name == name)
        .map(|f| f.params.len())
}

fn call(
    engine: &Engine,
    rb: &Runbook,
    head: &AST,
    name: &str,
    args: impl rhai::FuncArgs,
) -> Result<Dynamic, Refusal> {
    engine
        .call_fn_with_options::<Dynamic>(
            CallFnOptions::new().eval_ast(true).rewind_scope(true),
            &mut Scope::new(),
            head,
            name,
            args,
        )
        .map_err(|e| {
            let mut report = from_rhai(&e, &rb.path);
            report.message = format!(
                "fn {name} of runbook {} failed: {}",
                rb.info.name, report.message
            );
            Refusal::Runbook(EngineError::Invalid(
                report
                    .with_hint(
                        "the runbook's parameter schema must be pure: plain maps, no world \
                         access; nothing was started",
                    )
                    .render(),
            ))
        })
}

fn schema_error(rb: &Runbook, what: String) -> Refusal {
    Refusal::Runbook(EngineError::Invalid(format!(
        "runbook {}: its parameter schema (fn {SCHEMA_FN}) is broken: {what}; nothing was started",
        rb.info.name
    )))
}

fn schema_of(
    engine: &Engine,
    rb: &Runbook,
    head: &AST,
    cluster: &str,
) -> Result<Option<Schema>, Refusal> {
    match declares(&rb.ast, SCHEMA_FN) {
        None => return Ok(None),
        Some(1) => {}
        Some(n) => {
            return Err(schema_error(
                rb,
                format!("it takes {n} arguments; declare fn {SCHEMA_FN}(cluster)"),
            ));
        }
    }
    let map = call(engine, rb, head, SCHEMA_FN, (cluster.to_string(),))?;
    let map = to_json(&map).map_err(|e| schema_error(rb, e))?;
    let Value::Object(map) = map else {
        return Err(schema_error(
            rb,
            format!("it returned {map}, not a map of name → #{{ type, doc, ... }}"),
        ));
    };
    let mut schema = Schema::default();
    for (name, spec) in map {
        let param = Param::from_spec(&name, &spec).map_err(|e| schema_error(rb, e))?;
        schema.params.insert(name, param);
    }
    Ok(Some(schema))
}

fn check(
    engine: &Engine,
    rb: &Runbook,
    cluster: &str,
    given: &Map<String, Value>,
) -> Result<Map<String, Value>, Refusal> {
    let head = head(&rb.ast);
    let Some(schema) = schema_of(engine, rb, &head, cluster)? else {
        return Ok(given.clone());
    };
    let mut problems = Vec::new();
    let mut params = Map::new();
    for (key, value) in given {
        match schema.get(key) {
            None => problems.push(unknown(&schema, key)),
            Some(p) => match p.problem(value) {
                Some(why) => problems.push(given_problem(p, value, &why)),
                None => {
                    params.insert(key.clone(), value.clone());
                }
            },
        }
    }
    for p in schema.params.values() {
        if given.contains_key(&p.name) {
            continue;
        }
        if let Some(default) = &p.default {
            if let Some(why) = p.problem(default) {
                problems.push(format!(
                    "{} defaults to {default}, which will not do: {why}; set it: --set {}={}",
                    p.name,
                    p.name,
                    p.example()
                ));
            }
            params.insert(p.name.clone(), default.clone());
        }
    }
    if !problems.is_empty() {
        // Cross-field rules assume each value has its type: report these first.
        return Err(Refusal::Problems(problems));
    }
    match declares(&rb.ast, CHECK_FN) {
        None => {}
        Some(2) => {
            let out = call(
                engine,
                rb,
                &head,
                CHECK_FN,
                (
                    cluster.to_string(),
                    crate::run::from_json(&Value::Object(params.clone())),
                ),
            )?;
            let problems: Vec<String> = match to_json(&out) {
                Ok(Value::Null) => Vec::new(),
                Ok(Value::String(s)) => vec![s],
                Ok(Value::Array(a)) => a
                    .into_iter()
                    .map(|v| match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    })
                    .collect(),
                _ => {
                    return Err(Refusal::Runbook(EngineError::Invalid(format!(
                        "runbook {}: fn {CHECK_FN} must return an array of problems (strings), \
                         empty when the parameters are fine",
                        rb.info.name
                    ))));
                }
            };
            if !problems.is_empty() {
                return Err(Refusal::Problems(problems));
            }
        }
        Some(n) => {
            return Err(Refusal::Runbook(EngineError::Invalid(format!(
                "runbook {}: fn {CHECK_FN} takes {n} arguments; declare fn {CHECK_FN}(cluster, \
                 params)",
                rb.info.name
            ))));
        }
    }
    Ok(params)
}

fn unknown(schema: &Schema, key: &str) -> String {
    let names: Vec<&str> = schema.params.keys().map(String::as_str).collect();
    match suggest(key, &names) {
        Some(best) => format!("{key}: not a parameter of this runbook; did you mean {best}?"),
        None => format!(
            "{key}: not a parameter of this runbook; it takes {}",
            names.join(", ")
        ),
    }
}

fn given_problem(p: &Param, value: &Value, why: &str) -> String {
    format!(
        "{} = {value}: {why}; use e.g. --set {}={}",
        p.name,
        p.name,
        p.example_for(value)
    )
}

/// The closest of `names` to `word`, if close enough to be a likely typo.
pub fn suggest<'a>(word: &str, names: &[&'a str]) -> Option<&'a str> {
    names
        .iter()
        .map(|n| (strsim::jaro_winkler(word, n), *n))
        .filter(|(score, _)| *score >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, n)| n)
}

/// Why `id` is not an identifier RDS accepts for a DB cluster or instance, if it is not: 1-63
/// letters, digits or hyphens; first a letter; no trailing hyphen, no two consecutive hyphens.
/// RDS stores identifiers in lower case, so upper case is refused rather than silently
/// different from what `describe_*` returns.
pub fn rds_identifier_problem(id: &str) -> Option<String> {
    let why = if id.is_empty() {
        "it is empty".to_string()
    } else if id.len() > 63 {
        format!("it is {} characters long; RDS allows 63", id.len())
    } else if !id.starts_with(|c: char| c.is_ascii_alphabetic()) {
        "it must start with a letter".to_string()
    } else if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        format!("{c:?} is not allowed: only letters, digits and hyphens")
    } else if id.chars().any(|c| c.is_ascii_uppercase()) {
        format!(
            "RDS stores identifiers in lower case: use {}",
            id.to_ascii_lowercase()
        )
    } else if id.ends_with('-') {
        "it must not end with a hyphen".to_string()
    } else if id.contains("--") {
        "it must not contain two consecutive hyphens".to_string()
    } else {
        return None;
    };
    Some(format!("not an RDS identifier: {why}"))
}

fn spec_str(spec: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match spec.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("`{key}` must be a string, not {other}")),
    }
}

fn spec_num(spec: &Map<String, Value>, key: &str) -> Result<Option<f64>, String> {
    match spec.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(other) => Err(format!("`{key}` must be a number, not {other}")),
    }
}

fn spec_duration(spec: &Map<String, Value>, key: &str) -> Result<Option<Duration>, String> {
    spec_str(spec, key)?
        .map(|s| parse_duration(&s).map_err(|e| format!("`{key}`: {e}")))
        .transpose()
}

const SPEC_KEYS: &[&str] = &[
    "type",
    "doc",
    "default_value",
    "computed",
    "values",
    "min",
    "max",
    "on_resume",
];

impl Param {
    fn from_spec(name: &str, spec: &Value) -> Result<Param, String> {
        let what = |e: String| format!("parameter {name}: {e}");
        if !name.starts_with(|c: char| c.is_ascii_lowercase())
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(what(
                "names are snake_case (a-z, 0-9, _), so `--set KEY=VALUE` can name them".into(),
            ));
        }
        let Value::Object(spec) = spec else {
            return Err(what(format!("expected #{{ type, doc, ... }}, got {spec}")));
        };
        if let Some(k) = spec.keys().find(|k| !SPEC_KEYS.contains(&k.as_str())) {
            let hint = suggest(k, SPEC_KEYS)
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            return Err(what(format!(
                "unknown key `{k}`{hint}; a spec has {}",
                SPEC_KEYS.join(", ")
            )));
        }
        let ty = spec_str(spec, "type")
            .map_err(what)?
            .ok_or_else(|| what("no `type`".into()))?;
        let int = |k| -> Result<Option<i64>, String> {
            Ok(spec_num(spec, k).map_err(what)?.map(|v| v as i64))
        };
        let kind = match ty.as_str() {
            "string" => Kind::String,
            "bool" => Kind::Bool,
            "cluster-id" => Kind::ClusterId,
            "int" => Kind::Int {
                min: int("min")?,
                max: int("max")?,
            },
            "float" => Kind::Float {
                min: spec_num(spec, "min").map_err(what)?,
                max: spec_num(spec, "max").map_err(what)?,
            },
            "duration" => Kind::Duration {
                min: spec_duration(spec, "min").map_err(what)?,
                max: spec_duration(spec, "max").map_err(what)?,
            },
            "enum" => match spec.get("values") {
                Some(Value::Array(vs)) if !vs.is_empty() => Kind::Enum(
                    vs.iter()
                        .map(|v| {
                            v.as_str()
                                .map(str::to_string)
                                .ok_or_else(|| what(format!("`values` must be strings, not {v}")))
                        })
                        .collect::<Result<_, _>>()?,
                ),
                _ => return Err(what("an enum needs `values: [\"a\", \"b\"]`".into())),
            },
            other => {
                return Err(what(format!(
                    "unknown type {other:?}; use string, int, float, bool, duration, enum or \
                     cluster-id"
                )));
            }
        };
        if spec.contains_key("values") && !matches!(kind, Kind::Enum(_)) {
            return Err(what("`values` is for type enum".into()));
        }
        let bounded = matches!(
            kind,
            Kind::Int { .. } | Kind::Float { .. } | Kind::Duration { .. }
        );
        if !bounded && (spec.contains_key("min") || spec.contains_key("max")) {
            return Err(what("`min`/`max` are for int, float and duration".into()));
        }
        let doc = spec_str(spec, "doc")
            .map_err(what)?
            .filter(|d| !d.trim().is_empty())
            .ok_or_else(|| what("no `doc`: say what it does, in a sentence".into()))?;
        let default = spec.get("default_value").filter(|v| !v.is_null()).cloned();
        let computed = spec_str(spec, "computed").map_err(what)?;
        if default.is_some() && computed.is_some() {
            return Err(what(
                "`default_value` and `computed` exclude each other: a value, or how the runbook \
                 computes one"
                    .into(),
            ));
        }
        let on_resume = match spec.get("on_resume") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => return Err(what(format!("`on_resume` must be a bool, not {other}"))),
        };
        Ok(Param {
            name: name.to_string(),
            kind,
            doc,
            default,
            computed,
            on_resume,
        })
    }

    /// Why `v` is not a value of this parameter, if it is not.
    pub fn problem(&self, v: &Value) -> Option<String> {
        let kind_of = |v: &Value| match v {
            Value::Null => "nothing",
            Value::Bool(_) => "a bool",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "a map",
        };
        let bounds = |x: f64, min: Option<f64>, max: Option<f64>, show: &dyn Fn(f64) -> String| {
            if let Some(m) = min.filter(|m| x < *m) {
                return Some(format!("below the minimum {}", show(m)));
            }
            if let Some(m) = max.filter(|m| x > *m) {
                return Some(format!("above the maximum {}", show(m)));
            }
            None
        };
        match (&self.kind, v) {
            (Kind::String, Value::String(s)) if s.trim().is_empty() => Some("it is empty".into()),
            (Kind::String, Value::String(_)) => None,
            (Kind::String, other) => Some(format!("expected a string, got {}", kind_of(other))),
            (Kind::Bool, Value::Bool(_)) => None,
            (Kind::Bool, other) => Some(format!("expected true or false, got {}", kind_of(other))),
            (Kind::Int { min, max }, Value::Number(n)) => match n.as_i64() {
                Some(i) => bounds(
                    i as f64,
                    min.map(|m| m as f64),
                    max.map(|m| m as f64),
                    &|x| format!("{}", x as i64),
                ),
                None => Some("expected a whole number".into()),
            },
            (Kind::Int { .. }, other) => {
                Some(format!("expected a whole number, got {}", kind_of(other)))
            }
            (Kind::Float { min, max }, Value::Number(n)) => {
                bounds(n.as_f64().unwrap_or(f64::NAN), *min, *max, &|x| {
                    x.to_string()
                })
            }
            (Kind::Float { .. }, other) => {
                Some(format!("expected a number, got {}", kind_of(other)))
            }
            (Kind::Duration { min, max }, Value::String(s)) => match parse_duration(s) {
                Ok(d) => bounds(
                    d.as_secs_f64(),
                    min.map(|m| m.as_secs_f64()),
                    max.map(|m| m.as_secs_f64()),
                    &|x| format_duration(Duration::from_secs_f64(x)),
                ),
                Err(e) => Some(e),
            },
            (Kind::Duration { .. }, Value::Number(_)) => {
                Some("a duration needs a unit (ms, s, m, h, d)".into())
            }
            (Kind::Duration { .. }, other) => {
                Some(format!("expected a duration, got {}", kind_of(other)))
            }
            (Kind::Enum(values), Value::String(s)) if values.contains(s) => None,
            (Kind::Enum(values), other) => {
                let listed = values
                    .iter()
                    .map(|v| format!("{v:?}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let near = other.as_str().and_then(|s| {
                    suggest(s, &values.iter().map(String::as_str).collect::<Vec<_>>())
                });
                Some(match near {
                    Some(n) => format!("not one of {listed} (did you mean {n}?)"),
                    None => format!("not one of {listed}"),
                })
            }
            (Kind::ClusterId, Value::String(s)) => rds_identifier_problem(s),
            (Kind::ClusterId, other) => Some(format!(
                "expected an RDS identifier, got {}",
                kind_of(other)
            )),
        }
    }

    /// A value to show in a fix: the default, else the lower bound, else a typical one.
    fn example(&self) -> String {
        if let Some(d) = &self.default {
            return plain(d);
        }
        match &self.kind {
            Kind::String => "VALUE".into(),
            Kind::Bool => "true".into(),
            Kind::Int { min, .. } => min.unwrap_or(1).to_string(),
            Kind::Float { min, .. } => min.unwrap_or(1.0).to_string(),
            Kind::Duration { min, .. } => format_duration(
                min.unwrap_or(Duration::from_secs(30))
                    .max(Duration::from_secs(1)),
            ),
            Kind::Enum(values) => values[0].clone(),
            Kind::ClusterId => "orders-db-aurora".into(),
        }
    }

    /// A fix for a bad `given`: for a duration given as a bare number, that number with a unit.
    fn example_for(&self, given: &Value) -> String {
        match (&self.kind, given) {
            (Kind::Duration { .. }, Value::Number(n)) => format!("{n}s (or {n}m, {n}h)"),
            (Kind::Enum(values), _) => values.join(" | "),
            // `--set` reads a bare 16.2 as a number (and 16.10 as 16.1): a string that looks
            // like a number is quoted as JSON, inside the shell's quotes.
            (Kind::String, Value::Number(n)) => {
                format!("'\"{n}\"' (quoted: a bare number is read as one)")
            }
            (Kind::ClusterId, Value::String(s))
                if rds_identifier_problem(&s.to_ascii_lowercase()).is_none() =>
            {
                s.to_ascii_lowercase()
            }
            _ => self.example(),
        }
    }

    fn type_doc(&self) -> String {
        fn range(min: Option<String>, max: Option<String>) -> String {
            match (min, max) {
                (None, None) => String::new(),
                (Some(a), None) => format!(" ≥ {a}"),
                (None, Some(b)) => format!(" ≤ {b}"),
                (Some(a), Some(b)) => format!(" {a}–{b}"),
            }
        }
        match &self.kind {
            Kind::String => "string".into(),
            Kind::Bool => "bool".into(),
            Kind::ClusterId => "RDS identifier".into(),
            Kind::Int { min, max } => format!(
                "int{}",
                range(min.map(|m| m.to_string()), max.map(|m| m.to_string()))
            ),
            Kind::Float { min, max } => format!(
                "number{}",
                range(min.map(|m| m.to_string()), max.map(|m| m.to_string()))
            ),
            Kind::Duration { min, max } => format!(
                "duration{}",
                range(min.map(format_duration), max.map(format_duration))
            ),
            Kind::Enum(values) => values
                .iter()
                .map(|v| format!("`{v}`"))
                .collect::<Vec<_>>()
                .join(" \\| "),
        }
    }
}

/// A value as typed on the command line: strings unquoted.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The schema as a Markdown table: key, type, default, what it does. Keys changeable on resume
/// say so. Call [`schema`] with [`DOC_CLUSTER`] so defaults derived from the cluster read
/// `<cluster>-aurora`.
pub fn markdown(schema: &Schema) -> String {
    let mut out = String::from("| key | type | default | |\n|---|---|---|---|\n");
    for p in schema.params.values() {
        let default = match (&p.default, &p.computed) {
            (Some(d), _) => format!("`{}`", plain(d)),
            (None, Some(c)) => c.clone(),
            (None, None) => "—".into(),
        };
        let doc = if p.on_resume {
            format!("{}; may be changed on resume (`resume --set`)", p.doc)
        } else {
            p.doc.clone()
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            p.name,
            p.type_doc(),
            default.replace('|', "\\|"),
            doc.replace('|', "\\|").replace('\n', " ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::journal::JournalStore;
    use crate::journal::memory::MemoryStore;
    use crate::run::{RunStatus, Runner, StartRequest};
    use crate::{Cancel, Clock, Limits, VirtualClock};

    /// A runbook with a schema in a module, composed at top level the way the real runbooks do.
    const MODULE: &str = r#"
fn parameters(cluster) {
    #{
        target: #{ type: "cluster-id", default_value: cluster + "-copy", doc: "where to copy" },
        window: #{ type: "duration", default_value: "1h", min: "1s", max: "3d", doc: "how long" },
        mode: #{ type: "enum", values: ["full", "off"], default_value: "full", doc: "how" },
        lag: #{ type: "float", default_value: 10, min: 0, doc: "seconds" },
        period: #{ type: "int", default_value: 60, min: 1, doc: "seconds" },
        sized: #{ type: "duration", computed: "1 h per TB", doc: "computed after a step" },
        fork: #{ type: "bool", default_value: false, on_resume: true, doc: "may it fork?" },
        label: #{ type: "string", doc: "optional" },
    }
}
fn check_parameters(cluster, params) {
    let problems = [];
    if params.target == cluster { problems.push(`target: ${cluster} is the source itself`); }
    problems
}
"#;

    const RUNBOOK: &str = r#"
import "lib/schema" as schema;
fn parameters(cluster) { schema::parameters(cluster) }
fn check_parameters(cluster, params) { schema::check_parameters(cluster, params) }
step("copy", || PARAMS)
"#;

    struct Fixture {
        dir: tempfile::TempDir,
        store: MemoryStore,
        rt: tokio::runtime::Runtime,
    }

    impl Fixture {
        fn new(runbook: &str) -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(dir.path().join("lib")).unwrap();
            std::fs::write(dir.path().join("lib/schema.rhai"), MODULE).unwrap();
            std::fs::write(dir.path().join("rb.rhai"), runbook).unwrap();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            Fixture {
                dir,
                store: MemoryStore::new(),
                rt,
            }
        }

        fn runner(&self) -> Runner {
            Runner {
                store: Arc::new(self.store.clone()),
                clock: Arc::new(VirtualClock::new(0)) as Arc<dyn Clock>,
                handle: self.rt.handle().clone(),
                limits: Limits::default(),
                cancel: Cancel::new(),
                sinks: vec![],
                plugins: vec![],
                world: "test".into(),
            }
        }

        fn start(&self, params: Value) -> Result<RunStatus, EngineError> {
            self.runner()
                .start(StartRequest {
                    runbook: self.dir.path().join("rb.rhai"),
                    cluster: "orders-db".into(),
                    params: params.as_object().unwrap().clone(),
                    run_id: Some("run".into()),
                })
                .map(|r| r.status)
        }

        /// The refusal's message, after checking that nothing was journaled.
        fn refused(&self, params: Value) -> String {
            match self.start(params) {
                Err(EngineError::Invalid(m)) => {
                    assert!(self.store.list().unwrap().is_empty(), "a run exists: {m}");
                    m
                }
                other => panic!("not refused: {other:?}"),
            }
        }

        fn path(&self) -> &Path {
            self.dir.path()
        }
    }

    #[test]
    fn defaults_are_filled_in_journaled_and_seen_as_params() {
        let f = Fixture::new(RUNBOOK);
        let status = f.start(serde_json::json!({ "lag": 2.5 })).unwrap();
        let RunStatus::Succeeded { result } = status else {
            panic!("{status:?}")
        };
        let want = serde_json::json!({
            "target": "orders-db-copy", "window": "1h", "mode": "full", "lag": 2.5,
            "period": 60, "fork": false,
        });
        assert_eq!(result, want, "computed and optional keys stay absent");
        let started = f.store.entries("run").into_iter().next().unwrap();
        let crate::journal::Entry::RunStarted { params, .. } = started else {
            panic!()
        };
        assert_eq!(params, want);
    }

    #[test]
    fn every_problem_is_named_at_once_and_nothing_is_journaled() {
        let f = Fixture::new(RUNBOOK);
        let m = f.refused(serde_json::json!({
            "windw": "2h", "mode": "partial", "lag": "ten", "window": 90, "period": 1.5,
            "target": "Orders_Copy", "fork": "yes", "label": "",
        }));
        for want in [
            "windw: not a parameter of this runbook; did you mean window?",
            "mode = \"partial\": not one of \"full\", \"off\"; use e.g. --set mode=full | off",
            "lag = \"ten\": expected a number, got a string",
            "window = 90: a duration needs a unit (ms, s, m, h, d); use e.g. --set window=90s",
            "period = 1.5: expected a whole number",
            "target = \"Orders_Copy\": not an RDS identifier: '_' is not allowed",
            "fork = \"yes\": expected true or false",
            "label = \"\": it is empty",
        ] {
            assert!(m.contains(want), "missing {want:?} in:\n{m}");
        }
        assert!(
            m.starts_with("invalid parameters for runbook rb; nothing was started"),
            "{m}"
        );
    }

    #[test]
    fn bounds_and_cross_field_rules() {
        let f = Fixture::new(RUNBOOK);
        let m = f.refused(serde_json::json!({ "window": "4d", "lag": -1 }));
        assert!(m.contains("window = \"4d\": above the maximum 3d"), "{m}");
        assert!(m.contains("lag = -1: below the minimum 0"), "{m}");
        let m = f.refused(serde_json::json!({ "target": "orders-db" }));
        assert!(m.contains("target: orders-db is the source itself"), "{m}");
    }

    #[test]
    fn a_default_derived_from_the_cluster_is_checked_too() {
        let f = Fixture::new(RUNBOOK);
        let long = "a".repeat(60);
        let status = f.runner().start(StartRequest {
            runbook: f.path().join("rb.rhai"),
            cluster: long.clone(),
            params: Map::new(),
            run_id: Some("run".into()),
        });
        let Err(EngineError::Invalid(m)) = status else {
            panic!("{status:?}")
        };
        assert!(m.contains(&format!("target defaults to \"{long}-copy\", which will not do: not an RDS identifier: it is 65 characters")), "{m}");
        assert!(f.store.list().unwrap().is_empty());
    }

    #[test]
    fn a_runbook_without_a_schema_takes_parameters_as_given() {
        let f = Fixture::new("step(\"copy\", || PARAMS)");
        let status = f.start(serde_json::json!({ "anything": 1 })).unwrap();
        assert!(
            matches!(status, RunStatus::Succeeded { result } if result == serde_json::json!({ "anything": 1 }))
        );
    }

    #[test]
    fn a_schema_that_touches_the_world_or_is_malformed_is_a_runbook_error() {
        for (schema, want) in [
            (
                r#"#{ t: #{ type: "int", default_value: now(), doc: "x" } }"#,
                "fn parameters of runbook rb failed",
            ),
            (
                r#"#{ t: #{ type: "integer", doc: "x" } }"#,
                "parameter t: unknown type \"integer\"",
            ),
            (
                r#"#{ t: #{ type: "int", default_valeu: 1, doc: "x" } }"#,
                "unknown key `default_valeu` (did you mean `default_value`?)",
            ),
            (r#"#{ t: #{ type: "int" } }"#, "parameter t: no `doc`"),
            (
                r#"#{ T: #{ type: "int", doc: "x" } }"#,
                "names are snake_case",
            ),
            (
                r#"#{ t: #{ type: "enum", doc: "x" } }"#,
                "an enum needs `values",
            ),
            (r#"[]"#, "not a map"),
        ] {
            let f = Fixture::new(&format!(
                "fn parameters(cluster) {{ {schema} }}\nstep(\"x\", || 1)"
            ));
            let m = f.refused(serde_json::json!({}));
            assert!(m.contains(want), "{schema}: want {want:?} in\n{m}");
        }
    }

    #[test]
    fn resume_fills_defaults_missing_from_an_older_journal_and_refuses_what_no_longer_fits() {
        let f = Fixture::new("step(\"copy\", || PARAMS); step(\"stop\", || sleep(\"1h\"))");
        // Started without a schema, interrupted as soon as it exists: the journal holds the
        // parameters as given.
        struct CancelOnStart(Cancel);
        impl crate::transcript::Sink for CancelOnStart {
            fn line(&self, l: &crate::transcript::Line) {
                if matches!(&l.event, crate::transcript::Event::RunStarted { .. }) {
                    self.0.cancel();
                }
            }
        }
        let mut runner = f.runner();
        runner
            .sinks
            .push(Arc::new(CancelOnStart(runner.cancel.clone())));
        let _ = runner.start(StartRequest {
            runbook: f.path().join("rb.rhai"),
            cluster: "orders-db".into(),
            params: serde_json::json!({ "lag": 3 }).as_object().unwrap().clone(),
            run_id: Some("run".into()),
        });
        std::fs::write(f.path().join("rb.rhai"), RUNBOOK).unwrap();
        let report = f.runner().resume("run", true).unwrap();
        let RunStatus::Succeeded { result } = report.status else {
            panic!("{:?}", report.status)
        };
        assert_eq!(result["lag"], 3, "journaled values win");
        assert_eq!(result["window"], "1h", "defaults filled in");

        // A key the changed runbook no longer takes: refused before anything is appended.
        std::fs::write(f.path().join("rb.rhai"), "step(\"copy\", || PARAMS)").unwrap();
        let mut runner = f.runner();
        runner
            .sinks
            .push(Arc::new(CancelOnStart(runner.cancel.clone())));
        let _ = runner.start(StartRequest {
            runbook: f.path().join("rb.rhai"),
            cluster: "orders-db".into(),
            params: serde_json::json!({ "lagg": 3 })
                .as_object()
                .unwrap()
                .clone(),
            run_id: Some("run2".into()),
        });
        let before = f.store.entries("run2").len();
        std::fs::write(f.path().join("rb.rhai"), RUNBOOK).unwrap();
        let Err(EngineError::Invalid(m)) = f.runner().resume("run2", true) else {
            panic!("resumed")
        };
        assert!(
            m.contains("run run2: its journaled parameters do not fit runbook rb"),
            "{m}"
        );
        assert!(
            m.contains("lagg: not a parameter of this runbook; did you mean lag?"),
            "{m}"
        );
        assert_eq!(f.store.entries("run2").len(), before, "nothing appended");
    }

    #[test]
    fn only_keys_declared_on_resume_may_change_on_resume() {
        let f = Fixture::new(RUNBOOK);
        let mut engine = crate::run::reference_engine(&f.runner());
        let rb = crate::runbook::load(&mut engine, &f.path().join("rb.rhai")).unwrap();
        let schema = schema(&engine, &rb, "orders-db").unwrap().unwrap();
        let journaled = prepare(&engine, &rb, "orders-db", &Map::new()).unwrap();
        let set = |v: Value| v.as_object().unwrap().clone();
        let ok = override_on_resume(
            &schema,
            &journaled,
            &set(serde_json::json!({ "fork": true })),
        )
        .unwrap();
        assert_eq!(ok["fork"], true);
        let Err(EngineError::Invalid(m)) = override_on_resume(
            &schema,
            &journaled,
            &set(serde_json::json!({ "window": "2h", "fork": 1 })),
        ) else {
            panic!()
        };
        assert!(m.contains("window: fixed when the run started (journaled as \"1h\"); a resume may change only fork"), "{m}");
        assert!(m.contains("fork = 1: expected true or false"), "{m}");
    }

    #[test]
    fn the_docs_table_shows_types_defaults_and_what_changes_on_resume() {
        let f = Fixture::new(RUNBOOK);
        let schema = load_schema(&f.runner(), &f.path().join("rb.rhai"), DOC_CLUSTER);
        let md = markdown(&schema.unwrap().unwrap());
        for row in [
            "| `target` | RDS identifier | `<cluster>-copy` | where to copy |",
            "| `window` | duration 1s–3d | `1h` | how long |",
            "| `mode` | `full` \\| `off` | `full` | how |",
            "| `sized` | duration | 1 h per TB | computed after a step |",
            "| `fork` | bool | `false` | may it fork?; may be changed on resume (`resume --set`) |",
            "| `label` | string | — | optional |",
            "| `lag` | number ≥ 0 | `10` | seconds |",
        ] {
            assert!(md.contains(row), "missing {row}\n{md}");
        }
    }

    #[test]
    fn rds_identifiers() {
        for ok in ["orders-db", "a", "orders-db-aurora-2", &"a".repeat(63)] {
            assert_eq!(rds_identifier_problem(ok), None, "{ok}");
        }
        for (bad, why) in [
            ("", "empty"),
            (&"a".repeat(64) as &str, "64 characters"),
            ("1orders", "start with a letter"),
            ("-orders", "start with a letter"),
            ("orders_db", "'_' is not allowed"),
            ("orders.db", "'.' is not allowed"),
            ("Orders-DB", "use orders-db"),
            ("orders-", "end with a hyphen"),
            ("orders--db", "two consecutive hyphens"),
        ] {
            let got = rds_identifier_problem(bad).unwrap_or_default();
            assert!(got.contains(why), "{bad:?}: {got}");
        }
    }

    #[test]
    fn suggestions_catch_typos_only() {
        let names = [
            "validation_window",
            "validation_timeout",
            "fence_validation",
        ];
        assert_eq!(
            suggest("validaton_window", &names),
            Some("validation_window")
        );
        assert_eq!(
            suggest("fence_valdiation", &names),
            Some("fence_validation")
        );
        assert_eq!(suggest("drain_timeout", &names), None);
    }
}
