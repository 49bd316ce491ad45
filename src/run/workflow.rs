//! The workflow run object (AgentOS's `WorkflowRunOutput.to_dict()`) and the output of
//! one step (`StepOutput`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{AnyRun, Metrics, RunStatus};

/// A workflow run: the input, each step's output and the runs of the steps' agents and teams.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkflowRunOutput {
    /// The workflow's input message.
    pub input: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub content: Option<Value>,
    pub content_type: String,
    pub workflow_id: String,
    pub workflow_name: String,
    pub run_id: String,
    pub session_id: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user_id: Option<String>,
    pub created_at: i64,
    pub status: RunStatus,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cancellation_stage: Option<String>,
    #[serde(default)]
    pub metadata: Value,
    /// One entry per top-level step that ran; composite steps nest their children.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub step_results: Vec<StepOutput>,
    /// The runs of every agent and team the steps ran, in the order they finished.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub step_executor_runs: Vec<AnyRun>,
    pub metrics: WorkflowMetrics,
}

/// `metrics` of a workflow run: each agent or team step's run metrics by step name, and
/// the whole run's duration. There are no token totals at this level (as AgentOS).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkflowMetrics {
    /// `{step name: {step_name, executor_type, executor_name, metrics}}`.
    #[serde(default)]
    pub steps: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub duration: Option<f64>,
}

impl WorkflowMetrics {
    /// Token totals over the steps, for the store's session sums.
    pub fn tokens(&self) -> (u64, u64, u64) {
        let total = self.total();
        (
            total.input_tokens.unwrap_or(0),
            total.output_tokens.unwrap_or(0),
            total.total_tokens.unwrap_or(0),
        )
    }

    /// The steps' metrics added up: tokens summed, per-model details listed.
    pub fn total(&self) -> Metrics {
        let mut total = Metrics::default();
        for entry in self.steps.values() {
            let Ok(m) = serde_json::from_value::<Metrics>(entry["metrics"].clone()) else {
                continue;
            };
            let add = |sum: &mut Option<u64>, v: Option<u64>| {
                if let Some(v) = v {
                    *sum = Some(sum.unwrap_or(0) + v);
                }
            };
            add(&mut total.input_tokens, m.input_tokens);
            add(&mut total.output_tokens, m.output_tokens);
            add(&mut total.total_tokens, m.total_tokens);
            if let Some(details) = m.details {
                total
                    .details
                    .get_or_insert_with(Default::default)
                    .model
                    .extend(details.model);
            }
        }
        total
    }
}

/// The output of one step (AgentOS's `StepOutput`); media keys are always `null`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StepOutput {
    pub content: Option<Value>,
    pub step_name: String,
    pub step_id: String,
    /// `Step`, `Parallel`, `Condition`, `Loop` or `Router`.
    pub step_type: String,
    /// `agent` or `team` for a step that runs one; `parallel`, or null, for composites.
    pub executor_type: Option<String>,
    pub executor_name: Option<String>,
    /// The run of the step's agent or team.
    pub step_run_id: Option<String>,
    #[serde(default)]
    pub images: Option<Value>,
    #[serde(default)]
    pub videos: Option<Value>,
    #[serde(default)]
    pub audio: Option<Value>,
    #[serde(default)]
    pub files: Option<Value>,
    pub metrics: Option<Metrics>,
    pub success: bool,
    pub error: Option<String>,
    #[serde(default)]
    pub stop: bool,
    #[serde(default)]
    pub is_paused: bool,
    /// The outputs of a composite step's children, in the order they ran.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub steps: Vec<StepOutput>,
}

impl StepOutput {
    /// The content as text: a string as is, anything else as compact JSON.
    pub fn content_text(&self) -> String {
        match &self.content {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        }
    }
}
