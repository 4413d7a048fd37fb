//! Operators' single sign-on with the company's OpenID provider (authorization code
//! with PKCE), on the `openidconnect` crate: discovery, the authorization request, the
//! code exchange and the ID token's checks. The crate checks the signature, `iss`, `aud`
//! (every other audience refused), `exp` and `nonce`; this module adds what it leaves to
//! its callers: asymmetric algorithms only, `azp`, 60 s of clock skew on `exp` and `iat`,
//! `email_verified`, the allowed domains (and Google's `hd`), and one JWKS refresh on an
//! unknown `kid` (the provider rotated its keys).

use std::time::Duration;

use custodian_domain::Role;
use custodian_domain::web::RoleGroups;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreGenderClaim, CoreJsonWebKey, CoreJsonWebKeySet,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IdToken, IdTokenClaims, IdTokenVerifier, IssuerUrl, JwsSigningAlgorithm, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, SignatureVerificationError,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::RwLock;

/// The clock skew allowed between Custodian and the provider on `exp` and `iat`.
pub const CLOCK_SKEW: chrono::Duration = chrono::Duration::seconds(60);
/// How long a request to the provider may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// `serve`'s single sign-on flags, as given.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// The button reads "Sign in with {display_name}".
    pub display_name: String,
    pub groups_claim: String,
    pub role_groups: RoleGroups,
    /// Lower-case domains; empty: any.
    pub allowed_domains: Vec<String>,
}

/// Why a sign-in failed. Shown to the person as a plain sentence, logged with the
/// detail; neither holds a token, a code or the client secret.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The provider's answer, token or claims are not acceptable.
    #[error("{0}")]
    Refused(String),
    /// The provider could not be reached or answered in error.
    #[error("{0}")]
    Provider(String),
}

/// The claims the `openidconnect` crate does not know: the groups claim (its name is
/// configured) and Google's `hd`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct OtherClaims {
    #[serde(flatten)]
    pub claims: serde_json::Map<String, Value>,
}

impl AdditionalClaims for OtherClaims {}

type ProviderIdToken =
    IdToken<OtherClaims, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;
type Claims = IdTokenClaims<OtherClaims, CoreGenderClaim>;
type Client =
    CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

/// What a checked sign-in says about the person.
#[derive(Debug, Clone)]
pub struct SignedInPerson {
    pub subject: String,
    pub name: String,
    /// Only when `email_verified` is true.
    pub verified_email: Option<String>,
    pub groups: Vec<String>,
}

/// An authorization request to send the browser to, with the secrets to keep for the
/// callback.
pub struct Authorization {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// The provider, discovered at start.
pub struct OidcProvider {
    pub settings: OidcSettings,
    /// The issuer exactly as the discovery document states it (equal to the flag's).
    pub issuer: String,
    client: Client,
    metadata: CoreProviderMetadata,
    /// The provider's keys, fetched again when a token names a key not among them.
    jwks: RwLock<CoreJsonWebKeySet>,
    allowed_algs: Vec<CoreJwsSigningAlgorithm>,
    http: reqwest::Client,
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProvider").field("issuer", &self.issuer).finish_non_exhaustive()
    }
}

fn is_asymmetric(alg: &CoreJwsSigningAlgorithm) -> bool {
    !alg.uses_shared_secret() && *alg != CoreJwsSigningAlgorithm::None
}

impl OidcProvider {
    /// Reads `{issuer}/.well-known/openid-configuration` and the provider's keys. Every
    /// error names the flag to fix.
    pub async fn discover(settings: OidcSettings) -> anyhow::Result<OidcProvider> {
        if settings.client_id.trim().is_empty() {
            anyhow::bail!("--oidc-client-id is required with --oidc-issuer");
        }
        if settings.client_secret.trim().is_empty() {
            anyhow::bail!(
                "--oidc-client-secret-file (or CUSTODIAN_OIDC_CLIENT_SECRET) is required with --oidc-issuer, and \
                 must not be empty"
            );
        }
        if settings.role_groups.is_empty() {
            anyhow::bail!(
                "--oidc-admin-groups, --oidc-maintainer-groups or --oidc-observer-groups: name at least one group, \
                 or nobody can sign in with --oidc-issuer"
            );
        }
        let issuer_url = IssuerUrl::new(settings.issuer.trim_end_matches('/').to_string())
            .map_err(|e| anyhow::anyhow!("--oidc-issuer is not a URL: {e}"))?;
        let http = reqwest::Client::builder()
            // The provider's answers are read, never followed elsewhere (no SSRF by redirect).
            .redirect(reqwest::redirect::Policy::none())
            .timeout(HTTP_TIMEOUT)
            .build()
            .map_err(|e| anyhow::anyhow!("building the HTTP client of --oidc-issuer: {e}"))?;
        // Discovery checks that the document's `issuer` is the one asked for.
        let metadata = CoreProviderMetadata::discover_async(issuer_url.clone(), &http).await.map_err(|e| {
            anyhow::anyhow!(
                "--oidc-issuer {}: reading {}/.well-known/openid-configuration failed: {}",
                settings.issuer,
                issuer_url.as_str().trim_end_matches('/'),
                error_chain(&e)
            )
        })?;
        if metadata.token_endpoint().is_none() {
            anyhow::bail!("--oidc-issuer {}: the discovery document has no token_endpoint", settings.issuer);
        }
        let allowed_algs: Vec<CoreJwsSigningAlgorithm> =
            metadata.id_token_signing_alg_values_supported().iter().filter(|a| is_asymmetric(a)).cloned().collect();
        if allowed_algs.is_empty() {
            anyhow::bail!(
                "--oidc-issuer {}: the provider signs ID tokens with no asymmetric algorithm (RS256, ES256, ...); \
                 Custodian accepts no other",
                settings.issuer
            );
        }
        let client = CoreClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(settings.client_id.clone()),
            Some(ClientSecret::new(settings.client_secret.clone())),
        );
        let jwks = RwLock::new(metadata.jwks().clone());
        let issuer = metadata.issuer().as_str().to_string();
        Ok(OidcProvider { settings, issuer, client, metadata, jwks, allowed_algs, http })
    }

    /// The authorization request (code flow, PKCE S256, state and nonce) to send the
    /// browser to.
    pub fn authorize(&self, redirect_uri: &str) -> Result<Authorization, OidcError> {
        let redirect = RedirectUrl::new(redirect_uri.to_string())
            .map_err(|e| OidcError::Refused(format!("the redirect URI is not a URL: {e}")))?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = self
            .client
            .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("profile".into()))
            .add_scopes(self.groups_scope())
            .set_pkce_challenge(challenge)
            .set_redirect_uri(std::borrow::Cow::Owned(redirect))
            .url();
        Ok(Authorization {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// The `groups` scope, when the provider lists it (Okta's and oidc-provider's groups
    /// claim comes with it; Entra ID sends groups without a scope).
    fn groups_scope(&self) -> Vec<Scope> {
        let listed = self.metadata.scopes_supported().is_some_and(|s| s.iter().any(|s| s.as_str() == "groups"));
        if listed { vec![Scope::new("groups".into())] } else { Vec::new() }
    }

    /// Exchanges the code and checks the ID token; the groups come from the ID token, or
    /// from the userinfo endpoint when the token has no groups claim.
    pub async fn finish(
        &self,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
        redirect_uri: &str,
    ) -> Result<SignedInPerson, OidcError> {
        let redirect = RedirectUrl::new(redirect_uri.to_string())
            .map_err(|e| OidcError::Refused(format!("the redirect URI is not a URL: {e}")))?;
        let response = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| OidcError::Provider(format!("the provider has no token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()))
            .set_redirect_uri(std::borrow::Cow::Owned(redirect))
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::Provider(format!("the token endpoint refused the code: {}", error_chain(&e))))?;
        let raw = response
            .extra_fields()
            .id_token()
            .ok_or_else(|| OidcError::Refused("the token response has no ID token".into()))?
            .to_string();
        let token: ProviderIdToken =
            // The parser's message may quote a claim (personal data): not logged.
            raw.parse().map_err(|_| OidcError::Refused("the ID token is not a JWT Custodian can read".into()))?;
        let claims = self.verified_claims(&token, nonce).await?;
        let mut person = self.person(&claims)?;
        if !claims.additional_claims().claims.contains_key(&self.settings.groups_claim) {
            person.groups = self.userinfo_groups(response.access_token().secret(), &person.subject).await?;
        }
        Ok(person)
    }

    /// The token's claims after every check; on a key the provider's set lacks, the set
    /// is fetched again once.
    async fn verified_claims(&self, token: &ProviderIdToken, nonce: &str) -> Result<Claims, OidcError> {
        let nonce = Nonce::new(nonce.to_string());
        let first = {
            let jwks = self.jwks.read().await;
            token.claims(&self.verifier(jwks.clone()), &nonce).cloned()
        };
        let claims = match first {
            Err(ClaimsVerificationError::SignatureVerification(SignatureVerificationError::NoMatchingKey)) => {
                let fresh = CoreJsonWebKeySet::fetch_async(self.metadata.jwks_uri(), &self.http)
                    .await
                    .map_err(|e| OidcError::Provider(format!("fetching the provider's keys: {}", error_chain(&e))))?;
                tracing::info!(keys = fresh.keys().len(), "fetched the OpenID provider's keys again (unknown kid)");
                *self.jwks.write().await = fresh.clone();
                token.claims(&self.verifier(fresh), &nonce).cloned()
            }
            other => other,
        }
        .map_err(|e| OidcError::Refused(format!("the ID token is not valid: {}", error_chain(&e))))?;
        // azp (OpenID Connect Core 3.1.3.7, steps 4 and 5), which the crate leaves out.
        let client_id = &self.settings.client_id;
        match claims.authorized_party() {
            Some(azp) if azp.as_str() != client_id => {
                return Err(OidcError::Refused(format!("the ID token's azp is not this client ({client_id})")));
            }
            None if claims.audiences().len() > 1 => {
                return Err(OidcError::Refused("the ID token has several audiences and no azp".into()));
            }
            _ => {}
        }
        Ok(claims)
    }

    fn verifier(&self, jwks: CoreJsonWebKeySet) -> IdTokenVerifier<'static, CoreJsonWebKey> {
        // A public-client verifier: without the client secret, an HS* token cannot verify.
        IdTokenVerifier::new_public_client(
            ClientId::new(self.settings.client_id.clone()),
            self.metadata.issuer().clone(),
            jwks,
        )
        .set_allowed_algs(self.allowed_algs.clone())
        // exp may be up to the skew in the past.
        .set_time_fn(|| chrono::Utc::now() - CLOCK_SKEW)
        .set_issue_time_verifier_fn(|iat| {
            if iat > chrono::Utc::now() + CLOCK_SKEW { Err(format!("issued in the future ({iat})")) } else { Ok(()) }
        })
    }

    /// The person of checked claims: the email only when verified; the allowed domains.
    fn person(&self, claims: &Claims) -> Result<SignedInPerson, OidcError> {
        let verified_email = match (claims.email(), claims.email_verified()) {
            (Some(email), Some(true)) => Some(email.as_str().trim().to_string()),
            _ => None,
        };
        let other = &claims.additional_claims().claims;
        if !self.settings.allowed_domains.is_empty() {
            let Some(email) = &verified_email else {
                return Err(OidcError::Refused(
                    "the provider sent no verified email, and sign-in is limited to some domains".into(),
                ));
            };
            let domain = email.rsplit_once('@').map(|(_, d)| d.to_lowercase()).unwrap_or_default();
            if !self.settings.allowed_domains.contains(&domain) {
                return Err(OidcError::Refused(format!("the email domain {domain} is not allowed")));
            }
            if let Some(hd) = other.get("hd").and_then(Value::as_str)
                && !self.settings.allowed_domains.contains(&hd.to_lowercase())
            {
                return Err(OidcError::Refused(format!("the Google Workspace domain {hd} is not allowed")));
            }
        }
        let name = claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str().to_string())
            .or_else(|| claims.preferred_username().map(|u| u.as_str().to_string()))
            .or_else(|| verified_email.clone())
            .unwrap_or_else(|| claims.subject().as_str().to_string());
        Ok(SignedInPerson {
            subject: claims.subject().as_str().to_string(),
            name,
            verified_email,
            groups: groups_of(other.get(&self.settings.groups_claim)),
        })
    }

    /// The groups claim of the userinfo endpoint (for a `sub` equal to the token's).
    async fn userinfo_groups(&self, access_token: &str, subject: &str) -> Result<Vec<String>, OidcError> {
        let Some(url) = self.metadata.userinfo_endpoint() else { return Ok(Vec::new()) };
        let response = self
            .http
            .get(url.url().clone())
            .bearer_auth(access_token)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| OidcError::Provider(format!("reading userinfo: {}", error_chain(&e))))?;
        if !response.status().is_success() {
            return Err(OidcError::Provider(format!("the userinfo endpoint answered {}", response.status())));
        }
        let body: Value =
            response.json().await.map_err(|e| OidcError::Provider(format!("userinfo is not JSON: {e}")))?;
        if body.get("sub").and_then(Value::as_str) != Some(subject) {
            return Err(OidcError::Refused("userinfo is about another subject than the ID token".into()));
        }
        Ok(groups_of(body.get(&self.settings.groups_claim)))
    }

    /// The role the person's groups give, if any.
    pub fn role_of(&self, person: &SignedInPerson) -> Option<Role> {
        self.settings.role_groups.role_of(&person.groups)
    }
}

/// A groups claim: a list of names (or ids), or one name.
fn groups_of(claim: Option<&Value>) -> Vec<String> {
    match claim {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        Some(Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    }
}

/// An error and its causes, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_groups_claim_is_a_list_or_one_name() {
        assert_eq!(groups_of(Some(&serde_json::json!(["a", 3, "b"]))), vec!["a", "b"]);
        assert_eq!(groups_of(Some(&serde_json::json!("admins"))), vec!["admins"]);
        assert!(groups_of(None).is_empty());
    }

    #[test]
    fn only_asymmetric_algorithms_are_accepted() {
        assert!(is_asymmetric(&CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256));
        assert!(is_asymmetric(&CoreJwsSigningAlgorithm::EcdsaP256Sha256));
        assert!(!is_asymmetric(&CoreJwsSigningAlgorithm::HmacSha256));
        assert!(!is_asymmetric(&CoreJwsSigningAlgorithm::None));
    }
}
