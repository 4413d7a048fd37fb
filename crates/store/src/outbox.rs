//! What both backends share for labels and the offboarding outbox: decoding rows and
//! building an event's payload. Only the SQL differs between `sqlite` and `postgres`.

use chrono::{DateTime, Utc};
use custodian_domain::labels::{Label, criteria_from_stored};
use custodian_domain::webhooks::{DeliveryState, OffboardingEvent, WebhookDelivery};
use custodian_domain::{StoreError, StoreResult};
use custodian_scim::schema::ENTERPRISE_USER_SCHEMA;
use serde_json::{Value, json};

use crate::common::{full_name, parse_doc};
use crate::db::Row;
use crate::time;

/// The columns a label is read from.
pub const LABEL_COLUMNS: &str = "id, name, description, criteria, created_at, updated_at, source_id";

/// The columns an event is read from.
pub const EVENT_COLUMNS: &str =
    "id, event, payload, state, attempts, next_attempt_at, last_error, last_status, delivered_at, created_at";

/// How long a deliverer holds the events it claimed, at most, when the caller passes none.
pub fn lease_until(now: DateTime<Utc>, lease: std::time::Duration) -> String {
    let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60));
    time::to_text(now + lease)
}

/// A label's unique key: its name, trimmed, in lower case.
pub fn label_norm(name: &str) -> String {
    name.trim().to_lowercase()
}

pub fn label(row: &Row) -> StoreResult<Label> {
    let criteria_text = row.text("criteria")?;
    let criteria = criteria_from_stored(&parse_doc(&criteria_text)?)
        .ok_or_else(|| StoreError::Database(format!("bad label criteria in database: {criteria_text}")))?;
    Ok(Label {
        id: row.int("id")?,
        name: row.text("name")?,
        description: row.text("description")?,
        criteria,
        created_at: time::from_text(&row.text("created_at")?)?,
        updated_at: time::from_text(&row.text("updated_at")?)?,
        source_id: row.opt_int("source_id")?,
    })
}

pub fn delivery(row: &Row) -> StoreResult<WebhookDelivery> {
    let state = row.text("state")?;
    Ok(WebhookDelivery {
        id: row.int("id")?,
        event: row.text("event")?,
        payload: row.text("payload")?,
        state: DeliveryState::parse(&state)
            .ok_or_else(|| StoreError::Database(format!("bad delivery state '{state}' in database")))?,
        attempts: row.int("attempts")?,
        next_attempt_at: time::from_text(&row.text("next_attempt_at")?)?,
        last_error: row.opt_text("last_error")?,
        last_status: row.opt_int("last_status")?,
        delivered_at: row.opt_text("delivered_at")?.as_deref().map(time::from_text).transpose()?,
        created_at: time::from_text(&row.text("created_at")?)?,
    })
}

/// A host as an event lists it.
pub fn event_host(row: &Row) -> StoreResult<Value> {
    Ok(json!({
        "id": row.int("id")?,
        "uuid": row.text("uuid")?,
        "hostname": row.text("hostname")?,
        "hardware_serial": row.text("hardware_serial")?,
        "platform": row.text("platform")?,
    }))
}

/// The JSON body of an offboarding event: `{event, occurred_at, user, hosts}`, the user
/// as it is after the change (before it, for a deletion).
pub fn event_payload(
    event: OffboardingEvent,
    occurred_at: DateTime<Utc>,
    user_id: &str,
    doc: &Value,
    connection: &str,
    mut groups: Vec<String>,
    hosts: Vec<Value>,
) -> String {
    groups.sort();
    groups.dedup();
    json!({
        "event": event.as_str(),
        "occurred_at": occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "user": {
            "idp_id": user_id,
            "idp_username": doc.get("userName").and_then(Value::as_str).unwrap_or(""),
            "idp_full_name": full_name(doc),
            "idp_department": doc.get(ENTERPRISE_USER_SCHEMA).and_then(|e| e.get("department")).and_then(Value::as_str),
            "idp_groups": groups,
            "idp_active": event != OffboardingEvent::UserDeactivated && event != OffboardingEvent::UserDeleted,
            "idp_connection": connection,
        },
        "hosts": hosts,
    })
    .to_string()
}

/// Error text stored for an attempt, cut to a sane length.
pub fn clip_error(error: &str) -> String {
    error.chars().take(1000).collect()
}
