//! The audit feed (`GET /api/v1/fleet/activities`), in Fleet's shape.

use axum::Json;
use axum::extract::State;
use axum::http::Uri;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::error::ApiResult;
use super::extract::{Operator, PAGE, QueryKind, QueryParam, Validation};
use crate::query::QueryParams;
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityBody {
    pub id: i64,
    pub created_at: String,
    pub actor_id: Option<i64>,
    pub actor_full_name: String,
    /// linked_host_end_user, unlinked_host_end_user, ambiguous_host_end_user,
    /// edited_host_idp_username, deleted_host_idp_username, deleted_host.
    #[serde(rename = "type")]
    pub kind: String,
    #[schema(value_type = Object)]
    pub details: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PageMeta {
    pub has_next_results: bool,
    pub has_previous_results: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActivitiesResponse {
    pub activities: Vec<ActivityBody>,
    pub meta: PageMeta,
}

/// The most activities a page holds.
pub const MAX_PER_PAGE: u64 = 1000;
const PER_PAGE: QueryParam = QueryParam {
    name: "per_page",
    kind: QueryKind::WholeNumber { default: 20, max: MAX_PER_PAGE },
    description: "Activities per page (0 counts as 1)",
};
crate::query_params!(ActivityParams = [PAGE, PER_PAGE]);

#[utoipa::path(get, path = "/api/v1/fleet/activities", tag = "activities", operation_id = "list_activities",
    params(ActivityParams),
    responses((status = 200, body = ActivitiesResponse), (status = 422, body = crate::errors::ErrorBody)))]
pub async fn list(State(state): State<AppState>, _op: Operator, uri: Uri) -> ApiResult<Json<ActivitiesResponse>> {
    let params = QueryParams::parse(uri.query());
    let mut v = Validation::default();
    let page = v.whole_number(&params, &PAGE);
    let per_page = v.whole_number(&params, &PER_PAGE).max(1);
    v.into_result()?;
    // One more than asked tells whether a next page exists.
    let offset = page.saturating_mul(per_page);
    let query = custodian_domain::hosts::ActivityQuery { offset, limit: per_page + 1, ..Default::default() };
    let mut activities = state.operations().list_activities(&query).await?;
    let has_next = activities.len() as u64 > per_page;
    activities.truncate(per_page as usize);
    Ok(Json(ActivitiesResponse {
        activities: activities
            .into_iter()
            .map(|a| ActivityBody {
                id: a.id,
                created_at: a.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                actor_id: a.actor_id,
                actor_full_name: a.actor_name,
                kind: a.kind,
                details: a.details,
            })
            .collect(),
        meta: PageMeta { has_next_results: has_next, has_previous_results: page > 0 },
    }))
}
