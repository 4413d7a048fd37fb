//! Google Workspace connections against the fake Google (`custodian_google::fake`, which
//! verifies the signed assertion and pages like the Directory API): a first run of three
//! pages of users over two domains with a nested group, a host linking to a Google user,
//! suspension and removal reaching hosts and offboarding events, a no-change run that
//! writes nothing, the deletion guard, a failure on page 3 that changes nothing, a 429
//! retried, a bad delegation explained, the key never answered nor logged, and two
//! instances never running one connection at once.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use custodian::AppConfig;
use custodian::directory_sync::SyncSettings;
use custodian_domain::Role;
use custodian_google::fake::{CLIENT_ID, FakeGoogle, Fault, FaultAnswer, group, member, user};
use custodian_google::retry::RetryPolicy;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{API, TestApp, TestDb};
use custodian_domain::ListQuery;
use custodian_domain::connections::{ConnectionId, Scope};
use custodian_scim::schema::ResourceKind;

fn quick_sync() -> SyncSettings {
    SyncSettings {
        tick: Duration::from_millis(100),
        lease: Duration::from_secs(3),
        retry: RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(200),
            max_wait_per_run: Duration::from_secs(5),
        },
        request_timeout: Duration::from_millis(1500),
        run_timeout: Duration::from_secs(120),
    }
}

pub(crate) fn config() -> AppConfig {
    let limits = custodian::limits::Limits { rate_per_token: 0, ..custodian::limits::Limits::default() };
    AppConfig { limits, directory_sync: quick_sync(), ..AppConfig::default() }
}

/// A company of `n` users over two domains and three org units (500 to a page, so 1,200
/// users are three pages), with a nested group, a group of everyone and an outsider.
pub(crate) fn company(fake: &FakeGoogle, n: usize) {
    fake.with(|st| {
        for i in 0..n {
            let (domain, unit) = match i % 3 {
                0 => ("example.com", "/Engineering"),
                1 => ("example.com", "/Engineering/Contractors"),
                _ => ("subsidiary.example", "/Sales"),
            };
            let mut u = user(&format!("1{i:05}"), &format!("user{i}@{domain}"), "User", &format!("N{i}"), unit);
            u["organizations"] =
                json!([{"primary": true, "department": format!("Dept {}", i % 4), "title": "Engineer"}]);
            st.users.push(u);
        }
        st.groups.push(group("g1", "eng@example.com", "Engineering"));
        st.groups.push(group("g2", "platform@example.com", "Platform"));
        st.groups.push(group("g3", "all@example.com", "Everyone"));
        st.members.insert(
            "g1".into(),
            vec![member("g2", "platform@example.com", "GROUP"), member("100000", "user0@example.com", "USER")],
        );
        st.members.insert(
            "g2".into(),
            vec![member("100003", "user3@example.com", "USER"), member("999", "outsider@gmail.com", "USER")],
        );
        st.members.insert("g3".into(), vec![member("C03az79cb", "", "CUSTOMER")]);
    });
}

fn connection_body(fake: &FakeGoogle, extra: Value) -> Value {
    let mut google = json!({
        "service_account_key": fake.key_json(),
        "admin_email": "admin@example.com",
        "api_base_url": fake.base_url,
        "sync_interval_seconds": 86400
    });
    if let (Some(g), Some(e)) = (google.as_object_mut(), extra.as_object()) {
        g.extend(e.clone());
    }
    json!({"name": "google", "kind": "google_workspace", "google_workspace": google})
}

pub(crate) struct Google {
    pub(crate) app: TestApp,
    admin: String,
    id: i64,
}

impl Google {
    /// A server with a Google Workspace connection to `fake`, after its first run.
    async fn connect(fake: &FakeGoogle, extra: Value) -> (Google, Value) {
        Google::connect_with(fake, extra, config()).await
    }

    /// The same, on a server with this configuration.
    pub(crate) async fn connect_with(fake: &FakeGoogle, extra: Value, config: AppConfig) -> (Google, Value) {
        let app = TestApp::spawn_with(config).await;
        let admin = app.token_with_role("admin", Role::Admin).await;
        let r = app
            .api_as(Some(&admin), Method::POST, &format!("{API}/idp/connections"), Some(connection_body(fake, extra)))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert!(r.body.get("token").is_none(), "a directory sync has no SCIM token: {}", r.text);
        let id = r.body["connection"]["id"].as_i64().unwrap();
        let g = Google { app, admin, id };
        let first = g.finished(None).await;
        (g, first)
    }

    async fn runs(&self) -> Vec<Value> {
        let r = self.app.api_get(&format!("/idp/connections/{}/runs", self.id)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.body["runs"].as_array().unwrap().clone()
    }

    /// The run `id` (or the newest) once it has finished.
    async fn finished(&self, id: Option<i64>) -> Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let runs = self.runs().await;
            let run = match id {
                Some(id) => runs.iter().find(|r| r["id"] == id).cloned(),
                None => runs.first().cloned(),
            };
            if let Some(run) = run.filter(|r| r["status"] != "running") {
                return run;
            }
            assert!(Instant::now() < deadline, "the run did not finish: {runs:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `POST .../sync` as the maintainer, then the run once finished.
    pub(crate) async fn sync(&self, body: Value) -> Value {
        let r = self.app.api_post(&format!("/idp/connections/{}/sync", self.id), body).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        let id = r.body["run"]["id"].as_i64().unwrap();
        self.finished(Some(id)).await
    }

    /// The connection's resources matching a SCIM filter, rendered as SCIM answers them
    /// (an operator's SCIM token reads the connection `default`: the store reads this one).
    async fn list(&self, kind: ResourceKind, filter: Option<&str>) -> (u64, Vec<Value>) {
        let query = ListQuery {
            filter: filter.map(|f| custodian_scim::filter::parse_filter(kind, f).unwrap()),
            sort_by: None,
            sort_order: custodian_domain::SortOrder::default(),
            start_index: 1,
            count: 1000,
        };
        let page = self.app.store.scim_list(Scope::Connection(ConnectionId(self.id)), kind, &query).await.unwrap();
        let mut out = Vec::new();
        for record in page.records {
            let r = self.app.store.scim_get(Scope::All, kind, &record.id).await.unwrap();
            out.push(self.rendered(kind, &r.id).await.unwrap_or(r.doc));
        }
        (page.total_results, out)
    }

    /// A resource as `GET /Users/{id}` answers it, through the JSON API's view of any
    /// connection: the store's document with its id, groups and members.
    async fn rendered(&self, kind: ResourceKind, id: &str) -> Option<Value> {
        let record = self.app.store.scim_get(Scope::All, kind, id).await.ok()?;
        let mut doc = record.doc.clone();
        doc["id"] = id.into();
        doc["meta"] = json!({"version": record.version, "lastModified": record.last_modified.to_rfc3339()});
        match kind {
            ResourceKind::User => {
                let groups = self.app.store.groups_of(id).await.unwrap();
                doc["groups"] = groups
                    .iter()
                    .map(|g| json!({"value": g.id, "display": g.display, "type": if g.direct { "direct" } else { "indirect" }}))
                    .collect();
            }
            ResourceKind::Group => {
                let members = self.app.store.group_members(id).await.unwrap();
                doc["members"] = members.iter().map(|m| json!({"value": m.id, "display": m.display})).collect();
            }
        }
        Some(doc)
    }

    async fn user(&self, user_name: &str) -> Option<Value> {
        self.list(ResourceKind::User, Some(&format!("userName eq \"{user_name}\""))).await.1.into_iter().next()
    }

    async fn user_count(&self) -> u64 {
        self.list(ResourceKind::User, None).await.0
    }

    async fn activities(&self) -> Vec<Value> {
        let r = self.app.api_get("/activities?per_page=1000").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.body["activities"].as_array().unwrap().clone()
    }
}

fn counts(run: &Value) -> (u64, u64, u64, u64, u64) {
    let n = |k: &str| run[k].as_u64().unwrap_or_else(|| panic!("{k} in {run}"));
    (n("users_seen"), n("groups_seen"), n("created"), n("updated"), n("deleted"))
}

#[tokio::test]
async fn a_first_run_reads_three_pages_of_two_domains_with_a_nested_group_and_a_host_links_to_a_google_user() {
    let fake = FakeGoogle::start().await;
    company(&fake, 1200);
    let (g, run) = Google::connect(&fake, json!({})).await;
    assert_eq!(run["status"], "success", "{run}");
    assert_eq!(counts(&run), (1200, 3, 1203, 0, 0), "{run}");
    assert!(run["error"].is_null() && run["finished_at"].is_string(), "{run}");
    let users_pages = fake.with(|st| st.log.iter().filter(|l| l.path.ends_with("/users")).count());
    assert_eq!(users_pages, 3, "every page of users, no more");
    fake.with(|st| {
        let q = &st.log.iter().find(|l| l.path.ends_with("/users")).unwrap().query;
        assert_eq!(q.get("customer").map(String::as_str), Some("my_customer"), "the whole customer, every domain");
        assert_eq!(q.get("maxResults").map(String::as_str), Some("500"));
        assert_eq!(q.get("projection").map(String::as_str), Some("full"));
        assert_eq!(st.exchanges.len(), 1, "one token for the run");
    });

    // The second domain is there, with its Google id and organization.
    let u = g.user("user2@subsidiary.example").await.expect("a user of the second domain");
    assert_eq!(u["externalId"], "100002");
    assert_eq!(u["active"], true);
    assert_eq!(u["title"], "Engineer");
    assert_eq!(u["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"], "Dept 2");
    assert_eq!(u["urn:ietf:params:scim:schemas:extension:googleworkspace:2.0:User"]["orgUnitPath"], "/Sales");
    // Kept attributes are filterable like any other.
    let (sales, _) = g
        .list(
            ResourceKind::User,
            Some("urn:ietf:params:scim:schemas:extension:googleworkspace:2.0:User:orgUnitPath eq \"/Sales\""),
        )
        .await;
    assert_eq!(sales, 400);

    // Nesting: user3 is in Platform directly and in Engineering through Platform; the
    // outsider is left out; everyone is in "Everyone".
    let u3 = g.user("user3@example.com").await.unwrap();
    let mut groups: Vec<(String, String)> = u3["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["display"].as_str().unwrap().to_string(), m["type"].as_str().unwrap().to_string()))
        .collect();
    groups.sort();
    assert_eq!(
        groups,
        vec![
            ("Engineering".to_string(), "indirect".to_string()),
            ("Everyone".to_string(), "direct".to_string()),
            ("Platform".to_string(), "direct".to_string())
        ],
        "{u3}"
    );
    let (_, platform) = g.list(ResourceKind::Group, Some("displayName eq \"Platform\"")).await;
    let platform = &platform[0];
    assert_eq!(platform["externalId"], "g2");
    assert_eq!(platform["members"].as_array().unwrap().len(), 1, "the outsider is not a member: {platform}");

    // A host enrolled with a Google user's alias-free address links to that user.
    let host = g.app.enroll_host("mac-user2", Some("user2@subsidiary.example")).await;
    let h = g.app.host(host).await;
    assert_eq!(h["idp_link"]["state"], "linked", "{h}");
    assert_eq!(h["end_users"][0]["idp_username"], "user2@subsidiary.example", "{h}");
    assert_eq!(h["end_users"][0]["idp_connection"], "google", "{h}");

    // The connection says what it is, and its last request is its last run.
    let r = g.app.api_get(&format!("/idp/connections/{}", g.id)).await;
    let c = &r.body["connection"];
    assert_eq!(c["kind"], "google_workspace");
    assert_eq!(c["users"], 1200);
    assert_eq!(c["tokens"], json!([]));
    assert_eq!(c["last_request"]["status"], "success", "{c}");
    assert!(c["last_request"]["details"].as_str().unwrap().contains("1200 users"), "{c}");
    let google = &c["google_workspace"];
    assert_eq!(google["customer_id"], "my_customer");
    assert_eq!(google["org_unit_paths"], json!(["/"]));
    assert_eq!(google["sync_interval_seconds"], 86400);
    assert!(google.get("service_account_key").is_none(), "the maintainer does not see even the summary: {c}");
    let r = g.app.api_as(Some(&g.admin), Method::GET, &format!("{API}/idp/connections/{}", g.id), None).await;
    assert_eq!(
        r.body["connection"]["google_workspace"]["service_account_key"],
        json!({"client_email": custodian_google::fake::CLIENT_EMAIL, "private_key_id": fake.key_json()["private_key_id"]}),
        "admins see who the key is and which key, never the key"
    );
}

#[tokio::test]
async fn suspension_deactivates_removal_deletes_both_raise_events_and_a_run_without_change_writes_nothing() {
    let fake = FakeGoogle::start().await;
    company(&fake, 30);
    let (g, run) = Google::connect(&fake, json!({})).await;
    assert_eq!(counts(&run), (30, 3, 33, 0, 0), "{run}");
    let ada = g.app.enroll_host("mac-ada", Some("user4@example.com")).await;
    let bob = g.app.enroll_host("mac-bob", Some("user5@subsidiary.example")).await;
    assert_eq!(g.app.host(ada).await["idp_link"]["state"], "linked");

    fake.with(|st| {
        let u4 = st.users.iter_mut().find(|u| u["id"] == "100004").unwrap();
        u4["suspended"] = true.into();
    });
    let run = g.sync(json!({})).await;
    assert_eq!(run["status"], "success", "{run}");
    assert_eq!(counts(&run), (30, 3, 0, 1, 0), "{run}");
    assert_eq!(g.user("user4@example.com").await.unwrap()["active"], false);
    let h = g.app.host(ada).await;
    assert_eq!(h["end_users"][0]["idp_active"], false, "{h}");

    // 1 of 30 is under the guard's 10%. "Everyone" loses a member: updated.
    fake.with(|st| st.users.retain(|u| u["id"] != "100005"));
    let run = g.sync(json!({})).await;
    assert_eq!(counts(&run), (29, 3, 0, 1, 1), "{run}");
    assert!(g.user("user5@subsidiary.example").await.is_none());
    assert_eq!(g.app.host(bob).await["idp_link"]["state"], "user_deleted");

    let r = g.app.api_get("/webhooks/deliveries").await;
    let mut events: Vec<(String, String)> = r.body["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["event"].as_str().unwrap().to_string(),
                d["payload"]["user"]["idp_username"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    events.sort();
    assert_eq!(
        events,
        vec![
            ("user_deactivated".to_string(), "user4@example.com".to_string()),
            ("user_deleted".to_string(), "user5@subsidiary.example".to_string())
        ],
        "{}",
        r.text
    );

    // Unchanged: no write, no history, no event, no new version.
    let before = g.user("user4@example.com").await.unwrap();
    let activities = g.activities().await.len();
    let deliveries = r.body["deliveries"].as_array().unwrap().len();
    let run = g.sync(json!({})).await;
    assert_eq!(run["status"], "success", "{run}");
    assert_eq!(counts(&run), (29, 3, 0, 0, 0), "{run}");
    assert_eq!(g.user("user4@example.com").await.unwrap()["meta"], before["meta"], "same version and lastModified");
    assert_eq!(g.activities().await.len(), activities, "no activity");
    let r = g.app.api_get("/webhooks/deliveries").await;
    assert_eq!(r.body["deliveries"].as_array().unwrap().len(), deliveries);
}

#[tokio::test]
async fn the_deletion_guard_stops_an_empty_answer_and_a_large_removal_until_confirmed() {
    let fake = FakeGoogle::start().await;
    company(&fake, 20);
    let (g, _) = Google::connect(&fake, json!({})).await;
    assert_eq!(g.user_count().await, 20);

    let users = fake.with(|st| std::mem::take(&mut st.users));
    let run = g.sync(json!({})).await;
    assert_eq!(run["status"], "error", "{run}");
    let error = run["error"].as_str().unwrap();
    assert!(error.contains("no users at all") && error.contains("\"allow_deletions\": 20"), "{error}");
    assert_eq!((run["created"].as_u64(), run["deleted"].as_u64()), (Some(0), Some(0)));
    assert_eq!(g.user_count().await, 20, "nothing deleted");

    // More than 10%: 3 of 20.
    fake.with(|st| st.users = users.into_iter().skip(3).collect());
    let run = g.sync(json!({})).await;
    assert_eq!(run["status"], "error", "{run}");
    assert!(run["error"].as_str().unwrap().contains("would delete 3 of the connection's 20 users"), "{run}");
    assert_eq!(run["deletions_to_confirm"], 3, "{run}");
    assert_eq!(g.user_count().await, 20);
    // Confirming fewer than it would delete is not enough.
    let run = g.sync(json!({"allow_deletions": 2})).await;
    assert_eq!(run["status"], "error", "{run}");
    let run = g.sync(json!({"allow_deletions": 3})).await;
    assert_eq!(run["status"], "success", "{run}");
    assert_eq!(run["allow_deletions"], 3);
    assert_eq!(counts(&run).4, 3, "{run}");
    assert_eq!(g.user_count().await, 17);
    let r = g.app.api_post(&format!("/idp/connections/{}/sync", g.id), json!({"allow_deletions": -1})).await;
    crate::support::assert_api_error(&r, 422, "allow_deletions");
}

#[tokio::test]
async fn a_failure_on_page_three_changes_nothing_and_a_429_is_retried() {
    let fake = FakeGoogle::start().await;
    company(&fake, 1200);
    let (g, _) = Google::connect(&fake, json!({})).await;
    // Changes on pages 1 and 3; page 3 keeps failing.
    fake.with(|st| {
        st.users[0]["name"]["givenName"] = "Renamed".into();
        st.users[1100]["suspended"] = true.into();
        st.faults.push(Fault {
            path: "/users".into(),
            page: Some(2),
            times: 100,
            answer: FaultAnswer::Status { status: 500, reason: "backendError".into(), retry_after: None },
        });
    });
    let run = g.sync(json!({})).await;
    assert_eq!(run["status"], "error", "{run}");
    assert!(run["error"].as_str().unwrap().contains("attempts"), "{run}");
    assert_eq!(g.user("user0@example.com").await.unwrap()["name"]["givenName"], "User", "page 1's change not applied");
    assert_eq!(g.user("user1100@subsidiary.example").await.unwrap()["active"], true);
    let r = g.app.api_get(&format!("/idp/connections/{}", g.id)).await;
    assert_eq!(r.body["connection"]["last_request"]["status"], "error", "{}", r.text);

    // A timeout on a page fails the run the same way.
    fake.with(|st| {
        st.faults.clear();
        st.faults.push(Fault {
            path: "/users".into(),
            page: Some(2),
            times: 100,
            answer: FaultAnswer::Delay(Duration::from_secs(3)),
        });
    });
    let run = g.sync(json!({})).await;
    assert_eq!(run["status"], "error", "{run}");
    assert_eq!(g.user("user0@example.com").await.unwrap()["name"]["givenName"], "User");

    // Rate limited once, with Retry-After: retried, then applied.
    fake.with(|st| {
        st.faults.clear();
        st.faults.push(Fault {
            path: "/users".into(),
            page: Some(2),
            times: 1,
            answer: FaultAnswer::Status { status: 429, reason: "rateLimitExceeded".into(), retry_after: Some(0) },
        });
        st.log.clear();
    });
    let run = g.sync(json!({})).await;
    assert_eq!(run["status"], "success", "{run}");
    assert_eq!(counts(&run).3, 2, "{run}");
    assert_eq!(fake.with(|st| st.log.iter().filter(|l| l.path.ends_with("/users")).count()), 4, "page 3 twice");
    assert_eq!(g.user("user0@example.com").await.unwrap()["name"]["givenName"], "Renamed");
}

#[tokio::test]
async fn a_bad_delegation_is_a_configuration_error_an_admin_can_act_on_and_is_not_retried() {
    let fake = FakeGoogle::start().await;
    company(&fake, 5);
    fake.with(|st| st.delegated = false);
    let (g, run) = Google::connect(&fake, json!({})).await;
    assert_eq!(run["status"], "error", "{run}");
    let error = run["error"].as_str().unwrap();
    assert!(error.contains(CLIENT_ID), "names the client id to enter: {error}");
    assert!(error.contains("admin.directory.user.readonly"), "names the scopes: {error}");
    assert_eq!(fake.with(|st| st.exchanges.len() + st.log.len()), 0, "one refused exchange, not retried");
    assert_eq!(g.user_count().await, 0);

    // Fixed: the next run works.
    fake.with(|st| st.delegated = true);
    let run = g.sync(json!({})).await;
    assert_eq!(run["status"], "success", "{run}");

    // Not an admin.
    let (other, run) = Google::connect(&fake, json!({"admin_email": "someone@example.com"})).await;
    assert_eq!(run["status"], "error", "{run}");
    assert!(run["error"].as_str().unwrap().contains("someone@example.com"), "{run}");
    drop(other);
}

#[tokio::test]
async fn creating_a_google_workspace_connection_checks_every_field_and_never_quotes_the_key() {
    let fake = FakeGoogle::start().await;
    let app = TestApp::spawn_with(config()).await;
    let admin = app.token_with_role("admin", Role::Admin).await;
    let post = |body: Value| {
        let (app, admin) = (&app, &admin);
        async move { app.api_as(Some(admin), Method::POST, &format!("{API}/idp/connections"), Some(body)).await }
    };
    let r = post(json!({"name": "google", "kind": "google_workspace"})).await;
    crate::support::assert_api_error(&r, 422, "google_workspace");
    let mut body = connection_body(&fake, json!({}));
    body["google_workspace"].as_object_mut().unwrap().remove("admin_email");
    crate::support::assert_api_error(&post(body).await, 422, "google_workspace.admin_email");
    let mut broken = fake.key_json();
    let pem = broken["private_key"].as_str().unwrap().to_string();
    broken["private_key"] = pem.replace("MII", "XXX").into();
    let r = post(connection_body(&fake, json!({"service_account_key": broken}))).await;
    crate::support::assert_api_error(&r, 422, "google_workspace.service_account_key");
    let body_line = pem.lines().nth(3).unwrap();
    assert!(!r.text.contains(body_line), "the error quotes no part of the key: {}", r.text);
    let r = post(connection_body(&fake, json!({"sync_interval_seconds": 0, "org_unit_paths": ["Sales"]}))).await;
    crate::support::assert_api_error(&r, 422, "google_workspace.sync_interval_seconds");
    crate::support::assert_api_error(&r, 422, "google_workspace.org_unit_paths");
    let r = post(connection_body(&fake, json!({"unknown": 1}))).await;
    crate::support::assert_api_error(&r, 422, "google_workspace.unknown");
    let mut scim = connection_body(&fake, json!({}));
    scim["kind"] = "scim".into();
    crate::support::assert_api_error(&post(scim).await, 422, "google_workspace");
    // Only admins add one.
    let r = app.api_post("/idp/connections", connection_body(&fake, json!({}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(r.text.contains("only admins") && r.text.contains("maintainer"), "{}", r.text);

    let r = post(connection_body(&fake, json!({"org_unit_paths": ["/Sales"]}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert!(!r.text.contains(body_line), "the key is not answered back");
    let id = r.body["connection"]["id"].as_i64().unwrap();
    // No SCIM tokens for it, and SCIM never writes into it.
    let r =
        app.api_as(Some(&admin), Method::POST, &format!("{API}/idp/connections/{id}/tokens"), Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert!(r.text.contains("has no SCIM tokens"), "{}", r.text);
    let r = app.api_post("/idp/connections/1/sync", json!({})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "a SCIM connection has no sync: {}", r.text);
    assert!(r.text.contains("has no directory sync"), "{}", r.text);
    let r = app.post("/Users", json!({"userName": "scim@example.com"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = app.api_get(&format!("/idp/connections/{id}")).await;
    assert_eq!(r.body["connection"]["users"], 0, "the operator's token wrote to default: {}", r.text);
    let r = app.api_get("/idp/connections/999/runs").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn two_instances_never_run_one_connection_at_once() {
    let fake = FakeGoogle::start().await;
    company(&fake, 600);
    let (g, _) = Google::connect(&fake, json!({})).await;
    // A second instance on the same database, with its own scheduler.
    let second = custodian::App::new(g.app.store.clone(), config());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base2 = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { second.serve(listener, std::future::pending()).await });
    crate::support::wait_healthy(&g.app.client, &base2).await;
    // Slow pages keep the next run going while both are asked.
    fake.with(|st| {
        st.faults.push(Fault {
            path: "/users".into(),
            page: Some(1),
            times: 1,
            answer: FaultAnswer::Delay(Duration::from_millis(1000)),
        });
        st.log.clear();
    });
    let ask = |base: String| {
        let client = g.app.client.clone();
        let token = g.app.token.clone();
        let id = g.id;
        async move {
            let r = client
                .post(format!("{base}{API}/idp/connections/{id}/sync"))
                .bearer_auth(token)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::ACCEPTED);
            r.json::<Value>().await.unwrap()["run"]["id"].as_i64().unwrap()
        }
    };
    let (a, b) = tokio::join!(ask(g.app.base.clone()), ask(base2.clone()));
    assert_eq!(a, b, "the second asked got the run in progress");
    let run = g.finished(Some(a)).await;
    assert_eq!(run["status"], "success", "{run}");
    // The request that found it busy runs next, once; never two at once.
    let deadline = Instant::now() + Duration::from_secs(30);
    while g.runs().await.len() < 3 {
        assert!(Instant::now() < deadline, "the queued request did not run");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let third = g.finished(None).await;
    assert_eq!(third["status"], "success", "{third}");
    let runs = g.runs().await;
    for pair in runs.windows(2) {
        let (newer, older) = (&pair[0], &pair[1]);
        assert!(
            newer["started_at"].as_str().unwrap() >= older["finished_at"].as_str().unwrap(),
            "runs overlap: {runs:?}"
        );
    }
    // Every page of users was read once per run (2 runs since the log was cleared).
    let pages = fake.with(|st| st.log.iter().filter(|l| l.path.ends_with("/users")).count());
    assert_eq!(pages, 4, "two runs of two pages");
}

/// An instance of its own runtime (its own store, scheduler and runs), so that stopping
/// the runtime stops everything it was doing, as a killed process would.
fn instance(url: String, config: AppConfig) -> (tokio::runtime::Runtime, tokio::sync::oneshot::Receiver<String>) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    rt.spawn(async move {
        let store = crate::support::open_store(&url).await;
        let app = custodian::App::new(store, config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _ = tx.send(format!("http://{}", listener.local_addr().unwrap()));
        app.serve(listener, std::future::pending()).await.unwrap();
    });
    (rt, rx)
}

#[tokio::test]
async fn an_instance_that_stops_mid_run_applies_nothing_and_another_takes_over_after_the_lease() {
    let fake = FakeGoogle::start().await;
    company(&fake, 600);
    let db = TestDb::fresh().await;
    let store = crate::support::open_store(&db.url).await;
    let token = TestApp::create_token_in(&store, "admin", Role::Admin).await;
    let client = reqwest::Client::new();
    // The first instance's run hangs on page 2 of the users; the instance stops there.
    fake.with(|st| {
        st.faults.push(Fault {
            path: "/users".into(),
            page: Some(1),
            times: 1,
            answer: FaultAnswer::Delay(Duration::from_secs(30)),
        })
    });
    let slow = AppConfig {
        directory_sync: SyncSettings { request_timeout: Duration::from_secs(60), ..quick_sync() },
        ..config()
    };
    let (first, base) = instance(db.url.clone(), slow);
    let base = base.await.unwrap();
    crate::support::wait_healthy(&client, &base).await;
    let r = client
        .post(format!("{base}{API}/idp/connections"))
        .bearer_auth(&token)
        .json(&connection_body(&fake, json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = r.json::<Value>().await.unwrap()["connection"]["id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while fake.with(|st| st.log.iter().filter(|l| l.path.ends_with("/users")).count()) < 2 {
        assert!(Instant::now() < deadline, "the first run did not reach page 2");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.shutdown_background();

    let (second, base2) = instance(db.url.clone(), config());
    let base2 = base2.await.unwrap();
    crate::support::wait_healthy(&client, &base2).await;
    let runs = || {
        let (client, token, base2) = (client.clone(), token.clone(), base2.clone());
        async move {
            let r =
                client.get(format!("{base2}{API}/idp/connections/{id}/runs")).bearer_auth(token).send().await.unwrap();
            r.json::<Value>().await.unwrap()["runs"].as_array().unwrap().clone()
        }
    };
    let list = runs().await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["status"], "running", "the stopped run holds its lease until it passes");
    let deadline = Instant::now() + Duration::from_secs(60);
    let list = loop {
        let list = runs().await;
        if list.iter().any(|r| r["status"] == "success") {
            break list;
        }
        assert!(Instant::now() < deadline, "no instance took over: {list:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let users = store.scim_count(Scope::Connection(ConnectionId(id)), ResourceKind::User).await.unwrap();
    assert_eq!(users, 600);
    let statuses: Vec<&str> = list.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, vec!["success", "error"], "{list:?}");
    assert!(list[1]["error"].as_str().unwrap().contains("abandoned"), "{list:?}");
    assert_eq!(list[1]["created"], 0);
    second.shutdown_background();
}

#[tokio::test]
async fn the_service_account_key_never_reaches_a_response_or_a_log_line() {
    const BIN: &str = env!("CARGO_BIN_EXE_custodian");
    let fake = FakeGoogle::start().await;
    company(&fake, 10);
    let db = TestDb::fresh().await;
    let cli = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .args(["--database", &db.url])
            .env("CUSTODIAN_LOG", "trace")
            .env_remove("CUSTODIAN_DATABASE_URL")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let mut logs = String::new();
    logs.push_str(&cli(&["migrate"]).1);
    let (token, err) = cli(&["user", "create", "--api-only", "--name", "root", "--role", "admin"]);
    logs.push_str(&err);
    let token = token.trim().to_string();
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("key.json");
    std::fs::write(&key_path, fake.key_json().to_string()).unwrap();
    // The CLI adds one connection from the key file, the API another.
    let (out, err) = cli(&[
        "idp",
        "add",
        "google-cli",
        "--kind",
        "google-workspace",
        "--key-file",
        key_path.to_str().unwrap(),
        "--admin-email",
        "admin@example.com",
        "--api-base-url",
        &fake.base_url,
        "--org-unit-path",
        "/Sales",
    ]);
    assert!(out.is_empty(), "nothing on stdout: {out}");
    assert!(err.contains("Created Google Workspace connection 'google-cli'"), "{err}");
    logs.push_str(&err);

    let log_path = dir.path().join("server.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--database", &db.url])
        .env("CUSTODIAN_LOG", "trace")
        .env_remove("CUSTODIAN_DATABASE_URL")
        .env_remove("CUSTODIAN_LOG_FORMAT")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()))
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    crate::support::wait_healthy(&client, &base).await;
    let mut bodies = String::new();
    let r = client
        .post(format!("{base}{API}/idp/connections"))
        .bearer_auth(&token)
        .json(&json!({"name": "google-api", "kind": "google_workspace", "google_workspace": {
            "service_account_key": fake.key_json().to_string(), "admin_email": "admin@example.com",
            "api_base_url": fake.base_url}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    bodies.push_str(&r.text().await.unwrap());
    // A failing run too: its error is logged.
    fake.with(|st| st.granted_scopes.truncate(1));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = client.get(format!("{base}{API}/idp/connections")).bearer_auth(&token).send().await.unwrap();
        let text = list.text().await.unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        let done = v["connections"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["kind"] == "google_workspace")
            .all(|c| !c["last_request"].is_null());
        bodies.push_str(&text);
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "the runs did not finish: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for path in ["/metrics", "/api/openapi.json"] {
        bodies.push_str(&client.get(format!("{base}{path}")).send().await.unwrap().text().await.unwrap());
    }
    let _ = Command::new("kill").arg("-TERM").arg(server.id().to_string()).status();
    let _ = server.wait();
    logs.push_str(&std::fs::read_to_string(&log_path).unwrap());
    assert!(logs.contains("directory sync run"), "the runs were logged: {logs}");
    let key = fake.key_json();
    let pem = key["private_key"].as_str().unwrap();
    for line in pem.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!logs.contains(line), "a line of the private key in the logs");
        assert!(!bodies.contains(line), "a line of the private key in a response");
    }
    assert!(!logs.contains("ya29.") && !bodies.contains("ya29."), "an access token leaked");
}

#[tokio::test]
async fn an_admin_rotates_the_key_and_changes_settings_and_the_next_run_uses_them() {
    let fake = FakeGoogle::start().await;
    company(&fake, 12);
    let (g, run) = Google::connect(&fake, json!({})).await;
    assert_eq!(run["status"], "success", "{run}");
    let patch = |body: Value| {
        let (app, admin, id) = (&g.app, g.admin.clone(), g.id);
        async move { app.api_as(Some(&admin), Method::PATCH, &format!("{API}/idp/connections/{id}"), Some(body)).await }
    };
    // A setting alone: the key is kept.
    let r =
        patch(json!({"google_workspace": {"sync_interval_seconds": 3600, "org_unit_paths": ["/Engineering"]}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let google = &r.body["connection"]["google_workspace"];
    assert_eq!(
        (google["sync_interval_seconds"].as_u64(), google["org_unit_paths"].clone()),
        (Some(3600), json!(["/Engineering"]))
    );
    assert_eq!(google["admin_email"], "admin@example.com", "a left-out field keeps its value");
    assert_eq!(google["service_account_key"]["private_key_id"], fake.key_json()["private_key_id"]);
    // Narrowing the scope drops the Sales users: the guard asks first.
    let run = g.sync(json!({})).await;
    assert_eq!(run["deletions_to_confirm"], 4, "{run}");
    let run = g.sync(json!({"allow_deletions": 4})).await;
    assert_eq!(run["status"], "success", "{run}");
    assert_eq!(counts(&run).0, 8, "only /Engineering and its sub-units: {run}");
    assert_eq!(g.user_count().await, 8);

    // The key rotated to another service account (another Google, here).
    let other = FakeGoogle::start().await;
    company(&other, 3);
    let mut new_key = other.key_json();
    new_key["private_key_id"] = "0123456789abcdef0123456789abcdef01234567".into();
    let r = patch(json!({"google_workspace": {"service_account_key": new_key.clone(), "api_base_url": other.base_url,
        "org_unit_paths": ["/"]}}))
    .await;
    // A key whose id Google does not know: its runs fail until the right key is given.
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["connection"]["google_workspace"]["service_account_key"]["private_key_id"],
        new_key["private_key_id"]
    );
    assert!(!r.text.contains(new_key["private_key"].as_str().unwrap().lines().nth(2).unwrap()));
    let run = g.sync(json!({})).await;
    assert_eq!(run["status"], "error", "Google refuses a key it does not know: {run}");
    assert!(run["error"].as_str().unwrap().contains("signature"), "{run}");
    let r = patch(json!({"google_workspace": {"service_account_key": other.key_json()}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let run = g.sync(json!({"allow_deletions": 8})).await;
    assert_eq!(run["status"], "success", "{run}");
    assert_eq!(counts(&run).0, 3, "the other directory: {run}");

    // Checked like a creation; only admins; only for this kind.
    let r = patch(json!({"google_workspace": {"admin_email": "nobody"}})).await;
    crate::support::assert_api_error(&r, 422, "google_workspace.admin_email");
    let r = g
        .app
        .api_as(
            Some(&g.app.token),
            Method::PATCH,
            &format!("{API}/idp/connections/{}", g.id),
            Some(json!({"google_workspace": {"sync_interval_seconds": 60}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(r.text.contains("only admins") && r.text.contains("maintainer"), "{}", r.text);
    let r = g
        .app
        .api_as(
            Some(&g.admin),
            Method::PATCH,
            &format!("{API}/idp/connections/1"),
            Some(json!({"google_workspace": {"sync_interval_seconds": 60}})),
        )
        .await;
    crate::support::assert_api_error(&r, 422, "google_workspace");
}
