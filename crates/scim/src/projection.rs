//! `attributes` and `excludedAttributes` (RFC 7644 §3.4.2.5, §3.9) with the `returned`
//! rules of RFC 7643 §7: `id` and `schemas` always, `password` never.

use serde_json::{Map, Value};

use crate::error::ScimResult;
use crate::resource::{is_absent, schema_by_urn};
use crate::schema::{AttrLocation, AttributeDef, ResourceKind, Returned};

/// One attribute named in `attributes` or `excludedAttributes`.
#[derive(Debug, Clone, Copy)]
struct Selector {
    /// The extension URN the attribute lives under; `None` for top-level attributes.
    ext: Option<&'static str>,
    /// `None` selects the whole extension `ext`.
    attr: Option<&'static AttributeDef>,
    sub: Option<&'static AttributeDef>,
}

impl Selector {
    /// URNs and names compare without regard to case: custom ones are spelled as sent.
    fn selects(&self, ext: Option<&str>, attr: &AttributeDef) -> bool {
        same(self.ext, ext) && self.attr.is_some_and(|a| a.name.eq_ignore_ascii_case(attr.name))
    }
    fn whole_extension(&self, urn: &str) -> bool {
        self.attr.is_none() && same(self.ext, Some(urn))
    }
}

fn same(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        (None, None) => true,
        _ => false,
    }
}

#[derive(Debug, Clone)]
enum Mode {
    Default,
    Include(Vec<Selector>),
    Exclude(Vec<Selector>),
}

/// What a response should contain.
#[derive(Debug, Clone)]
pub struct Projection {
    kind: ResourceKind,
    mode: Mode,
}

impl Projection {
    /// The default projection: every attribute returned by default.
    pub fn all(kind: ResourceKind) -> Projection {
        Projection { kind, mode: Mode::Default }
    }

    /// Whether the client asked for no `attributes` or `excludedAttributes`.
    pub fn is_default(&self) -> bool {
        matches!(self.mode, Mode::Default)
    }

    /// Parses the comma-separated lists of the query or of a SearchRequest. Attribute
    /// names are case-insensitive and may be dotted or URN-qualified; names the schema
    /// does not know are ignored, as a filter on them would be (RFC 7644 §3.4.2.2) and
    /// so that a client asking for an extension we lack still gets an answer. When both
    /// lists are given, `attributes` wins: it already bounds the response, and RFC 7644
    /// gives no meaning to the combination.
    pub fn parse(
        kind: ResourceKind,
        attributes: Option<&str>,
        excluded_attributes: Option<&str>,
    ) -> ScimResult<Projection> {
        let list = |s: &str| -> Vec<Selector> {
            s.split(',').map(str::trim).filter(|p| !p.is_empty()).filter_map(|p| selector(kind, p)).collect()
        };
        let mode = if let Some(a) = attributes.filter(|s| !s.trim().is_empty()) {
            Mode::Include(list(a))
        } else if let Some(e) = excluded_attributes.filter(|s| !s.trim().is_empty()) {
            Mode::Exclude(list(e))
        } else {
            Mode::Default
        };
        Ok(Projection { kind, mode })
    }

    /// Whether the response contains a Group's `members`; when false the store need not
    /// read the membership table at all.
    pub fn includes_members(&self) -> bool {
        self.kind == ResourceKind::Group && self.includes_top_level("members")
    }

    /// Whether the response contains a User's `groups`.
    pub fn includes_groups(&self) -> bool {
        self.kind == ResourceKind::User && self.includes_top_level("groups")
    }

    fn includes_top_level(&self, name: &str) -> bool {
        let Some(def) = self.kind.core_schema().attribute(name) else {
            return false;
        };
        match &self.mode {
            Mode::Default => def.returned != Returned::Request && def.returned != Returned::Never,
            Mode::Include(sels) => def.returned == Returned::Always || sels.iter().any(|s| s.selects(None, def)),
            Mode::Exclude(sels) => {
                def.returned == Returned::Default && !sels.iter().any(|s| s.selects(None, def) && s.sub.is_none())
            }
        }
    }

    /// Projects a full resource as `render` builds it. `schemas` is rewritten to list the
    /// extensions still present.
    pub fn apply(&self, kind: ResourceKind, full: Value) -> Value {
        let Value::Object(map) = full else {
            return full;
        };
        let mut out = Map::new();
        for (key, value) in map {
            if key == "schemas" {
                continue;
            }
            let projected = if let Some(ext) = kind.extensions().iter().find(|e| e.id.eq_ignore_ascii_case(&key)) {
                self.project_extension(ext.id, &|name, _| ext.attribute(name), value)
            } else if crate::custom::is_custom_urn(kind, &key) {
                let open = |name: &str, v: &Value| crate::custom::attribute(name, holds_objects(v)).ok();
                self.project_extension(crate::custom::schema(kind, &key).map_or("", |s| s.id), &open, value)
            } else if let Some(def) = kind.resolve(None, &key, None).map(|r| r.attr) {
                self.project_attr(None, def, value)
            } else {
                // Not an attribute of the schema: `render` never produces one.
                matches!(self.mode, Mode::Default).then_some(value)
            };
            if let Some(v) = projected {
                out.insert(key, v);
            }
        }
        let mut schemas = vec![Value::String(kind.core_schema().id.to_string())];
        for ext in kind.extensions() {
            if out.contains_key(ext.id) {
                schemas.push(Value::String(ext.id.to_string()));
            }
        }
        schemas.extend(out.keys().filter(|k| crate::custom::is_custom_urn(kind, k)).map(|k| Value::String(k.clone())));
        let mut result = Map::new();
        result.insert("schemas".into(), Value::Array(schemas));
        result.extend(out);
        Value::Object(result)
    }

    /// `attribute` finds the definition of each attribute the extension holds.
    fn project_extension(
        &self,
        urn: &'static str,
        attribute: &dyn Fn(&str, &Value) -> Option<&'static AttributeDef>,
        value: Value,
    ) -> Option<Value> {
        let whole = |sels: &[Selector]| sels.iter().any(|s| s.whole_extension(urn));
        match &self.mode {
            Mode::Include(sels) if whole(sels) => return Some(value),
            Mode::Exclude(sels) if whole(sels) => return None,
            _ => {}
        }
        let Value::Object(obj) = value else {
            return None;
        };
        let mut out = Map::new();
        for (key, v) in obj {
            let Some(def) = attribute(&key, &v) else {
                continue;
            };
            if let Some(v) = self.project_attr(Some(urn), def, v) {
                out.insert(key, v);
            }
        }
        (!out.is_empty()).then_some(Value::Object(out))
    }

    fn project_attr(&self, ext: Option<&str>, def: &AttributeDef, value: Value) -> Option<Value> {
        let value = self.project_attr_whole(ext, def, value)?;
        if def.sub_attributes.iter().all(|s| s.returned == Returned::Default || s.returned == Returned::Always) {
            return Some(value);
        }
        // Sub-attributes returned "never", or "request" and not asked for by name, go.
        let asked = |sub: &AttributeDef| match &self.mode {
            Mode::Include(sels) => {
                sels.iter().any(|s| s.selects(ext, def) && s.sub.is_some_and(|d| d.name == sub.name))
            }
            _ => false,
        };
        retain_subs(value, |name| {
            def.sub_attribute(name).is_none_or(|sub| match sub.returned {
                Returned::Never => false,
                Returned::Request => asked(sub),
                Returned::Default | Returned::Always => true,
            })
        })
    }

    fn project_attr_whole(&self, ext: Option<&str>, def: &AttributeDef, value: Value) -> Option<Value> {
        match def.returned {
            Returned::Always => return Some(value),
            Returned::Never => return None,
            Returned::Default | Returned::Request => {}
        }
        match &self.mode {
            Mode::Default => (def.returned == Returned::Default).then_some(value),
            Mode::Include(sels) => {
                let mine: Vec<&Selector> = sels.iter().filter(|s| s.selects(ext, def)).collect();
                if mine.is_empty() {
                    None
                } else if mine.iter().any(|s| s.sub.is_none()) {
                    // Naming a complex attribute returns all its sub-attributes.
                    Some(value)
                } else {
                    let keep: Vec<&str> = mine.iter().filter_map(|s| s.sub.map(|d| d.name)).collect();
                    retain_subs(value, |name| keep.iter().any(|k| k.eq_ignore_ascii_case(name)))
                }
            }
            Mode::Exclude(sels) => {
                let mine: Vec<&Selector> = sels.iter().filter(|s| s.selects(ext, def)).collect();
                if def.returned == Returned::Request || mine.iter().any(|s| s.sub.is_none()) {
                    None
                } else if mine.is_empty() {
                    Some(value)
                } else {
                    let drop: Vec<&str> = mine.iter().filter_map(|s| s.sub.map(|d| d.name)).collect();
                    retain_subs(value, |name| !drop.iter().any(|k| k.eq_ignore_ascii_case(name)))
                }
            }
        }
    }
}

/// Whether a custom value is an object or a list of objects: it has sub-attributes.
fn holds_objects(v: &Value) -> bool {
    match v {
        Value::Object(_) => true,
        Value::Array(items) => items.iter().any(Value::is_object),
        _ => false,
    }
}

fn selector(kind: ResourceKind, path: &str) -> Option<Selector> {
    // A whole extension, declared or custom; the core schema's URN selects nothing whole.
    if let Some(ext) = schema_by_urn(kind, path).filter(|s| !std::ptr::eq(*s, kind.core_schema())) {
        return Some(Selector { ext: Some(ext.id), attr: None, sub: None });
    }
    let r = kind.resolve_path(path)?;
    let ext = match r.location {
        AttrLocation::Extension(urn) | AttrLocation::Custom(urn) => Some(urn),
        AttrLocation::Core | AttrLocation::Common => None,
    };
    Some(Selector { ext, attr: Some(r.attr), sub: r.sub })
}

/// Keeps the sub-attributes `keep` accepts, in a complex value or in every element of a
/// multi-valued one; what ends up empty is unassigned and dropped.
fn retain_subs(value: Value, keep: impl Fn(&str) -> bool) -> Option<Value> {
    let filter_obj = |v: Value| -> Option<Value> {
        match v {
            Value::Object(o) => {
                let o: Map<String, Value> = o.into_iter().filter(|(k, _)| keep(k)).collect();
                (!o.is_empty()).then_some(Value::Object(o))
            }
            // A simple value has no sub-attributes to keep.
            _ => None,
        }
    };
    let out = match value {
        Value::Array(items) => Value::Array(items.into_iter().filter_map(filter_obj).collect()),
        other => filter_obj(other)?,
    };
    (!is_absent(&out)).then_some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::schema::{ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, USER_SCHEMA};
    use serde_json::json;

    #[test]
    fn only_a_projection_without_attribute_lists_is_the_default() {
        let parse = |a, e| Projection::parse(ResourceKind::Group, a, e).unwrap();
        assert!(parse(None, None).is_default());
        assert!(parse(Some(""), None).is_default(), "an empty list asks for nothing");
        assert!(!parse(Some("members"), None).is_default());
        assert!(!parse(None, Some("members")).is_default());
    }

    fn full_user() -> Value {
        json!({
            "schemas": [USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
            "id": "u1",
            "externalId": "x1",
            "userName": "jane",
            "name": {"givenName": "Jane", "familyName": "Doe"},
            "emails": [{"value": "j@x", "type": "work", "primary": true}, {"value": "h@x", "type": "home"}],
            "password": "never-here",
            "groups": [{"value": "g1", "type": "direct"}],
            ENTERPRISE_USER_SCHEMA: {"department": "Sales", "manager": {"value": "m1"}},
            "meta": {"resourceType": "User", "version": "W/\"1\""}
        })
    }

    fn project(attrs: Option<&str>, excluded: Option<&str>) -> (Projection, Value) {
        let p = Projection::parse(ResourceKind::User, attrs, excluded).unwrap();
        let v = p.apply(ResourceKind::User, full_user());
        (p, v)
    }

    #[test]
    fn default_drops_never_returned_only() {
        let (p, v) = project(None, None);
        let mut expected = full_user();
        expected.as_object_mut().unwrap().remove("password");
        assert_eq!(v, expected);
        assert!(p.includes_groups());
        assert!(!p.includes_members());
    }

    #[test]
    fn attributes_keeps_listed_plus_always_returned() {
        let (p, v) = project(Some("USERNAME, name.givenName,emails.value,password"), None);
        assert_eq!(
            v,
            json!({
                "schemas": [USER_SCHEMA],
                "id": "u1",
                "userName": "jane",
                "name": {"givenName": "Jane"},
                "emails": [{"value": "j@x"}, {"value": "h@x"}]
            })
        );
        assert!(!p.includes_groups());
    }

    #[test]
    fn attributes_with_extension_urn_and_qualified_names() {
        let (_, v) = project(Some(ENTERPRISE_USER_SCHEMA), None);
        assert_eq!(
            v,
            json!({
                "schemas": [USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
                "id": "u1",
                ENTERPRISE_USER_SCHEMA: {"department": "Sales", "manager": {"value": "m1"}}
            })
        );
        let (_, v) = project(
            Some(
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager,urn:ietf:params:scim:schemas:core:2.0:User:name,nonsense",
            ),
            None,
        );
        assert_eq!(
            v,
            json!({
                "schemas": [USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
                "id": "u1",
                "name": {"givenName": "Jane", "familyName": "Doe"},
                ENTERPRISE_USER_SCHEMA: {"manager": {"value": "m1"}}
            })
        );
        let (_, v) = project(Some("meta.version,manager.value"), None);
        assert_eq!(
            v,
            json!({
                "schemas": [USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
                "id": "u1",
                ENTERPRISE_USER_SCHEMA: {"manager": {"value": "m1"}},
                "meta": {"version": "W/\"1\""}
            })
        );
    }

    #[test]
    fn excluded_attributes() {
        let (p, v) = project(
            None,
            Some("groups,emails.type,id,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User,name.givenName"),
        );
        assert_eq!(
            v,
            json!({
                "schemas": [USER_SCHEMA],
                "id": "u1",
                "externalId": "x1",
                "userName": "jane",
                "name": {"familyName": "Doe"},
                "emails": [{"value": "j@x", "primary": true}, {"value": "h@x"}],
                "meta": {"resourceType": "User", "version": "W/\"1\""}
            })
        );
        assert!(!p.includes_groups());
        let (p, _) = project(None, Some("groups.display"));
        assert!(p.includes_groups());
    }

    #[test]
    fn attributes_wins_over_excluded() {
        let (_, v) = project(Some("userName"), Some("userName"));
        assert_eq!(v, json!({"schemas": [USER_SCHEMA], "id": "u1", "userName": "jane"}));
    }

    #[test]
    fn includes_members_is_exact() {
        let g = |a: Option<&str>, e: Option<&str>| Projection::parse(ResourceKind::Group, a, e).unwrap();
        assert!(g(None, None).includes_members());
        assert!(!g(None, Some("members")).includes_members());
        assert!(!g(None, Some("Members")).includes_members());
        assert!(g(None, Some("members.display")).includes_members());
        assert!(g(None, Some("displayName")).includes_members());
        assert!(!g(Some("displayName"), None).includes_members());
        assert!(g(Some("members.value"), None).includes_members());
        assert!(g(Some("urn:ietf:params:scim:schemas:core:2.0:Group:members"), None).includes_members());
        assert!(!g(None, None).includes_groups());

        let full = json!({
            "schemas": [GROUP_SCHEMA],
            "id": "g1",
            "displayName": "Eng",
            "members": [{"value": "u1", "display": "Jane", "type": "User", "$ref": "https://h/Users/u1"}],
            "meta": {"resourceType": "Group"}
        });
        let v = g(Some("members.value"), None).apply(ResourceKind::Group, full.clone());
        assert_eq!(v, json!({"schemas": [GROUP_SCHEMA], "id": "g1", "members": [{"value": "u1"}]}));
        let v = g(None, Some("members")).apply(ResourceKind::Group, full);
        assert_eq!(
            v,
            json!({"schemas": [GROUP_SCHEMA], "id": "g1", "displayName": "Eng", "meta": {"resourceType": "Group"}})
        );
    }
}
