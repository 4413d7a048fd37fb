-- PostgreSQL twin of migrations/sqlite/20261206000016_operator_last_sign_in.sql.
ALTER TABLE api_users ADD COLUMN last_sign_in_at TEXT COLLATE "C";
