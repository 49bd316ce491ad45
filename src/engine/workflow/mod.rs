//! Workflows: steps that run agents and teams, one step's output the next one's input.
//!
//! A workflow run executes its steps in order within its task (a parallel step's children
//! as concurrent futures of that task), passing each step's content on as the next step's
//! input. Agent and team steps are ordinary runs in the workflow's session, with the
//! workflow run as their parent; they are kept inside the workflow run
//! (`step_executor_runs`), not stored apart. Events of the steps' runs reach the caller's
//! sink as they happen, between the workflow's own `Step*` and `*Execution*` events.
//!
//! - `steps`: running one step of each kind, with its events and its `StepOutput`;
//! - `choose`: the CEL variables of conditions, loops and routers, and a router's pick;
//! - `outputs`: the `StepOutput` texts and metrics AgentOS derives from the children.

mod choose;
mod outputs;
mod steps;
#[cfg(test)]
mod tests;

use crate::kind::Kind;
use std::sync::Mutex;
use std::time::Instant;

use serde_json::{Map, Value, json};

use super::{Engine, EngineError, PendingRun, RunRequest};
use crate::cancel::CancelToken;
use crate::config::WorkflowDef;
use crate::event::{Event, EventData, EventSink};
use crate::run::{AnyRun, RunStatus, WorkflowMetrics, WorkflowRunOutput, new_id, now_secs};
use crate::store::StoreError;
use steps::{End, Runner};

/// Passes a workflow's events on and, for a streamed run, keeps them for the store.
struct Recorder<'a> {
    sink: &'a dyn EventSink,
    log: Option<Mutex<Vec<Value>>>,
}

impl EventSink for Recorder<'_> {
    fn send<'a>(&'a self, event: &'a Event) -> futures_util::future::BoxFuture<'a, ()> {
        if let Some(log) = &self.log {
            log.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(serde_json::to_value(event).unwrap_or(Value::Null));
        }
        self.sink.send(event)
    }
}

/// A workflow run that passed validation and is stored as RUNNING.
pub struct PendingWorkflow {
    /// The run object so far (status RUNNING, no steps yet).
    pub run: WorkflowRunOutput,
    pub(super) workflow: WorkflowDef,
    /// What the steps' agents and teams inherit: user, session, dependencies, stream.
    pub(super) base: RunRequest,
    /// The session state after the request's `session_state` was merged in.
    pub(super) session_state: Value,
    pub(super) started: Instant,
}

impl Engine {
    /// Validates a workflow run request (`req.agent_id` is the workflow id) and stores the
    /// workflow run as RUNNING.
    pub async fn start_workflow(&self, mut req: RunRequest) -> Result<PendingRun, EngineError> {
        let started = Instant::now();
        let workflow = self
            .config
            .workflow(&req.agent_id)
            .ok_or_else(|| EngineError::WorkflowNotFound(req.agent_id.clone()))?
            .clone();
        let now = now_secs();
        let (session, state) = self
            .open_session(&req, Kind::Workflow, &workflow.id)
            .await?;
        req.session_id = Some(session.session_id.clone());

        let run = WorkflowRunOutput {
            input: req.message.clone(),
            content: None,
            content_type: "str".into(),
            workflow_id: workflow.id.clone(),
            workflow_name: workflow.name.clone(),
            run_id: req.run_id.clone().unwrap_or_else(new_id),
            session_id: session.session_id.clone(),
            user_id: req.user_id.clone(),
            created_at: now,
            status: RunStatus::Running,
            cancellation_stage: None,
            metadata: Value::Object(req.metadata.clone().unwrap_or_default()),
            step_results: Vec::new(),
            step_executor_runs: Vec::new(),
            metrics: WorkflowMetrics::default(),
        };
        self.store
            .begin_run(session, AnyRun::Workflow(run.clone()), Kind::Workflow)
            .await
            .map_err(|e| match e {
                StoreError::RunExists(id) => EngineError::RunExists(id),
                other => EngineError::Store(other),
            })?;
        Ok(PendingRun::Workflow(Box::new(PendingWorkflow {
            run,
            workflow,
            base: req,
            session_state: Value::Object(state),
            started,
        })))
    }

    /// Runs a started workflow's steps to the end and stores the outcome: COMPLETED, ERROR
    /// when a step failed (and may not be skipped), or CANCELLED. Streamed runs store every
    /// event they emitted, content deltas included; others store none.
    pub(super) async fn execute_workflow(
        &self,
        pending: PendingWorkflow,
        cancel: &CancelToken,
        sink: &dyn EventSink,
    ) -> Result<AnyRun, EngineError> {
        let PendingWorkflow {
            mut run,
            workflow,
            base,
            session_state,
            started,
        } = pending;
        let emit = Recorder {
            sink,
            log: base.stream.then(|| Mutex::new(Vec::new())),
        };
        let runner = Runner {
            engine: self,
            workflow: &workflow,
            run_id: &run.run_id,
            session_id: &run.session_id,
            input: &run.input,
            base: &base,
            session_state: &session_state,
            cancel,
            executor_runs: Mutex::new(Vec::new()),
            outputs: Mutex::new(Map::new()),
        };
        let source = runner.source(None, None);
        emit.send(&Event::new(&source, EventData::WorkflowStarted {}))
            .await;
        let ran = runner
            .run_list(&workflow.steps, &|k| json!(k), None, None, &emit)
            .await;
        let executor_runs = runner
            .executor_runs
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());

        run.metrics = WorkflowMetrics {
            steps: outputs::step_metrics(&ran.outputs),
            duration: Some(started.elapsed().as_secs_f64()),
        };
        run.step_results = ran.outputs;
        run.step_executor_runs = executor_runs;
        match ran.end {
            End::Done => {
                run.status = RunStatus::Completed;
                run.content =
                    outputs::deepest_last(&run.step_results).and_then(|o| o.content.clone());
                emit.send(&Event::new(
                    &source,
                    EventData::WorkflowCompleted {
                        content: run.content.clone(),
                        content_type: run.content_type.clone(),
                        metadata: run.metadata.clone(),
                        metrics: Box::new(run.metrics.clone()),
                        step_results: run.step_results.clone(),
                        step_executor_runs: Some(run.step_executor_runs.clone()),
                    },
                ))
                .await;
            }
            End::Failed(error) => {
                run.status = RunStatus::Error;
                run.content = Some(Value::String(error.clone()));
                emit.send(&Event::new(
                    &source,
                    EventData::WorkflowError {
                        error,
                        error_type: None,
                    },
                ))
                .await;
            }
            End::Cancelled => {
                let reason = format!("Run {} was cancelled", run.run_id);
                run.status = RunStatus::Cancelled;
                run.cancellation_stage = Some("EXECUTING".into());
                run.content = Some(Value::String(reason.clone()));
                emit.send(&Event::new(
                    &source,
                    EventData::WorkflowCancelled {
                        reason: reason.clone(),
                        content: reason.clone(),
                    },
                ))
                .await;
                // As AgentOS: a cancelled workflow still completes, without executor runs.
                emit.send(&Event::new(
                    &source,
                    EventData::WorkflowCompleted {
                        content: Some(Value::String(reason)),
                        content_type: run.content_type.clone(),
                        metadata: run.metadata.clone(),
                        metrics: Box::new(run.metrics.clone()),
                        step_results: run.step_results.clone(),
                        step_executor_runs: None,
                    },
                ))
                .await;
            }
        }
        let log = emit
            .log
            .map(|log| log.into_inner().unwrap_or_else(|e| e.into_inner()))
            .unwrap_or_default();
        self.store_outcome(AnyRun::Workflow(run.clone()), log, session_state)
            .await?;
        Ok(AnyRun::Workflow(run))
    }
}
