//! The HTTP client every provider uses: one [`Transport`] per provider, shared by all runs.
//!
//! - **One pool per provider.** Connections are kept alive and reused by later calls and
//!   by every tool round of a run; over TLS (rustls, Mozilla's roots) HTTP/2 is used when
//!   the provider offers it through ALPN, so concurrent calls share one connection. A
//!   provider with `http2 = true` gets HTTP/2 over plain `http://` too (prior knowledge).
//! - **Timeouts.** Connecting — TCP and the TLS handshake together — may take the connect
//!   timeout ([`CONNECT_TIMEOUT`], or `AGENTOS_CONNECT_TIMEOUT_SECS`); waiting for the
//!   answer's headers and then for each further piece of its body may take the read
//!   timeout ([`DEFAULT_READ_TIMEOUT`], or `AGENTOS_READ_TIMEOUT_SECS`).
//! - **Retries.** Each model call has one budget of [`MAX_RETRIES`] retries after its
//!   first attempt ([`Attempts`]), spent on 429 and 5xx answers, failed connections, and
//!   errors a provider reports inside a successful answer before any of it was passed on
//!   (Anthropic's overloaded API): at most 1 + [`MAX_RETRIES`] requests per call. Waits
//!   grow exponentially, honouring `Retry-After` (seconds or an HTTP date) and OpenAI's
//!   `retry-after-ms`. Nothing is retried once any of an answer was passed on.
//! - **Errors.** An error status becomes the provider's own message (`error.message`,
//!   `detail`, `message`, …) on one line, ending in `(HTTP nnn)`.
//! - **Cancellation.** Dropping a call's future or its [`BodyStream`] abandons the request
//!   at once; hyper closes a connection whose answer was not read to the end, so a
//!   cancelled or failed call never leaves a broken connection in the pool.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::Stream;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue, USER_AGENT};
use hyper::{HeaderMap, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use super::ModelError;
use super::sse::{SseDecoder, SseEvent};
use crate::logging::error_chain;

/// Environment variable overriding the read timeout, in seconds.
pub const READ_TIMEOUT_ENV: &str = "AGENTOS_READ_TIMEOUT_SECS";
/// Environment variable overriding the connect timeout (TCP and TLS), in seconds.
pub const CONNECT_TIMEOUT_ENV: &str = "AGENTOS_CONNECT_TIMEOUT_SECS";
/// How long a read may wait for the provider's next bytes.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(120);
/// How long establishing a connection (TCP and TLS handshake together) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Retries after the first attempt of a model call, for 429, 5xx, connection failures
/// and errors reported before any of an answer.
pub const MAX_RETRIES: u32 = 3;

/// Backoff before the first retry; doubled for each further one.
const BASE_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// The longest `Retry-After` honoured; longer waits are cut to this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// How much of an error body is read to find the provider's message.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// How long a provider message may be in an error before it is cut.
const MAX_ERROR_MESSAGE_CHARS: usize = 500;
/// Idle pooled connections are closed after this long.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// The size of each connection's read buffer: model answers arrive in small pieces.
const READ_BUFFER: usize = 4 * 1024;

type Connector = TimedConnector<hyper_rustls::HttpsConnector<HttpConnector>>;

/// Timeouts and retry policy of a transport.
#[derive(Clone, Debug)]
pub struct Options {
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub max_retries: u32,
    pub base_backoff: Duration,
    /// HTTP/2 over plain `http://` (prior knowledge). Over TLS, ALPN decides.
    pub http2_prior_knowledge: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            connect_timeout: seconds_from_env(CONNECT_TIMEOUT_ENV, CONNECT_TIMEOUT),
            read_timeout: seconds_from_env(READ_TIMEOUT_ENV, DEFAULT_READ_TIMEOUT),
            max_retries: MAX_RETRIES,
            base_backoff: BASE_BACKOFF,
            http2_prior_knowledge: false,
        }
    }
}

/// One provider's HTTP client. See the module documentation.
pub struct Transport {
    client: Client<Connector, Full<Bytes>>,
    options: Options,
}

/// One request to a provider.
pub struct Call<'a> {
    pub url: &'a str,
    /// `Authorization: Bearer KEY` when set.
    pub bearer: Option<&'a str>,
    /// Extra headers (provider configuration, API versions, keys in other headers).
    pub headers: &'a [(String, String)],
    /// JSON request body.
    pub body: Bytes,
    /// Ask for an event stream (`text/event-stream`) rather than one JSON answer.
    pub stream: bool,
    /// The provider's name, for error messages.
    pub provider: &'a str,
}

impl Transport {
    pub fn new(options: Options) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        // One deadline over TCP and the TLS handshake: a server that accepts but never
        // answers the handshake fails like one that cannot be reached.
        let connector = TimedConnector {
            inner: https,
            timeout: options.connect_timeout,
        };
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .http1_read_buf_exact_size(READ_BUFFER)
            .http2_only(options.http2_prior_knowledge);
        let client = builder.build(connector);
        Transport { client, options }
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The retry budget of one model call. A provider whose answer needs no look inside
    /// before it is passed on uses [`Transport::send`].
    pub fn attempts(&self) -> Attempts<'_> {
        Attempts {
            transport: self,
            retries: 0,
        }
    }

    /// Sends `call` with a budget of its own, retrying 429/5xx answers and failed
    /// connections, and returns the first successful response.
    pub async fn send(&self, call: &Call<'_>) -> Result<Response<Incoming>, ModelError> {
        self.attempts().send(call).await
    }

    /// How long to wait before retry number `attempt + 1`: exponential, capped.
    pub fn backoff(&self, attempt: u32) -> Duration {
        self.options
            .base_backoff
            .saturating_mul(1 << attempt.min(16))
            .min(MAX_BACKOFF)
    }

    async fn send_once(&self, call: &Call<'_>) -> Result<Response<Incoming>, Failure> {
        let mut request = Request::post(call.url)
            .header(CONTENT_TYPE, "application/json")
            .header(
                ACCEPT,
                if call.stream {
                    "text/event-stream"
                } else {
                    "application/json"
                },
            )
            .header(USER_AGENT, concat!("agentos/", env!("CARGO_PKG_VERSION")));
        if let Some(key) = call.bearer {
            request = request.header(AUTHORIZATION, format!("Bearer {key}"));
        }
        for (name, value) in call.headers {
            let (Ok(name), Ok(value)) = (
                HeaderName::try_from(name.as_str()),
                HeaderValue::try_from(value.as_str()),
            ) else {
                return Err(Failure::Other(ModelError::Protocol(format!(
                    "provider {}: header `{name}` is not a valid HTTP header",
                    call.provider
                ))));
            };
            request = request.header(name, value);
        }
        let request = request.body(Full::new(call.body.clone())).map_err(|e| {
            Failure::Other(ModelError::Protocol(format!(
                "could not build the request to {} ({}): {e}",
                call.provider, call.url
            )))
        })?;
        // The wait for the answer's head includes connecting, which the connector bounds
        // on its own (the connect timeout may be the longer of the two).
        let head_timeout = self.options.read_timeout + self.options.connect_timeout;
        let sent = tokio::time::timeout(head_timeout, self.client.request(request));
        match sent.await {
            Err(_) => Err(Failure::Other(ModelError::Timeout(format!(
                "{} did not start its answer within {} s (connect timeout plus read timeout; \
                 set {CONNECT_TIMEOUT_ENV} or {READ_TIMEOUT_ENV} to change them)",
                call.provider,
                seconds(head_timeout)
            )))),
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) if e.is_connect() && is_connect_timeout(&e) => {
                Err(Failure::Connect(ModelError::Timeout(format!(
                    "could not connect to {} at {} within {} s (connect timeout, TCP and TLS \
                     handshake; set {CONNECT_TIMEOUT_ENV} to change it)",
                    call.provider,
                    call.url,
                    seconds(self.options.connect_timeout)
                ))))
            }
            Ok(Err(e)) if e.is_connect() => Err(Failure::Connect(ModelError::Transport(format!(
                "could not connect to {} at {}: {}",
                call.provider,
                call.url,
                error_chain(&e)
            )))),
            Ok(Err(e)) => Err(Failure::Other(ModelError::Transport(format!(
                "request to {} at {} failed: {}",
                call.provider,
                call.url,
                error_chain(&e)
            )))),
        }
    }

    /// The provider's message for an error status, as one line ending in `(HTTP nnn)`.
    async fn error_message(&self, response: Response<Incoming>, provider: &str) -> String {
        let status = response.status();
        let body = read_limited(
            response.into_body(),
            MAX_ERROR_BODY,
            self.options.read_timeout,
        )
        .await
        .unwrap_or_default();
        let text = String::from_utf8_lossy(&body);
        let found = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| provider_message(&v))
            .unwrap_or_else(|| text.into_owned());
        let mut message = one_line(&found, MAX_ERROR_MESSAGE_CHARS);
        if message.is_empty() {
            message = format!(
                "{provider} answered {}",
                status.canonical_reason().unwrap_or("with an error")
            );
        }
        format!("{message} (HTTP {})", status.as_u16())
    }

    fn read_timeout_error(&self, provider: &str) -> ModelError {
        ModelError::Timeout(format!(
            "{provider} sent nothing for {} s (read timeout; set {READ_TIMEOUT_ENV} to change it)",
            seconds(self.options.read_timeout)
        ))
    }

    /// The body of a response as pieces, each read within the read timeout.
    pub fn body_stream(&self, response: Response<Incoming>, provider: &str) -> BodyStream {
        BodyStream {
            body: response.into_body(),
            timeout: self.options.read_timeout,
            sleep: Box::pin(tokio::time::sleep(self.options.read_timeout)),
            provider: provider.to_string(),
            done: false,
        }
    }

    /// The whole body of a response, at most `limit` bytes.
    pub async fn read_body(
        &self,
        response: Response<Incoming>,
        limit: usize,
        provider: &str,
    ) -> Result<Bytes, ModelError> {
        read_limited(response.into_body(), limit, self.options.read_timeout)
            .await
            .map_err(|e| match e {
                ReadError::Timeout => self.read_timeout_error(provider),
                ReadError::TooLong => ModelError::Protocol(format!(
                    "{provider} sent an answer longer than {limit} bytes"
                )),
                ReadError::Broken(e) => ModelError::Transport(format!(
                    "connection to {provider} broke while reading the answer: {e}"
                )),
            })
    }
}

/// The retry budget of one model call: [`Options::max_retries`] retries after the first
/// attempt, whatever failed. Every attempt of the call goes through it, so a provider
/// that looks inside an accepted answer before passing it on ([`Attempts::retry`]) spends
/// the same budget as failed statuses and connections.
pub struct Attempts<'t> {
    transport: &'t Transport,
    retries: u32,
}

impl Attempts<'_> {
    /// Sends `call`, retrying 429/5xx answers and failed connections while the budget
    /// lasts, and returns the first successful response.
    pub async fn send(&mut self, call: &Call<'_>) -> Result<Response<Incoming>, ModelError> {
        loop {
            let (error, retry_after) = match self.transport.send_once(call).await {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => {
                    let status = response.status();
                    let retry_after = retry_after(response.headers(), SystemTime::now());
                    let message = self.transport.error_message(response, call.provider).await;
                    let error = ModelError::Http {
                        status: status.as_u16(),
                        message,
                    };
                    if !retryable(status) {
                        return Err(error);
                    }
                    (error, retry_after)
                }
                Err(Failure::Connect(error)) => (error, None),
                Err(Failure::Other(error)) => return Err(error),
            };
            self.wait(error, retry_after).await?;
        }
    }

    /// A successful answer failed before any of it was passed on (an error event at the
    /// start of a stream). When the error is one a retry may cure (see [`is_retryable`])
    /// and the budget lasts, waits out the backoff and returns `Ok` for another attempt;
    /// otherwise returns the error.
    pub async fn retry(&mut self, error: ModelError) -> Result<(), ModelError> {
        if !is_retryable(&error) {
            return Err(error);
        }
        self.wait(error, None).await
    }

    async fn wait(
        &mut self,
        error: ModelError,
        retry_after: Option<Duration>,
    ) -> Result<(), ModelError> {
        if self.retries >= self.transport.options.max_retries {
            return Err(error);
        }
        let backoff = self.transport.backoff(self.retries);
        self.retries += 1;
        tokio::time::sleep(retry_after.map_or(backoff, |d| d.min(MAX_RETRY_AFTER))).await;
        Ok(())
    }
}

enum Failure {
    /// No connection could be made: another attempt may succeed.
    Connect(ModelError),
    Other(ModelError),
}

fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// Whether a provider's error may pass with another attempt: a rate limit or a failing or
/// overloaded server (429 and 5xx, as the provider's error type maps them).
pub fn is_retryable(error: &ModelError) -> bool {
    matches!(error, ModelError::Http { status, .. }
        if StatusCode::from_u16(*status).is_ok_and(retryable))
}

/// Connecting (TCP and TLS) took longer than the connect timeout.
#[derive(Debug)]
struct ConnectTimeout;

impl std::fmt::Display for ConnectTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connect timeout")
    }
}

impl std::error::Error for ConnectTimeout {}

fn is_connect_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if e.is::<ConnectTimeout>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// A connector whose connections, TLS handshake included, are made within `timeout`.
#[derive(Clone)]
struct TimedConnector<C> {
    inner: C,
    timeout: Duration,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<C> tower_service::Service<hyper::Uri> for TimedConnector<C>
where
    C: tower_service::Service<hyper::Uri>,
    C::Future: Send + 'static,
    C::Response: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<C::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: hyper::Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(connected) => connected.map_err(Into::into),
                Err(_) => Err(Box::new(ConnectTimeout) as BoxError),
            }
        })
    }
}

/// A duration in seconds as people write it: `10`, `0.5`.
fn seconds(duration: Duration) -> String {
    format!("{}", (duration.as_secs_f64() * 1000.0).round() / 1000.0)
}

enum ReadError {
    Timeout,
    TooLong,
    Broken(String),
}

async fn read_limited(
    mut body: Incoming,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, ReadError> {
    let mut out = Vec::new();
    loop {
        let frame = match tokio::time::timeout(timeout, body.frame()).await {
            Err(_) => return Err(ReadError::Timeout),
            Ok(None) => return Ok(Bytes::from(out)),
            Ok(Some(Err(e))) => return Err(ReadError::Broken(error_chain(&e))),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Err(ReadError::TooLong);
            }
            out.extend_from_slice(&data);
        }
    }
}

/// A response body read piece by piece, each piece within the read timeout.
pub struct BodyStream {
    body: Incoming,
    timeout: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
    provider: String,
    done: bool,
}

impl Stream for BodyStream {
    type Item = Result<Bytes, ModelError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Ready(None) => {
                    this.done = true;
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(ModelError::Transport(format!(
                        "connection to {} broke while reading the answer: {}",
                        this.provider,
                        error_chain(&e)
                    )))));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    let deadline = tokio::time::Instant::now() + this.timeout;
                    this.sleep.as_mut().reset(deadline);
                    if let Ok(data) = frame.into_data()
                        && !data.is_empty()
                    {
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
                Poll::Pending => {
                    ready!(this.sleep.as_mut().poll(cx));
                    this.done = true;
                    return Poll::Ready(Some(Err(ModelError::Timeout(format!(
                        "{} sent nothing for {} s (read timeout; set {READ_TIMEOUT_ENV} to change it)",
                        this.provider,
                        seconds(this.timeout)
                    )))));
                }
            }
        }
    }
}

/// What a provider does with the events of its stream.
pub trait SseHandler: Send + 'static {
    /// Handles one event, pushing the chunks it carries. `Ok(true)` ends the stream (the
    /// provider's end marker); `Err` ends it with that error.
    fn event(&mut self, event: SseEvent, out: &mut Vec<super::Chunk>) -> Result<bool, ModelError>;

    /// The stream ended without an end marker: whether that is an error.
    fn end(&mut self) -> Result<(), ModelError>;
}

/// A provider's event stream as chunks: the body is decoded as SSE and each event handed
/// to `handler`.
pub struct SseChunks<H> {
    body: BodyStream,
    decoder: SseDecoder,
    handler: H,
    events: Vec<SseEvent>,
    ready: std::collections::VecDeque<super::Chunk>,
    finished: bool,
    /// The error that ended the stream, delivered after the chunks before it.
    error: Option<ModelError>,
}

impl<H: SseHandler> SseChunks<H> {
    pub fn new(body: BodyStream, handler: H) -> Self {
        SseChunks {
            body,
            decoder: SseDecoder::new(),
            handler,
            events: Vec::new(),
            ready: std::collections::VecDeque::new(),
            finished: false,
            error: None,
        }
    }

    /// Hands decoded events to the handler; `Some` when the stream is over.
    fn handle_events(&mut self) -> Option<Result<(), ModelError>> {
        let mut out = Vec::new();
        let events = std::mem::take(&mut self.events);
        for event in events {
            match self.handler.event(event, &mut out) {
                Ok(false) => {}
                Ok(true) => {
                    self.ready.extend(out);
                    return Some(Ok(()));
                }
                Err(e) => {
                    self.ready.extend(out);
                    return Some(Err(e));
                }
            }
        }
        self.ready.extend(out);
        None
    }
}

impl<H: SseHandler + Unpin> Stream for SseChunks<H> {
    type Item = Result<super::Chunk, ModelError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(chunk) = this.ready.pop_front() {
                return Poll::Ready(Some(Ok(chunk)));
            }
            if this.finished {
                return Poll::Ready(this.error.take().map(Err));
            }
            let piece = ready!(Pin::new(&mut this.body).poll_next(cx));
            let outcome = match piece {
                Some(Ok(bytes)) => match this.decoder.push(&bytes, &mut this.events) {
                    Ok(()) => this.handle_events(),
                    Err(e) => Some(Err(ModelError::Protocol(e.to_string()))),
                },
                Some(Err(e)) => Some(Err(e)),
                None => {
                    this.events.extend(this.decoder.finish());
                    Some(this.handle_events().unwrap_or_else(|| this.handler.end()))
                }
            };
            if let Some(result) = outcome {
                this.finished = true;
                this.error = result.err();
            }
        }
    }
}

/// The human-readable message of a provider error body: `error.message` (OpenAI,
/// Anthropic and most compatible servers), a string `error`, FastAPI's `detail`, or a
/// top-level `message`.
pub fn provider_message(body: &Value) -> Option<String> {
    let text = |v: &Value| match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Null | Value::String(_) => None,
        other => Some(other.to_string()),
    };
    match body.get("error") {
        Some(Value::Object(error)) => {
            if let Some(m) = error.get("message").and_then(text) {
                return Some(m);
            }
        }
        Some(error @ Value::String(_)) => {
            if let Some(m) = text(error) {
                return Some(m);
            }
        }
        _ => {}
    }
    body.get("detail")
        .and_then(text)
        .or_else(|| body.get("message").and_then(text))
}

/// `text` on one line with whitespace runs collapsed, cut to `max` characters.
pub fn one_line(text: &str, max: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

/// How long a provider asks to wait: OpenAI's `retry-after-ms`, else `Retry-After` as
/// seconds or as an HTTP date (RFC 9110: IMF-fixdate, and the obsolete RFC 850 and asctime
/// forms), counted from `now`; a date in the past means at once. At most
/// [`MAX_RETRY_AFTER`].
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let seconds = |v: &str| v.parse::<f64>().ok().filter(|n| n.is_finite() && *n >= 0.0);
    let wait = text("retry-after-ms")
        .and_then(seconds)
        .map(|ms| ms / 1000.0)
        .or_else(|| text("retry-after").and_then(seconds))
        .map(|secs| Duration::from_secs_f64(secs.min(MAX_RETRY_AFTER.as_secs_f64())))
        .or_else(|| {
            let date = httpdate::parse_http_date(text("retry-after")?).ok()?;
            Some(date.duration_since(now).unwrap_or(Duration::ZERO))
        })?;
    Some(wait.min(MAX_RETRY_AFTER))
}

/// A duration in seconds from environment variable `name`, else `default`.
fn seconds_from_env(name: &str, default: Duration) -> Duration {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|secs| secs.is_finite() && *secs > 0.0)
        .map_or(default, |secs| Duration::from_secs_f64(secs.min(86_400.0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // 07:28:00
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers, now), None);
        headers.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(2)));
        headers.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_millis(250)));
        let mut long = HeaderMap::new();
        long.insert("retry-after", HeaderValue::from_static("3600"));
        assert_eq!(retry_after(&long, now), Some(MAX_RETRY_AFTER));

        // HTTP dates, counted from now: IMF-fixdate, and the obsolete RFC 850 and asctime
        // forms RFC 9110 asks recipients to accept.
        let date = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert("retry-after", HeaderValue::from_static(value));
            retry_after(&headers, now)
        };
        assert_eq!(
            date("Wed, 21 Oct 2015 07:28:05 GMT"),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            date("Wednesday, 21-Oct-15 07:28:07 GMT"),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            date("Wed Oct 21 07:28:09 2015"),
            Some(Duration::from_secs(9))
        );
        // In the past: at once. Far ahead: cut to the longest wait honoured.
        assert_eq!(date("Wed, 21 Oct 2015 07:27:00 GMT"), Some(Duration::ZERO));
        assert_eq!(date("Thu, 22 Oct 2015 07:28:00 GMT"), Some(MAX_RETRY_AFTER));
        // Neither a number nor a date: the backoff decides.
        assert_eq!(date("soon"), None);
        assert_eq!(date("Wed, 21 Oct 2015 25:00:00 GMT"), None);
        assert_eq!(date("-3"), None);
    }

    #[test]
    fn provider_messages_of_known_error_shapes() {
        let cases = [
            (
                json!({"error": {"message": "Incorrect API key"}}),
                Some("Incorrect API key"),
            ),
            (
                json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
                Some("Overloaded"),
            ),
            (json!({"error": "model not found"}), Some("model not found")),
            (json!({"detail": "Not Found"}), Some("Not Found")),
            (json!({"message": "bad"}), Some("bad")),
            (json!({"other": 1}), None),
        ];
        for (body, expected) in cases {
            assert_eq!(provider_message(&body).as_deref(), expected, "{body}");
        }
        assert_eq!(one_line("a\n  b\tc", 10), "a b c");
        assert_eq!(one_line("abcdef", 3), "abc…");
    }
}
