//! Any IdP attribute in the host list and in labels: `idp_filter` on `/hosts`,
//! `/hosts/count` and a label's hosts, and the `end_user_idp_filter` criterion, both with
//! `GET /Users?filter=`'s parser and SQL translation; errors name the field and carry the
//! parser's offset; a filter label is as live as the other criteria.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestApp, assert_api_error, enc, okta_user};

const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const ACME: &str = "urn:ietf:params:scim:schemas:extension:acme:2.0:User";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A user as Okta sends one with a title, a work address and a custom extension.
fn employee(user_name: &str, title: &str, country: &str, badge: &str) -> Value {
    let mut u = okta_user(user_name, "Test", "User");
    u["schemas"] = json!(["urn:ietf:params:scim:schemas:core:2.0:User", ENT, ACME]);
    u["title"] = json!(title);
    u["addresses"] = json!([
        {"type": "work", "country": country, "locality": "City"},
        {"type": "home", "country": "FR"}
    ]);
    u[ENT] = json!({"department": "R&D", "costCenter": "CC-1"});
    u[ACME] = json!({"badge": badge});
    u
}

async fn ids_of(app: &TestApp, path: &str) -> Vec<i64> {
    let r = app.api_get(path).await;
    assert_eq!(r.status, StatusCode::OK, "GET {path}: {}", r.text);
    r.body["hosts"].as_array().unwrap().iter().map(|h| h["id"].as_i64().unwrap()).collect()
}

async fn count_of(app: &TestApp, query: &str) -> u64 {
    let r = app.api_get(&format!("/hosts/count?{query}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["count"].as_u64().unwrap()
}

#[tokio::test]
async fn idp_filter_lists_counts_and_narrows_label_hosts_to_the_matching_users() {
    let app = TestApp::spawn().await;
    app.create_user_with(employee("ann@example.com", "Engineer", "DE", "42")).await;
    app.create_user_with(employee("ben@example.com", "Engineer", "US", "7")).await;
    app.create_user_with(employee("cy@example.com", "Designer", "DE", "42")).await;
    let h_ann = app.enroll_host("mac-ann", Some("ann@example.com")).await;
    let h_ann2 = app.enroll_host("mac-ann-2", Some("ann@example.com")).await;
    let h_ben = app.enroll_host("mac-ben", Some("ben@example.com")).await;
    let h_cy = app.enroll_host("mac-cy", Some("cy@example.com")).await;
    let _h_nobody = app.enroll_host("mac-nobody", None).await;
    let _h_unknown = app.enroll_host("mac-unknown", Some("dan@example.com")).await;

    let engineers_in_de = r#"title eq "Engineer" and addresses[type eq "work"].country eq "DE""#;
    assert_eq!(ids_of(&app, &format!("/hosts?idp_filter={}", enc(engineers_in_de))).await, vec![h_ann, h_ann2]);
    assert_eq!(count_of(&app, &format!("idp_filter={}", enc(engineers_in_de))).await, 2);
    // Case-insensitive like SCIM, any operator, and a custom extension's attribute.
    let badge = format!("{ACME}:badge eq \"42\"");
    assert_eq!(ids_of(&app, &format!("/hosts?idp_filter={}", enc(&badge))).await, vec![h_ann, h_ann2, h_cy]);
    let title_sw = r#"title sw "ENG""#;
    assert_eq!(ids_of(&app, &format!("/hosts?idp_filter={}", enc(title_sw))).await, vec![h_ann, h_ann2, h_ben]);
    // `not` selects users, so hosts without a user never match.
    let not_engineer = r#"not (title eq "Engineer")"#;
    assert_eq!(ids_of(&app, &format!("/hosts?idp_filter={}", enc(not_engineer))).await, vec![h_cy]);
    // It combines with the other filters and with paging.
    let q = format!("idp_filter={}&query=ann-2", enc(engineers_in_de));
    assert_eq!(ids_of(&app, &format!("/hosts?{q}")).await, vec![h_ann2]);
    assert_eq!(count_of(&app, &q).await, 1);
    let page = format!("/hosts?idp_filter={}&per_page=1&page=1&order_key=id", enc(engineers_in_de));
    assert_eq!(ids_of(&app, &page).await, vec![h_ann2]);

    // A label's host list narrows the same way.
    let r = app
        .api_post("/labels", json!({"name": "R&D", "criteria": {"vital": "end_user_idp_department", "value": "r&d"}}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let label = r.body["label"]["id"].as_i64().unwrap();
    assert_eq!(ids_of(&app, &format!("/labels/{label}/hosts")).await, vec![h_ann, h_ann2, h_ben, h_cy]);
    let narrowed = format!("/labels/{label}/hosts?idp_filter={}", enc(r#"title eq "designer""#));
    assert_eq!(ids_of(&app, &narrowed).await, vec![h_cy]);
}

#[tokio::test]
async fn an_invalid_idp_filter_is_refused_naming_the_field_with_the_parsers_offset() {
    let app = TestApp::spawn().await;
    app.create_user_with(employee("ann@example.com", "Engineer", "DE", "42")).await;
    app.enroll_host("mac-ann", Some("ann@example.com")).await;

    let bad = r#"title eq "Engineer" and"#;
    // The reason is the SCIM parser's own detail, which names the character offset.
    let scim = app.get(&format!("/Users?filter={}", enc(bad))).await;
    scim.assert_scim_error(400, Some("invalidFilter"));
    let detail = scim.body["detail"].as_str().unwrap();
    assert!(detail.contains("offset 23"), "{detail}");
    for path in ["/hosts", "/hosts/count"] {
        let r = app.api_get(&format!("{path}?idp_filter={}", enc(bad))).await;
        assert_api_error(&r, 422, "idp_filter");
        assert_eq!(r.body["errors"][0]["reason"], detail, "{}", r.text);
    }
    // Valid SCIM that no SQL can answer (`meta.location`) is refused the same way.
    let r = app.api_get(&format!("/hosts?idp_filter={}", enc(r#"meta.location eq "x""#))).await;
    assert_api_error(&r, 422, "idp_filter");
    // An unknown comparison on a boolean is a type error, not a 500.
    let r = app.api_get(&format!("/hosts?idp_filter={}", enc("active gt true"))).await;
    assert_api_error(&r, 422, "idp_filter");
    // No filter value is not a filter: every host.
    let r = app.api_get("/hosts?idp_filter=").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["hosts"].as_array().unwrap().len(), 1, "{}", r.text);
}

#[tokio::test]
async fn a_filter_label_follows_a_title_change_in_the_very_next_read() {
    let app = TestApp::spawn().await;
    let ann = app.create_user_with(employee("ann@example.com", "Engineer", "DE", "42")).await;
    let ann = ann["id"].as_str().unwrap().to_string();
    let ben = app.create_user_with(employee("ben@example.com", "Engineer", "US", "7")).await;
    let ben = ben["id"].as_str().unwrap().to_string();
    app.create_user_with(employee("cy@example.com", "Designer", "DE", "1")).await;
    let h_ann = app.enroll_host("mac-ann", Some("ann@example.com")).await;
    let h_ben = app.enroll_host("mac-ben", Some("ben@example.com")).await;
    let h_cy = app.enroll_host("mac-cy", Some("cy@example.com")).await;

    let filter = r#"title eq "Engineer" and addresses[type eq "work"].country eq "DE""#;
    let r = app
        .api_post(
            "/labels",
            json!({"name": "German engineers", "criteria": {"vital": "end_user_idp_filter", "value": filter}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let label = &r.body["label"];
    assert_eq!(label["criteria"], json!({"vital": "end_user_idp_filter", "value": filter}));
    assert_eq!(label["host_count"], 1);
    let id = label["id"].as_i64().unwrap();
    assert_eq!(ids_of(&app, &format!("/labels/{id}/hosts")).await, vec![h_ann]);

    // Combined with the other criteria by and / or.
    let r = app
        .api_post(
            "/labels",
            json!({"name": "Engineers or Designers in R&D", "criteria": {"and": [
                {"vital": "end_user_idp_department", "value": "R&D"},
                {"or": [
                    {"vital": "end_user_idp_filter", "value": "title eq \"engineer\""},
                    {"vital": "end_user_idp_filter", "value": format!("{ACME}:badge eq \"1\"")}
                ]}
            ]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let combined = r.body["label"]["id"].as_i64().unwrap();
    assert_eq!(ids_of(&app, &format!("/labels/{combined}/hosts")).await, vec![h_ann, h_ben, h_cy]);

    // Ann is promoted in the IdP: the very next reads follow.
    let r = app
        .patch(
            &format!("/Users/{ann}"),
            json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "title", "value": "Manager"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(ids_of(&app, &format!("/labels/{id}/hosts")).await.is_empty());
    assert_eq!(app.api_get(&format!("/labels/{id}")).await.body["label"]["host_count"], 0);
    assert!(app.host(h_ann).await["labels"].as_array().unwrap().iter().all(|l| l["name"] != "German engineers"));
    assert_eq!(ids_of(&app, &format!("/labels/{combined}/hosts")).await, vec![h_ben, h_cy]);

    // Ben moves to Germany: he is in the label now.
    let r = app
        .patch(
            &format!("/Users/{ben}"),
            json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "replace", "path": "addresses[type eq \"work\"].country", "value": "DE"}
            ]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(ids_of(&app, &format!("/labels/{id}/hosts")).await, vec![h_ben]);
    let names: Vec<Value> =
        app.host(h_ben).await["labels"].as_array().unwrap().iter().map(|l| l["name"].clone()).collect();
    assert!(names.contains(&json!("German engineers")), "{names:?}");
}

#[tokio::test]
async fn a_label_with_a_bad_filter_is_refused_at_save_naming_the_condition() {
    let app = TestApp::spawn().await;
    let r = app
        .api_post(
            "/labels",
            json!({"name": "x", "criteria": {"vital": "end_user_idp_filter", "value": "title eq \"a\" or"}}),
        )
        .await;
    assert_api_error(&r, 422, "criteria.value");
    assert!(r.text.contains("offset"), "the parser's offset: {}", r.text);

    let r = app
        .api_post(
            "/labels",
            json!({"name": "x", "criteria": {"or": [
                {"vital": "end_user_idp_department", "value": "Sales"},
                {"vital": "end_user_idp_filter", "value": "meta.location eq \"x\""}
            ]}}),
        )
        .await;
    assert_api_error(&r, 422, "criteria.or[1].value");

    let long = format!("title eq \"{}\"", "a".repeat(5000));
    let r = app
        .api_post("/labels", json!({"name": "x", "criteria": {"vital": "end_user_idp_filter", "value": long}}))
        .await;
    // Too long is a 400, as on every field (`GET /Users` takes no longer filter either).
    assert_api_error(&r, 400, "criteria.value");

    // Nothing was saved.
    let r = app.api_get("/labels").await;
    assert_eq!(r.body["labels"], json!([]), "{}", r.text);

    // PATCHing a good label with a bad filter keeps the good one.
    let r = app
        .api_post("/labels", json!({"name": "ok", "criteria": {"vital": "end_user_idp_filter", "value": "title pr"}}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let id = r.body["label"]["id"].as_i64().unwrap();
    let r = app
        .api_as(
            Some(&app.token),
            reqwest::Method::PATCH,
            &format!("{}/labels/{id}", crate::support::API),
            Some(json!({"criteria": {"vital": "end_user_idp_filter", "value": "title eq"}})),
        )
        .await;
    assert_api_error(&r, 422, "criteria.value");
    let r = app.api_get(&format!("/labels/{id}")).await;
    assert_eq!(r.body["label"]["criteria"]["value"], "title pr", "{}", r.text);
}
