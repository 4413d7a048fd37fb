//! `resource`: POST/PUT bodies, canonicalised, rendered and read back.

use custodian_scim::resource::{MemberKind, display_of, parse_resource, render};
use custodian_scim::schema::ResourceKind;
use serde_json::Value;

use crate::samples;

fn check_kind(kind: ResourceKind, body: &Value) {
    let input = match parse_resource(kind, body) {
        Ok(input) => input,
        Err(e) => return crate::assert_client_error(&e, "parse_resource"),
    };
    let doc = &input.doc;
    assert!(doc.is_object(), "the canonical doc is not an object: {doc}");
    for key in ["id", "meta", "schemas", "password", "groups", "members"] {
        assert!(doc.get(key).is_none(), "the stored doc holds {key}: {doc}");
    }
    if kind == ResourceKind::User {
        assert!(input.members.is_none(), "a user with members");
    }

    // Canonical is a fixpoint: the doc parses to itself.
    let again = parse_resource(kind, doc);
    assert!(again.is_ok(), "the canonical doc does not parse: {again:?}\n{doc}");
    if let Ok(again) = &again {
        assert_eq!(&again.doc, doc, "parse_resource is not idempotent");
    }

    // What is rendered reads back as the same doc and the same members.
    let members: Vec<_> =
        input.members.iter().flatten().map(|m| samples::member(&m.value, m.kind.unwrap_or(MemberKind::User))).collect();
    let rendered = render(kind, doc, &samples::meta("id-1", "https://scim.example/x/id-1"), Some(&members), None);
    assert!(rendered.get("password").is_none(), "a password was rendered");
    let back = parse_resource(kind, &rendered);
    assert!(back.is_ok(), "the rendered resource does not parse: {back:?}\n{rendered}");
    if let Ok(back) = back {
        assert_eq!(&back.doc, doc, "render then parse changed the doc");
        if kind == ResourceKind::Group && !members.is_empty() {
            let sent: Vec<_> = members.iter().map(|m| (m.value.clone(), Some(m.kind))).collect();
            let read: Vec<_> = back.members.iter().flatten().map(|m| (m.value.clone(), m.kind)).collect();
            assert_eq!(read, sent, "render then parse changed the members");
        }
    }
    let _ = display_of(kind, doc);
}

/// Fuzz target `resource`: the input is a POST/PUT body (JSON), as a user and a group.
pub fn check_resource(data: &[u8]) {
    if data.len() > crate::MAX_INPUT {
        return;
    }
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    check_kind(ResourceKind::User, &body);
    check_kind(ResourceKind::Group, &body);
}
