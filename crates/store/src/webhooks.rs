//! The offboarding outbox: events written in the SCIM change's transaction, claimed with a
//! lease (on PostgreSQL `FOR UPDATE SKIP LOCKED` too, so that of several instances only
//! one delivers an event at a time; SQLite's single writer claims one batch at a time),
//! then marked per attempt.

use custodian_domain::hosts::Actor;
use custodian_domain::webhooks::{AttemptOutcome, DeliveryState, OffboardingEvent, WebhookDelivery};
use custodian_domain::{StoreError, StoreResult};
use custodian_scim::schema::ResourceKind;
use serde_json::Value;

use crate::db::{Conn, Db, Sql};
use crate::outbox::{self, EVENT_COLUMNS, clip_error, event_host, event_payload, lease_until};
use crate::time;

/// In the transaction of a SCIM change to a user: when the change deactivates, deletes
/// or reactivates a user who owns hosts, writes the event (and SSO operators with the
/// user's email follow it, hosts or not). For a deletion, call it before
/// the hosts are unlinked and the memberships go.
pub(crate) async fn record_offboarding(
    tx: &mut Conn,
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
    // The IdP's word on a person also decides whether it may still sign in as an operator.
    crate::sso::follow_offboarding(tx, event, user_seq, before, after).await?;
    let rows = tx
        .fetch_all(&Sql::with(
            "SELECT id, uuid, hostname, hardware_serial, platform FROM hosts WHERE end_user_seq = $1 ORDER BY id",
            [user_seq.into()],
        ))
        .await?;
    if rows.is_empty() {
        return Ok(());
    }
    let hosts = rows.iter().map(event_host).collect::<StoreResult<Vec<_>>>()?;
    let d = tx.dialect();
    let groups = tx
        .fetch_all(&Sql::with(
            format!(
                "WITH RECURSIVE up(g, depth) AS (SELECT group_seq, 1 FROM scim_members WHERE member_seq = $1 \
                 UNION SELECT m.group_seq, up.depth + 1 FROM up{} WHERE up.depth < 32) \
                 SELECT DISTINCT r.display FROM up{}",
                d.probe("scim_members", "group_seq, member_seq", "member_seq", "up.g", "m"),
                d.probe("scim_resources", "display, seq", "seq", "up.g", "r"),
            ),
            [user_seq.into()],
        ))
        .await?
        .iter()
        .map(|r| r.opt_text(0))
        .collect::<StoreResult<Vec<_>>>()?;
    let connection = crate::connections::connection_name_of(tx, user_seq).await?;
    let now = time::now();
    let doc = after.or(before).unwrap_or(&Value::Null);
    let payload = event_payload(event, now, user_id, doc, &connection, groups.into_iter().flatten().collect(), hosts);
    tx.execute(&Sql::with(
        "INSERT INTO webhook_events (event, payload, state, attempts, next_attempt_at, created_at) \
         VALUES ($1, $2, 'pending', 0, $3, $4)",
        [event.as_str().into(), payload.into(), time::to_text(now).into(), time::to_text(now).into()],
    ))
    .await?;
    Ok(())
}

impl Db {
    pub(crate) async fn claim_webhook_events(
        &self,
        limit: u32,
        lease: std::time::Duration,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        let now = time::now();
        let mut tx = self.write().await?;
        let skip_locked = tx.dialect().skip_locked();
        let rows = tx
            .fetch_all(&Sql::with(
                format!(
                    "UPDATE webhook_events SET locked_until = $1 WHERE id IN (SELECT id FROM webhook_events \
                     WHERE state <> 'delivered' AND next_attempt_at <= $2 AND (locked_until IS NULL OR locked_until <= $2) \
                     ORDER BY id LIMIT $3{skip_locked}) RETURNING {EVENT_COLUMNS}"
                ),
                [lease_until(now, lease).into(), time::to_text(now).into(), i64::from(limit).into()],
            ))
            .await?;
        tx.commit().await?;
        let mut events = rows.iter().map(outbox::delivery).collect::<StoreResult<Vec<_>>>()?;
        events.sort_by_key(|e| e.id);
        Ok(events)
    }

    pub(crate) async fn finish_webhook_attempt(&self, id: i64, outcome: AttemptOutcome) -> StoreResult<()> {
        let now = time::to_text(time::now());
        let sql = match outcome {
            AttemptOutcome::Delivered { status } => Sql::with(
                "UPDATE webhook_events SET state = 'delivered', attempts = attempts + 1, last_status = $1, \
                 last_error = NULL, delivered_at = $2, locked_until = NULL WHERE id = $3",
                [i64::from(status).into(), now.into(), id.into()],
            ),
            AttemptOutcome::Failed { status, error, retry_at } => Sql::with(
                "UPDATE webhook_events SET state = 'failing', attempts = attempts + 1, last_status = $1, \
                 last_error = $2, next_attempt_at = $3, locked_until = NULL WHERE id = $4 AND state <> 'delivered'",
                [status.map(i64::from).into(), clip_error(&error).into(), time::to_text(retry_at).into(), id.into()],
            ),
        };
        self.write_one(sql).await.map(drop)
    }

    pub(crate) async fn retry_webhook_delivery(&self, id: i64, actor: &Actor) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let row = tx
            .fetch_optional(&Sql::with(
                "UPDATE webhook_events SET next_attempt_at = $1 WHERE id = $2 AND state = 'failing' RETURNING event",
                [time::to_text(time::now()).into(), id.into()],
            ))
            .await?;
        let Some(row) = row else {
            let exists =
                tx.fetch_optional(&Sql::with("SELECT state FROM webhook_events WHERE id = $1", [id.into()])).await?;
            return Err(match exists {
                None => StoreError::NotFound,
                Some(r) => {
                    StoreError::Conflict(format!("delivery {id} is {}: only a failing one can be retried", r.text(0)?))
                }
            });
        };
        crate::linking::record_activity(
            &mut tx,
            actor,
            "retried_webhook_delivery",
            serde_json::json!({"delivery_id": id, "event": row.text(0)?}),
        )
        .await?;
        tx.commit().await
    }

    pub(crate) async fn list_webhook_deliveries(
        &self,
        state: Option<DeliveryState>,
        offset: u64,
        limit: u64,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        let sql = Sql::with(
            format!(
                "SELECT {EVENT_COLUMNS} FROM webhook_events WHERE (CAST($1 AS TEXT) IS NULL OR state = $1) \
                 ORDER BY id DESC LIMIT $2 OFFSET $3"
            ),
            [
                state.map(DeliveryState::as_str).into(),
                (limit.min(i64::MAX as u64) as i64).into(),
                (offset.min(i64::MAX as u64) as i64).into(),
            ],
        );
        self.read().await?.fetch_all(&sql).await?.iter().map(outbox::delivery).collect()
    }

    pub(crate) async fn webhook_backlog(&self) -> StoreResult<u64> {
        let n =
            self.read().await?.int(&Sql::new("SELECT COUNT(*) FROM webhook_events WHERE state <> 'delivered'")).await?;
        Ok(n as u64)
    }
}
