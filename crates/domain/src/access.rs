//! Operators of Custodian (people and API-only clients such as an IdP) and their roles.

use chrono::{DateTime, Utc};
use std::fmt;
use std::str::FromStr;

/// A global role. Ordered by power: an observer reads, a maintainer also writes IdP
/// and host data, an admin also manages operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Observer,
    Maintainer,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Observer => "observer",
            Role::Maintainer => "maintainer",
            Role::Admin => "admin",
        }
    }

    /// Whether this role may write (SCIM provisioning, hosts, mappings).
    pub fn can_write(self) -> bool {
        self >= Role::Maintainer
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role '{0}': expected admin, maintainer or observer")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "observer" => Ok(Role::Observer),
            "maintainer" => Ok(Role::Maintainer),
            "admin" => Ok(Role::Admin),
            _ => Err(UnknownRole(s.to_string())),
        }
    }
}

/// An operator of Custodian.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiUser {
    pub id: i64,
    pub name: String,
    pub email: Option<String>,
    pub role: Role,
    pub api_only: bool,
    pub created_at: DateTime<Utc>,
    /// When a token or a web session of this operator was last used (to the minute).
    pub last_used_at: Option<DateTime<Utc>>,
}

/// The SHA-256 digest of an API token: the only form in which a token is stored.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenDigest(pub [u8; 32]);

impl TokenDigest {
    /// A non-secret prefix used to find the candidate row; the full digest is then
    /// compared in constant time.
    pub fn lookup_key(&self) -> String {
        self.0[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenDigest(..)")
    }
}

/// What is needed to create an operator.
#[derive(Debug, Clone)]
pub struct NewApiUser {
    pub name: String,
    pub email: Option<String>,
    pub role: Role,
    pub api_only: bool,
    /// The token to issue with the user (API-only users get one at creation).
    pub token: Option<TokenDigest>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_without_regard_to_case_and_order_by_power() {
        assert_eq!("Maintainer".parse::<Role>(), Ok(Role::Maintainer));
        assert!("root".parse::<Role>().is_err());
        assert!(Role::Admin.can_write() && Role::Maintainer.can_write());
        assert!(!Role::Observer.can_write());
    }
}
