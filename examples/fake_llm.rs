//! A fast fake OpenAI-compatible chat-completions server, for benchmarks (loopback only).
//!
//! The native twin of the reference benchmark's `fake_llm.py`: same endpoints, same knobs, same
//! replies byte for byte in shape (role chunk, N content chunks, finish chunk, the usage
//! chunk when `stream_options.include_usage` is set, `data: [DONE]`), but cheap enough
//! that it is never what limits a benchmark of a fast runtime (HTTP/1.1 keep-alive, a
//! small multi-threaded tokio runtime, no JSON re-encoding of the reply).
//!
//! ```text
//! cargo run --release --example fake_llm -- --port 18080 [--tokens 50] [--threads 2]
//! ```
//!
//! Endpoints
//!   POST /v1/chat/completions          stream true/false
//!   POST /<anything>/chat/completions  same (configuration may be in the path, below)
//!   GET  /v1/models                    minimal model list
//!   GET  /health                       "ok"
//!   GET  /stats                        JSON counters (requests, streamed, TCP connections
//!                                      accepted, last request's message count and body
//!                                      bytes, maxima)
//!   POST /stats/reset                  zero the counters
//!
//! Per-request configuration (precedence: query string > X-Fake-* header > path > default)
//!   tokens    completion tokens (content pieces)            --tokens / FAKE_LLM_TOKENS (20)
//!   delay_ms  delay between streamed tokens (ms)            --delay-ms / FAKE_LLM_TOKEN_DELAY_MS (0)
//!   ttft_ms   wait before the first token / the response    --ttft-ms / FAKE_LLM_TTFT_MS (0)
//!   token     the text of one token                         --token / FAKE_LLM_TOKEN ("tok ")
//! Non-streaming replies wait ttft_ms + tokens * delay_ms in total, like a real model.
//! Path form, usable as an OpenAI client's base URL:
//!   http://127.0.0.1:18080/cfg/tokens=50,delay_ms=2/v1
//! Query form: /v1/chat/completions?tokens=50&delay_ms=2
//! Header form: X-Fake-Tokens, X-Fake-Delay-Ms, X-Fake-Ttft-Ms
//!
//! Connections speak HTTP/1.1 (keep-alive), or HTTP/2 when the client opens with the
//! HTTP/2 preface (h2c, as a provider with `http2 = true` does).
//!
//! Server options: --host (127.0.0.1; anything but a loopback address is refused),
//! --port (FAKE_LLM_PORT, 18080), --threads (FAKE_LLM_THREADS, 2: tokio worker threads).
//! On start it prints `fake_llm: http://HOST:PORT pid=…` to stdout.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::Deserialize;
use serde::de::IgnoredAny;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

// ------------------------------------------------------------------------- configuration

#[derive(Clone, Debug)]
struct Cfg {
    tokens: usize,
    delay_ms: f64,
    ttft_ms: f64,
    token: String,
}

struct Options {
    host: String,
    port: u16,
    threads: usize,
    defaults: Cfg,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn usage() -> ! {
    eprintln!(
        "usage: fake_llm [--host 127.0.0.1] [--port N] [--threads N] [--tokens N] \
         [--delay-ms F] [--ttft-ms F] [--token TEXT]"
    );
    std::process::exit(2);
}

fn parse_args() -> Options {
    let mut o = Options {
        host: std::env::var("FAKE_LLM_HOST").unwrap_or_else(|_| "127.0.0.1".into()),
        port: env_or("FAKE_LLM_PORT", 18080),
        threads: env_or("FAKE_LLM_THREADS", 2),
        defaults: Cfg {
            tokens: env_or("FAKE_LLM_TOKENS", 20),
            delay_ms: env_or("FAKE_LLM_TOKEN_DELAY_MS", 0.0),
            ttft_ms: env_or("FAKE_LLM_TTFT_MS", 0.0),
            token: std::env::var("FAKE_LLM_TOKEN").unwrap_or_else(|_| "tok ".into()),
        },
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let (key, inline) = match a.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        if key == "-h" || key == "--help" {
            usage();
        }
        let mut val = || {
            inline
                .clone()
                .or_else(|| args.next())
                .unwrap_or_else(|| usage())
        };
        match key.as_str() {
            "--host" => o.host = val(),
            "--port" => o.port = val().parse().unwrap_or_else(|_| usage()),
            "--threads" => o.threads = val().parse().unwrap_or_else(|_| usage()),
            "--tokens" => o.defaults.tokens = val().parse().unwrap_or_else(|_| usage()),
            "--delay-ms" => o.defaults.delay_ms = val().parse().unwrap_or_else(|_| usage()),
            "--ttft-ms" => o.defaults.ttft_ms = val().parse().unwrap_or_else(|_| usage()),
            "--token" => o.defaults.token = val(),
            _ => usage(),
        }
    }
    o.threads = o.threads.max(1);
    o
}

fn apply(cfg: &mut Cfg, key: &str, value: &str) {
    let value = value.trim();
    match key {
        "tokens" => {
            if let Ok(v) = value.parse::<f64>() {
                cfg.tokens = v.max(0.0) as usize;
            }
        }
        "delay_ms" => {
            if let Ok(v) = value.parse::<f64>() {
                cfg.delay_ms = v.max(0.0);
            }
        }
        "ttft_ms" => {
            if let Ok(v) = value.parse::<f64>() {
                cfg.ttft_ms = v.max(0.0);
            }
        }
        "token" => cfg.token = value.to_string(),
        _ => {}
    }
}

/// The request's configuration: defaults, then the `/cfg/k=v,…/` path prefix, then
/// `X-Fake-*` headers, then the query string.
fn request_cfg(defaults: &Cfg, req: &Request<Incoming>) -> Cfg {
    let mut cfg = defaults.clone();
    let path = req.uri().path();
    if let Some(rest) = path.strip_prefix("/cfg/") {
        let spec = rest.split('/').next().unwrap_or("");
        for kv in spec.split(',') {
            if let Some((k, v)) = kv.split_once('=') {
                apply(&mut cfg, k, v);
            }
        }
    }
    for (key, header) in [
        ("tokens", "x-fake-tokens"),
        ("delay_ms", "x-fake-delay-ms"),
        ("ttft_ms", "x-fake-ttft-ms"),
    ] {
        if let Some(v) = req.headers().get(header).and_then(|v| v.to_str().ok()) {
            apply(&mut cfg, key, v);
        }
    }
    if let Some(q) = req.uri().query() {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            apply(&mut cfg, &k, &v);
        }
    }
    cfg
}

// ------------------------------------------------------------------------- stats

#[derive(Default)]
struct Stats {
    requests: u64,
    streamed: u64,
    last_messages: usize,
    last_body_bytes: usize,
    max_messages: usize,
    max_body_bytes: usize,
    total_body_bytes: u64,
    /// TCP connections accepted: how many the clients opened.
    connections: u64,
}

struct State {
    defaults: Cfg,
    stats: Mutex<Stats>,
    started_at: f64,
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl State {
    fn stats_json(&self) -> String {
        let s = self.stats.lock().unwrap();
        serde_json::json!({
            "requests": s.requests,
            "streamed": s.streamed,
            "last_messages": s.last_messages,
            "last_body_bytes": s.last_body_bytes,
            "max_messages": s.max_messages,
            "max_body_bytes": s.max_body_bytes,
            "total_body_bytes": s.total_body_bytes,
            "connections": s.connections,
            "started_at": self.started_at,
            "pid": std::process::id(),
        })
        .to_string()
    }
}

// ------------------------------------------------------------------------- response body

/// A response body: one buffer with a known length, one buffer sent chunked (a stream
/// whose events all go out in one write), or chunks arriving over a channel (paced).
enum FakeBody {
    Full(Option<Bytes>),
    Once(Option<Bytes>),
    Chan(mpsc::Receiver<Bytes>),
}

impl Body for FakeBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            FakeBody::Full(b) | FakeBody::Once(b) => {
                Poll::Ready(b.take().map(|b| Ok(Frame::data(b))))
            }
            FakeBody::Chan(rx) => rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            FakeBody::Full(b) | FakeBody::Once(b) => b.is_none(),
            FakeBody::Chan(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            FakeBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            FakeBody::Full(None) => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

fn full(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<FakeBody> {
    let body: Bytes = body.into();
    let mut r = Response::new(FakeBody::Full(None));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    *r.body_mut() = FakeBody::Full(Some(body));
    r
}

const JSON_CT: &str = "application/json; charset=utf-8";

// ------------------------------------------------------------------------- chat completions

#[derive(Deserialize)]
struct ChatRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    messages: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn sleep_ms(ms: f64) -> tokio::time::Sleep {
    tokio::time::sleep(Duration::from_secs_f64(ms / 1000.0))
}

async fn chat_completions(state: Arc<State>, req: Request<Incoming>) -> Response<FakeBody> {
    let cfg = request_cfg(&state.defaults, &req);
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return full(
                StatusCode::BAD_REQUEST,
                JSON_CT,
                "{\"error\":{\"message\":\"unreadable body\"}}",
            );
        }
    };
    let parsed: ChatRequest = if body.is_empty() {
        ChatRequest {
            model: None,
            messages: None,
            stream: None,
            stream_options: None,
        }
    } else {
        match serde_json::from_slice(&body) {
            Ok(p) => p,
            Err(_) => {
                return full(
                    StatusCode::BAD_REQUEST,
                    JSON_CT,
                    "{\"error\":{\"message\":\"invalid JSON\",\"type\":\"invalid_request_error\"}}",
                );
            }
        }
    };
    let n_msgs = parsed.messages.as_ref().map_or(0, Vec::len);
    let blen = body.len();
    let stream = parsed.stream.unwrap_or(false);
    {
        let mut s = state.stats.lock().unwrap();
        s.requests += 1;
        s.last_messages = n_msgs;
        s.last_body_bytes = blen;
        s.total_body_bytes += blen as u64;
        s.max_messages = s.max_messages.max(n_msgs);
        s.max_body_bytes = s.max_body_bytes.max(blen);
        if stream {
            s.streamed += 1;
        }
    }

    let model = json_str(parsed.model.as_deref().unwrap_or("fake-model"));
    let cid = format!(
        "chatcmpl-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..24]
    );
    let created = now_secs() as u64;
    let n_tok = cfg.tokens;
    let prompt_tokens = (blen / 4).max(1);
    let usage = format!(
        "{{\"prompt_tokens\":{prompt_tokens},\"completion_tokens\":{n_tok},\"total_tokens\":{}}}",
        prompt_tokens + n_tok
    );

    if !stream {
        let wait = cfg.ttft_ms + n_tok as f64 * cfg.delay_ms;
        if wait > 0.0 {
            sleep_ms(wait).await;
        }
        let content = json_str(&cfg.token.repeat(n_tok));
        let payload = format!(
            "{{\"id\":\"{cid}\",\"object\":\"chat.completion\",\"created\":{created},\"model\":{model},\
             \"system_fingerprint\":\"fp_fake\",\"choices\":[{{\"index\":0,\"message\":{{\"role\":\"assistant\",\
             \"content\":{content},\"refusal\":null}},\"logprobs\":null,\"finish_reason\":\"stop\"}}],\
             \"usage\":{usage}}}"
        );
        return full(StatusCode::OK, "application/json", payload);
    }

    let head = format!(
        "data: {{\"id\":\"{cid}\",\"object\":\"chat.completion.chunk\",\"created\":{created},\"model\":{model},\
         \"system_fingerprint\":\"fp_fake\",\"choices\":"
    );
    let first = format!(
        "{head}[{{\"index\":0,\"delta\":{{\"role\":\"assistant\",\"content\":\"\"}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n"
    );
    let tok_chunk = format!(
        "{head}[{{\"index\":0,\"delta\":{{\"content\":{}}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n",
        json_str(&cfg.token)
    );
    let mut tail = format!(
        "{head}[{{\"index\":0,\"delta\":{{}},\"logprobs\":null,\"finish_reason\":\"stop\"}}]}}\n\n"
    );
    if parsed
        .stream_options
        .and_then(|o| o.include_usage)
        .unwrap_or(false)
    {
        let _ = write!(tail, "{head}[],\"usage\":{usage}}}\n\n");
    }
    tail.push_str("data: [DONE]\n\n");

    let mut resp = Response::new(FakeBody::Once(None));
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));

    if cfg.delay_ms <= 0.0 && cfg.ttft_ms <= 0.0 {
        // 0 ms per token: identical events, coalesced into one write (as fake_llm.py does).
        let mut all = String::with_capacity(first.len() + tok_chunk.len() * n_tok + tail.len());
        all.push_str(&first);
        for _ in 0..n_tok {
            all.push_str(&tok_chunk);
        }
        all.push_str(&tail);
        *resp.body_mut() = FakeBody::Once(Some(Bytes::from(all)));
        return resp;
    }

    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let (ttft, delay) = (cfg.ttft_ms, cfg.delay_ms);
    tokio::spawn(async move {
        // Headers go out at once, like aiohttp's prepare(); the first chunk after ttft.
        if ttft > 0.0 {
            sleep_ms(ttft).await;
        }
        if tx.send(Bytes::from(first)).await.is_err() {
            return;
        }
        let tok = Bytes::from(tok_chunk);
        if delay > 0.0 {
            for i in 0..n_tok {
                if i > 0 {
                    sleep_ms(delay).await;
                }
                if tx.send(tok.clone()).await.is_err() {
                    return;
                }
            }
        } else if n_tok > 0 {
            let mut all = Vec::with_capacity(tok.len() * n_tok);
            for _ in 0..n_tok {
                all.extend_from_slice(&tok);
            }
            if tx.send(Bytes::from(all)).await.is_err() {
                return;
            }
        }
        let _ = tx.send(Bytes::from(tail)).await;
    });
    *resp.body_mut() = FakeBody::Chan(rx);
    resp
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<FakeBody>, Infallible> {
    let path = req.uri().path();
    let resp = match *req.method() {
        Method::POST if path.ends_with("/chat/completions") => chat_completions(state, req).await,
        Method::POST if path == "/stats/reset" => {
            {
                let mut s = state.stats.lock().unwrap();
                *s = Stats::default();
            }
            full(StatusCode::OK, JSON_CT, state.stats_json())
        }
        Method::GET | Method::HEAD if path == "/health" => {
            full(StatusCode::OK, "text/plain; charset=utf-8", "ok")
        }
        Method::GET if path == "/stats" => full(StatusCode::OK, JSON_CT, state.stats_json()),
        Method::GET if path.ends_with("/models") => full(
            StatusCode::OK,
            JSON_CT,
            "{\"object\":\"list\",\"data\":[{\"id\":\"fake-model\",\"object\":\"model\",\"created\":0,\"owned_by\":\"fake\"}]}",
        ),
        _ => full(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "404: Not Found",
        ),
    };
    Ok(resp)
}

// ------------------------------------------------------------------------- main

fn main() {
    let o = parse_args();
    if !matches!(o.host.as_str(), "127.0.0.1" | "localhost" | "::1") {
        eprintln!(
            "fake_llm: refusing to bind to a non-loopback address: {:?}",
            o.host
        );
        std::process::exit(1);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(o.threads)
        .enable_all()
        .thread_name("fake-llm")
        .build()
        .expect("tokio runtime");
    let state = Arc::new(State {
        defaults: o.defaults.clone(),
        stats: Mutex::new(Stats::default()),
        started_at: now_secs(),
    });
    rt.block_on(async move {
        let host = if o.host == "localhost" {
            "127.0.0.1"
        } else {
            o.host.as_str()
        };
        let listener = match TcpListener::bind((host, o.port)).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("fake_llm: could not listen on {host}:{}: {e}", o.port);
                std::process::exit(1);
            }
        };
        let addr: SocketAddr = listener.local_addr().expect("local addr");
        println!(
            "fake_llm: http://{addr} pid={} threads={} tokens={} delay_ms={} ttft_ms={}",
            std::process::id(),
            o.threads,
            o.defaults.tokens,
            o.defaults.delay_ms,
            o.defaults.ttft_ms
        );
        loop {
            let (sock, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    // EMFILE and the like: back off a little instead of spinning.
                    eprintln!("fake_llm: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = sock.set_nodelay(true);
            state.stats.lock().unwrap().connections += 1;
            let state = Arc::clone(&state);
            tokio::spawn(async move {
                let svc = service_fn(move |req| handle(Arc::clone(&state), req));
                // HTTP/1.1, or HTTP/2 for a client that starts with its preface (h2c).
                let mut builder = auto::Builder::new(TokioExecutor::new());
                builder.http1().keep_alive(true);
                builder.http2().max_concurrent_streams(Some(100_000));
                let _ = builder.serve_connection(TokioIo::new(sock), svc).await;
            });
        }
    });
}
