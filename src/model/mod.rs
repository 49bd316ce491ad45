//! Model providers: each wire protocol turns a [`ModelRequest`] into text deltas and a
//! [`ModelResponse`]. Providers know nothing about sessions, the terminal or HTTP.

pub mod openai;
pub mod sse;
pub mod test;

use std::sync::Arc;

use serde_json::Value;

use crate::cancel::CancelToken;
use crate::config::{ProviderKind, ResolvedModel};
use crate::run::Message;

/// One call to a model.
#[derive(Clone, Debug)]
pub struct ModelRequest<'a> {
    /// The conversation: system prompt, history, the new user message.
    pub messages: &'a [Message],
    pub temperature: Option<f64>,
    pub max_tokens: Option<u32>,
    /// An OpenAI `response_format` object (`{"type":"json_schema",…}` or `{"type":"json_object"}`).
    pub response_format: Option<Value>,
    /// Stream deltas as they arrive (true) or make one blocking request (false).
    pub stream: bool,
    /// Functions the model may call (sent as OpenAI `tools`); empty for none.
    pub tools: &'a [crate::tools::ToolSpec],
}

/// A function call the model asked for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ToolCall {
    /// The provider's call id (`call_…`), echoed back in the tool result message.
    pub id: String,
    pub name: String,
    /// The arguments as the JSON text the model produced.
    pub arguments: String,
}

/// A piece of the answer as it streams in.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Delta {
    pub content: String,
    /// Provider metadata of the response (`{"id","system_fingerprint"}` for OpenAI).
    pub provider_data: Option<Value>,
}

/// Token counts reported by the provider.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    pub reasoning_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
}

/// The whole answer of one call.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelResponse {
    pub content: String,
    pub provider_data: Option<Value>,
    pub usage: Option<Usage>,
    pub finish_reason: Option<String>,
    /// Function calls, assembled from the stream's deltas; empty when the model answered.
    pub tool_calls: Vec<ToolCall>,
}

/// Why a model call failed. The message is the provider's own where it sent one.
#[derive(Debug, thiserror::Error)]
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
    /// The run was cancelled while the request was in flight.
    #[error("cancelled")]
    Cancelled,
    /// The model cannot be called as configured (a key variable is not set).
    #[error("{0}")]
    Unavailable(String),
    /// The answer grew past the agent's `max_answer_bytes` and was cut off there.
    #[error("the answer exceeded max_answer_bytes ({0} bytes) and was cut off")]
    AnswerTooLong(usize),
}

/// A model endpoint ready to be called. Implementations are cheap to share across runs.
pub trait Model: Send + Sync {
    /// The model id sent to the provider and reported as `model` (e.g. `gpt-4o-mini`).
    fn id(&self) -> &str;
    /// The provider name reported as `model_provider` (e.g. `OpenAI`).
    fn provider(&self) -> &str;
    /// Calls the model. `on_delta` receives the answer piece by piece when streaming (and
    /// once with the whole text otherwise). Returns promptly with [`ModelError::Cancelled`]
    /// once `cancel` fires, aborting any in-flight request.
    fn invoke(
        &self,
        request: &ModelRequest<'_>,
        cancel: &CancelToken,
        on_delta: &mut dyn FnMut(&Delta),
    ) -> Result<ModelResponse, ModelError>;
}

/// A model that cannot be called (its provider's key is not set): every call fails at once
/// with the reason, so the run is stored `ERROR` saying what to fix.
struct Unavailable {
    id: String,
    provider: String,
    reason: String,
}

impl Model for Unavailable {
    fn id(&self) -> &str {
        &self.id
    }

    fn provider(&self) -> &str {
        &self.provider
    }

    fn invoke(
        &self,
        _request: &ModelRequest<'_>,
        _cancel: &CancelToken,
        _on_delta: &mut dyn FnMut(&Delta),
    ) -> Result<ModelResponse, ModelError> {
        Err(ModelError::Unavailable(self.reason.clone()))
    }
}

/// Builds the client for a resolved `provider:model` reference.
pub fn from_resolved(resolved: &ResolvedModel) -> Arc<dyn Model> {
    if let Some(reason) = resolved.missing_key_message() {
        return Arc::new(Unavailable {
            id: resolved.model.clone(),
            provider: resolved.provider.display_name.clone(),
            reason,
        });
    }
    match resolved.provider.kind {
        ProviderKind::Test => Arc::new(test::TestModel::new(&resolved.model)),
        ProviderKind::OpenAi | ProviderKind::Anthropic => {
            Arc::new(openai::OpenAiModel::new(resolved))
        }
    }
}
