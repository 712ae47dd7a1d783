-- which_exist: the given task ids that are stored.
-- Params  task_ids bytea[]
-- Returns one row per stored one: its task id.
SELECT task_id FROM {schema}.tasks WHERE task_id = ANY(%(task_ids)b::bytea[])
