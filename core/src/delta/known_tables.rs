//! What a long-running process knows of the Delta tables its pipeline opened: each table's state and the
//! cursor committed last. `connector run` keeps a pipeline's sink between passes, so reopening a table that
//! nothing committed to since costs two `HEAD` requests (its newest known commit is still there and still the
//! same file; the next one is not) instead of loading the log and reading the cursor again. A table something
//! else committed to is loaded afresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use deltalake::logstore::commit_uri_from_version;
use deltalake::logstore::object_store::{Error as ObjectStoreError, ObjectStoreExt};
use deltalake::{DeltaTable, DeltaTableError};
use tracing::debug;

use super::commit_state::CommittedState;
use crate::schema::TableId;

#[derive(Debug, Clone)]
struct KnownTable {
    table: DeltaTable,
    committed: Option<CommittedState>,
    /// When and how large the newest commit's file was when last looked at (`None` after the sink's own commit):
    /// a table deleted and made anew up to the same version has a file of the same name, not the same file.
    newest_commit: Option<(DateTime<Utc>, u64)>,
}

/// The tables one sink opened, shared by the sink and its writers (which note each commit).
#[derive(Debug, Clone, Default)]
pub(super) struct KnownTables(Arc<Mutex<HashMap<TableId, KnownTable>>>);

impl KnownTables {
    /// Notes `table`'s state and the cursor committed to it as of that state.
    pub(super) fn remember(&self, id: &TableId, table: &DeltaTable, committed: Option<&CommittedState>) {
        let mut known = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(version) = table.version() else { return };
        // What was seen of the newest commit's file still holds for the same version.
        let newest_commit = known
            .get(id)
            .filter(|earlier| earlier.table.version() == Some(version))
            .and_then(|earlier| earlier.newest_commit);
        known.insert(id.clone(), KnownTable { table: table.clone(), committed: committed.cloned(), newest_commit });
    }

    /// Notes what the newest commit's file was, unless the table moved on meanwhile.
    fn note_newest_commit(&self, id: &TableId, table: &DeltaTable, newest_commit: (DateTime<Utc>, u64)) {
        let mut known = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(entry) = known.get_mut(id).filter(|entry| entry.table.version() == table.version()) {
            entry.newest_commit = Some(newest_commit);
        }
    }

    fn forget(&self, id: &TableId) {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(id);
    }

    /// The table as known and the cursor committed to it, when nothing was committed to it since; `None` when
    /// it is not known, or something was committed since (by another writer, or the table was deleted, perhaps
    /// made anew), so the caller loads it afresh.
    pub(super) async fn unchanged(&self, id: &TableId) -> Option<(DeltaTable, Option<CommittedState>)> {
        let known = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(id).cloned()?;
        match still_newest(&known).await {
            Ok(Some(newest_commit)) => {
                self.note_newest_commit(id, &known.table, newest_commit);
                Some((known.table, known.committed))
            }
            Ok(None) => {
                self.forget(id);
                None
            }
            Err(cause) => {
                debug!(table = %id, %cause, "cannot check the known state of the table; loading it again");
                self.forget(id);
                None
            }
        }
    }
}

/// The newest commit's file (time, size) when it is still the one known and still the newest, else `None`.
async fn still_newest(known: &KnownTable) -> Result<Option<(DateTime<Utc>, u64)>, DeltaTableError> {
    let Some(version) = known.table.version() else { return Ok(None) };
    let store = known.table.log_store().object_store(None);
    let file = match store.head(&commit_uri_from_version(Some(version))).await {
        Ok(meta) => (meta.last_modified, meta.size),
        Err(ObjectStoreError::NotFound { .. }) => return Ok(None),
        Err(cause) => return Err(cause.into()),
    };
    if known.newest_commit.is_some_and(|seen| seen != file) {
        return Ok(None);
    }
    let next = store.head(&commit_uri_from_version(Some(version + 1))).await;
    match next {
        Err(ObjectStoreError::NotFound { .. }) => Ok(Some(file)),
        Ok(_) => Ok(None),
        Err(cause) => Err(cause.into()),
    }
}
