//! The OpenAPI 3 document of the JSON API, generated from the handlers' own types and
//! annotations so that it cannot drift from what they answer. SCIM describes itself at
//! `/ServiceProviderConfig`, `/Schemas` and `/ResourceTypes`.

use axum::Json;
use utoipa::OpenApi;

use super::{activities, hosts};

#[derive(OpenApi)]
#[openapi(
    info(title = "Custodian JSON API", description = "Which employee each computer belongs to (Fleet-compatible shapes)."),
    paths(
        hosts::upsert, hosts::batch, hosts::list, hosts::count, hosts::get, hosts::get_by_identifier, hosts::delete,
        hosts::get_mapping, hosts::put_mapping, hosts::delete_idp_mapping, hosts::history, activities::list,
    ),
    components(schemas(super::ErrorBody)),
    modifiers(&BearerAuth),
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

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
