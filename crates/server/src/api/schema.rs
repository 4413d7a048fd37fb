//! Building blocks of the request schemas in the OpenAPI document. The handlers validate
//! bodies by hand (to name every bad field at once), so their schemas are built from the
//! same constants and word lists the validators use rather than derived from serde types.

use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ArrayItems, ObjectBuilder, OneOfBuilder, SchemaType, Type,
};
use utoipa::openapi::{RefOr, Schema};

/// The characters `str::trim` and `char::is_whitespace` treat as white space, as the
/// body of a regular expression class (spelled out: `\s` differs between engines).
const WHITE_SPACE: &str =
    "\t\n\u{b}\u{c}\r \u{85}\u{a0}\u{1680}\u{2000}-\u{200a}\u{2028}\u{2029}\u{202f}\u{205f}\u{3000}";

/// What a text field must hold besides its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextRule {
    /// Anything without NUL.
    NoNul,
    /// Something other than white space, without NUL.
    NotBlank,
    /// One word (no inner white space, none of it NUL), white space around it trimmed.
    OneWord,
}

impl TextRule {
    /// The rule as a JSON Schema (ECMA 262) pattern.
    pub fn pattern(self) -> String {
        match self {
            TextRule::NoNul => "^[^\0]*$".to_string(),
            TextRule::NotBlank => format!("^[^\0]*[^\0{WHITE_SPACE}][^\0]*$"),
            TextRule::OneWord => format!("^[{WHITE_SPACE}]*[^\0{WHITE_SPACE}]+[{WHITE_SPACE}]*$"),
        }
    }

    /// Whether a string keeps the rule (what the validators check).
    pub fn allows(self, s: &str) -> bool {
        !s.contains('\0')
            && match self {
                TextRule::NoNul => true,
                TextRule::NotBlank => !s.trim().is_empty(),
                TextRule::OneWord => !s.trim().is_empty() && !s.trim().contains(char::is_whitespace),
            }
    }
}

/// A string of at most `max_bytes` bytes of UTF-8 keeping `rule`. JSON Schema's
/// `maxLength` counts characters, so it says `max_bytes` characters (more is always too
/// long) and `x-max-bytes` states the limit itself, which non-ASCII text reaches first.
pub fn text(max_bytes: usize, rule: TextRule) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(max_bytes))
        .pattern(Some(rule.pattern()))
        .extensions(Some(ExtensionsBuilder::new().add(MAX_BYTES_KEY, max_bytes).build()))
}

/// The extension naming a string's limit in bytes of UTF-8.
pub const MAX_BYTES_KEY: &str = "x-max-bytes";

/// One of `words`.
pub fn word(words: &[&str]) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some(words.iter().copied()))
}

/// `schema` or null (JSON null means absent on every body field that allows it).
pub fn or_null(schema: ObjectBuilder) -> ObjectBuilder {
    let built = schema.build();
    let types = match &built.schema_type {
        SchemaType::Type(t) => vec![t.clone(), Type::Null],
        SchemaType::Array(ts) => ts.iter().cloned().chain([Type::Null]).collect(),
        SchemaType::AnyValue => return ObjectBuilder::from(built),
    };
    let mut built = built;
    built.schema_type = SchemaType::from_iter(types);
    if let Some(values) = built.enum_values.as_mut() {
        values.push(serde_json::Value::Null);
    }
    ObjectBuilder::from(built)
}

/// An object with these properties (`required` ones marked), closed when `closed`.
pub fn object(properties: Vec<(&str, RefOr<Schema>, bool)>, closed: bool) -> ObjectBuilder {
    let mut o = ObjectBuilder::new().schema_type(Type::Object);
    for (name, schema, required) in properties {
        o = o.property(name, schema);
        if required {
            o = o.required(name);
        }
    }
    if closed {
        o = o.additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)));
    }
    o
}

/// A list of at least `min` and at most `max` items.
pub fn array_of(items: impl Into<ArrayItems>, min: Option<usize>, max: Option<usize>) -> ArrayBuilder {
    ArrayBuilder::new().items(items).min_items(min).max_items(max)
}

/// Any one of `schemas`.
pub fn one_of(schemas: Vec<RefOr<Schema>>) -> Schema {
    let mut o = OneOfBuilder::new();
    for s in schemas {
        o = o.item(s);
    }
    o.build().into()
}

/// Any JSON value.
pub fn any() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::AnyValue)
}

/// Declares a type whose schema is built by a function, for `request_body(content = ...)`.
#[macro_export]
macro_rules! built_schema {
    ($(#[$doc:meta])* $name:ident => $build:expr) => {
        $(#[$doc])*
        pub struct $name;
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
                let build: fn() -> utoipa::openapi::Schema = $build;
                build().into()
            }
        }
        impl utoipa::ToSchema for $name {}
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_white_space_class_is_what_trim_removes() {
        let mut class = String::new();
        for c in (0..=0x10FFFF).filter_map(char::from_u32).filter(|c| c.is_whitespace()) {
            class.push(c);
        }
        let listed: String = WHITE_SPACE.replace("\u{2000}-\u{200a}", &('\u{2000}'..='\u{200a}').collect::<String>());
        assert_eq!(listed, class);
    }

    #[test]
    fn rules_follow_the_validators() {
        assert!(TextRule::NoNul.allows("  "));
        assert!(!TextRule::NoNul.allows("a\0"));
        assert!(!TextRule::NotBlank.allows(" \u{3000}\t"));
        assert!(TextRule::NotBlank.allows(" a b "));
        assert!(TextRule::OneWord.allows(" a@b.c\n"));
        assert!(!TextRule::OneWord.allows("a b@c.d"));
    }
}
