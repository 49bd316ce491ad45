//! One module per subcommand. Each turns parsed arguments into calls on the library and
//! prints the result.

pub mod agents;
pub mod check;
pub mod completions;
pub mod continue_run;
pub mod run;
pub mod runs;
pub mod serve;
pub mod sessions;

use std::path::PathBuf;

use anyhow::Context as _;

use crate::cli::Cli;
use crate::config::Config;
use crate::store::Store;

/// Global options shared by the subcommands.
pub struct Context {
    pub config_path: Option<PathBuf>,
    pub db_path: Option<PathBuf>,
    pub db_pool: usize,
}

impl Context {
    pub fn from_cli(cli: &Cli) -> Self {
        Context {
            config_path: cli.config.clone(),
            db_path: cli.db.clone(),
            db_pool: cli.db_pool,
        }
    }

    /// Finds and loads the agents file.
    pub fn config(&self) -> anyhow::Result<Config> {
        let path = Config::find(self.config_path.as_deref())?;
        Ok(Config::load(&path)?)
    }

    /// The store for commands that look at what is there (`sessions`, `runs`, `cancel`):
    /// a SQLite file that does not exist is not created (a mistyped `--db` would otherwise
    /// leave an empty database behind and look like one with nothing in it); it reads as
    /// empty, and a person at a terminal is told so.
    pub fn existing_store(&self) -> anyhow::Result<Store> {
        let path = self.db_location();
        let location = path.to_string_lossy();
        let sqlite_file = !crate::store::postgres::is_url(&location) && location != ":memory:";
        if sqlite_file && !path.exists() {
            if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                eprintln!(
                    "agentos: no database at {} yet: nothing has run with it (check --db or \
                     AGENTOS_DB)",
                    path.display()
                );
            }
            return Ok(Store::open_in_memory()?);
        }
        self.store()
    }

    /// Opens the store at `--db`, `AGENTOS_DB` or the default path: a SQLite file, or a
    /// PostgreSQL database for a `postgres://` URL.
    pub fn store(&self) -> anyhow::Result<Store> {
        let path = self.db_location();
        let location = path.to_string_lossy();
        if crate::store::postgres::is_url(&location) {
            if self.db_pool == 0 {
                return Err(crate::error::UsageError("--db-pool must be at least 1".into()).into());
            }
            // The store's errors name the database (a URL without its password).
            return Ok(Store::open_postgres(&location, self.db_pool)?);
        }
        Ok(Store::open(&path)?)
    }

    /// `--db` (or `AGENTOS_DB`), else the default SQLite file.
    fn db_location(&self) -> std::path::PathBuf {
        self.db_path.clone().unwrap_or_else(Store::default_path)
    }
}

/// Runs `work` with this process registered as the owner of the runs it executes (see
/// `presence`), and leaves the store's list of processes when it is done, however it ends.
pub async fn as_owner<T>(
    engine: &crate::engine::Engine,
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let settings = crate::presence::Settings::from_env()
        .map_err(|e| anyhow::Error::new(crate::error::UsageError(e)))?;
    let presence = crate::presence::Presence::start(engine.store().clone(), "run", None, settings)
        .await
        .context("could not register this process in the store")?;
    engine.set_presence(presence.clone());
    let result = work.await;
    presence.stop().await;
    result
}

/// The stack of the threads that run the engine: twice what the evaluation of any workflow
/// expression needs (`expr::EVAL_STACK`), which runs inline on them.
pub const WORKER_STACK: usize = 2 * crate::expr::EVAL_STACK;

/// Runs `future` to its end on a single-threaded runtime: how the commands other than
/// `serve` run the engine and the store. The runtime runs on a thread of its own with a
/// [`WORKER_STACK`] stack, as the server's workers have, whatever stack the main thread got
/// (`ulimit -s`): enough for the workflow expressions the engine evaluates inline.
pub fn block_on<T: Send>(
    future: impl std::future::Future<Output = anyhow::Result<T>> + Send,
) -> anyhow::Result<T> {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("agentos-engine".into())
            .stack_size(WORKER_STACK)
            .spawn_scoped(scope, || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("could not start the async runtime")?
                    .block_on(future)
            })
            .context("could not start the engine's thread")?
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}
