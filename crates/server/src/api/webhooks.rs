//! `GET /webhooks/deliveries`: the offboarding events and where each delivery stands.

use axum::Json;
use axum::extract::State;
use axum::http::Uri;
use custodian_domain::webhooks::{DeliveryState, WebhookDelivery};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::error::ApiResult;
use super::extract::{Operator, PAGE, QueryKind, QueryParam, Validation};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryBody {
    pub id: i64,
    /// user_deactivated, user_deleted or user_reactivated
    pub event: String,
    /// pending, delivered or failing
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: String,
    pub last_error: Option<String>,
    pub last_status: Option<i64>,
    pub delivered_at: Option<String>,
    pub created_at: String,
    /// The body POSTed to the webhook: {event, occurred_at, user, hosts}.
    #[schema(value_type = Object)]
    pub payload: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveriesResponse {
    pub deliveries: Vec<DeliveryBody>,
    /// Whether a webhook URL is configured; without one events are recorded, not sent.
    pub webhook_configured: bool,
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

impl From<WebhookDelivery> for DeliveryBody {
    fn from(d: WebhookDelivery) -> Self {
        DeliveryBody {
            id: d.id,
            event: d.event,
            state: d.state.as_str().into(),
            attempts: d.attempts,
            next_attempt_at: rfc3339(d.next_attempt_at),
            last_error: d.last_error,
            last_status: d.last_status,
            delivered_at: d.delivered_at.map(rfc3339),
            created_at: rfc3339(d.created_at),
            payload: serde_json::from_str(&d.payload).unwrap_or(Value::Null),
        }
    }
}

/// The most deliveries a page holds.
pub const MAX_PER_PAGE: u64 = 1000;
const PER_PAGE: QueryParam = QueryParam {
    name: "per_page",
    kind: QueryKind::WholeNumber { default: 100, max: MAX_PER_PAGE },
    description: "Deliveries per page",
};
const STATES: &[&str] = &["pending", "delivered", "failing"];
const STATE: QueryParam =
    QueryParam { name: "state", kind: QueryKind::OneOf(STATES), description: "Only the deliveries in this state" };
crate::query_params!(DeliveryParams = [STATE, PAGE, PER_PAGE]);

/// Newest first; `state` filters, `page` and `per_page` page.
#[utoipa::path(get, path = "/api/v1/fleet/webhooks/deliveries", tag = "webhooks", operation_id = "list_webhook_deliveries",
    params(DeliveryParams),
    responses((status = 200, body = DeliveriesResponse), (status = 403, body = crate::errors::ErrorBody),
               (status = 422, body = crate::errors::ErrorBody)))]
pub async fn deliveries(State(state): State<AppState>, op: Operator, uri: Uri) -> ApiResult<Json<DeliveriesResponse>> {
    // Payloads carry personal data: maintainers and admins only.
    op.require_write()?;
    let params = crate::query::QueryParams::parse(uri.query());
    let mut v = Validation::default();
    let page = v.whole_number(&params, &PAGE);
    let per_page = v.whole_number(&params, &PER_PAGE);
    let filter = v.one_of(&params, &STATE).and_then(|s| {
        DeliveryState::parse(s).or_else(|| {
            v.fail(STATE.name, format!("must be {}", super::extract::or_list(STATES)));
            None
        })
    });
    v.into_result()?;
    let items = state.webhooks().list_webhook_deliveries(filter, page.saturating_mul(per_page), per_page).await?;
    Ok(Json(DeliveriesResponse {
        deliveries: items.into_iter().map(DeliveryBody::from).collect(),
        webhook_configured: state.config.offboarding_webhook.is_some(),
    }))
}
