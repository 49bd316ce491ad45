//! A fake of Anthropic's Messages API (`POST /v1/messages`), served by the fake model
//! server of `fake_model.rs` (same port, same request log, keep-alive connections).
//!
//! It checks what the real API checks where agentos could get it wrong, and answers 400
//! `invalid_request_error` otherwise: the `x-api-key` ([`API_KEY`]; 401 when wrong) and
//! `anthropic-version: 2023-06-01` headers, a `max_tokens`, no `system` role inside
//! `messages`, turns alternating from `user`, `tool_result` blocks only in user turns and
//! answering the `tool_use` blocks of the turn before, and — when `thinking` is on — the
//! signed thinking block it sent back unchanged at the start of an assistant turn that
//! calls tools.
//!
//! What it answers is chosen by words in the last user turn's text:
//!
//! - `badrequest`: HTTP 400 `invalid_request_error` (`fake invalid request`);
//! - `busy`: the first request with that text gets HTTP 529 `overloaded_error`
//!   (`retry-after: 0`), the next ones an answer;
//! - `overloaded`: the first request with that text gets a 200 stream that sends
//!   `message_start`, a `ping` and then an `error` event (`overloaded_error`), before any
//!   content; the next ones an answer;
//! - `midstream`: streams `partial ` and then an `error` event (`api_error`, `fake
//!   failure mid-stream`);
//! - a tool named in the text (when `tools` are offered and `tool_choice` is not `none`):
//!   one `tool_use` block per tool named (as the OpenAI fake picks them), its input
//!   streamed as `input_json_delta` pieces (an empty one for a tool without properties);
//! - after tool results: `Tool result received: <contents joined by "; ">`;
//! - with `output_config.format`: the schema's sample object, as JSON text;
//! - otherwise `Claude story for '<text>'.` (plus ` Starring <robot>.` from the system
//!   prompt, as the OpenAI fake).
//!
//! With `thinking` on, every answer starts with a thinking block `Thinking about
//! '<text>'.` signed `sig-<n>`; `redacted` in the text adds a `redacted_thinking` block.
//! Usage: 20 input tokens, the output pieces as output tokens, and with any
//! `cache_control` in the request 50 cache-read and 10 cache-write tokens. Streams are
//! `event:`/`data:` pairs with `ping`s between blocks, one HTTP chunk per event.

#![allow(dead_code)]

use std::net::TcpStream;

use serde_json::{Map, Value, json};

use crate::fake_model::{
    has_word, sample_from_schema, story_for, tool_calls_for, write_chunk, write_head, write_json,
};

/// The key the fake accepts in `x-api-key`.
pub const API_KEY: &str = "test-anthropic-key";

/// Answers one Messages request. `seen` counts how often a text was seen (this time
/// included), for misbehaviours that happen once.
pub(crate) fn respond(
    stream: &mut TcpStream,
    body: &Value,
    headers: &[(String, String)],
    seen: &dyn Fn(&str) -> u32,
) -> std::io::Result<()> {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if header("x-api-key") != Some(API_KEY) {
        return error(stream, 401, "authentication_error", "invalid x-api-key");
    }
    if let Err(problem) = check(body, header("anthropic-version")) {
        return error(stream, 400, "invalid_request_error", &problem);
    }
    let turns = turns(body);
    let last = turns.last().cloned().unwrap_or(Value::Null);
    let results = tool_results(&last);
    let text = if results.is_empty() {
        user_text(&last)
    } else {
        String::new()
    };
    let word = |w: &str| has_word(&text, w);
    let stream_wanted = body.get("stream").and_then(Value::as_bool) == Some(true);

    if word("badrequest") {
        return error(stream, 400, "invalid_request_error", "fake invalid request");
    }
    if word("busy") && seen(&format!("busy:{text}")) == 1 {
        let body = json!({"type": "error",
                          "error": {"type": "overloaded_error", "message": "Overloaded"}});
        return write_json(stream, 529, &[("retry-after", "0")], &body);
    }

    let mut blocks: Vec<Value> = Vec::new();
    if body.get("thinking").is_some() {
        let thinking = format!("Thinking about '{text}'.");
        let signature = format!("sig-{}", thinking.len());
        blocks.push(json!({"type": "thinking", "thinking": thinking, "signature": signature}));
        if word("redacted") {
            blocks.push(json!({"type": "redacted_thinking", "data": "ENCRYPTED"}));
        }
    }
    let calls = if results.is_empty() && tools_allowed(body) {
        tool_calls_for(&as_openai(body), &text)
    } else {
        Vec::new()
    };
    let answer = if !results.is_empty() {
        format!("Tool result received: {}", results.join("; "))
    } else if let Some(schema) = body.pointer("/output_config/format/schema") {
        let defs = schema
            .get("$defs")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        sample_from_schema(schema, "Answer", &defs).to_string()
    } else {
        format!("Claude {}", story_for(&text, &system(body)))
    };
    if calls.is_empty() {
        blocks.push(json!({"type": "text", "text": answer}));
    }
    for (i, (name, input)) in calls.iter().enumerate() {
        blocks.push(
            json!({"type": "tool_use", "id": format!("toolu_{i}"), "name": name,
                           "input": input}),
        );
    }
    let stop_reason = if calls.is_empty() {
        "end_turn"
    } else {
        "tool_use"
    };
    let cached = body.to_string().contains("cache_control");
    let usage = |output: usize| {
        let mut usage = json!({"input_tokens": 20, "output_tokens": output});
        if cached {
            usage["cache_read_input_tokens"] = json!(50);
            usage["cache_creation_input_tokens"] = json!(10);
        }
        usage
    };
    let message_id = format!("msg_fake_{}", turns.len());

    if !stream_wanted {
        let output = blocks.len();
        return write_json(
            stream,
            200,
            &[],
            &json!({"id": message_id, "type": "message", "role": "assistant",
                    "model": body["model"], "content": blocks, "stop_reason": stop_reason,
                    "usage": usage(output)}),
        );
    }

    write_head(
        stream,
        200,
        &[
            ("Content-Type", "text/event-stream"),
            ("Transfer-Encoding", "chunked"),
        ],
    )?;
    let mut start_usage = usage(1);
    start_usage["output_tokens"] = json!(1);
    event(
        stream,
        &json!({"type": "message_start", "message": {"id": message_id, "type": "message",
                "role": "assistant", "content": [], "model": body["model"],
                "stop_reason": null, "usage": start_usage}}),
    )?;
    event(stream, &json!({"type": "ping"}))?;
    if word("overloaded") && seen(&format!("overloaded:{text}")) == 1 {
        event(
            stream,
            &json!({"type": "error",
                    "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        )?;
        return write_chunk(stream, b"");
    }
    if word("midstream") {
        event(
            stream,
            &json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}}),
        )?;
        event(
            stream,
            &json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": "partial "}}),
        )?;
        event(
            stream,
            &json!({"type": "error",
                    "error": {"type": "api_error", "message": "fake failure mid-stream"}}),
        )?;
        return write_chunk(stream, b"");
    }
    let mut pieces = 0;
    for (index, block) in blocks.iter().enumerate() {
        pieces += stream_block(stream, index, block)?;
        event(stream, &json!({"type": "ping"}))?;
    }
    event(
        stream,
        &json!({"type": "message_delta", "delta": {"stop_reason": stop_reason,
                "stop_sequence": null}, "usage": {"output_tokens": pieces}}),
    )?;
    event(stream, &json!({"type": "message_stop"}))?;
    write_chunk(stream, b"")
}

/// Streams one content block as the API does; returns how many deltas it took.
fn stream_block(stream: &mut TcpStream, index: usize, block: &Value) -> std::io::Result<usize> {
    let kind = block["type"].as_str().unwrap_or("");
    let start = match kind {
        "text" => json!({"type": "text", "text": ""}),
        "thinking" => json!({"type": "thinking", "thinking": ""}),
        "tool_use" => json!({"type": "tool_use", "id": block["id"], "name": block["name"],
                             "input": {}}),
        _ => block.clone(),
    };
    event(
        stream,
        &json!({"type": "content_block_start", "index": index, "content_block": start}),
    )?;
    let deltas: Vec<Value> = match kind {
        "text" => thirds(block["text"].as_str().unwrap_or(""))
            .into_iter()
            .map(|t| json!({"type": "text_delta", "text": t}))
            .collect(),
        "thinking" => {
            let mut d: Vec<Value> = thirds(block["thinking"].as_str().unwrap_or(""))
                .into_iter()
                .map(|t| json!({"type": "thinking_delta", "thinking": t}))
                .collect();
            d.push(json!({"type": "signature_delta", "signature": block["signature"]}));
            d
        }
        "tool_use" => {
            let input = &block["input"];
            let text = if input.as_object().is_some_and(Map::is_empty) {
                String::new()
            } else {
                input.to_string()
            };
            let pieces = if text.is_empty() {
                vec![String::new()]
            } else {
                thirds(&text)
            };
            pieces
                .into_iter()
                .map(|t| json!({"type": "input_json_delta", "partial_json": t}))
                .collect()
        }
        _ => Vec::new(),
    };
    for delta in &deltas {
        event(
            stream,
            &json!({"type": "content_block_delta", "index": index, "delta": delta}),
        )?;
    }
    event(
        stream,
        &json!({"type": "content_block_stop", "index": index}),
    )?;
    Ok(deltas.len())
}

/// `text` in three pieces (split on character boundaries).
fn thirds(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let size = chars.len().div_ceil(3).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

fn event(stream: &mut TcpStream, data: &Value) -> std::io::Result<()> {
    let kind = data["type"].as_str().unwrap_or("message");
    write_chunk(
        stream,
        format!("event: {kind}\ndata: {data}\n\n").as_bytes(),
    )
}

fn error(stream: &mut TcpStream, status: u16, kind: &str, message: &str) -> std::io::Result<()> {
    write_json(
        stream,
        status,
        &[],
        &json!({"type": "error", "error": {"type": kind, "message": message}}),
    )
}

/// The request's turns.
pub fn turns(body: &Value) -> Vec<Value> {
    body.get("messages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The blocks of a turn (a plain string content is one text block).
pub fn blocks(turn: &Value) -> Vec<Value> {
    match turn.get("content") {
        Some(Value::String(text)) => vec![json!({"type": "text", "text": text})],
        Some(Value::Array(blocks)) => blocks.clone(),
        _ => Vec::new(),
    }
}

fn of_type(turn: &Value, kind: &str) -> Vec<Value> {
    blocks(turn)
        .into_iter()
        .filter(|b| b["type"] == kind)
        .collect()
}

/// The text blocks of a user turn, joined with spaces.
fn user_text(turn: &Value) -> String {
    of_type(turn, "text")
        .iter()
        .filter_map(|b| b["text"].as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

fn tool_results(turn: &Value) -> Vec<String> {
    of_type(turn, "tool_result")
        .iter()
        .map(|b| match &b["content"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

/// The system prompt, from a string or text blocks.
pub fn system(body: &Value) -> String {
    match body.get("system") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn tools_allowed(body: &Value) -> bool {
    body.get("tools").is_some() && body.pointer("/tool_choice/type") != Some(&json!("none"))
}

/// The request in the OpenAI shape the OpenAI fake's tool picking reads.
fn as_openai(body: &Value) -> Value {
    let tools: Vec<Value> = body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|t| {
            json!({"type": "function", "function": {"name": t["name"],
                   "parameters": t["input_schema"]}})
        })
        .collect();
    json!({"tools": tools, "messages": [{"role": "system", "content": system(body)}]})
}

/// What the real API refuses and agentos must never send.
fn check(body: &Value, version: Option<&str>) -> Result<(), String> {
    if version != Some("2023-06-01") {
        return Err(format!(
            "anthropic-version: expected 2023-06-01, got {version:?}"
        ));
    }
    if !body.get("max_tokens").is_some_and(Value::is_u64) {
        return Err("max_tokens: field required".into());
    }
    let turns = turns(body);
    let mut expected = "user";
    let mut pending_calls: Vec<String> = Vec::new();
    let thinking = body.get("thinking").is_some();
    for (i, turn) in turns.iter().enumerate() {
        let role = turn["role"].as_str().unwrap_or("");
        if role != expected {
            return Err(format!(
                "messages.{i}: expected role {expected}, got {role}"
            ));
        }
        let blocks = blocks(turn);
        if blocks.is_empty() {
            return Err(format!("messages.{i}: content must not be empty"));
        }
        for block in &blocks {
            if block["type"] == "text" && block["text"].as_str().is_none_or(str::is_empty) {
                return Err(format!(
                    "messages.{i}: text content blocks must be non-empty"
                ));
            }
        }
        if role == "user" {
            let answered: Vec<String> = of_type(turn, "tool_result")
                .iter()
                .filter_map(|b| b["tool_use_id"].as_str().map(str::to_string))
                .collect();
            if answered != pending_calls {
                return Err(format!(
                    "messages.{i}: tool_result blocks {answered:?} do not answer the tool_use \
                     blocks {pending_calls:?} of the previous turn"
                ));
            }
            pending_calls.clear();
            expected = "assistant";
        } else {
            if !of_type(turn, "tool_result").is_empty() {
                return Err(format!("messages.{i}: tool_result in an assistant turn"));
            }
            pending_calls = of_type(turn, "tool_use")
                .iter()
                .filter_map(|b| b["id"].as_str().map(str::to_string))
                .collect();
            let last_turn_with_calls = !pending_calls.is_empty() && i + 2 >= turns.len();
            if thinking && last_turn_with_calls {
                let first = &blocks[0];
                let signed = first["type"] == "thinking"
                    && first["signature"].as_str()
                        == Some(&format!(
                            "sig-{}",
                            first["thinking"].as_str().unwrap_or("").len()
                        ));
                if !signed {
                    return Err(format!(
                        "messages.{i}.content.0: expected `thinking` or `redacted_thinking`, \
                         but found `{}`. When `thinking` is enabled, a final `assistant` \
                         message must start with a thinking block",
                        first["type"].as_str().unwrap_or("")
                    ));
                }
            }
            expected = "user";
        }
    }
    if expected != "assistant" {
        return Err("the last turn must be the user's".into());
    }
    Ok(())
}
