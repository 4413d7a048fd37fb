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

/// An operator as the operators page lists it.
#[derive(Debug, Clone)]
pub struct OperatorSummary {
    pub user: ApiUser,
    /// Signs in with the OpenID provider.
    pub sso: bool,
    /// Why the IdP's offboarding blocks it, if it does.
    pub blocked_reason: Option<String>,
    pub has_password: bool,
    pub sessions: u64,
    pub tokens: u64,
    pub last_sign_in_at: Option<DateTime<Utc>>,
}

/// One of an operator's browser sessions (never its cookie).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorSession {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A sign-in at the company's OpenID provider, after every check of its ID token.
#[derive(Debug, Clone)]
pub struct SsoIdentity {
    /// The provider's issuer URL, exactly as its discovery document states it.
    pub issuer: String,
    /// The `sub` claim: with the issuer, what identifies the operator.
    pub subject: String,
    pub name: String,
    /// The email, only when the provider says it is verified.
    pub email: Option<String>,
    /// The role its groups give it, decided on every sign-in.
    pub role: Role,
}

/// What became of an SSO sign-in.
#[derive(Debug, Clone)]
pub enum SsoSignIn {
    /// The operator may sign in: created now, or updated from the claims.
    Allowed {
        user: ApiUser,
        created: bool,
        /// The role it had before this sign-in, when the groups changed it.
        previous_role: Option<Role>,
    },
    /// The IdP deactivated or deleted the operator's user: no session.
    Blocked { reason: String },
}

/// Which groups of the provider's groups claim give which role.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleGroups {
    pub admin: Vec<String>,
    pub maintainer: Vec<String>,
    pub observer: Vec<String>,
}

impl RoleGroups {
    /// The strongest role the groups give (admin over maintainer over observer), or
    /// none. Group names and ids are compared exactly, as the provider sends them.
    pub fn role_of(&self, groups: &[String]) -> Option<Role> {
        let has = |wanted: &[String]| groups.iter().any(|g| wanted.iter().any(|w| w == g));
        if has(&self.admin) {
            Some(Role::Admin)
        } else if has(&self.maintainer) {
            Some(Role::Maintainer)
        } else if has(&self.observer) {
            Some(Role::Observer)
        } else {
            None
        }
    }

    pub fn is_empty(&self) -> bool {
        self.admin.is_empty() && self.maintainer.is_empty() && self.observer.is_empty()
    }
}

/// How long a sign-in at the provider may take, from the redirect to the callback.
pub const SSO_LOGIN_MAX_AGE: Duration = Duration::minutes(10);

/// A sign-in sent to the provider and not yet back: what the callback needs, found by
/// the digest of its `state` and usable once.
#[derive(Debug, Clone)]
pub struct PendingSsoLogin {
    pub state_digest: TokenDigest,
    /// The digest of the random cookie the browser that started the sign-in holds.
    pub browser_digest: TokenDigest,
    pub nonce: String,
    pub pkce_verifier: String,
    pub redirect_uri: String,
    /// Where to go after sign-in (a local path).
    pub next_path: String,
    pub expires_at: DateTime<Utc>,
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
    fn the_strongest_group_decides_the_role() {
        let groups = RoleGroups {
            admin: vec!["it-admins".into()],
            maintainer: vec!["helpdesk".into()],
            observer: vec!["security".into(), "audit".into()],
        };
        let of = |g: &[&str]| groups.role_of(&g.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(of(&["audit", "helpdesk"]), Some(Role::Maintainer));
        assert_eq!(of(&["security", "it-admins"]), Some(Role::Admin));
        assert_eq!(of(&["audit"]), Some(Role::Observer));
        assert_eq!(of(&["IT-ADMINS", "sales"]), None, "exact names only");
        assert_eq!(of(&[]), None);
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
