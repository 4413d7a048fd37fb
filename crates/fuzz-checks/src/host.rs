//! `host_import`: the files `custodian hosts import` reads (CSV, JSON, JSON Lines) and
//! the body of `POST /api/v1/fleet/hosts`, all validated by the API's `parse_host`.

use std::collections::HashSet;

use custodian::api::extract::Validation;
use custodian::api::hosts::parse_host;
use custodian::import::{Format, check, read_records};
use custodian_domain::hosts::HostInput;
use serde_json::Value;

/// The API's limit on every host text field and mapping email, in bytes of UTF-8.
use custodian_domain::limits::NAME_MAX_BYTES;

/// What the store is promised of an accepted host.
fn assert_valid_host(h: &HostInput) {
    assert!(!h.uuid.is_empty(), "an accepted host without a uuid");
    for field in
        [&h.uuid, &h.hardware_serial, &h.hostname, &h.computer_name, &h.platform, &h.os_version, &h.hardware_model]
    {
        assert_eq!(field.trim(), field, "an accepted field is not trimmed: {field:?}");
        assert!(!field.contains('\0'), "an accepted field holds NUL: {field:?}");
        assert!(field.len() <= NAME_MAX_BYTES, "an accepted field is too long");
    }
    for m in h.device_mapping.iter().flatten() {
        assert!(!m.email.is_empty(), "an accepted mapping without an email");
        assert!(m.email.len() <= NAME_MAX_BYTES, "an accepted email is too long");
        assert!(!m.email.contains(char::is_whitespace) && !m.email.contains('\0'), "email {:?}", m.email);
    }
}

fn check_file(bytes: &[u8], format: Format) {
    let Ok(records) = read_records(bytes, format) else {
        return;
    };
    let read = records.len();
    let mut last = 0;
    for r in &records {
        assert!(r.line >= 1, "a record on line 0 ({format:?})");
        assert!(r.line >= last, "records out of line order ({format:?}): {} after {last}", r.line);
        last = r.line;
    }
    let lines: Vec<u64> = records.iter().map(|r| r.line).collect();
    let checked = check(records);
    // Every record is accounted for exactly once.
    assert_eq!(checked.accepted.len() + checked.rejected.len(), read, "records lost or doubled ({format:?})");
    let mut uuids = HashSet::new();
    for (line, host) in &checked.accepted {
        assert!(lines.contains(line), "an accepted host on a line no record had");
        assert_valid_host(host);
        assert!(uuids.insert(host.uuid.as_str()), "uuid {:?} accepted twice", host.uuid);
    }
    for r in &checked.rejected {
        assert!(!r.errors.is_empty(), "a rejection without a reason, line {}", r.line);
        assert!(r.errors.iter().all(|(field, _)| !field.is_empty()), "an unnamed field: {r}");
        let _ = r.to_string();
    }
}

/// `POST /api/v1/fleet/hosts`: a host is returned exactly when nothing failed.
fn check_api_body(bytes: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
        return;
    };
    let mut v = Validation::default();
    let parsed = parse_host(&value, "", &mut v);
    assert_eq!(parsed.is_some(), v.is_ok(), "parse_host and its errors disagree: {:?}", v.errors());
    if let Some(host) = &parsed {
        assert_valid_host(host);
    }
    assert!(v.errors().iter().all(|(field, _)| !field.is_empty()), "an unnamed field: {:?}", v.errors());
}

/// Fuzz target `host_import`: the first byte picks the format (`c` CSV, `j` JSON,
/// `l` JSON Lines, anything else the API body), the rest is the file or body.
pub fn check_host_import(data: &[u8]) {
    if data.len() > crate::MAX_INPUT {
        return;
    }
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector {
        b'c' => check_file(rest, Format::Csv),
        b'j' => check_file(rest, Format::Json),
        b'l' => check_file(rest, Format::JsonLines),
        _ => check_api_body(rest),
    }
}
