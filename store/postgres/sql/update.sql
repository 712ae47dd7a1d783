-- update: write a task's mutable fields if the caller holds its current version.
-- Params  task_id bytea, version bigint, state smallint, failed bigint, next_at timestamptz
-- Returns the stored record after the write, or no row (missing, or at another version:
--         nothing written).
-- Keeps   only state, failed_attempts and next_attempt_at change; version + 1; the lease
--         flag cleared (an update is an outcome: it ends any run in progress).
UPDATE {schema}.tasks
SET state = %(state)b, failed_attempts = %(failed)b, next_attempt_at = %(next_at)b,
    version = version + 1, leased = false
WHERE task_id = %(task_id)b AND version = %(version)b
RETURNING task_id, type, data, reference_id, state, failed_attempts, next_attempt_at,
          created_at, id, version
