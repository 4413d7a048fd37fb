//! The filter parser (RFC 7644 §3.4.2.2): a small lexer and a recursive-descent parser
//! that resolves every attribute against the resource type's schema as it goes.
//!
//! Filters come from clients, so the parser is defensive: input length, nesting depth
//! and the number of terms are bounded before any recursion, every error is an
//! `invalidFilter` with an offset, and no more than a short snippet of input is echoed.

use std::fmt::Display;

use super::{CompValue, CompareOp, Filter};
use crate::error::{ScimError, ScimResult, snippet};
use crate::schema::{AttrLocation, AttrType, ResolvedAttr, ResourceKind, split_urn};

/// The longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 4096;
/// The deepest nesting of `(...)`, `not (...)` and `attr[...]` accepted.
pub const MAX_FILTER_DEPTH: usize = 32;
/// The most comparison and presence terms accepted in one filter.
pub const MAX_FILTER_TERMS: usize = 200;

/// Parses a filter for resources of `kind`, resolving its attributes against the schema.
pub fn parse_filter(kind: ResourceKind, input: &str) -> ScimResult<Filter> {
    if input.len() > MAX_FILTER_LEN {
        return Err(ScimError::invalid_filter(format!(
            "the filter is longer than the limit of {MAX_FILTER_LEN} bytes"
        )));
    }
    let toks = lex(input)?;
    let mut p = Parser { input, kind, toks, pos: 0, terms: 0, end: Tok::End };
    if matches!(p.peek().0, Tok::End) {
        return Err(ScimError::invalid_filter("the filter is empty"));
    }
    let f = p.parse_or(None, 0)?;
    let (tok, at) = p.peek();
    if !matches!(tok, Tok::End) {
        return Err(p.error(at, format!("unexpected {} after a complete filter", describe(tok))));
    }
    Ok(f)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok<'a> {
    LParen,
    RParen,
    LBracket,
    RBracket,
    Dot,
    /// An attribute path, an operator or a keyword: told apart by the parser.
    Word(&'a str),
    Str(String),
    Num(f64),
    End,
}

#[derive(Debug)]
struct Token<'a> {
    tok: Tok<'a>,
    /// Byte offset in the input; turned into a character offset only for errors.
    at: usize,
}

fn describe(t: &Tok<'_>) -> String {
    match t {
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::LBracket => "'['".into(),
        Tok::RBracket => "']'".into(),
        Tok::Dot => "'.'".into(),
        Tok::Word(w) => format!("'{}'", snippet(w)),
        Tok::Str(_) => "a string".into(),
        Tok::Num(_) => "a number".into(),
        Tok::End => "the end of the filter".into(),
    }
}

/// The character offset of byte offset `at`, for error details.
fn char_offset(input: &str, at: usize) -> usize {
    input.get(..at).map_or(at, |s| s.chars().count())
}

fn error_at(input: &str, at: usize, msg: impl Display) -> ScimError {
    ScimError::invalid_filter(format!("{msg} (at character offset {})", char_offset(input, at)))
}

fn is_word_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'$'
}

/// Bytes that may continue a word: name characters plus the ':' and '.' of URNs and
/// sub-attribute paths, and the '$' of `$ref`.
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.' | b'$')
}

fn lex(input: &str) -> ScimResult<Vec<Token<'_>>> {
    let bytes = input.as_bytes();
    let mut toks = Vec::new();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let start = i;
        let tok = match b {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'(' => {
                i += 1;
                Tok::LParen
            }
            b')' => {
                i += 1;
                Tok::RParen
            }
            b'[' => {
                i += 1;
                Tok::LBracket
            }
            b']' => {
                i += 1;
                Tok::RBracket
            }
            b'.' => {
                i += 1;
                Tok::Dot
            }
            b'"' => {
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => return Err(error_at(input, start, "unterminated string")),
                        // Skip the escaped byte: it may be a '"'. Escapes are
                        // validated by the JSON decoder below.
                        Some(b'\\') => i += 2,
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
                // Both ends are ASCII quotes, so the slice is on char boundaries.
                let s = input
                    .get(start..i)
                    .and_then(|lit| serde_json::from_str::<String>(lit).ok())
                    .ok_or_else(|| error_at(input, start, "invalid string (not a valid JSON string)"))?;
                // No stored value holds U+0000 (PostgreSQL cannot store it): refused alike
                // on every backend.
                if s.contains('\0') {
                    return Err(error_at(input, start, "strings may not contain NUL (U+0000)"));
                }
                Tok::Str(s)
            }
            b'-' | b'0'..=b'9' => {
                i = scan_number(bytes, i).ok_or_else(|| error_at(input, start, "invalid number"))?;
                let n = input
                    .get(start..i)
                    .and_then(|s| s.parse::<f64>().ok())
                    .filter(|n| n.is_finite())
                    .ok_or_else(|| error_at(input, start, "invalid number"))?;
                Tok::Num(n)
            }
            b if is_word_start(b) => {
                while bytes.get(i).is_some_and(|&b| is_word_byte(b)) {
                    i += 1;
                }
                // Word bytes are ASCII, so the slice is on char boundaries.
                let w = input.get(start..i).unwrap_or_default();
                Tok::Word(w)
            }
            _ => {
                let c = input.get(start..).and_then(|s| s.chars().next()).unwrap_or('?');
                return Err(error_at(input, start, format!("unexpected character {c:?}")));
            }
        };
        toks.push(Token { tok, at: start });
    }
    toks.push(Token { tok: Tok::End, at: input.len() });
    Ok(toks)
}

/// Scans a JSON number starting at `i`; returns the end offset.
fn scan_number(bytes: &[u8], mut i: usize) -> Option<usize> {
    let digit = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_digit);
    if bytes.get(i) == Some(&b'-') {
        i += 1;
    }
    match bytes.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            while digit(i) {
                i += 1;
            }
        }
        _ => return None,
    }
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        if !digit(i) {
            return None;
        }
        while digit(i) {
            i += 1;
        }
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digit(i) {
            return None;
        }
        while digit(i) {
            i += 1;
        }
    }
    // "1abc" or "1.2.3" is not a number followed by something else: reject it here
    // so that the error points at the number.
    if bytes.get(i).is_some_and(|&b| is_word_byte(b)) {
        return None;
    }
    Some(i)
}

/// `ALPHA *(nameChar)` of RFC 7643 §2.1, or `$ref`.
fn valid_name(s: &str) -> bool {
    if s.eq_ignore_ascii_case("$ref") {
        return true;
    }
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn compare_op(w: &str) -> Option<CompareOp> {
    const OPS: [(&str, CompareOp); 9] = [
        ("eq", CompareOp::Eq),
        ("ne", CompareOp::Ne),
        ("co", CompareOp::Co),
        ("sw", CompareOp::Sw),
        ("ew", CompareOp::Ew),
        ("gt", CompareOp::Gt),
        ("ge", CompareOp::Ge),
        ("lt", CompareOp::Lt),
        ("le", CompareOp::Le),
    ];
    OPS.iter().find(|(name, _)| name.eq_ignore_ascii_case(w)).map(|(_, op)| *op)
}

fn op_name(op: CompareOp) -> &'static str {
    match op {
        CompareOp::Eq => "eq",
        CompareOp::Ne => "ne",
        CompareOp::Co => "co",
        CompareOp::Sw => "sw",
        CompareOp::Ew => "ew",
        CompareOp::Gt => "gt",
        CompareOp::Ge => "ge",
        CompareOp::Lt => "lt",
        CompareOp::Le => "le",
    }
}

fn is_keyword(w: &str, kw: &str) -> bool {
    w.eq_ignore_ascii_case(kw)
}

struct Parser<'a> {
    input: &'a str,
    kind: ResourceKind,
    toks: Vec<Token<'a>>,
    pos: usize,
    terms: usize,
    /// Returned by `peek` past the end; `lex` always ends with `End`, so this is a
    /// fallback that spares an `unwrap`.
    end: Tok<'a>,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> (&Tok<'a>, usize) {
        match self.toks.get(self.pos) {
            Some(t) => (&t.tok, t.at),
            None => (&self.end, self.input.len()),
        }
    }

    fn peek_second(&self) -> &Tok<'a> {
        self.toks.get(self.pos + 1).map_or(&self.end, |t| &t.tok)
    }

    fn advance(&mut self) {
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
    }

    fn error(&self, at: usize, msg: impl Display) -> ScimError {
        error_at(self.input, at, msg)
    }

    fn peek_keyword(&self, kw: &str) -> bool {
        matches!(self.peek().0, Tok::Word(w) if is_keyword(w, kw))
    }

    /// Checked before every recursion, so hostile nesting never reaches the stack.
    fn enter(&self, depth: usize, at: usize) -> ScimResult<usize> {
        if depth >= MAX_FILTER_DEPTH {
            return Err(self.error(at, format!("the filter nests deeper than the limit of {MAX_FILTER_DEPTH} levels")));
        }
        Ok(depth + 1)
    }

    fn count_term(&mut self, at: usize) -> ScimResult<()> {
        self.terms += 1;
        if self.terms > MAX_FILTER_TERMS {
            return Err(self.error(at, format!("the filter has more than the limit of {MAX_FILTER_TERMS} terms")));
        }
        Ok(())
    }

    fn expect_close(&mut self, close: &Tok<'_>, what: &str, open_at: usize) -> ScimResult<()> {
        let (tok, at) = self.peek();
        if tok != close {
            let open = char_offset(self.input, open_at);
            return Err(self.error(
                at,
                format!("expected {what} to close the one opened at character offset {open}, found {}", describe(tok)),
            ));
        }
        self.advance();
        Ok(())
    }

    /// `scope` is the complex attribute of the enclosing value path, if any: inside
    /// `emails[...]`, attribute names are sub-attributes of `emails`.
    fn parse_or(&mut self, scope: Option<&ResolvedAttr>, depth: usize) -> ScimResult<Filter> {
        let mut left = self.parse_and(scope, depth)?;
        while self.peek_keyword("or") {
            self.advance();
            let right = self.parse_and(scope, depth)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn parse_and(&mut self, scope: Option<&ResolvedAttr>, depth: usize) -> ScimResult<Filter> {
        let mut left = self.parse_unary(scope, depth)?;
        while self.peek_keyword("and") {
            self.advance();
            let right = self.parse_unary(scope, depth)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn parse_unary(&mut self, scope: Option<&ResolvedAttr>, depth: usize) -> ScimResult<Filter> {
        let (tok, at) = self.peek();
        match tok {
            Tok::LParen => {
                let depth = self.enter(depth, at)?;
                self.advance();
                let f = self.parse_or(scope, depth)?;
                self.expect_close(&Tok::RParen, "')'", at)?;
                Ok(f)
            }
            Tok::Word(w) if is_keyword(w, "not") => {
                if !matches!(self.peek_second(), Tok::LParen) {
                    return Err(self.error(at, "expected '(' after 'not'"));
                }
                let depth = self.enter(depth, at)?;
                self.advance();
                let (_, open_at) = self.peek();
                self.advance();
                let f = self.parse_or(scope, depth)?;
                self.expect_close(&Tok::RParen, "')'", open_at)?;
                Ok(Filter::Not(Box::new(f)))
            }
            Tok::Word(w) if compare_op(w).is_some() || ["pr", "and", "or"].iter().any(|k| is_keyword(w, k)) => {
                Err(self.error(at, format!("expected an attribute path, found the operator '{}'", snippet(w))))
            }
            Tok::Word(_) => self.parse_attr_expr(scope, depth),
            other => {
                Err(self.error(at, format!("expected an attribute path, '(' or 'not', found {}", describe(other))))
            }
        }
    }

    /// `attrPath (pr | op value)`, or `attrPath "[" valFilter "]" ["." subAttr (pr | op value)]`.
    fn parse_attr_expr(&mut self, scope: Option<&ResolvedAttr>, depth: usize) -> ScimResult<Filter> {
        let (tok, at) = self.peek();
        let Tok::Word(w) = tok else {
            return Err(self.error(at, format!("expected an attribute path, found {}", describe(tok))));
        };
        let w: &'a str = w;
        let attr = match scope {
            None => self.resolve_path(w, at)?,
            Some(outer) => self.resolve_sub(outer, w, at)?,
        };
        self.advance();
        let (tok, bracket_at) = self.peek();
        if !matches!(tok, Tok::LBracket) {
            return self.parse_term_rest(attr);
        }
        if scope.is_some() {
            return Err(self.error(bracket_at, "value filters cannot be nested"));
        }
        // A custom attribute followed by `[` is a list of objects.
        let attr = match attr.location {
            AttrLocation::Custom(_) if attr.sub.is_none() => match crate::custom::attribute(attr.attr.name, true) {
                Ok(def) => ResolvedAttr { attr: def, ..attr },
                Err(e) => return Err(self.error(at, e.detail)),
            },
            _ => attr,
        };
        if attr.sub.is_some() || attr.attr.ty != AttrType::Complex {
            return Err(self.error(
                bracket_at,
                format!("'[' must follow a complex attribute, and '{}' is not one", attr.canonical_path()),
            ));
        }
        let depth = self.enter(depth, bracket_at)?;
        self.advance();
        let mut inner = self.parse_or(Some(&attr), depth)?;
        self.expect_close(&Tok::RBracket, "']'", bracket_at)?;
        // `emails[type eq "work"].value eq "x"`: a condition on the same element.
        if matches!(self.peek().0, Tok::Dot) {
            self.advance();
            let (tok, sub_at) = self.peek();
            let Tok::Word(w) = tok else {
                return Err(
                    self.error(sub_at, format!("expected a sub-attribute name after '].', found {}", describe(tok)))
                );
            };
            let sub = self.resolve_sub(&attr, w, sub_at)?;
            self.advance();
            let term = self.parse_term_rest(sub)?;
            inner = Filter::And(Box::new(inner), Box::new(term));
        }
        Ok(Filter::ValuePath { attr, filter: Box::new(inner) })
    }

    /// What follows a resolved attribute path: `pr`, or an operator and a value.
    fn parse_term_rest(&mut self, attr: ResolvedAttr) -> ScimResult<Filter> {
        let (tok, at) = self.peek();
        let op = match tok {
            Tok::Word(w) if is_keyword(w, "pr") => None,
            Tok::Word(w) => match compare_op(w) {
                Some(op) => Some(op),
                None => return Err(self.error(at, format!("unknown operator '{}'", snippet(w)))),
            },
            other => {
                return Err(self.error(
                    at,
                    format!(
                        "expected an operator (eq, ne, co, sw, ew, gt, ge, lt, le or pr) after '{}', found {}",
                        attr.canonical_path(),
                        describe(other)
                    ),
                ));
            }
        };
        self.advance();
        self.count_term(at)?;
        let Some(op) = op else {
            return Ok(Filter::Present(attr));
        };
        let (tok, value_at) = self.peek();
        let value = match tok {
            Tok::Str(s) => CompValue::String(s.clone()),
            Tok::Num(n) => CompValue::Number(*n),
            Tok::Word(w) if is_keyword(w, "true") => CompValue::Bool(true),
            Tok::Word(w) if is_keyword(w, "false") => CompValue::Bool(false),
            Tok::Word(w) if is_keyword(w, "null") => CompValue::Null,
            other => {
                return Err(self.error(
                    value_at,
                    format!(
                        "expected a value (a string, a number, true, false or null) after '{}', found {}",
                        op_name(op),
                        describe(other)
                    ),
                ));
            }
        };
        self.advance();
        self.build_compare(attr, op, value, value_at)
    }

    /// Resolves a top-level `[urn:]attr[.sub]`.
    fn resolve_path(&self, w: &str, at: usize) -> ScimResult<ResolvedAttr> {
        let (urn, rest) = split_urn(w);
        let (name, sub) = match rest.split_once('.') {
            Some((a, s)) => (a, Some(s)),
            None => (rest, None),
        };
        if !valid_name(name) || sub.is_some_and(|s| !valid_name(s)) {
            return Err(self.error(at, format!("invalid attribute path '{}'", snippet(w))));
        }
        self.kind.resolve(urn, name, sub).ok_or_else(|| {
            self.error(at, format!("unknown attribute '{}' for resource type {}", snippet(w), self.kind.name()))
        })
    }

    /// Resolves a sub-attribute name inside `outer[...]` or after `outer[...].`.
    fn resolve_sub(&self, outer: &ResolvedAttr, w: &str, at: usize) -> ScimResult<ResolvedAttr> {
        if !valid_name(w) {
            return Err(self.error(
                at,
                format!("expected a sub-attribute name of '{}', found '{}'", outer.canonical_path(), snippet(w)),
            ));
        }
        let sub = match outer.location {
            AttrLocation::Custom(_) => crate::custom::attribute(w, false).ok(),
            _ => outer.attr.sub_attribute(w),
        };
        match sub {
            Some(sub) => Ok(ResolvedAttr { location: outer.location, attr: outer.attr, sub: Some(sub) }),
            None => Err(self.error(
                at,
                format!(
                    "unknown attribute '{}.{}' for resource type {}",
                    outer.canonical_path(),
                    snippet(w),
                    self.kind.name()
                ),
            )),
        }
    }

    /// Builds `attr op value`, checking that the operator and the literal fit the
    /// attribute's type (RFC 7644 §3.4.2.2).
    fn build_compare(&self, mut attr: ResolvedAttr, op: CompareOp, value: CompValue, at: usize) -> ScimResult<Filter> {
        // A complex attribute compared as a whole means its `value` (RFC 7643 §2.4),
        // as in Entra's `members eq "<id>"`.
        if attr.sub.is_none() && attr.attr.ty == AttrType::Complex {
            match attr.attr.sub_attribute("value") {
                Some(v) => attr.sub = Some(v),
                None => {
                    return Err(self.error(
                        at,
                        format!(
                            "'{}' is a complex attribute without a 'value'; compare one of its sub-attributes",
                            attr.canonical_path()
                        ),
                    ));
                }
            }
        }
        let leaf = attr.leaf();
        let path = attr.canonical_path();
        let name = op_name(op);
        let ordering = matches!(op, CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le);
        let substring = matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew);
        if value == CompValue::Null {
            if !matches!(op, CompareOp::Eq | CompareOp::Ne) {
                return Err(self.error(at, format!("null can only be compared with eq or ne, not '{name}'")));
            }
            return Ok(Filter::Compare { attr, op, value });
        }
        let mismatch = |expected: &str| {
            self.error(at, format!("'{path}' is of type {}; compare it with {expected}", leaf.ty.as_str()))
        };
        let value = match leaf.ty {
            AttrType::Boolean => {
                if ordering || substring {
                    return Err(self.error(at, format!("'{name}' cannot be used on the boolean attribute '{path}'")));
                }
                // Entra sends booleans as strings: `active eq "False"`.
                match value {
                    CompValue::Bool(b) => CompValue::Bool(b),
                    CompValue::String(s) if s.eq_ignore_ascii_case("true") => CompValue::Bool(true),
                    CompValue::String(s) if s.eq_ignore_ascii_case("false") => CompValue::Bool(false),
                    _ => return Err(mismatch("true or false")),
                }
            }
            AttrType::Integer | AttrType::Decimal => {
                if substring {
                    return Err(self.error(at, format!("'{name}' cannot be used on the numeric attribute '{path}'")));
                }
                match value {
                    CompValue::Number(n) => CompValue::Number(n),
                    _ => return Err(mismatch("a number")),
                }
            }
            AttrType::DateTime => {
                if substring {
                    return Err(self.error(at, format!("'{name}' cannot be used on the dateTime attribute '{path}'")));
                }
                match value {
                    CompValue::String(s) if chrono::DateTime::parse_from_rfc3339(&s).is_ok() => CompValue::String(s),
                    CompValue::String(_) => {
                        return Err(self
                            .error(at, format!("'{path}' is a dateTime, and the value is not an RFC 3339 date-time")));
                    }
                    _ => return Err(mismatch("an RFC 3339 date-time string")),
                }
            }
            AttrType::Binary if ordering => {
                return Err(self.error(at, format!("'{name}' cannot be used on the binary attribute '{path}'")));
            }
            // A custom attribute is text, whatever JSON type the client wrote it in.
            AttrType::String if leaf.open => match value {
                CompValue::Number(n) => CompValue::String(crate::custom::number_text(n)),
                CompValue::Bool(b) => CompValue::String(b.to_string()),
                other => other,
            },
            AttrType::String | AttrType::Reference | AttrType::Binary => match value {
                CompValue::String(s) => CompValue::String(s),
                _ => return Err(mismatch("a string")),
            },
            AttrType::Complex => {
                return Err(mismatch("nothing: compare one of its sub-attributes"));
            }
        };
        Ok(Filter::Compare { attr, op, value })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::error::ScimType;
    use proptest::prelude::*;

    fn user(s: &str) -> Filter {
        parse_filter(ResourceKind::User, s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn user_err(s: &str) -> ScimError {
        match parse_filter(ResourceKind::User, s) {
            Ok(f) => panic!("{s} parsed as {f:?}"),
            Err(e) => {
                assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{s}: {e}");
                assert_eq!(e.status, 400);
                assert!(e.detail.len() < 300, "detail too long: {}", e.detail);
                e
            }
        }
    }

    /// A compact rendering of a filter, to assert on its shape.
    fn show(f: &Filter) -> String {
        match f {
            Filter::And(a, b) => format!("({} and {})", show(a), show(b)),
            Filter::Or(a, b) => format!("({} or {})", show(a), show(b)),
            Filter::Not(a) => format!("not({})", show(a)),
            Filter::Present(a) => format!("{} pr", a.canonical_path()),
            Filter::Compare { attr, op, value } => {
                format!("{} {} {:?}", attr.canonical_path(), op_name(*op), value)
            }
            Filter::ValuePath { attr, filter } => {
                format!("{}[{}]", attr.canonical_path(), show(filter))
            }
        }
    }

    #[test]
    fn parses_every_operator_case_insensitively() {
        for op in ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"] {
            let f = user(&format!("userName {} \"x\"", op.to_uppercase()));
            assert_eq!(show(&f), format!("userName {op} String(\"x\")"));
        }
        assert_eq!(show(&user("title PR")), "title pr");
        assert_eq!(show(&user("active Eq TRUE")), "active eq Bool(true)");
        assert_eq!(show(&user("externalId eq NULL")), "externalId eq Null");
        let e = parse_filter(ResourceKind::User, r#"userName eq "a\u0000b""#).unwrap_err();
        assert_eq!(e.scim_type, Some(crate::ScimType::InvalidFilter));
        assert!(e.detail.contains("NUL"), "{}", e.detail);
    }

    #[test]
    fn precedence_is_not_then_and_then_or() {
        let f = user(r#"title pr or userName eq "a" and displayName eq "b""#);
        assert_eq!(show(&f), r#"(title pr or (userName eq String("a") and displayName eq String("b")))"#);
        let f = user(r#"title pr and userName eq "a" or displayName eq "b""#);
        assert_eq!(show(&f), r#"((title pr and userName eq String("a")) or displayName eq String("b"))"#);
        let f = user(r#"(title pr or userName eq "a") and displayName eq "b""#);
        assert_eq!(show(&f), r#"((title pr or userName eq String("a")) and displayName eq String("b"))"#);
        let f = user(r#"NOT   (title pr) and   not(userName pr)"#);
        assert_eq!(show(&f), "(not(title pr) and not(userName pr))");
        let f = user("title pr or nickName pr or locale pr");
        assert_eq!(show(&f), "((title pr or nickName pr) or locale pr)");
    }

    #[test]
    fn parses_value_paths_and_their_sub_attribute_form() {
        let f = user(r#"emails[type eq "work" and value co "@example"]"#);
        assert_eq!(show(&f), r#"emails[(emails.type eq String("work") and emails.value co String("@example"))]"#);
        let f = user(r#"emails[type eq "work"].value eq "x""#);
        assert_eq!(show(&f), r#"emails[(emails.type eq String("work") and emails.value eq String("x"))]"#);
        let f = user(r#"emails[type eq "work"].value pr"#);
        assert_eq!(show(&f), r#"emails[(emails.type eq String("work") and emails.value pr)]"#);
        let f = user(r#"roles[primary eq "True"]"#);
        assert_eq!(show(&f), "roles[roles.primary eq Bool(true)]");
        let f = user(r#"emails[not (type eq "home")]"#);
        assert_eq!(show(&f), r#"emails[not(emails.type eq String("home"))]"#);
    }

    #[test]
    fn resolves_urns_sub_attributes_and_complex_values() {
        let f = user(r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "R&D""#);
        assert_eq!(
            show(&f),
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq String("R&D")"#
        );
        assert_eq!(show(&user("urn:ietf:params:scim:schemas:core:2.0:User:name.givenName pr")), "name.givenName pr");
        assert_eq!(show(&user(r#"emails co "x""#)), r#"emails.value co String("x")"#);
        assert_eq!(show(&user(r#"groups eq "g1""#)), r#"groups.value eq String("g1")"#);
        assert_eq!(show(&user("emails pr")), "emails pr");
        assert_eq!(show(&user(r#"groups.$ref pr"#)), "groups.$ref pr");
        let g = parse_filter(ResourceKind::Group, r#"members eq "u1""#).unwrap();
        assert_eq!(show(&g), r#"members.value eq String("u1")"#);
        assert_eq!(
            show(&user(r#"meta.lastModified gt "2026-01-01T00:00:00Z""#)),
            r#"meta.lastModified gt String("2026-01-01T00:00:00Z")"#
        );
    }

    #[test]
    fn converts_boolean_strings_and_checks_types() {
        assert_eq!(show(&user(r#"active eq "False""#)), "active eq Bool(false)");
        for bad in [
            "active gt true",
            r#"active co "t""#,
            r#"active eq "yes""#,
            "active eq 1",
            r#"meta.created co "2026""#,
            r#"meta.created gt "yesterday""#,
            "meta.created gt 5",
            r#"x509Certificates.value lt "AA==""#,
            "userName eq 5",
            "userName eq true",
            "userName gt null",
            r#"name eq "x""#,
            r#"meta eq "x""#,
        ] {
            user_err(bad);
        }
        assert_eq!(show(&user("userName ne null")), "userName ne Null");
    }

    #[test]
    fn decodes_json_strings_and_numbers() {
        let f = user(r#"displayName eq "a \"quoted\" \\ \u00e9 \n""#);
        assert_eq!(show(&f), r#"displayName eq String("a \"quoted\" \\ é \n")"#);
        let f = user(r#"displayName eq "日本""#);
        assert_eq!(show(&f), r#"displayName eq String("日本")"#);
        user_err(r#"displayName eq "\x""#);
        user_err("displayName eq 01");
        user_err("displayName eq 1e999");
    }

    #[test]
    fn unknown_attributes_are_invalid_filters() {
        let e = user_err(r#"nope eq "x""#);
        assert!(e.detail.contains("unknown attribute 'nope'"), "{}", e.detail);
        user_err(r#"emails[nope eq "x"]"#);
        user_err(r#"emails[type eq "x"].nope eq "y""#);
        user_err(r#"name.nope pr"#);
        user_err(r#"urn:example:Foo:bar pr"#);
        assert!(parse_filter(ResourceKind::Group, r#"userName eq "x""#).is_err());
    }

    #[test]
    fn syntax_errors_are_invalid_filters_with_offsets() {
        let e = user_err(r#"userName eq "abc"#);
        assert!(e.detail.contains("unterminated string") && e.detail.contains("offset 12"), "{}", e.detail);
        let e = user_err("userName eq");
        assert!(e.detail.contains("expected a value"), "{}", e.detail);
        let e = user_err(r#"userName eq "a" garbage"#);
        assert!(e.detail.contains("offset 16"), "{}", e.detail);
        let e = user_err(r#"eq "x""#);
        assert!(e.detail.contains("expected an attribute path"), "{}", e.detail);
        for bad in [
            "",
            "   ",
            "userName",
            "userName xx \"a\"",
            "(userName pr",
            "userName pr)",
            "not userName pr",
            "userName pr and",
            "userName pr or or title pr",
            "emails[type eq \"a\"",
            "emails[type eq \"a\"].",
            "emails[emails[type pr]]",
            "emails.value[type pr]",
            "userName[type pr]",
            "userName eq \"a\" ; drop",
            "userName eq 'a'",
            "userName pr []",
            "1 eq 1",
        ] {
            user_err(bad);
        }
    }

    #[test]
    fn long_input_is_not_echoed() {
        let long = "a".repeat(1000);
        let e = user_err(&format!("{long} eq \"x\""));
        assert!(e.detail.len() < 200, "{}", e.detail);
    }

    #[test]
    fn hostile_nesting_and_size_are_rejected_without_overflowing() {
        let deep = |open: &str, close: &str, n: usize| format!("{}userName pr{}", open.repeat(n), close.repeat(n));
        for n in [5000, 2000, 33] {
            user_err(&deep("(", ")", n));
        }
        for n in [5000, 800, 33] {
            user_err(&deep("not(", ")", n));
        }
        user_err(&deep("emails[", "]", 5000));
        user_err(&format!("{}type pr{}", "emails[".repeat(500), "]".repeat(500)));
        user(&deep("(", ")", 32));
        user(&deep("not (", ")", 31));

        let e = user_err(&vec!["title pr"; 300].join(" or "));
        assert!(e.detail.contains("200 terms"), "{}", e.detail);
        user(&vec!["title pr"; 200].join(" or "));
        let e = user_err(&format!("title eq \"{}\"", "x".repeat(MAX_FILTER_LEN)));
        assert!(e.detail.contains("4096"), "{}", e.detail);
    }

    proptest! {
        #[test]
        fn random_input_never_panics(s in ".{0,200}") {
            let _ = parse_filter(ResourceKind::User, &s);
        }

        #[test]
        fn filter_like_input_never_panics(
            s in r#"(userName|emails|name\.givenName|emails\[|\]|\.|value|type| |eq|pr|and|or|not|\(|\)|"a"|"\\|1|-|true|null|urn:ietf:params:scim:schemas:core:2\.0:User:){0,40}"#
        ) {
            let _ = parse_filter(ResourceKind::User, &s);
            let _ = parse_filter(ResourceKind::Group, &s);
        }
    }
}
