//! Labels built from IdP data: a name and criteria on the host's end user. Membership is
//! never stored: the store evaluates the criteria when a label's hosts are read, so a
//! change in the IdP shows in the next read.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

/// The deepest nesting of `and` / `or` accepted.
pub const MAX_DEPTH: usize = 4;
/// The most conditions (leaves) one label's criteria may hold.
pub const MAX_CONDITIONS: usize = 32;
/// The longest value (a group's name or SCIM id, a department) of a condition, in bytes.
pub const MAX_VALUE: usize = crate::limits::NAME_MAX_BYTES;
/// The longest SCIM filter of an `end_user_idp_filter` condition: what `GET /Users` takes.
pub const MAX_FILTER_VALUE: usize = custodian_scim::filter::MAX_FILTER_LEN;
/// The vitals a condition may test, as the request names them.
pub const VITALS: &[&str] = &["end_user_idp_group", "end_user_idp_department", "end_user_idp_filter"];

/// A problem with one field of criteria, named as the request names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriteriaError {
    pub name: String,
    pub reason: String,
    /// The value is longer than this many bytes (a 400 on the JSON API, not a 422).
    pub over_limit: Option<usize>,
}

impl CriteriaError {
    fn new(name: impl Into<String>, reason: impl Into<String>) -> Self {
        CriteriaError { name: name.into(), reason: reason.into(), over_limit: None }
    }
    fn too_long(name: impl Into<String>, max: usize) -> Self {
        CriteriaError { name: name.into(), reason: crate::limits::over_limit_reason(max), over_limit: Some(max) }
    }
}

/// A host vital a condition tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vital {
    /// The end user is a member of the group (directly or through nested groups).
    EndUserIdpGroup,
    /// The end user's department equals the value (any case).
    EndUserIdpDepartment,
    /// The end user matches the value, a SCIM filter over Users (`GET /Users?filter=`).
    EndUserIdpFilter,
}

impl Vital {
    pub fn as_str(self) -> &'static str {
        match self {
            Vital::EndUserIdpGroup => "end_user_idp_group",
            Vital::EndUserIdpDepartment => "end_user_idp_department",
            Vital::EndUserIdpFilter => "end_user_idp_filter",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "end_user_idp_group" => Some(Vital::EndUserIdpGroup),
            "end_user_idp_department" => Some(Vital::EndUserIdpDepartment),
            "end_user_idp_filter" => Some(Vital::EndUserIdpFilter),
            _ => None,
        }
    }
}

/// A label's criteria: one condition, or conditions combined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Criteria {
    Condition {
        vital: Vital,
        /// As the operator wrote it: a group's name or SCIM id, a department, or a SCIM
        /// filter (checked by `custodian_scim::filter::parse_filter` when saved).
        value: String,
        /// For a group condition: the SCIM id of the group the value named when the label
        /// was saved. Matching then follows the id, so renaming the group keeps the label.
        group_id: Option<String>,
        /// Only end users of the IdP connection with this name (any case).
        connection: Option<String>,
    },
    And(Vec<Criteria>),
    Or(Vec<Criteria>),
}

impl Criteria {
    /// The stored and displayed form.
    pub fn to_json(&self) -> Value {
        match self {
            Criteria::Condition { vital, value, group_id, connection } => {
                let mut m = Map::new();
                m.insert("vital".into(), json!(vital.as_str()));
                m.insert("value".into(), json!(value));
                if let Some(id) = group_id {
                    m.insert("group_id".into(), json!(id));
                }
                if let Some(c) = connection {
                    m.insert("connection".into(), json!(c));
                }
                Value::Object(m)
            }
            Criteria::And(items) => json!({"and": items.iter().map(Criteria::to_json).collect::<Vec<_>>()}),
            Criteria::Or(items) => json!({"or": items.iter().map(Criteria::to_json).collect::<Vec<_>>()}),
        }
    }

    /// Every condition, depth first, with its field name as `parse` names it (from
    /// `name`, e.g. `criteria.or[1]`).
    pub fn conditions(&self, name: &str) -> Vec<(String, &Criteria)> {
        match self {
            Criteria::Condition { .. } => vec![(name.to_string(), self)],
            Criteria::And(items) | Criteria::Or(items) => {
                let combinator = if matches!(self, Criteria::And(_)) { "and" } else { "or" };
                items
                    .iter()
                    .enumerate()
                    .flat_map(|(i, item)| item.conditions(&format!("{name}.{combinator}[{i}]")))
                    .collect()
            }
        }
    }

    /// Every condition, depth first.
    pub fn conditions_mut(&mut self) -> Vec<&mut Criteria> {
        match self {
            Criteria::Condition { .. } => vec![self],
            Criteria::And(items) | Criteria::Or(items) => items.iter_mut().flat_map(Criteria::conditions_mut).collect(),
        }
    }

    /// Parses criteria, collecting every problem as `(field, reason)` with the field
    /// named from `name` (e.g. `criteria.or[1].value`). A `group_id` in the input is
    /// kept when it names an existing group (the store checks), so that criteria read
    /// back and sent again keep following a renamed group.
    pub fn parse(value: &Value, name: &str) -> Result<Criteria, Vec<CriteriaError>> {
        let mut errors = Vec::new();
        let mut conditions = 0;
        let parsed = parse_node(value, name, 1, &mut conditions, &mut errors);
        if conditions > MAX_CONDITIONS {
            errors.push(CriteriaError::new(name, format!("must hold at most {MAX_CONDITIONS} conditions")));
        }
        match parsed {
            Some(c) if errors.is_empty() => Ok(c),
            _ => {
                if errors.is_empty() {
                    errors.push(CriteriaError::new(name, "is invalid"));
                }
                Err(errors)
            }
        }
    }
}

fn parse_node(
    value: &Value,
    name: &str,
    depth: usize,
    conditions: &mut usize,
    errors: &mut Vec<CriteriaError>,
) -> Option<Criteria> {
    let Some(obj) = value.as_object() else {
        errors.push(CriteriaError::new(
            name,
            "must be an object: {\"vital\", \"value\"}, {\"and\": [...]} or {\"or\": [...]}",
        ));
        return None;
    };
    for combinator in ["and", "or"] {
        if let Some(items) = obj.get(combinator) {
            if obj.len() != 1 {
                errors.push(CriteriaError::new(name, format!("an '{combinator}' object must have no other keys")));
                return None;
            }
            if depth >= MAX_DEPTH {
                errors.push(CriteriaError::new(
                    format!("{name}.{combinator}"),
                    format!("criteria nest at most {MAX_DEPTH} levels deep"),
                ));
                return None;
            }
            let Some(items) = items.as_array().filter(|a| !a.is_empty()) else {
                errors.push(CriteriaError::new(format!("{name}.{combinator}"), "must be a non-empty list of criteria"));
                return None;
            };
            if items.len() > MAX_CONDITIONS {
                errors.push(CriteriaError::new(
                    format!("{name}.{combinator}"),
                    format!("must hold at most {MAX_CONDITIONS} criteria"),
                ));
                return None;
            }
            let parsed: Vec<Option<Criteria>> = items
                .iter()
                .enumerate()
                .map(|(i, item)| parse_node(item, &format!("{name}.{combinator}[{i}]"), depth + 1, conditions, errors))
                .collect();
            let parsed: Option<Vec<Criteria>> = parsed.into_iter().collect();
            return parsed.map(|items| if combinator == "and" { Criteria::And(items) } else { Criteria::Or(items) });
        }
    }
    *conditions += 1;
    for key in obj.keys() {
        if !matches!(key.as_str(), "vital" | "value" | "group_id" | "connection") {
            errors.push(CriteriaError::new(
                format!("{name}.{key}"),
                "is not a criteria field: use vital, value and connection, or and / or",
            ));
        }
    }
    let vital = match obj.get("vital") {
        Some(Value::String(s)) => match Vital::parse(s) {
            Some(v) => Some(v),
            None => {
                errors.push(CriteriaError::new(format!("{name}.vital"), VITAL_CHOICES));
                None
            }
        },
        None | Some(Value::Null) => {
            errors.push(CriteriaError::new(format!("{name}.vital"), "is required"));
            None
        }
        Some(_) => {
            errors.push(CriteriaError::new(format!("{name}.vital"), VITAL_CHOICES));
            None
        }
    };
    let max_value = if vital == Some(Vital::EndUserIdpFilter) { MAX_FILTER_VALUE } else { MAX_VALUE };
    let val = match obj.get("value") {
        Some(Value::String(s)) if s.len() > max_value => {
            errors.push(CriteriaError::too_long(format!("{name}.value"), max_value));
            None
        }
        Some(Value::String(s)) if s.trim().is_empty() => {
            errors.push(CriteriaError::new(format!("{name}.value"), "must not be empty"));
            None
        }
        Some(Value::String(s)) if s.contains('\0') => {
            errors.push(CriteriaError::new(format!("{name}.value"), "must not contain NUL characters"));
            None
        }
        Some(Value::String(s)) => Some(s.trim().to_string()),
        None | Some(Value::Null) => {
            errors.push(CriteriaError::new(format!("{name}.value"), "is required"));
            None
        }
        Some(_) => {
            errors.push(CriteriaError::new(format!("{name}.value"), "must be a string"));
            None
        }
    };
    let group_id = match obj.get("group_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.len() > MAX_VALUE => {
            errors.push(CriteriaError::too_long(format!("{name}.group_id"), MAX_VALUE));
            None
        }
        Some(Value::String(s)) if vital == Some(Vital::EndUserIdpGroup) && !s.is_empty() && !s.contains('\0') => {
            Some(s.clone())
        }
        Some(_) => {
            errors.push(CriteriaError::new(
                format!("{name}.group_id"),
                "must be a group's SCIM id, on a group condition only",
            ));
            None
        }
    };
    let connection = match obj.get("connection") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.len() > MAX_VALUE => {
            errors.push(CriteriaError::too_long(format!("{name}.connection"), MAX_VALUE));
            None
        }
        Some(Value::String(s)) if !s.trim().is_empty() && !s.contains('\0') => Some(s.trim().to_string()),
        Some(_) => {
            errors.push(CriteriaError::new(format!("{name}.connection"), "must be an IdP connection's name"));
            None
        }
    };
    if let (Some(Vital::EndUserIdpFilter), Some(filter)) = (vital, &val)
        && let Err(e) = custodian_scim::filter::parse_filter(custodian_scim::schema::ResourceKind::User, filter)
    {
        // The parser's own words, with the character offset of the problem.
        errors.push(CriteriaError::new(format!("{name}.value"), e.detail));
        return None;
    }
    Some(Criteria::Condition { vital: vital?, value: val?, group_id, connection })
}

const VITAL_CHOICES: &str = "must be end_user_idp_group, end_user_idp_department or end_user_idp_filter";

/// Criteria read back from the database (trusted: written by `to_json`).
pub fn criteria_from_stored(value: &Value) -> Option<Criteria> {
    let obj = value.as_object()?;
    if let Some(items) = obj.get("and").and_then(Value::as_array) {
        return items.iter().map(criteria_from_stored).collect::<Option<Vec<_>>>().map(Criteria::And);
    }
    if let Some(items) = obj.get("or").and_then(Value::as_array) {
        return items.iter().map(criteria_from_stored).collect::<Option<Vec<_>>>().map(Criteria::Or);
    }
    Some(Criteria::Condition {
        vital: Vital::parse(obj.get("vital")?.as_str()?)?,
        value: obj.get("value")?.as_str()?.to_string(),
        group_id: obj.get("group_id").and_then(Value::as_str).map(str::to_string),
        connection: obj.get("connection").and_then(Value::as_str).map(str::to_string),
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub criteria: Criteria,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The automatic source that keeps this label (`None`: a label made by hand).
    pub source_id: Option<i64>,
}

/// Why an automatic label is not changed by hand.
pub const AUTOMATIC_REFUSAL: &str = "an automatic label follows its IdP group or department and cannot be edited \
     or deleted by hand; stop its source (DELETE /api/v1/fleet/labels/automatic/{id}) instead";

/// What an automatic source makes one label of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutomaticSource {
    /// One label per IdP group: its hosts are those of the group's members, nested ones
    /// included.
    IdpGroups,
    /// One label per department that some user has.
    IdpDepartments,
}

impl AutomaticSource {
    pub const NAMES: [&'static str; 2] = ["idp_groups", "idp_departments"];

    pub fn as_str(self) -> &'static str {
        match self {
            AutomaticSource::IdpGroups => "idp_groups",
            AutomaticSource::IdpDepartments => "idp_departments",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "idp_groups" => Some(AutomaticSource::IdpGroups),
            "idp_departments" => Some(AutomaticSource::IdpDepartments),
            _ => None,
        }
    }

    /// The name of the label of a group or department, in a source of one connection or
    /// of all.
    pub fn label_name(self, value: &str, connection: Option<&str>) -> String {
        let what = match self {
            AutomaticSource::IdpGroups => "IdP group",
            AutomaticSource::IdpDepartments => "Department",
        };
        match connection {
            Some(c) => format!("{what}: {} ({c})", value.trim()),
            None => format!("{what}: {}", value.trim()),
        }
    }

    /// The criteria of that label: the group by its SCIM id (renames keep it; nested
    /// members count), or the department in any case.
    pub fn criteria(self, value: &str, group_id: Option<&str>, connection: Option<&str>) -> Criteria {
        let vital = match self {
            AutomaticSource::IdpGroups => Vital::EndUserIdpGroup,
            AutomaticSource::IdpDepartments => Vital::EndUserIdpDepartment,
        };
        Criteria::Condition {
            vital,
            value: value.trim().to_string(),
            group_id: group_id.map(str::to_string),
            connection: connection.map(str::to_string),
        }
    }
}

/// A source of automatic labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSource {
    pub id: i64,
    pub source: AutomaticSource,
    /// The connection whose groups or departments it follows; `None`: all of them.
    pub connection: Option<String>,
    pub created_at: DateTime<Utc>,
    /// How many labels it keeps now.
    pub label_count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLabel {
    pub name: String,
    pub description: String,
    pub criteria: Criteria,
}

/// A partial update: `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelChange {
    pub name: Option<String>,
    pub description: Option<String>,
    pub criteria: Option<Criteria>,
}

/// A label a host belongs to, as host details list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelRef {
    pub id: i64,
    pub name: String,
    /// Kept by an automatic source (`label_type: "automatic"`).
    pub automatic: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_criteria_and_names_bad_fields() {
        let ok = json!({"or": [{"vital": "end_user_idp_group", "value": "Eng"},
                               {"and": [{"vital": "end_user_idp_department", "value": " Sales "}]}]});
        let c = Criteria::parse(&ok, "criteria").unwrap_or_else(|e| unreachable!("{e:?}"));
        assert_eq!(criteria_from_stored(&c.to_json()), Some(c.clone()));
        assert_eq!(
            c.to_json(),
            json!({"or": [{"vital": "end_user_idp_group", "value": "Eng"},
                          {"and": [{"vital": "end_user_idp_department", "value": "Sales"}]}]})
        );

        let bad = json!({"or": [{"vital": "os", "value": "x"}, {"vital": "end_user_idp_group"}]});
        let errors = Criteria::parse(&bad, "criteria").err().unwrap_or_default();
        let names: Vec<&str> = errors.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["criteria.or[0].vital", "criteria.or[1].value"]);

        let deep = json!({"and": [{"and": [{"and": [{"and": [{"vital": "end_user_idp_group", "value": "x"}]}]}]}]});
        let errors = Criteria::parse(&deep, "criteria").err().unwrap_or_default();
        assert_eq!(errors[0].name, "criteria.and[0].and[0].and[0].and");

        let many: Vec<Value> =
            (0..40).map(|i| json!({"vital": "end_user_idp_group", "value": i.to_string()})).collect();
        assert!(Criteria::parse(&json!({"or": many}), "criteria").is_err());
        assert!(Criteria::parse(&json!({"and": []}), "criteria").is_err());
        assert!(Criteria::parse(&json!("x"), "criteria").is_err());

        // Lengths are bytes: 512 two-byte characters fit, one more does not.
        let at_limit = json!({"vital": "end_user_idp_department", "value": "\u{e9}".repeat(MAX_VALUE / 2)});
        assert!(Criteria::parse(&at_limit, "criteria").is_ok());
        let over = json!({"or": [{"vital": "end_user_idp_group", "value": "x".repeat(MAX_VALUE + 1), "group_id": "y".repeat(MAX_VALUE + 1)}]});
        let errors = Criteria::parse(&over, "criteria").err().unwrap_or_default();
        let over_limit: Vec<(&str, Option<usize>)> = errors.iter().map(|e| (e.name.as_str(), e.over_limit)).collect();
        assert_eq!(
            over_limit,
            [("criteria.or[0].value", Some(MAX_VALUE)), ("criteria.or[0].group_id", Some(MAX_VALUE))]
        );
        assert_eq!(errors[0].reason, format!("at most {MAX_VALUE} bytes"));
    }
}
