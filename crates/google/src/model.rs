//! The Directory API's resources, as far as a run reads them. Google leaves false
//! booleans and empty lists out of its answers: every field has a default.

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct UserName {
    pub given_name: String,
    pub family_name: String,
    pub full_name: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Email {
    pub address: String,
    pub primary: bool,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Organization {
    pub primary: bool,
    pub department: String,
    pub title: String,
    pub cost_center: String,
    pub description: String,
    pub name: String,
}

/// A user (`projection=full`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct User {
    pub id: String,
    pub primary_email: String,
    pub name: UserName,
    pub suspended: bool,
    pub archived: bool,
    pub emails: Vec<Email>,
    pub aliases: Vec<String>,
    pub non_editable_aliases: Vec<String>,
    pub organizations: Vec<Organization>,
    pub org_unit_path: String,
    pub custom_schemas: Option<Value>,
    pub external_ids: Option<Value>,
}

impl User {
    /// Suspended or archived users are inactive.
    pub fn active(&self) -> bool {
        !(self.suspended || self.archived)
    }

    /// Every address of the user, the primary first, aliases included, each once.
    pub fn addresses(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let all = std::iter::once(self.primary_email.as_str())
            .chain(self.emails.iter().map(|e| e.address.as_str()))
            .chain(self.aliases.iter().map(String::as_str))
            .chain(self.non_editable_aliases.iter().map(String::as_str));
        for a in all {
            if !a.is_empty() && !out.iter().any(|o| o.eq_ignore_ascii_case(a)) {
                out.push(a.to_string());
            }
        }
        out
    }

    /// The primary organization, else the first.
    pub fn organization(&self) -> Option<&Organization> {
        self.organizations.iter().find(|o| o.primary).or_else(|| self.organizations.first())
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Group {
    pub id: String,
    pub email: String,
    pub name: String,
    pub description: String,
}

/// What a group member is (`type`).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum MemberKind {
    #[default]
    User,
    Group,
    /// Everyone of the customer.
    Customer,
    /// Anything Google adds later: skipped.
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Member {
    pub id: String,
    pub email: String,
    #[serde(rename = "type")]
    pub kind: MemberKind,
    pub role: String,
    pub status: String,
}

/// One page of a list: `users`, `groups` or `members`, and the token of the next.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", bound(deserialize = "T: Deserialize<'de>"))]
pub struct Page<T> {
    #[serde(default, alias = "users", alias = "groups", alias = "members")]
    pub items: Vec<T>,
    #[serde(default)]
    pub next_page_token: Option<String>,
}
