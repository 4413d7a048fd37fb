//! A fake Google for tests, built from Google's documentation: the OAuth token endpoint
//! of service accounts (it verifies the RS256 assertion against the public half of a key
//! generated here, every claim, and the grant type) and the Directory API's users,
//! groups and members lists with real paging, false booleans left out, and injected
//! failures. It listens on 127.0.0.1; nothing reaches the internet.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};

use crate::token::{ASSERTION_LIFETIME_SECS, Claims, JWT_BEARER_GRANT};

/// A failure to answer instead of the real one.
#[derive(Debug, Clone)]
pub enum FaultAnswer {
    /// An error status with Google's error body (`reason` in `errors[0]`).
    Status { status: u16, reason: String, retry_after: Option<u64> },
    /// No answer for this long (longer than the client's timeout: a timeout).
    Delay(Duration),
}

/// Answers `answer` to the next `times` requests whose path contains `path` (and, with
/// `page`, that ask for that page, from 0).
#[derive(Debug, Clone)]
pub struct Fault {
    pub path: String,
    pub page: Option<usize>,
    pub times: usize,
    pub answer: FaultAnswer,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    pub path: String,
    pub query: HashMap<String, String>,
}

pub struct FakeState {
    pub customer_id: String,
    pub users: Vec<Value>,
    pub groups: Vec<Value>,
    pub members: HashMap<String, Vec<Value>>,
    /// Emails that may be impersonated and hold an admin role.
    pub admins: HashSet<String>,
    /// Whether domain-wide delegation is set up for the service account's client id.
    pub delegated: bool,
    pub granted_scopes: Vec<String>,
    pub faults: Vec<Fault>,
    pub log: Vec<Logged>,
    /// Token exchanges, with their verified claims.
    pub exchanges: Vec<Claims>,
    tokens: HashMap<String, Vec<String>>,
}

pub struct FakeGoogle {
    pub base_url: String,
    pub state: Arc<Mutex<FakeState>>,
    key: Value,
    _stop: tokio::sync::oneshot::Sender<()>,
}

struct Shared {
    state: Arc<Mutex<FakeState>>,
    decoding: jsonwebtoken::DecodingKey,
    client_email: String,
    token_uri: String,
    key_id: String,
}

pub const CLIENT_EMAIL: &str = "custodian-sync@example-project.iam.gserviceaccount.com";
pub const CLIENT_ID: &str = "104236547983210987654";

impl FakeGoogle {
    /// Starts the fake with a new RSA key, an empty directory, delegation set up with
    /// the three scopes, and `admin@example.com` as an admin.
    pub async fn start() -> FakeGoogle {
        let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
        let pem = private.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
        let n = URL_SAFE_NO_PAD.encode(private.n().to_bytes_be());
        let e = URL_SAFE_NO_PAD.encode(private.e().to_bytes_be());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let token_uri = format!("{base_url}/token");
        let key_id = "3f1c0e9a8b7d6c5e4f3a2b1c0d9e8f7a6b5c4d3e".to_string();
        let state = Arc::new(Mutex::new(FakeState {
            customer_id: "C03az79cb".into(),
            users: Vec::new(),
            groups: Vec::new(),
            members: HashMap::new(),
            admins: HashSet::from(["admin@example.com".to_string()]),
            delegated: true,
            granted_scopes: crate::SCOPES.iter().map(|s| s.to_string()).collect(),
            faults: Vec::new(),
            log: Vec::new(),
            exchanges: Vec::new(),
            tokens: HashMap::new(),
        }));
        let shared = Arc::new(Shared {
            state: state.clone(),
            decoding: jsonwebtoken::DecodingKey::from_rsa_components(&n, &e).unwrap(),
            client_email: CLIENT_EMAIL.into(),
            token_uri: token_uri.clone(),
            key_id: key_id.clone(),
        });
        let app = Router::new()
            .route("/token", post(token))
            .route("/admin/directory/v1/users", get(users))
            .route("/admin/directory/v1/groups", get(groups))
            .route("/admin/directory/v1/groups/{id}/members", get(members))
            .with_state(shared);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        let key = json!({
            "type": "service_account",
            "project_id": "example-project",
            "private_key_id": key_id,
            "private_key": pem,
            "client_email": CLIENT_EMAIL,
            "client_id": CLIENT_ID,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "universe_domain": "googleapis.com"
        });
        FakeGoogle { base_url, state, key, _stop: tx }
    }

    /// The key file's JSON, as Google issues it.
    pub fn key_json(&self) -> Value {
        self.key.clone()
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut FakeState) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }
}

/// A user as the Directory API answers it (`projection=full`): false booleans left out.
pub fn user(id: &str, primary_email: &str, given: &str, family: &str, org_unit_path: &str) -> Value {
    json!({
        "kind": "admin#directory#user",
        "id": id,
        "etag": format!("\"etag-{id}\""),
        "primaryEmail": primary_email,
        "name": {"givenName": given, "familyName": family, "fullName": format!("{given} {family}")},
        "emails": [{"address": primary_email, "primary": true}],
        "orgUnitPath": org_unit_path,
        "customerId": "C03az79cb",
        "creationTime": "2024-03-01T09:00:00.000Z",
        "lastLoginTime": "2026-11-30T08:12:00.000Z"
    })
}

pub fn group(id: &str, email: &str, name: &str) -> Value {
    json!({"kind": "admin#directory#group", "id": id, "etag": format!("\"etag-{id}\""), "email": email,
           "name": name, "directMembersCount": "0", "description": "", "adminCreated": true})
}

pub fn member(id: &str, email: &str, kind: &str) -> Value {
    json!({"kind": "admin#directory#member", "etag": format!("\"etag-m-{id}\""), "id": id, "email": email,
           "role": "MEMBER", "type": kind, "status": "ACTIVE"})
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (status, axum::Json(json!({"error": error, "error_description": description}))).into_response()
}

fn api_error(status: u16, reason: &str, message: &str, retry_after: Option<u64>) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({"error": {"code": status, "message": message,
        "errors": [{"message": message, "domain": "global", "reason": reason}]}});
    let mut r = (code, axum::Json(body)).into_response();
    if let Some(s) = retry_after {
        r.headers_mut().insert("retry-after", s.to_string().parse().unwrap());
    }
    r
}

async fn token(State(s): State<Arc<Shared>>, Form(form): Form<HashMap<String, String>>) -> Response {
    if form.get("grant_type").map(String::as_str) != Some(JWT_BEARER_GRANT) {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "Invalid grant_type");
    }
    let Some(assertion) = form.get("assertion") else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "Missing required parameter: assertion");
    };
    let header = match jsonwebtoken::decode_header(assertion) {
        Ok(h) => h,
        Err(_) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Invalid JWT"),
    };
    if header.alg != jsonwebtoken::Algorithm::RS256 || header.kid.as_deref() != Some(s.key_id.as_str()) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Invalid JWT Signature.");
    }
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[s.token_uri.as_str()]);
    validation.set_issuer(&[s.client_email.as_str()]);
    validation.set_required_spec_claims(&["exp", "iat", "aud", "iss", "sub"]);
    validation.leeway = 60;
    let claims = match jsonwebtoken::decode::<Claims>(assertion, &s.decoding, &validation) {
        Ok(d) => d.claims,
        Err(e) => {
            let description = match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => "Invalid JWT Signature.".to_string(),
                other => format!("Invalid JWT: {other:?}"),
            };
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", &description);
        }
    };
    let now = chrono::Utc::now().timestamp();
    if claims.exp - claims.iat > ASSERTION_LIFETIME_SECS || claims.iat > now + 60 {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.",
        );
    }
    let mut st = s.state.lock().unwrap();
    if !st.delegated {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized_client",
            "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.",
        );
    }
    let scopes: Vec<String> = claims.scope.split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect();
    if scopes.is_empty() || scopes.iter().any(|sc| !st.granted_scopes.contains(sc)) {
        return oauth_error(StatusCode::BAD_REQUEST, "access_denied", "Requested client not authorized.");
    }
    let known = st.admins.contains(&claims.sub)
        || st.users.iter().any(|u| u["primaryEmail"].as_str() == Some(claims.sub.as_str()));
    if !known {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Invalid email or User ID");
    }
    let access = format!("ya29.fake-{}-{}", st.exchanges.len(), now);
    let mut granted = scopes;
    if !st.admins.contains(&claims.sub) {
        // Not an admin: the token works, the Directory API answers 403 forbidden.
        granted.clear();
    }
    st.tokens.insert(access.clone(), granted);
    st.exchanges.push(claims);
    axum::Json(json!({"access_token": access, "expires_in": 3599, "token_type": "Bearer"})).into_response()
}

/// The checks every Directory API request passes: a live token with the scope, the log,
/// and an injected fault if one matches. `Err` is the answer to send instead.
async fn admit(
    s: &Shared,
    headers: &HeaderMap,
    path: &str,
    query: &HashMap<String, String>,
    scope: &str,
) -> Result<(), Response> {
    let page = query.get("pageToken").and_then(|t| page_of(t)).unwrap_or(0);
    let fault = {
        let mut st = s.state.lock().unwrap();
        st.log.push(Logged { path: path.to_string(), query: query.clone() });
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        match st.tokens.get(token) {
            None => return Err(api_error(401, "authError", "Invalid Credentials", None)),
            Some(granted) if !granted.iter().any(|g| g == scope) => {
                return Err(api_error(403, "forbidden", "Not Authorized to access this resource/api", None));
            }
            Some(_) => {}
        }
        let found =
            st.faults.iter().position(|f| f.times > 0 && path.contains(&f.path) && f.page.is_none_or(|p| p == page));
        found.map(|i| {
            st.faults[i].times -= 1;
            st.faults[i].answer.clone()
        })
    };
    match fault {
        None => Ok(()),
        Some(FaultAnswer::Status { status, reason, retry_after }) => {
            Err(api_error(status, &reason, "injected", retry_after))
        }
        Some(FaultAnswer::Delay(d)) => {
            tokio::time::sleep(d).await;
            Ok(())
        }
    }
}

fn page_of(token: &str) -> Option<usize> {
    token.strip_prefix("page-")?.parse().ok()
}

/// One page of `items` of at most `max` (Google's limit `limit`), with its next token.
/// One page of `items` (only that page is copied: a fake of 50,000 users stays fast).
fn paged(key: &str, items: &[&Value], query: &HashMap<String, String>, default: usize, limit: usize) -> Response {
    let max = match query.get("maxResults").map(|m| m.parse::<usize>()) {
        None => default,
        Some(Ok(m)) if (1..=limit).contains(&m) => m,
        Some(_) => return api_error(400, "invalid", "Invalid value for maxResults", None),
    };
    let page = match query.get("pageToken") {
        None => 0,
        Some(t) => match page_of(t) {
            Some(p) => p,
            None => return api_error(400, "invalid", "Invalid page token", None),
        },
    };
    let chunk: Vec<Value> = items.iter().skip(page * max).take(max).map(|v| (*v).clone()).collect();
    let mut body = json!({"kind": format!("admin#directory#{key}"), "etag": "\"list\""});
    if !chunk.is_empty() {
        body[key] = Value::Array(chunk);
    }
    if (page + 1) * max < items.len() {
        body["nextPageToken"] = json!(format!("page-{}", page + 1));
    }
    axum::Json(body).into_response()
}

fn customer_ok(st: &FakeState, query: &HashMap<String, String>) -> bool {
    query.get("customer").is_some_and(|c| c == "my_customer" || *c == st.customer_id)
}

async fn users(State(s): State<Arc<Shared>>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    if let Err(r) = admit(&s, &headers, "/users", &q, crate::SCOPES[0]).await {
        return r;
    }
    let st = s.state.lock().unwrap();
    if !customer_ok(&st, &q) {
        return api_error(400, "badRequest", "Bad Request", None);
    }
    let scope = q.get("query").map(|query| {
        query.strip_prefix("orgUnitPath='").and_then(|r| r.strip_suffix('\'')).map(|p| p.replace("\\'", "'"))
    });
    let items: Vec<&Value> = st
        .users
        .iter()
        .filter(|u| match &scope {
            None => true,
            // Google matches the org unit and its whole subtree.
            Some(Some(p)) => u["orgUnitPath"].as_str().is_some_and(|o| o == p || o.starts_with(&format!("{p}/"))),
            Some(None) => false,
        })
        .collect();
    paged("users", &items, &q, 100, 500)
}

async fn groups(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = admit(&s, &headers, "/groups", &q, crate::SCOPES[1]).await {
        return r;
    }
    let st = s.state.lock().unwrap();
    if !customer_ok(&st, &q) {
        return api_error(400, "badRequest", "Bad Request", None);
    }
    let items: Vec<&Value> = st.groups.iter().collect();
    paged("groups", &items, &q, 200, 200)
}

async fn members(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = admit(&s, &headers, &format!("/groups/{id}/members"), &q, crate::SCOPES[2]).await {
        return r;
    }
    let st = s.state.lock().unwrap();
    if !st.groups.iter().any(|g| g["id"].as_str() == Some(id.as_str())) {
        return api_error(404, "notFound", "Resource Not Found: groupKey", None);
    }
    let items: Vec<&Value> = st.members.get(&id).map(|m| m.iter().collect()).unwrap_or_default();
    paged("members", &items, &q, 200, 200)
}
