//! Every route of the API on one screen.

use std::sync::Arc;

use hyper::Method;

use crate::kind::Kind;

use super::error::{ApiError, ApiResult};
use super::request::Req;
use super::{AppState, info, runs, sessions};

/// Dispatches a request to its handler.
pub async fn route(state: Arc<AppState>, req: Req) -> ApiResult {
    let segments: Vec<String> = req.path.split('/').skip(1).map(percent_decode).collect();
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    let m = &req.method;
    match seg.as_slice() {
        [""] => get(m).and_then(|()| info::root(&state)),
        ["health"] => get(m).and_then(|()| info::health(&state)),
        ["info"] => get(m).and_then(|()| info::info(&state)),
        ["config"] => get(m).and_then(|()| info::config(&state)),
        ["openapi.json"] => get(m).and_then(|()| info::openapi(&state)),
        ["agents"] => get(m).and_then(|()| info::agents(&state)),
        ["agents", id] => get(m).and_then(|()| info::agent(&state, id)),
        ["teams"] => get(m).and_then(|()| info::teams(&state)),
        ["teams", id] => get(m).and_then(|()| info::team(&state, id)),
        ["workflows"] => get(m).and_then(|()| info::workflows(&state)),
        ["workflows", id] => get(m).and_then(|()| info::workflow(&state, id)),
        ["agents", id, "runs"] => runs_route(state, req, Kind::Agent, id).await,
        ["teams", id, "runs"] => runs_route(state, req, Kind::Team, id).await,
        ["workflows", id, "runs"] => runs_route(state, req, Kind::Workflow, id).await,
        [
            kind @ ("agents" | "teams" | "workflows"),
            id,
            "runs",
            run_id,
        ] => {
            get(m)?;
            sessions::component_run(state, req, component(kind), id, run_id).await
        }
        [
            kind @ ("agents" | "teams" | "workflows"),
            id,
            "runs",
            run_id,
            "cancel",
        ] => {
            post(m)?;
            runs::cancel(state, req, component(kind), id, run_id).await
        }
        [
            kind @ ("agents" | "teams" | "workflows"),
            id,
            "runs",
            run_id,
            "resume",
        ] => {
            post(m)?;
            runs::resume(state, req, component(kind), id, run_id).await
        }
        ["agents", id, "runs", run_id, "continue"] => {
            post(m)?;
            runs::continue_run(state, req, id, run_id).await
        }
        ["workflows", id, "runs", run_id, "continue"] => {
            post(m)?;
            runs::continue_workflow(state, req, id, run_id).await
        }
        ["sessions"] => match *m {
            Method::GET => sessions::list(state, req).await,
            Method::POST => sessions::create(state, req).await,
            Method::DELETE => sessions::delete_many(state, req).await,
            _ => Err(ApiError::method_not_allowed("GET, POST, DELETE")),
        },
        ["sessions", id] => match *m {
            Method::GET => sessions::get(state, req, id).await,
            Method::PATCH => sessions::update(state, req, id).await,
            Method::DELETE => sessions::delete(state, req, id).await,
            _ => Err(ApiError::method_not_allowed("GET, PATCH, DELETE")),
        },
        ["sessions", id, "rename"] => {
            post(m)?;
            sessions::rename(state, req, id).await
        }
        ["sessions", id, "runs"] => {
            get(m)?;
            sessions::runs(state, req, id).await
        }
        ["sessions", id, "run-previews"] => {
            get(m)?;
            sessions::run_previews(state, req, id).await
        }
        ["sessions", id, "runs", run_id] => {
            get(m)?;
            sessions::run(state, req, id, run_id).await
        }
        _ => Err(ApiError::route_not_found()),
    }
}

/// `POST` starts a run, `GET` lists the component's runs in a session.
async fn runs_route(state: Arc<AppState>, req: Req, component: Kind, id: &str) -> ApiResult {
    match req.method {
        Method::POST => runs::create(state, req, component, id).await,
        Method::GET | Method::HEAD => sessions::component_runs(state, req, component, id).await,
        _ => Err(ApiError::method_not_allowed("GET, POST")),
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
    use super::percent_decode;

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
