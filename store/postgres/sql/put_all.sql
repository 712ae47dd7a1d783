-- put_all: store a batch of new tasks, all or none, in one statement.
-- Params  task_ids bytea[], types bigint[], data bytea[], reference_ids bytea[],
--         states smallint[], failed bigint[], next_at timestamptz[] (NULL: created_at),
--         created timestamptz[] (NULL: now), channel text: one element per record, batch order.
-- Returns one row: now (the database's clock), the 1-based position of the first record whose
--         task id is stored already (NULL if none: then every record was inserted), and the
--         inserted task ids and ids (ids increase in batch order).
-- Keeps   nothing is inserted when any task id exists (a concurrent insert of the same id is
--         caught by the unique index instead, failing the statement as a whole); a NOTIFY on the
--         namespace's channel when a PENDING task is due now; it is delivered only on commit,
--         so a rolled-back transaction wakes no worker.
WITH clock AS MATERIALIZED (
    SELECT statement_timestamp() AS now
),
batch AS (
    SELECT b.*
    FROM unnest(%(task_ids)b::bytea[], %(types)b::bigint[], %(data)b::bytea[],
                %(reference_ids)b::bytea[], %(states)b::smallint[], %(failed)b::bigint[],
                %(next_at)b::timestamptz[], %(created)b::timestamptz[])
         WITH ORDINALITY AS b(task_id, type, data, reference_id, state, failed_attempts,
                              next_attempt_at, created_at, position)
),
existing AS (
    SELECT min(batch.position) AS position
    FROM batch JOIN {schema}.tasks USING (task_id)
),
inserted AS (
    -- nextval() runs after the ORDER BY (PostgreSQL evaluates volatile output columns after
    -- sorting), so ids follow batch order.
    INSERT INTO {schema}.tasks (id, task_id, type, data, reference_id, state, failed_attempts,
                                next_attempt_at, created_at, version)
    SELECT nextval('{schema}.task_ids'), b.task_id, b.type, b.data, b.reference_id, b.state,
           b.failed_attempts, coalesce(b.next_attempt_at, b.created_at, clock.now),
           coalesce(b.created_at, clock.now), 1
    FROM batch b, clock
    WHERE (SELECT position FROM existing) IS NULL
    ORDER BY b.position
    RETURNING id, task_id, state, next_attempt_at
),
woken AS (
    SELECT pg_notify(%(channel)b, '')
    FROM clock
    WHERE EXISTS (SELECT 1 FROM inserted WHERE state = 1 AND next_attempt_at <= clock.now)
)
SELECT clock.now,
       (SELECT position FROM existing),
       (SELECT array_agg(task_id ORDER BY id) FROM inserted),
       (SELECT array_agg(id ORDER BY id) FROM inserted),
       (SELECT count(*) FROM woken)
FROM clock
