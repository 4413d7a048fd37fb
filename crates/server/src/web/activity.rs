//! The activity feed: every link, unlink and admin change, newest first, filtered by
//! host, IdP user and kind (a host's or a person's history across the feed).

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;
use serde_json::Value;

use custodian_domain::hosts::ActivityQuery;

use super::layout::{Nav, page, pager, when};
use super::session::Viewer;
use super::{WebError, WebResult};
use crate::state::AppState;

const PER_PAGE: u64 = 50;

#[derive(Debug, Deserialize, Default)]
pub struct Params {
    #[serde(default)]
    page: u64,
    /// Blank in a submitted form: read as text, parsed below.
    host_id: Option<String>,
    idp_username: Option<String>,
    kind: Option<String>,
}

fn filled(v: &Option<String>) -> Option<String> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
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
    let host_id = match filled(&p.host_id) {
        None => None,
        Some(text) => Some(
            crate::input::positive_id(&text)
                .ok_or_else(|| WebError::BadRequest("host_id must be a host's number.".into()))?,
        ),
    };
    let query = ActivityQuery {
        offset: p.page.saturating_mul(PER_PAGE),
        limit: PER_PAGE + 1,
        host_id,
        idp_username: filled(&p.idp_username),
        kind: filled(&p.kind),
    };
    let (mut activities, kinds) =
        tokio::try_join!(state.operations().list_activities(&query), state.operations().activity_kinds())?;
    let has_next = activities.len() as u64 > PER_PAGE;
    activities.truncate(PER_PAGE as usize);
    let pairs = [
        ("host_id", host_id.map(|h| h.to_string()).unwrap_or_default()),
        ("idp_username", query.idp_username.clone().unwrap_or_default()),
        ("kind", query.kind.clone().unwrap_or_default()),
    ];
    let filtered = pairs.iter().any(|(_, v)| !v.is_empty());
    let body = html! {
        form.filters method="get" action="/activity" id="activity-filters" {
            label { "Host ID " input type="number" name="host_id" id="activity-host" min="1" step="1" value=[host_id]; }
            label { "IdP username " input type="text" name="idp_username" id="activity-user" value=[query.idp_username.as_deref()]; }
            label { "Kind "
                select name="kind" id="activity-kind" {
                    option value="" { "any" }
                    @for k in &kinds {
                        option value=(k) selected[query.kind.as_deref() == Some(k.as_str())] { (k.replace('_', " ")) }
                    }
                }
            }
            button type="submit" { "Apply" }
            a href="/activity" { "Clear" }
        }
        @if activities.is_empty() {
            p.empty { @if filtered { "No activity matches these filters." } @else { "Nothing has happened yet." } }
        } @else {
            table.data id="activities" {
                thead { tr { th scope="col" { "Time" } th scope="col" { "What" } th scope="col" { "Who" } th scope="col" { "Details" } } }
                tbody {
                    @for a in &activities {
                        tr data-kind=(a.kind) {
                            td { (when(a.created_at)) }
                            td { (a.kind.replace('_', " ")) }
                            td { (a.actor_name) }
                            td.prose { (details(&a.details)) }
                        }
                    }
                }
            }
        }
        (pager("/activity", &pairs, p.page, has_next))
    };
    Ok(page(&viewer, Nav::Activity, "Activity", body).into_response())
}
