//! Hosts: the inventory, device mappings, end users, history and activities. A host gets
//! its owner from the mapping rules in `linking.rs`.

use std::collections::HashMap;

use custodian_domain::hosts::{
    Activity, ActivityQuery, Actor, DeviceMapping, EndUser, Host, HostInput, HostQuery, LinkCause, Manager,
    MappingSource, OwnershipEntry, UpsertOutcome, identity_of, normalize_identity, primary_email,
};
use custodian_domain::{StoreError, StoreResult};
use custodian_scim::schema::ENTERPRISE_USER_SCHEMA;
use serde_json::{Value, json};

use crate::common::{HOST_COLUMNS, full_name, parse_doc};
use crate::db::{Conn, Db, Sql};
use crate::host_batch::create_hosts;
use crate::host_sql::{push_host_filters, push_host_page};
use crate::linking::{record_activity, relink_host};
use crate::rows::{self, HostRow};
use crate::time;

/// Hosts of a batch with their positions in it.
type Indexed<'a> = Vec<(usize, &'a HostInput)>;

/// Attaches mappings and end users to a page of hosts with a fixed number of queries.
async fn complete(conn: &mut Conn, rows: Vec<HostRow>) -> StoreResult<Vec<Host>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut mappings: HashMap<i64, Vec<DeviceMapping>> = HashMap::new();
    let mut sql = Sql::new("SELECT host_id, source, email FROM host_emails WHERE host_id IN (");
    let mut sep = sql.separated(", ");
    for r in &rows {
        sep.push_bind(r.host.id);
    }
    sql.push(") ORDER BY host_id, source, position");
    for row in conn.fetch_all(&sql).await? {
        let source = row.text("source")?.parse::<MappingSource>().map_err(|e| StoreError::Database(e.to_string()))?;
        mappings.entry(row.int("host_id")?).or_default().push(DeviceMapping { email: row.text("email")?, source });
    }

    let seqs: Vec<i64> = {
        let mut s: Vec<i64> = rows.iter().filter_map(|r| r.end_user_seq).collect();
        s.sort_unstable();
        s.dedup();
        s
    };
    let mut users: HashMap<i64, EndUser> = HashMap::new();
    if !seqs.is_empty() {
        let mut sql = Sql::new(
            "SELECT r.seq, r.id, r.doc, r.last_modified, r.active, r.connection_id, c.name AS connection \
             FROM scim_resources r JOIN idp_connections c ON c.id = r.connection_id WHERE r.seq IN (",
        );
        let mut sep = sql.separated(", ");
        for s in &seqs {
            sep.push_bind(*s);
        }
        sql.push(")");
        // The manager each user names, by (connection, SCIM id).
        let mut manager_of: HashMap<i64, (i64, String)> = HashMap::new();
        for row in conn.fetch_all(&sql).await? {
            let doc: Value = parse_doc(&row.text("doc")?)?;
            let seq = row.int("seq")?;
            let enterprise = doc.get(ENTERPRISE_USER_SCHEMA);
            if let Some(id) = enterprise.and_then(|e| e.pointer("/manager/value")).and_then(Value::as_str) {
                manager_of.insert(seq, (row.int("connection_id")?, id.to_string()));
            }
            users.insert(
                seq,
                EndUser {
                    idp_id: row.text("id")?,
                    idp_username: doc.get("userName").and_then(Value::as_str).unwrap_or("").to_string(),
                    idp_full_name: full_name(&doc),
                    idp_groups: Vec::new(),
                    idp_department: enterprise
                        .and_then(|e| e.get("department"))
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    idp_info_updated_at: time::from_text(&row.text("last_modified")?)?,
                    idp_active: row.opt_int("active")?.unwrap_or(1) != 0,
                    idp_connection: row.text("connection")?,
                    attributes: doc,
                    manager: None,
                },
            );
        }
        let managers = known_managers(conn, manager_of.values()).await?;
        for (seq, key) in &manager_of {
            if let (Some(user), Some(manager)) = (users.get_mut(seq), managers.get(key)) {
                user.manager = Some(manager.clone());
            }
        }
        // Effective groups of every user of the page in one recursive query; the depth
        // cap ends membership cycles.
        let d = conn.dialect();
        let mut sql = Sql::new(
            "WITH RECURSIVE up(u, g, depth) AS (SELECT member_seq, group_seq, 1 FROM scim_members WHERE member_seq IN (",
        );
        let mut sep = sql.separated(", ");
        for s in &seqs {
            sep.push_bind(*s);
        }
        sql.push(format_args!(
            ") UNION SELECT up.u, m.group_seq, up.depth + 1 FROM up{} WHERE up.depth < 32) \
             SELECT DISTINCT up.u AS u, r.display AS display FROM up{}",
            d.probe("scim_members", "group_seq, member_seq", "member_seq", "up.g", "m"),
            d.probe("scim_resources", "display, seq", "seq", "up.g", "r"),
        ));
        for row in conn.fetch_all(&sql).await? {
            if let (Some(user), Some(display)) = (users.get_mut(&row.int("u")?), row.opt_text("display")?) {
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

/// The users among `(connection, SCIM id)` references that exist: one query by the
/// unique id, whatever the number of references.
async fn known_managers<'a>(
    conn: &mut Conn,
    references: impl Iterator<Item = &'a (i64, String)>,
) -> StoreResult<HashMap<(i64, String), Manager>> {
    let mut ids: Vec<&str> = references.map(|(_, id)| id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut found = HashMap::new();
    if ids.is_empty() {
        return Ok(found);
    }
    let mut sql =
        Sql::new("SELECT r.id, r.connection_id, r.doc FROM scim_resources r WHERE r.kind = 'User' AND r.id IN (");
    let mut sep = sql.separated(", ");
    for id in ids {
        sep.push_bind(id);
    }
    sql.push(")");
    for row in conn.fetch_all(&sql).await? {
        let doc = parse_doc(&row.text("doc")?)?;
        let manager = Manager {
            user_name: doc.get("userName").and_then(Value::as_str).unwrap_or("").to_string(),
            email: primary_email(&doc).map(str::to_string),
        };
        found.insert((row.int("connection_id")?, row.text("id")?), manager);
    }
    Ok(found)
}

/// Replaces the host's mappings: every source but `idp`, and `idp` too when the list
/// carries one.
async fn replace_mappings(tx: &mut Conn, host_id: i64, mappings: &[DeviceMapping]) -> StoreResult<()> {
    let includes_idp = mappings.iter().any(|m| m.source == MappingSource::Idp);
    tx.execute(&Sql::with(
        "DELETE FROM host_emails WHERE host_id = $1 AND (source <> 'idp' OR $2)",
        [host_id.into(), includes_idp.into()],
    ))
    .await?;
    insert_mappings(tx, host_id, mappings, 0).await
}

/// Inserts mappings in one statement; a repeated (source, email) is kept once.
async fn insert_mappings(tx: &mut Conn, host_id: i64, mappings: &[DeviceMapping], first: i64) -> StoreResult<()> {
    for (chunk_index, chunk) in mappings.chunks(1000).enumerate() {
        let base = first + (chunk_index * 1000) as i64;
        let mut sql = Sql::new("INSERT INTO host_emails (host_id, source, email, email_norm, position) ");
        sql.push_values(chunk.iter().enumerate(), |mut b, (i, m)| {
            b.push_bind(host_id)
                .push_bind(m.source.as_str())
                .push_bind(m.email.trim())
                .push_bind(normalize_identity(&m.email))
                .push_bind(base + i as i64);
        });
        sql.push(" ON CONFLICT DO NOTHING");
        tx.execute(&sql).await?;
    }
    Ok(())
}

/// Fails with NotFound unless the host exists; on PostgreSQL, locks its row.
async fn lock_host(tx: &mut Conn, id: i64) -> StoreResult<()> {
    let lock = tx.dialect().for_update();
    let sql = Sql::with(format!("SELECT id FROM hosts WHERE id = $1{lock}"), [id.into()]);
    tx.fetch_optional(&sql).await?.map(|_| ()).ok_or(StoreError::NotFound)
}

async fn idp_mapping(tx: &mut Conn, id: i64) -> StoreResult<Option<String>> {
    let sql = Sql::with("SELECT email FROM host_emails WHERE host_id = $1 AND source = 'idp'", [id.into()]);
    tx.fetch_optional(&sql).await?.map(|r| r.text(0)).transpose()
}

async fn delete_idp(tx: &mut Conn, id: i64) -> StoreResult<u64> {
    tx.execute(&Sql::with("DELETE FROM host_emails WHERE host_id = $1 AND source = 'idp'", [id.into()])).await
}

impl Db {
    pub(crate) async fn get_host(&self, id: i64) -> StoreResult<Host> {
        // One snapshot for the host and what is attached to it.
        let mut conn = self.snapshot().await?;
        let row = conn
            .fetch_optional(&Sql::with(format!("SELECT {HOST_COLUMNS} FROM hosts h WHERE h.id = $1"), [id.into()]))
            .await?
            .ok_or(StoreError::NotFound)?;
        let host = rows::host(&row)?;
        let host = complete(&mut conn, vec![host]).await?.pop().ok_or(StoreError::NotFound)?;
        conn.commit().await?;
        Ok(host)
    }

    pub(crate) async fn find_host(&self, identifier: &str) -> StoreResult<Host> {
        let sql = Sql::with(
            "SELECT id FROM (SELECT id, 0 AS rank FROM hosts WHERE uuid = $1 \
             UNION ALL SELECT id, 1 FROM (SELECT id FROM hosts WHERE hardware_serial = $1 AND $1 <> '' ORDER BY id LIMIT 1) s \
             UNION ALL SELECT id, 2 FROM (SELECT id FROM hosts WHERE hostname = $1 AND $1 <> '' ORDER BY id LIMIT 1) n) \
             found ORDER BY rank LIMIT 1",
            [identifier.into()],
        );
        let row = self.read().await?.fetch_optional(&sql).await?.ok_or(StoreError::NotFound)?;
        self.get_host(row.int(0)?).await
    }

    pub(crate) async fn list_hosts(&self, q: &HostQuery) -> StoreResult<Vec<Host>> {
        // One snapshot for the page and what is attached to it.
        let mut tx = self.snapshot().await?;
        let mut sql = Sql::new(format!("SELECT {HOST_COLUMNS} FROM hosts h WHERE 1=1"));
        push_host_filters(&mut sql, tx.dialect(), q)?;
        push_host_page(&mut sql, q);
        let rows = tx.fetch_all(&sql).await?.iter().map(rows::host).collect::<StoreResult<Vec<_>>>()?;
        let hosts = complete(&mut tx, rows).await?;
        tx.commit().await?;
        Ok(hosts)
    }

    pub(crate) async fn count_hosts(&self, q: &HostQuery) -> StoreResult<u64> {
        let mut conn = self.read().await?;
        let mut sql = Sql::new("SELECT COUNT(*) FROM hosts h WHERE 1=1");
        push_host_filters(&mut sql, conn.dialect(), q)?;
        Ok(conn.int(&sql).await? as u64)
    }

    pub(crate) async fn delete_host(&self, id: i64, actor: &Actor) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let row = tx
            .fetch_optional(&Sql::with("DELETE FROM hosts WHERE id = $1 RETURNING uuid, hostname", [id.into()]))
            .await?
            .ok_or(StoreError::NotFound)?;
        let (uuid, hostname) = (row.text("uuid")?, row.text("hostname")?);
        record_activity(&mut tx, actor, "deleted_host", json!({"host_id": id, "uuid": uuid, "hostname": hostname}))
            .await?;
        tx.commit().await
    }

    pub(crate) async fn set_host_mapping(&self, id: i64, mapping: &DeviceMapping, actor: &Actor) -> StoreResult<Host> {
        let mut tx = self.write().await?;
        lock_host(&mut tx, id).await?;
        match mapping.source {
            MappingSource::Idp => {
                let previous = idp_mapping(&mut tx, id).await?;
                delete_idp(&mut tx, id).await?;
                insert_mappings(&mut tx, id, std::slice::from_ref(mapping), 0).await?;
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
                let position = tx
                    .int(&Sql::with(
                        "SELECT COALESCE(MAX(position) + 1, 0) FROM host_emails WHERE host_id = $1",
                        [id.into()],
                    ))
                    .await?;
                insert_mappings(&mut tx, id, std::slice::from_ref(mapping), position).await?;
            }
        }
        tx.execute(&Sql::with(
            "UPDATE hosts SET updated_at = $1 WHERE id = $2",
            [time::to_text(time::now()).into(), id.into()],
        ))
        .await?;
        tx.commit().await?;
        self.get_host(id).await
    }

    pub(crate) async fn delete_idp_mapping(&self, id: i64, actor: &Actor) -> StoreResult<Host> {
        let mut tx = self.write().await?;
        lock_host(&mut tx, id).await?;
        if let Some(previous) = idp_mapping(&mut tx, id).await? {
            delete_idp(&mut tx, id).await?;
            record_activity(
                &mut tx,
                actor,
                "deleted_host_idp_username",
                json!({"host_id": id, "previous_idp_username": previous}),
            )
            .await?;
            relink_host(&mut tx, id, LinkCause::AdminAction, actor).await?;
        }
        tx.commit().await?;
        self.get_host(id).await
    }

    pub(crate) async fn host_history(&self, id: i64) -> StoreResult<Vec<OwnershipEntry>> {
        let mut conn = self.read().await?;
        conn.fetch_optional(&Sql::with("SELECT id FROM hosts WHERE id = $1", [id.into()]))
            .await?
            .ok_or(StoreError::NotFound)?;
        let rows = conn
            .fetch_all(&Sql::with(
                "SELECT scim_user_id, user_name, linked_at, link_cause, unlinked_at, unlink_cause \
                 FROM host_end_user_history WHERE host_id = $1 ORDER BY id DESC",
                [id.into()],
            ))
            .await?;
        rows.iter().map(rows::ownership).collect()
    }

    pub(crate) async fn list_activities(&self, q: &ActivityQuery) -> StoreResult<Vec<Activity>> {
        let mut sql =
            Sql::new("SELECT id, created_at, actor_id, actor_name, type, details FROM activities WHERE 1 = 1");
        if let Some(host) = q.host_id {
            sql.push(" AND host_id = ");
            sql.push_bind(host);
        }
        if let Some(user) = q.idp_username.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
            sql.push(" AND idp_username_norm = ");
            sql.push_bind(user.to_lowercase());
        }
        if let Some(kind) = q.kind.as_deref().filter(|k| !k.is_empty()) {
            sql.push(" AND type = ");
            sql.push_bind(kind.to_string());
        }
        sql.push(" ORDER BY id DESC LIMIT ");
        sql.push_bind(q.limit.min(i64::MAX as u64) as i64);
        sql.push(" OFFSET ");
        sql.push_bind(q.offset.min(i64::MAX as u64) as i64);
        self.read().await?.fetch_all(&sql).await?.iter().map(rows::activity).collect()
    }

    /// Each kind once, by a skip scan of `activities_type` (a few dozen kinds at most).
    pub(crate) async fn activity_kinds(&self) -> StoreResult<Vec<String>> {
        let sql = Sql::new("SELECT DISTINCT type FROM activities ORDER BY type");
        self.read().await?.fetch_all(&sql).await?.iter().map(|r| r.text(0)).collect()
    }
}

pub(crate) async fn upsert_hosts_in_tx(
    tx: &mut Conn,
    hosts: &[HostInput],
    actor: &Actor,
) -> StoreResult<Vec<UpsertOutcome>> {
    let now = time::to_text(time::now());
    // The identities the batch brings, locked before any host row: the usual order
    // (identity, then host) of the SCIM side, so that the two rarely wait in a cycle.
    let identities: Vec<String> = hosts
        .iter()
        .filter_map(|h| h.device_mapping.as_deref())
        .filter_map(identity_of)
        .map(normalize_identity)
        .collect();
    tx.lock_identities(&identities).await?;
    // Which uuids exist already: those are updated one by one (their mappings and
    // links have a past); the new ones are created set-wise.
    let mut existing = std::collections::HashSet::new();
    for chunk in hosts.chunks(500) {
        let mut sql = Sql::new("SELECT uuid FROM hosts WHERE uuid IN (");
        let mut sep = sql.separated(", ");
        for h in chunk {
            sep.push_bind(h.uuid.as_str());
        }
        sql.push(")");
        for row in tx.fetch_all(&sql).await? {
            existing.insert(row.text(0)?);
        }
    }
    let mut seen = std::collections::HashSet::new();
    let (new, old): (Indexed, Indexed) = hosts
        .iter()
        .enumerate()
        // A uuid repeated within the batch is an update the second time.
        .partition(|(_, h)| !existing.contains(&h.uuid) && seen.insert(h.uuid.as_str()));
    let mut outcomes: Vec<Option<UpsertOutcome>> = vec![None; hosts.len()];
    let new_inputs: Vec<&HostInput> = new.iter().map(|(_, h)| *h).collect();
    let created = create_hosts(tx, &new_inputs, &now, actor).await?;
    for ((index, _), id) in new.iter().zip(created) {
        outcomes[*index] = Some(UpsertOutcome::Created(id));
    }
    for (index, h) in old {
        let id = tx
            .int(&Sql::with(
                "UPDATE hosts SET hardware_serial = $1, hostname = $2, computer_name = $3, platform = $4, \
                 os_version = $5, hardware_model = $6, updated_at = $7, seen_time = COALESCE($8, seen_time) \
                 WHERE uuid = $9 RETURNING id",
                [
                    (&h.hardware_serial).into(),
                    (&h.hostname).into(),
                    (&h.computer_name).into(),
                    (&h.platform).into(),
                    (&h.os_version).into(),
                    (&h.hardware_model).into(),
                    (&now).into(),
                    h.seen_time.map(time::to_text).into(),
                    (&h.uuid).into(),
                ],
            ))
            .await?;
        if let Some(mappings) = &h.device_mapping {
            replace_mappings(tx, id, mappings).await?;
        }
        relink_host(tx, id, LinkCause::HostChange, actor).await?;
        outcomes[index] = Some(UpsertOutcome::Updated(id));
    }
    let outcomes: Vec<UpsertOutcome> = outcomes.into_iter().flatten().collect();
    Ok(outcomes)
}
