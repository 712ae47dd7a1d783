-- claim: lease up to limit due PENDING tasks of the given types to one worker.
-- Params  types bigint[], max_attempts bigint[] (one per type), limit bigint, lease interval,
--         abandoned text (the message of an abandoned run's failure)
-- Returns one row per task leased, oldest due first: its record after the claim, the instant it
--         was due at, now, and next_due (the same on every row); when nothing was due, one row
--         of NULLs but for now and next_due. next_due is the earliest next_attempt_at left among
--         the types' PENDING tasks (leases included), so an idle worker knows how long to sleep.
-- Keeps   due is decided by the database's clock alone; FOR UPDATE SKIP LOCKED: concurrent
--         claims never wait for each other nor take one task twice; a claim bumps version
--         (fencing any late outcome of an earlier holder), sets leased and pushes
--         next_attempt_at to now + lease. A task still leased when claimed again was abandoned
--         by a worker that died: that counts as a failed attempt, and at max_attempts the task
--         becomes FAILED (due now) instead of crashing workers forever; either way the lost
--         lease is recorded as the task's last failure ('LeaseExpired').
-- Cost    per type, an index range scan of tasks_type_due (its PENDING part) bounded by limit:
--         O(types * (log N + limit)), whatever the number of rows not due or finished.
WITH clock AS MATERIALIZED (
    SELECT statement_timestamp() AS now
),
wanted AS (
    SELECT * FROM unnest(%(types)b::bigint[], %(max_attempts)b::bigint[]) AS w(type, most)
),
due AS MATERIALIZED (
    SELECT candidate.id, candidate.next_attempt_at AS due_at, wanted.most
    FROM wanted CROSS JOIN LATERAL (
        SELECT id, next_attempt_at
        FROM {schema}.tasks
        WHERE state = 1 AND type = wanted.type
          AND next_attempt_at <= (SELECT now FROM clock)
        ORDER BY next_attempt_at
        LIMIT %(limit)b
        FOR UPDATE SKIP LOCKED
    ) AS candidate
    -- Oldest due first across types, so no type starves another.
    ORDER BY candidate.next_attempt_at, candidate.id
    LIMIT %(limit)b
),
claimed AS (
    UPDATE {schema}.tasks AS t
    SET version = t.version + 1,
        failed_attempts = t.failed_attempts + t.leased::int,
        state = CASE WHEN t.failed_attempts + t.leased::int >= due.most THEN 3 ELSE 1 END,
        leased = t.failed_attempts + t.leased::int < due.most,
        next_attempt_at = CASE WHEN t.failed_attempts + t.leased::int >= due.most
                               THEN clock.now ELSE clock.now + %(lease)b::interval END,
        last_error_kind = CASE WHEN t.leased THEN 'LeaseExpired' ELSE t.last_error_kind END,
        last_error_message = CASE WHEN t.leased THEN %(abandoned)b ELSE t.last_error_message END,
        last_error_at = CASE WHEN t.leased THEN clock.now ELSE t.last_error_at END,
        last_error_attempts = CASE WHEN t.leased THEN t.failed_attempts + 1
                                   ELSE t.last_error_attempts END
    FROM due, clock
    WHERE t.id = due.id
    RETURNING t.task_id, t.type, t.data, t.reference_id, t.state, t.failed_attempts,
              t.next_attempt_at, t.created_at, t.id, t.version, due.due_at
),
-- The statement sees the table as it was before the claim: the earliest due time left is the
-- earliest among the tasks not taken here and the new leases of those that were.
left_due AS (
    SELECT min(first.next_attempt_at) AS at
    FROM wanted CROSS JOIN LATERAL (
        SELECT next_attempt_at
        FROM {schema}.tasks
        WHERE state = 1 AND type = wanted.type AND id NOT IN (SELECT id FROM due)
        ORDER BY next_attempt_at
        LIMIT 1
    ) AS first
),
next_due AS (
    SELECT least((SELECT at FROM left_due),
                 (SELECT min(next_attempt_at) FROM claimed WHERE state = 1)) AS at
)
SELECT claimed.task_id, claimed.type, claimed.data, claimed.reference_id, claimed.state,
       claimed.failed_attempts, claimed.next_attempt_at, claimed.created_at, claimed.id,
       claimed.version, claimed.due_at, clock.now, next_due.at
FROM clock CROSS JOIN next_due LEFT JOIN claimed ON claimed.state = 1  -- the leased ones
ORDER BY claimed.due_at, claimed.id
