//! The JSON API (Fleet-compatible shapes): its one error → response mapping and routes.

pub mod activities;
pub mod connections;
mod error;
pub mod extract;
pub mod hosts;
pub mod label_sources;
pub mod labels;
pub mod openapi;
pub mod render;
pub mod schema;
pub mod scim_status;
pub mod webhooks;

use axum::routing::{delete, get, post};

use crate::routes::Routes;
use crate::state::AppState;

pub use error::{ApiError, ApiResult};

/// Times on the JSON API: RFC 3339 in UTC, to the second (as Fleet answers them).
pub(crate) fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
pub use extract::authenticate;

pub use crate::surfaces::{PREFIXES, SCIM_STATUS_ROUTES};

pub fn router() -> Routes<AppState> {
    let mut r = Routes::new().route("/api/openapi.json", get(openapi::document));
    for prefix in PREFIXES {
        r = r
            .route(&format!("{prefix}/scim/details"), get(scim_status::details))
            .route(&format!("{prefix}/scim/requests"), get(scim_status::requests))
            .route(&format!("{prefix}/hosts"), get(hosts::list).post(hosts::upsert))
            .route(&format!("{prefix}/hosts/batch"), post(hosts::batch))
            .route(&format!("{prefix}/hosts/count"), get(hosts::count))
            .route(&format!("{prefix}/hosts/identifier/{{identifier}}"), get(hosts::get_by_identifier))
            .route(&format!("{prefix}/hosts/{{id}}"), get(hosts::get).delete(hosts::delete))
            .route(&format!("{prefix}/hosts/{{id}}/device_mapping"), get(hosts::get_mapping).put(hosts::put_mapping))
            .route(&format!("{prefix}/hosts/{{id}}/device_mapping/idp"), delete(hosts::delete_idp_mapping))
            .route(&format!("{prefix}/hosts/{{id}}/end_user_history"), get(hosts::history))
            .route(&format!("{prefix}/hosts/{{id}}/render"), post(render::host))
            .route(&format!("{prefix}/labels"), get(labels::list).post(labels::create))
            .route(&format!("{prefix}/labels/automatic"), get(label_sources::list).post(label_sources::create))
            .route(&format!("{prefix}/labels/automatic/{{id}}"), delete(label_sources::delete))
            .route(&format!("{prefix}/labels/{{id}}"), get(labels::get).patch(labels::patch).delete(labels::delete))
            .route(&format!("{prefix}/labels/{{id}}/hosts"), get(labels::hosts))
            .route(&format!("{prefix}/labels/{{id}}/render"), post(labels::render_all))
            .route(&format!("{prefix}/webhooks/deliveries"), get(webhooks::deliveries))
            .route(&format!("{prefix}/activities"), get(activities::list))
            .route(&format!("{prefix}/idp/connections"), get(connections::list).post(connections::create))
            .route(
                &format!("{prefix}/idp/connections/{{id}}"),
                get(connections::get).patch(connections::patch).delete(connections::delete),
            )
            .route(&format!("{prefix}/idp/connections/{{id}}/tokens"), post(connections::create_token))
            .route(&format!("{prefix}/idp/connections/{{id}}/tokens/{{token_id}}"), delete(connections::revoke_token))
            .route(&format!("{prefix}/idp/connections/{{id}}/requests"), get(connections::requests))
            .route(&format!("{prefix}/idp/connections/{{id}}/sync"), post(connections::sync))
            .route(&format!("{prefix}/idp/connections/{{id}}/runs"), get(connections::runs));
    }
    r
}
