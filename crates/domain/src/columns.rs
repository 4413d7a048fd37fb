//! The IdP columns an operator adds to the hosts page and its CSV export: SCIM attribute
//! paths of the end user (custom extensions too), read as the template variables read
//! them. The choice is the operator's own and is kept with the operator.

use custodian_scim::error::snippet;
use custodian_scim::path::AttrPath;
use custodian_scim::schema::{ENTERPRISE_USER_SCHEMA, ResourceKind};

use crate::hosts::Host;
use crate::render::{attribute_texts, manager_name};

/// The most columns an operator may add.
pub const MAX_COLUMNS: usize = 12;
/// The longest attribute path of a column, in bytes.
pub const MAX_PATH: usize = 512;

/// The columns the picker offers by name, with their headings; any other path may be
/// typed in.
pub const SUGGESTED: [(&str, &str); 9] = [
    ("title", "Title"),
    ("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "Manager"),
    ("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter", "Cost center"),
    ("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "Employee number"),
    ("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:division", "Division"),
    ("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:organization", "Organization"),
    ("emails[primary eq true].value", "Primary email"),
    ("addresses[type eq \"work\"].locality", "Work city"),
    ("addresses[type eq \"work\"].country", "Work country"),
];

/// One chosen column.
#[derive(Debug, Clone)]
pub struct HostColumn {
    /// As the operator chose it (what is stored).
    pub path: String,
    /// The heading: the suggested name, else the path.
    pub label: String,
    parsed: AttrPath,
    /// The enterprise `manager` itself: shown as the manager's name, not as an object.
    is_manager: bool,
}

impl HostColumn {
    /// A column on a SCIM attribute path, or why the path is not one.
    pub fn parse(path: &str) -> Result<HostColumn, String> {
        let path = path.trim();
        if path.is_empty() {
            return Err("A column needs a SCIM attribute path".into());
        }
        if path.len() > MAX_PATH {
            return Err(format!("A column's attribute path is at most {MAX_PATH} bytes"));
        }
        let parsed = match AttrPath::parse(ResourceKind::User, path) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return Err(format!("'{}' is not a User attribute", snippet(path))),
            Err(e) => return Err(format!("'{}' is not a SCIM attribute path: {}", snippet(path), e.detail)),
        };
        let canonical = parsed.attr.canonical_path();
        let is_manager =
            parsed.filter.is_none() && canonical.eq_ignore_ascii_case(&format!("{ENTERPRISE_USER_SCHEMA}:manager"));
        // An extension's attribute is headed by its own name (the page shows the whole
        // path on hover, the CSV heads it with the path).
        let short = || if path.starts_with("urn:") { path.rsplit(':').next().unwrap_or(path) } else { path };
        let label = SUGGESTED
            .iter()
            .find(|(p, _)| p.eq_ignore_ascii_case(path))
            .map_or_else(|| short().to_string(), |(_, l)| l.to_string());
        Ok(HostColumn { path: path.to_string(), label, parsed, is_manager })
    }

    /// The host's end user's value: several values joined with commas in sorted order;
    /// empty when it has none (or no end user).
    pub fn value(&self, host: &Host) -> String {
        let Some(user) = &host.end_user else {
            return String::new();
        };
        if self.is_manager {
            return manager_name(user).unwrap_or_default();
        }
        attribute_texts(&self.parsed, &user.attributes).0.join(",")
    }
}

/// Parses stored or posted paths: at most `MAX_COLUMNS`, each once (in any case).
pub fn parse_columns<'a>(paths: impl IntoIterator<Item = &'a str>) -> Result<Vec<HostColumn>, String> {
    let mut columns: Vec<HostColumn> = Vec::new();
    for path in paths {
        let column = HostColumn::parse(path)?;
        if columns.iter().any(|c| c.path.eq_ignore_ascii_case(&column.path)) {
            continue;
        }
        columns.push(column);
    }
    if columns.len() > MAX_COLUMNS {
        return Err(format!("At most {MAX_COLUMNS} IdP columns may be shown"));
    }
    Ok(columns)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_headed_validated_and_kept_once() {
        let columns = parse_columns([
            "title",
            "TITLE",
            "urn:ietf:params:scim:schemas:extension:acme:2.0:User:badge",
            "addresses[type eq \"work\"].locality",
        ])
        .unwrap();
        let labels: Vec<&str> = columns.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(labels, ["Title", "badge", "Work city"]);
        assert!(parse_columns(["addresses[type eq"]).unwrap_err().contains("is not a SCIM attribute path"));
        assert!(parse_columns(["nope"]).unwrap_err().contains("is not a User attribute"));
        let many: Vec<String> =
            (0..=MAX_COLUMNS).map(|i| format!("urn:ietf:params:scim:schemas:extension:x:2.0:User:a{i}")).collect();
        assert!(parse_columns(many.iter().map(String::as_str)).is_err());
    }
}
