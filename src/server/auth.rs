//! Bearer-key authentication and CORS, as AgentOS does them.
//!
//! # Authentication
//!
//! With a security key (`--security-key` / `OS_SECURITY_KEY`) every request needs
//! `Authorization: Bearer <key>`, checked before routing, so an unknown path without a key
//! is 401 rather than 404. A few paths stay public, and CORS preflights are never
//! authenticated. Like AgentOS, the scheme is case-insensitive and a bare key without
//! `Bearer ` is accepted too. The key is compared in constant time.
//!
//! # CORS
//!
//! The same policy as AgentOS's Starlette `CORSMiddleware` (credentials allowed, every method
//! and header allowed, every header exposed): AgentOS's default origins plus
//! `--cors-origin`s. Every answer varies on `Origin`; a request carrying an allowed `Origin`
//! gets it mirrored back. A preflight is answered here, before authentication and routing.

use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};

use super::ServerOptions;
use super::body::Body;
use super::error::ApiError;

/// Origins AgentOS allows by default (its web UI and local development).
pub const DEFAULT_ORIGINS: [&str; 6] = [
    "http://localhost:3000",
    "https://agno.com",
    "https://www.agno.com",
    "https://app.agno.com",
    "https://os-stg.agno.com",
    "https://os.agno.com",
];

/// Paths that never need the key (exact matches).
const PUBLIC_PATHS: [&str; 7] = [
    "/",
    "/health",
    "/info",
    "/docs",
    "/redoc",
    "/openapi.json",
    "/docs/oauth2-redirect",
];

/// Methods a preflight may ask for (Starlette's list for `allow_methods=["*"]`).
const ALLOWED_METHODS: &str = "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT, QUERY";
const PREFLIGHT_VARY: &str = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers, \
     Access-Control-Request-Private-Network";
const PREFLIGHT_MAX_AGE: &str = "600";

const MISSING_HEADER: &str = "Authorization header required";
const INVALID_TOKEN: &str = "Invalid authentication token";

/// True when `origin` may make credentialed cross-origin requests.
pub fn is_allowed_origin(options: &ServerOptions, origin: &str) -> bool {
    DEFAULT_ORIGINS.contains(&origin) || options.cors_origins.iter().any(|o| o == origin)
}

/// Answers a CORS preflight (`OPTIONS` with `Origin` and `access-control-request-method`),
/// if this is one: 200 `OK`, or 400 `Disallowed CORS …` naming what was refused.
pub fn preflight<B>(options: &ServerOptions, req: &Request<B>) -> Option<Response<Body>> {
    if req.method() != Method::OPTIONS {
        return None;
    }
    let headers = req.headers();
    let origin = headers.get(header::ORIGIN)?;
    let requested_method = headers.get(header::ACCESS_CONTROL_REQUEST_METHOD)?;

    let mut resp = Response::new(Body::empty());
    let out = resp.headers_mut();
    out.insert(header::VARY, HeaderValue::from_static(PREFLIGHT_VARY));
    out.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOWED_METHODS),
    );
    out.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(PREFLIGHT_MAX_AGE),
    );
    out.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );

    let mut failures = Vec::new();
    match origin.to_str() {
        Ok(o) if is_allowed_origin(options, o) => {
            out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        }
        _ => failures.push("origin"),
    }
    let method_ok = requested_method
        .to_str()
        .is_ok_and(|m| ALLOWED_METHODS.split(", ").any(|a| a == m));
    if !method_ok {
        failures.push("method");
    }
    // Every header is allowed: mirror back what the browser asked for.
    if let Some(requested) = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested.clone());
    }
    // Private-network access is not granted, as in AgentOS.
    if headers.contains_key("access-control-request-private-network") {
        failures.push("private-network");
    }

    let (status, text) = if failures.is_empty() {
        (StatusCode::OK, "OK".to_string())
    } else {
        (
            StatusCode::BAD_REQUEST,
            format!("Disallowed CORS {}", failures.join(", ")),
        )
    };
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    *resp.body_mut() = Body::full(text);
    *resp.status_mut() = status;
    Some(resp)
}

/// Checks the key on non-public paths: 401 `Authorization header required` without an
/// `Authorization` header, 401 `Invalid authentication token` with a wrong key.
pub fn check(
    options: &ServerOptions,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let Some(key) = options.security_key.as_deref() else {
        return Ok(());
    };
    if *method == Method::OPTIONS || is_public(path) {
        return Ok(());
    }
    let value = headers
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes)
        .filter(|v| !v.iter().all(u8::is_ascii_whitespace))
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, MISSING_HEADER))?;
    let token = match value.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case(b"bearer ") => &value[7..],
        _ => value,
    };
    if constant_time_eq(token, key.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::UNAUTHORIZED, INVALID_TOKEN))
    }
}

/// Adds `vary: Origin` and, for a request with an `Origin`, the CORS answer headers (the
/// origin itself only when it is allowed). Preflight answers already carry theirs.
pub fn apply_cors(options: &ServerOptions, origin: Option<&str>, resp: &mut Response<Body>) {
    let status = resp.status();
    let headers = resp.headers_mut();
    if headers.contains_key(header::ACCESS_CONTROL_MAX_AGE) {
        return;
    }
    add_vary_origin(headers);
    let Some(origin) = origin else {
        return;
    };
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("*"),
    );
    if !is_allowed_origin(options, origin) {
        return;
    }
    let Ok(value) = HeaderValue::from_str(origin) else {
        return;
    };
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    if status == StatusCode::UNAUTHORIZED {
        // AgentOS's auth middleware answers 401s with its own, wider CORS headers.
        let star = HeaderValue::from_static("*");
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, star.clone());
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, star);
    }
}

fn is_public(path: &str) -> bool {
    let trimmed = path.trim_end_matches('/');
    let path = if trimmed.is_empty() { "/" } else { trimmed };
    PUBLIC_PATHS.contains(&path)
}

/// Appends `Origin` to `vary` unless it is already listed.
fn add_vary_origin(headers: &mut HeaderMap) {
    let existing: Vec<String> = headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_string)
        .collect();
    let listed = existing
        .iter()
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case("origin"));
    if listed {
        return;
    }
    let value = if existing.is_empty() {
        HeaderValue::from_static("Origin")
    } else {
        match HeaderValue::from_str(&format!("{}, Origin", existing.join(", "))) {
            Ok(v) => v,
            Err(_) => HeaderValue::from_static("Origin"),
        }
    };
    headers.insert(HeaderName::from_static("vary"), value);
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn options(key: Option<&str>) -> ServerOptions {
        ServerOptions {
            security_key: key.map(str::to_string),
            cors_origins: vec!["https://extra.example".into()],
            ..ServerOptions::default()
        }
    }

    fn auth_headers(value: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = value {
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn detail(err: ApiError) -> (StatusCode, String) {
        (
            err.status,
            err.detail.as_str().unwrap_or_default().to_string(),
        )
    }

    async fn body_text(resp: Response<Body>) -> String {
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn header_str<'a>(resp: &'a Response<Body>, name: &str) -> Option<&'a str> {
        resp.headers().get(name).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn no_key_means_no_auth() {
        let opts = options(None);
        assert!(check(&opts, &Method::GET, "/agents", &HeaderMap::new()).is_ok());
    }

    #[test]
    fn key_rules_match_agentos() {
        let opts = options(Some("test-secret-key"));
        let get = Method::GET;
        for public in [
            "/",
            "/health",
            "/info",
            "/openapi.json",
            "/docs",
            "/redoc",
            "/health/",
        ] {
            assert!(
                check(&opts, &get, public, &HeaderMap::new()).is_ok(),
                "{public}"
            );
        }
        for path in [
            "/agents",
            "/config",
            "/sessions",
            "/no/such/route",
            "/healthz",
        ] {
            assert_eq!(
                detail(check(&opts, &get, path, &HeaderMap::new()).unwrap_err()),
                (StatusCode::UNAUTHORIZED, MISSING_HEADER.to_string()),
                "{path}"
            );
        }
        let post = Method::POST;
        assert!(check(&opts, &post, "/agents/x/runs", &HeaderMap::new()).is_err());
        assert!(check(&opts, &Method::OPTIONS, "/agents", &HeaderMap::new()).is_ok());
        for good in [
            "Bearer test-secret-key",
            "bearer test-secret-key",
            "BEARER test-secret-key",
            "test-secret-key",
        ] {
            assert!(
                check(&opts, &get, "/agents", &auth_headers(Some(good))).is_ok(),
                "{good}"
            );
        }
        for bad in [
            "Bearer wrong-key",
            "Bearer test-secret-ke",
            "Bearer test-secret-keyy",
            "Basic dGVzdA==",
            "Bearer",
        ] {
            assert_eq!(
                detail(check(&opts, &get, "/agents", &auth_headers(Some(bad))).unwrap_err()),
                (StatusCode::UNAUTHORIZED, INVALID_TOKEN.to_string()),
                "{bad}"
            );
        }
        assert_eq!(
            detail(check(&opts, &get, "/agents", &auth_headers(Some(""))).unwrap_err()).1,
            MISSING_HEADER
        );
    }

    #[test]
    fn constant_time_eq_is_eq() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
    }

    fn preflight_req(origin: Option<&str>, method: &str, extra: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder()
            .method(Method::OPTIONS)
            .uri("/agents/a/runs");
        if let Some(o) = origin {
            b = b.header("origin", o);
        }
        b = b.header("access-control-request-method", method);
        for (k, v) in extra {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    #[tokio::test]
    async fn preflight_allowed_origin() {
        let opts = options(Some("k"));
        let resp = preflight(
            &opts,
            &preflight_req(Some("http://localhost:3000"), "POST", &[]),
        )
        .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            header_str(&resp, "access-control-allow-origin"),
            Some("http://localhost:3000")
        );
        assert_eq!(
            header_str(&resp, "access-control-allow-credentials"),
            Some("true")
        );
        assert_eq!(
            header_str(&resp, "access-control-allow-methods"),
            Some(ALLOWED_METHODS)
        );
        assert_eq!(header_str(&resp, "access-control-max-age"), Some("600"));
        assert_eq!(header_str(&resp, "vary"), Some(PREFLIGHT_VARY));
        assert_eq!(
            header_str(&resp, "content-type"),
            Some("text/plain; charset=utf-8")
        );
        assert!(resp.headers().get("access-control-allow-headers").is_none());
        assert_eq!(body_text(resp).await, "OK");

        let resp = preflight(
            &opts,
            &preflight_req(
                Some("https://extra.example"),
                "GET",
                &[(
                    "access-control-request-headers",
                    "authorization, content-type",
                )],
            ),
        )
        .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            header_str(&resp, "access-control-allow-headers"),
            Some("authorization, content-type")
        );
    }

    #[tokio::test]
    async fn preflight_refusals() {
        let opts = options(None);
        let resp = preflight(
            &opts,
            &preflight_req(Some("https://evil.example"), "POST", &[]),
        )
        .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert!(resp.headers().get("access-control-allow-origin").is_none());
        assert_eq!(body_text(resp).await, "Disallowed CORS origin");

        let resp = preflight(
            &opts,
            &preflight_req(Some("https://evil.example"), "BREW", &[]),
        )
        .unwrap();
        assert_eq!(body_text(resp).await, "Disallowed CORS origin, method");

        let resp = preflight(
            &opts,
            &preflight_req(
                Some("https://os.agno.com"),
                "GET",
                &[("access-control-request-private-network", "true")],
            ),
        )
        .unwrap();
        assert_eq!(body_text(resp).await, "Disallowed CORS private-network");

        // Not preflights: no Origin, or not OPTIONS, or no requested method.
        assert!(preflight(&opts, &preflight_req(None, "POST", &[])).is_none());
        let get = Request::builder()
            .uri("/")
            .header("origin", "http://localhost:3000")
            .body(())
            .unwrap();
        assert!(preflight(&opts, &get).is_none());
        let bare = Request::builder()
            .method(Method::OPTIONS)
            .uri("/")
            .header("origin", "http://localhost:3000")
            .body(())
            .unwrap();
        assert!(preflight(&opts, &bare).is_none());
    }

    #[test]
    fn cors_on_ordinary_answers() {
        let opts = options(Some("k"));
        let mut resp = Response::new(Body::empty());
        apply_cors(&opts, None, &mut resp);
        assert_eq!(header_str(&resp, "vary"), Some("Origin"));
        assert!(resp.headers().get("access-control-allow-origin").is_none());

        let mut resp = ApiError::new(StatusCode::UNAUTHORIZED, MISSING_HEADER).into_response();
        apply_cors(&opts, Some("http://localhost:3000"), &mut resp);
        assert_eq!(
            header_str(&resp, "access-control-allow-origin"),
            Some("http://localhost:3000")
        );
        assert_eq!(
            header_str(&resp, "access-control-allow-credentials"),
            Some("true")
        );
        assert_eq!(header_str(&resp, "access-control-allow-methods"), Some("*"));
        assert_eq!(header_str(&resp, "access-control-allow-headers"), Some("*"));
        assert_eq!(
            header_str(&resp, "access-control-expose-headers"),
            Some("*")
        );
        assert_eq!(header_str(&resp, "vary"), Some("Origin"));

        let mut resp = Response::new(Body::empty());
        apply_cors(&opts, Some("https://app.agno.com"), &mut resp);
        assert_eq!(
            header_str(&resp, "access-control-allow-origin"),
            Some("https://app.agno.com")
        );
        assert!(resp.headers().get("access-control-allow-methods").is_none());

        let mut resp = Response::new(Body::empty());
        apply_cors(&opts, Some("https://evil.example"), &mut resp);
        assert!(resp.headers().get("access-control-allow-origin").is_none());
        assert_eq!(header_str(&resp, "vary"), Some("Origin"));

        let mut resp = Response::new(Body::empty());
        resp.headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        apply_cors(&opts, None, &mut resp);
        assert_eq!(header_str(&resp, "vary"), Some("Accept-Encoding, Origin"));
    }

    #[test]
    fn preflight_answers_keep_their_vary() {
        let opts = options(None);
        let mut resp = preflight(
            &opts,
            &preflight_req(Some("http://localhost:3000"), "POST", &[]),
        )
        .unwrap();
        apply_cors(&opts, Some("http://localhost:3000"), &mut resp);
        assert_eq!(header_str(&resp, "vary"), Some(PREFLIGHT_VARY));
        assert!(
            resp.headers()
                .get("access-control-expose-headers")
                .is_none()
        );
    }
}
