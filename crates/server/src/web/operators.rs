//! Operators (`/settings/operators`, admins): who may use Custodian, how they sign in,
//! their role (changed here, effective on their next request), their sessions (ended
//! here) and their last sign-in; creating a password operator and deleting one.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use custodian_domain::Role;
use custodian_domain::web::NewPasswordUser;
use maud::html;
use serde::Deserialize;

use super::layout::{Nav, csrf, page, when};
use super::session::{AdminOnly, Posted, Viewer};
use super::{WebError, WebResult};
use crate::passwords;
use crate::state::AppState;

pub const PATH: &str = "/settings/operators";
const ROLES: [Role; 3] = [Role::Observer, Role::Maintainer, Role::Admin];

fn operator_id(raw: &str) -> WebResult<i64> {
    crate::input::positive_id(raw).ok_or(WebError::NotFound)
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

pub async fn list(State(state): State<AppState>, viewer: Viewer) -> WebResult<Response> {
    viewer.require_admin()?;
    let operators = state.operators().operator_summaries().await?;
    let body = html! {
        section.card {
            h2 { "Operators" }
            table.data id="operators" {
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Email" } th scope="col" { "Signs in with" }
                    th scope="col" { "Role" } th scope="col" { "Sessions" } th scope="col" { "Last sign-in" }
                    th scope="col" { span.visually-hidden { "Actions" } }
                } }
                tbody {
                    @for o in &operators {
                        @let u = &o.user;
                        tr data-operator=(u.id) {
                            td { a href={ (PATH) "/" (u.id) } { (u.name) }
                                @if let Some(reason) = &o.blocked_reason { " " span.badge.warn title=(reason) { "offboarded" } } }
                            td { (u.email.as_deref().unwrap_or("")) }
                            td { (if u.api_only { "API token" } else if o.sso { "single sign-on" } else if o.has_password { "password" } else { "—" }) }
                            td {
                                @if u.id == viewer.user.id {
                                    (u.role.as_str()) " " span.hint { "(you)" }
                                } @else {
                                    form.inline method="post" action={ (PATH) "/" (u.id) "/role" } {
                                        (csrf(&viewer))
                                        label.visually-hidden for={ "role-" (u.id) } { "Role of " (u.name) }
                                        select name="role" id={ "role-" (u.id) } {
                                            @for r in ROLES { option value=(r.as_str()) selected[u.role == r] { (r.as_str()) } }
                                        }
                                        " "
                                        button type="submit" { "Save" }
                                    }
                                }
                            }
                            td.num.sessions { a href={ (PATH) "/" (u.id) } { (o.sessions) } }
                            td { @match o.last_sign_in_at { Some(t) => (when(t)), None => span.muted { "never" } } }
                            td {
                                @if u.id != viewer.user.id {
                                    form.inline method="post" action={ (PATH) "/" (u.id) "/delete" } {
                                        (csrf(&viewer))
                                        button.danger type="submit"
                                            data-confirm={ "Delete " (u.name) "? " (plural(o.sessions, "session", "sessions")) " and " (plural(o.tokens, "API token", "API tokens")) " end with it, at once." }
                                            { "Delete" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            p.hint { "A role changed here takes effect on the operator's next request. Single sign-on operators get their role from their groups again at each sign-in." }
        }
        section.card {
            h2 { "Add an operator who signs in with a password" }
            form.stacked-form method="post" action=(PATH) id="create-operator" {
                (csrf(&viewer))
                label { "Full name" input type="text" name="name" required maxlength="200"; }
                label { "Email" input type="email" name="email" required autocomplete="off"; }
                label { "Role"
                    select name="role" { @for r in ROLES { option value=(r.as_str()) { (r.as_str()) } } }
                }
                label { "Password (12 characters or more)" input type="password" name="password" minlength="12" required autocomplete="new-password"; }
                button.primary type="submit" { "Add the operator" }
            }
        }
    };
    Ok(page(&viewer, Nav::Settings, "Operators", body).into_response())
}

#[derive(Deserialize)]
pub struct NewOperatorForm {
    name: String,
    email: String,
    role: String,
    password: String,
}

pub async fn create(State(state): State<AppState>, posted: Posted<NewOperatorForm, AdminOnly>) -> WebResult<Response> {
    let f = &posted.form;
    let role: Role =
        f.role.parse().map_err(|_| WebError::BadRequest("role must be observer, maintainer or admin.".into()))?;
    let (name, email) = (f.name.trim(), f.email.trim());
    if name.is_empty() {
        return Err(WebError::BadRequest("Enter the operator's name.".into()));
    }
    if !email.contains('@') || email.contains(char::is_whitespace) {
        return Err(WebError::BadRequest("Enter a valid email.".into()));
    }
    passwords::check_new_password(&f.password).map_err(WebError::BadRequest)?;
    let password_hash = passwords::hash(f.password.clone()).await?;
    let user = state
        .operators()
        .create_password_user(NewPasswordUser { name: name.into(), email: email.into(), role, password_hash })
        .await?;
    tracing::info!(by = posted.viewer.user.id, user_id = user.id, "operator created from the web interface");
    Ok(Redirect::to(PATH).into_response())
}

#[derive(Deserialize)]
pub struct RoleForm {
    role: String,
}

pub async fn set_role(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted<RoleForm, AdminOnly>,
) -> WebResult<Response> {
    let id = operator_id(&id)?;
    if id == posted.viewer.user.id {
        return Err(WebError::BadRequest("You cannot change your own role: ask another admin.".into()));
    }
    let role: Role = posted
        .form
        .role
        .parse()
        .map_err(|_| WebError::BadRequest("role must be observer, maintainer or admin.".into()))?;
    let actor = posted.viewer.require_admin()?;
    state.operators().set_operator_role(id, role, &actor).await?;
    Ok(Redirect::to(PATH).into_response())
}

pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted<super::sign_in::Empty, AdminOnly>,
) -> WebResult<Response> {
    let id = operator_id(&id)?;
    if id == posted.viewer.user.id {
        return Err(WebError::BadRequest("You cannot delete yourself: ask another admin.".into()));
    }
    let gone = state.operators().delete_api_user(&id.to_string()).await?;
    // This instance's token cache forgets its tokens at once.
    state.tokens.forget_user(gone.id);
    tracing::info!(by = posted.viewer.user.id, user_id = gone.id, "operator deleted from the web interface");
    Ok(Redirect::to(PATH).into_response())
}

pub async fn show(State(state): State<AppState>, viewer: Viewer, Path(id): Path<String>) -> WebResult<Response> {
    viewer.require_admin()?;
    let id = operator_id(&id)?;
    let operators = state.operators().operator_summaries().await?;
    let o = operators.into_iter().find(|o| o.user.id == id).ok_or(WebError::NotFound)?;
    let sessions = state.operators().operator_sessions(id).await?;
    let body = html! {
        p.breadcrumb { "Settings › " a href=(PATH) { "Operators" } " › " (o.user.name) }
        section.card {
            h2 { "Sessions" }
            @if let Some(reason) = &o.blocked_reason {
                p.warning { "Offboarded: " (reason) "." }
            }
            @if sessions.is_empty() {
                p.empty id="no-sessions" { "No session: this operator is signed in nowhere." }
            } @else {
                table.data id="sessions" {
                    thead { tr { th scope="col" { "Signed in" } th scope="col" { "Last seen" } th scope="col" { "Ends" } th scope="col" { span.visually-hidden { "Actions" } } } }
                    tbody {
                        @for s in &sessions {
                            tr data-session=(s.id) {
                                td { (when(s.created_at)) }
                                td { (when(s.last_seen_at)) }
                                td { (when(s.expires_at)) }
                                td {
                                    form.inline method="post" action={ (PATH) "/" (id) "/sessions/end" } {
                                        (csrf(&viewer))
                                        input type="hidden" name="session_id" value=(s.id);
                                        button.danger type="submit" { "Sign out" }
                                    }
                                }
                            }
                        }
                    }
                }
                form.inline method="post" action={ (PATH) "/" (id) "/sessions/end" } id="end-all-sessions" {
                    (csrf(&viewer))
                    button.danger type="submit" data-confirm={ "Sign " (o.user.name) " out everywhere?" } { "Sign out everywhere" }
                }
            }
        }
    };
    Ok(page(&viewer, Nav::Settings, &o.user.name, body).into_response())
}

#[derive(Deserialize)]
pub struct EndForm {
    /// One session; absent: all of them.
    session_id: Option<String>,
}

pub async fn end_sessions(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted<EndForm, AdminOnly>,
) -> WebResult<Response> {
    let id = operator_id(&id)?;
    let session = match posted.form.session_id.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(s.parse::<i64>().map_err(|_| WebError::BadRequest("session_id must be a number.".into()))?),
    };
    let actor = posted.viewer.require_admin()?;
    let ended = state.operators().end_operator_sessions(id, session, &actor).await?;
    tracing::info!(by = posted.viewer.user.id, user_id = id, ended, "operator sessions ended from the web interface");
    Ok(Redirect::to(&format!("{PATH}/{id}")).into_response())
}
