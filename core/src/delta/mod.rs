//! The Delta Lake sink: one Delta table per source table at `<dest>/<namespace>/<table>`, written exactly
//! once. `docs/architecture.md` ("Exactly once") and `docs/delta-tables.md` state the contract this implements.

mod changelog;
mod column_compression;
mod commit_state;
mod cursor_advance;
mod cursor_record;
mod deletion_vectors;
mod evolution;
mod file_ledger;
mod file_merge;
mod file_selection;
mod key_ranges;
mod known_tables;
mod load_merge;
mod loaded_rows;
mod location;
mod merge;
mod merge_commit;
mod merge_source;
mod parallel_apply;
mod reduce;
pub(crate) mod sink;
mod sliced_replace;
mod snapshot_writer;
mod stored_rows;
mod table_maintenance;
mod table_protocol;
mod table_rows;
mod table_writer;
mod unchanged_cells;

pub use column_compression::{ValueEncodings, parquet_properties_for};
pub use commit_state::CommittedState;
pub(crate) use commit_state::{APP_ID_KEY, CURSOR_KEY, read_committed_state};
pub(crate) use cursor_record::recorded_app_ids;
pub use evolution::widens_exactly;
pub use load_merge::DEFAULT_MERGE_SLICE_BYTES;
pub use location::Destination;
pub use merge::MergeCounts;
pub use parallel_apply::apply_each;
pub use sink::DeltaSink;
pub use snapshot_writer::{SnapshotFiles, SnapshotWriter, WrittenFiles};
pub use table_writer::{ApplyOutcome, DeltaTableWriter};
