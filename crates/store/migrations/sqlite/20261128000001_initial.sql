-- Operators of Custodian and their API tokens.
CREATE TABLE api_users (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    name_norm   TEXT NOT NULL UNIQUE,
    email       TEXT,
    email_norm  TEXT UNIQUE,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'maintainer', 'observer')),
    api_only    INTEGER NOT NULL,
    created_at  TEXT NOT NULL
);

-- Tokens are stored only as SHA-256 digests. `lookup` is a non-secret prefix of the
-- digest used to find the row; the full digest is then compared in constant time.
CREATE TABLE api_tokens (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES api_users (id) ON DELETE CASCADE,
    lookup      TEXT NOT NULL,
    digest      BLOB NOT NULL,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE INDEX api_tokens_lookup ON api_tokens (lookup);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

-- SCIM users and groups. `doc` is the canonical JSON document of client-writable
-- attributes; `unique_norm` is the normalised userName (users) or displayName (groups).
CREATE TABLE scim_resources (
    seq            INTEGER PRIMARY KEY,
    id             TEXT NOT NULL UNIQUE,
    kind           TEXT NOT NULL CHECK (kind IN ('User', 'Group')),
    doc            TEXT NOT NULL,
    unique_norm    TEXT NOT NULL,
    display        TEXT,
    active         INTEGER,
    created        TEXT NOT NULL,
    last_modified  TEXT NOT NULL,
    version        INTEGER NOT NULL
);
CREATE UNIQUE INDEX scim_resources_unique ON scim_resources (kind, unique_norm);
CREATE INDEX scim_resources_kind_seq ON scim_resources (kind, seq);

-- One row per leaf value of every document: what filters are translated against.
-- text_value holds normalised strings (lower-cased unless caseExact) and date-times
-- (fixed-width UTC); num_value holds numbers and booleans (0/1).
CREATE TABLE scim_values (
    resource_seq  INTEGER NOT NULL REFERENCES scim_resources (seq) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    path          TEXT NOT NULL,
    elem          INTEGER NOT NULL,
    text_value    TEXT,
    num_value     REAL
);
CREATE INDEX scim_values_text ON scim_values (kind, path, text_value);
CREATE INDEX scim_values_num ON scim_values (kind, path, num_value);
CREATE INDEX scim_values_resource ON scim_values (resource_seq, path, elem);

-- Group membership, keyed both ways so that either side is an index lookup.
CREATE TABLE scim_members (
    group_seq   INTEGER NOT NULL REFERENCES scim_resources (seq) ON DELETE CASCADE,
    member_seq  INTEGER NOT NULL REFERENCES scim_resources (seq) ON DELETE CASCADE,
    PRIMARY KEY (group_seq, member_seq)
) WITHOUT ROWID;
CREATE INDEX scim_members_member ON scim_members (member_seq, group_seq);

-- The recent SCIM requests (the IdP connection's history); never bodies nor tokens.
CREATE TABLE scim_requests (
    id            INTEGER PRIMARY KEY,
    requested_at  TEXT NOT NULL,
    method        TEXT NOT NULL,
    path          TEXT NOT NULL,
    status        INTEGER NOT NULL,
    detail        TEXT,
    user_agent    TEXT,
    duration_ms   REAL NOT NULL
);
