//! `agentos serve`'s session endpoints (`/sessions…`, `/agents/{id}/runs…`), its server
//! limits and the session shared with the CLI, through the real binary on port 0 against
//! the fake model. Answers are compared with the captures of a real AgentOS: same status,
//! same key sets (ids and times differ), whole bodies where the capture is deterministic.

use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fake_model::{messages, text_of};
use crate::serve::{
    Server, agent, assert_same_keys, capture_json, capture_status, get, post_form, send_json,
    stream_until,
};
use crate::util::{COMMAND_TIMEOUT, Running};

/// Bound for a condition the server should reach promptly (a slot freed, a run stored).
const SOON: Duration = Duration::from_secs(10);

/// Runs `story-writer` without streaming in `session_id` for `user_id`; returns the run.
#[track_caller]
fn run_story(s: &Server, session_id: &str, user_id: Option<&str>, message: &str) -> Value {
    run_agent(s, "story-writer", session_id, user_id, message)
}

#[track_caller]
fn run_agent(
    s: &Server,
    agent_id: &str,
    session_id: &str,
    user_id: Option<&str>,
    message: &str,
) -> Value {
    let mut fields = vec![
        ("message", message),
        ("stream", "false"),
        ("session_id", session_id),
    ];
    if let Some(user) = user_id {
        fields.push(("user_id", user));
    }
    let a = post_form(&s.url(&format!("/agents/{agent_id}/runs")), &fields);
    assert_eq!(a.status, 200, "{}", a.body);
    let v = a.json();
    assert_eq!(v["status"], "COMPLETED", "{v}");
    v
}

/// A streamed `story-writer` run in `session_id`; returns its run id.
#[track_caller]
fn stream_story(s: &Server, session_id: &str, user_id: &str, message: &str) -> String {
    let a = post_form(
        &s.url("/agents/story-writer/runs"),
        &[
            ("message", message),
            ("session_id", session_id),
            ("user_id", user_id),
        ],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let events = a.events();
    assert_eq!(events.last().map(|(n, _)| n.as_str()), Some("RunCompleted"));
    events[0].1["run_id"].as_str().expect("run id").to_string()
}

fn run_id(run: &Value) -> String {
    run["run_id"].as_str().expect("run_id").to_string()
}

/// The `session_id`s of a `GET /sessions` answer, in order.
fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data list: {list}"))
        .iter()
        .map(|s| s["session_id"].as_str().unwrap_or("").to_string())
        .collect()
}

/// `v` without the top-level `keys`.
fn without(v: &Value, keys: &[&str]) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        for k in keys {
            m.remove(*k);
        }
    }
    v
}

/// A whole-body comparison with a deterministic capture, status included.
#[track_caller]
fn assert_capture(a: &crate::serve::Answer, name: &str) {
    assert_eq!(a.status, capture_status(name), "{name}: {}", a.body);
    assert_eq!(a.json(), capture_json(name), "{name}");
}

/// A FastAPI-style validation error on query parameter `param`.
#[track_caller]
fn assert_query_422(a: &crate::serve::Answer, param: &str) {
    assert_eq!(a.status, 422, "{}", a.body);
    let v = a.json();
    let detail = v["detail"]
        .as_array()
        .unwrap_or_else(|| panic!("detail list: {v}"));
    assert_eq!(detail.len(), 1, "{v}");
    assert_eq!(detail[0]["loc"], json!(["query", param]), "{v}");
    // The item shape of FastAPI's validation errors (607, 629): `ctx` only for some types.
    let mut keys: Vec<&str> = detail[0]
        .as_object()
        .expect("detail item")
        .keys()
        .map(String::as_str)
        .filter(|k| *k != "ctx")
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["input", "loc", "msg", "type"], "{v}");
    assert!(detail[0]["msg"].is_string(), "{v}");
}

// ---------------------------------------------------------------------------------------
// GET /sessions

/// Four agent sessions, created in this order: two for user-1 and one for user-2 on
/// story-writer, one without a user on offline.
fn four_sessions(s: &Server) {
    run_story(s, "sess-a", Some("user-1"), "First story");
    run_story(s, "sess-a", Some("user-1"), "Second story");
    run_story(s, "sess-b", Some("user-1"), "Story b");
    run_story(s, "sess-c", Some("user-2"), "Story c");
    run_agent(s, "offline", "sess-o", None, "hello offline");
}

#[test]
fn sessions_list_matches_captures() {
    let s = Server::start();
    four_sessions(&s);
    let default = get(&s.url("/sessions"));
    assert_eq!(default.status, capture_status("600_sessions_list_default"));
    let ours = default.json();
    let theirs = capture_json("600_sessions_list_default");
    assert_same_keys(&ours, &theirs, &["meta"]);
    assert_eq!(
        ids(&ours),
        ["sess-o", "sess-c", "sess-b", "sess-a"],
        "newest first"
    );
    assert_eq!(
        ours["meta"],
        json!({"page": 1, "limit": 20, "total_pages": 1, "total_count": 4, "search_time_ms": 0.0})
    );
    // A session with a user and usage: as sess-story-1 in 606; one without a user: as
    // sess-bg-2 (the first of 600).
    let with_user = &ours["data"][3];
    assert_eq!(with_user["session_name"], "First story");
    assert_eq!(with_user["user_id"], "user-1");
    assert_eq!(with_user["session_type"], "agent");
    assert_eq!(with_user["metrics"]["total_tokens"], 30);
    assert_eq!(with_user["total_tokens"], 30);
    let theirs_user = capture_json("606_sessions_list_filter_user_component")["data"][1].clone();
    assert_eq!(theirs_user["session_id"], "sess-story-1");
    assert_same_keys(with_user, &theirs_user, &["metrics"]);
    assert_same_keys(
        &with_user["metrics"]["details"]["model"][0],
        &theirs_user["metrics"]["details"]["model"][0],
        &[],
    );
    let no_user = &ours["data"][0];
    assert_eq!(no_user["agent_id"], "offline");
    assert_same_keys(no_user, &theirs["data"][0], &["metrics"]);

    // ?type=agent: the same sessions, all agent sessions.
    let a = get(&s.url("/sessions?type=agent"));
    assert_eq!(a.status, capture_status("601_sessions_list_type_agent"));
    let agents = a.json();
    assert_same_keys(
        &agents,
        &capture_json("601_sessions_list_type_agent"),
        &["meta"],
    );
    assert_eq!(ids(&agents), ids(&ours));
    assert!(
        agents["data"]
            .as_array()
            .expect("data")
            .iter()
            .all(|s| s["session_type"] == "agent")
    );

    // ?type=team: no team here, an empty page.
    let a = get(&s.url("/sessions?type=team"));
    assert_eq!(a.status, capture_status("602_sessions_list_type_team"));
    let teams = a.json();
    assert_same_keys(
        &teams,
        &capture_json("602_sessions_list_type_team"),
        &["meta"],
    );
    assert_eq!(teams["data"], json!([]));
    assert_eq!(teams["meta"]["total_count"], 0);
    assert_eq!(teams["meta"]["page"], 1);

    // ?session_type= is not the parameter's name: ignored, all sessions come back (604).
    let a = get(&s.url("/sessions?session_type=team"));
    assert_eq!(
        a.status,
        capture_status("604_sessions_list_param_session_type_is_ignored")
    );
    assert_eq!(ids(&a.json()), ids(&ours));
    assert_eq!(a.json()["meta"], ours["meta"]);

    // Paging, oldest first: page 2 of 2-long pages (605).
    let a = get(&s.url("/sessions?type=agent&limit=2&page=2&sort_by=created_at&sort_order=asc"));
    assert_eq!(
        a.status,
        capture_status("605_sessions_list_paged_limit2_page2_asc")
    );
    let page = a.json();
    let theirs_page = capture_json("605_sessions_list_paged_limit2_page2_asc");
    assert_same_keys(&page, &theirs_page, &["meta"]);
    assert_same_keys(&page["data"][0], &theirs_page["data"][0], &["metrics"]);
    assert_eq!(ids(&page), ["sess-c", "sess-o"]);
    assert_eq!(
        page["meta"],
        json!({"page": 2, "limit": 2, "total_pages": 2, "total_count": 4, "search_time_ms": 0.0})
    );
    let a = get(&s.url("/sessions?type=agent&limit=2&page=1&sort_order=asc"));
    assert_eq!(ids(&a.json()), ["sess-a", "sess-b"]);

    // Filters: user and component (606).
    let a = get(&s.url("/sessions?type=agent&user_id=user-1&component_id=story-writer"));
    assert_eq!(
        a.status,
        capture_status("606_sessions_list_filter_user_component")
    );
    let filtered = a.json();
    assert_same_keys(
        &filtered,
        &capture_json("606_sessions_list_filter_user_component"),
        &["meta"],
    );
    assert_eq!(ids(&filtered), ["sess-b", "sess-a"]);
    assert_eq!(filtered["meta"]["total_count"], 2);
    assert_eq!(
        ids(&get(&s.url("/sessions?user_id=user-2")).json()),
        ["sess-c"]
    );
    assert_eq!(
        ids(&get(&s.url("/sessions?component_id=offline")).json()),
        ["sess-o"]
    );
    assert_eq!(
        ids(&get(&s.url("/sessions?user_id=user-2&component_id=offline")).json()),
        Vec::<String>::new()
    );

    // A trailing slash is the same route (631).
    let slash = get(&s.url("/sessions/?limit=1"));
    assert_eq!(
        slash.status,
        capture_status("631_sessions_list_trailing_slash")
    );
    let plain = get(&s.url("/sessions?limit=1"));
    assert_eq!(slash.json(), plain.json());
    assert_same_keys(
        &slash.json(),
        &capture_json("631_sessions_list_trailing_slash"),
        &["meta"],
    );
    assert_eq!(ids(&slash.json()), ["sess-o"]);
    assert_eq!(slash.json()["meta"]["total_pages"], 4);
}

#[test]
fn sessions_list_rejects_bad_queries() {
    let s = Server::start();
    // The same whole bodies as AgentOS's validation errors.
    assert_capture(
        &get(&s.url("/sessions?type=bogus")),
        "607_sessions_list_bad_type_422",
    );
    assert_capture(
        &get(&s.url("/sessions?limit=0")),
        "629_sessions_list_limit0_422",
    );
    // Deliberate differences (README): AgentOS answers page=0 with a 500 (630) and ignores
    // an unknown sort_by (628); agentos rejects both as validation errors.
    assert_eq!(capture_status("630_sessions_list_page0_500"), 500);
    let a = get(&s.url("/sessions?page=0&limit=2"));
    assert_query_422(&a, "page");
    assert_eq!(
        capture_status("628_sessions_list_sort_by_unknown_field"),
        200
    );
    let a = get(&s.url("/sessions?sort_by=bogus&limit=2"));
    assert_query_422(&a, "sort_by");
    assert_eq!(a.json()["detail"][0]["input"], "bogus");
    let a = get(&s.url("/sessions?sort_order=sideways"));
    assert_query_422(&a, "sort_order");
    let a = get(&s.url("/sessions?limit=abc"));
    assert_query_422(&a, "limit");
    assert_eq!(a.json()["detail"][0]["type"], "int_parsing");
}

// ---------------------------------------------------------------------------------------
// GET /sessions/{id}

#[test]
fn session_detail_matches_captures() {
    let s = Server::start();
    run_story(
        &s,
        "sess-story-1",
        Some("user-1"),
        "Tell me a story about a robot",
    );
    run_story(&s, "sess-story-1", Some("user-1"), "Tell me another story");
    let theirs = capture_json("608_session_get_agent");
    for (path, capture_name) in [
        ("/sessions/sess-story-1", "608_session_get_agent"),
        (
            "/sessions/sess-story-1?type=agent",
            "609_session_get_agent_typed",
        ),
    ] {
        let a = get(&s.url(path));
        assert_eq!(a.status, capture_status(capture_name), "{path}: {}", a.body);
        let ours = a.json();
        assert_same_keys(
            &ours,
            &capture_json(capture_name),
            &["agent_data", "metrics"],
        );
        assert_same_keys(
            &ours["agent_data"]["model"],
            &theirs["agent_data"]["model"],
            &[],
        );
        assert_eq!(ours["session_id"], "sess-story-1");
        assert_eq!(ours["agent_session_id"], "sess-story-1");
        assert_eq!(ours["user_id"], "user-1");
        assert_eq!(ours["agent_id"], "story-writer");
        assert_eq!(ours["session_name"], theirs["session_name"]);
        assert_eq!(ours["agent_data"]["name"], "Story Writer");
        assert_eq!(ours["agent_data"]["model"]["id"], "gpt-4o-mini");
        assert_eq!(ours["total_tokens"], 30);
        // The chat history: both runs' turns, no system message.
        let history = ours["chat_history"].as_array().expect("chat_history");
        let roles: Vec<&str> = history.iter().filter_map(|m| m["role"].as_str()).collect();
        assert_eq!(roles, ["user", "assistant", "user", "assistant"]);
        assert_eq!(history[2]["content"], "Tell me another story");
        assert_eq!(history[3]["content"], theirs["chat_history"][3]["content"]);
        assert_same_keys(&history[0], &theirs["chat_history"][0], &[]);
        assert_same_keys(&history[1], &theirs["chat_history"][1], &["provider_data"]);
        assert!(
            ours["created_at"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z'))
        );
        // GET drops nulls (608), unlike PATCH and rename.
        assert!(ours.get("session_summary").is_none() && ours.get("metadata").is_none());
    }

    let a = get(&s.url("/sessions/no-such-session"));
    assert_capture(&a, "612_session_get_unknown_404");

    // Deliberate difference (README): AgentOS renders an agent session asked for with
    // ?type=team in the team schema (633, 200); agentos answers 404.
    assert_eq!(
        capture_status("633_session_get_agent_session_with_type_team_200"),
        200
    );
    let a = get(&s.url("/sessions/sess-story-1?type=team"));
    assert_eq!(a.status, 404, "{}", a.body);
    assert!(
        a.json()["detail"]
            .as_str()
            .is_some_and(|d| d.contains("sess-story-1"))
    );
    let a = get(&s.url("/sessions/sess-story-1?type=bogus"));
    assert_query_422(&a, "type");
}

// ---------------------------------------------------------------------------------------
// GET /sessions/{id}/runs, /run-previews, /runs/{run_id}

#[test]
fn session_runs_match_captures() {
    let s = Server::start();
    let first = run_story(
        &s,
        "sess-story-1",
        Some("user-1"),
        "Tell me a story about a robot",
    );
    let first_id = run_id(&first);
    let streamed_id = stream_story(&s, "sess-story-1", "user-1", "Tell me another story");

    let a = get(&s.url("/sessions/sess-story-1/runs"));
    assert_eq!(a.status, capture_status("613_session_runs_agent"));
    let runs = a.json();
    let list = runs.as_array().expect("a bare list");
    assert_eq!(list.len(), 2);
    assert_eq!(run_id(&list[0]), first_id);
    assert_eq!(run_id(&list[1]), streamed_id);
    let theirs = capture_json("613_session_runs_agent");
    // The streamed run against the capture's streamed run (nulls dropped, events kept).
    assert_eq!(theirs[1]["run_input"], "Tell me another story");
    assert_same_keys(&list[1], &theirs[1], &["metrics", "input_media"]);
    // The non-streamed run against the capture's: AgentOS keeps no events for it.
    // BUG (reported): agentos stores and lists the events of non-streamed runs too.
    assert_eq!(theirs[0]["run_input"], "Tell me a story about a robot");
    assert_same_keys(
        &without(&list[0], &["events"]),
        &theirs[0],
        &["metrics", "input_media"],
    );
    assert_eq!(list[0]["run_input"], "Tell me a story about a robot");
    assert_eq!(list[0]["content"], theirs[0]["content"]);
    assert_eq!(list[0]["status"], "COMPLETED");
    assert_eq!(list[0]["parent_run_id"], "");
    assert_eq!(list[0]["run_response_format"], "text");
    assert!(
        list[0]["created_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    let msgs = list[0]["messages"].as_array().expect("messages");
    assert_eq!(msgs.len(), 3, "system, user, assistant");
    assert_same_keys(
        &msgs[2],
        &theirs[0]["messages"][2],
        &["metrics", "provider_data"],
    );

    // ?status= filters, case-insensitively (627); an unknown status is a 400.
    for q in ["completed", "COMPLETED", "completed&status=cancelled"] {
        let a = get(&s.url(&format!("/sessions/sess-story-1/runs?status={q}")));
        assert_eq!(a.status, 200, "{q}: {}", a.body);
        assert_eq!(a.json().as_array().map(Vec::len), Some(2), "{q}");
    }
    let a = get(&s.url("/sessions/sess-story-1/runs?status=cancelled"));
    assert_eq!(a.status, capture_status("627_session_runs_status_filter"));
    assert_eq!(a.json(), json!([]));
    let a = get(&s.url("/sessions/sess-story-1/runs?status=bogus"));
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(
        a.json()["detail"]
            .as_str()
            .is_some_and(|d| d.contains("BOGUS")),
        "{}",
        a.body
    );

    assert_capture(
        &get(&s.url("/sessions/no-such-session/runs")),
        "618_session_runs_unknown_404",
    );

    // Previews (616).
    let a = get(&s.url("/sessions/sess-story-1/run-previews"));
    assert_eq!(a.status, capture_status("616_session_run_previews"));
    let previews = a.json();
    let theirs = capture_json("616_session_run_previews");
    assert_eq!(previews.as_array().map(Vec::len), Some(2));
    for (ours, theirs) in previews
        .as_array()
        .expect("list")
        .iter()
        .zip(theirs.as_array().expect("list"))
    {
        assert_same_keys(ours, theirs, &[]);
        assert_eq!(ours["run_input"], theirs["run_input"]);
        assert_eq!(ours["content_preview"], theirs["content_preview"]);
    }
    assert_eq!(run_id(&previews[0]), first_id);

    // One run, nulls included (617).
    let a = get(&s.url(&format!("/sessions/sess-story-1/runs/{first_id}")));
    assert_eq!(a.status, capture_status("617_session_get_run"));
    let ours = a.json();
    let theirs = capture_json("617_session_get_run");
    assert_same_keys(&ours, &theirs, &["metrics", "input_media"]);
    for key in [
        "cancellation_stage",
        "metadata",
        "tools",
        "citations",
        "response_audio",
        "followups",
        "forked_from_run_id",
        "regenerated_from",
        "last_checkpoint_at_message_index",
    ] {
        assert_eq!(ours[key], Value::Null, "{key} is null, as in 617");
    }
    assert_eq!(ours["content"], theirs["content"]);
    assert_eq!(ours["run_input"], theirs["run_input"]);

    assert_capture(
        &get(&s.url("/sessions/sess-story-1/runs/no-such-run")),
        "632_session_get_run_unknown_run_404",
    );
}

// ---------------------------------------------------------------------------------------
// POST/PATCH/rename/DELETE

#[test]
fn session_create_update_rename_delete() {
    let s = Server::start();
    let a = send_json(
        "POST",
        &s.url("/sessions?type=agent"),
        &json!({"session_id": "sess-created-1", "session_name": "Pre-created",
                "session_state": {"x": 1}, "agent_id": "story-writer", "user_id": "user-9"}),
    );
    assert_eq!(a.status, capture_status("621_session_create"), "{}", a.body);
    let ours = a.json();
    let theirs = capture_json("621_session_create");
    assert_same_keys(&ours, &theirs, &[]);
    assert_eq!(
        without(&ours, &["created_at", "updated_at"]),
        without(&theirs, &["created_at", "updated_at"])
    );
    let a = send_json(
        "POST",
        &s.url("/sessions?type=agent"),
        &json!({"session_id": "sess-created-1"}),
    );
    assert_capture(&a, "622_session_create_conflict_409");
    // The created session is listed and readable.
    assert_eq!(
        ids(&get(&s.url("/sessions?user_id=user-9")).json()),
        ["sess-created-1"]
    );
    assert_eq!(
        get(&s.url("/sessions/sess-created-1")).json()["session_state"],
        json!({"x": 1})
    );

    // Rename, then PATCH, a session with runs (619, 620): nulls kept.
    run_story(
        &s,
        "sess-story-1",
        Some("user-1"),
        "Tell me a story about a robot",
    );
    let a = send_json(
        "POST",
        &s.url("/sessions/sess-story-1/rename"),
        &json!({"session_name": "Renamed story session"}),
    );
    assert_eq!(a.status, capture_status("619_session_rename"), "{}", a.body);
    let renamed = a.json();
    assert_same_keys(
        &renamed,
        &capture_json("619_session_rename"),
        &["agent_data", "metrics"],
    );
    assert_eq!(renamed["session_name"], "Renamed story session");
    assert_eq!(renamed["session_summary"], Value::Null);
    assert_eq!(renamed["metadata"], Value::Null);
    assert_eq!(renamed["chat_history"].as_array().map(Vec::len), Some(2));

    let a = send_json(
        "PATCH",
        &s.url("/sessions/sess-story-1"),
        &json!({"session_state": {"patched": true}, "metadata": {"k": "v"}}),
    );
    assert_eq!(a.status, capture_status("620_session_patch"), "{}", a.body);
    let patched = a.json();
    let theirs = capture_json("620_session_patch");
    assert_same_keys(&patched, &theirs, &["agent_data", "metrics"]);
    assert_eq!(patched["session_summary"], Value::Null);
    assert_eq!(patched["session_state"], theirs["session_state"]);
    assert_eq!(patched["metadata"], theirs["metadata"]);
    assert_eq!(patched["session_name"], theirs["session_name"]);
    // Stored: the list shows the new name, state and metadata.
    let listed = get(&s.url("/sessions?user_id=user-1")).json();
    assert_eq!(listed["data"][0]["session_name"], "Renamed story session");
    assert_eq!(listed["data"][0]["session_state"], json!({"patched": true}));
    assert_eq!(listed["data"][0]["metadata"], json!({"k": "v"}));

    // Delete (623), then it is gone (624); unknown ids are a 204 too (625).
    let a = send_del(&s.url("/sessions/sess-created-1"));
    assert_eq!(a.0, capture_status("623_session_delete"));
    assert_eq!(a.1, "");
    assert_capture(
        &get(&s.url("/sessions/sess-created-1")),
        "624_session_get_after_delete_404",
    );
    let a = send_del(&s.url("/sessions/no-such-session"));
    assert_eq!(a.0, capture_status("625_session_delete_unknown"));

    // Bulk delete (626): runs go with their session.
    run_story(&s, "sess-bad-1", None, "hi");
    run_story(&s, "sess-keep", None, "keep me");
    let a = send_json(
        "DELETE",
        &s.url("/sessions"),
        &json!({"session_ids": ["sess-bad-1", "sess-story-1"], "session_types": ["agent", "agent"]}),
    );
    assert_eq!(
        a.status,
        capture_status("626_sessions_bulk_delete"),
        "{}",
        a.body
    );
    assert_eq!(a.body, "");
    assert_eq!(ids(&get(&s.url("/sessions")).json()), ["sess-keep"]);
    assert_eq!(get(&s.url("/sessions/sess-bad-1/runs")).status, 404);
}

/// `DELETE url` without a body: (status, body).
fn send_del(url: &str) -> (u16, String) {
    let resp = agent().delete(url).call().expect("DELETE");
    let status = resp.status().as_u16();
    (
        status,
        resp.into_body().read_to_string().unwrap_or_default(),
    )
}

#[test]
fn rename_wrong_method_and_malformed_bodies() {
    let s = Server::start();
    run_story(&s, "sess-r", None, "a story");
    // Wrong method: 405 with allow, as AgentOS's 411/144.
    let a = get(&s.url("/sessions/sess-r/rename"));
    assert_eq!(a.status, 405, "{}", a.body);
    assert_eq!(a.json(), capture_json("144_agent_cancel_with_get_405"));
    assert_eq!(a.header("allow"), Some("POST"));
    // Rename of an unknown session is a 404.
    let a = send_json(
        "POST",
        &s.url("/sessions/no-such-session/rename"),
        &json!({"session_name": "x"}),
    );
    assert_eq!(a.status, 404, "{}", a.body);
    assert!(a.json()["detail"].is_string());

    // Malformed multipart: 400 {"detail": "..."}.
    let url = s.url("/agents/story-writer/runs");
    for (content_type, body) in [
        (
            "multipart/form-data; boundary=XYZ",
            "--XYZ\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\nhi",
        ),
        ("multipart/form-data; boundary=XYZ", "garbage"),
        ("multipart/form-data", "garbage"),
    ] {
        let resp = agent()
            .post(&url)
            .header("Content-Type", content_type)
            .send(body.as_bytes())
            .expect("POST");
        let status = resp.status().as_u16();
        let text = resp.into_body().read_to_string().unwrap_or_default();
        assert_eq!(status, 400, "{content_type} {body:?}: {text}");
        let v: Value = serde_json::from_str(&text).expect("JSON error");
        assert!(v["detail"].is_string(), "{v}");
        assert_eq!(v.as_object().map(|m| m.len()), Some(1), "{v}");
    }
    // Nothing was run.
    assert_eq!(s.fake.request_count(), 1);
}

// ---------------------------------------------------------------------------------------
// GET /agents/{id}/runs, /agents/{id}/runs/{run_id}

#[test]
fn agent_runs_list_and_get_match_captures() {
    let s = Server::start();
    let first = run_story(
        &s,
        "sess-story-1",
        Some("user-1"),
        "Tell me a story about a robot",
    );
    let first_id = run_id(&first);
    let streamed_id = stream_story(&s, "sess-story-1", "user-1", "Tell me another story");
    run_story(&s, "sess-other", Some("user-1"), "another session");

    let a = get(&s.url("/agents/story-writer/runs?session_id=sess-story-1"));
    assert_eq!(
        a.status,
        capture_status("500_agent_list_runs"),
        "{}",
        a.body
    );
    let runs = a.json();
    let list = runs.as_array().expect("list");
    assert_eq!(list.len(), 2, "only this session's runs");
    let theirs = capture_json("500_agent_list_runs");
    // Nulls included: same keys for the non-streamed and the streamed run.
    assert_same_keys(&list[0], &theirs[0], &["metrics", "input_media"]);
    assert_same_keys(&list[1], &theirs[1], &["metrics", "input_media"]);
    assert_eq!(run_id(&list[0]), first_id);
    assert_eq!(run_id(&list[1]), streamed_id);
    assert_eq!(list[0]["tools"], Value::Null);
    assert_eq!(list[0]["cancellation_stage"], Value::Null);
    assert_eq!(
        list[1]["events"].as_array().map(|e| e.is_empty()),
        Some(false)
    );
    assert_eq!(list[1]["content"], theirs[1]["content"]);

    assert_capture(
        &get(&s.url("/agents/story-writer/runs")),
        "502_agent_list_runs_missing_session_422",
    );

    let a = get(&s.url(&format!(
        "/agents/story-writer/runs/{first_id}?session_id=sess-story-1"
    )));
    assert_eq!(a.status, capture_status("501_agent_get_run"), "{}", a.body);
    let ours = a.json();
    let theirs = capture_json("501_agent_get_run");
    // BUG (reported): agentos adds `"tools": []` here, AgentOS drops it (501).
    assert_same_keys(&without(&ours, &["tools"]), &theirs, &["metrics", "input"]);
    assert!(
        ours["created_at"].is_i64(),
        "integer seconds on run endpoints"
    );
    assert_eq!(ours["content"], theirs["content"]);
    assert_eq!(ours["input"], theirs["input"]);
    assert_eq!(ours["session_id"], "sess-story-1");
    assert_eq!(ours["messages"].as_array().map(Vec::len), Some(3));
}

/// What AgentOS does for a non-streamed run once stored (500, 501, 613, 617): no events
/// (`null`, `[]` in the polled run, absent from the null-dropping list) and no `tools` key in
/// the polled run. agentos keeps the events and adds `"tools": []`.
#[test]
fn nonstream_run_is_stored_without_events_like_agentos() {
    let s = Server::start();
    let run = run_story(
        &s,
        "sess-story-1",
        Some("user-1"),
        "Tell me a story about a robot",
    );
    let id = run_id(&run);
    let listed = get(&s.url("/sessions/sess-story-1/runs")).json();
    assert_same_keys(&listed[0], &capture_json("613_session_runs_agent")[0], &[]);
    let one = get(&s.url(&format!("/sessions/sess-story-1/runs/{id}"))).json();
    assert_eq!(one["events"], capture_json("617_session_get_run")["events"]);
    let listed = get(&s.url("/agents/story-writer/runs?session_id=sess-story-1")).json();
    assert_eq!(
        listed[0]["events"],
        capture_json("500_agent_list_runs")[0]["events"]
    );
    let polled = get(&s.url(&format!(
        "/agents/story-writer/runs/{id}?session_id=sess-story-1"
    )))
    .json();
    assert_same_keys(&polled, &capture_json("501_agent_get_run"), &[]);
    assert_eq!(polled["events"], json!([]));
}

// ---------------------------------------------------------------------------------------
// Server limits

#[test]
fn body_larger_than_the_limit_is_413() {
    let s = Server::start_with(&["--max-body-bytes", "1024"], &[]);
    let big = "x".repeat(4096);
    let a = post_form(
        &s.url("/agents/story-writer/runs"),
        &[("message", &big), ("stream", "false")],
    );
    assert_eq!(a.status, 413, "{}", a.body);
    assert!(a.json()["detail"].is_string(), "{}", a.body);
    let a = send_json(
        "POST",
        &s.url("/sessions?type=agent"),
        &json!({"session_id": "big", "session_name": big}),
    );
    assert_eq!(a.status, 413, "{}", a.body);
    assert!(a.json()["detail"].is_string(), "{}", a.body);
    assert_eq!(s.fake.request_count(), 0, "nothing ran");
    assert_eq!(get(&s.url("/sessions/big")).status, 404, "nothing stored");
    // A body under the limit still works.
    let v = run_story(&s, "sess-small", None, "small");
    assert_eq!(v["session_id"], "sess-small");
}

#[test]
fn max_runs_gives_429_until_the_run_is_cancelled() {
    let s = Server::start_with(&["--max-runs", "1"], &[]);
    let url = s.url("/agents/story-writer/runs");
    let (started_tx, started_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let stream_url = url.clone();
    std::thread::spawn(move || {
        let events = stream_until(
            &stream_url,
            &[
                ("message", "please stall"),
                ("run_id", "held-run"),
                ("session_id", "sess-held"),
            ],
            |name, _| {
                if name == "RunContent" {
                    let _ = started_tx.send(());
                }
                true
            },
        );
        let _ = done_tx.send(events);
    });
    started_rx
        .recv_timeout(SOON)
        .expect("the stalling run streamed its first content");

    // The one slot is taken: other runs, streamed or not, get a 429.
    let a = post_form(&url, &[("message", "second"), ("stream", "false")]);
    assert_eq!(a.status, 429, "{}", a.body);
    assert!(a.json()["detail"].is_string(), "{}", a.body);
    let a = post_form(&s.url("/agents/offline/runs"), &[("message", "third")]);
    assert_eq!(a.status, 429, "{}", a.body);
    // Reads are not runs.
    assert_eq!(get(&s.url("/sessions")).status, 200);

    let a = post_form(&format!("{url}/held-run/cancel"), &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    let events = done_rx.recv_timeout(SOON).expect("the held stream ended");
    assert!(
        events.iter().any(|(n, _)| n == "RunCancelled"),
        "{:?}",
        events.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );

    // The slot frees up once the cancelled run is finished.
    let deadline = Instant::now() + SOON;
    let after = loop {
        let a = post_form(
            &url,
            &[
                ("message", "after cancel"),
                ("stream", "false"),
                ("session_id", "sess-after"),
            ],
        );
        if a.status != 429 || Instant::now() > deadline {
            break a;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(after.status, 200, "{}", after.body);
    assert_eq!(after.json()["status"], "COMPLETED");
    let held = get(&s.url("/sessions/sess-held/runs/held-run")).json();
    assert_eq!(held["status"], "CANCELLED");
}

// ---------------------------------------------------------------------------------------
// One session, two front ends

/// `agentos run story-writer -s SESSION -u USER -m MESSAGE` on the server's config and db.
#[track_caller]
fn cli_run(s: &Server, session: &str, user: &str, message: &str) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_agentos"));
    cmd.args([
        "run",
        "story-writer",
        "-s",
        session,
        "-u",
        user,
        "-m",
        message,
    ])
    .env("AGENTOS_CONFIG", s.dir.path().join("agents.toml"))
    .env("AGENTOS_DB", s.db_path())
    .env("HOME", s.dir.path())
    .env("NO_COLOR", "1")
    .env_remove("OPENAI_API_KEY")
    .env_remove("OS_SECURITY_KEY")
    .stdin(Stdio::null());
    let out = Running::start(cmd).wait(COMMAND_TIMEOUT);
    out.assert_success();
    out.stdout()
}

/// `(role, text)` of a logged model request, without the system message.
fn conversation(body: &Value) -> Vec<(String, String)> {
    messages(body)
        .iter()
        .filter(|m| m["role"] != "system")
        .map(|m| {
            (
                m["role"].as_str().unwrap_or("").to_string(),
                text_of(&m["content"]),
            )
        })
        .collect()
}

fn turn(user: &str) -> [(String, String); 2] {
    [
        ("user".to_string(), user.to_string()),
        (
            "assistant".to_string(),
            format!("Story for '{user}'. Starring Default-Bot. The end."),
        ),
    ]
}

#[test]
fn session_continues_between_http_and_cli() {
    let s = Server::start();
    // Started over HTTP, continued in the CLI, then over HTTP again.
    run_story(&s, "sess-shared", Some("user-1"), "http one");
    let printed = cli_run(&s, "sess-shared", "user-1", "cli two");
    assert!(printed.contains("Story for 'cli two'"), "{printed}");
    let sent = s.fake.requests().last().cloned().expect("request");
    let mut expected: Vec<(String, String)> = turn("http one").to_vec();
    expected.push(("user".into(), "cli two".into()));
    assert_eq!(
        conversation(&sent),
        expected,
        "the CLI sent the HTTP run as history"
    );

    run_story(&s, "sess-shared", Some("user-1"), "http three");
    let sent = s.fake.requests().last().cloned().expect("request");
    let mut expected: Vec<(String, String)> = turn("http one").to_vec();
    expected.extend(turn("cli two"));
    expected.push(("user".into(), "http three".into()));
    assert_eq!(
        conversation(&sent),
        expected,
        "the server sent both runs as history"
    );

    let runs = get(&s.url("/sessions/sess-shared/runs")).json();
    let inputs: Vec<&str> = runs
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|r| r["run_input"].as_str())
        .collect();
    assert_eq!(inputs, ["http one", "cli two", "http three"]);
    assert!(
        runs.as_array()
            .expect("list")
            .iter()
            .all(|r| r["user_id"] == "user-1")
    );
    let detail = get(&s.url("/sessions/sess-shared")).json();
    assert_eq!(detail["session_name"], "http one");
    assert_eq!(detail["chat_history"].as_array().map(Vec::len), Some(6));

    // Vice versa: started in the CLI, continued over HTTP.
    cli_run(&s, "sess-from-cli", "user-2", "cli first");
    let listed = get(&s.url("/sessions?user_id=user-2")).json();
    assert_eq!(ids(&listed), ["sess-from-cli"]);
    assert_eq!(listed["data"][0]["session_name"], "cli first");
    assert_eq!(listed["data"][0]["agent_id"], "story-writer");
    run_story(&s, "sess-from-cli", Some("user-2"), "http second");
    let sent = s.fake.requests().last().cloned().expect("request");
    let mut expected: Vec<(String, String)> = turn("cli first").to_vec();
    expected.push(("user".into(), "http second".into()));
    assert_eq!(conversation(&sent), expected);
    let runs = get(&s.url("/sessions/sess-from-cli/runs")).json();
    assert_eq!(runs.as_array().map(Vec::len), Some(2));
    assert_eq!(runs[0]["run_input"], "cli first");
    assert_eq!(runs[1]["run_input"], "http second");
}

/// `--max-runs` must hold under concurrent arrivals too. agentos checks the in-flight count
/// before starting the run and admits it only after an `await`, so simultaneous requests
/// all pass the check.
#[test]
fn max_runs_holds_under_concurrent_arrivals() {
    let s = Server::start_with(&["--max-runs", "1"], &[]);
    let url = s.url("/agents/story-writer/runs");
    let (tx, rx) = mpsc::channel();
    let n = 20;
    for i in 0..n {
        let (url, tx) = (url.clone(), tx.clone());
        std::thread::spawn(move || {
            let run_id = format!("race-{i}");
            let a = post_form(
                &url,
                &[
                    ("message", "please stall"),
                    ("stream", "false"),
                    ("run_id", &run_id),
                ],
            );
            let _ = tx.send(a.status);
        });
    }
    // The refused ones answer at once; the admitted one stalls.
    let mut statuses = Vec::new();
    while let Ok(status) = rx.recv_timeout(Duration::from_secs(3)) {
        statuses.push(status);
    }
    let admitted = s.fake.request_count();
    for i in 0..n {
        post_form(&format!("{url}/race-{i}/cancel"), &[]);
    }
    while statuses.len() < n {
        statuses.push(rx.recv_timeout(SOON).expect("a cancelled run answers"));
    }
    assert_eq!(admitted, 1, "runs reaching the model with --max-runs 1");
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        n - 1,
        "{statuses:?}"
    );
}
