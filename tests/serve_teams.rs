//! Teams and workflows over HTTP: `agentos serve` through the real binary against the fake
//! model, compared with the captures of a real AgentOS serving the same team (a leader and
//! two members) and the same two-step workflow.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::serve::{
    Server, assert_same_keys, capture, capture_json, capture_status, get, names, parse_sse,
    post_form, post_multipart, stream_until,
};

/// The reference app of the captures, on the fake model: a coordinate team whose leader
/// delegates to its first member, and a workflow whose second step drafts from the first.
const CONFIG: &str = r#"
[providers.fake]
kind = "openai"
base_url = "{FAKE}"

[[agents]]
id = "researcher"
name = "Researcher"
description = "Finds facts"
model = "fake:gpt-4o-mini"

[[agents]]
id = "writer"
name = "Writer"
description = "Writes prose"
model = "fake:gpt-4o-mini"

[[agents]]
id = "outline-agent"
name = "Outline Agent"
model = "fake:gpt-4o-mini"
instructions = "Write an outline."

[[agents]]
id = "draft-agent"
name = "Draft Agent"
model = "fake:gpt-4o-mini"
instructions = "Write a draft from the outline."

[[teams]]
id = "research-team"
name = "Research Team"
model = "fake:gpt-4o-mini"
instructions = "Delegate to the right member."
members = ["researcher", "writer"]

[[workflows]]
id = "content-workflow"
name = "Content Workflow"
description = "Two step workflow: outline then draft"

[[workflows.steps]]
name = "outline"
agent = "outline-agent"

[[workflows.steps]]
name = "draft"
agent = "draft-agent"
"#;

const TEAM_MESSAGE: &str = "Research the history of robots";
const TEAM_ANSWER: &str =
    "Tool result received: Story for 'Research the history of robots'. The end.";
const MEMBER_ANSWER: &str = "Story for 'Research the history of robots'. The end.";

fn server() -> Server {
    Server::start_config(CONFIG)
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect()
}

/// The team's non-streaming run of capture 200.
fn run_team_nonstream(s: &Server) -> Value {
    let a = post_form(
        &s.url("/teams/research-team/runs"),
        &[
            ("message", TEAM_MESSAGE),
            ("stream", "false"),
            ("session_id", "sess-team-1"),
            ("user_id", "user-1"),
        ],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    a.json()
}

/// The team's streamed run of capture 201.
fn run_team_stream(s: &Server) -> Vec<(String, Value)> {
    let a = post_multipart(
        &s.url("/teams/research-team/runs"),
        &[
            ("message", TEAM_MESSAGE),
            ("stream", "true"),
            ("session_id", "sess-team-1"),
            ("user_id", "user-1"),
        ],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        a.header("content-type")
            .is_some_and(|t| t.starts_with("text/event-stream")),
        "{:?}",
        a.headers
    );
    a.events()
}

/// Polls a team or workflow run until it is no longer RUNNING or PENDING.
fn wait_run(s: &Server, path: &str, run_id: &str, session_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let a = get(&s.url(&format!("{path}/runs/{run_id}?session_id={session_id}")));
        if a.status == 200 {
            let v = a.json();
            if !matches!(v["status"].as_str(), Some("RUNNING" | "PENDING")) {
                return v;
            }
        }
        assert!(Instant::now() < deadline, "run {run_id} did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------
// Discovery

#[test]
fn team_and_workflow_discovery_match_captures() {
    let s = server();
    let teams = get(&s.url("/teams"));
    assert_eq!(teams.status, 200);
    let teams = teams.json();
    let theirs = capture_json("008_get_teams");
    assert_eq!(teams.as_array().map(Vec::len), Some(1));
    assert_eq!(keys(&teams[0]), keys(&theirs[0]), "TeamResponse key order");
    for key in [
        "id",
        "name",
        "mode",
        "sessions",
        "reasoning",
        "system_message",
        "streaming",
    ] {
        assert_eq!(teams[0][key], theirs[0][key], "{key}");
    }
    assert_eq!(teams[0]["model"]["model"], "gpt-4o-mini");
    let member_ids: Vec<&str> = teams[0]["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(member_ids, ["researcher", "writer"]);
    // The capture's tool plus the member ids as an enum, as the leader is offered it.
    let mut tool = theirs[0]["tools"]["tools"][0].clone();
    tool["parameters"]["properties"]["member_id"]["enum"] = json!(["researcher", "writer"]);
    assert_eq!(teams[0]["tools"], json!({"tools": [tool]}));

    let one = get(&s.url("/teams/research-team"));
    assert_eq!(one.status, 200);
    assert_eq!(one.json(), teams[0], "detail and list item are the same");
    assert_eq!(
        keys(&capture_json("009_get_team_research_team")),
        keys(&teams[0])
    );
    let missing = get(&s.url("/teams/no-such-team"));
    assert_eq!(missing.status, capture_status("012_get_team_unknown_404"));
    assert_eq!(missing.json(), capture_json("012_get_team_unknown_404"));

    let workflows = get(&s.url("/workflows")).json();
    let mut theirs = capture_json("010_get_workflows");
    theirs[0]["db_id"] = workflows[0]["db_id"].clone();
    assert_eq!(workflows, theirs);
    assert_eq!(
        keys(&workflows[0]),
        keys(&capture_json("010_get_workflows")[0]),
        "summary key order: description before db_id"
    );

    let wf = get(&s.url("/workflows/content-workflow"));
    assert_eq!(wf.status, 200);
    let wf = wf.json();
    let theirs = capture_json("011_get_workflow_content");
    assert_eq!(
        keys(&wf),
        keys(&theirs),
        "detail key order: db_id before description"
    );
    let steps = wf["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 2);
    for (ours, theirs) in steps.iter().zip(theirs["steps"].as_array().expect("steps")) {
        assert_eq!(keys(ours), keys(theirs));
        assert_eq!(ours["name"], theirs["name"]);
        assert_eq!(ours["type"], "Step");
        assert_eq!(ours["agent"]["id"], theirs["agent"]["id"]);
        assert_eq!(ours["agent"]["name"], theirs["agent"]["name"]);
        assert_eq!(
            ours["agent"]["system_message"],
            theirs["agent"]["system_message"]
        );
    }
    let missing = get(&s.url("/workflows/no-such-workflow"));
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json(), capture_json("013_get_workflow_unknown_404"));

    let config = get(&s.url("/config")).json();
    let theirs = capture_json("004_get_config");
    assert_same_keys(&config["teams"][0], &theirs["teams"][0], &["model"]);
    assert_eq!(config["teams"][0]["mode"], "coordinate");
    assert_eq!(config["teams"][0]["model"]["id"], "gpt-4o-mini");
    assert_eq!(config["workflows"], workflows);
    let info = get(&s.url("/info")).json();
    assert_eq!(info["team_count"], 1);
    assert_eq!(info["workflow_count"], 1);
    assert_eq!(info["agent_count"], 4);
}

// ---------------------------------------------------------------------------------------
// Team runs

#[test]
fn team_run_nonstream_matches_capture_200() {
    let s = server();
    let ours = run_team_nonstream(&s);
    let theirs = capture_json("200_team_run_nonstream");
    assert_same_keys(&ours, &theirs, &["metrics", "input"]);
    assert_eq!(keys(&ours), keys(&theirs), "TeamRunOutput key order");
    assert_eq!(ours["content"], TEAM_ANSWER);
    assert_eq!(ours["content"], theirs["content"]);
    assert_eq!(ours["status"], "COMPLETED");
    assert_eq!(ours["team_id"], "research-team");
    assert_eq!(ours["team_name"], "Research Team");
    assert_eq!(ours["session_id"], "sess-team-1");
    assert_eq!(ours["user_id"], "user-1");
    assert_eq!(ours["input"], json!({"input_content": TEAM_MESSAGE}));
    // The leader's metrics: two model requests of the fake's 10/5 tokens.
    assert_eq!(ours["metrics"]["total_tokens"], 30);
    let roles: Vec<&str> = ours["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["role"].as_str())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool", "assistant"]);
    assert_eq!(ours["messages"][3]["content"], MEMBER_ANSWER);

    let tools = ours["tools"].as_array().expect("tools");
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0]["tool_name"], "delegate_task_to_member");
    assert_eq!(tools[0]["tool_args"], theirs["tools"][0]["tool_args"]);
    assert_eq!(tools[0]["result"], MEMBER_ANSWER);
    assert_same_keys(&tools[0], &theirs["tools"][0], &[]);

    let members = ours["member_responses"].as_array().expect("members");
    assert_eq!(members.len(), 1);
    let member = &members[0];
    assert_eq!(member["agent_id"], "researcher");
    assert_eq!(member["parent_run_id"], ours["run_id"]);
    assert_eq!(member["session_id"], "sess-team-1");
    assert_eq!(member["content"], MEMBER_ANSWER);
    assert_eq!(member["status"], "COMPLETED");
    assert_eq!(member["input"], json!({"input_content": TEAM_MESSAGE}));
    assert!(member.get("team_id").is_none(), "members carry no team_id");

    // The tool /teams/{id} describes is the tool the leader's model was offered.
    let requests = s.fake.requests();
    let leader = requests
        .iter()
        .find(|r| r["tools"].is_array())
        .expect("the leader's request offers tools");
    let described = get(&s.url("/teams/research-team")).json();
    assert_eq!(
        leader["tools"][0]["function"],
        described["tools"]["tools"][0]
    );
    assert_eq!(requests.len(), 3, "leader, member, leader: {requests:#?}");
}

#[test]
fn team_run_stream_matches_capture_201() {
    let s = server();
    let events = run_team_stream(&s);
    let theirs = parse_sse(&capture("201_team_run_stream"));
    let squash = |events: &[(String, Value)]| {
        let mut out: Vec<String> = names(events).iter().map(|n| n.to_string()).collect();
        out.dedup();
        out
    };
    assert_eq!(squash(&events), squash(&theirs), "event sequence");
    // Every event has the captured event's keys, for each kind of event.
    for (name, ours) in &events {
        let reference = &theirs
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} not in the capture"))
            .1;
        assert_same_keys(ours, reference, &[]);
    }
    let team_run_id = events[0].1["run_id"].as_str().expect("run id").to_string();
    let member_started = events
        .iter()
        .find(|(n, _)| n == "RunStarted")
        .map(|(_, v)| v)
        .expect("member RunStarted");
    assert_eq!(member_started["agent_id"], "researcher");
    assert_eq!(member_started["parent_run_id"], team_run_id.as_str());
    assert!(member_started.get("team_id").is_none());
    let completed = &events.last().expect("events").1;
    assert_eq!(completed["event"], "TeamRunCompleted");
    assert_eq!(completed["content"], TEAM_ANSWER);
    assert_eq!(completed["member_responses"][0]["content"], MEMBER_ANSWER);
    let tool_done = events
        .iter()
        .find(|(n, _)| n == "TeamToolCallCompleted")
        .map(|(_, v)| v)
        .expect("TeamToolCallCompleted");
    assert_eq!(tool_done["tool"]["child_run_id"], member_started["run_id"]);
    assert_eq!(tool_done["tool"]["result"], MEMBER_ANSWER);

    // stream_events=false: only the team's own content deltas.
    let a = post_form(
        &s.url("/teams/research-team/runs"),
        &[("message", TEAM_MESSAGE), ("stream_events", "false")],
    );
    assert_eq!(a.status, 200);
    let quiet = a.events();
    assert!(!quiet.is_empty());
    assert!(
        quiet
            .iter()
            .all(|(n, v)| n == "TeamRunContent" && v["team_id"] == "research-team"),
        "{:?}",
        names(&quiet)
    );
    let text: String = quiet
        .iter()
        .filter_map(|(_, v)| v["content"].as_str())
        .collect();
    assert_eq!(text, TEAM_ANSWER);
}

#[test]
fn team_run_errors_match_captures() {
    let s = server();
    let a = post_form(
        &s.url("/teams/no-such-team/runs"),
        &[("message", "hi"), ("stream", "false")],
    );
    assert_eq!(a.status, capture_status("202_team_run_unknown_404"));
    assert_eq!(a.json(), capture_json("202_team_run_unknown_404"));
    // Form validation comes first, even for an unknown team.
    let a = post_form(&s.url("/teams/no-such-team/runs"), &[("stream", "false")]);
    assert_eq!(a.status, 422);
    assert_eq!(
        a.json(),
        capture_json("417_agent_run_unknown_agent_and_missing_message_422")
    );
    let a = post_form(
        &s.url("/teams/research-team/runs"),
        &[("message", "hi"), ("stream", "maybe")],
    );
    assert_eq!(a.status, 422);
    assert_eq!(a.json()["detail"][0]["loc"], json!(["body", "stream"]));
    // An agent id is not a team, nor a team id an agent.
    let a = post_form(
        &s.url("/teams/researcher/runs"),
        &[("message", "hi"), ("stream", "false")],
    );
    assert_eq!(a.json(), json!({"detail": "Team not found"}));
    let a = post_form(
        &s.url("/agents/research-team/runs"),
        &[("message", "hi"), ("stream", "false")],
    );
    assert_eq!(a.json(), json!({"detail": "Agent not found"}));
    let a = get(&s.url("/teams/research-team/runs/x/cancel"));
    assert_eq!(a.status, 405);
    assert_eq!(a.header("allow"), Some("POST"));
}

#[test]
fn cancel_team_mid_member_matches_capture_203() {
    let s = server();
    let mut team_run_id = String::new();
    let mut cancelled = false;
    let started = Instant::now();
    let events = stream_until(
        &s.url("/teams/research-team/runs"),
        &[
            ("message", "research a slow topic"),
            ("session_id", "sess-team-cancel-1"),
        ],
        |name, v| {
            if name == "TeamRunStarted" {
                team_run_id = v["run_id"].as_str().unwrap_or("").to_string();
            }
            if name == "RunContent" && v["content"] == "slow-1 " && !cancelled {
                let a = post_form(
                    &s.url(&format!("/teams/research-team/runs/{team_run_id}/cancel")),
                    &[],
                );
                assert_eq!(a.status, capture_status("204_team_cancel_request"));
                assert_eq!(a.json(), capture_json("204_team_cancel_request"));
                cancelled = true;
            }
            true
        },
    );
    assert!(cancelled, "{:?}", names(&events));
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "the cancel stopped the member at once"
    );
    let theirs = parse_sse(&capture("203_team_cancel_running_stream"));
    let tail = |e: &[(String, Value)]| -> Vec<String> {
        e.iter()
            .rev()
            .take(4)
            .map(|(n, _)| n.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(tail(&events), tail(&theirs));
    // The leader's finished model call keeps its tokens in the cancelled team run.
    let metrics = |e: &[(String, Value)]| e.last().expect("events").1["metrics"].clone();
    assert_same_keys(&metrics(&events), &metrics(&theirs), &[]);
    assert!(
        metrics(&events)["total_tokens"].as_u64() > Some(0),
        "{}",
        metrics(&events)
    );
    assert!(!names(&events).contains(&"TeamToolCallCompleted"));
    for name in ["RunCancelled", "TeamRunCancelled"] {
        let ours = &events.iter().find(|(n, _)| n == name).expect(name).1;
        let reference = &theirs.iter().find(|(n, _)| n == name).expect(name).1;
        assert_same_keys(ours, reference, &[]);
    }
    let team_cancelled = &events
        .iter()
        .find(|(n, _)| n == "TeamRunCancelled")
        .unwrap()
        .1;
    assert_eq!(
        team_cancelled["reason"],
        format!("Run {team_run_id} was cancelled")
    );

    let stored = wait_run(
        &s,
        "/teams/research-team",
        &team_run_id,
        "sess-team-cancel-1",
    );
    assert_eq!(stored["status"], "CANCELLED");
    // The member run is stored cancelled too.
    let runs = get(&s.url("/sessions/sess-team-cancel-1/runs")).json();
    let statuses: Vec<(&str, &str)> = runs
        .as_array()
        .expect("runs")
        .iter()
        .map(|r| {
            (
                r["agent_id"]
                    .as_str()
                    .or(r["team_id"].as_str())
                    .unwrap_or(""),
                r["status"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [("researcher", "CANCELLED"), ("research-team", "CANCELLED")]
    );

    // Unknown team: 404; unknown run: 200, remembered, and the run starts cancelled.
    let a = post_form(&s.url("/teams/no-such-team/runs/x/cancel"), &[]);
    assert_eq!(a.status, 404);
    assert_eq!(a.json(), capture_json("012_get_team_unknown_404"));
    let a = post_form(
        &s.url("/teams/research-team/runs/early-team-run/cancel"),
        &[],
    );
    assert_eq!(a.json(), json!({}));
    let a = post_form(
        &s.url("/teams/research-team/runs"),
        &[
            ("message", "hello"),
            ("stream", "false"),
            ("run_id", "early-team-run"),
        ],
    );
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["status"], "CANCELLED");
    assert_eq!(a.json()["run_id"], "early-team-run");
}

#[test]
fn team_background_run_polls_and_resumes() {
    let s = server();
    let a = post_form(
        &s.url("/teams/research-team/runs"),
        &[
            ("message", TEAM_MESSAGE),
            ("stream", "false"),
            ("background", "true"),
            ("session_id", "sess-team-bg"),
        ],
    );
    assert_eq!(a.status, 202, "{}", a.body);
    let accepted = a.json();
    assert_eq!(keys(&accepted), ["run_id", "session_id", "status"]);
    assert_eq!(accepted["status"], "PENDING");
    assert_eq!(accepted["session_id"], "sess-team-bg");
    let run_id = accepted["run_id"].as_str().expect("run id").to_string();
    let done = wait_run(&s, "/teams/research-team", &run_id, "sess-team-bg");
    assert_eq!(done["status"], "COMPLETED");
    assert_eq!(done["content"], TEAM_ANSWER);

    // A background stream numbers its events; resume replays the ones after an index.
    let a = post_form(
        &s.url("/teams/research-team/runs"),
        &[
            ("message", TEAM_MESSAGE),
            ("background", "true"),
            ("session_id", "sess-team-bg"),
            ("run_id", "bg-stream-1"),
        ],
    );
    assert_eq!(a.status, 200);
    let events = a.events();
    let indexes: Vec<u64> = events
        .iter()
        .filter_map(|(_, v)| v["event_index"].as_u64())
        .collect();
    assert_eq!(indexes, (0..events.len() as u64).collect::<Vec<_>>());
    let a = post_form(
        &s.url("/teams/research-team/runs/bg-stream-1/resume"),
        &[("last_event_index", "2"), ("session_id", "sess-team-bg")],
    );
    assert_eq!(a.status, 200);
    let replay = a.events();
    assert_eq!(replay[0].0, "replay");
    assert_eq!(replay[0].1["status"], "COMPLETED");
    assert_eq!(replay.len(), events.len() - 3 + 1);
    assert_eq!(replay[1].1["event_index"], 3);
    assert_eq!(
        replay.last().map(|(n, _)| n.as_str()),
        Some("TeamRunCompleted")
    );
    // A team run is not an agent's or a workflow's.
    let a = post_form(&s.url("/agents/researcher/runs/bg-stream-1/resume"), &[]);
    assert_eq!(a.status, 404);
    assert_eq!(a.json(), json!({"detail": "Run not found"}));
}

#[test]
fn team_runs_listing_and_polling_match_capture_205() {
    let s = server();
    let first = run_team_nonstream(&s);
    let streamed = run_team_stream(&s);
    let second_id = streamed[0].1["run_id"]
        .as_str()
        .expect("run id")
        .to_string();

    let a = get(&s.url("/teams/research-team/runs?session_id=sess-team-1"));
    assert_eq!(a.status, 200);
    let list = a.json();
    let list = list.as_array().expect("list");
    let theirs = capture_json("205_team_list_runs");
    assert_eq!(list.len(), 2, "member runs are left out");
    for (ours, theirs) in list.iter().zip(theirs.as_array().expect("capture")) {
        assert_eq!(keys(ours), keys(theirs), "TeamRunSchema key order");
        assert_eq!(ours["parent_run_id"], "");
        assert_eq!(ours["team_id"], "research-team");
        assert_eq!(ours["run_input"], TEAM_MESSAGE);
        assert_eq!(ours["content"], TEAM_ANSWER);
        assert_eq!(ours["run_response_format"], "text");
        assert_eq!(ours["cancellation_stage"], Value::Null);
        assert_eq!(ours["session_state"], Value::Null);
        assert!(
            ours["created_at"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z'))
        );
    }
    assert_eq!(list[0]["run_id"], first["run_id"]);
    assert_eq!(
        list[0]["events"],
        Value::Null,
        "a non-streamed run keeps no events"
    );
    assert_eq!(list[1]["run_id"], second_id.as_str());
    let stored_events: Vec<&str> = list[1]["events"]
        .as_array()
        .expect("a streamed run keeps its events")
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    assert_eq!(stored_events.first(), Some(&"TeamRunStarted"));
    assert_eq!(stored_events.last(), Some(&"TeamRunCompleted"));

    // Filters and errors.
    let a = get(&s.url("/teams/research-team/runs?session_id=sess-team-1&status=COMPLETED"));
    assert_eq!(a.json().as_array().map(Vec::len), Some(2));
    let a = get(&s.url("/teams/research-team/runs?session_id=sess-team-1&status=completed"));
    assert_eq!(a.json(), json!([]), "status is compared exactly");
    let a = get(&s.url("/teams/research-team/runs"));
    assert_eq!(a.status, 422);
    assert_eq!(
        a.json(),
        capture_json("502_agent_list_runs_missing_session_422")
    );
    let a = get(&s.url("/teams/research-team/runs?session_id=nope"));
    assert_eq!(a.status, 404);
    assert_eq!(a.json(), json!({"detail": "Session not found"}));
    let a = get(&s.url("/teams/no-such-team/runs?session_id=sess-team-1"));
    assert_eq!(a.json(), json!({"detail": "Team not found"}));
    // The team's session is not an agent's.
    let a = get(&s.url("/agents/researcher/runs?session_id=sess-team-1"));
    assert_eq!(a.json(), json!({"detail": "Session not found"}));

    // One run: the stored object with epoch timestamps; members are runs of their own.
    let run_id = first["run_id"].as_str().expect("run id");
    let a = get(&s.url(&format!(
        "/teams/research-team/runs/{run_id}?session_id=sess-team-1"
    )));
    assert_eq!(a.status, 200);
    let run = a.json();
    assert_eq!(run["run_id"], run_id);
    assert_eq!(run["created_at"], first["created_at"]);
    assert_eq!(run["member_responses"], json!([]));
    assert!(
        run.get("events").is_none(),
        "no events for a non-streamed run"
    );
    assert_eq!(run["tools"][0]["tool_name"], "delegate_task_to_member");
    let streamed_run = get(&s.url(&format!(
        "/teams/research-team/runs/{second_id}?session_id=sess-team-1"
    )))
    .json();
    let order = keys(&streamed_run);
    let at = |k: &str| order.iter().position(|x| *x == k).expect(k);
    assert!(
        at("events") + 1 == at("metrics"),
        "events right before metrics: {order:?}"
    );
    let member_id = first["member_responses"][0]["run_id"]
        .as_str()
        .expect("member");
    let a = get(&s.url(&format!(
        "/teams/research-team/runs/{member_id}?session_id=sess-team-1"
    )));
    assert_eq!(a.status, 404);
    assert_eq!(a.json(), json!({"detail": "Run not found"}));
}

// ---------------------------------------------------------------------------------------
// Team sessions

#[test]
fn team_sessions_match_captures_602_610_614() {
    let s = server();
    let first = run_team_nonstream(&s);
    run_team_stream(&s);

    let page = get(&s.url("/sessions?type=team")).json();
    let theirs = capture_json("602_sessions_list_type_team");
    let item = &page["data"][0];
    assert_eq!(
        keys(item),
        keys(&theirs["data"][0]),
        "team session list item"
    );
    assert_eq!(item["session_id"], "sess-team-1");
    assert_eq!(item["session_type"], "team");
    assert_eq!(item["team_id"], "research-team");
    assert_eq!(item["session_name"], TEAM_MESSAGE);
    // Team runs (2 × 30 tokens) and member runs (2 × 15), as in the capture.
    assert_eq!(
        item["metrics"]["total_tokens"],
        theirs["data"][0]["total_tokens"]
    );
    assert_eq!(item["total_tokens"], 90);
    assert_eq!(
        get(&s.url("/sessions?type=agent")).json()["data"],
        json!([])
    );

    let detail = get(&s.url("/sessions/sess-team-1?type=team"));
    assert_eq!(detail.status, 200);
    let detail = detail.json();
    let theirs = capture_json("610_session_get_team");
    assert_eq!(keys(&detail), keys(&theirs), "TeamSessionDetailSchema");
    assert_eq!(detail["team_data"]["name"], theirs["team_data"]["name"]);
    assert_eq!(
        detail["team_data"]["team_id"],
        theirs["team_data"]["team_id"]
    );
    assert_eq!(
        keys(&detail["team_data"]["model"]),
        keys(&theirs["team_data"]["model"])
    );
    assert_eq!(detail["team_data"]["model"]["id"], "gpt-4o-mini");
    assert_eq!(detail["total_tokens"], 90);
    let roles = |v: &Value| -> Vec<String> {
        v.as_array()
            .expect("chat history")
            .iter()
            .map(|m| m["role"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(
        roles(&detail["chat_history"]),
        roles(&theirs["chat_history"])
    );

    let runs = get(&s.url("/sessions/sess-team-1/runs?type=team")).json();
    let runs = runs.as_array().expect("runs");
    let theirs = capture_json("614_session_runs_team");
    let theirs = theirs.as_array().expect("capture");
    assert_eq!(runs.len(), 4);
    for (ours, theirs) in runs.iter().zip(theirs) {
        // A streamed member run keeps its own events too (AgentOS keeps them only in the
        // team run's events).
        let without_events = |v: &Value| -> Vec<String> {
            keys(v)
                .into_iter()
                .filter(|k| *k != "events" || v.get("team_id").is_some())
                .map(str::to_string)
                .collect()
        };
        assert_eq!(without_events(ours), without_events(theirs));
    }
    assert_eq!(
        runs[3]["events"].as_array().map(|e| e.is_empty()),
        Some(false)
    );
    // Each member run right before its team run.
    assert_eq!(runs[0]["agent_id"], "researcher");
    assert_eq!(runs[0]["parent_run_id"], first["run_id"]);
    assert_eq!(runs[1]["run_id"], first["run_id"]);
    assert_eq!(runs[2]["parent_run_id"], runs[3]["run_id"]);
    assert_eq!(runs[3]["team_id"], "research-team");

    let previews = get(&s.url("/sessions/sess-team-1/run-previews")).json();
    assert_eq!(previews[1]["team_id"], "research-team");
    assert_eq!(previews[0]["agent_id"], "researcher");
    assert_eq!(previews[1]["content_preview"], TEAM_ANSWER);

    let run_id = first["run_id"].as_str().expect("run id");
    let one = get(&s.url(&format!("/sessions/sess-team-1/runs/{run_id}"))).json();
    assert_eq!(one["team_id"], "research-team");
    assert_eq!(one["events"], Value::Null, "single run schemas keep nulls");
}

// ---------------------------------------------------------------------------------------
// Workflows

/// A workflow run of capture 300's request, with a run id of our choosing.
fn run_workflow(s: &Server, run_id: &str, stream: bool) -> crate::serve::Answer {
    post_form(
        &s.url("/workflows/content-workflow/runs"),
        &[
            ("message", "Write about robots"),
            ("stream", if stream { "true" } else { "false" }),
            ("session_id", "sess-wf-1"),
            ("user_id", "user-1"),
            ("run_id", run_id),
        ],
    )
}

/// Every key of `ours` is one AgentOS has, and every key AgentOS has is ours, except those
/// in `optional` (present only when the run produced them).
#[track_caller]
fn assert_keys_within(ours: &Value, theirs: &Value, optional: &[&str]) {
    let ours = keys(ours);
    let theirs = keys(theirs);
    for key in &ours {
        assert!(
            theirs.contains(key) || *key == "cancellation_stage",
            "unexpected key {key}: ours {ours:?}, theirs {theirs:?}"
        );
    }
    for key in &theirs {
        assert!(
            ours.contains(key) || optional.contains(key),
            "missing key {key}: ours {ours:?}, theirs {theirs:?}"
        );
    }
}

#[test]
fn workflow_runs_routes_and_shapes() {
    let s = server();
    let a = run_workflow(&s, "wf-run-1", false);
    assert_eq!(a.status, 200, "{}", a.body);
    let run = a.json();
    let theirs = capture_json("300_workflow_run_nonstream");
    assert_keys_within(&run, &theirs, &["step_results", "step_executor_runs"]);
    assert_eq!(
        keys(&run)[0],
        "input",
        "a workflow run starts with its input"
    );
    assert_eq!(run["input"], "Write about robots");
    assert_eq!(run["run_id"], "wf-run-1");
    assert_eq!(run["workflow_id"], "content-workflow");
    assert_eq!(run["workflow_name"], "Content Workflow");
    assert_eq!(run["session_id"], "sess-wf-1");
    assert_eq!(run["user_id"], "user-1");
    assert_eq!(run["content_type"], "str");
    for media in ["images", "videos", "audio", "files"] {
        assert_eq!(run[media], json!([]), "{media}");
    }
    let status = run["status"].as_str().expect("status").to_string();
    assert!(
        ["COMPLETED", "ERROR"].contains(&status.as_str()),
        "a finished run: {status}"
    );

    // Streamed: an event stream, the run stored under the id the client chose.
    let a = run_workflow(&s, "wf-run-2", true);
    assert_eq!(a.status, 200);
    assert!(
        a.header("content-type")
            .is_some_and(|t| t.starts_with("text/event-stream"))
    );
    for (_, event) in a.events() {
        if event["event"]
            .as_str()
            .is_some_and(|e| e.starts_with("Workflow"))
        {
            assert_eq!(event["run_id"], "wf-run-2");
        }
    }

    // One run: the stored object, events last.
    let a = get(&s.url("/workflows/content-workflow/runs/wf-run-1?session_id=sess-wf-1"));
    assert_eq!(a.status, 200);
    let stored = a.json();
    let theirs = capture_json("305_workflow_get_run");
    assert_keys_within(&stored, &theirs, &["step_results", "step_executor_runs"]);
    assert_eq!(keys(&stored).last(), Some(&"events"));
    assert_eq!(
        stored["events"],
        json!([]),
        "a non-streamed run keeps no events"
    );
    assert_eq!(stored["status"], status.as_str());
    assert!(stored.get("images").is_none(), "stored runs list no media");
    let a = get(&s.url("/workflows/content-workflow/runs/nope?session_id=sess-wf-1"));
    assert_eq!(a.status, 404);
    assert_eq!(a.json(), json!({"detail": "Run not found"}));

    // The session's runs, with nulls.
    let a = get(&s.url("/workflows/content-workflow/runs?session_id=sess-wf-1"));
    assert_eq!(a.status, 200);
    let list = a.json();
    let list = list.as_array().expect("list");
    let theirs = capture_json("306_workflow_list_runs");
    assert_eq!(list.len(), 2);
    for ours in list {
        assert_eq!(keys(ours), keys(&theirs[0]), "WorkflowRunSchema key order");
        assert_eq!(ours["run_input"], "Write about robots");
        assert_eq!(ours["workflow_id"], "content-workflow");
        assert_eq!(ours["user_id"], "user-1");
        assert_eq!(ours["pause_kind"], Value::Null);
        assert!(ours["events"].is_array());
        assert!(ours["step_results"].is_array());
        assert!(
            ours["created_at"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z'))
        );
    }
    assert_eq!(list[0]["run_id"], "wf-run-1");
    assert_eq!(list[1]["run_id"], "wf-run-2");
    let a = get(&s.url("/workflows/content-workflow/runs?session_id=sess-team-1"));
    assert_eq!(a.json(), json!({"detail": "Session not found"}));
    let a = get(&s.url("/teams/research-team/runs?session_id=sess-wf-1"));
    assert_eq!(a.json(), json!({"detail": "Session not found"}));

    // Unknown workflow, after form validation.
    let a = post_form(
        &s.url("/workflows/no-such-workflow/runs"),
        &[("message", "hi"), ("stream", "false")],
    );
    assert_eq!(a.status, capture_status("302_workflow_run_unknown_404"));
    assert_eq!(a.json(), capture_json("302_workflow_run_unknown_404"));
    let a = post_form(&s.url("/workflows/no-such-workflow/runs"), &[]);
    assert_eq!(a.status, 422);
    let a = get(&s.url("/workflows/no-such-workflow/runs?session_id=sess-wf-1"));
    assert_eq!(a.json(), capture_json("013_get_workflow_unknown_404"));

    // Cancel: 200 `{}` for any run of a known workflow.
    let a = post_form(
        &s.url("/workflows/content-workflow/runs/wf-run-1/cancel"),
        &[],
    );
    assert_eq!(a.status, capture_status("304_workflow_cancel_request"));
    assert_eq!(a.json(), capture_json("304_workflow_cancel_request"));
    let a = post_form(&s.url("/workflows/no-such-workflow/runs/x/cancel"), &[]);
    assert_eq!(a.status, 404);
    assert_eq!(a.json(), capture_json("013_get_workflow_unknown_404"));

    // Background: 202, then the stored run.
    let a = post_form(
        &s.url("/workflows/content-workflow/runs"),
        &[
            ("message", "Write about robots"),
            ("stream", "false"),
            ("background", "true"),
            ("session_id", "sess-wf-bg"),
        ],
    );
    assert_eq!(a.status, 202);
    let accepted = a.json();
    assert_eq!(accepted["status"], "PENDING");
    let run_id = accepted["run_id"].as_str().expect("run id");
    let done = wait_run(&s, "/workflows/content-workflow", run_id, "sess-wf-bg");
    assert_eq!(done["workflow_id"], "content-workflow");
    assert_eq!(done["input"], "Write about robots");
}

#[test]
fn workflow_continue_matches_capture_307() {
    let s = server();
    let a = run_workflow(&s, "wf-done", false);
    assert_eq!(a.status, 200);
    let status = a.json()["status"].as_str().expect("status").to_string();
    let a = post_form(
        &s.url("/workflows/content-workflow/runs/wf-done/continue"),
        &[("session_id", "sess-wf-1"), ("stream", "false")],
    );
    assert_eq!(
        a.status,
        capture_status("307_workflow_continue_not_paused_409")
    );
    let expected = match status.as_str() {
        "COMPLETED" => capture_json("307_workflow_continue_not_paused_409"),
        "ERROR" => json!({"detail": "run has errored"}),
        "CANCELLED" => json!({"detail": "run is already cancelled"}),
        other => panic!("unexpected status {other}"),
    };
    assert_eq!(a.json(), expected);

    // The run is looked up in the session named.
    for fields in [
        &[("session_id", "sess-wf-1")][..],
        &[("session_id", "other-session")][..],
        &[][..],
    ] {
        let url = if fields.is_empty() {
            "/workflows/content-workflow/runs/wf-done/continue"
        } else {
            "/workflows/content-workflow/runs/no-such-run/continue"
        };
        let a = post_form(&s.url(url), fields);
        assert_eq!(a.status, 404, "{fields:?}");
        assert_eq!(a.json(), json!({"detail": "Run not found"}));
    }
    let a = post_form(
        &s.url("/workflows/content-workflow/runs/wf-done/continue"),
        &[("session_id", "sess-wf-1"), ("step_requirements", "[{")],
    );
    assert_eq!(a.status, 400);
    assert_eq!(
        a.json(),
        json!({"detail": "Invalid JSON in step_requirements field"})
    );
    let a = post_form(
        &s.url("/workflows/no-such-workflow/runs/wf-done/continue"),
        &[("session_id", "sess-wf-1")],
    );
    assert_eq!(a.status, 404);
    assert_eq!(a.json(), capture_json("013_get_workflow_unknown_404"));
    let a = get(&s.url("/workflows/content-workflow/runs/wf-done/continue"));
    assert_eq!(a.status, 405);
}

#[test]
fn workflow_sessions_match_captures_603_611_615() {
    let s = server();
    assert_eq!(run_workflow(&s, "wf-s-1", false).status, 200);
    assert_eq!(run_workflow(&s, "wf-s-2", false).status, 200);

    let page = get(&s.url("/sessions?type=workflow")).json();
    let theirs = capture_json("603_sessions_list_type_workflow");
    let item = &page["data"][0];
    assert_eq!(item["session_id"], "sess-wf-1");
    assert_eq!(item["session_type"], "workflow");
    assert_eq!(item["workflow_id"], "content-workflow");
    assert_eq!(item["user_id"], "user-1");
    assert_eq!(item["session_name"], "Write about robots");
    assert_eq!(
        item["metadata"],
        json!({}),
        "workflow sessions always have metadata"
    );
    assert_keys_within(item, &theirs["data"][0], &["total_tokens"]);

    let detail = get(&s.url("/sessions/sess-wf-1?type=workflow"));
    assert_eq!(detail.status, 200);
    let detail = detail.json();
    let theirs = capture_json("611_session_get_workflow");
    assert_eq!(keys(&detail), keys(&theirs), "WorkflowSessionDetailSchema");
    assert_eq!(detail["workflow_data"], theirs["workflow_data"]);
    assert_eq!(detail["metadata"], json!({}));
    assert_eq!(detail["session_name"], "Write about robots");

    let runs = get(&s.url("/sessions/sess-wf-1/runs?type=workflow")).json();
    let runs = runs.as_array().expect("runs");
    let theirs = capture_json("615_session_runs_workflow");
    assert_eq!(
        runs.len(),
        2,
        "only workflow runs: executor runs stay nested"
    );
    for ours in runs {
        assert_keys_within(ours, &theirs[0], &["step_results", "step_executor_runs"]);
        assert_eq!(keys(ours)[..3], ["run_id", "run_input", "events"]);
        assert_eq!(ours["workflow_id"], "content-workflow");
    }
    assert_eq!(runs[0]["run_id"], "wf-s-1");
    let previews = get(&s.url("/sessions/sess-wf-1/run-previews")).json();
    assert_eq!(previews[0]["workflow_id"], "content-workflow");
    assert_eq!(previews[0]["run_input"], "Write about robots");
}

#[test]
fn workflow_stream_matches_capture_301() {
    let s = server();
    let a = run_workflow(&s, "wf-stream-1", true);
    assert_eq!(a.status, 200);
    let ours = a.events();
    let theirs = parse_sse(&capture("301_workflow_run_stream"));
    // Same event names in the same order, content deltas aside (their count depends on
    // how the model chunks its answer).
    let skeleton = |events: &[(String, Value)]| -> Vec<String> {
        events
            .iter()
            .map(|(name, _)| name.clone())
            .filter(|n| n != "RunContent")
            .collect()
    };
    assert_eq!(skeleton(&ours), skeleton(&theirs));
    for name in [
        "WorkflowStarted",
        "StepStarted",
        "RunStarted",
        "StepCompleted",
        "WorkflowCompleted",
    ] {
        let mine = &ours.iter().find(|(n, _)| n == name).expect(name).1;
        let capture = &theirs.iter().find(|(n, _)| n == name).expect(name).1;
        let mut a: Vec<&str> = mine
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut b: Vec<&str> = capture
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b, "{name} keys");
    }
    let done = &ours.last().unwrap().1;
    assert_eq!(done["step_results"].as_array().unwrap().len(), 2);
    let first = done["step_results"][0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    // The second step was given the first step's output.
    let second_run = &done["step_executor_runs"][1];
    assert_eq!(second_run["input"]["input_content"], first.as_str());
    let step_agent = ours.iter().find(|(n, _)| n == "RunStarted").unwrap();
    assert_eq!(step_agent.1["workflow_run_id"], "wf-stream-1");
    assert_eq!(step_agent.1["step_name"], "outline");
}
