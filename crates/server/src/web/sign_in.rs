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
    /// `/login?password=1`: the password form when password sign-in is limited to the
    /// break-glass admins.
    password: Option<String>,
}

/// Only a path on this site may be returned to after sign-in (no open redirect).
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') && !n.chars().any(char::is_control) =>
        {
            n
        }
        _ => "/hosts",
    }
}

/// A message on the sign-in page.
#[derive(Debug, Clone, Copy)]
pub enum LoginNotice<'a> {
    None,
    Error(&'a str),
}

/// What the sign-in page offers: the provider's button, the password form, or both.
struct LoginChoices<'a> {
    sso_name: Option<&'a str>,
    /// The password form is shown (everyone may use it, or the break-glass form was asked for).
    password_form: bool,
    /// Password sign-in is limited to admins.
    admins_only: bool,
    setup_open: bool,
}

fn login_form(csrf: &str, email: &str, next: &str, notice: LoginNotice<'_>, choices: &LoginChoices<'_>) -> Markup {
    let next_query: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
    html! {
        @if let LoginNotice::Error(e) = notice {
            p.error-message role="alert" id="login-error" { (e) }
        }
        @if let Some(name) = choices.sso_name {
            p { a.button.primary href={ "/login/oidc/start?next=" (next_query) } id="sso-sign-in" { "Sign in with " (name) } }
        }
        @if choices.password_form {
            @if choices.sso_name.is_some() {
                h2 { @if choices.admins_only { "Admin sign-in with a password" } @else { "Or sign in with a password" } }
            }
            @if choices.admins_only {
                p.hint { "Only admins with a password (the break-glass account) may sign in here." }
            }
            form.stacked method="post" action="/login" {
                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                input type="hidden" name="next" value=(next);
                label { "Email" input type="email" name="email" id="email" value=(email) autocomplete="username" required autofocus[choices.sso_name.is_none()]; }
                label { "Password" input type="password" name="password" id="password" autocomplete="current-password" required; }
                button.primary type="submit" id="sign-in" { "Sign in" }
            }
        } @else {
            p.hint { a href={ "/login?password=1&next=" (next_query) } id="break-glass" { "Admin sign-in with a password" } " (break-glass)" }
        }
        @if choices.setup_open {
            p.hint { "No admin exists yet: " a href="/setup" { "create the first admin" } "." }
        }
    }
}

pub fn with_cookie(mut response: Response, cookie: Option<String>) -> Response {
    if let Some(c) = cookie
        && let Ok(v) = c.parse()
    {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// The sign-in page, with a message and the email typed, as the configuration offers it.
async fn render_login(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    notice: LoginNotice<'_>,
    next: &str,
    email: &str,
    password_asked: bool,
) -> WebResult<Response> {
    let (csrf, cookie) = pre_session_token(state, headers);
    let setup_open = !state.operators().has_password_admin().await?;
    let sso_name = state.config.oidc.as_ref().map(|p| p.settings.display_name.as_str());
    let admins_only = !state.config.password_sign_in;
    let choices = LoginChoices {
        sso_name,
        // Without a provider, the form is the only way in, whatever the flag says.
        password_form: !admins_only || password_asked || sso_name.is_none(),
        admins_only,
        setup_open,
    };
    let page = bare_page("Sign in", login_form(&csrf, email, next, notice, &choices));
    Ok(with_cookie((status, page).into_response(), cookie))
}

/// The sign-in page with a message (the single sign-on's refusals use it).
pub async fn login_response(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    notice: LoginNotice<'_>,
    next: &str,
) -> WebResult<Response> {
    render_login(state, headers, status, notice, next, "", false).await
}

pub async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<NextParam>,
) -> WebResult<Response> {
    let next = safe_next(q.next.as_deref());
    render_login(&state, &headers, StatusCode::OK, LoginNotice::None, next, "", q.password.is_some()).await
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
    let mut message = WRONG_CREDENTIALS;
    if let (true, Some(user)) = (verified, user) {
        // With password sign-in limited, only the break-glass admins get in this way.
        if state.config.password_sign_in || user.role == Role::Admin {
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
        tracing::info!(user_id = user.id, "password sign-in refused: limited to admins (--password-sign-in false)");
        message = PASSWORDS_FOR_ADMINS_ONLY;
    }
    // A fixed delay from the start of the request, whatever failed.
    tokio::time::sleep_until((started + state.config.sign_in_failure_delay).into()).await;
    let next = safe_next(form.next.as_deref());
    render_login(&state, &headers, StatusCode::UNAUTHORIZED, LoginNotice::Error(message), next, &form.email, true).await
}

/// The answer to a right password of a non-admin when password sign-in is limited.
pub const PASSWORDS_FOR_ADMINS_ONLY: &str =
    "Only admins may sign in with a password here. Use the button to sign in with your identity provider.";

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
