-- Directory syncs (Google Workspace): a connection's settings and service account key,
-- and its runs. The key file is a secret: read only to perform a run, never answered.
CREATE TABLE google_workspace_connections (
    connection_id              INTEGER PRIMARY KEY REFERENCES idp_connections (id) ON DELETE CASCADE,
    key_file                   TEXT NOT NULL,
    client_email               TEXT NOT NULL,
    private_key_id             TEXT NOT NULL,
    admin_email                TEXT NOT NULL,
    customer_id                TEXT NOT NULL,
    -- A JSON array of org unit paths.
    org_unit_paths             TEXT NOT NULL,
    sync_interval_seconds      INTEGER NOT NULL,
    api_base_url               TEXT NOT NULL,
    -- An operator asked for a run while another ran: it runs next, with these
    -- confirmed deletions.
    requested                  INTEGER NOT NULL DEFAULT 0,
    requested_allow_deletions  INTEGER
);

-- A run holds its connection's lease while `running` and `lease_until` is ahead; an
-- instance that stops mid-run leaves nothing applied (a run applies in one transaction)
-- and another takes over once the lease has passed.
CREATE TABLE sync_runs (
    id               INTEGER PRIMARY KEY,
    connection_id    INTEGER NOT NULL REFERENCES idp_connections (id) ON DELETE CASCADE,
    started_at       TEXT NOT NULL,
    finished_at      TEXT,
    status           TEXT NOT NULL CHECK (status IN ('running', 'success', 'error')),
    lease_until      TEXT,
    users_seen       INTEGER NOT NULL DEFAULT 0,
    groups_seen      INTEGER NOT NULL DEFAULT 0,
    created          INTEGER NOT NULL DEFAULT 0,
    updated          INTEGER NOT NULL DEFAULT 0,
    deleted          INTEGER NOT NULL DEFAULT 0,
    error            TEXT,
    allow_deletions  INTEGER,
    -- A run the deletion guard stopped: the deletions an operator may confirm.
    deletions_to_confirm INTEGER
);
CREATE INDEX sync_runs_connection ON sync_runs (connection_id, id);
-- One run at a time per connection, whichever instance starts it.
CREATE UNIQUE INDEX sync_runs_one_running ON sync_runs (connection_id) WHERE status = 'running';
