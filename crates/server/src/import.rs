//! `custodian hosts import`: reads a CSV, JSON or JSON Lines file of hosts into the JSON
//! objects `POST /api/v1/fleet/hosts` takes, and validates each with the API's own
//! [`parse_host`], so a file and a request are held to the same rules.
//!
//! Everything here is pure: the command line reads the file, calls [`read_records`] and
//! [`check`], and sends the accepted hosts to the store in batches.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use custodian_domain::hosts::HostInput;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::api::extract::Validation;
use crate::api::hosts::parse_host;

/// The kinds of file `custodian hosts import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A header row, then one host per row.
    Csv,
    /// An array of hosts, `{"hosts": [...]}`, or host objects one after the other.
    Json,
    /// One host object per line.
    #[value(name = "jsonl", alias = "ndjson")]
    JsonLines,
}

impl Format {
    /// The format a file's extension names (`.csv`, `.json`, `.jsonl`, `.ndjson`).
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(Format::Csv),
            "json" => Some(Format::Json),
            "jsonl" | "ndjson" => Some(Format::JsonLines),
            _ => None,
        }
    }
}

/// What makes a whole file unreadable: nothing of it is imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FileError(pub String);

/// One host of a file, before validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The 1-based line of the file where the host starts.
    pub line: u64,
    /// The host as the API's JSON object, or the field and reason why the row could not
    /// be read at all.
    pub host: Result<Value, (String, String)>,
    /// CSV only: the columns each `device_mapping[i]` entry came from, to name them in
    /// errors instead of the JSON path the row was converted to.
    mapping_columns: Vec<MappingColumns>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct MappingColumns {
    email: &'static str,
    source: &'static str,
}

/// Reads a file's hosts. Fails only when the file as a whole cannot be read (not UTF-8,
/// not JSON, a CSV header with unknown columns); a bad row is a [`Record`] whose error
/// [`check`] reports.
pub fn read_records(bytes: &[u8], format: Format) -> Result<Vec<Record>, FileError> {
    let bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
    match format {
        Format::Csv => csv_records(bytes),
        Format::Json => json_records(utf8(bytes)?),
        Format::JsonLines => Ok(json_lines_records(utf8(bytes)?)),
    }
}

fn utf8(bytes: &[u8]) -> Result<&str, FileError> {
    std::str::from_utf8(bytes).map_err(|e| FileError(format!("the file is not UTF-8 text: {e}")))
}

/// The host fields a CSV may carry, named as in the API.
pub const HOST_COLUMNS: [&str; 8] =
    ["uuid", "hardware_serial", "hostname", "computer_name", "platform", "os_version", "hardware_model", "seen_time"];
/// Mapping columns: each holds the emails of that source, separated by `;`.
pub const SOURCE_COLUMNS: [&str; 4] = ["mdm_idp_accounts", "idp", "custom", "google_chrome_profiles"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Field(&'static str),
    Source(&'static str),
    /// The generic pair's emails (`;`-separated) ...
    Email,
    /// ... and their source.
    GenericSource,
}

fn column(name: &str) -> Option<Column> {
    if let Some(field) = HOST_COLUMNS.iter().find(|c| **c == name) {
        return Some(Column::Field(field));
    }
    if let Some(source) = SOURCE_COLUMNS.iter().find(|c| **c == name) {
        return Some(Column::Source(source));
    }
    match name {
        "email" => Some(Column::Email),
        "source" => Some(Column::GenericSource),
        _ => None,
    }
}

/// Reads the header row: every column must be known, once; `uuid` is required, and
/// `email` and `source` go together.
fn csv_header(header: &csv::ByteRecord) -> Result<Vec<Column>, FileError> {
    if header.iter().all(|h| h.iter().all(u8::is_ascii_whitespace)) {
        return Err(FileError("the CSV file has no header row (expected uuid, hostname, ...)".into()));
    }
    let mut columns = Vec::with_capacity(header.len());
    let mut unknown = Vec::new();
    for (i, raw) in header.iter().enumerate() {
        let name = std::str::from_utf8(raw)
            .map_err(|_| FileError(format!("the CSV header's column {} is not UTF-8 text", i + 1)))?
            .trim()
            .to_ascii_lowercase();
        match column(&name) {
            Some(c) if columns.contains(&c) => return Err(FileError(format!("the CSV header has '{name}' twice"))),
            Some(c) => columns.push(c),
            None if name.is_empty() => unknown.push(format!("(column {} has no name)", i + 1)),
            None => unknown.push(format!("'{name}'")),
        }
    }
    if !unknown.is_empty() {
        return Err(FileError(format!(
            "the CSV header has unknown columns: {}; known columns: {}, {}, email and source",
            unknown.join(", "),
            HOST_COLUMNS.join(", "),
            SOURCE_COLUMNS.join(", ")
        )));
    }
    if !columns.contains(&Column::Field("uuid")) {
        return Err(FileError("the CSV header has no uuid column".into()));
    }
    match (columns.contains(&Column::Email), columns.contains(&Column::GenericSource)) {
        (true, false) => Err(FileError("the CSV header has an email column but no source column".into())),
        (false, true) => Err(FileError("the CSV header has a source column but no email column".into())),
        _ => Ok(columns),
    }
}

fn csv_records(bytes: &[u8]) -> Result<Vec<Record>, FileError> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(bytes);
    let header = reader.byte_headers().map_err(|e| FileError(format!("cannot read the CSV header: {e}")))?.clone();
    let columns = csv_header(&header)?;
    let mut records = Vec::new();
    for row in reader.byte_records() {
        let row = row.map_err(|e| FileError(format!("cannot read the CSV file: {e}")))?;
        let line = row.position().map_or(0, csv::Position::line);
        records.push(csv_row(&columns, &row, line));
    }
    Ok(records)
}

fn emails(cell: &str) -> impl Iterator<Item = &str> {
    cell.split(';').map(str::trim).filter(|e| !e.is_empty())
}

fn mapping(email: Option<&str>, source: Option<&str>) -> Value {
    let mut m = Map::new();
    if let Some(email) = email {
        m.insert("email".into(), Value::String(email.into()));
    }
    if let Some(source) = source {
        m.insert("source".into(), Value::String(source.into()));
    }
    Value::Object(m)
}

/// Converts a CSV row to the API's host object. Empty cells are left out; when the
/// header has mapping columns, the row's `device_mapping` lists their emails (possibly
/// none: the host's emails are replaced, as the API does).
fn csv_row(columns: &[Column], row: &csv::ByteRecord, line: u64) -> Record {
    let fail = |field: &str, reason: String| Record {
        line,
        host: Err((field.to_string(), reason)),
        mapping_columns: Vec::new(),
    };
    if row.len() != columns.len() {
        return fail("row", format!("has {} fields, the header has {}", row.len(), columns.len()));
    }
    let mut host = Map::new();
    let mut mappings = Vec::new();
    let mut mapping_columns = Vec::new();
    let (mut generic_email, mut generic_source) = ("", "");
    for (column, raw) in columns.iter().zip(row.iter()) {
        let Ok(cell) = std::str::from_utf8(raw) else {
            let name = match column {
                Column::Field(name) | Column::Source(name) => name,
                Column::Email => "email",
                Column::GenericSource => "source",
            };
            return fail(name, "is not UTF-8 text".into());
        };
        let cell = cell.trim();
        match *column {
            Column::Field(name) if !cell.is_empty() => {
                host.insert(name.into(), Value::String(cell.into()));
            }
            Column::Field(_) => {}
            Column::Source(source) => {
                for email in emails(cell) {
                    mappings.push(mapping(Some(email), Some(source)));
                    mapping_columns.push(MappingColumns { email: source, source });
                }
            }
            Column::Email => generic_email = cell,
            Column::GenericSource => generic_source = cell,
        }
    }
    if !generic_email.is_empty() || !generic_source.is_empty() {
        let source = Some(generic_source).filter(|s| !s.is_empty());
        let mut listed: Vec<Option<&str>> = emails(generic_email).map(Some).collect();
        if listed.is_empty() {
            listed.push(None);
        }
        for email in listed {
            mappings.push(mapping(email, source));
            mapping_columns.push(MappingColumns { email: "email", source: "source" });
        }
    }
    if columns.iter().any(|c| !matches!(c, Column::Field(_))) {
        host.insert("device_mapping".into(), Value::Array(mappings));
    }
    Record { line, host: Ok(Value::Object(host)), mapping_columns }
}

/// Byte offsets of a text's line ends, to turn offsets into 1-based line numbers.
struct Lines(Vec<usize>);

impl Lines {
    fn of(text: &str) -> Self {
        Lines(text.bytes().enumerate().filter(|(_, b)| *b == b'\n').map(|(i, _)| i).collect())
    }
    fn line(&self, offset: usize) -> u64 {
        self.0.partition_point(|nl| *nl < offset) as u64 + 1
    }
}

/// The line where a raw JSON value (borrowed from `text`) starts.
fn line_of(text: &str, lines: &Lines, raw: &RawValue) -> u64 {
    lines.line((raw.get().as_ptr() as usize).saturating_sub(text.as_ptr() as usize))
}

#[derive(serde::Deserialize)]
struct Wrapped<'a> {
    #[serde(borrow)]
    hosts: Option<&'a RawValue>,
}

/// A JSON file: an array of hosts, `{"hosts": [...]}`, or host objects one after the
/// other (JSON Lines saved as `.json`). Each host keeps the line where it starts.
fn json_records(text: &str) -> Result<Vec<Record>, FileError> {
    let not_json = |e: serde_json::Error| FileError(format!("not valid JSON: {e}"));
    let mut tops = Vec::new();
    for value in serde_json::Deserializer::from_str(text).into_iter::<&RawValue>() {
        tops.push(value.map_err(not_json)?);
    }
    let items: Vec<&RawValue> = match tops.as_slice() {
        [] => return Err(FileError("the file holds no JSON: expected an array of hosts".into())),
        [top] if top.get().starts_with('[') => serde_json::from_str(top.get()).map_err(not_json)?,
        [top] if top.get().starts_with('{') => match serde_json::from_str::<Wrapped<'_>>(top.get()) {
            Ok(Wrapped { hosts: Some(hosts) }) => serde_json::from_str(hosts.get())
                .map_err(|_| FileError("\"hosts\" must be an array of host objects".into()))?,
            _ => tops,
        },
        [_] => {
            return Err(FileError("expected an array of hosts, {\"hosts\": [...]} or one host object per line".into()));
        }
        _ => tops,
    };
    let lines = Lines::of(text);
    items
        .into_iter()
        .map(|raw| {
            Ok(Record {
                line: line_of(text, &lines, raw),
                host: Ok(serde_json::from_str(raw.get()).map_err(not_json)?),
                mapping_columns: Vec::new(),
            })
        })
        .collect()
}

/// JSON Lines: one host object per line; blank lines are skipped and a line that is not
/// JSON is rejected on its own.
fn json_lines_records(text: &str) -> Vec<Record> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| Record {
            line: i as u64 + 1,
            host: serde_json::from_str(line).map_err(|e| ("json".to_string(), format!("not valid JSON: {e}"))),
            mapping_columns: Vec::new(),
        })
        .collect()
}

/// A host of the file that is not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub line: u64,
    pub uuid: Option<String>,
    /// `(field, reason)`, fields named as the file names them.
    pub errors: Vec<(String, String)>,
}

impl fmt::Display for Rejection {
    /// `line L (uuid X): field: reason; field: reason`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}", self.line)?;
        if let Some(uuid) = &self.uuid {
            write!(f, " (uuid {uuid})")?;
        }
        f.write_str(": ")?;
        for (i, (field, reason)) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{field}: {reason}")?;
        }
        Ok(())
    }
}

/// A file's hosts sorted into those to import (with their lines) and those rejected.
#[derive(Debug, Default)]
pub struct Checked {
    pub accepted: Vec<(u64, HostInput)>,
    pub rejected: Vec<Rejection>,
}

/// Validates each record with [`parse_host`]. A uuid that appeared on an earlier line
/// (imported or not) rejects the later line: a file never silently overwrites itself.
pub fn check(records: Vec<Record>) -> Checked {
    let mut checked = Checked::default();
    let mut first_line: HashMap<String, u64> = HashMap::new();
    for record in records {
        let value = match record.host {
            Ok(value) => value,
            Err(error) => {
                checked.rejected.push(Rejection { line: record.line, uuid: None, errors: vec![error] });
                continue;
            }
        };
        let uuid = value.get("uuid").and_then(Value::as_str).map(str::trim).filter(|u| !u.is_empty());
        let mut v = Validation::default();
        let parsed = parse_host(&value, "", &mut v);
        if let Some(uuid) = uuid {
            match first_line.get(uuid) {
                Some(first) => v.fail("uuid", format!("already appears on line {first}")),
                None => {
                    first_line.insert(uuid.to_string(), record.line);
                }
            }
        }
        match parsed {
            Some(input) if v.is_ok() => checked.accepted.push((record.line, input)),
            _ => checked.rejected.push(Rejection {
                line: record.line,
                uuid: uuid.map(str::to_string),
                errors: v
                    .errors()
                    .iter()
                    .map(|(name, reason)| (rename(name, &record.mapping_columns), reason.clone()))
                    .collect(),
            }),
        }
    }
    checked
}

/// Names an error's field as the file does: a CSV's `device_mapping[i].email` is the
/// column the email came from; an unnamed field is the host itself.
fn rename(name: &str, columns: &[MappingColumns]) -> String {
    if name.is_empty() {
        return "host".into();
    }
    let column = name
        .strip_prefix("device_mapping[")
        .and_then(|rest| rest.split_once("]."))
        .and_then(|(index, field)| Some((columns.get(index.parse::<usize>().ok()?)?, field)));
    match column {
        Some((c, "email")) => c.email.to_string(),
        Some((c, "source")) => c.source.to_string(),
        _ => name.to_string(),
    }
}

/// The first line of the summary: `created N, updated N, rejected N`.
pub fn summary_line(created: u64, updated: u64, rejected: usize) -> String {
    format!("created {created}, updated {updated}, rejected {rejected}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use custodian_domain::hosts::{DeviceMapping, MappingSource};
    use serde_json::json;

    use super::*;

    fn records(text: &str, format: Format) -> Vec<Record> {
        read_records(text.as_bytes(), format).unwrap()
    }

    fn hosts(records: &[Record]) -> Vec<Value> {
        records.iter().map(|r| r.host.clone().unwrap()).collect()
    }

    fn m(email: &str, source: MappingSource) -> DeviceMapping {
        DeviceMapping { email: email.into(), source }
    }

    #[test]
    fn formats_come_from_the_extension() {
        assert_eq!(Format::from_path(Path::new("hosts.CSV")), Some(Format::Csv));
        assert_eq!(Format::from_path(Path::new("a/hosts.json")), Some(Format::Json));
        assert_eq!(Format::from_path(Path::new("hosts.jsonl")), Some(Format::JsonLines));
        assert_eq!(Format::from_path(Path::new("hosts.ndjson")), Some(Format::JsonLines));
        assert_eq!(Format::from_path(Path::new("hosts.txt")), None);
        assert_eq!(Format::from_path(Path::new("hosts")), None);
    }

    #[test]
    fn a_csv_row_with_every_column_becomes_the_apis_host_object() {
        let text = "\u{feff}uuid,hardware_serial,hostname,computer_name,platform,os_version,hardware_model,seen_time,\
                    mdm_idp_accounts,idp,custom,google_chrome_profiles\n\
                    U-1,SER1,mac-1,Jane's Mac,darwin,macOS 15.1,MacBookPro18,2026-01-02T03:04:05Z,\
                    jane@x.com,jane.idp@x.com,j@x.com,jane@gmail.com\n";
        let recs = records(text, Format::Csv);
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].line, 2);
        assert_eq!(
            recs[0].host,
            Ok(json!({
                "uuid": "U-1", "hardware_serial": "SER1", "hostname": "mac-1", "computer_name": "Jane's Mac",
                "platform": "darwin", "os_version": "macOS 15.1", "hardware_model": "MacBookPro18",
                "seen_time": "2026-01-02T03:04:05Z",
                "device_mapping": [
                    {"email": "jane@x.com", "source": "mdm_idp_accounts"},
                    {"email": "jane.idp@x.com", "source": "idp"},
                    {"email": "j@x.com", "source": "custom"},
                    {"email": "jane@gmail.com", "source": "google_chrome_profiles"},
                ],
            }))
        );
        let checked = check(recs);
        assert!(checked.rejected.is_empty(), "{:?}", checked.rejected);
        let (line, host) = &checked.accepted[0];
        assert_eq!(*line, 2);
        assert_eq!(host.uuid, "U-1");
        assert_eq!(host.computer_name, "Jane's Mac");
        assert_eq!(host.seen_time.map(|t| t.to_rfc3339()), Some("2026-01-02T03:04:05+00:00".into()));
        assert_eq!(
            host.device_mapping,
            Some(vec![
                m("jane@x.com", MappingSource::MdmIdpAccounts),
                m("jane.idp@x.com", MappingSource::Idp),
                m("j@x.com", MappingSource::Custom),
                m("jane@gmail.com", MappingSource::GoogleChromeProfiles),
            ])
        );
    }

    #[test]
    fn csv_cells_may_list_several_emails_separated_by_semicolons() {
        let text = "UUID , Hostname,custom,email,source\n\
                    u1,h1,\" a@x.com ; b@x.com;\",c@x.com;d@x.com,google_chrome_profiles\n\
                    u2,h2,,,\n";
        let recs = records(text, Format::Csv);
        assert_eq!(
            hosts(&recs),
            vec![
                json!({"uuid": "u1", "hostname": "h1", "device_mapping": [
                    {"email": "a@x.com", "source": "custom"},
                    {"email": "b@x.com", "source": "custom"},
                    {"email": "c@x.com", "source": "google_chrome_profiles"},
                    {"email": "d@x.com", "source": "google_chrome_profiles"},
                ]}),
                // Mapping columns in the header: an empty row means no emails.
                json!({"uuid": "u2", "hostname": "h2", "device_mapping": []}),
            ]
        );
        let checked = check(recs);
        assert_eq!(checked.accepted.len(), 2);
        assert_eq!(checked.accepted[1].1.device_mapping, Some(vec![]));
    }

    #[test]
    fn a_csv_without_mapping_columns_leaves_the_hosts_emails_alone() {
        let recs = records("uuid,hostname\nu1,h1\n", Format::Csv);
        assert_eq!(hosts(&recs), vec![json!({"uuid": "u1", "hostname": "h1"})]);
        assert_eq!(check(recs).accepted[0].1.device_mapping, None);
    }

    #[test]
    fn unknown_columns_are_named_before_anything_is_read() {
        let err = read_records(b"uuid,hostname,owner,Serial,\nu1,h1,x,y,z\n", Format::Csv).unwrap_err();
        assert!(err.0.contains("unknown columns: 'owner', 'serial', (column 5 has no name)"), "{err}");
        assert!(err.0.contains("hardware_serial"), "the message lists the known columns: {err}");

        let err = read_records(b"hostname\nh1\n", Format::Csv).unwrap_err();
        assert_eq!(err.0, "the CSV header has no uuid column");
        let err = read_records(b"uuid,email\nu1,a@x.com\n", Format::Csv).unwrap_err();
        assert!(err.0.contains("no source column"), "{err}");
        let err = read_records(b"uuid,hostname,HOSTNAME\n", Format::Csv).unwrap_err();
        assert!(err.0.contains("'hostname' twice"), "{err}");
        let err = read_records(b"", Format::Csv).unwrap_err();
        assert!(err.0.contains("no header row"), "{err}");
    }

    #[test]
    fn bad_csv_rows_are_rejected_one_by_one_with_their_lines_and_columns() {
        let text = "uuid,hostname,mdm_idp_accounts,email,source\n\
                    u1,h1,jane@x.com,,\n\
                    ,h2,,,\n\
                    u3,h3,,c@x.com,okta\n\
                    u4,\"two\nlines\",,,\n\
                    u5,h5\n\
                    u1,h6,,,\n\
                    u7,h7,not an email,,\n\
                    u8,h8,,,custom\n";
        let checked = check(records(text, Format::Csv));
        let accepted: Vec<(u64, &str)> = checked.accepted.iter().map(|(l, h)| (*l, h.uuid.as_str())).collect();
        assert_eq!(accepted, vec![(2, "u1"), (5, "u4")]);
        let shown: Vec<String> = checked.rejected.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            vec![
                "line 3: uuid: is required",
                "line 4 (uuid u3): source: must be mdm_idp_accounts, idp, custom or google_chrome_profiles",
                "line 7: row: has 2 fields, the header has 5",
                "line 8 (uuid u1): uuid: already appears on line 2",
                "line 9 (uuid u7): mdm_idp_accounts: must not contain spaces or NUL characters",
                "line 10 (uuid u8): email: is required",
            ]
        );
    }

    #[test]
    fn a_json_array_gives_each_host_its_line() {
        let text = "[\n  {\"uuid\": \"a\", \"hostname\": \"h\"},\n  {\"uuid\": \"b\",\n   \"device_mapping\": \
                    [{\"email\": \"x@y.com\", \"source\": \"custom\"}]},\n  42,\n  {\"uuid\": \"a\"}\n]\n";
        let recs = records(text, Format::Json);
        assert_eq!(recs.iter().map(|r| r.line).collect::<Vec<_>>(), vec![2, 3, 5, 6]);
        let checked = check(recs);
        assert_eq!(checked.accepted.len(), 2);
        assert_eq!(checked.accepted[1].1.device_mapping, Some(vec![m("x@y.com", MappingSource::Custom)]));
        let shown: Vec<String> = checked.rejected.iter().map(ToString::to_string).collect();
        assert_eq!(shown, vec!["line 5: host: must be an object", "line 6 (uuid a): uuid: already appears on line 2"]);
    }

    #[test]
    fn a_hosts_object_and_concatenated_objects_are_json_too() {
        let text =
            "{\"note\": 1,\n \"hosts\": [\n {\"uuid\": \"a\"},\n {\"uuid\": \"b\", \"seen_time\": \"yesterday\"}]}";
        let checked = check(records(text, Format::Json));
        assert_eq!(
            checked.accepted.iter().map(|(l, h)| (*l, h.uuid.clone())).collect::<Vec<_>>(),
            vec![(3, "a".into())]
        );
        assert_eq!(checked.rejected[0].to_string(), "line 4 (uuid b): seen_time: must be an RFC 3339 date-time");

        let recs = records("{\"uuid\": \"a\"}\n{\"uuid\": \"b\"}\n", Format::Json);
        assert_eq!(recs.iter().map(|r| r.line).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(hosts(&recs), vec![json!({"uuid": "a"}), json!({"uuid": "b"})]);

        for bad in ["", "  ", "[{\"uuid\": \"a\"},", "\"hosts\"", "{\"hosts\": 3}", "[1] {"] {
            assert!(read_records(bad.as_bytes(), Format::Json).is_err(), "{bad:?} must be a file-level error");
        }
        assert!(read_records(b"[\xff]", Format::Json).unwrap_err().0.contains("not UTF-8"));
    }

    #[test]
    fn json_lines_reject_a_malformed_line_and_import_the_others() {
        let text = "{\"uuid\": \"a\", \"platform\": \"windows\"}\r\n\n{\"uuid\": \"b\", oops}\n[]\n{\"uuid\": \"c\", \
                    \"device_mapping\": [{\"email\": \"c@x.com\", \"source\": \"bogus\"}]}\n{\"uuid\": \"d\"}";
        let checked = check(records(text, Format::JsonLines));
        assert_eq!(
            checked.accepted.iter().map(|(l, h)| (*l, h.uuid.clone())).collect::<Vec<_>>(),
            vec![(1, "a".into()), (6, "d".into())]
        );
        assert_eq!(checked.accepted[0].1.platform, "windows");
        let shown: Vec<String> = checked.rejected.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 3);
        assert!(shown[0].starts_with("line 3: json: not valid JSON: "), "{shown:?}");
        assert_eq!(shown[1], "line 4: host: must be an object");
        assert_eq!(
            shown[2],
            "line 5 (uuid c): device_mapping[0].source: must be mdm_idp_accounts, idp, custom or google_chrome_profiles"
        );
    }

    #[test]
    fn the_summary_line() {
        assert_eq!(summary_line(497, 0, 3), "created 497, updated 0, rejected 3");
    }
}
