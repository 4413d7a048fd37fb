-- When an operator last used Custodian: a token of theirs or a web session. Written at
-- most once a minute per operator and instance, so it costs no write per request.
ALTER TABLE api_users ADD COLUMN last_used_at TEXT;
