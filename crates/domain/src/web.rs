//! Sign-in to the web interface: password operators and browser sessions. Sessions live
//! in the database only (as the SHA-256 digest of their cookie), so that any instance on
//! the same database accepts them and a sign-out anywhere ends them everywhere.

use chrono::{DateTime, Duration, Utc};

use crate::access::{ApiUser, Role, TokenDigest};

/// A session ends after this long without a request.
pub const SESSION_IDLE_TIMEOUT: Duration = Duration::hours(12);
/// A session ends this long after sign-in, however active.
pub const SESSION_MAX_AGE: Duration = Duration::days(7);
/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// An operator who signs in with an email and a password.
#[derive(Debug, Clone)]
pub struct NewPasswordUser {
    pub name: String,
    pub email: String,
    pub role: Role,
    /// The Argon2id hash in PHC string form; never the password.
    pub password_hash: String,
}

/// An operator found by email at sign-in, with the hash to verify against.
#[derive(Debug, Clone)]
pub struct PasswordUser {
    pub user: ApiUser,
    pub password_hash: String,
}

/// A session to store at sign-in.
#[derive(Debug, Clone)]
pub struct NewWebSession {
    pub digest: TokenDigest,
    pub user_id: i64,
    /// The per-session CSRF token that every form carries back.
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A stored session and its operator.
#[derive(Debug, Clone)]
pub struct WebSession {
    pub user: ApiUser,
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl WebSession {
    /// Whether the session may still be used at `now` (neither idle too long nor too old).
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        now < self.expires_at && now - self.last_seen_at < SESSION_IDLE_TIMEOUT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(created: DateTime<Utc>, last_seen: DateTime<Utc>) -> WebSession {
        WebSession {
            user: ApiUser {
                id: 1,
                name: "a".into(),
                email: None,
                role: Role::Admin,
                api_only: false,
                created_at: created,
                last_used_at: None,
            },
            csrf_token: String::new(),
            created_at: created,
            last_seen_at: last_seen,
            expires_at: created + SESSION_MAX_AGE,
        }
    }

    #[test]
    fn sessions_end_when_idle_or_too_old() {
        let t0 = Utc::now();
        let s = session(t0, t0);
        assert!(s.is_live(t0 + Duration::hours(11)));
        assert!(!s.is_live(t0 + Duration::hours(13)));
        let busy = session(t0, t0 + Duration::days(7) - Duration::minutes(1));
        assert!(busy.is_live(t0 + Duration::days(7) - Duration::seconds(1)));
        assert!(!busy.is_live(t0 + Duration::days(7)));
    }
}
