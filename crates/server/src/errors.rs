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

use crate::api::ApiError;
use crate::scim::{MOUNTS, ScimApiError};

/// Which surface a path belongs to, and so which error body it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    Scim,
    Api,
    Web,
}

/// The kind of a request path: SCIM under a SCIM mount point (but for the JSON API's
/// SCIM status routes beside it), JSON API under `/api/`, else the web interface.
pub fn route_kind(path: &str) -> RouteKind {
    let under = |prefix: &str| path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    let api_status_page = crate::api::PREFIXES
        .iter()
        .any(|prefix| path.strip_prefix(prefix).is_some_and(|rest| crate::api::SCIM_STATUS_ROUTES.contains(&rest)));
    if MOUNTS.iter().any(|m| under(m)) && !api_status_page {
        RouteKind::Scim
    } else if under("/api") {
        RouteKind::Api
    } else {
        RouteKind::Web
    }
}

/// An error response of the route's kind. 429 and 503 carry `Retry-After: 1` (a rate
/// limiter with a better estimate overwrites it).
pub fn error_response(kind: RouteKind, status: StatusCode, message: &str) -> Response {
    let mut response = match kind {
        RouteKind::Scim => ScimApiError(ScimError::new(status.as_u16(), None, message)).into_response(),
        RouteKind::Api => ApiError::new(status, message).into_response(),
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

/// Whether percent-encoded text (a path, a query string, a form body) decodes to UTF-8
/// without NUL. Text without escapes is checked in place, without a copy.
pub fn is_readable_percent_encoded(raw: &[u8]) -> bool {
    percent_encoding::percent_decode(raw).decode_utf8().is_ok_and(|s| !s.contains('\0'))
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
        RouteKind::Scim => media == crate::scim::SCIM_CONTENT_TYPE,
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

    #[test]
    fn percent_encoded_text_must_decode_to_utf8_without_nul() {
        assert!(is_readable_percent_encoded(b"/hosts/42?query=jos%C3%A9&page=2"));
        assert!(is_readable_percent_encoded(b"name=a+b&csrf_token=x"));
        assert!(!is_readable_percent_encoded(b"/hosts/%FF%FE"));
        assert!(!is_readable_percent_encoded(b"a=%C3&b=%A9"), "a sequence split by '&' is not UTF-8");
        assert!(!is_readable_percent_encoded(b"idp_username=a%00b"));
        assert!(!is_readable_percent_encoded(b"raw\0nul"));
    }

    #[test]
    fn paths_are_classified_by_their_mount_point() {
        assert_eq!(route_kind("/scim/v2/Users"), RouteKind::Scim);
        assert_eq!(route_kind("/api/v1/fleet/scim/Users/x"), RouteKind::Scim);
        assert_eq!(route_kind("/api/latest/fleet/scim"), RouteKind::Scim);
        assert_eq!(route_kind("/api/v1/fleet/scim/details"), RouteKind::Api);
        assert_eq!(route_kind("/api/latest/fleet/scim/requests"), RouteKind::Api);
        assert_eq!(route_kind("/api/v1/fleet/scimx"), RouteKind::Api);
        assert_eq!(route_kind("/api/v1/fleet/hosts/1"), RouteKind::Api);
        assert_eq!(route_kind("/api"), RouteKind::Api);
        assert_eq!(route_kind("/apix"), RouteKind::Web);
        assert_eq!(route_kind("/hosts/1"), RouteKind::Web);
        assert_eq!(route_kind("/"), RouteKind::Web);
    }

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
