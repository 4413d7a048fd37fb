//! Hosts, their device-mapping emails, and which IdP user each host belongs to.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

/// Where a host's email came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MappingSource {
    /// The IdP account the end user signed in with at enrollment.
    MdmIdpAccounts,
    /// The IdP username an admin set on the host.
    Idp,
    Custom,
    GoogleChromeProfiles,
}

impl MappingSource {
    pub fn as_str(self) -> &'static str {
        match self {
            MappingSource::MdmIdpAccounts => "mdm_idp_accounts",
            MappingSource::Idp => "idp",
            MappingSource::Custom => "custom",
            MappingSource::GoogleChromeProfiles => "google_chrome_profiles",
        }
    }
}

impl fmt::Display for MappingSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown source '{0}': expected mdm_idp_accounts, idp, custom or google_chrome_profiles")]
pub struct UnknownSource(pub String);

impl FromStr for MappingSource {
    type Err = UnknownSource;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "mdm_idp_accounts" => Ok(MappingSource::MdmIdpAccounts),
            "idp" => Ok(MappingSource::Idp),
            "custom" => Ok(MappingSource::Custom),
            "google_chrome_profiles" => Ok(MappingSource::GoogleChromeProfiles),
            other => Err(UnknownSource(other.to_string())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceMapping {
    pub email: String,
    pub source: MappingSource,
}

/// Normalises an email or IdP username for matching: trimmed, Unicode lower case, as
/// SCIM's case-insensitive `userName` and `emails.value` are.
pub fn normalize_identity(s: &str) -> String {
    s.trim().to_lowercase()
}

/// A host's IdP identity (RULE 1): its `idp` mapping when an admin set one, otherwise its
/// `mdm_idp_accounts` email. Returns the email as written.
pub fn identity_of(mappings: &[DeviceMapping]) -> Option<&str> {
    let of = |source| mappings.iter().find(|m| m.source == source).map(|m| m.email.as_str());
    of(MappingSource::Idp).or_else(|| of(MappingSource::MdmIdpAccounts))
}

/// A host as the device-management side sends it. `device_mapping: None` leaves the
/// host's emails as they are; `Some` replaces every mapping except the `idp` one, which
/// only an admin's mapping (or an `idp` entry in the list) changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostInput {
    pub uuid: String,
    pub hardware_serial: String,
    pub hostname: String,
    pub computer_name: String,
    pub platform: String,
    pub os_version: String,
    pub hardware_model: String,
    pub seen_time: Option<DateTime<Utc>>,
    pub device_mapping: Option<Vec<DeviceMapping>>,
}

/// How a host stands with respect to its end user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Linked to a SCIM user.
    Linked,
    /// It has an identity that no SCIM user has (yet).
    Unlinked,
    /// Several SCIM users have its identity among their emails: linked to none.
    Ambiguous,
    /// Its user was deleted in the IdP and no one has been linked since.
    UserDeleted,
    /// It has no `idp` nor `mdm_idp_accounts` email.
    NoIdentity,
}

impl LinkState {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Linked => "linked",
            LinkState::Unlinked => "unlinked",
            LinkState::Ambiguous => "ambiguous",
            LinkState::UserDeleted => "user_deleted",
            LinkState::NoIdentity => "no_identity",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Linked, Self::Unlinked, Self::Ambiguous, Self::UserDeleted, Self::NoIdentity]
            .into_iter()
            .find(|l| l.as_str() == s)
    }
}

/// Where a host stands for the overview and the `link_state` filter: `idp_link.state`'s
/// values, with `linked` split by its owner's status. The six partition the hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OwnerState {
    /// Linked to an active user.
    Linked,
    NoIdentity,
    /// An identity that matches nobody.
    Unlinked,
    Ambiguous,
    UserDeleted,
    /// Linked to a deactivated user: a laptop to recover.
    OwnerDeactivated,
}

impl OwnerState {
    pub const ALL: [OwnerState; 6] = [
        OwnerState::Linked,
        OwnerState::NoIdentity,
        OwnerState::Unlinked,
        OwnerState::Ambiguous,
        OwnerState::OwnerDeactivated,
        OwnerState::UserDeleted,
    ];
    pub const NAMES: [&'static str; 6] =
        ["linked", "no_identity", "unlinked", "ambiguous", "owner_deactivated", "user_deleted"];

    pub fn as_str(self) -> &'static str {
        match self {
            OwnerState::Linked => "linked",
            OwnerState::NoIdentity => "no_identity",
            OwnerState::Unlinked => "unlinked",
            OwnerState::Ambiguous => "ambiguous",
            OwnerState::UserDeleted => "user_deleted",
            OwnerState::OwnerDeactivated => "owner_deactivated",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == s)
    }
    /// The stored `link_state` of hosts in this state.
    pub fn link_state(self) -> LinkState {
        match self {
            OwnerState::Linked | OwnerState::OwnerDeactivated => LinkState::Linked,
            OwnerState::NoIdentity => LinkState::NoIdentity,
            OwnerState::Unlinked => LinkState::Unlinked,
            OwnerState::Ambiguous => LinkState::Ambiguous,
            OwnerState::UserDeleted => LinkState::UserDeleted,
        }
    }
    /// What a person reads.
    pub fn label(self) -> &'static str {
        match self {
            OwnerState::Linked => "Linked",
            OwnerState::NoIdentity => "No identity",
            OwnerState::Unlinked => "Unlinked",
            OwnerState::Ambiguous => "Ambiguous",
            OwnerState::UserDeleted => "Owner deleted",
            OwnerState::OwnerDeactivated => "Owner deactivated",
        }
    }
}

/// The IdP facts about a host's end user, as host details show them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndUser {
    pub idp_id: String,
    pub idp_username: String,
    pub idp_full_name: String,
    /// Effective groups (direct and inherited through nesting), sorted by name.
    pub idp_groups: Vec<String>,
    pub idp_department: Option<String>,
    pub idp_info_updated_at: DateTime<Utc>,
    pub idp_active: bool,
    /// The name of the IdP connection the user belongs to.
    pub idp_connection: String,
    /// The user's SCIM document as stored (every attribute the IdP sent, custom ones
    /// too): what templates' IdP variables and the host list's IdP columns read.
    pub attributes: serde_json::Value,
    /// The user's manager, when the enterprise `manager.value` is the id of a user of
    /// the same connection.
    pub manager: Option<Manager>,
}

/// A SCIM user's primary email: the one marked primary, else the first one.
pub fn primary_email(doc: &serde_json::Value) -> Option<&str> {
    fn value(e: &serde_json::Value) -> Option<&str> {
        e.get("value").and_then(serde_json::Value::as_str).filter(|v| !v.trim().is_empty())
    }
    let emails = doc.get("emails")?.as_array()?;
    emails
        .iter()
        .find(|e| e.get("primary").and_then(serde_json::Value::as_bool) == Some(true))
        .and_then(value)
        .or_else(|| emails.iter().find_map(value))
}

/// A manager that is a known user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manager {
    pub user_name: String,
    /// Its primary email (`emails[primary eq true]`, else its first).
    pub email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub id: i64,
    pub uuid: String,
    pub hardware_serial: String,
    pub hostname: String,
    pub computer_name: String,
    pub platform: String,
    pub os_version: String,
    pub hardware_model: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub seen_time: Option<DateTime<Utc>>,
    pub mappings: Vec<DeviceMapping>,
    pub link_state: LinkState,
    pub end_user: Option<EndUser>,
    /// For an ambiguous host: the SCIM ids of the users its identity matches.
    pub candidates: Vec<String>,
}

impl Host {
    /// Fleet's display name: the computer name, else the hostname.
    pub fn display_name(&self) -> &str {
        if self.computer_name.is_empty() { &self.hostname } else { &self.computer_name }
    }
    pub fn identity(&self) -> Option<&str> {
        identity_of(&self.mappings)
    }
}

/// Why a link was made or broken, as the history and the activity feed record it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkCause {
    ScimChange,
    HostChange,
    AdminAction,
    /// The user's connection was removed.
    ConnectionRemoved,
    /// Connections' priorities changed, so another connection's user now wins.
    PriorityChanged,
}

impl LinkCause {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkCause::ScimChange => "scim_change",
            LinkCause::HostChange => "host_change",
            LinkCause::AdminAction => "admin_action",
            LinkCause::ConnectionRemoved => "connection_removed",
            LinkCause::PriorityChanged => "priority_changed",
        }
    }
}

/// Who made a change: an operator, or the IdP through SCIM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub id: Option<i64>,
    pub name: String,
}

impl Actor {
    pub fn of(user: &crate::ApiUser) -> Self {
        Actor { id: Some(user.id), name: user.name.clone() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostOrderKey {
    #[default]
    Id,
    Hostname,
    HardwareSerial,
    CreatedAt,
    UpdatedAt,
    IdpUsername,
}

impl HostOrderKey {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "id" => Self::Id,
            "hostname" | "display_name" | "computer_name" => Self::Hostname,
            "hardware_serial" => Self::HardwareSerial,
            "created_at" => Self::CreatedAt,
            "updated_at" => Self::UpdatedAt,
            "idp_username" => Self::IdpUsername,
            _ => return None,
        })
    }
}

/// The host list's filters and paging (Fleet's names).
#[derive(Debug, Clone, Default)]
pub struct HostQuery {
    pub page: u64,
    pub per_page: u64,
    pub order_key: HostOrderKey,
    pub descending: bool,
    /// Matches hostname, serial, emails and IdP username (substring, any case).
    pub query: Option<String>,
    pub idp_username: Option<String>,
    /// A group's display name or SCIM id; nested groups count.
    pub idp_group: Option<String>,
    pub idp_department: Option<String>,
    /// The name of the IdP connection of the end user (any case).
    pub idp_connection: Option<String>,
    /// `Some(false)`: the laptops to recover.
    pub idp_active: Option<bool>,
    /// A label's criteria: the hosts of the label.
    pub criteria: Option<crate::labels::Criteria>,
    /// A SCIM filter over the end user (`GET /Users?filter=`'s), parsed.
    pub idp_filter: Option<custodian_scim::filter::Filter>,
    /// Where the host stands with its owner.
    pub link_state: Option<OwnerState>,
}

/// One entry of a host's ownership history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnershipEntry {
    pub idp_id: String,
    pub idp_username: String,
    pub linked_at: DateTime<Utc>,
    pub link_cause: String,
    pub unlinked_at: Option<DateTime<Utc>>,
    pub unlink_cause: Option<String>,
}

/// Which activities to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct ActivityQuery {
    pub offset: u64,
    pub limit: u64,
    /// About this host.
    pub host_id: Option<i64>,
    /// About the IdP user with this userName (any case).
    pub idp_username: Option<String>,
    /// Of this kind (`linked_host_end_user`, `sso_signed_in`, ...).
    pub kind: Option<String>,
}

/// One entry of the audit feed.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub actor_id: Option<i64>,
    pub actor_name: String,
    pub kind: String,
    pub details: serde_json::Value,
}

/// The outcome of one host in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpsertOutcome {
    Created(i64),
    Updated(i64),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(email: &str, source: MappingSource) -> DeviceMapping {
        DeviceMapping { email: email.into(), source }
    }

    #[test]
    fn identity_prefers_the_admins_idp_mapping_over_the_enrollment_account() {
        let both = [m("enrolled@x.com", MappingSource::MdmIdpAccounts), m("set@x.com", MappingSource::Idp)];
        assert_eq!(identity_of(&both), Some("set@x.com"));
        assert_eq!(identity_of(&both[..1]), Some("enrolled@x.com"));
        assert_eq!(identity_of(&[m("c@x.com", MappingSource::Custom)]), None);
        assert_eq!(normalize_identity(" Jane@Example.COM "), "jane@example.com");
    }
}
