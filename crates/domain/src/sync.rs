//! Directory syncs: connections whose users and groups Custodian reads itself (Google
//! Workspace) rather than receives over SCIM. A run reads the whole directory, works out
//! the difference from what the connection holds ([`SyncPlan`]) and applies it in one
//! transaction through the same operations as SCIM writes; one run at a time per
//! connection, held by a lease in the database.

use chrono::{DateTime, Utc};
use custodian_scim::resource::ResourceInput;
use serde_json::Value;

use crate::connections::ConnectionId;

/// A service account key file's JSON: a secret. `Debug` never prints it.
#[derive(Clone, PartialEq)]
pub struct SecretKeyFile(pub String);

impl std::fmt::Debug for SecretKeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKeyFile([secret])")
    }
}

/// A Google Workspace connection's settings as anyone who may read them sees them: the
/// key only as who it is and which key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoogleWorkspaceSettings {
    pub client_email: String,
    pub private_key_id: String,
    pub admin_email: String,
    pub customer_id: String,
    pub org_unit_paths: Vec<String>,
    pub sync_interval_seconds: u64,
    pub api_base_url: String,
}

/// What creating a Google Workspace connection stores beside its settings.
#[derive(Debug, Clone)]
pub struct NewGoogleWorkspace {
    pub key_file: SecretKeyFile,
    pub settings: GoogleWorkspaceSettings,
}

/// New settings of a Google Workspace connection; the key file is kept unless replaced.
#[derive(Debug, Clone)]
pub struct GoogleWorkspaceChange {
    pub key_file: Option<SecretKeyFile>,
    pub settings: GoogleWorkspaceSettings,
}

/// A run's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Running,
    Success,
    Error,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Success => "success",
            RunStatus::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "running" => Some(RunStatus::Running),
            "success" => Some(RunStatus::Success),
            "error" => Some(RunStatus::Error),
            _ => None,
        }
    }
}

/// What a run saw and changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunCounts {
    pub users_seen: u64,
    pub groups_seen: u64,
    pub created: u64,
    pub updated: u64,
    pub deleted: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRun {
    pub id: i64,
    pub connection: ConnectionId,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub status: RunStatus,
    pub counts: RunCounts,
    pub error: Option<String>,
    /// Deletions an operator confirmed for this run (past the deletion guard).
    pub allow_deletions: Option<u64>,
    /// Deletions the guard stopped this run for: what an operator may confirm.
    pub deletions_to_confirm: Option<u64>,
}

/// What asking for a run gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunStart {
    /// A new run holds the connection's lease: the caller performs it.
    Started(SyncRun),
    /// Another run (perhaps on another instance) holds the lease.
    Busy(SyncRun),
    /// The scheduler asked, but another instance ran the connection meanwhile: not due.
    NotDue,
}

/// A Google Workspace connection as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncSchedule {
    pub connection: ConnectionId,
    pub sync_interval_seconds: u64,
    /// When the last run started, if any did.
    pub last_started_at: Option<DateTime<Utc>>,
    /// A run holds the lease until then.
    pub running_until: Option<DateTime<Utc>>,
    /// An operator asked for a run that could not start at once.
    pub requested: bool,
}

impl SyncSchedule {
    /// Whether a run should start now.
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        match self.running_until {
            Some(until) if until > now => false,
            // Its instance stopped mid-run: nothing of it was applied, so run again now.
            Some(_) => true,
            None => {
                let interval = chrono::Duration::seconds(self.sync_interval_seconds.min(i64::MAX as u64) as i64);
                self.requested || self.last_started_at.is_none_or(|at| at + interval <= now)
            }
        }
    }
}

/// The SHA-256 of a document's stored text (its canonical JSON): a run compares what it
/// would write with what is stored without holding every stored document in memory.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DocDigest(pub [u8; 32]);

impl DocDigest {
    pub fn of_text(text: &str) -> Self {
        use sha2::Digest;
        DocDigest(sha2::Sha256::digest(text.as_bytes()).into())
    }

    /// The digest of `doc` as the store writes it (`Value::to_string`).
    pub fn of(doc: &Value) -> Self {
        Self::of_text(&doc.to_string())
    }
}

impl std::fmt::Debug for DocDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DocDigest(")?;
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// A user or group the connection holds, as a run compares it.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncedResource {
    /// Custodian's id.
    pub id: String,
    /// The directory's id (`externalId`); `None` for a resource a run did not write.
    pub external_id: Option<String>,
    pub digest: DocDigest,
    /// A group's direct members, by Custodian id, sorted.
    pub members: Vec<String>,
}

/// Everything a connection holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncedDirectory {
    pub users: Vec<SyncedResource>,
    pub groups: Vec<SyncedResource>,
}

/// A group member in a plan: one the connection holds, or one the plan creates.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum PlannedMember {
    /// By Custodian id.
    Existing(String),
    /// A user the plan creates, by its directory id.
    NewUser(String),
    /// A group the plan creates, by its directory id.
    NewGroup(String),
}

#[derive(Debug, Clone)]
pub struct PlannedGroup {
    pub input: ResourceInput,
    pub members: Vec<PlannedMember>,
}

/// The difference between the directory and the connection: what a run applies.
#[derive(Debug, Clone, Default)]
pub struct SyncPlan {
    /// By directory id.
    pub create_users: Vec<(String, ResourceInput)>,
    /// By Custodian id.
    pub replace_users: Vec<(String, ResourceInput)>,
    pub delete_users: Vec<String>,
    /// By directory id.
    pub create_groups: Vec<(String, PlannedGroup)>,
    /// By Custodian id: a changed document or membership.
    pub replace_groups: Vec<(String, PlannedGroup)>,
    pub delete_groups: Vec<String>,
}

impl SyncPlan {
    pub fn is_empty(&self) -> bool {
        self.create_users.is_empty()
            && self.replace_users.is_empty()
            && self.delete_users.is_empty()
            && self.create_groups.is_empty()
            && self.replace_groups.is_empty()
            && self.delete_groups.is_empty()
    }

    /// The counts of a run that applies this plan.
    pub fn counts(&self, users_seen: u64, groups_seen: u64) -> RunCounts {
        RunCounts {
            users_seen,
            groups_seen,
            created: (self.create_users.len() + self.create_groups.len()) as u64,
            updated: (self.replace_users.len() + self.replace_groups.len()) as u64,
            deleted: (self.delete_users.len() + self.delete_groups.len()) as u64,
        }
    }
}

/// The share of a connection's users a run may delete without a confirmation, in percent.
pub const DELETION_GUARD_PERCENT: u64 = 10;

/// Why a run must not delete what it would, unless confirmed: more than
/// [`DELETION_GUARD_PERCENT`] of the users, or all of them because the directory answered
/// none. `allowed` is what an operator confirmed.
pub fn deletion_guard(deleting: u64, holding: u64, seen: u64, allowed: u64) -> Option<String> {
    if deleting == 0 || deleting <= allowed {
        return None;
    }
    if seen == 0 {
        return Some(format!(
            "the directory answered no users at all, so this run would delete all {deleting} of the connection's users"
        ));
    }
    (deleting * 100 > holding * DELETION_GUARD_PERCENT).then(|| {
        format!(
            "this run would delete {deleting} of the connection's {holding} users, more than {DELETION_GUARD_PERCENT}%"
        )
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_stops_more_than_a_tenth_or_everyone_unless_confirmed() {
        assert_eq!(deletion_guard(10, 100, 90, 0), None, "exactly 10% passes");
        assert!(deletion_guard(11, 100, 89, 0).unwrap().contains("11 of the connection's 100 users"));
        assert_eq!(deletion_guard(11, 100, 89, 11), None, "confirmed");
        assert!(deletion_guard(11, 100, 89, 10).is_some(), "confirmed fewer than it would delete");
        assert!(deletion_guard(1, 5, 0, 0).unwrap().contains("no users at all"));
        assert_eq!(deletion_guard(0, 0, 0, 0), None);
    }

    #[test]
    fn a_connection_is_due_after_its_interval_or_when_asked_and_never_while_running() {
        let now = Utc::now();
        let mut s = SyncSchedule {
            connection: ConnectionId(2),
            sync_interval_seconds: 300,
            last_started_at: None,
            running_until: None,
            requested: false,
        };
        assert!(s.is_due(now), "never ran");
        s.last_started_at = Some(now - chrono::Duration::seconds(299));
        assert!(!s.is_due(now));
        s.requested = true;
        assert!(s.is_due(now));
        s.running_until = Some(now + chrono::Duration::seconds(5));
        assert!(!s.is_due(now), "a live lease");
        s.requested = false;
        s.running_until = Some(now - chrono::Duration::seconds(1));
        assert!(s.is_due(now), "an expired lease is taken over, whatever the interval");
    }
}
