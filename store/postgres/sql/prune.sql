-- prune: delete one small slice of the CONFIRMED and FAILED tasks past their retention.
-- Params  confirmed interval, failed interval (NULL keeps that state forever), limit bigint
-- Returns one row: CONFIRMED and FAILED tasks deleted (fewer than limit in all: none is left
--         now).
-- Keeps   a task is past retention when its next_attempt_at (for a finished task, the instant
--         it finished) is at or before the database's now minus its state's retention;
--         CONFIRMED ones go first. SKIP LOCKED: workers prune at once without coordination and
--         never delete a task twice (each counts only what it deleted). A pruned task leaves
--         nothing behind: its failure was a column of its row.
-- Cost    tasks_state_due's rows of each state in due order, up to limit: O(log N + limit).
WITH clock AS MATERIALIZED (
    SELECT statement_timestamp() AS now
),
old_confirmed AS MATERIALIZED (
    SELECT id FROM {schema}.tasks
    WHERE state = 2 AND %(confirmed)b::interval IS NOT NULL
      AND next_attempt_at <= (SELECT now FROM clock) - %(confirmed)b::interval
    ORDER BY next_attempt_at
    LIMIT %(limit)b
    FOR UPDATE SKIP LOCKED
),
old_failed AS MATERIALIZED (
    SELECT id FROM {schema}.tasks
    WHERE state = 3 AND %(failed)b::interval IS NOT NULL
      AND next_attempt_at <= (SELECT now FROM clock) - %(failed)b::interval
    ORDER BY next_attempt_at
    LIMIT %(limit)b - (SELECT count(*) FROM old_confirmed)
    FOR UPDATE SKIP LOCKED
),
deleted AS (
    DELETE FROM {schema}.tasks
    WHERE id IN (SELECT id FROM old_confirmed UNION ALL SELECT id FROM old_failed)
    RETURNING state
)
SELECT count(*) FILTER (WHERE state = 2), count(*) FILTER (WHERE state = 3) FROM deleted
