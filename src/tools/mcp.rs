//! MCP servers over stdio: `[mcp.NAME]` starts a program that speaks the Model Context
//! Protocol on its stdin and stdout, and its tools become tools of the agents that list
//! `"mcp:NAME"`.
//!
//! The transport is newline-delimited JSON-RPC 2.0. agentos sends `initialize`, then the
//! `notifications/initialized` notification, lists the tools (`tools/list`, following
//! `nextCursor`) and calls them (`tools/call`). One reader task per server routes each
//! response to the call waiting for its id, so calls to one server run concurrently. It
//! answers the server's `ping` requests, refuses its other requests (`-32601`: agentos
//! offers no client capabilities), notes `notifications/tools/list_changed` so the list is
//! fetched again on next use, and skips lines that are not JSON-RPC. A second task drains
//! stderr and keeps its last lines for error messages.
//!
//! A cancelled or timed-out call returns at once and tells the server with
//! `notifications/cancelled`. The server runs in its own process group, so a Ctrl-C in the
//! terminal reaches agentos only, and dropping the [`McpServer`] closes its stdin, then
//! terminates and finally kills the whole group (on a thread of its own, so dropping never
//! holds up a run).
//!
//! [`McpPool`] starts each server once, on first use, and keeps it; one that died is
//! started again on its next use.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::oneshot;

use super::{Tool, ToolSpec};
use crate::cancel::CancelToken;
use crate::config::McpServerDef;

/// The protocol version agentos asks for: the newest one that still starts with
/// `initialize`.
pub const PROTOCOL_VERSION: &str = "2025-11-25";
/// Versions a server may answer with. They differ in nothing agentos uses.
const SUPPORTED_VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// Time a server has to start: answer `initialize` and list its tools.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed for listing the tools again after `notifications/tools/list_changed`.
const LIST_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of the server's stderr kept for error messages.
const STDERR_LINES: usize = 20;
/// Longest stderr line kept, in bytes.
const STDERR_LINE_BYTES: usize = 500;
/// Longest JSON-RPC message read from a server; longer lines are skipped.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// Longest tool name OpenAI-compatible APIs accept (`[a-zA-Z0-9_-]{1,64}`).
const MAX_TOOL_NAME_LEN: usize = 64;
/// How long a closed-stdin server has to exit, and then a terminated one, before the
/// group is killed.
const EXIT_GRACE: Duration = Duration::from_millis(200);
const TERM_GRACE: Duration = Duration::from_millis(500);

/// A tool as an MCP server describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct McpToolInfo {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments object.
    pub input_schema: Value,
}

/// Why a request got no result.
#[derive(Debug)]
enum CallError {
    /// The server was dead before the request reached it; sending it again to a new
    /// instance cannot run the tool twice.
    NotSent(String),
    /// The server exited while the request was in flight.
    Died(String),
    Cancelled,
    TimedOut(Duration),
    /// A JSON-RPC error response.
    Rpc {
        code: i64,
        message: String,
    },
    /// A result that does not follow the protocol.
    Protocol(String),
    /// The tool ran and reported an error (`isError: true`).
    Tool(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::NotSent(m) | CallError::Died(m) | CallError::Protocol(m) => f.write_str(m),
            CallError::Tool(m) => f.write_str(m),
            CallError::Cancelled => f.write_str("cancelled"),
            CallError::TimedOut(d) => write!(f, "timed out after {}", fmt_duration(*d)),
            CallError::Rpc { code, message } => write!(f, "MCP error {code}: {message}"),
        }
    }
}

fn fmt_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// What the waiting caller of a request receives.
enum Reply {
    Result(Value),
    Error { code: i64, message: String },
}

/// State shared between an [`McpServer`] and its reader tasks.
struct Shared {
    /// The server's stdin; `None` once closed.
    writer: tokio::sync::Mutex<Option<ChildStdin>>,
    /// Requests waiting for their response, by id.
    pending: Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    /// Cleared when stdout ends or a write fails.
    alive: AtomicBool,
    /// Set by `notifications/tools/list_changed`.
    tools_stale: AtomicBool,
    /// The last lines of stderr (and of stdout that was not JSON-RPC).
    stderr_tail: Mutex<VecDeque<String>>,
    stderr_done: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Writes one message as a line. A failed write means the server is gone.
    async fn send(&self, msg: &Value) -> Result<(), String> {
        let mut line = msg.to_string();
        line.push('\n');
        let mut writer = self.writer.lock().await;
        let Some(stdin) = writer.as_mut() else {
            return Err("stdin closed".into());
        };
        let result = match stdin.write_all(line.as_bytes()).await {
            Ok(()) => stdin.flush().await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            *writer = None;
            drop(writer);
            self.mark_dead();
            return Err(e.to_string());
        }
        Ok(())
    }

    /// Marks the server dead and fails every waiting request (their channels close).
    fn mark_dead(&self) {
        self.alive.store(false, Ordering::SeqCst);
        lock(&self.pending).clear();
    }

    fn note(&self, line: String) {
        let mut tail = lock(&self.stderr_tail);
        if tail.len() == STDERR_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }

    /// Handles one line of the server's stdout.
    async fn handle_line(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Array(batch)) => {
                for msg in batch {
                    self.handle_message(msg).await;
                }
            }
            Ok(msg @ Value::Object(_)) => self.handle_message(msg).await,
            _ => self.note(format!("(stdout) {}", truncate(text, STDERR_LINE_BYTES))),
        }
    }

    async fn handle_message(&self, msg: Value) {
        let Value::Object(mut msg) = msg else { return };
        let method = msg.get("method").and_then(Value::as_str).map(str::to_owned);
        let id = msg.remove("id");
        match (method, id) {
            // A request from the server.
            (Some(method), Some(id)) => {
                let reply = if method == "ping" {
                    json!({"jsonrpc": "2.0", "id": id, "result": {}})
                } else {
                    json!({"jsonrpc": "2.0", "id": id, "error": {
                        "code": -32601,
                        "message": format!("agentos does not support `{method}`"),
                    }})
                };
                let _ = self.send(&reply).await;
            }
            (Some(method), None) => {
                if method == "notifications/tools/list_changed" {
                    self.tools_stale.store(true, Ordering::SeqCst);
                }
            }
            (None, Some(id)) => {
                let id = match &id {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.parse().ok(),
                    _ => None,
                };
                let Some(tx) = id.and_then(|id| lock(&self.pending).remove(&id)) else {
                    return;
                };
                let reply = if let Some(error) = msg.get("error") {
                    Reply::Error {
                        code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
                        message: error
                            .get("message")
                            .and_then(Value::as_str)
                            .unwrap_or("unknown error")
                            .to_string(),
                    }
                } else {
                    Reply::Result(msg.remove("result").unwrap_or(Value::Null))
                };
                let _ = tx.send(reply);
            }
            (None, None) => {}
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Reads stdout line by line until it ends, then marks the server dead.
async fn read_stdout(shared: Arc<Shared>, stdout: impl AsyncRead + Unpin) {
    let mut reader = BufReader::new(stdout);
    let mut line = Vec::new();
    let limit = MAX_MESSAGE_BYTES as u64 + 1;
    loop {
        line.clear();
        match (&mut reader).take(limit).read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) if line.len() > MAX_MESSAGE_BYTES && line.last() != Some(&b'\n') => {
                // Too long: skip the rest of the line.
                shared.note(format!(
                    "(stdout) a message over {MAX_MESSAGE_BYTES} bytes was skipped"
                ));
                loop {
                    line.clear();
                    match (&mut reader).take(limit).read_until(b'\n', &mut line).await {
                        Ok(0) | Err(_) => {
                            shared.mark_dead();
                            return;
                        }
                        Ok(_) if line.last() == Some(&b'\n') => break,
                        Ok(_) => {}
                    }
                }
            }
            Ok(_) => shared.handle_line(&line).await,
        }
    }
    shared.mark_dead();
}

/// Keeps the last lines of stderr until it ends.
async fn read_stderr(shared: Arc<Shared>, stderr: impl AsyncRead + Unpin) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader)
            .take(64 * 1024)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end();
                if !text.is_empty() {
                    shared.note(truncate(text, STDERR_LINE_BYTES).to_string());
                }
            }
        }
    }
    shared.stderr_done.store(true, Ordering::SeqCst);
}

/// One running MCP server process.
pub struct McpServer {
    def: McpServerDef,
    /// The process; taken by [`Drop`] to stop it.
    child: Mutex<Option<Child>>,
    /// Its process id, which is also its process group's.
    pid: Option<u32>,
    shared: Arc<Shared>,
    next_id: AtomicU64,
    tools: Mutex<Vec<McpToolInfo>>,
    /// Name and version the server reported.
    server_info: String,
}

impl std::fmt::Debug for McpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServer")
            .field("name", &self.def.name)
            .field("server_info", &self.server_info)
            .finish()
    }
}

impl McpServer {
    /// Starts the server, initializes the session and lists its tools.
    pub async fn start(def: &McpServerDef) -> Result<Arc<McpServer>, String> {
        Self::start_with(def, STARTUP_TIMEOUT).await
    }

    async fn start_with(def: &McpServerDef, startup: Duration) -> Result<Arc<McpServer>, String> {
        let name = &def.name;
        let mut cmd = Command::new(&def.command);
        cmd.args(&def.args)
            .envs(&def.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(dir) = &def.cwd {
            cmd.current_dir(dir);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("MCP server `{name}`: cannot start `{}`: {e}", def.command))?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            unreachable!("all three streams are piped");
        };
        let shared = Arc::new(Shared {
            writer: tokio::sync::Mutex::new(Some(stdin)),
            pending: Mutex::new(HashMap::new()),
            alive: AtomicBool::new(true),
            tools_stale: AtomicBool::new(false),
            stderr_tail: Mutex::new(VecDeque::new()),
            stderr_done: AtomicBool::new(false),
        });
        let mut server = McpServer {
            def: def.clone(),
            pid: child.id(),
            child: Mutex::new(Some(child)),
            shared: shared.clone(),
            next_id: AtomicU64::new(1),
            tools: Mutex::new(Vec::new()),
            server_info: String::new(),
        };
        tokio::spawn(read_stdout(shared.clone(), stdout));
        tokio::spawn(read_stderr(shared.clone(), stderr));

        let deadline = Instant::now() + startup;
        let never = CancelToken::new();
        let params = json!({
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "agentos", "version": env!("CARGO_PKG_VERSION")},
        });
        let init = match server.request("initialize", params, &never, startup).await {
            Ok(init) => init,
            Err(e) => return Err(server.startup_error("initialize", e).await),
        };
        let version = init
            .get("protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !SUPPORTED_VERSIONS.contains(&version) {
            return Err(format!(
                "MCP server `{name}` speaks protocol version `{version}`; agentos supports {}",
                SUPPORTED_VERSIONS.join(", ")
            ));
        }
        if let Some(info) = init.get("serverInfo") {
            let field = |k| info.get(k).and_then(Value::as_str).unwrap_or_default();
            server.server_info = format!("{} {}", field("name"), field("version"))
                .trim()
                .to_string();
        }
        if shared
            .send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await
            .is_err()
        {
            return Err(server.exit_message("after initialize").await);
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        let tools = match server.list_tools(remaining).await {
            Ok(tools) => tools,
            Err(e) => return Err(server.startup_error("tools/list", e).await),
        };
        *lock(&server.tools) = tools;
        Ok(Arc::new(server))
    }

    async fn startup_error(&self, step: &str, e: CallError) -> String {
        let name = &self.def.name;
        match e {
            CallError::NotSent(_) | CallError::Died(_) => {
                self.exit_message(&format!("during {step}")).await
            }
            CallError::TimedOut(d) => format!(
                "MCP server `{name}` did not answer {step} within {}{}",
                fmt_duration(d),
                self.tail_suffix()
            ),
            other => format!("MCP server `{name}`: {step} failed: {other}"),
        }
    }

    /// The server's name in `agents.toml`.
    pub fn name(&self) -> &str {
        &self.def.name
    }

    /// The server's own name and version, as it reported them.
    pub fn server_info(&self) -> &str {
        &self.server_info
    }

    /// The server's tools. After the server announced a change the list is fetched
    /// again; if that fails, the previous list stays.
    pub async fn tools(&self) -> Vec<McpToolInfo> {
        if self.shared.tools_stale.swap(false, Ordering::SeqCst) {
            match self.list_tools(LIST_TIMEOUT).await {
                Ok(tools) => *lock(&self.tools) = tools,
                Err(_) => self.shared.tools_stale.store(true, Ordering::SeqCst),
            }
        }
        lock(&self.tools).clone()
    }

    /// Whether the process still runs and its stdout is open.
    pub fn is_alive(&self) -> bool {
        self.shared.alive.load(Ordering::SeqCst) && self.exit_status().is_none()
    }

    /// Calls a tool. Text contents are joined with newlines, other contents summarized;
    /// a result with `isError: true` is `Err` with its text.
    pub async fn call(
        &self,
        tool: &str,
        args: &Value,
        cancel: &CancelToken,
        timeout: Duration,
    ) -> Result<String, String> {
        self.call_tool(tool, args, cancel, timeout)
            .await
            .map_err(|e| e.to_string())
    }

    async fn call_tool(
        &self,
        tool: &str,
        args: &Value,
        cancel: &CancelToken,
        timeout: Duration,
    ) -> Result<String, CallError> {
        let arguments = match args {
            Value::Null => Value::Object(Map::new()),
            other => other.clone(),
        };
        let params = json!({"name": tool, "arguments": arguments});
        let result = self.request("tools/call", params, cancel, timeout).await?;
        tool_result_text(&result)
    }

    /// Every page of `tools/list`.
    async fn list_tools(&self, timeout: Duration) -> Result<Vec<McpToolInfo>, CallError> {
        let deadline = Instant::now() + timeout;
        let never = CancelToken::new();
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        let mut seen = BTreeSet::new();
        loop {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            let page = match self.request("tools/list", params, &never, remaining).await {
                // A server without tools may not implement the method at all.
                Err(CallError::Rpc { code: -32601, .. }) if cursor.is_none() => return Ok(tools),
                other => other?,
            };
            let list = page.get("tools").and_then(Value::as_array).ok_or_else(|| {
                CallError::Protocol("tools/list answered without a `tools` array".into())
            })?;
            tools.extend(list.iter().filter_map(tool_info));
            match page.get("nextCursor").and_then(Value::as_str) {
                // A repeated cursor would loop forever.
                Some(next) if !next.is_empty() && seen.insert(next.to_string()) => {
                    cursor = Some(next.to_string());
                }
                _ => return Ok(tools),
            }
        }
    }

    /// Sends a request and waits for its response, the timeout or the cancellation.
    async fn request(
        &self,
        method: &str,
        params: Value,
        cancel: &CancelToken,
        timeout: Duration,
    ) -> Result<Value, CallError> {
        if cancel.is_cancelled() {
            return Err(CallError::Cancelled);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.shared.pending).insert(id, tx);
        // Checked after registering: a server that dies from now on clears the entry.
        if !self.shared.alive.load(Ordering::SeqCst) {
            lock(&self.shared.pending).remove(&id);
            return Err(CallError::NotSent(
                self.exit_message("before the call").await,
            ));
        }
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        if self.shared.send(&msg).await.is_err() {
            lock(&self.shared.pending).remove(&id);
            return Err(CallError::NotSent(
                self.exit_message("before the call").await,
            ));
        }
        // The waiting entry is the only sender: once the server dies and the entry is
        // cleared, the channel closes.
        let outcome = tokio::select! {
            reply = rx => Ok(reply),
            () = tokio::time::sleep(timeout) => Err("timed out"),
            () = cancel.cancelled() => Err("cancelled by the user"),
        };
        match outcome {
            Ok(Ok(Reply::Result(value))) => Ok(value),
            Ok(Ok(Reply::Error { code, message })) => Err(CallError::Rpc { code, message }),
            Ok(Err(_)) => Err(CallError::Died(self.exit_message("during the call").await)),
            Err(reason) => {
                lock(&self.shared.pending).remove(&id);
                let _ = self
                    .shared
                    .send(&json!({
                        "jsonrpc": "2.0",
                        "method": "notifications/cancelled",
                        "params": {"requestId": id, "reason": reason},
                    }))
                    .await;
                Err(if reason == "timed out" {
                    CallError::TimedOut(timeout)
                } else {
                    CallError::Cancelled
                })
            }
        }
    }

    /// How the process ended, if it did; the process is not reaped, so its group id
    /// stays reserved until [`Drop`] kills the group.
    fn exit_status(&self) -> Option<String> {
        exit_status(self.pid?)
    }

    /// Says that the server is gone, with its exit status and last stderr lines.
    async fn exit_message(&self, when: &str) -> String {
        // Give the process and the stderr task a moment to finish.
        let deadline = Instant::now() + Duration::from_millis(500);
        let mut status = self.exit_status();
        while (status.is_none() || !self.shared.stderr_done.load(Ordering::SeqCst))
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
            status = status.or_else(|| self.exit_status());
        }
        let how = match status {
            Some(s) => format!("exited ({s})"),
            None => "closed its output".into(),
        };
        format!(
            "MCP server `{}` {how} {when}{}",
            self.def.name,
            self.tail_suffix()
        )
    }

    /// `": line1 | line2"` from the end of stderr, or nothing.
    fn tail_suffix(&self) -> String {
        let tail = lock(&self.shared.stderr_tail);
        if tail.is_empty() {
            return String::new();
        }
        let lines: Vec<&str> = tail
            .iter()
            .rev()
            .take(5)
            .rev()
            .map(String::as_str)
            .collect();
        format!(": {}", lines.join(" | "))
    }
}

/// How the process `pid` ended, if it did, without reaping it.
fn exit_status(pid: u32) -> Option<String> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)?;
    use rustix::process::{WaitId, WaitIdOptions, waitid};
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOWAIT | WaitIdOptions::NOHANG;
    match waitid(WaitId::Pid(pid), options) {
        Ok(Some(status)) => Some(match (status.exit_status(), status.terminating_signal()) {
            (Some(code), _) if status.exited() => format!("exit status {code}"),
            (_, Some(signal)) => format!("signal {signal}"),
            _ => "an unknown status".into(),
        }),
        Ok(None) => None,
        // Already reaped, or not our child: gone either way.
        Err(_) => Some("an unknown status".into()),
    }
}

fn signal_group(pid: u32, signal: rustix::process::Signal) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}

/// Waits up to `grace` for the process to exit (without reaping it).
fn wait_exit(pid: u32, grace: Duration) -> bool {
    let deadline = Instant::now() + grace;
    loop {
        if exit_status(pid).is_some() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Stops a server process: its stdin is already closed; a server that lingers is
/// terminated, then whatever is left of its group killed, and the process reaped.
fn stop(pid: u32, mut child: Child) {
    if !wait_exit(pid, EXIT_GRACE) {
        signal_group(pid, rustix::process::Signal::TERM);
        wait_exit(pid, TERM_GRACE);
    }
    signal_group(pid, rustix::process::Signal::KILL);
    // Reaped here, or by the runtime's orphan reaping if this cannot wait.
    let _ = child.start_kill();
    let _ = child.try_wait();
}

impl Drop for McpServer {
    /// Closes stdin (the protocol's way to end a session) and stops the process on a
    /// thread of its own, so that dropping a server never blocks the caller.
    fn drop(&mut self) {
        if let Ok(mut writer) = self.shared.writer.try_lock() {
            writer.take();
        }
        self.shared.mark_dead();
        let child = lock(&self.child).take();
        if let (Some(pid), Some(child)) = (self.pid, child) {
            let stopper = std::thread::Builder::new()
                .name("agentos-mcp-stop".into())
                .spawn(move || stop(pid, child));
            if stopper.is_err() {
                signal_group(pid, rustix::process::Signal::KILL);
            }
        }
    }
}

/// A tool of a `tools/list` page; entries without a name are skipped.
fn tool_info(v: &Value) -> Option<McpToolInfo> {
    let name = v.get("name")?.as_str()?.to_string();
    let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default();
    let description = match text("description") {
        "" => text("title").to_string(),
        d => d.to_string(),
    };
    let input_schema = match v.get("inputSchema") {
        Some(Value::Object(schema)) => {
            let mut schema = schema.clone();
            schema
                .entry("type")
                .or_insert_with(|| Value::String("object".into()));
            Value::Object(schema)
        }
        _ => json!({"type": "object", "properties": {}}),
    };
    Some(McpToolInfo {
        name,
        description,
        input_schema,
    })
}

/// The text of a `tools/call` result.
fn tool_result_text(result: &Value) -> Result<String, CallError> {
    let content = result
        .get("content")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut parts = Vec::new();
    for item in content {
        let field = |k: &str| item.get(k).and_then(Value::as_str).unwrap_or_default();
        let mime = |item: &Value| {
            item.get("mimeType")
                .and_then(Value::as_str)
                .unwrap_or("unknown type")
                .to_string()
        };
        parts.push(match field("type") {
            "text" => field("text").to_string(),
            "image" => format!("[image: {}]", mime(item)),
            "audio" => format!("[audio: {}]", mime(item)),
            "resource_link" => format!("[resource link: {}]", field("uri")),
            "resource" => {
                let resource = item.get("resource").unwrap_or(&Value::Null);
                match resource.get("text").and_then(Value::as_str) {
                    Some(text) => text.to_string(),
                    None => format!(
                        "[resource: {} ({})]",
                        resource.get("uri").and_then(Value::as_str).unwrap_or("?"),
                        mime(resource)
                    ),
                }
            }
            other => format!("[{other} content]"),
        });
    }
    let mut text = parts.join("\n");
    if content.is_empty() {
        if let Some(structured) = result.get("structuredContent") {
            text = structured.to_string();
        }
    }
    if result.get("isError").and_then(Value::as_bool) == Some(true) {
        if text.is_empty() {
            text = "the tool reported an error".into();
        }
        return Err(CallError::Tool(text));
    }
    Ok(text)
}

/// Replaces what OpenAI-compatible APIs refuse in a function name and caps its length.
fn sanitize_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(MAX_TOOL_NAME_LEN)
        .collect();
    if out.is_empty() {
        out.push_str("tool");
    }
    out
}

/// The MCP servers of a configuration, each started on first use and kept.
pub struct McpPool {
    inner: Arc<PoolInner>,
}

/// The running instance of one server, if any.
type Slot = Arc<tokio::sync::Mutex<Option<Arc<McpServer>>>>;

struct PoolInner {
    defs: BTreeMap<String, McpServerDef>,
    /// One slot per server; a slot's lock is held while its server starts, so one
    /// server starting does not hold up calls to the others.
    slots: Mutex<HashMap<String, Slot>>,
}

impl PoolInner {
    async fn server(&self, name: &str) -> Result<Arc<McpServer>, String> {
        let def = self
            .defs
            .get(name)
            .ok_or_else(|| format!("MCP server `{name}` is not defined"))?;
        let slot = lock(&self.slots)
            .entry(name.to_string())
            .or_default()
            .clone();
        let mut slot = slot.lock().await;
        if let Some(server) = slot.as_ref().filter(|s| s.is_alive()) {
            return Ok(server.clone());
        }
        // A dead server is dropped (and its process group killed) once no call uses it.
        *slot = None;
        let server = McpServer::start(def).await?;
        *slot = Some(server.clone());
        Ok(server)
    }
}

impl McpPool {
    pub fn new(defs: BTreeMap<String, McpServerDef>) -> Self {
        McpPool {
            inner: Arc::new(PoolInner {
                defs,
                slots: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The running server `name`, started now if it is not running (again).
    pub async fn server(&self, name: &str) -> Result<Arc<McpServer>, String> {
        self.inner.server(name).await
    }

    /// The tools an agent's `mcp:SERVER` (every tool) and `mcp:SERVER/TOOL` entries
    /// name, starting their servers. A tool keeps the server's name for it unless
    /// another of these servers offers the same name; then both become `SERVER__TOOL`.
    /// Names are made valid OpenAI function names (`[a-zA-Z0-9_-]{1,64}`) and unique.
    pub async fn tools_for(
        &self,
        refs: &[(String, Option<String>)],
        taken: &[String],
    ) -> Result<Vec<Arc<dyn Tool>>, String> {
        let mut servers: Vec<(String, Vec<McpToolInfo>)> = Vec::new();
        let mut selected: Vec<(String, McpToolInfo)> = Vec::new();
        for (server_name, tool) in refs {
            if !servers.iter().any(|(n, _)| n == server_name) {
                let server = self.server(server_name).await?;
                servers.push((server_name.clone(), server.tools().await));
            }
            let offered = servers
                .iter()
                .find(|(n, _)| n == server_name)
                .map(|(_, tools)| tools.as_slice())
                .unwrap_or_default();
            let picked: Vec<&McpToolInfo> = match tool {
                None => offered.iter().collect(),
                Some(tool) => match offered.iter().find(|t| &t.name == tool) {
                    Some(t) => vec![t],
                    None => {
                        let names: Vec<&str> = offered.iter().map(|t| t.name.as_str()).collect();
                        return Err(format!(
                            "MCP server `{server_name}` has no tool `{tool}`; it offers: {}",
                            if names.is_empty() {
                                "nothing".to_string()
                            } else {
                                names.join(", ")
                            }
                        ));
                    }
                },
            };
            for t in picked {
                if !selected
                    .iter()
                    .any(|(s, have)| s == server_name && have.name == t.name)
                {
                    selected.push((server_name.clone(), t.clone()));
                }
            }
        }

        let mut offered_by: HashMap<&str, BTreeSet<&str>> = HashMap::new();
        for (server, t) in &selected {
            offered_by.entry(&t.name).or_default().insert(server);
        }
        // Names already in the toolbox (command tools) are never reused.
        let mut used: BTreeSet<String> = taken.iter().cloned().collect();
        let mut tools: Vec<Arc<dyn Tool>> = Vec::new();
        for (server, t) in &selected {
            let base = if offered_by[t.name.as_str()].len() > 1 || used.contains(&t.name) {
                sanitize_name(&format!("{server}__{}", t.name))
            } else {
                sanitize_name(&t.name)
            };
            let mut name = base.clone();
            let mut n = 2;
            while !used.insert(name.clone()) {
                let suffix = format!("_{n}");
                name = format!(
                    "{}{suffix}",
                    truncate(&base, MAX_TOOL_NAME_LEN - suffix.len())
                );
                n += 1;
            }
            let def = &self.inner.defs[server];
            tools.push(Arc::new(McpTool {
                spec: ToolSpec {
                    name,
                    description: t.description.clone(),
                    parameters: t.input_schema.clone(),
                    requires_confirmation: def.confirm.requires(&t.name),
                },
                server: server.clone(),
                tool: t.name.clone(),
                timeout: def.timeout,
                pool: self.inner.clone(),
            }));
        }
        Ok(tools)
    }
}

/// A tool of an MCP server, called through the pool so a dead server is started again.
pub struct McpTool {
    spec: ToolSpec,
    server: String,
    /// The server's name for the tool.
    tool: String,
    timeout: Duration,
    pool: Arc<PoolInner>,
}

impl McpTool {
    /// The `[mcp.NAME]` server this tool belongs to.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The server's own name for the tool (the spec name may be namespaced).
    pub fn mcp_name(&self) -> &str {
        &self.tool
    }
}

impl Tool for McpTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call<'a>(
        &'a self,
        args: &'a Value,
        cancel: &'a CancelToken,
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let server = self.pool.server(&self.server).await?;
            match server
                .call_tool(&self.tool, args, cancel, self.timeout)
                .await
            {
                // The request never reached the server: a new instance may safely run it.
                // A call the server died during is not repeated, as the tool may have acted.
                Err(CallError::NotSent(_)) if !cancel.is_cancelled() => {
                    drop(server);
                    let server = self.pool.server(&self.server).await?;
                    server
                        .call_tool(&self.tool, args, cancel, self.timeout)
                        .await
                        .map_err(|e| e.to_string())
                }
                other => other.map_err(|e| e.to_string()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::McpConfirm;
    use std::path::{Path, PathBuf};

    /// A scriptable MCP server. `argv[1]` is the mode, `argv[2]` a marker file.
    const FAKE_SERVER: &str = r#"
import json, os, sys, threading, time, signal

mode = sys.argv[1]
marker = sys.argv[2]
out_lock = threading.Lock()
state = {"cancelled": [], "extra": False, "pong": None}
pong = threading.Event()

def send(msg):
    with out_lock:
        if mode == "garbage":
            sys.stdout.write("this is not json\n[1, 2\n42\n\n")
        sys.stdout.write(json.dumps(msg) + "\n")
        sys.stdout.flush()

def text(id, t, error=False):
    send({"jsonrpc": "2.0", "id": id, "result": {"content": [{"type": "text", "text": t}], "isError": error}})

if mode == "exit":
    sys.stderr.write("fatal: no configuration found\n")
    sys.exit(3)
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

TOOLS = [
    {"name": "echo", "description": "Echoes text", "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}},
    {"name": "sleep", "description": "Sleeps", "inputSchema": {"type": "object"}},
    {"name": "hang", "description": "Never answers"},
    {"name": "fail", "description": "Fails", "inputSchema": {"type": "object"}},
    {"name": "mixed", "title": "Mixed content", "inputSchema": {"type": "object"}},
    {"name": "crash", "description": "Exits", "inputSchema": {"type": "object"}},
    {"name": "ping_me", "description": "Pings the client", "inputSchema": {"type": "object"}},
    {"name": "change", "description": "Changes the tool list", "inputSchema": {"type": "object"}},
    {"name": "cancelled", "description": "Cancelled request ids", "inputSchema": {"type": "object"}},
    {"name": "odd.name/x", "description": "A name OpenAI refuses", "inputSchema": {"type": "object"}},
]

def call(id, name, args):
    if name == "echo":
        text(id, args.get("text", ""))
    elif name == "sleep":
        time.sleep(args["ms"] / 1000)
        text(id, args["tag"])
    elif name == "hang":
        pass
    elif name == "fail":
        text(id, "it broke", error=True)
    elif name == "mixed":
        send({"jsonrpc": "2.0", "id": id, "result": {"content": [
            {"type": "text", "text": "one"},
            {"type": "image", "data": "AAAA", "mimeType": "image/png"},
            {"type": "resource", "resource": {"uri": "file:///a.txt", "text": "two"}},
            {"type": "resource_link", "uri": "file:///b.bin", "name": "b"}]}})
    elif name == "crash":
        sys.stderr.write("crashing on purpose\n")
        sys.stderr.flush()
        os._exit(1)
    elif name == "ping_me":
        send({"jsonrpc": "2.0", "id": "srv-1", "method": "ping"})
        send({"jsonrpc": "2.0", "id": "srv-2", "method": "sampling/createMessage", "params": {}})
        pong.wait(5)
        text(id, json.dumps(state["pong"]))
    elif name == "change":
        state["extra"] = True
        send({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
        text(id, "changed")
    elif name == "cancelled":
        text(id, json.dumps(state["cancelled"]))
    else:
        send({"jsonrpc": "2.0", "id": id, "error": {"code": -32602, "message": "unknown tool " + name}})

for line in sys.stdin:
    msg = json.loads(line)
    method, id = msg.get("method"), msg.get("id")
    if method is None:
        if id in ("srv-1", "srv-2"):
            state["pong"] = [state["pong"], msg] if state["pong"] else msg
            if id == "srv-2":
                pong.set()
        continue
    if method == "initialize":
        if mode == "silent":
            continue
        send({"jsonrpc": "2.0", "id": id, "result": {
            "protocolVersion": msg["params"]["protocolVersion"],
            "capabilities": {"tools": {"listChanged": True}},
            "serverInfo": {"name": "fake", "version": "1.0"}}})
    elif method == "tools/list":
        tools = TOOLS + ([{"name": "extra", "inputSchema": {"type": "object"}}] if state["extra"] else [])
        cursor = int((msg.get("params") or {}).get("cursor") or 0)
        page = tools[cursor:cursor + 3]
        result = {"tools": page}
        if cursor + 3 < len(tools):
            result["nextCursor"] = str(cursor + 3)
        send({"jsonrpc": "2.0", "id": id, "result": result})
        if mode == "crash-once" and "nextCursor" not in result and not os.path.exists(marker):
            open(marker, "w").close()
            sys.stderr.write("dying after tools/list\n")
            sys.stderr.flush()
            os._exit(2)
    elif method == "notifications/cancelled":
        state["cancelled"].append(msg["params"])
    elif method == "tools/call":
        p = msg["params"]
        threading.Thread(target=call, args=(id, p["name"], p.get("arguments") or {}), daemon=True).start()
    elif id is not None:
        send({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "no " + method}})
if mode == "stubborn":
    while True:
        time.sleep(1)
"#;

    struct Fake {
        dir: tempfile::TempDir,
    }

    impl Fake {
        fn new() -> Fake {
            let dir = tempfile::tempdir().expect("tempdir");
            std::fs::write(dir.path().join("server.py"), FAKE_SERVER).expect("write script");
            Fake { dir }
        }

        fn def(&self, name: &str, mode: &str) -> McpServerDef {
            let dir = self.dir.path();
            McpServerDef {
                name: name.into(),
                command: "python3".into(),
                args: vec![
                    dir.join("server.py").display().to_string(),
                    mode.into(),
                    dir.join(format!("{name}.marker")).display().to_string(),
                ],
                env: BTreeMap::new(),
                cwd: Some(dir.to_path_buf()),
                timeout: Duration::from_secs(10),
                confirm: McpConfirm::None,
            }
        }
    }

    fn pid_exists(pid: u32) -> bool {
        i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .is_some_and(|p| rustix::process::test_kill_process(p).is_ok())
    }

    fn pid_of(server: &McpServer) -> u32 {
        server.pid.expect("a running server has a pid")
    }

    /// Waits (bounded) for a process to be gone.
    fn wait_gone(pid: u32, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while pid_exists(pid) {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lists_paginated_tools_and_calls_them() {
        let fake = Fake::new();
        let server = McpServer::start(&fake.def("fake", "normal"))
            .await
            .expect("start");
        assert_eq!(server.server_info(), "fake 1.0");
        let names: Vec<String> = server.tools().await.into_iter().map(|t| t.name).collect();
        assert_eq!(names.len(), 10, "all pages: {names:?}");
        assert_eq!(names[0], "echo");
        let hang = server
            .tools()
            .await
            .into_iter()
            .find(|t| t.name == "hang")
            .expect("hang");
        assert_eq!(
            hang.input_schema,
            json!({"type": "object", "properties": {}})
        );
        let mixed = server
            .tools()
            .await
            .into_iter()
            .find(|t| t.name == "mixed")
            .expect("mixed");
        assert_eq!(mixed.description, "Mixed content");

        let never = CancelToken::new();
        let t = Duration::from_secs(10);
        assert_eq!(
            server
                .call("echo", &json!({"text": "héllo\nworld"}), &never, t)
                .await,
            Ok("héllo\nworld".into())
        );
        assert_eq!(
            server.call("fail", &json!({}), &never, t).await,
            Err("it broke".into())
        );
        assert_eq!(
            server.call("mixed", &Value::Null, &never, t).await,
            Ok("one\n[image: image/png]\ntwo\n[resource link: file:///b.bin]".into())
        );
        assert_eq!(
            server.call("nope", &json!({}), &never, t).await,
            Err("MCP error -32602: unknown tool nope".into())
        );
        assert!(server.is_alive());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_run_concurrently() {
        let fake = Fake::new();
        let server = McpServer::start(&fake.def("fake", "normal"))
            .await
            .expect("start");
        let started = Instant::now();
        let server = &server;
        let results: Vec<_> = futures_util::future::join_all(
            [(600, "slow"), (100, "fast"), (300, "mid")]
                .into_iter()
                .map(|(ms, tag)| async move {
                    let args = json!({"ms": ms, "tag": tag});
                    let r = server
                        .call("sleep", &args, &CancelToken::new(), Duration::from_secs(10))
                        .await;
                    (r, started.elapsed())
                }),
        )
        .await;
        assert_eq!(results[0].0, Ok("slow".into()));
        assert_eq!(results[1].0, Ok("fast".into()));
        assert_eq!(results[2].0, Ok("mid".into()));
        assert!(results[1].1 < results[0].1);
        assert!(
            started.elapsed() < Duration::from_millis(1000),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn answers_ping_and_refuses_other_server_requests() {
        let fake = Fake::new();
        let server = McpServer::start(&fake.def("fake", "normal"))
            .await
            .expect("start");
        let out = server
            .call(
                "ping_me",
                &json!({}),
                &CancelToken::new(),
                Duration::from_secs(10),
            )
            .await
            .expect("call");
        let replies: Value = serde_json::from_str(&out).expect("json");
        assert_eq!(
            replies[0],
            json!({"jsonrpc": "2.0", "id": "srv-1", "result": {}})
        );
        assert_eq!(replies[1]["id"], "srv-2");
        assert_eq!(replies[1]["error"]["code"], -32601);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refreshes_the_list_after_list_changed() {
        let fake = Fake::new();
        let server = McpServer::start(&fake.def("fake", "normal"))
            .await
            .expect("start");
        assert!(!server.tools().await.iter().any(|t| t.name == "extra"));
        let never = CancelToken::new();
        server
            .call("change", &json!({}), &never, Duration::from_secs(10))
            .await
            .expect("change");
        assert!(server.tools().await.iter().any(|t| t.name == "extra"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn timeout_and_cancel_return_promptly_and_notify_the_server() {
        let fake = Fake::new();
        let server = McpServer::start(&fake.def("fake", "normal"))
            .await
            .expect("start");
        let started = Instant::now();
        let r = server
            .call(
                "hang",
                &json!({}),
                &CancelToken::new(),
                Duration::from_millis(300),
            )
            .await;
        assert_eq!(r, Err("timed out after 0.3s".into()));
        assert!(started.elapsed() < Duration::from_secs(2));

        let cancel = CancelToken::new();
        let c = cancel.clone();
        let canceller = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            c.cancel();
        });
        let started = Instant::now();
        let r = server
            .call("hang", &json!({}), &cancel, Duration::from_secs(30))
            .await;
        assert_eq!(r, Err("cancelled".into()));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        canceller.join().expect("join");
        // Already cancelled: nothing is sent.
        assert_eq!(
            server
                .call("echo", &json!({}), &cancel, Duration::from_secs(5))
                .await,
            Err("cancelled".into())
        );

        // The server heard about both and still works.
        let out = server
            .call(
                "cancelled",
                &json!({}),
                &CancelToken::new(),
                Duration::from_secs(10),
            )
            .await
            .expect("call");
        let notes: Value = serde_json::from_str(&out).expect("json");
        let reasons: Vec<&str> = notes
            .as_array()
            .expect("array")
            .iter()
            .map(|n| n["reason"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(reasons, ["timed out", "cancelled by the user"]);
        assert!(notes[0]["requestId"].is_u64());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn garbage_on_stdout_is_skipped() {
        let fake = Fake::new();
        let server = McpServer::start(&fake.def("fake", "garbage"))
            .await
            .expect("start");
        let r = server
            .call(
                "echo",
                &json!({"text": "fine"}),
                &CancelToken::new(),
                Duration::from_secs(10),
            )
            .await;
        assert_eq!(r, Ok("fine".into()));
        assert!(server.is_alive());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_server_that_exits_at_once_is_a_clean_start_error() {
        let fake = Fake::new();
        let started = Instant::now();
        let err = McpServer::start(&fake.def("broken", "exit"))
            .await
            .expect_err("must fail");
        assert!(
            err.starts_with("MCP server `broken` exited (exit status 3)"),
            "{err}"
        );
        assert!(err.contains("fatal: no configuration found"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));

        let mut def = fake.def("missing", "normal");
        def.command = "/nonexistent/mcp-server".into();
        let err = McpServer::start(&def).await.expect_err("must fail");
        assert!(
            err.starts_with("MCP server `missing`: cannot start `/nonexistent/mcp-server`"),
            "{err}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_silent_server_times_out_at_startup() {
        let fake = Fake::new();
        let err = McpServer::start_with(&fake.def("quiet", "silent"), Duration::from_millis(500))
            .await
            .expect_err("must fail");
        assert_eq!(
            err,
            "MCP server `quiet` did not answer initialize within 0.5s"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dying_server_fails_its_call_and_is_restarted() {
        let fake = Fake::new();
        let mut defs = BTreeMap::new();
        defs.insert("fake".to_string(), fake.def("fake", "crash-once"));
        let pool = McpPool::new(defs);
        // The first instance exits right after listing its tools.
        let tools = pool
            .tools_for(&[("fake".into(), None)], &[])
            .await
            .expect("tools");
        let echo = tools
            .iter()
            .find(|t| t.spec().name == "echo")
            .expect("echo");
        let current = |pool: &McpPool| {
            let slot = lock(&pool.inner.slots)["fake"].clone();
            let server = slot.try_lock().expect("not starting").clone();
            server.expect("started")
        };
        let first = current(&pool);
        let first_pid = pid_of(&first);
        let deadline = Instant::now() + Duration::from_secs(5);
        while first.is_alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!first.is_alive());
        drop(first);
        let r = echo
            .call(&json!({"text": "again"}), &CancelToken::new())
            .await;
        assert_eq!(r, Ok("again".into()));
        let second = current(&pool);
        assert_ne!(pid_of(&second), first_pid);
        assert!(
            wait_gone(first_pid, Duration::from_secs(3)),
            "the dead server was reaped"
        );

        // A server that dies during a call: that call fails, the next one restarts it.
        let crash = tools
            .iter()
            .find(|t| t.spec().name == "crash")
            .expect("crash");
        let err = crash
            .call(&json!({}), &CancelToken::new())
            .await
            .expect_err("crash");
        assert!(
            err.starts_with("MCP server `fake` exited (exit status 1) during the call"),
            "{err}"
        );
        assert!(err.contains("crashing on purpose"), "{err}");
        assert!(!second.is_alive());
        drop(second);
        let r = echo
            .call(&json!({"text": "back"}), &CancelToken::new())
            .await;
        assert_eq!(r, Ok("back".into()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pool_namespaces_clashing_names_and_sets_confirmation() {
        let fake = Fake::new();
        let mut defs = BTreeMap::new();
        let mut a = fake.def("a", "normal");
        a.confirm = McpConfirm::Tools(vec!["echo".into()]);
        defs.insert("a".to_string(), a);
        let mut b = fake.def("b-2", "normal");
        b.confirm = McpConfirm::All;
        defs.insert("b-2".to_string(), b);
        let pool = McpPool::new(defs);

        let tools = pool
            .tools_for(
                &[
                    ("a".into(), Some("echo".into())),
                    ("a".into(), Some("odd.name/x".into())),
                ],
                &[],
            )
            .await
            .expect("tools");
        let names: Vec<&str> = tools.iter().map(|t| t.spec().name.as_str()).collect();
        assert_eq!(names, ["echo", "odd_name_x"]);
        assert!(tools[0].spec().requires_confirmation);
        assert!(!tools[1].spec().requires_confirmation);
        assert_eq!(tools[0].spec().description, "Echoes text");

        let tools = pool
            .tools_for(
                &[("a".into(), Some("echo".into())), ("b-2".into(), None)],
                &[],
            )
            .await
            .expect("tools");
        let names: Vec<&str> = tools.iter().map(|t| t.spec().name.as_str()).collect();
        assert_eq!(names[0], "a__echo");
        assert_eq!(names[1], "b-2__echo");
        assert_eq!(names[2], "sleep");
        assert!(tools.iter().skip(1).all(|t| t.spec().requires_confirmation));
        let never = CancelToken::new();
        assert_eq!(
            tools[1].call(&json!({"text": "from b"}), &never).await,
            Ok("from b".into())
        );

        let err = pool
            .tools_for(&[("a".into(), Some("missing".into()))], &[])
            .await
            .err()
            .expect("error");
        assert!(
            err.starts_with("MCP server `a` has no tool `missing`; it offers: echo, sleep"),
            "{err}"
        );
        let err = pool
            .tools_for(&[("zzz".into(), None)], &[])
            .await
            .err()
            .expect("error");
        assert_eq!(err, "MCP server `zzz` is not defined");

        // A command tool already named `echo` pushes the MCP tool into its namespace.
        let tools = pool
            .tools_for(&[("a".into(), None)], &["echo".to_string()])
            .await
            .expect("tools");
        let names: Vec<&str> = tools.iter().map(|t| t.spec().name.as_str()).collect();
        assert_eq!(&names[..2], ["a__echo", "sleep"]);
        assert!(!names.contains(&"echo"), "{names:?}");
    }

    #[test]
    fn sanitized_names_stay_valid_and_unique() {
        assert_eq!(sanitize_name("a.b c/d"), "a_b_c_d");
        assert_eq!(sanitize_name(""), "tool");
        assert_eq!(sanitize_name("é"), "_");
        assert_eq!(sanitize_name(&"x".repeat(100)).len(), 64);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn drop_stops_even_a_server_that_ignores_eof_and_sigterm() {
        let fake = Fake::new();
        let server = McpServer::start(&fake.def("stubborn", "stubborn"))
            .await
            .expect("start");
        let pid = pid_of(&server);
        let started = Instant::now();
        drop(server);
        assert!(
            started.elapsed() < Duration::from_millis(50),
            "dropping does not wait: {:?}",
            started.elapsed()
        );
        assert!(
            wait_gone(pid, Duration::from_secs(3)),
            "the stubborn server was killed"
        );

        let server = McpServer::start(&fake.def("polite", "normal"))
            .await
            .expect("start");
        let pid = pid_of(&server);
        drop(server);
        assert!(
            wait_gone(pid, EXIT_GRACE + Duration::from_millis(500)),
            "a polite server exits on EOF"
        );
    }

    // Real servers from the registries. Their tests are skipped when the server is not
    // installed, unless AGENTOS_REQUIRE_MCP is set (as CI does).

    fn available_or_skip(what: &str, installed: bool, install: &str) -> bool {
        if installed {
            return true;
        }
        let required =
            std::env::var("AGENTOS_REQUIRE_MCP").is_ok_and(|v| !v.is_empty() && v != "0");
        assert!(
            !required,
            "{what} is not installed but AGENTOS_REQUIRE_MCP is set; install it with: {install}"
        );
        eprintln!("SKIPPED: {what} is not installed (install it with: {install})");
        false
    }

    fn real_def(name: &str, command: &str, args: Vec<String>) -> McpServerDef {
        McpServerDef {
            name: name.into(),
            command: command.into(),
            args,
            env: BTreeMap::new(),
            cwd: None,
            timeout: Duration::from_secs(30),
            confirm: McpConfirm::None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn real_time_server() {
        let installed = std::process::Command::new("python3")
            .args(["-c", "import mcp_server_time"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !available_or_skip(
            "mcp-server-time (PyPI)",
            installed,
            "pip install mcp-server-time",
        ) {
            return;
        }
        let args = vec![
            "-m".into(),
            "mcp_server_time".into(),
            "--local-timezone=UTC".into(),
        ];
        let server = McpServer::start(&real_def("time", "python3", args))
            .await
            .expect("start");
        let names: Vec<String> = server.tools().await.into_iter().map(|t| t.name).collect();
        assert!(names.contains(&"get_current_time".to_string()), "{names:?}");
        let out = server
            .call(
                "get_current_time",
                &json!({"timezone": "Europe/Paris"}),
                &CancelToken::new(),
                Duration::from_secs(30),
            )
            .await
            .expect("call");
        let v: Value = serde_json::from_str(&out).expect("a JSON text");
        assert_eq!(v["timezone"], "Europe/Paris");
        assert!(v["datetime"].is_string(), "{out}");
        let err = server
            .call(
                "get_current_time",
                &json!({"timezone": "Mars/Olympus"}),
                &CancelToken::new(),
                Duration::from_secs(30),
            )
            .await
            .expect_err("bad zone");
        assert!(err.contains("Mars/Olympus"), "{err}");
    }

    fn filesystem_server() -> PathBuf {
        let dir = std::env::var_os("AGENTOS_MCP_NPM_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/mcp-npm"));
        dir.join("node_modules/@modelcontextprotocol/server-filesystem/dist/index.js")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn real_filesystem_server() {
        let script = filesystem_server();
        let installed = script.is_file()
            && std::process::Command::new("node")
                .arg("--version")
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        let install = "npm install --prefix target/mcp-npm @modelcontextprotocol/server-filesystem";
        if !available_or_skip(
            "@modelcontextprotocol/server-filesystem (npm)",
            installed,
            install,
        ) {
            return;
        }
        let root = tempfile::tempdir().expect("tempdir");
        let root_path = root.path().canonicalize().expect("canonical");
        std::fs::write(root_path.join("notes.txt"), "first line\nsecond line\n").expect("write");
        let args = vec![
            script.display().to_string(),
            root_path.display().to_string(),
        ];
        let mut defs = BTreeMap::new();
        let mut def = real_def("files", "node", args);
        def.confirm = McpConfirm::Tools(vec!["write_file".into()]);
        defs.insert("files".to_string(), def);
        let pool = McpPool::new(defs);
        let tools = pool
            .tools_for(&[("files".into(), None)], &[])
            .await
            .expect("tools");
        let tool = |name: &str| {
            tools
                .iter()
                .find(|t| t.spec().name == name)
                .unwrap_or_else(|| panic!("no {name}"))
        };
        assert!(tool("write_file").spec().requires_confirmation);
        assert!(!tool("read_text_file").spec().requires_confirmation);
        let never = CancelToken::new();
        let path = root_path.join("notes.txt").display().to_string();
        assert_eq!(
            tool("read_text_file")
                .call(&json!({"path": path}), &never)
                .await,
            Ok("first line\nsecond line\n".into())
        );
        let new = root_path.join("new.txt").display().to_string();
        tool("write_file")
            .call(&json!({"path": new, "content": "written"}), &never)
            .await
            .expect("write");
        assert_eq!(std::fs::read_to_string(&new).expect("read"), "written");
        let err = tool("read_text_file")
            .call(&json!({"path": "/etc/passwd"}), &never)
            .await
            .expect_err("outside the allowed directory");
        assert!(err.contains("denied") || err.contains("outside"), "{err}");
    }
}
