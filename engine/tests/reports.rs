//! Operator reports point at the place an error was raised (issue 18): the right file of a
//! runbook made of modules, the right line, the line quoted.

use std::path::PathBuf;
use std::sync::Arc;

use godwit_engine::journal::memory::MemoryStore;
use godwit_engine::{Cancel, Limits, RunStatus, Runner, StartRequest, VirtualClock};

fn write(dir: &std::path::Path, name: &str, src: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, src).unwrap();
    path
}

/// The error is thrown in `lib/b.rhai` line 6, by a function another module calls, from a step
/// of the runbook. It was reported at line 6 of the runbook (the step's file), quoting an
/// unrelated line: the step rethrew the journaled error with the bare position of the throw.
#[test]
fn an_error_raised_in_a_module_is_reported_at_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let rb = write(
        dir.path(),
        "main.rhai",
        "import \"lib/a\" as a;\nstep(\"s\", || a::outer());\n\n\n\nlet unrelated = 1;\n",
    );
    write(
        dir.path(),
        "lib/a.rhai",
        "import \"lib/b\" as b;\n\nfn outer() {\n    b::inner()\n}\n",
    );
    write(
        dir.path(),
        "lib/b.rhai",
        "// b\n\n\nfn inner() {\n    let y = 2;\n    throw \"boom\";\n}\n",
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let runner = Runner {
        store: Arc::new(MemoryStore::new()),
        clock: Arc::new(VirtualClock::new(0)),
        handle: rt.handle().clone(),
        limits: Limits::default(),
        cancel: Cancel::new(),
        sinks: vec![],
        plugins: vec![],
        world: "test".into(),
    };
    let report = runner
        .start(StartRequest {
            runbook: rb,
            cluster: "c1".into(),
            params: Default::default(),
            run_id: Some("r".into()),
        })
        .unwrap();
    let RunStatus::RolledBack {
        report: Some(r), ..
    } = &report.status
    else {
        panic!("{report:?}")
    };
    let loc = r.location.as_ref().expect("a place");
    assert!(loc.file.ends_with("lib/b.rhai"), "{:?}", loc.file);
    assert_eq!((loc.line, loc.column), (6, 5));
    let text = r.render();
    assert!(text.contains("6 |     throw \"boom\";"), "{text}");
    assert!(!text.contains("unrelated"), "{text}");
}

/// A step's failure stays catchable with its value: the chain of calls kept for the report
/// must not change what `catch` sees.
#[test]
fn a_failed_step_is_still_caught_with_its_value() {
    let dir = tempfile::tempdir().unwrap();
    let rb = write(
        dir.path(),
        "main.rhai",
        "import \"lib/a\" as a;\nlet got = \"\";\ntry { step(\"s\", || a::outer()); } catch (e) { got = e; }\ngot\n",
    );
    write(dir.path(), "lib/a.rhai", "fn outer() { throw \"boom\"; }\n");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let runner = Runner {
        store: Arc::new(MemoryStore::new()),
        clock: Arc::new(VirtualClock::new(0)),
        handle: rt.handle().clone(),
        limits: Limits::default(),
        cancel: Cancel::new(),
        sinks: vec![],
        plugins: vec![],
        world: "test".into(),
    };
    let report = runner
        .start(StartRequest {
            runbook: rb,
            cluster: "c1".into(),
            params: Default::default(),
            run_id: Some("r".into()),
        })
        .unwrap();
    assert!(
        matches!(&report.status, RunStatus::Succeeded { result } if result == "boom"),
        "{report:?}"
    );
}
