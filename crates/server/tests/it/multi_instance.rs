//! Two `custodian serve` processes on one database, as behind a load balancer: the
//! concurrency IdPs really produce, spread over both. Runs on the backend of this test
//! run (PostgreSQL in CI's second pass, SQLite otherwise — several processes may share
//! a SQLite file too).

use std::process::{Child, Command, Stdio};

use custodian_domain::Role;
use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{API, SCIM, TestApp, TestDb, host_body, okta_user, open_store};

const BIN: &str = env!("CARGO_BIN_EXE_custodian");

/// Two server processes on one fresh database, and a maintainer token both accept.
struct Cluster {
    bases: [String; 2],
    token: String,
    /// An admin's token, for the connections API.
    admin: String,
    client: reqwest::Client,
    children: Vec<Child>,
    _db: TestDb,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Cluster {
    async fn start() -> Cluster {
        let db = TestDb::fresh().await;
        let store = open_store(&db.url).await;
        let token = TestApp::create_token_in(&store, "okta", Role::Maintainer).await;
        let admin = TestApp::create_token_in(&store, "admin", Role::Admin).await;
        drop(store);
        let mut children = Vec::new();
        let mut bases = Vec::new();
        for _ in 0..2 {
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            children.push(
                Command::new(BIN)
                    .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--database", &db.url])
                    .env_remove("CUSTODIAN_DATABASE_URL")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
            );
            bases.push(format!("http://127.0.0.1:{port}"));
        }
        let client = reqwest::Client::new();
        for base in &bases {
            crate::support::wait_healthy(&client, base).await;
        }
        Cluster { bases: [bases[0].clone(), bases[1].clone()], token, admin, client, children, _db: db }
    }

    /// Sends to instance `i % 2`: requests alternate between the two, as a balancer would.
    async fn send(
        &self,
        i: usize,
        method: Method,
        path: &str,
        body: Option<Value>,
        if_match: Option<&str>,
    ) -> (StatusCode, Value) {
        self.send_as(&self.token, i, method, path, body, if_match).await
    }

    /// `send` with another bearer token.
    async fn send_as(
        &self,
        token: &str,
        i: usize,
        method: Method,
        path: &str,
        body: Option<Value>,
        if_match: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.bases[i % 2])).bearer_auth(token);
        if let Some(b) = body {
            // Each surface's own media type: the JSON API takes application/json only.
            let content_type = match custodian::errors::route_kind(path) {
                custodian::errors::RouteKind::Scim => "application/scim+json",
                _ => "application/json",
            };
            req = req.header("content-type", content_type).body(b.to_string());
        }
        if let Some(tag) = if_match {
            req = req.header("if-match", tag);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn create_user(&self, i: usize, user_name: &str) -> String {
        let (status, body) = self
            .send(i, Method::POST, &format!("{SCIM}/Users"), Some(okta_user(user_name, "Test", "User")), None)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_string()
    }
}

fn member_ids(group: &Value) -> Vec<String> {
    let mut ids: Vec<String> = group["members"]
        .as_array()
        .map(|a| a.iter().map(|m| m["value"].as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_clients_on_two_instances_patch_one_group_and_lose_nothing() {
    let cluster = Cluster::start().await;
    let mut users = Vec::new();
    for i in 0..51 {
        users.push(cluster.create_user(i, &format!("member{i}@example.com")).await);
    }
    let initial: Vec<Value> = users[..20].iter().map(|id| json!({"value": id})).collect();
    let (status, group) = cluster
        .send(
            0,
            Method::POST,
            &format!("{SCIM}/Groups"),
            Some(json!({"displayName": "Engineering", "members": initial})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    let group_id = group["id"].as_str().unwrap().to_string();

    // Clients 0..19 each remove one initial member; clients 20..49 each add their own
    // user and, all of them, user 50 (a duplicate add that must land once).
    let patches = (0..50).map(|i| {
        let op = if i < 20 {
            json!({"op": "remove", "path": format!("members[value eq \"{}\"]", users[i])})
        } else {
            json!({"op": "add", "path": "members", "value": [{"value": users[i]}, {"value": users[50]}]})
        };
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [op]});
        let cluster = &cluster;
        let path = format!("{SCIM}/Groups/{group_id}");
        async move { cluster.send(i, Method::PATCH, &path, Some(body), None).await }
    });
    for (status, body) in join_all(patches).await {
        assert!(status == StatusCode::OK || status == StatusCode::NO_CONTENT, "{status}: {body}");
    }

    let mut expected: Vec<String> = users[20..51].to_vec();
    expected.sort();
    for i in 0..2 {
        let (status, group) = cluster.send(i, Method::GET, &format!("{SCIM}/Groups/{group_id}"), None, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(member_ids(&group), expected, "instance {i} shows exactly the membership the operations imply");
    }
    // And each member's groups agree, seen from the user's side.
    let (_, user50) = cluster.send(1, Method::GET, &format!("{SCIM}/Users/{}", users[50]), None, None).await;
    assert_eq!(user50["groups"].as_array().map(Vec::len), Some(1), "{user50}");
    let (_, user0) = cluster.send(0, Method::GET, &format!("{SCIM}/Users/{}", users[0]), None, None).await;
    assert!(user0["groups"].as_array().is_none_or(Vec::is_empty), "{user0}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_user_name_posted_to_both_instances_at_once_is_created_once() {
    let cluster = Cluster::start().await;
    for round in 0..5 {
        let name = format!("twice{round}@example.com");
        let posts = (0..8).map(|i| {
            let cluster = &cluster;
            let body = okta_user(&name, "Same", "Name");
            async move { cluster.send(i, Method::POST, &format!("{SCIM}/Users"), Some(body), None).await }
        });
        let answers = join_all(posts).await;
        let created = answers.iter().filter(|(s, _)| *s == StatusCode::CREATED).count();
        assert_eq!(created, 1, "exactly one 201 in round {round}: {answers:?}");
        for (status, body) in answers.iter().filter(|(s, _)| *s != StatusCode::CREATED) {
            assert_eq!(*status, StatusCode::CONFLICT, "{body}");
            assert_eq!(body["scimType"], "uniqueness", "{body}");
        }
        let filter = crate::support::enc(&format!("userName eq \"{name}\""));
        let (_, list) = cluster.send(round, Method::GET, &format!("{SCIM}/Users?filter={filter}"), None, None).await;
        assert_eq!(list["totalResults"], 1, "{list}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_with_if_match_let_exactly_one_win_per_version() {
    let cluster = Cluster::start().await;
    let id = cluster.create_user(0, "contended@example.com").await;
    let path = format!("{SCIM}/Users/{id}");
    for round in 0..4 {
        let (_, current) = cluster.send(round, Method::GET, &path, None, None).await;
        let etag = current["meta"]["version"].as_str().unwrap().to_string();
        let writes = (0..10).map(|i| {
            let cluster = &cluster;
            let etag = etag.clone();
            let path = path.clone();
            async move {
                if i % 2 == 0 {
                    let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "replace", "path": "title", "value": format!("patch {round}.{i}")}]});
                    cluster.send(i, Method::PATCH, &path, Some(body), Some(&etag)).await
                } else {
                    let mut body = okta_user("contended@example.com", "Con", "Tended");
                    body["title"] = json!(format!("put {round}.{i}"));
                    cluster.send(i, Method::PUT, &path, Some(body), Some(&etag)).await
                }
            }
        });
        let answers = join_all(writes).await;
        let winners: Vec<&Value> = answers.iter().filter(|(s, _)| *s == StatusCode::OK).map(|(_, b)| b).collect();
        assert_eq!(winners.len(), 1, "exactly one write of version {etag} wins: {answers:?}");
        for (status, body) in answers.iter().filter(|(s, _)| *s != StatusCode::OK) {
            assert_eq!(*status, StatusCode::PRECONDITION_FAILED, "{body}");
        }
        let (_, after) = cluster.send(round + 1, Method::GET, &path, None, None).await;
        assert_eq!(after["title"], winners[0]["title"], "the stored state is the winner's");
        assert_ne!(after["meta"]["version"], json!(etag), "the winner made a new version");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn host_links_stay_consistent_while_users_and_hosts_arrive_on_both_instances() {
    let cluster = Cluster::start().await;
    // Each user and its host are written at the same moment, on different instances;
    // a third of the users are renamed meanwhile, and a group gains them all.
    let (_, group) = cluster
        .send(0, Method::POST, &format!("{SCIM}/Groups"), Some(json!({"displayName": "Fleet", "members": []})), None)
        .await;
    let group_id = group["id"].as_str().unwrap().to_string();
    let n = 40;
    let work = (0..n).map(|i| {
        let cluster = &cluster;
        let group_id = group_id.clone();
        async move {
            let email = format!("owner{i}@example.com");
            let user = async {
                let id = cluster.create_user(i, &email).await;
                let add = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "add", "path": "members", "value": [{"value": id}]}]});
                let (status, body) =
                    cluster.send(i + 1, Method::PATCH, &format!("{SCIM}/Groups/{group_id}"), Some(add), None).await;
                assert!(status.is_success(), "{body}");
                if i % 3 == 0 {
                    let rename = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "replace", "path": "name.givenName", "value": format!("Renamed{i}")}]});
                    let (status, body) =
                        cluster.send(i, Method::PATCH, &format!("{SCIM}/Users/{id}"), Some(rename), None).await;
                    assert!(status.is_success(), "{body}");
                }
                id
            };
            let host = async {
                let (status, body) = cluster
                    .send(
                        i + 1,
                        Method::POST,
                        &format!("{API}/hosts"),
                        Some(host_body(&format!("host-{i}"), Some(&email))),
                        None,
                    )
                    .await;
                assert!(status.is_success(), "{status}: {body}");
                body["host"]["id"].as_i64().unwrap()
            };
            tokio::join!(user, host)
        }
    });
    let pairs = join_all(work).await;
    for (i, (user_id, host_id)) in pairs.into_iter().enumerate() {
        let (status, body) = cluster.send(i, Method::GET, &format!("{API}/hosts/{host_id}"), None, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let end_users = body["host"]["end_users"].as_array().unwrap();
        assert_eq!(end_users.len(), 1, "host {i} is linked to its user: {body}");
        assert_eq!(end_users[0]["idp_id"], json!(user_id), "{body}");
        assert_eq!(end_users[0]["idp_groups"], json!(["Fleet"]), "{body}");
        let expected_name = if i % 3 == 0 { format!("Renamed{i} User") } else { "Test User".to_string() };
        assert_eq!(end_users[0]["idp_full_name"], json!(expected_name), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn priorities_and_users_changed_on_both_instances_at_once_leave_every_host_linked_by_the_rules() {
    let cluster = Cluster::start().await;
    let mut tokens = Vec::new();
    let mut ids = Vec::new();
    for (name, priority) in [("okta", 10), ("entra", 20)] {
        let (status, body) = cluster
            .send_as(
                &cluster.admin,
                0,
                Method::POST,
                &format!("{API}/idp/connections"),
                Some(json!({"name": name, "kind": "scim", "priority": priority})),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        tokens.push(body["token"].as_str().unwrap().to_string());
        ids.push(body["connection"]["id"].as_i64().unwrap());
    }
    let n = 30;
    let mut hosts = Vec::new();
    for i in 0..n {
        let body = host_body(&format!("host-{i}"), Some(&format!("owner{i}@example.com")));
        let (status, body) = cluster.send(i, Method::POST, &format!("{API}/hosts"), Some(body), None).await;
        assert!(status.is_success(), "{body}");
        hosts.push(body["host"]["id"].as_i64().unwrap());
    }
    // Both connections provision every owner, each on both instances, while okta deletes
    // every fifth one and an admin swaps the priorities back and forth on both instances.
    let provision = (0..n).map(|i| {
        let (cluster, tokens) = (&cluster, &tokens);
        async move {
            let email = format!("owner{i}@example.com");
            let mut created = Vec::new();
            for (c, token) in tokens.iter().enumerate() {
                let (status, body) = cluster
                    .send_as(
                        token,
                        i + c,
                        Method::POST,
                        &format!("{SCIM}/Users"),
                        Some(okta_user(&email, "T", "U")),
                        None,
                    )
                    .await;
                assert_eq!(status, StatusCode::CREATED, "{body}");
                created.push(body["id"].as_str().unwrap().to_string());
            }
            if i % 5 == 0 {
                let (status, body) = cluster
                    .send_as(&tokens[0], i + 1, Method::DELETE, &format!("{SCIM}/Users/{}", created[0]), None, None)
                    .await;
                assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
            }
            created
        }
    });
    let swaps = async {
        // Priorities are unique, so a swap takes three steps; the last round puts okta first.
        let rounds: [&[(usize, i64)]; 2] = [&[(0, 30), (1, 10), (0, 20)], &[(0, 5), (1, 20)]];
        let mut step = 0;
        for round in 0..4 {
            for &(which, priority) in rounds[round % 2] {
                let (status, body) = cluster
                    .send_as(
                        &cluster.admin,
                        step,
                        Method::PATCH,
                        &format!("{API}/idp/connections/{}", ids[which]),
                        Some(json!({"priority": priority})),
                        None,
                    )
                    .await;
                assert_eq!(status, StatusCode::OK, "{body}");
                step += 1;
            }
        }
    };
    let (users, ()) = tokio::join!(join_all(provision), swaps);
    // okta (priority 5) wins where it still has the owner; entra (20) everywhere else.
    for (i, host) in hosts.iter().enumerate() {
        let (status, body) = cluster.send(i, Method::GET, &format!("{API}/hosts/{host}"), None, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (connection, user) = if i % 5 == 0 { ("entra", &users[i][1]) } else { ("okta", &users[i][0]) };
        let end_user = &body["host"]["end_users"][0];
        assert_eq!(end_user["idp_connection"], connection, "host {i}: {body}");
        assert_eq!(end_user["idp_id"], json!(user), "host {i}: {body}");
    }
}
