//! The SQLite store: the embedded default. One writer connection (SQLite has one writer
//! anyway; this avoids lock upgrades between our own connections) and a pool of readers
//! that WAL lets run beside it. Every write is one `BEGIN IMMEDIATE` transaction.

mod access;
pub mod backup;
mod group_commit;
mod host_batch;
mod hosts;
mod labels;
mod linking;
mod scim;
mod webhooks;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use custodian_domain::StoreError;

use crate::schema::{self, MigrateMode};
use sqlx::migrate::{Migrate, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
    creates: group_commit::Creates,
    db: crate::db::Db,
    /// A shared lock on `<db>.in-use-lock` for as long as the store is open, so that
    /// `custodian restore` (which needs it exclusive) never swaps the file under us.
    _in_use: Option<std::fs::File>,
}

pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

impl SqliteStore {
    /// Opens (creating the folder and file when missing) and, in `Apply` mode, migrates
    /// the database; in `Verify` mode, checks that its schema is this binary's.
    pub async fn open(url: &str, mode: MigrateMode) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Database(format!("invalid SQLite URL '{url}': {e}")))?;
        if let Some(parent) = options.get_filename().parent()
            && !parent.as_os_str().is_empty()
            && !Path::new(parent).exists()
        {
            {
                std::fs::create_dir_all(parent).map_err(|e| {
                    StoreError::Database(format!("cannot create the database folder {}: {e}", parent.display()))
                })?;
            }
        }
        let in_use = hold_in_use_lock(options.get_filename()).await?;
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: an acknowledged write survives a power loss, not only a crash.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // Keeps the planner's statistics fresh as tables grow.
            .optimize_on_close(true, None)
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-65536");
        // No ping before each acquire: a local file cannot drop a connection, and the
        // ping is a round trip to SQLite's worker thread on every request.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await
            .map_err(db_err)?;
        // sqlx takes no lock on SQLite: processes starting together (a server and a
        // `custodian migrate`, say) take turns through a lock file beside the database.
        let lock_path = format!("{}.migrate-lock", options.get_filename().display());
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StoreError::Database(format!("cannot open {lock_path}: {e}")))?;
        let lock = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
            .await
            .map_err(|e| StoreError::Database(format!("waiting for {lock_path}: {e}")))?
            .map_err(|e| StoreError::Database(format!("cannot lock {lock_path}: {e}")))?;
        let applied = applied_migrations(&write).await?;
        schema::check(&MIGRATOR, &applied, mode == MigrateMode::Verify)?;
        if mode == MigrateMode::Apply {
            MIGRATOR.run(&write).await.map_err(|e| StoreError::Database(format!("migration failed: {e}")))?;
        }
        drop(lock);
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await
            .map_err(db_err)?;
        let creates = group_commit::Creates::start(write.clone());
        let db = crate::db::Db::Sqlite { read: read.clone(), write: write.clone() };
        Ok(SqliteStore { read, write, creates, db, _in_use: in_use })
    }

    /// Closes both pools, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }
}

/// Takes the shared in-use lock of a database file, waiting while a restore holds it
/// exclusively. None for an in-memory database.
async fn hold_in_use_lock(db: &Path) -> Result<Option<std::fs::File>, StoreError> {
    if db.as_os_str().is_empty() || db.as_os_str() == ":memory:" {
        return Ok(None);
    }
    let lock_path = backup::in_use_lock_path(db);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| StoreError::Database(format!("cannot open {}: {e}", lock_path.display())))?;
    match lock.try_lock_shared() {
        Ok(()) => return Ok(Some(lock)),
        Err(std::fs::TryLockError::WouldBlock) => {
            tracing::warn!(lock = %lock_path.display(), "the database is being restored; waiting until it is done");
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(StoreError::Database(format!("cannot lock {}: {e}", lock_path.display())));
        }
    }
    let shown = lock_path.display().to_string();
    tokio::task::spawn_blocking(move || lock.lock_shared().map(|()| lock))
        .await
        .map_err(|e| StoreError::Database(format!("waiting for {shown}: {e}")))?
        .map(Some)
        .map_err(|e| StoreError::Database(format!("cannot lock {shown}: {e}")))
}

/// The migrations applied so far; none when the bookkeeping table does not exist yet.
async fn applied_migrations(pool: &SqlitePool) -> StoreResult<Vec<sqlx::migrate::AppliedMigration>> {
    let mut conn = pool.acquire().await.map_err(db_err)?;
    let exists: Option<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'")
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
    if exists.is_none() {
        return Ok(Vec::new());
    }
    conn.list_applied_migrations().await.map_err(|e| StoreError::Database(format!("reading the schema version: {e}")))
}

use custodian_domain::hosts::{
    Activity, Actor, DeviceMapping, Host, HostInput, HostQuery, OwnershipEntry, UpsertOutcome,
};
use custodian_domain::web::{NewPasswordUser, NewWebSession, PasswordUser, WebSession};
use custodian_domain::{
    ApiUser, ListPage, ListQuery, NewApiUser, PoolStats, Precondition, ScimRecord, ScimRequestEntry, StoreResult,
    StoredMember, TokenDigest, Written,
};
use custodian_scim::patch::PatchRequest;
use custodian_scim::resource::ResourceInput;
use custodian_scim::schema::ResourceKind;

#[async_trait::async_trait]
impl custodian_domain::Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.read).await.map_err(db_err)?;
        Ok(())
    }
    fn pool_stats(&self) -> PoolStats {
        // The writer and the readers together.
        let open = self.read.size() + self.write.size();
        let idle = (self.read.num_idle() + self.write.num_idle()) as u32;
        let max = self.read.options().get_max_connections() + self.write.options().get_max_connections();
        PoolStats { open, idle, max }
    }
    fn is_shared(&self) -> bool {
        false
    }
    async fn create_api_user(&self, user: NewApiUser) -> StoreResult<ApiUser> {
        self.create_api_user_impl(user).await
    }
    async fn list_api_users(&self) -> StoreResult<Vec<ApiUser>> {
        self.list_api_users_impl().await
    }
    async fn delete_api_user(&self, id_or_name: &str) -> StoreResult<ApiUser> {
        self.delete_api_user_impl(id_or_name).await
    }
    async fn add_token(&self, user_id: i64, token: TokenDigest) -> StoreResult<()> {
        self.add_token_impl(user_id, token).await
    }
    async fn authenticate_token(&self, token: TokenDigest) -> StoreResult<Option<ApiUser>> {
        self.authenticate_token_impl(token).await
    }
    async fn scim_create(&self, kind: ResourceKind, input: ResourceInput, actor: &Actor) -> StoreResult<Written> {
        self.scim_create_impl(kind, input, actor).await
    }
    async fn scim_get(&self, kind: ResourceKind, id: &str) -> StoreResult<ScimRecord> {
        self.scim_get_impl(kind, id).await
    }
    async fn scim_list(&self, kind: ResourceKind, query: &ListQuery) -> StoreResult<ListPage> {
        self.scim_list_impl(kind, query).await
    }
    async fn scim_replace(
        &self,
        kind: ResourceKind,
        id: &str,
        input: ResourceInput,
        if_match: Precondition,
        actor: &Actor,
    ) -> StoreResult<Written> {
        self.scim_replace_impl(kind, id, input, if_match, actor).await
    }
    async fn scim_patch(
        &self,
        kind: ResourceKind,
        id: &str,
        patch: &PatchRequest,
        if_match: Precondition,
        actor: &Actor,
    ) -> StoreResult<Written> {
        self.scim_patch_impl(kind, id, patch, if_match, actor).await
    }
    async fn scim_delete(
        &self,
        kind: ResourceKind,
        id: &str,
        if_match: Precondition,
        actor: &Actor,
    ) -> StoreResult<()> {
        self.scim_delete_impl(kind, id, if_match, actor).await
    }
    async fn group_members(&self, group_id: &str) -> StoreResult<Vec<StoredMember>> {
        self.group_members_impl(group_id).await
    }
    async fn groups_of(&self, member_id: &str) -> StoreResult<Vec<StoredMember>> {
        self.groups_of_impl(member_id).await
    }
    async fn scim_count(&self, kind: ResourceKind) -> StoreResult<u64> {
        self.scim_count_impl(kind).await
    }
    async fn record_scim_requests(&self, entries: Vec<ScimRequestEntry>) -> StoreResult<()> {
        self.db.record_scim_requests(entries).await
    }
    async fn recent_scim_requests(&self, limit: u32) -> StoreResult<Vec<ScimRequestEntry>> {
        self.db.recent_scim_requests(limit).await
    }
    async fn upsert_hosts(&self, hosts: Vec<HostInput>, actor: &Actor) -> StoreResult<Vec<UpsertOutcome>> {
        self.upsert_hosts_impl(hosts, actor).await
    }
    async fn get_host(&self, id: i64) -> StoreResult<Host> {
        self.get_host_impl(id).await
    }
    async fn find_host(&self, identifier: &str) -> StoreResult<Host> {
        self.find_host_impl(identifier).await
    }
    async fn list_hosts(&self, query: &HostQuery) -> StoreResult<Vec<Host>> {
        self.list_hosts_impl(query).await
    }
    async fn count_hosts(&self, query: &HostQuery) -> StoreResult<u64> {
        self.count_hosts_impl(query).await
    }
    async fn delete_host(&self, id: i64, actor: &Actor) -> StoreResult<()> {
        self.delete_host_impl(id, actor).await
    }
    async fn set_host_mapping(&self, id: i64, mapping: DeviceMapping, actor: &Actor) -> StoreResult<Host> {
        self.set_host_mapping_impl(id, mapping, actor).await
    }
    async fn delete_idp_mapping(&self, id: i64, actor: &Actor) -> StoreResult<Host> {
        self.delete_idp_mapping_impl(id, actor).await
    }
    async fn host_history(&self, id: i64) -> StoreResult<Vec<OwnershipEntry>> {
        self.host_history_impl(id).await
    }
    async fn list_activities(&self, offset: u64, limit: u64) -> StoreResult<Vec<Activity>> {
        self.list_activities_impl(offset, limit).await
    }

    // --- web sign-in and sessions ---
    async fn create_password_user(&self, user: NewPasswordUser) -> StoreResult<ApiUser> {
        self.db.create_password_user(user).await
    }
    async fn create_first_admin(&self, user: NewPasswordUser) -> StoreResult<ApiUser> {
        self.db.create_first_admin(user).await
    }
    async fn has_password_admin(&self) -> StoreResult<bool> {
        self.db.has_password_admin().await
    }
    async fn password_user_by_email(&self, email: &str) -> StoreResult<Option<PasswordUser>> {
        self.db.password_user_by_email(email).await
    }
    async fn create_web_session(&self, session: NewWebSession) -> StoreResult<()> {
        self.db.create_web_session(session).await
    }
    async fn web_session(&self, digest: TokenDigest) -> StoreResult<Option<WebSession>> {
        self.db.web_session(digest).await
    }
    async fn touch_web_session(&self, digest: TokenDigest, at: chrono::DateTime<chrono::Utc>) -> StoreResult<()> {
        self.db.touch_web_session(digest, at).await
    }
    async fn delete_web_session(&self, digest: TokenDigest) -> StoreResult<()> {
        self.db.delete_web_session(digest).await
    }
    async fn delete_expired_web_sessions(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        idle_before: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<u64> {
        self.db.delete_expired_web_sessions(now, idle_before).await
    }

    // --- labels and offboarding webhooks ---
    async fn create_label(
        &self,
        label: custodian_domain::labels::NewLabel,
        actor: &Actor,
    ) -> StoreResult<custodian_domain::labels::Label> {
        self.create_label_impl(label, actor).await
    }
    async fn list_labels(&self) -> StoreResult<Vec<custodian_domain::labels::Label>> {
        self.list_labels_impl().await
    }
    async fn get_label(&self, id: i64) -> StoreResult<custodian_domain::labels::Label> {
        self.get_label_impl(id).await
    }
    async fn update_label(
        &self,
        id: i64,
        change: custodian_domain::labels::LabelChange,
        actor: &Actor,
    ) -> StoreResult<custodian_domain::labels::Label> {
        self.update_label_impl(id, change, actor).await
    }
    async fn delete_label(&self, id: i64, actor: &Actor) -> StoreResult<()> {
        self.delete_label_impl(id, actor).await
    }
    async fn labels_of_host(&self, host_id: i64) -> StoreResult<Vec<custodian_domain::labels::LabelRef>> {
        self.labels_of_host_impl(host_id).await
    }
    async fn claim_webhook_events(
        &self,
        limit: u32,
        lease: std::time::Duration,
    ) -> StoreResult<Vec<custodian_domain::webhooks::WebhookDelivery>> {
        self.claim_webhook_events_impl(limit, lease).await
    }
    async fn finish_webhook_attempt(
        &self,
        id: i64,
        outcome: custodian_domain::webhooks::AttemptOutcome,
    ) -> StoreResult<()> {
        self.finish_webhook_attempt_impl(id, outcome).await
    }
    async fn list_webhook_deliveries(
        &self,
        state: Option<custodian_domain::webhooks::DeliveryState>,
        offset: u64,
        limit: u64,
    ) -> StoreResult<Vec<custodian_domain::webhooks::WebhookDelivery>> {
        self.list_webhook_deliveries_impl(state, offset, limit).await
    }
    async fn webhook_backlog(&self) -> StoreResult<u64> {
        self.webhook_backlog_impl().await
    }
}
