-- (PostgreSQL twin of migrations/sqlite/20261204000009_operator_host_columns.sql.)
-- The IdP columns an operator chose for the hosts page and its CSV export: a JSON array
-- of SCIM attribute paths; NULL for none.
ALTER TABLE api_users ADD COLUMN host_columns TEXT;
