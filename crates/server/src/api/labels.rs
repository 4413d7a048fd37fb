//! Labels on IdP data (Fleet's shapes), their hosts, and rendering a template for every
//! host of a label. Membership is evaluated when read: always current, no cron.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use custodian_domain::StoreError;
use custodian_domain::hosts::HostQuery;
use custodian_domain::labels::{Criteria, Label, LabelChange, NewLabel, Vital};
use custodian_domain::render::render;
use custodian_scim::schema::ResourceKind;
use custodian_store::sql_filter::parse_translatable;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};

use super::error::{ApiError, ApiResult};
use super::extract::{Operator, PAGE, QueryKind, QueryParam, Validation, json_body};
use super::hosts::{DeletedResponse, FieldError, HostBody, HostListParams, HostListResponse, host_query};
use super::render::{RenderRequest, parse_render_request};
use super::rfc3339;
use super::schema::{TextRule, array_of, object, one_of, or_null, text, word};
use crate::state::AppState;

/// The longest name and description of a label, in bytes of UTF-8.
pub const MAX_NAME: usize = custodian_domain::limits::NAME_MAX_BYTES;
pub const MAX_DESCRIPTION: usize = custodian_domain::limits::TEXT_MAX_BYTES;
/// The largest body of a label write.
pub const MAX_BODY: usize = 256 * 1024;
/// The most hosts one batch render answers (a page; `page` and `per_page` choose it).
pub const MAX_RENDER_HOSTS: u64 = 10_000;
/// The fields of a label body.
const LABEL_FIELDS: &[&str] = &["name", "description", "criteria"];

const RENDER_PER_PAGE: QueryParam = QueryParam {
    name: "per_page",
    kind: QueryKind::WholeNumber { default: 1000, max: MAX_RENDER_HOSTS },
    description: "Hosts rendered per page",
};
crate::query_params!(RenderParams = [PAGE, RENDER_PER_PAGE]);

/// Criteria nested `depth` levels deep at most (`custodian_domain::labels::parse`).
fn criteria_schema(depth: usize) -> RefOr<Schema> {
    use custodian_domain::labels::{MAX_CONDITIONS, MAX_VALUE};
    let value = || text(MAX_VALUE, TextRule::NotBlank).into();
    let connection = || {
        (
            "connection",
            or_null(text(MAX_VALUE, TextRule::NotBlank))
                .description(Some("Only end users of the IdP connection with this name (any case)"))
                .into(),
            false,
        )
    };
    let group = object(
        vec![
            ("vital", word(&["end_user_idp_group"]).into(), true),
            ("value", value(), true),
            (
                "group_id",
                or_null(text(MAX_VALUE, TextRule::NoNul).min_length(Some(1)))
                    .description(Some(
                        "The SCIM id of the group to follow, as answered; the value is used when no group has it",
                    ))
                    .into(),
                false,
            ),
            connection(),
        ],
        true,
    );
    let department = object(
        vec![
            ("vital", word(&["end_user_idp_department"]).into(), true),
            ("value", value(), true),
            ("group_id", ObjectBuilder::new().schema_type(Type::Null).into(), false),
            connection(),
        ],
        true,
    );
    let filter = object(
        vec![
            ("vital", word(&["end_user_idp_filter"]).into(), true),
            (
                "value",
                text(custodian_domain::labels::MAX_FILTER_VALUE, TextRule::NotBlank)
                    .description(Some("A SCIM filter over the end user, as GET /Users?filter= takes it"))
                    .into(),
                true,
            ),
            ("group_id", ObjectBuilder::new().schema_type(Type::Null).into(), false),
            connection(),
        ],
        true,
    );
    let mut choices: Vec<RefOr<Schema>> = vec![group.into(), department.into(), filter.into()];
    if depth > 1 {
        for combinator in ["and", "or"] {
            let items = array_of(criteria_schema(depth - 1), Some(1), Some(MAX_CONDITIONS));
            choices.push(object(vec![(combinator, items.into(), true)], true).into());
        }
    }
    one_of(choices).into()
}

fn label_schema(create: bool) -> Schema {
    use custodian_domain::labels::{MAX_CONDITIONS, MAX_DEPTH};
    let description = format!(
        "A condition on the end user, or conditions combined with and / or: at most {MAX_DEPTH} levels deep and \
         {MAX_CONDITIONS} conditions in all"
    );
    let criteria = match criteria_schema(MAX_DEPTH) {
        RefOr::T(Schema::OneOf(mut o)) => {
            o.description = Some(description);
            // The one limit JSON Schema cannot count, machine-readable for test tools.
            o.extensions.get_or_insert_with(Default::default).insert("x-max-conditions".into(), MAX_CONDITIONS.into());
            RefOr::T(Schema::OneOf(o))
        }
        other => other,
    };
    let fields = LABEL_FIELDS
        .iter()
        .map(|&name| {
            let schema: RefOr<Schema> = match name {
                "name" => text(MAX_NAME, TextRule::NotBlank).into(),
                "description" => or_null(text(MAX_DESCRIPTION, TextRule::NoNul)).into(),
                _ => criteria.clone(),
            };
            (name, schema, create && name != "description")
        })
        .collect();
    object(fields, true).build().into()
}

crate::built_schema!(
    /// The body of `POST /labels`.
    NewLabelSchema => || label_schema(true)
);
crate::built_schema!(
    /// The body of `PATCH /labels/{id}`: the fields to change.
    LabelChangeSchema => || label_schema(false)
);

/// A label (Fleet's shape). `criteria` is `{"vital", "value"}` or `{"and"|"or": [...]}`;
/// a group condition shows the SCIM id of the group it follows as `group_id`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LabelBody {
    pub id: i64,
    pub name: String,
    pub description: String,
    /// `regular`, or `automatic` for a label an automatic source keeps (one per IdP group
    /// or department), which cannot be edited by hand.
    pub label_type: String,
    /// Always `dynamic`: membership follows the IdP live.
    pub label_membership_type: String,
    pub host_count: u64,
    #[schema(value_type = Object)]
    pub criteria: Value,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LabelResponse {
    pub label: LabelBody,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LabelListResponse {
    pub labels: Vec<LabelBody>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RenderedHost {
    pub host_id: i64,
    pub rendered: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RenderFailure {
    pub host_id: i64,
    pub errors: Vec<FieldError>,
}

/// One page of a label's hosts rendered: those that rendered and those that failed, why.
#[derive(Debug, Serialize, ToSchema)]
pub struct LabelRenderResponse {
    pub label_id: i64,
    /// How many hosts the label has in all; page through them with `page` and `per_page`.
    pub host_count: u64,
    pub page: u64,
    pub per_page: u64,
    pub results: Vec<RenderedHost>,
    pub failures: Vec<RenderFailure>,
}

/// The host query of a label's criteria (its host list and count; the label pages too).
pub fn label_query(criteria: &Criteria) -> HostQuery {
    HostQuery { criteria: Some(criteria.clone()), ..HostQuery::default() }
}

async fn body_of(state: &AppState, label: Label) -> ApiResult<LabelBody> {
    let host_count = state.hosts().count_hosts(&label_query(&label.criteria)).await?;
    Ok(LabelBody {
        id: label.id,
        name: label.name,
        description: label.description,
        label_type: if label.source_id.is_some() { "automatic" } else { "regular" }.into(),
        label_membership_type: "dynamic".into(),
        host_count,
        criteria: label.criteria.to_json(),
        created_at: rfc3339(label.created_at),
        updated_at: rfc3339(label.updated_at),
    })
}

fn label_id(path: Result<Path<String>, PathRejection>) -> ApiResult<i64> {
    path.ok().and_then(|Path(raw)| crate::input::positive_id(&raw)).ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "Resource Not Found").with_error("id", "label ids are positive integers")
    })
}

/// 409 for an automatic label: it follows its group or department, not edits.
async fn refuse_automatic(state: &AppState, id: i64) -> ApiResult<()> {
    if state.labels().get_label(id).await.map_err(label_error)?.source_id.is_some() {
        return Err(ApiError::new(StatusCode::CONFLICT, "Automatic labels cannot be edited by hand")
            .with_error("label_type", custodian_domain::labels::AUTOMATIC_REFUSAL));
    }
    Ok(())
}

/// A label's store error: a taken name names the `name` field.
fn label_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "Conflict").with_error("name", m),
        StoreError::NotFound => {
            ApiError::new(StatusCode::NOT_FOUND, "Resource Not Found").with_error("id", "no label has this id")
        }
        other => other.into(),
    }
}

fn text_field(obj: &serde_json::Map<String, Value>, name: &str, max: usize, v: &mut Validation) -> Option<String> {
    match obj.get(name) {
        None => None,
        Some(Value::String(s)) if s.len() > max => {
            v.too_long(name, max);
            None
        }
        Some(Value::String(s)) if s.contains('\0') => {
            v.fail(name, "must not contain NUL characters");
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Null) if name == "description" => Some(String::new()),
        Some(_) => {
            v.fail(name, "must be a string");
            None
        }
    }
}

/// `end_user_idp_filter` conditions parsed when the criteria were; the few that SQL cannot
/// answer are refused here, naming the condition's value.
fn check_filters(criteria: &Criteria, v: &mut Validation) {
    for (name, reason) in untranslatable_filters(criteria) {
        v.fail(name, reason);
    }
}

/// The `end_user_idp_filter` conditions that SQL cannot answer, as `(field, reason)`: the
/// JSON API and the label builder refuse them alike.
pub fn untranslatable_filters(criteria: &Criteria) -> Vec<(String, String)> {
    criteria
        .conditions("criteria")
        .into_iter()
        .filter_map(|(name, condition)| match condition {
            Criteria::Condition { vital: Vital::EndUserIdpFilter, value, .. } => {
                parse_translatable(ResourceKind::User, value).err().map(|e| (format!("{name}.value"), e.detail))
            }
            _ => None,
        })
        .collect()
}

/// Validates a create (`partial` false) or update body, naming every bad field.
fn parse_label(value: &Value, partial: bool) -> ApiResult<LabelChange> {
    let mut v = Validation::default();
    let mut change = LabelChange::default();
    if let Some(obj) = value.as_object() {
        for key in obj.keys() {
            if !LABEL_FIELDS.contains(&key.as_str()) {
                v.fail(key.as_str(), "is not a label field: name, description and criteria are");
            }
        }
        change.name = text_field(obj, "name", MAX_NAME, &mut v);
        if let Some(name) = &change.name
            && name.trim().is_empty()
        {
            v.fail("name", "must not be empty");
        }
        if !partial && change.name.is_none() && !obj.contains_key("name") {
            v.fail("name", "is required");
        }
        change.description = text_field(obj, "description", MAX_DESCRIPTION, &mut v);
        match obj.get("criteria") {
            None if !partial => v.fail("criteria", "is required: {\"vital\": \"end_user_idp_group\", \"value\": ...}"),
            None => {}
            Some(c) => match Criteria::parse(c, "criteria") {
                Ok(c) => {
                    check_filters(&c, &mut v);
                    change.criteria = Some(c);
                }
                Err(errors) => {
                    for e in errors {
                        match e.over_limit {
                            Some(max) => v.too_long(e.name, max),
                            None => v.fail(e.name, e.reason),
                        }
                    }
                }
            },
        }
    }
    v.into_result()?;
    Ok(change)
}

#[utoipa::path(post, path = "/api/v1/fleet/labels", tag = "labels", operation_id = "create_label",
    request_body(content = inline(NewLabelSchema)),
    responses((status = 200, body = LabelResponse), (status = 409, body = crate::errors::ErrorBody), (status = 422, body = crate::errors::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    op: Operator,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<LabelResponse>> {
    let actor = op.require_write()?;
    let value = json_body(&headers, body, MAX_BODY).await?;
    let change = parse_label(&value, false)?;
    let (Some(name), Some(criteria)) = (change.name, change.criteria) else {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed"));
    };
    let new = NewLabel { name, description: change.description.unwrap_or_default(), criteria };
    let label = state.labels().create_label(new, &actor).await.map_err(label_error)?;
    Ok(Json(LabelResponse { label: body_of(&state, label).await? }))
}

#[utoipa::path(get, path = "/api/v1/fleet/labels", tag = "labels", operation_id = "list_labels",
    responses((status = 200, body = LabelListResponse)))]
pub async fn list(State(state): State<AppState>, _op: Operator) -> ApiResult<Json<LabelListResponse>> {
    let mut labels = Vec::new();
    for label in state.labels().list_labels().await? {
        labels.push(body_of(&state, label).await?);
    }
    Ok(Json(LabelListResponse { labels }))
}

#[utoipa::path(get, path = "/api/v1/fleet/labels/{id}", tag = "labels", operation_id = "get_label", params(("id" = i64, Path, minimum = 1)),
    responses((status = 200, body = LabelResponse), (status = 404, body = crate::errors::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    _op: Operator,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<LabelResponse>> {
    let label = state.labels().get_label(label_id(id)?).await.map_err(label_error)?;
    Ok(Json(LabelResponse { label: body_of(&state, label).await? }))
}

#[utoipa::path(patch, path = "/api/v1/fleet/labels/{id}", tag = "labels", operation_id = "patch_label", params(("id" = i64, Path, minimum = 1)),
    request_body(content = inline(LabelChangeSchema)),
    responses((status = 200, body = LabelResponse), (status = 404, body = crate::errors::ErrorBody),
               (status = 409, body = crate::errors::ErrorBody), (status = 422, body = crate::errors::ErrorBody)))]
pub async fn patch(
    State(state): State<AppState>,
    op: Operator,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<LabelResponse>> {
    let actor = op.require_write()?;
    let id = label_id(id)?;
    refuse_automatic(&state, id).await?;
    let value = json_body(&headers, body, MAX_BODY).await?;
    let change = parse_label(&value, true)?;
    let label = state.labels().update_label(id, change, &actor).await.map_err(label_error)?;
    Ok(Json(LabelResponse { label: body_of(&state, label).await? }))
}

#[utoipa::path(delete, path = "/api/v1/fleet/labels/{id}", tag = "labels", operation_id = "delete_label", params(("id" = i64, Path, minimum = 1)),
    responses((status = 200, body = DeletedResponse), (status = 404, body = crate::errors::ErrorBody),
               (status = 409, body = crate::errors::ErrorBody, description = "An automatic label: stop its source instead")))]
pub async fn delete(
    State(state): State<AppState>,
    op: Operator,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<DeletedResponse>> {
    let actor = op.require_write()?;
    let id = label_id(id)?;
    refuse_automatic(&state, id).await?;
    state.labels().delete_label(id, &actor).await.map_err(label_error)?;
    Ok(Json(DeletedResponse {}))
}

/// The hosts of a label now, paginated and ordered like `GET /hosts` (same parameters).
#[utoipa::path(get, path = "/api/v1/fleet/labels/{id}/hosts", tag = "labels", operation_id = "list_label_hosts",
    params(("id" = i64, Path, minimum = 1), HostListParams),
    responses((status = 200, body = HostListResponse), (status = 404, body = crate::errors::ErrorBody),
               (status = 422, body = crate::errors::ErrorBody)))]
pub async fn hosts(
    State(state): State<AppState>,
    _op: Operator,
    id: Result<Path<String>, PathRejection>,
    uri: Uri,
) -> ApiResult<Json<HostListResponse>> {
    let id = label_id(id)?;
    let mut query = host_query(&uri)?;
    let label = state.labels().get_label(id).await.map_err(label_error)?;
    query.criteria = Some(label.criteria);
    let hosts = state.hosts().list_hosts(&query).await?;
    Ok(Json(HostListResponse { hosts: hosts.iter().map(HostBody::from).collect() }))
}

/// Renders one template for every host of a label (one page of at most 10,000 hosts,
/// chosen with `page` and `per_page`; 1,000 by default).
#[utoipa::path(post, path = "/api/v1/fleet/labels/{id}/render", tag = "labels", operation_id = "render_label",
    params(("id" = i64, Path, minimum = 1), RenderParams),
    request_body(content = inline(super::render::RenderRequestSchema)),
    responses((status = 200, body = LabelRenderResponse), (status = 404, body = crate::errors::ErrorBody),
               (status = 422, body = crate::errors::ErrorBody)))]
pub async fn render_all(
    State(state): State<AppState>,
    _op: Operator,
    id: Result<Path<String>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<LabelRenderResponse>> {
    let id = label_id(id)?;
    let params = crate::query::QueryParams::parse(uri.query());
    let mut v = Validation::default();
    let page = v.whole_number(&params, &PAGE);
    let per_page = v.whole_number(&params, &RENDER_PER_PAGE);
    v.into_result()?;
    let RenderRequest { template, format } =
        parse_render_request(json_body(&headers, body, super::render::MAX_BODY).await?)?;
    let label = state.labels().get_label(id).await.map_err(label_error)?;
    let query = HostQuery { page, per_page, ..label_query(&label.criteria) };
    let host_count = state.hosts().count_hosts(&query).await?;
    let hosts = state.hosts().list_hosts(&query).await?;
    let mut response = LabelRenderResponse {
        label_id: id,
        host_count,
        page,
        per_page,
        results: Vec::with_capacity(hosts.len()),
        failures: Vec::new(),
    };
    for host in &hosts {
        match render(&template, format, host) {
            Ok(rendered) => response.results.push(RenderedHost { host_id: host.id, rendered }),
            Err(errors) => response.failures.push(RenderFailure {
                host_id: host.id,
                errors: errors.into_iter().map(|e| FieldError { name: e.name, reason: e.reason }).collect(),
            }),
        }
    }
    Ok(Json(response))
}
