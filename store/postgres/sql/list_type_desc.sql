-- list_type_desc: a page of one state's and one type's tasks in reverse time order
-- (next_attempt_at, then task id bytewise, both descending), each with its last failure,
-- before a cursor.
-- Params  state smallint, type bigint, cursor_at timestamptz and cursor_id bytea (the last task
--         of the page before; a NULL cursor_at: the first page), limit bigint
-- Returns up to limit records strictly before the cursor, newest first. When the cursor's task
--         is no longer where the cursor saw it (its state, type or due time changed, or it is
--         gone), the page resumes before the cursor's instant, as on Redis (list_type.lua).
-- Keeps   the page starts at the largest key before its bound: (cursor_at, cursor_id), or
--         (cursor_at, ''), the smallest key of its instant.
-- Cost    one index range of tasks_type_due, read backwards from the bound: O(log N + limit).
WITH found AS MATERIALIZED (
    SELECT EXISTS (
        SELECT 1 FROM {schema}.tasks
        WHERE task_id = %(cursor_id)b AND state = %(state)b AND type = %(type)b
          AND next_attempt_at = %(cursor_at)b
    ) AS present
),
bound AS MATERIALIZED (
    SELECT coalesce(%(cursor_at)b::timestamptz, 'infinity'::timestamptz) AS at,
           CASE WHEN present THEN %(cursor_id)b::bytea ELSE ''::bytea END AS task_id
    FROM found
)
SELECT task_id, type, data, reference_id, state, failed_attempts, next_attempt_at, created_at,
       id, version, last_error_kind, last_error_message, last_error_at, last_error_attempts
FROM {schema}.tasks
WHERE type = %(type)b AND state = %(state)b
  AND (next_attempt_at, task_id) < ((SELECT at FROM bound), (SELECT task_id FROM bound))
ORDER BY next_attempt_at DESC, task_id DESC
LIMIT %(limit)b
