//! Sign-in, sign-out and the first-run set-up page.

use std::time::Instant;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use custodian_domain::Role;
use custodian_domain::web::NewPasswordUser;
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::bare_page;
use super::session::{
    self, CSRF_FIELD, PRE_SESSION_COOKIE, Posted, PreSessionForm, SESSION_COOKIE, pre_session_token, start_session,
};
use super::{WebError, WebResult};
use crate::passwords;
use crate::state::AppState;

/// The one answer to a failed sign-in, whether the email exists or not.
pub const WRONG_CREDENTIALS: &str = "Incorrect email or password";

#[derive(Debug, Deserialize)]
pub struct NextParam {
    next: Option<String>,
}

/// Only a path on this site may be returned to after sign-in (no open redirect).
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') && !n.chars().any(char::is_control) =>
        {
            n
        }
        _ => "/hosts",
    }
}

fn login_form(csrf: &str, email: &str, next: &str, error: Option<&str>, setup_open: bool) -> Markup {
    html! {
        @if let Some(e) = error {
            p.error-message role="alert" id="login-error" { (e) }
        }
        form.stacked method="post" action="/login" {
            input type="hidden" name=(CSRF_FIELD) value=(csrf);
            input type="hidden" name="next" value=(next);
            label { "Email" input type="email" name="email" id="email" value=(email) autocomplete="username" required autofocus; }
            label { "Password" input type="password" name="password" id="password" autocomplete="current-password" required; }
            button.primary type="submit" id="sign-in" { "Sign in" }
        }
        @if setup_open {
            p.hint { "No admin exists yet: " a href="/setup" { "create the first admin" } "." }
        }
    }
}

fn with_cookie(mut response: Response, cookie: Option<String>) -> Response {
    if let Some(c) = cookie
        && let Ok(v) = c.parse()
    {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

pub async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<NextParam>,
) -> WebResult<Response> {
    let (csrf, cookie) = pre_session_token(&state, &headers);
    let setup_open = !state.operators().has_password_admin().await?;
    let next = safe_next(q.next.as_deref());
    let page = bare_page("Sign in", login_form(&csrf, "", next, None, setup_open));
    Ok(with_cookie(page.into_response(), cookie))
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    next: Option<String>,
}

pub async fn login_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    PreSessionForm(form): PreSessionForm<LoginForm>,
) -> WebResult<Response> {
    let started = Instant::now();
    let found = state.operators().password_user_by_email(&form.email).await?;
    // An unknown email is verified against a dummy hash: the same work, the same time.
    let (hash, user) = match found {
        Some(p) => (p.password_hash, Some(p.user)),
        None => (passwords::dummy_hash(), None),
    };
    let verified = passwords::verify(form.password, hash).await;
    if let (true, Some(user)) = (verified, user) {
        let cookie = start_session(&state, &user).await?;
        // A session cookie the browser may still hold is ended: no session fixation.
        if let Some(old) = session::cookie(&headers, SESSION_COOKIE) {
            state.web_sessions().delete_web_session(crate::auth::digest_token(old)).await?;
        }
        tracing::info!(user_id = user.id, "signed in to the web interface");
        let response = Redirect::to(safe_next(form.next.as_deref())).into_response();
        return Ok(with_cookie(
            with_cookie(response, Some(cookie)),
            Some(session::clear_cookie(&state, PRE_SESSION_COOKIE)),
        ));
    }
    // A fixed delay from the start of the request, whatever failed.
    tokio::time::sleep_until((started + state.config.sign_in_failure_delay).into()).await;
    let (csrf, cookie) = pre_session_token(&state, &headers);
    let setup_open = !state.operators().has_password_admin().await?;
    let next = safe_next(form.next.as_deref());
    let page = bare_page("Sign in", login_form(&csrf, &form.email, next, Some(WRONG_CREDENTIALS), setup_open));
    Ok(with_cookie((StatusCode::UNAUTHORIZED, page).into_response(), cookie))
}

#[derive(Deserialize)]
pub struct Empty {}

/// Sign-out: the session row is deleted, so the cookie is worthless everywhere.
pub async fn logout(State(state): State<AppState>, posted: Posted<Empty>) -> WebResult<Response> {
    state.web_sessions().delete_web_session(posted.viewer.session_digest()).await?;
    let response = Redirect::to("/login").into_response();
    Ok(with_cookie(response, Some(session::clear_cookie(&state, SESSION_COOKIE))))
}

fn setup_form(csrf: &str, name: &str, email: &str, error: Option<&str>) -> Markup {
    html! {
        p { "No admin exists yet. Create the first one; this page disappears once it exists." }
        @if let Some(e) = error {
            p.error-message role="alert" { (e) }
        }
        form.stacked method="post" action="/setup" {
            input type="hidden" name=(CSRF_FIELD) value=(csrf);
            label { "Full name" input type="text" name="name" value=(name) required autofocus; }
            label { "Email" input type="email" name="email" value=(email) autocomplete="username" required; }
            label { "Password (12 characters or more)" input type="password" name="password" autocomplete="new-password" minlength="12" required; }
            label { "Password again" input type="password" name="password_again" autocomplete="new-password" minlength="12" required; }
            button.primary type="submit" { "Create the admin and sign in" }
        }
    }
}

pub async fn setup_page(State(state): State<AppState>, headers: HeaderMap) -> WebResult<Response> {
    if state.operators().has_password_admin().await? {
        return Err(WebError::NotFound);
    }
    let (csrf, cookie) = pre_session_token(&state, &headers);
    Ok(with_cookie(bare_page("Set up Custodian", setup_form(&csrf, "", "", None)).into_response(), cookie))
}

#[derive(Deserialize)]
pub struct SetupForm {
    name: String,
    email: String,
    password: String,
    password_again: String,
}

pub async fn setup_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    PreSessionForm(form): PreSessionForm<SetupForm>,
) -> WebResult<Response> {
    if state.operators().has_password_admin().await? {
        return Err(WebError::NotFound);
    }
    let name = form.name.trim();
    let email = form.email.trim();
    let problem = if name.is_empty() {
        Some("Enter a name.".to_string())
    } else if !email.contains('@') || email.contains(char::is_whitespace) {
        Some("Enter a valid email.".to_string())
    } else if form.password != form.password_again {
        Some("The two passwords differ.".to_string())
    } else {
        passwords::check_new_password(&form.password).err()
    };
    if let Some(problem) = problem {
        let (csrf, cookie) = pre_session_token(&state, &headers);
        let page = bare_page("Set up Custodian", setup_form(&csrf, name, email, Some(&problem)));
        return Ok(with_cookie((StatusCode::UNPROCESSABLE_ENTITY, page).into_response(), cookie));
    }
    let password_hash = passwords::hash(form.password).await?;
    let user = state
        .operators()
        .create_first_admin(NewPasswordUser {
            name: name.to_string(),
            email: email.to_string(),
            role: Role::Admin,
            password_hash,
        })
        .await
        .map_err(|e| match e {
            custodian_domain::StoreError::Conflict(m) => WebError::BadRequest(m),
            other => other.into(),
        })?;
    tracing::info!(user_id = user.id, "first admin created from the set-up page");
    let cookie = start_session(&state, &user).await?;
    let response = Redirect::to("/settings/integrations/identity-provider").into_response();
    Ok(with_cookie(with_cookie(response, Some(cookie)), Some(session::clear_cookie(&state, PRE_SESSION_COOKIE))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_returned_to_after_sign_in() {
        assert_eq!(safe_next(Some("/hosts/3?x=1")), "/hosts/3?x=1");
        for bad in ["//evil.example", "https://evil.example", "/\\evil.example", "/\t/evil.example", "hosts"] {
            assert_eq!(safe_next(Some(bad)), "/hosts", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/hosts");
    }
}
