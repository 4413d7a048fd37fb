//! IdP connections, their tokens and their histories. A priority change or a removal
//! relinks, in its own transaction, only the hosts whose identity has candidates in the
//! connections concerned.

use custodian_domain::connections::{
    Connection, ConnectionChange, ConnectionId, ConnectionKind, ConnectionToken, DEFAULT_CONNECTION_NAME,
    NewConnection, NewSource,
};
use custodian_domain::hosts::{Actor, LinkCause};
use custodian_domain::{ScimRequestEntry, StoreError, StoreResult, TokenDigest};
use std::collections::HashMap;

use serde_json::json;

use crate::common::REQUEST_COLUMNS;
use crate::db::{Conn, Db, Sql};
use crate::error::{db_err, is_unique_violation};
use crate::linking::{record_activity, relink_host, unlink_hosts};
use crate::rows;
use crate::time;

const CONNECTION_COLUMNS: &str = "c.id, c.name, c.kind, c.priority, c.created_at, \
     (SELECT COUNT(*) FROM scim_resources r WHERE r.connection_id = c.id AND r.kind = 'User') AS users, \
     (SELECT COUNT(*) FROM scim_resources r WHERE r.connection_id = c.id AND r.kind = 'Group') AS groups";

/// How far apart a new connection's default priority is from the last one's.
const PRIORITY_STEP: i64 = 10;

/// Normalised connection names: unique in any case.
fn name_norm(name: &str) -> String {
    name.trim().to_lowercase()
}

fn name_taken(name: &str) -> StoreError {
    StoreError::Taken { field: "name", message: format!("a connection named '{}' already exists", name.trim()) }
}

fn priority_taken(priority: i64) -> StoreError {
    StoreError::Taken { field: "priority", message: format!("another connection already has priority {priority}") }
}

/// The connections `where_sql` selects (with `arg` as `$1`; `None`: all), by priority:
/// three queries however many there are (the rows with their counts, the live tokens,
/// the last requests).
async fn load_all(conn: &mut Conn, where_sql: &str, arg: Option<crate::db::Arg>) -> StoreResult<Vec<Connection>> {
    let sql = Sql::with(
        format!("SELECT {CONNECTION_COLUMNS} FROM idp_connections c WHERE {where_sql} ORDER BY c.priority, c.id"),
        arg,
    );
    let rows = conn.fetch_all(&sql).await?;
    let ids = rows.iter().map(|r| r.int("id")).collect::<StoreResult<Vec<i64>>>()?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut tokens: HashMap<i64, Vec<ConnectionToken>> = HashMap::new();
    let mut sql = Sql::new(
        "SELECT connection_id, id, created_at, expires_at, last_used_at FROM idp_connection_tokens \
         WHERE revoked_at IS NULL AND connection_id IN ",
    );
    push_ids(&mut sql, &ids);
    sql.push(" ORDER BY id");
    for t in conn.fetch_all(&sql).await? {
        tokens.entry(t.int("connection_id")?).or_default().push(ConnectionToken {
            id: t.int("id")?,
            created_at: time::from_text(&t.text("created_at")?)?,
            expires_at: t.opt_text("expires_at")?.map(|s| time::from_text(&s)).transpose()?,
            last_used_at: t.opt_text("last_used_at")?.map(|s| time::from_text(&s)).transpose()?,
        });
    }
    let mut last: HashMap<i64, ScimRequestEntry> = HashMap::new();
    let mut sql = Sql::new(format!(
        "SELECT {REQUEST_COLUMNS} FROM scim_requests WHERE id IN \
         (SELECT MAX(id) FROM scim_requests WHERE connection_id IN "
    ));
    push_ids(&mut sql, &ids);
    sql.push(" GROUP BY connection_id)");
    for r in conn.fetch_all(&sql).await? {
        let entry = rows::scim_request(&r)?;
        if let Some(c) = entry.connection {
            last.insert(c.0, entry);
        }
    }
    let mut google = crate::sync::google_settings_of(conn, &ids).await?;
    // A directory sync's last request is its last finished run.
    for (id, entry) in crate::sync::last_runs_as_requests(conn, &ids).await? {
        last.insert(id, entry);
    }
    rows.iter()
        .map(|row| {
            let id = row.int("id")?;
            let kind = row.text("kind")?;
            Ok(Connection {
                id: ConnectionId(id),
                name: row.text("name")?,
                kind: ConnectionKind::parse(&kind)
                    .ok_or_else(|| StoreError::Database(format!("unknown connection kind '{kind}'")))?,
                priority: row.int("priority")?,
                created_at: time::from_text(&row.text("created_at")?)?,
                users: row.int("users")? as u64,
                groups: row.int("groups")? as u64,
                last_request: last.remove(&id),
                tokens: tokens.remove(&id).unwrap_or_default(),
                google_workspace: google.remove(&id),
            })
        })
        .collect()
}

/// The one connection `where_sql` selects.
async fn load(conn: &mut Conn, where_sql: &str, arg: crate::db::Arg) -> StoreResult<Connection> {
    load_all(conn, where_sql, Some(arg)).await?.pop().ok_or(StoreError::NotFound)
}

async fn insert_token(
    tx: &mut Conn,
    id: ConnectionId,
    token: TokenDigest,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
) -> StoreResult<i64> {
    tx.int(&Sql::with(
        "INSERT INTO idp_connection_tokens (connection_id, lookup, digest, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
        [
            id.0.into(),
            token.lookup_key().into(),
            token.0.to_vec().into(),
            time::to_text(time::now()).into(),
            expires_at.map(time::to_text).into(),
        ],
    ))
    .await
}

/// `IN (...)` of the identities (userNames and emails) of the users of `connections`.
fn push_identities(sql: &mut Sql, connections: &[i64]) {
    sql.push("(SELECT unique_norm FROM scim_resources WHERE kind = 'User' AND connection_id IN ");
    push_ids(sql, connections);
    sql.push(
        " UNION SELECT v.text_value FROM scim_values v JOIN scim_resources r ON r.seq = v.resource_seq \
         WHERE v.kind = 'User' AND v.path = 'emails.value' AND r.connection_id IN ",
    );
    push_ids(sql, connections);
    sql.push(")");
}

/// The name of the connection a SCIM resource belongs to.
pub(crate) async fn connection_name_of(tx: &mut Conn, resource_seq: i64) -> StoreResult<String> {
    tx.fetch_one(&Sql::with(
        "SELECT c.name FROM scim_resources r JOIN idp_connections c ON c.id = r.connection_id WHERE r.seq = $1",
        [resource_seq.into()],
    ))
    .await?
    .text(0)
}

/// Locks a connection's row for the transaction; NotFound without one, and a Conflict
/// (`a <kind> connection <refusal>`) when it is not of `kind`.
pub(crate) async fn lock_connection_of_kind(
    tx: &mut Conn,
    id: ConnectionId,
    kind: ConnectionKind,
    refusal: &str,
) -> StoreResult<()> {
    let lock = tx.dialect().for_update();
    let found = tx
        .fetch_optional(&Sql::with(format!("SELECT kind FROM idp_connections WHERE id = $1{lock}"), [id.0.into()]))
        .await?
        .ok_or(StoreError::NotFound)?
        .text("kind")?;
    if found != kind.as_str() {
        return Err(StoreError::Conflict(format!("a {found} connection {refusal}")));
    }
    Ok(())
}

/// `(1, 2, ...)`: a parenthesised list of connection ids.
pub(crate) fn push_ids(sql: &mut Sql, ids: &[i64]) {
    sql.push("(");
    let mut sep = sql.separated(", ");
    for c in ids {
        sep.push_bind(*c);
    }
    sql.push(")");
}

/// The hosts whose end user may change when `moved`'s priority passes those of `band`:
/// those whose identity has candidates on both sides (a host linked on one side has its
/// candidate there). The query starts from the side with fewer users and probes the other
/// through its indexes, so its cost grows with the smaller side and the hosts it finds,
/// not with every host nor with the larger connection.
async fn hosts_between(tx: &mut Conn, moved: ConnectionId, band: &[i64]) -> StoreResult<Vec<i64>> {
    let moved = [moved.0];
    let count = |ids: &[i64]| {
        let mut sql = Sql::new("SELECT COUNT(*) FROM scim_resources WHERE kind = 'User' AND connection_id IN ");
        push_ids(&mut sql, ids);
        sql
    };
    let (moved_users, band_users) = (tx.int(&count(&moved)).await?, tx.int(&count(band)).await?);
    let (small, large) = if moved_users <= band_users { (&moved[..], band) } else { (band, &moved[..]) };
    let mut sql = Sql::new("SELECT h.id FROM hosts h WHERE h.identity_norm IN ");
    push_identities(&mut sql, small);
    sql.push(
        " AND (EXISTS (SELECT 1 FROM scim_resources r WHERE r.kind = 'User' AND r.unique_norm = h.identity_norm \
         AND r.connection_id IN ",
    );
    push_ids(&mut sql, large);
    sql.push(
        ") OR EXISTS (SELECT 1 FROM scim_values v JOIN scim_resources r ON r.seq = v.resource_seq \
         WHERE v.kind = 'User' AND v.path = 'emails.value' AND v.text_value = h.identity_norm AND r.connection_id IN ",
    );
    push_ids(&mut sql, large);
    sql.push(")) ORDER BY 1");
    tx.ints(&sql).await
}

impl Db {
    pub(crate) async fn list_connections(&self) -> StoreResult<Vec<Connection>> {
        load_all(&mut self.read().await?, "1 = 1", None).await
    }

    pub(crate) async fn connection_names(&self) -> StoreResult<Vec<(ConnectionId, String)>> {
        let rows = self
            .read()
            .await?
            .fetch_all(&Sql::new("SELECT id, name FROM idp_connections ORDER BY priority, id"))
            .await?;
        rows.iter().map(|r| Ok((ConnectionId(r.int("id")?), r.text("name")?))).collect()
    }

    pub(crate) async fn get_connection(&self, id: ConnectionId) -> StoreResult<Connection> {
        load(&mut self.read().await?, "c.id = $1", id.0.into()).await
    }

    pub(crate) async fn connection_named(&self, name: &str) -> StoreResult<Connection> {
        load(&mut self.read().await?, "c.name_norm = $1", name_norm(name).into()).await
    }

    pub(crate) async fn create_connection(&self, new: &NewConnection, actor: &Actor) -> StoreResult<ConnectionId> {
        let mut tx = self.write().await?;
        let priority = match new.priority {
            Some(p) => p,
            None => {
                tx.int(&Sql::new(format!("SELECT COALESCE(MAX(priority), 0) + {PRIORITY_STEP} FROM idp_connections")))
                    .await?
            }
        };
        let taken = tx
            .fetch_optional(&Sql::with(
                "SELECT CAST(CASE WHEN name_norm = $1 THEN 1 ELSE 0 END AS BIGINT) AS same_name FROM idp_connections \
                 WHERE name_norm = $1 OR priority = $2 ORDER BY 1 DESC LIMIT 1",
                [name_norm(&new.name).into(), priority.into()],
            ))
            .await?;
        if let Some(row) = taken {
            return Err(if row.int("same_name")? == 1 { name_taken(&new.name) } else { priority_taken(priority) });
        }
        let insert = Sql::with(
            "INSERT INTO idp_connections (name, name_norm, kind, priority, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            [
                new.name.trim().into(),
                name_norm(&new.name).into(),
                new.kind().as_str().into(),
                priority.into(),
                time::to_text(time::now()).into(),
            ],
        );
        // Another instance may have taken the name or priority since the check above.
        let id = match tx.try_fetch_optional(&insert).await {
            Ok(row) => ConnectionId(row.ok_or_else(|| db_err(sqlx::Error::RowNotFound))?.int(0)?),
            Err(e) if is_unique_violation(&e) => return Err(name_taken(&new.name)),
            Err(e) => return Err(db_err(e)),
        };
        match &new.source {
            NewSource::Scim { token, token_expires_at } => {
                insert_token(&mut tx, id, *token, *token_expires_at).await?;
            }
            NewSource::GoogleWorkspace(google) => crate::sync::insert_google_settings(&mut tx, id, google).await?,
        }
        record_activity(
            &mut tx,
            actor,
            "created_idp_connection",
            json!({"connection_id": id.0, "connection_name": new.name.trim(), "kind": new.kind().as_str(),
                   "priority": priority}),
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    pub(crate) async fn update_connection(
        &self,
        id: ConnectionId,
        change: &ConnectionChange,
        actor: &Actor,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let lock = tx.dialect().for_update();
        let current = tx
            .fetch_optional(&Sql::with(
                format!("SELECT name, priority FROM idp_connections WHERE id = $1{lock}"),
                [id.0.into()],
            ))
            .await?
            .ok_or(StoreError::NotFound)?;
        let (old_name, old_priority) = (current.text("name")?, current.int("priority")?);
        let name = change.name.as_deref().map(str::trim).unwrap_or(&old_name).to_string();
        let priority = change.priority.unwrap_or(old_priority);
        if name_norm(&old_name) == DEFAULT_CONNECTION_NAME && name_norm(&name) != DEFAULT_CONNECTION_NAME {
            return Err(StoreError::Taken {
                field: "name",
                message: "the connection 'default' keeps its name: operators' tokens write to it".into(),
            });
        }
        let taken = tx
            .fetch_optional(&Sql::with(
                "SELECT CAST(CASE WHEN name_norm = $1 THEN 1 ELSE 0 END AS BIGINT) AS same_name FROM idp_connections \
                 WHERE id <> $3 AND (name_norm = $1 OR priority = $2) ORDER BY 1 DESC LIMIT 1",
                [name_norm(&name).into(), priority.into(), id.0.into()],
            ))
            .await?;
        if let Some(row) = taken {
            return Err(if row.int("same_name")? == 1 { name_taken(&name) } else { priority_taken(priority) });
        }
        let update = Sql::with(
            "UPDATE idp_connections SET name = $1, name_norm = $2, priority = $3 WHERE id = $4",
            [(&name).into(), name_norm(&name).into(), priority.into(), id.0.into()],
        );
        match tx.try_execute(&update).await {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Err(priority_taken(priority)),
            Err(e) => return Err(db_err(e)),
        }
        if let Some(google) = &change.google_workspace {
            crate::sync::update_google_settings(&mut tx, id, google).await?;
        }
        if name != old_name {
            crate::automatic::rename_connection(&mut tx, id, &name).await?;
        }
        let mut relinked = 0usize;
        if priority != old_priority {
            let (low, high) = (old_priority.min(priority), old_priority.max(priority));
            let band = tx
                .ints(&Sql::with(
                    "SELECT id FROM idp_connections WHERE id <> $1 AND priority BETWEEN $2 AND $3",
                    [id.0.into(), low.into(), high.into()],
                ))
                .await?;
            if !band.is_empty() {
                let hosts = hosts_between(&mut tx, id, &band).await?;
                relinked = hosts.len();
                for host_id in hosts {
                    relink_host(&mut tx, host_id, LinkCause::PriorityChanged, actor).await?;
                }
            }
        }
        record_activity(
            &mut tx,
            actor,
            "edited_idp_connection",
            json!({"connection_id": id.0, "connection_name": name, "previous_name": old_name,
                   "priority": priority, "previous_priority": old_priority, "hosts_rechecked": relinked,
                   "google_workspace_changed": change.google_workspace.is_some(),
                   "key_replaced": change.google_workspace.as_ref().is_some_and(|g| g.key_file.is_some())}),
        )
        .await?;
        tx.commit().await
    }

    pub(crate) async fn delete_connection(&self, id: ConnectionId, actor: &Actor) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let lock = tx.dialect().for_update();
        let row = tx
            .fetch_optional(&Sql::with(
                format!(
                    "SELECT name, name_norm, \
                     (SELECT COUNT(*) FROM scim_resources r WHERE r.connection_id = idp_connections.id) AS resources \
                     FROM idp_connections WHERE id = $1{lock}"
                ),
                [id.0.into()],
            ))
            .await?
            .ok_or(StoreError::NotFound)?;
        let name = row.text("name")?;
        if row.text("name_norm")? == DEFAULT_CONNECTION_NAME && row.int("resources")? > 0 {
            return Err(StoreError::Conflict(
                "the connection 'default' can be removed only once it has no users or groups".into(),
            ));
        }
        // Hosts waiting on this connection's users (unlinked or ambiguous) may be matched
        // in another one once its users are gone; linked ones are unlinked first.
        let mut waiting = Sql::new("SELECT h.id FROM hosts h WHERE h.end_user_seq IS NULL AND h.identity_norm IN ");
        push_identities(&mut waiting, &[id.0]);
        let waiting = tx.ints(&waiting).await?;
        let linked = tx
            .ints(&Sql::with(
                format!(
                    "SELECT h.id FROM hosts h WHERE h.end_user_seq IN \
                     (SELECT seq FROM scim_resources WHERE connection_id = $1 AND kind = 'User') ORDER BY h.id{lock}"
                ),
                [id.0.into()],
            ))
            .await?;
        unlink_hosts(&mut tx, &linked, LinkCause::ConnectionRemoved, "connection_removed", false, actor).await?;
        // Index rows and memberships go with the resources (ON DELETE CASCADE); tokens
        // with the connection. No offboarding event: the people did not leave.
        let removed =
            tx.execute(&Sql::with("DELETE FROM scim_resources WHERE connection_id = $1", [id.0.into()])).await?;
        tx.execute(&Sql::with("DELETE FROM scim_requests WHERE connection_id = $1", [id.0.into()])).await?;
        tx.execute(&Sql::with("DELETE FROM idp_connections WHERE id = $1", [id.0.into()])).await?;
        // Its automatic sources went by cascade; labels that all-connection sources kept
        // for its groups and departments go now.
        crate::automatic::prune_orphans(&mut tx).await?;
        let mut again: Vec<i64> = linked.iter().chain(&waiting).copied().collect();
        again.sort_unstable();
        again.dedup();
        for host_id in &again {
            relink_host(&mut tx, *host_id, LinkCause::ConnectionRemoved, actor).await?;
        }
        record_activity(
            &mut tx,
            actor,
            "deleted_idp_connection",
            json!({"connection_id": id.0, "connection_name": name, "resources_removed": removed,
                   "hosts_unlinked": linked.len()}),
        )
        .await?;
        tx.commit().await
    }

    pub(crate) async fn add_connection_token(
        &self,
        id: ConnectionId,
        token: TokenDigest,
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> StoreResult<i64> {
        let mut tx = self.write().await?;
        lock_connection_of_kind(
            &mut tx,
            id,
            ConnectionKind::Scim,
            "has no SCIM tokens: Custodian reads its directory itself",
        )
        .await?;
        let token_id = insert_token(&mut tx, id, token, expires_at).await?;
        tx.commit().await?;
        Ok(token_id)
    }

    pub(crate) async fn revoke_connection_token(
        &self,
        id: ConnectionId,
        token_id: i64,
        actor: &Actor,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let revoked = tx
            .execute(&Sql::with(
                "UPDATE idp_connection_tokens SET revoked_at = $1 \
                 WHERE id = $2 AND connection_id = $3 AND revoked_at IS NULL",
                [time::to_text(time::now()).into(), token_id.into(), id.0.into()],
            ))
            .await?;
        if revoked == 0 {
            return Err(StoreError::NotFound);
        }
        record_activity(
            &mut tx,
            actor,
            "revoked_idp_connection_token",
            json!({"connection_id": id.0, "token_id": token_id}),
        )
        .await?;
        tx.commit().await
    }

    pub(crate) async fn record_connection_token_use(
        &self,
        token_id: i64,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()> {
        self.write_one(Sql::with(
            "UPDATE idp_connection_tokens SET last_used_at = $1 \
             WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
            [time::to_text(at).into(), token_id.into()],
        ))
        .await
        .map(drop)
    }

    pub(crate) async fn connection_requests(&self, id: ConnectionId, limit: u32) -> StoreResult<Vec<ScimRequestEntry>> {
        let sql = Sql::with(
            format!("SELECT {REQUEST_COLUMNS} FROM scim_requests WHERE connection_id = $1 ORDER BY id DESC LIMIT $2"),
            [id.0.into(), i64::from(limit).into()],
        );
        self.read().await?.fetch_all(&sql).await?.iter().map(rows::scim_request).collect()
    }
}
