//! The one event vocabulary of agentos.
//!
//! The engine emits [`Event`]s to an [`EventSink`]; the terminal renderer, `--jsonl` and
//! the HTTP server's SSE stream are all sinks of the same values. Names and payloads are
//! AgentOS's (its `RunEvent` catalogue): `None` fields are omitted and `created_at` is
//! integer seconds.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::Serialize;
use serde_json::Value;

use crate::run::{AnyRun, Metrics, StepOutput, ToolExecution, WorkflowMetrics, now_secs};

/// Who emitted an event: an agent, a team or a workflow. Each serializes its own id keys
/// in AgentOS's order, flat next to the event's data.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum EventSource {
    Agent(AgentSource),
    Team(TeamSource),
    Workflow(WorkflowSource),
}

/// The fields every agent event carries.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AgentSource {
    pub agent_id: String,
    pub agent_name: String,
    pub run_id: String,
    /// The team run this agent works for, as a team member.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_run_id: Option<String>,
    pub session_id: String,
    /// The workflow step this agent runs in.
    #[serde(flatten)]
    pub step: Option<StepContext>,
    pub nested_depth: u32,
}

/// The fields every team event carries (`Team*` events).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TeamSource {
    pub team_id: String,
    pub team_name: String,
    pub run_id: String,
    /// The outer team run, for a team that is a member of another team.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_run_id: Option<String>,
    pub session_id: String,
    #[serde(flatten)]
    pub step: Option<StepContext>,
    pub nested_depth: u32,
}

/// Where in a workflow an agent or team event comes from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepContext {
    pub workflow_id: String,
    pub workflow_run_id: String,
    pub step_id: String,
    pub step_name: String,
    /// The step's position: an integer at the top level, `[outer, inner]` inside a
    /// composite step.
    pub step_index: Value,
}

/// The fields every workflow event carries.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct WorkflowSource {
    pub workflow_id: String,
    pub workflow_name: String,
    pub session_id: String,
    pub run_id: String,
    /// The step the event is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_id: Option<String>,
    /// The composite step (parallel, condition, loop, router) it runs inside.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_step_id: Option<String>,
    pub nested_depth: u32,
}

impl EventSource {
    /// The run the event belongs to.
    pub fn run_id(&self) -> &str {
        match self {
            EventSource::Agent(s) => &s.run_id,
            EventSource::Team(s) => &s.run_id,
            EventSource::Workflow(s) => &s.run_id,
        }
    }

    /// The run this source's run works for (team member runs), if any.
    pub fn parent_run_id(&self) -> Option<&str> {
        match self {
            EventSource::Agent(s) => s.parent_run_id.as_deref(),
            EventSource::Team(s) => s.parent_run_id.as_deref(),
            EventSource::Workflow(_) => None,
        }
    }

    /// Runs inside a team or a workflow step, as opposed to the run a client started.
    pub fn is_nested(&self) -> bool {
        match self {
            EventSource::Agent(s) => s.parent_run_id.is_some() || s.step.is_some(),
            EventSource::Team(s) => s.parent_run_id.is_some() || s.step.is_some(),
            EventSource::Workflow(_) => false,
        }
    }

    /// The agent, team or workflow name.
    pub fn name(&self) -> &str {
        match self {
            EventSource::Agent(s) => &s.agent_name,
            EventSource::Team(s) => &s.team_name,
            EventSource::Workflow(s) => &s.workflow_name,
        }
    }
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
        /// Agents only (team content has no such key).
        #[serde(skip_serializing_if = "Option::is_none")]
        workflow_agent: Option<bool>,
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
        reasoning_content: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        model_provider_data: Option<Value>,
        /// Always there for agents; for teams only after a cancel (as AgentOS).
        #[serde(skip_serializing_if = "Option::is_none")]
        session_state: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        metadata: Option<Value>,
        /// Teams: the members' runs.
        #[serde(skip_serializing_if = "Option::is_none")]
        member_responses: Option<Vec<AnyRun>>,
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

    // ----- workflows -----
    WorkflowStarted {},
    WorkflowCompleted {
        #[serde(skip_serializing_if = "Option::is_none")]
        content: Option<Value>,
        content_type: String,
        metadata: Value,
        metrics: Box<WorkflowMetrics>,
        step_results: Vec<StepOutput>,
        #[serde(skip_serializing_if = "Option::is_none")]
        step_executor_runs: Option<Vec<AnyRun>>,
    },
    WorkflowCancelled {
        reason: String,
        content: String,
    },
    WorkflowError {
        error: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        error_type: Option<String>,
    },
    StepStarted {
        step_name: String,
        step_index: Value,
    },
    StepCompleted {
        step_name: String,
        step_index: Value,
        #[serde(skip_serializing_if = "Option::is_none")]
        content: Option<Value>,
        content_type: String,
        step_response: Box<StepOutput>,
    },
    StepError {
        step_name: String,
        step_index: Value,
        error: String,
    },
    ParallelExecutionStarted {
        step_name: String,
        step_index: Value,
        parallel_step_count: usize,
    },
    ParallelExecutionCompleted {
        step_name: String,
        step_index: Value,
        parallel_step_count: usize,
        step_results: Vec<StepOutput>,
    },
    ConditionExecutionStarted {
        step_name: String,
        step_index: Value,
        condition_result: bool,
    },
    ConditionExecutionCompleted {
        step_name: String,
        step_index: Value,
        condition_result: bool,
        executed_steps: usize,
        /// `if` or `else`; absent when nothing ran.
        #[serde(skip_serializing_if = "Option::is_none")]
        branch: Option<String>,
        step_results: Vec<StepOutput>,
    },
    LoopExecutionStarted {
        step_name: String,
        step_index: Value,
        max_iterations: usize,
    },
    LoopIterationStarted {
        step_name: String,
        step_index: Value,
        iteration: usize,
        max_iterations: usize,
    },
    LoopIterationCompleted {
        step_name: String,
        step_index: Value,
        iteration: usize,
        max_iterations: usize,
        should_continue: bool,
        iteration_results: Vec<StepOutput>,
    },
    LoopExecutionCompleted {
        step_name: String,
        step_index: Value,
        total_iterations: usize,
        max_iterations: usize,
        all_results: Vec<Vec<StepOutput>>,
    },
    RouterExecutionStarted {
        step_name: String,
        step_index: Value,
        selected_steps: Vec<String>,
    },
    RouterExecutionCompleted {
        step_name: String,
        step_index: Value,
        selected_steps: Vec<String>,
        executed_steps: usize,
        step_results: Vec<StepOutput>,
    },
}

/// What an event is, without its data: one kind per [`EventData`] variant. An agent run
/// and a team run send the same kinds, under AgentOS's plain and `Team`-prefixed names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    RunStarted,
    ModelRequestStarted,
    RunContent,
    ModelRequestCompleted,
    RunContentCompleted,
    RunCompleted,
    RunError,
    RunCancelled,
    ToolCallStarted,
    ToolCallCompleted,
    ToolCallError,
    RunPaused,
    RunContinued,
    WorkflowStarted,
    WorkflowCompleted,
    WorkflowCancelled,
    WorkflowError,
    StepStarted,
    StepCompleted,
    StepError,
    ParallelExecutionStarted,
    ParallelExecutionCompleted,
    ConditionExecutionStarted,
    ConditionExecutionCompleted,
    LoopExecutionStarted,
    LoopIterationStarted,
    LoopIterationCompleted,
    LoopExecutionCompleted,
    RouterExecutionStarted,
    RouterExecutionCompleted,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 30] = [
        EventKind::RunStarted,
        EventKind::ModelRequestStarted,
        EventKind::RunContent,
        EventKind::ModelRequestCompleted,
        EventKind::RunContentCompleted,
        EventKind::RunCompleted,
        EventKind::RunError,
        EventKind::RunCancelled,
        EventKind::ToolCallStarted,
        EventKind::ToolCallCompleted,
        EventKind::ToolCallError,
        EventKind::RunPaused,
        EventKind::RunContinued,
        EventKind::WorkflowStarted,
        EventKind::WorkflowCompleted,
        EventKind::WorkflowCancelled,
        EventKind::WorkflowError,
        EventKind::StepStarted,
        EventKind::StepCompleted,
        EventKind::StepError,
        EventKind::ParallelExecutionStarted,
        EventKind::ParallelExecutionCompleted,
        EventKind::ConditionExecutionStarted,
        EventKind::ConditionExecutionCompleted,
        EventKind::LoopExecutionStarted,
        EventKind::LoopIterationStarted,
        EventKind::LoopIterationCompleted,
        EventKind::LoopExecutionCompleted,
        EventKind::RouterExecutionStarted,
        EventKind::RouterExecutionCompleted,
    ];

    /// The AgentOS event name, also the SSE `event:` line: `Team`-prefixed for a team
    /// run's events where AgentOS has such a name.
    pub fn name(self, team: bool) -> &'static str {
        macro_rules! pick {
            ($agent:literal, $team:literal) => {
                if team { $team } else { $agent }
            };
        }
        match self {
            EventKind::RunStarted => pick!("RunStarted", "TeamRunStarted"),
            EventKind::ModelRequestStarted => {
                pick!("ModelRequestStarted", "TeamModelRequestStarted")
            }
            EventKind::RunContent => pick!("RunContent", "TeamRunContent"),
            EventKind::ModelRequestCompleted => {
                pick!("ModelRequestCompleted", "TeamModelRequestCompleted")
            }
            EventKind::RunContentCompleted => {
                pick!("RunContentCompleted", "TeamRunContentCompleted")
            }
            EventKind::RunCompleted => pick!("RunCompleted", "TeamRunCompleted"),
            EventKind::RunError => pick!("RunError", "TeamRunError"),
            EventKind::RunCancelled => pick!("RunCancelled", "TeamRunCancelled"),
            EventKind::ToolCallStarted => pick!("ToolCallStarted", "TeamToolCallStarted"),
            EventKind::ToolCallCompleted => pick!("ToolCallCompleted", "TeamToolCallCompleted"),
            EventKind::ToolCallError => pick!("ToolCallError", "TeamToolCallError"),
            EventKind::RunPaused => pick!("RunPaused", "TeamRunPaused"),
            EventKind::RunContinued => pick!("RunContinued", "TeamRunContinued"),
            EventKind::WorkflowStarted => "WorkflowStarted",
            EventKind::WorkflowCompleted => "WorkflowCompleted",
            EventKind::WorkflowCancelled => "WorkflowCancelled",
            EventKind::WorkflowError => "WorkflowError",
            EventKind::StepStarted => "StepStarted",
            EventKind::StepCompleted => "StepCompleted",
            EventKind::StepError => "StepError",
            EventKind::ParallelExecutionStarted => "ParallelExecutionStarted",
            EventKind::ParallelExecutionCompleted => "ParallelExecutionCompleted",
            EventKind::ConditionExecutionStarted => "ConditionExecutionStarted",
            EventKind::ConditionExecutionCompleted => "ConditionExecutionCompleted",
            EventKind::LoopExecutionStarted => "LoopExecutionStarted",
            EventKind::LoopIterationStarted => "LoopIterationStarted",
            EventKind::LoopIterationCompleted => "LoopIterationCompleted",
            EventKind::LoopExecutionCompleted => "LoopExecutionCompleted",
            EventKind::RouterExecutionStarted => "RouterExecutionStarted",
            EventKind::RouterExecutionCompleted => "RouterExecutionCompleted",
        }
    }

    /// The kind an event name stands for (an agent's or a team's name); `None` for a name
    /// agentos never sends.
    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL
            .into_iter()
            .find(|kind| kind.name(false) == name || kind.name(true) == name)
    }

    /// The kind of an event as JSON (a stored event, a journal line): its `event` key.
    pub fn of(event: &Value) -> Option<EventKind> {
        EventKind::parse(event.get("event")?.as_str()?)
    }

    /// Whether an event of this kind ends its run's stream for a follower: the run
    /// completed, failed, paused or was cancelled. A cancelled run is followed to its
    /// cancel event (AgentOS sends a completion after it, with the same content).
    pub fn ends_run(self) -> bool {
        matches!(
            self,
            EventKind::RunCompleted
                | EventKind::RunError
                | EventKind::RunPaused
                | EventKind::RunCancelled
                | EventKind::WorkflowCompleted
                | EventKind::WorkflowError
                | EventKind::WorkflowCancelled
        )
    }
}

impl EventData {
    /// The kind of this event.
    pub fn kind(&self) -> EventKind {
        match self {
            EventData::RunStarted { .. } => EventKind::RunStarted,
            EventData::ModelRequestStarted { .. } => EventKind::ModelRequestStarted,
            EventData::RunContent { .. } => EventKind::RunContent,
            EventData::ModelRequestCompleted { .. } => EventKind::ModelRequestCompleted,
            EventData::RunContentCompleted {} => EventKind::RunContentCompleted,
            EventData::RunCompleted { .. } => EventKind::RunCompleted,
            EventData::RunError { .. } => EventKind::RunError,
            EventData::RunCancelled { .. } => EventKind::RunCancelled,
            EventData::ToolCallStarted { .. } => EventKind::ToolCallStarted,
            EventData::ToolCallCompleted { .. } => EventKind::ToolCallCompleted,
            EventData::ToolCallError { .. } => EventKind::ToolCallError,
            EventData::RunPaused { .. } => EventKind::RunPaused,
            EventData::RunContinued {} => EventKind::RunContinued,
            EventData::WorkflowStarted {} => EventKind::WorkflowStarted,
            EventData::WorkflowCompleted { .. } => EventKind::WorkflowCompleted,
            EventData::WorkflowCancelled { .. } => EventKind::WorkflowCancelled,
            EventData::WorkflowError { .. } => EventKind::WorkflowError,
            EventData::StepStarted { .. } => EventKind::StepStarted,
            EventData::StepCompleted { .. } => EventKind::StepCompleted,
            EventData::StepError { .. } => EventKind::StepError,
            EventData::ParallelExecutionStarted { .. } => EventKind::ParallelExecutionStarted,
            EventData::ParallelExecutionCompleted { .. } => EventKind::ParallelExecutionCompleted,
            EventData::ConditionExecutionStarted { .. } => EventKind::ConditionExecutionStarted,
            EventData::ConditionExecutionCompleted { .. } => EventKind::ConditionExecutionCompleted,
            EventData::LoopExecutionStarted { .. } => EventKind::LoopExecutionStarted,
            EventData::LoopIterationStarted { .. } => EventKind::LoopIterationStarted,
            EventData::LoopIterationCompleted { .. } => EventKind::LoopIterationCompleted,
            EventData::LoopExecutionCompleted { .. } => EventKind::LoopExecutionCompleted,
            EventData::RouterExecutionStarted { .. } => EventKind::RouterExecutionStarted,
            EventData::RouterExecutionCompleted { .. } => EventKind::RouterExecutionCompleted,
        }
    }

    /// The AgentOS event name, also the SSE `event:` line. Team runs use the same data
    /// under `Team`-prefixed names.
    pub fn name(&self, team: bool) -> &'static str {
        self.kind().name(team)
    }
}

/// One event of a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    pub created_at: i64,
    pub event: &'static str,
    /// Shared by every event of a run: cloning an event never copies its ids.
    #[serde(flatten)]
    pub source: Arc<EventSource>,
    #[serde(flatten)]
    pub data: EventData,
    /// Position in the run's event log; set on resumable (background, continue) streams.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_index: Option<u64>,
}

impl Event {
    pub fn new(source: &Arc<EventSource>, data: EventData) -> Self {
        Event {
            created_at: now_secs(),
            event: data.name(matches!(**source, EventSource::Team(_))),
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

impl EventData {
    /// A piece of streamed content (`RunContent` / `TeamRunContent`).
    pub fn is_content(&self) -> bool {
        matches!(self, EventData::RunContent { .. })
    }
}

/// Where a run's events go. The engine awaits each send, so a consumer that falls behind
/// (a slow HTTP client) slows only its own run; one that is gone says so, and its run is
/// cancelled by whoever owns both.
pub trait EventSink: Send + Sync {
    /// Takes one event, waiting while the consumer is behind.
    fn send<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, ()>;
}

/// Drops every event: runs that nobody watches.
pub struct Discard;

impl EventSink for Discard {
    fn send<'a>(&'a self, _event: &'a Event) -> BoxFuture<'a, ()> {
        Box::pin(std::future::ready(()))
    }
}

/// A consumer that takes events at once, without waiting (the terminal, a test's list).
pub struct FnSink<F>(pub F);

impl<F: Fn(&Event) + Send + Sync> EventSink for FnSink<F> {
    fn send<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, ()> {
        (self.0)(event);
        Box::pin(std::future::ready(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_flat_in_agentos_shape() {
        let source = EventSource::Agent(AgentSource {
            agent_id: "story-writer".into(),
            agent_name: "Story Writer".into(),
            run_id: "r1".into(),
            parent_run_id: None,
            session_id: "s1".into(),
            step: None,
            nested_depth: 0,
        });
        let ev = Event::new(&Arc::new(source), EventData::RunContentCompleted {});
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

    #[test]
    fn event_kinds_are_read_back_from_their_names() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.name(false)), Some(kind));
            assert_eq!(EventKind::parse(kind.name(true)), Some(kind));
        }
        assert_eq!(
            EventKind::parse("TeamRunCancelled"),
            Some(EventKind::RunCancelled)
        );
        assert_eq!(EventKind::parse("NoSuchEvent"), None);
        let stored = serde_json::json!({"event": "WorkflowCancelled", "run_id": "r1"});
        assert_eq!(EventKind::of(&stored), Some(EventKind::WorkflowCancelled));
        assert_eq!(EventKind::of(&serde_json::json!({"event": 3})), None);
        let ends: Vec<&str> = EventKind::ALL
            .into_iter()
            .filter(|k| k.ends_run())
            .map(|k| k.name(false))
            .collect();
        assert_eq!(
            ends,
            [
                "RunCompleted",
                "RunError",
                "RunCancelled",
                "RunPaused",
                "WorkflowCompleted",
                "WorkflowCancelled",
                "WorkflowError"
            ]
        );
    }
}
