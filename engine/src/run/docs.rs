//! Doc comments of the engine's script-visible functions (they become `docs/primitives/core.md`;
//! every example there runs as a runbook in the `docs` test binary).

pub const STEP: &str = r#"/// Run `body` once per run and journal its result: the durable unit of a runbook.
///
/// On resume, a step that completed returns its journaled result without running; one that
/// started but never completed (a crash inside it) runs again, so bodies must be idempotent
/// (check, then act). The result must be plain data (maps, arrays, strings, numbers, bools).
///
/// Parameters:
/// * `name` — kebab-case, unique within the run, stable across versions (the journal key).
/// * `body` — a closure `|| ...`; world-touching primitives may only be called inside it.
///
/// Returns: the body's result (from the journal when replaying).
///
/// Errors: the body's error, journaled and thrown again identically on replay; a duplicate or
/// non-kebab-case name; a step inside another step, gate or undo.
///
/// Example:
/// ```rhai
/// let started = step("record-start", || now());
/// let target = step("name-target", || #{ name: CLUSTER + "-aurora" });
/// print(`${target.name} since ${time_str(started)}`);
/// ```"#;

pub const STEP_OPTS: &str = r#"/// `step` with options.
///
/// Parameters:
/// * `name` — as for `step(name, body)`.
/// * `options` — a map:
///   * `undo: |result| ...` — how to reverse this step; on abort, undos run in reverse order of
///     registration, each journaled, and receive the step's result;
///   * `retry: #{ attempts: 3, backoff: "5s" }` — retry errors marked `retryable` (throttling,
///     timeouts) with exponential backoff through the run's clock. This is the default;
///     `retry: #{ attempts: 1 }` turns retries off. (Undos retry retryable errors 5 times.)
///   * `timeout: "10m"` — fail the step (kind `Timeout`) when it runs longer.
/// * `body` — the closure.
///
/// Returns: the body's result.
///
/// Errors: as `step(name, body)`; an unknown option names the allowed ones.
///
/// Example:
/// ```rhai
/// let replica = step("create-replica", #{
///     undo: |r| print(`would delete ${r.id}`),
///     retry: #{ attempts: 3, backoff: "10s" },
///     timeout: "30m",
/// }, || #{ id: CLUSTER + "-aurora" });
/// ```"#;

pub const GATE: &str = r#"/// Poll `checks` every 30 s until they pass once (timeout 1 h). See the options form.
///
/// Parameters:
/// * `name` — kebab-case, unique within the run (shares the namespace of steps).
/// * `checks` — a closure returning `#{ pass, why, evidence }`, an array of those, or a map of
///   named ones.
///
/// Returns: the value of the passing poll (journaled; replayed on resume).
///
/// Errors: `Timeout` (area `gate`) with every closed check's `why`; a non-retryable error of a
/// check (retryable ones count as a closed poll and are retried).
///
/// Example:
/// ```rhai
/// let t0 = step("t0", || now());
/// gate("one-poll", || #{ pass: true, why: "nothing to wait for" });
/// ```"#;

pub const GATE_OPTS: &str = r#"/// Poll `checks` `every` until all pass `hold` times in a row, or fail after `timeout`.
///
/// The transcript records each change of the reasons a gate is closed (with the numbers), and
/// a terminal shows a live progress line. The timeout counts from the gate's first start, so a
/// crash and resume cannot extend it.
///
/// Parameters:
/// * `name` — kebab-case, unique within the run.
/// * `options` — `every` (default `"30s"`), `hold` (default 1), `timeout` (default `"1h"`),
///   `min_every` (no default): poll first after `min_every`, doubling up to `every` — for gates
///   inside the write blackout, which usually open within milliseconds.
/// * `checks` — a closure returning `#{ pass, why, evidence }`, an array of those, or a map of
///   named ones.
///
/// Returns: the value of the last (passing) poll.
///
/// Errors: `Timeout` naming every closed check's `why`; an unknown option; a malformed check.
///
/// Example:
/// ```rhai
/// let t0 = step("t0", || now());
/// let r = gate("settled", #{ every: "1s", hold: 2, timeout: "30s" }, || {
///     let waited = now() - t0;
///     #{ waited: #{ pass: waited >= 1, why: `waited ${waited} s of 1 s` } }
/// });
/// print(r.waited.why);
/// ```"#;

pub const ABORT: &str = r#"/// Stop the run and roll back: every registered undo runs in reverse order, each journaled.
///
/// Cannot be caught. Before a promotion rollback is free; after it, a runbook must decide
/// explicitly what reversing means (see docs/writing-runbooks.md).
///
/// Parameters:
/// * `reason` — why, for the journal and the operator.
///
/// Returns: never.
///
/// Errors: none; the run ends `rolled-back` (exit code 3), or `rolling-back` if an undo fails.
///
/// Example:
/// ```rhai
/// // this example aborts
/// step("prepare", #{ undo: |r| print("undoing prepare") }, || "prepared");
/// abort("the maintenance window closed");
/// ```"#;

pub const NOW: &str = r#"/// Current time in epoch seconds: the system clock, or the simulator's virtual clock.
///
/// Touches the world (its value differs on every run), so only inside a step, gate or undo.
///
/// Returns: epoch seconds (INT).
///
/// Errors: called outside a step, gate or undo.
///
/// Example:
/// ```rhai
/// let t = step("when", || now());
/// print(time_str(t));
/// ```"#;

pub const SLEEP: &str = r#"/// Wait through the run's clock (virtual in the simulator), cancellable by Ctrl-C and bounded
/// by the step's timeout. Also `sleep(30)` (INT seconds) and `sleep(0.5)` (FLOAT seconds): every
/// form replaces Rhai's own `sleep`, which would block the thread for real.
///
/// Parameters:
/// * `duration` — a string such as `"30s"`, `"5m"`, `"1h30m"`.
///
/// Returns: `()`.
///
/// Errors: a malformed duration, NaN, or one longer than 3650 days; called outside a step; the
/// step's timeout reached.
///
/// Example:
/// ```rhai
/// step("pause", || sleep("1s"));
/// ```"#;

pub const TIME_STR: &str = r#"/// Render epoch seconds as RFC 3339 UTC.
///
/// Parameters:
/// * `epoch_seconds` — e.g. the value of `now()`.
///
/// Returns: a string like `"2026-11-22T05:30:12Z"`.
///
/// Errors: `Invalid` for a number too large to be epoch seconds (beyond ±292 million years).
///
/// Example:
/// ```rhai
/// if time_str(0) != "1970-01-01T00:00:00Z" { throw "wrong" }
/// ```"#;

pub const SECONDS: &str = r#"/// A duration string in whole seconds.
///
/// Parameters:
/// * `duration` — e.g. `"5m"`, `"1h30m"`.
///
/// Returns: INT seconds.
///
/// Errors: a malformed duration, with the accepted forms.
///
/// Example:
/// ```rhai
/// if seconds("1h30m") != 5400 { throw "wrong" }
/// ```"#;

pub const PHASE: &str = r#"/// Mark the start of a phase of the runbook (`"preflight"`, `"quiescence"`, ...). Not
/// journaled: it structures the transcript, the CLI output and summaries such as `godwit demo`'s
/// timeline.
///
/// Parameters:
/// * `name` — a short name for people.
///
/// Returns: `()`.
///
/// Errors: none.
///
/// Example:
/// ```rhai
/// phase("preflight");
/// step("check", || true);
/// ```"#;
