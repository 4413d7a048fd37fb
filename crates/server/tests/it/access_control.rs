//! Access control enumerated from the router itself: every route template the server
//! has (`App::route_templates`), with every method it answers, against every kind of
//! caller. A route without an expectation in `access` fails the test, so a new route
//! cannot be forgotten; and the data is the same after the whole sweep.

use chrono::Utc;
use custodian::errors::{RouteKind, route_kind};
use custodian_domain::Role;
use custodian_domain::web::NewWebSession;
use custodian_domain::web::SESSION_MAX_AGE;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{API, SCIM, TestApp};
use crate::web::create_person;

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Anonymous,
    /// A made-up bearer token and a made-up session cookie.
    BadCredentials,
    /// The token (and a session) of an operator that has been deleted.
    Revoked,
    Observer,
    Maintainer,
    Admin,
    /// An admin's session cookie alone: no CSRF token on forms, no bearer token.
    SessionWithoutCsrf,
    /// A token of the connection `default`: SCIM-only.
    ConnectionToken,
}

const CALLERS: [Caller; 8] = [
    Caller::Anonymous,
    Caller::BadCredentials,
    Caller::Revoked,
    Caller::Observer,
    Caller::Maintainer,
    Caller::Admin,
    Caller::SessionWithoutCsrf,
    Caller::ConnectionToken,
];

/// Who a route lets in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Anyone: the same answer whoever calls.
    Public,
    /// SCIM provisioning: maintainer and admin tokens.
    Scim,
    /// JSON API, any role's token.
    ApiRead,
    /// JSON API, maintainer and admin tokens.
    ApiWrite,
    /// JSON API, admin tokens only (IdP connections).
    ApiAdmin,
    /// A page: any signed-in operator.
    Page,
    /// A page for maintainers and admins (it shows personal data).
    PageWriters,
    /// A page for admins only (operators).
    PageAdminRead,
    /// Signing out: any signed-in operator's session with its CSRF token.
    SignOut,
    /// An operator's own view settings: any signed-in operator's session with its CSRF
    /// token.
    PageForm,
    /// A form: a maintainer's or admin's session with its CSRF token.
    PageWrite,
    /// A form only an admin may post (API tokens, IdP connections).
    PageAdmin,
}

/// The expectation of each route. `None` (an unknown route) fails the test.
fn access(method: &Method, template: &str) -> Option<Access> {
    use Access::*;
    let kind = route_kind(template);
    if kind == RouteKind::Scim {
        return Some(Scim);
    }
    let api = custodian::api::PREFIXES.iter().find_map(|p| template.strip_prefix(p));
    if let Some(path) = api {
        let read = *method == Method::GET;
        return match path {
            "/scim/details" | "/scim/requests" | "/activities" if read => Some(ApiRead),
            "/hosts" | "/hosts/count" | "/hosts/identifier/{identifier}" | "/hosts/{id}" if read => Some(ApiRead),
            "/hosts/{id}/device_mapping" | "/hosts/{id}/end_user_history" if read => Some(ApiRead),
            "/labels" | "/labels/{id}" | "/labels/{id}/hosts" | "/labels/automatic" if read => Some(ApiRead),
            "/labels/automatic" if *method == Method::POST => Some(ApiWrite),
            "/labels/automatic/{id}" if *method == Method::DELETE => Some(ApiWrite),
            "/idp/connections" | "/idp/connections/{id}" | "/idp/connections/{id}/requests" if read => Some(ApiRead),
            "/idp/connections/{id}/runs" if read => Some(ApiRead),
            // Starting a directory sync run changes nothing by hand: maintainers may.
            "/idp/connections/{id}/sync" if *method == Method::POST => Some(ApiWrite),
            "/idp/connections" | "/idp/connections/{id}/tokens" if *method == Method::POST => Some(ApiAdmin),
            "/idp/connections/{id}" if *method == Method::PATCH || *method == Method::DELETE => Some(ApiAdmin),
            "/idp/connections/{id}/tokens/{token_id}" if *method == Method::DELETE => Some(ApiAdmin),
            // Rendering reads: it changes nothing.
            "/hosts/{id}/render" | "/labels/{id}/render" if *method == Method::POST => Some(ApiRead),
            // Delivery payloads name the offboarded people: not for observers.
            "/webhooks/deliveries" if read => Some(ApiWrite),
            "/hosts" | "/hosts/batch" | "/labels" if *method == Method::POST => Some(ApiWrite),
            "/hosts/{id}" | "/labels/{id}" | "/hosts/{id}/device_mapping/idp" if *method == Method::DELETE => {
                Some(ApiWrite)
            }
            "/hosts/{id}/device_mapping" if *method == Method::PUT => Some(ApiWrite),
            "/labels/{id}" if *method == Method::PATCH => Some(ApiWrite),
            _ => None,
        };
    }
    match (method.as_str(), template) {
        ("GET", "/healthz" | "/readyz" | "/metrics" | "/api/openapi.json" | "/assets/{name}") => Some(Public),
        ("GET" | "POST", "/login" | "/setup") => Some(Public),
        // Single sign-on starts and returns before any session: the same for everyone
        // (a redirect to the provider; a callback without a state Custodian issued is refused).
        ("GET", "/login/oidc/start" | "/login/oidc/callback") => Some(Public),
        (
            "GET",
            "/"
            | "/hosts"
            | "/hosts.csv"
            | "/hosts/{id}"
            | "/end-users"
            | "/end-users/{id}"
            | "/groups"
            | "/groups/{id}"
            | "/activity"
            | "/settings/integrations/identity-provider"
            | "/settings/integrations/identity-provider/{id}",
        ) => Some(Page),
        ("GET", "/webhooks/deliveries" | "/labels/new") => Some(PageWriters),
        ("GET", "/labels" | "/labels/{id}") => Some(Page),
        ("POST", "/labels/new" | "/labels/{id}/edit" | "/labels/{id}/delete") => Some(PageWrite),
        ("GET", "/settings/operators" | "/settings/operators/{id}") => Some(PageAdminRead),
        (
            "POST",
            "/settings/operators"
            | "/settings/operators/{id}/role"
            | "/settings/operators/{id}/delete"
            | "/settings/operators/{id}/sessions/end",
        ) => Some(PageAdmin),
        ("POST", "/webhooks/deliveries/{id}/retry") => Some(PageWrite),
        ("POST", "/logout") => Some(SignOut),
        ("POST", "/hosts/columns") => Some(PageForm),
        ("POST", "/hosts/{id}/idp-username" | "/hosts/{id}/idp-username/delete") => Some(PageWrite),
        ("POST", "/settings/integrations/identity-provider/{id}/sync") => Some(PageWrite),
        (
            "POST",
            "/settings/integrations/identity-provider/tokens"
            | "/settings/integrations/identity-provider/tokens/{id}/revoke"
            | "/settings/integrations/identity-provider/connections"
            | "/settings/integrations/identity-provider/google-workspace"
            | "/settings/integrations/identity-provider/{id}/google-workspace"
            | "/settings/integrations/identity-provider/{id}/edit"
            | "/settings/integrations/identity-provider/{id}/delete"
            | "/settings/integrations/identity-provider/{id}/tokens"
            | "/settings/integrations/identity-provider/{id}/tokens/{token_id}/revoke",
        ) => Some(PageAdmin),
        _ => None,
    }
}

/// The data the sweep runs against: real ids for reads, and the credentials of each caller.
pub(crate) struct World {
    pub(crate) user_id: String,
    pub(crate) group_id: String,
    pub(crate) host_id: i64,
    pub(crate) host_uuid: String,
    pub(crate) label_id: i64,
    pub(crate) connection_id: i64,
    pub(crate) api_user_id: i64,
    pub(crate) tokens: Tokens,
    pub(crate) person_ids: [(Role, i64); 3],
    pub(crate) deleted_person_session: (String, String),
}

pub(crate) struct Tokens {
    pub(crate) observer: String,
    pub(crate) admin: String,
    pub(crate) revoked: String,
    pub(crate) connection: String,
}

/// Placeholder values that exist (for reads) or do not (for writes, which must then
/// fail after authorization without changing anything).
pub(crate) fn fill(template: &str, w: &World, existing: bool) -> String {
    let scim_id = if template.contains("/Groups/") { &w.group_id } else { &w.user_id };
    let schema =
        if template.contains("/ResourceTypes/") { "User" } else { "urn:ietf:params:scim:schemas:core:2.0:User" };
    let id = if route_kind(template) == RouteKind::Scim {
        if template.contains("/Schemas/") || template.contains("/ResourceTypes/") {
            schema.to_string()
        } else if existing {
            scim_id.clone()
        } else {
            "00000000-0000-4000-8000-000000000000".to_string()
        }
    } else if template.contains("/idp/connections/")
        || template.starts_with("/settings/integrations/identity-provider/{id}")
    {
        if existing { w.connection_id.to_string() } else { "987654".into() }
    } else if template.contains("/tokens/") {
        if existing { w.api_user_id.to_string() } else { "987654".into() }
    } else if template.contains("/labels/") {
        if existing { w.label_id.to_string() } else { "987654".into() }
    } else if template.starts_with("/settings/operators/") {
        if existing { w.person_ids[0].1.to_string() } else { "987654".into() }
    } else if template.starts_with("/end-users/") {
        if existing { w.user_id.clone() } else { "no-such-user".into() }
    } else if template.starts_with("/groups/") {
        if existing { w.group_id.clone() } else { "no-such-group".into() }
    } else if existing {
        w.host_id.to_string()
    } else {
        "987654".into()
    };
    template
        .replace("{id}", &id)
        .replace("{identifier}", if existing { &w.host_uuid } else { "no-such-host" })
        .replace("{name}", "app.css")
        .replace("{token_id}", "987654")
}

/// What one request carries.
#[derive(Default)]
pub(crate) struct Credentials {
    pub(crate) bearer: Option<String>,
    pub(crate) session: Option<(String, String)>,
    pub(crate) send_csrf: bool,
}

pub(crate) async fn new_session(app: &TestApp, user_id: i64) -> (String, String) {
    let (cookie, digest) = custodian::auth::generate_token();
    let (csrf, _) = custodian::auth::generate_token();
    let now = Utc::now();
    app.store
        .create_web_session(NewWebSession {
            digest,
            user_id,
            csrf_token: csrf.clone(),
            created_at: now,
            expires_at: now + SESSION_MAX_AGE,
        })
        .await
        .unwrap();
    (cookie, csrf)
}

async fn credentials(app: &TestApp, w: &World, caller: Caller) -> Credentials {
    let person = |role: Role| w.person_ids.iter().find(|(r, _)| *r == role).map(|(_, id)| *id).unwrap();
    match caller {
        Caller::Anonymous => Credentials::default(),
        Caller::BadCredentials => Credentials {
            bearer: Some("not-a-real-token-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".into()),
            session: Some(("not-a-real-session".into(), "not-a-real-csrf".into())),
            send_csrf: true,
        },
        Caller::Revoked => Credentials {
            bearer: Some(w.tokens.revoked.clone()),
            session: Some(w.deleted_person_session.clone()),
            send_csrf: true,
        },
        Caller::Observer => Credentials {
            bearer: Some(w.tokens.observer.clone()),
            session: Some(new_session(app, person(Role::Observer)).await),
            send_csrf: true,
        },
        Caller::Maintainer => Credentials {
            bearer: Some(app.token.clone()),
            session: Some(new_session(app, person(Role::Maintainer)).await),
            send_csrf: true,
        },
        Caller::Admin => Credentials {
            bearer: Some(w.tokens.admin.clone()),
            session: Some(new_session(app, person(Role::Admin)).await),
            send_csrf: true,
        },
        Caller::SessionWithoutCsrf => {
            Credentials { bearer: None, session: Some(new_session(app, person(Role::Admin)).await), send_csrf: false }
        }
        Caller::ConnectionToken => {
            Credentials { bearer: Some(w.tokens.connection.clone()), session: None, send_csrf: false }
        }
    }
}

struct Answer {
    status: StatusCode,
    location: String,
    content_type: String,
    body: Value,
    text: String,
}

async fn send(app: &TestApp, method: &Method, path: &str, creds: &Credentials) -> Answer {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut req = client.request(method.clone(), format!("{}{path}", app.base));
    if let Some(t) = &creds.bearer {
        req = req.bearer_auth(t);
    }
    if let Some((cookie, _)) = &creds.session {
        req = req.header("cookie", format!("custodian_session={cookie}"));
    }
    if route_kind(path) == RouteKind::Web && *method == Method::POST {
        // A form with no fields the routes need (nothing may change), and the CSRF token
        // when the caller sends one.
        let csrf = creds.session.as_ref().filter(|_| creds.send_csrf).map(|(_, c)| c.clone()).unwrap_or_default();
        let fields: Vec<(&str, &str)> = if csrf.is_empty() { vec![] } else { vec![("csrf_token", csrf.as_str())] };
        let body: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
        req = req.header("content-type", "application/x-www-form-urlencoded").body(body);
    } else if *method != Method::GET && *method != Method::DELETE {
        // A JSON object no write accepts: authorized callers get a validation error.
        req = req.header("content-type", "application/json").body(json!({"not": "valid"}).to_string());
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let header = |n: &str| r.headers().get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let (location, content_type) = (header("location"), header("content-type"));
    // Every answer, error or not, page or not, carries the security headers.
    let policy = header("content-security-policy");
    let what = format!("{method} {path}");
    assert!(policy.contains("frame-ancestors 'none'") && !policy.contains("unsafe"), "{what}: CSP {policy:?}");
    if content_type.starts_with("text/html") {
        assert!(policy.starts_with("default-src 'self'; script-src 'self'; style-src 'self'"), "{what}: {policy}");
    } else {
        assert!(policy.starts_with("default-src 'none'"), "{what}: CSP {policy:?}");
    }
    assert_eq!(header("x-frame-options"), "DENY", "{what}");
    assert_eq!(header("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(header("referrer-policy"), "same-origin", "{what}");
    assert!(!header("cache-control").is_empty(), "{what}: no Cache-Control");
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer { status, location, content_type, body, text }
}

/// The methods a route answers: every one not refused with 405 (probed as an admin with
/// ids that do not exist, so nothing runs).
pub(crate) async fn methods_of(app: &TestApp, w: &World, template: &str) -> Vec<Method> {
    let admin = Credentials {
        bearer: Some(w.tokens.admin.clone()),
        session: Some(new_session(app, w.person_ids[2].1).await),
        send_csrf: false,
    };
    let mut methods = Vec::new();
    for method in [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        let a = send(app, &method, &fill(template, w, false), &admin).await;
        if a.status != StatusCode::METHOD_NOT_ALLOWED {
            methods.push(method);
        }
    }
    methods
}

/// Asserts a refusal: its status and an error body of the route's kind.
fn assert_refused(a: &Answer, status: StatusCode, what: &str) {
    assert_eq!(a.status, status, "{what}: {}", a.text);
    if status.is_redirection() {
        assert!(a.location.starts_with("/login"), "{what}: redirected to {:?}", a.location);
        return;
    }
    match route_kind(what.split_whitespace().nth(1).unwrap_or("")) {
        RouteKind::Scim => {
            assert_eq!(a.content_type, "application/scim+json", "{what}: {}", a.text);
            assert_eq!(a.body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error", "{what}: {}", a.text);
            assert_eq!(a.body["status"], status.as_u16().to_string(), "{what}: {}", a.text);
        }
        RouteKind::Api => {
            assert!(a.content_type.starts_with("application/json"), "{what}: {}", a.content_type);
            assert!(a.body["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {}", a.text);
        }
        RouteKind::Web => assert!(a.content_type.starts_with("text/html"), "{what}: {}", a.content_type),
    }
}

/// Asserts that authorization let the request through: a read answers 200; a write
/// with a made-up id or an invalid body fails validation (4xx), never 401/403/405/5xx.
fn assert_let_through(a: &Answer, read: bool, what: &str) {
    if read {
        assert_eq!(a.status, StatusCode::OK, "{what}: {}", a.text);
    } else {
        assert!(a.status.is_client_error(), "{what}: expected a validation error, got {}: {}", a.status, a.text);
        assert!(
            ![StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN, StatusCode::METHOD_NOT_ALLOWED].contains(&a.status),
            "{what}: {}: {}",
            a.status,
            a.text
        );
    }
}

/// Everything a refused or invalid request could have changed.
pub(crate) async fn snapshot(app: &TestApp, admin: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for path in [
        format!("{SCIM}/Users?count=1000"),
        format!("{SCIM}/Groups?count=1000"),
        format!("{API}/hosts?per_page=1000"),
        format!("{API}/labels"),
    ] {
        let r = app.api_as(Some(admin), Method::GET, &path, None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
        out.push(r.body);
    }
    let operators: Vec<Value> = app
        .store
        .list_api_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| json!([u.id, u.name, u.role.to_string(), u.api_only]))
        .collect();
    out.push(Value::Array(operators));
    let connections: Vec<Value> = app
        .store
        .list_connections()
        .await
        .unwrap()
        .into_iter()
        .map(|c| json!([c.id.0, c.name, c.priority, c.users, c.groups, c.tokens.len()]))
        .collect();
    out.push(Value::Array(connections));
    out
}

/// A user in a group, a host linked to the user, a label, operators of every role (a
/// token and a password person each), a deleted operator's token and session.
pub(crate) async fn world(app: &TestApp) -> World {
    let user_id = app.create_user("jane@example.com").await;
    let group_id = app.create_group("Engineering").await;
    let host_id = app.enroll_host("host-1", Some("jane@example.com")).await;
    let r = app
        .api_post(
            "/labels",
            json!({"name": "Engineering laptops", "criteria": {"vital": "end_user_idp_group", "value": "Engineering"}}),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    let label_id = r.body["label"]["id"].as_i64().unwrap();
    let observer = app.token_with_role("observer-script", Role::Observer).await;
    let admin = app.token_with_role("admin-script", Role::Admin).await;
    let revoked = app.token_with_role("revoked-script", Role::Maintainer).await;
    let connection_id = 1;
    let r = app
        .api_as(Some(&admin), Method::POST, &format!("{API}/idp/connections/{connection_id}/tokens"), Some(json!({})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let connection = r.body["token"].as_str().unwrap().to_string();
    app.store.delete_api_user("revoked-script").await.unwrap();
    let mut person_ids = [(Role::Observer, 0), (Role::Maintainer, 0), (Role::Admin, 0)];
    for (role, id) in &mut person_ids {
        let email = format!("{role}@example.com");
        create_person(app, &email, *role).await;
        *id = app.store.list_api_users().await.unwrap().iter().find(|u| u.name == email).unwrap().id;
    }
    create_person(app, "gone@example.com", Role::Admin).await;
    let gone = app.store.list_api_users().await.unwrap().iter().find(|u| u.name == "gone@example.com").unwrap().id;
    let world_partial = World {
        user_id,
        group_id,
        host_id,
        host_uuid: "host-1".into(),
        label_id,
        connection_id,
        api_user_id: gone,
        tokens: Tokens { observer, admin: admin.clone(), revoked, connection },
        person_ids,
        deleted_person_session: (String::new(), String::new()),
    };
    let deleted_person_session = new_session(app, gone).await;
    app.store.delete_api_user("gone@example.com").await.unwrap();
    World { deleted_person_session, ..world_partial }
}

#[tokio::test]
async fn every_route_answers_every_kind_of_caller_as_expected() {
    // With single sign-on on, so that its routes answer as they do in production.
    let idp = crate::fake_oidc::FakeProvider::start().await;
    let app = crate::sso::app(&idp).await;
    let w = world(&app).await;
    let admin = w.tokens.admin.clone();
    let before = snapshot(&app, &admin).await;
    let mut unknown = Vec::new();
    let mut checked = 0;
    assert!(app.routes.len() > 40, "the router lists only {} routes", app.routes.len());
    for template in &app.routes {
        let methods = methods_of(&app, &w, template).await;
        assert!(!methods.is_empty(), "{template} answers no method");
        for method in methods {
            let Some(expected) = access(&method, template) else {
                unknown.push(format!("{method} {template}"));
                continue;
            };
            check_route(&app, &w, &method, template, expected).await;
            checked += 1;
        }
    }
    assert!(unknown.is_empty(), "routes without an access expectation (add them to `access`): {unknown:#?}");
    assert!(checked > 100, "only {checked} route × method pairs checked");
    eprintln!(
        "access control: {} route templates, {checked} route × method pairs, {} requests",
        app.routes.len(),
        checked * CALLERS.len()
    );
    assert_eq!(snapshot(&app, &admin).await, before, "the sweep changed data");
}

async fn check_route(app: &TestApp, w: &World, method: &Method, template: &str, expected: Access) {
    use Access::*;
    use Caller::*;
    // Reads answer 200 to whoever may read; every other request carries an invalid body.
    let read = *method == Method::GET;
    let mut public_answer: Option<StatusCode> = None;
    for caller in CALLERS {
        let creds = credentials(app, w, caller).await;
        let path = fill(template, w, read);
        let what = format!("{method} {path} as {caller:?}");
        let a = send(app, method, &path, &creds).await;
        if template.ends_with("/Me") && matches!(caller, Maintainer | Admin | ConnectionToken) {
            // RFC 7644 §3.11: a provider without /Me answers 501 to whoever may call it.
            assert_refused(&a, StatusCode::NOT_IMPLEMENTED, &what);
            continue;
        }
        assert!(!a.status.is_server_error(), "{what}: {}", a.text);
        match (expected, caller) {
            (Public, _) => {
                let first = *public_answer.get_or_insert(a.status);
                assert_eq!(a.status, first, "{what}: a public route answers callers differently: {}", a.text);
                assert!(a.status != StatusCode::UNAUTHORIZED, "{what}: {}", a.text);
            }
            (Scim | ApiRead | ApiWrite | ApiAdmin, Anonymous | BadCredentials | Revoked | SessionWithoutCsrf) => {
                assert_refused(&a, StatusCode::UNAUTHORIZED, &what)
            }
            (Scim, ConnectionToken) => assert_let_through(&a, read, &what),
            (ApiRead | ApiWrite | ApiAdmin, ConnectionToken) => assert_refused(&a, StatusCode::FORBIDDEN, &what),
            (Scim | ApiWrite | ApiAdmin, Observer) | (ApiAdmin, Maintainer) => {
                assert_refused(&a, StatusCode::FORBIDDEN, &what)
            }
            (Scim | ApiRead | ApiWrite | ApiAdmin, Observer | Maintainer | Admin) => {
                assert_let_through(&a, read, &what)
            }
            (
                Page | PageWriters | PageAdminRead | SignOut | PageForm | PageWrite | PageAdmin,
                Anonymous | BadCredentials | Revoked | ConnectionToken,
            ) => assert_refused(&a, StatusCode::SEE_OTHER, &what),
            (Page, _) | (PageWriters, Maintainer | Admin | SessionWithoutCsrf) => assert_let_through(&a, true, &what),
            (PageWriters, Observer) | (PageAdminRead, Observer | Maintainer) => {
                assert_refused(&a, StatusCode::FORBIDDEN, &what)
            }
            (PageAdminRead, Admin | SessionWithoutCsrf) => assert_let_through(&a, true, &what),
            (SignOut | PageForm | PageWrite | PageAdmin, SessionWithoutCsrf) | (PageWrite | PageAdmin, Observer) => {
                assert_refused(&a, StatusCode::FORBIDDEN, &what)
            }
            (PageAdmin, Maintainer) => assert_refused(&a, StatusCode::FORBIDDEN, &what),
            (SignOut, Observer | Maintainer | Admin) => {
                // Success is a redirect to sign-in too: the session must be gone.
                assert_eq!(a.status, StatusCode::SEE_OTHER, "{what}: {}", a.text);
                let again = send(app, &Method::GET, "/hosts", &creds).await;
                assert_eq!(again.status, StatusCode::SEE_OTHER, "{what}: the session still works");
            }
            (PageWrite | PageAdmin, Maintainer | Admin) | (PageForm, Observer | Maintainer | Admin) => {
                assert_let_through(&a, false, &what)
            }
        }
    }
}
