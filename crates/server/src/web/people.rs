//! End users and groups as the IdP sent them: searchable lists, a user's attributes,
//! groups and hosts, a group's members.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use custodian_domain::hosts::HostQuery;
use custodian_domain::{ListQuery, ScimRecord, SortOrder};
use custodian_scim::filter::parse_filter;
use custodian_scim::resource::MemberKind;
use custodian_scim::schema::ResourceKind;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::layout::{Nav, page, pager, thousands, when};
use super::session::Viewer;
use super::{WebError, WebResult};
use crate::state::AppState;

const PER_PAGE: u64 = 50;
const MEMBERS_PER_PAGE: usize = 100;
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

#[derive(Debug, Deserialize, Default)]
pub struct ListParams {
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: u64,
}

/// A SCIM string literal (JSON string syntax, as RFC 7644 filters use).
fn literal(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

async fn search(
    state: &AppState,
    kind: ResourceKind,
    filter: Option<String>,
    page: u64,
) -> WebResult<(Vec<ScimRecord>, u64)> {
    let filter = match filter {
        Some(f) => Some(parse_filter(kind, &f).map_err(|e| WebError::BadRequest(e.detail))?),
        None => None,
    };
    let query = ListQuery {
        filter,
        sort_by: None,
        sort_order: SortOrder::Ascending,
        start_index: page.saturating_mul(PER_PAGE) + 1,
        count: PER_PAGE,
    };
    let result = state.directory().scim_list(custodian_domain::Scope::All, kind, &query).await?;
    Ok((result.records, result.total_results))
}

fn text<'a>(doc: &'a Value, path: &[&str]) -> &'a str {
    path.iter().try_fold(doc, |v, k| v.get(*k)).and_then(Value::as_str).unwrap_or("")
}

fn full_name(doc: &Value) -> String {
    let given = text(doc, &["name", "givenName"]);
    let family = text(doc, &["name", "familyName"]);
    let joined = format!("{given} {family}").trim().to_string();
    if joined.is_empty() { text(doc, &["displayName"]).to_string() } else { joined }
}

fn search_form(action: &str, q: &str, placeholder: &str) -> Markup {
    html! {
        form.filters method="get" action=(action) {
            label { "Search " input type="search" name="q" value=(q) placeholder=(placeholder); }
            button type="submit" { "Search" }
            @if !q.is_empty() { a href=(action) { "Clear" } }
        }
    }
}

pub async fn users(State(state): State<AppState>, viewer: Viewer, Query(p): Query<ListParams>) -> WebResult<Response> {
    let q = p.q.trim();
    let filter = (!q.is_empty()).then(|| {
        let l = literal(q);
        format!(
            "userName co {l} or displayName co {l} or name.givenName co {l} or name.familyName co {l} or emails.value co {l}"
        )
    });
    let (records, total) = search(&state, ResourceKind::User, filter, p.page).await?;
    let pairs = [("q", q.to_string())];
    let body = html! {
        (search_form("/end-users", q, "username, name or email"))
        p.summary { (thousands(total)) " users" }
        table.data id="end-users" {
            thead { tr { th { "Username" } th { "Full name" } th { "Department" } th { "Status" } th { "Updated" } } }
            tbody {
                @for r in &records {
                    tr {
                        td { a href={ "/end-users/" (r.id) } { (text(&r.doc, &["userName"])) } }
                        td { (full_name(&r.doc)) }
                        td { (text(&r.doc, &[ENTERPRISE, "department"])) }
                        td { @if r.doc.get("active") == Some(&Value::Bool(false)) { span.badge.warn { "deactivated" } } @else { "active" } }
                        td { (when(r.last_modified)) }
                    }
                }
            }
        }
        (pager("/end-users", &pairs, p.page, (p.page + 1) * PER_PAGE < total))
    };
    Ok(page(&viewer, Nav::EndUsers, "End users", body).into_response())
}

/// Every leaf of a SCIM document as (path, value) rows.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&path, child, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), child, out);
            }
        }
        Value::String(s) => out.push((prefix.to_string(), s.clone())),
        Value::Null => {}
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

pub async fn user(State(state): State<AppState>, viewer: Viewer, Path(id): Path<String>) -> WebResult<Response> {
    let record = state.directory().scim_get(custodian_domain::Scope::All, ResourceKind::User, &id).await?;
    let user_name = text(&record.doc, &["userName"]).to_string();
    let hosts_query = HostQuery { per_page: 100, idp_username: Some(user_name.clone()), ..HostQuery::default() };
    let (groups, hosts) = tokio::try_join!(state.directory().groups_of(&id), state.hosts().list_hosts(&hosts_query))?;
    let mut attributes = Vec::new();
    flatten("", &record.doc, &mut attributes);
    let body = html! {
        p.breadcrumb { a href="/end-users" { "End users" } " › " (user_name) }
        @if record.doc.get("active") == Some(&Value::Bool(false)) {
            p.warning { "This user is deactivated in the IdP." }
        }
        p { a href={ "/activity?idp_username=" (form_urlencoded::byte_serialize(user_name.as_bytes()).collect::<String>()) } id="user-activity" { "This user in the activity feed" } }
        div.columns {
            section.card {
                h2 { "Attributes" }
                dl.facts {
                    dt { "Full name" } dd { (full_name(&record.doc)) }
                    dt { "SCIM id" } dd.mono { (record.id) }
                    dt { "Created" } dd { (when(record.created)) }
                    dt { "Updated" } dd { (when(record.last_modified)) }
                }
                table.data.attributes {
                    tbody { @for (k, v) in &attributes { tr { th.mono { (k) } td { (v) } } } }
                }
            }
            div {
                section.card {
                    h2 { "Groups" }
                    @if groups.is_empty() { p.empty { "In no group." } } @else {
                        ul id="user-groups" {
                            @for g in &groups {
                                li { a href={ "/groups/" (g.id) } { (g.display.as_deref().unwrap_or(&g.id)) } @if !g.direct { " " span.muted { "(inherited)" } } }
                            }
                        }
                    }
                }
                section.card {
                    h2 { "Hosts" }
                    @if hosts.is_empty() { p.empty { "No host is linked to this user." } } @else {
                        ul id="user-hosts" { @for h in &hosts { li { a href={ "/hosts/" (h.id) } { (h.display_name()) } " " span.mono { (h.hardware_serial) } } } }
                    }
                }
            }
        }
    };
    Ok(page(&viewer, Nav::EndUsers, &user_name, body).into_response())
}

pub async fn groups(State(state): State<AppState>, viewer: Viewer, Query(p): Query<ListParams>) -> WebResult<Response> {
    let q = p.q.trim();
    let filter = (!q.is_empty()).then(|| format!("displayName co {}", literal(q)));
    let (records, total) = search(&state, ResourceKind::Group, filter, p.page).await?;
    let pairs = [("q", q.to_string())];
    let body = html! {
        (search_form("/groups", q, "group name"))
        p.summary { (thousands(total)) " groups" }
        table.data id="groups" {
            thead { tr { th { "Name" } th { "External id" } th { "Updated" } th {} } }
            tbody {
                @for r in &records {
                    tr {
                        td { a href={ "/groups/" (r.id) } { (text(&r.doc, &["displayName"])) } }
                        td.mono { (text(&r.doc, &["externalId"])) }
                        td { (when(r.last_modified)) }
                        td { a href={ "/hosts?idp_group=" (r.id) } { "Hosts" } }
                    }
                }
            }
        }
        (pager("/groups", &pairs, p.page, (p.page + 1) * PER_PAGE < total))
    };
    Ok(page(&viewer, Nav::Groups, "Groups", body).into_response())
}

pub async fn group(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(p): Query<ListParams>,
) -> WebResult<Response> {
    let (record, members) = tokio::try_join!(
        state.directory().scim_get(custodian_domain::Scope::All, ResourceKind::Group, &id),
        state.directory().group_members(&id)
    )?;
    let name = text(&record.doc, &["displayName"]).to_string();
    let start = (p.page as usize).saturating_mul(MEMBERS_PER_PAGE).min(members.len());
    let shown = &members[start..(start + MEMBERS_PER_PAGE).min(members.len())];
    let body = html! {
        p.breadcrumb { a href="/groups" { "Groups" } " › " (name) }
        p { a href={ "/hosts?idp_group=" (record.id) } { "Hosts of this group's users (nested groups included)" } }
        section.card {
            h2 { "Members (" (thousands(members.len() as u64)) ")" }
            @if members.is_empty() { p.empty { "No member." } } @else {
                table.data id="group-members" {
                    thead { tr { th { "Member" } th { "Kind" } } }
                    tbody {
                        @for m in shown {
                            @let href = match m.kind { MemberKind::Group => format!("/groups/{}", m.id), MemberKind::User => format!("/end-users/{}", m.id) };
                            tr {
                                td { a href=(href) { (m.display.as_deref().unwrap_or(&m.id)) } }
                                td { (match m.kind { MemberKind::Group => "group", MemberKind::User => "user" }) }
                            }
                        }
                    }
                }
                (pager(&format!("/groups/{}", record.id), &[], p.page, start + MEMBERS_PER_PAGE < members.len()))
            }
        }
    };
    Ok(page(&viewer, Nav::Groups, &name, body).into_response())
}
