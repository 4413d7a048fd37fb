//! One corpus of hostile input sent to every route of the router (`App::route_templates`)
//! with every method it answers, as an admin who may reach the parsing: malformed and
//! truncated JSON, JSON nested 10,000 deep, 10 MB strings, invalid UTF-8, NUL bytes,
//! numbers where strings belong, filters of thousands of terms, look-alike and
//! differently normalised user names, path traversal in ids, oversize headers.
//! Every answer is a 4xx with an error body of the route's kind, within the client's
//! timeout, and the data afterwards is exactly what it was before.

use std::time::Duration;

use custodian::errors::{RouteKind, route_kind};
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::access_control::{Credentials, World, fill, methods_of, new_session, snapshot, world};
use crate::support::{API, Reply, SCIM, TestApp, assert_api_error};

/// One hostile request: a body (with its content type), a path, a query, headers.
struct Case {
    name: String,
    path: String,
    content_type: Option<&'static str>,
    body: Option<Vec<u8>>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Case {
    fn new(name: impl Into<String>, path: impl Into<String>) -> Self {
        Case { name: name.into(), path: path.into(), content_type: None, body: None, headers: Vec::new() }
    }
    /// A JSON body with the route's own media type, so that it reaches the parser.
    fn json(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.content_type =
            Some(if route_kind(&self.path) == RouteKind::Scim { "application/scim+json" } else { "application/json" });
        self.body = Some(body.into());
        self
    }
    fn typed(mut self, content_type: Option<&'static str>, body: impl Into<Vec<u8>>) -> Self {
        self.content_type = content_type;
        self.body = Some(body.into());
        self
    }
    fn form(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.content_type = Some("application/x-www-form-urlencoded");
        self.body = Some(body.into());
        self
    }
    fn header(mut self, name: &str, value: HeaderValue) -> Self {
        self.headers.push((HeaderName::from_bytes(name.as_bytes()).unwrap(), value));
        self
    }
}

const TEN_MB: usize = 10 * 1024 * 1024;

/// JSON bodies no route may accept.
fn hostile_json_bodies() -> Vec<(&'static str, Vec<u8>)> {
    let deep_arrays = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_objects = format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    let valid = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "mallory@example.com",
        "name": {"givenName": "Mallory"},
        "Operations": [{"op": "replace", "path": "displayName", "value": "Mallory"}]
    })
    .to_string();
    let mut invalid_utf8 = br#"{"userName": "mallory"#.to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe, 0xc3]);
    invalid_utf8.extend_from_slice(br#"@example.com", "displayName": "x"}"#);
    // Within every route's body limit but over every field's length limit, in each field
    // a route reads (four of them stay under SCIM's 8 MiB).
    let long = "m".repeat(1_500_000);
    let long_strings = json!({
        "userName": long, "displayName": long, "hostname": long, "uuid": "long-host", "name": long,
        "Operations": [{"op": "replace", "path": "displayName", "value": long}]
    })
    .to_string();
    let mut raw_nul = br#"{"userName": "mal"#.to_vec();
    raw_nul.push(0);
    raw_nul.extend_from_slice(br#"lory@example.com"}"#);
    vec![
        ("malformed JSON", br#"{"userName": "mallory@example.com", "#.to_vec()),
        ("truncated JSON", valid.as_bytes()[..valid.len() / 2].to_vec()),
        ("JSON nested 10,000 deep (arrays)", deep_arrays.into_bytes()),
        ("JSON nested 10,000 deep (objects)", deep_objects.into_bytes()),
        ("1.5 MB strings", long_strings.into_bytes()),
        ("10 MB string", format!(r#"{{"userName": "{}", "displayName": "x"}}"#, "a".repeat(TEN_MB)).into_bytes()),
        ("invalid UTF-8", invalid_utf8),
        ("raw NUL byte", raw_nul),
        (
            "escaped NUL characters",
            br#"{"userName": "mal\u0000lory@example.com", "displayName": "a\u0000b", "name": "x\u0000", "template": "\u0000", "Operations": [{"op": "replace", "path": "displayName", "value": "\u0000"}]}"#.to_vec(),
        ),
        (
            "numbers where strings belong",
            br#"{"schemas": 7, "userName": 12345, "displayName": 1e400, "name": 5, "emails": 3, "uuid": 9, "hostname": 1, "template": 2, "criteria": 3, "Operations": 4, "members": 5}"#.to_vec(),
        ),
        ("a JSON array", b"[]".to_vec()),
        ("a JSON string", br#""userName""#.to_vec()),
        ("JSON null", b"null".to_vec()),
        ("an empty body", Vec::new()),
    ]
}

/// A SCIM filter of `terms` comparisons joined by `or`.
fn filter_of(terms: usize) -> String {
    (0..terms).map(|i| format!("userName eq \"u{i}@example.com\"")).collect::<Vec<_>>().join(" or ")
}

/// Values of a path parameter that name nothing.
fn hostile_ids() -> Vec<(&'static str, String)> {
    vec![
        ("path traversal", "..%2F..%2F..%2Fetc%2Fpasswd".to_string()),
        ("encoded traversal", "%2e%2e%5c%2e%2e%5cwindows".to_string()),
        ("NUL byte", "abc%00def".to_string()),
        ("invalid UTF-8", "%FF%FE%C3".to_string()),
        ("SQL", "1%27%20OR%20%271%27%3D%271".to_string()),
        ("overflowing number", "99999999999999999999999999".to_string()),
        ("negative number", "-1".to_string()),
        ("10 kB id", "a".repeat(10_000)),
    ]
}

/// Query strings with bad parameters of list routes. SCIM's negative `count` and
/// `startIndex` are not among them: RFC 7644 §3.4.2.4 reads them as 0 and 1.
fn hostile_queries(kind: RouteKind) -> Vec<(&'static str, String)> {
    let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    vec![
        // 1,000 terms fill about 40 kB of query string, over the 16 KiB a target may hold
        // (414); 201 short ones fit, one more than a filter may hold. `.search` bodies
        // carry 5,000 below, and `very_long_urls_...` sends 5,000 in a URL.
        ("filter of 1,000 terms", format!("filter={}", encode(&filter_of(1_000)))),
        ("filter of 201 terms", format!("filter={}", encode(&vec!["id eq \"1\""; 201].join(" or ")))),
        (
            "filter nested 10,000 deep",
            format!("filter={}", encode(&format!("{}userName eq \"a\"{}", "(".repeat(10_000), ")".repeat(10_000)))),
        ),
        ("malformed filter", format!("filter={}", encode("userName eq"))),
        ("invalid UTF-8 in the query", "filter=%FF%FE&query=%FF&idp_group=%C3".to_string()),
        ("NUL in the query", "filter=userName%20eq%20%22a%00%22&query=a%00b&idp_username=%00".to_string()),
        (
            "negative numbers",
            if kind == RouteKind::Scim { "page=-1&per_page=-5" } else { "count=-5&startIndex=-9&page=-1&per_page=-5" }
                .to_string(),
        ),
        ("words for numbers", "count=many&startIndex=first&page=two&per_page=lots".to_string()),
        ("overflowing numbers", "count=99999999999999999999999&page=99999999999999999999999&per_page=1e99".to_string()),
        (
            "unknown sort keys",
            "sortBy=%3Bdrop%20table&sortOrder=sideways&order_key=1%3Bdrop&order_direction=up".to_string(),
        ),
        ("bad booleans", "idp_active=maybe&state=everything".to_string()),
    ]
}

/// Requests whose headers are hostile (sent to every route).
fn hostile_header_cases(path: &str) -> Vec<Case> {
    let big = HeaderValue::from_str(&"x".repeat(64 * 1024)).unwrap();
    let mut many = Case::new("300 headers of 200 bytes", path);
    for i in 0..300 {
        many = many.header(&format!("x-junk-{i}"), HeaderValue::from_str(&"y".repeat(200)).unwrap());
    }
    vec![Case::new("a 64 kB header", path).header("x-junk", big), many]
}

/// User names that must not become a second account: another normalisation of an
/// existing name (taken), and names that only look like one (refused).
fn hostile_user_names() -> Vec<(&'static str, String, StatusCode)> {
    vec![
        ("NFD of an existing NFC name", "jose\u{0301}@example.com".to_string(), StatusCode::CONFLICT),
        ("Cyrillic look-alike of a Latin name", "j\u{0430}ne@example.com".to_string(), StatusCode::BAD_REQUEST),
        ("right-to-left override", "jane\u{202e}moc.elpmaxe@example.com".to_string(), StatusCode::BAD_REQUEST),
        ("zero-width joiner", "ja\u{200d}ne@example.com".to_string(), StatusCode::BAD_REQUEST),
        ("fullwidth letters", "\u{ff4a}ane@example.com".to_string(), StatusCode::BAD_REQUEST),
    ]
}

/// Every hostile case for one route and method.
fn cases(template: &str, method: &Method, w: &World) -> Vec<Case> {
    let kind = route_kind(template);
    let path = fill(template, w, *method == Method::GET);
    let mut out = hostile_header_cases(&path);
    if template.contains('{') {
        for (name, id) in hostile_ids() {
            let hostile = template.replace("{id}", &id).replace("{identifier}", &id).replace("{name}", &id);
            out.push(Case::new(format!("id: {name}"), hostile));
        }
    }
    if *method == Method::GET {
        for (name, query) in hostile_queries(kind) {
            out.push(Case::new(format!("query: {name}"), format!("{path}?{query}")));
        }
    } else if *method != Method::DELETE {
        for (name, body) in hostile_json_bodies() {
            out.push(Case::new(format!("body: {name}"), path.clone()).json(body));
        }
        if kind == RouteKind::Web {
            let mut bad_utf8 = b"idp_username=%FF%FE&name=".to_vec();
            bad_utf8.extend_from_slice(&[0xff, 0x00, 0xc3]);
            out.push(Case::new("form: invalid UTF-8 and NUL", path.clone()).form(bad_utf8));
            out.push(Case::new("form: 10 MB field", path.clone()).form(format!("name={}", "a".repeat(TEN_MB))));
            out.push(Case::new("form: NUL in a field", path.clone()).form("idp_username=a%00b&name=t%00"));
        }
        // A body that is not sent as JSON: 415 on the JSON API and SCIM alike (SCIM reads
        // a body without a type as JSON, and this one is then refused for what it holds).
        let typed = if kind == RouteKind::Web {
            &[][..]
        } else {
            &[
                ("sent as XML", Some("application/xml")),
                ("sent as text", Some("text/plain; charset=utf-8")),
                ("sent without a type", None),
            ][..]
        };
        for &(name, content_type) in typed {
            let body = r#"{"name": "typed", "uuid": "typed-host", "email": "t@example.com", "template": "t"}"#;
            out.push(Case::new(format!("body: {name}"), path.clone()).typed(content_type, body));
        }
        if template.ends_with(".search") {
            let body =
                json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": filter_of(5_000)});
            out.push(Case::new("search: filter of 5,000 terms", path.clone()).json(body.to_string()));
        }
    }
    out
}

/// Asserts a 4xx with a well-formed error body of the route's kind.
fn assert_refused(status: StatusCode, content_type: &str, text: &str, kind: RouteKind, what: &str) {
    assert!(status.is_client_error(), "{what}: expected a 4xx, got {status}: {}", head(text));
    assert!(
        status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN || kind == RouteKind::Web,
        "{what}: the admin was refused ({status}), the input was not reached: {}",
        head(text)
    );
    match kind {
        RouteKind::Scim => {
            let body: Value = serde_json::from_str(text).unwrap_or(Value::Null);
            assert_eq!(content_type, "application/scim+json", "{what}: {}", head(text));
            assert_eq!(
                body["schemas"],
                json!(["urn:ietf:params:scim:api:messages:2.0:Error"]),
                "{what}: {}",
                head(text)
            );
            assert_eq!(body["status"], status.as_u16().to_string(), "{what}: {}", head(text));
            assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()), "{what}: {}", head(text));
        }
        RouteKind::Api => {
            let body: Value = serde_json::from_str(text).unwrap_or(Value::Null);
            assert!(content_type.starts_with("application/json"), "{what}: {content_type}: {}", head(text));
            assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {}", head(text));
            assert!(body["errors"].is_array(), "{what}: {}", head(text));
        }
        RouteKind::Web => {
            assert!(content_type.starts_with("text/html"), "{what}: {content_type}: {}", head(text));
            assert!(text.starts_with("<!DOCTYPE html>"), "{what}: {}", head(text));
        }
    }
}

fn head(text: &str) -> String {
    text.chars().take(300).collect()
}

struct Sender {
    client: reqwest::Client,
    base: String,
    creds: Credentials,
}

impl Sender {
    /// Sends a case; `None` when the server closed the connection without an answer.
    async fn send(&self, method: &Method, case: &Case) -> Result<(StatusCode, String, String), String> {
        let mut req = self.client.request(method.clone(), format!("{}{}", self.base, case.path));
        if let Some(t) = &self.creds.bearer {
            req = req.bearer_auth(t);
        }
        if let Some((cookie, csrf)) = &self.creds.session {
            req = req.header("cookie", format!("custodian_session={cookie}")).header("x-csrf-token", csrf.as_str());
        }
        if let Some(ct) = case.content_type {
            req = req.header("content-type", ct);
        }
        for (name, value) in &case.headers {
            req = req.header(name, value);
        }
        if let Some(body) = &case.body {
            req = req.body(body.clone());
        }
        let r = req.send().await.map_err(|e| format!("{e:?}"))?;
        let status = r.status();
        let content_type = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let text = r.text().await.map_err(|e| format!("{e:?}"))?;
        Ok((status, content_type, text))
    }
}

#[tokio::test]
async fn every_route_refuses_the_hostile_corpus_and_nothing_changes() {
    let app = TestApp::spawn().await;
    let w = world(&app).await;
    app.create_user("jos\u{e9}@example.com").await;
    let before = snapshot(&app, &w.tokens.admin).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let sender = Sender {
        client,
        base: app.base.clone(),
        creds: Credentials {
            bearer: Some(w.tokens.admin.clone()),
            session: Some(new_session(&app, w.person_ids[2].1).await),
            send_csrf: true,
        },
    };
    let mut sent = 0usize;
    let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
    for template in &app.routes {
        if template.ends_with("/Me") {
            // Answers 501 to anything, as RFC 7644 §3.11 asks of a provider without /Me.
            continue;
        }
        for method in methods_of(&app, &w, template).await {
            let kind = route_kind(template);
            for case in cases(template, &method, &w) {
                let what = format!("{method} {template} [{}]", case.name);
                let (status, content_type, text) = match sender.send(&method, &case).await {
                    Ok(answer) => answer,
                    Err(e) => panic!("{what}: no answer: {}", head(&e)),
                };
                sent += 1;
                *by_status.entry(status.as_u16()).or_default() += 1;
                if status.is_success() && method == Method::GET && case.name.starts_with("query:") {
                    // A route that takes none of these parameters ignores them: it must
                    // then answer exactly what it answers without them.
                    let plain = Case::new("plain", case.path.split('?').next().unwrap_or(""));
                    let (plain_status, _, plain_text) = sender.send(&method, &plain).await.unwrap();
                    assert_eq!(plain_status, status, "{what}");
                    if !VOLATILE.iter().any(|v| template.ends_with(v)) {
                        assert_eq!(
                            without_form_tokens(&plain_text),
                            without_form_tokens(&text),
                            "{what}: a hostile parameter changed a 200 answer"
                        );
                    }
                    continue;
                }
                if kind == RouteKind::Web && status == StatusCode::SEE_OTHER && template == "/" {
                    continue;
                }
                assert_refused(status, &content_type, &text, kind, &what);
            }
        }
    }
    sent += user_name_cases(&app, &sender).await;
    assert_eq!(snapshot(&app, &w.tokens.admin).await, before, "hostile input changed data");
    eprintln!(
        "hostile corpus: {sent} requests over {} route templates; answers by status: {by_status:?}",
        app.routes.len()
    );
}

/// A page with the values of its CSRF fields blanked: the sign-in and set-up forms get a
/// fresh random token on every read.
fn without_form_tokens(text: &str) -> String {
    const FIELD: &str = "name=\"csrf_token\" value=\"";
    let mut parts = text.split(FIELD);
    let mut out = parts.next().unwrap_or_default().to_string();
    for part in parts {
        out.push_str(FIELD);
        out.push_str(part.split_once('"').map_or(part, |(_, rest)| rest));
    }
    out
}

/// Routes whose answer changes between two reads because the corpus itself is being
/// sent: they show the SCIM request history or count requests.
const VOLATILE: &[&str] = &["/metrics", "/scim/requests", "/scim/details", "/settings/integrations/identity-provider"];

/// Creating, replacing and renaming users to look-alike or differently normalised names.
async fn user_name_cases(app: &TestApp, sender: &Sender) -> usize {
    let jane = app.list(&format!("/Users?filter={}", crate::support::enc("userName eq \"jane@example.com\""))).await;
    let jane_id = jane.body["Resources"][0]["id"].as_str().unwrap().to_string();
    let mut sent = 0;
    for (name, user_name, status) in hostile_user_names() {
        let create = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": user_name});
        let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "userName", "value": user_name}]});
        for (method, path, body) in [
            (Method::POST, format!("{SCIM}/Users"), create.clone()),
            (Method::PUT, format!("{SCIM}/Users/{jane_id}"), create),
            (Method::PATCH, format!("{SCIM}/Users/{jane_id}"), patch),
        ] {
            let what = format!("{method} {path} [user name: {name}]");
            let case = Case::new(name, path).json(body.to_string());
            let (got, content_type, text) = sender.send(&method, &case).await.unwrap();
            // A renamed jane is not a conflict with herself: the normalised name is
            // josé's, which is taken, so the rename conflicts too.
            assert_eq!(got, status, "{what}: {text}");
            assert_refused(got, &content_type, &text, RouteKind::Scim, &what);
            sent += 1;
        }
    }
    sent
}

/// A user (jane, in a group), a host linked to her and a label: what the cases below
/// could change. Returns the user's and the group's SCIM ids, the host's id and the
/// label's id.
async fn small_world(app: &TestApp) -> (String, String, i64, i64) {
    let user = app.create_user("jane@example.com").await;
    let group = app.create_group_with("Engineering", &[&user]).await;
    let host = app.enroll_host("host-1", Some("jane@example.com")).await;
    let r = app
        .api_post(
            "/labels",
            json!({"name": "Laptops", "criteria": {"vital": "end_user_idp_group", "value": "Engineering"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    (user, group, host, r.body["label"]["id"].as_i64().unwrap())
}

const FIVE_MB: usize = 5 * 1024 * 1024;

/// Asserts a SCIM 400 `invalidValue` whose detail names `attribute` and not the value.
fn assert_invalid_value(r: &Reply, attribute: &str, what: &str) {
    r.assert_scim_error(400, Some("invalidValue"));
    let detail = r.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(attribute), "{what}: the detail does not name {attribute}: {detail}");
    assert!(r.text.len() < 1000, "{what}: the answer echoes the value: {}", head(&r.text));
}

#[tokio::test]
async fn strings_over_their_limit_are_400_naming_the_field_and_nothing_is_written() {
    use custodian_domain::limits::{LONG_VALUE_MAX_BYTES, NAME_MAX_BYTES, TEXT_MAX_BYTES};
    let app = TestApp::spawn().await;
    let (user, group, host, label) = small_world(&app).await;
    let before = snapshot(&app, &app.token).await;
    let big = "a".repeat(FIVE_MB);
    let over = |max: usize| "b".repeat(max + 1);
    const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    let user_body = |extra: Value| {
        let mut body =
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "mallory@example.com"});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    let replace = |path: &str, value: &str| json!({"Operations": [{"op": "replace", "path": path, "value": value}]});
    let scim_cases: Vec<(Method, String, Value, &str, usize)> = vec![
        (Method::POST, "/Users".into(), user_body(json!({"userName": big})), "userName", NAME_MAX_BYTES),
        (Method::POST, "/Groups".into(), json!({"displayName": big}), "displayName", NAME_MAX_BYTES),
        (Method::PATCH, format!("/Groups/{group}"), replace("displayName", &big), "displayName", NAME_MAX_BYTES),
        (
            Method::PATCH,
            format!("/Groups/{group}"),
            json!({"Operations": [{"op": "replace", "value": {"id": group, "displayName": big}}]}),
            "displayName",
            NAME_MAX_BYTES,
        ),
        (
            Method::PUT,
            format!("/Users/{user}"),
            json!({"userName": "jane@example.com", "name": {"givenName": big}}),
            "name.givenName",
            NAME_MAX_BYTES,
        ),
        (Method::PATCH, format!("/Users/{user}"), replace("externalId", &big), "externalId", NAME_MAX_BYTES),
        (
            Method::PATCH,
            format!("/Users/{user}"),
            replace(&format!("{ENTERPRISE}:department"), &over(NAME_MAX_BYTES)),
            "department",
            NAME_MAX_BYTES,
        ),
        (
            Method::PATCH,
            format!("/Users/{user}"),
            replace("emails[type eq \"work\"].value", &over(NAME_MAX_BYTES)),
            "emails.value",
            NAME_MAX_BYTES,
        ),
        (
            Method::POST,
            "/Users".into(),
            user_body(json!({"emails": [{"value": format!("{}@example.com", over(NAME_MAX_BYTES))}]})),
            "emails.value",
            NAME_MAX_BYTES,
        ),
        (
            Method::POST,
            "/Users".into(),
            user_body(json!({"addresses": [{"formatted": over(LONG_VALUE_MAX_BYTES)}]})),
            "addresses.formatted",
            LONG_VALUE_MAX_BYTES,
        ),
        (
            Method::POST,
            "/Users".into(),
            user_body(json!({ENTERPRISE: {"manager": {"value": over(NAME_MAX_BYTES)}}})),
            "manager.value",
            NAME_MAX_BYTES,
        ),
        (
            Method::PATCH,
            format!("/Groups/{group}"),
            json!({"Operations": [{"op": "add", "path": "members", "value": [{"value": over(NAME_MAX_BYTES)}]}]}),
            "members.value",
            NAME_MAX_BYTES,
        ),
        // 1,024 bytes as sent, three times as many once in NFC: the index holds that form,
        // which must be within the limit too.
        (
            Method::POST,
            "/Users".into(),
            user_body(json!({"userName": "\u{1d160}".repeat(256)})),
            "userName",
            NAME_MAX_BYTES,
        ),
    ];
    for (method, path, body, attribute, max) in scim_cases {
        let what = format!("{method} {path} [{attribute}]");
        let r = app.request(method, &format!("{SCIM}{path}"), Some(body)).await;
        assert_invalid_value(&r, attribute, &what);
        assert!(r.body["detail"].as_str().unwrap().contains(&format!("at most {max} bytes")), "{what}: {}", r.text);
    }
    // A Bulk operation is held to the same rules, and stops there with failOnErrors.
    let bulk = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "failOnErrors": 1, "Operations": [
        {"method": "POST", "path": "/Users", "bulkId": "m", "data": user_body(json!({"displayName": over(NAME_MAX_BYTES)}))}]});
    let r = app.post("/Bulk", bulk).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let answer = &r.body["Operations"][0]["response"];
    assert_eq!(
        (answer["status"].as_str(), answer["scimType"].as_str()),
        (Some("400"), Some("invalidValue")),
        "{}",
        r.text
    );

    // The JSON API: 400, the field named with its limit.
    let criteria = json!({"vital": "end_user_idp_group", "value": "Engineering"});
    let api_cases: Vec<(Method, String, Value, &str, usize)> = vec![
        (Method::POST, "/hosts".into(), json!({"uuid": "new-host", "hostname": big}), "hostname", NAME_MAX_BYTES),
        (Method::POST, "/hosts".into(), json!({"uuid": over(NAME_MAX_BYTES)}), "uuid", NAME_MAX_BYTES),
        (
            Method::POST,
            "/hosts".into(),
            json!({"uuid": "new-host", "device_mapping": [{"email": over(NAME_MAX_BYTES), "source": "custom"}]}),
            "device_mapping[0].email",
            NAME_MAX_BYTES,
        ),
        // One host over a limit refuses the whole batch: the valid one is not written.
        (
            Method::POST,
            "/hosts/batch".into(),
            json!({"hosts": [{"uuid": "fine-host"}, {"uuid": "new-host", "hardware_serial": big}]}),
            "hosts[1].hardware_serial",
            NAME_MAX_BYTES,
        ),
        (
            Method::PUT,
            format!("/hosts/{host}/device_mapping"),
            json!({"email": format!("{}@example.com", over(NAME_MAX_BYTES)), "source": "idp"}),
            "email",
            NAME_MAX_BYTES,
        ),
        (
            Method::POST,
            "/labels".into(),
            json!({"name": over(NAME_MAX_BYTES), "criteria": criteria}),
            "name",
            NAME_MAX_BYTES,
        ),
        (
            Method::PATCH,
            format!("/labels/{label}"),
            json!({"description": over(TEXT_MAX_BYTES)}),
            "description",
            TEXT_MAX_BYTES,
        ),
        (
            Method::PATCH,
            format!("/labels/{label}"),
            json!({"criteria": {"or": [criteria, {"vital": "end_user_idp_department", "value": over(NAME_MAX_BYTES)}]}}),
            "criteria.or[1].value",
            NAME_MAX_BYTES,
        ),
        (
            Method::POST,
            format!("/hosts/{host}/render"),
            json!({"template": over(custodian::api::render::MAX_TEMPLATE)}),
            "template",
            custodian::api::render::MAX_TEMPLATE,
        ),
    ];
    for (method, path, body, field, max) in api_cases {
        let what = format!("{method} {path} [{field}]");
        let r = app.api_as(Some(&app.token), method, &format!("{API}{path}"), Some(body)).await;
        assert_api_error(&r, 400, field);
        let reason =
            r.body["errors"].as_array().unwrap().iter().find(|e| e["name"] == field).unwrap()["reason"].clone();
        assert_eq!(reason, json!(format!("at most {max} bytes")), "{what}: {}", r.text);
        assert!(r.text.len() < 1000, "{what}: the answer echoes the value: {}", head(&r.text));
    }
    assert_eq!(snapshot(&app, &app.token).await, before, "a refused value changed data");

    // Values at their limits are kept whole, on both backends (PostgreSQL indexes every
    // SCIM value: a limit the index cannot hold would answer 500 here).
    let noise = |n: usize| {
        let mut s = String::new();
        while s.len() < n {
            s.push_str(&uuid::Uuid::new_v4().simple().to_string());
        }
        s.truncate(n);
        s
    };
    let name = format!("{}@example.com", "\u{e9}".repeat((NAME_MAX_BYTES - 12) / 2));
    assert!(name.len() <= NAME_MAX_BYTES);
    let created = app
        .create_user_with(user_body(json!({
            "userName": name,
            "displayName": noise(NAME_MAX_BYTES),
            "addresses": [{"formatted": noise(LONG_VALUE_MAX_BYTES), "streetAddress": noise(LONG_VALUE_MAX_BYTES)}],
            "x509Certificates": [{"value": noise(LONG_VALUE_MAX_BYTES)}],
            ENTERPRISE: {"department": noise(NAME_MAX_BYTES)}
        })))
        .await;
    let read = app.get(&format!("/Users/{}", created["id"].as_str().unwrap())).await;
    assert_eq!(read.body["userName"], json!(name));
    assert_eq!(read.body["addresses"][0]["formatted"].as_str().map(str::len), Some(LONG_VALUE_MAX_BYTES));
    let r = app.api_post("/hosts", json!({"uuid": noise(NAME_MAX_BYTES), "hostname": noise(NAME_MAX_BYTES)})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", head(&r.text));
    assert_eq!(r.body["host"]["hostname"].as_str().map(str::len), Some(NAME_MAX_BYTES));
    let r = app
        .api_as(
            Some(&app.token),
            Method::PATCH,
            &format!("{API}/labels/{label}"),
            Some(json!({"description": noise(TEXT_MAX_BYTES)})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", head(&r.text));
    assert_eq!(r.body["label"]["description"].as_str().map(str::len), Some(TEXT_MAX_BYTES));
}

#[tokio::test]
async fn values_of_the_wrong_shape_are_400_invalid_value_naming_the_attribute_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let (user, group, _, _) = small_world(&app).await;
    let before = snapshot(&app, &app.token).await;
    const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
    const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    let post =
        |attribute: &str, value: Value| json!({"schemas": [USER], "userName": "mallory@example.com", attribute: value});
    let put =
        |attribute: &str, value: Value| json!({"schemas": [USER], "userName": "jane@example.com", attribute: value});
    let with_path =
        |attribute: &str, value: Value| json!({"Operations": [{"op": "add", "path": attribute, "value": value}]});
    let pathless =
        |attribute: &str, value: Value| json!({"Operations": [{"op": "replace", "value": {attribute: value}}]});
    let multi = ["emails", "phoneNumbers", "addresses", "ims", "photos", "entitlements", "roles", "x509Certificates"];
    let mut cases: Vec<(Method, String, Value, String)> = Vec::new();
    for attribute in multi {
        for wrong in [json!("x@example.com"), json!(42), json!(["x@example.com"])] {
            cases.push((Method::POST, "/Users".into(), post(attribute, wrong.clone()), attribute.into()));
            cases.push((Method::PUT, format!("/Users/{user}"), put(attribute, wrong.clone()), attribute.into()));
            cases.push((
                Method::PATCH,
                format!("/Users/{user}"),
                with_path(attribute, wrong.clone()),
                attribute.into(),
            ));
            cases.push((Method::PATCH, format!("/Users/{user}"), pathless(attribute, wrong), attribute.into()));
        }
    }
    // Read-only, but a wrong shape is refused all the same.
    cases.push((Method::POST, "/Users".into(), post("groups", json!("Engineering")), "groups".into()));
    cases.push((Method::PATCH, format!("/Users/{user}"), pathless("groups", json!(7)), "groups".into()));
    for wrong in [json!([{"givenName": "Mallory"}]), json!("Mallory"), json!(5)] {
        cases.push((Method::POST, "/Users".into(), post("name", wrong.clone()), "name".into()));
        cases.push((Method::PATCH, format!("/Users/{user}"), with_path("name", wrong), "name".into()));
    }
    for wrong in [json!(7), json!([{"value": "a"}, {"value": "b"}]), json!(true)] {
        cases.push((
            Method::POST,
            "/Users".into(),
            post(ENTERPRISE, json!({"manager": wrong.clone()})),
            "manager".into(),
        ));
        cases.push((Method::PATCH, format!("/Users/{user}"), with_path("manager", wrong), "manager".into()));
    }
    cases.push((Method::POST, "/Users".into(), post("displayName", json!(12345)), "displayName".into()));
    cases.push((Method::POST, "/Users".into(), post("title", json!({"x": 1})), "title".into()));
    for wrong in [json!(user), json!([user]), json!(5)] {
        let body = json!({"displayName": "Mallory's", "members": wrong});
        cases.push((Method::POST, "/Groups".into(), body, "members".into()));
        let body = json!({"displayName": "Engineering", "members": wrong});
        cases.push((Method::PUT, format!("/Groups/{group}"), body, "members".into()));
        for op in ["add", "replace", "remove"] {
            let body = json!({"Operations": [{"op": op, "path": "members", "value": wrong}]});
            cases.push((Method::PATCH, format!("/Groups/{group}"), body, "members".into()));
        }
    }
    for (method, path, body, attribute) in cases {
        let what = format!("{method} {path} {body}");
        let r = app.request(method, &format!("{SCIM}{path}"), Some(body)).await;
        assert_invalid_value(&r, &attribute, &what);
    }
    assert_eq!(snapshot(&app, &app.token).await, before, "a value of the wrong shape changed data");

    // What IdPs send in these places is still taken: Entra's manager as a bare id and as
    // a list of one, a lone email object, Okta's member list.
    let r = app
        .patch(
            &format!("/Users/{user}"),
            json!({"Operations": [
                {"op": "Replace", "path": format!("{ENTERPRISE}:manager"), "value": "boss-id"},
                {"op": "Add", "path": "emails", "value": {"value": "jane@home.example", "type": "home"}}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body[ENTERPRISE]["manager"]["value"], "boss-id", "{}", r.text);
    assert_eq!(r.body["emails"][1]["value"], "jane@home.example", "{}", r.text);
    let r = app
        .patch(
            &format!("/Users/{user}"),
            json!({"Operations": [{"op": "Add", "path": "manager", "value": [{"value": "boss-2"}]}]}),
        )
        .await;
    assert_eq!(r.body[ENTERPRISE]["manager"]["value"], "boss-2", "{}", r.text);
}

#[tokio::test]
async fn json_api_bodies_not_sent_as_json_are_415_naming_the_header_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let (_, _, host, label) = small_world(&app).await;
    let before = snapshot(&app, &app.token).await;
    let criteria = json!({"vital": "end_user_idp_department", "value": "Sales"});
    // Each body valid for its route: only how it is sent is wrong.
    let routes: Vec<(Method, String, Value)> = vec![
        (Method::POST, "/hosts".into(), json!({"uuid": "typed-host", "hostname": "typed"})),
        (Method::POST, "/hosts/batch".into(), json!({"hosts": [{"uuid": "typed-host"}]})),
        (Method::PUT, format!("/hosts/{host}/device_mapping"), json!({"email": "t@example.com", "source": "idp"})),
        (Method::POST, "/labels".into(), json!({"name": "Typed", "criteria": criteria})),
        (Method::PATCH, format!("/labels/{label}"), json!({"name": "Renamed"})),
        (Method::POST, format!("/hosts/{host}/render"), json!({"template": "hello"})),
        (Method::POST, format!("/labels/{label}/render"), json!({"template": "hello"})),
    ];
    let refused = [
        Some("application/xml"),
        Some("text/plain"),
        Some("application/scim+json"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonp"),
        Some(""),
        None,
    ];
    for (method, path, body) in &routes {
        for content_type in refused {
            let what = format!("{method} {path} as {content_type:?}");
            let mut req =
                app.client.request(method.clone(), format!("{}{API}{path}", app.base)).bearer_auth(&app.token);
            if let Some(ct) = content_type {
                req = req.header("content-type", ct);
            }
            let r = TestApp::read(req.body(body.to_string()).send().await.unwrap()).await;
            assert_api_error(&r, 415, "Content-Type");
            assert_eq!(
                r.body["errors"],
                json!([{"name": "Content-Type", "reason": "must be application/json"}]),
                "{what}"
            );
        }
    }
    assert_eq!(snapshot(&app, &app.token).await, before, "a body not sent as JSON changed data");

    // application/json in any case, with parameters, is read; an empty body without a
    // type is malformed JSON, not a media-type error.
    for content_type in ["application/json; charset=utf-8", "Application/JSON", "application/json ;charset=UTF-8"] {
        let r = app
            .send(
                Method::PATCH,
                &format!("{API}/labels/{label}"),
                Some((content_type, json!({"name": content_type}).to_string())),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{content_type}: {}", r.text);
        assert_eq!(r.body["label"]["name"], content_type);
    }
    let r = app.client.post(format!("{}{API}/labels", app.base)).bearer_auth(&app.token).send().await.unwrap();
    let r = TestApp::read(r).await;
    assert_api_error(&r, 400, "body");
    // SCIM routes keep their own rule: both JSON media types, 415 for anything else.
    let user = json!({"userName": "typed@example.com"});
    let r = app.send(Method::POST, &format!("{SCIM}/Users"), Some(("application/xml", user.to_string())), &[]).await;
    r.assert_scim_error(415, None);
}

/// Reads one response from a raw connection: status, Content-Type and body (by its
/// Content-Length), leaving the connection ready for the next.
async fn read_one_response(stream: &mut tokio::net::TcpStream) -> (u16, String, String) {
    use tokio::io::AsyncReadExt;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let read = async {
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "the server closed the connection: {}", String::from_utf8_lossy(&raw));
            raw.extend_from_slice(&buf[..n]);
            let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
            let head = String::from_utf8_lossy(&raw[..end]).to_string();
            let header = |name: &str| {
                head.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                })
            };
            let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
            if raw.len() >= end + 4 + length {
                let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
                let body = String::from_utf8_lossy(&raw[end + 4..end + 4 + length]).to_string();
                return (status, header("content-type").unwrap_or_default(), body);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read).await.expect("no answer within 60 s")
}

#[tokio::test]
async fn very_long_urls_are_414_with_the_routes_error_body_and_the_connection_goes_on() {
    use custodian::limits::MAX_REQUEST_TARGET_BYTES;
    use tokio::io::AsyncWriteExt;
    let app = TestApp::spawn().await;
    small_world(&app).await;
    let before = snapshot(&app, &app.token).await;
    let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let five_thousand = format!("filter={}", encode(&filter_of(5_000)));
    assert!(five_thousand.len() > 200_000, "{}", five_thousand.len());
    let megabyte = format!("query={}", "q".repeat(1024 * 1024));
    let just_over = |path: &str| format!("x={}", "a".repeat(MAX_REQUEST_TARGET_BYTES - path.len() - 2));
    let cases: Vec<(String, RouteKind)> = vec![
        // Past hyper's own 64 KiB limit, and past its 256 KiB buffer.
        (format!("{SCIM}/Users?{five_thousand}"), RouteKind::Scim),
        (format!("/scim/v2/Groups?{five_thousand}"), RouteKind::Scim),
        (format!("{API}/hosts?{megabyte}"), RouteKind::Api),
        (format!("/hosts?{five_thousand}"), RouteKind::Web),
        (format!("{SCIM}/Users/{}", "p".repeat(100_000)), RouteKind::Scim),
        // Between our limit and hyper's.
        (format!("{SCIM}/Users?{}", just_over(&format!("{SCIM}/Users"))), RouteKind::Scim),
        (format!("{API}/labels?{}", just_over(&format!("{API}/labels"))), RouteKind::Api),
    ];
    let mut stream = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap();
    for (target, kind) in &cases {
        let what = format!("{kind:?} target of {} bytes", target.len());
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nAccept: */*\r\n\r\n",
            app.token
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let (status, content_type, body) = read_one_response(&mut stream).await;
        assert_eq!(status, 414, "{what}: {}", head(&body));
        assert_refused(StatusCode::URI_TOO_LONG, &content_type, &body, *kind, &what);
        assert!(body.contains(&MAX_REQUEST_TARGET_BYTES.to_string()), "{what}: the limit is named: {}", head(&body));
        assert!(body.len() < 2000, "{what}: the target is not echoed: {}", head(&body));
        if *kind == RouteKind::Scim {
            assert!(body.contains(".search"), "{what}: {body}");
        }
    }
    // The same connection still serves, with what followed each long line intact.
    let ok =
        format!("GET {SCIM}/Users?count=1 HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\r\n", app.token);
    stream.write_all(ok.as_bytes()).await.unwrap();
    let (status, _, body) = read_one_response(&mut stream).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["totalResults"], 1, "{body}");
    // A POST whose long target is cut keeps its body for the next request's sake: the
    // body is read (and ignored), and the connection goes on.
    let body = r#"{"name": "never", "criteria": {"vital": "end_user_idp_group", "value": "x"}}"#;
    let post = format!(
        "POST {API}/labels?{megabyte} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        app.token,
        body.len()
    );
    stream.write_all(post.as_bytes()).await.unwrap();
    let (status, content_type, text) = read_one_response(&mut stream).await;
    assert_refused(StatusCode::from_u16(status).unwrap(), &content_type, &text, RouteKind::Api, "cut POST");
    assert_eq!(status, 414, "{text}");
    stream.write_all(ok.as_bytes()).await.unwrap();
    assert_eq!(read_one_response(&mut stream).await.0, 200);
    // At the limit, a target is served.
    let path = format!("{SCIM}/Users");
    let at_limit = format!("{path}?x={}", "a".repeat(MAX_REQUEST_TARGET_BYTES - path.len() - 3));
    assert_eq!(at_limit.len(), MAX_REQUEST_TARGET_BYTES);
    assert_eq!(app.request(Method::GET, &at_limit, None).await.status, StatusCode::OK);
    assert_eq!(snapshot(&app, &app.token).await, before, "a long URL changed data");
}
