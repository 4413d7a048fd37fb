//! What can go wrong reading Google, in words an admin can act on. No message carries the
//! private key, an assertion or an access token.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GoogleError {
    /// The key file cannot be used (named field, never its value).
    #[error("the service account key {0}")]
    InvalidKey(String),
    /// Google refuses for a reason only an admin can fix (delegation, scopes, admin
    /// email, customer id). Not retried.
    #[error("{0}")]
    Configuration(String),
    /// Google kept failing or asking to wait (429, 5xx, rate limits, timeouts) after
    /// every retry a run allows.
    #[error("{message} (after {attempts} attempts)")]
    Unavailable { message: String, attempts: u32 },
    /// Google answered something that is not what its documentation describes.
    #[error("unexpected answer from Google: {0}")]
    Protocol(String),
}

impl GoogleError {
    /// Whether an admin must change something before a run can succeed.
    pub fn is_configuration(&self) -> bool {
        matches!(self, GoogleError::InvalidKey(_) | GoogleError::Configuration(_))
    }
}
