//! The model loop of a started run: call the model, run the tools it asks for, feed their
//! results back, repeat until it answers; pause for a human where a tool needs one.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::tools::{ToolRound, new_execution, pause_requirements};
use super::{Engine, EngineError, PendingRun, PendingTurn};
use crate::cancel::CancelToken;
use crate::event::{AgentSource, Event, EventData, EventSink, EventSource, TeamSource};
use crate::model::{Assembler, Chunk, Model, ModelError, ModelRequest, ModelResponse, Usage};
use crate::run::{
    AnyRun, Message, Metrics, MetricsDetails, ModelMetrics, Role, RunStatus, new_id, now_secs,
};

/// What a paused run says while it waits (AgentOS's wording).
pub(super) const PAUSED_CONTENT: &str = "I have tools to execute, but I need confirmation.";

/// Emits a run's events to the caller's sink and keeps the ones the store keeps. Shared by
/// the concurrent tool calls of a round, whose member runs forward their events through it.
pub(super) struct Emitter<'a> {
    source: Arc<EventSource>,
    sink: &'a dyn EventSink,
    /// Content deltas are not stored (as AgentOS), unless they carry a whole object.
    keep_content: bool,
    log: Mutex<Vec<Event>>,
}

impl Emitter<'_> {
    pub(super) async fn emit(&self, data: EventData) {
        let event = Event::new(&self.source, data);
        self.forward(&event).await;
    }

    /// Passes on an event of this run, or of another run (a team member's) as it happened.
    pub(super) async fn forward(&self, event: &Event) {
        self.sink.send(event).await;
        // Content deltas are not stored (as AgentOS), unless they carry a whole object.
        let own = event.source.run_id() == self.source.run_id();
        if !event.data.is_content() || (own && self.keep_content) {
            self.log
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(event.clone());
        }
    }

    /// Passes on a delta of this run's answer. Deltas are not stored (as AgentOS), not
    /// even when the run keeps its content events (the whole structured object).
    async fn emit_delta(&self, data: EventData) {
        let event = Event::new(&self.source, data);
        self.sink.send(&event).await;
    }

    /// The events kept for the store.
    pub(super) fn into_log(self) -> Vec<Event> {
        self.log.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

impl EventSink for Emitter<'_> {
    fn send<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, ()> {
        Box::pin(self.forward(event))
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
            self.usage.reasoning_tokens += u.reasoning_tokens;
            self.usage.cache_read_tokens += u.cache_read_tokens;
            self.usage.cache_write_tokens += u.cache_write_tokens;
        }
    }

    fn fill(&self, metrics: &mut Metrics, model: &str, provider: &str, duration: f64) {
        if self.reported {
            metrics.input_tokens = Some(self.usage.input_tokens);
            metrics.output_tokens = Some(self.usage.output_tokens);
            metrics.total_tokens = Some(self.usage.total_tokens);
            let counted = |n: u64| (n > 0).then_some(n);
            metrics.reasoning_tokens = counted(self.usage.reasoning_tokens);
            metrics.cache_read_tokens = counted(self.usage.cache_read_tokens);
            metrics.cache_write_tokens = counted(self.usage.cache_write_tokens);
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
    Answer(Box<ModelResponse>),
    Paused,
    Cancelled,
    Failed(ModelError),
}

/// How the call of one model request ended.
enum Called {
    Done(Box<ModelResponse>),
    Cancelled,
    Failed(ModelError),
}

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
    pub async fn execute(
        &self,
        pending: PendingRun,
        cancel: &CancelToken,
        sink: &dyn EventSink,
    ) -> Result<AnyRun, EngineError> {
        // A top-level run is journaled and can be cancelled from other processes.
        let presence = self.presence().filter(|_| pending.is_top_level());
        let (_tracked, journal) = match presence {
            Some(p) => (
                Some(p.track(pending.run_id(), cancel)),
                p.journal(pending.run_id(), pending.is_continued()),
            ),
            None => (None, None),
        };
        let journaled;
        let sink: &dyn EventSink = match &journal {
            Some(journal) => {
                journaled = crate::presence::JournalSink {
                    journal,
                    inner: sink,
                };
                &journaled
            }
            None => sink,
        };
        // Boxed, so a run in flight holds the state of its own kind only.
        let result = match pending {
            PendingRun::Turn(turn) => Box::pin(self.execute_turn(*turn, cancel, sink)).await,
            PendingRun::Workflow(workflow) => {
                Box::pin(self.execute_workflow(*workflow, cancel, sink)).await
            }
        };
        if let (Some(presence), Some(journal)) = (presence, &journal) {
            journal.finish();
            presence.close_journal(journal);
        }
        result
    }

    /// Calls the model for a started agent or team run, emitting events, and stores the
    /// outcome.
    pub(super) async fn execute_turn(
        &self,
        pending: PendingTurn,
        cancel: &CancelToken,
        sink: &dyn EventSink,
    ) -> Result<AnyRun, EngineError> {
        let PendingTurn {
            mut run,
            models,
            mut messages,
            schema,
            temperature,
            max_tokens,
            reasoning_budget,
            cache_prompt,
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
        // The model answering: the first, until a call fails and a fallback takes over.
        let mut current = 0;
        let mut model_id = models[0].info().id.clone();
        let mut provider = models[0].info().provider.clone();
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
        let out = Emitter {
            source: Arc::new(source),
            sink,
            keep_content: schema.is_some(),
            log: Mutex::new(Vec::new()),
        };
        let mut totals = Totals::default();
        if run.metrics.input_tokens.is_some() {
            // A continued run keeps counting from where it paused.
            totals.reported = true;
            totals.usage.input_tokens = run.metrics.input_tokens.unwrap_or(0);
            totals.usage.output_tokens = run.metrics.output_tokens.unwrap_or(0);
            totals.usage.total_tokens = run.metrics.total_tokens.unwrap_or(0);
            totals.usage.reasoning_tokens = run.metrics.reasoning_tokens.unwrap_or(0);
            totals.usage.cache_read_tokens = run.metrics.cache_read_tokens.unwrap_or(0);
            totals.usage.cache_write_tokens = run.metrics.cache_write_tokens.unwrap_or(0);
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
                out.emit(EventData::RunContinued {}).await;
                Box::pin(round.run_decided(decided, &out)).await;
            }
            None => {
                out.emit(EventData::RunStarted {
                    model: model_id.clone(),
                    model_provider: provider.clone(),
                })
                .await
            }
        }

        let mut tool_rounds = 0usize;
        // Whether any of the answer (text or reasoning, of any round) reached the client:
        // from then on the run stays with its model.
        let mut forwarded = false;
        let mut partial = String::new();
        let mut reasoning = String::new();
        let mut provider_data: Option<Value> = None;
        let step = loop {
            out.emit(EventData::ModelRequestStarted {
                model: model_id.clone(),
                model_provider: provider.clone(),
            })
            .await;
            let mut specs = round.toolbox.specs();
            if let Some(leader) = &leader {
                specs.extend(leader.specs());
            }
            let request = ModelRequest {
                messages: round.messages,
                temperature,
                max_tokens,
                output: schema.as_ref().map(|s| &s.format),
                stream,
                tools: &specs,
                allow_tools: tool_rounds < tool_call_limit,
                reasoning_budget,
                cache_prompt,
            };
            let model_started = Instant::now();
            partial.clear();
            let call = Call {
                model: models[current].as_ref(),
                out: &out,
                cancel,
                max_answer_bytes,
                workflow_agent,
            };
            let mut streamed = Streamed {
                partial: &mut partial,
                reasoning: &mut reasoning,
                provider_data: &mut provider_data,
                forwarded: &mut forwarded,
            };
            let called = Box::pin(call.run(request, &mut streamed)).await;
            let elapsed = model_started.elapsed().as_secs_f64();
            let first_token = called
                .1
                .map(|t| t.duration_since(model_started).as_secs_f64());
            let timed_first = totals.first_token.is_none();
            if timed_first {
                totals.first_token = first_token.or(Some(elapsed));
            }
            let response = match called.0 {
                _ if cancel.is_cancelled() => break Step::Cancelled,
                Called::Cancelled => break Step::Cancelled,
                // Nothing of the run's answer reached the client (text held back for an
                // output schema does not count): the next model may try instead.
                Called::Failed(error)
                    if current + 1 < models.len()
                        && !forwarded
                        && !matches!(error, ModelError::AnswerTooLong(_)) =>
                {
                    current += 1;
                    if timed_first {
                        totals.first_token = None;
                    }
                    let next = models[current].info();
                    tracing::info!(
                        run_id = %run_id,
                        "{provider} model {model_id} failed ({error}); falling back to {} model {}",
                        next.provider,
                        next.id
                    );
                    model_id.clone_from(&next.id);
                    provider.clone_from(&next.provider);
                    continue;
                }
                Called::Failed(error) => break Step::Failed(error),
                Called::Done(response) => *response,
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
                })
                .await;
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
            })
            .await;
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
            let tool_calls = response.tool_calls.clone();
            let assistant = Message {
                id: new_id(),
                content: (!response.content.is_empty() || tool_calls.is_empty())
                    .then(|| response.content.clone()),
                role: Role::Assistant,
                tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                provider_data: provider_data.clone(),
                reasoning_content: (!response.reasoning.is_empty())
                    .then(|| response.reasoning.clone()),
                reasoning_blocks: response.reasoning_blocks.clone(),
                metrics: Some(message_metrics),
                created_at: now_secs(),
                ..Message::default()
            };
            round.own.push(assistant.clone());
            round.messages.push(assistant);
            if response.tool_calls.is_empty() {
                break Step::Answer(Box::new(response));
            }
            if tool_rounds >= tool_call_limit {
                // Tools were no longer offered: a model calling them anyway would keep the
                // run going round for ever.
                break Step::Failed(ModelError::Protocol(format!(
                    "{provider} model {model_id} called tools again after tool_call_limit \
                     ({tool_call_limit} rounds), when none were offered"
                )));
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
            Box::pin(round.run_calls(calls, &out)).await;
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
                })
                .await;
                break Step::Answer(Box::new(crate::model::ModelResponse {
                    content: answer,
                    ..Default::default()
                }));
            }
        };
        let duration = started.elapsed().as_secs_f64();
        // The run reports the model that answered (a fallback, if one took over).
        run.model.clone_from(&model_id);
        run.model_provider.clone_from(&provider);
        let reasoning = (!reasoning.is_empty()).then_some(reasoning);
        run.reasoning_content.clone_from(&reasoning);

        match step {
            Step::Answer(response) => {
                let content = match &schema {
                    Some(_) => crate::schema::structured_answer(&response.content),
                    None => Value::String(response.content.clone()),
                };
                out.emit(EventData::RunContentCompleted {}).await;
                totals.fill(&mut run.metrics, &model_id, &provider, duration);
                run.content = Some(content.clone());
                run.model_provider_data = provider_data.clone();
                run.status = RunStatus::Completed;
                out.emit(EventData::RunCompleted {
                    content: Some(content),
                    content_type: content_type.clone(),
                    reasoning_content: reasoning,
                    model_provider_data: provider_data,
                    session_state: leader.is_none().then(|| session_state.clone()),
                    metadata: run.metadata.clone(),
                    member_responses: leader.as_ref().map(|l| l.responses()),
                    metrics: Box::new(run.metrics.clone()),
                })
                .await;
            }
            Step::Paused => {
                out.emit(EventData::RunContentCompleted {}).await;
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
                })
                .await;
            }
            Step::Cancelled => {
                let reason = format!("Run {run_id} was cancelled");
                run.status = RunStatus::Cancelled;
                run.cancellation_stage = Some("EXECUTING".into());
                // As AgentOS: a cancelled run carries no `tools` list.
                run.tools = None;
                // The model calls that finished before the cancel keep their tokens.
                totals.fill(&mut run.metrics, &model_id, &provider, duration);
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
                })
                .await;
                out.emit(EventData::RunCompleted {
                    content: Some(Value::String(content)),
                    content_type: "str".into(),
                    reasoning_content: reasoning,
                    model_provider_data: provider_data,
                    session_state: Some(if leader.is_some() {
                        json!({})
                    } else {
                        session_state.clone()
                    }),
                    metadata: run.metadata.clone(),
                    member_responses: leader.as_ref().map(|l| l.responses()),
                    metrics: Box::new(run.metrics.clone()),
                })
                .await;
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
                })
                .await;
            }
        }

        // As AgentOS, a run that was not streamed keeps only its final output.
        let run = match &leader {
            Some(leader) => leader.team_run(&run, leader.responses()),
            None => AnyRun::Agent(run),
        };
        let log = out.into_log();
        if context.persist {
            // A continued run keeps the events stored before its pause, then its own.
            let mut events = prior_events;
            if stream {
                events.extend(
                    log.iter()
                        .map(|e| serde_json::to_value(e).unwrap_or(Value::Null)),
                );
            }
            self.store_outcome(run.clone(), events, session_state)
                .await?;
        }
        Ok(run)
    }
}

/// Where one model request puts what streams in: the answer's text (`partial`), the
/// run's reasoning, the provider's metadata, and whether any of it reached the client.
struct Streamed<'s> {
    partial: &'s mut String,
    reasoning: &'s mut String,
    provider_data: &'s mut Option<Value>,
    forwarded: &'s mut bool,
}

/// One model request of a run: its chunks become `RunContent` events as they arrive.
struct Call<'a> {
    model: &'a dyn Model,
    out: &'a Emitter<'a>,
    cancel: &'a CancelToken,
    max_answer_bytes: usize,
    workflow_agent: Option<bool>,
}

impl Call<'_> {
    /// Calls the model, appending the answer's text to `partial` and its reasoning to
    /// `reasoning` as they stream and keeping the provider's metadata in `provider_data`.
    /// Returns how it ended and when the first piece of the answer arrived. Cancelling
    /// drops the request at once.
    async fn run(
        &self,
        request: ModelRequest<'_>,
        streamed: &mut Streamed<'_>,
    ) -> (Called, Option<Instant>) {
        let mut first: Option<Instant> = None;
        let called = tokio::select! {
            biased;
            () = self.cancel.cancelled() => Called::Cancelled,
            called = self.stream(request, streamed, &mut first) => called,
        };
        (called, first)
    }

    async fn stream(
        &self,
        request: ModelRequest<'_>,
        streamed: &mut Streamed<'_>,
        first: &mut Option<Instant>,
    ) -> Called {
        let mut chunks = match self.model.stream(request).await {
            Ok(chunks) => chunks,
            Err(error) => return Called::Failed(error),
        };
        let mut assembler = Assembler::default();
        while let Some(chunk) = chunks.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(error) => return Called::Failed(error),
            };
            match &chunk {
                Chunk::Text(text) => {
                    first.get_or_insert_with(Instant::now);
                    let partial = &mut *streamed.partial;
                    if partial.len() + text.len() > self.max_answer_bytes {
                        // Keep what fits, then stop the request.
                        let room = self.max_answer_bytes - partial.len();
                        partial.push_str(&text[..floor_char_boundary(text, room)]);
                        return Called::Failed(ModelError::AnswerTooLong(self.max_answer_bytes));
                    }
                    partial.push_str(text);
                    // With an output schema the text is held back: the answer is one
                    // structured object at the end.
                    if !self.out.keep_content {
                        if !text.is_empty() {
                            *streamed.forwarded = true;
                        }
                        self.content(Value::String(text.clone()), String::new(), streamed)
                            .await;
                    }
                }
                Chunk::Reasoning(text) if text.is_empty() => {}
                Chunk::Reasoning(text) => {
                    first.get_or_insert_with(Instant::now);
                    if streamed.reasoning.len() + text.len() > self.max_answer_bytes {
                        return Called::Failed(ModelError::AnswerTooLong(self.max_answer_bytes));
                    }
                    streamed.reasoning.push_str(text);
                    // Reasoning streams as it comes, output schema or not.
                    *streamed.forwarded = true;
                    self.content(Value::String(String::new()), text.clone(), streamed)
                        .await;
                }
                Chunk::ProviderData(data) => {
                    let mut merged = match streamed.provider_data.take() {
                        Some(Value::Object(map)) => map,
                        _ => serde_json::Map::new(),
                    };
                    for (k, v) in data {
                        merged.insert(k.clone(), v.clone());
                    }
                    *streamed.provider_data = Some(Value::Object(merged));
                }
                Chunk::ToolCall(_)
                | Chunk::Usage(_)
                | Chunk::Finish(_)
                | Chunk::ReasoningSignature(_)
                | Chunk::RedactedReasoning(_) => {}
            }
            assembler.add(&chunk);
        }
        Called::Done(Box::new(assembler.finish()))
    }

    async fn content(&self, content: Value, reasoning: String, streamed: &Streamed<'_>) {
        self.out
            .emit_delta(EventData::RunContent {
                content,
                workflow_agent: self.workflow_agent,
                content_type: "str".into(),
                reasoning_content: reasoning,
                model_provider_data: streamed.provider_data.clone(),
            })
            .await;
    }
}
