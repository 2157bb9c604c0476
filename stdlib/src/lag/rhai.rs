//! Rhai module `lag` (in progress).
pub fn register(_engine: &mut rhai::Engine) {}
