//! The activity feed: every link, unlink and admin change, newest first.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;
use serde_json::Value;

use super::WebResult;
use super::layout::{Nav, page, pager, when};
use super::session::Viewer;
use crate::state::AppState;

const PER_PAGE: u64 = 50;

#[derive(Debug, Deserialize, Default)]
pub struct Params {
    #[serde(default)]
    page: u64,
}

/// The details of an activity as `key: value` pairs, host ids as links.
fn details(v: &Value) -> maud::Markup {
    html! {
        @if let Some(map) = v.as_object() {
            @for (i, (k, val)) in map.iter().enumerate() {
                @if i > 0 { " · " }
                span.key { (k) ": " }
                @match (k.as_str(), val) {
                    ("host_id", Value::Number(n)) => a href={ "/hosts/" (n) } { (n) },
                    (_, Value::String(s)) => (s),
                    (_, other) => (other.to_string()),
                }
            }
        } @else {
            (v.to_string())
        }
    }
}

pub async fn list(State(state): State<AppState>, viewer: Viewer, Query(p): Query<Params>) -> WebResult<Response> {
    let offset = p.page.saturating_mul(PER_PAGE);
    let mut activities = state.operations().list_activities(offset, PER_PAGE + 1).await?;
    let has_next = activities.len() as u64 > PER_PAGE;
    activities.truncate(PER_PAGE as usize);
    let body = html! {
        @if activities.is_empty() { p.empty { "Nothing has happened yet." } } @else {
            table.data id="activities" {
                thead { tr { th { "Time" } th { "What" } th { "Who" } th { "Details" } } }
                tbody {
                    @for a in &activities {
                        tr {
                            td { (when(a.created_at)) }
                            td { (a.kind.replace('_', " ")) }
                            td { (a.actor_name) }
                            td.prose { (details(&a.details)) }
                        }
                    }
                }
            }
        }
        (pager("/activity", &[], p.page, has_next))
    };
    Ok(page(&viewer, Nav::Activity, "Activity", body).into_response())
}
