//! `serve --scim-schema-file`: a custom extension declared in RFC 7643 §7 Schema JSON is
//! listed by /Schemas and /ResourceTypes, typed, its `caseExact` and `uniqueness`
//! enforced; users stored before it was declared are re-indexed when the server starts.
//! Run against the real binary: the declarations are the process's attribute model.

use std::io::Write;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::cli::{api_token, serve_or_exit};
use crate::support::{TestDb, enc};

const EXT: &str = "urn:ietf:params:scim:schemas:extension:custodiantest:2.0:User";
const SCIM_JSON: &str = "application/scim+json";

struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req =
            self.http.request(method, format!("{}/api/v1/fleet/scim{path}", self.base)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.header("content-type", SCIM_JSON).body(b.to_string());
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn user(&self, user_name: &str, ext: Value) -> (StatusCode, Value) {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", EXT],
            "userName": user_name,
            "active": true,
            EXT: ext
        });
        self.send(reqwest::Method::POST, "/Users", Some(body)).await
    }

    async fn user_names(&self, filter: &str) -> Vec<String> {
        let (status, body) = self.send(reqwest::Method::GET, &format!("/Users?filter={}", enc(filter)), None).await;
        assert_eq!(status, StatusCode::OK, "{filter}: {body}");
        let mut names: Vec<String> =
            body["Resources"].as_array().unwrap().iter().map(|u| u["userName"].as_str().unwrap().to_string()).collect();
        names.sort();
        names
    }
}

fn schema_file(dir: &std::path::Path, schema: &Value) -> String {
    let path = dir.join("schemas.json");
    std::fs::File::create(&path).unwrap().write_all(schema.to_string().as_bytes()).unwrap();
    path.display().to_string()
}

fn declaration() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": 1,
        "Resources": [{
            "id": EXT,
            "name": "CustodianTest",
            "description": "Badges and levels",
            "attributes": [
                {"name": "badge", "type": "string", "caseExact": true, "uniqueness": "server",
                 "description": "The badge number"},
                {"name": "level", "type": "integer"}
            ]
        }]
    })
}

#[tokio::test]
async fn a_declared_extension_is_listed_typed_case_exact_unique_and_old_users_are_reindexed() {
    let db = TestDb::fresh().await;
    let dir = tempfile::tempdir().unwrap();
    // Before the declaration: the extension is kept as sent and compared in any case.
    let (mut server, base) = serve_or_exit(&db.url, &[]).await.expect("serves");
    let token = api_token(&db.url, "okta");
    let client = Client { base, token, http: reqwest::Client::new() };
    let (status, body) = client.user("ann@example.com", json!({"badge": "AB-1", "level": 3})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(client.user_names(&format!("{EXT}:badge eq \"ab-1\"")).await, ["ann@example.com"]);
    server.kill().unwrap();
    server.wait().unwrap();

    // A bad file stops the start, naming the flag and the field.
    let bad = schema_file(dir.path(), &json!({"id": EXT, "attributes": [{"name": "badge", "type": "text"}]}));
    let refused = serve_or_exit(&db.url, &["--scim-schema-file", &bad]).await.expect_err("a bad file is refused");
    assert!(refused.contains("--scim-schema-file") && refused.contains("attributes[0].type"), "{refused}");

    let file = schema_file(dir.path(), &declaration());
    let (mut server, base) = serve_or_exit(&db.url, &["--scim-schema-file", &file]).await.expect("serves");
    let client = Client { base, ..client };

    // Listed like the enterprise extension.
    let (_, schemas) = client.send(reqwest::Method::GET, "/Schemas", None).await;
    let ids: Vec<&str> = schemas["Resources"].as_array().unwrap().iter().filter_map(|s| s["id"].as_str()).collect();
    assert!(ids.contains(&EXT), "{ids:?}");
    let (status, schema) = client.send(reqwest::Method::GET, &format!("/Schemas/{EXT}"), None).await;
    assert_eq!(status, StatusCode::OK, "{schema}");
    assert_eq!(schema["attributes"][0]["caseExact"], true);
    assert_eq!(schema["attributes"][0]["uniqueness"], "server");
    assert_eq!(schema["attributes"][1]["type"], "integer");
    let (_, user_type) = client.send(reqwest::Method::GET, "/ResourceTypes/User", None).await;
    let extensions: Vec<&str> =
        user_type["schemaExtensions"].as_array().unwrap().iter().filter_map(|e| e["schema"].as_str()).collect();
    assert!(extensions.contains(&EXT), "{user_type}");

    // Ann, stored before, was re-indexed: the badge compares exactly, the level is a number.
    assert!(client.user_names(&format!("{EXT}:badge eq \"ab-1\"")).await.is_empty());
    assert_eq!(client.user_names(&format!("{EXT}:badge eq \"AB-1\"")).await, ["ann@example.com"]);
    assert_eq!(client.user_names(&format!("{EXT}:level gt 2")).await, ["ann@example.com"]);
    let (_, ann) = client
        .send(reqwest::Method::GET, &format!("/Users?filter={}", enc("userName eq \"ann@example.com\"")), None)
        .await;
    assert_eq!(ann["Resources"][0][EXT], json!({"badge": "AB-1", "level": 3}), "{ann}");

    // Unique within the connection, exactly: the same badge is refused, another case is not.
    let (status, body) = client.user("ben@example.com", json!({"badge": "AB-1"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["scimType"], "uniqueness", "{body}");
    let (status, ben) = client.user("ben@example.com", json!({"badge": "ab-1", "level": 1})).await;
    assert_eq!(status, StatusCode::CREATED, "{ben}");
    let ben_id = ben["id"].as_str().unwrap();
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                       "Operations": [{"op": "replace", "path": format!("{EXT}:badge"), "value": "AB-1"}]});
    let (status, body) = client.send(reqwest::Method::PATCH, &format!("/Users/{ben_id}"), Some(patch)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["scimType"], "uniqueness", "{body}");
    // Typed: a level that is not an integer is refused.
    let (status, body) = client.user("cy@example.com", json!({"level": "high"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["scimType"], "invalidValue", "{body}");
    assert_eq!(client.user_names(&format!("{EXT}:level pr")).await, ["ann@example.com", "ben@example.com"]);
    server.kill().unwrap();
    server.wait().unwrap();
}
