//! The IdP connection status: the last SCIM request and the recent history.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use custodian_domain::ScimRequestEntry;
use serde_json::{Value, json};

use super::error::ApiResult;
use super::extract::authenticate;
use super::rfc3339;
use crate::state::AppState;

/// `GET /api/v1/fleet/scim/details`: Fleet's shape.
pub async fn details(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    authenticate(&state, &headers).await?;
    state.recorder.flush().await;
    let last = state.operations().recent_scim_requests(1).await?.into_iter().next();
    let last_request = last.as_ref().map(super::connections::LastRequestBody::of);
    Ok(Json(json!({"last_request": last_request})))
}

fn entry_json(e: &ScimRequestEntry) -> Value {
    json!({
        "requested_at": rfc3339(e.requested_at),
        "method": e.method,
        "path": e.path,
        "status": e.status,
        "success": e.succeeded(),
        "details": e.detail,
        "user_agent": e.user_agent,
        "duration_ms": (e.duration_ms * 1000.0).round() / 1000.0,
        "connection_id": e.connection.map(|c| c.0),
    })
}

/// A page of a request history, newest first.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RequestListResponse {
    #[schema(value_type = Vec<Object>)]
    pub requests: Vec<Value>,
}

impl RequestListResponse {
    pub fn of(entries: &[ScimRequestEntry]) -> Self {
        RequestListResponse { requests: entries.iter().map(entry_json).collect() }
    }
}

/// The `per_page` parameter of a history: 100 by default, 1 to 1000.
pub fn per_page(uri: &Uri) -> ApiResult<u32> {
    let params = crate::query::QueryParams::parse(uri.query());
    // Empty means absent, as on every JSON API query parameter.
    Ok(match params.get("per_page") {
        None | Some("") => 100,
        Some(v) => v.parse::<u32>().map_err(|_| {
            super::ApiError::new(axum::http::StatusCode::BAD_REQUEST, "Invalid per_page")
                .with_error("per_page", "must be a whole number from 1 to 1000")
        })?,
    }
    .clamp(1, 1000))
}

/// `GET /api/v1/fleet/scim/requests`: the recent SCIM requests of every connection,
/// newest first.
pub async fn requests(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> ApiResult<Json<Value>> {
    authenticate(&state, &headers).await?;
    let limit = per_page(&uri)?;
    state.recorder.flush().await;
    let entries = state.operations().recent_scim_requests(limit).await?;
    Ok(Json(json!(RequestListResponse::of(&entries))))
}
