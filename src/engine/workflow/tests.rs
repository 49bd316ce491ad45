//! Workflow runs on the offline `test` model: data flow, events, outputs, failures, cancel.

use crate::kind::Kind;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::config::Config;
use crate::model::{ChunkStream, Model, ModelError, ModelInfo, ModelRequest};
use crate::run::{RunOutput, RunRecord, StepOutput};
use crate::store::Store;
use crate::testing::{Collect, block_on};
use futures_util::future::BoxFuture;

const CONFIG: &str = r#"
[[agents]]
id = "writer"
name = "Writer"
model = "test"
instructions = "You write."

[[agents]]
id = "editor"
name = "Editor"
model = "test"
instructions = "You edit."

[[agents]]
id = "flaky"
name = "Flaky"
model = "test:flaky"

[[teams]]
id = "crew"
name = "Crew"
model = "test"
members = ["writer", "editor"]

[[workflows]]
id = "pipeline"
name = "Pipeline"
steps = [{ name = "outline", agent = "writer" }, { name = "draft", agent = "editor" }]

[[workflows]]
id = "fanout"
steps = [
  { name = "research", type = "parallel", steps = [
    { name = "facts", agent = "writer" },
    { name = "style", agent = "editor" },
  ] },
  { name = "summary", agent = "writer" },
]

[[workflows]]
id = "duo"
steps = [{ name = "both", type = "parallel", steps = [
  { name = "left", agent = "writer" }, { name = "right", agent = "editor" },
] }]

[[workflows]]
id = "nested"
steps = [
  { name = "rounds", type = "loop", max_iterations = 1, steps = [
    { name = "both", type = "parallel", steps = [
      { name = "left", agent = "writer" }, { name = "right", agent = "editor" },
    ] },
  ] },
]

[[workflows]]
id = "gate"
steps = [
  { name = "check", type = "condition", when = 'input.contains("urgent")',
    steps = [{ name = "fast", agent = "writer" }],
    else = [{ name = "careful", agent = "editor" }, { name = "review", agent = "writer" }] },
]

[[workflows]]
id = "maybe"
steps = [
  { name = "first", agent = "writer" },
  { name = "extra", type = "condition", when = 'previous_step_content.contains("never")',
    steps = [{ name = "unused", agent = "editor" }] },
  { name = "last", agent = "editor" },
]

[[workflows]]
id = "refine"
steps = [
  { name = "polish", type = "loop", max_iterations = 5,
    until = 'current_iteration == 2 && all_success && step_outputs["edit"].startsWith("Test model reply")',
    steps = [{ name = "edit", agent = "editor" }] },
]

[[workflows]]
id = "forever"
steps = [
  { name = "polish", type = "loop", max_iterations = 3,
    until = 'last_step_content.size() > 100000',
    steps = [{ name = "edit", agent = "editor" }] },
]

[[workflows]]
id = "pick"
steps = [
  { name = "route", type = "router",
    route = 'input.contains("code") ? "coder" : step_choices[1]',
    steps = [{ name = "coder", agent = "writer" }, { name = "prose", agent = "editor" }] },
]

[[workflows]]
id = "lost"
steps = [
  { name = "route", type = "router", route = '"nowhere"',
    steps = [{ name = "coder", agent = "writer" }, { name = "prose", agent = "editor" }] },
]

[[workflows]]
id = "ask"
steps = [
  { name = "route", type = "router", model = "test",
    steps = [
      { name = "prose", description = "Writes prose", agent = "editor" },
      { name = "coder", description = "Writes code", agent = "writer" },
    ] },
]

[[workflows]]
id = "teamwork"
steps = [{ name = "together", team = "crew" }, { name = "wrap", agent = "writer" }]

[[workflows]]
id = "fragile"
steps = [{ name = "outline", agent = "writer" }, { name = "broken", agent = "flaky" }, { name = "draft", agent = "editor" }]

[[workflows]]
id = "sturdy"
steps = [
  { name = "outline", agent = "writer" },
  { name = "broken", agent = "flaky", skip_on_failure = true },
  { name = "draft", agent = "editor" },
]
"#;

/// A model that always fails, standing in for a provider that is down.
struct Down(ModelInfo);

impl Model for Down {
    fn info(&self) -> &ModelInfo {
        &self.0
    }
    fn stream<'a>(
        &'a self,
        _request: ModelRequest<'a>,
    ) -> BoxFuture<'a, Result<ChunkStream, ModelError>> {
        Box::pin(async {
            Err(ModelError::Http {
                status: 503,
                message: "flaky is down".into(),
            })
        })
    }
}

fn engine() -> Engine {
    let config = Config::from_toml_str(CONFIG, Path::new("agents.toml")).expect("config");
    let engine = Engine::new(Arc::new(config), Store::open_in_memory().expect("store"));
    engine.models.lock().unwrap().insert(
        "test:flaky".into(),
        Arc::new(Down(ModelInfo {
            id: "flaky".into(),
            provider: "Test".into(),
            class_name: "TestModel".into(),
        })),
    );
    engine
}

fn request(workflow: &str, message: &str) -> RunRequest {
    RunRequest {
        agent_id: workflow.into(),
        message: message.into(),
        session_id: Some("s1".into()),
        user_id: Some("u1".into()),
        stream: true,
        ..RunRequest::default()
    }
}

fn run_request(engine: &Engine, req: RunRequest) -> (WorkflowRunOutput, Vec<Event>) {
    let events = Collect::default();
    let run = block_on(async {
        let pending = engine.start_workflow(req).await.expect("start");
        engine
            .execute(pending, &CancelToken::new(), &events)
            .await
            .expect("execute")
    });
    let AnyRun::Workflow(run) = run else {
        panic!("not a workflow run")
    };
    (run, events.events())
}

fn run_wf(engine: &Engine, workflow: &str, message: &str) -> (WorkflowRunOutput, Vec<Event>) {
    run_request(engine, request(workflow, message))
}

/// Event names, content deltas left out.
fn names(events: &[Event]) -> Vec<&str> {
    events
        .iter()
        .filter(|e| e.event != "RunContent")
        .map(|e| e.event)
        .collect()
}

/// The workflow's own events (not its steps' agents' and teams'), as JSON.
fn workflow_events(events: &[Event]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| matches!(*e.source, EventSource::Workflow(_)))
        .map(|e| serde_json::to_value(e).unwrap())
        .collect()
}

fn agent_runs(run: &WorkflowRunOutput) -> Vec<&RunOutput> {
    run.step_executor_runs
        .iter()
        .map(|r| r.as_agent().expect("an agent run"))
        .collect()
}

fn reply(to: &str, instructions: &str) -> String {
    format!(
        "Test model reply to \"{to}\". Instructions: \"{instructions}\". History: 0 earlier messages."
    )
}

fn text(output: &StepOutput) -> String {
    output.content_text()
}

use crate::event::EventSource;

const AGENT_STEP: [&str; 7] = [
    "StepStarted",
    "RunStarted",
    "ModelRequestStarted",
    "ModelRequestCompleted",
    "RunContentCompleted",
    "RunCompleted",
    "StepCompleted",
];

#[test]
fn two_steps_chain_their_content() {
    let engine = engine();
    let (run, events) = run_wf(&engine, "pipeline", "Write about robots");
    assert_eq!(run.status, RunStatus::Completed);

    let mut expected = vec!["WorkflowStarted"];
    expected.extend(AGENT_STEP);
    expected.extend(AGENT_STEP);
    expected.push("WorkflowCompleted");
    assert_eq!(names(&events), expected);

    // The first step gets the input; the second the first one's content.
    let outline = reply("Write about robots", "You write.");
    let draft = reply(&outline, "You edit.");
    let runs = agent_runs(&run);
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].input.input_content, "Write about robots");
    assert_eq!(runs[0].content_text(), outline);
    assert_eq!(runs[1].input.input_content, outline);
    assert_eq!(runs[1].content_text(), draft);
    assert_eq!(run.content, Some(Value::String(draft.clone())));

    // One StepOutput per step, naming its agent and run.
    let steps: Vec<_> = run
        .step_results
        .iter()
        .map(|s| {
            (
                s.step_name.as_str(),
                s.step_type.as_str(),
                s.executor_type.as_deref(),
                s.executor_name.as_deref(),
                s.success,
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("outline", "Step", Some("agent"), Some("Writer"), true),
            ("draft", "Step", Some("agent"), Some("Editor"), true),
        ]
    );
    assert_eq!(text(&run.step_results[0]), outline);
    assert_eq!(text(&run.step_results[1]), draft);
    for (step, agent_run) in run.step_results.iter().zip(&runs) {
        assert_eq!(step.step_run_id.as_deref(), Some(agent_run.run_id.as_str()));
        assert_eq!(step.metrics.as_ref(), Some(&agent_run.metrics));
        assert!(step.steps.is_empty() && step.error.is_none());
        // Executor runs belong to the workflow run and know their step.
        assert_eq!(
            agent_run.parent_run_id.as_deref(),
            Some(run.run_id.as_str())
        );
        assert_eq!(
            agent_run.workflow_step_id.as_deref(),
            Some(step.step_id.as_str())
        );
        assert_eq!(agent_run.session_id, "s1");
        assert_eq!(agent_run.user_id.as_deref(), Some("u1"));
        assert_eq!(agent_run.status, RunStatus::Completed);
    }

    // metrics: each step's run metrics by step name, and the duration; no token totals.
    let keys: Vec<&str> = run.metrics.steps.keys().map(String::as_str).collect();
    assert_eq!(keys, ["outline", "draft"]);
    assert_eq!(
        run.metrics.steps["outline"],
        json!({"step_name": "outline", "executor_type": "agent", "executor_name": "Writer",
               "metrics": runs[0].metrics})
    );
    assert!(run.metrics.duration.unwrap() > 0.0);
    let metrics = serde_json::to_value(&run.metrics).unwrap();
    assert!(metrics.get("input_tokens").is_none());
    assert_eq!(
        run.metrics.tokens().0,
        runs[0].metrics.input_tokens.unwrap() + runs[1].metrics.input_tokens.unwrap()
    );

    // Step events carry the step id; the agent's events the step's fields.
    let own = workflow_events(&events);
    assert_eq!(own[1]["event"], "StepStarted");
    assert_eq!(own[1]["step_id"], run.step_results[0].step_id.as_str());
    assert_eq!(own[1]["step_index"], 0);
    assert_eq!(own[3]["step_index"], 1);
    assert!(own[0].get("step_id").is_none());
    let started = events.iter().find(|e| e.event == "RunStarted").unwrap();
    let started = serde_json::to_value(started).unwrap();
    assert_eq!(started["workflow_id"], "pipeline");
    assert_eq!(started["workflow_run_id"], run.run_id.as_str());
    assert_eq!(started["step_name"], "outline");
    assert_eq!(started["step_id"], run.step_results[0].step_id.as_str());
    assert!(started.get("parent_run_id").is_none());

    // StepCompleted and WorkflowCompleted in AgentOS's key order.
    let step_completed = &own[2];
    assert_eq!(step_completed["content"], outline.as_str());
    assert_eq!(step_completed["content_type"], "str");
    assert_eq!(
        step_completed["step_response"],
        serde_json::to_value(&run.step_results[0]).unwrap()
    );
    let completed = own.last().unwrap();
    let keys: Vec<&str> = completed
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "created_at",
            "event",
            "workflow_id",
            "workflow_name",
            "session_id",
            "run_id",
            "nested_depth",
            "content",
            "content_type",
            "metadata",
            "metrics",
            "step_results",
            "step_executor_runs"
        ]
    );
    assert_eq!(completed["workflow_name"], "Pipeline");
    assert_eq!(completed["content"], draft.as_str());
    assert_eq!(completed["step_executor_runs"].as_array().unwrap().len(), 2);

    // Stored as one run with every event, content deltas included.
    let stored = block_on(engine.store().list_runs("s1")).unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].session_type, Kind::Workflow);
    assert_eq!(stored[0].run, AnyRun::Workflow(run.clone()));
    assert_eq!(stored[0].events.len(), events.len());
    assert!(stored[0].events.iter().any(|e| e["event"] == "RunContent"));
}

#[test]
fn a_run_that_is_not_streamed_stores_no_events() {
    let engine = engine();
    let req = RunRequest {
        stream: false,
        ..request("pipeline", "Quietly")
    };
    let (run, events) = run_request(&engine, req);
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(names(&events).last(), Some(&"WorkflowCompleted"));
    let stored = block_on(engine.store().get_run(&run.run_id))
        .unwrap()
        .unwrap();
    assert!(stored.events.is_empty());
    assert_eq!(stored.run.status(), RunStatus::Completed);
}

#[test]
fn parallel_children_share_the_input_and_join_their_content() {
    let engine = engine();
    let (run, events) = run_wf(&engine, "fanout", "Robots");
    assert_eq!(run.status, RunStatus::Completed);
    let own = workflow_events(&events);
    let own_names: Vec<&str> = own.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        own_names[..2],
        ["WorkflowStarted", "ParallelExecutionStarted"]
    );
    assert_eq!(
        own_names[6..],
        [
            "ParallelExecutionCompleted",
            "StepStarted",
            "StepCompleted",
            "WorkflowCompleted"
        ]
    );
    let mut children: Vec<&str> = own_names[2..6].to_vec();
    children.sort_unstable();
    assert_eq!(
        children,
        [
            "StepCompleted",
            "StepCompleted",
            "StepStarted",
            "StepStarted"
        ]
    );

    let parallel = &run.step_results[0];
    assert_eq!(parallel.step_type, "Parallel");
    assert_eq!(parallel.executor_type.as_deref(), Some("parallel"));
    assert_eq!(parallel.executor_name.as_deref(), Some("research"));
    assert!(parallel.success);
    let facts = reply("Robots", "You write.");
    let style = reply("Robots", "You edit.");
    let child_names: Vec<&str> = parallel
        .steps
        .iter()
        .map(|s| s.step_name.as_str())
        .collect();
    assert_eq!(child_names, ["facts", "style"]);
    assert_eq!(text(&parallel.steps[0]), facts);
    assert_eq!(text(&parallel.steps[1]), style);
    assert_eq!(
        text(parallel),
        format!(
            "## Parallel Execution Results\n\n### ✅ SUCCESS: facts\n{facts}\n\n### ✅ SUCCESS: \
             style\n{style}"
        )
    );
    let tokens = |s: &StepOutput| s.metrics.as_ref().unwrap().input_tokens.unwrap();
    assert_eq!(
        tokens(parallel),
        tokens(&parallel.steps[0]) + tokens(&parallel.steps[1])
    );

    // The children's events name the parallel step and their position in it.
    let parallel_id = own[1]["step_id"].as_str().unwrap();
    for event in &own[2..6] {
        assert_eq!(event["parent_step_id"], parallel_id);
        let index = event["step_index"].clone();
        let expected = if event["step_name"] == "facts" {
            json!([0, 0])
        } else {
            json!([0, 1])
        };
        assert_eq!(index, expected, "{event}");
    }
    assert_eq!(own[1]["parallel_step_count"], 2);
    assert_eq!(own[6]["step_results"].as_array().unwrap().len(), 2);

    // The next step gets both contents under headings.
    let runs = agent_runs(&run);
    assert_eq!(runs.len(), 3);
    let joined = format!("=== facts ===\n{facts}\n\n=== style ===\n{style}");
    assert_eq!(runs[2].input.input_content, joined);
    assert_eq!(run.step_results[1].step_name, "summary");
    assert_eq!(run.content, Some(Value::String(runs[2].content_text())));
    let keys: Vec<&str> = run.metrics.steps.keys().map(String::as_str).collect();
    assert_eq!(keys, ["facts", "style", "summary"]);
}

#[test]
fn parallel_children_run_at_the_same_time() {
    let engine = engine();
    let started = std::time::Instant::now();
    let (run, events) = run_wf(&engine, "duo", "[test:slow] go");
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(run.status, RunStatus::Completed);
    let order: Vec<&str> = names(&events)
        .into_iter()
        .filter(|n| *n == "RunStarted" || *n == "RunCompleted")
        .collect();
    assert_eq!(
        order,
        ["RunStarted", "RunStarted", "RunCompleted", "RunCompleted"]
    );
    let durations: f64 = agent_runs(&run)
        .iter()
        .map(|r| r.metrics.duration.unwrap())
        .sum();
    assert!(elapsed < durations, "{elapsed} >= {durations}");
    // The workflow ends with the last child's content, not the joined text.
    let right = &run.step_results[0].steps[1];
    assert_eq!(right.step_name, "right");
    assert_eq!(run.content, right.content);
}

#[test]
fn nested_composites_extend_the_step_index() {
    let engine = engine();
    let (run, events) = run_wf(&engine, "nested", "Robots");
    assert_eq!(run.status, RunStatus::Completed);
    let own = workflow_events(&events);
    let find = |event: &str| {
        own.iter()
            .find(|e| e["event"] == event)
            .unwrap_or_else(|| panic!("no {event}"))
    };
    let loop_id = find("LoopExecutionStarted")["step_id"].clone();
    let parallel = find("ParallelExecutionStarted");
    assert_eq!(parallel["parent_step_id"], loop_id);
    assert_eq!(parallel["step_index"], json!([0, 0]));
    let mut leaves: Vec<(String, Value)> = own
        .iter()
        .filter(|e| e["event"] == "StepStarted")
        .map(|e| {
            assert_eq!(e["parent_step_id"], parallel["step_id"]);
            (
                e["step_name"].as_str().unwrap().to_string(),
                e["step_index"].clone(),
            )
        })
        .collect();
    leaves.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        leaves,
        [
            ("left".to_string(), json!([0, 0, 0])),
            ("right".to_string(), json!([0, 0, 1]))
        ]
    );
    let rounds = &run.step_results[0];
    assert_eq!(rounds.steps[0].step_type, "Parallel");
    assert_eq!(rounds.steps[0].steps.len(), 2);
    assert_eq!(
        run.content,
        Some(Value::String(reply("Robots", "You edit.")))
    );
    let keys: Vec<&str> = run.metrics.steps.keys().map(String::as_str).collect();
    assert_eq!(keys, ["left", "right"]);
}

#[test]
fn a_condition_runs_its_steps_or_its_else_steps() {
    let engine = engine();
    let (run, events) = run_wf(&engine, "gate", "urgent: fix it");
    assert_eq!(run.status, RunStatus::Completed);
    let condition = &run.step_results[0];
    assert_eq!(condition.step_type, "Condition");
    assert_eq!(condition.executor_type, None);
    assert_eq!(
        text(condition),
        "Condition check completed with 1 results (if branch)"
    );
    assert_eq!(condition.steps.len(), 1);
    assert_eq!(condition.steps[0].step_name, "fast");
    let fast = reply("urgent: fix it", "You write.");
    assert_eq!(run.content, Some(Value::String(fast)));
    let own = workflow_events(&events);
    assert_eq!(own[1]["event"], "ConditionExecutionStarted");
    assert_eq!(own[1]["condition_result"], true);
    assert_eq!(own[2]["step_index"], json!([0, 0]));
    assert_eq!(own[2]["parent_step_id"], own[1]["step_id"]);
    let done = &own[own.len() - 2];
    assert_eq!(done["event"], "ConditionExecutionCompleted");
    assert_eq!(done["branch"], "if");
    assert_eq!(done["executed_steps"], 1);

    let (run, events) = run_wf(&engine, "gate", "take your time");
    assert_eq!(run.status, RunStatus::Completed);
    let condition = &run.step_results[0];
    assert_eq!(
        text(condition),
        "Condition check completed with 2 results (else branch)"
    );
    let inner: Vec<&str> = condition
        .steps
        .iter()
        .map(|s| s.step_name.as_str())
        .collect();
    assert_eq!(inner, ["careful", "review"]);
    // The else steps chain like top-level ones; the workflow ends with the last of them.
    let careful = reply("take your time", "You edit.");
    let review = reply(&careful, "You write.");
    assert_eq!(text(&condition.steps[1]), review);
    assert_eq!(run.content, Some(Value::String(review)));
    let own = workflow_events(&events);
    assert_eq!(own[1]["condition_result"], false);
    let done = &own[own.len() - 2];
    assert_eq!(done["branch"], "else");
    assert_eq!(done["executed_steps"], 2);
    let indexes: Vec<&Value> = own
        .iter()
        .filter(|e| e["event"] == "StepStarted")
        .map(|e| &e["step_index"])
        .collect();
    assert_eq!(indexes, [&json!([0, 0]), &json!([0, 1])]);
}

#[test]
fn a_condition_without_else_passes_its_input_on() {
    let engine = engine();
    let (run, events) = run_wf(&engine, "maybe", "Hello");
    assert_eq!(run.status, RunStatus::Completed);
    let first = reply("Hello", "You write.");
    let condition = &run.step_results[1];
    assert_eq!(text(condition), "Condition extra not met - skipped 1 steps");
    assert!(condition.steps.is_empty() && condition.success);
    let runs = agent_runs(&run);
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[1].agent_id, "editor");
    assert_eq!(runs[1].input.input_content, first);
    let done = workflow_events(&events)
        .into_iter()
        .find(|e| e["event"] == "ConditionExecutionCompleted")
        .unwrap();
    assert_eq!(done["executed_steps"], 0);
    assert!(done.get("branch").is_none());
}

#[test]
fn a_loop_stops_when_until_holds() {
    let engine = engine();
    let (run, events) = run_wf(&engine, "refine", "Draft");
    assert_eq!(run.status, RunStatus::Completed);
    let polish = &run.step_results[0];
    assert_eq!(polish.step_type, "Loop");
    assert_eq!(
        text(polish),
        "Loop polish completed 2 iterations with 2 total steps"
    );
    // Each iteration works on the previous one's output.
    let first = reply("Draft", "You edit.");
    let second = reply(&first, "You edit.");
    assert_eq!(text(&polish.steps[0]), first);
    assert_eq!(text(&polish.steps[1]), second);
    assert_eq!(run.content, Some(Value::String(second)));

    let own = workflow_events(&events);
    let loop_events: Vec<(&str, Value)> = own
        .iter()
        .filter(|e| e["event"].as_str().unwrap().starts_with("Loop"))
        .map(|e| {
            let name = e["event"].as_str().unwrap();
            let detail = match name {
                "LoopIterationStarted" => e["iteration"].clone(),
                "LoopIterationCompleted" => json!([e["iteration"], e["should_continue"]]),
                "LoopExecutionCompleted" => json!([e["total_iterations"], e["max_iterations"]]),
                _ => e["max_iterations"].clone(),
            };
            (name, detail)
        })
        .collect();
    assert_eq!(
        loop_events,
        [
            ("LoopExecutionStarted", json!(5)),
            ("LoopIterationStarted", json!(1)),
            ("LoopIterationCompleted", json!([1, true])),
            ("LoopIterationStarted", json!(2)),
            ("LoopIterationCompleted", json!([2, false])),
            ("LoopExecutionCompleted", json!([2, 5])),
        ]
    );
    let completed = own
        .iter()
        .find(|e| e["event"] == "LoopExecutionCompleted")
        .unwrap();
    assert_eq!(completed["all_results"].as_array().unwrap().len(), 2);
    // The loop's children are `[loop, position]` every iteration.
    let indexes: Vec<&Value> = own
        .iter()
        .filter(|e| e["event"] == "StepStarted")
        .map(|e| &e["step_index"])
        .collect();
    assert_eq!(indexes, [&json!([0, 0]), &json!([0, 0])]);
}

#[test]
fn a_loop_stops_at_max_iterations() {
    let engine = engine();
    let (run, events) = run_wf(&engine, "forever", "Draft");
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(
        text(&run.step_results[0]),
        "Loop polish completed 3 iterations with 3 total steps"
    );
    assert_eq!(run.step_executor_runs.len(), 3);
    let iterations = names(&events)
        .into_iter()
        .filter(|n| *n == "LoopIterationStarted")
        .count();
    assert_eq!(iterations, 3);
    // A step that ran several times counts once, with its last run's metrics.
    assert_eq!(
        run.metrics.steps["edit"]["metrics"],
        serde_json::to_value(&agent_runs(&run)[2].metrics).unwrap()
    );
}

#[test]
fn a_router_runs_the_choice_its_expression_names() {
    let engine = engine();
    let (run, events) = run_wf(&engine, "pick", "write code");
    assert_eq!(run.status, RunStatus::Completed);
    let router = &run.step_results[0];
    assert_eq!(router.step_type, "Router");
    assert_eq!(text(router), "Router route completed with 1 results");
    assert_eq!(router.steps.len(), 1);
    assert_eq!(router.steps[0].step_name, "coder");
    assert_eq!(agent_runs(&run)[0].agent_id, "writer");
    let own = workflow_events(&events);
    assert_eq!(own[1]["event"], "RouterExecutionStarted");
    assert_eq!(own[1]["selected_steps"], json!(["coder"]));
    assert_eq!(own[2]["step_index"], json!([0, 0]));
    let done = &own[own.len() - 2];
    assert_eq!(done["event"], "RouterExecutionCompleted");
    assert_eq!(done["executed_steps"], 1);

    let (run, _) = run_wf(&engine, "pick", "write a poem");
    assert_eq!(run.step_results[0].steps[0].step_name, "prose");
    assert_eq!(agent_runs(&run)[0].agent_id, "editor");
    assert_eq!(
        run.content,
        Some(Value::String(reply("write a poem", "You edit.")))
    );
}

#[test]
fn a_router_that_names_no_choice_fails_the_workflow() {
    let engine = engine();
    let (run, events) = run_wf(&engine, "lost", "anything");
    assert_eq!(run.status, RunStatus::Error);
    let error = "`route` gave \"nowhere\", which is not one of its choices: \"coder\", \"prose\"";
    assert_eq!(
        run.content,
        Some(Value::String(format!("Step 'route' failed: {error}")))
    );
    assert_eq!(
        names(&events),
        ["WorkflowStarted", "StepError", "WorkflowError"]
    );
    let own = workflow_events(&events);
    assert_eq!(own[1]["error"], error);
    assert_eq!(own[1]["step_name"], "route");
    assert_eq!(own[2]["error"], run.content.clone().unwrap());
    assert!(run.step_executor_runs.is_empty());
    assert!(!run.step_results[0].success);
}

#[test]
fn a_router_can_ask_a_model() {
    let engine = engine();
    // The test model answers a schema with the first value of an enum.
    let (run, events) = run_wf(&engine, "ask", "Write code for me");
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.step_results[0].steps[0].step_name, "prose");
    assert_eq!(agent_runs(&run)[0].agent_id, "editor");
    let own = workflow_events(&events);
    assert_eq!(own[1]["selected_steps"], json!(["prose"]));
    // The model's choice is not a step run of its own.
    assert_eq!(run.step_executor_runs.len(), 1);
}

#[test]
fn a_team_step_runs_the_team() {
    let engine = engine();
    let (run, events) = run_wf(&engine, "teamwork", "editor: tidy this");
    assert_eq!(run.status, RunStatus::Completed);
    let step = &run.step_results[0];
    assert_eq!(step.executor_type.as_deref(), Some("team"));
    assert_eq!(step.executor_name.as_deref(), Some("Crew"));
    assert!(step.success);
    let AnyRun::Team(team) = &run.step_executor_runs[0] else {
        panic!("a team run")
    };
    assert_eq!(team.team_id, "crew");
    assert_eq!(team.input.input_content, "editor: tidy this");
    assert_eq!(team.parent_run_id.as_deref(), Some(run.run_id.as_str()));
    assert_eq!(
        team.workflow_step_id.as_deref(),
        Some(step.step_id.as_str())
    );
    assert_eq!(step.step_run_id.as_deref(), Some(team.run_id.as_str()));
    assert_eq!(text(step), run.step_executor_runs[0].content_text());
    // The member ran for the team, inside the step.
    assert_eq!(team.member_responses.len(), 1);
    let member = team.member_responses[0].as_agent().unwrap();
    assert_eq!(member.agent_id, "editor");
    assert_eq!(member.parent_run_id.as_deref(), Some(team.run_id.as_str()));
    let member_started = events
        .iter()
        .find(|e| e.event == "RunStarted")
        .map(|e| serde_json::to_value(e).unwrap())
        .unwrap();
    assert_eq!(member_started["step_name"], "together");
    assert_eq!(member_started["parent_run_id"], team.run_id.as_str());
    assert!(names(&events).contains(&"TeamRunCompleted"));
    // The next step gets the team's answer.
    let wrap = run.step_executor_runs[1].as_agent().unwrap();
    assert_eq!(
        wrap.input.input_content,
        run.step_executor_runs[0].content_text()
    );
    assert_eq!(run.metrics.steps["together"]["executor_type"], "team");
    // Nothing but the workflow run is stored.
    assert_eq!(block_on(engine.store().list_runs("s1")).unwrap().len(), 1);
}

#[test]
fn a_failing_step_fails_the_workflow() {
    let engine = engine();
    let (run, events) = run_wf(&engine, "fragile", "Robots");
    assert_eq!(run.status, RunStatus::Error);
    assert_eq!(
        run.content,
        Some(Value::String("Step 'broken' failed: flaky is down".into()))
    );
    let tail: Vec<&str> = names(&events).into_iter().rev().take(4).collect();
    assert_eq!(
        tail,
        [
            "WorkflowError",
            "StepError",
            "RunError",
            "ModelRequestStarted"
        ]
    );
    assert!(!names(&events).contains(&"WorkflowCompleted"));
    let own = workflow_events(&events);
    let step_error = &own[own.len() - 2];
    assert_eq!(step_error["step_name"], "broken");
    assert_eq!(step_error["step_index"], 1);
    assert_eq!(step_error["error"], "flaky is down");
    assert_eq!(
        own.last().unwrap()["error"],
        "Step 'broken' failed: flaky is down"
    );
    // The draft step never ran; the failed one is reported.
    let steps: Vec<(&str, bool)> = run
        .step_results
        .iter()
        .map(|s| (s.step_name.as_str(), s.success))
        .collect();
    assert_eq!(steps, [("outline", true), ("broken", false)]);
    assert_eq!(run.step_results[1].error.as_deref(), Some("flaky is down"));
    assert_eq!(run.step_executor_runs.len(), 2);
    assert_eq!(run.step_executor_runs[1].status(), RunStatus::Error);
    let stored = block_on(engine.store().get_run(&run.run_id))
        .unwrap()
        .unwrap();
    assert_eq!(stored.run.status(), RunStatus::Error);
    assert_eq!(stored.run.content(), run.content.as_ref());

    // The test model's error marker fails the first step.
    let (run, _) = run_wf(&engine, "pipeline", "please [test:error]");
    assert_eq!(run.status, RunStatus::Error);
    assert_eq!(
        run.content,
        Some(Value::String(
            "Step 'outline' failed: test model error (HTTP 500)".into()
        ))
    );
    assert_eq!(run.step_results.len(), 1);
}

#[test]
fn a_step_that_may_fail_is_skipped() {
    let engine = engine();
    let (run, events) = run_wf(&engine, "sturdy", "Robots");
    assert_eq!(run.status, RunStatus::Completed);
    let broken = &run.step_results[1];
    assert!(!broken.success);
    assert_eq!(broken.error.as_deref(), Some("flaky is down"));
    assert_eq!(text(broken), "flaky is down");
    assert!(broken.step_run_id.is_some());
    // The step after it gets the input the skipped step had.
    let runs = agent_runs(&run);
    let outline = reply("Robots", "You write.");
    assert_eq!(runs[1].input.input_content, outline);
    assert_eq!(runs[2].input.input_content, outline);
    assert_eq!(
        run.content,
        Some(Value::String(reply(&outline, "You edit.")))
    );
    assert!(!names(&events).contains(&"StepError"));
    let completed: Vec<Value> = workflow_events(&events)
        .into_iter()
        .filter(|e| e["event"] == "StepCompleted")
        .collect();
    assert_eq!(completed.len(), 3);
    assert_eq!(completed[1]["step_response"]["success"], false);
    assert_eq!(completed[1]["step_response"]["error"], "flaky is down");
}

#[test]
fn cancelling_the_workflow_cancels_the_running_step() {
    let engine = engine();
    let cancel = CancelToken::new();
    let collected = Collect::default();
    let c = cancel.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        c.cancel();
    });
    let (run_id, run) = block_on(async {
        let pending = engine
            .start_workflow(request("pipeline", "[test:slow] a long story"))
            .await
            .expect("start");
        let run_id = pending.run_id().to_string();
        let run = engine
            .execute(pending, &cancel, &collected)
            .await
            .expect("execute");
        (run_id, run)
    });
    let events = collected.events();
    let AnyRun::Workflow(run) = run else {
        panic!("a workflow run")
    };
    let reason = format!("Run {run_id} was cancelled");
    assert_eq!(run.status, RunStatus::Cancelled);
    assert_eq!(run.cancellation_stage.as_deref(), Some("EXECUTING"));
    assert_eq!(run.content, Some(Value::String(reason.clone())));
    let tail: Vec<&str> = names(&events).into_iter().rev().take(4).collect();
    assert_eq!(
        tail,
        [
            "WorkflowCompleted",
            "WorkflowCancelled",
            "RunCompleted",
            "RunCancelled"
        ]
    );
    assert!(!names(&events).contains(&"StepCompleted"));
    // The second step never started.
    assert_eq!(
        names(&events)
            .iter()
            .filter(|n| **n == "StepStarted")
            .count(),
        1
    );
    let step = &run.step_results[0];
    assert_eq!(step.step_name, "outline");
    assert!(!step.success);
    assert_eq!(step.error.as_deref(), Some("Cancelled during execution"));
    assert_eq!(run.step_executor_runs[0].status(), RunStatus::Cancelled);

    let own = workflow_events(&events);
    let cancelled = &own[own.len() - 2];
    let keys: Vec<&str> = cancelled
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys[keys.len() - 2..], ["reason", "content"]);
    assert_eq!(cancelled["reason"], reason.as_str());
    assert_eq!(cancelled["content"], reason.as_str());
    let completed = own.last().unwrap();
    assert_eq!(completed["content"], reason.as_str());
    assert!(completed.get("step_executor_runs").is_none());
    assert_eq!(completed["step_results"][0]["success"], false);

    let stored = block_on(engine.store().get_run(&run_id)).unwrap().unwrap();
    assert_eq!(stored.run.status(), RunStatus::Cancelled);
    assert_eq!(stored.events.len(), events.len());
}
