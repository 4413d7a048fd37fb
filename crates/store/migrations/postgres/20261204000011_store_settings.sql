-- (PostgreSQL twin of migrations/sqlite/20261204000011_store_settings.sql.)
-- Facts the store keeps about itself: `declared_schemas` is the schema file's
-- declarations the attribute index was built with (see `reindex.rs`).
CREATE TABLE store_settings (
    name   TEXT COLLATE "C" PRIMARY KEY,
    value  TEXT NOT NULL
);
