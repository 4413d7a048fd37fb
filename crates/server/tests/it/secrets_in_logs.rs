//! Secrets never reach the logs, even at the most verbose level: a full scenario (CLI
//! token and password set-up, SCIM provisioning with passwords, bulk, host writes, web
//! sign-in right and wrong, a token created and revoked on the page, refused tokens,
//! a secret in a query string, an offboarding webhook with its key) is run against a real
//! `custodian serve` with `CUSTODIAN_LOG=trace`, then every line the processes wrote is
//! searched for each secret, and for personal data sent in request bodies.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{API, SCIM, TestDb, okta_user};
use crate::web::Browser;

const BIN: &str = env!("CARGO_BIN_EXE_custodian");

/// The database URL with a password in it, so that its redaction is checked too
/// (PostgreSQL here trusts local connections and ignores it).
fn with_password(url: &str, password: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) if scheme.starts_with("postgres") => match rest.split_once('@') {
            Some((user, host)) if !user.contains(':') => format!("{scheme}://{user}:{password}@{host}"),
            _ => url.to_string(),
        },
        _ => url.to_string(),
    }
}

/// Runs the CLI with trace logging; returns stdout, and appends stderr to `logs`.
fn cli(args: &[&str], db: &str, stdin: Option<&str>, logs: &mut String) -> String {
    let mut child = Command::new(BIN)
        .args(args)
        .args(["--database", db])
        .env("CUSTODIAN_LOG", "trace")
        .env_remove("CUSTODIAN_DATABASE_URL")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "custodian {args:?}: {stderr}");
    logs.push_str(&stderr);
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn no_secret_reaches_the_logs_at_trace_level() {
    let test_db = TestDb::fresh().await;
    let db_password = "Db-Password-Secret-4242";
    let db = with_password(&test_db.url, db_password);
    let person_password = "Person-Password-Secret-1618";
    let wrong_password = "Wrong-Password-Secret-2718";
    let scim_password = "Scim-User-Password-Secret-1414";
    let webhook_secret = "Webhook-Key-Secret-5772";
    let query_secret = "Query-Secret-Value-31337";
    let bad_token = "Bad-Token-Secret-aaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let personal = "Zyxwvutsrq-Family-Name";
    let mut logs = String::new();

    cli(&["migrate"], &db, None, &mut logs);
    let token = cli(&["user", "create", "--api-only", "--name", "okta", "--role", "maintainer"], &db, None, &mut logs)
        .trim()
        .to_string();
    assert_eq!(token.len(), 43, "{token}");
    cli(
        &["user", "create", "--email", "admin@example.com", "--name", "Admin", "--role", "admin", "--password-stdin"],
        &db,
        Some(&format!("{person_password}\n")),
        &mut logs,
    );

    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("server.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--database", &db])
        // Deliveries fail (nothing listens there) and are retried: their errors are logged.
        .args(["--offboarding-webhook-url", "http://127.0.0.1:9/offboarding"])
        .args(["--offboarding-webhook-secret", webhook_secret])
        .env("CUSTODIAN_LOG", "trace")
        .env_remove("CUSTODIAN_DATABASE_URL")
        .env_remove("CUSTODIAN_LOG_FORMAT")
        .stdout(Stdio::from(std::fs::File::create(dir.path().join("server.out")).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()))
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    crate::support::wait_healthy(&client, &base).await;
    let scim = |method: reqwest::Method, path: &str| {
        client
            .request(method, format!("{base}{SCIM}{path}"))
            .bearer_auth(&token)
            .header("content-type", "application/scim+json")
    };

    // SCIM: a user created with a password and the personal data of a body, changed by
    // PATCH (a new password too), put in a group, deactivated (an offboarding event).
    let mut user = okta_user("jane@example.com", "Jane", personal);
    user["password"] = json!(scim_password);
    let r = scim(reqwest::Method::POST, &format!("/Users?access_token={query_secret}"))
        .body(user.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let user_id = r.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"password": scim_password, "title": personal}}]});
    let r = scim(reqwest::Method::PATCH, &format!("/Users/{user_id}")).body(patch.to_string()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let bulk = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [
        {"method": "POST", "path": "/Groups", "bulkId": "g1", "data": {"displayName": "Engineering", "members": [{"value": user_id}]}},
        {"method": "POST", "path": "/Users", "bulkId": "u2", "data": {"userName": "sam@example.com", "password": scim_password}}
    ]});
    let r = scim(reqwest::Method::POST, "/Bulk").body(bulk.to_string()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // A refused token and a malformed body.
    let r = client.get(format!("{base}{SCIM}/Users")).bearer_auth(bad_token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body = r.text().await.unwrap();
    assert!(!body.contains(bad_token), "the error body echoes the token: {body}");
    let r = scim(reqwest::Method::POST, "/Users")
        .body(format!("{{\"userName\": \"{personal}\", \"password\": \"{scim_password}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body = r.text().await.unwrap();
    assert!(!body.contains(scim_password) && !body.contains(personal), "the error body echoes the request: {body}");

    // Hosts: one enrolled by jane, then jane deactivated (an offboarding webhook to send).
    let host = json!({"uuid": "host-secret-1", "hostname": "jane-mac", "device_mapping": [{"email": "jane@example.com", "source": "mdm_idp_accounts"}]});
    let r = client.post(format!("{base}{API}/hosts")).bearer_auth(&token).json(&host).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let deactivate = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": false}]});
    let r =
        scim(reqwest::Method::PATCH, &format!("/Users/{user_id}")).body(deactivate.to_string()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Web: a wrong password, then the right one; a token created on the page, used, revoked.
    let mut wrong = Browser::new(&base);
    let page = wrong.sign_in("admin@example.com", wrong_password).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED, "a wrong password shows the form again");
    assert!(!page.text.contains(wrong_password), "the sign-in page echoes the password");
    let mut browser = Browser::new(&base);
    let page = browser.sign_in("admin@example.com", person_password).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let session = browser.session.clone().unwrap();
    let csrf = browser.csrf().await;
    let page = browser
        .post("/settings/integrations/identity-provider/tokens", &[("csrf_token", &csrf), ("name", "entra")], &[])
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let at = page.text.find("id=\"new-token-value\"").unwrap();
    let value_at = page.text[..at].rfind("value=\"").unwrap() + 7;
    let web_token = page.text[value_at..].split('"').next().unwrap().to_string();
    assert_eq!(web_token.len(), 43, "{web_token}");
    let r = client.get(format!("{base}{SCIM}/Users")).bearer_auth(&web_token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // The row of "entra" in the token table holds its revoke form.
    let row = page.text.split("<tr>").find(|row| row.contains("<td>entra</td>")).unwrap();
    let entra_id = row.split("/tokens/").nth(1).and_then(|s| s.split('/').next()).unwrap().to_string();
    let page = browser
        .post(
            &format!("/settings/integrations/identity-provider/tokens/{entra_id}/revoke"),
            &[("csrf_token", &csrf)],
            &[],
        )
        .await;
    assert!(page.status.is_success() || page.status.is_redirection(), "{}", page.text);
    let r = client.get(format!("{base}{SCIM}/Users")).bearer_auth(&web_token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "a revoked token still works");
    let page = browser.post("/logout", &[("csrf_token", &csrf)], &[]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);

    // Until the webhook deliverer has tried (and failed) once, then stop the server.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = client.get(format!("{base}{API}/webhooks/deliveries")).bearer_auth(&token).send().await.unwrap();
        let body: serde_json::Value = r.json().await.unwrap();
        if body["deliveries"][0]["attempts"].as_u64().is_some_and(|n| n >= 1) {
            break;
        }
        assert!(Instant::now() < deadline, "the webhook was never attempted: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = Command::new("kill").arg("-TERM").arg(server.id().to_string()).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    logs.push_str(&std::fs::read_to_string(&log_path).unwrap());

    // The log is really verbose: trace lines of our crates and of the libraries.
    assert!(logs.lines().count() > 100, "only {} log lines:\n{logs}", logs.lines().count());
    assert!(logs.contains("TRACE"), "no trace-level line: is CUSTODIAN_LOG honoured?");
    assert!(logs.contains("offboarding") || logs.contains("webhook"), "no webhook delivery was logged");
    let secrets = [
        ("the CLI's API token", token.as_str()),
        ("the page's API token", web_token.as_str()),
        ("a refused bearer token", bad_token),
        ("the operator's password", person_password),
        ("a wrong password", wrong_password),
        ("a SCIM user's password", scim_password),
        ("the webhook key", webhook_secret),
        ("the database password", db_password),
        ("a query-string secret", query_secret),
        ("the session cookie", session.as_str()),
        ("the CSRF token", csrf.as_str()),
        ("personal data from a request body", personal),
    ];
    for (what, secret) in secrets {
        if let Some(line) = logs.lines().find(|l| l.contains(secret)) {
            panic!("the log holds {what}: {}", line.chars().take(400).collect::<String>());
        }
    }
    drop(test_db);
}
