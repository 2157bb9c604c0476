//! The `validate` contract: a database the world has is available, an unknown one `NotFound`;
//! a caught-up replica compares and samples equal, its tables in name order; an unknown table
//! is `Invalid`.

use godwit_engine::ErrorKind;
use godwit_stdlib::validate::{CompareOptions, SampleOptions};

use super::{Fixture, MISSING, err, ok, sorted_by};

const A: &str = "validate";

pub fn contract(f: &Fixture) {
    let v = &f.areas.validate;
    let a = ok(
        f,
        "available",
        v.available(&f.cx(A, "available"), &f.source),
    );
    assert!(a.available, "[{}] {a:?}", f.name);
    err(
        f,
        "an unknown database is NotFound",
        ErrorKind::NotFound,
        A,
        v.available(&f.cx(A, "available"), MISSING),
    );
    super::pg::caught_up(f);
    let opts = CompareOptions {
        tables: vec![f.table.clone()],
        ..CompareOptions::default()
    };
    let r = ok(
        f,
        "compare",
        v.compare(&f.cx(A, "compare"), &f.source, &f.target, &opts),
    );
    assert!(r.equal, "[{}] {}", f.name, r.summary);
    assert_eq!(
        r.tables
            .iter()
            .map(|t| t.table.as_str())
            .collect::<Vec<_>>(),
        [f.table.as_str()],
        "[{}]",
        f.name
    );
    let all = ok(
        f,
        "compare every table",
        v.compare(
            &f.cx(A, "compare"),
            &f.source,
            &f.target,
            &CompareOptions::default(),
        ),
    );
    assert!(
        sorted_by(&all.tables, |t| t.table.clone()),
        "[{}] tables in name order",
        f.name
    );
    err(
        f,
        "an unknown table is Invalid",
        ErrorKind::Invalid,
        A,
        v.compare(
            &f.cx(A, "compare"),
            &f.source,
            &f.target,
            &CompareOptions {
                tables: vec!["public.contract_missing".into()],
                ..CompareOptions::default()
            },
        ),
    );
    let s = ok(
        f,
        "sample",
        v.sample(
            &f.cx(A, "sample"),
            &f.source,
            &f.target,
            0.5,
            &SampleOptions::default(),
        ),
    );
    assert!(s.equal, "[{}] {}", f.name, s.summary);
    assert!(
        sorted_by(&s.tables, |t| t.table.clone()),
        "[{}] sampled tables in name order",
        f.name
    );
}
