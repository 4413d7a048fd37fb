//! Error answers given outside any handler (by a layer: limits, timeouts), in the body of
//! the route's kind: an RFC 7644 error on SCIM routes, the JSON API's error body under
//! `/api/`, a short HTML page elsewhere.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use custodian_scim::ScimError;

/// What kind of answers a path gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    Scim,
    Api,
    Web,
}

/// The kind of a request path: SCIM under one of [`crate::scim::MOUNTS`] (but the JSON
/// API's `scim/details` and `scim/requests`), JSON API under `/api/`, web otherwise.
pub fn route_kind(path: &str) -> RouteKind {
    let under = |prefix: &str| path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    let scim_status = ["/api/v1/fleet/scim/", "/api/latest/fleet/scim/"]
        .iter()
        .any(|p| path.strip_prefix(p).is_some_and(|rest| rest == "details" || rest == "requests"));
    if !scim_status && crate::scim::MOUNTS.iter().any(|m| under(m)) {
        RouteKind::Scim
    } else if under("/api") {
        RouteKind::Api
    } else {
        RouteKind::Web
    }
}

/// An error response of `kind` with this status and message. 429 and 503 carry
/// `Retry-After: 1` (callers with a better estimate overwrite it).
pub fn error_response(kind: RouteKind, status: StatusCode, message: &str) -> Response {
    let mut response = match kind {
        RouteKind::Scim => crate::scim::ScimApiError(ScimError::new(status.as_u16(), None, message)).into_response(),
        RouteKind::Api => crate::api::ApiError::new(status, message).into_response(),
        RouteKind::Web => {
            let title = status.canonical_reason().unwrap_or("Error");
            (status, crate::web::layout::error_page(title, message)).into_response()
        }
    };
    if matches!(status, StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE) {
        response.headers_mut().entry(header::RETRY_AFTER).or_insert(HeaderValue::from_static("1"));
    }
    response
}

/// Whether a body read failed because the client stalled (the request body timeout).
pub fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(error), |e| e.source()).any(|e| e.is::<tower_http::timeout::TimeoutError>())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_mount_points() {
        assert_eq!(route_kind("/scim/v2/Users"), RouteKind::Scim);
        assert_eq!(route_kind("/scim/v2"), RouteKind::Scim);
        assert_eq!(route_kind("/api/v1/fleet/scim/Groups/1"), RouteKind::Scim);
        assert_eq!(route_kind("/api/latest/fleet/scim/Users"), RouteKind::Scim);
        assert_eq!(route_kind("/api/v1/fleet/scim/details"), RouteKind::Api);
        assert_eq!(route_kind("/api/latest/fleet/scim/requests"), RouteKind::Api);
        assert_eq!(route_kind("/scim/v2/Users/details"), RouteKind::Scim);
        assert_eq!(route_kind("/scim/v2/a/b/details"), RouteKind::Scim);
        assert_eq!(route_kind("/api/v1/fleet/hosts"), RouteKind::Api);
        assert_eq!(route_kind("/api/openapi.json"), RouteKind::Api);
        assert_eq!(route_kind("/apiary"), RouteKind::Web);
        assert_eq!(route_kind("/scim/v20"), RouteKind::Web);
        assert_eq!(route_kind("/hosts"), RouteKind::Web);
        assert_eq!(route_kind("/"), RouteKind::Web);
    }

    #[tokio::test]
    async fn bodies_match_the_kind() {
        let r = error_response(RouteKind::Scim, StatusCode::TOO_MANY_REQUESTS, "slow down");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/scim+json");
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        let body = axum::body::to_bytes(r.into_body(), 4096).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["status"], "429");
        assert_eq!(v["detail"], "slow down");

        let r = error_response(RouteKind::Api, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "too big");
        assert!(r.headers().get(header::RETRY_AFTER).is_none());
        let body = axum::body::to_bytes(r.into_body(), 4096).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["message"], "too big");

        let r = error_response(RouteKind::Web, StatusCode::REQUEST_TIMEOUT, "late");
        assert!(r.headers()[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
        let body = axum::body::to_bytes(r.into_body(), 65536).await.unwrap();
        assert!(String::from_utf8_lossy(&body).contains("late"));
    }
}
