//! The IdP connection's request history: bounded, newest first.

use custodian_domain::{ScimRequestEntry, StoreResult};

use super::{SqliteStore, db_err};
use crate::common::HISTORY_LIMIT;
use crate::rows;
use crate::time;

impl SqliteStore {
    pub(super) async fn record_scim_requests_impl(&self, entries: Vec<ScimRequestEntry>) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
        let mut id = 0;
        for e in entries {
            id = sqlx::query_scalar(
                "INSERT INTO scim_requests (requested_at, method, path, status, detail, user_agent, duration_ms) \
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            )
            .bind(time::to_text(e.requested_at))
            .bind(&e.method)
            .bind(&e.path)
            .bind(e.status as i64)
            .bind(&e.detail)
            .bind(&e.user_agent)
            .bind(e.duration_ms)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        sqlx::query("DELETE FROM scim_requests WHERE id <= ?")
            .bind(id - HISTORY_LIMIT)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    pub(super) async fn recent_scim_requests_impl(&self, limit: u32) -> StoreResult<Vec<ScimRequestEntry>> {
        let rows = sqlx::query(
            "SELECT requested_at, method, path, status, detail, user_agent, duration_ms \
             FROM scim_requests ORDER BY id DESC LIMIT ?",
        )
        .bind(limit as i64)
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        rows.iter().map(rows::scim_request).collect()
    }
}
