//! A sync's tables opened, which of them need a copy and how (in chunks while they stream, or whole before
//! streaming), and the whole copies themselves.

use std::future::Future;
use std::io::IsTerminal;

use indicatif::MultiProgress;

use tracing::info;

use super::chunked_copy::{ChunkedCopy, chunk_key};
use super::parallel_copies::copy_in_parallel;
use crate::capture_settings::CaptureSettings;
use crate::copy_progress::Copied;
use crate::cursor::TableCursor;
use crate::delta::{DeltaSink, DeltaTableWriter};
use crate::error::{Error, Result};
use crate::pipeline::{Shutdown, TableReport};
use crate::position::SourcePosition;
use crate::schema::TableSchema;

/// Opens (creating on the first sync) the Delta table of each of `schemas` with its options from `capture`,
/// and an empty report for each, in the same order.
pub async fn open_sync_tables(
    sink: &DeltaSink,
    capture: &CaptureSettings,
    schemas: &[&TableSchema],
) -> Result<(Vec<DeltaTableWriter>, Vec<TableReport>)> {
    let opened = schemas.iter().map(|schema| (*schema, capture.options_for(&schema.id))).collect();
    let writers = sink.open_tables(opened).await?;
    let reports = schemas.iter().map(|schema| TableReport::new(schema.id.clone())).collect();
    Ok((writers, reports))
}

/// How a table that needs a copy is copied.
#[derive(Debug, Clone, PartialEq)]
enum CopyPlan {
    /// In chunks while it streams, from where the cursor's copy got (logged when it resumes).
    Chunks(ChunkedCopy),
    /// Whole, before streaming: a table without a single integer key, or every table when `in_chunks` is off.
    /// A copy in chunks under way must then start over from an empty table.
    Whole,
}

/// How the table of `schema`, whose cursor is `cursor`, is copied (`in_chunks`: the `copy_in_chunks` setting).
fn plan_copy(cursor: Option<&TableCursor>, schema: &TableSchema, in_chunks: bool) -> Result<CopyPlan> {
    let Some(key) = chunk_key(schema).filter(|_| in_chunks) else { return Ok(CopyPlan::Whole) };
    let copy = ChunkedCopy::needed(cursor, key)?.ok_or_else(|| {
        Error::state(format!("internal: a copy of {} was planned though its copy is complete", schema.id))
    })?;
    if let Some(bound) = copy.copied_up_to {
        info!(table = %schema.id, after_key = bound, rows_copied = copy.rows_copied, "resuming the copy");
    }
    Ok(CopyPlan::Chunks(copy))
}

/// The copies a sync's tables need.
#[derive(Debug)]
pub struct TableCopies {
    /// The tables copied whole before streaming, by index.
    pub whole: Vec<usize>,
    /// Per table, its copy in chunks while it streams.
    pub chunked: Vec<Option<ChunkedCopy>>,
}

/// Plans the copies of a sync's tables (`schemas[i]` is the source's shape of `writers[i]`): every table
/// whose snapshot is not complete is copied, in chunks where its key allows and `copy_in_chunks` is on, else
/// whole. `history_lost` is asked about each table holding copied rows (a complete snapshot, or a copy in
/// chunks under way): when the source can no longer stream the table's changes since its cursor, it says why
/// (a warning) and returns the position a new copy restarts from; the table is emptied and copied again.
pub async fn plan_table_copies(
    writers: &mut [DeltaTableWriter],
    schemas: &[&TableSchema],
    copy_in_chunks: bool,
    mut history_lost: impl FnMut(&DeltaTableWriter) -> Option<SourcePosition>,
) -> Result<TableCopies> {
    let mut copies = TableCopies { whole: Vec::new(), chunked: vec![None; writers.len()] };
    for (index, writer) in writers.iter_mut().enumerate() {
        let holds_copy =
            writer.cursor().is_some_and(|cursor| cursor.snapshot_complete() || ChunkedCopy::is_under_way(cursor));
        if holds_copy {
            match history_lost(writer) {
                Some(restart) => writer.restart_snapshot(TableCursor::restarting(restart)).await?,
                None if writer.cursor().is_some_and(TableCursor::snapshot_complete) => continue,
                None => {}
            }
        }
        match plan_copy(writer.cursor(), schemas[index], copy_in_chunks)? {
            CopyPlan::Chunks(copy) => copies.chunked[index] = Some(copy),
            CopyPlan::Whole => {
                // A copy in chunks begun under another key: the whole copy starts from an empty table.
                if let Some(cursor) = writer.cursor().filter(|cursor| ChunkedCopy::is_under_way(cursor)) {
                    writer.restart_snapshot(TableCursor::restarting(cursor.position.clone())).await?;
                }
                copies.whole.push(index);
            }
        }
    }
    Ok(copies)
}

/// Copies the tables at `indices` whole, `parallel` at a time, each by `copy(index, writer, bars)`, where
/// `bars` draw the copies' progress when a person watches (stderr is a terminal; the copies log every 10 s
/// otherwise). Each copied table's rows go into its report. Returns the writers, all of them, in order.
///
/// A shutdown abandons the copies in flight rather than waiting for them (a large table's copy takes hours) and
/// returns `None`: each copy is one commit, so an abandoned copy leaves nothing visible and the next sync copies
/// it again; tables whose copy was committed are not.
pub async fn copy_whole_tables<F, Fut>(
    writers: Vec<DeltaTableWriter>,
    indices: &[usize],
    reports: &mut [TableReport],
    parallel: usize,
    shutdown: &Shutdown,
    copy: F,
) -> Result<Option<Vec<DeltaTableWriter>>>
where
    F: Fn(usize, DeltaTableWriter, Option<MultiProgress>) -> Fut,
    Fut: Future<Output = (DeltaTableWriter, Result<Copied>)> + Send + 'static,
{
    if shutdown.is_requested() {
        return Ok(None);
    }
    if indices.is_empty() {
        return Ok(Some(writers));
    }
    let bars = std::io::stderr().is_terminal().then(MultiProgress::new);
    let mut slots: Vec<Option<DeltaTableWriter>> = writers.into_iter().map(Some).collect();
    let mut stop = shutdown.clone();
    let copied = tokio::select! {
        copied = copy_in_parallel(&mut slots, indices, parallel, |index, writer| copy(index, writer, bars.clone())) => copied?,
        _ = stop.requested() => {
            info!("stopping: abandoned the table copies in flight; the next sync copies them again");
            return Ok(None);
        }
    };
    for (index, copied) in copied {
        reports[index].snapshot_rows = copied.rows;
        if let Some(writer) = &slots[index] {
            count_copy_read(writer, copied);
        }
    }
    Ok(Some(slots.into_iter().flatten().collect()))
}

/// Counts a table's whole copy in its rows- and bytes-read metrics.
fn count_copy_read(writer: &DeltaTableWriter, copied: Copied) {
    let metrics = crate::metrics::metrics();
    metrics.rows_read(writer.pipeline(), writer.table_id()).inc_by(copied.rows);
    metrics.bytes_read(writer.pipeline(), writer.table_id()).inc_by(copied.bytes);
}
