-- (SQLite twin of migrations/postgres/20261128000005_recovery_indexes.sql.)
-- The "laptops to recover" filter (hosts?idp_active=false) probes the deactivated users
-- and the orphaned hosts; both sets are small, and these indexes find them
-- without reading every user or host.
CREATE INDEX scim_resources_active ON scim_resources (kind, active);
CREATE INDEX hosts_orphaned ON hosts (id) WHERE orphaned = 1 AND end_user_seq IS NULL;
