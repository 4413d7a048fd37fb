//! API tokens: 32 random bytes, shown once, stored as a SHA-256 digest.

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use custodian_domain::connections::ConnectionCredential;
use custodian_domain::{ConnectionId, Connections, Credential, Operators, StoreResult, TokenDigest};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A new token and its digest. The token is printed once and then forgotten.
pub fn generate_token() -> (String, TokenDigest) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let digest = digest_token(&token);
    (token, digest)
}

pub fn digest_token(token: &str) -> TokenDigest {
    TokenDigest(Sha256::digest(token.as_bytes()).into())
}

/// The bearer token of a request, if its `Authorization` header carries one.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Remembers for a few seconds what a token digest is (an operator's token or a
/// connection's), so that an IdP's burst of requests does not cost a database read each.
/// Consequence: a deleted operator's token keeps working for at most `TOKEN_CACHE_TTL`
/// on each instance; a token revoked or an operator deleted on this instance is
/// forgotten at once. Unknown and revoked tokens are never cached, so a new token works
/// at once. Entries are keyed by the digest; the token itself is never kept. On a shared
/// database (several instances) nothing is cached: a token revoked anywhere stops
/// working everywhere at once.
pub struct TokenCache {
    entries: Mutex<HashMap<[u8; 32], (Credential, Instant)>>,
    /// False on a shared database (`Operations::is_shared`).
    enabled: bool,
}

pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(5);
const TOKEN_CACHE_MAX: usize = 10_000;

impl TokenCache {
    /// A cache for a store that this instance has to itself (`shared` false) or that
    /// other instances write too (`shared` true: nothing is cached).
    pub fn new(shared: bool) -> Self {
        TokenCache { entries: Mutex::new(HashMap::new()), enabled: !shared }
    }

    /// Forgets every token of an operator (revoked or deleted on this instance), so that
    /// they stop working here at once rather than within `TOKEN_CACHE_TTL`.
    pub fn forget_user(&self, user_id: i64) {
        self.forget(|c| matches!(c, Credential::Operator { user, .. } if user.id == user_id));
    }

    /// Forgets a connection's token (revoked on this instance), or all of a connection's
    /// (`None`: the connection was removed or renamed).
    pub fn forget_connection(&self, connection: ConnectionId, token_id: Option<i64>) {
        self.forget(|c| {
            matches!(c, Credential::Connection(k)
                if k.connection == connection && token_id.is_none_or(|t| t == k.token_id))
        });
        // Operators' tokens remember where `default` is.
        self.forget(|c| matches!(c, Credential::Operator { default: Some(d), .. } if *d == connection));
    }

    fn forget(&self, which: impl Fn(&Credential) -> bool) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|_, (credential, _)| !which(credential));
        }
    }

    /// What a bearer token is: from the cache while fresh, else the store.
    pub async fn authenticate(&self, store: &dyn Operators, token: &str) -> StoreResult<Option<Credential>> {
        let digest = digest_token(token);
        if !self.enabled {
            return store.authenticate_token(digest).await;
        }
        let now = Instant::now();
        if let Ok(entries) = self.entries.lock()
            && let Some((credential, at)) = entries.get(&digest.0)
            && now.duration_since(*at) < TOKEN_CACHE_TTL
        {
            return Ok(Some(credential.clone()));
        }
        let credential = store.authenticate_token(digest).await?;
        if let (Some(c), Ok(mut entries)) = (&credential, self.entries.lock())
            && !matches!(c, Credential::Revoked)
        {
            if entries.len() >= TOKEN_CACHE_MAX {
                entries.retain(|_, (_, at)| now.duration_since(*at) < TOKEN_CACHE_TTL);
            }
            if entries.len() < TOKEN_CACHE_MAX {
                entries.insert(digest.0, (c.clone(), now));
            }
        }
        Ok(credential)
    }
}

/// Records when each operator last used a token or a web session (`api_users.last_used_at`,
/// shown by `custodian user list`) at most once per `RECORD_USE_EVERY` per instance, so
/// that an IdP's burst costs no write per request.
#[derive(Default)]
pub struct OperatorUse {
    recorded: Mutex<HashMap<i64, Instant>>,
    /// The same for connection tokens, by token id.
    recorded_tokens: Mutex<HashMap<i64, Instant>>,
}

pub const RECORD_USE_EVERY: Duration = Duration::from_secs(60);

/// Whether a use of `key` is due to be recorded now; if so, remembers that it was.
fn due(recorded: &Mutex<HashMap<i64, Instant>>, key: i64) -> bool {
    let now = Instant::now();
    let Ok(mut recorded) = recorded.lock() else { return false };
    let due = recorded.get(&key).is_none_or(|at| now.duration_since(*at) >= RECORD_USE_EVERY);
    if due {
        if recorded.len() >= TOKEN_CACHE_MAX {
            recorded.retain(|_, at| now.duration_since(*at) < RECORD_USE_EVERY);
        }
        recorded.insert(key, now);
    }
    due
}

impl OperatorUse {
    /// Records a use of `user_id` now, unless this instance recorded one within
    /// `RECORD_USE_EVERY`. A failure is logged, never the request's.
    pub async fn record(&self, store: &dyn Operators, user_id: i64) {
        if due(&self.recorded, user_id)
            && let Err(e) = store.record_operator_use(user_id, chrono::Utc::now()).await
        {
            tracing::warn!(error = %e, user_id, "recording an operator's last use failed");
        }
    }

    /// The same for a connection's token (`last_used_at` on its connection's page).
    pub async fn record_connection(&self, store: &dyn Connections, credential: &ConnectionCredential) {
        if due(&self.recorded_tokens, credential.token_id)
            && let Err(e) = store.record_connection_token_use(credential, chrono::Utc::now()).await
        {
            tracing::warn!(error = %e, token_id = credential.token_id, "recording a connection token's use failed");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_digests_stable() {
        let (a, da) = generate_token();
        let (b, _) = generate_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(digest_token(&a) == da);
    }

    #[test]
    fn only_bearer_scheme_is_accepted() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(bearer_token(&h), Some("abc"));
        h.insert("authorization", "non-token".parse().unwrap());
        assert_eq!(bearer_token(&h), None);
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(bearer_token(&h), None);
    }
}
