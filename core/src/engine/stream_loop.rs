//! The streaming loop every source runs: read, decode, commit by budget, acknowledge after the commit.

use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};

use super::change_stream::{ChangeStream, IdleCursors, Started, StreamStep};
use super::commit_budget::{CommitBudget, commit_check_period};
use crate::error::Result;
use crate::pipeline::{Shutdown, SyncMode};

/// How often continuous mode moves idle tables' cursors forward (sources with [`IdleCursors::Advance`]).
const IDLE_ADVANCE_INTERVAL: Duration = Duration::from_secs(60);

/// Streams changes until shut down (continuous) or until everything present at start is committed (once).
///
/// Commits happen between transactions, when the buffers fill `budget.batch_bytes` or the oldest change has
/// waited `budget.commit_interval`; inside a transaction larger than the budget, its rows so far are applied
/// as a part where the table's mode allows. After each commit the source is told the received position is
/// durable. A shutdown abandons what is buffered but uncommitted, which the source sends again next time.
pub async fn stream_changes<S: ChangeStream>(
    stream: &mut S,
    mode: SyncMode,
    budget: CommitBudget,
    mut shutdown: Shutdown,
) -> Result<()> {
    if stream.start(mode).await? == Started::AtEnd {
        advance_idle_cursors(stream).await?;
        return Ok(());
    }
    let mut tick = tokio::time::interval(commit_check_period(budget.commit_interval));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_idle_advance = Instant::now();
    loop {
        let event = tokio::select! {
            biased;
            _ = shutdown.requested() => break,
            _ = tick.tick() => {
                if stream.open_transaction().is_none() {
                    let waited = stream.tables().oldest_pending().is_some_and(|since| since.elapsed() >= budget.commit_interval);
                    if waited {
                        commit_and_acknowledge(stream).await?;
                    } else if !stream.tables().hold_changes() {
                        // Nothing buffered: what was received since (other tables' transactions, heartbeats) is
                        // acknowledged, so the source can free it.
                        acknowledge_received(stream);
                    }
                    if last_idle_advance.elapsed() >= IDLE_ADVANCE_INTERVAL {
                        last_idle_advance = Instant::now();
                        advance_idle_cursors(stream).await?;
                    }
                }
                stream.on_tick().await?;
                continue;
            }
            event = stream.next_event() => event?,
        };
        let step = stream.handle(event).await?;
        let between = stream.open_transaction().is_none();
        let reached_end = step == StreamStep::ReachedEnd && between;
        if between && (reached_end || stream.tables().buffered_bytes() >= budget.batch_bytes) {
            commit_and_acknowledge(stream).await?;
        } else if let Some(open) = stream.open_transaction()
            && stream.tables().partial_buffered_bytes() >= budget.batch_bytes
            && stream.tables().commit_with_open_part(open).await?
        {
            acknowledge_received(stream);
        }
        if reached_end {
            break;
        }
    }
    if stream.open_transaction().is_none() {
        commit_and_acknowledge(stream).await?;
        advance_idle_cursors(stream).await?;
    }
    stream.close().await;
    Ok(())
}

async fn commit_and_acknowledge<S: ChangeStream>(stream: &mut S) -> Result<()> {
    stream.tables().commit().await?;
    acknowledge_received(stream);
    Ok(())
}

/// Tells the source every transaction received so far is durable: the caller committed them.
fn acknowledge_received<S: ChangeStream>(stream: &mut S) {
    let received = stream.received();
    stream.acknowledge(&received);
}

async fn advance_idle_cursors<S: ChangeStream>(stream: &mut S) -> Result<()> {
    if stream.idle_cursors() == IdleCursors::Advance {
        let received = stream.received();
        stream.tables().advance_idle(&received).await?;
    }
    Ok(())
}
