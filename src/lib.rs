//! agentos: run LLM agents defined in `agents.toml`, in the terminal and as an
//! AgentOS-compatible HTTP server, with sessions kept in SQLite.
//!
//! This library exists so the binary and its tests share code; it is internal and not
//! semver-stable.

pub mod cancel;
pub mod config;
pub mod event;
pub mod model;
pub mod run;
pub mod store;
