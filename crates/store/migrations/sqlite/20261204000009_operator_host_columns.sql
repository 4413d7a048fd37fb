-- The IdP columns an operator chose for the hosts page and its CSV export: a JSON array
-- of SCIM attribute paths; NULL for none.
ALTER TABLE api_users ADD COLUMN host_columns TEXT;
