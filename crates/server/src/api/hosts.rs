//! Hosts and their end users on the JSON API, in Fleet's shapes.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use custodian_domain::hosts::{
    DeviceMapping, Host, HostInput, HostOrderKey, HostQuery, LinkState, MappingSource, OwnerState, OwnershipEntry,
    UpsertOutcome,
};
use custodian_scim::filter::Filter;
use custodian_scim::schema::ResourceKind;
use custodian_store::sql_filter::parse_translatable;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, SchemaType, Type};
use utoipa::openapi::{RefOr, Schema};

use super::error::{ApiError, ApiResult};
use super::extract::{Operator, PAGE, QueryKind, QueryParam, Validation, host_id, json_body, or_list};
use super::rfc3339;
use super::schema::{TextRule, any, array_of, object, or_null, text, word};
use crate::built_schema;
use crate::query::QueryParams;
use crate::query_params;
use crate::state::AppState;
use custodian_domain::limits::NAME_MAX_BYTES;

/// The most hosts one batch request may carry.
pub const MAX_BATCH: usize = 10_000;
/// The largest body of a host write.
pub const MAX_BODY: usize = 64 * 1024 * 1024;
/// The largest body of `PUT .../device_mapping`.
pub const MAX_MAPPING_BODY: usize = 64 * 1024;
/// The most hosts a page of the host lists holds.
pub const MAX_PER_PAGE: u64 = 10_000;

/// A text field of a host.
pub struct HostText {
    pub name: &'static str,
    pub required: bool,
}
const UUID: HostText = HostText { name: "uuid", required: true };
const HARDWARE_SERIAL: HostText = HostText { name: "hardware_serial", required: false };
const HOSTNAME: HostText = HostText { name: "hostname", required: false };
const COMPUTER_NAME: HostText = HostText { name: "computer_name", required: false };
const PLATFORM: HostText = HostText { name: "platform", required: false };
const OS_VERSION: HostText = HostText { name: "os_version", required: false };
const HARDWARE_MODEL: HostText = HostText { name: "hardware_model", required: false };
/// Every text field of a host, for the document.
pub const HOST_TEXT_FIELDS: [&HostText; 7] =
    [&UUID, &HARDWARE_SERIAL, &HOSTNAME, &COMPUTER_NAME, &PLATFORM, &OS_VERSION, &HARDWARE_MODEL];

/// The sources a host's mappings may have, and those `PUT .../device_mapping` sets.
pub const HOST_SOURCES: &[&str] = &["mdm_idp_accounts", "idp", "custom", "google_chrome_profiles"];
pub const PUT_SOURCES: &[&str] = &["custom", "idp"];

/// The host list's sort keys (the Fleet names; the three names are the same order).
pub const ORDER_KEYS: &[&str] =
    &["id", "hostname", "display_name", "computer_name", "hardware_serial", "created_at", "updated_at", "idp_username"];

const PER_PAGE: QueryParam = QueryParam {
    name: "per_page",
    kind: QueryKind::WholeNumber { default: 100, max: MAX_PER_PAGE },
    description: "Hosts per page",
};
const ORDER_KEY: QueryParam =
    QueryParam { name: "order_key", kind: QueryKind::OneOf(ORDER_KEYS), description: "Sort key; id by default" };
const ORDER_DIRECTION: QueryParam =
    QueryParam { name: "order_direction", kind: QueryKind::OneOf(&["asc", "desc"]), description: "asc by default" };
const QUERY: QueryParam = QueryParam {
    name: "query",
    kind: QueryKind::Text,
    description: "Matches hostname, serial, emails and IdP username (substring, any case)",
};
const IDP_USERNAME: QueryParam =
    QueryParam { name: "idp_username", kind: QueryKind::Text, description: "The end user's IdP username" };
const IDP_GROUP: QueryParam = QueryParam {
    name: "idp_group",
    kind: QueryKind::Text,
    description: "A group's display name or SCIM id; nested groups count",
};
const IDP_CONNECTION: QueryParam = QueryParam {
    name: "idp_connection",
    kind: QueryKind::Text,
    description: "The name of the end user's IdP connection",
};
const IDP_DEPARTMENT: QueryParam =
    QueryParam { name: "idp_department", kind: QueryKind::Text, description: "The end user's department" };
const IDP_FILTER: QueryParam = QueryParam {
    name: "idp_filter",
    kind: QueryKind::Text,
    description: "A SCIM filter over the end user, as GET /Users?filter= takes it, e.g. title eq \"Engineer\"",
};
const IDP_ACTIVE: QueryParam =
    QueryParam { name: "idp_active", kind: QueryKind::Flag, description: "Whether the end user is active in the IdP" };

const LINK_STATE: QueryParam = QueryParam {
    name: "link_state",
    kind: QueryKind::OneOf(&OwnerState::NAMES),
    description: "Where the host stands with its owner: linked (to an active user), no_identity, unlinked (an identity that matches nobody), ambiguous, owner_deactivated or user_deleted",
};

query_params!(
    /// The host lists' parameters (`host_query`). The count and a label's hosts take the
    /// same (the count validates paging and ordering, then ignores them).
    HostListParams = [PAGE, PER_PAGE, ORDER_KEY, ORDER_DIRECTION, QUERY, IDP_USERNAME, IDP_GROUP, IDP_DEPARTMENT, IDP_CONNECTION, IDP_ACTIVE, IDP_FILTER, LINK_STATE]
);

/// What `DateTime::parse_from_rfc3339` takes, as a pattern: RFC 3339 with `T`, `t` or a
/// space between date and time, real calendar dates (29 February in leap years only) and
/// a leap second.
pub const RFC3339_PATTERN: &str = concat!(
    "^([0-9]{4}-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)",
    "|([0-9]{2}(0[48]|[2468][048]|[13579][26])|([02468][048]|[13579][26])00)-02-29)",
    "[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
);

fn mapping_schema(sources: &[&str], source_required: bool) -> ObjectBuilder {
    let source = if source_required { word(sources) } else { or_null(word(sources)) };
    object(
        vec![
            ("email", text(NAME_MAX_BYTES, TextRule::OneWord).into(), true),
            ("source", source.into(), source_required),
        ],
        false,
    )
}

fn host_input_schema() -> Schema {
    let mut fields: Vec<(&str, RefOr<Schema>, bool)> = HOST_TEXT_FIELDS
        .iter()
        .map(|f| {
            let t = if f.required {
                text(NAME_MAX_BYTES, TextRule::NotBlank)
            } else {
                or_null(text(NAME_MAX_BYTES, TextRule::NoNul))
            };
            (f.name, t.into(), f.required)
        })
        .collect();
    // `format` alone is an annotation in JSON Schema 2020-12: the pattern is what binds.
    let seen_time = ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .pattern(Some(RFC3339_PATTERN));
    fields.push(("seen_time", or_null(seen_time).into(), false));
    let mut mappings = array_of(mapping_schema(HOST_SOURCES, true), None, None).build();
    mappings.schema_type = SchemaType::from_iter([Type::Array, Type::Null]);
    fields.push(("device_mapping", Schema::Array(mappings).into(), false));
    object(fields, false)
        .description(Some("A host; fields it does not name are ignored. Text is trimmed."))
        .build()
        .into()
}

built_schema!(
    /// The body of `POST /hosts` (and each item of a batch that is applied).
    HostInputSchema => host_input_schema
);
built_schema!(
    /// The body of `POST /hosts/batch`.
    BatchSchema => || {
        let items = any().description(Some("A host as POST /hosts takes it; one that is not valid is rejected alone, with its reasons, in `rejected`"));
        object(vec![("hosts", array_of(items, None, Some(MAX_BATCH)).into(), true)], false).build().into()
    }
);
built_schema!(
    /// The body of `PUT .../device_mapping`.
    MappingSchema => || mapping_schema(PUT_SOURCES, false).build().into()
);

#[derive(Debug, Serialize, ToSchema)]
pub struct EmailBody {
    pub email: String,
    /// mdm_idp_accounts, idp, custom or google_chrome_profiles.
    pub source: String,
}

/// The end user of a host, from the IdP (Fleet's `end_users` entry).
#[derive(Debug, Serialize, ToSchema)]
pub struct EndUserBody {
    pub idp_id: String,
    pub idp_username: String,
    pub idp_full_name: String,
    pub idp_groups: Vec<String>,
    pub idp_department: String,
    /// When the IdP last changed this user; null when the host has no IdP user.
    pub idp_info_updated_at: Option<String>,
    pub other_emails: Vec<EmailBody>,
    /// False when the IdP deactivated the user; null when the host has no IdP user.
    pub idp_active: Option<bool>,
    /// The name of the IdP connection the user comes from; null when the host has no IdP user.
    pub idp_connection: Option<String>,
}

/// How the host stands with its end user: linked, unlinked, ambiguous, user_deleted or
/// no_identity, with the identity used and, when ambiguous, the candidates' SCIM ids.
#[derive(Debug, Serialize, ToSchema)]
pub struct IdpLinkBody {
    pub state: String,
    pub identity: Option<String>,
    pub candidates: Vec<String>,
    pub detail: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HostBody {
    pub id: i64,
    pub uuid: String,
    pub hardware_serial: String,
    pub hostname: String,
    pub computer_name: String,
    pub display_name: String,
    pub platform: String,
    pub os_version: String,
    pub hardware_model: String,
    pub created_at: String,
    pub updated_at: String,
    pub seen_time: Option<String>,
    pub end_users: Vec<EndUserBody>,
    pub idp_link: IdpLinkBody,
    /// Host details only: the labels the host belongs to now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<HostLabelBody>>,
}

/// A label a host belongs to, in host details.
#[derive(Debug, Serialize, ToSchema)]
pub struct HostLabelBody {
    pub id: i64,
    pub name: String,
    /// `regular`, or `automatic` for a label an automatic source keeps.
    pub label_type: String,
    /// Always `dynamic`.
    pub label_membership_type: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HostResponse {
    pub host: HostBody,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HostListResponse {
    pub hosts: Vec<HostBody>,
}

/// An empty object, as Fleet answers a deletion.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedResponse {}

#[derive(Debug, Serialize, ToSchema)]
pub struct CountResponse {
    pub count: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceMappingResponse {
    pub host_id: i64,
    pub device_mapping: Vec<EmailBody>,
    pub idp_link: IdpLinkBody,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OwnershipBody {
    pub idp_id: String,
    pub idp_username: String,
    pub linked_at: String,
    pub link_cause: String,
    pub unlinked_at: Option<String>,
    pub unlink_cause: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryResponse {
    pub host_id: i64,
    pub history: Vec<OwnershipBody>,
}

pub use crate::errors::FieldError;

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchHostResult {
    /// The position of the host in the request.
    pub index: usize,
    pub uuid: String,
    pub id: i64,
    /// created or updated
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchRejection {
    pub index: usize,
    pub uuid: Option<String>,
    pub errors: Vec<FieldError>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResponse {
    pub created: usize,
    pub updated: usize,
    pub hosts: Vec<BatchHostResult>,
    pub rejected: Vec<BatchRejection>,
}

fn link_detail(state: LinkState) -> &'static str {
    match state {
        LinkState::Linked => "Linked to the IdP user with this username or email.",
        LinkState::Unlinked => "No IdP user has this username or email yet; the host will be linked when one arrives.",
        LinkState::Ambiguous => "Several IdP users have this email; the host is linked to none until only one does.",
        LinkState::UserDeleted => "The host's IdP user was deleted in the IdP; no one has been linked since.",
        LinkState::NoIdentity => "The host has no IdP username (idp) nor enrollment account (mdm_idp_accounts).",
    }
}

impl From<&DeviceMapping> for EmailBody {
    fn from(m: &DeviceMapping) -> Self {
        EmailBody { email: m.email.clone(), source: m.source.as_str().to_string() }
    }
}

fn idp_link(host: &Host) -> IdpLinkBody {
    IdpLinkBody {
        state: host.link_state.as_str().to_string(),
        identity: host.identity().map(str::to_string),
        candidates: host.candidates.clone(),
        detail: link_detail(host.link_state).to_string(),
    }
}

/// The emails shown beside the IdP user: every mapping except the one that is the
/// host's identity.
fn other_emails(host: &Host) -> Vec<EmailBody> {
    let identity_source = if host.mappings.iter().any(|m| m.source == MappingSource::Idp) {
        MappingSource::Idp
    } else {
        MappingSource::MdmIdpAccounts
    };
    let mut seen_identity = false;
    host.mappings
        .iter()
        .filter(|m| {
            if m.source == identity_source && !seen_identity {
                seen_identity = true;
                return false;
            }
            m.source != MappingSource::Idp
        })
        .map(EmailBody::from)
        .collect()
}

impl From<&Host> for HostBody {
    fn from(host: &Host) -> Self {
        let other = other_emails(host);
        let end_users = match &host.end_user {
            Some(u) => vec![EndUserBody {
                idp_id: u.idp_id.clone(),
                idp_username: u.idp_username.clone(),
                idp_full_name: u.idp_full_name.clone(),
                idp_groups: u.idp_groups.clone(),
                idp_department: u.idp_department.clone().unwrap_or_default(),
                idp_info_updated_at: Some(rfc3339(u.idp_info_updated_at)),
                other_emails: other,
                idp_active: Some(u.idp_active),
                idp_connection: Some(u.idp_connection.clone()),
            }],
            None if !other.is_empty() => vec![EndUserBody {
                idp_id: String::new(),
                idp_username: String::new(),
                idp_full_name: String::new(),
                idp_groups: Vec::new(),
                idp_department: String::new(),
                idp_info_updated_at: None,
                other_emails: other,
                idp_active: None,
                idp_connection: None,
            }],
            None => Vec::new(),
        };
        HostBody {
            id: host.id,
            uuid: host.uuid.clone(),
            hardware_serial: host.hardware_serial.clone(),
            hostname: host.hostname.clone(),
            computer_name: host.computer_name.clone(),
            display_name: host.display_name().to_string(),
            platform: host.platform.clone(),
            os_version: host.os_version.clone(),
            hardware_model: host.hardware_model.clone(),
            created_at: rfc3339(host.created_at),
            updated_at: rfc3339(host.updated_at),
            seen_time: host.seen_time.map(rfc3339),
            end_users,
            idp_link: idp_link(host),
            labels: None,
        }
    }
}

/// Validates one host of a request body; errors are named with `prefix` (e.g.
/// `hosts[3].`).
pub fn parse_host(value: &Value, prefix: &str, v: &mut Validation) -> Option<HostInput> {
    let Some(obj) = value.as_object() else {
        let name = prefix.trim_end_matches('.');
        v.fail(if name.is_empty() { "host" } else { name }, "must be an object");
        return None;
    };
    let before = v.errors().len();
    let mut text = |field: &HostText| -> String {
        let (name, required) = (field.name, field.required);
        match obj.get(name) {
            None | Some(Value::Null) if required => {
                v.fail(format!("{prefix}{name}"), "is required");
                String::new()
            }
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) if s.len() > NAME_MAX_BYTES => {
                v.too_long(format!("{prefix}{name}"), NAME_MAX_BYTES);
                String::new()
            }
            Some(Value::String(s)) if required && s.trim().is_empty() => {
                v.fail(format!("{prefix}{name}"), "must not be empty");
                String::new()
            }
            Some(Value::String(s)) if s.contains('\0') => {
                v.fail(format!("{prefix}{name}"), "must not contain NUL characters");
                String::new()
            }
            Some(Value::String(s)) => s.trim().to_string(),
            Some(_) => {
                v.fail(format!("{prefix}{name}"), "must be a string");
                String::new()
            }
        }
    };
    let mut input = HostInput {
        uuid: text(&UUID),
        hardware_serial: text(&HARDWARE_SERIAL),
        hostname: text(&HOSTNAME),
        computer_name: text(&COMPUTER_NAME),
        platform: text(&PLATFORM),
        os_version: text(&OS_VERSION),
        hardware_model: text(&HARDWARE_MODEL),
        seen_time: None,
        device_mapping: None,
    };
    match obj.get("seen_time") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => match DateTime::parse_from_rfc3339(s) {
            Ok(t) => input.seen_time = Some(t.with_timezone(&Utc)),
            Err(_) => v.fail(format!("{prefix}seen_time"), "must be an RFC 3339 date-time"),
        },
        Some(_) => v.fail(format!("{prefix}seen_time"), "must be an RFC 3339 date-time string"),
    }
    match obj.get("device_mapping") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            let mut mappings = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let name = format!("{prefix}device_mapping[{i}]");
                if let Some(m) = parse_mapping(item, &name, v, true) {
                    mappings.push(m);
                }
            }
            input.device_mapping = Some(mappings);
        }
        Some(_) => v.fail(format!("{prefix}device_mapping"), "must be a list of {email, source}"),
    }
    (v.errors().len() == before).then_some(input)
}

/// `prefix.name`, or `name` alone at the top of a body.
fn field(prefix: &str, name: &str) -> String {
    if prefix.is_empty() { name.to_string() } else { format!("{prefix}.{name}") }
}

/// Validates `{"email", "source"}`; `any_source` allows every source (host input),
/// otherwise only `custom` and `idp` (the device-mapping endpoint).
fn parse_mapping(value: &Value, name: &str, v: &mut Validation, any_source: bool) -> Option<DeviceMapping> {
    let Some(obj) = value.as_object() else {
        v.fail(if name.is_empty() { "body" } else { name }, "must be an object with email and source");
        return None;
    };
    let email = match obj.get("email") {
        Some(Value::String(s)) if s.len() > NAME_MAX_BYTES => {
            v.too_long(field(name, "email"), NAME_MAX_BYTES);
            None
        }
        Some(Value::String(s)) if s.trim().is_empty() => {
            v.fail(field(name, "email"), "must not be empty");
            None
        }
        Some(Value::String(s)) if s.contains('\0') || s.trim().contains(char::is_whitespace) => {
            v.fail(field(name, "email"), "must not contain spaces or NUL characters");
            None
        }
        Some(Value::String(s)) => Some(s.trim().to_string()),
        None | Some(Value::Null) => {
            v.fail(field(name, "email"), "is required");
            None
        }
        Some(_) => {
            v.fail(field(name, "email"), "must be a string");
            None
        }
    };
    let allowed = if any_source { HOST_SOURCES } else { PUT_SOURCES };
    let source = match obj.get("source") {
        Some(Value::String(s)) => {
            match allowed.contains(&s.as_str()).then(|| s.parse::<MappingSource>().ok()).flatten() {
                Some(src) => Some(src),
                None => {
                    v.fail(field(name, "source"), format!("must be {}", or_list(allowed)));
                    None
                }
            }
        }
        None | Some(Value::Null) if !any_source => Some(MappingSource::Custom),
        _ => {
            v.fail(field(name, "source"), format!("must be {}", or_list(allowed)));
            None
        }
    };
    Some(DeviceMapping { email: email?, source: source? })
}

fn path_id(path: Result<Path<String>, PathRejection>) -> ApiResult<i64> {
    match path {
        Ok(Path(raw)) => host_id(&raw),
        Err(_) => Err(ApiError::new(StatusCode::NOT_FOUND, "Resource Not Found")),
    }
}

/// `POST /api/v1/fleet/hosts`: creates or updates a host by uuid.
#[utoipa::path(post, path = "/api/v1/fleet/hosts", tag = "hosts",
    request_body(content = inline(HostInputSchema)),
    responses((status = 201, body = HostResponse, description = "Created"), (status = 200, body = HostResponse, description = "Updated"),
               (status = 422, body = crate::errors::ErrorBody)))]
pub async fn upsert(
    State(state): State<AppState>,
    op: Operator,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let actor = op.require_write()?;
    let value = json_body(&headers, body, MAX_BODY).await?;
    let mut v = Validation::default();
    let input = parse_host(&value, "", &mut v);
    v.into_result()?;
    let Some(input) = input else {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed"));
    };
    let outcome = state.hosts().upsert_hosts(vec![input], &actor).await?;
    let (status, id) = match outcome.first() {
        Some(UpsertOutcome::Created(id)) => (StatusCode::CREATED, *id),
        Some(UpsertOutcome::Updated(id)) => (StatusCode::OK, *id),
        None => return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")),
    };
    let host = state.hosts().get_host(id).await?;
    Ok((status, details(&state, &host).await?).into_response())
}

/// `POST /api/v1/fleet/hosts/batch`: up to 10,000 hosts in one transaction; invalid
/// ones are rejected one by one with their reasons, the rest applied.
#[utoipa::path(post, path = "/api/v1/fleet/hosts/batch", tag = "hosts",
    request_body(content = inline(BatchSchema)),
    responses((status = 200, body = BatchResponse), (status = 422, body = crate::errors::ErrorBody)))]
pub async fn batch(
    State(state): State<AppState>,
    op: Operator,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<BatchResponse>> {
    let actor = op.require_write()?;
    let value = json_body(&headers, body, MAX_BODY).await?;
    let Some(items) = value.get("hosts").and_then(Value::as_array) else {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed")
            .with_error("hosts", "must be a list of hosts"));
    };
    if items.len() > MAX_BATCH {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed")
            .with_error("hosts", format!("at most {MAX_BATCH} hosts per request")));
    }
    let mut accepted = Vec::new();
    let mut indexes = Vec::new();
    let mut rejected = Vec::new();
    let mut seen = std::collections::HashSet::new();
    // A value over its length limit is refused with the whole request, as on POST /hosts
    // (nothing is written); other invalid hosts are rejected alone.
    let mut over_limit = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let mut v = Validation::default();
        let parsed = parse_host(item, "", &mut v);
        over_limit.extend(v.over_limit().iter().map(|(name, reason)| (format!("hosts[{i}].{name}"), reason.clone())));
        if let Some(input) = &parsed
            && !seen.insert(input.uuid.clone())
        {
            v.fail("uuid", "appears earlier in the same batch");
        }
        match parsed {
            Some(input) if v.is_ok() => {
                accepted.push(input);
                indexes.push(i);
            }
            _ => rejected.push(BatchRejection {
                index: i,
                uuid: item.get("uuid").and_then(Value::as_str).map(str::to_string),
                errors: v.errors().iter().map(|(n, r)| FieldError { name: n.clone(), reason: r.clone() }).collect(),
            }),
        }
    }
    if !over_limit.is_empty() {
        let mut e = ApiError::new(StatusCode::BAD_REQUEST, super::extract::VALUE_TOO_LONG);
        e.errors = over_limit;
        return Err(e);
    }
    let uuids: Vec<String> = accepted.iter().map(|h| h.uuid.clone()).collect();
    let outcomes = if accepted.is_empty() { Vec::new() } else { state.hosts().upsert_hosts(accepted, &actor).await? };
    let mut response = BatchResponse { created: 0, updated: 0, hosts: Vec::with_capacity(outcomes.len()), rejected };
    for ((outcome, index), uuid) in outcomes.into_iter().zip(indexes).zip(uuids) {
        let (id, status) = match outcome {
            UpsertOutcome::Created(id) => {
                response.created += 1;
                (id, "created")
            }
            UpsertOutcome::Updated(id) => {
                response.updated += 1;
                (id, "updated")
            }
        };
        response.hosts.push(BatchHostResult { index, uuid, id, status: status.into() });
    }
    Ok(Json(response))
}

/// An `idp_filter`: a SCIM filter over Users, or the parser's words with the character
/// offset of the problem.
pub fn parse_idp_filter(text: &str) -> Result<Filter, String> {
    parse_translatable(ResourceKind::User, text).map_err(|e| e.detail)
}

/// Parses the host list's query parameters (Fleet's names), naming any bad one.
pub fn host_query(uri: &Uri) -> ApiResult<HostQuery> {
    host_query_of(&QueryParams::parse(uri.query()))
}

/// `host_query` on parameters already read.
pub fn host_query_of(params: &QueryParams) -> ApiResult<HostQuery> {
    let mut v = Validation::default();
    let page = v.whole_number(params, &PAGE);
    let per_page = v.whole_number(params, &PER_PAGE);
    let text = |p: &QueryParam| params.get(p.name).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    let order_key = match v.one_of(params, &ORDER_KEY) {
        None => HostOrderKey::Id,
        Some(k) => HostOrderKey::parse(k).unwrap_or_else(|| {
            v.fail(ORDER_KEY.name, format!("must be {}", or_list(ORDER_KEYS)));
            HostOrderKey::Id
        }),
    };
    let descending = v.one_of(params, &ORDER_DIRECTION) == Some("desc");
    let idp_active = v.flag(params, &IDP_ACTIVE);
    let link_state = v.one_of(params, &LINK_STATE).and_then(OwnerState::parse);
    let idp_filter = text(&IDP_FILTER).and_then(|t| match parse_idp_filter(&t) {
        Ok(filter) => Some(filter),
        Err(detail) => {
            v.fail(IDP_FILTER.name, detail);
            None
        }
    });
    v.into_result()?;
    Ok(HostQuery {
        page,
        per_page,
        order_key,
        descending,
        query: text(&QUERY),
        idp_username: text(&IDP_USERNAME),
        idp_group: text(&IDP_GROUP),
        idp_department: text(&IDP_DEPARTMENT),
        idp_connection: text(&IDP_CONNECTION),
        idp_active,
        criteria: None,
        idp_filter,
        link_state,
    })
}

#[utoipa::path(get, path = "/api/v1/fleet/hosts", tag = "hosts", operation_id = "list_hosts",
    params(HostListParams),
    responses((status = 200, body = HostListResponse), (status = 422, body = crate::errors::ErrorBody)))]
pub async fn list(State(state): State<AppState>, _op: Operator, uri: Uri) -> ApiResult<Json<HostListResponse>> {
    let query = host_query(&uri)?;
    let hosts = state.hosts().list_hosts(&query).await?;
    Ok(Json(HostListResponse { hosts: hosts.iter().map(HostBody::from).collect() }))
}

#[utoipa::path(get, path = "/api/v1/fleet/hosts/count", tag = "hosts",
    params(HostListParams),
    responses((status = 200, body = CountResponse), (status = 422, body = crate::errors::ErrorBody)))]
pub async fn count(State(state): State<AppState>, _op: Operator, uri: Uri) -> ApiResult<Json<CountResponse>> {
    let query = host_query(&uri)?;
    Ok(Json(CountResponse { count: state.hosts().count_hosts(&query).await? }))
}

#[utoipa::path(get, path = "/api/v1/fleet/hosts/{id}", tag = "hosts", params(("id" = i64, Path, minimum = 1)),
    responses((status = 200, body = HostResponse), (status = 404, body = crate::errors::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    _op: Operator,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<HostResponse>> {
    let host = state.hosts().get_host(path_id(id)?).await?;
    details(&state, &host).await
}

/// Host details: the host with the labels it belongs to now.
async fn details(state: &AppState, host: &Host) -> ApiResult<Json<HostResponse>> {
    let mut body = HostBody::from(host);
    let labels = state.labels().labels_of_host(host.id).await?;
    body.labels = Some(
        labels
            .into_iter()
            .map(|l| HostLabelBody {
                id: l.id,
                name: l.name,
                label_type: if l.automatic { "automatic" } else { "regular" }.into(),
                label_membership_type: "dynamic".into(),
            })
            .collect(),
    );
    Ok(Json(HostResponse { host: body }))
}

#[utoipa::path(get, path = "/api/v1/fleet/hosts/identifier/{identifier}", tag = "hosts",
    params(("identifier" = String, Path, description = "uuid, hardware serial or hostname")),
    responses((status = 200, body = HostResponse), (status = 404, body = crate::errors::ErrorBody)))]
pub async fn get_by_identifier(
    State(state): State<AppState>,
    _op: Operator,
    identifier: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<HostResponse>> {
    let Ok(Path(identifier)) = identifier else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "Resource Not Found"));
    };
    let host = state.hosts().find_host(&identifier).await?;
    details(&state, &host).await
}

#[utoipa::path(delete, path = "/api/v1/fleet/hosts/{id}", tag = "hosts", params(("id" = i64, Path, minimum = 1)),
    responses((status = 200, body = DeletedResponse), (status = 404, body = crate::errors::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    op: Operator,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<DeletedResponse>> {
    let actor = op.require_write()?;
    state.hosts().delete_host(path_id(id)?, &actor).await?;
    Ok(Json(DeletedResponse {}))
}

fn mapping_response(host: &Host) -> DeviceMappingResponse {
    DeviceMappingResponse {
        host_id: host.id,
        device_mapping: host.mappings.iter().map(EmailBody::from).collect(),
        idp_link: idp_link(host),
    }
}

#[utoipa::path(get, path = "/api/v1/fleet/hosts/{id}/device_mapping", tag = "hosts", params(("id" = i64, Path, minimum = 1)),
    responses((status = 200, body = DeviceMappingResponse), (status = 404, body = crate::errors::ErrorBody)))]
pub async fn get_mapping(
    State(state): State<AppState>,
    _op: Operator,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<DeviceMappingResponse>> {
    let host = state.hosts().get_host(path_id(id)?).await?;
    Ok(Json(mapping_response(&host)))
}

/// `PUT .../device_mapping` with `{"email", "source": "custom" | "idp"}`. An `idp`
/// mapping that matches no IdP user is kept, and the answer's `idp_link` says so.
#[utoipa::path(put, path = "/api/v1/fleet/hosts/{id}/device_mapping", tag = "hosts", params(("id" = i64, Path, minimum = 1)),
    request_body(content = inline(MappingSchema)),
    responses((status = 200, body = DeviceMappingResponse), (status = 404, body = crate::errors::ErrorBody),
               (status = 422, body = crate::errors::ErrorBody)))]
pub async fn put_mapping(
    State(state): State<AppState>,
    op: Operator,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<DeviceMappingResponse>> {
    let actor = op.require_write()?;
    let id = path_id(id)?;
    let value = json_body(&headers, body, MAX_MAPPING_BODY).await?;
    let mut v = Validation::default();
    let mapping = parse_mapping(&value, "", &mut v, false);
    v.into_result()?;
    let Some(mapping) = mapping else {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed"));
    };
    let host = state.hosts().set_host_mapping(id, mapping, &actor).await?;
    Ok(Json(mapping_response(&host)))
}

#[utoipa::path(delete, path = "/api/v1/fleet/hosts/{id}/device_mapping/idp", tag = "hosts", params(("id" = i64, Path, minimum = 1)),
    responses((status = 204, description = "The idp mapping is removed; the host falls back to its enrollment account"),
               (status = 404, body = crate::errors::ErrorBody)))]
pub async fn delete_idp_mapping(
    State(state): State<AppState>,
    op: Operator,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<StatusCode> {
    let actor = op.require_write()?;
    state.hosts().delete_idp_mapping(path_id(id)?, &actor).await?;
    Ok(StatusCode::NO_CONTENT)
}

impl From<&OwnershipEntry> for OwnershipBody {
    fn from(e: &OwnershipEntry) -> Self {
        OwnershipBody {
            idp_id: e.idp_id.clone(),
            idp_username: e.idp_username.clone(),
            linked_at: rfc3339(e.linked_at),
            link_cause: e.link_cause.clone(),
            unlinked_at: e.unlinked_at.map(rfc3339),
            unlink_cause: e.unlink_cause.clone(),
        }
    }
}

#[utoipa::path(get, path = "/api/v1/fleet/hosts/{id}/end_user_history", tag = "hosts", params(("id" = i64, Path, minimum = 1)),
    responses((status = 200, body = HistoryResponse), (status = 404, body = crate::errors::ErrorBody)))]
pub async fn history(
    State(state): State<AppState>,
    _op: Operator,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<HistoryResponse>> {
    let id = path_id(id)?;
    let entries = state.hosts().host_history(id).await?;
    Ok(Json(HistoryResponse { host_id: id, history: entries.iter().map(OwnershipBody::from).collect() }))
}
