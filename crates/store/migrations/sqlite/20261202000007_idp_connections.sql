-- IdP connections: each a namespace of SCIM users and groups with its own SCIM-only
-- tokens and request history, ranked by priority (lower wins) for host mapping. The
-- connection `default` (id 1) owns everything written before connections existed, and
-- is where operators' tokens write.
CREATE TABLE idp_connections (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    name_norm   TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL CHECK (kind IN ('scim', 'google_workspace')),
    priority    INTEGER NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);
INSERT INTO idp_connections (id, name, name_norm, kind, priority, created_at)
VALUES (1, 'default', 'default', 'scim', 100, strftime('%Y-%m-%dT%H:%M:%S', 'now') || '.000000Z');

-- A connection's tokens, stored as digests like operators' tokens. A revoked token is
-- kept so that its use is answered "revoked" rather than "unknown".
CREATE TABLE idp_connection_tokens (
    id             INTEGER PRIMARY KEY,
    connection_id  INTEGER NOT NULL REFERENCES idp_connections (id) ON DELETE CASCADE,
    lookup         TEXT NOT NULL,
    digest         BLOB NOT NULL,
    created_at     TEXT NOT NULL,
    expires_at     TEXT,
    last_used_at   TEXT,
    revoked_at     TEXT
);
CREATE INDEX idp_connection_tokens_lookup ON idp_connection_tokens (lookup);
CREATE INDEX idp_connection_tokens_connection ON idp_connection_tokens (connection_id);

-- Every user and group belongs to one connection. (SQLite cannot add a column that
-- references another table with a non-null default; removing a connection deletes its
-- resources explicitly, as it must also unlink their hosts.)
ALTER TABLE scim_resources ADD COLUMN connection_id INTEGER NOT NULL DEFAULT 1;
-- Names are unique per connection. Led by (kind, unique_norm), the index also finds a
-- host's candidates in every connection at once.
DROP INDEX scim_resources_unique;
CREATE UNIQUE INDEX scim_resources_unique ON scim_resources (kind, unique_norm, connection_id);
DROP INDEX scim_resources_kind_seq;
CREATE INDEX scim_resources_connection_seq ON scim_resources (connection_id, kind, seq);

-- Each request's connection: its page shows its own history.
ALTER TABLE scim_requests ADD COLUMN connection_id INTEGER;
CREATE INDEX scim_requests_connection ON scim_requests (connection_id, id);

-- Hosts whose identity a changed connection may now win (linked ones included).
CREATE INDEX hosts_identity ON hosts (identity_norm);
