//! The in-memory filter evaluator, and the normalised comparable form of values that
//! it shares with the SQL store: the store indexes every leaf value by its
//! [`CompareKey`] and binds filter literals through [`literal_key`], so the two agree.
//!
//! Semantics, mirrored by the SQL translation:
//! - a comparison on a multi-valued attribute is true if ANY value satisfies it;
//! - `attr[inner]` is true if ANY element of `attr` satisfies `inner` as a whole;
//! - `pr` is true if the attribute has at least one value that is not null, not `""`,
//!   not `[]` and not `{}` (nor an object or array holding only such values);
//! - `eq null` is "not present" and `ne null` is "present";
//! - `ne v` is exactly `not (eq v)`: true when no value equals `v`, including when the
//!   attribute is absent. This makes `ne` a plain `NOT EXISTS` in SQL;
//! - `co`, `sw`, `ew` work on normalised strings; `gt`, `ge`, `lt`, `le` compare strings
//!   by bytes of their normalised form, numbers numerically and date-times in time
//!   order. Values whose keys are of different kinds never match.

use serde_json::Value;

use super::{CompValue, CompareOp, Filter};
use crate::resource::get_ci;
use crate::schema::{AttrLocation, AttrType, AttributeDef, ResolvedAttr};

/// The normalised comparable form of one value.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
pub enum CompareKey {
    /// A string, lowercased when the attribute is not `caseExact`.
    Str(String),
    Num(f64),
    Bool(bool),
    /// An instant in UTC as `%Y-%m-%dT%H:%M:%S%.6fZ`: fixed width, so lexical order is
    /// time order.
    Time(String),
}

pub(crate) fn str_key(def: &AttributeDef, s: &str) -> Option<CompareKey> {
    match def.ty {
        AttrType::String | AttrType::Reference | AttrType::Binary => {
            // NFC: a name sent composed and the same name sent decomposed are one name
            // (uniqueness and filters alike); the stored value stays as sent.
            let s = if unicode_normalization::is_nfc_quick(s.chars()) == unicode_normalization::IsNormalized::Yes {
                std::borrow::Cow::Borrowed(s)
            } else {
                std::borrow::Cow::Owned(unicode_normalization::UnicodeNormalization::nfc(s).collect::<String>())
            };
            Some(CompareKey::Str(if def.case_exact { s.into_owned() } else { s.to_lowercase() }))
        }
        AttrType::Boolean if s.eq_ignore_ascii_case("true") => Some(CompareKey::Bool(true)),
        AttrType::Boolean if s.eq_ignore_ascii_case("false") => Some(CompareKey::Bool(false)),
        AttrType::DateTime => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| CompareKey::Time(t.with_timezone(&chrono::Utc).format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())),
        _ => None,
    }
}

fn num_key(def: &AttributeDef, n: Option<f64>) -> Option<CompareKey> {
    match def.ty {
        AttrType::Integer | AttrType::Decimal => n.filter(|n| !n.is_nan()).map(CompareKey::Num),
        _ => None,
    }
}

fn bool_key(def: &AttributeDef, b: bool) -> Option<CompareKey> {
    (def.ty == AttrType::Boolean).then_some(CompareKey::Bool(b))
}

/// The key of one stored value of the attribute `def`; `None` for null, complex
/// values and values that do not fit the attribute's type.
pub fn value_key(def: &AttributeDef, v: &Value) -> Option<CompareKey> {
    if def.open {
        return crate::custom::scalar_text(v).and_then(|t| str_key(def, &t));
    }
    match v {
        Value::String(s) => str_key(def, s),
        Value::Number(n) => num_key(def, n.as_f64()),
        Value::Bool(b) => bool_key(def, *b),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// The key of a filter literal compared with the attribute `def`: the same
/// normalisation as [`value_key`]. `None` for `null`.
pub fn literal_key(def: &AttributeDef, v: &CompValue) -> Option<CompareKey> {
    if def.open {
        // Custom values are text: `badge eq 42` finds "42" and 42 alike.
        return match v {
            CompValue::String(s) => str_key(def, s),
            CompValue::Number(n) => str_key(def, &crate::custom::number_text(*n)),
            CompValue::Bool(b) => str_key(def, &b.to_string()),
            CompValue::Null => None,
        };
    }
    match v {
        CompValue::String(s) => str_key(def, s),
        CompValue::Number(n) => num_key(def, Some(*n)),
        CompValue::Bool(b) => bool_key(def, *b),
        CompValue::Null => None,
    }
}

/// Whether the rendered SCIM resource `doc` satisfies `filter`.
pub fn matches(filter: &Filter, doc: &Value) -> bool {
    eval(filter, Scope::Resource(doc))
}

/// The values at `attr` in a resource document, arrays flattened, in document order.
/// With `element_filter` (a value path's `attr[...]`, as parsed), only the elements it
/// selects are read.
pub fn values_at<'a>(doc: &'a Value, attr: &ResolvedAttr, element_filter: Option<&Filter>) -> Vec<&'a Value> {
    let Some(Filter::ValuePath { filter: inner, .. }) = element_filter else {
        return values(attr, Scope::Resource(doc));
    };
    let whole = ResolvedAttr { sub: None, ..*attr };
    let mut out = Vec::new();
    for element in values(&whole, Scope::Resource(doc)) {
        if !eval(inner, Scope::Element(element)) {
            continue;
        }
        match attr.sub {
            Some(sub) => {
                if let Some(v) = field(element, sub) {
                    push_flat(v, &mut out);
                }
            }
            None => out.push(element),
        }
    }
    out
}

/// What attribute paths are read from.
#[derive(Clone, Copy)]
enum Scope<'a> {
    /// The whole resource document.
    Resource(&'a Value),
    /// One element of a multi-valued complex attribute, inside `attr[...]`: attributes
    /// are read as its sub-attributes.
    Element(&'a Value),
}

fn eval(filter: &Filter, scope: Scope<'_>) -> bool {
    match filter {
        Filter::And(a, b) => eval(a, scope) && eval(b, scope),
        Filter::Or(a, b) => eval(a, scope) || eval(b, scope),
        Filter::Not(a) => !eval(a, scope),
        Filter::Present(attr) => values(attr, scope).into_iter().any(|v| is_present(v, 0)),
        Filter::Compare { attr, op, value } => compare(attr, *op, value, scope),
        Filter::ValuePath { attr, filter } => {
            values(attr, scope).into_iter().any(|element| eval(filter, Scope::Element(element)))
        }
    }
}

/// The values of `attr` in `scope`, with arrays flattened: one entry per value of a
/// multi-valued attribute (for `emails`, each email object; for `emails.value`, each
/// address).
fn values<'a>(attr: &ResolvedAttr, scope: Scope<'a>) -> Vec<&'a Value> {
    let mut out = Vec::new();
    match scope {
        Scope::Resource(doc) => {
            let container = match attr.location {
                AttrLocation::Common | AttrLocation::Core => Some(doc),
                AttrLocation::Extension(urn) => doc.get(urn),
                AttrLocation::Custom(urn) => doc.as_object().and_then(|o| get_ci(o, urn)),
            };
            let Some(top) = container.and_then(|c| field(c, attr.attr)) else {
                return out;
            };
            match attr.sub {
                None => push_flat(top, &mut out),
                Some(sub) => match top {
                    Value::Array(elements) => {
                        for v in elements.iter().filter_map(|e| field(e, sub)) {
                            push_flat(v, &mut out);
                        }
                    }
                    other => {
                        if let Some(v) = field(other, sub) {
                            push_flat(v, &mut out);
                        }
                    }
                },
            }
        }
        Scope::Element(element) => match attr.sub {
            Some(sub) => {
                if let Some(v) = field(element, sub) {
                    push_flat(v, &mut out);
                }
            }
            // The parser resolves every attribute inside `[...]` to a sub-attribute;
            // reading the element itself is the only sensible fallback.
            None => out.push(element),
        },
    }
    out
}

/// The value of the attribute `def` in the object `v`. Custom names are the client's
/// spelling, so they are found without regard to case.
fn field<'a>(v: &'a Value, def: &AttributeDef) -> Option<&'a Value> {
    match v.get(def.name) {
        Some(x) => Some(x),
        None if def.open => v.as_object().and_then(|o| get_ci(o, def.name)),
        None => None,
    }
}

fn push_flat<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(items) => out.extend(items.iter()),
        other => out.push(other),
    }
}

/// Bounds the recursion into nested objects; no SCIM attribute is nested this deep.
const MAX_PRESENT_DEPTH: usize = 8;

/// Not null, `""`, `[]`, `{}`, nor a container holding only those. The store's index
/// has rows only for such leaf values, so `pr` agrees with it.
fn is_present(v: &Value, depth: usize) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) if depth >= MAX_PRESENT_DEPTH => true,
        Value::Array(items) => items.iter().any(|i| is_present(i, depth + 1)),
        Value::Object(map) => map.values().any(|i| is_present(i, depth + 1)),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

fn compare(attr: &ResolvedAttr, op: CompareOp, literal: &CompValue, scope: Scope<'_>) -> bool {
    let found = values(attr, scope);
    if *literal == CompValue::Null {
        let present = found.iter().any(|v| is_present(v, 0));
        return match op {
            CompareOp::Eq => !present,
            CompareOp::Ne => present,
            // The parser rejects other operators with null.
            _ => false,
        };
    }
    let leaf = attr.leaf();
    let Some(lit) = literal_key(leaf, literal) else {
        // A literal that cannot match this attribute (the parser rejects these):
        // nothing equals it, so only `ne` holds.
        return op == CompareOp::Ne;
    };
    // An empty string is unassigned (RFC 7643 §2.5): it compares with nothing, as the
    // index, which has no row for it. (Custom attributes keep "" as sent.)
    let mut keys = found.iter().filter_map(|v| value_key(leaf, v)).filter(|k| *k != CompareKey::Str(String::new()));
    match op {
        // `ne` is `not eq`, also for absent and multi-valued attributes.
        CompareOp::Ne => !keys.any(|k| k == lit),
        _ => keys.any(|k| compare_keys(op, &k, &lit)),
    }
}

fn compare_keys(op: CompareOp, value: &CompareKey, lit: &CompareKey) -> bool {
    use CompareKey::{Num, Str, Time};
    use std::cmp::Ordering;
    let ordering = match (value, lit) {
        (Str(a), Str(b)) | (Time(a), Time(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
        (Num(a), Num(b)) => a.partial_cmp(b),
        // Booleans have no order; mismatched kinds never compare.
        _ => None,
    };
    match op {
        CompareOp::Eq => value == lit,
        CompareOp::Ne => value != lit,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => match (value, lit) {
            (Str(a), Str(b)) => match op {
                CompareOp::Co => a.contains(b.as_str()),
                CompareOp::Sw => a.starts_with(b.as_str()),
                _ => a.ends_with(b.as_str()),
            },
            _ => false,
        },
        CompareOp::Gt => ordering == Some(Ordering::Greater),
        CompareOp::Ge => matches!(ordering, Some(Ordering::Greater | Ordering::Equal)),
        CompareOp::Lt => ordering == Some(Ordering::Less),
        CompareOp::Le => matches!(ordering, Some(Ordering::Less | Ordering::Equal)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::filter::parse_filter;
    use crate::schema::ResourceKind;
    use serde_json::json;

    fn user_doc() -> Value {
        json!({
            "schemas": [
                "urn:ietf:params:scim:schemas:core:2.0:User",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
            ],
            "id": "2819c223-7f76-453a-919d-413861904646",
            "externalId": "Ext-1",
            "userName": "jane@example.com",
            "name": {"givenName": "Jane", "familyName": "Doe", "middleName": ""},
            "displayName": "Jane \"JD\" Doe",
            "nickName": "",
            "title": "Engineer",
            "active": false,
            "emails": [
                {"value": "jane@example.com", "type": "work", "primary": true},
                {"value": "jane@home.org", "type": "home"}
            ],
            "roles": [{"value": "admin", "primary": true}, {"value": "dev"}],
            "groups": [{"value": "g-1", "display": "Admins"}],
            "addresses": [],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                "department": "Research & Development",
                "manager": {"value": "m-1"}
            },
            "meta": {
                "resourceType": "User",
                "created": "2025-06-01T10:00:00Z",
                "lastModified": "2026-02-03T04:05:06.5+02:00",
                "version": "W/\"3\"",
                "location": "https://example.com/scim/v2/Users/2819c223"
            }
        })
    }

    fn group_doc() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "id": "g-1",
            "displayName": "Admins",
            "members": [
                {"value": "u-ABC", "display": "Jane", "type": "User"},
                {"value": "u-def", "type": "User"}
            ],
            "meta": {"resourceType": "Group", "created": "2025-06-01T10:00:00Z", "lastModified": "2025-06-01T10:00:00Z"}
        })
    }

    fn user_matches(f: &str) -> bool {
        let filter = parse_filter(ResourceKind::User, f).unwrap_or_else(|e| panic!("{f}: {e}"));
        matches(&filter, &user_doc())
    }

    fn group_matches(f: &str) -> bool {
        let filter = parse_filter(ResourceKind::Group, f).unwrap_or_else(|e| panic!("{f}: {e}"));
        matches(&filter, &group_doc())
    }

    fn check(cases: &[(&str, bool)]) {
        for (f, expected) in cases {
            assert_eq!(user_matches(f), *expected, "{f}");
        }
    }

    #[test]
    fn each_operator() {
        check(&[
            (r#"title eq "engineer""#, true),
            (r#"title eq "engineers""#, false),
            (r#"title ne "engineer""#, false),
            (r#"title ne "manager""#, true),
            (r#"title co "GIN""#, true),
            (r#"title co "xyz""#, false),
            (r#"title sw "eng""#, true),
            (r#"title sw "neer""#, false),
            (r#"title ew "NEER""#, true),
            (r#"title ew "eng""#, false),
            (r#"title gt "e""#, true),
            (r#"title gt "engineer""#, false),
            (r#"title ge "engineer""#, true),
            (r#"title lt "f""#, true),
            (r#"title lt "engineer""#, false),
            (r#"title le "engineer""#, true),
            ("title pr", true),
            ("nickName pr", false),
            ("locale pr", false),
            ("addresses pr", false),
            ("emails pr", true),
            ("name.givenName pr", true),
            ("name.middleName pr", false),
            ("name pr", true),
        ]);
    }

    #[test]
    fn logic_precedence_and_grouping() {
        // `a or b and c` is `a or (b and c)`.
        check(&[
            (r#"title eq "engineer" or title eq "x" and title eq "y""#, true),
            (r#"(title eq "engineer" or title eq "x") and title eq "y""#, false),
            (r#"not (title eq "engineer")"#, false),
            (r#"not (title eq "x") and userName pr"#, true),
            (r#"TITLE EQ "ENGINEER" AnD UserName Pr"#, true),
        ]);
    }

    #[test]
    fn case_exactness_follows_the_schema() {
        check(&[
            (r#"userName eq "Jane@Example.com""#, true),
            (r#"id eq "2819c223-7f76-453a-919d-413861904646""#, true),
            (r#"id eq "2819C223-7F76-453A-919D-413861904646""#, false),
            (r#"externalId eq "Ext-1""#, true),
            (r#"externalId eq "ext-1""#, false),
            (r#"meta.resourceType eq "User""#, true),
            (r#"meta.resourceType eq "user""#, false),
        ]);
    }

    #[test]
    fn multi_valued_and_value_paths() {
        check(&[
            (r#"emails.value eq "jane@home.org""#, true),
            (r#"emails co "@HOME""#, true),
            (r#"emails[type eq "work" and value co "@example"]"#, true),
            // Both conditions must hold on the same element.
            (r#"emails[type eq "work" and value co "@home"]"#, false),
            (r#"emails.type eq "work" and emails.value co "@home""#, true),
            (r#"emails[type eq "work"].value eq "JANE@example.com""#, true),
            (r#"emails[type eq "home"].value eq "jane@example.com""#, false),
            (r#"emails[type eq "home"].value pr"#, true),
            (r#"emails[primary eq true].value ew ".com""#, true),
            (r#"emails[not (type eq "work")]"#, true),
            (r#"roles[primary eq "True"]"#, true),
            (r#"roles[primary eq "true" and value eq "dev"]"#, false),
            (r#"addresses[type eq "work"]"#, false),
            (r#"groups eq "g-1""#, true),
            (r#"groups[value eq "g-1"]"#, true),
            (r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager eq "m-1""#, true),
        ]);
    }

    #[test]
    fn ne_is_not_eq() {
        check(&[
            // Absent: nothing equals, so `ne` holds.
            (r#"locale ne "en""#, true),
            // Multi-valued: `ne` holds only if no value equals.
            (r#"emails.type ne "home""#, false),
            (r#"emails.type ne "other""#, true),
            ("locale eq null", true),
            ("nickName eq null", true),
            ("title eq null", false),
            ("title ne null", true),
            ("locale ne null", false),
        ]);
    }

    #[test]
    fn booleans_extensions_and_times() {
        check(&[
            (r#"active eq "False""#, true),
            ("active eq false", true),
            ("active eq true", false),
            ("active ne true", true),
            (
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "research & development""#,
                true,
            ),
            (r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department sw "Dev""#, false),
            (r#"meta.lastModified gt "2026-01-01T00:00:00Z""#, true),
            (r#"meta.created gt "2026-01-01T00:00:00Z""#, false),
            // 04:05:06.5+02:00 is 02:05:06.5Z.
            (r#"meta.lastModified eq "2026-02-03T02:05:06.500Z""#, true),
            (r#"meta.lastModified lt "2026-02-03T02:05:06.6Z""#, true),
            (r#"meta.lastModified ge "2026-02-03T04:05:06+02:00""#, true),
            (r#"displayName eq "jane \"jd\" doe""#, true),
        ]);
    }

    #[test]
    fn group_members() {
        assert!(group_matches(r#"members eq "u-ABC""#));
        assert!(!group_matches(r#"members eq "u-abc""#));
        assert!(group_matches(r#"members[value eq "u-def"]"#));
        assert!(group_matches(r#"members.value eq "u-def""#));
        assert!(!group_matches(r#"members[value eq "u-xyz"]"#));
        assert!(group_matches(r#"displayName eq "admins" and members[value eq "u-ABC" and display pr]"#));
        assert!(!group_matches(r#"members[value eq "u-def" and display pr]"#));
        assert!(group_matches(r#"members ne "u-xyz""#));
    }

    #[test]
    fn keys_are_normalised() {
        let rs = ResourceKind::User;
        let leaf = |p: &str| rs.resolve_path(p).map(|r| r.leaf()).unwrap();
        assert_eq!(value_key(leaf("userName"), &json!("ÄBC")), Some(CompareKey::Str("äbc".into())));
        assert_eq!(value_key(leaf("id"), &json!("ÄBC")), Some(CompareKey::Str("ÄBC".into())));
        // Composed and decomposed forms of one name have one key (NFC).
        assert_eq!(value_key(leaf("userName"), &json!("Jose\u{301}")), Some(CompareKey::Str("jos\u{e9}".into())));
        assert_eq!(value_key(leaf("id"), &json!("e\u{301}")), Some(CompareKey::Str("\u{e9}".into())));
        assert_eq!(value_key(leaf("active"), &json!("TRUE")), Some(CompareKey::Bool(true)));
        assert_eq!(value_key(leaf("active"), &json!(true)), Some(CompareKey::Bool(true)));
        assert_eq!(value_key(leaf("active"), &json!(1)), None);
        assert_eq!(value_key(leaf("userName"), &json!(null)), None);
        assert_eq!(value_key(leaf("name"), &json!({"givenName": "x"})), None);
        assert_eq!(
            value_key(leaf("meta.created"), &json!("2026-01-01T01:00:00+01:00")),
            Some(CompareKey::Time("2026-01-01T00:00:00.000000Z".into()))
        );
        assert_eq!(value_key(leaf("meta.created"), &json!("not a time")), None);
        assert_eq!(
            literal_key(leaf("userName"), &CompValue::String("AbC".into())),
            Some(CompareKey::Str("abc".into()))
        );
        assert_eq!(literal_key(leaf("userName"), &CompValue::Null), None);
        assert_eq!(literal_key(leaf("userName"), &CompValue::Bool(true)), None);
    }
}
