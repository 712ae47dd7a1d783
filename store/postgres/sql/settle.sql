-- settle: record a batch of outcomes, each scheduled relative to the database's clock.
-- Params  task_ids bytea[], versions bigint[], states smallint[], failed bigint[],
--         delays interval[], kinds text[], messages text[] (a failed attempt's reason, NULL for
--         none): one element per change; channel text
-- Returns one row per change applied: its 1-based position in the batch. A change whose task
--         is missing or at another version is not applied (the others still are: each stands
--         alone). A row also for a change found applied already (its task at the next version,
--         in the change's state with its failed_attempts, not leased): a batch re-sent after a
--         lost reply is answered as done, not as a conflict, and written once (as on Redis).
-- Keeps   next_attempt_at = now + delay; version + 1; leased cleared; a reason becomes the
--         task's last failure, stamped with now and the new failed_attempts; rows locked in id
--         order, so settle, extend and update of overlapping rows never deadlock; a NOTIFY
--         when an outcome makes a task due now (a retry without delay).
WITH clock AS MATERIALIZED (
    SELECT statement_timestamp() AS now
),
changes AS (
    SELECT *
    FROM unnest(%(task_ids)b::bytea[], %(versions)b::bigint[], %(states)b::smallint[],
                %(failed)b::bigint[], %(delays)b::interval[], %(kinds)b::text[],
                %(messages)b::text[])
         WITH ORDINALITY AS c(task_id, version, state, failed_attempts, delay, kind, message,
                              position)
),
locked AS MATERIALIZED (
    SELECT t.id, c.position, c.state, c.failed_attempts, c.delay, c.kind, c.message
    FROM {schema}.tasks AS t JOIN changes AS c
      ON t.task_id = c.task_id AND t.version = c.version
    ORDER BY t.id
    FOR UPDATE OF t
),
-- The statement sees the table as it was before: a change applied here is not also found
-- applied already.
applied_before AS (
    SELECT c.position
    FROM {schema}.tasks AS t JOIN changes AS c
      ON t.task_id = c.task_id AND t.version = c.version + 1
    WHERE t.state = c.state AND t.failed_attempts = c.failed_attempts AND NOT t.leased
),
settled AS (
    UPDATE {schema}.tasks AS t
    SET state = locked.state, failed_attempts = locked.failed_attempts,
        next_attempt_at = clock.now + locked.delay, version = t.version + 1, leased = false,
        last_error_kind = coalesce(locked.kind, t.last_error_kind),
        last_error_message = CASE WHEN locked.kind IS NULL THEN t.last_error_message
                                  ELSE locked.message END,
        last_error_at = CASE WHEN locked.kind IS NULL THEN t.last_error_at ELSE clock.now END,
        last_error_attempts = CASE WHEN locked.kind IS NULL THEN t.last_error_attempts
                                   ELSE locked.failed_attempts END
    FROM locked, clock
    WHERE t.id = locked.id
    RETURNING locked.position, locked.state, locked.delay
),
woken AS (
    SELECT pg_notify(%(channel)b, '')
    WHERE EXISTS (SELECT 1 FROM settled WHERE state = 1 AND delay = interval '0')
)
SELECT position, (SELECT count(*) FROM woken) FROM settled
UNION ALL
SELECT position, 0 FROM applied_before
