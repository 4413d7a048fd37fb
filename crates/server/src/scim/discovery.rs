//! `/ServiceProviderConfig`, `/Schemas` and `/ResourceTypes`, rendered from the same
//! schema model that validates and serialises resources, so they cannot disagree.

use axum::extract::rejection::PathRejection;
use axum::extract::{NestedPath, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use custodian_scim::ScimError;
use custodian_scim::schema::{ALL_KINDS, SERVICE_PROVIDER_CONFIG_SCHEMA, all_schemas};
use serde_json::json;

use super::resources::list_response;
use super::{MAX_BULK_OPERATIONS, MAX_PAYLOAD_BYTES, MAX_RESULTS, ScimResult, base_url, scim_json};
use crate::state::AppState;

pub async fn service_provider_config(
    State(state): State<AppState>,
    nested: NestedPath,
    headers: HeaderMap,
) -> Response {
    let base = base_url(&state, &headers, &nested);
    // Everything advertised here is implemented: IdPs such as authentik act on it.
    let body = json!({
        "schemas": [SERVICE_PROVIDER_CONFIG_SCHEMA],
        "documentationUri": "https://github.com/custodian/custodian#readme",
        "patch": {"supported": true},
        "bulk": {"supported": true, "maxOperations": MAX_BULK_OPERATIONS, "maxPayloadSize": MAX_PAYLOAD_BYTES},
        "filter": {"supported": true, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "Authentication with a Custodian API token of a maintainer or admin, sent as 'Authorization: Bearer <token>'.",
            "specUri": "https://www.rfc-editor.org/info/rfc6750",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base}/ServiceProviderConfig"),
        },
    });
    scim_json(StatusCode::OK, &body)
}

pub async fn schemas(State(state): State<AppState>, nested: NestedPath, headers: HeaderMap) -> Response {
    let base = base_url(&state, &headers, &nested);
    let all: Vec<_> = all_schemas().iter().map(|s| s.to_json(&format!("{base}/Schemas/{}", s.id))).collect();
    scim_json(StatusCode::OK, &list_response(all.len() as u64, 1, all))
}

pub async fn schema(
    State(state): State<AppState>,
    nested: NestedPath,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> ScimResult<Response> {
    let base = base_url(&state, &headers, &nested);
    let id = id.map(|Path(id)| id).unwrap_or_default();
    let schema = all_schemas()
        .iter()
        .find(|s| s.id.eq_ignore_ascii_case(&id))
        .ok_or_else(|| ScimError::not_found("No such schema"))?;
    Ok(scim_json(StatusCode::OK, &schema.to_json(&format!("{base}/Schemas/{}", schema.id))))
}

pub async fn resource_types(State(state): State<AppState>, nested: NestedPath, headers: HeaderMap) -> Response {
    let base = base_url(&state, &headers, &nested);
    let all: Vec<_> =
        ALL_KINDS.iter().map(|k| k.resource_type_json(&format!("{base}/ResourceTypes/{}", k.name()))).collect();
    scim_json(StatusCode::OK, &list_response(all.len() as u64, 1, all))
}

pub async fn resource_type(
    State(state): State<AppState>,
    nested: NestedPath,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> ScimResult<Response> {
    let base = base_url(&state, &headers, &nested);
    let id = id.map(|Path(id)| id).unwrap_or_default();
    let kind = ALL_KINDS
        .iter()
        .find(|k| k.name().eq_ignore_ascii_case(&id))
        .ok_or_else(|| ScimError::not_found("No such resource type"))?;
    Ok(scim_json(StatusCode::OK, &kind.resource_type_json(&format!("{base}/ResourceTypes/{}", kind.name()))))
}
