//! The IdP connection's request history: bounded, newest first, shared by every instance.

use custodian_domain::{ScimRequestEntry, StoreResult};
use sqlx::{Postgres, QueryBuilder};

use super::begin;
use super::{PgStore, db_err};
use crate::common::HISTORY_LIMIT;
use crate::rows;
use crate::time;

impl PgStore {
    pub(super) async fn record_scim_requests_impl(&self, entries: Vec<ScimRequestEntry>) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut tx = begin(&self.pool, None).await.map_err(db_err)?;
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(
            "INSERT INTO scim_requests (requested_at, method, path, status, detail, user_agent, duration_ms) ",
        );
        qb.push_values(&entries, |mut b, e| {
            b.push_bind(time::to_text(e.requested_at))
                .push_bind(e.method.clone())
                .push_bind(e.path.clone())
                .push_bind(e.status as i64)
                .push_bind(e.detail.clone())
                .push_bind(e.user_agent.clone())
                .push_bind(e.duration_ms);
        });
        qb.push(" RETURNING id");
        let ids: Vec<i64> = qb.build_query_scalar().fetch_all(&mut *tx).await.map_err(db_err)?;
        if let Some(last) = ids.iter().max() {
            sqlx::query("DELETE FROM scim_requests WHERE id <= $1")
                .bind(last - HISTORY_LIMIT)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    pub(super) async fn recent_scim_requests_impl(&self, limit: u32) -> StoreResult<Vec<ScimRequestEntry>> {
        let rows = sqlx::query(
            "SELECT requested_at, method, path, status, detail, user_agent, duration_ms \
             FROM scim_requests ORDER BY id DESC LIMIT $1",
        )
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(rows::scim_request).collect()
    }
}
