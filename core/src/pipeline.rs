//! What `connector sync` and the scheduler run: a source bound to its Delta tables.
//!
//! Every implementation keeps these promises:
//! - it acknowledges a source position (replication `flush_lsn`, binlog position, API cursor) only after
//!   the Delta commit holding every change up to it succeeded;
//! - it never moves a table's committed cursor backwards;
//! - on [`Shutdown`] it finishes the batch in flight or abandons it uncommitted, then returns; an abandoned
//!   batch is read again on the next run, and the committed cursor makes the replay exactly-once.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::error::Result;
use crate::position::SourcePosition;
use crate::schema::TableId;

/// How long one sync runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// Snapshot what is new, apply changes up to the source's position at start, stop.
    Once,
    /// Keep applying changes in micro-batches until shut down.
    Continuous,
}

/// What one sync did, per table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncReport {
    pub tables: Vec<TableReport>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TableReport {
    pub table: TableId,
    pub snapshot_rows: u64,
    pub changes_applied: u64,
    pub position: Option<SourcePosition>,
    /// A table of files: the files ingested (their rows are `changes_applied`); `None` for other sources.
    pub files_ingested: Option<u64>,
}

impl TableReport {
    /// A table's report before the sync did anything.
    pub fn new(table: TableId) -> Self {
        TableReport { table, snapshot_rows: 0, changes_applied: 0, position: None, files_ingested: None }
    }
}

impl fmt::Display for SyncReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for table in &self.tables {
            match table.files_ingested {
                Some(files) => write!(f, "{}: {} rows from {files} new files", table.table, table.changes_applied)?,
                None => write!(
                    f,
                    "{}: {} snapshot rows, {} changes",
                    table.table, table.snapshot_rows, table.changes_applied
                )?,
            }
            match &table.position {
                Some(position) => writeln!(f, ", at {position}")?,
                None => writeln!(f)?,
            }
        }
        Ok(())
    }
}

pub type SyncFuture<'a> = Pin<Box<dyn Future<Output = Result<SyncReport>> + Send + 'a>>;

/// A configured pipeline, ready to sync.
pub trait Pipeline: Send + Sync + fmt::Debug {
    fn name(&self) -> &str;

    /// Runs one sync in `mode`, honouring `shutdown` between batches.
    fn sync(&self, mode: SyncMode, shutdown: Shutdown) -> SyncFuture<'_>;
}

/// A request to stop, shared by every running pipeline. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown {
    receiver: tokio::sync::watch::Receiver<bool>,
}

/// The sending side of [`Shutdown`], held by whoever handles signals.
#[derive(Debug)]
pub struct ShutdownTrigger {
    sender: tokio::sync::watch::Sender<bool>,
}

impl Shutdown {
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (sender, receiver) = tokio::sync::watch::channel(false);
        (ShutdownTrigger { sender }, Shutdown { receiver })
    }

    pub fn is_requested(&self) -> bool {
        *self.receiver.borrow()
    }

    /// Completes once shutdown is requested (or the trigger is gone).
    pub async fn requested(&mut self) {
        let _ = self.receiver.wait_for(|requested| *requested).await;
    }
}

impl ShutdownTrigger {
    pub fn request(&self) {
        self.sender.send_replace(true);
    }
}
