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

/// Every page of the interface, as an admin and as an observer, through axe-core (and a
/// screenshot each); then the builder, a role change and a retried delivery, clicked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_passes_axe_as_admin_and_observer_and_the_forms_work_in_the_browser() {
    let driver = start_driver().await;
    // A receiver that refuses the first delivery, then accepts.
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    let receiver = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move { if n == 0 { axum::http::StatusCode::BAD_GATEWAY } else { axum::http::StatusCode::NO_CONTENT } }
        }),
    );
    let hook = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", hook.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(hook, receiver).await;
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = AppConfig {
        offboarding_webhook: Some(custodian::webhooks::WebhookConfig {
            url: hook_url,
            secret: None,
            backoff_base: Duration::from_secs(3600),
            backoff_cap: Duration::from_secs(3600),
        }),
        ..AppConfig::default()
    };
    let server = Server::start_with(listener, config).await;
    every_state(&server).await;
    server.person("ada@example.com", "Ada Admin", Role::Admin).await;
    server.person("olga@example.com", "Olga Observer", Role::Observer).await;
    server.person("mia@example.com", "Mia Maintainer", Role::Maintainer).await;
    let group = server.scim_group("Engineering", &[]).await;
    let (_, hosts) = server.call(reqwest::Method::GET, "/api/v1/fleet/hosts?link_state=linked", None).await;
    let host = hosts["hosts"][0]["id"].as_i64().unwrap();
    let user = hosts["hosts"][0]["end_users"][0]["idp_id"].as_str().unwrap().to_string();
    let (status, label) = server
        .call(
            reqwest::Method::POST,
            "/api/v1/fleet/labels",
            Some(json!({"name": "Sales", "criteria": {"vital": "end_user_idp_department", "value": "Sales"}})),
        )
        .await;
    assert_eq!(status, 200, "{label}");
    let label = label["label"]["id"].as_i64().unwrap();
    let (_, ops) = server.call(reqwest::Method::GET, "/api/v1/fleet/hosts/count", None).await;
    assert!(ops["count"].as_u64().unwrap() > 0);

    let c = browser(&driver).await;
    sign_in(&c, &server.base, "ada@example.com").await;
    let ada_id = server.store.list_api_users().await.unwrap().iter().find(|u| u.name == "Ada Admin").unwrap().id;
    let pages = [
        ("/", "overview"),
        ("/hosts", "hosts"),
        (&format!("/hosts/{host}") as &str, "host"),
        ("/end-users", "end-users"),
        (&format!("/end-users/{user}"), "end-user"),
        ("/groups", "groups"),
        (&format!("/groups/{group}"), "group"),
        ("/labels", "labels"),
        (&format!("/labels/{label}"), "label"),
        ("/labels/new", "label-new"),
        ("/activity", "activity"),
        ("/webhooks/deliveries", "deliveries"),
        ("/settings/operators", "operators"),
        (&format!("/settings/operators/{ada_id}"), "operator"),
        ("/settings/integrations/identity-provider", "idp"),
        ("/settings/integrations/identity-provider/1", "idp-connection"),
    ];
    for (path, name) in &pages {
        c.goto(&format!("{}{path}", server.base)).await.unwrap();
        c.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css("main h1")).await.unwrap();
        shot(&c, &format!("60-admin-{name}")).await;
    }

    // The builder: preview shows the JSON, save lands on the label with the API's hosts.
    c.goto(&format!("{}/labels/new", server.base)).await.unwrap();
    fill(&c, "#label-name", "Engineering hosts").await;
    c.find(Locator::Css("#vital-0 option[value='end_user_idp_department']")).await.unwrap().click().await.unwrap();
    fill(&c, "#value-0", "Engineering").await;
    c.find(Locator::Css("#preview-label")).await.unwrap().click().await.unwrap();
    wait_text(&c, "#criteria-json", "end_user_idp_department").await;
    shot(&c, "61-label-builder-preview").await;
    c.find(Locator::Css("#save-label")).await.unwrap().click().await.unwrap();
    c.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css("#label-hosts")).await.unwrap();
    let id: i64 = c.current_url().await.unwrap().path().trim_start_matches("/labels/").parse().unwrap();
    let (_, api) = server.call(reqwest::Method::GET, &format!("/api/v1/fleet/labels/{id}/hosts"), None).await;
    let mut want: Vec<String> = api["hosts"].as_array().unwrap().iter().map(|h| h["id"].to_string()).collect();
    let mut shown = Vec::new();
    for row in c.find_all(Locator::Css("#label-hosts tbody tr")).await.unwrap() {
        shown.push(row.attr("data-host").await.unwrap().unwrap());
    }
    want.sort();
    shown.sort();
    assert_eq!(shown, want);
    assert_eq!(want.len(), 2, "alice's and amy's hosts");
    shot(&c, "62-label-made-in-the-builder").await;

    // A failing delivery retried from its page.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        c.goto(&format!("{}/webhooks/deliveries?state=failing", server.base)).await.unwrap();
        if !c.find_all(Locator::Css("button.retry")).await.unwrap().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "no failing delivery");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let failing_hits = hits.load(std::sync::atomic::Ordering::SeqCst);
    c.find(Locator::Css("button.retry")).await.unwrap().click().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while hits.load(std::sync::atomic::Ordering::SeqCst) == failing_hits {
        assert!(Instant::now() < deadline, "the retry was never sent");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A role change applies to the operator's next request.
    let m = browser(&driver).await;
    sign_in(&m, &server.base, "mia@example.com").await;
    m.goto(&format!("{}/hosts/{host}", server.base)).await.unwrap();
    assert!(!m.find_all(Locator::Css("#edit-idp-username")).await.unwrap().is_empty(), "a maintainer edits");
    let mia_id = server.store.list_api_users().await.unwrap().iter().find(|u| u.name == "Mia Maintainer").unwrap().id;
    c.goto(&format!("{}/settings/operators", server.base)).await.unwrap();
    c.find(Locator::Css(&format!("#role-{mia_id} option[value='observer']"))).await.unwrap().click().await.unwrap();
    c.find(Locator::Css(&format!("tr[data-operator='{mia_id}'] button[type='submit']")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css("#operators")).await.unwrap();
    m.refresh().await.unwrap();
    wait_text(&m, ".role-badge", "observer").await;
    assert!(m.find_all(Locator::Css("#edit-idp-username")).await.unwrap().is_empty(), "no edit form now");
    m.close().await.unwrap();
    c.close().await.unwrap();

    // The observer's view of every page it may open.
    let o = browser(&driver).await;
    sign_in(&o, &server.base, "olga@example.com").await;
    for (path, name) in &pages {
        o.goto(&format!("{}{path}", server.base)).await.unwrap();
        o.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css("main h1")).await.unwrap();
        shot(&o, &format!("63-observer-{name}")).await;
    }
    o.close().await.unwrap();
}
