//! Query strings as both surfaces (SCIM and the JSON API, and the web pages) read them.
//! A module of its own so that neither surface imports the other.

use std::collections::HashMap;

/// Query parameters with case-insensitive names (RFC 7644 treats them like attributes).
pub struct QueryParams(HashMap<String, String>);

impl QueryParams {
    pub fn parse(query: Option<&str>) -> Self {
        let map = form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned()))
            .collect();
        QueryParams(map)
    }
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(&name.to_ascii_lowercase()).map(String::as_str)
    }
    /// Takes a parameter out, for a surface that reads it on its own.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        self.0.remove(&name.to_ascii_lowercase())
    }
}
