-- 0003_presence: the heartbeat board of a namespace (store.presence): who is alive, and what
-- each member last reported.
-- {schema} is the namespace's schema; run by `retryd migrate` in its transaction.
-- Keeps   one row per member (UTF-8 bytes: the contract does not forbid NUL); payload is
--         opaque; `at` is the database's clock at the member's last beat.

CREATE TABLE {schema}.presence (
    member  bytea       PRIMARY KEY,
    at      timestamptz NOT NULL,
    payload bytea       NOT NULL
);

CREATE INDEX presence_at ON {schema}.presence (at);
