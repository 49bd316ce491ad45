//! One pooled connection per provider, shared by every run: sequential runs and the tool
//! rounds of a run reuse it, a cancelled stream does not leave a broken one behind, and
//! thousands of streaming runs share one server at once. Connecting, TLS handshake
//! included, is bounded by the connect timeout.
//!
//! See: issue 10 ("runs as tasks, one pooled connection per provider").

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::serve::{Server, post_form, stream_until};
use crate::util::TestEnv;

const CONFIG: &str = r#"
[providers.fake]
kind = "openai"
base_url = "{FAKE}"

[tools.get_weather]
description = "Get the current weather for a city."
command = ["sh", "-c", "printf 'The weather in %s is sunny.' \"$AGENTOS_ARG_CITY\""]
[tools.get_weather.parameters]
type = "object"
required = ["city"]
[tools.get_weather.parameters.properties.city]
type = "string"

[[agents]]
id = "writer"
model = "fake:gpt-4o-mini"
instructions = "You write very short stories."

[[agents]]
id = "weather-agent"
model = "fake:gpt-4o-mini"
instructions = "Answer weather questions with get_weather."
tools = ["get_weather"]
"#;

#[test]
fn sequential_runs_and_tool_rounds_share_one_connection() {
    let s = Server::start_config(CONFIG);
    let url = s.url("/agents/writer/runs");
    for i in 0..8 {
        let stream = if i % 2 == 0 { "false" } else { "true" };
        let a = post_form(
            &url,
            &[("message", &format!("story {i}")), ("stream", stream)],
        );
        assert_eq!(a.status, 200, "{}", a.body);
    }
    assert_eq!(s.fake.request_count(), 8);
    assert_eq!(s.fake.connections(), 1, "8 runs, one connection");

    // A run with a tool round calls the model twice, on the same connection.
    let a = post_form(
        &s.url("/agents/weather-agent/runs"),
        &[
            ("message", "What is the weather in Oslo?"),
            ("stream", "false"),
        ],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.json()["tools"][0]["result"],
        "The weather in Oslo is sunny."
    );
    assert_eq!(s.fake.request_count(), 10);
    assert_eq!(s.fake.connection_of(8), Some(1));
    assert_eq!(s.fake.connection_of(9), Some(1));
    assert_eq!(s.fake.connections(), 1);
}

#[test]
fn a_cancelled_stream_does_not_poison_the_next_run() {
    let s = Server::start_config(CONFIG);
    let url = s.url("/agents/writer/runs");
    assert_eq!(
        post_form(&url, &[("message", "warm up"), ("stream", "false")]).status,
        200
    );
    // A stream the provider stops answering, cancelled while the model is silent.
    let mut run_id = String::new();
    let events = stream_until(&url, &[("message", "please stall now")], |name, event| {
        if name == "RunStarted" {
            run_id = event["run_id"].as_str().unwrap_or_default().to_string();
        }
        if name == "RunContent" && event["content"] == "partial " {
            let cancel = post_form(&s.url(&format!("/agents/writer/runs/{run_id}/cancel")), &[]);
            assert_eq!(cancel.status, 200);
        }
        name != "RunCompleted"
    });
    assert!(events.iter().any(|(name, _)| name == "RunCancelled"));
    let stalled_on = s.fake.connection_of(1).expect("the stalled request");

    // The next runs work, on a connection that is not the abandoned one, and share it.
    for i in 0..3 {
        let a = post_form(
            &url,
            &[("message", &format!("after {i}")), ("stream", "false")],
        );
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.json()["status"], "COMPLETED", "{}", a.body);
    }
    let after: Vec<u64> = (2..5).filter_map(|i| s.fake.connection_of(i)).collect();
    assert_eq!(after.len(), 3);
    assert!(
        after.iter().all(|c| *c != stalled_on),
        "{after:?} vs {stalled_on}"
    );
    assert!(after.windows(2).all(|w| w[0] == w[1]), "{after:?}");
}

#[test]
fn a_tls_handshake_that_never_ends_is_a_connect_timeout() {
    // A server that accepts TCP connections and never answers the TLS handshake: it reads
    // the client's first bytes (a TLS handshake record, 0x16) and holds the socket open.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let hellos = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let seen = hellos.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            use std::io::Read;
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut first = [0u8; 1];
            if stream.read_exact(&mut first).is_ok() {
                seen.lock().unwrap().push(first[0]);
            }
            held.push(stream);
        }
    });
    let mut env = TestEnv::new();
    env.write_config(&format!(
        "[providers.silent]\nkind = \"openai\"\nbase_url = \"https://{addr}/v1\"\n\n\
         [[agents]]\nid = \"writer\"\nmodel = \"silent:gpt-4o-mini\"\n"
    ));
    env.set_env("OPENAI_API_KEY", "sk-test");
    env.set_env("AGENTOS_CONNECT_TIMEOUT_SECS", "0.3");
    let out = env.run(["run", "writer", "-m", "Hello", "--json"]);
    let run = out.json();
    assert_eq!(run["status"], "ERROR", "{}", out.describe());
    let message = run["content"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(&format!(
            "could not connect to silent at https://{addr}/v1/chat/completions within 0.3 s"
        )),
        "{message}"
    );
    assert!(message.contains("connect timeout"), "{message}");
    assert!(
        message.contains("AGENTOS_CONNECT_TIMEOUT_SECS"),
        "{message}"
    );
    // Every attempt got as far as the TLS handshake; one call's budget: 1 + 3 attempts.
    let hellos = hellos.lock().unwrap().clone();
    assert_eq!(hellos, [0x16; 4], "{hellos:?}");
}

/// One streaming run over a fresh connection: the SSE body up to the server closing it.
async fn stream_run(addr: &str, n: usize) -> String {
    let body = format!("message=paced+story+{n}&stream=true");
    let request = format!(
        "POST /agents/writer/runs HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut conn = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to agentos");
    conn.write_all(request.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await.expect("read");
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn two_thousand_concurrent_streaming_runs_complete_and_are_stored() {
    const RUNS: usize = 2000;
    let s = Server::start_full(
        Some(CONFIG),
        &["--max-runs", "2500", "--max-connections", "6000"],
        &[],
    );
    let addr = s.base.trim_start_matches("http://").to_string();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let started = Instant::now();
    let answers: Vec<String> = runtime.block_on(async {
        let tasks: Vec<_> = (0..RUNS)
            .map(|n| {
                let addr = addr.clone();
                tokio::spawn(async move { stream_run(&addr, n).await })
            })
            .collect();
        let mut answers = Vec::with_capacity(RUNS);
        for task in tasks {
            answers.push(
                tokio::time::timeout(Duration::from_secs(120), task)
                    .await
                    .expect("every run ends in time")
                    .expect("the client task"),
            );
        }
        answers
    });
    let failed: Vec<&String> = answers
        .iter()
        .filter(|a| !(a.starts_with("HTTP/1.1 200") && a.contains("event: RunCompleted")))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {RUNS} runs did not complete; first: {}",
        failed.len(),
        failed[0].chars().take(400).collect::<String>()
    );
    for answer in answers.iter().take(5) {
        assert_eq!(
            answer.matches("event: RunContent\n").count(),
            11,
            "{answer}"
        );
    }
    assert_eq!(s.fake.request_count(), RUNS);
    eprintln!("{RUNS} streaming runs in {:?}", started.elapsed());

    let db = rusqlite::Connection::open(s.db_path()).expect("open the server's db");
    let (all, completed): (i64, i64) = db
        .query_row(
            "SELECT COUNT(*), COALESCE(SUM(status = 'COMPLETED'), 0) FROM runs",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("count");
    assert_eq!((all, completed), (RUNS as i64, RUNS as i64));
    let distinct: i64 = db
        .query_row("SELECT COUNT(DISTINCT run_id) FROM runs", [], |r| r.get(0))
        .expect("count");
    assert_eq!(distinct, RUNS as i64, "each run stored once");
    let stored: String = db
        .query_row("SELECT run FROM runs LIMIT 1", [], |r| r.get(0))
        .expect("a run");
    let run: Value = serde_json::from_str(&stored).expect("a run object");
    assert!(
        run["messages"][1]["content"]
            .as_str()
            .is_some_and(|c| c.starts_with("paced story")),
        "{run}"
    );
}
