//! IdP connections: named sources of users and groups (a SCIM client, later a directory
//! sync), each its own namespace with its own SCIM-only tokens, ranked by priority for
//! the mapping of hosts to end users.

use chrono::{DateTime, Utc};
use std::fmt;

use crate::access::{ApiUser, TokenDigest};
use crate::idp::ScimRequestEntry;

/// A connection's row id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub i64);

/// The name of the connection that upgraded databases start with, and that the tokens of
/// operators (maintainers and admins) write to.
pub const DEFAULT_CONNECTION_NAME: &str = "default";

/// Which connections a read of the directory sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every connection (the operators' views).
    All,
    /// One connection's namespace (a SCIM client).
    Connection(ConnectionId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionKind {
    Scim,
    GoogleWorkspace,
}

impl ConnectionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionKind::Scim => "scim",
            ConnectionKind::GoogleWorkspace => "google_workspace",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "scim" => Some(ConnectionKind::Scim),
            "google_workspace" => Some(ConnectionKind::GoogleWorkspace),
            _ => None,
        }
    }
}

impl fmt::Display for ConnectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A connection token as listed: never the token nor its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionToken {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl ConnectionToken {
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        expired(self.expires_at, now)
    }
}

/// Whether a token with this expiry no longer works at `now`.
fn expired(expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    expires_at.is_some_and(|at| at <= now)
}

/// A connection with what its page shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    pub id: ConnectionId,
    pub name: String,
    pub kind: ConnectionKind,
    /// Lower wins when several connections have a user for a host.
    pub priority: i64,
    pub created_at: DateTime<Utc>,
    pub users: u64,
    pub groups: u64,
    pub last_request: Option<ScimRequestEntry>,
    /// Live tokens (not revoked; expired ones are listed until revoked). A directory
    /// sync has none.
    pub tokens: Vec<ConnectionToken>,
    /// A Google Workspace connection's settings (never its key).
    pub google_workspace: Option<crate::sync::GoogleWorkspaceSettings>,
}

/// What creating a connection needs: a SCIM connection's first token comes with it, a
/// Google Workspace connection's settings and key.
#[derive(Debug, Clone)]
pub struct NewConnection {
    pub name: String,
    /// `None`: after every existing connection (the largest priority plus 10).
    pub priority: Option<i64>,
    pub source: NewSource,
}

#[derive(Debug, Clone)]
pub enum NewSource {
    Scim { token: TokenDigest, token_expires_at: Option<DateTime<Utc>> },
    GoogleWorkspace(crate::sync::NewGoogleWorkspace),
}

impl NewConnection {
    pub fn kind(&self) -> ConnectionKind {
        match self.source {
            NewSource::Scim { .. } => ConnectionKind::Scim,
            NewSource::GoogleWorkspace(_) => ConnectionKind::GoogleWorkspace,
        }
    }
}

/// A change to a connection; `None` leaves the field as it is.
#[derive(Debug, Clone, Default)]
pub struct ConnectionChange {
    pub name: Option<String>,
    pub priority: Option<i64>,
    /// A Google Workspace connection's new settings (all of them) and, to rotate it, a
    /// new key file.
    pub google_workspace: Option<crate::sync::GoogleWorkspaceChange>,
}

/// A live connection token: the connection a SCIM request with it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionCredential {
    pub token_id: i64,
    pub connection: ConnectionId,
    pub connection_name: String,
    pub expires_at: Option<DateTime<Utc>>,
}

impl ConnectionCredential {
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        expired(self.expires_at, now)
    }
}

/// What a bearer token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// An operator's token; `default` is the connection named `default`, where its SCIM
    /// writes go (none once that connection was removed).
    Operator { user: ApiUser, default: Option<ConnectionId> },
    /// A connection's SCIM-only token.
    Connection(ConnectionCredential),
    /// A token that was revoked: refused, saying so (never whose it was).
    Revoked,
}
