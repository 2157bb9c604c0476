//! The generated primitive reference is current, every ```rhai example in it asserts its result
//! and runs as a runbook (on a virtual clock, so gate examples do not wait for real).

use std::path::PathBuf;
use std::sync::Arc;

use godwit::worlds::Worlds;
use godwit_engine::journal::memory::MemoryStore;
use godwit_engine::{RunStatus, StartRequest};

fn reference_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/primitives")
}

fn generated() -> std::collections::BTreeMap<String, String> {
    let engine =
        godwit::session::reference_engine(&Worlds::default()).unwrap_or_else(|f| panic!("{}", f.1));
    godwit::docs::generate(&engine)
}

#[test]
fn primitive_reference_is_current() {
    let drift = godwit::docs::drift(&reference_dir(), &generated());
    assert!(
        drift.is_empty(),
        "docs/primitives is out of date ({}); regenerate with `cargo run -p godwit -- docs`",
        drift.join(", ")
    );
}

fn examples(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        match (&mut cur, line.trim()) {
            (None, "```rhai") => cur = Some(String::new()),
            (Some(_), "```") => out.push(cur.take().unwrap()),
            (Some(buf), _) => {
                buf.push_str(line);
                buf.push('\n');
            }
            _ => {}
        }
    }
    out
}

/// Every function a script can call beyond Rhai's standard library is in the reference: a
/// function without a `///` doc comment would silently drop out of it (and out of REPL
/// completion). The only exceptions are the engine's shadows of standard functions, which exist
/// to keep runbooks off them.
#[test]
fn every_script_visible_function_is_documented() {
    let engine =
        godwit::session::reference_engine(&Worlds::default()).unwrap_or_else(|f| panic!("{}", f.1));
    let meta: serde_json::Value =
        serde_json::from_str(&engine.gen_fn_metadata_to_json(false).unwrap()).unwrap();
    const SHADOWS: &[&str] = &[
        "sleep(seconds: i64) -> RhaiResult<()>", // documented with sleep(duration)
        "sleep(seconds: f64) -> RhaiResult<()>", // documented with sleep(duration)
        "timestamp() -> RhaiResult<Dynamic>",    // fails, pointing at now()
    ];
    let mut undocumented = Vec::new();
    let mut seen = 0;
    let modules = meta["modules"].as_object().cloned().unwrap_or_default();
    let all = std::iter::once((String::new(), meta["functions"].clone())).chain(
        modules
            .into_iter()
            .map(|(name, m)| (format!("{name}::"), m["functions"].clone())),
    );
    for (module, fns) in all {
        for f in fns.as_array().into_iter().flatten() {
            seen += 1;
            let sig = f["signature"].as_str().unwrap_or("?");
            let documented = f["docComments"].as_array().is_some_and(|c| !c.is_empty());
            let shadow = module.is_empty() && SHADOWS.contains(&sig);
            if !documented && !shadow {
                undocumented.push(format!("{module}{sig}"));
            }
        }
    }
    assert!(seen >= 80, "only {seen} functions in the metadata");
    assert!(
        undocumented.is_empty(),
        "script-visible functions without a /// doc comment: {undocumented:?}"
    );
}

/// What counts as an example stating its result (STYLE.md 16): a call of `assert(…)` or
/// `assert_eq(…)`, a `throw` (the `if … { throw … }` idiom: a thrown value fails the example),
/// or the marker `// this example aborts` (the run must then end rolled back). Comments do not
/// count. An example with none of these proves only that it parses.
fn asserts(example: &str) -> bool {
    if example.contains("// this example aborts") {
        return true;
    }
    let code: String = example
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    ["assert(", "assert_eq(", "throw"]
        .iter()
        .any(|a| code.contains(a))
}

#[test]
fn assertion_rule_counts_calls_and_throws_not_comments() {
    assert!(asserts("let x = now();\nassert_eq(x, 1);"));
    assert!(asserts("if x != 1 { throw x; }"));
    assert!(asserts("// this example aborts\nabort(\"why\");"));
    assert!(!asserts("let x = now();\nprint(x); // assert(x > 0)"));
    assert!(!asserts("step(\"pause\", || sleep(\"1s\"));"));
}

/// Every example asserts its result (see [`asserts`]) and runs against a fresh simulator (the reference world has every area). Examples
/// of world-touching modules are written as step bodies (strict mode), so they run wrapped in a
/// step; the engine's own (`core`) examples are whole runbooks.
#[test]
fn every_documented_example_runs() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut ran = 0;
    let mut silent = Vec::new();
    for (file, text) in generated() {
        let module = file.trim_end_matches(".md").to_string();
        for (i, ex) in examples(&text).into_iter().enumerate() {
            if !asserts(&ex) {
                silent.push(format!("{file} example {i}:\n{ex}"));
            }
            let path = dir.path().join(format!("{module}-{i}.rhai"));
            let body = if module == "core" || module == "lag" {
                ex.clone()
            } else {
                format!("step(\"example\", || {{\n{ex}\n}});\n")
            };
            std::fs::write(&path, &body).unwrap();
            let world = godwit_stdlib::world::World::sim_named("busy-source").unwrap();
            let runner = world.runner(Arc::new(MemoryStore::new()), rt.handle().clone());
            let report = runner
                .start(StartRequest {
                    runbook: path.clone(),
                    cluster: "orders-db".into(),
                    params: Default::default(),
                    run_id: Some("ex".into()),
                })
                .unwrap_or_else(|e| panic!("{file} example {i} does not start: {e}\n{ex}"));
            let aborts = ex.contains("// this example aborts");
            match (&report.status, aborts) {
                (RunStatus::Succeeded { .. }, false) | (RunStatus::RolledBack { .. }, true) => {}
                (other, _) => panic!("{file} example {i}: {other:?}\n{ex}"),
            }
            ran += 1;
        }
    }
    assert!(
        ran >= 60,
        "only {ran} examples found: the extraction is broken"
    );
    assert!(
        silent.is_empty(),
        "{} examples assert nothing (add assert(cond, message) or assert_eq(actual, expected)):\n{}",
        silent.len(),
        silent.join("\n")
    );
}

/// Every documented function of every module (engine built-ins included) says what it takes,
/// returns and fails with, and shows an example — the reference is the documentation.
#[test]
fn every_function_documents_parameters_returns_errors_and_an_example() {
    let mut checked = 0;
    for (file, text) in generated() {
        if file == "README.md" {
            continue;
        }
        for section in text.split("\n## `").skip(1) {
            let name = section.split('`').next().unwrap_or("?");
            let signature = section
                .split("```rust\n")
                .nth(1)
                .and_then(|s| s.lines().next())
                .unwrap_or("");
            let takes_arguments = signature
                .split_once('(')
                .is_some_and(|(_, rest)| !rest.starts_with(')'));
            let has = |word: &str| {
                section
                    .lines()
                    .any(|l| l.trim_start_matches('#').trim().starts_with(word))
            };
            for (word, needed) in [
                ("Parameters", takes_arguments),
                ("Returns", true),
                ("Errors", true),
                ("Example", true),
            ] {
                assert!(
                    !needed || has(word),
                    "{file}: `{name}` documents no `{word}` section"
                );
            }
            assert!(
                section.contains("```rhai"),
                "{file}: `{name}` has no ```rhai example"
            );
            checked += 1;
        }
    }
    assert!(checked >= 68, "only {checked} functions checked");
}

fn repo_file(path: &str) -> String {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The text between the `{` that follows `start` in `text` and its matching `}`.
fn braced<'t>(text: &'t str, start: &str) -> &'t str {
    let at = text
        .find(start)
        .unwrap_or_else(|| panic!("`{start}` not found"));
    let open = at + text[at..].find('{').expect("an opening brace");
    let mut depth = 0;
    for (i, c) in text[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &text[open + 1..open + i];
                }
            }
            _ => {}
        }
    }
    panic!("`{start}` is not closed")
}

/// Code without its `//` comments (doc comments quote `#{ ... }` maps).
fn without_comments(code: &str) -> String {
    code.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The files "how to add a primitive" (docs/architecture.md) lists are the only ones a primitive
/// needs, for every area of a world: each method of an area's trait (`stdlib/src/<area>/mod.rs`,
/// areas as `world.rs` lists them in `Areas`) has no default body, so every world's `impl` must
/// define it (the compiler names a world that lacks it); it is reachable from Rhai as
/// `<area>::<method>`, registered by `Areas::register` with no other file touched; its reference
/// section has a summary, Parameters, Returns, Errors and an Example that asserts its result;
/// and every function of the area's Rhai module (`rhai.rs`) is `#[rhai_fn(volatile)]`.
#[test]
fn every_area_method_is_a_documented_asserted_volatile_primitive() {
    let reference = generated();
    let areas = without_comments(braced(
        &repo_file("stdlib/src/world.rs"),
        "pub struct Areas",
    ));
    let mut checked = Vec::new();
    let mut problems = Vec::new();
    for field in areas.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        // `pub rds: Arc<dyn Rds>`
        let (area, rest) = field
            .trim_start_matches("pub ")
            .split_once(':')
            .unwrap_or_else(|| panic!("unexpected Areas field {field:?}"));
        let trait_name = rest
            .trim()
            .strip_prefix("Arc<dyn ")
            .and_then(|t| t.strip_suffix('>'))
            .unwrap_or_else(|| panic!("Areas.{area} is not an Arc<dyn Trait>: {rest}"));
        let contract = repo_file(&format!("stdlib/src/{area}/mod.rs"));
        let body = without_comments(braced(&contract, &format!("pub trait {trait_name}")));
        if body.contains('{') {
            problems.push(format!(
                "{area}: trait {trait_name} has a default body: a world could lack it silently"
            ));
        }
        let page = reference
            .get(&format!("{area}.md"))
            .unwrap_or_else(|| panic!("no reference page {area}.md: is it in Areas::register?"));
        for method in body.split("fn ").skip(1) {
            let method = method.split(['(', '<']).next().unwrap().trim();
            let qualified = format!("{area}::{method}");
            let Some(section) = page.split(&format!("\n## `{qualified}`\n")).nth(1) else {
                problems.push(format!(
                    "{qualified}: trait method with no Rhai function in the reference"
                ));
                continue;
            };
            let section = section.split("\n## `").next().unwrap();
            let summary = section
                .split("```rust\n")
                .nth(1)
                .and_then(|s| s.split_once("```\n"))
                .map(|(_, after)| after.trim_start())
                .and_then(|after| after.lines().next())
                .unwrap_or("");
            if summary.is_empty() || summary.starts_with('#') {
                problems.push(format!("{qualified}: no summary line"));
            }
            for heading in ["# Parameters", "# Returns", "# Errors", "# Example"] {
                if !section.lines().any(|l| l.trim() == heading) {
                    problems.push(format!("{qualified}: no `{heading}`"));
                }
            }
            let examples = examples(section);
            if examples.is_empty() || !examples.iter().all(|e| asserts(e)) {
                problems.push(format!("{qualified}: no example that asserts its result"));
            }
            checked.push(qualified);
        }
        let rhai = repo_file(&format!("stdlib/src/{area}/rhai.rs"));
        let module = braced(&rhai, "#[export_module]");
        let mut attrs = String::new();
        for line in module.lines().map(str::trim) {
            if line.starts_with("#[") {
                attrs.push_str(line);
            } else if let Some(f) = line.strip_prefix("pub fn ") {
                if !attrs.contains("volatile") {
                    let name = f.split('(').next().unwrap();
                    problems.push(format!("{area}::{name} is not #[rhai_fn(volatile)]"));
                }
                attrs.clear();
            } else if !line.starts_with("///") && !line.is_empty() {
                attrs.clear();
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        checked.len() >= 42 && checked.contains(&"rds::describe_events".to_string()),
        "only {} trait methods found: {checked:?}",
        checked.len()
    );
}

/// The parameter tables of docs/rds-to-aurora.md are the runbooks' schemas (`fn parameters`,
/// rendered by `godwit_engine::params::markdown`): every top-level runbook that declares one has
/// its block `<!-- BEGIN parameters of NAME -->`; cdc-heavy's lists what it adds to the
/// standard runbook's. `GODWIT_UPDATE_DOCS=1` rewrites the blocks instead of failing.
#[test]
fn parameter_tables_are_the_runbooks_schemas() {
    use godwit_engine::params::{DOC_CLUSTER, Schema, load_schema, markdown};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let runbooks = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../runbooks");
    let world = godwit_stdlib::world::World::sim_named("busy-source").unwrap();
    let runner = world.runner(Arc::new(MemoryStore::new()), rt.handle().clone());
    let schema = |name: &str| -> Option<Schema> {
        load_schema(&runner, &runbooks.join(format!("{name}.rhai")), DOC_CLUSTER)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let standard = schema("rds-to-aurora").expect("rds-to-aurora declares its parameters");
    let doc_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/rds-to-aurora.md");
    let mut doc = std::fs::read_to_string(&doc_path).unwrap();
    let mut drift = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(&runbooks)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "rhai").then(|| p.file_stem().unwrap().to_string_lossy().into())
        })
        .collect();
    names.sort();
    for name in names {
        let Some(mut s) = schema(&name) else { continue };
        if name == "cdc-heavy" {
            for key in standard.params.keys() {
                assert_eq!(
                    s.params.remove(key).as_ref(),
                    standard.get(key),
                    "cdc-heavy changes {key}"
                );
            }
        }
        let begin = format!("<!-- BEGIN parameters of {name} -->\n");
        let end = "<!-- END parameters -->";
        let at = doc
            .find(&begin)
            .unwrap_or_else(|| panic!("docs/rds-to-aurora.md has no `{}` block", begin.trim()))
            + begin.len();
        let stop = at + doc[at..].find(end).expect("END parameters");
        let want = markdown(&s);
        if doc[at..stop] != want {
            drift.push(name.clone());
            doc.replace_range(at..stop, &want);
        }
    }
    if std::env::var_os("GODWIT_UPDATE_DOCS").is_some() {
        std::fs::write(&doc_path, doc).unwrap();
    } else {
        assert!(
            drift.is_empty(),
            "docs/rds-to-aurora.md: the parameter tables of {drift:?} differ from the runbooks' \
             schemas; regenerate with GODWIT_UPDATE_DOCS=1 cargo test -p godwit-tests --test docs"
        );
    }
}
