//! `filter`: the SCIM filter parser, its SQL translation on both dialects, the
//! in-memory evaluator, and the `sortBy`/`attributes` parameters that share its paths.

use custodian_domain::SortOrder;
use custodian_scim::filter::{Filter, matches, parse_filter};
use custodian_scim::projection::Projection;
use custodian_scim::schema::ResourceKind;
use custodian_store::sql_filter::{Dialect, FilterSql, Sql, push_order};

use crate::samples;

const OUTER: &str = "SELECT r.seq FROM scim_resources r WHERE ";

/// Client text never reaches the SQL: every value is bound. What the translation
/// writes itself is ASCII without quotes, except these fixed literals.
fn assert_no_spliced_text(sql: &str, input: &str) {
    let rest = sql.replace("kind = 'Group'", "").replace("kind = 'User'", "").replace("COLLATE \"C\"", "");
    assert!(
        rest.is_ascii() && !rest.contains(['\'', '"', ';', '\\', '\0']),
        "the SQL of filter {input:?} holds quoted or non-ASCII text: {sql}"
    );
    let opens = sql.matches('(').count();
    let closes = sql.matches(')').count();
    assert_eq!(opens, closes, "unbalanced parentheses in the SQL of {input:?}: {sql}");
}

/// Translates `filter` for one dialect: `Ok(sql)` or the error's detail.
fn translate(kind: ResourceKind, dialect: Dialect, filter: &Filter, input: &str) -> Result<String, String> {
    let mut qb = Sql::new(OUTER);
    let result = FilterSql::new(dialect, kind).push(&mut qb, filter).map(|()| qb.into_sql());
    match result {
        Ok(sql) => {
            assert_no_spliced_text(&sql, input);
            Ok(sql)
        }
        Err(e) => {
            crate::assert_invalid_filter(&e, "the SQL translation");
            Err(e.detail)
        }
    }
}

fn check_kind(kind: ResourceKind, input: &str) {
    match parse_filter(kind, input) {
        Err(e) => crate::assert_invalid_filter(&e, "parse_filter"),
        Ok(filter) => {
            let sqlite = translate(kind, Dialect::Sqlite, &filter, input);
            let postgres = translate(kind, Dialect::Postgres, &filter, input);
            // The dialects differ in function names and collation only: one cannot
            // refuse what the other accepts.
            assert_eq!(sqlite.is_ok(), postgres.is_ok(), "{input:?}: {sqlite:?} vs {postgres:?}");
            // The evaluator is total; negation is exact.
            for doc in [samples::rendered(kind), &serde_json::Value::Null, &serde_json::json!({})] {
                let m = matches(&filter, doc);
                assert_eq!(matches(&Filter::Not(Box::new(filter.clone())), doc), !m, "{input:?}");
            }
        }
    }

    // The same text as `sortBy`: a resolvable path always orders, on both dialects.
    if let Some(attr) = kind.resolve_path(input.trim()) {
        for order in [SortOrder::Ascending, SortOrder::Descending] {
            // One SQL text serves both dialects here.
            let mut qb = Sql::new(OUTER);
            push_order(&mut qb, kind, Some(&attr), order);
            assert_no_spliced_text(&qb.into_sql(), input);
        }
    }

    // And as `attributes` / `excludedAttributes`: unknown names are ignored, never refused.
    for (attributes, excluded) in [(Some(input), None), (None, Some(input))] {
        match Projection::parse(kind, attributes, excluded) {
            Ok(p) => {
                let out = p.apply(kind, samples::rendered(kind).clone());
                assert!(out.get("id").is_some(), "{input:?}: the projection dropped id");
            }
            Err(e) => crate::assert_client_error(&e, "Projection::parse"),
        }
    }
}

/// Fuzz target `filter`: the input, as UTF-8, is a filter for both resource types.
pub fn check_filter(data: &[u8]) {
    if data.len() > crate::MAX_INPUT {
        return;
    }
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    check_kind(ResourceKind::User, input);
    check_kind(ResourceKind::Group, input);
}
