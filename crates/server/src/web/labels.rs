//! Labels (`/labels`, `/labels/{id}`): the list with host counts, a label's criteria and
//! hosts, and for maintainers and admins a criteria builder (rows of group, department
//! or IdP filter conditions joined by and/or) that shows the JSON it will save before
//! saving it, an edit form and deletion with confirmation. The builder's criteria go
//! through the same parser as the JSON API's (`Criteria::parse`), so both refuse alike.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use custodian_domain::hosts::HostQuery;
use custodian_domain::labels::{Criteria, Label, LabelChange, NewLabel, Vital};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use super::layout::{Nav, csrf, page, pager, thousands, when};
use super::session::{CanWrite, Posted, Viewer};
use super::{WebError, WebResult};
use crate::api::labels::label_query;
use crate::state::AppState;

const ROWS: usize = 4;
const PER_PAGE: u64 = 50;

fn vital_label(v: Vital) -> &'static str {
    match v {
        Vital::EndUserIdpGroup => "IdP group",
        Vital::EndUserIdpDepartment => "Department",
        Vital::EndUserIdpFilter => "IdP filter",
    }
}

const VITALS: [Vital; 3] = [Vital::EndUserIdpGroup, Vital::EndUserIdpDepartment, Vital::EndUserIdpFilter];

/// The builder's fields: a name, a description, `op` (and/or) and up to four rows.
#[derive(Debug, Deserialize, Default, Clone)]
pub struct BuilderForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    op: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    vital_0: String,
    #[serde(default)]
    value_0: String,
    #[serde(default)]
    connection_0: String,
    #[serde(default)]
    vital_1: String,
    #[serde(default)]
    value_1: String,
    #[serde(default)]
    connection_1: String,
    #[serde(default)]
    vital_2: String,
    #[serde(default)]
    value_2: String,
    #[serde(default)]
    connection_2: String,
    #[serde(default)]
    vital_3: String,
    #[serde(default)]
    value_3: String,
    #[serde(default)]
    connection_3: String,
}

struct Row {
    vital: String,
    value: String,
    connection: String,
}

impl BuilderForm {
    fn rows(&self) -> [Row; ROWS] {
        let r = |v: &str, x: &str, c: &str| Row {
            vital: v.trim().into(),
            value: x.trim().into(),
            connection: c.trim().into(),
        };
        [
            r(&self.vital_0, &self.value_0, &self.connection_0),
            r(&self.vital_1, &self.value_1, &self.connection_1),
            r(&self.vital_2, &self.value_2, &self.connection_2),
            r(&self.vital_3, &self.value_3, &self.connection_3),
        ]
    }

    /// The criteria JSON the rows make: one condition alone, else `{"and"|"or": [...]}`.
    fn criteria_json(&self) -> Option<Value> {
        let conditions: Vec<Value> = self
            .rows()
            .iter()
            .filter(|r| !r.vital.is_empty() && !r.value.is_empty())
            .map(|r| {
                let mut c = json!({"vital": r.vital, "value": r.value});
                if !r.connection.is_empty() {
                    c["connection"] = json!(r.connection);
                }
                c
            })
            .collect();
        match conditions.len() {
            0 => None,
            1 => conditions.into_iter().next(),
            _ => Some(json!({ (if self.op == "or" { "or" } else { "and" }): conditions })),
        }
    }

    /// The form of a label's criteria, when they are one condition or one level of and/or.
    fn of_label(label: &Label) -> Option<BuilderForm> {
        let (op, items): (&str, Vec<&Criteria>) = match &label.criteria {
            c @ Criteria::Condition { .. } => ("and", vec![c]),
            Criteria::And(items) => ("and", items.iter().collect()),
            Criteria::Or(items) => ("or", items.iter().collect()),
        };
        if items.len() > ROWS {
            return None;
        }
        let mut f = BuilderForm {
            name: label.name.clone(),
            description: label.description.clone(),
            op: op.into(),
            ..Default::default()
        };
        for (i, item) in items.iter().enumerate() {
            let Criteria::Condition { vital, value, connection, .. } = item else { return None };
            let (v, x, c) = (vital.as_str().to_string(), value.clone(), connection.clone().unwrap_or_default());
            match i {
                0 => (f.vital_0, f.value_0, f.connection_0) = (v, x, c),
                1 => (f.vital_1, f.value_1, f.connection_1) = (v, x, c),
                2 => (f.vital_2, f.value_2, f.connection_2) = (v, x, c),
                _ => (f.vital_3, f.value_3, f.connection_3) = (v, x, c),
            }
        }
        Some(f)
    }
}

/// The builder, with the JSON it will save and its problems, if any.
fn builder(
    viewer: &Viewer,
    action: &str,
    f: &BuilderForm,
    connections: &[String],
    preview: Option<(&Value, u64)>,
    problems: &[String],
) -> Markup {
    html! {
        form.stacked-form method="post" action=(action) id="label-builder" {
            (csrf(viewer))
            @if !problems.is_empty() {
                div.error-message role="alert" id="builder-errors" { ul { @for p in problems { li { (p) } } } }
            }
            label { "Name" input type="text" name="name" id="label-name" value=(f.name) required maxlength="255"; }
            label { "Description" input type="text" name="description" id="label-description" value=(f.description) maxlength="1024"; }
            fieldset.criteria-rows {
                legend { "Hosts whose end user matches" }
                label { "Combine the conditions with "
                    select name="op" id="label-op" {
                        option value="and" selected[f.op != "or"] { "and (all of them)" }
                        option value="or" selected[f.op == "or"] { "or (any of them)" }
                    }
                }
                @for (i, row) in f.rows().iter().enumerate() {
                    div.criteria-row {
                        label { "Condition " (i + 1)
                            select name={ "vital_" (i) } id={ "vital-" (i) } {
                                option value="" { "(none)" }
                                @for v in VITALS { option value=(v.as_str()) selected[row.vital == v.as_str()] { (vital_label(v)) } }
                            }
                        }
                        label { "Value " (i + 1) input type="text" name={ "value_" (i) } id={ "value-" (i) } value=(row.value) placeholder="a group, a department, or title eq \"Engineer\""; }
                        label { "Connection " (i + 1)
                            select name={ "connection_" (i) } id={ "connection-" (i) } {
                                option value="" { "any" }
                                @for c in connections { option value=(c) selected[row.connection.eq_ignore_ascii_case(c)] { (c) } }
                            }
                        }
                    }
                }
            }
            @if let Some((json, hosts)) = preview {
                div.preview id="criteria-preview" {
                    p { "It will save these criteria, which " strong id="preview-count" { (thousands(hosts)) } " hosts match now:" }
                    pre.mono id="criteria-json" { (serde_json::to_string_pretty(json).unwrap_or_default()) }
                }
            }
            div.actions {
                button type="submit" name="action" value="preview" id="preview-label" { "Preview" }
                button.primary type="submit" name="action" value="save" id="save-label" { "Save" }
            }
        }
    }
}

async fn connection_names(state: &AppState) -> WebResult<Vec<String>> {
    Ok(state.connections().list_connections().await?.into_iter().map(|c| c.name).collect())
}

pub async fn list(State(state): State<AppState>, viewer: Viewer) -> WebResult<Response> {
    let labels = state.labels().list_labels().await?;
    let mut counts = Vec::with_capacity(labels.len());
    for l in &labels {
        counts.push(state.hosts().count_hosts(&label_query(&l.criteria)).await?);
    }
    let body = html! {
        @if viewer.can_write() {
            p { a.button.primary href="/labels/new" id="new-label" { "New label" } }
        }
        @if labels.is_empty() { p.empty { "No label yet." } } @else {
            table.data id="labels" {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Type" } th scope="col" { "Description" } th.num scope="col" { "Hosts" } th scope="col" { "Criteria" } } }
                tbody {
                    @for (l, n) in labels.iter().zip(&counts) {
                        tr data-label=(l.id) {
                            td { a href={ "/labels/" (l.id) } { (l.name) } }
                            td { (if l.source_id.is_some() { "automatic" } else { "made by hand" }) }
                            td { (l.description) }
                            td.num.host-count { (thousands(*n)) }
                            td.mono { (l.criteria.to_json().to_string()) }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&viewer, Nav::Labels, "Labels", body).into_response())
}

pub async fn new_page(State(state): State<AppState>, viewer: Viewer) -> WebResult<Response> {
    viewer.require_write()?;
    let connections = connection_names(&state).await?;
    let body = builder(&viewer, "/labels/new", &BuilderForm::default(), &connections, None, &[]);
    Ok(page(&viewer, Nav::Labels, "New label", body).into_response())
}

/// The criteria of a submitted builder, or the problems to show in it.
fn parse_builder(f: &BuilderForm) -> Result<(Value, Criteria), Vec<String>> {
    let Some(json) = f.criteria_json() else {
        return Err(vec!["Give at least one condition (a kind and a value).".into()]);
    };
    let criteria = Criteria::parse(&json, "criteria")
        .map_err(|errors| errors.into_iter().map(|e| format!("{}: {}", e.name, e.reason)).collect::<Vec<_>>())?;
    let untranslatable = crate::api::labels::untranslatable_filters(&criteria);
    if !untranslatable.is_empty() {
        return Err(untranslatable.into_iter().map(|(name, reason)| format!("{name}: {reason}")).collect());
    }
    Ok((json, criteria))
}

async fn submit(
    state: &AppState,
    viewer: &Viewer,
    f: &BuilderForm,
    action: &str,
    title: &str,
    existing: Option<&Label>,
) -> WebResult<Response> {
    let connections = connection_names(state).await?;
    let mut problems = Vec::new();
    if f.name.trim().is_empty() {
        problems.push("Give the label a name.".to_string());
    }
    let parsed = parse_builder(f);
    let show = |problems: Vec<String>, preview: Option<(&Value, u64)>| {
        let body = builder(viewer, action, f, &connections, preview, &problems);
        let status =
            if problems.is_empty() { axum::http::StatusCode::OK } else { axum::http::StatusCode::UNPROCESSABLE_ENTITY };
        (status, page(viewer, Nav::Labels, title, body)).into_response()
    };
    let (json, criteria) = match parsed {
        Ok(p) => p,
        Err(mut e) => {
            problems.append(&mut e);
            return Ok(show(problems, None));
        }
    };
    if f.action != "save" || !problems.is_empty() {
        let hosts = state.hosts().count_hosts(&label_query(&criteria)).await?;
        return Ok(show(problems, Some((&json, hosts))));
    }
    let actor = viewer.require_write()?;
    let saved = match existing {
        None => {
            state
                .labels()
                .create_label(
                    NewLabel { name: f.name.trim().into(), description: f.description.trim().into(), criteria },
                    &actor,
                )
                .await
        }
        Some(l) => {
            let change = LabelChange {
                name: Some(f.name.trim().into()),
                description: Some(f.description.trim().into()),
                criteria: Some(criteria),
            };
            state.labels().update_label(l.id, change, &actor).await
        }
    };
    match saved {
        Ok(label) => Ok(Redirect::to(&format!("/labels/{}", label.id)).into_response()),
        Err(custodian_domain::StoreError::Conflict(m)) => Ok(show(vec![m], None)),
        Err(e) => Err(e.into()),
    }
}

pub async fn create(State(state): State<AppState>, posted: Posted<BuilderForm, CanWrite>) -> WebResult<Response> {
    submit(&state, &posted.viewer, &posted.form, "/labels/new", "New label", None).await
}

fn label_id(raw: &str) -> WebResult<i64> {
    crate::input::positive_id(raw).ok_or(WebError::NotFound)
}

#[derive(Debug, Deserialize, Default)]
pub struct PageParams {
    #[serde(default)]
    page: u64,
}

pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(p): Query<PageParams>,
) -> WebResult<Response> {
    let label = state.labels().get_label(label_id(&id)?).await?;
    let query = HostQuery { page: p.page, per_page: PER_PAGE + 1, ..label_query(&label.criteria) };
    let count_query = label_query(&label.criteria);
    let (mut hosts, total) =
        tokio::try_join!(state.hosts().list_hosts(&query), state.hosts().count_hosts(&count_query))?;
    let connections = connection_names(&state).await?;
    let has_next = hosts.len() as u64 > PER_PAGE;
    hosts.truncate(PER_PAGE as usize);
    let automatic = label.source_id.is_some();
    let body = html! {
        p.breadcrumb { a href="/labels" { "Labels" } " › " (label.name) }
        section.card {
            h2 { "Criteria" }
            @if !label.description.is_empty() { p { (label.description) } }
            pre.mono id="label-criteria" { (serde_json::to_string_pretty(&label.criteria.to_json()).unwrap_or_default()) }
            @if automatic { p.hint { "An automatic label: it follows its IdP group or department, and is not edited by hand." } }
        }
        section.card {
            h2 { "Hosts (" span id="label-host-count" { (thousands(total)) } ")" }
            @if hosts.is_empty() { p.empty { "No host matches." } } @else {
                table.data id="label-hosts" {
                    thead { tr { th scope="col" { "Hostname" } th scope="col" { "Serial" } th scope="col" { "IdP username" } th scope="col" { "Updated" } } }
                    tbody {
                        @for h in &hosts {
                            tr data-host=(h.id) {
                                td { a href={ "/hosts/" (h.id) } { (h.display_name()) } }
                                td.mono { (h.hardware_serial) }
                                td { @if let Some(u) = &h.end_user { (u.idp_username) } }
                                td { (when(h.updated_at)) }
                            }
                        }
                    }
                }
            }
            (pager(&format!("/labels/{}", label.id), &[], p.page, has_next))
        }
        @if viewer.can_write() && !automatic {
            section.card {
                h2 { "Edit" }
                @match BuilderForm::of_label(&label) {
                    Some(f) => (builder(&viewer, &format!("/labels/{}/edit", label.id), &f, &connections, None, &[])),
                    None => p.hint { "These criteria are nested deeper than the builder shows: edit them with " code { "PATCH /api/v1/fleet/labels/" (label.id) } "." },
                }
                form.inline method="post" action={ "/labels/" (label.id) "/delete" } id="delete-label" {
                    (csrf(&viewer))
                    button.danger type="submit" data-confirm={ "Delete the label " (label.name) "? Its " (total) " hosts stay; only the label goes." } { "Delete the label" }
                }
            }
        }
    };
    Ok(page(&viewer, Nav::Labels, &label.name, body).into_response())
}

pub async fn edit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted<BuilderForm, CanWrite>,
) -> WebResult<Response> {
    let label = state.labels().get_label(label_id(&id)?).await?;
    submit(&state, &posted.viewer, &posted.form, &format!("/labels/{}/edit", label.id), &label.name, Some(&label)).await
}

pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted<super::sign_in::Empty, CanWrite>,
) -> WebResult<Response> {
    let actor = posted.viewer.require_write()?;
    state.labels().delete_label(label_id(&id)?, &actor).await?;
    Ok(Redirect::to("/labels").into_response())
}
