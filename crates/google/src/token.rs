//! Access tokens for a service account acting as a Workspace admin (domain-wide
//! delegation, RFC 7523): an RS256 JWT signed with the key, traded at the key's
//! `token_uri`, cached until shortly before it expires.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::GoogleError;
use crate::key::ServiceAccountKey;
use crate::retry::{Attempt, Retrier, retry_after};

pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Google accepts assertions valid for at most an hour.
pub const ASSERTION_LIFETIME_SECS: i64 = 3600;
/// A cached token is replaced this long before Google says it expires.
const REFRESH_EARLY: Duration = Duration::from_secs(60);

/// The claims of the assertion, as Google's service-account documentation lists them.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub scope: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: u64,
}

#[derive(Deserialize, Default)]
struct OAuthError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

struct Cached {
    token: String,
    refresh_at: Instant,
}

pub struct TokenSource {
    key: ServiceAccountKey,
    /// The key's private half, parsed once.
    signing: jsonwebtoken::EncodingKey,
    admin_email: String,
    http: reqwest::Client,
    cached: tokio::sync::Mutex<Option<Cached>>,
    exchanges: std::sync::atomic::AtomicU64,
}

impl TokenSource {
    pub fn new(key: ServiceAccountKey, admin_email: String, http: reqwest::Client) -> Result<Self, GoogleError> {
        let signing = crate::key::signing_key(&key)?;
        Ok(TokenSource {
            key,
            signing,
            admin_email,
            http,
            cached: tokio::sync::Mutex::new(None),
            exchanges: Default::default(),
        })
    }

    /// Token requests sent so far.
    pub fn exchanges(&self) -> u64 {
        self.exchanges.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The signed assertion for `now` (seconds since the epoch).
    pub fn assertion(&self, now: i64) -> Result<String, GoogleError> {
        let claims = Claims {
            iss: self.key.client_email.clone(),
            sub: self.admin_email.clone(),
            scope: crate::SCOPES.join(" "),
            aud: self.key.token_uri.clone(),
            iat: now,
            exp: now + ASSERTION_LIFETIME_SECS,
        };
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(self.key.private_key_id.clone());
        jsonwebtoken::encode(&header, &claims, &self.signing)
            .map_err(|_| GoogleError::InvalidKey("its \"private_key\" cannot sign (RS256)".into()))
    }

    /// Forgets the cached token (Google answered 401 to it).
    pub async fn forget(&self) {
        *self.cached.lock().await = None;
    }

    /// A live access token: the cached one, or a new one.
    pub async fn access_token(&self, retrier: &Retrier) -> Result<String, GoogleError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && Instant::now() < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        let answer = retrier.run(|| self.exchange()).await?;
        let lifetime = Duration::from_secs(answer.expires_in).saturating_sub(REFRESH_EARLY);
        let token = answer.access_token;
        *cached = Some(Cached { token: token.clone(), refresh_at: Instant::now() + lifetime });
        Ok(token)
    }

    async fn exchange(&self) -> Attempt<TokenAnswer> {
        let assertion = match self.assertion(chrono::Utc::now().timestamp()) {
            Ok(a) => a,
            Err(e) => return Attempt::Fail(e),
        };
        self.exchanges.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sent = self
            .http
            .post(&self.key.token_uri)
            .form(&[("grant_type", JWT_BEARER_GRANT), ("assertion", assertion.as_str())])
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return Attempt::Retry { reason: format!("the token endpoint: {}", transport(&e)), after: None },
        };
        let status = response.status();
        let after = retry_after(response.headers());
        let body = response.bytes().await.unwrap_or_default();
        if status.is_success() {
            return match serde_json::from_slice::<TokenAnswer>(&body) {
                Ok(a) if !a.access_token.is_empty() => Attempt::Done(a),
                _ => Attempt::Fail(GoogleError::Protocol("the token endpoint answered no access_token".into())),
            };
        }
        if status.as_u16() == 429 || status.is_server_error() {
            return Attempt::Retry { reason: format!("the token endpoint answered {status}"), after };
        }
        let error: OAuthError = serde_json::from_slice(&body).unwrap_or_default();
        Attempt::Fail(self.explain(status.as_u16(), &error))
    }

    /// What an admin must fix, from the token endpoint's OAuth error.
    fn explain(&self, status: u16, e: &OAuthError) -> GoogleError {
        let scopes = crate::SCOPES.join(",");
        let client =
            if self.key.client_id.is_empty() { "the service account's client ID" } else { &self.key.client_id };
        let message = match e.error.as_str() {
            "unauthorized_client" => format!(
                "Google does not let this service account act for {admin} (unauthorized_client). In the Google Admin \
                 console, open Security › Access and data control › API controls › Manage domain-wide delegation, \
                 add client ID {client} and grant exactly these scopes: {scopes}",
                admin = self.admin_email
            ),
            "access_denied" => format!(
                "Google refused the scopes (access_denied): under domain-wide delegation, client ID {client} must be \
                 granted exactly these scopes: {scopes}"
            ),
            "invalid_grant" if e.error_description.contains("Invalid email or User ID") => format!(
                "the admin email {} is not a user of this Google Workspace (invalid_grant): enter the email of a \
                 Workspace admin who may read users and groups",
                self.admin_email
            ),
            "invalid_grant" if e.error_description.to_ascii_lowercase().contains("signature") => {
                "Google rejects the key's signature (invalid_grant): the key was deleted or disabled; create a new \
                 JSON key for the service account and update the connection"
                    .to_string()
            }
            "invalid_grant" => format!(
                "Google rejected the assertion (invalid_grant: {}): check this server's clock and the key",
                e.error_description
            ),
            "invalid_client" => "Google does not know this key's service account (invalid_client): it was deleted or \
                                  disabled; create a new JSON key and update the connection"
                .to_string(),
            "" => format!("the token endpoint answered HTTP {status}"),
            other => format!("the token endpoint refused ({other}: {})", e.error_description),
        };
        GoogleError::Configuration(message)
    }
}

/// A transport error in words, without the URL's query (which could carry a page token).
pub fn transport(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else {
        "the connection failed".into()
    }
}
