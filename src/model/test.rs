//! The offline, deterministic test model.
