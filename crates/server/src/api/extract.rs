//! Request pieces of the JSON API: the authenticated operator, JSON bodies and query
//! parameters, each failing with an `ApiError` that names what was wrong.

use axum::body::{Body, Bytes};

use crate::input::BodyError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use custodian_domain::hosts::Actor;
use custodian_domain::{ApiUser, Credential};
use serde_json::Value;

use super::error::{ApiError, ApiResult};
use crate::query::QueryParams;
use crate::state::AppState;

/// The operator behind a request's bearer token, whatever its role.
pub struct Operator(pub ApiUser);

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        authenticate(state, &parts.headers).await.map(Operator)
    }
}

impl Operator {
    /// Fails with 403 unless the operator may write (maintainer or admin).
    pub fn require_write(&self) -> Result<Actor, ApiError> {
        if self.0.role.can_write() {
            Ok(Actor::of(&self.0))
        } else {
            Err(ApiError::new(StatusCode::FORBIDDEN, "Forbidden")
                .with_error("base", format!("the {} role can read but not change anything", self.0.role)))
        }
    }

    /// Fails with 403 unless the operator is an admin; `what` names the admin-only action.
    pub fn require_admin(&self, what: &str) -> Result<Actor, ApiError> {
        if self.0.role == custodian_domain::Role::Admin {
            Ok(Actor::of(&self.0))
        } else {
            Err(ApiError::new(StatusCode::FORBIDDEN, "Forbidden")
                .with_error("base", format!("only admins {what}; the {} role cannot", self.0.role)))
        }
    }
}

/// The operator a request's bearer token belongs to, whatever its role. A connection's
/// token is SCIM-only: 403 here.
pub async fn authenticate(state: &AppState, headers: &axum::http::HeaderMap) -> ApiResult<ApiUser> {
    let token = crate::auth::bearer_token(headers).ok_or_else(ApiError::unauthorized)?;
    match state.tokens.authenticate(state.operators(), token).await?.ok_or_else(ApiError::unauthorized)? {
        Credential::Operator { user, .. } => {
            state.operator_use.record(state.operators(), user.id).await;
            Ok(user)
        }
        Credential::Connection(_) => Err(ApiError::new(StatusCode::FORBIDDEN, "Forbidden").with_error(
            "base",
            "this is an IdP connection's token: it reaches the SCIM routes (/api/v1/fleet/scim) and nothing else",
        )),
        Credential::Revoked => Err(ApiError::new(StatusCode::UNAUTHORIZED, "Authentication required")
            .with_error("base", "this token was revoked")),
    }
}

/// Reads a JSON object body of at most `limit` bytes, sent as `application/json`
/// (parameters such as `charset` allowed). Any other media type is 415 before the body
/// is read, and so is a body without one (an empty one is left to the parser).
pub async fn json_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Value, ApiError> {
    read_json(headers, body, limit, false).await
}

/// Like [`json_body`], but an empty body is an empty object: for actions whose every
/// field is optional (`POST .../sync`).
pub async fn optional_json_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Value, ApiError> {
    read_json(headers, body, limit, true).await
}

async fn read_json(headers: &HeaderMap, body: Body, limit: usize, empty_is_object: bool) -> Result<Value, ApiError> {
    let unsupported = || {
        ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Unsupported Media Type")
            .with_error("Content-Type", "must be application/json")
    };
    let declared = headers.get(header::CONTENT_TYPE);
    if declared.is_some_and(|value| !is_json(value)) {
        return Err(unsupported());
    }
    let bytes: Bytes = crate::input::read_body(body, limit).await.map_err(|e| match e {
        BodyError::TimedOut => ApiError::new(StatusCode::REQUEST_TIMEOUT, "The request body was not received in time")
            .with_error("body", "the client stopped sending it"),
        BodyError::TooLarge { limit } => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large")
            .with_error("body", format!("at most {limit} bytes are accepted")),
        BodyError::Unreadable => {
            ApiError::new(StatusCode::BAD_REQUEST, "Malformed request body").with_error("body", "it could not be read")
        }
    })?;
    if declared.is_none() && !bytes.is_empty() {
        return Err(unsupported());
    }
    if empty_is_object && bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, "Malformed JSON").with_error("body", format!("not valid JSON: {e}"))
    })?;
    if !value.is_object() {
        return Err(
            ApiError::new(StatusCode::BAD_REQUEST, "Malformed JSON").with_error("body", "must be a JSON object")
        );
    }
    Ok(value)
}

/// Whether a Content-Type is `application/json`, in any case, with any parameters.
fn is_json(value: &HeaderValue) -> bool {
    value
        .to_str()
        .ok()
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// Collects validation errors for a 422 answer, or a 400 when a value is over its
/// length limit (input no client means to send, as on SCIM).
#[derive(Default)]
pub struct Validation {
    errors: Vec<(String, String)>,
    /// Those of `errors` that are values over their length limit.
    over_limit: Vec<(String, String)>,
}

impl Validation {
    pub fn fail(&mut self, name: impl Into<String>, reason: impl Into<String>) {
        self.errors.push((name.into(), reason.into()));
    }

    /// A text field longer than `max` bytes of UTF-8 (`custodian_domain::limits`).
    pub fn too_long(&mut self, name: impl Into<String>, max: usize) {
        let error = (name.into(), custodian_domain::limits::over_limit_reason(max));
        self.over_limit.push(error.clone());
        self.errors.push(error);
    }

    /// The values over their length limit, named with their reasons.
    pub fn over_limit(&self) -> &[(String, String)] {
        &self.over_limit
    }

    /// A whole-number query parameter; its default when absent or empty.
    pub fn whole_number(&mut self, params: &QueryParams, param: &QueryParam) -> u64 {
        let QueryKind::WholeNumber { default, max } = param.kind else {
            self.fail(param.name, "is not a number parameter");
            return 0;
        };
        match params.get(param.name) {
            None | Some("") => default,
            // Digits only: `u64::from_str` also takes a leading `+`, which the document's
            // integer does not.
            Some(raw) => match raw.parse::<u64>() {
                Ok(n) if n <= max && raw.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => {
                    self.fail(param.name, format!("must be a whole number from 0 to {max}"));
                    default
                }
            },
        }
    }

    /// A query parameter that is one of its listed words; `None` when absent or empty.
    pub fn one_of(&mut self, params: &QueryParams, param: &QueryParam) -> Option<&'static str> {
        let words = match param.kind {
            QueryKind::OneOf(words) => words,
            QueryKind::Flag => FLAG_WORDS,
            _ => &[],
        };
        let raw = params.get(param.name).filter(|s| !s.is_empty())?;
        let found = words.iter().find(|w| **w == raw).copied();
        if found.is_none() {
            self.fail(param.name, format!("must be {}", or_list(words)));
        }
        found
    }

    /// A true/false query parameter; `None` when absent or empty.
    pub fn flag(&mut self, params: &QueryParams, param: &QueryParam) -> Option<bool> {
        self.one_of(params, param).map(|w| w == "true")
    }

    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
    pub fn errors(&self) -> &[(String, String)] {
        &self.errors
    }
    pub fn into_result(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            return Ok(());
        }
        let mut e = if !self.over_limit.is_empty() {
            ApiError::new(StatusCode::BAD_REQUEST, VALUE_TOO_LONG)
        } else {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed")
        };
        e.errors = self.errors;
        Err(e)
    }
}

/// The message of a 400 for a value over its length limit.
pub const VALUE_TOO_LONG: &str = "A value is longer than its limit";

/// A path id that must be a positive integer.
pub fn host_id(raw: &str) -> Result<i64, ApiError> {
    crate::input::positive_id(raw).ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "Resource Not Found").with_error("id", "host ids are positive integers")
    })
}

/// The largest `page` any list accepts.
pub const MAX_PAGE: u64 = 1_000_000_000;
const FLAG_WORDS: &[&str] = &["true", "false"];

/// What a query parameter of the JSON API holds. The handlers read parameters through
/// it and the OpenAPI document is generated from it, so the two cannot disagree.
#[derive(Debug, Clone, Copy)]
pub enum QueryKind {
    /// A whole number from 0 to `max`; `default` when absent.
    WholeNumber { default: u64, max: u64 },
    /// One of these words.
    OneOf(&'static [&'static str]),
    /// `true` or `false`.
    Flag,
    /// Any text; blank means absent.
    Text,
}

/// A query parameter of the JSON API. Every one of them is optional, and sent empty
/// (`per_page=`) it means the same as absent.
#[derive(Debug, Clone, Copy)]
pub struct QueryParam {
    pub name: &'static str,
    pub kind: QueryKind,
    pub description: &'static str,
}

/// The page of a list, from 0.
pub const PAGE: QueryParam = QueryParam {
    name: "page",
    kind: QueryKind::WholeNumber { default: 0, max: MAX_PAGE },
    description: "The page, from 0",
};

/// `a, b or c`.
pub fn or_list(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

impl QueryParam {
    /// The parameter as the OpenAPI document describes it.
    pub fn parameter(&self) -> utoipa::openapi::path::Parameter {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::{ObjectBuilder, Required, Type};
        let schema = match self.kind {
            QueryKind::WholeNumber { default, max } => ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0))
                .maximum(Some(max))
                .default(Some(default.into())),
            QueryKind::OneOf(words) => {
                ObjectBuilder::new().schema_type(Type::String).enum_values(Some(words.iter().copied()))
            }
            QueryKind::Flag => ObjectBuilder::new().schema_type(Type::Boolean),
            // `errors::refuse_unreadable_target` answers 400 to a query holding NUL.
            QueryKind::Text => {
                ObjectBuilder::new().schema_type(Type::String).pattern(Some(super::schema::TextRule::NoNul.pattern()))
            }
        };
        let mut parameter = ParameterBuilder::new()
            .name(self.name)
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .description(Some(self.description))
            .schema(Some(schema.build()))
            .build();
        // utoipa has no field for `allowEmptyValue` (still valid in OpenAPI 3.1): it says
        // that `per_page=` is accepted, as absent.
        parameter.extensions.get_or_insert_with(Default::default).insert("allowEmptyValue".into(), true.into());
        parameter
    }
}

/// The parameters of an operation, for `#[utoipa::path(params(...))]`.
pub fn parameters(list: &[&QueryParam]) -> Vec<utoipa::openapi::path::Parameter> {
    list.iter().map(|p| p.parameter()).collect()
}

/// Declares a type whose `IntoParams` are the listed query parameters.
#[macro_export]
macro_rules! query_params {
    ($(#[$doc:meta])* $name:ident = [$($param:expr),* $(,)?]) => {
        $(#[$doc])*
        pub struct $name;
        impl $name {
            pub const LIST: &'static [&'static $crate::api::extract::QueryParam] = &[$(&$param),*];
        }
        impl utoipa::IntoParams for $name {
            fn into_params(
                _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
            ) -> Vec<utoipa::openapi::path::Parameter> {
                $crate::api::extract::parameters(Self::LIST)
            }
        }
    };
}
