//! The run object: what every run produces, stores and returns.
//!
//! Its JSON form is AgentOS's `RunOutput.to_dict()`: the body of a non-streaming
//! `POST /agents/{id}/runs`, the output of `agentos run --json`, and the row stored for
//! every run. `None` fields are omitted, timestamps are integer Unix seconds.

mod record;
mod team;
mod workflow;

pub use record::{AnyRun, RunRecord};
pub use team::TeamRunOutput;
pub use workflow::{StepOutput, WorkflowMetrics, WorkflowRunOutput};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Lifecycle of a run, stored and reported in AgentOS's spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RunStatus {
    Pending,
    Running,
    Completed,
    Paused,
    Cancelled,
    Error,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "PENDING",
            RunStatus::Running => "RUNNING",
            RunStatus::Completed => "COMPLETED",
            RunStatus::Paused => "PAUSED",
            RunStatus::Cancelled => "CANCELLED",
            RunStatus::Error => "ERROR",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_uppercase().as_str() {
            "PENDING" => RunStatus::Pending,
            "RUNNING" => RunStatus::Running,
            "COMPLETED" => RunStatus::Completed,
            "PAUSED" => RunStatus::Paused,
            "CANCELLED" => RunStatus::Cancelled,
            "ERROR" => RunStatus::Error,
            _ => return None,
        })
    }

    /// A run in this state will not change any more (PAUSED may still be continued).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            RunStatus::Completed | RunStatus::Cancelled | RunStatus::Error
        )
    }
}

/// Token and timing figures of a run, a model request or a message.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub total_tokens: Option<u64>,
    /// Counted only when the provider reports them (left out when zero, as AgentOS).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cache_read_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cache_write_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reasoning_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub time_to_first_token: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub duration: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub details: Option<MetricsDetails>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsDetails {
    pub model: Vec<ModelMetrics>,
}

/// One model's share of a run's tokens (`metrics.details.model[]`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelMetrics {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    pub id: String,
    pub provider: String,
}

/// A message of the conversation as AgentOS stores it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub content: Option<String>,
    #[serde(default)]
    pub from_history: bool,
    #[serde(default)]
    pub stop_after_tool_call: bool,
    pub role: Role,
    /// The function calls of an assistant turn.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tool_call_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tool_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tool_args: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tool_call_error: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub provider_data: Option<Value>,
    /// The reasoning ("thinking") text of an assistant turn, as AgentOS names it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reasoning_content: Option<String>,
    /// Reasoning the provider needs back unchanged in later turns (signed or redacted
    /// thinking); empty for providers whose reasoning is display only.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub reasoning_blocks: Vec<ReasoningBlock>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub metrics: Option<Metrics>,
    pub created_at: i64,
}

/// A piece of a model's reasoning that must go back to the model as it came: thinking
/// with the provider's signature over it, or thinking the provider sent only encrypted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReasoningBlock {
    Thinking { thinking: String, signature: String },
    RedactedThinking { data: String },
}

/// A function call a model asked for. Stored on the assistant message in AgentOS's shape,
/// `{"id", "function": {"arguments", "name"}, "type": "function"}`; the flat shape
/// (`tool_call_id`, `tool_name`, `tool_args`) and arguments given as an object are read
/// too. Providers turn it into their own wire form.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ToolCall {
    /// The provider's call id, echoed back with the tool's result.
    pub id: String,
    pub name: String,
    /// The arguments as the JSON text the model produced.
    pub arguments: String,
}

impl Serialize for ToolCall {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        struct Function<'a>(&'a ToolCall);
        impl Serialize for Function<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("arguments", &self.0.arguments)?;
                map.serialize_entry("name", &self.0.name)?;
                map.end()
            }
        }
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("function", &Function(self))?;
        map.serialize_entry("type", "function")?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for ToolCall {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let function = value.get("function");
        let field = |keys: &[&str]| -> Option<&Value> {
            keys.iter()
                .find_map(|k| function.and_then(|f| f.get(*k)).or_else(|| value.get(*k)))
        };
        let text = |v: Option<&Value>| match v {
            Some(Value::String(s)) => s.clone(),
            None | Some(Value::Null) => String::new(),
            Some(other) => other.to_string(),
        };
        let arguments = match field(&["arguments", "tool_args"]) {
            None | Some(Value::Null) => "{}".to_string(),
            other => text(other),
        };
        Ok(ToolCall {
            id: text(value.get("id").or_else(|| value.get("tool_call_id"))),
            name: text(field(&["name", "tool_name"])),
            arguments,
        })
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    #[default]
    User,
    Assistant,
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInput {
    pub input_content: String,
}

/// The run object (`RunOutput`), in AgentOS's key order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunOutput {
    pub run_id: String,
    pub agent_id: String,
    pub agent_name: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub parent_run_id: Option<String>,
    pub session_id: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub content: Option<Value>,
    pub content_type: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub model_provider_data: Option<Value>,
    /// The reasoning text of the run's model calls, joined.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reasoning_content: Option<String>,
    pub model: String,
    pub model_provider: String,
    pub session_state: Value,
    pub created_at: i64,
    pub status: RunStatus,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cancellation_stage: Option<String>,
    /// The workflow step that ran this run (step executor runs only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub workflow_step_id: Option<String>,
    pub metrics: Metrics,
    pub messages: Vec<Message>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub metadata: Option<Value>,
    /// Tool executions; absent when the run errored or was cancelled (as AgentOS).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tools: Option<Vec<ToolExecution>>,
    /// What a paused run waits for: one entry per tool call needing a decision.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub requirements: Option<Vec<Value>>,
    pub input: RunInput,
}

/// Start, end and duration of a tool call, in (fractional) Unix seconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolMetrics {
    pub start_time: f64,
    pub end_time: f64,
    pub duration: f64,
}

/// One tool call of a run, AgentOS's `ToolExecution`: every key is always present.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolExecution {
    pub tool_call_id: String,
    pub tool_name: String,
    /// The arguments object (or the raw text when the model sent invalid JSON).
    pub tool_args: Value,
    #[serde(default)]
    pub tool_call_error: Option<bool>,
    #[serde(default)]
    pub result: Option<String>,
    #[serde(default)]
    pub metrics: Option<ToolMetrics>,
    #[serde(default)]
    pub child_run_id: Option<String>,
    #[serde(default)]
    pub stop_after_tool_call: bool,
    pub created_at: i64,
    #[serde(default)]
    pub requires_confirmation: Option<bool>,
    #[serde(default)]
    pub confirmed: Option<bool>,
    #[serde(default)]
    pub confirmation_note: Option<String>,
    #[serde(default)]
    pub requires_user_input: Option<bool>,
    #[serde(default)]
    pub user_input_schema: Option<Value>,
    #[serde(default)]
    pub user_feedback_schema: Option<Value>,
    #[serde(default)]
    pub answered: Option<bool>,
    #[serde(default)]
    pub external_execution_required: Option<bool>,
    #[serde(default)]
    pub external_execution_silent: Option<bool>,
    #[serde(default)]
    pub approval_type: Option<String>,
    #[serde(default)]
    pub approval_id: Option<String>,
    #[serde(default)]
    pub parent_tool_call_id: Option<String>,
}

impl RunOutput {
    /// The content as plain text: a string as is, an object as compact JSON.
    pub fn content_text(&self) -> String {
        match &self.content {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        }
    }
}

/// Fractional Unix seconds: heartbeats, queue times and cutoffs.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Current Unix time in whole seconds, the unit of every run and event timestamp.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A new random id in the UUID4 form AgentOS uses for runs, sessions and messages.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tool_calls_keep_agentos_stored_shape() {
        let call = ToolCall {
            id: "call_1".into(),
            name: "get_weather".into(),
            arguments: r#"{"city":"Paris"}"#.into(),
        };
        let text = serde_json::to_string(&call).unwrap();
        assert_eq!(
            text,
            r#"{"id":"call_1","function":{"arguments":"{\"city\":\"Paris\"}","name":"get_weather"},"type":"function"}"#
        );
        assert_eq!(serde_json::from_str::<ToolCall>(&text).unwrap(), call);
        let flat: ToolCall = serde_json::from_value(json!({
            "tool_call_id": "c2", "tool_name": "t", "tool_args": {"a": 1}
        }))
        .unwrap();
        assert_eq!((flat.id.as_str(), flat.name.as_str()), ("c2", "t"));
        assert_eq!(flat.arguments, r#"{"a":1}"#);
        let bare: ToolCall =
            serde_json::from_value(json!({"id": "c3", "function": {"name": "u"}})).unwrap();
        assert_eq!(bare.arguments, "{}");
    }
}
