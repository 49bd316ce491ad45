//! The offline, deterministic test model (`model = "test"` or `test:NAME`).
//!
//! It needs no network and no key, and always gives the same answer to the same input, so
//! agent files, the terminal UI and the HTTP server can be tried out and tested for free.
//!
//! The answer shows what the agent was really asked:
//!
//! ```text
//! Test model reply to "Write me a 5 line story". Instructions: "You write very short
//! stories. The robot's name is Anna." History: 0 earlier messages.
//! ```
//!
//! - The user text is the last user message; the instructions are the first 200
//!   characters of the system prompt with runs of whitespace collapsed; the history counts
//!   the user and assistant messages before the last user message.
//! - With an output format that is a JSON Schema the answer is compact JSON valid for the
//!   schema: strings
//!   are `"sample <property>"`, integers `42`, numbers `4.2`, booleans `true`, arrays have
//!   one item, enums take their first value, and every property is present. With a plain
//!   JSON object format it is `{"reply":"<the text answer>"}`.
//! - Streaming delivers an empty delta first (like a provider's role-only chunk), then
//!   the answer in groups of a few words.
//! - Usage counts whitespace-separated words: input over all messages, output over the
//!   answer. `provider_data` is `{"id":"test-<hash of the input>"}`.
//!
//! Function calling works offline too, so tool flows can be tried without a key:
//! - When the request offers tools and the last message is a user message that names
//!   some of them as words (`use get_weather for Berlin`, `call word_count`), the answer
//!   is a call to each named tool, in order of first appearance (several names make
//!   parallel calls in one turn), with no text. The ids are `call_test_<n>`, numbered on
//!   from the calls already in the conversation. The arguments are a sample object for
//!   the tool's `parameters` schema (as for output formats above), except that
//!   `key=value` pairs in the message whose key is a property of the schema set that
//!   property: `use get_weather city=Berlin days=3`, or `note="two words"` with quotes.
//!   Values are strings unless the property's type is `integer`, `number` or `boolean`
//!   (or `array`/`object` given as JSON) and the value parses as one; trailing `,;.!?`
//!   are dropped from unquoted values. Streaming delivers only the empty first delta;
//!   the calls come in the response with `finish_reason` `tool_calls`.
//! - A team leader delegates: offered `delegate_task_to_member`, it calls it once for
//!   each member id the user message names as a word (in order; the first member when it
//!   names none), with the whole message as the task; offered `delegate_task_to_members`,
//!   it calls that once with the message as the task.
//! - When the last message is a tool result, the answer reports the results that follow
//!   the last assistant turn: `Tool results: get_weather: Sunny, 21 °C; word_count: 4.`,
//!   each result on one line cut to its first 200 characters.
//!
//! Markers in the user message change its behaviour, for trying out error handling and
//! cancellation:
//! - `[test:error]` fails with HTTP 500 `test model error (HTTP 500)`;
//! - `[test:slow]` waits about 200 ms before each chunk (cancellation still interrupts
//!   it at once).

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{Map, Value, json};

use crate::model::{
    ArgumentsPiece, Chunk, ChunkStream, Model, ModelError, ModelInfo, ModelRequest, ToolCallDelta,
    Usage,
};
use crate::run::{Message, Role, ToolCall};
use crate::schema::OutputFormat;
use crate::tools::ToolSpec;

/// Marker that makes the test model fail with HTTP 500.
pub const ERROR_MARKER: &str = "[test:error]";
/// Marker that makes the test model pause between chunks.
pub const SLOW_MARKER: &str = "[test:slow]";

const SLOW_CHUNK_DELAY: Duration = Duration::from_millis(200);
const WORDS_PER_CHUNK: usize = 3;
const INSTRUCTIONS_QUOTE_CHARS: usize = 200;
const USER_QUOTE_CHARS: usize = 500;
const TOOL_RESULT_QUOTE_CHARS: usize = 200;
/// Schema nesting followed before giving up (guards against recursive `$ref`s).
const MAX_SCHEMA_DEPTH: usize = 12;

/// The built-in offline model.
pub struct TestModel {
    info: ModelInfo,
}

/// How AgentOS would name the offline model.
pub fn info(model: &str) -> ModelInfo {
    ModelInfo {
        id: model.to_string(),
        provider: "Test".into(),
        class_name: "TestModel".into(),
    }
}

/// The functions the model may call now: none past the run's tool-call limit.
fn offered_tools<'a>(request: &ModelRequest<'a>) -> &'a [ToolSpec] {
    if request.allow_tools {
        request.tools
    } else {
        &[]
    }
}

impl TestModel {
    pub fn new(model: &str) -> Self {
        TestModel { info: info(model) }
    }

    /// The whole answer to `request`, as the chunks a stream delivers.
    fn answer(&self, request: &ModelRequest<'_>) -> Result<Vec<Chunk>, ModelError> {
        let user = last_user_text(request.messages);
        if user.contains(ERROR_MARKER) {
            return Err(ModelError::Http {
                status: 500,
                message: "test model error (HTTP 500)".into(),
            });
        }
        let tool_calls = requested_tool_calls(request.messages, offered_tools(request));
        let content = if !tool_calls.is_empty() {
            String::new()
        } else {
            let text =
                tool_results_text(request.messages).unwrap_or_else(|| reply_text(request.messages));
            match request.output {
                Some(format) => structured_reply(format, &text),
                None => text,
            }
        };
        let id = format!("test-{:016x}", input_hash(request));
        let input_tokens = request
            .messages
            .iter()
            .map(|m| word_count(m.content.as_deref().unwrap_or("")))
            .sum::<u64>();
        let output_tokens = word_count(&content)
            + tool_calls
                .iter()
                .map(|c| word_count(&c.name) + word_count(&c.arguments))
                .sum::<u64>();

        let mut chunks = vec![Chunk::ProviderData(Map::from_iter([(
            "id".to_string(),
            Value::String(id),
        )]))];
        if request.stream {
            chunks.push(Chunk::Text(String::new()));
            chunks.extend(
                word_groups(&content, WORDS_PER_CHUNK)
                    .into_iter()
                    .map(Chunk::Text),
            );
        } else {
            chunks.push(Chunk::Text(content));
        }
        let finish = if tool_calls.is_empty() {
            "stop"
        } else {
            "tool_calls"
        };
        for (index, call) in tool_calls.into_iter().enumerate() {
            chunks.push(Chunk::ToolCall(ToolCallDelta {
                index: index as u64,
                id: Some(call.id),
                name: Some(call.name),
                arguments: ArgumentsPiece::Whole(call.arguments),
            }));
        }
        chunks.push(Chunk::Usage(Usage {
            input_tokens,
            output_tokens,
            total_tokens: input_tokens + output_tokens,
            ..Usage::default()
        }));
        chunks.push(Chunk::Finish(finish.into()));
        Ok(chunks)
    }
}

impl Model for TestModel {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn stream<'a>(
        &'a self,
        request: ModelRequest<'a>,
    ) -> BoxFuture<'a, Result<ChunkStream, ModelError>> {
        let answer = self.answer(&request);
        let slow = last_user_text(request.messages).contains(SLOW_MARKER);
        Box::pin(async move {
            let chunks: VecDeque<Chunk> = answer?.into();
            let stream = futures_util::stream::unfold(chunks, move |mut chunks| async move {
                let chunk = chunks.pop_front()?;
                // Pauses before each piece of text, as a slow provider would.
                if slow && matches!(chunk, Chunk::Text(_)) {
                    tokio::time::sleep(SLOW_CHUNK_DELAY).await;
                }
                Some((Ok(chunk), chunks))
            });
            Ok(Box::pin(stream) as ChunkStream)
        })
    }
}

fn last_user_text(messages: &[Message]) -> &str {
    messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .and_then(|m| m.content.as_deref())
        .unwrap_or("")
}

/// A team leader's calls: with `delegate_task_to_member`, one call per member id the
/// message names as a word (the first member when it names none), the task being the
/// whole message; with `delegate_task_to_members`, one call with the message as the task.
fn delegations(text: &str, tools: &[ToolSpec], earlier: usize) -> Vec<ToolCall> {
    let call = |n: usize, name: &str, args: Value| ToolCall {
        id: format!("call_test_{}", earlier + n + 1),
        name: name.to_string(),
        arguments: args.to_string(),
    };
    if tools.iter().any(|t| t.name == "delegate_task_to_members") {
        return vec![call(0, "delegate_task_to_members", json!({"task": text}))];
    }
    let Some(tool) = tools.iter().find(|t| t.name == "delegate_task_to_member") else {
        return Vec::new();
    };
    let members: Vec<&str> = tool.parameters["properties"]["member_id"]["enum"]
        .as_array()
        .map(|ids| ids.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut chosen: Vec<&str> = Vec::new();
    for word in text.split(|c: char| !is_name_char(c)) {
        if members.contains(&word) && !chosen.contains(&word) {
            chosen.push(word);
        }
    }
    if chosen.is_empty() {
        chosen.extend(members.first());
    }
    chosen
        .into_iter()
        .enumerate()
        .map(|(i, id)| {
            call(
                i,
                "delegate_task_to_member",
                json!({"member_id": id, "task": text}),
            )
        })
        .collect()
}

/// The calls the last message asks for: one per offered tool it names, in order of first
/// appearance. Empty unless the last message is a user message.
fn requested_tool_calls(messages: &[Message], tools: &[ToolSpec]) -> Vec<ToolCall> {
    let Some(last) = messages.last().filter(|m| m.role == Role::User) else {
        return Vec::new();
    };
    let text = last.content.as_deref().unwrap_or("");
    let mut named: Vec<&ToolSpec> = Vec::new();
    for word in text.split(|c: char| !is_name_char(c)) {
        if let Some(tool) = tools.iter().find(|t| t.name == word)
            && !named.iter().any(|t| t.name == tool.name)
        {
            named.push(tool);
        }
    }
    let earlier = messages
        .iter()
        .filter_map(|m| m.tool_calls.as_ref())
        .map(Vec::len)
        .sum::<usize>();
    if named.is_empty() {
        return delegations(text, tools, earlier);
    }
    let pairs = key_value_pairs(text);
    named
        .into_iter()
        .enumerate()
        .map(|(i, tool)| ToolCall {
            id: format!("call_test_{}", earlier + i + 1),
            name: tool.name.clone(),
            arguments: Value::Object(tool_arguments(&tool.parameters, &pairs)).to_string(),
        })
        .collect()
}

/// Characters of a tool name as OpenAI allows them (`^[a-zA-Z0-9_-]+$`).
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// The sample arguments for `schema`, with the `key=value` pairs that name one of its
/// properties filled in.
fn tool_arguments(schema: &Value, pairs: &[(String, String)]) -> Map<String, Value> {
    let mut args = match sample_value(schema, "value", schema, 0) {
        Value::Object(args) => args,
        // A schema that is not an object schema takes no arguments.
        _ => Map::new(),
    };
    let properties = schema.get("properties").and_then(Value::as_object);
    for (key, raw) in pairs {
        if let Some(property) = properties.and_then(|p| p.get(key)) {
            args.insert(key.clone(), typed_value(property, schema, raw));
        }
    }
    args
}

/// `raw` as the JSON type `property` asks for, or as a string when it does not parse.
fn typed_value(property: &Value, root: &Value, raw: &str) -> Value {
    let mut property = property;
    for _ in 0..MAX_SCHEMA_DEPTH {
        match property
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| resolve_ref(root, r))
        {
            Some(target) => property = target,
            None => break,
        }
    }
    let types: Vec<&str> = match property.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(types)) => types.iter().filter_map(Value::as_str).collect(),
        _ => ["anyOf", "oneOf"]
            .iter()
            .filter_map(|k| property.get(*k).and_then(Value::as_array))
            .flatten()
            .filter_map(|alt| alt.get("type").and_then(Value::as_str))
            .collect(),
    };
    for ty in types {
        let parsed = match ty {
            "integer" => raw.parse::<i64>().ok().map(Value::from),
            "number" => raw
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .map(Value::from),
            "boolean" => raw.parse::<bool>().ok().map(Value::Bool),
            "array" => serde_json::from_str(raw).ok().filter(Value::is_array),
            "object" => serde_json::from_str(raw).ok().filter(Value::is_object),
            _ => None,
        };
        if let Some(value) = parsed {
            return value;
        }
    }
    Value::String(raw.to_string())
}

/// The `key=value` pairs of a message, in order. A value runs to the next whitespace, or
/// to the closing quote when it starts with `"` or `'`; trailing `,;.!?` of an unquoted
/// value are dropped.
fn key_value_pairs(text: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut rest = text;
    while let Some(eq) = rest.find('=') {
        let before = &rest[..eq];
        let key_start = before
            .char_indices()
            .rev()
            .take_while(|(_, c)| is_name_char(*c))
            .last()
            .map_or(eq, |(i, _)| i);
        let key = &before[key_start..];
        let after = &rest[eq + 1..];
        let (value, consumed) = match after.chars().next() {
            Some(q @ ('"' | '\'')) => match after[1..].find(q) {
                Some(end) => (after[1..1 + end].to_string(), end + 2),
                None => (after[1..].to_string(), after.len()),
            },
            _ => {
                let end = after.find(char::is_whitespace).unwrap_or(after.len());
                let value = after[..end].trim_end_matches([',', ';', '.', '!', '?']);
                (value.to_string(), end)
            }
        };
        if !key.is_empty() {
            pairs.push((key.to_string(), value));
        }
        rest = &after[consumed..];
    }
    pairs
}

/// The report of the tool results after the last assistant turn, when the conversation
/// ends with one.
fn tool_results_text(messages: &[Message]) -> Option<String> {
    if messages.last()?.role != Role::Tool {
        return None;
    }
    let start = messages
        .iter()
        .rposition(|m| m.role != Role::Tool)
        .map_or(0, |i| i + 1);
    let calls: Vec<&ToolCall> = messages[..start]
        .iter()
        .rev()
        .find(|m| m.role == Role::Assistant)
        .and_then(|m| m.tool_calls.as_ref())
        .map(|calls| calls.iter().collect())
        .unwrap_or_default();
    let results: Vec<String> = messages[start..]
        .iter()
        .map(|m| {
            let name = m
                .tool_name
                .clone()
                .or_else(|| call_name(&calls, m.tool_call_id.as_deref()?))
                .unwrap_or_else(|| "tool".into());
            let content = collapse_whitespace(m.content.as_deref().unwrap_or(""));
            format!("{name}: {}", quote(&content, TOOL_RESULT_QUOTE_CHARS))
        })
        .collect();
    Some(format!("Tool results: {}.", results.join("; ")))
}

/// The function name of the call with `id`, in OpenAI's shape or stored flat.
fn call_name(calls: &[&ToolCall], id: &str) -> Option<String> {
    calls.iter().find(|c| c.id == id).map(|c| c.name.clone())
}

/// The plain-text answer: the question, the instructions and the history size.
fn reply_text(messages: &[Message]) -> String {
    let last_user = messages.iter().rposition(|m| m.role == Role::User);
    let user = last_user
        .and_then(|i| messages[i].content.as_deref())
        .unwrap_or("");
    let history = messages[..last_user.unwrap_or(messages.len())]
        .iter()
        .filter(|m| matches!(m.role, Role::User | Role::Assistant))
        .count();
    let system: Vec<&str> = messages
        .iter()
        .filter(|m| m.role == Role::System)
        .filter_map(|m| m.content.as_deref())
        .collect();
    let system = collapse_whitespace(&system.join("\n"));

    let mut out = format!(
        "Test model reply to \"{}\".",
        quote(&collapse_whitespace(user), USER_QUOTE_CHARS)
    );
    if system.is_empty() {
        out.push_str(" No instructions.");
    } else {
        out.push_str(&format!(
            " Instructions: \"{}\".",
            quote(&system, INSTRUCTIONS_QUOTE_CHARS)
        ));
    }
    let plural = if history == 1 { "" } else { "s" };
    out.push_str(&format!(" History: {history} earlier message{plural}."));
    out
}

fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The first `max` characters, with `…` when cut.
fn quote(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", text[..cut].trim_end()),
        None => text.to_string(),
    }
}

/// JSON text for an output format.
fn structured_reply(format: &OutputFormat, text: &str) -> String {
    match format {
        OutputFormat::JsonSchema { schema, .. } if schema.is_object() => {
            sample_value(schema, "value", schema, 0).to_string()
        }
        _ => json!({ "reply": text }).to_string(),
    }
}

/// A value valid for `schema`, named `name` when it is a property. `root` resolves `$ref`s.
pub(crate) fn sample_value(schema: &Value, name: &str, root: &Value, depth: usize) -> Value {
    let Some(obj) = schema.as_object() else {
        // `true` or a missing schema accepts anything.
        return Value::String(format!("sample {name}"));
    };
    if depth > MAX_SCHEMA_DEPTH {
        return Value::Null;
    }
    if let Some(reference) = obj.get("$ref").and_then(Value::as_str) {
        return match resolve_ref(root, reference) {
            Some(target) => sample_value(target, name, root, depth + 1),
            None => Value::String(format!("sample {name}")),
        };
    }
    if let Some(value) = obj.get("const") {
        return value.clone();
    }
    if let Some(first) = obj
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(alternatives) = obj.get(key).and_then(Value::as_array) {
            let chosen = alternatives
                .iter()
                .find(|alt| alt.get("type").and_then(Value::as_str) != Some("null"))
                .or_else(|| alternatives.first());
            return match chosen {
                Some(alt) => sample_value(alt, name, root, depth + 1),
                None => Value::Null,
            };
        }
    }
    if let Some(parts) = obj.get("allOf").and_then(Value::as_array) {
        let mut merged = Map::new();
        for part in parts {
            match sample_value(part, name, root, depth + 1) {
                Value::Object(fields) => merged.extend(fields),
                other if parts.len() == 1 => return other,
                _ => {}
            }
        }
        return Value::Object(merged);
    }

    let ty = match obj.get("type") {
        Some(Value::String(t)) => Some(t.as_str()),
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .or(Some("null")),
        _ => None,
    };
    let ty = ty.unwrap_or(if obj.contains_key("properties") {
        "object"
    } else if obj.contains_key("items") {
        "array"
    } else {
        "string"
    });
    match ty {
        "object" => {
            let mut out = Map::new();
            if let Some(props) = obj.get("properties").and_then(Value::as_object) {
                for (key, prop) in props {
                    out.insert(key.clone(), sample_value(prop, key, root, depth + 1));
                }
            }
            // Required names without a property schema still get a value.
            if let Some(required) = obj.get("required").and_then(Value::as_array) {
                for key in required.iter().filter_map(Value::as_str) {
                    if !out.contains_key(key) {
                        out.insert(key.to_string(), Value::String(format!("sample {key}")));
                    }
                }
            }
            Value::Object(out)
        }
        "array" => {
            if obj.get("maxItems").and_then(Value::as_u64) == Some(0) {
                return Value::Array(Vec::new());
            }
            let items = obj.get("items").unwrap_or(&Value::Bool(true));
            let count = obj
                .get("minItems")
                .and_then(Value::as_u64)
                .unwrap_or(1)
                .clamp(1, 16);
            let item = sample_value(items, name, root, depth + 1);
            Value::Array(vec![item; count as usize])
        }
        "integer" => {
            let mut n: i64 = 42;
            if let Some(min) = obj.get("minimum").and_then(Value::as_f64) {
                n = n.max(min.ceil() as i64);
            }
            if let Some(max) = obj.get("maximum").and_then(Value::as_f64) {
                n = n.min(max.floor() as i64);
            }
            json!(n)
        }
        "number" => {
            let mut n = 4.2_f64;
            if let Some(min) = obj.get("minimum").and_then(Value::as_f64) {
                n = n.max(min);
            }
            if let Some(max) = obj.get("maximum").and_then(Value::as_f64) {
                n = n.min(max);
            }
            json!(n)
        }
        "boolean" => Value::Bool(true),
        "null" => Value::Null,
        _ => Value::String(sample_string(obj, name)),
    }
}

fn sample_string(obj: &Map<String, Value>, name: &str) -> String {
    match obj.get("format").and_then(Value::as_str) {
        Some("date-time") => "2024-01-01T00:00:00Z".into(),
        Some("date") => "2024-01-01".into(),
        Some("time") => "00:00:00Z".into(),
        Some("email") => "sample@example.com".into(),
        Some("uri" | "url") => "https://example.com/".into(),
        Some("uuid") => "00000000-0000-4000-8000-000000000000".into(),
        _ => format!("sample {name}"),
    }
}

/// Follows a local `#/…` JSON pointer reference.
fn resolve_ref<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    root.pointer(pointer)
}

/// Splits text into pieces of `n` words, each keeping the whitespace before its words,
/// so the pieces concatenate back to the text.
fn word_groups(text: &str, n: usize) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut words = 0;
    let mut in_word = false;
    for c in text.chars() {
        let space = c.is_whitespace();
        if !space && !in_word {
            if words == n {
                pieces.push(std::mem::take(&mut current));
                words = 0;
            }
            words += 1;
        }
        in_word = !space;
        current.push(c);
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

fn word_count(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// FNV-1a over everything that shapes the answer: stable across runs and builds.
fn input_hash(request: &ModelRequest<'_>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // A separator so ("ab","c") and ("a","bc") differ.
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    };
    for m in request.messages {
        feed(m.role.as_str().as_bytes());
        feed(m.content.as_deref().unwrap_or("").as_bytes());
        if let Some(calls) = &m.tool_calls {
            feed(serde_json::to_string(calls).unwrap_or_default().as_bytes());
        }
        if let Some(id) = &m.tool_call_id {
            feed(id.as_bytes());
        }
    }
    for tool in offered_tools(request) {
        feed(tool.name.as_bytes());
        feed(tool.parameters.to_string().as_bytes());
    }
    if let Some(format) = request.output {
        feed(format!("{format:?}").as_bytes());
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Assembler, ModelResponse};
    use futures_util::StreamExt;
    use std::time::Instant;

    /// A piece of text as the stream delivered it.
    #[derive(Clone, Debug)]
    struct Delta {
        content: String,
    }

    fn msg(role: Role, content: &str) -> Message {
        Message {
            role,
            content: Some(content.into()),
            ..Message::default()
        }
    }

    fn request(messages: &[Message], stream: bool) -> ModelRequest<'_> {
        ModelRequest {
            messages,
            temperature: None,
            max_tokens: None,
            output: None,
            stream,
            tools: &[],
            allow_tools: true,
            reasoning_budget: None,
            cache_prompt: false,
        }
    }

    /// Runs a request to its end: the answer and its text pieces.
    fn run(req: &ModelRequest<'_>) -> (Result<ModelResponse, ModelError>, Vec<Delta>) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            let model = TestModel::new("test");
            let mut deltas = Vec::new();
            let mut stream = match model.stream(*req).await {
                Ok(stream) => stream,
                Err(e) => return (Err(e), deltas),
            };
            let mut assembler = Assembler::default();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.unwrap();
                if let Chunk::Text(text) = &chunk {
                    deltas.push(Delta {
                        content: text.clone(),
                    });
                }
                assembler.add(&chunk);
            }
            (Ok(assembler.finish()), deltas)
        })
    }

    #[test]
    fn names() {
        let m = TestModel::new("test");
        assert_eq!(m.info().id, "test");
        assert_eq!(m.info().provider, "Test");
        assert_eq!(m.info().class_name, "TestModel");
    }

    #[test]
    fn reply_shows_question_instructions_and_history() {
        let messages = [
            msg(
                Role::System,
                "You write very short stories.\nThe robot's name is Anna.",
            ),
            msg(Role::User, "Write me a 5 line story"),
        ];
        let (result, deltas) = run(&request(&messages, false));
        let response = result.unwrap();
        assert_eq!(
            response.content,
            "Test model reply to \"Write me a 5 line story\". Instructions: \"You write very \
             short stories. The robot's name is Anna.\". History: 0 earlier messages."
        );
        assert_eq!(deltas.len(), 1);
        assert_eq!(deltas[0].content, response.content);
        assert_eq!(response.finish_reason.as_deref(), Some("stop"));
    }

    #[test]
    fn counts_history_and_quotes_long_instructions() {
        let long = "word ".repeat(100);
        let messages = [
            msg(Role::System, &long),
            msg(Role::User, "first"),
            msg(Role::Assistant, "answer"),
            msg(Role::User, "second"),
        ];
        let (result, _) = run(&request(&messages, false));
        let text = result.unwrap().content;
        assert!(
            text.starts_with("Test model reply to \"second\"."),
            "{text}"
        );
        assert!(text.ends_with("History: 2 earlier messages."), "{text}");
        assert!(text.contains("word word…\"."), "{text}");

        let one = [
            msg(Role::User, "a"),
            msg(Role::Assistant, "b"),
            msg(Role::User, "c"),
        ];
        let text = run(&request(&one[1..], false)).0.unwrap().content;
        assert!(
            text.contains("No instructions. History: 1 earlier message."),
            "{text}"
        );
    }

    #[test]
    fn streams_an_empty_first_delta_then_word_groups() {
        let messages = [msg(Role::User, "one two three four five")];
        let (result, deltas) = run(&request(&messages, true));
        let response = result.unwrap();
        assert_eq!(deltas[0].content, "");
        assert!(deltas.len() > 3);
        let joined: String = deltas.iter().map(|d| d.content.as_str()).collect();
        assert_eq!(joined, response.content);
        assert!(response.provider_data.is_some());
    }

    #[test]
    fn usage_and_id_are_deterministic() {
        let messages = [
            msg(Role::System, "be brief"),
            msg(Role::User, "hello there"),
        ];
        let a = run(&request(&messages, false)).0.unwrap();
        let b = run(&request(&messages, true)).0.unwrap();
        assert_eq!(a.provider_data, b.provider_data);
        let usage = a.usage.unwrap();
        assert_eq!(usage.input_tokens, 4);
        assert_eq!(usage.output_tokens, word_count(&a.content));
        assert_eq!(usage.total_tokens, usage.input_tokens + usage.output_tokens);
        let id = a.provider_data.unwrap()["id"].as_str().unwrap().to_string();
        assert!(id.starts_with("test-"));
        let other = [msg(Role::User, "something else")];
        let c = run(&request(&other, false)).0.unwrap();
        assert_ne!(c.provider_data.unwrap()["id"], id.as_str());
    }

    #[test]
    fn json_schema_answers_match_the_schema() {
        let schema = json!({
            "type": "object",
            "title": "Story",
            "properties": {
                "title": {"type": "string"},
                "lines": {"type": "array", "items": {"type": "string"}},
                "rating": {"type": "integer"},
                "score": {"type": "number"},
                "done": {"type": "boolean"},
                "mood": {"type": "string", "enum": ["happy", "sad"]},
                "hero": {"$ref": "#/$defs/Hero"},
                "note": {"anyOf": [{"type": "null"}, {"type": "string"}]},
                "tags": {"type": ["array", "null"], "items": {"type": "integer"}}
            },
            "required": ["title", "lines", "extra"],
            "$defs": {"Hero": {"type": "object", "properties": {"name": {"type": "string"}}}}
        });
        let expected = json!({
            "title": "sample title",
            "lines": ["sample lines"],
            "rating": 42,
            "score": 4.2,
            "done": true,
            "mood": "happy",
            "hero": {"name": "sample name"},
            "note": "sample note",
            "tags": [42],
            "extra": "sample extra"
        });
        let messages = [msg(Role::User, "story please")];
        for given in [
            json!({"type": "json_schema", "json_schema": {"name": "Story", "schema": schema}}),
            schema.clone(),
        ] {
            let format = crate::schema::OutputSchema::from_response_format(&given)
                .unwrap()
                .format;
            let mut req = request(&messages, true);
            req.output = Some(&format);
            let content = run(&req).0.unwrap().content;
            assert!(!content.contains('\n'));
            let value: Value = serde_json::from_str(&content).unwrap();
            assert_eq!(value, expected);
        }
    }

    #[test]
    fn json_object_answers_are_objects() {
        let messages = [msg(Role::User, "hi")];
        let mut req = request(&messages, false);
        let format = OutputFormat::JsonObject;
        req.output = Some(&format);
        let content = run(&req).0.unwrap().content;
        let value: Value = serde_json::from_str(&content).unwrap();
        assert!(value["reply"].as_str().unwrap().contains("\"hi\""));
    }

    #[test]
    fn recursive_schemas_terminate() {
        let schema = json!({
            "type": "object",
            "properties": {"child": {"$ref": "#"}}
        });
        let value = sample_value(&schema, "value", &schema, 0);
        assert!(value["child"]["child"].is_object());
    }

    #[test]
    fn error_marker_fails_with_http_500() {
        let messages = [msg(Role::User, "please [test:error] now")];
        match run(&request(&messages, true)) {
            (Err(ModelError::Http { status, message }), deltas) => {
                assert_eq!(status, 500);
                assert_eq!(message, "test model error (HTTP 500)");
                assert!(deltas.is_empty());
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_slow_stream_pauses_between_pieces_and_can_be_dropped() {
        let messages = [msg(Role::User, "a long slow story please [test:slow]")];
        let req = request(&messages, true);
        let model = TestModel::new("test");
        let mut stream = model.stream(req).await.unwrap();
        assert!(matches!(
            stream.next().await,
            Some(Ok(Chunk::ProviderData(_)))
        ));
        let started = Instant::now();
        assert_eq!(
            stream.next().await.unwrap().unwrap(),
            Chunk::Text(String::new())
        );
        assert!(started.elapsed() >= SLOW_CHUNK_DELAY);
        drop(stream);
    }

    fn tools() -> Vec<ToolSpec> {
        let spec = |name: &str, parameters: Value| ToolSpec {
            name: name.into(),
            description: format!("The {name} tool."),
            parameters,
            requires_confirmation: false,
        };
        vec![
            spec(
                "get_weather",
                json!({"type": "object", "properties": {
                    "city": {"type": "string"},
                    "days": {"type": "integer"},
                    "metric": {"type": "boolean"},
                    "scale": {"type": ["number", "null"]}
                }, "required": ["city"]}),
            ),
            spec(
                "word_count",
                json!({"type": "object", "properties": {"text": {"type": "string"}}}),
            ),
            spec("now", json!({})),
        ]
    }

    fn with_tools<'a>(
        messages: &'a [Message],
        tools: &'a [ToolSpec],
        stream: bool,
    ) -> ModelRequest<'a> {
        ModelRequest {
            tools,
            ..request(messages, stream)
        }
    }

    #[test]
    fn naming_a_tool_calls_it_with_sample_arguments() {
        let tools = tools();
        let messages = [
            msg(Role::System, "Be helpful."),
            msg(Role::User, "use get_weather for Berlin"),
        ];
        for stream in [false, true] {
            let (result, deltas) = run(&with_tools(&messages, &tools, stream));
            let response = result.unwrap();
            assert_eq!(
                response.tool_calls,
                [ToolCall {
                    id: "call_test_1".into(),
                    name: "get_weather".into(),
                    arguments: r#"{"city":"sample city","days":42,"metric":true,"scale":4.2}"#
                        .into(),
                }]
            );
            assert_eq!(response.content, "");
            assert_eq!(response.finish_reason.as_deref(), Some("tool_calls"));
            assert_eq!(deltas.len(), 1);
            assert_eq!(deltas[0].content, "");
            assert!(response.usage.unwrap().output_tokens > 0);
        }
    }

    #[test]
    fn key_value_pairs_set_typed_arguments() {
        let tools = tools();
        let messages = [msg(
            Role::User,
            "call get_weather city=\"New York\" days=3 metric=false scale=1.5 other=x, \
             and word_count text=hello.",
        )];
        let calls = run(&with_tools(&messages, &tools, true))
            .0
            .unwrap()
            .tool_calls;
        assert_eq!(calls.len(), 2, "{calls:?}");
        let args: Vec<Value> = calls
            .iter()
            .map(|c| serde_json::from_str(&c.arguments).unwrap())
            .collect();
        assert_eq!(
            args[0],
            json!({"city": "New York", "days": 3, "metric": false, "scale": 1.5})
        );
        assert_eq!(args[1], json!({"text": "hello"}));
        // A value that does not parse as the schema's type stays a string.
        let messages = [msg(Role::User, "get_weather days=many")];
        let call = &run(&with_tools(&messages, &tools, false))
            .0
            .unwrap()
            .tool_calls[0];
        let args: Value = serde_json::from_str(&call.arguments).unwrap();
        assert_eq!(args["days"], "many");
    }

    #[test]
    fn several_names_make_parallel_calls_in_order_of_appearance() {
        let tools = tools();
        let messages = [
            msg(Role::User, "earlier"),
            Message {
                role: Role::Assistant,
                tool_calls: Some(vec![ToolCall {
                    id: "call_test_1".into(),
                    name: "now".into(),
                    arguments: "{}".into(),
                }]),
                ..Message::default()
            },
            msg(
                Role::User,
                "First now, then word_count (not now again), get_weather.",
            ),
        ];
        let calls = run(&with_tools(&messages, &tools, true))
            .0
            .unwrap()
            .tool_calls;
        let got: Vec<(&str, &str, &str)> = calls
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.as_str()))
            .collect();
        assert_eq!(got[0], ("call_test_2", "now", "{}"));
        assert_eq!(
            got[1],
            ("call_test_3", "word_count", r#"{"text":"sample text"}"#)
        );
        assert_eq!(got[2].0, "call_test_4");
        assert_eq!(got[2].1, "get_weather");
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn no_call_without_tools_or_a_name() {
        let tools = tools();
        // Names only count as whole words, and only in the last message.
        let messages = [msg(Role::User, "what is the get_weathers or now_ish")];
        let response = run(&with_tools(&messages, &tools, false)).0.unwrap();
        assert!(response.tool_calls.is_empty());
        assert!(response.content.starts_with("Test model reply to"));
        let messages = [msg(Role::User, "use get_weather")];
        let response = run(&request(&messages, false)).0.unwrap();
        assert!(response.tool_calls.is_empty());
        assert_eq!(response.finish_reason.as_deref(), Some("stop"));
    }

    #[test]
    fn tool_results_are_reported() {
        let tools = tools();
        let tool = |id: &str, name: Option<&str>, content: &str| Message {
            role: Role::Tool,
            content: Some(content.into()),
            tool_call_id: Some(id.into()),
            tool_name: name.map(str::to_string),
            ..Message::default()
        };
        let long = "x ".repeat(300);
        let messages = [
            msg(Role::User, "use get_weather and word_count"),
            Message {
                role: Role::Assistant,
                tool_calls: Some(vec![
                    ToolCall {
                        id: "call_test_1".into(),
                        name: "get_weather".into(),
                        arguments: "{}".into(),
                    },
                    ToolCall {
                        id: "call_test_2".into(),
                        name: "word_count".into(),
                        arguments: "{}".into(),
                    },
                ]),
                ..Message::default()
            },
            tool("call_test_1", Some("get_weather"), "Sunny,\n  21 °C"),
            // The name is found through the call id when the message lacks it.
            tool("call_test_2", None, &long),
        ];
        let (result, deltas) = run(&with_tools(&messages, &tools, true));
        let response = result.unwrap();
        assert!(response.tool_calls.is_empty());
        assert_eq!(response.finish_reason.as_deref(), Some("stop"));
        let expected = format!(
            "Tool results: get_weather: Sunny, 21 °C; word_count: {}….",
            "x ".repeat(100).trim_end()
        );
        assert_eq!(response.content, expected);
        let joined: String = deltas.iter().map(|d| d.content.as_str()).collect();
        assert_eq!(joined, expected);

        let one = run(&request(&messages[..3], false)).0.unwrap();
        assert_eq!(one.content, "Tool results: get_weather: Sunny, 21 °C.");
        assert_ne!(one.provider_data, response.provider_data);
    }

    #[test]
    fn key_value_parsing() {
        assert_eq!(
            key_value_pairs("a=1, b='x y' c=\"q\" =skip d=end."),
            [
                ("a".to_string(), "1".to_string()),
                ("b".into(), "x y".into()),
                ("c".into(), "q".into()),
                ("d".into(), "end".into()),
            ]
        );
        assert_eq!(
            key_value_pairs("open=\"unclosed"),
            [("open".to_string(), "unclosed".to_string())]
        );
        assert!(key_value_pairs("no pairs").is_empty());
    }

    #[test]
    fn word_groups_round_trip() {
        let text = "  a b  c\nd e f g ";
        let groups = word_groups(text, 3);
        assert_eq!(groups.concat(), text);
        assert_eq!(groups.len(), 3);
        assert!(word_groups("", 3).is_empty());
    }
}
