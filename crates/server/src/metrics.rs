//! Prometheus metrics: recorded by one middleware around every route ([`track`]) and
//! served at `GET /metrics` in the OpenMetrics text format, which Prometheus scrapes.
//!
//! Every label value comes from a bounded set: the route *template* (never the raw
//! path, which holds ids and emails), a known HTTP method, the status code, and for SCIM
//! the IdP recognised from its User-Agent (never the raw string). `/metrics` holds no
//! personal data.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use custodian_domain::{Operations, PoolStats, Webhooks};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The content type of the OpenMetrics text format (Prometheus asks for it).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the request duration buckets, in seconds: 1 ms to 10 s.
const DURATION_BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0];

/// The route label of a request that matched no route.
pub const UNMATCHED: &str = "unmatched";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: Arc<str>,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScimLabels {
    idp: &'static str,
    /// The IdP connection's name (`none` before a token was accepted).
    connection: Arc<str>,
    resource: &'static str,
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SyncLabels {
    connection: Arc<str>,
    /// `success` or `error`.
    status: &'static str,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;
type SyncHistogramFamily = Family<SyncLabels, Histogram, fn() -> Histogram>;

/// Directory sync runs last seconds to many minutes.
const SYNC_BUCKETS: [f64; 12] = [0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0];

fn sync_histogram() -> Histogram {
    Histogram::new(SYNC_BUCKETS)
}

/// The metrics of one server process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: HistogramFamily,
    scim_operations: Family<ScimLabels, Counter>,
    pool_open: Gauge,
    pool_idle: Gauge,
    pool_max: Gauge,
    webhook_backlog: Gauge,
    sync_runs: Family<SyncLabels, Counter>,
    sync_durations: SyncHistogramFamily,
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        // Counters get their `_total` suffix from the encoder.
        registry.register(
            "custodian_http_requests",
            "HTTP requests answered, by method, route template and status",
            requests.clone(),
        );
        let durations: HistogramFamily = Family::new_with_constructor(duration_histogram);
        registry.register(
            "custodian_http_request_duration_seconds",
            "Time to answer an HTTP request (until the response headers), by method and route template",
            durations.clone(),
        );
        let scim_operations = Family::<ScimLabels, Counter>::default();
        registry.register(
            "custodian_scim_operations",
            "SCIM operations by identity provider (from the User-Agent), resource, operation and outcome",
            scim_operations.clone(),
        );
        let (pool_open, pool_idle, pool_max) = (Gauge::default(), Gauge::default(), Gauge::default());
        registry.register("custodian_db_pool_connections_open", "Database connections open now", pool_open.clone());
        registry.register(
            "custodian_db_pool_connections_idle",
            "Open database connections not in use",
            pool_idle.clone(),
        );
        registry.register(
            "custodian_db_pool_connections_max",
            "The most database connections the pool opens",
            pool_max.clone(),
        );
        let webhook_backlog = Gauge::default();
        registry.register(
            "custodian_webhook_backlog",
            "Offboarding events not delivered yet (pending or failing), read at scrape time",
            webhook_backlog.clone(),
        );
        let sync_runs = Family::<SyncLabels, Counter>::default();
        registry.register(
            "custodian_directory_sync_runs",
            "Directory sync runs (Google Workspace) finished, by connection and outcome",
            sync_runs.clone(),
        );
        let sync_durations: SyncHistogramFamily = Family::new_with_constructor(sync_histogram);
        registry.register(
            "custodian_directory_sync_duration_seconds",
            "Time a directory sync run took, reading and applying, by connection and outcome",
            sync_durations.clone(),
        );
        Metrics {
            registry,
            requests,
            durations,
            scim_operations,
            pool_open,
            pool_idle,
            pool_max,
            webhook_backlog,
            sync_runs,
            sync_durations,
        }
    }
}

impl Metrics {
    /// Records one answered request. `route` is the matched route template, if any;
    /// `scim` the IdP, resource and operation of a SCIM request.
    fn record(
        &self,
        method: &Method,
        route: Option<&str>,
        scim: Option<(&'static str, &'static str, &'static str)>,
        connection: Option<Arc<str>>,
        status: StatusCode,
        seconds: f64,
    ) {
        let method_label = method_label(method);
        let route_label: Arc<str> = Arc::from(route.unwrap_or(UNMATCHED));
        self.requests
            .get_or_create(&RequestLabels { method: method_label, route: route_label.clone(), status: status.as_u16() })
            .inc();
        self.durations.get_or_create(&RouteLabels { method: method_label, route: route_label }).observe(seconds);
        if let Some((idp, resource, operation)) = scim {
            self.scim_operations
                .get_or_create(&ScimLabels {
                    idp,
                    connection: connection.unwrap_or_else(|| Arc::from("none")),
                    resource,
                    operation,
                    outcome: outcome(status),
                })
                .inc();
        }
    }

    /// Records a finished directory sync run.
    pub fn record_sync_run(&self, connection: &str, status: &'static str, took: std::time::Duration) {
        let labels = SyncLabels { connection: Arc::from(connection), status };
        self.sync_runs.get_or_create(&labels).inc();
        self.sync_durations.get_or_create(&labels).observe(took.as_secs_f64());
    }

    pub fn set_webhook_backlog(&self, n: u64) {
        self.webhook_backlog.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The exposition of every metric, with the pool gauges read now.
    pub fn encode(&self, pool: PoolStats) -> Result<String, std::fmt::Error> {
        self.pool_open.set(i64::from(pool.open));
        self.pool_idle.set(i64::from(pool.idle));
        self.pool_max.set(i64::from(pool.max));
        let mut out = String::with_capacity(4096);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// The middleware that records every request; it must wrap the routes (`Router::layer`)
/// so that the matched route template is known.
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string());
    let scim = scim_operation(&method, route.as_deref(), request.uri().path()).map(|(resource, operation)| {
        let user_agent = request.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok());
        (idp_from_user_agent(user_agent), resource, operation)
    });
    let response = next.run(request).await;
    let connection = response.extensions().get::<crate::scim::AnsweredConnection>().map(|c| c.0.clone());
    metrics.record(&method, route.as_deref(), scim, connection, response.status(), started.elapsed().as_secs_f64());
    response
}

/// The answer of `GET /metrics`: no token (Prometheus scrapes it) and no personal data.
pub async fn serve(metrics: &Metrics, webhooks: &dyn Webhooks, operations: &dyn Operations) -> Response {
    match webhooks.webhook_backlog().await {
        Ok(n) => metrics.set_webhook_backlog(n),
        Err(e) => tracing::warn!(error = %e, "reading the webhook backlog for the metrics failed"),
    }
    match metrics.encode(operations.pool_stats()) {
        Ok(body) => {
            let mut response = (StatusCode::OK, body).into_response();
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "encoding the metrics failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "the metrics could not be encoded\n").into_response()
        }
    }
}

/// A method label from a bounded set: extension methods are `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

fn outcome(status: StatusCode) -> &'static str {
    if status.is_server_error() {
        "server_error"
    } else if status.is_client_error() {
        "client_error"
    } else {
        "success"
    }
}

/// The identity provider that sent a request, recognised from its User-Agent.
pub fn idp_from_user_agent(user_agent: Option<&str>) -> &'static str {
    let Some(ua) = user_agent else { return "other" };
    let ua: String = ua.chars().take(256).collect::<String>().to_ascii_lowercase();
    const KNOWN: &[(&str, &[&str])] = &[
        ("okta", &["okta"]),
        // Entra ID's provisioning service (formerly Azure AD).
        ("entra", &["microsoft", "azure", "entra", "aad"]),
        ("jumpcloud", &["jumpcloud"]),
        ("onelogin", &["onelogin"]),
        ("authentik", &["authentik", "goauthentik"]),
        ("google", &["google"]),
    ];
    KNOWN
        .iter()
        .find(|(_, needles)| needles.iter().any(|n| contains_word(&ua, n)))
        .map(|(idp, _)| *idp)
        .unwrap_or("other")
}

/// Whether `needle` occurs in `haystack` not inside a longer alphanumeric word (so that
/// `aad` does not match inside a random token).
fn contains_word(haystack: &str, needle: &str) -> bool {
    haystack.match_indices(needle).any(|(at, _)| {
        let before = haystack[..at].chars().next_back();
        let after = haystack[at + needle.len()..].chars().next();
        let boundary = |c: Option<char>| c.is_none_or(|c| !c.is_ascii_alphabetic());
        boundary(before) && boundary(after)
    })
}

/// The SCIM resource and operation of a request, if it was a SCIM request: from the
/// matched route template under a SCIM mount point, or `unknown` for an unmatched path
/// under one (`raw_path` is read only then).
fn scim_operation(method: &Method, route: Option<&str>, raw_path: &str) -> Option<(&'static str, &'static str)> {
    let Some(route) = route else {
        let under_mount = crate::surfaces::MOUNTS
            .iter()
            .any(|m| raw_path.strip_prefix(m).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')));
        return under_mount.then_some(("unknown", "unknown"));
    };
    let path = crate::surfaces::MOUNTS.iter().find_map(|m| route.strip_prefix(m))?;
    let resource = match path {
        "/Users" | "/Users/{id}" | "/Users/.search" => "Users",
        "/Groups" | "/Groups/{id}" | "/Groups/.search" => "Groups",
        "/Bulk" => "Bulk",
        "/.search" => "search",
        "/Me" => "Me",
        "/ServiceProviderConfig" | "/Schemas" | "/Schemas/{id}" | "/ResourceTypes" | "/ResourceTypes/{id}" => {
            "discovery"
        }
        // Not SCIM: the JSON API's connection status lives under the same prefix.
        _ => return None,
    };
    let item = path.ends_with("/{id}") || path == "/ServiceProviderConfig";
    let operation = match (method.clone(), path) {
        (_, "/Me") => "unsupported",
        (Method::POST, "/Bulk") => "bulk",
        (Method::POST, p) if p.ends_with("/.search") => "search",
        (Method::GET, _) if item => "get",
        (Method::GET, _) => "list",
        (Method::POST, "/Users" | "/Groups") => "create",
        (Method::PUT, _) if item => "replace",
        (Method::PATCH, _) if item => "patch",
        (Method::DELETE, _) if item => "delete",
        _ => "other",
    };
    Some((resource, operation))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn idps_are_recognised_from_their_user_agents() {
        let cases = [
            (Some("Okta SCIM Client 1.0.0"), "okta"),
            (Some("OKTA SCIM Integration"), "okta"),
            (Some("Microsoft.Identity.Provisioning"), "entra"),
            (Some("Azure AD SCIM Client"), "entra"),
            (Some("JumpCloud SCIM Client"), "jumpcloud"),
            (Some("OneLogin SCIM"), "onelogin"),
            (Some("goauthentik.io/2024.2"), "authentik"),
            (Some("authentik@2024.2.1"), "authentik"),
            (Some("Mozilla/5.0 (compatible; notokta)"), "other"),
            (Some("Google-Auto-Provisioning"), "google"),
            (Some("curl/8.5.0"), "other"),
            (Some("xaadx"), "other"),
            (None, "other"),
        ];
        for (ua, idp) in cases {
            assert_eq!(idp_from_user_agent(ua), idp, "{ua:?}");
        }
    }

    #[test]
    fn scim_operations_come_from_the_route_template() {
        let m = "/api/v1/fleet/scim";
        let cases = [
            (Method::POST, "/Users", Some(("Users", "create"))),
            (Method::GET, "/Users", Some(("Users", "list"))),
            (Method::GET, "/Users/{id}", Some(("Users", "get"))),
            (Method::PUT, "/Groups/{id}", Some(("Groups", "replace"))),
            (Method::PATCH, "/Groups/{id}", Some(("Groups", "patch"))),
            (Method::DELETE, "/Users/{id}", Some(("Users", "delete"))),
            (Method::POST, "/Groups/.search", Some(("Groups", "search"))),
            (Method::POST, "/.search", Some(("search", "search"))),
            (Method::POST, "/Bulk", Some(("Bulk", "bulk"))),
            (Method::GET, "/Schemas/{id}", Some(("discovery", "get"))),
            (Method::GET, "/ResourceTypes", Some(("discovery", "list"))),
            (Method::GET, "/ServiceProviderConfig", Some(("discovery", "get"))),
            (Method::GET, "/Me", Some(("Me", "unsupported"))),
            (Method::DELETE, "/Users", Some(("Users", "other"))),
            (Method::GET, "/details", None),
        ];
        for (method, path, expected) in cases {
            assert_eq!(scim_operation(&method, Some(&format!("{m}{path}")), ""), expected, "{method} {path}");
        }
        assert_eq!(scim_operation(&Method::GET, Some("/scim/v2/Users/{id}"), ""), Some(("Users", "get")));
        assert_eq!(scim_operation(&Method::GET, Some("/api/v1/fleet/hosts/{id}"), ""), None);
        assert_eq!(scim_operation(&Method::GET, None, "/scim/v2/Nope/1"), Some(("unknown", "unknown")));
        assert_eq!(scim_operation(&Method::GET, None, "/scim/v2x"), None);
        assert_eq!(scim_operation(&Method::GET, None, "/nope"), None);
    }

    #[test]
    fn outcomes_and_methods_are_bounded() {
        assert_eq!(outcome(StatusCode::NOT_MODIFIED), "success");
        assert_eq!(outcome(StatusCode::CONFLICT), "client_error");
        assert_eq!(outcome(StatusCode::NOT_IMPLEMENTED), "server_error");
        let custom = Method::from_bytes(b"FROBNICATE").unwrap();
        assert_eq!(method_label(&custom), "other");
    }
}
