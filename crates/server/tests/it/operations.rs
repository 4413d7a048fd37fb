//! Running Custodian: `/metrics` for Prometheus, `/readyz` for a load balancer, the
//! request id on every response and in every JSON log line.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{SCIM, TestApp, okta_user};

const OKTA_UA: &str = "Okta SCIM Client 1.0.0";
const ENTRA_UA: &str = "Microsoft.Identity.Provisioning";

/// `GET /metrics` without a token; asserts 200 and the OpenMetrics content type.
async fn scrape(app: &TestApp) -> String {
    let r = app.request_as(None, Method::GET, "/metrics", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.header("content-type").is_some_and(|c| c.starts_with("application/openmetrics-text")),
        "{:?}",
        r.header("content-type")
    );
    r.text
}

/// The value of the sample named exactly `series` (name and labels), if present.
fn sample<'a>(exposition: &'a str, series: &str) -> Option<&'a str> {
    exposition.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
}

fn assert_sample(exposition: &str, series: &str, value: &str) {
    assert_eq!(sample(exposition, series), Some(value), "{series} in:\n{exposition}");
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_status_and_idp_without_ids() {
    let app = TestApp::spawn().await;
    let okta = [("user-agent", OKTA_UA)];
    let mut ids = Vec::new();
    for name in ["ada@example.com", "grace@example.com"] {
        let r = app.send_json(Method::POST, "/Users", Some(okta_user(name, "A", "B")), &okta).await;
        assert_eq!(r.status, 201, "{}", r.text);
        ids.push(r.body["id"].as_str().unwrap().to_string());
    }
    let r = app.send_json(Method::GET, &format!("/Users/{}", ids[0]), None, &okta).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.send_json(Method::GET, "/Users/no-such-id-4711", None, &okta).await;
    assert_eq!(r.status, 404, "{}", r.text);
    // Entra creates a user that exists: a client error.
    let entra = [("user-agent", ENTRA_UA)];
    let r = app.send_json(Method::POST, "/Users", Some(okta_user("ada@example.com", "A", "B")), &entra).await;
    assert_eq!(r.status, 409, "{}", r.text);
    // Without a token: counted too, as a client error of an unknown client.
    let r = app.request_as(None, Method::GET, &format!("{SCIM}/Groups"), None).await;
    assert_eq!(r.status, 401);
    // An unknown path is not a label value.
    let r = app.request_as(None, Method::GET, "/nothing/here/ada@example.com", None).await;
    assert_eq!(r.status, 404);

    let m = scrape(&app).await;
    assert_sample(
        &m,
        r#"custodian_scim_operations_total{idp="okta",connection="default",resource="Users",operation="create",outcome="success"}"#,
        "2",
    );
    assert_sample(
        &m,
        r#"custodian_scim_operations_total{idp="okta",connection="default",resource="Users",operation="get",outcome="success"}"#,
        "1",
    );
    assert_sample(
        &m,
        r#"custodian_scim_operations_total{idp="okta",connection="default",resource="Users",operation="get",outcome="client_error"}"#,
        "1",
    );
    assert_sample(
        &m,
        r#"custodian_scim_operations_total{idp="entra",connection="default",resource="Users",operation="create",outcome="client_error"}"#,
        "1",
    );
    assert_sample(
        &m,
        r#"custodian_scim_operations_total{idp="other",connection="none",resource="Groups",operation="list",outcome="client_error"}"#,
        "1",
    );
    assert_sample(
        &m,
        r#"custodian_http_requests_total{method="POST",route="/api/v1/fleet/scim/Users",status="201"}"#,
        "2",
    );
    assert_sample(
        &m,
        r#"custodian_http_requests_total{method="POST",route="/api/v1/fleet/scim/Users",status="409"}"#,
        "1",
    );
    assert_sample(
        &m,
        r#"custodian_http_requests_total{method="GET",route="/api/v1/fleet/scim/Users/{id}",status="200"}"#,
        "1",
    );
    assert_sample(
        &m,
        r#"custodian_http_requests_total{method="GET",route="/api/v1/fleet/scim/Users/{id}",status="404"}"#,
        "1",
    );
    assert_sample(&m, r#"custodian_http_requests_total{method="GET",route="unmatched",status="404"}"#, "1");
    assert_sample(
        &m,
        r#"custodian_http_request_duration_seconds_count{method="POST",route="/api/v1/fleet/scim/Users"}"#,
        "3",
    );
    assert_sample(
        &m,
        r#"custodian_http_request_duration_seconds_bucket{le="+Inf",method="POST",route="/api/v1/fleet/scim/Users"}"#,
        "3",
    );
    // Cumulative buckets from 1 ms to 10 s, then +Inf.
    let buckets: Vec<(String, u64)> = m
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(r#"custodian_http_request_duration_seconds_bucket{le=""#)?;
            let (le, rest) = rest.split_once('"')?;
            let value = rest.strip_prefix(r#",method="POST",route="/api/v1/fleet/scim/Users"} "#)?;
            Some((le.to_string(), value.parse().ok()?))
        })
        .collect();
    let bounds: Vec<&str> = buckets.iter().map(|(le, _)| le.as_str()).collect();
    assert_eq!(
        bounds,
        [
            "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "7.5",
            "10.0", "+Inf"
        ],
        "{m}"
    );
    assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "cumulative: {buckets:?}");
    assert!(m.contains("# TYPE custodian_http_request_duration_seconds histogram"), "{m}");
    assert!(
        m.contains(r#"custodian_http_request_duration_seconds_bucket{le="10.0",method="GET",route="/api/v1/fleet/scim/Users/{id}"}"#),
        "the buckets go up to 10 s:\n{m}"
    );
    // The pool gauges, read at scrape time.
    let max: u32 = sample(&m, "custodian_db_pool_connections_max").unwrap_or_else(|| panic!("{m}")).parse().unwrap();
    let open: u32 = sample(&m, "custodian_db_pool_connections_open").unwrap_or_else(|| panic!("{m}")).parse().unwrap();
    let idle: u32 = sample(&m, "custodian_db_pool_connections_idle").unwrap_or_else(|| panic!("{m}")).parse().unwrap();
    assert!(max >= 1 && open <= max && idle <= open, "open {open}, idle {idle}, max {max}");
    // No personal data, no ids, no raw user agents.
    for secret in
        [&ids[0], &ids[1], "ada@example.com", "no-such-id-4711", "nothing/here", OKTA_UA, ENTRA_UA, &app.token]
    {
        assert!(!m.contains(secret), "/metrics leaks {secret}:\n{m}");
    }
    // The offboarding backlog, read at scrape time: nothing to send yet.
    assert_sample(&m, "custodian_webhook_backlog", "0");

    // The scrape itself is counted on the next one.
    let m = scrape(&app).await;
    assert_sample(&m, r#"custodian_http_requests_total{method="GET",route="/metrics",status="200"}"#, "1");
}

#[tokio::test]
async fn metrics_name_the_route_template_on_every_scim_mount_point_and_the_json_api() {
    let app = TestApp::spawn().await;
    let id = app.create_user("jane@example.com").await;
    let r = app.request(Method::PATCH, &format!("/scim/v2/Users/{id}"), Some(json!({"Operations": []}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.request(Method::GET, "/scim/v2/Nope/abc", None).await;
    assert_eq!(r.status, 404, "{}", r.text);
    let host = app.enroll_host("host-uuid-1", Some("jane@example.com")).await;
    let r = app.api_get(&format!("/hosts/{host}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.request(Method::GET, "/api/v1/fleet/scim/details", None).await;
    assert_eq!(r.status, 200, "{}", r.text);

    let m = scrape(&app).await;
    assert_sample(&m, r#"custodian_http_requests_total{method="PATCH",route="/scim/v2/Users/{id}",status="200"}"#, "1");
    assert_sample(
        &m,
        r#"custodian_scim_operations_total{idp="other",connection="default",resource="Users",operation="patch",outcome="success"}"#,
        "1",
    );
    // An unknown SCIM endpoint: unmatched, yet counted as a SCIM request.
    assert_sample(&m, r#"custodian_http_requests_total{method="GET",route="unmatched",status="404"}"#, "1");
    assert_sample(
        &m,
        r#"custodian_scim_operations_total{idp="other",connection="default",resource="unknown",operation="unknown",outcome="client_error"}"#,
        "1",
    );
    assert_sample(
        &m,
        r#"custodian_http_requests_total{method="GET",route="/api/v1/fleet/hosts/{id}",status="200"}"#,
        "1",
    );
    // The connection status is JSON API, not SCIM, though under the same prefix.
    assert_sample(
        &m,
        r#"custodian_http_requests_total{method="GET",route="/api/v1/fleet/scim/details",status="200"}"#,
        "1",
    );
    let scim_ops: Vec<&str> = m.lines().filter(|l| l.starts_with("custodian_scim_operations_total")).collect();
    assert_eq!(scim_ops.len(), 3, "create, patch and the unknown endpoint: {scim_ops:#?}");
    assert!(!m.contains(&id) && !m.contains(&format!("/hosts/{host}\"")) && !m.contains("Nope"), "{m}");
}

#[tokio::test]
async fn readyz_is_ready_when_the_database_answers_and_healthz_stays_liveness() {
    let app = TestApp::spawn().await;
    let r = app.request_as(None, Method::GET, "/readyz", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("application/json")), "{:?}", r.headers);
    assert_eq!(r.body, json!({"status": "ready"}));
    assert!(r.header("x-request-id").is_some());
    let r = app.request_as(None, Method::GET, "/healthz", None).await;
    assert_eq!((r.status.as_u16(), r.text.as_str()), (200, "ok"));
}

fn is_generated_id(id: &str) -> bool {
    uuid::Uuid::parse_str(id).is_ok()
}

#[tokio::test]
async fn every_response_carries_a_request_id_errors_included() {
    let app = TestApp::spawn().await;
    let mut seen = std::collections::HashSet::new();
    let replies = [
        ("unmatched 404", app.request_as(None, Method::GET, "/no/such/page", None).await, 404),
        ("405", app.request_as(None, Method::DELETE, "/healthz", None).await, 405),
        ("SCIM 401", app.request_as(None, Method::GET, &format!("{SCIM}/Users"), None).await, 401),
        ("SCIM 404", app.get("/Users/unknown-id").await, 404),
        ("SCIM unknown endpoint", app.get("/Nope").await, 404),
        (
            "SCIM invalid JSON",
            app.send(Method::POST, &format!("{SCIM}/Users"), Some(("application/scim+json", "{".into())), &[]).await,
            400,
        ),
        ("JSON API 404", app.api_get("/hosts/999999").await, 404),
        ("JSON API 401", app.api_as(None, Method::GET, "/api/v1/fleet/hosts", None).await, 401),
        ("metrics", app.request_as(None, Method::GET, "/metrics", None).await, 200),
        ("healthz", app.request_as(None, Method::GET, "/healthz", None).await, 200),
    ];
    for (what, r, status) in replies {
        assert_eq!(r.status.as_u16(), status, "{what}: {}", r.text);
        let id = r.header("x-request-id").unwrap_or_else(|| panic!("{what}: no x-request-id in {:?}", r.headers));
        assert!(is_generated_id(id), "{what}: {id}");
        assert!(seen.insert(id.to_string()), "{what}: request id {id} reused");
    }
}

#[tokio::test]
async fn a_fit_incoming_request_id_is_kept_and_an_unfit_one_replaced() {
    let app = TestApp::spawn().await;
    let send = |id: reqwest::header::HeaderValue| {
        let req = app.client.get(format!("{}{SCIM}/Users/unknown-id", app.base)).bearer_auth(&app.token);
        async move { TestApp::read(req.header("x-request-id", id).send().await.unwrap()).await }
    };
    let kept = "lb-7f3a9c2e-0001/edge:eu-west";
    let r = send(reqwest::header::HeaderValue::from_static(kept)).await;
    r.assert_scim_error(404, None);
    assert_eq!(r.header("x-request-id"), Some(kept));
    let longest = "x".repeat(128);
    let r = send(reqwest::header::HeaderValue::from_str(&longest).unwrap()).await;
    assert_eq!(r.header("x-request-id"), Some(longest.as_str()));

    let unfit: Vec<reqwest::header::HeaderValue> = vec![
        reqwest::header::HeaderValue::from_str(&"x".repeat(129)).unwrap(),
        reqwest::header::HeaderValue::from_static("two words"),
        reqwest::header::HeaderValue::from_static("tab\there"),
        reqwest::header::HeaderValue::from_bytes(b"caf\xe9").unwrap(),
        reqwest::header::HeaderValue::from_static(""),
    ];
    for value in unfit {
        let r = send(value.clone()).await;
        r.assert_scim_error(404, None);
        let id = r.header("x-request-id").unwrap_or_else(|| panic!("{value:?}: no request id"));
        assert!(is_generated_id(id), "{value:?} must be replaced, got {id:?}");
    }

    // Sent twice: replaced by one fresh id.
    let req = app
        .client
        .get(format!("{}/healthz", app.base))
        .header("x-request-id", "first")
        .header("x-request-id", "second");
    let r = TestApp::read(req.send().await.unwrap()).await;
    let ids: Vec<_> = r.headers.get_all("x-request-id").iter().collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert!(is_generated_id(ids[0].to_str().unwrap()), "{ids:?}");
}

const BIN: &str = env!("CARGO_BIN_EXE_custodian");

#[tokio::test]
async fn json_logs_carry_the_request_id_and_never_the_query_string_or_token() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/c.db", dir.path().display());
    let migrated = Command::new(BIN).args(["migrate", "--database", &db]).env_remove("CUSTODIAN_DATABASE_URL").output();
    assert!(migrated.unwrap().status.success());
    let out = Command::new(BIN)
        .args(["user", "create", "--api-only", "--name", "okta", "--role", "maintainer", "--database", &db])
        .env_remove("CUSTODIAN_DATABASE_URL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--database", &db, "--log-format", "json"])
        .env_remove("CUSTODIAN_DATABASE_URL")
        .env_remove("CUSTODIAN_LOG")
        .env_remove("CUSTODIAN_LOG_FORMAT")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    crate::support::wait_healthy(&client, &base).await;
    let secret_query = "Query-Secret-Value-31337";
    let body_secret = "Body-Secret-Password-271828";
    let mut user = okta_user("json-log@example.com", "J", "L");
    user["password"] = json!(body_secret);
    let r = client
        .post(format!("{base}{SCIM}/Users?access_token={secret_query}"))
        .bearer_auth(&token)
        .header("x-request-id", "it-json-log-0001")
        .header("content-type", "application/scim+json")
        .body(user.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers().get("x-request-id").and_then(|v| v.to_str().ok()), Some("it-json-log-0001"));
    let r = client.get(format!("{base}/no/such/page")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let generated = r.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap().to_string();

    let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let text = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}")))
        .collect();
    let of_request = |id: &str| -> Vec<&Value> { lines.iter().filter(|l| l["span"]["request_id"] == id).collect() };
    let create = of_request("it-json-log-0001");
    assert!(!create.is_empty(), "no log line carries the request id:\n{text}");
    let access = create.iter().find(|l| l["fields"]["status"] == 201).unwrap_or_else(|| panic!("{text}"));
    assert_eq!(access["level"], "INFO", "{access}");
    assert_eq!(access["span"]["route"], "/api/v1/fleet/scim/Users", "{access}");
    assert_eq!(access["span"]["method"], "POST", "{access}");
    assert_eq!(access["spans"][0]["request_id"], "it-json-log-0001", "the enclosing spans: {access}");
    let unmatched = of_request(&generated);
    assert!(unmatched.iter().any(|l| l["span"]["route"] == "unmatched" && l["fields"]["status"] == 404), "{text}");
    for secret in [secret_query, body_secret, token.as_str(), "json-log@example.com", "/no/such/page"] {
        assert!(!text.contains(secret), "the log holds {secret}:\n{text}");
    }
}
