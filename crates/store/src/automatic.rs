//! Automatic labels: a source keeps one label per IdP group or per department. The
//! SCIM and directory-sync writes call `follow_change` in their own transaction, so that
//! a label is created, renamed and removed with its group or department and is never
//! stale. A label's hosts are its criteria's, evaluated at read time like any label's.

use custodian_domain::hosts::Actor;
use custodian_domain::labels::{AutomaticSource, Criteria, LabelSource, criteria_from_stored};
use custodian_domain::{ConnectionId, StoreError, StoreResult};
use custodian_scim::resource::display_of;
use custodian_scim::schema::{ENTERPRISE_USER_SCHEMA, ResourceKind};
use serde_json::{Value, json};

use crate::common::parse_doc;
use crate::db::{Conn, Db, Dialect, Sql};
use crate::linking::record_activity;
use crate::time;

/// The path of the department in `scim_values` (what department criteria match on).
fn department_path() -> String {
    format!("{ENTERPRISE_USER_SCHEMA}:department")
}

/// A user's department as labels key it: trimmed, in lower case (as matched).
fn department_key(doc: Option<&Value>) -> Option<(String, String)> {
    let department = doc?.get(ENTERPRISE_USER_SCHEMA)?.get("department")?.as_str()?.trim();
    (!department.is_empty()).then(|| (department.to_lowercase(), department.to_string()))
}

/// A source that applies to a connection, with that connection's name when the source
/// names one.
struct Applicable {
    id: i64,
    connection: Option<String>,
}

async fn applicable_sources(
    tx: &mut Conn,
    source: AutomaticSource,
    conn: ConnectionId,
) -> StoreResult<Vec<Applicable>> {
    let rows = tx
        .fetch_all(&Sql::with(
            "SELECT s.id, c.name FROM label_sources s LEFT JOIN idp_connections c ON c.id = s.connection_id \
             WHERE s.source = $1 AND (s.connection_id IS NULL OR s.connection_id = $2) ORDER BY s.id",
            [source.as_str().into(), conn.0.into()],
        ))
        .await?;
    rows.iter().map(|r| Ok(Applicable { id: r.int(0)?, connection: r.opt_text(1)? })).collect()
}

/// Creates the source's label for a key, or renames it when it exists.
async fn upsert_label(
    tx: &mut Conn,
    source: AutomaticSource,
    applicable: &Applicable,
    key: &str,
    value: &str,
    group_id: Option<&str>,
) -> StoreResult<()> {
    let connection = applicable.connection.as_deref();
    let name = source.label_name(value, connection);
    let criteria = source.criteria(value, group_id, connection).to_json().to_string();
    let now = time::to_text(time::now());
    let updated = tx
        .execute(&Sql::with(
            "UPDATE labels SET name = $1, criteria = $2, updated_at = $3 \
             WHERE source_id = $4 AND source_key = $5 AND (name <> $1 OR criteria <> $2)",
            [(&name).into(), (&criteria).into(), (&now).into(), applicable.id.into(), key.into()],
        ))
        .await?;
    if updated > 0 {
        return Ok(());
    }
    // A label's unique name key is its source and key: an automatic label never takes a
    // name from a label made by hand, nor fails because one has it.
    let description = match source {
        AutomaticSource::IdpGroups => "Kept in step with the IdP group (nested members included)",
        AutomaticSource::IdpDepartments => "Kept in step with the department",
    };
    tx.execute(&Sql::with(
        "INSERT INTO labels (name, name_norm, description, criteria, created_at, updated_at, source_id, source_key) \
         VALUES ($1, $2, $3, $4, $5, $5, $6, $7) ON CONFLICT (source_id, source_key) DO NOTHING",
        [
            name.into(),
            format!("\u{1}automatic:{}:{key}", applicable.id).into(),
            description.into(),
            criteria.into(),
            now.into(),
            applicable.id.into(),
            key.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Removes a department's labels when no user in a source's scope has it any more.
async fn prune_department(tx: &mut Conn, sources: &[(i64, Option<i64>)], key: &str) -> StoreResult<()> {
    for (source_id, connection_id) in sources {
        let mut sql = Sql::with(
            "DELETE FROM labels WHERE source_id = $1 AND source_key = $2 AND NOT EXISTS \
             (SELECT 1 FROM scim_values v JOIN scim_resources r ON r.seq = v.resource_seq \
              WHERE v.kind = 'User' AND v.path = $3 AND v.text_value = $2",
            [(*source_id).into(), key.into(), department_path().into()],
        );
        if let Some(c) = connection_id {
            sql.push(" AND r.connection_id = ");
            sql.push_bind(*c);
        }
        sql.push(")");
        tx.execute(&sql).await?;
    }
    Ok(())
}

/// Keeps the automatic labels in step with a write of a resource (`before` and `after`
/// its documents; `None`: created or deleted). Only a group's name or a user's
/// department matters; anything else costs nothing.
pub(crate) async fn follow_change(
    tx: &mut Conn,
    conn: ConnectionId,
    kind: ResourceKind,
    id: &str,
    before: Option<&Value>,
    after: Option<&Value>,
) -> StoreResult<()> {
    match kind {
        ResourceKind::Group => {
            let name = after.and_then(|doc| display_of(kind, doc));
            if before.is_some() && name.is_some() && before.and_then(|doc| display_of(kind, doc)) == name {
                return Ok(());
            }
            let sources = applicable_sources(tx, AutomaticSource::IdpGroups, conn).await?;
            match name {
                Some(name) => {
                    for s in &sources {
                        upsert_label(tx, AutomaticSource::IdpGroups, s, id, &name, Some(id)).await?;
                    }
                }
                None => {
                    for s in &sources {
                        tx.execute(&Sql::with(
                            "DELETE FROM labels WHERE source_id = $1 AND source_key = $2",
                            [s.id.into(), id.into()],
                        ))
                        .await?;
                    }
                }
            }
        }
        ResourceKind::User => {
            let (old, new) = (department_key(before), department_key(after));
            if old.as_ref().map(|(k, _)| k) == new.as_ref().map(|(k, _)| k) {
                return Ok(());
            }
            let sources = applicable_sources(tx, AutomaticSource::IdpDepartments, conn).await?;
            if sources.is_empty() {
                return Ok(());
            }
            // Another instance may add or remove a user of the same department at this
            // moment: the department's lock orders the two (PostgreSQL).
            let keys: Vec<String> =
                old.iter().chain(new.iter()).map(|(k, _)| format!("automatic-label:department:{k}")).collect();
            tx.lock_identities(&keys).await?;
            if let Some((key, value)) = &new {
                for s in &sources {
                    upsert_label(tx, AutomaticSource::IdpDepartments, s, key, value, None).await?;
                }
            }
            if let Some((key, _)) = &old {
                let scopes: Vec<(i64, Option<i64>)> =
                    sources.iter().map(|s| (s.id, s.connection.as_ref().map(|_| conn.0))).collect();
                prune_department(tx, &scopes, key).await?;
            }
        }
    }
    Ok(())
}

/// After a connection is renamed: the labels of its sources name it in their names and
/// criteria (a criterion names its connection), so both follow.
pub(crate) async fn rename_connection(tx: &mut Conn, conn: ConnectionId, name: &str) -> StoreResult<()> {
    let rows = tx
        .fetch_all(&Sql::with(
            "SELECT l.id, l.criteria, s.source FROM labels l JOIN label_sources s ON s.id = l.source_id \
             WHERE s.connection_id = $1",
            [conn.0.into()],
        ))
        .await?;
    let now = time::to_text(time::now());
    for row in rows {
        let source_name = row.text("source")?;
        let source = AutomaticSource::parse(&source_name)
            .ok_or_else(|| StoreError::Database(format!("unknown label source '{source_name}'")))?;
        let stored = parse_doc(&row.text("criteria")?)?;
        let Some(Criteria::Condition { value, group_id, .. }) = criteria_from_stored(&stored) else {
            continue;
        };
        let criteria = source.criteria(&value, group_id.as_deref(), Some(name)).to_json().to_string();
        tx.execute(&Sql::with(
            "UPDATE labels SET name = $1, criteria = $2, updated_at = $3 WHERE id = $4",
            [source.label_name(&value, Some(name)).into(), criteria.into(), (&now).into(), row.int("id")?.into()],
        ))
        .await?;
    }
    Ok(())
}

/// After a connection is removed: labels of its groups and of departments that no one
/// has any more go (its resources went by cascade, without `follow_change`).
pub(crate) async fn prune_orphans(tx: &mut Conn) -> StoreResult<()> {
    tx.execute(&Sql::new(
        "DELETE FROM labels WHERE source_id IN (SELECT id FROM label_sources WHERE source = 'idp_groups') \
         AND NOT EXISTS (SELECT 1 FROM scim_resources r WHERE r.kind = 'Group' AND r.id = labels.source_key)",
    ))
    .await?;
    let sources =
        tx.fetch_all(&Sql::new("SELECT id, connection_id FROM label_sources WHERE source = 'idp_departments'")).await?;
    for row in sources {
        let source = (row.int(0)?, row.opt_int(1)?);
        let keys =
            tx.fetch_all(&Sql::with("SELECT source_key FROM labels WHERE source_id = $1", [source.0.into()])).await?;
        for key in keys {
            prune_department(tx, &[source], &key.text(0)?).await?;
        }
    }
    Ok(())
}

const SOURCE_SELECT: &str = "SELECT s.id, s.source, c.name AS connection, s.created_at, \
     (SELECT COUNT(*) FROM labels l WHERE l.source_id = s.id) AS label_count \
     FROM label_sources s LEFT JOIN idp_connections c ON c.id = s.connection_id";

fn source_of(row: &crate::db::Row) -> StoreResult<LabelSource> {
    let name = row.text("source")?;
    Ok(LabelSource {
        id: row.int("id")?,
        source: AutomaticSource::parse(&name)
            .ok_or_else(|| StoreError::Database(format!("unknown label source '{name}'")))?,
        connection: row.opt_text("connection")?,
        created_at: time::from_text(&row.text("created_at")?)?,
        label_count: row.int("label_count")?.max(0) as u64,
    })
}

async fn load_source(tx: &mut Conn, id: i64) -> StoreResult<LabelSource> {
    let row = tx
        .fetch_optional(&Sql::with(format!("{SOURCE_SELECT} WHERE s.id = $1"), [id.into()]))
        .await?
        .ok_or(StoreError::NotFound)?;
    source_of(&row)
}

/// The labels of what exists now, for a new source.
async fn backfill(
    tx: &mut Conn,
    source: AutomaticSource,
    applicable: &Applicable,
    conn: Option<i64>,
) -> StoreResult<()> {
    match source {
        AutomaticSource::IdpGroups => {
            let mut sql = Sql::new("SELECT id, doc FROM scim_resources WHERE kind = 'Group'");
            if let Some(c) = conn {
                sql.push(" AND connection_id = ");
                sql.push_bind(c);
            }
            sql.push(" ORDER BY seq");
            for row in tx.fetch_all(&sql).await? {
                let id = row.text("id")?;
                let doc = parse_doc(&row.text("doc")?)?;
                if let Some(name) = display_of(ResourceKind::Group, &doc) {
                    upsert_label(tx, source, applicable, &id, &name, Some(&id)).await?;
                }
            }
        }
        AutomaticSource::IdpDepartments => {
            // One user per department names it (its first spelling).
            let mut sql = Sql::new(
                "SELECT r.doc FROM scim_resources r WHERE r.seq IN (SELECT MIN(v.resource_seq) FROM scim_values v \
                 JOIN scim_resources u ON u.seq = v.resource_seq WHERE v.kind = 'User' AND v.path = ",
            );
            sql.push_bind(department_path());
            if let Some(c) = conn {
                sql.push(" AND u.connection_id = ");
                sql.push_bind(c);
            }
            sql.push(" GROUP BY v.text_value) ORDER BY r.seq");
            for row in tx.fetch_all(&sql).await? {
                let doc = parse_doc(&row.text("doc")?)?;
                if let Some((key, value)) = department_key(Some(&doc)) {
                    upsert_label(tx, source, applicable, &key, &value, None).await?;
                }
            }
        }
    }
    Ok(())
}

impl Db {
    pub(crate) async fn create_label_source(
        &self,
        source: AutomaticSource,
        connection: Option<&str>,
        actor: &Actor,
    ) -> StoreResult<(LabelSource, bool)> {
        let mut tx = self.write().await?;
        if tx.dialect() == Dialect::Postgres {
            // Writes that have not seen the source yet finish first, and those after it
            // see it: no group or department made meanwhile is missed (SQLite's single
            // writer orders them already).
            tx.execute(&Sql::new("LOCK TABLE scim_resources IN SHARE MODE")).await?;
        }
        let conn = match connection {
            None => None,
            Some(name) => Some(
                tx.fetch_optional(&Sql::with(
                    "SELECT id FROM idp_connections WHERE name_norm = $1",
                    [name.trim().to_lowercase().into()],
                ))
                .await?
                .ok_or(StoreError::NotFound)?
                .int(0)?,
            ),
        };
        let existing = tx
            .fetch_optional(&Sql::with(
                "SELECT id FROM label_sources WHERE source = $1 AND COALESCE(connection_id, 0) = $2",
                [source.as_str().into(), conn.unwrap_or(0).into()],
            ))
            .await?;
        if let Some(row) = existing {
            let found = load_source(&mut tx, row.int(0)?).await?;
            tx.commit().await?;
            return Ok((found, false));
        }
        let id = tx
            .fetch_one(&Sql::with(
                "INSERT INTO label_sources (source, connection_id, created_at) VALUES ($1, $2, $3) RETURNING id",
                [source.as_str().into(), conn.into(), time::to_text(time::now()).into()],
            ))
            .await?
            .int(0)?;
        let connection_name = match conn {
            None => None,
            Some(c) => Some(
                tx.fetch_one(&Sql::with("SELECT name FROM idp_connections WHERE id = $1", [c.into()]))
                    .await?
                    .text(0)?,
            ),
        };
        backfill(&mut tx, source, &Applicable { id, connection: connection_name.clone() }, conn).await?;
        record_activity(
            &mut tx,
            actor,
            "created_automatic_labels",
            json!({"source_id": id, "source": source.as_str(), "connection": connection_name}),
        )
        .await?;
        let created = load_source(&mut tx, id).await?;
        tx.commit().await?;
        Ok((created, true))
    }

    pub(crate) async fn list_label_sources(&self) -> StoreResult<Vec<LabelSource>> {
        let sql = Sql::new(format!("{SOURCE_SELECT} ORDER BY s.id"));
        self.read().await?.fetch_all(&sql).await?.iter().map(source_of).collect()
    }

    pub(crate) async fn delete_label_source(&self, id: i64, actor: &Actor) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let gone = load_source(&mut tx, id).await?;
        // Its labels go by cascade.
        tx.execute(&Sql::with("DELETE FROM labels WHERE source_id = $1", [id.into()])).await?;
        tx.execute(&Sql::with("DELETE FROM label_sources WHERE id = $1", [id.into()])).await?;
        record_activity(
            &mut tx,
            actor,
            "deleted_automatic_labels",
            json!({"source_id": id, "source": gone.source.as_str(), "connection": gone.connection,
                   "labels": gone.label_count}),
        )
        .await?;
        tx.commit().await
    }
}
