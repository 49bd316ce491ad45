//! Core benchmark: `cargo bench --bench core`.
//!
//! Measures, against a local fake OpenAI-compatible model with zero think time:
//! 1. one-shot `agentos run` wall time (process start to exit, SQLite write included),
//!    next to the bare model round trip, so the difference is agentos's own cost;
//! 2. the engine's CPU per run including the store write (in process: the CPU time of the
//!    thread that runs the engine plus the store's own threads, from
//!    `/proc/self/task/*/schedstat`), with the offline `test` model and with the OpenAI
//!    client over HTTP;
//! 3. run 51 of a session that sends its whole history vs run 1.
//!
//! `AGENTOS_BENCH_QUICK=1` shortens every loop (used to smoke-test the program).

#[path = "../tests/fake_anthropic.rs"]
mod fake_anthropic;
#[path = "../tests/fake_model.rs"]
mod fake_model;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentos::cancel::CancelToken;
use agentos::config::Config;
use agentos::engine::{Engine, RunRequest};
use agentos::event::{Discard, Event, EventSink};
use agentos::store::Store;

/// Counts the events of the runs it is given.
struct Counter<'a>(&'a std::sync::atomic::AtomicUsize);

impl EventSink for Counter<'_> {
    fn send<'a>(&'a self, _event: &'a Event) -> futures_util::future::BoxFuture<'a, ()> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Box::pin(std::future::ready(()))
    }
}

fn schedstat_ns(path: &std::path::Path) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .and_then(|f| f.parse().ok())
        .unwrap_or(0)
}

/// CPU time of agentos's own work: this thread (which runs the engine) and the store's
/// threads; the in-process fake model's threads are left out.
fn thread_cpu() -> Duration {
    let mut ns = schedstat_ns(std::path::Path::new("/proc/thread-self/schedstat"));
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.starts_with("agentos-store") {
                ns += schedstat_ns(&task.path().join("schedstat"));
            }
        }
    }
    Duration::from_nanos(ns)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx]
}

fn ms(samples: &mut [f64]) -> (f64, f64) {
    samples.sort_by(|a, b| a.total_cmp(b));
    (percentile(samples, 0.5), percentile(samples, 0.9))
}

fn config_text(base_url: &str) -> String {
    format!(
        r#"
[providers.fake]
kind = "openai"
base_url = "{base_url}"

[[agents]]
id = "story-writer"
model = "fake:gpt-4o-mini"
instructions = "You write very short stories. The robot's name is {{robot_name}}."

[[agents]]
id = "offline"
model = "test"
instructions = "You write very short stories."

[tools.noop]
description = "Does nothing."
command = ["true"]

[[agents]]
id = "tooler"
model = "test"
instructions = "Call tools when asked."
tools = ["noop"]

[mcp.time]
command = "python3"
args = ["-m", "mcp_server_time", "--local-timezone=UTC"]

[[agents]]
id = "mcp-tooler"
model = "test"
instructions = "Call tools when asked."
tools = ["mcp:time/get_current_time"]

[[teams]]
id = "duo"
model = "test"
members = ["offline"]

[[workflows]]
id = "pipeline"

[[workflows.steps]]
name = "first"
agent = "offline"

[[workflows.steps]]
name = "second"
agent = "offline"

[[agents]]
id = "historian"
model = "fake:gpt-4o-mini"
instructions = "You remember everything."
add_history_to_context = true
num_history_runs = 1000
"#
    )
}

fn request(agent: &str, message: &str, session: Option<String>) -> RunRequest {
    RunRequest {
        agent_id: agent.into(),
        message: message.into(),
        session_id: session,
        stream: true,
        ..RunRequest::default()
    }
}

fn main() {
    let quick = std::env::var_os("AGENTOS_BENCH_QUICK").is_some();
    let scale = |n: usize| if quick { (n / 20).max(3) } else { n };
    let fake = fake_model::FakeModel::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let config_path = dir.path().join("agents.toml");
    std::fs::write(&config_path, config_text(&fake.base_url())).expect("write config");
    let config = Arc::new(Config::load(&config_path).expect("bench config loads"));

    println!(
        "agentos core benchmark ({} mode)\n",
        if quick { "quick" } else { "full" }
    );
    println!("| measurement | result |");
    println!("|---|---|");

    // 1. One-shot CLI runs.
    let bin = env!("CARGO_BIN_EXE_agentos");
    let db = dir.path().join("oneshot.db");
    let oneshot = |message: &str| {
        let out = Command::new(bin)
            .args(["run", "story-writer", "-m", message, "--dependencies"])
            .arg(r#"{"robot_name":"Anna"}"#)
            .env("AGENTOS_CONFIG", &config_path)
            .env("AGENTOS_DB", &db)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("spawn agentos");
        assert!(out.status.success(), "agentos run failed: {out:?}");
    };
    for _ in 0..3 {
        oneshot("warm up");
    }
    let mut wall = Vec::new();
    for i in 0..scale(60) {
        let t = Instant::now();
        oneshot(&format!("Write story {i}"));
        wall.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let mut model = Vec::new();
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    let url = format!("{}/chat/completions", fake.base_url());
    for i in 0..scale(60) {
        let t = Instant::now();
        let body = serde_json::json!({"model":"gpt-4o-mini","stream":true,
            "stream_options":{"include_usage":true},
            "messages":[{"role":"user","content":format!("Write story {i}")}]});
        let resp = agent
            .post(&url)
            .send_json(&body)
            .expect("fake model answers");
        let _ = resp.into_body().read_to_string();
        model.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (w50, w90) = ms(&mut wall);
    let (m50, _) = ms(&mut model);
    println!("| one-shot `agentos run` wall time (p50 / p90) | {w50:.1} ms / {w90:.1} ms |");
    println!("| bare model round trip (p50) | {m50:.2} ms |");
    println!(
        "| one-shot overhead over the model (p50) | {:.1} ms |",
        w50 - m50
    );

    // 2. Engine CPU per run with the store write.
    let store = Store::open(&dir.path().join("engine.db")).expect("open store");
    let engine = Engine::new(config.clone(), store);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let cancel = CancelToken::new();
    let events = std::sync::atomic::AtomicUsize::new(0);
    let per_run = |agent: &str, n: usize, events: &std::sync::atomic::AtomicUsize| {
        for _ in 0..scale(50) {
            runtime
                .block_on(engine.run(request(agent, "warm up, use noop", None), &cancel, &Discard))
                .expect("run");
        }
        let cpu0 = thread_cpu();
        let t0 = Instant::now();
        for i in 0..n {
            let run = runtime
                .block_on(engine.run(
                    request(agent, &format!("story {i}, use noop"), None),
                    &cancel,
                    &Counter(events),
                ))
                .expect("run");
            assert_eq!(agentos::run::RunRecord::status(&run).as_str(), "COMPLETED");
        }
        (
            (thread_cpu() - cpu0).as_secs_f64() * 1e3 / n as f64,
            t0.elapsed().as_secs_f64() * 1e3 / n as f64,
        )
    };
    let n = scale(2000);
    let (cpu, wall) = per_run("offline", n, &events);
    println!(
        "| engine CPU per run, `test` model, incl. SQLite write ({n} runs) | {cpu:.3} ms (wall {wall:.3} ms) |"
    );
    let (cpu, wall) = per_run("story-writer", n, &events);
    println!(
        "| engine CPU per run, OpenAI client over HTTP, incl. SQLite write | {cpu:.3} ms (wall {wall:.3} ms) |"
    );

    // 2b. Overhead of one command-tool call: a run that calls `true` through a command
    // tool, against the same offline run without a tool call.
    let n_tool = scale(200);
    let (tool_cpu, tool_wall) = per_run("tooler", n_tool, &events);
    let (base_cpu, base_wall) = per_run("offline", n_tool, &events);
    println!(
        "| command-tool call overhead per call (`true`), wall / agentos CPU | {:.2} ms / {:.3} ms |",
        tool_wall - base_wall,
        tool_cpu - base_cpu
    );

    // 2c. Overhead of one MCP tool call (mcp-server-time from PyPI, when installed): the
    // server starts once with the first run and is kept, as in `agentos serve`.
    let mcp_installed = Command::new("python3")
        .args(["-c", "import mcp_server_time"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if mcp_installed {
        let t = Instant::now();
        let run = runtime
            .block_on(engine.run(
                request("mcp-tooler", "use get_current_time timezone=UTC", None),
                &cancel,
                &Discard,
            ))
            .expect("run");
        assert_eq!(agentos::run::RunRecord::status(&run).as_str(), "COMPLETED");
        println!(
            "| MCP server start + first call (mcp-server-time) | {:.0} ms |",
            t.elapsed().as_secs_f64() * 1e3
        );
        let mut mcp_wall = Vec::new();
        let mut base_wall = Vec::new();
        for i in 0..scale(200) {
            let t = Instant::now();
            runtime
                .block_on(engine.run(
                    request(
                        "mcp-tooler",
                        &format!("use get_current_time timezone=UTC {i}"),
                        None,
                    ),
                    &cancel,
                    &Discard,
                ))
                .expect("run");
            mcp_wall.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            runtime
                .block_on(engine.run(
                    request("offline", &format!("story {i}"), None),
                    &cancel,
                    &Discard,
                ))
                .expect("run");
            base_wall.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let (m50, m90) = ms(&mut mcp_wall);
        let (b50, _) = ms(&mut base_wall);
        println!(
            "| MCP tool call overhead per call (mcp-server-time), p50 / p90 | {:.2} ms / {:.2} ms |",
            m50 - b50,
            m90 - b50
        );
    } else {
        println!("| MCP tool call overhead | skipped: pip install mcp-server-time |");
    }

    // 2d. What a team and a workflow add over their member runs, on the offline model: a
    // team run (leader: two model calls, one member run) against three plain agent runs;
    // a two-step workflow against two plain agent runs.
    let n_flow = scale(300);
    let time_runs = |start: &dyn Fn(usize) -> agentos::engine::PendingRun, n: usize| {
        let t0 = Instant::now();
        for i in 0..n {
            let run = runtime
                .block_on(engine.execute(start(i), &cancel, &Discard))
                .expect("run");
            assert_eq!(agentos::run::RunRecord::status(&run).as_str(), "COMPLETED");
        }
        t0.elapsed().as_secs_f64() * 1e3 / n as f64
    };
    let agent_wall = time_runs(
        &|i| {
            runtime
                .block_on(engine.start(request("offline", &format!("story {i}"), None)))
                .expect("start")
        },
        n_flow,
    );
    let team_wall = time_runs(
        &|i| {
            runtime
                .block_on(engine.start_team(request("duo", &format!("story {i}"), None)))
                .expect("start")
        },
        n_flow,
    );
    let workflow_wall = time_runs(
        &|i| {
            runtime
                .block_on(engine.start_workflow(request("pipeline", &format!("story {i}"), None)))
                .expect("start")
        },
        n_flow,
    );
    println!(
        "| team run (leader 2 model calls + 1 member) vs 3 agent runs, wall | {team_wall:.3} ms vs {:.3} ms: +{:.3} ms |",
        3.0 * agent_wall,
        team_wall - 3.0 * agent_wall
    );
    println!(
        "| two-step workflow vs 2 agent runs, wall | {workflow_wall:.3} ms vs {:.3} ms: +{:.3} ms |",
        2.0 * agent_wall,
        workflow_wall - 2.0 * agent_wall
    );

    // 3. Run 51 with the whole history vs run 1 (wall time includes the fake model
    // reading the larger request; CPU is agentos's own thread only).
    let sessions = scale(20);
    let (mut first, mut fifty_first) = (Vec::new(), Vec::new());
    let (mut first_cpu, mut fifty_first_cpu) = (Vec::new(), Vec::new());
    for s in 0..sessions {
        let session = format!("history-{s}");
        for i in 1..=51 {
            let message = format!("Message number {i} of a long chat");
            let cpu0 = thread_cpu();
            let t = Instant::now();
            runtime
                .block_on(engine.run(
                    request("historian", &message, Some(session.clone())),
                    &cancel,
                    &Discard,
                ))
                .expect("run");
            let took = t.elapsed().as_secs_f64() * 1e3;
            let cpu = (thread_cpu() - cpu0).as_secs_f64() * 1e3;
            if i == 1 {
                first.push(took);
                first_cpu.push(cpu);
            } else if i == 51 {
                fifty_first.push(took);
                fifty_first_cpu.push(cpu);
            }
        }
    }
    let (r1, _) = ms(&mut first);
    let (r51, _) = ms(&mut fifty_first);
    let (c1, _) = ms(&mut first_cpu);
    let (c51, _) = ms(&mut fifty_first_cpu);
    println!(
        "| run 1 of a session, wall / CPU (p50, {sessions} sessions) | {r1:.3} ms / {c1:.3} ms |"
    );
    println!(
        "| run 51, whole history sent (100 earlier messages), wall / CPU (p50) | {r51:.3} ms / {c51:.3} ms |"
    );
    println!(
        "| run 51 / run 1, wall / CPU | {:.2}× / {:.2}× |",
        r51 / r1,
        c51 / c1
    );
}
