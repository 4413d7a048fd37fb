//! End-to-end tests of the web interface in a real headless Chromium, driven through
//! chromedriver (WebDriver) with fantoccini, against a real server on 127.0.0.1 with its
//! own fresh database. Each page visited is saved as a PNG in
//! `target/browser-screenshots/`. Needs Debian's `chromium` and `chromium-driver`: the
//! tests fail (never skip) when chromedriver is missing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use custodian::{App, AppConfig};
use custodian_domain::web::NewPasswordUser;
use custodian_domain::{NewApiUser, Role, Store};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tokio::sync::oneshot;

mod overview;
mod sso;

const PASSWORD: &str = "correct horse battery";
const SCIM: &str = "/api/v1/fleet/scim";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// A Custodian server on a free port with a fresh database and a maintainer API token.
struct Server {
    base: String,
    store: Arc<dyn Store>,
    token: String,
    http: reqwest::Client,
    _stop: oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Server::start_with(listener, AppConfig::default()).await
    }

    /// A server on this listener (its address known beforehand, as an OpenID provider's
    /// redirect URI needs) with this configuration.
    async fn start_with(listener: tokio::net::TcpListener, config: AppConfig) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let store =
            custodian_store::open(&format!("sqlite://{}/custodian.db", dir.path().display()), Default::default())
                .await
                .unwrap();
        let (token, digest) = custodian::auth::generate_token();
        store
            .create_api_user(NewApiUser {
                name: "okta".into(),
                email: None,
                role: Role::Maintainer,
                api_only: true,
                token: Some(digest),
            })
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = App::new(store.clone(), config);
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = app
                .serve(listener, async {
                    let _ = rx.await;
                })
                .await;
        });
        Server { base: format!("http://{addr}"), store, token, http: reqwest::Client::new(), _stop: tx, _dir: dir }
    }

    async fn person(&self, email: &str, name: &str, role: Role) {
        let password_hash = custodian::passwords::hash(PASSWORD.into()).await.unwrap();
        self.store
            .create_password_user(NewPasswordUser { name: name.into(), email: email.into(), role, password_hash })
            .await
            .unwrap();
    }

    /// Sends a JSON request with the maintainer token; returns the status and body.
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(&self.token, method, path, body).await
    }

    /// Sends a JSON request with this bearer token.
    async fn call_as(&self, token: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(token);
        if let Some(b) = body {
            // Each surface's own media type: the JSON API takes application/json only.
            let content_type = match custodian::errors::route_kind(path) {
                custodian::errors::RouteKind::Scim => "application/scim+json",
                _ => "application/json",
            };
            req = req.header("content-type", content_type).body(b.to_string());
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Creates a SCIM user as Okta does (with a department) and returns its id.
    async fn scim_user(&self, user_name: &str, given: &str, family: &str, department: &str) -> String {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                &format!("{SCIM}/Users"),
                Some(json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
                    "userName": user_name,
                    "name": {"givenName": given, "familyName": family},
                    "emails": [{"primary": true, "value": user_name, "type": "work"}],
                    "active": true,
                    ENTERPRISE: {"department": department}
                })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_string()
    }

    async fn scim_group(&self, name: &str, members: &[&str]) -> String {
        let members: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                &format!("{SCIM}/Groups"),
                Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name, "members": members})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_string()
    }

    /// Pushes a host enrolled with this IdP account; returns its id.
    async fn host(&self, uuid: &str, enrolled_as: &str) -> i64 {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/fleet/hosts",
                Some(json!({
                    "uuid": uuid,
                    "hardware_serial": format!("C02{}", uuid.to_uppercase()),
                    "hostname": format!("{uuid}.corp.example.com"),
                    "computer_name": format!("{uuid} MacBook"),
                    "platform": "darwin",
                    "os_version": "macOS 15.4",
                    "hardware_model": "MacBookPro18,3",
                    "device_mapping": [
                        {"email": enrolled_as, "source": "mdm_idp_accounts"},
                        {"email": "personal@example.net", "source": "custom"}
                    ]
                })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["host"]["id"].as_i64().unwrap()
    }
}

/// chromedriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromedriver_path() -> PathBuf {
    if let Some(p) = std::env::var_os("CHROMEDRIVER") {
        return PathBuf::from(p);
    }
    for p in ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!(
        "chromedriver was not found (looked at $CHROMEDRIVER, /usr/bin/chromedriver): the browser tests need a real \
         headless Chromium. Install it with `apt-get install -y chromium chromium-driver` (scripts/test does)."
    );
}

async fn start_driver() -> Driver {
    let path = chromedriver_path();
    let port = StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(&path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = reqwest::get(format!("{url}/status")).await
            && r.status().is_success()
        {
            break;
        }
        assert!(Instant::now() < deadline, "chromedriver did not answer on {url} within 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Driver { child, url }
}

/// A headless Chromium session.
async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"]}),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .unwrap_or_else(|e| panic!("cannot open a Chromium session through chromedriver: {e}"))
}

/// Where the screenshots go: `target/browser-screenshots/` of the workspace.
fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir.canonicalize().unwrap()
}

/// axe-core's script, from npm (`tests/js`, installed by scripts/test with `npm ci`).
fn axe_source() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/js/node_modules/axe-core/axe.min.js");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("cannot read {}: {e}. Install it with `npm ci --prefix tests/js` (scripts/test does).", path.display())
    })
}

/// Runs axe-core on the page shown and fails on any violation of impact serious or
/// critical, naming each rule and the elements that break it.
async fn assert_accessible(c: &Client, page: &str) {
    c.execute(&axe_source(), vec![]).await.unwrap();
    let violations = c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, {resultTypes: ['violations']})
               .then(r => done(r.violations.map(v => ({rule: v.id, impact: v.impact, help: v.help,
                                                      nodes: v.nodes.map(n => n.target.join(' '))}))))
               .catch(e => done([{rule: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));",
            vec![],
        )
        .await
        .unwrap();
    let serious: Vec<&Value> = violations
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
        .collect();
    assert!(serious.is_empty(), "{page}: axe-core finds serious or critical violations: {serious:#?}");
}

/// Saves a screenshot of the page shown, and checks it with axe-core.
async fn shot(c: &Client, name: &str) {
    assert_accessible(c, name).await;
    let png = c.screenshot().await.unwrap();
    let path = screenshot_dir().join(format!("{name}.png"));
    std::fs::write(&path, png).unwrap();
    println!("screenshot: {}", path.display());
}

/// The text of `css`, found afresh when a navigation or a re-render replaces the element between finding and
/// reading it (a form submit leaves the old page's element in hand for a moment: a stale element reference).
async fn text_of(c: &Client, css: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let element = c.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css(css)).await.unwrap();
        match element.text().await {
            Ok(text) => return text,
            Err(e) if is_stale(&e) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("cannot read the text of {css}: {e}"),
        }
    }
}

/// A reference to an element of a page that a navigation has replaced. ChromeDriver reports it as a stale
/// element, or, when the new document arrives between its lookup and its read, as an "unknown error" from
/// the inspector saying the node does not belong to the document.
fn is_stale(e: &fantoccini::error::CmdError) -> bool {
    use fantoccini::error::{CmdError, ErrorStatus};
    match e {
        CmdError::Standard(w) => {
            w.error == ErrorStatus::StaleElementReference
                || (w.error == ErrorStatus::UnknownError
                    && (w.message.contains("does not belong to the document")
                        || w.message.contains("No node with given id")))
        }
        _ => false,
    }
}

async fn fill(c: &Client, css: &str, value: &str) {
    let field = c.find(Locator::Css(css)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(value).await.unwrap();
}

/// Signs in through the form and lands on the hosts page.
async fn sign_in(c: &Client, base: &str, email: &str) {
    c.goto(&format!("{base}/login")).await.unwrap();
    fill(c, "#email", email).await;
    fill(c, "#password", PASSWORD).await;
    c.find(Locator::Css("#sign-in")).await.unwrap().click().await.unwrap();
    c.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css("#host-filters")).await.unwrap();
}

/// Waits until the text of `css` contains `expected` (after reloads by the caller).
async fn wait_text(c: &Client, css: &str, expected: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let t = text_of(c, css).await;
        if t.contains(expected) {
            return t;
        }
        assert!(Instant::now() < deadline, "{css} never showed '{expected}'; it shows '{t}'");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_signs_in_and_sees_the_idp_connection_succeed_then_fail() {
    let driver = start_driver().await;
    let server = Server::start().await;
    server.person("admin@example.com", "Ada Admin", Role::Admin).await;
    let c = browser(&driver).await;
    let idp = format!("{}/settings/integrations/identity-provider", server.base);

    c.goto(&format!("{}/login", server.base)).await.unwrap();
    shot(&c, "01-sign-in").await;
    fill(&c, "#email", "admin@example.com").await;
    fill(&c, "#password", "not the password").await;
    c.find(Locator::Css("#sign-in")).await.unwrap().click().await.unwrap();
    assert_eq!(text_of(&c, "#login-error").await, "Incorrect email or password");
    shot(&c, "02-sign-in-wrong-password").await;

    sign_in(&c, &server.base, "admin@example.com").await;
    c.goto(&idp).await.unwrap();
    wait_text(&c, "#idp-status", "No IdP connected").await;
    let base_url = c.find(Locator::Css("#scim-base-url")).await.unwrap().prop("value").await.unwrap().unwrap();
    assert_eq!(base_url, format!("{}/api/v1/fleet/scim", server.base));
    shot(&c, "03-idp-no-connection").await;

    // The IdP's first request arrives.
    server.scim_user("jane@example.com", "Jane", "Doe", "Engineering").await;
    c.goto(&idp).await.unwrap();
    wait_text(&c, "#idp-status", "Received information from your IdP").await;
    assert_eq!(text_of(&c, "#user-count").await, "1");
    shot(&c, "04-idp-received").await;

    // Then one that fails: the same userName again.
    let (status, body) = server
        .call(
            reqwest::Method::POST,
            &format!("{SCIM}/Users"),
            Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "jane@example.com"})),
        )
        .await;
    assert_eq!(status, 409);
    c.goto(&idp).await.unwrap();
    wait_text(&c, "#idp-status", "Failed to receive information from your IdP").await;
    let detail = text_of(&c, "#idp-error-detail").await;
    assert_eq!(detail, body["detail"].as_str().unwrap());
    let history = text_of(&c, "#scim-history").await;
    assert!(history.contains("POST /api/v1/fleet/scim/Users") && history.contains("409"), "{history}");
    shot(&c, "05-idp-failed").await;

    // A token for the IdP, shown once with a copy button.
    fill(&c, "#create-token input[name=name]", "entra").await;
    c.find(Locator::Css("#create-token button")).await.unwrap().click().await.unwrap();
    let token = shown_token(&c).await;
    assert_eq!(token.len(), 43);
    assert!(c.find(Locator::Css("button[data-copy=new-token-value]")).await.is_ok());
    shot(&c, "06-idp-token-created").await;

    c.find(Locator::Css("#sign-out")).await.unwrap().click().await.unwrap();
    c.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css("#sign-in")).await.unwrap();
    c.goto(&idp).await.unwrap();
    c.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css("#sign-in")).await.unwrap();
    c.close().await.unwrap();
    println!("screenshots are in {}", screenshot_dir().display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_details_show_the_idp_user_and_editing_the_idp_username_relinks() {
    let driver = start_driver().await;
    let server = Server::start().await;
    let jane = server.scim_user("jane@example.com", "Jane", "Doe", "Engineering").await;
    let bob = server.scim_user("bob@example.com", "Bob", "Smith", "Sales").await;
    let designers = server.scim_group("Designers", &[&jane]).await;
    server.scim_group("Sales team", &[&bob]).await;
    let host = server.host("jdoe-mbp", "jane@example.com").await;
    server.host("bsmith-mbp", "bob@example.com").await;
    server.person("max@example.com", "Max Maintainer", Role::Maintainer).await;
    let c = browser(&driver).await;
    sign_in(&c, &server.base, "max@example.com").await;

    let hosts = text_of(&c, "#hosts").await;
    assert!(hosts.contains("jdoe-mbp.corp.example.com") && hosts.contains("Jane Doe") && hosts.contains("Designers"));
    assert!(hosts.contains("Bob Smith") && hosts.contains("Sales"), "{hosts}");
    shot(&c, "10-hosts").await;
    fill(&c, "#host-filters input[name=idp_group]", "Designers").await;
    c.find(Locator::Css("#host-filters button[type=submit]")).await.unwrap().click().await.unwrap();
    wait_text(&c, "#host-count", "of 1").await;
    let filtered = text_of(&c, "#hosts").await;
    assert!(filtered.contains("Jane Doe") && !filtered.contains("Bob Smith"), "{filtered}");
    shot(&c, "11-hosts-filtered-by-group").await;

    c.goto(&format!("{}/hosts/{host}", server.base)).await.unwrap();
    assert_eq!(text_of(&c, "#idp-full-name").await, "Jane Doe");
    assert_eq!(text_of(&c, "#idp-groups").await, "Designers");
    assert_eq!(text_of(&c, "#idp-department").await, "Engineering");
    assert_eq!(text_of(&c, "#idp-username").await, "jane@example.com");
    let other = text_of(&c, "#other-emails").await;
    assert!(other.contains("personal@example.net") && other.contains("custom"), "{other}");
    shot(&c, "12-host-details").await;

    // The maintainer sets the IdP username: the host now belongs to Bob.
    fill(&c, "#idp-username-input", "bob@example.com").await;
    c.find(Locator::Css("#save-idp-username")).await.unwrap().click().await.unwrap();
    wait_text(&c, "#idp-full-name", "Bob Smith").await;
    assert_eq!(text_of(&c, "#idp-department").await, "Sales");
    assert_eq!(text_of(&c, "#idp-groups").await, "Sales team");
    let history = text_of(&c, "#ownership-history").await;
    assert!(history.contains("jane@example.com") && history.contains("bob@example.com"), "{history}");
    shot(&c, "13-host-details-after-edit").await;
    let (_, api) = server.call(reqwest::Method::GET, &format!("/api/v1/fleet/hosts/{host}"), None).await;
    assert_eq!(api["host"]["end_users"][0]["idp_username"], "bob@example.com");

    // The other pages.
    c.goto(&format!("{}/end-users", server.base)).await.unwrap();
    assert!(text_of(&c, "#end-users").await.contains("Jane Doe"));
    shot(&c, "14-end-users").await;
    c.goto(&format!("{}/end-users/{bob}", server.base)).await.unwrap();
    assert!(text_of(&c, "#user-groups").await.contains("Sales team"));
    assert!(text_of(&c, "#user-hosts").await.contains("jdoe-mbp MacBook"));
    shot(&c, "15-end-user").await;
    c.goto(&format!("{}/groups", server.base)).await.unwrap();
    assert!(text_of(&c, "#groups").await.contains("Designers"));
    shot(&c, "16-groups").await;
    c.goto(&format!("{}/groups/{designers}", server.base)).await.unwrap();
    assert!(text_of(&c, "#group-members").await.contains("jane@example.com"));
    shot(&c, "17-group").await;
    c.goto(&format!("{}/activity", server.base)).await.unwrap();
    assert!(text_of(&c, "#activities").await.contains("edited host idp username"));
    shot(&c, "18-activity").await;
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idp_filter_box_lists_matching_hosts_and_shows_a_bad_filters_error_in_place() {
    let driver = start_driver().await;
    let server = Server::start().await;
    server.scim_user("jane@example.com", "Jane", "Doe", "Engineering").await;
    server.scim_user("bob@example.com", "Bob", "Smith", "Sales").await;
    server.host("jdoe-mbp", "jane@example.com").await;
    server.host("bsmith-mbp", "bob@example.com").await;
    server.person("olga@example.com", "Olga Observer", Role::Observer).await;
    let c = browser(&driver).await;
    sign_in(&c, &server.base, "olga@example.com").await;

    fill(&c, "#idp-filter", r#"name.givenName eq "jane" and urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department sw "Eng""#).await;
    c.find(Locator::Css("#host-filters button[type=submit]")).await.unwrap().click().await.unwrap();
    wait_text(&c, "#host-count", "of 1").await;
    let listed = text_of(&c, "#hosts").await;
    assert!(listed.contains("Jane Doe") && !listed.contains("Bob Smith"), "{listed}");

    // A filter that does not parse: the parser's words beside the box, the box keeps
    // what was typed, and no host is listed.
    let bad = r#"name.givenName eq "jane" and"#;
    fill(&c, "#idp-filter", bad).await;
    c.find(Locator::Css("#host-filters button[type=submit]")).await.unwrap().click().await.unwrap();
    let error = wait_text(&c, "#idp-filter-error", "Invalid filter").await;
    assert!(error.contains("at character offset 28"), "{error}");
    let input = c.find(Locator::Css("#idp-filter")).await.unwrap();
    assert_eq!(input.prop("value").await.unwrap().as_deref(), Some(bad));
    assert_eq!(input.attr("aria-invalid").await.unwrap().as_deref(), Some("true"));
    assert_eq!(input.attr("aria-describedby").await.unwrap().as_deref(), Some("idp-filter-error"));
    assert!(text_of(&c, "#host-count").await.contains("Correct the IdP filter"), "no summary of the refusal");
    assert!(c.find_all(Locator::Css("#hosts tbody tr td a")).await.unwrap().is_empty(), "hosts listed anyway");
    assert!(c.find_all(Locator::Css("#export-csv")).await.unwrap().is_empty(), "an export of a refused filter offered");
    assert_accessible(&c, "hosts with an invalid IdP filter").await;
    shot(&c, "19-hosts-invalid-idp-filter").await;
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chosen_idp_column_shows_in_the_table_and_the_csv_and_is_remembered_per_operator() {
    let driver = start_driver().await;
    let server = Server::start().await;
    let acme = "urn:ietf:params:scim:schemas:extension:acme:2.0:User";
    let (status, body) = server
        .call(
            reqwest::Method::POST,
            &format!("{SCIM}/Users"),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE, acme],
                "userName": "jane@example.com",
                "name": {"givenName": "Jane", "familyName": "Doe"},
                "title": "Staff Engineer",
                "active": true,
                ENTERPRISE: {"department": "Engineering", "costCenter": "CC-42"},
                acme: {"badge": "B-7"}
            })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    server.host("jdoe-mbp", "jane@example.com").await;
    server.person("olga@example.com", "Olga Observer", Role::Observer).await;
    server.person("max@example.com", "Max Maintainer", Role::Maintainer).await;
    let c = browser(&driver).await;
    sign_in(&c, &server.base, "olga@example.com").await;

    // An observer picks Title and a custom attribute, with a filter in place.
    c.goto(&format!("{}/hosts?query=jdoe", server.base)).await.unwrap();
    c.find(Locator::Css("#column-picker summary")).await.unwrap().click().await.unwrap();
    let title_box = c.find(Locator::Css("#columns-form input[value=title]")).await.unwrap();
    title_box.click().await.unwrap();
    fill(&c, "#custom-column-0", &format!("{acme}:badge")).await;
    c.find(Locator::Css("#save-columns")).await.unwrap().click().await.unwrap();
    wait_text(&c, "#hosts thead", "Title").await;
    assert!(c.current_url().await.unwrap().as_str().ends_with("/hosts?query=jdoe"), "the filters are kept");
    let head = text_of(&c, "#hosts thead").await;
    assert!(head.contains("badge"), "{head}");
    let badge_heading = c.find(Locator::Css("#hosts thead th:last-child")).await.unwrap();
    assert_eq!(badge_heading.attr("title").await.unwrap(), Some(format!("{acme}:badge")));
    let cells: Vec<String> = {
        let mut out = Vec::new();
        for td in c.find_all(Locator::Css("#hosts tbody td.idp-column")).await.unwrap() {
            out.push(td.text().await.unwrap());
        }
        out
    };
    assert_eq!(cells, ["Staff Engineer", "B-7"]);
    shot(&c, "19b-hosts-with-idp-columns").await;

    // The CSV export carries the same columns, headed by their paths.
    let csv = c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch('/hosts.csv').then(r => r.text()).then(done).catch(e => done('error: ' + e));",
            vec![],
        )
        .await
        .unwrap();
    let csv = csv.as_str().unwrap().to_string();
    let mut lines = csv.lines();
    let header = lines.next().unwrap();
    assert!(header.ends_with(&format!(",idp_connection,title,{acme}:badge")), "{header}");
    let row = lines.next().unwrap();
    assert!(row.ends_with(",Staff Engineer,B-7"), "{row}");

    // Remembered for this operator on the next visit, and not shown to another one.
    c.goto(&format!("{}/hosts", server.base)).await.unwrap();
    assert!(text_of(&c, "#hosts thead").await.contains("Title"));
    let c2 = browser(&driver).await;
    sign_in(&c2, &server.base, "max@example.com").await;
    assert!(!text_of(&c2, "#hosts thead").await.contains("Title"), "another operator sees Olga's columns");
    c2.close().await.unwrap();

    // A path that is not an attribute is refused, and the saved columns stay.
    c.find(Locator::Css("#column-picker summary")).await.unwrap().click().await.unwrap();
    fill(&c, "#custom-column-1", "addresses[type eq").await;
    c.find(Locator::Css("#save-columns")).await.unwrap().click().await.unwrap();
    let refused = text_of(&c, "main").await;
    assert!(refused.contains("is not a SCIM attribute path"), "{refused}");
    c.goto(&format!("{}/hosts", server.base)).await.unwrap();
    assert_eq!(c.find_all(Locator::Css("#hosts tbody td.idp-column")).await.unwrap().len(), 2);
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_sees_the_user_card_but_cannot_edit() {
    let driver = start_driver().await;
    let server = Server::start().await;
    server.scim_user("jane@example.com", "Jane", "Doe", "Engineering").await;
    let host = server.host("jdoe-mbp", "jane@example.com").await;
    server.person("olga@example.com", "Olga Observer", Role::Observer).await;
    let c = browser(&driver).await;
    sign_in(&c, &server.base, "olga@example.com").await;
    c.goto(&format!("{}/hosts/{host}", server.base)).await.unwrap();
    assert_eq!(text_of(&c, "#idp-full-name").await, "Jane Doe");
    assert!(c.find_all(Locator::Css("#edit-idp-username")).await.unwrap().is_empty(), "observer sees the edit form");
    shot(&c, "20-observer-host-details").await;
    c.goto(&format!("{}/settings/integrations/identity-provider", server.base)).await.unwrap();
    assert!(c.find_all(Locator::Css("#create-token")).await.unwrap().is_empty());
    shot(&c, "21-observer-idp").await;

    // A hand-made form with a valid CSRF token is still refused by the server.
    c.goto(&format!("{}/hosts/{host}", server.base)).await.unwrap();
    c.execute(
        "const f = document.createElement('form'); f.method = 'post'; f.action = arguments[0];
         for (const [k, v] of [['csrf_token', document.querySelector('input[name=csrf_token]').value], ['idp_username', 'bob@example.com']]) {
           const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i);
         }
         document.body.appendChild(f); f.submit();",
        vec![json!(format!("/hosts/{host}/idp-username"))],
    )
    .await
    .unwrap();
    wait_text(&c, "h1", "Not allowed").await;
    shot(&c, "22-observer-refused").await;
    let (_, api) = server.call(reqwest::Method::GET, &format!("/api/v1/fleet/hosts/{host}"), None).await;
    assert_eq!(api["host"]["end_users"][0]["idp_username"], "jane@example.com");
    c.close().await.unwrap();
}

/// The rows of a table body, as text.
async fn rows(c: &Client, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for row in c.find_all(Locator::Css(&format!("{css} tbody tr"))).await.unwrap() {
        out.push(row.text().await.unwrap());
    }
    out
}

/// Waits until the table shows `n` rows (after the page a form answered has loaded).
async fn wait_rows(c: &Client, css: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // A row read while the next page replaces this one is stale: read again.
        let mut texts = Vec::new();
        let mut stale = false;
        for row in c.find_all(Locator::Css(&format!("{css} tbody tr"))).await.unwrap() {
            match row.text().await {
                Ok(t) => texts.push(t),
                Err(e) if is_stale(&e) => stale = true,
                Err(e) => panic!("{css}: {e}"),
            }
        }
        if !stale && texts.len() == n {
            return;
        }
        assert!(Instant::now() < deadline, "{css} never showed {n} rows: {texts:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Clicks a submit button whose form asks for confirmation, and accepts it.
async fn click_confirmed(c: &Client, css: &str) {
    c.find(Locator::Css(css)).await.unwrap().click().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.accept_alert().await.is_err() {
        assert!(Instant::now() < deadline, "{css} asked for no confirmation");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The new token shown once on the page this answered.
async fn shown_token(c: &Client) -> String {
    c.wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("#new-token-value"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_adds_an_idp_connection_rotates_its_token_and_sees_its_hosts() {
    let driver = start_driver().await;
    let server = Server::start().await;
    server.person("admin@example.com", "Ada Admin", Role::Admin).await;
    server.person("olga@example.com", "Olga Observer", Role::Observer).await;
    // Headquarters' Okta wrote to `default` with the maintainer token of the Okta guide.
    server.scim_user("bob@example.com", "Bob", "Smith", "Sales").await;
    let c = browser(&driver).await;
    sign_in(&c, &server.base, "admin@example.com").await;
    let idp = format!("{}/settings/integrations/identity-provider", server.base);
    c.goto(&idp).await.unwrap();
    let listed = rows(&c, "#connections").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].contains("default") && listed[0].contains("receiving"), "{listed:?}");
    shot(&c, "30-idp-connections").await;

    // The subsidiary's Entra gets a connection of its own, first in priority.
    fill(&c, "#add-connection input[name=name]", "Entra subsidiary").await;
    fill(&c, "#add-connection input[name=priority]", "50").await;
    c.find(Locator::Css("#add-connection button")).await.unwrap().click().await.unwrap();
    let first = shown_token(&c).await;
    assert_eq!(first.len(), 43);
    assert_eq!(text_of(&c, "#connection-priority").await, "50");
    wait_text(&c, "#idp-status", "No IdP connected").await;
    assert_eq!(rows(&c, "#connection-tokens").await.len(), 1);
    shot(&c, "31-idp-connection-created").await;
    let id: i64 = text_of(&c, "#connection-id").await.parse().unwrap();

    // Entra provisions Jane with the new token: her laptop belongs to this connection.
    let (status, body) = server
        .call_as(
            &first,
            reqwest::Method::POST,
            &format!("{SCIM}/Users"),
            Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "jane@example.com",
                        "name": {"givenName": "Jane", "familyName": "Doe"}, "active": true})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let host = server.host("jdoe-mbp", "jane@example.com").await;
    server.host("bsmith-mbp", "bob@example.com").await;
    let page = format!("{idp}/{id}");
    c.goto(&page).await.unwrap();
    wait_text(&c, "#idp-status", "Received information from your IdP").await;
    assert_eq!(text_of(&c, "#user-count").await, "1");
    let history = text_of(&c, "#scim-history").await;
    assert!(history.contains("POST /api/v1/fleet/scim/Users") && history.contains("201"), "{history}");
    assert!(!history.contains("bob@example.com"));
    let used = rows(&c, "#connection-tokens").await;
    assert_eq!(used[0].matches("never").count(), 1, "it never expires, and its use is recorded: {used:?}");

    // Rotation: a second token that expires in 30 days, then the first one revoked.
    fill(&c, "#create-connection-token input[name=expires_in_days]", "30").await;
    c.find(Locator::Css("#create-connection-token button")).await.unwrap().click().await.unwrap();
    let second = shown_token(&c).await;
    assert_ne!(second, first);
    let tokens = rows(&c, "#connection-tokens").await;
    assert_eq!(tokens.len(), 2, "{tokens:?}");
    shot(&c, "32-idp-connection-second-token").await;
    c.goto(&page).await.unwrap();
    assert!(c.find_all(Locator::Css("#new-token-value")).await.unwrap().is_empty(), "a token is shown only once");
    let first_row = c.find(Locator::Css("#connection-tokens tbody tr:first-child")).await.unwrap();
    let first_id = first_row.attr("data-token").await.unwrap().unwrap();
    click_confirmed(&c, &format!("#connection-tokens tr[data-token=\"{first_id}\"] button")).await;
    wait_rows(&c, "#connection-tokens", 1).await;
    let (status, body) = server.call_as(&first, reqwest::Method::GET, &format!("{SCIM}/Users"), None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("revoked"), "{body}");
    let (status, body) = server.call_as(&second, reqwest::Method::GET, &format!("{SCIM}/Users"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["totalResults"], 1, "the connection sees its own users only: {body}");

    // The host list names each host's connection and filters on it.
    c.goto(&format!("{}/hosts", server.base)).await.unwrap();
    let hosts = text_of(&c, "#hosts").await;
    assert!(hosts.contains("Entra subsidiary") && hosts.contains("default"), "{hosts}");
    c.find(Locator::Css("#host-filters select[name=idp_connection]"))
        .await
        .unwrap()
        .select_by_value("Entra subsidiary")
        .await
        .unwrap();
    c.find(Locator::Css("#host-filters button[type=submit]")).await.unwrap().click().await.unwrap();
    wait_text(&c, "#host-count", "of 1").await;
    let filtered = text_of(&c, "#hosts").await;
    assert!(filtered.contains("jdoe-mbp") && !filtered.contains("bsmith-mbp"), "{filtered}");
    shot(&c, "33-hosts-by-connection").await;
    c.goto(&format!("{}/hosts/{host}", server.base)).await.unwrap();
    assert_eq!(text_of(&c, "#idp-connection").await, "Entra subsidiary");

    // A new priority, then the connection removed: its host is unlinked.
    c.goto(&page).await.unwrap();
    fill(&c, "#edit-connection input[name=priority]", "150").await;
    c.find(Locator::Css("#save-connection")).await.unwrap().click().await.unwrap();
    wait_text(&c, "#connection-priority", "150").await;
    click_confirmed(&c, "#remove-connection button").await;
    c.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css("#add-connection")).await.unwrap();
    let listed = rows(&c, "#connections").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].contains("default"), "{listed:?}");
    let (_, api) = server.call(reqwest::Method::GET, &format!("/api/v1/fleet/hosts/{host}"), None).await;
    assert_eq!(api["host"]["end_users"][0]["idp_username"], "", "unlinked: {api}");
    assert_eq!(api["host"]["end_users"][0]["idp_connection"], Value::Null, "{api}");
    let (status, _) = server.call_as(&second, reqwest::Method::GET, &format!("{SCIM}/Users"), None).await;
    assert_eq!(status, 401);
    c.close().await.unwrap();

    // An observer reads the pages but has no form to change them.
    let o = browser(&driver).await;
    sign_in(&o, &server.base, "olga@example.com").await;
    o.goto(&format!("{idp}/1")).await.unwrap();
    wait_text(&o, "#connection-kind", "scim").await;
    for form in ["#add-connection", "#create-connection-token", "#edit-connection", "#remove-connection"] {
        assert!(o.find_all(Locator::Css(form)).await.unwrap().is_empty(), "an observer sees {form}");
    }
    assert!(o.find_all(Locator::Css("#connection-tokens button")).await.unwrap().is_empty());
    shot(&o, "34-observer-idp-connection").await;
    o.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_adds_a_google_workspace_connection_with_its_key_file_and_follows_its_runs() {
    use custodian_google::fake::{FakeGoogle, group, member, user};
    let driver = start_driver().await;
    let server = Server::start().await;
    server.person("admin@example.com", "Ada Admin", Role::Admin).await;
    server.person("maria@example.com", "Maria Maintainer", Role::Maintainer).await;
    let fake = FakeGoogle::start().await;
    fake.with(|st| {
        for i in 0..20 {
            st.users.push(user(&format!("2{i:04}"), &format!("g{i}@example.com"), "Gina", &format!("G{i}"), "/"));
        }
        st.groups.push(group("g1", "all@example.com", "All of us"));
        st.members.insert("g1".into(), vec![member("C0", "", "CUSTOMER")]);
    });
    let key_dir = tempfile::tempdir().unwrap();
    let key_path = key_dir.path().join("service-account.json");
    std::fs::write(&key_path, fake.key_json().to_string()).unwrap();

    let c = browser(&driver).await;
    sign_in(&c, &server.base, "admin@example.com").await;
    let idp = format!("{}/settings/integrations/identity-provider", server.base);
    c.goto(&idp).await.unwrap();
    c.find(Locator::Css("#google-workspace-guide summary")).await.unwrap().click().await.unwrap();
    fill(&c, "#add-google-connection input[name=name]", "Google").await;
    c.find(Locator::Css("#add-google-connection input[name=key_file]"))
        .await
        .unwrap()
        .send_keys(key_path.to_str().unwrap())
        .await
        .unwrap();
    fill(&c, "#add-google-connection input[name=admin_email]", "admin@example.com").await;
    c.find(Locator::Css("#add-google-connection details summary")).await.unwrap().click().await.unwrap();
    fill(&c, "#add-google-connection input[name=api_base_url]", &fake.base_url).await;
    shot(&c, "36-google-workspace-add").await;
    c.find(Locator::Css("#add-google-connection button[type=submit]")).await.unwrap().click().await.unwrap();
    wait_text(&c, "#connection-kind", "google_workspace").await;
    assert_eq!(text_of(&c, "#google-client-email").await, custodian_google::fake::CLIENT_EMAIL);
    assert_eq!(text_of(&c, "#google-key-id").await, fake.key_json()["private_key_id"].as_str().unwrap());
    let source = c.source().await.unwrap();
    let pem = fake.key_json()["private_key"].as_str().unwrap().to_string();
    assert!(!source.contains(pem.lines().nth(2).unwrap()), "the page shows no part of the key");
    assert!(c.find_all(Locator::Css("#connection-tokens, #create-connection-token")).await.unwrap().is_empty());
    let page = c.current_url().await.unwrap().to_string();
    let page = if page.ends_with("/google-workspace") {
        // The answer to the form is the connection's page; its own address is linked from the list.
        let id = text_of(&c, "#connection-id").await;
        format!("{idp}/{id}")
    } else {
        page
    };
    // The first run starts at once; the page shows it once reloaded.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        c.goto(&page).await.unwrap();
        if !c.find_all(Locator::Css("#sync-runs tr[data-status=success]")).await.unwrap().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the first run never showed as a success");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(text_of(&c, "#user-count").await, "20");
    let runs = rows(&c, "#sync-runs").await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert!(runs[0].contains("20") && runs[0].contains("success"), "{runs:?}");
    wait_text(&c, "#idp-status", "Received information").await;
    shot(&c, "37-google-workspace-connection").await;

    // Half the directory is gone: the guard stops the run, the page offers to confirm.
    fake.with(|st| st.users.truncate(10));
    c.find(Locator::Css("#sync-now button")).await.unwrap().click().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        c.goto(&page).await.unwrap();
        if !c.find_all(Locator::Css("#confirm-deletions")).await.unwrap().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the guard's confirmation never showed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let error = text_of(&c, "#sync-runs tr[data-status=error] td.error-detail").await;
    assert!(error.contains("would delete 10 of the connection's 20 users"), "{error}");
    assert_eq!(text_of(&c, "#user-count").await, "20", "nothing deleted");
    shot(&c, "38-google-workspace-guard").await;
    click_confirmed(&c, "#confirm-deletions button").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        c.goto(&page).await.unwrap();
        if text_of(&c, "#user-count").await == "10" {
            break;
        }
        assert!(Instant::now() < deadline, "the confirmed run never deleted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(c.find_all(Locator::Css("#confirm-deletions")).await.unwrap().is_empty());

    // The settings change on the page: the key stays unless a new file is chosen.
    fill(&c, "#edit-google-connection input[name=sync_interval_seconds]", "900").await;
    c.find(Locator::Css("#edit-google-connection button[type=submit]")).await.unwrap().click().await.unwrap();
    wait_text(&c, "#google-interval", "900 seconds").await;
    assert_eq!(text_of(&c, "#google-key-id").await, fake.key_json()["private_key_id"].as_str().unwrap());
    shot(&c, "38b-google-workspace-settings").await;
    c.close().await.unwrap();

    // A maintainer starts runs but sees neither the key's summary nor the settings form.
    let m = browser(&driver).await;
    sign_in(&m, &server.base, "maria@example.com").await;
    m.goto(&page).await.unwrap();
    wait_text(&m, "#connection-kind", "google_workspace").await;
    assert!(
        m.find_all(Locator::Css("#google-client-email, #google-key-id, #edit-connection")).await.unwrap().is_empty()
    );
    assert_eq!(m.find_all(Locator::Css("#sync-now")).await.unwrap().len(), 1);
    shot(&m, "39-maintainer-google-workspace").await;
    m.close().await.unwrap();
}
