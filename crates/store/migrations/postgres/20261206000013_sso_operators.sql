-- PostgreSQL twin of migrations/sqlite/20261206000013_sso_operators.sql.

-- SSO operators, keyed by issuer and subject; `sso_email_norm` finds them from a SCIM
-- deactivation; the block columns say why one may not sign in.
ALTER TABLE api_users ADD COLUMN sso_issuer TEXT COLLATE "C";
ALTER TABLE api_users ADD COLUMN sso_subject TEXT COLLATE "C";
ALTER TABLE api_users ADD COLUMN sso_email_norm TEXT COLLATE "C";
ALTER TABLE api_users ADD COLUMN sso_blocked_at TEXT COLLATE "C";
ALTER TABLE api_users ADD COLUMN sso_blocked_reason TEXT;
CREATE UNIQUE INDEX api_users_sso_subject ON api_users (sso_issuer, sso_subject);
CREATE INDEX api_users_sso_email ON api_users (sso_email_norm);

-- Sign-ins under way: single-use, short-lived, bound to the browser.
CREATE TABLE oidc_logins (
    state_digest    BYTEA PRIMARY KEY,
    browser_digest  BYTEA NOT NULL,
    nonce           TEXT COLLATE "C" NOT NULL,
    pkce_verifier   TEXT COLLATE "C" NOT NULL,
    redirect_uri    TEXT NOT NULL,
    next_path       TEXT NOT NULL,
    expires_at      TEXT COLLATE "C" NOT NULL
);
CREATE INDEX oidc_logins_expires ON oidc_logins (expires_at);
