//! Session endpoints (`/sessions…`) and run listings
//! (`GET /{agents|teams|workflows}/{id}/runs…`).
//!
//! Handlers validate the query and JSON body first, answering 422 in FastAPI's shape
//! exactly as AgentOS does, then await the store (whose calls run on its own threads or
//! connections, never on the runtime's) and render the result with [`super::schemas`].
//!
//! # Compatibility
//!
//! Status codes and messages are AgentOS's, including its inconsistent spellings
//! (`Session with id '<id>' not found` on session routes, `Session with ID <id> not found`
//! on run routes). Deliberate differences, all on inputs AgentOS mishandles:
//!
//! * `?type=` naming a type other than the session's answers 404 (AgentOS renders the
//!   session with the wrong schema);
//! * `page=0` answers 422 like `limit=0` (AgentOS answers 500);
//! * an unknown `sort_by` answers 422 (AgentOS silently leaves the list unsorted);
//! * a JSON body is read as JSON whatever its `content-type` says.

use crate::kind::Kind;
use std::sync::Arc;

use hyper::StatusCode;
use hyper::header::{self, HeaderValue};
use serde_json::{Map, Value, json};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::request::Req;
use super::response::{empty, json_response, ok};
use super::schemas;
use crate::run::{RunRecord, RunStatus, new_id, now_secs};
use crate::store::{Session, SessionQuery, SessionSort, Store, StoredRun};

/// The wire spellings of [`Kind`], in AgentOS's enum order.
/// The largest `limit` of a session listing.
const MAX_PAGE_SIZE: i64 = 10_000;
/// The largest `page` of a session listing; with [`MAX_PAGE_SIZE`] the offset stays far
/// inside SQLite's 64-bit integers.
const MAX_PAGE: i64 = 1_000_000_000;
/// The largest Unix-seconds bound of a runs listing (year 9999).
const MAX_TIMESTAMP: i64 = 253_402_300_799;

const SORT_FIELDS: [&str; 3] = ["created_at", "updated_at", "session_name"];
const SORT_ORDERS: [&str; 2] = ["asc", "desc"];
/// Every run status AgentOS knows, sorted (the order its error message lists them in).
const RUN_STATUSES: [&str; 7] = [
    "CANCELLED",
    "COMPLETED",
    "ERROR",
    "PAUSED",
    "PENDING",
    "REGENERATED",
    "RUNNING",
];

// ----- handlers -----

/// `GET /sessions`: a page of sessions with `{"data", "meta"}`.
pub async fn list(state: Arc<AppState>, req: Req) -> ApiResult {
    let mut invalid = Invalid::default();
    let session_type = invalid.session_type(&req);
    let limit = invalid
        .int_query(&req, "limit", Some(1), Some(MAX_PAGE_SIZE))
        .unwrap_or(20);
    let page = invalid
        .int_query(&req, "page", Some(1), Some(MAX_PAGE))
        .unwrap_or(1);
    let sort_by = invalid.enum_query(&req, "sort_by", &SORT_FIELDS);
    let sort_order = invalid.enum_query(&req, "sort_order", &SORT_ORDERS);
    invalid.finish()?;

    let limit = u32::try_from(limit).unwrap_or(u32::MAX);
    let page = u32::try_from(page).unwrap_or(u32::MAX);
    let query = SessionQuery {
        session_type,
        component_id: last_query(&req, "component_id").map(str::to_string),
        user_id: last_query(&req, "user_id").map(str::to_string),
        session_name: last_query(&req, "session_name").map(str::to_string),
        sort_by: match sort_by {
            Some("updated_at") => SessionSort::UpdatedAt,
            Some("session_name") => SessionSort::SessionName,
            _ => SessionSort::CreatedAt,
        },
        descending: sort_order != Some("asc"),
        page,
        limit,
    };
    let (page_rows, total) = state.engine.store().list_sessions_with_runs(query).await?;
    let data: Vec<Value> = page_rows
        .iter()
        .map(|(summary, runs)| {
            let metrics = schemas::session_metrics(runs);
            schemas::drop_nulls(schemas::session_list_item(
                &summary.session,
                &summary.display_name,
                metrics.as_ref(),
            ))
        })
        .collect();
    let limit = u64::from(limit);
    Ok(ok(&json!({
        "data": data,
        "meta": {
            "page": page,
            "limit": limit,
            "total_pages": total.div_ceil(limit),
            "total_count": total,
            "search_time_ms": 0.0,
        },
    })))
}

/// `POST /sessions?type=`: creates an empty session (with a generated id unless the body
/// names a non-empty one); 201 with its detail, 409 if the id is taken.
pub async fn create(state: Arc<AppState>, req: Req) -> ApiResult {
    let mut invalid = Invalid::default();
    let session_type = invalid.session_type(&req).unwrap_or(Kind::Agent);
    let body = json_body(&req)?;
    let mut fields = Map::new();
    if let Some(body) = &body {
        if let Some(map) = invalid.body_object(body) {
            fields = map.clone();
        }
    }
    let session_id = invalid.opt_string(&fields, "session_id");
    let session_name = invalid.opt_string(&fields, "session_name");
    let session_state = invalid.opt_object(&fields, "session_state");
    let metadata = invalid.opt_object(&fields, "metadata");
    let user_id = invalid.opt_string(&fields, "user_id");
    let agent_id = invalid.opt_string(&fields, "agent_id");
    let team_id = invalid.opt_string(&fields, "team_id");
    let workflow_id = invalid.opt_string(&fields, "workflow_id");
    invalid.finish()?;

    let component_id = match session_type {
        Kind::Agent => agent_id,
        Kind::Team => team_id,
        Kind::Workflow => workflow_id,
    };
    let now = now_secs();
    let session = Session {
        // An empty id could never be named in a path: it gets a generated one, as absent.
        session_id: session_id
            .filter(|id| !id.is_empty())
            .unwrap_or_else(new_id),
        session_type,
        component_id: component_id.unwrap_or_default(),
        user_id,
        session_name,
        session_state: Value::Object(session_state.unwrap_or_default()),
        metadata: metadata.map(Value::Object),
        session_data: None,
        created_at: now,
        updated_at: now,
    };
    let store = state.engine.store();
    match store.create_session(session.clone()).await {
        Ok(()) => {}
        Err(crate::store::StoreError::SessionExists(id)) => {
            return Err(ApiError::conflict(format!(
                "Session with id '{id}' already exists. Use PATCH /sessions/{id} to update it."
            )));
        }
        Err(other) => return Err(other.into()),
    }
    let detail = detail_of(&state, &session).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &schemas::drop_nulls(detail),
    ))
}

/// `DELETE /sessions` with `{"session_ids": […], "session_types": […]}`: 204.
pub async fn delete_many(state: Arc<AppState>, req: Req) -> ApiResult {
    let mut invalid = Invalid::default();
    let user_id = last_query(&req, "user_id").map(str::to_string);
    let delete_media = invalid.bool_query(&req, "delete_media").unwrap_or(false);
    let body = json_body(&req)?;
    let (ids, types) = match &body {
        None => {
            invalid.missing(&["body"]);
            (None, None)
        }
        Some(body) => match invalid.body_object(body) {
            Some(map) => (
                invalid.string_list(map, "session_ids"),
                invalid.session_type_list(map, "session_types"),
            ),
            None => (None, None),
        },
    };
    invalid.finish()?;
    let (Some(ids), Some(types)) = (ids, types) else {
        return Err(ApiError::internal("ValidationError"));
    };
    if ids.len() != types.len() {
        return Err(ApiError::bad_request(
            "Session IDs and session types must have the same length",
        ));
    }
    if delete_media {
        return Err(no_media_storage());
    }
    let store = state.engine.store();
    let ids: Vec<String> = match &user_id {
        None => ids,
        Some(_) => {
            let mut owned = Vec::new();
            for id in ids {
                let session = store.get_session(&id).await?;
                if session.is_some_and(|s| s.visible_to(user_id.as_deref())) {
                    owned.push(id);
                }
            }
            owned
        }
    };
    // Sessions are keyed on their id alone; the types only pair up with the ids.
    store.delete_sessions(ids, None).await?;
    Ok(no_content())
}

/// `GET /sessions/{id}`: the session's detail, its type detected.
pub async fn get(state: Arc<AppState>, req: Req, id: &str) -> ApiResult {
    let mut invalid = Invalid::default();
    let wanted = invalid.session_type(&req);
    invalid.finish()?;
    let scope = Scope::new(&req, wanted);
    let Some(session) = scope.filter(state.engine.store().get_session(id).await?) else {
        let prefix = wanted.map_or(String::new(), |t| format!("{} ", t.title()));
        return Err(ApiError::not_found(format!(
            "{prefix}Session with id '{id}' not found"
        )));
    };
    let detail = detail_of(&state, &session).await?;
    Ok(ok(&schemas::drop_nulls(detail)))
}

/// `PATCH /sessions/{id}`: replaces name, state and metadata where given; 200 with the
/// detail, nulls kept.
pub async fn update(state: Arc<AppState>, req: Req, id: &str) -> ApiResult {
    let mut invalid = Invalid::default();
    let wanted = invalid.session_type(&req);
    let body = json_body(&req)?;
    let mut fields = Map::new();
    match &body {
        None => invalid.missing(&["body"]),
        Some(body) => {
            if let Some(map) = invalid.body_object(body) {
                fields = map.clone();
            }
        }
    }
    let session_name = invalid.opt_string(&fields, "session_name");
    let session_state = invalid.opt_object(&fields, "session_state");
    let metadata = invalid.opt_object(&fields, "metadata");
    // `summary` is accepted for compatibility; session summaries are not stored yet.
    let _summary = invalid.opt_object(&fields, "summary");
    invalid.finish()?;

    let scope = Scope::new(&req, wanted);
    let store = state.engine.store();
    let not_found = || ApiError::not_found(format!("Session with id '{id}' not found"));
    if scope.filter(store.get_session(id).await?).is_none() {
        return Err(not_found());
    }
    let updated = store
        .update_session(
            id,
            session_name,
            session_state.map(Value::Object),
            metadata.map(Value::Object),
        )
        .await?
        .ok_or_else(not_found)?;
    let detail = detail_of(&state, &updated).await?;
    Ok(ok(&detail))
}

/// `DELETE /sessions/{id}`: 204, whether or not the session existed.
pub async fn delete(state: Arc<AppState>, req: Req, id: &str) -> ApiResult {
    let mut invalid = Invalid::default();
    let delete_media = invalid.bool_query(&req, "delete_media").unwrap_or(false);
    invalid.finish()?;
    if delete_media {
        return Err(no_media_storage());
    }
    let scope = Scope::new(&req, None);
    let store = state.engine.store();
    if scope.user_id.is_none() || scope.filter(store.get_session(id).await?).is_some() {
        store.delete_session(id).await?;
    }
    Ok(no_content())
}

/// `POST /sessions/{id}/rename` with `{"session_name": "…"}`: 200 with the detail, nulls
/// kept.
pub async fn rename(state: Arc<AppState>, req: Req, id: &str) -> ApiResult {
    let mut invalid = Invalid::default();
    let wanted = invalid.session_type(&req);
    let body = json_body(&req)?;
    let mut name = None;
    match &body {
        None => invalid.missing(&["body", "session_name"]),
        Some(body) => {
            if let Some(map) = invalid.body_object(body) {
                match map.get("session_name") {
                    None => invalid.missing(&["body", "session_name"]),
                    Some(_) => name = invalid.opt_string(map, "session_name"),
                }
                if map.get("session_name").is_some_and(Value::is_null) {
                    invalid.string_type(&["body", "session_name"], &Value::Null);
                }
            }
        }
    }
    invalid.finish()?;
    let Some(name) = name else {
        return Err(ApiError::internal("ValidationError"));
    };

    let scope = Scope::new(&req, wanted);
    let store = state.engine.store();
    let not_found = || ApiError::not_found(format!("Session with id '{id}' not found"));
    if scope.filter(store.get_session(id).await?).is_none()
        || !store.rename_session(id, &name).await?
    {
        return Err(not_found());
    }
    let session = store.get_session(id).await?.ok_or_else(not_found)?;
    let detail = detail_of(&state, &session).await?;
    Ok(ok(&detail))
}

/// `GET /sessions/{id}/runs`: every run of the session as `RunSchema`, `TeamRunSchema` or
/// `WorkflowRunSchema`, nulls dropped; a team's member runs come right before their team
/// run.
pub async fn runs(state: Arc<AppState>, req: Req, id: &str) -> ApiResult {
    let runs = session_runs(&state, &req, id).await?;
    let list: Vec<Value> = runs
        .iter()
        .map(|r| schemas::drop_nulls(schemas::run_schema(r)))
        .collect();
    Ok(ok(&list))
}

/// `GET /sessions/{id}/run-previews`: the same runs, reduced to ids, status and short
/// previews of input and output.
pub async fn run_previews(state: Arc<AppState>, req: Req, id: &str) -> ApiResult {
    let runs = session_runs(&state, &req, id).await?;
    let list: Vec<Value> = runs
        .iter()
        .map(|r| schemas::drop_nulls(schemas::run_preview(&schemas::run_schema(r))))
        .collect();
    Ok(ok(&list))
}

/// `GET /sessions/{id}/runs/{run_id}`: one `RunSchema`, nulls included.
pub async fn run(state: Arc<AppState>, req: Req, id: &str, run_id: &str) -> ApiResult {
    let mut invalid = Invalid::default();
    let wanted = invalid.session_type(&req);
    invalid.finish()?;
    let scope = Scope::new(&req, wanted);
    let store = state.engine.store();
    let summary = store
        .session_summary(id)
        .await?
        .filter(|s| scope.admits(&s.session))
        .ok_or_else(|| ApiError::not_found(format!("Session with ID {id} not found")))?;
    let schema = match store.get_run(run_id).await? {
        Some(stored) if stored.run.session_id() == id => schemas::run_schema(&stored),
        _ if summary.run_count == 0 => {
            return Err(ApiError::not_found(format!(
                "Session with ID {id} has no runs"
            )));
        }
        _ => {
            return Err(ApiError::not_found(format!(
                "Run with ID {run_id} not found in session {id}"
            )));
        }
    };
    Ok(ok(&schema))
}

/// `GET /{agents|teams|workflows}/{id}/runs?session_id=&status=`: the component's runs in
/// one of its sessions, oldest first, as `RunSchema` / `TeamRunSchema` /
/// `WorkflowRunSchema` with nulls. A team's member runs are left out; `status` must match
/// exactly (case-sensitive), as in AgentOS.
pub async fn component_runs(
    state: Arc<AppState>,
    req: Req,
    component: Kind,
    id: &str,
) -> ApiResult {
    let mut invalid = Invalid::default();
    let session_id = invalid.required_query(&req, "session_id");
    invalid.finish()?;
    let Some(session_id) = session_id else {
        return Err(ApiError::internal("ValidationError"));
    };
    let status = last_query(&req, "status").map(str::to_string);
    let user_id = last_query(&req, "user_id").map(str::to_string);
    component.require(state.engine.config(), id)?;
    let store = state.engine.store();
    if !owns_session(store, (component, id), &session_id, user_id.as_deref()).await? {
        return Err(ApiError::not_found("Session not found"));
    }
    let runs = store.list_runs(&session_id).await?;
    let list: Vec<Value> = runs
        .iter()
        .filter(|r| r.run.kind() == component && r.run.component_id() == id)
        .filter(|r| {
            status
                .as_deref()
                .is_none_or(|s| r.run.status().as_str() == s)
        })
        .map(schemas::run_schema)
        .collect();
    Ok(ok(&list))
}

/// `GET /{agents|teams|workflows}/{id}/runs/{run_id}?session_id=`: the stored run object
/// (epoch timestamps, stored events), for polling background runs. A run still executing
/// is returned as stored, with status RUNNING. A team's member runs are not reachable here.
pub async fn component_run(
    state: Arc<AppState>,
    req: Req,
    component: Kind,
    id: &str,
    run_id: &str,
) -> ApiResult {
    let mut invalid = Invalid::default();
    let session_id = invalid.required_query(&req, "session_id");
    invalid.finish()?;
    let Some(session_id) = session_id else {
        return Err(ApiError::internal("ValidationError"));
    };
    let user_id = last_query(&req, "user_id").map(str::to_string);
    component.require(state.engine.config(), id)?;
    let store = state.engine.store();
    let stored = || async {
        if !owns_session(store, (component, id), &session_id, user_id.as_deref()).await? {
            return Ok::<_, ApiError>(None);
        }
        Ok(store.get_run(run_id).await?.filter(|r| {
            r.run.session_id() == session_id
                && r.run.kind() == component
                && r.run.component_id() == id
        }))
    };
    if let Some(stored) = stored().await? {
        return Ok(ok(&schemas::polled_run(&stored)));
    }
    // A background run still waiting in the queue has no row yet (nor, in a new
    // session, a session).
    let queued = visible_queued_run(
        store,
        (component, id),
        run_id,
        Some(&session_id),
        user_id.as_deref(),
    )
    .await?;
    if let Some(queued) = queued {
        return Ok(ok(&queued_run(&queued)));
    }
    // It may have begun between the two looks: a run leaves the queue only once its row
    // (and its session) exist.
    match stored().await? {
        Some(stored) => Ok(ok(&schemas::polled_run(&stored))),
        None => Err(ApiError::not_found("Run not found")),
    }
}

/// A background run still waiting in the queue, if `user_id` may see it: by the rule of
/// [`crate::store::Session::visible_to`], applied to its session when that exists, else
/// to the user id the run will give its session.
pub(super) async fn visible_queued_run(
    store: &Store,
    (component, id): (Kind, &str),
    run_id: &str,
    session_id: Option<&str>,
    user_id: Option<&str>,
) -> Result<Option<crate::store::QueuedRun>, ApiError> {
    let Some(queued) = store.queued_run(run_id).await?.filter(|q| {
        q.kind == component
            && q.component_id == id
            && session_id.is_none_or(|sid| sid == q.session_id)
    }) else {
        return Ok(None);
    };
    let visible = match store.get_session(&queued.session_id).await? {
        Some(session) => {
            session.session_type == component
                && session.component_id == id
                && session.visible_to(user_id)
        }
        None => queued.visible_to(user_id),
    };
    Ok(visible.then_some(queued))
}

/// A queued background run as polling shows it: its ids and `PENDING`.
fn queued_run(queued: &crate::store::QueuedRun) -> Value {
    let component_key = match queued.kind {
        Kind::Agent => "agent_id",
        Kind::Team => "team_id",
        Kind::Workflow => "workflow_id",
    };
    serde_json::json!({
        "run_id": queued.run_id,
        component_key: queued.component_id,
        "session_id": queued.session_id,
        "status": "PENDING",
        "created_at": queued.accepted_at as i64,
    })
}

/// Whether the session exists, belongs to this component and may be seen by `user_id`.
async fn owns_session(
    store: &Store,
    (component, id): (Kind, &str),
    session_id: &str,
    user_id: Option<&str>,
) -> Result<bool, ApiError> {
    Ok(store.get_session(session_id).await?.is_some_and(|s| {
        s.session_type == component && s.component_id == id && s.visible_to(user_id)
    }))
}

// ----- shared steps -----

/// The detail schema of a session (nulls kept), with its runs loaded.
async fn detail_of(state: &AppState, session: &Session) -> Result<Value, ApiError> {
    let runs = state.engine.store().list_runs(&session.session_id).await?;
    let name = schemas::session_display_name(session, &runs);
    let workflow = match session.session_type {
        Kind::Workflow => state.engine.config().workflow(&session.component_id),
        _ => None,
    };
    Ok(schemas::session_detail(
        state.engine.config(),
        session,
        &name,
        &runs,
        workflow,
    ))
}

/// The runs behind `/sessions/{id}/runs` and `/run-previews`, filtered by the query.
async fn session_runs(state: &AppState, req: &Req, id: &str) -> Result<Vec<StoredRun>, ApiError> {
    let mut invalid = Invalid::default();
    let wanted = invalid.session_type(req);
    let created_after = invalid.int_query(req, "created_after", Some(0), Some(MAX_TIMESTAMP));
    let created_before = invalid.int_query(req, "created_before", Some(0), Some(MAX_TIMESTAMP));
    invalid.finish()?;

    let requested: Vec<String> = req
        .query_all("status")
        .into_iter()
        .map(str::to_ascii_uppercase)
        .collect();
    let mut unknown: Vec<String> = requested
        .iter()
        .filter(|s| !RUN_STATUSES.contains(&s.as_str()))
        .cloned()
        .collect();
    unknown.sort();
    unknown.dedup();
    if !unknown.is_empty() {
        let valid: Vec<String> = RUN_STATUSES.iter().map(|s| s.to_string()).collect();
        return Err(ApiError::bad_request(format!(
            "Invalid status value(s) {}; expected one of {}",
            schemas::python_str_list(&unknown),
            schemas::python_str_list(&valid)
        )));
    }
    // REGENERATED is valid on the wire but no agentos run ever has it.
    let statuses: Vec<RunStatus> = requested
        .iter()
        .filter_map(|s| RunStatus::parse(s))
        .collect();
    let nothing_wanted = !requested.is_empty() && statuses.is_empty();

    let scope = Scope::new(req, wanted);
    let store = state.engine.store();
    if scope.filter(store.get_session(id).await?).is_none() {
        return Err(ApiError::not_found(format!(
            "Session with ID {id} not found"
        )));
    }
    if nothing_wanted {
        return Ok(Vec::new());
    }
    let runs = store
        .list_runs_filtered(id, statuses, created_after, created_before)
        .await?;
    Ok(schemas::in_session_order(runs))
}

/// Which sessions a request may see: those of the `?type=` asked for (if any) and of the
/// `?user_id=` given (if any).
struct Scope {
    session_type: Option<Kind>,
    user_id: Option<String>,
}

impl Scope {
    fn new(req: &Req, session_type: Option<Kind>) -> Self {
        Scope {
            session_type,
            user_id: last_query(req, "user_id").map(str::to_string),
        }
    }

    fn admits(&self, session: &Session) -> bool {
        self.session_type.is_none_or(|t| t == session.session_type)
            && session.visible_to(self.user_id.as_deref())
    }

    fn filter(&self, session: Option<Session>) -> Option<Session> {
        session.filter(|s| self.admits(s))
    }
}

/// 503 for `delete_media=true`: agentos keeps no media.
fn no_media_storage() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "Media storage is not configured on AgentOS",
    )
}

/// 204 with AgentOS's (empty) JSON content type.
fn no_content() -> hyper::Response<super::body::Body> {
    let mut resp = empty(StatusCode::NO_CONTENT);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The value of a query parameter; the last one wins when repeated, as in FastAPI.
fn last_query<'a>(req: &'a Req, name: &str) -> Option<&'a str> {
    req.query
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

// ----- request validation -----

/// The JSON body, or `None` when the request has none. Malformed JSON is FastAPI's 422
/// `json_invalid` (with the character position and Python's message); a body that is not
/// UTF-8 is its 400.
fn json_body(req: &Req) -> Result<Option<Value>, ApiError> {
    if req.body.is_empty() {
        return Ok(None);
    }
    let Ok(text) = std::str::from_utf8(&req.body) else {
        return Err(ApiError::bad_request("There was an error parsing the body"));
    };
    match serde_json::from_str(text) {
        Ok(value) => Ok(Some(value)),
        Err(err) => Err(ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            detail: json!([{
                "type": "json_invalid",
                "loc": ["body", error_position(text, &err)],
                "msg": "JSON decode error",
                "input": {},
                "ctx": {"error": python_json_error(&err)},
            }]),
            allow: None,
            retry_after: None,
        }),
    }
}

/// The character index Python's `json` reports for a syntax error: the offending
/// character, or the end of the text when it ended too early.
fn error_position(text: &str, err: &serde_json::Error) -> usize {
    if err.classify() == serde_json::error::Category::Eof {
        return text.chars().count();
    }
    char_position(text, err.line(), err.column())
}

/// The character index of a serde_json line/column (1-based, column in bytes).
fn char_position(text: &str, line: usize, column: usize) -> usize {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    let mut byte = (line_start + column.saturating_sub(1)).min(text.len());
    while !text.is_char_boundary(byte) {
        byte -= 1;
    }
    text[..byte].chars().count()
}

/// Python's `json` message for the closest kind of syntax error.
fn python_json_error(err: &serde_json::Error) -> &'static str {
    let msg = err.to_string();
    let has = |s: &str| msg.contains(s);
    if has("key must be a string") {
        "Expecting property name enclosed in double quotes"
    } else if has("expected `:`") {
        "Expecting ':' delimiter"
    } else if has("expected `,` or")
        || has("EOF while parsing a list")
        || has("EOF while parsing an object")
    {
        "Expecting ',' delimiter"
    } else if has("trailing characters") {
        "Extra data"
    } else if has("trailing comma") {
        "Illegal trailing comma before end of object"
    } else if has("EOF while parsing a string") {
        "Unterminated string starting at"
    } else if has("invalid escape") || has("invalid unicode") {
        "Invalid \\escape"
    } else if has("control character") {
        "Invalid control character at"
    } else {
        "Expecting value"
    }
}

/// Request validation errors in FastAPI's shape, collected so that one 422 lists them
/// all, as FastAPI does.
#[derive(Default)]
struct Invalid(Vec<Value>);

impl Invalid {
    fn push(&mut self, kind: &str, loc: Vec<Value>, msg: &str, input: Value, ctx: Option<Value>) {
        let mut error = Map::new();
        error.insert("type".into(), json!(kind));
        error.insert("loc".into(), Value::Array(loc));
        error.insert("msg".into(), json!(msg));
        error.insert("input".into(), input);
        if let Some(ctx) = ctx {
            error.insert("ctx".into(), ctx);
        }
        self.0.push(Value::Object(error));
    }

    fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            return Ok(());
        }
        Err(ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            detail: Value::Array(self.0),
            allow: None,
            retry_after: None,
        })
    }

    fn missing(&mut self, loc: &[&str]) {
        let loc = loc.iter().map(|s| json!(s)).collect();
        self.push("missing", loc, "Field required", Value::Null, None);
    }

    fn string_type(&mut self, loc: &[&str], input: &Value) {
        let loc = loc.iter().map(|s| json!(s)).collect();
        self.push(
            "string_type",
            loc,
            "Input should be a valid string",
            input.clone(),
            None,
        );
    }

    /// A query parameter that must be one of `allowed`.
    fn enum_query<'a>(&mut self, req: &Req, name: &str, allowed: &[&'a str]) -> Option<&'a str> {
        let value = last_query(req, name)?;
        if let Some(found) = allowed.iter().find(|a| **a == value) {
            return Some(found);
        }
        let expected = expected_list(allowed);
        self.push(
            "enum",
            vec![json!("query"), json!(name)],
            &format!("Input should be {expected}"),
            json!(value),
            Some(json!({ "expected": expected })),
        );
        None
    }

    /// `?type=`: agent, team or workflow.
    fn session_type(&mut self, req: &Req) -> Option<Kind> {
        self.enum_query(req, "type", &Kind::ALL.map(Kind::as_str))
            .and_then(Kind::parse)
    }

    /// An integer query parameter within `ge..=le` (FastAPI's `ge`/`le` errors otherwise).
    fn int_query(
        &mut self,
        req: &Req,
        name: &str,
        ge: Option<i64>,
        le: Option<i64>,
    ) -> Option<i64> {
        let raw = last_query(req, name)?;
        let Ok(value) = raw.trim().parse::<i64>() else {
            self.push(
                "int_parsing",
                vec![json!("query"), json!(name)],
                "Input should be a valid integer, unable to parse string as an integer",
                json!(raw),
                None,
            );
            return None;
        };
        if let Some(min) = ge.filter(|min| value < *min) {
            self.push(
                "greater_than_equal",
                vec![json!("query"), json!(name)],
                &format!("Input should be greater than or equal to {min}"),
                json!(raw),
                Some(json!({ "ge": min })),
            );
            return None;
        }
        if let Some(max) = le.filter(|max| value > *max) {
            self.push(
                "less_than_equal",
                vec![json!("query"), json!(name)],
                &format!("Input should be less than or equal to {max}"),
                json!(raw),
                Some(json!({ "le": max })),
            );
            return None;
        }
        Some(value)
    }

    /// A boolean query parameter in pydantic's spellings (`true`, `1`, `yes`, `on`, …).
    fn bool_query(&mut self, req: &Req, name: &str) -> Option<bool> {
        let raw = last_query(req, name)?;
        match raw.trim().to_ascii_lowercase().as_str() {
            "1" | "on" | "t" | "true" | "y" | "yes" => Some(true),
            "0" | "off" | "f" | "false" | "n" | "no" => Some(false),
            _ => {
                self.push(
                    "bool_parsing",
                    vec![json!("query"), json!(name)],
                    "Input should be a valid boolean, unable to interpret input",
                    json!(raw),
                    None,
                );
                None
            }
        }
    }

    fn required_query(&mut self, req: &Req, name: &str) -> Option<String> {
        let value = last_query(req, name);
        if value.is_none() {
            self.missing(&["query", name]);
        }
        value.map(str::to_string)
    }

    /// The body as an object (a JSON model); anything else is `model_attributes_type`.
    fn body_object<'v>(&mut self, body: &'v Value) -> Option<&'v Map<String, Value>> {
        if let Some(map) = body.as_object() {
            return Some(map);
        }
        self.push(
            "model_attributes_type",
            vec![json!("body")],
            "Input should be a valid dictionary or object to extract fields from",
            body.clone(),
            None,
        );
        None
    }

    /// An optional string member (`null` and absent are `None`).
    fn opt_string(&mut self, map: &Map<String, Value>, name: &str) -> Option<String> {
        match map.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.string_type(&["body", name], other);
                None
            }
        }
    }

    /// An optional object member (`null` and absent are `None`).
    fn opt_object(&mut self, map: &Map<String, Value>, name: &str) -> Option<Map<String, Value>> {
        match map.get(name) {
            None | Some(Value::Null) => None,
            Some(value @ Value::Object(m)) => {
                if let Err(msg) = crate::limits::check_depth(value) {
                    self.push(
                        "json_too_deep",
                        vec![json!("body"), json!(name)],
                        &msg,
                        Value::Null,
                        None,
                    );
                    return None;
                }
                Some(m.clone())
            }
            Some(other) => {
                self.push(
                    "dict_type",
                    vec![json!("body"), json!(name)],
                    "Input should be a valid dictionary",
                    other.clone(),
                    None,
                );
                None
            }
        }
    }

    /// A required, non-empty list member whose items pass `item`.
    fn list<T>(
        &mut self,
        map: &Map<String, Value>,
        name: &str,
        mut item: impl FnMut(&mut Self, usize, &Value) -> Option<T>,
    ) -> Option<Vec<T>> {
        let Some(value) = map.get(name) else {
            self.missing(&["body", name]);
            return None;
        };
        let Some(items) = value.as_array() else {
            self.push(
                "list_type",
                vec![json!("body"), json!(name)],
                "Input should be a valid list",
                value.clone(),
                None,
            );
            return None;
        };
        let before = self.0.len();
        let parsed: Vec<Option<T>> = items
            .iter()
            .enumerate()
            .map(|(i, v)| item(self, i, v))
            .collect();
        if self.0.len() > before {
            return None;
        }
        if items.is_empty() {
            self.push(
                "too_short",
                vec![json!("body"), json!(name)],
                "List should have at least 1 item after validation, not 0",
                json!([]),
                Some(json!({"field_type": "List", "min_length": 1, "actual_length": 0})),
            );
            return None;
        }
        parsed.into_iter().collect()
    }

    fn string_list(&mut self, map: &Map<String, Value>, name: &str) -> Option<Vec<String>> {
        self.list(map, name, |invalid, i, v| match v {
            Value::String(s) => Some(s.clone()),
            other => {
                invalid.push(
                    "string_type",
                    vec![json!("body"), json!(name), json!(i)],
                    "Input should be a valid string",
                    other.clone(),
                    None,
                );
                None
            }
        })
    }

    fn session_type_list(&mut self, map: &Map<String, Value>, name: &str) -> Option<Vec<Kind>> {
        self.list(map, name, |invalid, i, v| {
            if let Some(t) = v.as_str().and_then(Kind::parse) {
                return Some(t);
            }
            let expected = expected_list(&Kind::ALL.map(Kind::as_str));
            invalid.push(
                "enum",
                vec![json!("body"), json!(name), json!(i)],
                &format!("Input should be {expected}"),
                v.clone(),
                Some(json!({ "expected": expected })),
            );
            None
        })
    }
}

/// `'a', 'b' or 'c'`, as pydantic lists enum members.
fn expected_list(allowed: &[&str]) -> String {
    let quoted: Vec<String> = allowed.iter().map(|a| format!("'{a}'")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cancel::CancelToken;
    use crate::config::Config;
    use crate::engine::{Engine, RunRequest};
    use crate::event::Discard;
    use crate::server::ServerOptions;
    use bytes::Bytes;
    use http_body_util::BodyExt;
    use hyper::{HeaderMap, Method};
    use std::path::Path;

    const AGENTS: &str = r#"
[[agents]]
id = "story-writer"
name = "Story Writer"
model = "test"
instructions = ["You write very short stories."]
"#;

    fn state() -> Arc<AppState> {
        let config = Config::from_toml_str(AGENTS, Path::new("agents.toml")).unwrap();
        let store = Store::open_in_memory().unwrap();
        let engine = Arc::new(Engine::new(Arc::new(config), store));
        Arc::new(AppState::new(engine, ServerOptions::default()))
    }

    /// Makes a completed run through the engine (test model) and returns its id.
    async fn run_agent(
        state: &AppState,
        session_id: &str,
        user: Option<&str>,
        message: &str,
    ) -> String {
        let req = RunRequest {
            agent_id: "story-writer".into(),
            message: message.into(),
            session_id: Some(session_id.into()),
            user_id: user.map(str::to_string),
            ..RunRequest::default()
        };
        state
            .engine
            .run(req, &CancelToken::default(), &Discard)
            .await
            .unwrap()
            .run_id()
            .to_string()
    }

    fn request(method: Method, target: &str, body: &str) -> Req {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        Req::new(
            method,
            path,
            query,
            HeaderMap::new(),
            Bytes::from(body.to_string()),
        )
    }

    /// Routes a request and returns status and parsed JSON body (`null` when empty).
    async fn call(state: &Arc<AppState>, method: Method, target: &str, body: &str) -> (u16, Value) {
        let req = request(method, target, body);
        let resp = match crate::server::router::route(state.clone(), req).await {
            Ok(resp) => resp,
            Err(err) => err.into_response(),
        };
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, value)
    }

    async fn get(state: &Arc<AppState>, target: &str) -> (u16, Value) {
        call(state, Method::GET, target, "").await
    }

    #[test]
    fn expected_lists_read_like_pydantic() {
        assert_eq!(
            expected_list(&Kind::ALL.map(Kind::as_str)),
            "'agent', 'team' or 'workflow'"
        );
        assert_eq!(expected_list(&SORT_ORDERS), "'asc' or 'desc'");
        assert_eq!(expected_list(&["x"]), "'x'");
    }

    #[test]
    fn json_errors_point_at_characters() {
        let req = request(Method::POST, "/sessions", "{\"é\": ");
        let err = json_body(&req).unwrap_err();
        assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            err.detail,
            json!([{"type": "json_invalid", "loc": ["body", 6], "msg": "JSON decode error",
                    "input": {}, "ctx": {"error": "Expecting value"}}])
        );
        let req = request(Method::POST, "/sessions", "{'a': 1}");
        assert_eq!(
            json_body(&req).unwrap_err().detail[0]["ctx"]["error"],
            "Expecting property name enclosed in double quotes"
        );
        assert_eq!(json_body(&request(Method::POST, "/s", "")).unwrap(), None);
    }

    #[test]
    fn query_validation_collects_fastapi_errors() {
        let req = request(
            Method::GET,
            "/sessions?type=bogus&limit=0&page=x&limit=5",
            "",
        );
        let mut invalid = Invalid::default();
        assert_eq!(invalid.session_type(&req), None);
        assert_eq!(
            invalid.int_query(&req, "limit", Some(1), None),
            Some(5),
            "last wins"
        );
        assert_eq!(invalid.int_query(&req, "page", Some(1), None), None);
        let err = invalid.finish().unwrap_err();
        assert_eq!(
            serde_json::to_string(&err.detail).unwrap(),
            concat!(
                r#"[{"type":"enum","loc":["query","type"],"msg":"Input should be 'agent', 'team' or 'workflow'","input":"bogus","ctx":{"expected":"'agent', 'team' or 'workflow'"}},"#,
                r#"{"type":"int_parsing","loc":["query","page"],"msg":"Input should be a valid integer, unable to parse string as an integer","input":"x"}]"#
            )
        );
    }

    #[tokio::test]
    async fn list_sessions_envelope_paging_and_errors() {
        let state = state();
        run_agent(
            &state,
            "sess-1",
            Some("user-1"),
            "Tell me a story about a robot",
        )
        .await;
        run_agent(&state, "sess-1", Some("user-1"), "Tell me another story").await;
        run_agent(&state, "sess-2", None, "hi").await;

        let (status, body) = get(&state, "/sessions").await;
        assert_eq!(status, 200);
        assert_eq!(
            body["meta"],
            json!({"page": 1, "limit": 20, "total_pages": 1, "total_count": 2, "search_time_ms": 0.0})
        );
        let first = &body["data"][1];
        assert_eq!(first["session_id"], "sess-1");
        assert_eq!(first["session_name"], "Tell me a story about a robot");
        assert_eq!(first["session_type"], "agent");
        assert_eq!(first["agent_id"], "story-writer");
        assert_eq!(first["user_id"], "user-1");
        assert!(body["data"][0].get("user_id").is_none(), "None is omitted");
        assert!(first["created_at"].as_str().unwrap().ends_with('Z'));

        let (_, paged) = get(&state, "/sessions?type=agent&limit=1&page=2&sort_order=asc").await;
        assert_eq!(paged["data"][0]["session_id"], "sess-2");
        assert_eq!(paged["meta"]["total_pages"], 2);
        let (_, filtered) = get(&state, "/sessions?user_id=user-1&component_id=story-writer").await;
        assert_eq!(filtered["meta"]["total_count"], 1);
        let (_, teams) = get(&state, "/sessions?type=team").await;
        assert_eq!(teams["data"], json!([]));
        let (_, ignored) = get(&state, "/sessions?session_type=team").await;
        assert_eq!(ignored["meta"]["total_count"], 2);

        // 607 and 629, byte for byte.
        let (status, body) = get(&state, "/sessions?type=bogus").await;
        assert_eq!(status, 422);
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"detail":[{"type":"enum","loc":["query","type"],"msg":"Input should be 'agent', 'team' or 'workflow'","input":"bogus","ctx":{"expected":"'agent', 'team' or 'workflow'"}}]}"#
        );
        let (status, body) = get(&state, "/sessions?limit=0").await;
        assert_eq!(status, 422);
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"detail":[{"type":"greater_than_equal","loc":["query","limit"],"msg":"Input should be greater than or equal to 1","input":"0","ctx":{"ge":1}}]}"#
        );
        let (status, body) = get(&state, "/sessions?page=0&limit=2").await;
        assert_eq!(
            (status, &body["detail"][0]["loc"]),
            (422, &json!(["query", "page"]))
        );
        let (status, body) = get(&state, "/sessions?sort_by=bogus").await;
        assert_eq!((status, &body["detail"][0]["type"]), (422, &json!("enum")));
    }

    #[tokio::test]
    async fn session_detail_create_patch_rename_delete() {
        let state = state();
        run_agent(&state, "sess-1", Some("user-1"), "Tell me a story").await;

        let (status, detail) = get(&state, "/sessions/sess-1").await;
        assert_eq!(status, 200);
        assert_eq!(detail["agent_session_id"], "sess-1");
        assert_eq!(detail["session_name"], "Tell me a story");
        assert_eq!(detail["agent_data"]["model"]["provider"], "Test");
        assert_eq!(detail["chat_history"].as_array().unwrap().len(), 2);
        assert!(detail.get("session_summary").is_none());
        assert_eq!(get(&state, "/sessions/sess-1?type=agent").await.1, detail);
        let (status, body) = get(&state, "/sessions/sess-1?type=team").await;
        assert_eq!(status, 404);
        assert_eq!(body["detail"], "Team Session with id 'sess-1' not found");
        let (status, body) = get(&state, "/sessions/nope").await;
        assert_eq!(
            (status, body),
            (404, json!({"detail": "Session with id 'nope' not found"}))
        );

        // 621/622.
        let create = r#"{"session_id":"sess-created-1","session_name":"Pre-created","session_state":{"x":1},"agent_id":"story-writer","user_id":"user-9"}"#;
        let (status, created) = call(&state, Method::POST, "/sessions?type=agent", create).await;
        assert_eq!(status, 201);
        let keys: Vec<&str> = created
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
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
        let (status, body) = call(
            &state,
            Method::POST,
            "/sessions?type=agent",
            r#"{"session_id":"sess-created-1"}"#,
        )
        .await;
        assert_eq!(status, 409);
        assert_eq!(
            body["detail"],
            "Session with id 'sess-created-1' already exists. Use PATCH /sessions/sess-created-1 to update it."
        );
        let (status, body) = call(&state, Method::POST, "/sessions", "{\"session_id\": 5").await;
        assert_eq!(
            (status, &body["detail"][0]["type"]),
            (422, &json!("json_invalid"))
        );
        let (status, body) =
            call(&state, Method::POST, "/sessions", r#"{"session_state": 1}"#).await;
        assert_eq!(status, 422);
        assert_eq!(body["detail"][0]["loc"], json!(["body", "session_state"]));
        let (status, generated) = call(&state, Method::POST, "/sessions?type=team", "").await;
        assert_eq!(status, 201);
        assert!(generated["session_id"].as_str().unwrap().len() == 36);
        assert!(generated.get("team_id").is_none());

        // 619/620: nulls kept.
        let (status, renamed) = call(
            &state,
            Method::POST,
            "/sessions/sess-1/rename",
            r#"{"session_name":"Renamed story session"}"#,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(renamed["session_name"], "Renamed story session");
        assert_eq!(renamed["session_summary"], Value::Null);
        assert_eq!(renamed["metadata"], Value::Null);
        let (status, patched) = call(
            &state,
            Method::PATCH,
            "/sessions/sess-1",
            r#"{"session_state":{"patched":true},"metadata":{"k":"v"}}"#,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(patched["session_state"], json!({"patched": true}));
        assert_eq!(patched["metadata"], json!({"k": "v"}));
        assert_eq!(patched["session_name"], "Renamed story session");
        let (status, _) = call(&state, Method::PATCH, "/sessions/nope", "{}").await;
        assert_eq!(status, 404);
        let (status, body) = call(&state, Method::POST, "/sessions/nope/rename", "{}").await;
        assert_eq!(status, 422);
        assert_eq!(body["detail"][0]["loc"], json!(["body", "session_name"]));
        let (status, body) = call(
            &state,
            Method::POST,
            "/sessions/nope/rename",
            r#"{"session_name":"x"}"#,
        )
        .await;
        assert_eq!(
            (status, body),
            (404, json!({"detail": "Session with id 'nope' not found"}))
        );

        // 623/625/626.
        let (status, body) = call(&state, Method::DELETE, "/sessions/sess-created-1", "").await;
        assert_eq!((status, body), (204, Value::Null));
        assert_eq!(get(&state, "/sessions/sess-created-1").await.0, 404);
        assert_eq!(
            call(&state, Method::DELETE, "/sessions/nope", "").await.0,
            204
        );
        let bulk = r#"{"session_ids":["sess-1"],"session_types":["agent"]}"#;
        assert_eq!(call(&state, Method::DELETE, "/sessions", bulk).await.0, 204);
        assert_eq!(get(&state, "/sessions/sess-1").await.0, 404);
        let mismatched = r#"{"session_ids":["a","b"],"session_types":["agent"]}"#;
        let (status, body) = call(&state, Method::DELETE, "/sessions", mismatched).await;
        assert_eq!(status, 400);
        assert_eq!(
            body["detail"],
            "Session IDs and session types must have the same length"
        );
        let bad = r#"{"session_ids":[],"session_types":["bogus"]}"#;
        let (status, body) = call(&state, Method::DELETE, "/sessions", bad).await;
        assert_eq!(status, 422);
        assert_eq!(body["detail"][0]["type"], "too_short");
        assert_eq!(
            body["detail"][1]["loc"],
            json!(["body", "session_types", 0])
        );
    }

    #[tokio::test]
    async fn session_runs_previews_and_single_run() {
        let state = state();
        let first = run_agent(&state, "sess-1", Some("user-1"), "Tell me a story").await;
        run_agent(&state, "sess-1", Some("user-1"), &"long ".repeat(100)).await;
        state
            .engine
            .store()
            .update_run_status(&first, RunStatus::Cancelled)
            .await
            .unwrap();

        let (status, runs) = get(&state, "/sessions/sess-1/runs").await;
        assert_eq!(status, 200);
        let runs = runs.as_array().unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0]["run_id"], first.as_str());
        assert_eq!(runs[0]["parent_run_id"], "");
        assert_eq!(runs[0]["run_input"], "Tell me a story");
        assert!(runs[0].get("cancellation_stage").is_none());
        assert!(runs[0]["created_at"].as_str().unwrap().ends_with('Z'));

        let (_, cancelled) = get(&state, "/sessions/sess-1/runs?status=cancelled").await;
        assert_eq!(cancelled.as_array().unwrap().len(), 1);
        let (_, none) = get(&state, "/sessions/sess-1/runs?status=regenerated").await;
        assert_eq!(none, json!([]));
        let (status, body) = get(&state, "/sessions/sess-1/runs?status=bogus&status=x").await;
        assert_eq!(status, 400);
        assert_eq!(
            body["detail"],
            "Invalid status value(s) ['BOGUS', 'X']; expected one of ['CANCELLED', 'COMPLETED', \
             'ERROR', 'PAUSED', 'PENDING', 'REGENERATED', 'RUNNING']"
        );
        let (_, later) = get(&state, "/sessions/sess-1/runs?created_after=99999999999").await;
        assert_eq!(later, json!([]));
        let (status, body) = get(&state, "/sessions/nope/runs").await;
        assert_eq!(
            (status, body),
            (404, json!({"detail": "Session with ID nope not found"}))
        );

        let (status, previews) = get(&state, "/sessions/sess-1/run-previews").await;
        assert_eq!(status, 200);
        assert_eq!(
            previews[1]["run_input"].as_str().unwrap().chars().count(),
            280
        );
        assert!(previews[1].get("messages").is_none());

        let (status, one) = get(&state, &format!("/sessions/sess-1/runs/{first}")).await;
        assert_eq!(status, 200);
        assert_eq!(one["cancellation_stage"], Value::Null, "nulls included");
        assert_eq!(one["status"], "CANCELLED");
        let (status, body) = get(&state, "/sessions/sess-1/runs/no-such-run").await;
        assert_eq!(status, 404);
        assert_eq!(
            body["detail"],
            "Run with ID no-such-run not found in session sess-1"
        );
        call(
            &state,
            Method::POST,
            "/sessions",
            r#"{"session_id":"empty"}"#,
        )
        .await;
        let (_, body) = get(&state, "/sessions/empty/runs/x").await;
        assert_eq!(body["detail"], "Session with ID empty has no runs");
    }

    #[tokio::test]
    async fn agent_run_listing_and_polling() {
        let state = state();
        let run_id = run_agent(&state, "sess-1", Some("user-1"), "Tell me a story").await;

        // 502 before 404: the query is validated first.
        let (status, body) = get(&state, "/agents/no-such-agent/runs").await;
        assert_eq!(status, 422);
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"detail":[{"type":"missing","loc":["query","session_id"],"msg":"Field required","input":null}]}"#
        );
        let (status, body) = get(&state, "/agents/no-such-agent/runs?session_id=sess-1").await;
        assert_eq!((status, body), (404, json!({"detail": "Agent not found"})));
        let (status, body) = get(&state, "/agents/story-writer/runs?session_id=nope").await;
        assert_eq!(
            (status, body),
            (404, json!({"detail": "Session not found"}))
        );

        let (status, list) = get(&state, "/agents/story-writer/runs?session_id=sess-1").await;
        assert_eq!(status, 200);
        assert_eq!(list[0]["run_id"], run_id.as_str());
        assert_eq!(list[0]["metadata"], Value::Null, "nulls included (500)");
        let (_, none) = get(
            &state,
            "/agents/story-writer/runs?session_id=sess-1&status=ERROR",
        )
        .await;
        assert_eq!(none, json!([]));

        let (status, polled) = get(
            &state,
            &format!("/agents/story-writer/runs/{run_id}?session_id=sess-1"),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(polled["status"], "COMPLETED");
        assert!(polled["created_at"].is_i64());
        assert!(polled["events"].is_array());
        let (status, body) = get(&state, &format!("/agents/story-writer/runs/{run_id}")).await;
        assert_eq!(
            (status, &body["detail"][0]["loc"]),
            (422, &json!(["query", "session_id"]))
        );
        let (status, body) = get(&state, "/agents/story-writer/runs/nope?session_id=sess-1").await;
        assert_eq!((status, body), (404, json!({"detail": "Run not found"})));
        let (status, _) = get(
            &state,
            &format!("/agents/story-writer/runs/{run_id}?session_id=x"),
        )
        .await;
        assert_eq!(status, 404);
    }
}
