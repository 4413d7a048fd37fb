//! Changing IdP connections, once for every surface (JSON API, web pages, CLI): the
//! rules a name and a priority keep, the token shown once, and forgetting cached
//! credentials on this instance as soon as a change makes them wrong.

use chrono::{DateTime, Utc};
use custodian_domain::StoreResult;
use custodian_domain::connections::{Connection, ConnectionChange, ConnectionId, ConnectionKind, NewConnection};
use custodian_domain::hosts::Actor;

use crate::api::schema::TextRule;
use crate::state::AppState;

/// The longest connection name, in bytes of UTF-8.
pub const MAX_NAME: usize = custodian_domain::limits::NAME_MAX_BYTES;
/// Priorities are whole numbers in this range (lower wins).
pub const PRIORITY_RANGE: std::ops::RangeInclusive<i64> = 0..=1_000_000;

/// A connection's name as stored (trimmed), or why it cannot be one.
pub fn checked_name(raw: &str) -> Result<String, String> {
    if raw.len() > MAX_NAME {
        Err(format!("must be {}", custodian_domain::limits::over_limit_reason(MAX_NAME)))
    } else if !TextRule::NotBlank.allows(raw) {
        Err("must not be empty nor contain NUL characters".into())
    } else {
        Ok(raw.trim().to_string())
    }
}

/// Why a priority cannot be one, if it cannot.
pub fn priority_problem(priority: i64) -> Option<String> {
    (!PRIORITY_RANGE.contains(&priority)).then(|| {
        format!("must be a whole number from {} to {} (lower wins)", PRIORITY_RANGE.start(), PRIORITY_RANGE.end())
    })
}

/// Creates a SCIM connection with its first token; the token is returned this once.
pub async fn create(
    state: &AppState,
    name: String,
    kind: ConnectionKind,
    priority: Option<i64>,
    actor: &Actor,
) -> StoreResult<(Connection, String)> {
    let (token, digest) = crate::auth::generate_token();
    let new = NewConnection { name, kind, priority, token: digest, token_expires_at: None };
    let connection = state.connections().create_connection(new, actor).await?;
    Ok((connection, token))
}

/// Renames a connection or changes its priority (hosts are relinked by the store).
pub async fn update(
    state: &AppState,
    id: ConnectionId,
    change: ConnectionChange,
    actor: &Actor,
) -> StoreResult<Connection> {
    let connection = state.connections().update_connection(id, change, actor).await?;
    // Connection tokens remember their connection's name, operators' tokens where `default` is.
    state.tokens.forget_connection(id, None);
    Ok(connection)
}

/// Removes a connection with its users and groups; its tokens stop working at once here.
pub async fn delete(state: &AppState, id: ConnectionId, actor: &Actor) -> StoreResult<()> {
    state.connections().delete_connection(id, actor).await?;
    state.tokens.forget_connection(id, None);
    Ok(())
}

/// Adds a token to a connection: `(token id, token)`, the token returned this once.
pub async fn add_token(
    state: &AppState,
    id: ConnectionId,
    expires_at: Option<DateTime<Utc>>,
) -> StoreResult<(i64, String)> {
    let (token, digest) = crate::auth::generate_token();
    let token_id = state.connections().add_connection_token(id, digest, expires_at).await?;
    Ok((token_id, token))
}

/// Revokes one token of a connection. It stops working at once: this instance forgets it,
/// and instances sharing a database cache no token (`auth::TokenCache`).
pub async fn revoke_token(state: &AppState, id: ConnectionId, token_id: i64, actor: &Actor) -> StoreResult<()> {
    state.connections().revoke_connection_token(id, token_id, actor).await?;
    state.tokens.forget_connection(id, Some(token_id));
    Ok(())
}
