//! Database URLs as an operator sees them: the file a SQLite URL names, and any
//! password kept out of logs and messages.

/// The file a `sqlite:` URL names, made absolute against the working directory.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    use std::str::FromStr;
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url).ok()?;
    std::path::absolute(options.get_filename()).ok()
}

/// How a command names its database to the operator: a SQLite URL with its absolute
/// path (a relative one depends on the working directory), any password redacted.
pub fn describe_url(url: &str) -> String {
    match url.starts_with("sqlite:").then(|| sqlite_file(url)).flatten() {
        Some(file) => format!("sqlite://{}", file.display()),
        None => redact_url(url),
    }
}

/// A database URL with any password replaced, fit for logs and error messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_in_database_urls() {
        assert_eq!(redact_url("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("sqlite://data/c.db"), "sqlite://data/c.db");
    }
}
