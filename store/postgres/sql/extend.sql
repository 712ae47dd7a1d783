-- extend: push forward the leases a worker still holds, so a slow healthy handler never runs
-- twice.
-- Params  task_ids bytea[], versions bigint[] (the version each was claimed at), lease interval
-- Returns one row per lease extended: its 1-based position. A lease is lost (no row) when the
--         task is missing, at another version, or no longer leased; nothing is written for it.
-- Keeps   version unchanged: only the holder of the claim's version can extend or settle;
--         rows locked in id order (see settle.sql).
WITH clock AS MATERIALIZED (
    SELECT statement_timestamp() AS now
),
leases AS (
    SELECT *
    FROM unnest(%(task_ids)b::bytea[], %(versions)b::bigint[])
         WITH ORDINALITY AS l(task_id, version, position)
),
locked AS MATERIALIZED (
    SELECT t.id, l.position
    FROM {schema}.tasks AS t JOIN leases AS l
      ON t.task_id = l.task_id AND t.version = l.version
    WHERE t.state = 1 AND t.leased
    ORDER BY t.id
    FOR UPDATE OF t
)
UPDATE {schema}.tasks AS t
SET next_attempt_at = clock.now + %(lease)b::interval
FROM locked, clock
WHERE t.id = locked.id
RETURNING locked.position
