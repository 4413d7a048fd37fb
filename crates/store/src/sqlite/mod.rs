//! The SQLite store: the embedded default. One writer connection (SQLite has one writer
//! anyway; this avoids lock upgrades between our own connections) and a pool of readers
//! that WAL lets run beside it. Every write is one `BEGIN IMMEDIATE` transaction.

pub mod backup;
mod group_commit;
pub(crate) mod local;

use local::Local;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use custodian_domain::{StoreError, StoreResult};

use crate::db::Db;
use crate::error::db_err;
use crate::store::SqlStore;

use crate::schema::{self, MigrateMode};
use sqlx::migrate::{Migrate, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Opens the SQLite store (`SqliteStore::open`).
pub struct SqliteStore;

impl SqliteStore {
    /// Opens (creating the folder and file when missing) and, in `Apply` mode, migrates
    /// the database; in `Verify` mode, checks that its schema is this binary's.
    pub async fn open(url: &str, mode: MigrateMode) -> Result<SqlStore, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Database(format!("invalid SQLite URL '{url}': {e}")))?;
        if let Some(parent) = options.get_filename().parent()
            && !parent.as_os_str().is_empty()
            && !Path::new(parent).exists()
        {
            {
                std::fs::create_dir_all(parent).map_err(|e| {
                    StoreError::Database(format!("cannot create the database folder {}: {e}", parent.display()))
                })?;
            }
        }
        let in_use = hold_in_use_lock(options.get_filename()).await?;
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: an acknowledged write survives a power loss, not only a crash.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // Keeps the planner's statistics fresh as tables grow.
            .optimize_on_close(true, None)
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-65536");
        // No ping before each acquire: a local file cannot drop a connection, and the
        // ping is a round trip to SQLite's worker thread on every request.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await
            .map_err(db_err)?;
        // sqlx takes no lock on SQLite: processes starting together (a server and a
        // `custodian migrate`, say) take turns through a lock file beside the database.
        let lock_path = format!("{}.migrate-lock", options.get_filename().display());
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StoreError::Database(format!("cannot open {lock_path}: {e}")))?;
        let lock = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
            .await
            .map_err(|e| StoreError::Database(format!("waiting for {lock_path}: {e}")))?
            .map_err(|e| StoreError::Database(format!("cannot lock {lock_path}: {e}")))?;
        let applied = applied_migrations(&write).await?;
        schema::check(&MIGRATOR, &applied, mode == MigrateMode::Verify)?;
        if mode == MigrateMode::Apply {
            MIGRATOR.run(&write).await.map_err(|e| StoreError::Database(format!("migration failed: {e}")))?;
        }
        drop(lock);
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await
            .map_err(db_err)?;
        let db = Db::Sqlite { read, write };
        let writer = group_commit::Writer::start(db.clone())?;
        Ok(SqlStore { db, sqlite: Some(Local::new(writer, in_use)) })
    }
}

/// Takes the shared in-use lock of a database file, waiting while a restore holds it
/// exclusively. None for an in-memory database.
async fn hold_in_use_lock(db: &Path) -> Result<Option<std::fs::File>, StoreError> {
    if db.as_os_str().is_empty() || db.as_os_str() == ":memory:" {
        return Ok(None);
    }
    let lock_path = backup::in_use_lock_path(db);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| StoreError::Database(format!("cannot open {}: {e}", lock_path.display())))?;
    match lock.try_lock_shared() {
        Ok(()) => return Ok(Some(lock)),
        Err(std::fs::TryLockError::WouldBlock) => {
            tracing::warn!(lock = %lock_path.display(), "the database is being restored; waiting until it is done");
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(StoreError::Database(format!("cannot lock {}: {e}", lock_path.display())));
        }
    }
    let shown = lock_path.display().to_string();
    tokio::task::spawn_blocking(move || lock.lock_shared().map(|()| lock))
        .await
        .map_err(|e| StoreError::Database(format!("waiting for {shown}: {e}")))?
        .map(Some)
        .map_err(|e| StoreError::Database(format!("cannot lock {shown}: {e}")))
}

/// The migrations applied so far; none when the bookkeeping table does not exist yet.
async fn applied_migrations(pool: &SqlitePool) -> StoreResult<Vec<sqlx::migrate::AppliedMigration>> {
    let mut conn = pool.acquire().await.map_err(db_err)?;
    let exists: Option<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'")
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
    if exists.is_none() {
        return Ok(Vec::new());
    }
    conn.list_applied_migrations().await.map_err(|e| StoreError::Database(format!("reading the schema version: {e}")))
}
