//! From a read of the directory to the changes a run applies: each Google user and group
//! as the SCIM document Custodian stores, compared with what the connection holds by the
//! directory's id (`externalId`). Only the difference is planned, so an unchanged
//! directory plans nothing.

use std::collections::{BTreeSet, HashMap};

use custodian_domain::sync::{DocDigest, PlannedGroup, PlannedMember, SyncPlan, SyncedDirectory, SyncedResource};
use custodian_scim::resource::parse_resource;
use custodian_scim::schema::{
    ENTERPRISE_USER_SCHEMA, GOOGLE_WORKSPACE_USER_SCHEMA, GROUP_SCHEMA, ResourceKind, USER_SCHEMA,
};
use serde_json::{Map, Value, json};

use crate::model::User;
use crate::snapshot::Snapshot;

/// The SCIM body of a Google user.
pub fn user_body(user: &User) -> Value {
    let mut body = Map::new();
    body.insert("schemas".into(), json!([USER_SCHEMA, ENTERPRISE_USER_SCHEMA, GOOGLE_WORKSPACE_USER_SCHEMA]));
    body.insert("externalId".into(), json!(user.id));
    body.insert("userName".into(), json!(user.primary_email));
    let mut name = Map::new();
    put(&mut name, "givenName", &user.name.given_name);
    put(&mut name, "familyName", &user.name.family_name);
    put(&mut name, "formatted", &user.name.full_name);
    if !name.is_empty() {
        body.insert("name".into(), Value::Object(name));
    }
    let display = if user.name.full_name.is_empty() {
        format!("{} {}", user.name.given_name, user.name.family_name).trim().to_string()
    } else {
        user.name.full_name.clone()
    };
    put(&mut body, "displayName", &display);
    body.insert("active".into(), json!(user.active()));
    let emails: Vec<Value> = user
        .addresses()
        .iter()
        .enumerate()
        .map(|(i, a)| {
            if i == 0 {
                json!({"value": a, "type": "work", "primary": true})
            } else {
                json!({"value": a, "type": "other"})
            }
        })
        .collect();
    body.insert("emails".into(), Value::Array(emails));
    let mut enterprise = Map::new();
    if let Some(org) = user.organization() {
        put(&mut body, "title", &org.title);
        put(&mut enterprise, "department", &org.department);
        put(&mut enterprise, "costCenter", &org.cost_center);
        put(&mut enterprise, "division", &org.description);
        put(&mut enterprise, "organization", &org.name);
    }
    if !enterprise.is_empty() {
        body.insert(ENTERPRISE_USER_SCHEMA.into(), Value::Object(enterprise));
    }
    let mut google = Map::new();
    put(&mut google, "orgUnitPath", &user.org_unit_path);
    let external_ids = external_ids(user.external_ids.as_ref());
    if !external_ids.is_empty() {
        google.insert("externalIds".into(), Value::Array(external_ids));
    }
    let custom = custom_fields(user.custom_schemas.as_ref());
    if !custom.is_empty() {
        google.insert("customSchemas".into(), Value::Array(custom));
    }
    if !google.is_empty() {
        body.insert(GOOGLE_WORKSPACE_USER_SCHEMA.into(), Value::Object(google));
    }
    Value::Object(body)
}

fn put(map: &mut Map<String, Value>, key: &str, value: &str) {
    if !value.trim().is_empty() {
        map.insert(key.into(), json!(value));
    }
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(v.to_string()),
        _ => None,
    }
}

/// `externalIds[]`: `{value, type, customType}` as Google holds them.
fn external_ids(ids: Option<&Value>) -> Vec<Value> {
    let Some(Value::Array(items)) = ids else { return Vec::new() };
    items
        .iter()
        .filter_map(|item| {
            let mut out = Map::new();
            for key in ["value", "type", "customType"] {
                if let Some(t) = item.get(key).and_then(text_of) {
                    put(&mut out, key, &t);
                }
            }
            out.contains_key("value").then_some(Value::Object(out))
        })
        .collect()
}

/// `customSchemas` (`{schema: {field: value | [{value, type}]}}`), one element per field
/// value, in a stable order.
fn custom_fields(schemas: Option<&Value>) -> Vec<Value> {
    let Some(Value::Object(schemas)) = schemas else { return Vec::new() };
    let mut out = Vec::new();
    let mut names: Vec<&String> = schemas.keys().collect();
    names.sort();
    for schema in names {
        let Some(Value::Object(fields)) = schemas.get(schema) else { continue };
        let mut field_names: Vec<&String> = fields.keys().collect();
        field_names.sort();
        for field in field_names {
            let values: Vec<String> = match &fields[field] {
                Value::Array(items) => {
                    items.iter().filter_map(|i| i.get("value").and_then(text_of).or_else(|| text_of(i))).collect()
                }
                v => text_of(v).into_iter().collect(),
            };
            for value in values.into_iter().filter(|v| !v.is_empty()) {
                out.push(json!({"schemaName": schema, "fieldName": field, "value": value}));
            }
        }
    }
    out
}

/// The display names of groups: Google's names, which need not be unique, made unique
/// (Custodian's are, per connection) by the group's email where two share one.
fn display_names(snapshot: &Snapshot) -> HashMap<&str, String> {
    let mut count: HashMap<String, usize> = HashMap::new();
    for g in &snapshot.groups {
        *count.entry(group_name(&g.group).to_lowercase()).or_default() += 1;
    }
    snapshot
        .groups
        .iter()
        .map(|g| {
            let name = group_name(&g.group);
            let display =
                if count[&name.to_lowercase()] > 1 { format!("{name} ({})", g.group.email) } else { name.to_string() };
            (g.group.id.as_str(), display)
        })
        .collect()
}

fn group_name(g: &crate::model::Group) -> &str {
    if g.name.trim().is_empty() { &g.email } else { &g.name }
}

/// What a run changes: the plan, and the Google ids of users it had to leave as they are
/// (a document Custodian refuses, such as a userName that mixes scripts).
pub struct Planned {
    pub plan: SyncPlan,
    pub skipped_users: Vec<String>,
}

/// The difference between a read of the directory and what the connection holds.
pub fn plan(snapshot: &Snapshot, current: &SyncedDirectory) -> Planned {
    let by_external = |items: &[SyncedResource]| -> HashMap<String, usize> {
        items.iter().enumerate().filter_map(|(i, r)| r.external_id.clone().map(|e| (e, i))).collect()
    };
    let held_users = by_external(&current.users);
    let held_groups = by_external(&current.groups);
    let mut plan = SyncPlan::default();
    let mut skipped_users = Vec::new();
    let mut kept_users: BTreeSet<usize> = BTreeSet::new();
    // Users the plan creates, by Google id: members may name them.
    let mut new_users: BTreeSet<&str> = BTreeSet::new();
    for (gid, user) in &snapshot.users {
        let held = held_users.get(gid).copied();
        if let Some(i) = held {
            kept_users.insert(i);
        }
        let input = match parse_resource(ResourceKind::User, &user_body(user)) {
            Ok(input) => input,
            Err(_) => {
                skipped_users.push(gid.clone());
                continue;
            }
        };
        match held {
            Some(i) if current.users[i].digest == DocDigest::of(&input.doc) => {}
            Some(i) => plan.replace_users.push((current.users[i].id.clone(), input)),
            None => {
                new_users.insert(gid.as_str());
                plan.create_users.push((gid.clone(), input));
            }
        }
    }
    plan.delete_users =
        current.users.iter().enumerate().filter(|(i, _)| !kept_users.contains(i)).map(|(_, r)| r.id.clone()).collect();

    let names = display_names(snapshot);
    let mut kept_groups: BTreeSet<usize> = BTreeSet::new();
    let new_groups: BTreeSet<&str> =
        snapshot.groups.iter().map(|g| g.group.id.as_str()).filter(|id| !held_groups.contains_key(*id)).collect();
    for g in &snapshot.groups {
        let display = names.get(g.group.id.as_str()).cloned().unwrap_or_default();
        let body = json!({"schemas": [GROUP_SCHEMA], "externalId": g.group.id, "displayName": display});
        let Ok(input) = parse_resource(ResourceKind::Group, &body) else { continue };
        let mut members: Vec<PlannedMember> = Vec::with_capacity(g.users.len() + g.groups.len());
        // Members are users of this read: one deleted by the plan is no member.
        for u in g.users.iter().filter(|u| snapshot.users.contains_key(*u)) {
            if let Some(&i) = held_users.get(u) {
                members.push(PlannedMember::Existing(current.users[i].id.clone()));
            } else if new_users.contains(u.as_str()) {
                members.push(PlannedMember::NewUser(u.clone()));
            }
        }
        for sub in &g.groups {
            if let Some(&i) = held_groups.get(sub) {
                members.push(PlannedMember::Existing(current.groups[i].id.clone()));
            } else if new_groups.contains(sub.as_str()) {
                members.push(PlannedMember::NewGroup(sub.clone()));
            }
        }
        members.sort();
        members.dedup();
        match held_groups.get(&g.group.id).copied() {
            Some(i) => {
                kept_groups.insert(i);
                let held = &current.groups[i];
                let same_members = members.len() == held.members.len()
                    && members
                        .iter()
                        .zip(&held.members)
                        .all(|(m, h)| matches!(m, PlannedMember::Existing(id) if id == h));
                if held.digest != DocDigest::of(&input.doc) || !same_members {
                    plan.replace_groups.push((held.id.clone(), PlannedGroup { input, members }));
                }
            }
            None => plan.create_groups.push((g.group.id.clone(), PlannedGroup { input, members })),
        }
    }
    plan.delete_groups = current
        .groups
        .iter()
        .enumerate()
        .filter(|(i, _)| !kept_groups.contains(i))
        .map(|(_, r)| r.id.clone())
        .collect();
    Planned { plan, skipped_users }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::{Group, Organization, UserName};
    use crate::snapshot::SnapshotGroup;
    use std::collections::BTreeMap;

    fn google_user(id: &str, email: &str) -> User {
        User {
            id: id.into(),
            primary_email: email.into(),
            name: UserName { given_name: "Ada".into(), family_name: "Lovelace".into(), full_name: String::new() },
            org_unit_path: "/Engineering".into(),
            organizations: vec![
                Organization { title: "Other".into(), ..Default::default() },
                Organization {
                    primary: true,
                    title: "Engineer".into(),
                    department: "R&D".into(),
                    cost_center: "CC-7".into(),
                    description: "Platform".into(),
                    ..Default::default()
                },
            ],
            aliases: vec!["ada@alias.example".into()],
            custom_schemas: Some(json!({"EmployeeInfo": {"badge": 42, "langs": [{"value": "en"}, {"value": "fr"}]}})),
            external_ids: Some(json!([{"value": "E-1", "type": "organization"}])),
            ..Default::default()
        }
    }

    fn snapshot(users: Vec<User>, groups: Vec<SnapshotGroup>) -> Snapshot {
        Snapshot {
            users: users.into_iter().map(|u| (u.id.clone(), u)).collect::<BTreeMap<_, _>>(),
            groups,
            requests: 0,
        }
    }

    fn held(id: &str, user: &User) -> SyncedResource {
        let doc = parse_resource(ResourceKind::User, &user_body(user)).unwrap().doc;
        SyncedResource {
            id: id.into(),
            external_id: Some(user.id.clone()),
            digest: DocDigest::of(&doc),
            members: Vec::new(),
        }
    }

    #[test]
    fn a_google_user_becomes_a_scim_user_with_its_primary_organization_and_every_address() {
        let doc = parse_resource(ResourceKind::User, &user_body(&google_user("1", "ada@example.com"))).unwrap().doc;
        assert_eq!(doc["userName"], "ada@example.com");
        assert_eq!(doc["externalId"], "1");
        assert_eq!(doc["active"], true);
        assert_eq!(doc["title"], "Engineer", "the primary organization, not the first");
        assert_eq!(doc["displayName"], "Ada Lovelace");
        assert_eq!(doc["emails"][1]["value"], "ada@alias.example");
        let ent = &doc[ENTERPRISE_USER_SCHEMA];
        assert_eq!((ent["department"].as_str(), ent["costCenter"].as_str()), (Some("R&D"), Some("CC-7")));
        assert_eq!(ent["division"], "Platform");
        let google = &doc[GOOGLE_WORKSPACE_USER_SCHEMA];
        assert_eq!(google["orgUnitPath"], "/Engineering");
        assert_eq!(google["externalIds"][0]["value"], "E-1");
        let custom: Vec<(&str, &str)> = google["customSchemas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["fieldName"].as_str().unwrap(), c["value"].as_str().unwrap()))
            .collect();
        assert_eq!(custom, vec![("badge", "42"), ("langs", "en"), ("langs", "fr")]);
    }

    #[test]
    fn an_unchanged_directory_plans_nothing_and_a_change_plans_only_itself() {
        let (a, b) = (google_user("1", "a@example.com"), google_user("2", "b@example.com"));
        let groups = vec![SnapshotGroup {
            group: Group { id: "g1".into(), email: "eng@example.com".into(), name: "Eng".into(), ..Default::default() },
            users: vec!["1".into(), "2".into()],
            groups: vec![],
        }];
        let first = plan(&snapshot(vec![a.clone(), b.clone()], groups.clone()), &SyncedDirectory::default()).plan;
        assert_eq!((first.create_users.len(), first.create_groups.len()), (2, 1));
        assert_eq!(
            first.create_groups[0].1.members,
            vec![PlannedMember::NewUser("1".into()), PlannedMember::NewUser("2".into())]
        );

        let group_doc = first.create_groups[0].1.input.doc.clone();
        let mut current = SyncedDirectory {
            users: vec![held("u-a", &a), held("u-b", &b)],
            groups: vec![SyncedResource {
                id: "g-1".into(),
                external_id: Some("g1".into()),
                digest: DocDigest::of(&group_doc),
                members: vec!["u-a".into(), "u-b".into()],
            }],
        };
        let again = plan(&snapshot(vec![a.clone(), b.clone()], groups.clone()), &current).plan;
        assert!(again.is_empty(), "{again:?}");

        let mut suspended = b.clone();
        suspended.suspended = true;
        let change = plan(&snapshot(vec![a.clone(), suspended], groups.clone()), &current).plan;
        assert_eq!(change.replace_users.len(), 1);
        assert_eq!(change.replace_users[0].0, "u-b");
        assert_eq!(change.replace_users[0].1.doc["active"], false);
        assert!(change.create_users.is_empty() && change.replace_groups.is_empty());

        current.groups[0].members = vec!["u-a".into()];
        let gone = plan(&snapshot(vec![a], groups), &current).plan;
        assert_eq!(gone.delete_users, vec!["u-b".to_string()]);
        assert!(gone.replace_groups.is_empty(), "the group's members match once b is gone");
    }

    #[test]
    fn groups_sharing_a_name_are_told_apart_by_their_email() {
        let g = |id: &str, email: &str| SnapshotGroup {
            group: Group { id: id.into(), email: email.into(), name: "Team".into(), ..Default::default() },
            users: vec![],
            groups: vec![],
        };
        let p = plan(&snapshot(vec![], vec![g("g1", "a@x.example"), g("g2", "b@x.example")]), &Default::default());
        let names: Vec<&str> =
            p.plan.create_groups.iter().map(|(_, g)| g.input.doc["displayName"].as_str().unwrap()).collect();
        assert_eq!(names, vec!["Team (a@x.example)", "Team (b@x.example)"]);
    }
}
