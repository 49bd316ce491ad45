//! Run endpoints of agents, teams and workflows: create (inline, streaming, background),
//! cancel, resume and continue. One code path serves the three kinds of component
//! ([`Kind`]).
//!
//! A run executes as a task of its own. Inline streams get its events through a bounded
//! channel whose body cancels the run when dropped (the client left): a client that reads
//! slowly slows only its own run. Background runs keep their SSE frames, numbered with
//! `event_index`, so `resume` can replay what a client missed and then follow the run live
//! (see `live.rs`).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use hyper::StatusCode;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use super::AppState;
use super::body::Body;
use super::error::{ApiError, ApiResult};
use super::form::{self, Form};
use super::live::{LiveRun, Slot, follow};
use super::request::Req;
use super::response::{event_stream, json_response, ok};
use crate::cancel::CancelToken;
use crate::config::Config;
use crate::engine::{EngineError, PendingRun, RunRequest, ToolDecision};
use crate::event::{Discard, Event, EventSink};
use crate::kind::Kind;
use crate::run::{AnyRun, RunRecord, RunStatus, new_id};
use crate::schema::OutputSchema;
use crate::store::CancelOutcome;

/// What the run endpoints need to know about a kind of component beyond [`Kind`] itself.
/// Agents, teams and workflows share one id namespace, but each route only reaches its own
/// kind.
impl Kind {
    /// The 404 for an id that names no component of this kind.
    pub fn not_found(self) -> ApiError {
        ApiError::not_found(format!("{} not found", self.title()))
    }

    /// 404 unless `agents.toml` defines a component of this kind with this id.
    pub fn require(self, config: &Config, id: &str) -> Result<(), ApiError> {
        if config.defines(self, id) {
            Ok(())
        } else {
            Err(self.not_found())
        }
    }

    /// Whether a stream asked for with `stream_events=false` carries this event: only the
    /// component's own content deltas for agents and teams (member events are left out);
    /// every event for workflows, whose content comes from their steps' agents.
    fn keeps_without_stream_events(self, event: &Event) -> bool {
        match self {
            Kind::Agent | Kind::Team => {
                matches!(event.data, crate::event::EventData::RunContent { .. })
                    && !event.source.is_nested()
            }
            Kind::Workflow => true,
        }
    }
}

/// What the form asks of a run besides the engine request.
pub(super) struct Delivery {
    pub(super) stream: bool,
    pub(super) background: bool,
    pub(super) stream_events: bool,
}

/// `POST /agents/{id}/runs`, `POST /teams/{id}/runs` and `POST /workflows/{id}/runs`.
pub async fn create(state: Arc<AppState>, req: Req, component: Kind, id: &str) -> ApiResult {
    let form = form::parse(&req.headers, &req.body)?;
    // Form validation comes before the component lookup, as in AgentOS.
    let message = form
        .get("message")
        .filter(|m| !m.is_empty())
        .ok_or_else(|| ApiError::missing("body", "message"))?
        .to_string();
    let delivery = Delivery {
        stream: bool_field(&form, "stream")?.unwrap_or(true),
        background: bool_field(&form, "background")?.unwrap_or(false),
        stream_events: bool_field(&form, "stream_events")?.unwrap_or(true),
    };
    // agentos takes `version` and does not use it: agents.toml holds one version of each
    // component.
    int_field(&form, "version")?;
    if component != Kind::Workflow {
        refuse_files(&form)?;
    }
    component.require(state.engine.config(), id)?;
    let mut request = run_request(&form, id, message, delivery.stream)?;
    let run_id = request.run_id.get_or_insert_with(new_id).clone();
    // A background run is accepted into the store's queue, so any server can run it.
    if delivery.background
        && let Some(presence) = state.engine.presence().cloned()
    {
        return super::queue::accept(state, presence, form, (component, id), request, delivery)
            .await;
    }

    let slot = reserve(&state)?;
    let engine = state.engine.clone();
    let span = run_span((component, id), &run_id, request.session_id.as_deref());
    let pending = start_detached(&state, &span, async move {
        engine.start_kind(component, request).await
    })
    .await?;
    deliver(
        state,
        slot,
        pending,
        (component, id),
        &run_id,
        delivery,
        span,
    )
    .await
}

/// The span every log line of a server run is written in, from its start (session, history,
/// the stored RUNNING row) to its end. A session the run creates has its id recorded in the
/// span when the engine opens it.
pub(super) fn run_span(
    (component, id): (Kind, &str),
    run_id: &str,
    session_id: Option<&str>,
) -> tracing::Span {
    let span = tracing::info_span!(
        "run",
        run_id = %run_id,
        session_id = tracing::field::Empty,
        component = %id,
        kind = %component.as_str(),
    );
    if let Some(session_id) = session_id {
        span.record("session_id", tracing::field::display(session_id));
    }
    span
}

/// Starts (or continues) a run in a task of its own. Starting stores the run RUNNING, so
/// if the client leaves before the run is handed over, the run is executed already
/// cancelled: it is stored CANCELLED instead of staying RUNNING forever.
pub(super) async fn start_detached(
    state: &Arc<AppState>,
    span: &tracing::Span,
    start: impl Future<Output = Result<PendingRun, EngineError>> + Send + 'static,
) -> Result<PendingRun, ApiError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let engine = state.engine.clone();
    tokio::spawn(tracing::Instrument::instrument(
        async move {
            let result = start.await;
            if let Err(Ok(orphan)) = tx.send(result) {
                let cancel = CancelToken::new();
                cancel.cancel();
                let _ = engine.execute(orphan, &cancel, &Discard).await;
            }
        },
        span.clone(),
    ));
    rx.await
        .map_err(|_| ApiError::internal("run start failed"))?
        .map_err(|err| span.in_scope(|| engine_error(err)))
}

/// Executes a started (or continued) run and answers as the form asked: a JSON run
/// object, an inline SSE stream, or a background run (202, or a stream with `event_index`).
pub(super) async fn deliver(
    state: Arc<AppState>,
    slot: Slot,
    pending: PendingRun,
    component: (Kind, &str),
    run_id: &str,
    delivery: Delivery,
    span: tracing::Span,
) -> ApiResult {
    let session_id = pending.session_id().to_string();
    let live = state
        .runs
        .admit(slot, run_id, component, &session_id, delivery.background);

    let filter = Filter {
        component: component.0,
        stream_events: delivery.stream_events,
    };
    if delivery.background {
        let follower = delivery.stream.then(|| {
            let (tx, rx) = mpsc::channel(STREAM_FRAMES);
            tokio::spawn(follow(live.clone(), 0, tx));
            rx
        });
        let sink = RunSink::Log {
            live: live.clone(),
            filter,
            next_index: AtomicU64::new(0),
        };
        spawn_execution(state, live, pending, sink, span);
        return Ok(match follower {
            Some(rx) => event_stream(Body::stream(rx, None)),
            None => json_response(
                StatusCode::ACCEPTED,
                &json!({"run_id": run_id, "session_id": session_id, "status": "PENDING"}),
            ),
        });
    }
    if delivery.stream {
        let (tx, rx) = mpsc::channel(STREAM_FRAMES);
        let cancel = live.cancel.clone();
        let sink = RunSink::Client {
            tx,
            filter,
            cancel: cancel.clone(),
        };
        spawn_execution(state, live, pending, sink, span);
        // The client going away drops the body, which cancels the run at once.
        return Ok(event_stream(Body::stream(
            rx,
            Some(Box::new(move || cancel.cancel())),
        )));
    }
    let guard = CancelOnDrop(Some(live.cancel.clone()));
    let handle = spawn_execution(state, live, pending, RunSink::Nobody, span);
    let run = handle
        .await
        .map_err(|_| ApiError::internal("JoinError"))?
        .map_err(engine_error)?;
    guard.disarm();
    Ok(ok(&super::schemas::run_response(&run)))
}

/// Takes a place under `--max-runs`, or answers 429.
pub(super) fn reserve(state: &AppState) -> Result<Slot, ApiError> {
    let limit = state.options.max_runs_in_flight;
    state.runs.reserve(limit).ok_or_else(|| {
        ApiError::retry_later(
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too many runs in flight (limit {limit}); retry later"),
            1,
        )
    })
}

/// Cancels a non-streaming run when its request future is dropped (client gone).
struct CancelOnDrop(Option<CancelToken>);

impl CancelOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(token) = self.0.take() {
            token.cancel();
        }
    }
}

/// SSE frames buffered between a run and its client.
const STREAM_FRAMES: usize = 32;

/// Which events a stream carries.
#[derive(Clone, Copy)]
struct Filter {
    component: Kind,
    stream_events: bool,
}

impl Filter {
    fn keeps(&self, event: &Event) -> bool {
        self.stream_events || self.component.keeps_without_stream_events(event)
    }
}

/// Where a server run's events go.
enum RunSink {
    /// Nobody watches (a non-streaming request).
    Nobody,
    /// The client of an inline stream; when it is gone the run is cancelled.
    Client {
        tx: mpsc::Sender<Bytes>,
        filter: Filter,
        cancel: CancelToken,
    },
    /// A background run's log, numbered with `event_index`.
    Log {
        live: Arc<LiveRun>,
        filter: Filter,
        next_index: AtomicU64,
    },
}

impl EventSink for RunSink {
    fn send<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            match self {
                RunSink::Nobody => {}
                RunSink::Client { tx, filter, cancel } => {
                    if filter.keeps(event) && tx.send(Bytes::from(event.to_sse())).await.is_err() {
                        cancel.cancel();
                    }
                }
                RunSink::Log {
                    live,
                    filter,
                    next_index,
                } => {
                    if filter.keeps(event) {
                        let mut event = event.clone();
                        event.event_index = Some(next_index.fetch_add(1, Ordering::Relaxed));
                        live.publish(Bytes::from(event.to_sse()));
                    }
                }
            }
        })
    }
}

/// Executes a started run as a task of its own, delivering its events to `sink`.
fn spawn_execution(
    state: Arc<AppState>,
    live: Arc<LiveRun>,
    pending: PendingRun,
    sink: RunSink,
    span: tracing::Span,
) -> tokio::task::JoinHandle<Result<AnyRun, EngineError>> {
    tokio::spawn(tracing::Instrument::instrument(
        async move {
            let cancel = live.cancel.clone();
            let result = state.engine.execute(pending, &cancel, &sink).await;
            let status = match &result {
                Ok(run) => run.status(),
                Err(_) => RunStatus::Error,
            };
            match &result {
                Err(err) => tracing::error!("the run could not be stored: {err}"),
                Ok(_) => tracing::debug!(status = status.as_str(), "run finished"),
            }
            state.runs.finish(&live, status);
            result
        },
        span,
    ))
}

/// `POST /{agents|teams|workflows}/{id}/runs/{run_id}/cancel`: always 200 `{}` for a
/// known component. A run this server executes is cancelled at once; one another process
/// executes is asked to stop through the store (its owner sees the request within
/// [`crate::presence::CANCEL_POLL`]); a background run still queued is marked in the
/// queue, so whichever server takes it up stores it CANCELLED without running it; a
/// PAUSED run is stored CANCELLED; an unknown run id is remembered so the run is
/// cancelled if it starts here later. A team's members and a
/// workflow's steps run under the run's cancel token, so they stop with it.
pub async fn cancel(
    state: Arc<AppState>,
    _req: Req,
    component: Kind,
    id: &str,
    run_id: &str,
) -> ApiResult {
    component.require(state.engine.config(), id)?;
    if !state.runs.cancel(run_id) {
        let store = state.engine.store();
        match store.request_cancel(run_id).await? {
            CancelOutcome::Requested { owner, .. } => {
                tracing::debug!(run_id, owner = ?owner, "cancel requested from the run's owner");
            }
            CancelOutcome::Queued => {
                tracing::debug!(run_id, "cancel recorded for a queued run");
            }
            // A paused run waits in the store, not in memory: cancel it there.
            CancelOutcome::Ended(RunStatus::Paused) => {
                cancel_paused(store, component, id, run_id).await?;
            }
            CancelOutcome::Ended(_) | CancelOutcome::Unknown => {}
        }
    }
    Ok(ok(&json!({})))
}

/// Stores a PAUSED run of the component as CANCELLED (cancellation stage `PAUSED`).
async fn cancel_paused(
    store: &crate::store::Store,
    component: Kind,
    id: &str,
    run_id: &str,
) -> Result<(), crate::store::StoreError> {
    if store.get_run(run_id).await?.is_some_and(|s| {
        s.run.kind() == component
            && s.run.component_id() == id
            && s.run.status() == RunStatus::Paused
    }) {
        store
            .transition_run(
                run_id,
                RunStatus::Paused,
                RunStatus::Cancelled,
                Some("PAUSED"),
            )
            .await?;
    }
    Ok(())
}

/// `POST /{agents|teams|workflows}/{id}/runs/{run_id}/resume`: replays the events after
/// `last_event_index`, then follows the run live while it is still going.
pub async fn resume(
    state: Arc<AppState>,
    req: Req,
    component: Kind,
    id: &str,
    run_id: &str,
) -> ApiResult {
    let form = form::parse(&req.headers, &req.body)?;
    let last = int_field(&form, "last_event_index")?.unwrap_or(-1);
    let session_id = form.get("session_id").filter(|s| !s.is_empty());
    let user_id = form.get("user_id").filter(|s| !s.is_empty());
    component.require(state.engine.config(), id)?;
    let live = state
        .runs
        .find(run_id)
        .filter(|l| l.component == component && l.component_id == id && l.background)
        .filter(|l| session_id.is_none_or(|s| s == l.session_id));
    if let (Some(live), Some(user)) = (&live, user_id)
        && !session_visible(&state, &live.session_id, user).await?
    {
        return Err(ApiError::not_found("Run not found"));
    }
    if let Some(live) = live {
        let from = usize::try_from(last.saturating_add(1)).unwrap_or(0);
        let snapshot = live.snapshot(from);
        let total = snapshot.total;
        let missed = snapshot.frames.len();
        let status = snapshot.status.map_or("RUNNING", RunStatus::as_str);
        let message = format!("Run {status}. Replaying {missed} missed events (of {total} total).");
        let replay = python_json(&[
            ("event", json!("replay")),
            ("run_id", json!(run_id)),
            ("status", json!(status)),
            ("total_events", json!(missed)),
            ("total_buffered", json!(total)),
            ("last_event_index_requested", json!(last)),
            ("message", json!(message)),
        ]);
        let (tx, rx) = mpsc::channel(STREAM_FRAMES);
        let first = Bytes::from(format!("event: replay\ndata: {replay}\n\n"));
        tokio::spawn(async move {
            if tx.send(first).await.is_ok() {
                for frame in snapshot.frames {
                    if tx.send(frame).await.is_err() {
                        return;
                    }
                }
                if snapshot.status.is_none() {
                    follow(live, snapshot.next, tx).await;
                }
            }
        });
        return Ok(event_stream(Body::stream(rx, None)));
    }

    let store = state.engine.store();
    let mut stored = store.get_run(run_id).await?;
    if stored.is_none() {
        if store.queued_run(run_id).await?.is_some() {
            return resume_queued(&state, (component, id), run_id, (session_id, user_id), last)
                .await;
        }
        // It may have begun between the two looks: a run leaves the queue only once its
        // row exists.
        stored = store.get_run(run_id).await?;
    }
    let Some(stored) = stored.filter(|s| {
        s.run.kind() == component
            && s.run.component_id() == id
            && session_id.is_none_or(|sid| sid == s.run.session_id())
    }) else {
        return Err(ApiError::not_found("Run not found"));
    };
    if let Some(user) = user_id
        && !session_visible(&state, stored.run.session_id(), user).await?
    {
        return Err(ApiError::not_found("Run not found"));
    }
    // Executing elsewhere (or inline here): follow its journal in the store, or replay
    // the events it stored when it ended without one.
    let from = u64::try_from(last.saturating_add(1)).unwrap_or(0);
    let start = crate::presence::follow::start(store, run_id, from).await?;
    let live = matches!(stored.run.status(), RunStatus::Running | RunStatus::Pending);
    if live || start.journaled || !stored.events.is_empty() {
        let status = start.status.unwrap_or(stored.run.status()).as_str();
        let (missed, total) = if live || start.journaled {
            (start.missed as u64, start.total)
        } else {
            // The terminal event comes however far the client had got.
            let total = stored.events.len() as u64;
            (total.saturating_sub(from).max(1), total)
        };
        let message = format!("Run {status}. Replaying {missed} missed events (of {total} total).");
        let replay = python_json(&[
            ("event", json!("replay")),
            ("run_id", json!(run_id)),
            ("status", json!(status)),
            ("total_events", json!(missed)),
            ("total_buffered", json!(total)),
            ("last_event_index_requested", json!(last)),
            ("message", json!(message)),
        ]);
        let first = Bytes::from(format!("event: replay\ndata: {replay}\n\n"));
        return Ok(journal_stream(store, run_id, from, Some(first)));
    }
    let status = stored.run.status().as_str();
    let replay = python_json(&[
        ("event", json!("replay")),
        ("run_id", json!(run_id)),
        ("status", json!(status)),
        ("total_events", json!(0)),
        (
            "message",
            json!(format!(
                "Run {status} with no stored events: a run submitted without streaming keeps only its final output."
            )),
        ),
    ]);
    Ok(event_stream(Body::full(Bytes::from(format!(
        "event: replay\ndata: {replay}\n\n"
    )))))
}

/// `resume` of a background run still waiting in the queue: followed from the store from
/// when it begins.
async fn resume_queued(
    state: &AppState,
    (component, id): (Kind, &str),
    run_id: &str,
    (session_id, user_id): (Option<&str>, Option<&str>),
    last: i64,
) -> ApiResult {
    let store = state.engine.store();
    if super::sessions::visible_queued_run(store, (component, id), run_id, session_id, user_id)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found("Run not found"));
    }
    let replay = python_json(&[
        ("event", json!("replay")),
        ("run_id", json!(run_id)),
        ("status", json!("PENDING")),
        ("total_events", json!(0)),
        ("total_buffered", json!(0)),
        ("last_event_index_requested", json!(last)),
        (
            "message",
            json!("Run PENDING. Replaying 0 missed events (of 0 total)."),
        ),
    ]);
    let first = Bytes::from(format!("event: replay\ndata: {replay}\n\n"));
    let from = u64::try_from(last.saturating_add(1)).unwrap_or(0);
    Ok(journal_stream(store, run_id, from, Some(first)))
}

/// An SSE stream of a run's events from the store's journal, from position `from` on,
/// each with its `event_index`, following the run wherever it executes (after `first`,
/// when given).
pub(super) fn journal_stream(
    store: &crate::store::Store,
    run_id: &str,
    from: u64,
    first: Option<Bytes>,
) -> hyper::Response<Body> {
    let (tx, rx) = mpsc::channel(STREAM_FRAMES);
    let (store, run_id) = (store.clone(), run_id.to_string());
    tokio::spawn(async move {
        if let Some(first) = first
            && tx.send(first).await.is_err()
        {
            return;
        }
        let (events_tx, mut events) = mpsc::channel(STREAM_FRAMES);
        let following = tokio::spawn(crate::presence::follow::follow(
            store, run_id, from, events_tx,
        ));
        while let Some((seq, mut event)) = events.recv().await {
            event["event_index"] = json!(seq);
            let name = event["event"].as_str().unwrap_or("message").to_string();
            let frame = format!("event: {name}\ndata: {event}\n\n");
            if tx.send(Bytes::from(frame)).await.is_err() {
                break;
            }
        }
        following.abort();
    });
    event_stream(Body::stream(rx, None))
}

/// Whether `user_id` may see the session ([`crate::store::Session::visible_to`]).
async fn session_visible(
    state: &AppState,
    session_id: &str,
    user_id: &str,
) -> Result<bool, ApiError> {
    let session = state.engine.store().get_session(session_id).await?;
    Ok(session.is_some_and(|s| s.visible_to(Some(user_id))))
}

/// JSON with Python's default separators (`", "`, `": "`), as AgentOS writes `replay` frames.
fn python_json(pairs: &[(&str, Value)]) -> String {
    let fields: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}: {}", json!(k), v))
        .collect();
    format!("{{{}}}", fields.join(", "))
}

pub(super) fn bool_field(form: &Form, name: &str) -> Result<Option<bool>, ApiError> {
    form.get(name)
        .map(|v| form::parse_bool(name, v))
        .transpose()
}

/// An integer form field, parsed as pydantic parses one: surrounding whitespace and a zero
/// fraction allowed (`" 3 "`, `"4.0"`), of any size, anything else FastAPI's 422
/// `int_parsing` error.
/// An empty value counts as absent, as FastAPI takes an empty form field.
fn int_field(form: &Form, name: &str) -> Result<Option<i64>, ApiError> {
    let Some(raw) = form.get(name).filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    let trimmed = raw.trim();
    let whole = match trimmed.split_once('.') {
        Some((whole, fraction)) if fraction.bytes().all(|b| b == b'0') => whole,
        Some(_) => "",
        None => trimmed,
    };
    let digits = whole.strip_prefix(['+', '-']).unwrap_or(whole);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        // Python's integers have no bound: one past i64 is taken as i64's end.
        let value = whole.parse::<i64>().unwrap_or(if whole.starts_with('-') {
            i64::MIN
        } else {
            i64::MAX
        });
        return Ok(Some(value));
    }
    Err(ApiError::validation(
        "int_parsing",
        "body",
        name,
        "Input should be a valid integer, unable to parse string as an integer",
        Value::String(raw.to_string()),
    ))
}

/// Uploaded `files` are refused rather than dropped: agentos does not pass attachments to
/// models. A browser's empty file input (no name, no bytes) is no upload.
fn refuse_files(form: &Form) -> Result<(), ApiError> {
    match form
        .files()
        .iter()
        .find(|f| f.name == "files" && !(f.filename.is_empty() && f.data.is_empty()))
    {
        Some(file) => Err(ApiError::bad_request(format!(
            "File uploads are not supported by agentos (file `{}`): send its text in `message`",
            file.filename
        ))),
        None => Ok(()),
    }
}

/// A JSON object field; invalid JSON or another type is ignored, as AgentOS does. An
/// object nested too deeply to be stored is refused (422 naming the field).
fn lenient_object(form: &Form, name: &str) -> Result<Option<Map<String, Value>>, ApiError> {
    let Some(raw) = form.get(name) else {
        return Ok(None);
    };
    match serde_json::from_str::<Value>(raw) {
        Ok(value) if value.is_object() => {
            not_too_deep(name, &value)?;
            Ok(value_into_object(value))
        }
        _ => Ok(None),
    }
}

fn value_into_object(value: Value) -> Option<Map<String, Value>> {
    match value {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// 422 naming `field` when `value` nests deeper than agentos stores.
pub(super) fn not_too_deep(field: &str, value: &Value) -> Result<(), ApiError> {
    crate::limits::check_depth(value)
        .map_err(|msg| ApiError::validation("json_too_deep", "body", field, &msg, Value::Null))
}

/// The engine request from the form's fields (spec §4.1 conversions).
pub(super) fn run_request(
    form: &Form,
    id: &str,
    message: String,
    stream: bool,
) -> Result<RunRequest, ApiError> {
    let metadata = match form.get("metadata").map(serde_json::from_str::<Value>) {
        None | Some(Err(_)) | Some(Ok(Value::Null)) => None,
        Some(Ok(value)) if value.is_object() => {
            not_too_deep("metadata", &value)?;
            value_into_object(value)
        }
        Some(Ok(_)) => {
            return Err(ApiError::bad_request(
                "Invalid metadata parameter: expected a JSON object",
            ));
        }
    };
    let use_json_schema = form
        .get("use_json_schema")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let output_schema = match form.get("output_schema").filter(|s| !s.trim().is_empty()) {
        None => None,
        Some(raw) => {
            let value: Value = serde_json::from_str(raw).map_err(|_| {
                ApiError::unprocessable("Invalid output_schema: expected a JSON object schema")
            })?;
            not_too_deep("output_schema", &value)?;
            let schema = if use_json_schema {
                OutputSchema::from_response_format(&value)
            } else {
                OutputSchema::from_schema(&value)
            };
            Some(schema.map_err(|e| ApiError::unprocessable(e.0))?)
        }
    };
    let add_history_to_context = match form.get("add_history_to_context") {
        None => None,
        Some(v) => Some(form::parse_bool("add_history_to_context", v)?),
    };
    let non_empty = |name: &str| form.get(name).filter(|v| !v.is_empty()).map(str::to_string);
    Ok(RunRequest {
        agent_id: id.to_string(),
        message,
        session_id: non_empty("session_id"),
        user_id: non_empty("user_id"),
        run_id: non_empty("run_id"),
        session_state: lenient_object(form, "session_state")?,
        dependencies: lenient_object(form, "dependencies")?,
        metadata,
        output_schema,
        model_override: None,
        add_history_to_context,
        stream,
    })
}

/// Why a run could not start, as HTTP.
fn engine_error(err: EngineError) -> ApiError {
    match err {
        EngineError::AgentNotFound(_) => ApiError::not_found("Agent not found"),
        EngineError::TeamNotFound(_) => ApiError::not_found("Team not found"),
        EngineError::WorkflowNotFound(_) => ApiError::not_found("Workflow not found"),
        EngineError::SessionNotFound(_) => ApiError::not_found("Session not found"),
        EngineError::RunExists(id) => ApiError::conflict(format!("Run {id} already exists")),
        EngineError::ToolsUnavailable(msg) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Tools unavailable: {msg}"),
        ),
        err @ EngineError::RunNotFound(_) => ApiError::not_found(err.to_string()),
        err @ EngineError::NotPaused { .. } => ApiError::conflict(err.to_string()),
        EngineError::InvalidRequest(msg) => ApiError::unprocessable(msg),
        EngineError::Config(err) => {
            tracing::error!("{err}");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Model not available: {}", err.message),
            )
        }
        EngineError::Store(err) => ApiError::from(err),
    }
}

/// `POST /agents/{agent_id}/runs/{run_id}/continue`: resumes a PAUSED run with the
/// decisions in `tools` (the paused tool objects with `confirmed` and `confirmation_note`).
/// The continued run's events carry `event_index`, as AgentOS numbers them.
pub async fn continue_run(
    state: Arc<AppState>,
    req: Req,
    agent_id: &str,
    run_id: &str,
) -> ApiResult {
    let form = form::parse(&req.headers, &req.body)?;
    let stream = bool_field(&form, "stream")?.unwrap_or(true);
    Kind::Agent.require(state.engine.config(), agent_id)?;
    let session_id = form
        .get("session_id")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request("session_id is required for this action"))?
        .to_string();
    let decisions = match form.get("tools").filter(|t| !t.trim().is_empty()) {
        None => Vec::new(),
        Some(raw) => match serde_json::from_str::<Value>(raw) {
            Ok(Value::Array(items)) => items
                .iter()
                .filter_map(|item| {
                    Some(ToolDecision {
                        tool_call_id: item.get("tool_call_id")?.as_str()?.to_string(),
                        confirmed: item.get("confirmed").and_then(Value::as_bool) == Some(true),
                        note: item
                            .get("confirmation_note")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                    })
                })
                .collect(),
            _ => return Err(ApiError::bad_request("Invalid JSON in tools field")),
        },
    };
    if state.runs.is_live(run_id) {
        return Err(ApiError::conflict(format!(
            "Cannot continue run {run_id}: run is running"
        )));
    }
    let slot = reserve(&state)?;
    let engine = state.engine.clone();
    let user_id = form
        .get("user_id")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let span = run_span((Kind::Agent, agent_id), run_id, Some(&session_id));
    let (agent, run, session) = (agent_id.to_string(), run_id.to_string(), session_id);
    let pending = start_detached(&state, &span, async move {
        engine
            .continue_run(
                &agent,
                &run,
                (Some(&session), user_id.as_deref()),
                &decisions,
                stream,
            )
            .await
    })
    .await;
    let pending = match pending {
        Ok(pending) => pending,
        // A stream answers 200 with one anonymous RunError frame, as AgentOS does.
        Err(err) if stream && err.status == StatusCode::CONFLICT => {
            return Ok(event_stream(Body::full(Bytes::from(
                not_continuable_frame(err.detail.as_str().unwrap_or_default()),
            ))));
        }
        Err(err) => return Err(err),
    };
    let delivery = Delivery {
        stream,
        background: stream,
        stream_events: true,
    };
    deliver(
        state,
        slot,
        pending,
        (Kind::Agent, agent_id),
        run_id,
        delivery,
        span,
    )
    .await
}

/// The SSE frame AgentOS sends when a streamed continue finds the run not paused: a
/// `RunError` with empty agent fields and no run or session id.
fn not_continuable_frame(message: &str) -> String {
    let data = json!({
        "created_at": crate::run::now_secs(),
        "event": "RunError",
        "agent_id": "",
        "agent_name": "",
        "nested_depth": 0,
        "content": message,
    });
    format!("event: RunError\ndata: {data}\n\n")
}

/// `POST /workflows/{workflow_id}/runs/{run_id}/continue`. Only a PAUSED workflow run can
/// be continued, and agentos workflows never pause, so a run that exists is refused with
/// AgentOS's 409 for its status. Checked in AgentOS's order: `step_requirements` JSON (400),
/// the workflow (404), the run in the given session (404), its status (409).
pub async fn continue_workflow(
    state: Arc<AppState>,
    req: Req,
    workflow_id: &str,
    run_id: &str,
) -> ApiResult {
    let form = form::parse(&req.headers, &req.body)?;
    bool_field(&form, "stream")?;
    bool_field(&form, "background")?;
    if let Some(raw) = form.get("step_requirements").filter(|r| !r.is_empty())
        && serde_json::from_str::<Value>(raw).is_err()
    {
        return Err(ApiError::bad_request(
            "Invalid JSON in step_requirements field",
        ));
    }
    Kind::Workflow.require(state.engine.config(), workflow_id)?;
    let session_id = form
        .get("session_id")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let user_id = form
        .get("user_id")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let store = state.engine.store();
    // The run is looked up in the session the client names, as AgentOS does.
    let mut status = None;
    if let Some(session_id) = session_id
        && store
            .get_session(&session_id)
            .await?
            .is_some_and(|s| s.visible_to(user_id.as_deref()))
    {
        status = store
            .get_run(run_id)
            .await?
            .filter(|s| {
                s.run.kind() == Kind::Workflow
                    && s.run.component_id() == workflow_id
                    && s.run.session_id() == session_id
            })
            .map(|s| s.run.status());
    }
    let Some(status) = status else {
        return Err(ApiError::not_found("Run not found"));
    };
    Err(match status {
        RunStatus::Pending => ApiError::conflict("run is already pending"),
        RunStatus::Running => ApiError::conflict("run is already running"),
        RunStatus::Completed => ApiError::conflict("run is already completed"),
        RunStatus::Error => ApiError::conflict("run has errored"),
        RunStatus::Cancelled => ApiError::conflict("run is already cancelled"),
        RunStatus::Paused => ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "Continuing a paused workflow run is not supported",
        ),
    })
}
