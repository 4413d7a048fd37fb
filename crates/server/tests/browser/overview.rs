//! The overview in headless Chromium: after a scenario with hosts in every owner state,
//! its counts equal the API's, a segment of the coverage chart leads to the filtered host
//! list, and the page passes axe-core as an admin and as an observer.

use super::*;

/// Hosts in every owner state, with departments, SCIM traffic (one request failing) and
/// pending offboarding deliveries.
async fn every_state(server: &Server) {
    server.scim_user("alice@example.com", "Alice", "Archer", "Engineering").await;
    server.scim_user("amy@example.com", "Amy", "Adams", "Engineering").await;
    let bob = server.scim_user("bob@example.com", "Bob", "Baker", "Sales").await;
    let carol = server.scim_user("carol@example.com", "Carol", "Cole", "Finance").await;
    for name in ["dan@example.com", "dana@example.com"] {
        let (status, body) = server
            .call(
                reqwest::Method::POST,
                &format!("{SCIM}/Users"),
                Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name,
                            "emails": [{"value": name, "primary": true}, {"value": "shared@example.com"}]})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    server.host("alice-mbp", "alice@example.com").await;
    server.host("amy-mbp", "amy@example.com").await;
    server.host("bob-mbp", "bob@example.com").await;
    server.host("carol-mbp", "carol@example.com").await;
    server.host("ghost-mbp", "nobody@example.com").await;
    server.host("shared-mbp", "shared@example.com").await;
    let (status, _) = server
        .call(
            reqwest::Method::POST,
            "/api/v1/fleet/hosts",
            Some(json!({"uuid": "lab-imac", "hostname": "lab-imac.corp.example.com", "platform": "darwin"})),
        )
        .await;
    assert_eq!(status, 201);
    let (status, body) = server
        .call(
            reqwest::Method::PATCH,
            &format!("{SCIM}/Users/{bob}"),
            Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "replace", "value": {"active": false}}]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = server.call(reqwest::Method::DELETE, &format!("{SCIM}/Users/{carol}"), None).await;
    assert_eq!(status, 204);
    // A request the IdP gets wrong: the feed shows an error.
    let (status, _) = server
        .call(
            reqwest::Method::POST,
            &format!("{SCIM}/Users"),
            Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]})),
        )
        .await;
    assert_eq!(status, 400);
}

const STATES: [&str; 6] = ["linked", "no_identity", "unlinked", "ambiguous", "owner_deactivated", "user_deleted"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_counts_what_the_api_counts_and_its_segments_lead_to_the_filtered_list() {
    let driver = start_driver().await;
    let server = Server::start().await;
    every_state(&server).await;
    server.person("ada@example.com", "Ada Admin", Role::Admin).await;
    server.person("olga@example.com", "Olga Observer", Role::Observer).await;

    let c = browser(&driver).await;
    sign_in(&c, &server.base, "ada@example.com").await;
    c.goto(&format!("{}/", server.base)).await.unwrap();
    for state in STATES {
        let (status, body) =
            server.call(reqwest::Method::GET, &format!("/api/v1/fleet/hosts/count?link_state={state}"), None).await;
        assert_eq!(status, 200, "{body}");
        let shown = text_of(&c, &format!("#coverage-table tr[data-state='{state}'] td.count")).await;
        assert_eq!(shown, body["count"].to_string(), "{state}");
        assert_eq!(body["count"], 1 + u64::from(state == "linked"), "{state}: the scenario's hosts");
    }
    assert!(text_of(&c, "#attention-ambiguous").await.contains("dan@example.com, dana@example.com"));
    assert!(text_of(&c, "#departments-table").await.contains("engineering"));
    assert_eq!(text_of(&c, "#webhooks-pending").await, "2");
    shot(&c, "50-overview-admin").await;

    // The owner-deactivated segment leads to the laptops to recover.
    c.find(Locator::Css("#owner-coverage svg a[data-state='owner_deactivated']")).await.unwrap().click().await.unwrap();
    c.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css("#host-filters")).await.unwrap();
    let url = c.current_url().await.unwrap();
    assert_eq!(url.path(), "/hosts");
    assert_eq!(url.query(), Some("link_state=owner_deactivated"));
    let rows = c.find_all(Locator::Css("#hosts tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].text().await.unwrap().contains("bob-mbp"));
    shot(&c, "51-hosts-owner-deactivated").await;

    // The pages of this round, each checked by axe-core.
    c.goto(&format!("{}/activity?kind=linked_host_end_user", server.base)).await.unwrap();
    wait_text(&c, "#activities", "linked host end user").await;
    shot(&c, "53-activity-by-kind").await;
    c.goto(&format!("{}/webhooks/deliveries", server.base)).await.unwrap();
    wait_text(&c, "#deliveries", "user_deactivated").await;
    shot(&c, "54-webhook-deliveries").await;
    c.goto(&format!("{}/settings/operators", server.base)).await.unwrap();
    wait_text(&c, "#operators", "Olga Observer").await;
    shot(&c, "55-operators").await;
    c.find(Locator::LinkText("Ada Admin")).await.unwrap().click().await.unwrap();
    c.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css("#sessions")).await.unwrap();
    shot(&c, "56-operator-sessions").await;
    c.close().await.unwrap();

    let o = browser(&driver).await;
    sign_in(&o, &server.base, "olga@example.com").await;
    o.goto(&format!("{}/", server.base)).await.unwrap();
    wait_text(&o, "#coverage-caption", "7 hosts").await;
    shot(&o, "52-overview-observer").await;
    assert!(o.find_all(Locator::Css("#deliveries-link")).await.unwrap().is_empty(), "no payloads for observers");
    o.goto(&format!("{}/activity", server.base)).await.unwrap();
    shot(&o, "57-activity-observer").await;
    o.goto(&format!("{}/webhooks/deliveries", server.base)).await.unwrap();
    wait_text(&o, "h1", "Not allowed").await;
    shot(&o, "58-deliveries-refused-observer").await;
    o.close().await.unwrap();
}
