//! Path decoding and routing: `Req::new` on a request target as hyper hands it over, then
//! `router::resolve` and `router::percent_decode`.
//!
//! Input: a method, a space, then the request target (`GET /sessions?type=agent`), as on a
//! request line. Properties:
//! nothing panics; the normalised path is `/` or has no trailing slash; the query pairs
//! survive being encoded again; a route, written back as a path with its ids
//! percent-encoded, resolves to the same route; a refusal is a 404, or a 405 naming the
//! allowed methods; decoding an encoded segment gives it back; a request that a server with
//! a security key lets through without one (public paths, `OPTIONS`) reaches no route but
//! `/`, `/health`, `/info` and `/openapi.json`.
#![no_main]

use agentos::kind::Kind;
use agentos::server::ServerOptions;
use agentos::server::auth;
use agentos::server::request::Req;
use agentos::server::router::{Route, percent_decode, resolve};
use bytes::Bytes;
use hyper::{HeaderMap, Method, StatusCode, Uri};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Any text, decoded as one segment, never panics; an encoded one decodes back.
    let text = String::from_utf8_lossy(data);
    let _ = percent_decode(&text);
    assert_eq!(percent_decode(&encode(&text)), text);

    let Some(space) = data.iter().position(|&b| b == b' ') else {
        return;
    };
    let (Ok(method), target) = (Method::from_bytes(&data[..space]), &data[space + 1..]) else {
        return;
    };

    let Ok(uri) = Uri::try_from(target) else {
        return;
    };
    let req = Req::new(
        method.clone(),
        uri.path(),
        uri.query(),
        HeaderMap::new(),
        Bytes::new(),
    );
    assert!(
        req.path == "/" || !req.path.ends_with('/'),
        "{:?}",
        req.path
    );
    assert!(!req.path.is_empty());
    let requery = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(req.query.iter().map(|(k, v)| (k, v)))
        .finish();
    let again: Vec<(String, String)> = form_urlencoded::parse(requery.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(again, req.query);

    let resolved = resolve(&req.method, &req.path);
    let options = ServerOptions {
        security_key: Some("secret".into()),
        ..ServerOptions::default()
    };
    if auth::check(&options, &method, uri.path(), &HeaderMap::new()).is_ok() {
        assert!(
            matches!(
                resolved,
                Err(_) | Ok(Route::Root | Route::Health | Route::Info | Route::OpenApi)
            ),
            "reached {resolved:?} without the key"
        );
    }

    match resolved {
        Ok(route) => {
            let path = path_of(&route);
            assert_eq!(resolve(&method, &path).as_ref(), Ok(&route), "{path}");
        }
        Err(err) if err.status == StatusCode::METHOD_NOT_ALLOWED => {
            let allow = err.allow.expect("a 405 names the allowed methods");
            assert!(!allow.split(", ").any(|m| m == method.as_str()), "{allow}");
        }
        Err(err) => {
            assert_eq!(err.status, StatusCode::NOT_FOUND);
            assert!(err.allow.is_none());
        }
    }
});

/// Percent-encodes every byte but the unreserved ones, so the result is one path segment.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn kind(c: &Kind) -> &'static str {
    match c {
        Kind::Agent => "agents",
        Kind::Team => "teams",
        Kind::Workflow => "workflows",
    }
}

/// The path of a route, ids encoded.
fn path_of(route: &Route) -> String {
    let e = |s: &String| encode(s);
    match route {
        Route::Root => "/".into(),
        Route::Health => "/health".into(),
        Route::Info => "/info".into(),
        Route::Config => "/config".into(),
        Route::OpenApi => "/openapi.json".into(),
        Route::Agents => "/agents".into(),
        Route::Agent(id) => format!("/agents/{}", e(id)),
        Route::Teams => "/teams".into(),
        Route::Team(id) => format!("/teams/{}", e(id)),
        Route::Workflows => "/workflows".into(),
        Route::Workflow(id) => format!("/workflows/{}", e(id)),
        Route::CreateRun(c, id) | Route::ComponentRuns(c, id) => {
            format!("/{}/{}/runs", kind(c), e(id))
        }
        Route::ComponentRun(c, id, run) => format!("/{}/{}/runs/{}", kind(c), e(id), e(run)),
        Route::CancelRun(c, id, run) => {
            format!("/{}/{}/runs/{}/cancel", kind(c), e(id), e(run))
        }
        Route::ResumeRun(c, id, run) => {
            format!("/{}/{}/runs/{}/resume", kind(c), e(id), e(run))
        }
        Route::ContinueAgentRun(id, run) => format!("/agents/{}/runs/{}/continue", e(id), e(run)),
        Route::ContinueWorkflowRun(id, run) => {
            format!("/workflows/{}/runs/{}/continue", e(id), e(run))
        }
        Route::ListSessions | Route::CreateSession | Route::DeleteSessions => "/sessions".into(),
        Route::GetSession(id) | Route::UpdateSession(id) | Route::DeleteSession(id) => {
            format!("/sessions/{}", e(id))
        }
        Route::RenameSession(id) => format!("/sessions/{}/rename", e(id)),
        Route::SessionRuns(id) => format!("/sessions/{}/runs", e(id)),
        Route::SessionRunPreviews(id) => format!("/sessions/{}/run-previews", e(id)),
        Route::SessionRun(id, run) => format!("/sessions/{}/runs/{}", e(id), e(run)),
    }
}
