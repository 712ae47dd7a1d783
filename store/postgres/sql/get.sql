-- get: one task by its task id.
-- Params  task_id bytea
-- Returns the record, or no row.
SELECT task_id, type, data, reference_id, state, failed_attempts, next_attempt_at, created_at,
       id, version
FROM {schema}.tasks
WHERE task_id = %(task_id)s
