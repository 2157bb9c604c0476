//! An interactive session: the REPL's engine. Same built-ins and primitives as a run, but no
//! journal, strict mode off (primitives work at the top level), and read-only until mutations
//! are explicitly allowed.

use std::sync::Arc;

use rhai::{AST, Dynamic, Engine, ParseErrorType, Scope};

use crate::host::Host;
use crate::report::{Report, from_rhai};
use crate::run::{RunCtx, Runner};

/// Variables and functions persist across evaluations.
pub struct Session {
    engine: Engine,
    scope: Scope<'static>,
    /// Functions defined so far (statements are cleared after each evaluation).
    ast: AST,
    ctx: Arc<RunCtx>,
    host: Host,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

/// Why an input did not evaluate.
#[derive(Debug)]
pub enum SessionError {
    /// The input is not finished (an open block, string or call): read another line.
    Incomplete,
    /// A syntax or runtime error, with the position in the input.
    Failed(Report),
}

impl Session {
    /// A session over `runner`'s world (its clock, plugins and runtime handle).
    pub fn new(runner: &Runner) -> Session {
        let ctx = RunCtx::new(
            "repl".into(),
            runner.clock.clone(),
            runner.cancel.clone(),
            false,
            runner.sinks.clone(),
        );
        ctx.set_read_only(true);
        let (engine, host) = runner.build(&ctx);
        Session {
            engine,
            scope: Scope::new(),
            ast: AST::empty(),
            ctx,
            host,
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    pub fn scope_mut(&mut self) -> &mut Scope<'static> {
        &mut self.scope
    }

    pub fn read_only(&self) -> bool {
        self.ctx.is_read_only()
    }

    pub fn set_read_only(&self, on: bool) {
        self.ctx.set_read_only(on);
    }

    /// Evaluate one input. `name` labels positions in reports (e.g. `<repl>`).
    pub fn eval(&mut self, input: &str, name: &str) -> Result<Dynamic, SessionError> {
        let ast = match self.engine.compile_with_scope(&self.scope, input) {
            Ok(ast) => ast,
            Err(e) if is_incomplete(e.err_type(), input) => return Err(SessionError::Incomplete),
            Err(e) => {
                let err = rhai::EvalAltResult::from(e);
                return Err(SessionError::Failed(from_rhai(
                    &err,
                    std::path::Path::new(name),
                )));
            }
        };
        self.ast = self.ast.merge(&ast);
        let out = self
            .engine
            .eval_ast_with_scope::<Dynamic>(&mut self.scope, &self.ast);
        self.ast.clear_statements();
        out.map_err(|e| SessionError::Failed(from_rhai(&e, std::path::Path::new(name))))
    }
}

/// Does `input` need more lines (an open block, string or call)? Parsing needs no primitives,
/// so any engine (even `Engine::new_raw()`) can answer.
pub fn needs_more_input(engine: &Engine, input: &str) -> bool {
    match engine.compile(input) {
        Ok(_) => false,
        Err(e) => is_incomplete(e.err_type(), input),
    }
}

/// Parse errors that mean "keep typing": the input ended inside a block, string or expression.
fn is_incomplete(err: &ParseErrorType, input: &str) -> bool {
    match err {
        ParseErrorType::UnexpectedEOF => true,
        ParseErrorType::BadInput(rhai::LexError::UnterminatedString)
        | ParseErrorType::MissingToken(..) => ends_open(input),
        _ => false,
    }
}

/// More opening than closing brackets, or an open backtick string: the input continues.
/// A `"` string cannot span lines in Rhai, so a newline ends it (as an error, not as more input).
fn ends_open(input: &str) -> bool {
    let (mut depth, mut in_str, mut prev) = (0i32, None::<char>, ' ');
    for c in input.chars() {
        match in_str {
            Some(q) => {
                if (c == q && prev != '\\') || (q == '"' && c == '\n') {
                    in_str = None;
                }
            }
            None => match c {
                '"' | '`' => in_str = Some(c),
                '{' | '(' | '[' => depth += 1,
                '}' | ')' | ']' => depth -= 1,
                _ => {}
            },
        }
        prev = c;
    }
    depth > 0 || in_str.is_some()
}
