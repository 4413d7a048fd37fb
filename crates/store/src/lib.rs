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

/// The file a `sqlite:` URL names, made absolute against the working directory.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    use std::str::FromStr;
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url).ok()?;
    std::path::absolute(options.get_filename()).ok()
}

/// How a command names its database to the operator: a SQLite URL with its absolute
/// path (a relative one depends on the working directory), any password redacted.
pub fn describe_url(url: &str) -> String {
    match url.starts_with("sqlite:").then(|| sqlite_file(url)).flatten() {
        Some(file) => format!("sqlite://{}", file.display()),
        None => redact_url(url),
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
