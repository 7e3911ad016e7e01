//! Copying a table in key-ordered chunks while its changes stream, so a copy resumes where it stopped and no
//! transaction stays open for the whole copy (Netflix's DBLog describes the technique).
//!
//! A table being copied has a bound, its *copied-up-to* key: rows with keys at or below it are in the Delta
//! table, and the stream's changes to them are applied as usual; changes to keys above it are dropped, since
//! the chunk that later copies those keys reads them as they are then. A chunk is read by the source under a
//! snapshot whose log position `P` it knows exactly: the rows after the bound, in key order, up to a limit.
//! The engine applies the chunk when the stream reaches `P`, before the first transaction that committed after
//! it: first the table's buffered changes (filtered by the old bound), then the chunk's rows in one commit
//! whose cursor holds `P` and the chunk's last key as the new bound. The stream's transactions after `P` then
//! apply to the chunk's keys too. A crash loses at most the chunks read and not yet committed; the next run
//! resumes after the bound committed last.
//!
//! Only tables with a single integer key are copied this way (the engine compares keys as integers); a source
//! copies others whole before streaming.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::chunk_rows::{Chunk, ChunkRows};
use crate::arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use crate::arrow::compute::filter_record_batch;
use crate::arrow::datatypes::{
    DataType, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use crate::change::{Operation, TransactionSpan};
use crate::change_buffer::{TakenRows, UnchangedCell};
use crate::cursor::{SnapshotProgress, TableCursor};
use crate::error::{Error, Result};
use crate::position::SourcePosition;
use crate::schema::{TableId, TableSchema};

/// The key under which `SnapshotProgress::resume_from` holds a chunked copy's bound.
const COPIED_UP_TO: &str = "copied_up_to";

/// A table's copy in progress: how far it got.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkedCopy {
    /// The table's key column, an integer.
    pub key_column: String,
    /// Rows with keys at or below this are in the Delta table; `None` before the first chunk.
    pub copied_up_to: Option<i128>,
    pub rows_copied: u64,
    /// When the copy began.
    pub started_at: DateTime<Utc>,
}

impl ChunkedCopy {
    /// The copy a table with `cursor` still needs, keyed by `key_column`: a fresh one for a table never copied
    /// (or whose copy restarts, `TableCursor::restarting`), the one the cursor records for a copy under way,
    /// none once the snapshot is complete.
    pub fn needed(cursor: Option<&TableCursor>, key_column: &str) -> Result<Option<ChunkedCopy>> {
        let fresh = || ChunkedCopy {
            key_column: key_column.to_string(),
            copied_up_to: None,
            rows_copied: 0,
            started_at: Utc::now(),
        };
        let Some(cursor) = cursor else { return Ok(Some(fresh())) };
        let Some(progress) = cursor.snapshot.as_ref().filter(|progress| !progress.complete) else {
            return Ok(None);
        };
        let copied_up_to = match progress.resume_from.get(COPIED_UP_TO) {
            None => return Ok(Some(fresh())),
            Some(bound) => bound.as_str().and_then(|text| text.parse::<i128>().ok()).ok_or_else(|| {
                Error::state(format!("the cursor's chunked copy records `{bound}`, which is not a key"))
            })?,
        };
        Ok(Some(ChunkedCopy {
            key_column: key_column.to_string(),
            copied_up_to: Some(copied_up_to),
            rows_copied: progress.rows_copied,
            started_at: progress.taken_at,
        }))
    }

    /// Whether `cursor` records a chunked copy not yet complete that has copied some rows (whose changes then
    /// apply).
    pub fn is_under_way(cursor: &TableCursor) -> bool {
        cursor
            .snapshot
            .as_ref()
            .is_some_and(|progress| !progress.complete && progress.resume_from.get(COPIED_UP_TO).is_some())
    }

    /// Whether the table holds the row with `key` (copied already, so its changes apply).
    pub fn holds(&self, key: i128) -> bool {
        self.copied_up_to.is_some_and(|bound| key <= bound)
    }

    /// The cursor committed with a chunk read at `position`: the copy's progress after it.
    pub(super) fn cursor_after(&self, position: SourcePosition, complete: bool) -> TableCursor {
        let resume_from = match self.copied_up_to {
            Some(bound) => json!({ COPIED_UP_TO: bound.to_string() }),
            None => serde_json::Value::Null,
        };
        TableCursor {
            position,
            snapshot: Some(SnapshotProgress {
                resume_from,
                rows_copied: self.rows_copied,
                complete,
                taken_at: self.started_at,
            }),
            parts_of: None,
        }
    }

    /// `taken` without the changes to rows the table does not hold yet (truncates are kept). Returns `None` when
    /// nothing is left.
    pub(super) fn keep_copied(&self, taken: TakenRows) -> Result<Option<TakenRows>> {
        let id = taken.schema.id.clone();
        let index = taken.schema.column_index(&self.key_column).ok_or_else(|| {
            Error::state(format!("internal: {id} has no key column `{}` to copy by", self.key_column))
        })?;
        let keys = integer_keys(&id, taken.rows.column(index))?;
        let keep: Vec<bool> = taken
            .operations
            .iter()
            .zip(&keys)
            .map(|(operation, key)| *operation == Operation::Truncate || key.is_none_or(|key| self.holds(key)))
            .collect();
        if keep.iter().all(|kept| *kept) {
            return Ok(Some(taken));
        }
        if !keep.iter().any(|kept| *kept) {
            return Ok(None);
        }
        // Where each kept row lands; a dropped row maps to the kept rows before it.
        let mut new_index = Vec::with_capacity(keep.len() + 1);
        let mut kept = 0;
        for &row in &keep {
            new_index.push(kept);
            kept += usize::from(row);
        }
        new_index.push(kept);
        let mask = BooleanArray::from(keep.clone());
        let rows = filter_record_batch(&taken.rows, &mask)
            .map_err(|cause| Error::state(format!("cannot filter the changes of {id}")).caused_by(cause))?;
        let operations = taken.operations.iter().zip(&keep).filter(|(_, kept)| **kept).map(|(op, _)| *op).collect();
        let spans =
            taken.spans.into_iter().map(|span| TransactionSpan { end_row: new_index[span.end_row], ..span }).collect();
        // A cell whose value was stored under a dropped row (a key moved into the copied range) is looked for
        // under its own row's key, which the table does not hold: the writer then says to resync the table.
        let unchanged = taken
            .unchanged
            .into_iter()
            .filter(|cell| keep[cell.row])
            .map(|cell| UnchangedCell {
                row: new_index[cell.row],
                key_row: if keep[cell.key_row] { new_index[cell.key_row] } else { new_index[cell.row] },
                column: cell.column,
            })
            .collect();
        Ok(Some(TakenRows { schema: taken.schema, rows, operations, spans, unchanged }))
    }
}

/// The values of an integer key column, widened to `i128` (which holds both signed and unsigned 64-bit keys).
pub fn integer_keys(table: &TableId, column: &ArrayRef) -> Result<Vec<Option<i128>>> {
    fn widen<T>(array: &dyn Array) -> Vec<Option<i128>>
    where
        T: crate::arrow::datatypes::ArrowPrimitiveType,
        T::Native: Into<i128>,
    {
        array.as_primitive::<T>().iter().map(|value| value.map(Into::into)).collect()
    }
    Ok(match column.data_type() {
        DataType::Int8 => widen::<Int8Type>(column),
        DataType::Int16 => widen::<Int16Type>(column),
        DataType::Int32 => widen::<Int32Type>(column),
        DataType::Int64 => widen::<Int64Type>(column),
        DataType::UInt8 => widen::<UInt8Type>(column),
        DataType::UInt16 => widen::<UInt16Type>(column),
        DataType::UInt32 => widen::<UInt32Type>(column),
        DataType::UInt64 => widen::<UInt64Type>(column),
        other => {
            return Err(Error::state(format!("internal: {table} is copied in chunks but its key is {other}")));
        }
    })
}

/// The column a table is copied in chunks by: its key, when that is a single integer column.
pub fn chunk_key(schema: &TableSchema) -> Option<&str> {
    match schema.primary_key.as_slice() {
        [key] => schema
            .column_index(key)
            .filter(|&index| is_integer_key(&schema.columns[index].data_type))
            .map(|_| key.as_str()),
        _ => None,
    }
}

fn is_integer_key(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
    )
}

/// What a chunk read asks for.
#[derive(Debug, Clone)]
pub struct ChunkRequest {
    pub table: TableId,
    /// The key the copy goes by (the table's single integer key when the copy began).
    pub key_column: String,
    /// Read the rows with keys after this one (`None`: from the first).
    pub after: Option<i128>,
    /// This many rows (the last chunk has fewer).
    pub rows: u64,
    /// The keys `rows` rows likely span after `after`, from the density of the table's chunk read before: with
    /// it, the chunk ends at `after + span` (its row count then follows the keys' density), found at the cost of
    /// one index probe instead of counting `rows` keys through the index, which costs about a fifth of reading
    /// them. `None`: counted.
    pub span: Option<i128>,
}

/// The SQL conditions both SQL sources read a chunk by, `quoted_key` being the key column as the source quotes it.
impl ChunkRequest {
    /// The keys after `after`: ` WHERE key > after`, nothing for a copy's first chunk.
    pub fn keys_after(&self, quoted_key: &str) -> String {
        self.after.map(|after| format!(" WHERE {quoted_key} > {after}")).unwrap_or_default()
    }

    /// The query for where the chunk ends ([`ChunkStart::up_to`]), read from the key's index alone so that the
    /// next chunk can be read alongside this one: the `rows`-th key after `after` as text (`key_text`, the key
    /// column cast to text), no row when fewer are left; with a [`span`](Self::span), `after + span` as text, no
    /// row when no key lies past it. `table` is the qualified, quoted table name.
    pub fn end_query(&self, quoted_key: &str, key_text: &str, table: &str) -> String {
        if let (Some(after), Some(span)) = (self.after, self.span) {
            // The estimated end, if any key lies past it (else this chunk reads the rest and ends the copy).
            let end = after.saturating_add(span.max(1));
            return format!(
                "SELECT '{end}' AS chunk_end FROM {table} WHERE {quoted_key} > {end} ORDER BY {quoted_key} LIMIT 1"
            );
        }
        format!(
            "SELECT {key_text} AS chunk_end FROM {table}{} ORDER BY {quoted_key} LIMIT 1 OFFSET {}",
            self.keys_after(quoted_key),
            self.rows.saturating_sub(1)
        )
    }

    /// The chunk's keys: those after `after` up to `up_to` (see [`ChunkStart`]), all that follow without it.
    pub fn chunk_keys(&self, quoted_key: &str, up_to: Option<i128>) -> String {
        match (up_to, self.after) {
            (Some(last), Some(_)) => format!("{} AND {quoted_key} <= {last}", self.keys_after(quoted_key)),
            (Some(last), None) => format!(" WHERE {quoted_key} <= {last}"),
            (None, _) => self.keys_after(quoted_key),
        }
    }

    /// A key of the table as a source's query returned it, as text.
    pub fn parse_key(&self, text: &str) -> Result<i128> {
        text.parse().map_err(|_| {
            Error::state(format!("{}: the key `{text}` is not an integer to copy in chunks by", self.table))
        })
    }
}

/// Where a chunk's snapshot sits in the stream, and the key the chunk reads up to.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkStart {
    pub position: SourcePosition,
    /// The `rows`-th key after `after` in the snapshot: the chunk holds the keys after `after` up to this one,
    /// and the table's next chunk can be read from it at once, alongside. `None`: fewer rows are left, the chunk
    /// reads them all and ends the copy.
    pub up_to: Option<i128>,
}

/// A boxed chunk read, run on its own task.
pub type ChunkRead = Pin<Box<dyn Future<Output = Result<Chunk>> + Send>>;

/// A source's reader of chunks. [`read_chunk`](Self::read_chunk) must take a snapshot whose position in the
/// change stream is exact (every transaction that committed before it is in the snapshot, none after), find in
/// it the `request.rows`-th key after `request.after` ([`ChunkStart::up_to`]), report both through
/// [`ChunkRows::positioned`] before reading the rows, then read the rows with keys after `request.after` up to
/// that key (all of them when there is none) into [`ChunkRows::write`] and return [`ChunkRows::finish`]. The
/// position must be at or after everything the source has sent or committed, in this run or any earlier one (so
/// at or after the table's cursor and the table's previous chunk), which a snapshot of the source's present
/// state is; the engine refuses a chunk that is not. A source should also make the stream move past the
/// position soon (a marker in the log), or the chunk waits for the next transaction.
pub trait ChunkReader: Send + Sync {
    fn read_chunk(&self, request: ChunkRequest, rows: ChunkRows) -> ChunkRead;
}

/// A reader shared by the engine's chunk tasks.
pub type SharedChunkReader = Arc<dyn ChunkReader>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arrow::array::{Int64Array, RecordBatch};
    use crate::arrow::datatypes::DataType;
    use crate::position::Lsn;
    use crate::schema::Column;

    fn taken(ids: &[i64], operations: Vec<Operation>, ends: &[usize]) -> TakenRows {
        let schema = TableSchema::new(
            TableId::new("s", "t"),
            vec![Column::new("id", DataType::Int64, "bigint"), Column::new("v", DataType::Int64, "bigint")],
            vec!["id".into()],
        )
        .expect("schema");
        let rows = RecordBatch::try_new(
            schema.arrow_schema(),
            vec![Arc::new(Int64Array::from(ids.to_vec())), Arc::new(Int64Array::from(ids.to_vec()))],
        )
        .expect("rows");
        let spans = ends
            .iter()
            .map(|&end_row| TransactionSpan {
                end_row,
                position: SourcePosition::Postgres { lsn: Lsn(end_row as u64) },
                commit_time: Utc::now(),
            })
            .collect();
        TakenRows { schema, rows, operations, spans, unchanged: Vec::new() }
    }

    fn copy_up_to(bound: Option<i128>) -> ChunkedCopy {
        ChunkedCopy { key_column: "id".into(), copied_up_to: bound, rows_copied: 0, started_at: Utc::now() }
    }

    #[test]
    fn changes_above_the_bound_are_dropped_and_transactions_renumbered() {
        use Operation::*;
        let mut rows = taken(&[1, 9, 2, 0, 7], vec![Insert, Update, Delete, Truncate, Insert], &[2, 2, 5]);
        rows.unchanged = vec![
            UnchangedCell { row: 2, column: "v".into(), key_row: 1 },
            UnchangedCell { row: 1, column: "v".into(), key_row: 1 },
        ];
        let kept = copy_up_to(Some(5)).keep_copied(rows).expect("filtered").expect("rows left");
        let ids: Vec<i64> = kept.rows.column(0).as_primitive::<Int64Type>().values().to_vec();
        assert_eq!(ids, vec![1, 2, 0]);
        assert_eq!(kept.operations, vec![Insert, Delete, Truncate]);
        assert_eq!(kept.spans.iter().map(|span| span.end_row).collect::<Vec<_>>(), vec![1, 1, 3]);
        assert_eq!(kept.unchanged, vec![UnchangedCell { row: 1, column: "v".into(), key_row: 1 }]);
    }

    #[test]
    fn nothing_is_kept_before_the_first_chunk_and_everything_after_the_last() {
        use Operation::*;
        assert!(copy_up_to(None).keep_copied(taken(&[1, 2], vec![Insert, Insert], &[2])).expect("ok").is_none());
        let all = copy_up_to(Some(i128::from(i64::MAX))).keep_copied(taken(&[1, 2], vec![Insert, Delete], &[2]));
        assert_eq!(all.expect("ok").expect("rows").operations.len(), 2);
    }

    #[test]
    fn the_bound_survives_the_cursor() {
        let copy = ChunkedCopy { copied_up_to: Some(u64::MAX.into()), rows_copied: 7, ..copy_up_to(None) };
        let cursor = copy.cursor_after(SourcePosition::Postgres { lsn: Lsn(9) }, false);
        let resumed = ChunkedCopy::needed(Some(&cursor), "id").expect("readable").expect("still copying");
        assert_eq!(resumed.copied_up_to, Some(u64::MAX.into()));
        assert_eq!(resumed.rows_copied, 7);
        assert!(ChunkedCopy::is_under_way(&cursor));
        let done = copy.cursor_after(SourcePosition::Postgres { lsn: Lsn(9) }, true);
        assert_eq!(ChunkedCopy::needed(Some(&done), "id").expect("readable"), None);
        assert!(!ChunkedCopy::is_under_way(&done), "a complete copy is not under way");
        let restarting = TableCursor::restarting(SourcePosition::Postgres { lsn: Lsn(3) });
        assert_eq!(ChunkedCopy::needed(Some(&restarting), "id").expect("readable").expect("fresh").copied_up_to, None);
    }

    #[test]
    fn a_chunk_reads_the_keys_after_its_start_up_to_its_end() {
        let request = |after| ChunkRequest {
            table: TableId::new("s", "t"),
            key_column: "id".into(),
            after,
            rows: 10,
            span: None,
        };
        assert_eq!(request(None).keys_after("\"id\""), "");
        assert_eq!(request(Some(-5)).keys_after("\"id\""), " WHERE \"id\" > -5");
        assert_eq!(request(None).chunk_keys("`id`", Some(9)), " WHERE `id` <= 9");
        assert_eq!(request(Some(9)).chunk_keys("`id`", Some(19)), " WHERE `id` > 9 AND `id` <= 19");
        assert_eq!(request(Some(19)).chunk_keys("`id`", None), " WHERE `id` > 19");
        assert_eq!(
            request(Some(9)).end_query("`id`", "CAST(`id` AS CHAR)", "`shop`.`orders`"),
            "SELECT CAST(`id` AS CHAR) AS chunk_end FROM `shop`.`orders` WHERE `id` > 9 ORDER BY `id` LIMIT 1 OFFSET 9"
        );
        // With a span from the chunks before: one probe past the estimated end, which is the chunk's end if a key
        // lies past it.
        let estimated = ChunkRequest { span: Some(25), ..request(Some(9)) };
        assert_eq!(
            estimated.end_query("\"id\"", "\"id\"::text", "\"s\".\"t\""),
            "SELECT '34' AS chunk_end FROM \"s\".\"t\" WHERE \"id\" > 34 ORDER BY \"id\" LIMIT 1"
        );
        assert_eq!(request(None).parse_key("18446744073709551615").expect("unsigned"), 18_446_744_073_709_551_615);
        let error = request(None).parse_key("abc").expect_err("not a key");
        assert!(error.to_string().contains("s.t: the key `abc` is not an integer"), "{error}");
    }
}
