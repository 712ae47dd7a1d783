-- beat: a member (a worker process) says it is alive and what it reports; members silent for
-- longer than forget_after are forgotten, at most 100 per call.
-- Params  member bytea, payload bytea, forget_after interval
-- Returns one row: the database's now.
-- Cost    O(log M) for M members: the upsert, and at most 100 silent rows through presence_at.
WITH clock AS MATERIALIZED (
    SELECT statement_timestamp() AS now
),
seen AS (
    INSERT INTO {schema}.presence AS p (member, at, payload)
    SELECT %(member)b, now, %(payload)b FROM clock
    ON CONFLICT (member) DO UPDATE SET at = excluded.at, payload = excluded.payload
    RETURNING 1
),
silent AS (
    DELETE FROM {schema}.presence
    WHERE member IN (
        SELECT member FROM {schema}.presence
        WHERE at < (SELECT now FROM clock) - %(forget_after)b::interval
          AND member <> %(member)b
        ORDER BY at
        LIMIT 100
    )
    RETURNING 1
)
SELECT now, (SELECT count(*) FROM seen), (SELECT count(*) FROM silent) FROM clock
