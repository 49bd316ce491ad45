//! Model providers: each wire protocol turns a [`ModelRequest`] into a stream of
//! provider-neutral [`Chunk`]s. Providers know nothing about sessions, the terminal or HTTP
//! serving, and the engine knows nothing about any provider's wire format.
//!
//! - `transport`: the HTTP client every provider shares (pooling, timeouts, retries, error
//!   bodies);
//! - `sse`: the byte-push decoder of provider event streams;
//! - `openai`: OpenAI-compatible chat completions;
//! - `test`: the offline `test` model.

pub mod anthropic;
pub mod openai;
pub mod sse;
pub mod test;
pub mod transport;

use std::pin::Pin;
use std::sync::Arc;

use futures_util::Stream;
use futures_util::future::BoxFuture;
use serde_json::{Map, Value};

use crate::config::{Config, ProviderKind, ResolvedModel};
use crate::run::{Message, ReasoningBlock, ToolCall};
use crate::schema::OutputFormat;
use crate::tools::ToolSpec;

/// What the run object and `/agents` report about a model, as the provider names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelInfo {
    /// The model id sent to the provider and reported as `model` (e.g. `gpt-4o-mini`).
    pub id: String,
    /// The provider name reported as `model_provider` (e.g. `OpenAI`).
    pub provider: String,
    /// AgentOS's model class name (`OpenAIChat`, `OpenAILike`, `Claude`, `TestModel`).
    pub class_name: String,
}

/// One call to a model.
#[derive(Clone, Copy, Debug)]
pub struct ModelRequest<'a> {
    /// The conversation: system prompt, history, the new user message, tool rounds.
    pub messages: &'a [Message],
    pub temperature: Option<f64>,
    pub max_tokens: Option<u32>,
    /// The answer must be JSON of this form.
    pub output: Option<&'a OutputFormat>,
    /// Stream pieces as they are produced (true) or answer in one piece (false).
    pub stream: bool,
    /// The functions of the run; empty for none.
    pub tools: &'a [ToolSpec],
    /// Whether the model may call `tools` now. When false (the run's tool-call limit is
    /// reached) the model must answer; providers that need the functions to read earlier
    /// calls still list them.
    pub allow_tools: bool,
    /// Tokens the model may spend reasoning before it answers (extended thinking), for
    /// providers that take a budget.
    pub reasoning_budget: Option<u32>,
    /// Mark the system prompt and the history as cacheable, for providers that cache
    /// prompts only when asked.
    pub cache_prompt: bool,
}

/// A piece of a model's answer, in the order the provider produced it.
#[derive(Clone, Debug, PartialEq)]
pub enum Chunk {
    /// Answer text (possibly empty: the first, role-only piece of a stream).
    Text(String),
    /// Reasoning ("thinking") text.
    Reasoning(String),
    /// The provider's signature over the reasoning since the last signature: that
    /// reasoning is one block to send back unchanged.
    ReasoningSignature(String),
    /// Reasoning the provider sent encrypted, to send back unchanged.
    RedactedReasoning(String),
    /// A piece of a function call; pieces with the same index make one call.
    ToolCall(ToolCallDelta),
    /// Token counts; a later report replaces an earlier one.
    Usage(Usage),
    /// Provider metadata of the answer (`id`, `system_fingerprint` for OpenAI); merged.
    ProviderData(Map<String, Value>),
    /// Why the model stopped (`stop`, `tool_calls`, `length`, …).
    Finish(String),
}

impl Chunk {
    /// Whether the chunk is part of the answer itself (passed on to the run's client).
    pub fn is_answer(&self) -> bool {
        match self {
            Chunk::Text(text) => !text.is_empty(),
            Chunk::Reasoning(_) | Chunk::RedactedReasoning(_) | Chunk::ToolCall(_) => true,
            Chunk::ReasoningSignature(_)
            | Chunk::Usage(_)
            | Chunk::ProviderData(_)
            | Chunk::Finish(_) => false,
        }
    }
}

/// Reads `stream` up to the first piece of the answer and gives it back whole, or the
/// error that came before any of the answer: nothing was passed on yet, so the provider
/// may be asked again (an API that accepted the request, then reported itself
/// overloaded inside the stream).
pub async fn until_answer(mut stream: ChunkStream) -> Result<ChunkStream, ModelError> {
    use futures_util::StreamExt;
    let mut held = Vec::new();
    loop {
        match stream.next().await {
            None => break,
            Some(Ok(chunk)) => {
                let began = chunk.is_answer();
                held.push(chunk);
                if began {
                    break;
                }
            }
            Some(Err(error)) => return Err(error),
        }
    }
    let held = futures_util::stream::iter(held.into_iter().map(Ok));
    Ok(Box::pin(held.chain(stream)))
}

/// A piece of a function call.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ToolCallDelta {
    /// Which call of the turn this piece belongs to.
    pub index: u64,
    pub id: Option<String>,
    pub name: Option<String>,
    pub arguments: ArgumentsPiece,
}

/// The arguments carried by a [`ToolCallDelta`].
#[derive(Clone, Debug, Default, PartialEq)]
pub enum ArgumentsPiece {
    #[default]
    None,
    /// More JSON text, appended to what came before.
    Append(String),
    /// The whole arguments at once, replacing anything before.
    Whole(String),
}

/// Token counts reported by the provider.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    /// Input tokens that were not read from a prompt cache.
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    pub reasoning_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
}

/// The whole answer of one call, assembled from its chunks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelResponse {
    pub content: String,
    pub reasoning: String,
    /// Signed and redacted reasoning, in order, to replay in later turns.
    pub reasoning_blocks: Vec<ReasoningBlock>,
    pub provider_data: Option<Value>,
    pub usage: Option<Usage>,
    pub finish_reason: Option<String>,
    /// Function calls, ordered by index; empty when the model answered.
    pub tool_calls: Vec<ToolCall>,
}

/// Why a model call failed. The message is the provider's own where it sent one.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ModelError {
    /// The provider answered with an error status (after retries for 429/5xx).
    #[error("{message}")]
    Http { status: u16, message: String },
    /// Could not connect, or the connection broke.
    #[error("{0}")]
    Transport(String),
    /// No byte arrived within the connect or read timeout.
    #[error("{0}")]
    Timeout(String),
    /// The provider's answer could not be understood.
    #[error("{0}")]
    Protocol(String),
    /// The model cannot be called as configured (a key variable is not set).
    #[error("{0}")]
    Unavailable(String),
    /// The answer grew past the agent's `max_answer_bytes` and was cut off there.
    #[error("the answer exceeded max_answer_bytes ({0} bytes) and was cut off")]
    AnswerTooLong(usize),
}

/// The chunks of one call. Dropping it abandons the call at once (its connection is not
/// reused).
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<Chunk, ModelError>> + Send>>;

/// A model endpoint ready to be called. Implementations are cheap to share across runs.
pub trait Model: Send + Sync {
    fn info(&self) -> &ModelInfo;

    /// Starts a call: resolves once the provider has accepted it (retries included), with
    /// the stream of the answer's chunks.
    fn stream<'a>(
        &'a self,
        request: ModelRequest<'a>,
    ) -> BoxFuture<'a, Result<ChunkStream, ModelError>>;
}

/// Calls `model` and waits for its whole answer.
pub async fn complete(
    model: &dyn Model,
    request: ModelRequest<'_>,
) -> Result<ModelResponse, ModelError> {
    use futures_util::StreamExt;
    let mut chunks = model.stream(request).await?;
    let mut assembler = Assembler::default();
    while let Some(chunk) = chunks.next().await {
        assembler.add(&chunk?);
    }
    Ok(assembler.finish())
}

/// Collects chunks into a [`ModelResponse`].
#[derive(Default)]
pub struct Assembler {
    response: ModelResponse,
    /// Reasoning text not yet closed by a signature.
    unsigned: String,
    provider_data: Map<String, Value>,
    /// `(index, call)` in order of first appearance.
    calls: Vec<(u64, ToolCall)>,
}

impl Assembler {
    pub fn add(&mut self, chunk: &Chunk) {
        match chunk {
            Chunk::Text(text) => self.response.content.push_str(text),
            Chunk::Reasoning(text) => {
                self.response.reasoning.push_str(text);
                self.unsigned.push_str(text);
            }
            Chunk::ReasoningSignature(signature) => {
                self.response
                    .reasoning_blocks
                    .push(ReasoningBlock::Thinking {
                        thinking: std::mem::take(&mut self.unsigned),
                        signature: signature.clone(),
                    });
            }
            Chunk::RedactedReasoning(data) => self
                .response
                .reasoning_blocks
                .push(ReasoningBlock::RedactedThinking { data: data.clone() }),
            Chunk::ToolCall(delta) => self.add_call(delta),
            Chunk::Usage(usage) => self.response.usage = Some(*usage),
            Chunk::ProviderData(data) => {
                for (k, v) in data {
                    self.provider_data.insert(k.clone(), v.clone());
                }
            }
            Chunk::Finish(reason) => self.response.finish_reason = Some(reason.clone()),
        }
    }

    /// The provider metadata seen so far.
    pub fn provider_data(&self) -> Option<Value> {
        (!self.provider_data.is_empty()).then(|| Value::Object(self.provider_data.clone()))
    }

    /// The text so far.
    pub fn content(&self) -> &str {
        &self.response.content
    }

    fn add_call(&mut self, delta: &ToolCallDelta) {
        let slot = match self.calls.iter().position(|(i, _)| *i == delta.index) {
            Some(slot) => slot,
            None => {
                self.calls.push((delta.index, ToolCall::default()));
                self.calls.len() - 1
            }
        };
        let call = &mut self.calls[slot].1;
        if let Some(id) = delta.id.as_deref().filter(|id| !id.is_empty()) {
            call.id = id.to_string();
        }
        // The name comes whole, on the first piece (some providers repeat it on each).
        if let Some(name) = delta.name.as_deref().filter(|n| !n.is_empty())
            && call.name.is_empty()
        {
            call.name = name.to_string();
        }
        match &delta.arguments {
            ArgumentsPiece::None => {}
            ArgumentsPiece::Append(piece) => call.arguments.push_str(piece),
            ArgumentsPiece::Whole(all) => call.arguments.clone_from(all),
        }
    }

    /// The answer. Calls are ordered by index; one without an id gets `call_<index>`, and
    /// empty arguments become `{}`, so every call can be answered and parsed.
    pub fn finish(mut self) -> ModelResponse {
        self.response.provider_data = self.provider_data();
        self.calls.sort_by_key(|(index, _)| *index);
        self.response.tool_calls = self
            .calls
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
            .collect();
        self.response
    }
}

/// A model that cannot be called (its provider's key is not set): every call fails at once
/// with the reason, so the run is stored `ERROR` saying what to fix.
struct Unavailable {
    info: ModelInfo,
    reason: String,
}

impl Model for Unavailable {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn stream<'a>(
        &'a self,
        _request: ModelRequest<'a>,
    ) -> BoxFuture<'a, Result<ChunkStream, ModelError>> {
        let reason = self.reason.clone();
        Box::pin(async move { Err(ModelError::Unavailable(reason)) })
    }
}

/// How a model is reported (`model`, `model_provider`, AgentOS's class name), as its
/// provider names it. Reads no key: a model whose key is missing is described all the same.
pub fn describe(resolved: &ResolvedModel) -> ModelInfo {
    match resolved.provider.kind {
        ProviderKind::Test => test::info(&resolved.model),
        ProviderKind::OpenAi => openai::info(resolved),
        ProviderKind::Anthropic => anthropic::info(resolved),
    }
}

/// The description of a model a stored run names by its reported provider and model id,
/// if a configured provider reports that name.
pub fn describe_reported(config: &Config, provider: &str, model: &str) -> Option<ModelInfo> {
    let def = config
        .providers
        .values()
        .find(|def| def.display_name == provider)?;
    Some(describe(&ResolvedModel {
        provider: def.clone(),
        model: model.to_string(),
        api_key: None,
        missing_key: None,
    }))
}

/// The shared state model clients are built from: one HTTP transport per provider.
#[derive(Default)]
pub struct Providers {
    transports: std::sync::Mutex<std::collections::HashMap<String, Arc<transport::Transport>>>,
}

impl Providers {
    /// The transport of a provider, created on first use.
    fn transport(&self, provider: &crate::config::ProviderDef) -> Arc<transport::Transport> {
        let mut transports = self.transports.lock().unwrap_or_else(|e| e.into_inner());
        transports
            .entry(provider.name.clone())
            .or_insert_with(|| {
                Arc::new(transport::Transport::new(transport::Options {
                    http2_prior_knowledge: provider.http2,
                    ..transport::Options::default()
                }))
            })
            .clone()
    }

    /// Builds the client for a resolved `provider:model` reference.
    pub fn model(&self, resolved: &ResolvedModel) -> Arc<dyn Model> {
        match resolved.provider.kind {
            ProviderKind::Test => Arc::new(test::TestModel::new(&resolved.model)),
            ProviderKind::OpenAi | ProviderKind::Anthropic => {
                if let Some(reason) = resolved.missing_key_message() {
                    return Arc::new(Unavailable {
                        info: describe(resolved),
                        reason,
                    });
                }
                let transport = self.transport(&resolved.provider);
                match resolved.provider.kind {
                    ProviderKind::Anthropic => {
                        Arc::new(anthropic::AnthropicModel::new(resolved, transport))
                    }
                    _ => Arc::new(openai::OpenAiModel::new(resolved, transport)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assembler_joins_text_and_orders_calls_by_index() {
        let mut a = Assembler::default();
        let piece = |index, id: Option<&str>, name: Option<&str>, args: ArgumentsPiece| {
            Chunk::ToolCall(ToolCallDelta {
                index,
                id: id.map(Into::into),
                name: name.map(Into::into),
                arguments: args,
            })
        };
        for chunk in [
            Chunk::Text("Hel".into()),
            Chunk::Text("lo".into()),
            piece(
                1,
                Some("b"),
                Some("second"),
                ArgumentsPiece::Append("{\"x\":".into()),
            ),
            piece(0, None, Some("first"), ArgumentsPiece::None),
            piece(
                1,
                None,
                Some("ignored"),
                ArgumentsPiece::Append("1}".into()),
            ),
            piece(
                2,
                Some("c"),
                Some("third"),
                ArgumentsPiece::Whole("{\"y\":2}".into()),
            ),
            Chunk::ProviderData(Map::from_iter([("id".to_string(), Value::from("r1"))])),
            Chunk::Finish("tool_calls".into()),
        ] {
            a.add(&chunk);
        }
        let r = a.finish();
        assert_eq!(r.content, "Hello");
        let calls: Vec<(&str, &str, &str)> = r
            .tool_calls
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.as_str()))
            .collect();
        assert_eq!(
            calls,
            [
                ("call_0", "first", "{}"),
                ("b", "second", "{\"x\":1}"),
                ("c", "third", "{\"y\":2}")
            ]
        );
        assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(r.provider_data, Some(serde_json::json!({"id": "r1"})));
    }
}
