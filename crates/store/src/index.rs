//! The attribute index: every leaf value of a SCIM document, flattened into rows that
//! filters are translated against. Shared by both backends.

use custodian_scim::custom;
use custodian_scim::filter::{CompareKey, value_key};
use custodian_scim::schema::{AttrLocation, AttrType, AttributeDef, ResourceKind};
use serde_json::Value;

/// One index row: a canonical path (`emails.value`, `urn:...:User:department`), the
/// position of the element in a multi-valued attribute (0 otherwise) and the
/// normalised value.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexRow {
    pub path: String,
    pub elem: i64,
    pub text: Option<String>,
    pub num: Option<f64>,
}

impl IndexRow {
    fn new(path: String, elem: i64, key: CompareKey) -> Option<Self> {
        // An empty string is unassigned (RFC 7643 §2.5): no row, so `pr` stays false.
        if key == CompareKey::Str(String::new()) {
            return None;
        }
        let (text, num) = key_columns(key);
        Some(IndexRow { path, elem, text, num })
    }
}

/// Splits a comparison key into the (text, number) columns it is stored in.
pub fn key_columns(key: CompareKey) -> (Option<String>, Option<f64>) {
    match key {
        CompareKey::Str(s) | CompareKey::Time(s) => (Some(s), None),
        CompareKey::Num(n) => (None, Some(n)),
        CompareKey::Bool(b) => (None, Some(if b { 1.0 } else { 0.0 })),
    }
}

/// Whether values of this type live in the numeric column.
pub fn is_numeric(ty: AttrType) -> bool {
    matches!(ty, AttrType::Boolean | AttrType::Integer | AttrType::Decimal)
}

/// The index rows of a canonical document (see `custodian_scim::resource`).
pub fn index_rows(kind: ResourceKind, doc: &Value) -> Vec<IndexRow> {
    let mut rows = Vec::new();
    let Some(obj) = doc.as_object() else {
        return rows;
    };
    for (key, value) in obj {
        if let Some(ext) = kind.extensions().iter().find(|s| s.id == key.as_str()) {
            if let Some(ext_obj) = value.as_object() {
                for (name, v) in ext_obj {
                    if let Some(def) = ext.attribute(name) {
                        let prefix = format!("{}:{}", ext.id, def.name);
                        push_attr(&mut rows, &prefix, def, v);
                    }
                }
            }
            continue;
        }
        if custom::is_custom_urn(kind, key) {
            if let Some(ext_obj) = value.as_object() {
                for (name, v) in ext_obj {
                    push_custom(&mut rows, &format!("{key}:{name}").to_ascii_lowercase(), v);
                }
            }
            continue;
        }
        let def = match kind.resolve(None, key, None) {
            Some(r) if !matches!(r.location, AttrLocation::Extension(_)) => r.attr,
            _ => continue,
        };
        push_attr(&mut rows, def.name, def, value);
    }
    rows
}

/// A custom attribute (`custodian_scim::custom`), indexed as text: each scalar, each
/// element of a list, and the scalars of an object or of a list of objects one level
/// down (`…:address.city`). Deeper values are kept but not indexed.
fn push_custom(rows: &mut Vec<IndexRow>, path: &str, value: &Value) {
    let elements: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    for (elem, item) in elements.into_iter().enumerate() {
        let elem = elem as i64;
        match item {
            Value::Object(subs) => {
                for (name, v) in subs {
                    let sub_path = format!("{path}.{}", name.to_ascii_lowercase());
                    let values: Vec<&Value> = match v {
                        Value::Array(items) => items.iter().collect(),
                        other => vec![other],
                    };
                    for v in values {
                        if let Some(key) = value_key(&custom::OPEN_VALUE, v) {
                            rows.extend(IndexRow::new(sub_path.clone(), elem, key));
                        }
                    }
                }
            }
            other => {
                if let Some(key) = value_key(&custom::OPEN_VALUE, other) {
                    rows.extend(IndexRow::new(path.to_string(), elem, key));
                }
            }
        }
    }
}

fn push_attr(rows: &mut Vec<IndexRow>, path: &str, def: &AttributeDef, value: &Value) {
    let elements: Vec<&Value> = match (def.multi_valued, value) {
        (true, Value::Array(items)) => items.iter().collect(),
        _ => vec![value],
    };
    for (elem, item) in elements.into_iter().enumerate() {
        let elem = elem as i64;
        if def.ty == AttrType::Complex {
            let Some(sub_obj) = item.as_object() else { continue };
            for (name, v) in sub_obj {
                if let Some(sub) = def.sub_attribute(name)
                    && let Some(key) = value_key(sub, v)
                {
                    rows.extend(IndexRow::new(format!("{path}.{}", sub.name), elem, key));
                }
            }
        } else if let Some(key) = value_key(def, item) {
            rows.extend(IndexRow::new(path.to_string(), elem, key));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flattens_nested_multi_valued_and_extension_values() {
        let doc = json!({
            "userName": "Jane@Example.com",
            "active": true,
            "name": {"givenName": "Jane"},
            "emails": [{"value": "J@x.com", "type": "work", "primary": true}, {"value": "h@y.com"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Eng"},
        });
        let rows = index_rows(ResourceKind::User, &doc);
        let find = |p: &str, e: i64| rows.iter().find(|r| r.path == p && r.elem == e).cloned();
        assert_eq!(find("userName", 0).unwrap().text.as_deref(), Some("jane@example.com"));
        assert_eq!(find("active", 0).unwrap().num, Some(1.0));
        assert_eq!(find("name.givenName", 0).unwrap().text.as_deref(), Some("jane"));
        assert_eq!(find("emails.value", 1).unwrap().text.as_deref(), Some("h@y.com"));
        assert_eq!(find("emails.primary", 0).unwrap().num, Some(1.0));
        assert_eq!(
            find("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", 0).unwrap().text.as_deref(),
            Some("eng")
        );
    }
}
