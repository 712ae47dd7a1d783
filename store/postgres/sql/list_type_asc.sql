-- list_type_asc: a page of one state's and one type's tasks in time order (next_attempt_at,
-- then task id bytewise), each with its last failure, after a cursor.
-- Params  state smallint, type bigint, cursor_at timestamptz and cursor_id bytea (the last task
--         of the page before; a NULL cursor_at: the first page), limit bigint
-- Returns up to limit records strictly after the cursor, oldest first. When the cursor's task
--         is no longer where the cursor saw it (its state, type or due time changed, or it is
--         gone), the page resumes after the cursor's instant, as on Redis (list_type.lua).
-- Keeps   the page starts at the smallest key not before its bound: (cursor_at, cursor_id ||
--         '\x00'), the first key after the cursor's in bytewise order, or (cursor_at + 1 µs,
--         ''), the first key after its instant (timestamps are whole microseconds).
-- Cost    one index range of tasks_type_due from the bound: O(log N + limit).
WITH found AS MATERIALIZED (
    SELECT EXISTS (
        SELECT 1 FROM {schema}.tasks
        WHERE task_id = %(cursor_id)b AND state = %(state)b AND type = %(type)b
          AND next_attempt_at = %(cursor_at)b
    ) AS present
),
bound AS MATERIALIZED (
    SELECT CASE WHEN %(cursor_at)b::timestamptz IS NULL THEN '-infinity'::timestamptz
                WHEN present THEN %(cursor_at)b::timestamptz
                ELSE %(cursor_at)b::timestamptz + interval '1 microsecond' END AS at,
           CASE WHEN present THEN %(cursor_id)b::bytea || '\x00'::bytea
                ELSE ''::bytea END AS task_id
    FROM found
)
SELECT task_id, type, data, reference_id, state, failed_attempts, next_attempt_at, created_at,
       id, version, last_error_kind, last_error_message, last_error_at, last_error_attempts
FROM {schema}.tasks
WHERE type = %(type)b AND state = %(state)b
  AND (next_attempt_at, task_id) >= ((SELECT at FROM bound), (SELECT task_id FROM bound))
ORDER BY next_attempt_at, task_id
LIMIT %(limit)b
