-- Labels on IdP data. Membership is not stored: it is evaluated from `criteria` (JSON)
-- when read, so that it is always current.
CREATE TABLE labels (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL,
    name_norm    TEXT NOT NULL UNIQUE,
    description  TEXT NOT NULL DEFAULT '',
    criteria     TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);

-- Offboarding events (a transactional outbox): written in the transaction of the SCIM
-- change, delivered at least once by the server's deliverer.
CREATE TABLE webhook_events (
    id               INTEGER PRIMARY KEY,
    event            TEXT NOT NULL CHECK (event IN ('user_deactivated', 'user_deleted', 'user_reactivated')),
    payload          TEXT NOT NULL,
    state            TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failing')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,
    -- While a deliverer holds the event: no other one takes it before this time.
    locked_until     TEXT,
    last_error       TEXT,
    last_status      INTEGER,
    delivered_at     TEXT,
    created_at       TEXT NOT NULL
);
-- What the deliverer polls: undelivered events by due time.
CREATE INDEX webhook_events_due ON webhook_events (next_attempt_at) WHERE state <> 'delivered';
CREATE INDEX webhook_events_state ON webhook_events (state, id);
