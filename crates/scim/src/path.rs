//! Attribute paths with an optional value filter (RFC 7644 §3.5.2's `valuePath`):
//! `[urn:]attr[.sub]` and `[urn:]attr[filter][.sub]`. PATCH writes at them; templates'
//! `${CUSTODIAN_IDP_ATTRIBUTE:...}` read at them.

use serde_json::Value;

use crate::error::{ScimError, ScimResult, snippet};
use crate::filter::{Filter, parse_filter, values_at};
use crate::schema::{AttrType, ResolvedAttr, ResourceKind};

/// A parsed attribute path.
#[derive(Debug, Clone)]
pub struct AttrPath {
    pub attr: ResolvedAttr,
    /// `attr[filter]`: the whole value-path filter, as `filter::matches` takes it.
    pub filter: Option<Filter>,
}

impl AttrPath {
    /// Parses a path; `Ok(None)` for an attribute the schema does not know.
    pub fn parse(kind: ResourceKind, path: &str) -> ScimResult<Option<AttrPath>> {
        let path = path.trim();
        let Some(open) = path.find('[') else {
            return Ok(kind.resolve_path(path).map(|attr| AttrPath { attr, filter: None }));
        };
        let bad = || ScimError::invalid_path("a value filter must be written attr[filter] or attr[filter].sub");
        let prefix = path.get(..open).ok_or_else(bad)?.trim();
        let close = closing_bracket(path, open).ok_or_else(bad)?;
        let inner = path.get(open + 1..close).ok_or_else(bad)?;
        let after = path.get(close + 1..).ok_or_else(bad)?.trim();
        let Some(res) = kind.resolve_path(prefix) else {
            return Ok(None);
        };
        if res.sub.is_some() || !res.attr.multi_valued || res.attr.ty != AttrType::Complex {
            return Err(ScimError::invalid_path(format!(
                "value filters apply to multi-valued complex attributes, and '{}' is not one",
                res.canonical_path()
            )));
        }
        let sub = if after.is_empty() {
            None
        } else {
            let name = after.strip_prefix('.').ok_or_else(bad)?;
            Some(res.attr.sub_attribute(name).ok_or_else(|| {
                ScimError::invalid_path(format!("'{}' has no sub-attribute '{}'", res.canonical_path(), snippet(name)))
            })?)
        };
        let filter = parse_filter(kind, &format!("{}[{inner}]", res.canonical_path()))?;
        Ok(Some(AttrPath { attr: ResolvedAttr { sub, ..res }, filter: Some(filter) }))
    }

    /// The values at this path in a stored resource, arrays flattened, in document
    /// order: for `emails[type eq "work"].value`, the work addresses.
    pub fn values<'a>(&self, doc: &'a Value) -> Vec<&'a Value> {
        values_at(doc, &self.attr, self.filter.as_ref())
    }
}

/// The index of the `]` closing the `[` at `open`, skipping quoted strings.
fn closing_bracket(path: &str, open: usize) -> Option<usize> {
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in path.char_indices().skip_while(|(i, _)| *i <= open) {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            ']' if !in_string => return Some(i),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(path: &str, doc: &Value) -> Vec<Value> {
        AttrPath::parse(ResourceKind::User, path).unwrap().unwrap().values(doc).into_iter().cloned().collect()
    }

    #[test]
    fn reads_plain_filtered_extension_and_custom_paths() {
        let doc = json!({
            "userName": "ann",
            "addresses": [{"type": "home", "locality": "Lyon"}, {"type": "work", "locality": "Berlin"}],
            "emails": [{"value": "a@x.com", "type": "work"}, {"value": "b@x.com"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"costCenter": "CC1"},
            "urn:ietf:params:scim:schemas:extension:Acme:2.0:User": {"Badge": 42}
        });
        assert_eq!(read("userName", &doc), [json!("ann")]);
        assert_eq!(read("addresses[type eq \"work\"].locality", &doc), [json!("Berlin")]);
        assert_eq!(read("emails.value", &doc), [json!("a@x.com"), json!("b@x.com")]);
        assert_eq!(read("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter", &doc), [json!("CC1")]);
        assert_eq!(read("urn:ietf:params:scim:schemas:extension:acme:2.0:User:badge", &doc), [json!(42)]);
        assert!(read("title", &doc).is_empty());
        assert!(AttrPath::parse(ResourceKind::User, "userName[type eq \"x\"]").is_err());
        assert!(AttrPath::parse(ResourceKind::User, "addresses[type eq \"work\"].nope").is_err());
    }
}
