//! Throwaway PostgreSQL and MariaDB servers for tests.
