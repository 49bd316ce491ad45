//! Workflows: steps that run agents and teams, one step's output the next one's input.

use std::time::Instant;

use serde_json::{Map, Value, json};

use super::{Engine, EngineError, PendingRun, RunRequest};
use crate::cancel::CancelToken;
use crate::config::WorkflowDef;
use crate::event::Event;
use crate::run::{AnyRun, RunStatus, WorkflowMetrics, WorkflowRunOutput, new_id, now_secs};
use crate::store::{Session, SessionType, StoreError};

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
    pub fn start_workflow(&self, mut req: RunRequest) -> Result<PendingRun, EngineError> {
        let started = Instant::now();
        let workflow = self
            .config
            .workflow(&req.agent_id)
            .ok_or_else(|| EngineError::WorkflowNotFound(req.agent_id.clone()))?
            .clone();
        let now = now_secs();
        let existing = match &req.session_id {
            Some(id) => self.store.get_session(id)?,
            None => None,
        };
        let mut session = match existing {
            Some(session) => {
                if session.user_id.is_some() && session.user_id != req.user_id {
                    return Err(EngineError::SessionNotFound(session.session_id));
                }
                session
            }
            None => Session {
                session_id: req.session_id.clone().unwrap_or_else(new_id),
                session_type: SessionType::Workflow,
                component_id: workflow.id.clone(),
                user_id: req.user_id.clone(),
                session_name: None,
                session_state: json!({}),
                metadata: None,
                session_data: None,
                created_at: now,
                updated_at: now,
            },
        };
        if session.user_id.is_none() {
            session.user_id.clone_from(&req.user_id);
        }
        let mut state = match &session.session_state {
            Value::Object(map) => map.clone(),
            _ => Map::new(),
        };
        for (k, v) in req.session_state.iter().flatten() {
            state.insert(k.clone(), v.clone());
        }
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
            .begin_run(&session, &run, SessionType::Workflow)
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

    /// Runs a started workflow's steps to the end and stores the outcome.
    pub(super) fn execute_workflow(
        &self,
        pending: PendingWorkflow,
        _cancel: &CancelToken,
        _sink: &mut dyn FnMut(&Event),
    ) -> Result<AnyRun, EngineError> {
        let PendingWorkflow {
            mut run,
            session_state,
            started,
            ..
        } = pending;
        run.status = RunStatus::Error;
        run.content = Some(Value::String("workflow steps are not executed yet".into()));
        run.metrics.duration = Some(started.elapsed().as_secs_f64());
        self.store.finish_run(&run, &[], &session_state)?;
        Ok(AnyRun::Workflow(run))
    }
}
