//! `POST /hosts/{id}/render`: a template with the host's `$FLEET_VAR_HOST_END_USER_IDP_*`
//! variables replaced and escaped for its format (`custodian_domain::render`).

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use custodian_domain::render::{Format, render};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult};
use super::extract::{Operator, Validation, host_id, json_body};
use crate::state::AppState;

/// The largest request body (the template and its JSON envelope).
pub const MAX_BODY: usize = 2 * 1024 * 1024;
/// The longest template, in bytes of UTF-8: templates are profiles and scripts, larger
/// than any stored text, and never stored.
pub const MAX_TEMPLATE: usize = 1024 * 1024;
/// The formats a template may be escaped for.
pub const FORMATS: &[&str] = &["text", "xml", "shell"];

fn render_request_schema() -> utoipa::openapi::Schema {
    use super::schema::{TextRule, object, or_null, text, word};
    let template = text(MAX_TEMPLATE, TextRule::NoNul).pattern(None::<String>);
    object(
        vec![
            ("template", template.into(), true),
            ("format", or_null(word(FORMATS)).description(Some("text by default")).into(), false),
        ],
        false,
    )
    .build()
    .into()
}

crate::built_schema!(
    /// The body of the render operations.
    RenderRequestSchema => render_request_schema
);

#[derive(Debug, Serialize, ToSchema)]
pub struct RenderResponse {
    pub host_id: i64,
    /// text, xml or shell
    pub format: String,
    pub rendered: String,
}

pub struct RenderRequest {
    pub template: String,
    pub format: Format,
}

/// Validates `{"template", "format"}`; `format` defaults to `text`.
pub fn parse_render_request(value: Value) -> ApiResult<RenderRequest> {
    let mut v = Validation::default();
    let template = match value.get("template") {
        Some(Value::String(s)) if s.len() > MAX_TEMPLATE => {
            v.too_long("template", MAX_TEMPLATE);
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        None | Some(Value::Null) => {
            v.fail("template", "is required");
            None
        }
        Some(_) => {
            v.fail("template", "must be a string");
            None
        }
    };
    let format = match value.get("format") {
        None | Some(Value::Null) => Some(Format::Text),
        Some(Value::String(s)) if FORMATS.contains(&s.as_str()) => Format::parse(s).or_else(|| {
            v.fail("format", format!("must be {}", super::extract::or_list(FORMATS)));
            None
        }),
        Some(_) => {
            v.fail("format", format!("must be {}", super::extract::or_list(FORMATS)));
            None
        }
    };
    v.into_result()?;
    match (template, format) {
        (Some(template), Some(format)) => Ok(RenderRequest { template, format }),
        _ => Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed")),
    }
}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Text => "text",
        Format::Xml => "xml",
        Format::Shell => "shell",
    }
}

/// Renders a template for one host. A variable the host has no value for, or an unknown
/// `$FLEET_VAR_*`, answers 422 naming each variable and why.
#[utoipa::path(post, path = "/api/v1/fleet/hosts/{id}/render", tag = "hosts", operation_id = "render_host", params(("id" = i64, Path, minimum = 1)),
    request_body(content = inline(RenderRequestSchema)),
    responses((status = 200, body = RenderResponse), (status = 404, body = crate::errors::ErrorBody),
               (status = 422, body = crate::errors::ErrorBody, description = "A variable could not be rendered: errors[].name is the variable")))]
pub async fn host(
    State(state): State<AppState>,
    _op: Operator,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<RenderResponse>> {
    let id = match id {
        Ok(Path(raw)) => host_id(&raw)?,
        Err(_) => return Err(ApiError::new(StatusCode::NOT_FOUND, "Resource Not Found")),
    };
    let request = parse_render_request(json_body(&headers, body, MAX_BODY).await?)?;
    let host = state.hosts().get_host(id).await?;
    match render(&request.template, request.format, &host) {
        Ok(rendered) => Ok(Json(RenderResponse { host_id: id, format: format_name(request.format).into(), rendered })),
        Err(errors) => {
            let mut e = ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("The template cannot be rendered for host {id}: a variable has no value"),
            );
            e.errors = errors.into_iter().map(|e| (e.name, e.reason)).collect();
            Err(e)
        }
    }
}
