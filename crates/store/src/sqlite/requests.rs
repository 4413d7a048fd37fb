//! The IdP connection's request history: bounded, newest first.

use custodian_domain::{ScimRequestEntry, StoreResult};
use sqlx::Row;

use super::{SqliteStore, db_err};
use crate::time;

/// How many SCIM requests the history keeps.
pub const HISTORY_LIMIT: i64 = 1000;

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
        rows.iter()
            .map(|row| {
                let at: String = row.try_get("requested_at").map_err(db_err)?;
                Ok(ScimRequestEntry {
                    requested_at: time::from_text(&at)?,
                    method: row.try_get("method").map_err(db_err)?,
                    path: row.try_get("path").map_err(db_err)?,
                    status: row.try_get::<i64, _>("status").map_err(db_err)? as u16,
                    detail: row.try_get("detail").map_err(db_err)?,
                    user_agent: row.try_get("user_agent").map_err(db_err)?,
                    duration_ms: row.try_get("duration_ms").map_err(db_err)?,
                })
            })
            .collect()
    }
}
