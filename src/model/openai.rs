//! OpenAI-compatible chat completions (`POST {base_url}/chat/completions`), used for
//! OpenAI itself, Ollama and any `[providers.*]` table of kind `openai`.
//!
//! - The request is encoded straight from the run's messages (no intermediate JSON tree),
//!   with the tools as OpenAI functions and an output format as `response_format`.
//! - Streaming answers are decoded event by event as they arrive: the first role-only
//!   chunk becomes an empty text piece (AgentOS reports one `RunContent` per chunk), the
//!   final `usage` chunk (asked for with `stream_options.include_usage`) becomes the usage,
//!   and `reasoning_content` (DeepSeek, vLLM, llama.cpp) or `reasoning` (OpenRouter) deltas
//!   become reasoning text.
//! - Streamed `delta.tool_calls[]` pieces carry an `index` (the first piece the id and
//!   name, later ones more `function.arguments`); for servers that leave `index` out, a
//!   piece with a new id starts a new call and one without continues the latest.
//! - An `error` object inside a stream (or a non-streaming body) ends the call with the
//!   provider's message. Some compatible servers ignore `stream` and answer with one JSON
//!   object; that is read as a whole answer.
//!
//! Connections, timeouts and retries are the provider's [`Transport`]'s.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use super::sse::SseEvent;
use super::transport::{Call, SseChunks, SseHandler, Transport, one_line, provider_message};
use super::{
    ArgumentsPiece, Chunk, ChunkStream, Model, ModelError, ModelInfo, ModelRequest, ToolCallDelta,
    Usage, until_answer,
};
use crate::config::ResolvedModel;
use crate::run::{Message, Role, ToolCall};
use crate::schema::OutputFormat;
use crate::tools::ToolSpec;

/// The largest non-streaming answer accepted.
const MAX_RESPONSE_BODY: usize = 64 * 1024 * 1024;
/// How long a piece of a broken answer may be in an error before it is cut.
const QUOTE_CHARS: usize = 200;
/// How long a provider message may be in an error before it is cut.
const MAX_ERROR_MESSAGE_CHARS: usize = 500;

/// How AgentOS names a model of this provider: `OpenAIChat` for OpenAI itself,
/// `OpenAILike` for other compatible endpoints.
pub fn info(resolved: &ResolvedModel) -> ModelInfo {
    let class_name = if resolved.provider.name == "openai" {
        "OpenAIChat"
    } else {
        "OpenAILike"
    };
    ModelInfo {
        id: resolved.model.clone(),
        provider: resolved.provider.display_name.clone(),
        class_name: class_name.to_string(),
    }
}

/// A chat-completions endpoint and model.
pub struct OpenAiModel {
    info: ModelInfo,
    url: String,
    api_key: Option<String>,
    headers: Vec<(String, String)>,
    /// OpenAI's own API takes the answer's cap as `max_completion_tokens` (its o-series and
    /// gpt-5 models refuse `max_tokens`); other compatible servers know `max_tokens`.
    completion_tokens: bool,
    transport: Arc<Transport>,
}

/// The built-in provider whose server is OpenAI's own API.
const OPENAI: &str = "openai";

impl OpenAiModel {
    pub fn new(resolved: &ResolvedModel, transport: Arc<Transport>) -> Self {
        let provider = &resolved.provider;
        OpenAiModel {
            info: info(resolved),
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
            completion_tokens: provider.name == OPENAI,
            transport,
        }
    }

    /// The JSON body of a chat-completions request.
    fn request_body(&self, request: &ModelRequest<'_>) -> Result<Bytes, ModelError> {
        let body = WireRequest {
            model: &self.info.id,
            messages: WireMessages(request.messages),
            stream: request.stream,
            stream_options: request.stream.then_some(StreamOptions {
                include_usage: true,
            }),
            temperature: request.temperature,
            max_tokens: request.max_tokens.filter(|_| !self.completion_tokens),
            max_completion_tokens: request.max_tokens.filter(|_| self.completion_tokens),
            response_format: request.output.map(WireFormat),
            // Past the run's tool-call limit no functions are offered, so the model answers.
            tools: (request.allow_tools && !request.tools.is_empty())
                .then_some(WireTools(request.tools)),
        };
        serde_json::to_vec(&body)
            .map(Bytes::from)
            .map_err(|e| ModelError::Protocol(format!("could not encode the request: {e}")))
    }

    async fn call(&self, request: ModelRequest<'_>) -> Result<ChunkStream, ModelError> {
        let call = Call {
            url: &self.url,
            bearer: self.api_key.as_deref(),
            headers: &self.headers,
            body: self.request_body(&request)?,
            stream: request.stream,
            provider: &self.info.provider,
        };
        // One retry budget for the whole call: failed statuses and connections, and an
        // error inside the stream before any of the answer (OpenRouter reports a failed
        // upstream that way, after a 200), all spend it.
        let mut attempts = self.transport.attempts();
        loop {
            let response = attempts.send(&call).await?;
            let is_json = response
                .headers()
                .get(hyper::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim_start().starts_with("application/json"));
            if request.stream && !is_json {
                let body = self.transport.body_stream(response, &self.info.provider);
                let stream = SseChunks::new(body, StreamHandler::new(&self.info.provider));
                match until_answer(Box::pin(stream)).await {
                    Ok(stream) => return Ok(stream),
                    Err(error) => {
                        attempts.retry(error).await?;
                        continue;
                    }
                }
            }
            let body = self
                .transport
                .read_body(response, MAX_RESPONSE_BODY, &self.info.provider)
                .await?;
            let chunks = whole_answer(&body, &self.info.provider)?;
            return Ok(Box::pin(futures_util::stream::iter(
                chunks.into_iter().map(Ok),
            )));
        }
    }
}

impl Model for OpenAiModel {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn stream<'a>(
        &'a self,
        request: ModelRequest<'a>,
    ) -> BoxFuture<'a, Result<ChunkStream, ModelError>> {
        Box::pin(self.call(request))
    }
}

// ----- the request -----

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: WireMessages<'a>,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<WireFormat<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<WireTools<'a>>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

struct WireMessages<'a>(&'a [Message]);

impl Serialize for WireMessages<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for message in self.0 {
            seq.serialize_element(&WireMessage(message))?;
        }
        seq.end()
    }
}

/// One message in OpenAI's shape: `role`, `content` (null for an assistant turn that only
/// calls tools), `tool_calls` on assistant turns, `tool_call_id` on tool results.
struct WireMessage<'a>(&'a Message);

impl Serialize for WireMessage<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let message = self.0;
        // Only assistant turns carry calls, and OpenAI refuses an empty `tool_calls` list.
        let calls = message
            .tool_calls
            .as_deref()
            .filter(|c| message.role == Role::Assistant && !c.is_empty());
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("role", message.role.as_str())?;
        match message.content.as_deref() {
            // An assistant turn that only calls tools has no content.
            None | Some("") if calls.is_some() => map.serialize_entry("content", &())?,
            Some(text) => map.serialize_entry("content", text)?,
            None => map.serialize_entry("content", "")?,
        }
        if let Some(calls) = calls {
            map.serialize_entry("tool_calls", &WireCalls(calls))?;
        }
        if message.role == Role::Tool
            && let Some(id) = &message.tool_call_id
        {
            map.serialize_entry("tool_call_id", id)?;
        }
        map.end()
    }
}

struct WireCalls<'a>(&'a [ToolCall]);

impl Serialize for WireCalls<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Function<'a> {
            name: &'a str,
            arguments: &'a str,
        }
        #[derive(Serialize)]
        struct Wire<'a> {
            id: &'a str,
            #[serde(rename = "type")]
            kind: &'static str,
            function: Function<'a>,
        }
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for call in self.0 {
            seq.serialize_element(&Wire {
                id: &call.id,
                kind: "function",
                function: Function {
                    name: &call.name,
                    arguments: if call.arguments.is_empty() {
                        "{}"
                    } else {
                        &call.arguments
                    },
                },
            })?;
        }
        seq.end()
    }
}

/// An output format as OpenAI's `response_format`.
struct WireFormat<'a>(&'a OutputFormat);

impl Serialize for WireFormat<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        match self.0 {
            OutputFormat::JsonObject => map.serialize_entry("type", "json_object")?,
            OutputFormat::JsonSchema {
                name,
                description,
                schema,
                strict,
            } => {
                #[derive(Serialize)]
                struct Inner<'a> {
                    name: &'a str,
                    #[serde(skip_serializing_if = "Option::is_none")]
                    description: Option<&'a str>,
                    schema: &'a Value,
                    strict: bool,
                }
                map.serialize_entry("type", "json_schema")?;
                map.serialize_entry(
                    "json_schema",
                    &Inner {
                        name,
                        description: description.as_deref(),
                        schema,
                        strict: *strict,
                    },
                )?;
            }
        }
        map.end()
    }
}

struct WireTools<'a>(&'a [ToolSpec]);

impl Serialize for WireTools<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Function<'a> {
            name: &'a str,
            description: &'a str,
            parameters: &'a Value,
        }
        #[derive(Serialize)]
        struct Wire<'a> {
            #[serde(rename = "type")]
            kind: &'static str,
            function: Function<'a>,
        }
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for tool in self.0 {
            seq.serialize_element(&Wire {
                kind: "function",
                function: Function {
                    name: &tool.name,
                    description: &tool.description,
                    parameters: &tool.parameters,
                },
            })?;
        }
        seq.end()
    }
}

// ----- the answer -----

/// One `chat.completion.chunk`, read without building a JSON tree for the common fields.
#[derive(Deserialize)]
struct StreamChunk<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    system_fingerprint: Option<Cow<'a, str>>,
    #[serde(default)]
    choices: Vec<StreamChoice<'a>>,
    #[serde(default)]
    usage: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct StreamChoice<'a> {
    #[serde(borrow, default)]
    delta: Option<StreamDelta<'a>>,
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct StreamDelta<'a> {
    #[serde(borrow, default)]
    role: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning: Option<Cow<'a, str>>,
    #[serde(default)]
    tool_calls: Option<Vec<Value>>,
}

/// Turns the events of a chat-completions stream into chunks.
struct StreamHandler {
    provider: String,
    /// The `id` and `system_fingerprint` last reported, to report them again only when
    /// they change.
    id: Option<String>,
    fingerprint: Option<String>,
    /// Some text piece (possibly the empty role-only one) was handed on.
    delivered: bool,
    seen_chunk: bool,
    /// A `finish_reason` arrived: the answer is complete even if `[DONE]` does not follow.
    finished: bool,
    calls: CallIndexes,
}

impl StreamHandler {
    fn new(provider: &str) -> Self {
        StreamHandler {
            provider: provider.to_string(),
            id: None,
            fingerprint: None,
            delivered: false,
            seen_chunk: false,
            finished: false,
            calls: CallIndexes::default(),
        }
    }

    fn apply(&mut self, chunk: StreamChunk<'_>, out: &mut Vec<Chunk>) {
        self.seen_chunk = true;
        let mut data = Map::new();
        if let Some(id) = chunk
            .id
            .filter(|id| self.id.as_deref() != Some(id.as_ref()))
        {
            self.id = Some(id.to_string());
            data.insert("id".into(), Value::String(id.into_owned()));
        }
        if let Some(fp) = chunk
            .system_fingerprint
            .filter(|fp| self.fingerprint.as_deref() != Some(fp.as_ref()))
        {
            self.fingerprint = Some(fp.to_string());
            data.insert("system_fingerprint".into(), Value::String(fp.into_owned()));
        }
        if !data.is_empty() {
            out.push(Chunk::ProviderData(data));
        }
        if let Some(usage) = chunk.usage.as_ref().and_then(usage_of) {
            out.push(Chunk::Usage(usage));
        }
        let Some(choice) = chunk.choices.into_iter().next() else {
            return;
        };
        if let Some(delta) = choice.delta {
            // One delta may carry both names for the same text: `reasoning_content` wins.
            let reasoning = [delta.reasoning_content, delta.reasoning]
                .into_iter()
                .flatten()
                .find(|t| !t.is_empty());
            if let Some(text) = reasoning {
                out.push(Chunk::Reasoning(text.into_owned()));
            }
            for (position, call) in delta.tool_calls.iter().flatten().enumerate() {
                out.push(Chunk::ToolCall(self.calls.delta(call, position)));
            }
            let text = delta.content.unwrap_or(Cow::Borrowed(""));
            if !text.is_empty() || (!self.delivered && delta.role.is_some()) {
                self.delivered = true;
                out.push(Chunk::Text(text.into_owned()));
            }
        }
        if let Some(reason) = choice.finish_reason {
            self.finished = true;
            out.push(Chunk::Finish(reason.into_owned()));
        }
    }
}

impl SseHandler for StreamHandler {
    fn event(&mut self, event: SseEvent, out: &mut Vec<Chunk>) -> Result<bool, ModelError> {
        if event.is_done() {
            return Ok(true);
        }
        let chunk: StreamChunk<'_> = match serde_json::from_str(&event.data) {
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
                    one_line(&event.data, QUOTE_CHARS)
                )));
            }
        };
        if let Some(error) = chunk.error.as_ref().filter(|e| !e.is_null()) {
            return Err(error_in_answer(error, &self.provider));
        }
        self.apply(chunk, out);
        Ok(false)
    }

    /// The body ended without `[DONE]`: complete when a `finish_reason` came, otherwise the
    /// connection was lost mid-answer (the text so far, or a tool call's arguments, may be
    /// cut anywhere).
    fn end(&mut self) -> Result<(), ModelError> {
        match (self.finished, self.seen_chunk) {
            (true, _) => Ok(()),
            (false, true) => Err(ModelError::Protocol(format!(
                "{} ended the stream before the answer was complete (no finish_reason, no \
                 [DONE])",
                self.provider
            ))),
            (false, false) => Err(ModelError::Protocol(format!(
                "{} ended the stream without sending any answer",
                self.provider
            ))),
        }
    }
}

/// The call each streamed piece belongs to. A piece with an `index` continues the call
/// last seen at that index, unless it brings a different id: some servers send every call
/// at index 0, each with its own id, and those are separate calls. Pieces without an
/// `index` are placed by id: a new id starts a new call (at the smallest free index from
/// its position), a piece without one continues the latest call.
#[derive(Default)]
struct CallIndexes {
    /// Every call in order of first appearance: the index it is assembled under, the
    /// provider's `index` for it (if it sent one), its id.
    known: Vec<Known>,
}

struct Known {
    at: u64,
    sent_index: Option<u64>,
    id: Option<String>,
}

impl CallIndexes {
    fn delta(&mut self, entry: &Value, position: usize) -> ToolCallDelta {
        let id = entry
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty());
        let sent_index = entry.get("index").and_then(Value::as_u64);
        let current = match sent_index {
            Some(index) => self
                .known
                .iter()
                .rposition(|k| k.sent_index == Some(index))
                .filter(|&k| {
                    let known = self.known[k].id.as_deref();
                    id.is_none() || known.is_none() || known == id
                }),
            None => match id {
                Some(id) => self.known.iter().position(|k| k.id.as_deref() == Some(id)),
                None => self.known.len().checked_sub(1),
            },
        };
        let at = match current {
            Some(k) => {
                let known = &mut self.known[k];
                if known.id.is_none() {
                    known.id = id.map(str::to_string);
                }
                known.at
            }
            None => {
                let at = self.free_from(sent_index.unwrap_or(position as u64));
                self.known.push(Known {
                    at,
                    sent_index,
                    id: id.map(str::to_string),
                });
                at
            }
        };
        call_delta(at, entry)
    }

    /// The smallest index not in use that is at least `from`.
    fn free_from(&self, from: u64) -> u64 {
        let mut index = from;
        while self.known.iter().any(|k| k.at == index) {
            index += 1;
        }
        index
    }
}

/// A call entry (streamed piece or whole call) as a delta at `index`.
fn call_delta(index: u64, entry: &Value) -> ToolCallDelta {
    let function = entry.get("function");
    let arguments = match function.and_then(|f| f.get("arguments")) {
        Some(Value::String(piece)) => ArgumentsPiece::Append(piece.clone()),
        // Some servers send the arguments as an object rather than JSON text.
        Some(value @ (Value::Object(_) | Value::Array(_))) => {
            ArgumentsPiece::Whole(value.to_string())
        }
        _ => ArgumentsPiece::None,
    };
    ToolCallDelta {
        index,
        id: entry
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .map(str::to_string),
        name: function
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .map(str::to_string),
        arguments,
    }
}

/// A non-streaming answer as chunks.
fn whole_answer(body: &[u8], provider: &str) -> Result<Vec<Chunk>, ModelError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ModelError::Protocol(format!(
            "{provider} sent an answer that is not JSON ({e}): {}",
            one_line(&String::from_utf8_lossy(body), QUOTE_CHARS)
        ))
    })?;
    if let Some(error) = value.get("error").filter(|e| !e.is_null()) {
        return Err(error_in_answer(error, provider));
    }
    let choice = value.get("choices").and_then(|c| c.get(0)).ok_or_else(|| {
        ModelError::Protocol(format!("{provider} sent an answer without choices"))
    })?;
    let mut chunks = Vec::new();
    let mut data = Map::new();
    for key in ["id", "system_fingerprint"] {
        if let Some(v) = value.get(key).filter(|v| !v.is_null()) {
            data.insert(key.into(), v.clone());
        }
    }
    if !data.is_empty() {
        chunks.push(Chunk::ProviderData(data));
    }
    let message = choice.get("message");
    let field = |key: &str| message.and_then(|m| m.get(key)).and_then(Value::as_str);
    if let Some(reasoning) = field("reasoning_content").or_else(|| field("reasoning")) {
        chunks.push(Chunk::Reasoning(reasoning.to_string()));
    }
    let content = field("content").or_else(|| field("refusal")).unwrap_or("");
    chunks.push(Chunk::Text(content.to_string()));
    let calls = message
        .and_then(|m| m.get("tool_calls"))
        .and_then(Value::as_array);
    for (position, call) in calls.into_iter().flatten().enumerate() {
        let mut delta = call_delta(position as u64, call);
        if let ArgumentsPiece::Append(text) = delta.arguments {
            delta.arguments = ArgumentsPiece::Whole(text);
        }
        chunks.push(Chunk::ToolCall(delta));
    }
    if let Some(usage) = value.get("usage").and_then(usage_of) {
        chunks.push(Chunk::Usage(usage));
    }
    if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
        chunks.push(Chunk::Finish(reason.to_string()));
    }
    Ok(chunks)
}

/// An `error` object inside an answer: an HTTP error when it carries a status code.
fn error_in_answer(error: &Value, provider: &str) -> ModelError {
    let wrapped = serde_json::json!({ "error": error });
    let message = provider_message(&wrapped).unwrap_or_else(|| error.to_string());
    let message = one_line(&message, MAX_ERROR_MESSAGE_CHARS);
    let status = error
        .get("code")
        .or_else(|| error.get("status"))
        .and_then(|c| {
            c.as_u64()
                .or_else(|| c.as_str().and_then(|s| s.parse().ok()))
        })
        .filter(|c| (400..600).contains(c));
    match status {
        Some(status) => ModelError::Http {
            status: status as u16,
            message: format!("{message} (HTTP {status})"),
        },
        None => ModelError::Protocol(format!(
            "{provider} reported an error in the stream: {message}"
        )),
    }
}

/// Token counts of an OpenAI `usage` object (`prompt_tokens` counts cached tokens in, as
/// OpenAI reports them; they are also given apart as `cache_read_tokens`).
fn usage_of(usage: &Value) -> Option<Usage> {
    if !usage.is_object() {
        return None;
    }
    let count = |path: &str| usage.pointer(path).and_then(Value::as_u64).unwrap_or(0);
    let prompt = count("/prompt_tokens");
    let output_tokens = count("/completion_tokens");
    let total_tokens = usage
        .get("total_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(prompt + output_tokens);
    Some(Usage {
        input_tokens: prompt,
        output_tokens,
        total_tokens,
        reasoning_tokens: count("/completion_tokens_details/reasoning_tokens"),
        cache_read_tokens: count("/prompt_tokens_details/cached_tokens"),
        cache_write_tokens: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProviderDef;
    use crate::model::transport::{Options, READ_TIMEOUT_ENV};
    use crate::model::{Assembler, ModelResponse};
    use futures_util::StreamExt;
    use serde_json::json;
    use std::collections::BTreeMap;
    use std::io::{BufRead, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

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
            self.model_with(Options {
                base_backoff: Duration::from_millis(5),
                read_timeout: Duration::from_secs(30),
                ..Options::default()
            })
        }

        fn model_with(&self, options: Options) -> OpenAiModel {
            let mut headers = BTreeMap::new();
            headers.insert("X-Extra".to_string(), "yes".to_string());
            OpenAiModel::new(
                &ResolvedModel {
                    provider: ProviderDef {
                        name: "fake".into(),
                        kind: crate::config::ProviderKind::OpenAi,
                        base_url: self.base_url.clone(),
                        api_key_env: Some("FAKE_KEY".into()),
                        headers,
                        display_name: "FakeAI".into(),
                        http2: false,
                    },
                    model: "fake-model".into(),
                    api_key: Some("sk-test".into()),
                    missing_key: None,
                },
                Arc::new(Transport::new(options)),
            )
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
            output: None,
            stream,
            tools: &[],
            allow_tools: true,
            reasoning_budget: None,
            cache_prompt: false,
        }
    }

    /// Runs a call to its end: the answer, and the text pieces in the order they came.
    async fn invoke(
        model: &OpenAiModel,
        req: ModelRequest<'_>,
    ) -> (Result<ModelResponse, ModelError>, Vec<String>) {
        let mut texts = Vec::new();
        let mut stream = match model.stream(req).await {
            Ok(stream) => stream,
            Err(e) => return (Err(e), texts),
        };
        let mut assembler = Assembler::default();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => {
                    if let Chunk::Text(text) = &chunk {
                        texts.push(text.clone());
                    }
                    assembler.add(&chunk);
                }
                Err(e) => return (Err(e), texts),
            }
        }
        (Ok(assembler.finish()), texts)
    }

    #[tokio::test]
    async fn streams_text_and_usage() {
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
        let (result, texts) = invoke(&server.model(), request(&msgs, true)).await;
        let response = result.unwrap();
        assert_eq!(texts, ["", "Hello", ", ", "wor", "ld"]);
        let data = json!({"id": "chatcmpl-1", "system_fingerprint": "fp_x"});
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

    #[tokio::test]
    async fn reasoning_deltas_become_reasoning_text() {
        let server = FakeServer::start(vec![Reply::Sse(vec![
            chunk(
                json!({"role": "assistant", "reasoning_content": "Think"}),
                Value::Null,
            ),
            chunk(json!({"reasoning": "ing."}), Value::Null),
            // Both names for the same text in one delta: taken once.
            chunk(
                json!({"reasoning_content": " Done.", "reasoning": " Done."}),
                Value::Null,
            ),
            chunk(json!({"content": "Answer"}), json!("stop")),
            "data: [DONE]\n\n".into(),
        ])]);
        let msgs = messages();
        let (result, texts) = invoke(&server.model(), request(&msgs, true)).await;
        let response = result.unwrap();
        assert_eq!(response.reasoning, "Thinking. Done.");
        assert_eq!(response.content, "Answer");
        assert_eq!(texts, ["", "Answer"]);
    }

    #[tokio::test]
    async fn non_streaming_answer_and_output_format() {
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
        let format = OutputFormat::JsonSchema {
            name: "A".into(),
            description: None,
            schema: json!({"type": "object"}),
            strict: true,
        };
        req.output = Some(&format);
        req.temperature = None;
        let (result, texts) = invoke(&server.model(), req).await;
        let response = result.unwrap();
        assert_eq!(response.content, "{\"a\":1}");
        assert_eq!(texts, std::slice::from_ref(&response.content));
        // A missing system_fingerprint is left out.
        assert_eq!(response.provider_data, Some(json!({"id": "chatcmpl-9"})));
        assert_eq!(response.usage.unwrap().total_tokens, 10);
        let body = &server.requests()[0].body;
        assert_eq!(body["stream"], false);
        assert!(body.get("stream_options").is_none());
        assert!(body.get("temperature").is_none());
        assert_eq!(
            body["response_format"],
            json!({"type": "json_schema", "json_schema": {"name": "A", "schema": {"type": "object"}, "strict": true}})
        );
    }

    #[tokio::test]
    async fn stream_options_and_response_format_are_sent_together() {
        let server = FakeServer::start(vec![Reply::Sse(vec![
            chunk(json!({"content": "{}"}), json!("stop")),
            "data: [DONE]\n\n".into(),
        ])]);
        let msgs = messages();
        let mut req = request(&msgs, true);
        let format = OutputFormat::JsonObject;
        req.output = Some(&format);
        let response = invoke(&server.model(), req).await.0.unwrap();
        assert_eq!(response.content, "{}");
        let body = &server.requests()[0].body;
        assert_eq!(body["response_format"], json!({"type": "json_object"}));
        assert_eq!(body["stream_options"], json!({"include_usage": true}));
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

    #[tokio::test]
    async fn streamed_parallel_tool_calls_are_assembled_by_index() {
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
        let (result, texts) = invoke(&server.model(), req).await;
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
        // Only the role chunk becomes a text piece.
        assert_eq!(texts, [""]);

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

    #[tokio::test]
    async fn streamed_calls_without_index_or_id_still_assemble() {
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
        let calls = invoke(&server.model(), req).await.0.unwrap().tool_calls;
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

    #[tokio::test]
    async fn openai_itself_gets_max_completion_tokens() {
        let server = FakeServer::start(vec![
            Reply::Sse(vec![
                chunk(json!({"content": "ok"}), json!("stop")),
                "data: [DONE]\n\n".into(),
            ]),
            Reply::Sse(vec![
                chunk(json!({"content": "ok"}), json!("stop")),
                "data: [DONE]\n\n".into(),
            ]),
        ]);
        let msgs = messages();
        let mut openai = server.model();
        openai.completion_tokens = true;
        for model in [openai, server.model()] {
            let mut req = request(&msgs, true);
            req.max_tokens = Some(64);
            invoke(&model, req).await.0.unwrap();
        }
        let seen = server.requests();
        assert_eq!(seen[0].body["max_completion_tokens"], 64);
        assert!(seen[0].body.get("max_tokens").is_none(), "{}", seen[0].body);
        assert_eq!(seen[1].body["max_tokens"], 64);
        assert!(seen[1].body.get("max_completion_tokens").is_none());
    }

    #[test]
    fn only_the_built_in_openai_provider_counts_as_openai_itself() {
        let resolved = |name: &str| ResolvedModel {
            provider: ProviderDef {
                name: name.into(),
                kind: crate::config::ProviderKind::OpenAi,
                base_url: "http://127.0.0.1:9/v1".into(),
                api_key_env: None,
                headers: BTreeMap::new(),
                display_name: name.into(),
                http2: false,
            },
            model: "o3-mini".into(),
            api_key: None,
            missing_key: None,
        };
        let transport = Arc::new(Transport::new(Options::default()));
        assert!(OpenAiModel::new(&resolved("openai"), transport.clone()).completion_tokens);
        assert!(!OpenAiModel::new(&resolved("ollama"), transport).completion_tokens);
    }

    #[tokio::test]
    async fn calls_sharing_an_index_with_their_own_ids_stay_apart() {
        let server = FakeServer::start(vec![Reply::Sse(vec![
            // Every call at index 0, each with its own id, arguments in pieces.
            tool_delta(json!([{"index": 0, "id": "call_P", "type": "function",
                               "function": {"name": "get_weather", "arguments": ""}}])),
            tool_delta(json!([{"index": 0, "function": {"arguments": "{\"city\": "}}])),
            tool_delta(json!([{"index": 0, "function": {"arguments": "\"Paris\"}"}}])),
            tool_delta(json!([{"index": 0, "id": "call_Q", "type": "function",
                               "function": {"name": "get_weather", "arguments": "{\"city\""}}])),
            tool_delta(json!([{"index": 0, "id": "call_Q",
                               "function": {"arguments": ": \"Quito\"}"}}])),
            chunk(json!({}), json!("tool_calls")),
            "data: [DONE]\n\n".into(),
        ])]);
        let msgs = messages();
        let tools = weather_tools();
        let mut req = request(&msgs, true);
        req.tools = &tools;
        let calls = invoke(&server.model(), req).await.0.unwrap().tool_calls;
        let got: Vec<(&str, &str)> = calls
            .iter()
            .map(|c| (c.id.as_str(), c.arguments.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("call_P", "{\"city\": \"Paris\"}"),
                ("call_Q", "{\"city\": \"Quito\"}")
            ]
        );
    }

    #[tokio::test]
    async fn a_stream_cut_before_its_finish_is_an_error() {
        for (pieces, expected) in [
            (
                vec![
                    chunk(json!({"role": "assistant", "content": ""}), Value::Null),
                    chunk(json!({"content": "partial ans"}), Value::Null),
                ],
                "before the answer was complete",
            ),
            (vec![], "without sending any answer"),
        ] {
            let server = FakeServer::start(vec![Reply::Sse(pieces)]);
            let msgs = messages();
            let error = invoke(&server.model(), request(&msgs, true))
                .await
                .0
                .expect_err("a cut answer");
            assert!(error.to_string().contains(expected), "{error}");
        }
        // A finish_reason without [DONE] is a whole answer.
        let server = FakeServer::start(vec![Reply::Sse(vec![
            chunk(json!({"content": "whole"}), Value::Null),
            chunk(json!({}), json!("stop")),
        ])]);
        let msgs = messages();
        let response = invoke(&server.model(), request(&msgs, true))
            .await
            .0
            .unwrap();
        assert_eq!(response.content, "whole");
    }

    #[tokio::test]
    async fn non_streaming_tool_calls() {
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
        let (result, texts) = invoke(&server.model(), req).await;
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
        assert_eq!(texts.len(), 1);
        assert_eq!(
            server.requests()[0].body["tools"].as_array().unwrap().len(),
            2
        );
    }

    #[tokio::test]
    async fn no_tools_key_without_tools() {
        let server = FakeServer::start(vec![Reply::Sse(vec![
            chunk(json!({"content": "ok"}), json!("stop")),
            "data: [DONE]\n\n".into(),
        ])]);
        let msgs = messages();
        let response = invoke(&server.model(), request(&msgs, true))
            .await
            .0
            .unwrap();
        assert!(response.tool_calls.is_empty());
        assert!(server.requests()[0].body.get("tools").is_none());
    }

    #[tokio::test]
    async fn unauthorized_reports_the_provider_message() {
        let server = FakeServer::start(vec![Reply::Full(
            401,
            vec![],
            json!({"error": {"message": "Incorrect API key provided: sk-test.",
                             "type": "invalid_request_error", "code": "invalid_api_key"}})
            .to_string(),
        )]);
        let msgs = messages();
        match invoke(&server.model(), request(&msgs, true)).await {
            (Err(ModelError::Http { status, message }), texts) => {
                assert_eq!(status, 401);
                assert_eq!(message, "Incorrect API key provided: sk-test. (HTTP 401)");
                assert!(texts.is_empty());
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(server.requests().len(), 1, "401 is not retried");
    }

    #[tokio::test]
    async fn other_error_bodies_are_readable() {
        let server = FakeServer::start(vec![
            Reply::Full(404, vec![], json!({"detail": "Not Found"}).to_string()),
            Reply::Full(400, vec![], "bad\nrequest  here".into()),
        ]);
        let msgs = messages();
        let model = server.model();
        match invoke(&model, request(&msgs, false)).await.0 {
            Err(ModelError::Http {
                status: 404,
                message,
            }) => assert_eq!(message, "Not Found (HTTP 404)"),
            other => panic!("unexpected {other:?}"),
        }
        match invoke(&model, request(&msgs, false)).await.0 {
            Err(ModelError::Http {
                status: 400,
                message,
            }) => assert_eq!(message, "bad request here (HTTP 400)"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn rate_limit_is_retried_after_retry_after() {
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
        // Retry-After: 0 must win over the (long) backoff.
        let model = server.model_with(Options {
            base_backoff: Duration::from_secs(20),
            ..Options::default()
        });
        let started = Instant::now();
        let (result, texts) = invoke(&model, request(&msgs, true)).await;
        assert_eq!(result.unwrap().content, "ok");
        assert_eq!(texts.len(), 1);
        assert_eq!(server.requests().len(), 2);
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn server_errors_give_up_after_the_retries() {
        let error = json!({"error": {"message": "The server had an error"}}).to_string();
        let server = FakeServer::start(vec![Reply::Full(500, vec![], error)]);
        let msgs = messages();
        let model = server.model();
        match invoke(&model, request(&msgs, true)).await.0 {
            Err(ModelError::Http { status, message }) => {
                assert_eq!(status, 500);
                assert_eq!(message, "The server had an error (HTTP 500)");
            }
            other => panic!("unexpected {other:?}"),
        }
        let retries = crate::model::transport::MAX_RETRIES as usize;
        assert_eq!(server.requests().len(), 1 + retries);
    }

    #[tokio::test]
    async fn connection_refused_is_a_transport_error() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let server = FakeServer {
            base_url: format!("http://{addr}/v1"),
            requests: Arc::default(),
        };
        let msgs = messages();
        match invoke(&server.model(), request(&msgs, true)).await.0 {
            Err(ModelError::Transport(message)) => {
                assert!(message.contains("FakeAI"), "{message}")
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn error_inside_the_stream_is_reported() {
        let server = FakeServer::start(vec![Reply::Sse(vec![
            chunk(json!({"content": "par"}), Value::Null),
            sse(json!({"error": {"message": "overloaded", "code": 503}})),
        ])]);
        let msgs = messages();
        let (result, texts) = invoke(&server.model(), request(&msgs, true)).await;
        match result {
            Err(ModelError::Http {
                status: 503,
                message,
            }) => assert_eq!(message, "overloaded (HTTP 503)"),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(texts, ["par"]);
        assert_eq!(
            server.requests().len(),
            1,
            "nothing is retried after content"
        );
    }

    #[tokio::test]
    async fn an_error_in_the_stream_before_the_answer_is_retried() {
        let server = FakeServer::start(vec![
            // A 200, the role chunk, then the upstream's failure, as OpenRouter sends it.
            Reply::Sse(vec![
                chunk(json!({"role": "assistant", "content": ""}), Value::Null),
                "data: {\"error\": {\"message\": \"upstream overloaded\", \"code\": 502}}\n\n"
                    .into(),
            ]),
            Reply::Sse(vec![
                chunk(json!({"content": "fine"}), json!("stop")),
                "data: [DONE]\n\n".into(),
            ]),
        ]);
        let msgs = messages();
        let response = invoke(&server.model(), request(&msgs, true))
            .await
            .0
            .unwrap();
        assert_eq!(response.content, "fine");
        assert_eq!(server.requests().len(), 2);
    }

    #[tokio::test]
    async fn dropping_a_stalled_stream_returns_at_once() {
        let server = FakeServer::start(vec![Reply::Stall]);
        let msgs = messages();
        let model = server.model();
        // The call waits for the first piece of the answer (an error before it could be
        // retried); the provider sent its role chunk and then went silent.
        let started = Instant::now();
        let call = tokio::time::timeout(
            Duration::from_millis(100),
            model.stream(request(&msgs, true)),
        )
        .await;
        assert!(call.is_err(), "the provider is silent");
        drop(call);
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(server.requests().len(), 1);
    }

    #[tokio::test]
    async fn silent_provider_times_out() {
        let server = FakeServer::start(vec![Reply::Stall]);
        let msgs = messages();
        let model = server.model_with(Options {
            read_timeout: Duration::from_millis(200),
            ..Options::default()
        });
        match invoke(&model, request(&msgs, true)).await.0 {
            Err(ModelError::Timeout(message)) => {
                assert!(message.contains(READ_TIMEOUT_ENV), "{message}")
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_provider_that_never_starts_its_answer_times_out_saying_how_long() {
        // Accepts, reads the request, never answers.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let held: Vec<_> = listener.incoming().take(1).collect();
            std::thread::sleep(Duration::from_secs(5));
            drop(held);
        });
        let server = FakeServer {
            base_url,
            ..FakeServer::start(vec![])
        };
        let model = server.model_with(Options {
            read_timeout: Duration::from_millis(200),
            connect_timeout: Duration::from_millis(300),
            ..Options::default()
        });
        let msgs = messages();
        match invoke(&model, request(&msgs, true)).await.0 {
            Err(ModelError::Timeout(message)) => assert!(
                message.contains("did not start its answer within 0.5 s")
                    && message.contains(READ_TIMEOUT_ENV),
                "{message}"
            ),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn wire(message: &Message) -> Value {
        serde_json::to_value(WireMessage(message)).unwrap()
    }

    #[test]
    fn names_url_and_tool_messages() {
        let server = FakeServer::start(vec![]);
        let model = server.model();
        assert_eq!(model.info().id, "fake-model");
        assert_eq!(model.info().provider, "FakeAI");
        assert_eq!(model.info().class_name, "OpenAILike");
        assert!(model.url.ends_with("/v1/chat/completions"), "{}", model.url);

        let call = |id: &str, name: &str, args: &str| ToolCall {
            id: id.into(),
            name: name.into(),
            arguments: args.into(),
        };
        let assistant = Message {
            role: Role::Assistant,
            tool_calls: Some(vec![call("call_1", "f", "{}"), call("call_2", "g", "")]),
            ..Message::default()
        };
        let tool = Message {
            role: Role::Tool,
            content: Some("42".into()),
            tool_call_id: Some("call_1".into()),
            tool_name: Some("f".into()),
            tool_args: Some(json!({"y": 2})),
            ..Message::default()
        };
        assert_eq!(
            wire(&assistant),
            json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": "{}"}}
            ]})
        );
        assert_eq!(
            wire(&tool),
            json!({"role": "tool", "content": "42", "tool_call_id": "call_1"})
        );
        // Empty content beside calls is null; an empty call list is left out.
        let stored = Message {
            role: Role::Assistant,
            content: Some(String::new()),
            tool_calls: Some(vec![call("call_3", "h", "{\"y\":2}")]),
            ..Message::default()
        };
        assert_eq!(wire(&stored)["content"], Value::Null);
        let empty = Message {
            role: Role::Assistant,
            content: Some("Done.".into()),
            tool_calls: Some(Vec::new()),
            ..Message::default()
        };
        assert_eq!(
            wire(&empty),
            json!({"role": "assistant", "content": "Done."})
        );
    }
}
