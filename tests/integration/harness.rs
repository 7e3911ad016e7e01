//! Checks that the throwaway servers are configured as the connectors need.
