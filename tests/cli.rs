//! `agentos run`, `agents` and `sessions` through the real binary.
//!
//! Runs that need a model call the fake OpenAI server of `fake_model` over a real socket;
//! what the binary sent is asserted from the fake's request log, and what it stored through
//! `agentos sessions show ID --json`.

use std::io::Read;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::fake_model::{FakeModel, last_user_text, messages, roles, system_text};
use crate::util::{Running, TestEnv, capture_body, keys};

/// Bound for a run that should end promptly once cancelled.
const CANCEL_EXIT: Duration = Duration::from_secs(5);
/// Bound for output that should show up soon after the start.
const FIRST_OUTPUT: Duration = Duration::from_secs(20);

const ANNA: &str = r#"{"robot_name":"Anna"}"#;

/// `(role, content)` pairs of a logged request, without the system message.
fn conversation(body: &Value) -> Vec<(String, String)> {
    messages(body)
        .iter()
        .filter(|m| m["role"] != "system")
        .map(|m| {
            (
                m["role"].as_str().unwrap_or("").to_string(),
                m["content"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn pair(role: &str, content: &str) -> (String, String) {
    (role.to_string(), content.to_string())
}

// ---------------------------------------------------------------------------------------
// agentos run: the message, templating, output

#[test]
fn run_streams_the_answer_to_stdout() {
    let fake = FakeModel::start();
    let env = TestEnv::with_fake(&fake);
    let out = env.run([
        "run",
        "story-writer",
        "-m",
        "Write a story",
        "--dependencies",
        ANNA,
    ]);
    out.assert_success();
    assert_eq!(
        out.stdout(),
        "Story for 'Write a story'. Starring Anna. The end.\n"
    );

    let request = fake.single_request();
    assert_eq!(request["model"], "gpt-4o-mini");
    assert_eq!(
        request["stream"], true,
        "the CLI streams by default: {request:#}"
    );
    assert_eq!(
        request.pointer("/stream_options/include_usage"),
        Some(&json!(true)),
        "usage must be requested when streaming: {request:#}"
    );
    assert_eq!(roles(&request), ["system", "user"]);
    assert_eq!(
        system_text(&request),
        "You write very short stories. The robot's name is Anna."
    );
    assert_eq!(last_user_text(&request), "Write a story");
}

#[test]
fn run_no_stream_makes_one_blocking_request() {
    let fake = FakeModel::start();
    let env = TestEnv::with_fake(&fake);
    let out = env.run([
        "run",
        "story-writer",
        "-m",
        "Write a story",
        "--dependencies",
        ANNA,
        "--no-stream",
    ]);
    out.assert_success();
    assert_eq!(
        out.stdout(),
        "Story for 'Write a story'. Starring Anna. The end.\n"
    );
    let request = fake.single_request();
    assert_ne!(request.get("stream"), Some(&json!(true)), "{request:#}");
}

#[test]
fn run_session_state_wins_over_dependencies() {
    let fake = FakeModel::start();
    let env = TestEnv::with_fake(&fake);
    let out = env.run([
        "run",
        "story-writer",
        "-m",
        "Who stars?",
        "--dependencies",
        ANNA,
        "--session-state",
        r#"{"robot_name":"Bob"}"#,
    ]);
    out.assert_success();
    assert_eq!(
        out.stdout(),
        "Story for 'Who stars?'. Starring Bob. The end.\n"
    );
}

#[test]
fn run_metadata_fills_placeholders_after_dependencies() {
    let fake = FakeModel::start();
    let env = TestEnv::with_fake(&fake);
    let meta = r#"{"robot_name":"Meta"}"#;

    let out = env.run([
        "run",
        "story-writer",
        "-m",
        "Only metadata",
        "--metadata",
        meta,
    ]);
    out.assert_success();
    assert_eq!(
        out.stdout(),
        "Story for 'Only metadata'. Starring Meta. The end.\n"
    );

    let out = env.run([
        "run",
        "story-writer",
        "-m",
        "Both",
        "--metadata",
        meta,
        "--dependencies",
        ANNA,
    ]);
    out.assert_success();
    assert_eq!(out.stdout(), "Story for 'Both'. Starring Anna. The end.\n");
}

#[test]
fn run_user_id_fills_its_placeholder() {
    let fake = FakeModel::start();
    let env = TestEnv::with_fake(&fake);
    let out = env.run(["run", "user-writer", "-m", "Hello", "-u", "alice"]);
    out.assert_success();
    assert_eq!(
        out.stdout(),
        "Story for 'Hello'. Starring alice. The end.\n"
    );
    assert_eq!(
        system_text(&fake.single_request()),
        "The robot's name is alice."
    );
}

#[test]
fn run_unfilled_placeholder_stays_as_written() {
    let fake = FakeModel::start();
    let env = TestEnv::with_fake(&fake);
    let out = env.run(["run", "story-writer", "-m", "No robot"]);
    out.assert_success();
    assert_eq!(
        system_text(&fake.single_request()),
        "You write very short stories. The robot's name is {robot_name}."
    );
}

#[test]
fn piped_stdin_is_the_message() {
    let fake = FakeModel::start();
    let env = TestEnv::with_fake(&fake);
    let out = env.run_with_stdin(
        ["run", "story-writer", "--dependencies", ANNA],
        "piped text\nsecond line\n",
    );
    out.assert_success();
    let sent = last_user_text(&fake.single_request());
    assert_eq!(sent.trim_end(), "piped text\nsecond line");
    assert!(
        out.stdout()
            .starts_with("Story for 'piped text\nsecond line"),
        "{}",
        out.describe()
    );
}

#[test]
fn piped_stdin_is_appended_after_the_message_flag() {
    let fake = FakeModel::start();
    let env = TestEnv::with_fake(&fake);
    let out = env.run_with_stdin(
        ["run", "story-writer", "-m", "Focus on the API change"],
        "diff --git a/x b/x\n+added\n",
    );
    out.assert_success();
    let sent = last_user_text(&fake.single_request());
    assert_eq!(
        sent.trim_end(),
        "Focus on the API change\n\ndiff --git a/x b/x\n+added"
    );
}

#[test]
fn run_without_any_message_is_a_usage_error() {
    let fake = FakeModel::start();
    let env = TestEnv::with_fake(&fake);
    let out = env.run(["run", "story-writer"]);
    out.assert_code(2);
    assert_eq!(fake.request_count(), 0);
}

#[test]
fn json_prints_the_run_object_in_the_api_shape() {
    let fake = FakeModel::start();
    let env = TestEnv::with_fake(&fake);
    let out = env.run([
        "run",
        "story-writer",
        "-m",
        "Form urlencoded body",
        "-u",
        "user-2",
        "--dependencies",
        r#"{"robot_name":"Default-Bot"}"#,
        "--json",
    ]);
    out.assert_success();
    let run = out.json();
    let reference = capture_body("103_agent_run_urlencoded_nonstream.http");
    assert_eq!(
        keys(&run),
        keys(&reference),
        "--json must print the keys of AgentOS's run object (capture 103)\n{run:#}"
    );
    assert_eq!(run["status"], "COMPLETED");
    assert_eq!(
        run["content"],
        "Story for 'Form urlencoded body'. Starring Default-Bot. The end."
    );
    assert_eq!(run["content_type"], "str");
    assert_eq!(run["agent_id"], "story-writer");
    assert_eq!(run["agent_name"], "Story Writer");
    assert_eq!(run["user_id"], "user-2");
    assert_eq!(run["model"], "gpt-4o-mini");
    assert_eq!(run["input"]["input_content"], "Form urlencoded body");
    let session_id = run["session_id"].as_str().expect("session_id is a string");
    let run_id = run["run_id"].as_str().expect("run_id is a string");
    assert!(!session_id.is_empty() && !run_id.is_empty(), "{run:#}");
    let message_roles: Vec<&str> = run["messages"]
        .as_array()
        .expect("messages array")
        .iter()
        .map(|m| m["role"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(message_roles, ["system", "user", "assistant"]);
    assert_eq!(run["messages"][2]["content"], run["content"]);
    assert_eq!(run["metrics"]["input_tokens"], 10);
    assert_eq!(run["metrics"]["output_tokens"], 5);
    assert_eq!(run["metrics"]["total_tokens"], 15);

    // The same run object is what got stored.
    let stored = env.stored_runs(session_id);
    assert_eq!(stored.len(), 1, "{stored:#?}");
    assert_eq!(stored[0]["run_id"], run_id);
    assert_eq!(stored[0]["status"], "COMPLETED");
    assert_eq!(stored[0]["content"], run["content"]);
}

#[test]
fn jsonl_prints_every_event_in_order() {
    let fake = FakeModel::start();
    let env = TestEnv::with_fake(&fake);
    let out = env.run([
        "run",
        "story-writer",
        "-m",
        "Tell me another story",
        "-s",
        "sess-story-1",
        "--dependencies",
        ANNA,
        "--jsonl",
    ]);
    out.assert_success();
    let events = out.json_lines();
    let mut names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap_or("<no event field>"))
        .collect();
    names.dedup();
    assert_eq!(
        names,
        [
            "RunStarted",
            "ModelRequestStarted",
            "RunContent",
            "ModelRequestCompleted",
            "RunContentCompleted",
            "RunCompleted"
        ],
        "event order as in capture 101\n{}",
        out.stdout()
    );
    let run_id = &events[0]["run_id"];
    assert!(run_id.is_string(), "{:#}", events[0]);
    for e in &events {
        assert_eq!(&e["run_id"], run_id, "{e:#}");
        assert_eq!(e["session_id"], "sess-story-1", "{e:#}");
        assert_eq!(e["agent_id"], "story-writer", "{e:#}");
    }
    let streamed: String = events
        .iter()
        .filter(|e| e["event"] == "RunContent")
        .filter_map(|e| e["content"].as_str())
        .collect();
    let answer = "Story for 'Tell me another story'. Starring Anna. The end.";
    assert_eq!(streamed, answer);
    let chunks = events.iter().filter(|e| e["event"] == "RunContent").count();
    assert!(
        chunks >= 2,
        "the answer should arrive in several RunContent events"
    );
    let completed = events.last().expect("events");
    assert_eq!(completed["content"], answer);
    assert_eq!(completed["metrics"]["total_tokens"], 15);
}

#[test]
fn second_run_of_a_session_sends_the_history() {
    let fake = FakeModel::start();
    let env = TestEnv::with_fake(&fake);
    let first = env.run([
        "run",
        "story-writer",
        "-s",
        "hist-1",
        "-m",
        "First story",
        "--dependencies",
        ANNA,
    ]);
    first.assert_success();
    let first_answer = first.stdout().trim_end().to_string();
    assert_eq!(
        first_answer,
        "Story for 'First story'. Starring Anna. The end."
    );

    env.run([
        "run",
        "story-writer",
        "-s",
        "hist-1",
        "-m",
        "Second story",
        "--dependencies",
        ANNA,
    ])
    .assert_success();

    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(roles(&requests[1])[0], "system");
    assert_eq!(
        conversation(&requests[1]),
        [
            pair("user", "First story"),
            pair("assistant", &first_answer),
            pair("user", "Second story"),
        ],
        "{:#}",
        requests[1]
    );

    let stored = env.stored_runs("hist-1");
    assert_eq!(stored.len(), 2, "{stored:#?}");
    let sessions = env.sessions();
    let session = sessions
        .iter()
        .find(|s| s["session_id"] == "hist-1")
        .unwrap_or_else(|| panic!("hist-1 not listed: {sessions:#?}"));
    assert_eq!(session["runs"], 2);
}

#[test]
fn history_is_limited_to_num_history_runs() {
    let fake = FakeModel::start();
    let env = TestEnv::with_fake(&fake);
    for i in 1..=5 {
        env.run([
            "run",
            "story-writer",
            "-s",
            "hist-5",
            "-m",
            &format!("Story {i}"),
        ])
        .assert_success();
    }
    let requests = fake.requests();
    assert_eq!(requests.len(), 5);
    let users: Vec<String> = conversation(&requests[4])
        .into_iter()
        .filter(|(role, _)| role == "user")
        .map(|(_, content)| content)
        .collect();
    // story-writer keeps the last 3 runs.
    assert_eq!(
        users,
        ["Story 2", "Story 3", "Story 4", "Story 5"],
        "{:#}",
        requests[4]
    );
}

#[test]
fn runs_without_a_session_do_not_share_history() {
    let fake = FakeModel::start();
    let env = TestEnv::with_fake(&fake);
    env.run(["run", "story-writer", "-m", "One"])
        .assert_success();
    env.run(["run", "story-writer", "-m", "Two"])
        .assert_success();
    let requests = fake.requests();
    assert_eq!(conversation(&requests[1]), [pair("user", "Two")]);
}

// ---------------------------------------------------------------------------------------
// Output schemas

fn movie_schema() -> Value {
    json!({
        "type": "object",
        "title": "MovieScript",
        "properties": {
            "name": {"type": "string"},
            "year": {"type": "integer"},
            "characters": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["name", "year", "characters"],
    })
}

fn expected_response_format(schema: &Value) -> Value {
    let mut closed = schema.clone();
    closed["additionalProperties"] = json!(false);
    json!({
        "type": "json_schema",
        "json_schema": {"name": "MovieScript", "schema": closed, "strict": true},
    })
}

#[test]
fn output_schema_flag_asks_for_strict_json_schema() {
    let fake = FakeModel::start();
    let env = TestEnv::with_fake(&fake);
    let schema = movie_schema();
    let out = env.run([
        "run",
        "story-writer",
        "-m",
        "A heist in Lisbon",
        "--output-schema",
        &schema.to_string(),
        "--json",
    ]);
    out.assert_success();
    let request = fake.single_request();
    assert_eq!(
        request["response_format"],
        expected_response_format(&schema),
        "{request:#}"
    );
    let run = out.json();
    assert_eq!(run["status"], "COMPLETED");
    assert_eq!(run["content_type"], "MovieScript");
    assert_eq!(
        run["content"],
        json!({"name": "sample name", "year": 42, "characters": ["sample characters"]}),
        "content must be the parsed JSON object\n{run:#}"
    );
}

#[test]
fn output_schema_from_a_file() {
    let fake = FakeModel::start();
    let env = TestEnv::with_fake(&fake);
    let schema = movie_schema();
    let path = env.write_file(
        "schema.json",
        &serde_json::to_string_pretty(&schema).unwrap(),
    );
    let out = env.run([
        "run",
        "story-writer",
        "-m",
        "A heist in Lisbon",
        "--output-schema",
        &format!("@{}", path.display()),
    ]);
    out.assert_success();
    assert_eq!(
        fake.single_request()["response_format"],
        expected_response_format(&schema)
    );
    // In text mode the answer is still the JSON object.
    let printed: Value = serde_json::from_str(out.stdout().trim())
        .unwrap_or_else(|e| panic!("stdout is not the JSON answer ({e})\n{}", out.describe()));
    assert_eq!(
        printed,
        json!({"name": "sample name", "year": 42, "characters": ["sample characters"]})
    );
}

#[test]
fn output_schema_from_agents_toml() {
    let fake = FakeModel::start();
    let env = TestEnv::with_fake(&fake);
    let out = env.run(["run", "movie-script", "-m", "A heist", "--json"]);
    out.assert_success();
    let format = &fake.single_request()["response_format"];
    assert_eq!(format["type"], "json_schema", "{format:#}");
    assert_eq!(format["json_schema"]["name"], "MovieScript", "{format:#}");
    assert_eq!(
        format["json_schema"]["schema"]["additionalProperties"], false,
        "{format:#}"
    );
    let run = out.json();
    assert_eq!(run["content_type"], "MovieScript");
    assert_eq!(run["content"], json!({"name": "sample name", "year": 42}));
}

#[test]
fn invalid_output_schema_is_a_usage_error() {
    let fake = FakeModel::start();
    let env = TestEnv::with_fake(&fake);
    for bad in [
        r#"{"type":"array"}"#,
        "{not json",
        "@/nonexistent/schema.json",
    ] {
        let out = env.run(["run", "story-writer", "-m", "x", "--output-schema", bad]);
        out.assert_code(2).assert_stderr_contains("--output-schema");
    }
    assert_eq!(fake.request_count(), 0);
}

// ---------------------------------------------------------------------------------------
// Failures

#[test]
fn model_error_exits_1_and_stores_the_run_as_error() {
    let fake = FakeModel::start();
    let env = TestEnv::with_fake(&fake);
    let out = env.run(["run", "story-writer", "-m", "please fail", "-s", "err-1"]);
    out.assert_code(1)
        .assert_stderr_contains("fake upstream failure");
    assert!(fake.request_count() >= 1);
    let stored = env.stored_runs("err-1");
    assert_eq!(stored.len(), 1, "{stored:#?}");
    assert_eq!(stored[0]["status"], "ERROR", "{:#}", stored[0]);
}

#[test]
fn unauthorized_exits_1_with_the_providers_message() {
    let fake = FakeModel::start();
    let env = TestEnv::with_fake(&fake);
    let out = env.run(["run", "story-writer", "-m", "unauthorized please"]);
    out.assert_code(1)
        .assert_stderr_contains("Incorrect API key provided");
    assert_eq!(fake.request_count(), 1, "a 401 must not be retried");
}

#[test]
fn rate_limit_is_retried() {
    let fake = FakeModel::start();
    let env = TestEnv::with_fake(&fake);
    let out = env.run([
        "run",
        "story-writer",
        "-m",
        "ratelimit me",
        "--dependencies",
        ANNA,
    ]);
    out.assert_success();
    assert_eq!(
        out.stdout(),
        "Story for 'ratelimit me'. Starring Anna. The end.\n"
    );
    let requests = fake.requests();
    assert_eq!(requests.len(), 2, "one 429, then the retry");
    assert_eq!(
        requests[0], requests[1],
        "the retry must resend the same request"
    );
}

#[test]
fn unknown_agent_exits_2() {
    let fake = FakeModel::start();
    let env = TestEnv::with_fake(&fake);
    let out = env.run(["run", "no-such-agent", "-m", "hi"]);
    out.assert_code(2).assert_stderr_contains("no-such-agent");
    assert_eq!(fake.request_count(), 0);
}

#[test]
fn bad_json_flags_exit_2() {
    let fake = FakeModel::start();
    let env = TestEnv::with_fake(&fake);
    for (flag, value) in [
        ("--dependencies", "{not json"),
        ("--dependencies", "[1, 2]"),
        ("--session-state", "{"),
        ("--metadata", "\"text\""),
    ] {
        let out = env.run(["run", "story-writer", "-m", "hi", flag, value]);
        out.assert_code(2).assert_stderr_contains(flag);
    }
    assert_eq!(fake.request_count(), 0);
}

#[test]
fn unknown_flag_exits_2() {
    let env = TestEnv::new();
    env.run(["run", "test-agent", "-m", "hi", "--no-such-flag"])
        .assert_code(2);
}

// ---------------------------------------------------------------------------------------
// Ctrl-C and closed pipes

#[track_caller]
fn assert_cancelled_run(env: &TestEnv, session: &str, partial: &str) {
    let stored = env.stored_runs(session);
    assert_eq!(stored.len(), 1, "{stored:#?}");
    let run = &stored[0];
    assert_eq!(run["status"], "CANCELLED", "{run:#}");
    let content = run["content"].as_str().unwrap_or("");
    assert!(
        content.contains(partial),
        "the cancelled run should keep its partial content {partial:?}: {run:#}"
    );
}

#[test]
fn ctrl_c_while_the_provider_stalls_cancels_the_run() {
    let fake = FakeModel::start();
    let env = TestEnv::with_fake(&fake);
    let mut running = env.spawn(["run", "story-writer", "-m", "stall please", "-s", "stall-1"]);
    running.wait_for_stdout("partial", FIRST_OUTPUT);
    running.interrupt();
    let out = running.wait(CANCEL_EXIT);
    out.assert_code(130);
    assert!(!out.stderr().contains("panicked"), "{}", out.describe());
    assert_cancelled_run(&env, "stall-1", "partial");
}

#[test]
fn ctrl_c_during_a_slow_stream_cancels_the_run() {
    let fake = FakeModel::start();
    let env = TestEnv::with_fake(&fake);
    let mut running = env.spawn(["run", "story-writer", "-m", "slow please", "-s", "slow-1"]);
    running.wait_for_stdout("slow-0", FIRST_OUTPUT);
    running.interrupt();
    let out = running.wait(CANCEL_EXIT);
    out.assert_code(130);
    assert!(
        !out.stdout().contains("slow-29"),
        "the stream was not cut short\n{}",
        out.describe()
    );
    assert_cancelled_run(&env, "slow-1", "slow-0");
}

/// Starts `agentos ARGS`, reads one byte of its stdout, closes the pipe and returns the
/// finished process (it must exit within [`CANCEL_EXIT`] after the close).
fn run_and_close_stdout_after_one_byte(env: &TestEnv, args: &[&str]) -> crate::util::CmdOutput {
    let mut running = Running::start_raw_stdout(env.cmd(args));
    let mut stdout = running.child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut byte = [0u8; 1];
        let result = stdout.read_exact(&mut byte).map(|()| byte[0]);
        drop(stdout); // `| head -c 1`
        let _ = tx.send(result);
    });
    match rx.recv_timeout(FIRST_OUTPUT) {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => panic!(
            "no output before stdout closed: {e}\n{}",
            running.stderr_so_far()
        ),
        Err(_) => panic!(
            "no output within {FIRST_OUTPUT:?}\n{}",
            running.stderr_so_far()
        ),
    }
    running.wait(CANCEL_EXIT)
}

#[test]
fn closed_stdout_is_a_quiet_success() {
    let env = TestEnv::new();
    let out = run_and_close_stdout_after_one_byte(&env, &["run", "test-agent", "-m", "hi"]);
    out.assert_code(0);
    assert!(!out.stderr().contains("Broken pipe"), "{}", out.describe());
    assert!(!out.stderr().contains("panicked"), "{}", out.describe());
}

#[test]
fn closed_stdout_during_a_stream_stops_the_run_quietly() {
    let fake = FakeModel::start();
    let env = TestEnv::with_fake(&fake);
    let out = run_and_close_stdout_after_one_byte(
        &env,
        &["run", "story-writer", "-m", "slow please", "-s", "pipe-1"],
    );
    out.assert_success();
    // Like Ctrl-C: the run stops and is stored cancelled with what had arrived.
    assert_cancelled_run(&env, "pipe-1", "slow-0");
}

// ---------------------------------------------------------------------------------------
// The offline test model

#[test]
fn test_model_needs_no_network_and_no_key() {
    let fake = FakeModel::start();
    let env = TestEnv::with_fake(&fake);
    let out = env.run(["run", "story-writer", "--model", "test", "-m", "hi"]);
    out.assert_success();
    assert!(!out.stdout().trim().is_empty(), "{}", out.describe());
    assert!(out.stdout().ends_with('\n'), "{}", out.describe());
    assert_eq!(
        fake.request_count(),
        0,
        "--model test must not call the agent's provider"
    );

    let env = TestEnv::new();
    let out = env.run(["run", "test-agent", "-m", "hi", "--json"]);
    out.assert_success();
    let run = out.json();
    assert_eq!(run["status"], "COMPLETED");
    assert!(
        run["content"].as_str().is_some_and(|c| !c.is_empty()),
        "{run:#}"
    );
}

#[test]
fn test_model_shows_the_rendered_instructions() {
    let env = TestEnv::new();
    let out = env.run([
        "run",
        "test-agent",
        "-m",
        "hi there",
        "--dependencies",
        r#"{"robot_name":"Zed"}"#,
    ]);
    out.assert_success()
        .assert_stdout_contains("hi there")
        .assert_stdout_contains("You are a test agent. The robot's name is Zed.");
}

#[test]
fn test_model_error_marker_fails_the_run() {
    let env = TestEnv::new();
    let out = env.run([
        "run",
        "test-agent",
        "-m",
        "[test:error] boom",
        "-s",
        "t-err",
    ]);
    out.assert_code(1);
    assert!(
        !out.stderr().is_empty(),
        "the failure is reported\n{}",
        out.describe()
    );
    let stored = env.stored_runs("t-err");
    assert_eq!(stored.len(), 1, "{stored:#?}");
    assert_eq!(stored[0]["status"], "ERROR", "{:#}", stored[0]);
}

#[test]
fn test_model_slow_marker_can_be_interrupted() {
    let env = TestEnv::new();
    let mut running = env.spawn(["run", "test-agent", "-m", "[test:slow] hi", "-s", "t-slow"]);
    running.wait_for_stdout("Test model", FIRST_OUTPUT);
    running.interrupt();
    let out = running.wait(CANCEL_EXIT);
    out.assert_code(130);
    assert_cancelled_run(&env, "t-slow", "Test model");
}

#[test]
fn test_model_follows_an_output_schema() {
    let env = TestEnv::new();
    let out = env.run([
        "run",
        "test-agent",
        "-m",
        "hi",
        "--output-schema",
        &movie_schema().to_string(),
        "--json",
    ]);
    out.assert_success();
    let run = out.json();
    assert_eq!(run["content_type"], "MovieScript");
    let content = run["content"]
        .as_object()
        .unwrap_or_else(|| panic!("{run:#}"));
    let mut fields: Vec<&str> = content.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["characters", "name", "year"], "{run:#}");
    assert!(content["year"].is_i64(), "{run:#}");
}

// ---------------------------------------------------------------------------------------
// agentos agents

#[test]
fn agents_lists_every_id() {
    let fake = FakeModel::start();
    let env = TestEnv::with_fake(&fake);
    let out = env.run(["agents"]);
    out.assert_success();
    let ids: Vec<String> = out
        .stdout()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect();
    assert_eq!(
        ids,
        [
            "story-writer",
            "user-writer",
            "movie-script",
            "test-agent",
            "echo"
        ],
        "{}",
        out.describe()
    );
    let list = env.run(["agents", "list"]);
    list.assert_success();
    assert_eq!(list.stdout(), out.stdout());
}

#[test]
fn agents_show_prints_the_instructions() {
    let fake = FakeModel::start();
    let env = TestEnv::with_fake(&fake);
    let out = env.run(["agents", "show", "story-writer"]);
    out.assert_success()
        .assert_stdout_contains("Story Writer")
        .assert_stdout_contains(crate::util::STORY_INSTRUCTIONS)
        .assert_stdout_contains("fake:gpt-4o-mini");

    let out = env.run(["agents", "show", "echo"]);
    out.assert_success()
        .assert_stdout_contains("Line one of echo's instructions.")
        .assert_stdout_contains("Line two.");

    env.run(["agents", "show", "nope"])
        .assert_code(2)
        .assert_stderr_contains("nope");

    // Everything about one agent: its tools, dependencies, fallbacks and limits too.
    env.write_config(
        "[tools.clock]\ndescription = \"Time.\"\ncommand = [\"date\"]\n\n\
         [[agents]]\nid = \"full\"\nmodel = \"test\"\ntools = [\"clock\"]\n\
         tool_call_limit = 3\nmax_answer_bytes = 1000\nfallback_models = [\"openai:gpt-4o-mini\"]\n\
         dependencies = { robot_name = \"Anna\" }\n",
    );
    env.run(["agents", "show", "full"])
        .assert_success()
        .assert_stdout_contains("tools:        clock\n")
        .assert_stdout_contains("tool_call_limit: 3\n")
        .assert_stdout_contains("max_answer_bytes: 1000\n")
        .assert_stdout_contains("fallbacks:    openai:gpt-4o-mini\n")
        .assert_stdout_contains("dependencies: {\"robot_name\":\"Anna\"}\n");
}

// ---------------------------------------------------------------------------------------
// agentos sessions

#[test]
fn sessions_list_show_rename_delete() {
    let env = TestEnv::new();
    let first = env.run([
        "run",
        "test-agent",
        "-m",
        "hello there",
        "-s",
        "sess-a",
        "-u",
        "alice",
    ]);
    first.assert_success();
    env.run(["run", "echo", "-m", "second", "-s", "sess-b"])
        .assert_success();

    // list --json: one line per session.
    let sessions = env.sessions();
    assert_eq!(sessions.len(), 2, "{sessions:#?}");
    let a = sessions
        .iter()
        .find(|s| s["session_id"] == "sess-a")
        .unwrap_or_else(|| panic!("sess-a not listed: {sessions:#?}"));
    for key in ["session_id", "agent_id", "user_id", "session_name", "runs"] {
        assert!(a.get(key).is_some(), "missing {key}: {a:#}");
    }
    assert_eq!(a["agent_id"], "test-agent");
    assert_eq!(a["user_id"], "alice");
    assert_eq!(a["runs"], 1);

    // Filters.
    let out = env.run(["sessions", "list", "--json", "--agent", "echo"]);
    out.assert_success();
    let only: Vec<Value> = out.json_lines();
    assert_eq!(only.len(), 1, "{only:#?}");
    assert_eq!(only[0]["session_id"], "sess-b");
    let out = env.run(["sessions", "list", "--json", "-u", "alice"]);
    out.assert_success();
    let only: Vec<Value> = out.json_lines();
    assert_eq!(only.len(), 1, "{only:#?}");
    assert_eq!(only[0]["session_id"], "sess-a");

    // The table.
    env.run(["sessions", "list"])
        .assert_success()
        .assert_stdout_contains("sess-a")
        .assert_stdout_contains("sess-b");

    // show: the conversation.
    let answer = first.stdout().trim_end().to_string();
    env.run(["sessions", "show", "sess-a"])
        .assert_success()
        .assert_stdout_contains("hello there")
        .assert_stdout_contains(&answer);

    // rename.
    env.run(["sessions", "rename", "sess-a", "My first session"])
        .assert_success();
    let renamed = env.sessions();
    let a = renamed
        .iter()
        .find(|s| s["session_id"] == "sess-a")
        .unwrap_or_else(|| panic!("sess-a not listed: {renamed:#?}"));
    assert_eq!(a["session_name"], "My first session");

    // delete.
    env.run(["sessions", "delete", "sess-a"]).assert_success();
    let left: Vec<Value> = env.sessions();
    assert_eq!(left.len(), 1, "{left:#?}");
    assert_eq!(left[0]["session_id"], "sess-b");
    let out = env.run(["sessions", "show", "sess-a"]);
    assert_ne!(out.code(), Some(0), "{}", out.describe());
    out.assert_stderr_contains("not found");
    let out = env.run(["sessions", "delete", "sess-a"]);
    assert_ne!(out.code(), Some(0), "{}", out.describe());
    let out = env.run(["sessions", "rename", "sess-a", "x"]);
    assert_ne!(out.code(), Some(0), "{}", out.describe());
}

#[test]
fn sessions_show_json_lists_the_stored_runs() {
    let env = TestEnv::new();
    env.run(["run", "test-agent", "-m", "one", "-s", "s-json"])
        .assert_success();
    env.run(["run", "test-agent", "-m", "two", "-s", "s-json"])
        .assert_success();
    let runs = env.stored_runs("s-json");
    assert_eq!(runs.len(), 2, "{runs:#?}");
    let inputs: Vec<&Value> = runs.iter().map(|r| &r["input"]["input_content"]).collect();
    assert_eq!(inputs, [&json!("one"), &json!("two")]);
    for run in &runs {
        assert_eq!(run["status"], "COMPLETED");
        assert_eq!(run["session_id"], "s-json");
        assert_eq!(run["agent_id"], "test-agent");
    }
}

/// A pipe whose reading end is already closed (`agentos … | true`, with `true` gone), for
/// a command's stdout: its first write fails with EPIPE.
fn closed_pipe() -> std::process::Stdio {
    let mut reader = std::process::Command::new("true")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("spawn true");
    let write_end = reader.stdin.take().expect("piped stdin");
    reader.wait().expect("true exits");
    std::process::Stdio::from(write_end)
}

#[test]
fn every_command_takes_a_closed_stdout_quietly() {
    let env = TestEnv::new();
    let run = env.run(["run", "test-agent", "-m", "hi", "-s", "closed-1", "--json"]);
    run.assert_success();
    let run_id = run.json()["run_id"].as_str().expect("run_id").to_string();
    let cases: [&[&str]; 6] = [
        &["check"],
        &["agents"],
        &["runs", "follow", &run_id],
        &["runs", "list"],
        &["sessions", "list"],
        &["sessions", "rename", "closed-1", "Renamed"],
    ];
    for args in cases {
        let out = env
            .cmd(args)
            .stdout(closed_pipe())
            .stderr(std::process::Stdio::piped())
            .output()
            .expect("run agentos");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    // What the command did still happened.
    let sessions = env.sessions();
    assert_eq!(sessions[0]["session_name"], "Renamed", "{sessions:?}");
}

#[test]
fn listing_limits_start_at_one() {
    let env = TestEnv::new();
    for command in [["sessions", "list"], ["runs", "list"]] {
        let out = env.run([command[0], command[1], "-n", "0"]);
        out.assert_code(2);
        out.assert_stderr_contains("0 is not in 1..");
    }
    env.run(["run", "test-agent", "-m", "hi"]).assert_success();
    env.run(["run", "test-agent", "-m", "hi again"])
        .assert_success();
    let one = env.run(["sessions", "list", "-n", "1", "--json"]);
    one.assert_success();
    assert_eq!(one.json_lines().len(), 1, "{}", one.describe());
}

#[test]
fn a_session_of_another_user_is_named_as_such() {
    let env = TestEnv::new();
    env.run([
        "run",
        "test-agent",
        "-m",
        "hi",
        "-s",
        "owned",
        "-u",
        "alice",
    ])
    .assert_success();
    let out = env.run(["run", "test-agent", "-m", "hi", "-s", "owned", "-u", "bob"]);
    out.assert_code(2);
    out.assert_stderr_contains("session 'owned' belongs to another user");
    // Its owner carries on.
    env.run([
        "run",
        "test-agent",
        "-m",
        "more",
        "-s",
        "owned",
        "-u",
        "alice",
    ])
    .assert_success();
    assert_eq!(env.stored_runs("owned").len(), 2);
}

#[test]
fn a_store_that_cannot_be_opened_is_named_once_with_the_reason() {
    let env = TestEnv::new();
    let file = env.write_file("not-a-dir", "x");
    let db = file.join("agentos.db");
    let out = env.run([
        "--db",
        db.to_str().unwrap(),
        "run",
        "test-agent",
        "-m",
        "hi",
    ]);
    out.assert_code(1);
    let stderr = out.stderr();
    let expected = format!(
        "agentos: could not open database {}: cannot create its directory {}: ",
        db.display(),
        file.display(),
    );
    assert!(stderr.starts_with(&expected), "{}", out.describe());
    // One line, the database named once: no chain of causes repeating each other.
    assert_eq!(stderr.trim().lines().count(), 1, "{}", out.describe());
    assert_eq!(stderr.matches(db.to_str().unwrap()).count(), 1, "{stderr}");
}

#[test]
fn looking_at_a_database_that_does_not_exist_creates_nothing() {
    let env = TestEnv::new();
    let db = env.path().join("typo").join("agentos.db");
    let db_arg = db.to_str().unwrap();
    for args in [
        vec!["sessions", "list"],
        vec!["runs", "list"],
        vec!["runs", "list", "--json"],
    ] {
        let mut all = vec!["--db", db_arg];
        all.extend(args.iter().copied());
        let out = env.run(&all);
        // Quietly empty (the note is for a person at a terminal).
        out.assert_success();
        let listed = out.stdout();
        assert!(
            listed.is_empty() || listed.trim() == "no runs" || listed.trim() == "[]",
            "{}",
            out.describe()
        );
    }
    let out = env.run(["--db", db_arg, "cancel", "some-run"]);
    out.assert_code(1);
    assert!(!db.parent().unwrap().exists(), "nothing was created");
    // A run creates it, and then it is read as usual.
    env.run(["--db", db_arg, "run", "test-agent", "-m", "hi"])
        .assert_success();
    let out = env.run(["--db", db_arg, "runs", "list"]);
    out.assert_success();
    assert!(out.stdout().contains("COMPLETED"), "{}", out.describe());
}
