//! `custodian backup` and `custodian restore` on SQLite: a backup taken during a write
//! storm is whole and consistent; a restore brings back exactly the backup's data; both
//! refuse what would lose data. PostgreSQL is backed up with its own tools (README), so
//! these tests skip the PostgreSQL pass, except the refusal of a `postgres://` URL.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use custodian_domain::Role;
use rand::SeedableRng;
use rand::rngs::StdRng;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::crash::{Seen, Server, Storm, check_consistency, create_groups, read_all, sqlite_integrity};
use crate::support::{SCIM, TestApp, open_store, postgres_url};

const BIN: &str = env!("CARGO_BIN_EXE_custodian");

/// Runs `custodian ARGS --database URL`; returns success, stderr.
async fn custodian(url: &str, args: &[&str]) -> (bool, String) {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args).arg("--database").arg(url).env_remove("CUSTODIAN_DATABASE_URL");
    let out = cmd.output().await.unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn skip_on_postgres(test: &str) -> bool {
    if postgres_url().is_some() {
        println!("{test}: SQLite only (PostgreSQL is backed up with pg_dump); skipped on the PostgreSQL pass");
        return true;
    }
    false
}

/// What a database holds, for comparing two reads: users (userName → state), group
/// memberships by display name of their members, host uuids with their hostnames.
type Summary = (BTreeMap<String, Value>, BTreeMap<String, Vec<String>>, BTreeMap<String, Value>);

fn summary(seen: &Seen) -> Summary {
    let users =
        seen.users.iter().map(|(n, u)| (n.clone(), json!([u["id"], u["name"], u["title"], u["active"]]))).collect();
    let groups = seen.groups.iter().map(|(g, m)| (g.clone(), m.iter().cloned().collect())).collect();
    let hosts = seen
        .hosts
        .iter()
        .map(|(u, h)| (u.clone(), json!([h["id"], h["hostname"], h["idp_link"], h["end_users"]])))
        .collect();
    (users, groups, hosts)
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// Files in `dir` whose name starts with `prefix`.
fn files_starting(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    found.sort();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_during_writes_is_whole_and_restore_brings_back_exactly_it() {
    if skip_on_postgres("backup during writes") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("custodian.db");
    let db = sqlite_url(&db_path);
    let store = open_store(&db).await;
    let token = TestApp::create_token_in(&store, "okta", Role::Maintainer).await;
    drop(store);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let mut rng = StdRng::seed_from_u64(7);

    // A server under a write storm; the backup runs in the middle of it.
    let mut server = Server::start(&db, dir.path(), "before").await;
    let ledger = create_groups(&client, &server.base, &token).await;
    let storm = Storm::new(&server.base, &token, &client, ledger, 1);
    let workers = storm.spawn_workers(&mut rng);
    // Until the storm has written at least one user and one host.
    let deadline = Instant::now() + Duration::from_secs(60);
    while storm.acknowledged().0.is_empty() || storm.acknowledged().1.is_empty() {
        assert!(Instant::now() < deadline, "the storm wrote no user and host in 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (users_before, hosts_before) = storm.acknowledged();
    let writes_before = storm.acknowledged_writes();
    let backup = dir.path().join("backup.db");
    let backup_arg = backup.to_str().unwrap();
    let (ok, stderr) = custodian(&db, &["backup", backup_arg]).await;
    assert!(ok, "backup failed: {stderr}");
    assert!(stderr.contains("Backed up") && stderr.contains("backup.db"), "{stderr}");
    let writes_during = storm.acknowledged_writes() - writes_before;
    // Until the server has acknowledged a write since the backup began.
    let deadline = Instant::now() + Duration::from_secs(60);
    while storm.acknowledged_writes() == writes_before {
        assert!(Instant::now() < deadline, "the server acknowledged no write during or after the backup");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    storm.stop();
    for w in workers {
        w.await.unwrap();
    }
    let writes_total = storm.acknowledged_writes();
    println!(
        "backup: {writes_before} writes acknowledged before it started, {writes_during} while it ran, \
         {writes_total} in all; {} bytes",
        std::fs::metadata(&backup).unwrap().len()
    );
    assert!(!users_before.is_empty() && !hosts_before.is_empty(), "the storm wrote before the backup");
    assert!(writes_during > 0 || writes_total > writes_before, "the server kept writing during the backup");
    let live = read_all(&client, &server.base, &token).await;
    server.kill().await;

    // The backup, read by a server of its own (on a copy: serving converts it to WAL).
    let copy = dir.path().join("backup-read.db");
    std::fs::copy(&backup, &copy).unwrap();
    sqlite_integrity(&sqlite_url(&copy)).await;
    let mut reader = Server::start(&sqlite_url(&copy), dir.path(), "backup-read").await;
    let in_backup = read_all(&client, &reader.base, &token).await;
    reader.kill().await;
    check_consistency(&in_backup, "backup");
    for user in &users_before {
        assert!(in_backup.users.contains_key(user), "the backup lacks {user}, acknowledged before it started");
    }
    for host in &hosts_before {
        assert!(in_backup.hosts.contains_key(host), "the backup lacks host {host}, acknowledged before it started");
    }
    for user in in_backup.users.keys() {
        assert!(live.users.contains_key(user), "the backup has {user}, which the database never had");
    }
    assert!(in_backup.users.len() <= live.users.len());

    // Writes after the backup, then the server is killed (its WAL left behind).
    let mut after = Server::start(&db, dir.path(), "after").await;
    let r = client
        .post(format!("{}{SCIM}/Users", after.base))
        .bearer_auth(&token)
        .header("content-type", "application/scim+json")
        .body(crate::support::okta_user("after-backup@example.com", "Late", "Comer").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    // Restore while a server runs: refused, nothing changed.
    let (ok, stderr) = custodian(&db, &["restore", backup_arg]).await;
    assert!(!ok, "a restore under a running server must be refused");
    assert!(stderr.contains("in use") && stderr.contains("nothing was changed"), "{stderr}");
    assert!(files_starting(dir.path(), "custodian.db.before-restore").is_empty());
    let still = read_all(&client, &after.base, &token).await;
    assert!(still.users.contains_key("after-backup@example.com"));
    assert_eq!(still.users.len(), live.users.len() + 1);
    after.kill().await;

    // Restore with the server stopped: exactly the backup's data comes back.
    let (ok, stderr) = custodian(&db, &["restore", backup_arg]).await;
    assert!(ok, "restore failed: {stderr}");
    assert!(stderr.contains("Restored") && stderr.contains("before-restore"), "{stderr}");
    let kept = files_starting(dir.path(), "custodian.db.before-restore");
    assert_eq!(kept.len(), 1, "the replaced database is kept: {kept:?}");
    assert!(!dir.path().join("custodian.db-wal").exists(), "no stale WAL beside the restored database");
    sqlite_integrity(&db).await;
    let mut restored = Server::start(&db, dir.path(), "restored").await;
    let now = read_all(&client, &restored.base, &token).await;
    restored.kill().await;
    assert_eq!(summary(&now), summary(&in_backup), "the restored database is the backup, exactly");
    assert!(!now.users.contains_key("after-backup@example.com"), "a write after the backup is gone");

    // And the kept database undoes the restore, with the late write in it.
    let kept_arg = kept[0].to_str().unwrap().to_string();
    let (ok, stderr) = custodian(&db, &["restore", &kept_arg]).await;
    assert!(ok, "restoring the kept database failed: {stderr}");
    let mut undone = Server::start(&db, dir.path(), "undone").await;
    let back = read_all(&client, &undone.base, &token).await;
    undone.kill().await;
    assert!(back.users.contains_key("after-backup@example.com"));
    assert_eq!(back.users.len(), live.users.len() + 1);
    check_consistency(&back, "undone");
}

#[tokio::test]
async fn backup_refuses_to_overwrite_and_restore_refuses_what_is_not_a_custodian_database() {
    if skip_on_postgres("backup refusals") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(&dir.path().join("c.db"));
    let (ok, stderr) = custodian(&db, &["migrate"]).await;
    assert!(ok, "{stderr}");
    let (ok, stderr) =
        custodian(&db, &["user", "create", "--api-only", "--name", "okta", "--role", "maintainer"]).await;
    assert!(ok, "{stderr}");
    let backup = dir.path().join("b.db");
    let backup_arg = backup.to_str().unwrap();
    let (ok, stderr) = custodian(&db, &["backup", backup_arg]).await;
    assert!(ok, "{stderr}");
    let first = std::fs::read(&backup).unwrap();

    // An existing file is kept unless --force.
    let (ok, stderr) = custodian(&db, &["user", "create", "--api-only", "--name", "later", "--role", "observer"]).await;
    assert!(ok, "{stderr}");
    let (ok, stderr) = custodian(&db, &["backup", backup_arg]).await;
    assert!(!ok, "overwriting a backup without --force must be refused");
    assert!(stderr.contains("exists") && stderr.contains("--force"), "{stderr}");
    assert_eq!(std::fs::read(&backup).unwrap(), first, "the existing file is untouched");
    let (ok, stderr) = custodian(&db, &["backup", backup_arg, "--force"]).await;
    assert!(ok, "{stderr}");
    assert_ne!(std::fs::read(&backup).unwrap(), first, "--force replaced it");
    assert!(files_starting(dir.path(), ".b.db.tmp").is_empty(), "no temporary file left");

    // A backup of a database that does not exist is refused, and creates nothing.
    let missing = sqlite_url(&dir.path().join("missing.db"));
    let (ok, stderr) = custodian(&missing, &["backup", dir.path().join("m.db").to_str().unwrap()]).await;
    assert!(!ok && stderr.contains("no database"), "{stderr}");
    assert!(!dir.path().join("missing.db").exists() && !dir.path().join("m.db").exists());

    // Restoring a file that is not a Custodian database changes nothing.
    let before = std::fs::read(dir.path().join("c.db")).unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a database at all, but long enough to look like a header............").unwrap();
    let (ok, stderr) = custodian(&db, &["restore", text.to_str().unwrap()]).await;
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("not a SQLite database") || stderr.contains("not a database"), "{stderr}");
    let other = dir.path().join("other.db");
    {
        use sqlx::Connection;
        let mut conn =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", other.display())).await.unwrap();
        sqlx::query("CREATE TABLE t (x INTEGER)").execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
    }
    let (ok, stderr) = custodian(&db, &["restore", other.to_str().unwrap()]).await;
    assert!(!ok && stderr.contains("not Custodian's"), "{stderr}");
    let (ok, stderr) = custodian(&db, &["restore", dir.path().join("absent.db").to_str().unwrap()]).await;
    assert!(!ok && stderr.contains("no file"), "{stderr}");
    assert_eq!(std::fs::read(dir.path().join("c.db")).unwrap(), before, "the database is untouched");
    assert!(files_starting(dir.path(), "c.db.before-restore").is_empty());

    // A backup from a newer Custodian (a migration this binary does not know) is refused.
    let newer = dir.path().join("newer.db");
    std::fs::copy(&backup, &newer).unwrap();
    {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&sqlite_url(&newer)).await.unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99990101000000, 'from the future', 1, x'00', 0)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    }
    let (ok, stderr) = custodian(&db, &["restore", newer.to_str().unwrap()]).await;
    assert!(!ok && stderr.contains("newer than this binary"), "{stderr}");
    assert_eq!(std::fs::read(dir.path().join("c.db")).unwrap(), before);
}

#[tokio::test]
async fn backup_and_restore_point_postgresql_to_pg_dump() {
    let url = "postgres://custodian:s3cret-pw@db.internal:5432/custodian";
    for command in ["backup", "restore"] {
        let (ok, stderr) = custodian(url, &[command, "/tmp/custodian-never-written.db"]).await;
        assert!(!ok, "{command} on PostgreSQL must be refused");
        assert!(stderr.contains("pg_dump -Fc") && stderr.contains("Backups"), "{stderr}");
        assert!(!stderr.contains("s3cret-pw"), "the password must not be printed: {stderr}");
    }
    assert!(!Path::new("/tmp/custodian-never-written.db").exists());
}
