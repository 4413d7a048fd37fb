//! Single sign-on of operators: `/login/oidc/start` sends the browser to the OpenID
//! provider, `/login/oidc/callback` takes it back. The sign-in under way lives in the
//! database (found by the digest of its `state`, deleted when used) and is bound to the
//! browser by a short-lived cookie, so a replayed or a stolen callback URL signs nobody in.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use custodian_domain::web::{PendingSsoLogin, SSO_LOGIN_MAX_AGE, SsoIdentity, SsoSignIn};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::session::{self, PRE_SESSION_COOKIE, SESSION_COOKIE, start_session};
use super::sign_in::{LoginNotice, login_response, safe_next, with_cookie};
use super::{WebError, WebResult};
use crate::auth::{digest_token, generate_token};
use crate::oidc::OidcProvider;
use crate::state::AppState;

/// The cookie that binds a sign-in under way to the browser that started it.
pub const SSO_COOKIE: &str = "custodian_oidc";
pub const CALLBACK_PATH: &str = "/login/oidc/callback";

fn provider(state: &AppState) -> WebResult<&OidcProvider> {
    state.config.oidc.as_deref().ok_or(WebError::NotFound)
}

/// The redirect URI registered with the provider: the public URL's, else this origin's.
pub fn redirect_uri(state: &AppState, headers: &HeaderMap) -> String {
    format!("{}{CALLBACK_PATH}", session::origin(state, headers))
}

#[derive(Debug, Deserialize)]
pub struct StartParams {
    next: Option<String>,
}

pub async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<StartParams>,
) -> WebResult<Response> {
    let provider = provider(&state)?;
    let redirect_uri = redirect_uri(&state, &headers);
    let authorization = provider.authorize(&redirect_uri).map_err(|e| WebError::Internal(e.to_string()))?;
    let (browser, browser_digest) = generate_token();
    state
        .web_sessions()
        .create_sso_login(PendingSsoLogin {
            state_digest: digest_token(&authorization.state),
            browser_digest,
            nonce: authorization.nonce,
            pkce_verifier: authorization.pkce_verifier,
            redirect_uri,
            next_path: safe_next(q.next.as_deref()).to_string(),
            expires_at: Utc::now() + SSO_LOGIN_MAX_AGE,
        })
        .await?;
    let cookie = session::set_cookie(&state, SSO_COOKIE, &browser, SSO_LOGIN_MAX_AGE.num_seconds());
    Ok(with_cookie(Redirect::to(&authorization.url).into_response(), Some(cookie)))
}

#[derive(Debug, Deserialize)]
pub struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// A refused sign-in: the sign-in page with a plain message, the cause in the log.
async fn refused(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    message: &str,
    cause: &str,
) -> WebResult<Response> {
    tracing::warn!(cause, "single sign-on refused");
    let response = login_response(state, headers, status, LoginNotice::Error(message), "/hosts").await?;
    Ok(with_cookie(response, Some(session::clear_cookie(state, SSO_COOKIE))))
}

const TRY_AGAIN: &str = "The sign-in with your identity provider could not be completed. Try again.";

pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<CallbackParams>,
) -> WebResult<Response> {
    let provider = provider(&state)?;
    let Some(sent_state) = q.state.as_deref().filter(|s| !s.is_empty()) else {
        return refused(&state, &headers, StatusCode::BAD_REQUEST, TRY_AGAIN, "the callback has no state").await;
    };
    // Taken (deleted) before anything else: a state is used once, whatever follows.
    let Some(login) = state.web_sessions().take_sso_login(digest_token(sent_state)).await? else {
        let message = "This sign-in has expired or was already used. Start again.";
        return refused(&state, &headers, StatusCode::BAD_REQUEST, message, "unknown or used state").await;
    };
    let browser = session::cookie(&headers, SSO_COOKIE).map(digest_token);
    if !browser.is_some_and(|b| bool::from(b.0.ct_eq(&login.browser_digest.0))) {
        let message = "This sign-in was started in another browser. Start again here.";
        return refused(&state, &headers, StatusCode::BAD_REQUEST, message, "the state is bound to another browser")
            .await;
    }
    if login.expires_at <= Utc::now() {
        let message = "This sign-in has expired or was already used. Start again.";
        return refused(&state, &headers, StatusCode::BAD_REQUEST, message, "the sign-in expired").await;
    }
    if let Some(error) = &q.error {
        // The error code is one of RFC 6749's; its description is the provider's text.
        let cause = format!("the provider answered error={}", error.chars().take(64).collect::<String>());
        return refused(&state, &headers, StatusCode::UNAUTHORIZED, TRY_AGAIN, &cause).await;
    }
    let Some(code) = q.code.as_deref().filter(|c| !c.is_empty()) else {
        return refused(&state, &headers, StatusCode::BAD_REQUEST, TRY_AGAIN, "the callback has no code").await;
    };
    let person = match provider.finish(code, &login.pkce_verifier, &login.nonce, &login.redirect_uri).await {
        Ok(person) => person,
        Err(e) => return refused(&state, &headers, StatusCode::UNAUTHORIZED, TRY_AGAIN, &e.to_string()).await,
    };
    let Some(role) = provider.role_of(&person) else {
        let message = "You signed in with your identity provider, but you are in none of the groups that give \
                       access to Custodian. Ask an admin to add you to one.";
        let cause = format!("subject in none of the groups ({} groups sent)", person.groups.len());
        return refused(&state, &headers, StatusCode::FORBIDDEN, message, &cause).await;
    };
    let identity = SsoIdentity {
        issuer: provider.issuer.clone(),
        subject: person.subject,
        name: person.name,
        email: person.verified_email,
        role,
    };
    let user = match state.operators().sso_sign_in(&identity).await? {
        SsoSignIn::Allowed { user, created, previous_role } => {
            tracing::info!(user_id = user.id, created, role_changed = previous_role.is_some(), "signed in with SSO");
            user
        }
        SsoSignIn::Blocked { reason } => {
            let message = format!("Your access to Custodian has ended: {reason}.");
            return refused(&state, &headers, StatusCode::FORBIDDEN, &message, "the operator is offboarded").await;
        }
    };
    let cookie = start_session(&state, &user).await?;
    if let Some(old) = session::cookie(&headers, SESSION_COOKIE) {
        state.web_sessions().delete_web_session(digest_token(old)).await?;
    }
    let response = Redirect::to(&login.next_path).into_response();
    let response = with_cookie(with_cookie(response, Some(cookie)), Some(session::clear_cookie(&state, SSO_COOKIE)));
    Ok(with_cookie(response, Some(session::clear_cookie(&state, PRE_SESSION_COOKIE))))
}
