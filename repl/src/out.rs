//! Printing for commands. Through `anstream`, so colour appears only where it can be seen (a
//! terminal, no `NO_COLOR`, `CLICOLOR_FORCE` to force it), and tolerant of a closed pipe:
//! `godwit demo --list | head -1` ends quietly where `println!` panicked (exit 101).

use std::fmt::Display;
use std::io::Write;

use anstyle::{AnsiColor, Style};
use serde::Serialize;

pub const OK: Style = Style::new().fg_color(Some(anstyle::Color::Ansi(AnsiColor::Green)));
pub const BAD: Style = Style::new()
    .fg_color(Some(anstyle::Color::Ansi(AnsiColor::Red)))
    .bold();
pub const WARN: Style = Style::new().fg_color(Some(anstyle::Color::Ansi(AnsiColor::Yellow)));
pub const UNDO: Style = Style::new().fg_color(Some(anstyle::Color::Ansi(AnsiColor::Cyan)));
pub const DIM: Style = Style::new().dimmed();
pub const BOLD: Style = Style::new().bold();

/// `text` in `style` (the escape codes are stripped by anstream where colour is off).
pub fn styled(style: Style, text: impl Display) -> String {
    format!("{style}{text}{style:#}")
}

/// Print a line on stdout. A closed pipe ends the process quietly with exit 0: whoever read
/// our output has all they wanted.
pub fn line(text: impl Display) {
    let mut out = anstream::stdout().lock();
    if let Err(e) = writeln!(out, "{text}").and_then(|()| out.flush()) {
        closed(e);
    }
}

/// Print `v` as one line of JSON on stdout (`-o json`).
pub fn json(v: &impl Serialize) {
    match serde_json::to_string(v) {
        Ok(s) => line(s),
        Err(e) => error(&format!("cannot print JSON: {e}")),
    }
}

/// A message on stderr (progress, notes, warnings): never fails the command.
pub fn note(text: impl Display) {
    let mut err = anstream::stderr().lock();
    let _ = writeln!(err, "{text}");
}

/// `error: <msg>` on stderr, the prefix in red where colour is on.
pub fn error(msg: &str) {
    note(format!("{}: {msg}", styled(BAD, "error")));
}

fn closed(e: std::io::Error) {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(godwit_engine::exit::OK);
    }
    note(format!("cannot write to stdout: {e}"));
}
