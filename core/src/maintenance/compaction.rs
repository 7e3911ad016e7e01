//! Compaction: small files bin-packed into files of about the target size by delta-rs's OPTIMIZE, whose
//! rewrite reads through deletion vectors, so rows they mark are dropped rather than brought back.

use std::num::NonZeroU64;

use deltalake::DeltaTable;
use deltalake::parquet::basic::{Compression, ZstdLevel};
use deltalake::parquet::file::properties::WriterProperties;

use super::{DEFAULT_TARGET_FILE_BYTES, MaintenancePolicy};
use crate::error::{Error, Result};

/// A file under this fraction of the target size counts as small.
const SMALL_FRACTION: u64 = 4;

/// The size compaction aims at: the policy's, the table's `delta.targetFileSize`, or the default.
pub(super) fn target_file_bytes(table: &DeltaTable, policy: &MaintenancePolicy) -> Result<NonZeroU64> {
    let configured = table.snapshot().map_err(|cause| read_error(table, cause))?.table_config().target_file_size;
    let bytes = policy.target_file_bytes.or(configured.map(NonZeroU64::get)).unwrap_or(DEFAULT_TARGET_FILE_BYTES);
    NonZeroU64::new(bytes).ok_or_else(|| Error::config("the target file size must be above zero"))
}

/// The table's data files, and how many of them are small.
#[derive(Debug, Clone, Copy)]
pub(super) struct FileCounts {
    pub all: usize,
    pub small: usize,
}

impl FileCounts {
    pub(super) fn of(table: &DeltaTable, target: NonZeroU64) -> Result<Self> {
        let state = table.snapshot().map_err(|cause| read_error(table, cause))?;
        let small_below = target.get() / SMALL_FRACTION;
        let mut counts = FileCounts { all: 0, small: 0 };
        for file in state.log_data().iter() {
            counts.all += 1;
            counts.small += usize::from(u64::try_from(file.size()).unwrap_or_default() < small_below);
        }
        Ok(counts)
    }
}

/// Files a compaction removed and wrote.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Compacted {
    pub removed: usize,
    pub added: usize,
}

pub(super) async fn compact(table: DeltaTable, target: NonZeroU64) -> Result<(DeltaTable, Compacted)> {
    let url = table.table_url().clone();
    // zstd at level 1, as the sink writes (delta-rs's own default is level 4, slower for little gain). One bin
    // at a time: compaction runs beside ingestion and should not take its memory or both cores.
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
        .build();
    let (table, metrics) = table
        .optimize()
        .with_target_size(target)
        .with_writer_properties(properties)
        .with_max_concurrent_tasks(1)
        .await
        .map_err(|cause| Error::destination(format!("cannot compact {url}"), cause))?;
    let compacted = Compacted {
        removed: usize::try_from(metrics.num_files_removed).unwrap_or(usize::MAX),
        added: usize::try_from(metrics.num_files_added).unwrap_or(usize::MAX),
    };
    Ok((table, compacted))
}

fn read_error(table: &DeltaTable, cause: deltalake::DeltaTableError) -> Error {
    Error::destination(format!("cannot read the state of {}", table.table_url()), cause)
}
