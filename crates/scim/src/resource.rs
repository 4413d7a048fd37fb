//! Resources in and out: POST/PUT bodies are validated and canonicalised into the
//! stored document; stored documents are rendered into full SCIM resources.
//!
//! The stored "doc" holds only client-writable attributes, keyed in canonical schema
//! case, extension attributes under their URN key. It never holds `id`, `meta`,
//! `schemas`, `password`, a User's `groups` or a Group's `members`.
//!
//! The per-attribute canonicalisation here (`canon_attr` and friends) is shared with
//! PATCH, so that a value means the same whichever way it arrives.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use crate::error::{ScimError, ScimResult};
use crate::limits::NAME_MAX_BYTES;
use crate::schema::{AttrType, AttributeDef, COMMON_ATTRIBUTES, Mutability, ResourceKind, SchemaDef};

/// What a member of a group is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberKind {
    User,
    Group,
}

impl MemberKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberKind::User => "User",
            MemberKind::Group => "Group",
        }
    }

    /// `User` or `Group`, without regard to case.
    pub fn parse(s: &str) -> Option<MemberKind> {
        if s.eq_ignore_ascii_case("User") {
            Some(MemberKind::User)
        } else if s.eq_ignore_ascii_case("Group") {
            Some(MemberKind::Group)
        } else {
            None
        }
    }
}

/// A member as a client names it: an id and, optionally, what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRef {
    pub value: String,
    pub kind: Option<MemberKind>,
}

/// A parsed POST or PUT body.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceInput {
    /// The canonical document (see the module documentation).
    pub doc: Value,
    /// Group only: the members listed in the body; `None` when the body has no `members`.
    pub members: Option<Vec<MemberRef>>,
    /// A non-empty `password` was sent. It is never stored (Custodian authenticates
    /// nobody with it) but the caller may want to know.
    pub password_supplied: bool,
}

/// Parses a POST or PUT body into the canonical document.
pub fn parse_resource(kind: ResourceKind, body: &Value) -> ScimResult<ResourceInput> {
    let obj = body.as_object().ok_or_else(|| ScimError::invalid_syntax("the request body must be a JSON object"))?;
    check_schemas(kind, obj)?;

    let mut doc = Map::new();
    let mut password_supplied = false;
    for def in top_level_attributes(kind) {
        let Some(raw) = get_ci(obj, def.name) else {
            continue;
        };
        match def.mutability {
            // id, meta, groups: the server's to set; ignored on input (RFC 7643 §7), but
            // a value of the wrong shape is refused like any other ("groups": "x").
            Mutability::ReadOnly => {
                canon_attr(def, def.name, raw)?;
                continue;
            }
            // password: validated, flagged, never stored.
            Mutability::WriteOnly => {
                password_supplied |= canon_attr(def, def.name, raw)?.is_some();
                continue;
            }
            Mutability::ReadWrite | Mutability::Immutable => {}
        }
        // Membership lives in its own table; parsed separately below.
        if is_group_members(kind, def) {
            continue;
        }
        if let Some(v) = canon_attr(def, def.name, raw)? {
            doc.insert(def.name.to_string(), v);
        }
    }
    for schema in kind.extensions() {
        if let Some(raw) = get_ci(obj, schema.id)
            && let Some(v) = canon_extension(schema, raw)?
        {
            doc.insert(schema.id.to_string(), v);
        }
    }
    crate::custom::collect(kind, obj, &mut doc)?;

    let members = match (kind, get_ci(obj, "members")) {
        (ResourceKind::Group, Some(v)) => Some(parse_members(v)?),
        _ => None,
    };
    let doc = Value::Object(doc);
    check_required(kind, &doc)?;
    if kind == ResourceKind::User
        && let Some(user_name) = doc.get("userName").and_then(Value::as_str)
    {
        check_user_name(user_name)?;
    }
    Ok(ResourceInput { doc, members, password_supplied })
}

/// A userName must not pass for another one (UTS #39): no invisible or
/// direction-changing characters, no compatibility forms (fullwidth letters), and a
/// single script in each word, so that "j\u{430}ne" (Cyrillic а) cannot sit beside "jane". A name that
/// differs from another only by its Unicode normalisation is the same name (see
/// `filter::eval`, which compares NFC forms), so it is refused as taken, not here.
pub fn check_user_name(user_name: &str) -> ScimResult<()> {
    use unicode_normalization::UnicodeNormalization;
    use unicode_security::MixedScript;
    let refuse = |why: &str| Err(ScimError::invalid_value(format!("userName {why}")));
    if let Some(c) = user_name.chars().find(|c| c.is_control() || is_invisible(*c)) {
        return refuse(&format!("contains the invisible or control character U+{:04X}", c as u32));
    }
    if !user_name.nfkc().eq(user_name.nfc()) {
        return refuse("contains compatibility characters (such as fullwidth letters): send its NFKC form");
    }
    // Per word: "\u{438}\u{432}\u{430}\u{43d}@example.com" is two scripts, each word one.
    let mut words = user_name.split(|c: char| c.is_ascii_punctuation() || c.is_whitespace());
    if !words.all(|word| word.is_single_script()) {
        return refuse("mixes writing systems (such as Latin and Cyrillic letters), which makes look-alike names");
    }
    Ok(())
}

/// Default-ignorable and bidirectional-control characters: they change how a name
/// looks, or make it look like another, without being seen.
fn is_invisible(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x034F | 0x061C | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180B..=0x180F
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F
        | 0xFEFF | 0xFFA0 | 0xFFF0..=0xFFF8 | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A
        | 0xE0000..=0xE0FFF)
}

/// `schemas` is optional on input (several clients omit it), but when present it must be
/// an array of strings naming the resource's core schema. Other URIs are tolerated
/// (Entra adds its own ADSCIM URI to groups). A body whose `schemas` lacks the core
/// schema is most likely sent to the wrong endpoint (a Group posted to /Users): it is
/// rejected rather than silently stored with all its attributes dropped.
fn check_schemas(kind: ResourceKind, obj: &Map<String, Value>) -> ScimResult<()> {
    let core = kind.core_schema().id;
    match get_ci(obj, "schemas") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(items)) => {
            let mut has_core = false;
            for item in items {
                let s = item.as_str().ok_or_else(|| ScimError::invalid_value("schemas must be an array of strings"))?;
                has_core |= s.eq_ignore_ascii_case(core);
            }
            if has_core { Ok(()) } else { Err(ScimError::invalid_value(format!("schemas must contain {core}"))) }
        }
        Some(_) => Err(ScimError::invalid_value("schemas must be an array of strings")),
    }
}

/// The attributes found at the top level of a resource: the common ones, then the
/// core schema's, in schema order (which is also the canonical order of the doc).
fn top_level_attributes(kind: ResourceKind) -> impl Iterator<Item = &'static AttributeDef> {
    COMMON_ATTRIBUTES.iter().chain(kind.core_schema().attributes.iter())
}

pub(crate) fn is_group_members(kind: ResourceKind, def: &AttributeDef) -> bool {
    kind == ResourceKind::Group && def.name == "members"
}

/// The attributes whose `required` flag the doc must honour.
pub(crate) fn check_required(kind: ResourceKind, doc: &Value) -> ScimResult<()> {
    for def in kind.core_schema().attributes.iter().filter(|d| d.required) {
        if doc.get(def.name).is_none_or(is_absent) {
            return Err(ScimError::invalid_value(format!("{} is required", def.name)));
        }
    }
    for schema in kind.extensions() {
        for def in schema.attributes.iter().filter(|d| d.required) {
            if doc.get(schema.id).and_then(|e| e.get(def.name)).is_none_or(is_absent) {
                return Err(ScimError::invalid_value(format!("{}:{} is required", schema.id, def.name)));
            }
        }
    }
    Ok(())
}

/// A member list: an array of `{"value": id, "type"?: "User"|"Group"}` objects. A single
/// object is read as a list of one, as for every multi-valued attribute; `display` and
/// `$ref` (even `null`) are ignored since the id is authoritative. `null` is the empty
/// list (RFC 7643 §2.5: null and `[]` are the same state).
pub(crate) fn parse_members(v: &Value) -> ScimResult<Vec<MemberRef>> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items.iter().map(parse_member).collect(),
        Value::Object(_) => Ok(vec![parse_member(v)?]),
        _ => Err(not_a_list_of_objects("members")),
    }
}

fn parse_member(v: &Value) -> ScimResult<MemberRef> {
    let bad_value = || ScimError::invalid_value("members.value must be a non-empty string");
    match v {
        Value::Object(o) => {
            let value = match get_ci(o, "value") {
                Some(Value::String(s)) if s.len() > NAME_MAX_BYTES => {
                    return Err(too_long("members.value", NAME_MAX_BYTES));
                }
                Some(Value::String(s)) if !s.is_empty() => s.clone(),
                _ => return Err(bad_value()),
            };
            let kind = match get_ci(o, "type") {
                None | Some(Value::Null) => None,
                Some(Value::String(t)) if t.is_empty() => None,
                Some(Value::String(t)) => Some(
                    MemberKind::parse(t)
                        .ok_or_else(|| ScimError::invalid_value("members.type must be \"User\" or \"Group\""))?,
                ),
                Some(_) => {
                    return Err(ScimError::invalid_value("members.type must be \"User\" or \"Group\""));
                }
            };
            Ok(MemberRef { value, kind })
        }
        _ => Err(not_a_list_of_objects("members")),
    }
}

// ---------------------------------------------------------------------------------
// Per-attribute canonicalisation, shared with PATCH.
// ---------------------------------------------------------------------------------

/// The value of `key` in `obj`, without regard to the key's case (RFC 7643 §2.1). An
/// exact match wins over a case-insensitive one.
pub(crate) fn get_ci<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).or_else(|| obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}

/// "Unassigned" in the sense of RFC 7643 §2.5: null, and empty strings, arrays, objects.
pub(crate) fn is_absent(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Bool(_) | Value::Number(_) => false,
    }
}

/// The schema (core or extension) of this resource type whose URN is `urn`.
/// A custom one (`crate::custom`) when `urn` ends with the resource type's name.
pub(crate) fn schema_by_urn(kind: ResourceKind, urn: &str) -> Option<&'static SchemaDef> {
    std::iter::once(kind.core_schema())
        .chain(kind.extensions().iter().copied())
        .find(|s| s.id.eq_ignore_ascii_case(urn))
        .or_else(|| {
            crate::custom::names_schema(kind, urn, &[]).then(|| crate::custom::schema(kind, urn).ok()).flatten()
        })
}

/// The canonical form of an extension object; unknown and readOnly attributes dropped.
pub(crate) fn canon_extension(schema: &SchemaDef, raw: &Value) -> ScimResult<Option<Value>> {
    if is_absent(raw) {
        return Ok(None);
    }
    let obj = raw.as_object().ok_or_else(|| ScimError::invalid_value(format!("{} must be an object", schema.id)))?;
    let mut out = Map::new();
    for def in schema.attributes {
        let Some(v) = get_ci(obj, def.name) else {
            continue;
        };
        if def.mutability == Mutability::ReadOnly {
            continue;
        }
        if let Some(v) = canon_attr(def, &format!("{}:{}", schema.id, def.name), v)? {
            out.insert(def.name.to_string(), v);
        }
    }
    Ok((!out.is_empty()).then_some(Value::Object(out)))
}

/// The canonical form of a whole attribute value; `None` when it is unassigned.
/// `path` names the attribute in error messages.
pub(crate) fn canon_attr(def: &AttributeDef, path: &str, v: &Value) -> ScimResult<Option<Value>> {
    if is_absent(v) {
        return Ok(None);
    }
    if !def.multi_valued {
        if let (AttrType::Complex, Value::Array(items)) = (def.ty, v) {
            return match single_from_list(def, path, items)? {
                Some(one) => canon_element(def, path, one),
                None => Ok(None),
            };
        }
        return canon_element(def, path, v);
    }
    let items: Vec<Value> = match v {
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                if let Some(x) = canon_element(def, path, item)? {
                    out.push(x);
                }
            }
            out
        }
        // A lone object for a multi-valued complex attribute (`"emails": {...}`) is read
        // as a one-element list: unambiguous, and cheaper than a 400 to the IdP.
        Value::Object(_) if def.ty == AttrType::Complex => canon_element(def, path, v)?.into_iter().collect(),
        _ if def.ty == AttrType::Complex => return Err(not_a_list_of_objects(path)),
        _ => return Err(ScimError::invalid_value(format!("{path} must be an array"))),
    };
    if items.is_empty() {
        return Ok(None);
    }
    let mut items = items;
    normalize_primary(&mut items);
    Ok(Some(Value::Array(items)))
}

/// One value of the attribute: one element of a multi-valued attribute, or the value
/// of a single-valued one.
pub(crate) fn canon_element(def: &AttributeDef, path: &str, v: &Value) -> ScimResult<Option<Value>> {
    if is_absent(v) {
        return Ok(None);
    }
    if def.ty != AttrType::Complex {
        return canon_scalar(def, path, v);
    }
    let obj = match v {
        Value::Object(o) => o.clone(),
        // A plain string where the manager is expected is read as `{"value": s}`: Entra
        // and others send the manager as a bare id.
        Value::String(s) if is_reference_like(def) => {
            let mut o = Map::new();
            o.insert("value".to_string(), Value::String(s.clone()));
            o
        }
        _ if def.multi_valued => return Err(not_a_list_of_objects(path)),
        _ => {
            return Err(ScimError::invalid_value(format!("{path} must be a complex value (an object)")));
        }
    };
    let mut out = Map::new();
    for sub in def.sub_attributes {
        let Some(raw) = get_ci(&obj, sub.name) else {
            continue;
        };
        if sub.mutability == Mutability::ReadOnly {
            continue;
        }
        if let Some(x) = canon_attr(sub, &format!("{path}.{}", sub.name), raw)? {
            out.insert(sub.name.to_string(), x);
        }
    }
    // A single-valued reference-like complex attribute (the manager) without its `value`
    // points at nothing: Entra removes the manager with `{"value": ""}`.
    if !def.multi_valued && def.sub_attribute("value").is_some() && !out.contains_key("value") {
        return Ok(None);
    }
    Ok((!out.is_empty()).then_some(Value::Object(out)))
}

/// A single-valued complex attribute that points at another resource by its `value`:
/// the enterprise `manager`. Entra sends it as a bare id or a one-element list, and both
/// are read as the object they stand for; every other complex attribute takes an object.
pub(crate) fn is_reference_like(def: &AttributeDef) -> bool {
    !def.multi_valued && def.ty == AttrType::Complex && def.sub_attribute("value").is_some()
}

/// The one element of a list sent for a single-valued complex attribute: allowed for the
/// manager (Entra's `[{"value": ...}]`), a list of one at most; `None` for an empty list.
pub(crate) fn single_from_list<'a>(
    def: &AttributeDef,
    path: &str,
    items: &'a [Value],
) -> ScimResult<Option<&'a Value>> {
    if !is_reference_like(def) {
        return Err(ScimError::invalid_value(format!("{path} must be a complex value (an object), not a list")));
    }
    let mut present = items.iter().filter(|x| !is_absent(x));
    let first = present.next();
    if present.next().is_some() {
        return Err(ScimError::invalid_value(format!("{path} takes one value, not a list of several")));
    }
    Ok(first)
}

/// A multi-valued complex attribute sent as anything but objects (`"emails": "x@y"`).
pub(crate) fn not_a_list_of_objects(path: &str) -> ScimError {
    ScimError::invalid_value(format!("{path} must be a list of complex values (objects)"))
}

/// A simple (non-complex) value checked against its type.
fn canon_scalar(def: &AttributeDef, path: &str, v: &Value) -> ScimResult<Option<Value>> {
    if is_absent(v) {
        return Ok(None);
    }
    let wrong = |what: &str| ScimError::invalid_value(format!("{path} must be {what}"));
    let out = match def.ty {
        AttrType::String | AttrType::Reference | AttrType::Binary => match v {
            // Refused on every backend alike: PostgreSQL cannot store U+0000 at all.
            Value::String(s) if s.contains('\0') => return Err(wrong("text without NUL (U+0000) characters")),
            Value::String(s) if is_too_long(def, s) => return Err(too_long(path, def.max_bytes)),
            Value::String(_) => v.clone(),
            _ => return Err(wrong("a string")),
        },
        // Entra (without its compliance flag) and Okta send booleans as "True"/"False".
        AttrType::Boolean => match v {
            Value::Bool(_) => v.clone(),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Value::Bool(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Value::Bool(false),
            _ => return Err(wrong("a boolean")),
        },
        AttrType::Integer => match v {
            Value::Number(n) if n.is_i64() || n.is_u64() => v.clone(),
            // 3.0 is an integer written as a float by some JSON encoders.
            Value::Number(n) => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => json!(f as i64),
                _ => return Err(wrong("an integer")),
            },
            _ => return Err(wrong("an integer")),
        },
        AttrType::Decimal => match v {
            Value::Number(_) => v.clone(),
            _ => return Err(wrong("a number")),
        },
        AttrType::DateTime => match v.as_str().map(DateTime::parse_from_rfc3339) {
            Some(Ok(t)) => Value::String(t.with_timezone(&Utc).to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            _ => return Err(wrong("an RFC 3339 date-time string")),
        },
        AttrType::Complex => return canon_element(def, path, v),
    };
    Ok(Some(out))
}

/// Whether a text value is over its attribute's limit, as sent or as indexed: the index
/// holds its normalised form (NFC, lower case unless caseExact), which may be longer
/// than what was sent (NFC triples some characters), and must still fit.
fn is_too_long(def: &AttributeDef, s: &str) -> bool {
    if s.len() > def.max_bytes {
        return true;
    }
    // ASCII normalises to itself, at the same length: no need to build the key.
    !s.is_ascii()
        && matches!(crate::filter::str_key(def, s), Some(crate::filter::CompareKey::Str(key)) if key.len() > def.max_bytes)
}

/// A value over its limit: the attribute and the limit are named, never the value.
pub(crate) fn too_long(path: &str, max_bytes: usize) -> ScimError {
    ScimError::invalid_value(format!("{path} is too long: {} of UTF-8", crate::limits::over_limit_reason(max_bytes)))
}

pub(crate) fn is_primary(v: &Value) -> bool {
    v.get("primary").and_then(Value::as_bool) == Some(true)
}

/// At most one value may be primary (RFC 7643 §2.4). Several primaries in one body are
/// not worth a 400: the first keeps it, the others become `false`.
pub(crate) fn normalize_primary(items: &mut [Value]) {
    let mut seen = false;
    for item in items.iter_mut() {
        if is_primary(item) {
            if seen && let Some(o) = item.as_object_mut() {
                o.insert("primary".to_string(), Value::Bool(false));
            }
            seen = true;
        }
    }
}

// ---------------------------------------------------------------------------------
// Rendering.
// ---------------------------------------------------------------------------------

/// What the store knows about a resource besides its doc.
#[derive(Debug, Clone, Copy)]
pub struct ResourceMeta<'a> {
    pub id: &'a str,
    pub created: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
    pub version: &'a str,
    /// The absolute URL of the resource.
    pub location: &'a str,
}

/// A member of a group, for rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberOut {
    pub value: String,
    pub display: Option<String>,
    pub kind: MemberKind,
    /// The absolute URL of the member resource, rendered as `$ref`.
    pub location: String,
}

/// A group of a user, for rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRefOut {
    pub value: String,
    pub display: Option<String>,
    pub location: String,
    /// A direct membership, as opposed to one through a nested group.
    pub direct: bool,
}

/// The timestamp format of `meta`: RFC 3339, UTC with `Z`, with as many fractional
/// digits as needed so that a value read back compares equal in filters.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The full resource, with every attribute the schema returns by default; apply a
/// `Projection` to it for `attributes`/`excludedAttributes`.
pub fn render(
    kind: ResourceKind,
    doc: &Value,
    meta: &ResourceMeta,
    members: Option<&[MemberOut]>,
    groups: Option<&[GroupRefOut]>,
) -> Value {
    let empty = Map::new();
    let src = doc.as_object().unwrap_or(&empty);
    let mut out = Map::new();

    let mut schemas = vec![Value::String(kind.core_schema().id.to_string())];
    for ext in kind.extensions() {
        if src.get(ext.id).is_some_and(|v| !is_absent(v)) {
            schemas.push(Value::String(ext.id.to_string()));
        }
    }
    let custom = || src.iter().filter(|(k, v)| crate::custom::is_custom_urn(kind, k) && !is_absent(v));
    schemas.extend(custom().map(|(k, _)| Value::String(k.clone())));
    out.insert("schemas".into(), Value::Array(schemas));
    out.insert("id".into(), Value::String(meta.id.to_string()));

    // Only attributes of the schema are rendered: anything else in the doc would make
    // the response disagree with /Schemas.
    for def in top_level_attributes(kind) {
        if def.mutability == Mutability::WriteOnly || def.name == "id" || def.name == "meta" {
            continue;
        }
        if is_group_members(kind, def) {
            // An empty group has no `members` key: RFC 7643 §2.5 makes `[]` and an
            // absent attribute the same state, and the RFC examples omit unassigned ones.
            if let Some(ms) = members.filter(|m| !m.is_empty()) {
                out.insert("members".into(), Value::Array(ms.iter().map(render_member).collect()));
            }
            continue;
        }
        if kind == ResourceKind::User && def.name == "groups" {
            if let Some(gs) = groups.filter(|g| !g.is_empty()) {
                out.insert("groups".into(), Value::Array(gs.iter().map(render_group).collect()));
            }
            continue;
        }
        if let Some(v) = src.get(def.name).filter(|v| !is_absent(v)) {
            out.insert(def.name.to_string(), v.clone());
        }
    }
    for ext in kind.extensions() {
        if let Some(v) = src.get(ext.id).filter(|v| !is_absent(v)) {
            out.insert(ext.id.to_string(), v.clone());
        }
    }
    out.extend(custom().map(|(k, v)| (k.clone(), v.clone())));
    out.insert(
        "meta".into(),
        json!({
            "resourceType": kind.name(),
            "created": format_time(meta.created),
            "lastModified": format_time(meta.last_modified),
            "location": meta.location,
            "version": meta.version,
        }),
    );
    Value::Object(out)
}

fn render_member(m: &MemberOut) -> Value {
    let mut o = Map::new();
    o.insert("value".into(), Value::String(m.value.clone()));
    if let Some(d) = &m.display {
        o.insert("display".into(), Value::String(d.clone()));
    }
    o.insert("type".into(), Value::String(m.kind.as_str().to_string()));
    o.insert("$ref".into(), Value::String(m.location.clone()));
    Value::Object(o)
}

fn render_group(g: &GroupRefOut) -> Value {
    let mut o = Map::new();
    o.insert("value".into(), Value::String(g.value.clone()));
    if let Some(d) = &g.display {
        o.insert("display".into(), Value::String(d.clone()));
    }
    o.insert("$ref".into(), Value::String(g.location.clone()));
    o.insert("type".into(), Value::String(if g.direct { "direct" } else { "indirect" }.to_string()));
    Value::Object(o)
}

/// The name shown for a resource as a member or a group: a User's `displayName`, else
/// its `userName`; a Group's `displayName`.
pub fn display_of(kind: ResourceKind, doc: &Value) -> Option<String> {
    let get = |k: &str| doc.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    match kind {
        ResourceKind::User => get("displayName").or_else(|| get("userName")),
        ResourceKind::Group => get("displayName"),
    }
    .map(str::to_string)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::ScimType;
    use crate::schema::{ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, USER_SCHEMA};
    use chrono::TimeZone;

    #[test]
    fn user_names_that_pass_for_another_are_refused() {
        for ok in [
            "jane@example.com",
            "jos\u{e9}@example.com",
            "\u{438}\u{432}\u{430}\u{43d}@example.com",
            "\u{5c71}\u{7530}\u{3084}\u{307e}\u{3060}@example.jp",
            "o'brien-2@example.com",
        ] {
            assert!(check_user_name(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("j\u{430}ne@example.com", "mixes"),
            ("jane\u{202e}moc@example.com", "U+202E"),
            ("ja\u{200d}ne@example.com", "U+200D"),
            ("ja\u{ad}ne@example.com", "U+00AD"),
            ("ja\tne@example.com", "U+0009"),
            ("\u{ff4a}ane@example.com", "compatibility"),
        ] {
            let e = check_user_name(bad).unwrap_err();
            assert_eq!((e.status, e.scim_type), (400, Some(ScimType::InvalidValue)), "{bad}");
            assert!(e.detail.contains(why), "{bad}: {}", e.detail);
        }
        // Through a resource body too (POST, PUT and the result of a PATCH).
        let body = json!({"userName": "j\u{430}ne@example.com"});
        assert!(parse_resource(ResourceKind::User, &body).is_err());
        let group = json!({"displayName": "j\u{430}ne's team"});
        assert!(parse_resource(ResourceKind::Group, &group).is_ok(), "group names are not user names");
    }

    fn user(body: Value) -> ScimResult<ResourceInput> {
        parse_resource(ResourceKind::User, &body)
    }

    #[test]
    fn text_with_a_nul_character_is_invalid_value_naming_the_attribute() {
        for body in [
            json!({"userName": "a\u{0}b"}),
            json!({"userName": "ok", "emails": [{"value": "x\u{0}@example.com"}]}),
            json!({"userName": "ok", "name": {"givenName": "\u{0}"}}),
        ] {
            let e = user(body.clone()).expect_err("NUL must be refused");
            assert_eq!(e.status, 400, "{body}");
            assert_eq!(e.scim_type, Some(ScimType::InvalidValue), "{body}");
            assert!(e.detail.contains("NUL"), "{}", e.detail);
        }
    }

    #[test]
    fn text_over_its_limit_is_invalid_value_naming_the_attribute_not_the_value() {
        use crate::limits::{LONG_VALUE_MAX_BYTES, NAME_MAX_BYTES};
        let name = |n: usize| "n".repeat(n);
        // Up to the limit, in bytes of UTF-8: 512 two-byte characters are 1,024 bytes.
        for body in [
            json!({"userName": name(NAME_MAX_BYTES)}),
            json!({"userName": "\u{e9}".repeat(NAME_MAX_BYTES / 2)}),
            json!({"userName": "a", "addresses": [{"formatted": name(LONG_VALUE_MAX_BYTES)}]}),
        ] {
            assert!(user(body.clone()).is_ok(), "{}", body.to_string().len());
        }
        let over = name(NAME_MAX_BYTES + 1);
        for (body, attribute, limit) in [
            (json!({"userName": over}), "userName", NAME_MAX_BYTES),
            (json!({"userName": "\u{e9}".repeat(NAME_MAX_BYTES / 2 + 1)}), "userName", NAME_MAX_BYTES),
            (json!({"userName": "a", "externalId": over}), "externalId", NAME_MAX_BYTES),
            (json!({"userName": "a", "emails": [{"value": over}]}), "emails.value", NAME_MAX_BYTES),
            (json!({"userName": "a", "name": {"givenName": over}}), "name.givenName", NAME_MAX_BYTES),
            (
                json!({"userName": "a", "addresses": [{"formatted": name(LONG_VALUE_MAX_BYTES + 1)}]}),
                "addresses.formatted",
                LONG_VALUE_MAX_BYTES,
            ),
            (
                json!({"userName": "a", ENTERPRISE_USER_SCHEMA: {"department": over}}),
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
                NAME_MAX_BYTES,
            ),
            (
                json!({"userName": "a", ENTERPRISE_USER_SCHEMA: {"manager": {"value": over}}}),
                "manager.value",
                NAME_MAX_BYTES,
            ),
            // 800 bytes as sent, 2,400 once in NFC (each symbol decomposes into three):
            // the index holds the normalised form, so that must fit too.
            (json!({"userName": "\u{1d160}".repeat(200)}), "userName", NAME_MAX_BYTES),
            (json!({"userName": "a", "password": over}), "password", NAME_MAX_BYTES),
        ] {
            let e = user(body).expect_err(attribute);
            assert_eq!((e.status, e.scim_type), (400, Some(ScimType::InvalidValue)), "{attribute}");
            assert!(e.detail.contains(attribute), "{attribute}: {}", e.detail);
            assert!(e.detail.contains(&format!("at most {limit} bytes")), "{attribute}: {}", e.detail);
            assert!(e.detail.len() < 200, "the value is not echoed: {}", e.detail);
        }
        let group = json!({"displayName": over});
        assert!(parse_resource(ResourceKind::Group, &group).unwrap_err().detail.contains("displayName"));
        let members = json!({"displayName": "g", "members": [{"value": name(NAME_MAX_BYTES + 1)}]});
        let e = parse_resource(ResourceKind::Group, &members).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
        assert!(e.detail.contains("members.value"), "{}", e.detail);
    }

    #[test]
    fn values_of_the_wrong_shape_are_invalid_value_naming_the_attribute() {
        let multi =
            ["emails", "phoneNumbers", "ims", "photos", "addresses", "entitlements", "roles", "x509Certificates"];
        for attribute in multi.into_iter().chain(["groups"]) {
            for wrong in [json!("x@example.com"), json!(3), json!(true), json!(["x@example.com"]), json!([[{}]])] {
                let body = json!({"userName": "a", attribute: wrong});
                let e = user(body.clone()).expect_err(&body.to_string());
                assert_eq!((e.status, e.scim_type), (400, Some(ScimType::InvalidValue)), "{body}");
                assert!(e.detail.starts_with(attribute), "{body}: {}", e.detail);
            }
        }
        for (body, attribute) in [
            (json!({"userName": "a", "name": [{"givenName": "A"}]}), "name"),
            (json!({"userName": "a", "name": "A"}), "name"),
            (json!({"userName": "a", "meta": "x"}), "meta"),
            (json!({"userName": "a", "id": 7}), "id"),
            (json!({"userName": "a", "displayName": {"x": 1}}), "displayName"),
            (json!({"userName": "a", ENTERPRISE_USER_SCHEMA: {"manager": 7}}), "manager"),
            (
                json!({"userName": "a", ENTERPRISE_USER_SCHEMA: {"manager": [{"value": "m1"}, {"value": "m2"}]}}),
                "manager",
            ),
            (json!({"userName": "a", ENTERPRISE_USER_SCHEMA: {"department": ["Sales"]}}), "department"),
        ] {
            let e = user(body.clone()).expect_err(&body.to_string());
            assert_eq!(e.scim_type, Some(ScimType::InvalidValue), "{body}");
            assert!(e.detail.contains(attribute), "{body}: {}", e.detail);
        }
        for members in [json!("u1"), json!(5), json!(["u1"]), json!([5])] {
            let body = json!({"displayName": "g", "members": members});
            let e = parse_resource(ResourceKind::Group, &body).expect_err(&body.to_string());
            assert_eq!(e.scim_type, Some(ScimType::InvalidValue), "{body}");
            assert!(e.detail.starts_with("members"), "{body}: {}", e.detail);
        }
        // What IdPs send stays accepted: the manager as a bare id or a list of one
        // (Entra), a lone object for a list, booleans as strings, read-only values echoed.
        let doc = user(json!({
            "userName": "a",
            "active": "False",
            "emails": {"value": "a@example.com"},
            "groups": [{"value": "g1", "display": "Eng", "type": "direct"}],
            "meta": {"resourceType": "User"},
            ENTERPRISE_USER_SCHEMA: {"manager": [{"value": "m1", "$ref": null}]}
        }))
        .unwrap()
        .doc;
        assert_eq!(doc["emails"], json!([{"value": "a@example.com"}]));
        assert_eq!(doc[ENTERPRISE_USER_SCHEMA], json!({"manager": {"value": "m1"}}));
        assert_eq!(doc["active"], json!(false));
        assert!(doc.get("groups").is_none() && doc.get("meta").is_none());
        let one =
            parse_resource(ResourceKind::Group, &json!({"displayName": "g", "members": {"value": "u1"}})).unwrap();
        assert_eq!(one.members, Some(vec![MemberRef { value: "u1".into(), kind: None }]));
    }

    #[test]
    fn okta_user_post_is_canonicalised() {
        let input = user(json!({
            "schemas": [USER_SCHEMA],
            "UserName": "jane@example.com",
            "name": {"GivenName": "Jane", "familyName": "Doe", "nickname": "JD"},
            "emails": [{"primary": true, "value": "jane@example.com", "type": "work"}],
            "displayName": "Jane Doe",
            "locale": "en-US",
            "externalId": "00u1",
            "groups": [],
            "password": "hunter2!",
            "active": true
        }))
        .unwrap();
        assert!(input.password_supplied);
        assert_eq!(input.members, None);
        assert_eq!(
            input.doc,
            json!({
                "externalId": "00u1",
                "userName": "jane@example.com",
                "name": {"familyName": "Doe", "givenName": "Jane"},
                "displayName": "Jane Doe",
                "locale": "en-US",
                "active": true,
                "emails": [{"value": "jane@example.com", "type": "work", "primary": true}]
            })
        );
    }

    #[test]
    fn entra_user_post_keeps_extension_and_drops_read_only() {
        let input = user(json!({
            "schemas": [USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
            "externalId": "e1",
            "userName": "Jane@contoso.com",
            "active": "True",
            "emails": [{"primary": true, "type": "work", "value": "jane@contoso.com"}],
            "meta": {"resourceType": "User"},
            "id": "client-chosen",
            "name": {"formatted": "Jane Doe", "familyName": "Doe", "givenName": "Jane"},
            "roles": [],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user": {
                "department": "Sales",
                "employeeNumber": "42",
                "manager": {"value": "m1", "displayName": "Boss"}
            }
        }))
        .unwrap();
        assert!(!input.password_supplied);
        assert_eq!(
            input.doc,
            json!({
                "externalId": "e1",
                "userName": "Jane@contoso.com",
                "name": {"formatted": "Jane Doe", "familyName": "Doe", "givenName": "Jane"},
                "active": true,
                "emails": [{"value": "jane@contoso.com", "type": "work", "primary": true}],
                ENTERPRISE_USER_SCHEMA: {
                    "employeeNumber": "42",
                    "department": "Sales",
                    "manager": {"value": "m1", "displayName": "Boss"}
                }
            })
        );
    }

    #[test]
    fn manager_string_and_empty_forms() {
        let doc = user(json!({
            "userName": "a",
            ENTERPRISE_USER_SCHEMA: {"manager": "m1"}
        }))
        .unwrap()
        .doc;
        assert_eq!(doc[ENTERPRISE_USER_SCHEMA], json!({"manager": {"value": "m1"}}));
        let doc = user(json!({
            "userName": "a",
            ENTERPRISE_USER_SCHEMA: {"manager": {"value": ""}}
        }))
        .unwrap()
        .doc;
        assert_eq!(doc, json!({"userName": "a"}));
    }

    #[test]
    fn type_errors_name_the_attribute() {
        let e = user(json!({"userName": "a", "active": "yes"})).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
        assert!(e.detail.contains("active"), "{}", e.detail);
        let e = user(json!({"userName": "a", "emails": [{"value": 3}]})).unwrap_err();
        assert!(e.detail.contains("emails.value"), "{}", e.detail);
        let e = user(json!({"userName": 7})).unwrap_err();
        assert!(e.detail.contains("userName"), "{}", e.detail);
        let e = user(json!({"userName": "a", "displayName": ["x"]})).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
        let e = user(json!({"userName": "a", "name": "x"})).unwrap_err();
        assert!(e.detail.contains("name"), "{}", e.detail);
    }

    #[test]
    fn required_schemas_and_body_shape() {
        assert_eq!(user(json!({"userName": ""})).unwrap_err().scim_type, Some(ScimType::InvalidValue));
        assert_eq!(user(json!({})).unwrap_err().detail, "userName is required");
        assert_eq!(user(json!([1])).unwrap_err().scim_type, Some(ScimType::InvalidSyntax));
        let e = user(json!({"schemas": [GROUP_SCHEMA], "userName": "a"})).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
        assert!(user(json!({"schemas": "x", "userName": "a"})).is_err());
        assert!(user(json!({"userName": "a"})).is_ok());
        let e = parse_resource(ResourceKind::Group, &json!({"members": []})).unwrap_err();
        assert_eq!(e.detail, "displayName is required");
    }

    #[test]
    fn unassigned_and_unknown_values_are_dropped() {
        let doc = user(json!({
            "userName": "a",
            "nickName": null,
            "title": "",
            "emails": [],
            "name": {},
            "phoneNumbers": [{"value": ""}, {"value": "+1", "extra": 1}],
            "favouriteColour": "blue",
            "urn:example:custom": {"x": 1}
        }))
        .unwrap()
        .doc;
        assert_eq!(doc, json!({"userName": "a", "phoneNumbers": [{"value": "+1"}]}));
    }

    #[test]
    fn lone_object_is_wrapped_and_extra_primaries_cleared() {
        let doc = user(json!({
            "userName": "a",
            "emails": {"value": "x@y", "primary": "TRUE"},
            "phoneNumbers": [
                {"value": "1", "primary": true},
                {"value": "2", "primary": true},
                {"value": "3", "primary": false}
            ]
        }))
        .unwrap()
        .doc;
        assert_eq!(doc["emails"], json!([{"value": "x@y", "primary": true}]));
        assert_eq!(
            doc["phoneNumbers"],
            json!([
                {"value": "1", "primary": true},
                {"value": "2", "primary": false},
                {"value": "3", "primary": false}
            ])
        );
    }

    #[test]
    fn entra_group_post_with_members() {
        let input = parse_resource(
            ResourceKind::Group,
            &json!({
                "schemas": [GROUP_SCHEMA, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
                "externalId": "g1",
                "displayName": "Engineering",
                "Members": [
                    {"value": "u1", "$ref": null, "display": "Jane"},
                    {"value": "g2", "type": "group"}
                ]
            }),
        )
        .unwrap();
        assert_eq!(input.doc, json!({"externalId": "g1", "displayName": "Engineering"}));
        assert_eq!(
            input.members,
            Some(vec![
                MemberRef { value: "u1".into(), kind: None },
                MemberRef { value: "g2".into(), kind: Some(MemberKind::Group) },
            ])
        );
        let none = parse_resource(ResourceKind::Group, &json!({"displayName": "x"})).unwrap();
        assert_eq!(none.members, None);
        let empty = parse_resource(ResourceKind::Group, &json!({"displayName": "x", "members": []})).unwrap();
        assert_eq!(empty.members, Some(vec![]));
        let bad = parse_resource(ResourceKind::Group, &json!({"displayName": "x", "members": [{"display": "x"}]}));
        assert_eq!(bad.unwrap_err().scim_type, Some(ScimType::InvalidValue));
        let bad = parse_resource(
            ResourceKind::Group,
            &json!({"displayName": "x", "members": [{"value": "1", "type": "Robot"}]}),
        );
        assert_eq!(bad.unwrap_err().scim_type, Some(ScimType::InvalidValue));
    }

    fn meta<'a>() -> ResourceMeta<'a> {
        ResourceMeta {
            id: "u-1",
            created: Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap(),
            last_modified: Utc.with_ymd_and_hms(2024, 2, 3, 4, 5, 6).unwrap(),
            version: "W/\"3\"",
            location: "https://h/scim/v2/Users/u-1",
        }
    }

    #[test]
    fn render_user_shape() {
        let doc = json!({
            "userName": "a",
            ENTERPRISE_USER_SCHEMA: {"department": "Sales"},
            "stray": 1
        });
        let groups = [GroupRefOut {
            value: "g1".into(),
            display: Some("Eng".into()),
            location: "https://h/scim/v2/Groups/g1".into(),
            direct: false,
        }];
        let v = render(ResourceKind::User, &doc, &meta(), None, Some(&groups));
        assert_eq!(
            v,
            json!({
                "schemas": [USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
                "id": "u-1",
                "userName": "a",
                "groups": [{"value": "g1", "display": "Eng", "$ref": "https://h/scim/v2/Groups/g1", "type": "indirect"}],
                ENTERPRISE_USER_SCHEMA: {"department": "Sales"},
                "meta": {
                    "resourceType": "User",
                    "created": "2024-01-02T03:04:05Z",
                    "lastModified": "2024-02-03T04:05:06Z",
                    "location": "https://h/scim/v2/Users/u-1",
                    "version": "W/\"3\""
                }
            })
        );
        let v = render(ResourceKind::User, &json!({"userName": "a"}), &meta(), None, Some(&[]));
        assert_eq!(v["schemas"], json!([USER_SCHEMA]));
        assert!(v.get("groups").is_none());
    }

    #[test]
    fn render_group_members() {
        let members = [
            MemberOut {
                value: "u1".into(),
                display: Some("Jane".into()),
                kind: MemberKind::User,
                location: "https://h/Users/u1".into(),
            },
            MemberOut {
                value: "g2".into(),
                display: None,
                kind: MemberKind::Group,
                location: "https://h/Groups/g2".into(),
            },
        ];
        let v = render(ResourceKind::Group, &json!({"displayName": "Eng"}), &meta(), Some(&members), None);
        assert_eq!(v["schemas"], json!([GROUP_SCHEMA]));
        assert_eq!(
            v["members"],
            json!([
                {"value": "u1", "display": "Jane", "type": "User", "$ref": "https://h/Users/u1"},
                {"value": "g2", "type": "Group", "$ref": "https://h/Groups/g2"}
            ])
        );
        assert_eq!(v["meta"]["resourceType"], json!("Group"));
        let v = render(ResourceKind::Group, &json!({"displayName": "Eng"}), &meta(), Some(&[]), None);
        assert!(v.get("members").is_none());
    }

    #[test]
    fn display_names() {
        assert_eq!(display_of(ResourceKind::User, &json!({"userName": "a"})), Some("a".into()));
        assert_eq!(display_of(ResourceKind::User, &json!({"userName": "a", "displayName": "A"})), Some("A".into()));
        assert_eq!(display_of(ResourceKind::Group, &json!({"externalId": "x"})), None);
    }
}
