-- get_batch: the stored records of a batch's task ids (put_all's check after a lost reply).
-- Params  task_ids bytea[]
-- Returns one row per stored one: its record.
-- Cost    one unique-index lookup per task id: O(B log N).
SELECT task_id, type, data, reference_id, state, failed_attempts, next_attempt_at, created_at,
       id, version
FROM {schema}.tasks
WHERE task_id = ANY(%(task_ids)b::bytea[])
