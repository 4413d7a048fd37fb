-- The activity feed filtered by host, IdP user and kind (the activity page's filters),
-- each on an index: the host and the IdP username an activity is about are copied out
-- of its details when it is written; older rows are filled in here.
ALTER TABLE activities ADD COLUMN host_id INTEGER;
ALTER TABLE activities ADD COLUMN idp_username_norm TEXT;
UPDATE activities SET host_id = json_extract(details, '$.host_id'),
    idp_username_norm = lower(json_extract(details, '$.idp_username'));
CREATE INDEX activities_host ON activities (host_id, id) WHERE host_id IS NOT NULL;
CREATE INDEX activities_idp_username ON activities (idp_username_norm, id) WHERE idp_username_norm IS NOT NULL;
CREATE INDEX activities_type ON activities (type, id);
