//! The streaming loop every source runs: read, decode, commit by budget, acknowledge after the commit.

use std::time::Duration;

use chrono::Utc;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::info;

use super::change_stream::{ChangeStream, IdleCursors, Started, StreamStep};
use super::chunk_queue::{BeforeTransaction, ChunkQueue, SNAPSHOT_WAIT};
use super::chunked_copy::ChunkedCopy;
use super::commit_budget::{CommitBudget, commit_check_period};
use super::read_ahead::{Merge, ReadAhead};
use crate::error::{Error, Result};
use crate::pipeline::{Shutdown, SyncMode};

/// How often continuous mode moves idle tables' cursors forward (sources with [`IdleCursors::Advance`]).
const IDLE_ADVANCE_INTERVAL: Duration = Duration::from_secs(60);

/// The share of the memory budget that events read during a merge may hold (undecoded, beside the buffers
/// being merged).
const READ_AHEAD_SHARE: usize = 4;

/// Streams changes until shut down (continuous) or until everything present at start is committed (once).
///
/// Commits happen between transactions, when the buffers fill `budget.batch_bytes` or the oldest change has
/// waited `budget.commit_interval`; inside a transaction larger than the budget, its rows so far are applied
/// as a part where the table's mode allows. After each commit the source is told the received position is
/// durable. While the tables merge, events go on being read (up to a quarter of `batch_bytes`) and are
/// handled after. A shutdown commits what is buffered when no transaction is open and abandons the rest (an
/// open transaction's rows, events read ahead, chunks being read), which the source sends again next time.
///
/// Tables being copied in chunks (`chunked_copy`) have their chunks read alongside, each applied when the
/// stream reaches its snapshot: before the first transaction after it (waiting for the rows if the stream
/// caught up with the reader), or once the stream received everything up to it. A `once` sync goes on until
/// every copy is complete.
pub async fn stream_changes<S: ChangeStream>(
    stream: &mut S,
    mode: SyncMode,
    budget: CommitBudget,
    mut shutdown: Shutdown,
) -> Result<()> {
    let mut chunks = stream.chunk_reader().map(|(reader, rows)| ChunkQueue::new(reader, rows));
    let mut ahead = ReadAhead::new(budget.batch_bytes / READ_AHEAD_SHARE);
    if stream.start(mode).await? == Started::AtEnd {
        if stream.tables().copying().next().is_some() {
            return Err(Error::state("internal: the source found nothing to stream while tables await their copy"));
        }
        advance_idle_cursors(stream, &mut ahead).await?;
        return Ok(());
    }
    let mut tick = tokio::time::interval(commit_check_period(budget.commit_interval));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_idle_advance = Instant::now();
    let mut end_reached = false;
    'stream: loop {
        if let Some(queue) = chunks.as_mut() {
            read_more_chunks(stream, queue)?;
        }
        let event = tokio::select! {
            biased;
            _ = shutdown.requested() => break,
            update = next_chunk_update(&mut chunks) => {
                update?;
                if let Some(queue) = chunks.as_mut() {
                    // A chunk whose end is now known lets its table's next one be read alongside.
                    read_more_chunks(stream, queue)?;
                    apply_ready_chunks(stream, queue, &mut ahead).await?;
                }
                if end_reached && stream.open_transaction().is_none() && copies_done(stream, &chunks) {
                    break;
                }
                continue;
            }
            _ = tick.tick() => {
                if stream.open_transaction().is_none() {
                    let waited = stream.tables().oldest_pending().is_some_and(|since| since.elapsed() >= budget.commit_interval);
                    if waited {
                        commit_and_acknowledge(stream, &mut ahead).await?;
                    } else if !stream.tables().hold_changes() {
                        // Nothing buffered: what was received since (other tables' transactions, heartbeats) is
                        // acknowledged, so the source can free it.
                        acknowledge_received(stream);
                    }
                    if last_idle_advance.elapsed() >= IDLE_ADVANCE_INTERVAL {
                        last_idle_advance = Instant::now();
                        advance_idle_cursors(stream, &mut ahead).await?;
                    }
                }
                stream.on_tick().await?;
                continue;
            }
            event = ahead.next_event(stream) => event?,
        };
        if let (Some(queue), Some(start)) = (chunks.as_mut(), stream.transaction_start(&event)) {
            // Chunks read at or before this transaction's start go in first; the stream waits for their rows.
            loop {
                match queue.before_transaction(&start)? {
                    BeforeTransaction::Proceed => break,
                    BeforeTransaction::Apply(table) => {
                        let (chunk, position) = queue.take(table)?;
                        ahead.while_merging(stream, Merge::Chunk { table, chunk, position }).await?;
                        read_more_chunks(stream, queue)?;
                    }
                    wait @ (BeforeTransaction::WaitForRows | BeforeTransaction::WaitForSnapshot) => {
                        // Rows are waited for as long as they take; a snapshot only SNAPSHOT_WAIT.
                        let snapshot = wait == BeforeTransaction::WaitForSnapshot;
                        tokio::select! {
                            biased;
                            _ = shutdown.requested() => break 'stream,
                            update = queue.next_update() => update?,
                            _ = tokio::time::sleep(SNAPSHOT_WAIT), if snapshot => queue.give_up_unpositioned(),
                        }
                        read_more_chunks(stream, queue)?;
                    }
                }
            }
        }
        let step = stream.handle(event).await?;
        let between = stream.open_transaction().is_none();
        let reached_end = step == StreamStep::ReachedEnd && between;
        if between && (reached_end || stream.tables().buffered_bytes() >= budget.batch_bytes) {
            commit_and_acknowledge(stream, &mut ahead).await?;
        } else if let Some(open) = stream.open_transaction()
            && stream.tables().partial_buffered_bytes() >= budget.batch_bytes
            && ahead.while_merging(stream, Merge::OpenPart(open.0, open.1)).await?
        {
            acknowledge_received(stream);
        }
        end_reached |= reached_end;
        if between && let Some(queue) = chunks.as_mut() {
            apply_ready_chunks(stream, queue, &mut ahead).await?;
        }
        if end_reached && between && copies_done(stream, &chunks) {
            break;
        }
    }
    if chunks.as_ref().is_some_and(|queue| !queue.is_empty()) {
        info!("stopping: abandoned the chunks being read; the next sync reads them again");
    }
    if ahead.waiting() > 0 {
        info!(events = ahead.waiting(), "stopping: abandoned the events read ahead; the next sync reads them again");
    }
    if stream.open_transaction().is_none() {
        commit_and_acknowledge(stream, &mut ahead).await?;
        advance_idle_cursors(stream, &mut ahead).await?;
    }
    stream.close().await;
    Ok(())
}

/// Waits for news from the chunk readers; never, when the source copies no table in chunks.
async fn next_chunk_update(chunks: &mut Option<ChunkQueue>) -> Result<()> {
    match chunks {
        Some(queue) => queue.next_update().await,
        None => std::future::pending().await,
    }
}

fn read_more_chunks<S: ChangeStream>(stream: &mut S, queue: &mut ChunkQueue) -> Result<()> {
    let tables = stream.tables();
    let copying: Vec<(usize, ChunkedCopy)> = tables.copying().map(|(index, copy)| (index, copy.clone())).collect();
    queue.read_more(copying.iter().map(|(index, copy)| (*index, copy)), |index| {
        let writer = &tables.get(index).writer;
        Ok((writer.table_id().clone(), writer.snapshot_files(Utc::now())?))
    })
}

/// Applies the chunks the stream has passed (every transaction before their snapshot handled). Only between
/// transactions.
async fn apply_ready_chunks<S: ChangeStream>(
    stream: &mut S,
    queue: &mut ChunkQueue,
    ahead: &mut ReadAhead<S>,
) -> Result<()> {
    if stream.open_transaction().is_some() {
        return Ok(());
    }
    while let Some(table) = queue.ready(&stream.received()) {
        let (chunk, position) = queue.take(table)?;
        ahead.while_merging(stream, Merge::Chunk { table, chunk, position }).await?;
    }
    read_more_chunks(stream, queue)?;
    Ok(())
}

/// Whether every table's copy is complete.
fn copies_done<S: ChangeStream>(stream: &mut S, chunks: &Option<ChunkQueue>) -> bool {
    chunks.as_ref().is_none_or(ChunkQueue::is_empty) && stream.tables().copying().next().is_none()
}

async fn commit_and_acknowledge<S: ChangeStream>(stream: &mut S, ahead: &mut ReadAhead<S>) -> Result<()> {
    ahead.while_merging(stream, Merge::Commit).await?;
    acknowledge_received(stream);
    Ok(())
}

/// Tells the source every transaction received so far is durable: the caller committed them.
fn acknowledge_received<S: ChangeStream>(stream: &mut S) {
    let received = stream.received();
    stream.acknowledge(&received);
}

async fn advance_idle_cursors<S: ChangeStream>(stream: &mut S, ahead: &mut ReadAhead<S>) -> Result<()> {
    if stream.idle_cursors() == IdleCursors::Advance {
        let received = stream.received();
        ahead.while_merging(stream, Merge::IdleCursors(received)).await?;
    }
    Ok(())
}
