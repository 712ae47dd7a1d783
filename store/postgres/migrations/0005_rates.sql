-- 0005_rates: the start-rate buckets of a namespace's types (claim's rates).
-- {schema} is the namespace's schema; run by `retryd migrate` in its transaction.
-- Keeps   one row per task type ever claimed with a rate; full_at is the instant, in
--         microseconds of the database's clock (as a double, like the Redis store's
--         {ns}:rates), at which the type's token bucket is full again; NULL or past: full.
--         A claim locks the rows of its rated types (FOR UPDATE, in type order), so claims of
--         one type take their tokens one after another (store/_bucket.py has the arithmetic).

CREATE TABLE {schema}.rates (
    type    bigint PRIMARY KEY CHECK (type BETWEEN 1 AND 4294967295),
    full_at double precision
);
