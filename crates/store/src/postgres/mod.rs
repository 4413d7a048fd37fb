//! The PostgreSQL store: several Custodian instances on one database. Every write is
//! one READ COMMITTED transaction that locks what it changes: the resource row for SCIM
//! writes (so concurrent PATCHes of one group apply one after the other, and `If-Match`
//! lets exactly one writer of a version win), the host row for host changes, and an
//! advisory lock per identity (`locks.rs`) wherever the mapping rules match hosts to
//! users, so that a host and its user arriving at once on two instances still meet.
//! A transaction the database aborts for a deadlock or a serialization failure is
//! retried whole (`retry`).

pub(crate) mod locks;

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use custodian_domain::{StoreError, StoreResult};
use sqlx::migrate::{Migrate, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::db::{Db, db_err};
use crate::schema::{self, MigrateMode};
use crate::store::SqlStore;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections each instance opens at most, unless told otherwise.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;

/// How many times a transaction aborted for a concurrent one is run again.
const RETRIES: u32 = 8;

/// Opens the PostgreSQL store (`PgStore::open`).
pub struct PgStore;

/// The `BEGIN` of reads that must see one snapshot.
pub(crate) const READ_ONLY_SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

/// Begins a transaction (with `statement` in place of `BEGIN` when given) in a task of
/// its own, so that it completes even when the request awaiting it is dropped. sqlx
/// 0.8.6 is not cancel-safe there: an outermost `BEGIN` dropped in flight leaves the
/// connection inside that transaction (its rollback guard acts only at depth > 0), and
/// the pool hands it out again, so a later write fails ("cannot execute INSERT in a
/// read-only transaction"). A transaction begun for a caller that is gone is dropped
/// whole, which rolls it back.
pub(crate) async fn begin(
    pool: &PgPool,
    statement: Option<&'static str>,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    let pool = pool.clone();
    tokio::spawn(async move {
        match statement {
            Some(statement) => pool.begin_with(statement).await,
            None => pool.begin().await,
        }
    })
    .await
    .map_err(|e| sqlx::Error::Protocol(format!("the task beginning a transaction ended: {e}")))?
}

/// Runs a write again while the database aborts it for a concurrent one, with a short,
/// growing, jittered pause between attempts.
pub(crate) async fn retry<T, F, Fut>(mut op: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = StoreResult<T>>,
{
    let mut attempt = 0;
    loop {
        match op().await {
            Err(StoreError::Contention(msg)) if attempt < RETRIES => {
                attempt += 1;
                let jitter = u64::from(
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos())
                        % 5,
                );
                tracing::debug!(attempt, reason = %msg, "retrying a transaction aborted for a concurrent one");
                tokio::time::sleep(Duration::from_millis((2u64 << attempt.min(6)) + jitter)).await;
            }
            other => return other,
        }
    }
}

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
            .map_err(|e| StoreError::Database(format!("invalid PostgreSQL URL '{}': {e}", crate::redact_url(url))))?
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
                crate::redact_url(url)
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// A request dropped while its transaction begins must not leave the pooled
    /// connection inside that (read-only) transaction. The `BEGIN` is followed by a
    /// 200 ms sleep, so that the caller is surely gone while it is in flight. Needs
    /// CUSTODIAN_TEST_POSTGRES_URL.
    #[tokio::test]
    async fn a_begin_dropped_in_flight_leaves_no_transaction_behind() {
        const SLOW_BEGIN: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT pg_sleep(0.2)";
        let Ok(url) = std::env::var("CUSTODIAN_TEST_POSTGRES_URL") else { return };
        let pool = PgPoolOptions::new().max_connections(1).connect(&url).await.unwrap();
        let table = format!("cancel_probe_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE TABLE {table} (x int)")).execute(&pool).await.unwrap();
        let dropped = tokio::time::timeout(Duration::from_millis(50), begin(&pool, Some(SLOW_BEGIN))).await;
        assert!(dropped.is_err(), "the begin was meant to be dropped in flight");
        // The pool's one connection again: outside any transaction, so the write is kept.
        let inserted = sqlx::query(&format!("INSERT INTO {table} VALUES (1)")).execute(&pool).await;
        let rows = sqlx::query_scalar::<_, i64>(&format!("SELECT count(*) FROM {table}")).fetch_one(&pool).await;
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url).await.unwrap();
        sqlx::query(&format!("DROP TABLE {table}")).execute(&mut conn).await.unwrap();
        inserted.expect("the pooled connection was left inside the read-only transaction");
        assert_eq!(rows.unwrap(), 1);
    }
}
