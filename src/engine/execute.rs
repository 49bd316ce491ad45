//! The model loop of a started run: call the model, run the tools it asks for, feed their
//! results back, repeat until it answers; pause for a human where a tool needs one.

use std::time::Instant;

use serde_json::{Value, json};

use super::tools::{ToolRound, new_execution, pause_requirements};
use super::{Engine, EngineError, PendingRun, PendingTurn};
use crate::cancel::CancelToken;
use crate::event::{AgentSource, Event, EventData, EventSource, TeamSource};
use crate::model::{Delta, ModelError, ModelRequest, ModelResponse, Usage};
use crate::run::{
    AnyRun, Message, Metrics, MetricsDetails, ModelMetrics, Role, RunStatus, new_id, now_secs,
};

/// What a paused run says while it waits (AgentOS's wording).
pub(super) const PAUSED_CONTENT: &str = "I have tools to execute, but I need confirmation.";

/// Emits events to the caller's sink and keeps the ones the store keeps.
pub(super) struct Emitter<'a> {
    source: EventSource,
    sink: &'a mut dyn FnMut(&Event),
    /// Content deltas are not stored (as AgentOS), unless they carry a whole object.
    keep_content: bool,
    pub(super) log: Vec<Event>,
}

impl Emitter<'_> {
    pub(super) fn emit(&mut self, data: EventData) {
        let event = Event::new(&self.source, data);
        self.forward(&event);
    }

    /// Passes on an event of another run (a team member's) as it happened.
    pub(super) fn forward(&mut self, event: &Event) {
        (self.sink)(event);
        // Content deltas are not stored (as AgentOS), unless they carry a whole object.
        let own = event.source.run_id() == self.source.run_id();
        if !event.event.ends_with("RunContent") || (own && self.keep_content) {
            self.log.push(event.clone());
        }
    }
}

/// Token and timing totals over the model requests of a run.
#[derive(Default)]
struct Totals {
    usage: Usage,
    reported: bool,
    first_token: Option<f64>,
}

impl Totals {
    fn add(&mut self, usage: Option<Usage>) {
        if let Some(u) = usage {
            self.reported = true;
            self.usage.input_tokens += u.input_tokens;
            self.usage.output_tokens += u.output_tokens;
            self.usage.total_tokens += u.total_tokens;
        }
    }

    fn fill(&self, metrics: &mut Metrics, model: &str, provider: &str, duration: f64) {
        if self.reported {
            metrics.input_tokens = Some(self.usage.input_tokens);
            metrics.output_tokens = Some(self.usage.output_tokens);
            metrics.total_tokens = Some(self.usage.total_tokens);
            metrics.details = Some(MetricsDetails {
                model: vec![ModelMetrics {
                    input_tokens: self.usage.input_tokens,
                    output_tokens: self.usage.output_tokens,
                    total_tokens: self.usage.total_tokens,
                    id: model.to_string(),
                    provider: format!("{provider} Chat"),
                }],
            });
        }
        metrics.time_to_first_token = self.first_token;
        metrics.duration = Some(duration);
    }
}

/// How one model request ended.
enum Step {
    Answer(ModelResponse),
    Paused,
    Cancelled,
    Failed(ModelError),
}

/// A structured answer: the parsed JSON object, or the text when it is not one.
/// The largest index at most `max` that starts a character of `text`.
fn floor_char_boundary(text: &str, max: usize) -> usize {
    if max >= text.len() {
        return text.len();
    }
    (0..=max)
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0)
}

impl Engine {
    /// Executes a started run to its end, emitting events, and stores the outcome.
    pub fn execute(
        &self,
        pending: PendingRun,
        cancel: &CancelToken,
        sink: &mut dyn FnMut(&Event),
    ) -> Result<AnyRun, EngineError> {
        match pending {
            PendingRun::Turn(turn) => self.execute_turn(*turn, cancel, sink),
            PendingRun::Workflow(workflow) => self.execute_workflow(*workflow, cancel, sink),
        }
    }

    /// Calls the model for a started agent or team run, emitting events, and stores the
    /// outcome.
    fn execute_turn(
        &self,
        pending: PendingTurn,
        cancel: &CancelToken,
        sink: &mut dyn FnMut(&Event),
    ) -> Result<AnyRun, EngineError> {
        let PendingTurn {
            mut run,
            model,
            mut messages,
            schema,
            temperature,
            max_tokens,
            stream,
            started,
            toolbox,
            tool_call_limit,
            max_answer_bytes,
            resume,
            prior_events,
            context,
            leader,
        } = pending;
        let run_id = run.run_id.clone();
        let content_type = run.content_type.clone();
        let session_state = run.session_state.clone();
        let model_id = model.id().to_string();
        let provider = model.provider().to_string();
        // A step's own agent names the workflow run in its step fields, not as a parent.
        let parent_run_id = context.parent_run_id.clone().filter(|parent| {
            context
                .step
                .as_ref()
                .is_none_or(|step| &step.workflow_run_id != parent)
        });
        let source = match &leader {
            Some(leader) => EventSource::Team(TeamSource {
                team_id: leader.team_id.clone(),
                team_name: leader.team_name.clone(),
                run_id: run_id.clone(),
                parent_run_id,
                session_id: run.session_id.clone(),
                step: context.step.clone(),
                nested_depth: 0,
            }),
            None => EventSource::Agent(AgentSource {
                agent_id: run.agent_id.clone(),
                agent_name: run.agent_name.clone(),
                run_id: run_id.clone(),
                parent_run_id,
                session_id: run.session_id.clone(),
                step: context.step.clone(),
                nested_depth: 0,
            }),
        };
        let workflow_agent = leader.is_none().then_some(false);
        let mut out = Emitter {
            source,
            sink,
            keep_content: schema.is_some(),
            log: Vec::new(),
        };
        let mut totals = Totals::default();
        if run.metrics.input_tokens.is_some() {
            // A continued run keeps counting from where it paused.
            totals.reported = true;
            totals.usage.input_tokens = run.metrics.input_tokens.unwrap_or(0);
            totals.usage.output_tokens = run.metrics.output_tokens.unwrap_or(0);
            totals.usage.total_tokens = run.metrics.total_tokens.unwrap_or(0);
            totals.first_token = run.metrics.time_to_first_token;
        }
        let tools = run.tools.get_or_insert_with(Vec::new);
        let mut round = ToolRound {
            toolbox: &toolbox,
            delegate: leader.as_deref().map(|l| (self, l, run_id.as_str())),
            cancel,
            messages: &mut messages,
            own: &mut run.messages,
            executions: tools,
        };

        match resume {
            Some(decided) => {
                out.emit(EventData::RunContinued {});
                round.run_decided(decided, &mut out);
            }
            None => out.emit(EventData::RunStarted {
                model: model_id.clone(),
                model_provider: provider.clone(),
            }),
        }

        let mut tool_rounds = 0usize;
        let mut partial = String::new();
        let mut provider_data: Option<Value> = None;
        let step = loop {
            out.emit(EventData::ModelRequestStarted {
                model: model_id.clone(),
                model_provider: provider.clone(),
            });
            let specs = if tool_rounds < tool_call_limit {
                let mut specs = round.toolbox.specs();
                if let Some(leader) = &leader {
                    specs.extend(leader.specs());
                }
                specs
            } else {
                Vec::new()
            };
            let request = ModelRequest {
                messages: round.messages,
                temperature,
                max_tokens,
                response_format: schema.as_ref().map(|s| s.response_format.clone()),
                stream,
                tools: &specs,
            };
            let model_started = Instant::now();
            let mut first_token: Option<f64> = None;
            partial.clear();
            let keep_content = out.keep_content;
            // The call has its own token, so an answer past `max_answer_bytes` can stop it
            // without cancelling the run.
            let call = CancelToken::new();
            let _linked = cancel.on_cancel({
                let call = call.clone();
                move || call.cancel()
            });
            let mut too_long = false;
            let outcome = if cancel.is_cancelled() {
                Err(ModelError::Cancelled)
            } else {
                model.invoke(&request, &call, &mut |delta: &Delta| {
                    if too_long {
                        return;
                    }
                    if first_token.is_none() {
                        first_token = Some(model_started.elapsed().as_secs_f64());
                    }
                    if provider_data.is_none() {
                        provider_data.clone_from(&delta.provider_data);
                    }
                    if partial.len() + delta.content.len() > max_answer_bytes {
                        // Keep what fits, then stop the call.
                        let room = max_answer_bytes - partial.len();
                        partial
                            .push_str(&delta.content[..floor_char_boundary(&delta.content, room)]);
                        too_long = true;
                        call.cancel();
                        return;
                    }
                    partial.push_str(&delta.content);
                    if !keep_content {
                        out.emit(EventData::RunContent {
                            content: Value::String(delta.content.clone()),
                            workflow_agent,
                            content_type: "str".into(),
                            reasoning_content: String::new(),
                            model_provider_data: provider_data.clone(),
                        });
                    }
                })
            };
            let elapsed = model_started.elapsed().as_secs_f64();
            if totals.first_token.is_none() {
                totals.first_token = first_token.or(Some(elapsed));
            }
            let response = match outcome {
                Ok(_) | Err(_) if cancel.is_cancelled() => break Step::Cancelled,
                Ok(response) if response.content.len() > max_answer_bytes => {
                    // A whole (non-streamed) answer over the limit: keep what fits.
                    partial = response.content;
                    partial.truncate(floor_char_boundary(&partial, max_answer_bytes));
                    break Step::Failed(ModelError::AnswerTooLong(max_answer_bytes));
                }
                _ if too_long => break Step::Failed(ModelError::AnswerTooLong(max_answer_bytes)),
                Ok(response) => response,
                Err(ModelError::Cancelled) => break Step::Cancelled,
                Err(error) => break Step::Failed(error),
            };
            if response.provider_data.is_some() {
                provider_data.clone_from(&response.provider_data);
            }
            totals.add(response.usage);
            if response.tool_calls.is_empty()
                && let Some(schema) = &schema
            {
                // A structured answer is one RunContent with the whole object, before
                // ModelRequestCompleted (as AgentOS).
                out.emit(EventData::RunContent {
                    content: crate::schema::structured_answer(&response.content),
                    workflow_agent,
                    content_type: schema.content_type.clone(),
                    reasoning_content: String::new(),
                    model_provider_data: None,
                });
            }
            let usage = response.usage.unwrap_or_default();
            let ttft = first_token.or(Some(elapsed));
            out.emit(EventData::ModelRequestCompleted {
                model: model_id.clone(),
                model_provider: provider.clone(),
                input_tokens: Some(usage.input_tokens),
                output_tokens: Some(usage.output_tokens),
                total_tokens: Some(usage.total_tokens),
                time_to_first_token: ttft,
                reasoning_tokens: usage.reasoning_tokens,
                cache_read_tokens: usage.cache_read_tokens,
                cache_write_tokens: usage.cache_write_tokens,
            });
            let mut message_metrics = Metrics {
                duration: Some(elapsed),
                ..Metrics::default()
            };
            if let Some(u) = response.usage {
                message_metrics.input_tokens = Some(u.input_tokens);
                message_metrics.output_tokens = Some(u.output_tokens);
                message_metrics.total_tokens = Some(u.total_tokens);
            }
            if response.tool_calls.is_empty() {
                message_metrics.time_to_first_token = ttft;
            }
            let tool_calls: Vec<Value> = response
                .tool_calls
                .iter()
                .map(|c| {
                    json!({"id": c.id, "function": {"arguments": c.arguments, "name": c.name},
                           "type": "function"})
                })
                .collect();
            let assistant = Message {
                id: new_id(),
                content: (!response.content.is_empty() || tool_calls.is_empty())
                    .then(|| response.content.clone()),
                role: Role::Assistant,
                tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                provider_data: provider_data.clone(),
                metrics: Some(message_metrics),
                created_at: now_secs(),
                ..Message::default()
            };
            round.own.push(assistant.clone());
            round.messages.push(assistant);
            if response.tool_calls.is_empty() {
                break Step::Answer(response);
            }
            tool_rounds += 1;
            let mut calls: Vec<_> = response
                .tool_calls
                .iter()
                .map(|c| new_execution(c, round.toolbox))
                .collect();
            // A route leader's delegation ends the run with the member's answer.
            let routing = leader
                .as_ref()
                .is_some_and(|l| l.mode == crate::config::TeamMode::Route);
            if routing {
                for call in calls
                    .iter_mut()
                    .filter(|c| c.tool_name == super::team::DELEGATE_ONE)
                {
                    call.stop_after_tool_call = true;
                }
            }
            if calls.iter().any(|c| c.requires_confirmation == Some(true)) {
                round.executions.extend(calls);
                break Step::Paused;
            }
            let ids: Vec<String> = calls.iter().map(|c| c.tool_call_id.clone()).collect();
            round.run_calls(calls, &mut out);
            if cancel.is_cancelled() {
                break Step::Cancelled;
            }
            let routed = round.executions.iter().find(|e| {
                e.stop_after_tool_call
                    && e.tool_call_error == Some(false)
                    && ids.contains(&e.tool_call_id)
            });
            if let Some(routed) = routed {
                let answer = routed.result.clone().unwrap_or_default();
                out.emit(EventData::RunContent {
                    content: Value::String(answer.clone()),
                    workflow_agent,
                    content_type: "str".into(),
                    reasoning_content: String::new(),
                    model_provider_data: None,
                });
                break Step::Answer(crate::model::ModelResponse {
                    content: answer,
                    ..Default::default()
                });
            }
        };
        let duration = started.elapsed().as_secs_f64();

        match step {
            Step::Answer(response) => {
                let content = match &schema {
                    Some(_) => crate::schema::structured_answer(&response.content),
                    None => Value::String(response.content.clone()),
                };
                out.emit(EventData::RunContentCompleted {});
                totals.fill(&mut run.metrics, &model_id, &provider, duration);
                run.content = Some(content.clone());
                run.model_provider_data = provider_data.clone();
                run.status = RunStatus::Completed;
                out.emit(EventData::RunCompleted {
                    content: Some(content),
                    content_type: content_type.clone(),
                    model_provider_data: provider_data,
                    session_state: leader.is_none().then(|| session_state.clone()),
                    metadata: run.metadata.clone(),
                    member_responses: leader.as_ref().map(|l| l.responses()),
                    metrics: Box::new(run.metrics.clone()),
                });
            }
            Step::Paused => {
                out.emit(EventData::RunContentCompleted {});
                totals.fill(&mut run.metrics, &model_id, &provider, duration);
                let tools = run.tools.clone().unwrap_or_default();
                let paused: Vec<_> = tools
                    .iter()
                    .filter(|t| t.requires_confirmation == Some(true) && t.confirmed.is_none())
                    .cloned()
                    .collect();
                let requirements = pause_requirements(&paused);
                run.status = RunStatus::Paused;
                run.content = Some(Value::String(PAUSED_CONTENT.into()));
                run.model_provider_data = provider_data;
                run.requirements = Some(requirements.clone());
                out.emit(EventData::RunPaused {
                    content: PAUSED_CONTENT.into(),
                    tools: paused,
                    requirements,
                });
            }
            Step::Cancelled => {
                let reason = format!("Run {run_id} was cancelled");
                run.status = RunStatus::Cancelled;
                run.cancellation_stage = Some("EXECUTING".into());
                // As AgentOS: a cancelled run carries no `tools` list.
                run.tools = None;
                run.metrics.time_to_first_token = totals.first_token;
                run.metrics.duration = Some(duration);
                run.model_provider_data = provider_data.clone();
                if !partial.is_empty() {
                    run.messages.push(Message {
                        id: new_id(),
                        content: Some(partial.clone()),
                        role: Role::Assistant,
                        created_at: now_secs(),
                        ..Message::default()
                    });
                }
                let content = if partial.is_empty() {
                    reason.clone()
                } else {
                    partial.clone()
                };
                run.content = Some(Value::String(content.clone()));
                out.emit(EventData::RunCancelled {
                    content: Some(content.clone()),
                    reason,
                });
                out.emit(EventData::RunCompleted {
                    content: Some(Value::String(content)),
                    content_type: "str".into(),
                    model_provider_data: provider_data,
                    session_state: Some(if leader.is_some() {
                        json!({})
                    } else {
                        session_state.clone()
                    }),
                    metadata: run.metadata.clone(),
                    member_responses: leader.as_ref().map(|l| l.responses()),
                    metrics: Box::new(run.metrics.clone()),
                });
            }
            Step::Failed(error) => {
                let message = error.to_string();
                run.status = RunStatus::Error;
                run.content_type = "str".into();
                run.content = Some(Value::String(message.clone()));
                run.tools = None;
                run.metrics = Metrics {
                    duration: Some(duration),
                    ..Metrics::default()
                };
                if !partial.is_empty() {
                    run.messages.push(Message {
                        id: new_id(),
                        content: Some(partial.clone()),
                        role: Role::Assistant,
                        created_at: now_secs(),
                        ..Message::default()
                    });
                }
                out.emit(EventData::RunError {
                    content: message,
                    error_type: Some("model_provider_error".into()),
                });
            }
        }

        // As AgentOS, a run that was not streamed keeps only its final output.
        let run = match &leader {
            Some(leader) => leader.team_run(&run, leader.responses()),
            None => AnyRun::Agent(run),
        };
        if context.persist {
            // A continued run keeps the events stored before its pause, then its own.
            let mut events = prior_events;
            if stream {
                events.extend(
                    out.log
                        .iter()
                        .map(|e| serde_json::to_value(e).unwrap_or(Value::Null)),
                );
            }
            self.store.finish_run(&run, &events, &session_state)?;
        }
        Ok(run)
    }
}
