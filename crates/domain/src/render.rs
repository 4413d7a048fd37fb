//! Fleet's `$FLEET_VAR_HOST_*` variables and `${CUSTODIAN_IDP_ATTRIBUTE:path}`: a
//! template (a configuration profile, a script) rendered with a host's values and its end
//! user's IdP attributes, escaped for the format.
//! A variable the host has no value for is an error, never an empty substitution.

use custodian_scim::error::snippet;
use custodian_scim::path::AttrPath;
use custodian_scim::schema::ResourceKind;
use serde_json::Value;

use crate::hosts::{EndUser, Host, primary_email};

/// What a template is, which decides how values are escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Values as they are.
    Text,
    /// XML character entities (`&amp; &lt; &gt; &quot; &apos;`), for profiles.
    Xml,
    /// Each value one single-quoted shell word (`'` written `'\''`).
    Shell,
}

impl Format {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "text" => Some(Format::Text),
            "xml" => Some(Format::Xml),
            "shell" => Some(Format::Shell),
            _ => None,
        }
    }
}

pub const PREFIX: &str = "FLEET_VAR_";
/// `${CUSTODIAN_IDP_ATTRIBUTE:<SCIM attribute path>}`: any attribute of the end user.
pub const ATTRIBUTE_PREFIX: &str = "CUSTODIAN_IDP_ATTRIBUTE:";

const ENTERPRISE: &str = custodian_scim::schema::ENTERPRISE_USER_SCHEMA;

/// The variables Custodian knows, with what their absence is called.
pub const VARIABLES: [(&str, &str); 20] = [
    ("FLEET_VAR_HOST_END_USER_IDP_USERNAME", "IdP username"),
    ("FLEET_VAR_HOST_END_USER_IDP_USERNAME_LOCAL_PART", "IdP username"),
    ("FLEET_VAR_HOST_END_USER_IDP_GROUPS", "IdP groups"),
    ("FLEET_VAR_HOST_END_USER_IDP_DEPARTMENT", "IdP department"),
    ("FLEET_VAR_HOST_END_USER_IDP_FULL_NAME", "IdP full name"),
    ("FLEET_VAR_HOST_END_USER_IDP_CONNECTION", "IdP connection"),
    ("FLEET_VAR_HOST_END_USER_IDP_EMAIL", "IdP primary email"),
    ("FLEET_VAR_HOST_END_USER_IDP_GIVEN_NAME", "IdP given name"),
    ("FLEET_VAR_HOST_END_USER_IDP_FAMILY_NAME", "IdP family name"),
    ("FLEET_VAR_HOST_END_USER_IDP_TITLE", "IdP title"),
    ("FLEET_VAR_HOST_END_USER_IDP_EMPLOYEE_NUMBER", "IdP employee number"),
    ("FLEET_VAR_HOST_END_USER_IDP_COST_CENTER", "IdP cost center"),
    ("FLEET_VAR_HOST_END_USER_IDP_DIVISION", "IdP division"),
    ("FLEET_VAR_HOST_END_USER_IDP_ORGANIZATION", "IdP organization"),
    ("FLEET_VAR_HOST_END_USER_IDP_MANAGER", "IdP manager"),
    ("FLEET_VAR_HOST_END_USER_IDP_MANAGER_EMAIL", "email of a known IdP manager"),
    ("FLEET_VAR_HOST_END_USER_EMAIL_IDP", "IdP email"),
    ("FLEET_VAR_HOST_HARDWARE_SERIAL", "hardware serial"),
    ("FLEET_VAR_HOST_UUID", "UUID"),
    ("FLEET_VAR_HOST_PLATFORM", "platform"),
];

/// The variables read from the host itself rather than its end user.
const HOST_VARIABLES: [&str; 3] = ["FLEET_VAR_HOST_HARDWARE_SERIAL", "FLEET_VAR_HOST_UUID", "FLEET_VAR_HOST_PLATFORM"];

/// Why one variable could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarError {
    pub name: String,
    pub reason: String,
}

/// A JSON scalar as template text; `None` for blanks, nulls and complex values.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A variable's value for a host; `None` when the host has none.
pub fn value_of(name: &str, host: &Host) -> Option<String> {
    let non_empty = |s: &str| (!s.trim().is_empty()).then(|| s.to_string());
    // The host's own facts need no end user.
    match name {
        "FLEET_VAR_HOST_HARDWARE_SERIAL" => return non_empty(&host.hardware_serial),
        "FLEET_VAR_HOST_UUID" => return non_empty(&host.uuid),
        "FLEET_VAR_HOST_PLATFORM" => return non_empty(&host.platform),
        _ => {}
    }
    let user = host.end_user.as_ref()?;
    let doc = &user.attributes;
    let at = |pointer: &str| doc.pointer(pointer).and_then(scalar_text);
    let enterprise = |attr: &str| doc.get(ENTERPRISE).and_then(|e| e.get(attr)).and_then(scalar_text);
    match name {
        "FLEET_VAR_HOST_END_USER_IDP_USERNAME" => non_empty(&user.idp_username),
        "FLEET_VAR_HOST_END_USER_IDP_USERNAME_LOCAL_PART" => {
            let local = user.idp_username.split('@').next().unwrap_or("");
            non_empty(local)
        }
        "FLEET_VAR_HOST_END_USER_IDP_GROUPS" => (!user.idp_groups.is_empty()).then(|| user.idp_groups.join(",")),
        "FLEET_VAR_HOST_END_USER_IDP_DEPARTMENT" => user.idp_department.as_deref().and_then(non_empty),
        "FLEET_VAR_HOST_END_USER_IDP_FULL_NAME" => non_empty(&user.idp_full_name),
        "FLEET_VAR_HOST_END_USER_IDP_CONNECTION" => non_empty(&user.idp_connection),
        "FLEET_VAR_HOST_END_USER_IDP_EMAIL" => primary_email(doc).map(str::to_string),
        "FLEET_VAR_HOST_END_USER_IDP_GIVEN_NAME" => at("/name/givenName"),
        "FLEET_VAR_HOST_END_USER_IDP_FAMILY_NAME" => at("/name/familyName"),
        "FLEET_VAR_HOST_END_USER_IDP_TITLE" => at("/title"),
        "FLEET_VAR_HOST_END_USER_IDP_EMPLOYEE_NUMBER" => enterprise("employeeNumber"),
        "FLEET_VAR_HOST_END_USER_IDP_COST_CENTER" => enterprise("costCenter"),
        "FLEET_VAR_HOST_END_USER_IDP_DIVISION" => enterprise("division"),
        "FLEET_VAR_HOST_END_USER_IDP_ORGANIZATION" => enterprise("organization"),
        "FLEET_VAR_HOST_END_USER_IDP_MANAGER" => manager_name(user),
        "FLEET_VAR_HOST_END_USER_IDP_MANAGER_EMAIL" => user.manager.as_ref().and_then(|m| m.email.clone()),
        // Fleet's older name for the email the end user signs in to the IdP with.
        "FLEET_VAR_HOST_END_USER_EMAIL_IDP" => {
            if user.idp_username.contains('@') {
                non_empty(&user.idp_username)
            } else {
                primary_email(doc).map(str::to_string)
            }
        }
        _ => None,
    }
}

/// The manager's userName when it is a known user, else the name the IdP sent.
pub fn manager_name(user: &EndUser) -> Option<String> {
    match &user.manager {
        Some(m) => (!m.user_name.trim().is_empty()).then(|| m.user_name.clone()),
        None => user.attributes.get(ENTERPRISE).and_then(|e| e.pointer("/manager/displayName")).and_then(scalar_text),
    }
}

/// The text of every scalar value at a path, sorted and without repeats (a multi-valued
/// attribute has no order of its own), and whether a complex value was there too.
pub fn attribute_texts(path: &AttrPath, doc: &Value) -> (Vec<String>, bool) {
    let found = path.values(doc);
    let complex = found.iter().any(|v| v.is_object());
    let mut texts: Vec<String> = found.into_iter().filter_map(scalar_text).collect();
    texts.sort();
    texts.dedup();
    (texts, complex)
}

/// `${CUSTODIAN_IDP_ATTRIBUTE:path}`'s value: every value at the path, joined with
/// commas in sorted order.
fn attribute_value(path: &str, host: &Host) -> Result<String, String> {
    let parsed = match AttrPath::parse(ResourceKind::User, path) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => return Err(format!("'{}' is not a User attribute", snippet(path))),
        Err(e) => return Err(format!("'{}' is not a SCIM attribute path: {}", snippet(path), e.detail)),
    };
    let Some(user) = &host.end_user else {
        return Err(format!("There is no IdP end user for this host (id {}, hostname {})", host.id, host.hostname));
    };
    let (texts, complex) = attribute_texts(&parsed, &user.attributes);
    if complex {
        return Err(format!(
            "'{}' is a complex attribute: name one of its sub-attributes, e.g. '{}.value'",
            snippet(path),
            snippet(path)
        ));
    }
    if texts.is_empty() {
        return Err(format!(
            "There is no IdP attribute '{}' for this host (id {}, hostname {})",
            snippet(path),
            host.id,
            host.hostname
        ));
    }
    Ok(texts.join(","))
}

/// Escapes a value for a format.
pub fn escape(value: &str, format: Format) -> String {
    match format {
        Format::Text => value.to_string(),
        Format::Xml => {
            let mut out = String::with_capacity(value.len() + 8);
            for c in value.chars() {
                match c {
                    '&' => out.push_str("&amp;"),
                    '<' => out.push_str("&lt;"),
                    '>' => out.push_str("&gt;"),
                    '"' => out.push_str("&quot;"),
                    '\'' => out.push_str("&apos;"),
                    c => out.push(c),
                }
            }
            out
        }
        Format::Shell => format!("'{}'", value.replace('\'', "'\\''")),
    }
}

/// One `$NAME` or `${NAME}` reference found in a template.
struct Reference<'a> {
    start: usize,
    end: usize,
    name: &'a str,
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The `$FLEET_VAR_*` references of a template, in order. Other `$` uses (`$HOME`,
/// `${PATH}`) are left alone.
fn references(template: &str) -> Vec<Reference<'_>> {
    let bytes = template.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        if bytes.get(i + 1) == Some(&b'{')
            && template.get(i + 2..).is_some_and(|rest| rest.starts_with(ATTRIBUTE_PREFIX))
            && let Some(close) = closing_brace(template, i + 2)
        {
            out.push(Reference { start: i, end: close + 1, name: &template[i + 2..close] });
            i = close + 1;
            continue;
        }
        if bytes.get(i + 1) == Some(&b'{') {
            let body_start = i + 2;
            let mut j = body_start;
            while j < bytes.len() && is_ident(bytes[j]) {
                j += 1;
            }
            if bytes.get(j) == Some(&b'}') && template[body_start..j].starts_with(PREFIX) {
                out.push(Reference { start: i, end: j + 1, name: &template[body_start..j] });
                i = j + 1;
                continue;
            }
        } else {
            let mut j = i + 1;
            while j < bytes.len() && is_ident(bytes[j]) {
                j += 1;
            }
            if template[i + 1..j].starts_with(PREFIX) {
                out.push(Reference { start: i, end: j, name: &template[i + 1..j] });
                i = j;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// The `}` that ends a `${...}` whose body starts at `from`, outside quoted strings (a
/// value filter's `"..."` may hold one).
fn closing_brace(template: &str, from: usize) -> Option<usize> {
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in template.get(from..)?.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '}' if !in_string => return Some(from + i),
            '\n' => return None,
            _ => {}
        }
    }
    None
}

/// Renders a template for a host, or lists every variable that could not be rendered
/// (unknown names, and values the host does not have), each once.
pub fn render(template: &str, format: Format, host: &Host) -> Result<String, Vec<VarError>> {
    let refs = references(template);
    let mut errors: Vec<VarError> = Vec::new();
    let mut values: Vec<(&str, String)> = Vec::new();
    for r in &refs {
        if values.iter().any(|(n, _)| *n == r.name) || errors.iter().any(|e| e.name == r.name) {
            continue;
        }
        if let Some(path) = r.name.strip_prefix(ATTRIBUTE_PREFIX) {
            match attribute_value(path, host) {
                Ok(v) => values.push((r.name, escape(&v, format))),
                Err(reason) => errors.push(VarError { name: r.name.to_string(), reason }),
            }
            continue;
        }
        match VARIABLES.iter().find(|(n, _)| *n == r.name) {
            None => errors.push(VarError {
                name: r.name.to_string(),
                reason: format!(
                    "Unknown variable ${}: Custodian knows {} and ${{{ATTRIBUTE_PREFIX}<SCIM attribute path>}}",
                    r.name,
                    VARIABLES.iter().map(|(n, _)| format!("${n}")).collect::<Vec<_>>().join(", ")
                ),
            }),
            Some((name, what)) => match value_of(name, host) {
                Some(v) => values.push((name, escape(&v, format))),
                None => errors.push(VarError {
                    name: name.to_string(),
                    reason: format!(
                        "There is no {what} for this host (id {}, hostname {}){}",
                        host.id,
                        host.hostname,
                        if host.end_user.is_none() && !HOST_VARIABLES.contains(name) {
                            ": it has no IdP end user"
                        } else {
                            ""
                        }
                    ),
                }),
            },
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut out = String::with_capacity(template.len() + 64);
    let mut last = 0;
    for r in &refs {
        out.push_str(&template[last..r.start]);
        if let Some((_, v)) = values.iter().find(|(n, _)| *n == r.name) {
            out.push_str(v);
        }
        last = r.end;
    }
    out.push_str(&template[last..]);
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::hosts::{EndUser, LinkState};
    use chrono::Utc;

    fn host(user: Option<EndUser>) -> Host {
        Host {
            id: 7,
            uuid: "u".into(),
            hardware_serial: "S".into(),
            hostname: "mac.local".into(),
            computer_name: String::new(),
            platform: "darwin".into(),
            os_version: String::new(),
            hardware_model: String::new(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
            seen_time: None,
            mappings: Vec::new(),
            link_state: LinkState::Linked,
            end_user: user,
            candidates: Vec::new(),
        }
    }

    fn user(name: &str, full: &str, dept: Option<&str>, groups: &[&str]) -> EndUser {
        EndUser {
            idp_id: "id".into(),
            idp_username: name.into(),
            idp_full_name: full.into(),
            idp_groups: groups.iter().map(|g| g.to_string()).collect(),
            idp_department: dept.map(str::to_string),
            idp_info_updated_at: Utc::now(),
            idp_active: true,
            idp_connection: "default".into(),
            attributes: serde_json::json!({"userName": name}),
            manager: None,
        }
    }

    #[test]
    fn replaces_both_forms_and_escapes_per_format() {
        let h = host(Some(user("o'brien@x.com", "Ann <&> \"O'Brien\"\nJr", Some("R&D"), &["Eng", "Ops"])));
        let t = "u=$FLEET_VAR_HOST_END_USER_IDP_USERNAME l=${FLEET_VAR_HOST_END_USER_IDP_USERNAME_LOCAL_PART} \
                 g=$FLEET_VAR_HOST_END_USER_IDP_GROUPS d=${FLEET_VAR_HOST_END_USER_IDP_DEPARTMENT} $HOME ${PATH} $";
        assert_eq!(render(t, Format::Text, &h).unwrap(), "u=o'brien@x.com l=o'brien g=Eng,Ops d=R&D $HOME ${PATH} $");
        let t = "<s>$FLEET_VAR_HOST_END_USER_IDP_FULL_NAME</s>";
        assert_eq!(render(t, Format::Xml, &h).unwrap(), "<s>Ann &lt;&amp;&gt; &quot;O&apos;Brien&quot;\nJr</s>");
        let t = "echo $FLEET_VAR_HOST_END_USER_IDP_FULL_NAME";
        assert_eq!(render(t, Format::Shell, &h).unwrap(), "echo 'Ann <&> \"O'\\''Brien\"\nJr'");
    }

    #[test]
    fn missing_and_unknown_variables_are_errors_naming_them() {
        let h = host(None);
        let errors = render("$FLEET_VAR_HOST_END_USER_IDP_USERNAME $FLEET_VAR_NOPE", Format::Text, &h).unwrap_err();
        assert_eq!(errors[0].name, "FLEET_VAR_HOST_END_USER_IDP_USERNAME");
        assert!(errors[0].reason.starts_with("There is no IdP username for this host (id 7, hostname mac.local)"));
        assert_eq!(errors[1].name, "FLEET_VAR_NOPE");
        let h = host(Some(user("a@x.com", "A", None, &[])));
        let errors = render("${FLEET_VAR_HOST_END_USER_IDP_DEPARTMENT}", Format::Xml, &h).unwrap_err();
        assert_eq!(errors[0].reason, "There is no IdP department for this host (id 7, hostname mac.local)");
        assert_eq!(render("no variables", Format::Shell, &h).unwrap(), "no variables");
    }

    #[test]
    fn reads_attributes_the_manager_and_the_host() {
        let mut u = user("ann@x.com", "Ann", None, &[]);
        u.attributes = serde_json::json!({
            "userName": "ann@x.com",
            "name": {"givenName": "Ann", "familyName": "O'Neil"},
            "title": "Engineer",
            "emails": [{"value": "ann.home@x.com"}, {"value": "ann@corp.com", "primary": true}],
            "addresses": [{"type": "work", "locality": "Berlin"}, {"type": "home", "locality": "Lyon"}],
            ENTERPRISE: {"employeeNumber": 7, "costCenter": "CC-1", "manager": {"value": "m1", "displayName": "Bea"}},
            "urn:ietf:params:scim:schemas:extension:acme:2.0:User": {"badge": "42", "tags": ["b", "a"]}
        });
        let mut h = host(Some(u.clone()));
        let t = "$FLEET_VAR_HOST_END_USER_IDP_EMAIL $FLEET_VAR_HOST_END_USER_IDP_GIVEN_NAME \
                 $FLEET_VAR_HOST_END_USER_IDP_EMPLOYEE_NUMBER $FLEET_VAR_HOST_END_USER_IDP_MANAGER \
                 ${CUSTODIAN_IDP_ATTRIBUTE:addresses[type eq \"work\"].locality} \
                 ${CUSTODIAN_IDP_ATTRIBUTE:urn:ietf:params:scim:schemas:extension:acme:2.0:User:tags} \
                 ${CUSTODIAN_IDP_ATTRIBUTE:emails.value} $FLEET_VAR_HOST_UUID";
        assert_eq!(
            render(t, Format::Shell, &h).unwrap(),
            "'ann@corp.com' 'Ann' '7' 'Bea' 'Berlin' 'a,b' 'ann.home@x.com,ann@corp.com' 'u'"
        );
        u.manager = Some(crate::hosts::Manager { user_name: "bea@x.com".into(), email: Some("bea@corp.com".into()) });
        h.end_user = Some(u);
        let t = "$FLEET_VAR_HOST_END_USER_IDP_MANAGER $FLEET_VAR_HOST_END_USER_IDP_MANAGER_EMAIL";
        assert_eq!(render(t, Format::Text, &h).unwrap(), "bea@x.com bea@corp.com");

        let errors = render(
            "${CUSTODIAN_IDP_ATTRIBUTE:addresses} ${CUSTODIAN_IDP_ATTRIBUTE:nope} ${CUSTODIAN_IDP_ATTRIBUTE:x[} \
             $FLEET_VAR_HOST_END_USER_IDP_DIVISION",
            Format::Text,
            &h,
        )
        .unwrap_err();
        let names: Vec<&str> = errors.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "CUSTODIAN_IDP_ATTRIBUTE:addresses",
                "CUSTODIAN_IDP_ATTRIBUTE:nope",
                "CUSTODIAN_IDP_ATTRIBUTE:x[",
                "FLEET_VAR_HOST_END_USER_IDP_DIVISION"
            ]
        );
        assert!(errors[0].reason.contains("complex attribute"), "{}", errors[0].reason);
        // Without an end user the host's own variables still render.
        let h = host(None);
        assert_eq!(
            render("$FLEET_VAR_HOST_PLATFORM/${FLEET_VAR_HOST_HARDWARE_SERIAL}", Format::Text, &h).unwrap(),
            "darwin/S"
        );
    }
}
