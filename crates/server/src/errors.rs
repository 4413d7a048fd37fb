//! Error answers that come from below the handlers (no route, wrong method, a path or
//! query the extractor refuses, a timeout, a panic, a limit) get the error body of the
//! route's kind like every other error: an RFC 7644 body on SCIM routes, the JSON API
//! body on `/api/`, an HTML page elsewhere. Also the security headers of every response.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use custodian_scim::ScimError;
use serde::Serialize;
use utoipa::ToSchema;

use crate::input::is_readable_percent_encoded;
pub use crate::surfaces::{RouteKind, route_kind};
use crate::surfaces::{SCIM_CONTENT_TYPE, scim_json};

/// An error response of the route's kind. 429 and 503 carry `Retry-After: 1` (a rate
/// limiter with a better estimate overwrites it).
pub fn error_response(kind: RouteKind, status: StatusCode, message: &str) -> Response {
    let mut response = match kind {
        RouteKind::Scim => scim_error_response(ScimError::new(status.as_u16(), None, message)),
        RouteKind::Api => api_error_response(status, message.to_string(), Vec::new()),
        RouteKind::Web => {
            let title = status.canonical_reason().unwrap_or("Error");
            (status, crate::web::bare::error_page(title, message)).into_response()
        }
    };
    if matches!(status, StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE) {
        response.headers_mut().entry(header::RETRY_AFTER).or_insert(HeaderValue::from_static("1"));
    }
    response
}

/// The detail of a failed SCIM request, carried in the response so that the recorder
/// can keep it in the connection history.
#[derive(Debug, Clone)]
pub struct ErrorDetail(pub String);

/// A SCIM error as RFC 7644 §3.12 shapes it, with the media type, the bearer challenge
/// on 401 and `Retry-After` on 429 and 503.
pub fn scim_error_response(error: ScimError) -> Response {
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = scim_json(status, &error.to_json());
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"custodian\""));
    }
    if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
        // Okta and Entra back off and retry on 429 and 503 with Retry-After (a rate
        // limiter sets its own wait in place of this second).
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response.extensions_mut().insert(ErrorDetail(error.detail));
    response
}

/// The body of every JSON API error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub message: String,
    pub errors: Vec<FieldError>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FieldError {
    pub name: String,
    pub reason: String,
}

/// A JSON API error: `{"message", "errors": [{"name", "reason"}]}`, with the bearer
/// challenge on 401.
pub fn api_error_response(status: StatusCode, message: String, errors: Vec<(String, String)>) -> Response {
    let body =
        ErrorBody { message, errors: errors.into_iter().map(|(name, reason)| FieldError { name, reason }).collect() };
    let mut response = (status, axum::Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"custodian\""));
    }
    response
}

/// Refuses a request whose path or query string, once percent-decoded, is not UTF-8 or
/// holds a NUL character: no handler could answer it meaningfully (and PostgreSQL cannot
/// compare text with U+0000), so it is a 400 of the route's kind before any handler runs.
pub async fn refuse_unreadable_target(request: Request, next: Next) -> Response {
    let uri = request.uri();
    let readable = |raw: &str| is_readable_percent_encoded(raw.as_bytes());
    let part = if !readable(uri.path()) {
        Some("address")
    } else if !uri.query().is_none_or(readable) {
        Some("query string")
    } else {
        None
    };
    match part {
        Some(part) => error_response(
            route_kind(uri.path()),
            StatusCode::BAD_REQUEST,
            &format!("The {part} is not valid UTF-8 or contains a NUL character once percent-decoded"),
        ),
        None => next.run(request).await,
    }
}

/// The longest body of a lower layer's error kept as the detail of the rewritten one
/// (axum's rejections are one short sentence).
const MAX_DETAIL_BYTES: usize = 1024;

/// Rewrites error responses that carry no body of the route's kind (empty, or axum's
/// plain-text rejections), keeping their status, headers and any one-line message.
pub async fn fill_error_body(request: Request, next: Next) -> Response {
    let kind = route_kind(request.uri().path());
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || has_body_of_kind(&response, kind) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, MAX_DETAIL_BYTES).await {
        Ok(bytes) if status.is_client_error() => String::from_utf8_lossy(&bytes).trim().to_string(),
        // A server error's own text (a panic's) may hold internals: not for the client.
        _ => String::new(),
    };
    let message = if text.is_empty() { default_message(status) } else { text };
    let rewritten = error_response(kind, status, &message);
    let (new_parts, new_body) = rewritten.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    for (name, value) in &new_parts.headers {
        parts.headers.insert(name, value.clone());
    }
    parts.extensions.extend(new_parts.extensions);
    Response::from_parts(parts, Body::new(new_body))
}

fn has_body_of_kind(response: &Response, kind: RouteKind) -> bool {
    let content_type =
        response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let media = content_type.split(';').next().unwrap_or("").trim();
    match kind {
        RouteKind::Scim => media == SCIM_CONTENT_TYPE,
        RouteKind::Api => media == "application/json",
        RouteKind::Web => media == "text/html",
    }
}

fn default_message(status: StatusCode) -> String {
    match status {
        StatusCode::NOT_FOUND => "There is nothing at this address".into(),
        StatusCode::METHOD_NOT_ALLOWED => "This method is not allowed at this address".into(),
        StatusCode::REQUEST_TIMEOUT => "The request took too long and was abandoned".into(),
        StatusCode::PAYLOAD_TOO_LARGE => "The request body is too large".into(),
        StatusCode::INTERNAL_SERVER_ERROR => "Internal server error".into(),
        other => other.canonical_reason().unwrap_or("Error").to_string(),
    }
}

/// The Content-Security-Policy of pages: only our own script and style, no framing.
const PAGE_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
/// The policy of everything else (JSON, CSV, metrics): nothing may load from it.
const DATA_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

/// Headers of every response: a strict Content-Security-Policy, no framing, no MIME
/// sniffing, no referrer leaving the site, and no caching of anything not marked
/// cacheable (pages and API answers carry personal data). HSTS when served over https.
pub async fn security_headers(hsts: bool, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("text/html"));
    let h = response.headers_mut();
    let policy = if is_html { PAGE_POLICY } else { DATA_POLICY };
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(policy));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if hsts {
        h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    #[allow(clippy::unwrap_used)]
    async fn busy_answers_say_when_to_retry() {
        let r = error_response(RouteKind::Scim, StatusCode::TOO_MANY_REQUESTS, "slow down");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/scim+json");
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        let body = axum::body::to_bytes(r.into_body(), 4096).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((v["status"].as_str(), v["detail"].as_str()), (Some("429"), Some("slow down")));
        let r = error_response(RouteKind::Api, StatusCode::SERVICE_UNAVAILABLE, "busy");
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        let r = error_response(RouteKind::Web, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "too big");
        assert!(r.headers().get(header::RETRY_AFTER).is_none());
    }
}
