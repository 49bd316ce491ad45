//! Disagreements between `/openapi.json` and the server that were the server's to fix.

use crate::serve::{Server, get, post_form};

const CONFIG: &str = r#"
[[agents]]
id = "offline"
model = "test"
instructions = "You answer briefly."
add_history_to_context = true

[[teams]]
id = "crew"
model = "test"
members = ["offline"]

[[workflows]]
id = "flow"
[[workflows.steps]]
name = "write"
agent = "offline"
"#;

#[test]
fn agent_history_skips_workflow_runs_of_its_session() {
    let s = Server::start_config(CONFIG);
    let form = [
        ("message", "hello"),
        ("stream", "false"),
        ("session_id", "mixed"),
    ];
    let flow = post_form(&s.url("/workflows/flow/runs"), &form);
    assert_eq!(flow.status, 200, "{}", flow.body);
    assert_eq!(flow.json()["status"], "COMPLETED");
    // The agent keeps history; the session's workflow run has no messages of its own.
    let agent = post_form(&s.url("/agents/offline/runs"), &form);
    assert_eq!(agent.status, 200, "{}", agent.body);
    assert_eq!(agent.json()["status"], "COMPLETED");
}

#[test]
fn resume_takes_the_largest_event_index() {
    let s = Server::start_config(CONFIG);
    let run = post_form(
        &s.url("/agents/offline/runs"),
        &[
            ("message", "hello"),
            ("stream", "true"),
            ("background", "true"),
            ("run_id", "bg-1"),
        ],
    );
    assert_eq!(run.status, 200);
    let frames = run.events();
    assert!(frames.len() > 2, "{}", run.body);
    let resumed = post_form(
        &s.url("/agents/offline/runs/bg-1/resume"),
        &[("last_event_index", &i64::MAX.to_string())],
    );
    assert_eq!(resumed.status, 200, "{}", resumed.body);
    let events = resumed.events();
    assert_eq!(events.len(), 1, "{}", resumed.body);
    assert_eq!(events[0].0, "replay");
    assert_eq!(events[0].1["total_events"], 0);
}

#[test]
fn empty_session_id_gets_a_generated_one() {
    let s = Server::start_config(CONFIG);
    let created = crate::serve::send_json(
        "POST",
        &s.url("/sessions"),
        &serde_json::json!({"session_id": ""}),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.json()["session_id"]
        .as_str()
        .expect("session_id")
        .to_string();
    assert_eq!(id.len(), 36, "a generated id: {id}");
    assert_eq!(get(&s.url(&format!("/sessions/{id}"))).status, 200);
}
