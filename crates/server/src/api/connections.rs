//! IdP connections: each a namespace of users and groups with its own SCIM-only tokens,
//! status and history. Admins change them; observers and maintainers read them. A token
//! is answered once, at creation, and stored only as its digest.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use chrono::{DateTime, Utc};
use custodian_domain::Role;
use custodian_domain::StoreError;
use custodian_domain::connections::{Connection, ConnectionChange, ConnectionId, ConnectionKind, ConnectionToken};
use custodian_domain::sync::{GoogleWorkspaceSettings, SyncRun};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa::openapi::Schema;
use utoipa::openapi::schema::{ObjectBuilder, Type};

use super::error::{ApiError, ApiResult};
use super::extract::{Operator, Validation, json_body, optional_json_body};
use super::hosts::DeletedResponse;
use super::rfc3339;
use super::schema::{TextRule, object, or_null, text, word};
use crate::idp_connections::{
    self as service, GoogleWorkspaceForm, MAX_NAME, PRIORITY_RANGE, SYNC_INTERVAL_RANGE, checked_name, priority_problem,
};
use crate::input::positive_id;
use crate::state::AppState;

const MAX_BODY: usize = 16 * 1024;
/// A connection with its service account key file (a few kilobytes).
const MAX_CREATE_BODY: usize = 64 * 1024;
const CONNECTION_FIELDS: &[&str] = &["name", "kind", "priority", "google_workspace"];
const GOOGLE_FIELDS: &[&str] =
    &["service_account_key", "admin_email", "customer_id", "org_unit_paths", "sync_interval_seconds", "api_base_url"];
/// Runs listed at most.
const MAX_RUNS: u32 = 200;
/// The most deletions one confirmation allows (more users than any directory holds).
const MAX_ALLOW_DELETIONS: u64 = 1_000_000_000;

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

/// What may be shown of a service account key: who it is, and which key.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeySummaryBody {
    pub client_email: String,
    pub private_key_id: String,
}

/// A Google Workspace connection's settings. The key itself is never answered; its
/// summary only to admins.
#[derive(Debug, Serialize, ToSchema)]
pub struct GoogleWorkspaceBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account_key: Option<KeySummaryBody>,
    pub admin_email: String,
    pub customer_id: String,
    pub org_unit_paths: Vec<String>,
    pub sync_interval_seconds: u64,
    pub api_base_url: String,
}

impl GoogleWorkspaceBody {
    fn of(s: &GoogleWorkspaceSettings, admin: bool) -> Self {
        GoogleWorkspaceBody {
            service_account_key: admin.then(|| KeySummaryBody {
                client_email: s.client_email.clone(),
                private_key_id: s.private_key_id.clone(),
            }),
            admin_email: s.admin_email.clone(),
            customer_id: s.customer_id.clone(),
            org_unit_paths: s.org_unit_paths.clone(),
            sync_interval_seconds: s.sync_interval_seconds,
            api_base_url: s.api_base_url.clone(),
        }
    }
}

/// A directory sync run.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunBody {
    pub id: i64,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// `running`, `success` or `error`.
    pub status: String,
    pub users_seen: u64,
    pub groups_seen: u64,
    pub created: u64,
    pub updated: u64,
    pub deleted: u64,
    pub error: Option<String>,
    /// Deletions confirmed for this run past the deletion guard.
    pub allow_deletions: Option<u64>,
    /// The deletion guard stopped this run: the deletions to confirm with
    /// `POST .../sync {"allow_deletions": N}`.
    pub deletions_to_confirm: Option<u64>,
}

impl From<&SyncRun> for RunBody {
    fn from(r: &SyncRun) -> Self {
        RunBody {
            id: r.id,
            started_at: rfc3339(r.started_at),
            finished_at: r.finished_at.map(rfc3339),
            status: r.status.as_str().into(),
            users_seen: r.counts.users_seen,
            groups_seen: r.counts.groups_seen,
            created: r.counts.created,
            updated: r.counts.updated,
            deleted: r.counts.deleted,
            error: r.error.clone(),
            allow_deletions: r.allow_deletions,
            deletions_to_confirm: r.deletions_to_confirm,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunResponse {
    pub run: RunBody,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunListResponse {
    pub runs: Vec<RunBody>,
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
    /// A directory sync's is its last finished run.
    pub last_request: Option<LastRequestBody>,
    /// SCIM tokens (none for a directory sync).
    pub tokens: Vec<TokenBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub google_workspace: Option<GoogleWorkspaceBody>,
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

impl ConnectionBody {
    /// `admin`: whether the reader may see a key's summary.
    fn of(c: &Connection, admin: bool) -> Self {
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
            google_workspace: c.google_workspace.as_ref().map(|g| GoogleWorkspaceBody::of(g, admin)),
        }
    }
}

fn is_admin(op: &Operator) -> bool {
    op.0.role == Role::Admin
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionResponse {
    pub connection: ConnectionBody,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionListResponse {
    pub connections: Vec<ConnectionBody>,
}

/// A new connection and, for a SCIM connection, its first token, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedConnectionResponse {
    pub connection: ConnectionBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
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
                ("kind", word(&["scim", "google_workspace"]).into(), true),
                ("priority", or_null(priority_schema()).into(), false),
                ("google_workspace", google_workspace_schema(true).into(), false),
            ],
            true,
        )
        .build()
        .into()
    }
);
/// `google_workspace` of `POST /idp/connections` (required with that kind; `new`), or of
/// `PATCH /idp/connections/{id}` (every field optional: a left-out one is kept).
fn google_workspace_schema(new: bool) -> ObjectBuilder {
    object(
        vec![
            (
                "service_account_key",
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .description(Some("The service account's JSON key file, as Google issues it"))
                    .into(),
                new,
            ),
            ("admin_email", text(254, TextRule::NotBlank).into(), new),
            ("customer_id", text(64, TextRule::NotBlank).into(), false),
            (
                "org_unit_paths",
                utoipa::openapi::schema::ArrayBuilder::new().items(text(1024, TextRule::NotBlank)).into(),
                false,
            ),
            (
                "sync_interval_seconds",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(*SYNC_INTERVAL_RANGE.start() as f64))
                    .maximum(Some(*SYNC_INTERVAL_RANGE.end() as f64))
                    .into(),
                false,
            ),
            ("api_base_url", text(2048, TextRule::NotBlank).into(), false),
        ],
        true,
    )
}

crate::built_schema!(
    /// The body of `POST /idp/connections/{id}/sync`.
    SyncRequestSchema => || -> Schema {
        object(
            vec![(
                "allow_deletions",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0.0))
                    .maximum(Some(MAX_ALLOW_DELETIONS as f64))
                    .description(Some("Deletions confirmed past the deletion guard (more than 10% of the users)"))
                    .into(),
                false,
            )],
            true,
        )
        .build()
        .into()
    }
);

crate::built_schema!(
    /// The body of `PATCH /idp/connections/{id}`: the fields to change (a Google
    /// Workspace connection's settings too, and its key to rotate it).
    ConnectionChangeSchema => || -> Schema {
        object(
            vec![
                ("name", text(MAX_NAME, TextRule::NotBlank).into(), false),
                ("priority", priority_schema().into(), false),
                ("google_workspace", google_workspace_schema(false).into(), false),
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
pub async fn list(State(state): State<AppState>, op: Operator) -> ApiResult<Json<ConnectionListResponse>> {
    state.recorder.flush().await;
    let connections = state.connections().list_connections().await?;
    let admin = is_admin(&op);
    Ok(Json(ConnectionListResponse { connections: connections.iter().map(|c| ConnectionBody::of(c, admin)).collect() }))
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
    let value = json_body(&headers, body, MAX_CREATE_BODY).await?;
    let mut v = Validation::default();
    let obj = value.as_object().cloned().unwrap_or_default();
    unknown_fields(&obj, CONNECTION_FIELDS, &mut v);
    let name = name_field(&obj, &mut v);
    if name.is_none() && !obj.contains_key("name") {
        v.fail("name", "is required");
    }
    let kind = match obj.get("kind") {
        Some(Value::String(k)) => ConnectionKind::parse(k).or_else(|| {
            v.fail("kind", "must be scim or google_workspace");
            None
        }),
        None => {
            v.fail("kind", "is required: scim or google_workspace");
            None
        }
        Some(_) => {
            v.fail("kind", "must be scim or google_workspace");
            None
        }
    };
    let google = match (kind, obj.get("google_workspace")) {
        (Some(ConnectionKind::GoogleWorkspace), Some(Value::Object(g))) => google_form(g, &mut v),
        (Some(ConnectionKind::GoogleWorkspace), Some(_)) => {
            v.fail("google_workspace", "must be an object");
            None
        }
        (Some(ConnectionKind::GoogleWorkspace), None) => {
            v.fail("google_workspace", "is required with kind google_workspace: service_account_key and admin_email");
            None
        }
        (Some(ConnectionKind::Scim), Some(_)) => {
            v.fail("google_workspace", "is only for kind google_workspace");
            None
        }
        _ => None,
    };
    let priority = priority_field(&obj, true, &mut v);
    v.into_result()?;
    let (Some(name), Some(kind)) = (name, kind) else {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed"));
    };
    let (connection, token) = match (kind, google) {
        (ConnectionKind::Scim, _) => {
            let (connection, token) =
                service::create(&state, name, priority, &actor).await.map_err(connection_error)?;
            (connection, Some(token))
        }
        (ConnectionKind::GoogleWorkspace, Some(google)) => {
            let connection = service::create_google_workspace(&state, name, priority, google, &actor)
                .await
                .map_err(connection_error)?;
            (connection, None)
        }
        (ConnectionKind::GoogleWorkspace, None) => {
            return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed"));
        }
    };
    let connection = ConnectionBody::of(&connection, true);
    Ok((StatusCode::CREATED, Json(CreatedConnectionResponse { connection, token })))
}

/// The `google_workspace` object of a new connection, each field of the right type, then
/// checked once for every surface. Errors name `google_workspace.<field>` and never
/// quote the key.
fn google_form(
    g: &serde_json::Map<String, Value>,
    v: &mut Validation,
) -> Option<custodian_domain::sync::NewGoogleWorkspace> {
    let form = typed_google_form(g, v)?;
    form.check().map_err(|problems| google_problems(problems, v)).ok()
}

fn google_problems(problems: Vec<(&'static str, String)>, v: &mut Validation) {
    for (name, reason) in problems {
        v.fail(format!("google_workspace.{name}"), reason);
    }
}

/// The fields of a `google_workspace` object, each of the right type (None after a
/// type error, which is recorded).
fn typed_google_form(g: &serde_json::Map<String, Value>, v: &mut Validation) -> Option<GoogleWorkspaceForm> {
    let field = |name: &str| format!("google_workspace.{name}");
    for key in g.keys() {
        if !GOOGLE_FIELDS.contains(&key.as_str()) {
            v.fail(field(key), format!("is not a field here: {} are", GOOGLE_FIELDS.join(", ")));
        }
    }
    let mut form = GoogleWorkspaceForm::default();
    let mut typed = true;
    let mut string = |name: &str, v: &mut Validation| match g.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            v.fail(field(name), "must be a string");
            typed = false;
            None
        }
    };
    form.admin_email = string("admin_email", v);
    form.customer_id = string("customer_id", v);
    form.api_base_url = string("api_base_url", v);
    match g.get("service_account_key") {
        None | Some(Value::Null) => {}
        Some(Value::Object(k)) => form.service_account_key = Some(Value::Object(k.clone())),
        // A key file pasted as text is read as the JSON it holds.
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(key @ Value::Object(_)) => form.service_account_key = Some(key),
            _ => {
                v.fail(field("service_account_key"), "must be the key file's JSON object");
                typed = false;
            }
        },
        Some(_) => {
            v.fail(field("service_account_key"), "must be the key file's JSON object");
            typed = false;
        }
    }
    match g.get("org_unit_paths") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            form.org_unit_paths = Some(items.iter().filter_map(|p| p.as_str().map(str::to_string)).collect());
        }
        Some(_) => {
            v.fail(field("org_unit_paths"), "must be an array of org unit paths, such as [\"/\"]");
            typed = false;
        }
    }
    match g.get("sync_interval_seconds") {
        None | Some(Value::Null) => {}
        Some(n) => match n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1e15).map(|f| f as u64))
        {
            Some(n) => form.sync_interval_seconds = Some(n),
            None => {
                v.fail(field("sync_interval_seconds"), "must be a whole number of seconds");
                typed = false;
            }
        },
    }
    typed.then_some(form)
}

#[utoipa::path(get, path = "/api/v1/fleet/idp/connections/{id}", tag = "idp", operation_id = "get_idp_connection",
    params(("id" = i64, Path, minimum = 1)),
    responses((status = 200, body = ConnectionResponse), (status = 404, body = crate::errors::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    op: Operator,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<ConnectionResponse>> {
    let id = connection_id(id)?;
    state.recorder.flush().await;
    let connection = state.connections().get_connection(id).await.map_err(connection_error)?;
    Ok(Json(ConnectionResponse { connection: ConnectionBody::of(&connection, is_admin(&op)) }))
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
    unknown_fields(&obj, &["name", "priority", "google_workspace"], &mut v);
    let mut change = ConnectionChange {
        name: name_field(&obj, &mut v),
        priority: priority_field(&obj, false, &mut v),
        google_workspace: None,
    };
    match obj.get("google_workspace") {
        None => {}
        Some(Value::Object(g)) => {
            let current = state.connections().get_connection(id).await.map_err(connection_error)?;
            match (current.google_workspace, typed_google_form(g, &mut v)) {
                (Some(settings), Some(form)) => match form.check_change(&settings) {
                    Ok(google) => change.google_workspace = Some(google),
                    Err(problems) => google_problems(problems, &mut v),
                },
                (None, _) => v.fail("google_workspace", "is only for google_workspace connections"),
                (Some(_), None) => {}
            }
        }
        Some(_) => v.fail("google_workspace", "must be an object"),
    }
    v.into_result()?;
    let connection = service::update(&state, id, change, &actor).await.map_err(connection_error)?;
    Ok(Json(ConnectionResponse { connection: ConnectionBody::of(&connection, true) }))
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

#[utoipa::path(post, path = "/api/v1/fleet/idp/connections/{id}/sync", tag = "idp",
    operation_id = "sync_idp_connection", params(("id" = i64, Path, minimum = 1)),
    request_body(content = inline(SyncRequestSchema)),
    responses((status = 202, body = RunResponse), (status = 404, body = crate::errors::ErrorBody),
               (status = 409, body = crate::errors::ErrorBody), (status = 422, body = crate::errors::ErrorBody)))]
pub async fn sync(
    State(state): State<AppState>,
    op: Operator,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<RunResponse>)> {
    op.require_write()?;
    let id = connection_id(id)?;
    let value = optional_json_body(&headers, body, MAX_BODY).await?;
    let mut v = Validation::default();
    let obj = value.as_object().cloned().unwrap_or_default();
    unknown_fields(&obj, &["allow_deletions"], &mut v);
    let allow_deletions = match obj.get("allow_deletions") {
        None | Some(Value::Null) => None,
        // A whole number may be written 10 or 10.0 (JSON does not tell them apart).
        Some(n) => {
            match n.as_u64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0).map(|f| f as u64)) {
                Some(n) if n <= MAX_ALLOW_DELETIONS => Some(n),
                _ => {
                    v.fail(
                        "allow_deletions",
                        format!("must be a whole number from 0 to {MAX_ALLOW_DELETIONS}: the deletions you confirm"),
                    );
                    None
                }
            }
        }
    };
    v.into_result()?;
    let run = service::sync_now(&state, id, allow_deletions).await.map_err(connection_error)?;
    Ok((StatusCode::ACCEPTED, Json(RunResponse { run: (&run).into() })))
}

#[utoipa::path(get, path = "/api/v1/fleet/idp/connections/{id}/runs", tag = "idp",
    operation_id = "list_idp_connection_runs", params(("id" = i64, Path, minimum = 1)),
    responses((status = 200, body = RunListResponse), (status = 404, body = crate::errors::ErrorBody)))]
pub async fn runs(
    State(state): State<AppState>,
    _op: Operator,
    id: Result<Path<String>, PathRejection>,
    uri: Uri,
) -> ApiResult<Json<RunListResponse>> {
    let id = connection_id(id)?;
    let limit = super::scim_status::per_page(&uri)?.min(MAX_RUNS);
    if !state.connections().connection_names().await?.iter().any(|(c, _)| *c == id) {
        return Err(not_found());
    }
    let runs = state.sync_runs().sync_runs(id, limit).await?;
    Ok(Json(RunListResponse { runs: runs.iter().map(RunBody::from).collect() }))
}
