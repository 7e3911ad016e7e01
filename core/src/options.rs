//! Per-table choices: how deletes land, which columns form the key, how large files grow, whether merges may
//! mark rows deleted (deletion vectors).

use serde::{Deserialize, Serialize};

/// How a source DELETE shows in the Delta table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteMode {
    /// The row is removed (the table mirrors the source).
    #[default]
    Hard,
    /// The row stays with `_cdc_deleted = true` and `_cdc_deleted_at` set.
    Soft,
    /// Slowly changing dimension type 2: every version is kept with `_cdc_valid_from`, `_cdc_valid_to` and
    /// `_cdc_is_current`; a delete ends the current version.
    History,
}

/// Parquet file size the sink aims for. Large enough for readers to scan efficiently, small enough that a
/// MERGE touching a few keys rewrites little (measured in `bench/merge`).
pub const DEFAULT_TARGET_FILE_SIZE: u64 = 64 * 1024 * 1024;

/// Commits between two maintenance passes of a table's writer: about every two minutes for a continuous
/// pipeline committing every second, enough small files for a compaction to be worth its commit.
pub const DEFAULT_MAINTENANCE_EVERY_COMMITS: u64 = 100;

/// Options for one destination table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TableOptions {
    pub delete_mode: DeleteMode,
    /// Columns to merge on instead of the source's primary key (required for keyless tables to be merged
    /// rather than appended as a changelog).
    pub key: Option<Vec<String>>,
    pub target_file_size: u64,
    /// Whether a new table lets merges mark changed rows deleted (deletion vectors) instead of rewriting
    /// their files. Set when the table is created, as its `delta.enableDeletionVectors` property; readers
    /// need Delta's reader version 3 for such tables.
    pub deletion_vectors: bool,
    /// Commits between two maintenance passes the writer runs itself (compaction, checkpoint, log clean-up;
    /// VACUUM every tenth pass): each time the table's version passes a multiple of it. 0 turns them off.
    pub maintenance_every_commits: u64,
    /// What the table's rows come from, which decides its metadata columns; set by the source, never by users.
    #[serde(skip)]
    pub rows_origin: RowsOrigin,
}

/// What a table's rows come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RowsOrigin {
    /// Changes (and snapshots) of a source's records: operation, position, commit time.
    #[default]
    Changes,
    /// Rows of source files, appended: each row's file and its number in it.
    Files,
}

impl Default for TableOptions {
    fn default() -> Self {
        TableOptions {
            delete_mode: DeleteMode::Hard,
            key: None,
            target_file_size: DEFAULT_TARGET_FILE_SIZE,
            deletion_vectors: true,
            maintenance_every_commits: DEFAULT_MAINTENANCE_EVERY_COMMITS,
            rows_origin: RowsOrigin::Changes,
        }
    }
}

/// The columns a `key` option names, checked against the table's `columns`: one the table lacks is the user's
/// mistake in `pipelines.toml` (a configuration error, exit 2), named with the columns there are.
pub fn checked_key_option(
    table: &crate::schema::TableId,
    key: &[String],
    columns: &[crate::schema::Column],
) -> crate::error::Result<Vec<String>> {
    for name in key {
        if !columns.iter().any(|column| &column.name == name) {
            let names: Vec<&str> = columns.iter().map(|column| column.name.as_str()).collect();
            return Err(crate::error::Error::config(format!(
                "key column `{name}` is not a column of {table} (its columns: {}); fix `key` in \
                 tables_options.\"{table}\" of pipelines.toml",
                names.join(", ")
            )));
        }
    }
    Ok(key.to_vec())
}
