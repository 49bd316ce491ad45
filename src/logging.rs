//! Diagnostics on stderr through `tracing`, filtered by `AGENTOS_LOG` (the `EnvFilter`
//! syntax: `debug`, `agentos=debug`, `agentos::http=debug,warn`, …).
//!
//! By default `agentos serve` logs `info` and above (start, stop, failures), the other
//! commands only warnings. One line per HTTP request is at `debug` on the `agentos::http`
//! target. Runs of a server log inside a `run` span carrying the run, session and
//! component ids, so one run can be followed through a busy server's log. stdout is never
//! written to: it belongs to agent output.

use tracing_subscriber::EnvFilter;

/// The variable holding the filter.
pub const LOG_ENV: &str = "AGENTOS_LOG";

/// Installs the subscriber; `default` is the filter when `AGENTOS_LOG` is unset or empty.
/// A server's lines carry their time; a command's do not.
pub fn init(default: &str, with_time: bool) {
    let filter = std::env::var(LOG_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // A second call (tests that run commands in process) keeps the first subscriber.
    let _ = if with_time {
        builder.try_init()
    } else {
        builder.without_time().try_init()
    };
}

/// An error and its causes on one line, each said once: hyper's and tokio-postgres's own
/// messages are terse (`db error`, `error connecting to server`) and keep the reason
/// (`database "x" does not exist`, `Connection refused`) as the cause.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
