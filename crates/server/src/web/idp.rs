//! Settings › Integrations › Identity provider: the IdP connections (each with its state,
//! tokens and request history, on a page of its own), what to paste into an IdP, the
//! API-only maintainers' tokens, and the recent SCIM requests of all connections.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use custodian_domain::connections::{Connection, ConnectionChange, ConnectionId};
use custodian_domain::sync::{GoogleWorkspaceSettings, RunStatus, SyncRun};
use custodian_domain::{ApiUser, NewApiUser, Role, ScimRequestEntry};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{Nav, ago, csrf, page, thousands, when};
use super::session::{AdminOnly, CanWrite, Posted, PostedFiles, Viewer, origin};
use super::{WebError, WebResult};
use crate::idp_connections::{self as service, MAX_NAME, checked_name, priority_problem};
use crate::input::positive_id;
use crate::state::AppState;

const PATH: &str = "/settings/integrations/identity-provider";
/// The longest token lifetime a form offers, in days (ten years).
const MAX_TOKEN_DAYS: i64 = 3650;
/// How many SCIM requests the page lists.
const HISTORY: u32 = 50;
/// How many directory sync runs a connection's page lists.
const RUNS: u32 = 20;

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

/// The history of requests; `names` names each entry's connection (on the page of all of them).
fn history_table(entries: &[ScimRequestEntry], names: Option<&[Connection]>) -> Markup {
    html! {
        @if entries.is_empty() {
            p.empty { "No SCIM request received yet." }
        } @else {
            table.data id="scim-history" {
                thead { tr {
                    th { "Time" } @if names.is_some() { th { "Connection" } } th { "Request" } th { "Status" } th { "Detail" } th { "Client" } th.num { "ms" }
                } }
                tbody {
                    @for e in entries {
                        tr class=(if e.succeeded() { "ok" } else { "failed" }) {
                            td { (when(e.requested_at)) }
                            @if let Some(names) = names {
                                td { (names.iter().find(|c| Some(c.id) == e.connection).map_or("", |c| c.name.as_str())) }
                            }
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

fn new_token_box(label: &str, token: &str) -> Markup {
    html! {
        div.new-token id="new-token" {
            p { strong { (label) } " — copy it now: it is shown only once and stored only as a digest." }
            div.copy-row {
                input.mono type="text" readonly value=(token) id="new-token-value" aria-label="New token";
                button type="button" data-copy="new-token-value" { "Copy" }
            }
        }
    }
}

fn api_tokens_section(viewer: &Viewer, api_users: &[ApiUser], new_token: Option<(&str, &str)>) -> Markup {
    html! {
        @if let Some((name, token)) = new_token {
            (new_token_box(&format!("Token for \"{name}\""), token))
        }
        @if api_users.is_empty() {
            p.empty { "No API-only user yet." }
        } @else {
            table.data id="api-tokens" {
                thead { tr { th { "Name" } th { "Role" } th { "Created" } @if viewer.is_admin() { th { span.visually-hidden { "Actions" } } } } }
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
                button type="submit" { "Create an API-only maintainer token" }
            }
        } @else {
            p.hint { "Only an admin can create or revoke tokens." }
        }
    }
}

/// A connection's state in a word, from its last request.
fn state_badge(last: Option<&ScimRequestEntry>) -> Markup {
    html! {
        @match last {
            None => span.badge data-state="none" { "no request yet" },
            Some(e) if e.succeeded() => { span.badge.ok data-state="ok" { "receiving" } " " span.muted { (ago(e.requested_at)) } },
            Some(e) => { span.badge.warn data-state="error" { "failing" } " " span.muted { (ago(e.requested_at)) } },
        }
    }
}

fn connection_href(c: &Connection) -> String {
    format!("{PATH}/{}", c.id.0)
}

fn connections_section(viewer: &Viewer, connections: &[Connection]) -> Markup {
    let now = Utc::now();
    html! {
        table.data id="connections" {
            thead { tr {
                th { "Name" } th { "Kind" } th.num { "Priority" } th { "State" } th.num { "Users" } th.num { "Groups" } th.num { "Tokens" }
            } }
            tbody {
                @for c in connections {
                    tr data-connection=(c.name) {
                        td { a href=(connection_href(c)) { (c.name) } }
                        td { (c.kind.as_str()) }
                        td.num { (c.priority) }
                        td { (state_badge(c.last_request.as_ref())) }
                        td.num { (thousands(c.users)) }
                        td.num { (thousands(c.groups)) }
                        td.num { (c.tokens.iter().filter(|t| !t.is_expired(now)).count()) }
                    }
                }
            }
        }
        p.hint {
            "When several connections have a user for a host, the one with the lowest priority number wins. "
            "Each connection has its own SCIM tokens: a connection's token reaches the SCIM routes only, and only its own users and groups."
        }
        @if viewer.is_admin() {
            form.inline-form method="post" action={ (PATH) "/connections" } id="add-connection" {
                (csrf(viewer))
                label { "Name " input type="text" name="name" placeholder="entra-subsidiary" required maxlength=(MAX_NAME); }
                label { "Priority " input type="number" name="priority" min="0" max="1000000" step="1" placeholder="next free"; }
                button.primary type="submit" { "Add a SCIM connection" }
            }
            (google_form(viewer))
        }
    }
}

/// The fields of a Google Workspace connection, empty or with `current`'s values (then
/// the key file is optional: it replaces the key).
fn google_fields(current: Option<&GoogleWorkspaceSettings>) -> Markup {
    let admin_email = current.map(|c| c.admin_email.as_str()).unwrap_or("");
    let customer = current.map_or(service::DEFAULT_CUSTOMER_ID, |c| c.customer_id.as_str());
    let units = current.map_or_else(|| "/".to_string(), |c| c.org_unit_paths.join("\n"));
    let interval = current.map_or(service::DEFAULT_SYNC_INTERVAL_SECONDS, |c| c.sync_interval_seconds);
    let api = current.map_or(custodian_google::DEFAULT_API_BASE_URL, |c| c.api_base_url.as_str());
    html! {
        @if current.is_some() {
            label { "New service account key file (JSON), to rotate the key " input type="file" name="key_file" accept="application/json,.json"; }
        } @else {
            label { "Service account key file (JSON) " input type="file" name="key_file" accept="application/json,.json" required; }
        }
        label { "Admin email " input type="email" name="admin_email" value=(admin_email) placeholder="admin@example.com" required maxlength="254"; }
        label { "Customer ID " input type="text" name="customer_id" value=(customer) maxlength="64"; }
        label { "Org units, one per line " textarea name="org_unit_paths" rows="2" { (units) } }
        label { "Seconds between runs " input type="number" name="sync_interval_seconds" value=(interval) min=(service::SYNC_INTERVAL_RANGE.start()) max=(service::SYNC_INTERVAL_RANGE.end()) step="1"; }
        details {
            summary { "Advanced" }
            label { "Directory API URL (a proxy) " input type="url" name="api_base_url" value=(api) maxlength="2048"; }
        }
    }
}

/// Adding a Google Workspace connection: the key file is uploaded, never shown again.
fn google_form(viewer: &Viewer) -> Markup {
    html! {
        details.guide id="google-workspace-guide" {
            summary { "Google Workspace (Custodian reads the directory)" }
            ol {
                li { "Google Cloud console › IAM & Admin › Service accounts: create a service account, then Keys › Add key › JSON. Enable the Admin SDK API in its project." }
                li { "Google Admin console › Security › Access and data control › API controls › Manage domain-wide delegation › Add new: the service account's client ID and exactly these scopes: " code { (custodian_google::SCOPES.join(",")) } }
                li { "Add the connection below with the key file and the email of an admin who may read users and groups. The first run starts at once; its result shows on the connection's page." }
            }
        }
        form.stacked-form method="post" action={ (PATH) "/google-workspace" } enctype="multipart/form-data" id="add-google-connection" {
            (csrf(viewer))
            label { "Name " input type="text" name="name" placeholder="google" required maxlength=(MAX_NAME); }
            label { "Priority " input type="number" name="priority" min="0" max="1000000" step="1" placeholder="next free"; }
            (google_fields(None))
            button.primary type="submit" { "Add a Google Workspace connection" }
        }
    }
}

fn base_url_section(base_url: &str) -> Markup {
    html! {
        section.card {
            h2 { "SCIM connector base URL" }
            p { "Paste this into your identity provider. Every connection has the same base URL: the token says which connection a request belongs to." }
            div.copy-row {
                input.mono type="text" readonly value=(base_url) id="scim-base-url" aria-label="SCIM connector base URL";
                button type="button" data-copy="scim-base-url" { "Copy" }
            }
            (guides(base_url))
        }
    }
}

/// Operators' single sign-on: whether it is on, and the redirect URI with each IdP's steps.
fn sso_section(state: &AppState, redirect_uri: &str) -> Markup {
    let groups = |g: &[String]| if g.is_empty() { "none".to_string() } else { g.join(", ") };
    html! {
        section.card id="single-sign-on" {
            h2 { "Single sign-on for operators" }
            @if let Some(p) = &state.config.oidc {
                p.status.status-ok id="sso-status" { "On: operators sign in with " strong { (p.settings.display_name) } " (" code { (p.issuer) } ")." }
                dl.facts {
                    dt { "Client ID" } dd { code { (p.settings.client_id) } }
                    dt { "Groups claim" } dd { code { (p.settings.groups_claim) } }
                    dt { "Admin groups" } dd { (groups(&p.settings.role_groups.admin)) }
                    dt { "Maintainer groups" } dd { (groups(&p.settings.role_groups.maintainer)) }
                    dt { "Observer groups" } dd { (groups(&p.settings.role_groups.observer)) }
                    dt { "Allowed domains" } dd { (if p.settings.allowed_domains.is_empty() { "any".to_string() } else { p.settings.allowed_domains.join(", ") }) }
                    dt { "Password sign-in" } dd id="password-sign-in" { (if state.config.password_sign_in { "everyone with a password" } else { "admins only (break-glass)" }) }
                }
            } @else {
                p.status.status-none id="sso-status" { "Off: operators sign in with a password. Start " code { "custodian serve" } " with " code { "--oidc-issuer" } " and the flags below to turn it on." }
            }
            p { "Register this redirect URI (sign-in redirect URI, reply URL) with your identity provider:" }
            div.copy-row {
                input.mono type="text" readonly value=(redirect_uri) id="oidc-redirect-uri" aria-label="Single sign-on redirect URI";
                button type="button" data-copy="oidc-redirect-uri" { "Copy" }
            }
            details.guide {
                summary { "Okta" }
                ol {
                    li { "Applications › Create App Integration › OIDC - OpenID Connect › Web Application." }
                    li { "Sign-in redirect URI: the one above. Grant type: Authorization Code. Assign the groups of your Custodian operators." }
                    li { "Sign On tab › OpenID Connect ID Token › Groups claim: name " code { "groups" } ", filter Matches regex " code { ".*" } " (or Starts with your prefix)." }
                    li { "Start Custodian with " code { "--oidc-issuer https://YOUR-ORG.okta.com --oidc-client-id ID --oidc-client-secret-file FILE --oidc-display-name Okta --oidc-admin-groups custodian-admins" } " (and the maintainer and observer groups)." }
                }
            }
            details.guide {
                summary { "Microsoft Entra ID" }
                ol {
                    li { "App registrations › New registration › Web, with the redirect URI above." }
                    li { "Certificates & secrets › New client secret: save it in the file of " code { "--oidc-client-secret-file" } "." }
                    li { "Token configuration › Add groups claim › Security groups (ID token: Group ID). Entra sends group object IDs: give those to " code { "--oidc-admin-groups" } " and the others." }
                    li { "Token configuration › Add optional claim › ID token: " code { "email" } ". Entra does not send " code { "email_verified" } ": without it Custodian keeps no email, so offboarding by email and " code { "--oidc-allowed-domains" } " do not apply." }
                    li { "Issuer: " code { "https://login.microsoftonline.com/TENANT-ID/v2.0" } "." }
                }
            }
            details.guide {
                summary { "Google" }
                ol {
                    li { "Google Cloud console › APIs & Services › Credentials › Create credentials › OAuth client ID › Web application, with the redirect URI above." }
                    li { "Issuer: " code { "https://accounts.google.com" } "; add " code { "--oidc-allowed-domains your-domain.com" } " (checked against the verified email and Google's " code { "hd" } ")." }
                    li { "Google's ID tokens carry no groups: a groups claim must come from a provider in front of Google (or sign-in stays with passwords)." }
                }
            }
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
    let (history, connections, operators) = tokio::try_join!(
        state.operations().recent_scim_requests(HISTORY),
        state.connections().list_connections(),
        state.operators().list_api_users(),
    )?;
    let api_users: Vec<ApiUser> = operators.into_iter().filter(|u| u.api_only).collect();
    let users: u64 = connections.iter().map(|c| c.users).sum();
    let groups: u64 = connections.iter().map(|c| c.groups).sum();
    let base_url = format!("{}/api/v1/fleet/scim", origin(state, headers));
    let body = html! {
        p.breadcrumb { "Settings › Integrations › Identity provider" @if viewer.is_admin() { " · " a href="/settings/operators" id="operators-link" { "Operators" } } }
        section.card {
            h2 { "Status" }
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
            h2 { "Connections" }
            (connections_section(viewer, &connections))
        }
        (base_url_section(&base_url))
        (sso_section(state, &super::sso::redirect_uri(state, headers)))
        section.card {
            h2 { "API-only maintainer tokens" }
            p {
                "The token of an API-only maintainer (header " code { "Authorization: Bearer <token>" } ") reaches the whole API and writes to the "
                code { "default" } " connection, as IdPs set up before connections existed do. A connection's own token is safer: SCIM only."
            }
            (api_tokens_section(viewer, &api_users, new_token))
        }
        section.card {
            h2 { "Recent SCIM requests" }
            (history_table(&history, Some(&connections)))
        }
    };
    Ok(page(viewer, Nav::Settings, "Identity provider", body).into_response())
}

pub async fn show(State(state): State<AppState>, viewer: Viewer, headers: HeaderMap) -> WebResult<Response> {
    render(&state, &viewer, &headers, None).await
}

fn connection_id(raw: &str) -> WebResult<ConnectionId> {
    positive_id(raw).map(ConnectionId).ok_or(WebError::NotFound)
}

fn tokens_table(viewer: &Viewer, c: &Connection) -> Markup {
    let now = Utc::now();
    html! {
        @if c.tokens.is_empty() {
            p.empty id="no-connection-tokens" { "This connection has no live token: its IdP cannot reach Custodian. Create one below." }
        } @else {
            table.data id="connection-tokens" {
                thead { tr { th.num { "ID" } th { "Created" } th { "Expires" } th { "Last used" } @if viewer.is_admin() { th { span.visually-hidden { "Actions" } } } } }
                tbody {
                    @for t in &c.tokens {
                        tr data-token=(t.id) class=[t.is_expired(now).then_some("failed")] {
                            td.num { (t.id) }
                            td { (when(t.created_at)) }
                            td {
                                @match t.expires_at {
                                    None => span.muted { "never" },
                                    Some(at) if t.is_expired(now) => { (when(at)) " " span.badge.warn { "expired" } },
                                    Some(at) => (when(at)),
                                }
                            }
                            td { @match t.last_used_at { Some(at) => (when(at)), None => span.muted { "never" } } }
                            @if viewer.is_admin() {
                                td {
                                    form.inline method="post" action={ (connection_href(c)) "/tokens/" (t.id) "/revoke" } {
                                        (csrf(viewer))
                                        button.danger type="submit" data-confirm="Revoke this token? The IdP that uses it stops reaching Custodian at once." { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if viewer.is_admin() {
            form.inline-form method="post" action={ (connection_href(c)) "/tokens" } id="create-connection-token" {
                (csrf(viewer))
                label { "Expires in " input type="number" name="expires_in_days" min="1" max=(MAX_TOKEN_DAYS) step="1" placeholder="never"; " days" }
                button.primary type="submit" { "Create a token" }
            }
            p.hint { "To rotate without downtime: create a token, paste it into the IdP, test the connection there, then revoke the old one." }
        }
    }
}

fn settings_section(viewer: &Viewer, c: &Connection) -> Markup {
    html! {
        form.inline-form method="post" action={ (connection_href(c)) "/edit" } id="edit-connection" {
            (csrf(viewer))
            label { "Name " input type="text" name="name" value=(c.name) required maxlength=(MAX_NAME); }
            label { "Priority " input type="number" name="priority" value=(c.priority) min="0" max="1000000" step="1" required; }
            button type="submit" id="save-connection" { "Save" }
        }
        form.inline method="post" action={ (connection_href(c)) "/delete" } id="remove-connection" {
            (csrf(viewer))
            button.danger type="submit"
                data-confirm={ "Remove the connection " (c.name) " with its " (c.users) " users and " (c.groups) " groups? Their hosts are unlinked; no offboarding webhook fires." }
                { "Remove this connection" }
        }
        @if c.name == custodian_domain::connections::DEFAULT_CONNECTION_NAME {
            p.hint { "The default connection can be removed only once it has no users and no groups." }
        }
    }
}

/// A directory sync's state, from its last finished run.
fn sync_status(last: Option<&SyncRun>) -> Markup {
    html! {
        @match last {
            None => div.status.status-none id="idp-status" {
                strong { "No run has finished yet" }
                p { "The first run starts within seconds of adding the connection; reload to see it." }
            },
            Some(r) if r.status == RunStatus::Success => div.status.status-ok id="idp-status" {
                strong { "Received information from Google Workspace (" (ago(r.finished_at.unwrap_or(r.started_at))) ")" }
                p { "Last run: " (thousands(r.counts.users_seen)) " users and " (thousands(r.counts.groups_seen)) " groups read; "
                    (r.counts.created) " created, " (r.counts.updated) " updated, " (r.counts.deleted) " deleted." }
            },
            Some(r) => div.status.status-error id="idp-status" {
                strong { "The last run failed (" (ago(r.finished_at.unwrap_or(r.started_at))) "): nothing was changed" }
                p.error-detail id="idp-error-detail" { (r.error.as_deref().unwrap_or("no detail")) }
            },
        }
    }
}

fn run_badge(run: &SyncRun) -> Markup {
    html! {
        @match run.status {
            RunStatus::Running => span.badge data-state="running" { "running" },
            RunStatus::Success => span.badge.ok data-state="success" { "success" },
            RunStatus::Error => span.badge.warn data-state="error" { "error" },
        }
    }
}

/// A directory sync's settings, its runs, and the buttons that start one.
fn sync_section(viewer: &Viewer, c: &Connection, google: &GoogleWorkspaceSettings, runs: &[SyncRun]) -> Markup {
    let running = runs.first().filter(|r| r.status == RunStatus::Running);
    let to_confirm = runs.first().and_then(|r| r.deletions_to_confirm);
    html! {
        dl.facts id="google-settings" {
            @if viewer.is_admin() {
                dt { "Service account" } dd id="google-client-email" { (google.client_email) }
                dt { "Key ID" } dd.mono id="google-key-id" { (google.private_key_id) }
            }
            dt { "Acting as" } dd id="google-admin-email" { (google.admin_email) }
            dt { "Customer" } dd id="google-customer-id" { (google.customer_id) }
            dt { "Org units" } dd id="google-org-units" { (google.org_unit_paths.join(", ")) }
            dt { "Every" } dd id="google-interval" { (google.sync_interval_seconds) " seconds" }
        }
        @if let Some(run) = running {
            p.status.status-none id="sync-progress" role="status" {
                "A run is in progress (started " (ago(run.started_at)) "): reading the whole directory, then applying what changed in one step. Reload to follow it."
            }
        }
        @if viewer.user.role.can_write() {
            div.actions {
            form.inline method="post" action={ (connection_href(c)) "/sync" } id="sync-now" {
                (csrf(viewer))
                button.primary type="submit" { "Sync now" }
            }
            @if let Some(n) = to_confirm {
                form.inline method="post" action={ (connection_href(c)) "/sync" } id="confirm-deletions" {
                    (csrf(viewer))
                    input type="hidden" name="allow_deletions" value=(n);
                    button.danger type="submit"
                        data-confirm={ "Delete " (n) " users of " (c.name) "? Their hosts are unlinked and offboarding events are sent." }
                        { "Confirm " (n) " deletions and sync" }
                }
            }
            }
        }
        @if runs.is_empty() {
            p.empty id="no-sync-runs" { "No run yet: the first starts within seconds of adding the connection." }
        } @else {
            table.data id="sync-runs" {
                caption.visually-hidden { "Directory sync runs, newest first" }
                thead { tr {
                    th { "Started" } th { "Finished" } th { "Status" } th.num { "Users" } th.num { "Groups" }
                    th.num { "Created" } th.num { "Updated" } th.num { "Deleted" } th { "Error" }
                } }
                tbody {
                    @for r in runs {
                        tr data-run=(r.id) data-status=(r.status.as_str()) class=[(r.status == RunStatus::Error).then_some("failed")] {
                            td { (when(r.started_at)) }
                            td { @match r.finished_at { Some(at) => (when(at)), None => span.muted { "running" } } }
                            td { (run_badge(r)) }
                            td.num { (thousands(r.counts.users_seen)) }
                            td.num { (thousands(r.counts.groups_seen)) }
                            td.num { (thousands(r.counts.created)) }
                            td.num { (thousands(r.counts.updated)) }
                            td.num { (thousands(r.counts.deleted)) }
                            td.error-detail { (r.error.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
        p.hint {
            "A run reads every user and group, nested groups included, and applies only what changed, in one step: a run that fails anywhere changes nothing. "
            "A run that would delete more than 10% of the connection's users, or that finds none, deletes nothing until confirmed."
        }
    }
}

async fn render_connection(
    state: &AppState,
    viewer: &Viewer,
    headers: &HeaderMap,
    id: ConnectionId,
    new_token: Option<&str>,
) -> WebResult<Response> {
    state.recorder.flush().await;
    let (c, history, runs) = tokio::try_join!(
        state.connections().get_connection(id),
        state.connections().connection_requests(id, HISTORY),
        state.sync_runs().sync_runs(id, RUNS),
    )?;
    let base_url = format!("{}/api/v1/fleet/scim", origin(state, headers));
    let body = html! {
        p.breadcrumb { "Settings › Integrations › " a href=(PATH) { "Identity provider" } " › " (c.name) }
        section.card {
            h2 { "Status" }
            @if c.google_workspace.is_some() {
                (sync_status(runs.iter().find(|r| r.status != RunStatus::Running)))
            } @else {
                (connection_status(c.last_request.as_ref()))
            }
            dl.facts id="connection-facts" {
                dt { "ID" } dd id="connection-id" { (c.id.0) }
                dt { "Kind" } dd id="connection-kind" { (c.kind.as_str()) }
                dt { "Priority" } dd id="connection-priority" { (c.priority) }
                dt { "Users" } dd id="user-count" { (thousands(c.users)) }
                dt { "Groups" } dd id="group-count" { (thousands(c.groups)) }
                dt { "Created" } dd { (when(c.created_at)) }
            }
        }
        @if let Some(google) = &c.google_workspace {
            section.card {
                h2 { "Directory sync" }
                (sync_section(viewer, &c, google, &runs))
            }
        } @else {
            section.card {
                h2 { "Tokens" }
                @if let Some(token) = new_token {
                    (new_token_box(&format!("SCIM token for \"{}\"", c.name), token))
                }
                p { "Paste a token into the IdP as its bearer token (" code { "Authorization: Bearer <token>" } "). It reaches the SCIM routes only, for this connection's users and groups." }
                (tokens_table(viewer, &c))
            }
            (base_url_section(&base_url))
        }
        @if viewer.is_admin() {
            section.card {
                h2 { "Settings" }
                (settings_section(viewer, &c))
                @if let Some(google) = &c.google_workspace {
                    h3 { "Google Workspace" }
                    form.stacked-form method="post" action={ (connection_href(&c)) "/google-workspace" } enctype="multipart/form-data" id="edit-google-connection" {
                        (csrf(viewer))
                        (google_fields(Some(google)))
                        button type="submit" { "Save the Google Workspace settings" }
                    }
                }
            }
        }
        @if c.google_workspace.is_none() {
            section.card {
                h2 { "Recent SCIM requests" }
                (history_table(&history, None))
            }
        }
    };
    Ok(page(viewer, Nav::Settings, &format!("IdP connection {}", c.name), body).into_response())
}

pub async fn show_connection(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> WebResult<Response> {
    render_connection(&state, &viewer, &headers, connection_id(&raw)?, None).await
}

/// An optional whole number from a form field (empty: none).
fn form_number(field: &str, raw: &str) -> WebResult<Option<i64>> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    raw.parse::<i64>().map(Some).map_err(|_| WebError::BadRequest(format!("{field} must be a whole number.")))
}

fn checked_priority(raw: &str) -> WebResult<Option<i64>> {
    let priority = form_number("Priority", raw)?;
    match priority.and_then(priority_problem) {
        Some(reason) => Err(WebError::BadRequest(format!("Priority {reason}."))),
        None => Ok(priority),
    }
}

fn checked_form_name(raw: &str) -> WebResult<String> {
    checked_name(raw).map_err(|reason| WebError::BadRequest(format!("Name {reason}.")))
}

#[derive(Deserialize)]
pub struct ConnectionForm {
    name: String,
    #[serde(default)]
    priority: String,
}

/// Adds a SCIM connection and answers its page with the first token, shown this once.
pub async fn create_connection(
    State(state): State<AppState>,
    headers: HeaderMap,
    posted: Posted<ConnectionForm, AdminOnly>,
) -> WebResult<Response> {
    let actor = posted.viewer.require_admin()?;
    let name = checked_form_name(&posted.form.name)?;
    let priority = checked_priority(&posted.form.priority)?;
    let (c, token) = service::create(&state, name, priority, &actor).await?;
    tracing::info!(by = posted.viewer.user.id, connection = c.id.0, "IdP connection added from the web interface");
    render_connection(&state, &posted.viewer, &headers, c.id, Some(&token)).await
}

/// Adds a Google Workspace connection from an uploaded key file; its first run starts at
/// once and shows on its page.
pub async fn create_google_connection(
    State(state): State<AppState>,
    headers: HeaderMap,
    posted: PostedFiles<AdminOnly>,
) -> WebResult<Response> {
    let actor = posted.viewer.require_admin()?;
    let field = |name: &str| posted.fields.get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let name = checked_form_name(&field("name").unwrap_or_default())?;
    let priority = checked_priority(&field("priority").unwrap_or_default())?;
    if field("key_file").is_none() {
        return Err(WebError::BadRequest("Choose the service account's JSON key file.".into()));
    }
    let google = google_form_fields(&posted.fields)?.check().map_err(google_problems)?;
    let c = service::create_google_workspace(&state, name, priority, google, &actor).await?;
    tracing::info!(
        by = posted.viewer.user.id,
        connection = c.id.0,
        "Google Workspace connection added from the web interface"
    );
    render_connection(&state, &posted.viewer, &headers, c.id, None).await
}

/// The Google Workspace fields of a posted form, each of the right type.
fn google_form_fields(fields: &std::collections::HashMap<String, String>) -> WebResult<service::GoogleWorkspaceForm> {
    let field = |name: &str| fields.get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    // Never echoed: a file that is not JSON is refused without quoting it.
    let key = match field("key_file") {
        None => None,
        Some(text) => Some(serde_json::from_str::<serde_json::Value>(&text).map_err(|_| {
            WebError::BadRequest("The key file is not JSON: download a JSON key of the service account.".into())
        })?),
    };
    let interval = match field("sync_interval_seconds") {
        None => None,
        Some(raw) => Some(
            raw.parse::<u64>()
                .map_err(|_| WebError::BadRequest("Seconds between runs must be a whole number.".into()))?,
        ),
    };
    Ok(service::GoogleWorkspaceForm {
        service_account_key: key,
        admin_email: field("admin_email"),
        customer_id: field("customer_id"),
        org_unit_paths: field("org_unit_paths")
            .map(|text| text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect()),
        sync_interval_seconds: interval,
        api_base_url: field("api_base_url"),
    })
}

/// The checks' problems in words for the error page.
fn google_problems(problems: Vec<(&'static str, String)>) -> WebError {
    let label = |f: &str| match f {
        "service_account_key" => "The key file",
        "admin_email" => "Admin email",
        "customer_id" => "Customer ID",
        "org_unit_paths" => "Org units",
        "sync_interval_seconds" => "Seconds between runs",
        "api_base_url" => "The Directory API URL",
        _ => "A field",
    };
    WebError::BadRequest(
        problems.iter().map(|(f, reason)| format!("{} {reason}.", label(f))).collect::<Vec<_>>().join(" "),
    )
}

/// Changes a Google Workspace connection's settings; a new key file rotates its key.
pub async fn edit_google_connection(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    posted: PostedFiles<AdminOnly>,
) -> WebResult<Response> {
    let actor = posted.viewer.require_admin()?;
    let id = connection_id(&raw)?;
    let current = state.connections().get_connection(id).await?;
    let Some(settings) = current.google_workspace else {
        return Err(WebError::BadRequest("This connection is not a Google Workspace connection.".into()));
    };
    let google = google_form_fields(&posted.fields)?.check_change(&settings).map_err(google_problems)?;
    let change = ConnectionChange { name: None, priority: None, google_workspace: Some(google) };
    service::update(&state, id, change, &actor).await?;
    Ok(Redirect::to(&format!("{PATH}/{}", id.0)).into_response())
}

#[derive(Deserialize)]
pub struct SyncForm {
    #[serde(default)]
    allow_deletions: String,
}

/// Starts a directory sync run (with confirmed deletions from the guard's button).
pub async fn sync_connection(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    posted: Posted<SyncForm, CanWrite>,
) -> WebResult<Response> {
    posted.viewer.require_write()?;
    let id = connection_id(&raw)?;
    let allow = match form_number("Confirmed deletions", &posted.form.allow_deletions)? {
        Some(n) if n < 0 => return Err(WebError::BadRequest("Confirmed deletions must not be negative.".into())),
        other => other.map(|n| n as u64),
    };
    service::sync_now(&state, id, allow).await?;
    Ok(Redirect::to(&format!("{PATH}/{}", id.0)).into_response())
}

/// Renames a connection or changes its priority.
pub async fn edit_connection(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    posted: Posted<ConnectionForm, AdminOnly>,
) -> WebResult<Response> {
    let actor = posted.viewer.require_admin()?;
    let id = connection_id(&raw)?;
    let name = checked_form_name(&posted.form.name)?;
    let Some(priority) = checked_priority(&posted.form.priority)? else {
        return Err(WebError::BadRequest("Priority is required.".into()));
    };
    service::update(
        &state,
        id,
        ConnectionChange { name: Some(name), priority: Some(priority), google_workspace: None },
        &actor,
    )
    .await?;
    Ok(Redirect::to(&format!("{PATH}/{}", id.0)).into_response())
}

#[derive(Deserialize)]
pub struct Empty {}

pub async fn delete_connection(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    posted: Posted<Empty, AdminOnly>,
) -> WebResult<Response> {
    let actor = posted.viewer.require_admin()?;
    service::delete(&state, connection_id(&raw)?, &actor).await?;
    Ok(Redirect::to(PATH).into_response())
}

#[derive(Deserialize)]
pub struct ConnectionTokenForm {
    #[serde(default)]
    expires_in_days: String,
}

/// Adds a token to a connection and answers its page with the token, shown this once.
pub async fn create_connection_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    posted: Posted<ConnectionTokenForm, AdminOnly>,
) -> WebResult<Response> {
    posted.viewer.require_admin()?;
    let id = connection_id(&raw)?;
    let days = form_number("Expires in", &posted.form.expires_in_days)?;
    let expires_at = match days {
        None => None,
        Some(d) if (1..=MAX_TOKEN_DAYS).contains(&d) => Some(Utc::now() + chrono::Duration::days(d)),
        Some(_) => {
            return Err(WebError::BadRequest(format!("Expires in must be from 1 to {MAX_TOKEN_DAYS} days, or empty.")));
        }
    };
    let (token_id, token) = service::add_token(&state, id, expires_at).await?;
    tracing::info!(
        by = posted.viewer.user.id,
        connection = id.0,
        token_id,
        "IdP connection token added from the web interface"
    );
    render_connection(&state, &posted.viewer, &headers, id, Some(&token)).await
}

pub async fn revoke_connection_token(
    State(state): State<AppState>,
    Path((raw, raw_token)): Path<(String, String)>,
    posted: Posted<Empty, AdminOnly>,
) -> WebResult<Response> {
    let actor = posted.viewer.require_admin()?;
    let id = connection_id(&raw)?;
    let token_id = positive_id(&raw_token).ok_or(WebError::NotFound)?;
    service::revoke_token(&state, id, token_id, &actor).await?;
    Ok(Redirect::to(&format!("{PATH}/{}", id.0)).into_response())
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

/// Revokes an API-only user's token by deleting the user; it stops working at once (this
/// instance's token cache forgets it; instances sharing a database cache no token).
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
