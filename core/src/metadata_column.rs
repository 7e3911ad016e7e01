//! The columns the connector adds to every Delta table. All share one prefix, which source columns may not
//! use (checked in [`crate::schema::TableSchema::new`]), so they never collide.

use std::sync::Arc;

use deltalake::arrow::datatypes::{DataType, Field, TimeUnit};

/// The prefix of every metadata column.
pub const METADATA_PREFIX: &str = "_cdc_";

/// The last operation applied to the row: `snapshot`, `insert`, `update`, `delete` or `truncate`.
pub const OPERATION: &str = "_cdc_op";
/// The source position (LSN, binlog coordinate, API cursor) of the transaction that last changed the row.
pub const POSITION: &str = "_cdc_position";
/// When the source committed that transaction (UTC); for snapshot rows, when the snapshot was taken.
pub const COMMIT_TIME: &str = "_cdc_commit_time";
/// When the connector wrote the row to Delta (UTC).
pub const SYNCED_AT: &str = "_cdc_synced_at";
/// Soft-delete mode: whether the row was deleted in the source.
pub const DELETED: &str = "_cdc_deleted";
/// Soft-delete mode: when it was deleted (source commit time).
pub const DELETED_AT: &str = "_cdc_deleted_at";
/// SCD type 2 mode: when this version of the row became current.
pub const VALID_FROM: &str = "_cdc_valid_from";
/// SCD type 2 mode: when this version stopped being current (null while current).
pub const VALID_TO: &str = "_cdc_valid_to";
/// SCD type 2 mode: whether this is the row's current version.
pub const IS_CURRENT: &str = "_cdc_is_current";
/// Tables of files: the file a row was read from (its URL, as listed).
pub const FILE_PATH: &str = "_cdc_file_path";
/// Tables of files: the file's size in bytes when it was read.
pub const FILE_SIZE: &str = "_cdc_file_size";
/// Tables of files: the file's modification time in its store (UTC).
pub const FILE_MODIFIED: &str = "_cdc_file_modified";
/// Tables of files: the row's number within its file, from 0 (a CSV header is not a row).
pub const FILE_ROW: &str = "_cdc_file_row";

/// Tables of messages (Kafka): the topic a row's message was read from.
pub const KAFKA_TOPIC: &str = "_cdc_kafka_topic";
/// Tables of messages: its partition.
pub const KAFKA_PARTITION: &str = "_cdc_kafka_partition";
/// Tables of messages: its offset in the partition.
pub const KAFKA_OFFSET: &str = "_cdc_kafka_offset";
/// Tables of messages: its timestamp (UTC, as the producer or the broker set it).
pub const KAFKA_TIMESTAMP: &str = "_cdc_kafka_timestamp";
/// Tables of messages: its key, as bytes (of a Debezium change, the key's fields as compact JSON).
pub const KAFKA_KEY: &str = "_cdc_kafka_key";
/// Tables of messages: its headers, as a JSON array of `{"key", "value"}`.
pub const KAFKA_HEADERS: &str = "_cdc_kafka_headers";
/// Tables of Debezium change events: the event's `source` block (database, table, log position) as JSON.
pub const DEBEZIUM_SOURCE: &str = "_cdc_debezium_source";

/// Metadata columns a source fills itself, row by row, as columns of its rows: allowed in a source's schema
/// despite the prefix (every other name with the prefix is refused there).
pub const SOURCE_FILLED: &[&str] =
    &[KAFKA_TOPIC, KAFKA_PARTITION, KAFKA_OFFSET, KAFKA_TIMESTAMP, KAFKA_KEY, KAFKA_HEADERS, DEBEZIUM_SOURCE];

/// Whether `name` is a metadata column the connector fills (operation, position, times, deletes), as opposed to
/// a source's column, including the metadata columns a source fills itself ([`SOURCE_FILLED`]).
pub fn filled_by_connector(name: &str) -> bool {
    name.starts_with(METADATA_PREFIX) && !SOURCE_FILLED.contains(&name)
}

pub(crate) fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
}

pub(crate) fn field(name: &str) -> Field {
    let data_type = match name {
        OPERATION | POSITION | FILE_PATH => DataType::Utf8,
        DELETED | IS_CURRENT => DataType::Boolean,
        FILE_SIZE | FILE_ROW => DataType::Int64,
        _ => timestamp_type(),
    };
    Field::new(name, data_type, true)
}
