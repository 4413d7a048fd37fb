//! The Admin SDK Directory API: every page of users, groups and a group's members, with
//! retries where Google documents them as transient and configuration errors otherwise.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::GoogleError;
use crate::key::ServiceAccountKey;
use crate::model::{Group, Member, Page, User};
use crate::retry::{Attempt, Retrier, RetryPolicy, retry_after};
use crate::token::{TokenSource, transport};

pub const USERS_PAGE: u32 = 500;
pub const GROUPS_PAGE: u32 = 200;
pub const MEMBERS_PAGE: u32 = 200;

/// What a `google_workspace` connection says about its directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DirectoryConfig {
    pub key: ServiceAccountKey,
    pub admin_email: String,
    pub customer_id: String,
    pub org_unit_paths: Vec<String>,
    pub api_base_url: String,
}

#[derive(Deserialize, Default)]
struct ApiErrorBody {
    #[serde(default)]
    error: ApiError,
}

#[derive(Deserialize, Default)]
struct ApiError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    errors: Vec<ApiErrorItem>,
}

#[derive(Deserialize, Default)]
struct ApiErrorItem {
    #[serde(default)]
    reason: String,
}

pub struct DirectoryClient {
    http: reqwest::Client,
    base: String,
    admin_email: String,
    customer_id: String,
    tokens: TokenSource,
    retrier: Retrier,
    requests: AtomicU64,
}

impl DirectoryClient {
    /// `timeout` bounds each request (a page that does not come is retried, then fails).
    pub fn new(config: &DirectoryConfig, policy: RetryPolicy, timeout: Duration) -> Result<Self, GoogleError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("custodian/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|_| GoogleError::Protocol("cannot build an HTTP client".into()))?;
        Ok(DirectoryClient {
            tokens: TokenSource::new(config.key.clone(), config.admin_email.clone(), http.clone())?,
            http,
            base: format!("{}/admin/directory/v1", config.api_base_url.trim_end_matches('/')),
            admin_email: config.admin_email.clone(),
            customer_id: config.customer_id.clone(),
            retrier: Retrier::new(policy),
            requests: AtomicU64::new(0),
        })
    }

    /// Requests sent to Google so far (token exchanges included).
    pub fn requests_made(&self) -> u64 {
        self.requests.load(Ordering::Relaxed) + self.tokens.exchanges()
    }

    /// Starts a run: its budget of waiting is whole again.
    pub fn start_run(&self) {
        self.retrier.reset();
    }

    /// Every user of the customer (`query`: Google's user query, e.g. an org unit).
    pub async fn users(&self, query: Option<&str>) -> Result<Vec<User>, GoogleError> {
        let max = USERS_PAGE.to_string();
        let mut params = vec![("customer", self.customer_id.as_str()), ("maxResults", &max), ("projection", "full")];
        if let Some(q) = query {
            params.push(("query", q));
        }
        self.all_pages("/users", &params).await
    }

    pub async fn groups(&self) -> Result<Vec<Group>, GoogleError> {
        let max = GROUPS_PAGE.to_string();
        self.all_pages("/groups", &[("customer", self.customer_id.as_str()), ("maxResults", &max)]).await
    }

    /// A group's direct members (nested groups are members of type `GROUP`).
    pub async fn members(&self, group_id: &str) -> Result<Vec<Member>, GoogleError> {
        let max = MEMBERS_PAGE.to_string();
        let path = format!("/groups/{}/members", percent_segment(group_id));
        self.all_pages(&path, &[("maxResults", &max)]).await
    }

    async fn all_pages<T: DeserializeOwned>(&self, path: &str, params: &[(&str, &str)]) -> Result<Vec<T>, GoogleError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query: Vec<(&str, &str)> = params.to_vec();
            if let Some(t) = &token {
                query.push(("pageToken", t));
            }
            let page: Page<T> = self.get(path, &query).await?;
            out.extend(page.items);
            match page.next_page_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => return Ok(out),
            }
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, &str)]) -> Result<T, GoogleError> {
        let url = format!("{}{path}", self.base);
        self.retrier
            .run(|| async {
                let token = match self.tokens.access_token(&self.retrier).await {
                    Ok(t) => t,
                    Err(e) => return Attempt::Fail(e),
                };
                self.requests.fetch_add(1, Ordering::Relaxed);
                let sent = self.http.get(&url).query(query).bearer_auth(&token).send().await;
                let response = match sent {
                    Ok(r) => r,
                    Err(e) => return Attempt::Retry { reason: format!("GET {path}: {}", transport(&e)), after: None },
                };
                let status = response.status();
                let after = retry_after(response.headers());
                let body = match response.bytes().await {
                    Ok(b) => b,
                    Err(e) => return Attempt::Retry { reason: format!("GET {path}: {}", transport(&e)), after: None },
                };
                if status.is_success() {
                    return match serde_json::from_slice::<T>(&body) {
                        Ok(v) => Attempt::Done(v),
                        Err(e) => Attempt::Fail(GoogleError::Protocol(format!("GET {path}: {e}"))),
                    };
                }
                let error = serde_json::from_slice::<ApiErrorBody>(&body).unwrap_or_default().error;
                let reason = error.errors.first().map(|e| e.reason.as_str()).unwrap_or("");
                match (status.as_u16(), reason) {
                    (429, _) | (500..=599, _) => {
                        Attempt::Retry { reason: format!("GET {path} answered {status}"), after }
                    }
                    (403, "rateLimitExceeded" | "userRateLimitExceeded" | "quotaExceeded") => {
                        Attempt::Retry { reason: format!("GET {path}: Google's {reason}"), after }
                    }
                    (401, _) => {
                        // A token Google no longer takes: the next attempt asks for a new one.
                        self.tokens.forget().await;
                        Attempt::Retry { reason: format!("GET {path} answered 401"), after: None }
                    }
                    (403, _) => Attempt::Fail(GoogleError::Configuration(format!(
                        "Google refused to list the directory ({reason}: {message}): {admin} must be a Workspace \
                         admin whose role may read users and groups (e.g. User Management Admin and Groups Reader)",
                        admin = self.admin_email,
                        reason = if reason.is_empty() { "forbidden" } else { reason },
                        message = error.message,
                    ))),
                    (400 | 404, _) => Attempt::Fail(GoogleError::Configuration(format!(
                        "Google refused GET {path} ({status}: {}): check the customer id ({}) and the org unit paths",
                        error.message, self.customer_id
                    ))),
                    _ => Attempt::Fail(GoogleError::Protocol(format!("GET {path} answered {status}"))),
                }
            })
            .await
    }
}

/// A path segment with everything but unreserved characters percent-encoded.
fn percent_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
