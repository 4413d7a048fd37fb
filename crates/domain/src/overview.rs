//! The overview at `/`: the figures an admin acts on, each read by one indexed query.

use chrono::{DateTime, Utc};

use crate::connections::ConnectionId;
use crate::hosts::OwnerState;

/// How many hosts each "needs attention" list shows.
pub const ATTENTION_HOSTS: u32 = 10;
/// How many departments the chart shows.
pub const TOP_DEPARTMENTS: u32 = 15;
/// How far back the IdP feed goes, in hours (seven days).
pub const FEED_HOURS: i64 = 24 * 7;

/// A host that needs attention, with what failed to match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttentionHost {
    pub id: i64,
    pub hostname: String,
    /// The identity it matches by (its IdP username or enrollment account).
    pub identity: Option<String>,
    /// For an ambiguous host: the userNames of the users its identity matches.
    pub candidates: Vec<String>,
    /// For a host whose owner is deactivated: the owner's userName.
    pub owner: Option<String>,
}

/// One connection's requests in one hour (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedHour {
    pub hour: DateTime<Utc>,
    pub ok: u64,
    pub errors: u64,
}

/// One connection's feed: SCIM requests received, or directory sync runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionFeed {
    pub id: ConnectionId,
    pub name: String,
    /// `scim` or `google_workspace`: what the hours count (requests, or sync runs).
    pub kind: String,
    /// The hours of the last seven days with any request, oldest first.
    pub hours: Vec<FeedHour>,
    /// The last error: when, and what (a status and detail, or a run's error).
    pub last_error: Option<(DateTime<Utc>, String)>,
}

/// The offboarding webhook's backlog.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookBacklog {
    pub pending: u64,
    pub failing: u64,
    /// The newest failing delivery's error, and when it is retried.
    pub last_failure: Option<(String, DateTime<Utc>)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Overview {
    /// Every owner state, in `OwnerState::ALL`'s order, with its host count.
    pub coverage: Vec<(OwnerState, u64)>,
    /// Unlinked, ambiguous, owner deactivated: the newest hosts of each.
    pub attention: Vec<(OwnerState, Vec<AttentionHost>)>,
    /// The departments with the most hosts (as indexed: lower case), most first.
    pub departments: Vec<(String, u64)>,
    pub feeds: Vec<ConnectionFeed>,
    pub webhooks: WebhookBacklog,
}

impl Overview {
    pub fn total_hosts(&self) -> u64 {
        self.coverage.iter().map(|(_, n)| n).sum()
    }
}
