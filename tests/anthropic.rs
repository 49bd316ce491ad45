//! Anthropic's Messages API, reasoning and fallback models, through the real binary
//! against the fake server (`fake_anthropic.rs`): `agentos run`, `serve` streaming and
//! not, a tool loop with extended thinking, signed and redacted thinking replayed in the
//! loop and from history, several tool results of one turn (errors and tools without
//! arguments), `anthropic-beta` headers, the built-in provider, an output schema (its
//! reasoning streamed), prompt caching, retries of an overloaded API, and fallbacks: of
//! agents and team leaders, from a missing key, never after content reached the client
//! nor after a cancel.
//!
//! See: issue 11 ("Anthropic as a native provider, reasoning content, and fallback models").

use serde_json::{Value, json};

use crate::fake_anthropic::{API_KEY, blocks, system, turns};
use crate::fake_model::FakeModel;
use crate::serve::{Server, get, parse_sse, post_form, stream_until};
use crate::util::TestEnv;

/// Agents on the fake Anthropic API (`claude`), plus the OpenAI fake (`fake`) for
/// fallbacks. `{FAKE}` is the fake's `/v1` base URL.
const CONFIG: &str = r#"
[providers.claude]
kind = "anthropic"
base_url = "{FAKE}"

[providers.fake]
kind = "openai"
base_url = "{FAKE}"

[providers.claude-beta]
kind = "anthropic"
base_url = "{FAKE}"
headers = { "anthropic-beta" = "interleaved-thinking-2025-05-14" }

[tools.get_weather]
description = "Get the current weather for a city."
command = ["sh", "-c", "printf 'The weather in %s is sunny.' \"$AGENTOS_ARG_CITY\""]
[tools.get_weather.parameters]
type = "object"
required = ["city"]
[tools.get_weather.parameters.properties.city]
type = "string"

[tools.clock]
description = "The time now."
command = ["sh", "-c", "printf '12:00, asked with '; cat"]
[tools.clock.parameters]
type = "object"

[tools.broken]
description = "Read the broken gauge."
command = ["sh", "-c", "echo 'gauge on fire' >&2; exit 3"]

[[agents]]
id = "writer"
name = "Writer"
model = "claude:claude-sonnet-4-5"
instructions = "You write very short stories. The robot's name is Anna."

[[agents]]
id = "thinker"
model = "claude:claude-sonnet-4-5"
instructions = "Think, then answer weather questions with get_weather."
tools = ["get_weather"]
thinking = { budget_tokens = 2048 }

[[agents]]
id = "reporter"
model = "claude:claude-haiku-4-5"
max_tokens = 500
[agents.output_schema]
title = "Report"
type = "object"
required = ["headline", "score"]
[agents.output_schema.properties.headline]
type = "string"
[agents.output_schema.properties.score]
type = "integer"

[[agents]]
id = "cached"
model = "claude:claude-sonnet-4-5"
instructions = "You remember the conversation."
add_history_to_context = true
cache_prompt = true

[[agents]]
id = "resilient"
model = "claude:claude-sonnet-4-5"
fallback_models = ["fake:gpt-4o-mini"]

[[agents]]
id = "openai-first"
model = "fake:gpt-4o-mini"
fallback_models = ["claude:claude-haiku-4-5"]

[[agents]]
id = "deep-thinker"
model = "claude:claude-sonnet-4-5"
instructions = "Think, then answer weather questions with get_weather."
tools = ["get_weather"]
thinking = { budget_tokens = 2048 }
add_history_to_context = true

[[agents]]
id = "handy"
model = "claude:claude-sonnet-4-5"
instructions = "Use your tools."
tools = ["get_weather", "clock", "broken"]

[[agents]]
id = "beta"
model = "claude-beta:claude-sonnet-4-5"

[[agents]]
id = "native"
model = "anthropic:claude-sonnet-4-5"

[[teams]]
id = "fallback-team"
model = "claude:claude-sonnet-4-5"
fallback_models = ["fake:gpt-4o-mini"]
instructions = "Delegate to the right member."
members = ["openai-first"]

[[agents]]
id = "narrator"
model = "fake:gpt-4o-mini"
fallback_models = ["fake:gpt-4o"]
instructions = "Answer weather questions with get_weather."
tools = ["get_weather"]

[[agents]]
id = "resilient-reporter"
model = "claude:claude-haiku-4-5"
fallback_models = ["fake:gpt-4o-mini"]
[agents.output_schema]
title = "Report"
type = "object"
required = ["headline", "score"]
[agents.output_schema.properties.headline]
type = "string"
[agents.output_schema.properties.score]
type = "integer"
"#;

fn env(fake: &FakeModel) -> TestEnv {
    let mut env = TestEnv::new();
    env.write_config(&CONFIG.replace("{FAKE}", &fake.base_url()));
    env.set_env("ANTHROPIC_API_KEY", API_KEY);
    env.set_env("OPENAI_API_KEY", "sk-test");
    env
}

fn server() -> Server {
    Server::start_full(
        Some(CONFIG),
        &[],
        &[
            ("ANTHROPIC_API_KEY", API_KEY),
            ("OPENAI_API_KEY", "sk-test"),
        ],
    )
}

#[test]
fn run_streams_an_answer_and_stores_anthropic_usage() {
    let fake = FakeModel::start();
    let env = env(&fake);
    let out = env.run(["run", "writer", "-m", "Tell me a story"]);
    out.assert_success();
    assert_eq!(
        out.stdout().trim(),
        "Claude Story for 'Tell me a story'. Starring Anna. The end."
    );

    let body = fake.single_request();
    assert_eq!(body["model"], "claude-sonnet-4-5");
    assert_eq!(body["max_tokens"], 8192, "the per-model default");
    assert_eq!(body["stream"], true);
    assert_eq!(
        system(&body),
        "You write very short stories. The robot's name is Anna."
    );
    assert_eq!(
        turns(&body),
        [json!({"role": "user", "content": [{"type": "text", "text": "Tell me a story"}]})]
    );
    assert_eq!(fake.header(0, "x-api-key").as_deref(), Some(API_KEY));
    assert_eq!(
        fake.header(0, "anthropic-version").as_deref(),
        Some("2023-06-01")
    );
    assert_eq!(fake.header(0, "authorization"), None);

    let out = env.run(["run", "writer", "-m", "Tell me a story", "--json"]);
    out.assert_success();
    let run = out.json();
    assert_eq!(run["status"], "COMPLETED");
    assert_eq!(run["model"], "claude-sonnet-4-5");
    assert_eq!(run["model_provider"], "claude");
    assert_eq!(run["model_provider_data"]["id"], "msg_fake_1");
    let metrics = &run["metrics"];
    assert_eq!(metrics["input_tokens"], 20);
    assert_eq!(metrics["output_tokens"], 3);
    assert_eq!(metrics["total_tokens"], 23);
}

#[test]
fn serve_streams_thinking_and_replays_it_through_a_tool_loop() {
    let s = server();
    let a = post_form(
        &s.url("/agents/thinker/runs"),
        &[
            ("message", "What is the weather in Oslo?"),
            ("stream", "true"),
        ],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let events = parse_sse(&a.body);
    let reasoning: String = events
        .iter()
        .filter(|(name, _)| name == "RunContent")
        .filter_map(|(_, e)| e["reasoning_content"].as_str())
        .collect();
    assert_eq!(
        reasoning,
        "Thinking about 'What is the weather in Oslo?'.Thinking about ''."
    );
    let (_, completed) = events
        .iter()
        .find(|(name, _)| name == "RunCompleted")
        .expect("RunCompleted");
    assert_eq!(
        completed["content"],
        "Tool result received: The weather in Oslo is sunny."
    );
    assert_eq!(completed["reasoning_content"], reasoning.as_str());
    assert!(events.iter().any(|(name, _)| name == "ToolCallCompleted"));

    // The second call sent the thinking block back, signed, before the tool_use, and the
    // result in the next user turn.
    let second = &s.fake.requests()[1];
    assert_eq!(
        second["thinking"],
        json!({"type": "enabled", "budget_tokens": 2048})
    );
    assert_eq!(second["max_tokens"], 2048 + 8192);
    let turns = turns(second);
    assert_eq!(turns.len(), 3, "{turns:?}");
    let assistant = blocks(&turns[1]);
    assert_eq!(
        assistant[0],
        json!({"type": "thinking", "thinking": "Thinking about 'What is the weather in Oslo?'.",
               "signature": "sig-46"})
    );
    assert_eq!(assistant[1]["type"], "tool_use");
    assert_eq!(assistant[1]["input"], json!({"city": "Oslo"}));
    let results = blocks(&turns[2]);
    assert_eq!(
        results,
        [
            json!({"type": "tool_result", "tool_use_id": assistant[1]["id"],
                "content": "The weather in Oslo is sunny.", "is_error": false})
        ]
    );

    // The stored run keeps the reasoning and the signed block.
    let run_id = completed["run_id"].as_str().unwrap();
    let session_id = completed["session_id"].as_str().unwrap();
    let stored = get(&s.url(&format!("/sessions/{session_id}/runs/{run_id}")));
    assert_eq!(stored.status, 200, "{}", stored.body);
    let stored = stored.json();
    assert_eq!(stored["reasoning_content"], reasoning.as_str());
    let messages = stored["messages"].as_array().unwrap();
    let with_blocks = messages
        .iter()
        .find(|m| m.get("reasoning_blocks").is_some())
        .expect("an assistant message with its thinking block");
    assert_eq!(with_blocks["reasoning_blocks"][0]["signature"], "sig-46");

    // Not streaming: the run object carries the reasoning too.
    let a = post_form(
        &s.url("/agents/thinker/runs"),
        &[("message", "Tell me a joke"), ("stream", "false")],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let run = a.json();
    assert_eq!(run["status"], "COMPLETED");
    assert_eq!(run["reasoning_content"], "Thinking about 'Tell me a joke'.");
    assert_eq!(
        run["content"],
        "Claude Story for 'Tell me a joke'. The end."
    );
}

#[test]
fn output_schema_history_caching_and_agent_info() {
    let s = server();
    let a = post_form(
        &s.url("/agents/reporter/runs"),
        &[("message", "Report on robots"), ("stream", "false")],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let run = a.json();
    assert_eq!(run["content_type"], "Report");
    assert!(run["content"]["headline"].is_string(), "{run}");
    assert!(run["content"]["score"].is_i64(), "{run}");
    let body = s.fake.single_request();
    assert_eq!(body["max_tokens"], 500);
    assert_eq!(
        body["output_config"]["format"]["type"], "json_schema",
        "{body}"
    );
    assert_eq!(
        body["output_config"]["format"]["schema"]["required"],
        json!(["headline", "score"])
    );

    // Prompt caching: the system prompt and the last history turn are marked.
    let first = post_form(
        &s.url("/agents/cached/runs"),
        &[
            ("message", "My name is Ada"),
            ("stream", "false"),
            ("session_id", "s1"),
        ],
    );
    assert_eq!(first.status, 200, "{}", first.body);
    let second = post_form(
        &s.url("/agents/cached/runs"),
        &[
            ("message", "What is my name?"),
            ("stream", "false"),
            ("session_id", "s1"),
        ],
    );
    assert_eq!(second.status, 200, "{}", second.body);
    let body = s.fake.requests().last().cloned().unwrap();
    assert_eq!(
        body["system"],
        json!([{"type": "text", "text": "You remember the conversation.",
                "cache_control": {"type": "ephemeral"}}])
    );
    let turns = turns(&body);
    assert_eq!(turns.len(), 3);
    assert_eq!(
        blocks(&turns[1])[0]["cache_control"],
        json!({"type": "ephemeral"})
    );
    assert!(blocks(&turns[2])[0].get("cache_control").is_none());
    let metrics = &second.json()["metrics"];
    assert_eq!(
        metrics["input_tokens"], 20,
        "uncached input only: {metrics}"
    );
    assert_eq!(metrics["cache_read_tokens"], 50);
    assert_eq!(metrics["cache_write_tokens"], 10);
    assert_eq!(metrics["output_tokens"], 1, "one block, not streamed");
    assert_eq!(metrics["total_tokens"], 20 + 1 + 50 + 10);

    // /agents names the model as AgentOS does for Claude.
    let agents = get(&s.url("/agents")).json();
    let writer = agents
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "writer")
        .unwrap();
    assert_eq!(
        writer["model"],
        json!({"name": "Claude", "model": "claude-sonnet-4-5", "provider": "claude"})
    );
}

#[test]
fn an_overloaded_api_is_retried_and_refusals_end_the_run() {
    let fake = FakeModel::start();
    let env = env(&fake);
    // An `error` event before any content: asked again, and answered.
    let out = env.run(["run", "writer", "-m", "overloaded story", "--json"]);
    out.assert_success();
    assert_eq!(out.json()["status"], "COMPLETED", "{}", out.describe());
    assert_eq!(fake.request_count(), 2);
    // HTTP 529 with retry-after: 0, then an answer.
    let out = env.run(["run", "writer", "-m", "busy story", "--json"]);
    assert_eq!(out.json()["status"], "COMPLETED", "{}", out.describe());
    assert_eq!(fake.request_count(), 4);
    // A 400 is not retried: the run ends ERROR with Anthropic's message.
    let out = env.run(["run", "writer", "-m", "badrequest story", "--json"]);
    let run = out.json();
    assert_eq!(run["status"], "ERROR");
    assert_eq!(run["content"], "fake invalid request (HTTP 400)");
    assert_eq!(fake.request_count(), 5);
    // An error after content has streamed keeps the partial answer.
    let out = env.run(["run", "writer", "-m", "midstream story", "--json"]);
    let run = out.json();
    assert_eq!(run["status"], "ERROR");
    assert_eq!(
        run["content"], "fake failure mid-stream (api_error)",
        "{run}"
    );
    let stored = env.stored_runs(run["session_id"].as_str().unwrap());
    let last = stored.last().unwrap();
    let partial = last["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["role"] == "assistant")
        .expect("the partial answer is stored");
    assert_eq!(partial["content"], "partial ");
    assert_eq!(fake.request_count(), 6);
}

#[test]
fn fallback_models_answer_when_a_model_fails_before_streaming() {
    let fake = FakeModel::start();
    let env = env(&fake);
    let out = env.run(["run", "resilient", "-m", "badrequest story", "--json"]);
    out.assert_success();
    let run = out.json();
    assert_eq!(run["status"], "COMPLETED", "{run}");
    assert_eq!(run["content"], "Story for 'badrequest story'. The end.");
    assert_eq!(
        run["model"], "gpt-4o-mini",
        "the run names the model that answered"
    );
    assert_eq!(run["model_provider"], "fake");
    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests[0].get("max_tokens").is_some(), "Anthropic first");
    assert!(requests[1].get("max_tokens").is_none(), "then OpenAI");

    // OpenAI first, Anthropic as the fallback, streamed to the terminal.
    let out = env.run(["run", "openai-first", "-m", "fail story"]);
    out.assert_success();
    assert_eq!(
        out.stdout().trim(),
        "Claude Story for 'fail story'. The end."
    );

    // Content already streamed: no fallback, the run keeps what it had.
    let before = fake.request_count();
    let out = env.run(["run", "resilient", "-m", "midstream story", "--json"]);
    assert_eq!(out.json()["status"], "ERROR");
    assert_eq!(
        fake.request_count(),
        before + 1,
        "no fallback after content"
    );

    // agentos check names each agent's fallbacks.
    let check = env.run(["check"]);
    check.assert_success();
    check.assert_stdout_contains("fallbacks: fake:gpt-4o-mini");
}

#[test]
fn no_fallback_once_any_round_streamed_content() {
    let fake = FakeModel::start();
    let env = env(&fake);
    // Round 1 streams text and calls get_weather; round 2 fails with HTTP 500 (retried).
    let out = env.run([
        "run",
        "narrator",
        "-m",
        "preface failafter weather in Oslo",
        "--jsonl",
    ]);
    let events = out.json_lines();
    let streamed: String = events
        .iter()
        .filter(|e| e["event"] == "RunContent")
        .filter_map(|e| e["content"].as_str())
        .collect();
    assert_eq!(streamed, crate::fake_model::PREFACE, "{}", out.describe());
    assert!(events.iter().any(|e| e["event"] == "ToolCallCompleted"));
    let error = events
        .iter()
        .find(|e| e["event"] == "RunError")
        .expect("RunError");
    assert_eq!(error["content"], "fake upstream failure (HTTP 500)");
    let requests = fake.requests();
    assert_eq!(
        requests.len(),
        1 + 4,
        "round 1, then round 2 and its retries"
    );
    assert!(
        requests.iter().all(|r| r["model"] == "gpt-4o-mini"),
        "the fallback model is never called once content was streamed"
    );
    let stored = env.stored_runs(error["session_id"].as_str().unwrap());
    assert_eq!(stored[0]["status"], "ERROR");
    assert_eq!(stored[0]["model"], "gpt-4o-mini");

    // Text held back for an output schema was never forwarded: it does not block a
    // fallback. Anthropic streams `partial ` and fails; the OpenAI fallback answers.
    let out = env.run([
        "run",
        "resilient-reporter",
        "-m",
        "midstream report",
        "--json",
    ]);
    out.assert_success();
    let run = out.json();
    assert_eq!(run["status"], "COMPLETED", "{run}");
    assert_eq!(run["model"], "gpt-4o-mini");
    assert_eq!(run["content"]["headline"], "sample headline", "{run}");
    let requests = fake.requests();
    assert_eq!(requests.len(), 5 + 2);
    assert!(
        requests[5].get("output_config").is_some(),
        "Anthropic first"
    );
    assert!(
        requests[6].get("response_format").is_some(),
        "then OpenAI, with the schema"
    );
}

#[test]
fn a_missing_key_falls_back_in_the_cli_as_in_the_server() {
    let fake = FakeModel::start();
    let mut env = TestEnv::new();
    env.write_config(&CONFIG.replace("{FAKE}", &fake.base_url()));
    env.set_env("OPENAI_API_KEY", "sk-test");
    // No ANTHROPIC_API_KEY: the primary cannot be called, the fallback answers.
    let out = env.run(["run", "resilient", "-m", "Hello", "--json"]);
    out.assert_success();
    let run = out.json();
    assert_eq!(run["status"], "COMPLETED", "{run}");
    assert_eq!(run["model"], "gpt-4o-mini", "the model that answered");
    assert_eq!(run["model_provider"], "fake");
    assert_eq!(run["content"], "Story for 'Hello'. The end.");
    assert_eq!(fake.request_count(), 1, "only the fallback was asked");

    // Without fallbacks: refused up front, naming the variable.
    let out = env.run(["run", "writer", "-m", "Hello"]);
    out.assert_code(2);
    out.assert_stderr_contains("provider `claude` needs an API key: set ANTHROPIC_API_KEY");

    // No model of the chain can be called: refused up front too.
    env.write_config(&format!(
        "{}\n[[agents]]\nid = \"keyless\"\nmodel = \"claude:claude-sonnet-4-5\"\n\
         fallback_models = [\"anthropic:claude-haiku-4-5\"]\n",
        CONFIG.replace("{FAKE}", &fake.base_url())
    ));
    let out = env.run(["run", "keyless", "-m", "Hello"]);
    out.assert_code(2);
    out.assert_stderr_contains("provider `claude` needs an API key: set ANTHROPIC_API_KEY");
    assert_eq!(fake.request_count(), 1);
}

#[test]
fn reasoning_streams_while_an_output_schema_holds_the_text_back() {
    let s = server();
    let schema = r#"{"title": "Joke", "type": "object", "required": ["line"],
                     "properties": {"line": {"type": "string"}}}"#;
    let a = post_form(
        &s.url("/agents/thinker/runs"),
        &[
            ("message", "Tell me a joke"),
            ("stream", "true"),
            ("output_schema", schema),
        ],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let events = parse_sse(&a.body);
    let contents: Vec<&Value> = events
        .iter()
        .filter(|(name, _)| name == "RunContent")
        .map(|(_, e)| e)
        .collect();
    let reasoning: String = contents
        .iter()
        .filter_map(|e| e["reasoning_content"].as_str())
        .collect();
    assert_eq!(reasoning, "Thinking about 'Tell me a joke'.");
    // The thinking came as it streamed (in three deltas, no answer text), then the answer
    // as one structured object.
    assert_eq!(contents.len(), 4, "{contents:?}");
    assert!(contents[..3].iter().all(|e| e["content"] == ""));
    let last = contents.last().unwrap();
    assert_eq!(last["content"], json!({"line": "sample line"}), "{last}");
    assert_eq!(last["content_type"], "Joke");

    // The store keeps the structured object and the whole reasoning, not the deltas.
    let (_, completed) = events
        .iter()
        .find(|(name, _)| name == "RunCompleted")
        .expect("RunCompleted");
    assert_eq!(completed["reasoning_content"], reasoning.as_str());
    let polled = get(&s.url(&format!(
        "/agents/thinker/runs/{}?session_id={}",
        completed["run_id"].as_str().unwrap(),
        completed["session_id"].as_str().unwrap()
    )));
    assert_eq!(polled.status, 200, "{}", polled.body);
    let polled = polled.json();
    assert_eq!(polled["reasoning_content"], reasoning.as_str());
    let kept: Vec<&Value> = polled["events"]
        .as_array()
        .expect("the stored events of a streamed run")
        .iter()
        .filter(|e| e["event"] == "RunContent")
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0]["content"], json!({"line": "sample line"}));
}

#[test]
fn signed_and_redacted_thinking_is_replayed_from_history() {
    let s = server();
    let ask = |message: &str| {
        let a = post_form(
            &s.url("/agents/deep-thinker/runs"),
            &[
                ("message", message),
                ("stream", "true"),
                ("session_id", "thoughts"),
            ],
        );
        assert_eq!(a.status, 200, "{}", a.body);
        let events = parse_sse(&a.body);
        let (_, completed) = events
            .iter()
            .find(|(name, _)| name == "RunCompleted")
            .unwrap_or_else(|| panic!("RunCompleted in {}", a.body));
        completed.clone()
    };
    // Run 1: a tool loop whose first turn thinks (signed), adds a redacted block and calls
    // get_weather; the second thinks again and answers.
    let first = ask("Think redacted: the weather in Oslo?");
    assert_eq!(
        first["content"],
        "Tool result received: The weather in Oslo is sunny."
    );
    let requests = s.fake.requests();
    assert_eq!(requests.len(), 2);
    // Within the run, the second call replays both blocks unchanged, before the tool_use.
    let replayed = blocks(&turns(&requests[1])[1]);
    let thinking = json!({"type": "thinking",
        "thinking": "Thinking about 'Think redacted: the weather in Oslo?'.",
        "signature": "sig-54"});
    let redacted = json!({"type": "redacted_thinking", "data": "ENCRYPTED"});
    assert_eq!(replayed[0], thinking);
    assert_eq!(replayed[1], redacted);
    assert_eq!(replayed[2]["type"], "tool_use");

    // Run 2 of the same session: the history carries both assistant turns of run 1 with
    // their thinking blocks, unchanged and first, and the tool result between them.
    let second = ask("And tomorrow?");
    assert_eq!(
        second["content"],
        "Claude Story for 'And tomorrow?'. The end."
    );
    let requests = s.fake.requests();
    assert_eq!(requests.len(), 3);
    let history = turns(&requests[2]);
    let roles: Vec<&str> = history
        .iter()
        .map(|t| t["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["user", "assistant", "user", "assistant", "user"],
        "{history:#?}"
    );
    let calling = blocks(&history[1]);
    assert_eq!(calling[0], thinking, "{calling:#?}");
    assert_eq!(calling[1], redacted);
    assert_eq!(calling[2]["type"], "tool_use");
    assert_eq!(calling[2]["input"], json!({"city": "Oslo"}));
    let results = blocks(&history[2]);
    assert_eq!(results[0]["type"], "tool_result");
    assert_eq!(results[0]["tool_use_id"], calling[2]["id"]);
    let answering = blocks(&history[3]);
    assert_eq!(
        answering[0],
        json!({"type": "thinking", "thinking": "Thinking about ''.", "signature": "sig-18"})
    );
    assert_eq!(
        answering[1],
        json!({"type": "text", "text": "Tool result received: The weather in Oslo is sunny."})
    );
    assert_eq!(
        blocks(&history[4]),
        [json!({"type": "text", "text": "And tomorrow?"})]
    );
}

#[test]
fn one_turns_tool_results_go_together_with_errors_and_empty_arguments() {
    let fake = FakeModel::start();
    let env = env(&fake);
    let out = env.run([
        "run",
        "handy",
        "-m",
        "In parallel: the weather in Oslo, the clock and the broken gauge",
        "--json",
    ]);
    out.assert_success();
    let run = out.json();
    assert_eq!(run["status"], "COMPLETED", "{run}");
    let tools = run["tools"].as_array().expect("tools");
    let names: Vec<&str> = tools
        .iter()
        .map(|t| t["tool_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["get_weather", "clock", "broken"]);
    // The tool without arguments streamed an empty `partial_json` and ran with `{}`.
    assert_eq!(tools[1]["tool_args"], json!({}));
    assert_eq!(tools[1]["result"], "12:00, asked with {}");
    assert_eq!(tools[1]["tool_call_error"], false);
    assert_eq!(tools[2]["tool_call_error"], true);

    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    let first = &requests[0];
    let clock = first["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "clock")
        .expect("clock offered");
    assert_eq!(clock["input_schema"], json!({"type": "object"}));
    let turns = turns(&requests[1]);
    assert_eq!(turns.len(), 3, "{turns:#?}");
    let calls = blocks(&turns[1]);
    let ids: Vec<&Value> = calls.iter().map(|c| &c["id"]).collect();
    assert_eq!(calls[1]["input"], json!({}));
    // All three results in the one user turn after the calls, in order; the failing
    // tool's marked `is_error`.
    let results = blocks(&turns[2]);
    assert_eq!(results.len(), 3, "{results:#?}");
    for (result, id) in results.iter().zip(&ids) {
        assert_eq!(result["type"], "tool_result");
        assert_eq!(&&result["tool_use_id"], id);
    }
    assert_eq!(results[0]["content"], "The weather in Oslo is sunny.");
    assert_eq!(results[0]["is_error"], false);
    assert_eq!(results[1]["content"], "12:00, asked with {}");
    assert_eq!(results[1]["is_error"], false);
    assert_eq!(results[2]["is_error"], true);
    assert!(
        results[2]["content"]
            .as_str()
            .unwrap()
            .contains("gauge on fire"),
        "{}",
        results[2]
    );
}

#[test]
fn beta_headers_and_the_built_in_provider_reach_the_api() {
    let fake = FakeModel::start();
    let mut env = env(&fake);
    // anthropic-beta from the provider's `headers`, beside the version and the key.
    let out = env.run(["run", "beta", "-m", "Hello"]);
    out.assert_success();
    assert_eq!(
        fake.header(0, "anthropic-beta").as_deref(),
        Some("interleaved-thinking-2025-05-14")
    );
    assert_eq!(
        fake.header(0, "anthropic-version").as_deref(),
        Some("2023-06-01")
    );
    assert_eq!(fake.header(0, "x-api-key").as_deref(), Some(API_KEY));

    // The built-in `anthropic:` provider, pointed at the fake by ANTHROPIC_BASE_URL.
    env.set_env("ANTHROPIC_BASE_URL", &fake.base_url());
    let out = env.run(["run", "native", "-m", "Hello", "--json"]);
    out.assert_success();
    let run = out.json();
    assert_eq!(run["status"], "COMPLETED", "{run}");
    assert_eq!(run["content"], "Claude Story for 'Hello'. The end.");
    assert_eq!(run["model"], "claude-sonnet-4-5");
    assert_eq!(run["model_provider"], "Anthropic");
    assert_eq!(fake.request_count(), 2);
    assert_eq!(fake.header(1, "x-api-key").as_deref(), Some(API_KEY));
    assert_eq!(fake.header(1, "anthropic-beta"), None);

    // Set as Anthropic's SDKs take it, the API's root without `/v1`.
    let root = fake.base_url();
    env.set_env("ANTHROPIC_BASE_URL", root.trim_end_matches("/v1"));
    let out = env.run(["run", "native", "-m", "Hello", "--json"]);
    out.assert_success();
    assert_eq!(out.json()["status"], "COMPLETED");
    assert_eq!(fake.request_count(), 3);
}

#[test]
fn a_team_leader_falls_back() {
    let fake = FakeModel::start();
    let env = env(&fake);
    // The leader's Anthropic call is refused (400); the OpenAI fallback leads instead,
    // delegating to the member and writing the answer.
    let out = env.run(["run", "fallback-team", "-m", "badrequest plan", "--json"]);
    out.assert_success();
    let run = out.json();
    assert_eq!(run["status"], "COMPLETED", "{run}");
    assert_eq!(
        run["model"], "gpt-4o-mini",
        "the leader's model that answered"
    );
    assert_eq!(run["model_provider"], "fake");
    assert_eq!(
        run["content"],
        "Tool result received: Story for 'badrequest plan'. The end."
    );
    let requests = fake.requests();
    assert_eq!(requests.len(), 4, "{requests:#?}");
    assert!(
        requests[0].get("max_tokens").is_some(),
        "the leader on Anthropic"
    );
    assert_eq!(requests[1]["model"], "gpt-4o-mini", "then on its fallback");
    assert!(
        requests[1]["tools"][0]["function"]["name"] == "delegate_task_to_member",
        "{}",
        requests[1]
    );
}

#[test]
fn a_cancelled_run_does_not_fall_back() {
    let s = server();
    let url = s.url("/agents/openai-first/runs");
    let mut run_id = String::new();
    let mut session_id = String::new();
    // The primary streams `partial ` and stalls; the run is cancelled there.
    let events = stream_until(&url, &[("message", "please stall now")], |name, event| {
        if name == "RunStarted" {
            run_id = event["run_id"].as_str().unwrap_or_default().to_string();
            session_id = event["session_id"].as_str().unwrap_or_default().to_string();
        }
        if name == "RunContent" && event["content"] == "partial " {
            let cancel = post_form(
                &s.url(&format!("/agents/openai-first/runs/{run_id}/cancel")),
                &[],
            );
            assert_eq!(cancel.status, 200, "{}", cancel.body);
        }
        name != "RunCompleted"
    });
    let (_, cancelled) = events
        .iter()
        .find(|(name, _)| name == "RunCancelled")
        .expect("RunCancelled");
    assert_eq!(cancelled["content"], "partial ");
    let stored = get(&s.url(&format!(
        "/agents/openai-first/runs/{run_id}?session_id={session_id}"
    )))
    .json();
    assert_eq!(stored["status"], "CANCELLED", "{stored}");
    assert_eq!(stored["model"], "gpt-4o-mini");
    let requests = s.fake.requests();
    assert_eq!(
        requests.len(),
        1,
        "the fallback is never called: {requests:#?}"
    );
    assert_eq!(requests[0]["model"], "gpt-4o-mini");
}

#[test]
fn openai_compatible_reasoning_reaches_events_and_the_run() {
    let fake = FakeModel::start();
    let mut env = TestEnv::with_fake(&fake);
    env.set_env("OPENAI_API_KEY", "sk-test");
    let out = env.run([
        "run",
        "story-writer",
        "-m",
        "reason about robots",
        "--jsonl",
    ]);
    out.assert_success();
    let events = out.json_lines();
    let reasoning: String = events
        .iter()
        .filter(|e| e["event"] == "RunContent")
        .filter_map(|e| e["reasoning_content"].as_str())
        .collect();
    assert_eq!(reasoning, "Reasoning about 'reason about robots'.");
    let completed = events
        .iter()
        .find(|e| e["event"] == "RunCompleted")
        .unwrap();
    assert_eq!(
        completed["reasoning_content"],
        "Reasoning about 'reason about robots'."
    );

    // Piped, the answer is the text alone.
    let out = env.run(["run", "story-writer", "-m", "reason about robots"]);
    out.assert_success();
    assert!(!out.stdout().contains("Reasoning"), "{}", out.describe());
    assert!(!out.stderr().contains("Reasoning"), "{}", out.describe());
    let runs: Vec<Value> = env
        .sessions()
        .iter()
        .flat_map(|s| env.stored_runs(s["session_id"].as_str().unwrap()))
        .collect();
    assert!(
        runs.iter()
            .all(|r| r["reasoning_content"] == "Reasoning about 'reason about robots'."),
        "{runs:?}"
    );
}
