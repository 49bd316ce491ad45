//! Bearer-key authentication and CORS, as AgentOS does them.

use hyper::{HeaderMap, Method, Request, Response};

use super::ServerOptions;
use super::body::Body;
use super::error::ApiError;

/// Answers a CORS preflight (`OPTIONS` with `access-control-request-method`), if this is one.
pub fn preflight<B>(_options: &ServerOptions, _req: &Request<B>) -> Option<Response<Body>> {
    None
}

/// Checks the bearer key on non-public paths.
pub fn check(
    _options: &ServerOptions,
    _method: &Method,
    _path: &str,
    _headers: &HeaderMap,
) -> Result<(), ApiError> {
    Ok(())
}

/// Adds `vary: Origin` and, for an allowed origin, the CORS headers.
pub fn apply_cors(_options: &ServerOptions, _origin: Option<&str>, _resp: &mut Response<Body>) {}
