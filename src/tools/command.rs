//! Command tools: `[tools.NAME]` runs a program with the model's arguments.
//!
//! The program is started directly (never through a shell) with a cleared environment:
//! only allowlisted variables pass through, so API keys stay out unless a tool lists them.
//! The arguments arrive twice: as a JSON object on stdin and as `AGENTOS_ARG_<NAME>`
//! variables. The program runs in its own process group, and the whole group is killed
//! when the call times out, is cancelled, is dropped before its end, or when the program
//! exits and leaves processes behind, so no call leaks processes or hangs on a pipe a
//! background process holds open.

use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::{Tool, ToolSpec};
use crate::cancel::CancelToken;
use crate::config::CommandToolDef;

/// How long to wait for the program's pipes to close once its process group is dead. Only
/// a process that left the group (`setsid`) while holding them open can make this elapse.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Largest argument value also passed as an `AGENTOS_ARG_*` variable. Linux refuses to
/// start a program with a single variable over 128 KiB, so longer values (and values with
/// NUL characters) are only on stdin.
const MAX_ARG_VAR_BYTES: usize = 100 * 1024;
/// Cap on all `AGENTOS_ARG_*` values together, well under the kernel's limit for the
/// whole environment and argument list.
const MAX_ARG_VARS_BYTES: usize = 1024 * 1024;

/// A command tool, ready to be called from any run.
pub struct CommandTool {
    spec: ToolSpec,
    def: CommandToolDef,
}

impl CommandTool {
    pub fn new(def: &CommandToolDef) -> Self {
        CommandTool {
            spec: ToolSpec {
                name: def.name.clone(),
                description: def.description.clone(),
                parameters: def.parameters.clone(),
                requires_confirmation: def.requires_confirmation,
            },
            def: def.clone(),
        }
    }

    fn command(&self, args: &Value) -> Command {
        let def = &self.def;
        let mut cmd = Command::new(&def.command[0]);
        cmd.args(&def.command[1..])
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(dir) = &def.cwd {
            cmd.current_dir(dir);
        }
        for var in &def.env {
            if let Some(value) = std::env::var_os(var) {
                cmd.env(var, value);
            }
        }
        if let Value::Object(map) = args {
            let mut budget = MAX_ARG_VARS_BYTES;
            for (name, value) in map {
                let value = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                // What the environment cannot carry is only on stdin.
                if value.len() > MAX_ARG_VAR_BYTES || value.len() > budget || value.contains('\0') {
                    continue;
                }
                budget -= value.len();
                cmd.env(arg_var(name), value);
            }
        }
        cmd.env("AGENTOS_TOOL", &def.name);
        cmd
    }

    async fn run(&self, args: &Value, cancel: &CancelToken) -> Result<String, String> {
        if cancel.is_cancelled() {
            return Err("cancelled".into());
        }
        let program = &self.def.command[0];
        let mut child = self
            .command(args)
            .spawn()
            .map_err(|e| format!("could not start {program}: {e}"))?;
        // Declared after `child`, so dropped before it: when the call's future is dropped
        // mid-call (its run aborted, the runtime shutting down), the group is killed while
        // the program is not yet reaped, and so while its id still names the group.
        let mut group = Group(child.id());

        // Stdin is written, and stdout and stderr read, beside the wait, so a child that
        // writes a lot before reading, or never reads at all, cannot block the call.
        if let Some(mut stdin) = child.stdin.take() {
            let input = args.to_string();
            tokio::spawn(async move {
                // A program that ignores its input may exit before reading it.
                let _ = stdin.write_all(input.as_bytes()).await;
            });
        }
        let cap = self.def.max_output_bytes;
        let stdout = Capture::new(cap);
        let stderr = Capture::new(cap);
        let readers = tokio::spawn({
            let (out, err) = (stdout.clone(), stderr.clone());
            let (out_pipe, err_pipe) = (child.stdout.take(), child.stderr.take());
            async move { tokio::join!(out.read(out_pipe), err.read(err_pipe)) }
        });

        let outcome = tokio::select! {
            status = child.wait() => Outcome::Exited(status),
            () = cancel.cancelled() => Outcome::Cancelled,
            () = tokio::time::sleep(self.def.timeout) => Outcome::TimedOut,
        };
        // Whatever happened, nothing of the call outlives it: the program itself when it
        // timed out or was cancelled, its background processes when it exited.
        group.kill();
        if !matches!(outcome, Outcome::Exited(_)) {
            // Reap the killed program; it is gone at once after SIGKILL.
            let _ = tokio::time::timeout(DRAIN_GRACE, child.wait()).await;
        }
        // The pipes close once every process holding them is dead.
        let _ = tokio::time::timeout(DRAIN_GRACE, readers).await;

        match outcome {
            Outcome::Cancelled => Err("cancelled".into()),
            Outcome::TimedOut => Err(format!(
                "command timed out after {}s",
                self.def.timeout.as_secs_f64()
            )),
            Outcome::Exited(Err(e)) => Err(format!("could not wait for {program}: {e}")),
            Outcome::Exited(Ok(status)) => exit_result(status, &stdout, &stderr),
        }
    }
}

impl Tool for CommandTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call<'a>(
        &'a self,
        args: &'a Value,
        cancel: &'a CancelToken,
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(self.run(args, cancel))
    }
}

/// The result of a program that exited: stdout when it succeeded, else an error with
/// stderr (or stdout when stderr is empty).
fn exit_result(status: ExitStatus, stdout: &Capture, stderr: &Capture) -> Result<String, String> {
    use std::os::unix::process::ExitStatusExt;
    let out = stdout.take();
    if status.success() {
        return Ok(out);
    }
    let err = stderr.take();
    let detail = if err.trim().is_empty() { out } else { err };
    let detail = detail.trim();
    let head = match (status.code(), status.signal()) {
        (Some(code), _) => format!("command exited with status {code}"),
        (None, Some(signal)) => format!("command was killed by signal {signal}"),
        (None, None) => format!("command failed ({status})"),
    };
    Err(if detail.is_empty() {
        head
    } else {
        format!("{head}: {detail}")
    })
}

/// `AGENTOS_ARG_<NAME>`: the argument name uppercased, other characters than ASCII
/// letters and digits replaced by `_`.
fn arg_var(name: &str) -> String {
    let mut var = String::from("AGENTOS_ARG_");
    var.extend(name.chars().map(|c| {
        if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        }
    }));
    var
}

enum Outcome {
    Exited(std::io::Result<ExitStatus>),
    Cancelled,
    TimedOut,
}

/// The process group of a running call. [`Group::kill`] kills it once; dropping it unkilled
/// (the call's future dropped before its end) kills it then.
struct Group(Option<u32>);

impl Group {
    fn kill(&mut self) {
        if let Some(pgid) = self.0.take() {
            kill_group(pgid);
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends SIGKILL to every process in the group `pgid`. The id is not reused while any
/// process of the group lives; once none does, the signal finds nothing.
fn kill_group(pgid: u32) {
    let Some(pid) = i32::try_from(pgid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
}

/// Up to `cap` bytes of one output stream. Shared with the task reading it, so what was
/// read is kept even when the stream never ends.
#[derive(Clone)]
struct Capture {
    data: Arc<Mutex<Captured>>,
    cap: usize,
}

#[derive(Default)]
struct Captured {
    bytes: Vec<u8>,
    truncated: bool,
}

impl Capture {
    fn new(cap: usize) -> Self {
        Capture {
            data: Arc::default(),
            cap,
        }
    }

    /// Reads `stream` to its end. Past the cap the rest is read and dropped, so the
    /// program never blocks on a full pipe.
    async fn read(self, stream: Option<impl AsyncRead + Unpin>) {
        let Some(mut stream) = stream else { return };
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    let mut captured = self.data.lock().unwrap_or_else(|e| e.into_inner());
                    let room = self.cap.saturating_sub(captured.bytes.len());
                    if n > room {
                        captured.truncated = true;
                    }
                    captured.bytes.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }

    /// The text read so far, without trailing newlines, marked when it was cut.
    fn take(&self) -> String {
        let captured = std::mem::take(&mut *self.data.lock().unwrap_or_else(|e| e.into_inner()));
        let mut bytes = captured.bytes;
        if captured.truncated {
            // Do not end on half a UTF-8 character.
            if let Err(e) = std::str::from_utf8(&bytes) {
                if e.error_len().is_none() {
                    bytes.truncate(e.valid_up_to());
                }
            }
        }
        let mut text = String::from_utf8_lossy(&bytes)
            .trim_end_matches(['\n', '\r'])
            .to_string();
        if captured.truncated {
            text.push_str(&format!("\n…[output truncated at {} bytes]", self.cap));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DEFAULT_MAX_OUTPUT_BYTES, DEFAULT_TOOL_ENV};
    use serde_json::json;
    use std::path::Path;
    use std::process::Command;
    use std::time::Instant;

    /// Runs a future to its end on a runtime of its own.
    fn block<T>(future: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(future)
    }

    /// A tool running `script` with /bin/sh.
    fn def(dir: &Path, script: &str) -> CommandToolDef {
        let path = dir.join("tool.sh");
        std::fs::write(&path, script).unwrap();
        CommandToolDef {
            name: "t".into(),
            description: "test tool".into(),
            parameters: json!({"type": "object", "properties": {}}),
            command: vec!["/bin/sh".into(), path.display().to_string()],
            cwd: None,
            timeout: Duration::from_secs(10),
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
            env: DEFAULT_TOOL_ENV.iter().map(|v| v.to_string()).collect(),
            requires_confirmation: false,
        }
    }

    fn call(def: &CommandToolDef, args: Value) -> Result<String, String> {
        block(CommandTool::new(def).call(&args, &CancelToken::new()))
    }

    /// Whether a process with this pid exists and is not a zombie waiting to be reaped
    /// (which `kill -0` still finds, and an init that never reaps would leave behind).
    fn alive(pid: &str) -> bool {
        let exists = Command::new("kill")
            .args(["-0", pid])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
                Some(state == 'Z')
            })
            .unwrap_or(false);
        exists && !zombie
    }

    /// Waits for `path` to hold a pid, then returns it.
    fn read_pid(path: &Path) -> String {
        let start = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(path) {
                if text.ends_with('\n') {
                    return text.trim().to_string();
                }
            }
            assert!(start.elapsed() < Duration::from_secs(5), "no pid written");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Asserts the process goes away soon (it may take a moment to be reaped by init).
    fn assert_gone(pid: &str) {
        let start = Instant::now();
        while alive(pid) {
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "process {pid} still running"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn the_example_tools_work() {
        let config =
            crate::config::Config::from_toml_str(crate::config::EXAMPLE, Path::new("agents.toml"))
                .unwrap();
        let count = CommandTool::new(&config.tools["word_count"]);
        let words = block(count.call(
            &json!({"text": "one two  three\n$(four) `five`"}),
            &CancelToken::new(),
        ));
        assert_eq!(words.map(|w| w.trim().to_string()), Ok("5".into()));
        let time = block(
            CommandTool::new(&config.tools["utc_time"]).call(&json!({}), &CancelToken::new()),
        )
        .unwrap();
        assert!(time.len() == 20 && time.ends_with('Z'), "{time}");
    }

    #[test]
    fn spec_comes_from_the_definition() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = def(dir.path(), "true");
        d.requires_confirmation = true;
        let tool = CommandTool::new(&d);
        assert_eq!(tool.spec().name, "t");
        assert_eq!(tool.spec().description, "test tool");
        assert_eq!(tool.spec().parameters["type"], "object");
        assert!(tool.spec().requires_confirmation);
    }

    #[test]
    fn arguments_arrive_on_stdin_and_as_variables() {
        let dir = tempfile::tempdir().unwrap();
        let d = def(
            dir.path(),
            "cat\necho\necho \"city=$AGENTOS_ARG_CITY\"\necho \"days=$AGENTOS_ARG_DAYS\"\n\
             echo \"opts=$AGENTOS_ARG_MORE_OPTS\"\necho \"tool=$AGENTOS_TOOL\"\n",
        );
        let args = json!({"city": "Lisbon; rm -rf /", "days": 3, "more-opts": {"a": [1, null]}});
        let out = call(&d, args.clone()).unwrap();
        let mut lines = out.lines();
        let stdin: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        assert_eq!(stdin, args);
        assert_eq!(
            lines.collect::<Vec<_>>(),
            [
                "city=Lisbon; rm -rf /",
                "days=3",
                "opts={\"a\":[1,null]}",
                "tool=t"
            ]
        );
    }

    #[test]
    fn arg_variable_names() {
        assert_eq!(arg_var("city"), "AGENTOS_ARG_CITY");
        assert_eq!(arg_var("max-days.x"), "AGENTOS_ARG_MAX_DAYS_X");
        assert_eq!(arg_var("ünï"), "AGENTOS_ARG__N_");
    }

    #[test]
    fn output_is_trimmed_and_cwd_applies() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = def(dir.path(), "pwd\nprintf '\\n\\n'\n");
        let work = dir.path().join("work");
        std::fs::create_dir(&work).unwrap();
        d.cwd = Some(work.clone());
        let out = call(&d, json!({})).unwrap();
        assert_eq!(
            Path::new(&out).canonicalize().unwrap(),
            work.canonicalize().unwrap()
        );
    }

    #[test]
    fn environment_is_an_allowlist() {
        // Cargo sets CARGO_MANIFEST_DIR for the test process; it stands in for an API key.
        assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
        let dir = tempfile::tempdir().unwrap();
        let mut d = def(
            dir.path(),
            "echo \"home=${HOME-unset}\"\necho \"manifest=${CARGO_MANIFEST_DIR-unset}\"\n",
        );
        let home = std::env::var("HOME").unwrap_or_else(|_| "unset".into());
        let out = call(&d, json!({})).unwrap();
        assert_eq!(out, format!("home={home}\nmanifest=unset"));

        d.env.push("CARGO_MANIFEST_DIR".into());
        let out = call(&d, json!({})).unwrap();
        assert_eq!(
            out,
            format!("home={home}\nmanifest={}", env!("CARGO_MANIFEST_DIR"))
        );

        // Nothing else leaks: the child sees only the allowlist and its own variables.
        let d = def(dir.path(), "env\n");
        let out = call(&d, json!({"x": 1})).unwrap();
        for line in out.lines() {
            let name = line.split('=').next().unwrap();
            assert!(
                DEFAULT_TOOL_ENV.contains(&name)
                    || ["AGENTOS_TOOL", "AGENTOS_ARG_X", "PWD", "SHLVL", "_"].contains(&name),
                "{line}"
            );
        }
    }

    #[test]
    fn non_zero_exit_is_an_error_with_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let d = def(dir.path(), "echo out\necho 'no such city' >&2\nexit 3\n");
        assert_eq!(
            call(&d, json!({})),
            Err("command exited with status 3: no such city".into())
        );
        let d = def(dir.path(), "echo only stdout\nexit 1\n");
        assert_eq!(
            call(&d, json!({})),
            Err("command exited with status 1: only stdout".into())
        );
        let d = def(dir.path(), "exit 2\n");
        assert_eq!(
            call(&d, json!({})),
            Err("command exited with status 2".into())
        );
        let d = def(dir.path(), "kill -9 $$\n");
        assert_eq!(
            call(&d, json!({})),
            Err("command was killed by signal 9".into())
        );
    }

    #[test]
    fn a_missing_program_is_a_start_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = def(dir.path(), "");
        d.command = vec!["/nonexistent/agentos-tool".into()];
        let err = call(&d, json!({})).unwrap_err();
        assert!(
            err.starts_with("could not start /nonexistent/agentos-tool: "),
            "{err}"
        );
    }

    #[test]
    fn a_hanging_tool_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let mut d = def(
            dir.path(),
            &format!("sleep 60 &\necho $! > '{}'\nsleep 60\n", pid_file.display()),
        );
        d.timeout = Duration::from_millis(500);
        let start = Instant::now();
        assert_eq!(
            call(&d, json!({})),
            Err("command timed out after 0.5s".into())
        );
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
        assert_gone(&read_pid(&pid_file));
    }

    #[test]
    fn background_processes_do_not_outlive_the_call() {
        // The background sleep holds stdout open; the call still returns when the script
        // exits, and the sleep is gone.
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let d = def(
            dir.path(),
            &format!(
                "sleep 60 &\necho $! > '{}'\necho done\n",
                pid_file.display()
            ),
        );
        let start = Instant::now();
        assert_eq!(call(&d, json!({})), Ok("done".into()));
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
        assert_gone(&read_pid(&pid_file));
    }

    #[test]
    fn output_floods_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = def(
            dir.path(),
            "yes | head -c 10000000\nyes err | head -c 10000000 >&2\n",
        );
        d.max_output_bytes = 1000;
        let start = Instant::now();
        let out = call(&d, json!({})).unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        assert!(
            out.ends_with("\n…[output truncated at 1000 bytes]"),
            "{}",
            &out[out.len().saturating_sub(80)..]
        );
        assert!(out.starts_with("y\ny\n"));
        assert!(out.len() < 1100, "{}", out.len());

        let d = CommandToolDef {
            max_output_bytes: 100,
            ..def(dir.path(), "yes fail | head -c 10000000 >&2\nexit 1\n")
        };
        let err = call(&d, json!({})).unwrap_err();
        assert!(
            err.starts_with("command exited with status 1: fail\nfail\n"),
            "{err}"
        );
        assert!(err.ends_with("…[output truncated at 100 bytes]"), "{err}");
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = def(dir.path(), "printf 'aéééé'\n");
        d.max_output_bytes = 4;
        assert_eq!(
            call(&d, json!({})),
            Ok("aé\n…[output truncated at 4 bytes]".into())
        );
    }

    #[test]
    fn large_arguments_arrive_on_stdin_only() {
        let dir = tempfile::tempdir().unwrap();
        let d = def(
            dir.path(),
            "wc -c | tr -d ' '\necho \"${AGENTOS_ARG_TEXT-unset} $AGENTOS_ARG_SMALL\"\n",
        );
        let args = json!({ "text": "x".repeat(1 << 20), "small": "s" });
        let out = call(&d, args.clone()).unwrap();
        assert_eq!(out, format!("{}\nunset s", args.to_string().len()));

        // A program that never reads a large input still runs and returns.
        let d = def(dir.path(), "echo ok\n");
        assert_eq!(call(&d, args), Ok("ok".into()));
    }

    #[test]
    fn a_dropped_call_kills_its_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let child_file = dir.path().join("child");
        let d = def(
            dir.path(),
            &format!(
                "sleep 60 &\necho $! > '{}'\necho $$ > '{}'\nsleep 60\n",
                child_file.display(),
                pid_file.display()
            ),
        );
        let tool = CommandTool::new(&d);
        let cancel = CancelToken::new();
        let args = json!({});
        let pids = block(async {
            let call = tool.call(&args, &cancel);
            let pids = async {
                loop {
                    if let (Ok(a), Ok(b)) = (
                        std::fs::read_to_string(&pid_file),
                        std::fs::read_to_string(&child_file),
                    ) {
                        if a.ends_with('\n') && b.ends_with('\n') {
                            break (a.trim().to_string(), b.trim().to_string());
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            };
            // The call is dropped when the pids are in, its program and child running.
            tokio::select! {
                result = call => panic!("the call ended: {result:?}"),
                pids = pids => pids,
            }
        });
        assert_gone(&pids.0);
        assert_gone(&pids.1);
    }

    #[test]
    fn cancel_from_another_thread_stops_the_call() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let d = def(
            dir.path(),
            &format!("echo $$ > '{}'\nsleep 60\n", pid_file.display()),
        );
        let tool = CommandTool::new(&d);
        let cancel = CancelToken::new();
        let worker = {
            let cancel = cancel.clone();
            std::thread::spawn(move || block(tool.call(&json!({}), &cancel)))
        };
        let pid = read_pid(&pid_file);
        let start = Instant::now();
        cancel.cancel();
        let result = worker.join().unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(result, Err("cancelled".into()));
        assert_gone(&pid);

        // A call made with an already-cancelled token does not start the program.
        let marker = dir.path().join("ran");
        let d = def(dir.path(), &format!("touch '{}'\n", marker.display()));
        assert_eq!(
            block(CommandTool::new(&d).call(&json!({}), &cancel)),
            Err("cancelled".into())
        );
        assert!(!marker.exists());
    }
}
