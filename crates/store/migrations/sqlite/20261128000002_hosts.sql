-- The host inventory and which IdP user each host belongs to.
CREATE TABLE hosts (
    id               INTEGER PRIMARY KEY,
    uuid             TEXT NOT NULL UNIQUE,
    hardware_serial  TEXT NOT NULL DEFAULT '',
    hostname         TEXT NOT NULL DEFAULT '',
    computer_name    TEXT NOT NULL DEFAULT '',
    platform         TEXT NOT NULL DEFAULT '',
    os_version       TEXT NOT NULL DEFAULT '',
    hardware_model   TEXT NOT NULL DEFAULT '',
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    seen_time        TEXT,
    -- The normalised IdP identity: the `idp` mapping if an admin set one, else the
    -- `mdm_idp_accounts` email. Derived from host_emails, kept here to be indexed.
    identity_norm    TEXT,
    -- The linked SCIM user. The link follows the user (renames, email changes) and is
    -- cleared only when the identity changes or the user is deleted.
    end_user_seq     INTEGER REFERENCES scim_resources (seq) ON DELETE SET NULL,
    -- linked | unlinked | ambiguous | user_deleted | no_identity
    link_state       TEXT NOT NULL DEFAULT 'no_identity',
    -- The SCIM ids of the users an ambiguous identity matches (JSON array).
    candidates       TEXT,
    -- Its last user was deleted in the IdP and no one has been linked since: a laptop
    -- to recover, whatever its identity has become meanwhile.
    orphaned         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX hosts_serial ON hosts (hardware_serial);
CREATE INDEX hosts_hostname ON hosts (hostname);
CREATE INDEX hosts_end_user ON hosts (end_user_seq);
-- Hosts waiting for a user: what every SCIM user change probes.
CREATE INDEX hosts_unlinked_identity ON hosts (identity_norm) WHERE end_user_seq IS NULL;

CREATE TABLE host_emails (
    host_id     INTEGER NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    source      TEXT NOT NULL CHECK (source IN ('mdm_idp_accounts', 'idp', 'custom', 'google_chrome_profiles')),
    email       TEXT NOT NULL,
    email_norm  TEXT NOT NULL,
    position    INTEGER NOT NULL,
    PRIMARY KEY (host_id, source, email_norm)
) WITHOUT ROWID;
CREATE INDEX host_emails_email ON host_emails (email_norm);

-- Who had each host, and when. The user's id and name are copied so that the history
-- outlives the user.
CREATE TABLE host_end_user_history (
    id            INTEGER PRIMARY KEY,
    host_id       INTEGER NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    scim_user_id  TEXT NOT NULL,
    user_name     TEXT NOT NULL,
    linked_at     TEXT NOT NULL,
    link_cause    TEXT NOT NULL,
    unlinked_at   TEXT,
    unlink_cause  TEXT
);
CREATE INDEX host_end_user_history_host ON host_end_user_history (host_id, id);

-- The audit feed.
CREATE TABLE activities (
    id           INTEGER PRIMARY KEY,
    created_at   TEXT NOT NULL,
    actor_id     INTEGER,
    actor_name   TEXT NOT NULL,
    type         TEXT NOT NULL,
    details      TEXT NOT NULL
);
