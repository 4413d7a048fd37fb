//! IdP connections: each its own SCIM namespace with SCIM-only tokens, and the mapping
//! of hosts across connections by priority, as a live rule.

use custodian_domain::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{API, Reply, SCIM, TestApp, assert_api_error, okta_user};

/// Creates a SCIM connection as an admin; returns its id and first token.
async fn add_connection(app: &TestApp, admin: &str, name: &str, priority: i64) -> (i64, String) {
    let r = app
        .api_as(
            Some(admin),
            Method::POST,
            &format!("{API}/idp/connections"),
            Some(json!({"name": name, "kind": "scim", "priority": priority})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["connection"]["name"], name, "{}", r.text);
    assert_eq!(r.body["connection"]["priority"], priority, "{}", r.text);
    assert_eq!(r.body["connection"]["tokens"].as_array().map(Vec::len), Some(1), "{}", r.text);
    (r.body["connection"]["id"].as_i64().unwrap(), r.body["token"].as_str().unwrap().to_string())
}

async fn scim(app: &TestApp, token: &str, method: Method, path: &str, body: Option<Value>) -> Reply {
    app.request_as(Some(token), method, &format!("{SCIM}{path}"), body).await
}

async fn create_user(app: &TestApp, token: &str, user_name: &str) -> String {
    let r = scim(app, token, Method::POST, "/Users", Some(okta_user(user_name, "Jane", "Doe"))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body["id"].as_str().unwrap().to_string()
}

async fn set_priority(app: &TestApp, admin: &str, id: i64, priority: i64) {
    let r = app
        .api_as(Some(admin), Method::PATCH, &format!("{API}/idp/connections/{id}"), Some(json!({"priority": priority})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["connection"]["priority"], priority, "{}", r.text);
}

/// The SCIM id of the host's end user, or "" when none.
async fn linked_to(app: &TestApp, host_id: i64) -> String {
    let host = app.host(host_id).await;
    host["end_users"].get(0).and_then(|u| u["idp_id"].as_str()).unwrap_or("").to_string()
}

async fn connection(app: &TestApp, admin: &str, id: i64) -> Value {
    let r = app.api_as(Some(admin), Method::GET, &format!("{API}/idp/connections/{id}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["connection"].clone()
}

#[tokio::test]
async fn an_upgraded_server_has_one_default_connection_owning_every_user_and_old_tokens_write_to_it() {
    let app = TestApp::spawn().await;
    let admin = app.token_with_role("admin", Role::Admin).await;
    // The maintainer token of the Okta guide keeps working, and writes to `default`.
    app.create_user("jane@example.com").await;
    app.create_group("Engineering").await;
    let r = app.api_as(Some(&admin), Method::GET, &format!("{API}/idp/connections"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let list = r.body["connections"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{}", r.text);
    assert_eq!(list[0]["name"], "default");
    assert_eq!(list[0]["kind"], "scim");
    assert_eq!(list[0]["priority"], 100);
    assert_eq!(list[0]["users"], 1);
    assert_eq!(list[0]["groups"], 1);
    assert_eq!(list[0]["last_request"]["status"], "success", "{}", r.text);
    assert_eq!(list[0]["tokens"], json!([]));
}

#[tokio::test]
async fn two_connections_keep_the_same_user_name_apart_and_each_sees_only_its_own() {
    let app = TestApp::spawn().await;
    let admin = app.token_with_role("admin", Role::Admin).await;
    let (okta_id, okta) = add_connection(&app, &admin, "Okta", 10).await;
    let (entra_id, entra) = add_connection(&app, &admin, "Entra", 20).await;
    let in_okta = create_user(&app, &okta, "jane@example.com").await;
    let in_entra = create_user(&app, &entra, "jane@example.com").await;
    assert_ne!(in_okta, in_entra);
    // A second jane in one connection is still a uniqueness error.
    let again = scim(&app, &okta, Method::POST, "/Users", Some(okta_user("JANE@example.com", "J", "D"))).await;
    again.assert_scim_error(409, Some("uniqueness"));

    for (token, own, other) in [(&okta, &in_okta, &in_entra), (&entra, &in_entra, &in_okta)] {
        let r = scim(&app, token, Method::GET, "/Users?filter=userName%20eq%20%22jane%40example.com%22", None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["totalResults"], 1, "{}", r.text);
        assert_eq!(r.body["Resources"][0]["id"], own.as_str(), "{}", r.text);
        let r = scim(&app, token, Method::GET, "/Users", None).await;
        assert_eq!(r.body["totalResults"], 1, "{}", r.text);
        // The other connection's ids do not exist here, for reads and writes alike.
        scim(&app, token, Method::GET, &format!("/Users/{other}"), None).await.assert_scim_error(404, None);
        scim(&app, token, Method::DELETE, &format!("/Users/{other}"), None).await.assert_scim_error(404, None);
    }
    // A group cannot take another connection's user as a member.
    let group = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Eng",
                       "members": [{"value": in_entra}]});
    let r = scim(&app, &okta, Method::POST, "/Groups", Some(group)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert!(r.body.get("members").is_none_or(|m| m == &json!([])), "{}", r.text);

    assert_eq!(connection(&app, &admin, okta_id).await["users"], 1);
    assert_eq!(connection(&app, &admin, entra_id).await["users"], 1);
    // Each connection's history holds its own requests.
    let r = app.api_as(Some(&admin), Method::GET, &format!("{API}/idp/connections/{entra_id}/requests"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let requests = r.body["requests"].as_array().unwrap();
    assert!(!requests.is_empty(), "{}", r.text);
    assert!(requests.iter().all(|e| e["connection_id"] == entra_id), "{}", r.text);
    assert!(!requests.iter().any(|e| e["path"].as_str().unwrap().contains("/Groups")), "{}", r.text);
    // A connection that does not exist has no history.
    let r = app.api_as(Some(&admin), Method::GET, &format!("{API}/idp/connections/987654/requests"), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert_eq!(r.body["errors"][0]["name"], "id", "{}", r.text);
}

#[tokio::test]
async fn a_connection_token_reaches_scim_only_and_expired_or_revoked_tokens_get_401_saying_which() {
    let app = TestApp::spawn().await;
    let admin = app.token_with_role("admin", Role::Admin).await;
    let (id, token) = add_connection(&app, &admin, "Okta", 10).await;
    let r = app.api_as(Some(&token), Method::GET, &format!("{API}/hosts"), None).await;
    assert_api_error(&r, 403, "base");
    let r = app.api_as(Some(&token), Method::GET, &format!("{API}/idp/connections"), None).await;
    assert_api_error(&r, 403, "base");
    assert_eq!(scim(&app, &token, Method::GET, "/Users", None).await.status, StatusCode::OK);

    // A second token, then the first revoked: rotation without downtime.
    let r =
        app.api_as(Some(&admin), Method::POST, &format!("{API}/idp/connections/{id}/tokens"), Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let second = r.body["token"].as_str().unwrap().to_string();
    let first_id = connection(&app, &admin, id).await["tokens"][0]["id"].as_i64().unwrap();
    let r =
        app.api_as(Some(&admin), Method::DELETE, &format!("{API}/idp/connections/{id}/tokens/{first_id}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = scim(&app, &token, Method::GET, "/Users", None).await;
    r.assert_scim_error(401, None);
    assert!(r.body["detail"].as_str().unwrap().contains("revoked"), "{}", r.text);
    assert!(!r.text.contains("Okta"), "a refusal never says whose token it was: {}", r.text);
    assert_eq!(scim(&app, &second, Method::GET, "/Users", None).await.status, StatusCode::OK);
    let tokens = connection(&app, &admin, id).await["tokens"].clone();
    assert_eq!(tokens.as_array().unwrap().len(), 1, "{tokens}");
    assert!(tokens[0]["last_used_at"].is_string(), "{tokens}");

    // A token that expires: written straight into the store, already past its time.
    let (expired, digest) = custodian::auth::generate_token();
    let past = chrono::Utc::now() - chrono::Duration::seconds(1);
    app.store.add_connection_token(custodian_domain::ConnectionId(id), digest, Some(past)).await.unwrap();
    let r = scim(&app, &expired, Method::GET, "/Users", None).await;
    r.assert_scim_error(401, None);
    assert!(r.body["detail"].as_str().unwrap().contains("expired"), "{}", r.text);
    // An expiry in the past is refused on the API, naming the field.
    let r = app
        .api_as(
            Some(&admin),
            Method::POST,
            &format!("{API}/idp/connections/{id}/tokens"),
            Some(json!({"expires_at": "2001-01-01T00:00:00Z"})),
        )
        .await;
    assert_api_error(&r, 422, "expires_at");
}

#[tokio::test]
async fn only_admins_change_connections_and_taken_names_or_priorities_name_the_field() {
    let app = TestApp::spawn().await;
    let admin = app.token_with_role("admin", Role::Admin).await;
    let body = json!({"name": "Okta", "kind": "scim", "priority": 10});
    let r = app.api_as(Some(&app.token), Method::POST, &format!("{API}/idp/connections"), Some(body.clone())).await;
    assert_api_error(&r, 403, "base");
    add_connection(&app, &admin, "Okta", 10).await;
    let url = format!("{API}/idp/connections");
    let r = app.api_as(Some(&admin), Method::POST, &url, Some(json!({"name": "OKTA", "kind": "scim"}))).await;
    assert_api_error(&r, 409, "name");
    let r = app
        .api_as(Some(&admin), Method::POST, &url, Some(json!({"name": "Entra", "kind": "scim", "priority": 10})))
        .await;
    assert_api_error(&r, 409, "priority");
    let r = app.api_as(Some(&admin), Method::POST, &url, Some(json!({"name": "Entra", "kind": "ldap"}))).await;
    assert_api_error(&r, 422, "kind");
    let r =
        app.api_as(Some(&admin), Method::POST, &url, Some(json!({"name": " ", "kind": "scim", "priority": -1}))).await;
    assert_api_error(&r, 422, "name");
    assert_api_error(&r, 422, "priority");
    // Without a priority, a new connection comes after every other one.
    let r = app.api_as(Some(&admin), Method::POST, &url, Some(json!({"name": "Entra", "kind": "scim"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["connection"]["priority"], 110, "{}", r.text);
    // `default` cannot be removed while it has users.
    app.create_user("jane@example.com").await;
    let r = app.api_as(Some(&admin), Method::DELETE, &format!("{url}/1"), None).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert!(r.text.contains("only once it has no users or groups"), "{}", r.text);
    assert_eq!(connection(&app, &admin, 1).await["users"], 1, "nothing was removed");
}

#[tokio::test]
async fn a_host_links_to_the_connection_that_comes_first_relinks_on_a_swap_and_stays_when_the_other_deletes() {
    let app = TestApp::spawn().await;
    let admin = app.token_with_role("admin", Role::Admin).await;
    let (okta_id, okta) = add_connection(&app, &admin, "Okta", 10).await;
    let (entra_id, entra) = add_connection(&app, &admin, "Entra", 20).await;
    let host = app.enroll_host("host-1", Some("jane@example.com")).await;
    let in_entra = create_user(&app, &entra, "jane@example.com").await;
    assert_eq!(linked_to(&app, host).await, in_entra, "only Entra has her");
    // Okta, which comes first, gets her: the host moves at once.
    let in_okta = create_user(&app, &okta, "jane@example.com").await;
    assert_eq!(linked_to(&app, host).await, in_okta);
    assert_eq!(app.host(host).await["end_users"][0]["idp_connection"], "Okta");
    assert_eq!(app.host_ids("idp_connection=okta").await, vec![host], "any case");
    assert!(app.host_ids("idp_connection=Entra").await.is_empty());

    // Swap the priorities (a free value first: priorities are unique).
    set_priority(&app, &admin, okta_id, 30).await;
    assert_eq!(linked_to(&app, host).await, in_entra, "Entra comes first now");
    set_priority(&app, &admin, entra_id, 10).await;
    set_priority(&app, &admin, okta_id, 20).await;
    assert_eq!(linked_to(&app, host).await, in_entra);
    let r = app.api_get(&format!("/hosts/{host}/end_user_history")).await;
    assert!(r.text.contains("priority_changed"), "the history says why: {}", r.text);

    // Okta (now second) deletes her: the host stays with Entra.
    let r = scim(&app, &okta, Method::DELETE, &format!("/Users/{in_okta}"), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(linked_to(&app, host).await, in_entra);
    // Entra deletes her too: nobody is left.
    let r = scim(&app, &entra, Method::DELETE, &format!("/Users/{in_entra}"), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(linked_to(&app, host).await, "");
}

#[tokio::test]
async fn an_ambiguity_in_the_first_connection_is_not_resolved_by_the_next() {
    let app = TestApp::spawn().await;
    let admin = app.token_with_role("admin", Role::Admin).await;
    let (_, okta) = add_connection(&app, &admin, "Okta", 10).await;
    let (_, entra) = add_connection(&app, &admin, "Entra", 20).await;
    let in_entra = create_user(&app, &entra, "jane@example.com").await;
    // Two Okta users with her address among their emails: ambiguous in Okta.
    for name in ["jane.a@example.com", "jane.b@example.com"] {
        let mut user = okta_user(name, "Jane", "Doe");
        user["emails"] = json!([{"value": name, "primary": true}, {"value": "jane@example.com"}]);
        let r = scim(&app, &okta, Method::POST, "/Users", Some(user)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    // Entra's user has her as userName, yet Okta comes first and is ambiguous.
    let host = app.enroll_host("host-1", Some("jane@example.com")).await;
    let h = app.host(host).await;
    assert_eq!(h["end_users"], json!([]), "{h}");
    assert_eq!(h["idp_link"]["state"], "ambiguous", "{h}");
    assert_eq!(h["idp_link"]["candidates"].as_array().map(Vec::len), Some(2), "{h}");
    // Swapping the order makes Entra's unique match win, at once.
    let connections = app.api_as(Some(&admin), Method::GET, &format!("{API}/idp/connections"), None).await;
    let okta_id = connections.body["connections"][0]["id"].as_i64().unwrap();
    set_priority(&app, &admin, okta_id, 30).await;
    assert_eq!(linked_to(&app, host).await, in_entra);
}

#[tokio::test]
async fn removing_a_connection_unlinks_its_hosts_relinks_them_elsewhere_and_fires_no_webhook() {
    let app = TestApp::spawn().await;
    let admin = app.token_with_role("admin", Role::Admin).await;
    let (okta_id, okta) = add_connection(&app, &admin, "Okta", 10).await;
    let (_, entra) = add_connection(&app, &admin, "Entra", 20).await;
    let only_okta = app.enroll_host("host-1", Some("jane@example.com")).await;
    let both = app.enroll_host("host-2", Some("john@example.com")).await;
    create_user(&app, &okta, "jane@example.com").await;
    create_user(&app, &okta, "john@example.com").await;
    let john_in_entra = create_user(&app, &entra, "john@example.com").await;

    let r = app.api_as(Some(&admin), Method::DELETE, &format!("{API}/idp/connections/{okta_id}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(linked_to(&app, only_okta).await, "");
    assert_eq!(linked_to(&app, both).await, john_in_entra, "matched again in Entra");
    let r = app.api_get(&format!("/hosts/{only_okta}/end_user_history")).await;
    assert_eq!(r.body["history"][0]["unlink_cause"], "connection_removed", "{}", r.text);
    // No offboarding: the people did not leave.
    let r = app.api_get("/webhooks/deliveries").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["deliveries"], json!([]), "{}", r.text);
    let r = app.api_get("/activities").await;
    assert!(r.text.contains("deleted_idp_connection"), "{}", r.text);
    // Its token is gone with it.
    scim(&app, &okta, Method::GET, "/Users", None).await.assert_scim_error(401, None);
}

#[tokio::test]
async fn a_label_condition_may_name_a_connection_and_a_group_name_both_have_matches_in_each() {
    let app = TestApp::spawn().await;
    let admin = app.token_with_role("admin", Role::Admin).await;
    let (_, okta) = add_connection(&app, &admin, "Okta", 10).await;
    let (_, entra) = add_connection(&app, &admin, "Entra", 20).await;
    let jane = create_user(&app, &okta, "jane@example.com").await;
    let john = create_user(&app, &entra, "john@example.com").await;
    let jane_host = app.enroll_host("host-jane", Some("jane@example.com")).await;
    let john_host = app.enroll_host("host-john", Some("john@example.com")).await;
    for (token, member) in [(&okta, &jane), (&entra, &john)] {
        let group = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Engineering",
                           "members": [{"value": member}]});
        let r = scim(&app, token, Method::POST, "/Groups", Some(group)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let hosts_of = |criteria: Value| {
        let app = &app;
        async move {
            let r = app.api_post("/labels", json!({"name": format!("{criteria}"), "criteria": criteria})).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            let id = r.body["label"]["id"].as_i64().unwrap();
            let r = app.api_get(&format!("/labels/{id}/hosts")).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            let mut ids: Vec<i64> =
                r.body["hosts"].as_array().unwrap().iter().map(|h| h["id"].as_i64().unwrap()).collect();
            ids.sort_unstable();
            (ids, r.body.clone())
        }
    };
    // The name is in both connections: both groups' members.
    let (both, _) = hosts_of(json!({"vital": "end_user_idp_group", "value": "Engineering"})).await;
    assert_eq!(both, vec![jane_host, john_host]);
    let (entra_only, _) =
        hosts_of(json!({"vital": "end_user_idp_group", "value": "Engineering", "connection": "entra"})).await;
    assert_eq!(entra_only, vec![john_host]);
    let r = app.api_get("/labels").await;
    let saved = r.body["labels"].as_array().unwrap().iter().find(|l| l["criteria"]["connection"] == "entra").cloned();
    assert!(saved.is_some_and(|l| l["criteria"]["group_id"].is_string()), "resolved in Entra: {}", r.text);
    let r = app
        .api_post(
            "/labels",
            json!({"name": "bad", "criteria": {"vital": "end_user_idp_group", "value": "x", "connection": 7}}),
        )
        .await;
    assert_api_error(&r, 422, "criteria.connection");
}
