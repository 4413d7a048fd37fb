//! Labels on IdP data: membership follows SCIM changes on the next read (no cron), by
//! group (nested, by SCIM id so that renames keep working) and department, combined with
//! and / or; validation names the field; observers read, maintainers write.

use custodian_domain::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{API, TestApp, assert_api_error, okta_user};

const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

fn user_in(user_name: &str, department: &str) -> Value {
    let mut u = okta_user(user_name, "Test", "User");
    u[ENT] = json!({"department": department});
    u
}

fn patch(ops: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": ops})
}

pub(crate) async fn label_host_ids(app: &TestApp, label_id: i64) -> Vec<i64> {
    let r = app.api_get(&format!("/labels/{label_id}/hosts")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["hosts"].as_array().unwrap().iter().map(|h| h["id"].as_i64().unwrap()).collect()
}

async fn create_label(app: &TestApp, body: Value) -> Value {
    let r = app.api_post("/labels", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["label"].clone()
}

pub(crate) async fn host_label_names(app: &TestApp, host_id: i64) -> Vec<String> {
    app.host(host_id).await["labels"].as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap().into()).collect()
}

#[tokio::test]
async fn label_follows_group_changes_and_a_group_renamed_in_the_idp() {
    let app = TestApp::spawn().await;
    let alice = app.create_user("alice@example.com").await;
    let bob = app.create_user("bob@example.com").await;
    let h_alice = app.enroll_host("mac-alice", Some("alice@example.com")).await;
    let h_bob = app.enroll_host("mac-bob", Some("bob@example.com")).await;
    let _h_none = app.enroll_host("mac-nobody", None).await;
    let eng = app.create_group_with("Engineering", &[&alice]).await;

    let label = create_label(
        &app,
        json!({"name": "Engineering laptops", "description": "d",
               "criteria": {"vital": "end_user_idp_group", "value": "engineering"}}),
    )
    .await;
    let id = label["id"].as_i64().unwrap();
    assert_eq!(label["label_type"], "regular");
    assert_eq!(label["label_membership_type"], "dynamic");
    assert_eq!(label["host_count"], 1);
    // The group the value named, by SCIM id: renames in the IdP keep the label working.
    assert_eq!(label["criteria"], json!({"vital": "end_user_idp_group", "value": "engineering", "group_id": eng}));
    assert_eq!(label_host_ids(&app, id).await, vec![h_alice]);
    assert_eq!(host_label_names(&app, h_alice).await, vec!["Engineering laptops"]);
    assert!(host_label_names(&app, h_bob).await.is_empty());

    // Bob joins through a nested group: the next read shows it.
    let platform = app.create_group_with("Platform", &[&bob]).await;
    let r = app
        .patch(
            &format!("/Groups/{eng}"),
            patch(json!([{"op": "add", "path": "members", "value": [{"value": platform}]}])),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(label_host_ids(&app, id).await, vec![h_alice, h_bob]);

    // Renamed in the IdP: still the same group.
    let r =
        app.patch(&format!("/Groups/{eng}"), patch(json!([{"op": "replace", "value": {"displayName": "R&D"}}]))).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(label_host_ids(&app, id).await, vec![h_alice, h_bob]);
    assert_eq!(host_label_names(&app, h_bob).await, vec!["Engineering laptops"]);
    let r = app.api_get(&format!("/labels/{id}")).await;
    assert_eq!(r.body["label"]["host_count"], 2, "{}", r.text);

    // Alice leaves the group.
    let filter = format!("members[value eq \"{alice}\"]");
    let r = app.patch(&format!("/Groups/{eng}"), patch(json!([{"op": "remove", "path": filter}]))).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(label_host_ids(&app, id).await, vec![h_bob]);
    assert!(host_label_names(&app, h_alice).await.is_empty());

    // The group deleted: the label is empty, not broken.
    let r = app.delete(&format!("/Groups/{eng}")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert!(label_host_ids(&app, id).await.is_empty());
}

#[tokio::test]
async fn label_follows_department_changes_and_combines_conditions() {
    let app = TestApp::spawn().await;
    let ann = app.create_user_with(user_in("ann@example.com", "Sales")).await["id"].as_str().unwrap().to_string();
    let _ben = app.create_user_with(user_in("ben@example.com", "Sales")).await;
    let _cy = app.create_user_with(user_in("cy@example.com", "Engineering")).await;
    let h_ann = app.enroll_host("mac-ann", Some("ann@example.com")).await;
    let h_ben = app.enroll_host("mac-ben", Some("ben@example.com")).await;
    let h_cy = app.enroll_host("mac-cy", Some("cy@example.com")).await;
    let admins = app.create_group_with("Admins", &[&ann]).await;

    let sales = create_label(
        &app,
        json!({"name": "Sales", "criteria": {"vital": "end_user_idp_department", "value": "sales"}}),
    )
    .await;
    let sales_id = sales["id"].as_i64().unwrap();
    assert_eq!(label_host_ids(&app, sales_id).await, vec![h_ann, h_ben]);

    let combined = create_label(
        &app,
        json!({"name": "Sales admins or engineers", "criteria": {"or": [
            {"and": [{"vital": "end_user_idp_department", "value": "Sales"}, {"vital": "end_user_idp_group", "value": admins}]},
            {"vital": "end_user_idp_department", "value": "Engineering"}]}}),
    )
    .await;
    let combined_id = combined["id"].as_i64().unwrap();
    assert_eq!(combined["host_count"], 2);
    assert_eq!(label_host_ids(&app, combined_id).await, vec![h_ann, h_cy]);
    assert_eq!(host_label_names(&app, h_ann).await, vec!["Sales", "Sales admins or engineers"]);

    // Ann moves to Engineering in the IdP: both labels follow on the next read.
    let r = app
        .patch(
            &format!("/Users/{ann}"),
            patch(json!([{"op": "replace", "path": format!("{ENT}:department"), "value": "Marketing"}])),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(label_host_ids(&app, sales_id).await, vec![h_ben]);
    assert_eq!(label_host_ids(&app, combined_id).await, vec![h_cy]);

    // Pagination like GET /hosts.
    let r = app.api_get(&format!("/labels/{sales_id}/hosts?per_page=1&page=0")).await;
    assert_eq!(r.body["hosts"].as_array().unwrap().len(), 1, "{}", r.text);

    // PATCH the criteria; DELETE the label.
    let r = app
        .api_as(
            Some(&app.token),
            Method::PATCH,
            &format!("{API}/labels/{sales_id}"),
            Some(
                json!({"criteria": {"vital": "end_user_idp_department", "value": "Marketing"}, "description": "moved"}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["label"]["description"], "moved");
    assert_eq!(r.body["label"]["name"], "Sales");
    assert_eq!(label_host_ids(&app, sales_id).await, vec![h_ann]);
    let r = app.api_get("/labels").await;
    assert_eq!(r.body["labels"].as_array().unwrap().len(), 2, "{}", r.text);
    let r = app.api_delete(&format!("/labels/{sales_id}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(app.api_get(&format!("/labels/{sales_id}")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.api_get(&format!("/labels/{sales_id}/hosts")).await.status, StatusCode::NOT_FOUND);

    let r = app.api_get("/activities").await;
    let kinds: Vec<&str> = r.body["activities"].as_array().unwrap().iter().filter_map(|a| a["type"].as_str()).collect();
    for kind in ["created_label", "edited_label", "deleted_label"] {
        assert!(kinds.contains(&kind), "{kind} missing: {}", r.text);
    }
}

#[tokio::test]
async fn label_errors_name_the_field_and_observers_only_read() {
    let app = TestApp::spawn().await;
    let r = app.api_post("/labels", json!({"name": "x", "criteria": {"vital": "os_version", "value": "14"}})).await;
    assert_api_error(&r, 422, "criteria.vital");
    let r = app.api_post("/labels", json!({"name": "x", "criteria": {"or": [{"vital": "end_user_idp_group"}]}})).await;
    assert_api_error(&r, 422, "criteria.or[0].value");
    let r = app.api_post("/labels", json!({"criteria": {"vital": "end_user_idp_group", "value": "a"}})).await;
    assert_api_error(&r, 422, "name");
    let r = app.api_post("/labels", json!({"name": "x"})).await;
    assert_api_error(&r, 422, "criteria");
    let deep = json!({"and": [{"and": [{"and": [{"and": [{"vital": "end_user_idp_group", "value": "a"}]}]}]}]});
    let r = app.api_post("/labels", json!({"name": "x", "criteria": deep})).await;
    assert_api_error(&r, 422, "criteria.and[0].and[0].and[0].and");
    let r = app
        .api_post(
            "/labels",
            json!({"name": "x", "criteria": {"vital": "end_user_idp_group", "value": "a"}, "query": "SELECT 1"}),
        )
        .await;
    assert_api_error(&r, 422, "query");

    let ok = json!({"name": "Eng", "criteria": {"vital": "end_user_idp_group", "value": "Eng"}});
    let label = create_label(&app, ok.clone()).await;
    // Not resolved (no such group yet): matched by name or id when read.
    assert!(label["criteria"].get("group_id").is_none(), "{label}");
    let r = app
        .api_post("/labels", json!({"name": "ENG ", "criteria": {"vital": "end_user_idp_group", "value": "x"}}))
        .await;
    assert_api_error(&r, 409, "name");
    let r = app.api_get("/labels/abc").await;
    assert_api_error(&r, 404, "id");

    let observer = app.token_with_role("viewer", Role::Observer).await;
    let r = app.api_as(Some(&observer), Method::GET, &format!("{API}/labels"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .api_as(
            Some(&observer),
            Method::POST,
            &format!("{API}/labels"),
            Some(json!({"name": "o", "criteria": ok["criteria"]})),
        )
        .await;
    assert_api_error(&r, 403, "base");
    let id = label["id"].as_i64().unwrap();
    let r = app.api_as(Some(&observer), Method::DELETE, &format!("{API}/labels/{id}"), None).await;
    assert_api_error(&r, 403, "base");

    // A label made before its group exists starts matching when the group arrives.
    let u = app.create_user("dev@example.com").await;
    let h = app.enroll_host("mac-dev", Some("dev@example.com")).await;
    app.create_group_with("eng", &[&u]).await;
    assert_eq!(label_host_ids(&app, id).await, vec![h]);
}
