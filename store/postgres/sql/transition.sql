-- transition: move tasks from one state to another, all or nothing: cancel (PENDING -> FAILED,
-- with the failure 'Cancelled: cancelled') and retry (FAILED -> PENDING, no failed attempts).
-- Params  task_ids bytea[] (none repeated), from_state smallint, to_state smallint,
--         reset_attempts boolean, error_kind text and error_message text (the failure to
--         record; NULL keeps the last one), channel text (NOTIFY when the tasks are due now)
-- Returns one row: the 1-based position of the first task id that is missing or not in
--         from_state (NULL if none: then all were moved), that task's state (NULL: missing),
--         how many were moved, and whether a NOTIFY was sent.
-- Keeps   next_attempt_at = now (for a FAILED task, the instant it finished, from which
--         retention counts); version + 1 and leased cleared, so a worker running the task has
--         its outcome (and its lease extensions) refused. Rows are locked in id order; nothing
--         is written when one task does not qualify.
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
    WHERE locked.state IS DISTINCT FROM %(from_state)b::smallint
    ORDER BY wanted.position
    LIMIT 1
),
changed AS (
    UPDATE {schema}.tasks AS t
    SET state = %(to_state)b::smallint,
        failed_attempts = CASE WHEN %(reset_attempts)b THEN 0 ELSE t.failed_attempts END,
        next_attempt_at = clock.now, version = t.version + 1, leased = false,
        last_error_kind = coalesce(%(error_kind)b::text, t.last_error_kind),
        last_error_message = coalesce(%(error_message)b::text, t.last_error_message),
        last_error_at = CASE WHEN %(error_kind)b::text IS NULL THEN t.last_error_at
                             ELSE clock.now END,
        last_error_attempts = CASE WHEN %(error_kind)b::text IS NULL THEN t.last_error_attempts
                                   ELSE t.failed_attempts END
    FROM locked, clock
    WHERE t.id = locked.id AND NOT EXISTS (SELECT 1 FROM refused)
    RETURNING 1
),
woken AS (
    SELECT pg_notify(%(channel)b::text, '')
    WHERE %(to_state)b::smallint = 1 AND EXISTS (SELECT 1 FROM changed)
)
SELECT (SELECT position FROM refused), (SELECT state FROM refused), (SELECT count(*) FROM changed),
       (SELECT count(*) FROM woken)
