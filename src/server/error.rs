//! The one place errors become HTTP answers: `{"detail": …}` with the right status.

use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::body::Body;
use super::response::json_response;

/// An error answer. `detail` is a string, or FastAPI's list of validation errors for 422.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: Value,
    /// `allow` header value for 405.
    pub allow: Option<&'static str>,
    /// `retry-after` seconds for 429 and 503.
    pub retry_after: Option<u32>,
}

pub type ApiResult = Result<Response<Body>, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            detail: Value::String(detail.into()),
            allow: None,
            retry_after: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }

    /// 422 with a string detail (errors AgentOS raises itself).
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }

    /// 422 in FastAPI's request-validation shape:
    /// `[{"type","loc":["body"|"query", name],"msg","input"}]`.
    pub fn validation(kind: &str, location: &str, field: &str, msg: &str, input: Value) -> Self {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            detail: json!([{"type": kind, "loc": [location, field], "msg": msg, "input": input}]),
            allow: None,
            retry_after: None,
        }
    }

    /// 422 for a required form or query field that is absent.
    pub fn missing(location: &str, field: &str) -> Self {
        Self::validation("missing", location, field, "Field required", Value::Null)
    }

    pub fn route_not_found() -> Self {
        Self::not_found("Not Found")
    }

    pub fn method_not_allowed(allow: &'static str) -> Self {
        ApiError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            detail: Value::String("Method Not Allowed".into()),
            allow: Some(allow),
            retry_after: None,
        }
    }

    /// 429 or 503 telling the client when to try again.
    pub fn retry_later(status: StatusCode, detail: impl Into<String>, seconds: u32) -> Self {
        ApiError {
            retry_after: Some(seconds),
            ..Self::new(status, detail)
        }
    }

    /// 500 without leaking internals; the cause is logged by the caller.
    pub fn internal(kind: &str) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Internal server error ({kind})"),
        )
    }

    pub fn into_response(self) -> Response<Body> {
        let mut resp = json_response(self.status, &json!({"detail": self.detail}));
        if let Some(allow) = self.allow {
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if let Some(seconds) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        resp
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(err: crate::store::StoreError) -> Self {
        tracing::error!("store error: {err}");
        ApiError::internal("StoreError")
    }
}
