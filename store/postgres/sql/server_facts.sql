-- server_facts: who the server is, and whether it may lose a commit it acknowledged.
-- Returns one row: server_version, fsync, synchronous_commit.
SELECT current_setting('server_version'),
       current_setting('fsync'),
       current_setting('synchronous_commit')
