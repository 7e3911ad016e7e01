//! The Delta log kept short to read: a checkpoint at the current version, and commit files past the log's
//! retention deleted.

use deltalake::DeltaTable;
use deltalake::checkpoints::{cleanup_metadata, create_checkpoint};
use object_store::ObjectStoreExt;
use serde::Deserialize;

use crate::error::{Error, Result};

/// The part of `_delta_log/_last_checkpoint` read here.
#[derive(Deserialize)]
struct LastCheckpoint {
    version: u64,
}

/// Writes a checkpoint at the table's version unless the newest checkpoint is there; returns that version if
/// it wrote one.
pub(super) async fn checkpoint(mut table: DeltaTable) -> Result<(DeltaTable, Option<u64>)> {
    let url = table.table_url().clone();
    let Some(version) = table.version() else {
        return Ok((table, None));
    };
    if newest_checkpoint(&table).await? == Some(version) {
        return Ok((table, None));
    }
    create_checkpoint(&table, None)
        .await
        .map_err(|cause| Error::destination(format!("cannot write a checkpoint of {url}"), cause))?;
    table.update_state().await.map_err(|cause| Error::destination(format!("cannot reload {url}"), cause))?;
    Ok((table, Some(version)))
}

/// The version of the newest checkpoint, from `_last_checkpoint` (`None`: no checkpoint yet).
pub(crate) async fn newest_checkpoint(table: &DeltaTable) -> Result<Option<u64>> {
    let log_store = table.log_store();
    let path = log_store.log_path().clone().join("_last_checkpoint");
    let bytes = match log_store.object_store(None).get(&path).await {
        Ok(found) => found.bytes().await,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(cause) => Err(cause),
    };
    let bytes = bytes.map_err(|cause| {
        Error::destination(
            format!("cannot read the last checkpoint of {}", table.table_url()),
            deltalake::DeltaTableError::ObjectStore { source: cause },
        )
    })?;
    // A record another writer left unreadable is no reason to stop: a new checkpoint replaces it.
    Ok(serde_json::from_slice::<LastCheckpoint>(&bytes).ok().map(|last| last.version))
}

/// Deletes the commit files older than `delta.logRetentionDuration` that the newest checkpoint makes needless.
pub(super) async fn remove_expired_logs(table: &DeltaTable) -> Result<usize> {
    cleanup_metadata(table, None)
        .await
        .map_err(|cause| Error::destination(format!("cannot clean up the expired log of {}", table.table_url()), cause))
}
