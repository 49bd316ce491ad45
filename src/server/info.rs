//! Informational endpoints: `/`, `/health`, `/info`, `/config`, `/openapi.json`,
//! `/agents`, `/teams`, `/workflows`.

use std::sync::Arc;

use super::AppState;
use super::error::{ApiError, ApiResult};

pub fn root(_s: &Arc<AppState>) -> ApiResult {
    Err(ApiError::route_not_found())
}
pub fn health(_s: &Arc<AppState>) -> ApiResult {
    Err(ApiError::route_not_found())
}
pub fn info(_s: &Arc<AppState>) -> ApiResult {
    Err(ApiError::route_not_found())
}
pub fn config(_s: &Arc<AppState>) -> ApiResult {
    Err(ApiError::route_not_found())
}
pub fn openapi(_s: &Arc<AppState>) -> ApiResult {
    Err(ApiError::route_not_found())
}
pub fn agents(_s: &Arc<AppState>) -> ApiResult {
    Err(ApiError::route_not_found())
}
pub fn agent(_s: &Arc<AppState>, _id: &str) -> ApiResult {
    Err(ApiError::route_not_found())
}
pub fn teams(_s: &Arc<AppState>) -> ApiResult {
    Err(ApiError::route_not_found())
}
pub fn team(_s: &Arc<AppState>, _id: &str) -> ApiResult {
    Err(ApiError::route_not_found())
}
pub fn workflows(_s: &Arc<AppState>) -> ApiResult {
    Err(ApiError::route_not_found())
}
pub fn workflow(_s: &Arc<AppState>, _id: &str) -> ApiResult {
    Err(ApiError::route_not_found())
}
