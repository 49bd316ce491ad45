//! Command-line surface: clap types only, no logic.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const ENV_HELP: &str = "\
Environment:
  AGENTOS_CONFIG   agents file (else ./agents.toml, then the user config dir)
  AGENTOS_DB       the store: a SQLite file (else agentos.db in the user data dir) or a
                   postgres://user@host/db URL
  AGENTOS_DB_POOL  PostgreSQL read connections per process (16)
  OPENAI_API_KEY   key of the built-in `openai` provider (OPENAI_BASE_URL overrides its URL)
  ANTHROPIC_API_KEY  key of the built-in `anthropic` provider (ANTHROPIC_BASE_URL overrides
                   its URL, as Anthropic's SDKs take it: with or without `/v1`)
  AGENTOS_LOG      log filter (e.g. `agentos=debug`)
  AGENTOS_OWNER_TIMEOUT_SECS  silence after which a process's runs are taken over (5)
  AGENTOS_FLUSH_INTERVAL_MS   how often live runs' events are journaled (100; 0: never)

Exit codes: 0 success, 1 the run failed, 2 usage or config error, 3 paused for a tool
confirmation (`agentos continue RUN_ID --approve|--reject`), 130 cancelled (Ctrl-C).";

/// Run LLM agents defined in agents.toml, in the terminal and as an AgentOS-compatible server.
#[derive(Debug, Parser)]
#[command(name = "agentos", version, about, after_help = ENV_HELP)]
pub struct Cli {
    /// Agents file to use.
    #[arg(long, global = true, env = "AGENTOS_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL
    /// (`postgres://user@host:5432/db`, `?sslmode=require` for TLS).
    #[arg(long, global = true, env = "AGENTOS_DB", value_name = "PATH|URL")]
    pub db: Option<PathBuf>,

    /// PostgreSQL connections each process keeps for reads (writes have four of their own).
    #[arg(
        long,
        global = true,
        env = "AGENTOS_DB_POOL",
        value_name = "N",
        default_value_t = 16
    )]
    pub db_pool: usize,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an agent once and stream its answer to stdout.
    Run(RunArgs),
    /// Continue a run paused for a tool confirmation.
    Continue(ContinueArgs),
    /// Serve the AgentOS HTTP API.
    Serve(ServeArgs),
    /// Validate an agents file and print what it defines.
    Check(CheckArgs),
    /// List agents, teams and workflows, or show one.
    Agents(AgentsArgs),
    /// List, show, rename or delete stored sessions.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Cancel a run, whichever process executes it.
    Cancel(CancelArgs),
    /// List the runs of every process sharing the store, or follow one as it goes.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "\
The message is the -m text. When stdin is not a terminal, its text is the message; with -m
as well, the piped text is appended after the -m text and a blank line.")]
pub struct RunArgs {
    /// Agent id (see `agentos agents`).
    pub agent: String,

    /// The message to send.
    #[arg(short, long)]
    pub message: Option<String>,

    /// Continue this session (created when it does not exist).
    #[arg(short, long = "session", value_name = "SESSION_ID")]
    pub session: Option<String>,

    /// User the run belongs to.
    #[arg(short, long = "user", value_name = "USER_ID")]
    pub user: Option<String>,

    /// JSON object whose values fill {placeholders} in the instructions.
    #[arg(long, value_name = "JSON")]
    pub dependencies: Option<String>,

    /// JSON object: the session state (also fills {placeholders}).
    #[arg(long, value_name = "JSON")]
    pub session_state: Option<String>,

    /// JSON object stored with the run.
    #[arg(long, value_name = "JSON")]
    pub metadata: Option<String>,

    /// JSON Schema the answer must follow (JSON text, or @FILE).
    #[arg(long, value_name = "JSON|@FILE")]
    pub output_schema: Option<String>,

    /// Use this model instead of the agent's (`provider:model`, or `test`).
    #[arg(long, value_name = "PROVIDER:MODEL")]
    pub model: Option<String>,

    /// Ask the model for the whole answer at once instead of streaming it.
    #[arg(long)]
    pub no_stream: bool,

    /// Print the final run object as JSON (the API's shape) instead of the text.
    #[arg(long, conflicts_with = "jsonl")]
    pub json: bool,

    /// Print every event as one JSON object per line, as it happens.
    #[arg(long)]
    pub jsonl: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "AGENTOS_HOST", default_value = "127.0.0.1")]
    pub host: String,

    /// Port to listen on (0 picks a free one; the real address is printed).
    #[arg(long, env = "AGENTOS_PORT", default_value_t = 7777)]
    pub port: u16,

    /// Bearer key required on every non-public path.
    #[arg(
        long,
        env = "OS_SECURITY_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub security_key: Option<String>,

    /// Allow listening on a non-loopback address without a security key.
    #[arg(long)]
    pub insecure: bool,

    /// Extra CORS origin allowed on top of AgentOS's defaults (repeatable).
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    pub cors_origins: Vec<String>,

    /// Most runs executing at once; more get 429.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    pub max_runs: usize,

    /// Largest request body in bytes; larger ones get 413.
    #[arg(long, default_value_t = 10 * 1024 * 1024, value_name = "BYTES")]
    pub max_body_bytes: usize,

    /// Most client connections open at once; more are answered 503 and closed.
    #[arg(long, default_value_t = 4096, value_name = "N")]
    pub max_connections: usize,

    /// Seconds a client has to send its whole request body; slower ones get 408.
    #[arg(long, default_value_t = 30.0, value_name = "SECS")]
    pub body_timeout_secs: f64,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("decision").required(true).args(["approve", "reject"])))]
pub struct ContinueArgs {
    /// The paused run's id (printed when it paused).
    pub run_id: String,

    /// Let the paused tool calls run.
    #[arg(long)]
    pub approve: bool,

    /// Refuse the paused tool calls; the model is told (with --note).
    #[arg(long)]
    pub reject: bool,

    /// Why; given to the model with a rejection.
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,

    /// Print the final run object as JSON instead of the text.
    #[arg(long, conflicts_with = "jsonl")]
    pub json: bool,

    /// Print every event as one JSON object per line.
    #[arg(long)]
    pub jsonl: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Agents file to check (default: the one agentos would use).
    pub path: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AgentsArgs {
    #[command(subcommand)]
    pub command: Option<AgentsCommand>,
}

#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// One line per agent, team and workflow (the default).
    List,
    /// Everything about one agent, team or workflow, instructions and steps included.
    Show {
        /// Agent, team or workflow id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// List sessions, newest first.
    List(SessionsListArgs),
    /// Print a session's conversation.
    Show {
        /// Session id.
        id: String,
        /// Print the stored runs as JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Delete a session and its runs.
    Delete {
        /// Session id.
        id: String,
    },
    /// Give a session a name.
    Rename {
        /// Session id.
        id: String,
        /// The new name.
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct SessionsListArgs {
    /// Only sessions of this agent.
    #[arg(long, value_name = "ID")]
    pub agent: Option<String>,
    /// Only sessions of this user.
    #[arg(short, long = "user", value_name = "USER_ID")]
    pub user: Option<String>,
    /// How many to show.
    #[arg(short = 'n', long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Exit status: 0 when the run is now CANCELLED, 1 when there is no such run, it had already \
ended, or its process did not stop it within --wait-secs.")]
pub struct CancelArgs {
    /// The run to cancel.
    pub run_id: String,
    /// How long to wait for the run to stop (0: only ask).
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub wait_secs: f64,
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List runs, newest first, with the process executing each live one.
    List(RunsListArgs),
    /// Print a run's answer (or events) as it goes, from any process; ends with the run.
    Follow(RunsFollowArgs),
}

#[derive(Debug, Args)]
pub struct RunsListArgs {
    /// Only runs with this status (running, pending, completed, paused, cancelled, error);
    /// repeatable.
    #[arg(long, value_name = "STATUS")]
    pub status: Vec<String>,
    /// Team members' runs too (a workflow's steps are kept inside its run).
    #[arg(long)]
    pub all: bool,
    /// How many to show.
    #[arg(short = 'n', long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Exit status as `agentos run`: 0 when the run completed, 1 when it failed, 3 when it paused, \
130 when it was cancelled.")]
pub struct RunsFollowArgs {
    /// The run to follow.
    pub run_id: String,
    /// Print every event as one JSON line (with its `event_index`) instead of the answer.
    #[arg(long)]
    pub jsonl: bool,
    /// Start after this event index (as the API's `last_event_index`); default: from the start.
    #[arg(long, value_name = "N")]
    pub after: Option<u64>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// Shell to generate the script for.
    pub shell: Shell,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}
