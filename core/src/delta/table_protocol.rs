//! What a table's protocol asks of its readers and writers: the minimum reader version and the table features.
//! The kernel keeps the protocol's fields to itself, so they are read from its serialized form, the log's own.

use deltalake::table::state::DeltaTableState;

pub(super) struct TableProtocol(serde_json::Value);

impl TableProtocol {
    pub(super) fn of(state: &DeltaTableState) -> Self {
        TableProtocol(serde_json::to_value(state.protocol()).unwrap_or_default())
    }

    /// The reader version the table asks for; 0 when the log does not say.
    pub(super) fn min_reader_version(&self) -> i64 {
        self.0["minReaderVersion"].as_i64().unwrap_or(0)
    }

    /// Whether both readers and writers must support `feature` (a reader-writer feature such as
    /// `deletionVectors`).
    pub(super) fn requires_of_readers_and_writers(&self, feature: &str) -> bool {
        let listed = |list: &str| self.0[list].as_array().is_some_and(|names| names.iter().any(|name| name == feature));
        listed("readerFeatures") && listed("writerFeatures")
    }
}
