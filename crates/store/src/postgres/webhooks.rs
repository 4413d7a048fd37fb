//! The offboarding outbox on PostgreSQL: events written in the SCIM change's transaction,
//! claimed with `FOR UPDATE SKIP LOCKED` and a lease, so that of several instances only one delivers an event at a time, then marked per attempt.

use custodian_domain::StoreResult;
use custodian_domain::webhooks::{AttemptOutcome, DeliveryState, OffboardingEvent, WebhookDelivery};
use custodian_scim::schema::ResourceKind;
use serde_json::Value;
use sqlx::Row;

use super::begin;
use super::{PgStore, Tx, db_err};
use crate::outbox::{self, EVENT_COLUMNS, clip_error, event_host, event_payload, lease_until};
use crate::time;

/// In the transaction of a SCIM change to a user: when the change deactivates, deletes
/// or reactivates a user who owns hosts, writes the event. For a deletion, call it before
/// the hosts are unlinked and the memberships go.
pub(super) async fn record_offboarding(
    tx: &mut Tx<'_>,
    kind: ResourceKind,
    user_seq: i64,
    user_id: &str,
    before: Option<&Value>,
    after: Option<&Value>,
) -> StoreResult<()> {
    if kind != ResourceKind::User {
        return Ok(());
    }
    let Some(event) = OffboardingEvent::of_change(before, after) else { return Ok(()) };
    let rows = sqlx::query(
        "SELECT id, uuid, hostname, hardware_serial, platform FROM hosts WHERE end_user_seq = $1 ORDER BY id",
    )
    .bind(user_seq)
    .fetch_all(&mut **tx)
    .await
    .map_err(db_err)?;
    if rows.is_empty() {
        return Ok(());
    }
    let hosts = rows.iter().map(event_host).collect::<StoreResult<Vec<_>>>()?;
    let groups: Vec<Option<String>> = sqlx::query_scalar(
        // Index probes at each step (see `hosts::complete`).
        "WITH RECURSIVE up(g, depth) AS (SELECT group_seq, 1 FROM scim_members WHERE member_seq = $1 \
         UNION SELECT m.group_seq, up.depth + 1 FROM up JOIN LATERAL \
         (SELECT mm.group_seq FROM scim_members mm WHERE mm.member_seq = up.g OFFSET 0) m ON true \
         WHERE up.depth < 32) \
         SELECT DISTINCT r.display FROM up JOIN LATERAL \
         (SELECT display FROM scim_resources WHERE seq = up.g OFFSET 0) r ON true",
    )
    .bind(user_seq)
    .fetch_all(&mut **tx)
    .await
    .map_err(db_err)?;
    let now = time::now();
    let doc = after.or(before).unwrap_or(&Value::Null);
    let payload = event_payload(event, now, user_id, doc, groups.into_iter().flatten().collect(), hosts);
    sqlx::query(
        "INSERT INTO webhook_events (event, payload, state, attempts, next_attempt_at, created_at) \
         VALUES ($1, $2, 'pending', 0, $3, $4)",
    )
    .bind(event.as_str())
    .bind(payload)
    .bind(time::to_text(now))
    .bind(time::to_text(now))
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

impl PgStore {
    pub(super) async fn claim_webhook_events_impl(
        &self,
        limit: u32,
        lease: std::time::Duration,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        let now = time::now();
        let mut tx = begin(&self.pool, None).await.map_err(db_err)?;
        let rows = sqlx::query(&format!(
            "UPDATE webhook_events SET locked_until = $1 WHERE id IN (SELECT id FROM webhook_events \
             WHERE state <> 'delivered' AND next_attempt_at <= $2 AND (locked_until IS NULL OR locked_until <= $2) \
             ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING {EVENT_COLUMNS}"
        ))
        .bind(lease_until(now, lease))
        .bind(time::to_text(now))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        let mut events = rows.iter().map(outbox::delivery).collect::<StoreResult<Vec<_>>>()?;
        events.sort_by_key(|e| e.id);
        Ok(events)
    }

    pub(super) async fn finish_webhook_attempt_impl(&self, id: i64, outcome: AttemptOutcome) -> StoreResult<()> {
        let now = time::to_text(time::now());
        let mut tx = begin(&self.pool, None).await.map_err(db_err)?;
        match outcome {
            AttemptOutcome::Delivered { status } => {
                sqlx::query(
                    "UPDATE webhook_events SET state = 'delivered', attempts = attempts + 1, last_status = $1, \
                     last_error = NULL, delivered_at = $2, locked_until = NULL WHERE id = $3",
                )
                .bind(i64::from(status))
                .bind(&now)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            }
            AttemptOutcome::Failed { status, error, retry_at } => {
                sqlx::query(
                    "UPDATE webhook_events SET state = 'failing', attempts = attempts + 1, last_status = $1, \
                     last_error = $2, next_attempt_at = $3, locked_until = NULL WHERE id = $4 AND state <> 'delivered'",
                )
                .bind(status.map(i64::from))
                .bind(clip_error(&error))
                .bind(time::to_text(retry_at))
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            }
        }
        tx.commit().await.map_err(db_err)
    }

    pub(super) async fn list_webhook_deliveries_impl(
        &self,
        state: Option<DeliveryState>,
        offset: u64,
        limit: u64,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM webhook_events WHERE ($1::text IS NULL OR state = $1) ORDER BY id DESC \
             LIMIT $2 OFFSET $3"
        ))
        .bind(state.map(DeliveryState::as_str))
        .bind(limit.min(i64::MAX as u64) as i64)
        .bind(offset.min(i64::MAX as u64) as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(outbox::delivery).collect()
    }

    pub(super) async fn webhook_backlog_impl(&self) -> StoreResult<u64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM webhook_events WHERE state <> 'delivered'")
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;
        let n: i64 = row.try_get("n").map_err(db_err)?;
        Ok(n as u64)
    }
}
