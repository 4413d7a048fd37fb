//! The JSON API (Fleet-compatible shapes): its one error → response mapping and routes.

pub mod activities;
pub mod extract;
pub mod hosts;
pub mod labels;
pub mod openapi;
pub mod render;
pub mod schema;
mod scim_status;
pub mod webhooks;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use custodian_domain::{ApiUser, StoreError};

use crate::app::AppState;
use crate::routes::Routes;

/// An error on the JSON API: `{"message", "errors": [{"name", "reason"}]}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub errors: Vec<(String, String)>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into(), errors: Vec::new() }
    }
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Authentication required")
            .with_error("base", "send 'Authorization: Bearer <API token>'")
    }
    pub fn with_error(mut self, name: impl Into<String>, reason: impl Into<String>) -> Self {
        self.errors.push((name.into(), reason.into()));
        self
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::new(StatusCode::NOT_FOUND, "Resource Not Found"),
            StoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
            StoreError::Scim(e) => {
                ApiError::new(StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST), e.detail)
            }
            StoreError::Contention(m) => {
                tracing::warn!(error = %m, "an API write lost to concurrent ones after retries");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The server is busy with concurrent changes; retry shortly",
                )
            }
            StoreError::Database(m) => {
                tracing::error!(error = %m, "database error on an API request");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
            }
        }
    }
}

/// The body of every JSON API error.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub message: String,
    pub errors: Vec<hosts::FieldError>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        let body = ErrorBody {
            message: self.message,
            errors: self.errors.into_iter().map(|(name, reason)| hosts::FieldError { name, reason }).collect(),
        };
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"custodian\""));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The operator a request's bearer token belongs to, whatever its role.
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> ApiResult<ApiUser> {
    let token = crate::auth::bearer_token(headers).ok_or_else(ApiError::unauthorized)?;
    let user = state.tokens.authenticate(state.operators(), token).await?.ok_or_else(ApiError::unauthorized)?;
    state.operator_use.record(state.operators(), user.id).await;
    Ok(user)
}

/// Where the Fleet-compatible API is served.
pub const PREFIXES: &[&str] = &["/api/v1/fleet", "/api/latest/fleet"];
/// The JSON API's routes that sit under the SCIM mount point `/api/*/fleet/scim`.
pub const SCIM_STATUS_ROUTES: &[&str] = &["/scim/details", "/scim/requests"];

pub fn router() -> Routes<AppState> {
    let mut r = Routes::new().route("/api/openapi.json", get(openapi::document));
    for prefix in PREFIXES {
        r = r
            .route(&format!("{prefix}/scim/details"), get(scim_status::details))
            .route(&format!("{prefix}/scim/requests"), get(scim_status::requests))
            .route(&format!("{prefix}/hosts"), get(hosts::list).post(hosts::upsert))
            .route(&format!("{prefix}/hosts/batch"), post(hosts::batch))
            .route(&format!("{prefix}/hosts/count"), get(hosts::count))
            .route(&format!("{prefix}/hosts/identifier/{{identifier}}"), get(hosts::get_by_identifier))
            .route(&format!("{prefix}/hosts/{{id}}"), get(hosts::get).delete(hosts::delete))
            .route(&format!("{prefix}/hosts/{{id}}/device_mapping"), get(hosts::get_mapping).put(hosts::put_mapping))
            .route(&format!("{prefix}/hosts/{{id}}/device_mapping/idp"), delete(hosts::delete_idp_mapping))
            .route(&format!("{prefix}/hosts/{{id}}/end_user_history"), get(hosts::history))
            .route(&format!("{prefix}/hosts/{{id}}/render"), post(render::host))
            .route(&format!("{prefix}/labels"), get(labels::list).post(labels::create))
            .route(&format!("{prefix}/labels/{{id}}"), get(labels::get).patch(labels::patch).delete(labels::delete))
            .route(&format!("{prefix}/labels/{{id}}/hosts"), get(labels::hosts))
            .route(&format!("{prefix}/labels/{{id}}/render"), post(labels::render_all))
            .route(&format!("{prefix}/webhooks/deliveries"), get(webhooks::deliveries))
            .route(&format!("{prefix}/activities"), get(activities::list));
    }
    r
}
