//! Error kinds the top level turns into exit codes.
//!
//! 0 success, 1 a run or command failed, 2 usage or configuration error, 130 cancelled.
//! A closed stdout (`agentos run … | head -1`) is a quiet success.

use std::io;

use crate::config::ConfigError;

/// Bad command-line input (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Leave with this code without printing anything more.
#[derive(Debug, thiserror::Error)]
#[error("exit {0}")]
pub struct SilentExit(pub u8);

pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
/// The run paused for a tool confirmation (`agentos continue`).
pub const EXIT_PAUSED: u8 = 3;
pub const EXIT_CANCELLED: u8 = 130;

/// True when the error chain holds an EPIPE from writing to a closed stdout.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        let io_kind = cause
            .downcast_ref::<io::Error>()
            .map(io::Error::kind)
            .or_else(|| {
                cause
                    .downcast_ref::<serde_json::Error>()
                    .and_then(serde_json::Error::io_error_kind)
            });
        io_kind == Some(io::ErrorKind::BrokenPipe)
    })
}

/// The exit code for an error that reached the top level.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if let Some(SilentExit(code)) = err.downcast_ref::<SilentExit>() {
        return *code;
    }
    if is_broken_pipe(err) {
        return 0;
    }
    let usage = err.chain().any(|c| {
        c.is::<ConfigError>()
            || c.is::<UsageError>()
            || c.is::<crate::schema::SchemaError>()
            || matches!(
                c.downcast_ref::<crate::engine::EngineError>(),
                Some(
                    crate::engine::EngineError::AgentNotFound(_)
                        | crate::engine::EngineError::Config(_)
                        | crate::engine::EngineError::InvalidRequest(_)
                        | crate::engine::EngineError::RunExists(_)
                        | crate::engine::EngineError::RunNotFound(_)
                        | crate::engine::EngineError::NotPaused { .. }
                        | crate::engine::EngineError::SessionNotFound(_)
                )
            )
    });
    if usage { EXIT_USAGE } else { EXIT_FAILURE }
}
