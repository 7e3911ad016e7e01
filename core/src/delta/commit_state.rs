//! The exactly-once bookkeeping written with every data commit: a Delta application transaction
//! (`txn`, app id `<pipeline>/<table>`) and the table cursor in the commit's metadata, atomically with the
//! data, and the cursor recorded apart under the transaction's version ([`cursor_record`]). Reading them back
//! tells where to resume.

use deltalake::DeltaTable;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use futures::TryStreamExt;
use serde_json::Value;

use super::cursor_record;
use crate::cursor::TableCursor;
use crate::error::{Error, Result};

/// Commit-metadata key holding the serialized [`TableCursor`].
pub(crate) const CURSOR_KEY: &str = "cdc.cursor";
/// Commit-metadata key holding the app id, so a table shared by two pipelines never mixes their cursors.
pub(crate) const APP_ID_KEY: &str = "cdc.appId";
/// Commit-metadata key repeating the `txn` version, tying the cursor to the transaction it belongs to.
const VERSION_KEY: &str = "cdc.txnVersion";
/// Commits read back (newest first) before giving up on finding the cursor. Our own commit is normally the
/// newest; maintenance commits (OPTIMIZE, VACUUM) by other tools may sit on top.
const CURSOR_SEARCH_DEPTH: usize = 1000;

/// What the Delta log says this pipeline committed to a table.
#[derive(Debug, Clone, PartialEq)]
pub struct CommittedState {
    pub txn_version: i64,
    pub cursor: TableCursor,
}

/// Reads the pipeline's last `txn` version and the cursor committed with it.
pub(crate) async fn read_committed_state(table: &DeltaTable, app_id: &str) -> Result<Option<CommittedState>> {
    let Ok(snapshot) = table.snapshot() else {
        return Ok(None);
    };
    let txn_version = snapshot.transaction_version(table.log_store().as_ref(), app_id).await.map_err(|cause| {
        Error::destination(format!("cannot read the transaction state of {}", table.table_url()), cause)
    })?;
    let Some(txn_version) = txn_version else {
        return Ok(None);
    };
    if let Some(cursor) = cursor_record::read(table, app_id, txn_version).await? {
        return Ok(Some(CommittedState { txn_version, cursor }));
    }
    // A table last written before cursors were recorded apart: its newest commits hold it.
    let mut history = table.history(Some(CURSOR_SEARCH_DEPTH));
    while let Some(commit) = history
        .try_next()
        .await
        .map_err(|cause| Error::destination(format!("cannot read the history of {}", table.table_url()), cause))?
    {
        let ours = commit.info.get(APP_ID_KEY).and_then(Value::as_str) == Some(app_id)
            && commit.info.get(VERSION_KEY).and_then(Value::as_i64) == Some(txn_version);
        if !ours {
            continue;
        }
        let Some(cursor) = commit.info.get(CURSOR_KEY) else { break };
        let cursor: TableCursor = serde_json::from_value(cursor.clone()).map_err(|cause| {
            Error::state(format!(
                "the cursor committed to {} by `{app_id}` cannot be read; resync the table",
                table.table_url()
            ))
            .caused_by(cause)
        })?;
        return Ok(Some(CommittedState { txn_version, cursor }));
    }
    Err(Error::state(format!(
        "{} records transaction version {txn_version} for `{app_id}`, but no commit among the last \
         {CURSOR_SEARCH_DEPTH} holds its cursor (the log was cleaned up or rewritten); resync the table",
        table.table_url()
    )))
}

/// The `txn` version of the next commit: the source's own ordered number when it has one and it moved
/// forward (the PostgreSQL LSN), otherwise one more than the last. Always strictly increasing.
pub(crate) fn next_txn_version(previous: Option<&CommittedState>, cursor: &TableCursor) -> i64 {
    let after_previous = previous.map_or(1, |state| state.txn_version + 1);
    cursor.position.txn_version().map_or(after_previous, |own| own.max(after_previous))
}

/// Commit properties that record `cursor` atomically with the commit's data.
pub(crate) fn commit_properties(app_id: &str, txn_version: i64, cursor: &TableCursor) -> Result<CommitProperties> {
    let cursor = serde_json::to_value(cursor)
        .map_err(|cause| Error::state("cannot serialize the table cursor").caused_by(cause))?;
    Ok(CommitProperties::default().with_application_transaction(Transaction::new(app_id, txn_version)).with_metadata([
        (APP_ID_KEY.to_string(), Value::from(app_id)),
        (VERSION_KEY.to_string(), Value::from(txn_version)),
        (CURSOR_KEY.to_string(), cursor),
    ]))
}
