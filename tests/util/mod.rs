//! The test builder: runs the real `agentos` binary in an isolated temporary directory.
//!
//! Every [`TestEnv`] has its own `agents.toml` and SQLite file (passed through
//! `AGENTOS_CONFIG` / `AGENTOS_DB`), its own `HOME` and `XDG_*` directories, and no
//! `OPENAI_API_KEY` or proxy settings, so tests never see the developer's setup and can
//! run in parallel. Every wait is bounded: a child that outlives its timeout is killed and
//! the test fails with what it printed so far.

#![allow(dead_code)]

pub mod postgres;

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fake_model::FakeModel;

/// How long any single command may take before the test fails.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Agents on the built-in offline `test` model only.
pub const TEST_MODEL_CONFIG: &str = r#"
[[agents]]
id = "test-agent"
name = "Test Agent"
description = "Runs on the offline test model"
model = "test"
instructions = "You are a test agent. The robot's name is {robot_name}."

[[agents]]
id = "echo"
model = "test"
instructions = ["Line one of echo's instructions.", "Line two."]
"#;

/// Instructions of the `story-writer` agent of [`fake_config`].
pub const STORY_INSTRUCTIONS: &str =
    "You write very short stories. The robot's name is {robot_name}.";

/// A config whose agents call `fake` through a `[providers.fake]` table (plus the agents of
/// [`TEST_MODEL_CONFIG`]):
///
/// - `story-writer`: history on (3 runs), robot name from `{robot_name}`;
/// - `user-writer`: the robot is called `{user_id}`;
/// - `movie-script`: an output schema (`MovieScript`) in the file.
pub fn fake_config(fake: &FakeModel) -> String {
    format!(
        r#"[providers.fake]
kind = "openai"
base_url = "{base}"

[[agents]]
id = "story-writer"
name = "Story Writer"
description = "Writes very short stories"
model = "fake:gpt-4o-mini"
instructions = "{STORY_INSTRUCTIONS}"
add_history_to_context = true
num_history_runs = 3

[[agents]]
id = "user-writer"
model = "fake:gpt-4o-mini"
instructions = "The robot's name is {{user_id}}."

[[agents]]
id = "movie-script"
model = "fake:gpt-4o-mini"
instructions = "Write a movie script outline."

[agents.output_schema]
title = "MovieScript"
type = "object"
required = ["name", "year"]

[agents.output_schema.properties]
name = {{ type = "string" }}
year = {{ type = "integer" }}
{TEST_MODEL_CONFIG}"#,
        base = fake.base_url()
    )
}

/// One isolated place to run `agentos` in.
pub struct TestEnv {
    dir: tempfile::TempDir,
    config_path: PathBuf,
    db_path: PathBuf,
    extra_env: Vec<(String, String)>,
}

impl TestEnv {
    /// A tempdir with an `agents.toml` of [`TEST_MODEL_CONFIG`] agents and a db path.
    pub fn new() -> TestEnv {
        let dir = tempfile::Builder::new()
            .prefix("agentos-test-")
            .tempdir()
            .expect("create a temporary directory");
        for sub in [
            "home",
            "xdg-config",
            "xdg-data",
            "xdg-cache",
            "xdg-state",
            "xdg-runtime",
        ] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("create a tempdir subdirectory");
        }
        let env = TestEnv {
            config_path: dir.path().join("agents.toml"),
            db_path: dir.path().join("agentos.db"),
            dir,
            extra_env: Vec::new(),
        };
        env.write_config(TEST_MODEL_CONFIG);
        env
    }

    /// A [`TestEnv`] whose `agents.toml` is [`fake_config`] for `fake`.
    pub fn with_fake(fake: &FakeModel) -> TestEnv {
        let env = TestEnv::new();
        env.write_config(&fake_config(fake));
        env
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    /// Replaces the `agents.toml`.
    pub fn write_config(&self, text: &str) {
        std::fs::write(&self.config_path, text).expect("write agents.toml");
    }

    /// Writes a file into the tempdir and returns its path.
    pub fn write_file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write a test file");
        path
    }

    /// Sets an environment variable for every later command.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.extra_env.push((key.to_string(), value.to_string()));
    }

    /// `agentos ARGS` with the isolated environment; stdin is empty unless changed.
    pub fn cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_agentos"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("AGENTOS_CONFIG", &self.config_path)
            .env("AGENTOS_DB", &self.db_path)
            .env("HOME", self.dir.path().join("home"))
            .env("XDG_CONFIG_HOME", self.dir.path().join("xdg-config"))
            .env("XDG_DATA_HOME", self.dir.path().join("xdg-data"))
            .env("XDG_CACHE_HOME", self.dir.path().join("xdg-cache"))
            .env("XDG_STATE_HOME", self.dir.path().join("xdg-state"))
            .env("XDG_RUNTIME_DIR", self.dir.path().join("xdg-runtime"))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        for var in [
            "OPENAI_API_KEY",
            "OPENAI_BASE_URL",
            "ANTHROPIC_API_KEY",
            "ANTHROPIC_BASE_URL",
            "OPENROUTER_API_KEY",
            "AGENTOS_LOG",
            "AGENTOS_READ_TIMEOUT_SECS",
            "AGENTOS_CONNECT_TIMEOUT_SECS",
            "AGENTOS_UPDATE_COMPLETIONS",
            "RUST_BACKTRACE",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "NO_PROXY",
            "http_proxy",
            "https_proxy",
            "all_proxy",
            "no_proxy",
        ] {
            cmd.env_remove(var);
        }
        for (key, value) in &self.extra_env {
            cmd.env(key, value);
        }
        cmd
    }

    /// Runs `agentos ARGS` to completion (bounded by [`COMMAND_TIMEOUT`]).
    pub fn run<I, S>(&self, args: I) -> CmdOutput
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_command(self.cmd(args), None)
    }

    /// Runs `agentos ARGS` with `input` piped to its stdin.
    pub fn run_with_stdin<I, S>(&self, args: I, input: &str) -> CmdOutput
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_command(self.cmd(args), Some(input.as_bytes().to_vec()))
    }

    /// Starts `agentos ARGS` with stdout and stderr read incrementally in the background.
    pub fn spawn<I, S>(&self, args: I) -> Running
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Running::start(self.cmd(args))
    }

    /// `agentos sessions show ID --json`: the session's stored run objects.
    #[track_caller]
    pub fn stored_runs(&self, session_id: &str) -> Vec<Value> {
        let out = self.run(["sessions", "show", session_id, "--json"]);
        out.assert_success();
        match out.json() {
            Value::Array(runs) => runs,
            other => panic!("`sessions show {session_id} --json` is not an array: {other:#}"),
        }
    }

    /// `agentos sessions list --json`: one JSON object per session.
    #[track_caller]
    pub fn sessions(&self) -> Vec<Value> {
        let out = self.run(["sessions", "list", "--json", "-n", "1000"]);
        out.assert_success();
        out.json_lines()
    }
}

/// What a finished command printed, and how it ended.
#[derive(Debug)]
pub struct CmdOutput {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The command line, for failure messages.
    pub command: String,
}

impl CmdOutput {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// The exit code; `None` when the process was killed by a signal.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// A description of the whole result, for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "command: {}\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command,
            self.status,
            self.stdout(),
            self.stderr()
        )
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            Some(code),
            "unexpected exit code\n{}",
            self.describe()
        );
        self
    }

    /// Exit 0, and nothing on stderr (strict by default, as ripgrep and just test).
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        self.assert_code(0);
        assert!(
            self.stderr.is_empty(),
            "expected an empty stderr\n{}",
            self.describe()
        );
        self
    }

    #[track_caller]
    pub fn assert_stderr_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stderr().contains(needle),
            "stderr should contain {needle:?}\n{}",
            self.describe()
        );
        self
    }

    #[track_caller]
    pub fn assert_stdout_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stdout().contains(needle),
            "stdout should contain {needle:?}\n{}",
            self.describe()
        );
        self
    }

    /// stdout as one JSON document.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{}", self.describe()))
    }

    /// stdout as JSON lines (blank lines are not allowed).
    #[track_caller]
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout()
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| {
                    panic!(
                        "stdout line {line:?} is not JSON ({e})\n{}",
                        self.describe()
                    )
                })
            })
            .collect()
    }
}

fn describe_command(cmd: &Command) -> String {
    let mut parts = vec!["agentos".to_string()];
    for arg in cmd.get_args() {
        let arg = arg.to_string_lossy();
        if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || "'\"{}$".contains(c)) {
            parts.push(format!("'{}'", arg.replace('\'', r"'\''")));
        } else {
            parts.push(arg.into_owned());
        }
    }
    parts.join(" ")
}

pub fn run_command(mut cmd: Command, stdin: Option<Vec<u8>>) -> CmdOutput {
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut running = Running::start(cmd);
    if let Some(input) = stdin {
        let mut pipe = running.child.stdin.take().expect("piped stdin");
        // A thread, so a child that does not read its stdin cannot block the test.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    running.wait(COMMAND_TIMEOUT)
}

/// Polls `child` until it exits or `timeout` passes; `None` on timeout (the child is left
/// running).
pub fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(e) => panic!("could not wait for the child process: {e}"),
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Bytes collected from a child's pipe by a reader thread.
#[derive(Default)]
struct Collected {
    bytes: Mutex<(Vec<u8>, bool)>, // (data, reached EOF)
    changed: Condvar,
}

impl Collected {
    fn reader(source: impl Read + Send + 'static) -> (Arc<Collected>, JoinHandle<()>) {
        let collected = Arc::new(Collected::default());
        let shared = collected.clone();
        let handle = std::thread::spawn(move || {
            let mut source = source;
            let mut buf = [0u8; 8192];
            loop {
                let n = source.read(&mut buf).unwrap_or(0);
                let mut guard = shared.bytes.lock().unwrap_or_else(|e| e.into_inner());
                if n == 0 {
                    guard.1 = true;
                } else {
                    guard.0.extend_from_slice(&buf[..n]);
                }
                shared.changed.notify_all();
                if n == 0 {
                    break;
                }
            }
        });
        (collected, handle)
    }

    fn snapshot(&self) -> Vec<u8> {
        self.bytes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    /// Waits until the text so far satisfies `pred` (true) or EOF/timeout (false).
    fn wait_for(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut guard = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if pred(&String::from_utf8_lossy(&guard.0)) {
                return true;
            }
            let now = Instant::now();
            if guard.1 || now >= deadline {
                return false;
            }
            guard = self
                .changed
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// A running `agentos` whose output is collected as it arrives.
pub struct Running {
    pub child: Child,
    stdout: Option<Arc<Collected>>,
    stderr: Arc<Collected>,
    readers: Vec<JoinHandle<()>>,
    command: String,
}

impl Running {
    /// Starts `cmd` with stdout and stderr piped and read by background threads.
    pub fn start(cmd: Command) -> Running {
        Running::start_with(cmd, true)
    }

    /// Like [`Running::start`], but leaves stdout for the caller to read from
    /// `child.stdout` (e.g. to close it early).
    pub fn start_raw_stdout(cmd: Command) -> Running {
        Running::start_with(cmd, false)
    }

    fn start_with(mut cmd: Command, collect_stdout: bool) -> Running {
        let command = describe_command(&cmd);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {command}: {e}"));
        let mut readers = Vec::new();
        let stdout = if collect_stdout {
            let (c, h) = Collected::reader(child.stdout.take().expect("piped stdout"));
            readers.push(h);
            Some(c)
        } else {
            None
        };
        let (stderr, h) = Collected::reader(child.stderr.take().expect("piped stderr"));
        readers.push(h);
        Running {
            child,
            stdout,
            stderr,
            readers,
            command,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout_so_far(&self) -> String {
        self.stdout
            .as_ref()
            .map(|s| String::from_utf8_lossy(&s.snapshot()).into_owned())
            .unwrap_or_default()
    }

    pub fn stderr_so_far(&self) -> String {
        String::from_utf8_lossy(&self.stderr.snapshot()).into_owned()
    }

    /// Waits (bounded) until stdout contains `needle`; fails the test otherwise.
    #[track_caller]
    pub fn wait_for_stdout(&mut self, needle: &str, timeout: Duration) {
        let stdout = self.stdout.clone().expect("stdout is collected");
        if !stdout.wait_for(timeout, |s| s.contains(needle)) {
            self.kill();
            panic!(
                "stdout never showed {needle:?} within {timeout:?}\ncommand: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                self.command,
                self.stdout_so_far(),
                self.stderr_so_far()
            );
        }
    }

    /// Sends SIGINT, as Ctrl-C in a terminal would (to this process only).
    #[track_caller]
    pub fn interrupt(&self) {
        let status = Command::new("kill")
            .args(["-INT", &self.pid().to_string()])
            .status()
            .expect("run kill -INT");
        assert!(status.success(), "kill -INT {} failed", self.pid());
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the exit (bounded by `timeout`) and collects the output; on timeout the
    /// process is killed and the test fails.
    #[track_caller]
    pub fn wait(mut self, timeout: Duration) -> CmdOutput {
        let Some(status) = wait_with_timeout(&mut self.child, timeout) else {
            self.kill();
            panic!(
                "{} did not exit within {timeout:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                self.command,
                self.stdout_so_far(),
                self.stderr_so_far()
            );
        };
        // The pipes close when the process exits, unless it left a child holding them;
        // bound that wait too.
        let deadline = Instant::now() + Duration::from_secs(5);
        for collected in self.stdout.iter().chain(std::iter::once(&self.stderr)) {
            let left = deadline.saturating_duration_since(Instant::now());
            collected.wait_for(left, |_| false);
        }
        for reader in self.readers.drain(..) {
            if reader.is_finished() {
                let _ = reader.join();
            }
        }
        CmdOutput {
            status,
            stdout: self
                .stdout
                .as_ref()
                .map(|s| s.snapshot())
                .unwrap_or_default(),
            stderr: self.stderr.snapshot(),
            command: self.command.clone(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A test that panicked must not leave the process behind.
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

/// A file of this repository (relative to `Cargo.toml`), read at test time.
#[track_caller]
pub fn read_manifest_relative(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "could not read {} ({e}); this test needs that file to be present",
            path.display()
        )
    })
}

/// Where the answers of the reference AgentOS live (see its README).
pub const CAPTURES_DIR: &str = "tests/fixtures/agentos";

/// The JSON body of a captured HTTP exchange (`.http` file: headers, blank line, body).
#[track_caller]
pub fn capture_body(name: &str) -> Value {
    let text = read_manifest_relative(&format!("{CAPTURES_DIR}/{name}"));
    let text = text.replace("\r\n", "\n");
    let (_, body) = text
        .split_once("\n\n")
        .unwrap_or_else(|| panic!("capture {name} has no blank line before its body"));
    serde_json::from_str(body.trim())
        .unwrap_or_else(|e| panic!("capture {name}'s body is not JSON: {e}"))
}

/// The sorted top-level keys of a JSON object.
#[track_caller]
pub fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .unwrap_or_else(|| panic!("not a JSON object: {value:#}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}
