//! Stored documents the checks evaluate filters on and apply PATCHes to: an Entra-style
//! user with every kind of attribute, and a group.

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use custodian_scim::resource::{MemberKind, MemberOut, ResourceMeta, parse_resource, render};
use custodian_scim::schema::ResourceKind;
use serde_json::{Value, json};

fn user_body() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "externalId": "00u1abcd",
        "userName": "jane@example.com",
        "active": true,
        "displayName": "Jane Doe",
        "title": "Engineer",
        "locale": "en-US",
        "name": {"formatted": "Jane Doe", "givenName": "Jane", "familyName": "Doe"},
        "emails": [{"primary": true, "type": "work", "value": "jane@example.com"},
                   {"type": "home", "value": "jane@home.example"}],
        "phoneNumbers": [{"type": "mobile", "value": "+1 555 0100"}],
        "roles": [{"primary": "True", "value": "admin"}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "department": "R&D", "employeeNumber": "42", "manager": {"value": "m1"}
        }
    })
}

fn group_body() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "externalId": "g-ext",
        "displayName": "Engineering",
        "members": [{"value": "u1", "type": "User"}, {"value": "g2", "type": "Group"}]
    })
}

/// The stored doc of a sample resource (what PATCH starts from).
pub fn doc(kind: ResourceKind) -> &'static Value {
    static USER: OnceLock<Value> = OnceLock::new();
    static GROUP: OnceLock<Value> = OnceLock::new();
    let (cell, body) = match kind {
        ResourceKind::User => (&USER, user_body as fn() -> Value),
        ResourceKind::Group => (&GROUP, group_body as fn() -> Value),
    };
    cell.get_or_init(|| {
        let parsed = parse_resource(kind, &body());
        assert!(parsed.is_ok(), "the sample {} does not parse: {parsed:?}", kind.name());
        parsed.map(|input| input.doc).unwrap_or_default()
    })
}

pub fn time() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 123_000_000).unwrap_or_default()
}

pub fn meta<'a>(id: &'a str, location: &'a str) -> ResourceMeta<'a> {
    ResourceMeta { id, created: time(), last_modified: time(), version: "W/\"1\"", location }
}

pub fn member(value: &str, kind: MemberKind) -> MemberOut {
    MemberOut {
        value: value.to_string(),
        display: Some(format!("display of {value}")),
        kind,
        location: format!("https://scim.example/{}s/{value}", kind.as_str()),
    }
}

/// The full rendered sample (what filters are evaluated on).
pub fn rendered(kind: ResourceKind) -> &'static Value {
    static USER: OnceLock<Value> = OnceLock::new();
    static GROUP: OnceLock<Value> = OnceLock::new();
    let cell = if kind == ResourceKind::User { &USER } else { &GROUP };
    cell.get_or_init(|| render_sample(kind))
}

fn render_sample(kind: ResourceKind) -> Value {
    let members = [member("u1", MemberKind::User), member("g2", MemberKind::Group)];
    let groups = [custodian_scim::resource::GroupRefOut {
        value: "g1".into(),
        display: Some("Engineering".into()),
        location: "https://scim.example/Groups/g1".into(),
        direct: true,
    }];
    render(kind, doc(kind), &meta("id-1", "https://scim.example/x/id-1"), Some(&members), Some(&groups))
}
