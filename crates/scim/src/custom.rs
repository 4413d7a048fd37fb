//! Custom schema extensions that no schema declares: Okta's extension objects
//! (`"urn:ietf:params:scim:schemas:extension:acme:2.0:User": {"badge": "42"}`) and Entra's
//! pathless keys (`"urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User:badge": "42"`).
//!
//! Their attributes are kept as sent (strings, numbers, booleans, lists and objects) and
//! compared as case-insensitive text: robust for any IdP. Losing them without a word would
//! be the worst answer, and refusing them would break provisioning.
//!
//! The attribute model is `'static`, so that every layer shares one definition. Custom
//! URNs and attribute names join it through a bounded interner: at most
//! [`MAX_INTERNED`] distinct names per process, each at most [`MAX_NAME_BYTES`] (URNs
//! [`MAX_URN_BYTES`]), so that no client can grow the server's memory without bound.
//! Names are interned without regard to case (RFC 7643 §2.1); the index keys them in
//! lower case, so that what is stored does not depend on which spelling came first.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use serde_json::{Map, Value};

use crate::error::{ScimError, ScimResult};
use crate::limits::LONG_VALUE_MAX_BYTES;
use crate::patch::PatchOpKind;
use crate::schema::{AttributeDef, ResourceKind, SchemaDef};

/// What every custom extension URN starts with (RFC 7643 §3.3, as IdPs use it).
pub const EXTENSION_PREFIX: &str = "urn:ietf:params:scim:schemas:extension:";
/// The longest custom extension URN.
pub const MAX_URN_BYTES: usize = 256;
/// The longest custom attribute name.
pub const MAX_NAME_BYTES: usize = 128;
/// How many distinct custom URNs and attribute names a process keeps definitions for.
pub const MAX_INTERNED: usize = 10_000;
/// The most a resource's custom extensions may hold together, as JSON text.
pub const MAX_CUSTOM_BYTES: usize = 64 * 1024;
/// Nesting below an attribute: a complex value's sub-attributes, and their lists.
const MAX_DEPTH: usize = 3;

/// The definition every undeclared leaf value is compared with: case-insensitive text.
pub static OPEN_VALUE: AttributeDef = AttributeDef::open("value", false);

#[derive(Default)]
struct Interner {
    schemas: HashMap<String, &'static SchemaDef>,
    attributes: HashMap<(String, bool), &'static AttributeDef>,
}

impl Interner {
    fn len(&self) -> usize {
        self.schemas.len() + self.attributes.len()
    }
}

static INTERNER: Mutex<Option<Interner>> = Mutex::new(None);

fn with_interner<T>(f: impl FnOnce(&mut Interner) -> T) -> T {
    let mut guard = INTERNER.lock().unwrap_or_else(PoisonError::into_inner);
    f(guard.get_or_insert_with(Interner::default))
}

/// Whether `urn` names a custom extension of `kind`: the extension prefix, a name after
/// it, URN characters only, and not a schema Custodian defines.
pub fn is_custom_urn(kind: ResourceKind, urn: &str) -> bool {
    urn.len() > EXTENSION_PREFIX.len()
        && urn.len() <= MAX_URN_BYTES
        && urn.get(..EXTENSION_PREFIX.len()).is_some_and(|p| p.eq_ignore_ascii_case(EXTENSION_PREFIX))
        && urn.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'.' | b'-' | b'_'))
        && !urn.ends_with(':')
        && !kind.extensions().iter().any(|s| s.id.eq_ignore_ascii_case(urn))
}

/// Whether a key written where a schema URN may stand names the schema itself rather than
/// an attribute in Entra's pathless form: a custom URN ending with the resource type
/// (`…:acme:2.0:User`), or one the body lists in `schemas`.
pub fn names_schema(kind: ResourceKind, key: &str, declared: &[&str]) -> bool {
    is_custom_urn(kind, key)
        && (key.rsplit(':').next().is_some_and(|last| last.eq_ignore_ascii_case(kind.name()))
            || declared.iter().any(|d| d.eq_ignore_ascii_case(key)))
}

/// A name RFC 7643 §2.1 allows (`ALPHA *(nameChar)`), within [`MAX_NAME_BYTES`].
pub fn is_attribute_name(name: &str) -> bool {
    name.len() <= MAX_NAME_BYTES
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn full() -> ScimError {
    ScimError::invalid_value(format!(
        "more than {MAX_INTERNED} distinct custom extension attributes: declare the extension's schema \
         with --scim-schema-file"
    ))
}

/// The definition of the custom extension `urn`, created on first use.
pub fn schema(kind: ResourceKind, urn: &str) -> ScimResult<&'static SchemaDef> {
    if !is_custom_urn(kind, urn) {
        return Err(ScimError::invalid_value(format!("{urn} is not a custom extension URN")));
    }
    with_interner(|i| {
        let key = urn.to_ascii_lowercase();
        if let Some(s) = i.schemas.get(&key) {
            return Ok(*s);
        }
        if i.len() >= MAX_INTERNED {
            return Err(full());
        }
        let id: &'static str = Box::leak(urn.to_string().into_boxed_str());
        let name = id.rsplit(':').nth(2).unwrap_or(id);
        let def: &'static SchemaDef = Box::leak(Box::new(SchemaDef {
            id,
            name,
            description: "A custom extension no schema file declares: its attributes are kept as sent",
            attributes: &[],
        }));
        i.schemas.insert(key, def);
        Ok(def)
    })
}

/// The definition of a custom attribute: text compared without regard to case, or, for
/// `complex`, an object whose sub-attributes are such text.
pub fn attribute(name: &str, complex: bool) -> ScimResult<&'static AttributeDef> {
    if !is_attribute_name(name) {
        return Err(ScimError::invalid_value(format!(
            "'{}' is not an attribute name (a letter, then letters, digits, '-' or '_'; at most {MAX_NAME_BYTES} bytes)",
            crate::error::snippet(name)
        )));
    }
    with_interner(|i| {
        let key = (name.to_ascii_lowercase(), complex);
        if let Some(d) = i.attributes.get(&key) {
            return Ok(*d);
        }
        if i.len() >= MAX_INTERNED {
            return Err(full());
        }
        let name: &'static str = Box::leak(name.to_string().into_boxed_str());
        let def: &'static AttributeDef = Box::leak(Box::new(AttributeDef::open(name, complex)));
        i.attributes.insert(key, def);
        Ok(def)
    })
}

/// The custom extensions of a POST or PUT body, or of a document being re-canonicalised,
/// merged into `doc` under their URNs: extension objects, and Entra's pathless
/// `urn:…:User:attr` keys. Values are checked ([`check_value`]) and kept as sent.
///
/// A key is a whole extension when it ends with the resource type (`…:2.0:User`), is
/// listed in `schemas`, or holds an object and does not extend such a URN. A key that
/// extends such a URN is an attribute in the pathless form (`…:2.0:User:badge`).
pub fn collect(kind: ResourceKind, body: &Map<String, Value>, doc: &mut Map<String, Value>) -> ScimResult<()> {
    let declared: Vec<&str> = match crate::resource::get_ci(body, "schemas") {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    for (key, value) in body {
        if kind.extensions().iter().any(|s| s.id.eq_ignore_ascii_case(key)) {
            continue;
        }
        let (urn, name) = crate::schema::split_urn(key);
        let whole = names_schema(kind, key, &declared)
            || (is_custom_urn(kind, key)
                && value.is_object()
                && !urn.is_some_and(|u| names_schema(kind, u, &declared)));
        if whole {
            let schema = schema(kind, key)?;
            match value {
                v if crate::resource::is_absent(v) => {}
                Value::Object(attrs) => {
                    for (name, v) in attrs {
                        set(doc, schema.id, name, v)?;
                    }
                }
                _ => return Err(ScimError::invalid_value(format!("{key} must be an object of attributes"))),
            }
            continue;
        }
        let Some(urn) = urn else {
            continue;
        };
        if names_schema(kind, urn, &declared) {
            let schema = schema(kind, urn)?;
            set(doc, schema.id, name, value)?;
        }
    }
    check_size(kind, doc)
}

/// Sets one custom attribute (an unassigned value removes it), keeping the spelling of
/// the name already stored.
pub fn set(doc: &mut Map<String, Value>, urn: &'static str, name: &str, v: &Value) -> ScimResult<()> {
    attribute(name, false)?;
    let path = format!("{urn}:{name}");
    check_value(&path, v, 0)?;
    with_extension(doc, urn, |ext| {
        let key = existing_key(ext, name).unwrap_or_else(|| name.to_string());
        if crate::resource::is_absent(v) {
            ext.remove(&key);
        } else {
            ext.insert(key, v.clone());
        }
        Ok(())
    })
}

/// The key under which `name` is stored in an extension object, whatever its case.
pub fn existing_key(ext: &Map<String, Value>, name: &str) -> Option<String> {
    ext.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

/// Runs `f` on the object of the custom extension `urn` in `doc` (found without regard
/// to case and stored under `urn`), dropping it again when left empty.
pub fn with_extension<T>(
    doc: &mut Map<String, Value>,
    urn: &'static str,
    f: impl FnOnce(&mut Map<String, Value>) -> ScimResult<T>,
) -> ScimResult<T> {
    let mut ext = Map::new();
    let keys: Vec<String> = doc.keys().filter(|k| k.eq_ignore_ascii_case(urn)).cloned().collect();
    for k in keys {
        if let Some(Value::Object(o)) = doc.remove(&k) {
            ext.extend(o);
        }
    }
    let out = f(&mut ext);
    if !ext.is_empty() {
        doc.insert(urn.to_string(), Value::Object(ext));
    }
    out
}

/// A value kept as sent, within limits: text without NUL and at most
/// `LONG_VALUE_MAX_BYTES`, objects keyed by attribute names, nesting at most
/// [`MAX_DEPTH`] deep.
pub fn check_value(path: &str, v: &Value, depth: usize) -> ScimResult<()> {
    if depth > MAX_DEPTH {
        return Err(ScimError::invalid_value(format!("{path} is nested too deeply (at most {MAX_DEPTH} levels)")));
    }
    match v {
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
        Value::String(s) if s.contains('\0') => {
            Err(ScimError::invalid_value(format!("{path} must be text without NUL (U+0000) characters")))
        }
        Value::String(s) if s.len() > LONG_VALUE_MAX_BYTES => {
            Err(crate::resource::too_long(path, LONG_VALUE_MAX_BYTES))
        }
        Value::String(_) => Ok(()),
        Value::Array(items) => items.iter().try_for_each(|i| check_value(path, i, depth + 1)),
        Value::Object(o) => o.iter().try_for_each(|(k, x)| {
            if !is_attribute_name(k) {
                return Err(ScimError::invalid_value(format!(
                    "{path} has a key that is not an attribute name: '{}'",
                    crate::error::snippet(k)
                )));
            }
            check_value(&format!("{path}.{k}"), x, depth + 1)
        }),
    }
}

/// The custom extensions of a document together stay within [`MAX_CUSTOM_BYTES`].
pub fn check_size(kind: ResourceKind, doc: &Map<String, Value>) -> ScimResult<()> {
    let bytes: usize = doc
        .iter()
        .filter(|(k, _)| is_custom_urn(kind, k))
        .map(|(k, v)| k.len() + serde_json::to_string(v).map_or(0, |s| s.len()))
        .sum();
    if bytes > MAX_CUSTOM_BYTES {
        return Err(ScimError::invalid_value(format!(
            "the custom extensions hold {bytes} bytes; at most {MAX_CUSTOM_BYTES} are kept per resource"
        )));
    }
    Ok(())
}

/// The text a scalar is compared as: strings as sent, numbers and booleans as JSON
/// writes them (`42`, `true`), so that `badge eq "42"` finds a badge sent as a number.
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// The text of a filter number compared with custom text: `42`, not `42.0`.
pub fn number_text(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 { format!("{}", n as i64) } else { n.to_string() }
}

/// A PATCH operation on a custom attribute (`…:User:badge`) or on one of its
/// sub-attributes (`…:User:address.city`, every element of a list when it is one).
/// `add` appends to a list and sets anything else; `replace` sets; `remove` removes.
pub(crate) fn apply_patch(
    doc: &mut Map<String, Value>,
    op: PatchOpKind,
    urn: &'static str,
    attr: &AttributeDef,
    sub: Option<&AttributeDef>,
    value: Option<&Value>,
) -> ScimResult<()> {
    let path = match sub {
        Some(s) => format!("{urn}:{}.{}", attr.name, s.name),
        None => format!("{urn}:{}", attr.name),
    };
    if let Some(v) = value {
        check_value(&path, v, usize::from(sub.is_some()))?;
    }
    let value = value.filter(|v| !crate::resource::is_absent(v));
    with_extension(doc, urn, |ext| {
        let key = existing_key(ext, attr.name).unwrap_or_else(|| attr.name.to_string());
        let Some(sub) = sub else {
            match (op, value) {
                (PatchOpKind::Remove, _) | (PatchOpKind::Replace, None) => {
                    ext.remove(&key);
                }
                (PatchOpKind::Add, None) => {}
                (PatchOpKind::Add, Some(v)) => match (ext.get_mut(&key), v) {
                    (Some(Value::Array(items)), Value::Array(more)) => {
                        items.extend(more.iter().filter(|m| !items.contains(m)).cloned().collect::<Vec<_>>())
                    }
                    (Some(Value::Array(items)), one) if !items.contains(one) => items.push(one.clone()),
                    (Some(Value::Array(_)), _) => {}
                    _ => {
                        ext.insert(key, v.clone());
                    }
                },
                (PatchOpKind::Replace, Some(v)) => {
                    ext.insert(key, v.clone());
                }
            }
            return Ok(());
        };
        let set_sub = |o: &mut Map<String, Value>| {
            let sub_key = existing_key(o, sub.name).unwrap_or_else(|| sub.name.to_string());
            match (op, value) {
                (PatchOpKind::Remove, _) | (PatchOpKind::Replace, None) => {
                    o.remove(&sub_key);
                }
                (PatchOpKind::Add, None) => {}
                (_, Some(v)) => {
                    o.insert(sub_key, v.clone());
                }
            }
        };
        match ext.get_mut(&key) {
            Some(Value::Object(o)) => set_sub(o),
            Some(Value::Array(items)) => {
                for item in items.iter_mut() {
                    if let Value::Object(o) = item {
                        set_sub(o);
                    }
                }
            }
            Some(_) if op == PatchOpKind::Remove => {}
            Some(_) => {
                return Err(ScimError::invalid_path(format!(
                    "{urn}:{} is not an object, so it has no sub-attribute {}",
                    attr.name, sub.name
                )));
            }
            None => {
                let mut o = Map::new();
                set_sub(&mut o);
                if !o.is_empty() {
                    ext.insert(key.clone(), Value::Object(o));
                }
            }
        }
        if ext.get(&key).is_some_and(crate::resource::is_absent) {
            ext.remove(&key);
        }
        Ok(())
    })
}
