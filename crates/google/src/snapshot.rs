//! One complete read of the directory: the users in scope, every group with its direct
//! members resolved to users in scope, nested groups and "everyone". A read that fails
//! anywhere returns the error and nothing else, so that a sync never applies half a
//! directory.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::directory::{DirectoryClient, DirectoryConfig};
use crate::error::GoogleError;
use crate::model::{Group, MemberKind, User};
use futures_util::StreamExt;

/// Member lists read at once.
const MEMBER_LISTS_AT_ONCE: usize = 4;

#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotGroup {
    pub group: Group,
    /// Ids of the users in scope that are direct members (all of them for a `CUSTOMER`
    /// member), sorted.
    pub users: Vec<String>,
    /// Ids of the groups that are direct members, sorted.
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// By Google id.
    pub users: BTreeMap<String, User>,
    pub groups: Vec<SnapshotGroup>,
    /// Requests this read sent (token exchanges included).
    pub requests: u64,
}

/// Whether a user's org unit is one of `paths` or lies under one; `/` holds everyone.
pub fn in_scope(org_unit_path: &str, paths: &[String]) -> bool {
    paths.iter().any(|p| {
        let p = p.trim_end_matches('/');
        p.is_empty() || org_unit_path == p || org_unit_path.strip_prefix(p).is_some_and(|rest| rest.starts_with('/'))
    })
}

/// Google's user query for one org unit (its subtree): `orgUnitPath='/Sales'`.
fn org_unit_query(path: &str) -> String {
    format!("orgUnitPath='{}'", path.replace('\\', "\\\\").replace('\'', "\\'"))
}

pub async fn read_snapshot(client: &DirectoryClient, config: &DirectoryConfig) -> Result<Snapshot, GoogleError> {
    client.start_run();
    let before = client.requests_made();
    let whole =
        config.org_unit_paths.is_empty() || config.org_unit_paths.iter().any(|p| p.trim_end_matches('/').is_empty());
    let mut users = BTreeMap::new();
    let listings: Vec<Option<String>> =
        if whole { vec![None] } else { config.org_unit_paths.iter().map(|p| Some(org_unit_query(p))).collect() };
    for query in listings {
        for user in client.users(query.as_deref()).await? {
            // The query matches the subtree as Google reads it; the scope is checked here
            // as configured, whatever the query returned.
            if whole || in_scope(&user.org_unit_path, &config.org_unit_paths) {
                users.insert(user.id.clone(), user);
            }
        }
    }
    let groups = client.groups().await?;
    let group_ids: HashSet<&str> = groups.iter().map(|g| g.id.as_str()).collect();
    let mut out = Vec::with_capacity(groups.len());
    // A few groups' members at a time: one at a time, 2,000 groups would take minutes of
    // round trips; many more would run into Google's per-minute quota.
    // (Collected first: a closure in the stream's type would not be Send for every lifetime.)
    let reads: Vec<_> = groups.iter().map(|g| client.members(&g.id)).collect();
    let mut listings = futures_util::stream::iter(reads).buffered(MEMBER_LISTS_AT_ONCE);
    for group in &groups {
        let members = listings.next().await.unwrap_or_else(|| Ok(Vec::new()))?;
        let mut member_users = BTreeSet::new();
        let mut member_groups = BTreeSet::new();
        for m in members {
            match m.kind {
                MemberKind::User if users.contains_key(&m.id) => {
                    member_users.insert(m.id);
                }
                MemberKind::Group if group_ids.contains(m.id.as_str()) && m.id != group.id => {
                    member_groups.insert(m.id);
                }
                MemberKind::Customer => member_users.extend(users.keys().cloned()),
                // Users outside the synced scope, external addresses, unknown kinds.
                _ => {}
            }
        }
        out.push(SnapshotGroup {
            group: group.clone(),
            users: member_users.into_iter().collect(),
            groups: member_groups.into_iter().collect(),
        });
    }
    Ok(Snapshot { users, groups: out, requests: client.requests_made() - before })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scope_is_the_org_units_and_their_subtrees() {
        let paths = vec!["/Engineering".to_string(), "/Sales/EMEA/".to_string()];
        assert!(in_scope("/Engineering", &paths));
        assert!(in_scope("/Engineering/Contractors", &paths));
        assert!(!in_scope("/Engineering-EU", &paths), "a prefix that is not a parent");
        assert!(in_scope("/Sales/EMEA", &paths));
        assert!(!in_scope("/Sales", &paths));
        assert!(in_scope("/anything", &["/".to_string()]));
        assert_eq!(org_unit_query("/O'Brien Team"), "orgUnitPath='/O\\'Brien Team'");
    }
}
