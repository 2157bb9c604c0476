//! Test-only crate (helpers for the test binaries in `tests/tests/`).
