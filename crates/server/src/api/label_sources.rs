//! Automatic labels: `POST /labels/automatic` starts a source that keeps one label per
//! IdP group or per department (of one connection, or of all); `GET` lists the sources
//! and `DELETE /labels/automatic/{id}` stops one, with its labels.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use custodian_domain::StoreError;
use custodian_domain::labels::{AutomaticSource, LabelSource};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult};
use super::extract::{Operator, Validation, json_body, or_list};
use super::hosts::DeletedResponse;
use super::rfc3339;
use crate::state::AppState;

const MAX_BODY: usize = 4 * 1024;
const FIELDS: [&str; 2] = ["source", "connection"];

fn new_source_schema() -> utoipa::openapi::Schema {
    use super::schema::{TextRule, object, or_null, text, word};
    object(
        vec![
            ("source", word(&AutomaticSource::NAMES).into(), true),
            (
                "connection",
                or_null(text(custodian_domain::limits::NAME_MAX_BYTES, TextRule::NotBlank))
                    .description(Some("The IdP connection whose groups or departments to follow; all by default"))
                    .into(),
                false,
            ),
        ],
        true,
    )
    .build()
    .into()
}

crate::built_schema!(
    /// `{"source": "idp_groups" | "idp_departments", "connection"?: NAME}`.
    NewLabelSourceSchema => new_source_schema
);

/// A source of automatic labels.
#[derive(Debug, Serialize, ToSchema)]
pub struct LabelSourceBody {
    pub id: i64,
    /// `idp_groups` or `idp_departments`.
    pub source: String,
    /// The connection it follows; null: every connection.
    pub connection: Option<String>,
    /// How many labels it keeps now (listed by `GET /labels` with `label_type: "automatic"`).
    pub label_count: u64,
    pub created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LabelSourceResponse {
    pub automatic_labels: LabelSourceBody,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LabelSourceListResponse {
    pub automatic_labels: Vec<LabelSourceBody>,
}

fn body_of(source: LabelSource) -> LabelSourceBody {
    LabelSourceBody {
        id: source.id,
        source: source.source.as_str().into(),
        connection: source.connection,
        label_count: source.label_count,
        created_at: rfc3339(source.created_at),
    }
}

fn parse_request(value: &Value) -> ApiResult<(AutomaticSource, Option<String>)> {
    let mut v = Validation::default();
    let Some(obj) = value.as_object() else {
        v.fail("source", "the body must be an object: {\"source\": \"idp_groups\"}");
        v.into_result()?;
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed"));
    };
    for key in obj.keys() {
        if !FIELDS.contains(&key.as_str()) {
            v.fail(key.as_str(), "is not a field: source and connection are");
        }
    }
    let choices = format!("must be {}", or_list(&AutomaticSource::NAMES));
    let source = match obj.get("source") {
        Some(Value::String(s)) => AutomaticSource::parse(s).or_else(|| {
            v.fail("source", &choices);
            None
        }),
        None | Some(Value::Null) => {
            v.fail("source", format!("is required: it {choices}"));
            None
        }
        Some(_) => {
            v.fail("source", &choices);
            None
        }
    };
    let max = custodian_domain::limits::NAME_MAX_BYTES;
    let connection = match obj.get("connection") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.len() > max => {
            v.too_long("connection", max);
            None
        }
        Some(Value::String(s)) if s.trim().is_empty() || s.contains('\0') => {
            v.fail("connection", "must name an IdP connection");
            None
        }
        Some(Value::String(s)) => Some(s.trim().to_string()),
        Some(_) => {
            v.fail("connection", "must be a string: the name of an IdP connection");
            None
        }
    };
    v.into_result()?;
    let source = source.ok_or_else(|| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed"))?;
    Ok((source, connection))
}

/// Starts a source and makes the labels of the groups or departments there are now; one
/// that exists already is answered as it is (200 rather than 201).
#[utoipa::path(post, path = "/api/v1/fleet/labels/automatic", tag = "labels", operation_id = "create_automatic_labels",
    request_body(content = inline(NewLabelSourceSchema)),
    responses((status = 201, body = LabelSourceResponse), (status = 200, body = LabelSourceResponse, description = "The source existed"),
               (status = 422, body = crate::errors::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    op: Operator,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let actor = op.require_write()?;
    let (source, connection) = parse_request(&json_body(&headers, body, MAX_BODY).await?)?;
    let (created, is_new) =
        state.labels().create_label_source(source, connection.as_deref(), &actor).await.map_err(|e| match e {
            StoreError::NotFound => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed")
                .with_error("connection", "no IdP connection has this name"),
            other => other.into(),
        })?;
    let status = if is_new { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(LabelSourceResponse { automatic_labels: body_of(created) })).into_response())
}

#[utoipa::path(get, path = "/api/v1/fleet/labels/automatic", tag = "labels", operation_id = "list_automatic_labels",
    responses((status = 200, body = LabelSourceListResponse)))]
pub async fn list(State(state): State<AppState>, _op: Operator) -> ApiResult<Json<LabelSourceListResponse>> {
    let sources = state.labels().list_label_sources().await?;
    Ok(Json(LabelSourceListResponse { automatic_labels: sources.into_iter().map(body_of).collect() }))
}

/// Stops a source: its labels are deleted with it.
#[utoipa::path(delete, path = "/api/v1/fleet/labels/automatic/{id}", tag = "labels", operation_id = "delete_automatic_labels",
    params(("id" = i64, Path, minimum = 1)),
    responses((status = 200, body = DeletedResponse), (status = 404, body = crate::errors::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    op: Operator,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<DeletedResponse>> {
    let actor = op.require_write()?;
    let not_found = || {
        ApiError::new(StatusCode::NOT_FOUND, "Resource Not Found")
            .with_error("id", "no automatic label source has this id")
    };
    let id = id.ok().and_then(|Path(raw)| crate::input::positive_id(&raw)).ok_or_else(not_found)?;
    state.labels().delete_label_source(id, &actor).await.map_err(|e| match e {
        StoreError::NotFound => not_found(),
        other => other.into(),
    })?;
    Ok(Json(DeletedResponse {}))
}
