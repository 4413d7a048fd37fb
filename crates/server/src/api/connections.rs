//! IdP connections: each a namespace of users and groups with its own SCIM-only tokens,
//! status and history. Admins change them; observers and maintainers read them. A token
//! is answered once, at creation, and stored only as its digest.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use chrono::{DateTime, Utc};
use custodian_domain::StoreError;
use custodian_domain::connections::{Connection, ConnectionChange, ConnectionId, ConnectionKind, ConnectionToken};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa::openapi::Schema;
use utoipa::openapi::schema::{ObjectBuilder, Type};

use super::error::{ApiError, ApiResult};
use super::extract::{Operator, Validation, json_body};
use super::hosts::DeletedResponse;
use super::rfc3339;
use super::schema::{TextRule, object, or_null, text, word};
use crate::idp_connections::{self as service, MAX_NAME, PRIORITY_RANGE, checked_name, priority_problem};
use crate::input::positive_id;
use crate::state::AppState;

const MAX_BODY: usize = 16 * 1024;
const CONNECTION_FIELDS: &[&str] = &["name", "kind", "priority"];

/// A connection's last request, in the shape of Fleet's `GET /scim/details`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LastRequestBody {
    /// `success` or `error`.
    pub status: String,
    pub details: String,
    pub requested_at: String,
}

impl LastRequestBody {
    pub fn of(e: &custodian_domain::ScimRequestEntry) -> Self {
        LastRequestBody {
            status: if e.succeeded() { "success" } else { "error" }.into(),
            details: e.detail.clone().unwrap_or_default(),
            requested_at: rfc3339(e.requested_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenBody {
    pub id: i64,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionBody {
    pub id: i64,
    pub name: String,
    /// `scim` (or `google_workspace`).
    pub kind: String,
    /// Lower wins when several connections have a user for a host.
    pub priority: i64,
    pub created_at: String,
    pub users: u64,
    pub groups: u64,
    pub last_request: Option<LastRequestBody>,
    pub tokens: Vec<TokenBody>,
}

impl From<&ConnectionToken> for TokenBody {
    fn from(t: &ConnectionToken) -> Self {
        TokenBody {
            id: t.id,
            created_at: rfc3339(t.created_at),
            expires_at: t.expires_at.map(rfc3339),
            last_used_at: t.last_used_at.map(rfc3339),
        }
    }
}

impl From<&Connection> for ConnectionBody {
    fn from(c: &Connection) -> Self {
        ConnectionBody {
            id: c.id.0,
            name: c.name.clone(),
            kind: c.kind.as_str().into(),
            priority: c.priority,
            created_at: rfc3339(c.created_at),
            users: c.users,
            groups: c.groups,
            last_request: c.last_request.as_ref().map(LastRequestBody::of),
            tokens: c.tokens.iter().map(TokenBody::from).collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionResponse {
    pub connection: ConnectionBody,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionListResponse {
    pub connections: Vec<ConnectionBody>,
}

/// A new connection and its first token, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedConnectionResponse {
    pub connection: ConnectionBody,
    pub token: String,
}

/// A new token, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedTokenResponse {
    pub token: String,
    pub id: i64,
}

fn priority_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(*PRIORITY_RANGE.start() as f64))
        .maximum(Some(*PRIORITY_RANGE.end() as f64))
}

crate::built_schema!(
    /// The body of `POST /idp/connections`.
    NewConnectionSchema => || -> Schema {
        object(
            vec![
                ("name", text(MAX_NAME, TextRule::NotBlank).into(), true),
                ("kind", word(&["scim"]).into(), true),
                ("priority", or_null(priority_schema()).into(), false),
            ],
            true,
        )
        .build()
        .into()
    }
);
crate::built_schema!(
    /// The body of `PATCH /idp/connections/{id}`: the fields to change.
    ConnectionChangeSchema => || -> Schema {
        object(
            vec![
                ("name", text(MAX_NAME, TextRule::NotBlank).into(), false),
                ("priority", priority_schema().into(), false),
            ],
            true,
        )
        .build()
        .into()
    }
);
crate::built_schema!(
    /// The body of `POST /idp/connections/{id}/tokens`.
    NewTokenSchema => || -> Schema {
        object(
            vec![(
                "expires_at",
                or_null(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                            utoipa::openapi::KnownFormat::DateTime,
                        )))
                        .description(Some("When the token stops working; in the future. Null: never"))
                        .extensions(Some(
                            utoipa::openapi::extensions::ExtensionsBuilder::new().add("x-future", true).build(),
                        )),
                )
                .into(),
                false,
            )],
            true,
        )
        .build()
        .into()
    }
);

fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "Resource Not Found").with_error("id", "no connection has this id")
}

fn connection_id(path: Result<Path<String>, PathRejection>) -> ApiResult<ConnectionId> {
    path.ok().and_then(|Path(raw)| positive_id(&raw)).map(ConnectionId).ok_or_else(not_found)
}

fn connection_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => not_found(),
        StoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "Conflict").with_error("id", m),
        other => other.into(),
    }
}

fn name_field(obj: &serde_json::Map<String, Value>, v: &mut Validation) -> Option<String> {
    match obj.get("name") {
        None => None,
        Some(Value::String(s)) if s.len() > MAX_NAME => {
            v.too_long("name", MAX_NAME);
            None
        }
        Some(Value::String(s)) => checked_name(s).map_err(|reason| v.fail("name", reason)).ok(),
        Some(_) => {
            v.fail("name", "must be a string");
            None
        }
    }
}

fn priority_field(obj: &serde_json::Map<String, Value>, nullable: bool, v: &mut Validation) -> Option<i64> {
    match obj.get("priority") {
        None => None,
        Some(Value::Null) if nullable => None,
        // A whole number may be written 10 or 10.0 (JSON does not tell them apart).
        Some(p) => {
            let whole =
                p.as_i64().or_else(|| p.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 1e15).map(|f| f as i64));
            match whole.map(|p| (p, priority_problem(p))) {
                Some((p, None)) => Some(p),
                Some((_, Some(reason))) => {
                    v.fail("priority", reason);
                    None
                }
                None => {
                    v.fail("priority", priority_problem(-1).unwrap_or_default());
                    None
                }
            }
        }
    }
}

fn unknown_fields(obj: &serde_json::Map<String, Value>, allowed: &[&str], v: &mut Validation) {
    for key in obj.keys() {
        if !allowed.contains(&key.as_str()) {
            v.fail(key.as_str(), format!("is not a field here: {} are", allowed.join(", ")));
        }
    }
}

fn expires_at_field(obj: &serde_json::Map<String, Value>, v: &mut Validation) -> Option<DateTime<Utc>> {
    match obj.get("expires_at") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match DateTime::parse_from_rfc3339(s) {
            Ok(t) if t.with_timezone(&Utc) > Utc::now() => Some(t.with_timezone(&Utc)),
            Ok(_) => {
                v.fail("expires_at", "must be in the future");
                None
            }
            Err(_) => {
                v.fail("expires_at", "must be an RFC 3339 date-time, such as 2027-01-31T00:00:00Z");
                None
            }
        },
        Some(_) => {
            v.fail("expires_at", "must be an RFC 3339 date-time string or null");
            None
        }
    }
}

#[utoipa::path(get, path = "/api/v1/fleet/idp/connections", tag = "idp", operation_id = "list_idp_connections",
    responses((status = 200, body = ConnectionListResponse)))]
pub async fn list(State(state): State<AppState>, _op: Operator) -> ApiResult<Json<ConnectionListResponse>> {
    state.recorder.flush().await;
    let connections = state.connections().list_connections().await?;
    Ok(Json(ConnectionListResponse { connections: connections.iter().map(ConnectionBody::from).collect() }))
}

#[utoipa::path(post, path = "/api/v1/fleet/idp/connections", tag = "idp", operation_id = "create_idp_connection",
    request_body(content = inline(NewConnectionSchema)),
    responses((status = 201, body = CreatedConnectionResponse), (status = 409, body = crate::errors::ErrorBody),
               (status = 422, body = crate::errors::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    op: Operator,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<CreatedConnectionResponse>)> {
    let actor = op.require_admin("manage IdP connections")?;
    let value = json_body(&headers, body, MAX_BODY).await?;
    let mut v = Validation::default();
    let obj = value.as_object().cloned().unwrap_or_default();
    unknown_fields(&obj, CONNECTION_FIELDS, &mut v);
    let name = name_field(&obj, &mut v);
    if name.is_none() && !obj.contains_key("name") {
        v.fail("name", "is required");
    }
    let kind = match obj.get("kind") {
        Some(Value::String(k)) if k == "scim" => Some(ConnectionKind::Scim),
        Some(Value::String(k)) if k == "google_workspace" => {
            v.fail("kind", "google_workspace connections are not available yet: scim is");
            None
        }
        None => {
            v.fail("kind", "is required: scim");
            None
        }
        Some(_) => {
            v.fail("kind", "must be scim");
            None
        }
    };
    let priority = priority_field(&obj, true, &mut v);
    v.into_result()?;
    let (Some(name), Some(kind)) = (name, kind) else {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed"));
    };
    let (connection, token) = service::create(&state, name, kind, priority, &actor).await.map_err(connection_error)?;
    Ok((StatusCode::CREATED, Json(CreatedConnectionResponse { connection: (&connection).into(), token })))
}

#[utoipa::path(get, path = "/api/v1/fleet/idp/connections/{id}", tag = "idp", operation_id = "get_idp_connection",
    params(("id" = i64, Path, minimum = 1)),
    responses((status = 200, body = ConnectionResponse), (status = 404, body = crate::errors::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    _op: Operator,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<ConnectionResponse>> {
    let id = connection_id(id)?;
    state.recorder.flush().await;
    let connection = state.connections().get_connection(id).await.map_err(connection_error)?;
    Ok(Json(ConnectionResponse { connection: (&connection).into() }))
}

#[utoipa::path(patch, path = "/api/v1/fleet/idp/connections/{id}", tag = "idp", operation_id = "patch_idp_connection",
    params(("id" = i64, Path, minimum = 1)), request_body(content = inline(ConnectionChangeSchema)),
    responses((status = 200, body = ConnectionResponse), (status = 404, body = crate::errors::ErrorBody),
               (status = 409, body = crate::errors::ErrorBody), (status = 422, body = crate::errors::ErrorBody)))]
pub async fn patch(
    State(state): State<AppState>,
    op: Operator,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<ConnectionResponse>> {
    let actor = op.require_admin("manage IdP connections")?;
    let id = connection_id(id)?;
    let value = json_body(&headers, body, MAX_BODY).await?;
    let mut v = Validation::default();
    let obj = value.as_object().cloned().unwrap_or_default();
    unknown_fields(&obj, &["name", "priority"], &mut v);
    let change = ConnectionChange { name: name_field(&obj, &mut v), priority: priority_field(&obj, false, &mut v) };
    v.into_result()?;
    let connection = service::update(&state, id, change, &actor).await.map_err(connection_error)?;
    Ok(Json(ConnectionResponse { connection: (&connection).into() }))
}

#[utoipa::path(delete, path = "/api/v1/fleet/idp/connections/{id}", tag = "idp", operation_id = "delete_idp_connection",
    params(("id" = i64, Path, minimum = 1)),
    responses((status = 200, body = DeletedResponse), (status = 404, body = crate::errors::ErrorBody),
               (status = 409, body = crate::errors::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    op: Operator,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<DeletedResponse>> {
    let actor = op.require_admin("manage IdP connections")?;
    let id = connection_id(id)?;
    service::delete(&state, id, &actor).await.map_err(connection_error)?;
    Ok(Json(DeletedResponse {}))
}

#[utoipa::path(post, path = "/api/v1/fleet/idp/connections/{id}/tokens", tag = "idp",
    operation_id = "create_idp_connection_token", params(("id" = i64, Path, minimum = 1)),
    request_body(content = inline(NewTokenSchema)),
    responses((status = 201, body = CreatedTokenResponse), (status = 404, body = crate::errors::ErrorBody),
               (status = 422, body = crate::errors::ErrorBody)))]
pub async fn create_token(
    State(state): State<AppState>,
    op: Operator,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<CreatedTokenResponse>)> {
    op.require_admin("manage IdP connections")?;
    let id = connection_id(id)?;
    let value = json_body(&headers, body, MAX_BODY).await?;
    let mut v = Validation::default();
    let obj = value.as_object().cloned().unwrap_or_default();
    unknown_fields(&obj, &["expires_at"], &mut v);
    let expires_at = expires_at_field(&obj, &mut v);
    v.into_result()?;
    let (token_id, token) = service::add_token(&state, id, expires_at).await.map_err(connection_error)?;
    Ok((StatusCode::CREATED, Json(CreatedTokenResponse { token, id: token_id })))
}

#[utoipa::path(delete, path = "/api/v1/fleet/idp/connections/{id}/tokens/{token_id}", tag = "idp",
    operation_id = "revoke_idp_connection_token",
    params(("id" = i64, Path, minimum = 1), ("token_id" = i64, Path, minimum = 1)),
    responses((status = 200, body = DeletedResponse), (status = 404, body = crate::errors::ErrorBody)))]
pub async fn revoke_token(
    State(state): State<AppState>,
    op: Operator,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<Json<DeletedResponse>> {
    let actor = op.require_admin("manage IdP connections")?;
    let (id, token_id) = path
        .ok()
        .and_then(|Path((id, token))| Some((ConnectionId(positive_id(&id)?), positive_id(&token)?)))
        .ok_or_else(not_found)?;
    service::revoke_token(&state, id, token_id, &actor).await.map_err(|e| match e {
        StoreError::NotFound => ApiError::new(StatusCode::NOT_FOUND, "Resource Not Found")
            .with_error("token_id", "this connection has no live token with this id"),
        other => connection_error(other),
    })?;
    Ok(Json(DeletedResponse {}))
}

#[utoipa::path(get, path = "/api/v1/fleet/idp/connections/{id}/requests", tag = "idp",
    operation_id = "list_idp_connection_requests", params(("id" = i64, Path, minimum = 1)),
    responses((status = 200, body = super::scim_status::RequestListResponse), (status = 404, body = crate::errors::ErrorBody)))]
pub async fn requests(
    State(state): State<AppState>,
    _op: Operator,
    id: Result<Path<String>, PathRejection>,
    uri: Uri,
) -> ApiResult<Json<super::scim_status::RequestListResponse>> {
    let id = connection_id(id)?;
    let limit = super::scim_status::per_page(&uri)?;
    state.recorder.flush().await;
    if !state.connections().connection_names().await?.iter().any(|(c, _)| *c == id) {
        return Err(not_found());
    }
    let entries = state.connections().connection_requests(id, limit).await?;
    Ok(Json(super::scim_status::RequestListResponse::of(&entries)))
}
