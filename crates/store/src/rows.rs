//! Rows decoded into domain values, once for both backends (`db::Row` gives typed columns).

use custodian_domain::hosts::{Activity, Host, LinkState, OwnershipEntry};
use custodian_domain::web::{PasswordUser, WebSession};
use custodian_domain::{ApiUser, Role, ScimRecord, ScimRequestEntry, StoreError, StoreResult};
use serde_json::Value;

use crate::common::{kind_of, parse_doc};
use crate::db::Row;
use crate::time;

/// A resource read with `common::RECORD_COLUMNS`.
pub fn record(row: &Row) -> StoreResult<ScimRecord> {
    Ok(ScimRecord {
        id: row.text("id")?,
        kind: kind_of(&row.text("kind")?)?,
        doc: parse_doc(&row.text("doc")?)?,
        created: time::from_text(&row.text("created")?)?,
        last_modified: time::from_text(&row.text("last_modified")?)?,
        version: row.int("version")?,
    })
}

/// An operator read with `common::USER_COLUMNS`.
pub fn api_user(row: &Row) -> StoreResult<ApiUser> {
    Ok(ApiUser {
        id: row.int("id")?,
        name: row.text("name")?,
        email: row.opt_text("email")?,
        role: row.text("role")?.parse::<Role>().map_err(|e| StoreError::Database(e.to_string()))?,
        api_only: row.int("api_only")? != 0,
        created_at: time::from_text(&row.text("created_at")?)?,
        last_used_at: row.opt_text("last_used_at")?.as_deref().map(time::from_text).transpose()?,
    })
}

/// A password operator: the operator's columns and `password_hash`.
pub fn password_user(row: &Row) -> StoreResult<PasswordUser> {
    Ok(PasswordUser { user: api_user(row)?, password_hash: row.text("password_hash")? })
}

/// A session joined with its operator: the operator's columns, `csrf_token`, `s_created`,
/// `last_seen_at` and `expires_at`.
pub fn web_session(row: &Row) -> StoreResult<WebSession> {
    Ok(WebSession {
        user: api_user(row)?,
        csrf_token: row.text("csrf_token")?,
        created_at: time::from_text(&row.text("s_created")?)?,
        last_seen_at: time::from_text(&row.text("last_seen_at")?)?,
        expires_at: time::from_text(&row.text("expires_at")?)?,
    })
}

pub fn scim_request(row: &Row) -> StoreResult<ScimRequestEntry> {
    Ok(ScimRequestEntry {
        connection: row.opt_int("connection_id")?.map(custodian_domain::ConnectionId),
        requested_at: time::from_text(&row.text("requested_at")?)?,
        method: row.text("method")?,
        path: row.text("path")?,
        status: row.int("status")? as u16,
        detail: row.opt_text("detail")?,
        user_agent: row.opt_text("user_agent")?,
        duration_ms: row.float("duration_ms")?,
    })
}

/// A host row before its mappings and end user are attached.
pub struct HostRow {
    pub host: Host,
    pub end_user_seq: Option<i64>,
}

/// A host read with `common::HOST_COLUMNS`.
pub fn host(row: &Row) -> StoreResult<HostRow> {
    let candidates = row.opt_text("candidates")?;
    Ok(HostRow {
        host: Host {
            id: row.int("id")?,
            uuid: row.text("uuid")?,
            hardware_serial: row.text("hardware_serial")?,
            hostname: row.text("hostname")?,
            computer_name: row.text("computer_name")?,
            platform: row.text("platform")?,
            os_version: row.text("os_version")?,
            hardware_model: row.text("hardware_model")?,
            created_at: time::from_text(&row.text("created_at")?)?,
            updated_at: time::from_text(&row.text("updated_at")?)?,
            seen_time: row.opt_text("seen_time")?.as_deref().map(time::from_text).transpose()?,
            mappings: Vec::new(),
            link_state: LinkState::parse(&row.text("link_state")?).unwrap_or(LinkState::NoIdentity),
            end_user: None,
            candidates: candidates.and_then(|c| serde_json::from_str(&c).ok()).unwrap_or_default(),
        },
        end_user_seq: row.opt_int("end_user_seq")?,
    })
}

pub fn ownership(row: &Row) -> StoreResult<OwnershipEntry> {
    Ok(OwnershipEntry {
        idp_id: row.text("scim_user_id")?,
        idp_username: row.text("user_name")?,
        linked_at: time::from_text(&row.text("linked_at")?)?,
        link_cause: row.text("link_cause")?,
        unlinked_at: row.opt_text("unlinked_at")?.as_deref().map(time::from_text).transpose()?,
        unlink_cause: row.opt_text("unlink_cause")?,
    })
}

pub fn activity(row: &Row) -> StoreResult<Activity> {
    Ok(Activity {
        id: row.int("id")?,
        created_at: time::from_text(&row.text("created_at")?)?,
        actor_id: row.opt_int("actor_id")?,
        actor_name: row.text("actor_name")?,
        kind: row.text("type")?,
        details: serde_json::from_str(&row.text("details")?).unwrap_or(Value::Null),
    })
}

/// A user an identity matches: row number, SCIM id, userName.
pub type Candidate = (i64, String, String);

/// A candidate read from `seq`, `id` and `user_name` columns.
pub fn candidate(row: &Row) -> StoreResult<Candidate> {
    Ok((row.int("seq")?, row.text("id")?, row.opt_text("user_name")?.unwrap_or_default()))
}
