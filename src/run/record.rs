//! Runs of every kind (agent, team, workflow) behind one type, for the store and the
//! endpoints that list a session's runs.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{RunOutput, RunStatus, TeamRunOutput, WorkflowRunOutput};
use crate::kind::Kind;

/// A run of any kind, serialized as its own object (no tag: the id keys tell them apart).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AnyRun {
    Agent(RunOutput),
    Team(TeamRunOutput),
    Workflow(WorkflowRunOutput),
}

/// The facts the store keeps in columns, common to every kind of run.
pub trait RunRecord: Serialize {
    fn kind(&self) -> Kind;
    fn run_id(&self) -> &str;
    fn session_id(&self) -> &str;
    fn parent_run_id(&self) -> Option<&str>;
    /// The agent, team or workflow id.
    fn component_id(&self) -> &str;
    fn user_id(&self) -> Option<&str>;
    fn status(&self) -> RunStatus;
    fn input_content(&self) -> &str;
    fn content(&self) -> Option<&Value>;
    /// Input, output and total tokens of this run itself (not of runs stored apart).
    fn tokens(&self) -> (u64, u64, u64);
    fn created_at(&self) -> i64;
}

impl RunRecord for RunOutput {
    fn kind(&self) -> Kind {
        Kind::Agent
    }
    fn run_id(&self) -> &str {
        &self.run_id
    }
    fn session_id(&self) -> &str {
        &self.session_id
    }
    fn parent_run_id(&self) -> Option<&str> {
        self.parent_run_id.as_deref()
    }
    fn component_id(&self) -> &str {
        &self.agent_id
    }
    fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }
    fn status(&self) -> RunStatus {
        self.status
    }
    fn input_content(&self) -> &str {
        &self.input.input_content
    }
    fn content(&self) -> Option<&Value> {
        self.content.as_ref()
    }
    fn tokens(&self) -> (u64, u64, u64) {
        let m = &self.metrics;
        (
            m.input_tokens.unwrap_or(0),
            m.output_tokens.unwrap_or(0),
            m.total_tokens.unwrap_or(0),
        )
    }
    fn created_at(&self) -> i64 {
        self.created_at
    }
}

impl RunRecord for TeamRunOutput {
    fn kind(&self) -> Kind {
        Kind::Team
    }
    fn run_id(&self) -> &str {
        &self.run_id
    }
    fn session_id(&self) -> &str {
        &self.session_id
    }
    fn parent_run_id(&self) -> Option<&str> {
        self.parent_run_id.as_deref()
    }
    fn component_id(&self) -> &str {
        &self.team_id
    }
    fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }
    fn status(&self) -> RunStatus {
        self.status
    }
    fn input_content(&self) -> &str {
        &self.input.input_content
    }
    fn content(&self) -> Option<&Value> {
        self.content.as_ref()
    }
    fn tokens(&self) -> (u64, u64, u64) {
        let m = &self.metrics;
        (
            m.input_tokens.unwrap_or(0),
            m.output_tokens.unwrap_or(0),
            m.total_tokens.unwrap_or(0),
        )
    }
    fn created_at(&self) -> i64 {
        self.created_at
    }
}

impl RunRecord for WorkflowRunOutput {
    fn kind(&self) -> Kind {
        Kind::Workflow
    }
    fn run_id(&self) -> &str {
        &self.run_id
    }
    fn session_id(&self) -> &str {
        &self.session_id
    }
    fn parent_run_id(&self) -> Option<&str> {
        None
    }
    fn component_id(&self) -> &str {
        &self.workflow_id
    }
    fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }
    fn status(&self) -> RunStatus {
        self.status
    }
    fn input_content(&self) -> &str {
        &self.input
    }
    fn content(&self) -> Option<&Value> {
        self.content.as_ref()
    }
    /// The steps' runs are kept inside the workflow run, so their tokens count here.
    fn tokens(&self) -> (u64, u64, u64) {
        self.metrics.tokens()
    }
    fn created_at(&self) -> i64 {
        self.created_at
    }
}

macro_rules! each {
    ($self:ident, $run:ident => $e:expr) => {
        match $self {
            AnyRun::Agent($run) => $e,
            AnyRun::Team($run) => $e,
            AnyRun::Workflow($run) => $e,
        }
    };
}

impl RunRecord for AnyRun {
    fn kind(&self) -> Kind {
        each!(self, r => r.kind())
    }
    fn run_id(&self) -> &str {
        each!(self, r => r.run_id())
    }
    fn session_id(&self) -> &str {
        each!(self, r => r.session_id())
    }
    fn parent_run_id(&self) -> Option<&str> {
        each!(self, r => r.parent_run_id())
    }
    fn component_id(&self) -> &str {
        each!(self, r => r.component_id())
    }
    fn user_id(&self) -> Option<&str> {
        each!(self, r => r.user_id())
    }
    fn status(&self) -> RunStatus {
        each!(self, r => r.status())
    }
    fn input_content(&self) -> &str {
        each!(self, r => r.input_content())
    }
    fn content(&self) -> Option<&Value> {
        each!(self, r => r.content())
    }
    fn tokens(&self) -> (u64, u64, u64) {
        each!(self, r => r.tokens())
    }
    fn created_at(&self) -> i64 {
        each!(self, r => r.created_at())
    }
}

impl AnyRun {
    /// The agent run, when this is one.
    pub fn as_agent(&self) -> Option<&RunOutput> {
        match self {
            AnyRun::Agent(run) => Some(run),
            _ => None,
        }
    }

    /// The agent run, when this is one, to change.
    pub fn as_agent_mut(&mut self) -> Option<&mut RunOutput> {
        match self {
            AnyRun::Agent(run) => Some(run),
            _ => None,
        }
    }

    /// The run's metrics; for a workflow, its steps' metrics added up.
    pub fn metrics(&self) -> std::borrow::Cow<'_, super::Metrics> {
        match self {
            AnyRun::Agent(run) => std::borrow::Cow::Borrowed(&run.metrics),
            AnyRun::Team(run) => std::borrow::Cow::Borrowed(&run.metrics),
            AnyRun::Workflow(run) => std::borrow::Cow::Owned(run.metrics.total()),
        }
    }

    /// The conversation of an agent or team run (a workflow run has none of its own).
    pub fn messages(&self) -> &[super::Message] {
        match self {
            AnyRun::Agent(run) => &run.messages,
            AnyRun::Team(run) => &run.messages,
            AnyRun::Workflow(_) => &[],
        }
    }

    /// The content as plain text: a string as is, an object as compact JSON.
    pub fn content_text(&self) -> String {
        match self.content() {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        }
    }
}

impl From<RunOutput> for AnyRun {
    fn from(run: RunOutput) -> Self {
        AnyRun::Agent(run)
    }
}

impl From<TeamRunOutput> for AnyRun {
    fn from(run: TeamRunOutput) -> Self {
        AnyRun::Team(run)
    }
}

impl From<WorkflowRunOutput> for AnyRun {
    fn from(run: WorkflowRunOutput) -> Self {
        AnyRun::Workflow(run)
    }
}
