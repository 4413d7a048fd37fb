//! How a database error becomes a store error: below everything else in the crate, so
//! that the SQL layer and both backends can map errors without depending on each other.

use custodian_domain::StoreError;

/// A database error as the store reports it. On PostgreSQL, deadlocks and serialization
/// failures are the database asking for a retry, and text with a NUL character (which
/// it cannot store) is the client's error.
pub fn db_err(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(d) = &e
        && d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some()
    {
        match d.code().as_deref() {
            Some("40001" | "40P01") => return StoreError::Contention(d.message().to_string()),
            Some("22021") => {
                return custodian_scim::ScimError::invalid_value("text must not contain NUL (U+0000) characters")
                    .into();
            }
            _ => {}
        }
    }
    StoreError::Database(e.to_string())
}

pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}
