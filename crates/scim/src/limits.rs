//! The longest text Custodian keeps, in bytes of UTF-8, on every surface. SCIM attributes
//! carry one of these in `schema::AttributeDef::max_bytes`; the JSON API's fields use
//! them too (through `custodian_domain::limits`), so that a value cannot be taken on one
//! surface and refused on the other. A value over its limit is refused whole (400), never
//! cut short.
//!
//! Bytes, not characters: bytes are what the database and its indexes hold, and a limit
//! in characters would let 4-byte characters through at four times the size.

/// Names and identifiers: `userName`, `displayName`, `externalId`, emails, phone numbers,
/// member and manager ids, the enterprise attributes; a host's uuid, serial, hostname and
/// other text fields; a device-mapping email; a label's name and criteria values.
pub const NAME_MAX_BYTES: usize = 1024;

/// Longer SCIM values: addresses, URLs and certificates. Every SCIM value is indexed for
/// filters, and a PostgreSQL index entry holds at most 2,704 bytes: 2 KiB leaves room for
/// the rest of the entry.
pub const LONG_VALUE_MAX_BYTES: usize = 2 * 1024;

/// Free text that is stored but never indexed: a label's description.
pub const TEXT_MAX_BYTES: usize = 64 * 1024;

/// The reason given for a value over `max` bytes (never the value itself).
pub fn over_limit_reason(max: usize) -> String {
    format!("at most {max} bytes")
}

// Each limit must stay below what a PostgreSQL index entry holds (names are indexed
// too, normalised; see `resource::canon_scalar`).
const _: () = assert!(NAME_MAX_BYTES < LONG_VALUE_MAX_BYTES && LONG_VALUE_MAX_BYTES <= 2600);
