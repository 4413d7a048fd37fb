//! The test harness: `TestApp::spawn()` starts Custodian on a free port with a fresh
//! database and a maintainer token; helpers send SCIM requests.
//!
//! The database is SQLite, or PostgreSQL when `CUSTODIAN_TEST_BACKEND=postgres` (then
//! `CUSTODIAN_TEST_POSTGRES_URL` names the server, and each test gets a database of its
//! own, dropped at the end). `scripts/test` runs this binary once per backend.

use std::sync::Arc;

use custodian::{App, AppConfig};
use custodian_domain::{NewApiUser, Role, Store};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::oneshot;

pub const SCIM: &str = "/api/v1/fleet/scim";

pub struct TestApp {
    pub base: String,
    pub store: Arc<dyn Store>,
    /// A maintainer's token.
    pub token: String,
    pub client: reqwest::Client,
    /// The path templates of every route of the server (from its router).
    pub routes: Vec<String>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    pub db: TestDb,
}

/// The backend this run of the tests uses.
pub fn postgres_url() -> Option<String> {
    match std::env::var("CUSTODIAN_TEST_BACKEND").as_deref() {
        Ok("postgres") => Some(std::env::var("CUSTODIAN_TEST_POSTGRES_URL").expect(
            "CUSTODIAN_TEST_BACKEND=postgres needs CUSTODIAN_TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/postgres)",
        )),
        Ok("sqlite") | Err(_) => None,
        Ok(other) => panic!("CUSTODIAN_TEST_BACKEND must be sqlite or postgres, not {other}"),
    }
}

/// A fresh, empty database for one test: a SQLite file in a temporary folder, or a
/// PostgreSQL database of its own. Dropped (files removed, database dropped) with it.
pub struct TestDb {
    pub url: String,
    _dir: tempfile::TempDir,
    /// The PostgreSQL server's URL and this test's database name.
    postgres: Option<(String, String)>,
}

impl TestDb {
    pub async fn fresh() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        match postgres_url() {
            None => {
                TestDb { url: format!("sqlite://{}/custodian.db", dir.path().display()), _dir: dir, postgres: None }
            }
            Some(server) => {
                let name = format!("custodian_it_{}", uuid::Uuid::new_v4().simple());
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&server).await.unwrap();
                sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.unwrap();
                let url = with_database(&server, &name);
                TestDb { url, _dir: dir, postgres: Some((server, name)) }
            }
        }
    }
}

/// The server URL with its database replaced.
fn with_database(server: &str, name: &str) -> String {
    let (base, query) = server.split_once('?').map_or((server, None), |(b, q)| (b, Some(q)));
    let after_host = base.find("://").map_or(0, |i| i + 3);
    let base = match base[after_host..].find('/') {
        Some(slash) => &base[..after_host + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((server, name)) = self.postgres.take() {
            // Drop runs outside any runtime's async context: a thread of its own.
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
                rt.block_on(async {
                    if let Ok(mut conn) = <sqlx::PgConnection as sqlx::Connection>::connect(&server).await {
                        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .execute(&mut conn)
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

/// Waits until a server process at `base` answers `/healthz` with 200 (30 s at most).
pub async fn wait_healthy(client: &reqwest::Client, base: &str) {
    let started = std::time::Instant::now();
    while !client.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status() == 200) {
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "{base} did not become healthy");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Opens a test database the way `custodian serve` does.
pub async fn open_store(url: &str) -> Arc<dyn Store> {
    custodian_store::open(url, custodian_store::OpenOptions::default()).await.unwrap()
}

/// A response read whole: status, headers and the body parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a SCIM error body (RFC 7644 §3.12) with this status and scimType.
    pub fn assert_scim_error(&self, status: u16, scim_type: Option<&str>) {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.text);
        assert_eq!(self.header("content-type"), Some("application/scim+json"), "body: {}", self.text);
        assert_eq!(self.body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error", "body: {}", self.text);
        assert_eq!(self.body["status"], Value::String(status.to_string()), "body: {}", self.text);
        match scim_type {
            Some(t) => assert_eq!(self.body["scimType"], t, "body: {}", self.text),
            None => assert!(self.body.get("scimType").is_none(), "unexpected scimType: {}", self.text),
        }
        assert!(self.body["detail"].as_str().is_some_and(|d| !d.is_empty()), "no detail: {}", self.text);
    }
}

impl TestApp {
    /// Without the per-token rate limit: tests send faster than any IdP (the limits are
    /// tested in `overload.rs`, each with its own).
    pub async fn spawn() -> TestApp {
        let limits = custodian::limits::Limits { rate_per_token: 0, ..custodian::limits::Limits::default() };
        Self::spawn_with(AppConfig { limits, ..AppConfig::default() }).await
    }

    /// Like `spawn`, with this configuration (limits, timeouts).
    pub async fn spawn_with(config: AppConfig) -> TestApp {
        if std::env::var_os("CUSTODIAN_TEST_LOG").is_some() {
            // Server logs in the test's output, for diagnosing a failure.
            let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("info").try_init();
        }
        let db = TestDb::fresh().await;
        let store = open_store(&db.url).await;
        let token = Self::create_token_in(&store, "okta", Role::Maintainer).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = App::new(store.clone(), config);
        let routes = app.route_templates.clone();
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            app.serve(listener, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        TestApp {
            base: format!("http://{addr}"),
            store,
            token,
            client: reqwest::Client::new(),
            routes,
            shutdown: Some(tx),
            server: Some(server),
            db,
        }
    }

    pub async fn create_token_in(store: &Arc<dyn Store>, name: &str, role: Role) -> String {
        let (token, digest) = custodian::auth::generate_token();
        store
            .create_api_user(NewApiUser { name: name.into(), email: None, role, api_only: true, token: Some(digest) })
            .await
            .unwrap();
        token
    }

    /// A new API-only user with this role; returns its token.
    pub async fn token_with_role(&self, name: &str, role: Role) -> String {
        Self::create_token_in(&self.store, name, role).await
    }

    /// Sends a request with the maintainer token; `path` is relative to the server root.
    pub async fn request(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.request_as(Some(&self.token), method, path, body).await
    }

    pub async fn request_as(&self, token: Option<&str>, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut req = self.client.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/scim+json; charset=utf-8").body(b.to_string());
        }
        Self::read(req.send().await.unwrap()).await
    }

    pub async fn read(resp: reqwest::Response) -> Reply {
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, headers, body, text }
    }

    pub async fn get(&self, scim_path: &str) -> Reply {
        self.request(Method::GET, &format!("{SCIM}{scim_path}"), None).await
    }
    pub async fn post(&self, scim_path: &str, body: Value) -> Reply {
        self.request(Method::POST, &format!("{SCIM}{scim_path}"), Some(body)).await
    }
    pub async fn put(&self, scim_path: &str, body: Value) -> Reply {
        self.request(Method::PUT, &format!("{SCIM}{scim_path}"), Some(body)).await
    }
    pub async fn patch(&self, scim_path: &str, body: Value) -> Reply {
        self.request(Method::PATCH, &format!("{SCIM}{scim_path}"), Some(body)).await
    }
    pub async fn delete(&self, scim_path: &str) -> Reply {
        self.request(Method::DELETE, &format!("{SCIM}{scim_path}"), None).await
    }

    /// Creates a user the way Okta does and returns its id.
    pub async fn create_user(&self, user_name: &str) -> String {
        let r = self.post("/Users", okta_user(user_name, "Test", "User")).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.body["id"].as_str().unwrap().to_string()
    }

    /// Creates an empty group and returns its id.
    pub async fn create_group(&self, name: &str) -> String {
        let r = self
            .post(
                "/Groups",
                serde_json::json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name, "members": []}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.body["id"].as_str().unwrap().to_string()
    }

    /// Stops the server gracefully and waits for it; returns the database, which lives
    /// as long as the caller keeps it.
    pub async fn stop(mut self) -> TestDb {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap();
        }
        let TestApp { db, .. } = self;
        db
    }
}

/// The body Okta sends to create a user.
pub fn okta_user(user_name: &str, given: &str, family: &str) -> Value {
    serde_json::json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "name": {"givenName": given, "familyName": family},
        "emails": [{"primary": true, "value": user_name, "type": "work"}],
        "displayName": format!("{given} {family}"),
        "locale": "en-US",
        "externalId": format!("00u{}", user_name.len()),
        "groups": [],
        "password": "1mz050nq",
        "active": true
    })
}

/// URL-encodes a filter for a query string.
pub fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl TestApp {
    /// Sends a request with the maintainer token, a raw body with its content type, and
    /// extra headers; `path` is relative to the server root.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, String)>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self.client.request(method, format!("{}{}", self.base, path)).bearer_auth(&self.token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some((ct, b)) = body {
            req = req.header("content-type", ct).body(b);
        }
        Self::read(req.send().await.unwrap()).await
    }

    /// Sends a SCIM JSON body with extra headers; `scim_path` is relative to the SCIM base.
    pub async fn send_json(
        &self,
        method: Method,
        scim_path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let body = body.map(|b| ("application/scim+json; charset=utf-8", b.to_string()));
        self.send(method, &format!("{SCIM}{scim_path}"), body, headers).await
    }

    /// Creates a user from a full body and returns the created resource.
    pub async fn create_user_with(&self, body: Value) -> Value {
        let r = self.post("/Users", body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.body
    }

    /// Creates a group with these members and returns its id.
    pub async fn create_group_with(&self, name: &str, members: &[&str]) -> String {
        let members: Vec<Value> = members.iter().map(|m| serde_json::json!({"value": m})).collect();
        let r = self
            .post(
                "/Groups",
                serde_json::json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name, "members": members}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.body["id"].as_str().unwrap().to_string()
    }

    /// GETs a list and asserts 200; returns the reply.
    pub async fn list(&self, scim_path: &str) -> Reply {
        let r = self.get(scim_path).await;
        assert_eq!(r.status, StatusCode::OK, "GET {scim_path}: {}", r.text);
        r
    }

    /// The sorted member ids of a group, read back with GET.
    pub async fn member_ids(&self, group_id: &str) -> Vec<String> {
        let r = self.get(&format!("/Groups/{group_id}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        member_values(&r.body)
    }
}

/// The sorted `members[].value` of a group body (an absent `members` is empty).
pub fn member_values(group: &Value) -> Vec<String> {
    let mut v: Vec<String> = group["members"]
        .as_array()
        .map(|a| a.iter().map(|m| m["value"].as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// The ids of the `Resources` of a ListResponse, in order.
pub fn resource_ids(list: &Value) -> Vec<String> {
    list["Resources"]
        .as_array()
        .map(|a| a.iter().map(|r| r["id"].as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// `?filter=<encoded>` for a query string.
pub fn filter_q(f: &str) -> String {
    format!("filter={}", enc(f))
}

/// A sorted list of owned strings.
pub fn sorted(items: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = items.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// The JSON API's base path (Fleet's).
pub const API: &str = "/api/v1/fleet";

impl TestApp {
    /// Sends a JSON API request with this token (or none); `path` is relative to the
    /// server root and the body goes as `application/json`.
    pub async fn api_as(&self, token: Option<&str>, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut req = self.client.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string());
        }
        Self::read(req.send().await.unwrap()).await
    }

    /// GET on the JSON API with the maintainer token; `path` is relative to `/api/v1/fleet`.
    pub async fn api_get(&self, path: &str) -> Reply {
        self.api_as(Some(&self.token), Method::GET, &format!("{API}{path}"), None).await
    }
    pub async fn api_post(&self, path: &str, body: Value) -> Reply {
        self.api_as(Some(&self.token), Method::POST, &format!("{API}{path}"), Some(body)).await
    }
    pub async fn api_put(&self, path: &str, body: Value) -> Reply {
        self.api_as(Some(&self.token), Method::PUT, &format!("{API}{path}"), Some(body)).await
    }
    pub async fn api_delete(&self, path: &str) -> Reply {
        self.api_as(Some(&self.token), Method::DELETE, &format!("{API}{path}"), None).await
    }

    /// Creates a host (asserting 201) and returns its `host` object.
    pub async fn create_host(&self, body: Value) -> Value {
        let r = self.api_post("/hosts", body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.body["host"].clone()
    }

    /// Creates a host enrolled with this IdP account (`mdm_idp_accounts`), or none;
    /// returns its id.
    pub async fn enroll_host(&self, uuid: &str, enrollment_email: Option<&str>) -> i64 {
        let host = self.create_host(host_body(uuid, enrollment_email)).await;
        host["id"].as_i64().unwrap()
    }

    /// The `host` object of host details, asserting 200.
    pub async fn host(&self, id: i64) -> Value {
        let r = self.api_get(&format!("/hosts/{id}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.body["host"].clone()
    }

    /// The ids of the hosts a host-list query answers, in order (`query` without `?`).
    pub async fn host_ids(&self, query: &str) -> Vec<i64> {
        let r = self.api_get(&format!("/hosts?{query}")).await;
        assert_eq!(r.status, StatusCode::OK, "GET /hosts?{query}: {}", r.text);
        r.body["hosts"].as_array().unwrap().iter().map(|h| h["id"].as_i64().unwrap()).collect()
    }
}

/// A host as the device-management side sends it, with an enrollment account
/// (`mdm_idp_accounts`) when given.
pub fn host_body(uuid: &str, enrollment_email: Option<&str>) -> Value {
    let mapping: Vec<Value> =
        enrollment_email.map(|e| serde_json::json!({"email": e, "source": "mdm_idp_accounts"})).into_iter().collect();
    serde_json::json!({
        "uuid": uuid,
        "hardware_serial": format!("SER-{uuid}"),
        "hostname": format!("{uuid}.local"),
        "computer_name": format!("Mac of {uuid}"),
        "platform": "darwin",
        "os_version": "macOS 15.4",
        "hardware_model": "MacBookPro18,3",
        "seen_time": "2026-05-01T10:00:00Z",
        "device_mapping": mapping
    })
}

/// Asserts a JSON API error (`{"message", "errors": [{"name", "reason"}]}`) with this
/// status, one of whose errors names `field`.
pub fn assert_api_error(r: &Reply, status: u16, field: &str) {
    assert_eq!(r.status.as_u16(), status, "unexpected status; body: {}", r.text);
    assert!(
        r.header("content-type").is_some_and(|c| c.starts_with("application/json")),
        "not JSON: {:?} {}",
        r.header("content-type"),
        r.text
    );
    assert!(r.body["message"].as_str().is_some_and(|m| !m.is_empty()), "no message: {}", r.text);
    let errors = r.body["errors"].as_array().unwrap_or_else(|| panic!("no errors list: {}", r.text));
    assert!(
        errors.iter().any(|e| e["name"] == field && e["reason"].as_str().is_some_and(|s| !s.is_empty())),
        "no error naming '{field}': {}",
        r.text
    );
}
