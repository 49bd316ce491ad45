//! Every route of the API on one screen: [`resolve`] matches a method and path to a
//! [`Route`] (or the 404/405 they deserve) without touching any state, and [`route`]
//! dispatches it to its handler.

use std::sync::Arc;

use hyper::Method;

use crate::kind::Kind;

use super::error::{ApiError, ApiResult};
use super::request::Req;
use super::{AppState, info, runs, sessions};

/// What a request asks for, with the percent-decoded ids of its path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    Root,
    Health,
    Info,
    Config,
    OpenApi,
    Agents,
    Agent(String),
    Teams,
    Team(String),
    Workflows,
    Workflow(String),
    /// `POST /{kind}/{id}/runs`.
    CreateRun(Kind, String),
    /// `GET /{kind}/{id}/runs`.
    ComponentRuns(Kind, String),
    /// `GET /{kind}/{id}/runs/{run_id}`.
    ComponentRun(Kind, String, String),
    /// `POST /{kind}/{id}/runs/{run_id}/cancel`.
    CancelRun(Kind, String, String),
    /// `POST /{kind}/{id}/runs/{run_id}/resume`.
    ResumeRun(Kind, String, String),
    /// `POST /agents/{id}/runs/{run_id}/continue`.
    ContinueAgentRun(String, String),
    /// `POST /workflows/{id}/runs/{run_id}/continue`.
    ContinueWorkflowRun(String, String),
    ListSessions,
    CreateSession,
    DeleteSessions,
    GetSession(String),
    UpdateSession(String),
    DeleteSession(String),
    RenameSession(String),
    SessionRuns(String),
    SessionRunPreviews(String),
    /// `GET /sessions/{id}/runs/{run_id}`.
    SessionRun(String, String),
}

/// Matches a method and a path (as [`Req::new`] normalises it) to its route: 404 for a path
/// no route has, 405 with the allowed methods for a known path asked with another method.
pub fn resolve(method: &Method, path: &str) -> Result<Route, ApiError> {
    let segments: Vec<String> = path.split('/').skip(1).map(percent_decode).collect();
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    let m = method;
    let id = |s: &str| s.to_string();
    Ok(match seg.as_slice() {
        [""] => get(m).map(|()| Route::Root)?,
        ["health"] => get(m).map(|()| Route::Health)?,
        ["info"] => get(m).map(|()| Route::Info)?,
        ["config"] => get(m).map(|()| Route::Config)?,
        ["openapi.json"] => get(m).map(|()| Route::OpenApi)?,
        ["agents"] => get(m).map(|()| Route::Agents)?,
        ["agents", agent] => get(m).map(|()| Route::Agent(id(agent)))?,
        ["teams"] => get(m).map(|()| Route::Teams)?,
        ["teams", team] => get(m).map(|()| Route::Team(id(team)))?,
        ["workflows"] => get(m).map(|()| Route::Workflows)?,
        ["workflows", workflow] => get(m).map(|()| Route::Workflow(id(workflow)))?,
        [kind @ ("agents" | "teams" | "workflows"), target, "runs"] => match *m {
            Method::POST => Route::CreateRun(component(kind), id(target)),
            Method::GET | Method::HEAD => Route::ComponentRuns(component(kind), id(target)),
            _ => return Err(ApiError::method_not_allowed("GET, POST")),
        },
        [
            kind @ ("agents" | "teams" | "workflows"),
            target,
            "runs",
            run_id,
        ] => get(m).map(|()| Route::ComponentRun(component(kind), id(target), id(run_id)))?,
        [
            kind @ ("agents" | "teams" | "workflows"),
            target,
            "runs",
            run_id,
            "cancel",
        ] => post(m).map(|()| Route::CancelRun(component(kind), id(target), id(run_id)))?,
        [
            kind @ ("agents" | "teams" | "workflows"),
            target,
            "runs",
            run_id,
            "resume",
        ] => post(m).map(|()| Route::ResumeRun(component(kind), id(target), id(run_id)))?,
        ["agents", agent, "runs", run_id, "continue"] => {
            post(m).map(|()| Route::ContinueAgentRun(id(agent), id(run_id)))?
        }
        ["workflows", workflow, "runs", run_id, "continue"] => {
            post(m).map(|()| Route::ContinueWorkflowRun(id(workflow), id(run_id)))?
        }
        ["sessions"] => match *m {
            Method::GET => Route::ListSessions,
            Method::POST => Route::CreateSession,
            Method::DELETE => Route::DeleteSessions,
            _ => return Err(ApiError::method_not_allowed("GET, POST, DELETE")),
        },
        ["sessions", session] => match *m {
            Method::GET => Route::GetSession(id(session)),
            Method::PATCH => Route::UpdateSession(id(session)),
            Method::DELETE => Route::DeleteSession(id(session)),
            _ => return Err(ApiError::method_not_allowed("GET, PATCH, DELETE")),
        },
        ["sessions", session, "rename"] => post(m).map(|()| Route::RenameSession(id(session)))?,
        ["sessions", session, "runs"] => get(m).map(|()| Route::SessionRuns(id(session)))?,
        ["sessions", session, "run-previews"] => {
            get(m).map(|()| Route::SessionRunPreviews(id(session)))?
        }
        ["sessions", session, "runs", run_id] => {
            get(m).map(|()| Route::SessionRun(id(session), id(run_id)))?
        }
        _ => return Err(ApiError::route_not_found()),
    })
}

/// Dispatches a request to its handler.
pub async fn route(state: Arc<AppState>, req: Req) -> ApiResult {
    match resolve(&req.method, &req.path)? {
        Route::Root => info::root(&state),
        Route::Health => info::health(&state),
        Route::Info => info::info(&state),
        Route::Config => info::config(&state),
        Route::OpenApi => info::openapi(&state),
        Route::Agents => info::agents(&state).await,
        Route::Agent(id) => info::agent(&state, &id).await,
        Route::Teams => info::teams(&state).await,
        Route::Team(id) => info::team(&state, &id).await,
        Route::Workflows => info::workflows(&state),
        Route::Workflow(id) => info::workflow(&state, &id).await,
        Route::CreateRun(kind, id) => runs::create(state, req, kind, &id).await,
        Route::ComponentRuns(kind, id) => sessions::component_runs(state, req, kind, &id).await,
        Route::ComponentRun(kind, id, run_id) => {
            sessions::component_run(state, req, kind, &id, &run_id).await
        }
        Route::CancelRun(kind, id, run_id) => runs::cancel(state, req, kind, &id, &run_id).await,
        Route::ResumeRun(kind, id, run_id) => runs::resume(state, req, kind, &id, &run_id).await,
        Route::ContinueAgentRun(id, run_id) => runs::continue_run(state, req, &id, &run_id).await,
        Route::ContinueWorkflowRun(id, run_id) => {
            runs::continue_workflow(state, req, &id, &run_id).await
        }
        Route::ListSessions => sessions::list(state, req).await,
        Route::CreateSession => sessions::create(state, req).await,
        Route::DeleteSessions => sessions::delete_many(state, req).await,
        Route::GetSession(id) => sessions::get(state, req, &id).await,
        Route::UpdateSession(id) => sessions::update(state, req, &id).await,
        Route::DeleteSession(id) => sessions::delete(state, req, &id).await,
        Route::RenameSession(id) => sessions::rename(state, req, &id).await,
        Route::SessionRuns(id) => sessions::runs(state, req, &id).await,
        Route::SessionRunPreviews(id) => sessions::run_previews(state, req, &id).await,
        Route::SessionRun(id, run_id) => sessions::run(state, req, &id, &run_id).await,
    }
}

/// The component a path's first segment names (the route patterns only match the three).
fn component(kind: &str) -> Kind {
    Kind::from_route(kind).unwrap_or(Kind::Agent)
}

/// A GET-only route: 405 with `allow: GET` otherwise.
fn get(method: &Method) -> Result<(), ApiError> {
    if *method == Method::GET || *method == Method::HEAD {
        Ok(())
    } else {
        Err(ApiError::method_not_allowed("GET"))
    }
}

/// A POST-only route: 405 with `allow: POST` otherwise.
fn post(method: &Method) -> Result<(), ApiError> {
    if *method == Method::POST {
        Ok(())
    } else {
        Err(ApiError::method_not_allowed("POST"))
    }
}

/// Decodes `%XX` escapes of one path segment. A `%` not followed by two hex digits stays
/// as it is; bytes that do not form UTF-8 after decoding become U+FFFD, so such a path can
/// only miss every route (404), never fail.
pub fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).and_then(|b| hex(*b)),
                bytes.get(i + 2).and_then(|b| hex(*b)),
            )
        {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::StatusCode;

    #[test]
    fn resolve_matches_routes_and_methods() {
        let id = |s: &str| s.to_string();
        let ok = [
            (Method::GET, "/", Route::Root),
            (Method::HEAD, "/health", Route::Health),
            (Method::GET, "/agents/a%20b", Route::Agent(id("a b"))),
            (
                Method::POST,
                "/teams/t/runs",
                Route::CreateRun(Kind::Team, id("t")),
            ),
            (
                Method::HEAD,
                "/workflows/w/runs",
                Route::ComponentRuns(Kind::Workflow, id("w")),
            ),
            (
                Method::POST,
                "/agents/a/runs/r%2Fs/cancel",
                Route::CancelRun(Kind::Agent, id("a"), id("r/s")),
            ),
            (
                Method::POST,
                "/workflows/w/runs/r/continue",
                Route::ContinueWorkflowRun(id("w"), id("r")),
            ),
            (Method::DELETE, "/sessions", Route::DeleteSessions),
            (Method::PATCH, "/sessions/s", Route::UpdateSession(id("s"))),
            (
                Method::GET,
                "/sessions/s/runs/r",
                Route::SessionRun(id("s"), id("r")),
            ),
        ];
        for (method, path, want) in ok {
            assert_eq!(resolve(&method, path), Ok(want), "{method} {path}");
        }
        let refused = [
            (
                Method::POST,
                "/health",
                StatusCode::METHOD_NOT_ALLOWED,
                Some("GET"),
            ),
            (
                Method::PUT,
                "/agents/a/runs",
                StatusCode::METHOD_NOT_ALLOWED,
                Some("GET, POST"),
            ),
            (
                Method::GET,
                "/agents/a/runs/r/cancel",
                StatusCode::METHOD_NOT_ALLOWED,
                Some("POST"),
            ),
            (
                Method::HEAD,
                "/sessions",
                StatusCode::METHOD_NOT_ALLOWED,
                Some("GET, POST, DELETE"),
            ),
            (
                Method::POST,
                "/teams/t/runs/r/continue",
                StatusCode::NOT_FOUND,
                None,
            ),
            (Method::GET, "/agents/a/b", StatusCode::NOT_FOUND, None),
            (Method::GET, "//agents", StatusCode::NOT_FOUND, None),
        ];
        for (method, path, status, allow) in refused {
            let err = resolve(&method, path).unwrap_err();
            assert_eq!((err.status, err.allow), (status, allow), "{method} {path}");
        }
    }

    #[test]
    fn decodes_escapes_and_never_panics() {
        assert_eq!(percent_decode("a%20b"), "a b");
        assert_eq!(percent_decode("%C3%A9"), "é");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        // A hex digit then a multi-byte character: no slicing inside the character.
        assert_eq!(percent_decode("%aé"), "%aé");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
    }
}
