//! The SCIM 2.0 service provider (RFC 7644): routes, the one error → response mapping
//! for SCIM, and the middleware that authenticates and records every request.

mod bulk;
mod discovery;
mod resources;

use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{NestedPath, OriginalUri, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use custodian_domain::hosts::Actor;
use custodian_domain::{ConnectionId, Credential, ScimRequestEntry, StoreError};
use custodian_scim::ScimError;
use serde_json::Value;

use crate::input::BodyError;
use crate::routes::Routes;
use crate::state::AppState;

pub use crate::surfaces::{MOUNTS, SCIM_CONTENT_TYPE};
/// The largest request body accepted on SCIM routes; advertised as bulk.maxPayloadSize.
pub const MAX_PAYLOAD_BYTES: usize = 8 * 1024 * 1024;
pub const MAX_BULK_OPERATIONS: usize = 1000;
/// The largest page (`count`) served; advertised as filter.maxResults.
pub const MAX_RESULTS: u64 = 1000;
pub const DEFAULT_COUNT: u64 = 100;

/// An error answered on a SCIM route.
#[derive(Debug)]
pub struct ScimApiError(pub ScimError);

impl From<ScimError> for ScimApiError {
    fn from(e: ScimError) -> Self {
        ScimApiError(e)
    }
}

impl From<StoreError> for ScimApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Scim(e) => ScimApiError(e),
            StoreError::NotFound => ScimApiError(ScimError::not_found("Resource not found")),
            StoreError::Conflict(msg) | StoreError::Taken { message: msg, .. } => {
                ScimApiError(ScimError::uniqueness(msg))
            }
            StoreError::Contention(msg) => {
                tracing::warn!(error = %msg, "a SCIM write lost to concurrent ones after retries");
                ScimApiError(ScimError::new(503, None, "The server is busy with concurrent changes; retry shortly"))
            }
            StoreError::Database(msg) => {
                // The cause goes to the log; the client gets no internals.
                tracing::error!(error = %msg, "database error on a SCIM request");
                ScimApiError(ScimError::new(500, None, "Internal server error"))
            }
        }
    }
}

impl IntoResponse for ScimApiError {
    fn into_response(self) -> Response {
        crate::errors::scim_error_response(self.0)
    }
}

pub type ScimResult<T> = Result<T, ScimApiError>;

pub use crate::surfaces::scim_json;

/// The base URL of the SCIM service provider as this request reached it: the public URL
/// when one is configured, else the request's Host, plus the mount point used.
pub fn base_url(state: &AppState, headers: &HeaderMap, nested: &NestedPath) -> String {
    let origin = match &state.config.public_url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => state.config.request_origin(headers),
    };
    format!("{origin}{}", nested.as_str())
}

/// Parses a request body as a JSON object; checks the media type first.
pub fn parse_body(headers: &HeaderMap, body: &Bytes) -> ScimResult<Value> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        let media = ct.split(';').next().unwrap_or("").trim();
        if !(media == SCIM_CONTENT_TYPE || media == "application/json" || media.ends_with("+json")) {
            return Err(ScimError::new(
                415,
                None,
                "Unsupported media type: send application/scim+json or application/json",
            )
            .into());
        }
    }
    if body.is_empty() {
        return Err(ScimError::invalid_syntax("The request body is empty").into());
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ScimError::invalid_syntax(format!("The request body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ScimError::invalid_syntax("The request body must be a JSON object").into());
    }
    Ok(value)
}

/// The routes of one mount point.
pub fn router(state: AppState) -> Routes<AppState> {
    Routes::new()
        .route("/ServiceProviderConfig", get(discovery::service_provider_config))
        .route("/Schemas", get(discovery::schemas))
        .route("/Schemas/{id}", get(discovery::schema))
        .route("/ResourceTypes", get(discovery::resource_types))
        .route("/ResourceTypes/{id}", get(discovery::resource_type))
        .route("/Users", get(resources::list_users).post(resources::create_user))
        .route("/Users/.search", post(resources::search_users))
        .route(
            "/Users/{id}",
            get(resources::get_user)
                .put(resources::replace_user)
                .patch(resources::patch_user)
                .delete(resources::delete_user),
        )
        .route("/Groups", get(resources::list_groups).post(resources::create_group))
        .route("/Groups/.search", post(resources::search_groups))
        .route(
            "/Groups/{id}",
            get(resources::get_group)
                .put(resources::replace_group)
                .patch(resources::patch_group)
                .delete(resources::delete_group),
        )
        .route("/.search", post(resources::search_root))
        .route("/Bulk", post(bulk::bulk))
        .route("/Me", axum::routing::any(me))
        .map(|router| {
            router
                .fallback(not_found)
                .method_not_allowed_fallback(method_not_allowed)
                .layer(middleware::from_fn_with_state(state, authenticate_and_record))
        })
}

async fn me() -> ScimApiError {
    ScimError::new(501, None, "/Me is not supported: Custodian's clients are provisioning services, not end users")
        .into()
}

async fn not_found() -> ScimApiError {
    ScimError::not_found("No such SCIM endpoint").into()
}

async fn method_not_allowed() -> ScimApiError {
    ScimError::new(405, None, "Method not allowed on this SCIM endpoint").into()
}

/// Who a SCIM request is from and which connection's namespace it is in; set by the
/// authentication middleware for the handlers.
#[derive(Debug, Clone)]
pub struct ScimClient {
    pub connection: ConnectionId,
    pub actor: Actor,
    /// The connection's name, for `/metrics`.
    pub connection_name: std::sync::Arc<str>,
}

/// The connection a SCIM response answered, for the metrics layer around the routes.
#[derive(Debug, Clone)]
pub struct AnsweredConnection(pub std::sync::Arc<str>);

/// Authenticates the bearer token (a connection's token, or a maintainer's or admin's,
/// which writes to `default`), runs the request, and records it in its connection's
/// history. Unauthenticated requests are not recorded: they would let anyone on the
/// network overwrite a connection's status.
async fn authenticate_and_record(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let client = match authenticate(&state, request.headers()).await {
        Ok(client) => client,
        Err(e) => return e.into_response(),
    };
    let method = request.method().to_string();
    // The URI as the client sent it (mount point included), not as the nested router sees it.
    let uri = request.extensions().get::<OriginalUri>().map(|u| u.0.clone()).unwrap_or_else(|| request.uri().clone());
    let path = history_path(&uri);
    let user_agent =
        request.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|s| s.chars().take(255).collect());
    let connection = client.connection;
    let connection_name = client.connection_name.clone();
    request.extensions_mut().insert(client);
    let mut response = next.run(request).await;
    response.extensions_mut().insert(AnsweredConnection(connection_name));
    let status = response.status().as_u16();
    let detail = (status >= 400).then(|| {
        response
            .extensions()
            .get::<crate::errors::ErrorDetail>()
            .map(|d| d.0.chars().take(255).collect())
            .unwrap_or_else(|| format!("HTTP {status}"))
    });
    state.recorder.record(ScimRequestEntry {
        connection: Some(connection),
        requested_at: Utc::now(),
        method,
        path,
        status,
        detail,
        user_agent,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
    });
    response
}

/// The path and query kept in the history: at most 512 characters, with the values of
/// parameters that may carry a secret (a misconfigured client's `access_token`) masked.
fn history_path(uri: &axum::http::Uri) -> String {
    let mut out = uri.path().to_string();
    if let Some(query) = uri.query() {
        let masked: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if is_secret_param(k) => format!("{k}=***"),
                _ => pair.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&masked.join("&"));
    }
    out.chars().take(512).collect()
}

fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["token", "password", "secret", "key", "auth"].iter().any(|s| name.contains(s))
}

async fn authenticate(state: &AppState, headers: &HeaderMap) -> ScimResult<ScimClient> {
    let refused = |why: &str| ScimApiError(ScimError::new(401, None, why));
    let unknown = || refused("Authentication required: send 'Authorization: Bearer <token>'");
    let token = crate::auth::bearer_token(headers).ok_or_else(unknown)?;
    let credential = state.tokens.authenticate(state.operators(), token).await.map_err(ScimApiError::from)?;
    match credential.ok_or_else(unknown)? {
        Credential::Revoked => Err(refused("This token was revoked")),
        Credential::Connection(k) if k.is_expired(Utc::now()) => Err(refused("This token has expired")),
        Credential::Connection(k) => {
            state.operator_use.record_connection(state.connections(), &k).await;
            Ok(ScimClient {
                connection: k.connection,
                actor: Actor { id: None, name: format!("IdP connection {}", k.connection_name) },
                connection_name: k.connection_name.as_str().into(),
            })
        }
        Credential::Operator { user, default } => {
            if !user.role.can_write() {
                return Err(ScimApiError(ScimError::new(
                    403,
                    None,
                    "This token's role (observer) cannot provision: use a connection token or a maintainer's",
                )));
            }
            state.operator_use.record(state.operators(), user.id).await;
            let connection = default.ok_or_else(|| {
                ScimApiError(ScimError::new(
                    403,
                    None,
                    "Operators' tokens write to the connection 'default', which was removed: use a connection token",
                ))
            })?;
            Ok(ScimClient {
                connection,
                actor: Actor::of(&user),
                connection_name: custodian_domain::connections::DEFAULT_CONNECTION_NAME.into(),
            })
        }
    }
}

/// Reads a request body, refusing more than the advertised maximum with 413.
pub async fn read_body(body: Body) -> ScimResult<Bytes> {
    crate::input::read_body(body, MAX_PAYLOAD_BYTES).await.map_err(|e| {
        ScimApiError(match e {
            BodyError::TimedOut => ScimError::new(408, None, "The request body was not received in time"),
            BodyError::TooLarge { limit } => {
                ScimError::new(413, None, format!("The request body is larger than the {limit} bytes accepted"))
            }
            BodyError::Unreadable => ScimError::invalid_syntax("The request body could not be read"),
        })
    })
}
