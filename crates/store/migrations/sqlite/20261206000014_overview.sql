-- What the overview reads, each figure from one indexed query.

-- The hosts of one owner state, newest first: the `link_state` filter and the
-- overview's counts and "needs attention" lists.
CREATE INDEX hosts_link_state ON hosts (link_state, id);

-- SCIM requests per connection and hour (UTC, `YYYY-MM-DDTHH`), successes and errors:
-- the request history keeps only the last 1,000 requests of a connection, the feed's
-- chart covers seven days. Written with the history, in its transaction; hours older
-- than eight days are deleted then. `connection_id` 0: requests of no connection.
CREATE TABLE scim_request_hours (
    connection_id  INTEGER NOT NULL,
    hour           TEXT NOT NULL,
    ok             INTEGER NOT NULL,
    errors         INTEGER NOT NULL,
    PRIMARY KEY (connection_id, hour)
);
CREATE INDEX scim_request_hours_hour ON scim_request_hours (hour);
