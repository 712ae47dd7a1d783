-- claim: lease up to limit due PENDING tasks of the given types to one worker, within each
-- type's own cap and start rate.
-- Params  types bigint[], max_attempts bigint[], caps bigint[] (0: only limit), per_second
--         float8[] (0: no rate), bursts bigint[] (all five one per type), rated bigint[] (the
--         types with a rate), limit bigint, lease interval, abandoned text (the message of an
--         abandoned run's failure)
-- Returns one row per task leased, oldest due first: its record after the claim, the instant it
--         was due at, now, then (the same on every row) the claimed types and the earliest
--         next_attempt_at left among each one's PENDING tasks (leases included; NULL: none),
--         and the rated types with their bucket as the claim read it (µs; NULL: full); when
--         nothing was leased, one row of NULLs but for those. store/_bucket.py makes next_due
--         and what was held back from them, as for the other stores.
-- Keeps   due is decided by the database's clock alone; FOR UPDATE SKIP LOCKED: concurrent
--         claims never wait for each other nor take one task twice; a claim bumps version
--         (fencing any late outcome of an earlier holder), sets leased and pushes
--         next_attempt_at to now + lease. A task still leased when claimed again was abandoned
--         by a worker that died: that counts as a failed attempt, and at max_attempts the task
--         becomes FAILED (due now) instead of crashing workers forever; either way the lost
--         lease is recorded as the task's last failure ('LeaseExpired').
--         A type takes at most its cap, and with a rate at most the whole tokens of its bucket
--         (rates, 0005_rates.sql): the rated types' rows are locked first, in type order, and
--         the clock is read after, so a claim that waited for another's tokens sees them
--         spent, by a later now. Each task leased takes a token (one failed as abandoned, none).
-- Cost    per type, an index range scan of tasks_type_due (its PENDING part) bounded by its
--         room: O(types * (log N + limit)), whatever the number of rows not due or finished;
--         with rates, one locked row per rated type, and its update.
WITH bucket AS MATERIALIZED (
    SELECT type, full_at FROM {schema}.rates
    WHERE type = ANY(%(rated)b::bigint[])
    ORDER BY type
    FOR UPDATE
),
-- Now, read once the buckets are ours (a claim that waited for them sees a later now); in
-- integer µs too, exactly (extract gives a double on PostgreSQL 13).
locked_at AS MATERIALIZED (
    SELECT clock_timestamp() AS now FROM (SELECT count(*) FROM bucket) AS locked
),
clock AS MATERIALIZED (
    SELECT now,
           extract(epoch FROM date_trunc('second', now))::bigint * 1000000
               + mod(extract(microseconds FROM now)::bigint, 1000000) AS now_us
    FROM locked_at
),
wanted AS (
    SELECT * FROM unnest(%(types)b::bigint[], %(max_attempts)b::bigint[], %(caps)b::bigint[],
                         %(per_second)b::float8[], %(bursts)b::bigint[])
        AS w(type, most, cap, per_second, burst)
),
-- Each rated type's bucket as this claim reads it: no emptier than empty at its own rate
-- (NULL, or not a number: full).
reading AS MATERIALIZED (
    SELECT wanted.*, 1000000 / wanted.per_second AS step, bucket.full_at AS stored,
           CASE WHEN bucket.full_at IS NULL OR bucket.full_at = 'NaN'::float8 THEN NULL
                ELSE least(bucket.full_at,
                           clock.now_us + wanted.burst * (1000000 / wanted.per_second))
           END AS full_at
    FROM wanted CROSS JOIN clock LEFT JOIN bucket ON bucket.type = wanted.type
    WHERE wanted.per_second > 0
),
room AS MATERIALIZED (
    SELECT wanted.type, wanted.most,
           least(%(limit)b, CASE WHEN wanted.cap > 0 THEN wanted.cap ELSE %(limit)b END,
                 CASE WHEN reading.type IS NULL THEN %(limit)b
                      WHEN reading.full_at IS NULL OR reading.full_at <= clock.now_us
                          THEN reading.burst
                      ELSE greatest(floor(reading.burst - (reading.full_at - clock.now_us)
                                          / reading.step + 1e-6::float8), 0)::bigint
                 END) AS room
    FROM wanted CROSS JOIN clock LEFT JOIN reading ON reading.type = wanted.type
),
due AS MATERIALIZED (
    SELECT candidate.id, candidate.next_attempt_at AS due_at, room.most
    FROM room CROSS JOIN LATERAL (
        SELECT id, next_attempt_at
        FROM {schema}.tasks
        WHERE state = 1 AND type = room.type
          AND next_attempt_at <= (SELECT now FROM clock)
        ORDER BY next_attempt_at
        LIMIT room.room
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
leased AS (
    SELECT type, count(*) AS n, min(next_attempt_at) AS first
    FROM claimed WHERE state = 1 GROUP BY type
),
-- Tokens taken: the bucket pushed one step further per task leased (and one read as emptier
-- than empty kept as read).
spent AS (
    INSERT INTO {schema}.rates AS r (type, full_at)
    SELECT reading.type,
           CASE WHEN reading.full_at IS NULL OR reading.full_at < clock.now_us
                THEN clock.now_us ELSE reading.full_at END
           + coalesce(leased.n, 0) * reading.step
    FROM reading CROSS JOIN clock LEFT JOIN leased ON leased.type = reading.type
    WHERE leased.n > 0 OR reading.full_at IS DISTINCT FROM reading.stored
    ON CONFLICT (type) DO UPDATE SET full_at = excluded.full_at
    RETURNING 1
),
-- The statement sees the table as it was before the claim: the earliest due time left of a
-- type is the earliest among its tasks not taken here and its new leases.
left_due AS (
    SELECT wanted.type, first.next_attempt_at AS at
    FROM wanted CROSS JOIN LATERAL (
        SELECT next_attempt_at
        FROM {schema}.tasks
        WHERE state = 1 AND type = wanted.type AND id NOT IN (SELECT id FROM due)
        ORDER BY next_attempt_at
        LIMIT 1
    ) AS first
),
afterwards AS (
    SELECT array_agg(wanted.type) AS types, array_agg(least(left_due.at, leased.first)) AS firsts
    FROM wanted LEFT JOIN left_due ON left_due.type = wanted.type
                LEFT JOIN leased ON leased.type = wanted.type
),
buckets AS (
    SELECT array_agg(type) AS types, array_agg(full_at) AS full_at FROM reading
)
SELECT claimed.task_id, claimed.type, claimed.data, claimed.reference_id, claimed.state,
       claimed.failed_attempts, claimed.next_attempt_at, claimed.created_at, claimed.id,
       claimed.version, claimed.due_at, clock.now, afterwards.types, afterwards.firsts,
       buckets.types, buckets.full_at, (SELECT count(*) FROM spent)
FROM clock CROSS JOIN afterwards CROSS JOIN buckets
     LEFT JOIN claimed ON claimed.state = 1  -- the leased ones
ORDER BY claimed.due_at, claimed.id
