//! The checks behind Custodian's fuzz targets (`fuzz/`, run with `cargo fuzz`).
//!
//! Each `pub fn` takes raw bytes, feeds them to a parser of client input and asserts
//! the parser's contract, not only the absence of a panic: errors are 4xx with the
//! right kind, whatever parses translates, renders and re-parses consistently. A
//! broken invariant is an `assert!`, which the fuzzer reports as a crash. The same
//! functions replay the committed corpora and regressions in `tests/replay.rs`, so an
//! input that once broke a target is checked by every `cargo test`.

mod filter;
mod host;
mod patch;
mod resource;
mod samples;

pub use filter::check_filter;
pub use host::check_host_import;
pub use patch::check_patch;
pub use resource::check_resource;

/// The largest SCIM body the server reads (`MAX_PAYLOAD_BYTES`); bigger inputs never
/// reach the parsers there, so they are not checked here either.
pub const MAX_INPUT: usize = custodian::scim::MAX_PAYLOAD_BYTES;

/// A check: raw bytes in, a panic on a broken invariant.
pub type Check = fn(&[u8]);

/// The targets, by the name of their `fuzz/` binary and corpus directory.
pub const TARGETS: [(&str, Check); 4] = [
    ("filter", check_filter),
    ("patch", check_patch),
    ("resource", check_resource),
    ("host_import", check_host_import),
];

use custodian_scim::{ScimError, ScimType};

/// A SCIM error a client can cause: a 4xx with a `scimType` where RFC 7644 wants one,
/// and a detail that stays short (it quotes at most a snippet of the input).
fn assert_client_error(e: &ScimError, what: &str) {
    assert!((400..500).contains(&e.status), "{what}: a client input gave status {}: {e}", e.status);
    if e.status == 400 {
        assert!(e.scim_type.is_some(), "{what}: a 400 without a scimType: {e}");
    }
    assert!(e.detail.len() <= 1024, "{what}: an error detail of {} bytes", e.detail.len());
}

fn assert_invalid_filter(e: &ScimError, what: &str) {
    assert_client_error(e, what);
    assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{what}: {e}");
    assert_eq!(e.status, 400, "{what}: {e}");
}
