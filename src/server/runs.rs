//! Run endpoints of agents, teams and workflows: create (inline, streaming, background),
//! cancel, resume and continue, and the registry of runs in flight that makes cancel and
//! resume possible. One code path serves the three kinds of component; [`Component`]
//! holds what differs between them.
//!
//! A run executes on a blocking thread. Inline streams get its events through a channel
//! whose body cancels the run when dropped (the client left). Background runs keep every
//! SSE frame, numbered with `event_index`, so `resume` can replay what a client missed and
//! then follow the run live.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::StatusCode;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use super::AppState;
use super::body::Body;
use super::error::{ApiError, ApiResult};
use super::form::{self, Form};
use super::request::Req;
use super::response::{event_stream, json_response, ok};
use crate::cancel::CancelToken;
use crate::config::Config;
use crate::engine::{Engine, EngineError, PendingRun, RunRequest, ToolDecision};
use crate::event::Event;
use crate::run::{AnyRun, RunKind, RunRecord, RunStatus, new_id};
use crate::schema::OutputSchema;
use crate::store::SessionType;

/// Finished background runs kept in memory for `resume`.
const KEEP_FINISHED: usize = 256;
/// Cancel requests remembered for runs that have not started (cancel before start).
const KEEP_EARLY_CANCELS: usize = 4096;

/// What a run endpoint serves: `/agents/…`, `/teams/…` or `/workflows/…`. Agents, teams
/// and workflows share one id namespace, but each route only reaches its own kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    Agent,
    Team,
    Workflow,
}

impl Component {
    /// The 404 for an id that names no component of this kind.
    pub fn not_found(self) -> ApiError {
        ApiError::not_found(match self {
            Component::Agent => "Agent not found",
            Component::Team => "Team not found",
            Component::Workflow => "Workflow not found",
        })
    }

    /// Whether `agents.toml` defines a component of this kind with this id.
    pub fn exists(self, config: &Config, id: &str) -> bool {
        match self {
            Component::Agent => config.agent(id).is_some(),
            Component::Team => config.team(id).is_some(),
            Component::Workflow => config.workflow(id).is_some(),
        }
    }

    /// 404 unless the component exists.
    pub fn require(self, config: &Config, id: &str) -> Result<(), ApiError> {
        if self.exists(config, id) {
            Ok(())
        } else {
            Err(self.not_found())
        }
    }

    /// The kind of the runs it makes.
    pub fn run_kind(self) -> RunKind {
        match self {
            Component::Agent => RunKind::Agent,
            Component::Team => RunKind::Team,
            Component::Workflow => RunKind::Workflow,
        }
    }

    /// The type of the sessions its runs are stored in.
    pub fn session_type(self) -> SessionType {
        match self {
            Component::Agent => SessionType::Agent,
            Component::Team => SessionType::Team,
            Component::Workflow => SessionType::Workflow,
        }
    }

    /// Validates a run request (`req.agent_id` is the component id) and stores the run
    /// RUNNING.
    fn start(self, engine: &Engine, req: RunRequest) -> Result<PendingRun, EngineError> {
        match self {
            Component::Agent => engine.start(req),
            Component::Team => engine.start_team(req),
            Component::Workflow => engine.start_workflow(req),
        }
    }

    /// Whether a stream asked for with `stream_events=false` carries this event: only the
    /// component's own content deltas for agents and teams (member events are left out);
    /// every event for workflows, whose content comes from their steps' agents.
    fn keeps_without_stream_events(self, event: &Event) -> bool {
        match self {
            Component::Agent => event.event == "RunContent" && !event.source.is_nested(),
            Component::Team => event.event == "TeamRunContent" && !event.source.is_nested(),
            Component::Workflow => true,
        }
    }
}

/// Runs in flight, and recently finished background runs, by run id.
#[derive(Default)]
pub struct Registry {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    live: HashMap<String, Arc<LiveRun>>,
    /// Runs admitted under the in-flight limit but not yet executing.
    reserved: usize,
    early_cancels: HashSet<String>,
    early_order: VecDeque<String>,
    finished: VecDeque<Arc<LiveRun>>,
}

/// One run the server is executing (or executed in the background).
pub struct LiveRun {
    pub run_id: String,
    pub component: Component,
    /// The agent, team or workflow id.
    pub component_id: String,
    pub session_id: String,
    pub cancel: CancelToken,
    background: bool,
    log: Mutex<RunLog>,
}

#[derive(Default)]
struct RunLog {
    /// Every SSE frame of a background run, in order; frame `i` has `event_index` i.
    frames: Vec<Bytes>,
    /// Set when the run is over.
    status: Option<RunStatus>,
    /// Clients following the run live.
    subscribers: Vec<mpsc::UnboundedSender<Bytes>>,
}

impl LiveRun {
    fn log(&self) -> MutexGuard<'_, RunLog> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a frame and sends it to every live subscriber.
    fn publish(&self, frame: Bytes) {
        let mut log = self.log();
        log.subscribers.retain(|tx| tx.send(frame.clone()).is_ok());
        log.frames.push(frame);
    }

    fn close(&self, status: RunStatus) {
        let mut log = self.log();
        log.status = Some(status);
        log.subscribers.clear();
    }
}

impl Registry {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs executing now.
    pub fn in_flight(&self) -> usize {
        self.inner().live.len()
    }

    /// Takes a place under the in-flight limit; `None` when none is left. The place is
    /// given back when the [`Slot`] is dropped before [`Registry::admit`] takes it over.
    fn reserve(self: &Arc<Self>, limit: usize) -> Option<Slot> {
        let mut inner = self.inner();
        if inner.live.len() + inner.reserved >= limit {
            return None;
        }
        inner.reserved += 1;
        Some(Slot(Some(self.clone())))
    }

    /// Registers a run about to execute, taking over its slot; a cancel that arrived
    /// first cancels it at once.
    fn admit(
        &self,
        mut slot: Slot,
        run_id: &str,
        (component, component_id): (Component, &str),
        session_id: &str,
        background: bool,
    ) -> Arc<LiveRun> {
        slot.0 = None;
        let live = Arc::new(LiveRun {
            run_id: run_id.to_string(),
            component,
            component_id: component_id.to_string(),
            session_id: session_id.to_string(),
            cancel: CancelToken::new(),
            background,
            log: Mutex::new(RunLog::default()),
        });
        let mut inner = self.inner();
        inner.reserved = inner.reserved.saturating_sub(1);
        if inner.early_cancels.remove(run_id) {
            live.cancel.cancel();
        }
        inner.live.insert(run_id.to_string(), live.clone());
        live
    }

    /// Takes a run out of the in-flight set; background runs stay resumable for a while.
    fn finish(&self, live: &Arc<LiveRun>, status: RunStatus) {
        live.close(status);
        let mut inner = self.inner();
        inner.live.remove(&live.run_id);
        if live.background {
            // A continued run reuses its id: keep only the newest entry.
            inner.finished.retain(|r| r.run_id != live.run_id);
            inner.finished.push_back(live.clone());
            while inner.finished.len() > KEEP_FINISHED {
                inner.finished.pop_front();
            }
        }
    }

    /// Whether a run with this id is executing now.
    fn is_live(&self, run_id: &str) -> bool {
        self.inner().live.contains_key(run_id)
    }

    /// Cancels a running run, or remembers the request for a run that has not started.
    /// Returns whether the run was executing.
    pub fn cancel(&self, run_id: &str) -> bool {
        let mut inner = self.inner();
        if let Some(live) = inner.live.get(run_id) {
            let live = live.clone();
            drop(inner);
            live.cancel.cancel();
            return true;
        }
        if inner.early_cancels.insert(run_id.to_string()) {
            inner.early_order.push_back(run_id.to_string());
            while inner.early_order.len() > KEEP_EARLY_CANCELS {
                if let Some(old) = inner.early_order.pop_front() {
                    inner.early_cancels.remove(&old);
                }
            }
        }
        false
    }

    fn find(&self, run_id: &str) -> Option<Arc<LiveRun>> {
        let inner = self.inner();
        inner
            .live
            .get(run_id)
            .cloned()
            .or_else(|| inner.finished.iter().find(|r| r.run_id == run_id).cloned())
    }

    /// Cancels every run in flight (server shutdown).
    pub fn cancel_all(&self) {
        let live: Vec<_> = self.inner().live.values().cloned().collect();
        for run in live {
            run.cancel.cancel();
        }
    }

    /// Waits until no run is in flight, at most `grace`.
    pub async fn wait_idle(&self, grace: Duration) {
        let deadline = Instant::now() + grace;
        while self.in_flight() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A place under `--max-runs` held for a run that is starting.
pub(super) struct Slot(Option<Arc<Registry>>);

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(registry) = self.0.take() {
            let mut inner = registry.inner();
            inner.reserved = inner.reserved.saturating_sub(1);
        }
    }
}

/// What the form asks of a run besides the engine request.
struct Delivery {
    stream: bool,
    background: bool,
    stream_events: bool,
}

/// `POST /agents/{id}/runs`, `POST /teams/{id}/runs` and `POST /workflows/{id}/runs`.
pub async fn create(state: Arc<AppState>, req: Req, component: Component, id: &str) -> ApiResult {
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
    component.require(state.engine.config(), id)?;
    let mut request = run_request(&form, id, message, delivery.stream)?;
    let run_id = request.run_id.get_or_insert_with(new_id).clone();

    let slot = reserve(&state)?;
    let engine = state.engine.clone();
    let pending = start_detached(&state, move || component.start(&engine, request)).await?;
    deliver(state, slot, pending, (component, id), &run_id, delivery).await
}

/// Starts (or continues) a run on a blocking thread. Starting stores the run RUNNING, so
/// if the client leaves before the run is handed over, the run is executed already
/// cancelled: it is stored CANCELLED instead of staying RUNNING forever.
async fn start_detached(
    state: &Arc<AppState>,
    start: impl FnOnce() -> Result<PendingRun, EngineError> + Send + 'static,
) -> Result<PendingRun, ApiError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let engine = state.engine.clone();
    tokio::task::spawn_blocking(move || {
        let result = start();
        if let Err(Ok(orphan)) = tx.send(result) {
            let cancel = CancelToken::new();
            cancel.cancel();
            let _ = engine.execute(orphan, &cancel, &mut |_| {});
        }
    });
    rx.await
        .map_err(|_| ApiError::internal("run start failed"))?
        .map_err(engine_error)
}

/// Executes a started (or continued) run and answers as the form asked: a JSON run
/// object, an inline SSE stream, or a background run (202, or a stream with `event_index`).
async fn deliver(
    state: Arc<AppState>,
    slot: Slot,
    pending: PendingRun,
    component: (Component, &str),
    run_id: &str,
    delivery: Delivery,
) -> ApiResult {
    let session_id = pending.session_id().to_string();
    let live = state
        .runs
        .admit(slot, run_id, component, &session_id, delivery.background);

    if delivery.background {
        let rx = delivery.stream.then(|| subscribe(&live));
        spawn_execution(state, live, pending, None, delivery.stream_events);
        return Ok(match rx {
            Some(rx) => event_stream(Body::stream(rx, None)),
            None => json_response(
                StatusCode::ACCEPTED,
                &json!({"run_id": run_id, "session_id": session_id, "status": "PENDING"}),
            ),
        });
    }
    if delivery.stream {
        let (tx, rx) = mpsc::unbounded_channel();
        let cancel = live.cancel.clone();
        spawn_execution(state, live, pending, Some(tx), delivery.stream_events);
        // The client going away drops the body, which cancels the run at once.
        return Ok(event_stream(Body::stream(
            rx,
            Some(Box::new(move || cancel.cancel())),
        )));
    }
    let guard = CancelOnDrop(Some(live.cancel.clone()));
    let handle = spawn_execution(state, live, pending, None, false);
    let run = handle
        .await
        .map_err(|_| ApiError::internal("JoinError"))?
        .map_err(engine_error)?;
    guard.disarm();
    Ok(ok(&super::schemas::run_response(&run)))
}

/// Takes a place under `--max-runs`, or answers 429.
fn reserve(state: &AppState) -> Result<Slot, ApiError> {
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

/// Executes a started run on a blocking thread, delivering its events as SSE frames.
fn spawn_execution(
    state: Arc<AppState>,
    live: Arc<LiveRun>,
    pending: PendingRun,
    inline: Option<mpsc::UnboundedSender<Bytes>>,
    stream_events: bool,
) -> tokio::task::JoinHandle<Result<AnyRun, EngineError>> {
    tokio::task::spawn_blocking(move || {
        let mut next_index = 0u64;
        let background = live.background;
        let component = live.component;
        let cancel = live.cancel.clone();
        let result = state.engine.execute(pending, &cancel, &mut |event| {
            if !stream_events && !component.keeps_without_stream_events(event) {
                return;
            }
            if background {
                let mut event = event.clone();
                event.event_index = Some(next_index);
                next_index += 1;
                live.publish(Bytes::from(event.to_sse()));
            } else if let Some(tx) = &inline
                && tx.send(Bytes::from(event.to_sse())).is_err()
            {
                cancel.cancel();
            }
        });
        let status = match &result {
            Ok(run) => run.status(),
            Err(_) => RunStatus::Error,
        };
        if let Err(err) = &result {
            eprintln!("agentos: run {} could not be stored: {err}", live.run_id);
        }
        state.runs.finish(&live, status);
        result
    })
}

/// Subscribes to a background run from its first frame on.
fn subscribe(live: &Arc<LiveRun>) -> mpsc::UnboundedReceiver<Bytes> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut log = live.log();
    for frame in &log.frames {
        let _ = tx.send(frame.clone());
    }
    if log.status.is_none() {
        log.subscribers.push(tx);
    }
    rx
}

/// `POST /{agents|teams|workflows}/{id}/runs/{run_id}/cancel`: always 200 `{}` for a
/// known component; an unknown run id is remembered so the run is cancelled if it starts
/// later. A team's members and a workflow's steps run under the run's cancel token, so
/// they stop with it.
pub async fn cancel(
    state: Arc<AppState>,
    _req: Req,
    component: Component,
    id: &str,
    run_id: &str,
) -> ApiResult {
    component.require(state.engine.config(), id)?;
    if !state.runs.cancel(run_id) {
        // A paused run waits in the store, not in memory: cancel it there.
        let store = state.engine.store().clone();
        let (id, run) = (id.to_string(), run_id.to_string());
        tokio::task::spawn_blocking(move || cancel_paused(&store, component, &id, &run))
            .await
            .map_err(|_| ApiError::internal("JoinError"))??;
    }
    Ok(ok(&json!({})))
}

/// Stores a PAUSED run of the component as CANCELLED (cancellation stage `PAUSED`).
fn cancel_paused(
    store: &crate::store::Store,
    component: Component,
    id: &str,
    run_id: &str,
) -> Result<(), crate::store::StoreError> {
    if store.get_run(run_id)?.is_some_and(|s| {
        s.run.kind() == component.run_kind()
            && s.run.component_id() == id
            && s.run.status() == RunStatus::Paused
    }) {
        store.transition_run(
            run_id,
            RunStatus::Paused,
            RunStatus::Cancelled,
            Some("PAUSED"),
        )?;
    }
    Ok(())
}

/// `POST /{agents|teams|workflows}/{id}/runs/{run_id}/resume`: replays the events after
/// `last_event_index`, then follows the run live while it is still going.
pub async fn resume(
    state: Arc<AppState>,
    req: Req,
    component: Component,
    id: &str,
    run_id: &str,
) -> ApiResult {
    let form = form::parse(&req.headers, &req.body)?;
    let last: i64 = match form
        .get("last_event_index")
        .filter(|v| !v.trim().is_empty())
    {
        None => -1,
        Some(v) => v.trim().parse().map_err(|_| {
            ApiError::validation(
                "int_parsing",
                "body",
                "last_event_index",
                "Input should be a valid integer, unable to parse string as an integer",
                Value::String(v.to_string()),
            )
        })?,
    };
    let session_id = form.get("session_id").filter(|s| !s.is_empty());
    let user_id = form.get("user_id").filter(|s| !s.is_empty());
    component.require(state.engine.config(), id)?;
    let (tx, rx) = mpsc::unbounded_channel();
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
        let mut log = live.log();
        let total = log.frames.len();
        let from = usize::try_from(last.saturating_add(1))
            .unwrap_or(0)
            .min(total);
        let missed = total - from;
        let status = log.status.map_or("RUNNING", RunStatus::as_str);
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
        let _ = tx.send(Bytes::from(format!("event: replay\ndata: {replay}\n\n")));
        for frame in &log.frames[from..] {
            let _ = tx.send(frame.clone());
        }
        if log.status.is_none() {
            log.subscribers.push(tx);
        }
        return Ok(event_stream(Body::stream(rx, None)));
    }

    let store = state.engine.store().clone();
    let wanted = run_id.to_string();
    let stored = tokio::task::spawn_blocking(move || store.get_run(&wanted))
        .await
        .map_err(|_| ApiError::internal("JoinError"))??;
    let Some(stored) = stored.filter(|s| {
        s.run.kind() == component.run_kind()
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
    let _ = tx.send(Bytes::from(format!("event: replay\ndata: {replay}\n\n")));
    drop(tx);
    Ok(event_stream(Body::stream(rx, None)))
}

/// Whether `user_id` may see the session ([`crate::store::Session::visible_to`]).
async fn session_visible(
    state: &AppState,
    session_id: &str,
    user_id: &str,
) -> Result<bool, ApiError> {
    let store = state.engine.store().clone();
    let (session_id, user_id) = (session_id.to_string(), user_id.to_string());
    let session = tokio::task::spawn_blocking(move || store.get_session(&session_id))
        .await
        .map_err(|_| ApiError::internal("JoinError"))??;
    Ok(session.is_some_and(|s| s.visible_to(Some(&user_id))))
}

/// JSON with Python's default separators (`", "`, `": "`), as AgentOS writes `replay` frames.
fn python_json(pairs: &[(&str, Value)]) -> String {
    let fields: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}: {}", json!(k), v))
        .collect();
    format!("{{{}}}", fields.join(", "))
}

fn bool_field(form: &Form, name: &str) -> Result<Option<bool>, ApiError> {
    form.get(name)
        .map(|v| form::parse_bool(name, v))
        .transpose()
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
fn run_request(
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
            eprintln!("agentos: {err}");
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
    Component::Agent.require(state.engine.config(), agent_id)?;
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
    let (agent, run, session) = (agent_id.to_string(), run_id.to_string(), session_id);
    let pending = start_detached(&state, move || {
        engine.continue_run(
            &agent,
            &run,
            (Some(&session), user_id.as_deref()),
            &decisions,
            stream,
        )
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
        (Component::Agent, agent_id),
        run_id,
        delivery,
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
    Component::Workflow.require(state.engine.config(), workflow_id)?;
    let session_id = form
        .get("session_id")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let user_id = form
        .get("user_id")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let store = state.engine.store().clone();
    let (workflow, run) = (workflow_id.to_string(), run_id.to_string());
    let status = tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
        // The run is looked up in the session the client names, as AgentOS does.
        let Some(session_id) = session_id else {
            return Ok(None);
        };
        let Some(session) = store.get_session(&session_id)? else {
            return Ok(None);
        };
        if !session.visible_to(user_id.as_deref()) {
            return Ok(None);
        }
        Ok(store
            .get_run(&run)?
            .filter(|s| {
                s.run.kind() == RunKind::Workflow
                    && s.run.component_id() == workflow
                    && s.run.session_id() == session_id
            })
            .map(|s| s.run.status()))
    })
    .await
    .map_err(|_| ApiError::internal("JoinError"))??;
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
