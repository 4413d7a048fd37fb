//! Advisory locks on identities. The mapping rules read users to link a host and read
//! hosts to link a user; on several instances, a host and its user written at the same
//! moment could each miss the other. Every transaction that matches an identity
//! therefore first takes that identity's lock, so one of the two runs after the other
//! and sees it. Identities are hashed into a fixed number of keys, which bounds the locks
//! one large import holds; two identities sharing a key merely wait for each other.

use custodian_domain::StoreResult;

use crate::error::db_err;

/// The first half of every Custodian advisory-lock key ("CUST").
const LOCK_SPACE: i32 = 0x4355_5354;
const BUCKETS: u32 = 1024;

fn bucket(identity: &str) -> i32 {
    // FNV-1a: stable across processes and releases, unlike std's hasher.
    let mut hash: u32 = 0x811c_9dc5;
    for byte in identity.as_bytes() {
        hash = (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193);
    }
    (hash % BUCKETS) as i32
}

/// Takes the locks of these identities until the transaction ends, in key order (so
/// that two transactions cannot each wait for the other).
pub(crate) async fn lock_identity_keys(conn: &mut sqlx::PgConnection, identities: &[String]) -> StoreResult<()> {
    let mut keys: Vec<i32> = identities.iter().map(|i| bucket(i)).collect();
    keys.sort_unstable();
    keys.dedup();
    if keys.is_empty() {
        return Ok(());
    }
    sqlx::query("SELECT pg_advisory_xact_lock($1, k) FROM (SELECT unnest($2::int4[]) AS k ORDER BY 1) AS sorted")
        .bind(LOCK_SPACE)
        .bind(&keys)
        .execute(conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_stable_and_bounded() {
        assert_eq!(bucket("ada@example.com"), bucket("ada@example.com"));
        assert!((0..BUCKETS as i32).contains(&bucket("grace@example.com")));
        let distinct: std::collections::HashSet<i32> = (0..200).map(|i| bucket(&format!("u{i}@x"))).collect();
        assert!(distinct.len() > 150, "FNV spreads names over the buckets");
    }
}
