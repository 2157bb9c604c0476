//! Operator-facing reports that quote the runbook line, in the style of compiler diagnostics:
//!
//! ```text
//! error: cw::metric touches the world and may only run inside a step or gate
//!   --> runbooks/orders.rhai:12:5
//!    |
//! 12 |     let lag = cw::metric("OldestReplicationSlotLag");
//!    |               ^
//!    = hint: wrap it: step("read-lag", || cw::metric(...))
//! ```

use std::path::PathBuf;

use rhai::{EvalAltResult, Position};
use serde::Serialize;

use crate::error::PrimitiveError;

/// A place in a runbook or module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

/// A message, where it happened, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub message: String,
    pub location: Option<Location>,
    pub hint: Option<String>,
}

impl Report {
    pub fn new(message: impl Into<String>) -> Self {
        Report {
            message: message.into(),
            location: None,
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        let hint = hint.into();
        self.hint = (!hint.is_empty()).then_some(hint);
        self
    }

    pub fn at(mut self, file: impl Into<PathBuf>, pos: Position) -> Self {
        if let (Some(line), column) = (pos.line(), pos.position().unwrap_or(1)) {
            self.location = Some(Location {
                file: file.into(),
                line,
                column,
            });
        }
        self
    }

    /// Render with the quoted source line (read from disk; omitted if unreadable).
    pub fn render(&self) -> String {
        let text = self
            .location
            .as_ref()
            .and_then(|l| std::fs::read_to_string(&l.file).ok());
        self.render_with(text.as_deref())
    }

    /// Render quoting `source` (e.g. the REPL input) instead of reading the file. The snippet
    /// is annotate-snippets' (rustc's renderer): the place, the line, a caret, the hint.
    pub fn render_with(&self, source: Option<&str>) -> String {
        use annotate_snippets::{AnnotationKind, Level, Renderer, Snippet};
        let Some(loc) = &self.location else {
            return match &self.hint {
                Some(h) => format!("{}\nhint: {h}", self.message),
                None => self.message.clone(),
            };
        };
        let line = source
            .and_then(|t| t.lines().nth(loc.line.saturating_sub(1)))
            .unwrap_or("");
        // With an annotated line the renderer appends `:line:col` itself.
        let path = if line.is_empty() {
            format!("{}:{}:{}", loc.file.display(), loc.line, loc.column)
        } else {
            loc.file.display().to_string()
        };
        // The caret: the character at the column (Rhai counts characters from 1), clamped.
        let start = line
            .char_indices()
            .nth(loc.column.saturating_sub(1))
            .map_or(line.len(), |(i, _)| i);
        let end = line[start..]
            .chars()
            .next()
            .map_or(start, |c| start + c.len_utf8());
        let snippet = Snippet::source(line).line_start(loc.line).path(path);
        let snippet = if line.is_empty() {
            snippet
        } else {
            snippet.annotation(AnnotationKind::Primary.span(start..end))
        };
        // The message is the title, without a level name: callers prefix `error: ` themselves.
        let mut group = Level::ERROR
            .no_name()
            .primary_title(self.message.as_str())
            .element(snippet);
        if let Some(h) = &self.hint {
            group = group.element(Level::HELP.with_name("hint").message(h.as_str()));
        }
        let rendered = Renderer::plain().render(&[group]).to_string();
        // A title without a level name keeps rustc's `: ` separator; drop it.
        rendered
            .strip_prefix(": ")
            .map(String::from)
            .unwrap_or(rendered)
    }
}

/// Turn a Rhai error into a report pointing at the innermost place it happened.
/// `main` is the runbook file; errors inside imported modules name the module's file.
///
/// Positions inside the text given to `eval()` count from that text, not from the file: such an
/// error points at the `eval` call and says where in the evaluated text it happened.
pub fn from_rhai(err: &EvalAltResult, main: &std::path::Path) -> Report {
    let mut file: PathBuf = main.to_path_buf();
    // The innermost error may lack a position; fall back to the closest call site that has one.
    let mut fallback = (file.clone(), err.position());
    // Set while positions count from an evaluated text rather than a file.
    let mut in_eval = false;
    let mut cur = err;
    loop {
        match cur {
            EvalAltResult::ErrorInFunctionCall(name, source, inner, pos) => {
                if !pos.is_none() && !in_eval {
                    fallback = (file.clone(), *pos);
                }
                if name == "eval" {
                    in_eval = true;
                } else {
                    // A function's body is in a file (functions cannot be defined in eval).
                    in_eval = false;
                    if !source.is_empty() {
                        file = resolve_source(source, main);
                    }
                }
                cur = inner;
            }
            EvalAltResult::ErrorInModule(path, inner, pos) => {
                if !pos.is_none() && !in_eval {
                    fallback = (file.clone(), *pos);
                }
                in_eval = false;
                if !path.is_empty() {
                    file = resolve_source(path, main);
                }
                cur = inner;
            }
            _ => break,
        }
    }
    let pos = if in_eval || cur.position().is_none() {
        file = fallback.0;
        fallback.1
    } else {
        cur.position()
    };
    let (mut message, hint) = match cur {
        EvalAltResult::ErrorRuntime(value, _) => match PrimitiveError::from_dynamic(value) {
            Some(p) => (p.to_string(), Some(p.hint)),
            None => (format!("runbook threw: {value}"), None),
        },
        other => (strip_position(&other.to_string()), None),
    };
    if in_eval && let Some(line) = cur.position().line() {
        let column = cur.position().position().unwrap_or(1);
        message.push_str(&format!(
            " (line {line}, column {column} of the text given to eval)"
        ));
    }
    let mut report = Report::new(message).at(file, pos);
    if let Some(h) = hint {
        report = report.with_hint(h);
    }
    report
}

fn resolve_source(source: &str, main: &std::path::Path) -> PathBuf {
    let p = PathBuf::from(source);
    if p.exists() {
        return p;
    }
    let with_ext = main
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .join(format!("{source}.rhai"));
    if with_ext.exists() { with_ext } else { p }
}

/// Rhai appends ` (line N, position M)`; the report shows the location its own way.
pub fn strip_position(s: &str) -> String {
    match s.rfind(" (line ") {
        Some(i) if s.ends_with(')') => s[..i].to_string(),
        _ => s.to_string(),
    }
}
