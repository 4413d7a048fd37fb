//! The IdP connections' request histories: bounded per connection, newest first, shared
//! by every instance.

use custodian_domain::{ScimRequestEntry, StoreResult};

use crate::common::{HISTORY_LIMIT, REQUEST_COLUMNS};
use crate::db::{Db, Sql};
use crate::rows;
use crate::time;

/// Entries per multi-row insert: within SQLite's limit on bound values (eight each).
const CHUNK: usize = 1000;

/// An hour's key in `scim_request_hours`.
pub(crate) fn hour_key(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H").to_string()
}

/// Adds the entries to their connections' hourly counts (one upsert per connection and
/// hour), and forgets hours older than eight days.
async fn record_hours(tx: &mut crate::db::Conn, entries: &[ScimRequestEntry]) -> StoreResult<()> {
    let mut hours: std::collections::BTreeMap<(i64, String), (i64, i64)> = std::collections::BTreeMap::new();
    for e in entries {
        let counts = hours.entry((e.connection.map_or(0, |c| c.0), hour_key(e.requested_at))).or_default();
        if e.status < 400 {
            counts.0 += 1;
        } else {
            counts.1 += 1;
        }
    }
    let rows: Vec<_> = hours.into_iter().collect();
    for chunk in rows.chunks(CHUNK) {
        let mut sql = Sql::new("INSERT INTO scim_request_hours (connection_id, hour, ok, errors) ");
        sql.push_values(chunk, |mut b, ((conn, hour), (ok, errors))| {
            b.push_bind(*conn).push_bind(hour.as_str()).push_bind(*ok).push_bind(*errors);
        });
        sql.push(
            " ON CONFLICT (connection_id, hour) DO UPDATE SET ok = scim_request_hours.ok + excluded.ok, \
             errors = scim_request_hours.errors + excluded.errors",
        );
        tx.execute(&sql).await?;
    }
    let oldest = hour_key(time::now() - chrono::Duration::days(8));
    tx.execute(&Sql::with("DELETE FROM scim_request_hours WHERE hour < $1", [oldest.into()])).await?;
    Ok(())
}

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
        record_hours(&mut tx, &entries).await?;
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
