//! Automatic labels (`POST /labels/automatic`): one label per IdP group or department,
//! created, renamed and removed with it in the same write, its hosts those of the group
//! (nested members included); listed as `label_type: "automatic"`, not editable by hand.

use custodian_domain::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::labels::{host_label_names, label_host_ids};
use crate::support::{API, SCIM, TestApp, assert_api_error, okta_user};

const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

fn patch(ops: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": ops})
}

/// The automatic labels, by name, with their ids.
async fn automatic_labels(app: &TestApp) -> Vec<(String, i64)> {
    let r = app.api_get("/labels").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mut out: Vec<(String, i64)> = r.body["labels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["label_type"] == "automatic")
        .map(|l| (l["name"].as_str().unwrap().to_string(), l["id"].as_i64().unwrap()))
        .collect();
    out.sort();
    out
}

fn id_of(labels: &[(String, i64)], name: &str) -> i64 {
    labels.iter().find(|(n, _)| n == name).map(|(_, id)| *id).unwrap_or_else(|| panic!("no label {name}: {labels:?}"))
}

#[tokio::test]
async fn group_labels_follow_a_groups_creation_rename_nesting_and_deletion() {
    let app = TestApp::spawn().await;
    let alice = app.create_user("alice@example.com").await;
    let bob = app.create_user("bob@example.com").await;
    let h_alice = app.enroll_host("mac-alice", Some("alice@example.com")).await;
    let h_bob = app.enroll_host("mac-bob", Some("bob@example.com")).await;
    let eng = app.create_group_with("Engineering", &[&alice]).await;

    // The groups there are now get their labels at once.
    let r = app.api_post("/labels/automatic", json!({"source": "idp_groups"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let source = r.body["automatic_labels"].clone();
    assert_eq!(source["source"], "idp_groups");
    assert_eq!(source["connection"], Value::Null);
    assert_eq!(source["label_count"], 1);
    let labels = automatic_labels(&app).await;
    let eng_label = id_of(&labels, "IdP group: Engineering");
    let r = app.api_get(&format!("/labels/{eng_label}")).await;
    assert_eq!(r.body["label"]["label_type"], "automatic");
    assert_eq!(r.body["label"]["host_count"], 1);
    assert_eq!(r.body["label"]["criteria"]["group_id"], eng.as_str(), "{}", r.text);
    assert_eq!(label_host_ids(&app, eng_label).await, vec![h_alice]);
    // Asking again is answered with the same source.
    let again = app.api_post("/labels/automatic", json!({"source": "idp_groups"})).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.body["automatic_labels"]["id"], source["id"]);

    // A group created in the IdP has its label in the very next read.
    let platform = app.create_group_with("Platform", &[&bob]).await;
    let labels = automatic_labels(&app).await;
    let platform_label = id_of(&labels, "IdP group: Platform");
    assert_eq!(label_host_ids(&app, platform_label).await, vec![h_bob]);

    // Nested: Platform inside Engineering puts Bob's host in Engineering's label.
    let r = app
        .patch(
            &format!("/Groups/{eng}"),
            patch(json!([{"op": "add", "path": "members", "value": [{"value": platform}]}])),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(label_host_ids(&app, eng_label).await, vec![h_alice, h_bob]);
    assert_eq!(host_label_names(&app, h_bob).await, vec!["IdP group: Engineering", "IdP group: Platform"]);
    // Host details say what kind of label each is, as the label list does.
    let types: Vec<Value> =
        app.host(h_bob).await["labels"].as_array().unwrap().iter().map(|l| l["label_type"].clone()).collect();
    assert_eq!(types, [json!("automatic"), json!("automatic")]);

    // Renamed in the IdP: the same label, renamed.
    let r =
        app.patch(&format!("/Groups/{eng}"), patch(json!([{"op": "replace", "value": {"displayName": "R&D"}}]))).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let labels = automatic_labels(&app).await;
    assert_eq!(id_of(&labels, "IdP group: R&D"), eng_label);
    assert!(!labels.iter().any(|(n, _)| n == "IdP group: Engineering"), "{labels:?}");
    assert_eq!(host_label_names(&app, h_alice).await, vec!["IdP group: R&D"]);

    // Not editable by hand.
    let r = app
        .api_as(Some(&app.token), Method::PATCH, &format!("{API}/labels/{eng_label}"), Some(json!({"name": "Mine"})))
        .await;
    assert_api_error(&r, 409, "label_type");
    let r = app.api_delete(&format!("/labels/{eng_label}")).await;
    assert_api_error(&r, 409, "label_type");
    assert_eq!(app.api_get(&format!("/labels/{eng_label}")).await.body["label"]["name"], "IdP group: R&D");

    // Deleted in the IdP: its label goes, and the nesting with it.
    assert_eq!(app.delete(&format!("/Groups/{platform}")).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.api_get(&format!("/labels/{platform_label}")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(label_host_ids(&app, eng_label).await, vec![h_alice]);
    assert!(host_label_names(&app, h_bob).await.is_empty());

    // A label made by hand may have the name an automatic one has; both stay.
    let r = app
        .api_post(
            "/labels",
            json!({"name": "IdP group: R&D", "criteria": {"vital": "end_user_idp_group", "value": "R&D"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["label"]["label_type"], "regular");

    // Stopping the source removes its labels; the one made by hand stays.
    let source_id = source["id"].as_i64().unwrap();
    let r = app.api_get("/labels/automatic").await;
    assert_eq!(r.body["automatic_labels"][0]["label_count"], 1, "{}", r.text);
    assert_eq!(app.api_delete(&format!("/labels/automatic/{source_id}")).await.status, StatusCode::OK);
    assert!(automatic_labels(&app).await.is_empty());
    assert_eq!(app.api_get("/labels").await.body["labels"].as_array().unwrap().len(), 1);
    assert_eq!(app.api_get("/labels/automatic").await.body["automatic_labels"], json!([]));
    assert_eq!(app.api_delete(&format!("/labels/automatic/{source_id}")).await.status, StatusCode::NOT_FOUND);

    let r = app.api_get("/activities").await;
    let kinds: Vec<&str> = r.body["activities"].as_array().unwrap().iter().filter_map(|a| a["type"].as_str()).collect();
    assert!(kinds.contains(&"created_automatic_labels") && kinds.contains(&"deleted_automatic_labels"), "{kinds:?}");
}

fn user_in(user_name: &str, department: &str) -> Value {
    let mut u = okta_user(user_name, "Test", "User");
    u[ENT] = json!({"department": department});
    u
}

#[tokio::test]
async fn department_labels_appear_with_the_first_user_and_go_with_the_last() {
    let app = TestApp::spawn().await;
    let ann = app.create_user_with(user_in("ann@example.com", "Sales")).await["id"].as_str().unwrap().to_string();
    app.create_user_with(user_in("ben@example.com", "sales")).await;
    let h_ann = app.enroll_host("mac-ann", Some("ann@example.com")).await;
    let h_ben = app.enroll_host("mac-ben", Some("ben@example.com")).await;

    let r = app.api_post("/labels/automatic", json!({"source": "idp_departments"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // One label per department in any case, named as its first user wrote it.
    let labels = automatic_labels(&app).await;
    assert_eq!(labels.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["Department: Sales"]);
    let sales = id_of(&labels, "Department: Sales");
    assert_eq!(label_host_ids(&app, sales).await, vec![h_ann, h_ben]);

    // A new department appears with its first user.
    let cy = app.create_user_with(user_in("cy@example.com", "Finance")).await["id"].as_str().unwrap().to_string();
    let h_cy = app.enroll_host("mac-cy", Some("cy@example.com")).await;
    let finance = id_of(&automatic_labels(&app).await, "Department: Finance");
    assert_eq!(label_host_ids(&app, finance).await, vec![h_cy]);

    // Ann moves to Finance: Sales keeps Ben.
    let r = app
        .patch(
            &format!("/Users/{ann}"),
            patch(json!([{"op": "replace", "path": format!("{ENT}:department"), "value": "Finance"}])),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(label_host_ids(&app, sales).await, vec![h_ben]);
    assert_eq!(label_host_ids(&app, finance).await, vec![h_ann, h_cy]);
    assert_eq!(host_label_names(&app, h_ann).await, vec!["Department: Finance"]);

    // Cy is deleted, then Ann and Ben leave their departments: Finance stays while Ann
    // has it; Sales goes with Ben's change.
    assert_eq!(app.delete(&format!("/Users/{cy}")).await.status, StatusCode::NO_CONTENT);
    assert_eq!(label_host_ids(&app, finance).await, vec![h_ann]);
    let r = app
        .patch(&format!("/Users/{ann}"), patch(json!([{"op": "remove", "path": format!("{ENT}:department")}])))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(app.api_get(&format!("/labels/{finance}")).await.status, StatusCode::NOT_FOUND);
    let labels = automatic_labels(&app).await;
    assert_eq!(labels.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["Department: Sales"]);
}

#[tokio::test]
async fn a_source_of_one_connection_follows_only_its_groups_and_bad_requests_name_the_field() {
    let app = TestApp::spawn().await;
    let admin = app.token_with_role("admin", Role::Admin).await;
    let r = app
        .api_as(
            Some(&admin),
            Method::POST,
            &format!("{API}/idp/connections"),
            Some(json!({"name": "entra-sub", "kind": "scim", "priority": 200})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let sub_id = r.body["connection"]["id"].as_i64().unwrap();
    let sub_token = r.body["token"].as_str().unwrap().to_string();
    let scim = |method: Method, path: &str, body: Value| {
        let token = sub_token.clone();
        let path = format!("{SCIM}{path}");
        let app = &app;
        async move { app.request_as(Some(&token), method, &path, Some(body)).await }
    };
    let r = scim(Method::POST, "/Users", okta_user("dana@sub.example.com", "Dana", "Sub")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let dana = r.body["id"].as_str().unwrap().to_string();
    let h_dana = app.enroll_host("mac-dana", Some("dana@sub.example.com")).await;
    app.create_group("Default group").await;

    let r = app.api_post("/labels/automatic", json!({"source": "idp_groups", "connection": "ENTRA-SUB"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["automatic_labels"]["connection"], "entra-sub");
    assert_eq!(r.body["automatic_labels"]["label_count"], 0);
    let r = scim(
        Method::POST,
        "/Groups",
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Sub team",
               "members": [{"value": dana}]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    app.create_group("Another default group").await;
    let labels = automatic_labels(&app).await;
    assert_eq!(labels.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["IdP group: Sub team (entra-sub)"]);
    let sub_team = id_of(&labels, "IdP group: Sub team (entra-sub)");
    assert_eq!(label_host_ids(&app, sub_team).await, vec![h_dana]);

    // The connection renamed: its labels' names and criteria follow.
    let r = app
        .api_as(
            Some(&admin),
            Method::PATCH,
            &format!("{API}/idp/connections/{sub_id}"),
            Some(json!({"name": "entra-eu"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let labels = automatic_labels(&app).await;
    assert_eq!(id_of(&labels, "IdP group: Sub team (entra-eu)"), sub_team);
    assert_eq!(app.api_get(&format!("/labels/{sub_team}")).await.body["label"]["criteria"]["connection"], "entra-eu");
    assert_eq!(label_host_ids(&app, sub_team).await, vec![h_dana]);

    // A source of every connection has each group, and loses the connection's with it.
    let r = app.api_post("/labels/automatic", json!({"source": "idp_groups"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["automatic_labels"]["label_count"], 3, "{}", r.text);
    let r = app.api_as(Some(&admin), Method::DELETE, &format!("{API}/idp/connections/{sub_id}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let labels = automatic_labels(&app).await;
    assert_eq!(
        labels.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["IdP group: Another default group", "IdP group: Default group"]
    );
    let r = app.api_get("/labels/automatic").await;
    assert_eq!(r.body["automatic_labels"].as_array().unwrap().len(), 1, "the connection's source went: {}", r.text);

    // Bad requests name the field; observers only read.
    let r = app.api_post("/labels/automatic", json!({"source": "idp_titles"})).await;
    assert_api_error(&r, 422, "source");
    let r = app.api_post("/labels/automatic", json!({})).await;
    assert_api_error(&r, 422, "source");
    let r = app.api_post("/labels/automatic", json!({"source": "idp_groups", "connection": "nope"})).await;
    assert_api_error(&r, 422, "connection");
    let r = app.api_post("/labels/automatic", json!({"source": "idp_groups", "colour": "red"})).await;
    assert_api_error(&r, 422, "colour");
    let observer = app.token_with_role("olga", Role::Observer).await;
    let r = app
        .api_as(
            Some(&observer),
            Method::POST,
            &format!("{API}/labels/automatic"),
            Some(json!({"source": "idp_groups"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = app.api_as(Some(&observer), Method::GET, &format!("{API}/labels/automatic"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}
