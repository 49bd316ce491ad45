//! Running steps: an agent or team step, and the composites (parallel, condition, loop,
//! router) around them, each with its events and its `StepOutput`.
//!
//! A step gets the content that flows from the step before it (the workflow input for the
//! first one) and hands on what the next step gets. Composites emit only their
//! `*Execution*` events; the agent and team steps inside them emit `StepStarted` and
//! `StepCompleted` with the composite as `parent_step_id` and their position as an array
//! `step_index` (`[outer, inner]`, one more level per nesting).

use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use std::time::Instant;

use serde_json::{Map, Value, json};

use super::choose::{Pick, loop_variables};
use super::outputs;
use crate::cancel::CancelToken;
use crate::config::{RouteBy, StepDef, StepKind, WorkflowDef};
use crate::engine::{Engine, RunContext, RunRequest};
use crate::event::{Event, EventData, EventSink, EventSource, StepContext, WorkflowSource};
use crate::expr::Expr;
use crate::run::{AnyRun, RunRecord, RunStatus, StepOutput, new_id};

/// The `error` of a step cut short by a cancel (AgentOS's wording).
const CANCELLED_ERROR: &str = "Cancelled during execution";

/// One workflow run while its steps execute. Shared by the futures of parallel steps.
pub(super) struct Runner<'a> {
    pub engine: &'a Engine,
    pub workflow: &'a WorkflowDef,
    pub run_id: &'a str,
    pub session_id: &'a str,
    /// The workflow's input message.
    pub input: &'a str,
    /// What step runs inherit: user, session, dependencies, stream.
    pub base: &'a RunRequest,
    pub session_state: &'a Value,
    pub cancel: &'a CancelToken,
    /// Every agent and team run of the steps, in the order they finished.
    pub executor_runs: Mutex<Vec<AnyRun>>,
    /// The content of every step finished so far, by step name (`previous_step_outputs`).
    pub outputs: Mutex<Map<String, Value>>,
}

/// How a step, or a list of steps, ended.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum End {
    /// Ran to its end; skipped failures included.
    Done,
    /// A step failed: the workflow stops with this error.
    Failed(String),
    /// The run was cancelled.
    Cancelled,
}

/// What running one step gave.
pub(super) struct Ran {
    /// The step's output; none when it never started.
    pub output: Option<StepOutput>,
    /// What the next step gets; `None` when the step's input passes on unchanged.
    pub next: Option<String>,
    pub end: End,
}

/// What running a list of steps gave.
pub(super) struct RanList {
    pub outputs: Vec<StepOutput>,
    /// What the step after the list gets; `None` when the list's input passes on unchanged.
    pub next: Option<String>,
    pub end: End,
}

type Sink<'s> = &'s dyn EventSink;

/// The `step_index` of the `k`-th child of the step at `index`.
pub(super) fn child_index(index: &Value, k: usize) -> Value {
    match index {
        Value::Array(outer) => {
            let mut inner = outer.clone();
            inner.push(json!(k));
            Value::Array(inner)
        }
        outer => json!([outer, k]),
    }
}

impl Runner<'_> {
    /// The source of a workflow event, about `step_id` inside the composite `parent`.
    pub(super) fn source(&self, step_id: Option<&str>, parent: Option<&str>) -> Arc<EventSource> {
        Arc::new(EventSource::Workflow(WorkflowSource {
            workflow_id: self.workflow.id.clone(),
            workflow_name: self.workflow.name.clone(),
            session_id: self.session_id.to_string(),
            run_id: self.run_id.to_string(),
            step_id: step_id.map(str::to_string),
            parent_step_id: parent.map(str::to_string),
            nested_depth: 0,
        }))
    }

    /// Runs `steps` one after another, the first with `flow` (the workflow input when
    /// `None`), each next one with its predecessor's content. Stops at the first step that
    /// fails or is cancelled.
    pub(super) async fn run_list(
        &self,
        steps: &[StepDef],
        index_of: &(dyn Fn(usize) -> Value + Sync),
        parent: Option<&str>,
        flow: Option<&str>,
        emit: Sink<'_>,
    ) -> RanList {
        let mut outputs = Vec::new();
        let mut next: Option<String> = None;
        for (k, step) in steps.iter().enumerate() {
            let ran = self
                .run_step(step, index_of(k), parent, next.as_deref().or(flow), emit)
                .await;
            outputs.extend(ran.output);
            if ran.next.is_some() {
                next = ran.next;
            }
            if ran.end != End::Done {
                return RanList {
                    outputs,
                    next,
                    end: ran.end,
                };
            }
        }
        RanList {
            outputs,
            next,
            end: End::Done,
        }
    }

    /// Runs one step of any kind.
    /// Boxed, as composites run steps in turn.
    pub(super) fn run_step<'s>(
        &'s self,
        step: &'s StepDef,
        index: Value,
        parent: Option<&'s str>,
        flow: Option<&'s str>,
        emit: Sink<'s>,
    ) -> BoxFuture<'s, Ran> {
        Box::pin(self.run_step_now(step, index, parent, flow, emit))
    }

    async fn run_step_now(
        &self,
        step: &StepDef,
        index: Value,
        parent: Option<&str>,
        flow: Option<&str>,
        emit: Sink<'_>,
    ) -> Ran {
        if self.cancel.is_cancelled() {
            return Ran {
                output: None,
                next: None,
                end: End::Cancelled,
            };
        }
        let at = At {
            step,
            index,
            parent,
            flow,
        };
        match &step.kind {
            StepKind::Agent {
                id,
                skip_on_failure,
            } => self.executor(&at, id, false, *skip_on_failure, emit).await,
            StepKind::Team {
                id,
                skip_on_failure,
            } => self.executor(&at, id, true, *skip_on_failure, emit).await,
            StepKind::Parallel(children) => self.parallel(&at, children, emit).await,
            StepKind::Condition {
                when,
                steps,
                else_steps,
            } => self.condition(&at, when, steps, else_steps, emit).await,
            StepKind::Loop {
                steps,
                max_iterations,
                until,
            } => {
                self.repeat(&at, steps, *max_iterations, until.as_ref(), emit)
                    .await
            }
            StepKind::Router { choices, route } => self.router(&at, choices, route, emit).await,
        }
    }

    /// An agent or team step: runs it with the step's input as its message.
    async fn executor(
        &self,
        at: &At<'_>,
        id: &str,
        is_team: bool,
        skip: bool,
        emit: Sink<'_>,
    ) -> Ran {
        let step = at.step;
        let step_id = new_id();
        let source = self.source(Some(&step_id), at.parent);
        emit.send(&Event::new(
            &source,
            EventData::StepStarted {
                step_name: step.name.clone(),
                step_index: at.index.clone(),
            },
        ))
        .await;
        let config = self.engine.config();
        let executor_name = if is_team {
            config.team(id).map(|t| t.name.clone())
        } else {
            config.agent(id).map(|a| a.name.clone())
        }
        .unwrap_or_else(|| id.to_string());
        let kind = if is_team { "team" } else { "agent" };
        let req = RunRequest {
            agent_id: id.to_string(),
            message: at.input(self).to_string(),
            session_id: self.base.session_id.clone(),
            user_id: self.base.user_id.clone(),
            dependencies: self.base.dependencies.clone(),
            add_history_to_context: Some(false),
            stream: self.base.stream,
            ..RunRequest::default()
        };
        let context = RunContext {
            parent_run_id: Some(self.run_id.to_string()),
            step: Some(StepContext {
                workflow_id: self.workflow.id.clone(),
                workflow_run_id: self.run_id.to_string(),
                step_id: step_id.clone(),
                step_name: step.name.clone(),
                step_index: at.index.clone(),
            }),
            persist: false,
        };
        let mut output = StepOutput {
            step_name: step.name.clone(),
            step_id: step_id.clone(),
            step_type: "Step".into(),
            executor_type: Some(kind.into()),
            executor_name: Some(executor_name.clone()),
            ..StepOutput::default()
        };
        let result = self
            .engine
            .run_component(id, is_team, req, context, self.cancel, emit)
            .await;
        let failure = match result {
            Err(e) => format!("{kind} `{id}` could not start: {e}"),
            Ok(mut run) => {
                match &mut run {
                    AnyRun::Agent(r) => r.workflow_step_id = Some(step_id.clone()),
                    AnyRun::Team(r) => r.workflow_step_id = Some(step_id.clone()),
                    AnyRun::Workflow(_) => {}
                }
                output.step_run_id = Some(run.run_id().to_string());
                output.metrics = Some(run.metrics().into_owned());
                output.content = run.content().cloned();
                let status = run.status();
                let text = run.content_text();
                self.executor_runs
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(run);
                match status {
                    RunStatus::Completed => {
                        output.success = true;
                        self.finished(&output, emit, &source, &at.index).await;
                        return Ran {
                            output: Some(output),
                            next: Some(text),
                            end: End::Done,
                        };
                    }
                    RunStatus::Cancelled => {
                        output.error = Some(CANCELLED_ERROR.into());
                        return Ran {
                            output: Some(output),
                            next: None,
                            end: End::Cancelled,
                        };
                    }
                    RunStatus::Paused => format!(
                        "{kind} `{id}` paused for a human decision on a tool call, which a \
                         workflow step cannot wait for"
                    ),
                    RunStatus::Error if !text.is_empty() => text,
                    other => format!("{kind} `{id}` ended {}", other.as_str()),
                }
            }
        };
        output.success = false;
        output.content = Some(Value::String(failure.clone()));
        output.error = Some(failure.clone());
        if skip {
            // A skipped step is reported like a finished one; the next step gets this
            // step's input.
            self.finished(&output, emit, &source, &at.index).await;
            return Ran {
                output: Some(output),
                next: None,
                end: End::Done,
            };
        }
        emit.send(&Event::new(
            &source,
            EventData::StepError {
                step_name: step.name.clone(),
                step_index: at.index.clone(),
                error: failure.clone(),
            },
        ))
        .await;
        Ran {
            output: Some(output),
            next: None,
            end: End::Failed(format!("Step '{}' failed: {failure}", step.name)),
        }
    }

    /// Records a finished agent or team step and emits its `StepCompleted`.
    async fn finished(
        &self,
        output: &StepOutput,
        emit: Sink<'_>,
        source: &Arc<EventSource>,
        index: &Value,
    ) {
        self.remember(output);
        emit.send(&Event::new(
            source,
            EventData::StepCompleted {
                step_name: output.step_name.clone(),
                step_index: index.clone(),
                content: output.content.clone(),
                content_type: "str".into(),
                step_response: Box::new(output.clone()),
            },
        ))
        .await;
    }

    /// Makes a finished step's content visible to later conditions and routers.
    fn remember(&self, output: &StepOutput) {
        self.outputs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                output.step_name.clone(),
                Value::String(output.content_text()),
            );
    }

    /// Emits the `StepError` of a composite whose expression or pick failed; the workflow
    /// fails with it.
    async fn step_error(&self, at: &At<'_>, step_id: &str, error: String, emit: Sink<'_>) -> End {
        let message = format!("Step '{}' failed: {error}", at.step.name);
        emit.send(&Event::new(
            &self.source(Some(step_id), at.parent),
            EventData::StepError {
                step_name: at.step.name.clone(),
                step_index: at.index.clone(),
                error,
            },
        ))
        .await;
        End::Failed(message)
    }

    /// A composite that could not run at all: its `StepError`, and an empty failed output.
    async fn composite_failed(
        &self,
        at: &At<'_>,
        step_id: &str,
        step_type: &str,
        error: String,
        emit: Sink<'_>,
    ) -> Ran {
        let end = self.step_error(at, step_id, error, emit).await;
        let output = StepOutput {
            step_name: at.step.name.clone(),
            step_id: step_id.to_string(),
            step_type: step_type.into(),
            ..StepOutput::default()
        };
        interrupted(output, end)
    }

    /// The children run at the same time, each with the parallel step's input. The next
    /// step gets each successful child's content under a `=== name ===` heading.
    async fn parallel(&self, at: &At<'_>, children: &[StepDef], emit: Sink<'_>) -> Ran {
        let step = at.step;
        let id = new_id();
        let source = self.source(Some(&id), at.parent);
        emit.send(&Event::new(
            &source,
            EventData::ParallelExecutionStarted {
                step_name: step.name.clone(),
                step_index: at.index.clone(),
                parallel_step_count: children.len(),
            },
        ))
        .await;
        let started = Instant::now();
        // The children run as concurrent futures; their events pass on as they happen.
        let results: Vec<Ran> =
            futures_util::future::join_all(children.iter().enumerate().map(|(k, child)| {
                let index = child_index(&at.index, k);
                self.run_step(child, index, Some(id.as_str()), at.flow, emit)
            }))
            .await;
        let elapsed = started.elapsed().as_secs_f64();
        let end = results
            .iter()
            .find_map(|r| matches!(r.end, End::Failed(_)).then(|| r.end.clone()))
            .or_else(|| {
                results
                    .iter()
                    .any(|r| r.end == End::Cancelled)
                    .then_some(End::Cancelled)
            })
            .unwrap_or(End::Done);
        let parts: Vec<String> = children
            .iter()
            .zip(&results)
            .filter(|(_, r)| r.output.as_ref().is_some_and(|o| o.success))
            .filter_map(|(child, r)| {
                r.next
                    .as_ref()
                    .map(|text| format!("=== {} ===\n{text}", child.name))
            })
            .collect();
        let steps: Vec<StepOutput> = results.into_iter().filter_map(|r| r.output).collect();
        let output = StepOutput {
            content: Some(Value::String(outputs::parallel_content(&steps))),
            step_name: step.name.clone(),
            step_id: id.clone(),
            step_type: "Parallel".into(),
            executor_type: (children.len() > 1).then(|| "parallel".into()),
            executor_name: Some(step.name.clone()),
            metrics: outputs::parallel_metrics(&steps, elapsed),
            success: steps.iter().all(|s| s.success),
            steps,
            ..StepOutput::default()
        };
        if end != End::Done {
            return interrupted(output, end);
        }
        self.remember(&output);
        emit.send(&Event::new(
            &source,
            EventData::ParallelExecutionCompleted {
                step_name: step.name.clone(),
                step_index: at.index.clone(),
                parallel_step_count: children.len(),
                step_results: output.steps.clone(),
            },
        ))
        .await;
        Ran {
            output: Some(output),
            next: (!parts.is_empty()).then(|| parts.join("\n\n")),
            end: End::Done,
        }
    }

    /// Runs `then` when `when` holds, else `otherwise` (which may be empty: the input then
    /// passes on unchanged).
    async fn condition(
        &self,
        at: &At<'_>,
        when: &Expr,
        then: &[StepDef],
        otherwise: &[StepDef],
        emit: Sink<'_>,
    ) -> Ran {
        let step = at.step;
        let id = new_id();
        let holds = match when.eval_bool(&self.step_variables(at.flow)) {
            Ok(holds) => holds,
            Err(e) => {
                let error = format!("`when` failed: {e}");
                return self
                    .composite_failed(at, &id, "Condition", error, emit)
                    .await;
            }
        };
        let source = self.source(Some(&id), at.parent);
        emit.send(&Event::new(
            &source,
            EventData::ConditionExecutionStarted {
                step_name: step.name.clone(),
                step_index: at.index.clone(),
                condition_result: holds,
            },
        ))
        .await;
        let (branch, name) = if holds {
            (then, "if")
        } else {
            (otherwise, "else")
        };
        let mut output = StepOutput {
            step_name: step.name.clone(),
            step_id: id.clone(),
            step_type: "Condition".into(),
            success: true,
            ..StepOutput::default()
        };
        let (next, branch_name) = if branch.is_empty() {
            output.content = Some(Value::String(format!(
                "Condition {} not met - skipped {} steps",
                step.name,
                then.len()
            )));
            (None, None)
        } else {
            let index = &at.index;
            let ran = self
                .run_list(branch, &|k| child_index(index, k), Some(&id), at.flow, emit)
                .await;
            output.content = Some(Value::String(format!(
                "Condition {} completed with {} results ({name} branch)",
                step.name,
                ran.outputs.len()
            )));
            output.success = ran.outputs.iter().all(|o| o.success);
            output.steps = ran.outputs;
            if ran.end != End::Done {
                return interrupted(output, ran.end);
            }
            (ran.next, Some(name.to_string()))
        };
        self.remember(&output);
        emit.send(&Event::new(
            &source,
            EventData::ConditionExecutionCompleted {
                step_name: step.name.clone(),
                step_index: at.index.clone(),
                condition_result: holds,
                executed_steps: output.steps.len(),
                branch: branch_name,
                step_results: output.steps.clone(),
            },
        ))
        .await;
        Ran {
            output: Some(output),
            next,
            end: End::Done,
        }
    }

    /// Runs the steps up to `max` times, each iteration on the previous one's output,
    /// stopping early once `until` holds after an iteration.
    async fn repeat(
        &self,
        at: &At<'_>,
        steps: &[StepDef],
        max: usize,
        until: Option<&Expr>,
        emit: Sink<'_>,
    ) -> Ran {
        let step = at.step;
        let id = new_id();
        let source = self.source(Some(&id), at.parent);
        emit.send(&Event::new(
            &source,
            EventData::LoopExecutionStarted {
                step_name: step.name.clone(),
                step_index: at.index.clone(),
                max_iterations: max,
            },
        ))
        .await;
        let summary = |all: &[Vec<StepOutput>]| {
            let flat: Vec<StepOutput> = all.concat();
            StepOutput {
                content: Some(Value::String(format!(
                    "Loop {} completed {} iterations with {} total steps",
                    step.name,
                    all.len(),
                    flat.len()
                ))),
                step_name: step.name.clone(),
                step_id: id.clone(),
                step_type: "Loop".into(),
                success: flat.iter().all(|o| o.success),
                steps: flat,
                ..StepOutput::default()
            }
        };
        let mut all: Vec<Vec<StepOutput>> = Vec::new();
        let mut next: Option<String> = None;
        for iteration in 1..=max {
            if self.cancel.is_cancelled() {
                return interrupted(summary(&all), End::Cancelled);
            }
            emit.send(&Event::new(
                &source,
                EventData::LoopIterationStarted {
                    step_name: step.name.clone(),
                    step_index: at.index.clone(),
                    iteration,
                    max_iterations: max,
                },
            ))
            .await;
            let index = &at.index;
            let ran = self
                .run_list(
                    steps,
                    &|k| child_index(index, k),
                    Some(&id),
                    next.as_deref().or(at.flow),
                    emit,
                )
                .await;
            if ran.next.is_some() {
                next = ran.next;
            }
            all.push(ran.outputs);
            if ran.end != End::Done {
                return interrupted(summary(&all), ran.end);
            }
            let iteration_results = all.last().cloned().unwrap_or_default();
            let done = match until {
                None => false,
                Some(until) => {
                    let vars = loop_variables(iteration, max, &iteration_results);
                    match until.eval_bool(&vars) {
                        Ok(done) => done,
                        Err(e) => {
                            let error = format!("`until` failed: {e}");
                            let end = self.step_error(at, &id, error, emit).await;
                            return interrupted(summary(&all), end);
                        }
                    }
                }
            };
            let should_continue = !done && iteration < max;
            emit.send(&Event::new(
                &source,
                EventData::LoopIterationCompleted {
                    step_name: step.name.clone(),
                    step_index: at.index.clone(),
                    iteration,
                    max_iterations: max,
                    should_continue,
                    iteration_results,
                },
            ))
            .await;
            if !should_continue {
                break;
            }
        }
        let output = summary(&all);
        self.remember(&output);
        emit.send(&Event::new(
            &source,
            EventData::LoopExecutionCompleted {
                step_name: step.name.clone(),
                step_index: at.index.clone(),
                total_iterations: all.len(),
                max_iterations: max,
                all_results: all,
            },
        ))
        .await;
        Ran {
            output: Some(output),
            next,
            end: End::Done,
        }
    }

    /// Runs the one choice `route` picks.
    async fn router(
        &self,
        at: &At<'_>,
        choices: &[StepDef],
        route: &RouteBy,
        emit: Sink<'_>,
    ) -> Ran {
        let step = at.step;
        let id = new_id();
        let chosen = match self.pick(at.flow, choices, route).await {
            Pick::Chose(k) => k,
            Pick::Failed(error) => {
                return self.composite_failed(at, &id, "Router", error, emit).await;
            }
            Pick::Cancelled => {
                return Ran {
                    output: None,
                    next: None,
                    end: End::Cancelled,
                };
            }
        };
        let choice = &choices[chosen];
        let selected_steps = vec![choice.name.clone()];
        let source = self.source(Some(&id), at.parent);
        emit.send(&Event::new(
            &source,
            EventData::RouterExecutionStarted {
                step_name: step.name.clone(),
                step_index: at.index.clone(),
                selected_steps: selected_steps.clone(),
            },
        ))
        .await;
        let ran = self
            .run_step(
                choice,
                child_index(&at.index, chosen),
                Some(&id),
                at.flow,
                emit,
            )
            .await;
        let steps: Vec<StepOutput> = ran.output.into_iter().collect();
        let output = StepOutput {
            content: Some(Value::String(format!(
                "Router {} completed with {} results",
                step.name,
                steps.len()
            ))),
            step_name: step.name.clone(),
            step_id: id.clone(),
            step_type: "Router".into(),
            success: steps.iter().all(|o| o.success),
            steps,
            ..StepOutput::default()
        };
        if ran.end != End::Done {
            return interrupted(output, ran.end);
        }
        self.remember(&output);
        emit.send(&Event::new(
            &source,
            EventData::RouterExecutionCompleted {
                step_name: step.name.clone(),
                step_index: at.index.clone(),
                selected_steps,
                executed_steps: output.steps.len(),
                step_results: output.steps.clone(),
            },
        ))
        .await;
        Ran {
            output: Some(output),
            next: ran.next,
            end: End::Done,
        }
    }
}

/// Where a step runs: its definition, position, enclosing composite and input.
struct At<'a> {
    step: &'a StepDef,
    index: Value,
    parent: Option<&'a str>,
    /// The content flowing into the step; `None` before any step produced one.
    flow: Option<&'a str>,
}

impl At<'_> {
    /// The step's input: the flowing content, or the workflow input.
    fn input<'r>(&'r self, runner: &'r Runner<'_>) -> &'r str {
        self.flow.unwrap_or(runner.input)
    }
}

/// A composite's output when a child failed or the run was cancelled: what ran so far,
/// unsuccessful, with the reason.
fn interrupted(mut output: StepOutput, end: End) -> Ran {
    output.success = false;
    output.content = None;
    output.error = Some(match &end {
        End::Failed(error) => error.clone(),
        End::Cancelled | End::Done => CANCELLED_ERROR.into(),
    });
    Ran {
        output: Some(output),
        next: None,
        end,
    }
}
