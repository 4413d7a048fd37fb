//! The `custodian` binary itself: user commands and a graceful stop on SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_custodian");

fn custodian(db: &str, args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).arg("--database").arg(db).env_remove("CUSTODIAN_DATABASE_URL").output().unwrap()
}

/// The token `custodian user create --api-only` prints for a new maintainer.
pub(crate) fn api_token(db: &str, name: &str) -> String {
    let out = custodian(db, &["user", "create", "--api-only", "--name", name, "--role", "maintainer"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `custodian migrate` on a new database: the one command besides `serve` that creates it.
fn migrated(db: &str) {
    let (ok, stderr) = run_on(db, &["migrate"]);
    assert!(ok, "{stderr}");
}

#[test]
fn idp_add_prints_only_a_token_and_list_token_and_remove_work() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/c.db", dir.path().display());
    migrated(&db);
    let out = custodian(&db, &["idp", "add", "Okta", "--priority", "10"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "stdout must hold the token and nothing else: {stdout:?}");
    assert_eq!(stdout.trim().len(), 43, "{stdout:?}");
    let out = custodian(&db, &["idp", "add", "okta"]);
    assert!(!out.status.success(), "a taken name (any case) is refused");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already exists"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = custodian(&db, &["idp", "token", "Okta", "--expires-in", "30"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let second = String::from_utf8(out.stdout).unwrap();
    assert_eq!(second.trim().len(), 43);
    assert_ne!(second, stdout);

    let out = custodian(&db, &["idp", "list"]);
    let list = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = list.lines().collect();
    assert!(lines[0].starts_with("ID") && lines[0].contains("PRIORITY"), "{list}");
    let okta: Vec<&str> = lines.iter().find(|l| l.contains("Okta")).unwrap().split_whitespace().collect();
    assert_eq!(okta, ["2", "Okta", "scim", "10", "0", "0", "2", "never"], "{list}");
    assert!(lines.iter().any(|l| l.split_whitespace().take(4).eq(["1", "default", "scim", "100"])), "{list}");

    let out = custodian(&db, &["idp", "remove", "Okta"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let list = String::from_utf8(custodian(&db, &["idp", "list"]).stdout).unwrap();
    assert!(!list.contains("Okta"), "{list}");
    let out = custodian(&db, &["idp", "remove", "Okta"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no IdP connection named 'Okta'"));
}

#[test]
fn user_create_prints_only_the_token_and_list_and_delete_work() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/sub/c.db", dir.path().display());
    migrated(&db);
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

/// Runs `custodian` in `cwd` with no --database and no CUSTODIAN_DATABASE_URL: the default
/// database, relative to the working directory.
fn custodian_in(cwd: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).current_dir(cwd).env_remove("CUSTODIAN_DATABASE_URL").output().unwrap()
}

#[tokio::test]
async fn commands_other_than_serve_and_migrate_never_create_a_database() {
    let cwd = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let hosts = elsewhere.path().join("hosts.json");
    std::fs::write(&hosts, r#"[{"uuid": "u1", "hostname": "h1"}]"#).unwrap();
    let expected_file = std::path::absolute(cwd.path().join("custodian-data/custodian.db")).unwrap();
    for args in [
        &["user", "list"][..],
        &["user", "create", "--api-only", "--name", "okta", "--role", "maintainer"][..],
        &["user", "delete", "okta"][..],
        &["hosts", "import", hosts.to_str().unwrap()][..],
    ] {
        let out = custodian_in(cwd.path(), args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded on a database that does not exist: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?} printed {:?}", String::from_utf8_lossy(&out.stdout));
        assert!(stderr.contains("--database") && stderr.contains("CUSTODIAN_DATABASE_URL"), "{args:?}: {stderr}");
        assert!(stderr.contains(&format!("there is no database at {}", expected_file.display())), "{args:?}: {stderr}");
        let left: Vec<_> = std::fs::read_dir(cwd.path()).unwrap().collect();
        assert!(left.is_empty(), "{args:?} created {left:?}");
    }

    // `migrate` creates it, and names it; then the other commands find it and name it too.
    let out = custodian_in(cwd.path(), &["migrate"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("Database: sqlite://{}", expected_file.display())), "{stderr}");
    assert!(expected_file.exists());
    let out = custodian_in(cwd.path(), &["user", "list"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("Database: sqlite://{}", expected_file.display())), "{stderr}");

    // PostgreSQL: a database without Custodian's schema is refused and left without one.
    if let Some(server) = crate::support::postgres_url() {
        let db = crate::support::TestDb::fresh().await;
        let out = custodian(&db.url, &["user", "create", "--api-only", "--name", "okta", "--role", "maintainer"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(stderr.contains("has no Custodian schema") && stderr.contains("--database"), "{stderr}");
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url).await.unwrap();
        let tables: i64 =
            sqlx::query_scalar("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert_eq!(tables, 0, "the refused command created tables");
        assert!(!server.is_empty());
    }
}

#[tokio::test]
async fn user_list_shows_aligned_columns_with_email_role_and_last_use() {
    use std::io::Write;
    let fresh = crate::support::TestDb::fresh().await;
    let db = fresh.url.clone();
    migrated(&db);
    let token = api_token(&db, "okta");
    let mut child = Command::new(BIN)
        .args(["user", "create", "--email", "jane.doe@example.com", "--name", "Jane Doe", "--role", "admin"])
        .args(["--password-stdin", "--database", &db])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"correct horse battery\n").unwrap();
    assert!(child.wait_with_output().unwrap().status.success());

    let table = Table::read(&String::from_utf8(custodian(&db, &["user", "list"]).stdout).unwrap());
    assert_eq!(table.rows.len(), 2, "{}", table.text);
    assert_eq!(table.row("okta")[..6], ["1", "okta", "-", "maintainer", "yes", "never"]);
    let jane = table.row("Jane Doe");
    assert_eq!(jane[..6], ["2", "Jane Doe", "jane.doe@example.com", "admin", "no", "never"]);
    assert!(chrono::DateTime::parse_from_rfc3339(&jane[6]).is_ok(), "{}", table.text);

    // A request with the token is its last use.
    let (mut server, base) = serve_or_exit(&db, &[]).await.expect("serves");
    let r =
        reqwest::Client::new().get(format!("{base}/api/v1/fleet/scim/Users")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    server.kill().unwrap();
    server.wait().unwrap();
    let table = Table::read(&String::from_utf8(custodian(&db, &["user", "list"]).stdout).unwrap());
    let used = &table.row("okta")[5];
    assert!(chrono::DateTime::parse_from_rfc3339(used).is_ok(), "last use of the token: {used:?} in {}", table.text);
    assert_eq!(table.row("Jane Doe")[5], "never", "{}", table.text);
}

/// The output of `custodian user list`, read by column: each header starts its column, and
/// every value must start exactly there (aligned), whatever the widths.
struct Table {
    text: String,
    rows: Vec<Vec<String>>,
}

impl Table {
    const HEADERS: [&str; 7] = ["ID", "NAME", "EMAIL", "ROLE", "API-ONLY", "LAST USED", "CREATED"];

    fn read(text: &str) -> Table {
        let mut lines = text.lines();
        let header = lines.next().unwrap_or_default();
        let starts: Vec<usize> =
            Self::HEADERS.iter().map(|h| header.find(h).unwrap_or_else(|| panic!("no {h} column: {text}"))).collect();
        assert!(starts.windows(2).all(|w| w[0] < w[1]), "{text}");
        let rows = lines
            .map(|line| {
                (0..starts.len())
                    .map(|i| {
                        let (start, end) = (starts[i], starts.get(i + 1).copied().unwrap_or(line.len()));
                        assert!(start == 0 || line.as_bytes()[start - 1] == b' ', "column {i} not aligned: {text}");
                        assert_ne!(line.as_bytes()[start], b' ', "column {i} not aligned: {text}");
                        line[start..end.min(line.len())].trim().to_string()
                    })
                    .collect()
            })
            .collect();
        Table { text: text.to_string(), rows }
    }

    fn row(&self, name: &str) -> &Vec<String> {
        self.rows.iter().find(|r| r[1] == name).unwrap_or_else(|| panic!("no {name}: {}", self.text))
    }
}

#[tokio::test]
async fn serve_stops_gracefully_on_sigterm_keeping_acknowledged_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/c.db", dir.path().display());
    migrated(&db);
    let token = api_token(&db, "okta");
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
    let store = crate::support::open_store(&db).await;
    let page = store
        .scim_list(
            custodian_domain::Scope::All,
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

/// Runs `custodian` with these arguments on a database and returns (success, stderr).
fn run_on(db: &str, args: &[&str]) -> (bool, String) {
    let out = custodian(db, args);
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Starts `custodian serve` and waits until it is healthy or has exited; returns the
/// child and its base URL if it serves, else its stderr.
pub(crate) async fn serve_or_exit(db: &str, extra: &[&str]) -> Result<(std::process::Child, String), String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--database", db])
        .args(extra)
        .env_remove("CUSTODIAN_DATABASE_URL")
        .env_remove("CUSTODIAN_NO_AUTO_MIGRATE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Some(_exit) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            return Err(stderr);
        }
        if client.get(format!("http://127.0.0.1:{port}/healthz")).send().await.is_ok_and(|r| r.status() == 200) {
            return Ok((child, format!("http://127.0.0.1:{port}")));
        }
        assert!(started.elapsed() < Duration::from_secs(30), "serve neither started nor exited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn no_auto_migrate_refuses_an_older_schema_until_migrate_has_run() {
    let db = crate::support::TestDb::fresh().await;
    let refused = serve_or_exit(&db.url, &["--no-auto-migrate"]).await.expect_err("must refuse an empty schema");
    assert!(refused.contains("older than this binary"), "{refused}");
    assert!(refused.contains("custodian migrate"), "the message says what to run: {refused}");

    let (ok, stderr) = run_on(&db.url, &["migrate"]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("up to date"), "{stderr}");
    let (ok, stderr) = run_on(&db.url, &["migrate"]);
    assert!(ok, "a second migrate is a no-op: {stderr}");

    let (mut child, _) = serve_or_exit(&db.url, &["--no-auto-migrate"]).await.expect("serves on the current schema");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn a_schema_newer_than_the_binary_is_refused_with_or_without_auto_migrate() {
    let db = crate::support::TestDb::fresh().await;
    let (ok, stderr) = run_on(&db.url, &["migrate"]);
    assert!(ok, "{stderr}");
    // What a later release's migration leaves behind.
    let insert = "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                  VALUES (29991231000000, 'from the future', TRUE, X'00', 1)";
    if db.url.starts_with("sqlite:") {
        let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&db.url).await.unwrap();
        sqlx::query(insert).execute(&mut conn).await.unwrap();
    } else {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url).await.unwrap();
        sqlx::query(&insert.replace("X'00'", "'\\x00'::bytea")).execute(&mut conn).await.unwrap();
    }
    for extra in [&[][..], &["--no-auto-migrate"][..]] {
        let refused = serve_or_exit(&db.url, extra).await.expect_err("must refuse a newer schema");
        assert!(refused.contains("newer than this binary"), "{extra:?}: {refused}");
        assert!(refused.contains("29991231000000"), "names the unknown migration: {refused}");
    }
    let (ok, stderr) = run_on(&db.url, &["migrate"]);
    assert!(!ok && stderr.contains("newer than this binary"), "{stderr}");
}

#[tokio::test]
async fn instances_starting_together_on_a_fresh_database_migrate_it_once() {
    let db = crate::support::TestDb::fresh().await;
    let runs: Vec<_> = (0..4)
        .map(|_| {
            Command::new(BIN)
                .args(["migrate", "--database", &db.url])
                .env_remove("CUSTODIAN_DATABASE_URL")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for run in runs {
        let out = run.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && stderr.contains("up to date"), "{stderr}");
    }
    // Serving with --no-auto-migrate proves every migration is applied and none unknown.
    let (mut child, _) = serve_or_exit(&db.url, &["--no-auto-migrate"]).await.expect("the schema is complete");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn user_create_with_password_stdin_makes_a_person_who_can_sign_in() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/c.db", dir.path().display());
    migrated(&db);
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
        let store = crate::support::open_store(&db).await;
        let found = store.password_user_by_email("JANE@example.com").await.unwrap().unwrap();
        assert_eq!(found.user.role, custodian_domain::Role::Admin);
        assert!(found.password_hash.starts_with("$argon2id$"));
        assert!(custodian::passwords::verify("correct horse battery".into(), found.password_hash).await);
        assert!(store.has_password_admin().await.unwrap());
    });
}
