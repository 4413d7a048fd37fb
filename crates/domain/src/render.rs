//! Fleet's `$FLEET_VAR_HOST_END_USER_IDP_*` variables: a template (a configuration
//! profile, a script) rendered with a host's end-user values, escaped for the format.
//! A variable the host has no value for is an error, never an empty substitution.

use crate::hosts::Host;

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

/// The variables Custodian knows, with what their absence is called.
pub const VARIABLES: [(&str, &str); 6] = [
    ("FLEET_VAR_HOST_END_USER_IDP_USERNAME", "IdP username"),
    ("FLEET_VAR_HOST_END_USER_IDP_USERNAME_LOCAL_PART", "IdP username"),
    ("FLEET_VAR_HOST_END_USER_IDP_GROUPS", "IdP groups"),
    ("FLEET_VAR_HOST_END_USER_IDP_DEPARTMENT", "IdP department"),
    ("FLEET_VAR_HOST_END_USER_IDP_FULL_NAME", "IdP full name"),
    ("FLEET_VAR_HOST_END_USER_IDP_CONNECTION", "IdP connection"),
];

/// Why one variable could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarError {
    pub name: String,
    pub reason: String,
}

/// A variable's value for a host; `None` when the host has none.
pub fn value_of(name: &str, host: &Host) -> Option<String> {
    let user = host.end_user.as_ref()?;
    let non_empty = |s: &str| (!s.trim().is_empty()).then(|| s.to_string());
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
        _ => None,
    }
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
        match VARIABLES.iter().find(|(n, _)| *n == r.name) {
            None => errors.push(VarError {
                name: r.name.to_string(),
                reason: format!(
                    "Unknown variable ${}: Custodian knows {}",
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
                        if host.end_user.is_none() { ": it has no IdP end user" } else { "" }
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
}
