//! Operators' single sign-on against the in-process fake provider of `fake_oidc`: the
//! good sign-in (operator created by issuer and subject, role from the groups, activity),
//! every forged ID token refused, a replayed state, a state from another browser, a
//! person in no group, the JWKS refreshed once on an unknown kid, and the offboarding of
//! an SSO operator when Okta deactivates its IdP user.

use std::collections::HashMap;

use custodian::AppConfig;
use custodian::oidc::{OidcProvider, OidcSettings};
use custodian_domain::Role;
use custodian_domain::web::RoleGroups;
use reqwest::StatusCode;
use serde_json::json;

use crate::fake_oidc::{CLIENT_ID, CLIENT_SECRET, FakeProvider, Forge, Person};
use crate::support::{TestApp, okta_user};

fn settings(issuer: &str) -> OidcSettings {
    OidcSettings {
        issuer: issuer.into(),
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        display_name: "Test IdP".into(),
        groups_claim: "groups".into(),
        role_groups: RoleGroups {
            admin: vec!["custodian-admins".into()],
            maintainer: vec!["helpdesk".into()],
            observer: vec!["security".into()],
        },
        allowed_domains: Vec::new(),
    }
}

async fn app_with(settings: OidcSettings, password_sign_in: bool) -> TestApp {
    let provider = OidcProvider::discover(settings).await.unwrap();
    // No rate limits: these tests sign in more often than a person (overload.rs tests them).
    let limits =
        custodian::limits::Limits { rate_per_token: 0, sign_in_per_minute: 0, ..custodian::limits::Limits::default() };
    TestApp::spawn_with(AppConfig {
        limits,
        oidc: Some(std::sync::Arc::new(provider)),
        password_sign_in,
        sign_in_failure_delay: std::time::Duration::from_millis(10),
        ..AppConfig::default()
    })
    .await
}

/// Custodian with single sign-on at this fake provider.
pub(crate) async fn app(idp: &FakeProvider) -> TestApp {
    app_with(settings(&idp.issuer), true).await
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

struct Answer {
    status: StatusCode,
    location: Option<String>,
    cookies: HashMap<String, String>,
    text: String,
}

/// A browser of one Custodian server, with the cookies it was given.
struct Browser {
    base: String,
    client: reqwest::Client,
    jar: HashMap<String, String>,
}

impl Browser {
    fn new(app: &TestApp) -> Browser {
        Browser { base: app.base.clone(), client: no_redirects(), jar: HashMap::new() }
    }

    async fn get(&mut self, path_or_url: &str) -> Answer {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_string()
        } else {
            format!("{}{path_or_url}", self.base)
        };
        let cookie: Vec<String> =
            self.jar.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| format!("{k}={v}")).collect();
        let r = self.client.get(url).header("cookie", cookie.join("; ")).send().await.unwrap();
        let cookies: HashMap<String, String> = ["custodian_session", "custodian_oidc", "custodian_presession"]
            .into_iter()
            .filter_map(|name| crate::web::set_cookie(r.headers(), name).map(|v| (name.to_string(), v)))
            .collect();
        self.jar.extend(cookies.clone());
        let status = r.status();
        let location = r.headers().get("location").map(|v| v.to_str().unwrap().to_string());
        Answer { status, location, cookies, text: r.text().await.unwrap() }
    }

    /// Starts a sign-in: the authorization URL Custodian redirects to.
    async fn start(&mut self) -> String {
        let r = self.get("/login/oidc/start?next=%2Fend-users").await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
        assert!(r.cookies.get("custodian_oidc").is_some_and(|c| c.len() >= 32), "the browser-binding cookie");
        r.location.unwrap()
    }

    /// A whole sign-in as this person, the ID token forged as told; the callback's answer.
    async fn sign_in(&mut self, idp: &FakeProvider, person: &Person, forge: Forge) -> Answer {
        let authorization = self.start().await;
        let (code, q) = idp.issue_code(&authorization, person, forge);
        self.callback(&code, &q["state"]).await
    }

    async fn callback(&mut self, code: &str, state: &str) -> Answer {
        self.get(&format!("/login/oidc/callback?code={}&state={}", enc(code), enc(state))).await
    }
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn alice() -> Person {
    Person::new("00u-alice", "alice@example.com", &["everyone", "helpdesk"])
}

async fn activities(app: &TestApp, kind: &str) -> Vec<serde_json::Value> {
    let query = custodian_domain::hosts::ActivityQuery { limit: 200, ..Default::default() };
    let all = app.store.list_activities(&query).await.unwrap();
    all.into_iter().filter(|a| a.kind == kind).map(|a| a.details).collect()
}

#[tokio::test]
async fn a_first_sign_in_creates_the_operator_with_the_role_of_its_groups() {
    let idp = FakeProvider::start().await;
    let app = app(&idp).await;
    let mut b = Browser::new(&app);
    let login = b.get("/login").await;
    assert!(login.text.contains("Sign in with Test IdP"), "{}", login.text);
    assert!(login.text.contains("id=\"password\""), "password sign-in stays by default");

    let done = b.sign_in(&idp, &alice(), Forge::Good).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text);
    assert_eq!(done.location.as_deref(), Some("/end-users"), "back where the sign-in started");
    assert!(done.cookies.contains_key("custodian_session"));
    assert_eq!(done.cookies.get("custodian_oidc").map(String::as_str), Some(""), "the binding cookie is cleared");
    let page = b.get("/hosts").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("Person 00u-alice"), "the operator's name from the claims");

    let operators = app.store.list_api_users().await.unwrap();
    let alice_op = operators.iter().find(|u| u.name == "Person 00u-alice").unwrap();
    assert_eq!(alice_op.role, Role::Maintainer);
    assert_eq!(alice_op.email.as_deref(), Some("alice@example.com"));
    assert!(!alice_op.api_only);
    let signed = activities(&app, "sso_signed_in").await;
    assert_eq!(signed.len(), 1);
    assert_eq!(signed[0]["created"], true);
    assert_eq!(signed[0]["role"], "maintainer");

    // The next sign-in finds it by subject; the groups changed, so does the role.
    let mut promoted = alice();
    promoted.groups.push("custodian-admins".into());
    promoted.email = "alice.new@example.com".into();
    let mut b2 = Browser::new(&app);
    assert_eq!(b2.sign_in(&idp, &promoted, Forge::Good).await.status, StatusCode::SEE_OTHER);
    let operators = app.store.list_api_users().await.unwrap();
    let same: Vec<_> = operators.iter().filter(|u| u.name == "Person 00u-alice").collect();
    assert_eq!(same.len(), 1, "one operator per subject");
    assert_eq!(same[0].id, alice_op.id);
    assert_eq!(same[0].role, Role::Admin);
    assert_eq!(same[0].email.as_deref(), Some("alice.new@example.com"));
    let changes = activities(&app, "changed_operator_role").await;
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!((changes[0]["from"].as_str(), changes[0]["to"].as_str()), (Some("maintainer"), Some("admin")));
}

#[tokio::test]
async fn an_email_alone_never_finds_an_operator() {
    let idp = FakeProvider::start().await;
    let app = app(&idp).await;
    crate::web::create_person(&app, "alice@example.com", Role::Admin).await;
    let mut b = Browser::new(&app);
    // The same email under another subject is another operator, with its own role.
    assert_eq!(b.sign_in(&idp, &alice(), Forge::Good).await.status, StatusCode::SEE_OTHER);
    let operators = app.store.list_api_users().await.unwrap();
    assert_eq!(operators.iter().filter(|u| u.email.as_deref() == Some("alice@example.com")).count(), 2);
    let sso = operators.iter().find(|u| u.name == "Person 00u-alice").unwrap();
    assert_eq!(sso.role, Role::Maintainer, "not the password admin's role");
}

#[tokio::test]
async fn every_forged_id_token_is_refused_and_signs_nobody_in() {
    let idp = FakeProvider::start().await;
    let app = app(&idp).await;
    for forge in [
        Forge::WrongAudience,
        Forge::WrongIssuer,
        Forge::Expired,
        Forge::AlgNone,
        Forge::Hs256WithSecret,
        Forge::WrongNonce,
        Forge::ExtraAudienceWithoutAzp,
        Forge::WrongAzp,
        Forge::IssuedInTheFuture,
    ] {
        let mut b = Browser::new(&app);
        let r = b.sign_in(&idp, &alice(), forge).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{forge:?}: {}", r.text);
        assert!(!r.cookies.contains_key("custodian_session"), "{forge:?}");
        assert!(r.text.contains("could not be completed"), "{forge:?}: a plain message: {}", r.text);
        assert!(r.text.contains("Sign in with Test IdP"), "{forge:?}: the sign-in page again");
    }
    assert!(app.store.list_api_users().await.unwrap().iter().all(|u| u.api_only), "no operator was created");
    assert!(activities(&app, "sso_signed_in").await.is_empty());
}

#[tokio::test]
async fn a_state_is_used_once_and_only_by_the_browser_that_started_it() {
    let idp = FakeProvider::start().await;
    let app = app(&idp).await;
    let mut b = Browser::new(&app);
    let authorization = b.start().await;
    let (code, q) = idp.issue_code(&authorization, &alice(), Forge::Good);

    // Another browser with the callback URL (a leaked or planted link) gets nothing.
    let mut other = Browser::new(&app);
    let _ = other.start().await;
    let stolen = other.callback(&code, &q["state"]).await;
    assert_eq!(stolen.status, StatusCode::BAD_REQUEST, "{}", stolen.text);
    assert!(stolen.text.contains("another browser"), "{}", stolen.text);
    // ...and the state is spent: the right browser cannot use it afterwards either.
    let late = b.callback(&code, &q["state"]).await;
    assert_eq!(late.status, StatusCode::BAD_REQUEST);
    assert!(late.text.contains("already used"), "{}", late.text);

    // A fresh sign-in works once; replaying its callback does not.
    let authorization = b.start().await;
    let (code, q) = idp.issue_code(&authorization, &alice(), Forge::Good);
    assert_eq!(b.callback(&code, &q["state"]).await.status, StatusCode::SEE_OTHER);
    let replay = b.callback(&code, &q["state"]).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST, "a replayed state");
    assert!(!replay.cookies.contains_key("custodian_session"));
    // No state at all, or one Custodian never issued.
    assert_eq!(b.get("/login/oidc/callback?code=x").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(b.callback("x", "never-issued").await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_person_in_none_of_the_groups_is_refused_and_no_account_is_created() {
    let idp = FakeProvider::start().await;
    let app = app(&idp).await;
    let mut b = Browser::new(&app);
    let outsider = Person::new("00u-bob", "bob@example.com", &["everyone", "sales"]);
    let r = b.sign_in(&idp, &outsider, Forge::Good).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(r.text.contains("none of the groups"), "{}", r.text);
    assert!(!r.cookies.contains_key("custodian_session"));
    assert!(app.store.list_api_users().await.unwrap().iter().all(|u| u.api_only), "no account");
}

#[tokio::test]
async fn groups_missing_from_the_id_token_are_read_from_userinfo() {
    let idp = FakeProvider::start().await;
    idp.groups_in_userinfo_only();
    let app = app(&idp).await;
    let mut b = Browser::new(&app);
    let observer = Person::new("00u-carol", "carol@example.com", &["security"]);
    assert_eq!(b.sign_in(&idp, &observer, Forge::Good).await.status, StatusCode::SEE_OTHER);
    let ops = app.store.list_api_users().await.unwrap();
    assert_eq!(ops.iter().find(|u| u.name == "Person 00u-carol").unwrap().role, Role::Observer);
}

#[tokio::test]
async fn an_unknown_kid_refreshes_the_keys_once_then_is_refused() {
    let idp = FakeProvider::start().await;
    let app = app(&idp).await;
    let fetched_at_start = idp.jwks_fetches();
    assert_eq!(fetched_at_start, 1, "discovery reads the keys once");

    let mut b = Browser::new(&app);
    let r = b.sign_in(&idp, &alice(), Forge::UnknownKid).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert_eq!(idp.jwks_fetches(), fetched_at_start + 1, "refreshed once, not in a loop");

    // A real rotation: the new key is found by the refresh, and the sign-in succeeds.
    idp.rotate_key("key-2");
    let mut b = Browser::new(&app);
    assert_eq!(b.sign_in(&idp, &alice(), Forge::Good).await.status, StatusCode::SEE_OTHER);
    assert_eq!(idp.jwks_fetches(), fetched_at_start + 2);
    // Known now: no more fetches.
    let mut b = Browser::new(&app);
    assert_eq!(b.sign_in(&idp, &alice(), Forge::Good).await.status, StatusCode::SEE_OTHER);
    assert_eq!(idp.jwks_fetches(), fetched_at_start + 2);
}

#[tokio::test]
async fn allowed_domains_are_checked_against_the_verified_email() {
    let idp = FakeProvider::start().await;
    let mut s = settings(&idp.issuer);
    s.allowed_domains = vec!["example.com".into()];
    let app = app_with(s, true).await;
    let mut b = Browser::new(&app);
    let outsider = Person::new("00u-eve", "eve@evil.example", &["custodian-admins"]);
    let r = b.sign_in(&idp, &outsider, Forge::Good).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.text.contains("could not be completed") && !r.cookies.contains_key("custodian_session"), "{}", r.text);
    let mut unverified = Person::new("00u-dan", "dan@example.com", &["custodian-admins"]);
    unverified.email_verified = false;
    let r = b.sign_in(&idp, &unverified, Forge::Good).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(!r.cookies.contains_key("custodian_session"));
    assert!(app.store.list_api_users().await.unwrap().iter().all(|u| u.api_only), "neither got an account");
    assert_eq!(b.sign_in(&idp, &alice(), Forge::Good).await.status, StatusCode::SEE_OTHER);
    let ops = app.store.list_api_users().await.unwrap();
    assert_eq!(
        ops.iter().filter(|u| !u.api_only).map(|u| u.email.as_deref()).collect::<Vec<_>>(),
        vec![Some("alice@example.com")]
    );
}

#[tokio::test]
async fn with_password_sign_in_off_only_admins_may_use_a_password() {
    let idp = FakeProvider::start().await;
    let app = app_with(settings(&idp.issuer), false).await;
    crate::web::create_person(&app, "root@example.com", Role::Admin).await;
    crate::web::create_person(&app, "helper@example.com", Role::Maintainer).await;
    let mut b = crate::web::Browser::new(&app.base);
    let login = b.get("/login").await;
    assert!(login.text.contains("Sign in with Test IdP"));
    assert!(!login.text.contains("id=\"password\""), "no password form for everyone: {}", login.text);
    assert!(login.text.contains("break-glass"));
    let r = b.sign_in_at("/login?password=1", "helper@example.com", crate::web::PASSWORD).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "a maintainer's right password is not enough");
    assert!(r.text.contains("Only admins may sign in with a password"), "{}", r.text);
    assert!(b.session.is_none());
    let r = b.sign_in_at("/login?password=1", "root@example.com", crate::web::PASSWORD).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "the break-glass admin: {}", r.text);
}

#[tokio::test]
async fn okta_deactivating_the_idp_user_offboards_the_sso_operator_at_once() {
    let idp = FakeProvider::start().await;
    let app = app(&idp).await;
    // Okta provisions alice, then she signs in to Custodian as an operator.
    let created = app.post("/Users", okta_user("alice@example.com", "Alice", "Smith")).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let user_id = created.body["id"].as_str().unwrap().to_string();
    let mut b = Browser::new(&app);
    assert_eq!(b.sign_in(&idp, &alice(), Forge::Good).await.status, StatusCode::SEE_OTHER);
    assert_eq!(b.get("/hosts").await.status, StatusCode::OK);
    // Another, unrelated SSO operator keeps its session.
    let mut other = Browser::new(&app);
    let bob = Person::new("00u-bob", "bob@example.com", &["security"]);
    assert_eq!(other.sign_in(&idp, &bob, Forge::Good).await.status, StatusCode::SEE_OTHER);

    // Okta deactivates her (its documented PATCH).
    let r = app
        .patch(
            &format!("/Users/{user_id}"),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "replace", "value": {"active": false}}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let next = b.get("/hosts").await;
    assert_eq!(next.status, StatusCode::SEE_OTHER, "the session ended on the next request");
    assert!(next.location.unwrap().starts_with("/login"));
    assert_eq!(other.get("/hosts").await.status, StatusCode::OK, "bob is not alice");
    // She cannot sign in again while deactivated, and the page says why.
    let mut again = Browser::new(&app);
    let refused = again.sign_in(&idp, &alice(), Forge::Good).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    assert!(refused.text.contains("deactivated"), "{}", refused.text);
    let offboarded = activities(&app, "sso_operator_offboarded").await;
    assert_eq!(offboarded.len(), 1, "{offboarded:?}");
    assert_eq!(offboarded[0]["sessions_ended"], 1);
    assert!(offboarded[0]["reason"].as_str().unwrap().contains("deactivated"), "{offboarded:?}");
    assert_eq!(activities(&app, "sso_sign_in_refused").await.len(), 1);

    // Okta reactivates her: she may sign in again.
    let r = app
        .patch(
            &format!("/Users/{user_id}"),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "replace", "value": {"active": true}}]}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(activities(&app, "sso_operator_reinstated").await.len(), 1);
    let mut back = Browser::new(&app);
    assert_eq!(back.sign_in(&idp, &alice(), Forge::Good).await.status, StatusCode::SEE_OTHER);

    // A deletion offboards too.
    assert_eq!(app.delete(&format!("/Users/{user_id}")).await.status, 204);
    assert_eq!(back.get("/hosts").await.status, StatusCode::SEE_OTHER);
    let offboarded = activities(&app, "sso_operator_offboarded").await;
    assert_eq!(offboarded.len(), 2);
    assert!(offboarded.iter().any(|d| d["reason"].as_str().unwrap().contains("deleted")), "{offboarded:?}");
}

#[tokio::test]
async fn a_wrong_configuration_stops_the_start_with_the_flag_to_fix() {
    let idp = FakeProvider::start().await;
    let mut no_secret = settings(&idp.issuer);
    no_secret.client_secret = String::new();
    let e = OidcProvider::discover(no_secret).await.unwrap_err().to_string();
    assert!(e.contains("--oidc-client-secret-file"), "{e}");

    let mut no_groups = settings(&idp.issuer);
    no_groups.role_groups = RoleGroups::default();
    let e = OidcProvider::discover(no_groups).await.unwrap_err().to_string();
    assert!(e.contains("--oidc-admin-groups"), "{e}");

    let e = OidcProvider::discover(settings("http://127.0.0.1:9")).await.unwrap_err().to_string();
    assert!(e.contains("--oidc-issuer"), "unreachable: {e}");

    let liar = FakeProvider::start().await;
    liar.state_issuer("https://someone-else.example");
    let e = OidcProvider::discover(settings(&liar.issuer)).await.unwrap_err().to_string();
    assert!(e.contains("--oidc-issuer") && e.contains("someone-else"), "a discovery document of another issuer: {e}");
    assert!(!e.contains(CLIENT_SECRET));
}

#[tokio::test]
async fn serve_stops_at_start_on_a_wrong_single_sign_on_configuration() {
    let idp = FakeProvider::start().await;
    let db = crate::support::TestDb::fresh().await;
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), format!("{CLIENT_SECRET}\n")).unwrap();
    let secret_path = secret.path().to_str().unwrap().to_string();
    let with = |issuer: &str, secret_file: Option<&str>| -> Vec<String> {
        let mut args =
            vec!["--oidc-issuer".to_string(), issuer.to_string(), "--oidc-client-id".into(), CLIENT_ID.into()];
        args.extend(["--oidc-admin-groups".to_string(), "custodian-admins".into()]);
        if let Some(f) = secret_file {
            args.extend(["--oidc-client-secret-file".to_string(), f.to_string()]);
        }
        args
    };
    let run = |args: Vec<String>| {
        let db = db.url.clone();
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            crate::cli::serve_or_exit(&db, &refs).await
        }
    };
    let missing = run(with(&idp.issuer, None)).await.expect_err("no secret");
    assert!(missing.contains("--oidc-client-secret-file"), "{missing}");
    let unreachable = run(with("http://127.0.0.1:9", Some(&secret_path))).await.expect_err("unreachable");
    assert!(unreachable.contains("--oidc-issuer"), "{unreachable}");
    let liar = FakeProvider::start().await;
    liar.state_issuer("https://someone-else.example");
    let differs = run(with(&liar.issuer, Some(&secret_path))).await.expect_err("another issuer");
    assert!(differs.contains("--oidc-issuer"), "{differs}");
    assert!(!differs.contains(CLIENT_SECRET) && !missing.contains(CLIENT_SECRET));
    // The right configuration serves, and its sign-in page offers the provider.
    let (mut child, base) = run(with(&idp.issuer, Some(&secret_path))).await.expect("serves");
    let page = reqwest::get(format!("{base}/login")).await.unwrap().text().await.unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(page.contains("Sign in with your identity provider"), "the default display name: {page}");
}

#[tokio::test]
async fn a_google_workspace_suspension_offboards_the_sso_operator_in_the_sync_run() {
    use crate::google_workspace::{Google, company, config};
    let idp = FakeProvider::start().await;
    let google = custodian_google::fake::FakeGoogle::start().await;
    company(&google, 30);
    let provider = OidcProvider::discover(settings(&idp.issuer)).await.unwrap();
    let config = AppConfig { oidc: Some(std::sync::Arc::new(provider)), ..config() };
    let (g, first) = Google::connect_with(&google, json!({}), config).await;
    assert_eq!(first["status"], "success", "{first}");
    let mut b = Browser::new(&g.app);
    let person = Person::new("00u-user4", "User4@Example.com", &["helpdesk"]);
    assert_eq!(b.sign_in(&idp, &person, Forge::Good).await.status, StatusCode::SEE_OTHER);
    assert_eq!(b.get("/hosts").await.status, StatusCode::OK);

    google.with(|st| {
        let u4 = st.users.iter_mut().find(|u| u["id"] == "100004").unwrap();
        u4["suspended"] = true.into();
    });
    let run = g.sync(json!({})).await;
    assert_eq!(run["status"], "success", "{run}");
    assert_eq!(b.get("/hosts").await.status, StatusCode::SEE_OTHER, "the run ended the session");
    let offboarded = activities(&g.app, "sso_operator_offboarded").await;
    assert_eq!(offboarded.len(), 1, "{offboarded:?}");
    assert_eq!(offboarded[0]["connection"], "google");
    let mut again = Browser::new(&g.app);
    assert_eq!(again.sign_in(&idp, &person, Forge::Good).await.status, StatusCode::FORBIDDEN);
}
