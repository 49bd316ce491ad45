//! Workflows: steps that run agents and teams, one step's output the next one's input.

use super::{Engine, EngineError};
use crate::cancel::CancelToken;
use crate::event::Event;
use crate::run::{AnyRun, WorkflowRunOutput};

/// A workflow run that passed validation and is stored as RUNNING.
pub struct PendingWorkflow {
    pub run: WorkflowRunOutput,
}

impl Engine {
    pub(super) fn execute_workflow(
        &self,
        pending: PendingWorkflow,
        _cancel: &CancelToken,
        _sink: &mut dyn FnMut(&Event),
    ) -> Result<AnyRun, EngineError> {
        Ok(AnyRun::Workflow(pending.run))
    }
}
