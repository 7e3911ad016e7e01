//! Merges that mark changed rows deleted (deletion vectors) instead of rewriting large files: the table reads
//! the same as one merged by rewriting, in every delete mode; rows marked stay gone when their file is later
//! rewritten, checkpointed or read by other engines (the `deltalake` Python package, Polars).

use connector_core::change::Operation;
use connector_core::cursor::{SnapshotProgress, TableCursor};
use connector_core::delta::{ApplyOutcome, DeltaTableWriter};
use connector_core::deltalake::DeltaTable;
use connector_core::deltalake::parquet::basic::Encoding;
use connector_core::deltalake::parquet::file::reader::{FileReader, SerializedFileReader};
use connector_core::metadata_column::{DELETED, DELETED_AT, IS_CURRENT, OPERATION, POSITION, VALID_FROM, VALID_TO};
use connector_core::options::{DeleteMode, TableOptions};
use connector_core::schema::TableSchema;
use connector_core::status::table_status;

use crate::support::delta::{
    Changes, Order, TempLake, at_second, lsn, order_rows, orders_schema, python_reading, read_rows,
};

/// Rows in the snapshot's one file.
const SNAPSHOT_ROWS: i64 = 100;

/// Options under which the snapshot's file is not small (files merges write stop at 1 KiB), so merges mark
/// rows in it rather than rewrite it.
pub(crate) fn options(mode: DeleteMode, deletion_vectors: bool) -> TableOptions {
    TableOptions { delete_mode: mode, target_file_size: 1024, deletion_vectors, ..TableOptions::default() }
}

/// A table holding ids 1..=100 (amount = 10 × id) in one file, snapshot at LSN 100.
pub(crate) async fn hundred_orders(lake: &TempLake, options: &TableOptions) -> (TableSchema, DeltaTableWriter) {
    let schema = orders_schema(true);
    let mut table = lake.sink("p").open_table(&schema, options.clone()).await.expect("open");
    let rows: Vec<Order> = (1..=SNAPSHOT_ROWS).map(|id| (id, Some("c"), Some(id as i32 * 10))).collect();
    let mut writer = table.snapshot_writer(&schema, &lsn(100), at_second(0)).await.expect("writer");
    writer.write(&order_rows(&schema, &rows)).await.expect("write");
    let cursor = TableCursor {
        position: lsn(100),
        snapshot: Some(SnapshotProgress {
            resume_from: serde_json::json!({ "last_id": SNAPSHOT_ROWS }),
            rows_copied: SNAPSHOT_ROWS as u64,
            complete: true,
            taken_at: at_second(0),
        }),
        parts_of: None,
    };
    writer.commit(cursor).await.expect("commit");
    let table = lake.sink("p").open_table(&schema, options.clone()).await.expect("reopen");
    (schema, table)
}

/// Every column a user sees in `mode`, but the sync time (which differs between runs).
fn visible_columns(mode: DeleteMode) -> Vec<&'static str> {
    let mut columns = vec!["id", "customer", "amount", OPERATION, POSITION];
    match mode {
        DeleteMode::Hard => {}
        DeleteMode::Soft => columns.extend([DELETED, DELETED_AT]),
        DeleteMode::History => columns.extend([VALID_FROM, VALID_TO, IS_CURRENT]),
    }
    columns
}

/// Rows deleted by the deletion vectors of the table's files, per file.
fn marked_rows_per_file(table: &DeltaTable) -> Vec<i64> {
    let state = table.snapshot().expect("loaded");
    state.log_data().iter().filter_map(|file| file.deletion_vector_descriptor()).map(|dv| dv.cardinality).collect()
}

async fn merge(table: &mut DeltaTableWriter, schema: &TableSchema, changes: Changes<'_>) -> (usize, usize, usize) {
    match table.apply_changes(schema, &changes.build()).await.expect("apply") {
        ApplyOutcome::Merged(counts) => (counts.files_marked, counts.files_removed, counts.inserted),
        other => panic!("a keyed table merges, got {other:?}"),
    }
}

/// Two merges, each touching a few of the file's rows, then one touching more than a quarter of what is left.
async fn three_merges(mode: DeleteMode, deletion_vectors: bool) -> (TempLake, TableSchema, Vec<(usize, usize, usize)>) {
    let lake = TempLake::new();
    let (schema, mut table) = hundred_orders(&lake, &options(mode, deletion_vectors)).await;
    let mut counts = Vec::new();
    let first =
        Changes::new(&schema).update(10, "ten", 11).delete(20).commit(110, 1).insert(500, "new", 5).update(30, "x", 31);
    counts.push(merge(&mut table, &schema, first.commit(120, 2)).await);
    // Key 20 comes back: in soft mode its flagged row, written to the first merge's new file, is replaced.
    let second =
        Changes::new(&schema).update(10, "ten", 12).delete(40).update(50, "y", 51).insert(20, "back", 2).commit(130, 3);
    counts.push(merge(&mut table, &schema, second).await);
    let mut third = Changes::new(&schema);
    for id in 60..=90 {
        third = if id % 2 == 0 { third.update(id, "z", 1) } else { third.delete(id) };
    }
    counts.push(merge(&mut table, &schema, third.commit(140, 4)).await);
    (lake, schema, counts)
}

#[tokio::test]
async fn merges_mark_few_changed_rows_and_read_the_same_as_rewrites_in_every_mode() {
    for mode in [DeleteMode::Hard, DeleteMode::Soft, DeleteMode::History] {
        let (marked_lake, schema, marked_counts) = three_merges(mode, true).await;
        let (rewritten_lake, _, rewritten_counts) = three_merges(mode, false).await;
        let columns = visible_columns(mode);
        let marked = read_rows(&marked_lake.table_url(&schema.id), &columns).await;
        let rewritten = read_rows(&rewritten_lake.table_url(&schema.id), &columns).await;
        assert_eq!(marked, rewritten, "{mode:?}: marking and rewriting give the same table");

        // The first two merges mark rows of the snapshot's file (the second maybe of the first's new file
        // too); the third changes too many of its rows and rewrites it.
        let files_marked: Vec<usize> = marked_counts.iter().map(|counts| counts.0).collect();
        assert!(files_marked[0] == 1 && files_marked[1] >= 1 && files_marked[2] == 0, "{mode:?}: {marked_counts:?}");
        assert_eq!(marked_counts[0].1, 0, "{mode:?}: no file removed by the first merge: {marked_counts:?}");
        assert!(rewritten_counts.iter().all(|counts| counts.0 == 0), "{mode:?}: {rewritten_counts:?}");
        assert_eq!(
            marked_counts.iter().map(|counts| counts.2).collect::<Vec<_>>(),
            rewritten_counts.iter().map(|counts| counts.2).collect::<Vec<_>>(),
            "{mode:?}: same rows inserted"
        );
    }
}

#[tokio::test]
async fn marked_rows_stay_deleted_through_rewrites_checkpoints_and_reopening() {
    let lake = TempLake::new();
    let (schema, mut table) = hundred_orders(&lake, &options(DeleteMode::Hard, true)).await;
    let first = Changes::new(&schema).update(1, "one", 1).delete(2).delete(3).commit(110, 1);
    assert_eq!(merge(&mut table, &schema, first).await, (1, 0, 0));
    assert_eq!(marked_rows_per_file(table.table()), vec![3], "keys 1 (moved to a new file), 2 and 3");

    // Marking is idempotent per row: a key changed again is found in its new file, not the marked row.
    let second = Changes::new(&schema).update(1, "one", 2).delete(4).commit(120, 2);
    merge(&mut table, &schema, second).await;
    assert_eq!(marked_rows_per_file(table.table()).iter().sum::<i64>(), 4, "key 4 added to the vector");

    let url = lake.table_url(&schema.id);
    let mut expected: Vec<String> = vec!["1|one|2".to_string()];
    expected.extend((5..=SNAPSHOT_ROWS).map(|id| format!("{id}|c|{}", id * 10)));
    assert_eq!(read_rows(&url, &["id", "customer", "amount"]).await, expected);
    let status = table_status(&lake.destination(), &schema.id).await.expect("status").expect("a table");
    assert_eq!(status.row_count, Some(expected.len() as u64), "status counts the rows left, not the rows stored");

    // A checkpoint keeps the vectors; a reopened sink applies more changes on top of them.
    connector_core::deltalake::checkpoints::create_checkpoint(table.table(), None).await.expect("checkpoint");
    let mut reopened = lake.sink("p").open_table(&schema, options(DeleteMode::Hard, true)).await.expect("reopen");
    assert_eq!(read_rows(&url, &["id", "customer", "amount"]).await, expected);

    // A change to more than a quarter of the file rewrites it: the rows marked before stay gone.
    let mut many = Changes::new(&schema);
    for id in 5..=40 {
        many = many.update(id, "many", 7);
    }
    let (files_marked, files_removed, _) = merge(&mut reopened, &schema, many.commit(130, 3)).await;
    assert_eq!((files_marked, files_removed), (0, 1));
    assert!(marked_rows_per_file(reopened.table()).is_empty(), "the rewritten file needs no vector");
    let mut expected: Vec<String> = vec!["1|one|2".to_string()];
    expected.extend((5..=40).map(|id| format!("{id}|many|7")));
    expected.extend((41..=SNAPSHOT_ROWS).map(|id| format!("{id}|c|{}", id * 10)));
    assert_eq!(read_rows(&url, &["id", "customer", "amount"]).await, expected);
}

#[tokio::test]
async fn a_truncate_after_marking_drops_or_flags_only_live_rows() {
    for mode in [DeleteMode::Hard, DeleteMode::Soft] {
        let lake = TempLake::new();
        let (schema, mut table) = hundred_orders(&lake, &options(mode, true)).await;
        merge(&mut table, &schema, Changes::new(&schema).update(7, "seven", 7).commit(110, 1)).await;
        let batch = Changes::new(&schema).truncate().commit(120, 2).insert(1000, "after", 1).commit(130, 3).build();
        let ApplyOutcome::Merged(counts) = table.apply_changes(&schema, &batch).await.expect("apply") else {
            panic!("merged")
        };
        let url = lake.table_url(&schema.id);
        match mode {
            DeleteMode::Hard => {
                assert_eq!(counts.deleted, SNAPSHOT_ROWS as usize, "the marked row is not counted twice");
                assert_eq!(read_rows(&url, &["id"]).await, vec!["1000"]);
            }
            _ => {
                let rows = read_rows(&url, &["id", DELETED, OPERATION]).await;
                assert_eq!(rows.len(), SNAPSHOT_ROWS as usize + 1, "one row per key: {rows:?}");
                assert!(rows.contains(&format!("7|true|{}", Operation::Truncate.as_str())), "{rows:?}");
            }
        }
    }
}

#[tokio::test]
async fn other_engines_read_marked_rows_as_deleted() {
    let lake = TempLake::new();
    let (schema, mut table) = hundred_orders(&lake, &options(DeleteMode::Hard, true)).await;
    let changes = Changes::new(&schema).update(1, "one", 1).delete(2).insert(101, "new", 5).commit(110, 1);
    assert_eq!(merge(&mut table, &schema, changes).await.0, 1);
    let url = lake.table_url(&schema.id);
    let mut ours = read_rows(&url, &["id", "customer", "amount"]).await;
    assert_eq!(ours.len(), SNAPSHOT_ROWS as usize, "100 rows, one deleted, one inserted");
    ours.sort();

    // The `deltalake` package reads deletion vectors through its query engine (`to_pyarrow_table` refuses
    // tables that have them), Polars through its own scan. `os._exit`: deltalake can abort at interpreter exit.
    let script = r#"
import os, sys, deltalake, polars, pyarrow
table = deltalake.DeltaTable(sys.argv[1])
query = deltalake.QueryBuilder().register("t", table).execute("select id, customer, amount from t")
readers = [
    ("deltalake", pyarrow.table(query.read_all()).to_pylist()),
    ("polars", polars.read_delta(sys.argv[1]).select("id", "customer", "amount").to_dicts()),
]
for name, rows in readers:
    for row in rows:
        print(f"{name}|{row['id']}|{row['customer']}|{row['amount']}")
sys.stdout.flush()
os._exit(0)
"#;
    let stdout = python_reading(script, &url, "deltalake polars pyarrow");
    for reader in ["deltalake", "polars"] {
        let mut rows: Vec<String> =
            stdout.lines().filter_map(|line| line.strip_prefix(&format!("{reader}|"))).map(str::to_string).collect();
        rows.sort();
        assert_eq!(rows, ours, "{reader} reads what we read");
    }
}

#[tokio::test]
async fn small_files_left_by_merges_are_gathered_so_their_number_stays_bounded() {
    for deletion_vectors in [true, false] {
        let lake = TempLake::new();
        // Files under a quarter of 64 MiB are small: every file of this table.
        let options = TableOptions { deletion_vectors, ..TableOptions::default() };
        let (schema, mut table) = hundred_orders(&lake, &options).await;
        let mut expected: Vec<String> = (1..=SNAPSHOT_ROWS).map(|id| format!("{id}|{}", id * 10)).collect();
        let mut most_files = 0;
        // New keys above every file's range: each merge writes a new file and touches no other.
        for merge_number in 1..=20_i64 {
            let id = SNAPSHOT_ROWS + merge_number;
            let changes = Changes::new(&schema).insert(id, "new", id as i32 * 10).commit(100 + merge_number as u64, 1);
            merge(&mut table, &schema, changes).await;
            expected.push(format!("{id}|{}", id * 10));
            let files = table.table().snapshot().expect("loaded").log_data().num_files();
            most_files = most_files.max(files);
        }
        assert!(most_files <= 8, "deletion vectors {deletion_vectors}: at most 8 small files, saw {most_files}");
        let url = lake.table_url(&schema.id);
        assert_eq!(read_rows(&url, &["id", "amount"]).await, expected, "deletion vectors {deletion_vectors}");
    }
}

/// The encodings of `column` in each of the table's live files.
fn column_encodings(table: &DeltaTable, table_dir: &std::path::Path, column: &str) -> Vec<Vec<Encoding>> {
    let state = table.snapshot().expect("loaded");
    state
        .log_data()
        .iter()
        .map(|file| {
            let path = table_dir.join(file.path().as_ref());
            let reader = SerializedFileReader::new(std::fs::File::open(&path).expect("data file")).expect("parquet");
            let metadata = reader.metadata();
            let index =
                metadata.file_metadata().schema_descr().columns().iter().position(|found| found.name() == column);
            let index = index.expect("the column");
            metadata.row_groups().iter().flat_map(|group| group.column(index).encodings().collect::<Vec<_>>()).collect()
        })
        .collect()
}

#[tokio::test]
async fn distinct_text_and_integers_are_delta_encoded_only_where_readers_know_table_features_and_other_engines_read_it()
{
    // Distinct names, so the column has no dictionary and its values are encoded as the table's readers allow.
    let names: &'static [String] =
        Box::leak((0..1300).map(|id| format!("customer {id:05} of {}", id * 7919 % 1300)).collect());
    for deletion_vectors in [true, false] {
        let lake = TempLake::new();
        let schema = orders_schema(true);
        let options = TableOptions { deletion_vectors, ..TableOptions::default() };
        let mut table = lake.sink("p").open_table(&schema, options.clone()).await.expect("open");
        let rows: Vec<Order> = (1..=1000).map(|id| (id, Some(names[id as usize].as_str()), Some(id as i32))).collect();
        let mut writer = table.snapshot_writer(&schema, &lsn(100), at_second(0)).await.expect("writer");
        writer.write(&order_rows(&schema, &rows)).await.expect("write");
        writer.commit(TableCursor::copied(lsn(100), 1000, at_second(0))).await.expect("commit");
        let mut table = lake.sink("p").open_table(&schema, options.clone()).await.expect("reopen");
        let mut changes = Changes::new(&schema);
        for id in 1001..=1299 {
            changes = changes.insert(id, names[id as usize].as_str(), 1);
        }
        merge(&mut table, &schema, changes.commit(110, 1)).await;

        let table_dir = lake.table_url(&schema.id).to_file_path().expect("local table");
        let encodings = column_encodings(table.table(), &table_dir, "customer");
        assert_eq!(encodings.len(), 2, "the snapshot's file and the merge's");
        for file in &encodings {
            assert_eq!(
                file.contains(&Encoding::DELTA_BYTE_ARRAY),
                deletion_vectors,
                "deletion vectors {deletion_vectors}: {encodings:?}"
            );
            assert_eq!(file.contains(&Encoding::PLAIN), !deletion_vectors, "{encodings:?}");
        }
        // Distinct keys are packed as differences.
        let ids = column_encodings(table.table(), &table_dir, "id");
        for file in &ids {
            assert_eq!(file.contains(&Encoding::DELTA_BINARY_PACKED), deletion_vectors, "{ids:?}");
        }

        let url = lake.table_url(&schema.id);
        let mut ours = read_rows(&url, &["id", "customer", "amount"]).await;
        ours.sort();
        let mut expected: Vec<String> =
            (1..=1299).map(|id| format!("{id}|{}|{}", names[id as usize], if id <= 1000 { id } else { 1 })).collect();
        expected.sort();
        assert_eq!(ours, expected);
        let script = r#"
import os, sys, polars
for row in polars.read_delta(sys.argv[1]).select("id", "customer", "amount").to_dicts():
    print(f"{row['id']}|{row['customer']}|{row['amount']}")
sys.stdout.flush()
os._exit(0)
"#;
        let mut polars_rows: Vec<String> = python_reading(script, &url, "polars").lines().map(str::to_string).collect();
        polars_rows.sort();
        assert_eq!(polars_rows, expected, "Polars reads what we wrote");
    }
}
