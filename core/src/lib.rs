//! The engine every connector plugs into: the change model, the source and sink contracts, the Delta sink
//! with its exactly-once bookkeeping, configuration and scheduling. It knows no database. The design, with the
//! picture and the contracts: `docs/architecture.md`.

pub mod backoff;
pub mod capture_settings;
pub mod caught_panic;
pub mod change;
pub mod change_buffer;
pub mod config;
pub mod copy_progress;
pub mod copy_ranges;
pub mod cursor;
pub mod delta;
pub mod engine;
pub mod error;
pub mod event_log;
pub mod exposed_credentials;
pub mod gtid_state;
pub mod ingested_file;
pub mod lease;
pub mod maintenance;
pub mod metadata_column;
pub mod metrics;
pub mod options;
pub mod pipeline;
pub mod pipeline_control;
pub mod pipeline_health;
pub mod position;
pub mod schedule;
pub mod scheduler;
pub mod schema;
pub mod secret;
pub mod shape_change;
pub mod status;
pub mod sync_flags;
pub mod table_id;
pub mod tls;

pub use deltalake;
pub use deltalake::arrow;
pub use deltalake::parquet;
