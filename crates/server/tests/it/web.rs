//! The web interface's server-side rules over plain HTTP: sign-in, sessions in the
//! database, CSRF and origin checks, roles, the first-run set-up.

use std::time::{Duration, Instant};

use custodian::{App, AppConfig};
use custodian_domain::Role;
use custodian_domain::web::NewPasswordUser;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, SET_COOKIE};
use serde_json::json;
use tokio::sync::oneshot;

use crate::support::{TestApp, host_body};

pub const PASSWORD: &str = "correct horse battery";

/// Creates a password operator directly in the store.
pub async fn create_person(app: &TestApp, email: &str, role: Role) {
    let password_hash = custodian::passwords::hash(PASSWORD.into()).await.unwrap();
    app.store
        .create_password_user(NewPasswordUser { name: email.into(), email: email.into(), role, password_hash })
        .await
        .unwrap();
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// The value a response sets for a cookie.
pub fn set_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The value of the hidden `csrf_token` field of a page.
fn csrf_field(html: &str) -> String {
    let at = html.find("name=\"csrf_token\" value=\"").expect("no csrf_token field") + 25;
    html[at..].split('"').next().unwrap().to_string()
}

/// A browser-like client of one server: its base URL and the cookies it holds.
pub struct Browser {
    pub base: String,
    client: reqwest::Client,
    pub session: Option<String>,
    presession: Option<String>,
}

pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Browser {
    pub fn new(base: &str) -> Self {
        Browser { base: base.to_string(), client: no_redirects(), session: None, presession: None }
    }

    fn cookies(&self) -> String {
        let mut c = Vec::new();
        if let Some(s) = &self.session {
            c.push(format!("custodian_session={s}"));
        }
        if let Some(s) = &self.presession {
            c.push(format!("custodian_presession={s}"));
        }
        c.join("; ")
    }

    pub async fn get(&self, path: &str) -> Page {
        let r = self.client.get(format!("{}{path}", self.base)).header("cookie", self.cookies()).send().await.unwrap();
        Page { status: r.status(), headers: r.headers().clone(), text: r.text().await.unwrap() }
    }

    /// Posts a form with these fields (the caller adds `csrf_token` when it wants one)
    /// and extra headers.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)], headers: &[(&str, &str)]) -> Page {
        let body: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookies())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.unwrap();
        Page { status: r.status(), headers: r.headers().clone(), text: r.text().await.unwrap() }
    }

    /// Fills in and submits the sign-in form; returns the answer to the POST.
    pub async fn sign_in(&mut self, email: &str, password: &str) -> Page {
        self.sign_in_at("/login", email, password).await
    }

    /// Signs in with the password form of this sign-in page (`/login?password=1` when
    /// password sign-in is limited to admins).
    pub async fn sign_in_at(&mut self, login_path: &str, email: &str, password: &str) -> Page {
        let login = self.get(login_path).await;
        assert_eq!(login.status, StatusCode::OK);
        if let Some(p) = set_cookie(&login.headers, "custodian_presession") {
            self.presession = Some(p);
        }
        let csrf = csrf_field(&login.text);
        let page = self.post("/login", &[("csrf_token", &csrf), ("email", email), ("password", password)], &[]).await;
        if let Some(s) = set_cookie(&page.headers, "custodian_session") {
            self.session = Some(s);
        }
        page
    }

    /// The session's CSRF token, read from a signed-in page.
    pub async fn csrf(&self) -> String {
        let page = self.get("/hosts").await;
        assert_eq!(page.status, StatusCode::OK, "not signed in: {}", page.text);
        csrf_field(&page.text)
    }
}

pub async fn signed_in(app: &TestApp, email: &str, role: Role) -> Browser {
    create_person(app, email, role).await;
    let mut b = Browser::new(&app.base);
    let r = b.sign_in(email, PASSWORD).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert!(b.session.is_some());
    b
}

#[tokio::test]
async fn pages_need_a_session_and_send_strict_security_headers() {
    let app = TestApp::spawn().await;
    let anonymous = Browser::new(&app.base);
    let r = anonymous.get("/hosts?query=x").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers["location"], "/login?next=%2Fhosts%3Fquery%3Dx");
    let b = signed_in(&app, "admin@example.com", Role::Admin).await;
    for path in ["/hosts", "/end-users", "/groups", "/activity", "/settings/integrations/identity-provider"] {
        let r = b.get(path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
        let csp = r.headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(r.headers["x-frame-options"], "DENY");
        assert_eq!(r.headers["x-content-type-options"], "nosniff");
        assert!(!r.text.contains("<script>") && !r.text.contains("style="), "{path} has inline script or style");
        for other in ["/hosts", "/end-users", "/groups", "/activity", "/settings/integrations/identity-provider"] {
            assert!(r.text.contains(&format!("href=\"{other}\"")), "{path} does not link to {other}");
        }
    }
    let css = b.get("/assets/app.css").await;
    assert!(css.headers["cache-control"].to_str().unwrap().contains("immutable"));
}

#[tokio::test]
async fn wrong_password_and_unknown_email_get_the_same_answer_after_the_same_delay() {
    let app = TestApp::spawn().await;
    create_person(&app, "jane@example.com", Role::Admin).await;
    let mut answers = Vec::new();
    for (email, password) in [("jane@example.com", "not the password"), ("nobody@example.com", "not the password")] {
        let mut b = Browser::new(&app.base);
        let started = Instant::now();
        let r = b.sign_in(email, password).await;
        let took = started.elapsed();
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(took >= Duration::from_millis(950), "a failed sign-in must take about a second: {took:?}");
        assert!(r.text.contains("Incorrect email or password"), "{}", r.text);
        assert!(b.session.is_none());
        // The pages differ only by the email typed back into the form.
        answers.push(r.text.replace(email, "EMAIL").replace(&csrf_field(&r.text), "CSRF"));
    }
    assert_eq!(answers[0], answers[1]);
}

#[tokio::test]
async fn observer_gets_403_on_every_post_route() {
    let app = TestApp::spawn().await;
    let host = app.enroll_host("h1", Some("jane@example.com")).await;
    let api_user = app.store.list_api_users().await.unwrap()[0].id;
    let b = signed_in(&app, "olga@example.com", Role::Observer).await;
    let csrf = b.csrf().await;
    let routes = [
        format!("/hosts/{host}/idp-username"),
        format!("/hosts/{host}/idp-username/delete"),
        "/settings/integrations/identity-provider/tokens".to_string(),
        format!("/settings/integrations/identity-provider/tokens/{api_user}/revoke"),
        "/settings/integrations/identity-provider/connections".to_string(),
        "/settings/integrations/identity-provider/1/edit".to_string(),
        "/settings/integrations/identity-provider/1/delete".to_string(),
        "/settings/integrations/identity-provider/1/tokens".to_string(),
        "/settings/integrations/identity-provider/1/tokens/1/revoke".to_string(),
    ];
    for route in &routes {
        let fields =
            [("csrf_token", csrf.as_str()), ("idp_username", "x@example.com"), ("name", "t"), ("priority", "5")];
        let r = b.post(route, &fields, &[]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{route}: {}", r.text);
    }
    // Nothing changed: the host has no idp mapping and the API user still exists.
    assert_eq!(app.host(host).await["idp_link"]["identity"], "jane@example.com");
    assert_eq!(app.store.list_api_users().await.unwrap().iter().filter(|u| u.api_only).count(), 1);
    let connections = app.store.list_connections().await.unwrap();
    assert_eq!(connections.len(), 1);
    assert_eq!((connections[0].name.as_str(), connections[0].priority), ("default", 100));
    // The page does not offer what the role cannot do.
    let page = b.get(&format!("/hosts/{host}")).await;
    assert!(!page.text.contains("edit-idp-username"), "observer sees the edit form");
    let page = b.get("/settings/integrations/identity-provider").await;
    assert!(!page.text.contains("create-token") && !page.text.contains("Revoke"));
}

#[tokio::test]
async fn posts_without_the_csrf_token_or_from_another_origin_are_refused() {
    let app = TestApp::spawn().await;
    let host = app.enroll_host("h1", None).await;
    let b = signed_in(&app, "admin@example.com", Role::Admin).await;
    let path = format!("/hosts/{host}/idp-username");
    let r = b.post(&path, &[("idp_username", "x@example.com")], &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = b.post(&path, &[("csrf_token", "forged"), ("idp_username", "x@example.com")], &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let csrf = b.csrf().await;
    let r = b
        .post(&path, &[("csrf_token", &csrf), ("idp_username", "x@example.com")], &[("origin", "https://evil.example")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(app.host(host).await["idp_link"]["identity"].is_null(), "a refused form changed the host");
    // With the token (field or header) and our own origin, it works.
    let origin = app.base.clone();
    let r = b.post(&path, &[("idp_username", "x@example.com")], &[("x-csrf-token", &csrf), ("origin", &origin)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(app.host(host).await["idp_link"]["identity"], "x@example.com");
    // The sign-in form has its own (pre-session) token.
    let anonymous = Browser::new(&app.base);
    let r = anonymous.post("/login", &[("email", "admin@example.com"), ("password", super::web::PASSWORD)], &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

/// Starts a second server on the database of `app` (another instance).
async fn second_instance(db_url: &str) -> (String, oneshot::Sender<()>) {
    let store = crate::support::open_store(db_url).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = App::new(store, AppConfig::default());
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = app
            .serve(listener, async {
                let _ = rx.await;
            })
            .await;
    });
    (format!("http://{addr}"), tx)
}

#[tokio::test]
async fn a_session_works_on_another_instance_and_after_a_restart_and_sign_out_ends_it() {
    let app = TestApp::spawn().await;
    let b = signed_in(&app, "admin@example.com", Role::Admin).await;
    let cookie = b.session.clone().unwrap();
    let db_kept = app.stop().await;
    let db = db_kept.url.clone();
    let (base, stop) = second_instance(&db).await;
    let mut other = Browser::new(&base);
    other.session = Some(cookie.clone());
    let r = other.get("/hosts").await;
    assert_eq!(r.status, StatusCode::OK, "the restarted server must accept the session");
    let csrf = csrf_field(&r.text);
    let r = other.post("/logout", &[("csrf_token", &csrf)], &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers["location"], "/login");
    let r = other.get("/hosts").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "a signed-out session must not work");
    let _ = stop.send(());
    // Nor on a third instance of the same database.
    let (base, stop) = second_instance(&db).await;
    let mut third = Browser::new(&base);
    third.session = Some(cookie);
    assert_eq!(third.get("/hosts").await.status, StatusCode::SEE_OTHER);
    let _ = stop.send(());
}

#[tokio::test]
async fn setup_page_exists_only_until_the_first_admin_and_only_one_is_created() {
    let app = TestApp::spawn().await;
    let mut b = Browser::new(&app.base);
    let r = b.get("/setup").await;
    assert_eq!(r.status, StatusCode::OK);
    b.presession = set_cookie(&r.headers, "custodian_presession");
    let csrf = csrf_field(&r.text);
    let fields = |pw: &'static str| {
        vec![
            ("csrf_token", csrf.clone()),
            ("name", "First Admin".to_string()),
            ("email", "first@example.com".to_string()),
            ("password", pw.to_string()),
            ("password_again", pw.to_string()),
        ]
    };
    let short: Vec<(&str, String)> = fields("short");
    let short: Vec<(&str, &str)> = short.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = b.post("/setup", &short, &[]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text.contains("at least 12 characters"));
    let good = fields(PASSWORD);
    let good: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = b.post("/setup", &good, &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert!(set_cookie(&r.headers, "custodian_session").is_some(), "the new admin is signed in");
    assert_eq!(b.get("/setup").await.status, StatusCode::NOT_FOUND);
    let r = b.post("/setup", &good, &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // In the store, concurrent first admins: exactly one wins.
    let other = TestApp::spawn().await;
    let hash = custodian::passwords::hash(PASSWORD.into()).await.unwrap();
    let attempts = (0..4).map(|i| {
        let store = other.store.clone();
        let hash = hash.clone();
        tokio::spawn(async move {
            store
                .create_first_admin(NewPasswordUser {
                    name: format!("a{i}"),
                    email: format!("a{i}@example.com"),
                    role: Role::Admin,
                    password_hash: hash,
                })
                .await
        })
    });
    let mut created = 0;
    for a in attempts {
        if a.await.unwrap().is_ok() {
            created += 1;
        }
    }
    assert_eq!(created, 1);
}

#[tokio::test]
async fn an_admin_creates_and_revokes_an_idp_token_from_the_page() {
    let app = TestApp::spawn().await;
    let b = signed_in(&app, "admin@example.com", Role::Admin).await;
    let csrf = b.csrf().await;
    let r = b
        .post("/settings/integrations/identity-provider/tokens", &[("csrf_token", &csrf), ("name", "entra")], &[])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let at = r.text.find("id=\"new-token-value\"").unwrap();
    let input_start = r.text[..at].rfind("<input").unwrap();
    let token = r.text[input_start..].split("value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    assert_eq!(token.len(), 43);
    let scim = app.request_as(Some(&token), reqwest::Method::GET, "/api/v1/fleet/scim/Users", None).await;
    assert_eq!(scim.status, StatusCode::OK);
    let page = b.get("/settings/integrations/identity-provider").await;
    assert!(!page.text.contains(&token), "a token is shown only once");
    let user = app.store.list_api_users().await.unwrap().into_iter().find(|u| u.name == "entra").unwrap();
    let r = b
        .post(
            &format!("/settings/integrations/identity-provider/tokens/{}/revoke", user.id),
            &[("csrf_token", &csrf)],
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    // Revoked at once on this instance, although the token cache had it.
    let scim = app.request_as(Some(&token), reqwest::Method::GET, "/api/v1/fleet/scim/Users", None).await;
    assert_eq!(scim.status, StatusCode::UNAUTHORIZED);
}

/// The token a page shows once (`#new-token-value`).
fn shown_token(html: &str) -> String {
    let at = html.find("id=\"new-token-value\"").unwrap();
    let input_start = html[..at].rfind("<input").unwrap();
    html[input_start..].split("value=\"").nth(1).unwrap().split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn an_admin_manages_idp_connections_from_the_pages_and_bad_forms_change_nothing() {
    let app = TestApp::spawn().await;
    let b = signed_in(&app, "admin@example.com", Role::Admin).await;
    let csrf = b.csrf().await;
    let add = "/settings/integrations/identity-provider/connections";
    let r = b.post(add, &[("csrf_token", &csrf), ("name", " Entra "), ("priority", "")], &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let token = shown_token(&r.text);
    assert_eq!(token.len(), 43);
    let entra = app.store.connection_named("entra").await.unwrap();
    assert_eq!((entra.name.as_str(), entra.priority, entra.tokens.len()), ("Entra", 110, 1), "next free priority");
    assert!(r.text.contains("SCIM token for &quot;Entra&quot;"), "{}", r.text);
    let scim = app.request_as(Some(&token), reqwest::Method::GET, "/api/v1/fleet/scim/Users", None).await;
    assert_eq!(scim.status, StatusCode::OK, "{}", scim.text);
    let page_path = format!("/settings/integrations/identity-provider/{}", entra.id.0);
    let page = b.get(&page_path).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.text.contains(&token), "a token is shown only once");
    assert!(page.text.contains("Received information from your IdP"), "{}", page.text);

    // Refused forms name what is wrong and change nothing.
    for (fields, expected) in [
        (vec![("name", "DEFAULT"), ("priority", "")], "a connection named 'DEFAULT' already exists"),
        (vec![("name", "Other"), ("priority", "100")], "another connection already has priority 100"),
        (vec![("name", "Other"), ("priority", "-1")], "Priority must be a whole number from 0"),
        (vec![("name", "Other"), ("priority", "ten")], "Priority must be a whole number."),
        (vec![("name", "   "), ("priority", "")], "Name must not be empty"),
    ] {
        let mut all = vec![("csrf_token", csrf.as_str())];
        all.extend(fields.iter().copied());
        let r = b.post(add, &all, &[]).await;
        assert!(r.status.is_client_error(), "{fields:?}: {}", r.status);
        assert!(r.text.contains(expected), "{fields:?}: {}", r.text);
    }
    let tokens_path = format!("{page_path}/tokens");
    let r = b.post(&tokens_path, &[("csrf_token", &csrf), ("expires_in_days", "0")], &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.text.contains("Expires in must be from 1 to 3650 days"), "{}", r.text);
    assert_eq!(app.store.list_connections().await.unwrap().len(), 2);
    assert_eq!(app.store.connection_named("entra").await.unwrap().tokens.len(), 1);

    // Rotation: a token that expires in 7 days, then the first revoked.
    let r = b.post(&tokens_path, &[("csrf_token", &csrf), ("expires_in_days", "7")], &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let second = shown_token(&r.text);
    let entra = app.store.connection_named("entra").await.unwrap();
    assert_eq!(entra.tokens.len(), 2);
    let new = entra.tokens.iter().find(|t| t.expires_at.is_some()).unwrap();
    let days = (new.expires_at.unwrap() - chrono::Utc::now()).num_hours();
    assert!((7 * 24 - 1..=7 * 24).contains(&days), "expires in {days} hours");
    let old = entra.tokens.iter().find(|t| t.expires_at.is_none()).unwrap().id;
    let r = b.post(&format!("{page_path}/tokens/{old}/revoke"), &[("csrf_token", &csrf)], &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let scim = app.request_as(Some(&token), reqwest::Method::GET, "/api/v1/fleet/scim/Users", None).await;
    assert_eq!(scim.status, StatusCode::UNAUTHORIZED, "revoked at once: {}", scim.text);
    let scim = app.request_as(Some(&second), reqwest::Method::GET, "/api/v1/fleet/scim/Users", None).await;
    assert_eq!(scim.status, StatusCode::OK);
    let r = b.post(&format!("{page_path}/tokens/{old}/revoke"), &[("csrf_token", &csrf)], &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "a revoked token is not revoked twice");
    assert!(r.text.contains("There is nothing at this address"), "{}", r.text);
    assert_eq!(app.store.connection_named("entra").await.unwrap().tokens.len(), 1, "the other token stays");

    // Rename and reprioritise, then remove.
    let r = b
        .post(&format!("{page_path}/edit"), &[("csrf_token", &csrf), ("name", "Entra EU"), ("priority", "5")], &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let entra = app.store.get_connection(entra.id).await.unwrap();
    assert_eq!((entra.name.as_str(), entra.priority), ("Entra EU", 5));
    let r = b
        .post(&format!("{page_path}/edit"), &[("csrf_token", &csrf), ("name", "Entra EU"), ("priority", "")], &[])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text.contains("Priority is required"), "{}", r.text);
    let list = b.get("/settings/integrations/identity-provider").await;
    assert!(list.text.contains("Entra EU") && list.text.contains(&page_path), "{}", list.text);
    let r = b.post(&format!("{page_path}/delete"), &[("csrf_token", &csrf)], &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert!(matches!(app.store.get_connection(entra.id).await, Err(custodian_domain::StoreError::NotFound)));
    let scim = app.request_as(Some(&second), reqwest::Method::GET, "/api/v1/fleet/scim/Users", None).await;
    assert_eq!(scim.status, StatusCode::UNAUTHORIZED);
    assert_eq!(b.get(&page_path).await.status, StatusCode::NOT_FOUND);
    assert_eq!(b.get("/settings/integrations/identity-provider/0").await.status, StatusCode::NOT_FOUND);
    assert_eq!(b.get("/settings/integrations/identity-provider/abc").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn hosts_csv_exports_the_filtered_view_with_formulas_neutralised() {
    let app = TestApp::spawn().await;
    app.create_user("jane@example.com").await;
    app.enroll_host("h1", Some("jane@example.com")).await;
    let mut evil = host_body("h2", None);
    evil["hostname"] = json!("=HYPERLINK(\"x\")");
    app.create_host(evil).await;
    let b = signed_in(&app, "admin@example.com", Role::Admin).await;
    let all = b.get("/hosts.csv").await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(all.headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(all.text.lines().count(), 3, "{}", all.text);
    assert!(all.text.contains("'=HYPERLINK"), "{}", all.text);
    let filtered = b.get("/hosts.csv?idp_username=jane%40example.com").await;
    assert_eq!(filtered.text.lines().count(), 2, "{}", filtered.text);
    assert!(filtered.text.contains("jane@example.com") && filtered.text.contains("Test User"));
}

#[tokio::test]
async fn the_user_card_warns_of_a_deactivated_user_and_of_an_ambiguous_match() {
    let app = TestApp::spawn().await;
    let mut gone = crate::support::okta_user("gone@example.com", "Gone", "Away");
    gone["active"] = json!(false);
    app.create_user_with(gone).await;
    let deactivated = app.enroll_host("h-gone", Some("gone@example.com")).await;
    for name in ["a@example.com", "b@example.com"] {
        let mut u = crate::support::okta_user(name, "Twin", "Shared");
        u["emails"] = json!([{"value": name, "primary": true}, {"value": "shared@example.com"}]);
        app.create_user_with(u).await;
    }
    let ambiguous = app.enroll_host("h-shared", Some("shared@example.com")).await;
    let b = signed_in(&app, "olga@example.com", Role::Observer).await;

    let page = b.get(&format!("/hosts/{deactivated}")).await;
    assert!(page.text.contains("id=\"deactivated-warning\""), "{}", page.text);
    assert!(page.text.contains("Gone Away"));
    let page = b.get(&format!("/hosts/{ambiguous}")).await;
    assert!(page.text.contains("id=\"ambiguous-warning\""), "{}", page.text);
    assert!(page.text.contains("shared@example.com"));

    // The list of laptops to recover, and the user search.
    let list = b.get("/hosts?idp_active=false").await;
    assert!(list.text.contains("h-gone.local") && !list.text.contains("h-shared.local"), "{}", list.text);
    let users = b.get("/end-users?q=twin").await;
    assert!(users.text.contains("a@example.com") && users.text.contains("b@example.com"));
    assert!(!users.text.contains("gone@example.com"));
}
