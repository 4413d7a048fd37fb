//! Settings › Integrations › Identity provider: is the IdP reaching us, what to paste
//! into it, its API tokens, and the recent SCIM requests.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use custodian_domain::{ApiUser, NewApiUser, Role, ScimRequestEntry};
use custodian_scim::schema::ResourceKind;
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{Nav, ago, csrf, page, thousands, when};
use super::session::{AdminOnly, Posted, Viewer, origin};
use super::{WebError, WebResult};
use crate::state::AppState;

const PATH: &str = "/settings/integrations/identity-provider";
/// How many SCIM requests the page lists.
const HISTORY: u32 = 50;

/// What the page says about the connection, from the most recent SCIM request.
pub fn connection_status(last: Option<&ScimRequestEntry>) -> Markup {
    html! {
        @match last {
            None => div.status.status-none id="idp-status" {
                strong { "No IdP connected" }
                p { "Custodian has not received any request from an identity provider yet. Follow a guide below, then run the IdP's connection test." }
            },
            Some(e) if e.succeeded() => div.status.status-ok id="idp-status" {
                strong { "Received information from your IdP (" (ago(e.requested_at)) ")" }
                p { "Last request: " code { (e.method) " " (e.path) } " answered " (e.status) " at " (when(e.requested_at)) "." }
            },
            Some(e) => div.status.status-error id="idp-status" {
                strong { "Failed to receive information from your IdP (" (ago(e.requested_at)) ")" }
                p { "Last request: " code { (e.method) " " (e.path) } " answered " (e.status) " at " (when(e.requested_at)) "." }
                p.error-detail id="idp-error-detail" { (e.detail.as_deref().unwrap_or("no detail")) }
            },
        }
    }
}

fn guides(base_url: &str) -> Markup {
    html! {
        details.guide open {
            summary { "Okta" }
            ol {
                li { "Applications › Create App Integration › SAML 2.0 (the SSO URLs can be anything, e.g. " code { "https://example.com" } ")." }
                li { "General › App Settings › Edit › Provisioning: " strong { "SCIM" } "." }
                li { "Provisioning › Integration › Edit: SCIM connector base URL " code { (base_url) } ", unique identifier field " code { "userName" } "." }
                li { "Supported provisioning actions: Push New Users, Push Profile Updates, Push Groups. Authentication mode: " strong { "HTTP Header" } ", Authorization: a token created below." }
                li { "Test Connector Configuration, Save. Provisioning › To App: enable Create Users, Update User Attributes, Deactivate Users." }
                li { "Assign users and push groups, then come back here: the status above turns green." }
            }
        }
        details.guide {
            summary { "Microsoft Entra ID" }
            ol {
                li { "Enterprise applications › New application › Create your own application (non-gallery)." }
                li { "Provisioning › Get started › Provisioning mode: " strong { "Automatic" } "." }
                li { "Tenant URL: " code { (base_url) } " (no " code { "?aadOptscim062020" } " flag needed). Secret Token: a token created below." }
                li { "Test Connection, Save, then Users and groups: assign them, and Start provisioning." }
                li { "Entra provisions every 40 minutes; \"Provision on demand\" sends one user at once." }
            }
        }
    }
}

fn history_table(entries: &[ScimRequestEntry]) -> Markup {
    html! {
        @if entries.is_empty() {
            p.empty { "No SCIM request received yet." }
        } @else {
            table.data id="scim-history" {
                thead { tr { th { "Time" } th { "Request" } th { "Status" } th { "Detail" } th { "Client" } th.num { "ms" } } }
                tbody {
                    @for e in entries {
                        tr class=(if e.succeeded() { "ok" } else { "failed" }) {
                            td { (when(e.requested_at)) }
                            td { code { (e.method) " " (e.path) } }
                            td { (e.status) }
                            td { (e.detail.as_deref().unwrap_or("")) }
                            td { (e.user_agent.as_deref().unwrap_or("")) }
                            td.num { (format!("{:.1}", e.duration_ms)) }
                        }
                    }
                }
            }
        }
    }
}

fn tokens_section(viewer: &Viewer, api_users: &[ApiUser], new_token: Option<(&str, &str)>) -> Markup {
    html! {
        @if let Some((name, token)) = new_token {
            div.new-token id="new-token" {
                p { strong { "Token for \"" (name) "\"" } " — copy it now: it is shown only once and stored only as a digest." }
                div.copy-row {
                    input.mono type="text" readonly value=(token) id="new-token-value" aria-label="New API token";
                    button type="button" data-copy="new-token-value" { "Copy" }
                }
            }
        }
        @if api_users.is_empty() {
            p.empty { "No API-only user yet." }
        } @else {
            table.data id="api-tokens" {
                thead { tr { th { "Name" } th { "Role" } th { "Created" } @if viewer.is_admin() { th {} } } }
                tbody {
                    @for u in api_users {
                        tr {
                            td { (u.name) }
                            td { (u.role.as_str()) }
                            td { (when(u.created_at)) }
                            @if viewer.is_admin() {
                                td {
                                    form.inline method="post" action={ (PATH) "/tokens/" (u.id) "/revoke" } {
                                        (csrf(viewer))
                                        button.danger type="submit" data-confirm={ "Revoke the token of " (u.name) "? Its IdP will stop reaching Custodian." } { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if viewer.is_admin() {
            form.inline-form method="post" action={ (PATH) "/tokens" } id="create-token" {
                (csrf(viewer))
                label { "Name " input type="text" name="name" placeholder="okta" required maxlength="64"; }
                button.primary type="submit" { "Create an API-only maintainer token" }
            }
        } @else {
            p.hint { "Only an admin can create or revoke tokens." }
        }
    }
}

async fn render(
    state: &AppState,
    viewer: &Viewer,
    headers: &HeaderMap,
    new_token: Option<(&str, &str)>,
) -> WebResult<Response> {
    // Requests still queued for the history are written first, so that the status is current.
    state.recorder.flush().await;
    let history = state.operations().recent_scim_requests(HISTORY).await?;
    let users = state.directory().scim_count(custodian_domain::Scope::All, ResourceKind::User).await?;
    let groups = state.directory().scim_count(custodian_domain::Scope::All, ResourceKind::Group).await?;
    let api_users: Vec<ApiUser> =
        state.operators().list_api_users().await?.into_iter().filter(|u| u.api_only).collect();
    let base_url = format!("{}/api/v1/fleet/scim", origin(state, headers));
    let body = html! {
        section.card {
            h2 { "Connection" }
            (connection_status(history.first()))
            p.counts {
                "Received so far: "
                a href="/end-users" { strong id="user-count" { (thousands(users)) } (if users == 1 { " user" } else { " users" }) }
                " and "
                a href="/groups" { strong id="group-count" { (thousands(groups)) } (if groups == 1 { " group" } else { " groups" }) }
                "."
            }
        }
        section.card {
            h2 { "SCIM connector base URL" }
            p { "Paste this into your identity provider:" }
            div.copy-row {
                input.mono type="text" readonly value=(base_url) id="scim-base-url" aria-label="SCIM connector base URL";
                button type="button" data-copy="scim-base-url" { "Copy" }
            }
            (guides(&base_url))
        }
        section.card {
            h2 { "API tokens" }
            p { "Your IdP authenticates with the token of an API-only maintainer (header " code { "Authorization: Bearer <token>" } ")." }
            (tokens_section(viewer, &api_users, new_token))
        }
        section.card {
            h2 { "Recent SCIM requests" }
            (history_table(&history))
        }
    };
    Ok(page(
        viewer,
        Nav::Settings,
        "Identity provider",
        html! {
            p.breadcrumb { "Settings › Integrations › Identity provider" }
            (body)
        },
    )
    .into_response())
}

pub async fn show(State(state): State<AppState>, viewer: Viewer, headers: HeaderMap) -> WebResult<Response> {
    render(&state, &viewer, &headers, None).await
}

#[derive(Deserialize)]
pub struct TokenForm {
    name: String,
}

/// Creates an API-only maintainer and shows its token once, on the page this answers.
pub async fn create_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    posted: Posted<TokenForm, AdminOnly>,
) -> WebResult<Response> {
    posted.viewer.require_admin()?;
    let name = posted.form.name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(WebError::BadRequest("A token's name must have 1 to 64 characters.".into()));
    }
    let (token, digest) = crate::auth::generate_token();
    let user = state
        .operators()
        .create_api_user(NewApiUser {
            name: name.to_string(),
            email: None,
            role: Role::Maintainer,
            api_only: true,
            token: Some(digest),
        })
        .await?;
    tracing::info!(by = posted.viewer.user.id, user_id = user.id, "API-only maintainer created from the web interface");
    render(&state, &posted.viewer, &headers, Some((&user.name, &token))).await
}

#[derive(Deserialize)]
pub struct Empty {}

/// Revokes an API-only user's token by deleting the user; this instance's token cache
/// forgets it at once (other instances within the cache's few seconds).
pub async fn revoke_token(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    posted: Posted<Empty, AdminOnly>,
) -> WebResult<Response> {
    posted.viewer.require_admin()?;
    let target = state.operators().list_api_users().await?.into_iter().find(|u| u.id == id && u.api_only);
    let Some(target) = target else {
        return Err(WebError::NotFound);
    };
    state.operators().delete_api_user(&target.id.to_string()).await?;
    state.tokens.forget_user(target.id);
    tracing::info!(by = posted.viewer.user.id, user_id = target.id, "API-only user revoked from the web interface");
    Ok(Redirect::to(PATH).into_response())
}
