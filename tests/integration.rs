//! The integration tests: one test binary (`[[test]] integration`, `autotests = false`)
//! that runs the real `agentos` binary against a fake OpenAI-compatible server over real
//! sockets.
//!
//! - `util`: the [`util::TestEnv`] builder (tempdir-isolated config, store and home);
//! - `fake_model`: the fake chat-completions server (std only) and its own tests;
//! - `fake_anthropic`: the same server's fake of Anthropic's Messages API;
//! - `anthropic`: the Anthropic provider, reasoning and fallback models end to end;
//! - `cli`: `agentos run`, `agents` and `sessions` end to end;
//! - `config_files`: `agents.toml` errors, the repository's example file and README blocks;
//! - `completions`: the committed completion scripts match the binary;
//! - `serve`, `serve_sessions`, `serve_teams`: `agentos serve` compared with the captures;
//! - `openapi`: `/openapi.json` against the router and the server;
//! - `processes`: many processes on one store: crashes, cancel and follow across them;
//! - `store_backends`: the store's behaviour on SQLite and on PostgreSQL;
//! - `postgres_servers`: several servers on one PostgreSQL database as one server.

mod anthropic;
mod cli;
mod cli_flows;
mod completions;
mod config_files;
mod connections;
mod fake_anthropic;
mod fake_model;
mod openapi;
mod postgres_servers;
mod processes;
mod robustness;
mod self_contained;
mod serve;
mod serve_sessions;
mod serve_teams;
mod store_backends;
mod tools;
mod util;
