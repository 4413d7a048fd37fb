//! The storage layer: the `custodian_domain::Store` trait implemented for SQLite (the
//! embedded default) and, later, PostgreSQL. SQL is built with bound values only.

pub mod index;
pub mod sql_filter;
pub mod sqlite;
mod time;

use std::sync::Arc;

use custodian_domain::{Store, StoreError};

pub use sqlite::SqliteStore;

/// Opens the database a URL names, creating and migrating it as needed.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Err(StoreError::Database("PostgreSQL support is not built yet; use a sqlite:// URL".into()))
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
