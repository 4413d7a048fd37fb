//! Single sign-on in headless Chromium against a real OpenID provider: npm's
//! `oidc-provider` (OpenID Certified), started by `tests/js/oidc-provider.mjs` with one
//! static client and accounts in chosen groups.

use std::io::{BufRead, BufReader};
use std::process::ChildStdin;

use custodian::oidc::{OidcProvider, OidcSettings};
use custodian_domain::web::RoleGroups;

use super::*;

const CLIENT_ID: &str = "custodian-browser-tests";
const CLIENT_SECRET: &str = "browser-tests-client-secret-0123456789abcdef";
const IDP_PASSWORD: &str = "idp password 1";

/// The provider's process, ended when dropped (or when this process dies: its stdin closes).
struct Provider {
    child: Child,
    _stdin: ChildStdin,
    issuer: String,
    _accounts: tempfile::NamedTempFile,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_provider(redirect_uri: &str) -> Provider {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = root.join("tests/js/oidc-provider.mjs");
    assert!(
        root.join("tests/js/node_modules/oidc-provider").exists(),
        "oidc-provider is not installed: run `npm ci --prefix tests/js` (scripts/test does)"
    );
    let account = |login: &str, name: &str, groups: &[&str]| {
        json!({"login": login, "password": IDP_PASSWORD, "sub": format!("sub-{login}"), "name": name,
               "email": format!("{login}@example.com"), "email_verified": true, "groups": groups})
    };
    let accounts = json!([
        account("ada", "Ada Admin", &["everyone", "custodian-admins"]),
        account("oscar", "Oscar Observer", &["everyone", "security"]),
        account("nina", "Nina Nobody", &["everyone", "sales"]),
    ]);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), accounts.to_string()).unwrap();
    let mut child = Command::new("node")
        .arg(&script)
        .args(["--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET, "--redirect-uri", redirect_uri])
        .arg("--accounts")
        .arg(file.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start node {}: {e}", script.display()));
    let stdin = child.stdin.take().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let ready: Value = serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("oidc-provider said {line:?}: {e}"));
    Provider { child, _stdin: stdin, issuer: ready["issuer"].as_str().unwrap().to_string(), _accounts: file }
}

/// Custodian with single sign-on at a fresh provider.
async fn sso_server(password_sign_in: bool) -> (Server, Provider) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let provider = start_provider(&format!("{base}/login/oidc/callback"));
    let oidc = OidcProvider::discover(OidcSettings {
        issuer: provider.issuer.clone(),
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        display_name: "Test IdP".into(),
        groups_claim: "groups".into(),
        role_groups: RoleGroups {
            admin: vec!["custodian-admins".into()],
            maintainer: vec!["helpdesk".into()],
            observer: vec!["security".into()],
        },
        allowed_domains: vec!["example.com".into()],
    })
    .await
    .unwrap();
    let config = AppConfig { oidc: Some(Arc::new(oidc)), password_sign_in, ..AppConfig::default() };
    (Server::start_with(listener, config).await, provider)
}

/// Clicks "Sign in with Test IdP" and signs in at the provider as `login`.
async fn sign_in_at_the_provider(c: &Client, base: &str, login: &str) {
    c.goto(&format!("{base}/login")).await.unwrap();
    c.find(Locator::Css("#sso-sign-in")).await.unwrap().click().await.unwrap();
    c.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css("#login")).await.unwrap();
    fill(c, "#login", login).await;
    fill(c, "#password", IDP_PASSWORD).await;
    c.find(Locator::Css("#submit")).await.unwrap().click().await.unwrap();
}

async fn path_of(c: &Client) -> String {
    c.current_url().await.unwrap().path().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_sign_in_with_a_real_openid_provider_with_the_role_of_their_groups() {
    let driver = start_driver().await;
    let (server, _provider) = sso_server(true).await;
    server.scim_user("jane@example.com", "Jane", "Doe", "Engineering").await;
    let host = server.host("jdoe-mbp", "jane@example.com").await;

    // An admin: the button, the provider's form, then the hosts page as admin.
    let c = browser(&driver).await;
    c.goto(&format!("{}/login", server.base)).await.unwrap();
    assert_eq!(text_of(&c, "#sso-sign-in").await, "Sign in with Test IdP");
    shot(&c, "40-sign-in-with-sso").await;
    sign_in_at_the_provider(&c, &server.base, "ada").await;
    c.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css("#host-filters")).await.unwrap();
    assert_eq!(path_of(&c).await, "/hosts");
    assert_eq!(text_of(&c, ".user-name").await, "Ada Admin");
    assert_eq!(text_of(&c, ".role-badge").await, "admin");
    c.goto(&format!("{}/settings/integrations/identity-provider", server.base)).await.unwrap();
    let redirect = c.find(Locator::Css("#oidc-redirect-uri")).await.unwrap().prop("value").await.unwrap();
    assert_eq!(redirect.as_deref(), Some(format!("{}/login/oidc/callback", server.base).as_str()));
    wait_text(&c, "#sso-status", "Test IdP").await;
    shot(&c, "41-idp-settings-single-sign-on").await;
    c.close().await.unwrap();

    // An observer lands on the hosts page too, and cannot edit.
    let o = browser(&driver).await;
    sign_in_at_the_provider(&o, &server.base, "oscar").await;
    o.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css("#host-filters")).await.unwrap();
    assert_eq!(path_of(&o).await, "/hosts");
    assert_eq!(text_of(&o, ".role-badge").await, "observer");
    o.goto(&format!("{}/hosts/{host}", server.base)).await.unwrap();
    assert_eq!(text_of(&o, "#idp-full-name").await, "Jane Doe");
    assert!(o.find_all(Locator::Css("#edit-idp-username")).await.unwrap().is_empty(), "an observer has no edit form");
    shot(&o, "42-sso-observer-host").await;
    o.close().await.unwrap();

    // A person in none of the groups is refused, and has no session.
    let n = browser(&driver).await;
    sign_in_at_the_provider(&n, &server.base, "nina").await;
    wait_text(&n, "#login-error", "none of the groups").await;
    shot(&n, "43-sso-refused-no-group").await;
    n.goto(&format!("{}/hosts", server.base)).await.unwrap();
    assert_eq!(path_of(&n).await, "/login");
    n.close().await.unwrap();

    let operators = server.store.list_api_users().await.unwrap();
    let names: Vec<(&str, Role)> =
        operators.iter().filter(|u| !u.api_only).map(|u| (u.name.as_str(), u.role)).collect();
    assert_eq!(names, vec![("Ada Admin", Role::Admin), ("Oscar Observer", Role::Observer)], "no account for Nina");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_password_sign_in_off_the_password_form_is_gone_but_for_break_glass_admins() {
    let driver = start_driver().await;
    let (server, _provider) = sso_server(false).await;
    server.person("root@example.com", "Break Glass", Role::Admin).await;
    server.person("mia@example.com", "Mia Maintainer", Role::Maintainer).await;
    let c = browser(&driver).await;
    c.goto(&format!("{}/login", server.base)).await.unwrap();
    assert!(c.find_all(Locator::Css("#password")).await.unwrap().is_empty(), "no password form on the sign-in page");
    assert_eq!(text_of(&c, "#sso-sign-in").await, "Sign in with Test IdP");
    shot(&c, "44-sign-in-sso-only").await;

    // A maintainer's right password is refused on the break-glass form.
    c.find(Locator::Css("#break-glass")).await.unwrap().click().await.unwrap();
    c.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css("#password")).await.unwrap();
    shot(&c, "45-sign-in-break-glass").await;
    fill(&c, "#email", "mia@example.com").await;
    fill(&c, "#password", PASSWORD).await;
    c.find(Locator::Css("#sign-in")).await.unwrap().click().await.unwrap();
    wait_text(&c, "#login-error", "Only admins may sign in with a password").await;

    // The admin's goes through.
    fill(&c, "#email", "root@example.com").await;
    fill(&c, "#password", PASSWORD).await;
    c.find(Locator::Css("#sign-in")).await.unwrap().click().await.unwrap();
    c.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css("#host-filters")).await.unwrap();
    assert_eq!(text_of(&c, ".role-badge").await, "admin");
    c.close().await.unwrap();
}
