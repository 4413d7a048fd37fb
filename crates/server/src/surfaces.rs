//! Where each surface (SCIM, the JSON API, the web interface) is served, and so which
//! surface a request path belongs to. Below every surface: the SCIM and API modules, the
//! error layer and the metrics all read it, and it reads none of them.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// The mount points of the SCIM service provider.
pub const MOUNTS: &[&str] = &["/api/v1/fleet/scim", "/api/latest/fleet/scim", "/scim/v2"];

pub const SCIM_CONTENT_TYPE: &str = "application/scim+json";

/// Where the Fleet-compatible API is served.
pub const PREFIXES: &[&str] = &["/api/v1/fleet", "/api/latest/fleet"];
/// The JSON API's routes that sit under the SCIM mount point `/api/*/fleet/scim`.
pub const SCIM_STATUS_ROUTES: &[&str] = &["/scim/details", "/scim/requests"];

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
    let api_status_page =
        PREFIXES.iter().any(|prefix| path.strip_prefix(prefix).is_some_and(|rest| SCIM_STATUS_ROUTES.contains(&rest)));
    if MOUNTS.iter().any(|m| under(m)) && !api_status_page {
        RouteKind::Scim
    } else if under("/api") {
        RouteKind::Api
    } else {
        RouteKind::Web
    }
}

/// A JSON response with the SCIM media type.
pub fn scim_json(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_CONTENT_TYPE));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
