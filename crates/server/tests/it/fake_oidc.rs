//! An in-process OpenID provider that can sign bad ID tokens: discovery, JWKS, a token
//! endpoint that checks what a real provider checks (client authentication, the code
//! used once, the redirect URI, the PKCE S256 verifier) and userinfo. The authorization
//! step needs no browser: a test reads the authorization request Custodian redirected to
//! and asks for a code with `issue_code`, choosing how its ID token is forged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const CLIENT_ID: &str = "custodian-test-client";
pub const CLIENT_SECRET: &str = "a-client-secret-of-forty-characters-long";

/// How the ID token of a code is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forge {
    Good,
    WrongAudience,
    WrongIssuer,
    Expired,
    AlgNone,
    /// HS256 with the client secret as the key (what a confused verifier accepts).
    Hs256WithSecret,
    WrongNonce,
    /// Signed with a key the JWKS never publishes.
    UnknownKid,
    /// Several audiences and no `azp`.
    ExtraAudienceWithoutAzp,
    /// Our audience, but authorized for another party.
    WrongAzp,
    /// Issued ten minutes in the future.
    IssuedInTheFuture,
}

/// A person at the provider.
#[derive(Debug, Clone)]
pub struct Person {
    pub sub: String,
    pub name: String,
    pub email: String,
    pub email_verified: bool,
    pub groups: Vec<String>,
}

impl Person {
    pub fn new(sub: &str, email: &str, groups: &[&str]) -> Person {
        Person {
            sub: sub.into(),
            name: format!("Person {sub}"),
            email: email.into(),
            email_verified: true,
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }
}

struct Key {
    kid: String,
    private: rsa::RsaPrivateKey,
}

impl Key {
    fn new(kid: &str) -> Key {
        Key { kid: kid.into(), private: rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap() }
    }
    fn jwk(&self) -> Value {
        let public = self.private.to_public_key();
        json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid,
               "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
               "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be())})
    }
    fn encoding(&self) -> jsonwebtoken::EncodingKey {
        jsonwebtoken::EncodingKey::from_rsa_der(self.private.to_pkcs1_der().unwrap().as_bytes())
    }
}

struct Grant {
    challenge: String,
    redirect_uri: String,
    nonce: String,
    person: Person,
    forge: Forge,
}

struct Inner {
    issuer: String,
    /// The issuer the discovery document states (differs in one test).
    stated_issuer: Option<String>,
    /// Published in the JWKS; the first signs good tokens.
    published: Vec<Key>,
    /// Never published.
    stranger: Key,
    grants: HashMap<String, Grant>,
    access_tokens: HashMap<String, Person>,
    jwks_fetches: usize,
    /// Leave the groups out of the ID token (userinfo still has them).
    groups_in_userinfo_only: bool,
}

#[derive(Clone)]
pub struct FakeProvider {
    pub issuer: String,
    inner: Arc<Mutex<Inner>>,
    _stop: Arc<tokio::sync::oneshot::Sender<()>>,
}

impl FakeProvider {
    pub async fn start() -> FakeProvider {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let inner = Arc::new(Mutex::new(Inner {
            issuer: issuer.clone(),
            stated_issuer: None,
            published: vec![Key::new("key-1")],
            stranger: Key::new("stranger"),
            grants: HashMap::new(),
            access_tokens: HashMap::new(),
            jwks_fetches: 0,
            groups_in_userinfo_only: false,
        }));
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/token", post(token))
            .route("/userinfo", get(userinfo))
            .with_state(inner.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        FakeProvider { issuer, inner, _stop: Arc::new(tx) }
    }

    /// The discovery document states this issuer instead of its own.
    pub fn state_issuer(&self, issuer: &str) {
        self.inner.lock().unwrap().stated_issuer = Some(issuer.into());
    }

    pub fn groups_in_userinfo_only(&self) {
        self.inner.lock().unwrap().groups_in_userinfo_only = true;
    }

    pub fn jwks_fetches(&self) -> usize {
        self.inner.lock().unwrap().jwks_fetches
    }

    /// Rotates keys: a new key, published first (and signing), the old one kept.
    pub fn rotate_key(&self, kid: &str) {
        self.inner.lock().unwrap().published.insert(0, Key::new(kid));
    }

    /// Checks an authorization request as the provider's authorization endpoint would,
    /// and returns the code it would send to the redirect URI.
    pub fn issue_code(
        &self,
        authorization_url: &str,
        person: &Person,
        forge: Forge,
    ) -> (String, HashMap<String, String>) {
        let url = reqwest::Url::parse(authorization_url).unwrap();
        assert_eq!(
            format!("{}{}", url.origin().ascii_serialization(), url.path()),
            format!("{}/authorize", self.issuer)
        );
        let q: HashMap<String, String> = url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], CLIENT_ID);
        assert_eq!(q["code_challenge_method"], "S256", "PKCE with S256");
        assert!(q["scope"].split(' ').any(|s| s == "openid"), "{}", q["scope"]);
        assert!(q["state"].len() >= 16 && q["nonce"].len() >= 16, "state and nonce are random");
        let code = format!("code-{}", uuid::Uuid::new_v4().simple());
        self.inner.lock().unwrap().grants.insert(
            code.clone(),
            Grant {
                challenge: q["code_challenge"].clone(),
                redirect_uri: q["redirect_uri"].clone(),
                nonce: q["nonce"].clone(),
                person: person.clone(),
                forge,
            },
        );
        (code, q)
    }
}

type Shared = State<Arc<Mutex<Inner>>>;

async fn discovery(State(inner): Shared) -> Json<Value> {
    let i = inner.lock().unwrap();
    let base = &i.issuer;
    Json(json!({
        "issuer": i.stated_issuer.clone().unwrap_or_else(|| base.clone()),
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "userinfo_endpoint": format!("{base}/userinfo"),
        "jwks_uri": format!("{base}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "HS256", "none"],
        "scopes_supported": ["openid", "email", "profile", "groups"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "email", "email_verified", "name", "groups"]
    }))
}

async fn jwks(State(inner): Shared) -> Json<Value> {
    let mut i = inner.lock().unwrap();
    i.jwks_fetches += 1;
    Json(json!({"keys": i.published.iter().map(Key::jwk).collect::<Vec<_>>()}))
}

fn oauth_error(error: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": error}))).into_response()
}

async fn token(State(inner): Shared, headers: HeaderMap, body: String) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    // client_secret_basic: the id and secret, form-urlencoded, in HTTP Basic.
    let expected = format!("Basic {}", STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}")));
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_client"}))).into_response();
    }
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return oauth_error("unsupported_grant_type");
    }
    let mut i = inner.lock().unwrap();
    // Used once, whatever follows.
    let Some(grant) = form.get("code").and_then(|c| i.grants.remove(c)) else { return oauth_error("invalid_grant") };
    if form.get("redirect_uri") != Some(&grant.redirect_uri) {
        return oauth_error("invalid_grant");
    }
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != grant.challenge {
        return oauth_error("invalid_grant");
    }
    let now = chrono::Utc::now().timestamp();
    let p = &grant.person;
    let mut claims = json!({
        "iss": i.issuer, "sub": p.sub, "aud": CLIENT_ID, "iat": now, "exp": now + 300, "nonce": grant.nonce,
        "name": p.name, "email": p.email, "email_verified": p.email_verified,
    });
    if !i.groups_in_userinfo_only {
        claims["groups"] = json!(p.groups);
    }
    match grant.forge {
        Forge::WrongAudience => claims["aud"] = json!("another-client"),
        Forge::WrongIssuer => claims["iss"] = json!("https://evil.example"),
        Forge::Expired => {
            claims["iat"] = json!(now - 3600);
            claims["exp"] = json!(now - 120);
        }
        Forge::WrongNonce => claims["nonce"] = json!("not-the-nonce-custodian-sent"),
        Forge::ExtraAudienceWithoutAzp => claims["aud"] = json!([CLIENT_ID, "another-client"]),
        Forge::WrongAzp => claims["azp"] = json!("another-client"),
        Forge::IssuedInTheFuture => {
            claims["iat"] = json!(now + 600);
            claims["exp"] = json!(now + 900);
        }
        _ => {}
    }
    let id_token = match grant.forge {
        Forge::AlgNone => {
            let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
            format!("{header}.{}.", URL_SAFE_NO_PAD.encode(claims.to_string()))
        }
        Forge::Hs256WithSecret => jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(CLIENT_SECRET.as_bytes()),
        )
        .unwrap(),
        forge => {
            let key = if forge == Forge::UnknownKid { &i.stranger } else { &i.published[0] };
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
            header.kid = Some(key.kid.clone());
            jsonwebtoken::encode(&header, &claims, &key.encoding()).unwrap()
        }
    };
    let access_token = format!("at-{}", uuid::Uuid::new_v4().simple());
    i.access_tokens.insert(access_token.clone(), grant.person.clone());
    Json(json!({"access_token": access_token, "token_type": "Bearer", "expires_in": 300, "id_token": id_token}))
        .into_response()
}

async fn userinfo(State(inner): Shared, headers: HeaderMap) -> Response {
    let i = inner.lock().unwrap();
    let token = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let Some(p) = token.and_then(|t| i.access_tokens.get(t)) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    Json(
        json!({"sub": p.sub, "name": p.name, "email": p.email, "email_verified": p.email_verified, "groups": p.groups}),
    )
    .into_response()
}
