//! How run objects are written into a row and read back, the same for every backend.
//!
//! - Each text once: [`pack`] leaves out a run's `content` that is also its last
//!   assistant message, and an event's `content` that is the run's; [`unpack`] puts them
//!   back.
//! - Rows that cannot be decoded are reported and skipped ([`decode_or_report`]), never a
//!   failure of the whole read; JSON nesting past serde_json's default limit, which older
//!   rows may hold, is still read ([`decode`]).
//!
//! Stored run JSON is the `RunOutput` serde form; fields added later must therefore be
//! optional (`#[serde(default)]`) so older rows still load.

use serde_json::Value;

use super::StoreResult;
use crate::run::{AnyRun, RunRecord};

/// The key that stands for a run's `content` (or an event's) left out of its row.
const CONTENT_FROM: &str = "_content_from";

/// A run object and its events as stored, with the answer's text once. A run's `content`
/// that is also the text of its last assistant message is left out of the object (marked
/// `"_content_from": "message"`); an event's `content` that is the run's own content is
/// left out of the event (`"_content_from": "run"`). [`unpack`] puts both back. Without
/// this a long answer was stored three or four times in its row.
pub(super) fn pack(run: &impl RunRecord, events: &[Value]) -> StoreResult<(String, String)> {
    let mut object = serde_json::to_value(run)?;
    let content = object
        .get("content")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(text) = &content
        && last_assistant_text(&object) == Some(text.as_str())
        && let Some(map) = object.as_object_mut()
    {
        map.remove("content");
        map.insert(CONTENT_FROM.into(), Value::String("message".into()));
    }
    let events = match &content {
        Some(text)
            if !text.is_empty()
                && events
                    .iter()
                    .any(|e| e.get("content").and_then(Value::as_str) == Some(text)) =>
        {
            let packed: Vec<Value> = events
                .iter()
                .map(|event| {
                    let mut event = event.clone();
                    if event.get("content").and_then(Value::as_str) == Some(text.as_str())
                        && let Some(map) = event.as_object_mut()
                    {
                        map.remove("content");
                        map.insert(CONTENT_FROM.into(), Value::String("run".into()));
                    }
                    event
                })
                .collect();
            serde_json::to_string(&packed)?
        }
        _ => serde_json::to_string(events)?,
    };
    Ok((serde_json::to_string(&object)?, events))
}

/// The text of the last assistant message of a run object.
fn last_assistant_text(run: &Value) -> Option<&str> {
    run.get("messages")?
        .as_array()?
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))?
        .get("content")?
        .as_str()
}

/// Undoes [`pack`]: the run object and its events as they were given to the store.
pub(super) fn unpack(run_text: &str, events_text: &str, id: &str) -> Option<(AnyRun, Vec<Value>)> {
    let marked = run_text.contains(CONTENT_FROM) || events_text.contains(CONTENT_FROM);
    if !marked {
        let run = decode_or_report(run_text, "run", id)?;
        let events = decode_or_report(events_text, "the events of run", id).unwrap_or_default();
        return Some((run, events));
    }
    let mut object: Value = decode_or_report(run_text, "run", id)?;
    let mut content = object.get("content").cloned();
    if let Some(map) = object.as_object_mut()
        && map.get(CONTENT_FROM).and_then(Value::as_str) == Some("message")
    {
        map.remove(CONTENT_FROM);
        content = last_assistant_text(&Value::Object(map.clone())).map(|t| Value::String(t.into()));
        if let Some(text) = &content {
            map.insert("content".into(), text.clone());
        }
    }
    let mut events: Vec<Value> =
        decode_or_report(events_text, "the events of run", id).unwrap_or_default();
    for event in &mut events {
        if let Some(map) = event.as_object_mut()
            && map.get(CONTENT_FROM).and_then(Value::as_str) == Some("run")
        {
            map.remove(CONTENT_FROM);
            if let Some(text) = &content {
                map.insert("content".into(), text.clone());
            }
        }
    }
    match serde_json::from_value(object) {
        Ok(run) => Some((run, events)),
        Err(err) => {
            tracing::warn!("run {id} could not be decoded and is left out: {err}");
            None
        }
    }
}

/// The deepest JSON [`decode`] reads. Values agentos accepts nest at most
/// [`crate::limits::MAX_JSON_DEPTH`] levels, embedded a few levels down in a run object;
/// rows written before that limit existed may be deeper than serde_json's default 128.
const MAX_READ_DEPTH: usize = 512;

/// Decodes JSON the store wrote. Text nesting past serde_json's default limit is read with
/// the limit lifted, after a scan without recursion has shown it nests at most
/// [`MAX_READ_DEPTH`] levels (a few hundred stack frames).
pub(super) fn decode<T: serde::de::DeserializeOwned>(text: &str) -> serde_json::Result<T> {
    match serde_json::from_str(text) {
        Err(err) => {
            // serde_json's own limit is 128 levels: anything shallower failed for another
            // reason.
            if !(128..=MAX_READ_DEPTH).contains(&crate::limits::text_depth(text)) {
                return Err(err);
            }
            let mut de = serde_json::Deserializer::from_str(text);
            de.disable_recursion_limit();
            let value = T::deserialize(&mut de)?;
            de.end()?;
            Ok(value)
        }
        other => other,
    }
}

/// [`decode`], reporting a value that cannot be decoded (what it is and its id) on stderr
/// and giving `None`, so readers skip that row and keep serving the others.
pub(super) fn decode_or_report<T: serde::de::DeserializeOwned>(
    text: &str,
    what: &str,
    id: &str,
) -> Option<T> {
    match decode(text) {
        Ok(value) => Some(value),
        Err(err) => {
            tracing::warn!("{what} {id} could not be decoded and is left out: {err}");
            None
        }
    }
}
