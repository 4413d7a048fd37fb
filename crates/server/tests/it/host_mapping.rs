//! The mapping rules (issue 3, README "mapping rules"), one scenario each over real HTTP:
//! hosts in, users and groups pushed the way Okta and Entra push them, the host's
//! `end_users[0]` checked field by field, the change, and the check again.

use std::collections::BTreeSet;

use chrono::DateTime;
use serde_json::{Value, json};

use crate::support::{TestApp, host_body, okta_user};

const CORE: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

fn patch(ops: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": ops})
}

/// Okta's create body with the Enterprise extension's department (Okta sends it when the
/// attribute is mapped).
fn okta_user_in(user_name: &str, given: &str, family: &str, department: &str) -> Value {
    let mut u = okta_user(user_name, given, family);
    u["schemas"] = json!([CORE, ENT]);
    u[ENT] = json!({"department": department});
    u
}

/// Entra's create body: a work email that may differ from the userName, a department.
fn entra_user(user_name: &str, email: &str, given: &str, family: &str, department: &str) -> Value {
    json!({
        "schemas": [CORE, ENT],
        "externalId": format!("ext-{user_name}"),
        "userName": user_name,
        "active": true,
        "emails": [{"primary": true, "type": "work", "value": email}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": format!("{given} {family}"), "familyName": family, "givenName": given},
        "roles": [],
        ENT: {"department": department, "employeeNumber": "4711"}
    })
}

async fn create(app: &TestApp, body: Value) -> String {
    app.create_user_with(body).await["id"].as_str().unwrap().to_string()
}

/// A PATCH that must succeed: 200 with the resource (users) or 204 (groups).
async fn scim_patch(app: &TestApp, path: &str, ops: Value) {
    let r = app.patch(path, patch(ops)).await;
    let expected = if path.starts_with("/Groups/") { 204 } else { 200 };
    assert_eq!(r.status, expected, "PATCH {path}: {}", r.text);
}

/// What a host's end user must show.
struct Want<'a> {
    idp_id: &'a str,
    username: &'a str,
    full_name: &'a str,
    /// Sorted.
    groups: &'a [&'a str],
    department: &'a str,
    active: bool,
    other_emails: Value,
}

impl<'a> Want<'a> {
    fn new(idp_id: &'a str, username: &'a str, full_name: &'a str) -> Self {
        Want { idp_id, username, full_name, groups: &[], department: "", active: true, other_emails: json!([]) }
    }
    fn department(mut self, d: &'a str) -> Self {
        self.department = d;
        self
    }
    fn groups(mut self, g: &'a [&'a str]) -> Self {
        self.groups = g;
        self
    }
    fn active(mut self, a: bool) -> Self {
        self.active = a;
        self
    }
    fn other_emails(mut self, e: Value) -> Self {
        self.other_emails = e;
        self
    }
}

const END_USER_FIELDS: [&str; 9] = [
    "idp_active",
    "idp_connection",
    "idp_department",
    "idp_full_name",
    "idp_groups",
    "idp_id",
    "idp_info_updated_at",
    "idp_username",
    "other_emails",
];

/// Checks one `end_users` entry field by field against `want` and against the user as
/// SCIM answers it (its `meta.lastModified` is `idp_info_updated_at`).
async fn check_end_user(app: &TestApp, u: &Value, want: &Want<'_>) {
    let keys: BTreeSet<&str> = u.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, BTreeSet::from(END_USER_FIELDS), "end user fields: {u}");
    assert_eq!(u["idp_id"], want.idp_id, "idp_id: {u}");
    assert_eq!(u["idp_connection"], "default", "the maintainer token writes to `default`: {u}");
    assert_eq!(u["idp_username"], want.username, "idp_username: {u}");
    assert_eq!(u["idp_full_name"], want.full_name, "idp_full_name: {u}");
    assert_eq!(u["idp_groups"], json!(want.groups), "idp_groups: {u}");
    assert_eq!(u["idp_department"], want.department, "idp_department: {u}");
    assert_eq!(u["idp_active"], want.active, "idp_active: {u}");
    assert_eq!(u["other_emails"], want.other_emails, "other_emails: {u}");
    let scim = app.get(&format!("/Users/{}", want.idp_id)).await;
    assert_eq!(scim.status, 200, "{}", scim.text);
    assert_eq!(scim.body["userName"], want.username, "SCIM and the host disagree: {}", scim.text);
    let last_modified = DateTime::parse_from_rfc3339(scim.body["meta"]["lastModified"].as_str().unwrap()).unwrap();
    let shown = DateTime::parse_from_rfc3339(u["idp_info_updated_at"].as_str().unwrap_or_else(|| panic!("{u}")))
        .unwrap_or_else(|e| panic!("idp_info_updated_at is not RFC 3339 ({e}): {u}"));
    assert_eq!(shown.timestamp(), last_modified.timestamp(), "idp_info_updated_at is the user's lastModified: {u}");
}

/// Reads the host and asserts it is linked to `want`, field by field; returns the host.
async fn assert_linked(app: &TestApp, host_id: i64, want: &Want<'_>) -> Value {
    let host = app.host(host_id).await;
    assert_eq!(host["idp_link"]["state"], "linked", "{host}");
    assert_eq!(host["idp_link"]["candidates"], json!([]), "{host}");
    let users = host["end_users"].as_array().unwrap();
    assert_eq!(users.len(), 1, "one end user: {host}");
    check_end_user(app, &users[0], want).await;
    host
}

/// Reads the host and asserts it has no IdP user and this link state; returns the host.
async fn assert_no_idp_user(app: &TestApp, host_id: i64, state: &str) -> Value {
    let host = app.host(host_id).await;
    assert_eq!(host["idp_link"]["state"], state, "{host}");
    for u in host["end_users"].as_array().unwrap() {
        assert_eq!(u["idp_id"], "", "no IdP user expected: {host}");
        assert_eq!(u["idp_username"], "", "no IdP user expected: {host}");
        assert_eq!(u["idp_groups"], json!([]), "{host}");
        assert!(u["idp_active"].is_null(), "{host}");
        assert!(u["idp_info_updated_at"].is_null(), "{host}");
    }
    host
}

async fn history(app: &TestApp, host_id: i64) -> Vec<Value> {
    let r = app.api_get(&format!("/hosts/{host_id}/end_user_history")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["host_id"], host_id);
    r.body["history"].as_array().unwrap().clone()
}

/// Every activity, newest first.
async fn activities(app: &TestApp) -> Vec<Value> {
    let r = app.api_get("/activities?per_page=1000").await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["activities"].as_array().unwrap().clone()
}

fn of_type<'a>(acts: &'a [Value], kind: &str, host_id: i64) -> Vec<&'a Value> {
    acts.iter().filter(|a| a["type"] == kind && a["details"]["host_id"] == host_id).collect()
}

/// Asserts one history entry: who, why linked, and whether (and why) it was closed.
fn assert_entry(e: &Value, idp_id: &str, username: &str, link_cause: &str, unlink_cause: Option<&str>) {
    assert_eq!(e["idp_id"], idp_id, "{e}");
    assert_eq!(e["idp_username"], username, "{e}");
    assert_eq!(e["link_cause"], link_cause, "{e}");
    assert!(DateTime::parse_from_rfc3339(e["linked_at"].as_str().unwrap()).is_ok(), "{e}");
    match unlink_cause {
        Some(cause) => {
            assert_eq!(e["unlink_cause"], cause, "{e}");
            let linked = DateTime::parse_from_rfc3339(e["linked_at"].as_str().unwrap()).unwrap();
            let unlinked =
                DateTime::parse_from_rfc3339(e["unlinked_at"].as_str().unwrap_or_else(|| panic!("{e}"))).unwrap();
            assert!(unlinked >= linked, "{e}");
        }
        None => {
            assert!(e["unlinked_at"].is_null(), "still open: {e}");
            assert!(e["unlink_cause"].is_null(), "still open: {e}");
        }
    }
}

#[tokio::test]
async fn host_enrolled_before_its_okta_user_exists_links_on_the_next_read_after_the_user_is_created() {
    let app = TestApp::spawn().await;
    let host = app.create_host(host_body("h1", Some("jane@example.com"))).await;
    let id = host["id"].as_i64().unwrap();
    assert_eq!(host["idp_link"]["state"], "unlinked", "{host}");
    assert_eq!(host["idp_link"]["identity"], "jane@example.com");
    assert_eq!(host["end_users"], json!([]), "no IdP user and no other email: {host}");

    let uid = create(&app, okta_user_in("jane@example.com", "Jane", "Doe", "Engineering")).await;

    assert_linked(&app, id, &Want::new(&uid, "jane@example.com", "Jane Doe").department("Engineering")).await;
    let h = history(&app, id).await;
    assert_eq!(h.len(), 1, "{h:?}");
    assert_entry(&h[0], &uid, "jane@example.com", "scim_change", None);
    let acts = activities(&app).await;
    let linked = of_type(&acts, "linked_host_end_user", id);
    assert_eq!(linked.len(), 1, "{acts:?}");
    assert_eq!(linked[0]["details"]["idp_id"], uid.as_str());
    assert_eq!(linked[0]["details"]["cause"], "scim_change");
}

#[tokio::test]
async fn entra_user_created_before_the_host_is_linked_at_host_creation() {
    let app = TestApp::spawn().await;
    let uid = create(&app, entra_user("jane@contoso.com", "jane@contoso.com", "Jane", "Doe", "Sales")).await;

    let host = app.create_host(host_body("h1", Some("jane@contoso.com"))).await;
    let id = host["id"].as_i64().unwrap();
    assert_eq!(host["idp_link"]["state"], "linked", "the creation answer already shows the link: {host}");
    check_end_user(&app, &host["end_users"][0], &Want::new(&uid, "jane@contoso.com", "Jane Doe").department("Sales"))
        .await;

    assert_linked(&app, id, &Want::new(&uid, "jane@contoso.com", "Jane Doe").department("Sales")).await;
    let h = history(&app, id).await;
    assert_eq!(h.len(), 1, "{h:?}");
    assert_entry(&h[0], &uid, "jane@contoso.com", "host_change", None);
}

#[tokio::test]
async fn identity_matches_username_without_regard_to_case_before_any_email() {
    let app = TestApp::spawn().await;
    let jane = create(&app, okta_user("Jane.Doe@Example.com", "Jane", "Doe")).await;
    // Another user has the same address among its emails: userName wins, no ambiguity.
    let mut other = entra_user("jdoe@contoso.onmicrosoft.com", "jane.doe@example.com", "John", "Doe", "Sales");
    other["emails"] = json!([
        {"primary": true, "type": "work", "value": "jdoe@contoso.onmicrosoft.com"},
        {"type": "other", "value": "jane.doe@example.com"}
    ]);
    create(&app, other).await;

    let id = app.enroll_host("h1", Some("JANE.DOE@example.COM")).await;
    let host = assert_linked(&app, id, &Want::new(&jane, "Jane.Doe@Example.com", "Jane Doe")).await;
    assert_eq!(host["idp_link"]["identity"], "JANE.DOE@example.COM", "the identity is shown as written: {host}");

    // Late creation in another case matches too.
    let late = app.enroll_host("h2", Some("MAX@EXAMPLE.COM")).await;
    assert_no_idp_user(&app, late, "unlinked").await;
    let max = create(&app, okta_user("max@example.com", "Max", "Muster")).await;
    assert_linked(&app, late, &Want::new(&max, "max@example.com", "Max Muster")).await;
}

#[tokio::test]
async fn failing_a_username_the_single_user_having_the_identity_among_its_emails_is_linked() {
    let app = TestApp::spawn().await;
    let id = app.enroll_host("h1", Some("jane.doe@CONTOSO.com")).await;
    assert_no_idp_user(&app, id, "unlinked").await;

    let uid =
        create(&app, entra_user("jdoe@contoso.onmicrosoft.com", "Jane.Doe@contoso.com", "Jane", "Doe", "Sales")).await;
    assert_linked(&app, id, &Want::new(&uid, "jdoe@contoso.onmicrosoft.com", "Jane Doe").department("Sales")).await;

    // And at host creation.
    let id2 = app.enroll_host("h2", Some("jane.doe@contoso.com")).await;
    assert_linked(&app, id2, &Want::new(&uid, "jdoe@contoso.onmicrosoft.com", "Jane Doe").department("Sales")).await;
}

#[tokio::test]
async fn two_users_with_the_email_leave_the_host_ambiguous_until_one_of_them_drops_it() {
    let app = TestApp::spawn().await;
    let with_shared = |user_name: &str, given: &str| {
        let mut u = okta_user(user_name, given, "Doe");
        u["emails"] = json!([
            {"primary": true, "type": "work", "value": user_name},
            {"type": "other", "value": "shared@example.com"}
        ]);
        u
    };
    let a = create(&app, with_shared("a@example.com", "Ann")).await;
    let b = create(&app, with_shared("b@example.com", "Bob")).await;

    let id = app.enroll_host("h1", Some("shared@example.com")).await;
    let host = assert_no_idp_user(&app, id, "ambiguous").await;
    assert_eq!(host["end_users"], json!([]), "{host}");
    assert_eq!(host["idp_link"]["identity"], "shared@example.com");
    let mut candidates: Vec<String> =
        host["idp_link"]["candidates"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
    candidates.sort();
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    assert_eq!(candidates, both, "{host}");
    assert!(host["idp_link"]["detail"].as_str().is_some_and(|d| !d.is_empty()), "{host}");
    assert!(history(&app, id).await.is_empty());

    let acts = activities(&app).await;
    let amb = of_type(&acts, "ambiguous_host_end_user", id);
    assert_eq!(amb.len(), 1, "one ambiguity recorded: {acts:?}");
    let mut ids: Vec<String> = amb[0]["details"]["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["idp_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, both, "{}", amb[0]);
    // An ambiguous host is not a laptop to recover.
    assert!(app.host_ids("idp_active=false").await.is_empty());

    // Ann's IdP drops the shared address: the host now belongs to Bob.
    scim_patch(
        &app,
        &format!("/Users/{a}"),
        json!([{"op": "remove", "path": "emails[value eq \"shared@example.com\"]"}]),
    )
    .await;
    assert_linked(&app, id, &Want::new(&b, "b@example.com", "Bob Doe")).await;
    let h = history(&app, id).await;
    assert_eq!(h.len(), 1, "{h:?}");
    assert_entry(&h[0], &b, "b@example.com", "scim_change", None);
    let acts = activities(&app).await;
    let linked = of_type(&acts, "linked_host_end_user", id);
    assert_eq!(linked.len(), 1, "{acts:?}");
    assert_eq!(linked[0]["details"]["idp_id"], b.as_str());
}

#[tokio::test]
async fn okta_rename_by_put_keeps_the_link_and_shows_the_new_username_at_once() {
    let app = TestApp::spawn().await;
    let uid = create(&app, okta_user("jane@example.com", "Jane", "Doe")).await;
    let id = app.enroll_host("h1", Some("jane@example.com")).await;
    assert_linked(&app, id, &Want::new(&uid, "jane@example.com", "Jane Doe")).await;

    let mut user = app.get(&format!("/Users/{uid}")).await.body;
    user["userName"] = json!("jane.smith@example.com");
    user["name"] = json!({"givenName": "Jane", "familyName": "Smith"});
    user["displayName"] = json!("Jane Smith");
    user["emails"] = json!([{"primary": true, "value": "jane.smith@example.com", "type": "work"}]);
    let r = app.put(&format!("/Users/{uid}"), user).await;
    assert_eq!(r.status, 200, "{}", r.text);

    let host = assert_linked(&app, id, &Want::new(&uid, "jane.smith@example.com", "Jane Smith")).await;
    assert_eq!(host["idp_link"]["identity"], "jane@example.com", "the host's enrollment account is unchanged");
    assert_eq!(app.host_ids("idp_username=jane.smith@example.com").await, vec![id]);
    assert!(app.host_ids("idp_username=jane@example.com").await.is_empty());

    // A new user taking the old name does not take the host: the link follows its user.
    create(&app, okta_user("jane@example.com", "Other", "Jane")).await;
    assert_linked(&app, id, &Want::new(&uid, "jane.smith@example.com", "Jane Smith")).await;
    let h = history(&app, id).await;
    assert_eq!(h.len(), 1, "the link never changed: {h:?}");
    assert_entry(&h[0], &uid, "jane@example.com", "host_change", None);
}

#[tokio::test]
async fn rename_and_email_change_by_patch_keep_the_link() {
    let app = TestApp::spawn().await;
    let uid = create(&app, entra_user("jane@contoso.com", "jane@contoso.com", "Jane", "Doe", "Sales")).await;
    let id = app.enroll_host("h1", Some("jane@contoso.com")).await;
    assert_linked(&app, id, &Want::new(&uid, "jane@contoso.com", "Jane Doe").department("Sales")).await;

    // Entra: Replace userName.
    scim_patch(
        &app,
        &format!("/Users/{uid}"),
        json!([{"op": "Replace", "path": "userName", "value": "jane.doe@contoso.com"}]),
    )
    .await;
    assert_linked(&app, id, &Want::new(&uid, "jane.doe@contoso.com", "Jane Doe").department("Sales")).await;

    // Entra: Replace the work email.
    scim_patch(
        &app,
        &format!("/Users/{uid}"),
        json!([{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "jd@contoso.com"}]),
    )
    .await;
    assert_linked(&app, id, &Want::new(&uid, "jane.doe@contoso.com", "Jane Doe").department("Sales")).await;

    // Okta: pathless replace of userName and names.
    scim_patch(
        &app,
        &format!("/Users/{uid}"),
        json!([{"op": "replace", "value": {"userName": "j.doe@contoso.com", "name.familyName": "Roe"}}]),
    )
    .await;
    assert_linked(&app, id, &Want::new(&uid, "j.doe@contoso.com", "Jane Roe").department("Sales")).await;
    let h = history(&app, id).await;
    assert_eq!(h.len(), 1, "{h:?}");
    assert_entry(&h[0], &uid, "jane@contoso.com", "host_change", None);
}

#[tokio::test]
async fn okta_deactivation_keeps_the_link_with_idp_active_false_and_lists_the_laptop_to_recover() {
    let app = TestApp::spawn().await;
    let uid = create(&app, okta_user("jane@example.com", "Jane", "Doe")).await;
    let other = create(&app, okta_user("john@example.com", "John", "Roe")).await;
    let id = app.enroll_host("h1", Some("jane@example.com")).await;
    let kept = app.enroll_host("h2", Some("john@example.com")).await;
    assert_linked(&app, id, &Want::new(&uid, "jane@example.com", "Jane Doe")).await;
    assert!(app.host_ids("idp_active=false").await.is_empty());

    scim_patch(&app, &format!("/Users/{uid}"), json!([{"op": "replace", "value": {"active": false}}])).await;
    assert_linked(&app, id, &Want::new(&uid, "jane@example.com", "Jane Doe").active(false)).await;
    assert_eq!(app.host_ids("idp_active=false").await, vec![id]);
    assert_eq!(app.api_get("/hosts/count?idp_active=false").await.body["count"], 1);
    assert_eq!(app.host_ids("idp_active=true").await, vec![kept]);
    let h = history(&app, id).await;
    assert_eq!(h.len(), 1, "a deactivation is no unlink: {h:?}");
    assert_entry(&h[0], &uid, "jane@example.com", "host_change", None);

    // Okta reactivates with a pathless PATCH too.
    scim_patch(&app, &format!("/Users/{uid}"), json!([{"op": "replace", "value": {"active": true}}])).await;
    assert_linked(&app, id, &Want::new(&uid, "jane@example.com", "Jane Doe")).await;
    assert!(app.host_ids("idp_active=false").await.is_empty());
    assert_linked(&app, kept, &Want::new(&other, "john@example.com", "John Roe")).await;
}

#[tokio::test]
async fn entra_deactivation_with_string_false_keeps_the_link_and_string_true_reactivates() {
    let app = TestApp::spawn().await;
    let uid = create(&app, entra_user("jane@contoso.com", "jane@contoso.com", "Jane", "Doe", "Sales")).await;
    let id = app.enroll_host("h1", Some("jane@contoso.com")).await;

    scim_patch(&app, &format!("/Users/{uid}"), json!([{"op": "Replace", "path": "active", "value": "False"}])).await;
    assert_linked(&app, id, &Want::new(&uid, "jane@contoso.com", "Jane Doe").department("Sales").active(false)).await;
    assert_eq!(app.host_ids("idp_active=false").await, vec![id]);

    scim_patch(&app, &format!("/Users/{uid}"), json!([{"op": "Replace", "path": "active", "value": "True"}])).await;
    assert_linked(&app, id, &Want::new(&uid, "jane@contoso.com", "Jane Doe").department("Sales")).await;
    assert!(app.host_ids("idp_active=false").await.is_empty());
    assert_eq!(app.host_ids("idp_active=true").await, vec![id]);
}

#[tokio::test]
async fn deletion_in_the_idp_unlinks_the_host_until_a_new_user_with_the_same_username_arrives() {
    let app = TestApp::spawn().await;
    let uid = create(&app, okta_user("jane@example.com", "Jane", "Doe")).await;
    let john = create(&app, okta_user("john@example.com", "John", "Roe")).await;
    let id = app.enroll_host("h1", Some("jane@example.com")).await;
    let untouched = app.enroll_host("h2", Some("john@example.com")).await;
    assert_linked(&app, id, &Want::new(&uid, "jane@example.com", "Jane Doe")).await;

    let r = app.delete(&format!("/Users/{uid}")).await;
    assert_eq!(r.status, 204, "{}", r.text);

    let host = assert_no_idp_user(&app, id, "user_deleted").await;
    assert_eq!(host["end_users"], json!([]), "{host}");
    assert_eq!(host["idp_link"]["identity"], "jane@example.com", "the enrollment account is kept: {host}");
    assert_eq!(app.host_ids("idp_active=false").await, vec![id], "a laptop to recover");
    assert_eq!(app.api_get("/hosts/count?idp_active=false").await.body["count"], 1);
    assert_linked(&app, untouched, &Want::new(&john, "john@example.com", "John Roe")).await;
    let h = history(&app, id).await;
    assert_eq!(h.len(), 1, "{h:?}");
    assert_entry(&h[0], &uid, "jane@example.com", "host_change", Some("scim_change"));
    let acts = activities(&app).await;
    let unlinked = of_type(&acts, "unlinked_host_end_user", id);
    assert_eq!(unlinked.len(), 1, "{acts:?}");
    assert_eq!(unlinked[0]["details"]["idp_id"], uid.as_str());
    assert_eq!(unlinked[0]["details"]["cause"], "scim_change");

    // The device-management side reports the host again, unchanged: still to recover.
    let r = app.api_post("/hosts", host_body("h1", Some("jane@example.com"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_no_idp_user(&app, id, "user_deleted").await;
    assert_eq!(app.host_ids("idp_active=false").await, vec![id], "a re-report must not hide the laptop to recover");

    // A new user with the same userName arrives later: the laptop is no longer to recover.
    let again = create(&app, okta_user("jane@example.com", "Jane", "Newhire")).await;
    assert_ne!(again, uid);
    assert_linked(&app, id, &Want::new(&again, "jane@example.com", "Jane Newhire")).await;
    assert!(app.host_ids("idp_active=false").await.is_empty());
    let h = history(&app, id).await;
    assert_eq!(h.len(), 2, "{h:?}");
    assert_entry(&h[0], &again, "jane@example.com", "scim_change", None);
    assert_entry(&h[1], &uid, "jane@example.com", "host_change", Some("scim_change"));
}

#[tokio::test]
async fn admin_idp_mapping_overrides_the_enrollment_account_relinks_and_is_recorded() {
    let app = TestApp::spawn().await;
    let jane = create(&app, okta_user("jane@example.com", "Jane", "Doe")).await;
    let john = create(&app, okta_user_in("john@example.com", "John", "Roe", "Finance")).await;
    let id = app.enroll_host("h1", Some("jane@example.com")).await;
    assert_linked(&app, id, &Want::new(&jane, "jane@example.com", "Jane Doe")).await;

    let r = app
        .api_put(&format!("/hosts/{id}/device_mapping"), json!({"email": "John@Example.com", "source": "idp"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["host_id"], id);
    assert_eq!(r.body["idp_link"]["state"], "linked", "{}", r.text);
    let mut mapping: Vec<(String, String)> = r.body["device_mapping"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["email"].as_str().unwrap().to_string(), m["source"].as_str().unwrap().to_string()))
        .collect();
    mapping.sort();
    assert_eq!(
        mapping,
        vec![
            ("John@Example.com".to_string(), "idp".to_string()),
            ("jane@example.com".to_string(), "mdm_idp_accounts".to_string())
        ]
    );

    let host = assert_linked(
        &app,
        id,
        &Want::new(&john, "john@example.com", "John Roe")
            .department("Finance")
            .other_emails(json!([{"email": "jane@example.com", "source": "mdm_idp_accounts"}])),
    )
    .await;
    assert_eq!(host["idp_link"]["identity"], "John@Example.com");

    let h = history(&app, id).await;
    assert_eq!(h.len(), 2, "{h:?}");
    assert_entry(&h[0], &john, "john@example.com", "admin_action", None);
    assert_entry(&h[1], &jane, "jane@example.com", "host_change", Some("admin_action"));

    let acts = activities(&app).await;
    let edited = of_type(&acts, "edited_host_idp_username", id);
    assert_eq!(edited.len(), 1, "{acts:?}");
    assert_eq!(edited[0]["details"]["idp_username"], "John@Example.com");
    assert_eq!(edited[0]["actor_full_name"], "okta", "the operator behind the token: {}", edited[0]);
    assert!(edited[0]["actor_id"].is_i64(), "{}", edited[0]);
    assert_eq!(of_type(&acts, "unlinked_host_end_user", id).len(), 1, "{acts:?}");
    assert_eq!(of_type(&acts, "linked_host_end_user", id).len(), 2, "{acts:?}");
}

#[tokio::test]
async fn admin_mapping_matching_no_user_is_kept_answered_unlinked_and_links_when_the_user_arrives() {
    let app = TestApp::spawn().await;
    let jane = create(&app, okta_user("jane@example.com", "Jane", "Doe")).await;
    let id = app.enroll_host("h1", Some("jane@example.com")).await;
    assert_linked(&app, id, &Want::new(&jane, "jane@example.com", "Jane Doe")).await;

    let r = app
        .api_put(&format!("/hosts/{id}/device_mapping"), json!({"email": "nobody@example.com", "source": "idp"}))
        .await;
    assert_eq!(r.status, 200, "the mapping is kept, not refused: {}", r.text);
    assert_eq!(r.body["idp_link"]["state"], "unlinked", "{}", r.text);
    assert_eq!(r.body["idp_link"]["identity"], "nobody@example.com", "{}", r.text);
    assert!(r.body["idp_link"]["detail"].as_str().is_some_and(|d| !d.is_empty()), "{}", r.text);

    let m = app.api_get(&format!("/hosts/{id}/device_mapping")).await;
    assert_eq!(m.status, 200, "{}", m.text);
    assert!(
        m.body["device_mapping"].as_array().unwrap().contains(&json!({"email": "nobody@example.com", "source": "idp"})),
        "{}",
        m.text
    );
    assert_eq!(m.body["idp_link"]["state"], "unlinked");
    let host = assert_no_idp_user(&app, id, "unlinked").await;
    assert_eq!(
        host["end_users"][0]["other_emails"],
        json!([{"email": "jane@example.com", "source": "mdm_idp_accounts"}]),
        "{host}"
    );
    // Recorded, not silent.
    let acts = activities(&app).await;
    assert_eq!(of_type(&acts, "edited_host_idp_username", id).len(), 1, "{acts:?}");
    assert_eq!(of_type(&acts, "unlinked_host_end_user", id).len(), 1, "{acts:?}");
    let h = history(&app, id).await;
    assert_entry(&h[0], &jane, "jane@example.com", "host_change", Some("admin_action"));

    let nobody = create(&app, okta_user("nobody@example.com", "No", "Body")).await;
    assert_linked(
        &app,
        id,
        &Want::new(&nobody, "nobody@example.com", "No Body")
            .other_emails(json!([{"email": "jane@example.com", "source": "mdm_idp_accounts"}])),
    )
    .await;
    let h = history(&app, id).await;
    assert_eq!(h.len(), 2, "{h:?}");
    assert_entry(&h[0], &nobody, "nobody@example.com", "scim_change", None);
}

#[tokio::test]
async fn deleting_the_admin_mapping_falls_back_to_the_enrollment_account_and_relinks() {
    let app = TestApp::spawn().await;
    let jane = create(&app, okta_user("jane@example.com", "Jane", "Doe")).await;
    let john = create(&app, okta_user("john@example.com", "John", "Roe")).await;
    let id = app.enroll_host("h1", Some("jane@example.com")).await;
    let r = app
        .api_put(&format!("/hosts/{id}/device_mapping"), json!({"email": "john@example.com", "source": "idp"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_linked(
        &app,
        id,
        &Want::new(&john, "john@example.com", "John Roe")
            .other_emails(json!([{"email": "jane@example.com", "source": "mdm_idp_accounts"}])),
    )
    .await;

    let r = app.api_delete(&format!("/hosts/{id}/device_mapping/idp")).await;
    assert!(r.status.is_success(), "{} {}", r.status, r.text);

    let host = assert_linked(&app, id, &Want::new(&jane, "jane@example.com", "Jane Doe")).await;
    assert_eq!(host["idp_link"]["identity"], "jane@example.com");
    let m = app.api_get(&format!("/hosts/{id}/device_mapping")).await;
    assert_eq!(m.body["device_mapping"], json!([{"email": "jane@example.com", "source": "mdm_idp_accounts"}]));
    let h = history(&app, id).await;
    assert_eq!(h.len(), 3, "{h:?}");
    assert_entry(&h[0], &jane, "jane@example.com", "admin_action", None);
    assert_entry(&h[1], &john, "john@example.com", "admin_action", Some("admin_action"));
    assert_entry(&h[2], &jane, "jane@example.com", "host_change", Some("admin_action"));
    let acts = activities(&app).await;
    let deleted = of_type(&acts, "deleted_host_idp_username", id);
    assert_eq!(deleted.len(), 1, "{acts:?}");
    assert_eq!(deleted[0]["details"]["previous_idp_username"], "john@example.com");
}

#[tokio::test]
async fn custom_mapping_does_not_change_the_link_and_shows_in_other_emails() {
    let app = TestApp::spawn().await;
    let jane = create(&app, okta_user("jane@example.com", "Jane", "Doe")).await;
    create(&app, okta_user("jane.personal@gmail.com", "Someone", "Else")).await;
    let id = app.enroll_host("h1", Some("jane@example.com")).await;

    let r = app
        .api_put(
            &format!("/hosts/{id}/device_mapping"),
            json!({"email": "jane.personal@gmail.com", "source": "custom"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["idp_link"]["state"], "linked");
    assert!(
        r.body["device_mapping"]
            .as_array()
            .unwrap()
            .contains(&json!({"email": "jane.personal@gmail.com", "source": "custom"})),
        "{}",
        r.text
    );
    assert_linked(
        &app,
        id,
        &Want::new(&jane, "jane@example.com", "Jane Doe")
            .other_emails(json!([{"email": "jane.personal@gmail.com", "source": "custom"}])),
    )
    .await;
    assert_eq!(history(&app, id).await.len(), 1);
    assert!(of_type(&activities(&app).await, "unlinked_host_end_user", id).is_empty());
}

#[tokio::test]
async fn host_update_with_a_new_enrollment_account_relinks_and_an_update_without_mappings_keeps_them() {
    let app = TestApp::spawn().await;
    let jane = create(&app, okta_user("jane@example.com", "Jane", "Doe")).await;
    let john = create(&app, okta_user("john@example.com", "John", "Roe")).await;
    let id = app.enroll_host("h1", Some("jane@example.com")).await;
    assert_linked(&app, id, &Want::new(&jane, "jane@example.com", "Jane Doe")).await;

    // Re-enrolled by John.
    let mut body = host_body("h1", Some("john@example.com"));
    body["device_mapping"]
        .as_array_mut()
        .unwrap()
        .push(json!({"email": "john@chrome.example", "source": "google_chrome_profiles"}));
    let r = app.api_post("/hosts", body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["host"]["id"], id);
    let want_john = Want::new(&john, "john@example.com", "John Roe")
        .other_emails(json!([{"email": "john@chrome.example", "source": "google_chrome_profiles"}]));
    assert_linked(&app, id, &want_john).await;
    let h = history(&app, id).await;
    assert_eq!(h.len(), 2, "{h:?}");
    assert_entry(&h[0], &john, "john@example.com", "host_change", None);
    assert_entry(&h[1], &jane, "jane@example.com", "host_change", Some("host_change"));

    // An inventory update without device_mapping leaves the mappings and the link.
    let mut body = host_body("h1", None);
    body.as_object_mut().unwrap().remove("device_mapping");
    body["os_version"] = json!("macOS 15.5");
    let r = app.api_post("/hosts", body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["host"]["os_version"], "macOS 15.5");
    assert_linked(&app, id, &want_john).await;
    assert_eq!(history(&app, id).await.len(), 2);
    let m = app.api_get(&format!("/hosts/{id}/device_mapping")).await;
    assert_eq!(m.body["device_mapping"].as_array().unwrap().len(), 2, "{}", m.text);

    // An update that clears the enrollment account unlinks, and says so.
    let r = app.api_post("/hosts", host_body("h1", None)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_no_idp_user(&app, id, "no_identity").await;
    let h = history(&app, id).await;
    assert_entry(&h[0], &john, "john@example.com", "host_change", Some("host_change"));
    assert_eq!(of_type(&activities(&app).await, "unlinked_host_end_user", id).len(), 2);
}

#[tokio::test]
async fn one_user_owns_several_hosts_whose_groups_and_department_follow_the_idp_at_the_next_read() {
    let app = TestApp::spawn().await;
    let uid = create(&app, okta_user_in("jane@example.com", "Jane", "Doe", "Engineering")).await;
    let hosts =
        [app.enroll_host("h1", Some("jane@example.com")).await, app.enroll_host("h2", Some("JANE@example.com")).await];
    let h3 = app.create_host(host_body("h3", Some("jane@example.com"))).await["id"].as_i64().unwrap();
    let all = [hosts[0], hosts[1], h3];

    // Okta pushes a group empty, then adds its members.
    let eng = app.create_group("Engineering").await;
    scim_patch(
        &app,
        &format!("/Groups/{eng}"),
        json!([{"op": "add", "path": "members", "value": [{"value": uid, "display": "jane@example.com"}]}]),
    )
    .await;
    // A nested group: Everyone contains Backend, which contains Jane.
    let backend = app.create_group_with("Backend", &[&uid]).await;
    let everyone = app.create_group_with("Everyone", &[&backend]).await;

    for id in all {
        assert_linked(
            &app,
            id,
            &Want::new(&uid, "jane@example.com", "Jane Doe").department("Engineering").groups(&[
                "Backend",
                "Engineering",
                "Everyone",
            ]),
        )
        .await;
    }
    assert_eq!(app.host_ids("idp_group=Everyone").await, all.to_vec());
    assert_eq!(app.host_ids(&format!("idp_group={everyone}")).await, all.to_vec());

    // Okta renames a group; the hosts show it at the next read.
    scim_patch(&app, &format!("/Groups/{eng}"), json!([{"op": "replace", "value": {"id": eng, "displayName": "R&D"}}]))
        .await;
    // Okta removes Jane from Backend: Everyone (inherited through Backend) goes too.
    scim_patch(
        &app,
        &format!("/Groups/{backend}"),
        json!([{"op": "remove", "path": format!("members[value eq \"{uid}\"]")}]),
    )
    .await;
    // Entra changes the department.
    scim_patch(
        &app,
        &format!("/Users/{uid}"),
        json!([{"op": "Replace", "path": format!("{ENT}:department"), "value": "Platform"}]),
    )
    .await;
    for id in all {
        assert_linked(
            &app,
            id,
            &Want::new(&uid, "jane@example.com", "Jane Doe").department("Platform").groups(&["R&D"]),
        )
        .await;
    }
    assert!(app.host_ids("idp_group=Everyone").await.is_empty());
    assert!(app.host_ids("idp_group=Engineering").await.is_empty());
    assert_eq!(app.host_ids("idp_group=R%26D").await, all.to_vec());
    assert_eq!(app.host_ids("idp_department=Platform").await, all.to_vec());
    assert!(app.host_ids("idp_department=Engineering").await.is_empty());

    // Okta deletes a group: it leaves the hosts at the next read.
    let extra = app.create_group_with("Contractors", &[&uid]).await;
    assert_eq!(app.host_ids("idp_group=Contractors").await, all.to_vec());
    assert_eq!(app.delete(&format!("/Groups/{extra}")).await.status, 204);
    assert!(app.host_ids("idp_group=Contractors").await.is_empty());

    // Added back to Backend: Everyone returns.
    scim_patch(
        &app,
        &format!("/Groups/{backend}"),
        json!([{"op": "add", "path": "members", "value": [{"value": uid, "display": "jane@example.com"}]}]),
    )
    .await;
    assert_linked(
        &app,
        hosts[1],
        &Want::new(&uid, "jane@example.com", "Jane Doe").department("Platform").groups(&["Backend", "Everyone", "R&D"]),
    )
    .await;
}

#[tokio::test]
async fn end_user_history_lists_who_had_the_host_newest_first_with_causes() {
    let app = TestApp::spawn().await;
    let ann = create(&app, okta_user("ann@example.com", "Ann", "Lee")).await;
    let id = app.enroll_host("h1", Some("jane@example.com")).await;
    assert!(history(&app, id).await.is_empty());
    let jane = create(&app, okta_user("jane@example.com", "Jane", "Doe")).await; // scim_change
    let john = create(&app, okta_user("john@example.com", "John", "Roe")).await;
    let r = app
        .api_put(&format!("/hosts/{id}/device_mapping"), json!({"email": "john@example.com", "source": "idp"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text); // admin_action
    assert_eq!(app.delete(&format!("/Users/{john}")).await.status, 204); // scim_change unlink
    assert_no_idp_user(&app, id, "user_deleted").await;
    let r = app.api_delete(&format!("/hosts/{id}/device_mapping/idp")).await; // admin_action
    assert!(r.status.is_success(), "{}", r.text);
    let r = app.api_post("/hosts", host_body("h1", Some("ann@example.com"))).await; // host_change
    assert_eq!(r.status, 200, "{}", r.text);

    let h = history(&app, id).await;
    assert_eq!(h.len(), 4, "{h:?}");
    assert_entry(&h[0], &ann, "ann@example.com", "host_change", None);
    assert_entry(&h[1], &jane, "jane@example.com", "admin_action", Some("host_change"));
    assert_entry(&h[2], &john, "john@example.com", "admin_action", Some("scim_change"));
    assert_entry(&h[3], &jane, "jane@example.com", "scim_change", Some("admin_action"));
    // Newest first, and each owner's time ends before the next begins.
    let t = |v: &Value| DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    for pair in h.windows(2) {
        assert!(t(&pair[0]["linked_at"]) >= t(&pair[1]["linked_at"]), "{pair:?}");
        assert!(t(&pair[1]["unlinked_at"]) <= t(&pair[0]["linked_at"]), "{pair:?}");
    }
    assert_linked(&app, id, &Want::new(&ann, "ann@example.com", "Ann Lee")).await;
}

#[tokio::test]
async fn activities_feed_is_paginated_newest_first_and_lists_links_unlinks_ambiguities_and_admin_edits() {
    let app = TestApp::spawn().await;
    let jane = create(&app, okta_user("jane@example.com", "Jane", "Doe")).await;
    let id = app.enroll_host("h1", Some("jane@example.com")).await; // linked
    let r = app
        .api_put(&format!("/hosts/{id}/device_mapping"), json!({"email": "shared@example.com", "source": "idp"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text); // edited, unlinked
    for n in ["a", "b"] {
        let mut u = okta_user(&format!("{n}@example.com"), n, "Doe");
        u["emails"] = json!([{"value": format!("{n}@example.com"), "primary": true}, {"value": "shared@example.com"}]);
        create(&app, u).await; // linked to a, then nothing more with b (the link follows a)
    }
    let amb = app.enroll_host("h2", Some("shared@example.com")).await; // ambiguous
    assert_no_idp_user(&app, amb, "ambiguous").await;
    let r = app.api_delete(&format!("/hosts/{id}/device_mapping/idp")).await; // deleted, unlinked, linked
    assert!(r.status.is_success(), "{}", r.text);
    let r = app.api_delete(&format!("/hosts/{amb}")).await; // deleted_host
    assert_eq!(r.status, 200, "{}", r.text);

    let all = activities(&app).await;
    let kinds: BTreeSet<&str> = all.iter().map(|a| a["type"].as_str().unwrap()).collect();
    for kind in [
        "linked_host_end_user",
        "unlinked_host_end_user",
        "ambiguous_host_end_user",
        "edited_host_idp_username",
        "deleted_host_idp_username",
        "deleted_host",
    ] {
        assert!(kinds.contains(kind), "no {kind} in {all:?}");
    }
    let ids: Vec<i64> = all.iter().map(|a| a["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    assert_eq!(all[0]["type"], "deleted_host", "the last change comes first: {:?}", all[0]);
    for a in &all {
        assert!(DateTime::parse_from_rfc3339(a["created_at"].as_str().unwrap()).is_ok(), "{a}");
        assert!(a["actor_full_name"].is_string(), "{a}");
        assert!(a["details"].is_object(), "{a}");
    }
    let linked_jane: Vec<&Value> =
        all.iter().filter(|a| a["type"] == "linked_host_end_user" && a["details"]["idp_id"] == jane.as_str()).collect();
    assert_eq!(linked_jane.len(), 2, "linked at enrollment and again after the mapping was removed: {all:?}");

    // Pages of 3 walk the same feed without gaps or repeats.
    let mut walked = Vec::new();
    let mut page = 0;
    loop {
        let r = app.api_get(&format!("/activities?page={page}&per_page=3")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let acts = r.body["activities"].as_array().unwrap();
        assert!(acts.len() <= 3);
        assert_eq!(r.body["meta"]["has_previous_results"], page > 0, "{}", r.text);
        walked.extend(acts.iter().map(|a| a["id"].as_i64().unwrap()));
        if r.body["meta"]["has_next_results"] == false {
            break;
        }
        assert_eq!(acts.len(), 3, "a page with a next one is full: {}", r.text);
        page += 1;
        assert!(page < 100, "no end to the pages");
    }
    assert_eq!(walked, ids, "pages of 3 must walk the whole feed once, in order (page N starts at N * per_page)");
    let past = app.api_get(&format!("/activities?page={}&per_page=3", page + 1)).await;
    assert_eq!(past.body["activities"], json!([]));
    assert_eq!(past.body["meta"]["has_next_results"], false);
}

#[tokio::test]
async fn unlinked_host_links_when_an_existing_user_is_renamed_to_or_given_its_identity() {
    let app = TestApp::spawn().await;
    let jane = create(&app, okta_user("jane.old@example.com", "Jane", "Doe")).await;
    let john = create(&app, entra_user("john@contoso.com", "john@contoso.com", "John", "Roe", "Sales")).await;
    let by_name = app.enroll_host("h1", Some("jane@example.com")).await;
    let by_email = app.enroll_host("h2", Some("john.roe@contoso.com")).await;
    assert_no_idp_user(&app, by_name, "unlinked").await;
    assert_no_idp_user(&app, by_email, "unlinked").await;

    // Okta renames Jane to the host's enrollment account.
    scim_patch(&app, &format!("/Users/{jane}"), json!([{"op": "replace", "value": {"userName": "Jane@Example.com"}}]))
        .await;
    assert_linked(&app, by_name, &Want::new(&jane, "Jane@Example.com", "Jane Doe")).await;

    // Entra gives John a second email that is the other host's account.
    scim_patch(
        &app,
        &format!("/Users/{john}"),
        json!([{"op": "Add", "path": "emails[type eq \"home\"].value", "value": "john.roe@contoso.com"}]),
    )
    .await;
    assert_linked(&app, by_email, &Want::new(&john, "john@contoso.com", "John Roe").department("Sales")).await;
    assert_entry(&history(&app, by_email).await[0], &john, "john@contoso.com", "scim_change", None);
}

#[tokio::test]
async fn ambiguity_resolves_when_a_candidate_is_deleted_or_a_user_with_that_username_arrives() {
    let app = TestApp::spawn().await;
    let with = |user_name: &str, extra: &str| {
        let mut u = okta_user(user_name, "Pat", "Doe");
        u["emails"] = json!([{"primary": true, "type": "work", "value": user_name}, {"type": "other", "value": extra}]);
        u
    };
    let a = create(&app, with("a@example.com", "shared@example.com")).await;
    let b = create(&app, with("b@example.com", "shared@example.com")).await;
    create(&app, with("c@example.com", "team@example.com")).await;
    create(&app, with("d@example.com", "team@example.com")).await;
    let h1 = app.enroll_host("h1", Some("shared@example.com")).await;
    let h2 = app.enroll_host("h2", Some("team@example.com")).await;
    assert_no_idp_user(&app, h1, "ambiguous").await;
    assert_no_idp_user(&app, h2, "ambiguous").await;

    // One candidate is deleted in the IdP: the other is the single match.
    assert_eq!(app.delete(&format!("/Users/{a}")).await.status, 204);
    assert_linked(&app, h1, &Want::new(&b, "b@example.com", "Pat Doe")).await;

    // A user whose userName is the identity arrives: userName wins over emails.
    let team = create(&app, okta_user("Team@example.com", "Team", "Account")).await;
    assert_linked(&app, h2, &Want::new(&team, "Team@example.com", "Team Account")).await;
}

#[tokio::test]
async fn okta_reactivation_by_posting_the_username_again_shows_the_user_active_with_its_new_profile() {
    let app = TestApp::spawn().await;
    let uid = create(&app, okta_user("jane@example.com", "Jane", "Doe")).await;
    let id = app.enroll_host("h1", Some("jane@example.com")).await;
    scim_patch(&app, &format!("/Users/{uid}"), json!([{"op": "replace", "value": {"active": false}}])).await;
    assert_linked(&app, id, &Want::new(&uid, "jane@example.com", "Jane Doe").active(false)).await;

    let r = app.post("/Users", okta_user("jane@example.com", "Jane", "Married")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["id"], uid.as_str());
    assert_linked(&app, id, &Want::new(&uid, "jane@example.com", "Jane Married")).await;
    assert!(app.host_ids("idp_active=false").await.is_empty());
    assert_eq!(history(&app, id).await.len(), 1, "the same user all along");
}

#[tokio::test]
async fn users_and_groups_created_through_bulk_link_the_hosts_waiting_for_them() {
    let app = TestApp::spawn().await;
    let id = app.enroll_host("h1", Some("u1@example.com")).await;
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "u1", "data": okta_user_in("u1@example.com", "U", "One", "Ops")},
            {"method": "POST", "path": "/Groups", "bulkId": "g1",
             "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Night Shift",
                      "members": [{"type": "User", "value": "bulkId:u1"}]}}
        ]
    });
    let r = app.post("/Bulk", body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let uid = r.body["Operations"][0]["location"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
    assert_linked(&app, id, &Want::new(&uid, "u1@example.com", "U One").department("Ops").groups(&["Night Shift"]))
        .await;
}

#[tokio::test]
async fn a_host_whose_user_was_deleted_stays_to_recover_until_someone_is_linked_whatever_its_mapping() {
    let app = TestApp::spawn().await;
    let uid = create(&app, okta_user("gone@example.com", "Gone", "User")).await;
    let id = app.enroll_host("h1", Some("gone@example.com")).await;
    assert_eq!(app.delete(&format!("/Users/{uid}")).await.status, 204);
    assert_eq!(app.host_ids("idp_active=false").await, vec![id]);

    // An admin types an IdP username no one has yet: still no one linked, still to recover.
    let r = app
        .api_put(&format!("/hosts/{id}/device_mapping"), json!({"email": "nobody@example.com", "source": "idp"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["idp_link"]["state"], "user_deleted", "{}", r.text);
    assert_eq!(r.body["idp_link"]["identity"], "nobody@example.com");
    assert_eq!(app.host_ids("idp_active=false").await, vec![id]);

    // Someone arrives with that username: linked, no longer to recover.
    let newbie = create(&app, okta_user("nobody@example.com", "No", "Body")).await;
    let enrolled = json!([{"email": "gone@example.com", "source": "mdm_idp_accounts"}]);
    assert_linked(&app, id, &Want::new(&newbie, "nobody@example.com", "No Body").other_emails(enrolled)).await;
    assert!(app.host_ids("idp_active=false").await.is_empty());
}
