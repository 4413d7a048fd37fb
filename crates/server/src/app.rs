//! The application: shared state, the router of every surface, and serving with a
//! graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::MatchedPath;
use axum::http::{HeaderName, Request};
use axum::routing::get;
use custodian_domain::Store;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::recorder::RequestRecorder;

/// Settings of a running server that handlers need.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// The URL at which clients reach Custodian, when a proxy stands in front of it.
    pub public_url: Option<String>,
    /// How long a failed web sign-in takes, whatever failed (no hint by timing).
    pub sign_in_failure_delay: Duration,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig { public_url: None, sign_in_failure_delay: Duration::from_secs(1) }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// Which operator a token belongs to, remembered for a few seconds.
    pub tokens: Arc<crate::auth::TokenCache>,
    pub recorder: RequestRecorder,
    pub config: Arc<AppConfig>,
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(state: AppState) -> Router {
    let mut app = Router::new().route("/healthz", get(healthz));
    for mount in crate::scim::MOUNTS {
        app = app.nest(mount, crate::scim::router(state.clone()));
    }
    app.merge(crate::api::router())
        .merge(crate::web::router())
        .with_state(state)
        .layer(
            // Spans name the route template, never the raw path (ids, emails) nor bodies.
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let route = req
                    .extensions()
                    .get::<MatchedPath>()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_else(|| "unmatched".into());
                let request_id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                tracing::info_span!("request", method = %req.method(), route = %route, request_id = %request_id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, Duration::from_secs(60)))
}

async fn healthz() -> &'static str {
    "ok"
}

/// A running application: its router and the background tasks to wind down on exit.
pub struct App {
    pub router: Router,
    pub state: AppState,
    recorder_task: tokio::task::JoinHandle<()>,
}

impl App {
    pub fn new(store: Arc<dyn Store>, config: AppConfig) -> Self {
        let (recorder, recorder_task) = RequestRecorder::start(store.clone());
        let state = AppState { store, tokens: Arc::default(), recorder, config: Arc::new(config) };
        App { router: router(state.clone()), state, recorder_task }
    }

    /// Serves until `shutdown` completes; requests in flight finish, then the request
    /// history is flushed.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let App { router, state, recorder_task } = self;
        axum::serve(listener, router).with_graceful_shutdown(shutdown).await?;
        state.recorder.flush().await;
        drop(state);
        let _ = recorder_task.await;
        Ok(())
    }
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
