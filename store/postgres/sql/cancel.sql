-- cancel: PENDING tasks become FAILED now, with the failure 'Cancelled: cancelled', all or nothing.
-- Params  task_ids bytea[] (none repeated)
-- Returns one row: the 1-based position of the first task id that is missing or not in the
--         state the operation applies to (NULL if none: then all were changed), that task's
--         state (NULL: missing), and how many were changed.
-- Keeps   version + 1 and leased cleared: a worker running the task has its outcome (and its
--         lease extensions) refused. failed_attempts unchanged; next_attempt_at = now, the
--         instant it finished, from which retention counts.
--         Rows are locked in id order; nothing is written when one task does not qualify.
WITH clock AS MATERIALIZED (
    SELECT statement_timestamp() AS now
),
wanted AS (
    SELECT * FROM unnest(%(task_ids)b::bytea[]) WITH ORDINALITY AS w(task_id, position)
),
locked AS MATERIALIZED (
    SELECT id, task_id, state FROM {schema}.tasks
    WHERE task_id = ANY(%(task_ids)b::bytea[])
    ORDER BY id
    FOR UPDATE
),
refused AS (
    SELECT wanted.position, locked.state
    FROM wanted LEFT JOIN locked USING (task_id)
    WHERE locked.state IS DISTINCT FROM 1
    ORDER BY wanted.position
    LIMIT 1
),
changed AS (
    UPDATE {schema}.tasks AS t
    SET state = 3, next_attempt_at = clock.now, version = t.version + 1, leased = false,
        last_error_kind = 'Cancelled', last_error_message = 'cancelled',
        last_error_at = clock.now, last_error_attempts = t.failed_attempts
    FROM locked, clock
    WHERE t.id = locked.id AND NOT EXISTS (SELECT 1 FROM refused)
    RETURNING 1
)
SELECT (SELECT position FROM refused), (SELECT state FROM refused), (SELECT count(*) FROM changed)
