-- get: one task by its task id.
-- Params  task_id bytea
-- Returns the record and its last failure (NULLs if it never failed), or no row.
SELECT task_id, type, data, reference_id, state, failed_attempts, next_attempt_at, created_at,
       id, version, last_error_kind, last_error_message, last_error_at, last_error_attempts
FROM {schema}.tasks
WHERE task_id = %(task_id)b
