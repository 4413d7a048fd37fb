//! The PostgreSQL store: several Custodian instances on one database. Every write is
//! one READ COMMITTED transaction that locks what it changes: the resource row for SCIM
//! writes (so concurrent PATCHes of one group apply one after the other, and `If-Match`
//! lets exactly one writer of a version win), the host row for host changes, and an
//! advisory lock per identity (`locks.rs`) wherever the mapping rules match hosts to
//! users, so that a host and its user arriving at once on two instances still meet.
//! A transaction the database aborts for a deadlock or a serialization failure is
//! retried whole (`retry`).

mod access;
mod host_batch;
mod hosts;
mod labels;
mod linking;
pub(crate) mod locks;
mod scim;
mod webhooks;

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use custodian_domain::hosts::{
    Activity, Actor, DeviceMapping, Host, HostInput, HostQuery, OwnershipEntry, UpsertOutcome,
};
use custodian_domain::web::{NewPasswordUser, NewWebSession, PasswordUser, WebSession};
use custodian_domain::{
    ApiUser, ListPage, ListQuery, NewApiUser, PoolStats, Precondition, ScimRecord, ScimRequestEntry, StoreError,
    StoreResult, StoredMember, TokenDigest, Written,
};
use custodian_scim::patch::PatchRequest;
use custodian_scim::resource::ResourceInput;
use custodian_scim::schema::ResourceKind;
use sqlx::migrate::{Migrate, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::schema::{self, MigrateMode};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections each instance opens at most, unless told otherwise.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;

/// How many times a transaction aborted for a concurrent one is run again.
const RETRIES: u32 = 8;

pub struct PgStore {
    pool: PgPool,
    db: crate::db::Db,
}

pub(crate) type Tx<'a> = sqlx::Transaction<'a, sqlx::Postgres>;

/// Deadlocks and serialization failures are the database asking for a retry. Text
/// with a NUL character, which PostgreSQL cannot store, is the client's error.
pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(d) = &e {
        match d.code().as_deref() {
            Some("40001" | "40P01") => return StoreError::Contention(d.message().to_string()),
            Some("22021") => {
                return custodian_scim::ScimError::invalid_value("text must not contain NUL (U+0000) characters")
                    .into();
            }
            _ => {}
        }
    }
    StoreError::Database(e.to_string())
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// Runs a write again while the database aborts it for a concurrent one, with a short,
/// growing, jittered pause between attempts.
async fn retry<T, F, Fut>(mut op: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = StoreResult<T>>,
{
    let mut attempt = 0;
    loop {
        match op().await {
            Err(StoreError::Contention(msg)) if attempt < RETRIES => {
                attempt += 1;
                let jitter = u64::from(
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos())
                        % 5,
                );
                tracing::debug!(attempt, reason = %msg, "retrying a transaction aborted for a concurrent one");
                tokio::time::sleep(Duration::from_millis((2u64 << attempt.min(6)) + jitter)).await;
            }
            other => return other,
        }
    }
}

impl PgStore {
    /// Connects and, in `Apply` mode, migrates (under the migrator's advisory lock, so
    /// that instances starting together are safe); in `Verify` mode, checks the schema.
    pub async fn open(url: &str, mode: MigrateMode, max_connections: Option<u32>) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Database(format!("invalid PostgreSQL URL '{}': {e}", crate::redact_url(url))))?
            .application_name("custodian")
            // Short queries only: JIT compiling one (triggered by the planner's guess at a
            // recursive query's size) costs far more than running it.
            .options([("jit", "off")]);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Database(format!("cannot connect to PostgreSQL: {e}")))?;
        let applied = applied_migrations(&pool).await?;
        schema::check(&MIGRATOR, &applied, mode == MigrateMode::Verify)?;
        if mode == MigrateMode::Apply {
            MIGRATOR.run(&pool).await.map_err(|e| StoreError::Database(format!("migration failed: {e}")))?;
        }
        Ok(PgStore { db: crate::db::Db::Postgres(pool.clone()), pool })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The migrations applied so far; none when the bookkeeping table does not exist yet.
async fn applied_migrations(pool: &PgPool) -> StoreResult<Vec<sqlx::migrate::AppliedMigration>> {
    let mut conn = pool.acquire().await.map_err(db_err)?;
    let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text")
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)?;
    if exists.is_none() {
        return Ok(Vec::new());
    }
    conn.list_applied_migrations().await.map_err(|e| StoreError::Database(format!("reading the schema version: {e}")))
}

#[async_trait::async_trait]
impl custodian_domain::Store for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(db_err)?;
        Ok(())
    }
    fn pool_stats(&self) -> PoolStats {
        PoolStats {
            open: self.pool.size(),
            idle: self.pool.num_idle() as u32,
            max: self.pool.options().get_max_connections(),
        }
    }
    fn is_shared(&self) -> bool {
        true
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
        retry(|| self.scim_create_impl(kind, input.clone(), actor)).await
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
        retry(|| self.scim_replace_impl(kind, id, input.clone(), if_match.clone(), actor)).await
    }
    async fn scim_patch(
        &self,
        kind: ResourceKind,
        id: &str,
        patch: &PatchRequest,
        if_match: Precondition,
        actor: &Actor,
    ) -> StoreResult<Written> {
        retry(|| self.scim_patch_impl(kind, id, patch, if_match.clone(), actor)).await
    }
    async fn scim_delete(
        &self,
        kind: ResourceKind,
        id: &str,
        if_match: Precondition,
        actor: &Actor,
    ) -> StoreResult<()> {
        retry(|| self.scim_delete_impl(kind, id, if_match.clone(), actor)).await
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
        retry(|| self.upsert_hosts_impl(&hosts, actor)).await
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
        retry(|| self.delete_host_impl(id, actor)).await
    }
    async fn set_host_mapping(&self, id: i64, mapping: DeviceMapping, actor: &Actor) -> StoreResult<Host> {
        retry(|| self.set_host_mapping_impl(id, mapping.clone(), actor)).await
    }
    async fn delete_idp_mapping(&self, id: i64, actor: &Actor) -> StoreResult<Host> {
        retry(|| self.delete_idp_mapping_impl(id, actor)).await
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
        retry(|| self.create_label_impl(label.clone(), actor)).await
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
        retry(|| self.update_label_impl(id, change.clone(), actor)).await
    }
    async fn delete_label(&self, id: i64, actor: &Actor) -> StoreResult<()> {
        retry(|| self.delete_label_impl(id, actor)).await
    }
    async fn labels_of_host(&self, host_id: i64) -> StoreResult<Vec<custodian_domain::labels::LabelRef>> {
        self.labels_of_host_impl(host_id).await
    }
    async fn claim_webhook_events(
        &self,
        limit: u32,
        lease: std::time::Duration,
    ) -> StoreResult<Vec<custodian_domain::webhooks::WebhookDelivery>> {
        retry(|| self.claim_webhook_events_impl(limit, lease)).await
    }
    async fn finish_webhook_attempt(
        &self,
        id: i64,
        outcome: custodian_domain::webhooks::AttemptOutcome,
    ) -> StoreResult<()> {
        retry(|| self.finish_webhook_attempt_impl(id, outcome.clone())).await
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
