-- Automatic labels: a source keeps one label per IdP group or per department, created,
-- renamed and removed by the SCIM and directory-sync writes in their own transactions.
CREATE TABLE label_sources (
    id             INTEGER PRIMARY KEY,
    source         TEXT NOT NULL CHECK (source IN ('idp_groups', 'idp_departments')),
    -- NULL: every connection's groups or departments.
    connection_id  INTEGER REFERENCES idp_connections (id) ON DELETE CASCADE,
    created_at     TEXT NOT NULL
);
CREATE UNIQUE INDEX label_sources_unique ON label_sources (source, COALESCE(connection_id, 0));

-- A label of a source: source_key is the group's SCIM id, or the department in lower case.
-- Regular labels have neither (NULLs are distinct in a unique index).
ALTER TABLE labels ADD COLUMN source_id INTEGER REFERENCES label_sources (id) ON DELETE CASCADE;
ALTER TABLE labels ADD COLUMN source_key TEXT;
CREATE UNIQUE INDEX labels_source_key ON labels (source_id, source_key);
CREATE INDEX labels_by_source_key ON labels (source_key);
