//! Initial copies of several tables at once: each copy owns its table's writer while it runs, and the writers
//! come back whatever the outcome, so the sync can go on streaming the tables that were copied.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::copy_progress::Copied;
use crate::delta::DeltaTableWriter;
use crate::error::{Error, Result};

/// Runs `copy` for the writers at `indices`, at most `parallel` at a time. Returns what each copied, or
/// the first failure once every copy has ended.
pub(super) async fn copy_in_parallel<F, Fut>(
    writers: &mut [Option<DeltaTableWriter>],
    indices: &[usize],
    parallel: usize,
    copy: F,
) -> Result<Vec<(usize, Copied)>>
where
    F: Fn(usize, DeltaTableWriter) -> Fut,
    Fut: Future<Output = (DeltaTableWriter, Result<Copied>)> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(parallel));
    let mut tasks = tokio::task::JoinSet::new();
    for &index in indices {
        let Some(writer) = writers[index].take() else { continue };
        if writer.cursor().is_some() {
            warn!(table = %writer.table_id(), "an earlier snapshot did not complete; copying again");
        }
        let (permits, copying) = (permits.clone(), copy(index, writer));
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let (writer, result) = copying.await;
            (index, writer, result)
        });
    }
    let mut copied = Vec::new();
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        let (index, writer, result) =
            joined.map_err(|panic| Error::state(format!("a snapshot copy ended abnormally: {panic}")))?;
        writers[index] = Some(writer);
        match result {
            Ok(rows) => copied.push((index, rows)),
            Err(error) => {
                failure.get_or_insert(error);
            }
        }
    }
    match failure {
        Some(error) => Err(error),
        None => {
            info!(tables = copied.len(), "initial snapshot complete");
            Ok(copied)
        }
    }
}
