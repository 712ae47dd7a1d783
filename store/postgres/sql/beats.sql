-- beats: the members that beat within the last `within`, latest first.
-- Params  within interval, limit bigint
-- Returns the database's now and one row per member (member, at, payload); one row of NULLs
--         but for now when none beat.
-- Cost    O(log M + limit) through presence_at.
WITH clock AS MATERIALIZED (
    SELECT statement_timestamp() AS now
),
recent AS (
    SELECT member, at, payload FROM {schema}.presence
    WHERE at >= (SELECT now FROM clock) - %(within)b::interval
    ORDER BY at DESC
    LIMIT %(limit)b
)
SELECT clock.now, recent.member, recent.at, recent.payload
FROM clock LEFT JOIN recent ON true
ORDER BY recent.at DESC
