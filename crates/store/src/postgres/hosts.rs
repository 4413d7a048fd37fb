//! Hosts on PostgreSQL: the inventory, device mappings, end users, history and activities.

use std::collections::HashMap;

use custodian_domain::hosts::{
    Activity, Actor, DeviceMapping, EndUser, Host, HostInput, HostQuery, LinkCause, MappingSource, OwnershipEntry,
    UpsertOutcome, identity_of, normalize_identity,
};
use custodian_domain::{StoreError, StoreResult};
use custodian_scim::schema::ENTERPRISE_USER_SCHEMA;
use serde_json::{Value, json};
use sqlx::postgres::PgConnection;
use sqlx::{Postgres, QueryBuilder, Row};

use super::host_batch::create_hosts;
use super::linking::{record_activity, relink_host};
use super::locks::lock_identities;
use super::{PgStore, Tx, db_err};
use super::{READ_ONLY_SNAPSHOT, begin};
use crate::common::{HOST_COLUMNS, full_name, parse_doc};
use crate::host_sql::{push_host_filters, push_host_page};
use crate::rows::{self, HostRow};
use crate::sql_filter::Dialect;
use crate::time;

/// Hosts of a batch with their positions in it.
type Indexed<'a> = Vec<(usize, &'a HostInput)>;

/// Attaches mappings and end users to a page of hosts with a fixed number of queries.
async fn complete(conn: &mut PgConnection, rows: Vec<HostRow>) -> StoreResult<Vec<Host>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut mappings: HashMap<i64, Vec<DeviceMapping>> = HashMap::new();
    let mut qb: QueryBuilder<Postgres> =
        QueryBuilder::new("SELECT host_id, source, email FROM host_emails WHERE host_id IN (");
    let mut sep = qb.separated(", ");
    for r in &rows {
        sep.push_bind(r.host.id);
    }
    qb.push(") ORDER BY host_id, source, position");
    for row in qb.build().fetch_all(&mut *conn).await.map_err(db_err)? {
        let source: String = row.try_get("source").map_err(db_err)?;
        let source = source.parse::<MappingSource>().map_err(|e| StoreError::Database(e.to_string()))?;
        mappings
            .entry(row.try_get("host_id").map_err(db_err)?)
            .or_default()
            .push(DeviceMapping { email: row.try_get("email").map_err(db_err)?, source });
    }

    let seqs: Vec<i64> = {
        let mut s: Vec<i64> = rows.iter().filter_map(|r| r.end_user_seq).collect();
        s.sort_unstable();
        s.dedup();
        s
    };
    let mut users: HashMap<i64, EndUser> = HashMap::new();
    if !seqs.is_empty() {
        let mut qb: QueryBuilder<Postgres> =
            QueryBuilder::new("SELECT seq, id, doc, last_modified, active FROM scim_resources WHERE seq IN (");
        let mut sep = qb.separated(", ");
        for s in &seqs {
            sep.push_bind(*s);
        }
        qb.push(")");
        for row in qb.build().fetch_all(&mut *conn).await.map_err(db_err)? {
            let doc: Value = parse_doc(&row.try_get::<String, _>("doc").map_err(db_err)?)?;
            let last_modified: String = row.try_get("last_modified").map_err(db_err)?;
            users.insert(
                row.try_get("seq").map_err(db_err)?,
                EndUser {
                    idp_id: row.try_get("id").map_err(db_err)?,
                    idp_username: doc.get("userName").and_then(Value::as_str).unwrap_or("").to_string(),
                    idp_full_name: full_name(&doc),
                    idp_groups: Vec::new(),
                    idp_department: doc
                        .get(ENTERPRISE_USER_SCHEMA)
                        .and_then(|e| e.get("department"))
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    idp_info_updated_at: time::from_text(&last_modified)?,
                    idp_active: row.try_get::<Option<i64>, _>("active").map_err(db_err)?.unwrap_or(1) != 0,
                },
            );
        }
        // Effective groups of every user of the page in one recursive query; the depth
        // cap ends membership cycles.
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(
            "WITH RECURSIVE up(u, g, depth) AS (SELECT member_seq, group_seq, 1 FROM scim_members WHERE member_seq IN (",
        );
        let mut sep = qb.separated(", ");
        for s in &seqs {
            sep.push_bind(*s);
        }
        qb.push(
            // LATERAL ... OFFSET 0 makes each step an index probe: PostgreSQL cannot
            // estimate a recursive CTE's size and would otherwise hash-join against a scan
            // of every membership at each level.
            ") UNION SELECT up.u, m.group_seq, up.depth + 1 FROM up JOIN LATERAL \
             (SELECT mm.group_seq FROM scim_members mm WHERE mm.member_seq = up.g OFFSET 0) m ON true \
             WHERE up.depth < 32) \
             SELECT DISTINCT up.u AS u, r.display AS display FROM up JOIN LATERAL \
             (SELECT display FROM scim_resources WHERE seq = up.g OFFSET 0) r ON true",
        );
        for row in qb.build().fetch_all(&mut *conn).await.map_err(db_err)? {
            let u: i64 = row.try_get("u").map_err(db_err)?;
            if let (Some(user), Some(display)) =
                (users.get_mut(&u), row.try_get::<Option<String>, _>("display").map_err(db_err)?)
            {
                user.idp_groups.push(display);
            }
        }
        for user in users.values_mut() {
            user.idp_groups.sort();
            user.idp_groups.dedup();
        }
    }

    Ok(rows
        .into_iter()
        .map(|r| {
            let mut host = r.host;
            host.mappings = mappings.remove(&host.id).unwrap_or_default();
            host.end_user = r.end_user_seq.and_then(|s| users.get(&s).cloned());
            host
        })
        .collect())
}

/// Replaces the host's mappings: every source but `idp`, and `idp` too when the list
/// carries one.
async fn replace_mappings(tx: &mut Tx<'_>, host_id: i64, mappings: &[DeviceMapping]) -> StoreResult<()> {
    let includes_idp = mappings.iter().any(|m| m.source == MappingSource::Idp);
    sqlx::query("DELETE FROM host_emails WHERE host_id = $1 AND (source <> 'idp' OR $2)")
        .bind(host_id)
        .bind(includes_idp)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    insert_mappings(tx, host_id, mappings, 0).await
}

/// Inserts mappings in one statement; a repeated (source, email) is kept once.
async fn insert_mappings(tx: &mut Tx<'_>, host_id: i64, mappings: &[DeviceMapping], first: i64) -> StoreResult<()> {
    for (chunk_index, chunk) in mappings.chunks(1000).enumerate() {
        let base = first + (chunk_index * 1000) as i64;
        let mut qb: QueryBuilder<Postgres> =
            QueryBuilder::new("INSERT INTO host_emails (host_id, source, email, email_norm, position) ");
        qb.push_values(chunk.iter().enumerate(), |mut b, (i, m)| {
            b.push_bind(host_id)
                .push_bind(m.source.as_str())
                .push_bind(m.email.trim().to_string())
                .push_bind(normalize_identity(&m.email))
                .push_bind(base + i as i64);
        });
        qb.push(" ON CONFLICT DO NOTHING");
        qb.build().execute(&mut **tx).await.map_err(db_err)?;
    }
    Ok(())
}

async fn host_exists(tx: &mut Tx<'_>, id: i64) -> StoreResult<()> {
    let found: Option<i64> = sqlx::query_scalar("SELECT id FROM hosts WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?;
    found.map(|_| ()).ok_or(StoreError::NotFound)
}

async fn idp_mapping(tx: &mut Tx<'_>, id: i64) -> StoreResult<Option<String>> {
    sqlx::query_scalar("SELECT email FROM host_emails WHERE host_id = $1 AND source = 'idp'")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)
}

impl PgStore {
    pub(super) async fn upsert_hosts_impl(
        &self,
        hosts: &[HostInput],
        actor: &Actor,
    ) -> StoreResult<Vec<UpsertOutcome>> {
        let mut tx = begin(&self.pool, None).await.map_err(db_err)?;
        let now = time::to_text(time::now());
        // The identities the batch brings, locked before any host row: the usual order
        // (identity, then host) of the SCIM side, so that the two rarely wait in a cycle.
        let identities: Vec<String> = hosts
            .iter()
            .filter_map(|h| h.device_mapping.as_deref())
            .filter_map(identity_of)
            .map(normalize_identity)
            .collect();
        lock_identities(&mut tx, &identities).await?;
        // Which uuids exist already: those are updated one by one (their mappings and
        // links have a past); the new ones are created set-wise.
        let mut existing = std::collections::HashSet::new();
        for chunk in hosts.chunks(500) {
            let mut qb: QueryBuilder<Postgres> = QueryBuilder::new("SELECT uuid FROM hosts WHERE uuid IN (");
            let mut sep = qb.separated(", ");
            for h in chunk {
                sep.push_bind(h.uuid.as_str());
            }
            qb.push(")");
            let found: Vec<String> = qb.build_query_scalar().fetch_all(&mut *tx).await.map_err(db_err)?;
            existing.extend(found);
        }
        let mut seen = std::collections::HashSet::new();
        let (new, old): (Indexed, Indexed) = hosts
            .iter()
            .enumerate()
            // A uuid repeated within the batch is an update the second time.
            .partition(|(_, h)| !existing.contains(&h.uuid) && seen.insert(h.uuid.as_str()));
        let mut outcomes: Vec<Option<UpsertOutcome>> = vec![None; hosts.len()];
        let new_inputs: Vec<&HostInput> = new.iter().map(|(_, h)| *h).collect();
        let created = create_hosts(&mut tx, &new_inputs, &now, actor).await?;
        for ((index, _), id) in new.iter().zip(created) {
            outcomes[*index] = Some(UpsertOutcome::Created(id));
        }
        for (index, h) in old {
            let id: i64 = sqlx::query_scalar(
                "UPDATE hosts SET hardware_serial = $1, hostname = $2, computer_name = $3, platform = $4, \
                 os_version = $5, hardware_model = $6, updated_at = $7, seen_time = COALESCE($8, seen_time) \
                 WHERE uuid = $9 RETURNING id",
            )
            .bind(&h.hardware_serial)
            .bind(&h.hostname)
            .bind(&h.computer_name)
            .bind(&h.platform)
            .bind(&h.os_version)
            .bind(&h.hardware_model)
            .bind(&now)
            .bind(h.seen_time.map(time::to_text))
            .bind(&h.uuid)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
            if let Some(mappings) = &h.device_mapping {
                replace_mappings(&mut tx, id, mappings).await?;
            }
            relink_host(&mut tx, id, LinkCause::HostChange, actor).await?;
            outcomes[index] = Some(UpsertOutcome::Updated(id));
        }
        let outcomes: Vec<UpsertOutcome> = outcomes.into_iter().flatten().collect();
        tx.commit().await.map_err(db_err)?;
        Ok(outcomes)
    }

    pub(super) async fn get_host_impl(&self, id: i64) -> StoreResult<Host> {
        let mut conn = begin(&self.pool, Some(READ_ONLY_SNAPSHOT)).await.map_err(db_err)?;
        let row = sqlx::query(&format!("SELECT {HOST_COLUMNS} FROM hosts h WHERE h.id = $1"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?
            .ok_or(StoreError::NotFound)?;
        let host = rows::host(&row)?;
        let host = complete(&mut conn, vec![host]).await?.pop().ok_or(StoreError::NotFound)?;
        conn.commit().await.map_err(db_err)?;
        Ok(host)
    }

    pub(super) async fn find_host_impl(&self, identifier: &str) -> StoreResult<Host> {
        let id: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM (SELECT id, 0 AS rank FROM hosts WHERE uuid = $1 \
             UNION ALL SELECT id, 1 FROM (SELECT id FROM hosts WHERE hardware_serial = $1 AND $1 <> '' ORDER BY id LIMIT 1) s \
             UNION ALL SELECT id, 2 FROM (SELECT id FROM hosts WHERE hostname = $1 AND $1 <> '' ORDER BY id LIMIT 1) n) \
             found ORDER BY rank LIMIT 1",
        )
        .bind(identifier)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        self.get_host_impl(id.ok_or(StoreError::NotFound)?).await
    }

    pub(super) async fn list_hosts_impl(&self, q: &HostQuery) -> StoreResult<Vec<Host>> {
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(format!("SELECT {HOST_COLUMNS} FROM hosts h WHERE 1=1"));
        push_host_filters(&mut qb, Dialect::Postgres, q);
        push_host_page(&mut qb, q);
        // One snapshot for the page and what is attached to it.
        let mut tx = begin(&self.pool, Some(READ_ONLY_SNAPSHOT)).await.map_err(db_err)?;
        let rows = qb.build().fetch_all(&mut *tx).await.map_err(db_err)?;
        let rows = rows.iter().map(rows::host).collect::<StoreResult<Vec<_>>>()?;
        let hosts = complete(&mut tx, rows).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(hosts)
    }

    pub(super) async fn count_hosts_impl(&self, q: &HostQuery) -> StoreResult<u64> {
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new("SELECT COUNT(*) FROM hosts h WHERE 1=1");
        push_host_filters(&mut qb, Dialect::Postgres, q);
        let n: i64 = qb.build_query_scalar().fetch_one(&self.pool).await.map_err(db_err)?;
        Ok(n as u64)
    }

    pub(super) async fn delete_host_impl(&self, id: i64, actor: &Actor) -> StoreResult<()> {
        let mut tx = begin(&self.pool, None).await.map_err(db_err)?;
        let row = sqlx::query("DELETE FROM hosts WHERE id = $1 RETURNING uuid, hostname")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?
            .ok_or(StoreError::NotFound)?;
        let uuid: String = row.try_get("uuid").map_err(db_err)?;
        let hostname: String = row.try_get("hostname").map_err(db_err)?;
        record_activity(&mut tx, actor, "deleted_host", json!({"host_id": id, "uuid": uuid, "hostname": hostname}))
            .await?;
        tx.commit().await.map_err(db_err)
    }

    pub(super) async fn set_host_mapping_impl(
        &self,
        id: i64,
        mapping: DeviceMapping,
        actor: &Actor,
    ) -> StoreResult<Host> {
        let mut tx = begin(&self.pool, None).await.map_err(db_err)?;
        host_exists(&mut tx, id).await?;
        match mapping.source {
            MappingSource::Idp => {
                let previous = idp_mapping(&mut tx, id).await?;
                sqlx::query("DELETE FROM host_emails WHERE host_id = $1 AND source = 'idp'")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                insert_mappings(&mut tx, id, std::slice::from_ref(&mapping), 0).await?;
                record_activity(
                    &mut tx,
                    actor,
                    "edited_host_idp_username",
                    json!({"host_id": id, "idp_username": mapping.email.trim(), "previous_idp_username": previous}),
                )
                .await?;
                relink_host(&mut tx, id, LinkCause::AdminAction, actor).await?;
            }
            _ => {
                let position: i64 =
                    sqlx::query_scalar("SELECT COALESCE(MAX(position) + 1, 0) FROM host_emails WHERE host_id = $1")
                        .bind(id)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(db_err)?;
                insert_mappings(&mut tx, id, std::slice::from_ref(&mapping), position).await?;
            }
        }
        sqlx::query("UPDATE hosts SET updated_at = $1 WHERE id = $2")
            .bind(time::to_text(time::now()))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        self.get_host_impl(id).await
    }

    pub(super) async fn delete_idp_mapping_impl(&self, id: i64, actor: &Actor) -> StoreResult<Host> {
        let mut tx = begin(&self.pool, None).await.map_err(db_err)?;
        host_exists(&mut tx, id).await?;
        if let Some(previous) = idp_mapping(&mut tx, id).await? {
            sqlx::query("DELETE FROM host_emails WHERE host_id = $1 AND source = 'idp'")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            record_activity(
                &mut tx,
                actor,
                "deleted_host_idp_username",
                json!({"host_id": id, "previous_idp_username": previous}),
            )
            .await?;
            relink_host(&mut tx, id, LinkCause::AdminAction, actor).await?;
        }
        tx.commit().await.map_err(db_err)?;
        self.get_host_impl(id).await
    }

    pub(super) async fn host_history_impl(&self, id: i64) -> StoreResult<Vec<OwnershipEntry>> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM hosts WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
        exists.ok_or(StoreError::NotFound)?;
        let rows = sqlx::query(
            "SELECT scim_user_id, user_name, linked_at, link_cause, unlinked_at, unlink_cause \
             FROM host_end_user_history WHERE host_id = $1 ORDER BY id DESC",
        )
        .bind(id)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
        rows.iter().map(rows::ownership).collect()
    }

    pub(super) async fn list_activities_impl(&self, offset: u64, limit: u64) -> StoreResult<Vec<Activity>> {
        let rows = sqlx::query(
            "SELECT id, created_at, actor_id, actor_name, type, details FROM activities ORDER BY id DESC \
             LIMIT $1 OFFSET $2",
        )
        .bind(limit.min(i64::MAX as u64) as i64)
        .bind(offset.min(i64::MAX as u64) as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(rows::activity).collect()
    }
}
