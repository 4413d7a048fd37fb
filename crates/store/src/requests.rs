//! The IdP connection's request history: bounded, newest first, shared by every instance.

use custodian_domain::{ScimRequestEntry, StoreResult};

use crate::common::HISTORY_LIMIT;
use crate::db::{Db, Sql};
use crate::rows;
use crate::time;

/// Entries per multi-row insert: within SQLite's limit on bound values (seven each).
const CHUNK: usize = 1000;

impl Db {
    pub(crate) async fn record_scim_requests(&self, entries: Vec<ScimRequestEntry>) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        let mut last = 0;
        for chunk in entries.chunks(CHUNK) {
            let mut sql = Sql::new(
                "INSERT INTO scim_requests (requested_at, method, path, status, detail, user_agent, duration_ms) ",
            );
            sql.push_values(chunk, |mut b, e| {
                b.push_bind(time::to_text(e.requested_at))
                    .push_bind(&e.method)
                    .push_bind(&e.path)
                    .push_bind(i64::from(e.status))
                    .push_bind(&e.detail)
                    .push_bind(&e.user_agent)
                    .push_bind(e.duration_ms);
            });
            sql.push(" RETURNING id");
            last = tx.ints(&sql).await?.into_iter().fold(last, i64::max);
        }
        tx.execute(&Sql::with("DELETE FROM scim_requests WHERE id <= $1", [(last - HISTORY_LIMIT).into()])).await?;
        tx.commit().await
    }

    pub(crate) async fn recent_scim_requests(&self, limit: u32) -> StoreResult<Vec<ScimRequestEntry>> {
        let sql = Sql::with(
            "SELECT requested_at, method, path, status, detail, user_agent, duration_ms \
             FROM scim_requests ORDER BY id DESC LIMIT $1",
            [i64::from(limit).into()],
        );
        self.read().await?.fetch_all(&sql).await?.iter().map(rows::scim_request).collect()
    }
}
