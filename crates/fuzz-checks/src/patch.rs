//! `patch`: PATCH bodies, parsed and applied to a stored user and a stored group.

use custodian_scim::patch::{MemberChange, apply_patch, parse_patch};
use custodian_scim::resource::parse_resource;
use custodian_scim::schema::ResourceKind;
use serde_json::Value;

use crate::samples;

fn check_kind(kind: ResourceKind, body: &Value) {
    let req = match parse_patch(body) {
        Ok(req) => req,
        Err(e) => return crate::assert_client_error(&e, "parse_patch"),
    };
    let before = samples::doc(kind).clone();
    let mut doc = before.clone();
    match apply_patch(kind, &mut doc, &req) {
        Err(e) => {
            crate::assert_client_error(&e, "apply_patch");
            // A failed request changes nothing, not even partly.
            assert_eq!(doc, before, "a failed PATCH ({e}) changed the doc");
        }
        Ok(outcome) => {
            assert_eq!(outcome.doc_changed, doc != before, "doc_changed disagrees with the doc");
            // The result obeys the rules of a PUT: it is its own canonical form.
            let reparsed = parse_resource(kind, &doc);
            assert!(reparsed.is_ok(), "the patched doc does not parse: {reparsed:?}\n{doc}");
            if let Ok(input) = reparsed {
                assert_eq!(input.doc, doc, "the patched doc is not canonical");
                assert_eq!(input.members, None, "the stored doc holds members");
                assert!(!input.password_supplied, "the stored doc holds a password");
            }
            if kind == ResourceKind::User {
                assert!(outcome.member_changes.is_empty(), "member changes on a user");
            }
            for change in &outcome.member_changes {
                let ids: Vec<&str> = match change {
                    MemberChange::Add(m) | MemberChange::Replace(m) => m.iter().map(|m| m.value.as_str()).collect(),
                    MemberChange::Remove(ids) => ids.iter().map(String::as_str).collect(),
                    MemberChange::RemoveAll => Vec::new(),
                };
                assert!(ids.iter().all(|id| !id.is_empty()), "an empty member id in {change:?}");
            }
            // The same request again, on the result, never panics either.
            let mut again = doc.clone();
            if let Err(e) = apply_patch(kind, &mut again, &req) {
                crate::assert_client_error(&e, "apply_patch (again)");
                assert_eq!(again, doc, "a failed PATCH ({e}) changed the doc");
            }
        }
    }
}

/// Fuzz target `patch`: the input is a PATCH body (JSON), applied to both samples.
pub fn check_patch(data: &[u8]) {
    if data.len() > crate::MAX_INPUT {
        return;
    }
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    check_kind(ResourceKind::User, &body);
    check_kind(ResourceKind::Group, &body);
}
