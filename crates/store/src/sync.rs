//! Directory syncs (Google Workspace): the connections' settings and keys, and their runs.
//! A run holds its connection's lease (`sync_runs.lease_until`, one running run per
//! connection by a unique index) and applies its plan in one transaction, through the
//! same in-transaction writes as SCIM requests: history, host links and offboarding
//! events follow exactly as they would for SCIM.

use std::collections::HashMap;
use std::time::Duration;

use custodian_domain::connections::{ConnectionId, ConnectionKind};
use custodian_domain::hosts::Actor;
use custodian_domain::store::SyncRequest;
use custodian_domain::sync::{
    DocDigest, GoogleWorkspaceChange, GoogleWorkspaceSettings, NewGoogleWorkspace, PlannedMember, RunCounts, RunStart,
    RunStatus, SecretKeyFile, SyncPlan, SyncRun, SyncSchedule, SyncedDirectory, SyncedResource,
};
use custodian_domain::{ScimRequestEntry, StoreError, StoreResult};
use custodian_scim::resource::{MemberKind, MemberRef, ResourceInput};
use custodian_scim::schema::ResourceKind;
use serde_json::json;

use crate::common::parse_doc;
use crate::connections::{lock_connection_of_kind, push_ids};
use crate::db::{Conn, Db, Row, Sql};
use crate::linking::record_activity;
use crate::scim::{add_members_in_tx, create_in_tx, delete_in_tx, replace_in_tx};
use crate::time;

const RUN_COLUMNS: &str = "id, connection_id, started_at, finished_at, status, users_seen, groups_seen, created, \
     updated, deleted, error, allow_deletions, deletions_to_confirm, lease_until";

const ABANDONED: &str = "abandoned: the instance performing this run stopped before it finished; nothing of it was \
     applied, and the next run starts over";

fn run_of(row: &Row) -> StoreResult<SyncRun> {
    let status = row.text("status")?;
    let count = |c: &str| row.int(c).map(|n| n.max(0) as u64);
    Ok(SyncRun {
        id: row.int("id")?,
        connection: ConnectionId(row.int("connection_id")?),
        started_at: time::from_text(&row.text("started_at")?)?,
        finished_at: row.opt_text("finished_at")?.as_deref().map(time::from_text).transpose()?,
        status: RunStatus::parse(&status)
            .ok_or_else(|| StoreError::Database(format!("unknown run status '{status}'")))?,
        counts: RunCounts {
            users_seen: count("users_seen")?,
            groups_seen: count("groups_seen")?,
            created: count("created")?,
            updated: count("updated")?,
            deleted: count("deleted")?,
        },
        error: row.opt_text("error")?,
        allow_deletions: row.opt_int("allow_deletions")?.map(|n| n.max(0) as u64),
        deletions_to_confirm: row.opt_int("deletions_to_confirm")?.map(|n| n.max(0) as u64),
    })
}

/// What the scheduler decides on, per Google Workspace connection (`g`).
const SCHEDULE_SELECT: &str = "SELECT g.connection_id, g.sync_interval_seconds, g.requested, \
     (SELECT MAX(r.started_at) FROM sync_runs r WHERE r.connection_id = g.connection_id) AS last_started_at, \
     (SELECT r.lease_until FROM sync_runs r WHERE r.connection_id = g.connection_id AND r.status = 'running') \
     AS running_until FROM google_workspace_connections g";

fn schedule_of(row: &Row) -> StoreResult<SyncSchedule> {
    Ok(SyncSchedule {
        connection: ConnectionId(row.int("connection_id")?),
        sync_interval_seconds: row.int("sync_interval_seconds")?.max(1) as u64,
        last_started_at: row.opt_text("last_started_at")?.as_deref().map(time::from_text).transpose()?,
        running_until: row.opt_text("running_until")?.as_deref().map(time::from_text).transpose()?,
        requested: row.int("requested")? != 0,
    })
}

/// A count as the database stores it (BIGINT).
fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn lease_end(lease: Duration) -> String {
    time::to_text(time::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60)))
}

/// The settings of the Google Workspace connections among `ids`, by connection id.
pub(crate) async fn google_settings_of(
    conn: &mut Conn,
    ids: &[i64],
) -> StoreResult<HashMap<i64, GoogleWorkspaceSettings>> {
    let mut sql = Sql::new(
        "SELECT connection_id, client_email, private_key_id, admin_email, customer_id, org_unit_paths, \
         sync_interval_seconds, api_base_url FROM google_workspace_connections WHERE connection_id IN ",
    );
    push_ids(&mut sql, ids);
    let mut out = HashMap::new();
    for row in conn.fetch_all(&sql).await? {
        let paths = parse_doc(&row.text("org_unit_paths")?)?;
        out.insert(
            row.int("connection_id")?,
            GoogleWorkspaceSettings {
                client_email: row.text("client_email")?,
                private_key_id: row.text("private_key_id")?,
                admin_email: row.text("admin_email")?,
                customer_id: row.text("customer_id")?,
                org_unit_paths: paths
                    .as_array()
                    .map(|a| a.iter().filter_map(|p| p.as_str().map(str::to_string)).collect())
                    .unwrap_or_default(),
                sync_interval_seconds: row.int("sync_interval_seconds")?.max(1) as u64,
                api_base_url: row.text("api_base_url")?,
            },
        );
    }
    Ok(out)
}

/// The last finished run of each directory sync among `ids`, in the shape of a request
/// history entry: a connection's `last_request` is its last run.
pub(crate) async fn last_runs_as_requests(conn: &mut Conn, ids: &[i64]) -> StoreResult<Vec<(i64, ScimRequestEntry)>> {
    let mut sql = Sql::new(format!(
        "SELECT {RUN_COLUMNS} FROM sync_runs WHERE id IN (SELECT MAX(id) FROM sync_runs \
         WHERE status <> 'running' AND connection_id IN "
    ));
    push_ids(&mut sql, ids);
    sql.push(" GROUP BY connection_id)");
    let mut out = Vec::new();
    for row in conn.fetch_all(&sql).await? {
        let run = run_of(&row)?;
        let at = run.finished_at.unwrap_or(run.started_at);
        let c = run.counts;
        out.push((
            run.connection.0,
            ScimRequestEntry {
                connection: Some(run.connection),
                requested_at: at,
                method: "SYNC".into(),
                path: format!("directory sync run {}", run.id),
                status: if run.status == RunStatus::Success { 200 } else { 502 },
                detail: Some(run.error.clone().unwrap_or_else(|| {
                    format!(
                        "{} users and {} groups read; {} created, {} updated, {} deleted",
                        c.users_seen, c.groups_seen, c.created, c.updated, c.deleted
                    )
                })),
                user_agent: None,
                duration_ms: (at - run.started_at).num_milliseconds() as f64,
            },
        ));
    }
    Ok(out)
}

pub(crate) async fn insert_google_settings(
    tx: &mut Conn,
    id: ConnectionId,
    google: &NewGoogleWorkspace,
) -> StoreResult<()> {
    let s = &google.settings;
    tx.execute(&Sql::with(
        "INSERT INTO google_workspace_connections (connection_id, key_file, client_email, private_key_id, \
         admin_email, customer_id, org_unit_paths, sync_interval_seconds, api_base_url) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        [
            id.0.into(),
            google.key_file.0.as_str().into(),
            s.client_email.as_str().into(),
            s.private_key_id.as_str().into(),
            s.admin_email.as_str().into(),
            s.customer_id.as_str().into(),
            json!(s.org_unit_paths).to_string().into(),
            count(s.sync_interval_seconds).into(),
            s.api_base_url.as_str().into(),
        ],
    ))
    .await
    .map(drop)
}

/// Replaces a Google Workspace connection's settings (and its key, when a new one is
/// given); Conflict for a connection of another kind.
pub(crate) async fn update_google_settings(
    tx: &mut Conn,
    id: ConnectionId,
    change: &GoogleWorkspaceChange,
) -> StoreResult<()> {
    let s = &change.settings;
    let mut sql = Sql::with(
        "UPDATE google_workspace_connections SET client_email = $2, private_key_id = $3, admin_email = $4, \
         customer_id = $5, org_unit_paths = $6, sync_interval_seconds = $7, api_base_url = $8",
        [
            id.0.into(),
            s.client_email.as_str().into(),
            s.private_key_id.as_str().into(),
            s.admin_email.as_str().into(),
            s.customer_id.as_str().into(),
            json!(s.org_unit_paths).to_string().into(),
            count(s.sync_interval_seconds).into(),
            s.api_base_url.as_str().into(),
        ],
    );
    if let Some(key) = &change.key_file {
        sql.push(", key_file = ");
        sql.push_bind(key.0.as_str());
    }
    sql.push(" WHERE connection_id = $1");
    if tx.execute(&sql).await? == 0 {
        return Err(StoreError::Conflict("only a google_workspace connection has google_workspace settings".into()));
    }
    Ok(())
}

async fn load_run(conn: &mut Conn, run_id: i64) -> StoreResult<SyncRun> {
    let row = conn
        .fetch_optional(&Sql::with(format!("SELECT {RUN_COLUMNS} FROM sync_runs WHERE id = $1"), [run_id.into()]))
        .await?
        .ok_or(StoreError::NotFound)?;
    run_of(&row)
}

/// A group's members as the store names them: a plan's new resources by the ids they
/// were created with.
fn member_refs(members: &[PlannedMember], created: &HashMap<(bool, &str), String>) -> StoreResult<Vec<MemberRef>> {
    members
        .iter()
        .map(|m| {
            let (value, kind) = match m {
                PlannedMember::Existing(id) => (id.clone(), None),
                PlannedMember::NewUser(ext) => (created_id(created, false, ext)?, Some(MemberKind::User)),
                PlannedMember::NewGroup(ext) => (created_id(created, true, ext)?, Some(MemberKind::Group)),
            };
            Ok(MemberRef { value, kind })
        })
        .collect()
}

fn created_id(created: &HashMap<(bool, &str), String>, group: bool, ext: &str) -> StoreResult<String> {
    created
        .get(&(group, ext))
        .cloned()
        .ok_or_else(|| StoreError::Database("a sync plan names a member it does not create".into()))
}

impl Db {
    pub(crate) async fn google_workspace_key(&self, id: ConnectionId) -> StoreResult<SecretKeyFile> {
        let row = self
            .read()
            .await?
            .fetch_optional(&Sql::with(
                "SELECT key_file FROM google_workspace_connections WHERE connection_id = $1",
                [id.0.into()],
            ))
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok(SecretKeyFile(row.text("key_file")?))
    }

    pub(crate) async fn sync_schedules(&self) -> StoreResult<Vec<SyncSchedule>> {
        let sql = Sql::new(format!("{SCHEDULE_SELECT} ORDER BY g.connection_id"));
        self.read().await?.fetch_all(&sql).await?.iter().map(schedule_of).collect()
    }

    pub(crate) async fn start_sync_run(
        &self,
        id: ConnectionId,
        lease: Duration,
        request: Option<SyncRequest>,
    ) -> StoreResult<RunStart> {
        let mut tx = self.write().await?;
        // The connection's row is the lock every start takes first: two instances starting
        // a run at once start one.
        lock_connection_of_kind(
            &mut tx,
            id,
            ConnectionKind::GoogleWorkspace,
            "has no directory sync: its IdP sends its changes over SCIM",
        )
        .await?;
        let now = time::now();
        let running = tx
            .fetch_optional(&Sql::with(
                format!("SELECT {RUN_COLUMNS} FROM sync_runs WHERE connection_id = $1 AND status = 'running'"),
                [id.0.into()],
            ))
            .await?;
        if let Some(row) = running {
            let run = run_of(&row)?;
            let until = row.opt_text("lease_until")?.as_deref().map(time::from_text).transpose()?;
            // A run whose lease passed while it applied its plan holds the lock of its row
            // (PostgreSQL): this waits for it, and finds it finished rather than stopped.
            if until.is_some_and(|u| u > now) {
                if let Some(request) = request {
                    tx.execute(&Sql::with(
                        "UPDATE google_workspace_connections SET requested = 1, requested_allow_deletions = $2 \
                         WHERE connection_id = $1",
                        [id.0.into(), request.allow_deletions.map(count).into()],
                    ))
                    .await?;
                }
                tx.commit().await?;
                return Ok(RunStart::Busy(run));
            }
            let abandoned = tx
                .execute(&Sql::with(
                    "UPDATE sync_runs SET status = 'error', finished_at = $2, lease_until = NULL, error = $3 \
                     WHERE id = $1 AND status = 'running'",
                    [run.id.into(), time::to_text(now).into(), ABANDONED.into()],
                ))
                .await?;
            if abandoned == 0 && request.is_none() {
                tx.commit().await?;
                return Ok(RunStart::NotDue);
            }
        } else if request.is_none() {
            // The scheduler decided from a read outside this transaction: another
            // instance may have run the connection since.
            let schedule = tx
                .fetch_one(&Sql::with(format!("{SCHEDULE_SELECT} WHERE g.connection_id = $1"), [id.0.into()]))
                .await?;
            if !schedule_of(&schedule)?.is_due(now) {
                tx.commit().await?;
                return Ok(RunStart::NotDue);
            }
        }
        let asked = tx
            .fetch_one(&Sql::with(
                "SELECT requested, requested_allow_deletions FROM google_workspace_connections WHERE connection_id = $1",
                [id.0.into()],
            ))
            .await?;
        let earlier = if asked.int("requested")? != 0 { asked.opt_int("requested_allow_deletions")? } else { None };
        let allow = request.and_then(|r| r.allow_deletions).map(count).or(earlier);
        let run_id = tx
            .int(&Sql::with(
                "INSERT INTO sync_runs (connection_id, started_at, status, lease_until, allow_deletions) \
                 VALUES ($1, $2, 'running', $3, $4) RETURNING id",
                [id.0.into(), time::to_text(now).into(), lease_end(lease).into(), allow.into()],
            ))
            .await?;
        tx.execute(&Sql::with(
            "UPDATE google_workspace_connections SET requested = 0, requested_allow_deletions = NULL \
             WHERE connection_id = $1",
            [id.0.into()],
        ))
        .await?;
        let run = load_run(&mut tx, run_id).await?;
        tx.commit().await?;
        Ok(RunStart::Started(run))
    }

    pub(crate) async fn renew_sync_lease(&self, run_id: i64, lease: Duration) -> StoreResult<bool> {
        let renewed = self
            .write_one(Sql::with(
                "UPDATE sync_runs SET lease_until = $1 WHERE id = $2 AND status = 'running'",
                [lease_end(lease).into(), run_id.into()],
            ))
            .await?;
        Ok(renewed == 1)
    }

    pub(crate) async fn synced_directory(&self, id: ConnectionId) -> StoreResult<SyncedDirectory> {
        let mut tx = self.snapshot().await?;
        let mut members: HashMap<String, Vec<String>> = HashMap::new();
        for row in tx
            .fetch_all(&Sql::with(
                "SELECT g.id AS group_id, x.id AS member_id FROM scim_resources g \
                 JOIN scim_members m ON m.group_seq = g.seq JOIN scim_resources x ON x.seq = m.member_seq \
                 WHERE g.connection_id = $1 AND g.kind = 'Group'",
                [id.0.into()],
            ))
            .await?
        {
            members.entry(row.text("group_id")?).or_default().push(row.text("member_id")?);
        }
        let mut out = SyncedDirectory::default();
        for row in tx
            .fetch_all(&Sql::with(
                "SELECT id, kind, doc FROM scim_resources WHERE connection_id = $1 ORDER BY seq",
                [id.0.into()],
            ))
            .await?
        {
            let text = row.text("doc")?;
            // Parsed for its externalId only: a run keeps the digest, not the document.
            let external_id = parse_doc(&text)?.get("externalId").and_then(|v| v.as_str()).map(str::to_string);
            let digest = DocDigest::of_text(&text);
            let mut resource = SyncedResource { id: row.text("id")?, external_id, digest, members: Vec::new() };
            if row.text("kind")? == ResourceKind::Group.name() {
                resource.members = members.remove(&resource.id).unwrap_or_default();
                resource.members.sort_unstable();
                out.groups.push(resource);
            } else {
                out.users.push(resource);
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    pub(crate) async fn apply_sync_run(
        &self,
        run_id: i64,
        id: ConnectionId,
        plan: &SyncPlan,
        counts: RunCounts,
        actor: &Actor,
    ) -> StoreResult<SyncRun> {
        let mut tx = self.write().await?;
        // First, so that on PostgreSQL the run's row stays locked until the commit: an
        // instance taking over an expired lease waits, then finds the run finished.
        let finished = tx
            .execute(&Sql::with(
                "UPDATE sync_runs SET status = 'success', finished_at = $3, lease_until = NULL, error = NULL, \
                 users_seen = $4, groups_seen = $5, created = $6, updated = $7, deleted = $8 \
                 WHERE id = $1 AND connection_id = $2 AND status = 'running'",
                [
                    run_id.into(),
                    id.0.into(),
                    time::to_text(time::now()).into(),
                    count(counts.users_seen).into(),
                    count(counts.groups_seen).into(),
                    count(counts.created).into(),
                    count(counts.updated).into(),
                    count(counts.deleted).into(),
                ],
            ))
            .await?;
        if finished == 0 {
            return Err(StoreError::Conflict(
                "the run lost its lease (it took longer than the lease and another instance took over); \
                 nothing of it was applied"
                    .into(),
            ));
        }
        // Deletions first, so that a name they free can be taken by a creation.
        for user in &plan.delete_users {
            delete_in_tx(&mut tx, id, ResourceKind::User, user, &None, actor).await?;
        }
        for group in &plan.delete_groups {
            delete_in_tx(&mut tx, id, ResourceKind::Group, group, &None, actor).await?;
        }
        for (user, input) in &plan.replace_users {
            replace_in_tx(&mut tx, id, ResourceKind::User, user, input, &None, actor).await?;
        }
        let mut created: HashMap<(bool, &str), String> = HashMap::new();
        for (ext, input) in &plan.create_users {
            let written = create_in_tx(&mut tx, id, ResourceKind::User, input.clone(), actor).await?;
            created.insert((false, ext.as_str()), written.record.id);
        }
        // New groups first without members, so that they can be members of each other.
        for (ext, group) in &plan.create_groups {
            let input = ResourceInput { members: None, ..group.input.clone() };
            let written = create_in_tx(&mut tx, id, ResourceKind::Group, input, actor).await?;
            created.insert((true, ext.as_str()), written.record.id);
        }
        for (ext, group) in &plan.create_groups {
            if !group.members.is_empty() {
                let group_id = created_id(&created, true, ext)?;
                add_members_in_tx(&mut tx, id, &group_id, &member_refs(&group.members, &created)?).await?;
            }
        }
        for (group_id, group) in &plan.replace_groups {
            let input = ResourceInput { members: Some(member_refs(&group.members, &created)?), ..group.input.clone() };
            replace_in_tx(&mut tx, id, ResourceKind::Group, group_id, &input, &None, actor).await?;
        }
        // The run ends when its changes are in, not when they began.
        tx.execute(&Sql::with(
            "UPDATE sync_runs SET finished_at = $2 WHERE id = $1",
            [run_id.into(), time::to_text(time::now()).into()],
        ))
        .await?;
        if !plan.is_empty() {
            record_activity(
                &mut tx,
                actor,
                "synced_directory",
                json!({"connection_id": id.0, "run_id": run_id, "created": counts.created,
                       "updated": counts.updated, "deleted": counts.deleted}),
            )
            .await?;
        }
        let run = load_run(&mut tx, run_id).await?;
        tx.commit().await?;
        Ok(run)
    }

    pub(crate) async fn fail_sync_run(
        &self,
        run_id: i64,
        counts: RunCounts,
        error: &str,
        deletions_to_confirm: Option<u64>,
    ) -> StoreResult<SyncRun> {
        let mut tx = self.write().await?;
        tx.execute(&Sql::with(
            "UPDATE sync_runs SET status = 'error', finished_at = $2, lease_until = NULL, error = $3, \
             users_seen = $4, groups_seen = $5, created = 0, updated = 0, deleted = 0, deletions_to_confirm = $6 \
             WHERE id = $1 AND status = 'running'",
            [
                run_id.into(),
                time::to_text(time::now()).into(),
                error.into(),
                count(counts.users_seen).into(),
                count(counts.groups_seen).into(),
                deletions_to_confirm.map(count).into(),
            ],
        ))
        .await?;
        let run = load_run(&mut tx, run_id).await?;
        tx.commit().await?;
        Ok(run)
    }

    pub(crate) async fn sync_runs(&self, id: ConnectionId, limit: u32) -> StoreResult<Vec<SyncRun>> {
        let sql = Sql::with(
            format!("SELECT {RUN_COLUMNS} FROM sync_runs WHERE connection_id = $1 ORDER BY id DESC LIMIT $2"),
            [id.0.into(), i64::from(limit).into()],
        );
        self.read().await?.fetch_all(&sql).await?.iter().map(run_of).collect()
    }
}
