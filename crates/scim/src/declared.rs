//! Custom User extensions an admin declares in a schema file (`--scim-schema-file`, RFC
//! 7643 §7 Schema JSON): their attributes get types, `caseExact`, `uniqueness`,
//! `required`, `mutability` and `returned`, are listed by `/Schemas` and by
//! `/ResourceTypes`' `schemaExtensions`, and are handled everywhere exactly as the
//! enterprise extension is. An extension the file does not declare is still kept, as
//! `crate::custom` describes.
//!
//! The attribute model is `'static` (one definition shared by every layer): declared
//! schemas are leaked once, when the server starts, and joined to the built-in ones.

use std::sync::{PoisonError, RwLock};

use serde_json::{Map, Value};

use crate::custom::{EXTENSION_PREFIX, MAX_URN_BYTES, is_attribute_name};
use crate::limits::{LONG_VALUE_MAX_BYTES, NAME_MAX_BYTES};
use crate::schema::{AttrType, AttributeDef, Mutability, ResourceKind, Returned, SchemaDef, Uniqueness};

/// The most extensions and attributes a schema file may declare.
pub const MAX_SCHEMAS: usize = 32;
pub const MAX_ATTRIBUTES: usize = 256;

struct Declared {
    /// The User extensions: built-in ones first, then the declared ones.
    user_extensions: &'static [&'static SchemaDef],
    /// Every schema `/Schemas` lists.
    all: &'static [&'static SchemaDef],
    /// What was declared, in a stable text (the store re-indexes when it changes).
    fingerprint: &'static str,
}

static DECLARED: RwLock<Option<Declared>> = RwLock::new(None);

/// The User extensions, declared ones included.
pub fn user_extensions(builtin: &'static [&'static SchemaDef]) -> &'static [&'static SchemaDef] {
    DECLARED.read().unwrap_or_else(PoisonError::into_inner).as_ref().map_or(builtin, |d| d.user_extensions)
}

/// Every schema, declared ones included.
pub fn all_schemas(builtin: &'static [&'static SchemaDef]) -> &'static [&'static SchemaDef] {
    DECLARED.read().unwrap_or_else(PoisonError::into_inner).as_ref().map_or(builtin, |d| d.all)
}

/// What is declared, as a stable text; empty when nothing is.
pub fn fingerprint() -> &'static str {
    DECLARED.read().unwrap_or_else(PoisonError::into_inner).as_ref().map_or("", |d| d.fingerprint)
}

/// Adds declared schemas to the model. Declaring again what is declared already (the
/// same JSON) changes nothing; another definition of a declared URN is refused.
pub fn install(text: &str) -> Result<(), String> {
    let schemas = parse(text)?;
    let mut guard = DECLARED.write().unwrap_or_else(PoisonError::into_inner);
    let builtin_users = guard.as_ref().map_or(crate::schema::builtin_user_extensions(), |d| d.user_extensions);
    let builtin_all = guard.as_ref().map_or(crate::schema::builtin_schemas(), |d| d.all);
    let mut users: Vec<&'static SchemaDef> = builtin_users.to_vec();
    let mut all: Vec<&'static SchemaDef> = builtin_all.to_vec();
    let mut fingerprint = guard.as_ref().map_or(String::new(), |d| d.fingerprint.to_string());
    for (schema, source) in schemas {
        if let Some(existing) = users.iter().find(|s| s.id.eq_ignore_ascii_case(&schema.id)) {
            if fingerprint.contains(&source) {
                continue;
            }
            return Err(format!("the schema {} is declared already, differently", existing.id));
        }
        let def: &'static SchemaDef = Box::leak(Box::new(schema.leak()));
        users.push(def);
        all.push(def);
        fingerprint.push_str(&source);
        fingerprint.push('\n');
    }
    *guard = Some(Declared {
        user_extensions: Box::leak(users.into_boxed_slice()),
        all: Box::leak(all.into_boxed_slice()),
        fingerprint: Box::leak(fingerprint.into_boxed_str()),
    });
    Ok(())
}

/// A schema as read, before it joins the `'static` model.
struct Parsed {
    id: String,
    name: String,
    description: String,
    attributes: Vec<ParsedAttr>,
}

struct ParsedAttr {
    def: AttributeDef,
    name: String,
    description: String,
    canonical: Vec<String>,
    references: Vec<String>,
    subs: Vec<ParsedAttr>,
}

fn leak_str(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn leak_strs(v: Vec<String>) -> &'static [&'static str] {
    Box::leak(v.into_iter().map(leak_str).collect::<Vec<_>>().into_boxed_slice())
}

impl ParsedAttr {
    fn leak(self) -> AttributeDef {
        let subs: Vec<AttributeDef> = self.subs.into_iter().map(ParsedAttr::leak).collect();
        AttributeDef {
            name: leak_str(self.name),
            description: leak_str(self.description),
            canonical_values: leak_strs(self.canonical),
            reference_types: leak_strs(self.references),
            sub_attributes: Box::leak(subs.into_boxed_slice()),
            ..self.def
        }
    }
}

impl Parsed {
    fn leak(self) -> SchemaDef {
        let attributes: Vec<AttributeDef> = self.attributes.into_iter().map(ParsedAttr::leak).collect();
        SchemaDef {
            id: leak_str(self.id),
            name: leak_str(self.name),
            description: leak_str(self.description),
            attributes: Box::leak(attributes.into_boxed_slice()),
        }
    }
}

/// Parses a schema file: one Schema, a list of them, or a ListResponse of them. Each
/// with the field path of its first problem.
fn parse(text: &str) -> Result<Vec<(Parsed, String)>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let items: Vec<&Value> = match &value {
        Value::Array(items) => items.iter().collect(),
        Value::Object(o) if o.contains_key("Resources") => match o.get("Resources") {
            Some(Value::Array(items)) => items.iter().collect(),
            _ => return Err("Resources: must be a list of schemas".into()),
        },
        Value::Object(_) => vec![&value],
        _ => return Err("must be a schema object, a list of them, or a ListResponse".into()),
    };
    if items.is_empty() || items.len() > MAX_SCHEMAS {
        return Err(format!("must declare 1 to {MAX_SCHEMAS} schemas"));
    }
    let mut out: Vec<(Parsed, String)> = Vec::new();
    let mut attributes = 0;
    for (i, item) in items.iter().enumerate() {
        let at = format!("schema {}", i + 1);
        let obj = item.as_object().ok_or_else(|| format!("{at}: must be an object"))?;
        let id = text_of(obj, "id", &at)?.ok_or_else(|| format!("{at}.id: is required"))?;
        let valid_urn = id.len() > EXTENSION_PREFIX.len()
            && id.len() <= MAX_URN_BYTES
            && id.get(..EXTENSION_PREFIX.len()).is_some_and(|p| p.eq_ignore_ascii_case(EXTENSION_PREFIX))
            && id.rsplit(':').next().is_some_and(|t| t.eq_ignore_ascii_case("User"))
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'.' | b'-' | b'_'));
        if !valid_urn {
            return Err(format!("{at}.id: must be a User extension URN, {EXTENSION_PREFIX}<name>:2.0:User"));
        }
        if crate::schema::builtin_schemas().iter().any(|s| s.id.eq_ignore_ascii_case(&id)) {
            return Err(format!("{at}.id: {id} is a schema Custodian defines"));
        }
        if out.iter().any(|(p, _)| p.id.eq_ignore_ascii_case(&id)) {
            return Err(format!("{at}.id: {id} is declared twice"));
        }
        let name = text_of(obj, "name", &at)?.unwrap_or_else(|| id.rsplit(':').nth(2).unwrap_or(&id).to_string());
        let description = text_of(obj, "description", &at)?.unwrap_or_default();
        let list = match obj.get("attributes") {
            Some(Value::Array(list)) if !list.is_empty() => list,
            _ => return Err(format!("{at}.attributes: must be a non-empty list")),
        };
        let mut attrs: Vec<ParsedAttr> = Vec::new();
        for (j, a) in list.iter().enumerate() {
            let at = format!("{at}.attributes[{j}]");
            let attr = parse_attr(a, &at, true)?;
            if attrs.iter().any(|x| x.name.eq_ignore_ascii_case(&attr.name)) {
                return Err(format!("{at}.name: {} is declared twice", attr.name));
            }
            attributes += 1 + attr.subs.len();
            attrs.push(attr);
        }
        if attributes > MAX_ATTRIBUTES {
            return Err(format!("declares more than {MAX_ATTRIBUTES} attributes"));
        }
        // The source text of each schema, canonical JSON, is its fingerprint.
        let source = serde_json::to_string(item).map_err(|e| e.to_string())?;
        out.push((Parsed { id, name, description, attributes: attrs }, source));
    }
    Ok(out)
}

fn text_of(obj: &Map<String, Value>, field: &str, at: &str) -> Result<Option<String>, String> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= NAME_MAX_BYTES && !s.contains('\0') => Ok(Some(s.clone())),
        Some(_) => Err(format!("{at}.{field}: must be a string of at most {NAME_MAX_BYTES} bytes")),
    }
}

fn flag(obj: &Map<String, Value>, field: &str, at: &str) -> Result<bool, String> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(format!("{at}.{field}: must be true or false")),
    }
}

fn word<T: Copy>(
    obj: &Map<String, Value>,
    field: &str,
    at: &str,
    choices: &[(&str, T)],
    default: T,
) -> Result<T, String> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::String(s)) => choices.iter().find(|(n, _)| *n == s.as_str()).map(|(_, v)| *v).ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
            format!("{at}.{field}: must be one of {}", names.join(", "))
        }),
        Some(_) => Err(format!("{at}.{field}: must be a string")),
    }
}

fn strings(obj: &Map<String, Value>, field: &str, at: &str) -> Result<Vec<String>, String> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(|| format!("{at}.{field}: must be a list of strings")))
            .collect(),
        Some(_) => Err(format!("{at}.{field}: must be a list of strings")),
    }
}

const TYPES: [(&str, AttrType); 8] = [
    ("string", AttrType::String),
    ("boolean", AttrType::Boolean),
    ("decimal", AttrType::Decimal),
    ("integer", AttrType::Integer),
    ("dateTime", AttrType::DateTime),
    ("binary", AttrType::Binary),
    ("reference", AttrType::Reference),
    ("complex", AttrType::Complex),
];
const MUTABILITY: [(&str, Mutability); 4] = [
    ("readWrite", Mutability::ReadWrite),
    ("readOnly", Mutability::ReadOnly),
    ("immutable", Mutability::Immutable),
    ("writeOnly", Mutability::WriteOnly),
];
const RETURNED: [(&str, Returned); 4] = [
    ("default", Returned::Default),
    ("always", Returned::Always),
    ("never", Returned::Never),
    ("request", Returned::Request),
];
const UNIQUENESS: [(&str, Uniqueness); 3] =
    [("none", Uniqueness::None), ("server", Uniqueness::Server), ("global", Uniqueness::Global)];

fn parse_attr(value: &Value, at: &str, top: bool) -> Result<ParsedAttr, String> {
    let obj = value.as_object().ok_or_else(|| format!("{at}: must be an object"))?;
    let name = text_of(obj, "name", at)?.ok_or_else(|| format!("{at}.name: is required"))?;
    if !is_attribute_name(&name) {
        return Err(format!(
            "{at}.name: '{name}' is not an attribute name (a letter, then letters, digits, '-' or '_')"
        ));
    }
    let ty = word(obj, "type", at, &TYPES, AttrType::String)?;
    let uniqueness = word(obj, "uniqueness", at, &UNIQUENESS, Uniqueness::None)?;
    let multi_valued = flag(obj, "multiValued", at)?;
    if uniqueness != Uniqueness::None && (multi_valued || ty == AttrType::Complex || !top) {
        return Err(format!("{at}.uniqueness: only a single-valued attribute of a simple type can be unique"));
    }
    let subs = match (ty, obj.get("subAttributes")) {
        (AttrType::Complex, Some(Value::Array(list))) if !list.is_empty() && top => {
            let mut subs: Vec<ParsedAttr> = Vec::new();
            for (k, s) in list.iter().enumerate() {
                let sub = parse_attr(s, &format!("{at}.subAttributes[{k}]"), false)?;
                if sub.def.ty == AttrType::Complex {
                    return Err(format!("{at}.subAttributes[{k}].type: a sub-attribute cannot be complex"));
                }
                subs.push(sub);
            }
            subs
        }
        (AttrType::Complex, _) => {
            return Err(format!("{at}.subAttributes: a complex attribute needs a non-empty list of them"));
        }
        (_, None | Some(Value::Null)) => Vec::new(),
        (_, Some(_)) => return Err(format!("{at}.subAttributes: only a complex attribute has them")),
    };
    let def = AttributeDef {
        name: "",
        ty,
        multi_valued,
        description: "",
        required: flag(obj, "required", at)?,
        case_exact: flag(obj, "caseExact", at)?,
        mutability: word(obj, "mutability", at, &MUTABILITY, Mutability::ReadWrite)?,
        returned: word(obj, "returned", at, &RETURNED, Returned::Default)?,
        uniqueness,
        canonical_values: &[],
        reference_types: &[],
        sub_attributes: &[],
        max_bytes: if ty == AttrType::Reference { LONG_VALUE_MAX_BYTES } else { NAME_MAX_BYTES },
        open: false,
    };
    Ok(ParsedAttr {
        def,
        name,
        description: text_of(obj, "description", at)?.unwrap_or_default(),
        canonical: strings(obj, "canonicalValues", at)?,
        references: strings(obj, "referenceTypes", at)?,
        subs,
    })
}

/// The declared attributes that must be unique, with their index path
/// (`urn:…:User:badge`) and scope.
pub fn unique_attributes(kind: ResourceKind) -> Vec<(String, &'static AttributeDef)> {
    kind.extensions()
        .iter()
        .flat_map(|s| s.attributes.iter().map(move |a| (s, a)))
        .filter(|(_, a)| a.uniqueness != Uniqueness::None)
        .map(|(s, a)| (format!("{}:{}", s.id, a.name), a))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn a_schema_file_is_checked_field_by_field() {
        let bad = |text: &str| match parse(text) {
            Err(e) => e,
            Ok(_) => panic!("accepted: {text}"),
        };
        assert!(bad("[]").contains("1 to"));
        assert!(bad(r#"{"id": "urn:acme:User", "attributes": [{"name": "a"}]}"#).starts_with("schema 1.id:"));
        assert!(
            bad(
                r#"{"id": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", "attributes": [{"name": "a"}]}"#
            )
            .contains("Custodian defines")
        );
        let urn = "urn:ietf:params:scim:schemas:extension:acme:2.0:User";
        let e = bad(&format!(r#"{{"id": "{urn}", "attributes": [{{"name": "a"}}, {{"name": "b", "type": "text"}}]}}"#));
        assert_eq!(
            e,
            "schema 1.attributes[1].type: must be one of string, boolean, decimal, integer, dateTime, binary, reference, complex"
        );
        let e = bad(&format!(
            r#"{{"id": "{urn}", "attributes": [{{"name": "a", "multiValued": true, "uniqueness": "server"}}]}}"#
        ));
        assert!(e.starts_with("schema 1.attributes[0].uniqueness:"), "{e}");
        let e = bad(&format!(r#"{{"id": "{urn}", "attributes": [{{"name": "a", "type": "complex"}}]}}"#));
        assert!(e.starts_with("schema 1.attributes[0].subAttributes:"), "{e}");
        let ok = parse(&format!(
            r#"{{"schemas": [], "Resources": [{{"id": "{urn}", "attributes": [{{"name": "badge", "caseExact": true,
               "uniqueness": "server"}}, {{"name": "site", "type": "complex", "subAttributes": [{{"name": "code"}}]}}]}}]}}"#
        ))
        .unwrap();
        assert_eq!(ok.len(), 1);
        let (schema, _) = &ok[0];
        assert_eq!(schema.name, "acme");
        assert!(schema.attributes[0].def.case_exact);
        assert_eq!(schema.attributes[0].def.uniqueness, Uniqueness::Server);
        assert_eq!(schema.attributes[1].subs[0].name, "code");
    }
}
