//! The output of PostgreSQL's `test_decoding` plugin, read back into what changed: which
//! table, and which primary-key values. The two-pass validation (docs/validate.md, "Two
//! passes") decodes the source's WAL through a logical slot to learn exactly which rows may
//! differ since its pre-fence pass; `test_decoding` ships with PostgreSQL (contrib) and RDS,
//! and needs no publication on the source.
//!
//! The format (contrib/test_decoding/test_decoding.c): `table <schema>.<name>: <ACTION>: `
//! then the tuple as ` name[type]:value` per column. Names are quoted like
//! `quote_identifier`; values are `null`, `unchanged-toast-datum`, a bare literal (numbers,
//! `true`/`false`), `B'0101'` (bit strings) or a `'…'` literal with `'` doubled. An UPDATE
//! that changes the key (or a table with `REPLICA IDENTITY FULL`) prints `old-key: … new-tuple:
//! …`; a DELETE prints the old key; without one, `(no-tuple-data)`. A TRUNCATE lists its tables:
//! `table a.b, c.d: TRUNCATE: (no-flags)`.

/// A printed tuple: `(column, value)` in column order.
pub type Tuple = Vec<(String, Option<String>)>;

/// One decoded change.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// An INSERT, UPDATE or DELETE of `table` (`schema.name`, unquoted): the tuples printed
    /// (the old key first when there is one), each as `(column, value)`; `None` for SQL NULL
    /// or a value not printed (`unchanged-toast-datum`).
    Row {
        table: String,
        action: String,
        tuples: Vec<Tuple>,
    },
    /// The tables a TRUNCATE emptied.
    Truncate { tables: Vec<String> },
}

struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.i..]
    }

    fn eat(&mut self, p: &str) -> bool {
        if self.rest().starts_with(p) {
            self.i += p.len();
            true
        } else {
            false
        }
    }

    /// An identifier as `quote_identifier` prints it.
    fn ident(&mut self) -> Option<String> {
        if self.eat("\"") {
            let mut out = String::new();
            loop {
                let r = self.rest();
                let q = r.find('"')?;
                out.push_str(&r[..q]);
                self.i += q + 1;
                if self.eat("\"") {
                    out.push('"');
                } else {
                    return Some(out);
                }
            }
        }
        let r = self.rest();
        let end = r.find(['.', ':', ',', ' ', '[']).unwrap_or(r.len());
        if end == 0 {
            return None;
        }
        self.i += end;
        Some(r[..end].to_string())
    }

    fn qualified(&mut self) -> Option<String> {
        let schema = self.ident()?;
        if !self.eat(".") {
            return None;
        }
        Some(format!("{schema}.{}", self.ident()?))
    }

    /// A quoted literal's contents (`'` doubled inside), the opening quote already eaten.
    fn quoted(&mut self) -> Option<String> {
        let mut out = String::new();
        loop {
            let r = self.rest();
            let q = r.find('\'')?;
            out.push_str(&r[..q]);
            self.i += q + 1;
            if self.eat("'") {
                out.push('\'');
            } else {
                return Some(out);
            }
        }
    }

    /// ` name[type]:value` pairs until the end, or until `stop` (`" new-tuple:"`).
    fn tuple(&mut self, stop: Option<&str>) -> Option<Tuple> {
        let mut cols = Vec::new();
        loop {
            if self.rest().is_empty() || stop.is_some_and(|s| self.rest().starts_with(s)) {
                return Some(cols);
            }
            if !self.eat(" ") {
                return None;
            }
            let name = self.ident()?;
            if !self.eat("[") {
                return None;
            }
            let close = self.rest().find("]:")?;
            self.i += close + 2;
            // A quoted literal, or a bit string (`B'0101'`).
            let value = if self.eat("'") || self.eat("B'") {
                Some(self.quoted()?)
            } else {
                let r = self.rest();
                let end = r.find(' ').unwrap_or(r.len());
                self.i += end;
                match &r[..end] {
                    "null" | "unchanged-toast-datum" => None,
                    bare => Some(bare.to_string()),
                }
            };
            cols.push((name, value));
        }
    }
}

/// One line of `test_decoding` output; `None` for what is not a table change (`BEGIN`,
/// `COMMIT`, messages) — and for a line this parser cannot read, which the caller must treat
/// as "anything may have changed".
pub fn parse(line: &str) -> Option<Change> {
    let mut c = Cursor { s: line, i: 0 };
    if !c.eat("table ") {
        return None;
    }
    let mut tables = vec![c.qualified()?];
    while c.eat(", ") {
        tables.push(c.qualified()?);
    }
    if !c.eat(": ") {
        return None;
    }
    let r = c.rest();
    let colon = r.find(':')?;
    let action = r[..colon].to_string();
    c.i += colon + 1;
    if action == "TRUNCATE" {
        return Some(Change::Truncate { tables });
    }
    let table = tables.into_iter().next()?;
    let mut tuples = Vec::new();
    if c.eat(" (no-tuple-data)") {
        return Some(Change::Row {
            table,
            action,
            tuples,
        });
    }
    if c.eat(" old-key:") {
        tuples.push(c.tuple(Some(" new-tuple:"))?);
        if !c.eat(" new-tuple:") {
            return None;
        }
    }
    tuples.push(c.tuple(None)?);
    Some(Change::Row {
        table,
        action,
        tuples,
    })
}

/// Whether `line` is decoding's own bookkeeping (`BEGIN`, `COMMIT`, a logical message), not
/// a change of table contents.
pub fn is_bookkeeping(line: &str) -> bool {
    line.starts_with("BEGIN") || line.starts_with("COMMIT") || line.starts_with("message:")
}

/// The values of `key` columns in `tuple`, when all are printed and not NULL.
pub fn key_of(tuple: &[(String, Option<String>)], key: &[String]) -> Option<Vec<String>> {
    key.iter()
        .map(|k| {
            tuple
                .iter()
                .find(|(n, _)| n == k)
                .and_then(|(_, v)| v.clone())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(line: &str) -> (String, String, Vec<Tuple>) {
        match parse(line) {
            Some(Change::Row {
                table,
                action,
                tuples,
            }) => (table, action, tuples),
            other => panic!("{line}: {other:?}"),
        }
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn an_update_names_its_table_and_every_column() {
        let (t, a, tup) = row(
            "table public.pgbench_accounts: UPDATE: aid[integer]:5 bid[integer]:1 abalance[integer]:-3 filler[character]:'it''s  '",
        );
        assert_eq!(
            (t.as_str(), a.as_str()),
            ("public.pgbench_accounts", "UPDATE")
        );
        assert_eq!(
            tup,
            vec![vec![
                ("aid".into(), s("5")),
                ("bid".into(), s("1")),
                ("abalance".into(), s("-3")),
                ("filler".into(), s("it's  ")),
            ]]
        );
        assert_eq!(key_of(&tup[0], &["aid".into()]), Some(vec!["5".into()]));
    }

    #[test]
    fn quoted_names_spaces_in_types_and_values_are_read() {
        let (t, _, tup) = row(
            "table \"My Schema\".\"order \"\"items\"\"\": INSERT: \"Id\"[bigint]:7 note[character varying]:'a: b [c]:' tags[text[]]:'{x,y}' at[timestamp with time zone]:'2026-01-01 00:00:00+00' bits[bit]:B'0101' gone[text]:null big[text]:unchanged-toast-datum",
        );
        assert_eq!(t, "My Schema.order \"items\"");
        assert_eq!(
            tup[0],
            vec![
                ("Id".into(), s("7")),
                ("note".into(), s("a: b [c]:")),
                ("tags".into(), s("{x,y}")),
                ("at".into(), s("2026-01-01 00:00:00+00")),
                ("bits".into(), s("0101")),
                ("gone".into(), None),
                ("big".into(), None),
            ]
        );
    }

    #[test]
    fn a_key_change_has_the_old_key_first_and_a_delete_its_key() {
        let (_, a, tup) = row(
            "table public.t: UPDATE: old-key: id[integer]:1 new-tuple: id[integer]:2 v[text]:'x'",
        );
        assert_eq!(a, "UPDATE");
        assert_eq!(tup.len(), 2);
        assert_eq!(key_of(&tup[0], &["id".into()]), Some(vec!["1".into()]));
        assert_eq!(key_of(&tup[1], &["id".into()]), Some(vec!["2".into()]));
        let (_, a, tup) = row("table public.t: DELETE: id[integer]:9");
        assert_eq!(
            (a.as_str(), tup[0].clone()),
            ("DELETE", vec![("id".into(), s("9"))])
        );
        let (_, _, tup) = row("table public.t: DELETE: (no-tuple-data)");
        assert!(tup.is_empty());
    }

    #[test]
    fn a_truncate_lists_its_tables_and_bookkeeping_is_not_a_change() {
        assert_eq!(
            parse("table public.a, s.\"B\": TRUNCATE: restart_seqs cascade"),
            Some(Change::Truncate {
                tables: vec!["public.a".into(), "s.B".into()]
            })
        );
        for l in [
            "BEGIN",
            "COMMIT",
            "BEGIN 1234",
            "message: transactional: 1 prefix: x, sz: 1 content:y",
        ] {
            assert!(is_bookkeeping(l) && parse(l).is_none(), "{l}");
        }
        // Unreadable: the caller treats it as "anything may have changed".
        assert_eq!(parse("table public.t: UPDATE: id[integer"), None);
        assert!(!is_bookkeeping("table public.t: UPDATE: id[integer"));
    }
}
