-- stats: what the metrics endpoint shows, read in one snapshot.
-- Returns one row: now, the counts of PENDING, CONFIRMED and FAILED tasks, the PENDING tasks
--         due now (a leased task is due only when its lease ends, so it is not counted), the
--         earliest next_attempt_at among those (NULL if none), and the due ones by type (two
--         arrays: the types that have any, and their counts).
-- Cost    one index-only scan of tasks_state_due: O(N). Metrics cache it for a second.
WITH clock AS MATERIALIZED (
    SELECT statement_timestamp() AS now
),
due_by_type AS (
    SELECT type, count(*) AS due FROM {schema}.tasks
    WHERE state = 1 AND next_attempt_at <= (SELECT now FROM clock)
    GROUP BY type
)
SELECT (SELECT now FROM clock),
       count(*) FILTER (WHERE state = 1),
       count(*) FILTER (WHERE state = 2),
       count(*) FILTER (WHERE state = 3),
       count(*) FILTER (WHERE state = 1 AND next_attempt_at <= (SELECT now FROM clock)),
       min(next_attempt_at) FILTER (WHERE state = 1 AND next_attempt_at <= (SELECT now FROM clock)),
       (SELECT array_agg(type ORDER BY type) FROM due_by_type),
       (SELECT array_agg(due ORDER BY type) FROM due_by_type)
FROM {schema}.tasks
