//! The overview at `/` and the `link_state` filter: a scenario that produces every owner
//! state, whose six counts partition the hosts, answered alike by the API (list and
//! count) and the page; the needs-attention lists with the identity and candidates; the
//! departments; the IdP feed's hourly counts; the webhook backlog.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestApp, assert_api_error, okta_user};
use crate::web::signed_in;
use custodian_domain::Role;

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn in_department(user_name: &str, department: &str) -> Value {
    let mut u = okta_user(user_name, "Given", "Family");
    u["schemas"] = json!(["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE]);
    u[ENTERPRISE] = json!({"department": department});
    u
}

/// Hosts in every owner state; returns the expected ids of each.
pub(crate) async fn every_state(app: &TestApp) -> Vec<(&'static str, Vec<i64>)> {
    for (user, dept) in [("alice@example.com", "Engineering"), ("amy@example.com", "Engineering")] {
        assert_eq!(app.post("/Users", in_department(user, dept)).await.status, 201);
    }
    let bob = app.post("/Users", in_department("bob@example.com", "Sales")).await;
    let carol = app.post("/Users", okta_user("carol@example.com", "Carol", "C")).await;
    // Two users with the same second email: a host enrolled with it is ambiguous.
    for name in ["dan@example.com", "dana@example.com"] {
        let mut u = okta_user(name, "D", "D");
        u["emails"] = json!([{"value": name, "primary": true}, {"value": "shared@example.com"}]);
        assert_eq!(app.post("/Users", u).await.status, 201);
    }
    let linked = vec![
        app.enroll_host("alice-mbp", Some("alice@example.com")).await,
        app.enroll_host("alice-mini", Some("alice@example.com")).await,
        app.enroll_host("amy-mbp", Some("amy@example.com")).await,
    ];
    let deactivated = vec![app.enroll_host("bob-mbp", Some("bob@example.com")).await];
    let deleted = vec![app.enroll_host("carol-mbp", Some("carol@example.com")).await];
    let unlinked = vec![app.enroll_host("ghost-mbp", Some("nobody@example.com")).await];
    let ambiguous = vec![app.enroll_host("shared-mbp", Some("shared@example.com")).await];
    let no_identity = vec![app.enroll_host("lab-imac", None).await, app.enroll_host("kiosk", None).await];
    let bob_id = bob.body["id"].as_str().unwrap();
    let r = app
        .patch(
            &format!("/Users/{bob_id}"),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "replace", "path": "active", "value": false}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.delete(&format!("/Users/{}", carol.body["id"].as_str().unwrap())).await.status, 204);
    vec![
        ("linked", linked),
        ("no_identity", no_identity),
        ("unlinked", unlinked),
        ("ambiguous", ambiguous),
        ("owner_deactivated", deactivated),
        ("user_deleted", deleted),
    ]
}

#[tokio::test]
async fn the_six_link_states_partition_the_hosts_in_the_list_the_count_and_the_overview() {
    let app = TestApp::spawn().await;
    let expected = every_state(&app).await;
    let total = app.api_get("/hosts/count").await.body["count"].as_u64().unwrap();
    let mut sum = 0;
    let b = signed_in(&app, "admin@example.com", Role::Observer).await;
    let page = b.get("/").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    for (state, ids) in &expected {
        let mut listed = app.host_ids(&format!("link_state={state}&per_page=500")).await;
        listed.sort();
        let mut want = ids.clone();
        want.sort();
        assert_eq!(listed, want, "GET /hosts?link_state={state}");
        let count = app.api_get(&format!("/hosts/count?link_state={state}")).await;
        assert_eq!(count.body["count"], ids.len(), "count of {state}: {}", count.text);
        sum += ids.len() as u64;
        // The overview's row of this state says the same number.
        let table = page.text.split("id=\"coverage-table\"").nth(1).unwrap();
        let row = table.split(&format!("data-state=\"{state}\"")).nth(1).unwrap_or_else(|| panic!("no row {state}"));
        let cell = row.split("class=\"num count\">").nth(1).unwrap().split('<').next().unwrap();
        assert_eq!(cell, ids.len().to_string(), "overview count of {state}");
        // The host page filter keeps the state.
        let hosts_page = b.get(&format!("/hosts?link_state={state}")).await;
        assert_eq!(hosts_page.status, StatusCode::OK);
        assert!(hosts_page.text.contains(&format!("<option value=\"{state}\" selected")), "{state} selected");
    }
    assert_eq!(sum, total, "the six states partition the hosts");
    // A combination narrows as the other filters do.
    let engineering = app.host_ids("link_state=linked&idp_department=Engineering").await;
    assert_eq!(engineering.len(), 3);
    assert!(app.host_ids("link_state=owner_deactivated&idp_department=Engineering").await.is_empty());
    // A wrong value names the parameter and its values.
    let bad = app.api_get("/hosts?link_state=orphan").await;
    assert_api_error(&bad, 422, "link_state");
    assert!(bad.text.contains("owner_deactivated"), "{}", bad.text);
    assert_api_error(&app.api_get("/hosts/count?link_state=LINKED").await, 422, "link_state");
}

#[tokio::test]
async fn the_overview_lists_the_hosts_to_act_on_the_departments_the_feed_and_the_backlog() {
    let app = TestApp::spawn().await;
    every_state(&app).await;
    let b = signed_in(&app, "olga@example.com", Role::Observer).await;
    let page = b.get("/").await;
    assert_eq!(page.status, StatusCode::OK);
    let section = |id: &str| -> String {
        let start = page.text.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no {id}"));
        let rest = &page.text[start..];
        rest[..rest.find("</table>").unwrap_or(rest.len())].to_string()
    };
    let unlinked = section("attention-unlinked");
    assert!(unlinked.contains("ghost-mbp.local") && unlinked.contains("nobody@example.com"), "{unlinked}");
    let ambiguous = section("attention-ambiguous");
    assert!(ambiguous.contains("shared@example.com"), "{ambiguous}");
    assert!(ambiguous.contains("dan@example.com, dana@example.com"), "the candidates by userName: {ambiguous}");
    let deactivated = section("attention-owner_deactivated");
    assert!(deactivated.contains("bob-mbp.local") && deactivated.contains("bob@example.com"), "{deactivated}");
    assert!(!deactivated.contains("alice"), "{deactivated}");
    let departments = section("departments-table");
    let eng = departments.find("engineering").unwrap();
    let sales = departments.find("sales").unwrap();
    assert!(eng < sales, "most hosts first: {departments}");
    assert!(departments.contains("/hosts?idp_department=engineering"));

    // The feed counts the SCIM requests of the default connection (the scenario's 8
    // writes succeeded; one more fails now).
    let r = app.post("/Users", okta_user("alice@example.com", "Again", "Taken")).await;
    assert_eq!(r.status, 409);
    let page = b.get("/").await;
    let feed = page.text.split("id=\"idp-feed\"").nth(1).unwrap();
    assert!(feed.contains("failed in the last 24 hours"), "{feed}");
    let summary = feed.split("class=\"feed-summary\">").nth(1).unwrap().split('<').next().unwrap();
    let numbers: Vec<u64> = summary.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    assert_eq!(numbers[..2], [8, 1], "8 writes succeeded, 1 failed: {summary}");
    assert!(feed.contains("Last error"), "{feed}");
    // The offboarding backlog: bob's deactivation and carol's deletion are pending
    // (no webhook URL is configured, so nothing is sent).
    let pending = page.text.split("id=\"webhooks-pending\">").nth(1).unwrap().split('<').next().unwrap();
    assert_eq!(pending, "2");
}

#[tokio::test]
async fn the_activity_feed_filters_by_host_idp_user_and_kind() {
    let app = TestApp::spawn().await;
    let states = every_state(&app).await;
    let bob_host = states.iter().find(|(s, _)| *s == "owner_deactivated").unwrap().1[0];
    // The scenario's first two linked hosts are alice's (the third is amy's).
    let alice_hosts = &states.iter().find(|(s, _)| *s == "linked").unwrap().1[..2];
    let b = signed_in(&app, "olga@example.com", Role::Observer).await;
    let kinds_of = |text: &str| -> Vec<String> {
        text.split("data-kind=\"").skip(1).map(|r| r.split('"').next().unwrap().to_string()).collect()
    };
    // A host's history: its link only (bob's deactivation changes no link).
    let page = b.get(&format!("/activity?host_id={bob_host}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(kinds_of(&page.text), vec!["linked_host_end_user"], "{}", page.text);
    assert!(page.text.contains(&format!("href=\"/hosts/{bob_host}\"")));
    // A person's: both of alice's hosts, whatever the case typed.
    let page = b.get("/activity?idp_username=ALICE%40example.com").await;
    let rows = kinds_of(&page.text);
    assert_eq!(rows.len(), alice_hosts.len(), "{}", page.text);
    for id in alice_hosts {
        assert!(page.text.contains(&format!("href=\"/hosts/{id}\"")));
    }
    // A kind, combined with a host.
    let page = b.get("/activity?kind=linked_host_end_user").await;
    let linked = kinds_of(&page.text);
    assert!(linked.len() >= 5 && linked.iter().all(|k| k == "linked_host_end_user"), "{linked:?}");
    let page = b.get(&format!("/activity?kind=unlinked_host_end_user&host_id={bob_host}")).await;
    assert!(kinds_of(&page.text).is_empty());
    assert!(page.text.contains("No activity matches these filters."));
    assert!(page.text.contains("<option value=\"linked_host_end_user\">"), "the kinds on record are offered");
    // Blank fields of a submitted form mean no filter; a bad host id is refused.
    let page = b.get("/activity?host_id=&idp_username=&kind=").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(kinds_of(&page.text).len() > linked.len());
    assert_eq!(b.get("/activity?host_id=abc").await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_failing_delivery_is_listed_with_its_error_and_retried_from_its_page() {
    // A receiver that refuses once, then accepts; retries an hour apart unless asked.
    let (url, received) = crate::offboarding::start_receiver(1).await;
    let limits = custodian::limits::Limits { rate_per_token: 0, ..custodian::limits::Limits::default() };
    let app = TestApp::spawn_with(custodian::AppConfig {
        limits,
        offboarding_webhook: Some(custodian::webhooks::WebhookConfig {
            url,
            secret: None,
            backoff_base: std::time::Duration::from_secs(3600),
            backoff_cap: std::time::Duration::from_secs(3600),
        }),
        ..custodian::AppConfig::default()
    })
    .await;
    let bob = app.post("/Users", okta_user("bob@example.com", "Bob", "B")).await;
    app.enroll_host("bob-mbp", Some("bob@example.com")).await;
    let r = app
        .patch(
            &format!("/Users/{}", bob.body["id"].as_str().unwrap()),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "replace", "value": {"active": false}}]}),
        )
        .await;
    assert_eq!(r.status, 200);
    let failing = |text: &str| text.contains("data-state=\"failing\"");
    let maintainer = signed_in(&app, "mia@example.com", Role::Maintainer).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let page = loop {
        let page = maintainer.get("/webhooks/deliveries?state=failing").await;
        if failing(&page.text) {
            break page;
        }
        assert!(std::time::Instant::now() < deadline, "the first attempt never failed: {}", page.text);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(page.text.contains("<td class=\"last-status\">500</td>"), "{}", page.text);
    assert!(page.text.contains("user_deactivated") && page.text.contains("bob@example.com"), "the payload");
    let id = page.text.split("data-delivery=\"").nth(1).unwrap().split('"').next().unwrap().to_string();

    // Observers may not see payloads.
    let observer = signed_in(&app, "olga@example.com", Role::Observer).await;
    assert_eq!(observer.get("/webhooks/deliveries").await.status, StatusCode::FORBIDDEN);
    assert!(!observer.get("/").await.text.contains("deliveries-link"));

    // "Retry now": sent at once (not in an hour), and delivered.
    let csrf = maintainer.csrf().await;
    let r = maintainer.post(&format!("/webhooks/deliveries/{id}/retry"), &[("csrf_token", &csrf)], &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while received.lock().unwrap().requests.len() < 2 {
        assert!(std::time::Instant::now() < deadline, "the retry was not sent");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let page = maintainer.get("/webhooks/deliveries?state=delivered").await;
        if page.text.contains(&format!("data-delivery=\"{id}\"")) {
            assert!(page.text.contains("<td class=\"num attempts\">2</td>"), "{}", page.text);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never delivered");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // A delivered one cannot be retried; the feed records the retry.
    let r = maintainer.post(&format!("/webhooks/deliveries/{id}/retry"), &[("csrf_token", &csrf)], &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text.contains("only a failing one can be retried"), "{}", r.text);
    let feed = maintainer.get("/activity?kind=retried_webhook_delivery").await;
    assert_eq!(feed.text.matches("data-kind=\"retried_webhook_delivery\"").count(), 1);
}
