//! `/Users` and `/Groups`: list, search, get, create, replace, patch, delete.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, NestedPath, Path};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use custodian_domain::hosts::Actor;
use custodian_domain::{ConnectionId, ListQuery, ScimRecord, Scope, SortOrder, StoredMember};
use custodian_scim::ScimError;
use custodian_scim::filter::parse_filter;
use custodian_scim::patch::parse_patch;
use custodian_scim::projection::Projection;
use custodian_scim::resource::{GroupRefOut, MemberKind, MemberOut, parse_resource};
use custodian_scim::schema::{LIST_RESPONSE_SCHEMA, ResourceKind};
use serde_json::{Value, json};

use super::ScimClient;
use super::{DEFAULT_COUNT, MAX_RESULTS, ScimApiError, ScimResult, base_url, parse_body, read_body, scim_json};
use crate::query::QueryParams;
use crate::state::AppState;

/// What every SCIM handler needs: the store, the base URL for `meta.location` and
/// `$ref`, the request's headers and query, and who is calling (set by the
/// authentication middleware).
pub struct Ctx {
    pub state: AppState,
    pub base: String,
    pub headers: HeaderMap,
    pub params: QueryParams,
    pub actor: Actor,
    /// The connection whose namespace the request is in.
    pub conn: ConnectionId,
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = ScimApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let nested = NestedPath::from_request_parts(parts, state)
            .await
            .map_err(|_| ScimError::new(500, None, "SCIM route mounted without a base path"))?;
        let client =
            parts.extensions.get::<ScimClient>().ok_or_else(|| ScimError::new(401, None, "Authentication required"))?;
        Ok(Ctx {
            base: base_url(state, &parts.headers, &nested),
            state: state.clone(),
            headers: parts.headers.clone(),
            params: QueryParams::parse(parts.uri.query()),
            actor: client.actor.clone(),
            conn: client.connection,
        })
    }
}

impl Ctx {
    pub fn location(&self, kind: ResourceKind, id: &str) -> String {
        format!("{}{}/{}", self.base, kind.endpoint(), id)
    }

    /// The resource as the client sees it, with members or groups read only when the
    /// projection will return them.
    pub async fn render(&self, record: &ScimRecord, projection: &Projection, groups: UserGroups) -> ScimResult<Value> {
        let kind = record.kind;
        let members = if kind == ResourceKind::Group && projection.includes_members() {
            let stored = self.state.directory().group_members(&record.id).await?;
            Some(
                stored
                    .into_iter()
                    .map(|m| {
                        let member_kind = match m.kind {
                            MemberKind::User => ResourceKind::User,
                            MemberKind::Group => ResourceKind::Group,
                        };
                        MemberOut {
                            location: self.location(member_kind, &m.id),
                            value: m.id,
                            display: m.display,
                            kind: m.kind,
                        }
                    })
                    .collect::<Vec<_>>(),
            )
        } else {
            None
        };
        let groups = if kind == ResourceKind::User && projection.includes_groups() {
            let stored = match groups {
                UserGroups::Read => self.state.directory().groups_of(&record.id).await?,
                UserGroups::NoneYet => Vec::new(),
                UserGroups::Known(known) => known,
            };
            Some(
                stored
                    .into_iter()
                    .map(|g| GroupRefOut {
                        location: self.location(ResourceKind::Group, &g.id),
                        value: g.id,
                        display: g.display,
                        direct: g.direct,
                    })
                    .collect::<Vec<_>>(),
            )
        } else {
            None
        };
        let location = self.location(kind, &record.id);
        let full = record.render(&location, members.as_deref(), groups.as_deref());
        Ok(projection.apply(kind, full))
    }

    /// A single-resource response with its `ETag` (and `Location` on creation).
    pub async fn resource_response(
        &self,
        status: StatusCode,
        record: &ScimRecord,
        projection: &Projection,
        new_user: bool,
    ) -> ScimResult<Response> {
        let groups = if new_user { UserGroups::NoneYet } else { UserGroups::Read };
        let body = self.render(record, projection, groups).await?;
        let mut response = scim_json(status, &body);
        set_etag(&mut response, record);
        if status == StatusCode::CREATED
            && let Ok(v) = HeaderValue::from_str(&self.location(record.kind, &record.id))
        {
            response.headers_mut().insert(header::LOCATION, v);
        }
        Ok(response)
    }
}

/// Where the groups of a user being rendered come from.
pub enum UserGroups {
    /// A query of their own.
    Read,
    /// None: a user just created belongs to no group.
    NoneYet,
    /// Read already, with those of the rest of a page.
    Known(Vec<StoredMember>),
}

/// A page of records rendered, the groups of all its users read in one query.
async fn render_page(
    ctx: &Ctx,
    kind: ResourceKind,
    records: &[ScimRecord],
    projection: &Projection,
) -> ScimResult<Vec<Value>> {
    let mut groups = if kind == ResourceKind::User && projection.includes_groups() && !records.is_empty() {
        let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
        ctx.state.directory().groups_of_each(&ids).await?
    } else {
        HashMap::new()
    };
    let mut resources = Vec::with_capacity(records.len());
    for record in records {
        let known = UserGroups::Known(groups.remove(&record.id).unwrap_or_default());
        resources.push(ctx.render(record, projection, known).await?);
    }
    Ok(resources)
}

/// The list/search parameters, from a query string or a SearchRequest body.
#[derive(Default)]
pub struct SearchParams {
    pub filter: Option<String>,
    pub sort_by: Option<String>,
    pub sort_order: Option<String>,
    pub start_index: Option<i64>,
    pub count: Option<i64>,
    pub attributes: Option<String>,
    pub excluded_attributes: Option<String>,
}

fn integer_param(name: &str, value: Option<&str>) -> ScimResult<Option<i64>> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ScimError::invalid_value(format!("'{name}' must be an integer")).into()),
    }
}

impl SearchParams {
    pub fn from_query(params: &QueryParams) -> ScimResult<Self> {
        Ok(SearchParams {
            filter: params.get("filter").map(str::to_string),
            sort_by: params.get("sortBy").map(str::to_string),
            sort_order: params.get("sortOrder").map(str::to_string),
            start_index: integer_param("startIndex", params.get("startIndex"))?,
            count: integer_param("count", params.get("count"))?,
            attributes: params.get("attributes").map(str::to_string),
            excluded_attributes: params.get("excludedAttributes").map(str::to_string),
        })
    }

    /// A SearchRequest body (RFC 7644 §3.4.3); attribute lists may be arrays or strings.
    pub fn from_body(body: &Value) -> ScimResult<Self> {
        // A member that is no SearchRequest parameter is a client's mistake (a resource
        // sent to the wrong endpoint): answered, not silently ignored.
        const PARAMETERS: &[&str] =
            &["schemas", "attributes", "excludedAttributes", "filter", "sortBy", "sortOrder", "startIndex", "count"];
        if let Some(unknown) =
            body.as_object().and_then(|o| o.keys().find(|k| !PARAMETERS.iter().any(|p| p.eq_ignore_ascii_case(k))))
        {
            return Err(ScimError::invalid_syntax(format!(
                "'{}' is not a SearchRequest parameter (RFC 7644 §3.4.3)",
                truncate(unknown, 64)
            ))
            .into());
        }
        let field = |name: &str| {
            body.as_object().and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(name))).map(|(_, v)| v)
        };
        let string = |name: &str| -> ScimResult<Option<String>> {
            match field(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(Value::Array(items)) => {
                    let mut parts = Vec::new();
                    for item in items {
                        match item.as_str() {
                            Some(s) => parts.push(s.to_string()),
                            None => return Err(ScimError::invalid_value(format!("'{name}' must list strings")).into()),
                        }
                    }
                    Ok(Some(parts.join(",")))
                }
                Some(_) => Err(ScimError::invalid_value(format!("'{name}' must be a string")).into()),
            }
        };
        let integer = |name: &str| -> ScimResult<Option<i64>> {
            match field(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => n
                    .as_i64()
                    .map(Some)
                    .ok_or_else(|| ScimError::invalid_value(format!("'{name}' must be an integer")).into()),
                Some(Value::String(s)) => integer_param(name, Some(s)),
                Some(_) => Err(ScimError::invalid_value(format!("'{name}' must be an integer")).into()),
            }
        };
        Ok(SearchParams {
            filter: string("filter")?,
            sort_by: string("sortBy")?,
            sort_order: string("sortOrder")?,
            start_index: integer("startIndex")?,
            count: integer("count")?,
            attributes: string("attributes")?,
            excluded_attributes: string("excludedAttributes")?,
        })
    }

    pub fn projection(&self, kind: ResourceKind) -> ScimResult<Projection> {
        Ok(Projection::parse(kind, self.attributes.as_deref(), self.excluded_attributes.as_deref())?)
    }

    pub fn list_query(&self, kind: ResourceKind) -> ScimResult<ListQuery> {
        let filter = match self.filter.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(f) => Some(parse_filter(kind, f)?),
        };
        let sort_by = match self.sort_by.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) => Some(kind.resolve_path(s).ok_or_else(|| {
                ScimError::invalid_value(format!("sortBy names an unknown attribute '{}'", truncate(s, 64)))
            })?),
        };
        let sort_order = match self.sort_order.as_deref().map(str::trim) {
            None | Some("") => SortOrder::Ascending,
            Some(s) if s.eq_ignore_ascii_case("ascending") => SortOrder::Ascending,
            Some(s) if s.eq_ignore_ascii_case("descending") => SortOrder::Descending,
            Some(_) => {
                return Err(ScimError::invalid_value("sortOrder must be 'ascending' or 'descending'").into());
            }
        };
        // RFC 7644 §3.4.2.4: startIndex below 1 means 1, a negative count means 0.
        let start_index = self.start_index.unwrap_or(1).max(1) as u64;
        let count = self.count.map(|c| c.max(0) as u64).unwrap_or(DEFAULT_COUNT).min(MAX_RESULTS);
        Ok(ListQuery { filter, sort_by, sort_order, start_index, count })
    }
}

pub fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

pub fn list_response(total: u64, start_index: u64, resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

async fn run_list(ctx: &Ctx, kind: ResourceKind, params: &SearchParams) -> ScimResult<Response> {
    let projection = params.projection(kind)?;
    let query = params.list_query(kind)?;
    let page = ctx.state.directory().scim_list(Scope::Connection(ctx.conn), kind, &query).await?;
    let resources = render_page(ctx, kind, &page.records, &projection).await?;
    Ok(scim_json(StatusCode::OK, &list_response(page.total_results, query.start_index, resources)))
}

fn resource_id(path: Result<Path<String>, PathRejection>) -> ScimResult<String> {
    path.map(|Path(id)| id).map_err(|_| ScimApiError(ScimError::not_found("Resource not found")))
}

fn if_match(headers: &HeaderMap) -> Option<String> {
    headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()).map(str::to_string)
}

async fn list(kind: ResourceKind, ctx: Ctx) -> ScimResult<Response> {
    let params = SearchParams::from_query(&ctx.params)?;
    run_list(&ctx, kind, &params).await
}

async fn search(kind: ResourceKind, ctx: Ctx, body: Body) -> ScimResult<Response> {
    let body = parse_body(&ctx.headers, &read_body(body).await?)?;
    run_list(&ctx, kind, &SearchParams::from_body(&body)?).await
}

/// The `ETag` of a record's version, on every answer that names one.
fn set_etag(response: &mut Response, record: &ScimRecord) {
    if let Ok(v) = HeaderValue::from_str(&record.etag()) {
        response.headers_mut().insert(header::ETAG, v);
    }
}

fn projection(ctx: &Ctx, kind: ResourceKind) -> ScimResult<Projection> {
    SearchParams::from_query(&ctx.params)?.projection(kind)
}

async fn get_one(kind: ResourceKind, ctx: Ctx, id: String) -> ScimResult<Response> {
    let projection = projection(&ctx, kind)?;
    let record = ctx.state.directory().scim_get(Scope::Connection(ctx.conn), kind, &id).await?;
    if let Some(tags) = ctx.headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        let matched = tags
            .split(',')
            .any(|t| t.trim() == "*" || custodian_domain::idp::version_of_etag(t) == Some(record.version));
        if matched {
            let mut response = StatusCode::NOT_MODIFIED.into_response();
            set_etag(&mut response, &record);
            return Ok(response);
        }
    }
    ctx.resource_response(StatusCode::OK, &record, &projection, false).await
}

async fn create(kind: ResourceKind, ctx: Ctx, body: Body) -> ScimResult<Response> {
    let projection = projection(&ctx, kind)?;
    let body = parse_body(&ctx.headers, &read_body(body).await?)?;
    let input = parse_resource(kind, &body)?;
    let written = ctx.state.directory().scim_create(ctx.conn, kind, input, &ctx.actor).await?;
    let new_user = kind == ResourceKind::User && !written.reactivated;
    ctx.resource_response(StatusCode::CREATED, &written.record, &projection, new_user).await
}

async fn replace(kind: ResourceKind, ctx: Ctx, id: String, body: Body) -> ScimResult<Response> {
    let projection = projection(&ctx, kind)?;
    let body = parse_body(&ctx.headers, &read_body(body).await?)?;
    let input = parse_resource(kind, &body)?;
    let written =
        ctx.state.directory().scim_replace(ctx.conn, kind, &id, input, if_match(&ctx.headers), &ctx.actor).await?;
    ctx.resource_response(StatusCode::OK, &written.record, &projection, false).await
}

/// A PATCH answers the resource as it now is (200), but for a group PATCH that asks for
/// no attributes: 204 No Content (RFC 7644 §3.5.2), as Okta and Entra expect, so that a
/// membership change costs what it changes and never a read of every member.
async fn patch(kind: ResourceKind, ctx: Ctx, id: String, body: Body) -> ScimResult<Response> {
    let projection = projection(&ctx, kind)?;
    let body = parse_body(&ctx.headers, &read_body(body).await?)?;
    let request = parse_patch(&body)?;
    let written =
        ctx.state.directory().scim_patch(ctx.conn, kind, &id, request, if_match(&ctx.headers), &ctx.actor).await?;
    if kind == ResourceKind::Group && projection.is_default() {
        let mut response = StatusCode::NO_CONTENT.into_response();
        set_etag(&mut response, &written.record);
        return Ok(response);
    }
    ctx.resource_response(StatusCode::OK, &written.record, &projection, false).await
}

async fn delete(kind: ResourceKind, ctx: Ctx, id: String) -> ScimResult<Response> {
    ctx.state.directory().scim_delete(ctx.conn, kind, &id, if_match(&ctx.headers), &ctx.actor).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

type IdPath = Result<Path<String>, PathRejection>;

pub async fn list_users(ctx: Ctx) -> ScimResult<Response> {
    list(ResourceKind::User, ctx).await
}
pub async fn search_users(ctx: Ctx, body: Body) -> ScimResult<Response> {
    search(ResourceKind::User, ctx, body).await
}
pub async fn get_user(ctx: Ctx, id: IdPath) -> ScimResult<Response> {
    get_one(ResourceKind::User, ctx, resource_id(id)?).await
}
pub async fn create_user(ctx: Ctx, body: Body) -> ScimResult<Response> {
    create(ResourceKind::User, ctx, body).await
}
pub async fn replace_user(ctx: Ctx, id: IdPath, body: Body) -> ScimResult<Response> {
    replace(ResourceKind::User, ctx, resource_id(id)?, body).await
}
pub async fn patch_user(ctx: Ctx, id: IdPath, body: Body) -> ScimResult<Response> {
    patch(ResourceKind::User, ctx, resource_id(id)?, body).await
}
pub async fn delete_user(ctx: Ctx, id: IdPath) -> ScimResult<Response> {
    delete(ResourceKind::User, ctx, resource_id(id)?).await
}
pub async fn list_groups(ctx: Ctx) -> ScimResult<Response> {
    list(ResourceKind::Group, ctx).await
}
pub async fn search_groups(ctx: Ctx, body: Body) -> ScimResult<Response> {
    search(ResourceKind::Group, ctx, body).await
}
pub async fn get_group(ctx: Ctx, id: IdPath) -> ScimResult<Response> {
    get_one(ResourceKind::Group, ctx, resource_id(id)?).await
}
pub async fn create_group(ctx: Ctx, body: Body) -> ScimResult<Response> {
    create(ResourceKind::Group, ctx, body).await
}
pub async fn replace_group(ctx: Ctx, id: IdPath, body: Body) -> ScimResult<Response> {
    replace(ResourceKind::Group, ctx, resource_id(id)?, body).await
}
pub async fn patch_group(ctx: Ctx, id: IdPath, body: Body) -> ScimResult<Response> {
    patch(ResourceKind::Group, ctx, resource_id(id)?, body).await
}
pub async fn delete_group(ctx: Ctx, id: IdPath) -> ScimResult<Response> {
    delete(ResourceKind::Group, ctx, resource_id(id)?).await
}

/// `POST /.search` at the root: users then groups, paged as one list. A filter that
/// names attributes of only one resource type searches that type only.
pub async fn search_root(ctx: Ctx, body: Body) -> ScimResult<Response> {
    let body = parse_body(&ctx.headers, &read_body(body).await?)?;
    let params = SearchParams::from_body(&body)?;
    let mut plans = Vec::new();
    let mut first_error = None;
    for kind in [ResourceKind::User, ResourceKind::Group] {
        match (params.list_query(kind), params.projection(kind)) {
            (Ok(q), Ok(p)) => plans.push((kind, q, p)),
            (Err(e), _) | (_, Err(e)) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if plans.is_empty() {
        return Err(first_error.unwrap_or_else(|| ScimError::invalid_filter("Nothing to search").into()));
    }
    let start_index = plans.first().map(|(_, q, _)| q.start_index).unwrap_or(1);
    let mut remaining = plans.first().map(|(_, q, _)| q.count).unwrap_or(DEFAULT_COUNT);
    let mut skip = start_index - 1;
    let mut total = 0;
    let mut resources = Vec::new();
    for (kind, mut query, projection) in plans {
        // Count this type's matches, then take the part of the page that falls in it.
        let counted = ctx
            .state
            .directory()
            .scim_list(Scope::Connection(ctx.conn), kind, &ListQuery { count: 0, start_index: 1, ..query.clone() })
            .await?;
        total += counted.total_results;
        if remaining > 0 && skip < counted.total_results {
            query.start_index = skip + 1;
            query.count = remaining;
            let page = ctx.state.directory().scim_list(Scope::Connection(ctx.conn), kind, &query).await?;
            resources.extend(render_page(&ctx, kind, &page.records, &projection).await?);
            remaining -= page.records.len() as u64;
            skip = 0;
        } else {
            skip = skip.saturating_sub(counted.total_results);
        }
    }
    Ok(scim_json(StatusCode::OK, &list_response(total, start_index, resources)))
}
