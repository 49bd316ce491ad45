//! Bad input cannot crash, wedge or poison `agentos serve`: each test sends what once did
//! (a path that panicked the router, JSON too deep to read back, huge paging numbers, a
//! stalled body, another user's id, a huge model answer, a config that should not load,
//! the deepest workflow expressions) to the real binary and checks the answer a client gets.
//!
//! See: issue 9 ("no input can crash, wedge or poison the server").

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fake_model::HUGE_ANSWER_BYTES;
use crate::serve::{Server, get, post_form};
use crate::util::TestEnv;

/// The host:port of a server's base URL.
fn authority(server: &Server) -> String {
    server.base.trim_start_matches("http://").to_string()
}

/// Sends raw bytes on a new connection and returns everything the server answered before
/// closing (or `timeout`).
fn raw_exchange(server: &Server, request: &[u8], timeout: Duration) -> String {
    let mut conn = TcpStream::connect(authority(server)).expect("connect");
    conn.set_read_timeout(Some(timeout)).expect("read timeout");
    conn.write_all(request).expect("send");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.windows(4).any(|w| w == b"\r\n\r\n") && has_whole_body(&answer) {
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// Whether a buffered answer holds its whole `content-length` body.
fn has_whole_body(answer: &[u8]) -> bool {
    let text = String::from_utf8_lossy(answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    head.lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .and_then(|v| v.trim().parse::<usize>().ok())
        })
        .is_some_and(|n| body.len() >= n)
}

fn status_of(answer: &str) -> u16 {
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"))
}

#[test]
fn a_path_with_a_broken_escape_is_a_404_not_a_dropped_connection() {
    let s = Server::start();
    let answer = raw_exchange(
        &s,
        b"GET /sessions/%a\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(5),
    );
    assert_eq!(status_of(&answer), 404, "{answer}");
    assert!(answer.contains("\"detail\""), "{answer}");
    // The server is still there.
    assert_eq!(get(&s.url("/health")).status, 200);
}

/// `{"x": [[[…]]]}` nesting `depth` levels in all.
fn nested(depth: usize) -> String {
    format!(
        "{{\"x\":{}{}}}",
        "[".repeat(depth - 1),
        "]".repeat(depth - 1)
    )
}

#[test]
fn json_too_deep_to_store_is_refused_naming_the_field() {
    let s = Server::start();
    let url = s.url("/agents/offline/runs");
    for field in ["session_state", "metadata", "dependencies"] {
        let deep = nested(127);
        let a = post_form(
            &url,
            &[("message", "hi"), ("stream", "false"), (field, &deep)],
        );
        assert_eq!(a.status, 422, "{field}: {}", a.body);
        assert_eq!(
            a.json()["detail"][0]["loc"],
            json!(["body", field]),
            "{}",
            a.body
        );
    }
    let a = post_form(
        &url,
        &[
            ("message", "hi"),
            ("stream", "false"),
            ("output_schema", &nested(100)),
        ],
    );
    assert_eq!(a.status, 422, "{}", a.body);
    // Reasonable nesting is fine.
    let a = post_form(
        &url,
        &[
            ("message", "hi"),
            ("stream", "false"),
            ("session_state", &nested(10)),
        ],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    // Nothing deep was stored: listings work.
    let a = get(&s.url("/sessions"));
    assert_eq!(a.status, 200, "{}", a.body);
    let created = crate::serve::send_json(
        "POST",
        &s.url("/sessions?type=agent"),
        &json!({"session_state": serde_json::from_str::<Value>(&nested(100)).unwrap()}),
    );
    assert_eq!(created.status, 422, "{}", created.body);
}

#[test]
fn rows_written_too_deep_are_read_or_reported_and_never_break_listings() {
    let s = Server::start();
    let url = s.url("/agents/offline/runs");
    let a = post_form(
        &url,
        &[
            ("message", "hi"),
            ("stream", "false"),
            ("session_id", "deep-1"),
        ],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let b = post_form(
        &url,
        &[
            ("message", "hi"),
            ("stream", "false"),
            ("session_id", "fine-1"),
        ],
    );
    assert_eq!(b.status, 200, "{}", b.body);
    // What an older agentos stored: state nesting past serde_json's limit of 128.
    let db = rusqlite::Connection::open(s.db_path()).expect("open the server's db");
    db.execute(
        "UPDATE sessions SET session_state = ?1 WHERE session_id = 'deep-1'",
        [nested(140)],
    )
    .expect("update");
    let list = get(&s.url("/sessions"));
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(
        deep_json(&list.body)["data"].as_array().map(Vec::len),
        Some(2)
    );
    let one = get(&s.url("/sessions/deep-1"));
    assert_eq!(one.status, 200, "{}", one.body);
    assert!(crate::util::keys(&deep_json(&one.body)).contains(&"session_state".to_string()));
    // Past anything agentos reads: the state is reported and shown empty, the rest served.
    db.execute(
        "UPDATE sessions SET session_state = ?1 WHERE session_id = 'deep-1'",
        [nested(1000)],
    )
    .expect("update");
    db.execute(
        "UPDATE runs SET run = '{\"broken' WHERE session_id = 'fine-1'",
        [],
    )
    .expect("update");
    let list = get(&s.url("/sessions"));
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.json()["data"].as_array().map(Vec::len), Some(2));
    let one = get(&s.url("/sessions/deep-1"));
    assert_eq!(one.status, 200, "{}", one.body);
    assert_eq!(one.json()["session_state"], json!({}));
    let runs = get(&s.url("/sessions/fine-1/runs"));
    assert_eq!(runs.status, 200, "{}", runs.body);
    assert_eq!(runs.json(), json!([]));
    drop(db);

    // The CLI reads the same rows.
    let mut env = TestEnv::new();
    env.set_env("AGENTOS_DB", &s.db_path().display().to_string());
    // Both report the row they could not read on stderr and go on.
    env.run(["sessions", "show", "deep-1"])
        .assert_code(0)
        .assert_stderr_contains("session_state of session deep-1 could not be decoded");
    env.run(["sessions", "list"])
        .assert_code(0)
        .assert_stdout_contains("fine-1");
}

/// JSON nesting past serde_json's default limit, as a client with a deeper limit reads it.
fn deep_json(text: &str) -> Value {
    use serde::Deserialize;
    let mut de = serde_json::Deserializer::from_str(text);
    de.disable_recursion_limit();
    Value::deserialize(&mut de).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn numeric_query_parameters_are_bounded() {
    let s = Server::start();
    for query in [
        "limit=116637427867&page=9999999999999",
        "limit=10001",
        "page=99999999999999",
        "limit=-1",
    ] {
        let a = get(&s.url(&format!("/sessions?{query}")));
        assert_eq!(a.status, 422, "{query}: {}", a.body);
        assert!(a.json()["detail"][0]["loc"][0] == "query", "{}", a.body);
    }
    let a = get(&s.url("/sessions?limit=10000&page=1000000000"));
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["data"], json!([]));
    let a = get(&s.url("/sessions/x/runs?created_after=99999999999999999"));
    assert_eq!(a.status, 422, "{}", a.body);
}

#[test]
fn stalled_bodies_time_out_and_connections_are_capped() {
    let s = Server::start_with(
        &["--body-timeout-secs", "0.5", "--max-connections", "3"],
        &[],
    );
    // A declared length over the limit is refused at once, before any body byte.
    let started = Instant::now();
    let answer = raw_exchange(
        &s,
        b"POST /agents/offline/runs HTTP/1.1\r\nHost: x\r\n\
          Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 99999999999\r\n\r\n",
        Duration::from_secs(5),
    );
    assert_eq!(status_of(&answer), 413, "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3));

    // A body that stops arriving is given up on.
    let answer = raw_exchange(
        &s,
        b"POST /agents/offline/runs HTTP/1.1\r\nHost: x\r\n\
          Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nmessage=h",
        Duration::from_secs(10),
    );
    assert_eq!(status_of(&answer), 408, "{answer}");

    // Idle connections take places; past the cap a client is told to come back. The
    // connections above give their places back as the server closes them, which may be
    // a moment after their answers arrive, so the idle ones are opened again until all
    // three hold a place.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (idle, answer) = loop {
        let idle: Vec<TcpStream> = (0..3)
            .map(|_| TcpStream::connect(authority(&s)).expect("connect"))
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        let answer = raw_exchange(
            &s,
            b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
            Duration::from_secs(5),
        );
        if status_of(&answer) == 503 || Instant::now() > deadline {
            break (idle, answer);
        }
    };
    assert_eq!(status_of(&answer), 503, "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );
    drop(idle);
    // Their places come back once they close.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = raw_exchange(
            &s,
            b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            Duration::from_secs(5),
        );
        if status_of(&answer) == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "places never came back: {answer}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

const CONFIRM_CONFIG: &str = r#"
[providers.fake]
kind = "openai"
base_url = "{FAKE}"

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
id = "confirm-agent"
model = "fake:gpt-4o-mini"
instructions = "Delete files when asked."
tools = ["delete_file"]

[[agents]]
id = "capped"
model = "fake:gpt-4o-mini"
max_answer_bytes = 100000

[providers.keyed]
kind = "openai"
base_url = "{FAKE}"
api_key_env = "AGENTOS_TEST_UNSET_KEY"

[[agents]]
id = "needs-key"
model = "keyed:gpt-4o-mini"
"#;

#[test]
fn another_users_id_never_reaches_a_session() {
    let s = Server::start_config(CONFIRM_CONFIG);
    let paused = post_form(
        &s.url("/agents/confirm-agent/runs"),
        &[
            ("message", "Please delete /tmp/alice.txt"),
            ("stream", "false"),
            ("session_id", "alice-s"),
            ("user_id", "alice"),
        ],
    )
    .json();
    assert_eq!(paused["status"], "PAUSED", "{paused}");
    let run_id = paused["run_id"].as_str().expect("run id");
    let reads = [
        "/sessions/alice-s?user_id=bob".to_string(),
        "/sessions/alice-s/runs?user_id=bob".to_string(),
        format!("/sessions/alice-s/runs/{run_id}?user_id=bob"),
        "/agents/confirm-agent/runs?session_id=alice-s&user_id=bob".to_string(),
        format!("/agents/confirm-agent/runs/{run_id}?session_id=alice-s&user_id=bob"),
    ];
    for path in &reads {
        let a = get(&s.url(path));
        assert_eq!(a.status, 404, "{path}: {}", a.body);
        let owner = get(&s.url(&path.replace("user_id=bob", "user_id=alice")));
        assert_eq!(owner.status, 200, "{path} as alice: {}", owner.body);
    }
    let mut tools = paused["tools"].clone();
    tools[0]["confirmed"] = json!(true);
    let continue_url = s.url(&format!("/agents/confirm-agent/runs/{run_id}/continue"));
    let tools = tools.to_string();
    let a = post_form(
        &continue_url,
        &[
            ("tools", tools.as_str()),
            ("session_id", "alice-s"),
            ("user_id", "bob"),
            ("stream", "false"),
        ],
    );
    assert_eq!(a.status, 404, "{}", a.body);
    let resume = post_form(
        &s.url(&format!("/agents/confirm-agent/runs/{run_id}/resume")),
        &[("session_id", "alice-s"), ("user_id", "bob")],
    );
    assert_eq!(resume.status, 404, "{}", resume.body);
    // The tool did not run: the run is still paused, and alice can still approve it.
    let still = get(&s.url(&format!(
        "/agents/confirm-agent/runs/{run_id}?session_id=alice-s"
    )));
    assert_eq!(still.json()["status"], "PAUSED");
    let a = post_form(
        &continue_url,
        &[
            ("tools", tools.as_str()),
            ("session_id", "alice-s"),
            ("user_id", "alice"),
            ("stream", "false"),
        ],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["status"], "COMPLETED", "{}", a.body);
}

/// A team and a workflow on the offline model, for the user-id rule on their routes.
const TEAM_AND_WORKFLOW: &str = r#"
[[agents]]
id = "writer"
model = "test"

[[teams]]
id = "crew"
model = "test"
members = ["writer"]

[[workflows]]
id = "flow"
steps = [{ name = "write", agent = "writer" }]
"#;

/// `path` (which names `user_id=bob`) answers 404, and 200 once it names alice instead.
#[track_caller]
fn hidden_from_bob(s: &Server, path: &str) {
    let a = get(&s.url(path));
    assert_eq!(a.status, 404, "{path}: {}", a.body);
    let owner = get(&s.url(&path.replace("user_id=bob", "user_id=alice")));
    assert_eq!(owner.status, 200, "{path} as alice: {}", owner.body);
}

#[test]
fn another_users_id_never_reaches_a_team_or_workflow_session() {
    let s = Server::start_config(TEAM_AND_WORKFLOW);
    for (kind, id) in [("teams", "crew"), ("workflows", "flow")] {
        let session = format!("alice-{id}");
        let run = post_form(
            &s.url(&format!("/{kind}/{id}/runs")),
            &[
                ("message", "write: hello"),
                ("stream", "false"),
                ("session_id", session.as_str()),
                ("user_id", "alice"),
            ],
        );
        assert_eq!(run.status, 200, "{}", run.body);
        let run_id = run.json()["run_id"].as_str().expect("run id").to_string();
        hidden_from_bob(
            &s,
            &format!("/{kind}/{id}/runs?session_id={session}&user_id=bob"),
        );
        hidden_from_bob(
            &s,
            &format!("/{kind}/{id}/runs/{run_id}?session_id={session}&user_id=bob"),
        );
        if kind == "workflows" {
            let url = s.url(&format!("/workflows/{id}/runs/{run_id}/continue"));
            let bob = post_form(
                &url,
                &[("session_id", session.as_str()), ("user_id", "bob")],
            );
            assert_eq!(bob.status, 404, "{}", bob.body);
            let alice = post_form(
                &url,
                &[("session_id", session.as_str()), ("user_id", "alice")],
            );
            assert_eq!(alice.status, 409, "{}", alice.body);
        }
    }
}

#[test]
fn another_users_id_never_reaches_a_queued_run() {
    let s = Server::start_with(&["--max-runs", "1"], &[]);
    let url = s.url("/agents/story-writer/runs");
    // The server's one place is taken by a slow run, so a background run waits queued.
    let mut busy = crate::processes::Stream::open(
        &url,
        &[
            ("message", "slow story"),
            ("stream", "true"),
            ("session_id", "busy"),
        ],
    );
    busy.until(Duration::from_secs(10), |name, _| name == "RunStarted");
    let accepted = post_form(
        &url,
        &[
            ("message", "queued story"),
            ("stream", "false"),
            ("background", "true"),
            ("session_id", "alice-queued"),
            ("user_id", "alice"),
        ],
    );
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    let run_id = accepted.json()["run_id"]
        .as_str()
        .expect("run id")
        .to_string();
    let path = format!("/agents/story-writer/runs/{run_id}?session_id=alice-queued");
    let bob = get(&s.url(&format!("{path}&user_id=bob")));
    assert_eq!(bob.status, 404, "{}", bob.body);
    let alice = get(&s.url(&format!("{path}&user_id=alice")));
    assert_eq!(alice.status, 200, "{}", alice.body);
    assert_eq!(alice.json()["status"], "PENDING", "{}", alice.body);
    let anyone = get(&s.url(&path));
    assert_eq!(anyone.json()["status"], "PENDING", "{}", anyone.body);

    // Resume follows the queued run for its owner, by the same rule.
    let resume = s.url(&format!("/agents/story-writer/runs/{run_id}/resume"));
    let bob = post_form(&resume, &[("last_event_index", "-1"), ("user_id", "bob")]);
    assert_eq!(bob.status, 404, "{}", bob.body);
    let mut alice = crate::processes::Stream::open(
        &resume,
        &[("last_event_index", "-1"), ("user_id", "alice")],
    );
    let replay = alice.until(Duration::from_secs(10), |name, _| name == "replay");
    assert_eq!(replay["status"], "PENDING", "{replay}");
    drop(alice);

    // Queued into a session that exists already: polled as PENDING by its owner.
    let session = json!({"session_id": "alice-existing", "user_id": "alice",
                         "agent_id": "story-writer"});
    let created = crate::serve::send_json("POST", &s.url("/sessions?type=agent"), &session);
    assert!(created.status < 300, "{}", created.body);
    let accepted = post_form(
        &url,
        &[
            ("message", "queued story"),
            ("stream", "false"),
            ("background", "true"),
            ("session_id", "alice-existing"),
            ("user_id", "alice"),
        ],
    );
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    let run_id = accepted.json()["run_id"].as_str().unwrap().to_string();
    let path = format!("/agents/story-writer/runs/{run_id}?session_id=alice-existing");
    let alice = get(&s.url(&format!("{path}&user_id=alice")));
    assert_eq!(alice.status, 200, "{}", alice.body);
    assert_eq!(alice.json()["status"], "PENDING", "{}", alice.body);
    assert_eq!(get(&s.url(&path)).json()["status"], "PENDING");
    let bob = get(&s.url(&format!("{path}&user_id=bob")));
    assert_eq!(bob.status, 404, "{}", bob.body);
    drop(busy);
}

#[test]
fn bulk_delete_with_a_user_id_deletes_only_that_users_sessions() {
    let s = Server::start();
    for (session, user) in [("alice-1", "alice"), ("bob-1", "bob")] {
        let a = post_form(
            &s.url("/agents/offline/runs"),
            &[
                ("message", "hi"),
                ("stream", "false"),
                ("session_id", session),
                ("user_id", user),
            ],
        );
        assert_eq!(a.status, 200, "{}", a.body);
    }
    let body = json!({"session_ids": ["alice-1", "bob-1"], "session_types": ["agent", "agent"]});
    let a = crate::serve::send_json("DELETE", &s.url("/sessions?user_id=bob"), &body);
    assert_eq!(a.status, 204, "{}", a.body);
    assert_eq!(get(&s.url("/sessions/alice-1")).status, 200);
    assert_eq!(get(&s.url("/sessions/bob-1")).status, 404);
}

#[test]
fn a_huge_answer_is_cut_at_max_answer_bytes_and_stored_once() {
    let s = Server::start_config(CONFIRM_CONFIG);
    let url = s.url("/agents/capped/runs");
    for stream in ["false", "true"] {
        let session = format!("huge-{stream}");
        let a = post_form(
            &url,
            &[
                ("message", "a huge answer please"),
                ("stream", stream),
                ("session_id", &session),
            ],
        );
        assert_eq!(a.status, 200);
        let runs = get(&s.url(&format!("/sessions/{session}/runs"))).json();
        let run = &runs[0];
        assert_eq!(run["status"], "ERROR", "stream={stream}");
        assert!(
            run["content"]
                .as_str()
                .is_some_and(|c| c.contains("max_answer_bytes (100000 bytes)")),
            "{}",
            run["content"]
        );
        let kept: usize = run["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .filter(|m| m["role"] == "assistant")
            .filter_map(|m| m["content"].as_str())
            .map(str::len)
            .sum();
        assert!(
            kept > 0 && kept <= 100_000,
            "partial content kept: {kept} bytes"
        );
    }
    // The row holds the text once.
    let db = rusqlite::Connection::open(s.db_path()).expect("open db");
    let row_bytes: i64 = db
        .query_row(
            "SELECT SUM(length(run) + length(events) + COALESCE(length(content), 0)) FROM runs",
            [],
            |r| r.get(0),
        )
        .expect("sum");
    assert!(
        row_bytes < 2 * 100_000 + 40_000,
        "{row_bytes} bytes for two capped runs"
    );
    const { assert!(HUGE_ANSWER_BYTES > 100_000) };
}

#[test]
fn runs_over_the_limit_are_told_when_to_retry() {
    let s = Server::start_with(&["--max-runs", "1"], &[]);
    let url = s.url("/agents/story-writer/runs");
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let slow = {
        let url = url.clone();
        std::thread::spawn(move || {
            crate::serve::stream_until(&url, &[("message", "a slow story")], |name, event| {
                if name == "RunStarted" {
                    let _ = started_tx.send(event["run_id"].as_str().unwrap_or("").to_string());
                }
                true
            })
        })
    };
    let run_id = started_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the slow run started");
    let a = post_form(&url, &[("message", "hi"), ("stream", "false")]);
    assert_eq!(a.status, 429, "{}", a.body);
    assert_eq!(a.header("retry-after"), Some("1"), "{:?}", a.headers);
    assert!(a.json()["detail"].is_string());
    let cancel = post_form(
        &s.url(&format!("/agents/story-writer/runs/{run_id}/cancel")),
        &[],
    );
    assert_eq!(cancel.status, 200);
    let events = slow.join().expect("slow run");
    assert!(events.iter().any(|(name, _)| name == "RunCancelled"));
}

#[test]
fn a_missing_provider_key_is_an_error_run_naming_the_variable() {
    let s = Server::start_config(CONFIRM_CONFIG);
    let url = s.url("/agents/needs-key/runs");
    let a = post_form(&url, &[("message", "hi"), ("stream", "false")]);
    assert_eq!(a.status, 200, "{}", a.body);
    let run = a.json();
    assert_eq!(run["status"], "ERROR");
    assert_eq!(
        run["content"],
        "provider `keyed` needs an API key: set AGENTOS_TEST_UNSET_KEY"
    );
    let a = post_form(&url, &[("message", "hi"), ("stream", "true")]);
    let events = a.events();
    let last = events.last().expect("events");
    assert_eq!(last.0, "RunError");
    assert!(
        last.1["content"]
            .as_str()
            .is_some_and(|c| c.contains("AGENTOS_TEST_UNSET_KEY"))
    );
    assert_eq!(s.fake.request_count(), 0, "nothing reached the provider");
}

#[test]
fn ids_that_cannot_be_a_path_segment_and_a_redefined_test_provider_are_refused() {
    let env = TestEnv::new();
    env.write_config("[[agents]]\nid = \"..\"\nmodel = \"test\"\n");
    env.run(["check"])
        .assert_code(2)
        .assert_stderr_contains("agents.toml:2")
        .assert_stderr_contains("agents[0].id");
    env.write_config("[[agents]]\nid = \"a\"\nmodel = \"test\"\n\n[providers.test]\nkind = \"openai\"\nbase_url = \"http://x/v1\"\n");
    env.run(["check"])
        .assert_code(2)
        .assert_stderr_contains("agents.toml:5")
        .assert_stderr_contains("providers.test")
        .assert_stderr_contains("built-in offline model");
}

#[test]
fn a_file_that_is_not_utf8_is_reported_with_its_line() {
    let env = TestEnv::new();
    let path = env.config_path();
    std::fs::write(
        path,
        b"[[agents]]\nid = \"a\"\nmodel = \"test\"\ninstructions = \"caf\xe9\"\n",
    )
    .expect("write");
    env.run(["check"])
        .assert_code(2)
        .assert_stderr_contains("agents.toml:4")
        .assert_stderr_contains("not valid UTF-8");
}

/// A workflow whose condition, loop and router hold the deepest expressions agentos accepts
/// (a chain of 63 operators, 31 nested macros, 32 nested conditionals), evaluated inside
/// the run's task.
fn deepest_expressions_config() -> String {
    let chain = vec!["1"; 63].join(" + ") + " == 63";
    let macros = format!("{}true{}", "[1].all(x, ".repeat(31), ")".repeat(31));
    let route = format!(
        "{}\"checker\"{}",
        "true ? (".repeat(31),
        ") : \"writer\"".repeat(31)
    );
    format!(
        r#"
[[agents]]
id = "writer"
model = "test"
instructions = "You write."

[[agents]]
id = "checker"
model = "test"
instructions = "You check."

[[workflows]]
id = "deep"

[[workflows.steps]]
name = "gate"
type = "condition"
when = '{chain}'
steps = [{{ name = "deep-then", agent = "writer" }}]

[[workflows.steps]]
name = "again"
type = "loop"
max_iterations = 3
until = '{macros}'
steps = [{{ name = "deep-loop", agent = "writer" }}]

[[workflows.steps]]
name = "pick"
type = "router"
route = '{route}'
steps = [{{ name = "writer", agent = "writer" }}, {{ name = "checker", agent = "checker" }}]
"#
    )
}

#[test]
fn the_deepest_accepted_expressions_evaluate_in_a_run() {
    let config = deepest_expressions_config();
    let s = Server::start_config(&config);
    let a = post_form(
        &s.url("/workflows/deep/runs"),
        &[
            ("message", "go"),
            ("stream", "false"),
            ("session_id", "deep-s"),
        ],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let run = a.json();
    assert_eq!(run["status"], "COMPLETED", "{run}");
    let text = run.to_string();
    assert!(text.contains("deep-then"), "the condition held: {text}");
    assert!(text.contains("deep-loop"), "the loop ran: {text}");
    assert!(
        run["content"]
            .as_str()
            .is_some_and(|c| c.contains("You check.")),
        "the router picked the checker: {run}"
    );

    let env = TestEnv::new();
    env.write_config(&config);
    let out = env.run(["run", "deep", "-m", "go"]);
    out.assert_success();
    assert!(out.stdout().contains("You check."), "{}", out.stdout());

    // The engine's stack does not depend on the main thread's (`ulimit -s`).
    let agentos = env.cmd(["run", "deep", "-m", "go"]);
    let mut small_stack = std::process::Command::new("sh");
    small_stack
        .arg("-c")
        .arg("ulimit -s 1024 && exec \"$0\" \"$@\"")
        .arg(agentos.get_program())
        .args(agentos.get_args())
        .current_dir(agentos.get_current_dir().expect("the test's directory"))
        .stdin(std::process::Stdio::null());
    for (key, value) in agentos.get_envs() {
        match value {
            Some(value) => small_stack.env(key, value),
            None => small_stack.env_remove(key),
        };
    }
    let out = crate::util::run_command(small_stack, None);
    out.assert_success();
    assert!(out.stdout().contains("You check."), "{}", out.stdout());
}

#[test]
fn every_log_line_of_a_run_carries_its_run_and_session_ids() {
    let s = Server::start_with(&[], &[("AGENTOS_LOG", "agentos=debug,warn")]);
    let url = s.url("/agents/offline/runs");
    let a = post_form(
        &url,
        &[
            ("message", "hi"),
            ("stream", "false"),
            ("session_id", "span-1"),
        ],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    // A state no reader can decode: opening the session for the next run reports it, from
    // inside the run's span.
    let db = rusqlite::Connection::open(s.db_path()).expect("open the server's db");
    db.execute(
        "UPDATE sessions SET session_state = ?1 WHERE session_id = 'span-1'",
        [nested(1000)],
    )
    .expect("update");
    drop(db);
    let b = post_form(
        &url,
        &[
            ("message", "again"),
            ("stream", "false"),
            ("session_id", "span-1"),
            ("run_id", "span-run-2"),
        ],
    );
    assert_eq!(b.status, 200, "{}", b.body);
    // A run in a new session: its id, made by the engine, reaches the span too.
    let c = post_form(
        &url,
        &[
            ("message", "new"),
            ("stream", "false"),
            ("run_id", "span-run-3"),
        ],
    );
    assert_eq!(c.status, 200, "{}", c.body);
    let new_session = c.json()["session_id"]
        .as_str()
        .expect("session id")
        .to_string();

    let deadline = Instant::now() + Duration::from_secs(10);
    let mut lines = Vec::new();
    let (mut start_line, mut end_line) = (None, None);
    while (start_line.is_none() || end_line.is_none()) && Instant::now() < deadline {
        lines.extend(s.stderr_lines());
        start_line = lines
            .iter()
            .find(|l| l.contains("session_state of session span-1 could not be decoded"))
            .cloned();
        end_line = lines
            .iter()
            .find(|l| l.contains("run finished") && l.contains("span-run-3"))
            .cloned();
        std::thread::sleep(Duration::from_millis(20));
    }
    let start_line = start_line.unwrap_or_else(|| panic!("no decode warning: {lines:#?}"));
    assert!(
        start_line.contains("run_id=span-run-2") && start_line.contains("session_id=span-1"),
        "{start_line}"
    );
    // Every line names the session once, also those logged after it was opened.
    for line in lines.iter().filter(|l| l.contains("span-run-2")) {
        assert_eq!(line.matches("session_id=").count(), 1, "{line}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("run finished") && l.contains("span-run-2")),
        "{lines:#?}"
    );
    let end_line = end_line.unwrap_or_else(|| panic!("no end of run-3: {lines:#?}"));
    assert!(
        end_line.contains(&format!("session_id={new_session}")),
        "{end_line}"
    );
}
