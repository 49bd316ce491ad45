//! Teams and workflows from the terminal: `agentos run <team-or-workflow-id>` with the
//! offline `test` model, its answer on stdout, `--json` and `--jsonl`, the stored runs and
//! a continued session.

use serde_json::Value;

use crate::util::TestEnv;

const CONFIG: &str = r#"
[[agents]]
id = "writer"
name = "Writer"
model = "test"
instructions = "You write."

[[agents]]
id = "checker"
name = "Checker"
model = "test"
instructions = "You check."

[providers.down]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"

[[agents]]
id = "broken"
name = "Broken"
model = "down:gpt-4o-mini"

[[teams]]
id = "shaky"
model = "test"
members = ["broken", "writer"]

[[teams]]
id = "crew"
name = "Crew"
model = "test"
instructions = "Delegate."
members = ["writer", "checker"]
add_history_to_context = true
"#;

fn env() -> TestEnv {
    let env = TestEnv::new();
    env.write_config(CONFIG);
    env
}

#[test]
fn a_team_answers_on_stdout_and_stores_member_runs() {
    let env = env();
    let out = env.run([
        "run",
        "crew",
        "-m",
        "checker: verify this",
        "--session",
        "t1",
    ]);
    out.assert_success();
    let stdout = out.stdout();
    assert!(
        stdout.starts_with("Tool results: delegate_task_to_member: Test model reply to \"checker: verify this\". Instructions: \"You check.\""),
        "only the leader's answer is printed: {stdout}"
    );
    assert_eq!(stdout.matches("Test model reply").count(), 1, "{stdout}");
    let runs = env.stored_runs("t1");
    assert_eq!(runs.len(), 2, "{runs:#?}");
    let team = runs
        .iter()
        .find(|r| r["team_id"] == "crew")
        .expect("team run");
    let member = runs
        .iter()
        .find(|r| r["agent_id"] == "checker")
        .expect("member run");
    assert_eq!(member["parent_run_id"], team["run_id"]);
    assert_eq!(team["member_responses"][0]["run_id"], member["run_id"]);
    let sessions = env.sessions();
    let session = sessions
        .iter()
        .find(|s| s["session_id"] == "t1")
        .expect("session");
    assert_eq!(session["session_type"], "team", "{session}");

    // The session goes on: the leader sees its earlier exchange.
    let out = env.run([
        "run",
        "crew",
        "-m",
        "writer: and now a poem",
        "--session",
        "t1",
        "--json",
    ]);
    out.assert_success();
    let run = out.json();
    assert_eq!(run["team_id"], "crew");
    assert_eq!(run["status"], "COMPLETED");
    assert_eq!(run["member_responses"][0]["agent_id"], "writer");
    let system_and_history: Vec<&str> = run["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["role"].as_str())
        .collect();
    assert_eq!(system_and_history[0], "system");
    assert_eq!(env.stored_runs("t1").len(), 4);
}

#[test]
fn jsonl_shows_team_and_member_events() {
    let env = env();
    let out = env.run(["run", "crew", "-m", "writer: hi", "--jsonl"]);
    out.assert_success();
    let events = out.json_lines();
    let names: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(names.first(), Some(&"TeamRunStarted"));
    assert_eq!(names.last(), Some(&"TeamRunCompleted"));
    let team_run = events[0]["run_id"].clone();
    let member: Vec<&Value> = events
        .iter()
        .filter(|e| e["agent_id"] == "writer")
        .collect();
    assert!(!member.is_empty());
    assert!(member.iter().all(|e| e["parent_run_id"] == team_run));
    assert!(names.contains(&"TeamToolCallCompleted"));
}

#[test]
fn a_failing_member_becomes_a_tool_error_the_leader_sees() {
    let env = env();
    let out = env.run(["run", "shaky", "-m", "broken: please", "--json"]);
    out.assert_success();
    let run = out.json();
    assert_eq!(run["status"], "COMPLETED");
    assert_eq!(run["tools"][0]["tool_call_error"], true);
    let result = run["tools"][0]["result"].as_str().unwrap();
    assert!(result.starts_with("Member 'Broken' failed:"), "{result}");
    assert_eq!(run["member_responses"][0]["status"], "ERROR");
    let content = run["content"].as_str().unwrap();
    assert!(content.contains("Member 'Broken' failed:"), "{content}");
}

#[test]
fn a_failing_leader_fails_the_team_run() {
    let env = env();
    let out = env.run(["run", "crew", "-m", "[test:error] hi", "--session", "e1"]);
    out.assert_code(1);
    out.assert_stderr_contains("test model error (HTTP 500)");
    let runs = env.stored_runs("e1");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["team_id"], "crew");
    assert_eq!(runs[0]["status"], "ERROR");
}

#[test]
fn an_unknown_id_names_agents_teams_and_workflows() {
    let env = env();
    let out = env.run(["run", "nobody", "-m", "hi"]);
    out.assert_code(2);
    out.assert_stderr_contains("nobody");
}

#[test]
fn flags_that_name_nothing_usable_are_refused_up_front() {
    let env = TestEnv::new();
    env.write_config(&format!(
        "{CONFIG}\n[[workflows]]\nid = \"flow\"\n[[workflows.steps]]\nname = \"write\"\nagent = \"writer\"\n"
    ));
    // The workflow itself runs.
    env.run(["run", "flow", "-m", "hi"]).assert_success();
    for flags in [
        ["--model", "test"],
        ["--output-schema", r#"{"type":"object"}"#],
    ] {
        let out = env.run(["run", "flow", "-m", "hi", flags[0], flags[1]]);
        out.assert_code(2);
        out.assert_stderr_contains(&format!("{} does not apply to workflow `flow`", flags[0]));
    }
    // A bad --model is the flag's fault, not the agents file's.
    let out = env.run(["run", "writer", "-m", "hi", "--model", "gpt4"]);
    out.assert_code(2);
    out.assert_stderr_contains("--model: `gpt4` is not a model reference");
    assert!(!out.stderr().contains("agents.toml"), "{}", out.describe());
    let out = env.run(["run", "writer", "-m", "hi", "--model", "nosuch:x"]);
    out.assert_code(2);
    out.assert_stderr_contains("--model: unknown provider `nosuch`");
    // Nothing was stored for the refused runs: one session, the workflow's.
    assert_eq!(env.sessions().len(), 1);
    // --json prints the object the API answers, key for key (capture 300).
    let out = env.run(["run", "flow", "-m", "hi", "-u", "user-1", "--json"]);
    out.assert_success();
    assert_eq!(
        crate::util::keys(&out.json()),
        crate::util::keys(&crate::util::capture_body(
            "300_workflow_run_nonstream.http"
        )),
        "{}",
        out.describe()
    );
    // Empty ids are no ids, as over HTTP: a new session with a generated id, no user.
    let out = env.run(["run", "writer", "-m", "hi", "-s", "", "-u", "", "--json"]);
    out.assert_success();
    let run = out.json();
    assert!(
        run["session_id"].as_str().is_some_and(|s| s.len() == 36),
        "{run}"
    );
    assert!(run["user_id"].is_null(), "{run}");
}

/// The id of the one running top-level run in `env`'s store, once there is one.
fn running_run(env: &TestEnv) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let out = env.run(["runs", "list", "--status", "running", "--json"]);
        out.assert_success();
        if let Some(id) = out.json()[0]["run_id"].as_str() {
            return id.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no run started: {}",
            out.describe()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_cancelled_run_says_so_on_stderr_and_prints_no_reason_as_its_answer() {
    let env = TestEnv::new();
    env.write_config(&format!(
        "{CONFIG}\n[[workflows]]\nid = \"flow\"\n[[workflows.steps]]\nname = \"write\"\nagent = \"writer\"\n"
    ));
    let wait = std::time::Duration::from_secs(10);
    // Ctrl-C on a workflow: no "Run … was cancelled" on stdout as if it were the answer.
    let running = env.spawn(["run", "flow", "-m", "[test:slow] a long story"]);
    let run_id = running_run(&env);
    running.interrupt();
    let out = running.wait(wait);
    out.assert_code(130);
    assert!(
        !out.stdout().contains("was cancelled"),
        "{}",
        out.describe()
    );
    out.assert_stderr_contains(&format!("agentos: run {run_id} cancelled"));

    // An agent's run cancelled from another process says so too.
    let running = env.spawn(["run", "writer", "-m", "[test:slow] a long story"]);
    let run_id = running_run(&env);
    env.run(["cancel", &run_id]).assert_success();
    let out = running.wait(wait);
    out.assert_code(130);
    out.assert_stderr_contains(&format!("agentos: run {run_id} cancelled from elsewhere"));
}
