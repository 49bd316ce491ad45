//! Session endpoints (`/sessions…`) and run listings (`GET /agents/{id}/runs…`).

use std::sync::Arc;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::request::Req;

pub async fn list(_s: Arc<AppState>, _r: Req) -> ApiResult {
    Err(ApiError::route_not_found())
}
pub async fn create(_s: Arc<AppState>, _r: Req) -> ApiResult {
    Err(ApiError::route_not_found())
}
pub async fn delete_many(_s: Arc<AppState>, _r: Req) -> ApiResult {
    Err(ApiError::route_not_found())
}
pub async fn get(_s: Arc<AppState>, _r: Req, _id: &str) -> ApiResult {
    Err(ApiError::route_not_found())
}
pub async fn update(_s: Arc<AppState>, _r: Req, _id: &str) -> ApiResult {
    Err(ApiError::route_not_found())
}
pub async fn delete(_s: Arc<AppState>, _r: Req, _id: &str) -> ApiResult {
    Err(ApiError::route_not_found())
}
pub async fn rename(_s: Arc<AppState>, _r: Req, _id: &str) -> ApiResult {
    Err(ApiError::route_not_found())
}
pub async fn runs(_s: Arc<AppState>, _r: Req, _id: &str) -> ApiResult {
    Err(ApiError::route_not_found())
}
pub async fn run_previews(_s: Arc<AppState>, _r: Req, _id: &str) -> ApiResult {
    Err(ApiError::route_not_found())
}
pub async fn run(_s: Arc<AppState>, _r: Req, _id: &str, _run_id: &str) -> ApiResult {
    Err(ApiError::route_not_found())
}
pub async fn agent_runs(_s: Arc<AppState>, _r: Req, _agent_id: &str) -> ApiResult {
    Err(ApiError::route_not_found())
}
pub async fn agent_run(_s: Arc<AppState>, _r: Req, _agent_id: &str, _run_id: &str) -> ApiResult {
    Err(ApiError::route_not_found())
}
