//! The OpenAPI 3 document of the JSON API, generated from the handlers' own types and
//! annotations so that it cannot drift from what they answer. SCIM describes itself at
//! `/ServiceProviderConfig`, `/Schemas` and `/ResourceTypes`.

use axum::Json;
use utoipa::OpenApi;

use super::{activities, hosts, labels, render, webhooks};

#[derive(OpenApi)]
#[openapi(
    info(title = "Custodian JSON API", description = "Which employee each computer belongs to (Fleet-compatible shapes)."),
    paths(
        hosts::upsert, hosts::batch, hosts::list, hosts::count, hosts::get, hosts::get_by_identifier, hosts::delete,
        hosts::get_mapping, hosts::put_mapping, hosts::delete_idp_mapping, hosts::history, activities::list,
        render::host, labels::create, labels::list, labels::get, labels::patch, labels::delete, labels::hosts,
        labels::render_all, webhooks::deliveries,
    ),
    components(schemas(super::ErrorBody)),
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
/// 401 everywhere, 403 on writes, 400 (malformed JSON) where there is a body.
struct CommonErrors;

impl utoipa::Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
                )
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            let writes = [&mut item.post, &mut item.put, &mut item.delete, &mut item.patch];
            for op in writes.into_iter().flatten() {
                op.responses
                    .responses
                    .entry("403".into())
                    .or_insert_with(|| error("The token's role cannot write").into());
                if op.request_body.is_some() {
                    op.responses.responses.entry("400".into()).or_insert_with(|| error("Malformed JSON").into());
                }
            }
            let all = [&mut item.get, &mut item.post, &mut item.put, &mut item.delete, &mut item.patch];
            for op in all.into_iter().flatten() {
                op.responses.responses.entry("401".into()).or_insert_with(|| error("No or bad API token").into());
            }
        }
    }
}

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
