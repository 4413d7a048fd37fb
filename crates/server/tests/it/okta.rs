//! What Okta sends (idp-requests.md, "Okta"), request by request.

use std::collections::HashSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{SCIM, TestApp, filter_q, member_values, okta_user, resource_ids, sorted};

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

fn patch(ops: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": ops})
}

#[tokio::test]
async fn test_connector_lookup_of_absent_user_is_empty_list_response_with_integer_counters() {
    let app = TestApp::spawn().await;
    let r = app.get(&format!("/Users?{}&startIndex=1&count=100", filter_q(r#"userName eq "jane@example.com""#))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/scim+json"));
    assert_eq!(r.body["schemas"], json!([LIST]));
    assert!(r.body["totalResults"].is_u64(), "{}", r.text);
    assert!(r.body["startIndex"].is_u64(), "{}", r.text);
    assert!(r.body["itemsPerPage"].is_u64(), "{}", r.text);
    assert_eq!(r.body["totalResults"], 0);
    assert_eq!(r.body["startIndex"], 1);
    assert_eq!(r.body["itemsPerPage"], 0);
    assert_eq!(r.body["Resources"], json!([]), "Okta needs `Resources: []`: {}", r.text);

    // The spec test's probe of a non-empty list: GET /Users?count=1&startIndex=1.
    app.create_user("a@example.com").await;
    app.create_user("b@example.com").await;
    let r = app.list("/Users?count=1&startIndex=1").await;
    assert_eq!(r.body["totalResults"], 2);
    assert_eq!(r.body["itemsPerPage"], 1);
    assert_eq!(r.body["Resources"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn create_returns_201_full_resource_with_location_and_etag_and_never_the_password() {
    let app = TestApp::spawn().await;
    let r = app.post("/Users", okta_user("jane@example.com", "Jane", "Doe")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/scim+json"));
    let u = &r.body;
    let id = u["id"].as_str().unwrap();
    assert!(!id.is_empty());
    assert_eq!(u["schemas"], json!(["urn:ietf:params:scim:schemas:core:2.0:User"]));
    assert_eq!(u["userName"], "jane@example.com");
    assert_eq!(u["name"], json!({"givenName": "Jane", "familyName": "Doe"}));
    assert_eq!(u["emails"], json!([{"primary": true, "value": "jane@example.com", "type": "work"}]));
    assert_eq!(u["displayName"], "Jane Doe");
    assert_eq!(u["locale"], "en-US");
    assert_eq!(u["externalId"], okta_user("jane@example.com", "Jane", "Doe")["externalId"]);
    assert_eq!(u["active"], true);
    assert_eq!(u["meta"]["resourceType"], "User");
    assert!(u["meta"]["created"].is_string() && u["meta"]["lastModified"].is_string(), "{}", r.text);
    let location = u["meta"]["location"].as_str().unwrap();
    assert!(location.ends_with(&format!("{SCIM}/Users/{id}")), "{location}");
    assert_eq!(r.header("location"), Some(location), "Location header must equal meta.location");
    assert_eq!(r.header("etag"), u["meta"]["version"].as_str(), "ETag must equal meta.version");
    assert!(u.get("password").is_none(), "{}", r.text);
    assert!(!r.text.contains("1mz050nq"), "the password came back: {}", r.text);

    // What was created is what GET returns.
    let g = app.get(&format!("/Users/{id}")).await;
    assert_eq!(g.status, 200, "{}", g.text);
    assert_eq!(g.body, r.body);
    assert_eq!(g.header("etag"), r.header("etag"));
    assert!(!g.text.contains("1mz050nq"));
}

#[tokio::test]
async fn same_post_again_is_409_uniqueness_and_creates_nothing() {
    let app = TestApp::spawn().await;
    app.create_user("jane@example.com").await;
    let r = app.post("/Users", okta_user("jane@example.com", "Jane", "Doe")).await;
    r.assert_scim_error(409, Some("uniqueness"));
    // Also when the userName differs only in case.
    let r = app.post("/Users", okta_user("JANE@Example.com", "Jane", "Doe")).await;
    r.assert_scim_error(409, Some("uniqueness"));
    assert_eq!(app.list("/Users").await.body["totalResults"], 1);
}

#[tokio::test]
async fn lookup_with_username_in_different_case_finds_the_user() {
    let app = TestApp::spawn().await;
    let id = app.create_user("jane@example.com").await;
    app.create_user("john@example.com").await;
    let r = app.list(&format!("/Users?{}&startIndex=1&count=100", filter_q(r#"userName eq "JANE@EXAMPLE.COM""#))).await;
    assert_eq!(r.body["totalResults"], 1, "{}", r.text);
    assert_eq!(resource_ids(&r.body), vec![id]);
    assert_eq!(r.body["Resources"][0]["userName"], "jane@example.com", "the stored case is kept");
}

#[tokio::test]
async fn get_of_unknown_id_is_404_with_scim_error() {
    let app = TestApp::spawn().await;
    let r = app.get("/Users/010101").await;
    r.assert_scim_error(404, None);
    let r = app.get("/Groups/010101").await;
    r.assert_scim_error(404, None);
}

#[tokio::test]
async fn import_pages_of_250_users_have_no_duplicates_no_gaps_and_stable_order() {
    let app = TestApp::spawn().await;
    let mut created = HashSet::new();
    for i in 0..250 {
        created.insert(app.create_user(&format!("user{i:03}@example.com")).await);
    }
    let mut seen = Vec::new();
    for (start, expected) in [(1, 100), (101, 100), (201, 50)] {
        let r = app.list(&format!("/Users?startIndex={start}&count=100")).await;
        assert_eq!(r.body["totalResults"], 250, "{}", r.text);
        assert_eq!(r.body["startIndex"], start);
        assert_eq!(r.body["itemsPerPage"], expected);
        let ids = resource_ids(&r.body);
        assert_eq!(ids.len(), expected);
        // Stable order: the same page asked again is the same page.
        let again = app.list(&format!("/Users?startIndex={start}&count=100")).await;
        assert_eq!(resource_ids(&again.body), ids, "page at {start} is not stable");
        seen.extend(ids);
    }
    let unique: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), 250, "duplicates across pages");
    assert_eq!(unique, created, "gaps across pages");

    // Past the end: an empty page, still counted.
    let r = app.list("/Users?startIndex=251&count=100").await;
    assert_eq!(r.body["totalResults"], 250);
    assert_eq!(r.body["itemsPerPage"], 0);
    assert_eq!(r.body["Resources"], json!([]));
}

#[tokio::test]
async fn put_of_the_whole_object_updates_the_profile() {
    let app = TestApp::spawn().await;
    let created = app.create_user_with(okta_user("jane@example.com", "Jane", "Doe")).await;
    let id = created["id"].as_str().unwrap();
    let mut user = app.get(&format!("/Users/{id}")).await.body;
    user["name"] = json!({"givenName": "Janet", "familyName": "Smith"});
    user["displayName"] = json!("Janet Smith");
    user["title"] = json!("Engineer");
    user["emails"] = json!([{"primary": true, "value": "janet@example.com", "type": "work"}]);
    user.as_object_mut().unwrap().remove("locale");
    user["password"] = json!("1mz050nq");
    let r = app.put(&format!("/Users/{id}"), user).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_ne!(r.body["meta"]["version"], created["meta"]["version"]);
    assert_eq!(r.header("etag"), r.body["meta"]["version"].as_str());

    let g = app.get(&format!("/Users/{id}")).await.body;
    assert_eq!(g["id"], id);
    assert_eq!(g["userName"], "jane@example.com");
    assert_eq!(g["name"], json!({"givenName": "Janet", "familyName": "Smith"}));
    assert_eq!(g["displayName"], "Janet Smith");
    assert_eq!(g["title"], "Engineer");
    assert_eq!(g["emails"], json!([{"primary": true, "value": "janet@example.com", "type": "work"}]));
    assert!(g.get("locale").is_none(), "PUT replaces the whole resource: an omitted attribute is cleared: {g}");
    assert!(g.get("password").is_none());
    assert_eq!(g["meta"]["created"], created["meta"]["created"]);
    assert_eq!(g, r.body);
}

#[tokio::test]
async fn pathless_patch_deactivates_and_user_stays_readable_and_findable() {
    let app = TestApp::spawn().await;
    let id = app.create_user("jane@example.com").await;
    let r = app.patch(&format!("/Users/{id}"), patch(json!([{"op": "replace", "value": {"active": false}}]))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["active"], false);
    assert_eq!(r.body["userName"], "jane@example.com");

    let g = app.get(&format!("/Users/{id}")).await;
    assert_eq!(g.status, 200, "{}", g.text);
    assert_eq!(g.body["active"], false);
    assert_eq!(g.body["name"]["givenName"], "Test", "the rest of the profile is untouched");

    let r = app.list(&format!("/Users?{}", filter_q(r#"userName eq "jane@example.com""#))).await;
    assert_eq!(resource_ids(&r.body), vec![id.clone()]);
    assert_eq!(r.body["Resources"][0]["active"], false);
    let r = app.list(&format!("/Users?{}", filter_q("active eq false"))).await;
    assert_eq!(resource_ids(&r.body), vec![id]);
}

#[tokio::test]
async fn posting_a_deactivated_username_with_active_true_reactivates_the_same_account() {
    let app = TestApp::spawn().await;
    let id = app.create_user("jane@example.com").await;
    let r = app.patch(&format!("/Users/{id}"), patch(json!([{"op": "replace", "value": {"active": false}}]))).await;
    assert_eq!(r.status, 200, "{}", r.text);

    let r = app.post("/Users", okta_user("jane@example.com", "Jane", "Again")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["id"], id.as_str(), "the existing account is taken over");
    assert_eq!(r.body["active"], true);
    assert_eq!(r.body["name"]["familyName"], "Again");
    assert_eq!(r.header("location"), r.body["meta"]["location"].as_str());

    let g = app.get(&format!("/Users/{id}")).await.body;
    assert_eq!(g["active"], true);
    assert_eq!(g["name"]["familyName"], "Again");
    assert_eq!(app.list("/Users").await.body["totalResults"], 1);
}

#[tokio::test]
async fn push_groups_lookup_then_create_with_empty_members() {
    let app = TestApp::spawn().await;
    let q = format!("/Groups?{}", filter_q(r#"displayName eq "Engineering""#));
    let r = app.list(&q).await;
    assert_eq!(r.body["totalResults"], 0);
    assert_eq!(r.body["Resources"], json!([]));

    let r = app.post("/Groups", json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Engineering", "members": []})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["displayName"], "Engineering");
    assert_eq!(r.header("location"), r.body["meta"]["location"].as_str());
    assert_eq!(r.body["meta"]["resourceType"], "Group");
    assert!(member_values(&r.body).is_empty());

    let r = app.list(&q).await;
    assert_eq!(resource_ids(&r.body), vec![id.clone()]);
    // In another case too.
    let r = app.list(&format!("/Groups?{}", filter_q(r#"displayName eq "engineering""#))).await;
    assert_eq!(resource_ids(&r.body), vec![id]);
}

#[tokio::test]
async fn pathless_rename_with_id_inside_value_renames_the_group() {
    let app = TestApp::spawn().await;
    let u = app.create_user("jane@example.com").await;
    let gid = app.create_group_with("Engineering", &[&u]).await;
    let r = app
        .patch(&format!("/Groups/{gid}"), patch(json!([{"op": "replace", "value": {"id": gid, "displayName": "R&D"}}])))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);

    let g = app.get(&format!("/Groups/{gid}")).await.body;
    assert_eq!(g["displayName"], "R&D");
    assert_eq!(member_values(&g), vec![u.clone()], "a rename keeps the members");
    let r = app.list(&format!("/Groups?{}", filter_q(r#"displayName eq "R&D""#))).await;
    assert_eq!(resource_ids(&r.body), vec![gid.clone()]);
    let r = app.list(&format!("/Groups?{}", filter_q(r#"displayName eq "Engineering""#))).await;
    assert_eq!(r.body["totalResults"], 0);
    // The user's groups show the new name.
    let user = app.get(&format!("/Users/{u}")).await.body;
    assert_eq!(user["groups"][0]["display"], "R&D");
}

#[tokio::test]
async fn membership_patch_remove_by_value_filter_then_add_with_display() {
    let app = TestApp::spawn().await;
    let jane = app.create_user("jane@example.com").await;
    let john = app.create_user("john@example.com").await;
    let ann = app.create_user("ann@example.com").await;
    let gid = app.create_group_with("Engineering", &[&jane, &ann]).await;
    let body = patch(json!([
        {"op": "replace", "value": {"id": gid, "displayName": "Engineering"}},
        {"op": "remove", "path": format!("members[value eq \"{jane}\"]")},
        {"op": "add", "path": "members", "value": [{"value": john, "display": "john@example.com"}]}
    ]));
    let r = app.patch(&format!("/Groups/{gid}"), body).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(app.member_ids(&gid).await, sorted(&[&ann, &john]));

    // Okta's own shape: remove a member and add the same one back in one request.
    let body = patch(json!([
        {"op": "remove", "path": format!("members[value eq \"{john}\"]")},
        {"op": "add", "path": "members", "value": [{"value": john, "display": "john@example.com"}]}
    ]));
    let r = app.patch(&format!("/Groups/{gid}"), body).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(app.member_ids(&gid).await, sorted(&[&ann, &john]));
    let user = app.get(&format!("/Users/{jane}")).await.body;
    assert!(user.get("groups").is_none() || user["groups"] == json!([]), "{user}");
}

#[tokio::test]
async fn adding_members_already_present_is_no_error_and_no_duplicate() {
    let app = TestApp::spawn().await;
    let a = app.create_user("a@example.com").await;
    let b = app.create_user("b@example.com").await;
    let c = app.create_user("c@example.com").await;
    let gid = app.create_group_with("Engineering", &[&a, &b]).await;
    // A push split into several PATCHes, repeating members already present, and
    // repeating one inside the same list.
    for value in [
        json!([{"value": a, "display": "a@example.com"}, {"value": b}]),
        json!([{"value": a}, {"value": c}, {"value": c}]),
        json!([{"value": c}]),
    ] {
        let r = app
            .patch(&format!("/Groups/{gid}"), patch(json!([{"op": "add", "path": "members", "value": value}])))
            .await;
        assert_eq!(r.status, 204, "{}", r.text);
        let g = app.get(&format!("/Groups/{gid}")).await;
        let listed = g.body["members"].as_array().unwrap().len();
        assert_eq!(listed, member_values(&g.body).iter().collect::<HashSet<_>>().len(), "duplicate: {}", g.text);
    }
    let g = app.get(&format!("/Groups/{gid}")).await.body;
    assert_eq!(g["members"].as_array().unwrap().len(), 3, "{g}");
    assert_eq!(member_values(&g), sorted(&[&a, &b, &c]));
}

#[tokio::test]
async fn replace_path_members_sets_exactly_the_given_members() {
    let app = TestApp::spawn().await;
    let a = app.create_user("a@example.com").await;
    let b = app.create_user("b@example.com").await;
    let c = app.create_user("c@example.com").await;
    let gid = app.create_group_with("Engineering", &[&a, &b]).await;
    let r = app
        .patch(
            &format!("/Groups/{gid}"),
            patch(json!([{"op": "replace", "path": "members", "value": [{"value": b, "display": "b"}, {"value": c, "display": "c"}]}])),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(app.member_ids(&gid).await, sorted(&[&b, &c]));
    let user_a = app.get(&format!("/Users/{a}")).await.body;
    assert!(user_a.get("groups").is_none_or(|g| g == &json!([])), "{user_a}");
}

#[tokio::test]
async fn put_with_full_member_list_sets_membership() {
    let app = TestApp::spawn().await;
    let a = app.create_user("a@example.com").await;
    let b = app.create_user("b@example.com").await;
    let c = app.create_user("c@example.com").await;
    let gid = app.create_group_with("Engineering", &[&a]).await;
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": gid,
        "displayName": "Engineering",
        "members": [{"value": b, "display": "b@example.com"}, {"value": c, "display": "c@example.com"}]
    });
    let r = app.put(&format!("/Groups/{gid}"), body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(member_values(&r.body), sorted(&[&b, &c]));
    let g = app.get(&format!("/Groups/{gid}")).await.body;
    assert_eq!(member_values(&g), sorted(&[&b, &c]));
    assert_eq!(g["displayName"], "Engineering");
    // Each member carries its type and a $ref to itself.
    for m in g["members"].as_array().unwrap() {
        assert_eq!(m["type"], "User");
        assert!(m["$ref"].as_str().unwrap().ends_with(&format!("/Users/{}", m["value"].as_str().unwrap())));
    }
}

#[tokio::test]
async fn delete_group_is_204_then_404_and_users_survive() {
    let app = TestApp::spawn().await;
    let a = app.create_user("a@example.com").await;
    let gid = app.create_group_with("Engineering", &[&a]).await;
    let r = app.delete(&format!("/Groups/{gid}")).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty());
    app.get(&format!("/Groups/{gid}")).await.assert_scim_error(404, None);
    app.delete(&format!("/Groups/{gid}")).await.assert_scim_error(404, None);
    let u = app.get(&format!("/Users/{a}")).await;
    assert_eq!(u.status, 200);
    assert!(u.body.get("groups").is_none_or(|g| g == &json!([])), "{}", u.text);
}

#[tokio::test]
async fn post_with_plain_application_json_content_type_is_accepted() {
    let app = TestApp::spawn().await;
    let body = okta_user("jane@example.com", "Jane", "Doe").to_string();
    let r = app
        .send(
            Method::POST,
            &format!("{SCIM}/Users"),
            Some(("application/json", body)),
            &[("user-agent", "Okta SCIM Client 1.0.0")],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/scim+json"));
    let id = r.body["id"].as_str().unwrap();
    assert_eq!(app.get(&format!("/Users/{id}")).await.body["userName"], "jane@example.com");
    let body = json!({"displayName": "Engineering", "members": []}).to_string();
    let r =
        app.send(Method::POST, &format!("{SCIM}/Groups"), Some(("application/json; charset=utf-8", body)), &[]).await;
    assert_eq!(r.status, 201, "{}", r.text);
}

#[tokio::test]
async fn get_groups_lists_every_group_with_members() {
    let app = TestApp::spawn().await;
    let a = app.create_user("a@example.com").await;
    let g1 = app.create_group_with("Engineering", &[&a]).await;
    let g2 = app.create_group("Sales").await;
    let r = app.list("/Groups").await;
    assert_eq!(r.body["totalResults"], 2);
    assert_eq!(r.body["schemas"], json!([LIST]));
    let mut ids = resource_ids(&r.body);
    ids.sort();
    assert_eq!(ids, sorted(&[&g1, &g2]));
    let eng = r.body["Resources"].as_array().unwrap().iter().find(|g| g["id"] == g1.as_str()).unwrap();
    assert_eq!(member_values(eng), vec![a]);
}

#[tokio::test]
async fn put_with_active_false_deactivates_and_put_with_active_true_reactivates() {
    let app = TestApp::spawn().await;
    let id = app.create_user("jane@example.com").await;
    let mut user = app.get(&format!("/Users/{id}")).await.body;
    user["active"] = json!(false);
    let r = app.put(&format!("/Users/{id}"), user.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.get(&format!("/Users/{id}")).await.body["active"], false);
    let r = app.list(&format!("/Users?{}", filter_q(r#"userName eq "jane@example.com""#))).await;
    assert_eq!(r.body["Resources"][0]["active"], false);
    user["active"] = json!(true);
    let r = app.put(&format!("/Users/{id}"), user).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.get(&format!("/Users/{id}")).await.body["active"], true);
}

#[tokio::test]
async fn renaming_a_group_to_a_taken_name_is_409_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let g1 = app.create_group("Engineering").await;
    app.create_group("Sales").await;
    let r = app
        .patch(&format!("/Groups/{g1}"), patch(json!([{"op": "replace", "value": {"id": g1, "displayName": "sales"}}])))
        .await;
    r.assert_scim_error(409, Some("uniqueness"));
    assert_eq!(app.get(&format!("/Groups/{g1}")).await.body["displayName"], "Engineering");
    // Its own name in another case is not a conflict.
    let r = app
        .patch(
            &format!("/Groups/{g1}"),
            patch(json!([{"op": "replace", "value": {"id": g1, "displayName": "ENGINEERING"}}])),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(app.get(&format!("/Groups/{g1}")).await.body["displayName"], "ENGINEERING");
}

#[tokio::test]
async fn member_display_is_returned_only_when_requested() {
    let app = TestApp::spawn().await;
    let uid = app.create_user("disp@example.com").await;
    let gid = app.create_group_with("Design", &[&uid]).await;
    let r = app.get(&format!("/Groups/{gid}")).await;
    assert_eq!(r.body["members"][0]["value"], uid.as_str());
    assert_eq!(r.body["members"][0]["type"], "User");
    assert!(r.body["members"][0].get("display").is_none(), "display is returned on request only: {}", r.text);
    let r = app.get(&format!("/Groups/{gid}?attributes=members.display,members.value")).await;
    assert_eq!(r.body["members"][0]["display"], "Test User", "{}", r.text);
    assert_eq!(r.body["members"][0]["value"], uid.as_str());
    assert!(r.body.get("displayName").is_none());
}

#[tokio::test]
async fn adding_a_member_id_that_does_not_exist_is_skipped_not_stored() {
    let app = TestApp::spawn().await;
    let uid = app.create_user("real@example.com").await;
    let gid = app.create_group("Ops").await;
    let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
        {"op": "add", "path": "members", "value": [{"value": "no-such-user"}, {"value": uid}]}]});
    let r = app.patch(&format!("/Groups/{gid}"), body).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(app.member_ids(&gid).await, vec![uid.clone()]);
    let r = app.get(&format!("/Groups?{}", filter_q(&format!("members eq \"{uid}\"")))).await;
    assert_eq!(r.body["totalResults"], 1);
    let r = app.get(&format!("/Groups?{}", filter_q("members eq \"no-such-user\""))).await;
    assert_eq!(r.body["totalResults"], 0);
}

#[tokio::test]
async fn concurrent_creates_commit_together_and_each_name_is_created_exactly_once() {
    let app = std::sync::Arc::new(TestApp::spawn().await);
    let mut tasks = Vec::new();
    for i in 0..60 {
        let app = app.clone();
        // Twenty names, each POSTed three times at once (different letter case too).
        let name =
            if i % 2 == 0 { format!("burst{}@example.com", i % 20) } else { format!("BURST{}@example.com", i % 20) };
        tasks.push(tokio::spawn(async move { app.post("/Users", okta_user(&name, "B", "U")).await }));
    }
    let mut created = Vec::new();
    let mut conflicts = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status.as_u16() {
            201 => created.push(r.body["userName"].as_str().unwrap().to_lowercase()),
            409 => {
                r.assert_scim_error(409, Some("uniqueness"));
                conflicts += 1;
            }
            other => panic!("unexpected {other}: {}", r.text),
        }
    }
    created.sort();
    let before = created.len();
    created.dedup();
    assert_eq!(before, 20, "exactly one create per name");
    assert_eq!(created.len(), 20);
    assert_eq!(conflicts, 40);
    let r = app.get("/Users?count=100").await;
    assert_eq!(r.body["totalResults"], 20, "{}", r.text);
}
