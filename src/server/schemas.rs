//! The JSON shapes of the session endpoints: session lists and details, run schemas,
//! run previews and the polled run object.
//!
//! Everything here is pure: it turns store rows into `serde_json` values and does no I/O,
//! so every shape is unit-tested against the AgentOS captures.
//!
//! # Compatibility
//!
//! Key order and null handling follow AgentOS (agno 3.1.10) exactly, because clients
//! compare and display these objects as they come:
//!
//! * timestamps are ISO-8601 UTC strings (`2026-11-29T01:18:20Z`), except inside stored
//!   run objects and messages, which keep integer seconds;
//! * every schema is built with all its keys, `null` included; the endpoints that answer
//!   without nulls drop the top-level ones with [`drop_nulls`] (pydantic's
//!   `response_model_exclude_none`), the others (`PATCH`, rename, single runs, agent run
//!   lists) keep them;
//! * session metrics are the sum of the metrics of every run of the session, member runs
//!   included, with zero counts left out, as AgentOS accumulates them;
//! * agent, team and workflow runs each have their own schema (`RunSchema`,
//!   `TeamRunSchema`, `WorkflowRunSchema`), and their stored objects their own key order.

use crate::kind::Kind;
use serde_json::{Map, Value, json};

use crate::config::{Config, WorkflowDef};
use crate::model;
use crate::run::{AnyRun, Role, RunRecord};
use crate::store::{Session, StoredRun};

/// Longest `run_input` / `content_preview` of a run preview, in characters.
pub const PREVIEW_CHARS: usize = 280;

/// Token counters of AgentOS metrics, in the order AgentOS writes them.
const TOKEN_KEYS: [&str; 9] = [
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "audio_input_tokens",
    "audio_output_tokens",
    "audio_total_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
];

/// Unix seconds as ISO-8601 UTC with second precision: `2026-11-29T01:18:20Z`.
pub fn iso8601(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both are small and positive by construction.
    (year, month as u32, day as u32)
}

/// Removes the top-level `null` members of an object (other values pass through).
pub fn drop_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.into_iter().filter(|(_, v)| !v.is_null()).collect())
        }
        other => other,
    }
}

/// The name a session is shown with: its stored name, else the input of its first
/// top-level run, else "". `runs` are the session's runs, oldest first.
pub fn session_display_name(session: &Session, runs: &[StoredRun]) -> String {
    if let Some(name) = session.session_name.as_deref().filter(|n| !n.is_empty()) {
        return name.to_string();
    }
    runs.iter()
        .find(|r| r.run.parent_run_id().is_none())
        .map(|r| r.run.input_content().to_string())
        .unwrap_or_default()
}

/// The session's metrics, summed over all its runs; `None` for a session without runs
/// (AgentOS has no `session_metrics` until the first run is stored).
pub fn session_metrics(runs: &[StoredRun]) -> Option<Value> {
    if runs.is_empty() {
        return None;
    }
    let mut totals = [0u64; TOKEN_KEYS.len()];
    let mut cost: Option<f64> = None;
    // model type -> entries keyed by (provider, id), in first-seen order.
    let mut details: Vec<(String, Vec<Map<String, Value>>)> = Vec::new();
    for stored in runs {
        let Ok(Value::Object(metrics)) = serde_json::to_value(stored.run.metrics()) else {
            continue;
        };
        add_tokens(&mut totals, &mut cost, &metrics);
        let Some(Value::Object(run_details)) = metrics.get("details") else {
            continue;
        };
        for (model_type, entries) in run_details {
            let Some(entries) = entries.as_array() else {
                continue;
            };
            let slot = match details.iter().position(|(t, _)| t == model_type) {
                Some(i) => i,
                None => {
                    details.push((model_type.clone(), Vec::new()));
                    details.len() - 1
                }
            };
            for entry in entries.iter().filter_map(Value::as_object) {
                merge_model_entry(&mut details[slot].1, entry);
            }
        }
    }

    let mut out = Map::new();
    put_tokens(&mut out, &totals, cost);
    let details: Map<String, Value> = details
        .into_iter()
        .map(|(model_type, entries)| {
            let entries = entries.iter().map(render_model_entry).collect();
            (model_type, Value::Array(entries))
        })
        .collect();
    if !details.is_empty() {
        out.insert("details".into(), Value::Object(details));
    }
    Some(Value::Object(out))
}

fn add_tokens(
    totals: &mut [u64; TOKEN_KEYS.len()],
    cost: &mut Option<f64>,
    m: &Map<String, Value>,
) {
    for (total, key) in totals.iter_mut().zip(TOKEN_KEYS) {
        *total += m.get(key).and_then(Value::as_u64).unwrap_or(0);
    }
    if let Some(c) = m.get("cost").and_then(Value::as_f64) {
        *cost = Some(cost.unwrap_or(0.0) + c);
    }
}

fn put_tokens(out: &mut Map<String, Value>, totals: &[u64; TOKEN_KEYS.len()], cost: Option<f64>) {
    for (key, total) in TOKEN_KEYS.iter().zip(totals) {
        if *total != 0 {
            out.insert((*key).into(), json!(total));
        }
    }
    if let Some(cost) = cost {
        out.insert("cost".into(), json!(cost));
    }
}

/// Adds one run's per-model figures to the session's entry for the same provider and id.
fn merge_model_entry(entries: &mut Vec<Map<String, Value>>, entry: &Map<String, Value>) {
    let key = |e: &Map<String, Value>| {
        (
            e.get("provider")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            e.get("id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        )
    };
    let wanted = key(entry);
    match entries.iter_mut().find(|e| key(e) == wanted) {
        Some(existing) => {
            for token in TOKEN_KEYS {
                let sum = existing.get(token).and_then(Value::as_u64).unwrap_or(0)
                    + entry.get(token).and_then(Value::as_u64).unwrap_or(0);
                existing.insert(token.into(), json!(sum));
            }
            if let Some(c) = entry.get("cost").and_then(Value::as_f64) {
                let sum = existing.get("cost").and_then(Value::as_f64).unwrap_or(0.0) + c;
                existing.insert("cost".into(), json!(sum));
            }
        }
        None => entries.push(entry.clone()),
    }
}

/// A session-level model entry: token counters (zeros left out), cost, id, provider.
fn render_model_entry(entry: &Map<String, Value>) -> Value {
    let mut out = Map::new();
    let mut totals = [0u64; TOKEN_KEYS.len()];
    let mut cost = None;
    add_tokens(&mut totals, &mut cost, entry);
    put_tokens(&mut out, &totals, cost);
    for key in ["id", "provider"] {
        if let Some(v) = entry
            .get(key)
            .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
        {
            out.insert(key.into(), v.clone());
        }
    }
    Value::Object(out)
}

/// The `total_tokens` a session schema reports: the metric's value, absent when zero.
fn total_tokens(metrics: Option<&Value>) -> Value {
    metrics
        .and_then(|m| m.get("total_tokens"))
        .cloned()
        .unwrap_or(Value::Null)
}

fn opt_str(value: Option<&str>) -> Value {
    value.map_or(Value::Null, |s| Value::String(s.to_string()))
}

/// The agent, team or workflow id of a session, `null` when it has none.
fn component(session: &Session) -> Value {
    opt_str(Some(session.component_id.as_str()).filter(|c| !c.is_empty()))
}

/// `session_data.summary`, where session summaries are kept.
fn session_summary(session: &Session) -> Value {
    session
        .session_data
        .as_ref()
        .and_then(|d| d.get("summary"))
        .filter(|s| !s.is_null())
        .cloned()
        .unwrap_or(Value::Null)
}

/// One entry of `GET /sessions` (`SessionSchema`), with nulls.
pub fn session_list_item(session: &Session, display_name: &str, metrics: Option<&Value>) -> Value {
    let id_key = match session.session_type {
        Kind::Agent => "agent_id",
        Kind::Team => "team_id",
        Kind::Workflow => "workflow_id",
    };
    let mut out = Map::new();
    out.insert("session_id".into(), json!(session.session_id));
    out.insert("session_name".into(), json!(display_name));
    out.insert("session_state".into(), session.session_state.clone());
    out.insert("created_at".into(), json!(iso8601(session.created_at)));
    out.insert("updated_at".into(), json!(iso8601(session.updated_at)));
    out.insert("session_type".into(), json!(session.session_type.as_str()));
    out.insert("user_id".into(), opt_str(session.user_id.as_deref()));
    for key in ["agent_id", "team_id", "workflow_id"] {
        let value = if key == id_key {
            component(session)
        } else {
            Value::Null
        };
        out.insert(key.into(), value);
    }
    out.insert("session_summary".into(), session_summary(session));
    out.insert("metrics".into(), metrics.cloned().unwrap_or(Value::Null));
    out.insert("total_tokens".into(), total_tokens(metrics));
    out.insert("metadata".into(), session_metadata(session));
    Value::Object(out)
}

/// A session's metadata; a workflow session always has an object (AgentOS stores `{}`).
fn session_metadata(session: &Session) -> Value {
    match (&session.metadata, session.session_type) {
        (Some(metadata), _) => metadata.clone(),
        (None, Kind::Workflow) => json!({}),
        (None, _) => Value::Null,
    }
}

/// User and assistant messages of the session's top-level runs, oldest first, without
/// messages a run carried over from history (AgentOS `get_chat_history`).
pub fn chat_history(runs: &[StoredRun]) -> Vec<Value> {
    runs.iter()
        .filter(|r| r.run.parent_run_id().is_none())
        .flat_map(|r| r.run.messages().iter())
        .filter(|m| !m.from_history && !matches!(m.role, Role::System | Role::Tool))
        .filter_map(|m| serde_json::to_value(m).ok())
        .collect()
}

/// The class name AgentOS reports for the model a stored run names, as the configured
/// provider that reports this name describes it; the provider name when none does.
fn model_class_name(config: &Config, provider: &str, model: &str) -> String {
    model::describe_reported(config, provider, model)
        .map_or_else(|| provider.to_string(), |info| info.class_name)
}

/// `agent_data` as AgentOS stores it with each run: the agent and model of the latest
/// top-level run; `null` for a session without runs.
fn agent_data(config: &Config, runs: &[StoredRun]) -> Value {
    let Some(AnyRun::Agent(run)) = runs
        .iter()
        .rev()
        .find(|r| r.run.parent_run_id().is_none())
        .map(|r| &r.run)
    else {
        return Value::Null;
    };
    json!({
        "name": run.agent_name,
        "agent_id": run.agent_id,
        "model": {
            "provider": run.model_provider,
            "name": model_class_name(config, &run.model_provider, &run.model),
            "id": run.model,
        },
    })
}

/// `team_data` as AgentOS stores it with each run: the team and leader model of the latest
/// top-level team run; `null` for a session without one.
fn team_data(config: &Config, runs: &[StoredRun]) -> Value {
    let Some(AnyRun::Team(run)) = runs
        .iter()
        .rev()
        .find(|r| r.run.parent_run_id().is_none() && r.run.kind() == Kind::Team)
        .map(|r| &r.run)
    else {
        return Value::Null;
    };
    json!({
        "name": run.team_name,
        "team_id": run.team_id,
        "model": {
            "provider": run.model_provider,
            "name": model_class_name(config, &run.model_provider, &run.model),
            "id": run.model,
        },
    })
}

/// `workflow_data`: the workflow's id, name and top-level steps (`name`, `description`,
/// `type`, nulls kept); `null` when the workflow is no longer configured.
fn workflow_data(workflow: Option<&WorkflowDef>) -> Value {
    let Some(workflow) = workflow else {
        return Value::Null;
    };
    let steps: Vec<Value> = workflow
        .steps
        .iter()
        .map(|step| {
            json!({
                "name": step.name,
                "description": step.description,
                "type": super::info::step_type(&step.kind),
            })
        })
        .collect();
    json!({"workflow_id": workflow.id, "name": workflow.name, "steps": steps})
}

/// The detail schema of a session (`AgentSessionDetailSchema`, `TeamSessionDetailSchema`
/// or `WorkflowSessionDetailSchema` by its type), with nulls. `runs` are all the
/// session's runs, oldest first; `workflow` is the configured workflow of a workflow
/// session.
pub fn session_detail(
    config: &Config,
    session: &Session,
    display_name: &str,
    runs: &[StoredRun],
    workflow: Option<&WorkflowDef>,
) -> Value {
    let metrics = session_metrics(runs).unwrap_or_else(|| json!({}));
    let created = json!(iso8601(session.created_at));
    let updated = json!(iso8601(session.updated_at));
    let metadata = session_metadata(session);
    let mut out = Map::new();
    match session.session_type {
        Kind::Agent => {
            out.insert("user_id".into(), opt_str(session.user_id.as_deref()));
            out.insert("agent_session_id".into(), json!(session.session_id));
            out.insert("session_id".into(), json!(session.session_id));
            out.insert("session_name".into(), json!(display_name));
            out.insert("session_summary".into(), session_summary(session));
            out.insert("session_state".into(), session.session_state.clone());
            out.insert("agent_id".into(), component(session));
            out.insert("total_tokens".into(), total_tokens(Some(&metrics)));
            out.insert("agent_data".into(), agent_data(config, runs));
            out.insert("metrics".into(), metrics);
            out.insert("metadata".into(), metadata);
            out.insert("chat_history".into(), Value::Array(chat_history(runs)));
            out.insert("created_at".into(), created);
            out.insert("updated_at".into(), updated);
        }
        Kind::Team => {
            out.insert("session_id".into(), json!(session.session_id));
            out.insert("session_name".into(), json!(display_name));
            out.insert("user_id".into(), opt_str(session.user_id.as_deref()));
            out.insert("team_id".into(), component(session));
            out.insert("session_summary".into(), session_summary(session));
            out.insert("session_state".into(), session.session_state.clone());
            let total = total_tokens(Some(&metrics));
            out.insert("metrics".into(), metrics);
            out.insert("team_data".into(), team_data(config, runs));
            out.insert("metadata".into(), metadata);
            out.insert("chat_history".into(), Value::Array(chat_history(runs)));
            out.insert("created_at".into(), created);
            out.insert("updated_at".into(), updated);
            out.insert("total_tokens".into(), total);
        }
        Kind::Workflow => {
            let mut data = Map::new();
            data.insert("session_state".into(), session.session_state.clone());
            if let Some(name) = session.session_name.as_deref() {
                data.insert("session_name".into(), json!(name));
            }
            if let Some(m) = session_metrics(runs) {
                data.insert("session_metrics".into(), m);
            }
            out.insert("user_id".into(), opt_str(session.user_id.as_deref()));
            out.insert("workflow_id".into(), component(session));
            out.insert("workflow_name".into(), Value::Null);
            out.insert("session_id".into(), json!(session.session_id));
            out.insert("session_name".into(), json!(display_name));
            out.insert("session_data".into(), Value::Object(data));
            out.insert("session_state".into(), session.session_state.clone());
            out.insert("workflow_data".into(), workflow_data(workflow));
            out.insert("metadata".into(), metadata);
            out.insert("created_at".into(), created);
            out.insert("updated_at".into(), updated);
        }
    }
    Value::Object(out)
}

/// The schema of a stored run by its kind (`RunSchema`, `TeamRunSchema` or
/// `WorkflowRunSchema`), with nulls.
pub fn run_schema(stored: &StoredRun) -> Value {
    match stored.run.kind() {
        Kind::Agent => agent_run_schema(stored),
        Kind::Team => team_run_schema(stored),
        Kind::Workflow => workflow_run_schema(stored),
    }
}

/// `RunSchema` of a stored run, with nulls: the run object reshaped for the session
/// endpoints (`run_input`, `run_response_format`, ISO `created_at`, the media keys AgentOS
/// always has). Read from the run's JSON form so fields added to runs later come along.
fn agent_run_schema(stored: &StoredRun) -> Value {
    let run = serde_json::to_value(&stored.run).unwrap_or_else(|_| json!({}));
    let get = |key: &str| run.get(key).filter(|v| !v.is_null()).cloned();
    let or_null = |key: &str| get(key).unwrap_or(Value::Null);
    let or_empty_list = |key: &str| get(key).unwrap_or_else(|| json!([]));
    let or_empty_str = |key: &str| get(key).unwrap_or_else(|| json!(""));
    let non_empty = |v: Option<Value>| {
        v.filter(|v| v.as_array().is_none_or(|a| !a.is_empty()))
            .unwrap_or(Value::Null)
    };
    let format = response_format(&run);
    let events = if stored.events.is_empty() {
        Value::Null
    } else {
        Value::Array(stored.events.clone())
    };
    let created_at = iso_created_at(&run);

    let mut out = Map::new();
    out.insert("run_id".into(), or_empty_str("run_id"));
    out.insert("parent_run_id".into(), or_empty_str("parent_run_id"));
    out.insert("agent_id".into(), or_empty_str("agent_id"));
    out.insert("user_id".into(), or_empty_str("user_id"));
    out.insert("status".into(), or_null("status"));
    out.insert("cancellation_stage".into(), or_null("cancellation_stage"));
    out.insert("run_input".into(), json!(run_input(&run)));
    out.insert("content".into(), or_empty_str("content"));
    out.insert("run_response_format".into(), json!(format));
    out.insert(
        "reasoning_content".into(),
        or_empty_str("reasoning_content"),
    );
    out.insert("reasoning_steps".into(), or_empty_list("reasoning_steps"));
    out.insert(
        "metrics".into(),
        get("metrics").unwrap_or_else(|| json!({})),
    );
    out.insert("metadata".into(), or_null("metadata"));
    out.insert("messages".into(), non_empty(get("messages")));
    out.insert("tools".into(), non_empty(get("tools")));
    out.insert("events".into(), events);
    out.insert("created_at".into(), created_at);
    out.insert("references".into(), or_empty_list("references"));
    out.insert("citations".into(), or_null("citations"));
    out.insert(
        "reasoning_messages".into(),
        or_empty_list("reasoning_messages"),
    );
    out.insert("session_state".into(), or_null("session_state"));
    for key in ["images", "videos", "audio", "files"] {
        out.insert(key.into(), or_empty_list(key));
    }
    out.insert("response_audio".into(), or_null("response_audio"));
    out.insert("input_media".into(), input_media(&run));
    for key in [
        "followups",
        "forked_from_run_id",
        "forked_from_message_index",
        "forked_from_session_id",
        "regenerated_from",
        "last_checkpoint_at_message_index",
    ] {
        out.insert(key.into(), or_null(key));
    }
    Value::Object(out)
}

/// `TeamRunSchema` of a stored team run, with nulls: like `RunSchema` but with `team_id`,
/// no `metadata`, and its own key order (205).
fn team_run_schema(stored: &StoredRun) -> Value {
    let run = serde_json::to_value(&stored.run).unwrap_or_else(|_| json!({}));
    let get = |key: &str| run.get(key).filter(|v| !v.is_null()).cloned();
    let or_null = |key: &str| get(key).unwrap_or(Value::Null);
    let or_empty_list = |key: &str| get(key).unwrap_or_else(|| json!([]));
    let or_empty_str = |key: &str| get(key).unwrap_or_else(|| json!(""));
    let non_empty = |v: Option<Value>| {
        v.filter(|v| v.as_array().is_none_or(|a| !a.is_empty()))
            .unwrap_or(Value::Null)
    };
    let events = if stored.events.is_empty() {
        Value::Null
    } else {
        Value::Array(stored.events.clone())
    };
    let mut out = Map::new();
    out.insert("run_id".into(), or_empty_str("run_id"));
    out.insert("parent_run_id".into(), or_empty_str("parent_run_id"));
    out.insert("team_id".into(), or_empty_str("team_id"));
    out.insert("user_id".into(), or_null("user_id"));
    out.insert("status".into(), or_null("status"));
    out.insert("cancellation_stage".into(), or_null("cancellation_stage"));
    out.insert("content".into(), or_empty_str("content"));
    out.insert(
        "reasoning_content".into(),
        or_empty_str("reasoning_content"),
    );
    out.insert("reasoning_steps".into(), or_empty_list("reasoning_steps"));
    out.insert("run_input".into(), json!(run_input(&run)));
    out.insert("run_response_format".into(), json!(response_format(&run)));
    out.insert(
        "metrics".into(),
        get("metrics").unwrap_or_else(|| json!({})),
    );
    out.insert("tools".into(), non_empty(get("tools")));
    out.insert("messages".into(), non_empty(get("messages")));
    out.insert("events".into(), events);
    out.insert("created_at".into(), iso_created_at(&run));
    out.insert("references".into(), or_empty_list("references"));
    out.insert("citations".into(), or_null("citations"));
    out.insert(
        "reasoning_messages".into(),
        or_empty_list("reasoning_messages"),
    );
    out.insert("session_state".into(), or_null("session_state"));
    out.insert("input_media".into(), input_media(&run));
    for key in ["images", "videos", "audio", "files"] {
        out.insert(key.into(), or_empty_list(key));
    }
    out.insert("response_audio".into(), or_null("response_audio"));
    for key in [
        "followups",
        "forked_from_run_id",
        "forked_from_message_index",
        "forked_from_session_id",
        "regenerated_from",
        "last_checkpoint_at_message_index",
    ] {
        out.insert(key.into(), or_null(key));
    }
    Value::Object(out)
}

/// `WorkflowRunSchema` of a stored workflow run, with nulls (306): the input as
/// `run_input`, `events` always a list, the step outputs and executor runs as stored.
fn workflow_run_schema(stored: &StoredRun) -> Value {
    let run = serde_json::to_value(&stored.run).unwrap_or_else(|_| json!({}));
    let get = |key: &str| run.get(key).filter(|v| !v.is_null()).cloned();
    let or_null = |key: &str| get(key).unwrap_or(Value::Null);
    let or_empty_list = |key: &str| get(key).unwrap_or_else(|| json!([]));
    let or_empty_str = |key: &str| get(key).unwrap_or_else(|| json!(""));
    let input = match run.get("input") {
        Some(Value::String(s)) => json!(s),
        Some(v) if !v.is_null() => json!(v.to_string()),
        _ => json!(""),
    };
    let mut out = Map::new();
    out.insert("run_id".into(), or_empty_str("run_id"));
    out.insert("run_input".into(), input);
    out.insert("events".into(), Value::Array(stored.events.clone()));
    out.insert("workflow_id".into(), or_empty_str("workflow_id"));
    out.insert("user_id".into(), or_empty_str("user_id"));
    out.insert("content".into(), or_empty_str("content"));
    out.insert("content_type".into(), or_empty_str("content_type"));
    out.insert("status".into(), or_empty_str("status"));
    out.insert("cancellation_stage".into(), or_null("cancellation_stage"));
    out.insert("step_results".into(), or_empty_list("step_results"));
    out.insert(
        "step_executor_runs".into(),
        or_empty_list("step_executor_runs"),
    );
    for key in [
        "step_requirements",
        "pause_kind",
        "paused_step_name",
        "paused_step_index",
    ] {
        out.insert(key.into(), or_null(key));
    }
    out.insert(
        "metrics".into(),
        get("metrics").unwrap_or_else(|| json!({})),
    );
    out.insert("created_at".into(), iso_created_at(&run));
    out.insert(
        "reasoning_content".into(),
        or_empty_str("reasoning_content"),
    );
    out.insert("reasoning_steps".into(), or_empty_list("reasoning_steps"));
    out.insert("references".into(), or_empty_list("references"));
    out.insert("citations".into(), or_null("citations"));
    out.insert(
        "reasoning_messages".into(),
        or_empty_list("reasoning_messages"),
    );
    for key in ["images", "videos", "audio", "files"] {
        out.insert(key.into(), or_empty_list(key));
    }
    out.insert("response_audio".into(), or_null("response_audio"));
    Value::Object(out)
}

/// `text` for plain-text content, `json` for structured content.
fn response_format(run: &Value) -> &'static str {
    if run
        .get("content_type")
        .and_then(Value::as_str)
        .unwrap_or("str")
        == "str"
    {
        "text"
    } else {
        "json"
    }
}

/// The run's `created_at` as ISO-8601, `null` when missing.
fn iso_created_at(run: &Value) -> Value {
    run.get("created_at")
        .and_then(Value::as_i64)
        .map_or(Value::Null, |t| json!(iso8601(t)))
}

/// A session's runs in the order `GET /sessions/{id}/runs` lists them: each run after the
/// runs that worked for it (a team's member runs, then the team run), otherwise oldest
/// first.
pub fn in_session_order(runs: Vec<StoredRun>) -> Vec<StoredRun> {
    let ids: std::collections::HashSet<String> =
        runs.iter().map(|r| r.run.run_id().to_string()).collect();
    let mut children: std::collections::HashMap<String, Vec<usize>> = Default::default();
    let mut roots = Vec::new();
    for (i, stored) in runs.iter().enumerate() {
        match stored.run.parent_run_id().filter(|p| ids.contains(*p)) {
            Some(parent) => children.entry(parent.to_string()).or_default().push(i),
            None => roots.push(i),
        }
    }
    fn visit(
        i: usize,
        runs: &[StoredRun],
        children: &std::collections::HashMap<String, Vec<usize>>,
        order: &mut Vec<usize>,
    ) {
        for &child in children.get(runs[i].run.run_id()).into_iter().flatten() {
            visit(child, runs, children, order);
        }
        order.push(i);
    }
    let mut order = Vec::with_capacity(runs.len());
    for root in roots {
        visit(root, &runs, &children, &mut order);
    }
    let mut slots: Vec<Option<StoredRun>> = runs.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// What the user asked: the stored input, else the last user message, else "".
fn run_input(run: &Value) -> String {
    if let Some(input) = run.pointer("/input/input_content").filter(|v| !v.is_null()) {
        return match input {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
    }
    run.get("messages")
        .and_then(Value::as_array)
        .and_then(|messages| {
            messages
                .iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        })
        .and_then(|m| m.get("content"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// Media attached to the run's input, by kind.
fn input_media(run: &Value) -> Value {
    let list = |key: &str| {
        run.pointer(&format!("/input/{key}"))
            .filter(|v| v.is_array())
            .cloned()
            .unwrap_or_else(|| json!([]))
    };
    json!({
        "images": list("images"),
        "videos": list("videos"),
        "audios": list("audios"),
        "files": list("files"),
    })
}

/// `SessionRunPreviewSchema` from a run's `RunSchema` (see [`run_schema`]), with nulls:
/// ids, status, and input and output cut at [`PREVIEW_CHARS`] characters.
pub fn run_preview(schema: &Value) -> Value {
    let field = |key: &str| schema.get(key).cloned().unwrap_or(Value::Null);
    let preview = |key: &str| match schema.get(key) {
        None | Some(Value::Null) => Value::Null,
        Some(Value::String(s)) => json!(truncate_chars(s, PREVIEW_CHARS)),
        Some(other) => json!(truncate_chars(&python_json(other), PREVIEW_CHARS)),
    };
    let mut out = Map::new();
    out.insert("run_id".into(), field("run_id"));
    out.insert("parent_run_id".into(), field("parent_run_id"));
    out.insert("agent_id".into(), field("agent_id"));
    out.insert("team_id".into(), field("team_id"));
    out.insert("workflow_id".into(), field("workflow_id"));
    out.insert("user_id".into(), field("user_id"));
    out.insert("status".into(), field("status"));
    out.insert("run_input".into(), preview("run_input"));
    out.insert("content_preview".into(), preview("content"));
    out.insert("created_at".into(), field("created_at"));
    Value::Object(out)
}

fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((end, _)) => &s[..end],
        None => s,
    }
}

/// JSON as Python's `json.dumps` writes it by default (`", "` and `": "` separators,
/// non-ASCII escaped), which is how AgentOS previews structured content.
pub fn python_json(value: &Value) -> String {
    let mut out = String::new();
    write_python_json(value, &mut out);
    out
}

fn write_python_json(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_python_str(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_python_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_python_str(k, out);
                out.push_str(": ");
                write_python_json(v, out);
            }
            out.push('}');
        }
    }
}

fn write_python_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

/// A Python `repr` of a list of strings, as AgentOS puts it in error messages:
/// `['BOGUS', 'OTHER']`.
pub fn python_str_list(items: &[String]) -> String {
    let reprs: Vec<String> = items.iter().map(|s| python_repr(s)).collect();
    format!("[{}]", reprs.join(", "))
}

fn python_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// A run object as a run endpoint answers it when the run finishes (non-streaming
/// `POST …/runs`): the run as it is, except that a workflow run also lists its (always
/// empty) media, after `metadata`, as AgentOS's `WorkflowRunOutput.to_dict()` does.
pub fn run_response(run: &AnyRun) -> Value {
    let value = serde_json::to_value(run).unwrap_or_else(|_| json!({}));
    let (AnyRun::Workflow(_), Value::Object(map)) = (run, &value) else {
        return value;
    };
    let mut out = Map::new();
    for (key, v) in map {
        let after = key == "metadata";
        out.insert(key.clone(), v.clone());
        if after {
            for media in ["images", "videos", "audio", "files"] {
                out.insert(media.into(), json!([]));
            }
        }
    }
    Value::Object(out)
}

/// The run object as `GET /{agents|teams|workflows}/{id}/runs/{run_id}` returns it: the
/// stored run (integer timestamps) with its stored events where AgentOS's `to_dict()`
/// puts them: after `metrics` for agents, before `metrics` (and only when there are any)
/// for teams, last for workflows. A stored team run has no member responses (they are
/// runs of their own in the session); a workflow's executor runs get their stored shape.
pub fn polled_run(stored: &StoredRun) -> Value {
    let Ok(Value::Object(run)) = serde_json::to_value(&stored.run) else {
        return json!({});
    };
    let events = Value::Array(stored.events.clone());
    match stored.run.kind() {
        Kind::Agent => stored_shape(run, events),
        Kind::Team => {
            let mut out = Map::new();
            let mut events = (!stored.events.is_empty()).then_some(events);
            for (key, value) in run {
                if key == "metrics"
                    && let Some(events) = events.take()
                {
                    out.insert("events".into(), events);
                }
                let value = if key == "member_responses" {
                    json!([])
                } else {
                    value
                };
                out.insert(key, value);
            }
            Value::Object(out)
        }
        Kind::Workflow => {
            let mut out = run;
            if let Some(Value::Array(executors)) = out.get_mut("step_executor_runs") {
                for executor in executors.iter_mut() {
                    if let Value::Object(map) = std::mem::take(executor) {
                        *executor = stored_shape(map, json!([]));
                    }
                }
            }
            out.insert("events".into(), events);
            Value::Object(out)
        }
    }
}

/// An agent run object as AgentOS stores it: `events` right after `metrics`, and no
/// `tools` key for an empty tool list.
fn stored_shape(run: Map<String, Value>, events: Value) -> Value {
    let mut out = Map::new();
    let mut events = Some(events);
    for (key, value) in run {
        if key == "tools" && value.as_array().is_some_and(Vec::is_empty) {
            continue;
        }
        let after = key == "metrics";
        out.insert(key, value);
        if after && let Some(events) = events.take() {
            out.insert("events".into(), events);
        }
    }
    if let Some(events) = events {
        out.insert("events".into(), events);
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration with the built-in providers and one provider of its own.
    fn test_config() -> Config {
        Config::from_toml_str(
            "[providers.local]\nbase_url = \"http://127.0.0.1:9/v1\"\n\n\
             [[agents]]\nid = \"a\"\nmodel = \"test\"\n",
            std::path::Path::new("agents.toml"),
        )
        .unwrap()
    }

    #[test]
    fn model_class_names_come_from_the_provider() {
        let config = test_config();
        assert_eq!(model_class_name(&config, "OpenAI", "gpt-4o"), "OpenAIChat");
        assert_eq!(model_class_name(&config, "local", "llama"), "OpenAILike");
        assert_eq!(model_class_name(&config, "Test", "test"), "TestModel");
        assert_eq!(model_class_name(&config, "Gone", "x"), "Gone");
    }
    use crate::run::{
        Message, Metrics, MetricsDetails, ModelMetrics, RunInput, RunOutput, RunStatus, StepOutput,
        TeamRunOutput, WorkflowMetrics, WorkflowRunOutput,
    };

    fn session(kind: Kind) -> Session {
        Session {
            session_id: "s1".into(),
            session_type: kind,
            component_id: "story-writer".into(),
            user_id: Some("user-1".into()),
            session_name: None,
            session_state: json!({}),
            metadata: None,
            session_data: None,
            created_at: 1_795_915_409,
            updated_at: 1_795_915_420,
        }
    }

    fn message(role: Role, content: &str) -> Message {
        Message {
            id: format!("m-{content}"),
            content: Some(content.into()),
            role,
            created_at: 1_795_915_409,
            ..Message::default()
        }
    }

    fn stored(run_id: &str, input: &str, tokens: u64) -> StoredRun {
        let metrics = if tokens == 0 {
            Metrics::default()
        } else {
            Metrics {
                input_tokens: Some(tokens),
                output_tokens: Some(tokens / 2),
                total_tokens: Some(tokens + tokens / 2),
                time_to_first_token: Some(0.25),
                duration: Some(0.5),
                details: Some(MetricsDetails {
                    model: vec![ModelMetrics {
                        input_tokens: tokens,
                        output_tokens: tokens / 2,
                        total_tokens: tokens + tokens / 2,
                        id: "gpt-4o-mini".into(),
                        provider: "OpenAI Chat".into(),
                    }],
                }),
                ..Metrics::default()
            }
        };
        StoredRun {
            run: AnyRun::Agent(RunOutput {
                run_id: run_id.into(),
                agent_id: "story-writer".into(),
                agent_name: "Story Writer".into(),
                parent_run_id: None,
                session_id: "s1".into(),
                user_id: Some("user-1".into()),
                content: Some(json!(format!("Story for '{input}'."))),
                content_type: "str".into(),
                model_provider_data: None,
                reasoning_content: None,
                model: "gpt-4o-mini".into(),
                model_provider: "OpenAI".into(),
                session_state: json!({}),
                created_at: 1_795_915_409,
                status: RunStatus::Completed,
                cancellation_stage: None,
                workflow_step_id: None,
                metrics,
                messages: vec![
                    message(Role::System, "You write stories."),
                    message(Role::User, input),
                    message(Role::Assistant, &format!("Story for '{input}'.")),
                ],
                metadata: None,
                tools: Some(Vec::new()),
                requirements: None,
                input: RunInput {
                    input_content: input.into(),
                },
            }),
            session_type: Kind::Agent,
            events: Vec::new(),
            updated_at: 1_795_915_409,
        }
    }

    fn keys(v: &Value) -> Vec<&str> {
        v.as_object().unwrap().keys().map(String::as_str).collect()
    }

    #[test]
    fn iso8601_formats_utc_seconds() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_795_915_409), "2026-11-29T01:23:29Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z"); // leap day, /400 year
        assert_eq!(iso8601(951_868_799), "2000-02-29T23:59:59Z");
        assert_eq!(iso8601(951_868_800), "2000-03-01T00:00:00Z");
        assert_eq!(iso8601(4_107_456_000), "2100-02-28T00:00:00Z");
        assert_eq!(iso8601(4_107_542_400), "2100-03-01T00:00:00Z"); // 2100 is not leap
        assert_eq!(iso8601(1_709_164_800), "2024-02-29T00:00:00Z");
        assert_eq!(iso8601(1_735_689_599), "2024-12-31T23:59:59Z");
        assert_eq!(iso8601(-1), "1969-12-31T23:59:59Z");
        assert_eq!(iso8601(253_402_300_799), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn metrics_sum_runs_and_drop_zeros() {
        assert_eq!(session_metrics(&[]), None);
        let runs = [
            stored("a", "one", 10),
            stored("b", "two", 20),
            stored("c", "x", 0),
        ];
        let m = session_metrics(&runs).unwrap();
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"input_tokens":30,"output_tokens":15,"total_tokens":45,"details":{"model":[{"input_tokens":30,"output_tokens":15,"total_tokens":45,"id":"gpt-4o-mini","provider":"OpenAI Chat"}]}}"#
        );
        // A run without tokens (cancelled before usage arrived) gives `{}`.
        assert_eq!(session_metrics(&[stored("c", "x", 0)]).unwrap(), json!({}));
        // A model entry without tokens keeps only its identity.
        let mut failed = stored("d", "x", 0);
        failed.run.as_agent_mut().unwrap().metrics.details = Some(MetricsDetails {
            model: vec![ModelMetrics {
                id: "gpt-4o-mini".into(),
                provider: "OpenAI Chat".into(),
                ..ModelMetrics::default()
            }],
        });
        assert_eq!(
            session_metrics(&[failed]).unwrap(),
            json!({"details": {"model": [{"id": "gpt-4o-mini", "provider": "OpenAI Chat"}]}})
        );
    }

    #[test]
    fn list_item_omits_nulls_like_agentos() {
        let s = session(Kind::Agent);
        let runs = [stored("a", "Tell me a story", 10)];
        let metrics = session_metrics(&runs);
        let item = drop_nulls(session_list_item(&s, "Tell me a story", metrics.as_ref()));
        assert_eq!(
            keys(&item),
            [
                "session_id",
                "session_name",
                "session_state",
                "created_at",
                "updated_at",
                "session_type",
                "user_id",
                "agent_id",
                "metrics",
                "total_tokens"
            ]
        );
        assert_eq!(item["created_at"], "2026-11-29T01:23:29Z");
        assert_eq!(item["total_tokens"], 15);

        let mut wf = session(Kind::Workflow);
        wf.user_id = None;
        wf.metadata = Some(json!({}));
        let item = drop_nulls(session_list_item(&wf, "w", None));
        assert_eq!(
            keys(&item),
            [
                "session_id",
                "session_name",
                "session_state",
                "created_at",
                "updated_at",
                "session_type",
                "workflow_id",
                "metadata"
            ]
        );
    }

    #[test]
    fn agent_detail_matches_capture_608_and_619() {
        let s = session(Kind::Agent);
        let runs = [stored("a", "one", 10), stored("b", "two", 20)];
        let detail = session_detail(&test_config(), &s, "one", &runs, None);
        // PATCH and rename keep nulls (619/620).
        assert_eq!(
            keys(&detail),
            [
                "user_id",
                "agent_session_id",
                "session_id",
                "session_name",
                "session_summary",
                "session_state",
                "agent_id",
                "total_tokens",
                "agent_data",
                "metrics",
                "metadata",
                "chat_history",
                "created_at",
                "updated_at"
            ]
        );
        assert_eq!(detail["session_summary"], Value::Null);
        assert_eq!(detail["metadata"], Value::Null);
        assert_eq!(
            detail["agent_data"],
            json!({"name": "Story Writer", "agent_id": "story-writer",
                   "model": {"provider": "OpenAI", "name": "OpenAIChat", "id": "gpt-4o-mini"}})
        );
        assert_eq!(
            serde_json::to_string(&detail["agent_data"]).unwrap(),
            r#"{"name":"Story Writer","agent_id":"story-writer","model":{"provider":"OpenAI","name":"OpenAIChat","id":"gpt-4o-mini"}}"#
        );
        assert_eq!(detail["total_tokens"], 45);
        let history = detail["chat_history"].as_array().unwrap();
        assert_eq!(history.len(), 4, "system messages are left out");
        assert_eq!(history[0]["role"], "user");
        assert_eq!(
            history[0]["created_at"], 1_795_915_409,
            "messages keep epoch seconds"
        );
        // GET drops them (608).
        let got = drop_nulls(detail);
        assert!(got.get("session_summary").is_none() && got.get("metadata").is_none());

        // A session created by POST /sessions (621): no runs, metrics {}, no agent_data.
        let created = drop_nulls(session_detail(&test_config(), &s, "Pre-created", &[], None));
        assert_eq!(
            keys(&created),
            [
                "user_id",
                "agent_session_id",
                "session_id",
                "session_name",
                "session_state",
                "agent_id",
                "metrics",
                "chat_history",
                "created_at",
                "updated_at"
            ]
        );
    }

    #[test]
    fn team_and_workflow_details_have_their_own_shapes() {
        let runs = [stored("a", "one", 10)];
        let team = drop_nulls(session_detail(
            &test_config(),
            &session(Kind::Team),
            "one",
            &runs,
            None,
        ));
        assert_eq!(
            keys(&team),
            [
                "session_id",
                "session_name",
                "user_id",
                "team_id",
                "session_state",
                "metrics",
                "chat_history",
                "created_at",
                "updated_at",
                "total_tokens"
            ]
        );
        let mut wf = session(Kind::Workflow);
        wf.metadata = Some(json!({}));
        let wf = drop_nulls(session_detail(&test_config(), &wf, "one", &runs, None));
        assert_eq!(
            keys(&wf),
            [
                "user_id",
                "workflow_id",
                "session_id",
                "session_name",
                "session_data",
                "session_state",
                "metadata",
                "created_at",
                "updated_at"
            ]
        );
        assert_eq!(
            keys(&wf["session_data"]),
            ["session_state", "session_metrics"]
        );
    }

    #[test]
    fn run_schema_with_and_without_nulls() {
        let run = stored("r1", "Tell me a story about a robot", 10);
        let full = run_schema(&run);
        // 617: every key, nulls included.
        assert_eq!(
            keys(&full),
            [
                "run_id",
                "parent_run_id",
                "agent_id",
                "user_id",
                "status",
                "cancellation_stage",
                "run_input",
                "content",
                "run_response_format",
                "reasoning_content",
                "reasoning_steps",
                "metrics",
                "metadata",
                "messages",
                "tools",
                "events",
                "created_at",
                "references",
                "citations",
                "reasoning_messages",
                "session_state",
                "images",
                "videos",
                "audio",
                "files",
                "response_audio",
                "input_media",
                "followups",
                "forked_from_run_id",
                "forked_from_message_index",
                "forked_from_session_id",
                "regenerated_from",
                "last_checkpoint_at_message_index"
            ]
        );
        assert_eq!(full["parent_run_id"], "");
        assert_eq!(full["run_response_format"], "text");
        assert_eq!(full["created_at"], "2026-11-29T01:23:29Z");
        assert_eq!(full["tools"], Value::Null, "an empty tool list is null");
        assert_eq!(full["events"], Value::Null);
        assert_eq!(
            serde_json::to_string(&full["input_media"]).unwrap(),
            r#"{"images":[],"videos":[],"audios":[],"files":[]}"#
        );
        // 613: nulls dropped.
        let mut streamed = run.clone();
        streamed.events = vec![json!({"event": "RunStarted"})];
        let listed = drop_nulls(run_schema(&streamed));
        assert_eq!(
            keys(&listed),
            [
                "run_id",
                "parent_run_id",
                "agent_id",
                "user_id",
                "status",
                "run_input",
                "content",
                "run_response_format",
                "reasoning_content",
                "reasoning_steps",
                "metrics",
                "messages",
                "events",
                "created_at",
                "references",
                "reasoning_messages",
                "session_state",
                "images",
                "videos",
                "audio",
                "files",
                "input_media"
            ]
        );

        // A run without user or content, with structured output.
        let mut bare = run;
        bare.run.as_agent_mut().unwrap().user_id = None;
        bare.run.as_agent_mut().unwrap().content = None;
        bare.run.as_agent_mut().unwrap().content_type = "Story".into();
        let schema = run_schema(&bare);
        assert_eq!(schema["user_id"], "");
        assert_eq!(schema["content"], "");
        assert_eq!(schema["run_response_format"], "json");
    }

    #[test]
    fn previews_cut_at_280_characters() {
        let long = "é".repeat(300);
        let mut run = stored("r1", &long, 10);
        run.run.as_agent_mut().unwrap().content = Some(json!({"title": "Ünïcode", "n": [1, 2]}));
        let preview = drop_nulls(run_preview(&run_schema(&run)));
        assert_eq!(
            keys(&preview),
            [
                "run_id",
                "parent_run_id",
                "agent_id",
                "user_id",
                "status",
                "run_input",
                "content_preview",
                "created_at"
            ]
        );
        assert_eq!(preview["run_input"].as_str().unwrap().chars().count(), 280);
        assert_eq!(
            preview["content_preview"],
            r#"{"title": "\u00dcn\u00efcode", "n": [1, 2]}"#
        );
    }

    #[test]
    fn python_reprs() {
        assert_eq!(
            python_str_list(&["BOGUS".into(), "it's".into()]),
            r#"['BOGUS', "it's"]"#
        );
        assert_eq!(python_json(&json!("a\"b\n😀")), r#""a\"b\n\ud83d\ude00""#);
    }

    #[test]
    fn polled_run_places_events_after_metrics() {
        let mut run = stored("r1", "q", 10);
        let empty = polled_run(&run);
        let k = keys(&empty);
        let at = k.iter().position(|k| *k == "metrics").unwrap();
        assert_eq!(k[at + 1], "events");
        assert_eq!(k[at + 2], "messages");
        assert_eq!(empty["events"], json!([]));
        assert_eq!(
            empty["created_at"], 1_795_915_409,
            "run objects keep epoch seconds"
        );
        run.events = vec![json!({"event": "RunStarted"})];
        assert_eq!(polled_run(&run)["events"][0]["event"], "RunStarted");
    }

    #[test]
    fn display_name_prefers_stored_name_then_first_input() {
        let mut s = session(Kind::Agent);
        let runs = [stored("a", "first", 1), stored("b", "second", 1)];
        assert_eq!(session_display_name(&s, &runs), "first");
        assert_eq!(session_display_name(&s, &[]), "");
        s.session_name = Some("Named".into());
        assert_eq!(session_display_name(&s, &runs), "Named");
    }

    /// A team run of `team_id` with one member run `member`, stored in a team session.
    fn team_stored(run_id: &str, member: &StoredRun) -> StoredRun {
        let AnyRun::Agent(agent) = &member.run else {
            unreachable!()
        };
        let mut member_run = agent.clone();
        member_run.parent_run_id = Some(run_id.into());
        StoredRun {
            run: AnyRun::Team(TeamRunOutput {
                run_id: run_id.into(),
                team_id: "research-team".into(),
                team_name: "Research Team".into(),
                session_id: "s1".into(),
                parent_run_id: None,
                user_id: Some("user-1".into()),
                content: Some(json!("Tool result received: done")),
                content_type: "str".into(),
                model: "gpt-4o-mini".into(),
                model_provider: "OpenAI".into(),
                model_provider_data: None,
                reasoning_content: None,
                session_state: None,
                created_at: 1_795_915_420,
                workflow_step_id: None,
                metrics: agent.metrics.clone(),
                status: RunStatus::Completed,
                cancellation_stage: None,
                messages: agent.messages.clone(),
                metadata: None,
                member_responses: vec![AnyRun::Agent(member_run)],
                tools: Some(Vec::new()),
                input: RunInput {
                    input_content: "Research robots".into(),
                },
            }),
            session_type: Kind::Team,
            events: Vec::new(),
            updated_at: 1_795_915_420,
        }
    }

    /// A member run of `parent` in the team session.
    fn member_of(run_id: &str, parent: &str) -> StoredRun {
        let mut member = stored(run_id, "Research robots", 10);
        member.session_type = Kind::Team;
        if let AnyRun::Agent(run) = &mut member.run {
            run.agent_id = "researcher".into();
            run.parent_run_id = Some(parent.into());
        }
        member
    }

    /// A two-step workflow run, as capture 300 stores it.
    fn workflow_stored(run_id: &str) -> StoredRun {
        let step = |name: &str, executor: &str| StepOutput {
            content: Some(json!(format!("{name} done"))),
            step_name: name.into(),
            step_id: format!("step-{name}"),
            step_type: "Step".into(),
            executor_type: Some("agent".into()),
            executor_name: Some(executor.into()),
            step_run_id: Some(format!("exec-{name}")),
            metrics: Some(Metrics::default()),
            success: true,
            ..StepOutput::default()
        };
        let executor = |name: &str| {
            let mut run = stored(&format!("exec-{name}"), "Write about robots", 10);
            if let AnyRun::Agent(agent) = &mut run.run {
                agent.parent_run_id = Some(run_id.into());
                agent.workflow_step_id = Some(format!("step-{name}"));
                agent.metadata = Some(json!({}));
            }
            run.run
        };
        StoredRun {
            run: AnyRun::Workflow(WorkflowRunOutput {
                input: "Write about robots".into(),
                content: Some(json!("draft done")),
                content_type: "str".into(),
                workflow_id: "content-workflow".into(),
                workflow_name: "Content Workflow".into(),
                run_id: run_id.into(),
                session_id: "s1".into(),
                user_id: Some("user-1".into()),
                created_at: 1_795_915_423,
                status: RunStatus::Completed,
                cancellation_stage: None,
                metadata: json!({}),
                step_results: vec![
                    step("outline", "Outline Agent"),
                    step("draft", "Draft Agent"),
                ],
                step_executor_runs: vec![executor("outline"), executor("draft")],
                metrics: WorkflowMetrics::default(),
            }),
            session_type: Kind::Workflow,
            events: Vec::new(),
            updated_at: 1_795_915_423,
        }
    }

    #[test]
    fn team_run_schema_follows_capture_205() {
        let member = member_of("m1", "t1");
        let team = team_stored("t1", &member);
        let schema = run_schema(&team);
        assert_eq!(
            keys(&schema),
            [
                "run_id",
                "parent_run_id",
                "team_id",
                "user_id",
                "status",
                "cancellation_stage",
                "content",
                "reasoning_content",
                "reasoning_steps",
                "run_input",
                "run_response_format",
                "metrics",
                "tools",
                "messages",
                "events",
                "created_at",
                "references",
                "citations",
                "reasoning_messages",
                "session_state",
                "input_media",
                "images",
                "videos",
                "audio",
                "files",
                "response_audio",
                "followups",
                "forked_from_run_id",
                "forked_from_message_index",
                "forked_from_session_id",
                "regenerated_from",
                "last_checkpoint_at_message_index"
            ]
        );
        assert_eq!(schema["parent_run_id"], "");
        assert_eq!(schema["team_id"], "research-team");
        assert_eq!(schema["run_input"], "Research robots");
        assert_eq!(schema["tools"], Value::Null, "an empty tool list is null");
        assert_eq!(schema["created_at"], "2026-11-29T01:23:40Z");
        // 614: nulls dropped.
        let dropped = drop_nulls(schema);
        assert!(dropped.get("session_state").is_none());
        assert!(dropped.get("events").is_none());
        // The member run keeps the agent schema.
        let member_schema = run_schema(&member);
        assert_eq!(member_schema["agent_id"], "researcher");
        assert_eq!(member_schema["parent_run_id"], "t1");
    }

    #[test]
    fn polled_team_run_has_events_before_metrics_and_no_members() {
        let member = member_of("m1", "t1");
        let mut team = team_stored("t1", &member);
        let polled = polled_run(&team);
        assert!(polled.get("events").is_none(), "no events, no key");
        assert_eq!(polled["member_responses"], json!([]));
        assert_eq!(polled["created_at"], 1_795_915_420);
        team.events = vec![json!({"event": "TeamRunStarted"})];
        let polled = polled_run(&team);
        let k = keys(&polled);
        let at = k.iter().position(|k| *k == "events").unwrap();
        assert_eq!(k[at + 1], "metrics");
        assert_eq!(polled["events"][0]["event"], "TeamRunStarted");
    }

    #[test]
    fn workflow_run_schema_follows_capture_306() {
        let wf = workflow_stored("w1");
        let schema = run_schema(&wf);
        assert_eq!(
            keys(&schema),
            [
                "run_id",
                "run_input",
                "events",
                "workflow_id",
                "user_id",
                "content",
                "content_type",
                "status",
                "cancellation_stage",
                "step_results",
                "step_executor_runs",
                "step_requirements",
                "pause_kind",
                "paused_step_name",
                "paused_step_index",
                "metrics",
                "created_at",
                "reasoning_content",
                "reasoning_steps",
                "references",
                "citations",
                "reasoning_messages",
                "images",
                "videos",
                "audio",
                "files",
                "response_audio"
            ]
        );
        assert_eq!(schema["run_input"], "Write about robots");
        assert_eq!(schema["events"], json!([]));
        assert_eq!(schema["status"], "COMPLETED");
        assert_eq!(schema["step_results"][1]["step_name"], "draft");
        assert_eq!(
            keys(&schema["step_results"][0]),
            [
                "content",
                "step_name",
                "step_id",
                "step_type",
                "executor_type",
                "executor_name",
                "step_run_id",
                "images",
                "videos",
                "audio",
                "files",
                "metrics",
                "success",
                "error",
                "stop",
                "is_paused"
            ],
            "step outputs keep their nulls"
        );
        assert_eq!(schema["created_at"], "2026-11-29T01:23:43Z");
        // 615: nulls dropped at the top level only.
        let dropped = drop_nulls(schema);
        assert!(dropped.get("cancellation_stage").is_none());
        assert_eq!(dropped["step_results"][0]["error"], Value::Null);
        // A run without a user: `user_id` is "" as AgentOS defaults it.
        let mut anonymous = workflow_stored("w2");
        if let AnyRun::Workflow(run) = &mut anonymous.run {
            run.user_id = None;
            run.step_results.clear();
            run.step_executor_runs.clear();
        }
        let schema = run_schema(&anonymous);
        assert_eq!(schema["user_id"], "");
        assert_eq!(schema["step_results"], json!([]));
    }

    #[test]
    fn polled_workflow_run_follows_capture_305() {
        let wf = workflow_stored("w1");
        let polled = polled_run(&wf);
        assert_eq!(
            keys(&polled),
            [
                "input",
                "content",
                "content_type",
                "workflow_id",
                "workflow_name",
                "run_id",
                "session_id",
                "user_id",
                "created_at",
                "status",
                "metadata",
                "step_results",
                "step_executor_runs",
                "metrics",
                "events"
            ]
        );
        // Executor runs as stored: events after metrics, no empty tool list.
        let executor = &polled["step_executor_runs"][0];
        let k = keys(executor);
        let at = k.iter().position(|k| *k == "metrics").unwrap();
        assert_eq!(k[at + 1], "events");
        assert_eq!(executor["events"], json!([]));
        assert!(executor.get("tools").is_none());
        assert_eq!(executor["parent_run_id"], "w1");
        assert_eq!(executor["workflow_step_id"], "step-outline");
    }

    #[test]
    fn run_responses_list_workflow_media_after_metadata() {
        let wf = workflow_stored("w1");
        let response = run_response(&wf.run);
        let k = keys(&response);
        let at = k.iter().position(|k| *k == "metadata").unwrap();
        assert_eq!(k[at + 1..at + 5], ["images", "videos", "audio", "files"]);
        assert_eq!(response["images"], json!([]));
        assert!(response.get("events").is_none());
        // Agent and team runs are answered as they are.
        let agent = stored("r1", "q", 10);
        assert_eq!(
            run_response(&agent.run),
            serde_json::to_value(&agent.run).unwrap()
        );
    }

    #[test]
    fn member_runs_come_before_their_team_run() {
        let m1 = member_of("m1", "t1");
        let t1 = team_stored("t1", &m1);
        let m2 = member_of("m2", "t2");
        let m3 = member_of("m3", "t2");
        let t2 = team_stored("t2", &m2);
        let orphan = member_of("m4", "gone");
        // Stored in start order: each team run before its members.
        let runs = vec![t1, m1, t2, m2, m3, orphan];
        let order: Vec<String> = in_session_order(runs)
            .iter()
            .map(|r| r.run.run_id().to_string())
            .collect();
        assert_eq!(order, ["m1", "t1", "m2", "m3", "t2", "m4"]);
    }

    #[test]
    fn team_and_workflow_details_carry_their_data() {
        let member = member_of("m1", "t1");
        let team = team_stored("t1", &member);
        let mut s = session(Kind::Team);
        s.component_id = "research-team".into();
        let detail = session_detail(&test_config(), &s, "Research robots", &[team, member], None);
        assert_eq!(
            detail["team_data"],
            json!({"name": "Research Team", "team_id": "research-team",
                   "model": {"provider": "OpenAI", "name": "OpenAIChat", "id": "gpt-4o-mini"}})
        );
        assert_eq!(detail["metadata"], Value::Null);

        let config = crate::config::Config::from_toml_str(
            r#"
[[agents]]
id = "a"
model = "test"

[[workflows]]
id = "content-workflow"
name = "Content Workflow"

[[workflows.steps]]
name = "outline"
agent = "a"

[[workflows.steps]]
name = "both"
description = "Two at once"
type = "parallel"
steps = [{ name = "x", agent = "a" }, { name = "y", agent = "a" }]
"#,
            std::path::Path::new("agents.toml"),
        )
        .unwrap();
        let mut s = session(Kind::Workflow);
        s.component_id = "content-workflow".into();
        let wf = workflow_stored("w1");
        let detail = session_detail(
            &config,
            &s,
            "Write",
            &[wf],
            config.workflow("content-workflow"),
        );
        assert_eq!(
            detail["workflow_data"],
            json!({"workflow_id": "content-workflow", "name": "Content Workflow", "steps": [
                {"name": "outline", "description": null, "type": "Step"},
                {"name": "both", "description": "Two at once", "type": "Parallel"}
            ]})
        );
        assert_eq!(
            detail["metadata"],
            json!({}),
            "workflow sessions have metadata"
        );
        let item = session_list_item(&s, "Write", None);
        assert_eq!(item["metadata"], json!({}));
        assert_eq!(item["workflow_id"], "content-workflow");
        assert_eq!(item["team_id"], Value::Null);
    }
}
