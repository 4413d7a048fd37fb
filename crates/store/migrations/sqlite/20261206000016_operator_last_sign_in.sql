-- When each operator last signed in to the web interface (password or SSO), written
-- with the session: the operators page shows it. Sessions end, this stays.
ALTER TABLE api_users ADD COLUMN last_sign_in_at TEXT;
