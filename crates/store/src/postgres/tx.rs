//! PostgreSQL transactions: begun so that a dropped request cannot leave one half-open,
//! and run again while the database aborts them for concurrent ones.

use std::future::Future;
use std::time::Duration;

use custodian_domain::{StoreError, StoreResult};
use sqlx::postgres::PgPool;

/// How many times a transaction aborted for a concurrent one is run again.
const RETRIES: u32 = 8;

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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use sqlx::postgres::PgPoolOptions;

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
