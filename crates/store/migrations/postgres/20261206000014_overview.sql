-- PostgreSQL twin of migrations/sqlite/20261206000014_overview.sql.
CREATE INDEX hosts_link_state ON hosts (link_state, id);

CREATE TABLE scim_request_hours (
    connection_id  BIGINT NOT NULL,
    hour           TEXT COLLATE "C" NOT NULL,
    ok             BIGINT NOT NULL,
    errors         BIGINT NOT NULL,
    PRIMARY KEY (connection_id, hour)
);
CREATE INDEX scim_request_hours_hour ON scim_request_hours (hour);
