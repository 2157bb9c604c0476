//! The godwit command.
