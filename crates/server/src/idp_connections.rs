//! Changing IdP connections, once for every surface (JSON API, web pages, CLI): the
//! rules a name and a priority keep, the token shown once, and forgetting cached
//! credentials on this instance as soon as a change makes them wrong.

use chrono::{DateTime, Utc};
use custodian_domain::StoreResult;
use custodian_domain::connections::{Connection, ConnectionChange, ConnectionId, NewConnection, NewSource};
use custodian_domain::hosts::Actor;
use custodian_domain::sync::{
    GoogleWorkspaceChange, GoogleWorkspaceSettings, NewGoogleWorkspace, SecretKeyFile, SyncRun,
};
use custodian_google::ServiceAccountKey;
use serde_json::Value;

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
    priority: Option<i64>,
    actor: &Actor,
) -> StoreResult<(Connection, String)> {
    let (token, digest) = crate::auth::generate_token();
    let new = NewConnection { name, priority, source: NewSource::Scim { token: digest, token_expires_at: None } };
    let connection = state.connections().create_connection(new, actor).await?;
    Ok((connection, token))
}

/// Creates a Google Workspace connection; its first run starts at once.
pub async fn create_google_workspace(
    state: &AppState,
    name: String,
    priority: Option<i64>,
    google: NewGoogleWorkspace,
    actor: &Actor,
) -> StoreResult<Connection> {
    let new = NewConnection { name, priority, source: NewSource::GoogleWorkspace(google) };
    let connection = state.connections().create_connection(new, actor).await?;
    state.sync.wake();
    Ok(connection)
}

/// Starts a directory sync run now, or after the one in progress (returned then).
pub async fn sync_now(state: &AppState, id: ConnectionId, allow_deletions: Option<u64>) -> StoreResult<SyncRun> {
    state.sync.request(id, allow_deletions).await
}

/// The defaults of a Google Workspace connection's optional settings.
pub const DEFAULT_CUSTOMER_ID: &str = "my_customer";
pub const DEFAULT_SYNC_INTERVAL_SECONDS: u64 = 300;
/// Intervals shorter than a minute are for tests; longer than a day would leave a
/// departed person's laptop unflagged for too long.
pub const SYNC_INTERVAL_RANGE: std::ops::RangeInclusive<u64> = 1..=86_400;
const MAX_ORG_UNITS: usize = 100;
const MAX_KEY_FILE_BYTES: usize = 16 * 1024;

/// A Google Workspace connection's settings as a surface received them: each field
/// already of the right type, not yet checked.
#[derive(Debug, Default)]
pub struct GoogleWorkspaceForm {
    pub service_account_key: Option<Value>,
    pub admin_email: Option<String>,
    pub customer_id: Option<String>,
    pub org_unit_paths: Option<Vec<String>>,
    pub sync_interval_seconds: Option<u64>,
    pub api_base_url: Option<String>,
}

impl GoogleWorkspaceForm {
    /// The settings and key to store, or each field's problem (by the field's name under
    /// `google_workspace`). No problem quotes the key.
    pub fn check(self) -> Result<NewGoogleWorkspace, Vec<(&'static str, String)>> {
        match self.checked(None)? {
            (Some(key_file), settings) => Ok(NewGoogleWorkspace { key_file, settings }),
            (None, _) => Err(vec![("service_account_key", KEY_REQUIRED.into())]),
        }
    }

    /// A change of an existing connection's settings: a field left out keeps its value,
    /// and the key is replaced only when a new one is given (a rotation).
    pub fn check_change(
        self,
        current: &GoogleWorkspaceSettings,
    ) -> Result<GoogleWorkspaceChange, Vec<(&'static str, String)>> {
        let (key_file, settings) = self.checked(Some(current))?;
        Ok(GoogleWorkspaceChange { key_file, settings })
    }

    /// Every field checked; a missing one is `current`'s, else the default. The key file
    /// is required unless there is a current one.
    #[allow(clippy::type_complexity)]
    fn checked(
        self,
        current: Option<&GoogleWorkspaceSettings>,
    ) -> Result<(Option<SecretKeyFile>, GoogleWorkspaceSettings), Vec<(&'static str, String)>> {
        let mut problems = Vec::new();
        let key = match &self.service_account_key {
            None if current.is_none() => {
                problems.push(("service_account_key", KEY_REQUIRED.to_string()));
                None
            }
            None => None,
            Some(v) if v.to_string().len() > MAX_KEY_FILE_BYTES => {
                problems.push(("service_account_key", format!("must be at most {MAX_KEY_FILE_BYTES} bytes")));
                None
            }
            Some(v) => match ServiceAccountKey::parse(v) {
                Ok(key) => Some((SecretKeyFile(v.to_string()), key)),
                Err(e) => {
                    problems.push(("service_account_key", e.to_string().replacen("the service account key ", "", 1)));
                    None
                }
            },
        };
        let admin_email = self
            .admin_email
            .map(|e| e.trim().to_string())
            .or_else(|| current.map(|c| c.admin_email.clone()))
            .unwrap_or_default();
        if admin_email.is_empty() {
            problems.push(("admin_email", "is required: the email of a Google Workspace admin to act as".into()));
        } else if admin_email.len() > 254 || !is_email(&admin_email) {
            problems.push(("admin_email", "must be an email address, such as admin@example.com".into()));
        }
        let customer_id = self
            .customer_id
            .map(|c| c.trim().to_string())
            .or_else(|| current.map(|c| c.customer_id.clone()))
            .unwrap_or_else(|| DEFAULT_CUSTOMER_ID.into());
        if customer_id.is_empty()
            || customer_id.len() > 64
            || !customer_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            problems.push((
                "customer_id",
                "must be my_customer or your account's customer ID (letters and digits, such as C03az79cb)".into(),
            ));
        }
        let org_unit_paths = self
            .org_unit_paths
            .or_else(|| current.map(|c| c.org_unit_paths.clone()))
            .unwrap_or_else(|| vec!["/".into()]);
        if org_unit_paths.is_empty() || org_unit_paths.len() > MAX_ORG_UNITS {
            problems.push(("org_unit_paths", format!("must list 1 to {MAX_ORG_UNITS} org unit paths, such as \"/\"")));
        } else if org_unit_paths.iter().any(|p| !p.starts_with('/') || p.len() > 1024 || p.contains('\0')) {
            problems
                .push(("org_unit_paths", "must hold full org unit paths, each starting with /, such as /Sales".into()));
        }
        let sync_interval_seconds = self
            .sync_interval_seconds
            .or_else(|| current.map(|c| c.sync_interval_seconds))
            .unwrap_or(DEFAULT_SYNC_INTERVAL_SECONDS);
        if !SYNC_INTERVAL_RANGE.contains(&sync_interval_seconds) {
            problems.push((
                "sync_interval_seconds",
                format!(
                    "must be a whole number of seconds from {} to {}",
                    SYNC_INTERVAL_RANGE.start(),
                    SYNC_INTERVAL_RANGE.end()
                ),
            ));
        }
        let api_base_url = self
            .api_base_url
            .map(|u| u.trim().trim_end_matches('/').to_string())
            .or_else(|| current.map(|c| c.api_base_url.clone()))
            .unwrap_or_else(|| custodian_google::DEFAULT_API_BASE_URL.into());
        if !(api_base_url.starts_with("https://") || api_base_url.starts_with("http://"))
            || api_base_url.len() > 2048
            || api_base_url.chars().any(char::is_whitespace)
        {
            problems.push(("api_base_url", "must be an http(s) URL, such as https://admin.googleapis.com".into()));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let (client_email, private_key_id) = match (&key, current) {
            (Some((_, k)), _) => (k.client_email.clone(), k.private_key_id.clone()),
            (None, Some(c)) => (c.client_email.clone(), c.private_key_id.clone()),
            (None, None) => return Err(vec![("service_account_key", KEY_REQUIRED.into())]),
        };
        let settings = GoogleWorkspaceSettings {
            client_email,
            private_key_id,
            admin_email,
            customer_id,
            org_unit_paths,
            sync_interval_seconds,
            api_base_url,
        };
        Ok((key.map(|(file, _)| file), settings))
    }
}

const KEY_REQUIRED: &str = "is required: the JSON key file of a service account with domain-wide delegation";

fn is_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !s.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

/// Renames a connection, changes its priority (hosts are relinked by the store) or a
/// Google Workspace connection's settings and key (the next run uses them).
pub async fn update(
    state: &AppState,
    id: ConnectionId,
    change: ConnectionChange,
    actor: &Actor,
) -> StoreResult<Connection> {
    let resync = change.google_workspace.is_some();
    let connection = state.connections().update_connection(id, change, actor).await?;
    if resync {
        state.sync.forget_client(id);
    }
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
