//! Tools end to end: command tools run by the real binary, the function-calling loop
//! against the fake model and the offline test model, and human confirmation over HTTP
//! and in the terminal.

use std::time::Duration;

use serde_json::{Value, json};

use crate::serve::{
    Server, assert_same_keys, capture, capture_json, capture_status, names, parse_sse, post_form,
    wait_run,
};
use crate::util::TestEnv;

/// Agents with command tools; `{FAKE}` is the fake model's base URL.
const CONFIG: &str = r#"
[providers.fake]
kind = "openai"
base_url = "{FAKE}"

[tools.get_weather]
description = "Get the current weather for a city."
command = ["sh", "-c", "printf 'The weather in %s is sunny, 21C.' \"$AGENTOS_ARG_CITY\""]
[tools.get_weather.parameters]
type = "object"
required = ["city"]
[tools.get_weather.parameters.properties.city]
type = "string"
description = "Name of the city."

[tools.get_time]
description = "The time in a city."
command = ["sh", "-c", "printf '12:00 in %s' \"$AGENTOS_ARG_CITY\""]
[tools.get_time.parameters]
type = "object"
[tools.get_time.parameters.properties.city]
type = "string"

[tools.broken]
description = "Always fails."
command = ["sh", "-c", "echo 'disk on fire' >&2; exit 3"]

[tools.delete_file]
description = "Delete a file (needs human confirmation)."
command = ["sh", "-c", "printf 'deleted %s' \"$AGENTOS_ARG_PATH\""]
requires_confirmation = true
[tools.delete_file.parameters]
type = "object"
required = ["path"]
[tools.delete_file.parameters.properties.path]
type = "string"

[[agents]]
id = "weather-agent"
name = "Weather Agent"
model = "fake:gpt-4o-mini"
instructions = "Answer weather questions using the get_weather tool."
tools = ["get_weather", "get_time", "broken"]

[[agents]]
id = "confirm-agent"
name = "Confirm Agent"
model = "fake:gpt-4o-mini"
instructions = "Delete files when asked, using delete_file."
tools = ["delete_file"]

[[agents]]
id = "offline-tools"
model = "test"
instructions = "Use tools when asked."
tools = ["get_weather", "delete_file"]
"#;

fn weather_run(s: &Server, message: &str, stream: &str) -> crate::serve::Answer {
    post_form(
        &s.url("/agents/weather-agent/runs"),
        &[
            ("message", message),
            ("stream", stream),
            ("session_id", "sess-weather-1"),
            ("user_id", "user-1"),
        ],
    )
}

#[test]
fn tool_call_nonstream_matches_capture() {
    let s = Server::start_config(CONFIG);
    let a = weather_run(&s, "What is the weather in Tokyo?", "false");
    assert_eq!(a.status, 200, "{}", a.body);
    let ours = a.json();
    let theirs = capture_json("120_agent_tool_call_nonstream");
    assert_same_keys(&ours, &theirs, &["metrics"]);
    assert_eq!(ours["content"], theirs["content"]);
    assert_same_keys(&ours["tools"][0], &theirs["tools"][0], &["metrics"]);
    assert_eq!(
        ours["tools"][0]["result"],
        "The weather in Tokyo is sunny, 21C."
    );
    let roles: Vec<&str> = ours["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["role"].as_str())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool", "assistant"]);
    assert_same_keys(&ours["messages"][3], &theirs["messages"][3], &[]);
    assert_eq!(ours["metrics"]["total_tokens"], 30);
    // The model got the tools and, the second time, the tool result.
    let requests = s.fake.requests();
    assert_eq!(requests[0]["tools"][0]["function"]["name"], "get_weather");
    let last = requests.last().expect("request");
    let tool_msg = last["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| m["role"] == "tool");
    assert_eq!(
        tool_msg.map(|m| m["content"].clone()),
        Some(json!("The weather in Tokyo is sunny, 21C."))
    );
}

#[test]
fn tool_call_stream_matches_capture_sequence() {
    let s = Server::start_config(CONFIG);
    let a = weather_run(&s, "What is the weather in Berlin?", "true");
    let events = a.events();
    let n = names(&events);
    assert_eq!(
        &n[..6],
        [
            "RunStarted",
            "ModelRequestStarted",
            "RunContent",
            "ModelRequestCompleted",
            "ToolCallStarted",
            "ToolCallCompleted"
        ]
    );
    assert_eq!(n.last(), Some(&"RunCompleted"));
    let theirs = parse_sse(&capture("121_agent_tool_call_stream"));
    for name in ["ToolCallStarted", "ToolCallCompleted"] {
        let ours = &events.iter().find(|(n, _)| n == name).expect("event").1;
        let reference = &theirs.iter().find(|(n, _)| n == name).expect("capture").1;
        assert_same_keys(ours, reference, &["tool"]);
    }
    let completed = &events
        .iter()
        .find(|(n, _)| n == "ToolCallCompleted")
        .expect("event")
        .1;
    assert!(
        completed["content"]
            .as_str()
            .unwrap_or("")
            .starts_with("get_weather(city=Berlin) completed in "),
        "{completed}"
    );
}

#[test]
fn parallel_tool_calls_and_a_failing_tool() {
    let s = Server::start_config(CONFIG);
    let a = weather_run(&s, "parallel: get_weather and get_time in Oslo", "true");
    let events = a.events();
    let started = events
        .iter()
        .filter(|(n, _)| n == "ToolCallStarted")
        .count();
    let completed = events
        .iter()
        .filter(|(n, _)| n == "ToolCallCompleted")
        .count();
    assert_eq!((started, completed), (2, 2), "{:?}", names(&events));
    let done = &events.last().expect("events").1;
    assert!(
        done["content"]
            .as_str()
            .unwrap_or("")
            .contains("12:00 in Oslo")
    );

    // A failing tool is an error the model sees; the run completes.
    let a = weather_run(&s, "please call broken now", "false");
    let v = a.json();
    assert_eq!(v["status"], "COMPLETED", "{v}");
    assert_eq!(v["tools"][0]["tool_call_error"], true);
    assert!(
        v["content"].as_str().unwrap_or("").contains("disk on fire"),
        "{v}"
    );
}

#[test]
fn confirmation_round_trip_over_http() {
    let s = Server::start_config(CONFIG);
    let url = s.url("/agents/confirm-agent/runs");
    // Non-streaming pause.
    let a = post_form(
        &url,
        &[
            ("message", "Please delete /tmp/other.log"),
            ("stream", "false"),
            ("session_id", "sess-hitl-2"),
            ("user_id", "user-1"),
        ],
    );
    let paused = a.json();
    assert_eq!(paused["status"], "PAUSED", "{paused}");
    assert_same_keys(
        &paused,
        &capture_json("163_agent_hitl_nonstream_paused"),
        &[],
    );
    assert_eq!(paused["tools"][0]["requires_confirmation"], true);
    let run_id = paused["run_id"].as_str().expect("run id").to_string();

    // Rejected with a note: the tool does not run, the model gets the note.
    let mut tools = paused["tools"].clone();
    tools[0]["confirmed"] = json!(false);
    tools[0]["confirmation_note"] = json!("not allowed");
    let a = post_form(
        &format!("{url}/{run_id}/continue"),
        &[
            ("session_id", "sess-hitl-2"),
            ("user_id", "user-1"),
            ("stream", "false"),
            ("tools", &tools.to_string()),
        ],
    );
    let v = a.json();
    assert_eq!(v["status"], "COMPLETED", "{v}");
    assert_eq!(v["content"], "Tool result received: not allowed");
    assert_same_keys(
        &v["tools"][0],
        &capture_json("164_agent_hitl_continue_rejected_nonstream")["tools"][0],
        &[],
    );
    assert_eq!(v["tools"][0]["confirmed"], false);
    assert_eq!(v["tools"][0]["tool_call_error"], true);

    // Streaming pause, then a confirmed continue under the same run id.
    let a = post_form(
        &url,
        &[
            ("message", "Please delete /tmp/old.log"),
            ("session_id", "sess-hitl-1"),
            ("user_id", "user-1"),
        ],
    );
    let events = a.events();
    assert_eq!(names(&events).last(), Some(&"RunPaused"));
    let theirs = parse_sse(&capture("160_agent_hitl_stream_paused"));
    assert_same_keys(
        &events.last().expect("event").1,
        &theirs.last().expect("event").1,
        &[],
    );
    let paused = &events.last().expect("event").1;
    let run_id = paused["run_id"].as_str().expect("run id").to_string();
    let mut tools = paused["tools"].clone();
    tools[0]["confirmed"] = json!(true);
    let a = post_form(
        &format!("{url}/{run_id}/continue"),
        &[
            ("session_id", "sess-hitl-1"),
            ("user_id", "user-1"),
            ("tools", &tools.to_string()),
        ],
    );
    let events = a.events();
    let n = names(&events);
    assert_eq!(n[0], "RunContinued");
    assert_eq!(&n[1..3], ["ToolCallStarted", "ToolCallCompleted"]);
    assert_eq!(n.last(), Some(&"RunCompleted"));
    for (i, (_, v)) in events.iter().enumerate() {
        assert_eq!(v["event_index"], i as u64);
        assert_eq!(v["run_id"], run_id.as_str());
    }
    let done = wait_run(&s, "confirm-agent", &run_id, "sess-hitl-1");
    assert_eq!(done["status"], "COMPLETED");
    assert_eq!(done["tools"][0]["result"], "deleted /tmp/old.log");
}

#[test]
fn continue_errors_match_captures() {
    let s = Server::start_config(CONFIG);
    let url = s.url("/agents/confirm-agent/runs");
    let a = post_form(&format!("{url}/whatever/continue"), &[("stream", "false")]);
    assert_eq!(
        a.status,
        capture_status("152_agent_continue_missing_session_400")
    );
    assert_eq!(
        a.json(),
        capture_json("152_agent_continue_missing_session_400")
    );
    let a = post_form(
        &format!("{url}/whatever/continue"),
        &[
            ("session_id", "s"),
            ("stream", "false"),
            ("tools", "not json"),
        ],
    );
    assert_eq!(a.status, 400);
    assert_eq!(
        a.json(),
        capture_json("153_agent_continue_bad_tools_json_400")
    );
    let a = post_form(
        &format!("{url}/no-such-run/continue"),
        &[("session_id", "s"), ("stream", "false")],
    );
    assert_eq!(a.status, 404);
    assert_eq!(a.json(), capture_json("154_agent_continue_unknown_run"));
    // A cancelled run cannot be continued.
    post_form(&format!("{url}/cancelled-run/cancel"), &[]);
    let a = post_form(
        &url,
        &[
            ("message", "hello"),
            ("stream", "false"),
            ("run_id", "cancelled-run"),
            ("session_id", "sess-c"),
        ],
    );
    assert_eq!(a.json()["status"], "CANCELLED");
    let a = post_form(
        &format!("{url}/cancelled-run/continue"),
        &[("session_id", "sess-c"), ("stream", "false")],
    );
    assert_eq!(a.status, 409);
    assert_eq!(
        a.json(),
        json!({"detail": "Cannot continue run cancelled-run: run is cancelled"})
    );
    // Streamed, the same refusal is a 200 stream of one anonymous RunError.
    let a = post_form(
        &format!("{url}/cancelled-run/continue"),
        &[("session_id", "sess-c"), ("stream", "true")],
    );
    assert_eq!(
        a.status,
        capture_status("151_agent_continue_cancelled_stream")
    );
    let events = a.events();
    let theirs = parse_sse(&capture("151_agent_continue_cancelled_stream"));
    assert_eq!(names(&events), names(&theirs));
    assert_same_keys(&events[0].1, &theirs[0].1, &[]);
    assert_eq!(
        events[0].1["content"],
        "Cannot continue run cancelled-run: run is cancelled"
    );
    assert_eq!(events[0].1["agent_id"], "");
}

/// Pauses a confirm-agent run (non-streaming) and returns it.
fn pause(s: &Server, session: &str, path: &str) -> Value {
    let a = post_form(
        &s.url("/agents/confirm-agent/runs"),
        &[
            ("message", &format!("Please delete {path}")),
            ("stream", "false"),
            ("session_id", session),
        ],
    );
    let paused = a.json();
    assert_eq!(paused["status"], "PAUSED", "{paused}");
    paused
}

#[test]
fn racing_continues_run_the_tool_once() {
    let s = Server::start_config(CONFIG);
    let paused = pause(&s, "sess-race", "/tmp/race.log");
    let run_id = paused["run_id"].as_str().expect("run id").to_string();
    let mut tools = paused["tools"].clone();
    tools[0]["confirmed"] = json!(true);
    let url = s.url(&format!("/agents/confirm-agent/runs/{run_id}/continue"));
    let tools = tools.to_string();
    let answers: Vec<crate::serve::Answer> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    post_form(
                        &url,
                        &[
                            ("session_id", "sess-race"),
                            ("stream", "false"),
                            ("tools", &tools),
                        ],
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let mut statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409, 409, 409], "exactly one continue wins");
    for a in answers.iter().filter(|a| a.status == 409) {
        let detail = a.json()["detail"].as_str().unwrap_or_default().to_string();
        assert!(
            detail.starts_with(&format!("Cannot continue run {run_id}: run is ")),
            "{detail}"
        );
    }
    let done = wait_run(&s, "confirm-agent", &run_id, "sess-race");
    assert_eq!(done["status"], "COMPLETED");
    let tool_messages = done["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["role"] == "tool")
        .count();
    assert_eq!(tool_messages, 1, "the confirmed tool ran once: {done}");
}

#[test]
fn cancelling_a_paused_run_stores_it_cancelled() {
    let s = Server::start_config(CONFIG);
    let paused = pause(&s, "sess-pc", "/tmp/pc.log");
    let run_id = paused["run_id"].as_str().expect("run id").to_string();
    let url = s.url(&format!("/agents/confirm-agent/runs/{run_id}"));
    let a = post_form(&format!("{url}/cancel"), &[]);
    assert_eq!(a.status, 200);
    let run = wait_run(&s, "confirm-agent", &run_id, "sess-pc");
    assert_eq!(run["status"], "CANCELLED", "{run}");
    assert_eq!(run["cancellation_stage"], "PAUSED");
    assert_eq!(
        run["tools"][0]["tool_name"], "delete_file",
        "partial state kept"
    );
    let a = post_form(
        &format!("{url}/continue"),
        &[("session_id", "sess-pc"), ("stream", "false")],
    );
    assert_eq!(a.status, 409);
    assert_eq!(
        a.json()["detail"],
        format!("Cannot continue run {run_id}: run is cancelled")
    );
}

#[test]
fn an_mcp_server_that_cannot_start_stores_no_run() {
    let config = format!(
        "{CONFIG}\n[mcp.gone]\ncommand = \"/nonexistent/agentos-mcp-server\"\n\n\
         [[agents]]\nid = \"mcp-agent\"\nmodel = \"test\"\ntools = [\"mcp:gone\"]\n"
    );
    let s = Server::start_config(&config);
    let a = post_form(
        &s.url("/agents/mcp-agent/runs"),
        &[
            ("message", "hi"),
            ("stream", "false"),
            ("session_id", "sess-gone"),
        ],
    );
    assert_eq!(a.status, 503, "{}", a.body);
    assert!(
        a.json()["detail"]
            .as_str()
            .is_some_and(|d| d.contains("gone")),
        "{}",
        a.body
    );
    let runs = crate::serve::get(&s.url("/agents/mcp-agent/runs?session_id=sess-gone"));
    let listed = runs.json();
    assert!(
        runs.status == 404 || listed.as_array().is_some_and(Vec::is_empty),
        "no run is left behind: {} {listed}",
        runs.status
    );
}

#[test]
fn paused_run_survives_a_server_restart() {
    let s = Server::start_config(CONFIG);
    let a = post_form(
        &s.url("/agents/confirm-agent/runs"),
        &[
            ("message", "Please delete /tmp/keep.log"),
            ("stream", "false"),
            ("session_id", "sess-r"),
        ],
    );
    let paused = a.json();
    let run_id = paused["run_id"].as_str().expect("run id").to_string();
    let s = s.restart();
    let mut tools = paused["tools"].clone();
    tools[0]["confirmed"] = json!(true);
    let a = post_form(
        &s.url(&format!("/agents/confirm-agent/runs/{run_id}/continue")),
        &[
            ("session_id", "sess-r"),
            ("stream", "false"),
            ("tools", &tools.to_string()),
        ],
    );
    let v = a.json();
    assert_eq!(v["status"], "COMPLETED", "{v}");
    assert_eq!(v["tools"][0]["result"], "deleted /tmp/keep.log");
}

fn offline_env() -> TestEnv {
    let env = TestEnv::new();
    env.write_config(&CONFIG.replace("{FAKE}", "http://127.0.0.1:9/v1"));
    env
}

#[test]
fn cli_runs_tools_with_the_offline_model() {
    let env = offline_env();
    let out = env.run(["run", "offline-tools", "-m", "use get_weather city=Lima"]);
    out.assert_success();
    assert!(
        out.stdout()
            .contains("get_weather: The weather in Lima is sunny, 21C."),
        "{}",
        out.describe()
    );
    let out = env.run([
        "run",
        "offline-tools",
        "-m",
        "use get_weather city=Lima",
        "--jsonl",
    ]);
    let events: Vec<Value> = out.json_lines();
    let n: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert!(
        n.contains(&"ToolCallStarted") && n.contains(&"ToolCallCompleted"),
        "{n:?}"
    );
}

#[test]
fn cli_pause_in_a_pipe_then_continue() {
    let env = offline_env();
    let out = env.run([
        "run",
        "offline-tools",
        "-m",
        "use delete_file path=/tmp/x.log",
        "-s",
        "cli-hitl",
    ]);
    out.assert_code(3);
    let stderr = out.stderr();
    let run_id = stderr
        .split_whitespace()
        .skip_while(|w| *w != "run")
        .nth(1)
        .expect("run id on stderr")
        .to_string();
    let out = env.run(["continue", &run_id, "--approve"]);
    out.assert_success();
    assert!(
        out.stdout().contains("deleted /tmp/x.log"),
        "{}",
        out.describe()
    );

    let out = env.run([
        "run",
        "offline-tools",
        "-m",
        "use delete_file path=/tmp/y.log",
    ]);
    out.assert_code(3);
    let run_id = out
        .stderr()
        .split_whitespace()
        .skip_while(|w| *w != "run")
        .nth(1)
        .expect("run id")
        .to_string();
    let out = env.run(["continue", &run_id, "--reject", "--note", "keep it"]);
    out.assert_success();
    assert!(
        out.stdout().contains("delete_file: keep it"),
        "{}",
        out.describe()
    );
    // A run that is not paused any more cannot be continued.
    env.run(["continue", &run_id, "--approve"]).assert_code(2);
}

#[test]
fn terminal_prompt_confirms_and_continues() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("the `script` command (util-linux) is needed for the terminal test");
    }
    let env = offline_env();
    let bin = env!("CARGO_BIN_EXE_agentos");
    let cmd = format!("{bin} run offline-tools -m 'use delete_file path=/tmp/tty.log'");
    let mut child = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("AGENTOS_CONFIG", env.config_path())
        .env("AGENTOS_DB", env.db_path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn script");
    {
        use std::io::Write;
        // The terminal buffers the answer until agentos asks.
        let stdin = child.stdin.as_mut().expect("stdin");
        stdin.write_all(b"y\n").expect("answer");
    }
    let status =
        crate::util::wait_with_timeout(&mut child, Duration::from_secs(20)).expect("exits");
    let mut out = String::new();
    {
        use std::io::Read;
        child
            .stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut out)
            .expect("read");
    }
    assert!(out.contains("Run tool `delete_file`"), "{out}");
    assert!(out.contains("deleted /tmp/tty.log"), "{out}");
    assert!(status.success(), "{out}");
}

#[test]
fn a_client_leaving_while_its_run_starts_gives_its_place_back() {
    // The MCP server takes a second to fail, so the run is still starting when the
    // client gives up; with --max-runs 1 a leaked place would refuse the next run.
    let config = format!(
        "{CONFIG}\n[mcp.slow]\ncommand = \"sh\"\nargs = [\"-c\", \"sleep 1; exit 1\"]\n\n\
         [[agents]]\nid = \"slow-mcp\"\nmodel = \"test\"\ntools = [\"mcp:slow\"]\n"
    );
    let s = Server::start_full(Some(&config), &["--max-runs", "1"], &[]);
    let impatient: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_millis(200)))
        .build()
        .into();
    let gave_up = impatient
        .post(&s.url("/agents/slow-mcp/runs"))
        .send_form([("message", "hi"), ("stream", "false")]);
    assert!(gave_up.is_err(), "the request should time out");
    std::thread::sleep(Duration::from_millis(1500));
    let a = post_form(
        &s.url("/agents/offline-tools/runs"),
        &[("message", "hello"), ("stream", "false")],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["status"], "COMPLETED");
}

/// A minimal MCP server over stdio: one tool, `shout`.
const MCP_SERVER: &str = r#"
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    method, id = msg.get("method"), msg.get("id")
    if id is None:
        continue
    if method == "initialize":
        result = {"protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}},
                  "serverInfo": {"name": "shouter", "version": "1.0"}}
    elif method == "tools/list":
        result = {"tools": [{"name": "shout", "description": "Upper-cases a text.",
                             "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}}]}
    else:
        print(json.dumps({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": method}}), flush=True)
        continue
    print(json.dumps({"jsonrpc": "2.0", "id": id, "result": result}), flush=True)
"#;

#[test]
fn agents_list_their_tools_as_agentos_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("shouter.py");
    std::fs::write(&script, MCP_SERVER).expect("write the MCP server");
    let config = format!(
        "{CONFIG}\n[mcp.shouter]\ncommand = \"python3\"\nargs = [\"{}\"]\n\n\
         [mcp.gone]\ncommand = \"/nonexistent/agentos-mcp-server\"\n\n\
         [[agents]]\nid = \"mcp-agent\"\nmodel = \"test\"\ntools = [\"get_time\", \"mcp:shouter\"]\n\
         tool_call_limit = 4\n\n\
         [[agents]]\nid = \"half-agent\"\nmodel = \"test\"\ntools = [\"get_time\", \"mcp:gone\"]\n\n\
         [[agents]]\nid = \"no-tools\"\nmodel = \"test\"\n",
        script.display()
    );
    let s = Server::start_config(&config);
    let theirs = capture_json("005_get_agents");
    let theirs_of = |id: &str| {
        theirs
            .as_array()
            .and_then(|list| list.iter().find(|a| a["id"] == id))
            .unwrap_or_else(|| panic!("capture 005 has {id}"))
            .clone()
    };

    let list = crate::serve::get(&s.url("/agents"));
    assert_eq!(list.status, 200, "{}", list.body);
    let list = list.json();
    let ours_of = |id: &str| {
        list.as_array()
            .and_then(|l| l.iter().find(|a| a["id"] == id))
            .unwrap_or_else(|| panic!("/agents has {id}: {list}"))
            .clone()
    };
    // The same keys in the same order as AgentOS, `tools` after `model`.
    let weather = ours_of("weather-agent");
    let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    assert_eq!(keys(&weather), keys(&theirs_of("weather-agent")));
    assert_eq!(
        weather["tools"]["tools"][0],
        theirs_of("weather-agent")["tools"]["tools"][0],
        "get_weather is described as AgentOS describes it"
    );
    let names: Vec<&str> = weather["tools"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["get_weather", "get_time", "broken"]);
    // A tool that needs confirmation says so, in AgentOS's shape.
    let confirm = ours_of("confirm-agent");
    let their_confirm = theirs_of("confirm-agent");
    assert_same_keys(
        &confirm["tools"]["tools"][0],
        &their_confirm["tools"]["tools"][0],
        &[],
    );
    assert_eq!(confirm["tools"]["tools"][0]["requires_confirmation"], true);
    // No tools, no `tools` key; `GET /agents/{id}` says the same as the list.
    assert!(ours_of("no-tools").get("tools").is_none());
    let one = crate::serve::get(&s.url("/agents/weather-agent")).json();
    assert_eq!(one, weather);

    // An MCP server's tools, listed once it has been started for the description.
    let mcp = crate::serve::get(&s.url("/agents/mcp-agent")).json();
    assert_eq!(
        mcp["tools"],
        json!({"tools": [
            {"name": "get_time", "description": "The time in a city.",
             "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
            {"name": "shout", "description": "Upper-cases a text.",
             "parameters": {"type": "object", "properties": {"text": {"type": "string"}}}}
        ], "tool_call_limit": 4}),
        "{mcp}"
    );
    // A server that cannot start leaves its tools out; the agent is still described.
    let half = crate::serve::get(&s.url("/agents/half-agent"));
    assert_eq!(half.status, 200, "{}", half.body);
    let half = half.json();
    let half_names: Vec<&str> = half["tools"]["tools"]
        .as_array()
        .map(|l| l.iter().filter_map(|t| t["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(half_names, ["get_time"]);
}

#[test]
fn a_model_that_keeps_calling_tools_past_the_limit_ends_the_run() {
    let config = format!(
        "{CONFIG}\n[[agents]]\nid = \"looper\"\nmodel = \"fake:gpt-4o-mini\"\n\
         tools = [\"get_weather\"]\ntool_call_limit = 2\n"
    );
    let s = Server::start_config(&config);
    let a = post_form(
        &s.url("/agents/looper/runs"),
        &[
            ("message", "weather toolsforever"),
            ("stream", "false"),
            ("session_id", "sess-loop"),
        ],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let run = a.json();
    assert_eq!(run["status"], "ERROR", "{run}");
    assert!(
        run["content"]
            .as_str()
            .is_some_and(|c| c.contains("after tool_call_limit (2 rounds)")),
        "{run}"
    );
    // Two rounds of tools, then one call without them: three requests, not an endless loop.
    let requests = s.fake.requests();
    assert_eq!(requests.len(), 3, "{requests:#?}");
    assert!(requests[2].get("tools").is_none(), "{}", requests[2]);
}

#[test]
fn a_stream_cut_mid_answer_ends_the_run_in_error_and_falls_back_when_nothing_was_said() {
    let config = format!(
        "{CONFIG}\n[[agents]]\nid = \"cut\"\nmodel = \"fake:gpt-4o-mini\"\n\n\
         [[agents]]\nid = \"cut-fallback\"\nmodel = \"fake:gpt-4o-mini\"\n\
         fallback_models = [\"test\"]\n"
    );
    let s = Server::start_config(&config);
    let run = |agent: &str, message: &str| {
        let a = post_form(
            &s.url(&format!("/agents/{agent}/runs")),
            &[
                ("message", message),
                ("stream", "true"),
                ("session_id", &format!("sess-{agent}")),
            ],
        );
        assert_eq!(a.status, 200, "{}", a.body);
        a.events()
    };
    // Text had reached the client: the run ends ERROR, keeping it.
    let events = run("cut", "cutoff please");
    assert_eq!(
        names(&events).last(),
        Some(&"RunError"),
        "{:?}",
        names(&events)
    );
    let error = &events.last().unwrap().1;
    assert!(
        error["content"]
            .as_str()
            .is_some_and(|c| c.contains("before the answer was complete")),
        "{error}"
    );
    // Nothing had: the fallback model answers.
    let events = run("cut-fallback", "cutearly please");
    assert_eq!(
        names(&events).last(),
        Some(&"RunCompleted"),
        "{:?}",
        names(&events)
    );
    let run_id = events.last().unwrap().1["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let stored = wait_run(&s, "cut-fallback", &run_id, "sess-cut-fallback");
    assert_eq!(stored["status"], "COMPLETED", "{stored}");
    assert_eq!(stored["model"], "test", "{stored}");
}
