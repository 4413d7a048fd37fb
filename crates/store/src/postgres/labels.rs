//! Labels on PostgreSQL. Membership is the host list's query with the label's criteria
//! (`host_sql::push_criteria`), evaluated at read time.

use custodian_domain::hosts::Actor;
use custodian_domain::labels::{Criteria, Label, LabelChange, LabelRef, NewLabel, Vital};
use custodian_domain::{StoreError, StoreResult};
use serde_json::json;
use sqlx::{Postgres, QueryBuilder, Row};

use super::linking::record_activity;
use super::{PgStore, Tx, db_err, is_unique_violation};
use super::{READ_ONLY_SNAPSHOT, begin};
use crate::host_sql::push_labels_of_host;
use crate::outbox::{self, LABEL_COLUMNS, label_norm};
use crate::time;

/// Labels evaluated per query by `labels_of_host`.
const LABELS_PER_QUERY: usize = 100;

/// Records, for every group condition, the SCIM id of the group it names: the id given
/// if that group exists, else the group whose id or name (any case) is the value.
async fn resolve_groups(tx: &mut Tx<'_>, criteria: &mut Criteria) -> StoreResult<()> {
    for condition in criteria.conditions_mut() {
        if let Criteria::Condition { vital: Vital::EndUserIdpGroup, value, group_id } = condition {
            let mut found = None;
            if let Some(id) = group_id.as_deref() {
                found = sqlx::query_scalar("SELECT id FROM scim_resources WHERE kind = 'Group' AND id = $1")
                    .bind(id)
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(db_err)?;
            }
            if found.is_none() {
                found = sqlx::query_scalar(
                    "SELECT id FROM scim_resources WHERE kind = 'Group' AND (id = $1 OR unique_norm = $2) \
                     ORDER BY (id = $3) DESC LIMIT 1",
                )
                .bind(value.as_str())
                .bind(value.trim().to_lowercase())
                .bind(value.as_str())
                .fetch_optional(&mut **tx)
                .await
                .map_err(db_err)?;
            }
            *group_id = found;
        }
    }
    Ok(())
}

fn name_conflict(name: &str) -> StoreError {
    StoreError::Conflict(format!("a label named '{}' already exists", name.trim()))
}

impl PgStore {
    pub(super) async fn create_label_impl(&self, label: NewLabel, actor: &Actor) -> StoreResult<Label> {
        let mut tx = begin(&self.pool, None).await.map_err(db_err)?;
        let mut criteria = label.criteria;
        resolve_groups(&mut tx, &mut criteria).await?;
        let now = time::to_text(time::now());
        let id: i64 = match sqlx::query_scalar(
            "INSERT INTO labels (name, name_norm, description, criteria, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(label.name.trim())
        .bind(label_norm(&label.name))
        .bind(&label.description)
        .bind(criteria.to_json().to_string())
        .bind(&now)
        .bind(&now)
        .fetch_one(&mut *tx)
        .await
        {
            Ok(id) => id,
            Err(e) if is_unique_violation(&e) => return Err(name_conflict(&label.name)),
            Err(e) => return Err(db_err(e)),
        };
        record_activity(&mut tx, actor, "created_label", json!({"label_id": id, "label_name": label.name.trim()}))
            .await?;
        let label = load(&mut tx, id).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(label)
    }

    pub(super) async fn list_labels_impl(&self) -> StoreResult<Vec<Label>> {
        let rows = sqlx::query(&format!("SELECT {LABEL_COLUMNS} FROM labels ORDER BY id"))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(outbox::label).collect()
    }

    pub(super) async fn get_label_impl(&self, id: i64) -> StoreResult<Label> {
        let row = sqlx::query(&format!("SELECT {LABEL_COLUMNS} FROM labels WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .ok_or(StoreError::NotFound)?;
        outbox::label(&row)
    }

    pub(super) async fn update_label_impl(&self, id: i64, change: LabelChange, actor: &Actor) -> StoreResult<Label> {
        let mut tx = begin(&self.pool, None).await.map_err(db_err)?;
        let current = load(&mut tx, id).await?;
        let name = change.name.as_deref().map(str::trim).unwrap_or(&current.name).to_string();
        let description = change.description.unwrap_or(current.description);
        let mut criteria = change.criteria.unwrap_or(current.criteria);
        resolve_groups(&mut tx, &mut criteria).await?;
        let result = sqlx::query(
            "UPDATE labels SET name = $1, name_norm = $2, description = $3, criteria = $4, updated_at = $5 WHERE id = $6",
        )
        .bind(&name)
        .bind(label_norm(&name))
        .bind(&description)
        .bind(criteria.to_json().to_string())
        .bind(time::to_text(time::now()))
        .bind(id)
        .execute(&mut *tx)
        .await;
        match result {
            Err(e) if is_unique_violation(&e) => return Err(name_conflict(&name)),
            other => other.map_err(db_err)?,
        };
        record_activity(&mut tx, actor, "edited_label", json!({"label_id": id, "label_name": name})).await?;
        let label = load(&mut tx, id).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(label)
    }

    pub(super) async fn delete_label_impl(&self, id: i64, actor: &Actor) -> StoreResult<()> {
        let mut tx = begin(&self.pool, None).await.map_err(db_err)?;
        let name: String = sqlx::query_scalar("DELETE FROM labels WHERE id = $1 RETURNING name")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?
            .ok_or(StoreError::NotFound)?;
        record_activity(&mut tx, actor, "deleted_label", json!({"label_id": id, "label_name": name})).await?;
        tx.commit().await.map_err(db_err)
    }

    pub(super) async fn labels_of_host_impl(&self, host_id: i64) -> StoreResult<Vec<LabelRef>> {
        // One snapshot: the labels and the host's membership agree.
        let mut tx = begin(&self.pool, Some(READ_ONLY_SNAPSHOT)).await.map_err(db_err)?;
        let rows = sqlx::query(&format!("SELECT {LABEL_COLUMNS} FROM labels ORDER BY id"))
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
        let labels = rows.iter().map(outbox::label).collect::<StoreResult<Vec<Label>>>()?;
        let mut member: Vec<i64> = Vec::new();
        for chunk in labels.chunks(LABELS_PER_QUERY) {
            let pairs: Vec<(i64, Criteria)> = chunk.iter().map(|l| (l.id, l.criteria.clone())).collect();
            let mut qb: QueryBuilder<Postgres> = QueryBuilder::new("");
            push_labels_of_host(&mut qb, crate::sql_filter::Dialect::Postgres, host_id, &pairs);
            for row in qb.build().fetch_all(&mut *tx).await.map_err(db_err)? {
                member.push(row.try_get("id").map_err(db_err)?);
            }
        }
        tx.commit().await.map_err(db_err)?;
        let mut refs: Vec<LabelRef> = labels
            .into_iter()
            .filter(|l| member.contains(&l.id))
            .map(|l| LabelRef { id: l.id, name: l.name })
            .collect();
        refs.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        Ok(refs)
    }
}

async fn load(tx: &mut Tx<'_>, id: i64) -> StoreResult<Label> {
    let row = sqlx::query(&format!("SELECT {LABEL_COLUMNS} FROM labels WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?
        .ok_or(StoreError::NotFound)?;
    outbox::label(&row)
}
