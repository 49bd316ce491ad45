//! `agentos serve`: load config, open store, bind, serve until Ctrl-C or SIGTERM.
//!
//! The tokio runtime is built here and nowhere else, so the other commands stay
//! synchronous. Signals are tokio's own (no `ctrlc` handler in this process): mixing the
//! two loses SIGINT.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;

use super::Context;
use crate::cli::ServeArgs;
use crate::engine::Engine;
use crate::error::UsageError;
use crate::server::{self, AppState, ServerOptions};

/// How long the runtime waits for blocking work after the server has stopped.
const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(2);

pub fn run(args: ServeArgs, ctx: &Context) -> anyhow::Result<()> {
    let security_key = args
        .security_key
        .as_deref()
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string);
    if args.max_runs == 0 {
        return Err(UsageError("--max-runs must be at least 1".into()).into());
    }
    if args.max_connections == 0 {
        return Err(UsageError("--max-connections must be at least 1".into()).into());
    }
    if !(args.body_timeout_secs.is_finite() && args.body_timeout_secs > 0.0) {
        return Err(UsageError("--body-timeout-secs must be a positive number".into()).into());
    }
    let loopback = is_loopback_host(&args.host, args.port);
    if !loopback && security_key.is_none() && !args.insecure {
        return Err(UsageError(format!(
            "refusing to listen on {} without a security key: anyone who can reach it could \
             run agents; set OS_SECURITY_KEY (or --security-key), or pass --insecure",
            args.host
        ))
        .into());
    }

    let presence_settings =
        crate::presence::Settings::from_env().map_err(|e| anyhow::Error::new(UsageError(e)))?;
    raise_open_files_limit();
    let config = ctx.config()?;
    let store = ctx.store()?;
    let engine = Arc::new(Engine::new(Arc::new(config), store));
    let options = ServerOptions {
        security_key,
        cors_origins: args.cors_origins.clone(),
        max_body_bytes: args.max_body_bytes,
        max_runs_in_flight: args.max_runs,
        max_connections: args.max_connections,
        body_read_timeout: Duration::from_secs_f64(args.body_timeout_secs.min(86_400.0)),
        ..ServerOptions::default()
    };
    let state = Arc::new(AppState::new(engine, options));

    // Workers get 8 MiB stacks rather than tokio's 2 MiB: workflow expressions evaluate
    // inline on them, and the deepest accepted ones need up to `expr::EVAL_STACK` (4 MiB;
    // about 2.4 MiB in a debug build), which leaves half for the engine's own frames. The
    // stack is reserved, not used: a worker touches only what it needs.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("agentos-server")
        .thread_stack_size(super::WORKER_STACK)
        .build()
        .context("could not start the async runtime")?;
    let result = runtime.block_on(async {
        let listener = TcpListener::bind((args.host.as_str(), args.port))
            .await
            .with_context(|| format!("could not listen on {}:{}", args.host, args.port))?;
        let addr = listener
            .local_addr()
            .context("could not read the listening address")?;
        // Installed before the address is announced, so a signal sent right after it is seen.
        let shutdown = shutdown_signal()?;
        if !loopback && state.options.security_key.is_none() {
            tracing::warn!(
                "serving on {}, a non-loopback address, without a security key (--insecure): \
                 anyone who can reach it can run agents",
                display_addr(addr)
            );
        }
        // Registered before the address is announced: from then on other processes can
        // cancel and follow this server's runs, and its own are safe from a crash.
        let presence = crate::presence::Presence::start(
            state.engine.store().clone(),
            "serve",
            Some(display_addr(addr)),
            presence_settings,
        )
        .await
        .context("could not register this server in the store")?;
        state.engine.set_presence(presence.clone());
        let queue = tokio::spawn(server::queue::worker(state.clone(), presence.clone()));
        eprintln!("agentos: serving on http://{}", display_addr(addr));
        let served = server::serve(listener, state, shutdown)
            .await
            .context("the server stopped with an error");
        queue.abort();
        presence.stop().await;
        served
    });
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    result
}

/// Lifts the soft limit on open files to the hard one: every stream in flight holds a
/// client connection and, for a model on HTTP/1.1, a model connection.
fn raise_open_files_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(err) = setrlimit(Resource::Nofile, limit) {
            tracing::debug!("could not raise the open files limit: {err}");
        }
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM. The handlers are registered when this is called.
#[cfg(unix)]
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt =
        signal(SignalKind::interrupt()).context("could not install the SIGINT handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("could not install the SIGTERM handler")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

/// Resolves on Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    Ok(async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    })
}

/// True when every address `host` names is a loopback address (`127.0.0.1`, `::1`,
/// `localhost`). Names that do not resolve count as not loopback.
fn is_loopback_host(host: &str, port: u16) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return ip.is_loopback();
    }
    if bare.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match (bare, port).to_socket_addrs() {
        Ok(addrs) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())
        }
        Err(_) => false,
    }
}

/// The listening address as a URL authority (`127.0.0.1:7777`, `[::1]:7777`).
fn display_addr(addr: SocketAddr) -> String {
    addr.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for host in [
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
            "localhost",
            "LOCALHOST",
        ] {
            assert!(is_loopback_host(host, 7777), "{host}");
        }
        for host in ["0.0.0.0", "::", "[::]", "192.168.1.10", "10.0.0.1"] {
            assert!(!is_loopback_host(host, 7777), "{host}");
        }
    }

    #[test]
    fn addresses_print_as_url_authorities() {
        assert_eq!(
            display_addr("127.0.0.1:7777".parse().unwrap()),
            "127.0.0.1:7777"
        );
        assert_eq!(display_addr("[::1]:80".parse().unwrap()), "[::1]:80");
    }
}
