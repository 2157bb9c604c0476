//! Writes `tests/fixtures/old-journals/` with the runbooks as they are now (see
//! `godwit_tests::fixtures`). Run it before restructuring a runbook, then commit the files.

fn main() {
    godwit_tests::fixtures::write_old_journals();
    println!(
        "wrote {}",
        godwit_tests::fixtures::old_journals_dir().display()
    );
}
