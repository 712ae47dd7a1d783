-- get_ready_asc: a page of one state's tasks due at or before as_of, by id ASC.
-- Params  state smallint, as_of timestamptz, cursor bigint (exclusive; NULL: from the start),
--         limit bigint
-- Returns up to limit records.
-- Cost    reads the due rows of the state through tasks_state_due and sorts them by id:
--         O(log N + R log R) for R due rows, whatever the number of rows not yet due.
SELECT task_id, type, data, reference_id, state, failed_attempts, next_attempt_at, created_at,
       id, version
FROM {schema}.tasks
WHERE state = %(state)s AND next_attempt_at <= %(as_of)s
  AND (%(cursor)s::bigint IS NULL OR id > %(cursor)s::bigint)
ORDER BY id ASC
LIMIT %(limit)s
