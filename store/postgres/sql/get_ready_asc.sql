-- get_ready_asc: a page of one state's tasks due at or before as_of, by id ASC.
-- Params  state smallint, as_of timestamptz, cursor bigint (exclusive; no cursor is sent as
--         the bigint range's far end, so one plan serves both), limit bigint
-- Returns up to limit records, each with its last failure (NULLs if it never failed).
-- Cost    the planner picks, by its statistics, the cheaper of: tasks_state_id in id order,
--         stopping at the limit-th due row (cheap when most of the state is due), or the R due
--         rows through tasks_state_due, sorted by id (cheap when few are).
SELECT task_id, type, data, reference_id, state, failed_attempts, next_attempt_at, created_at,
       id, version, last_error_kind, last_error_message, last_error_at, last_error_attempts
FROM {schema}.tasks
WHERE state = %(state)b AND next_attempt_at <= %(as_of)b
  AND id > %(cursor)b
ORDER BY id ASC
LIMIT %(limit)b
