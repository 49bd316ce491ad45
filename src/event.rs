//! The one event vocabulary of agentos.
//!
//! The engine emits [`Event`]s; the terminal renderer, `--jsonl` and the HTTP server's SSE
//! stream are all sinks of the same values. Names and payloads are AgentOS's (its
//! `RunEvent` catalogue): `None` fields are omitted and `created_at` is integer seconds.

use serde::Serialize;
use serde_json::Value;

use crate::run::{Metrics, ToolExecution, now_secs};

/// Who emitted an event: the fields every agent event carries.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EventSource {
    pub agent_id: String,
    pub agent_name: String,
    pub run_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_run_id: Option<String>,
    pub session_id: String,
    pub nested_depth: u32,
}

/// The kind-specific part of an event. Serialized flat next to [`EventSource`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum EventData {
    RunStarted {
        model: String,
        model_provider: String,
    },
    ModelRequestStarted {
        model: String,
        model_provider: String,
    },
    RunContent {
        /// A text delta, or the whole parsed object when an output schema is used.
        content: Value,
        workflow_agent: bool,
        content_type: String,
        reasoning_content: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        model_provider_data: Option<Value>,
    },
    ModelRequestCompleted {
        model: String,
        model_provider: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        input_tokens: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        output_tokens: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        total_tokens: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        time_to_first_token: Option<f64>,
        reasoning_tokens: u64,
        cache_read_tokens: u64,
        cache_write_tokens: u64,
    },
    RunContentCompleted {},
    RunCompleted {
        #[serde(skip_serializing_if = "Option::is_none")]
        content: Option<Value>,
        content_type: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        model_provider_data: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        metadata: Option<Value>,
        session_state: Value,
        metrics: Box<Metrics>,
    },
    RunError {
        content: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        error_type: Option<String>,
    },
    RunCancelled {
        #[serde(skip_serializing_if = "Option::is_none")]
        content: Option<String>,
        reason: String,
    },
    ToolCallStarted {
        tool: Box<ToolExecution>,
    },
    ToolCallCompleted {
        /// `name(arg=value) completed in 0.0008s. `
        content: String,
        tool: Box<ToolExecution>,
    },
    ToolCallError {
        tool: Box<ToolExecution>,
        error: String,
    },
    RunPaused {
        content: String,
        tools: Vec<ToolExecution>,
        requirements: Vec<Value>,
    },
    RunContinued {},
}

impl EventData {
    /// The AgentOS event name, also the SSE `event:` line.
    pub fn name(&self) -> &'static str {
        match self {
            EventData::RunStarted { .. } => "RunStarted",
            EventData::ModelRequestStarted { .. } => "ModelRequestStarted",
            EventData::RunContent { .. } => "RunContent",
            EventData::ModelRequestCompleted { .. } => "ModelRequestCompleted",
            EventData::RunContentCompleted {} => "RunContentCompleted",
            EventData::RunCompleted { .. } => "RunCompleted",
            EventData::RunError { .. } => "RunError",
            EventData::RunCancelled { .. } => "RunCancelled",
            EventData::ToolCallStarted { .. } => "ToolCallStarted",
            EventData::ToolCallCompleted { .. } => "ToolCallCompleted",
            EventData::ToolCallError { .. } => "ToolCallError",
            EventData::RunPaused { .. } => "RunPaused",
            EventData::RunContinued {} => "RunContinued",
        }
    }
}

/// One event of a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    pub created_at: i64,
    pub event: &'static str,
    #[serde(flatten)]
    pub source: EventSource,
    #[serde(flatten)]
    pub data: EventData,
    /// Position in the run's event log; set on resumable (background, continue) streams.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_index: Option<u64>,
}

impl Event {
    pub fn new(source: &EventSource, data: EventData) -> Self {
        Event {
            created_at: now_secs(),
            event: data.name(),
            source: source.clone(),
            data,
            event_index: None,
        }
    }

    /// Compact one-line JSON, as in an SSE `data:` line or a `--jsonl` line.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("events serialize to JSON: all keys are strings")
    }

    /// The SSE frame: `event:` line, one `data:` line, blank line.
    pub fn to_sse(&self) -> String {
        format!("event: {}\ndata: {}\n\n", self.event, self.to_json())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_flat_in_agentos_shape() {
        let source = EventSource {
            agent_id: "story-writer".into(),
            agent_name: "Story Writer".into(),
            run_id: "r1".into(),
            parent_run_id: None,
            session_id: "s1".into(),
            nested_depth: 0,
        };
        let ev = Event::new(&source, EventData::RunContentCompleted {});
        let v: Value = serde_json::from_str(&ev.to_json()).unwrap();
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        let mut expected = vec![
            "agent_id",
            "agent_name",
            "created_at",
            "event",
            "nested_depth",
            "run_id",
            "session_id",
        ];
        expected.sort();
        let mut keys = keys;
        keys.sort();
        assert_eq!(keys, expected);
        assert_eq!(v["event"], "RunContentCompleted");
        assert!(
            ev.to_sse()
                .starts_with("event: RunContentCompleted\ndata: {")
        );
        assert!(ev.to_sse().ends_with("}\n\n"));
    }
}
