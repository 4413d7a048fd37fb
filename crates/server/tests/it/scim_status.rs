//! The IdP connection status: `GET /api/v1/fleet/scim/details` (Fleet's shape) and the
//! request history `GET /api/v1/fleet/scim/requests`.

use custodian_domain::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{SCIM, TestApp, filter_q, okta_user};

const DETAILS: &str = "/api/v1/fleet/scim/details";
const REQUESTS: &str = "/api/v1/fleet/scim/requests";
const OKTA_UA: &str = "Okta SCIM Client 1.0.0";

async fn details(app: &TestApp) -> Value {
    let r = app.request(Method::GET, DETAILS, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

fn assert_recent_rfc3339(s: &Value) {
    let s = s.as_str().unwrap_or_else(|| panic!("requested_at is not a string: {s}"));
    let t = chrono::DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("'{s}' is not RFC 3339: {e}"));
    let age = chrono::Utc::now().signed_duration_since(t.with_timezone(&chrono::Utc));
    assert!(age.num_seconds().abs() < 300, "requested_at {s} is not recent");
}

#[tokio::test]
async fn details_is_null_before_any_scim_request() {
    let app = TestApp::spawn().await;
    assert_eq!(details(&app).await, json!({"last_request": null}));
    let r = app.request(Method::GET, "/api/latest/fleet/scim/details", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, json!({"last_request": null}));
    let r = app.request(Method::GET, REQUESTS, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["requests"], json!([]));
}

#[tokio::test]
async fn details_after_a_successful_request_is_success_with_empty_details() {
    let app = TestApp::spawn().await;
    let r = app.get(&format!("/Users?{}", filter_q(r#"userName eq "x@example.com""#))).await;
    assert_eq!(r.status, 200);
    let d = details(&app).await;
    let last = &d["last_request"];
    assert_eq!(last["status"], "success", "{d}");
    assert_eq!(last["details"], "", "{d}");
    assert_recent_rfc3339(&last["requested_at"]);
    let mut keys: Vec<&str> = last.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, vec!["details", "requested_at", "status"]);
}

#[tokio::test]
async fn details_after_a_failing_request_is_error_with_the_detail() {
    let app = TestApp::spawn().await;
    app.create_user("jane@example.com").await;
    let r = app.post("/Users", okta_user("jane@example.com", "Jane", "Doe")).await;
    assert_eq!(r.status, 409);
    let d = details(&app).await;
    let last = &d["last_request"];
    assert_eq!(last["status"], "error", "{d}");
    assert_eq!(last["details"], r.body["detail"], "the SCIM error's detail is kept: {d}");
    assert_recent_rfc3339(&last["requested_at"]);

    // A success afterwards clears it.
    app.get("/Users").await;
    let d = details(&app).await;
    assert_eq!(d["last_request"]["status"], "success");
    assert_eq!(d["last_request"]["details"], "");
}

#[tokio::test]
async fn a_long_error_detail_is_kept_to_255_characters() {
    let app = TestApp::spawn().await;
    let id = app.create_user("jane@example.com").await;
    let long_path = format!("é{}", "x".repeat(1000));
    let r = app
        .patch(&format!("/Users/{id}"), json!({"Operations": [{"op": "replace", "path": long_path, "value": "v"}]}))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    let d = details(&app).await;
    assert_eq!(d["last_request"]["status"], "error");
    let detail = d["last_request"]["details"].as_str().unwrap();
    assert!(!detail.is_empty());
    assert!(detail.chars().count() <= 255, "{} characters", detail.chars().count());
    assert!(r.body["detail"].as_str().unwrap().starts_with(detail), "the detail is a prefix of the error's");
}

#[tokio::test]
async fn status_endpoints_need_a_token_and_answer_401_json_error() {
    let app = TestApp::spawn().await;
    for path in [DETAILS, REQUESTS] {
        for token in [None, Some("not-a-token")] {
            let r = app.request_as(token, Method::GET, path, None).await;
            assert_eq!(r.status, 401, "{path}: {}", r.text);
            assert!(r.header("content-type").is_some_and(|c| c.starts_with("application/json")), "{:?}", r.headers);
            assert!(r.body["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", r.text);
            assert!(r.body["errors"].as_array().is_some_and(|e| !e.is_empty()), "{}", r.text);
        }
    }
}

#[tokio::test]
async fn status_endpoints_answer_any_role_including_observer() {
    let app = TestApp::spawn().await;
    app.get("/Users").await;
    for role in [Role::Observer, Role::Maintainer, Role::Admin] {
        let token = app.token_with_role(&format!("{role:?}"), role).await;
        let r = app.request_as(Some(&token), Method::GET, DETAILS, None).await;
        assert_eq!(r.status, 200, "{role:?}: {}", r.text);
        assert_eq!(r.body["last_request"]["status"], "success");
        let r = app.request_as(Some(&token), Method::GET, REQUESTS, None).await;
        assert_eq!(r.status, 200, "{role:?}: {}", r.text);
        assert_eq!(r.body["requests"].as_array().unwrap().len(), 1);
    }
}

#[tokio::test]
async fn requests_list_the_history_newest_first_without_tokens_or_bodies() {
    let app = TestApp::spawn().await;
    let ua = [("user-agent", OKTA_UA)];
    let secret_password = "Zq-9!unlikely-PASSWORD-value";
    let secret_name = "Distinctive-Display-Name-4242";
    let r = app
        .send_json(Method::GET, &format!("/Users?{}", filter_q(r#"userName eq "jane@example.com""#)), None, &ua)
        .await;
    assert_eq!(r.status, 200);
    let mut user = okta_user("jane@example.com", "Jane", "Doe");
    user["password"] = json!(secret_password);
    user["displayName"] = json!(secret_name);
    let r = app.send_json(Method::POST, "/Users", Some(user.clone()), &ua).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = app.send_json(Method::POST, "/Users", Some(user), &ua).await;
    assert_eq!(r.status, 409);
    let dup_detail = r.body["detail"].clone();

    let r = app.request(Method::GET, REQUESTS, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let reqs = r.body["requests"].as_array().unwrap();
    assert_eq!(reqs.len(), 3, "only the SCIM requests are recorded: {}", r.text);

    let (dup, create, lookup) = (&reqs[0], &reqs[1], &reqs[2]);
    assert_eq!(dup["method"], "POST");
    assert!(dup["path"].as_str().unwrap().ends_with("/Users"), "{dup}");
    assert_eq!(dup["status"], 409);
    assert_eq!(dup["details"], dup_detail);
    assert_eq!(create["method"], "POST");
    assert_eq!(create["status"], 201);
    assert!(create["details"].is_null() || create["details"] == "", "{create}");
    assert_eq!(lookup["method"], "GET");
    assert_eq!(lookup["status"], 200);
    assert!(lookup["path"].as_str().unwrap().contains("/Users?filter="), "the query string is kept: {lookup}");
    for e in reqs {
        assert_eq!(e["user_agent"], OKTA_UA, "{e}");
        assert!(e["duration_ms"].as_f64().is_some_and(|d| d >= 0.0), "{e}");
        assert_recent_rfc3339(&e["requested_at"]);
    }
    let times: Vec<&str> = reqs.iter().map(|e| e["requested_at"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");

    assert!(!r.text.contains(&app.token), "the history leaks the token");
    assert!(!r.text.contains(secret_password), "the history leaks the request body (password)");
    assert!(!r.text.contains(secret_name), "the history leaks the request body");

    let r = app.request(Method::GET, &format!("{REQUESTS}?per_page=1"), None).await;
    assert_eq!(r.body["requests"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["requests"][0]["status"], 409);
}

#[tokio::test]
async fn a_token_sent_in_the_query_string_is_not_kept_in_the_history() {
    let app = TestApp::spawn().await;
    // Some misconfigured clients put credentials in the URL; the history must not keep them.
    let r = app.get(&format!("/Users?access_token={}&count=1", app.token)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.request(Method::GET, REQUESTS, None).await;
    assert_eq!(r.body["requests"].as_array().unwrap().len(), 1);
    assert!(!r.text.contains(&app.token), "the history keeps a token from the query string: {}", r.text);
}

#[tokio::test]
async fn history_path_is_the_full_request_path_including_the_mount_point() {
    let app = TestApp::spawn().await;
    // An admin diagnosing a connection must see which base URL the IdP was configured with.
    for base in [SCIM, "/scim/v2"] {
        let r = app.request(Method::GET, &format!("{base}/Users?count=1"), None).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let r = app.request(Method::GET, REQUESTS, None).await;
    let paths: Vec<&str> = r.body["requests"].as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert_eq!(paths, vec!["/scim/v2/Users?count=1", "/api/v1/fleet/scim/Users?count=1"], "{}", r.text);
}

#[tokio::test]
async fn history_queued_before_a_graceful_stop_is_written() {
    let app = TestApp::spawn().await;
    let store = app.store.clone();
    for i in 0..20 {
        let r = app.post("/Users", okta_user(&format!("stop{i}@example.com"), "S", "T")).await;
        assert_eq!(r.status, 201);
    }
    let _dir = app.stop().await;
    let history = store.recent_scim_requests(100).await.unwrap();
    assert_eq!(history.len(), 20, "every request answered before the stop is in the history");
    assert!(history.iter().all(|e| e.method == "POST" && e.status == 201 && e.path == format!("{SCIM}/Users")));
}
