//! Overload protection: per-token rate limits (429 with `Retry-After`), sign-in attempts
//! per client address, a cap on requests in flight (503), a request body timeout (408),
//! a header size limit (431) and a request target limit (414). Each answers in the body
//! of the route's kind.
//!
//! Every limit is per process: with several instances behind a load balancer, each
//! enforces its own budget.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, OriginalUri, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http_body_util::BodyExt;
use tokio::sync::Semaphore;

use crate::errors::{RouteKind, error_response, route_kind};

/// How long a request may take before it is answered 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest header block accepted (names, values and their separators), the largest
/// single header value and the most headers; beyond any, 431.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
pub const MAX_HEADER_VALUE_BYTES: usize = 8 * 1024;
pub const MAX_HEADER_COUNT: usize = 100;
/// The longest request target (path and query, as sent) accepted; beyond it, 414. Room
/// for a filter of `MAX_FILTER_LEN` bytes percent-encoded three times over; a longer
/// filter goes in the body of a POST to `.search`.
pub const MAX_REQUEST_TARGET_BYTES: usize = 16 * 1024;
const _: () = assert!(MAX_REQUEST_TARGET_BYTES > 3 * custodian_scim::filter::MAX_FILTER_LEN);

/// hyper's own limits, set generously above ours so that an oversized request still gets
/// our 431 with a body rather than hyper's empty one (which also closes the connection).
/// Request lines longer than hyper takes (64 KiB) are cut short before it reads them
/// (`crate::request_line`); only a header block past this buffer still gets hyper's bare
/// answer.
pub const CONNECTION_BUFFER_BYTES: usize = 256 * 1024;
pub const MAX_HEADERS: usize = 1000;

/// Default limits (see the README, Deployment, for how they were chosen).
pub const DEFAULT_RATE_PER_TOKEN: u32 = 200;
pub const DEFAULT_RATE_BURST: u32 = 2000;
pub const DEFAULT_SIGN_IN_PER_MINUTE: u32 = 30;
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 256;
/// hyper counts an idle keep-alive connection's wait for its next request against this
/// timeout too, so it must outlast the idle timeout of the load balancers in front (60 s
/// for an AWS ALB and nginx): closing first makes them answer 502 now and then.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(65);
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Token digests tracked at most: beyond it (random tokens sent to fill memory), the
/// least recent buckets are dropped first, and a request whose bucket cannot be kept is
/// let through untracked (the cap on requests in flight still holds).
const MAX_TRACKED_KEYS: usize = 100_000;
/// How often buckets that are full again (indistinguishable from new) are forgotten.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// The limits of a server. `0` turns a rate or the concurrency cap off.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Requests per second per API token on SCIM and JSON API routes, sustained.
    pub rate_per_token: u32,
    /// Requests a token may send at once above the sustained rate.
    pub rate_burst: u32,
    /// Web sign-in attempts (`POST /login`, `POST /setup`, `GET /login/oidc/start`) per client
    /// address per minute.
    pub sign_in_per_minute: u32,
    /// Requests in flight beyond which requests are shed with 503.
    pub max_concurrent_requests: usize,
    /// How long a client may take to send a request's headers (also how long an idle
    /// keep-alive connection stays open).
    pub header_read_timeout: Duration,
    /// The longest wait for the next piece of a request body.
    pub body_timeout: Duration,
    /// How long a request may take in all before it is answered 408.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            rate_per_token: DEFAULT_RATE_PER_TOKEN,
            rate_burst: DEFAULT_RATE_BURST,
            sign_in_per_minute: DEFAULT_SIGN_IN_PER_MINUTE,
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
        }
    }
}

/// A keyed GCRA limiter whose memory stays bounded.
struct Keyed<K: std::hash::Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    last_sweep: Mutex<Instant>,
}

impl<K: std::hash::Hash + Eq + Clone> Keyed<K> {
    fn new(quota: Option<Quota>) -> Option<Self> {
        quota.map(|q| Keyed { limiter: RateLimiter::dashmap(q), last_sweep: Mutex::new(Instant::now()) })
    }

    /// `Err(wait)` when `key` is over its quota.
    fn check(&self, key: &K) -> Result<(), Duration> {
        self.sweep();
        if self.limiter.len() >= MAX_TRACKED_KEYS {
            self.limiter.retain_recent();
            if self.limiter.len() >= MAX_TRACKED_KEYS {
                tracing::warn!("rate limiter full: a request is let through untracked");
                return Ok(());
            }
        }
        self.limiter.check_key(key).map_err(|not_until| not_until.wait_time_from(self.limiter.clock().now()))
    }

    /// Forgets full buckets now and then (one caller does it; the others go on).
    fn sweep(&self) {
        let Ok(mut last) = self.last_sweep.try_lock() else { return };
        if last.elapsed() >= SWEEP_EVERY {
            *last = Instant::now();
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
    }
}

/// The shared state of the limits.
pub struct Guard {
    tokens: Option<Keyed<[u8; 32]>>,
    sign_in: Option<Keyed<IpAddr>>,
    in_flight: Option<Arc<Semaphore>>,
    body_timeout: Duration,
}

impl Guard {
    pub fn new(limits: &Limits) -> Self {
        let per_token = NonZeroU32::new(limits.rate_per_token).map(|rate| {
            let burst = NonZeroU32::new(limits.rate_burst).unwrap_or(rate);
            Quota::per_second(rate).allow_burst(burst)
        });
        let sign_in = NonZeroU32::new(limits.sign_in_per_minute).map(Quota::per_minute);
        Guard {
            tokens: Keyed::new(per_token),
            sign_in: Keyed::new(sign_in),
            in_flight: (limits.max_concurrent_requests > 0)
                .then(|| Arc::new(Semaphore::new(limits.max_concurrent_requests))),
            body_timeout: limits.body_timeout,
        }
    }
}

/// The path as the client sent it (a nested router sees it without its prefix).
fn original_path(request: &Request) -> String {
    request.extensions().get::<OriginalUri>().map_or_else(|| request.uri().path(), |u| u.path()).to_string()
}

fn too_many(kind: RouteKind, wait: Duration, message: &str) -> Response {
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    let mut response = error_response(kind, StatusCode::TOO_MANY_REQUESTS, &format!("{message}; retry in {seconds} s"));
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// Rate limits: per API token (keyed by its digest, never the token) on SCIM and JSON API
/// routes, and web sign-in attempts per client address.
pub async fn rate_limit(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let path = original_path(&request);
    let kind = route_kind(&path);
    match kind {
        RouteKind::Scim | RouteKind::Api => {
            if let (Some(tokens), Some(token)) = (&guard.tokens, crate::auth::bearer_token(request.headers()))
                && let Err(wait) = tokens.check(&crate::auth::digest_token(token).0)
            {
                return too_many(kind, wait, "Too many requests with this token");
            }
        }
        RouteKind::Web => {
            // A single sign-on start writes a row and calls nobody: counted as an attempt too.
            let sign_in = (request.method() == Method::POST && (path == "/login" || path == "/setup"))
                || (request.method() == Method::GET && path == "/login/oidc/start");
            let address = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
            if sign_in
                && let (Some(limiter), Some(address)) = (&guard.sign_in, address)
                && let Err(wait) = limiter.check(&address)
            {
                return too_many(kind, wait, "Too many sign-in attempts from this address");
            }
        }
    }
    next.run(request).await
}

/// Sheds requests beyond the cap on requests in flight with 503 at once, so that a flood
/// cannot build a queue. The probes and metrics are never shed.
pub async fn shed_load(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let Some(in_flight) = &guard.in_flight else { return next.run(request).await };
    let path = original_path(&request);
    if matches!(path.as_str(), "/healthz" | "/readyz" | "/metrics") {
        return next.run(request).await;
    }
    match in_flight.clone().try_acquire_owned() {
        Ok(_permit) => next.run(request).await,
        Err(_) => {
            error_response(route_kind(&path), StatusCode::SERVICE_UNAVAILABLE, "The server is busy; retry shortly")
        }
    }
}

/// Answers 408 when the client stalls its request body longer than the body timeout
/// between two pieces, whatever the handler made of the failed read.
pub async fn body_timeout(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let path = original_path(&request);
    let stalled = Arc::new(AtomicBool::new(false));
    let flag = stalled.clone();
    let (parts, body) = request.into_parts();
    let body = tower_http::timeout::TimeoutBody::new(guard.body_timeout, body).map_err(move |e| {
        if crate::input::is_body_timeout(e.as_ref()) {
            flag.store(true, Ordering::Relaxed);
        }
        e
    });
    let response = next.run(Request::from_parts(parts, Body::new(body))).await;
    if stalled.load(Ordering::Relaxed) {
        return error_response(
            route_kind(&path),
            StatusCode::REQUEST_TIMEOUT,
            "The request body was not received in time",
        );
    }
    response
}

/// Refuses a header block larger than [`MAX_HEADER_BYTES`], a header value larger than
/// [`MAX_HEADER_VALUE_BYTES`] or more than [`MAX_HEADER_COUNT`] headers with 431.
pub async fn header_size(request: Request, next: Next) -> Response {
    let mut total = 0usize;
    let mut largest = 0usize;
    for (name, value) in request.headers() {
        // "name: value\r\n"
        total += name.as_str().len() + value.len() + 4;
        largest = largest.max(value.len());
    }
    if total > MAX_HEADER_BYTES || largest > MAX_HEADER_VALUE_BYTES || request.headers().len() > MAX_HEADER_COUNT {
        let message = format!(
            "The request headers are too large: at most {MAX_HEADER_COUNT} headers, {MAX_HEADER_BYTES} bytes in all and {MAX_HEADER_VALUE_BYTES} bytes for one value"
        );
        return error_response(
            route_kind(&original_path(&request)),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            &message,
        );
    }
    next.run(request).await
}

/// Refuses a request target (path and query) longer than [`MAX_REQUEST_TARGET_BYTES`]
/// with 414, before anything reads it. Targets too long for hyper reach here cut short
/// at `request_line::CUT_BYTES`, still over the limit.
pub async fn request_target_size(request: Request, next: Next) -> Response {
    let target = request.uri().path_and_query().map_or(0, |t| t.as_str().len());
    if target > MAX_REQUEST_TARGET_BYTES {
        let kind = route_kind(request.uri().path());
        let hint = if kind == RouteKind::Scim { "; send a long filter in a POST to .search" } else { "" };
        let message =
            format!("The address (path and query) is longer than the {MAX_REQUEST_TARGET_BYTES} bytes accepted{hint}");
        return error_response(kind, StatusCode::URI_TOO_LONG, &message);
    }
    next.run(request).await
}
