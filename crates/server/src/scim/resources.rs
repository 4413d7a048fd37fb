//! `/Users` and `/Groups`: list, search, get, create, replace, patch, delete.

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{NestedPath, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use custodian_domain::{ListQuery, ScimRecord, SortOrder};
use custodian_scim::ScimError;
use custodian_scim::filter::parse_filter;
use custodian_scim::patch::parse_patch;
use custodian_scim::projection::Projection;
use custodian_scim::resource::{GroupRefOut, MemberKind, MemberOut, ResourceMeta, parse_resource, render};
use custodian_scim::schema::{LIST_RESPONSE_SCHEMA, ResourceKind};
use serde_json::{Value, json};

use super::{
    DEFAULT_COUNT, MAX_RESULTS, QueryParams, ScimApiError, ScimResult, base_url, parse_body, read_body, scim_json,
};
use crate::app::AppState;

/// What every handler needs to render resources: the store, and the base URL for
/// `meta.location` and `$ref`.
pub struct Ctx {
    pub state: AppState,
    pub base: String,
}

impl Ctx {
    pub fn new(state: AppState, headers: &HeaderMap, nested: &NestedPath) -> Self {
        let base = base_url(&state, headers, nested);
        Ctx { state, base }
    }

    pub fn location(&self, kind: ResourceKind, id: &str) -> String {
        format!("{}{}/{}", self.base, kind.endpoint(), id)
    }

    /// The resource as the client sees it, with members or groups read only when the
    /// projection will return them.
    pub async fn render(&self, record: &ScimRecord, projection: &Projection) -> ScimResult<Value> {
        let kind = record.kind;
        let members = if kind == ResourceKind::Group && projection.includes_members() {
            let stored = self.state.store.group_members(&record.id).await?;
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
            let stored = self.state.store.groups_of(&record.id).await?;
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
        let etag = record.etag();
        let meta = ResourceMeta {
            id: &record.id,
            created: record.created,
            last_modified: record.last_modified,
            version: &etag,
            location: &location,
        };
        let full = render(kind, &record.doc, &meta, members.as_deref(), groups.as_deref());
        Ok(projection.apply(kind, full))
    }

    /// A single-resource response with its `ETag` (and `Location` on creation).
    pub async fn resource_response(
        &self,
        status: StatusCode,
        record: &ScimRecord,
        projection: &Projection,
    ) -> ScimResult<Response> {
        let body = self.render(record, projection).await?;
        let mut response = scim_json(status, &body);
        if let Ok(v) = HeaderValue::from_str(&record.etag()) {
            response.headers_mut().insert(header::ETAG, v);
        }
        if status == StatusCode::CREATED
            && let Ok(v) = HeaderValue::from_str(&self.location(record.kind, &record.id))
        {
            response.headers_mut().insert(header::LOCATION, v);
        }
        Ok(response)
    }
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
    let page = ctx.state.store.scim_list(kind, &query).await?;
    let mut resources = Vec::with_capacity(page.records.len());
    for record in &page.records {
        resources.push(ctx.render(record, &projection).await?);
    }
    Ok(scim_json(StatusCode::OK, &list_response(page.total_results, query.start_index, resources)))
}

fn resource_id(path: Result<Path<String>, PathRejection>) -> ScimResult<String> {
    path.map(|Path(id)| id).map_err(|_| ScimApiError(ScimError::not_found("Resource not found")))
}

fn if_match(headers: &HeaderMap) -> Option<String> {
    headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()).map(str::to_string)
}

async fn list(
    kind: ResourceKind,
    state: AppState,
    nested: NestedPath,
    headers: HeaderMap,
    uri: Uri,
) -> ScimResult<Response> {
    let ctx = Ctx::new(state, &headers, &nested);
    let params = SearchParams::from_query(&QueryParams::parse(uri.query()))?;
    run_list(&ctx, kind, &params).await
}

async fn search(
    kind: ResourceKind,
    state: AppState,
    nested: NestedPath,
    headers: HeaderMap,
    body: Body,
) -> ScimResult<Response> {
    let ctx = Ctx::new(state, &headers, &nested);
    let body = parse_body(&headers, &read_body(body).await?)?;
    run_list(&ctx, kind, &SearchParams::from_body(&body)?).await
}

async fn get_one(
    kind: ResourceKind,
    state: AppState,
    nested: NestedPath,
    headers: HeaderMap,
    uri: Uri,
    id: String,
) -> ScimResult<Response> {
    let ctx = Ctx::new(state, &headers, &nested);
    let params = SearchParams::from_query(&QueryParams::parse(uri.query()))?;
    let projection = params.projection(kind)?;
    let record = ctx.state.store.scim_get(kind, &id).await?;
    if let Some(tags) = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        let etag = record.etag();
        if tags.split(',').any(|t| t.trim() == "*" || custodian_domain::idp::version_of_etag(t) == Some(record.version))
        {
            let mut response = StatusCode::NOT_MODIFIED.into_response();
            if let Ok(v) = HeaderValue::from_str(&etag) {
                response.headers_mut().insert(header::ETAG, v);
            }
            return Ok(response);
        }
    }
    ctx.resource_response(StatusCode::OK, &record, &projection).await
}

async fn create(
    kind: ResourceKind,
    state: AppState,
    nested: NestedPath,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> ScimResult<Response> {
    let ctx = Ctx::new(state, &headers, &nested);
    let projection = SearchParams::from_query(&QueryParams::parse(uri.query()))?.projection(kind)?;
    let body = parse_body(&headers, &read_body(body).await?)?;
    let input = parse_resource(kind, &body)?;
    let written = ctx.state.store.scim_create(kind, input).await?;
    ctx.resource_response(StatusCode::CREATED, &written.record, &projection).await
}

async fn replace(
    kind: ResourceKind,
    state: AppState,
    nested: NestedPath,
    headers: HeaderMap,
    uri: Uri,
    id: String,
    body: Body,
) -> ScimResult<Response> {
    let ctx = Ctx::new(state, &headers, &nested);
    let projection = SearchParams::from_query(&QueryParams::parse(uri.query()))?.projection(kind)?;
    let body = parse_body(&headers, &read_body(body).await?)?;
    let input = parse_resource(kind, &body)?;
    let written = ctx.state.store.scim_replace(kind, &id, input, if_match(&headers)).await?;
    ctx.resource_response(StatusCode::OK, &written.record, &projection).await
}

async fn patch(
    kind: ResourceKind,
    state: AppState,
    nested: NestedPath,
    headers: HeaderMap,
    uri: Uri,
    id: String,
    body: Body,
) -> ScimResult<Response> {
    let ctx = Ctx::new(state, &headers, &nested);
    let projection = SearchParams::from_query(&QueryParams::parse(uri.query()))?.projection(kind)?;
    let body = parse_body(&headers, &read_body(body).await?)?;
    let request = parse_patch(&body)?;
    let written = ctx.state.store.scim_patch(kind, &id, &request, if_match(&headers)).await?;
    ctx.resource_response(StatusCode::OK, &written.record, &projection).await
}

async fn delete(kind: ResourceKind, state: AppState, headers: HeaderMap, id: String) -> ScimResult<Response> {
    state.store.scim_delete(kind, &id, if_match(&headers)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

macro_rules! resource_handlers {
    ($kind:expr, $list:ident, $search:ident, $get:ident, $create:ident, $replace:ident, $patch:ident, $delete:ident) => {
        pub async fn $list(State(s): State<AppState>, n: NestedPath, h: HeaderMap, u: Uri) -> ScimResult<Response> {
            list($kind, s, n, h, u).await
        }
        pub async fn $search(State(s): State<AppState>, n: NestedPath, h: HeaderMap, b: Body) -> ScimResult<Response> {
            search($kind, s, n, h, b).await
        }
        pub async fn $get(
            State(s): State<AppState>,
            n: NestedPath,
            h: HeaderMap,
            u: Uri,
            p: Result<Path<String>, PathRejection>,
        ) -> ScimResult<Response> {
            get_one($kind, s, n, h, u, resource_id(p)?).await
        }
        pub async fn $create(
            State(s): State<AppState>,
            n: NestedPath,
            h: HeaderMap,
            u: Uri,
            b: Body,
        ) -> ScimResult<Response> {
            create($kind, s, n, h, u, b).await
        }
        pub async fn $replace(
            State(s): State<AppState>,
            n: NestedPath,
            h: HeaderMap,
            u: Uri,
            p: Result<Path<String>, PathRejection>,
            b: Body,
        ) -> ScimResult<Response> {
            replace($kind, s, n, h, u, resource_id(p)?, b).await
        }
        pub async fn $patch(
            State(s): State<AppState>,
            n: NestedPath,
            h: HeaderMap,
            u: Uri,
            p: Result<Path<String>, PathRejection>,
            b: Body,
        ) -> ScimResult<Response> {
            patch($kind, s, n, h, u, resource_id(p)?, b).await
        }
        pub async fn $delete(
            State(s): State<AppState>,
            h: HeaderMap,
            p: Result<Path<String>, PathRejection>,
        ) -> ScimResult<Response> {
            delete($kind, s, h, resource_id(p)?).await
        }
    };
}

resource_handlers!(
    ResourceKind::User,
    list_users,
    search_users,
    get_user,
    create_user,
    replace_user,
    patch_user,
    delete_user
);
resource_handlers!(
    ResourceKind::Group,
    list_groups,
    search_groups,
    get_group,
    create_group,
    replace_group,
    patch_group,
    delete_group
);

/// `POST /.search` at the root: users then groups, paged as one list. A filter that
/// names attributes of only one resource type searches that type only.
pub async fn search_root(
    State(state): State<AppState>,
    nested: NestedPath,
    headers: HeaderMap,
    body: Body,
) -> ScimResult<Response> {
    let ctx = Ctx::new(state, &headers, &nested);
    let body = parse_body(&headers, &read_body(body).await?)?;
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
        let counted = ctx.state.store.scim_list(kind, &ListQuery { count: 0, start_index: 1, ..query.clone() }).await?;
        total += counted.total_results;
        if remaining > 0 && skip < counted.total_results {
            query.start_index = skip + 1;
            query.count = remaining;
            let page = ctx.state.store.scim_list(kind, &query).await?;
            for record in &page.records {
                resources.push(ctx.render(record, &projection).await?);
            }
            remaining -= page.records.len() as u64;
            skip = 0;
        } else {
            skip = skip.saturating_sub(counted.total_results);
        }
    }
    Ok(scim_json(StatusCode::OK, &list_response(total, start_index, resources)))
}
