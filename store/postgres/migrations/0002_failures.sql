-- 0002_failures: each task's last failure beside its record, and pages by id that stay bounded.
-- {schema} is the namespace's schema; run by `retryd migrate` in its transaction.
-- Keeps   the seed's Record unchanged: a failure lives in these columns of the task's row, so a
--         delete or a prune removes it with the task. last_error_attempts is failed_attempts
--         right after that failure. NULL kind: the task never failed.
-- Cost    adding columns without a default rewrites nothing; the index is built while writes
--         to the table wait (on a large table, run it in a quiet moment).

ALTER TABLE {schema}.tasks
    ADD COLUMN last_error_kind     text,
    ADD COLUMN last_error_message  text,
    ADD COLUMN last_error_at       timestamptz,
    ADD COLUMN last_error_attempts bigint;

-- A page of one state by id (list_tasks, get_all_ready_by_state) walks this index and stops
-- after `limit` rows when most of the state is due; the planner takes tasks_state_due instead
-- when few are.
CREATE INDEX tasks_state_id ON {schema}.tasks (state, id);
