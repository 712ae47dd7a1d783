-- rate_buckets: make the bucket row of each given type, where there is none yet (a full
-- bucket), so that claim can lock it: a row made by two claims at once would otherwise let
-- both take a full burst. Run on its own, committed, before a type's first claim with a rate.
-- Params  types bigint[]
-- Returns the types whose row it made.
-- Cost    O(types log T): an existing row is left as it is, unlocked and unwritten.
INSERT INTO {schema}.rates (type)
SELECT unnest(%(types)b::bigint[])
ON CONFLICT (type) DO NOTHING
RETURNING type
