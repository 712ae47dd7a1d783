-- 0004_type_index: one time index per (type, state), which list_by_type pages through and
-- claim reads, in place of the claim's partial index.
-- {schema} is the namespace's schema; run by `retryd migrate` in its transaction.
-- Keeps   the order of Redis's per-(state, type) time indexes: next_attempt_at, then task id
--         bytewise (bytea compares as memcmp does). Claim reads the (type, PENDING) range in
--         due order as it read tasks_pending_due, which this index replaces: a table keeps five
--         indexes, so a claim writes no more index entries than before (an outcome that
--         finishes a task writes one more: its entry here).
-- Cost    the table is locked for the length of the index build (DROP INDEX takes an exclusive
--         lock: claims wait too); on a large table, run it in a quiet moment.

DROP INDEX {schema}.tasks_pending_due;

CREATE INDEX tasks_type_due ON {schema}.tasks (type, state, next_attempt_at, task_id);
