//! The JSON API's one error type and its mapping from store errors; the wire shape is
//! the error layer's (`crate::errors::api_error_response`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use custodian_domain::StoreError;

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
            StoreError::Taken { field, message } => {
                ApiError::new(StatusCode::CONFLICT, "Conflict").with_error(field, message)
            }
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        crate::errors::api_error_response(self.status, self.message, self.errors)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
