//! The web interface: server-rendered pages (maud templates compiled into the binary),
//! signed-in operators with database sessions, CSRF-checked forms. One error type,
//! turned into an HTML page in one place (`WebError::into_response`).

mod activity;
mod assets;
pub mod bare;
mod deliveries;
mod hosts;
mod idp;
mod labels;
pub mod layout;
mod operators;
mod overview;
mod people;
pub mod session;
mod sign_in;
pub mod sso;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use custodian_domain::StoreError;

use crate::input::BodyError;
use crate::routes::Routes;
use crate::state::AppState;

/// An error on a page. Rendered as an HTML page (or a redirect to sign-in).
#[derive(Debug)]
pub enum WebError {
    /// No live session: sign in, then come back to this path.
    SignIn {
        next: Option<String>,
    },
    /// The role may not do this.
    Forbidden(String),
    NotFound,
    /// A missing or wrong CSRF token, or a cross-origin form.
    Csrf,
    BadRequest(String),
    /// A form body that could not be read.
    Body(crate::input::BodyError),
    /// Something failed on our side; the detail goes to the log only.
    Internal(String),
}

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => WebError::NotFound,
            StoreError::Conflict(m) | StoreError::Taken { message: m, .. } => WebError::BadRequest(m),
            StoreError::Scim(e) => WebError::BadRequest(e.detail),
            StoreError::Contention(_) => {
                WebError::BadRequest("The server is busy with concurrent changes; try again in a moment.".into())
            }
            StoreError::Database(m) => WebError::Internal(m),
        }
    }
}

impl From<anyhow::Error> for WebError {
    fn from(e: anyhow::Error) -> Self {
        WebError::Internal(format!("{e:#}"))
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, title, message) = match self {
            WebError::SignIn { next } => {
                let target = match next {
                    Some(n) => format!("/login?next={}", form_urlencoded::byte_serialize(n.as_bytes()).collect::<String>()),
                    None => "/login".to_string(),
                };
                return Redirect::to(&target).into_response();
            }
            WebError::Forbidden(m) => (StatusCode::FORBIDDEN, "Not allowed", m),
            WebError::NotFound => (StatusCode::NOT_FOUND, "Not found", "There is nothing at this address.".to_string()),
            WebError::Csrf => (
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form could not be verified (it came from another site or your session changed). Go back, reload the page and try again.".to_string(),
            ),
            WebError::BadRequest(m) => (StatusCode::BAD_REQUEST, "Cannot do that", m),
            WebError::Body(e) => match e {
                BodyError::TimedOut => {
                    (StatusCode::REQUEST_TIMEOUT, "Form not received", "The form was not received in time.".to_string())
                }
                BodyError::TooLarge { .. } => {
                    (StatusCode::PAYLOAD_TOO_LARGE, "Form too large", "The form is too large.".to_string())
                }
                BodyError::Unreadable => {
                    (StatusCode::BAD_REQUEST, "Cannot do that", "The form could not be read.".to_string())
                }
            },
            WebError::Internal(m) => {
                tracing::error!(error = %m, "error on a web page");
                (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong", "The server could not answer. Try again; the cause is in the server's log.".to_string())
            }
        };
        (status, layout::error_page(title, &message)).into_response()
    }
}

pub type WebResult<T> = Result<T, WebError>;

/// The pages and their form routes.
pub fn router() -> Routes<AppState> {
    Routes::new()
        .route("/", get(overview::show))
        .route("/login", get(sign_in::login_page).post(sign_in::login_submit))
        .route("/login/oidc/start", get(sso::start))
        .route(sso::CALLBACK_PATH, get(sso::callback))
        .route("/logout", post(sign_in::logout))
        .route("/setup", get(sign_in::setup_page).post(sign_in::setup_submit))
        .route("/hosts", get(hosts::list))
        .route("/hosts.csv", get(hosts::export_csv))
        .route("/hosts/columns", post(hosts::save_columns))
        .route("/hosts/{id}", get(hosts::details))
        .route("/hosts/{id}/idp-username", post(hosts::set_idp_username))
        .route("/hosts/{id}/idp-username/delete", post(hosts::delete_idp_username))
        .route("/end-users", get(people::users))
        .route("/end-users/{id}", get(people::user))
        .route("/groups", get(people::groups))
        .route("/groups/{id}", get(people::group))
        .route("/labels", get(labels::list))
        .route("/labels/new", get(labels::new_page).post(labels::create))
        .route("/labels/{id}", get(labels::show))
        .route("/labels/{id}/edit", post(labels::edit))
        .route("/labels/{id}/delete", post(labels::delete))
        .route("/activity", get(activity::list))
        .route(deliveries::PATH, get(deliveries::list))
        .route("/webhooks/deliveries/{id}/retry", post(deliveries::retry))
        .route(operators::PATH, get(operators::list).post(operators::create))
        .route("/settings/operators/{id}", get(operators::show))
        .route("/settings/operators/{id}/role", post(operators::set_role))
        .route("/settings/operators/{id}/delete", post(operators::delete))
        .route("/settings/operators/{id}/sessions/end", post(operators::end_sessions))
        .route("/settings/integrations/identity-provider", get(idp::show))
        .route("/settings/integrations/identity-provider/tokens", post(idp::create_token))
        .route("/settings/integrations/identity-provider/tokens/{id}/revoke", post(idp::revoke_token))
        .route("/settings/integrations/identity-provider/connections", post(idp::create_connection))
        .route("/settings/integrations/identity-provider/google-workspace", post(idp::create_google_connection))
        .route("/settings/integrations/identity-provider/{id}/sync", post(idp::sync_connection))
        .route("/settings/integrations/identity-provider/{id}/google-workspace", post(idp::edit_google_connection))
        .route("/settings/integrations/identity-provider/{id}", get(idp::show_connection))
        .route("/settings/integrations/identity-provider/{id}/edit", post(idp::edit_connection))
        .route("/settings/integrations/identity-provider/{id}/delete", post(idp::delete_connection))
        .route("/settings/integrations/identity-provider/{id}/tokens", post(idp::create_connection_token))
        .route(
            "/settings/integrations/identity-provider/{id}/tokens/{token_id}/revoke",
            post(idp::revoke_connection_token),
        )
        .route("/assets/{name}", get(assets::serve))
}
