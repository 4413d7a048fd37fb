//! The page frame (navigation between every page, the signed-in operator, sign-out) and
//! small rendering helpers shared by the pages.

use axum::response::Html;
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

use super::bare::head;
pub use super::bare::{bare_page, error_page};
use super::session::{CSRF_FIELD, Viewer};

/// Which navigation entry is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Hosts,
    EndUsers,
    Groups,
    Labels,
    Activity,
    Settings,
    None,
}

const NAV: &[(Nav, &str, &str)] = &[
    (Nav::Overview, "/", "Overview"),
    (Nav::Hosts, "/hosts", "Hosts"),
    (Nav::EndUsers, "/end-users", "End users"),
    (Nav::Groups, "/groups", "Groups"),
    (Nav::Labels, "/labels", "Labels"),
    (Nav::Activity, "/activity", "Activity"),
    (Nav::Settings, "/settings/integrations/identity-provider", "Settings"),
];

/// The hidden CSRF field of every form.
pub fn csrf(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(viewer.csrf_token); }
}

/// A page of a signed-in operator.
pub fn page(viewer: &Viewer, nav: Nav, title: &str, body: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                (head(title))
                body {
                    header.topbar {
                        a.brand href="/" { "Custodian" }
                        nav.main-nav {
                            @for (entry, href, label) in NAV {
                                a href=(href) class=[(*entry == nav).then_some("current")] { (label) }
                            }
                        }
                        div.whoami {
                            span.user-name { (viewer.user.name) }
                            " "
                            span.role-badge data-role=(viewer.user.role.as_str()) { (viewer.user.role.as_str()) }
                            form.inline method="post" action="/logout" {
                                (csrf(viewer))
                                button.link-button type="submit" id="sign-out" { "Sign out" }
                            }
                        }
                    }
                    main {
                        h1 { (title) }
                        (body)
                    }
                }
            }
        }
        .into_string(),
    )
}

/// "3 minutes ago", "2 days ago".
pub fn ago(t: DateTime<Utc>) -> String {
    let secs = (Utc::now() - t).num_seconds().max(0);
    let (n, unit) = match secs {
        0..=59 => return "just now".into(),
        60..=3599 => (secs / 60, "minute"),
        3600..=86_399 => (secs / 3600, "hour"),
        _ => (secs / 86_400, "day"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

/// A time as `2026-05-01 10:00:00 UTC`, with the relative time beside it.
pub fn when(t: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) title=(ago(t)) {
            (t.format("%Y-%m-%d %H:%M:%S UTC"))
        }
    }
}

/// A query string with `page` replaced.
pub fn with_page(pairs: &[(&str, String)], page: u64) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if !v.is_empty() && *k != "page" {
            s.append_pair(k, v);
        }
    }
    if page > 0 {
        s.append_pair("page", &page.to_string());
    }
    s.finish()
}

/// Previous / next links for a 0-based page.
pub fn pager(path: &str, pairs: &[(&str, String)], page: u64, has_next: bool) -> Markup {
    html! {
        nav.pager aria-label="Pages" {
            @if page > 0 {
                a rel="prev" href={ (path) "?" (with_page(pairs, page - 1)) } { "← Previous" }
            }
            span.page-number { "Page " (page + 1) }
            @if has_next {
                a rel="next" href={ (path) "?" (with_page(pairs, page + 1)) } { "Next →" }
            }
        }
    }
}

/// Thousands separated by commas.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_and_numbers_read_naturally() {
        assert_eq!(ago(Utc::now()), "just now");
        assert_eq!(ago(Utc::now() - chrono::Duration::minutes(1)), "1 minute ago");
        assert_eq!(ago(Utc::now() - chrono::Duration::hours(5)), "5 hours ago");
        assert_eq!(thousands(100_000), "100,000");
        assert_eq!(thousands(12), "12");
        assert_eq!(with_page(&[("query", "a b".into()), ("idp_group", String::new())], 2), "query=a+b&page=2");
    }
}
