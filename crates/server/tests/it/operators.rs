//! The operators page: an admin lists operators with their sessions and last sign-in,
//! changes a role (effective on that operator's next request), signs a person out,
//! adds a password operator and deletes one; nobody else may.

use custodian_domain::Role;
use reqwest::StatusCode;

use crate::support::TestApp;
use crate::web::{Browser, PASSWORD, signed_in};

fn operator_id(page: &str, name: &str) -> String {
    let at = page.find(&format!(">{name}</a>")).unwrap_or_else(|| panic!("no {name} in {page}"));
    let before = &page[..at];
    let row = before.rfind("data-operator=\"").unwrap() + 15;
    before[row..].split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn an_admin_manages_operators_and_a_role_change_applies_on_the_next_request() {
    let app = TestApp::spawn().await;
    let admin = signed_in(&app, "ada@example.com", Role::Admin).await;
    let mia = signed_in(&app, "mia@example.com", Role::Maintainer).await;
    let page = admin.get("/settings/operators").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let mia_id = operator_id(&page.text, "mia@example.com");
    let row = page.text.split(&format!("data-operator=\"{mia_id}\"")).nth(1).unwrap();
    assert!(row.contains("<td class=\"num sessions\"><a href=\"/settings/operators/"), "{row}");
    assert!(row.split("</tr>").next().unwrap().contains(">1</a>"), "one session: {row}");
    assert!(row.contains("<time"), "a last sign-in");
    assert!(row.contains("password"));

    // Mia may edit a host's IdP username now...
    let host = app.enroll_host("mac-1", Some("jane@example.com")).await;
    let csrf = mia.csrf().await;
    let fields = [("csrf_token", csrf.as_str()), ("idp_username", "jane@example.com")];
    let r = mia.post(&format!("/hosts/{host}/idp-username"), &fields, &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    // ...and not once the admin makes her an observer: her very next request.
    let admin_csrf = admin.csrf().await;
    let r = admin
        .post(&format!("/settings/operators/{mia_id}/role"), &[("csrf_token", &admin_csrf), ("role", "observer")], &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let r = mia.post(&format!("/hosts/{host}/idp-username"), &fields, &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(mia.get("/hosts").await.text.contains("data-role=\"observer\""));
    let roles: Vec<_> = app.store.list_api_users().await.unwrap().into_iter().map(|u| (u.name, u.role)).collect();
    assert!(roles.contains(&("mia@example.com".to_string(), Role::Observer)));
    // Nobody changes their own role here; a wrong role is refused.
    let ada_id = operator_id(&page.text, "ada@example.com");
    let r = admin
        .post(&format!("/settings/operators/{ada_id}/role"), &[("csrf_token", &admin_csrf), ("role", "observer")], &[])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = admin
        .post(&format!("/settings/operators/{mia_id}/role"), &[("csrf_token", &admin_csrf), ("role", "root")], &[])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // Her sessions, and signing her out everywhere.
    let sessions = admin.get(&format!("/settings/operators/{mia_id}")).await;
    assert_eq!(sessions.text.matches("data-session=").count(), 1, "{}", sessions.text);
    let r =
        admin.post(&format!("/settings/operators/{mia_id}/sessions/end"), &[("csrf_token", &admin_csrf)], &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(mia.get("/hosts").await.status, StatusCode::SEE_OTHER, "signed out");
    assert!(admin.get(&format!("/settings/operators/{mia_id}")).await.text.contains("id=\"no-sessions\""));

    // A new password operator signs in at once.
    let fields = [
        ("csrf_token", admin_csrf.as_str()),
        ("name", "Sam Support"),
        ("email", "sam@example.com"),
        ("role", "maintainer"),
        ("password", PASSWORD),
    ];
    let r = admin.post("/settings/operators", &fields, &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let mut sam = Browser::new(&app.base);
    assert_eq!(sam.sign_in("sam@example.com", PASSWORD).await.status, StatusCode::SEE_OTHER);
    let short = [
        ("csrf_token", admin_csrf.as_str()),
        ("name", "X"),
        ("email", "x@example.com"),
        ("role", "admin"),
        ("password", "short"),
    ];
    assert_eq!(admin.post("/settings/operators", &short, &[]).await.status, StatusCode::BAD_REQUEST);

    // Deleting sam ends his session at once; the feed has the role change and the sign-out.
    let page = admin.get("/settings/operators").await;
    let sam_id = operator_id(&page.text, "Sam Support");
    assert!(page.text.contains("Delete Sam Support? 1 session and 0 API tokens end with it"), "the confirmation");
    let r = admin.post(&format!("/settings/operators/{sam_id}/delete"), &[("csrf_token", &admin_csrf)], &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(sam.get("/hosts").await.status, StatusCode::SEE_OTHER);
    assert!(!admin.get("/settings/operators").await.text.contains("Sam Support"));
    let feed = admin.get("/activity?kind=changed_operator_role").await;
    assert_eq!(feed.text.matches("data-kind=\"changed_operator_role\"").count(), 1);
    let feed = admin.get("/activity?kind=ended_operator_sessions").await;
    assert_eq!(feed.text.matches("data-kind=\"ended_operator_sessions\"").count(), 1);

    // Not for maintainers.
    let max = signed_in(&app, "max@example.com", Role::Maintainer).await;
    assert_eq!(max.get("/settings/operators").await.status, StatusCode::FORBIDDEN);
}
