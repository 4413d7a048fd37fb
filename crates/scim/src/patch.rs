//! PATCH (RFC 7644 §3.5.2), as IdPs really send it (see `idp-requests.md`).
//!
//! Operations are applied in order to the stored doc in memory; membership changes are
//! collected for the store, which applies them to its own table. Any error fails the
//! whole request and leaves the doc untouched. Values go through the same
//! canonicalisation as POST/PUT bodies (`resource::canon_*`), and the final doc is
//! re-canonicalised with `parse_resource` so it obeys exactly the same rules.

use serde_json::{Map, Value};

use crate::error::{ScimError, ScimResult, snippet};
use crate::filter::{CompValue, CompareOp, Filter, matches};
use crate::path::AttrPath;
use crate::resource::{
    MemberRef, canon_attr, canon_element, get_ci, is_absent, is_group_members, is_primary, is_reference_like,
    parse_members, parse_resource, schema_by_urn, single_from_list,
};
use crate::schema::{AttrLocation, AttrType, AttributeDef, Mutability, ResolvedAttr, ResourceKind, SchemaDef};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchOpKind {
    Add,
    Remove,
    Replace,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PatchOp {
    pub op: PatchOpKind,
    pub path: Option<String>,
    pub value: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct PatchRequest {
    pub ops: Vec<PatchOp>,
}

/// A change to a Group's membership, for the store to apply in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberChange {
    Add(Vec<MemberRef>),
    /// Remove the members with these ids.
    Remove(Vec<String>),
    RemoveAll,
    Replace(Vec<MemberRef>),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PatchOutcome {
    /// The doc differs from what it was before the request.
    pub doc_changed: bool,
    pub member_changes: Vec<MemberChange>,
}

/// Parses a PATCH body. `schemas` is not checked: clients omit it or add URIs, and the
/// `Operations` member already says what the body is. An empty `Operations` list is a
/// valid no-op (Entra's validator sends one).
pub fn parse_patch(body: &Value) -> ScimResult<PatchRequest> {
    let obj = body.as_object().ok_or_else(|| ScimError::invalid_syntax("the PATCH body must be a JSON object"))?;
    let ops = match get_ci(obj, "Operations") {
        Some(Value::Array(ops)) => ops,
        Some(_) => return Err(ScimError::invalid_syntax("Operations must be an array")),
        None => {
            return Err(ScimError::invalid_syntax("the PATCH body has no Operations"));
        }
    };
    let ops = ops.iter().enumerate().map(|(i, op)| parse_op(i, op)).collect::<ScimResult<_>>()?;
    Ok(PatchRequest { ops })
}

fn parse_op(i: usize, v: &Value) -> ScimResult<PatchOp> {
    let obj = v.as_object().ok_or_else(|| ScimError::invalid_syntax(format!("Operations[{i}] must be an object")))?;
    // Entra capitalises ops ("Replace"); RFC 7644 does not make them case-sensitive.
    let op = match get_ci(obj, "op").and_then(Value::as_str) {
        Some(s) if s.eq_ignore_ascii_case("add") => PatchOpKind::Add,
        Some(s) if s.eq_ignore_ascii_case("remove") => PatchOpKind::Remove,
        Some(s) if s.eq_ignore_ascii_case("replace") => PatchOpKind::Replace,
        _ => {
            return Err(ScimError::invalid_syntax(format!(
                "Operations[{i}].op must be \"add\", \"remove\" or \"replace\""
            )));
        }
    };
    let path = match get_ci(obj, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.trim().to_string()),
        Some(_) => {
            return Err(ScimError::invalid_syntax(format!("Operations[{i}].path must be a string")));
        }
    };
    let value = get_ci(obj, "value").cloned();
    match op {
        PatchOpKind::Remove if path.is_none() => {
            return Err(ScimError::no_target(format!("Operations[{i}]: remove needs a path")));
        }
        PatchOpKind::Add | PatchOpKind::Replace if value.is_none() => {
            return Err(ScimError::invalid_syntax(format!("Operations[{i}]: add and replace need a value")));
        }
        _ => {}
    }
    Ok(PatchOp { op, path, value })
}

/// Applies every operation to `doc` (left untouched on error).
pub fn apply_patch(kind: ResourceKind, doc: &mut Value, req: &PatchRequest) -> ScimResult<PatchOutcome> {
    let mut work = match doc {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    let mut changes = Vec::new();
    for (i, op) in req.ops.iter().enumerate() {
        apply_op(kind, &mut work, op, &mut changes).map_err(|mut e| {
            e.detail = format!("Operations[{i}]: {}", e.detail);
            e
        })?;
    }
    // Canonical order, unassigned values dropped, at most one primary, required
    // attributes present: the same rules as a PUT of the result.
    let canonical = parse_resource(kind, &Value::Object(work))?.doc;
    let doc_changed = canonical != *doc;
    *doc = canonical;
    Ok(PatchOutcome { doc_changed, member_changes: changes })
}

/// Where an operation points.
enum Target {
    /// A whole schema, named by its URN: its attributes are in the value.
    Schema(&'static SchemaDef),
    Attr(AttrTarget),
}

struct AttrTarget {
    res: ResolvedAttr,
    /// `attr[filter]`: the whole value-path filter, as `filter::matches` takes it.
    filter: Option<Filter>,
}

impl AttrTarget {
    fn path(&self) -> String {
        self.res.canonical_path()
    }
}

fn apply_op(
    kind: ResourceKind,
    doc: &mut Map<String, Value>,
    op: &PatchOp,
    changes: &mut Vec<MemberChange>,
) -> ScimResult<()> {
    match &op.path {
        Some(path) => {
            let target = parse_path(kind, path)?.ok_or_else(|| {
                ScimError::invalid_path(format!(
                    "unknown attribute '{}' for resource type {}",
                    snippet(path.split('[').next().unwrap_or(path)),
                    kind.name()
                ))
            })?;
            apply_target(kind, doc, op.op, &target, op.value.as_ref(), false, changes)
        }
        None => {
            let value = op.value.as_ref().ok_or_else(|| ScimError::invalid_syntax("add and replace need a value"))?;
            let obj = value
                .as_object()
                .ok_or_else(|| ScimError::invalid_value("without a path, the value must be an object of attributes"))?;
            apply_attributes(kind, doc, op.op, None, obj, changes)
        }
    }
}

/// A pathless value, or the value of a schema path: each key is applied as if it were
/// the path (dotted and URN-qualified keys included). Keys naming read-only or unknown
/// attributes are ignored, as they are in a POST/PUT body: Okta sends the group's `id`
/// in its pathless rename.
fn apply_attributes(
    kind: ResourceKind,
    doc: &mut Map<String, Value>,
    op: PatchOpKind,
    schema: Option<&SchemaDef>,
    obj: &Map<String, Value>,
    changes: &mut Vec<MemberChange>,
) -> ScimResult<()> {
    for (key, value) in obj {
        let path = match schema {
            Some(s) => format!("{}:{key}", s.id),
            None => key.clone(),
        };
        if let Some(target) = parse_path(kind, &path)? {
            apply_target(kind, doc, op, &target, Some(value), true, changes)?;
        }
    }
    Ok(())
}

/// Parses an attribute path (`path::AttrPath`) or a schema URN. `Ok(None)` for an
/// attribute the schema does not know.
fn parse_path(kind: ResourceKind, path: &str) -> ScimResult<Option<Target>> {
    if let Some(schema) = schema_by_urn(kind, path.trim()) {
        return Ok(Some(Target::Schema(schema)));
    }
    Ok(AttrPath::parse(kind, path)?.map(|p| Target::Attr(AttrTarget { res: p.attr, filter: p.filter })))
}

fn apply_target(
    kind: ResourceKind,
    doc: &mut Map<String, Value>,
    op: PatchOpKind,
    target: &Target,
    value: Option<&Value>,
    pathless: bool,
    changes: &mut Vec<MemberChange>,
) -> ScimResult<()> {
    let t = match target {
        Target::Schema(schema) => return apply_schema(kind, doc, op, schema, value, changes),
        Target::Attr(t) => t,
    };
    let def = t.res.attr;
    if def.mutability == Mutability::ReadOnly || t.res.sub.is_some_and(|s| s.mutability == Mutability::ReadOnly) {
        if pathless {
            // Ignored, as in a POST body, once its shape is right.
            if let Some(v) = value {
                canon_attr(t.res.leaf(), &t.path(), v)?;
            }
            return Ok(());
        }
        return Err(ScimError::mutability(format!("{} is read-only", t.path())));
    }
    // The password is accepted so that IdP password sync does not fail, never stored.
    if def.mutability == Mutability::WriteOnly {
        return Ok(());
    }
    if is_group_members(kind, def) {
        return member_op(op, t, value, changes);
    }
    if let AttrLocation::Custom(urn) = t.res.location {
        if t.filter.is_some() {
            return Err(ScimError::invalid_path(format!(
                "{}: value filters in PATCH paths need the extension's schema (--scim-schema-file)",
                t.path()
            )));
        }
        return crate::custom::apply_patch(doc, op, urn, def, t.res.sub, value);
    }
    let value = match (op, value) {
        (PatchOpKind::Remove, v) => v,
        (_, Some(v)) => Some(v),
        (_, None) => return Err(ScimError::invalid_syntax("add and replace need a value")),
    };
    with_container(doc, t.res.location, |c| {
        if def.multi_valued { apply_multi(c, op, t, value) } else { apply_single(c, op, t, value) }
    })
}

/// A path naming a schema URN: remove drops the whole extension; add and replace apply
/// each attribute of the value (RFC 7644 §3.5.2.3: attributes not named are unchanged).
fn apply_schema(
    kind: ResourceKind,
    doc: &mut Map<String, Value>,
    op: PatchOpKind,
    schema: &'static SchemaDef,
    value: Option<&Value>,
    changes: &mut Vec<MemberChange>,
) -> ScimResult<()> {
    let is_core = std::ptr::eq(schema, kind.core_schema());
    match (op, value) {
        (PatchOpKind::Remove, _) | (PatchOpKind::Replace, Some(Value::Null)) if !is_core => {
            doc.remove(schema.id);
            Ok(())
        }
        (PatchOpKind::Remove, _) => Err(ScimError::invalid_path("the core schema cannot be removed")),
        (_, Some(v)) if is_absent(v) => Ok(()),
        (_, Some(Value::Object(obj))) => apply_attributes(kind, doc, op, Some(schema), obj, changes),
        (_, Some(_)) => Err(ScimError::invalid_value(format!("the value for {} must be an object", schema.id))),
        (_, None) => Err(ScimError::invalid_syntax("add and replace need a value")),
    }
}

/// Runs `f` on the object holding the attribute: the doc itself, or the extension
/// object (created if needed, dropped again if left empty).
fn with_container(
    doc: &mut Map<String, Value>,
    location: AttrLocation,
    f: impl FnOnce(&mut Map<String, Value>) -> ScimResult<()>,
) -> ScimResult<()> {
    match location {
        // Custom URNs may be stored in another case: one place merges them.
        AttrLocation::Custom(urn) => crate::custom::with_extension(doc, urn, f),
        AttrLocation::Extension(urn) => {
            let mut ext = match doc.remove(urn) {
                Some(Value::Object(m)) => m,
                _ => Map::new(),
            };
            let result = f(&mut ext);
            if !ext.is_empty() {
                doc.insert(urn.to_string(), Value::Object(ext));
            }
            result
        }
        AttrLocation::Core | AttrLocation::Common => f(doc),
    }
}

/// A single-valued attribute, or a sub-attribute of a single-valued complex one.
fn apply_single(c: &mut Map<String, Value>, op: PatchOpKind, t: &AttrTarget, value: Option<&Value>) -> ScimResult<()> {
    let def = t.res.attr;
    let path = t.path();
    if def.ty != AttrType::Complex {
        return match op {
            PatchOpKind::Remove => {
                c.remove(def.name);
                Ok(())
            }
            _ => {
                let v = value.map(|v| canon_attr(def, &path, v)).transpose()?.flatten();
                set_or_unassign(c, def.name, v, op);
                Ok(())
            }
        };
    }
    let mut obj = match c.get(def.name) {
        Some(Value::Object(o)) => o.clone(),
        _ => Map::new(),
    };
    match (op, t.res.sub) {
        (PatchOpKind::Remove, None) => {
            c.remove(def.name);
            return Ok(());
        }
        (PatchOpKind::Remove, Some(sub)) => {
            obj.remove(sub.name);
        }
        (_, Some(sub)) => {
            let v = value.map(|v| canon_attr(sub, &path, v)).transpose()?.flatten();
            set_or_unassign(&mut obj, sub.name, v, op);
        }
        (_, None) => match value.map(|v| raw_element(def, &path, v)).transpose()?.flatten() {
            // A complex value is merged: sub-attributes not named are left unchanged
            // (RFC 7644 §3.5.2.1, §3.5.2.3).
            Some(raw) => merge_subs(def, &path, &mut obj, &raw)?,
            None if op == PatchOpKind::Replace => {
                c.remove(def.name);
                return Ok(());
            }
            None => return Ok(()),
        },
    }
    // Re-canonicalised: an empty object, or a manager left without its value, is gone.
    let v = canon_element(def, &path, &Value::Object(obj))?;
    set_or_unassign(c, def.name, v, PatchOpKind::Replace);
    Ok(())
}

/// Sets `key` to `v`; an unassigned `v` removes the key on replace and is a no-op on add.
fn set_or_unassign(c: &mut Map<String, Value>, key: &str, v: Option<Value>, op: PatchOpKind) {
    match v {
        Some(v) => {
            c.insert(key.to_string(), v);
        }
        None if op == PatchOpKind::Replace => {
            c.remove(key);
        }
        None => {}
    }
}

/// The raw (not yet canonical) object given for one complex value: an object or, for
/// the manager alone, a list of one (Entra's) or a bare string read as `{"value": s}`.
fn raw_element(def: &AttributeDef, path: &str, v: &Value) -> ScimResult<Option<Map<String, Value>>> {
    match v {
        _ if is_absent(v) => Ok(None),
        Value::Array(items) => match single_from_list(def, path, items)? {
            Some(one) => raw_element(def, path, one),
            None => Ok(None),
        },
        Value::Object(o) => Ok(Some(o.clone())),
        Value::String(s) if is_reference_like(def) => {
            let mut o = Map::new();
            o.insert("value".to_string(), Value::String(s.clone()));
            Ok(Some(o))
        }
        _ => Err(ScimError::invalid_value(format!("{path} must be a complex value (an object)"))),
    }
}

/// Writes the writable sub-attributes named in `raw` into `obj`; an unassigned value
/// removes the sub-attribute.
fn merge_subs(
    def: &AttributeDef,
    path: &str,
    obj: &mut Map<String, Value>,
    raw: &Map<String, Value>,
) -> ScimResult<()> {
    for sub in def.sub_attributes {
        let Some(rv) = get_ci(raw, sub.name) else {
            continue;
        };
        if sub.mutability == Mutability::ReadOnly {
            continue;
        }
        match canon_attr(sub, &format!("{path}.{}", sub.name), rv)? {
            Some(v) => {
                obj.insert(sub.name.to_string(), v);
            }
            None => {
                obj.remove(sub.name);
            }
        }
    }
    Ok(())
}

/// One element of a multi-valued attribute while an operation works on it.
struct Slot {
    value: Value,
    /// Written by this operation: re-canonicalised afterwards.
    touched: bool,
    /// This operation set `primary: true` here: it wins over the others.
    claims_primary: bool,
}

fn apply_multi(c: &mut Map<String, Value>, op: PatchOpKind, t: &AttrTarget, value: Option<&Value>) -> ScimResult<()> {
    let def = t.res.attr;
    let path = t.path();
    let mut slots: Vec<Slot> = match c.get(def.name) {
        Some(Value::Array(items)) => {
            items.iter().map(|v| Slot { value: v.clone(), touched: false, claims_primary: false }).collect()
        }
        _ => Vec::new(),
    };
    match (&t.filter, t.res.sub) {
        (None, None) => match op {
            PatchOpKind::Remove => {
                match value.filter(|v| !v.is_null()).map(|v| canon_attr(def, &path, v)).transpose()? {
                    // `remove` with a value list removes only those values (the Entra way of
                    // removing group members, applied to every multi-valued attribute).
                    Some(Some(Value::Array(given))) => {
                        slots.retain(|s| !given.iter().any(|g| same_element(def, &s.value, g)));
                    }
                    Some(_) => {}
                    None => slots.clear(),
                }
            }
            PatchOpKind::Replace => {
                let given = value.map(|v| canon_attr(def, &path, v)).transpose()?.flatten();
                slots = array_items(given)
                    .into_iter()
                    .map(|v| Slot { claims_primary: is_primary(&v), value: v, touched: true })
                    .collect();
            }
            PatchOpKind::Add => {
                let given = value.map(|v| canon_attr(def, &path, v)).transpose()?.flatten();
                for item in array_items(given) {
                    let claims_primary = is_primary(&item);
                    // A value already there is not added twice; what the new one says
                    // about it (say, `primary`) is merged in.
                    match slots.iter_mut().find(|s| same_element(def, &s.value, &item)) {
                        Some(slot) => {
                            if let (Value::Object(existing), Value::Object(new)) = (&mut slot.value, &item) {
                                existing.extend(new.clone());
                            } else {
                                slot.value = item;
                            }
                            slot.touched = true;
                            slot.claims_primary |= claims_primary;
                        }
                        None => slots.push(Slot { value: item, touched: true, claims_primary }),
                    }
                }
            }
        },
        // `emails.value` without a filter: every element (RFC 7644 §3.5.2: no filter means
        // all values); with no element yet, add and replace create one.
        (None, Some(sub)) => {
            let given = match op {
                PatchOpKind::Remove => None,
                _ => value.map(|v| canon_attr(sub, &path, v)).transpose()?.flatten(),
            };
            if slots.is_empty() {
                if let Some(v) = given {
                    let mut obj = Map::new();
                    obj.insert(sub.name.to_string(), v);
                    push_new(def, &path, &mut slots, obj)?;
                }
            } else {
                for slot in &mut slots {
                    set_sub(slot, sub, given.clone(), op);
                }
            }
        }
        (Some(filter), None) => {
            let matched = match_slots(t, filter, &slots);
            match op {
                PatchOpKind::Remove => {
                    let mut i = 0;
                    slots.retain(|_| {
                        i += 1;
                        !matched.contains(&(i - 1))
                    });
                }
                PatchOpKind::Add | PatchOpKind::Replace => {
                    match value.map(|v| raw_element(def, &path, v)).transpose()?.flatten() {
                        None if op == PatchOpKind::Replace => {
                            let mut i = 0;
                            slots.retain(|_| {
                                i += 1;
                                !matched.contains(&(i - 1))
                            });
                        }
                        None => {}
                        Some(raw) if matched.is_empty() => {
                            let mut obj = filter_template(filter, &path)?;
                            merge_subs(def, &path, &mut obj, &raw)?;
                            push_new(def, &path, &mut slots, obj)?;
                        }
                        Some(raw) => {
                            for &i in &matched {
                                if let Some(slot) = slots.get_mut(i) {
                                    let mut obj = slot.value.as_object().cloned().unwrap_or_default();
                                    merge_subs(def, &path, &mut obj, &raw)?;
                                    slot.claims_primary |= get_ci(&raw, "primary").is_some() && is_primary_obj(&obj);
                                    slot.value = Value::Object(obj);
                                    slot.touched = true;
                                }
                            }
                        }
                    }
                }
            }
        }
        (Some(filter), Some(sub)) => {
            let matched = match_slots(t, filter, &slots);
            let given = match op {
                PatchOpKind::Remove => None,
                _ => value.map(|v| canon_attr(sub, &path, v)).transpose()?.flatten(),
            };
            if matched.is_empty() {
                // Add, and replace too (Entra's quirk), on a filter matching nothing create
                // the one element the filter describes; a later operation in the same
                // request on the same filter then finds it.
                if let (PatchOpKind::Add | PatchOpKind::Replace, Some(v)) = (op, given) {
                    let mut obj = filter_template(filter, &path)?;
                    obj.insert(sub.name.to_string(), v);
                    push_new(def, &path, &mut slots, obj)?;
                }
            } else {
                for &i in &matched {
                    if let Some(slot) = slots.get_mut(i) {
                        set_sub(slot, sub, given.clone(), op);
                    }
                }
            }
        }
    }

    // Each written element re-canonicalised (an element left empty is gone), then the
    // RFC 7644 §3.5.2 rule: a value set primary by this operation makes the others
    // non-primary.
    let mut kept = Vec::with_capacity(slots.len());
    for slot in slots {
        if !slot.touched {
            kept.push(slot);
            continue;
        }
        if let Some(v) = canon_element(def, &path, &slot.value)? {
            kept.push(Slot { value: v, ..slot });
        }
    }
    if let Some(winner) = kept.iter().position(|s| s.claims_primary && is_primary(&s.value)) {
        for (i, slot) in kept.iter_mut().enumerate() {
            if i != winner
                && is_primary(&slot.value)
                && let Some(o) = slot.value.as_object_mut()
            {
                o.insert("primary".to_string(), Value::Bool(false));
            }
        }
    }
    if kept.is_empty() {
        c.remove(def.name);
    } else {
        c.insert(def.name.to_string(), Value::Array(kept.into_iter().map(|s| s.value).collect()));
    }
    Ok(())
}

fn is_primary_obj(o: &Map<String, Value>) -> bool {
    o.get("primary").and_then(Value::as_bool) == Some(true)
}

fn array_items(v: Option<Value>) -> Vec<Value> {
    match v {
        Some(Value::Array(items)) => items,
        Some(other) => vec![other],
        None => Vec::new(),
    }
}

fn push_new(def: &AttributeDef, path: &str, slots: &mut Vec<Slot>, obj: Map<String, Value>) -> ScimResult<()> {
    if let Some(v) = canon_element(def, path, &Value::Object(obj))? {
        slots.push(Slot { claims_primary: is_primary(&v), value: v, touched: true });
    }
    Ok(())
}

fn set_sub(slot: &mut Slot, sub: &AttributeDef, v: Option<Value>, op: PatchOpKind) {
    if let Value::Object(o) = &mut slot.value {
        match (op, v) {
            (PatchOpKind::Remove, _) => {
                o.remove(sub.name);
            }
            (_, Some(v)) => {
                slot.claims_primary |= sub.name == "primary" && v == Value::Bool(true);
                o.insert(sub.name.to_string(), v);
            }
            (PatchOpKind::Replace, None) => {
                o.remove(sub.name);
            }
            (PatchOpKind::Add, None) => return,
        }
        slot.touched = true;
    }
}

/// The indices of the elements the value filter selects.
fn match_slots(t: &AttrTarget, filter: &Filter, slots: &[Slot]) -> Vec<usize> {
    let name = t.res.attr.name;
    slots
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            // The filter reads a resource: present the element as the only value.
            let mut holder = Map::new();
            holder.insert(name.to_string(), Value::Array(vec![s.value.clone()]));
            let doc = match t.res.location {
                AttrLocation::Extension(urn) | AttrLocation::Custom(urn) => {
                    let mut root = Map::new();
                    root.insert(urn.to_string(), Value::Object(holder));
                    root
                }
                AttrLocation::Core | AttrLocation::Common => holder,
            };
            matches(filter, &Value::Object(doc))
        })
        .map(|(i, _)| i)
        .collect()
}

/// The element a filter describes, built from its `eq` conditions joined by `and`
/// (`emails[type eq "home"]` → `{"type": "home"}`); other filters describe no single
/// element, and there is nothing to create.
fn filter_template(filter: &Filter, path: &str) -> ScimResult<Map<String, Value>> {
    fn walk(f: &Filter, out: &mut Map<String, Value>) -> bool {
        match f {
            Filter::And(a, b) => walk(a, out) && walk(b, out),
            Filter::Compare { attr, op: CompareOp::Eq, value } => {
                let v = match value {
                    CompValue::String(s) => Value::String(s.clone()),
                    CompValue::Bool(b) => Value::Bool(*b),
                    CompValue::Number(n) => match serde_json::Number::from_f64(*n) {
                        Some(n) => Value::Number(n),
                        None => return false,
                    },
                    CompValue::Null => return false,
                };
                out.insert(attr.leaf().name.to_string(), v);
                true
            }
            _ => false,
        }
    }
    let inner = match filter {
        Filter::ValuePath { filter, .. } => filter.as_ref(),
        other => other,
    };
    let mut out = Map::new();
    if walk(inner, &mut out) {
        Ok(out)
    } else {
        Err(ScimError::no_target(format!(
            "no value of {path} matches the filter, and only a filter of `eq` conditions joined by `and` describes one to create"
        )))
    }
}

/// Whether the existing element `e` is the value `g` names: equal, or the same `value`
/// (compared as the schema says) and, when `g` has one, the same `type`.
fn same_element(def: &AttributeDef, e: &Value, g: &Value) -> bool {
    if e == g {
        return true;
    }
    let (Some(eo), Some(go)) = (e.as_object(), g.as_object()) else {
        return same_scalar(def, e, g);
    };
    let Some(value_def) = def.sub_attribute("value") else {
        return false;
    };
    let (Some(ev), Some(gv)) = (eo.get("value"), go.get("value")) else {
        return false;
    };
    if !same_scalar(value_def, ev, gv) {
        return false;
    }
    match (go.get("type"), def.sub_attribute("type")) {
        (None, _) => true,
        (Some(gt), Some(type_def)) => eo.get("type").is_some_and(|et| same_scalar(type_def, et, gt)),
        (Some(gt), None) => eo.get("type") == Some(gt),
    }
}

fn same_scalar(def: &AttributeDef, a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) if !def.case_exact => x.to_lowercase() == y.to_lowercase(),
        _ => a == b,
    }
}

/// Group membership: never in the doc, handed to the store as `MemberChange`s.
fn member_op(
    op: PatchOpKind,
    t: &AttrTarget,
    value: Option<&Value>,
    changes: &mut Vec<MemberChange>,
) -> ScimResult<()> {
    if t.res.sub.is_some() {
        return Err(ScimError::invalid_path(
            "members are added, replaced or removed whole; their sub-attributes cannot be targeted",
        ));
    }
    match (op, &t.filter, value) {
        (PatchOpKind::Remove, Some(filter), _) => {
            let ids = member_filter_ids(filter)?;
            changes.push(MemberChange::Remove(ids));
        }
        (_, Some(_), _) => {
            return Err(ScimError::invalid_path("a members[...] filter is supported with remove only"));
        }
        // Remove without a value empties the group…
        (PatchOpKind::Remove, None, None | Some(Value::Null)) => changes.push(MemberChange::RemoveAll),
        // …but with a value list it removes those members only, never all of them, even
        // when the list is empty (Entra and JumpCloud remove members this way).
        (PatchOpKind::Remove, None, Some(v)) => {
            let ids: Vec<String> = parse_members(v)?.into_iter().map(|m| m.value).collect();
            if !ids.is_empty() {
                changes.push(MemberChange::Remove(ids));
            }
        }
        (PatchOpKind::Add, None, Some(v)) => {
            let refs = parse_members(v)?;
            if !refs.is_empty() {
                changes.push(MemberChange::Add(refs));
            }
        }
        (PatchOpKind::Replace, None, Some(v)) => changes.push(MemberChange::Replace(parse_members(v)?)),
        (PatchOpKind::Add | PatchOpKind::Replace, None, None) => {
            return Err(ScimError::invalid_syntax("add and replace need a value"));
        }
    }
    Ok(())
}

/// The ids of `members[value eq "a" or value eq "b"]`.
fn member_filter_ids(filter: &Filter) -> ScimResult<Vec<String>> {
    fn walk(f: &Filter, out: &mut Vec<String>) -> bool {
        match f {
            Filter::Or(a, b) => walk(a, out) && walk(b, out),
            Filter::Compare { attr, op: CompareOp::Eq, value: CompValue::String(s) } if attr.leaf().name == "value" => {
                out.push(s.clone());
                true
            }
            _ => false,
        }
    }
    let inner = match filter {
        Filter::ValuePath { filter, .. } => filter.as_ref(),
        other => other,
    };
    let mut ids = Vec::new();
    if walk(inner, &mut ids) {
        Ok(ids)
    } else {
        Err(ScimError::invalid_filter(
            "only `value eq \"<id>\"` conditions, joined by `or`, are supported in members filters",
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::ScimType;
    use crate::schema::{ENTERPRISE_USER_SCHEMA, PATCH_OP_SCHEMA};
    use serde_json::json;

    fn patch(kind: ResourceKind, doc: Value, ops: Value) -> ScimResult<(Value, PatchOutcome)> {
        let req = parse_patch(&json!({"schemas": [PATCH_OP_SCHEMA], "Operations": ops}))?;
        let mut doc = doc;
        let outcome = apply_patch(kind, &mut doc, &req)?;
        Ok((doc, outcome))
    }

    fn user_patch(doc: Value, ops: Value) -> ScimResult<(Value, PatchOutcome)> {
        patch(ResourceKind::User, doc, ops)
    }

    fn jane() -> Value {
        json!({
            "userName": "jane@example.com",
            "name": {"familyName": "Doe", "givenName": "Jane"},
            "active": true,
            "emails": [{"value": "jane@example.com", "type": "work", "primary": true}]
        })
    }

    fn err_type(r: ScimResult<(Value, PatchOutcome)>) -> Option<ScimType> {
        r.unwrap_err().scim_type
    }

    #[test]
    fn okta_deactivate_pathless() {
        let (doc, out) = user_patch(jane(), json!([{"op": "replace", "value": {"active": false}}])).unwrap();
        assert_eq!(doc["active"], json!(false));
        assert!(out.doc_changed);
        assert!(out.member_changes.is_empty());
    }

    #[test]
    fn okta_group_rename_pathless_with_id_and_membership() {
        let group = json!({"displayName": "Engineering"});
        let (doc, out) = patch(
            ResourceKind::Group,
            group.clone(),
            json!([{"op": "replace", "value": {"id": "g1", "displayName": "Eng"}}]),
        )
        .unwrap();
        assert_eq!(doc, json!({"displayName": "Eng"}));
        assert!(out.doc_changed);

        // The same rename again, with Okta's membership update: doc unchanged.
        let (doc, out) = patch(
            ResourceKind::Group,
            json!({"displayName": "Eng"}),
            json!([
                {"op": "replace", "value": {"id": "g1", "displayName": "Eng"}},
                {"op": "remove", "path": "members[value eq \"u1\"]"},
                {"op": "add", "path": "members", "value": [{"value": "u2", "display": "jane@example.com"}]}
            ]),
        )
        .unwrap();
        assert_eq!(doc, json!({"displayName": "Eng"}));
        assert!(!out.doc_changed);
        assert_eq!(
            out.member_changes,
            vec![
                MemberChange::Remove(vec!["u1".into()]),
                MemberChange::Add(vec![MemberRef { value: "u2".into(), kind: None }]),
            ]
        );
    }

    #[test]
    fn entra_capitalised_ops_and_string_booleans() {
        let (doc, _) = user_patch(
            jane(),
            json!([
                {"op": "Replace", "path": "active", "value": "False"},
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "j.doe@example.com"},
                {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Sales"}
            ]),
        )
        .unwrap();
        assert_eq!(
            doc,
            json!({
                "userName": "jane@example.com",
                "name": {"familyName": "Doe", "givenName": "Jane"},
                "active": false,
                "emails": [{"value": "j.doe@example.com", "type": "work", "primary": true}],
                ENTERPRISE_USER_SCHEMA: {"department": "Sales"}
            })
        );
    }

    #[test]
    fn entra_manager_add_and_removal() {
        let (doc, _) = user_patch(
            jane(),
            json!([{"op": "Add", "path": "manager", "value": [{"$ref": "https://h/Users/m1", "value": "m1"}]}]),
        )
        .unwrap();
        assert_eq!(doc[ENTERPRISE_USER_SCHEMA], json!({"manager": {"value": "m1", "$ref": "https://h/Users/m1"}}));
        let (doc, out) = user_patch(
            doc,
            json!([{
                "op": "Replace",
                "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
                "value": {"value": ""}
            }]),
        )
        .unwrap();
        assert_eq!(doc, jane());
        assert!(out.doc_changed);
        // Removing it again is a no-op, not an error.
        let (doc, out) = user_patch(
            doc,
            json!([{"op": "remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"}]),
        )
        .unwrap();
        assert_eq!(doc, jane());
        assert!(!out.doc_changed);
    }

    #[test]
    fn entra_add_on_missing_filter_creates_one_entry() {
        let (doc, _) = user_patch(
            jane(),
            json!([
                {"op": "Add", "path": "emails[type eq \"home\"].value", "value": "jane@home.example"},
                {"op": "Add", "path": "emails[type eq \"home\"].value", "value": "jane2@home.example"},
                {"op": "Replace", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555"},
                {"op": "Add", "path": "emails[type eq \"home\"].primary", "value": "True"}
            ]),
        )
        .unwrap();
        assert_eq!(
            doc["emails"],
            json!([
                {"value": "jane@example.com", "type": "work", "primary": false},
                {"value": "jane2@home.example", "type": "home", "primary": true}
            ])
        );
        assert_eq!(doc["phoneNumbers"], json!([{"value": "+1 555", "type": "mobile"}]));
    }

    #[test]
    fn entra_flagged_pathless_replace_with_dotted_and_urn_keys() {
        let (doc, _) = user_patch(
            jane(),
            json!([{"op": "replace", "value": {
                "displayName": "Jane D.",
                "name.givenName": "Janet",
                "NAME.familyName": "Dough",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "42",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"costCenter": "CC1"},
                "meta": {"resourceType": "User"},
                "unknownThing": 1
            }}]),
        )
        .unwrap();
        assert_eq!(
            doc,
            json!({
                "userName": "jane@example.com",
                "name": {"familyName": "Dough", "givenName": "Janet"},
                "displayName": "Jane D.",
                "active": true,
                "emails": [{"value": "jane@example.com", "type": "work", "primary": true}],
                ENTERPRISE_USER_SCHEMA: {"employeeNumber": "42", "costCenter": "CC1"}
            })
        );
    }

    #[test]
    fn entra_members_add_and_remove_with_value_lists() {
        let g = json!({"displayName": "Eng"});
        let (_, out) = patch(
            ResourceKind::Group,
            g.clone(),
            json!([
                {"op": "Add", "path": "members", "value": [{"$ref": null, "value": "u1"}, {"value": "u2"}]},
                {"op": "Remove", "path": "members", "value": [{"$ref": null, "value": "u1"}]},
                {"op": "Remove", "path": "members", "value": []},
                {"op": "remove", "path": "members[value eq \"u3\" or value eq \"u4\"]"},
                {"op": "replace", "path": "members", "value": [{"value": "u5", "type": "User"}]},
                {"op": "remove", "path": "members"},
                {"op": "add", "value": {"members": [{"value": "u6"}]}}
            ]),
        )
        .unwrap();
        assert_eq!(
            out.member_changes,
            vec![
                MemberChange::Add(vec![
                    MemberRef { value: "u1".into(), kind: None },
                    MemberRef { value: "u2".into(), kind: None }
                ]),
                MemberChange::Remove(vec!["u1".into()]),
                MemberChange::Remove(vec!["u3".into(), "u4".into()]),
                MemberChange::Replace(vec![MemberRef {
                    value: "u5".into(),
                    kind: Some(crate::resource::MemberKind::User)
                }]),
                MemberChange::RemoveAll,
                MemberChange::Add(vec![MemberRef { value: "u6".into(), kind: None }]),
            ]
        );
        assert!(!out.doc_changed);
        let e = patch(ResourceKind::Group, g.clone(), json!([{"op": "remove", "path": "members[display eq \"x\"]"}]));
        assert_eq!(err_type(e), Some(ScimType::InvalidFilter));
        let e = patch(ResourceKind::Group, g, json!([{"op": "add", "path": "members", "value": [{"display": "x"}]}]));
        assert_eq!(err_type(e), Some(ScimType::InvalidValue));
    }

    #[test]
    fn values_over_their_limit_fail_the_whole_patch_naming_the_attribute() {
        use crate::limits::NAME_MAX_BYTES;
        let over = "x".repeat(NAME_MAX_BYTES + 1);
        let group = json!({"displayName": "Eng"});
        for ops in [
            json!([{"op": "replace", "path": "displayName", "value": over}]),
            json!([{"op": "replace", "value": {"displayName": over}}]),
            json!([{"op": "add", "path": "members", "value": [{"value": over}]}]),
        ] {
            let mut doc = group.clone();
            let req = parse_patch(&json!({"Operations": ops})).unwrap();
            let e = apply_patch(ResourceKind::Group, &mut doc, &req).unwrap_err();
            assert_eq!(e.scim_type, Some(ScimType::InvalidValue), "{ops}");
            assert!(e.detail.contains(&format!("at most {NAME_MAX_BYTES} bytes")), "{}", e.detail);
            assert!(e.detail.len() < 200, "{}", e.detail);
            assert_eq!(doc, group, "{ops}");
        }
        for (ops, attribute) in [
            (json!([{"op": "replace", "path": "userName", "value": over}]), "userName"),
            (json!([{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": over}]), "emails.value"),
            (
                json!([{"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": over}]),
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
            ),
            (json!([{"op": "add", "path": "manager", "value": over}]), "manager"),
            (json!([{"op": "replace", "value": {"name.givenName": over}}]), "name.givenName"),
        ] {
            let e = user_patch(jane(), ops.clone()).unwrap_err();
            assert_eq!(e.scim_type, Some(ScimType::InvalidValue), "{ops}");
            assert!(e.detail.contains(attribute), "{attribute}: {}", e.detail);
        }
    }

    #[test]
    fn values_of_the_wrong_shape_fail_the_whole_patch_naming_the_attribute() {
        for (ops, attribute) in [
            (json!([{"op": "add", "path": "emails", "value": "x@example.com"}]), "emails"),
            (json!([{"op": "replace", "path": "phoneNumbers", "value": 5}]), "phoneNumbers"),
            (json!([{"op": "add", "path": "addresses", "value": ["Main St"]}]), "addresses"),
            (json!([{"op": "replace", "value": {"emails": "x@example.com"}}]), "emails"),
            (json!([{"op": "replace", "value": {"roles": "admin"}}]), "roles"),
            (json!([{"op": "replace", "path": "name", "value": [{"givenName": "J"}]}]), "name"),
            (json!([{"op": "replace", "value": {"name": "Jane"}}]), "name"),
            (json!([{"op": "replace", "path": "emails[type eq \"work\"]", "value": "x@example.com"}]), "emails"),
            (json!([{"op": "replace", "path": "emails[type eq \"work\"]", "value": [{"value": "x@e"}]}]), "emails"),
            (json!([{"op": "replace", "path": "displayName", "value": ["Jane"]}]), "displayName"),
            (json!([{"op": "replace", "path": "title", "value": 7}]), "title"),
            (json!([{"op": "replace", "path": "manager", "value": [{"value": "m1"}, {"value": "m2"}]}]), "manager"),
            (json!([{"op": "replace", "value": {"groups": "Engineering"}}]), "groups"),
            (json!([{"op": "replace", "value": {"meta": "x"}}]), "meta"),
        ] {
            let mut doc = jane();
            let req = parse_patch(&json!({"Operations": ops})).unwrap();
            let e = apply_patch(ResourceKind::User, &mut doc, &req).expect_err(&ops.to_string());
            assert_eq!(e.scim_type, Some(ScimType::InvalidValue), "{ops}: {}", e.detail);
            assert!(e.detail.contains(attribute), "{ops}: {}", e.detail);
            assert_eq!(doc, jane(), "{ops}");
        }
        let g = json!({"displayName": "Eng"});
        for value in [json!("u1"), json!(["u1"]), json!(7)] {
            for op in ["add", "replace", "remove"] {
                let e = patch(ResourceKind::Group, g.clone(), json!([{"op": op, "path": "members", "value": value}]));
                assert_eq!(err_type(e), Some(ScimType::InvalidValue), "{op} {value}");
            }
        }
    }

    #[test]
    fn empty_operations_is_a_no_op() {
        let req = parse_patch(&json!({"schemas": [PATCH_OP_SCHEMA], "Operations": []})).unwrap();
        assert!(req.ops.is_empty());
        let mut doc = jane();
        let out = apply_patch(ResourceKind::User, &mut doc, &req).unwrap();
        assert_eq!(doc, jane());
        assert_eq!(out, PatchOutcome { doc_changed: false, member_changes: vec![] });
        // No schemas at all, lower-case key: tolerated.
        assert!(parse_patch(&json!({"operations": []})).is_ok());
    }

    #[test]
    fn parse_errors() {
        let t = |body: Value| parse_patch(&body).unwrap_err().scim_type;
        assert_eq!(t(json!([])), Some(ScimType::InvalidSyntax));
        assert_eq!(t(json!({"schemas": [PATCH_OP_SCHEMA]})), Some(ScimType::InvalidSyntax));
        assert_eq!(t(json!({"Operations": [{"op": "move", "path": "x"}]})), Some(ScimType::InvalidSyntax));
        assert_eq!(t(json!({"Operations": [{"op": "remove"}]})), Some(ScimType::NoTarget));
        assert_eq!(t(json!({"Operations": [{"op": "add", "path": "title"}]})), Some(ScimType::InvalidSyntax));
        let req = parse_patch(&json!({"Operations": [{"OP": "Add", "Path": " title ", "Value": "x"}]})).unwrap();
        assert_eq!(
            req.ops,
            vec![PatchOp { op: PatchOpKind::Add, path: Some("title".into()), value: Some(json!("x")) }]
        );
    }

    #[test]
    fn multi_byte_characters_in_paths_and_keys_change_nothing() {
        // Found by fuzzing (fuzz/regressions/patch): these panicked in `split_urn`. An
        // unknown path is refused or ignored as an ASCII one is; the doc never changes.
        let ops = |path: &str| json!([{"op": "replace", "path": path, "value": "x"}]);
        assert_eq!(err_type(user_patch(jane(), ops("maʚ"))), Some(ScimType::InvalidPath));
        assert_eq!(err_type(user_patch(jane(), ops("né.x"))), Some(ScimType::InvalidPath));
        for ops in [
            ops("é"),
            ops("diz\u{e9}playName"),
            ops("ém[type eq \"x\"].value"),
            json!([{"op": "remove", "path": "ʚ"}]),
            json!([{"op": "replace", "value": {"diz\u{e9}playName": "D", "nam\u{e9}.x": "G"}}]),
        ] {
            match user_patch(jane(), ops.clone()) {
                Ok((doc, outcome)) => assert!(doc == jane() && !outcome.doc_changed, "{ops}"),
                Err(e) => assert_eq!(e.status, 400, "{ops}: {e}"),
            }
        }
    }

    #[test]
    fn long_paths_are_not_echoed_in_errors() {
        // Found by fuzzing (fuzz/regressions/patch): both details quoted the whole path.
        let long = "x".repeat(5000);
        for path in [format!("emails[type eq \"work\"].{long}"), format!("{long}[type eq \"work\"]"), long.clone()] {
            let e = user_patch(jane(), json!([{"op": "replace", "path": path, "value": "x"}])).unwrap_err();
            assert_eq!(e.scim_type, Some(ScimType::InvalidPath));
            assert!(e.detail.len() < 200, "{}", e.detail);
        }
    }

    #[test]
    fn path_errors_and_read_only() {
        let ty = |ops: Value| err_type(user_patch(jane(), ops));
        assert_eq!(ty(json!([{"op": "replace", "path": "nope", "value": "x"}])), Some(ScimType::InvalidPath));
        assert_eq!(ty(json!([{"op": "replace", "path": "name.nope", "value": "x"}])), Some(ScimType::InvalidPath));
        assert_eq!(ty(json!([{"op": "replace", "path": "id", "value": "x"}])), Some(ScimType::Mutability));
        assert_eq!(ty(json!([{"op": "replace", "path": "meta.created", "value": "x"}])), Some(ScimType::Mutability));
        assert_eq!(ty(json!([{"op": "add", "path": "groups", "value": [{"value": "g"}]}])), Some(ScimType::Mutability));
        assert_eq!(ty(json!([{"op": "replace", "path": "active", "value": "maybe"}])), Some(ScimType::InvalidValue));
        assert_eq!(
            ty(json!([{"op": "replace", "path": "emails[type eq ]", "value": "x"}])),
            Some(ScimType::InvalidFilter)
        );
        assert_eq!(
            ty(json!([{"op": "replace", "path": "userName[type eq \"x\"]", "value": "x"}])),
            Some(ScimType::InvalidPath)
        );
        assert_eq!(
            ty(json!([{"op": "replace", "path": "emails[value co \"zzz\"].type", "value": "x"}])),
            Some(ScimType::NoTarget)
        );
        // Removing the required userName fails the whole request, and the doc is untouched.
        let mut doc = jane();
        let req = parse_patch(&json!({"Operations": [
            {"op": "replace", "path": "title", "value": "Boss"},
            {"op": "remove", "path": "userName"}
        ]}))
        .unwrap();
        let e = apply_patch(ResourceKind::User, &mut doc, &req).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
        assert_eq!(doc, jane());
        // Remove of something absent is a no-op.
        let (doc, out) = user_patch(
            jane(),
            json!([{"op": "remove", "path": "emails[type eq \"home\"]"}, {"op": "remove", "path": "title"}]),
        )
        .unwrap();
        assert_eq!(doc, jane());
        assert!(!out.doc_changed);
    }

    #[test]
    fn multi_valued_add_replace_remove() {
        // add appends, without duplicating a value already there.
        let (doc, _) = user_patch(
            jane(),
            json!([{"op": "add", "path": "emails", "value": [
                {"value": "JANE@example.com", "type": "work"},
                {"value": "j@other.example", "type": "other", "primary": true}
            ]}]),
        )
        .unwrap();
        assert_eq!(
            doc["emails"],
            json!([
                {"value": "JANE@example.com", "type": "work", "primary": false},
                {"value": "j@other.example", "type": "other", "primary": true}
            ])
        );
        // remove with a filter, and of a sub-attribute of matching elements.
        let (doc2, _) = user_patch(
            doc.clone(),
            json!([
                {"op": "remove", "path": "emails[type eq \"other\"]"},
                {"op": "remove", "path": "emails[type eq \"work\"].primary"}
            ]),
        )
        .unwrap();
        assert_eq!(doc2["emails"], json!([{"value": "JANE@example.com", "type": "work"}]));
        // replace without a filter replaces the whole list; replace with null removes.
        let (doc3, _) = user_patch(
            doc.clone(),
            json!([
                {"op": "replace", "path": "emails", "value": {"value": "only@example.com"}},
                {"op": "replace", "path": "name", "value": null}
            ]),
        )
        .unwrap();
        assert_eq!(doc3["emails"], json!([{"value": "only@example.com"}]));
        assert!(doc3.get("name").is_none());
        // replace with a filter merges into the matching element.
        let (doc4, _) = user_patch(
            doc,
            json!([{"op": "replace", "path": "emails[type eq \"other\"]", "value": {"value": "new@other.example"}}]),
        )
        .unwrap();
        assert_eq!(
            doc4["emails"],
            json!([
                {"value": "JANE@example.com", "type": "work", "primary": false},
                {"value": "new@other.example", "type": "other", "primary": true}
            ])
        );
    }

    #[test]
    fn complex_single_valued_merges() {
        let (doc, _) = user_patch(
            jane(),
            json!([
                {"op": "replace", "path": "name", "value": {"givenName": "Janet", "middleName": "Q"}},
                {"op": "add", "path": "name.honorificPrefix", "value": "Dr"},
                {"op": "remove", "path": "name.middleName"}
            ]),
        )
        .unwrap();
        assert_eq!(doc["name"], json!({"familyName": "Doe", "givenName": "Janet", "honorificPrefix": "Dr"}));
        // The whole extension as a path.
        let (doc, _) = user_patch(
            doc,
            json!([{"op": "add", "path": ENTERPRISE_USER_SCHEMA, "value": {"division": "D", "manager": "m9"}}]),
        )
        .unwrap();
        assert_eq!(doc[ENTERPRISE_USER_SCHEMA], json!({"division": "D", "manager": {"value": "m9"}}));
        let (doc, _) = user_patch(doc, json!([{"op": "remove", "path": ENTERPRISE_USER_SCHEMA}])).unwrap();
        assert!(doc.get(ENTERPRISE_USER_SCHEMA).is_none());
    }
}
