//! The table cursor kept where neither checkpoints nor log clean-up nor other writers' commits lose it.
//!
//! Every commit carries the cursor in its commit metadata, but checkpoints drop commit metadata and log clean-up
//! deletes the commits, so after a long pause or a thousand commits by another writer (an `OPTIMIZE` every few
//! minutes) the commit that holds it is gone. The commit's `txn` action, which checkpoints do keep, gives the
//! pipeline's last transaction version; the cursor of that version is also written, before the commit, to
//! `<table>/_connector/cursors/<app id>/<version>.json`, so it is found from the version alone. A file whose
//! version never committed (a crash between the write and the commit) is never read: the version in the log is
//! the truth, and the next commit of that version overwrites it. Delta's own writer cannot record it in the log
//! itself: domain metadata needs the `domainMetadata` writer feature, which delta-rs 1.1 does not support, and a
//! metadata action on every commit would make a concurrent `OPTIMIZE` fail.
//!
//! The `_connector` directory starts with `_`, which Delta readers and `VACUUM` leave alone.

use deltalake::DeltaTable;
use deltalake::logstore::object_store::{self, ObjectStore, PutPayload};
use deltalake::{DeltaTableError, Path};
use object_store::ObjectStoreExt;
use tracing::debug;

use crate::cursor::TableCursor;
use crate::error::{Error, Result};

/// The directory of the cursor records, relative to the table's root.
const CURSORS_DIRECTORY: &str = "_connector/cursors";

/// Where the cursor of `app_id` at transaction `version` is kept, relative to the table's root. The app id is
/// one path part (its `/` escaped).
fn record_path(app_id: &str, version: i64) -> Path {
    let mut parts: Vec<object_store::path::PathPart<'_>> = CURSORS_DIRECTORY.split('/').map(Into::into).collect();
    parts.push(app_id.into());
    parts.push(format!("{version:020}.json").into());
    Path::from_iter(parts)
}

fn store(table: &DeltaTable) -> std::sync::Arc<dyn ObjectStore> {
    table.log_store().object_store(None)
}

fn store_error(table: &DeltaTable, what: &str, cause: object_store::Error) -> Error {
    Error::destination(format!("{what} of {}", table.table_url()), DeltaTableError::ObjectStore { source: cause })
}

/// Writes the cursor a commit of transaction `version` is about to record.
pub(crate) async fn write(table: &DeltaTable, app_id: &str, version: i64, cursor: &TableCursor) -> Result<()> {
    let bytes = serde_json::to_vec(cursor)
        .map_err(|cause| Error::state("cannot serialize the table cursor").caused_by(cause))?;
    store(table)
        .put(&record_path(app_id, version), PutPayload::from(bytes))
        .await
        .map_err(|cause| store_error(table, "cannot record the cursor", cause))?;
    Ok(())
}

/// The cursor recorded for transaction `version`; `None` when there is none (a table written before cursors
/// were recorded here).
pub(crate) async fn read(table: &DeltaTable, app_id: &str, version: i64) -> Result<Option<TableCursor>> {
    let bytes = match store(table).get(&record_path(app_id, version)).await {
        Ok(found) => found.bytes().await.map_err(|cause| store_error(table, "cannot read the cursor", cause))?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(cause) => return Err(store_error(table, "cannot read the cursor", cause)),
    };
    let cursor = serde_json::from_slice(&bytes).map_err(|cause| {
        Error::state(format!(
            "the cursor recorded for `{app_id}` in {} cannot be read; resync the table",
            table.table_url()
        ))
        .caused_by(cause)
    })?;
    Ok(Some(cursor))
}

/// Removes the record of an earlier commit of `app_id`, once a later one is committed. Best effort: a record
/// left behind (this failing, or a crash between a record's write and its commit) is never read.
pub(crate) async fn forget(table: &DeltaTable, app_id: &str, version: i64) {
    if let Err(cause) = store(table).delete(&record_path(app_id, version)).await
        && !matches!(cause, object_store::Error::NotFound { .. })
    {
        debug!(table = %table.table_url(), error = %cause, "cannot remove an old cursor record");
    }
}

/// The app ids (`<pipeline>/<table>`) with a cursor recorded in the table, for `connector status`.
pub(crate) async fn recorded_app_ids(table: &DeltaTable) -> Result<Vec<String>> {
    let directory = Path::from(CURSORS_DIRECTORY);
    let listed = store(table)
        .list_with_delimiter(Some(&directory))
        .await
        .map_err(|cause| store_error(table, "cannot list the cursor records", cause))?;
    // Each app id is one path part, percent-encoded by `object_store` (its `/` above all).
    let app_ids = listed
        .common_prefixes
        .iter()
        .filter_map(|prefix| prefix.filename())
        .map(|part| percent_encoding::percent_decode_str(part).decode_utf8_lossy().into_owned());
    Ok(app_ids.collect())
}

#[cfg(test)]
mod tests {
    use deltalake::arrow::datatypes::DataType;
    use deltalake::checkpoints::{cleanup_expired_logs_for, create_checkpoint};

    use crate::delta::{DeltaSink, Destination};
    use crate::options::TableOptions;
    use crate::position::{BinlogPosition, SourcePosition};
    use crate::schema::{Column, TableId, TableSchema};
    use crate::status::table_status;

    fn binlog_of(position: &SourcePosition) -> BinlogPosition {
        match position {
            SourcePosition::Binlog(binlog) => binlog.clone(),
            other => panic!("not a binlog position: {other}"),
        }
    }

    /// Commits by another writer (an `OPTIMIZE` or a `VACUUM` of another tool): no data, no cursor.
    const OTHER_WRITERS_COMMITS: u64 = 2000;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_cursor_survives_other_writers_commits_a_checkpoint_and_the_log_clean_up() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let destination = Destination::parse(&directory.path().display().to_string()).expect("a destination");
        let sink = DeltaSink::new(destination.clone(), "shop", Default::default());
        let id = TableId::new("shop", "orders");
        let schema =
            TableSchema::new(id.clone(), vec![Column::new("id", DataType::Int64, "bigint")], vec!["id".into()])
                .expect("a schema");
        let mut writer = sink.open_table(&schema, TableOptions::default()).await.expect("created");
        // A binlog position: nothing in the transaction version tells it, only the cursor.
        let position = SourcePosition::Binlog(BinlogPosition {
            file: "mysql-bin.000042".into(),
            offset: 1_234,
            gtid: Some("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-77".into()),
            server: Some("3e11fa47-71ca-11e1-9e33-c80aa9429562".into()),
        });
        let earlier = SourcePosition::Binlog(BinlogPosition { offset: 4, ..binlog_of(&position) });
        assert!(writer.advance_cursor(&earlier).await.expect("committed"));
        assert!(writer.advance_cursor(&position).await.expect("committed"));
        // One record per pipeline and table: the earlier commit's is removed once the next is committed.
        let records = directory.path().join("shop/orders/_connector/cursors");
        let files: Vec<_> = std::fs::read_dir(&records)
            .expect("a directory per app id")
            .flat_map(|app| std::fs::read_dir(app.expect("an entry").path()).expect("records"))
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");

        // Another writer's commits (an `OPTIMIZE` that found nothing to do), written as that writer would: one
        // JSON commit file each, here without delta-rs, whose commits take long enough to slow the suite.
        let log = directory.path().join("shop/orders/_delta_log");
        let first = writer.table().version().expect("a version") + 1;
        for version in first..first + OTHER_WRITERS_COMMITS {
            let commit = serde_json::json!({"commitInfo": {
                "timestamp": chrono::Utc::now().timestamp_millis(),
                "operation": "OPTIMIZE",
                "operationParameters": {},
                "isBlindAppend": false,
            }});
            std::fs::write(log.join(format!("{version:020}.json")), format!("{commit}\n")).expect("a commit");
        }
        let mut table = writer.table().clone();
        table.load().await.expect("the other writer's commits read");
        assert_eq!(table.version(), Some(first + OTHER_WRITERS_COMMITS - 1));
        create_checkpoint(&table, None).await.expect("a checkpoint");
        let version = table.version().expect("a version");
        let removed = cleanup_expired_logs_for(version, table.log_store().as_ref(), i64::MAX, None)
            .await
            .expect("the log cleaned up");
        assert!(removed as u64 > OTHER_WRITERS_COMMITS / 2, "{removed} commits removed");
        let first_commit = directory.path().join("shop/orders/_delta_log/00000000000000000001.json");
        assert!(!first_commit.exists(), "the commit that held the cursor is cleaned up");

        let reopened = sink.open_table(&schema, TableOptions::default()).await.expect("reopened");
        assert_eq!(reopened.cursor().map(|cursor| &cursor.position), Some(&position));
        let status = table_status(&destination, &id).await.expect("a status").expect("a table");
        let progress: Vec<_> = status.pipelines.iter().map(|progress| progress.cursor.position.clone()).collect();
        assert_eq!(progress, vec![position], "status finds the cursor too");

        // Without its record the cursor is lost to a new process (this sink knows it already): what the record
        // is there for.
        std::fs::remove_dir_all(directory.path().join("shop/orders/_connector")).expect("records removed");
        let sink = DeltaSink::new(destination.clone(), "shop", Default::default());
        let error = sink.open_table(&schema, TableOptions::default()).await.expect_err("the cursor is lost");
        assert!(error.to_string().contains("holds its cursor"), "{error}");
    }
}
