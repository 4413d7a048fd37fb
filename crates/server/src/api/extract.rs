//! Request pieces of the JSON API: the authenticated operator, JSON bodies and query
//! parameters, each failing with an `ApiError` that names what was wrong.

use axum::body::{Body, Bytes};
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use custodian_domain::ApiUser;
use custodian_domain::hosts::Actor;
use serde_json::Value;

use super::ApiError;
use crate::app::AppState;

/// The operator behind a request's bearer token, whatever its role.
pub struct Operator(pub ApiUser);

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        super::authenticate(state, &parts.headers).await.map(Operator)
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
}

/// Reads a JSON object body of at most `limit` bytes.
pub async fn json_body(body: Body, limit: usize) -> Result<Value, ApiError> {
    let bytes: Bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large")
            .with_error("body", format!("at most {limit} bytes are accepted"))
    })?;
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

/// Collects validation errors for a 422 answer.
#[derive(Default)]
pub struct Validation {
    errors: Vec<(String, String)>,
}

impl Validation {
    pub fn fail(&mut self, name: impl Into<String>, reason: impl Into<String>) {
        self.errors.push((name.into(), reason.into()));
    }
    /// A query parameter that must be a whole number up to `max`; `default` when absent.
    pub fn whole_number(&mut self, params: &crate::query::QueryParams, name: &str, default: u64, max: u64) -> u64 {
        match params.get(name) {
            None | Some("") => default,
            Some(raw) => match raw.parse::<u64>() {
                Ok(n) if n <= max => n,
                _ => {
                    self.fail(name, format!("must be a whole number from 0 to {max}"));
                    default
                }
            },
        }
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
        let mut e = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed");
        e.errors = self.errors;
        Err(e)
    }
}

/// A path id that must be a positive integer.
pub fn host_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "Resource Not Found").with_error("id", "host ids are positive integers")
    })
}
