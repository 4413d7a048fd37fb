//! Labels. Membership is the host list's query with the label's criteria
//! (`host_sql::push_criteria`), evaluated at read time.

use custodian_domain::hosts::Actor;
use custodian_domain::labels::{AUTOMATIC_REFUSAL, Criteria, Label, LabelChange, LabelRef, NewLabel, Vital};
use custodian_domain::{StoreError, StoreResult};
use custodian_scim::filter::matches;
use custodian_scim::schema::{ENTERPRISE_USER_SCHEMA, ResourceKind};
use serde_json::{Value, json};

use crate::common::RECORD_COLUMNS;
use crate::db::{Conn, Db, Sql};
use crate::error::{db_err, is_unique_violation};
use crate::host_sql::{UserFilters, push_labels_of_host};
use crate::linking::record_activity;
use crate::outbox::{self, LABEL_COLUMNS, label_norm};
use crate::sql_filter::parse_translatable;
use crate::time;

/// Labels evaluated per query by `labels_of_host`.
const LABELS_PER_QUERY: usize = 100;

/// Records, for every group condition, the SCIM id of the group it names: the id given
/// if that group exists, else the group whose id or name (any case) is the value, in the
/// condition's connection when it names one. A name that several connections' groups
/// have stays unresolved: it then matches each of them at read time.
async fn resolve_groups(tx: &mut Conn, criteria: &mut Criteria) -> StoreResult<()> {
    for condition in criteria.conditions_mut() {
        if let Criteria::Condition { vital: Vital::EndUserIdpGroup, value, group_id, connection } = condition {
            let scope = |sql: &mut Sql| {
                if let Some(c) = connection.as_deref() {
                    sql.push(" AND connection_id IN (SELECT id FROM idp_connections WHERE name_norm = ");
                    sql.push_bind(c.trim().to_lowercase());
                    sql.push(")");
                }
            };
            let mut found = Vec::new();
            if let Some(id) = group_id.as_deref() {
                let mut sql = Sql::new("SELECT id FROM scim_resources WHERE kind = 'Group' AND id = ");
                sql.push_bind(id);
                scope(&mut sql);
                found = tx.fetch_all(&sql).await?;
            }
            if found.is_empty() {
                let mut sql = Sql::new("SELECT id FROM scim_resources WHERE kind = 'Group' AND id = ");
                sql.push_bind(value.as_str());
                scope(&mut sql);
                found = tx.fetch_all(&sql).await?;
            }
            if found.is_empty() {
                let mut sql = Sql::new("SELECT id FROM scim_resources WHERE kind = 'Group' AND unique_norm = ");
                sql.push_bind(value.trim().to_lowercase());
                scope(&mut sql);
                sql.push(" LIMIT 2");
                found = tx.fetch_all(&sql).await?;
            }
            *group_id = match found.as_slice() {
                [one] => Some(one.text(0)?),
                _ => None,
            };
        }
    }
    Ok(())
}

fn has_filter(criteria: &Criteria) -> bool {
    criteria
        .conditions("criteria")
        .iter()
        .any(|(_, c)| matches!(c, Criteria::Condition { vital: Vital::EndUserIdpFilter, .. }))
}

/// The host's end user as SCIM renders it (with `id` and `meta`), for the evaluator.
async fn end_user_document(tx: &mut Conn, host_id: i64) -> StoreResult<Option<Value>> {
    let sql = Sql::with(
        format!("SELECT {RECORD_COLUMNS} FROM hosts h JOIN scim_resources r ON r.seq = h.end_user_seq WHERE h.id = $1"),
        [host_id.into()],
    );
    let Some(row) = tx.fetch_optional(&sql).await? else {
        return Ok(None);
    };
    Ok(Some(crate::rows::record(&row)?.render("", None, None)))
}

/// The automatic labels of a host in one query: those of its user's groups (nested, as
/// the group criteria count them) and of its user's department, within each source's
/// connection. The same membership as the labels' criteria, found from the user's side:
/// the CROSS JOINs keep SQLite's join order, from the user and its groups outwards (left
/// to itself it scanned every department row first).
fn automatic_labels_of_host(host_id: i64) -> Sql {
    Sql::with(
        format!(
            "WITH RECURSIVE u AS (SELECT h.end_user_seq AS seq FROM hosts h WHERE h.id = $1 AND h.end_user_seq IS NOT NULL), \
             up(g, depth) AS (SELECT m.group_seq, 1 FROM scim_members m WHERE m.member_seq IN (SELECT seq FROM u) \
               UNION SELECT m.group_seq, up.depth + 1 FROM up JOIN scim_members m ON m.member_seq = up.g WHERE up.depth < 32) \
             SELECT l.id, l.name FROM up CROSS JOIN scim_resources g CROSS JOIN labels l CROSS JOIN label_sources s \
             WHERE g.seq = up.g AND l.source_key = g.id AND s.id = l.source_id AND s.source = 'idp_groups' \
               AND (s.connection_id IS NULL OR s.connection_id = g.connection_id) \
             UNION \
             SELECT l.id, l.name FROM u CROSS JOIN scim_values v CROSS JOIN scim_resources r CROSS JOIN labels l \
               CROSS JOIN label_sources s \
             WHERE v.resource_seq = u.seq AND v.path = '{ENTERPRISE_USER_SCHEMA}:department' AND r.seq = u.seq \
               AND l.source_key = v.text_value AND s.id = l.source_id AND s.source = 'idp_departments' \
               AND (s.connection_id IS NULL OR s.connection_id = r.connection_id)"
        ),
        [host_id.into()],
    )
}

fn name_conflict(name: &str) -> StoreError {
    StoreError::Conflict(format!("a label named '{}' already exists", name.trim()))
}

async fn load(tx: &mut Conn, id: i64) -> StoreResult<Label> {
    let row = tx
        .fetch_optional(&Sql::with(format!("SELECT {LABEL_COLUMNS} FROM labels WHERE id = $1"), [id.into()]))
        .await?
        .ok_or(StoreError::NotFound)?;
    outbox::label(&row)
}

impl Db {
    pub(crate) async fn create_label(&self, label: NewLabel, actor: &Actor) -> StoreResult<Label> {
        let mut tx = self.write().await?;
        let mut criteria = label.criteria;
        resolve_groups(&mut tx, &mut criteria).await?;
        let now = time::to_text(time::now());
        let insert = Sql::with(
            "INSERT INTO labels (name, name_norm, description, criteria, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            [
                label.name.trim().into(),
                label_norm(&label.name).into(),
                (&label.description).into(),
                criteria.to_json().to_string().into(),
                (&now).into(),
                now.into(),
            ],
        );
        let id = match tx.try_fetch_optional(&insert).await {
            Ok(row) => row.ok_or_else(|| db_err(sqlx::Error::RowNotFound))?.int(0)?,
            Err(e) if is_unique_violation(&e) => return Err(name_conflict(&label.name)),
            Err(e) => return Err(db_err(e)),
        };
        record_activity(&mut tx, actor, "created_label", json!({"label_id": id, "label_name": label.name.trim()}))
            .await?;
        let label = load(&mut tx, id).await?;
        tx.commit().await?;
        Ok(label)
    }

    pub(crate) async fn list_labels(&self) -> StoreResult<Vec<Label>> {
        let sql = Sql::new(format!("SELECT {LABEL_COLUMNS} FROM labels ORDER BY id"));
        self.read().await?.fetch_all(&sql).await?.iter().map(outbox::label).collect()
    }

    pub(crate) async fn get_label(&self, id: i64) -> StoreResult<Label> {
        load(&mut self.read().await?, id).await
    }

    pub(crate) async fn update_label(&self, id: i64, change: LabelChange, actor: &Actor) -> StoreResult<Label> {
        let mut tx = self.write().await?;
        let current = load(&mut tx, id).await?;
        if current.source_id.is_some() {
            return Err(StoreError::Conflict(AUTOMATIC_REFUSAL.into()));
        }
        let name = change.name.as_deref().map(str::trim).unwrap_or(&current.name).to_string();
        let description = change.description.unwrap_or(current.description);
        let mut criteria = change.criteria.unwrap_or(current.criteria);
        resolve_groups(&mut tx, &mut criteria).await?;
        let update = Sql::with(
            "UPDATE labels SET name = $1, name_norm = $2, description = $3, criteria = $4, updated_at = $5 \
             WHERE id = $6",
            [
                (&name).into(),
                label_norm(&name).into(),
                description.into(),
                criteria.to_json().to_string().into(),
                time::to_text(time::now()).into(),
                id.into(),
            ],
        );
        match tx.try_execute(&update).await {
            Err(e) if is_unique_violation(&e) => return Err(name_conflict(&name)),
            other => other.map_err(db_err)?,
        };
        record_activity(&mut tx, actor, "edited_label", json!({"label_id": id, "label_name": name})).await?;
        let label = load(&mut tx, id).await?;
        tx.commit().await?;
        Ok(label)
    }

    pub(crate) async fn delete_label(&self, id: i64, actor: &Actor) -> StoreResult<()> {
        let mut tx = self.write().await?;
        if load(&mut tx, id).await?.source_id.is_some() {
            return Err(StoreError::Conflict(AUTOMATIC_REFUSAL.into()));
        }
        let name = tx
            .fetch_optional(&Sql::with("DELETE FROM labels WHERE id = $1 RETURNING name", [id.into()]))
            .await?
            .ok_or(StoreError::NotFound)?
            .text(0)?;
        record_activity(&mut tx, actor, "deleted_label", json!({"label_id": id, "label_name": name})).await?;
        tx.commit().await
    }

    pub(crate) async fn labels_of_host(&self, host_id: i64) -> StoreResult<Vec<LabelRef>> {
        // One snapshot: the labels and the host's membership agree.
        let mut tx = self.snapshot().await?;
        // Labels made by hand are evaluated criteria by criteria; automatic ones (perhaps
        // thousands, one per group) are found from the user's groups and department.
        let rows = tx
            .fetch_all(&Sql::new(format!("SELECT {LABEL_COLUMNS} FROM labels WHERE source_id IS NULL ORDER BY id")))
            .await?;
        let labels = rows.iter().map(outbox::label).collect::<StoreResult<Vec<Label>>>()?;
        let mut refs: Vec<LabelRef> = Vec::new();
        for row in tx.fetch_all(&automatic_labels_of_host(host_id)).await? {
            refs.push(LabelRef { id: row.int("id")?, name: row.text("name")?, automatic: true });
        }
        // Filter conditions are decided on the user's own document, with the evaluator
        // the SQL translation agrees with (the differential test holds them together).
        let user = if labels.iter().any(|l| has_filter(&l.criteria)) {
            end_user_document(&mut tx, host_id).await?
        } else {
            None
        };
        let known = |text: &str| {
            // As the SQL side: a stored filter that no longer translates matches no host.
            user.as_ref()
                .is_some_and(|doc| parse_translatable(ResourceKind::User, text).is_ok_and(|f| matches(&f, doc)))
        };
        let filters = UserFilters::Known(&known);
        let mut member: Vec<i64> = Vec::new();
        for chunk in labels.chunks(LABELS_PER_QUERY) {
            let pairs: Vec<(i64, Criteria)> = chunk.iter().map(|l| (l.id, l.criteria.clone())).collect();
            let mut sql = Sql::new("");
            push_labels_of_host(&mut sql, tx.dialect(), host_id, &pairs, &filters)?;
            member.extend(tx.ints(&sql).await?);
        }
        tx.commit().await?;
        refs.extend(labels.into_iter().filter(|l| member.contains(&l.id)).map(|l| LabelRef {
            id: l.id,
            name: l.name,
            automatic: false,
        }));
        refs.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        Ok(refs)
    }
}
