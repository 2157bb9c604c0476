//! rustyline integration: completion of meta-commands, modules, functions and variables;
//! signature hints; multi-line input for open blocks and strings.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Helper};
use serde_json::Value;

/// A script-visible function, from the engine's metadata.
#[derive(Debug, Clone)]
pub struct FnInfo {
    /// `lag::classify` or `step`.
    pub name: String,
    pub signature: String,
    pub doc: String,
}

/// Every documented function the engine has, with module names qualified.
pub fn index(engine: &rhai::Engine) -> Vec<FnInfo> {
    let meta: Value =
        serde_json::from_str(&engine.gen_fn_metadata_to_json(false).unwrap_or_default())
            .unwrap_or(Value::Null);
    let mut out = Vec::new();
    let mut add = |module: Option<&str>, f: &Value| {
        let name = f["name"].as_str().unwrap_or_default();
        if name.is_empty() || name.starts_with("anon$") {
            return;
        }
        let doc = f["docComments"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .flat_map(|c| {
                c.lines().map(|l| {
                    l.trim_start()
                        .trim_start_matches("///")
                        .strip_prefix(' ')
                        .unwrap_or(l.trim_start().trim_start_matches("///"))
                        .to_string()
                })
            })
            .collect::<Vec<_>>()
            .join("\n");
        let qualified = module.map_or(name.to_string(), |m| format!("{m}::{name}"));
        let signature = crate::docs::clean_signature(f["signature"].as_str().unwrap_or(name));
        let signature = module.map_or(signature.clone(), |m| format!("{m}::{signature}"));
        out.push(FnInfo {
            name: qualified,
            signature,
            doc,
        });
    };
    for f in meta["functions"].as_array().into_iter().flatten() {
        if f["docComments"].as_array().is_some_and(|c| !c.is_empty()) {
            add(None, f);
        }
    }
    for (m, body) in meta["modules"].as_object().into_iter().flatten() {
        for f in body["functions"].as_array().into_iter().flatten() {
            add(Some(m), f);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name).then(a.signature.cmp(&b.signature)));
    out
}

pub const META_COMMANDS: &[(&str, &str)] = &[
    (":help", "this list"),
    (
        ":doc",
        ":doc FN — the documentation of a function (e.g. :doc lag::classify)",
    ),
    (":modules", "the modules and their functions"),
    (":runs", "the runs in the state directory"),
    (":journal", ":journal RUN — a run's journal entries"),
    (
        ":attach",
        ":attach RUN — load a run's step results into `run`; say where it stopped and why",
    ),
    (
        ":world",
        "the world, its clock, and whether mutations are allowed",
    ),
    (
        ":allow-mutations",
        "enable mutating primitives (asks for confirmation; audited)",
    ),
    (":quit", "leave (Ctrl-D too)"),
];

pub struct ReplHelper {
    pub fns: Vec<FnInfo>,
    pub modules: Vec<String>,
    /// Variable names in the session scope (updated after each evaluation).
    pub vars: Arc<Mutex<Vec<String>>>,
    parser: rhai::Engine,
}

impl ReplHelper {
    pub fn new(fns: Vec<FnInfo>, vars: Arc<Mutex<Vec<String>>>) -> Self {
        let mut modules: Vec<String> = fns
            .iter()
            .filter_map(|f| f.name.split_once("::").map(|(m, _)| m.to_string()))
            .collect();
        modules.sort();
        modules.dedup();
        ReplHelper {
            fns,
            modules,
            vars,
            parser: rhai::Engine::new_raw(),
        }
    }

    /// The signature of the function whose argument list the cursor is in.
    fn signature_at(&self, before: &str) -> Option<String> {
        let mut depth = 0;
        for (i, c) in before.char_indices().rev() {
            match c {
                ')' => depth += 1,
                '(' if depth > 0 => depth -= 1,
                '(' => {
                    let head = &before[..i];
                    let start = head
                        .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                        .map_or(0, |p| p + 1);
                    let name = &head[start..];
                    let sigs: Vec<&str> = self
                        .fns
                        .iter()
                        .filter(|f| f.name == name)
                        .map(|f| f.signature.as_str())
                        .collect();
                    return (!sigs.is_empty()).then(|| sigs.join("  |  "));
                }
                _ => {}
            }
        }
        None
    }
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        if before.starts_with(':') && !before.contains(' ') {
            let c = META_COMMANDS
                .iter()
                .filter(|(m, _)| m.starts_with(before))
                .map(|(m, _)| Pair {
                    display: m.to_string(),
                    replacement: m.to_string(),
                })
                .collect();
            return Ok((0, c));
        }
        let start = before
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .map_or(0, |p| p + 1);
        let word = &before[start..];
        if word.is_empty() {
            return Ok((pos, Vec::new()));
        }
        let mut cands: Vec<String> = Vec::new();
        if word.contains("::") {
            cands.extend(
                self.fns
                    .iter()
                    .filter(|f| f.name.starts_with(word))
                    .map(|f| format!("{}(", f.name)),
            );
        } else {
            cands.extend(
                self.modules
                    .iter()
                    .filter(|m| m.starts_with(word))
                    .map(|m| format!("{m}::")),
            );
            cands.extend(
                self.fns
                    .iter()
                    .filter(|f| !f.name.contains("::") && f.name.starts_with(word))
                    .map(|f| format!("{}(", f.name)),
            );
            cands.extend(
                self.vars
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .filter(|v| v.starts_with(word))
                    .cloned(),
            );
        }
        cands.sort();
        cands.dedup();
        Ok((
            start,
            cands
                .into_iter()
                .map(|c| Pair {
                    display: c.clone(),
                    replacement: c,
                })
                .collect(),
        ))
    }
}

impl Hinter for ReplHelper {
    type Hint = String;

    fn hint(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> Option<String> {
        if pos < line.len() || line.starts_with(':') {
            return None;
        }
        self.signature_at(line).map(|s| format!("   ⟨{s}⟩"))
    }
}

impl Highlighter for ReplHelper {
    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        Cow::Owned(format!("\x1b[2m{hint}\x1b[0m"))
    }
}

impl Validator for ReplHelper {
    fn validate(&self, ctx: &mut ValidationContext<'_>) -> rustyline::Result<ValidationResult> {
        let input = ctx.input();
        if input.trim_start().starts_with(':')
            || !godwit_engine::session::needs_more_input(&self.parser, input)
        {
            Ok(ValidationResult::Valid(None))
        } else {
            Ok(ValidationResult::Incomplete)
        }
    }
}

impl Helper for ReplHelper {}

/// Edit distance, for "did you mean" suggestions.
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Up to three names close to `wanted`.
pub fn closest<'a>(wanted: &str, names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut scored: Vec<(usize, &str)> = names
        .map(|n| {
            let short = n.rsplit("::").next().unwrap_or(n);
            let w_short = wanted.rsplit("::").next().unwrap_or(wanted);
            (
                distance(wanted, n).min(
                    distance(w_short, short)
                        + usize::from(
                            n != short
                                && wanted != w_short
                                && !n.starts_with(wanted.split("::").next().unwrap_or("")),
                        ),
                ),
                n,
            )
        })
        .filter(|(d, n)| *d <= 2.max(n.len() / 4))
        .collect();
    scored.sort();
    let mut out: Vec<String> = scored.into_iter().map(|(_, n)| n.to_string()).collect();
    out.dedup();
    out.truncate(3);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_find_typos() {
        let names = [
            "lag::classify",
            "lag::p99",
            "lag::percentile",
            "step",
            "gate",
        ];
        assert_eq!(
            closest("lag::clasify", names.iter().copied()),
            vec!["lag::classify"]
        );
        assert_eq!(closest("stpe", names.iter().copied()), vec!["step"]);
        assert!(closest("zzzzzz", names.iter().copied()).is_empty());
    }
}
