//! SCIM filters translated into SQL over the attribute index (`scim_values`), with every
//! value bound, never spliced. The outer query names the resource table `r`.
//!
//! The semantics mirror `custodian_scim::filter::matches` exactly (a differential
//! property test holds the two together): a comparison on a multi-valued attribute is
//! true when any value satisfies it, `ne` is `not eq`, `eq null` is "not present".

use custodian_scim::ScimError;
use custodian_scim::filter::{CompValue, CompareKey, CompareOp, Filter, literal_key, matches, parse_filter};
use custodian_scim::schema::{AttrLocation, AttrType, ResolvedAttr, ResourceKind};

use custodian_domain::SortOrder;

use crate::index::{is_numeric, key_columns};

pub use crate::db::{Dialect, Sql};

/// Translates one term (a comparison, a presence test, a value path) of a filter.
type TermFn<'f> = dyn Fn(&mut Sql, &Filter) -> Result<(), ScimError> + 'f;

/// Translates filters for one resource type on one backend.
pub struct FilterSql {
    dialect: Dialect,
    kind: ResourceKind,
    /// The column holding the resource's row number that terms test: `r.seq` over
    /// `scim_resources r`, or another table's reference to a resource (`on_seq`).
    seq: &'static str,
}

/// The column that holds an attribute's values in `scim_values`.
fn value_column(attr: &ResolvedAttr) -> &'static str {
    if is_numeric(attr.leaf().ty) { "num_value" } else { "text_value" }
}

fn is_members(kind: ResourceKind, attr: &ResolvedAttr) -> bool {
    kind == ResourceKind::Group && attr.location == AttrLocation::Core && attr.attr.name == "members"
}

fn is_groups(kind: ResourceKind, attr: &ResolvedAttr) -> bool {
    kind == ResourceKind::User && attr.location == AttrLocation::Core && attr.attr.name == "groups"
}

/// The `path >= 'x.' AND path < 'x/'` range that selects every sub-attribute of a complex
/// attribute ('/' follows '.' in every collation we use).
fn prefix_bounds(attr: &ResolvedAttr) -> (String, String) {
    let base = ResolvedAttr { sub: None, ..*attr }.canonical_path();
    (format!("{base}."), format!("{base}/"))
}

/// Parses a filter and checks that it translates: the few valid filters SQL cannot answer
/// (`meta.location eq ...`, `members co ...`) are refused here with the same
/// `invalidFilter` a SCIM list answers, so that the JSON API can name its field.
pub fn parse_translatable(kind: ResourceKind, text: &str) -> Result<Filter, ScimError> {
    let filter = parse_filter(kind, text)?;
    FilterSql::new(Dialect::Sqlite, kind).push(&mut Sql::default(), &filter)?;
    Ok(filter)
}

impl FilterSql {
    pub fn new(dialect: Dialect, kind: ResourceKind) -> Self {
        FilterSql { dialect, kind, seq: "r.seq" }
    }

    /// Terms test this column (e.g. `h.end_user_seq`) instead of `r.seq`, so that the
    /// filter needs no join with `scim_resources`: each term is an index lookup, and the
    /// few that read a resource's own columns (`id`, `meta.created`, ...) look it up.
    /// The caller excludes rows where the column is NULL.
    pub fn on_seq(mut self, column: &'static str) -> Self {
        self.seq = column;
        self
    }

    pub fn push(&self, qb: &mut Sql, filter: &Filter) -> Result<(), ScimError> {
        self.push_logic(qb, filter, &|qb, leaf| match leaf {
            Filter::Present(attr) => self.push_present(qb, attr),
            Filter::Compare { attr, op, value } => self.push_compare(qb, attr, *op, value),
            Filter::ValuePath { attr, filter } => self.push_value_path(qb, attr, filter),
            _ => Ok(()),
        })
    }

    /// `and`, `or` and `not` around the terms, which `leaf` translates: the same logic
    /// serves whole resources and the elements inside `attr[...]`.
    fn push_logic(&self, qb: &mut Sql, filter: &Filter, leaf: &TermFn<'_>) -> Result<(), ScimError> {
        match filter {
            Filter::And(a, b) | Filter::Or(a, b) => {
                qb.push("(");
                self.push_logic(qb, a, leaf)?;
                qb.push(if matches!(filter, Filter::And(..)) { " AND " } else { " OR " });
                self.push_logic(qb, b, leaf)?;
                qb.push(")");
                Ok(())
            }
            Filter::Not(inner) => {
                qb.push("(NOT ");
                self.push_logic(qb, inner, leaf)?;
                qb.push(")");
                Ok(())
            }
            term => leaf(qb, term),
        }
    }

    fn push_present(&self, qb: &mut Sql, attr: &ResolvedAttr) -> Result<(), ScimError> {
        if attr.location == AttrLocation::Common {
            // id and meta are always present; externalId is indexed like any attribute.
            if attr.attr.name != "externalId" {
                qb.push("(1=1)");
                return Ok(());
            }
        }
        if is_members(self.kind, attr) {
            qb.push(format_args!("(EXISTS (SELECT 1 FROM scim_members pm WHERE pm.group_seq = {}))", self.seq));
            return Ok(());
        }
        if is_groups(self.kind, attr) {
            qb.push(format_args!("(EXISTS (SELECT 1 FROM scim_members pm WHERE pm.member_seq = {}))", self.seq));
            return Ok(());
        }
        qb.push(format_args!("({} IN (SELECT resource_seq FROM scim_values WHERE kind = ", self.seq));
        qb.push_bind(self.kind.name().to_string());
        if matches!(attr.location, AttrLocation::Custom(_)) && attr.sub.is_none() {
            // A custom attribute holds text or objects: it is present when it has rows of
            // its own or of its sub-attributes.
            let (lo, hi) = prefix_bounds(attr);
            qb.push(" AND (path = ");
            qb.push_bind(attr.canonical_path());
            qb.push(" OR (path >= ");
            qb.push_bind(lo);
            qb.push(" AND path < ");
            qb.push_bind(hi);
            qb.push("))");
        } else {
            self.push_path_condition(qb, attr, "");
        }
        qb.push("))");
        Ok(())
    }

    /// ` AND path = ...`, or the prefix range for a complex attribute named alone.
    fn push_path_condition(&self, qb: &mut Sql, attr: &ResolvedAttr, alias: &str) {
        if attr.attr.ty == AttrType::Complex && attr.sub.is_none() {
            let (lo, hi) = prefix_bounds(attr);
            qb.push(format_args!(" AND {alias}path >= "));
            qb.push_bind(lo);
            qb.push(format_args!(" AND {alias}path < "));
            qb.push_bind(hi);
        } else {
            qb.push(format_args!(" AND {alias}path = "));
            qb.push_bind(attr.canonical_path());
        }
    }

    fn push_compare(
        &self,
        qb: &mut Sql,
        attr: &ResolvedAttr,
        op: CompareOp,
        value: &CompValue,
    ) -> Result<(), ScimError> {
        if *value == CompValue::Null {
            return match op {
                CompareOp::Eq => {
                    qb.push("(NOT ");
                    self.push_present(qb, attr)?;
                    qb.push(")");
                    Ok(())
                }
                CompareOp::Ne => self.push_present(qb, attr),
                _ => Err(ScimError::invalid_filter("null can only be compared with eq or ne")),
            };
        }
        if op == CompareOp::Ne {
            qb.push("(NOT ");
            self.push_compare(qb, attr, CompareOp::Eq, value)?;
            qb.push(")");
            return Ok(());
        }
        if is_members(self.kind, attr) || is_groups(self.kind, attr) {
            return self.push_membership(qb, attr, op, value);
        }
        if attr.location == AttrLocation::Common {
            match (attr.attr.name, attr.sub.map(|s| s.name)) {
                ("id", _) => return self.push_column_compare(qb, "r.id", attr, op, value),
                ("meta", Some("created")) => return self.push_column_compare(qb, "r.created", attr, op, value),
                ("meta", Some("lastModified")) => {
                    return self.push_column_compare(qb, "r.last_modified", attr, op, value);
                }
                ("meta", Some("resourceType")) => {
                    // A constant per resource type: evaluate it here, as the evaluator would.
                    let doc = serde_json::json!({"meta": {"resourceType": self.kind.name()}});
                    let term = Filter::Compare { attr: *attr, op, value: value.clone() };
                    qb.push(if matches(&term, &doc) { "(1=1)" } else { "(1=0)" });
                    return Ok(());
                }
                ("meta", _) => {
                    return Err(ScimError::invalid_filter(format!(
                        "filtering on '{}' is not supported",
                        attr.canonical_path()
                    )));
                }
                _ => {}
            }
        }
        qb.push(format_args!("({} IN (SELECT resource_seq FROM scim_values WHERE kind = ", self.seq));
        qb.push_bind(self.kind.name().to_string());
        self.push_path_condition(qb, attr, "");
        qb.push(" AND ");
        self.push_value_compare(qb, value_column(attr), attr, op, value)?;
        qb.push("))");
        Ok(())
    }

    fn push_column_compare(
        &self,
        qb: &mut Sql,
        column: &str,
        attr: &ResolvedAttr,
        op: CompareOp,
        value: &CompValue,
    ) -> Result<(), ScimError> {
        if self.seq == "r.seq" {
            qb.push("(");
            self.push_value_compare(qb, column, attr, op, value)?;
            qb.push(")");
        } else {
            qb.push(format_args!("({} IN (SELECT r.seq FROM scim_resources r WHERE ", self.seq));
            self.push_value_compare(qb, column, attr, op, value)?;
            qb.push("))");
        }
        Ok(())
    }

    /// `column op value` for a non-null literal and an operator other than `ne`.
    fn push_value_compare(
        &self,
        qb: &mut Sql,
        column: &str,
        attr: &ResolvedAttr,
        op: CompareOp,
        value: &CompValue,
    ) -> Result<(), ScimError> {
        let leaf = attr.leaf();
        let key = literal_key(leaf, value);
        // The column kind is told by its name, with or without a table alias.
        let numeric_column = column.ends_with("num_value");
        let key = match key {
            Some(k @ (CompareKey::Num(_) | CompareKey::Bool(_))) if numeric_column => k,
            Some(k @ (CompareKey::Str(_) | CompareKey::Time(_))) if !numeric_column => k,
            // A literal of another type than the attribute's never matches.
            _ => {
                qb.push("1=0");
                return Ok(());
            }
        };
        let (text, num) = key_columns(key);
        match (text, num) {
            (Some(text), _) => self.push_text_compare(qb, column, op, text),
            (None, Some(num)) => {
                let sql_op = match op {
                    CompareOp::Eq => "=",
                    CompareOp::Gt => ">",
                    CompareOp::Ge => ">=",
                    CompareOp::Lt => "<",
                    CompareOp::Le => "<=",
                    _ => {
                        qb.push("1=0");
                        return Ok(());
                    }
                };
                qb.push(format_args!("{column} {sql_op} "));
                qb.push_bind(num);
            }
            (None, None) => {
                qb.push("1=0");
            }
        }
        Ok(())
    }

    fn push_text_compare(&self, qb: &mut Sql, column: &str, op: CompareOp, text: String) {
        let collate = self.dialect.byte_order();
        match op {
            CompareOp::Co | CompareOp::Sw | CompareOp::Ew if text.is_empty() => {
                // Every string contains, starts and ends with the empty string.
                qb.push(format_args!("{column} IS NOT NULL"));
            }
            CompareOp::Co => {
                qb.push(format_args!("{}({column}, ", self.dialect.contains()));
                qb.push_bind(text);
                qb.push(") > 0");
            }
            CompareOp::Sw => {
                qb.push(format_args!("substr({column}, 1, length("));
                qb.push_bind(text.clone());
                qb.push(")) = ");
                qb.push_bind(text);
            }
            CompareOp::Ew => {
                qb.push(format_args!("length({column}) >= length("));
                qb.push_bind(text.clone());
                qb.push(format_args!(") AND substr({column}, length({column}) - length("));
                qb.push_bind(text.clone());
                qb.push(") + 1) = ");
                qb.push_bind(text);
            }
            CompareOp::Eq | CompareOp::Ne => {
                qb.push(format_args!("{column} = "));
                qb.push_bind(text);
            }
            CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le => {
                let sql_op = match op {
                    CompareOp::Gt => ">",
                    CompareOp::Ge => ">=",
                    CompareOp::Lt => "<",
                    _ => "<=",
                };
                qb.push(format_args!("{column}{collate} {sql_op} "));
                qb.push_bind(text);
                qb.push(collate);
            }
        }
    }

    /// `members eq "<id>"` on groups and `groups eq "<id>"` on users, through the
    /// membership table (nested groups included for a user's groups).
    fn push_membership(
        &self,
        qb: &mut Sql,
        attr: &ResolvedAttr,
        op: CompareOp,
        value: &CompValue,
    ) -> Result<(), ScimError> {
        let on_value = attr.sub.is_none_or(|s| s.name == "value");
        let CompValue::String(id) = value else {
            qb.push("(1=0)");
            return Ok(());
        };
        if !on_value || op != CompareOp::Eq {
            return Err(ScimError::invalid_filter(format!(
                "'{}' can only be filtered with 'eq' on its value",
                attr.attr.name
            )));
        }
        if is_members(self.kind, attr) {
            qb.push(format_args!(
                "({} IN (SELECT mm.group_seq FROM scim_members mm \
                 JOIN scim_resources mx ON mx.seq = mm.member_seq WHERE mx.id = ",
                self.seq
            ));
            qb.push_bind(id.clone());
            qb.push("))");
        } else {
            qb.push(format_args!(
                "({} IN (WITH RECURSIVE below(s) AS (\
                 SELECT seq FROM scim_resources WHERE kind = 'Group' AND id = ",
                self.seq
            ));
            qb.push_bind(id.clone());
            qb.push(
                " UNION SELECT bm.member_seq FROM scim_members bm JOIN below ON bm.group_seq = below.s) \
                 SELECT s FROM below))",
            );
        }
        Ok(())
    }

    fn push_value_path(&self, qb: &mut Sql, attr: &ResolvedAttr, inner: &Filter) -> Result<(), ScimError> {
        if is_members(self.kind, attr) || is_groups(self.kind, attr) {
            // Only `members[value eq "<id>"]` has a meaning on the membership table.
            if let Filter::Compare { attr: a, op, value } = inner {
                return self.push_membership(qb, a, *op, value);
            }
            return Err(ScimError::invalid_filter(format!(
                "'{}' can only be filtered with 'value eq'",
                attr.attr.name
            )));
        }
        qb.push(format_args!("({} IN (SELECT e.resource_seq FROM scim_values e WHERE e.kind = ", self.seq));
        qb.push_bind(self.kind.name().to_string());
        self.push_path_condition(qb, &ResolvedAttr { sub: None, ..*attr }, "e.");
        qb.push(" AND ");
        self.push_element_filter(qb, inner)?;
        qb.push("))");
        Ok(())
    }

    /// A filter inside `attr[...]`, evaluated on one element (`e.resource_seq`, `e.elem`).
    fn push_element_filter(&self, qb: &mut Sql, filter: &Filter) -> Result<(), ScimError> {
        self.push_logic(qb, filter, &|qb, leaf| self.push_element_term(qb, leaf))
    }

    /// One term inside `attr[...]`.
    fn push_element_term(&self, qb: &mut Sql, filter: &Filter) -> Result<(), ScimError> {
        match filter {
            Filter::And(..) | Filter::Or(..) | Filter::Not(..) => self.push_element_filter(qb, filter)?,
            Filter::Present(attr) => {
                qb.push(
                    "EXISTS (SELECT 1 FROM scim_values v WHERE v.resource_seq = e.resource_seq AND v.elem = e.elem",
                );
                self.push_path_condition(qb, attr, "v.");
                qb.push(")");
            }
            Filter::Compare { attr, op, value } => {
                if *value == CompValue::Null {
                    let present = Filter::Present(*attr);
                    return match op {
                        CompareOp::Eq => {
                            qb.push("(NOT ");
                            self.push_element_filter(qb, &present)?;
                            qb.push(")");
                            Ok(())
                        }
                        CompareOp::Ne => self.push_element_filter(qb, &present),
                        _ => Err(ScimError::invalid_filter("null can only be compared with eq or ne")),
                    };
                }
                if *op == CompareOp::Ne {
                    qb.push("(NOT ");
                    let eq = Filter::Compare { attr: *attr, op: CompareOp::Eq, value: value.clone() };
                    self.push_element_filter(qb, &eq)?;
                    qb.push(")");
                    return Ok(());
                }
                qb.push(
                    "EXISTS (SELECT 1 FROM scim_values v WHERE v.resource_seq = e.resource_seq AND v.elem = e.elem",
                );
                self.push_path_condition(qb, attr, "v.");
                qb.push(" AND ");
                let column = if value_column(attr) == "num_value" { "v.num_value" } else { "v.text_value" };
                self.push_value_compare(qb, column, attr, *op, value)?;
                qb.push(")");
            }
            Filter::ValuePath { .. } => {
                return Err(ScimError::invalid_filter("value paths cannot be nested"));
            }
        }
        Ok(())
    }
}

/// ORDER BY for `sortBy`/`sortOrder`; unassigned values sort last either way, and the
/// row number breaks ties so that pages are stable.
pub fn push_order(qb: &mut Sql, kind: ResourceKind, sort_by: Option<&ResolvedAttr>, order: SortOrder) {
    let dir = match order {
        SortOrder::Ascending => "ASC",
        SortOrder::Descending => "DESC",
    };
    let Some(attr) = sort_by else {
        qb.push(" ORDER BY r.seq");
        return;
    };
    match (attr.location, attr.attr.name, attr.sub.map(|s| s.name)) {
        (AttrLocation::Common, "id", _) => {
            qb.push(format_args!(" ORDER BY r.id {dir}, r.seq"));
        }
        (AttrLocation::Common, "meta", Some("created")) => {
            qb.push(format_args!(" ORDER BY r.created {dir}, r.seq"));
        }
        (AttrLocation::Common, "meta", Some("lastModified")) => {
            qb.push(format_args!(" ORDER BY r.last_modified {dir}, r.seq"));
        }
        _ => {
            let column = if is_numeric(attr.leaf().ty) { "num_value" } else { "text_value" };
            let path = if attr.sub.is_none() && attr.attr.ty == AttrType::Complex {
                ResolvedAttr { sub: attr.attr.sub_attribute("value"), ..*attr }.canonical_path()
            } else {
                attr.canonical_path()
            };
            let sub = format!(
                "(SELECT MIN(s.{column}) FROM scim_values s WHERE s.resource_seq = r.seq AND s.kind = '{}' AND s.path = ",
                kind.name()
            );
            qb.push(" ORDER BY ");
            qb.push(&sub);
            qb.push_bind(path.clone());
            qb.push(") IS NULL, ");
            qb.push(&sub);
            qb.push_bind(path);
            qb.push(format_args!(") {dir}, r.seq"));
        }
    }
}
