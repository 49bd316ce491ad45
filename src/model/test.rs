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
//! - With a `response_format` (`{"type":"json_schema","json_schema":{"schema":…}}` or a
//!   plain JSON Schema object) the answer is compact JSON valid for the schema: strings
//!   are `"sample <property>"`, integers `42`, numbers `4.2`, booleans `true`, arrays have
//!   one item, enums take their first value, and every property is present. With
//!   `{"type":"json_object"}` it is `{"reply":"<the text answer>"}`.
//! - Streaming delivers an empty delta first (like a provider's role-only chunk), then
//!   the answer in groups of a few words.
//! - Usage counts whitespace-separated words: input over all messages, output over the
//!   answer. `provider_data` is `{"id":"test-<hash of the input>"}`.
//!
//! Markers in the user message change its behaviour, for trying out error handling and
//! cancellation:
//! - `[test:error]` fails with HTTP 500 `test model error (HTTP 500)`;
//! - `[test:slow]` waits about 200 ms before each chunk (cancellation still interrupts
//!   it at once).

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::cancel::CancelToken;
use crate::model::openai::sleep_unless_cancelled;
use crate::model::{Delta, Model, ModelError, ModelRequest, ModelResponse, Usage};
use crate::run::{Message, Role};

/// Marker that makes the test model fail with HTTP 500.
pub const ERROR_MARKER: &str = "[test:error]";
/// Marker that makes the test model pause between chunks.
pub const SLOW_MARKER: &str = "[test:slow]";

const SLOW_CHUNK_DELAY: Duration = Duration::from_millis(200);
const WORDS_PER_CHUNK: usize = 3;
const INSTRUCTIONS_QUOTE_CHARS: usize = 200;
const USER_QUOTE_CHARS: usize = 500;
/// Schema nesting followed before giving up (guards against recursive `$ref`s).
const MAX_SCHEMA_DEPTH: usize = 12;

/// The built-in offline model.
pub struct TestModel {
    id: String,
}

impl TestModel {
    pub fn new(model: &str) -> Self {
        TestModel {
            id: model.to_string(),
        }
    }
}

impl Model for TestModel {
    fn id(&self) -> &str {
        &self.id
    }

    fn provider(&self) -> &str {
        "Test"
    }

    fn invoke(
        &self,
        request: &ModelRequest<'_>,
        cancel: &CancelToken,
        on_delta: &mut dyn FnMut(&Delta),
    ) -> Result<ModelResponse, ModelError> {
        if cancel.is_cancelled() {
            return Err(ModelError::Cancelled);
        }
        let user = last_user_text(request.messages);
        if user.contains(ERROR_MARKER) {
            return Err(ModelError::Http {
                status: 500,
                message: "test model error (HTTP 500)".into(),
            });
        }
        let slow = user.contains(SLOW_MARKER);

        let text = reply_text(request.messages);
        let content = match &request.response_format {
            Some(format) => structured_reply(format, &text),
            None => text,
        };
        let provider_data = json!({ "id": format!("test-{:016x}", input_hash(request)) });
        let input_tokens = request
            .messages
            .iter()
            .map(|m| word_count(m.content.as_deref().unwrap_or("")))
            .sum::<u64>();
        let output_tokens = word_count(&content);

        let pieces = if request.stream {
            let mut pieces = vec![String::new()];
            pieces.extend(word_groups(&content, WORDS_PER_CHUNK));
            pieces
        } else {
            vec![content.clone()]
        };
        for piece in pieces {
            if slow && !sleep_unless_cancelled(cancel, SLOW_CHUNK_DELAY) {
                return Err(ModelError::Cancelled);
            }
            if cancel.is_cancelled() {
                return Err(ModelError::Cancelled);
            }
            on_delta(&Delta {
                content: piece,
                provider_data: Some(provider_data.clone()),
            });
        }

        Ok(ModelResponse {
            content,
            provider_data: Some(provider_data),
            usage: Some(Usage {
                input_tokens,
                output_tokens,
                total_tokens: input_tokens + output_tokens,
                ..Usage::default()
            }),
            finish_reason: Some("stop".into()),
            tool_calls: Vec::new(),
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

/// JSON text for a `response_format`; the text answer when the format is not understood.
fn structured_reply(format: &Value, text: &str) -> String {
    let schema = match format.get("type").and_then(Value::as_str) {
        Some("json_object") => return json!({ "reply": text }).to_string(),
        Some("json_schema") => format
            .get("json_schema")
            .and_then(|j| j.get("schema"))
            .unwrap_or(&Value::Null),
        _ => format,
    };
    if !schema.is_object() {
        return json!({ "reply": text }).to_string();
    }
    sample_value(schema, "value", schema, 0).to_string()
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
    }
    if let Some(format) = &request.response_format {
        feed(format.to_string().as_bytes());
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Instant;

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
            response_format: None,
            stream,
            tools: &[],
        }
    }

    fn run(req: &ModelRequest<'_>) -> (Result<ModelResponse, ModelError>, Vec<Delta>) {
        let mut deltas = Vec::new();
        let result = TestModel::new("test")
            .invoke(req, &CancelToken::new(), &mut |d| deltas.push(d.clone()));
        (result, deltas)
    }

    #[test]
    fn names() {
        let m = TestModel::new("test");
        assert_eq!(m.id(), "test");
        assert_eq!(m.provider(), "Test");
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
        assert!(
            deltas
                .iter()
                .all(|d| d.provider_data == response.provider_data)
        );
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
        for format in [
            json!({"type": "json_schema", "json_schema": {"name": "Story", "schema": schema}}),
            schema.clone(),
        ] {
            let mut req = request(&messages, true);
            req.response_format = Some(format);
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
        req.response_format = Some(json!({"type": "json_object"}));
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

    #[test]
    fn cancel_stops_a_slow_stream_promptly() {
        let messages = [msg(Role::User, "a long slow story please [test:slow]")];
        let req = request(&messages, true);
        let cancel = CancelToken::new();
        let (tx, rx) = mpsc::channel();
        let canceller = cancel.clone();
        std::thread::spawn(move || {
            let _ = rx.recv();
            std::thread::sleep(Duration::from_millis(50));
            canceller.cancel();
        });
        let mut deltas = 0;
        let started = Instant::now();
        let result = TestModel::new("test").invoke(&req, &cancel, &mut |_| {
            deltas += 1;
            let _ = tx.send(());
        });
        assert!(matches!(result, Err(ModelError::Cancelled)), "{result:?}");
        assert_eq!(deltas, 1);
        assert!(started.elapsed() < Duration::from_secs(1));

        let cancelled = CancelToken::new();
        cancelled.cancel();
        let result = TestModel::new("test").invoke(&req, &cancelled, &mut |_| {});
        assert!(matches!(result, Err(ModelError::Cancelled)));
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
