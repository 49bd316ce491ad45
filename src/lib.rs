//! agentos: run LLM agents defined in `agents.toml`, in the terminal and as an
//! AgentOS-compatible HTTP server, with sessions kept in SQLite.
//!
//! This library exists so the binary and its tests share code; it is internal and not
//! semver-stable.

pub mod cancel;
pub mod cli;
pub mod commands;
pub mod config;
pub mod engine;
pub mod error;
pub mod event;
pub mod expr;
pub mod kind;
pub mod limits;
pub mod logging;
pub mod model;
pub mod presence;
pub mod render;
pub mod run;
pub mod schema;
pub mod server;
pub mod store;
pub mod template;
pub mod tools;

use cli::{Cli, Command};
use commands::Context;

/// Runs one parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let ctx = Context::from_cli(&cli);
    match &cli.command {
        Command::Serve(_) => logging::init("agentos=info,warn", true),
        _ => logging::init("warn", false),
    }
    match cli.command {
        Command::Run(args) => commands::run::run(args, &ctx),
        Command::Continue(args) => commands::continue_run::run(args, &ctx),
        Command::Serve(args) => commands::serve::run(args, &ctx),
        Command::Check(args) => commands::check::run(args.path.as_deref(), &ctx),
        Command::Agents(args) => commands::agents::run(args.command, &ctx),
        Command::Sessions(cmd) => commands::sessions::run(cmd, &ctx),
        Command::Cancel(args) => commands::runs::cancel(args, &ctx),
        Command::Runs(cmd) => commands::runs::run(cmd, &ctx),
        Command::Completions(args) => commands::completions::run(args.shell),
    }
}

/// Helpers for the unit tests of async code.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Mutex;

    use futures_util::future::BoxFuture;

    use crate::event::{Event, EventSink};

    /// Runs a future to its end on a runtime of its own.
    pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a test runtime")
            .block_on(future)
    }

    /// Keeps every event it is sent.
    #[derive(Default)]
    pub struct Collect(Mutex<Vec<Event>>);

    impl Collect {
        pub fn events(self) -> Vec<Event> {
            self.0.into_inner().unwrap_or_else(|e| e.into_inner())
        }
    }

    impl EventSink for Collect {
        fn send<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, ()> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(event.clone());
            Box::pin(std::future::ready(()))
        }
    }
}
