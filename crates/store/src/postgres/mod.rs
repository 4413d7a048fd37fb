//! The PostgreSQL store: several Custodian instances on one database. Every write is
//! one READ COMMITTED transaction that locks what it changes: the resource row for SCIM
//! writes (so concurrent PATCHes of one group apply one after the other, and `If-Match`
//! lets exactly one writer of a version win), the host row for host changes, and an
//! advisory lock per identity (`locks.rs`) wherever the mapping rules match hosts to
//! users, so that a host and its user arriving at once on two instances still meet.
//! A transaction the database aborts for a deadlock or a serialization failure is
//! retried whole (`retry`).

pub(crate) mod locks;
pub(crate) mod tx;

use std::str::FromStr;
use std::time::Duration;

use custodian_domain::{StoreError, StoreResult};
use sqlx::migrate::{Migrate, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::db::Db;
use crate::error::db_err;
use crate::schema::{self, MigrateMode};
use crate::store::SqlStore;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections each instance opens at most, unless told otherwise.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;

/// Opens the PostgreSQL store (`PgStore::open`).
pub struct PgStore;

impl PgStore {
    /// Connects and, in `Apply` mode, migrates (under the migrator's advisory lock, so
    /// that instances starting together are safe); in `Verify` mode, checks the schema.
    pub async fn open(
        url: &str,
        mode: MigrateMode,
        max_connections: Option<u32>,
        existing_only: bool,
    ) -> Result<SqlStore, StoreError> {
        let mut options = PgConnectOptions::from_str(url)
            .map_err(|e| {
                StoreError::Database(format!("invalid PostgreSQL URL '{}': {e}", crate::url::redact_url(url)))
            })?
            // Short queries only: JIT compiling one (triggered by the planner's guess at a
            // recursive query's size) costs far more than running it.
            .options([("jit", "off")]);
        // `pg_stat_activity` names each session by its application: `custodian` unless the
        // URL's `application_name` (or PGAPPNAME) names the instance, so that an operator
        // or a test can tell one instance's sessions from another's.
        if options.get_application_name().is_none() {
            options = options.application_name("custodian");
        }
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Database(format!("cannot connect to PostgreSQL: {e}")))?;
        let applied = applied_migrations(&pool).await?;
        if existing_only && applied.is_empty() {
            return Err(StoreError::Database(format!(
                "the PostgreSQL database {} has no Custodian schema yet (`custodian migrate` or `custodian serve` \
                 creates it)",
                crate::url::redact_url(url)
            )));
        }
        schema::check(&MIGRATOR, &applied, mode == MigrateMode::Verify)?;
        if mode == MigrateMode::Apply {
            MIGRATOR.run(&pool).await.map_err(|e| StoreError::Database(format!("migration failed: {e}")))?;
        }
        Ok(SqlStore { db: Db::Postgres(pool), sqlite: None })
    }
}

/// The migrations applied so far; none when the bookkeeping table does not exist yet.
async fn applied_migrations(pool: &PgPool) -> StoreResult<Vec<sqlx::migrate::AppliedMigration>> {
    let mut conn = pool.acquire().await.map_err(db_err)?;
    let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text")
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)?;
    if exists.is_none() {
        return Ok(Vec::new());
    }
    conn.list_applied_migrations().await.map_err(|e| StoreError::Database(format!("reading the schema version: {e}")))
}
