//! Hosts: the filtered list (and its CSV export) with the IdP columns each operator
//! picks, host details with the User card, and the IdP username an admin sets on a host.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use custodian_domain::columns::{HostColumn, MAX_COLUMNS, MAX_PATH, SUGGESTED, parse_columns};
use custodian_domain::connections::ConnectionId;
use custodian_domain::hosts::{DeviceMapping, Host, HostQuery, LinkState, MappingSource, OwnerState};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{Nav, csrf, page, pager, thousands, when};
use super::session::{AnyRole, CanWrite, Posted, Viewer};
use super::{WebError, WebResult};
use crate::api::hosts::{HostBody, host_query_of, parse_idp_filter};
use crate::query::QueryParams;
use crate::state::AppState;

const PER_PAGE: u64 = 50;
const MAX_PER_PAGE: u64 = 500;
/// Hosts read per query while exporting.
const EXPORT_CHUNK: u64 = 1000;
/// The longest IdP username, in bytes: a device-mapping email, as on the JSON API.
const MAX_IDENTITY: usize = custodian_domain::limits::NAME_MAX_BYTES;

/// The list's query, parsed as the JSON API parses it (Fleet's parameter names).
struct ListQuery {
    q: HostQuery,
    /// The IdP filter as typed, kept in the box and in links.
    idp_filter: String,
    /// Why the IdP filter was refused: shown beside the box, and no host is listed.
    filter_error: Option<String>,
}

fn list_query(uri: &Uri) -> WebResult<ListQuery> {
    let mut params = QueryParams::parse(uri.query());
    // The filter box is read here so that a bad filter is shown in place, not as an
    // error page.
    let idp_filter = params.remove("idp_filter").map(|s| s.trim().to_string()).unwrap_or_default();
    let mut q = host_query_of(&params).map_err(|e| {
        let reasons: Vec<String> = e.errors.iter().map(|(n, r)| format!("{n} {r}")).collect();
        WebError::BadRequest(format!("{}: {}", e.message, reasons.join("; ")))
    })?;
    q.per_page = match params.get("per_page") {
        None | Some("") => PER_PAGE,
        Some(_) => q.per_page.clamp(1, MAX_PER_PAGE),
    };
    let mut filter_error = None;
    if !idp_filter.is_empty() {
        match parse_idp_filter(&idp_filter) {
            Ok(filter) => q.idp_filter = Some(filter),
            Err(e) => filter_error = Some(e),
        }
    }
    Ok(ListQuery { q, idp_filter, filter_error })
}

/// The filters as query pairs, for links that keep them.
fn filter_pairs(list: &ListQuery) -> Vec<(&'static str, String)> {
    let q = &list.q;
    vec![
        ("query", q.query.clone().unwrap_or_default()),
        ("idp_filter", list.idp_filter.clone()),
        ("idp_group", q.idp_group.clone().unwrap_or_default()),
        ("idp_department", q.idp_department.clone().unwrap_or_default()),
        ("idp_connection", q.idp_connection.clone().unwrap_or_default()),
        ("idp_active", if q.idp_active == Some(false) { "false".into() } else { String::new() }),
        ("idp_username", q.idp_username.clone().unwrap_or_default()),
        ("link_state", q.link_state.map(|s| s.as_str().to_string()).unwrap_or_default()),
        ("per_page", if q.per_page == PER_PAGE { String::new() } else { q.per_page.to_string() }),
    ]
}

fn filters_form(list: &ListQuery, connections: &[(ConnectionId, String)]) -> Markup {
    let q = &list.q;
    html! {
        form.filters method="get" action="/hosts" id="host-filters" {
            div.filter-box {
                label for="idp-filter" { "IdP filter " }
                input type="text" name="idp_filter" id="idp-filter" value=(list.idp_filter)
                    placeholder="title eq \"Engineer\" and addresses[type eq \"work\"].country eq \"DE\""
                    aria-invalid=[list.filter_error.as_ref().map(|_| "true")]
                    aria-describedby=[list.filter_error.as_ref().map(|_| "idp-filter-error")]
                    maxlength=(custodian_scim::filter::MAX_FILTER_LEN);
                @if let Some(e) = &list.filter_error {
                    p.field-error id="idp-filter-error" role="alert" { "Invalid filter: " (e) }
                }
            }
            label { "Search " input type="search" name="query" value=[q.query.as_deref()] placeholder="hostname, serial, email, username"; }
            label { "IdP group " input type="text" name="idp_group" value=[q.idp_group.as_deref()] placeholder="name or id"; }
            label { "Department " input type="text" name="idp_department" value=[q.idp_department.as_deref()]; }
            label { "IdP connection "
                select name="idp_connection" {
                    option value="" { "any" }
                    @for (_, name) in connections {
                        option value=(name) selected[q.idp_connection.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(name))] { (name) }
                    }
                }
            }
            label { "Owner "
                select name="link_state" id="link-state" {
                    option value="" { "any" }
                    @for state in OwnerState::ALL {
                        option value=(state.as_str()) selected[q.link_state == Some(state)] { (state.label()) }
                    }
                }
            }
            label.check { input type="checkbox" name="idp_active" value="false" checked[q.idp_active == Some(false)]; " Deactivated users only" }
            @if let Some(u) = &q.idp_username { input type="hidden" name="idp_username" value=(u); }
            button type="submit" { "Apply" }
            a href="/hosts" { "Clear" }
        }
    }
}

fn user_cells(host: &Host) -> Markup {
    html! {
        @match &host.end_user {
            Some(u) => {
                td {
                    a href={ "/end-users/" (u.idp_id) } { (u.idp_username) }
                    @if !u.idp_active { " " span.badge.warn { "deactivated" } }
                }
                td { (u.idp_full_name) }
                td { (u.idp_department.as_deref().unwrap_or("")) }
                td.groups { (u.idp_groups.join(", ")) }
                td { (u.idp_connection) }
            }
            None => {
                td.muted colspan="5" { (link_label(host)) }
            }
        }
    }
}

fn link_label(host: &Host) -> String {
    match host.link_state {
        LinkState::Linked => String::new(),
        LinkState::Unlinked => format!("{} (no IdP user yet)", host.identity().unwrap_or("")),
        LinkState::Ambiguous => format!("{} (ambiguous)", host.identity().unwrap_or("")),
        LinkState::UserDeleted => "user deleted in the IdP".into(),
        LinkState::NoIdentity => "no IdP identity".into(),
    }
}

/// The operator's IdP columns as saved; one that no longer parses (a schema file that
/// changed) is left out rather than failing the page.
async fn columns_of(state: &AppState, viewer: &Viewer) -> WebResult<Vec<HostColumn>> {
    let paths = state.operators().host_columns(viewer.user.id).await?;
    Ok(paths.iter().filter_map(|p| HostColumn::parse(p).ok()).collect())
}

/// The column picker: the suggested attributes as checkboxes, then any other SCIM
/// attribute path (a custom extension's too). Saved for this operator only.
fn column_picker(viewer: &Viewer, columns: &[HostColumn], back: &str) -> Markup {
    let chosen = |path: &str| columns.iter().any(|c| c.path.eq_ignore_ascii_case(path));
    let custom: Vec<&HostColumn> =
        columns.iter().filter(|c| !SUGGESTED.iter().any(|(p, _)| p.eq_ignore_ascii_case(&c.path))).collect();
    // Room for the saved custom columns and two more.
    let blanks = 2.min(MAX_COLUMNS.saturating_sub(columns.len()));
    html! {
        details.column-picker id="column-picker" {
            summary { "IdP columns" @if !columns.is_empty() { " (" (columns.len()) ")" } }
            form method="post" action="/hosts/columns" id="columns-form" {
                (csrf(viewer))
                input type="hidden" name="back" value=(back);
                fieldset {
                    legend { "Show these IdP attributes as columns (here and in the CSV export)" }
                    @for (i, (path, label)) in SUGGESTED.iter().enumerate() {
                        label.check {
                            input type="checkbox" name="column" value=(path) id={ "column-" (i) } checked[chosen(path)];
                            " " (label)
                        }
                    }
                }
                @for (i, c) in custom.iter().enumerate() {
                    label { "Attribute path " input type="text" name="custom_column" id={ "custom-column-" (i) } value=(c.path) maxlength=(MAX_PATH); }
                }
                @for i in 0..blanks {
                    label { "Attribute path " input type="text" name="custom_column" id={ "custom-column-" (custom.len() + i) }
                        placeholder="urn:ietf:params:scim:schemas:extension:acme:2.0:User:badge" maxlength=(MAX_PATH); }
                }
                button.primary type="submit" name="action" value="save" id="save-columns" { "Save columns" }
                " "
                button type="submit" name="action" value="reset" id="reset-columns" { "No IdP columns" }
            }
        }
    }
}

pub async fn list(State(state): State<AppState>, viewer: Viewer, uri: Uri) -> WebResult<Response> {
    let list = list_query(&uri)?;
    let columns = columns_of(&state, &viewer).await?;
    let q = &list.q;
    let (mut hosts, total, connections) = if list.filter_error.is_some() {
        (Vec::new(), 0, state.connections().connection_names().await?)
    } else {
        // The page and the count run side by side, on the list's indexed filters.
        tokio::try_join!(
            state.hosts().list_hosts(q),
            state.hosts().count_hosts(q),
            state.connections().connection_names()
        )?
    };
    let has_next = (q.page + 1) * q.per_page < total;
    hosts.truncate(q.per_page as usize);
    let pairs = filter_pairs(&list);
    let export = super::layout::with_page(&pairs, 0);
    let first = q.page * q.per_page + 1;
    let body = html! {
        (filters_form(&list, &connections))
        (column_picker(&viewer, &columns, &export))
        p.summary id="host-count" {
            @if list.filter_error.is_some() { "Correct the IdP filter to list hosts." } @else if total == 0 { "No host matches." } @else {
                "Hosts " (thousands(first)) "–" (thousands(first + hosts.len() as u64 - 1)) " of " (thousands(total))
            }
            @if list.filter_error.is_none() {
                " · " a href={ "/hosts.csv" @if !export.is_empty() { "?" (export) } } id="export-csv" { "Export CSV" }
            }
        }
        table.data id="hosts" {
            thead { tr {
                th scope="col" { "Hostname" } th scope="col" { "Serial" } th scope="col" { "Platform" } th scope="col" { "IdP username" }
                th scope="col" { "Full name" } th scope="col" { "Department" } th scope="col" { "Groups" } th scope="col" { "IdP connection" }
                @for c in &columns { th scope="col" title=(c.path) { (c.label) } }
            } }
            tbody {
                @for h in &hosts {
                    tr {
                        td { a href={ "/hosts/" (h.id) } { (if h.hostname.is_empty() { h.display_name() } else { &h.hostname }) } }
                        td.mono { (h.hardware_serial) }
                        td { (h.platform) }
                        (user_cells(h))
                        @for c in &columns { td.idp-column { (c.value(h)) } }
                    }
                }
            }
        }
        (pager("/hosts", &pairs, q.page, has_next))
    };
    Ok(page(&viewer, Nav::Hosts, "Hosts", body).into_response())
}

/// Neutralises a cell a spreadsheet would run as a formula.
fn csv_cell(s: &str) -> String {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{s}"),
        _ => s.to_string(),
    }
}

/// `GET /hosts.csv`: every host of the current filters (all pages), read in chunks.
pub async fn export_csv(State(state): State<AppState>, viewer: Viewer, uri: Uri) -> WebResult<Response> {
    let list = list_query(&uri)?;
    let columns = columns_of(&state, &viewer).await?;
    if let Some(e) = list.filter_error {
        return Err(WebError::BadRequest(format!("idp_filter: {e}")));
    }
    let mut q = list.q;
    q.per_page = EXPORT_CHUNK;
    q.page = 0;
    let mut out = csv::Writer::from_writer(Vec::new());
    let header_row = [
        "id",
        "hostname",
        "computer_name",
        "hardware_serial",
        "platform",
        "os_version",
        "idp_username",
        "idp_full_name",
        "idp_department",
        "idp_groups",
        "idp_active",
        "idp_link",
        "idp_connection",
    ];
    // The operator's IdP columns follow, headed by their attribute paths.
    let header_row = header_row.iter().map(|h| h.to_string()).chain(columns.iter().map(|c| csv_cell(&c.path)));
    out.write_record(header_row).map_err(|e| WebError::Internal(e.to_string()))?;
    loop {
        let hosts = state.hosts().list_hosts(&q).await?;
        for h in &hosts {
            let u = h.end_user.as_ref();
            let record = [
                h.id.to_string(),
                h.hostname.clone(),
                h.computer_name.clone(),
                h.hardware_serial.clone(),
                h.platform.clone(),
                h.os_version.clone(),
                u.map(|u| u.idp_username.clone()).unwrap_or_default(),
                u.map(|u| u.idp_full_name.clone()).unwrap_or_default(),
                u.and_then(|u| u.idp_department.clone()).unwrap_or_default(),
                u.map(|u| u.idp_groups.join(";")).unwrap_or_default(),
                u.map(|u| u.idp_active.to_string()).unwrap_or_default(),
                h.link_state.as_str().to_string(),
                u.map(|u| u.idp_connection.clone()).unwrap_or_default(),
            ];
            let extra = columns.iter().map(|c| c.value(h));
            let record = record.into_iter().chain(extra).map(|c| csv_cell(&c));
            out.write_record(record).map_err(|e| WebError::Internal(e.to_string()))?;
        }
        if (hosts.len() as u64) < q.per_page {
            break;
        }
        q.page += 1;
    }
    let bytes = out.into_inner().map_err(|e| WebError::Internal(e.to_string()))?;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8")),
            (header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"hosts.csv\"")),
        ],
        bytes,
    )
        .into_response())
}

/// `POST /hosts/columns`: saves the operator's IdP columns (any role: it is their own
/// view), then goes back to the list with its filters. The form's fields, repeated:
/// `column` (the checkboxes), `custom_column` (typed paths), `action` (`save` or
/// `reset`) and `back` (the list's query).
pub async fn save_columns(
    State(state): State<AppState>,
    posted: Posted<Vec<(String, String)>, AnyRole>,
) -> WebResult<Response> {
    let fields = &posted.form;
    fn field<'a>(fields: &'a [(String, String)], name: &'a str) -> impl Iterator<Item = &'a str> {
        fields.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
    }
    let paths: Vec<String> = match field(fields, "action").next() {
        Some("reset") => Vec::new(),
        Some("save") => {
            let chosen =
                field(fields, "column").chain(field(fields, "custom_column")).map(str::trim).filter(|p| !p.is_empty());
            parse_columns(chosen).map_err(WebError::BadRequest)?.into_iter().map(|c| c.path).collect()
        }
        _ => return Err(WebError::BadRequest("The form has no action: save or reset".into())),
    };
    state.operators().set_host_columns(posted.viewer.user.id, &paths).await?;
    // Back to the same filters: the query is parsed and written again, so that only
    // query pairs reach the Location header.
    let back = field(fields, "back").next().unwrap_or("");
    let pairs: Vec<(String, String)> = form_urlencoded::parse(back.as_bytes()).into_owned().collect();
    let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
    let to = if query.is_empty() { "/hosts".to_string() } else { format!("/hosts?{query}") };
    Ok(Redirect::to(&to).into_response())
}

fn host_id(raw: &str) -> WebResult<i64> {
    crate::input::positive_id(raw).ok_or(WebError::NotFound)
}

fn user_card(viewer: &Viewer, host: &Host) -> Markup {
    let body = HostBody::from(host);
    let other = body.end_users.first().map(|u| u.other_emails.as_slice()).unwrap_or_default();
    let idp_mapping = host.mappings.iter().find(|m| m.source == MappingSource::Idp);
    html! {
        section.card.user-card id="user-card" {
            h2 { "User" }
            @if let Some(u) = &host.end_user {
                @if !u.idp_active {
                    p.warning id="deactivated-warning" { "This user is deactivated in the IdP: recover this host." }
                }
                dl.facts {
                    dt { "IdP username" } dd id="idp-username" { a href={ "/end-users/" (u.idp_id) } { (u.idp_username) } }
                    dt { "Full name" } dd id="idp-full-name" { (u.idp_full_name) }
                    dt { "Groups" } dd id="idp-groups" { @if u.idp_groups.is_empty() { span.muted { "none" } } @else { (u.idp_groups.join(", ")) } }
                    dt { "Department" } dd id="idp-department" { (u.idp_department.as_deref().unwrap_or("")) }
                    dt { "IdP connection" } dd id="idp-connection" { (u.idp_connection) }
                    dt { "IdP data updated" } dd { (when(u.idp_info_updated_at)) }
                }
            } @else {
                @match host.link_state {
                    LinkState::Ambiguous => p.warning id="ambiguous-warning" {
                        "Several IdP users have the email " strong { (host.identity().unwrap_or("")) } ": the host is linked to none. Candidates: "
                        @for (i, c) in host.candidates.iter().enumerate() {
                            @if i > 0 { ", " }
                            a href={ "/end-users/" (c) } { (c) }
                        }
                        ". Set the IdP username below to choose."
                    },
                    LinkState::Unlinked => p.muted id="link-state" { "No IdP user has the username " strong { (host.identity().unwrap_or("")) } " yet; the host will be linked when one arrives." },
                    LinkState::UserDeleted => p.warning id="link-state" { "This host's IdP user was deleted in the IdP; no one has been linked since." },
                    _ => p.muted id="link-state" { "This host has no IdP username nor enrollment account." },
                }
            }
            @if !other.is_empty() {
                h3 { "Other emails" }
                ul.emails id="other-emails" {
                    @for e in other { li { (e.email) " " span.source { (e.source) } } }
                }
            }
            @if viewer.can_write() {
                form.inline-form method="post" action={ "/hosts/" (host.id) "/idp-username" } id="edit-idp-username" {
                    (csrf(viewer))
                    label { "IdP username " input type="text" name="idp_username" id="idp-username-input" value=[idp_mapping.map(|m| m.email.as_str())] required maxlength=(MAX_IDENTITY); }
                    button.primary type="submit" id="save-idp-username" { "Save" }
                }
                @if idp_mapping.is_some() {
                    form.inline method="post" action={ "/hosts/" (host.id) "/idp-username/delete" } id="remove-idp-username" {
                        (csrf(viewer))
                        button.danger type="submit" data-confirm="Remove the IdP username set on this host? It falls back to its enrollment account." { "Remove IdP username" }
                    }
                }
            }
        }
    }
}

pub async fn details(State(state): State<AppState>, viewer: Viewer, Path(raw): Path<String>) -> WebResult<Response> {
    let id = host_id(&raw)?;
    let (host, history) = tokio::try_join!(state.hosts().get_host(id), state.hosts().host_history(id))?;
    let title = host.display_name().to_string();
    let body = html! {
        p.breadcrumb { a href="/hosts" { "Hosts" } " › " (title) }
        div.columns {
            section.card {
                h2 { "Host" }
                dl.facts {
                    dt { "Hostname" } dd { (host.hostname) }
                    dt { "Computer name" } dd { (host.computer_name) }
                    dt { "Serial" } dd.mono { (host.hardware_serial) }
                    dt { "UUID" } dd.mono { (host.uuid) }
                    dt { "Platform" } dd { (host.platform) " " (host.os_version) }
                    dt { "Model" } dd { (host.hardware_model) }
                    dt { "Last seen" } dd { @if let Some(t) = host.seen_time { (when(t)) } }
                    dt { "Added" } dd { (when(host.created_at)) }
                }
            }
            (user_card(&viewer, &host))
        }
        section.card {
            h2 { "Ownership history" }
            p { a href={ "/activity?host_id=" (host.id) } id="host-activity" { "This host in the activity feed" } }
            @if history.is_empty() { p.empty { "No one has been linked to this host." } } @else {
                table.data id="ownership-history" {
                    thead { tr { th { "IdP username" } th { "Linked" } th { "Because of" } th { "Unlinked" } th { "Because of" } } }
                    tbody {
                        @for e in &history {
                            tr {
                                td { a href={ "/end-users/" (e.idp_id) } { (e.idp_username) } }
                                td { (when(e.linked_at)) }
                                td { (e.link_cause) }
                                td { @if let Some(t) = e.unlinked_at { (when(t)) } }
                                td { (e.unlink_cause.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&viewer, Nav::Hosts, &title, body).into_response())
}

#[derive(Deserialize)]
pub struct IdpUsernameForm {
    idp_username: String,
}

pub async fn set_idp_username(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    posted: Posted<IdpUsernameForm, CanWrite>,
) -> WebResult<Response> {
    let actor = posted.viewer.require_write()?;
    let id = host_id(&raw)?;
    let value = posted.form.idp_username.trim();
    if value.is_empty() || value.len() > MAX_IDENTITY || value.contains(char::is_whitespace) || value.contains('\0') {
        return Err(WebError::BadRequest(format!(
            "An IdP username must be 1 to {MAX_IDENTITY} bytes long (in UTF-8) and have no spaces."
        )));
    }
    state
        .hosts()
        .set_host_mapping(id, DeviceMapping { email: value.to_string(), source: MappingSource::Idp }, &actor)
        .await?;
    Ok(Redirect::to(&format!("/hosts/{id}")).into_response())
}

#[derive(Deserialize)]
pub struct Empty {}

pub async fn delete_idp_username(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    posted: Posted<Empty, CanWrite>,
) -> WebResult<Response> {
    let actor = posted.viewer.require_write()?;
    let id = host_id(&raw)?;
    state.hosts().delete_idp_mapping(id, &actor).await?;
    Ok(Redirect::to(&format!("/hosts/{id}")).into_response())
}
