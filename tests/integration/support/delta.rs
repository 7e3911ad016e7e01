//! Builds change batches for a small `shop.orders` table and reads Delta tables back as text rows.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use connector_core::arrow::array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray};
use connector_core::arrow::datatypes::DataType;
use connector_core::arrow::util::display::array_value_to_string;
use connector_core::change::{ChangeBatch, Operation, TransactionSpan};
use connector_core::delta::{DeltaSink, Destination};
use connector_core::deltalake::datafusion::prelude::{SessionContext, col};
use connector_core::position::{Lsn, SourcePosition};
use connector_core::schema::{Column, TableId, TableSchema};
use url::Url;

/// `shop.orders (id bigint primary key, customer text, amount int)`; `with_key: false` drops the key.
pub fn orders_schema(with_key: bool) -> TableSchema {
    orders_shaped("orders", with_key)
}

/// A table of `shop.orders`' columns named `shop.<name>`.
pub fn orders_shaped(name: &str, with_key: bool) -> TableSchema {
    TableSchema::new(
        TableId::new("shop", name),
        vec![
            Column::new("id", DataType::Int64, "bigint"),
            Column::new("customer", DataType::Utf8, "text"),
            Column::new("amount", DataType::Int32, "integer"),
        ],
        if with_key { vec!["id".into()] } else { vec![] },
    )
    .expect("valid schema")
}

pub fn lsn(value: u64) -> SourcePosition {
    SourcePosition::Postgres { lsn: Lsn(value) }
}

pub fn at_second(second: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + second, 0).single().expect("valid time")
}

/// One row of `shop.orders`: `(id, customer, amount)`.
pub type Order = (i64, Option<&'static str>, Option<i32>);

pub fn order_rows(schema: &TableSchema, rows: &[Order]) -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(rows.iter().map(|row| Some(row.0)).collect::<Int64Array>()),
        Arc::new(rows.iter().map(|row| row.1).collect::<StringArray>()),
        Arc::new(rows.iter().map(|row| row.2).collect::<Int32Array>()),
    ];
    RecordBatch::try_new(schema.arrow_schema(), columns).expect("valid rows")
}

/// Builds a change batch transaction by transaction.
pub struct Changes<'a> {
    schema: &'a TableSchema,
    rows: Vec<Order>,
    operations: Vec<Operation>,
    transactions: Vec<TransactionSpan>,
}

impl<'a> Changes<'a> {
    pub fn new(schema: &'a TableSchema) -> Self {
        Changes { schema, rows: vec![], operations: vec![], transactions: vec![] }
    }

    pub fn change(mut self, operation: Operation, row: Order) -> Self {
        self.rows.push(row);
        self.operations.push(operation);
        self
    }

    pub fn insert(self, id: i64, customer: &'static str, amount: i32) -> Self {
        self.change(Operation::Insert, (id, Some(customer), Some(amount)))
    }

    pub fn update(self, id: i64, customer: &'static str, amount: i32) -> Self {
        self.change(Operation::Update, (id, Some(customer), Some(amount)))
    }

    pub fn delete(self, id: i64) -> Self {
        self.change(Operation::Delete, (id, None, None))
    }

    pub fn truncate(self) -> Self {
        self.change(Operation::Truncate, (0, None, None))
    }

    /// Ends the current transaction, committed at LSN `position` and second `second`.
    pub fn commit(mut self, position: u64, second: i64) -> Self {
        self.transactions.push(TransactionSpan {
            end_row: self.rows.len(),
            position: lsn(position),
            commit_time: at_second(second),
        });
        self
    }

    pub fn build(self) -> ChangeBatch {
        let rows = order_rows(self.schema, &self.rows);
        ChangeBatch::new(self.schema, rows, self.operations, self.transactions).expect("valid batch")
    }
}

/// A sink writing under a fresh temporary directory.
pub struct TempLake {
    pub dir: tempfile::TempDir,
}

impl TempLake {
    pub fn new() -> Self {
        TempLake { dir: tempfile::tempdir().expect("tempdir") }
    }

    pub fn destination(&self) -> Destination {
        Destination::parse(self.dir.path().to_str().expect("utf-8 path")).expect("destination")
    }

    pub fn sink(&self, pipeline: &str) -> DeltaSink {
        DeltaSink::new(self.destination(), pipeline, HashMap::new())
    }

    pub fn table_url(&self, table: &TableId) -> Url {
        self.destination().table_url(table).expect("table url")
    }
}

/// Reads `columns` of the Delta table at `url`, sorted by them, each row rendered as `a|b|c` (null as `∅`).
pub async fn read_rows(url: &Url, columns: &[&str]) -> Vec<String> {
    read_rows_with(url, HashMap::new(), columns).await
}

/// [`read_rows`] with object-store options (endpoint, credentials).
pub async fn read_rows_with(url: &Url, storage_options: HashMap<String, String>, columns: &[&str]) -> Vec<String> {
    let table = connector_core::deltalake::open_table_with_storage_options(url.clone(), storage_options)
        .await
        .expect("open table");
    let context = SessionContext::new();
    table.update_datafusion_session(&context.state()).expect("register store");
    let provider = table.table_provider().await.expect("provider");
    let frame = context
        .read_table(provider)
        .expect("read")
        .select(columns.iter().map(|name| col(format!("\"{name}\""))).collect::<Vec<_>>())
        .expect("select")
        .sort(columns.iter().map(|name| col(format!("\"{name}\"")).sort(true, true)).collect())
        .expect("sort");
    let mut rows = Vec::new();
    for batch in frame.collect().await.expect("collect") {
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = (0..batch.num_columns())
                .map(|column| {
                    let array = batch.column(column);
                    if array.is_null(row) {
                        "∅".to_string()
                    } else {
                        array_value_to_string(array, row).expect("display")
                    }
                })
                .collect();
            rows.push(cells.join("|"));
        }
    }
    rows
}

/// Runs a Python `script` with the local path of the table at `url` as its argument and returns what it
/// printed; fails the test with the script's error and `install` (the packages it needs) when it fails.
pub fn python_reading(script: &str, url: &Url, install: &str) -> String {
    let output = std::process::Command::new("python3")
        .args(["-c", script, url.to_file_path().expect("local path").to_str().expect("utf-8")])
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "the Python reader failed (install it with `pip install {install}`): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Every Delta commit file (`_delta_log/*.json`) under `dir`, at any depth, that wrote rows or a source
/// position (an `add`, `remove` or `txn` action, or the connector's cursor in its commit info), sorted: empty
/// when nothing was committed there, unchanged when a refused run committed nothing more. A commit that only
/// created an empty table (protocol and schema) is not progress: it holds nothing a reader or a restart uses.
pub fn delta_commits_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut commits = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(directory) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&directory) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            // The connector's event log records runs, not the tables' progress.
            if path.is_dir() && entry.file_name() != connector_core::event_log::EVENTS_NAMESPACE {
                pending.push(path);
            } else if directory.file_name().is_some_and(|name| name == "_delta_log")
                && path.extension().is_some_and(|ext| ext == "json")
                && commits_progress(&path)
            {
                commits.push(path);
            }
        }
    }
    commits.sort();
    commits
}

fn commits_progress(commit: &std::path::Path) -> bool {
    let text = std::fs::read_to_string(commit).expect("read a Delta commit");
    text.lines().filter(|line| !line.trim().is_empty()).any(|line| {
        let action: serde_json::Value = serde_json::from_str(line).expect("a Delta commit line is JSON");
        ["add", "remove", "txn"].iter().any(|kind| action.get(kind).is_some())
            || action.pointer("/commitInfo/cdc.cursor").is_some()
    })
}
