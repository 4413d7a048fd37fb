//! Authentication and roles on SCIM routes.

use custodian_domain::Role;
use reqwest::Method;

use crate::support::{SCIM, TestApp};

#[tokio::test]
async fn missing_or_bad_token_is_401_with_scim_error_and_bearer_challenge() {
    let app = TestApp::spawn().await;
    let r = app.request_as(None, Method::GET, &format!("{SCIM}/Users"), None).await;
    r.assert_scim_error(401, None);
    assert!(r.header("www-authenticate").is_some_and(|h| h.starts_with("Bearer")));

    let r = app.request_as(Some("not-a-real-token"), Method::GET, &format!("{SCIM}/Users"), None).await;
    r.assert_scim_error(401, None);

    // Okta's spec test: "Authorization: non-token".
    let resp =
        app.client.get(format!("{}{SCIM}/Users", app.base)).header("authorization", "non-token").send().await.unwrap();
    let r = TestApp::read(resp).await;
    r.assert_scim_error(401, None);
    assert_eq!(r.body["status"], "401");
}

#[tokio::test]
async fn observer_token_is_forbidden_and_maintainer_and_admin_are_allowed() {
    let app = TestApp::spawn().await;
    let observer = app.token_with_role("viewer", Role::Observer).await;
    let admin = app.token_with_role("root", Role::Admin).await;
    let r = app.request_as(Some(&observer), Method::GET, &format!("{SCIM}/Users"), None).await;
    r.assert_scim_error(403, None);
    for token in [&app.token, &admin] {
        let r = app.request_as(Some(token), Method::GET, &format!("{SCIM}/Users"), None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["totalResults"], 0);
    }
}

#[tokio::test]
async fn unauthenticated_requests_do_not_change_the_connection_status() {
    let app = TestApp::spawn().await;
    app.request_as(Some("bad"), Method::GET, &format!("{SCIM}/Users"), None).await;
    let r = app.request(Method::GET, "/api/v1/fleet/scim/details", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, serde_json::json!({"last_request": null}));
}
