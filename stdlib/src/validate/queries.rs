//! The query check (docs/validate.md, "The query check"): the source's heaviest read-only
//! statements from `pg_stat_statements`, run on both sides in read-only transactions — does the
//! target run them (compatibility), and how fast (the latency ratio per statement)?

use serde::{Deserialize, Serialize};

/// What the query check runs, and its limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryCheckOptions {
    /// Statements checked at most: the source's read-only ones with the most total time.
    pub top: usize,
    /// Each execution's `statement_timeout`, ms.
    pub statement_timeout_ms: i64,
    /// The whole check's time, ms: statements past it are `skipped`.
    pub budget_ms: i64,
    /// Timed executions per side (after one untimed, to warm the caches).
    pub runs: usize,
    /// A target slower than this many times the source is a `regression`.
    pub max_ratio: f64,
}

impl Default for QueryCheckOptions {
    fn default() -> Self {
        QueryCheckOptions {
            top: 10,
            statement_timeout_ms: 5_000,
            budget_ms: 60_000,
            runs: 3,
            max_ratio: 2.0,
        }
    }
}

/// One statement checked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryCheck {
    /// `pg_stat_statements.queryid`.
    pub queryid: String,
    pub database: String,
    /// The normalised text (`$1` for constants), at most 300 characters.
    pub query: String,
    pub calls: i64,
    /// `pg_stat_statements`' mean on the source, ms.
    pub stats_mean_ms: f64,
    /// How each parameter got its value: `$1 = 42 (a sampled tpcb_accounts.aid)`, `$2 = 10
    /// (LIMIT)`, `$3 = NULL (no column found)`.
    pub parameters: Vec<String>,
    /// The median server-side execution time of the runs (`EXPLAIN ANALYZE`'s), ms.
    pub source_ms: Option<f64>,
    pub target_ms: Option<f64>,
    /// target / source.
    pub ratio: Option<f64>,
    /// `ok`, `regression` (ratio above `max_ratio`), `error-on-target` (runs on the source,
    /// fails on the target: incompatible), `skipped` (not read-only, fails on the source too,
    /// or the budget ran out).
    pub verdict: String,
    pub why: String,
}

/// The result of `queries`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryReport {
    /// No statement that ran on the source failed on the target.
    pub compatible: bool,
    /// `pg_stat_statements` could be read on the source; else `why` says why not and nothing
    /// was checked.
    pub available: bool,
    pub why: String,
    pub source: String,
    pub target: String,
    pub checked: i64,
    pub errors: i64,
    pub regressions: i64,
    pub skipped: i64,
    pub max_ratio: f64,
    pub elapsed_ms: i64,
    pub statements: Vec<QueryCheck>,
    pub summary: String,
}

impl QueryReport {
    pub fn unavailable(source: &str, target: &str, why: String) -> QueryReport {
        QueryReport {
            compatible: true,
            available: false,
            summary: format!("query check not run: {why}"),
            why,
            source: source.into(),
            target: target.into(),
            ..QueryReport::default()
        }
    }

    pub fn finish(mut self) -> Self {
        let count = |v: &str| self.statements.iter().filter(|s| s.verdict == v).count() as i64;
        self.errors = count("error-on-target");
        self.regressions = count("regression");
        self.skipped = count("skipped");
        self.checked = self.statements.len() as i64 - self.skipped;
        self.compatible = self.errors == 0;
        if !self.available {
            return self;
        }
        let worst = self
            .statements
            .iter()
            .filter_map(|s| s.ratio.map(|r| (r, s)))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(r, s)| format!("; slowest on the target {r:.2}x ({})", short(&s.query)))
            .unwrap_or_default();
        let bad: Vec<String> = self
            .statements
            .iter()
            .filter(|s| s.verdict == "error-on-target" || s.verdict == "regression")
            .map(|s| format!("{} {}: {}", s.verdict, short(&s.query), s.why))
            .collect();
        if self.statements.is_empty() {
            self.summary = "0 statements checked: pg_stat_statements holds no read-only statement of an application role (godwit's own role and superusers are left out) — nothing proven".into();
            return self;
        }
        self.summary = format!(
            "{} statements run on both sides: {} fail on the target, {} slower than {}x, {} skipped{worst}{}",
            self.checked,
            self.errors,
            self.regressions,
            self.max_ratio,
            self.skipped,
            if bad.is_empty() {
                String::new()
            } else {
                format!(" — {}", bad.join("; "))
            }
        );
        self
    }
}

/// A statement's text for a summary: one line, at most 60 characters.
fn short(q: &str) -> String {
    let one: String = q.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() > 60 {
        format!("{}…", one.chars().take(59).collect::<String>())
    } else {
        one
    }
}

/// Whether `query` (normalised) is a plain read: it starts with `SELECT` or `WITH`, locks no
/// rows, and (for `WITH`) modifies nothing. The read-only transaction it runs in refuses any
/// write that gets past this (`nextval`, a volatile function writing): that is `skipped` too.
pub fn read_only(query: &str) -> bool {
    let q = query.trim_start().to_ascii_lowercase();
    let words: Vec<&str> = q
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    let starts = matches!(words.first(), Some(&"select") | Some(&"with"));
    let locks = words
        .windows(2)
        .any(|w| w[0] == "for" && matches!(w[1], "update" | "share" | "no" | "key"));
    let writes = words.first() == Some(&"with")
        && words
            .iter()
            .any(|w| matches!(*w, "insert" | "update" | "delete" | "merge"));
    // Effects a read-only transaction does not stop: session advisory locks outlive its
    // rollback (a job queue's lock query is a plain SELECT), dblink commits on its own
    // connection, large objects and settings, notifications, sequences.
    let effects = words.iter().any(|w| {
        w.starts_with("pg_advisory")
            || w.starts_with("pg_try_advisory")
            || w.starts_with("dblink")
            || w.starts_with("lo_")
            || matches!(
                *w,
                "set_config" | "pg_notify" | "nextval" | "setval" | "pg_sleep" | "lowrite"
            )
    });
    starts && !locks && !writes && !effects
}

/// Parameters by number: the column each is compared with, or the clause it is.
pub type ParameterColumns = (Vec<(usize, String)>, Vec<(usize, &'static str)>);

/// The column each `$n` of `query` is compared with (`col = $n`, `col < $n`, `col IN ($n`,
/// `$n = col`…), by parameter number; and the parameters that are a `LIMIT` or `OFFSET`.
pub fn parameter_columns(query: &str) -> ParameterColumns {
    let tokens = tokenize(query);
    let mut columns = Vec::new();
    let mut clauses = Vec::new();
    let param = |t: &str| t.strip_prefix('$').and_then(|n| n.parse::<usize>().ok());
    let ident = |t: &str| {
        // PostgreSQL folds an unquoted identifier to lower case; a quoted one keeps its case.
        let last = t.rsplit('.').next().unwrap_or(t);
        let bare = if last.starts_with('"') {
            last.trim_matches('"').to_string()
        } else {
            last.to_ascii_lowercase()
        };
        let bare = bare.as_str();
        (!bare.is_empty()
            && bare.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !bare.chars().next().is_some_and(|c| c.is_ascii_digit())
            && !is_keyword(bare))
        .then(|| bare.to_string())
    };
    let ops = ["=", "<", ">", "<=", ">=", "<>", "!="];
    for (i, t) in tokens.iter().enumerate() {
        let Some(n) = param(t) else { continue };
        let prev = |k: usize| i.checked_sub(k).map(|j| tokens[j].to_ascii_lowercase());
        match (prev(1).as_deref(), prev(2)) {
            (Some("limit"), _) => {
                clauses.push((n, "LIMIT"));
                continue;
            }
            (Some("offset"), _) => {
                clauses.push((n, "OFFSET"));
                continue;
            }
            (Some(op), Some(_)) if ops.contains(&op) => {
                // The column as written (a quoted identifier keeps its case).
                if let Some(c) = ident(&tokens[i - 2]) {
                    columns.push((n, c));
                    continue;
                }
            }
            _ => {}
        }
        // `col IN ($1, $2)`, `col = ANY($1)`: back to the opening parenthesis.
        if let Some(open) = tokens[..i].iter().rposition(|t| t == "(")
            && tokens[open + 1..i]
                .iter()
                .all(|t| t == "," || param(t).is_some())
            && open >= 2
            && matches!(tokens[open - 1].to_ascii_lowercase().as_str(), "in" | "any")
        {
            let col_at = if tokens[open - 1].eq_ignore_ascii_case("any") {
                open.checked_sub(3)
            } else {
                open.checked_sub(2)
            };
            if let Some(c) = col_at.and_then(|j| ident(&tokens[j])) {
                columns.push((n, c));
                continue;
            }
        }
        // `$1 = col`.
        if let (Some(op), Some(col)) = (tokens.get(i + 1), tokens.get(i + 2))
            && ops.contains(&op.as_str())
            && let Some(c) = ident(col)
        {
            columns.push((n, c));
        }
    }
    (columns, clauses)
}

/// The tables a statement reads (`FROM t`, `JOIN t`, `FROM a, b`), as written.
pub fn tables_of(query: &str) -> Vec<String> {
    let tokens = tokenize(query);
    let mut out = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let lower = t.to_ascii_lowercase();
        if lower == "from" || lower == "join" {
            let mut j = i + 1;
            while let Some(name) = tokens.get(j) {
                if name == "(" || is_keyword(&name.to_ascii_lowercase()) {
                    break;
                }
                // Each part as PostgreSQL reads it: unquoted folded to lower case.
                let parts: Vec<String> = name
                    .split('.')
                    .map(|p| {
                        if p.starts_with('"') {
                            p.trim_matches('"').to_string()
                        } else {
                            p.to_ascii_lowercase()
                        }
                    })
                    .collect();
                out.push(parts.join("."));
                // `FROM a x, b y`: skip an alias, continue after a comma.
                let mut k = j + 1;
                while tokens
                    .get(k)
                    .is_some_and(|t| t != "," && !is_keyword(&t.to_ascii_lowercase()) && t != ")")
                {
                    k += 1;
                }
                if tokens.get(k).map(String::as_str) == Some(",") && lower == "from" {
                    j = k + 1;
                } else {
                    break;
                }
            }
        }
    }
    out.dedup();
    out
}

fn is_keyword(w: &str) -> bool {
    matches!(
        w.to_ascii_lowercase().as_str(),
        "select"
            | "from"
            | "where"
            | "and"
            | "or"
            | "not"
            | "in"
            | "any"
            | "join"
            | "on"
            | "left"
            | "right"
            | "inner"
            | "outer"
            | "full"
            | "cross"
            | "group"
            | "order"
            | "by"
            | "limit"
            | "offset"
            | "having"
            | "as"
            | "union"
            | "all"
            | "with"
            | "lateral"
            | "is"
            | "null"
            | "between"
            | "like"
            | "ilike"
            | "case"
            | "when"
            | "then"
            | "else"
            | "end"
            | "distinct"
            | "asc"
            | "desc"
            | "using"
            | "natural"
            | "exists"
            | "true"
            | "false"
            | "only"
    )
}

/// Identifiers (with dots and quotes), `$n`, operators and punctuation; string literals and
/// numbers are single tokens.
fn tokenize(q: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = q.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut j = i + 1;
            while j < chars.len() && !(chars[j] == '\'' && chars.get(j + 1) != Some(&'\'')) {
                j += if chars[j] == '\'' { 2 } else { 1 };
            }
            out.push(chars[i..(j + 1).min(chars.len())].iter().collect());
            i = j + 1;
        } else if c.is_ascii_alphanumeric() || c == '_' || c == '"' || c == '$' {
            let mut j = i;
            let mut quoted = false;
            while j < chars.len() {
                let d = chars[j];
                if d == '"' {
                    quoted = !quoted;
                } else if !(quoted || d.is_ascii_alphanumeric() || d == '_' || d == '.' || d == '$')
                {
                    break;
                }
                j += 1;
            }
            out.push(chars[i..j].iter().collect());
            i = j;
        } else if "<>!=".contains(c) {
            let mut j = i;
            while j < chars.len() && "<>!=".contains(chars[j]) {
                j += 1;
            }
            out.push(chars[i..j].iter().collect());
            i = j;
        } else {
            out.push(c.to_string());
            i += 1;
        }
    }
    out
}

/// `query` with each parameter `$n` replaced by `values[n - 1]` (already SQL literals), in
/// one pass outside quoted text (`'…'`, `"…"`): a value is never scanned again, so one holding
/// `$1` stays text. `None` when a `$n` has no value.
pub fn substitute(query: &str, values: &[String]) -> Option<String> {
    let chars: Vec<char> = query.chars().collect();
    let mut out = String::with_capacity(query.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' || c == '"' {
            // Copy the quoted text through its closing quote (a doubled quote stays inside).
            let mut j = i + 1;
            while j < chars.len() {
                if chars[j] == c {
                    if chars.get(j + 1) == Some(&c) {
                        j += 2;
                        continue;
                    }
                    break;
                }
                j += 1;
            }
            let end = (j + 1).min(chars.len());
            out.extend(&chars[i..end]);
            i = end;
        } else if c == '$' && chars.get(i + 1).is_some_and(char::is_ascii_digit) {
            let mut j = i + 1;
            while j < chars.len() && chars[j].is_ascii_digit() {
                j += 1;
            }
            let n: usize = chars[i + 1..j].iter().collect::<String>().parse().ok()?;
            out.push_str(values.get(n.checked_sub(1)?)?);
            i = j;
        } else {
            out.push(c);
            i += 1;
        }
    }
    Some(out)
}

/// The median of `v` (empty: none).
pub fn median_ms(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_reads_are_run() {
        assert!(read_only(
            "SELECT abalance FROM tpcb_accounts WHERE aid = $1"
        ));
        assert!(read_only("  with t as (select 1) select * from t"));
        assert!(!read_only("SELECT * FROM a WHERE id = $1 FOR UPDATE"));
        assert!(!read_only("select * from a for no key update"));
        assert!(!read_only(
            "WITH d AS (DELETE FROM a RETURNING *) SELECT * FROM d"
        ));
        assert!(!read_only("UPDATE a SET x = $1"));
        assert!(!read_only("INSERT INTO a VALUES ($1)"));
        // Effects a read-only transaction does not undo.
        assert!(!read_only(
            "WITH j AS (SELECT id FROM jobs LIMIT $1) SELECT pg_try_advisory_lock(id) FROM j"
        ));
        assert!(!read_only("SELECT dblink_exec('x', 'DELETE FROM t')"));
        assert!(!read_only("SELECT set_config('a.b', $1, false)"));
    }

    #[test]
    fn parameters_are_matched_with_their_columns() {
        let (cols, clauses) = parameter_columns(
            "SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer WHERE o.customer = $1 AND $2 < o.amount AND o.note IN ($3, $4) AND c.id = ANY($5) ORDER BY o.id LIMIT $6 OFFSET $7",
        );
        assert_eq!(
            cols,
            vec![
                (1, "customer".into()),
                (2, "amount".into()),
                (3, "note".into()),
                (4, "note".into()),
                (5, "id".into())
            ]
        );
        assert_eq!(clauses, vec![(6, "LIMIT"), (7, "OFFSET")]);
        // A parameter compared with nothing named: no column.
        let (cols, _) = parameter_columns("SELECT $1::int + 1");
        assert!(cols.is_empty());
        // A quoted literal holding `= $1` is not a comparison.
        let (cols, _) = parameter_columns("SELECT 'a = $1' FROM t WHERE \"Weird\".\"Col\" >= $2");
        assert_eq!(cols, vec![(2, "Col".into())]);
        // Unquoted: folded to lower case, as PostgreSQL does.
        let (cols, _) = parameter_columns("SELECT 1 FROM t WHERE Customer = $1");
        assert_eq!(cols, vec![(1, "customer".into())]);
    }

    #[test]
    fn parameters_are_bound_once_outside_quoted_text() {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // A value holding `$1` stays text: it is never scanned again.
        assert_eq!(
            substitute(
                "SELECT * FROM t WHERE a = $1 AND b = $2",
                &v(&["'x'", "'see $1'"])
            ),
            Some("SELECT * FROM t WHERE a = 'x' AND b = 'see $1'".into())
        );
        // `$1` does not eat the start of `$10`.
        let ten: Vec<String> = (1..=10).map(|i| i.to_string()).collect();
        assert_eq!(
            substitute("SELECT $10, $1", &ten),
            Some("SELECT 10, 1".into())
        );
        // Quoted text is copied as it is.
        assert_eq!(
            substitute(
                "SELECT '$1', \"$1\", 'it''s $1' FROM t WHERE x = $1",
                &v(&["7"])
            ),
            Some("SELECT '$1', \"$1\", 'it''s $1' FROM t WHERE x = 7".into())
        );
        assert_eq!(substitute("SELECT $2", &v(&["1"])), None);
        assert_eq!(substitute("SELECT $0", &v(&["1"])), None);
    }

    #[test]
    fn the_tables_a_statement_reads_are_found() {
        assert_eq!(
            tables_of(
                "SELECT * FROM public.orders o JOIN customers c ON c.id = o.customer WHERE x = $1"
            ),
            vec!["public.orders".to_string(), "customers".into()]
        );
        assert_eq!(
            tables_of("select 1 from a, b where a.x = b.y"),
            vec!["a".to_string(), "b".into()]
        );
        assert!(tables_of("SELECT now()").is_empty());
    }

    #[test]
    fn a_report_names_what_fails_and_what_is_slower() {
        let s = |verdict: &str, ratio: Option<f64>| QueryCheck {
            query: "SELECT * FROM orders WHERE id = $1".into(),
            verdict: verdict.into(),
            ratio,
            why: "because".into(),
            ..QueryCheck::default()
        };
        let r = QueryReport {
            available: true,
            max_ratio: 2.0,
            statements: vec![
                s("ok", Some(1.1)),
                s("regression", Some(3.5)),
                s("error-on-target", None),
                s("skipped", None),
            ],
            ..QueryReport::default()
        }
        .finish();
        assert!(!r.compatible);
        assert_eq!(
            (r.checked, r.errors, r.regressions, r.skipped),
            (3, 1, 1, 1)
        );
        assert!(r.summary.starts_with("3 statements run on both sides: 1 fail on the target, 1 slower than 2x, 1 skipped; slowest on the target 3.50x"), "{}", r.summary);
        let u = QueryReport::unavailable("s", "t", "pg_stat_statements is not installed".into())
            .finish();
        assert!(u.compatible && !u.available && u.summary.contains("not installed"));
    }
}
