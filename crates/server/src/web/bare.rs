//! The frame of a page without a session: sign-in, first-run set-up, and the error
//! pages the error layer renders for any path (so it needs nothing of a session).

use axum::response::Html;
use maud::{DOCTYPE, Markup, html};

use super::assets;

pub(super) fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Custodian" }
            link rel="stylesheet" href=(assets::url("app.css"));
            script src=(assets::url("app.js")) defer {}
        }
    }
}

/// A page without a session (sign-in, set-up, errors).
pub fn bare_page(title: &str, body: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                (head(title))
                body.bare {
                    main.narrow {
                        p.brand-big { "Custodian" }
                        h1 { (title) }
                        (body)
                    }
                }
            }
        }
        .into_string(),
    )
}

pub fn error_page(title: &str, message: &str) -> Html<String> {
    bare_page(
        title,
        html! {
            p.error-message { (message) }
            p { a href="/hosts" { "Back to the hosts" } }
        },
    )
}
