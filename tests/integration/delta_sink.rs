//! The Delta sink on real tables: snapshot, merge per delete mode, changelog, exactly-once replays,
//! crashes before commit and schema evolution, each read back with deltalake's own reader.

use std::sync::Arc;

use connector_core::change::Operation;
use connector_core::cursor::{SnapshotProgress, TableCursor};
use connector_core::delta::{ApplyOutcome, DeltaTableWriter};
use connector_core::options::{DeleteMode, TableOptions};
use connector_core::schema::TableSchema;

use connector_core::deltalake::logstore::object_store::local::LocalFileSystem;

use crate::support::delta::{Changes, TempLake, at_second, lsn, order_rows, orders_schema, python_reading, read_rows};
use crate::support::faulty_store::FaultyStore;

fn snapshot_cursor(position: u64, rows_copied: u64, complete: bool) -> TableCursor {
    TableCursor {
        position: lsn(position),
        snapshot: Some(SnapshotProgress {
            resume_from: serde_json::json!({ "last_id": rows_copied }),
            rows_copied,
            complete,
            taken_at: at_second(0),
        }),
        parts_of: None,
    }
}

/// Snapshot of ids 1..=4 in two committed chunks at LSN 100.
async fn snapshot_four_orders(lake: &TempLake, options: TableOptions) {
    let schema = orders_schema(true);
    let mut table = lake.sink("p").open_table(&schema, options).await.expect("open");
    let mut writer = table.snapshot_writer(&schema, &lsn(100), at_second(0)).await.expect("writer");
    writer.write(&order_rows(&schema, &[(1, Some("ada"), Some(10)), (2, Some("bob"), Some(20))])).await.expect("write");
    writer.commit(snapshot_cursor(100, 2, false)).await.expect("commit chunk");
    writer.write(&order_rows(&schema, &[(3, Some("cy"), Some(30)), (4, Some("dee"), Some(40))])).await.expect("write");
    writer.commit(snapshot_cursor(100, 4, true)).await.expect("commit chunk");
}

/// A lake whose table in `mode` holds the four orders of [`snapshot_four_orders`], opened for changes.
async fn four_orders_in(mode: DeleteMode) -> (TempLake, TableSchema, DeltaTableWriter) {
    let lake = TempLake::new();
    let options = TableOptions { delete_mode: mode, ..TableOptions::default() };
    snapshot_four_orders(&lake, options.clone()).await;
    let schema = orders_schema(true);
    let table = lake.sink("p").open_table(&schema, options).await.expect("open");
    (lake, schema, table)
}

#[tokio::test]
async fn snapshot_then_changes_merge_to_the_source_state() {
    let lake = TempLake::new();
    let schema = orders_schema(true);
    snapshot_four_orders(&lake, TableOptions::default()).await;

    let mut table = lake.sink("p").open_table(&schema, TableOptions::default()).await.expect("reopen");
    assert_eq!(table.cursor(), Some(&snapshot_cursor(100, 4, true)), "cursor read back from the Delta log");
    let batch = Changes::new(&schema)
        .insert(5, "eve", 50)
        .update(1, "ada", 11)
        .commit(110, 1)
        .delete(2)
        .update(1, "ada", 12)
        .update(3, "cyd", 31)
        .commit(120, 2)
        .insert(2, "bob", 21)
        .delete(4)
        .commit(130, 3)
        .build();
    let outcome = table.apply_changes(&schema, &batch).await.expect("apply");
    let ApplyOutcome::Merged(counts) = outcome else { panic!("expected a merge, got {outcome:?}") };
    assert_eq!(counts.source_rows, 5, "one row per changed key");
    assert_eq!((counts.inserted, counts.updated, counts.deleted), (1, 3, 1));

    let url = lake.table_url(&schema.id);
    assert_eq!(
        read_rows(&url, &["id", "customer", "amount", "_cdc_op", "_cdc_position"]).await,
        vec!["1|ada|12|update|0/78", "2|bob|21|insert|0/82", "3|cyd|31|update|0/78", "5|eve|50|insert|0/6E"]
    );
    let reopened = lake.sink("p").open_table(&schema, TableOptions::default()).await.expect("reopen");
    assert_eq!(reopened.cursor().map(|cursor| &cursor.position), Some(&lsn(130)));
    assert!(reopened.cursor().is_some_and(TableCursor::snapshot_complete));
}

/// `connector run` keeps a pipeline's sink between passes: a table it opened before is reopened from what it
/// knows, with whatever was committed since by anyone, and a table deleted and made anew is not taken for the
/// old one.
#[tokio::test]
async fn a_sink_reopens_the_tables_it_knows_with_what_was_committed_since() {
    let lake = TempLake::new();
    let schema = orders_schema(true);
    let sink = lake.sink("p");
    let mut table = sink.open_table(&schema, TableOptions::default()).await.expect("open");
    let mut writer = table.snapshot_writer(&schema, &lsn(100), at_second(0)).await.expect("writer");
    writer.write(&order_rows(&schema, &[(1, Some("ada"), Some(10))])).await.expect("write");
    writer.commit(snapshot_cursor(100, 1, true)).await.expect("commit");
    let reopened = sink.open_table(&schema, TableOptions::default()).await.expect("reopen");
    assert_eq!(reopened.cursor(), Some(&snapshot_cursor(100, 1, true)), "the cursor it committed");

    // Another process of the pipeline commits (say, after a restart elsewhere): the sink sees its commit.
    let mut other = lake.sink("p").open_table(&schema, TableOptions::default()).await.expect("open elsewhere");
    let changes = Changes::new(&schema).insert(2, "bob", 20).commit(110, 1).build();
    other.apply_changes(&schema, &changes).await.expect("apply elsewhere");
    let mut reopened = sink.open_table(&schema, TableOptions::default()).await.expect("reopen");
    assert_eq!(reopened.cursor().map(|cursor| &cursor.position), Some(&lsn(110)), "the other process's cursor");
    let changes = Changes::new(&schema).update(2, "bob", 21).commit(120, 2).build();
    reopened.apply_changes(&schema, &changes).await.expect("apply on the refreshed state");
    let url = lake.table_url(&schema.id);
    assert_eq!(read_rows(&url, &["id", "amount"]).await, vec!["1|10", "2|21"]);

    // The table deleted and made anew by another pipeline: the sink finds none of its own cursor there.
    std::fs::remove_dir_all(url.to_file_path().expect("a local table")).expect("delete the table");
    let mut made_anew = lake.sink("q").open_table(&schema, TableOptions::default()).await.expect("make anew");
    let mut writer = made_anew.snapshot_writer(&schema, &lsn(500), at_second(0)).await.expect("writer");
    writer.write(&order_rows(&schema, &[(9, Some("zed"), Some(90))])).await.expect("write");
    writer.commit(snapshot_cursor(500, 1, true)).await.expect("commit");
    let reopened = sink.open_table(&schema, TableOptions::default()).await.expect("reopen");
    assert_eq!(reopened.cursor(), None, "pipeline p never wrote the new table");
    assert_eq!(read_rows(&url, &["id", "amount"]).await, vec!["9|90"]);
}

#[tokio::test]
async fn replayed_and_overlapping_batches_apply_once() {
    let lake = TempLake::new();
    let schema = orders_schema(true);
    snapshot_four_orders(&lake, TableOptions::default()).await;
    let first = Changes::new(&schema).update(1, "ada", 11).commit(110, 1).insert(6, "fay", 60).commit(120, 2).build();
    let mut table = lake.sink("p").open_table(&schema, TableOptions::default()).await.expect("open");
    table.apply_changes(&schema, &first).await.expect("apply");
    assert_eq!(table.apply_changes(&schema, &first).await.expect("replay"), ApplyOutcome::AlreadyCommitted);

    // A restarted process replays from an older position: the overlap is skipped, the rest applied.
    let mut restarted = lake.sink("p").open_table(&schema, TableOptions::default()).await.expect("reopen");
    let overlapping =
        Changes::new(&schema).insert(6, "fay", 60).commit(120, 2).update(6, "fay", 61).commit(125, 3).build();
    let outcome = restarted.apply_changes(&schema, &overlapping).await.expect("apply overlap");
    assert!(matches!(outcome, ApplyOutcome::Merged(counts) if counts.source_rows == 1), "{outcome:?}");
    let url = lake.table_url(&schema.id);
    assert_eq!(read_rows(&url, &["id", "amount"]).await, vec!["1|11", "2|20", "3|30", "4|40", "6|61"]);
    // Another pipeline writing the same table keeps its own cursor.
    let other = lake.sink("other").open_table(&schema, TableOptions::default()).await.expect("open other");
    assert_eq!(other.cursor(), None);
}

#[tokio::test]
async fn a_crash_between_parquet_write_and_commit_loses_and_duplicates_nothing() {
    let lake = TempLake::new();
    let schema = orders_schema(true);
    let store = FaultyStore::new(Arc::new(LocalFileSystem::new()));
    let sink = lake.sink("p").with_object_store(store.clone());
    let mut table = sink.open_table(&schema, TableOptions::default()).await.expect("open");
    let mut writer = table.snapshot_writer(&schema, &lsn(100), at_second(0)).await.expect("writer");
    writer.write(&order_rows(&schema, &[(1, Some("ada"), Some(10))])).await.expect("write");
    writer.commit(snapshot_cursor(100, 1, false)).await.expect("commit");
    writer.write(&order_rows(&schema, &[(2, Some("bob"), Some(20)), (3, Some("cy"), Some(30))])).await.expect("write");
    store.fail_commits(true);
    let error = writer.commit(snapshot_cursor(100, 3, true)).await.expect_err("the commit is cut off");
    assert!(error.report().contains("injected crash"), "{}", error.report());
    drop(table); // the process dies here: the chunk's Parquet file is complete, the commit never happened

    let table_dir = lake.dir.path().join("shop").join("orders");
    assert_eq!(parquet_file_count(&table_dir), 2, "both chunks' files reached storage");
    store.fail_commits(false);
    let mut restarted = sink.open_table(&schema, TableOptions::default()).await.expect("reopen");
    assert_eq!(restarted.cursor(), Some(&snapshot_cursor(100, 1, false)), "resume after the committed chunk");
    let url = lake.table_url(&schema.id);
    assert_eq!(read_rows(&url, &["id"]).await, vec!["1"], "uncommitted rows are invisible");

    let mut writer = restarted.snapshot_writer(&schema, &lsn(100), at_second(0)).await.expect("writer");
    writer.write(&order_rows(&schema, &[(2, Some("bob"), Some(20)), (3, Some("cy"), Some(30))])).await.expect("write");
    writer.commit(snapshot_cursor(100, 3, true)).await.expect("commit");
    assert_eq!(read_rows(&url, &["id", "customer"]).await, vec!["1|ada", "2|bob", "3|cy"]);

    // The same for a merge: its rewritten files land, its commit does not; the replay applies it once.
    let batch = Changes::new(&schema).update(1, "ada", 11).insert(4, "dee", 40).commit(110, 1).build();
    store.fail_commits(true);
    restarted.apply_changes(&schema, &batch).await.expect_err("the merge commit is cut off");
    store.fail_commits(false);
    let mut restarted = sink.open_table(&schema, TableOptions::default()).await.expect("reopen");
    assert_eq!(restarted.cursor().map(|cursor| &cursor.position), Some(&lsn(100)));
    assert_eq!(read_rows(&url, &["id", "amount"]).await, vec!["1|10", "2|20", "3|30"]);
    restarted.apply_changes(&schema, &batch).await.expect("replay");
    assert_eq!(restarted.apply_changes(&schema, &batch).await.expect("again"), ApplyOutcome::AlreadyCommitted);
    assert_eq!(read_rows(&url, &["id", "amount"]).await, vec!["1|11", "2|20", "3|30", "4|40"]);
}

fn parquet_file_count(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .expect("table dir")
        .filter(|entry| entry.as_ref().is_ok_and(|entry| entry.path().extension().is_some_and(|ext| ext == "parquet")))
        .count()
}

#[tokio::test]
async fn truncate_empties_the_table_then_later_changes_apply() {
    let lake = TempLake::new();
    let schema = orders_schema(true);
    snapshot_four_orders(&lake, TableOptions::default()).await;
    let mut table = lake.sink("p").open_table(&schema, TableOptions::default()).await.expect("open");
    let batch = Changes::new(&schema)
        .update(1, "ada", 11)
        .commit(110, 1)
        .truncate()
        .commit(120, 2)
        .insert(9, "ivy", 90)
        .commit(130, 3)
        .build();
    table.apply_changes(&schema, &batch).await.expect("apply");
    assert_eq!(read_rows(&lake.table_url(&schema.id), &["id", "customer"]).await, vec!["9|ivy"]);
}

#[tokio::test]
async fn soft_delete_keeps_rows_flagged() {
    let (lake, schema, mut table) = four_orders_in(DeleteMode::Soft).await;
    let batch = Changes::new(&schema).delete(2).update(3, "cyd", 31).commit(110, 5).delete(77).commit(120, 6).build();
    table.apply_changes(&schema, &batch).await.expect("apply");
    let url = lake.table_url(&schema.id);
    assert_eq!(
        read_rows(&url, &["id", "customer", "amount", "_cdc_deleted", "_cdc_deleted_at"]).await,
        vec!["1|ada|10|false|∅", "2|bob|20|true|2023-11-14T22:13:25Z", "3|cyd|31|false|∅", "4|dee|40|false|∅",]
    );
    // A deleted key that comes back is live again.
    let batch = Changes::new(&schema).insert(2, "bob", 22).commit(130, 7).build();
    table.apply_changes(&schema, &batch).await.expect("apply");
    assert_eq!(
        read_rows(&url, &["id", "amount", "_cdc_deleted"]).await,
        vec!["1|10|false", "2|22|false", "3|31|false", "4|40|false"]
    );
}

#[tokio::test]
async fn history_mode_keeps_every_version_with_validity() {
    let (lake, schema, mut table) = four_orders_in(DeleteMode::History).await;
    let batch = Changes::new(&schema)
        .update(1, "ada", 11)
        .commit(110, 10)
        .update(1, "ada", 12)
        .delete(2)
        .commit(120, 20)
        .insert(5, "eve", 50)
        .commit(130, 30)
        .build();
    table.apply_changes(&schema, &batch).await.expect("apply");
    let batch = Changes::new(&schema).delete(1).commit(140, 40).build();
    table.apply_changes(&schema, &batch).await.expect("apply");
    let url = lake.table_url(&schema.id);
    let t = |second| at_second(second).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    assert_eq!(
        read_rows(&url, &["id", "amount", "_cdc_valid_from", "_cdc_valid_to", "_cdc_is_current"]).await,
        vec![
            format!("1|10|{}|{}|false", t(0), t(10)),
            format!("1|11|{}|{}|false", t(10), t(20)),
            format!("1|12|{}|{}|false", t(20), t(40)),
            format!("2|20|{}|{}|false", t(0), t(20)),
            format!("3|30|{}|∅|true", t(0)),
            format!("4|40|{}|∅|true", t(0)),
            format!("5|50|{}|∅|true", t(30)),
        ]
    );
}

#[tokio::test]
async fn keyless_tables_are_changelogs_and_truncate_empties_them() {
    let lake = TempLake::new();
    let schema = orders_schema(false);
    let mut table = lake.sink("p").open_table(&schema, TableOptions::default()).await.expect("open");
    let batch = Changes::new(&schema)
        .insert(1, "ada", 10)
        .insert(1, "ada", 10)
        .commit(110, 1)
        .change(Operation::Update, (1, Some("ada"), Some(11)))
        .commit(120, 2)
        .build();
    assert_eq!(table.apply_changes(&schema, &batch).await.expect("apply"), ApplyOutcome::Appended { rows: 3 });
    let url = lake.table_url(&schema.id);
    assert_eq!(
        read_rows(&url, &["_cdc_position", "_cdc_op", "id", "amount"]).await,
        vec!["0/6E|insert|1|10", "0/6E|insert|1|10", "0/78|update|1|11"]
    );
    let batch = Changes::new(&schema).truncate().commit(130, 3).insert(2, "bob", 20).commit(140, 4).build();
    table.apply_changes(&schema, &batch).await.expect("apply");
    assert_eq!(read_rows(&url, &["_cdc_op", "id"]).await, vec!["insert|2"]);
}

#[tokio::test]
async fn schema_changes_add_keep_widen_or_stop() {
    use connector_core::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    use connector_core::arrow::datatypes::DataType;
    use connector_core::change::{ChangeBatch, TransactionSpan};
    use connector_core::schema::{Column, TableSchema};

    let lake = TempLake::new();
    let schema = orders_schema(true);
    snapshot_four_orders(&lake, TableOptions::default()).await;
    // The source drops `customer`, widens `amount` to bigint and adds `note`.
    let evolved = TableSchema::new(
        schema.id.clone(),
        vec![
            Column::new("id", DataType::Int64, "bigint"),
            Column::new("amount", DataType::Int64, "bigint"),
            Column::new("note", DataType::Utf8, "text"),
        ],
        vec!["id".into()],
    )
    .expect("valid schema");
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![1, 7])),
        Arc::new(Int64Array::from(vec![5_000_000_000, 70])),
        Arc::new(StringArray::from(vec![Some("big"), None])),
    ];
    let rows = RecordBatch::try_new(evolved.arrow_schema(), columns).expect("rows");
    let span = TransactionSpan { end_row: 2, position: lsn(110), commit_time: at_second(1) };
    let batch =
        ChangeBatch::new(&evolved, rows, vec![Operation::Update, Operation::Insert], vec![span]).expect("batch");
    let mut table = lake.sink("p").open_table(&evolved, TableOptions::default()).await.expect("open");
    table.apply_changes(&evolved, &batch).await.expect("apply evolved changes");
    let url = lake.table_url(&schema.id);
    assert_eq!(
        read_rows(&url, &["id", "customer", "amount", "note"]).await,
        vec!["1|∅|5000000000|big", "2|bob|20|∅", "3|cy|30|∅", "4|dee|40|∅", "7|∅|70|∅"],
        "dropped column kept (null for new writes), widened values intact, added column present"
    );
    assert_eq!(table.cursor().map(|cursor| &cursor.position), Some(&lsn(110)));

    // bigint → text is not a widening: the table stops with the column, both types and the resync command.
    let incompatible = TableSchema::new(
        schema.id.clone(),
        vec![Column::new("id", DataType::Int64, "bigint"), Column::new("amount", DataType::Utf8, "text")],
        vec!["id".into()],
    )
    .expect("valid schema");
    let error = table.evolve(&incompatible).await.expect_err("incompatible change");
    let message = error.to_string();
    assert!(message.contains("`amount`") && message.contains("connector resync"), "{message}");
}

#[tokio::test]
async fn the_python_deltalake_reader_sees_the_same_rows() {
    let lake = TempLake::new();
    let schema = orders_schema(true);
    // `to_pyarrow_table` reads tables without deletion vectors (Delta reader version 1); `deletion_vectors`
    // tests the package's reader for the others.
    let options = TableOptions { deletion_vectors: false, ..TableOptions::default() };
    snapshot_four_orders(&lake, options.clone()).await;
    let mut table = lake.sink("p").open_table(&schema, options).await.expect("open");
    let batch = Changes::new(&schema).update(1, "ada", 11).delete(2).insert(5, "eve", 50).commit(110, 1).build();
    table.apply_changes(&schema, &batch).await.expect("apply");
    let url = lake.table_url(&schema.id);
    // `os._exit`: the deltalake package can abort while its runtime shuts down at interpreter exit.
    let script = "import os, sys, deltalake\n\
        rows = deltalake.DeltaTable(sys.argv[1]).to_pyarrow_table(columns=['id','customer','amount']).to_pylist()\n\
        for row in sorted(rows, key=lambda r: r['id']): print(f\"{row['id']}|{row['customer']}|{row['amount']}\")\n\
        sys.stdout.flush()\n\
        os._exit(0)";
    let python_rows: Vec<String> =
        python_reading(script, &url, "deltalake pyarrow").lines().map(str::to_string).collect();
    assert_eq!(python_rows, read_rows(&url, &["id", "customer", "amount"]).await);
    assert_eq!(python_rows, vec!["1|ada|11", "3|cy|30", "4|dee|40", "5|eve|50"]);
}

#[tokio::test]
async fn a_resync_empties_and_refills_the_table_in_commits_readers_can_follow() {
    let lake = TempLake::new();
    let schema = orders_schema(true);
    snapshot_four_orders(&lake, TableOptions::default()).await;
    let mut table = lake.sink("p").open_table(&schema, TableOptions::default()).await.expect("open");
    let batch = Changes::new(&schema).update(1, "ada", 11).commit(110, 1).build();
    table.apply_changes(&schema, &batch).await.expect("apply");

    // A resync restarts the snapshot at a newer position: one commit empties the table and records it.
    table.restart_snapshot(snapshot_cursor(200, 0, false)).await.expect("restart");
    let url = lake.table_url(&schema.id);
    assert!(read_rows(&url, &["id"]).await.is_empty());
    let mut restarted = lake.sink("p").open_table(&schema, TableOptions::default()).await.expect("reopen");
    assert_eq!(restarted.cursor(), Some(&snapshot_cursor(200, 0, false)));
    let error = restarted.apply_changes(&schema, &batch).await.expect_err("changes wait for the snapshot");
    assert!(error.to_string().contains("unfinished snapshot"), "{error}");

    let mut writer = restarted.snapshot_writer(&schema, &lsn(200), at_second(5)).await.expect("writer");
    writer.write(&order_rows(&schema, &[(1, Some("ada"), Some(12)), (5, Some("eve"), Some(50))])).await.expect("write");
    writer.commit(snapshot_cursor(200, 2, true)).await.expect("commit");
    assert_eq!(
        read_rows(&url, &["id", "amount", "_cdc_op", "_cdc_position"]).await,
        vec!["1|12|snapshot|0/C8", "5|50|snapshot|0/C8"]
    );
    // Changes committed before the new snapshot position are already in it and are skipped.
    assert_eq!(restarted.apply_changes(&schema, &batch).await.expect("old batch"), ApplyOutcome::AlreadyCommitted);
}

#[tokio::test]
async fn object_store_destinations_hold_the_same_tables() {
    use connector_core::delta::{DeltaSink, Destination};

    use crate::support::delta::read_rows_with;
    use crate::support::s3::S3Server;

    let server = S3Server::start("lake");
    let destination = Destination::parse("s3://lake/raw").expect("s3 destination");
    let sink = DeltaSink::new(destination.clone(), "p", server.storage_options());
    let schema = orders_schema(true);
    let mut table = sink.open_table(&schema, TableOptions::default()).await.expect("open on s3");
    let mut writer = table.snapshot_writer(&schema, &lsn(100), at_second(0)).await.expect("writer");
    writer.write(&order_rows(&schema, &[(1, Some("ada"), Some(10)), (2, Some("bob"), Some(20))])).await.expect("write");
    writer.commit(snapshot_cursor(100, 2, true)).await.expect("commit");
    let batch = Changes::new(&schema).update(2, "bob", 21).insert(3, "cy", 30).commit(110, 1).build();
    table.apply_changes(&schema, &batch).await.expect("merge on s3");

    let url = destination.table_url(&schema.id).expect("url");
    assert_eq!(url.as_str(), "s3://lake/raw/shop/orders/");
    assert_eq!(read_rows_with(&url, server.storage_options(), &["id", "amount"]).await, vec!["1|10", "2|21", "3|30"]);
    let reopened = sink.open_table(&schema, TableOptions::default()).await.expect("reopen");
    assert_eq!(reopened.cursor().map(|cursor| &cursor.position), Some(&lsn(110)));
}

/// On an object store the pipeline lease is a conditional write: a second writer is refused with the holder's
/// identity, and the lease is free again once released.
#[tokio::test]
async fn object_store_leases_admit_one_writer_per_pipeline() {
    use connector_core::delta::Destination;
    use connector_core::lease::PipelineLease;

    use crate::support::s3::S3Server;

    let server = S3Server::start("leases");
    let destination = Destination::parse("s3://leases/lake").expect("s3 destination");
    let options = server.storage_options();
    let held = PipelineLease::acquire(&destination, "orders", &options).await.expect("first writer");
    let refused = PipelineLease::acquire(&destination, "orders", &options).await.expect_err("second writer");
    let text = refused.to_string();
    assert!(text.contains(&format!("process {}", std::process::id())), "{text}");
    let other = PipelineLease::acquire(&destination, "billing", &options).await.expect("another pipeline");
    held.release().await;
    let again = PipelineLease::acquire(&destination, "orders", &options).await.expect("free once released");
    again.release().await;
    other.release().await;
}

#[tokio::test]
async fn a_merge_skips_files_between_distant_clusters_of_changed_keys() {
    let lake = TempLake::new();
    // Two files: keys 1–2 and keys 3–4.
    snapshot_four_orders(&lake, TableOptions::default()).await;
    let schema = orders_schema(true);
    let mut table = lake.sink("p").open_table(&schema, TableOptions::default()).await.expect("open");
    // Key 1 and key 100: their min/max spans both files, their ranges only the first.
    let batch = Changes::new(&schema).update(1, "ada", 11).insert(100, "zed", 1).commit(110, 1).build();
    let ApplyOutcome::Merged(counts) = table.apply_changes(&schema, &batch).await.expect("apply") else {
        panic!("a keyed table merges");
    };
    // Only the file holding key 1 is read: key 100 falls in no file's range.
    assert_eq!((counts.files_scanned, counts.files_skipped), (1, 1), "{counts:?}");
    let rows = read_rows(&lake.table_url(&schema.id), &["id", "customer", "amount"]).await;
    assert_eq!(rows, vec!["1|ada|11", "2|bob|20", "3|cy|30", "4|dee|40", "100|zed|1"]);
}

/// Snapshot of ids 1 and 10 in one file and ids 20 and 30 in another, at LSN 100.
async fn snapshot_two_sparse_files(lake: &TempLake, options: TableOptions) {
    let schema = orders_schema(true);
    let mut table = lake.sink("p").open_table(&schema, options).await.expect("open");
    let mut writer = table.snapshot_writer(&schema, &lsn(100), at_second(0)).await.expect("writer");
    writer
        .write(&order_rows(&schema, &[(1, Some("ada"), Some(10)), (10, Some("bob"), Some(20))]))
        .await
        .expect("write");
    writer.commit(snapshot_cursor(100, 2, false)).await.expect("commit chunk");
    writer
        .write(&order_rows(&schema, &[(20, Some("cy"), Some(30)), (30, Some("dee"), Some(40))]))
        .await
        .expect("write");
    writer.commit(snapshot_cursor(100, 4, true)).await.expect("commit chunk");
}

#[tokio::test]
async fn a_merge_rewrites_only_files_that_hold_a_changed_key() {
    let lake = TempLake::new();
    snapshot_two_sparse_files(&lake, TableOptions::default()).await;
    let schema = orders_schema(true);
    let mut table = lake.sink("p").open_table(&schema, TableOptions::default()).await.expect("open");
    // Key 5 falls in the first file's range (1–10) but is not in it: that file is read, not rewritten.
    let batch = Changes::new(&schema).insert(5, "eve", 50).commit(110, 1).build();
    let ApplyOutcome::Merged(counts) = table.apply_changes(&schema, &batch).await.expect("apply") else {
        panic!("a keyed table merges");
    };
    assert_eq!((counts.files_scanned, counts.files_skipped), (1, 1), "{counts:?}");
    assert_eq!((counts.files_removed, counts.files_added, counts.inserted), (0, 1, 1), "{counts:?}");

    // Key 10 is in the first file: it is replaced by a file holding key 1 and the new version of key 10.
    let batch = Changes::new(&schema).update(10, "bob", 21).delete(1).commit(120, 2).build();
    let ApplyOutcome::Merged(counts) = table.apply_changes(&schema, &batch).await.expect("apply") else {
        panic!("a keyed table merges");
    };
    assert_eq!((counts.files_removed, counts.files_added), (1, 1), "{counts:?}");
    assert_eq!((counts.inserted, counts.updated, counts.deleted), (0, 1, 1), "{counts:?}");
    let rows = read_rows(&lake.table_url(&schema.id), &["id", "amount", "_cdc_op", "_cdc_position"]).await;
    assert_eq!(rows, vec!["5|50|insert|0/6E", "10|21|update|0/78", "20|30|snapshot|0/64", "30|40|snapshot|0/64"]);

    // The rewritten file kept its key range: a change to key 20 reads only the second file.
    let batch = Changes::new(&schema).update(20, "cy", 31).commit(130, 3).build();
    let ApplyOutcome::Merged(counts) = table.apply_changes(&schema, &batch).await.expect("apply") else {
        panic!("a keyed table merges");
    };
    assert_eq!((counts.files_scanned, counts.files_removed, counts.updated), (1, 1, 1), "{counts:?}");
}

#[tokio::test]
async fn a_merge_without_rows_to_write_still_commits_its_position() {
    let lake = TempLake::new();
    snapshot_two_sparse_files(&lake, TableOptions::default()).await;
    let schema = orders_schema(true);
    let mut table = lake.sink("p").open_table(&schema, TableOptions::default()).await.expect("open");
    // A delete of a key the table never had changes no file.
    let batch = Changes::new(&schema).delete(7).commit(110, 1).build();
    table.apply_changes(&schema, &batch).await.expect("apply");
    let reopened = lake.sink("p").open_table(&schema, TableOptions::default()).await.expect("reopen");
    assert_eq!(reopened.cursor().map(|cursor| &cursor.position), Some(&lsn(110)));
    assert_eq!(read_rows(&lake.table_url(&schema.id), &["id"]).await, vec!["1", "10", "20", "30"]);
}

#[tokio::test]
async fn soft_delete_mode_marks_truncated_rows_deleted() {
    let (lake, schema, mut table) = four_orders_in(DeleteMode::Soft).await;
    let batch = Changes::new(&schema)
        .delete(4)
        .commit(105, 1)
        .update(1, "ada", 11)
        .commit(110, 2)
        .truncate()
        .commit(120, 3)
        .insert(2, "bob", 22)
        .commit(130, 4)
        .build();
    table.apply_changes(&schema, &batch).await.expect("apply");
    let t = |second| at_second(second).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    assert_eq!(
        read_rows(&lake.table_url(&schema.id), &["id", "amount", "_cdc_deleted", "_cdc_deleted_at", "_cdc_op"]).await,
        vec![
            format!("1|10|true|{}|truncate", t(3)),
            "2|22|false|∅|insert".to_string(),
            format!("3|30|true|{}|truncate", t(3)),
            format!("4|40|true|{}|truncate", t(3)),
        ]
    );
}

#[tokio::test]
async fn history_mode_closes_every_current_version_on_truncate() {
    let (lake, schema, mut table) = four_orders_in(DeleteMode::History).await;
    let batch = Changes::new(&schema)
        .update(1, "ada", 11)
        .commit(110, 10)
        .truncate()
        .commit(120, 20)
        .insert(2, "bob", 22)
        .commit(130, 30)
        .build();
    table.apply_changes(&schema, &batch).await.expect("apply");
    let t = |second| at_second(second).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    assert_eq!(
        read_rows(
            &lake.table_url(&schema.id),
            &["id", "amount", "_cdc_valid_from", "_cdc_valid_to", "_cdc_is_current"]
        )
        .await,
        vec![
            format!("1|10|{}|{}|false", t(0), t(20)),
            format!("2|20|{}|{}|false", t(0), t(30)),
            format!("2|22|{}|∅|true", t(30)),
            format!("3|30|{}|{}|false", t(0), t(20)),
            format!("4|40|{}|{}|false", t(0), t(20)),
        ]
    );
}
