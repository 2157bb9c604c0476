//! Operator-declared shell commands run by a primitive (the `cdc` consumers' pause and resume,
//! the `schema` area's freeze and unfreeze): `sh -c` through the call, bounded by the hook's
//! timeout, the step's deadline and Ctrl-C (a command cut short is killed), its output kept
//! for the error when it fails.

use std::io::{Read, Seek};
use std::process::Stdio;
use std::time::Duration;

use godwit_engine::{Call, ErrorKind, PrimitiveError};

/// One declared command to run.
pub struct Hook<'a> {
    /// The calling area and op (errors are theirs).
    pub area: &'a str,
    pub op: &'a str,
    /// What the command is for, at the head of its errors (`consumer debezium-orders`).
    pub what: String,
    pub command: &'a str,
    /// Its environment beside the process's own.
    pub env: Vec<(&'a str, String)>,
    /// The declared timeout (`"10m"`); `None`: `default_timeout`.
    pub timeout: Option<&'a str>,
    pub default_timeout: Duration,
    /// The fix an error suggests after the command's output (`fix the command …`).
    pub fix: &'a str,
}

/// The last `n` characters of `text`, trimmed.
fn tail(text: &str, n: usize) -> String {
    let t = text.trim();
    let skip = t.chars().count().saturating_sub(n);
    t.chars().skip(skip).collect()
}

/// Run `h` to its end. Ok: what it printed (its last 2,000 characters). A non-zero exit is a
/// retryable `Internal` error with the output; running past the timeout is a `Timeout`.
pub fn run(cx: &Call<'_>, h: &Hook<'_>) -> Result<String, PrimitiveError> {
    let (area, op) = (h.area, h.op);
    let timeout = h
        .timeout
        .map(godwit_engine::duration::parse_duration)
        .transpose()
        .map_err(|e| {
            PrimitiveError::invalid(
                area,
                op,
                format!("{}: timeout: {e}", h.what),
                "e.g. timeout = \"10m\"",
            )
        })?
        .unwrap_or(h.default_timeout);
    // Output goes to an unnamed file, not a pipe: a command that starts a daemon (`… &`)
    // leaves it holding its stdout, and reading a pipe to its end would wait for the daemon,
    // not the command.
    let log = tempfile::tempfile().map_err(|e| {
        PrimitiveError::new(
            area,
            op,
            ErrorKind::Internal,
            format!("cannot create a file for the command's output: {e}"),
            "free space in the temp directory",
        )
    })?;
    let io = |f: &std::fs::File| {
        f.try_clone()
            .map(Stdio::from)
            .map_err(|e| PrimitiveError::new(area, op, ErrorKind::Internal, e.to_string(), ""))
    };
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(h.command)
        .stdin(Stdio::null())
        .stdout(io(&log)?)
        .stderr(io(&log)?)
        // A cut or cancelled call drops the future, and with it the child.
        .kill_on_drop(true);
    for (k, v) in &h.env {
        cmd.env(k, v);
    }
    let status = cx
        .block_on(timeout, async {
            let mut child = cmd.spawn().map_err(|e| {
                PrimitiveError::new(
                    area,
                    op,
                    ErrorKind::Internal,
                    format!("cannot run sh: {e}"),
                    "",
                )
            })?;
            child
                .wait()
                .await
                .map_err(|e| PrimitiveError::new(area, op, ErrorKind::Internal, e.to_string(), ""))
        })
        .map_err(|mut e| {
            if e.kind == ErrorKind::Timeout {
                e.message = format!("{}: `{}`: {}", h.what, h.command, e.message);
                e.hint = "raise the hook's timeout, or make the command return once done".into();
            }
            e
        })?;
    let mut text = String::new();
    let mut log = log;
    let _ = log
        .seek(std::io::SeekFrom::Start(0))
        .and_then(|_| log.read_to_string(&mut text));
    let printed = tail(&text, 2000);
    if status.success() {
        return Ok(printed);
    }
    Err(PrimitiveError::new(
        area,
        op,
        ErrorKind::Internal,
        format!(
            "{}: `{}` exited with {status}: {printed}",
            h.what, h.command
        ),
        h.fix,
    )
    .with_retryable(true))
}

#[cfg(test)]
mod tests {
    use super::tail;

    #[test]
    fn the_tail_keeps_the_last_characters() {
        assert_eq!(tail("  abcdef \n", 3), "def");
        assert_eq!(tail("ab", 3), "ab");
        assert_eq!(tail("ééé", 2), "éé");
    }
}
