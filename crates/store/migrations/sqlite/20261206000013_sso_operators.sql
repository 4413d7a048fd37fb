-- Operators who sign in with the company's OpenID provider, and the sign-ins under way.

-- An SSO operator is keyed by its provider's issuer and subject (`sub`), never by email:
-- an email can be reassigned, a subject cannot. `sso_email_norm` is the verified email of
-- the last sign-in (lower case), by which a SCIM deactivation finds the operator; it is
-- not unique, unlike `email_norm`, which SSO operators leave NULL (the email belongs to
-- the IdP account, not to a password sign-in). `sso_blocked_at` and `sso_blocked_reason`
-- are set when the IdP deactivates or deletes the matching user, and cleared when it
-- reactivates it.
ALTER TABLE api_users ADD COLUMN sso_issuer TEXT;
ALTER TABLE api_users ADD COLUMN sso_subject TEXT;
ALTER TABLE api_users ADD COLUMN sso_email_norm TEXT;
ALTER TABLE api_users ADD COLUMN sso_blocked_at TEXT;
ALTER TABLE api_users ADD COLUMN sso_blocked_reason TEXT;
CREATE UNIQUE INDEX api_users_sso_subject ON api_users (sso_issuer, sso_subject);
CREATE INDEX api_users_sso_email ON api_users (sso_email_norm);

-- A sign-in between the redirect to the provider and its callback: single-use (the
-- callback deletes the row), short-lived, and bound to the browser that started it (the
-- digest of a random cookie). `state` is stored as its SHA-256 digest.
CREATE TABLE oidc_logins (
    state_digest    BLOB PRIMARY KEY,
    browser_digest  BLOB NOT NULL,
    nonce           TEXT NOT NULL,
    pkce_verifier   TEXT NOT NULL,
    redirect_uri    TEXT NOT NULL,
    next_path       TEXT NOT NULL,
    expires_at      TEXT NOT NULL
);
CREATE INDEX oidc_logins_expires ON oidc_logins (expires_at);
