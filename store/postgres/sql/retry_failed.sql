-- retry_failed: one bounded batch of "retry every FAILED task" (of one type, or of all).
-- Params  type bigint (NULL: every type), limit bigint, channel text
-- Returns one row: how many tasks went back to PENDING (fewer than limit: none is left).
-- Keeps   each as retry.sql does: PENDING, due now, failed_attempts 0, version + 1, leased
--         cleared, the last failure kept; those that failed first go first. SKIP LOCKED: two
--         batches at once never take the same task. A NOTIFY when any moved.
-- Cost    tasks_state_due's FAILED rows in due order, up to limit (those of other types
--         skipped when a type is given).
WITH clock AS MATERIALIZED (
    SELECT statement_timestamp() AS now
),
picked AS MATERIALIZED (
    SELECT id FROM {schema}.tasks
    WHERE state = 3 AND (%(type)b::bigint IS NULL OR type = %(type)b::bigint)
    ORDER BY next_attempt_at
    LIMIT %(limit)b
    FOR UPDATE SKIP LOCKED
),
moved AS (
    UPDATE {schema}.tasks AS t
    SET state = 1, failed_attempts = 0, next_attempt_at = clock.now, version = t.version + 1,
        leased = false
    FROM picked, clock
    WHERE t.id = picked.id
    RETURNING 1
),
woken AS (
    SELECT pg_notify(%(channel)b, '') WHERE EXISTS (SELECT 1 FROM moved)
)
SELECT (SELECT count(*) FROM moved), (SELECT count(*) FROM woken)
