//! The storage interface. The store crate implements it for SQLite and PostgreSQL; every
//! method that changes something runs in one transaction.

use std::collections::HashMap;

use async_trait::async_trait;
use custodian_scim::ScimError;
use custodian_scim::patch::PatchRequest;
use custodian_scim::resource::ResourceInput;
use custodian_scim::schema::ResourceKind;

use crate::access::{ApiUser, NewApiUser, TokenDigest};
use crate::connections::{
    Connection, ConnectionChange, ConnectionCredential, ConnectionId, Credential, NewConnection, Scope,
};
use crate::hosts::{Activity, Actor, DeviceMapping, Host, HostInput, HostQuery, OwnershipEntry, UpsertOutcome};
use crate::idp::{ListPage, ListQuery, ScimRecord, ScimRequestEntry, StoredMember};
use crate::labels::{AutomaticSource, Label, LabelChange, LabelRef, LabelSource, NewLabel};
use crate::sync::{RunCounts, RunStart, SecretKeyFile, SyncPlan, SyncRun, SyncSchedule, SyncedDirectory};
use crate::web::{
    NewPasswordUser, NewWebSession, OperatorSession, OperatorSummary, PasswordUser, PendingSsoLogin, SsoIdentity,
    SsoSignIn, WebSession,
};
use crate::webhooks::{AttemptOutcome, DeliveryState, WebhookDelivery};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The client's request cannot be applied: answered as a SCIM error.
    #[error(transparent)]
    Scim(#[from] ScimError),
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    /// A value that must be unique is taken: `field` names it for the JSON API.
    #[error("{field} taken: {message}")]
    Taken { field: &'static str, message: String },
    /// The database gave up a transaction for a concurrent one (a deadlock or a
    /// serialization failure) more times than the store retries: the client may retry.
    #[error("contention: {0}")]
    Contention(String),
    /// The database failed; the message is for logs, never for clients.
    #[error("database error: {0}")]
    Database(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What a write returns: the record as stored and whether a POST reactivated an
/// existing, deactivated user instead of creating one.
#[derive(Debug, Clone)]
pub struct Written {
    pub record: ScimRecord,
    pub reactivated: bool,
}

/// `If-Match` as the store sees it: `None` for no precondition.
pub type Precondition = Option<String>;

/// How the database connection pool is used, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections open now.
    pub open: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// The most connections the pool opens.
    pub max: u32,
}

/// Health and what operators read about the running system: readiness, the pool,
/// the history of IdP requests and the audit feed.
#[async_trait]
pub trait Operations: Send + Sync {
    /// Answers once the database has answered a trivial query (readiness checks).
    async fn ping(&self) -> StoreResult<()>;
    fn pool_stats(&self) -> PoolStats;
    /// Whether other Custodian processes may serve from the same database (PostgreSQL):
    /// then nothing cached in one process may outlive a request.
    fn is_shared(&self) -> bool;
    /// Appends to the history (written in batches: see the server's request recorder).
    async fn record_scim_requests(&self, entries: Vec<ScimRequestEntry>) -> StoreResult<()>;
    /// The most recent requests, newest first.
    async fn recent_scim_requests(&self, limit: u32) -> StoreResult<Vec<ScimRequestEntry>>;
    /// The audit feed, newest first: `limit` entries after skipping `offset`.
    async fn list_activities(&self, query: &crate::hosts::ActivityQuery) -> StoreResult<Vec<Activity>>;
    /// The kinds of activity on record, for the feed's filter.
    async fn activity_kinds(&self) -> StoreResult<Vec<String>>;
    /// When the declared schemas (`custodian_scim::declared`) differ from those the
    /// stored users were indexed with, canonicalises and re-indexes every user, once;
    /// answers how many (`None`: nothing had changed). `serve` calls it before answering.
    async fn reindex_for_declared_schemas(&self) -> StoreResult<Option<u64>>;
}

/// Operators (API-only and password ones) and their tokens.
#[async_trait]
pub trait Operators: Send + Sync {
    async fn create_api_user(&self, user: NewApiUser) -> StoreResult<ApiUser>;
    async fn list_api_users(&self) -> StoreResult<Vec<ApiUser>>;
    /// Deletes an operator (and its tokens) by id or name.
    async fn delete_api_user(&self, id_or_name: &str) -> StoreResult<ApiUser>;
    /// Adds a token to an existing operator.
    async fn add_token(&self, user_id: i64, token: TokenDigest) -> StoreResult<()>;
    /// The operator a token belongs to, if the token exists and is not revoked.
    async fn authenticate_token(&self, token: TokenDigest) -> StoreResult<Option<Credential>>;
    /// Records that the operator used a token or a web session at `at` (never moving
    /// the time back).
    async fn record_operator_use(&self, user_id: i64, at: chrono::DateTime<chrono::Utc>) -> StoreResult<()>;
    /// Creates an operator who signs in with an email and a password (Conflict when the
    /// name or email is taken).
    async fn create_password_user(&self, user: NewPasswordUser) -> StoreResult<ApiUser>;
    /// Creates the first admin of the first-run set-up page, atomically: Conflict when an
    /// admin who can sign in exists or another instance is creating one at the same time.
    async fn create_first_admin(&self, user: NewPasswordUser) -> StoreResult<ApiUser>;
    /// Whether an admin who can sign in (one with a password) exists.
    async fn has_password_admin(&self) -> StoreResult<bool>;
    /// The password operator with this email (compared without regard to case).
    async fn password_user_by_email(&self, email: &str) -> StoreResult<Option<PasswordUser>>;
    /// The IdP columns the operator chose for the hosts page (SCIM attribute paths, as
    /// saved); empty when none.
    async fn host_columns(&self, user_id: i64) -> StoreResult<Vec<String>>;
    /// Replaces the operator's IdP columns (NotFound when the operator is gone).
    async fn set_host_columns(&self, user_id: i64, paths: &[String]) -> StoreResult<()>;
    /// The operator of an SSO sign-in, found by issuer and subject (never by email),
    /// created on first sign-in, its name, email and role updated from the claims on
    /// every other; refused while the IdP has its user deactivated. Records the sign-in
    /// and any role change in the activity feed.
    async fn sso_sign_in(&self, identity: &SsoIdentity) -> StoreResult<SsoSignIn>;
    /// Every operator with its sessions, tokens and last sign-in (one query).
    async fn operator_summaries(&self) -> StoreResult<Vec<OperatorSummary>>;
    /// An operator's live and idle sessions, newest first.
    async fn operator_sessions(&self, user_id: i64) -> StoreResult<Vec<OperatorSession>>;
    /// Ends one session of the operator, or all of them; returns how many ended. Recorded
    /// in the activity feed.
    async fn end_operator_sessions(&self, user_id: i64, session_id: Option<i64>, actor: &Actor) -> StoreResult<u64>;
    /// Changes an operator's role (effective on its next request); recorded. NotFound
    /// when it is gone.
    async fn set_operator_role(&self, user_id: i64, role: crate::access::Role, actor: &Actor) -> StoreResult<ApiUser>;
}

/// The SCIM directory: users and groups as the IdPs wrote them, and memberships. Writes
/// and a SCIM client's reads are in one connection's namespace; ids are unique across
/// every connection, so an operator's read by id may see them all (`Scope::All`).
#[async_trait]
pub trait Directory: Send + Sync {
    async fn scim_create(
        &self,
        conn: ConnectionId,
        kind: ResourceKind,
        input: ResourceInput,
        actor: &Actor,
    ) -> StoreResult<Written>;
    async fn scim_get(&self, scope: Scope, kind: ResourceKind, id: &str) -> StoreResult<ScimRecord>;
    async fn scim_list(&self, scope: Scope, kind: ResourceKind, query: &ListQuery) -> StoreResult<ListPage>;
    async fn scim_replace(
        &self,
        conn: ConnectionId,
        kind: ResourceKind,
        id: &str,
        input: ResourceInput,
        if_match: Precondition,
        actor: &Actor,
    ) -> StoreResult<Written>;
    async fn scim_patch(
        &self,
        conn: ConnectionId,
        kind: ResourceKind,
        id: &str,
        patch: PatchRequest,
        if_match: Precondition,
        actor: &Actor,
    ) -> StoreResult<Written>;
    async fn scim_delete(
        &self,
        conn: ConnectionId,
        kind: ResourceKind,
        id: &str,
        if_match: Precondition,
        actor: &Actor,
    ) -> StoreResult<()>;
    /// The direct members of a group.
    async fn group_members(&self, group_id: &str) -> StoreResult<Vec<StoredMember>>;
    /// The groups of a user or group: direct ones and those inherited through nesting.
    async fn groups_of(&self, member_id: &str) -> StoreResult<Vec<StoredMember>>;
    /// [`Directory::groups_of`] of each of several users or groups, in one query.
    async fn groups_of_each(&self, member_ids: &[String]) -> StoreResult<HashMap<String, Vec<StoredMember>>>;
    async fn scim_count(&self, scope: Scope, kind: ResourceKind) -> StoreResult<u64>;
}

/// The IdP connections, their tokens and their request histories. Every change that can
/// alter a host's end user (a priority, a removal) relinks the hosts it affects in the
/// same transaction.
#[async_trait]
pub trait Connections: Send + Sync {
    async fn list_connections(&self) -> StoreResult<Vec<Connection>>;
    /// Every connection's id and name, by priority: no counts, tokens nor history, for
    /// filters and existence checks on pages that must stay cheap.
    async fn connection_names(&self) -> StoreResult<Vec<(ConnectionId, String)>>;
    async fn get_connection(&self, id: ConnectionId) -> StoreResult<Connection>;
    /// The connection with this name (any case).
    async fn connection_named(&self, name: &str) -> StoreResult<Connection>;
    /// A taken name or priority is a conflict naming the field.
    async fn create_connection(&self, new: NewConnection, actor: &Actor) -> StoreResult<Connection>;
    async fn update_connection(
        &self,
        id: ConnectionId,
        change: ConnectionChange,
        actor: &Actor,
    ) -> StoreResult<Connection>;
    /// Removes the connection with its users and groups; their hosts are unlinked (cause
    /// `connection_removed`) and matched again in the other connections. No offboarding
    /// event is recorded. `default` is removed only once it is empty.
    async fn delete_connection(&self, id: ConnectionId, actor: &Actor) -> StoreResult<()>;
    /// Adds a token to the connection; returns its id.
    async fn add_connection_token(
        &self,
        id: ConnectionId,
        token: TokenDigest,
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> StoreResult<i64>;
    /// Revokes one of the connection's tokens (kept, so that its use is answered "revoked").
    async fn revoke_connection_token(&self, id: ConnectionId, token_id: i64, actor: &Actor) -> StoreResult<()>;
    /// Records when a connection token was last used (to the minute, as for operators).
    async fn record_connection_token_use(
        &self,
        credential: &ConnectionCredential,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()>;
    /// One connection's recent SCIM requests, newest first.
    async fn connection_requests(&self, id: ConnectionId, limit: u32) -> StoreResult<Vec<crate::ScimRequestEntry>>;
}

/// Directory syncs' runs (Google Workspace): one at a time per connection, held by a
/// lease in the database, and applied in one transaction.
#[async_trait]
pub trait SyncRuns: Send + Sync {
    /// A Google Workspace connection's key file, for a run (NotFound for another kind).
    async fn google_workspace_key(&self, id: ConnectionId) -> StoreResult<SecretKeyFile>;
    /// Every directory-sync connection with what the scheduler decides on.
    async fn sync_schedules(&self) -> StoreResult<Vec<SyncSchedule>>;
    /// Starts a run holding the connection's lease for `lease`, unless a live one holds
    /// it. A run whose lease expired (its instance stopped) is marked failed first. With
    /// `request` (an operator asked), a busy connection runs again after the current run
    /// with `request`'s confirmed deletions.
    async fn start_sync_run(
        &self,
        id: ConnectionId,
        lease: std::time::Duration,
        request: Option<SyncRequest>,
    ) -> StoreResult<RunStart>;
    /// Extends a running run's lease; false when the run lost it (it must stop).
    async fn renew_sync_lease(&self, run_id: i64, lease: std::time::Duration) -> StoreResult<bool>;
    /// What the connection holds now, for a run to compare with the directory.
    async fn synced_directory(&self, id: ConnectionId) -> StoreResult<SyncedDirectory>;
    /// Applies a run's plan and marks the run succeeded, in one transaction: a Conflict
    /// (and nothing applied) when the run no longer holds its lease.
    async fn apply_sync_run(
        &self,
        run_id: i64,
        id: ConnectionId,
        plan: &SyncPlan,
        counts: RunCounts,
        actor: &Actor,
    ) -> StoreResult<SyncRun>;
    /// Marks a run failed; nothing of it was applied. `deletions_to_confirm`: the
    /// deletion guard stopped it.
    async fn fail_sync_run(
        &self,
        run_id: i64,
        counts: RunCounts,
        error: &str,
        deletions_to_confirm: Option<u64>,
    ) -> StoreResult<SyncRun>;
    /// A connection's runs, newest first.
    async fn sync_runs(&self, id: ConnectionId, limit: u32) -> StoreResult<Vec<SyncRun>>;
}

/// An operator's request for a run (`POST .../sync`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncRequest {
    /// Deletions confirmed past the deletion guard.
    pub allow_deletions: Option<u64>,
}

/// Hosts and the mapping to their end users.
#[async_trait]
pub trait HostInventory: Send + Sync {
    /// Creates or updates hosts by `uuid`, all in one transaction, relinking each to its
    /// end user. Inputs are validated by the caller.
    async fn upsert_hosts(&self, hosts: Vec<HostInput>, actor: &Actor) -> StoreResult<Vec<UpsertOutcome>>;
    async fn get_host(&self, id: i64) -> StoreResult<Host>;
    /// A host by uuid, hardware serial or hostname (in that order of precedence).
    async fn find_host(&self, identifier: &str) -> StoreResult<Host>;
    async fn list_hosts(&self, query: &HostQuery) -> StoreResult<Vec<Host>>;
    async fn count_hosts(&self, query: &HostQuery) -> StoreResult<u64>;
    /// The overview's figures at `now` (`overview` module).
    async fn overview(&self, now: chrono::DateTime<chrono::Utc>) -> StoreResult<crate::overview::Overview>;
    async fn delete_host(&self, id: i64, actor: &Actor) -> StoreResult<()>;
    /// Sets the admin's `idp` mapping (replacing the previous one) or adds a `custom` email.
    async fn set_host_mapping(&self, id: i64, mapping: DeviceMapping, actor: &Actor) -> StoreResult<Host>;
    async fn delete_idp_mapping(&self, id: i64, actor: &Actor) -> StoreResult<Host>;
    async fn host_history(&self, id: i64) -> StoreResult<Vec<OwnershipEntry>>;
}

/// Labels, evaluated at read time: a host's labels are computed when asked for, and
/// `HostInventory::list_hosts` with `HostQuery::criteria` lists a label's members.
#[async_trait]
pub trait Labels: Send + Sync {
    /// Creates a label; group conditions that name an existing group (by name or SCIM id)
    /// record its id. A taken name (any case) is a conflict.
    async fn create_label(&self, label: NewLabel, actor: &Actor) -> StoreResult<Label>;
    async fn list_labels(&self) -> StoreResult<Vec<Label>>;
    async fn get_label(&self, id: i64) -> StoreResult<Label>;
    async fn update_label(&self, id: i64, change: LabelChange, actor: &Actor) -> StoreResult<Label>;
    async fn delete_label(&self, id: i64, actor: &Actor) -> StoreResult<()>;
    /// The labels a host belongs to now, by name.
    async fn labels_of_host(&self, host_id: i64) -> StoreResult<Vec<LabelRef>>;
    /// Starts an automatic source (one label per group or department, of one connection
    /// or of all) and makes the labels of what exists now, in one transaction. A source
    /// that exists already is answered as it is. NotFound: no such connection.
    async fn create_label_source(
        &self,
        source: AutomaticSource,
        connection: Option<&str>,
        actor: &Actor,
    ) -> StoreResult<(LabelSource, bool)>;
    async fn list_label_sources(&self) -> StoreResult<Vec<LabelSource>>;
    /// Stops a source; its labels go with it.
    async fn delete_label_source(&self, id: i64, actor: &Actor) -> StoreResult<()>;
}

/// The outbox of offboarding webhooks.
#[async_trait]
pub trait Webhooks: Send + Sync {
    /// Claims up to `limit` events due now (pending or failing, not leased), leasing them
    /// for `lease` so that no other instance delivers them meanwhile; oldest first.
    async fn claim_webhook_events(&self, limit: u32, lease: std::time::Duration) -> StoreResult<Vec<WebhookDelivery>>;
    /// Records an attempt's outcome and releases the lease.
    async fn finish_webhook_attempt(&self, id: i64, outcome: AttemptOutcome) -> StoreResult<()>;
    /// Events newest first, optionally of one state: `limit` after skipping `offset`.
    async fn list_webhook_deliveries(
        &self,
        state: Option<DeliveryState>,
        offset: u64,
        limit: u64,
    ) -> StoreResult<Vec<WebhookDelivery>>;
    /// Events not delivered yet (pending or failing).
    async fn webhook_backlog(&self) -> StoreResult<u64>;
    /// Makes a failing event due now (the deliverer sends it within a second); recorded
    /// in the activity feed. NotFound when no such event, Conflict when it is not failing.
    async fn retry_webhook_delivery(&self, id: i64, actor: &Actor) -> StoreResult<()>;
}

/// Sessions of operators signed in to the web interface.
#[async_trait]
pub trait WebSessions: Send + Sync {
    async fn create_web_session(&self, session: NewWebSession) -> StoreResult<()>;
    /// The session whose cookie has this digest, live or not (the caller checks
    /// `WebSession::is_live`).
    async fn web_session(&self, digest: TokenDigest) -> StoreResult<Option<WebSession>>;
    /// Records that the session was used at `at` (its idle timeout starts again).
    async fn touch_web_session(&self, digest: TokenDigest, at: chrono::DateTime<chrono::Utc>) -> StoreResult<()>;
    /// Sign-out: deletes the session (no error when it does not exist).
    async fn delete_web_session(&self, digest: TokenDigest) -> StoreResult<()>;
    /// Deletes sessions that expired or were last used before `idle_before`; returns how many.
    async fn delete_expired_web_sessions(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        idle_before: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<u64>;
    /// Stores an SSO sign-in sent to the provider (sweeping expired ones).
    async fn create_sso_login(&self, login: PendingSsoLogin) -> StoreResult<()>;
    /// Takes the SSO sign-in of this state's digest: it can be taken once.
    async fn take_sso_login(&self, state_digest: TokenDigest) -> StoreResult<Option<PendingSsoLogin>>;
}

/// Everything a Custodian store does, for the places that hand a store on (the
/// server's state, the CLI). Code that uses a store takes the one trait it needs.
pub trait Store:
    Operations + Operators + Directory + Connections + SyncRuns + HostInventory + Labels + Webhooks + WebSessions + 'static
{
}

impl<T> Store for T where
    T: Operations
        + Operators
        + Directory
        + Connections
        + SyncRuns
        + HostInventory
        + Labels
        + Webhooks
        + WebSessions
        + 'static
{
}
