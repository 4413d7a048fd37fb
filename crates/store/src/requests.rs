//! The IdP connections' request histories: bounded per connection, newest first, shared
//! by every instance.

use custodian_domain::{ScimRequestEntry, StoreResult};

use crate::common::{HISTORY_LIMIT, REQUEST_COLUMNS};
use crate::db::{Db, Sql};
use crate::rows;
use crate::time;

/// Entries per multi-row insert: within SQLite's limit on bound values (eight each).
const CHUNK: usize = 1000;

impl Db {
    pub(crate) async fn record_scim_requests(&self, entries: Vec<ScimRequestEntry>) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        for chunk in entries.chunks(CHUNK) {
            let mut sql = Sql::new(format!("INSERT INTO scim_requests ({REQUEST_COLUMNS}) "));
            sql.push_values(chunk, |mut b, e| {
                b.push_bind(e.connection.map(|c| c.0))
                    .push_bind(time::to_text(e.requested_at))
                    .push_bind(&e.method)
                    .push_bind(&e.path)
                    .push_bind(i64::from(e.status))
                    .push_bind(&e.detail)
                    .push_bind(&e.user_agent)
                    .push_bind(e.duration_ms);
            });
            tx.execute(&sql).await?;
        }
        // Each connection keeps its own last HISTORY_LIMIT entries, so that a busy one
        // does not push a quiet one's history out.
        let mut connections: Vec<Option<i64>> = entries.iter().map(|e| e.connection.map(|c| c.0)).collect();
        connections.sort_unstable();
        connections.dedup();
        for conn in connections {
            let (filter, arg): (&str, crate::db::Arg) = match conn {
                Some(c) => ("connection_id = $1", c.into()),
                None => ("connection_id IS NULL AND $1 = 0", 0i64.into()),
            };
            tx.execute(&Sql::with(
                format!(
                    "DELETE FROM scim_requests WHERE {filter} AND id <= (SELECT id FROM scim_requests \
                     WHERE {filter} ORDER BY id DESC LIMIT 1 OFFSET {HISTORY_LIMIT})"
                ),
                [arg],
            ))
            .await?;
        }
        tx.commit().await
    }

    pub(crate) async fn recent_scim_requests(&self, limit: u32) -> StoreResult<Vec<ScimRequestEntry>> {
        let sql = Sql::with(
            format!("SELECT {REQUEST_COLUMNS} FROM scim_requests ORDER BY id DESC LIMIT $1"),
            [i64::from(limit).into()],
        );
        self.read().await?.fetch_all(&sql).await?.iter().map(rows::scim_request).collect()
    }
}
