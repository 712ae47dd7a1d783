-- delete: remove tasks and all kept for them, all or nothing.
-- Params  task_ids bytea[] (none repeated)
-- Returns one row: the 1-based position of the first task id that is not stored (NULL if every
--         one is: then all were deleted), NULL (cancel and retry give a state here), and how
--         many were deleted.
-- Keeps   nothing deleted when one is missing; the rows are locked in id order first, so a
--         concurrent claim or outcome waits or skips them, and a worker running a deleted task
--         has its outcome refused (its row is gone). Their task ids may be put again.
WITH wanted AS (
    SELECT * FROM unnest(%(task_ids)b::bytea[]) WITH ORDINALITY AS w(task_id, position)
),
locked AS MATERIALIZED (
    SELECT id, task_id FROM {schema}.tasks
    WHERE task_id = ANY(%(task_ids)b::bytea[])
    ORDER BY id
    FOR UPDATE
),
missing AS (
    SELECT min(wanted.position) AS position
    FROM wanted LEFT JOIN locked USING (task_id)
    WHERE locked.id IS NULL
),
deleted AS (
    DELETE FROM {schema}.tasks AS t
    USING locked
    WHERE t.id = locked.id AND (SELECT position FROM missing) IS NULL
    RETURNING 1
)
SELECT (SELECT position FROM missing), NULL::smallint, (SELECT count(*) FROM deleted)
