//! The SCIM 2.0 protocol (RFC 7643, RFC 7644) as a client sees it: discovery, filters,
//! sorting, paging, projection, versions, errors, search, aliases, nesting and bulk.

use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::support::{SCIM, TestApp, enc, filter_q, member_values, okta_user, resource_ids, sorted};

const CORE: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const GOOGLE: &str = "urn:ietf:params:scim:schemas:extension:googleworkspace:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const SEARCH: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
const BULK_REQ: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
const BULK_RESP: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";

fn patch(ops: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": ops})
}

// ---------------------------------------------------------------------------------
// Discovery
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn service_provider_config_advertises_what_is_implemented_with_limits() {
    let app = TestApp::spawn().await;
    let r = app.get("/ServiceProviderConfig").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/scim+json"));
    let c = &r.body;
    assert_eq!(c["schemas"], json!(["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"]));
    assert_eq!(c["patch"]["supported"], true);
    assert_eq!(c["bulk"]["supported"], true);
    assert_eq!(c["bulk"]["maxOperations"], 1000);
    assert_eq!(c["bulk"]["maxPayloadSize"], 8 * 1024 * 1024);
    assert_eq!(c["filter"]["supported"], true);
    assert_eq!(c["filter"]["maxResults"], 1000);
    assert_eq!(c["sort"]["supported"], true);
    assert_eq!(c["etag"]["supported"], true);
    assert_eq!(c["changePassword"]["supported"], false);
    let schemes = c["authenticationSchemes"].as_array().unwrap();
    assert!(!schemes.is_empty());
    assert_eq!(schemes[0]["type"], "oauthbearertoken");
    assert!(c["meta"]["location"].as_str().unwrap().ends_with(&format!("{SCIM}/ServiceProviderConfig")));

    // Truthfully: each advertised feature answers.
    let id = app.create_user("a@example.com").await;
    let r = app.patch(&format!("/Users/{id}"), patch(json!([{"op": "replace", "path": "title", "value": "x"}]))).await;
    assert_eq!(r.status, 200, "patch: {}", r.text);
    assert!(r.header("etag").is_some(), "etag");
    let r = app.get("/Users?sortBy=userName&sortOrder=descending").await;
    assert_eq!(r.status, 200, "sort: {}", r.text);
    let r = app.get(&format!("/Users?{}", filter_q("title pr"))).await;
    assert_eq!(r.body["totalResults"], 1, "filter: {}", r.text);
    let r = app.post("/Bulk", json!({"schemas": [BULK_REQ], "Operations": []})).await;
    assert_eq!(r.status, 200, "bulk: {}", r.text);
    // count above maxResults is capped, not refused.
    let r = app.get("/Users?count=5000").await;
    assert_eq!(r.status, 200, "{}", r.text);
}

fn attr<'a>(schema: &'a Value, name: &str) -> Option<&'a Value> {
    schema["attributes"].as_array()?.iter().find(|a| a["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
}

#[tokio::test]
async fn schemas_lists_user_enterprise_user_and_group() {
    let app = TestApp::spawn().await;
    let r = app.get("/Schemas").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["schemas"], json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"]));
    assert_eq!(r.body["totalResults"], 3, "the Google Workspace extension is written by syncs only");
    let ids: Vec<&str> = r.body["Resources"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(sorted(&ids), sorted(&[CORE, ENT, GROUP]));
    for s in r.body["Resources"].as_array().unwrap() {
        assert_eq!(s["schemas"], json!(["urn:ietf:params:scim:schemas:core:2.0:Schema"]));
        assert!(s["attributes"].as_array().is_some_and(|a| !a.is_empty()), "{s}");
        for a in s["attributes"].as_array().unwrap() {
            for key in ["name", "type", "multiValued", "required", "mutability", "returned"] {
                assert!(a.get(key).is_some(), "{key} missing in {a}");
            }
        }
    }
    let user = r.body["Resources"].as_array().unwrap().iter().find(|s| s["id"] == CORE).unwrap();
    assert_eq!(attr(user, "userName").unwrap()["uniqueness"], "server");
    assert_eq!(attr(user, "userName").unwrap()["caseExact"], false);
    assert_eq!(attr(user, "password").unwrap()["returned"], "never");
    assert_eq!(attr(user, "groups").unwrap()["mutability"], "readOnly");
}

#[tokio::test]
async fn schema_and_resource_type_by_id() {
    let app = TestApp::spawn().await;
    for id in [CORE, ENT, GROUP] {
        let r = app.get(&format!("/Schemas/{id}")).await;
        assert_eq!(r.status, 200, "{id}: {}", r.text);
        assert_eq!(r.body["id"], id);
        assert!(r.body["meta"]["location"].as_str().unwrap().ends_with(&format!("/Schemas/{id}")));
    }
    app.get("/Schemas/urn:example:nope").await.assert_scim_error(404, None);
    app.get(&format!("/Schemas/{GOOGLE}")).await.assert_scim_error(404, None);

    let r = app.get("/ResourceTypes").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["totalResults"], 2);
    let r = app.get("/ResourceTypes/User").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["id"], "User");
    assert_eq!(r.body["endpoint"], "/Users");
    assert_eq!(r.body["schema"], CORE);
    assert_eq!(r.body["schemaExtensions"], json!([{"schema": ENT, "required": false}]));
    let r = app.get("/ResourceTypes/Group").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["endpoint"], "/Groups");
    assert_eq!(r.body["schema"], GROUP);
    app.get("/ResourceTypes/Device").await.assert_scim_error(404, None);
}

#[tokio::test]
async fn post_to_schemas_is_405_scim_error() {
    let app = TestApp::spawn().await;
    app.post("/Schemas", json!({"id": "urn:x"})).await.assert_scim_error(405, None);
    app.post("/ServiceProviderConfig", json!({})).await.assert_scim_error(405, None);
    app.delete("/Users").await.assert_scim_error(405, None);
}

/// Checks every key of `obj` against the attribute definitions `defs` (a `/Schemas`
/// `attributes` or `subAttributes` list): described, of the described type, and not
/// `returned: never`.
fn check_against(path: &str, obj: &Map<String, Value>, defs: &[Value], problems: &mut Vec<String>) {
    for (key, value) in obj {
        let Some(def) = defs.iter().find(|d| d["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(key))) else {
            problems.push(format!("{path}{key} is returned but not described in /Schemas"));
            continue;
        };
        if def["name"] != key.as_str() {
            problems.push(format!("{path}{key} is spelled {} in /Schemas", def["name"]));
        }
        if def["returned"] == "never" {
            problems.push(format!("{path}{key} is returned: never, and was returned"));
        }
        let multi = def["multiValued"] == true;
        let items: Vec<&Value> = match (multi, value) {
            (true, Value::Array(a)) => a.iter().collect(),
            (true, _) => {
                problems.push(format!("{path}{key} is multiValued but not an array"));
                continue;
            }
            (false, Value::Array(_)) => {
                problems.push(format!("{path}{key} is single-valued but an array"));
                continue;
            }
            (false, v) => vec![v],
        };
        for item in items {
            let ty = def["type"].as_str().unwrap_or("");
            let ok = match ty {
                "string" | "reference" | "binary" | "dateTime" => item.is_string(),
                "boolean" => item.is_boolean(),
                "integer" => item.is_i64() || item.is_u64(),
                "decimal" => item.is_number(),
                "complex" => item.is_object(),
                _ => false,
            };
            if !ok {
                problems.push(format!("{path}{key} is {item} but /Schemas says {ty}"));
            }
            if let (Value::Object(sub), Some(subs)) = (item, def["subAttributes"].as_array()) {
                check_against(&format!("{path}{key}."), sub, subs, problems);
            }
            if let Some(canon) = def["canonicalValues"].as_array().filter(|c| !c.is_empty())
                && !canon.contains(item)
                && ty == "string"
            {
                // Canonical values are advisory (RFC 7643 §7); only a note.
            }
        }
    }
}

/// Walks a resource against `/Schemas`; the common attributes of RFC 7643 §3.1 (`id`,
/// `externalId`, `meta`) and `schemas` are defined for every resource.
async fn schema_problems(app: &TestApp, resource: &Value) -> Vec<String> {
    let all = app.get("/Schemas").await.body;
    let schemas = all["Resources"].as_array().unwrap();
    let find = |id: &str| schemas.iter().find(|s| s["id"] == id).cloned();
    let obj = resource.as_object().unwrap();
    let declared: Vec<&str> = obj["schemas"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    let core = find(declared[0]).expect("the core schema is in /Schemas");
    let mut problems = Vec::new();
    let mut core_part = Map::new();
    for (k, v) in obj {
        match k.as_str() {
            "schemas" | "id" | "externalId" => {}
            "meta" => {
                for mk in v.as_object().unwrap().keys() {
                    if !["resourceType", "created", "lastModified", "location", "version"].contains(&mk.as_str()) {
                        problems.push(format!("meta.{mk} is not a meta attribute of RFC 7643 §3.1"));
                    }
                }
            }
            k if k.starts_with("urn:") => {
                if !declared.contains(&k) {
                    problems.push(format!("{k} is returned but not listed in schemas"));
                }
                match find(k) {
                    Some(ext) => check_against(
                        &format!("{k}:"),
                        v.as_object().unwrap(),
                        ext["attributes"].as_array().unwrap(),
                        &mut problems,
                    ),
                    None => problems.push(format!("{k} is not in /Schemas")),
                }
            }
            _ => {
                core_part.insert(k.clone(), v.clone());
            }
        }
    }
    check_against("", &core_part, core["attributes"].as_array().unwrap(), &mut problems);
    for d in &declared[1..] {
        if !obj.contains_key(*d) {
            problems.push(format!("schemas lists {d} but the resource has no such key"));
        }
    }
    problems
}

#[tokio::test]
async fn every_attribute_a_user_or_group_returns_is_described_in_schemas() {
    let app = TestApp::spawn().await;
    let boss = app.create_user("boss@example.com").await;
    let body = json!({
        "schemas": [CORE, ENT],
        "externalId": "ext-1",
        "userName": "jane@example.com",
        "name": {"formatted": "Ms. Jane Q Doe III", "familyName": "Doe", "givenName": "Jane", "middleName": "Q",
                 "honorificPrefix": "Ms.", "honorificSuffix": "III"},
        "displayName": "Jane Doe",
        "nickName": "JD",
        "profileUrl": "https://example.com/jane",
        "title": "Engineer",
        "userType": "Employee",
        "preferredLanguage": "en-GB",
        "locale": "en-GB",
        "timezone": "Europe/London",
        "active": true,
        "password": "s3cr3t-Pa55",
        "emails": [{"value": "jane@example.com", "type": "work", "primary": true, "display": "Jane"}],
        "phoneNumbers": [{"value": "+44 20 7946 0000", "type": "work"}],
        "ims": [{"value": "jane", "type": "xmpp"}],
        "photos": [{"value": "https://example.com/jane.png", "type": "photo"}],
        "addresses": [{"formatted": "1 Main St", "streetAddress": "1 Main St", "locality": "London", "region": "LDN",
                        "postalCode": "N1", "country": "GB", "type": "work", "primary": true}],
        "entitlements": [{"value": "vpn"}],
        "roles": [{"value": "admin", "primary": true, "type": "x", "display": "Admin"}],
        "x509Certificates": [{"value": "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAw"}],
        ENT: {"employeeNumber": "42", "costCenter": "CC", "organization": "Org", "division": "Div", "department": "Dept",
              "manager": {"value": boss, "$ref": format!("../Users/{boss}"), "displayName": "Boss"}}
    });
    let created = app.create_user_with(body).await;
    let id = created["id"].as_str().unwrap().to_string();
    let inner = app.create_group_with("Inner", &[&id]).await;
    let outer = app.create_group_with("Outer", &[&inner, &boss]).await;
    let user = app.get(&format!("/Users/{id}")).await.body;
    assert!(user["groups"].as_array().is_some_and(|g| g.len() == 2), "{user}");
    let group = app.get(&format!("/Groups/{outer}")).await.body;
    assert_eq!(group["members"].as_array().unwrap().len(), 2, "{group}");

    let mut problems = Vec::new();
    for resource in [&created, &user, &group] {
        problems.extend(schema_problems(&app, resource).await);
    }
    let list = app.list("/Users").await.body;
    for resource in list["Resources"].as_array().unwrap() {
        problems.extend(schema_problems(&app, resource).await);
    }
    assert!(problems.is_empty(), "responses disagree with /Schemas:\n{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------
// Filters
// ---------------------------------------------------------------------------------

struct People {
    alice: String,
    bob: String,
    carol: String,
}

async fn people(app: &TestApp) -> People {
    let alice = app
        .create_user_with(json!({
            "schemas": [CORE, ENT], "userName": "alice@example.com", "displayName": "Alice Anderson", "title": "Engineer",
            "externalId": "Ext-A", "active": true, "name": {"givenName": "Alice", "familyName": "Anderson"},
            "emails": [{"value": "alice@example.com", "type": "work", "primary": true}, {"value": "alice@home.org", "type": "home"}],
            ENT: {"department": "R&D"}
        }))
        .await;
    let bob = app
        .create_user_with(json!({
            "schemas": [CORE, ENT], "userName": "bob@example.com", "displayName": "Bob Brown", "title": "Manager",
            "externalId": "ext-b", "active": false, "name": {"givenName": "Bob", "familyName": "Brown"},
            "emails": [{"value": "bob@example.com", "type": "work"}],
            ENT: {"department": "Sales"}
        }))
        .await;
    let carol = app
        .create_user_with(json!({
            "schemas": [CORE], "userName": "carol@sample.org", "displayName": "Carol Clark",
            "externalId": "EXT-C", "active": true, "name": {"givenName": "Carol", "familyName": "Clark"},
            "emails": [{"value": "carol@sample.org", "type": "other"}]
        }))
        .await;
    let id = |v: Value| v["id"].as_str().unwrap().to_string();
    People { alice: id(alice), bob: id(bob), carol: id(carol) }
}

/// The ids a user filter selects, sorted.
async fn users_where(app: &TestApp, filter: &str) -> Vec<String> {
    let r = app.get(&format!("/Users?{}", filter_q(filter))).await;
    assert_eq!(r.status, 200, "filter {filter}: {}", r.text);
    assert_eq!(r.body["totalResults"], r.body["Resources"].as_array().unwrap().len(), "{filter}");
    let mut ids = resource_ids(&r.body);
    ids.sort();
    ids
}

#[tokio::test]
async fn every_comparison_operator_and_presence() {
    let app = TestApp::spawn().await;
    let p = people(&app).await;
    let (a, b, c) = (p.alice.as_str(), p.bob.as_str(), p.carol.as_str());
    let cases: &[(&str, &[&str])] = &[
        (r#"userName eq "bob@example.com""#, &[b]),
        (r#"userName ne "bob@example.com""#, &[a, c]),
        (r#"userName co "EXAMPLE""#, &[a, b]),
        (r#"userName sw "CA""#, &[c]),
        (r#"userName ew ".ORG""#, &[c]),
        (r#"userName gt "bob@example.com""#, &[c]),
        (r#"userName ge "bob@example.com""#, &[b, c]),
        (r#"userName lt "bob@example.com""#, &[a]),
        (r#"userName le "bob@example.com""#, &[a, b]),
        ("title pr", &[a, b]),
        ("externalId pr", &[a, b, c]),
        ("name pr", &[a, b, c]),
        ("emails pr", &[a, b, c]),
        (r#"title eq "engineer""#, &[a]),
        (r#"title ne "Engineer""#, &[b, c]),
        ("title eq null", &[c]),
        ("active eq true", &[a, c]),
        ("active ne true", &[b]),
        (r#"displayName co "N""#, &[a, b]),
        (r#"displayName co "ar""#, &[c]),
        (r#"userName EQ "alice@example.com""#, &[a]),
    ];
    for (filter, expected) in cases {
        assert_eq!(users_where(&app, filter).await, sorted(expected), "filter: {filter}");
    }
}

#[tokio::test]
async fn logical_operators_precedence_and_grouping() {
    let app = TestApp::spawn().await;
    let p = people(&app).await;
    let (a, b, c) = (p.alice.as_str(), p.bob.as_str(), p.carol.as_str());
    let cases: &[(&str, &[&str])] = &[
        ("title pr and active eq true", &[a]),
        (r#"userName sw "a" or userName sw "c""#, &[a, c]),
        ("not (active eq true)", &[b]),
        ("not (title pr)", &[c]),
        (r#"(userName sw "a" or userName sw "b") and active eq true"#, &[a]),
        // and binds tighter than or
        (r#"userName sw "a" or userName sw "b" and active eq true"#, &[a]),
        (r#"userName sw "b" and active eq false or userName sw "c""#, &[b, c]),
        (r#"not (userName sw "a" or userName sw "b")"#, &[c]),
        (r#"((userName sw "a")) AND (title pr) Or (externalId eq "EXT-C")"#, &[a, c]),
    ];
    for (filter, expected) in cases {
        assert_eq!(users_where(&app, filter).await, sorted(expected), "filter: {filter}");
    }
}

#[tokio::test]
async fn value_paths_sub_attributes_and_urn_qualified_names() {
    let app = TestApp::spawn().await;
    let p = people(&app).await;
    let (a, b, c) = (p.alice.as_str(), p.bob.as_str(), p.carol.as_str());
    let cases: &[(String, &[&str])] = &[
        (r#"emails[type eq "home" and value co "home"]"#.into(), &[a]),
        (r#"emails[type eq "work" and value co "home"]"#.into(), &[]),
        (r#"emails[type eq "work"].value ew "example.com""#.into(), &[a, b]),
        (r#"emails.value eq "ALICE@home.org""#.into(), &[a]),
        (r#"emails.type eq "other""#.into(), &[c]),
        (r#"emails[primary eq true]"#.into(), &[a]),
        (r#"name.familyName eq "anderson""#.into(), &[a]),
        (r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "alice@example.com""#.into(), &[a]),
        (r#"urn:ietf:params:scim:schemas:core:2.0:User:name.givenName sw "b""#.into(), &[b]),
        (format!(r#"{ENT}:department eq "sales""#), &[b]),
        (format!("{ENT}:department pr"), &[a, b]),
        (r#"meta.resourceType eq "User""#.into(), &[a, b, c]),
    ];
    for (filter, expected) in cases {
        assert_eq!(users_where(&app, filter).await, sorted(expected), "filter: {filter}");
    }
}

#[tokio::test]
async fn case_exactness_follows_the_schema() {
    let app = TestApp::spawn().await;
    let p = people(&app).await;
    let a = p.alice.as_str();
    // caseExact: id, externalId.
    assert_eq!(users_where(&app, &format!(r#"id eq "{a}""#)).await, vec![a.to_string()]);
    let upper = a.to_uppercase();
    assert_ne!(upper, a);
    assert!(users_where(&app, &format!(r#"id eq "{upper}""#)).await.is_empty(), "id is caseExact");
    assert_eq!(users_where(&app, r#"externalId eq "Ext-A""#).await, vec![a.to_string()]);
    assert!(users_where(&app, r#"externalId eq "ext-a""#).await.is_empty(), "externalId is caseExact");
    assert!(users_where(&app, r#"externalId sw "ext""#).await == vec![p.bob.clone()], "externalId sw is caseExact too");
    // Not caseExact: userName, emails.value, displayName.
    assert_eq!(users_where(&app, r#"userName eq "ALICE@EXAMPLE.COM""#).await, vec![a.to_string()]);
    assert_eq!(users_where(&app, r#"emails.value eq "Alice@Example.com""#).await, vec![a.to_string()]);
    assert_eq!(users_where(&app, r#"displayName eq "alice anderson""#).await, vec![a.to_string()]);
}

#[tokio::test]
async fn unicode_usernames_compare_without_regard_to_case() {
    let app = TestApp::spawn().await;
    let id = app.create_user("ÉLODIE@x.com").await;
    assert_eq!(users_where(&app, r#"userName eq "élodie@x.com""#).await, vec![id.clone()]);
    assert_eq!(users_where(&app, r#"userName sw "éLO""#).await, vec![id.clone()]);
    let r = app.post("/Users", okta_user("élodie@X.com", "E", "L")).await;
    r.assert_scim_error(409, Some("uniqueness"));
    assert_eq!(app.get(&format!("/Users/{id}")).await.body["userName"], "ÉLODIE@x.com");
}

#[tokio::test]
async fn meta_last_modified_gt_finds_resources_changed_since() {
    let app = TestApp::spawn().await;
    let p = people(&app).await;
    let bob = app.get(&format!("/Users/{}", p.bob)).await.body;
    let since = bob["meta"]["lastModified"].as_str().unwrap().to_string();
    assert_eq!(users_where(&app, &format!(r#"meta.lastModified gt "{since}""#)).await, vec![p.carol.clone()]);
    assert_eq!(users_where(&app, &format!(r#"meta.lastModified ge "{since}""#)).await, sorted(&[&p.bob, &p.carol]));
    // A change to alice moves her past the mark.
    let r = app
        .patch(&format!("/Users/{}", p.alice), patch(json!([{"op": "replace", "path": "title", "value": "Lead"}])))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(users_where(&app, &format!(r#"meta.lastModified gt "{since}""#)).await, sorted(&[&p.alice, &p.carol]));
    assert_eq!(users_where(&app, &format!(r#"meta.created lt "{since}""#)).await, vec![p.alice.clone()]);
}

#[tokio::test]
async fn bad_filters_are_400_invalid_filter() {
    let app = TestApp::spawn().await;
    people(&app).await;
    let deep_parens = format!("{}userName eq \"a\"{}", "(".repeat(5000), ")".repeat(5000));
    let deep_not = format!("{}userName eq \"a\"{}", "not(".repeat(5000), ")".repeat(5000));
    let long = format!("userName eq \"{}\"", "x".repeat(10_000));
    let many_terms = vec![r#"userName eq "a""#; 1000].join(" or ");
    let bad = [
        r#"userName eq"#.to_string(),
        r#"userName xx "a""#.to_string(),
        r#"(userName eq "a""#.to_string(),
        r#"userName eq "a")"#.to_string(),
        r#"userName eq "a" and"#.to_string(),
        r#"userName eq "unterminated"#.to_string(),
        r#"nosuch eq "x""#.to_string(),
        r#"emails[nosuch eq "x"]"#.to_string(),
        r#"urn:example:nope:attr eq "x""#.to_string(),
        r#"active gt "yes""#.to_string(),
        r#"meta.lastModified gt "yesterday""#.to_string(),
        deep_parens.clone(),
        deep_not,
        long,
        many_terms,
    ];
    for f in &bad {
        let query = format!("/Users?{}", filter_q(f));
        let r = app.get(&query).await;
        let shown: String = f.chars().take(60).collect();
        assert!(r.text.len() < 2000, "the error echoes the whole filter back ({} bytes)", r.text.len());
        if format!("{SCIM}{query}").len() > custodian::limits::MAX_REQUEST_TARGET_BYTES {
            // Too long for a URL: 414 before the filter is read, and the same filter sent
            // in a SearchRequest is refused for what it is.
            r.assert_scim_error(414, None);
            let r = app.post("/Users/.search", json!({"schemas": [SEARCH], "filter": f})).await;
            r.assert_scim_error(400, Some("invalidFilter"));
            continue;
        }
        assert_eq!(r.status, 400, "filter {shown}: {}", r.text.chars().take(300).collect::<String>());
        r.assert_scim_error(400, Some("invalidFilter"));
    }
    // The same through a SearchRequest body, where the URL length does not limit it.
    let r = app.post("/Users/.search", json!({"schemas": [SEARCH], "filter": deep_parens})).await;
    r.assert_scim_error(400, Some("invalidFilter"));
    // The server is still answering.
    assert_eq!(app.list("/Users").await.body["totalResults"], 3);
}

// ---------------------------------------------------------------------------------
// Sorting, paging, projection
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn sort_by_and_sort_order() {
    let app = TestApp::spawn().await;
    let p = people(&app).await;
    let (a, b, c) = (p.alice.clone(), p.bob.clone(), p.carol.clone());
    let order = |q: &str| {
        let q = q.to_string();
        let app = &app;
        async move {
            let r = app.get(&format!("/Users?{q}")).await;
            assert_eq!(r.status, 200, "{q}: {}", r.text);
            resource_ids(&r.body)
        }
    };
    assert_eq!(order("sortBy=userName").await, vec![a.clone(), b.clone(), c.clone()]);
    assert_eq!(order("sortBy=userName&sortOrder=descending").await, vec![c.clone(), b.clone(), a.clone()]);
    assert_eq!(order("sortBy=name.givenName&sortOrder=DESCENDING").await, vec![c.clone(), b.clone(), a.clone()]);
    assert_eq!(order("sortby=displayName&sortorder=ascending").await, vec![a.clone(), b.clone(), c.clone()]);
    // Unassigned values sort last (title: carol has none).
    assert_eq!(order("sortBy=title").await, vec![a.clone(), b.clone(), c.clone()]);
    assert_eq!(order("sortBy=title&sortOrder=descending").await, vec![b.clone(), a.clone(), c.clone()]);
    assert_eq!(order("sortBy=meta.created&sortOrder=descending").await, vec![c.clone(), b.clone(), a.clone()]);
    assert_eq!(order(&format!("sortBy={}", enc("emails.value"))).await, vec![a.clone(), b.clone(), c.clone()]);
    // Sorting with a filter and paging.
    assert_eq!(
        order(&format!("sortBy=userName&sortOrder=descending&count=1&startIndex=2&{}", filter_q("active eq true")))
            .await,
        vec![a]
    );
    app.get("/Users?sortBy=userName&sortOrder=sideways").await.assert_scim_error(400, Some("invalidValue"));
}

/// Found by fuzzing: a multi-byte character within a path's first four bytes panicked
/// (`split_urn`), and a long PATCH path was echoed whole in the error detail.
#[tokio::test]
async fn odd_paths_are_client_errors_or_ignored() {
    let app = TestApp::spawn().await;
    let p = people(&app).await;
    app.get(&format!("/Users?sortBy={}", enc("maʚ"))).await.assert_scim_error(400, Some("invalidValue"));
    let r = app.get(&format!("/Users/{}?attributes={}", p.alice, enc("maʚ,userName"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["userName"], "alice@example.com");
    assert!(r.body.get("title").is_none(), "{}", r.text);

    let user = format!("/Users/{}", p.alice);
    let before = app.get(&user).await.body;
    let patch = |ops: Value| json!({"schemas": [PATCH_OP], "Operations": ops});
    let r = app.patch(&user, patch(json!([{"op": "replace", "path": "maʚ", "value": "x"}]))).await;
    r.assert_scim_error(400, Some("invalidPath"));
    let long = format!("emails[type eq \"work\"].{}", "x".repeat(100_000));
    let r = app.patch(&user, patch(json!([{"op": "replace", "path": long, "value": "x"}]))).await;
    r.assert_scim_error(400, Some("invalidPath"));
    assert!(r.text.len() < 1000, "the error echoes the path: {} bytes", r.text.len());
    // Unknown keys of a pathless replace are ignored, as in a PUT body.
    let r =
        app.patch(&user, patch(json!([{"op": "replace", "value": {"diz\u{e9}playName": "D", "title": "CTO"}}]))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["title"], "CTO");
    assert_eq!(r.body["displayName"], before["displayName"]);
}

#[tokio::test]
async fn start_index_and_count() {
    let app = TestApp::spawn().await;
    let p = people(&app).await;
    let r = app.list("/Users?count=0").await;
    assert_eq!(r.body["totalResults"], 3);
    assert_eq!(r.body["itemsPerPage"], 0);
    assert!(r.body.get("Resources").is_none_or(|v| v == &json!([])), "{}", r.text);
    let r = app.list(&format!("/Users?count=0&{}", filter_q("active eq true"))).await;
    assert_eq!(r.body["totalResults"], 2);

    let r = app.list("/Users?startIndex=2&count=1").await;
    assert_eq!(r.body["totalResults"], 3);
    assert_eq!(r.body["startIndex"], 2);
    assert_eq!(r.body["itemsPerPage"], 1);
    assert_eq!(resource_ids(&r.body), vec![p.bob.clone()]);
    // startIndex below 1 is 1; a negative count is 0 (RFC 7644 §3.4.2.4).
    let r = app.list("/Users?startIndex=0&count=2").await;
    assert_eq!(r.body["startIndex"], 1);
    assert_eq!(resource_ids(&r.body), vec![p.alice.clone(), p.bob.clone()]);
    let r = app.list("/Users?count=-5").await;
    assert_eq!(r.body["itemsPerPage"], 0);
    assert_eq!(r.body["totalResults"], 3);

    for q in ["count=ten", "startIndex=1.5", "count=", "startIndex=abc"] {
        let r = app.get(&format!("/Users?{q}")).await;
        if q == "count=" {
            assert_eq!(r.status, 200, "an empty parameter is as good as absent: {}", r.text);
            continue;
        }
        r.assert_scim_error(400, Some("invalidValue"));
    }
}

#[tokio::test]
async fn attributes_and_excluded_attributes_on_lists_and_reads() {
    let app = TestApp::spawn().await;
    let p = people(&app).await;
    let r = app.list("/Users?attributes=userName").await;
    for u in r.body["Resources"].as_array().unwrap() {
        let mut keys: Vec<&str> = u.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, vec!["id", "schemas", "userName"], "{u}");
    }
    let r = app.get(&format!("/Users/{}?attributes=name.givenName,emails.value", p.alice)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["name"], json!({"givenName": "Alice"}));
    assert_eq!(r.body["emails"], json!([{"value": "alice@example.com"}, {"value": "alice@home.org"}]));
    assert!(r.body.get("userName").is_none() && r.body.get("meta").is_none(), "{}", r.text);
    assert_eq!(r.body["id"], p.alice.as_str(), "id is always returned");

    let r = app.get(&format!("/Users/{}?excludedAttributes=emails,name,id,meta", p.alice)).await;
    assert!(
        r.body.get("emails").is_none() && r.body.get("name").is_none() && r.body.get("meta").is_none(),
        "{}",
        r.text
    );
    assert_eq!(r.body["id"], p.alice.as_str(), "id cannot be excluded");
    assert_eq!(r.body["userName"], "alice@example.com");

    // An extension attribute by URN; the schemas list follows what is returned.
    let r = app.get(&format!("/Users/{}?attributes={}", p.alice, enc(&format!("{ENT}:department")))).await;
    assert_eq!(r.body[ENT], json!({"department": "R&D"}));
    assert_eq!(r.body["schemas"], json!([CORE, ENT]));
    assert!(r.body.get("userName").is_none());
    let r = app.get(&format!("/Users/{}?excludedAttributes={}", p.alice, enc(ENT))).await;
    assert!(r.body.get(ENT).is_none(), "{}", r.text);
    assert_eq!(r.body["schemas"], json!([CORE]));

    // password never, even when asked for.
    let r = app.get(&format!("/Users/{}?attributes=password,userName", p.alice)).await;
    assert!(r.body.get("password").is_none());
    assert_eq!(r.body["userName"], "alice@example.com");

    // Case-insensitive attribute names.
    let r = app.list("/Users?ATTRIBUTES=USERNAME&count=1").await;
    assert_eq!(r.body["Resources"][0]["userName"], "alice@example.com");
    assert!(r.body["Resources"][0].get("displayName").is_none());
}

#[tokio::test]
async fn attributes_apply_to_post_put_and_patch_responses() {
    let app = TestApp::spawn().await;
    let r = app.post("/Users?attributes=userName", okta_user("jane@example.com", "Jane", "Doe")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    let mut keys: Vec<&str> = r.body.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, vec!["id", "schemas", "userName"], "{}", r.text);
    assert!(r.header("location").is_some_and(|l| l.ends_with(&format!("/Users/{id}"))));

    let r = app
        .patch(
            &format!("/Users/{id}?excludedAttributes=emails,name"),
            patch(json!([{"op": "replace", "path": "title", "value": "CTO"}])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body.get("emails").is_none() && r.body.get("name").is_none(), "{}", r.text);
    assert_eq!(r.body["title"], "CTO");
    assert_eq!(r.body["id"], id.as_str());

    let mut full = app.get(&format!("/Users/{id}")).await.body;
    full["title"] = json!("CEO");
    let r = app.put(&format!("/Users/{id}?attributes=title"), full).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["title"], "CEO");
    assert!(r.body.get("userName").is_none(), "{}", r.text);
    // The projection only shapes the response: the stored resource is whole.
    let g = app.get(&format!("/Users/{id}")).await.body;
    assert_eq!(g["emails"][0]["value"], "jane@example.com");
    assert_eq!(g["title"], "CEO");
}

// ---------------------------------------------------------------------------------
// Versions
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn etag_matches_meta_version_and_changes_with_the_resource() {
    let app = TestApp::spawn().await;
    let id = app.create_user("jane@example.com").await;
    let g = app.get(&format!("/Users/{id}")).await;
    let v1 = g.header("etag").unwrap().to_string();
    assert_eq!(g.body["meta"]["version"], v1.as_str());
    let r = app.patch(&format!("/Users/{id}"), patch(json!([{"op": "replace", "path": "title", "value": "x"}]))).await;
    let v2 = r.header("etag").unwrap().to_string();
    assert_ne!(v1, v2);
    assert_eq!(r.body["meta"]["version"], v2.as_str());
    assert_eq!(app.get(&format!("/Users/{id}")).await.header("etag"), Some(v2.as_str()));
}

#[tokio::test]
async fn if_match_mismatch_is_412_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let id = app.create_user("jane@example.com").await;
    let g = app.get(&format!("/Users/{id}")).await;
    let v1 = g.header("etag").unwrap().to_string();
    let r = app.patch(&format!("/Users/{id}"), patch(json!([{"op": "replace", "path": "title", "value": "x"}]))).await;
    assert_eq!(r.status, 200);
    let current = app.get(&format!("/Users/{id}")).await.body;
    let stale = [("if-match", v1.as_str())];

    let mut body = current.clone();
    body["title"] = json!("stale put");
    let r = app.send_json(Method::PUT, &format!("/Users/{id}"), Some(body), &stale).await;
    r.assert_scim_error(412, None);
    let r = app
        .send_json(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(patch(json!([{"op": "replace", "path": "title", "value": "stale patch"}]))),
            &stale,
        )
        .await;
    r.assert_scim_error(412, None);
    let r = app.send_json(Method::DELETE, &format!("/Users/{id}"), None, &stale).await;
    r.assert_scim_error(412, None);
    assert_eq!(app.get(&format!("/Users/{id}")).await.body, current, "nothing changed");

    // The group endpoints too.
    let gid = app.create_group("Eng").await;
    let r = app.send_json(Method::DELETE, &format!("/Groups/{gid}"), None, &[("if-match", "W/\"999\"")]).await;
    r.assert_scim_error(412, None);
    assert_eq!(app.get(&format!("/Groups/{gid}")).await.status, 200);
}

#[tokio::test]
async fn matching_if_match_succeeds() {
    let app = TestApp::spawn().await;
    let id = app.create_user("jane@example.com").await;
    let g = app.get(&format!("/Users/{id}")).await;
    let v1 = g.header("etag").unwrap().to_string();
    let r = app
        .send_json(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(patch(json!([{"op": "replace", "path": "title", "value": "x"}]))),
            &[("if-match", v1.as_str())],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v2 = r.header("etag").unwrap().to_string();
    let mut body = r.body.clone();
    body["title"] = json!("y");
    let r = app.send_json(Method::PUT, &format!("/Users/{id}"), Some(body), &[("if-match", v2.as_str())]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.get(&format!("/Users/{id}")).await.body["title"], "y");
    let v3 = r.header("etag").unwrap().to_string();
    let r = app.send_json(Method::DELETE, &format!("/Users/{id}"), None, &[("if-match", "*")]).await;
    assert_eq!(r.status, 204, "If-Match: * matches any version: {}", r.text);
    let _ = v3;
    app.get(&format!("/Users/{id}")).await.assert_scim_error(404, None);
}

#[tokio::test]
async fn if_none_match_on_get_is_304_while_unchanged() {
    let app = TestApp::spawn().await;
    let id = app.create_user("jane@example.com").await;
    let v1 = app.get(&format!("/Users/{id}")).await.header("etag").unwrap().to_string();
    let r = app.send_json(Method::GET, &format!("/Users/{id}"), None, &[("if-none-match", v1.as_str())]).await;
    assert_eq!(r.status, 304, "{}", r.text);
    assert!(r.text.is_empty());
    assert_eq!(r.header("etag"), Some(v1.as_str()));
    app.patch(&format!("/Users/{id}"), patch(json!([{"op": "replace", "path": "title", "value": "x"}]))).await;
    let r = app.send_json(Method::GET, &format!("/Users/{id}"), None, &[("if-none-match", v1.as_str())]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["title"], "x");
}

// ---------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_route_under_the_scim_base_is_404_scim_error() {
    let app = TestApp::spawn().await;
    for path in ["/Nope", "/Users/a/b", "/Devices"] {
        let r = app.get(path).await;
        r.assert_scim_error(404, None);
    }
}

#[tokio::test]
async fn malformed_json_is_400_invalid_syntax() {
    let app = TestApp::spawn().await;
    let r = app
        .send(Method::POST, &format!("{SCIM}/Users"), Some(("application/scim+json", "{\"userName\": ".into())), &[])
        .await;
    r.assert_scim_error(400, Some("invalidSyntax"));
    let id = app.create_user("a@example.com").await;
    let r = app
        .send(Method::PATCH, &format!("{SCIM}/Users/{id}"), Some(("application/scim+json", "{,}".into())), &[])
        .await;
    r.assert_scim_error(400, Some("invalidSyntax"));
}

#[tokio::test]
async fn non_object_json_is_400() {
    let app = TestApp::spawn().await;
    for body in ["[1,2]", "\"user\"", "42", "null"] {
        let r =
            app.send(Method::POST, &format!("{SCIM}/Users"), Some(("application/scim+json", body.into())), &[]).await;
        r.assert_scim_error(400, Some("invalidSyntax"));
    }
    assert_eq!(app.list("/Users").await.body["totalResults"], 0);
}

#[tokio::test]
async fn wrong_content_type_is_415_scim_error() {
    let app = TestApp::spawn().await;
    let body = okta_user("a@example.com", "A", "B").to_string();
    let r = app.send(Method::POST, &format!("{SCIM}/Users"), Some(("text/plain", body)), &[]).await;
    r.assert_scim_error(415, None);
    assert_eq!(app.list("/Users").await.body["totalResults"], 0);
}

#[tokio::test]
async fn body_over_8_mib_is_413_scim_error() {
    let app = TestApp::spawn().await;
    let big = json!({"userName": "a@example.com", "displayName": "x".repeat(8 * 1024 * 1024 + 10)}).to_string();
    let r = app.send(Method::POST, &format!("{SCIM}/Users"), Some(("application/scim+json", big)), &[]).await;
    r.assert_scim_error(413, None);
    assert_eq!(app.list("/Users").await.body["totalResults"], 0);
}

#[tokio::test]
async fn me_is_501_not_implemented() {
    let app = TestApp::spawn().await;
    app.get("/Me").await.assert_scim_error(501, None);
    app.post("/Me", json!({"userName": "x"})).await.assert_scim_error(501, None);
}

// ---------------------------------------------------------------------------------
// Search
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn post_search_on_users_groups_and_root() {
    let app = TestApp::spawn().await;
    let p = people(&app).await;
    let g = app.create_group_with("Admins", &[&p.alice]).await;
    app.create_group("Sales").await;

    let r = app
        .post(
            "/Users/.search",
            json!({"schemas": [SEARCH], "filter": "active eq true", "attributes": ["userName"], "sortBy": "userName",
                   "sortOrder": "descending", "startIndex": 1, "count": 10}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["schemas"], json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"]));
    assert_eq!(r.body["totalResults"], 2);
    assert_eq!(resource_ids(&r.body), vec![p.carol.clone(), p.alice.clone()]);
    assert!(r.body["Resources"][0].get("displayName").is_none());
    assert_eq!(r.body["Resources"][0]["userName"], "carol@sample.org");

    let r = app
        .post("/Groups/.search", json!({"schemas": [SEARCH], "filter": format!("members eq \"{}\"", p.alice), "excludedAttributes": "members"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(resource_ids(&r.body), vec![g.clone()]);
    assert!(r.body["Resources"][0].get("members").is_none());

    // Root: users then groups.
    let r = app.post("/.search", json!({"schemas": [SEARCH]})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["totalResults"], 5);
    let types: Vec<&str> =
        r.body["Resources"].as_array().unwrap().iter().map(|x| x["meta"]["resourceType"].as_str().unwrap()).collect();
    assert_eq!(types, vec!["User", "User", "User", "Group", "Group"]);
    let r = app.post("/.search", json!({"schemas": [SEARCH], "filter": "displayName sw \"a\""})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut ids = resource_ids(&r.body);
    ids.sort();
    assert_eq!(ids, sorted(&[&p.alice, &g]));
    let r = app.post("/.search", json!({"schemas": [SEARCH], "filter": "userName sw \"b\""})).await;
    assert_eq!(r.status, 200, "a filter on a User-only attribute searches users: {}", r.text);
    assert_eq!(resource_ids(&r.body), vec![p.bob.clone()]);
    // Paging across the two types.
    let r = app.post("/.search", json!({"schemas": [SEARCH], "startIndex": 3, "count": 2})).await;
    assert_eq!(r.body["totalResults"], 5);
    assert_eq!(r.body["itemsPerPage"], 2);
    let types: Vec<&str> =
        r.body["Resources"].as_array().unwrap().iter().map(|x| x["meta"]["resourceType"].as_str().unwrap()).collect();
    assert_eq!(types, vec!["User", "Group"]);
    let r = app.post("/.search", json!({"schemas": [SEARCH], "filter": "nosuch eq \"x\""})).await;
    r.assert_scim_error(400, Some("invalidFilter"));
}

// ---------------------------------------------------------------------------------
// Mount points
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn aliases_work_and_put_their_own_base_in_meta_location() {
    let app = TestApp::spawn().await;
    let r = app.request(Method::POST, "/scim/v2/Users", Some(okta_user("jane@example.com", "Jane", "Doe"))).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    let loc = r.body["meta"]["location"].as_str().unwrap();
    assert_eq!(loc, format!("{}/scim/v2/Users/{id}", app.base));
    assert_eq!(r.header("location"), Some(loc));

    for base in ["/api/latest/fleet/scim", "/scim/v2", SCIM] {
        let r = app.request(Method::GET, &format!("{base}/Users/{id}"), None).await;
        assert_eq!(r.status, 200, "{base}: {}", r.text);
        assert_eq!(r.body["meta"]["location"], format!("{}{base}/Users/{id}", app.base));
        let r = app.request(Method::GET, &format!("{base}/ServiceProviderConfig"), None).await;
        assert_eq!(r.body["meta"]["location"], format!("{}{base}/ServiceProviderConfig", app.base));
        let r = app.request(Method::GET, &format!("{base}/Nope"), None).await;
        r.assert_scim_error(404, None);
    }
    let gid = app.create_group_with("Eng", &[&id]).await;
    let r = app.request(Method::GET, &format!("/scim/v2/Groups/{gid}"), None).await;
    assert_eq!(r.body["members"][0]["$ref"], format!("{}/scim/v2/Users/{id}", app.base));
    let r = app.request(Method::GET, &format!("/api/latest/fleet/scim/Users/{id}"), None).await;
    assert_eq!(r.body["groups"][0]["$ref"], format!("{}/api/latest/fleet/scim/Groups/{gid}", app.base));
}

// ---------------------------------------------------------------------------------
// Nested groups
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn nested_groups_show_as_indirect_and_are_filterable() {
    let app = TestApp::spawn().await;
    let u = app.create_user("jane@example.com").await;
    let other = app.create_user("john@example.com").await;
    let a = app.create_group_with("A", &[&u]).await;
    let b = app.create_group("B").await;
    let r = app
        .patch(
            &format!("/Groups/{b}"),
            patch(json!([{"op": "add", "path": "members", "value": [{"value": a, "type": "Group"}]}])),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let group_b = app.get(&format!("/Groups/{b}")).await.body;
    assert_eq!(group_b["members"][0]["type"], "Group");
    assert!(group_b["members"][0]["$ref"].as_str().unwrap().ends_with(&format!("/Groups/{a}")));

    let user = app.get(&format!("/Users/{u}")).await.body;
    let groups = user["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{user}");
    let find = |id: &str| groups.iter().find(|g| g["value"] == id).unwrap_or_else(|| panic!("{id} missing: {user}"));
    assert_eq!(find(&a)["type"], "direct");
    assert_eq!(find(&a)["display"], "A");
    assert_eq!(find(&b)["type"], "indirect");
    assert_eq!(find(&b)["display"], "B");

    assert_eq!(users_where(&app, &format!(r#"groups eq "{b}""#)).await, vec![u.clone()]);
    assert_eq!(users_where(&app, &format!(r#"groups eq "{a}""#)).await, vec![u.clone()]);
    assert_eq!(users_where(&app, "not (groups pr)").await, vec![other]);
    // A group cannot contain itself.
    let r = app
        .patch(&format!("/Groups/{a}"), patch(json!([{"op": "add", "path": "members", "value": [{"value": a}]}])))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
}

// ---------------------------------------------------------------------------------
// Bulk
// ---------------------------------------------------------------------------------

fn id_of_location(loc: &Value) -> String {
    loc.as_str().unwrap().rsplit('/').next().unwrap().to_string()
}

#[tokio::test]
async fn bulk_creates_users_and_a_group_whose_members_reference_bulk_ids() {
    let app = TestApp::spawn().await;
    let body = json!({
        "schemas": [BULK_REQ],
        "Operations": [
            // The group comes first: its references resolve once the users exist.
            {"method": "POST", "path": "/Groups", "bulkId": "g1",
             "data": {"schemas": [GROUP], "displayName": "Bulk", "members": [{"type": "User", "value": "bulkId:u1"}, {"type": "User", "value": "bulkId:u2"}]}},
            {"method": "POST", "path": "/Users", "bulkId": "u1", "data": okta_user("u1@example.com", "U", "One")},
            {"method": "POST", "path": "/Users", "bulkId": "u2", "data": okta_user("u2@example.com", "U", "Two")}
        ]
    });
    let r = app.post("/Bulk", body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["schemas"], json!([BULK_RESP]));
    let ops = r.body["Operations"].as_array().unwrap();
    assert_eq!(ops.len(), 3, "{}", r.text);
    let by_bulk = |b: &str| ops.iter().find(|o| o["bulkId"] == b).unwrap_or_else(|| panic!("{b}: {}", r.text));
    for b in ["g1", "u1", "u2"] {
        assert_eq!(by_bulk(b)["status"], "201", "{}", r.text);
        assert_eq!(by_bulk(b)["method"], "POST");
    }
    let u1 = id_of_location(&by_bulk("u1")["location"]);
    let u2 = id_of_location(&by_bulk("u2")["location"]);
    let g1 = id_of_location(&by_bulk("g1")["location"]);
    assert_eq!(app.get(&format!("/Users/{u1}")).await.body["userName"], "u1@example.com");
    let g = app.get(&format!("/Groups/{g1}")).await.body;
    assert_eq!(g["displayName"], "Bulk");
    assert_eq!(member_values(&g), sorted(&[&u1, &u2]));
    assert_eq!(by_bulk("g1")["version"], g["meta"]["version"]);
}

#[tokio::test]
async fn bulk_patch_through_a_bulk_id_path() {
    let app = TestApp::spawn().await;
    let body = json!({
        "schemas": [BULK_REQ],
        "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "u1", "data": okta_user("u1@example.com", "U", "One")},
            {"method": "PATCH", "path": "/Users/bulkId:u1",
             "data": {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "displayName", "value": "Patched"}]}}
        ]
    });
    let r = app.post("/Bulk", body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ops = r.body["Operations"].as_array().unwrap();
    assert_eq!(ops[0]["status"], "201");
    assert_eq!(ops[1]["status"], "200", "{}", r.text);
    let id = id_of_location(&ops[0]["location"]);
    assert_eq!(ops[1]["location"], ops[0]["location"]);
    assert_eq!(app.get(&format!("/Users/{id}")).await.body["displayName"], "Patched");
}

#[tokio::test]
async fn bulk_fail_on_errors_1_stops_after_the_first_error() {
    let app = TestApp::spawn().await;
    app.create_user("dup@example.com").await;
    let body = json!({
        "schemas": [BULK_REQ],
        "failOnErrors": 1,
        "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "a", "data": okta_user("ok@example.com", "O", "K")},
            {"method": "POST", "path": "/Users", "bulkId": "b", "data": okta_user("dup@example.com", "D", "Up")},
            {"method": "POST", "path": "/Users", "bulkId": "c", "data": okta_user("never@example.com", "N", "Ever")}
        ]
    });
    let r = app.post("/Bulk", body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ops = r.body["Operations"].as_array().unwrap();
    assert_eq!(ops.len(), 2, "processing stops after the first error: {}", r.text);
    assert_eq!(ops[0]["status"], "201");
    assert_eq!(ops[1]["status"], "409");
    assert_eq!(ops[1]["response"]["scimType"], "uniqueness");
    assert_eq!(ops[1]["response"]["schemas"], json!(["urn:ietf:params:scim:api:messages:2.0:Error"]));
    assert!(users_where(&app, r#"userName eq "never@example.com""#).await.is_empty());
    assert_eq!(users_where(&app, r#"userName eq "ok@example.com""#).await.len(), 1);
}

#[tokio::test]
async fn bulk_over_1000_operations_is_413() {
    let app = TestApp::spawn().await;
    let ops: Vec<Value> = (0..1001)
        .map(|i| json!({"method": "POST", "path": "/Users", "bulkId": format!("u{i}"), "data": {"userName": format!("u{i}@example.com")}}))
        .collect();
    let r = app.post("/Bulk", json!({"schemas": [BULK_REQ], "Operations": ops})).await;
    r.assert_scim_error(413, None);
    assert_eq!(app.list("/Users?count=0").await.body["totalResults"], 0, "nothing was applied");
}

/// RFC 7644 §3.5.2: a group PATCH that asks for no attributes is answered 204 with the
/// new version's ETag and no body, and it changed what it said; asked for attributes,
/// it answers 200 with just those. A user PATCH answers the user.
#[tokio::test]
async fn a_group_patch_answers_204_unless_attributes_are_asked_for() {
    let app = TestApp::spawn().await;
    let a = app.create_user("a@example.com").await;
    let b = app.create_user("b@example.com").await;
    let c = app.create_user("c@example.com").await;
    let gid = app.create_group_with("Engineering", &[&a, &b]).await;
    let before = app.get(&format!("/Groups/{gid}")).await;

    let r = app
        .patch(
            &format!("/Groups/{gid}"),
            patch(json!([
                {"op": "remove", "path": format!("members[value eq \"{a}\"]")},
                {"op": "add", "path": "members", "value": [{"value": c}]}
            ])),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(r.text, "", "a 204 has no body");
    let after = app.get(&format!("/Groups/{gid}")).await;
    assert_eq!(member_values(&after.body), sorted(&[&b, &c]), "{}", after.text);
    assert_eq!(r.header("etag"), after.header("etag"), "the 204 carries the new version's ETag");
    assert_ne!(before.header("etag"), after.header("etag"));
    assert_eq!(after.body["meta"]["version"].as_str(), after.header("etag"));

    // Entra's form, and a rename: 204 as well.
    let r = app
        .patch(
            &format!("/Groups/{gid}"),
            patch(json!([
                {"op": "Remove", "path": "members", "value": [{"value": b}]},
                {"op": "Replace", "path": "displayName", "value": "R&D"}
            ])),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let after = app.get(&format!("/Groups/{gid}")).await.body;
    assert_eq!(member_values(&after), vec![c.clone()]);
    assert_eq!(after["displayName"], "R&D");

    // Asked for attributes: 200 with what was asked.
    let add_a = patch(json!([{"op": "add", "path": "members", "value": [{"value": a}]}]));
    let r = app.patch(&format!("/Groups/{gid}?excludedAttributes=members"), add_a.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["displayName"], "R&D");
    assert!(r.body.get("members").is_none(), "{}", r.text);
    let r = app.patch(&format!("/Groups/{gid}?attributes=members"), add_a).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(member_values(&r.body), sorted(&[&a, &c]));
    assert!(r.body.get("displayName").is_none(), "{}", r.text);

    // A failed group PATCH still answers its error body.
    let r = app.patch(&format!("/Groups/{gid}"), patch(json!([{"op": "replace", "path": "displayName"}]))).await;
    r.assert_scim_error(400, Some("invalidSyntax"));
    assert_eq!(app.get(&format!("/Groups/{gid}")).await.body["displayName"], "R&D", "nothing was written");

    // A user PATCH answers the user as it now is.
    let r = app.patch(&format!("/Users/{b}"), patch(json!([{"op": "replace", "value": {"active": false}}]))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!((r.body["id"].as_str(), &r.body["active"]), (Some(b.as_str()), &json!(false)));
}
