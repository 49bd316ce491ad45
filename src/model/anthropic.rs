//! Anthropic's Messages API (`POST {base_url}/messages`), for the built-in `anthropic`
//! provider and any `[providers.*]` table of kind `anthropic`.
//!
//! - **Request.** `x-api-key` and `anthropic-version: 2023-06-01` (a provider's `headers`
//!   may add `anthropic-beta` or replace either). The system prompt goes in `system`;
//!   user and assistant turns are content blocks; an assistant's function calls are
//!   `tool_use` blocks and their results `tool_result` blocks of the next user turn, all
//!   results of one assistant turn together; consecutive turns of one role are merged.
//!   `max_tokens`, which the API requires, is the agent's or [`default_max_tokens`].
//!   Past the run's tool-call limit the functions are still listed (the API needs them to
//!   read earlier calls) with `tool_choice: none`.
//! - **Extended thinking.** A reasoning budget becomes `thinking: {type: enabled,
//!   budget_tokens}`. Thinking text streams as reasoning; each thinking block with its
//!   signature, and each `redacted_thinking` block, is kept on the assistant message and
//!   sent back unchanged in later turns, as the API requires.
//! - **Output formats.** A JSON schema goes in `output_config.format`; "any JSON object"
//!   (which the API has no mode for) is asked for in the system prompt.
//! - **Prompt caching** (`cache_prompt`): `cache_control` on the system prompt and on the
//!   last turn taken from history.
//! - **Answer.** Stream events (`message_start`, `content_block_start/delta/stop`,
//!   `message_delta`, `message_stop`, `ping`) become chunks; unknown block and delta types
//!   are skipped. An `error` event ends the call with Anthropic's message; when it comes
//!   before any of the answer (an overloaded or failing API), the call is made again
//!   within the retry budget the transport gives the call ([`Transport::attempts`]), which
//!   failed statuses share. Usage counts uncached input, cache reads and cache writes apart; the total is
//!   their sum with the output.
//!
//! Connections, timeouts and the retries of error statuses (429 with `retry-after`, 5xx,
//! 529 `overloaded_error`) are the provider's [`Transport`]'s.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use serde::Serialize;
use serde_json::{Map, Value};

use super::sse::SseEvent;
use super::transport::{Call, SseChunks, SseHandler, Transport, one_line, provider_message};
use super::{
    ArgumentsPiece, Chunk, ChunkStream, Model, ModelError, ModelInfo, ModelRequest, ToolCallDelta,
    Usage, until_answer,
};
use crate::config::ResolvedModel;
use crate::run::{Message, ReasoningBlock, Role};
use crate::schema::OutputFormat;
use crate::tools::ToolSpec;

/// The API version every request names.
pub const API_VERSION: &str = "2023-06-01";
/// The largest non-streaming answer accepted.
const MAX_RESPONSE_BODY: usize = 64 * 1024 * 1024;
/// How long a piece of a broken answer may be in an error before it is cut.
const QUOTE_CHARS: usize = 200;
/// How long a provider message may be in an error before it is cut.
const MAX_ERROR_MESSAGE_CHARS: usize = 500;
/// What "answer with any JSON object" adds to the system prompt.
const JSON_OBJECT_INSTRUCTION: &str =
    "Answer with one JSON object and nothing else: no prose, no code fences.";

/// How AgentOS names an Anthropic model: class `Claude`.
pub fn info(resolved: &ResolvedModel) -> ModelInfo {
    ModelInfo {
        id: resolved.model.clone(),
        provider: resolved.provider.display_name.clone(),
        class_name: "Claude".into(),
    }
}

/// `max_tokens` when the agent sets none: what each model family can write, capped at
/// 8,192 (Claude 3 models: 4,096), and always room for a thinking budget plus an answer.
pub fn default_max_tokens(model: &str, thinking_budget: Option<u32>) -> u32 {
    let claude3 = ["claude-3-haiku", "claude-3-sonnet", "claude-3-opus"];
    let base = if claude3.iter().any(|p| model.starts_with(p)) {
        4096
    } else {
        8192
    };
    match thinking_budget {
        Some(budget) => budget.saturating_add(base),
        None => base,
    }
}

/// A Messages API endpoint and model.
pub struct AnthropicModel {
    info: ModelInfo,
    url: String,
    headers: Vec<(String, String)>,
    transport: Arc<Transport>,
}

impl AnthropicModel {
    pub fn new(resolved: &ResolvedModel, transport: Arc<Transport>) -> Self {
        let provider = &resolved.provider;
        let configured = |name: &str| {
            provider
                .headers
                .keys()
                .any(|k| k.eq_ignore_ascii_case(name))
        };
        let mut headers = Vec::new();
        if let Some(key) = &resolved.api_key
            && !configured("x-api-key")
        {
            headers.push(("x-api-key".to_string(), key.clone()));
        }
        if !configured("anthropic-version") {
            headers.push(("anthropic-version".to_string(), API_VERSION.to_string()));
        }
        headers.extend(provider.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
        AnthropicModel {
            info: info(resolved),
            url: format!("{}/messages", provider.base_url.trim_end_matches('/')),
            headers,
            transport,
        }
    }

    async fn call(&self, request: ModelRequest<'_>) -> Result<ChunkStream, ModelError> {
        let body = request_body(&self.info.id, &request)?;
        let call = Call {
            url: &self.url,
            bearer: None,
            headers: &self.headers,
            body,
            stream: request.stream,
            provider: &self.info.provider,
        };
        // One retry budget for the whole call: failed statuses and connections, and an
        // error event before any of the answer, all spend it.
        let mut attempts = self.transport.attempts();
        loop {
            let response = attempts.send(&call).await?;
            if !request.stream {
                let body = self
                    .transport
                    .read_body(response, MAX_RESPONSE_BODY, &self.info.provider)
                    .await?;
                let chunks = whole_answer(&body, &self.info.provider)?;
                return Ok(Box::pin(futures_util::stream::iter(
                    chunks.into_iter().map(Ok),
                )));
            }
            let body = self.transport.body_stream(response, &self.info.provider);
            let stream = SseChunks::new(body, StreamHandler::new(&self.info.provider));
            match until_answer(Box::pin(stream)).await {
                Ok(stream) => return Ok(stream),
                Err(error) => attempts.retry(error).await?,
            }
        }
    }
}

impl Model for AnthropicModel {
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
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<WireSystem>,
    messages: Vec<WireTurn<'a>>,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<Vec<WireTool<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_config: Option<Value>,
}

/// The system prompt: plain text, or one text block marked cacheable.
#[derive(Serialize)]
#[serde(untagged)]
enum WireSystem {
    Text(String),
    Blocks([WireSystemBlock; 1]),
}

#[derive(Serialize)]
struct WireSystemBlock {
    #[serde(rename = "type")]
    kind: &'static str,
    text: String,
    cache_control: CacheControl,
}

#[derive(Clone, Copy, Serialize)]
struct CacheControl {
    #[serde(rename = "type")]
    kind: &'static str,
}

const EPHEMERAL: CacheControl = CacheControl { kind: "ephemeral" };

#[derive(Serialize)]
struct WireTurn<'a> {
    role: &'static str,
    content: Vec<WireBlock<'a>>,
}

#[derive(Serialize)]
struct WireBlock<'a> {
    #[serde(flatten)]
    body: BlockBody<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_control: Option<CacheControl>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockBody<'a> {
    Text {
        text: &'a str,
    },
    Thinking {
        thinking: &'a str,
        signature: &'a str,
    },
    RedactedThinking {
        data: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: Value,
    },
    ToolResult {
        tool_use_id: &'a str,
        content: &'a str,
        is_error: bool,
    },
}

impl<'a> BlockBody<'a> {
    fn block(self) -> WireBlock<'a> {
        WireBlock {
            body: self,
            cache_control: None,
        }
    }

    /// Whether the API lets this block carry `cache_control` (thinking blocks may not).
    fn cacheable(&self) -> bool {
        !matches!(
            self,
            BlockBody::Thinking { .. } | BlockBody::RedactedThinking { .. }
        )
    }
}

#[derive(Serialize)]
struct WireTool<'a> {
    name: &'a str,
    description: &'a str,
    input_schema: &'a Value,
}

/// The JSON body of a Messages request.
fn request_body(model: &str, request: &ModelRequest<'_>) -> Result<Bytes, ModelError> {
    let mut system: Vec<&str> = request
        .messages
        .iter()
        .filter(|m| m.role == Role::System)
        .filter_map(|m| m.content.as_deref())
        .filter(|text| !text.is_empty())
        .collect();
    let output_config = match request.output {
        Some(OutputFormat::JsonSchema { schema, .. }) => Some(serde_json::json!({
            "format": {"type": "json_schema", "schema": schema}
        })),
        Some(OutputFormat::JsonObject) => {
            system.push(JSON_OBJECT_INSTRUCTION);
            None
        }
        None => None,
    };
    let system = (!system.is_empty()).then(|| {
        let text = system.join("\n\n");
        if request.cache_prompt {
            WireSystem::Blocks([WireSystemBlock {
                kind: "text",
                text,
                cache_control: EPHEMERAL,
            }])
        } else {
            WireSystem::Text(text)
        }
    });
    let tools = (!request.tools.is_empty()).then(|| wire_tools(request.tools));
    let body = WireRequest {
        model,
        max_tokens: request
            .max_tokens
            .unwrap_or_else(|| default_max_tokens(model, request.reasoning_budget)),
        system,
        messages: wire_turns(request.messages, request.cache_prompt),
        stream: request.stream,
        // The API refuses a temperature together with thinking.
        temperature: request
            .temperature
            .filter(|_| request.reasoning_budget.is_none()),
        tool_choice: (tools.is_some() && !request.allow_tools)
            .then(|| serde_json::json!({"type": "none"})),
        tools,
        thinking: request
            .reasoning_budget
            .map(|budget| serde_json::json!({"type": "enabled", "budget_tokens": budget})),
        output_config,
    };
    serde_json::to_vec(&body)
        .map(Bytes::from)
        .map_err(|e| ModelError::Protocol(format!("could not encode the request: {e}")))
}

fn wire_tools(tools: &[ToolSpec]) -> Vec<WireTool<'_>> {
    tools
        .iter()
        .map(|tool| WireTool {
            name: &tool.name,
            description: &tool.description,
            input_schema: &tool.parameters,
        })
        .collect()
}

/// The conversation as user and assistant turns (system messages are left out: they go
/// in `system`). With `cache_prompt`, the last turn from history is marked cacheable.
fn wire_turns(messages: &[Message], cache_prompt: bool) -> Vec<WireTurn<'_>> {
    let mut turns: Vec<WireTurn<'_>> = Vec::new();
    let mut last_history_turn = None;
    for message in messages {
        let (role, blocks) = match message.role {
            Role::System => continue,
            Role::User => ("user", user_blocks(message)),
            Role::Assistant => ("assistant", assistant_blocks(message)),
            Role::Tool => ("user", vec![tool_result(message)]),
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some(turn) if turn.role == role => turn.content.extend(blocks),
            _ => turns.push(WireTurn {
                role,
                content: blocks,
            }),
        }
        if message.from_history {
            last_history_turn = Some(turns.len() - 1);
        }
    }
    if cache_prompt
        && let Some(index) = last_history_turn
        && let Some(block) = turns[index]
            .content
            .iter_mut()
            .rev()
            .find(|b| b.body.cacheable())
    {
        block.cache_control = Some(EPHEMERAL);
    }
    turns
}

fn user_blocks(message: &Message) -> Vec<WireBlock<'_>> {
    match message.content.as_deref() {
        Some(text) if !text.is_empty() => vec![BlockBody::Text { text }.block()],
        _ => Vec::new(),
    }
}

/// Reasoning blocks first (as they came), then the text, then the function calls.
fn assistant_blocks(message: &Message) -> Vec<WireBlock<'_>> {
    let mut blocks: Vec<WireBlock<'_>> = message
        .reasoning_blocks
        .iter()
        .map(|block| match block {
            ReasoningBlock::Thinking {
                thinking,
                signature,
            } => BlockBody::Thinking {
                thinking,
                signature,
            }
            .block(),
            ReasoningBlock::RedactedThinking { data } => {
                BlockBody::RedactedThinking { data }.block()
            }
        })
        .collect();
    if let Some(text) = message.content.as_deref().filter(|t| !t.is_empty()) {
        blocks.push(BlockBody::Text { text }.block());
    }
    for call in message.tool_calls.iter().flatten() {
        let input = serde_json::from_str::<Value>(&call.arguments)
            .ok()
            .filter(Value::is_object)
            .unwrap_or_else(|| Value::Object(Map::new()));
        blocks.push(
            BlockBody::ToolUse {
                id: &call.id,
                name: &call.name,
                input,
            }
            .block(),
        );
    }
    blocks
}

fn tool_result(message: &Message) -> WireBlock<'_> {
    BlockBody::ToolResult {
        tool_use_id: message.tool_call_id.as_deref().unwrap_or(""),
        content: message.content.as_deref().unwrap_or(""),
        is_error: message.tool_call_error == Some(true),
    }
    .block()
}

// ----- the answer -----

/// What kind of content block is open at an index of the stream.
enum OpenBlock {
    Text,
    Thinking {
        signature: String,
    },
    ToolUse,
    /// A block type agentos does not use (server tools, citations, …).
    Other,
}

/// Turns the events of a Messages stream into chunks.
struct StreamHandler {
    provider: String,
    /// Open blocks by their index.
    blocks: Vec<(u64, OpenBlock)>,
    usage: Usage,
    started: bool,
}

impl StreamHandler {
    fn new(provider: &str) -> Self {
        StreamHandler {
            provider: provider.to_string(),
            blocks: Vec::new(),
            usage: Usage::default(),
            started: false,
        }
    }

    fn protocol(&self, what: &str, data: &str) -> ModelError {
        ModelError::Protocol(format!(
            "{} sent {what}: {}",
            self.provider,
            one_line(data, QUOTE_CHARS)
        ))
    }

    fn start_block(&mut self, index: u64, block: &Value, out: &mut Vec<Chunk>) {
        let text = |key: &str| block.get(key).and_then(Value::as_str).unwrap_or("");
        let open = match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                if !text("text").is_empty() {
                    out.push(Chunk::Text(text("text").to_string()));
                }
                OpenBlock::Text
            }
            Some("thinking") => {
                if !text("thinking").is_empty() {
                    out.push(Chunk::Reasoning(text("thinking").to_string()));
                }
                OpenBlock::Thinking {
                    signature: text("signature").to_string(),
                }
            }
            Some("redacted_thinking") => {
                out.push(Chunk::RedactedReasoning(text("data").to_string()));
                OpenBlock::Other
            }
            Some("tool_use") => {
                // `input` is `{}` here; the arguments follow as `input_json_delta`s.
                let arguments = match block.get("input") {
                    Some(Value::Object(input)) if !input.is_empty() => {
                        ArgumentsPiece::Whole(Value::Object(input.clone()).to_string())
                    }
                    _ => ArgumentsPiece::None,
                };
                out.push(Chunk::ToolCall(ToolCallDelta {
                    index,
                    id: Some(text("id").to_string()),
                    name: Some(text("name").to_string()),
                    arguments,
                }));
                OpenBlock::ToolUse
            }
            _ => OpenBlock::Other,
        };
        self.blocks.retain(|(i, _)| *i != index);
        self.blocks.push((index, open));
    }

    fn delta(&mut self, index: u64, delta: &Value, out: &mut Vec<Chunk>) {
        let text = |key: &str| delta.get(key).and_then(Value::as_str).unwrap_or("");
        let Some((_, open)) = self.blocks.iter_mut().find(|(i, _)| *i == index) else {
            return;
        };
        match (delta.get("type").and_then(Value::as_str), open) {
            (Some("text_delta"), OpenBlock::Text) if !text("text").is_empty() => {
                out.push(Chunk::Text(text("text").to_string()));
            }
            (Some("thinking_delta"), OpenBlock::Thinking { .. })
                if !text("thinking").is_empty() =>
            {
                out.push(Chunk::Reasoning(text("thinking").to_string()));
            }
            (Some("signature_delta"), OpenBlock::Thinking { signature }) => {
                signature.push_str(text("signature"));
            }
            (Some("input_json_delta"), OpenBlock::ToolUse) => {
                out.push(Chunk::ToolCall(ToolCallDelta {
                    index,
                    arguments: ArgumentsPiece::Append(text("partial_json").to_string()),
                    ..ToolCallDelta::default()
                }));
            }
            // Citations and block or delta types agentos does not use.
            _ => {}
        }
    }

    fn stop_block(&mut self, index: u64, out: &mut Vec<Chunk>) {
        let Some(position) = self.blocks.iter().position(|(i, _)| *i == index) else {
            return;
        };
        if let (_, OpenBlock::Thinking { signature }) = self.blocks.remove(position)
            && !signature.is_empty()
        {
            out.push(Chunk::ReasoningSignature(signature));
        }
    }

    fn add_usage(&mut self, usage: &Value, out: &mut Vec<Chunk>) {
        let count = |key: &str| usage.get(key).and_then(Value::as_u64);
        let u = &mut self.usage;
        // `message_delta` repeats the counts so far; any it leaves out stay as they were.
        if let Some(n) = count("input_tokens") {
            u.input_tokens = n;
        }
        if let Some(n) = count("output_tokens") {
            u.output_tokens = n;
        }
        if let Some(n) = count("cache_read_input_tokens") {
            u.cache_read_tokens = n;
        }
        if let Some(n) = count("cache_creation_input_tokens") {
            u.cache_write_tokens = n;
        }
        u.total_tokens =
            u.input_tokens + u.output_tokens + u.cache_read_tokens + u.cache_write_tokens;
        out.push(Chunk::Usage(*u));
    }
}

impl SseHandler for StreamHandler {
    fn event(&mut self, event: SseEvent, out: &mut Vec<Chunk>) -> Result<bool, ModelError> {
        let value: Value = match serde_json::from_str(&event.data) {
            Ok(value) => value,
            Err(_) if event.data.trim().is_empty() => return Ok(false),
            Err(e) => {
                return Err(self.protocol(&format!("an event that is not JSON ({e})"), &event.data));
            }
        };
        let kind = value
            .get("type")
            .and_then(Value::as_str)
            .or(event.event.as_deref())
            .unwrap_or("");
        let index = value.get("index").and_then(Value::as_u64).unwrap_or(0);
        match kind {
            "message_start" => {
                self.started = true;
                let message = value.get("message");
                if let Some(id) = message.and_then(|m| m.get("id")).and_then(Value::as_str) {
                    out.push(Chunk::ProviderData(Map::from_iter([(
                        "id".to_string(),
                        Value::String(id.to_string()),
                    )])));
                }
                if let Some(usage) = message.and_then(|m| m.get("usage")) {
                    self.add_usage(usage, out);
                }
            }
            "content_block_start" => {
                let block = value.get("content_block").cloned().unwrap_or(Value::Null);
                self.start_block(index, &block, out);
            }
            "content_block_delta" => {
                let delta = value.get("delta").cloned().unwrap_or(Value::Null);
                self.delta(index, &delta, out);
            }
            "content_block_stop" => self.stop_block(index, out),
            "message_delta" => {
                if let Some(usage) = value.get("usage") {
                    self.add_usage(usage, out);
                }
                if let Some(reason) = value.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    out.push(Chunk::Finish(reason.to_string()));
                }
            }
            "message_stop" => return Ok(true),
            "error" => return Err(api_error(&value, &self.provider)),
            // `ping` and event types added later.
            _ => {}
        }
        Ok(false)
    }

    fn end(&mut self) -> Result<(), ModelError> {
        Err(ModelError::Protocol(format!(
            "{} ended the stream {}",
            self.provider,
            if self.started {
                "before the answer was complete (no message_stop)"
            } else {
                "without sending any answer"
            }
        )))
    }
}

/// An `{"type": "error", "error": {"type", "message"}}` body or event, with the status
/// the error type stands for (so an overloaded API is retried and reported as such).
fn api_error(body: &Value, provider: &str) -> ModelError {
    let kind = body
        .pointer("/error/type")
        .and_then(Value::as_str)
        .unwrap_or("error");
    let message = provider_message(body).unwrap_or_else(|| format!("{provider} reported an error"));
    let message = one_line(&message, MAX_ERROR_MESSAGE_CHARS);
    let status = match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        _ => 500,
    };
    ModelError::Http {
        status,
        message: format!("{message} ({kind})"),
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
    if value.get("type").and_then(Value::as_str) == Some("error") {
        return Err(api_error(&value, provider));
    }
    let content = value
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            ModelError::Protocol(format!("{provider} sent an answer without content"))
        })?;
    let mut handler = StreamHandler::new(provider);
    let mut chunks = Vec::new();
    if let Some(id) = value.get("id").and_then(Value::as_str) {
        chunks.push(Chunk::ProviderData(Map::from_iter([(
            "id".to_string(),
            Value::String(id.to_string()),
        )])));
    }
    for (index, block) in content.iter().enumerate() {
        handler.start_block(index as u64, block, &mut chunks);
        handler.stop_block(index as u64, &mut chunks);
    }
    if let Some(usage) = value.get("usage") {
        handler.add_usage(usage, &mut chunks);
    }
    if let Some(reason) = value.get("stop_reason").and_then(Value::as_str) {
        chunks.push(Chunk::Finish(reason.to_string()));
    }
    Ok(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Assembler;
    use crate::model::transport::is_retryable;
    use crate::run::ToolCall;
    use serde_json::json;

    fn message(role: Role, content: &str) -> Message {
        Message {
            role,
            content: Some(content.into()),
            ..Message::default()
        }
    }

    fn request<'a>(messages: &'a [Message], tools: &'a [ToolSpec]) -> ModelRequest<'a> {
        ModelRequest {
            messages,
            temperature: None,
            max_tokens: None,
            output: None,
            stream: true,
            tools,
            allow_tools: true,
            reasoning_budget: None,
            cache_prompt: false,
        }
    }

    fn encode(request: &ModelRequest<'_>) -> Value {
        serde_json::from_slice(&request_body("claude-sonnet-4-5", request).unwrap()).unwrap()
    }

    /// A tool loop: a user question, an assistant turn with thinking and two calls, their
    /// results, and a follow-up question.
    fn tool_loop() -> Vec<Message> {
        let mut assistant = message(Role::Assistant, "");
        assistant.reasoning_content = Some("Let me look.".into());
        assistant.reasoning_blocks = vec![
            ReasoningBlock::Thinking {
                thinking: "Let me look.".into(),
                signature: "sig-1".into(),
            },
            ReasoningBlock::RedactedThinking {
                data: "opaque".into(),
            },
        ];
        assistant.tool_calls = Some(vec![
            ToolCall {
                id: "toolu_1".into(),
                name: "weather".into(),
                arguments: r#"{"city":"Paris"}"#.into(),
            },
            ToolCall {
                id: "toolu_2".into(),
                name: "clock".into(),
                arguments: String::new(),
            },
        ]);
        let mut first = message(Role::Tool, "sunny");
        first.tool_call_id = Some("toolu_1".into());
        let mut second = message(Role::Tool, "no clock");
        second.tool_call_id = Some("toolu_2".into());
        second.tool_call_error = Some(true);
        vec![
            message(Role::System, "Be brief."),
            message(Role::User, "Weather and time?"),
            assistant,
            first,
            second,
        ]
    }

    #[test]
    fn request_has_system_turns_tool_results_and_replayed_thinking() {
        let messages = tool_loop();
        let tools = [ToolSpec {
            name: "weather".into(),
            description: "The weather".into(),
            parameters: json!({"type": "object"}),
            requires_confirmation: false,
        }];
        let mut req = request(&messages, &tools);
        req.reasoning_budget = Some(2048);
        req.temperature = Some(0.3);
        let body = encode(&req);
        assert_eq!(body["system"], "Be brief.");
        assert_eq!(body["max_tokens"], 2048 + 8192);
        assert_eq!(
            body["thinking"],
            json!({"type": "enabled", "budget_tokens": 2048})
        );
        assert!(
            body.get("temperature").is_none(),
            "no temperature with thinking"
        );
        assert_eq!(
            body["tools"],
            json!([{"name": "weather", "description": "The weather",
                    "input_schema": {"type": "object"}}])
        );
        assert!(body.get("tool_choice").is_none());
        assert_eq!(
            body["messages"],
            json!([
                {"role": "user", "content": [{"type": "text", "text": "Weather and time?"}]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "Let me look.", "signature": "sig-1"},
                    {"type": "redacted_thinking", "data": "opaque"},
                    {"type": "tool_use", "id": "toolu_1", "name": "weather",
                     "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "clock", "input": {}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny",
                     "is_error": false},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": "no clock",
                     "is_error": true}
                ]}
            ])
        );
    }

    #[test]
    fn limits_caching_and_output_formats() {
        let mut messages = vec![
            message(Role::System, "Be brief."),
            message(Role::User, "Earlier"),
            message(Role::Assistant, "Earlier answer"),
            message(Role::User, "Now"),
        ];
        messages[1].from_history = true;
        messages[2].from_history = true;
        let tools = [ToolSpec {
            name: "t".into(),
            description: String::new(),
            parameters: json!({"type": "object"}),
            requires_confirmation: false,
        }];
        let mut req = request(&messages, &tools);
        req.cache_prompt = true;
        req.allow_tools = false;
        req.max_tokens = Some(300);
        req.temperature = Some(0.2);
        let format = OutputFormat::JsonSchema {
            name: "Answer".into(),
            description: None,
            schema: json!({"type": "object", "properties": {"a": {"type": "string"}}}),
            strict: true,
        };
        req.output = Some(&format);
        let body = encode(&req);
        assert_eq!(
            body["system"],
            json!([{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}])
        );
        assert_eq!(body["max_tokens"], 300);
        assert_eq!(body["temperature"], 0.2);
        assert_eq!(body["tool_choice"], json!({"type": "none"}));
        assert_eq!(
            body["messages"][1],
            json!({"role": "assistant", "content": [{"type": "text", "text": "Earlier answer",
                   "cache_control": {"type": "ephemeral"}}]})
        );
        assert!(
            body["messages"][2]["content"][0]
                .get("cache_control")
                .is_none()
        );
        assert_eq!(
            body["output_config"],
            json!({"format": {"type": "json_schema",
                   "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}})
        );

        let any = OutputFormat::JsonObject;
        let mut req = request(&messages, &[]);
        req.output = Some(&any);
        let body = encode(&req);
        assert_eq!(
            body["system"],
            format!("Be brief.\n\n{JSON_OBJECT_INSTRUCTION}")
        );
        assert!(body.get("output_config").is_none());
        assert!(body.get("tools").is_none());
        assert_eq!(default_max_tokens("claude-3-haiku-20240307", None), 4096);
    }

    /// Feeds `events` (type, data) to a stream handler; returns the chunks, or the error.
    fn decode(events: &[Value]) -> Result<Vec<Chunk>, ModelError> {
        let mut handler = StreamHandler::new("Anthropic");
        let mut out = Vec::new();
        for event in events {
            let sse = SseEvent {
                event: event["type"].as_str().map(str::to_string),
                data: event.to_string(),
            };
            if handler.event(sse, &mut out)? {
                return Ok(out);
            }
        }
        handler.end().map(|()| out)
    }

    fn assemble(chunks: &[Chunk]) -> crate::model::ModelResponse {
        let mut assembler = Assembler::default();
        for chunk in chunks {
            assembler.add(chunk);
        }
        assembler.finish()
    }

    #[test]
    fn stream_with_thinking_tool_use_and_usage() {
        let chunks = decode(&[
            json!({"type": "message_start", "message": {"id": "msg_1", "usage":
                   {"input_tokens": 10, "cache_read_input_tokens": 100,
                    "cache_creation_input_tokens": 5, "output_tokens": 1}}}),
            json!({"type": "ping"}),
            json!({"type": "content_block_start", "index": 0,
                   "content_block": {"type": "thinking", "thinking": ""}}),
            json!({"type": "content_block_delta", "index": 0,
                   "delta": {"type": "thinking_delta", "thinking": "Think"}}),
            json!({"type": "content_block_delta", "index": 0,
                   "delta": {"type": "thinking_delta", "thinking": "ing."}}),
            json!({"type": "content_block_delta", "index": 0,
                   "delta": {"type": "signature_delta", "signature": "abc"}}),
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "content_block_start", "index": 1,
                   "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 1,
                   "delta": {"type": "text_delta", "text": "Checking"}}),
            json!({"type": "content_block_delta", "index": 1,
                   "delta": {"type": "citations_delta", "citation": {}}}),
            json!({"type": "content_block_stop", "index": 1}),
            json!({"type": "content_block_start", "index": 2,
                   "content_block": {"type": "tool_use", "id": "toolu_1", "name": "weather",
                                     "input": {}}}),
            json!({"type": "content_block_delta", "index": 2,
                   "delta": {"type": "input_json_delta", "partial_json": "{\"city\":"}}),
            json!({"type": "content_block_delta", "index": 2,
                   "delta": {"type": "input_json_delta", "partial_json": "\"Paris\"}"}}),
            json!({"type": "content_block_stop", "index": 2}),
            json!({"type": "content_block_start", "index": 3,
                   "content_block": {"type": "tool_use", "id": "toolu_2", "name": "clock",
                                     "input": {}}}),
            json!({"type": "content_block_delta", "index": 3,
                   "delta": {"type": "input_json_delta", "partial_json": ""}}),
            json!({"type": "content_block_stop", "index": 3}),
            json!({"type": "content_block_start", "index": 4,
                   "content_block": {"type": "server_tool_use", "id": "x"}}),
            json!({"type": "content_block_stop", "index": 4}),
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"},
                   "usage": {"output_tokens": 42}}),
            json!({"type": "message_stop"}),
        ])
        .unwrap();
        let response = assemble(&chunks);
        assert_eq!(response.content, "Checking");
        assert_eq!(response.reasoning, "Thinking.");
        assert_eq!(
            response.reasoning_blocks,
            vec![ReasoningBlock::Thinking {
                thinking: "Thinking.".into(),
                signature: "abc".into()
            }]
        );
        let calls: Vec<_> = response
            .tool_calls
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.as_str()))
            .collect();
        assert_eq!(
            calls,
            [
                ("toolu_1", "weather", r#"{"city":"Paris"}"#),
                ("toolu_2", "clock", "{}")
            ]
        );
        let usage = response.usage.unwrap();
        assert_eq!(
            (
                usage.input_tokens,
                usage.output_tokens,
                usage.cache_read_tokens,
                usage.cache_write_tokens,
                usage.total_tokens
            ),
            (10, 42, 100, 5, 157)
        );
        assert_eq!(response.finish_reason.as_deref(), Some("tool_use"));
        assert_eq!(response.provider_data, Some(json!({"id": "msg_1"})));
    }

    #[test]
    fn errors_in_streams_and_bodies() {
        let error = decode(&[
            json!({"type": "message_start", "message": {"id": "m"}}),
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ])
        .unwrap_err();
        match &error {
            ModelError::Http { status, message } => {
                assert_eq!(*status, 529);
                assert_eq!(message, "Overloaded (overloaded_error)");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(is_retryable(&error));
        let cut = decode(&[json!({"type": "message_start", "message": {"id": "m"}})]).unwrap_err();
        assert!(cut.to_string().contains("no message_stop"), "{cut}");
        let refused = whole_answer(
            br#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: too big"}}"#,
            "Anthropic",
        )
        .unwrap_err();
        assert!(matches!(refused, ModelError::Http { status: 400, .. }));
        assert!(!is_retryable(&refused));
    }

    /// Serves one raw HTTP answer per connection, in order (the last repeating); returns
    /// the base URL and the number of requests served.
    fn raw_server(
        answers: Vec<String>,
    ) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::{BufRead, Read, Write};
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let count = std::sync::Arc::new(AtomicUsize::new(0));
        let served = count.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let n = served.fetch_add(1, Ordering::SeqCst);
                let answer = answers.get(n).or(answers.last()).unwrap();
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        (url, count)
    }

    #[tokio::test]
    async fn one_retry_budget_covers_statuses_and_errors_before_the_answer() {
        let overloaded_status = "HTTP/1.1 529 Overloaded\r\nContent-Type: application/json\r\n\
            retry-after: 0\r\nConnection: close\r\nContent-Length: 75\r\n\r\n\
            {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Busy\"}}"
            .to_string();
        let events = [
            json!({"type": "message_start", "message": {"id": "m", "usage": {"input_tokens": 1}}}),
            json!({"type": "ping"}),
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ]
        .iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap()))
        .collect::<String>();
        let overloaded_stream = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\
             Content-Length: {}\r\n\r\n{events}",
            events.len()
        );
        let answer = json!({"id": "m", "type": "message", "role": "assistant",
            "content": [{"type": "text", "text": "too late"}], "stop_reason": "end_turn"})
        .to_string();
        let success = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\
             Content-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
        // 529, an overloaded stream, 529, an overloaded stream: four attempts, the budget
        // of one call (1 + 3), spent; the answer that would come fifth is never asked for.
        let (url, count) = raw_server(vec![
            overloaded_status.clone(),
            overloaded_stream.clone(),
            overloaded_status,
            overloaded_stream,
            success,
        ]);
        let resolved = ResolvedModel {
            provider: crate::config::ProviderDef {
                name: "claude".into(),
                kind: crate::config::ProviderKind::Anthropic,
                base_url: url,
                api_key_env: None,
                headers: Default::default(),
                display_name: "Anthropic".into(),
                http2: false,
            },
            model: "claude-sonnet-4-5".into(),
            api_key: Some("k".into()),
            missing_key: None,
        };
        let transport = Transport::new(crate::model::transport::Options {
            base_backoff: std::time::Duration::from_millis(1),
            ..Default::default()
        });
        let model = AnthropicModel::new(&resolved, Arc::new(transport));
        let messages = [message(Role::User, "Hi")];
        let error = match model.stream(request(&messages, &[])).await {
            Ok(_) => panic!("the call should fail once its budget is spent"),
            Err(error) => error,
        };
        assert_eq!(error.to_string(), "Overloaded (overloaded_error)");
        assert_eq!(
            count.load(std::sync::atomic::Ordering::SeqCst),
            1 + crate::model::transport::MAX_RETRIES as usize
        );
    }

    #[test]
    fn whole_answers() {
        let chunks = whole_answer(
            br#"{"id":"msg_2","type":"message","role":"assistant","content":[
                {"type":"thinking","thinking":"Hmm.","signature":"s"},
                {"type":"redacted_thinking","data":"enc"},
                {"type":"text","text":"Hello"},
                {"type":"tool_use","id":"toolu_9","name":"t","input":{"x":1}}],
                "stop_reason":"tool_use","usage":{"input_tokens":3,"output_tokens":4}}"#,
            "Anthropic",
        )
        .unwrap();
        let response = assemble(&chunks);
        assert_eq!(response.content, "Hello");
        assert_eq!(response.reasoning, "Hmm.");
        assert_eq!(response.reasoning_blocks.len(), 2);
        assert_eq!(response.tool_calls[0].arguments, r#"{"x":1}"#);
        assert_eq!(response.usage.unwrap().total_tokens, 7);
    }
}
