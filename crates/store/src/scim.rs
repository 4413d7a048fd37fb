//! SCIM users and groups: writes, reads and membership deltas. On PostgreSQL a write
//! locks the resource's row first (`FOR NO KEY UPDATE`, which leaves foreign keys
//! pointing at it free), so concurrent writes of one resource apply one after the other;
//! SQLite's single writer does that already. A SCIM filter becomes SQL in `sql_filter.rs`.

use std::collections::{HashMap, HashSet};

use custodian_domain::hosts::{Actor, LinkCause};
use custodian_domain::{ConnectionId, Scope};
use custodian_domain::{ListPage, ListQuery, Precondition, ScimRecord, StoreError, StoreResult, StoredMember, Written};
use custodian_scim::ScimError;
use custodian_scim::patch::{MemberChange, PatchRequest, apply_patch};
use custodian_scim::resource::{MemberKind, MemberRef, ResourceInput, display_of};
use custodian_scim::schema::ResourceKind;
use serde_json::Value;

use crate::automatic::follow_change;
use crate::common::{
    RECORD_COLUMNS, active_of, changed_identities, check_precondition, identities_of_user, kind_of, member_kind,
    name_taken, push_scope, reactivates, unique_norm,
};
use crate::db::{Conn, Db, Dialect, Sql};
use crate::error::{db_err, is_unique_violation};
use crate::index::{IndexRow, index_rows};
use crate::linking::{push_may_change, relink_host, rematch_identities, unlink_deleted_user};
use crate::reindex::check_unique;
use crate::rows;
use crate::sql_filter::{FilterSql, push_order};
use crate::time;
use crate::webhooks::record_offboarding;

/// Index rows written inline with a created resource; a larger document (thousands of
/// emails, say) takes the chunked path, within SQLite's limit on bound values.
const MAX_INLINE_INDEX_ROWS: usize = 1000;

/// Values per `IN (...)` list or multi-row insert.
const CHUNK: usize = 500;

/// A resource loaded for writing: its row number and current state.
struct Loaded {
    seq: i64,
    record: ScimRecord,
}

async fn load_for_write(tx: &mut Conn, conn: ConnectionId, kind: ResourceKind, id: &str) -> StoreResult<Loaded> {
    let lock = tx.dialect().for_no_key_update();
    let row = tx
        .fetch_optional(&Sql::with(
            format!(
                "SELECT {RECORD_COLUMNS} FROM scim_resources r \
                 WHERE r.id = $1 AND r.kind = $2 AND r.connection_id = $3{lock}"
            ),
            [id.into(), kind.name().into(), conn.0.into()],
        ))
        .await?
        .ok_or(StoreError::NotFound)?;
    Ok(Loaded { seq: row.int("seq")?, record: rows::record(&row)? })
}

/// Writes the index rows of a resource that has none yet.
pub(crate) async fn insert_index(tx: &mut Conn, seq: i64, kind: ResourceKind, rows: &[IndexRow]) -> StoreResult<()> {
    for chunk in rows.chunks(CHUNK) {
        let mut sql = Sql::default();
        push_index_insert(&mut sql, seq, kind, chunk);
        tx.execute(&sql).await?;
    }
    Ok(())
}

/// `INSERT INTO scim_values ... VALUES ...` of some of a resource's index rows.
fn push_index_insert(sql: &mut Sql, seq: i64, kind: ResourceKind, rows: &[IndexRow]) {
    sql.push("INSERT INTO scim_values (resource_seq, kind, path, elem, text_value, num_value) ");
    sql.push_values(rows, |mut b, r| {
        b.push_bind(seq)
            .push_bind(kind.name())
            .push_bind(&r.path)
            .push_bind(r.elem)
            .push_bind(&r.text)
            .push_bind(r.num);
    });
}

/// Resolves member ids to row numbers. Ids that name no resource are skipped (and
/// logged): ids are ours, so such a member can never arrive later, and refusing the
/// whole PATCH would fail an IdP's push over one stale reference. Members are of the
/// group's own connection: another connection's ids are unknown here.
async fn resolve_members(
    tx: &mut Conn,
    conn: ConnectionId,
    group_seq: i64,
    refs: &[MemberRef],
) -> StoreResult<Vec<i64>> {
    let ids: Vec<&str> = {
        let mut seen = HashSet::new();
        refs.iter().map(|m| m.value.as_str()).filter(|v| seen.insert(*v)).collect()
    };
    let mut found: HashMap<String, i64> = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let mut sql = Sql::new("SELECT seq, id FROM scim_resources WHERE connection_id = ");
        sql.push_bind(conn.0);
        sql.push(" AND id IN (");
        let mut sep = sql.separated(", ");
        for id in chunk {
            sep.push_bind(*id);
        }
        sql.push(")");
        for row in tx.fetch_all(&sql).await? {
            found.insert(row.text("id")?, row.int("seq")?);
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
async fn add_members(tx: &mut Conn, group_seq: i64, seqs: &[i64]) -> StoreResult<u64> {
    let mut added = 0;
    for chunk in seqs.chunks(CHUNK) {
        let mut sql = Sql::new("INSERT INTO scim_members (group_seq, member_seq) ");
        sql.push_values(chunk, |mut b, s| {
            b.push_bind(group_seq).push_bind(*s);
        });
        sql.push(" ON CONFLICT DO NOTHING");
        added += tx.execute(&sql).await?;
    }
    Ok(added)
}

/// Removes the members with these ids; absent ones are ignored. Returns how many went.
async fn remove_members(tx: &mut Conn, group_seq: i64, ids: &[String]) -> StoreResult<u64> {
    let mut removed = 0;
    for chunk in ids.chunks(CHUNK) {
        let mut sql = Sql::new("DELETE FROM scim_members WHERE group_seq = ");
        sql.push_bind(group_seq);
        sql.push(" AND member_seq IN (SELECT seq FROM scim_resources WHERE id IN (");
        let mut sep = sql.separated(", ");
        for id in chunk {
            sep.push_bind(id.as_str());
        }
        sql.push("))");
        removed += tx.execute(&sql).await?;
    }
    Ok(removed)
}

/// Makes the membership exactly `seqs`, touching only the difference.
async fn replace_members(tx: &mut Conn, group_seq: i64, seqs: &[i64]) -> StoreResult<u64> {
    let current =
        tx.ints(&Sql::with("SELECT member_seq FROM scim_members WHERE group_seq = $1", [group_seq.into()])).await?;
    let wanted: HashSet<i64> = seqs.iter().copied().collect();
    let current: HashSet<i64> = current.into_iter().collect();
    let to_remove: Vec<i64> = current.difference(&wanted).copied().collect();
    let to_add: Vec<i64> = wanted.difference(&current).copied().collect();
    let mut changed = 0;
    for chunk in to_remove.chunks(CHUNK) {
        let mut sql = Sql::new("DELETE FROM scim_members WHERE group_seq = ");
        sql.push_bind(group_seq);
        sql.push(" AND member_seq IN (");
        let mut sep = sql.separated(", ");
        for s in chunk {
            sep.push_bind(*s);
        }
        sql.push(")");
        changed += tx.execute(&sql).await?;
    }
    changed += add_members(tx, group_seq, &to_add).await?;
    Ok(changed)
}

/// Writes a resource's new state: document, derived columns, index and version.
async fn update_resource(
    tx: &mut Conn,
    conn: ConnectionId,
    loaded: &Loaded,
    doc: &Value,
    doc_changed: bool,
) -> StoreResult<ScimRecord> {
    let kind = loaded.record.kind;
    let now = time::now();
    let version = loaded.record.version + 1;
    if doc_changed {
        let norm = unique_norm(kind, doc)?;
        let index = index_rows(kind, doc);
        let inline = index.len() <= MAX_INLINE_INDEX_ROWS;
        // One statement in the common case: the row, and its index rows replaced (SQLite:
        // one text of three; PostgreSQL: data-modifying CTEs, which all see the rows as
        // they were, so the delete takes only the old index rows). A taken name fails the
        // update itself, through the unique index, and the statement changes nothing.
        let set = "UPDATE scim_resources SET doc = $1, unique_norm = $2, display = $3, active = $4, \
                   last_modified = $5, version = $6 WHERE seq = $7";
        let delete = "DELETE FROM scim_values WHERE resource_seq = $7";
        let mut sql = Sql::with(
            match tx.dialect() {
                Dialect::Sqlite => format!("{set}; {delete}; "),
                Dialect::Postgres => format!("WITH updated AS ({set} RETURNING seq), deleted AS ({delete}) "),
            },
            [
                doc.to_string().into(),
                norm.into(),
                display_of(kind, doc).into(),
                active_of(kind, doc).into(),
                time::to_text(now).into(),
                version.into(),
                loaded.seq.into(),
            ],
        );
        match (inline && !index.is_empty(), tx.dialect()) {
            (true, _) => push_index_insert(&mut sql, loaded.seq, kind, &index),
            (false, Dialect::Sqlite) => {}
            (false, Dialect::Postgres) => {
                sql.push("SELECT seq FROM updated");
            }
        }
        match tx.try_execute(&sql).await {
            Err(e) if is_unique_violation(&e) => return Err(name_taken(kind)),
            other => other.map_err(db_err)?,
        };
        if !inline {
            insert_index(tx, loaded.seq, kind, &index).await?;
        }
        check_unique(tx, conn, kind, Some(loaded.seq), &index).await?;
    } else {
        tx.execute(&Sql::with(
            "UPDATE scim_resources SET last_modified = $1, version = $2 WHERE seq = $3",
            [time::to_text(now).into(), version.into(), loaded.seq.into()],
        ))
        .await?;
    }
    Ok(ScimRecord { doc: doc.clone(), last_modified: now, version, ..loaded.record.clone() })
}

/// After a user is created, changed or deleted: the hosts waiting for any name the user
/// answered to before or answers to now are matched again (the mapping rules).
async fn relink_after_change(
    tx: &mut Conn,
    conn: ConnectionId,
    kind: ResourceKind,
    before: Option<&Value>,
    after: Option<&Value>,
    actor: &Actor,
) -> StoreResult<()> {
    if kind != ResourceKind::User {
        return Ok(());
    }
    rematch_identities(tx, conn, &changed_identities(before, after), actor).await
}

/// The insert of a new resource with its index rows, answering `k = 'seq'` with its row
/// number (none when the name is taken) and `k = 'host'` for every host waiting for the
/// user. SQLite: one multi-statement query, a round trip to its worker thread costing
/// more than the statements. PostgreSQL: one statement of data-modifying CTEs (where
/// another instance's insert of the name waits for its commit).
/// What `push_insert` writes.
struct NewResource<'a> {
    conn: ConnectionId,
    id: &'a str,
    kind: ResourceKind,
    doc: &'a Value,
    norm: &'a str,
    now: &'a str,
    /// The index rows, unless written separately.
    index: Option<&'a [crate::index::IndexRow]>,
    identities: &'a [String],
}

fn push_insert(sql: &mut Sql, d: Dialect, new: &NewResource<'_>) {
    sql.push(match d {
        Dialect::Sqlite => "",
        Dialect::Postgres => "WITH ins AS (",
    });
    sql.push(
        "INSERT INTO scim_resources \
         (connection_id, id, kind, doc, unique_norm, display, active, created, last_modified, version) VALUES (",
    );
    let NewResource { conn, id, kind, doc, norm, now, index, identities } = *new;
    sql.separated(", ")
        .push_bind(conn.0)
        .push_bind(id)
        .push_bind(kind.name())
        .push_bind(doc.to_string())
        .push_bind(norm)
        .push_bind(display_of(kind, doc))
        .push_bind(active_of(kind, doc))
        .push_bind(now)
        .push_bind(now);
    sql.push(match d {
        Dialect::Sqlite => ", 1) ON CONFLICT (kind, unique_norm, connection_id) DO NOTHING; ",
        Dialect::Postgres => ", 1) ON CONFLICT (kind, unique_norm, connection_id) DO NOTHING RETURNING seq, kind)",
    });
    if let Some(index) = index.filter(|i| !i.is_empty()) {
        sql.push(match d {
            Dialect::Sqlite => {
                "INSERT INTO scim_values (resource_seq, kind, path, elem, text_value, num_value) \
                 SELECT r.seq, r.kind, v.column1, v.column2, v.column3, v.column4 FROM scim_resources r, (VALUES "
            }
            Dialect::Postgres => {
                ", vals AS (INSERT INTO scim_values (resource_seq, kind, path, elem, text_value, num_value) \
                 SELECT ins.seq, ins.kind, v.path, v.elem, v.text_value, v.num_value FROM ins, (VALUES "
            }
        });
        let mut rows = sql.separated(", ");
        for row in index {
            rows.push("(")
                .push_bind_unseparated(&row.path)
                .push_unseparated(", ")
                .push_bind_unseparated(row.elem)
                .push_unseparated(", ")
                .push_bind_unseparated(&row.text)
                .push_unseparated(", ")
                .push_bind_unseparated(row.num)
                .push_unseparated(")");
        }
        match d {
            Dialect::Sqlite => {
                sql.push(") v WHERE r.id = ");
                sql.push_bind(id);
                sql.push("; ");
            }
            Dialect::Postgres => {
                sql.push(") AS v (path, elem, text_value, num_value))");
            }
        }
    }
    match d {
        Dialect::Sqlite => {
            sql.push("SELECT 'seq' AS k, seq AS v FROM scim_resources WHERE id = ");
            sql.push_bind(id);
        }
        Dialect::Postgres => {
            sql.push(" SELECT 'seq' AS k, seq AS v FROM ins");
        }
    }
    if !identities.is_empty() {
        sql.push(match d {
            Dialect::Sqlite => " UNION ALL SELECT 'host', h.id FROM hosts h WHERE h.identity_norm IN (",
            Dialect::Postgres => {
                " UNION ALL SELECT 'host', h.id FROM hosts h WHERE EXISTS (SELECT 1 FROM ins) AND h.identity_norm IN ("
            }
        });
        let mut sep = sql.separated(", ");
        for i in identities {
            sep.push_bind(i.as_str());
        }
        sql.push(") AND ");
        push_may_change(sql, conn);
    }
}

/// Creates a resource inside the caller's transaction. Every client error (a taken
/// name, a bad document) is found before anything is written, so a caller may keep the
/// transaction going for other work after one: SQLite's group commit relies on it.
pub(crate) async fn create_in_tx(
    tx: &mut Conn,
    conn: ConnectionId,
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
    tx.lock_identities(&identities).await?;
    // The common case — a new name — is one round trip: the resource, its index rows and
    // the hosts waiting for the user. A taken name inserts nothing and is handled below,
    // in the same transaction.
    let inline_index = index.len() <= MAX_INLINE_INDEX_ROWS;
    let mut sql = Sql::default();
    let now_text = time::to_text(now);
    let new = NewResource {
        conn,
        id: &id,
        kind,
        doc: &input.doc,
        norm: &norm,
        now: &now_text,
        index: inline_index.then_some(index.as_slice()),
        identities: &identities,
    };
    push_insert(&mut sql, tx.dialect(), &new);
    let mut inserted = None;
    let mut waiting_hosts = Vec::new();
    for row in tx.fetch_all(&sql).await? {
        let v = row.int("v")?;
        if row.text("k")? == "seq" {
            inserted = Some(v);
        } else {
            waiting_hosts.push(v);
        }
    }
    let Some(seq) = inserted else {
        let row = tx
            .fetch_one(&Sql::with(
                "SELECT id, active FROM scim_resources WHERE kind = $1 AND unique_norm = $2 AND connection_id = $3",
                [kind.name().into(), (&norm).into(), conn.0.into()],
            ))
            .await?;
        if !reactivates(kind, row.opt_int("active")?, &input.doc) {
            return Err(name_taken(kind));
        }
        let loaded = load_for_write(tx, conn, kind, &row.text("id")?).await?;
        let record = update_resource(tx, conn, &loaded, &input.doc, true).await?;
        relink_after_change(tx, conn, kind, Some(&loaded.record.doc), Some(&record.doc), actor).await?;
        record_offboarding(tx, kind, loaded.seq, &record.id, Some(&loaded.record.doc), Some(&record.doc)).await?;
        follow_change(tx, conn, kind, &record.id, Some(&loaded.record.doc), Some(&record.doc)).await?;
        return Ok(Written { record, reactivated: true });
    };
    if !inline_index {
        insert_index(tx, seq, kind, &index).await?;
    }
    // After the insert, so that a value taken by another resource is seen whoever wrote
    // it; a refusal rolls the insert back with the rest of the write.
    check_unique(tx, conn, kind, Some(seq), &index).await?;
    if let (ResourceKind::Group, Some(members)) = (kind, &input.members) {
        let seqs = resolve_members(tx, conn, seq, members).await?;
        add_members(tx, seq, &seqs).await?;
    }
    // The new user may be what unlinked hosts were waiting for (the mapping rules).
    for host_id in waiting_hosts {
        relink_host(tx, host_id, LinkCause::ScimChange, actor).await?;
    }
    follow_change(tx, conn, kind, &id, None, Some(&input.doc)).await?;
    let record = ScimRecord { id, kind, doc: input.doc, created: now, last_modified: now, version: 1 };
    Ok(Written { record, reactivated: false })
}

impl Db {
    pub(crate) async fn scim_get(&self, scope: Scope, kind: ResourceKind, id: &str) -> StoreResult<ScimRecord> {
        let mut sql = Sql::with(
            format!("SELECT {RECORD_COLUMNS} FROM scim_resources r WHERE r.id = $1 AND r.kind = $2"),
            [id.into(), kind.name().into()],
        );
        push_scope(&mut sql, scope);
        rows::record(&self.read().await?.fetch_optional(&sql).await?.ok_or(StoreError::NotFound)?)
    }

    pub(crate) async fn scim_list(&self, scope: Scope, kind: ResourceKind, query: &ListQuery) -> StoreResult<ListPage> {
        let offset = query.start_index.saturating_sub(1);
        // The common case, an IdP's `userName eq` lookup, is one statement: a first page
        // shorter than asked for is every match, so it tells the total itself.
        if offset == 0 && query.count > 0 {
            let mut conn = self.read().await?;
            let records = list_page(&mut conn, scope, kind, query, offset).await?;
            if (records.len() as u64) < query.count {
                return Ok(ListPage { total_results: records.len() as u64, records });
            }
        }
        // Otherwise one snapshot for the count and the page, so that they agree.
        let mut tx = self.snapshot().await?;
        let mut count = Sql::new("SELECT COUNT(*) FROM scim_resources r WHERE r.kind = ");
        count.push_bind(kind.name());
        push_scope(&mut count, scope);
        if let Some(f) = &query.filter {
            count.push(" AND ");
            FilterSql::new(tx.dialect(), kind).push(&mut count, f)?;
        }
        let total = tx.int(&count).await?;
        let records = if query.count > 0 && offset < total as u64 {
            list_page(&mut tx, scope, kind, query, offset).await?
        } else {
            Vec::new()
        };
        tx.commit().await?;
        Ok(ListPage { total_results: total as u64, records })
    }

    pub(crate) async fn group_members(&self, group_id: &str) -> StoreResult<Vec<StoredMember>> {
        let sql = Sql::with(
            "SELECT x.id, x.kind, x.display FROM scim_resources g \
             JOIN scim_members m ON m.group_seq = g.seq \
             JOIN scim_resources x ON x.seq = m.member_seq \
             WHERE g.id = $1 ORDER BY m.member_seq",
            [group_id.into()],
        );
        let rows = self.read().await?.fetch_all(&sql).await?;
        rows.iter()
            .map(|row| {
                Ok(StoredMember {
                    id: row.text("id")?,
                    kind: member_kind(kind_of(&row.text("kind")?)?),
                    display: row.opt_text("display")?,
                    direct: true,
                })
            })
            .collect()
    }

    pub(crate) async fn groups_of(&self, member_id: &str) -> StoreResult<Vec<StoredMember>> {
        let mut each = self.groups_of_each(&[member_id.to_string()]).await?;
        Ok(each.remove(member_id).unwrap_or_default())
    }

    /// The groups of each of `member_ids` (direct and inherited), in one query: a page of
    /// users is rendered with one round trip for their groups, not one per user.
    pub(crate) async fn groups_of_each(
        &self,
        member_ids: &[String],
    ) -> StoreResult<HashMap<String, Vec<StoredMember>>> {
        let mut each: HashMap<String, Vec<StoredMember>> = HashMap::new();
        if member_ids.is_empty() {
            return Ok(each);
        }
        let mut conn = self.read().await?;
        let d = conn.dialect();
        // Depth is capped so that a membership cycle cannot recurse for ever.
        let mut sql = Sql::new(
            "WITH RECURSIVE up(origin, g, depth) AS ( \
               SELECT x.id, m.group_seq, CAST(1 AS BIGINT) FROM scim_members m \
               JOIN scim_resources x ON x.seq = m.member_seq WHERE x.id IN (",
        );
        let mut ids = sql.separated(", ");
        for id in member_ids {
            ids.push_bind(id.as_str());
        }
        sql.push(format!(
            ") UNION SELECT up.origin, m.group_seq, up.depth + 1 FROM up{} WHERE up.depth < 32) \
             SELECT up.origin, r.id, r.display, MIN(up.depth) AS depth FROM up{} \
             GROUP BY up.origin, r.seq, r.id, r.display ORDER BY up.origin, r.display, r.id",
            d.probe("scim_members", "group_seq, member_seq", "member_seq", "up.g", "m"),
            d.probe("scim_resources", "seq, id, display", "seq", "up.g", "r"),
        ));
        for row in conn.fetch_all(&sql).await? {
            each.entry(row.text("origin")?).or_default().push(StoredMember {
                id: row.text("id")?,
                kind: MemberKind::Group,
                display: row.opt_text("display")?,
                direct: row.int("depth")? == 1,
            });
        }
        Ok(each)
    }

    pub(crate) async fn scim_count(&self, scope: Scope, kind: ResourceKind) -> StoreResult<u64> {
        let mut sql = Sql::with("SELECT COUNT(*) FROM scim_resources r WHERE r.kind = $1", [kind.name().into()]);
        push_scope(&mut sql, scope);
        Ok(self.read().await?.int(&sql).await? as u64)
    }
}

/// The records of a list's page: `query.count` of its matches after the first `offset`.
async fn list_page(
    conn: &mut Conn,
    scope: Scope,
    kind: ResourceKind,
    query: &ListQuery,
    offset: u64,
) -> StoreResult<Vec<ScimRecord>> {
    let mut sql = Sql::new(format!("SELECT {RECORD_COLUMNS} FROM scim_resources r WHERE r.kind = "));
    sql.push_bind(kind.name());
    push_scope(&mut sql, scope);
    if let Some(f) = &query.filter {
        sql.push(" AND ");
        FilterSql::new(conn.dialect(), kind).push(&mut sql, f)?;
    }
    push_order(&mut sql, kind, query.sort_by.as_ref(), query.sort_order);
    sql.push(" LIMIT ");
    sql.push_bind(query.count.min(i64::MAX as u64) as i64);
    sql.push(" OFFSET ");
    sql.push_bind(offset.min(i64::MAX as u64) as i64);
    conn.fetch_all(&sql).await?.iter().map(rows::record).collect()
}

pub(crate) async fn replace_in_tx(
    tx: &mut Conn,
    conn: ConnectionId,
    kind: ResourceKind,
    id: &str,
    input: &ResourceInput,
    if_match: &Precondition,
    actor: &Actor,
) -> StoreResult<Written> {
    let loaded = load_for_write(tx, conn, kind, id).await?;
    check_precondition(&loaded.record, if_match)?;
    // Members left out of a PUT are kept: emptying a large group because a client
    // omitted the attribute would be far worse than keeping it.
    if let (ResourceKind::Group, Some(members)) = (kind, &input.members) {
        let seqs = resolve_members(tx, conn, loaded.seq, members).await?;
        replace_members(tx, loaded.seq, &seqs).await?;
    }
    let record = update_resource(tx, conn, &loaded, &input.doc, true).await?;
    relink_after_change(tx, conn, kind, Some(&loaded.record.doc), Some(&record.doc), actor).await?;
    record_offboarding(tx, kind, loaded.seq, &record.id, Some(&loaded.record.doc), Some(&record.doc)).await?;
    follow_change(tx, conn, kind, &record.id, Some(&loaded.record.doc), Some(&record.doc)).await?;
    Ok(Written { record, reactivated: false })
}

/// Adds members to a group of the connection, leaving its version as it is: a directory
/// sync fills the groups it has just created.
pub(crate) async fn add_members_in_tx(
    tx: &mut Conn,
    conn: ConnectionId,
    group_id: &str,
    refs: &[MemberRef],
) -> StoreResult<u64> {
    let loaded = load_for_write(tx, conn, ResourceKind::Group, group_id).await?;
    let seqs = resolve_members(tx, conn, loaded.seq, refs).await?;
    add_members(tx, loaded.seq, &seqs).await
}

pub(crate) async fn patch_in_tx(
    tx: &mut Conn,
    conn: ConnectionId,
    kind: ResourceKind,
    id: &str,
    patch: &PatchRequest,
    if_match: &Precondition,
    actor: &Actor,
) -> StoreResult<Written> {
    let loaded = load_for_write(tx, conn, kind, id).await?;
    check_precondition(&loaded.record, if_match)?;
    let mut doc = loaded.record.doc.clone();
    let outcome = apply_patch(kind, &mut doc, patch)?;
    let mut members_changed = 0;
    for change in &coalesce(outcome.member_changes) {
        members_changed += match change {
            MemberChange::Add(refs) => {
                let seqs = resolve_members(tx, conn, loaded.seq, refs).await?;
                add_members(tx, loaded.seq, &seqs).await?
            }
            MemberChange::Remove(ids) => remove_members(tx, loaded.seq, ids).await?,
            MemberChange::RemoveAll => replace_members(tx, loaded.seq, &[]).await?,
            MemberChange::Replace(refs) => {
                let seqs = resolve_members(tx, conn, loaded.seq, refs).await?;
                replace_members(tx, loaded.seq, &seqs).await?
            }
        };
    }
    let record = if outcome.doc_changed || members_changed > 0 {
        let record = update_resource(tx, conn, &loaded, &doc, outcome.doc_changed).await?;
        if outcome.doc_changed {
            relink_after_change(tx, conn, kind, Some(&loaded.record.doc), Some(&record.doc), actor).await?;
            record_offboarding(tx, kind, loaded.seq, &record.id, Some(&loaded.record.doc), Some(&record.doc)).await?;
            follow_change(tx, conn, kind, &record.id, Some(&loaded.record.doc), Some(&record.doc)).await?;
        }
        record
    } else {
        // Nothing changed (a repeated member add, say): no new version.
        loaded.record
    };
    Ok(Written { record, reactivated: false })
}

/// The membership changes with each run of adds or of removes made one: Okta removes
/// each member in an operation of its own, and 100 statements would cost 100 round trips.
fn coalesce(changes: Vec<MemberChange>) -> Vec<MemberChange> {
    let mut merged: Vec<MemberChange> = Vec::with_capacity(changes.len());
    for change in changes {
        match (merged.last_mut(), change) {
            (Some(MemberChange::Add(refs)), MemberChange::Add(more)) => refs.extend(more),
            (Some(MemberChange::Remove(ids)), MemberChange::Remove(more)) => ids.extend(more),
            (_, change) => merged.push(change),
        }
    }
    merged
}

pub(crate) async fn delete_in_tx(
    tx: &mut Conn,
    conn: ConnectionId,
    kind: ResourceKind,
    id: &str,
    if_match: &Precondition,
    actor: &Actor,
) -> StoreResult<()> {
    let loaded = load_for_write(tx, conn, kind, id).await?;
    check_precondition(&loaded.record, if_match)?;
    // The event lists the hosts and groups the user had: written before they go.
    record_offboarding(tx, kind, loaded.seq, &loaded.record.id, Some(&loaded.record.doc), None).await?;
    if kind == ResourceKind::User {
        unlink_deleted_user(tx, loaded.seq, actor).await?;
    }
    // Index rows and memberships (both ways) go with it: ON DELETE CASCADE.
    tx.execute(&Sql::with("DELETE FROM scim_resources WHERE seq = $1", [loaded.seq.into()])).await?;
    relink_after_change(tx, conn, kind, Some(&loaded.record.doc), None, actor).await?;
    follow_change(tx, conn, kind, &loaded.record.id, Some(&loaded.record.doc), None).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(ids: &[&str]) -> MemberChange {
        MemberChange::Add(ids.iter().map(|id| MemberRef { value: id.to_string(), kind: None }).collect())
    }

    fn remove(ids: &[&str]) -> MemberChange {
        MemberChange::Remove(ids.iter().map(|id| id.to_string()).collect())
    }

    #[test]
    fn runs_of_adds_or_removes_become_one_change_and_the_order_is_kept() {
        let changes = vec![
            remove(&["u1"]),
            remove(&["u2"]),
            add(&["u3"]),
            add(&["u4", "u5"]),
            remove(&["u3"]),
            MemberChange::RemoveAll,
            add(&["u6"]),
        ];
        assert_eq!(
            coalesce(changes),
            vec![
                remove(&["u1", "u2"]),
                add(&["u3", "u4", "u5"]),
                remove(&["u3"]),
                MemberChange::RemoveAll,
                add(&["u6"])
            ]
        );
    }
}
