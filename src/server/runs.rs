//! Run endpoints: create (inline, streaming, background), cancel and resume.

use std::sync::Arc;
use std::time::Duration;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::request::Req;

/// Runs in flight, by run id.
#[derive(Default)]
pub struct Registry {}

impl Registry {
    pub fn cancel_all(&self) {}
    pub async fn wait_idle(&self, _grace: Duration) {}
}

pub async fn create(_s: Arc<AppState>, _r: Req, _agent_id: &str) -> ApiResult { Err(ApiError::route_not_found()) }
pub async fn cancel(_s: Arc<AppState>, _r: Req, _agent_id: &str, _run_id: &str) -> ApiResult { Err(ApiError::route_not_found()) }
pub async fn resume(_s: Arc<AppState>, _r: Req, _agent_id: &str, _run_id: &str) -> ApiResult { Err(ApiError::route_not_found()) }
