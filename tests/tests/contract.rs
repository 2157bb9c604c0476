//! The contract suite: each area's assertions (`godwit_tests::contract`), the same for every
//! world, run on the simulator, a lab and the aws world on moto (STYLE.md 7b). One test per
//! world; each builds its world once and runs every area's contract on it in the migration's
//! order, reporting every broken rule at the end. The lab needs the PostgreSQL server binaries
//! and Envoy, the aws world moto and Envoy (`scripts/test.sh` provisions them); a missing one
//! fails with its install command.

use godwit_tests::contract::{story, worlds};

#[test]
fn the_simulator_keeps_every_contract() {
    story::run(&worlds::sim());
}

#[test]
fn the_lab_keeps_every_contract() {
    let dir = tempfile::tempdir().unwrap();
    story::run(&worlds::lab(dir.path()));
}

#[test]
fn the_aws_world_on_moto_keeps_every_contract() {
    let dir = tempfile::tempdir().unwrap();
    story::run(&worlds::aws_on_moto(dir.path()));
}
