//! What both backends share: how a document's derived columns are computed, the
//! preconditions, the identities a user answers to, and the column lists. Only the SQL
//! differs between `sqlite` and `postgres`.

use custodian_domain::hosts::normalize_identity;
use custodian_domain::idp::version_of_etag;
use custodian_domain::{Precondition, ScimRecord, StoreError, StoreResult};
use custodian_scim::ScimError;
use custodian_scim::filter::{CompareKey, value_key};
use custodian_scim::resource::MemberKind;
use custodian_scim::schema::ResourceKind;
use serde_json::Value;

/// The columns a `ScimRecord` is read from (the resource table is named `r`).
pub const RECORD_COLUMNS: &str = "r.seq, r.id, r.kind, r.doc, r.created, r.last_modified, r.version";

/// The columns a host row is read from (the host table is named `h`).
pub const HOST_COLUMNS: &str = "h.id, h.uuid, h.hardware_serial, h.hostname, h.computer_name, h.platform, \
     h.os_version, h.hardware_model, h.created_at, h.updated_at, h.seen_time, h.end_user_seq, h.link_state, \
     h.candidates";

/// The columns an operator is read from.
pub const USER_COLUMNS: &str = "id, name, email, role, api_only, created_at, last_used_at";
/// The same, from the operators table named `u` in a join.
pub const JOINED_USER_COLUMNS: &str = "u.id, u.name, u.email, u.role, u.api_only, u.created_at, u.last_used_at";

/// The columns `rows::scim_request` reads.
pub const REQUEST_COLUMNS: &str = "connection_id, requested_at, method, path, status, detail, user_agent, duration_ms";

/// How many SCIM requests the history keeps.
pub const HISTORY_LIMIT: i64 = 1000;

/// The unique, normalised name of a resource: userName for users, displayName for groups.
pub fn unique_norm(kind: ResourceKind, doc: &Value) -> StoreResult<String> {
    let attr_name = match kind {
        ResourceKind::User => "userName",
        ResourceKind::Group => "displayName",
    };
    let def = kind
        .core_schema()
        .attribute(attr_name)
        .ok_or_else(|| StoreError::Database(format!("schema lacks {attr_name}")))?;
    match doc.get(attr_name).and_then(|v| value_key(def, v)) {
        Some(CompareKey::Str(s)) => Ok(s),
        _ => Err(ScimError::invalid_value(format!("'{attr_name}' is required")).into()),
    }
}

/// The error for a taken unique name.
pub fn name_taken(kind: ResourceKind) -> StoreError {
    ScimError::uniqueness(match kind {
        ResourceKind::User => "a user with this userName already exists",
        ResourceKind::Group => "a group with this displayName already exists",
    })
    .into()
}

/// The `active` column: 1 or 0 for users, none for groups.
pub fn active_of(kind: ResourceKind, doc: &Value) -> Option<i64> {
    match kind {
        // A user without `active` is active (RFC 7643 leaves it to the provider).
        ResourceKind::User => Some(doc.get("active").and_then(Value::as_bool).unwrap_or(true) as i64),
        ResourceKind::Group => None,
    }
}

pub fn kind_of(s: &str) -> StoreResult<ResourceKind> {
    match s {
        "User" => Ok(ResourceKind::User),
        "Group" => Ok(ResourceKind::Group),
        other => Err(StoreError::Database(format!("unknown resource kind '{other}'"))),
    }
}

pub fn member_kind(kind: ResourceKind) -> MemberKind {
    match kind {
        ResourceKind::User => MemberKind::User,
        ResourceKind::Group => MemberKind::Group,
    }
}

/// Whether a POST of an existing name reactivates it: Okta reactivates a user by
/// POSTing it again with `active: true`.
pub fn reactivates(kind: ResourceKind, existing_active: Option<i64>, doc: &Value) -> bool {
    kind == ResourceKind::User && existing_active == Some(0) && doc.get("active").and_then(Value::as_bool) == Some(true)
}

/// `If-Match`: passes when absent, `*`, or naming the current version.
pub fn check_precondition(record: &ScimRecord, if_match: &Precondition) -> StoreResult<()> {
    match if_match.as_deref().map(str::trim) {
        None | Some("*") => Ok(()),
        Some(tags) => {
            let ok = tags.split(',').any(|t| version_of_etag(t) == Some(record.version));
            if ok {
                Ok(())
            } else {
                Err(ScimError::precondition_failed(format!(
                    "the resource has changed: its version is {}",
                    record.etag()
                ))
                .into())
            }
        }
    }
}

/// The normalised names a user answers to: its userName and its emails.
pub fn identities_of_user(doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(u) = doc.get("userName").and_then(Value::as_str) {
        out.push(normalize_identity(u));
    }
    if let Some(emails) = doc.get("emails").and_then(Value::as_array) {
        out.extend(emails.iter().filter_map(|e| e.get("value").and_then(Value::as_str)).map(normalize_identity));
    }
    out.sort();
    out.dedup();
    out
}

/// The identities to match again after a user changed: those it had and those it has.
pub fn changed_identities(before: Option<&Value>, after: Option<&Value>) -> Vec<String> {
    let mut identities: Vec<String> = before.map(identities_of_user).unwrap_or_default();
    identities.extend(after.map(identities_of_user).unwrap_or_default());
    identities.sort();
    identities.dedup();
    identities
}

/// The full name a host shows: given and family name, else the formatted name, else
/// the display name.
pub fn full_name(doc: &Value) -> String {
    let name = doc.get("name");
    let part = |k: &str| name.and_then(|n| n.get(k)).and_then(Value::as_str).unwrap_or("").trim();
    let joined =
        [part("givenName"), part("familyName")].iter().filter(|s| !s.is_empty()).copied().collect::<Vec<_>>().join(" ");
    if !joined.is_empty() {
        return joined;
    }
    if !part("formatted").is_empty() {
        return part("formatted").to_string();
    }
    doc.get("displayName").and_then(Value::as_str).unwrap_or("").to_string()
}

/// A document read back from the database.
pub fn parse_doc(text: &str) -> StoreResult<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Database(format!("bad document: {e}")))
}

/// Narrows a query over `scim_resources r` to a connection's namespace.
pub fn push_scope(sql: &mut crate::db::Sql, scope: custodian_domain::Scope) {
    if let custodian_domain::Scope::Connection(conn) = scope {
        sql.push(" AND r.connection_id = ");
        sql.push_bind(conn.0);
    }
}
