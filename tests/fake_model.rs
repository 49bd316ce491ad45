//! A fake OpenAI-compatible chat-completions server for the integration tests, std only.
//!
//! It mirrors the fake OpenAI server the reference captures were made with (see
//! `tests/fixtures/agentos/README.md`) where that makes sense, and adds the misbehaviours
//! the CLI tests need. The behaviour is chosen by words in the last user message:
//!
//! - `fail`: HTTP 500 with an OpenAI error body (`fake upstream failure`);
//! - `failafter`: the same HTTP 500, but only for the requests after tool results (the
//!   tool round's call succeeds);
//! - `unauthorized`: HTTP 401 (`Incorrect API key provided`);
//! - `ratelimit`: the first request with that message gets 429 (`Retry-After: 0`), the next
//!   one succeeds;
//! - `slow`: 30 content chunks `slow-0 `, `slow-1 `, … 0.3 s apart;
//! - `stall`: a role chunk and one content chunk `partial `, then silence for 60 s with the
//!   socket held open;
//! - `cutoff`: streamed, a role chunk and one content chunk `partial `, then the body ends
//!   with no `finish_reason` and no `[DONE]` (a provider's connection lost mid-answer);
//!   `cutearly`: the same with the role chunk only;
//! - `toolsforever`: every answer is a call of `get_weather`, tools offered or not, tool
//!   results or not (a model that never stops calling tools);
//! - `huge`: an answer of [`HUGE_ANSWER_BYTES`] (`BEGIN word word … END`), streamed in 32
//!   pieces (0.3 s apart with `slow` too);
//! - `preface`: a tool-call answer (see below) starts with the text [`PREFACE`], as
//!   models often say what they are about to do;
//! - `reason`: the answer is preceded by `Reasoning about '<message>'.`, streamed in two
//!   halves as a `reasoning_content` and then a `reasoning` delta (non-streaming:
//!   `message.reasoning_content`);
//! - `paced`: 10 content chunks `paced-0 `, `paced-1 `, … 100 ms apart (non-streaming: a
//!   1 s delay);
//! - `gated`: the answer waits while the test holds the gate closed
//!   ([`FakeModel::close_gate`]); [`FakeModel::waiting_at_gate`] counts the requests
//!   waiting;
//! - tool calls, when the request offers `tools` and the last message is from the user and
//!   names an offered tool as a word (`get_weather` is also called for the word `weather`,
//!   `delete_file` for `delete`, as the Python fake does): a call to the first tool named,
//!   or, when the message also says `parallel`, to every tool named, in order of first
//!   mention, in one turn. The arguments are the schema's sample object with `city` set to
//!   the capitalised word after `in` (default `Paris`), `path` to the first `/path` in the
//!   message (default `/tmp/example.txt`), and any `key=value` pair whose key is a
//!   property (numbers and booleans parsed when the schema says so). Ids are
//!   `call_<last 6 of the completion id>_<i>`. A team leader offered
//!   `delegate_task_to_member` whose message names no tool delegates the whole message to
//!   the first `<member id="…">` of its system prompt (`delegate_task_to_members`: to
//!   everyone), as the Python fake does. Streamed, each call starts with a delta
//!   carrying its `index`, `id`, `type`, `function.name` and empty `arguments`; argument
//!   pieces follow, those of parallel calls interleaved; `finish_reason` is `tool_calls`.
//!   With the word `preface`, the calls come after the text [`PREFACE`] (streamed
//!   first; non-streaming: the message's `content`);
//! - after tool results (the last message has role `tool`): `Tool result received:
//!   <content>`, the contents of the trailing tool messages joined with `; `;
//! - otherwise `Story for '<message>'. Starring <robot>. The end.`, where `<robot>` comes
//!   from `robot's name is X` in the system message (the sentence is left out when there is
//!   none), or a JSON object when the request asks for a `response_format`.
//!
//! `POST /v1/messages` is Anthropic's Messages API instead, answered by
//! `fake_anthropic.rs`, so one fake can stand for both providers (and fallbacks between
//! them).
//!
//! Every request body is logged and available through [`FakeModel::requests`]. Each
//! connection is served by its own thread and kept alive for further requests (HTTP/1.1),
//! as real providers do; [`FakeModel::connections`] counts the connections accepted and
//! [`FakeModel::connection_of`] tells which one carried a request. Streamed answers use
//! real SSE framing inside a chunked body.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

const CREATED: i64 = 1_700_000_000;

/// The size of the `huge` answer.
pub const HUGE_ANSWER_BYTES: usize = 2 * 1024 * 1024;

/// The text a `preface` tool-call answer starts with.
pub const PREFACE: &str = "Let me look that up. ";

/// The `huge` answer: `BEGIN `, `word ` repeated, `END`, [`HUGE_ANSWER_BYTES`] long.
pub fn huge_answer() -> String {
    let words = (HUGE_ANSWER_BYTES - "BEGIN ".len() - "END".len()) / "word ".len();
    let mut text = format!("BEGIN {}END", "word ".repeat(words));
    while text.len() < HUGE_ANSWER_BYTES {
        text.insert(6, ' ');
    }
    text
}

/// A running fake server; dropping it stops it.
pub struct FakeModel {
    addr: SocketAddr,
    state: Arc<State>,
    accept_thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct State {
    shutdown: AtomicBool,
    requests: Mutex<Vec<Value>>,
    /// The headers of each logged request (names lowercased), parallel to `requests`.
    headers: Mutex<Vec<Vec<(String, String)>>>,
    next_id: AtomicU64,
    /// How many times each message text asked for `ratelimit` (or an Anthropic
    /// misbehaviour that happens once) so far.
    ratelimit_seen: Mutex<HashMap<String, u32>>,
    /// TCP connections accepted so far.
    connections: AtomicU64,
    /// The connection (numbered from 1) of each logged request, parallel to `requests`.
    request_connections: Mutex<Vec<u64>>,
    /// Whether `gated` answers wait, and the wait for it to open.
    gate_closed: Mutex<bool>,
    gate: std::sync::Condvar,
    /// Requests waiting at the gate now.
    at_gate: std::sync::atomic::AtomicUsize,
}

impl State {
    /// Waits while the gate is closed (or until the fake stops).
    fn pass_gate(&self) {
        self.at_gate.fetch_add(1, Ordering::SeqCst);
        let mut closed = self.gate_closed.lock().unwrap_or_else(|e| e.into_inner());
        while *closed && !self.shutdown.load(Ordering::SeqCst) {
            closed = self
                .gate
                .wait_timeout(closed, Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        self.at_gate.fetch_sub(1, Ordering::SeqCst);
    }
}

impl State {
    /// How many times `key` was counted, this time included.
    fn count(&self, key: &str) -> u32 {
        let mut counts = self
            .ratelimit_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(key.to_string()).or_insert(0);
        *count += 1;
        *count
    }
}

impl FakeModel {
    /// Binds 127.0.0.1 on a free port and serves in background threads.
    pub fn start() -> FakeModel {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake model's port");
        let addr = listener.local_addr().expect("the fake model's address");
        let state = Arc::new(State::default());
        let accept_state = state.clone();
        let accept_thread = std::thread::Builder::new()
            .name("fake-model-accept".into())
            .spawn(move || accept_loop(listener, accept_state))
            .expect("spawn the fake model's accept thread");
        FakeModel {
            addr,
            state,
            accept_thread: Some(accept_thread),
        }
    }

    /// `http://127.0.0.1:PORT/v1`, what a provider's `base_url` should be.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Every chat-completions request body received so far, in arrival order.
    pub fn requests(&self) -> Vec<Value> {
        self.state
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The value of header `name` (case-insensitive) on the `index`th logged request.
    pub fn header(&self, index: usize, name: &str) -> Option<String> {
        let headers = self.state.headers.lock().unwrap_or_else(|e| e.into_inner());
        headers.get(index).and_then(|h| {
            h.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        })
    }

    /// How many TCP connections clients opened so far.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// The connection (numbered from 1) that carried the `index`th logged request.
    pub fn connection_of(&self, index: usize) -> Option<u64> {
        self.state
            .request_connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(index)
            .copied()
    }

    /// From now on `gated` answers wait until [`FakeModel::open_gate`].
    pub fn close_gate(&self) {
        *self
            .state
            .gate_closed
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = true;
    }

    /// Lets the `gated` answers waiting go, and later ones through at once.
    pub fn open_gate(&self) {
        *self
            .state
            .gate_closed
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = false;
        self.state.gate.notify_all();
    }

    /// How many requests wait at the gate now.
    pub fn waiting_at_gate(&self) -> usize {
        self.state.at_gate.load(Ordering::SeqCst)
    }

    /// How many chat-completions requests arrived so far.
    pub fn request_count(&self) -> usize {
        self.state
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// The only request received; fails the test when there is not exactly one.
    #[track_caller]
    pub fn single_request(&self) -> Value {
        let requests = self.requests();
        assert_eq!(
            requests.len(),
            1,
            "expected exactly one request to the fake model, got {}: {requests:#?}",
            requests.len()
        );
        requests.into_iter().next().expect("one request")
    }
}

impl Drop for FakeModel {
    fn drop(&mut self) {
        self.state.shutdown.store(true, Ordering::SeqCst);
        // Wake the blocking accept() so the loop sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(handle) = self.accept_thread.take() {
            let _ = handle.join();
        }
    }
}

/// The text of a message's `content`: a string, or the text parts of a content array.
pub fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// The messages of a logged request body.
pub fn messages(body: &Value) -> Vec<Value> {
    body.get("messages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The roles of a logged request's messages, in order.
pub fn roles(body: &Value) -> Vec<String> {
    messages(body)
        .iter()
        .map(|m| {
            m.get("role")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

/// The text of the last user message of a logged request body.
pub fn last_user_text(body: &Value) -> String {
    messages(body)
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .map(|m| text_of(m.get("content").unwrap_or(&Value::Null)))
        .unwrap_or_default()
}

/// The system (or developer) messages of a logged request, joined with newlines.
pub fn system_text(body: &Value) -> String {
    messages(body)
        .iter()
        .filter(|m| {
            matches!(
                m.get("role").and_then(Value::as_str),
                Some("system" | "developer")
            )
        })
        .map(|m| text_of(m.get("content").unwrap_or(&Value::Null)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The answer text the fake gives for a plain (no response format) request.
pub fn story_for(user_text: &str, system: &str) -> String {
    let mut reply = format!("Story for '{user_text}'.");
    if let Some(robot) = robot_name(system) {
        reply.push_str(&format!(" Starring {robot}."));
    }
    reply.push_str(" The end.");
    reply
}

fn robot_name(system: &str) -> Option<String> {
    const MARK: &str = "robot's name is ";
    let start = system.find(MARK)? + MARK.len();
    let word = system[start..].split_whitespace().next()?;
    let word = word.trim_end_matches('.');
    (!word.is_empty()).then(|| word.to_string())
}

/// Whether `text` contains `word` as a whole word (case-insensitive, punctuation ignored).
pub(crate) fn has_word(text: &str, word: &str) -> bool {
    text.split(|c: char| !c.is_alphanumeric())
        .any(|w| w.eq_ignore_ascii_case(word))
}

/// A sample value for a JSON Schema, as the Python fake builds it (but arrays hold one
/// sample item).
pub fn sample_from_schema(schema: &Value, name: &str, defs: &Map<String, Value>) -> Value {
    let Some(obj) = schema.as_object() else {
        return Value::Null;
    };
    if let Some(reference) = obj.get("$ref").and_then(Value::as_str) {
        let key = reference.rsplit('/').next().unwrap_or("");
        let target = defs.get(key).cloned().unwrap_or(json!({}));
        return sample_from_schema(&target, name, defs);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(alts) = obj.get(key).and_then(Value::as_array) {
            return alts
                .iter()
                .find(|a| a.get("type").and_then(Value::as_str) != Some("null"))
                .map_or(Value::Null, |a| sample_from_schema(a, name, defs));
        }
    }
    if let Some(first) = obj
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    let ty = match obj.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("string")
            .to_string(),
        _ => String::new(),
    };
    if ty == "object" || obj.contains_key("properties") {
        let mut out = Map::new();
        if let Some(props) = obj.get("properties").and_then(Value::as_object) {
            for (key, sub) in props {
                out.insert(key.clone(), sample_from_schema(sub, key, defs));
            }
        }
        return Value::Object(out);
    }
    match ty.as_str() {
        "array" => {
            let items = obj
                .get("items")
                .cloned()
                .unwrap_or(json!({"type": "string"}));
            json!([sample_from_schema(&items, name, defs)])
        }
        "integer" => json!(42),
        "number" => json!(4.2),
        "boolean" => json!(true),
        "null" => Value::Null,
        _ => json!(format!("sample {name}")),
    }
}

// ---------------------------------------------------------------------------------------
// Serving

fn accept_loop(listener: TcpListener, state: Arc<State>) {
    for stream in listener.incoming() {
        if state.shutdown.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        // An answer goes out in several writes (head, chunks): without this, Nagle's
        // algorithm holds each small write for the client's delayed ACK (40 ms), as no
        // real provider does.
        let _ = stream.set_nodelay(true);
        let connection = state.connections.fetch_add(1, Ordering::SeqCst) + 1;
        let state = state.clone();
        let _ = std::thread::Builder::new()
            .name("fake-model-conn".into())
            .spawn(move || {
                let _ = serve_connection(stream, &state, connection);
            });
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn read_request(stream: &TcpStream) -> std::io::Result<Option<Request>> {
    // Long enough that an idle pooled connection is the client's to close.
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None); // the self-connect that wakes accept(), or a client that gave up
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut content_length = 0usize;
    let mut chunked = false;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim();
            headers.push((name.trim().to_ascii_lowercase(), value.to_string()));
            if name.eq_ignore_ascii_case("content-length") {
                content_length = value.parse().unwrap_or(0);
            } else if name.eq_ignore_ascii_case("transfer-encoding")
                && value.to_ascii_lowercase().contains("chunked")
            {
                chunked = true;
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size_text = line.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size_text, 16).unwrap_or(0);
            if size == 0 {
                // Trailers, up to the blank line.
                loop {
                    line.clear();
                    if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let mut chunk = vec![0; size];
            reader.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk);
            line.clear();
            reader.read_line(&mut line)?; // CRLF after the chunk
        }
    } else {
        body.resize(content_length, 0);
        reader.read_exact(&mut body)?;
    }
    Ok(Some(Request {
        method,
        path,
        headers,
        body,
    }))
}

/// Answers the requests of one connection until the client closes it.
fn serve_connection(stream: TcpStream, state: &State, connection: u64) -> std::io::Result<()> {
    while !state.shutdown.load(Ordering::SeqCst) {
        let Some(request) = read_request(&stream)? else {
            return Ok(());
        };
        let mut out = stream.try_clone()?;
        handle_request(&mut out, request, state, connection)?;
    }
    Ok(())
}

fn handle_request(
    stream: &mut TcpStream,
    request: Request,
    state: &State,
    connection: u64,
) -> std::io::Result<()> {
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let path = request.path.split('?').next().unwrap_or("");
    let path = path.trim_end_matches('/');
    let anthropic = path == "/v1/messages";
    if request.method != "POST"
        || !(anthropic || matches!(path, "/v1/chat/completions" | "/chat/completions"))
    {
        return write_json(
            stream,
            404,
            &[],
            &json!({"error": {"message": format!("unknown path {}", request.path),
                              "type": "invalid_request_error"}}),
        );
    }
    let body: Value = match serde_json::from_slice(&request.body) {
        Ok(v) => v,
        Err(_) => {
            return write_json(
                stream,
                400,
                &[],
                &json!({"error": {"message": "invalid json", "type": "invalid_request_error"}}),
            );
        }
    };
    {
        // Both logs under the requests lock, so they stay parallel.
        let mut requests = state.requests.lock().unwrap_or_else(|e| e.into_inner());
        state
            .headers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(request.headers.clone());
        state
            .request_connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(connection);
        requests.push(body.clone());
    }
    if anthropic {
        let seen = |key: &str| state.count(key);
        return crate::fake_anthropic::respond(stream, &body, &request.headers, &seen);
    }
    respond(stream, state, &body)
}

fn respond(stream: &mut TcpStream, state: &State, body: &Value) -> std::io::Result<()> {
    let msgs = messages(body);
    let last_is_user = msgs
        .last()
        .and_then(|m| m.get("role"))
        .and_then(Value::as_str)
        == Some("user");
    let user_text = last_user_text(body);
    let word = |w: &str| last_is_user && has_word(&user_text, w);

    if word("fail") || (!last_is_user && has_word(&user_text, "failafter")) {
        return write_json(
            stream,
            500,
            &[],
            &json!({"error": {"message": "fake upstream failure", "type": "server_error",
                              "code": "fake_failure"}}),
        );
    }
    if word("unauthorized") {
        return write_json(
            stream,
            401,
            &[],
            &json!({"error": {"message": "Incorrect API key provided", "type":
                              "invalid_request_error", "code": "invalid_api_key"}}),
        );
    }
    if word("ratelimit") {
        let seen = {
            let mut counts = state
                .ratelimit_seen
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let count = counts.entry(user_text.clone()).or_insert(0);
            *count += 1;
            *count
        };
        if seen == 1 {
            return write_json(
                stream,
                429,
                &[("Retry-After", "0")],
                &json!({"error": {"message": "Rate limit reached for fake model",
                                  "type": "requests", "code": "rate_limit_exceeded"}}),
            );
        }
    }

    let id = format!(
        "chatcmpl-fake-{:06}",
        state.next_id.fetch_add(1, Ordering::SeqCst) + 1
    );
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("fake-model")
        .to_string();
    let slow = word("slow");
    let paced = word("paced");
    let stall = word("stall");
    let huge = word("huge");
    // Reasoning first, as DeepSeek (`reasoning_content`) and OpenRouter (`reasoning`) send it.
    let reasoning = word("reason").then(|| format!("Reasoning about '{user_text}'."));
    let answer = if huge {
        huge_answer()
    } else {
        answer_text(body, &user_text)
    };
    let stream_requested = body.get("stream").and_then(Value::as_bool) == Some(true);
    let calls = if has_word(&user_text, "toolsforever") {
        vec![("get_weather".to_string(), json!({"city": "Paris"}))]
    } else if last_is_user {
        tool_calls_for(body, &user_text)
    } else {
        Vec::new()
    };
    if !calls.is_empty() {
        let preface = word("preface").then_some(PREFACE);
        return respond_with_tool_calls(
            stream,
            body,
            (&id, &model),
            &calls,
            preface,
            stream_requested,
        );
    }

    if word("gated") {
        state.pass_gate();
    }
    if !stream_requested {
        if stall {
            hold(state, Duration::from_secs(60));
        } else if slow {
            hold(state, Duration::from_secs(5));
        } else if paced {
            hold(state, Duration::from_secs(1));
        }
        let content = if slow {
            (0..30).map(|i| format!("slow-{i} ")).collect::<String>()
        } else {
            answer
        };
        return write_json(
            stream,
            200,
            &[],
            &json!({
                "id": id, "object": "chat.completion", "created": CREATED, "model": model,
                "choices": [{"index": 0,
                             "message": {"role": "assistant", "content": content, "refusal": null,
                                         "reasoning_content": reasoning},
                             "finish_reason": "stop", "logprobs": null}],
                "usage": usage(), "system_fingerprint": "fp_fake",
            }),
        );
    }

    write_head(
        stream,
        200,
        &[
            ("Content-Type", "text/event-stream"),
            ("Cache-Control", "no-cache"),
            ("Transfer-Encoding", "chunked"),
        ],
    )?;
    let chunk = |delta: Value, finish: Value| {
        json!({
            "id": id, "object": "chat.completion.chunk", "created": CREATED, "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}],
        })
    };
    send_event(
        stream,
        &chunk(json!({"role": "assistant", "content": ""}), Value::Null),
    )?;
    if let Some(reasoning) = &reasoning {
        let (first, rest) = reasoning.split_at(reasoning.len() / 2);
        send_event(
            stream,
            &chunk(json!({"reasoning_content": first}), Value::Null),
        )?;
        send_event(stream, &chunk(json!({"reasoning": rest}), Value::Null))?;
    }
    if word("cutoff") || word("cutearly") {
        if word("cutoff") {
            send_event(stream, &chunk(json!({"content": "partial "}), Value::Null))?;
        }
        write_chunk(stream, b"")?; // the body ends: no finish_reason, no [DONE]
        return Ok(());
    }
    if stall {
        send_event(stream, &chunk(json!({"content": "partial "}), Value::Null))?;
        hold(state, Duration::from_secs(60));
        // Close without finishing: the client should have given up long ago.
        return Err(std::io::Error::other("stalled"));
    }
    let pieces: Vec<String> = if huge {
        split_pieces(&answer, 32)
    } else if slow {
        (0..30).map(|i| format!("slow-{i} ")).collect()
    } else if paced {
        (0..10).map(|i| format!("paced-{i} ")).collect()
    } else {
        split_pieces(&answer, 4)
    };
    for (i, piece) in pieces.iter().enumerate() {
        if slow && i > 0 {
            hold(state, Duration::from_millis(300));
        }
        if paced && i > 0 {
            hold(state, Duration::from_millis(100));
        }
        send_event(stream, &chunk(json!({"content": piece}), Value::Null))?;
    }
    send_event(stream, &chunk(json!({}), json!("stop")))?;
    let include_usage = body
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        == Some(true);
    if include_usage {
        send_event(
            stream,
            &json!({
                "id": id, "object": "chat.completion.chunk", "created": CREATED, "model": model,
                "system_fingerprint": "fp_fake", "choices": [], "usage": usage(),
            }),
        )?;
    }
    write_chunk(stream, b"data: [DONE]\n\n")?;
    write_chunk(stream, b"")?; // the last chunk
    Ok(())
}

/// The text answer for a request that is not an error: the tool results after tool
/// messages, JSON for a response format, the story otherwise.
fn answer_text(body: &Value, user_text: &str) -> String {
    let msgs = messages(body);
    let is_tool = |m: &Value| m.get("role").and_then(Value::as_str) == Some("tool");
    if msgs.last().is_some_and(is_tool) {
        let first = msgs.iter().rposition(|m| !is_tool(m)).map_or(0, |i| i + 1);
        let results: Vec<String> = msgs[first..]
            .iter()
            .map(|m| text_of(m.get("content").unwrap_or(&Value::Null)))
            .collect();
        return format!("Tool result received: {}", results.join("; "));
    }
    if let Some(format) = body.get("response_format").and_then(Value::as_object) {
        match format.get("type").and_then(Value::as_str) {
            Some("json_schema") => {
                let schema = format
                    .get("json_schema")
                    .and_then(|j| j.get("schema"))
                    .cloned()
                    .unwrap_or(json!({}));
                let defs = schema
                    .get("$defs")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                return sample_from_schema(&schema, "value", &defs).to_string();
            }
            Some("json_object") => {
                let short: String = user_text.chars().take(60).collect();
                return json!({"answer": format!("json for '{short}'")}).to_string();
            }
            _ => {}
        }
    }
    story_for(user_text, &system_text(body))
}

// ---------------------------------------------------------------------------------------
// Tool calls

/// The offered tools a user message asks for, as `(name, arguments)`: the first one
/// mentioned, or every one mentioned when the message says `parallel`.
pub fn tool_calls_for(body: &Value, user_text: &str) -> Vec<(String, Value)> {
    let tools = body
        .get("tools")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut mentioned: Vec<(usize, &Value)> = tools
        .iter()
        .filter_map(|tool| {
            let function = tool.get("function")?;
            let name = function.get("name").and_then(Value::as_str)?;
            let mut at = name_position(user_text, name);
            let trigger = match name {
                "get_weather" => Some("weather"),
                "delete_file" => Some("delete"),
                _ => None,
            };
            if let Some(word) = trigger {
                at = match (at, name_position(&user_text.to_lowercase(), word)) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            Some((at?, function))
        })
        .collect();
    mentioned.sort_by_key(|(at, _)| *at);
    if mentioned.is_empty() {
        return delegation_for(&tools, body, user_text);
    }
    if !has_word(user_text, "parallel") {
        mentioned.truncate(1);
    }
    mentioned
        .into_iter()
        .map(|(_, function)| {
            let name = function
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let schema = function.get("parameters").cloned().unwrap_or(json!({}));
            (name, tool_arguments(&schema, user_text))
        })
        .collect()
}

/// A team leader's delegation of the whole message: to the first member its system prompt
/// lists, or to every member. Nothing when no delegation tool is offered.
fn delegation_for(tools: &[Value], body: &Value, user_text: &str) -> Vec<(String, Value)> {
    let offered = |name: &str| {
        tools
            .iter()
            .any(|t| t.pointer("/function/name").and_then(Value::as_str) == Some(name))
    };
    if offered("delegate_task_to_member") {
        const MARK: &str = "<member id=\"";
        let system = system_text(body);
        if let Some(start) = system.find(MARK).map(|i| i + MARK.len())
            && let Some(len) = system[start..].find('"')
        {
            let member = &system[start..start + len];
            return vec![(
                "delegate_task_to_member".into(),
                json!({"member_id": member, "task": user_text}),
            )];
        }
    }
    if offered("delegate_task_to_members") {
        return vec![(
            "delegate_task_to_members".into(),
            json!({"task": user_text}),
        )];
    }
    Vec::new()
}

/// Where `name` first occurs in `text` as a whole tool-name word (letters, digits, `_`
/// and `-`).
fn name_position(text: &str, name: &str) -> Option<usize> {
    let is_name_char = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    let mut start = None;
    for (i, c) in text.char_indices().chain([(text.len(), ' ')]) {
        match (is_name_char(c), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                if &text[s..i] == name {
                    return Some(s);
                }
                start = None;
            }
            _ => {}
        }
    }
    None
}

/// The arguments the fake sends for a tool with parameters `schema`.
fn tool_arguments(schema: &Value, user_text: &str) -> Value {
    let defs = schema
        .get("$defs")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut args = match sample_from_schema(schema, "value", &defs) {
        Value::Object(args) => args,
        _ => Map::new(),
    };
    let properties = schema
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if properties.contains_key("city") {
        args.insert("city".into(), json!(city_in(user_text)));
    }
    if properties.contains_key("path") {
        let path = user_text
            .split_whitespace()
            .find(|w| w.starts_with('/') && w.len() > 1)
            .map(|w| w.trim_end_matches(['.', ',', ';', '!', '?', ')']))
            .unwrap_or("/tmp/example.txt");
        args.insert("path".into(), json!(path));
    }
    for pair in user_text.split_whitespace() {
        let Some((key, raw)) = pair.split_once('=') else {
            continue;
        };
        let Some(property) = properties.get(key) else {
            continue;
        };
        let raw = raw.trim_end_matches([',', ';', '.', '!', '?']);
        let value = match property.get("type").and_then(Value::as_str) {
            Some("integer") => raw.parse::<i64>().map(Value::from).ok(),
            Some("number") => raw.parse::<f64>().ok().map(Value::from),
            Some("boolean") => raw.parse::<bool>().ok().map(Value::Bool),
            _ => None,
        };
        args.insert(key.into(), value.unwrap_or_else(|| json!(raw)));
    }
    Value::Object(args)
}

/// The capitalised word after `in`, as the Python fake finds it; `Paris` when there is none.
fn city_in(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(2)
        .filter(|pair| pair[0].eq_ignore_ascii_case("in"))
        .map(|pair| {
            pair[1]
                .chars()
                .take_while(|c| c.is_ascii_alphabetic() || *c == '-')
                .collect::<String>()
        })
        .find(|word| word.starts_with(|c: char| c.is_ascii_uppercase()))
        .unwrap_or_else(|| "Paris".into())
}

fn respond_with_tool_calls(
    stream: &mut TcpStream,
    body: &Value,
    (id, model): (&str, &str),
    calls: &[(String, Value)],
    preface: Option<&str>,
    stream_requested: bool,
) -> std::io::Result<()> {
    let suffix = &id[id.len().saturating_sub(6)..];
    let call_ids: Vec<String> = (0..calls.len())
        .map(|i| format!("call_{suffix}_{i}"))
        .collect();
    if !stream_requested {
        let tool_calls: Vec<Value> = calls
            .iter()
            .zip(&call_ids)
            .map(|((name, args), call_id)| {
                json!({"id": call_id, "type": "function",
                       "function": {"name": name, "arguments": args.to_string()}})
            })
            .collect();
        return write_json(
            stream,
            200,
            &[],
            &json!({
                "id": id, "object": "chat.completion", "created": CREATED, "model": model,
                "choices": [{"index": 0,
                             "message": {"role": "assistant", "content": preface,
                                         "refusal": null, "tool_calls": tool_calls},
                             "finish_reason": "tool_calls", "logprobs": null}],
                "usage": usage(), "system_fingerprint": "fp_fake",
            }),
        );
    }
    write_head(
        stream,
        200,
        &[
            ("Content-Type", "text/event-stream"),
            ("Cache-Control", "no-cache"),
            ("Transfer-Encoding", "chunked"),
        ],
    )?;
    let chunk = |delta: Value, finish: Value| {
        json!({
            "id": id, "object": "chat.completion.chunk", "created": CREATED, "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}],
        })
    };
    let call_delta = |entry: Value| chunk(json!({ "tool_calls": [entry] }), Value::Null);
    send_event(
        stream,
        &chunk(json!({"role": "assistant", "content": null}), Value::Null),
    )?;
    if let Some(text) = preface {
        send_event(stream, &chunk(json!({"content": text}), Value::Null))?;
    }
    // Each call's arguments in two halves: call 0 starts and sends its first half, then
    // call 1 starts, …; the second halves follow, so parallel calls interleave.
    let halves: Vec<(String, String)> = calls
        .iter()
        .map(|(_, args)| {
            let text = args.to_string();
            let cut = text
                .char_indices()
                .nth(text.chars().count() / 2)
                .map_or(text.len(), |(i, _)| i);
            (text[..cut].to_string(), text[cut..].to_string())
        })
        .collect();
    for (i, ((name, _), call_id)) in calls.iter().zip(&call_ids).enumerate() {
        send_event(
            stream,
            &call_delta(json!({"index": i, "id": call_id, "type": "function",
                               "function": {"name": name, "arguments": ""}})),
        )?;
        send_event(
            stream,
            &call_delta(json!({"index": i, "function": {"arguments": halves[i].0}})),
        )?;
    }
    for (i, (_, second)) in halves.iter().enumerate() {
        send_event(
            stream,
            &call_delta(json!({"index": i, "function": {"arguments": second}})),
        )?;
    }
    send_event(stream, &chunk(json!({}), json!("tool_calls")))?;
    if body
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        == Some(true)
    {
        send_event(
            stream,
            &json!({
                "id": id, "object": "chat.completion.chunk", "created": CREATED, "model": model,
                "system_fingerprint": "fp_fake", "choices": [], "usage": usage(),
            }),
        )?;
    }
    write_chunk(stream, b"data: [DONE]\n\n")?;
    write_chunk(stream, b"")
}

fn usage() -> Value {
    json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15})
}

/// Splits `text` into at most `n` pieces at word boundaries, the whitespace going to the
/// start of the next piece (as the Python fake does). Concatenated, the pieces are `text`.
fn split_pieces(text: &str, n: usize) -> Vec<String> {
    // Word starts: positions where a non-space follows a space (or the start).
    let mut starts = Vec::new();
    let mut prev_space = true;
    for (i, c) in text.char_indices() {
        if !c.is_whitespace() && prev_space {
            starts.push(i);
        }
        prev_space = c.is_whitespace();
    }
    if starts.len() <= 1 {
        return vec![text.to_string()];
    }
    let per_piece = starts.len().div_ceil(n);
    let mut cuts: Vec<usize> = starts
        .iter()
        .enumerate()
        .filter(|(i, _)| *i > 0 && i % per_piece == 0)
        .map(|(_, pos)| {
            // Cut before the whitespace that precedes this word.
            text[..*pos].trim_end().len()
        })
        .collect();
    cuts.push(text.len());
    let mut out = Vec::new();
    let mut from = 0;
    for cut in cuts {
        if cut > from {
            out.push(text[from..cut].to_string());
            from = cut;
        }
    }
    out
}

/// Waits up to `total`, returning early when the server shuts down.
fn hold(state: &State, total: Duration) {
    let deadline = Instant::now() + total;
    while !state.shutdown.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(50)));
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        529 => "Overloaded",
        _ => "Unknown",
    }
}

pub(crate) fn write_head(
    stream: &mut TcpStream,
    status: u16,
    headers: &[(&str, &str)],
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.flush()
}

pub(crate) fn write_json(
    stream: &mut TcpStream,
    status: u16,
    extra: &[(&str, &str)],
    body: &Value,
) -> std::io::Result<()> {
    let data = body.to_string();
    let length = data.len().to_string();
    let mut headers = vec![
        ("Content-Type", "application/json"),
        ("Content-Length", length.as_str()),
    ];
    headers.extend_from_slice(extra);
    write_head(stream, status, &headers)?;
    stream.write_all(data.as_bytes())?;
    stream.flush()
}

pub(crate) fn write_chunk(stream: &mut TcpStream, data: &[u8]) -> std::io::Result<()> {
    let mut frame = format!("{:x}\r\n", data.len()).into_bytes();
    frame.extend_from_slice(data);
    frame.extend_from_slice(b"\r\n");
    stream.write_all(&frame)?;
    stream.flush()
}

fn send_event(stream: &mut TcpStream, event: &Value) -> std::io::Result<()> {
    write_chunk(stream, format!("data: {event}\n\n").as_bytes())
}

// ---------------------------------------------------------------------------------------
// Tests of the fake itself, over a real socket with ureq.

fn post(fake: &FakeModel, body: &Value) -> (u16, Vec<(String, String)>, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .proxy(None)
        .build()
        .into();
    let mut response = agent
        .post(&format!("{}/chat/completions", fake.base_url()))
        .send_json(body)
        .expect("request to the fake model");
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let text = response
        .body_mut()
        .read_to_string()
        .expect("read the fake model's body");
    (status, headers, text)
}

/// The `data:` payloads of an SSE body, in order.
fn sse_data(text: &str) -> Vec<String> {
    assert!(
        text.ends_with("\n\n"),
        "SSE body must end with a blank line: {text:?}"
    );
    text.split("\n\n")
        .filter(|frame| !frame.is_empty())
        .map(|frame| {
            frame
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("frame without data: {frame:?}"))
                .to_string()
        })
        .collect()
}

fn story_request(text: &str, stream: bool) -> Value {
    json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You write very short stories. The robot's name is Anna."},
            {"role": "user", "content": text},
        ],
        "stream": stream,
        "stream_options": {"include_usage": true},
    })
}

#[test]
fn fake_model_non_stream_story() {
    let fake = FakeModel::start();
    let (status, _, text) = post(&fake, &story_request("Tell me a story", false));
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).expect("JSON body");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Story for 'Tell me a story'. Starring Anna. The end."
    );
    assert_eq!(v["usage"]["total_tokens"], 15);
    assert_eq!(v["system_fingerprint"], "fp_fake");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-fake-"));
    assert_eq!(fake.request_count(), 1);
    assert_eq!(last_user_text(&fake.single_request()), "Tell me a story");
    let content_type = fake.header(0, "content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
}

#[test]
fn fake_model_stream_story_framing() {
    let fake = FakeModel::start();
    let (status, headers, text) = post(&fake, &story_request("Tell me a story", true));
    assert_eq!(status, 200);
    assert!(
        headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("content-type") && v == "text/event-stream"),
        "{headers:?}"
    );
    let data = sse_data(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("chunk JSON"))
        .collect();
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(
        content,
        "Story for 'Tell me a story'. Starring Anna. The end."
    );
    let content_chunks = chunks
        .iter()
        .filter(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
        })
        .count();
    assert!(
        content_chunks >= 3,
        "expected several content chunks: {chunks:#?}"
    );
    let n = chunks.len();
    assert_eq!(chunks[n - 2]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[n - 1]["choices"], json!([]));
    assert_eq!(chunks[n - 1]["usage"]["prompt_tokens"], 10);
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["system_fingerprint"], "fp_fake");
        assert_eq!(c["id"], chunks[0]["id"]);
        assert_eq!(c["model"], "gpt-4o-mini");
    }
}

#[test]
fn fake_model_stream_without_usage_and_without_robot() {
    let fake = FakeModel::start();
    let body = json!({
        "model": "m",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi there"}]}],
        "stream": true,
    });
    let (_, _, text) = post(&fake, &body);
    let data = sse_data(&text);
    assert!(!text.contains("usage"), "{text}");
    let content: String = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect();
    assert_eq!(content, "Story for 'Hi there'. The end.");
}

#[test]
fn fake_model_errors_and_ratelimit() {
    let fake = FakeModel::start();
    let (status, _, text) = post(&fake, &story_request("please fail", true));
    assert_eq!(status, 500);
    assert!(text.contains("fake upstream failure"), "{text}");

    let (status, _, text) = post(&fake, &story_request("unauthorized me", false));
    assert_eq!(status, 401);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["code"], "invalid_api_key");

    let (status, headers, _) = post(&fake, &story_request("ratelimit me", false));
    assert_eq!(status, 429);
    assert!(
        headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("retry-after") && v == "0")
    );
    let (status, _, _) = post(&fake, &story_request("ratelimit me", false));
    assert_eq!(status, 200);
    assert_eq!(fake.request_count(), 4);
}

#[test]
fn fake_model_json_schema_and_json_object() {
    let fake = FakeModel::start();
    let mut body = story_request("A heist", false);
    body["response_format"] = json!({
        "type": "json_schema",
        "json_schema": {"name": "MovieScript", "strict": true, "schema": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "year": {"type": "integer"},
                "rating": {"type": "number"},
                "sequel": {"type": "boolean"},
                "characters": {"type": "array", "items": {"type": "string"}},
                "studio": {"type": "object", "properties": {"city": {"type": "string"}}},
                "kind": {"$ref": "#/$defs/Kind"},
            },
            "$defs": {"Kind": {"enum": ["drama", "comedy"]}},
        }},
    });
    let (_, _, text) = post(&fake, &body);
    let v: Value = serde_json::from_str(&text).unwrap();
    let content: Value =
        serde_json::from_str(v["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(
        content,
        json!({"name": "sample name", "year": 42, "rating": 4.2, "sequel": true,
               "characters": ["sample characters"], "studio": {"city": "sample city"},
               "kind": "drama"})
    );

    body["response_format"] = json!({"type": "json_object"});
    let (_, _, text) = post(&fake, &body);
    let v: Value = serde_json::from_str(&text).unwrap();
    let content: Value =
        serde_json::from_str(v["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(content, json!({"answer": "json for 'A heist'"}));
}

#[test]
fn fake_model_stall_holds_the_socket_until_dropped() {
    let fake = FakeModel::start();
    let addr = fake.addr;
    let mut stream = TcpStream::connect(addr).unwrap();
    let body = story_request("stall please", true).to_string();
    write!(
        stream,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("partial ") {
        let n = stream.read(&mut buf).expect("the stall chunks arrive");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    // Nothing more comes for a while.
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let err = stream.read(&mut buf).expect_err("no data while stalling");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err}"
    );
    let started = Instant::now();
    drop(fake); // must not wait for the stalled connection's 60 s
    assert!(started.elapsed() < Duration::from_secs(5));
}

fn tool_request(text: &str, stream: bool) -> Value {
    let mut body = story_request(text, stream);
    body["tools"] = json!([
        {"type": "function", "function": {"name": "get_weather", "description": "Weather.",
         "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                        "required": ["city"]}}},
        {"type": "function", "function": {"name": "word_count", "description": "Counts.",
         "parameters": {"type": "object", "properties": {
             "text": {"type": "string"}, "limit": {"type": "integer"}}}}},
    ]);
    body
}

/// A streamed call: index, id, name, arguments.
type StreamedCall = (u64, String, String, String);

/// Assembles the streamed tool calls of an SSE body by index, checking the wire format.
fn streamed_calls(text: &str) -> (Vec<Value>, Vec<StreamedCall>) {
    let data = sse_data(text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("chunk JSON"))
        .collect();
    let mut calls: Vec<StreamedCall> = Vec::new();
    for c in &chunks {
        let Some(entries) = c["choices"][0]["delta"]["tool_calls"].as_array() else {
            continue;
        };
        for e in entries {
            let index = e["index"].as_u64().expect("every entry has an index");
            match calls.iter_mut().find(|(i, ..)| *i == index) {
                Some(call) => {
                    assert!(e.get("id").is_none(), "id only on the first delta: {e}");
                    call.3
                        .push_str(e["function"]["arguments"].as_str().unwrap());
                }
                None => {
                    assert_eq!(e["type"], "function");
                    assert_eq!(e["function"]["arguments"], "");
                    calls.push((
                        index,
                        e["id"].as_str().unwrap().to_string(),
                        e["function"]["name"].as_str().unwrap().to_string(),
                        String::new(),
                    ));
                }
            }
        }
    }
    (chunks, calls)
}

#[test]
fn fake_model_streams_one_tool_call() {
    let fake = FakeModel::start();
    let (status, _, text) = post(&fake, &tool_request("What's the weather in Berlin?", true));
    assert_eq!(status, 200);
    let (chunks, calls) = streamed_calls(&text);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].1, "call_000001_0");
    assert_eq!(calls[0].2, "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(&calls[0].3).unwrap(),
        json!({"city": "Berlin"})
    );
    let n = chunks.len();
    assert_eq!(chunks[n - 2]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(chunks[n - 1]["usage"]["total_tokens"], 15);
    assert!(!text.contains("Story for"), "{text}");

    // Named by its name, with key=value arguments; only the first tool without `parallel`.
    let (_, _, text) = post(
        &fake,
        &tool_request("use word_count text=hi limit=3 then get_weather", true),
    );
    let (_, calls) = streamed_calls(&text);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].2, "word_count");
    assert_eq!(
        serde_json::from_str::<Value>(&calls[0].3).unwrap(),
        json!({"text": "hi", "limit": 3})
    );
}

#[test]
fn fake_model_streams_parallel_tool_calls_interleaved() {
    let fake = FakeModel::start();
    let (_, _, text) = post(
        &fake,
        &tool_request("In parallel: get_weather in Oslo and word_count", true),
    );
    let (chunks, calls) = streamed_calls(&text);
    let names: Vec<&str> = calls.iter().map(|c| c.2.as_str()).collect();
    assert_eq!(names, ["get_weather", "word_count"]);
    assert_eq!(calls[0].1, "call_000001_0");
    assert_eq!(calls[1].1, "call_000001_1");
    assert_eq!(
        serde_json::from_str::<Value>(&calls[0].3).unwrap(),
        json!({"city": "Oslo"})
    );
    assert_eq!(
        serde_json::from_str::<Value>(&calls[1].3).unwrap(),
        json!({"text": "sample text", "limit": 42})
    );
    // Call 1 starts before call 0's arguments are complete.
    let indexes: Vec<u64> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["index"].as_u64())
        .collect();
    assert_eq!(indexes, [0, 0, 1, 1, 0, 1]);
}

#[test]
fn fake_model_non_stream_tool_call_and_results() {
    let fake = FakeModel::start();
    let (_, _, text) = post(&fake, &tool_request("weather please", false));
    let v: Value = serde_json::from_str(&text).unwrap();
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    assert_eq!(
        choice["message"]["tool_calls"],
        json!([{"id": "call_000001_0", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}])
    );

    // Without tools offered the words mean nothing.
    let (_, _, text) = post(&fake, &story_request("weather please", false));
    assert!(text.contains("Story for 'weather please'"), "{text}");

    let mut body = tool_request("weather in Rome and word_count, parallel", false);
    let msgs = body["messages"].as_array_mut().unwrap();
    msgs.push(json!({"role": "assistant", "content": null, "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
        {"id": "b", "type": "function", "function": {"name": "word_count", "arguments": "{}"}}]}));
    msgs.push(json!({"role": "tool", "tool_call_id": "a", "content": "Sunny"}));
    msgs.push(json!({"role": "tool", "tool_call_id": "b", "content": "3 words"}));
    let (_, _, text) = post(&fake, &body);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Tool result received: Sunny; 3 words"
    );
    body["stream"] = json!(true);
    let (_, _, text) = post(&fake, &body);
    let (_, calls) = streamed_calls(&text);
    assert!(calls.is_empty());
    assert!(text.contains("received"), "{text}");
}

#[test]
fn fake_model_split_pieces() {
    let text = "Story for 'Tell me a story'. Starring Anna. The end.";
    let pieces = split_pieces(text, 4);
    assert_eq!(pieces.concat(), text);
    assert!((3..=4).contains(&pieces.len()), "{pieces:?}");
    assert_eq!(split_pieces("one", 4), vec!["one"]);
    assert_eq!(
        story_for("x", "The robot's name is Bob."),
        "Story for 'x'. Starring Bob. The end."
    );
    assert_eq!(story_for("x", "no robot"), "Story for 'x'. The end.");
}
