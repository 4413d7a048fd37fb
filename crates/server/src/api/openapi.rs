//! The OpenAPI 3 document of the JSON API, generated from the handlers' own types and
//! annotations so that it cannot drift from what they answer. SCIM describes itself at
//! `/ServiceProviderConfig`, `/Schemas` and `/ResourceTypes`.

use axum::Json;
use utoipa::OpenApi;

use super::{activities, connections, hosts, label_sources, labels, render, webhooks};

#[derive(OpenApi)]
#[openapi(
    info(title = "Custodian JSON API", description = "Which employee each computer belongs to (Fleet-compatible shapes). \
        Text limits are in bytes of UTF-8, stated as `x-max-bytes`; `maxLength` gives the same number in characters, \
        which text other than ASCII exceeds in bytes first. A value over its limit is a 400 naming the field."),
    paths(
        hosts::upsert, hosts::batch, hosts::list, hosts::count, hosts::get, hosts::get_by_identifier, hosts::delete,
        hosts::get_mapping, hosts::put_mapping, hosts::delete_idp_mapping, hosts::history, activities::list,
        render::host, labels::create, labels::list, labels::get, labels::patch, labels::delete, labels::hosts,
        labels::render_all, label_sources::create, label_sources::list, label_sources::delete, webhooks::deliveries, connections::list, connections::create, connections::get,
        connections::patch, connections::delete, connections::create_token, connections::revoke_token,
        connections::requests, connections::sync, connections::runs,
    ),
    components(schemas(crate::errors::ErrorBody)),
    modifiers(&BearerAuth, &CommonErrors),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// The errors every operation can answer, added once rather than on every handler:
/// 400 (an unreadable address or query, malformed JSON, a value over its limit), 401,
/// 408, 414, 429 and 503 everywhere, 403 on writes, 413 and 415 where there is a body. Path parameters that are text
/// also say they cannot hold NUL (`errors::refuse_unreadable_target`).
struct CommonErrors;

impl utoipa::Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::ParameterIn;
        use utoipa::openapi::schema::{Schema, SchemaType, Type};
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let error = |description: &str| -> RefOr<utoipa::openapi::Response> {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
                )
                .build()
                .into()
        };
        let uri_too_long = format!(
            "The address (path and query) is longer than the {} bytes accepted",
            crate::limits::MAX_REQUEST_TARGET_BYTES
        );
        for item in openapi.paths.paths.values_mut() {
            let writes = [&mut item.post, &mut item.put, &mut item.delete, &mut item.patch];
            for op in writes.into_iter().flatten() {
                op.responses.responses.entry("403".into()).or_insert_with(|| error("The token's role cannot write"));
            }
            let all = [&mut item.get, &mut item.post, &mut item.put, &mut item.delete, &mut item.patch];
            for op in all.into_iter().flatten() {
                let has_body = op.request_body.is_some();
                let responses = &mut op.responses.responses;
                let bad_request = if has_body {
                    "Malformed JSON (errors[].name is body), a value over its length limit (errors[].name is the \
                     field, nothing is written), or an address or query string that is not UTF-8 or holds NUL once \
                     percent-decoded"
                } else {
                    "An address or query string that is not UTF-8 or holds NUL once percent-decoded"
                };
                responses.entry("400".into()).or_insert_with(|| error(bad_request));
                responses.entry("401".into()).or_insert_with(|| error("No or bad API token"));
                responses.entry("408".into()).or_insert_with(|| error("The request took too long"));
                responses.entry("414".into()).or_insert_with(|| error(&uri_too_long));
                if has_body {
                    responses
                        .entry("413".into())
                        .or_insert_with(|| error("The body is larger than the operation takes"));
                    responses.entry("415".into()).or_insert_with(|| {
                        error("The body is not sent as application/json (errors[].name is Content-Type)")
                    });
                }
                responses
                    .entry("429".into())
                    .or_insert_with(|| error("The token sent too many requests; retry after Retry-After seconds"));
                responses
                    .entry("503".into())
                    .or_insert_with(|| error("The server is busy; retry after Retry-After seconds"));
                for parameter in op.parameters.iter_mut().flatten() {
                    if !matches!(parameter.parameter_in, ParameterIn::Path) {
                        continue;
                    }
                    if let Some(RefOr::T(Schema::Object(o))) = parameter.schema.as_mut()
                        && o.schema_type == SchemaType::Type(Type::String)
                    {
                        o.pattern = Some(super::schema::TextRule::NoNul.pattern());
                    }
                }
            }
        }
    }
}

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
