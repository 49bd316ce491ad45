//! Background runs go through the store's queue, so a run accepted is a run executed:
//! the server that accepts one (`background=true`) queues it, then takes it up at once
//! when it has room under `--max-runs`. Otherwise the run waits in the queue, and any
//! server sharing the store takes it up as soon as it has room (woken by the database's
//! notice, by one of its own runs ending, or by its poll), as does any server once the
//! one that took a run up stopped before beginning it. The client is answered as before:
//! 202 with the run's id, or a stream of its events (with `event_index`) from wherever it
//! runs. A cancel of a queued run is recorded on its queue row, so whichever server takes
//! it up stores it CANCELLED without running it.

use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::form::Form;
use super::live::Slot;
use super::response::json_response;
use super::runs::{
    Delivery, bool_field, deliver, journal_stream, reserve, run_request, run_span, start_detached,
};
use crate::engine::RunRequest;
use crate::kind::Kind;
use crate::presence::Presence;
use crate::run::{new_id, unix_now};
use crate::store::QueuedRun;
use crate::store::backend::Notice;

/// How often a server looks at the queue without a notice (SQLite, or a lost notice).
const QUEUE_POLL: Duration = Duration::from_millis(250);

/// Accepts a background run: queues it, runs it here if there is room, and answers.
pub(super) async fn accept(
    state: Arc<AppState>,
    presence: Arc<Presence>,
    form: Form,
    (component, id): (Kind, &str),
    mut request: RunRequest,
    delivery: Delivery,
) -> ApiResult {
    let run_id = request.run_id.clone().unwrap_or_else(new_id);
    let session_id = request.session_id.clone().unwrap_or_else(new_id);
    request.run_id = Some(run_id.clone());
    request.session_id = Some(session_id.clone());
    // The form as another server will read it: the same fields, with the ids fixed.
    let mut fields: Vec<Value> = form
        .fields()
        .iter()
        .filter(|(k, _)| k != "run_id" && k != "session_id")
        .map(|(k, v)| json!([k, v]))
        .collect();
    fields.push(json!(["run_id", run_id]));
    fields.push(json!(["session_id", session_id]));
    let store = state.engine.store();
    let queued = QueuedRun {
        run_id: run_id.clone(),
        kind: component,
        component_id: id.to_string(),
        session_id: session_id.clone(),
        request: Value::Array(fields),
        accepted_by: Some(presence.process_id().to_string()),
        accepted_at: unix_now(),
    };
    // With room here, the run is queued already taken up by this server, so no other
    // server takes it first; it stays in the queue until it has begun.
    if let Ok(slot) = reserve(&state) {
        store.enqueue_claimed_run(queued).await?;
        return start(state, slot, (component, id), request, delivery).await;
    }
    store.enqueue_run(queued).await?;
    // Queued for whichever server has room first.
    if delivery.stream {
        return Ok(journal_stream(store, &run_id, 0, None));
    }
    Ok(json_response(
        StatusCode::ACCEPTED,
        &json!({"run_id": run_id, "session_id": session_id, "status": "PENDING"}),
    ))
}

/// Begins a claimed run, takes it out of the queue and executes it in the background.
/// Its journal is written from the start, however short the run: its client may follow
/// it from the store. A run whose cancel was requested while it waited executes already
/// cancelled: it is stored CANCELLED without calling a model.
async fn start(
    state: Arc<AppState>,
    slot: Slot,
    (component, id): (Kind, &str),
    request: RunRequest,
    delivery: Delivery,
) -> ApiResult {
    let run_id = request.run_id.clone().unwrap_or_default();
    let presence = state.engine.presence().cloned();
    if let Some(presence) = &presence {
        presence.journal_from_start(&run_id);
    }
    let engine = state.engine.clone();
    let span = run_span((component, id), &run_id, request.session_id.as_deref());
    let started = start_detached(&state, &span, async move {
        engine.start_kind(component, request).await
    })
    .await;
    // Begun (its row exists) or refused: either way it is no longer waiting.
    let dequeued = state.engine.store().dequeue_run(&run_id).await;
    let pending = match started {
        Ok(pending) => pending,
        Err(err) => {
            if let Some(presence) = &presence {
                presence.forget_journal_from_start(&run_id);
            }
            return Err(err);
        }
    };
    // The run has begun: it is delivered whatever the queue said, or it would stay
    // RUNNING under a live owner with nobody executing it.
    match dequeued {
        Ok(true) => {
            tracing::info!(parent: &span, "cancelled while it was queued");
            state.runs.cancel(&run_id);
        }
        Ok(false) => {}
        Err(err) => tracing::warn!(parent: &span, "could not take the run off the queue: {err}"),
    }
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

/// Takes up queued runs while this server has room, until the server stops.
pub async fn worker(state: Arc<AppState>, presence: Arc<Presence>) {
    let mut notices = state.engine.store().notices();
    let mut tick = tokio::time::interval(QUEUE_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let noticed = async {
            match notices.as_mut() {
                Some(rx) => Some(rx.recv().await),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tick.tick() => {}
            () = state.runs.freed() => {}
            notice = noticed => match notice {
                Some(Ok(Notice::Queued(_) | Notice::Resync)) | Some(Err(_)) => {}
                _ => continue,
            },
        }
        take_up(&state, &presence).await;
    }
}

/// Claims and starts queued runs, oldest first, while there is room.
async fn take_up(state: &Arc<AppState>, presence: &Arc<Presence>) {
    loop {
        // Looked at, not taken: a place held while the queue is read would turn requests
        // away for nothing.
        if !state.runs.has_room(state.options.max_runs_in_flight) {
            return;
        }
        let claimed = state
            .engine
            .store()
            .claim_run(
                presence.process_id(),
                None,
                presence.settings().owner_timeout,
            )
            .await;
        let queued = match claimed {
            Ok(Some(queued)) => queued,
            Ok(None) => return,
            Err(err) => {
                tracing::warn!("could not read the run queue: {err}");
                return;
            }
        };
        let run_id = queued.run_id.clone();
        let Ok(slot) = reserve(state) else {
            // Filled up meanwhile: the run goes back for another server (or a later try).
            let _ = state.engine.store().release_run(&run_id).await;
            return;
        };
        if let Err(err) = start_queued(state, slot, queued).await {
            tracing::warn!(run_id = %run_id, "a queued run could not start: {}", err.detail);
            let _ = state.engine.store().dequeue_run(&run_id).await;
        }
    }
}

async fn start_queued(
    state: &Arc<AppState>,
    slot: Slot,
    queued: QueuedRun,
) -> Result<(), ApiError> {
    let pairs: Vec<(String, String)> = queued
        .request
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|pair| {
            Some((
                pair.get(0)?.as_str()?.to_string(),
                pair.get(1)?.as_str()?.to_string(),
            ))
        })
        .collect();
    let form = Form::from_pairs(pairs);
    let message = form.get("message").unwrap_or_default().to_string();
    let delivery = Delivery {
        stream: bool_field(&form, "stream")?.unwrap_or(true),
        background: true,
        stream_events: bool_field(&form, "stream_events")?.unwrap_or(true),
    };
    queued
        .kind
        .require(state.engine.config(), &queued.component_id)?;
    let request = run_request(&form, &queued.component_id, message, delivery.stream)?;
    // Its client follows it from the store; what `deliver` answers here goes nowhere.
    start(
        state.clone(),
        slot,
        (queued.kind, &queued.component_id),
        request,
        delivery,
    )
    .await
    .map(drop)
}
