//! The application: shared state, the router of every surface, and serving with a
//! graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{MatchedPath, State};
use axum::http::{HeaderName, Request, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use custodian_domain::{Operations, Store, Webhooks};
use serde_json::json;
use tower::util::MapRequestLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::recorder::RequestRecorder;
use crate::routes::Routes;
pub use crate::state::{AppConfig, AppState};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// How long `/readyz` waits for the database.
pub const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

/// The router of every surface, and the path templates of its routes.
pub fn router(state: AppState) -> (Router, Vec<String>) {
    let mut routes =
        Routes::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).route("/metrics", get(metrics));
    for mount in crate::surfaces::MOUNTS {
        routes = routes.nest(mount, crate::scim::router(state.clone()));
    }
    let (router, templates) = routes.merge(crate::api::router()).merge(crate::web::router()).into_parts();
    let metrics = state.metrics.clone();
    let limits = state.config.limits.clone();
    let hsts = state.config.is_https();
    let router = with_protection_layers(router.fallback(no_route).with_state(state), &limits);
    let router = with_operations_layers(router, metrics, limits.request_timeout)
        .layer(middleware::from_fn(move |request, next| crate::errors::security_headers(hsts, request, next)));
    (router, templates)
}

/// The limits every route gets, inside the operations layers (so that their answers are
/// counted, traced and carry a request id). The last added runs first: the header size,
/// then the body timeout, the rate limits, and the cap on requests in flight, so that a
/// request over its token's rate never takes a place in flight.
fn with_protection_layers(router: Router, limits: &crate::limits::Limits) -> Router {
    use crate::limits;
    let guard = Arc::new(limits::Guard::new(limits));
    router
        .layer(middleware::from_fn_with_state(guard.clone(), limits::shed_load))
        .layer(middleware::from_fn_with_state(guard.clone(), limits::rate_limit))
        .layer(middleware::from_fn_with_state(guard, limits::body_timeout))
        .layer(middleware::from_fn(limits::header_size))
}

/// No route at this path: a 404 of the path's kind (the SCIM mounts have their own).
async fn no_route(uri: axum::http::Uri) -> Response {
    let kind = crate::errors::route_kind(uri.path());
    crate::errors::error_response(kind, StatusCode::NOT_FOUND, "There is nothing at this address")
}

/// The layers every route gets: request id, metrics, trace span, timeout, and a 500 for
/// a panic. Each wraps the routes (and the fallback), so the matched route template is
/// known to each; the last added runs first. The request id is set before anything else
/// and copied onto every response, timeouts and errors included.
fn with_operations_layers(router: Router, metrics: Arc<crate::metrics::Metrics>, timeout: Duration) -> Router {
    router
        .layer(CatchPanicLayer::new())
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout))
        .layer(middleware::from_fn(crate::errors::refuse_unreadable_target))
        // Before anything reads the path or query: a cut one may end mid-escape.
        .layer(middleware::from_fn(crate::limits::request_target_size))
        // Timeouts, panics and axum's rejections answer the body of the route's kind.
        .layer(middleware::from_fn(crate::errors::fill_error_body))
        .layer(
            // Spans name the route template, never the raw path (ids, emails), the query
            // string nor bodies; one line per request at info level, with its status.
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    let route = req
                        .extensions()
                        .get::<MatchedPath>()
                        .map(|p| p.as_str().to_string())
                        .unwrap_or_else(|| crate::metrics::UNMATCHED.into());
                    let request_id =
                        req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                    tracing::info_span!("request", method = %req.method(), route = %route, request_id = %request_id)
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(middleware::from_fn_with_state(metrics, crate::metrics::track))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(MapRequestLayer::new(drop_unfit_request_id))
}

/// The longest request id accepted from a client or load balancer.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Whether a request id sent by a client may be kept: 1 to 128 visible ASCII characters
/// (it goes into every log line and back in the response).
pub fn is_fit_request_id(value: &[u8]) -> bool {
    !value.is_empty() && value.len() <= MAX_REQUEST_ID_LEN && value.iter().all(|b| b.is_ascii_graphic())
}

/// Removes an incoming `x-request-id` that is not fit to keep (or sent more than once),
/// so that a fresh one is generated in its place.
fn drop_unfit_request_id(mut request: Request<Body>) -> Request<Body> {
    let mut values = request.headers().get_all(REQUEST_ID).iter();
    let keep = match (values.next(), values.next()) {
        (None, _) => true,
        (Some(v), None) => is_fit_request_id(v.as_bytes()),
        (Some(_), Some(_)) => false,
    };
    if !keep {
        request.headers_mut().remove(REQUEST_ID);
    }
    request
}

/// `GET /metrics`.
async fn metrics(State(state): State<AppState>) -> Response {
    crate::metrics::serve(&state.metrics, state.webhooks(), state.operations()).await
}

async fn healthz() -> &'static str {
    "ok"
}

/// Readiness for a load balancer: 200 when the database answers within
/// [`READINESS_TIMEOUT`], 503 otherwise (never the database's URL nor the error).
async fn readyz(State(state): State<AppState>) -> Response {
    readiness(state.operations().ping(), READINESS_TIMEOUT).await
}

pub(crate) async fn readiness(
    ping: impl Future<Output = custodian_domain::StoreResult<()>>,
    timeout: Duration,
) -> Response {
    let unavailable = || {
        let body = json!({"status": "unavailable", "message": "the database does not answer"});
        (StatusCode::SERVICE_UNAVAILABLE, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
    };
    match tokio::time::timeout(timeout, ping).await {
        Ok(Ok(())) => {
            (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")], Json(json!({"status": "ready"}))).into_response()
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: the database answered with an error");
            unavailable()
        }
        Err(_) => {
            tracing::warn!(timeout_ms = timeout.as_millis() as u64, "readiness: the database did not answer in time");
            unavailable()
        }
    }
}

/// A running application: its router and the background tasks to wind down on exit.
pub struct App {
    pub router: Router,
    pub state: AppState,
    /// The path templates of every route, for tests that must reach them all.
    pub route_templates: Vec<String>,
    recorder_task: tokio::task::JoinHandle<()>,
    webhook_task: Option<tokio::task::JoinHandle<()>>,
    sync_task: tokio::task::JoinHandle<()>,
}

impl App {
    pub fn new(store: Arc<dyn Store>, config: AppConfig) -> Self {
        let (recorder, recorder_task) = RequestRecorder::start(store.clone() as Arc<dyn Operations>);
        let webhook_task =
            config.offboarding_webhook.clone().map(|c| crate::webhooks::start(store.clone() as Arc<dyn Webhooks>, c));
        let state = AppState::new(store, config, recorder);
        let sync_task = state.sync.start();
        let (router, route_templates) = router(state.clone());
        App { router, state, route_templates, recorder_task, webhook_task, sync_task }
    }

    /// Serves plain HTTP until `shutdown` completes; requests in flight finish, then the
    /// request history is flushed.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.serve_with_tls(listener, None, shutdown).await
    }

    /// Like [`App::serve`], over TLS when `tls` is given.
    pub async fn serve_with_tls(
        self,
        listener: tokio::net::TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let App { router, state, recorder_task, webhook_task, sync_task, .. } = self;
        serve_connections(listener, tls, router, &state.config.limits, shutdown).await;
        // A run cut short applied nothing; another instance (or the next start) takes it
        // over once its lease has passed.
        sync_task.abort();
        // An attempt cut short is retried after its lease: delivery is at least once.
        if let Some(task) = webhook_task {
            task.abort();
        }
        state.recorder.flush().await;
        drop(state);
        let _ = recorder_task.await;
        Ok(())
    }
}

/// Accepts connections until `shutdown` completes, then waits for the requests in flight
/// (idle connections are closed at once). In place of `axum::serve` so that slow clients
/// are bounded: headers must arrive within the header read timeout (slowloris), and
/// hyper's buffers are limited. Each request carries the client's `ConnectInfo`; each
/// connection's request lines are cut short where hyper would refuse them without a body
/// (`request_line`).
///
/// With `tls`, each connection's handshake runs in its own task, bounded in time, so a
/// slow or silent client never holds up the accept loop; then the same HTTP limits apply.
async fn serve_connections(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    router: Router,
    limits: &crate::limits::Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt;

    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(crate::limits::CONNECTION_BUFFER_BYTES)
        .max_headers(crate::limits::MAX_HEADERS)
        .keep_alive(true);
    let handshake_timeout = limits.header_read_timeout.min(crate::tls::MAX_HANDSHAKE_TIMEOUT);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    // Handshakes still under way at shutdown are dropped: no request is in flight on them.
    let (stopping, stop) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors, for instance: wait rather than spin.
                    tracing::error!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = router.clone().map_request(move |mut request: Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(axum::extract::ConnectInfo(remote));
            request
        });
        let service = hyper_util::service::TowerToHyperService::new(service);
        let Some(acceptor) = tls.clone() else {
            let stream = crate::request_line::RequestLineGuard::new(stream);
            let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
            tokio::spawn(async move {
                // A client that goes away or times out is no error of the server's.
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            });
            continue;
        };
        // Taken now, before any shutdown can start, so that a connection whose handshake
        // ends during the shutdown is still closed gracefully.
        let watcher = graceful.watcher();
        let http = http.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(handshake_timeout, acceptor.accept(stream));
            let stream = tokio::select! {
                done = handshake => match done {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!("TLS handshake timed out");
                        return;
                    }
                },
                _ = stop.wait_for(|stopping| *stopping) => return,
            };
            let stream = crate::request_line::RequestLineGuard::new(stream);
            if let Err(e) = watcher.watch(http.serve_connection(TokioIo::new(stream), service)).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    graceful.shutdown().await;
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(e.kind(), ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset)
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use custodian_domain::StoreError;

    async fn body_of(response: Response) -> (StatusCode, String) {
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1024).await.unwrap_or_default();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn readiness_is_503_without_details_when_the_database_fails_or_hangs() {
        let failing = async { Err(StoreError::Database("connection to postgres://u:secret@db refused".into())) };
        let (status, body) = body_of(readiness(failing, Duration::from_secs(1)).await).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, r#"{"status":"unavailable","message":"the database does not answer"}"#);

        let hanging = std::future::pending();
        let (status, body) = body_of(readiness(hanging, Duration::from_millis(20)).await).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!body.contains("secret"), "{body}");

        let (status, body) = body_of(readiness(async { Ok(()) }, Duration::from_secs(1)).await).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, r#"{"status":"ready"}"#));
    }

    #[tokio::test]
    async fn a_timeout_is_408_with_a_request_id_and_counted() {
        use tower::ServiceExt;
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let slow = Router::new().route(
            "/slow/{id}",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        );
        let app = with_operations_layers(slow, metrics.clone(), Duration::from_millis(20));
        let request = Request::get("/slow/jane@example.com").body(Body::empty()).unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        let id = response.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id:?}");
        let exposition = metrics.encode(custodian_domain::PoolStats::default()).unwrap();
        assert!(
            exposition.contains(r#"custodian_http_requests_total{method="GET",route="/slow/{id}",status="408"} 1"#),
            "{exposition}"
        );
        assert!(!exposition.contains("jane"), "{exposition}");
    }

    #[tokio::test]
    #[allow(clippy::panic)]
    async fn a_panic_is_500_with_a_request_id_and_counted() {
        use tower::ServiceExt;
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let broken = Router::new().route(
            "/broken",
            get(|| async {
                if std::hint::black_box(true) {
                    panic!("a bug");
                }
                "unreachable"
            }),
        );
        let app = with_operations_layers(broken, metrics.clone(), Duration::from_secs(5));
        let request = Request::get("/broken").header(REQUEST_ID, "lb-42").body(Body::empty()).unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()), Some("lb-42"));
        let exposition = metrics.encode(custodian_domain::PoolStats::default()).unwrap();
        assert!(
            exposition.contains(r#"custodian_http_requests_total{method="GET",route="/broken",status="500"} 1"#),
            "{exposition}"
        );
    }

    #[test]
    fn only_short_visible_ascii_request_ids_are_kept() {
        assert!(is_fit_request_id(b"lb-1f2e3d4c"));
        assert!(is_fit_request_id("a".repeat(128).as_bytes()));
        assert!(!is_fit_request_id("a".repeat(129).as_bytes()));
        assert!(!is_fit_request_id(b""));
        assert!(!is_fit_request_id(b"has space"));
        assert!(!is_fit_request_id(b"tab\there"));
        assert!(!is_fit_request_id("caf\u{e9}".as_bytes()));
    }
}
