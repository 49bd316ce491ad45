//! Settling a run whose process stopped: it is stored `ERROR`, saying so, with the
//! content its journal holds, and its journal's events followed by the error event, so a
//! follower ends as it would have had the run failed.

use std::sync::Arc;

use serde_json::Value;

use crate::event::{
    AgentSource, Event, EventData, EventKind, EventSource, TeamSource, WorkflowSource,
};
use crate::run::{AnyRun, Message, Role, RunRecord, RunStatus, new_id, now_secs};
use crate::store::{Orphan, StoredRun};

/// The error type of an interrupted run's error event.
pub const INTERRUPTED: &str = "interrupted";

/// The orphan as it is stored, and its events.
pub(super) fn interrupted(orphan: Orphan) -> (StoredRun, Vec<Value>) {
    let Orphan {
        mut run,
        owner_id: _,
        owner,
        journal,
    } = orphan;
    let who = owner.map_or_else(
        || "the agentos process running it".to_string(),
        |p| p.describe(),
    );
    let message = format!("Run interrupted: {who} stopped before the run finished");
    let run_id = run.run.run_id().to_string();
    let mut events: Vec<Value> = journal
        .iter()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let partial = partial_content(&events, &run_id);
    let error = error_event(&run.run, &message);
    match &mut run.run {
        AnyRun::Agent(r) => {
            r.status = RunStatus::Error;
            r.content = Some(Value::String(message.clone()));
            r.content_type = "str".into();
            r.tools = None;
            push_partial(&mut r.messages, &partial);
        }
        AnyRun::Team(r) => {
            r.status = RunStatus::Error;
            r.content = Some(Value::String(message.clone()));
            r.content_type = "str".into();
            r.tools = None;
            push_partial(&mut r.messages, &partial);
        }
        AnyRun::Workflow(r) => {
            r.status = RunStatus::Error;
            r.content = Some(Value::String(message.clone()));
        }
    }
    events.push(serde_json::to_value(&error).unwrap_or(Value::Null));
    (run, events)
}

/// The answer text the run had streamed: its own content deltas, in order.
fn partial_content(events: &[Value], run_id: &str) -> String {
    events
        .iter()
        .filter(|e| e["run_id"] == run_id)
        .filter(|e| EventKind::of(e) == Some(EventKind::RunContent))
        .filter_map(|e| e["content"].as_str())
        .collect()
}

fn push_partial(messages: &mut Vec<Message>, partial: &str) {
    if partial.is_empty() {
        return;
    }
    messages.push(Message {
        id: new_id(),
        content: Some(partial.to_string()),
        role: Role::Assistant,
        created_at: now_secs(),
        ..Message::default()
    });
}

/// The event that ends an interrupted run's stream: `RunError`, `TeamRunError` or
/// `WorkflowError`.
fn error_event(run: &AnyRun, message: &str) -> Event {
    let error_type = Some(INTERRUPTED.to_string());
    let (source, data) = match run {
        AnyRun::Agent(r) => (
            EventSource::Agent(AgentSource {
                agent_id: r.agent_id.clone(),
                agent_name: r.agent_name.clone(),
                run_id: r.run_id.clone(),
                parent_run_id: r.parent_run_id.clone(),
                session_id: r.session_id.clone(),
                step: None,
                nested_depth: 0,
            }),
            EventData::RunError {
                content: message.to_string(),
                error_type,
            },
        ),
        AnyRun::Team(r) => (
            EventSource::Team(TeamSource {
                team_id: r.team_id.clone(),
                team_name: r.team_name.clone(),
                run_id: r.run_id.clone(),
                parent_run_id: r.parent_run_id.clone(),
                session_id: r.session_id.clone(),
                step: None,
                nested_depth: 0,
            }),
            EventData::RunError {
                content: message.to_string(),
                error_type,
            },
        ),
        AnyRun::Workflow(r) => (
            EventSource::Workflow(WorkflowSource {
                workflow_id: r.workflow_id.clone(),
                workflow_name: r.workflow_name.clone(),
                session_id: r.session_id.clone(),
                run_id: r.run_id.clone(),
                step_id: None,
                parent_step_id: None,
                nested_depth: 0,
            }),
            EventData::WorkflowError {
                error: message.to_string(),
                error_type,
            },
        ),
    };
    Event::new(&Arc::new(source), data)
}

/// Whether an event (a journal line, a stored event) is the one that ends run `run_id`'s
/// stream: see [`EventKind::ends_run`].
pub fn is_terminal(event: &Value, run_id: &str) -> bool {
    event["run_id"] == run_id && EventKind::of(event).is_some_and(EventKind::ends_run)
}
