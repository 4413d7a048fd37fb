//! Performing directory syncs (Google Workspace): a scheduler that starts each
//! connection's run every `sync_interval_seconds` (and at once when asked), and the run
//! itself: read the whole directory, plan the difference, check the deletion guard,
//! apply in one transaction. The lease in the database keeps one run per connection
//! across instances; a run renews it while it works and stops if it is lost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use custodian_domain::connections::{Connection, ConnectionId};
use custodian_domain::hosts::Actor;
use custodian_domain::store::SyncRequest;
use custodian_domain::sync::{RunCounts, RunStart, SyncRun, deletion_guard};
use custodian_domain::{StoreError, StoreResult};
use custodian_google::retry::RetryPolicy;
use custodian_google::{DirectoryClient, DirectoryConfig, ServiceAccountKey, read_snapshot};
use tokio::sync::Notify;

use crate::metrics::Metrics;

/// How runs are scheduled and bounded.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// How often the scheduler looks for connections that are due.
    pub tick: Duration,
    /// How long a run holds its connection without renewing; another instance takes
    /// over a run whose lease passed (its instance stopped).
    pub lease: Duration,
    pub retry: RetryPolicy,
    /// Each request to Google (a page that does not come is retried, then fails the run).
    pub request_timeout: Duration,
    /// A whole run, reading and applying.
    pub run_timeout: Duration,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            tick: Duration::from_secs(2),
            lease: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(30),
            run_timeout: Duration::from_secs(30 * 60),
        }
    }
}

pub struct DirectorySync {
    store: Arc<dyn custodian_domain::Store>,
    settings: SyncSettings,
    metrics: Arc<Metrics>,
    wake: Notify,
    /// Each connection's client, kept between runs so that its access token is used
    /// until shortly before it expires; replaced when the settings it was made with change.
    clients: Mutex<HashMap<ConnectionId, (String, Arc<DirectoryClient>)>>,
}

/// Why a run failed, and what it had seen.
struct Failure {
    message: String,
    counts: RunCounts,
    /// The deletion guard stopped the run short of this many deletions.
    deletions_to_confirm: Option<u64>,
}

impl Failure {
    fn new(message: impl Into<String>) -> Self {
        Failure { message: message.into(), counts: RunCounts::default(), deletions_to_confirm: None }
    }
}

fn store_failure(e: StoreError) -> Failure {
    match e {
        // A client error here is a directory value Custodian refuses (a taken name).
        StoreError::Scim(e) => Failure::new(format!("the directory holds a value Custodian refuses: {}", e.detail)),
        StoreError::Conflict(m) | StoreError::Taken { message: m, .. } => Failure::new(m),
        StoreError::NotFound => Failure::new("the connection was removed during the run"),
        other => {
            tracing::error!(error = %other, "a directory sync could not reach the database");
            Failure::new("the database failed during the run; nothing was changed, and the next run tries again")
        }
    }
}

impl DirectorySync {
    pub fn new(store: Arc<dyn custodian_domain::Store>, settings: SyncSettings, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(DirectorySync { store, settings, metrics, wake: Notify::new(), clients: Mutex::default() })
    }

    /// The scheduler: looks for due connections every tick, or at once when woken.
    pub fn start(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                this.start_due().await;
                tokio::select! {
                    _ = tokio::time::sleep(this.settings.tick) => {}
                    _ = this.wake.notified() => {}
                }
            }
        })
    }

    /// Looks for due connections now (a connection was just added).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    async fn start_due(self: &Arc<Self>) {
        let schedules = match self.store.sync_schedules().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "the directory sync scheduler could not read the connections");
                return;
            }
        };
        let now = chrono::Utc::now();
        for schedule in schedules.into_iter().filter(|s| s.is_due(now)) {
            match self.store.start_sync_run(schedule.connection, self.settings.lease, None).await {
                Ok(RunStart::Started(run)) => self.spawn(run),
                Ok(RunStart::Busy(_) | RunStart::NotDue) => {}
                Err(e) => {
                    tracing::warn!(connection = schedule.connection.0, error = %e, "a directory sync did not start")
                }
            }
        }
    }

    /// An operator's request for a run: started now, or after the one in progress (which
    /// is returned).
    pub async fn request(self: &Arc<Self>, id: ConnectionId, allow_deletions: Option<u64>) -> StoreResult<SyncRun> {
        match self.store.start_sync_run(id, self.settings.lease, Some(SyncRequest { allow_deletions })).await? {
            RunStart::Started(run) => {
                self.spawn(run.clone());
                Ok(run)
            }
            RunStart::Busy(run) => Ok(run),
            // Only the scheduler's own starts are checked for being due.
            RunStart::NotDue => Err(StoreError::Conflict("the connection is not due for a run".into())),
        }
    }

    fn spawn(self: &Arc<Self>, run: SyncRun) {
        let this = self.clone();
        tokio::spawn(async move { this.perform(run).await });
    }

    async fn perform(&self, run: SyncRun) {
        let started = Instant::now();
        // Read once: its name labels the logs and metrics, its settings drive the run.
        let connection = self.store.get_connection(run.connection).await;
        let name = connection.as_ref().map_or_else(|_| run.connection.0.to_string(), |c| c.name.clone());
        let work = async {
            let connection = connection.map_err(store_failure)?;
            tokio::time::timeout(self.settings.run_timeout, self.attempt(&run, connection)).await.unwrap_or_else(|_| {
                Err(Failure::new(format!(
                    "the run took longer than {} seconds and was stopped; nothing was changed",
                    self.settings.run_timeout.as_secs()
                )))
            })
        };
        // The work first: once its changes are committed, a renewal that finds the run
        // finished must not count it as lost.
        let outcome = tokio::select! {
            biased;
            outcome = work => outcome,
            lost = self.hold_lease(run.id) => Err(lost),
        };
        let status = match outcome {
            Ok(done) => {
                let c = done.counts;
                tracing::info!(connection = %name, run = run.id, users = c.users_seen, groups = c.groups_seen,
                    created = c.created, updated = c.updated, deleted = c.deleted, "directory sync run succeeded");
                "success"
            }
            Err(failure) => {
                tracing::warn!(connection = %name, run = run.id, error = %failure.message, "directory sync run failed");
                if let Err(e) = self
                    .store
                    .fail_sync_run(run.id, failure.counts, &failure.message, failure.deletions_to_confirm)
                    .await
                {
                    tracing::error!(run = run.id, error = %e, "a failed directory sync run could not be recorded");
                }
                "error"
            }
        };
        self.metrics.record_sync_run(&name, status, started.elapsed());
    }

    /// Renews the run's lease until it is lost (then answers why), for as long as the
    /// run is performed beside it.
    async fn hold_lease(&self, run_id: i64) -> Failure {
        let every = self.settings.lease / 3;
        loop {
            tokio::time::sleep(every).await;
            match self.store.renew_sync_lease(run_id, self.settings.lease).await {
                Ok(true) => {}
                Ok(false) => {
                    return Failure::new("the run lost its lease to another instance and stopped; nothing was changed");
                }
                // The database may be back before the lease runs out.
                Err(e) => tracing::warn!(run = run_id, error = %e, "a directory sync lease could not be renewed"),
            }
        }
    }

    /// Drops a connection's cached client (and its access token): its key or settings
    /// changed.
    pub fn forget_client(&self, id: ConnectionId) {
        if let Ok(mut clients) = self.clients.lock() {
            clients.remove(&id);
        }
    }

    fn client(&self, id: ConnectionId, config: &DirectoryConfig) -> Result<Arc<DirectoryClient>, Failure> {
        let fingerprint = format!(
            "{}\n{}\n{}\n{}\n{}",
            config.key.private_key_id,
            config.key.token_uri,
            config.admin_email,
            config.customer_id,
            config.api_base_url
        );
        let mut clients = self.clients.lock().map_err(|_| Failure::new("internal error: the client cache"))?;
        if let Some((f, client)) = clients.get(&id)
            && *f == fingerprint
        {
            return Ok(client.clone());
        }
        let client = Arc::new(
            DirectoryClient::new(config, self.settings.retry.clone(), self.settings.request_timeout)
                .map_err(|e| Failure::new(e.to_string()))?,
        );
        clients.insert(id, (fingerprint, client.clone()));
        Ok(client)
    }

    async fn attempt(&self, run: &SyncRun, connection: Connection) -> Result<SyncRun, Failure> {
        let id = run.connection;
        let name = connection.name.as_str();
        let settings = connection
            .google_workspace
            .ok_or_else(|| Failure::new("this connection is not a Google Workspace connection"))?;
        let key_file = self.store.google_workspace_key(id).await.map_err(store_failure)?;
        let key_json: serde_json::Value = serde_json::from_str(&key_file.0).map_err(|_| {
            Failure::new("the stored service account key is not JSON; replace the key on the connection's page")
        })?;
        let key = ServiceAccountKey::parse(&key_json).map_err(|e| Failure::new(e.to_string()))?;
        let config = DirectoryConfig {
            key,
            admin_email: settings.admin_email.clone(),
            customer_id: settings.customer_id.clone(),
            org_unit_paths: settings.org_unit_paths.clone(),
            api_base_url: settings.api_base_url.clone(),
        };
        let client = self.client(id, &config)?;
        let snapshot = read_snapshot(&client, &config).await.map_err(|e| Failure::new(e.to_string()))?;
        let current = self.store.synced_directory(id).await.map_err(store_failure)?;
        let planned = custodian_google::plan::plan(&snapshot, &current);
        if !planned.skipped_users.is_empty() {
            tracing::warn!(connection = %name, skipped = planned.skipped_users.len(), ids = ?planned.skipped_users,
                "directory users Custodian refuses were left as they are");
        }
        let plan = planned.plan;
        let (users_seen, groups_seen) = (snapshot.users.len() as u64, snapshot.groups.len() as u64);
        let counts = plan.counts(users_seen, groups_seen);
        let deleting = plan.delete_users.len() as u64;
        let held = current.users.len() as u64;
        // Only the plan is needed from here: the directory read and the connection's
        // documents (the bulk of a run's memory) go before the writes.
        drop(snapshot);
        drop(current);
        if let Some(reason) = deletion_guard(deleting, held, users_seen, run.allow_deletions.unwrap_or(0)) {
            return Err(Failure {
                message: format!(
                    "{reason}; nothing was changed. If this is expected, confirm the {deleting} deletions: \
                     POST /api/v1/fleet/idp/connections/{}/sync with {{\"allow_deletions\": {deleting}}}, or \
                     \"Confirm {deleting} deletions and sync\" on the connection's page",
                    id.0
                ),
                counts: RunCounts { users_seen, groups_seen, ..RunCounts::default() },
                deletions_to_confirm: Some(deleting),
            });
        }
        let actor = Actor { id: None, name: format!("Google Workspace sync ({name})") };
        self.store.apply_sync_run(run.id, id, &plan, counts, &actor).await.map_err(|e| {
            let mut failure = store_failure(e);
            failure.counts = RunCounts { users_seen, groups_seen, ..RunCounts::default() };
            failure
        })
    }
}
