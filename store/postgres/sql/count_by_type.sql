-- count_by_type: tasks per state of every type, by type, in one snapshot.
-- Returns one row per type that has tasks: type, PENDING, CONFIRMED, FAILED counts.
-- Cost    one scan of the table (the types are the application's few): O(N).
SELECT type,
       count(*) FILTER (WHERE state = 1),
       count(*) FILTER (WHERE state = 2),
       count(*) FILTER (WHERE state = 3)
FROM {schema}.tasks
GROUP BY type
ORDER BY type
