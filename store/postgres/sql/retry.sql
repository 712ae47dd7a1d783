-- retry: FAILED tasks go back to PENDING, due now, with no failed attempts; all or nothing.
-- Params  task_ids bytea[] (none repeated), channel text
-- Returns one row: the 1-based position of the first task id that is missing or not in the
--         state the operation applies to (NULL if none: then all were changed), that task's
--         state (NULL: missing), and how many were changed.
-- Keeps   version + 1, leased cleared; the last failure stays readable (why it had failed);
--         a NOTIFY on the namespace's channel, as the tasks are due now.
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
    WHERE locked.state IS DISTINCT FROM 3
    ORDER BY wanted.position
    LIMIT 1
),
changed AS (
    UPDATE {schema}.tasks AS t
    SET state = 1, failed_attempts = 0, next_attempt_at = clock.now, version = t.version + 1,
        leased = false
    FROM locked, clock
    WHERE t.id = locked.id AND NOT EXISTS (SELECT 1 FROM refused)
    RETURNING 1
),
woken AS (
    SELECT pg_notify(%(channel)b, '') WHERE EXISTS (SELECT 1 FROM changed)
)
SELECT (SELECT position FROM refused), (SELECT state FROM refused), (SELECT count(*) FROM changed),
       (SELECT count(*) FROM woken)
