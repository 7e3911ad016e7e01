-- MySQL 8: run once by the image's entrypoint, as root, on the first boot of an empty data directory,
-- after it created MYSQL_USER 'connector'@'%' and MYSQL_DATABASE `connector`.
--
-- A throwaway test server only: the integration tests create and drop their own databases, so the
-- user gets ALL on *.*, with the right to grant (one test creates a user with too few rights).
-- A production connector user needs far less: SELECT and LOCK TABLES on the captured tables' databases
-- (a snapshot locks its table against writers for the milliseconds its transactions take to start) plus
-- the two replication privileges below.
GRANT ALL PRIVILEGES ON *.* TO 'connector'@'%' WITH GRANT OPTION;

-- Already part of ALL, spelled out because they are the ones the binlog connector depends on:
--   REPLICATION SLAVE  - stream the binlog (COM_BINLOG_DUMP / COM_BINLOG_DUMP_GTID)
--   REPLICATION CLIENT - SHOW BINARY LOGS, SHOW MASTER STATUS (the current binlog file and position)
GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'connector'@'%';
