//! OpenAI-compatible chat completions (`POST {base_url}/chat/completions`), used for
//! OpenAI itself, Ollama and any `[providers.*]` table of kind `openai`.
//!
//! - Streaming answers are parsed chunk by chunk as they arrive; the first role-only chunk
//!   becomes an empty delta, and the final `usage` chunk (requested with
//!   `stream_options.include_usage`) becomes [`Usage`].
//! - Function calling: the request's tools are sent as `tools`; streamed
//!   `delta.tool_calls[]` pieces are assembled by their `index` (the first piece carries
//!   the id and name, later ones append to `function.arguments`) into
//!   [`ModelResponse::tool_calls`], ordered by index. Stored assistant tool calls and
//!   `tool` results go back to the provider in OpenAI's message shapes.
//! - 429 and 5xx answers and failed connections are retried up to [`MAX_RETRIES`] times
//!   with exponential backoff, honouring `Retry-After`; nothing is retried once part of
//!   the answer was delivered.
//! - Every call has its own `ureq::Agent`, shut down by the run's [`CancelToken`], so a
//!   cancel ends the call within milliseconds even while the provider is silent; the
//!   connect phase runs on a helper thread so a hanging connect cannot delay it either.
//! - Connecting may take [`CONNECT_TIMEOUT`]; each read may wait [`DEFAULT_READ_TIMEOUT`],
//!   or `AGENTOS_READ_TIMEOUT_SECS` seconds when that is set.

use std::io::{BufReader, Read};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use crate::cancel::CancelToken;
use crate::config::{ProviderKind, ResolvedModel};
use crate::model::sse::SseReader;
use crate::model::{Delta, Model, ModelError, ModelRequest, ModelResponse, ToolCall, Usage};
use crate::run::{Message, Role};

/// Environment variable overriding the per-read timeout, in seconds.
pub const READ_TIMEOUT_ENV: &str = "AGENTOS_READ_TIMEOUT_SECS";
/// How long a read may wait for the provider's next bytes.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(120);
/// How long establishing a connection (TCP and TLS) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Retries after the first attempt for 429, 5xx and connection failures.
pub const MAX_RETRIES: u32 = 3;

/// Backoff before the first retry; doubled for each further one.
const BASE_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// The longest `Retry-After` honoured; longer waits are cut to this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// How much of an error body is read to find the provider's message.
const MAX_ERROR_BODY: u64 = 64 * 1024;
/// The largest non-streaming answer accepted.
const MAX_RESPONSE_BODY: u64 = 64 * 1024 * 1024;
/// How long a provider message may be in an error before it is cut.
const MAX_ERROR_MESSAGE_CHARS: usize = 500;
/// How often a cancel-aware sleep checks its token.
const CANCEL_POLL: Duration = Duration::from_millis(10);

/// A chat-completions endpoint and model.
pub struct OpenAiModel {
    id: String,
    provider: String,
    kind: ProviderKind,
    url: String,
    api_key: Option<String>,
    headers: Vec<(String, String)>,
    connect_timeout: Duration,
    read_timeout: Duration,
    max_retries: u32,
    base_backoff: Duration,
}

impl OpenAiModel {
    pub fn new(resolved: &ResolvedModel) -> Self {
        let provider = &resolved.provider;
        OpenAiModel {
            id: resolved.model.clone(),
            provider: provider.display_name.clone(),
            kind: provider.kind,
            url: format!(
                "{}/chat/completions",
                provider.base_url.trim_end_matches('/')
            ),
            api_key: resolved.api_key.clone(),
            headers: provider
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            connect_timeout: CONNECT_TIMEOUT,
            read_timeout: read_timeout_from_env(),
            max_retries: MAX_RETRIES,
            base_backoff: BASE_BACKOFF,
        }
    }

    /// The JSON body of a chat-completions request.
    fn request_body(&self, request: &ModelRequest<'_>) -> Value {
        let mut body = Map::new();
        body.insert("model".into(), Value::String(self.id.clone()));
        body.insert(
            "messages".into(),
            Value::Array(request.messages.iter().map(wire_message).collect()),
        );
        body.insert("stream".into(), Value::Bool(request.stream));
        if request.stream {
            body.insert("stream_options".into(), json!({"include_usage": true}));
        }
        if let Some(t) = request.temperature {
            body.insert("temperature".into(), json!(t));
        }
        if let Some(n) = request.max_tokens {
            body.insert("max_tokens".into(), json!(n));
        }
        if let Some(format) = &request.response_format {
            body.insert("response_format".into(), format.clone());
        }
        if !request.tools.is_empty() {
            let tools = request
                .tools
                .iter()
                .map(|tool| {
                    json!({
                        "type": "function",
                        "function": {
                            "name": tool.name,
                            "description": tool.description,
                            "parameters": tool.parameters,
                        }
                    })
                })
                .collect();
            body.insert("tools".into(), Value::Array(tools));
        }
        Value::Object(body)
    }

    fn agent(&self) -> ureq::Agent {
        ureq::Agent::config_builder()
            .timeout_connect(Some(self.connect_timeout))
            .timeout_per_read(Some(self.read_timeout))
            .http_status_as_error(false)
            .user_agent(concat!("agentos/", env!("CARGO_PKG_VERSION")))
            // Chat chunks are small: 16 KiB buffers instead of ureq's 128 KiB keep the
            // memory of a run in flight low (a server holds one client per run).
            .input_buffer_size(16 * 1024)
            .output_buffer_size(16 * 1024)
            .build()
            .into()
    }

    /// Sends the request, retrying 429/5xx answers and failed connections, and returns
    /// the first successful response.
    fn send(
        &self,
        agent: &ureq::Agent,
        body: &Arc<Vec<u8>>,
        stream: bool,
        cancel: &CancelToken,
    ) -> Result<ureq::http::Response<ureq::Body>, ModelError> {
        let mut attempt = 0;
        loop {
            if cancel.is_cancelled() {
                return Err(ModelError::Cancelled);
            }
            let (error, retry_after) = match self.send_once(agent, body, stream, cancel)? {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = retry_after(response.headers());
                    let message = self.error_message(response, cancel)?;
                    let error = ModelError::Http { status, message };
                    if !(status == 429 || (500..600).contains(&status)) {
                        return Err(error);
                    }
                    (error, retry_after)
                }
                Err(_) if cancel.is_cancelled() => return Err(ModelError::Cancelled),
                Err(e) => {
                    let retryable = is_connect_failure(&e);
                    let error = self.transport_error(e);
                    if !retryable {
                        return Err(error);
                    }
                    (error, None)
                }
            };
            if attempt >= self.max_retries {
                return Err(error);
            }
            let backoff = self
                .base_backoff
                .saturating_mul(1 << attempt.min(16))
                .min(MAX_BACKOFF);
            let wait = retry_after.map_or(backoff, |d| d.min(MAX_RETRY_AFTER));
            attempt += 1;
            if !sleep_unless_cancelled(cancel, wait) {
                return Err(ModelError::Cancelled);
            }
        }
    }

    /// One attempt, up to the response headers. It runs on its own thread so that a
    /// cancel returns at once even while connecting or resolving the host name, which
    /// `Agent::shutdown` cannot interrupt; the abandoned thread ends when its connection
    /// fails or is refused by the shut-down agent.
    fn send_once(
        &self,
        agent: &ureq::Agent,
        body: &Arc<Vec<u8>>,
        stream: bool,
        cancel: &CancelToken,
    ) -> Result<Result<ureq::http::Response<ureq::Body>, ureq::Error>, ModelError> {
        let accept = if stream {
            "text/event-stream"
        } else {
            "application/json"
        };
        let mut headers = vec![
            ("Content-Type".to_string(), "application/json".to_string()),
            ("Accept".to_string(), accept.to_string()),
        ];
        if let Some(key) = &self.api_key {
            headers.push(("Authorization".into(), format!("Bearer {key}")));
        }
        headers.extend(self.headers.iter().cloned());
        let agent = agent.clone();
        let url = self.url.clone();
        let body = Arc::clone(body);
        let (tx, rx) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("agentos-http".into())
            .spawn(move || {
                let mut builder = agent.post(&url);
                for (name, value) in &headers {
                    builder = builder.header(name.as_str(), value.as_str());
                }
                // The receiver is gone when the call was cancelled meanwhile.
                let _ = tx.send(builder.send(body.as_slice()));
            })
            .map_err(|e| ModelError::Transport(format!("could not start a request thread: {e}")))?;
        loop {
            match rx.recv_timeout(CANCEL_POLL) {
                Ok(result) => return Ok(result),
                Err(mpsc::RecvTimeoutError::Timeout) if cancel.is_cancelled() => {
                    return Err(ModelError::Cancelled);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(ModelError::Transport(format!(
                        "the request to {} ended without an answer",
                        self.provider
                    )));
                }
            }
        }
    }

    /// The provider's message for an error status, as one line ending in `(HTTP nnn)`.
    fn error_message(
        &self,
        response: ureq::http::Response<ureq::Body>,
        cancel: &CancelToken,
    ) -> Result<String, ModelError> {
        let status = response.status();
        let mut raw = Vec::new();
        let read = response
            .into_body()
            .into_reader()
            .take(MAX_ERROR_BODY)
            .read_to_end(&mut raw);
        if read.is_err() && cancel.is_cancelled() {
            return Err(ModelError::Cancelled);
        }
        let text = String::from_utf8_lossy(&raw);
        let found = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| provider_message(&v))
            .unwrap_or_else(|| text.into_owned());
        let mut message = one_line(&found, MAX_ERROR_MESSAGE_CHARS);
        if message.is_empty() {
            message = format!(
                "{} answered {}",
                self.provider,
                status.canonical_reason().unwrap_or("with an error")
            );
        }
        Ok(format!("{message} (HTTP {})", status.as_u16()))
    }

    fn transport_error(&self, error: ureq::Error) -> ModelError {
        match error {
            ureq::Error::Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve) => {
                ModelError::Timeout(format!(
                    "could not connect to {} at {} within {} s",
                    self.provider,
                    self.url,
                    self.connect_timeout.as_secs()
                ))
            }
            ureq::Error::Timeout(_) => self.read_timeout_error(),
            ureq::Error::Io(e) if is_timeout(&e) => self.read_timeout_error(),
            other => ModelError::Transport(format!(
                "request to {} at {} failed: {other}",
                self.provider, self.url
            )),
        }
    }

    fn read_timeout_error(&self) -> ModelError {
        ModelError::Timeout(format!(
            "{} sent nothing for {} s (read timeout; set {READ_TIMEOUT_ENV} to change it)",
            self.provider,
            self.read_timeout.as_secs()
        ))
    }

    /// Classifies an error while reading the answer body.
    fn read_error(&self, error: std::io::Error, cancel: &CancelToken) -> ModelError {
        if cancel.is_cancelled() {
            return ModelError::Cancelled;
        }
        if is_timeout(&error) {
            return self.read_timeout_error();
        }
        ModelError::Transport(format!(
            "connection to {} broke while reading the answer: {error}",
            self.provider
        ))
    }

    fn read_stream(
        &self,
        response: ureq::http::Response<ureq::Body>,
        cancel: &CancelToken,
        on_delta: &mut dyn FnMut(&Delta),
    ) -> Result<ModelResponse, ModelError> {
        let reader = BufReader::new(response.into_body().into_reader());
        let mut events = SseReader::new(reader);
        let mut state = StreamState::default();
        loop {
            if cancel.is_cancelled() {
                return Err(ModelError::Cancelled);
            }
            let event = match events.next_event() {
                Ok(Some(event)) => event,
                Ok(None) => break,
                Err(e) => return Err(self.read_error(e, cancel)),
            };
            if cancel.is_cancelled() {
                return Err(ModelError::Cancelled);
            }
            if event.is_done() {
                break;
            }
            let chunk: Value = match serde_json::from_str(&event.data) {
                Ok(chunk) => chunk,
                Err(_) if event.event.as_deref() == Some("error") => {
                    return Err(ModelError::Protocol(format!(
                        "{} reported an error in the stream: {}",
                        self.provider,
                        one_line(&event.data, MAX_ERROR_MESSAGE_CHARS)
                    )));
                }
                Err(e) => {
                    return Err(ModelError::Protocol(format!(
                        "{} sent a stream chunk that is not JSON ({e}): {}",
                        self.provider,
                        one_line(&event.data, 200)
                    )));
                }
            };
            if let Some(error) = self.stream_error(&chunk) {
                return Err(error);
            }
            state.apply(&chunk, on_delta);
        }
        if !state.seen_chunk {
            return Err(ModelError::Protocol(format!(
                "{} ended the stream without sending any answer",
                self.provider
            )));
        }
        Ok(state.into_response())
    }

    /// An `error` object sent inside a stream.
    fn stream_error(&self, chunk: &Value) -> Option<ModelError> {
        let error = chunk.get("error").filter(|e| !e.is_null())?;
        let message = provider_message(chunk).unwrap_or_else(|| error.to_string());
        let message = one_line(&message, MAX_ERROR_MESSAGE_CHARS);
        let status = error
            .get("code")
            .or_else(|| error.get("status"))
            .and_then(|c| {
                c.as_u64()
                    .or_else(|| c.as_str().and_then(|s| s.parse().ok()))
            })
            .filter(|c| (400..600).contains(c));
        Some(match status {
            Some(status) => ModelError::Http {
                status: status as u16,
                message: format!("{message} (HTTP {status})"),
            },
            None => ModelError::Protocol(format!(
                "{} reported an error in the stream: {message}",
                self.provider
            )),
        })
    }

    fn read_whole(
        &self,
        response: ureq::http::Response<ureq::Body>,
        cancel: &CancelToken,
        on_delta: &mut dyn FnMut(&Delta),
    ) -> Result<ModelResponse, ModelError> {
        let mut raw = Vec::new();
        response
            .into_body()
            .into_reader()
            .take(MAX_RESPONSE_BODY)
            .read_to_end(&mut raw)
            .map_err(|e| self.read_error(e, cancel))?;
        if cancel.is_cancelled() {
            return Err(ModelError::Cancelled);
        }
        let value: Value = serde_json::from_slice(&raw).map_err(|e| {
            ModelError::Protocol(format!(
                "{} sent an answer that is not JSON ({e}): {}",
                self.provider,
                one_line(&String::from_utf8_lossy(&raw), 200)
            ))
        })?;
        if let Some(error) = self.stream_error(&value) {
            return Err(error);
        }
        let choice = value.get("choices").and_then(|c| c.get(0)).ok_or_else(|| {
            ModelError::Protocol(format!("{} sent an answer without choices", self.provider))
        })?;
        let message = choice.get("message");
        let content = message
            .and_then(|m| m.get("content"))
            .and_then(Value::as_str)
            .or_else(|| {
                message
                    .and_then(|m| m.get("refusal"))
                    .and_then(Value::as_str)
            })
            .unwrap_or("")
            .to_string();
        let tool_calls = message
            .and_then(|m| m.get("tool_calls"))
            .and_then(Value::as_array)
            .map(|calls| {
                let mut assembler = ToolCallAssembler::default();
                for (position, call) in calls.iter().enumerate() {
                    assembler.merge(position as u64, call);
                }
                assembler.finish()
            })
            .unwrap_or_default();
        let provider_data = provider_data_of(&value, Map::new());
        on_delta(&Delta {
            content: content.clone(),
            provider_data: provider_data.clone(),
        });
        Ok(ModelResponse {
            content,
            provider_data,
            usage: value.get("usage").and_then(usage_of),
            finish_reason: choice
                .get("finish_reason")
                .and_then(Value::as_str)
                .map(str::to_string),
            tool_calls,
        })
    }
}

impl Model for OpenAiModel {
    fn id(&self) -> &str {
        &self.id
    }

    fn provider(&self) -> &str {
        &self.provider
    }

    fn invoke(
        &self,
        request: &ModelRequest<'_>,
        cancel: &CancelToken,
        on_delta: &mut dyn FnMut(&Delta),
    ) -> Result<ModelResponse, ModelError> {
        if self.kind == ProviderKind::Anthropic {
            return Err(ModelError::Protocol(format!(
                "provider {}: the anthropic provider kind is not supported yet",
                self.provider
            )));
        }
        if cancel.is_cancelled() {
            return Err(ModelError::Cancelled);
        }
        let body = serde_json::to_vec(&self.request_body(request))
            .map_err(|e| ModelError::Protocol(format!("could not encode the request: {e}")))?;
        let body = Arc::new(body);
        let agent = self.agent();
        let hook_agent = agent.clone();
        let _abort_on_cancel = cancel.on_cancel(move || hook_agent.shutdown());

        let response = self.send(&agent, &body, request.stream, cancel)?;
        // Some OpenAI-compatible servers ignore `stream` and answer with one JSON object.
        let is_json = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("application/json"));
        let result = if request.stream && !is_json {
            self.read_stream(response, cancel, on_delta)
        } else {
            self.read_whole(response, cancel, on_delta)
        };
        match result {
            Ok(_) if cancel.is_cancelled() => Err(ModelError::Cancelled),
            other => other,
        }
    }
}

/// What a stream has delivered so far.
#[derive(Default)]
struct StreamState {
    content: String,
    provider_data: Map<String, Value>,
    usage: Option<Usage>,
    finish_reason: Option<String>,
    tool_calls: ToolCallAssembler,
    /// Some delta (possibly the empty role-only one) was handed on.
    delivered: bool,
    seen_chunk: bool,
}

impl StreamState {
    fn apply(&mut self, chunk: &Value, on_delta: &mut dyn FnMut(&Delta)) {
        self.seen_chunk = true;
        for key in ["id", "system_fingerprint"] {
            if let Some(value) = chunk.get(key).filter(|v| !v.is_null()) {
                self.provider_data.insert(key.into(), value.clone());
            }
        }
        if let Some(usage) = chunk.get("usage").and_then(usage_of) {
            self.usage = Some(usage);
        }
        let Some(choice) = chunk.get("choices").and_then(|c| c.get(0)) else {
            return;
        };
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(reason.to_string());
        }
        let Some(delta) = choice.get("delta") else {
            return;
        };
        if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
            for (position, call) in calls.iter().enumerate() {
                self.tool_calls.apply(call, position);
            }
        }
        let text = delta.get("content").and_then(Value::as_str).unwrap_or("");
        if !text.is_empty() || (!self.delivered && delta.get("role").is_some()) {
            self.content.push_str(text);
            self.delivered = true;
            on_delta(&Delta {
                content: text.to_string(),
                provider_data: self.provider_data(),
            });
        }
    }

    fn provider_data(&self) -> Option<Value> {
        (!self.provider_data.is_empty()).then(|| Value::Object(self.provider_data.clone()))
    }

    fn into_response(self) -> ModelResponse {
        ModelResponse {
            provider_data: self.provider_data(),
            content: self.content,
            usage: self.usage,
            finish_reason: self.finish_reason,
            tool_calls: self.tool_calls.finish(),
        }
    }
}

/// Tool calls assembled from pieces: streamed `delta.tool_calls[]` entries, or the
/// complete entries of a non-streaming `message.tool_calls`.
#[derive(Default)]
struct ToolCallAssembler {
    /// `(index, call)` in order of first appearance.
    calls: Vec<(u64, ToolCall)>,
}

impl ToolCallAssembler {
    /// Adds one streamed entry. `position` is its place in its array, used as the index
    /// by providers that leave `index` out; such an entry with a new id starts a new call,
    /// one without an id continues the latest call.
    fn apply(&mut self, entry: &Value, position: usize) {
        let id = entry
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty());
        let index = match entry.get("index").and_then(Value::as_u64) {
            Some(index) => index,
            None => match id {
                Some(id) => self
                    .calls
                    .iter()
                    .find(|(_, call)| call.id == id)
                    .map_or(self.next_free_index(position as u64), |(index, _)| *index),
                None => self
                    .calls
                    .last()
                    .map_or(position as u64, |(index, _)| *index),
            },
        };
        self.merge(index, entry);
    }

    /// Adds an entry's id, name and argument text to the call at `index`.
    fn merge(&mut self, index: u64, entry: &Value) {
        let slot = match self.calls.iter().position(|(i, _)| *i == index) {
            Some(slot) => slot,
            None => {
                self.calls.push((index, ToolCall::default()));
                self.calls.len() - 1
            }
        };
        let call = &mut self.calls[slot].1;
        if let Some(id) = entry
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
        {
            call.id = id.to_string();
        }
        let function = entry.get("function");
        // The name comes whole, on the first piece (some providers repeat it on each).
        if let Some(name) = function
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            && call.name.is_empty()
        {
            call.name = name.to_string();
        }
        match function.and_then(|f| f.get("arguments")) {
            Some(Value::String(piece)) => call.arguments.push_str(piece),
            // Some servers send the arguments as an object rather than JSON text.
            Some(value @ (Value::Object(_) | Value::Array(_))) => {
                call.arguments = value.to_string();
            }
            _ => {}
        }
    }

    /// The smallest index not in use that is at least `from`.
    fn next_free_index(&self, from: u64) -> u64 {
        let mut index = from;
        while self.calls.iter().any(|(i, _)| *i == index) {
            index += 1;
        }
        index
    }

    /// The calls ordered by index. A call without an id gets `call_<index>`, and empty
    /// arguments become `{}`, so every call can be answered and parsed.
    fn finish(mut self) -> Vec<ToolCall> {
        self.calls.sort_by_key(|(index, _)| *index);
        self.calls
            .into_iter()
            .map(|(index, mut call)| {
                if call.id.is_empty() {
                    call.id = format!("call_{index}");
                }
                if call.arguments.trim().is_empty() {
                    call.arguments = "{}".into();
                }
                call
            })
            .collect()
    }
}

/// One message in OpenAI's shape.
fn wire_message(message: &Message) -> Value {
    let mut out = Map::new();
    out.insert("role".into(), Value::String(message.role.as_str().into()));
    // Only assistant turns carry calls, and OpenAI refuses an empty `tool_calls` list.
    let calls = message
        .tool_calls
        .as_deref()
        .filter(|c| message.role == Role::Assistant && !c.is_empty());
    let content = match message.content.as_deref() {
        // An assistant turn that only calls tools has no content.
        None | Some("") if calls.is_some() => Value::Null,
        Some(text) => Value::String(text.to_string()),
        None => Value::String(String::new()),
    };
    out.insert("content".into(), content);
    if let Some(calls) = calls {
        out.insert(
            "tool_calls".into(),
            Value::Array(calls.iter().map(wire_tool_call).collect()),
        );
    }
    if message.role == Role::Tool {
        if let Some(id) = &message.tool_call_id {
            out.insert("tool_call_id".into(), Value::String(id.clone()));
        }
    }
    Value::Object(out)
}

/// A stored tool call in OpenAI's `{id, type, function: {name, arguments}}` shape. Calls
/// stored flat (`tool_call_id`/`tool_name`/`tool_args`) are converted.
fn wire_tool_call(call: &Value) -> Value {
    if let Some(function) = call.get("function") {
        let mut call = call.clone();
        // OpenAI wants the arguments as JSON text, never as an object.
        match function.get("arguments") {
            Some(Value::String(_)) => {}
            Some(Value::Null) | None => call["function"]["arguments"] = "{}".into(),
            Some(other) => call["function"]["arguments"] = other.to_string().into(),
        }
        return call;
    }
    let field = |keys: &[&str]| keys.iter().find_map(|k| call.get(*k)).cloned();
    let arguments = match field(&["tool_args", "arguments"]) {
        Some(Value::String(s)) => s,
        Some(other) => other.to_string(),
        None => "{}".into(),
    };
    json!({
        "id": field(&["tool_call_id", "id"]).unwrap_or(Value::Null),
        "type": "function",
        "function": {
            "name": field(&["tool_name", "name"]).unwrap_or(Value::Null),
            "arguments": arguments,
        }
    })
}

/// `{"id", "system_fingerprint"}` of an answer, leaving out missing keys.
fn provider_data_of(value: &Value, mut data: Map<String, Value>) -> Option<Value> {
    for key in ["id", "system_fingerprint"] {
        if let Some(v) = value.get(key).filter(|v| !v.is_null()) {
            data.insert(key.into(), v.clone());
        }
    }
    (!data.is_empty()).then_some(Value::Object(data))
}

/// Token counts of an OpenAI `usage` object.
fn usage_of(usage: &Value) -> Option<Usage> {
    if !usage.is_object() {
        return None;
    }
    let count = |path: &str| usage.pointer(path).and_then(Value::as_u64).unwrap_or(0);
    let input_tokens = count("/prompt_tokens");
    let output_tokens = count("/completion_tokens");
    let total_tokens = usage
        .get("total_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(input_tokens + output_tokens);
    Some(Usage {
        input_tokens,
        output_tokens,
        total_tokens,
        reasoning_tokens: count("/completion_tokens_details/reasoning_tokens"),
        cache_read_tokens: count("/prompt_tokens_details/cached_tokens"),
        cache_write_tokens: 0,
    })
}

/// The human-readable message of a provider error body: OpenAI's `error.message`, a
/// string `error`, FastAPI's `detail`, or a top-level `message`.
fn provider_message(body: &Value) -> Option<String> {
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
fn one_line(text: &str, max: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

/// `Retry-After` (seconds) or OpenAI's `retry-after-ms`. HTTP-date values are ignored.
fn retry_after(headers: &ureq::http::HeaderMap) -> Option<Duration> {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|n| n.is_finite() && *n >= 0.0)
    };
    number("retry-after-ms")
        .map(|ms| ms / 1000.0)
        .or_else(|| number("retry-after"))
        .map(|secs| Duration::from_secs_f64(secs.min(MAX_RETRY_AFTER.as_secs_f64())))
}

/// A failure before any answer arrived that another attempt may fix.
fn is_connect_failure(error: &ureq::Error) -> bool {
    use std::io::ErrorKind;
    match error {
        ureq::Error::ConnectionFailed | ureq::Error::Timeout(ureq::Timeout::Connect) => true,
        ureq::Error::Io(e) => matches!(
            e.kind(),
            ErrorKind::ConnectionRefused
                | ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::NotConnected
                | ErrorKind::BrokenPipe
                | ErrorKind::UnexpectedEof
        ),
        _ => false,
    }
}

fn is_timeout(error: &std::io::Error) -> bool {
    if let Some(ureq::Error::Timeout(_)) = error.get_ref().and_then(|e| e.downcast_ref()) {
        return true;
    }
    matches!(
        error.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    )
}

fn read_timeout_from_env() -> Duration {
    std::env::var(READ_TIMEOUT_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|secs| secs.is_finite() && *secs > 0.0)
        .map_or(DEFAULT_READ_TIMEOUT, |secs| {
            Duration::from_secs_f64(secs.min(86_400.0))
        })
}

/// Sleeps for `duration` unless `cancel` fires first. Returns false when cancelled.
pub(crate) fn sleep_unless_cancelled(cancel: &CancelToken, duration: Duration) -> bool {
    let deadline = Instant::now() + duration;
    loop {
        if cancel.is_cancelled() {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        std::thread::sleep((deadline - now).min(CANCEL_POLL));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProviderDef;
    use crate::tools::ToolSpec;
    use std::collections::BTreeMap;
    use std::io::{BufRead, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::Mutex;

    /// One canned answer of the fake server.
    #[derive(Clone)]
    enum Reply {
        /// A complete response: status, extra headers, body.
        Full(u16, Vec<(&'static str, String)>, String),
        /// A chunked `text/event-stream` response, one HTTP chunk per string.
        Sse(Vec<String>),
        /// Headers, one event, then silence until the client goes away.
        Stall,
    }

    /// A recorded request: head lines and body.
    #[derive(Clone, Debug)]
    struct Seen {
        head: String,
        body: Value,
    }

    struct FakeServer {
        base_url: String,
        requests: Arc<Mutex<Vec<Seen>>>,
    }

    impl FakeServer {
        /// Serves `replies` in order, one per connection (the last one repeats).
        fn start(replies: Vec<Reply>) -> FakeServer {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let base_url = format!("http://{}/v1/", listener.local_addr().unwrap());
            let requests = Arc::new(Mutex::new(Vec::new()));
            let seen = requests.clone();
            std::thread::spawn(move || {
                for (n, stream) in listener.incoming().enumerate() {
                    let Ok(stream) = stream else { return };
                    let Some(reply) = replies.get(n).or(replies.last()).cloned() else {
                        return;
                    };
                    let seen = seen.clone();
                    std::thread::spawn(move || serve(stream, reply, &seen));
                }
            });
            FakeServer { base_url, requests }
        }

        fn model(&self) -> OpenAiModel {
            let mut headers = BTreeMap::new();
            headers.insert("X-Extra".to_string(), "yes".to_string());
            let mut model = OpenAiModel::new(&ResolvedModel {
                provider: ProviderDef {
                    name: "fake".into(),
                    kind: ProviderKind::OpenAi,
                    base_url: self.base_url.clone(),
                    api_key_env: Some("FAKE_KEY".into()),
                    headers,
                    display_name: "FakeAI".into(),
                },
                model: "fake-model".into(),
                api_key: Some("sk-test".into()),
                missing_key: None,
            });
            model.base_backoff = Duration::from_millis(5);
            model.read_timeout = Duration::from_secs(30);
            model
        }

        fn requests(&self) -> Vec<Seen> {
            self.requests.lock().unwrap().clone()
        }
    }

    fn serve(stream: TcpStream, reply: Reply, seen: &Mutex<Vec<Seen>>) {
        let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
        let mut head = String::new();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            head.push_str(&line);
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        seen.lock().unwrap().push(Seen {
            head,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        });
        let mut out = stream;
        match reply {
            Reply::Full(status, headers, body) => {
                let mut text = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n",
                    body.len()
                );
                for (name, value) in headers {
                    text.push_str(&format!("{name}: {value}\r\n"));
                }
                text.push_str("\r\n");
                text.push_str(&body);
                let _ = out.write_all(text.as_bytes());
            }
            Reply::Sse(chunks) => {
                let _ = out.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                      Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
                );
                for chunk in chunks {
                    let _ = write!(out, "{:x}\r\n{chunk}\r\n", chunk.len());
                    let _ = out.flush();
                    std::thread::sleep(Duration::from_millis(5));
                }
                let _ = out.write_all(b"0\r\n\r\n");
            }
            Reply::Stall => {
                let _ = out.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                      Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
                );
                let first =
                    "data: {\"id\":\"c1\",\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n";
                let _ = write!(out, "{:x}\r\n{first}\r\n", first.len());
                let _ = out.flush();
                // Hold the connection until the client closes it.
                let mut sink = [0u8; 64];
                let _ = reader.read(&mut sink);
                std::thread::sleep(Duration::from_secs(5));
            }
        }
    }

    fn sse(value: Value) -> String {
        format!("data: {value}\n\n")
    }

    fn chunk(delta: Value, finish: Value) -> String {
        sse(json!({
            "id": "chatcmpl-1", "object": "chat.completion.chunk", "system_fingerprint": "fp_x",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
        }))
    }

    fn messages() -> Vec<Message> {
        vec![
            Message {
                role: Role::System,
                content: Some("Be brief.".into()),
                ..Message::default()
            },
            Message {
                role: Role::User,
                content: Some("Hi".into()),
                ..Message::default()
            },
        ]
    }

    fn request(messages: &[Message], stream: bool) -> ModelRequest<'_> {
        ModelRequest {
            messages,
            temperature: Some(0.5),
            max_tokens: Some(100),
            response_format: None,
            stream,
            tools: &[],
        }
    }

    fn invoke(
        model: &OpenAiModel,
        req: &ModelRequest<'_>,
    ) -> (Result<ModelResponse, ModelError>, Vec<Delta>) {
        let mut deltas = Vec::new();
        let result = model.invoke(req, &CancelToken::new(), &mut |d| deltas.push(d.clone()));
        (result, deltas)
    }

    #[test]
    fn streams_text_and_usage() {
        let server = FakeServer::start(vec![Reply::Sse(vec![
            chunk(json!({"role": "assistant", "content": ""}), Value::Null),
            chunk(json!({"content": "Hello"}), Value::Null),
            // Two events in one network chunk, and one event split over two.
            chunk(json!({"content": ", "}), Value::Null)
                + &chunk(json!({"content": "wor"}), Value::Null),
            "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"delta\":".into(),
            "{\"content\":\"ld\"},\"finish_reason\":null}]}\r\n\r\n".into(),
            chunk(json!({}), json!("stop")),
            sse(json!({
                "id": "chatcmpl-1", "choices": [],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                          "completion_tokens_details": {"reasoning_tokens": 2},
                          "prompt_tokens_details": {"cached_tokens": 3}}
            })),
            "data: [DONE]\n\n".into(),
        ])]);
        let msgs = messages();
        let (result, deltas) = invoke(&server.model(), &request(&msgs, true));
        let response = result.unwrap();
        let texts: Vec<&str> = deltas.iter().map(|d| d.content.as_str()).collect();
        assert_eq!(texts, ["", "Hello", ", ", "wor", "ld"]);
        let data = json!({"id": "chatcmpl-1", "system_fingerprint": "fp_x"});
        assert_eq!(deltas[0].provider_data, Some(data.clone()));
        assert_eq!(response.content, "Hello, world");
        assert_eq!(response.provider_data, Some(data));
        assert_eq!(response.finish_reason.as_deref(), Some("stop"));
        assert_eq!(
            response.usage,
            Some(Usage {
                input_tokens: 10,
                output_tokens: 5,
                total_tokens: 15,
                reasoning_tokens: 2,
                cache_read_tokens: 3,
                cache_write_tokens: 0,
            })
        );

        let seen = server.requests();
        assert_eq!(seen.len(), 1);
        let head = seen[0].head.to_ascii_lowercase();
        assert!(head.starts_with("post /v1/chat/completions "), "{head}");
        assert!(head.contains("authorization: bearer sk-test"), "{head}");
        assert!(head.contains("x-extra: yes"), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        let body = &seen[0].body;
        assert_eq!(body["model"], "fake-model");
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"], json!({"include_usage": true}));
        assert_eq!(body["temperature"], 0.5);
        assert_eq!(body["max_tokens"], 100);
        assert_eq!(
            body["messages"],
            json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
        );
        assert!(body.get("response_format").is_none());
    }

    #[test]
    fn non_streaming_answer_and_response_format() {
        let server = FakeServer::start(vec![Reply::Full(
            200,
            vec![],
            json!({
                "id": "chatcmpl-9", "object": "chat.completion",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "{\"a\":1}"},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
            })
            .to_string(),
        )]);
        let msgs = messages();
        let mut req = request(&msgs, false);
        let format = json!({"type": "json_schema", "json_schema": {"name": "A", "schema": {"type": "object"}}});
        req.response_format = Some(format.clone());
        req.temperature = None;
        let (result, deltas) = invoke(&server.model(), &req);
        let response = result.unwrap();
        assert_eq!(response.content, "{\"a\":1}");
        assert_eq!(deltas.len(), 1);
        assert_eq!(deltas[0].content, response.content);
        // A missing system_fingerprint is left out.
        assert_eq!(response.provider_data, Some(json!({"id": "chatcmpl-9"})));
        assert_eq!(response.usage.unwrap().total_tokens, 10);
        let body = &server.requests()[0].body;
        assert_eq!(body["stream"], false);
        assert!(body.get("stream_options").is_none());
        assert!(body.get("temperature").is_none());
        assert_eq!(body["response_format"], format);
    }

    #[test]
    fn stream_options_and_response_format_are_sent_together() {
        let server = FakeServer::start(vec![Reply::Sse(vec![
            chunk(json!({"content": "{}"}), json!("stop")),
            "data: [DONE]\n\n".into(),
        ])]);
        let msgs = messages();
        let mut req = request(&msgs, true);
        req.response_format = Some(json!({"type": "json_object"}));
        let response = invoke(&server.model(), &req).0.unwrap();
        assert_eq!(response.content, "{}");
        let body = &server.requests()[0].body;
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["response_format"], json!({"type": "json_object"}));
    }

    fn weather_tools() -> Vec<ToolSpec> {
        ["get_weather", "get_time"]
            .iter()
            .map(|name| ToolSpec {
                name: name.to_string(),
                description: format!("Does {name}."),
                parameters: json!({"type": "object", "properties": {"city": {"type": "string"}},
                                   "required": ["city"]}),
                requires_confirmation: false,
            })
            .collect()
    }

    fn tool_delta(calls: Value) -> String {
        chunk(json!({ "tool_calls": calls }), Value::Null)
    }

    #[test]
    fn streamed_parallel_tool_calls_are_assembled_by_index() {
        let server = FakeServer::start(vec![Reply::Sse(vec![
            chunk(json!({"role": "assistant", "content": null}), Value::Null),
            tool_delta(json!([{"index": 0, "id": "call_a", "type": "function",
                               "function": {"name": "get_weather", "arguments": ""}}])),
            tool_delta(json!([{"index": 0, "function": {"arguments": "{\"ci"}}])),
            tool_delta(json!([{"index": 1, "id": "call_b", "type": "function",
                               "function": {"name": "get_time", "arguments": ""}}])),
            tool_delta(json!([{"index": 1, "function": {"arguments": "{\"city\":"}}])),
            // Two pieces in one delta, one per call.
            tool_delta(
                json!([{"index": 0, "function": {"arguments": "ty\":\"Berlin\"}"}},
                              {"index": 1, "function": {"arguments": "\"Oslo\"}"}}]),
            ),
            chunk(json!({}), json!("tool_calls")),
            sse(json!({"id": "chatcmpl-1", "choices": [],
                       "usage": {"prompt_tokens": 20, "completion_tokens": 8}})),
            "data: [DONE]\n\n".into(),
        ])]);
        let msgs = messages();
        let tools = weather_tools();
        let mut req = request(&msgs, true);
        req.tools = &tools;
        let (result, deltas) = invoke(&server.model(), &req);
        let response = result.unwrap();
        assert_eq!(
            response.tool_calls,
            [
                ToolCall {
                    id: "call_a".into(),
                    name: "get_weather".into(),
                    arguments: "{\"city\":\"Berlin\"}".into(),
                },
                ToolCall {
                    id: "call_b".into(),
                    name: "get_time".into(),
                    arguments: "{\"city\":\"Oslo\"}".into(),
                },
            ]
        );
        assert_eq!(response.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(response.content, "");
        assert_eq!(response.usage.unwrap().total_tokens, 28);
        // Only the role chunk becomes a text delta.
        assert_eq!(deltas.len(), 1);
        assert_eq!(deltas[0].content, "");

        let body = &server.requests()[0].body;
        assert_eq!(
            body["tools"],
            json!([
                {"type": "function", "function": {"name": "get_weather",
                 "description": "Does get_weather.", "parameters": tools[0].parameters}},
                {"type": "function", "function": {"name": "get_time",
                 "description": "Does get_time.", "parameters": tools[1].parameters}},
            ])
        );
    }

    #[test]
    fn streamed_calls_without_index_or_id_still_assemble() {
        let server = FakeServer::start(vec![Reply::Sse(vec![
            // Whole calls without `index`, told apart by their ids.
            tool_delta(json!([{"id": "c1", "function": {"name": "f", "arguments": "{\"a\":1}"}}])),
            tool_delta(json!([{"id": "c2", "function": {"name": "g", "arguments": {"b": 2}}}])),
            // A call without id or arguments, and a repeated name.
            tool_delta(json!([{"index": 5, "function": {"name": "h"}}])),
            tool_delta(json!([{"index": 5, "function": {"name": "h"}}])),
            chunk(json!({}), json!("tool_calls")),
            "data: [DONE]\n\n".into(),
        ])]);
        let msgs = messages();
        let tools = weather_tools();
        let mut req = request(&msgs, true);
        req.tools = &tools;
        let calls = invoke(&server.model(), &req).0.unwrap().tool_calls;
        let got: Vec<(&str, &str, &str)> = calls
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("c1", "f", "{\"a\":1}"),
                ("c2", "g", "{\"b\":2}"),
                ("call_5", "h", "{}")
            ]
        );
    }

    #[test]
    fn non_streaming_tool_calls() {
        let server = FakeServer::start(vec![Reply::Full(
            200,
            vec![],
            json!({
                "id": "chatcmpl-7", "object": "chat.completion",
                "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                    "role": "assistant", "content": null, "refusal": null,
                    "tool_calls": [
                        {"id": "call_x", "type": "function",
                         "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                        {"id": "call_y", "type": "function",
                         "function": {"name": "get_time", "arguments": "{}"}}
                    ]}}],
                "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
            })
            .to_string(),
        )]);
        let msgs = messages();
        let tools = weather_tools();
        let mut req = request(&msgs, false);
        req.tools = &tools;
        let (result, deltas) = invoke(&server.model(), &req);
        let response = result.unwrap();
        assert_eq!(response.content, "");
        assert_eq!(response.finish_reason.as_deref(), Some("tool_calls"));
        let names: Vec<&str> = response
            .tool_calls
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, ["get_weather", "get_time"]);
        assert_eq!(response.tool_calls[0].id, "call_x");
        assert_eq!(response.tool_calls[0].arguments, "{\"city\":\"Paris\"}");
        assert_eq!(deltas.len(), 1);
        assert_eq!(
            server.requests()[0].body["tools"].as_array().unwrap().len(),
            2
        );
    }

    #[test]
    fn no_tools_key_without_tools() {
        let server = FakeServer::start(vec![Reply::Sse(vec![
            chunk(json!({"content": "ok"}), json!("stop")),
            "data: [DONE]\n\n".into(),
        ])]);
        let msgs = messages();
        let response = invoke(&server.model(), &request(&msgs, true)).0.unwrap();
        assert!(response.tool_calls.is_empty());
        assert!(server.requests()[0].body.get("tools").is_none());
    }

    #[test]
    fn unauthorized_reports_the_provider_message() {
        let server = FakeServer::start(vec![Reply::Full(
            401,
            vec![],
            json!({"error": {"message": "Incorrect API key provided: sk-test.",
                             "type": "invalid_request_error", "code": "invalid_api_key"}})
            .to_string(),
        )]);
        let msgs = messages();
        match invoke(&server.model(), &request(&msgs, true)) {
            (Err(ModelError::Http { status, message }), deltas) => {
                assert_eq!(status, 401);
                assert_eq!(message, "Incorrect API key provided: sk-test. (HTTP 401)");
                assert!(deltas.is_empty());
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(server.requests().len(), 1, "401 is not retried");
    }

    #[test]
    fn other_error_bodies_are_readable() {
        let server = FakeServer::start(vec![
            Reply::Full(404, vec![], json!({"detail": "Not Found"}).to_string()),
            Reply::Full(400, vec![], "bad\nrequest  here".into()),
        ]);
        let msgs = messages();
        let model = server.model();
        match invoke(&model, &request(&msgs, false)).0 {
            Err(ModelError::Http {
                status: 404,
                message,
            }) => {
                assert_eq!(message, "Not Found (HTTP 404)")
            }
            other => panic!("unexpected {other:?}"),
        }
        match invoke(&model, &request(&msgs, false)).0 {
            Err(ModelError::Http {
                status: 400,
                message,
            }) => {
                assert_eq!(message, "bad request here (HTTP 400)")
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn rate_limit_is_retried_after_retry_after() {
        let server = FakeServer::start(vec![
            Reply::Full(
                429,
                vec![("Retry-After", "0".into())],
                json!({"error": {"message": "Rate limit reached"}}).to_string(),
            ),
            Reply::Sse(vec![
                chunk(json!({"role": "assistant", "content": "ok"}), json!("stop")),
                "data: [DONE]\n\n".into(),
            ]),
        ]);
        let msgs = messages();
        let mut model = server.model();
        // Retry-After: 0 must win over the (long) backoff.
        model.base_backoff = Duration::from_secs(20);
        let started = Instant::now();
        let (result, deltas) = invoke(&model, &request(&msgs, true));
        assert_eq!(result.unwrap().content, "ok");
        assert_eq!(deltas.len(), 1);
        assert_eq!(server.requests().len(), 2);
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn server_errors_give_up_after_the_retries() {
        let error = json!({"error": {"message": "The server had an error"}}).to_string();
        let server = FakeServer::start(vec![Reply::Full(500, vec![], error)]);
        let msgs = messages();
        let model = server.model();
        match invoke(&model, &request(&msgs, true)).0 {
            Err(ModelError::Http { status, message }) => {
                assert_eq!(status, 500);
                assert_eq!(message, "The server had an error (HTTP 500)");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(server.requests().len(), 1 + MAX_RETRIES as usize);
    }

    #[test]
    fn connection_refused_is_a_transport_error() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let server = FakeServer {
            base_url: format!("http://{addr}/v1"),
            requests: Arc::default(),
        };
        let msgs = messages();
        match invoke(&server.model(), &request(&msgs, true)).0 {
            Err(ModelError::Transport(message)) => {
                assert!(message.contains("FakeAI"), "{message}")
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn error_inside_the_stream_is_reported() {
        let server = FakeServer::start(vec![Reply::Sse(vec![
            chunk(json!({"content": "par"}), Value::Null),
            sse(json!({"error": {"message": "overloaded", "code": 503}})),
        ])]);
        let msgs = messages();
        let (result, deltas) = invoke(&server.model(), &request(&msgs, true));
        match result {
            Err(ModelError::Http {
                status: 503,
                message,
            }) => {
                assert_eq!(message, "overloaded (HTTP 503)")
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(deltas.len(), 1);
        assert_eq!(
            server.requests().len(),
            1,
            "nothing is retried after content"
        );
    }

    #[test]
    fn stalled_stream_is_cancelled_promptly() {
        let server = FakeServer::start(vec![Reply::Stall]);
        let msgs = messages();
        let model = server.model();
        let cancel = CancelToken::new();
        let canceller = cancel.clone();
        let started = Instant::now();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            canceller.cancel();
        });
        let mut deltas = Vec::new();
        let result = model.invoke(&request(&msgs, true), &cancel, &mut |d| {
            deltas.push(d.content.clone())
        });
        let elapsed = started.elapsed();
        assert!(matches!(result, Err(ModelError::Cancelled)), "{result:?}");
        assert_eq!(deltas, [""]);
        assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
    }

    #[test]
    fn silent_provider_times_out() {
        let server = FakeServer::start(vec![Reply::Stall]);
        let msgs = messages();
        let mut model = server.model();
        model.read_timeout = Duration::from_millis(200);
        match invoke(&model, &request(&msgs, true)).0 {
            Err(ModelError::Timeout(message)) => {
                assert!(message.contains(READ_TIMEOUT_ENV), "{message}")
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn anthropic_kind_is_refused() {
        let server = FakeServer::start(vec![]);
        let mut model = server.model();
        model.kind = ProviderKind::Anthropic;
        let msgs = messages();
        assert!(matches!(
            invoke(&model, &request(&msgs, true)).0,
            Err(ModelError::Protocol(_))
        ));
    }

    #[test]
    fn names_url_and_tool_messages() {
        let server = FakeServer::start(vec![]);
        let model = server.model();
        assert_eq!(model.id(), "fake-model");
        assert_eq!(model.provider(), "FakeAI");
        assert!(model.url.ends_with("/v1/chat/completions"), "{}", model.url);

        let assistant = Message {
            role: Role::Assistant,
            tool_calls: Some(vec![
                json!({"id": "call_1", "type": "function",
                       "function": {"name": "f", "arguments": "{}"}}),
                json!({"tool_call_id": "call_2", "tool_name": "g", "tool_args": {"x": 1}}),
            ]),
            ..Message::default()
        };
        let tool = Message {
            role: Role::Tool,
            content: Some("42".into()),
            tool_call_id: Some("call_1".into()),
            ..Message::default()
        };
        assert_eq!(
            wire_message(&assistant),
            json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": "{\"x\":1}"}}
            ]})
        );
        assert_eq!(
            wire_message(&tool),
            json!({"role": "tool", "content": "42", "tool_call_id": "call_1"})
        );

        // Empty content beside calls is null; arguments stored as an object become text;
        // an empty call list is left out.
        let stored = Message {
            role: Role::Assistant,
            content: Some(String::new()),
            tool_calls: Some(vec![json!({"id": "call_3", "type": "function",
                                         "function": {"name": "h", "arguments": {"y": 2}}})]),
            ..Message::default()
        };
        assert_eq!(
            wire_message(&stored),
            json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_3", "type": "function", "function": {"name": "h", "arguments": "{\"y\":2}"}}
            ]})
        );
        let empty = Message {
            role: Role::Assistant,
            content: Some("Done.".into()),
            tool_calls: Some(Vec::new()),
            ..Message::default()
        };
        assert_eq!(
            wire_message(&empty),
            json!({"role": "assistant", "content": "Done."})
        );
        let tool_with_name = Message {
            role: Role::Tool,
            content: Some("sunny".into()),
            tool_call_id: Some("call_3".into()),
            tool_name: Some("h".into()),
            tool_args: Some(json!({"y": 2})),
            ..Message::default()
        };
        assert_eq!(
            wire_message(&tool_with_name),
            json!({"role": "tool", "content": "sunny", "tool_call_id": "call_3"})
        );
    }

    #[test]
    fn retry_after_forms() {
        let mut headers = ureq::http::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert("retry-after", "3600".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(MAX_RETRY_AFTER));
        headers.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after-ms", "250".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(250)));
    }

    #[test]
    fn cancellable_sleep_wakes_on_cancel() {
        let cancel = CancelToken::new();
        assert!(sleep_unless_cancelled(&cancel, Duration::from_millis(1)));
        let canceller = cancel.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            canceller.cancel();
        });
        let started = Instant::now();
        assert!(!sleep_unless_cancelled(&cancel, Duration::from_secs(10)));
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
