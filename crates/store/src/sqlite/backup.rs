//! Online backup and restore of a SQLite database (`custodian backup` / `restore`).
//!
//! A backup is `VACUUM INTO` a temporary file beside the destination: SQLite writes one
//! read snapshot of the live database (writers go on meanwhile, WAL keeps them apart),
//! compacted, with the WAL's committed pages folded in. The copy is checked
//! (`integrity_check`, Custodian's migrations table), synced and renamed into place, so
//! the destination is either the old file or a whole, checked backup.
//!
//! A restore refuses while any process has the database open through the store (each
//! holds a shared lock on `<db>.in-use-lock`; restore needs it exclusive), keeps the
//! current database (and its WAL, whose committed writes belong to it) under a
//! `.before-restore-<time>` name, and copies the backup into place the same way.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrate;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::schema;

/// Why a backup or a restore did not happen, in words for an administrator.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BackupError(pub String);

fn fail(msg: impl Into<String>) -> BackupError {
    BackupError(msg.into())
}

/// What a finished backup or restore reports.
#[derive(Debug, Clone)]
pub struct CopyReport {
    /// The file written (the backup, or the restored database).
    pub path: PathBuf,
    pub bytes: u64,
    /// How many migrations the copied database has applied.
    pub migrations: usize,
    /// Restore only: where the database that was replaced now is (none when there was none).
    pub previous: Option<PathBuf>,
}

/// The lock file a process holds (shared) while it has the database open.
pub fn in_use_lock_path(db: &Path) -> PathBuf {
    sidecar(db, ".in-use-lock")
}

fn sidecar(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// The database file a `sqlite:` URL names.
pub fn database_path(url: &str) -> Result<PathBuf, BackupError> {
    let options =
        SqliteConnectOptions::from_str(url).map_err(|e| fail(format!("not a SQLite database URL ({url}): {e}")))?;
    let path = options.get_filename().to_path_buf();
    if path.as_os_str() == ":memory:" || path.as_os_str().is_empty() {
        return Err(fail("an in-memory database cannot be backed up or restored"));
    }
    Ok(path)
}

/// Copies the live database at `url` to `dest` (refusing an existing `dest` unless
/// `force`).
pub async fn backup(url: &str, dest: &Path, force: bool) -> Result<CopyReport, BackupError> {
    let source = database_path(url)?;
    if !source.is_file() {
        return Err(fail(format!("there is no database at {}", source.display())));
    }
    if dest.exists() && !force {
        return Err(fail(format!(
            "{} exists already: choose another name, or add --force to replace it",
            dest.display()
        )));
    }
    if same_file(&source, dest) {
        return Err(fail("the backup cannot replace the database itself"));
    }
    let tmp = temp_beside(dest)?;
    let result = async {
        // Read-only: the backup never writes to the live database.
        let mut conn = SqliteConnectOptions::new()
            .filename(&source)
            .read_only(true)
            .busy_timeout(Duration::from_secs(30))
            .connect()
            .await
            .map_err(|e| fail(format!("opening {}: {e}", source.display())))?;
        let tmp_text = tmp.to_str().ok_or_else(|| fail(format!("{} is not a UTF-8 path", tmp.display())))?;
        sqlx::query("VACUUM INTO ?")
            .bind(tmp_text)
            .execute(&mut conn)
            .await
            .map_err(|e| fail(format!("copying the database to {}: {e}", tmp.display())))?;
        let _ = conn.close().await;
        let migrations = check_copy(&tmp).await?;
        sync_file(&tmp)?;
        std::fs::rename(&tmp, dest)
            .map_err(|e| fail(format!("moving {} to {}: {e}", tmp.display(), dest.display())))?;
        sync_parent(dest)?;
        let bytes = std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
        Ok(CopyReport { path: dest.to_path_buf(), bytes, migrations, previous: None })
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Puts the backup `file` in place of the database at `url`; refuses while the
/// database is in use.
pub async fn restore(url: &str, file: &Path) -> Result<CopyReport, BackupError> {
    let db = database_path(url)?;
    if !file.is_file() {
        return Err(fail(format!("there is no file at {}", file.display())));
    }
    if same_file(&db, file) {
        return Err(fail("the backup is the database itself"));
    }
    let wal = sidecar(file, "-wal");
    if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
        return Err(fail(format!(
            "{} has a write-ahead log beside it ({}), so it is a live database rather than a backup; \
             restore a file made by `custodian backup`",
            file.display(),
            wal.display()
        )));
    }
    let migrations = check_copy(file).await?;
    if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| fail(format!("creating {}: {e}", parent.display())))?;
    }
    // Exclusive: no server nor any other command has the database open, and none can
    // open it until the restore is done (they wait for this lock).
    let lock_path = in_use_lock_path(&db);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| fail(format!("opening {}: {e}", lock_path.display())))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(fail(format!(
                "the database {} is in use (a `custodian serve` or another command has it open): stop it, then \
                 restore; nothing was changed",
                db.display()
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(fail(format!("locking {}: {e}", lock_path.display()))),
    }
    // The copy first, beside the database, so that the database is replaced by a
    // rename and never by a half-copied file.
    let tmp = temp_beside(&db)?;
    let copied = std::fs::copy(file, &tmp).and_then(|_| std::fs::File::open(&tmp)?.sync_all());
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(format!("copying {} to {}: {e}", file.display(), tmp.display())));
    }
    let previous = if db.exists() {
        fold_wal(&db).await;
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let kept = sidecar(&db, &format!(".before-restore-{stamp}"));
        // The WAL (and a rollback journal) go with their database: they hold its last
        // committed writes, and left here they would be applied to the restored file.
        for suffix in ["-wal", "-journal"] {
            let from = sidecar(&db, suffix);
            if from.exists() {
                let to = sidecar(&kept, suffix);
                std::fs::rename(&from, &to)
                    .map_err(|e| fail(format!("moving {} to {}: {e}", from.display(), to.display())))?;
            }
        }
        std::fs::rename(&db, &kept).map_err(|e| fail(format!("moving {} to {}: {e}", db.display(), kept.display())))?;
        Some(kept)
    } else {
        None
    };
    let shm = sidecar(&db, "-shm");
    if shm.exists() {
        std::fs::remove_file(&shm).map_err(|e| fail(format!("removing {}: {e}", shm.display())))?;
    }
    std::fs::rename(&tmp, &db).map_err(|e| fail(format!("moving {} to {}: {e}", tmp.display(), db.display())))?;
    sync_parent(&db)?;
    drop(lock);
    let bytes = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
    Ok(CopyReport { path: db, bytes, migrations, previous })
}

/// Folds the WAL of a database nobody has open into the file itself (a crashed server may
/// have left one), so that the kept copy is one file that `restore` takes back. Best
/// effort: should it fail, the WAL is kept beside the copy instead.
async fn fold_wal(db: &Path) {
    let Ok(mut conn) = SqliteConnectOptions::new().filename(db).connect().await else { return };
    if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut conn).await {
        tracing::warn!(error = %e, "could not checkpoint the database before restoring over it");
    }
    // Closing the last connection of a WAL database removes its WAL file.
    let _ = conn.close().await;
}

/// Checks that `path` is a whole Custodian database this binary can open: SQLite's
/// integrity check, and migrations all known to this binary. Returns how many are applied.
async fn check_copy(path: &Path) -> Result<usize, BackupError> {
    // Immutable: reading the file takes no lock and creates no -shm/-wal beside it.
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .immutable(true)
        .connect()
        .await
        .map_err(|e| fail(format!("{} is not a SQLite database: {e}", path.display())))?;
    let checked = async {
        let problems: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&mut conn)
            .await
            .map_err(|e| fail(format!("{} is not a SQLite database: {e}", path.display())))?;
        if problems != ["ok"] {
            return Err(fail(format!(
                "{} fails SQLite's integrity check: {}",
                path.display(),
                problems.into_iter().take(5).collect::<Vec<_>>().join("; ")
            )));
        }
        let table: Option<String> =
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'")
                .fetch_optional(&mut conn)
                .await
                .map_err(|e| fail(format!("reading {}: {e}", path.display())))?;
        if table.is_none() {
            return Err(fail(format!(
                "{} is a SQLite database, but not Custodian's (no migrations table)",
                path.display()
            )));
        }
        let applied = conn
            .list_applied_migrations()
            .await
            .map_err(|e| fail(format!("reading the schema version of {}: {e}", path.display())))?;
        schema::check(&super::MIGRATOR, &applied, false).map_err(|e| fail(format!("{}: {e}", path.display())))?;
        Ok(applied.len())
    }
    .await;
    let _ = conn.close().await;
    checked
}

/// A temporary name in the folder of `path` (renames are atomic within one file system).
fn temp_beside(path: &Path) -> Result<PathBuf, BackupError> {
    let name = path.file_name().ok_or_else(|| fail(format!("{} is not a file name", path.display())))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    if tmp.exists() {
        std::fs::remove_file(&tmp).map_err(|e| fail(format!("removing the leftover {}: {e}", tmp.display())))?;
    }
    Ok(tmp)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn sync_file(path: &Path) -> Result<(), BackupError> {
    std::fs::File::open(path).and_then(|f| f.sync_all()).map_err(|e| fail(format!("syncing {}: {e}", path.display())))
}

/// Makes a rename in this file's folder durable.
fn sync_parent(path: &Path) -> Result<(), BackupError> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    #[cfg(unix)]
    {
        std::fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(|e| fail(format!("syncing the folder {}: {e}", parent.display())))?;
    }
    #[cfg(not(unix))]
    let _ = parent;
    Ok(())
}
