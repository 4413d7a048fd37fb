//! Who is signed in, and the checks every form goes through.
//!
//! The session cookie holds 32 random bytes; the database keeps only their SHA-256
//! digest, with the operator, a CSRF token and the session's times, so every instance on
//! the same database accepts the cookie and nothing about sessions lives in memory.
//! Every POST carries the session's CSRF token (a hidden field, or the `X-CSRF-Token`
//! header) compared in constant time, and a cross-origin POST is refused by its
//! `Origin`/`Sec-Fetch-Site` headers before anything else.

use axum::body::Body;
use axum::extract::{Form, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use chrono::Utc;
use custodian_domain::hosts::Actor;
use custodian_domain::web::{NewWebSession, SESSION_MAX_AGE};
use custodian_domain::{ApiUser, Role, TokenDigest};
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use super::{WebError, WebResult};
use crate::auth::{digest_token, generate_token};
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "custodian_session";
/// The CSRF token of the sign-in and set-up forms, before a session exists
/// (double-submit: the form's hidden field must equal this cookie).
pub const PRE_SESSION_COOKIE: &str = "custodian_presession";
pub const CSRF_FIELD: &str = "csrf_token";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// A session's last use is written at most this often (not on every page view).
const TOUCH_EVERY: chrono::Duration = chrono::Duration::minutes(1);
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The value of a cookie of the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// The origin (`scheme://host[:port]`) pages are served from: the public URL's when one
/// is configured, else the request's `Host`.
pub fn origin(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.config.public_url {
        let url = url.trim_end_matches('/');
        // Keep scheme://authority, drop any path.
        if let Some(scheme_end) = url.find("://") {
            let rest = &url[scheme_end + 3..];
            let authority = rest.split('/').next().unwrap_or(rest);
            return format!("{}://{authority}", &url[..scheme_end]);
        }
        return url.to_string();
    }
    state.config.request_origin(headers)
}

/// Whether the session cookie must be `Secure` (clients come over https).
fn secure(state: &AppState) -> bool {
    state.config.is_https()
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Path=/, Secure behind https.
pub fn set_cookie(state: &AppState, name: &str, value: &str, max_age_secs: i64) -> String {
    let mut c = format!("{name}={value}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age_secs}");
    if secure(state) {
        c.push_str("; Secure");
    }
    c
}

/// Refuses a cross-site form: the browser says where a POST comes from.
fn check_origin(state: &AppState, headers: &HeaderMap) -> WebResult<()> {
    if headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) == Some("cross-site") {
        return Err(WebError::Csrf);
    }
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => Ok(()),
        Some(o) if o.eq_ignore_ascii_case(&origin(state, headers)) => Ok(()),
        Some(_) => Err(WebError::Csrf),
    }
}

fn same_secret(sent: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(sent.as_bytes().ct_eq(expected.as_bytes()))
}

/// The signed-in operator of a request, with the session's CSRF token for its forms.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub user: ApiUser,
    pub csrf_token: String,
    digest: TokenDigest,
}

impl Viewer {
    pub fn can_write(&self) -> bool {
        self.user.role.can_write()
    }
    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin
    }
    /// The actor of a change, or 403 for an observer.
    pub fn require_write(&self) -> WebResult<Actor> {
        if self.can_write() {
            Ok(Actor::of(&self.user))
        } else {
            Err(WebError::Forbidden(format!("The {} role can see everything but change nothing.", self.user.role)))
        }
    }
    pub fn require_admin(&self) -> WebResult<Actor> {
        if self.is_admin() {
            Ok(Actor::of(&self.user))
        } else {
            Err(WebError::Forbidden(
                "Only an admin can do this: manage API tokens, IdP connections and operators.".into(),
            ))
        }
    }
    pub fn session_digest(&self) -> TokenDigest {
        self.digest
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let next =
            (parts.method == Method::GET).then(|| parts.uri.path_and_query().map(|p| p.as_str().to_string())).flatten();
        let sign_in = || WebError::SignIn { next: next.clone() };
        let token = cookie(&parts.headers, SESSION_COOKIE).ok_or_else(sign_in)?;
        let digest = digest_token(token);
        let session = state.web_sessions().web_session(digest).await?.ok_or_else(sign_in)?;
        let now = Utc::now();
        if !session.is_live(now) {
            state.web_sessions().delete_web_session(digest).await?;
            return Err(sign_in());
        }
        if now - session.last_seen_at >= TOUCH_EVERY {
            state.web_sessions().touch_web_session(digest, now).await?;
        }
        state.operator_use.record(state.operators(), session.user.id).await;
        Ok(Viewer { user: session.user, csrf_token: session.csrf_token, digest })
    }
}

/// Reads a urlencoded form body (at most 64 KiB); returns it with its CSRF field.
async fn read_form_body(body: Body) -> WebResult<(axum::body::Bytes, Option<String>)> {
    let bytes = crate::input::read_body(body, MAX_FORM_BYTES).await.map_err(WebError::Body)?;
    // Refused rather than decoded with replacement characters: no field of ours holds
    // invalid UTF-8 or NUL, so such a form is forged or broken.
    if !crate::input::is_readable_percent_encoded(&bytes) {
        return Err(WebError::BadRequest("The form is not valid UTF-8 or contains a NUL character.".into()));
    }
    let sent = form_urlencoded::parse(&bytes).find(|(k, _)| k == CSRF_FIELD).map(|(_, v)| v.into_owned());
    Ok((bytes, sent))
}

/// The fields of a form body read by `read_form_body`.
async fn decode_form<T: DeserializeOwned>(parts: Parts, bytes: axum::body::Bytes, state: &AppState) -> WebResult<T> {
    let request = Request::from_parts(parts, Body::from(bytes));
    let Form(form) = Form::<T>::from_request(request, state)
        .await
        .map_err(|e| WebError::BadRequest(format!("The form could not be read: {e}")))?;
    Ok(form)
}

/// Which operators may post a form, checked before its fields are read (so that a
/// refused operator learns nothing from validation errors).
pub trait FormRole {
    fn check(viewer: &Viewer) -> WebResult<()>;
}

/// Any signed-in operator (signing out).
pub struct AnyRole;
/// Maintainers and admins.
pub struct CanWrite;
/// Admins only.
pub struct AdminOnly;

impl FormRole for AnyRole {
    fn check(_: &Viewer) -> WebResult<()> {
        Ok(())
    }
}

impl FormRole for CanWrite {
    fn check(viewer: &Viewer) -> WebResult<()> {
        viewer.require_write().map(|_| ())
    }
}

impl FormRole for AdminOnly {
    fn check(viewer: &Viewer) -> WebResult<()> {
        viewer.require_admin().map(|_| ())
    }
}

/// A form posted by a signed-in operator whose role `R` allows it: origin checked, CSRF
/// token checked in constant time, role checked, then the fields. Every POST route but
/// sign-in and set-up takes one.
pub struct Posted<T, R: FormRole = AnyRole> {
    pub viewer: Viewer,
    pub form: T,
    _role: std::marker::PhantomData<R>,
}

impl<T: DeserializeOwned + Send, R: FormRole> FromRequest<AppState> for Posted<T, R> {
    type Rejection = WebError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        check_origin(state, &parts.headers)?;
        let viewer = Viewer::from_request_parts(&mut parts, state).await?;
        let header_token = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string);
        let (bytes, field_token) = read_form_body(body).await?;
        let sent = header_token.or(field_token).unwrap_or_default();
        if !same_secret(&sent, &viewer.csrf_token) {
            return Err(WebError::Csrf);
        }
        R::check(&viewer)?;
        let form = decode_form::<T>(parts, bytes, state).await?;
        Ok(Posted { viewer, form, _role: std::marker::PhantomData })
    }
}

/// A form with a file upload (multipart, or the same fields URL-encoded) posted by a
/// signed-in operator whose role `R` allows it, checked as [`Posted`] is: origin, CSRF
/// token (a field or the header) in constant time, role; every field as UTF-8 text.
pub struct PostedFiles<R: FormRole = AnyRole> {
    pub viewer: Viewer,
    pub fields: std::collections::HashMap<String, String>,
    _role: std::marker::PhantomData<R>,
}

/// Fields a multipart form of ours has at most.
const MAX_MULTIPART_FIELDS: usize = 32;

impl<R: FormRole> FromRequest<AppState> for PostedFiles<R> {
    type Rejection = WebError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        check_origin(state, &parts.headers)?;
        let viewer = Viewer::from_request_parts(&mut parts, state).await?;
        let header_token = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string);
        let bytes = crate::input::read_body(body, MAX_FORM_BYTES).await.map_err(WebError::Body)?;
        let unreadable = || WebError::BadRequest("The form could not be read.".into());
        let multipart = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"));
        let mut fields = std::collections::HashMap::new();
        if multipart {
            let request = Request::from_parts(parts, Body::from(bytes));
            let mut form = axum::extract::Multipart::from_request(request, state).await.map_err(|_| unreadable())?;
            while let Some(field) = form.next_field().await.map_err(|_| unreadable())? {
                let name = field.name().unwrap_or_default().to_string();
                let text = field.text().await.map_err(|_| unreadable())?;
                if text.contains('\0') || fields.len() >= MAX_MULTIPART_FIELDS {
                    return Err(unreadable());
                }
                fields.insert(name, text);
            }
        } else {
            // The same fields sent URL-encoded (a key file's text pasted): read alike.
            if !crate::input::is_readable_percent_encoded(&bytes) {
                return Err(unreadable());
            }
            fields.extend(form_urlencoded::parse(&bytes).map(|(k, v)| (k.into_owned(), v.into_owned())));
        }
        let sent = header_token.or_else(|| fields.get(CSRF_FIELD).cloned()).unwrap_or_default();
        if !same_secret(&sent, &viewer.csrf_token) {
            return Err(WebError::Csrf);
        }
        R::check(&viewer)?;
        Ok(PostedFiles { viewer, fields, _role: std::marker::PhantomData })
    }
}

/// A form posted before a session exists (sign-in, set-up): origin checked and the
/// hidden field compared with the pre-session cookie.
pub struct PreSessionForm<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for PreSessionForm<T> {
    type Rejection = WebError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        check_origin(state, &parts.headers)?;
        let expected = cookie(&parts.headers, PRE_SESSION_COOKIE).unwrap_or_default().to_string();
        let (bytes, sent) = read_form_body(body).await?;
        if !same_secret(&sent.unwrap_or_default(), &expected) {
            return Err(WebError::Csrf);
        }
        Ok(PreSessionForm(decode_form::<T>(parts, bytes, state).await?))
    }
}

/// The pre-session CSRF token of a request, or a new one with the cookie to set.
pub fn pre_session_token(state: &AppState, headers: &HeaderMap) -> (String, Option<String>) {
    match cookie(headers, PRE_SESSION_COOKIE) {
        Some(t) => (t.to_string(), None),
        None => {
            let (t, _) = generate_token();
            let c = set_cookie(state, PRE_SESSION_COOKIE, &t, 3600);
            (t, Some(c))
        }
    }
}

/// Starts a session for `user`; returns the `Set-Cookie` value. Expired sessions are
/// swept at the same time, so the table does not grow without bound.
pub async fn start_session(state: &AppState, user: &ApiUser) -> WebResult<String> {
    let (token, digest) = generate_token();
    let (csrf_token, _) = generate_token();
    let now = Utc::now();
    state
        .web_sessions()
        .create_web_session(NewWebSession {
            digest,
            user_id: user.id,
            csrf_token,
            created_at: now,
            expires_at: now + SESSION_MAX_AGE,
        })
        .await?;
    let _ =
        state.web_sessions().delete_expired_web_sessions(now, now - custodian_domain::web::SESSION_IDLE_TIMEOUT).await;
    Ok(set_cookie(state, SESSION_COOKIE, &token, SESSION_MAX_AGE.num_seconds()))
}

/// A `Set-Cookie` value that removes a cookie.
pub fn clear_cookie(state: &AppState, name: &str) -> String {
    set_cookie(state, name, "", 0)
}
