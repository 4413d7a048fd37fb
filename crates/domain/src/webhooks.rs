//! Offboarding events: written in the transaction of the SCIM change that deactivates,
//! deletes or reactivates a user who owns hosts (a transactional outbox), then delivered
//! at least once to the configured webhook.

use chrono::{DateTime, Utc};
use serde_json::Value;

/// What happened to a host owner in the IdP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffboardingEvent {
    UserDeactivated,
    UserDeleted,
    UserReactivated,
}

impl OffboardingEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            OffboardingEvent::UserDeactivated => "user_deactivated",
            OffboardingEvent::UserDeleted => "user_deleted",
            OffboardingEvent::UserReactivated => "user_reactivated",
        }
    }

    /// The event a change of a user's document makes, if any: `active` true → false,
    /// false → true, or the user gone (`after` is `None`). A user without `active` is active.
    pub fn of_change(before: Option<&Value>, after: Option<&Value>) -> Option<Self> {
        let active = |d: &Value| d.get("active").and_then(Value::as_bool).unwrap_or(true);
        match (before, after) {
            (Some(_), None) => Some(OffboardingEvent::UserDeleted),
            (Some(b), Some(a)) if active(b) && !active(a) => Some(OffboardingEvent::UserDeactivated),
            (Some(b), Some(a)) if !active(b) && active(a) => Some(OffboardingEvent::UserReactivated),
            _ => None,
        }
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Not attempted yet.
    Pending,
    Delivered,
    /// Attempted and failed; retried at `next_attempt_at`.
    Failing,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failing => "failing",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(DeliveryState::Pending),
            "delivered" => Some(DeliveryState::Delivered),
            "failing" => Some(DeliveryState::Failing),
            _ => None,
        }
    }
}

/// An event and its delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookDelivery {
    pub id: i64,
    pub event: String,
    /// The JSON body POSTed, exactly as stored.
    pub payload: String,
    pub state: DeliveryState,
    pub attempts: i64,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub last_status: Option<i64>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// The outcome of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered { status: u16 },
    Failed { status: Option<u16>, error: String, retry_at: DateTime<Utc> },
}

/// Exponential backoff: `base`, 2·`base`, 4·`base`, … capped at `cap`, after `attempts`
/// failed attempts (1 for the first failure).
pub fn backoff(attempts: i64, base: std::time::Duration, cap: std::time::Duration) -> std::time::Duration {
    let exp = attempts.saturating_sub(1).clamp(0, 30) as u32;
    base.saturating_mul(2u32.saturating_pow(exp)).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn events_follow_active_changes_and_deletion() {
        let on = json!({"active": true});
        let off = json!({"active": false});
        let unset = json!({});
        assert_eq!(OffboardingEvent::of_change(Some(&on), Some(&off)), Some(OffboardingEvent::UserDeactivated));
        assert_eq!(OffboardingEvent::of_change(Some(&unset), Some(&off)), Some(OffboardingEvent::UserDeactivated));
        assert_eq!(OffboardingEvent::of_change(Some(&off), Some(&on)), Some(OffboardingEvent::UserReactivated));
        assert_eq!(OffboardingEvent::of_change(Some(&on), Some(&on)), None);
        assert_eq!(OffboardingEvent::of_change(Some(&off), None), Some(OffboardingEvent::UserDeleted));
        assert_eq!(OffboardingEvent::of_change(None, Some(&on)), None);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let (b, c) = (Duration::from_secs(1), Duration::from_secs(300));
        let got: Vec<u64> = (1..=11).map(|a| backoff(a, b, c).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(backoff(1000, b, c).as_secs(), 300);
    }
}
