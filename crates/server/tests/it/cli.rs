//! The `custodian` binary itself: user commands and a graceful stop on SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_custodian");

fn custodian(db: &str, args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).arg("--database").arg(db).env_remove("CUSTODIAN_DATABASE_URL").output().unwrap()
}

#[test]
fn user_create_prints_only_the_token_and_list_and_delete_work() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/sub/c.db", dir.path().display());
    let out = custodian(&db, &["user", "create", "--api-only", "--name", "okta", "--role", "maintainer"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.trim_end_matches('\n');
    assert_eq!(stdout.lines().count(), 1, "stdout must hold the token and nothing else: {stdout:?}");
    assert_eq!(token.len(), 43, "32 random bytes in unpadded base64url: {token:?}");
    assert!(token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    assert!(!String::from_utf8_lossy(&out.stderr).contains(token), "the token must not be echoed to stderr");

    let out = custodian(&db, &["user", "list"]);
    let listing = String::from_utf8(out.stdout).unwrap();
    assert!(listing.contains("okta") && listing.contains("maintainer"), "{listing}");
    assert!(!listing.contains(token));

    let out = custodian(&db, &["user", "create", "--api-only", "--name", "OKTA", "--role", "observer"]);
    assert!(!out.status.success(), "a second user named okta (any case) must be refused");

    let out = custodian(&db, &["user", "delete", "okta"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listing = String::from_utf8(custodian(&db, &["user", "list"]).stdout).unwrap();
    assert!(!listing.contains("okta"), "{listing}");

    let out = custodian(&db, &["user", "create", "--api-only", "--name", "x", "--role", "root"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("root"));
}

#[tokio::test]
async fn serve_stops_gracefully_on_sigterm_keeping_acknowledged_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/c.db", dir.path().display());
    let token = String::from_utf8(
        custodian(&db, &["user", "create", "--api-only", "--name", "okta", "--role", "maintainer"]).stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--database", &db])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await
            && r.status() == 200
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "server did not become healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let created = client
        .post(format!("{base}/api/v1/fleet/scim/Users"))
        .bearer_auth(&token)
        .header("content-type", "application/scim+json")
        .body(json!({"userName": "kept@example.com"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);

    let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "graceful stop must exit 0, got {exit:?}");

    // The acknowledged write is on disk, and so is the request history.
    let store = custodian_store::open(&db).await.unwrap();
    let page = store
        .scim_list(
            custodian_scim::schema::ResourceKind::User,
            &custodian_domain::ListQuery {
                filter: Some(
                    custodian_scim::filter::parse_filter(
                        custodian_scim::schema::ResourceKind::User,
                        "userName eq \"KEPT@example.com\"",
                    )
                    .unwrap(),
                ),
                sort_by: None,
                sort_order: custodian_domain::SortOrder::Ascending,
                start_index: 1,
                count: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.total_results, 1);
    let history = store.recent_scim_requests(10).await.unwrap();
    assert_eq!(history.first().map(|e| e.status), Some(201));
}

#[test]
fn user_create_with_password_stdin_makes_a_person_who_can_sign_in() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/c.db", dir.path().display());
    let create = |password: &str| {
        let mut child = Command::new(BIN)
            .args(["user", "create", "--email", "jane@example.com", "--name", "Jane", "--role", "admin"])
            .arg("--password-stdin")
            .arg("--database")
            .arg(&db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let out = create("too short");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 12 characters"));
    let out = create("correct horse battery");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty(), "nothing on stdout for a person");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = custodian_store::open(&db).await.unwrap();
        let found = store.password_user_by_email("JANE@example.com").await.unwrap().unwrap();
        assert_eq!(found.user.role, custodian_domain::Role::Admin);
        assert!(found.password_hash.starts_with("$argon2id$"));
        assert!(custodian::passwords::verify("correct horse battery".into(), found.password_hash).await);
        assert!(store.has_password_admin().await.unwrap());
    });
}
