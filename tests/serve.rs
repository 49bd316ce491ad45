//! `agentos serve` through the real binary on port 0, against the fake model: answers are
//! compared key by key with the captures of a real AgentOS.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fake_model::FakeModel;

/// A running `agentos serve` with its own config and database.
pub struct Server {
    child: Child,
    pub base: String,
    pub dir: tempfile::TempDir,
    pub fake: FakeModel,
    stderr_rx: mpsc::Receiver<String>,
}

pub fn config_for(fake: &FakeModel) -> String {
    format!(
        r#"
[providers.fake]
kind = "openai"
base_url = "{}"

[[agents]]
id = "story-writer"
name = "Story Writer"
model = "fake:gpt-4o-mini"
instructions = "You write very short stories. The robot's name is {{robot_name}}."
dependencies = {{ robot_name = "Default-Bot" }}
add_history_to_context = true

[[agents]]
id = "offline"
name = "Offline"
model = "test"
instructions = "You answer briefly."
"#,
        fake.base_url()
    )
}

impl Server {
    pub fn start() -> Server {
        Self::start_with(&[], &[])
    }

    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Server {
        Self::start_full(None, args, env)
    }

    /// A server over this agents.toml text; `{FAKE}` stands for the fake model's base URL
    /// and `{DIR}` for the server's temp dir.
    pub fn start_config(config: &str) -> Server {
        Self::start_full(Some(config), &[], &[])
    }

    pub fn start_full(config_text: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> Server {
        let fake = FakeModel::start();
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("agents.toml");
        let text = match config_text {
            Some(t) => t
                .replace("{FAKE}", &fake.base_url())
                .replace("{DIR}", &dir.path().display().to_string()),
            None => config_for(&fake),
        };
        std::fs::write(&config, text).expect("write config");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_agentos"));
        cmd.args(["serve", "--port", "0"])
            .args(args)
            .env("AGENTOS_CONFIG", &config)
            .env("AGENTOS_DB", dir.path().join("agentos.db"))
            .env_remove("OS_SECURITY_KEY")
            .env_remove("OPENAI_API_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn agentos serve");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let base = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(idx) = line.find("http://") {
                        break line[idx..].trim().to_string();
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!("agentos serve did not print its address");
                }
            }
        };
        Server {
            child,
            base,
            dir,
            fake,
            stderr_rx: rx,
        }
    }

    /// Stops this server and starts another on the same config and database.
    pub fn restart(mut self) -> Server {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_agentos"));
        cmd.args(["serve", "--port", "0"])
            .env("AGENTOS_CONFIG", self.dir.path().join("agents.toml"))
            .env("AGENTOS_DB", self.db_path())
            .env_remove("OS_SECURITY_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn agentos serve");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("restarted server prints its address");
        let idx = line.find("http://").expect("address in the first line");
        self.base = line[idx..].trim().to_string();
        self.child = child;
        self.stderr_rx = rx;
        self
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("agentos.db")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server as a crash would (SIGKILL): nothing of it runs after this.
    pub fn terminate_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr_rx.try_iter().collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// A response: status, headers of interest, body text.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn events(&self) -> Vec<(String, Value)> {
        parse_sse(&self.body)
    }
}

fn answer(resp: ureq::http::Response<ureq::Body>) -> Answer {
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = resp.into_body().read_to_string().unwrap_or_default();
    Answer {
        status,
        headers,
        body,
    }
}

pub fn get(url: &str) -> Answer {
    answer(agent().get(url).call().expect("GET"))
}

pub fn get_auth(url: &str, auth: &str) -> Answer {
    answer(
        agent()
            .get(url)
            .header("Authorization", auth)
            .call()
            .expect("GET"),
    )
}

pub fn post_form(url: &str, fields: &[(&str, &str)]) -> Answer {
    answer(
        agent()
            .post(url)
            .send_form(fields.iter().copied())
            .expect("POST form"),
    )
}

pub fn send_json(method: &str, url: &str, body: &Value) -> Answer {
    let agent = agent();
    let resp = match method {
        "POST" => agent.post(url).send_json(body),
        "PATCH" => agent.patch(url).send_json(body),
        "DELETE" => agent.delete(url).force_send_body().send_json(body),
        _ => panic!("method {method}"),
    };
    answer(resp.expect("send JSON"))
}

/// A multipart body as `curl -F` sends it.
pub fn post_multipart(url: &str, fields: &[(&str, &str)]) -> Answer {
    let boundary = "------------------------agentostestboundary";
    let mut body = String::new();
    for (k, v) in fields {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    answer(
        agent()
            .post(url)
            .header(
                "Content-Type",
                &format!("multipart/form-data; boundary={boundary}"),
            )
            .send(body.as_bytes())
            .expect("POST multipart"),
    )
}

pub fn parse_sse(text: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut name = None;
        let mut data = None;
        for line in block.lines() {
            if let Some(n) = line.strip_prefix("event: ") {
                name = Some(n.to_string());
            } else if let Some(d) = line.strip_prefix("data: ") {
                data = Some(d.to_string());
            }
        }
        if let (Some(name), Some(data)) = (name, data) {
            let value: Value = serde_json::from_str(&data)
                .unwrap_or_else(|e| panic!("bad SSE data ({e}): {data}"));
            out.push((name, value));
        }
    }
    out
}

pub fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

/// The body of a capture of the real AgentOS.
pub fn capture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(crate::util::CAPTURES_DIR)
        .join(format!("{name}.http"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("capture {} missing: {e}", path.display()));
    let text = text.replace("\r\n", "\n");
    match text.find("\n\n") {
        Some(i) => text[i + 2..].to_string(),
        None => String::new(),
    }
}

pub fn capture_json(name: &str) -> Value {
    serde_json::from_str(capture(name).trim())
        .unwrap_or_else(|e| panic!("capture {name} is not JSON: {e}"))
}

pub fn capture_status(name: &str) -> u16 {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(crate::util::CAPTURES_DIR)
        .join(format!("{name}.http"));
    let text = std::fs::read_to_string(&path).expect("capture");
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line")
}

/// Keys that identify or time a value differ between runs; everything else must match.
fn keys(v: &Value) -> Vec<String> {
    match v {
        Value::Object(m) => {
            let mut k: Vec<String> = m.keys().cloned().collect();
            k.sort();
            k
        }
        _ => Vec::new(),
    }
}

/// Same key set at the top level (and in nested objects named in `nested`).
#[track_caller]
pub fn assert_same_keys(ours: &Value, theirs: &Value, nested: &[&str]) {
    assert_eq!(
        keys(ours),
        keys(theirs),
        "top-level keys differ:\nours:   {ours}\ntheirs: {theirs}"
    );
    for key in nested {
        assert_eq!(
            keys(&ours[*key]),
            keys(&theirs[*key]),
            "keys of `{key}` differ:\nours:   {}\ntheirs: {}",
            ours[*key],
            theirs[*key]
        );
    }
}

/// Reads an SSE response incrementally, handing each event to `on_event` until it
/// returns false or the stream ends. Returns the events seen.
pub fn stream_until(
    url: &str,
    fields: &[(&str, &str)],
    mut on_event: impl FnMut(&str, &Value) -> bool,
) -> Vec<(String, Value)> {
    let resp = agent()
        .post(url)
        .send_form(fields.iter().copied())
        .expect("POST stream");
    assert_eq!(resp.status().as_u16(), 200);
    let mut reader = BufReader::new(resp.into_body().into_reader());
    let mut events = Vec::new();
    let mut name = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let l = line.trim_end();
        if let Some(n) = l.strip_prefix("event: ") {
            name = n.to_string();
        } else if let Some(d) = l.strip_prefix("data: ") {
            let value: Value = serde_json::from_str(d).expect("SSE data is JSON");
            events.push((name.clone(), value.clone()));
            if !on_event(&name, &value) {
                break;
            }
        }
    }
    events
}

/// Polls a run until it is no longer RUNNING.
pub fn wait_run(server: &Server, agent_id: &str, run_id: &str, session_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let a = get(&server.url(&format!(
            "/agents/{agent_id}/runs/{run_id}?session_id={session_id}"
        )));
        if a.status == 200 {
            let v = a.json();
            let status = v["status"].as_str().unwrap_or("");
            if status != "RUNNING" && status != "PENDING" {
                return v;
            }
        }
        assert!(Instant::now() < deadline, "run {run_id} did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_all(mut r: impl Read) -> String {
    let mut s = String::new();
    let _ = r.read_to_string(&mut s);
    s
}

// ---------------------------------------------------------------------------------------

#[test]
fn info_endpoints_match_captures() {
    let s = Server::start();
    let health = get(&s.url("/health"));
    assert_eq!(health.status, 200);
    assert_same_keys(&health.json(), &capture_json("001_get_health"), &[]);
    let root = get(&s.url("/"));
    assert_same_keys(&root.json(), &capture_json("002_get_root"), &[]);
    let info = get(&s.url("/info"));
    assert_eq!(info.status, 200);
    assert_eq!(info.json()["agent_count"], 2);
    let agents = get(&s.url("/agents")).json();
    let ids: Vec<&str> = agents
        .as_array()
        .expect("agents list")
        .iter()
        .filter_map(|a| a["id"].as_str())
        .collect();
    assert_eq!(ids, ["story-writer", "offline"]);
    let one = get(&s.url("/agents/story-writer"));
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["model"]["model"], "gpt-4o-mini");
    let missing = get(&s.url("/agents/nope"));
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json(), capture_json("007_get_agent_unknown_404"));
    assert_eq!(get(&s.url("/teams")).json(), json!([]));
    assert_eq!(get(&s.url("/workflows")).json(), json!([]));
    assert_eq!(
        get(&s.url("/teams/research-team")).json(),
        capture_json("012_get_team_unknown_404")
    );
    let openapi = get(&s.url("/openapi.json"));
    assert_eq!(openapi.status, 200);
    assert!(openapi.json()["paths"]["/agents/{agent_id}/runs"].is_object());
}

#[test]
fn unknown_route_and_wrong_method() {
    let s = Server::start();
    let a = get(&s.url("/nope"));
    assert_eq!(a.status, 404);
    assert_eq!(a.json(), capture_json("410_unknown_route_404"));
    let a = get(&s.url("/agents/story-writer/runs/abc/cancel"));
    assert_eq!(a.status, 405);
    assert_eq!(a.json(), capture_json("144_agent_cancel_with_get_405"));
    assert_eq!(a.header("allow"), Some("POST"));
}

#[test]
fn nonstream_run_matches_capture() {
    let s = Server::start();
    for post in [post_form, post_multipart] {
        let a = post(
            &s.url("/agents/story-writer/runs"),
            &[
                ("message", "Form urlencoded body"),
                ("stream", "false"),
                ("user_id", "user-2"),
            ],
        );
        assert_eq!(a.status, 200, "{}", a.body);
        let ours = a.json();
        let theirs = capture_json("103_agent_run_urlencoded_nonstream");
        assert_same_keys(&ours, &theirs, &["metrics", "input"]);
        assert_eq!(ours["content"], theirs["content"]);
        assert_eq!(ours["status"], "COMPLETED");
        assert_eq!(ours["messages"].as_array().map(Vec::len), Some(3));
        assert_same_keys(&ours["messages"][2], &theirs["messages"][2], &["metrics"]);
        assert!(ours["created_at"].is_i64());
    }
}

#[test]
fn dependencies_session_state_and_metadata() {
    let s = Server::start();
    let a = post_form(
        &s.url("/agents/story-writer/runs"),
        &[
            ("message", "Story with custom robot"),
            ("stream", "false"),
            ("user_id", "user-1"),
            ("session_id", "sess-story-3"),
            ("dependencies", r#"{"robot_name": "Robo-42"}"#),
            ("session_state", r#"{"counter": 1, "tags": ["a"]}"#),
            ("metadata", r#"{"source": "capture", "n": 1}"#),
        ],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let v = a.json();
    assert_eq!(
        v["content"],
        "Story for 'Story with custom robot'. Starring Robo-42. The end."
    );
    assert_eq!(v["session_state"], json!({"counter": 1, "tags": ["a"]}));
    assert_eq!(v["metadata"], json!({"source": "capture", "n": 1}));
    assert_same_keys(
        &v,
        &capture_json("106_agent_run_session_state_metadata_nonstream"),
        &[],
    );
}

#[test]
fn form_errors_match_captures() {
    let s = Server::start();
    let url = s.url("/agents/story-writer/runs");
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("401_agent_run_missing_message_422", &[("stream", "false")]),
        (
            "409_agent_run_empty_message",
            &[("message", ""), ("stream", "false")],
        ),
        (
            "403_agent_run_bad_stream_bool_422",
            &[("message", "hi"), ("stream", "maybe")],
        ),
        (
            "404_agent_run_invalid_output_schema_json_422",
            &[
                ("message", "hi"),
                ("stream", "false"),
                ("output_schema", "{not json"),
            ],
        ),
        (
            "405_agent_run_output_schema_not_object_422",
            &[
                ("message", "hi"),
                ("stream", "false"),
                ("output_schema", r#"{"type":"array"}"#),
            ],
        ),
        (
            "408_agent_run_bad_version_422",
            &[("message", "hi"), ("stream", "false"), ("version", "abc")],
        ),
        (
            "406_agent_run_metadata_not_object_400",
            &[
                ("message", "hi"),
                ("stream", "false"),
                ("metadata", "[1,2]"),
            ],
        ),
    ];
    for (capture_name, fields) in cases {
        let a = post_multipart(&url, fields);
        assert_eq!(
            a.status,
            capture_status(capture_name),
            "{capture_name}: {}",
            a.body
        );
        assert_eq!(a.json(), capture_json(capture_name), "{capture_name}");
    }
    let a = post_form(&s.url("/agents/nope/runs"), &[("message", "hi")]);
    assert_eq!(a.status, 404);
    assert_eq!(a.json(), capture_json("400_agent_run_unknown_agent_404"));
    let a = post_form(&s.url("/agents/nope/runs"), &[("stream", "false")]);
    assert_eq!(a.status, 422, "validation comes before the agent lookup");
    // A JSON body is not a form: message is missing.
    let a = send_json("POST", &url, &json!({"message": "hi"}));
    assert_eq!(a.status, 422);
    assert_eq!(a.json(), capture_json("402_agent_run_json_body_422"));
}

#[test]
fn versions_are_integers_and_uploads_are_refused() {
    let s = Server::start_config(
        "[[agents]]\nid = \"story-writer\"\nmodel = \"test\"\n\n\
         [[teams]]\nid = \"story-team\"\nmodel = \"test\"\nmembers = [\"story-writer\"]\n",
    );
    for kind in ["agents/story-writer", "teams/story-team"] {
        let url = s.url(&format!("/{kind}/runs"));
        for ok in ["2", " 3 ", "4.0", "-1", "", "862184483326941771312660480"] {
            let a = post_multipart(
                &url,
                &[("message", "hi"), ("stream", "false"), ("version", ok)],
            );
            assert_eq!(a.status, 200, "{kind} version {ok:?}: {}", a.body);
        }
        for bad in ["1.5", "abc", "1e3", "+", "0x10"] {
            let a = post_multipart(
                &url,
                &[("message", "hi"), ("stream", "false"), ("version", bad)],
            );
            assert_eq!(a.status, 422, "{kind} version {bad:?}: {}", a.body);
            assert_eq!(a.json()["detail"][0]["type"], "int_parsing");
            assert_eq!(a.json()["detail"][0]["input"], bad);
        }
    }

    // An uploaded file is refused, not dropped, and no run is stored; an empty file input
    // (a browser's form with no file chosen) is no upload.
    let upload = |filename: &str, data: &str, session: &str| {
        let boundary = "agentosuploadboundary";
        let body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\nSummarise\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"stream\"\r\n\r\nfalse\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"session_id\"\r\n\r\n{session}\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{filename}\"\r\n\
             Content-Type: text/plain\r\n\r\n{data}\r\n--{boundary}--\r\n"
        );
        answer(
            agent()
                .post(&s.url("/agents/story-writer/runs"))
                .header(
                    "Content-Type",
                    &format!("multipart/form-data; boundary={boundary}"),
                )
                .send(body.as_bytes())
                .expect("POST upload"),
        )
    };
    let a = upload("notes.txt", "some notes", "sess-upload");
    assert_eq!(a.status, 400, "{}", a.body);
    let detail = a.json()["detail"].as_str().unwrap_or_default().to_string();
    assert!(
        detail.contains("notes.txt") && detail.contains("not supported"),
        "{detail}"
    );
    let runs = get(&s.url("/sessions/sess-upload/runs"));
    assert_eq!(
        runs.status, 404,
        "no session or run is stored: {}",
        runs.body
    );
    let a = upload("", "", "sess-no-upload");
    assert_eq!(a.status, 200, "{}", a.body);
}

#[test]
fn streaming_run_matches_capture_sequence() {
    let s = Server::start();
    let a = post_form(
        &s.url("/agents/story-writer/runs"),
        &[
            ("message", "Tell me another story"),
            ("session_id", "sess-story-1"),
            ("user_id", "user-1"),
        ],
    );
    assert_eq!(a.status, 200);
    assert_eq!(
        a.header("content-type"),
        Some("text/event-stream; charset=utf-8")
    );
    let ours = a.events();
    let theirs = parse_sse(&capture("101_agent_run_stream_user_session"));
    let ours_names = names(&ours);
    assert_eq!(ours_names.first(), Some(&"RunStarted"));
    assert_eq!(
        &ours_names[ours_names.len() - 3..],
        [
            "ModelRequestCompleted",
            "RunContentCompleted",
            "RunCompleted"
        ]
    );
    for (name, value) in &ours {
        let reference = theirs
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("event {name} not in the capture"));
        assert_same_keys(value, &reference.1, &[]);
        assert_eq!(value["event"], name.as_str());
    }
    // Framing: event line, one data line, blank line; no [DONE].
    assert!(a.body.starts_with("event: RunStarted\ndata: {"));
    assert!(!a.body.contains("[DONE]"));
    let completed = &ours.last().expect("events").1;
    assert_eq!(
        completed["content"],
        "Story for 'Tell me another story'. Starring Default-Bot. The end."
    );
}

#[test]
fn output_schema_stream_and_nonstream() {
    let s = Server::start();
    let schema = r#"{"type":"object","title":"MovieScript","properties":{"title":{"type":"string","description":"Movie title"},"genre":{"type":"string"},"year":{"type":"integer"},"characters":{"type":"array","items":{"type":"string"}}},"required":["title","genre","year","characters"]}"#;
    let a = post_form(
        &s.url("/agents/story-writer/runs"),
        &[
            ("message", "Write a movie script"),
            ("stream", "false"),
            ("output_schema", schema),
        ],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let v = a.json();
    assert_eq!(v["content_type"], "MovieScript");
    assert!(v["content"].is_object());
    assert_same_keys(
        &v,
        &capture_json("107_agent_run_output_schema_pydantic_nonstream"),
        &[],
    );
    let sent = s.fake.requests().last().cloned().expect("request");
    assert_eq!(sent["response_format"]["type"], "json_schema");
    assert_eq!(
        sent["response_format"]["json_schema"]["name"],
        "MovieScript"
    );
    assert_eq!(sent["response_format"]["json_schema"]["strict"], true);

    let a = post_form(
        &s.url("/agents/story-writer/runs"),
        &[
            ("message", "Write a movie script"),
            ("output_schema", schema),
        ],
    );
    let events = a.events();
    assert_eq!(
        names(&events),
        [
            "RunStarted",
            "ModelRequestStarted",
            "RunContent",
            "ModelRequestCompleted",
            "RunContentCompleted",
            "RunCompleted"
        ]
    );
    assert!(events[2].1["content"].is_object());

    // use_json_schema with a plain schema: agentos sends a valid json_schema format.
    let a = post_form(
        &s.url("/agents/story-writer/runs"),
        &[
            ("message", "Write a movie script"),
            ("stream", "false"),
            ("output_schema", schema),
            ("use_json_schema", "true"),
        ],
    );
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["content_type"], "dict");
    assert!(a.json()["content"].is_object());
    let sent = s.fake.requests().last().cloned().expect("request");
    assert_eq!(sent["response_format"]["type"], "json_schema");
}

#[test]
fn model_error_nonstream_and_stream() {
    let s = Server::start();
    let a = post_form(
        &s.url("/agents/story-writer/runs"),
        &[
            ("message", "please fail now"),
            ("stream", "false"),
            ("session_id", "sess-fail-1"),
        ],
    );
    assert_eq!(a.status, 200);
    let v = a.json();
    assert_eq!(v["status"], "ERROR");
    assert!(
        v["content"]
            .as_str()
            .unwrap_or("")
            .contains("fake upstream failure")
    );
    assert_same_keys(
        &v,
        &capture_json("130_agent_model_error_nonstream"),
        &["metrics"],
    );

    let a = post_form(
        &s.url("/agents/story-writer/runs"),
        &[
            ("message", "please fail now"),
            ("session_id", "sess-fail-1"),
        ],
    );
    let events = a.events();
    assert_eq!(
        names(&events),
        ["RunStarted", "ModelRequestStarted", "RunError"]
    );
    let theirs = parse_sse(&capture("131_agent_model_error_stream"));
    assert_same_keys(&events[2].1, &theirs.last().expect("event").1, &[]);
}

#[test]
fn cancel_streaming_run_mid_stream() {
    let s = Server::start();
    let url = s.url("/agents/story-writer/runs");
    let mut run_id = String::new();
    let mut cancelled = false;
    let started = Instant::now();
    let events = stream_until(
        &url,
        &[
            ("message", "tell a slow story"),
            ("session_id", "sess-cancel-1"),
        ],
        |name, v| {
            if name == "RunStarted" {
                run_id = v["run_id"].as_str().unwrap_or("").to_string();
            }
            if name == "RunContent" && v["content"] == "slow-1 " && !cancelled {
                let a = post_form(
                    &s.url(&format!("/agents/story-writer/runs/{run_id}/cancel")),
                    &[],
                );
                assert_eq!(a.status, 200);
                assert_eq!(a.json(), json!({}));
                cancelled = true;
            }
            true
        },
    );
    assert!(cancelled);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cancel ended the stream quickly"
    );
    let n = names(&events);
    assert_eq!(&n[n.len() - 2..], ["RunCancelled", "RunCompleted"]);
    let theirs = parse_sse(&capture("140_agent_cancel_running_stream"));
    let reference = theirs
        .iter()
        .find(|(n, _)| n == "RunCancelled")
        .expect("capture");
    assert_same_keys(&events[events.len() - 2].1, &reference.1, &[]);
    let stored = wait_run(&s, "story-writer", &run_id, "sess-cancel-1");
    assert_eq!(stored["status"], "CANCELLED");
    assert!(stored["content"].as_str().unwrap_or("").contains("slow-0"));
}

#[test]
fn cancel_nonstream_run_and_cancel_before_start() {
    let s = Server::start();
    let base = s.url("/agents/story-writer/runs");
    // Cancel a non-streaming run by the run_id the client chose, while the model stalls.
    let handle = {
        let base = base.clone();
        std::thread::spawn(move || {
            post_form(
                &base,
                &[
                    ("message", "stall forever"),
                    ("stream", "false"),
                    ("run_id", "client-run-1"),
                    ("session_id", "sess-cancel-2"),
                ],
            )
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.fake.request_count() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let started = Instant::now();
    let a = post_form(&format!("{base}/client-run-1/cancel"), &[]);
    assert_eq!(a.status, 200);
    let answer = handle.join().expect("request thread");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "cancel aborts the silent model at once"
    );
    assert_eq!(answer.status, 200);
    let v = answer.json();
    assert_eq!(v["status"], "CANCELLED");
    assert_same_keys(
        &v,
        &capture_json("146_agent_cancel_running_nonstream_client_run_id"),
        &[],
    );

    // Cancel before start: the run starts cancelled.
    assert_eq!(
        post_form(&format!("{base}/early-run/cancel"), &[]).status,
        200
    );
    let a = post_form(
        &base,
        &[
            ("message", "hello"),
            ("stream", "false"),
            ("run_id", "early-run"),
        ],
    );
    assert_eq!(a.json()["status"], "CANCELLED");
    // Unknown agent.
    let a = post_form(&s.url("/agents/nope/runs/x/cancel"), &[]);
    assert_eq!(a.status, 404);
    assert_eq!(a.json(), capture_json("143_agent_cancel_unknown_agent_404"));
}

#[test]
fn client_disconnect_cancels_inline_stream() {
    let s = Server::start();
    let mut run_id = String::new();
    stream_until(
        &s.url("/agents/story-writer/runs"),
        &[("message", "tell a slow story"), ("session_id", "sess-dc")],
        |name, v| {
            if name == "RunStarted" {
                run_id = v["run_id"].as_str().unwrap_or("").to_string();
            }
            name != "RunContent" || v["content"] != "slow-0 "
        },
    );
    // The reader is dropped: the server cancels the run.
    let stored = wait_run(&s, "story-writer", &run_id, "sess-dc");
    assert_eq!(stored["status"], "CANCELLED");
}

#[test]
fn background_run_poll_and_resume() {
    let s = Server::start();
    let url = s.url("/agents/story-writer/runs");
    let a = post_form(
        &url,
        &[
            ("message", "background story"),
            ("stream", "false"),
            ("background", "true"),
            ("session_id", "sess-bg-1"),
        ],
    );
    assert_eq!(a.status, 202);
    let v = a.json();
    assert_same_keys(
        &v,
        &capture_json("412_agent_run_background_nonstream_202"),
        &[],
    );
    assert_eq!(v["status"], "PENDING");
    let run_id = v["run_id"].as_str().expect("run id").to_string();
    let done = wait_run(&s, "story-writer", &run_id, "sess-bg-1");
    assert_eq!(done["status"], "COMPLETED");

    // Background stream: events carry event_index; resume replays from an index.
    let a = post_form(
        &url,
        &[
            ("message", "background streamed story"),
            ("background", "true"),
            ("session_id", "sess-bg-2"),
        ],
    );
    let events = a.events();
    for (i, (_, v)) in events.iter().enumerate() {
        assert_eq!(v["event_index"], i as u64);
    }
    let run_id = events[0].1["run_id"].as_str().expect("run id").to_string();
    let resumed = post_form(
        &format!("{url}/{run_id}/resume"),
        &[("last_event_index", "2"), ("session_id", "sess-bg-2")],
    );
    assert_eq!(resumed.status, 200);
    let replay = resumed.events();
    assert_eq!(replay[0].0, "replay");
    assert_same_keys(
        &replay[0].1,
        &parse_sse(&capture("414_agent_resume_stream_from_index_2"))[0].1,
        &[],
    );
    assert_eq!(replay.len() - 1, events.len() - 3);
    assert_eq!(replay[1].1["event_index"], 3);
    assert!(
        resumed
            .body
            .starts_with("event: replay\ndata: {\"event\": \"replay\", ")
    );
}

#[test]
fn background_stream_survives_disconnect_and_resume_follows_live() {
    let s = Server::start();
    let url = s.url("/agents/story-writer/runs");
    let mut run_id = String::new();
    stream_until(
        &url,
        &[
            ("message", "tell a slow story"),
            ("background", "true"),
            ("session_id", "sess-bg-3"),
        ],
        |name, v| {
            if name == "RunStarted" {
                run_id = v["run_id"].as_str().unwrap_or("").to_string();
            }
            name != "RunContent" || v["content"] != "slow-0 "
        },
    );
    // Resume while it runs: replay, then live events to the end.
    let resumed = post_form(
        &format!("{url}/{run_id}/resume"),
        &[("last_event_index", "0"), ("session_id", "sess-bg-3")],
    );
    let events = resumed.events();
    assert_eq!(events[0].0, "replay");
    assert_eq!(events.last().map(|(n, _)| n.as_str()), Some("RunCompleted"));
    let contents: String = events
        .iter()
        .filter(|(n, _)| n == "RunContent")
        .filter_map(|(_, v)| v["content"].as_str())
        .collect();
    assert!(
        contents.contains("slow-29"),
        "the run went on without its client"
    );
}

#[test]
fn history_goes_to_the_model_on_the_second_run() {
    let s = Server::start();
    let url = s.url("/agents/story-writer/runs");
    for msg in ["first message", "second message"] {
        let a = post_form(
            &url,
            &[
                ("message", msg),
                ("stream", "false"),
                ("session_id", "sess-h"),
                ("user_id", "u1"),
            ],
        );
        assert_eq!(a.status, 200);
    }
    let second = s.fake.requests().last().cloned().expect("request");
    let texts: Vec<String> = second["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["content"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(texts.len(), 4, "{texts:?}");
    assert_eq!(texts[1], "first message");
    assert!(texts[2].starts_with("Story for 'first message'"));
    assert_eq!(texts[3], "second message");

    // Another user may not run in this owned session.
    let a = post_form(
        &url,
        &[
            ("message", "intrude"),
            ("stream", "false"),
            ("session_id", "sess-h"),
            ("user_id", "u2"),
        ],
    );
    assert_eq!(a.status, 404);
    assert_eq!(
        a.json(),
        capture_json("418_agent_run_into_other_users_session_404")
    );
}

#[test]
fn security_key_and_cors() {
    let s = Server::start_with(&[], &[("OS_SECURITY_KEY", "test-secret-key")]);
    assert_eq!(get(&s.url("/health")).status, 200);
    let a = get(&s.url("/agents"));
    assert_eq!(a.status, 401);
    assert_eq!(a.json(), capture_json("803_auth_agents_no_header_401"));
    let a = get_auth(&s.url("/agents"), "Bearer wrong");
    assert_eq!(a.status, 401);
    assert_eq!(a.json(), capture_json("804_auth_agents_wrong_key_401"));
    let a = get_auth(&s.url("/agents"), "Bearer test-secret-key");
    assert_eq!(a.status, 200);
    let a = answer(
        agent()
            .get(&s.url("/agents"))
            .header("Origin", "http://localhost:3000")
            .header("Authorization", "Bearer test-secret-key")
            .call()
            .expect("GET"),
    );
    assert_eq!(
        a.header("access-control-allow-origin"),
        Some("http://localhost:3000")
    );
}

#[test]
fn refuses_public_bind_without_key() {
    let out = Command::new(env!("CARGO_BIN_EXE_agentos"))
        .args(["serve", "--host", "0.0.0.0", "--port", "0"])
        .env_remove("OS_SECURITY_KEY")
        .env(
            "AGENTOS_CONFIG",
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("agents.toml"),
        )
        .env(
            "AGENTOS_DB",
            std::env::temp_dir().join("agentos-refuse-test.db"),
        )
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(read_all(&out.stderr[..]).contains("--insecure"));
}

#[test]
fn many_concurrent_streaming_runs_complete_and_are_stored() {
    let s = Server::start();
    let url = s.url("/agents/offline/runs");
    let threads: Vec<_> = (0..200)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || {
                let session = format!("conc-{i}");
                let a = post_form(
                    &url,
                    &[("message", "hello there"), ("session_id", &session)],
                );
                (a.status, a.events())
            })
        })
        .collect();
    for t in threads {
        let (status, events) = t.join().expect("thread");
        assert_eq!(status, 200);
        assert_eq!(events.last().map(|(n, _)| n.as_str()), Some("RunCompleted"));
    }
    let listed = get(&s.url("/sessions?type=agent&component_id=offline&limit=500")).json();
    assert_eq!(listed["meta"]["total_count"], 200);
}

#[test]
fn sigterm_cancels_in_flight_runs_and_exits() {
    let mut s = Server::start();
    let mut run_id = String::new();
    let url = s.url("/agents/story-writer/runs");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        stream_until(
            &url,
            &[
                ("message", "tell a slow story"),
                ("session_id", "sess-term"),
            ],
            |name, v| {
                if name == "RunStarted" {
                    let _ = tx.send(v["run_id"].as_str().unwrap_or("").to_string());
                }
                true
            },
        )
    });
    run_id.push_str(
        &rx.recv_timeout(Duration::from_secs(10))
            .expect("run started"),
    );
    let code = s.terminate();
    assert_eq!(
        code,
        Some(0),
        "server exits cleanly: {:?}",
        s.stderr_lines()
    );
    let store = agentos::store::SqliteStore::open(&s.db_path()).expect("open db");
    let stored = store.get_run(&run_id).expect("query").expect("run stored");
    assert_eq!(
        agentos::run::RunRecord::status(&stored.run),
        agentos::run::RunStatus::Cancelled
    );
}

#[test]
fn an_insecure_public_bind_is_warned_about_in_the_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_agentos"))
        .args(["serve", "--host", "0.0.0.0", "--port", "0", "--insecure"])
        .env_remove("OS_SECURITY_KEY")
        .env_remove("AGENTOS_LOG")
        .env(
            "AGENTOS_CONFIG",
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("agents.toml"),
        )
        .env("AGENTOS_DB", dir.path().join("agentos.db"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn agentos serve");
    let stderr = child.stderr.take().expect("stderr");
    let mut before = Vec::new();
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        if line.contains("serving on http://") {
            break;
        }
        before.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        before.iter().any(|l| l.contains("WARN")
            && l.contains("non-loopback address, without a security key (--insecure)")),
        "{before:#?}"
    );
}
