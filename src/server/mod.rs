//! `agentos serve`: the AgentOS HTTP API over hyper 1.
//!
//! [`serve`] takes an already-bound listener and a shutdown future, so tests run it on
//! port 0. Every run is a task of its own and streams its events through a bounded
//! channel; store calls run on the store's own threads, so no handler waits behind a run.

pub mod auth;
pub mod body;
pub mod error;
pub mod form;
pub mod info;
pub mod live;
pub mod queue;
pub mod request;
pub mod response;
pub mod router;
pub mod runs;
pub mod schemas;
pub mod sessions;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::engine::Engine;
use body::Body;
use error::ApiError;
use request::Req;

/// Limits and identity of a server.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Bearer key required on every non-public path (`OS_SECURITY_KEY`).
    pub security_key: Option<String>,
    /// Extra CORS origins on top of AgentOS's defaults.
    pub cors_origins: Vec<String>,
    /// Largest request body accepted (413 above).
    pub max_body_bytes: usize,
    /// Runs executing at once (429 above).
    pub max_runs_in_flight: usize,
    /// Time a client has to send its request headers.
    pub header_read_timeout: Duration,
    /// Time a client has to send its whole request body (408 after).
    pub body_read_timeout: Duration,
    /// Client connections open at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// How long shutdown waits for open connections after cancelling runs.
    pub shutdown_grace: Duration,
    /// `/info` and `/` name.
    pub name: String,
    pub os_id: String,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            security_key: None,
            cors_origins: Vec::new(),
            max_body_bytes: 10 * 1024 * 1024,
            max_runs_in_flight: 1024,
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 4096,
            shutdown_grace: Duration::from_secs(5),
            name: "agentos".into(),
            os_id: "agentos".into(),
        }
    }
}

/// What every handler shares.
pub struct AppState {
    pub engine: Arc<Engine>,
    pub options: ServerOptions,
    pub runs: Arc<live::Registry>,
    /// When the server started (`/health`'s `instantiated_at`).
    pub started_at: SystemTime,
}

impl AppState {
    pub fn new(engine: Arc<Engine>, options: ServerOptions) -> Self {
        AppState {
            engine,
            options,
            runs: Arc::new(live::Registry::default()),
            started_at: SystemTime::now(),
        }
    }
}

/// Serves until `shutdown` completes, then cancels in-flight runs (they are stored
/// CANCELLED) and waits up to `shutdown_grace` for connections to close.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(state.options.header_read_timeout)
        .keep_alive(true);
    let connections = Arc::new(tokio::sync::Semaphore::new(state.options.max_connections));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(conn) => conn,
                    Err(err) => {
                        // Out of file descriptors and the like: back off briefly.
                        tracing::warn!("accept failed: {err}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let Ok(permit) = connections.clone().try_acquire_owned() else {
                    tokio::spawn(refuse_connection(stream));
                    continue;
                };
                let state = state.clone();
                let service = service_fn(move |req| handle(state.clone(), req));
                let conn = http.serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                    drop(permit);
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    state.runs.cancel_all();
    let grace = state.options.shutdown_grace;
    let _ = tokio::time::timeout(grace, graceful.shutdown()).await;
    state.runs.wait_idle(grace).await;
    Ok(())
}

/// Answers a connection over `--max-connections` with 503 and closes it, without reading
/// its request, so a flood of idle clients cannot hold the server's memory.
async fn refuse_connection(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    const BODY: &str = r#"{"detail":"Too many open connections; retry later"}"#;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let write = async {
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}

/// One request: CORS, auth, body limit, routing, logging.
async fn handle(
    state: Arc<AppState>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let origin = req
        .headers()
        .get(hyper::header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);

    let mut resp = match dispatch(&state, req).await {
        Ok(resp) => resp,
        Err(err) => err.into_response(),
    };
    auth::apply_cors(&state.options, origin.as_deref(), &mut resp);
    tracing::debug!(
        target: "agentos::http",
        "{method} {path} {} {:.1}ms",
        resp.status().as_u16(),
        started.elapsed().as_secs_f64() * 1e3
    );
    Ok(resp)
}

async fn dispatch(
    state: &Arc<AppState>,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    if let Some(preflight) = auth::preflight(&state.options, &req) {
        return Ok(preflight);
    }
    auth::check(
        &state.options,
        req.method(),
        req.uri().path(),
        req.headers(),
    )?;
    let max = state.options.max_body_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Request body larger than {max} bytes"),
        )
    };
    // A declared length over the limit is refused before any of the body is read.
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let (parts, incoming) = req.into_parts();
    let timeout = state.options.body_read_timeout;
    let read = tokio::time::timeout(timeout, Limited::new(incoming, max).collect()).await;
    let body = match read {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(err)) => {
            if err
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return Err(too_large());
            }
            return Err(ApiError::bad_request("Could not read the request body"));
        }
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "Request body not received within {} s",
                    timeout.as_secs_f64()
                ),
            ));
        }
    };
    let req = Req::new(
        parts.method,
        parts.uri.path(),
        parts.uri.query(),
        parts.headers,
        body,
    );
    // Boxed: hyper keeps one request future per connection for the connection's life, and
    // the router's future is as large as its largest handler's.
    Box::pin(router::route(state.clone(), req)).await
}
