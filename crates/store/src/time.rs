//! Timestamps are stored as fixed-width UTC text, so that text order is time order on
//! every backend and matches the filter keys of `custodian_scim::filter::value_key`.

use chrono::{DateTime, NaiveDateTime, Utc};
use custodian_domain::StoreError;

const FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

pub fn to_text(t: DateTime<Utc>) -> String {
    t.format(FORMAT).to_string()
}

pub fn from_text(s: &str) -> Result<DateTime<Utc>, StoreError> {
    NaiveDateTime::parse_from_str(s, FORMAT)
        .map(|n| n.and_utc())
        .map_err(|e| StoreError::Database(format!("bad timestamp '{s}' in database: {e}")))
}

/// Now, truncated to the stored precision so that what is returned equals what is read back.
pub fn now() -> DateTime<Utc> {
    let n = Utc::now();
    from_text(&to_text(n)).unwrap_or(n)
}
