-- schema_version: the namespace's schema version (an undefined table: never migrated).
-- Returns one row: the version of the last migration applied.
SELECT version FROM {schema}.schema_version
