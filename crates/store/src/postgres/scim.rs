//! SCIM users and groups on PostgreSQL. A write locks the resource's row first
//! (`FOR NO KEY UPDATE`, which leaves foreign keys pointing at it free), so concurrent
//! writes of one resource apply one after the other.

use std::collections::{HashMap, HashSet};

use custodian_domain::hosts::{Actor, LinkCause};
use custodian_domain::{ListPage, ListQuery, Precondition, ScimRecord, StoreError, StoreResult, StoredMember, Written};
use custodian_scim::ScimError;
use custodian_scim::patch::{MemberChange, PatchRequest, apply_patch};
use custodian_scim::resource::{MemberKind, MemberRef, ResourceInput, display_of};
use custodian_scim::schema::ResourceKind;
use serde_json::Value;
use sqlx::{Postgres, QueryBuilder, Row};

use super::linking::{relink_host, rematch_identities, unlink_deleted_user};
use super::locks::lock_identities;
use super::webhooks::record_offboarding;
use super::{PgStore, Tx, db_err, is_unique_violation};
use super::{READ_ONLY_SNAPSHOT, begin};
use crate::common::{
    RECORD_COLUMNS, active_of, changed_identities, check_precondition, identities_of_user, kind_of, member_kind,
    name_taken, reactivates, unique_norm,
};
use crate::index::index_rows;
use crate::rows;
use crate::sql_filter::{Dialect, FilterSql, push_order};
use crate::time;

/// Index rows written inline with a created resource; a larger document (thousands of
/// emails, say) takes the chunked path.
const MAX_INLINE_INDEX_ROWS: usize = 1000;

/// A resource loaded for writing: its row number and current state.
struct Loaded {
    seq: i64,
    record: ScimRecord,
}

async fn load_for_write(tx: &mut Tx<'_>, kind: ResourceKind, id: &str) -> StoreResult<Loaded> {
    let row = sqlx::query(&format!(
        "SELECT {RECORD_COLUMNS} FROM scim_resources r WHERE r.id = $1 AND r.kind = $2 FOR NO KEY UPDATE"
    ))
    .bind(id)
    .bind(kind.name())
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_err)?
    .ok_or(StoreError::NotFound)?;
    Ok(Loaded { seq: row.try_get("seq").map_err(db_err)?, record: rows::record(&row)? })
}

/// Replaces a resource's index rows.
async fn write_index(tx: &mut Tx<'_>, seq: i64, kind: ResourceKind, doc: &Value) -> StoreResult<()> {
    sqlx::query("DELETE FROM scim_values WHERE resource_seq = $1")
        .bind(seq)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    insert_index(tx, seq, kind, doc).await
}

/// Writes the index rows of a resource that has none yet.
async fn insert_index(tx: &mut Tx<'_>, seq: i64, kind: ResourceKind, doc: &Value) -> StoreResult<()> {
    let rows = index_rows(kind, doc);
    for chunk in rows.chunks(500) {
        let mut qb: QueryBuilder<Postgres> =
            QueryBuilder::new("INSERT INTO scim_values (resource_seq, kind, path, elem, text_value, num_value) ");
        qb.push_values(chunk, |mut b, r| {
            b.push_bind(seq)
                .push_bind(kind.name())
                .push_bind(r.path.clone())
                .push_bind(r.elem)
                .push_bind(r.text.clone())
                .push_bind(r.num);
        });
        qb.build().execute(&mut **tx).await.map_err(db_err)?;
    }
    Ok(())
}

/// Fails with 409 when another resource of this kind has the same unique name.
async fn ensure_unique(tx: &mut Tx<'_>, kind: ResourceKind, norm: &str, except_seq: Option<i64>) -> StoreResult<()> {
    let other: Option<i64> = sqlx::query_scalar("SELECT seq FROM scim_resources WHERE kind = $1 AND unique_norm = $2")
        .bind(kind.name())
        .bind(norm)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?;
    match other {
        Some(seq) if Some(seq) != except_seq => Err(name_taken(kind)),
        _ => Ok(()),
    }
}

/// Resolves member ids to row numbers. Ids that name no resource are skipped (and
/// logged): ids are ours, so such a member can never arrive later, and refusing the
/// whole PATCH would fail an IdP's push over one stale reference.
async fn resolve_members(tx: &mut Tx<'_>, group_seq: i64, refs: &[MemberRef]) -> StoreResult<Vec<i64>> {
    let ids: Vec<&str> = {
        let mut seen = HashSet::new();
        refs.iter().map(|m| m.value.as_str()).filter(|v| seen.insert(*v)).collect()
    };
    let mut found: HashMap<String, i64> = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new("SELECT seq, id FROM scim_resources WHERE id IN (");
        let mut sep = qb.separated(", ");
        for id in chunk {
            sep.push_bind(*id);
        }
        qb.push(")");
        for row in qb.build().fetch_all(&mut **tx).await.map_err(db_err)? {
            found.insert(row.try_get("id").map_err(db_err)?, row.try_get("seq").map_err(db_err)?);
        }
    }
    let mut seqs = Vec::with_capacity(ids.len());
    let mut unknown = 0usize;
    for id in ids {
        match found.get(id) {
            Some(&seq) if seq == group_seq => {
                return Err(ScimError::invalid_value("a group cannot be a member of itself").into());
            }
            Some(&seq) => seqs.push(seq),
            None => unknown += 1,
        }
    }
    if unknown > 0 {
        tracing::warn!(unknown, "group membership change named members that do not exist; they were skipped");
    }
    Ok(seqs)
}

/// Adds members; those already present are left alone. Returns how many were added.
async fn add_members(tx: &mut Tx<'_>, group_seq: i64, seqs: &[i64]) -> StoreResult<u64> {
    let mut added = 0;
    for chunk in seqs.chunks(500) {
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new("INSERT INTO scim_members (group_seq, member_seq) ");
        qb.push_values(chunk, |mut b, s| {
            b.push_bind(group_seq).push_bind(*s);
        });
        qb.push(" ON CONFLICT DO NOTHING");
        added += qb.build().execute(&mut **tx).await.map_err(db_err)?.rows_affected();
    }
    Ok(added)
}

/// Removes the members with these ids; absent ones are ignored. Returns how many went.
async fn remove_members(tx: &mut Tx<'_>, group_seq: i64, ids: &[String]) -> StoreResult<u64> {
    let mut removed = 0;
    for chunk in ids.chunks(500) {
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new("DELETE FROM scim_members WHERE group_seq = ");
        qb.push_bind(group_seq);
        qb.push(" AND member_seq IN (SELECT seq FROM scim_resources WHERE id IN (");
        let mut sep = qb.separated(", ");
        for id in chunk {
            sep.push_bind(id.as_str());
        }
        qb.push("))");
        removed += qb.build().execute(&mut **tx).await.map_err(db_err)?.rows_affected();
    }
    Ok(removed)
}

/// Makes the membership exactly `seqs`, touching only the difference.
async fn replace_members(tx: &mut Tx<'_>, group_seq: i64, seqs: &[i64]) -> StoreResult<u64> {
    let current: Vec<i64> = sqlx::query_scalar("SELECT member_seq FROM scim_members WHERE group_seq = $1")
        .bind(group_seq)
        .fetch_all(&mut **tx)
        .await
        .map_err(db_err)?;
    let wanted: HashSet<i64> = seqs.iter().copied().collect();
    let current: HashSet<i64> = current.into_iter().collect();
    let to_remove: Vec<i64> = current.difference(&wanted).copied().collect();
    let to_add: Vec<i64> = wanted.difference(&current).copied().collect();
    let mut changed = 0;
    for chunk in to_remove.chunks(500) {
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new("DELETE FROM scim_members WHERE group_seq = ");
        qb.push_bind(group_seq);
        qb.push(" AND member_seq IN (");
        let mut sep = qb.separated(", ");
        for s in chunk {
            sep.push_bind(*s);
        }
        qb.push(")");
        changed += qb.build().execute(&mut **tx).await.map_err(db_err)?.rows_affected();
    }
    changed += add_members(tx, group_seq, &to_add).await?;
    Ok(changed)
}

/// Writes a resource's new state: document, derived columns, index and version.
async fn update_resource(tx: &mut Tx<'_>, loaded: &Loaded, doc: &Value, doc_changed: bool) -> StoreResult<ScimRecord> {
    let kind = loaded.record.kind;
    let now = time::now();
    let version = loaded.record.version + 1;
    if doc_changed {
        let norm = unique_norm(kind, doc)?;
        ensure_unique(tx, kind, &norm, Some(loaded.seq)).await?;
        let result = sqlx::query(
            "UPDATE scim_resources SET doc = $1, unique_norm = $2, display = $3, active = $4, \
             last_modified = $5, version = $6 WHERE seq = $7",
        )
        .bind(doc.to_string())
        .bind(&norm)
        .bind(display_of(kind, doc))
        .bind(active_of(kind, doc))
        .bind(time::to_text(now))
        .bind(version)
        .bind(loaded.seq)
        .execute(&mut **tx)
        .await;
        match result {
            Err(e) if is_unique_violation(&e) => return Err(ScimError::uniqueness("the name is already taken").into()),
            other => other.map_err(db_err)?,
        };
        write_index(tx, loaded.seq, kind, doc).await?;
    } else {
        sqlx::query("UPDATE scim_resources SET last_modified = $1, version = $2 WHERE seq = $3")
            .bind(time::to_text(now))
            .bind(version)
            .bind(loaded.seq)
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
    }
    Ok(ScimRecord { doc: doc.clone(), last_modified: now, version, ..loaded.record.clone() })
}

/// After a user is created, changed or deleted: the hosts waiting for any name the user
/// answered to before or answers to now are matched again (the mapping rules).
async fn relink_after_change(
    tx: &mut Tx<'_>,
    kind: ResourceKind,
    before: Option<&Value>,
    after: Option<&Value>,
    actor: &Actor,
) -> StoreResult<()> {
    if kind != ResourceKind::User {
        return Ok(());
    }
    rematch_identities(tx, &changed_identities(before, after), actor).await
}

/// Creates a resource inside the caller's transaction. Every client error (a taken
/// name, a bad document) is found before anything is written, so a caller may keep the
/// transaction going for other work after one: the group commit relies on it.
async fn create_in_tx(
    tx: &mut Tx<'_>,
    kind: ResourceKind,
    input: ResourceInput,
    actor: &Actor,
) -> StoreResult<Written> {
    let norm = unique_norm(kind, &input.doc)?;
    let id = uuid::Uuid::new_v4().to_string();
    let now = time::now();
    let index = index_rows(kind, &input.doc);
    let identities = if kind == ResourceKind::User { identities_of_user(&input.doc) } else { Vec::new() };
    // Hosts waiting for this user are probed below: hold their identities first, so that
    // a host written at this moment on another instance is either seen here or sees us.
    lock_identities(tx, &identities).await?;
    // The common case — a new name — is one statement: the resource, its index rows and
    // the hosts waiting for the user. A taken name (another instance's insert waits for
    // its commit) inserts nothing and is handled below, in the same transaction.
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(
        "WITH ins AS (INSERT INTO scim_resources \
         (id, kind, doc, unique_norm, display, active, created, last_modified, version) VALUES (",
    );
    {
        let mut sep = qb.separated(", ");
        sep.push_bind(id.clone())
            .push_bind(kind.name())
            .push_bind(input.doc.to_string())
            .push_bind(norm.clone())
            .push_bind(display_of(kind, &input.doc))
            .push_bind(active_of(kind, &input.doc))
            .push_bind(time::to_text(now))
            .push_bind(time::to_text(now));
    }
    qb.push(", 1) ON CONFLICT (kind, unique_norm) DO NOTHING RETURNING seq, kind)");
    let inline_index = index.len() <= MAX_INLINE_INDEX_ROWS;
    if inline_index && !index.is_empty() {
        qb.push(
            ", vals AS (INSERT INTO scim_values (resource_seq, kind, path, elem, text_value, num_value) \
             SELECT ins.seq, ins.kind, v.path, v.elem, v.text_value, v.num_value FROM ins, (VALUES ",
        );
        let mut rows = qb.separated(", ");
        for row in &index {
            rows.push("(")
                .push_bind_unseparated(row.path.clone())
                .push_unseparated(", ")
                .push_bind_unseparated(row.elem)
                .push_unseparated(", ")
                .push_bind_unseparated(row.text.clone())
                .push_unseparated(", ")
                .push_bind_unseparated(row.num)
                .push_unseparated(")");
        }
        qb.push(") AS v (path, elem, text_value, num_value))");
    }
    qb.push(" SELECT 'seq' AS k, seq AS v FROM ins");
    if !identities.is_empty() {
        qb.push(
            " UNION ALL SELECT 'host', id FROM hosts WHERE EXISTS (SELECT 1 FROM ins) \
             AND end_user_seq IS NULL AND identity_norm IN (",
        );
        let mut sep = qb.separated(", ");
        for i in &identities {
            sep.push_bind(i.clone());
        }
        qb.push(")");
    }
    let mut inserted = None;
    let mut waiting_hosts = Vec::new();
    for row in qb.build().fetch_all(&mut **tx).await.map_err(db_err)? {
        let k: String = row.try_get("k").map_err(db_err)?;
        let v: i64 = row.try_get("v").map_err(db_err)?;
        if k == "seq" {
            inserted = Some(v);
        } else {
            waiting_hosts.push(v);
        }
    }
    let Some(seq) = inserted else {
        let (existing_id, active): (String, Option<i64>) =
            sqlx::query_as("SELECT id, active FROM scim_resources WHERE kind = $1 AND unique_norm = $2")
                .bind(kind.name())
                .bind(&norm)
                .fetch_one(&mut **tx)
                .await
                .map_err(db_err)?;
        if !reactivates(kind, active, &input.doc) {
            return Err(name_taken(kind));
        }
        let loaded = load_for_write(tx, kind, &existing_id).await?;
        let record = update_resource(tx, &loaded, &input.doc, true).await?;
        relink_after_change(tx, kind, Some(&loaded.record.doc), Some(&record.doc), actor).await?;
        record_offboarding(tx, kind, loaded.seq, &record.id, Some(&loaded.record.doc), Some(&record.doc)).await?;
        return Ok(Written { record, reactivated: true });
    };
    if !inline_index {
        insert_index(tx, seq, kind, &input.doc).await?;
    }
    if let (ResourceKind::Group, Some(members)) = (kind, &input.members) {
        let seqs = resolve_members(tx, seq, members).await?;
        add_members(tx, seq, &seqs).await?;
    }
    // The new user may be what unlinked hosts were waiting for (the mapping rules).
    for host_id in waiting_hosts {
        relink_host(tx, host_id, LinkCause::ScimChange, actor).await?;
    }
    let record = ScimRecord { id, kind, doc: input.doc, created: now, last_modified: now, version: 1 };
    Ok(Written { record, reactivated: false })
}

impl PgStore {
    pub(super) async fn scim_create_impl(
        &self,
        kind: ResourceKind,
        input: ResourceInput,
        actor: &Actor,
    ) -> StoreResult<Written> {
        let mut tx = begin(&self.pool, None).await.map_err(db_err)?;
        let written = create_in_tx(&mut tx, kind, input, actor).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(written)
    }

    pub(super) async fn scim_get_impl(&self, kind: ResourceKind, id: &str) -> StoreResult<ScimRecord> {
        let row =
            sqlx::query(&format!("SELECT {RECORD_COLUMNS} FROM scim_resources r WHERE r.id = $1 AND r.kind = $2"))
                .bind(id)
                .bind(kind.name())
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?
                .ok_or(StoreError::NotFound)?;
        rows::record(&row)
    }

    pub(super) async fn scim_list_impl(&self, kind: ResourceKind, query: &ListQuery) -> StoreResult<ListPage> {
        let translator = FilterSql::<Postgres>::new(Dialect::Postgres, kind);
        let mut count_qb: QueryBuilder<Postgres> =
            QueryBuilder::new("SELECT COUNT(*) FROM scim_resources r WHERE r.kind = ");
        count_qb.push_bind(kind.name());
        if let Some(f) = &query.filter {
            count_qb.push(" AND ");
            translator.push(&mut count_qb, f)?;
        }
        // One snapshot for the count and the page, so that they agree.
        let mut tx = begin(&self.pool, Some(READ_ONLY_SNAPSHOT)).await.map_err(db_err)?;
        let total: i64 = count_qb.build_query_scalar().fetch_one(&mut *tx).await.map_err(db_err)?;
        let mut records = Vec::new();
        let offset = query.start_index.saturating_sub(1);
        if query.count > 0 && offset < total as u64 {
            let mut qb: QueryBuilder<Postgres> =
                QueryBuilder::new(format!("SELECT {RECORD_COLUMNS} FROM scim_resources r WHERE r.kind = "));
            qb.push_bind(kind.name());
            if let Some(f) = &query.filter {
                qb.push(" AND ");
                translator.push(&mut qb, f)?;
            }
            push_order(&mut qb, kind, query.sort_by.as_ref(), query.sort_order);
            qb.push(" LIMIT ");
            qb.push_bind(query.count.min(i64::MAX as u64) as i64);
            qb.push(" OFFSET ");
            qb.push_bind(offset.min(i64::MAX as u64) as i64);
            for row in qb.build().fetch_all(&mut *tx).await.map_err(db_err)? {
                records.push(rows::record(&row)?);
            }
        }
        tx.commit().await.map_err(db_err)?;
        Ok(ListPage { total_results: total as u64, records })
    }

    pub(super) async fn scim_replace_impl(
        &self,
        kind: ResourceKind,
        id: &str,
        input: ResourceInput,
        if_match: Precondition,
        actor: &Actor,
    ) -> StoreResult<Written> {
        let mut tx = begin(&self.pool, None).await.map_err(db_err)?;
        let loaded = load_for_write(&mut tx, kind, id).await?;
        check_precondition(&loaded.record, &if_match)?;
        // Members left out of a PUT are kept: emptying a large group because a client
        // omitted the attribute would be far worse than keeping it.
        if let (ResourceKind::Group, Some(members)) = (kind, &input.members) {
            let seqs = resolve_members(&mut tx, loaded.seq, members).await?;
            replace_members(&mut tx, loaded.seq, &seqs).await?;
        }
        let record = update_resource(&mut tx, &loaded, &input.doc, true).await?;
        relink_after_change(&mut tx, kind, Some(&loaded.record.doc), Some(&record.doc), actor).await?;
        record_offboarding(&mut tx, kind, loaded.seq, &record.id, Some(&loaded.record.doc), Some(&record.doc)).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(Written { record, reactivated: false })
    }

    pub(super) async fn scim_patch_impl(
        &self,
        kind: ResourceKind,
        id: &str,
        patch: &PatchRequest,
        if_match: Precondition,
        actor: &Actor,
    ) -> StoreResult<Written> {
        let mut tx = begin(&self.pool, None).await.map_err(db_err)?;
        let loaded = load_for_write(&mut tx, kind, id).await?;
        check_precondition(&loaded.record, &if_match)?;
        let mut doc = loaded.record.doc.clone();
        let outcome = apply_patch(kind, &mut doc, patch)?;
        let mut members_changed = 0;
        for change in &outcome.member_changes {
            members_changed += match change {
                MemberChange::Add(refs) => {
                    let seqs = resolve_members(&mut tx, loaded.seq, refs).await?;
                    add_members(&mut tx, loaded.seq, &seqs).await?
                }
                MemberChange::Remove(ids) => remove_members(&mut tx, loaded.seq, ids).await?,
                MemberChange::RemoveAll => replace_members(&mut tx, loaded.seq, &[]).await?,
                MemberChange::Replace(refs) => {
                    let seqs = resolve_members(&mut tx, loaded.seq, refs).await?;
                    replace_members(&mut tx, loaded.seq, &seqs).await?
                }
            };
        }
        let record = if outcome.doc_changed || members_changed > 0 {
            let record = update_resource(&mut tx, &loaded, &doc, outcome.doc_changed).await?;
            if outcome.doc_changed {
                relink_after_change(&mut tx, kind, Some(&loaded.record.doc), Some(&record.doc), actor).await?;
                record_offboarding(&mut tx, kind, loaded.seq, &record.id, Some(&loaded.record.doc), Some(&record.doc))
                    .await?;
            }
            record
        } else {
            // Nothing changed (a repeated member add, say): no new version.
            loaded.record
        };
        tx.commit().await.map_err(db_err)?;
        Ok(Written { record, reactivated: false })
    }

    pub(super) async fn scim_delete_impl(
        &self,
        kind: ResourceKind,
        id: &str,
        if_match: Precondition,
        actor: &Actor,
    ) -> StoreResult<()> {
        let mut tx = begin(&self.pool, None).await.map_err(db_err)?;
        let loaded = load_for_write(&mut tx, kind, id).await?;
        check_precondition(&loaded.record, &if_match)?;
        // The event lists the hosts and groups the user had: written before they go.
        record_offboarding(&mut tx, kind, loaded.seq, &loaded.record.id, Some(&loaded.record.doc), None).await?;
        if kind == ResourceKind::User {
            unlink_deleted_user(&mut tx, loaded.seq, actor).await?;
        }
        // Index rows and memberships (both ways) go with it: ON DELETE CASCADE.
        sqlx::query("DELETE FROM scim_resources WHERE seq = $1")
            .bind(loaded.seq)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        relink_after_change(&mut tx, kind, Some(&loaded.record.doc), None, actor).await?;
        tx.commit().await.map_err(db_err)
    }

    pub(super) async fn group_members_impl(&self, group_id: &str) -> StoreResult<Vec<StoredMember>> {
        let rows = sqlx::query(
            "SELECT x.id, x.kind, x.display FROM scim_resources g \
             JOIN scim_members m ON m.group_seq = g.seq \
             JOIN scim_resources x ON x.seq = m.member_seq \
             WHERE g.id = $1 ORDER BY m.member_seq",
        )
        .bind(group_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|row| {
                let kind: String = row.try_get("kind").map_err(db_err)?;
                Ok(StoredMember {
                    id: row.try_get("id").map_err(db_err)?,
                    kind: member_kind(kind_of(&kind)?),
                    display: row.try_get("display").map_err(db_err)?,
                    direct: true,
                })
            })
            .collect()
    }

    pub(super) async fn groups_of_impl(&self, member_id: &str) -> StoreResult<Vec<StoredMember>> {
        // Depth is capped so that a membership cycle cannot recurse for ever; LATERAL ...
        // OFFSET 0 keeps each step an index probe (see `hosts::complete`).
        let rows = sqlx::query(
            "WITH RECURSIVE up(g, depth) AS ( \
               SELECT m.group_seq, 1::bigint FROM scim_members m JOIN scim_resources x ON x.seq = m.member_seq \
               WHERE x.id = $1 \
               UNION SELECT m.group_seq, up.depth + 1 FROM up JOIN LATERAL \
               (SELECT mm.group_seq FROM scim_members mm WHERE mm.member_seq = up.g OFFSET 0) m ON true \
               WHERE up.depth < 32) \
             SELECT r.id, r.display, MIN(up.depth) AS depth FROM up JOIN LATERAL \
             (SELECT seq, id, display FROM scim_resources WHERE seq = up.g OFFSET 0) r ON true \
             GROUP BY r.seq, r.id, r.display ORDER BY r.display, r.id",
        )
        .bind(member_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|row| {
                Ok(StoredMember {
                    id: row.try_get("id").map_err(db_err)?,
                    kind: MemberKind::Group,
                    display: row.try_get("display").map_err(db_err)?,
                    direct: row.try_get::<i64, _>("depth").map_err(db_err)? == 1,
                })
            })
            .collect()
    }

    pub(super) async fn scim_count_impl(&self, kind: ResourceKind) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM scim_resources WHERE kind = $1")
            .bind(kind.name())
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(n as u64)
    }
}
