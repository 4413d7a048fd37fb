//! The storage layer: the `custodian_domain::Store` trait implemented for SQLite (the
//! embedded default) and PostgreSQL (several instances on one database). SQL is built with bound values only.

mod access;
mod automatic;
mod common;
mod connections;
mod db;
mod error;
mod host_batch;
mod host_sql;
mod hosts;
pub mod index;
mod labels;
mod linking;
mod outbox;
mod overview;
pub mod postgres;
mod reindex;
mod requests;
mod rows;
pub mod schema;
mod scim;
pub mod sql_filter;
pub mod sqlite;
mod sso;
mod store;
mod sync;
mod time;
mod url;
mod web;
mod webhooks;
mod writes;

use std::sync::Arc;

use custodian_domain::{Store, StoreError};

pub use postgres::PgStore;
pub use schema::MigrateMode;
pub use sqlite::SqliteStore;
pub use store::SqlStore;
pub use url::{describe_url, redact_url, sqlite_file};

/// How to open a database.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    pub migrate: MigrateMode,
    /// The most connections to PostgreSQL this process opens (SQLite has its own fixed pools).
    pub max_connections: Option<u32>,
    /// Refuse a database that does not exist yet (a SQLite file that is missing, a
    /// PostgreSQL database without Custodian's schema) instead of creating it: every
    /// command but `serve` and `migrate`, so that a mistyped path or another working
    /// directory never gets a new, empty database.
    pub existing_only: bool,
}

/// Opens the database a URL names: `sqlite:` (created when missing) or `postgres:` /
/// `postgresql:`. Pending migrations are applied or refused as `options` says.
pub async fn open(url: &str, options: OpenOptions) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        if options.existing_only
            && let Some(file) = sqlite_file(url)
            && !file.exists()
        {
            return Err(StoreError::Database(format!("there is no database at {}", file.display())));
        }
        Ok(Arc::new(SqliteStore::open(url, options.migrate).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::open(url, options.migrate, options.max_connections, options.existing_only).await?))
    } else {
        Err(StoreError::Database(format!(
            "unsupported database URL scheme in '{}': expected sqlite:// or postgres://",
            redact_url(url)
        )))
    }
}
