-- 0001_tasks: the task table of one namespace, its id sequence and its indexes.
-- {schema} is the namespace's schema (quoted by store/postgres/_schema.py); this file runs once,
-- inside `retryd migrate`'s transaction, under its advisory lock.
-- Keeps   one row per task; ids from one sequence (increasing, never reused; a rolled-back
--         put_all leaves a gap, as a PostgreSQL sequence always does); state 1 PENDING,
--         2 CONFIRMED, 3 FAILED as in store/record.py; `leased` is set by a claim and cleared by
--         any outcome: a claim that finds it still set meets an abandoned run.
-- task_id and reference_id are UTF-8 bytes, not text: text cannot hold NUL, which the contract
-- allows in both.

CREATE SEQUENCE {schema}.task_ids AS bigint;

CREATE TABLE {schema}.tasks (
    id              bigint      PRIMARY KEY,
    task_id         bytea       NOT NULL UNIQUE,
    type            bigint      NOT NULL CHECK (type BETWEEN 1 AND 4294967295),
    data            bytea       NOT NULL,
    reference_id    bytea,
    state           smallint    NOT NULL CHECK (state BETWEEN 1 AND 3),
    failed_attempts bigint      NOT NULL CHECK (failed_attempts BETWEEN 0 AND 4294967295),
    next_attempt_at timestamptz NOT NULL,
    created_at      timestamptz NOT NULL,
    version         bigint      NOT NULL CHECK (version >= 1),
    leased          boolean     NOT NULL DEFAULT false
);

-- What claim reads: PENDING tasks of one type by due time. Partial, so CONFIRMED and FAILED
-- rows are not in it at all, and ordered by due time, so not-due rows are never visited.
CREATE INDEX tasks_pending_due ON {schema}.tasks (type, next_attempt_at) WHERE state = 1;

-- What get_all_ready_by_state, count_by_state and stats read: one state's rows by due time.
CREATE INDEX tasks_state_due ON {schema}.tasks (state, next_attempt_at);

-- A queue table is rewritten all day (claims, outcomes): vacuum it after 2% of it changed
-- rather than the default 20%, so dead rows never pile up in the claim index.
ALTER TABLE {schema}.tasks SET (autovacuum_vacuum_scale_factor = 0.02);
