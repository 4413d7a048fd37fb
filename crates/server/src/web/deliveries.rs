//! The offboarding webhook's deliveries (`/webhooks/deliveries`): by state, with the
//! payload, the last status and error, the attempts and the next retry, and "Retry now"
//! for a failing one. Maintainers and admins only: payloads name the people offboarded.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use custodian_domain::webhooks::DeliveryState;
use maud::html;
use serde::Deserialize;

use super::layout::{Nav, csrf, page, pager, when};
use super::session::{CanWrite, Posted, Viewer};
use super::sign_in::Empty;
use super::{WebError, WebResult};
use crate::state::AppState;

const PER_PAGE: u64 = 50;
pub const PATH: &str = "/webhooks/deliveries";

#[derive(Debug, Deserialize, Default)]
pub struct Params {
    #[serde(default)]
    page: u64,
    state: Option<String>,
}

fn state_badge(state: DeliveryState) -> maud::Markup {
    html! {
        @match state {
            DeliveryState::Delivered => span.badge.ok { "delivered" },
            DeliveryState::Pending => span.badge { "pending" },
            DeliveryState::Failing => span.badge.warn { "failing" },
        }
    }
}

pub async fn list(State(state): State<AppState>, viewer: Viewer, Query(p): Query<Params>) -> WebResult<Response> {
    viewer.require_write().map_err(|_| {
        WebError::Forbidden("Deliveries name the people offboarded: maintainers and admins only.".into())
    })?;
    let filter = match p.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            DeliveryState::parse(s)
                .ok_or_else(|| WebError::BadRequest("state must be pending, failing or delivered.".into()))?,
        ),
    };
    let mut items =
        state.webhooks().list_webhook_deliveries(filter, p.page.saturating_mul(PER_PAGE), PER_PAGE + 1).await?;
    let has_next = items.len() as u64 > PER_PAGE;
    items.truncate(PER_PAGE as usize);
    let configured = state.config.offboarding_webhook.is_some();
    let pairs = [("state", filter.map(|s| s.as_str().to_string()).unwrap_or_default())];
    let body = html! {
        @if !configured {
            p.warning id="no-webhook-url" { "No " code { "--offboarding-webhook-url" } " is set: events are recorded here, not sent." }
        }
        form.filters method="get" action=(PATH) id="delivery-filters" {
            label { "State "
                select name="state" id="delivery-state" {
                    option value="" { "any" }
                    @for s in [DeliveryState::Pending, DeliveryState::Failing, DeliveryState::Delivered] {
                        option value=(s.as_str()) selected[filter == Some(s)] { (s.as_str()) }
                    }
                }
            }
            button type="submit" { "Apply" }
        }
        @if items.is_empty() {
            p.empty { "No delivery." }
        } @else {
            table.data id="deliveries" {
                thead { tr {
                    th.num scope="col" { "ID" } th scope="col" { "Event" } th scope="col" { "State" }
                    th.num scope="col" { "Attempts" } th scope="col" { "Last status" } th scope="col" { "Last error" }
                    th scope="col" { "Next retry" } th scope="col" { "Created" } th scope="col" { "Payload" }
                    th scope="col" { span.visually-hidden { "Actions" } }
                } }
                tbody {
                    @for d in &items {
                        tr data-delivery=(d.id) data-state=(d.state.as_str()) {
                            td.num { (d.id) }
                            td { (d.event) }
                            td { (state_badge(d.state)) }
                            td.num.attempts { (d.attempts) }
                            td.last-status { @if let Some(s) = d.last_status { (s) } }
                            td.error-detail { (d.last_error.as_deref().unwrap_or("")) }
                            td { @if d.state == DeliveryState::Delivered { span.muted { "—" } } @else { (when(d.next_attempt_at)) } }
                            td { (when(d.created_at)) }
                            td { details { summary { "Show" } pre.mono.payload { (d.payload) } } }
                            td {
                                @if d.state == DeliveryState::Failing {
                                    form.inline method="post" action={ (PATH) "/" (d.id) "/retry" } {
                                        (csrf(&viewer))
                                        button type="submit" class="retry" { "Retry now" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        (pager(PATH, &pairs, p.page, has_next))
    };
    Ok(page(&viewer, Nav::None, "Webhook deliveries", body).into_response())
}

/// "Retry now": the delivery is due at once; back to the failing ones.
pub async fn retry(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted<Empty, CanWrite>,
) -> WebResult<Response> {
    let id = crate::input::positive_id(&id).ok_or(WebError::NotFound)?;
    let actor = posted.viewer.require_write()?;
    state.webhooks().retry_webhook_delivery(id, &actor).await?;
    tracing::info!(delivery_id = id, "offboarding delivery retried by hand");
    Ok(Redirect::to(&format!("{PATH}?state=failing")).into_response())
}
