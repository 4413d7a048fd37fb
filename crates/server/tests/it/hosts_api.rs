//! The hosts JSON API (Fleet's shapes): upsert, batch, reads, filters, errors and roles.

use custodian_domain::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{API, Reply, TestApp, assert_api_error, enc, host_body, okta_user};

const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// Asserts a JSON API error body with this status (whatever it names).
fn assert_json_error(r: &Reply, status: u16) {
    assert_eq!(r.status.as_u16(), status, "unexpected status; body: {}", r.text);
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("application/json")), "not JSON: {}", r.text);
    assert!(r.body["message"].as_str().is_some_and(|m| !m.is_empty()), "no message: {}", r.text);
    assert!(r.body["errors"].is_array(), "no errors list: {}", r.text);
}

async fn count(app: &TestApp, query: &str) -> u64 {
    let r = app.api_get(&format!("/hosts/count?{query}")).await;
    assert_eq!(r.status, 200, "GET /hosts/count?{query}: {}", r.text);
    r.body["count"].as_u64().unwrap_or_else(|| panic!("{}", r.text))
}

/// A user with a department, created over SCIM; returns its id.
async fn user_in(app: &TestApp, user_name: &str, department: &str) -> String {
    let mut u = okta_user(user_name, "Test", "User");
    u["schemas"] = json!(["urn:ietf:params:scim:schemas:core:2.0:User", ENT]);
    u[ENT] = json!({"department": department});
    app.create_user_with(u).await["id"].as_str().unwrap().to_string()
}

async fn batch(app: &TestApp, hosts: Vec<Value>) -> Reply {
    app.api_post("/hosts/batch", json!({ "hosts": hosts })).await
}

#[tokio::test]
async fn upsert_creates_with_201_then_updates_the_same_uuid_with_200_keeping_its_id() {
    let app = TestApp::spawn().await;
    let r = app.api_post("/hosts", host_body("uuid-1", Some("jane@example.com"))).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("application/json")));
    let created = r.body["host"].clone();
    let id = created["id"].as_i64().unwrap();
    assert!(id > 0);
    assert_eq!(created["uuid"], "uuid-1");
    assert_eq!(created["hardware_serial"], "SER-uuid-1");
    assert_eq!(created["hostname"], "uuid-1.local");
    assert_eq!(created["computer_name"], "Mac of uuid-1");
    assert_eq!(created["display_name"], "Mac of uuid-1", "the computer name is the display name");
    assert_eq!(created["platform"], "darwin");
    assert_eq!(created["os_version"], "macOS 15.4");
    assert_eq!(created["hardware_model"], "MacBookPro18,3");
    assert_eq!(created["seen_time"], "2026-05-01T10:00:00Z");
    for k in ["created_at", "updated_at"] {
        assert!(chrono::DateTime::parse_from_rfc3339(created[k].as_str().unwrap()).is_ok(), "{k}: {created}");
    }
    assert_eq!(created["end_users"], json!([]));
    assert_eq!(created["idp_link"]["state"], "unlinked");
    assert_eq!(app.host(id).await, created, "what was created is what GET answers");

    let mut update = host_body("uuid-1", Some("jane@example.com"));
    update["hostname"] = json!("renamed.local");
    update["computer_name"] = json!("");
    update["os_version"] = json!("macOS 15.5");
    update["hardware_serial"] = json!("SER-NEW");
    update["seen_time"] = json!("2026-05-02T08:30:00+02:00");
    let r = app.api_post("/hosts", update).await;
    assert_eq!(r.status, 200, "an update is 200, not 201: {}", r.text);
    let updated = r.body["host"].clone();
    assert_eq!(updated["id"], id, "same uuid, same host");
    assert_eq!(updated["hostname"], "renamed.local");
    assert_eq!(updated["computer_name"], "");
    assert_eq!(updated["display_name"], "renamed.local", "no computer name: the hostname is shown");
    assert_eq!(updated["os_version"], "macOS 15.5");
    assert_eq!(updated["hardware_serial"], "SER-NEW");
    assert_eq!(updated["seen_time"], "2026-05-02T06:30:00Z", "normalised to UTC");
    assert_eq!(updated["created_at"], created["created_at"], "creation time is kept");
    let t = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    assert!(t(&updated["updated_at"]) >= t(&created["updated_at"]));
    assert_eq!(app.host(id).await, updated);
    assert_eq!(count(&app, "").await, 1);
    assert_eq!(app.host_ids("").await, vec![id]);
}

#[tokio::test]
async fn identifier_lookup_finds_a_host_by_uuid_serial_or_hostname() {
    let app = TestApp::spawn().await;
    let a = app.enroll_host("0A1B2C3D-0000-4000-8000-000000000001", None).await;
    let b = app.enroll_host("0A1B2C3D-0000-4000-8000-000000000002", None).await;
    for (identifier, want) in [
        ("0A1B2C3D-0000-4000-8000-000000000001".to_string(), a),
        ("SER-0A1B2C3D-0000-4000-8000-000000000002".to_string(), b),
        ("0A1B2C3D-0000-4000-8000-000000000001.local".to_string(), a),
    ] {
        let r = app.api_get(&format!("/hosts/identifier/{}", enc(&identifier))).await;
        assert_eq!(r.status, 200, "{identifier}: {}", r.text);
        assert_eq!(r.body["host"]["id"], want, "{identifier}: {}", r.text);
        assert_eq!(r.body["host"], app.host(want).await, "the same answer as host details");
    }
}

#[tokio::test]
async fn unknown_and_non_numeric_ids_are_404_json_errors() {
    let app = TestApp::spawn().await;
    let id = app.enroll_host("h1", None).await;
    let missing = id + 1000;
    for path in [
        format!("/hosts/{missing}"),
        format!("/hosts/{missing}/device_mapping"),
        format!("/hosts/{missing}/end_user_history"),
        "/hosts/identifier/no-such-host".to_string(),
        "/hosts/abc".to_string(),
        "/hosts/0".to_string(),
        "/hosts/-1".to_string(),
        "/hosts/1.5".to_string(),
        "/hosts/abc/device_mapping".to_string(),
        "/hosts/abc/end_user_history".to_string(),
    ] {
        let r = app.api_get(&path).await;
        assert_eq!(r.status, 404, "GET {path}: {}", r.text);
        assert_json_error(&r, 404);
    }
    assert_api_error(&app.api_get("/hosts/abc").await, 404, "id");
    assert_json_error(&app.api_delete(&format!("/hosts/{missing}")).await, 404);
    assert_json_error(&app.api_delete("/hosts/abc").await, 404);
    assert_json_error(&app.api_delete(&format!("/hosts/{missing}/device_mapping/idp")).await, 404);
    let r = app.api_put(&format!("/hosts/{missing}/device_mapping"), json!({"email": "a@b.c", "source": "idp"})).await;
    assert_json_error(&r, 404);
    assert!(app.api_get("/activities").await.body["activities"].as_array().unwrap().is_empty(), "nothing recorded");
}

#[tokio::test]
async fn deleted_host_is_404_everywhere_and_the_deletion_is_recorded() {
    let app = TestApp::spawn().await;
    app.create_user("jane@example.com").await;
    let id = app.enroll_host("h1", Some("jane@example.com")).await;
    let other = app.enroll_host("h2", Some("jane@example.com")).await;

    let r = app.api_delete(&format!("/hosts/{id}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_json_error(&app.api_get(&format!("/hosts/{id}")).await, 404);
    assert_json_error(&app.api_get("/hosts/identifier/h1").await, 404);
    assert_json_error(&app.api_get(&format!("/hosts/{id}/device_mapping")).await, 404);
    assert_json_error(&app.api_get(&format!("/hosts/{id}/end_user_history")).await, 404);
    assert_json_error(&app.api_delete(&format!("/hosts/{id}")).await, 404);
    assert_eq!(app.host_ids("").await, vec![other]);
    assert_eq!(count(&app, "").await, 1);
    assert_eq!(app.host_ids("idp_username=jane@example.com").await, vec![other]);

    let acts = app.api_get("/activities").await.body;
    let deleted: Vec<&Value> =
        acts["activities"].as_array().unwrap().iter().filter(|a| a["type"] == "deleted_host").collect();
    assert_eq!(deleted.len(), 1, "{acts}");
    assert_eq!(deleted[0]["details"]["host_id"], id);
    assert_eq!(deleted[0]["details"]["uuid"], "h1");

    // The uuid can enroll again, as a new host.
    let again = app.enroll_host("h1", None).await;
    assert_ne!(again, id);
}

#[tokio::test]
async fn list_pages_with_page_and_per_page() {
    let app = TestApp::spawn().await;
    let r = batch(&app, (0..25).map(|i| host_body(&format!("h{i:02}"), None)).collect()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let all: Vec<i64> = r.body["hosts"].as_array().unwrap().iter().map(|h| h["id"].as_i64().unwrap()).collect();
    assert_eq!(all.len(), 25);
    let mut sorted = all.clone();
    sorted.sort();

    assert_eq!(app.host_ids("").await, sorted, "default: every host (per_page 100), by id");
    assert_eq!(app.host_ids("page=0&per_page=10").await, sorted[0..10].to_vec());
    assert_eq!(app.host_ids("page=1&per_page=10").await, sorted[10..20].to_vec());
    assert_eq!(app.host_ids("page=2&per_page=10").await, sorted[20..25].to_vec());
    assert!(app.host_ids("page=3&per_page=10").await.is_empty());
    assert_eq!(app.host_ids("per_page=7").await, sorted[0..7].to_vec(), "page defaults to 0");
    assert_eq!(count(&app, "page=1&per_page=10").await, 25, "count ignores paging");
}

#[tokio::test]
async fn list_orders_by_order_key_and_order_direction() {
    let app = TestApp::spawn().await;
    app.create_user("zed@example.com").await;
    app.create_user("amy@example.com").await;
    app.create_user("max@example.com").await;
    let mut ids = Vec::new();
    for (uuid, hostname, serial, email) in [
        ("u1", "charlie", "S2", "amy@example.com"),
        ("u2", "alpha", "S3", "max@example.com"),
        ("u3", "bravo", "S1", "zed@example.com"),
    ] {
        let mut body = host_body(uuid, Some(email));
        body["hostname"] = json!(hostname);
        body["hardware_serial"] = json!(serial);
        ids.push(app.create_host(body).await["id"].as_i64().unwrap());
    }
    let [c, a, b] = [ids[0], ids[1], ids[2]];
    assert_eq!(app.host_ids("order_key=hostname").await, vec![a, b, c]);
    assert_eq!(app.host_ids("order_key=hostname&order_direction=asc").await, vec![a, b, c]);
    assert_eq!(app.host_ids("order_key=hostname&order_direction=desc").await, vec![c, b, a]);
    assert_eq!(app.host_ids("order_key=hardware_serial").await, vec![b, c, a]);
    assert_eq!(app.host_ids("order_key=idp_username").await, vec![c, a, b]);
    assert_eq!(app.host_ids("order_key=idp_username&order_direction=desc").await, vec![b, a, c]);
    assert_eq!(app.host_ids("order_key=id&order_direction=desc").await, vec![b, a, c]);
    assert_eq!(app.host_ids("order_key=hostname&order_direction=desc&page=1&per_page=2").await, vec![a]);
}

#[tokio::test]
async fn query_matches_hostname_serial_emails_and_idp_username_in_any_case() {
    let app = TestApp::spawn().await;
    let mut robert = okta_user("robert.smith@example.com", "Robert", "Smith");
    robert["emails"] = json!([{"primary": true, "value": "bob@example.com", "type": "work"}]);
    app.create_user_with(robert).await;
    let mut a = host_body("ua", Some("jane@example.com"));
    a["hostname"] = json!("design-mbp");
    a["hardware_serial"] = json!("C02XYZ");
    let a = app.create_host(a).await["id"].as_i64().unwrap();
    let mut b = host_body("ub", Some("bob@example.com"));
    b["hostname"] = json!("build-01");
    b["hardware_serial"] = json!("FVFABC");
    b["device_mapping"].as_array_mut().unwrap().push(json!({"email": "ops@example.com", "source": "custom"}));
    let b = app.create_host(b).await["id"].as_i64().unwrap();
    assert_eq!(app.host(b).await["idp_link"]["state"], "linked");

    for (q, want) in [
        ("DESIGN", vec![a]),
        ("fvfab", vec![b]),
        ("c02x", vec![a]),
        ("ops@", vec![b]),
        ("JANE@example", vec![a]),
        ("robert.smith", vec![b]),
        ("example.com", vec![a, b]),
        ("nothing-like-this", vec![]),
    ] {
        assert_eq!(app.host_ids(&format!("query={}", enc(q))).await, want, "query={q}");
        assert_eq!(count(&app, &format!("query={}", enc(q))).await, want.len() as u64, "count query={q}");
    }
}

#[tokio::test]
async fn idp_filters_select_hosts_by_username_group_department_and_activity_and_count_agrees() {
    let app = TestApp::spawn().await;
    let jane = user_in(&app, "jane@example.com", "Engineering").await;
    let john = user_in(&app, "john@example.com", "Sales").await;
    let ann = user_in(&app, "ann@example.com", "Sales").await;
    let carl = user_in(&app, "carl@example.com", "Sales").await;
    let backend = app.create_group_with("Backend", &[&jane]).await;
    app.create_group_with("Everyone", &[&backend, &john]).await;
    let sales = app.create_group_with("Sales Team", &[&john, &ann]).await;
    let h1 = app.enroll_host("h1", Some("jane@example.com")).await;
    let h2 = app.enroll_host("h2", Some("john@example.com")).await;
    let h3 = app.enroll_host("h3", Some("ann@example.com")).await;
    let h4 = app.enroll_host("h4", Some("nobody@example.com")).await;
    let h5 = app.enroll_host("h5", Some("carl@example.com")).await;
    let h6 = app.enroll_host("h6", None).await;
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                       "Operations": [{"op": "replace", "value": {"active": false}}]});
    assert_eq!(app.patch(&format!("/Users/{ann}"), patch).await.status, 200);
    assert_eq!(app.delete(&format!("/Users/{carl}")).await.status, 204);

    for (q, want) in [
        ("", vec![h1, h2, h3, h4, h5, h6]),
        ("idp_username=JANE%40example.com", vec![h1]),
        ("idp_username=nobody%40example.com", vec![]),
        ("idp_group=Backend", vec![h1]),
        ("idp_group=Everyone", vec![h1, h2]),
        ("idp_group=everyone", vec![h1, h2]),
        (&format!("idp_group={sales}"), vec![h2, h3]),
        ("idp_group=Sales%20Team", vec![h2, h3]),
        ("idp_group=No%20Such%20Group", vec![]),
        ("idp_department=Engineering", vec![h1]),
        ("idp_department=Sales", vec![h2, h3]),
        ("idp_active=false", vec![h3, h5]),
        ("idp_active=true", vec![h1, h2]),
        ("idp_group=Everyone&idp_department=Sales", vec![h2]),
        ("idp_group=Sales%20Team&idp_active=false", vec![h3]),
        ("idp_department=Sales&order_direction=desc", vec![h3, h2]),
    ] {
        assert_eq!(app.host_ids(q).await, want, "GET /hosts?{q}");
        assert_eq!(count(&app, q).await, want.len() as u64, "GET /hosts/count?{q}");
    }
}

#[tokio::test]
async fn batch_of_2000_hosts_applies_the_valid_ones_and_rejects_the_rest_line_by_line() {
    let app = TestApp::spawn().await;
    let jane = app.create_user("jane@example.com").await;
    let mut hosts: Vec<Value> =
        (0..2000).map(|i| host_body(&format!("batch-{i:04}"), Some(&format!("user{}@example.com", i % 50)))).collect();
    hosts[1]["device_mapping"] = json!([{"email": "jane@example.com", "source": "mdm_idp_accounts"}]);
    hosts[5]["device_mapping"] = json!([{"email": "x@example.com", "source": "ldap"}]);
    hosts[10].as_object_mut().unwrap().remove("uuid");
    hosts[20]["hostname"] = json!(42);
    hosts[30]["uuid"] = json!("batch-0000");
    hosts[40]["seen_time"] = json!("yesterday");

    let r = batch(&app, hosts.clone()).await;
    assert_eq!(r.status, 200, "{}", &r.text[..r.text.len().min(2000)]);
    assert_eq!(r.body["created"], 1995, "{}", &r.text[..500]);
    assert_eq!(r.body["updated"], 0);
    let results = r.body["hosts"].as_array().unwrap();
    assert_eq!(results.len(), 1995);
    for res in results {
        let index = res["index"].as_u64().unwrap() as usize;
        assert_eq!(res["uuid"], hosts[index]["uuid"], "{res}");
        assert_eq!(res["status"], "created", "{res}");
        assert!(res["id"].as_i64().is_some_and(|id| id > 0), "{res}");
    }
    let mut rejected: Vec<(u64, Vec<String>)> = r.body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rej| {
            let names = rej["errors"].as_array().unwrap().iter().map(|e| {
                assert!(e["reason"].as_str().is_some_and(|s| !s.is_empty()), "{rej}");
                e["name"].as_str().unwrap().to_string()
            });
            (rej["index"].as_u64().unwrap(), names.collect())
        })
        .collect();
    rejected.sort();
    let indexes: Vec<u64> = rejected.iter().map(|(i, _)| *i).collect();
    assert_eq!(indexes, vec![5, 10, 20, 30, 40], "{}", r.body["rejected"]);
    let names: Vec<Vec<String>> = rejected.iter().map(|(_, n)| n.clone()).collect();
    let one = |s: &str| vec![s.to_string()];
    assert_eq!(
        names[..5],
        [one("device_mapping[0].source"), one("uuid"), one("hostname"), one("uuid"), one("seen_time")]
    );
    let dup = r.body["rejected"].as_array().unwrap().iter().find(|x| x["index"] == 30).unwrap();
    assert_eq!(dup["uuid"], "batch-0000");

    // The valid ones are stored, and linked by the rules.
    assert_eq!(count(&app, "").await, 1995);
    let one = app.api_get("/hosts/identifier/batch-0001").await;
    assert_eq!(one.status, 200, "{}", one.text);
    assert_eq!(one.body["host"]["end_users"][0]["idp_id"], jane.as_str());
    let first = app.api_get("/hosts/identifier/batch-0000").await;
    assert_eq!(first.body["host"]["hostname"], "batch-0000.local", "the duplicate did not overwrite the first");
    for missing in ["batch-0005", "batch-0020", "batch-0040"] {
        assert_eq!(app.api_get(&format!("/hosts/identifier/{missing}")).await.status, 404, "{missing}");
    }

    // Sent again with one new host: updates and a creation.
    let mut again: Vec<Value> = hosts[100..200].to_vec();
    again.push(host_body("batch-new", None));
    let r = batch(&app, again).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!((r.body["created"].as_u64(), r.body["updated"].as_u64()), (Some(1), Some(100)));
    assert_eq!(r.body["hosts"][0]["status"], "updated");
    assert_eq!(r.body["hosts"][100]["status"], "created");
    assert_eq!(r.body["hosts"][100]["index"], 100);
    assert_eq!(r.body["rejected"], json!([]));
    assert_eq!(count(&app, "").await, 1996);
}

#[tokio::test]
async fn batch_entry_that_is_not_an_object_is_rejected_with_an_error_naming_it() {
    let app = TestApp::spawn().await;
    let r = batch(&app, vec![host_body("ok", None), json!("not an object"), json!(7)]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["created"], 1, "{}", r.text);
    let rejected = r.body["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2, "{}", r.text);
    for (rej, index) in rejected.iter().zip([1, 2]) {
        assert_eq!(rej["index"], index, "{rej}");
        let errors = rej["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{rej}");
        assert!(errors[0]["reason"].as_str().is_some_and(|s| !s.is_empty()), "{rej}");
        assert!(
            errors[0]["name"].as_str().is_some_and(|n| !n.is_empty()),
            "the error must name the entry (e.g. `hosts[{index}]`), not \"\": {rej}"
        );
    }
}

#[tokio::test]
async fn batch_without_a_host_list_or_with_too_many_hosts_is_422() {
    let app = TestApp::spawn().await;
    assert_api_error(&app.api_post("/hosts/batch", json!({})).await, 422, "hosts");
    assert_api_error(&app.api_post("/hosts/batch", json!({"hosts": "h1"})).await, 422, "hosts");
    let many: Vec<Value> = (0..10_001).map(|i| json!({"uuid": format!("u{i}")})).collect();
    assert_api_error(&app.api_post("/hosts/batch", json!({ "hosts": many })).await, 422, "hosts");
    assert_eq!(count(&app, "").await, 0);
    let r = app.api_post("/hosts/batch", json!({"hosts": []})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, json!({"created": 0, "updated": 0, "hosts": [], "rejected": []}));
}

#[tokio::test]
async fn single_upsert_validation_errors_are_422_naming_each_field() {
    let app = TestApp::spawn().await;
    let base = host_body("h1", Some("jane@example.com"));
    let with = |f: &dyn Fn(&mut Value)| {
        let mut b = base.clone();
        f(&mut b);
        b
    };
    let cases: Vec<(Value, &str)> = vec![
        (with(&|b| drop(b.as_object_mut().unwrap().remove("uuid"))), "uuid"),
        (with(&|b| b["uuid"] = json!("   ")), "uuid"),
        (with(&|b| b["uuid"] = json!(null)), "uuid"),
        (with(&|b| b["uuid"] = json!(123)), "uuid"),
        (with(&|b| b["hostname"] = json!(42)), "hostname"),
        (with(&|b| b["platform"] = json!(["darwin"])), "platform"),
        (with(&|b| b["device_mapping"] = json!([{"email": "a@b.c", "source": "ldap"}])), "device_mapping[0].source"),
        (
            with(&|b| {
                b["device_mapping"] = json!([{"email": "a@b.c", "source": "custom"}, {"email": 7, "source": "custom"}])
            }),
            "device_mapping[1].email",
        ),
        (with(&|b| b["device_mapping"] = json!([{"source": "custom"}])), "device_mapping[0].email"),
        (with(&|b| b["device_mapping"] = json!([{"email": "a@b.c"}])), "device_mapping[0].source"),
        (with(&|b| b["device_mapping"] = json!("jane@example.com")), "device_mapping"),
        (with(&|b| b["seen_time"] = json!("yesterday")), "seen_time"),
        (with(&|b| b["seen_time"] = json!(1714557600)), "seen_time"),
    ];
    for (body, field) in cases {
        let r = app.api_post("/hosts", body.clone()).await;
        assert_eq!(r.status, 422, "{body}: {}", r.text);
        assert_api_error(&r, 422, field);
        assert_eq!(r.body["message"], "Validation Failed", "{}", r.text);
    }
    // A value over its limit (in bytes) is a 400 naming it, with the other faults.
    let r = app.api_post("/hosts", with(&|b| b["hardware_serial"] = json!("\u{e9}".repeat(513)))).await;
    assert_api_error(&r, 400, "hardware_serial");
    assert_eq!(r.body["errors"], json!([{"name": "hardware_serial", "reason": "at most 1024 bytes"}]), "{}", r.text);
    // Several faults are all named at once.
    let r = app.api_post("/hosts", json!({"hostname": 1, "seen_time": "x"})).await;
    for field in ["uuid", "hostname", "seen_time"] {
        assert_api_error(&r, 422, field);
    }
    assert_eq!(count(&app, "").await, 0, "nothing stored");

    // The device-mapping endpoint names its fields too.
    let id = app.enroll_host("h1", None).await;
    for (body, field) in [
        (json!({"email": "a@b.c", "source": "mdm_idp_accounts"}), "source"),
        (json!({"email": "a@b.c", "source": 1}), "source"),
        (json!({"source": "idp"}), "email"),
        (json!({"email": "", "source": "idp"}), "email"),
        (json!({"email": ["a@b.c"], "source": "idp"}), "email"),
    ] {
        assert_api_error(&app.api_put(&format!("/hosts/{id}/device_mapping"), body).await, 422, field);
    }
    assert_eq!(app.api_get(&format!("/hosts/{id}/device_mapping")).await.body["device_mapping"], json!([]));
}

#[tokio::test]
async fn malformed_json_is_400_naming_the_body() {
    let app = TestApp::spawn().await;
    let id = app.enroll_host("h1", None).await;
    for (method, path) in [
        (Method::POST, format!("{API}/hosts")),
        (Method::POST, format!("{API}/hosts/batch")),
        (Method::PUT, format!("{API}/hosts/{id}/device_mapping")),
    ] {
        for raw in ["{\"uuid\": ", "not json", "[1, 2]", ""] {
            let r = app.send(method.clone(), &path, Some(("application/json", raw.to_string())), &[]).await;
            assert_eq!(r.status, 400, "{method} {path} {raw:?}: {}", r.text);
            assert_api_error(&r, 400, "body");
        }
    }
    assert_eq!(count(&app, "").await, 1);
}

#[tokio::test]
async fn bad_query_parameters_are_422_naming_the_parameter() {
    let app = TestApp::spawn().await;
    for (path, field) in [
        ("/hosts?per_page=abc", "per_page"),
        ("/hosts?page=-1", "page"),
        ("/hosts?page=1.5", "page"),
        ("/hosts?order_key=nope", "order_key"),
        ("/hosts?order_direction=sideways", "order_direction"),
        ("/hosts?idp_active=maybe", "idp_active"),
        ("/hosts/count?idp_active=maybe", "idp_active"),
        ("/hosts/count?per_page=abc", "per_page"),
        ("/activities?per_page=abc", "per_page"),
        ("/activities?page=x", "page"),
    ] {
        assert_api_error(&app.api_get(path).await, 422, field);
    }
    let r = app.api_get("/hosts?per_page=abc&order_key=nope").await;
    assert_api_error(&r, 422, "per_page");
    assert_api_error(&r, 422, "order_key");
}

#[tokio::test]
async fn no_or_bad_token_is_401_json_error_with_www_authenticate() {
    let app = TestApp::spawn().await;
    let id = app.enroll_host("h1", None).await;
    let requests: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("{API}/hosts"), None),
        (Method::GET, format!("{API}/hosts/count"), None),
        (Method::GET, format!("{API}/hosts/{id}"), None),
        (Method::GET, format!("{API}/hosts/identifier/h1"), None),
        (Method::GET, format!("{API}/hosts/{id}/device_mapping"), None),
        (Method::GET, format!("{API}/hosts/{id}/end_user_history"), None),
        (Method::GET, format!("{API}/activities"), None),
        (Method::POST, format!("{API}/hosts"), Some(host_body("h2", None))),
        (Method::POST, format!("{API}/hosts/batch"), Some(json!({"hosts": [host_body("h3", None)]}))),
        (Method::PUT, format!("{API}/hosts/{id}/device_mapping"), Some(json!({"email": "a@b.c", "source": "idp"}))),
        (Method::DELETE, format!("{API}/hosts/{id}/device_mapping/idp"), None),
        (Method::DELETE, format!("{API}/hosts/{id}"), None),
    ];
    for token in [None, Some("not-a-token")] {
        for (method, path, body) in &requests {
            let r = app.api_as(token, method.clone(), path, body.clone()).await;
            assert_json_error(&r, 401);
            assert!(
                r.header("www-authenticate").is_some_and(|h| h.starts_with("Bearer")),
                "{method} {path}: {:?}",
                r.headers
            );
        }
    }
    assert_eq!(app.host_ids("").await, vec![id], "nothing changed");
}

#[tokio::test]
async fn observer_reads_hosts_but_gets_403_on_writes_while_maintainer_and_admin_write() {
    let app = TestApp::spawn().await;
    let observer = app.token_with_role("viewer", Role::Observer).await;
    let admin = app.token_with_role("root", Role::Admin).await;
    app.create_user("jane@example.com").await;
    let id = app.enroll_host("h1", Some("jane@example.com")).await;

    for path in [
        format!("{API}/hosts"),
        format!("{API}/hosts/count"),
        format!("{API}/hosts/{id}"),
        format!("{API}/hosts/identifier/h1"),
        format!("{API}/hosts/{id}/device_mapping"),
        format!("{API}/hosts/{id}/end_user_history"),
        format!("{API}/activities"),
    ] {
        let r = app.api_as(Some(&observer), Method::GET, &path, None).await;
        assert_eq!(r.status, 200, "observer reads {path}: {}", r.text);
    }
    let before = app.host(id).await;
    for (method, path, body) in [
        (Method::POST, format!("{API}/hosts"), Some(host_body("h2", None))),
        (Method::POST, format!("{API}/hosts"), Some(host_body("h1", None))),
        (Method::POST, format!("{API}/hosts/batch"), Some(json!({"hosts": [host_body("h3", None)]}))),
        (Method::PUT, format!("{API}/hosts/{id}/device_mapping"), Some(json!({"email": "x@b.c", "source": "idp"}))),
        (Method::DELETE, format!("{API}/hosts/{id}/device_mapping/idp"), None),
        (Method::DELETE, format!("{API}/hosts/{id}"), None),
    ] {
        let r = app.api_as(Some(&observer), method.clone(), &path, body).await;
        assert_eq!(r.status, 403, "observer {method} {path}: {}", r.text);
        assert_json_error(&r, 403);
    }
    assert_eq!(app.host(id).await, before, "the observer changed nothing");
    assert_eq!(app.host_ids("").await, vec![id]);

    // The maintainer (the harness's token) and the admin write.
    for token in [app.token.clone(), admin] {
        let uuid = format!("by-{}", &token[..6]);
        let r = app.api_as(Some(&token), Method::POST, &format!("{API}/hosts"), Some(host_body(&uuid, None))).await;
        assert_eq!(r.status, 201, "{}", r.text);
        let new = r.body["host"]["id"].as_i64().unwrap();
        let r = app
            .api_as(
                Some(&token),
                Method::PUT,
                &format!("{API}/hosts/{new}/device_mapping"),
                Some(json!({"email": "jane@example.com", "source": "idp"})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["idp_link"]["state"], "linked");
        let r = app.api_as(Some(&token), Method::DELETE, &format!("{API}/hosts/{new}/device_mapping/idp"), None).await;
        assert!(r.status.is_success(), "{}", r.text);
        let r = app
            .api_as(
                Some(&token),
                Method::POST,
                &format!("{API}/hosts/batch"),
                Some(json!({"hosts": [host_body(&uuid, None)]})),
            )
            .await;
        assert_eq!(r.body["updated"], 1, "{}", r.text);
        let r = app.api_as(Some(&token), Method::DELETE, &format!("{API}/hosts/{new}"), None).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    assert_eq!(app.host_ids("").await, vec![id]);
}

#[tokio::test]
async fn odd_client_input_never_gets_a_500() {
    let app = TestApp::spawn().await;
    let id = app.enroll_host("h1", Some("jane@example.com")).await;
    for path in [
        "/hosts?page=1000000000&per_page=10000".to_string(),
        "/hosts?page=1000000001".to_string(),
        "/hosts?per_page=10001".to_string(),
        "/hosts?per_page=0".to_string(),
        "/hosts?per_page=99999999999999999999999".to_string(),
        format!("/hosts?query={}", enc("%_'\"\\;--")),
        format!("/hosts?query={}", enc("\u{0}")),
        format!("/hosts?query={}", enc("Jäne😀")),
        format!("/hosts?idp_group={}", enc("' OR 1=1 --")),
        format!("/hosts?idp_department={}&idp_username={}", enc("\u{0}"), enc("x")),
        "/hosts/99999999999999999999999".to_string(),
        format!("/hosts/identifier/{}", enc("a/b")),
        format!("/hosts/identifier/{}", enc("😀")),
        "/activities?page=1000000000&per_page=1000".to_string(),
        "/activities?per_page=1001".to_string(),
        "/activities?per_page=0".to_string(),
    ] {
        let r = app.api_get(&path).await;
        assert!(r.status.as_u16() < 500, "{path}: {} {}", r.status, r.text);
        assert!(r.body.is_object(), "{path}: not JSON: {}", r.text);
    }
    for body in [
        json!({"uuid": "x".repeat(256)}),
        json!({"uuid": "h\u{0}"}),
        json!({"uuid": "h2", "seen_time": "9999-12-31T23:59:59Z"}),
        json!({"uuid": "h3", "seen_time": "0000-01-01T00:00:00Z"}),
        json!({"uuid": "h4", "device_mapping": [{"email": "a b@c.d", "source": "custom"}]}),
        json!({"uuid": "h5", "device_mapping": [{"email": "x".repeat(400), "source": "custom"}]}),
        json!({"uuid": "h6", "device_mapping": [{"email": "a@b.c", "source": "custom"}, {"email": "a@b.c", "source": "custom"}]}),
        json!({"uuid": "h7", "hostname": "😀", "device_mapping": [null]}),
    ] {
        let r = app.api_post("/hosts", body.clone()).await;
        assert!(r.status.as_u16() < 500, "{body}: {} {}", r.status, r.text);
        assert!(r.body.is_object(), "{body}: not JSON: {}", r.text);
    }
    assert_eq!(app.host(id).await["idp_link"]["identity"], "jane@example.com");
}
