//! The OpenAPI document at `/api/openapi.json`: complete (every JSON API route), strict
//! (non-optional fields required, no undocumented fields) and true (real responses
//! validate against the schemas it references).

use std::collections::{BTreeMap, BTreeSet};

use custodian_domain::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Reply, TestApp, host_body, okta_user};

/// Every route of the JSON API under `/api/v1/fleet` except `scim/*`, as api/mod.rs
/// mounts them: (method, path template).
const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v1/fleet/hosts"),
    ("post", "/api/v1/fleet/hosts"),
    ("post", "/api/v1/fleet/hosts/batch"),
    ("get", "/api/v1/fleet/hosts/count"),
    ("get", "/api/v1/fleet/hosts/identifier/{identifier}"),
    ("get", "/api/v1/fleet/hosts/{id}"),
    ("delete", "/api/v1/fleet/hosts/{id}"),
    ("get", "/api/v1/fleet/hosts/{id}/device_mapping"),
    ("put", "/api/v1/fleet/hosts/{id}/device_mapping"),
    ("delete", "/api/v1/fleet/hosts/{id}/device_mapping/idp"),
    ("get", "/api/v1/fleet/hosts/{id}/end_user_history"),
    ("get", "/api/v1/fleet/activities"),
    ("post", "/api/v1/fleet/hosts/{id}/render"),
    ("get", "/api/v1/fleet/labels"),
    ("post", "/api/v1/fleet/labels"),
    ("get", "/api/v1/fleet/labels/{id}"),
    ("patch", "/api/v1/fleet/labels/{id}"),
    ("delete", "/api/v1/fleet/labels/{id}"),
    ("get", "/api/v1/fleet/labels/{id}/hosts"),
    ("post", "/api/v1/fleet/labels/{id}/render"),
    ("get", "/api/v1/fleet/labels/automatic"),
    ("post", "/api/v1/fleet/labels/automatic"),
    ("delete", "/api/v1/fleet/labels/automatic/{id}"),
    ("get", "/api/v1/fleet/webhooks/deliveries"),
    ("get", "/api/v1/fleet/idp/connections"),
    ("post", "/api/v1/fleet/idp/connections"),
    ("get", "/api/v1/fleet/idp/connections/{id}"),
    ("patch", "/api/v1/fleet/idp/connections/{id}"),
    ("delete", "/api/v1/fleet/idp/connections/{id}"),
    ("post", "/api/v1/fleet/idp/connections/{id}/tokens"),
    ("delete", "/api/v1/fleet/idp/connections/{id}/tokens/{token_id}"),
    ("get", "/api/v1/fleet/idp/connections/{id}/requests"),
    ("post", "/api/v1/fleet/idp/connections/{id}/sync"),
    ("get", "/api/v1/fleet/idp/connections/{id}/runs"),
];

const HTTP_METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

async fn document(app: &TestApp) -> Value {
    let r = app.api_as(None, Method::GET, "/api/openapi.json", None).await;
    assert_eq!(r.status, 200, "the document needs no token: {}", r.text);
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("application/json")), "{:?}", r.headers);
    r.body
}

/// Every (method, path) the document describes.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, _) in item.as_object().unwrap() {
            if HTTP_METHODS.contains(&method.as_str()) {
                ops.insert((method.clone(), path.clone()));
            }
        }
    }
    ops
}

/// Closes every documented object schema (`additionalProperties: false`) so that a field
/// the document does not describe fails validation; free-form objects stay open.
fn closed(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            for v in map.values_mut() {
                closed(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(closed),
        _ => {}
    }
}

/// Every `$ref` in a value.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r.clone());
            }
            map.values().for_each(|x| refs(x, out));
        }
        Value::Array(items) => items.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

/// Breaks a copy of a real body in one way.
type Breaker = Box<dyn Fn(&mut Value)>;

struct Spec {
    doc: Value,
    components: Value,
}

impl Spec {
    fn new(doc: Value) -> Spec {
        let mut components = doc["components"].clone();
        closed(&mut components);
        Spec { doc, components }
    }

    /// The documented response of an operation for a status (`None` when undocumented).
    fn response(&self, method: &str, path: &str, status: u16) -> Option<&Value> {
        let op = self.doc["paths"].get(path)?.get(method)?;
        op["responses"].get(status.to_string()).or_else(|| op["responses"].get("default"))
    }

    /// A validator for a schema of the document, its internal references resolved.
    fn validator(&self, schema: &Value) -> jsonschema::Validator {
        let mut schema = schema.clone();
        closed(&mut schema);
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.components,
            "allOf": [schema],
        });
        jsonschema::validator_for(&root).unwrap_or_else(|e| panic!("the document's schema does not compile: {e}"))
    }

    fn errors(&self, schema: &Value, body: &Value) -> Vec<String> {
        let v = self.validator(schema);
        v.iter_errors(body).map(|e| format!("{e} (at {})", e.instance_path())).collect()
    }

    /// Asserts that a real response is documented for its status and that its JSON body
    /// validates against the documented schema.
    fn check(&self, method: &str, path: &str, r: &Reply) {
        let status = r.status.as_u16();
        let response = self.response(method, path, status).unwrap_or_else(|| {
            panic!("{method} {path} answered {status}, which the document does not describe: {}", r.text)
        });
        let schema = response["content"]["application/json"]["schema"].clone();
        if r.text.is_empty() {
            assert!(schema.is_null(), "{method} {path} {status}: documented with a body, answered none");
            return;
        }
        assert!(
            !schema.is_null(),
            "{method} {path} {status}: answered a JSON body the document does not describe: {}",
            r.text
        );
        let errors = self.errors(&schema, &r.body);
        assert!(errors.is_empty(), "{method} {path} {status} does not match {schema}: {errors:#?}\nbody: {}", r.text);
    }
}

#[tokio::test]
async fn document_is_openapi_3_served_without_auth_and_lists_every_hosts_and_activities_path() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{}", doc["openapi"]);
    assert!(doc["info"]["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(doc["info"]["version"].is_string());
    let paths: BTreeSet<&str> = doc["paths"].as_object().unwrap().keys().map(String::as_str).collect();
    for path in [
        "/api/v1/fleet/hosts",
        "/api/v1/fleet/hosts/batch",
        "/api/v1/fleet/hosts/count",
        "/api/v1/fleet/hosts/identifier/{identifier}",
        "/api/v1/fleet/hosts/{id}",
        "/api/v1/fleet/hosts/{id}/device_mapping",
        "/api/v1/fleet/hosts/{id}/device_mapping/idp",
        "/api/v1/fleet/hosts/{id}/end_user_history",
        "/api/v1/fleet/activities",
    ] {
        assert!(paths.contains(path), "{path} missing from {paths:?}");
    }
    assert!(!paths.iter().any(|p| p.contains("/scim")), "SCIM describes itself: {paths:?}");
    // Bearer auth is described, and applies.
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["type"], "http");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"].as_str().map(str::to_lowercase),
        Some("bearer".into())
    );
    assert!(
        doc["security"].as_array().is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some())),
        "{}",
        doc["security"]
    );
    // The same document on every request.
    assert_eq!(document(&app).await, doc);
}

#[tokio::test]
async fn every_json_api_route_is_in_the_document_and_every_documented_operation_is_served() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let ops = operations(&doc);
    let want: BTreeSet<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    let missing: Vec<_> = want.difference(&ops).collect();
    assert!(missing.is_empty(), "routes the document lacks: {missing:?}");
    let extra: Vec<_> = ops.difference(&want).collect();
    assert!(extra.is_empty(), "operations the test does not know (add them to ROUTES): {extra:?}");

    // Each documented operation exists on the server and asks for a token, as `security` says.
    for (method, path) in &ops {
        let url = path.replace("{id}", "1").replace("{identifier}", "h1");
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let r = app.api_as(None, m, &url, None).await;
        assert_eq!(r.status, 401, "{method} {url}: the documented operation is not served as documented: {}", r.text);
    }
    // Path parameters are declared.
    for (method, path) in &ops {
        let params = doc["paths"][path][method]["parameters"].as_array().cloned().unwrap_or_default();
        for name in ["id", "identifier"] {
            if path.contains(&format!("{{{name}}}")) {
                assert!(
                    params.iter().any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true),
                    "{method} {path}: path parameter {name} not declared: {params:?}"
                );
            }
        }
    }
}

#[tokio::test]
async fn operation_ids_are_unique() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (method, path) in operations(&doc) {
        if let Some(id) = doc["paths"][&path][&method]["operationId"].as_str() {
            seen.entry(id.to_string()).or_default().push(format!("{method} {path}"));
        }
    }
    let dups: Vec<_> = seen.iter().filter(|(_, ops)| ops.len() > 1).collect();
    // OpenAPI 3.1 §4.8.10: "The id MUST be unique among all operations described in the API."
    assert!(dups.is_empty(), "duplicate operationIds: {dups:?}");
}

#[tokio::test]
async fn main_schemas_exist_resolve_and_require_their_non_optional_fields() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in &all {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("not an internal ref: {r}"));
        assert!(schemas.contains_key(name), "{r} does not resolve");
    }
    for (name, required) in [
        ("HostResponse", &["host"][..]),
        (
            "HostBody",
            &[
                "id",
                "uuid",
                "hardware_serial",
                "hostname",
                "computer_name",
                "display_name",
                "platform",
                "os_version",
                "hardware_model",
                "created_at",
                "updated_at",
                "end_users",
                "idp_link",
            ][..],
        ),
        (
            "EndUserBody",
            &["idp_id", "idp_username", "idp_full_name", "idp_groups", "idp_department", "other_emails"][..],
        ),
        ("EmailBody", &["email", "source"][..]),
        ("IdpLinkBody", &["state", "candidates", "detail"][..]),
        ("HostListResponse", &["hosts"][..]),
        ("CountResponse", &["count"][..]),
        ("DeviceMappingResponse", &["host_id", "device_mapping", "idp_link"][..]),
        ("HistoryResponse", &["host_id", "history"][..]),
        ("OwnershipBody", &["idp_id", "idp_username", "linked_at", "link_cause"][..]),
        ("ActivitiesResponse", &["activities", "meta"][..]),
        ("ActivityBody", &["id", "created_at", "actor_full_name", "type", "details"][..]),
        ("PageMeta", &["has_next_results", "has_previous_results"][..]),
        ("BatchResponse", &["created", "updated", "hosts", "rejected"][..]),
        ("BatchHostResult", &["index", "uuid", "id", "status"][..]),
        ("BatchRejection", &["index", "errors"][..]),
        ("ErrorBody", &["message", "errors"][..]),
        ("FieldError", &["name", "reason"][..]),
    ] {
        let s = schemas.get(name).unwrap_or_else(|| panic!("schema {name} missing"));
        assert_eq!(s["type"], "object", "{name}: {s}");
        let have: BTreeSet<&str> = s["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        for field in required {
            assert!(have.contains(field), "{name}.{field} is not required: {s}");
            assert!(s["properties"].get(*field).is_some(), "{name}.{field} is not described: {s}");
        }
    }
    // The fields that may be null say so.
    let end_user = &schemas["EndUserBody"]["properties"];
    for field in ["idp_info_updated_at", "idp_active"] {
        assert!(end_user[field]["type"].as_array().is_some_and(|t| t.contains(&json!("null"))), "{field}: {end_user}");
    }
}

#[tokio::test]
async fn real_responses_validate_against_the_documented_schemas() {
    let app = TestApp::spawn().await;
    let spec = Spec::new(document(&app).await);
    let host_path = "/api/v1/fleet/hosts/{id}";

    // Data of every kind: linked (with groups, department, other emails), deactivated,
    // ambiguous, unlinked with only a custom email, deleted user, no identity.
    let mut jane = okta_user("jane@example.com", "Jane", "Doe");
    jane["schemas"] = json!([
        "urn:ietf:params:scim:schemas:core:2.0:User",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    ]);
    jane["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"] = json!({"department": "Engineering"});
    let jane = app.create_user_with(jane).await["id"].as_str().unwrap().to_string();
    let backend = app.create_group_with("Backend", &[&jane]).await;
    app.create_group_with("Everyone", &[&backend]).await;
    for n in ["a", "b"] {
        let mut u = okta_user(&format!("{n}@example.com"), n, "Doe");
        u["emails"] = json!([{"value": format!("{n}@example.com"), "primary": true}, {"value": "shared@example.com"}]);
        app.create_user_with(u).await;
    }
    let carl = app.create_user("carl@example.com").await;

    let r = app.api_post("/hosts", host_body("h1", Some("jane@example.com"))).await;
    spec.check("post", "/api/v1/fleet/hosts", &r);
    assert_eq!(r.status, 201);
    let id = r.body["host"]["id"].as_i64().unwrap();
    let r = app.api_post("/hosts", host_body("h1", Some("jane@example.com"))).await;
    assert_eq!(r.status, 200);
    spec.check("post", "/api/v1/fleet/hosts", &r);
    let r = app
        .api_put(&format!("/hosts/{id}/device_mapping"), json!({"email": "jane@home.example", "source": "custom"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    spec.check("put", "/api/v1/fleet/hosts/{id}/device_mapping", &r);
    let r = app
        .api_put(&format!("/hosts/{id}/device_mapping"), json!({"email": "jane@example.com", "source": "idp"}))
        .await;
    spec.check("put", "/api/v1/fleet/hosts/{id}/device_mapping", &r);

    let r = app
        .api_post(
            "/hosts/batch",
            json!({"hosts": [
                host_body("amb", Some("shared@example.com")),
                {"uuid": "custom-only", "device_mapping": [{"email": "x@example.com", "source": "custom"}]},
                host_body("carl", Some("carl@example.com")),
                host_body("none", None),
                host_body("waiting", Some("nobody@example.com")),
                host_body("h1", Some("jane@example.com")),
                {"uuid": "bad", "device_mapping": [{"email": "x@example.com", "source": "ldap"}]},
                {"hostname": "no uuid"},
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["rejected"].as_array().unwrap().len(), 2, "{}", r.text);
    spec.check("post", "/api/v1/fleet/hosts/batch", &r);
    assert_eq!(app.delete(&format!("/Users/{carl}")).await.status, 204);

    let r = app.api_get(&format!("/hosts/{id}")).await;
    assert_eq!(r.body["host"]["end_users"][0]["idp_groups"], json!(["Backend", "Everyone"]));
    spec.check("get", host_path, &r);
    let r = app.api_get("/hosts/identifier/custom-only").await;
    assert_eq!(r.body["host"]["end_users"][0]["idp_active"], Value::Null, "an end user without IdP user: {}", r.text);
    spec.check("get", "/api/v1/fleet/hosts/identifier/{identifier}", &r);
    let r = app.api_get("/hosts").await;
    assert_eq!(r.body["hosts"].as_array().unwrap().len(), 6, "{}", r.text);
    let states: BTreeSet<&str> =
        r.body["hosts"].as_array().unwrap().iter().map(|h| h["idp_link"]["state"].as_str().unwrap()).collect();
    assert_eq!(states, BTreeSet::from(["linked", "ambiguous", "unlinked", "user_deleted", "no_identity"]));
    spec.check("get", "/api/v1/fleet/hosts", &r);
    spec.check("get", "/api/v1/fleet/hosts", &app.api_get("/hosts?idp_group=Everyone&order_key=hostname").await);
    spec.check("get", "/api/v1/fleet/hosts/count", &app.api_get("/hosts/count?idp_active=false").await);
    spec.check(
        "get",
        "/api/v1/fleet/hosts/{id}/device_mapping",
        &app.api_get(&format!("/hosts/{id}/device_mapping")).await,
    );
    let carl_host = app.api_get("/hosts/identifier/carl").await.body["host"]["id"].as_i64().unwrap();
    let r = app.api_get(&format!("/hosts/{carl_host}/end_user_history")).await;
    assert!(r.body["history"][0]["unlinked_at"].is_string(), "a closed entry: {}", r.text);
    spec.check("get", "/api/v1/fleet/hosts/{id}/end_user_history", &r);
    let r = app.api_get("/activities?per_page=2").await;
    assert_eq!(r.body["meta"]["has_next_results"], true);
    spec.check("get", "/api/v1/fleet/activities", &r);
    spec.check("get", "/api/v1/fleet/activities", &app.api_get("/activities?per_page=1000").await);
    let r = app.api_delete(&format!("/hosts/{id}/device_mapping/idp")).await;
    spec.check("delete", "/api/v1/fleet/hosts/{id}/device_mapping/idp", &r);

    // Automatic labels: created, existing, listed, errors and stopped.
    let r = app.api_post("/labels/automatic", json!({"source": "idp_groups"})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    spec.check("post", "/api/v1/fleet/labels/automatic", &r);
    let source = r.body["automatic_labels"]["id"].as_i64().unwrap();
    let r = app.api_post("/labels/automatic", json!({"source": "idp_groups"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    spec.check("post", "/api/v1/fleet/labels/automatic", &r);
    spec.check(
        "post",
        "/api/v1/fleet/labels/automatic",
        &app.api_post("/labels/automatic", json!({"source": "x"})).await,
    );
    spec.check("get", "/api/v1/fleet/labels/automatic", &app.api_get("/labels/automatic").await);
    let r = app.api_get("/labels").await;
    assert!(r.body["labels"].as_array().unwrap().iter().any(|l| l["label_type"] == "automatic"), "{}", r.text);
    spec.check("get", "/api/v1/fleet/labels", &r);
    spec.check(
        "delete",
        "/api/v1/fleet/labels/automatic/{id}",
        &app.api_delete(&format!("/labels/automatic/{source}")).await,
    );
    spec.check("delete", "/api/v1/fleet/labels/automatic/{id}", &app.api_delete("/labels/automatic/999999").await);

    // Errors the operations document.
    let r = app.api_post("/hosts", json!({"hostname": 5})).await;
    assert_eq!(r.status, 422);
    spec.check("post", "/api/v1/fleet/hosts", &r);
    spec.check("get", "/api/v1/fleet/hosts", &app.api_get("/hosts?per_page=abc").await);
    spec.check("post", "/api/v1/fleet/hosts/batch", &app.api_post("/hosts/batch", json!({})).await);
    spec.check(
        "put",
        "/api/v1/fleet/hosts/{id}/device_mapping",
        &app.api_put(&format!("/hosts/{id}/device_mapping"), json!({"email": "x@y.z", "source": "ldap"})).await,
    );
    spec.check("get", host_path, &app.api_get("/hosts/999999").await);
    spec.check("get", "/api/v1/fleet/hosts/identifier/{identifier}", &app.api_get("/hosts/identifier/nope").await);
    spec.check(
        "get",
        "/api/v1/fleet/hosts/{id}/end_user_history",
        &app.api_get("/hosts/999999/end_user_history").await,
    );
    spec.check("get", "/api/v1/fleet/activities", &app.api_get("/activities?per_page=abc").await);

    // The schemas are strict enough to fail: broken copies of real bodies are refused.
    let host = app.api_get(&format!("/hosts/{id}")).await.body;
    let schema = spec.response("get", host_path, 200).unwrap()["content"]["application/json"]["schema"].clone();
    assert!(spec.errors(&schema, &host).is_empty());
    let broken: [(&str, Breaker); 6] = [
        ("a required field missing", Box::new(|h| drop(h["host"].as_object_mut().unwrap().remove("idp_link")))),
        ("a wrong type", Box::new(|h| h["host"]["id"] = json!("1"))),
        ("an undocumented field", Box::new(|h| h["host"]["surprise"] = json!(1))),
        (
            "an end user field missing",
            Box::new(|h| drop(h["host"]["end_users"][0].as_object_mut().unwrap().remove("idp_username"))),
        ),
        ("a group that is not a string", Box::new(|h| h["host"]["end_users"][0]["idp_groups"] = json!([1]))),
        ("an email without source", Box::new(|h| h["host"]["end_users"][0]["other_emails"] = json!([{"email": "x"}]))),
    ];
    for (what, f) in broken {
        let mut b = host.clone();
        f(&mut b);
        assert!(!spec.errors(&schema, &b).is_empty(), "a host body with {what} passed validation: {b}");
    }
}

#[tokio::test]
async fn every_status_the_api_answers_is_documented_with_its_json_body() {
    let app = TestApp::spawn().await;
    let spec = Spec::new(document(&app).await);
    let observer = app.token_with_role("viewer", Role::Observer).await;
    let id = app.enroll_host("h1", None).await;
    let mut undocumented = Vec::new();
    let mut record = |method: &str, path: &str, r: Reply| {
        let status = r.status.as_u16();
        match spec.response(method, path, status) {
            None => undocumented.push(format!("{method} {path} → {status}")),
            Some(resp) => {
                let schema = resp["content"]["application/json"]["schema"].clone();
                if !r.text.is_empty() && schema.is_null() {
                    undocumented.push(format!("{method} {path} → {status} with a body the document does not describe"));
                } else if !schema.is_null() {
                    let errors = spec.errors(&schema, &r.body);
                    if !errors.is_empty() {
                        undocumented.push(format!("{method} {path} → {status}: {errors:?}"));
                    }
                }
            }
        }
    };
    let url = |p: &str| p.replace("{id}", &id.to_string()).replace("{identifier}", "h1");

    // 401 on every operation.
    for (method, path) in ROUTES {
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        record(method, path, app.api_as(None, m, &url(path), None).await);
    }
    // 403 on every write for an observer; 400 on every malformed body.
    for (method, path, body) in [
        ("post", "/api/v1/fleet/hosts", json!(host_body("h2", None))),
        ("post", "/api/v1/fleet/hosts/batch", json!({"hosts": []})),
        ("put", "/api/v1/fleet/hosts/{id}/device_mapping", json!({"email": "a@b.c", "source": "custom"})),
        ("delete", "/api/v1/fleet/hosts/{id}/device_mapping/idp", Value::Null),
        ("delete", "/api/v1/fleet/hosts/{id}", Value::Null),
    ] {
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let b = (!body.is_null()).then_some(body);
        record(method, path, app.api_as(Some(&observer), m.clone(), &url(path), b.clone()).await);
        if b.is_some() {
            let r = app.send(m, &url(path), Some(("application/json", "{".to_string())), &[]).await;
            record(method, path, r);
        }
    }
    // Bad query parameters on the count; unknown hosts on writes.
    record("get", "/api/v1/fleet/hosts/count", app.api_get("/hosts/count?idp_active=maybe").await);
    record(
        "put",
        "/api/v1/fleet/hosts/{id}/device_mapping",
        app.api_put("/hosts/999999/device_mapping", json!({"email": "a@b.c", "source": "custom"})).await,
    );
    // A deletion's answer.
    record("delete", "/api/v1/fleet/hosts/{id}", app.api_delete(&format!("/hosts/{id}")).await);

    assert!(undocumented.is_empty(), "answers the document does not describe:\n{}", undocumented.join("\n"));
}

/// The documented parameter `name` of an operation.
fn parameter<'a>(doc: &'a Value, method: &str, path: &str, name: &str) -> &'a Value {
    doc["paths"][path][method]["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("{method} {path} does not document {name}"))
}

/// The inline request body schema of an operation.
fn request_schema<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    &doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
}

#[tokio::test]
async fn limits_in_the_document_are_the_handlers_constants() {
    use custodian::api::{activities, hosts, labels, render, webhooks};
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    for (path, max) in [
        ("/api/v1/fleet/hosts", hosts::MAX_PER_PAGE),
        ("/api/v1/fleet/hosts/count", hosts::MAX_PER_PAGE),
        ("/api/v1/fleet/labels/{id}/hosts", hosts::MAX_PER_PAGE),
        ("/api/v1/fleet/activities", activities::MAX_PER_PAGE),
        ("/api/v1/fleet/webhooks/deliveries", webhooks::MAX_PER_PAGE),
    ] {
        let p = parameter(&doc, "get", path, "per_page");
        assert_eq!(p["schema"]["maximum"], json!(max), "{path}: {p}");
        assert_eq!(parameter(&doc, "get", path, "page")["schema"]["maximum"], json!(custodian::api::extract::MAX_PAGE));
    }
    let p = parameter(&doc, "post", "/api/v1/fleet/labels/{id}/render", "per_page");
    assert_eq!(p["schema"]["maximum"], json!(labels::MAX_RENDER_HOSTS), "{p}");

    // The maximum is accepted, one more refused naming the parameter.
    for (path, max) in [("/hosts", hosts::MAX_PER_PAGE), ("/activities", activities::MAX_PER_PAGE)] {
        assert_eq!(app.api_get(&format!("{path}?per_page={max}")).await.status, 200);
        let r = app.api_get(&format!("{path}?per_page={}", max + 1)).await;
        assert_eq!((r.status.as_u16(), &r.body["errors"][0]["name"]), (422, &json!("per_page")), "{}", r.text);
    }

    // A host: uuid required, text fields as long as the handler takes (in bytes, and as
    // many characters at most), sources listed.
    use custodian_domain::limits::{NAME_MAX_BYTES, TEXT_MAX_BYTES};
    let limit_of = |schema: &Value| (schema["maxLength"].clone(), schema["x-max-bytes"].clone());
    let name_limit = (json!(NAME_MAX_BYTES), json!(NAME_MAX_BYTES));
    let host = request_schema(&doc, "post", "/api/v1/fleet/hosts");
    assert_eq!(host["required"], json!(["uuid"]), "{host}");
    for field in hosts::HOST_TEXT_FIELDS {
        assert_eq!(limit_of(&host["properties"][field.name]), name_limit, "{}: {host}", field.name);
    }
    let mapping = &host["properties"]["device_mapping"]["items"];
    assert_eq!(mapping["required"], json!(["email", "source"]), "{mapping}");
    assert_eq!(limit_of(&mapping["properties"]["email"]), name_limit, "{mapping}");
    assert_eq!(mapping["properties"]["source"]["enum"], json!(hosts::HOST_SOURCES));
    let batch = request_schema(&doc, "post", "/api/v1/fleet/hosts/batch");
    assert_eq!(batch["properties"]["hosts"]["maxItems"], json!(hosts::MAX_BATCH), "{batch}");
    let put = request_schema(&doc, "put", "/api/v1/fleet/hosts/{id}/device_mapping");
    assert_eq!(put["required"], json!(["email"]), "{put}");
    let label = request_schema(&doc, "post", "/api/v1/fleet/labels");
    assert_eq!(label["required"], json!(["name", "criteria"]), "{label}");
    assert_eq!(limit_of(&label["properties"]["name"]), (json!(labels::MAX_NAME), json!(NAME_MAX_BYTES)));
    let description = &label["properties"]["description"];
    assert_eq!(limit_of(description), (json!(TEXT_MAX_BYTES), json!(TEXT_MAX_BYTES)), "{description}");
    assert_eq!(label["additionalProperties"], false, "unknown label fields are refused: {label}");
    assert!(request_schema(&doc, "patch", "/api/v1/fleet/labels/{id}")["required"].is_null());
    let template = &request_schema(&doc, "post", "/api/v1/fleet/hosts/{id}/render")["properties"]["template"];
    assert_eq!(limit_of(template), (json!(render::MAX_TEMPLATE), json!(render::MAX_TEMPLATE)), "{template}");
}

#[tokio::test]
async fn an_empty_query_parameter_is_documented_and_answered_as_absent() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let mut query_params = 0;
    for (method, path) in operations(&doc) {
        for p in doc["paths"][&path][&method]["parameters"].as_array().cloned().unwrap_or_default() {
            if p["in"] == "query" {
                query_params += 1;
                assert_eq!(p["allowEmptyValue"], true, "{method} {path}: {p}");
                assert_eq!(p["required"], false, "{method} {path}: {p}");
            }
        }
    }
    assert!(query_params > 20, "{query_params}");
    app.enroll_host("h1", None).await;
    app.enroll_host("h2", None).await;
    let all = app.api_get("/hosts").await;
    let empty =
        "per_page=&page=&order_key=&order_direction=&query=&idp_username=&idp_group=&idp_department=&idp_active=";
    let r = app.api_get(&format!("/hosts?{empty}")).await;
    assert_eq!((r.status.as_u16(), &r.body), (200, &all.body), "{}", r.text);
    let r = app.api_get(&format!("/hosts/count?{empty}")).await;
    assert_eq!(r.body["count"], 2, "{}", r.text);
    for path in ["/activities?page=&per_page=", "/webhooks/deliveries?state=&page=&per_page="] {
        assert_eq!(app.api_get(path).await.status, 200, "{path}");
    }
    // A value that is not empty is still checked.
    let r = app.api_get("/hosts?idp_active=yes").await;
    assert_eq!((r.status.as_u16(), &r.body["errors"][0]["name"]), (422, &json!("idp_active")), "{}", r.text);
    let r = app.api_get("/hosts?per_page=%2B5").await;
    assert_eq!((r.status.as_u16(), &r.body["errors"][0]["name"]), (422, &json!("per_page")), "a sign: {}", r.text);
}

#[tokio::test]
async fn every_operation_documents_its_error_statuses_with_the_error_body() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let error_ref = json!("#/components/schemas/ErrorBody");
    for (method, path) in operations(&doc) {
        let op = &doc["paths"][&path][&method];
        let mut want = vec!["400", "401", "408", "414", "429", "503"];
        if method != "get" || path.ends_with("/webhooks/deliveries") {
            want.push("403");
        }
        if !op["requestBody"].is_null() {
            want.extend(["413", "415", "422"]);
        }
        if path.contains("{id}") || path.contains("{identifier}") {
            want.push("404");
        }
        if op["parameters"].as_array().is_some_and(|ps| ps.iter().any(|p| p["in"] == "query")) {
            want.push("422");
        }
        for status in want {
            let schema = &op["responses"][status]["content"]["application/json"]["schema"]["$ref"];
            assert_eq!(schema, &error_ref, "{method} {path} {status}: {}", op["responses"]);
        }
    }
    // A NUL in the query or a text path parameter is a documented 400, and the document
    // keeps it out of the values it describes.
    let r = app.api_get("/hosts?query=a%00b").await;
    assert_eq!(r.status, 400, "{}", r.text);
    let identifier = parameter(&doc, "get", "/api/v1/fleet/hosts/identifier/{identifier}", "identifier");
    let query = parameter(&doc, "get", "/api/v1/fleet/hosts", "query");
    assert_eq!(identifier["schema"]["pattern"], query["schema"]["pattern"]);
    let no_nul = jsonschema::validator_for(&query["schema"]).unwrap();
    assert!(no_nul.is_valid(&json!("jane doe")) && !no_nul.is_valid(&json!("a\u{0}b")));
}

#[tokio::test]
async fn text_patterns_follow_the_handlers_rules_character_by_character() {
    use custodian::api::schema::TextRule;
    for rule in [TextRule::NoNul, TextRule::NotBlank, TextRule::OneWord] {
        let v = jsonschema::validator_for(&json!({"type": "string", "pattern": rule.pattern()})).unwrap();
        // Every character alone, amid spaces and beside a letter: the ones the rules treat
        // specially (NUL, white space) and their neighbours.
        for c in (0..0x3100u32).chain(0xFEF0..0xFF00).filter_map(char::from_u32) {
            for s in [format!("{c}"), format!(" {c} "), format!("a{c}"), format!("a{c}b")] {
                assert_eq!(v.is_valid(&json!(s)), rule.allows(&s), "{rule:?} on {s:?}");
            }
        }
    }
}

#[test]
fn the_seen_time_pattern_is_what_the_handler_parses() {
    let v = jsonschema::validator_for(&json!({"type": "string", "pattern": custodian::api::hosts::RFC3339_PATTERN}))
        .unwrap();
    let mut cases: Vec<String> = [
        "2026-01-01T00:00:00Z",
        "2026-01-01t00:00:00z",
        "2026-01-01 00:00:00+02:00",
        "2026-12-31T23:59:60.123456789123-23:59",
        "2024-02-29T12:00:00Z",
        "2000-02-29T12:00:00Z",
        "1900-02-29T12:00:00Z",
        "2023-02-29T12:00:00Z",
        "2026-04-31T12:00:00Z",
        "2026-13-01T12:00:00Z",
        "2026-01-01T24:00:00Z",
        "2026-01-01T00:00:00",
        "2026-01-01T00:00:00.Z",
        "2026-01-01T00:00:00+0200",
        "2026-01-01",
        "",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for month in 1..=12 {
        for day in [28, 29, 30, 31, 32] {
            for year in [1900, 2000, 2023, 2024] {
                cases.push(format!("{year}-{month:02}-{day:02}T10:20:30Z"));
            }
        }
    }
    for s in cases {
        let chrono_ok = chrono::DateTime::parse_from_rfc3339(&s).is_ok();
        assert_eq!(
            v.is_valid(&json!(s)),
            chrono_ok,
            "{s:?}: the handler {}",
            if chrono_ok { "takes it" } else { "refuses it" }
        );
    }
}
