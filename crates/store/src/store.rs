//! The store both backends share: `SqlStore` implements `custodian_domain::Store` once,
//! over `db::Db`. What stays per backend is named here: SQLite's group commit of creates
//! and its hold on the database file, PostgreSQL's retry of a transaction the database
//! aborted for a concurrent one.

use std::future::Future;

use crate::db::{Db, Sql};
use crate::sqlite::local::Local;
use crate::writes::{Outcome, Write, run_alone};

/// A Custodian store on SQLite or PostgreSQL (`SqliteStore::open`, `PgStore::open`).
pub struct SqlStore {
    pub(crate) db: Db,
    /// SQLite's group commit and file lock; none on PostgreSQL.
    pub(crate) sqlite: Option<Local>,
}

impl SqlStore {
    /// Runs a write, again while PostgreSQL aborts it for a concurrent one (SQLite has
    /// one writer: nothing to retry).
    async fn retry<T, F, Fut>(&self, op: F) -> StoreResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = StoreResult<T>>,
    {
        match self.db {
            Db::Sqlite { .. } => {
                let mut op = op;
                op().await
            }
            Db::Postgres(_) => crate::postgres::tx::retry(op).await,
        }
    }

    /// Runs a SCIM write or host upsert: on SQLite through the group commit, on
    /// PostgreSQL in a transaction of its own, again while the database aborts it for a
    /// concurrent one.
    async fn write(&self, write: Write) -> StoreResult<Outcome> {
        match &self.sqlite {
            Some(local) => local.writer.write(write).await,
            None => self.retry(|| run_alone(&self.db, &write)).await,
        }
    }

    /// Closes the pools, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.db.close().await;
    }
}

use custodian_domain::connections::{Connection, ConnectionChange, ConnectionCredential, NewConnection};
use custodian_domain::hosts::{
    Activity, Actor, DeviceMapping, Host, HostInput, HostQuery, OwnershipEntry, UpsertOutcome,
};
use custodian_domain::store::SyncRequest;
use custodian_domain::sync::{RunCounts, RunStart, SecretKeyFile, SyncPlan, SyncRun, SyncSchedule, SyncedDirectory};
use custodian_domain::web::{
    NewPasswordUser, NewWebSession, OperatorSession, OperatorSummary, PasswordUser, PendingSsoLogin, SsoIdentity,
    SsoSignIn, WebSession,
};
use custodian_domain::{
    ApiUser, ConnectionId, Credential, ListPage, ListQuery, NewApiUser, PoolStats, Precondition, ScimRecord,
    ScimRequestEntry, Scope, StoreResult, StoredMember, TokenDigest, Written,
};
use custodian_scim::patch::PatchRequest;
use custodian_scim::resource::ResourceInput;
use custodian_scim::schema::ResourceKind;

#[async_trait::async_trait]
impl custodian_domain::Operations for SqlStore {
    async fn ping(&self) -> StoreResult<()> {
        self.db.read().await?.execute(&Sql::new("SELECT 1")).await.map(drop)
    }
    fn pool_stats(&self) -> PoolStats {
        self.db.pool_stats()
    }
    fn is_shared(&self) -> bool {
        matches!(self.db, Db::Postgres(_))
    }
    async fn record_scim_requests(&self, entries: Vec<ScimRequestEntry>) -> StoreResult<()> {
        self.db.record_scim_requests(entries).await
    }
    async fn recent_scim_requests(&self, limit: u32) -> StoreResult<Vec<ScimRequestEntry>> {
        self.db.recent_scim_requests(limit).await
    }
    async fn list_activities(&self, query: &custodian_domain::hosts::ActivityQuery) -> StoreResult<Vec<Activity>> {
        self.db.list_activities(query).await
    }
    async fn activity_kinds(&self) -> StoreResult<Vec<String>> {
        self.db.activity_kinds().await
    }
    async fn reindex_for_declared_schemas(&self) -> StoreResult<Option<u64>> {
        self.db.reindex_for_declared_schemas().await
    }

    // --- web sign-in and sessions ---
}

#[async_trait::async_trait]
impl custodian_domain::Operators for SqlStore {
    async fn create_api_user(&self, user: NewApiUser) -> StoreResult<ApiUser> {
        self.db.create_api_user(user).await
    }
    async fn list_api_users(&self) -> StoreResult<Vec<ApiUser>> {
        self.db.list_api_users().await
    }
    async fn delete_api_user(&self, id_or_name: &str) -> StoreResult<ApiUser> {
        self.db.delete_api_user(id_or_name).await
    }
    async fn add_token(&self, user_id: i64, token: TokenDigest) -> StoreResult<()> {
        self.db.add_token(user_id, token).await
    }
    async fn authenticate_token(&self, token: TokenDigest) -> StoreResult<Option<Credential>> {
        self.db.authenticate_token(token).await
    }
    async fn record_operator_use(&self, user_id: i64, at: chrono::DateTime<chrono::Utc>) -> StoreResult<()> {
        self.db.record_operator_use(user_id, at).await
    }
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
    async fn host_columns(&self, user_id: i64) -> StoreResult<Vec<String>> {
        self.db.host_columns(user_id).await
    }
    async fn set_host_columns(&self, user_id: i64, paths: &[String]) -> StoreResult<()> {
        self.db.set_host_columns(user_id, paths).await
    }
    async fn sso_sign_in(&self, identity: &SsoIdentity) -> StoreResult<SsoSignIn> {
        self.retry(|| self.db.sso_sign_in(identity)).await
    }
    async fn operator_summaries(&self) -> StoreResult<Vec<OperatorSummary>> {
        self.db.operator_summaries().await
    }
    async fn operator_sessions(&self, user_id: i64) -> StoreResult<Vec<OperatorSession>> {
        self.db.operator_sessions(user_id).await
    }
    async fn end_operator_sessions(&self, user_id: i64, session_id: Option<i64>, actor: &Actor) -> StoreResult<u64> {
        self.retry(|| self.db.end_operator_sessions(user_id, session_id, actor)).await
    }
    async fn set_operator_role(
        &self,
        user_id: i64,
        role: custodian_domain::Role,
        actor: &Actor,
    ) -> StoreResult<ApiUser> {
        self.retry(|| self.db.set_operator_role(user_id, role, actor)).await
    }
}

#[async_trait::async_trait]
impl custodian_domain::Directory for SqlStore {
    async fn scim_create(
        &self,
        conn: ConnectionId,
        kind: ResourceKind,
        input: ResourceInput,
        actor: &Actor,
    ) -> StoreResult<Written> {
        self.write(Write::ScimCreate { conn, kind, input, actor: actor.clone() }).await?.written()
    }
    async fn scim_get(&self, scope: Scope, kind: ResourceKind, id: &str) -> StoreResult<ScimRecord> {
        self.db.scim_get(scope, kind, id).await
    }
    async fn scim_list(&self, scope: Scope, kind: ResourceKind, query: &ListQuery) -> StoreResult<ListPage> {
        self.db.scim_list(scope, kind, query).await
    }
    async fn scim_replace(
        &self,
        conn: ConnectionId,
        kind: ResourceKind,
        id: &str,
        input: ResourceInput,
        if_match: Precondition,
        actor: &Actor,
    ) -> StoreResult<Written> {
        let write = Write::ScimReplace { conn, kind, id: id.to_string(), input, if_match, actor: actor.clone() };
        self.write(write).await?.written()
    }
    async fn scim_patch(
        &self,
        conn: ConnectionId,
        kind: ResourceKind,
        id: &str,
        patch: PatchRequest,
        if_match: Precondition,
        actor: &Actor,
    ) -> StoreResult<Written> {
        let write = Write::ScimPatch { conn, kind, id: id.to_string(), patch, if_match, actor: actor.clone() };
        self.write(write).await?.written()
    }
    async fn scim_delete(
        &self,
        conn: ConnectionId,
        kind: ResourceKind,
        id: &str,
        if_match: Precondition,
        actor: &Actor,
    ) -> StoreResult<()> {
        let write = Write::ScimDelete { conn, kind, id: id.to_string(), if_match, actor: actor.clone() };
        self.write(write).await?.deleted()
    }
    async fn group_members(&self, group_id: &str) -> StoreResult<Vec<StoredMember>> {
        self.db.group_members(group_id).await
    }
    async fn groups_of(&self, member_id: &str) -> StoreResult<Vec<StoredMember>> {
        self.db.groups_of(member_id).await
    }
    async fn groups_of_each(
        &self,
        member_ids: &[String],
    ) -> StoreResult<std::collections::HashMap<String, Vec<StoredMember>>> {
        self.db.groups_of_each(member_ids).await
    }
    async fn scim_count(&self, scope: Scope, kind: ResourceKind) -> StoreResult<u64> {
        self.db.scim_count(scope, kind).await
    }
}

#[async_trait::async_trait]
impl custodian_domain::SyncRuns for SqlStore {
    async fn google_workspace_key(&self, id: ConnectionId) -> StoreResult<SecretKeyFile> {
        self.db.google_workspace_key(id).await
    }
    async fn sync_schedules(&self) -> StoreResult<Vec<SyncSchedule>> {
        self.db.sync_schedules().await
    }
    async fn start_sync_run(
        &self,
        id: ConnectionId,
        lease: std::time::Duration,
        request: Option<SyncRequest>,
    ) -> StoreResult<RunStart> {
        self.retry(|| self.db.start_sync_run(id, lease, request)).await
    }
    async fn renew_sync_lease(&self, run_id: i64, lease: std::time::Duration) -> StoreResult<bool> {
        self.db.renew_sync_lease(run_id, lease).await
    }
    async fn synced_directory(&self, id: ConnectionId) -> StoreResult<SyncedDirectory> {
        self.db.synced_directory(id).await
    }
    async fn apply_sync_run(
        &self,
        run_id: i64,
        id: ConnectionId,
        plan: &SyncPlan,
        counts: RunCounts,
        actor: &Actor,
    ) -> StoreResult<SyncRun> {
        self.retry(|| self.db.apply_sync_run(run_id, id, plan, counts, actor)).await
    }
    async fn fail_sync_run(
        &self,
        run_id: i64,
        counts: RunCounts,
        error: &str,
        deletions_to_confirm: Option<u64>,
    ) -> StoreResult<SyncRun> {
        self.db.fail_sync_run(run_id, counts, error, deletions_to_confirm).await
    }
    async fn sync_runs(&self, id: ConnectionId, limit: u32) -> StoreResult<Vec<SyncRun>> {
        self.db.sync_runs(id, limit).await
    }
}

#[async_trait::async_trait]
impl custodian_domain::Connections for SqlStore {
    async fn list_connections(&self) -> StoreResult<Vec<Connection>> {
        self.db.list_connections().await
    }
    async fn connection_names(&self) -> StoreResult<Vec<(ConnectionId, String)>> {
        self.db.connection_names().await
    }
    async fn get_connection(&self, id: ConnectionId) -> StoreResult<Connection> {
        self.db.get_connection(id).await
    }
    async fn connection_named(&self, name: &str) -> StoreResult<Connection> {
        self.db.connection_named(name).await
    }
    async fn create_connection(&self, new: NewConnection, actor: &Actor) -> StoreResult<Connection> {
        let id = self.retry(|| self.db.create_connection(&new, actor)).await?;
        self.db.get_connection(id).await
    }
    async fn update_connection(
        &self,
        id: ConnectionId,
        change: ConnectionChange,
        actor: &Actor,
    ) -> StoreResult<Connection> {
        self.retry(|| self.db.update_connection(id, &change, actor)).await?;
        self.db.get_connection(id).await
    }
    async fn delete_connection(&self, id: ConnectionId, actor: &Actor) -> StoreResult<()> {
        self.retry(|| self.db.delete_connection(id, actor)).await
    }
    async fn add_connection_token(
        &self,
        id: ConnectionId,
        token: TokenDigest,
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> StoreResult<i64> {
        self.db.add_connection_token(id, token, expires_at).await
    }
    async fn revoke_connection_token(&self, id: ConnectionId, token_id: i64, actor: &Actor) -> StoreResult<()> {
        self.db.revoke_connection_token(id, token_id, actor).await
    }
    async fn record_connection_token_use(
        &self,
        credential: &ConnectionCredential,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()> {
        self.db.record_connection_token_use(credential.token_id, at).await
    }
    async fn connection_requests(&self, id: ConnectionId, limit: u32) -> StoreResult<Vec<ScimRequestEntry>> {
        self.db.connection_requests(id, limit).await
    }
}

#[async_trait::async_trait]
impl custodian_domain::HostInventory for SqlStore {
    async fn upsert_hosts(&self, hosts: Vec<HostInput>, actor: &Actor) -> StoreResult<Vec<UpsertOutcome>> {
        self.write(Write::UpsertHosts { hosts, actor: actor.clone() }).await?.hosts()
    }
    async fn get_host(&self, id: i64) -> StoreResult<Host> {
        self.db.get_host(id).await
    }
    async fn find_host(&self, identifier: &str) -> StoreResult<Host> {
        self.db.find_host(identifier).await
    }
    async fn list_hosts(&self, query: &HostQuery) -> StoreResult<Vec<Host>> {
        self.db.list_hosts(query).await
    }
    async fn count_hosts(&self, query: &HostQuery) -> StoreResult<u64> {
        self.db.count_hosts(query).await
    }
    async fn overview(&self, now: chrono::DateTime<chrono::Utc>) -> StoreResult<custodian_domain::overview::Overview> {
        self.db.overview(now).await
    }
    async fn delete_host(&self, id: i64, actor: &Actor) -> StoreResult<()> {
        self.retry(|| self.db.delete_host(id, actor)).await
    }
    async fn set_host_mapping(&self, id: i64, mapping: DeviceMapping, actor: &Actor) -> StoreResult<Host> {
        self.retry(|| self.db.set_host_mapping(id, &mapping, actor)).await
    }
    async fn delete_idp_mapping(&self, id: i64, actor: &Actor) -> StoreResult<Host> {
        self.retry(|| self.db.delete_idp_mapping(id, actor)).await
    }
    async fn host_history(&self, id: i64) -> StoreResult<Vec<OwnershipEntry>> {
        self.db.host_history(id).await
    }
}

#[async_trait::async_trait]
impl custodian_domain::Labels for SqlStore {
    async fn create_label(
        &self,
        label: custodian_domain::labels::NewLabel,
        actor: &Actor,
    ) -> StoreResult<custodian_domain::labels::Label> {
        self.retry(|| self.db.create_label(label.clone(), actor)).await
    }
    async fn list_labels(&self) -> StoreResult<Vec<custodian_domain::labels::Label>> {
        self.db.list_labels().await
    }
    async fn get_label(&self, id: i64) -> StoreResult<custodian_domain::labels::Label> {
        self.db.get_label(id).await
    }
    async fn update_label(
        &self,
        id: i64,
        change: custodian_domain::labels::LabelChange,
        actor: &Actor,
    ) -> StoreResult<custodian_domain::labels::Label> {
        self.retry(|| self.db.update_label(id, change.clone(), actor)).await
    }
    async fn delete_label(&self, id: i64, actor: &Actor) -> StoreResult<()> {
        self.retry(|| self.db.delete_label(id, actor)).await
    }
    async fn labels_of_host(&self, host_id: i64) -> StoreResult<Vec<custodian_domain::labels::LabelRef>> {
        self.db.labels_of_host(host_id).await
    }
    async fn create_label_source(
        &self,
        source: custodian_domain::labels::AutomaticSource,
        connection: Option<&str>,
        actor: &Actor,
    ) -> StoreResult<(custodian_domain::labels::LabelSource, bool)> {
        self.retry(|| self.db.create_label_source(source, connection, actor)).await
    }
    async fn list_label_sources(&self) -> StoreResult<Vec<custodian_domain::labels::LabelSource>> {
        self.db.list_label_sources().await
    }
    async fn delete_label_source(&self, id: i64, actor: &Actor) -> StoreResult<()> {
        self.retry(|| self.db.delete_label_source(id, actor)).await
    }
}

#[async_trait::async_trait]
impl custodian_domain::Webhooks for SqlStore {
    async fn claim_webhook_events(
        &self,
        limit: u32,
        lease: std::time::Duration,
    ) -> StoreResult<Vec<custodian_domain::webhooks::WebhookDelivery>> {
        self.retry(|| self.db.claim_webhook_events(limit, lease)).await
    }
    async fn finish_webhook_attempt(
        &self,
        id: i64,
        outcome: custodian_domain::webhooks::AttemptOutcome,
    ) -> StoreResult<()> {
        self.retry(|| self.db.finish_webhook_attempt(id, outcome.clone())).await
    }
    async fn list_webhook_deliveries(
        &self,
        state: Option<custodian_domain::webhooks::DeliveryState>,
        offset: u64,
        limit: u64,
    ) -> StoreResult<Vec<custodian_domain::webhooks::WebhookDelivery>> {
        self.db.list_webhook_deliveries(state, offset, limit).await
    }
    async fn webhook_backlog(&self) -> StoreResult<u64> {
        self.db.webhook_backlog().await
    }
    async fn retry_webhook_delivery(&self, id: i64, actor: &Actor) -> StoreResult<()> {
        self.retry(|| self.db.retry_webhook_delivery(id, actor)).await
    }
}

#[async_trait::async_trait]
impl custodian_domain::WebSessions for SqlStore {
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
    async fn create_sso_login(&self, login: PendingSsoLogin) -> StoreResult<()> {
        self.db.create_sso_login(login).await
    }
    async fn take_sso_login(&self, state_digest: TokenDigest) -> StoreResult<Option<PendingSsoLogin>> {
        self.db.take_sso_login(state_digest).await
    }

    // --- labels and offboarding webhooks ---
}
