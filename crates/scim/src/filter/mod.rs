//! SCIM filters (RFC 7644 §3.4.2.2): the syntax tree, the parser and an in-memory
//! evaluator. The storage layer translates the same tree into SQL; the two are checked
//! against each other by a differential property test.

mod eval;
mod parser;

pub(crate) use eval::str_key;
pub use eval::{CompareKey, literal_key, matches, value_key, values_at};
pub use parser::{MAX_FILTER_DEPTH, MAX_FILTER_LEN, MAX_FILTER_TERMS, parse_filter};

use crate::schema::ResolvedAttr;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

/// A literal on the right of a comparison (`compValue` of the ABNF).
#[derive(Debug, Clone, PartialEq)]
pub enum CompValue {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
}

/// An attribute path as written in a filter: an optional schema URN, an attribute
/// name and an optional sub-attribute name, in the client's letter case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    pub urn: Option<String>,
    pub attr: String,
    pub sub: Option<String>,
}

/// A filter, resolved against the resource type's schema while parsing, so that every
/// consumer sees canonical attributes with their `caseExact` and type.
#[derive(Debug, Clone)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `attr pr`
    Present(ResolvedAttr),
    /// `attr op value`
    Compare {
        attr: ResolvedAttr,
        op: CompareOp,
        value: CompValue,
    },
    /// `attr[inner]`, where `inner` is resolved relative to `attr` (its sub-attributes).
    /// `emails[type eq "work"].value eq "x"` parses as
    /// `ValuePath { attr: emails, filter: type eq "work" and value eq "x" }`.
    ValuePath {
        attr: ResolvedAttr,
        filter: Box<Filter>,
    },
}
