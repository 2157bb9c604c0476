//! godwit-engine: the durable Rhai runtime (skeleton; filled in by the engine work).
pub mod error;
pub use error::{ErrorKind, PrimitiveError};
