//! The storage layer: the `custodian_domain::Store` trait implemented for SQLite (the
//! embedded default) and PostgreSQL (several instances on one database). SQL is built with bound values only.

mod access;
mod common;
mod db;
mod host_batch;
mod host_sql;
mod hosts;
pub mod index;
mod labels;
mod linking;
mod outbox;
pub mod postgres;
mod requests;
mod rows;
pub mod schema;
mod scim;
pub mod sql_filter;
pub mod sqlite;
mod store;
mod time;
mod web;
mod webhooks;

use std::sync::Arc;

use custodian_domain::{Store, StoreError};

pub use postgres::PgStore;
pub use schema::MigrateMode;
pub use sqlite::SqliteStore;
pub use store::SqlStore;

/// How to open a database.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    pub migrate: MigrateMode,
    /// The most connections to PostgreSQL this process opens (SQLite has its own fixed pools).
    pub max_connections: Option<u32>,
}

/// Opens the database a URL names: `sqlite:` (created when missing) or `postgres:` /
/// `postgresql:`. Pending migrations are applied or refused as `options` says.
pub async fn open(url: &str, options: OpenOptions) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url, options.migrate).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::open(url, options.migrate, options.max_connections).await?))
    } else {
        Err(StoreError::Database(format!(
            "unsupported database URL scheme in '{}': expected sqlite:// or postgres://",
            redact_url(url)
        )))
    }
}

/// A database URL with any password replaced, fit for logs and error messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_in_database_urls() {
        assert_eq!(redact_url("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("sqlite://data/c.db"), "sqlite://data/c.db");
    }
}
