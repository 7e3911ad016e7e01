//! VACUUM: data files that no version within the retention uses, and files no commit ever referenced, deleted.

use std::time::Duration;

use deltalake::DeltaTable;
use deltalake::operations::vacuum::VacuumMode;

use crate::error::{Error, Result};

/// Vacuums `table`, keeping what versions of the last `retention` use (`None`: the table's
/// `delta.deletedFileRetentionDuration`); returns how many files it deleted.
pub(super) async fn vacuum(table: DeltaTable, retention: Option<Duration>) -> Result<(DeltaTable, usize)> {
    let url = table.table_url().clone();
    // Full, not Lite: Lite deletes only files that commits removed, and a crash between a file's write and its
    // commit leaves a file no commit names.
    let mut builder = table.vacuum().with_mode(VacuumMode::Full);
    if let Some(retention) = retention {
        let retention = chrono::Duration::from_std(retention)
            .map_err(|_| Error::config(format!("vacuum retention {retention:?} is too long")))?;
        // A retention the user chose below the table's own is theirs to choose (delta-rs refuses it unless told).
        builder = builder.with_retention_period(retention).with_enforce_retention_duration(false);
    }
    let (table, metrics) = builder.await.map_err(|cause| Error::destination(format!("cannot vacuum {url}"), cause))?;
    Ok((table, metrics.files_deleted.len()))
}
