//! Which migrations a database has, against those this binary carries: a database
//! behind the binary is migrated (or, with `--no-auto-migrate`, refused with the command
//! to run); a database ahead of it is always refused, since this binary would misread it.

use std::collections::HashMap;

use custodian_domain::StoreError;
use sqlx::migrate::{AppliedMigration, Migrator};

/// Whether opening a database applies pending migrations or only checks that none are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MigrateMode {
    /// Apply pending migrations (under the migrator's lock, so that several instances
    /// starting at once are safe).
    #[default]
    Apply,
    /// Refuse to start unless the schema is exactly this binary's.
    Verify,
}

/// Refuses a schema newer than the binary, or altered since it was applied; with
/// `pending_is_error`, refuses one that lacks migrations too.
pub fn check(migrator: &Migrator, applied: &[AppliedMigration], pending_is_error: bool) -> Result<(), StoreError> {
    let known: HashMap<i64, &sqlx::migrate::Migration> = migrator.iter().map(|m| (m.version, m)).collect();
    if let Some(newer) = applied.iter().find(|a| !known.contains_key(&a.version)) {
        return Err(StoreError::Database(format!(
            "the database schema is newer than this binary (custodian {}): it has migration {}, which this binary \
             does not know. Run the Custodian version that migrated it, or a newer one.",
            env!("CARGO_PKG_VERSION"),
            newer.version
        )));
    }
    if let Some(altered) = applied.iter().find(|a| known.get(&a.version).is_some_and(|m| m.checksum != a.checksum)) {
        return Err(StoreError::Database(format!(
            "migration {} in the database differs from the one in this binary; the schema was altered by hand or \
             by another build",
            altered.version
        )));
    }
    let pending: Vec<String> = migrator
        .iter()
        .filter(|m| !applied.iter().any(|a| a.version == m.version))
        .map(|m| format!("{} {}", m.version, m.description))
        .collect();
    if pending_is_error && !pending.is_empty() {
        return Err(StoreError::Database(format!(
            "the database schema is older than this binary: {} migration(s) pending ({}). Run `custodian migrate` \
             with the same --database, then start again (or start without --no-auto-migrate).",
            pending.len(),
            pending.join(", ")
        )));
    }
    Ok(())
}
