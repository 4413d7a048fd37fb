//! Offboarding: a host owner deactivated, deleted or reactivated in the IdP becomes an
//! event written with the change (the outbox), listed in the deliveries API, and POSTed
//! at least once to the webhook — through a failing receiver and a server restart.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use custodian_domain::Role;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::support::{API, SCIM, TestApp, TestDb, host_body, okta_user, open_store};

const BIN: &str = env!("CARGO_BIN_EXE_custodian");
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const SECRET: &str = "s3cret-for-the-test";

fn set_active(active: bool) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": active}}]})
}

#[tokio::test]
async fn owner_changes_are_recorded_with_the_change_and_listed() {
    let app = TestApp::spawn().await;
    let jane = app.create_user("jane@example.com").await;
    let _idle = app.create_user("nohost@example.com").await;
    app.create_group_with("Engineering", &[&jane]).await;
    let host = app.enroll_host("mac-jane", Some("jane@example.com")).await;

    // A user without hosts makes no event.
    let idle = app.get("/Users?filter=userName%20eq%20%22nohost%40example.com%22").await.body["Resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(app.patch(&format!("/Users/{idle}"), set_active(false)).await.status, StatusCode::OK);

    let r = app.patch(&format!("/Users/{jane}"), set_active(false)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(app.host_ids("idp_active=false").await, vec![host]);

    let r = app.api_get("/webhooks/deliveries").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["webhook_configured"], false);
    let deliveries = r.body["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "{}", r.text);
    let d = &deliveries[0];
    assert_eq!(d["event"], "user_deactivated");
    assert_eq!(d["state"], "pending");
    assert_eq!(d["attempts"], 0);
    let payload = &d["payload"];
    assert_eq!(payload["event"], "user_deactivated");
    assert_eq!(payload["user"]["idp_id"], jane.as_str());
    assert_eq!(payload["user"]["idp_username"], "jane@example.com");
    assert_eq!(payload["user"]["idp_full_name"], "Test User");
    assert_eq!(payload["user"]["idp_groups"], json!(["Engineering"]));
    assert_eq!(
        payload["hosts"],
        json!([{"id": host, "uuid": "mac-jane", "hostname": "mac-jane.local",
        "hardware_serial": "SER-mac-jane", "platform": "darwin"}])
    );

    // Reactivation sends its own event; deletion lists the hosts the user had.
    assert_eq!(app.patch(&format!("/Users/{jane}"), set_active(true)).await.status, StatusCode::OK);
    assert_eq!(app.delete(&format!("/Users/{jane}")).await.status, StatusCode::NO_CONTENT);
    let r = app.api_get("/webhooks/deliveries").await;
    let events: Vec<&str> =
        r.body["deliveries"].as_array().unwrap().iter().map(|d| d["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["user_deleted", "user_reactivated", "user_deactivated"]);
    assert_eq!(r.body["deliveries"][0]["payload"]["hosts"][0]["id"], host);
    assert_eq!(r.body["deliveries"][0]["payload"]["user"]["idp_groups"], json!(["Engineering"]));
    assert_eq!(app.host_ids("idp_active=false").await, vec![host]);

    let r = app.api_get("/webhooks/deliveries?state=delivered").await;
    assert!(r.body["deliveries"].as_array().unwrap().is_empty(), "{}", r.text);
    let r = app.api_get("/webhooks/deliveries?state=lost").await;
    crate::support::assert_api_error(&r, 422, "state");
    let observer = app.token_with_role("viewer", Role::Observer).await;
    let r = app.api_as(Some(&observer), reqwest::Method::GET, &format!("{API}/webhooks/deliveries"), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);

    let metrics = app.client.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("custodian_webhook_backlog 3"), "{metrics}");
}

/// What the test's webhook receiver saw.
#[derive(Default)]
pub(crate) struct Received {
    pub(crate) requests: Vec<(HeaderMap, String, u16)>,
}

/// A receiver on 127.0.0.1:0 that answers 500 to the first `fail_first` requests, then 204.
pub(crate) async fn start_receiver(fail_first: usize) -> (String, Arc<Mutex<Received>>) {
    let received = Arc::new(Mutex::new(Received::default()));
    let state = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let state = state.clone();
            async move {
                let mut r = state.lock().unwrap();
                let status = if r.requests.len() < fail_first { 500 } else { 204 };
                r.requests.push((headers, body, status));
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), received)
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_server(db: &TestDb, port: u16, hook: &str) -> Server {
    let child = Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--database", &db.url])
        .args(["--offboarding-webhook-url", hook, "--offboarding-webhook-secret", SECRET])
        .env("CUSTODIAN_OFFBOARDING_WEBHOOK_BACKOFF_MS", "1500")
        .env_remove("CUSTODIAN_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    crate::support::wait_healthy(&client, &format!("http://127.0.0.1:{port}")).await;
    Server(child)
}

async fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_gets_the_event_through_a_failing_receiver_and_a_restart() {
    let db = TestDb::fresh().await;
    let store = open_store(&db.url).await;
    let token = TestApp::create_token_in(&store, "okta", Role::Maintainer).await;
    drop(store);
    let (hook, received) = start_receiver(2).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let send = |method: reqwest::Method, path: String, body: Option<Value>| {
        let mut req = client.request(method, format!("{base}{path}")).bearer_auth(&token);
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string());
        }
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status();
            (status, serde_json::from_str::<Value>(&resp.text().await.unwrap()).unwrap_or(Value::Null))
        }
    };

    let server = start_server(&db, port, &hook).await;
    let (status, user) =
        send(reqwest::Method::POST, format!("{SCIM}/Users"), Some(okta_user("leaver@example.com", "Lee", "Ver"))).await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let user_id = user["id"].as_str().unwrap().to_string();
    let (status, host) =
        send(reqwest::Method::POST, format!("{API}/hosts"), Some(host_body("mac-leaver", Some("leaver@example.com"))))
            .await;
    assert_eq!(status, StatusCode::CREATED, "{host}");
    let host_id = host["host"]["id"].as_i64().unwrap();
    let (status, body) = send(reqwest::Method::PATCH, format!("{SCIM}/Users/{user_id}"), Some(set_active(false))).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The first attempt fails (500) and is recorded; the server is killed before the retry.
    wait_for("the first attempt", Duration::from_secs(20), || received.lock().unwrap().requests.len() == 1).await;
    let started = Instant::now();
    loop {
        let (_, body) = send(reqwest::Method::GET, format!("{API}/webhooks/deliveries"), None).await;
        if body["deliveries"][0]["attempts"] == 1 {
            assert_eq!(body["deliveries"][0]["state"], "failing", "{body}");
            assert_eq!(body["deliveries"][0]["last_status"], 500, "{body}");
            assert!(body["deliveries"][0]["last_error"].as_str().unwrap().contains("500"), "{body}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the failed attempt was not recorded: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(server);
    let seen_before_restart = received.lock().unwrap().requests.len();
    assert!(seen_before_restart <= 2, "{seen_before_restart}");

    // Restarted: the event is still there and is delivered once the receiver recovers.
    let _server = start_server(&db, port, &hook).await;
    wait_for("the delivery", Duration::from_secs(30), || {
        received.lock().unwrap().requests.iter().any(|(_, _, status)| *status == 204)
    })
    .await;

    let requests = received.lock().unwrap().requests.clone();
    assert_eq!(requests.len(), 3, "exactly two failures then one success");
    let first_body = &requests[0].1;
    for (headers, body, _) in &requests {
        // The same event every time: same delivery id, same body.
        assert_eq!(body, first_body);
        assert_eq!(headers["x-custodian-event"], "user_deactivated");
        assert_eq!(headers["x-custodian-delivery"], requests[0].0["x-custodian-delivery"]);
        assert_eq!(headers["content-type"], "application/json");
        // The signature: HMAC-SHA256 of "<timestamp>.<body>" with the shared secret.
        let timestamp = headers["x-custodian-timestamp"].to_str().unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(format!("{timestamp}.{body}").as_bytes());
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(headers["x-custodian-signature"].to_str().unwrap(), expected);
    }
    let payload: Value = serde_json::from_str(first_body).unwrap();
    let mut keys: Vec<&str> = payload.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["event", "hosts", "occurred_at", "user"]);
    assert_eq!(payload["event"], "user_deactivated");
    assert_eq!(payload["user"]["idp_id"], user_id.as_str());
    assert_eq!(payload["user"]["idp_username"], "leaver@example.com");
    assert_eq!(payload["user"]["idp_full_name"], "Lee Ver");
    assert_eq!(payload["hosts"][0]["id"], host_id);
    assert_eq!(payload["hosts"][0]["uuid"], "mac-leaver");
    assert_eq!(payload["hosts"][0]["hardware_serial"], "SER-mac-leaver");
    assert!(chrono::DateTime::parse_from_rfc3339(payload["occurred_at"].as_str().unwrap()).is_ok());

    let started = Instant::now();
    loop {
        let (_, body) = send(reqwest::Method::GET, format!("{API}/webhooks/deliveries?state=delivered"), None).await;
        if let Some(d) = body["deliveries"].as_array().and_then(|a| a.first()) {
            assert_eq!(d["attempts"], 3, "{body}");
            assert_eq!(d["last_status"], 204, "{body}");
            assert!(d["delivered_at"].is_string(), "{body}");
            assert_eq!(d["id"].to_string(), requests[0].0["x-custodian-delivery"].to_str().unwrap());
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "not marked delivered: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Reactivation sends its own event.
    let (status, _) = send(reqwest::Method::PATCH, format!("{SCIM}/Users/{user_id}"), Some(set_active(true))).await;
    assert_eq!(status, StatusCode::OK);
    wait_for("the reactivation", Duration::from_secs(20), || received.lock().unwrap().requests.len() == 4).await;
    let last = received.lock().unwrap().requests[3].clone();
    assert_eq!(last.0["x-custodian-event"], "user_reactivated");
    let payload: Value = serde_json::from_str(&last.1).unwrap();
    assert_eq!(payload["event"], "user_reactivated");
    assert_eq!(payload["hosts"][0]["id"], host_id);
}
