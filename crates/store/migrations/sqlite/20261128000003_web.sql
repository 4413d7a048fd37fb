-- Web sign-in: operators with a password, browser sessions and the first-run set-up.

-- The Argon2id hash (PHC string) of an operator who signs in with email and password;
-- NULL for API-only operators.
ALTER TABLE api_users ADD COLUMN password_hash TEXT;

-- Browser sessions. The cookie holds 32 random bytes; only their SHA-256 digest is
-- stored, so a copy of the database does not let anyone sign in. Timestamps are the
-- fixed-width UTC text of every other table; expiry is checked by the server.
CREATE TABLE web_sessions (
    id            INTEGER PRIMARY KEY,
    digest        BLOB NOT NULL UNIQUE,
    user_id       INTEGER NOT NULL REFERENCES api_users (id) ON DELETE CASCADE,
    csrf_token    TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL,
    expires_at    TEXT NOT NULL
);
CREATE INDEX web_sessions_user ON web_sessions (user_id);
CREATE INDEX web_sessions_expires ON web_sessions (expires_at);

-- At most one row, written in the same transaction as the first admin of the set-up
-- page: its primary key makes a second, concurrent set-up fail on any backend.
CREATE TABLE web_setup (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    user_id     INTEGER,
    created_at  TEXT NOT NULL
);
