-- PostgreSQL twin of migrations/sqlite/20261206000015_activity_subjects.sql.
ALTER TABLE activities ADD COLUMN host_id BIGINT;
ALTER TABLE activities ADD COLUMN idp_username_norm TEXT COLLATE "C";
UPDATE activities SET host_id = (details::jsonb ->> 'host_id')::bigint,
    idp_username_norm = lower(details::jsonb ->> 'idp_username');
CREATE INDEX activities_host ON activities (host_id, id) WHERE host_id IS NOT NULL;
CREATE INDEX activities_idp_username ON activities (idp_username_norm, id) WHERE idp_username_norm IS NOT NULL;
CREATE INDEX activities_type ON activities (type, id);
