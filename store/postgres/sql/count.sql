-- count: how many tasks are in one state.
-- Params  state smallint
-- Returns one row: the count.
-- Cost    an index-only scan of the state's part of tasks_state_due: O(tasks in the state).
SELECT count(*) FROM {schema}.tasks WHERE state = %(state)b
