//! Continuing a paused run: the human's decisions on the tool calls it waits for.

use crate::kind::Kind;
use std::time::Instant;

use super::{Engine, EngineError, PendingRun, PendingTurn};
use crate::run::{AnyRun, Role, RunRecord, RunStatus};
use crate::schema::OutputSchema;

/// A decision on one paused tool call.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolDecision {
    pub tool_call_id: String,
    pub confirmed: bool,
    /// Why; for a rejection it is what the model is told.
    pub note: Option<String>,
}

impl Engine {
    /// Prepares a PAUSED run to go on under the same run id. Every paused tool call needs
    /// a decision; a call without one is rejected. A run outside `session_id`, or in a
    /// session `user_id` may not see, is not found.
    pub async fn continue_run(
        &self,
        agent_id: &str,
        run_id: &str,
        (session_id, user_id): (Option<&str>, Option<&str>),
        decisions: &[ToolDecision],
        stream: bool,
    ) -> Result<PendingRun, EngineError> {
        let not_found = || EngineError::RunNotFound(run_id.to_string());
        let stored = self
            .store
            .get_run(run_id)
            .await?
            .filter(|s| s.run.kind() == Kind::Agent && s.run.component_id() == agent_id)
            .filter(|s| session_id.is_none_or(|id| id == s.run.session_id()))
            .ok_or_else(not_found)?;
        if !self
            .store
            .get_session(stored.run.session_id())
            .await?
            .is_some_and(|s| s.visible_to(user_id))
        {
            return Err(not_found());
        }
        let prior_events = stored.events;
        let AnyRun::Agent(mut run) = stored.run else {
            return Err(EngineError::RunNotFound(run_id.to_string()));
        };
        if run.status != RunStatus::Paused {
            return Err(EngineError::NotPaused {
                run_id: run_id.to_string(),
                status: run.status,
            });
        }
        let agent = self
            .config
            .agent(agent_id)
            .ok_or_else(|| EngineError::AgentNotFound(agent_id.to_string()))?;
        let models = self.models_for(agent, None)?;
        let toolbox = self.toolbox_for(agent).await?;
        let schema = match &agent.output_schema {
            Some(raw) => Some(
                OutputSchema::from_schema(raw)
                    .map_err(|e| EngineError::InvalidRequest(e.to_string()))?,
            ),
            None => None,
        };

        let mut decided = Vec::new();
        for exec in run.tools.iter().flatten() {
            if exec.requires_confirmation != Some(true) || exec.confirmed.is_some() {
                continue;
            }
            let mut exec = exec.clone();
            match decisions
                .iter()
                .find(|d| d.tool_call_id == exec.tool_call_id)
            {
                Some(d) => {
                    exec.confirmed = Some(d.confirmed);
                    exec.confirmation_note.clone_from(&d.note);
                }
                None => exec.confirmed = Some(false),
            }
            decided.push(exec);
        }

        // The conversation as the model saw it: system prompt, history, then this run.
        let mut messages: Vec<_> = run
            .messages
            .iter()
            .filter(|m| m.role == Role::System)
            .cloned()
            .collect();
        if agent.add_history_to_context && agent.num_history_runs > 0 {
            for mut m in self
                .store
                .history_messages(&run.session_id, agent.num_history_runs, Some(run_id))
                .await?
            {
                m.from_history = true;
                messages.push(m);
            }
        }
        messages.extend(
            run.messages
                .iter()
                .filter(|m| m.role != Role::System)
                .cloned(),
        );

        // Claim the run: of two continues racing, only one finds it still PAUSED.
        if !self
            .store
            .transition_run(run_id, RunStatus::Paused, RunStatus::Running, None)
            .await?
        {
            let status = self
                .store
                .get_run(run_id)
                .await?
                .map_or(RunStatus::Running, |s| s.run.status());
            return Err(EngineError::NotPaused {
                run_id: run_id.to_string(),
                status,
            });
        }
        run.status = RunStatus::Running;
        run.requirements = None;
        Ok(PendingRun::Turn(Box::new(PendingTurn {
            run,
            models,
            messages,
            schema,
            temperature: agent.temperature,
            max_tokens: agent.max_tokens,
            reasoning_budget: agent.model_options.thinking_budget,
            cache_prompt: agent.model_options.cache_prompt,
            stream,
            started: Instant::now(),
            toolbox,
            tool_call_limit: agent.tool_call_limit,
            max_answer_bytes: agent.max_answer_bytes,
            resume: Some(decided),
            prior_events,
            context: super::RunContext::top_level(),
            leader: None,
        })))
    }
}
