//! Overload protection: per-token rate limits (429 + Retry-After), sign-in attempts per
//! address, the cap on requests in flight (503), stalled bodies (408), oversized headers
//! (431) and slowloris connections. Each test sets its own small limits.

use std::time::Duration;

use custodian::AppConfig;
use custodian::limits::Limits;
use custodian_domain::Role;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Reply, SCIM, TestApp};

fn with_limits(limits: Limits) -> AppConfig {
    AppConfig { limits, ..AppConfig::default() }
}

/// A guard against a hung test, not a timing assertion.
const HANG: Duration = Duration::from_secs(60);

fn assert_api_error(reply: &Reply, status: u16) {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.text);
    assert!(reply.header("content-type").is_some_and(|c| c.starts_with("application/json")), "{:?}", reply.headers);
    assert!(reply.body["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", reply.text);
    assert!(reply.body["errors"].is_array(), "{}", reply.text);
}

fn retry_after(reply: &Reply) -> u64 {
    let value = reply.header("retry-after").unwrap_or_else(|| panic!("no Retry-After: {:?}", reply.headers));
    let seconds: u64 = value.parse().unwrap();
    assert!(seconds >= 1, "Retry-After: {value}");
    seconds
}

/// Sends requests with `token` until one is answered 429 (at most 30); returns it.
async fn until_limited(app: &TestApp, token: &str, path: &str) -> Reply {
    for _ in 0..30 {
        let reply = app.request_as(Some(token), Method::GET, path, None).await;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            return reply;
        }
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }
    panic!("30 requests of one token at 1/s with a burst of 3 were never limited");
}

#[tokio::test]
async fn a_token_over_its_rate_gets_429_with_retry_after_and_others_are_unaffected() {
    let app = TestApp::spawn_with(with_limits(Limits { rate_per_token: 1, rate_burst: 3, ..Limits::default() })).await;
    let other = app.token_with_role("entra", Role::Maintainer).await;

    // SCIM: an RFC 7644 error body.
    let limited = until_limited(&app, &app.token, &format!("{SCIM}/Users")).await;
    limited.assert_scim_error(429, None);
    let wait = retry_after(&limited);

    // The same token on the JSON API shares its budget: the API's error body.
    let api = app.request_as(Some(&app.token), Method::GET, "/api/v1/fleet/hosts", None).await;
    assert_api_error(&api, 429);
    retry_after(&api);

    // Another token has a budget of its own.
    let reply = app.request_as(Some(&other), Method::GET, &format!("{SCIM}/Users"), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let reply = app.request_as(Some(&other), Method::GET, "/api/v1/fleet/hosts", None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    // The bucket refills: after the advertised wait, the token is served again.
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let reply = app.get("/Users").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    // The 429s are counted by route like any status.
    let metrics = app.client.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"route="/api/v1/fleet/scim/Users",status="429"} "#), "{metrics}");
    assert!(metrics.contains(r#"route="/api/v1/fleet/hosts",status="429"} "#), "{metrics}");
}

#[tokio::test]
async fn a_zero_rate_turns_the_token_limit_off() {
    let app = TestApp::spawn_with(with_limits(Limits { rate_per_token: 0, rate_burst: 1, ..Limits::default() })).await;
    for _ in 0..20 {
        let reply = app.get("/Users").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }
}

#[tokio::test]
async fn sign_in_attempts_are_limited_per_address() {
    let app = TestApp::spawn_with(with_limits(Limits { sign_in_per_minute: 2, ..Limits::default() })).await;
    let mut limited = None;
    for _ in 0..10 {
        let response = app
            .client
            .post(format!("{}/login", app.base))
            .form(&[("email", "someone@example.com"), ("password", "wrong password")])
            .send()
            .await
            .unwrap();
        let reply = TestApp::read(response).await;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(reply);
            break;
        }
        assert_ne!(reply.status, StatusCode::OK, "{}", reply.text);
    }
    let limited = limited.expect("sign-in attempts were never limited");
    assert!(limited.header("content-type").is_some_and(|c| c.starts_with("text/html")), "{:?}", limited.headers);
    assert!(limited.text.contains("Too many sign-in attempts"), "{}", limited.text);
    retry_after(&limited);
    // Pages and the API are not affected.
    assert_eq!(app.client.get(format!("{}/login", app.base)).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(app.get("/Users").await.status, StatusCode::OK);
}

/// Opens a connection and sends the head of a request announcing a body of `length`
/// bytes, and `sent` of them.
async fn stalled_request(app: &TestApp, method: &str, path: &str, length: usize, sent: &str) -> TcpStream {
    let mut stream = TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n{sent}",
        app.token
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.flush().await.unwrap();
    stream
}

/// Reads what the server sends until it closes the connection or a full response has come.
async fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut raw = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
            let text = String::from_utf8_lossy(&raw);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                    .and_then(|v| v.parse::<usize>().ok());
                if length.is_some_and(|n| body.len() >= n) {
                    break;
                }
            }
        }
    };
    tokio::time::timeout(HANG, read).await.expect("the server neither answered nor closed");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn a_stalled_body_gets_408_of_the_route_kind_while_others_are_served() {
    let app =
        TestApp::spawn_with(with_limits(Limits { body_timeout: Duration::from_millis(300), ..Limits::default() }))
            .await;
    let mut scim = stalled_request(&app, "POST", &format!("{SCIM}/Users"), 200, r#"{"schemas": ["#).await;
    let mut api = stalled_request(&app, "POST", "/api/v1/fleet/hosts", 200, r#"{"uuid": "#).await;

    // Meanwhile, the server serves others.
    let id = app.create_user("jane@example.com").await;

    let (status, body) = read_response(&mut scim).await;
    assert_eq!(status, 408, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error");
    assert_eq!(body["status"], "408");

    let (status, body) = read_response(&mut api).await;
    assert_eq!(status, 408, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert!(body["message"].as_str().is_some_and(|m| m.contains("not received in time")), "{body}");

    // Nothing was written by the stalled requests.
    let list = app.get("/Users").await;
    assert_eq!(list.body["totalResults"], 1, "{}", list.text);
    assert_eq!(list.body["Resources"][0]["id"], id.as_str());
    let hosts = app.request(Method::GET, "/api/v1/fleet/hosts/count", None).await;
    assert_eq!(hosts.body["count"], 0, "{}", hosts.text);
}

#[tokio::test]
async fn an_oversized_header_block_gets_431_of_the_route_kind() {
    let app = TestApp::spawn().await;
    let big = "a".repeat(9 * 1024);
    let send = |path: String, headers: Vec<(&'static str, String)>| {
        let mut request = app.client.get(format!("{}{path}", app.base)).bearer_auth(&app.token);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        async move { TestApp::read(request.send().await.unwrap()).await }
    };

    // One value over 8 KiB, on a SCIM route.
    let reply = send(format!("{SCIM}/Users"), vec![("x-big", big.clone())]).await;
    reply.assert_scim_error(431, None);

    // Several values under 8 KiB each, over 16 KiB in all, on the JSON API.
    let medium = "b".repeat(6 * 1024);
    let three = vec![("x-one", medium.clone()), ("x-two", medium.clone()), ("x-three", medium.clone())];
    let reply = send("/api/v1/fleet/hosts".into(), three).await;
    assert_api_error(&reply, 431);

    // A page: HTML.
    let reply = send("/login".into(), vec![("x-big", big)]).await;
    assert_eq!(reply.status.as_u16(), 431, "{}", reply.text);
    assert!(reply.header("content-type").is_some_and(|c| c.starts_with("text/html")), "{:?}", reply.headers);
    assert!(reply.text.contains("too large"), "{}", reply.text);

    // Headers within the limits are served.
    let reply = send(format!("{SCIM}/Users"), vec![("x-fine", medium)]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

#[tokio::test]
async fn a_slowloris_connection_is_closed_after_the_header_timeout() {
    let app = TestApp::spawn_with(with_limits(Limits {
        header_read_timeout: Duration::from_millis(500),
        ..Limits::default()
    }))
    .await;
    let stream = TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // Headers one byte every 50 ms, never finished: 4,000 bytes would take 200 s.
    let header = format!("GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: {}", "s".repeat(4000));
    let writer = tokio::spawn(async move {
        let mut sent = 0usize;
        for byte in header.as_bytes() {
            if writer.write_all(&[*byte]).await.is_err() {
                break;
            }
            sent += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        sent
    });
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(HANG, reader.read_to_end(&mut answer)).await;
    assert!(closed.is_ok(), "the server kept a connection whose headers never ended");
    writer.abort();
    // No response was given to headers that never ended (at most hyper's 408).
    let text = String::from_utf8_lossy(&answer);
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");

    // The server still serves.
    let reply = app.client.get(format!("{}/healthz", app.base)).send().await.unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
}

#[tokio::test]
async fn requests_beyond_the_cap_in_flight_are_shed_with_503() {
    let app = TestApp::spawn_with(with_limits(Limits { max_concurrent_requests: 1, ..Limits::default() })).await;
    // One request in flight: its body never comes (the body timeout is 30 s).
    let stalled = stalled_request(&app, "POST", &format!("{SCIM}/Users"), 200, "{").await;

    // Wait until the server has taken it (the next request is shed), then check.
    let mut shed = None;
    let deadline = tokio::time::Instant::now() + HANG;
    while tokio::time::Instant::now() < deadline {
        let reply = app.get("/Users").await;
        if reply.status == StatusCode::SERVICE_UNAVAILABLE {
            shed = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let shed = shed.expect("a second request was never shed while one was in flight");
    shed.assert_scim_error(503, None);
    assert_eq!(shed.header("retry-after"), Some("1"));
    let api = app.request(Method::GET, "/api/v1/fleet/hosts", None).await;
    assert_api_error(&api, 503);
    assert_eq!(api.header("retry-after"), Some("1"));

    // Probes are never shed.
    let health = app.client.get(format!("{}/healthz", app.base)).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);

    // Once the stalled client goes, its place is free again.
    drop(stalled);
    let mut served = false;
    let deadline = tokio::time::Instant::now() + HANG;
    while tokio::time::Instant::now() < deadline {
        if app.get("/Users").await.status == StatusCode::OK {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "the place of a request that ended was never freed");
}

/// The rate limit runs before the cap on requests in flight: a request over its token's
/// rate is answered 429 even when every place in flight is taken, and never takes one, so
/// an excess refused with 429 cannot push the requests served into 503s.
#[tokio::test]
async fn a_token_over_its_rate_gets_429_not_503_while_the_cap_is_full() {
    let limits = Limits { max_concurrent_requests: 1, rate_per_token: 1, rate_burst: 1, ..Limits::default() };
    let app = TestApp::spawn_with(with_limits(limits)).await;
    let users = format!("{SCIM}/Users");
    // The one place in flight: a body that never comes (the body timeout is 30 s).
    let stalled = stalled_request(&app, "POST", &users, 200, "{").await;

    // A fresh token (a full budget) each time, until one is shed: the place is taken.
    let mut full = false;
    for i in 0..200 {
        let probe = app.token_with_role(&format!("probe-{i}"), Role::Maintainer).await;
        if app.request_as(Some(&probe), Method::GET, &users, None).await.status == StatusCode::SERVICE_UNAVAILABLE {
            full = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(full, "the stalled request never took the place in flight");

    // One token: its budget of 1 passes the limiter and is shed; beyond it, 429.
    let token = app.token_with_role("over-its-rate", Role::Maintainer).await;
    let mut limited = None;
    for _ in 0..30 {
        let reply = app.request_as(Some(&token), Method::GET, &users, None).await;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(reply);
            break;
        }
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{}", reply.text);
    }
    let limited = limited.expect("a token over its rate was shed rather than refused");
    limited.assert_scim_error(429, None);
    retry_after(&limited);

    // The place was still taken when the 429 came: a fresh token is still shed.
    let fresh = app.token_with_role("fresh", Role::Maintainer).await;
    let reply = app.request_as(Some(&fresh), Method::GET, &users, None).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{}", reply.text);
    drop(stalled);
}
