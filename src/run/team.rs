//! The team run object: AgentOS's `TeamRunOutput.to_dict()`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{AnyRun, Message, Metrics, RunInput, RunStatus, ToolExecution};

/// A team run: the leader's conversation and delegations, with the members' runs.
///
/// `metrics` count the leader's model requests only; each member run carries its own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TeamRunOutput {
    pub run_id: String,
    pub team_id: String,
    pub team_name: String,
    pub session_id: String,
    /// The outer team run, for a team that is a member of another team.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub parent_run_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub content: Option<Value>,
    pub content_type: String,
    pub model: String,
    pub model_provider: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub model_provider_data: Option<Value>,
    /// The reasoning text of the leader's model calls, joined.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reasoning_content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub session_state: Option<Value>,
    pub created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub workflow_step_id: Option<String>,
    pub metrics: Metrics,
    pub status: RunStatus,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cancellation_stage: Option<String>,
    pub messages: Vec<Message>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub metadata: Option<Value>,
    /// The runs of the members the leader delegated to, in the order they finished.
    #[serde(default)]
    pub member_responses: Vec<AnyRun>,
    /// The leader's delegations and tool calls; absent when the run errored or was cancelled.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tools: Option<Vec<ToolExecution>>,
    pub input: RunInput,
}
