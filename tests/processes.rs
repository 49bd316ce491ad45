//! One store, many processes: runs survive a `kill -9` of the process running them, and
//! any process can see, cancel and follow any run. Real servers and `agentos run`
//! processes on one SQLite file, against the fake model's `slow` answer (30 pieces
//! `slow-0 ` … `slow-29 `, 0.3 s apart).
//!
//! See: issue 12 ("One store, many processes").

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::serve::{Server, agent, get, post_form};
use crate::util::TestEnv;

/// Processes take each other for dead after one silent second.
const FAST_TAKEOVER: (&str, &str) = ("AGENTOS_OWNER_TIMEOUT_SECS", "1");

/// Another `agentos serve` on a server's agents file and database.
pub struct Peer {
    child: Child,
    pub base: String,
}

impl Peer {
    pub fn start(of: &Server, env: &[(&str, &str)]) -> Peer {
        Peer::start_args(of, &[], env)
    }

    /// A peer started with extra `agentos serve` arguments.
    pub fn start_args(of: &Server, args: &[&str], env: &[(&str, &str)]) -> Peer {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_agentos"));
        cmd.args(["serve", "--port", "0"])
            .args(args)
            .env("AGENTOS_CONFIG", of.dir.path().join("agents.toml"))
            .env("AGENTOS_DB", of.db_path())
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
            let line = rx.recv_timeout(left).expect("the peer prints its address");
            if let Some(at) = line.find("http://") {
                break line[at..].trim().to_string();
            }
        };
        // Keep draining stderr so the peer never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        Peer { child, base }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An SSE stream read on a thread of its own: each event as it arrives.
pub struct Stream {
    events: mpsc::Receiver<(String, Value)>,
    pub seen: Vec<(String, Value)>,
}

impl Stream {
    pub fn open(url: &str, fields: &[(&str, &str)]) -> Stream {
        let (tx, rx) = mpsc::channel();
        let url = url.to_string();
        let fields: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        std::thread::spawn(move || {
            let resp = agent()
                .post(&url)
                .send_form(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .expect("POST stream");
            let mut reader = BufReader::new(resp.into_body().into_reader());
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
                    let value = serde_json::from_str(d).expect("SSE data is JSON");
                    if tx.send((name.clone(), value)).is_err() {
                        break;
                    }
                }
            }
        });
        Stream {
            events: rx,
            seen: Vec::new(),
        }
    }

    /// Reads until an event `pred` accepts (returned), failing after `timeout`.
    pub fn until(&mut self, timeout: Duration, pred: impl Fn(&str, &Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok((name, value)) => {
                    self.seen.push((name.clone(), value.clone()));
                    if pred(&name, &value) {
                        return value;
                    }
                }
                Err(_) => panic!(
                    "no such event within {timeout:?}; seen: {:?}",
                    self.seen.iter().map(|(n, _)| n).collect::<Vec<_>>()
                ),
            }
        }
    }

    /// Every further event until the stream closes.
    pub fn rest(&mut self, timeout: Duration) -> Vec<(String, Value)> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) => out.push(event),
                Err(mpsc::RecvTimeoutError::Disconnected) => return out,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!("the stream did not end"),
            }
        }
    }
}

pub fn content_piece(name: &str, event: &Value, piece: &str) -> bool {
    name == "RunContent" && event["content"].as_str() == Some(piece)
}

/// Polls a stored run until `pred` accepts it.
pub fn wait_stored(url: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let a = get(url);
        if a.status == 200 {
            let run = a.json();
            if pred(&run) {
                return run;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the run never got there: {}",
            a.body
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The text of the last assistant message of a stored run.
pub fn last_assistant(run: &Value) -> String {
    run["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .rev()
        .find(|m| m["role"] == "assistant")
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// The agents of [`crate::serve::config_for`], and `looker`, whose `lookup` tool takes
/// 20 seconds.
const LOOKUP_CONFIG: &str = r#"
[providers.fake]
kind = "openai"
base_url = "{FAKE}"

[tools.lookup]
description = "Looks something up, slowly"
command = ["sleep", "20"]

[[agents]]
id = "story-writer"
name = "Story Writer"
model = "fake:gpt-4o-mini"
instructions = "You write very short stories. The robot's name is {robot_name}."
dependencies = { robot_name = "Default-Bot" }
add_history_to_context = true

[[agents]]
id = "looker"
name = "Looker"
model = "fake:gpt-4o-mini"
instructions = "You look things up."
tools = ["lookup"]
"#;

#[test]
fn a_killed_server_s_runs_end_interrupted_with_their_partial_content() {
    let a = Server::start_full(Some(LOOKUP_CONFIG), &[], &[FAST_TAKEOVER]);
    let url = a.url("/agents/story-writer/runs");
    let mut streamed = Stream::open(
        &url,
        &[
            ("message", "slow story"),
            ("stream", "true"),
            ("session_id", "s-stream"),
        ],
    );
    let started = streamed.until(Duration::from_secs(10), |n, _| n == "RunStarted");
    let streamed_id = started["run_id"].as_str().unwrap().to_string();
    // A non-streaming run in flight too (its client blocks until the server dies): the
    // model has written a first sentence and called a tool that takes 20 seconds.
    let non_stream_url = a.url("/agents/looker/runs");
    std::thread::spawn(move || {
        let _ = agent().post(&non_stream_url).send_form([
            ("message", "preface lookup the weather"),
            ("stream", "false"),
            ("session_id", "s-plain"),
        ]);
    });
    streamed.until(Duration::from_secs(10), |n, e| {
        content_piece(n, e, "slow-3 ")
    });
    // Past a flush interval, so the pieces seen so far are in the journal.
    std::thread::sleep(Duration::from_millis(400));
    let mut a = a;
    a.terminate_hard();

    let b = Peer::start(&a, &[FAST_TAKEOVER]);
    let run = wait_stored(
        &b.url(&format!("/sessions/s-stream/runs/{streamed_id}")),
        Duration::from_secs(15),
        |r| r["status"] != "RUNNING",
    );
    assert_eq!(run["status"], "ERROR", "{run}");
    let message = run["content"].as_str().unwrap();
    assert!(
        message.starts_with("Run interrupted: agentos serve (pid "),
        "{message}"
    );
    assert!(
        message.ends_with("stopped before the run finished"),
        "{message}"
    );
    let partial = last_assistant(&run);
    assert!(
        partial.starts_with("slow-0 slow-1 slow-2 slow-3 "),
        "the partial answer is kept: {partial:?}"
    );
    let events = run["events"].as_array().unwrap();
    let last = events.last().unwrap();
    assert_eq!(last["event"], "RunError");
    assert_eq!(last["error_type"], "interrupted");

    let runs = wait_stored(
        &b.url("/sessions/s-plain/runs"),
        Duration::from_secs(15),
        |r| r[0]["status"] != "RUNNING",
    );
    assert_eq!(runs[0]["status"], "ERROR", "{runs}");
    assert!(
        runs[0]["content"]
            .as_str()
            .unwrap()
            .starts_with("Run interrupted")
    );
    let plain = get(&b.url(&format!(
        "/sessions/s-plain/runs/{}",
        runs[0]["run_id"].as_str().unwrap()
    )))
    .json();
    assert_eq!(
        last_assistant(&plain),
        crate::fake_model::PREFACE,
        "what the model had written is kept: {plain}"
    );
}

#[test]
fn a_run_s_events_are_written_once_they_reach_the_batch_bound() {
    // No flush interval passes during the run: only the bound on a batch's size writes
    // its journal.
    let mut a = Server::start_with(
        &[],
        &[FAST_TAKEOVER, ("AGENTOS_FLUSH_INTERVAL_MS", "60000")],
    );
    let mut stream = Stream::open(
        &a.url("/agents/story-writer/runs"),
        &[
            ("message", "huge slow story"),
            ("stream", "true"),
            ("session_id", "s1"),
        ],
    );
    let started = stream.until(Duration::from_secs(10), |n, _| n == "RunStarted");
    let run_id = started["run_id"].as_str().unwrap().to_string();
    // Six pieces of 64 KiB: past the 256 KiB bound.
    for _ in 0..6 {
        stream.until(Duration::from_secs(10), |n, _| n == "RunContent");
    }
    a.terminate_hard();

    let b = Peer::start(&a, &[FAST_TAKEOVER]);
    let run = wait_stored(
        &b.url(&format!("/sessions/s1/runs/{run_id}")),
        Duration::from_secs(15),
        |r| r["status"] != "RUNNING",
    );
    assert_eq!(run["status"], "ERROR", "{run}");
    let partial = last_assistant(&run);
    assert!(
        crate::fake_model::huge_answer().starts_with(&partial),
        "the answer's first pieces: {}",
        &partial[..40.min(partial.len())]
    );
    assert!(
        partial.len() > 200_000 && partial.len() < crate::fake_model::HUGE_ANSWER_BYTES,
        "the pieces written by size are kept: {} bytes",
        partial.len()
    );
}

#[test]
fn a_killed_agentos_run_is_settled_by_the_next_process() {
    let fake = crate::fake_model::FakeModel::start();
    let mut env = TestEnv::with_fake(&fake);
    env.set_env(FAST_TAKEOVER.0, FAST_TAKEOVER.1);
    env.set_env("OPENAI_API_KEY", "sk-test");
    let mut running = env.spawn(["run", "story-writer", "-m", "slow story", "-s", "s1"]);
    running.wait_for_stdout("slow-3 ", Duration::from_secs(15));
    std::thread::sleep(Duration::from_millis(400));
    let killed = Command::new("kill")
        .args(["-KILL", &running.pid().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let _ = running.wait(Duration::from_secs(10));

    // Another process finds it once the owner is a second silent.
    std::thread::sleep(Duration::from_millis(1500));
    let listed = env.run(["runs", "list", "--json"]);
    listed.assert_success();
    let runs = listed.json();
    assert_eq!(runs[0]["status"], "ERROR", "{runs}");
    let stored = env.stored_runs("s1");
    let run = &stored[0];
    assert_eq!(run["status"], "ERROR");
    assert!(
        run["content"]
            .as_str()
            .unwrap()
            .starts_with("Run interrupted: agentos run (pid "),
        "{run}"
    );
    assert!(
        last_assistant(run).starts_with("slow-0 slow-1 slow-2 slow-3 "),
        "{run}"
    );
}

#[test]
fn a_cancel_on_one_server_stops_a_run_on_another() {
    let a = Server::start_with(&[], &[]);
    let b = Peer::start(&a, &[]);
    let mut stream = Stream::open(
        &a.url("/agents/story-writer/runs"),
        &[
            ("message", "slow story"),
            ("stream", "true"),
            ("session_id", "s1"),
        ],
    );
    let started = stream.until(Duration::from_secs(10), |n, _| n == "RunStarted");
    let run_id = started["run_id"].as_str().unwrap().to_string();
    stream.until(Duration::from_secs(10), |n, e| {
        content_piece(n, e, "slow-1 ")
    });

    // The run is followed on B (a resumed stream) and from the command line.
    let mut on_b = Stream::open(
        &b.url(&format!("/agents/story-writer/runs/{run_id}/resume")),
        &[("session_id", "s1")],
    );
    on_b.until(Duration::from_secs(5), |n, e| {
        content_piece(n, e, "slow-1 ")
    });
    let mut env = TestEnv::new();
    env.set_env("AGENTOS_DB", a.db_path().to_str().unwrap());
    let follower = env.spawn(["runs", "follow", &run_id, "--jsonl"]);

    // B does not run it; it records the request and A's run stops.
    let cancelled_at = Instant::now();
    let answer = post_form(
        &b.url(&format!("/agents/story-writer/runs/{run_id}/cancel")),
        &[],
    );
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json(), json!({}));
    stream.until(Duration::from_secs(5), |n, _| n == "RunCancelled");
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(2),
        "cancelled well before the answer would have ended"
    );
    // B's own stream sees the cancel too, and ends with it.
    on_b.until(Duration::from_secs(5), |n, _| n == "RunCancelled");
    assert!(on_b.rest(Duration::from_secs(5)).is_empty());
    // So does the command line's follower, which exits as a cancelled run does.
    let followed = follower.wait(Duration::from_secs(10));
    followed.assert_code(130);
    let lines = followed.json_lines();
    assert_eq!(lines.last().unwrap()["event"], "RunCancelled", "{lines:?}");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["event"] == "RunCancelled")
            .count(),
        1
    );
    let run = wait_stored(
        &b.url(&format!("/sessions/s1/runs/{run_id}")),
        Duration::from_secs(5),
        |r| r["status"] != "RUNNING",
    );
    assert_eq!(run["status"], "CANCELLED");
    assert!(last_assistant(&run).starts_with("slow-0 slow-1 "), "{run}");

    // `agentos cancel` from the command line, on the same database.
    let mut stream = Stream::open(
        &a.url("/agents/story-writer/runs"),
        &[
            ("message", "slow story two"),
            ("stream", "true"),
            ("session_id", "s2"),
        ],
    );
    let started = stream.until(Duration::from_secs(10), |n, _| n == "RunStarted");
    let run_id = started["run_id"].as_str().unwrap().to_string();
    stream.until(Duration::from_secs(10), |n, e| {
        content_piece(n, e, "slow-0 ")
    });
    let out = env.run(["cancel", &run_id]);
    out.assert_success();
    assert_eq!(out.stdout().trim(), format!("cancelled run {run_id}"));
    stream.until(Duration::from_secs(5), |n, _| n == "RunCancelled");
    // The truth about runs that are not running.
    let again = env.run(["cancel", &run_id]);
    assert_eq!(again.code(), Some(1));
    again.assert_stderr_contains("already ended (CANCELLED)");
    let unknown = env.run(["cancel", "no-such-run"]);
    assert_eq!(unknown.code(), Some(1));
    unknown.assert_stderr_contains("no run no-such-run");
}

#[test]
fn resume_on_another_server_follows_a_run_to_its_end() {
    let a = Server::start_with(&[], &[]);
    let b = Peer::start(&a, &[]);
    let mut stream = Stream::open(
        &a.url("/agents/story-writer/runs"),
        &[
            ("message", "slow story"),
            ("stream", "true"),
            ("session_id", "s1"),
        ],
    );
    let started = stream.until(Duration::from_secs(10), |n, _| n == "RunStarted");
    let run_id = started["run_id"].as_str().unwrap().to_string();
    stream.until(Duration::from_secs(10), |n, e| {
        content_piece(n, e, "slow-2 ")
    });
    // The client has seen some events; it asks B for everything after the fourth.
    let last_seen = 3;
    let mut resumed = Stream::open(
        &b.url(&format!("/agents/story-writer/runs/{run_id}/resume")),
        &[
            ("last_event_index", &last_seen.to_string()),
            ("session_id", "s1"),
        ],
    );
    let replay = resumed.until(Duration::from_secs(5), |n, _| n == "replay");
    assert_eq!(replay["status"], "RUNNING", "{replay}");
    let followed = resumed.rest(Duration::from_secs(30));
    let mut original = stream.seen.clone();
    original.extend(stream.rest(Duration::from_secs(30)));

    // Exactly the events after index 3, in order, each once, ending with one RunCompleted.
    let expected: Vec<&(String, Value)> = original.iter().skip(last_seen + 1).collect();
    assert_eq!(followed.len(), expected.len(), "{followed:?}");
    for (i, ((name, event), (want_name, want))) in followed.iter().zip(expected).enumerate() {
        assert_eq!(name, want_name);
        assert_eq!(event["event_index"], json!(last_seen + 1 + i));
        let mut event = event.clone();
        event.as_object_mut().unwrap().remove("event_index");
        assert_eq!(&event, want);
    }
    let terminal: Vec<_> = followed
        .iter()
        .filter(|(n, _)| n == "RunCompleted")
        .collect();
    assert_eq!(terminal.len(), 1);
    assert_eq!(followed.last().unwrap().0, "RunCompleted");

    // A background run on A, followed from B after the events its client saw: the same
    // events with the same `event_index`, none lost or repeated.
    let mut background = Stream::open(
        &a.url("/agents/story-writer/runs"),
        &[
            ("message", "paced story"),
            ("stream", "true"),
            ("background", "true"),
            ("session_id", "s2"),
        ],
    );
    let started = background.until(Duration::from_secs(10), |n, _| n == "RunStarted");
    let run_id = started["run_id"].as_str().unwrap().to_string();
    let seen = background.until(Duration::from_secs(10), |n, e| {
        content_piece(n, e, "paced-2 ")
    });
    let last_seen = seen["event_index"]
        .as_u64()
        .expect("background events are numbered");
    let mut resumed = Stream::open(
        &b.url(&format!("/agents/story-writer/runs/{run_id}/resume")),
        &[
            ("last_event_index", &last_seen.to_string()),
            ("session_id", "s2"),
        ],
    );
    resumed.until(Duration::from_secs(5), |n, _| n == "replay");
    let followed = resumed.rest(Duration::from_secs(15));
    let mut original = background.seen.clone();
    original.extend(background.rest(Duration::from_secs(15)));
    let expected: Vec<&(String, Value)> = original
        .iter()
        .filter(|(_, e)| e["event_index"].as_u64() > Some(last_seen))
        .collect();
    assert_eq!(
        followed.iter().collect::<Vec<_>>(),
        expected,
        "B's stream is the rest of A's"
    );
    assert_eq!(followed.last().unwrap().0, "RunCompleted");
}

#[test]
fn runs_list_and_follow_from_the_command_line() {
    let a = Server::start_with(&[], &[]);
    let mut stream = Stream::open(
        &a.url("/agents/story-writer/runs"),
        &[
            ("message", "slow story"),
            ("stream", "true"),
            ("session_id", "s1"),
        ],
    );
    let started = stream.until(Duration::from_secs(10), |n, _| n == "RunStarted");
    let run_id = started["run_id"].as_str().unwrap().to_string();
    stream.until(Duration::from_secs(10), |n, e| {
        content_piece(n, e, "slow-1 ")
    });

    let mut env = TestEnv::new();
    env.set_env("AGENTOS_DB", a.db_path().to_str().unwrap());
    let listed = env.run(["runs", "list", "--status", "running", "--json"]);
    listed.assert_success();
    let runs = listed.json();
    let ours = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["run_id"] == run_id.as_str())
        .expect("the running run is listed");
    assert_eq!(ours["status"], "RUNNING");
    assert_eq!(ours["component_id"], "story-writer");
    assert_eq!(ours["owner"]["kind"], "serve");
    assert_eq!(
        ours["owner"]["address"]
            .as_str()
            .map(|a| format!("http://{a}")),
        Some(a.base.clone())
    );
    let table = env.run(["runs", "list"]);
    table.assert_success();
    table.assert_stdout_contains(&run_id);
    table.assert_stdout_contains("agentos serve (pid ");

    let followed = env.run(["runs", "follow", &run_id]);
    followed.assert_success();
    let text = followed.stdout();
    let expected: String = (0..30).map(|i| format!("slow-{i} ")).collect();
    assert_eq!(text.trim_end(), expected.trim_end());

    let events = env.run(["runs", "follow", &run_id, "--jsonl", "--after", "2"]);
    events.assert_success();
    let lines = events.json_lines();
    assert_eq!(lines[0]["event_index"], 3);
    assert_eq!(lines.last().unwrap()["event"], "RunCompleted");
    let listed = env.run(["runs", "list", "--status", "bogus"]);
    assert_eq!(listed.code(), Some(2));
}

/// Sends `signal` (`STOP`, `CONT`, …) to a process.
pub fn signal(pid: u32, signal: &str) {
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -{signal} {pid}");
}

/// Two servers with one place each, both busy. A accepts two background runs, which wait
/// in the queue: one is cancelled (from the command line, or through B), one streams to
/// its client from A. Once B has room it takes both up: the cancelled one is stored
/// CANCELLED without a model call, the other runs, and its client (on A) sees all of it.
/// `env` names the database (`AGENTOS_DB`) for PostgreSQL.
pub fn queued_runs_are_cancelled_or_followed_wherever_they_run(
    env: &[(&str, &str)],
    cancel_from_cli: bool,
) {
    let a = Server::start_full(None, &["--max-runs", "1"], env);
    let b = Peer::start_args(&a, &["--max-runs", "1"], env);
    let mut busy_a = Stream::open(
        &a.url("/agents/story-writer/runs"),
        &[("message", "slow story"), ("session_id", "busy-a")],
    );
    busy_a.until(Duration::from_secs(10), |n, _| n == "RunStarted");
    let mut busy_b = Stream::open(
        &b.url("/agents/story-writer/runs"),
        &[("message", "slow story"), ("session_id", "busy-b")],
    );
    let busy_b_id = busy_b.until(Duration::from_secs(10), |n, _| n == "RunStarted")["run_id"]
        .as_str()
        .unwrap()
        .to_string();

    let accepted = post_form(
        &a.url("/agents/story-writer/runs"),
        &[
            ("message", "forgotten tale"),
            ("stream", "false"),
            ("background", "true"),
            ("session_id", "forgotten"),
        ],
    );
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    let run_id = accepted.json()["run_id"].as_str().unwrap().to_string();
    let mut streamed = Stream::open(
        &a.url("/agents/story-writer/runs"),
        &[
            ("message", "streamed tale"),
            ("stream", "true"),
            ("background", "true"),
            ("session_id", "streamed"),
            ("run_id", "streamed-run"),
        ],
    );
    let poll = b.url(&format!(
        "/agents/story-writer/runs/{run_id}?session_id=forgotten"
    ));
    // Resumed through B while it waits: followed from when it begins.
    wait_stored(
        &b.url("/agents/story-writer/runs/streamed-run?session_id=streamed"),
        Duration::from_secs(5),
        |r| r["status"] == "PENDING",
    );
    let mut resumed = Stream::open(
        &b.url("/agents/story-writer/runs/streamed-run/resume"),
        &[("session_id", "streamed")],
    );
    let replay = resumed.until(Duration::from_secs(5), |n, _| n == "replay");
    assert_eq!(replay["status"], "PENDING");
    assert_eq!(get(&poll).json()["status"], "PENDING");

    let mut follower = None;
    if cancel_from_cli {
        let mut cli = TestEnv::new();
        let db = env
            .iter()
            .find(|(k, _)| *k == "AGENTOS_DB")
            .map_or_else(|| a.db_path().display().to_string(), |(_, v)| v.to_string());
        cli.set_env("AGENTOS_DB", &db);
        // Both waiting runs are listed, as queued.
        let listed = cli.run(["runs", "list", "--status", "pending"]);
        listed.assert_success();
        for id in [run_id.as_str(), "streamed-run"] {
            assert!(
                listed
                    .stdout()
                    .lines()
                    .any(|l| l.contains(id) && l.contains("queued, waiting for a process")),
                "{}",
                listed.describe()
            );
        }
        let out = cli.run(["cancel", &run_id]);
        out.assert_success();
        out.assert_stdout_contains(&format!("cancelled run {run_id} (it was queued"));
        // The streamed run, still queued, is followed from the command line too.
        follower = Some(cli.spawn(["runs", "follow", "streamed-run", "--jsonl"]));
    } else {
        let answer = post_form(
            &b.url(&format!("/agents/story-writer/runs/{run_id}/cancel")),
            &[],
        );
        assert_eq!((answer.status, answer.json()), (200, json!({})));
    }
    assert_eq!(get(&poll).json()["status"], "PENDING", "still waiting");

    // B gets room: it takes up both queued runs, oldest first.
    let answer = post_form(
        &b.url(&format!("/agents/story-writer/runs/{busy_b_id}/cancel")),
        &[],
    );
    assert_eq!(answer.status, 200);
    let run = wait_stored(&poll, Duration::from_secs(15), |r| {
        r["status"] != "PENDING" && r["status"] != "RUNNING"
    });
    assert_eq!(run["status"], "CANCELLED", "{run}");
    assert!(
        !a.fake
            .requests()
            .iter()
            .any(|r| r.to_string().contains("forgotten")),
        "the cancelled run never called the model"
    );

    // The streamed run's client, on A, sees it from its start to its end.
    streamed.until(Duration::from_secs(15), |n, _| n == "RunCompleted");
    assert!(streamed.rest(Duration::from_secs(5)).is_empty());
    let names: Vec<&str> = streamed.seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"RunStarted"), "{names:?}");
    let content: String = streamed
        .seen
        .iter()
        .filter(|(n, _)| n == "RunContent")
        .filter_map(|(_, e)| e["content"].as_str())
        .collect();
    assert_eq!(
        content,
        "Story for 'streamed tale'. Starring Default-Bot. The end."
    );
    let completed = &streamed.seen.last().unwrap().1;
    assert_eq!(completed["content"], content.as_str());
    for (i, (_, event)) in streamed.seen.iter().enumerate() {
        assert_eq!(event["event_index"], json!(i), "{names:?}");
    }
    let resumed_events = resumed.rest(Duration::from_secs(15));
    assert_eq!(
        resumed_events, streamed.seen,
        "B's resumed stream is the client's"
    );
    if let Some(follower) = follower {
        let followed = follower.wait(Duration::from_secs(15));
        followed.assert_success();
        let lines = followed.json_lines();
        assert_eq!(lines.len(), streamed.seen.len());
        assert_eq!(lines[0]["event"], "RunStarted");
        assert_eq!(lines.last().unwrap()["event"], "RunCompleted");
    }
    drop(busy_a);
}

/// A server that stalls (SIGSTOP) past the owner timeout has its run settled as
/// interrupted by another; when it comes back and ends the run (cancelled here), it
/// does not overwrite what the other stored. `env` names the database for PostgreSQL.
pub fn a_stalled_owner_does_not_overwrite_its_settled_run(env: &[(&str, &str)]) {
    let mut all = env.to_vec();
    all.push(FAST_TAKEOVER);
    let a = Server::start_full(None, &[], &all);
    let b = Peer::start(&a, &all);
    let mut stream = Stream::open(
        &a.url("/agents/story-writer/runs"),
        &[("message", "slow story"), ("session_id", "s1")],
    );
    let run_id = stream.until(Duration::from_secs(10), |n, _| n == "RunStarted")["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    stream.until(Duration::from_secs(10), |n, e| {
        content_piece(n, e, "slow-0 ")
    });
    let polled = b.url(&format!("/sessions/s1/runs/{run_id}"));
    // A stall may catch A inside a write, holding the database until it resumes: then
    // it resumes for a moment and stalls again.
    let mut settled = None;
    for _ in 0..5 {
        signal(a.pid(), "STOP");
        let deadline = Instant::now() + Duration::from_secs(4);
        while Instant::now() < deadline {
            let run = get(&polled).json();
            if run["status"] != "RUNNING" {
                settled = Some(run);
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if settled.is_some() {
            break;
        }
        signal(a.pid(), "CONT");
        std::thread::sleep(Duration::from_millis(50));
    }
    let settled = settled.expect("B settles the run of the stalled server");
    signal(a.pid(), "CONT");
    assert_eq!(settled["status"], "ERROR", "{settled}");
    assert!(
        settled["content"]
            .as_str()
            .unwrap()
            .starts_with("Run interrupted"),
        "{settled}"
    );

    // A comes back and ends the run: its client sees that end, the store keeps B's.
    let answer = post_form(
        &a.url(&format!("/agents/story-writer/runs/{run_id}/cancel")),
        &[],
    );
    assert_eq!(answer.status, 200);
    stream.until(Duration::from_secs(10), |n, _| n == "RunCancelled");
    stream.rest(Duration::from_secs(10));
    // A says so in its log.
    let mut log = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log
        .iter()
        .any(|l: &String| l.contains("after another process settled it"))
    {
        assert!(
            Instant::now() < deadline,
            "A never logged the refusal: {log:?}"
        );
        log.extend(a.stderr_lines());
        std::thread::sleep(Duration::from_millis(50));
    }
    let run = get(&polled).json();
    assert_eq!(run["status"], "ERROR", "{run}");
    assert_eq!(run["content"], settled["content"]);
    assert_eq!(run["events"], settled["events"]);
}

#[test]
fn queued_runs_are_cancelled_from_the_command_line_or_followed_on_another_server() {
    queued_runs_are_cancelled_or_followed_wherever_they_run(&[], true);
}

#[test]
fn a_stalled_server_does_not_overwrite_a_run_settled_meanwhile() {
    a_stalled_owner_does_not_overwrite_its_settled_run(&[]);
}

#[test]
fn a_short_run_is_followed_from_the_events_it_stored() {
    // Journals are written by time only once a minute: a short run has none.
    let a = Server::start_with(&[], &[("AGENTOS_FLUSH_INTERVAL_MS", "60000")]);
    let answer = post_form(
        &a.url("/agents/story-writer/runs"),
        &[("message", "a short tale"), ("session_id", "s1")],
    );
    let inline = crate::serve::parse_sse(&answer.body);
    let run_id = inline[0].1["run_id"].as_str().unwrap().to_string();

    // `resume` on the run replays its stored events after `last_event_index`.
    let resumed = post_form(
        &a.url(&format!("/agents/story-writer/runs/{run_id}/resume")),
        &[("last_event_index", "0"), ("session_id", "s1")],
    );
    let events = crate::serve::parse_sse(&resumed.body);
    assert_eq!(events[0].0, "replay");
    let stored = get(&a.url(&format!("/sessions/s1/runs/{run_id}"))).json();
    let stored_events = stored["events"].as_array().unwrap();
    assert_eq!(events.len(), stored_events.len(), "replay, then events 1..");
    for (i, (name, event)) in events.iter().enumerate().skip(1) {
        assert_eq!(event["event_index"], json!(i));
        assert_eq!(name, stored_events[i]["event"].as_str().unwrap());
    }
    assert_eq!(events.last().unwrap().0, "RunCompleted");
    assert_eq!(
        events.last().unwrap().1["content"],
        "Story for 'a short tale'. Starring Default-Bot. The end."
    );

    // A client that counted the live stream's events (content deltas among them) may be
    // past the stored ones: it still gets how the run ended.
    let resumed = post_form(
        &a.url(&format!("/agents/story-writer/runs/{run_id}/resume")),
        &[("last_event_index", "40"), ("session_id", "s1")],
    );
    let events = crate::serve::parse_sse(&resumed.body);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["replay", "RunCompleted"], "{}", resumed.body);
    assert_eq!(events[1].1["event_index"], json!(41));

    // `agentos runs follow --jsonl` the same, from the start.
    let mut env = TestEnv::new();
    env.set_env("AGENTOS_DB", a.db_path().to_str().unwrap());
    let followed = env.run(["runs", "follow", &run_id, "--jsonl"]);
    followed.assert_success();
    let lines = followed.json_lines();
    assert_eq!(lines.len(), stored_events.len());
    assert_eq!(lines[0]["event"], "RunStarted");
    assert_eq!(lines.last().unwrap()["event"], "RunCompleted");
    let text = env.run(["runs", "follow", &run_id]);
    text.assert_success();
    assert_eq!(
        text.stdout().trim(),
        "Story for 'a short tale'. Starring Default-Bot. The end."
    );
}

#[test]
fn deleting_a_session_cancels_its_runs_wherever_they_run() {
    let a = Server::start_with(&[], &[]);
    let b = Peer::start(&a, &[]);
    let mut env = TestEnv::new();
    env.set_env("AGENTOS_DB", a.db_path().to_str().unwrap());
    let open = |session: &str| {
        let mut stream = Stream::open(
            &a.url("/agents/story-writer/runs"),
            &[
                ("message", "slow story"),
                ("stream", "true"),
                ("session_id", session),
            ],
        );
        stream.until(Duration::from_secs(10), |n, e| {
            content_piece(n, e, "slow-0 ")
        });
        stream
    };

    // From the command line: the run on server A stops, then its session is gone.
    let mut stream = open("doomed-1");
    let out = env.run(["sessions", "delete", "doomed-1"]);
    out.assert_success();
    stream.until(Duration::from_secs(5), |n, _| n == "RunCancelled");
    assert_eq!(get(&a.url("/sessions/doomed-1")).status, 404);
    let live = env.run(["runs", "list", "--status", "running"]);
    live.assert_success();
    assert_eq!(live.stdout().trim(), "no runs", "{}", live.describe());

    // Through another server, one session and several at once.
    let mut one = open("doomed-2");
    let answer = agent()
        .delete(&b.url("/sessions/doomed-2"))
        .call()
        .expect("DELETE");
    assert_eq!(answer.status().as_u16(), 204);
    one.until(Duration::from_secs(5), |n, _| n == "RunCancelled");
    let mut two = open("doomed-3");
    let answer = crate::serve::send_json(
        "DELETE",
        &b.url("/sessions"),
        &json!({"session_ids": ["doomed-3"], "session_types": ["agent"]}),
    );
    assert_eq!(answer.status, 204, "{}", answer.body);
    two.until(Duration::from_secs(5), |n, _| n == "RunCancelled");
    assert_eq!(get(&b.url("/sessions/doomed-3")).status, 404);
    // No run was left behind: nothing is running, and nothing came back.
    let all = env.run(["runs", "list", "--all"]);
    assert_eq!(all.stdout().trim(), "no runs", "{}", all.describe());
}

#[test]
fn a_long_owner_timeout_does_not_get_a_live_server_taken_for_stopped() {
    // A's own timeout is long; B judges silence by a short one, as an `agentos run` left at
    // its default would.
    let a = Server::start_with(&[], &[("AGENTOS_OWNER_TIMEOUT_SECS", "60")]);
    let _b = Peer::start(&a, &[("AGENTOS_OWNER_TIMEOUT_SECS", "3")]);
    let mut stream = Stream::open(
        &a.url("/agents/story-writer/runs"),
        &[
            ("message", "slow story"),
            ("stream", "true"),
            ("session_id", "long-timeout"),
        ],
    );
    let started = stream.until(Duration::from_secs(10), |n, _| n == "RunStarted");
    let run_id = started["run_id"].as_str().unwrap().to_string();
    // The slow answer takes about 9 s, three of B's timeouts.
    stream.until(Duration::from_secs(30), |n, _| n == "RunCompleted");
    let run = wait_stored(
        &a.url(&format!("/sessions/long-timeout/runs/{run_id}")),
        Duration::from_secs(5),
        |r| r["status"] != "RUNNING",
    );
    assert_eq!(run["status"], "COMPLETED", "{run}");
    assert!(last_assistant(&run).ends_with("slow-29 "), "{run}");
}
