-- (PostgreSQL twin of migrations/sqlite/20261204000012_covering_value_indexes.sql.)
-- The value indexes cover the resource they belong to, so that a filter term's lookup
-- can be an index-only scan.
DROP INDEX scim_values_text;
CREATE INDEX scim_values_text ON scim_values (kind, path, text_value) INCLUDE (resource_seq);
DROP INDEX scim_values_num;
CREATE INDEX scim_values_num ON scim_values (kind, path, num_value) INCLUDE (resource_seq);
