//! Users and groups as the identity provider sent them over SCIM.

use chrono::{DateTime, Utc};
use custodian_scim::filter::Filter;
use custodian_scim::resource::MemberKind;
use custodian_scim::schema::{ResolvedAttr, ResourceKind};
use serde_json::Value;

/// One stored SCIM resource: its identity, its version and its canonical document (the
/// client-writable attributes only; membership is stored apart).
#[derive(Debug, Clone, PartialEq)]
pub struct ScimRecord {
    pub id: String,
    pub kind: ResourceKind,
    pub doc: Value,
    pub created: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
    pub version: i64,
}

impl ScimRecord {
    /// The weak ETag that `meta.version` and the `ETag` header carry.
    pub fn etag(&self) -> String {
        etag_of(self.version)
    }

    /// The resource as SCIM returns it (`id`, `meta` at `location`, `schemas`), with its
    /// members or groups when given: what clients read and what filters are evaluated on.
    pub fn render(
        &self,
        location: &str,
        members: Option<&[custodian_scim::resource::MemberOut]>,
        groups: Option<&[custodian_scim::resource::GroupRefOut]>,
    ) -> Value {
        let etag = self.etag();
        let meta = custodian_scim::resource::ResourceMeta {
            id: &self.id,
            created: self.created,
            last_modified: self.last_modified,
            version: &etag,
            location,
        };
        custodian_scim::resource::render(self.kind, &self.doc, &meta, members, groups)
    }
}

pub fn etag_of(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// Parses an ETag (`W/"3"`, `"3"` or `3`) back into a version; `None` when it is not one
/// of ours, which can then never match.
pub fn version_of_etag(etag: &str) -> Option<i64> {
    let t = etag.trim();
    let t = t.strip_prefix("W/").unwrap_or(t);
    let t = t.trim_matches('"');
    t.parse().ok()
}

/// A member of a group, or a group of a user, as the store returns it for rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMember {
    pub id: String,
    pub kind: MemberKind,
    pub display: Option<String>,
    /// For a user's groups: whether the membership is direct (not through a nested group).
    pub direct: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    #[default]
    Ascending,
    Descending,
}

/// A list or search request, already parsed and resolved against the schema.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub filter: Option<Filter>,
    pub sort_by: Option<ResolvedAttr>,
    pub sort_order: SortOrder,
    /// 1-based, as SCIM counts.
    pub start_index: u64,
    pub count: u64,
}

#[derive(Debug, Clone)]
pub struct ListPage {
    pub total_results: u64,
    pub records: Vec<ScimRecord>,
}

/// One SCIM request as the connection history keeps it: never a body nor a token.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimRequestEntry {
    /// The connection the request was made for (`None`: not known, as in histories kept
    /// before connections existed).
    pub connection: Option<crate::connections::ConnectionId>,
    pub requested_at: DateTime<Utc>,
    pub method: String,
    pub path: String,
    pub status: u16,
    /// The SCIM error's detail for a failed request, at most 255 characters.
    pub detail: Option<String>,
    pub user_agent: Option<String>,
    pub duration_ms: f64,
}

impl ScimRequestEntry {
    pub fn succeeded(&self) -> bool {
        self.status < 400
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_round_trip_in_weak_and_strong_forms() {
        assert_eq!(etag_of(7), "W/\"7\"");
        assert_eq!(version_of_etag("W/\"7\""), Some(7));
        assert_eq!(version_of_etag("\"7\""), Some(7));
        assert_eq!(version_of_etag("*"), None);
    }
}
