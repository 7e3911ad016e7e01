-- MariaDB 10.11: run once by the image's entrypoint, as root, on the first boot of an empty data
-- directory, after it created MARIADB_USER 'connector'@'%' and MARIADB_DATABASE `connector`.
--
-- A throwaway test server only: the integration tests create and drop their own databases, so the
-- user gets ALL on *.*, with the right to grant (one test creates a user with too few rights).
-- A production connector user needs far less (SELECT on the captured tables
-- plus the replication privileges below).
GRANT ALL PRIVILEGES ON *.* TO 'connector'@'%' WITH GRANT OPTION;

-- Already part of ALL, spelled out because they are the ones the binlog connector depends on.
-- Since 10.5 MariaDB splits MySQL's REPLICATION CLIENT; it still accepts that name as an alias of
-- BINLOG MONITOR.
--   REPLICATION SLAVE - stream the binlog (COM_BINLOG_DUMP)
--   BINLOG MONITOR    - SHOW BINARY LOGS, SHOW BINLOG EVENTS, SHOW MASTER STATUS
GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'connector'@'%';
